#!/usr/bin/env bash
# What a spooling relay can reach on this machine: 1 GiB uploads direct to the hash upstream, through the minimal C
# relay of bench/floor/relay.c (without and with a spool, at two chunk sizes), and through Holdfast in Tee mode, in
# interleaved rounds. Prints the median time of each, its ratio to direct and the relay's CPU (user + system).
#
#   bash bench/floor.sh          # ~2 minutes after the build; ROUNDS=n (default 5), UPLOAD_MIB (default 1024)
#
# Not part of bench/run.sh's targets: a reference point for reading its Tee figure (docs/benchmarks.md, "Tee").
# Traffic goes to 127.0.0.1 only; every process it starts is stopped by pid on exit; its temp dir is removed.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
ROUNDS=${ROUNDS:-5} UPLOAD_MIB=${UPLOAD_MIB:-1024}
log() { printf '[floor %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

PIDS=() TMP="" PAGE_REPORTING=/sys/module/page_reporting/parameters/min_free_ms PAGE_REPORTING_SAVED=""
cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  [[ -n $TMP && -d $TMP ]] && rm -rf "$TMP"
  [[ -n $PAGE_REPORTING_SAVED ]] && echo "$PAGE_REPORTING_SAVED" >"$PAGE_REPORTING"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
# Freed pages handed back to the hypervisor at once make page-cache writes cost a host fault each (bench/run.sh).
if [[ -w $PAGE_REPORTING && $(cat "$PAGE_REPORTING") -lt 60000 ]]; then
  PAGE_REPORTING_SAVED=$(cat "$PAGE_REPORTING")
  echo 60000 >"$PAGE_REPORTING"
fi

for tool in gcc curl python3 sha256sum; do command -v $tool >/dev/null || { log "missing $tool"; exit 1; }; done
BIN="${CARGO_TARGET_DIR:-$REPO/target}/dist"
[[ ${BENCH_SKIP_BUILD:-0} == 1 ]] || bash "$REPO/scripts/build-dist" # as the image ships it: dist profile, PGO
TMP=$(mktemp -d /tmp/holdfast-floor.XXXXXX)
mkdir -p "$TMP/spool"
gcc -O2 -Wall -o "$TMP/relay" bench/floor/relay.c
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$BIN/holdfast-hash-upstream" --listen 127.0.0.1:0 >"$TMP/upstream.out" 2>&1 &
UPSTREAM_PID=$!
PIDS+=($!)
for _ in $(seq 50); do grep -q '^listening ' "$TMP/upstream.out" && break; sleep 0.1; done
UP=$(awk '/^listening /{n=split($2,a,":"); print a[n]; exit}' "$TMP/upstream.out")

declare -A PORT PID
RELAYS=("copy:1048576" "copy-spool:1048576" "copy-spool:65536")
for relay in "${RELAYS[@]}"; do
  PORT[$relay]=$(free_port)
  CHUNK=${relay#*:} "$TMP/relay" "${PORT[$relay]}" "$UP" "${relay%%:*}" "$TMP/spool" >"$TMP/relay.${relay%%:*}.${relay#*:}.out" 2>&1 &
  PID[$relay]=$!
  PIDS+=($!)
done
PORT[holdfast-tee]=$(free_port)
ADMIN=$(free_port)
RUST_LOG=warn "$BIN/holdfast-dataplane" --listen "127.0.0.1:${PORT[holdfast-tee]}" --listen-tls 127.0.0.1:0 \
  --admin "127.0.0.1:$ADMIN" --spool-dir "$TMP/spool" --access-log off >"$TMP/dataplane.log" 2>&1 &
PID[holdfast-tee]=$!
PIDS+=($!)
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$ADMIN/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS -X PUT --data-binary @- "http://127.0.0.1:$ADMIN/config" >/dev/null <<JSON
{"version":1,"hosts":[{"host":"","paths":[{"path":"/","pathType":"Prefix","backend":"up","policy":"tee"}]}],
 "backends":{"up":{"endpoints":[{"address":"127.0.0.1","port":$UP}]}},"policies":{"tee":{"mode":"Tee"}}}
JSON

head -c $((UPLOAD_MIB * 1048576)) /dev/urandom >"$TMP/body"
SUM=$(sha256sum "$TMP/body" | cut -c1-64)
# Fault in page cache for the spool files once, so that the first trial does not pay for it alone.
head -c $((2 * UPLOAD_MIB * 1048576)) /dev/zero >"$TMP/warm" && rm -f "$TMP/warm"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK_MS=$((1000 / $(getconf CLK_TCK)))
declare -A TIMES CPUS UPCPUS
NAMES=("${RELAYS[@]}" holdfast-tee)
upload() { # url -> seconds; the answer must carry the body's SHA-256
  local t
  t=$(curl -sS -H 'Expect:' -T "$TMP/body" -o "$TMP/answer" -w '%{time_total}' "$1/x")
  grep -q "$SUM" "$TMP/answer" || { log "wrong answer from $1: $(head -c 200 "$TMP/answer")"; exit 1; }
  echo "$t"
}
for round in $(seq "$ROUNDS"); do
  sync
  u0=$(cpu_ticks "$UPSTREAM_PID")
  TIMES[direct]+="$(upload "http://127.0.0.1:$UP") "
  UPCPUS[direct]+="$((($(cpu_ticks "$UPSTREAM_PID") - u0) * TICK_MS)) "
  for name in "${NAMES[@]}"; do
    sync
    c0=$(cpu_ticks "${PID[$name]}") u0=$(cpu_ticks "$UPSTREAM_PID")
    TIMES[$name]+="$(upload "http://127.0.0.1:${PORT[$name]}") "
    CPUS[$name]+="$((($(cpu_ticks "${PID[$name]}") - c0) * TICK_MS)) "
    UPCPUS[$name]+="$((($(cpu_ticks "$UPSTREAM_PID") - u0) * TICK_MS)) "
  done
  log "round $round of $ROUNDS done"
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
DIRECT=$(echo ${TIMES[direct]} | median)
printf '%-22s %8s %7s %13s %16s   %s\n' through median ratio "relay CPU ms" "upstream CPU ms" "times (s) | relay CPU (ms)"
printf '%-22s %8.3f %7s %13s %16s   %s\n' direct "$DIRECT" 1.00 - "$(echo ${UPCPUS[direct]} | median)" "${TIMES[direct]}"
for name in "${NAMES[@]}"; do
  m=$(echo ${TIMES[$name]} | median)
  printf '%-22s %8.3f %7.2f %13s %16s   %s| %s\n' "$name" "$m" "$(awk "BEGIN{print $m/$DIRECT}")" \
    "$(echo ${CPUS[$name]} | median)" "$(echo ${UPCPUS[$name]} | median)" "${TIMES[$name]}" "${CPUS[$name]}"
done

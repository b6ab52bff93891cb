#!/usr/bin/env bash
# Two builds of holdfast-dataplane side by side: 1 GiB uploads (Tee and Buffered) and small GETs, interleaved round
# by round (direct, A, B, direct, A, B, …) against one hash upstream, so that what the machine does meanwhile hits
# both alike. Prints, for each, the median seconds per upload and the dataplane's CPU per upload, and GET req/s.
# This is how a change is checked for a cost on the measured paths before bench/run.sh's targets.
#
#   bash bench/compare-builds.sh OLD_BIN_DIR NEW_BIN_DIR      # each with holdfast-dataplane (dist builds)
#   ROUNDS=10 UPLOAD_MIB=1024 GET_SECONDS=5 bash bench/compare-builds.sh …
#   NEW_ARGS="--access-log off" bash bench/compare-builds.sh …   # flags for one build only (OLD_ARGS likewise)
#
# The hash upstream comes from NEW_BIN_DIR. Traffic goes to 127.0.0.1 only; every process it starts is stopped by
# pid on exit and its temp dir is removed; each upload and each wrk run is bounded by `timeout`.
set -euo pipefail
OLD=${1:?usage: compare-builds.sh OLD_BIN_DIR NEW_BIN_DIR}
NEW=${2:?usage: compare-builds.sh OLD_BIN_DIR NEW_BIN_DIR}
ROUNDS=${ROUNDS:-8} UPLOAD_MIB=${UPLOAD_MIB:-1024} GET_SECONDS=${GET_SECONDS:-5}
# Flags for one build only (one may not know the other's), e.g. NEW_ARGS="--access-log off".
read -r -a OLD_ARGS <<<"${OLD_ARGS:-}"
read -r -a NEW_ARGS <<<"${NEW_ARGS:-}"
log() { printf '[compare %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
for tool in curl wrk python3 sha256sum; do command -v $tool >/dev/null || { log "missing $tool"; exit 1; }; done

PIDS=() TMP=""
PAGE_REPORTING=/sys/module/page_reporting/parameters/min_free_ms PAGE_REPORTING_SAVED=""
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
if [[ -w $PAGE_REPORTING && $(cat "$PAGE_REPORTING") -lt 300000 ]]; then
  PAGE_REPORTING_SAVED=$(cat "$PAGE_REPORTING")
  echo 300000 >"$PAGE_REPORTING"
fi

TMP=$(mktemp -d /tmp/holdfast-compare.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_seconds() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

"$NEW/holdfast-hash-upstream" --listen 127.0.0.1:0 >"$TMP/upstream.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q '^listening ' "$TMP/upstream.out" && break; sleep 0.1; done
UP=$(awk '/^listening /{print $2; exit}' "$TMP/upstream.out")
declare -A URL PID
start() { # name bin_dir [extra flags]
  local port admin
  port=$(free_port) admin=$(free_port)
  mkdir -p "$TMP/spool.$1"
  cat >"$TMP/snapshot.json" <<EOF
{"version":1,"hosts":[{"host":"","paths":[
  {"path":"/tee","pathType":"Prefix","backend":"up","policy":"tee"},
  {"path":"/","pathType":"Prefix","backend":"up","policy":"buffered"}]}],
 "backends":{"up":{"endpoints":[{"address":"${UP%:*}","port":${UP##*:}}]}},
 "policies":{"buffered":{"mode":"Buffered"},"tee":{"mode":"Tee"}}}
EOF
  RUST_LOG=warn "$2/holdfast-dataplane" --listen "127.0.0.1:$port" --listen-tls 127.0.0.1:0 --admin "127.0.0.1:$admin" \
    --spool-dir "$TMP/spool.$1" --max-requests-per-connection 1000000 --config-file "$TMP/snapshot.json" \
    "${@:3}" >"$TMP/$1.log" 2>&1 &
  PID[$1]=$!
  PIDS+=($!)
  URL[$1]="http://127.0.0.1:$port"
  for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$admin/readyz" 2>/dev/null && return; sleep 0.1; done
  log "$1 did not start: $(tail -3 "$TMP/$1.log")"
  exit 1
}
start old "$OLD" "${OLD_ARGS[@]}"
start new "$NEW" "${NEW_ARGS[@]}"
URL[direct]="http://$UP"

head -c $((UPLOAD_MIB << 20)) /dev/urandom >"$TMP/body"
SHA=$(sha256sum "$TMP/body" | cut -d' ' -f1)
head -c $((3 * (UPLOAD_MIB << 20))) /dev/zero >"$TMP/prefault" && rm -f "$TMP/prefault"
declare -A SECS CPU
upload() { # target path
  local c0=0 c1=0 meta code secs
  sync
  [[ $1 == direct ]] || c0=$(cpu_seconds "${PID[$1]}")
  meta=$(timeout 120 curl -sS -H 'Expect:' -T "$TMP/body" -o "$TMP/reply" -w '%{http_code} %{time_total}' \
    "${URL[$1]}$2" || echo "000 0")
  read -r code secs <<<"$meta"
  [[ $1 == direct ]] || c1=$(cpu_seconds "${PID[$1]}")
  if [[ $code != 200 ]] || ! grep -q "$SHA" "$TMP/reply"; then
    log "$1 $2: failed (HTTP $code)"
    return
  fi
  SECS[$1$2]+="$secs " CPU[$1$2]+="$(awk "BEGIN {print $c1 - $c0}") "
}
declare -A RPS
for round in $(seq "$ROUNDS"); do
  for target in direct old new; do
    upload "$target" /tee/upload
    [[ $target == direct ]] || upload "$target" /upload
    if [[ $target != direct ]]; then
      RPS[$target]+="$(timeout $((GET_SECONDS + 30)) wrk -t2 -c64 "-d${GET_SECONDS}s" "${URL[$target]}/" |
        awk '/^Requests\/sec/ {print $2}') "
    fi
  done
  log "round $round done"
done
printf '\n%-28s %10s %10s %10s\n' "median of $ROUNDS" direct old new
# shellcheck disable=SC2086 # word splitting of the recorded figures is intended
{
  printf '%-28s %10s %10s %10s\n' "Tee upload s" "$(median ${SECS[direct/tee/upload]})" \
    "$(median ${SECS[old/tee/upload]})" "$(median ${SECS[new/tee/upload]})"
  printf '%-28s %10s %10s %10s\n' "Tee dataplane CPU s" - "$(median ${CPU[old/tee/upload]})" \
    "$(median ${CPU[new/tee/upload]})"
  printf '%-28s %10s %10s %10s\n' "Buffered upload s" - "$(median ${SECS[old/upload]})" "$(median ${SECS[new/upload]})"
  printf '%-28s %10s %10s %10s\n' "Buffered dataplane CPU s" - "$(median ${CPU[old/upload]})" \
    "$(median ${CPU[new/upload]})"
  printf '%-28s %10s %10s %10s\n' "small GET req/s" - "$(median ${RPS[old]})" "$(median ${RPS[new]})"
}
echo
for key in "${!SECS[@]}"; do echo "  $key seconds: ${SECS[$key]} cpu: ${CPU[$key]:-}"; done | sort
for key in "${!RPS[@]}"; do echo "  $key GET req/s: ${RPS[$key]}"; done | sort

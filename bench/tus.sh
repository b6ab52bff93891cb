#!/usr/bin/env bash
# What resumability costs: one large random file (1 GiB by default) uploaded three ways, interleaved round by round,
# each answered by holdfast-hash-upstream's hash of what it received (or the reference's own hash):
#   (a) tus through Holdfast: tus-js-client (64 MiB PATCHes) to a route whose policy has `resumable: {}`, until the
#       final PATCH returns the backend's answer (Holdfast's one ordinary POST of the whole file to the upstream);
#   (b) a plain POST of the same file through the same Holdfast (route /plain, the default Buffered policy), curl -T;
#   (c) the same tus-js-client upload to the reference tus server, @tus/server with its file store
#       (tests/tus-clients/reference-server.mjs --hash: it reads the finished file back and answers the final PATCH
#       with its sha256, the work the upstream does in (a); REFERENCE_HASH=0 leaves tus's bare 204).
# Every answer's sha256 is checked against the file's. Prints seconds per round, the medians, the ratios and
# PASS/FAIL for the targets (on the median of the ratios of neighbouring runs):
#   Holdfast tus <= 1.3 x plain POST through Holdfast, both with curl as the client ((e) / (b));
#   Holdfast tus <= @tus/server, both with tus-js-client ((a) / (c)).
# Also, as (d), the volume's own time to write the file and fdatasync it (dd): the floor of what tus's durability
# adds, since each PATCH's bytes are on the disk before its 204 and a Buffered body never leaves the page cache;
# and, as (e), the tus upload through Holdfast with curl as the client (one PATCH per chunk): Holdfast's own share.
#
#   bash bench/tus.sh                         # builds target/dist only when it is missing (scripts/build-dist)
#   BENCH_SKIP_BUILD=1 ROUNDS=5 bash bench/tus.sh
#
# Times are the clients' own: tus-js-client's from its start to the final answer (the driver's "ms"), curl's
# time_total. A dataplane that does not speak tus yet fails (a) at its first try (404/502, or a 200 without Location
# when it proxies the tus POST; one that refuses the resumable policy runs without it): the script says so, goes on
# with (b) and (c), and exits 1 after the report.
#
# Traffic goes to 127.0.0.1 only; every process it starts is stopped by pid on exit and its temp dir removed; every
# run is bounded by `timeout`. Knobs: ROUNDS (3), SIZE_MIB (1024), CHUNK_MIB (64), RUN_TIMEOUT seconds per upload (120),
# REFERENCE_HASH (1), BENCH_SKIP_BUILD (1: never build), BENCH_BUILD (1: build even when target/dist has binaries),
# CARGO_TARGET_DIR.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
ROUNDS=${ROUNDS:-3} SIZE_MIB=${SIZE_MIB:-1024} CHUNK_MIB=${CHUNK_MIB:-64} RUN_TIMEOUT=${RUN_TIMEOUT:-120}
REFERENCE_HASH=${REFERENCE_HASH:-1}
SIZE=$((SIZE_MIB << 20)) CHUNK=$((CHUNK_MIB << 20))
log() { printf '[tus %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

missing=()
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || die "missing ${missing[*]}: install them (or run as root)"
  log "installing ${missing[*]}"
  timeout 300 apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "${missing[@]}" >/dev/null
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR=$REPO/$TARGET_DIR ;; esac
BIN=$TARGET_DIR/dist
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]] &&
  [[ ${BENCH_BUILD:-0} == 1 || ! -x $BIN/holdfast-dataplane || ! -x $BIN/holdfast-hash-upstream ]]; then
  bash scripts/build-dist
fi
for b in holdfast-dataplane holdfast-hash-upstream; do [[ -x $BIN/$b ]] || die "no $BIN/$b (scripts/build-dist)"; done
# A reused binary may predate the dataplane's tus code: say so, since (a) then fails for that reason alone.
built=$(stat -c %Y "$BIN/holdfast-dataplane") changed=$(git log -1 --format=%ct -- dataplane snapshot 2>/dev/null || echo 0)
((built >= changed)) || log "note: $BIN/holdfast-dataplane is older than the last commit to dataplane/ or snapshot/ (BENCH_BUILD=1 rebuilds)"
eval "$(scripts/tus-clients-setup)"
CLIENTS=$REPO/tests/tus-clients

PIDS=() TMP="" PAGE_REPORTING_SAVED=""
# The VM's free page reporting (see bench/run.sh and docs/benchmarks.md): freed pages handed back to the host at
# once cost a host fault each when touched again, ~2 s per GiB of page cache at random. Held for five minutes during
# the run (restored on exit), and the memory the trials use touched once first. BENCH_KEEP_PAGE_REPORTING=1 skips.
PAGE_REPORTING=/sys/module/page_reporting/parameters/min_free_ms
if [[ ${BENCH_KEEP_PAGE_REPORTING:-0} != 1 && -w $PAGE_REPORTING ]] && (($(cat "$PAGE_REPORTING") < 300000)); then
  PAGE_REPORTING_SAVED=$(cat "$PAGE_REPORTING")
  if (echo 300000 >"$PAGE_REPORTING") 2>/dev/null; then
    log "free page reporting: $PAGE_REPORTING $PAGE_REPORTING_SAVED -> 300000 for this run"
  else
    PAGE_REPORTING_SAVED=""
  fi
fi
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  [[ -n $TMP && -d $TMP ]] && rm -rf "$TMP"
  if [[ -n $PAGE_REPORTING_SAVED ]]; then
    echo "$PAGE_REPORTING_SAVED" >"$PAGE_REPORTING" && log "restored $PAGE_REPORTING to $PAGE_REPORTING_SAVED"
  fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
TMP=$(mktemp -d /tmp/holdfast-tus.XXXXXX)
mkdir -p "$TMP/spool" "$TMP/reference"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
# Waits for a line matching $2 in file $1 while process $3 lives (5 s at most); prints the line.
wait_line() {
  local _
  for _ in $(seq 50); do
    grep -m1 "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

log "writing $SIZE_MIB MiB of random bytes"
head -c "$SIZE" /dev/urandom >"$TMP/file"
SHA=$(sha256sum "$TMP/file" | cut -d' ' -f1)
mkdir -p "$TMP/chunks" && (cd "$TMP/chunks" && split -b "$CHUNK" -d -a 3 "$TMP/file" c)
log "pre-faulting $((3 * SIZE_MIB)) MiB of page cache"
head -c $((3 * SIZE)) /dev/zero >"$TMP/prefault.bin" && rm -f "$TMP/prefault.bin"

"$BIN/holdfast-hash-upstream" --listen 127.0.0.1:0 >"$TMP/upstream.out" 2>&1 &
PIDS+=($!)
UP_PORT=$(wait_line "$TMP/upstream.out" '^listening ' "$!" | awk '{n=split($2,a,":"); print a[n]}') ||
  die "the upstream did not start: $(tail -3 "$TMP/upstream.out")"

# /upload: tus (the policy's `resumable`); /plain: the default policy (Buffered), same upstream.
snapshot() { # with-tus(0|1)
  local policy="" policies=""
  if [[ $1 == 1 ]]; then policy=',"policy":"tus"' policies=',"policies":{"tus":{"resumable":{}}}'; fi
  cat <<EOF
{"version":1,"hosts":[{"host":"","paths":[
  {"path":"/upload","pathType":"Prefix","backend":"b"$policy},
  {"path":"/plain","pathType":"Prefix","backend":"b"}]}],
 "backends":{"b":{"endpoints":[{"address":"127.0.0.1","port":$UP_PORT}]}}$policies}
EOF
}
HF_PID="" HF_PORT=""
start_holdfast() { # with-tus(0|1)
  local admin _
  snapshot "$1" >"$TMP/snapshot.json"
  HF_PORT=$(free_port) admin=$(free_port)
  RUST_LOG=warn "$BIN/holdfast-dataplane" --listen "127.0.0.1:$HF_PORT" --listen-tls 127.0.0.1:0 \
    --admin "127.0.0.1:$admin" --spool-dir "$TMP/spool" --config-file "$TMP/snapshot.json" --shutdown-delay 0s \
    >"$TMP/holdfast.log" 2>&1 &
  HF_PID=$!
  PIDS+=("$HF_PID")
  for _ in $(seq 100); do
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$HF_PORT/plain" 2>/dev/null && return 0
    kill -0 "$HF_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
TUS_BROKEN="" REFUSED="" # why (a) failed, once it did; why the dataplane runs without the tus policy
if ! start_holdfast 1; then
  why=$(grep -m1 -o 'unknown field .resumable.' "$TMP/holdfast.log" || tail -1 "$TMP/holdfast.log")
  REFUSED="the dataplane refused the snapshot with a resumable policy ($why), so it runs one without: /upload is then proxied like /plain"
  log "$REFUSED"
  start_holdfast 0 || die "holdfast did not start: $(tail -3 "$TMP/holdfast.log")"
fi

ref_args=(--port 0 --dir "$TMP/reference/store" --path /files)
[[ $REFERENCE_HASH == 1 ]] && ref_args+=(--hash)
"$TUS_NODE" "$CLIENTS/reference-server.mjs" "${ref_args[@]}" >"$TMP/reference/out" 2>"$TMP/reference/err" &
PIDS+=($!)
REF_PORT=$(wait_line "$TMP/reference/out" '^listening ' "$!" | awk '{print $2}') ||
  die "the reference server did not start: $(tail -3 "$TMP/reference/err")"

# Checks one upload's answer; prints "ok SECONDS" or "fail REASON". Input: the tus driver's JSON line (tus) or
# curl's "STATUS SECONDS" with the body in $TMP/plain.body (plain).
judge() { # kind line
  python3 - "$1" "$2" "$SHA" "$SIZE" "$REFERENCE_HASH" "$TMP/plain.body" <<'EOF'
import json, sys
kind, line, sha, size, ref_hash, body_file = sys.argv[1:7]
def out(*words):
    print(*words)
    sys.exit(0)
if kind == "plain":
    status, seconds = (line.split() + ["", ""])[:2]
    body, ms = open(body_file, encoding="utf-8", errors="replace").read(), float(seconds or 0) * 1000
else:
    try:
        r = json.loads(line)
    except ValueError:
        out("fail", "no JSON from the client: " + (line[-200:] or "(nothing)"))
    if "error" in r:
        error = r["error"].split(", originated from request")[0]  # tus-js-client appends the request and response
        out("fail", "{} (status {}, body {!r})".format(error[:160], r.get("status"), (r.get("body") or "")[:120]))
    status, body, ms = str(r.get("status")), r.get("body") or "", r["ms"]
if not status.startswith("2"):
    out("fail", "status {}, body {!r}".format(status, body[:160]))
if kind == "reference" and ref_hash != "1":
    out("ok", "%.3f" % (ms / 1000))
try:
    answer = json.loads(body)
except ValueError:
    out("fail", "status {} but the body is not the upstream's JSON: {!r}".format(status, body[:160]))
if answer.get("sha256") != sha or int(answer.get("bytes", -1)) != int(size):
    out("fail", "the answer names {} bytes, sha256 {} (want {}, {})".format(answer.get("bytes"), answer.get("sha256"), size, sha))
out("ok", "%.3f" % (ms / 1000))
EOF
}
tus_upload() { # endpoint -> the driver's JSON line (or nothing after a timeout)
  timeout -k 5 "$RUN_TIMEOUT" "$TUS_NODE" "$CLIENTS/tusjs.mjs" --endpoint "$1" --file "$TMP/file" \
    --chunk-size "$CHUNK" --retry-delays none --metadata filename=bench.bin || true
}
# The same tus upload with curl as the client (one `curl -T` per 64 MiB chunk file, split once): Holdfast's own cost
# of tus, without tus-js-client's. Prints a JSON line shaped like the driver's.
curl_tus_upload() { # endpoint
  python3 - "$1" "$TMP/chunks" "$SIZE" "$RUN_TIMEOUT" <<'EOF'
import json, os, subprocess, sys, time
endpoint, chunks, size, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
started = time.monotonic()
def curl(*args):
    return subprocess.run(["curl", "-sS", "-H", "Tus-Resumable: 1.0.0", "-H", "Expect:", *args],
                          capture_output=True, text=True, timeout=limit).stdout
head = curl("-i", "-X", "POST", "-H", "Upload-Length: " + size, "-o", "-", endpoint)
location = next((l.split(":", 1)[1].strip() for l in head.splitlines() if l.lower().startswith("location:")), None)
if not location:
    print(json.dumps({"error": "no Location: " + head[:200]}))
    sys.exit(0)
offset, status, body = 0, "", ""
for name in sorted(os.listdir(chunks)):
    path = os.path.join(chunks, name)
    out = curl("-X", "PATCH", "-H", "Upload-Offset: %d" % offset, "-H", "Content-Type: application/offset+octet-stream",
               "-T", path, "-w", "\n%{http_code}", "-o", "-", location)
    body, _, status = out.rpartition("\n")
    offset += os.path.getsize(path)
print(json.dumps({"url": location, "status": int(status or 0), "body": body, "ms": (time.monotonic() - started) * 1000}))
EOF
}
run() { # target -> "ok SECONDS" | "fail REASON"
  local line
  case $1 in
    disk)
      # The volume's floor for keeping the file durably: what the tus PATCHes must write and sync, as dd does it.
      local t0 t1
      t0=$(date +%s.%N)
      timeout -k 5 "$RUN_TIMEOUT" dd if="$TMP/file" of="$TMP/spool/disk.bin" bs=4M conv=fdatasync status=none ||
        { echo "fail dd"; return; }
      t1=$(date +%s.%N)
      rm -f "$TMP/spool/disk.bin"
      awk -v a="$t0" -v b="$t1" 'BEGIN {printf "ok %.3f\n", b - a}'
      return
      ;;
    holdfast-tus) line=$(tus_upload "http://127.0.0.1:$HF_PORT/upload") ;;
    holdfast-tus-curl) line=$(curl_tus_upload "http://127.0.0.1:$HF_PORT/upload") ;;
    reference) line=$(tus_upload "http://127.0.0.1:$REF_PORT/files") ;;
    plain)
      # -T streams the file with a Content-Length (--data-binary would read it all into memory first); no
      # `Expect: 100-continue`, as the tus clients send none.
      if ! line=$(timeout -k 5 "$RUN_TIMEOUT" curl -sS -X POST -T "$TMP/file" -H 'Expect:' \
        -H 'Content-Type: application/octet-stream' -o "$TMP/plain.body" -w '%{http_code} %{time_total}' \
        "http://127.0.0.1:$HF_PORT/plain" 2>"$TMP/plain.err"); then
        echo "fail curl: $(tail -1 "$TMP/plain.err")${line:+ (after $line)}"
        return
      fi
      ;;
  esac
  [[ -n $line ]] || line="timed out after ${RUN_TIMEOUT}s"
  judge "$1" "$line"
}

TARGETS=(holdfast-tus plain reference disk holdfast-tus-curl)
declare -A SECS RATIO
FAILED=0
for round in $(seq "$ROUNDS"); do
  declare -A this=()
  # Each round starts with the next target, so that none always runs right after another.
  k=$((round % ${#TARGETS[@]}))
  for t in "${TARGETS[@]:k}" "${TARGETS[@]:0:k}"; do
    if [[ $t == holdfast-tus* && -n $TUS_BROKEN ]]; then continue; fi
    # The previous run's written pages reach the disk before this one starts, outside its time.
    timeout 120 sync || true
    read -r verdict detail < <(run "$t")
    if [[ $verdict != ok ]]; then
      log "round $round $t: FAILED: $detail"
      if [[ $t == holdfast-tus ]]; then
        TUS_BROKEN="tus through Holdfast failed in round $round: $detail"
        log "holdfast log, last lines:"
        tail -5 "$TMP/holdfast.log" >&2
        continue
      fi
      FAILED=1
      continue
    fi
    this[$t]=$detail
    SECS[$t]+="$detail "
    log "round $round $t: ${detail}s ($(awk -v s="$detail" -v m="$SIZE_MIB" 'BEGIN {printf "%.0f", s ? m / s : 0}') MiB/s)"
    # The reference keeps every upload; drop them so that the disk does not fill over the rounds.
    [[ $t == reference ]] && rm -rf "$TMP/reference/store"/*
  done
  if [[ -n ${this[holdfast-tus]:-} && -n ${this[plain]:-} ]]; then
    RATIO[tus_plain]+="$(awk -v a="${this[holdfast-tus]}" -v b="${this[plain]}" 'BEGIN {printf "%.4f", a / b}') "
  fi
  if [[ -n ${this[holdfast-tus-curl]:-} && -n ${this[plain]:-} ]]; then
    RATIO[curl_plain]+="$(awk -v a="${this[holdfast-tus-curl]}" -v b="${this[plain]}" 'BEGIN {printf "%.4f", a / b}') "
  fi
  if [[ -n ${this[holdfast-tus]:-} && -n ${this[reference]:-} ]]; then
    RATIO[tus_ref]+="$(awk -v a="${this[holdfast-tus]}" -v b="${this[reference]}" 'BEGIN {printf "%.4f", a / b}') "
  fi
done

# shellcheck disable=SC2086 # the recorded figures split on spaces
med() { if [[ -n ${1// /} ]]; then median $1; else echo "-"; fi; }
verdict() {
  if [[ $1 == - ]]; then echo "FAIL (no tus run)"; elif awk "BEGIN {exit !($1 $2)}"; then echo PASS; else echo FAIL; fi
}
mibs() { if [[ $1 == - ]]; then echo "-"; else awk -v s="$1" -v m="$SIZE_MIB" 'BEGIN {printf "%.0f", m / s}'; fi; }
m_tus=$(med "${SECS[holdfast-tus]:-}") m_plain=$(med "${SECS[plain]:-}") m_ref=$(med "${SECS[reference]:-}")
m_disk=$(med "${SECS[disk]:-}") m_curl=$(med "${SECS[holdfast-tus-curl]:-}")
r_plain=$(med "${RATIO[tus_plain]:-}") r_ref=$(med "${RATIO[tus_ref]:-}") r_curl=$(med "${RATIO[curl_plain]:-}")
tusjs=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$CLIENTS/node_modules/tus-js-client/package.json")
tusserver=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$CLIENTS/node_modules/@tus/server/package.json")
echo
echo "== $SIZE_MIB MiB upload: tus through Holdfast, a plain POST through Holdfast, @tus/server ($(date -u +'%Y-%m-%d %H:%M') UTC) =="
echo "tus-js-client $tusjs, $CHUNK_MIB MiB PATCHes; curl -T; @tus/server $tusserver + file store$([[ $REFERENCE_HASH == 1 ]] && echo ', hashing the file before its last answer'); $ROUNDS rounds, interleaved; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-58s %10s %8s\n' "medians" "seconds" "MiB/s"
printf '%-58s %10s %8s\n' "(a) tus through Holdfast (tus-js-client)" "$m_tus" "$(mibs "$m_tus")"
printf '%-58s %10s %8s\n' "(b) plain POST through Holdfast (curl -T, Buffered)" "$m_plain" "$(mibs "$m_plain")"
printf '%-58s %10s %8s\n' "(c) @tus/server + file store (tus-js-client)" "$m_ref" "$(mibs "$m_ref")"
printf '%-58s %10s %8s\n' "(d) the volume: the file written and synced (dd fdatasync)" "$m_disk" "$(mibs "$m_disk")"
printf '%-58s %10s %8s\n' "(e) tus through Holdfast, curl as the client (reported)" "$m_curl" "$(mibs "$m_curl")"
# The same client on both sides: curl. With tus-js-client as (a) the ratio measures Node against curl as much as
# Holdfast (tus-js-client spends ~1.4 s of its own CPU per GiB); (a)/(b) is reported beside it.
printf '%-58s %10s  %s\n' "(e) / (b): tus / plain, curl both, per-round median (<= 1.3)" "$r_curl" "$(verdict "$r_curl" "<= 1.3")"
printf '%-58s %10s  %s\n' "(a) / (b): tus-js-client / curl, per-round median" "$r_plain" "(reported)"
printf '%-58s %10s  %s\n' "(a) / (c): tus / @tus/server, same client, per-round (<= 1)" "$r_ref" "$(verdict "$r_ref" "<= 1.0")"
for t in "${TARGETS[@]}"; do echo "  $t seconds per round: ${SECS[$t]:-none}"; done
echo "  (d) is the floor durability adds: tus promises every byte on the disk (fdatasync) before its 204, a Buffered"
echo "  POST keeps its body in page cache only; the floor of tus/plain here is about (plain + disk - receive) / plain."
[[ -z $REFUSED ]] || echo "note: $REFUSED"
if [[ -n $TUS_BROKEN ]]; then
  echo "(a) did not complete, and was not tried again: $TUS_BROKEN"
  FAILED=1
fi
exit "$FAILED"

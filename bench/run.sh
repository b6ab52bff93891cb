#!/usr/bin/env bash
# Holdfast dataplane vs nginx (Debian's), side by side on loopback, against ONE hash upstream, in one run.
#
#   bash bench/run.sh              # full run: ~6 minutes after the build, prints the table at the end
#   BENCH_QUICK=1 bash bench/run.sh  # smoke run of the script itself (small sizes; figures meaningless)
#
# Measures: small GET requests/s and p99 (wrk; reported besides: nginx adding the forwarding headers Holdfast adds);
# 1 GiB upload in Buffered mode (MB/s, median of 9); completion time of a 1 GiB upload in Tee mode vs direct to the
# upstream (median of 9); RSS with 1,000 concurrent slow uploads (bench/slow_uploads.py). Traffic goes to 127.0.0.1
# only. Every process it starts is stopped by pid on exit and its temp dir is removed. Env knobs: BENCH_QUICK,
# BENCH_SLOW_CONNS, BENCH_SKIP_BUILD, BENCH_DEADLINE (s), BENCH_KEEP_TMP, CARGO_TARGET_DIR, BENCH_RUST_LOG (the
# dataplane's RUST_LOG; default warn; the dataplane runs with --access-log off, the counterpart of nginx access_log off;
# bench/access-log.sh measures both with their access logs on), HOLDFAST_PGO=off (scripts/build-dist
# without its training run).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
  WRK_SECONDS=3 WRK_ROUNDS=1 UPLOAD_MIB=64 TRIALS=3 SLOW_CONNS=100 SLOW_HOLD=4
else
  # 9 upload trials, not 5: single 1 GiB uploads on this kind of host spread by 15-30 % (a trial now and then takes
  # twice the CPU), and the median of 5 moved the Buffered and Tee ratios by as much as their margins (stop 14).
  WRK_SECONDS=10 WRK_ROUNDS=5 UPLOAD_MIB=1024 TRIALS=9 SLOW_CONNS=1000 SLOW_HOLD=10
fi
SLOW_CONNS=${BENCH_SLOW_CONNS:-$SLOW_CONNS}
WRK_ARGS=(-t2 -c64 "-d${WRK_SECONDS}s" --latency)
SLOW_BODY=$((4 * 1024 * 1024)) SLOW_INITIAL=$((320 * 1024))
DEADLINE=${BENCH_DEADLINE:-720}
NPROC=$(nproc)

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- cleanup: only what this script started, by pid
PIDS=()
TMP=""
WATCHDOG=""
PAGE_REPORTING=/sys/module/page_reporting/parameters/min_free_ms
PAGE_REPORTING_SAVED=""
cleanup() {
  local pid
  set +e
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [[ -n $WATCHDOG ]]; then
    pkill -TERM -P "$WATCHDOG" 2>/dev/null # its `sleep` child, selected by parent pid
    kill -TERM "$WATCHDOG" 2>/dev/null
  fi
  if [[ -n $TMP && -d $TMP ]]; then
    if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  fi
  if [[ -n $PAGE_REPORTING_SAVED ]]; then
    echo "$PAGE_REPORTING_SAVED" >"$PAGE_REPORTING" && log "restored $PAGE_REPORTING to $PAGE_REPORTING_SAVED"
  fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- the VM's free page reporting
# Some VMs (this project's CI and developer machines among them) hand every freed page back to the hypervisor at
# once (page_reporting min_free_ms=0). Touching such memory again costs a host fault per page: writing 1 GiB into a
# new file then takes ~2.5 s instead of ~0.3 s, at random, for whichever process next allocates page cache — nginx's
# temp file or Holdfast's spool alike, never the direct upload. A delay of a minute is not enough: a reporting pass
# then comes during the upload phase and hands back the pages the previous trials freed, and the next few Buffered
# trials of either proxy take 0.2-0.5 s more CPU (stop 15: four trials in a row, and a Buffered verdict of 0.979).
# So freed pages are kept for five minutes during the run (300000 ms, the most this module accepts: larger values are
# refused with EINVAL), the memory the trials will use is touched once before them, and the setting is restored on
# exit. BENCH_KEEP_PAGE_REPORTING=1 measures the machine as it is.
HOLD_FREED_MS=300000
HOLDING_FREED=0
if [[ ${BENCH_KEEP_PAGE_REPORTING:-0} != 1 && -w $PAGE_REPORTING ]]; then
  PAGE_REPORTING_SAVED=$(cat "$PAGE_REPORTING")
  if [[ $PAGE_REPORTING_SAVED -ge $HOLD_FREED_MS ]]; then
    HOLDING_FREED=1
    PAGE_REPORTING_SAVED=""
  elif (echo "$HOLD_FREED_MS" >"$PAGE_REPORTING") 2>/dev/null; then
    HOLDING_FREED=1
    log "free page reporting: $PAGE_REPORTING $PAGE_REPORTING_SAVED -> $HOLD_FREED_MS for this run"
  else
    log "free page reporting: $PAGE_REPORTING refused $HOLD_FREED_MS, left at $PAGE_REPORTING_SAVED (figures may be noisier)"
    PAGE_REPORTING_SAVED=""
  fi
fi

# ---------------------------------------------------------------- prerequisites
install_missing() {
  local missing=()
  command -v nginx >/dev/null || missing+=(nginx-light)
  command -v wrk >/dev/null || missing+=(wrk)
  command -v curl >/dev/null || missing+=(curl)
  command -v python3 >/dev/null || missing+=(python3)
  command -v ss >/dev/null || missing+=(iproute2)
  command -v ps >/dev/null || missing+=(procps)
  command -v sha256sum >/dev/null || missing+=(coreutils)
  ((${#missing[@]} == 0)) && return
  [[ $(id -u) == 0 ]] || die "missing ${missing[*]}: install them (apt-get install -y ${missing[*]}) or run as root"
  log "installing ${missing[*]}"
  timeout 300 apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "${missing[@]}" >/dev/null
}
install_missing

BIN="${CARGO_TARGET_DIR:-$REPO/target}/dist" # the profile the image ships (Cargo.toml)
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  log "scripts/build-dist: the dist profile with PGO, as the image ships it (target dir ${CARGO_TARGET_DIR:-./target})"
  bash "$REPO/scripts/build-dist"
fi
[[ -x $BIN/holdfast-hash-upstream ]] || die "$BIN/holdfast-hash-upstream is missing"
[[ -x $BIN/holdfast-dataplane ]] || die "$BIN/holdfast-dataplane is missing"

# The whole run after the build is bounded: the watchdog TERMs this shell, whose trap stops everything.
exec 3>&2 # the watchdog logs here; its own stderr is muted so that stopping it prints no job notice
{ sleep "$DEADLINE" && log "deadline of ${DEADLINE}s reached" 2>&3 && kill -TERM $$; } 2>/dev/null &
WATCHDOG=$!
disown "$WATCHDOG"

HARD_NOFILE=$(ulimit -Hn)
[[ $HARD_NOFILE == unlimited ]] && HARD_NOFILE=65536
ulimit -n $((HARD_NOFILE < 65536 ? HARD_NOFILE : 65536))
(($(ulimit -n) >= 4 * SLOW_CONNS)) || die "ulimit -n is $(ulimit -n): need at least $((4 * SLOW_CONNS))"

TMP=$(mktemp -d /tmp/holdfast-bench.XXXXXX)
chmod 755 "$TMP" # nginx workers drop to an unprivileged user and must reach their temp dir
mkdir -p "$TMP/nginx" "$TMP/spool" "$TMP/out"
chmod 755 "$TMP/nginx"
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- small helpers
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
median() {
  printf '%s\n' "$@" | { grep -E '^[0-9.]+$' || true; } | sort -g |
    awk '{a[NR]=$1} END { if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'
}
ratio() { [[ $1 == n/a || $2 == n/a ]] && echo n/a || calc "$1 / $2" 3; }
wait_for_line() { # file regex seconds
  local i
  for i in $(seq $((${3} * 10))); do grep -qE "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
http_body() { curl -sS --max-time 5 "$@" 2>/dev/null || true; }
wait_http_ok() { # url seconds
  local i
  for i in $(seq $((${2} * 10))); do curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
alive() { kill -0 "$1" 2>/dev/null; }
children() { ps -o pid= --ppid "$1" | tr -d ' '; }
cpu_seconds() { # sum of utime+stime of the given pids, in seconds
  local pid ticks=0
  for pid in "$@"; do
    [[ -r /proc/$pid/stat ]] && ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  calc "$ticks / $CLK_TCK" 2
}
status_kib() { # field pid...: sum of a /proc/PID/status field (VmRSS, VmHWM) in KiB
  local field=$1 pid sum=0 v
  shift
  for pid in "$@"; do
    v=$(awk -v f="$field:" '$1==f {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}
reset_peak() { local pid; for pid in "$@"; do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true; done; }

# ---------------------------------------------------------------- upstream
log "starting holdfast-hash-upstream"
"$BIN/holdfast-hash-upstream" --listen 127.0.0.1:0 >"$TMP/upstream.out" 2>"$TMP/upstream.err" &
UP_PID=$!
PIDS+=("$UP_PID")
wait_for_line "$TMP/upstream.out" '^listening ' 10 || die "upstream did not report its address: $(cat "$TMP/upstream.err")"
UP_PORT=$(awk '/^listening /{n=split($2,a,":"); print a[n]; exit}' "$TMP/upstream.out")
DIRECT_URL="http://127.0.0.1:$UP_PORT"
[[ $(http_body "$DIRECT_URL/") == ok ]] || die "upstream does not answer GET"

# ---------------------------------------------------------------- nginx
NGINX_PORT=$(free_port)
NGINX_FWD_PORT=$(free_port)
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes $NPROC;
worker_rlimit_nofile 16384;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/client_body;
    proxy_temp_path $TMP/nginx/proxy_temp;
    fastcgi_temp_path $TMP/nginx/fastcgi_temp;
    uwsgi_temp_path $TMP/nginx/uwsgi_temp;
    scgi_temp_path $TMP/nginx/scgi_temp;
    keepalive_requests 1000000;
    upstream up {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        client_max_body_size 0;
        client_body_buffer_size 128k;
        proxy_request_buffering on;
        # Reference for the Tee row only: nginx streaming the body (no spool, so no replay either).
        location /unbuffered/ {
            proxy_request_buffering off;
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
        }
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
        }
    }
    # Reference for the small-GET row only: the same proxying, plus the forwarding headers Holdfast always adds
    # (ingress-nginx adds these and more), so that both proxies do the same work per request.
    server {
        listen 127.0.0.1:$NGINX_FWD_PORT backlog=4096;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
            proxy_set_header X-Request-Id \$request_id;
        }
    }
}
EOF
log "starting nginx $(nginx -v 2>&1 | sed 's/.*\///') with $NPROC workers"
nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" -e "$TMP/nginx/error.log" -g 'daemon off;' \
  >"$TMP/nginx/stdout.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
NGINX_URL="http://127.0.0.1:$NGINX_PORT"
wait_http_ok "$NGINX_URL/" 10 || die "nginx did not come up: $(tail -5 "$TMP/nginx/error.log" "$TMP/nginx/stdout.log")"
[[ $(http_body "$NGINX_URL/") == ok ]] || die "nginx does not proxy GET"
nginx_pids() { echo "$NGINX_PID" $(children "$NGINX_PID"); }
nginx_workers() { children "$NGINX_PID"; }

# ---------------------------------------------------------------- holdfast dataplane
HF_PORT=$(free_port)
HF_ADMIN=$(free_port)
HF_URL="http://127.0.0.1:$HF_PORT"
HF_OK=0
HF_WHY=""
cat >"$TMP/snapshot.json" <<EOF
{"version":1,
 "hosts":[{"host":"","paths":[
   {"path":"/tee","pathType":"Prefix","backend":"up","policy":"tee"},
   {"path":"/","pathType":"Prefix","backend":"up","policy":"buffered"}]}],
 "backends":{"up":{"endpoints":[{"address":"127.0.0.1","port":$UP_PORT}]}},
 "policies":{"buffered":{"mode":"Buffered"},"tee":{"mode":"Tee"}}}
EOF
log "starting holdfast-dataplane"
RUST_LOG=${BENCH_RUST_LOG:-warn} "$BIN/holdfast-dataplane" --listen "127.0.0.1:$HF_PORT" \
  --admin "127.0.0.1:$HF_ADMIN" --listen-tls 127.0.0.1:0 --max-requests-per-connection 1000000 \
  --spool-dir "$TMP/spool" --access-log off >"$TMP/dataplane.log" 2>&1 &
HF_PID=$!
PIDS+=("$HF_PID")
if ! wait_http_ok "http://127.0.0.1:$HF_ADMIN/healthz" 20; then
  HF_WHY="admin /healthz never answered 200"
elif ! curl -fsS --max-time 10 -X PUT --data-binary @"$TMP/snapshot.json" "http://127.0.0.1:$HF_ADMIN/config" \
  >"$TMP/config.out" 2>&1; then
  HF_WHY="PUT /config failed: $(head -c 300 "$TMP/config.out")"
else
  for _ in $(seq 20); do [[ $(http_body "$HF_URL/") == ok ]] && HF_OK=1 && break; sleep 0.25; done
  ((HF_OK)) || HF_WHY="GET / through the dataplane did not answer ok (got: $(http_body -i "$HF_URL/" | head -c 200))"
fi
if ((HF_OK)); then log "dataplane proxies GET"; else
  log "dataplane NOT usable: $HF_WHY"
  alive "$HF_PID" || log "dataplane exited; last log lines: $(tail -5 "$TMP/dataplane.log")"
fi

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
LOAD1=${LOAD_START%% *}
awk "BEGIN { exit !($LOAD1 > 0.5) }" && log "warning: 1-min load average is $LOAD1 before measuring: the machine is not idle"

# CPU seconds used per phase, per process group, for hints when a target fails.
declare -A CPU
cpu_mark() { # phase suffix
  CPU[$1.hf]=$( ((HF_OK)) && cpu_seconds "$HF_PID" || echo 0)
  CPU[$1.nginx]=$(cpu_seconds $(nginx_pids))
  CPU[$1.up]=$(cpu_seconds "$UP_PID")
  # The machine's steal and total jiffies (/proc/stat): time the hypervisor gave to other guests while ours wanted
  # the CPU. On a shared host it swings from 1 % to 40 % within a minute, and a phase with much of it measures the
  # host rather than the proxies.
  read -r CPU[$1.steal] CPU[$1.jiffies] < <(awk '/^cpu / {print $9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
}
cpu_delta() { calc "${CPU[$2.$3]} - ${CPU[$1.$3]}" 1; } # from to who
steal_pct() { calc "100 * (${CPU[$2.steal]} - ${CPU[$1.steal]}) / (${CPU[$2.jiffies]} - ${CPU[$1.jiffies]})" 1; } # from to

# ---------------------------------------------------------------- 1. small GETs (wrk)
declare -A RPS P99 REQS NON2XX SOCKERR
run_wrk() { # name url round
  local out="$TMP/out/wrk.$1.$3"
  timeout $((WRK_SECONDS + 30)) wrk "${WRK_ARGS[@]}" "$2/" >"$out" 2>&1 || true
  RPS[$1.$3]=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  P99[$1.$3]=$(awk '$1=="99%" { v=$2; u=v; gsub(/[0-9.]/,"",u); sub(/[a-z]+$/,"",v);
    m = (u=="us") ? 0.001 : (u=="s") ? 1000 : (u=="m") ? 60000 : 1; printf "%.3f", v*m }' "$out")
  local reqs non2xx errs
  reqs=$(awk '/requests in/ {print $1; exit}' "$out")
  non2xx=$(awk '/Non-2xx/ {print $NF; exit}' "$out")
  errs=$(awk '/Socket errors/ {gsub(/,/,""); print $4+$6+$8+$10; exit}' "$out")
  REQS[$1]=$((${REQS[$1]:-0} + ${reqs:-0}))
  NON2XX[$1]=$((${NON2XX[$1]:-0} + ${non2xx:-0}))
  SOCKERR[$1]=$((${SOCKERR[$1]:-0} + ${errs:-0}))
  log "wrk $1 round $3: ${RPS[$1.$3]:-?} req/s, p99 ${P99[$1.$3]:-?} ms"
}
GET_TARGETS=(direct nginx)
((HF_OK)) && GET_TARGETS+=(holdfast)
declare -A URL=([direct]=$DIRECT_URL [nginx]=$NGINX_URL [holdfast]=$HF_URL)
for t in "${GET_TARGETS[@]}"; do timeout 30 wrk -t2 -c64 -d2s "${URL[$t]}/" >/dev/null 2>&1 || true; done # warm-up
cpu_mark get0
for round in $(seq "$WRK_ROUNDS"); do
  for t in "${GET_TARGETS[@]}"; do run_wrk "$t" "${URL[$t]}" "$round"; done
done
cpu_mark get1
# Reported only, after the CPU marks: nginx adding the same forwarding headers, interleaved with Holdfast again
# (`holdfast_again`, so that the main figures and the CPU per request above are not mixed with these rounds).
FWD_ROUNDS=$(((WRK_ROUNDS + 1) / 2))
if ((HF_OK)); then
  URL[nginx_fwd]="http://127.0.0.1:$NGINX_FWD_PORT" URL[holdfast_again]=$HF_URL
  for round in $(seq "$FWD_ROUNDS"); do
    for t in nginx_fwd holdfast_again; do run_wrk "$t" "${URL[$t]}" "$round"; done
  done
fi
declare -A GET_RPS GET_P99
for t in nginx_fwd holdfast_again; do
  vals=()
  for round in $(seq "$FWD_ROUNDS"); do vals+=("${RPS[$t.$round]:-}"); done
  GET_RPS[$t]=$(median "${vals[@]}")
done
for t in direct nginx holdfast; do
  vals=() lats=()
  for round in $(seq "$WRK_ROUNDS"); do vals+=("${RPS[$t.$round]:-}"); lats+=("${P99[$t.$round]:-}"); done
  GET_RPS[$t]=$(median "${vals[@]}")
  GET_P99[$t]=$(median "${lats[@]}")
done

# ---------------------------------------------------------------- 2+3. 1 GiB uploads: Buffered (MB/s) and Tee (s)
UPLOAD_BYTES=$((UPLOAD_MIB * 1024 * 1024))
log "writing a ${UPLOAD_MIB} MiB file from /dev/urandom"
head -c "$UPLOAD_BYTES" /dev/urandom >"$TMP/upload.bin"
UPLOAD_SHA=$(sha256sum "$TMP/upload.bin" | cut -d' ' -f1)
if ((HOLDING_FREED)); then
  # Memory handed back to the host before this run still faults on first touch: touch (and free) three uploads'
  # worth now, so that the first trials do not pay for it and the last ones not.
  log "pre-faulting $((3 * UPLOAD_MIB)) MiB of page cache"
  head -c $((3 * UPLOAD_BYTES)) /dev/zero >"$TMP/prefault.bin" && rm -f "$TMP/prefault.bin"
fi
declare -A UP_TIMES UP_FAILS
declare -A UP_CPU
upload_proxy_pids() { case $1 in nginx*) nginx_pids ;; hf_*) echo "$HF_PID" ;; esac; }
upload() { # name url trial: PUT the file, check the upstream's byte count and hash, record seconds
  local out="$TMP/out/upload.$1.$3" meta code secs p0 p1 u0 u1
  sync # start each trial with no dirty pages from the previous one
  # shellcheck disable=SC2046
  p0=$(cpu_seconds $(upload_proxy_pids "$1")) u0=$(cpu_seconds "$UP_PID")
  meta=$(timeout 400 curl -sS --max-time 360 -H 'Expect:' -T "$TMP/upload.bin" -o "$out" \
    -w '%{http_code} %{time_total}' "$2" 2>"$out.err" || true)
  read -r code secs <<<"${meta:-000 0}"
  # shellcheck disable=SC2046
  p1=$(cpu_seconds $(upload_proxy_pids "$1")) u1=$(cpu_seconds "$UP_PID")
  UP_CPU[$1]+="$(calc "$p1 - $p0" 2)/$(calc "$u1 - $u0" 2) "
  if [[ $code == 200 ]] && grep -q "\"bytes\":$UPLOAD_BYTES" "$out" && grep -q "\"sha256\":\"$UPLOAD_SHA\"" "$out"; then
    UP_TIMES[$1]+="$secs "
    log "upload $1 trial $3: ${secs}s ($(calc "$UPLOAD_BYTES / $secs / 1e6" 0) MB/s)"
  else
    UP_FAILS[$1]=$((${UP_FAILS[$1]:-0} + 1))
    log "upload $1 trial $3 FAILED: http $code after ${secs}s: $(head -c 200 "$out" 2>/dev/null) $(head -c 200 "$out.err")"
  fi
}
UPLOAD_TARGETS=(direct nginx nginx_unbuffered)
((HF_OK)) && UPLOAD_TARGETS+=(hf_buffered hf_tee)
declare -A UPLOAD_URL=([direct]=$DIRECT_URL/upload [nginx]=$NGINX_URL/upload
  [nginx_unbuffered]=$NGINX_URL/unbuffered/upload
  [hf_buffered]=$HF_URL/upload [hf_tee]=$HF_URL/tee/upload)
cpu_mark up0
for trial in $(seq "$TRIALS"); do
  for t in "${UPLOAD_TARGETS[@]}"; do upload "$t" "${UPLOAD_URL[$t]}" "$trial"; done
done
cpu_mark up1
# Real clients send `Expect: 100-continue` with large bodies (curl waits up to 1 s for the 100): check once each.
declare -A EXPECT_SECS
head -c $((8 * 1024 * 1024)) "$TMP/upload.bin" >"$TMP/expect.bin"
for t in nginx hf_buffered; do
  [[ $t == hf_buffered ]] && ! ((HF_OK)) && continue
  EXPECT_SECS[$t]=$(timeout 30 curl -sS --max-time 20 -o /dev/null -w '%{http_code} in %{time_total}s' \
    -T "$TMP/expect.bin" "${UPLOAD_URL[$t]}" 2>&1 || true)
done
rm -f "$TMP/upload.bin" "$TMP/expect.bin"
declare -A UP_MED UP_MBS
for t in direct nginx nginx_unbuffered hf_buffered hf_tee; do
  # shellcheck disable=SC2086 # word splitting of the recorded times is intended
  UP_MED[$t]=$(median ${UP_TIMES[$t]:-})
  UP_MBS[$t]=$([[ ${UP_MED[$t]} == n/a ]] && echo n/a || calc "$UPLOAD_BYTES / ${UP_MED[$t]} / 1e6" 0)
done

# ---------------------------------------------------------------- 4. RSS with slow uploads
declare -A SLOW_PEAK SLOW_MAXRSS SLOW_BASE SLOW_AFTER SLOW_READ SLOW_CONNS_SEEN SLOW_UPCONNS SLOW_SPOOLFDS SLOW_DONE
slow_test() { # name port pid-lister spool-path-substring
  local name=$1 port=$2 lister=$3 spool=$4 out="$TMP/out/slow.$1" pids cpid i rss max=0 sampled=0
  pids=$($lister)
  # shellcheck disable=SC2086
  reset_peak $pids
  # shellcheck disable=SC2086
  SLOW_BASE[$name]=$(status_kib VmRSS $pids)
  SLOW_UPCONNS[$name]="$(ss -tnH state established "( dport = :$UP_PORT )" | wc -l) before,"
  timeout $((SLOW_HOLD + 150)) python3 "$REPO/bench/slow_uploads.py" --port "$port" --connections "$SLOW_CONNS" \
    --body-size "$SLOW_BODY" --initial "$SLOW_INITIAL" --hold "$SLOW_HOLD" --ramp-timeout 90 >"$out" 2>&1 &
  cpid=$!
  PIDS+=("$cpid")
  if ! wait_for_line "$out" '^READY' 120; then log "slow uploads to $name never got READY: $(tail -3 "$out")"; fi
  log "slow uploads $name: $(grep '^READY' "$out" || echo 'not ready')"
  for i in $(seq $((SLOW_HOLD * 4 - 4))); do # sample every 0.25 s while every connection is held open
    grep -q '^CLOSING' "$out" && break
    pids=$($lister)
    # shellcheck disable=SC2086
    rss=$(status_kib VmRSS $pids)
    ((rss > max)) && max=$rss
    if ((i == SLOW_HOLD * 2)) && ((sampled == 0)); then
      sampled=1
      read -r SLOW_CONNS_SEEN[$name] SLOW_READ[$name] < <(ss -tni state established "( sport = :$port )" | awk '
        /^[0-9]/ { recvq = $1; n++; next }
        match($0, /bytes_received:[0-9]+/) { total += substr($0, RSTART + 15, RLENGTH - 15) - recvq }
        END { printf "%d %.0f\n", n, (n ? total / n / 1024 : 0) }')
      SLOW_UPCONNS[$name]+=" $(ss -tnH state established "( dport = :$UP_PORT )" | wc -l) mid-hold"
      SLOW_SPOOLFDS[$name]=$(for p in $pids; do ls -l "/proc/$p/fd" 2>/dev/null; done | grep -c -- "$spool" || true)
    fi
    sleep 0.25
  done
  pids=$($lister)
  # shellcheck disable=SC2086
  SLOW_PEAK[$name]=$(status_kib VmHWM $pids)
  SLOW_MAXRSS[$name]=$max
  for _ in $(seq $((4 * 60))); do alive "$cpid" || break; sleep 0.25; done
  wait "$cpid" 2>/dev/null || log "slow upload client for $name exited non-zero"
  SLOW_DONE[$name]=$(grep '^DONE' "$out" || echo "no DONE line: $(tail -2 "$out")")
  sleep 2
  pids=$($lister)
  # shellcheck disable=SC2086
  SLOW_AFTER[$name]=$(status_kib VmRSS $pids)
  log "slow uploads $name: peak ${SLOW_PEAK[$name]} KiB, ${SLOW_DONE[$name]}"
}
cpu_mark slow0
slow_test nginx "$NGINX_PORT" nginx_workers "$TMP/nginx/client_body"
((HF_OK)) && slow_test holdfast "$HF_PORT" "echo $HF_PID" "$TMP/spool"
cpu_mark slow1
if ((HF_OK)) && ! alive "$HF_PID"; then HF_WHY="the dataplane exited during the run"; fi

# ---------------------------------------------------------------- report
mb() { [[ -z ${1:-} ]] && echo n/a || calc "$1 / 1024" 0; } # KiB -> MiB
# Verdicts are taken on the exact quotients, never on the rounded ratios printed beside them (until stop 13 they were
# taken on ratios rounded to two decimals, so that 0.899 passed as 0.90).
verdict() { # ok-expression -> PASS/FAIL
  [[ $1 == *n/a* ]] && echo "FAIL (no figure)" && return
  awk "BEGIN { exit !($1) }" && echo PASS || echo FAIL
}
HF_GET=${GET_RPS[holdfast]} NG_GET=${GET_RPS[nginx]}
GET_RATIO=$(ratio "$HF_GET" "$NG_GET")
P99_RATIO=$(ratio "${GET_P99[holdfast]}" "${GET_P99[nginx]}")
# Throughput ratio from the median times (the same bytes), not from the MB/s column, which is rounded.
BUF_RATIO=$(ratio "${UP_MED[nginx]}" "${UP_MED[hf_buffered]}")
NGX_UP_RATIO=$(ratio "${UP_MED[nginx]}" "${UP_MED[direct]}")
BUF_TIME_RATIO=$(ratio "${UP_MED[hf_buffered]}" "${UP_MED[direct]}")
TEE_RATIO=$(ratio "${UP_MED[hf_tee]}" "${UP_MED[direct]}")
NGX_STREAM_RATIO=$(ratio "${UP_MED[nginx_unbuffered]}" "${UP_MED[direct]}")
HF_PEAK_MB=$(mb "${SLOW_PEAK[holdfast]:-}")
NG_PEAK_MB=$(mb "${SLOW_PEAK[nginx]:-}")
RSS_RATIO=$(ratio "$HF_PEAK_MB" "$NG_PEAK_MB")

echo
echo "== Holdfast dataplane vs nginx $(nginx -v 2>&1 | sed 's/.*\///'): loopback, one upstream, one run =="
echo "load average: at start of measurements $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews every figure)"
echo "machine: $NPROC cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -r); \
wrk ${WRK_ARGS[*]} x $WRK_ROUNDS rounds; uploads ${UPLOAD_MIB} MiB x $TRIALS; $SLOW_CONNS slow uploads"
((HF_OK)) || echo "DATAPLANE NOT MEASURED: $HF_WHY"
for phase in get up slow; do
  steal=$(steal_pct ${phase}0 ${phase}1)
  awk "BEGIN { exit !($steal > 5) }" &&
    echo "WARNING: the hypervisor took $steal % of the CPU time during the $phase phase (steal): its figures measure the host as much as the proxies"
done
[[ -n $HF_WHY ]] && ((HF_OK)) && echo "WARNING: $HF_WHY"
printf '\n%-44s %10s %10s %10s %9s  %-22s %s\n' metric direct nginx holdfast ratio target result
printf '%-44s %10s %10s %10s %9s  %-22s %s\n' "small GET req/s (median)" "${GET_RPS[direct]}" "$NG_GET" "$HF_GET" \
  "$GET_RATIO" "hf/nginx >= 0.9" "$(verdict "$HF_GET / $NG_GET >= 0.9")"
printf '%-44s %10s %10s %10s %9s  %-22s %s\n' "  (nginx adding the same forwarding headers)" "" \
  "${GET_RPS[nginx_fwd]}" "${GET_RPS[holdfast_again]}" "$(ratio "${GET_RPS[holdfast_again]}" "${GET_RPS[nginx_fwd]}")" \
  "(reported, $FWD_ROUNDS rounds)" ""
printf '%-44s %10s %10s %10s %9s  %-22s %s\n' "small GET p99 ms (median)" "${GET_P99[direct]}" "${GET_P99[nginx]}" \
  "${GET_P99[holdfast]}" "$P99_RATIO" "(reported)" ""
printf '%-44s %10s %10s %10s %9s  %-22s %s\n' "${UPLOAD_MIB} MiB upload, Buffered, MB/s (median)" "${UP_MBS[direct]}" \
  "${UP_MBS[nginx]}" "${UP_MBS[hf_buffered]}" "$BUF_RATIO" "hf/nginx >= 1.0" "$(verdict "${UP_MED[nginx]} / ${UP_MED[hf_buffered]} >= 1.0")"
printf '%-44s %10s %10s %10s %9s  %-22s %s\n' "${UPLOAD_MIB} MiB upload, Buffered, s (median)" "${UP_MED[direct]}" \
  "${UP_MED[nginx]}" "${UP_MED[hf_buffered]}" "" "(x direct: nginx $NGX_UP_RATIO, hf $BUF_TIME_RATIO)" ""
printf '%-44s %10s %10s %10s %9s  %-22s %s\n' "${UPLOAD_MIB} MiB upload, Tee, s (median)" "${UP_MED[direct]}" \
  "${UP_MED[nginx_unbuffered]}" "${UP_MED[hf_tee]}" "$TEE_RATIO" "hf/direct <= 1.2" "$(verdict "${UP_MED[hf_tee]} / ${UP_MED[direct]} <= 1.2")"
printf '%-44s %10s %10s %10s %9s  %-22s %s\n' "  (nginx column: proxy_request_buffering off)" "" "$NGX_STREAM_RATIO" "" "" \
  "(nginx unbuffered/direct)" ""

printf '%-44s %10s %10s %10s %9s  %-22s %s\n' "peak RSS MiB, $SLOW_CONNS slow uploads (VmHWM)" "-" "$NG_PEAK_MB" \
  "$HF_PEAK_MB" "$RSS_RATIO" "hf <= 300 MB" "$(verdict "${SLOW_PEAK[holdfast]:-n/a} * 1024 <= 300e6")"
echo
echo "details"
for t in direct nginx holdfast nginx_fwd holdfast_again; do
  printf '  wrk %-14s requests %s, non-2xx %s, socket errors %s, req/s per round: %s\n' "$t" "${REQS[$t]:-0}" \
    "${NON2XX[$t]:-0}" "${SOCKERR[$t]:-0}" "$(for r in $(seq "$WRK_ROUNDS"); do printf '%s ' "${RPS[$t.$r]:--}"; done)"
done
for t in direct nginx nginx_unbuffered hf_buffered hf_tee; do
  printf '  upload %-16s seconds per trial: %-30s failed: %s; CPU s proxy/upstream per trial: %s\n' "$t" \
    "${UP_TIMES[$t]:--}" "${UP_FAILS[$t]:-0}" "${UP_CPU[$t]:--}"
done
for t in nginx hf_buffered; do
  [[ -n ${EXPECT_SECS[$t]:-} ]] && printf '  8 MiB upload with Expect: 100-continue, %-12s %s\n' "$t" "${EXPECT_SECS[$t]}"
done
for t in nginx holdfast; do
  [[ -n ${SLOW_DONE[$t]:-} ]] || continue
  printf '  slow %-8s RSS before %s MiB, max sampled %s MiB, peak (VmHWM) %s MiB, 2 s after close %s MiB\n' "$t" \
    "$(mb "${SLOW_BASE[$t]}")" "$(mb "${SLOW_MAXRSS[$t]}")" "$(mb "${SLOW_PEAK[$t]}")" "$(mb "${SLOW_AFTER[$t]}")"
  printf '  slow %-8s mid-hold: %s client conns, mean %s KiB read by the proxy per conn, open conns to the upstream (all proxies): %s; %s open temp/spool files\n' \
    "$t" "${SLOW_CONNS_SEEN[$t]:-?}" "${SLOW_READ[$t]:-?}" "${SLOW_UPCONNS[$t]:-?}" "${SLOW_SPOOLFDS[$t]:-?}"
  printf '  slow %-8s client: %s\n' "$t" "${SLOW_DONE[$t]}"
done
printf '  CPU seconds (user+sys)   %-14s %-14s %-14s\n' GET-phase upload-phase slow-phase
for who in nginx hf up; do
  printf '    %-22s %-14s %-14s %-14s\n' "$who" "$(cpu_delta get0 get1 $who)" "$(cpu_delta up0 up1 $who)" \
    "$(cpu_delta slow0 slow1 $who)"
done
printf '    %-22s %-14s %-14s %-14s\n' "steal, % of the machine" "$(steal_pct get0 get1)" "$(steal_pct up0 up1)" \
  "$(steal_pct slow0 slow1)"
for t in nginx holdfast; do
  [[ ${REQS[$t]:-0} -gt 0 ]] || continue
  who=$([[ $t == holdfast ]] && echo hf || echo nginx)
  printf '  CPU per small GET, %-8s %s us\n' "$t" "$(calc "$(cpu_delta get0 get1 $who) * 1e6 / ${REQS[$t]}" 1)"
done
((HF_OK)) && { alive "$HF_PID" && echo "  dataplane still alive at the end" || echo "  DATAPLANE DIED during the run"; }
if ((HF_OK)); then
  sed 's/\x1b\[[0-9;]*m//g' "$TMP/dataplane.log" >"$TMP/dataplane.plain.log"
  printf '  dataplane log: %s ERROR lines, %s WARN lines, %s panics; most frequent WARN/ERROR messages:\n' \
    "$(grep -c ' ERROR ' "$TMP/dataplane.plain.log" || true)" "$(grep -c ' WARN ' "$TMP/dataplane.plain.log" || true)" \
    "$(grep -c 'panicked' "$TMP/dataplane.plain.log" || true)"
  grep -E ' (WARN|ERROR) ' "$TMP/dataplane.plain.log" | sed -E 's/^[^ ]+ +//; s/ request_id=[^ ]+//; s/ path=[^ ]+//' |
    sort | uniq -c | sort -rn | head -5 | cut -c1-200 | sed 's/^/    /'
fi
echo
exit 0

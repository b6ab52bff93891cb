#!/usr/bin/env bash
# gRPC and WebSocket through Holdfast's dataplane and through Debian's nginx, side by side on loopback, in one run,
# against the same real peers (holdfast-grpc-peer over h2c, holdfast-ws-peer), with a direct-to-peer reference.
#
#   bash bench/protocols.sh                           # ~4 minutes after the build; prints the table at the end
#   BENCH_TARGETS=nginx bash bench/protocols.sh       # nginx (and direct) only
#   BENCH_QUICK=1 BENCH_SKIP_BUILD=1 bash bench/protocols.sh   # smoke run of the script (figures meaningless)
#
# Targets (each PASS/FAIL on the exact quotients):
#   gRPC unary requests/s (h2load, gRPC-framed body, content-type application/grpc, te: trailers): Holdfast >= nginx
#   WebSocket 1 KiB echo round trip p99 (holdfast-ws-peer echo-bench): Holdfast <= 1.1 x nginx
#   memory per idle WebSocket tunnel, 5,000 open (RSS of the proxy's processes before and after, nginx's workers
#   summed): Holdfast <= 32 KiB
# Rounds are interleaved (direct, nginx, holdfast, direct, …) so that a change in the machine's load hits all alike.
# Traffic goes to 127.0.0.1 only. Every process it starts is stopped by pid on exit and its temp dir is removed; a
# watchdog bounds the run after the build. Env knobs: BENCH_TARGETS (default "nginx holdfast"; direct always runs),
# BENCH_QUICK, BENCH_SKIP_BUILD, BENCH_BIN_DIR (binaries; default $CARGO_TARGET_DIR/dist), BENCH_DEADLINE (s),
# BENCH_ROUNDS, BENCH_SECONDS (per h2load round), BENCH_IDLE_CONNS, BENCH_KEEP_TMP, BENCH_RUST_LOG (the
# dataplane's RUST_LOG; default warn; with --access-log off, the counterpart of nginx access_log off), HOLDFAST_PGO=off (build-dist).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

if [[ ${BENCH_QUICK:-0} == 1 ]]; then
  ROUNDS=1 H2_SECONDS=3 ECHO_MESSAGES=300 IDLE_CONNS=500
else
  ROUNDS=5 H2_SECONDS=10 ECHO_MESSAGES=10000 IDLE_CONNS=5000
fi
ROUNDS=${BENCH_ROUNDS:-$ROUNDS}
H2_SECONDS=${BENCH_SECONDS:-$H2_SECONDS}
IDLE_CONNS=${BENCH_IDLE_CONNS:-$IDLE_CONNS}
TARGETS=${BENCH_TARGETS:-nginx holdfast}
DEADLINE=${BENCH_DEADLINE:-900}
NPROC=$(nproc)
# 8 connections x 16 concurrent streams: a few busy gRPC clients. 10 echo connections, each one round trip at a time.
H2LOAD_ARGS=(-t1 -c8 -m16 "-D${H2_SECONDS}" --warm-up-time=1)
ECHO_CONNS=10 ECHO_SIZE=1024
# gRPC unary: one uncompressed 64-byte message (flag 0, big-endian length 64).
GRPC_MESSAGE_LEN=64

log() { printf '[protocols %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
want() { [[ " $TARGETS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- cleanup: only what this script started, by pid
PIDS=()
TMP=""
WATCHDOG=""
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
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- prerequisites
install_missing() {
  local missing=()
  command -v nginx >/dev/null || missing+=(nginx-light)
  command -v h2load >/dev/null || missing+=(nghttp2-client)
  command -v curl >/dev/null || missing+=(curl)
  command -v python3 >/dev/null || missing+=(python3)
  command -v ps >/dev/null || missing+=(procps)
  ((${#missing[@]} == 0)) && return
  [[ $(id -u) == 0 ]] || die "missing ${missing[*]}: install them (apt-get install -y ${missing[*]}) or run as root"
  log "installing ${missing[*]}"
  timeout 300 apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "${missing[@]}" >/dev/null
}
install_missing

TMP=$(mktemp -d /tmp/holdfast-protocols.XXXXXX)
chmod 755 "$TMP" # nginx workers drop to an unprivileged user and must reach their temp dir
mkdir -p "$TMP/nginx" "$TMP/spool" "$TMP/out"
chmod 755 "$TMP/nginx"

# Debian's nginx-light is built with the gRPC proxy module (nginx builds it unless told not to); should a build
# lack it, nginx-full has it.
nginx_has_grpc() {
  printf 'events {}\nhttp { server { listen 127.0.0.1:1 http2; location / { grpc_pass grpc://127.0.0.1:2; } } }\n' \
    >"$TMP/nginx/grpc-check.conf"
  nginx -t -q -c "$TMP/nginx/grpc-check.conf" -p "$TMP/nginx" -e "$TMP/nginx/grpc-check.log" 2>/dev/null
}
if ! nginx_has_grpc; then
  [[ $(id -u) == 0 ]] || die "this nginx has no grpc_pass: install nginx-full"
  log "this nginx has no grpc_pass: installing nginx-full"
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq nginx-full >/dev/null
  nginx_has_grpc || die "nginx still has no grpc_pass"
fi

BIN=${BENCH_BIN_DIR:-${CARGO_TARGET_DIR:-$REPO/target}/dist} # the profile the image ships (Cargo.toml)
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  log "scripts/build-dist: the dist profile with PGO, as the image ships it (target dir ${CARGO_TARGET_DIR:-./target})"
  bash "$REPO/scripts/build-dist"
fi
for b in holdfast-grpc-peer holdfast-ws-peer holdfast-dataplane; do
  [[ -x $BIN/$b ]] || die "$BIN/$b is missing (build it, or point BENCH_BIN_DIR at it)"
done

# The whole run after the build is bounded: the watchdog TERMs this shell, whose trap stops everything.
exec 3>&2 # the watchdog logs here; its own stderr is muted so that stopping it prints no job notice
{ sleep "$DEADLINE" && log "deadline of ${DEADLINE}s reached" 2>&3 && kill -TERM $$; } 2>/dev/null &
WATCHDOG=$!
disown "$WATCHDOG"

# Each idle tunnel holds a descriptor in the client, two in the proxy and one in the peer.
HARD_NOFILE=$(ulimit -Hn)
[[ $HARD_NOFILE == unlimited ]] && HARD_NOFILE=65536
ulimit -n $((HARD_NOFILE < 65536 ? HARD_NOFILE : 65536))
(($(ulimit -n) >= 3 * IDLE_CONNS)) || die "ulimit -n is $(ulimit -n): need at least $((3 * IDLE_CONNS))"

# ---------------------------------------------------------------- small helpers
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
median() {
  printf '%s\n' "$@" | { grep -E '^[0-9.]+$' || true; } | sort -g |
    awk '{a[NR]=$1} END { if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'
}
ratio() { [[ $1 == n/a || $2 == n/a ]] && echo n/a || calc "$1 / $2" 3; }
wait_for_line() { # file regex seconds
  for _ in $(seq $((${3} * 10))); do grep -qE "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
alive() { kill -0 "$1" 2>/dev/null; }
children() { ps -o pid= --ppid "$1" | tr -d ' '; }
rss_kib() { # sum of VmRSS of the given pids, in KiB
  local pid sum=0 v
  for pid in "$@"; do
    v=$(awk '$1=="VmRSS:" {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}
CLK_TCK=$(getconf CLK_TCK)
cpu_seconds() { # utime+stime of the given pids, in seconds
  local pid ticks=0
  for pid in "$@"; do
    [[ -r /proc/$pid/stat ]] && ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  calc "$ticks / $CLK_TCK" 2
}
port_of() { awk '/^listening /{n=split($2,a,":"); print a[n]; exit}' "$1"; }

# ---------------------------------------------------------------- the peers
log "starting holdfast-grpc-peer and holdfast-ws-peer"
"$BIN/holdfast-grpc-peer" --listen 127.0.0.1:0 --quiet >"$TMP/grpc-peer.out" 2>&1 &
GRPC_PID=$!
PIDS+=("$GRPC_PID")
# The ws peer's stdout gets a line per connection: 5,000 of them are nothing for a file.
"$BIN/holdfast-ws-peer" serve --listen 127.0.0.1:0 >"$TMP/ws-peer.out" 2>&1 &
WS_PID=$!
PIDS+=("$WS_PID")
wait_for_line "$TMP/grpc-peer.out" '^listening ' 10 || die "grpc peer did not start: $(cat "$TMP/grpc-peer.out")"
wait_for_line "$TMP/ws-peer.out" '^listening ' 10 || die "ws peer did not start: $(cat "$TMP/ws-peer.out")"
GRPC_PORT=$(port_of "$TMP/grpc-peer.out")
WS_PORT=$(port_of "$TMP/ws-peer.out")

printf '\x00\x00\x00\x00\x40' >"$TMP/unary.bin"
head -c "$GRPC_MESSAGE_LEN" /dev/zero | tr '\0' 'g' >>"$TMP/unary.bin"
UNARY_PATH=/holdfast.test.Echo/Unary
# One gRPC call with curl: the echo must come back byte for byte, with grpc-status 0 in the trailers.
grpc_works() { # port
  local out="$TMP/out/grpc-check.$1"
  timeout 10 curl -sS --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' \
    --data-binary @"$TMP/unary.bin" -D "$out.head" -o "$out.body" "http://127.0.0.1:$1$UNARY_PATH" 2>"$out.err" &&
    cmp -s "$out.body" "$TMP/unary.bin" && grep -qi '^grpc-status: 0' "$out.head"
}
ws_works() { # port
  timeout 20 "$BIN/holdfast-ws-peer" echo-bench --url "ws://127.0.0.1:$1/" --connections 1 --messages 1 \
    >"$TMP/out/ws-check.$1" 2>&1
}
grpc_works "$GRPC_PORT" || die "the grpc peer does not answer a unary call: $(cat "$TMP/out/grpc-check.$GRPC_PORT".*)"
ws_works "$WS_PORT" || die "the ws peer does not echo: $(cat "$TMP/out/ws-check.$WS_PORT")"

declare -A GRPC_URL=([direct]="http://127.0.0.1:$GRPC_PORT")
declare -A WS_URL=([direct]="ws://127.0.0.1:$WS_PORT/")
declare -A PROXY_PIDS_OF NOT_RUN
RUNNING=(direct)

# ---------------------------------------------------------------- nginx
start_nginx() {
  local grpc_listen ws_listen
  grpc_listen=$(free_port) ws_listen=$(free_port)
  cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes $NPROC;
worker_rlimit_nofile 65536;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/client_body;
    proxy_temp_path $TMP/nginx/proxy_temp;
    fastcgi_temp_path $TMP/nginx/fastcgi_temp;
    uwsgi_temp_path $TMP/nginx/uwsgi_temp;
    scgi_temp_path $TMP/nginx/scgi_temp;
    # nginx sends one gRPC call at a time on each upstream connection (no multiplexing): enough idle ones kept for
    # h2load's 128 concurrent calls, so that it is not measured opening connections.
    upstream grpc_peer {
        server 127.0.0.1:$GRPC_PORT;
        keepalive 256;
        keepalive_requests 1000000;
    }
    upstream ws_peer {
        server 127.0.0.1:$WS_PORT;
    }
    map \$http_upgrade \$connection_upgrade {
        default upgrade;
        ''      close;
    }
    server {
        listen 127.0.0.1:$grpc_listen http2 backlog=4096;
        http2_max_concurrent_streams 128;
        keepalive_requests 1000000;
        location / {
            grpc_pass grpc://grpc_peer;
        }
    }
    server {
        listen 127.0.0.1:$ws_listen backlog=4096;
        location / {
            proxy_pass http://ws_peer;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_set_header Host \$host;
            # Holdfast's tunnelIdleMs default: an hour.
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }
    }
}
EOF
  log "starting nginx $(nginx -v 2>&1 | sed 's/.*\///') with $NPROC workers"
  nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" -e "$TMP/nginx/error.log" -g 'daemon off;' \
    >"$TMP/nginx/stdout.log" 2>&1 &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  GRPC_URL[nginx]="http://127.0.0.1:$grpc_listen" WS_URL[nginx]="ws://127.0.0.1:$ws_listen/"
  PROXY_PIDS_OF[nginx]=nginx_workers
  local ok=0
  for _ in $(seq 50); do grpc_works "$grpc_listen" && ws_works "$ws_listen" && ok=1 && break; sleep 0.2; done
  ((ok)) || die "nginx does not proxy gRPC and WebSocket: $(tail -5 "$TMP/nginx/error.log")"
  RUNNING+=(nginx)
}
nginx_workers() { children "$NGINX_PID"; }

# ---------------------------------------------------------------- holdfast dataplane
start_holdfast() {
  local port admin
  port=$(free_port) admin=$(free_port)
  cat >"$TMP/snapshot.json" <<EOF
{"version":1,
 "hosts":[{"host":"","paths":[
   {"path":"/holdfast.test.Echo","pathType":"Prefix","backend":"grpc"},
   {"path":"/","pathType":"Prefix","backend":"ws"}]}],
 "backends":{
   "grpc":{"protocol":"Http2","endpoints":[{"address":"127.0.0.1","port":$GRPC_PORT}]},
   "ws":{"endpoints":[{"address":"127.0.0.1","port":$WS_PORT}]}}}
EOF
  log "starting holdfast-dataplane"
  RUST_LOG=${BENCH_RUST_LOG:-warn} "$BIN/holdfast-dataplane" --listen "127.0.0.1:$port" --admin "127.0.0.1:$admin" \
    --listen-tls 127.0.0.1:0 --max-requests-per-connection 1000000 --spool-dir "$TMP/spool" \
    --config-file "$TMP/snapshot.json" --access-log off >"$TMP/dataplane.log" 2>&1 &
  HF_PID=$!
  PIDS+=("$HF_PID")
  GRPC_URL[holdfast]="http://127.0.0.1:$port" WS_URL[holdfast]="ws://127.0.0.1:$port/"
  PROXY_PIDS_OF[holdfast]=holdfast_pids
  local up=0
  for _ in $(seq 100); do
    alive "$HF_PID" || break
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$admin/readyz" 2>/dev/null && up=1 && break
    sleep 0.1
  done
  if ((!up)); then
    # The error and its causes, not the backtrace that RUST_BACKTRACE may add after them.
    NOT_RUN[holdfast]="did not start: $(sed 's/\x1b\[[0-9;]*m//g' "$TMP/dataplane.log" | grep -v '^ *$' |
      sed '/^Stack backtrace/,$d' | tail -4 | tr '\n' ' ' | cut -c1-300)"
  elif ! grpc_works "$port"; then
    NOT_RUN[holdfast]="does not proxy a gRPC unary call (Http2 backend): $(head -c 300 "$TMP/out/grpc-check.$port.head" 2>/dev/null | tr '\r\n' '  ')"
  elif ! ws_works "$port"; then
    NOT_RUN[holdfast]="does not proxy a WebSocket: $(tail -2 "$TMP/out/ws-check.$port" | cut -c1-300)"
  else
    RUNNING+=(holdfast)
    return
  fi
  log "holdfast NOT measured: ${NOT_RUN[holdfast]}"
}
holdfast_pids() { echo "$HF_PID"; }

want nginx && start_nginx
want holdfast && start_holdfast
PROXIES=()
for t in "${RUNNING[@]}"; do [[ $t == direct ]] || PROXIES+=("$t"); done

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
LOAD1=${LOAD_START%% *}
awk "BEGIN { exit !($LOAD1 > 0.5) }" && log "warning: 1-min load average is $LOAD1 before measuring: the machine is not idle"
read -r STEAL0 JIFFIES0 < <(awk '/^cpu / {print $9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)

# ---------------------------------------------------------------- 1. gRPC unary requests/s (h2load)
declare -A RPS FAILED CPU_PER_CALL
grpc_round() { # target round
  local out="$TMP/out/h2load.$1.$2" c0 c1 done_requests
  # shellcheck disable=SC2046
  c0=$([[ $1 == direct ]] && echo 0 || cpu_seconds $(${PROXY_PIDS_OF[$1]}))
  timeout $((H2_SECONDS + 60)) h2load "${H2LOAD_ARGS[@]}" -H 'content-type: application/grpc' -H 'te: trailers' \
    -d "$TMP/unary.bin" "${GRPC_URL[$1]}$UNARY_PATH" >"$out" 2>&1 || true
  # shellcheck disable=SC2046
  c1=$([[ $1 == direct ]] && echo 0 || cpu_seconds $(${PROXY_PIDS_OF[$1]}))
  RPS[$1.$2]=$(awk '/^finished in/ {gsub(/,/, ""); print $4; exit}' "$out")
  done_requests=$(awk '/^requests:/ {print $8; exit}' "$out")
  FAILED[$1]=$((${FAILED[$1]:-0} + $(awk '/^requests:/ {print $10 + $12 + $14; exit}' "$out" || echo 0)))
  [[ -n $done_requests && $done_requests -gt 0 ]] &&
    CPU_PER_CALL[$1]+="$(calc "($c1 - $c0) * 1e6 / $done_requests" 1) "
  log "gRPC unary $1 round $2: ${RPS[$1.$2]:-?} req/s"
}
for t in "${RUNNING[@]}"; do # warm-up: connections, caches, the proxies' upstream pools
  timeout 30 h2load -t1 -c8 -m16 -n 5000 -H 'content-type: application/grpc' -H 'te: trailers' \
    -d "$TMP/unary.bin" "${GRPC_URL[$t]}$UNARY_PATH" >/dev/null 2>&1 || true
done
for round in $(seq "$ROUNDS"); do
  for t in "${RUNNING[@]}"; do grpc_round "$t" "$round"; done
done

# ---------------------------------------------------------------- 2. WebSocket echo round trips
declare -A P50 P99 MAXRT
echo_round() { # target round
  local out="$TMP/out/echo.$1.$2"
  timeout 300 "$BIN/holdfast-ws-peer" echo-bench --url "${WS_URL[$1]}" --connections "$ECHO_CONNS" \
    --messages "$ECHO_MESSAGES" --size "$ECHO_SIZE" >"$out" 2>&1 || true
  P50[$1.$2]=$(sed -n 's/.*"p50_us":\([0-9]*\).*/\1/p' "$out")
  P99[$1.$2]=$(sed -n 's/.*"p99_us":\([0-9]*\).*/\1/p' "$out")
  MAXRT[$1.$2]=$(sed -n 's/.*"max_us":\([0-9]*\).*/\1/p' "$out")
  log "WebSocket echo $1 round $2: p50 ${P50[$1.$2]:-?} us, p99 ${P99[$1.$2]:-?} us ($(tail -c 200 "$out" | tr '\n' ' '))"
}
for round in $(seq "$ROUNDS"); do
  for t in "${RUNNING[@]}"; do echo_round "$t" "$round"; done
done

# ---------------------------------------------------------------- 3. memory per idle tunnel
declare -A IDLE_BEFORE IDLE_AFTER IDLE_PER IDLE_NOTE
idle_tunnels() { # proxy
  local name=$1 out="$TMP/out/hold.$1" fifo="$TMP/hold.$1.in" hold_pid pids
  pids=$(${PROXY_PIDS_OF[$name]})
  # shellcheck disable=SC2086
  IDLE_BEFORE[$name]=$(rss_kib $pids)
  mkfifo "$fifo"
  # The client holds its tunnels until its stdin ends: when this, the only writer, is closed. Read-write, so that
  # the open does not wait for the client (a client that fails to start would leave it waiting).
  exec 5<>"$fifo"
  "$BIN/holdfast-ws-peer" hold --url "${WS_URL[$name]}" --connections "$IDLE_CONNS" <"$fifo" >"$out" 2>&1 5>&- &
  hold_pid=$!
  PIDS+=("$hold_pid")
  if wait_for_line "$out" "^open $IDLE_CONNS\$" 180; then
    sleep 2 # let the proxy finish with what the handshakes allocated
    pids=$(${PROXY_PIDS_OF[$name]})
    # shellcheck disable=SC2086
    IDLE_AFTER[$name]=$(rss_kib $pids)
    IDLE_PER[$name]=$(calc "(${IDLE_AFTER[$name]} - ${IDLE_BEFORE[$name]}) / $IDLE_CONNS" 1)
    log "idle tunnels via $name: RSS ${IDLE_BEFORE[$name]} -> ${IDLE_AFTER[$name]} KiB, ${IDLE_PER[$name]} KiB per tunnel"
  else
    IDLE_NOTE[$name]="the $IDLE_CONNS tunnels did not all open: $(tail -2 "$out" | cut -c1-200)"
    log "idle tunnels via $name: ${IDLE_NOTE[$name]}"
  fi
  exec 5>&-
  for _ in $(seq 100); do alive "$hold_pid" || break; sleep 0.1; done
  wait "$hold_pid" 2>/dev/null || true
}
for t in "${PROXIES[@]}"; do idle_tunnels "$t"; done
read -r STEAL1 JIFFIES1 < <(awk '/^cpu / {print $9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)

# ---------------------------------------------------------------- report
declare -A RPS_MED P50_MED P99_MED
for t in direct nginx holdfast; do
  rps=() p50=() p99=()
  for round in $(seq "$ROUNDS"); do
    rps+=("${RPS[$t.$round]:-}") p50+=("${P50[$t.$round]:-}") p99+=("${P99[$t.$round]:-}")
  done
  RPS_MED[$t]=$(median "${rps[@]}") P50_MED[$t]=$(median "${p50[@]}") P99_MED[$t]=$(median "${p99[@]}")
done
verdict() { # target ok-expression
  [[ " ${RUNNING[*]} " == *" $1 "* ]] || { echo "not run"; return; }
  [[ $2 == *n/a* ]] && echo "FAIL (no figure)" && return
  awk "BEGIN { exit !($2) }" && echo PASS || echo FAIL
}
HF_RPS=${RPS_MED[holdfast]} NG_RPS=${RPS_MED[nginx]}
HF_P99=${P99_MED[holdfast]} NG_P99=${P99_MED[nginx]}
HF_IDLE=${IDLE_PER[holdfast]:-n/a} NG_IDLE=${IDLE_PER[nginx]:-n/a}

echo
echo "== gRPC and WebSocket: Holdfast dataplane vs nginx $(nginx -v 2>&1 | sed 's/.*\///'), loopback, one run =="
echo "machine: $NPROC cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -r); $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "load average: at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg); hypervisor steal $(calc "100 * ($STEAL1 - $STEAL0) / ($JIFFIES1 - $JIFFIES0)" 1) %"
echo "h2load ${H2LOAD_ARGS[*]} x $ROUNDS rounds, ${GRPC_MESSAGE_LEN}-byte messages; echo-bench $ECHO_CONNS connections x $ECHO_MESSAGES round trips of $ECHO_SIZE bytes x $ROUNDS rounds; $IDLE_CONNS idle tunnels"
for t in "${!NOT_RUN[@]}"; do echo "$t NOT MEASURED: ${NOT_RUN[$t]}"; done
printf '\n%-40s %10s %10s %10s %9s  %-22s %s\n' metric direct nginx holdfast ratio target result
printf '%-40s %10s %10s %10s %9s  %-22s %s\n' "gRPC unary req/s (median)" "${RPS_MED[direct]}" "$NG_RPS" "$HF_RPS" \
  "$(ratio "$HF_RPS" "$NG_RPS")" "hf/nginx >= 1.0" "$(verdict holdfast "$HF_RPS / $NG_RPS >= 1.0")"
printf '%-40s %10s %10s %10s %9s  %-22s %s\n' "WebSocket 1 KiB echo p99 us (median)" "${P99_MED[direct]}" "$NG_P99" \
  "$HF_P99" "$(ratio "$HF_P99" "$NG_P99")" "hf/nginx <= 1.1" "$(verdict holdfast "$HF_P99 / $NG_P99 <= 1.1")"
printf '%-40s %10s %10s %10s %9s  %-22s %s\n' "WebSocket 1 KiB echo p50 us (median)" "${P50_MED[direct]}" \
  "${P50_MED[nginx]}" "${P50_MED[holdfast]}" "$(ratio "${P50_MED[holdfast]}" "${P50_MED[nginx]}")" "(reported)" ""
printf '%-40s %10s %10s %10s %9s  %-22s %s\n' "KiB per idle tunnel ($IDLE_CONNS open)" "-" "$NG_IDLE" "$HF_IDLE" \
  "$(ratio "$HF_IDLE" "$NG_IDLE")" "hf <= 32 KiB" "$(verdict holdfast "$HF_IDLE <= 32")"
echo
echo "details"
for t in direct nginx holdfast; do
  [[ " ${RUNNING[*]} " == *" $t "* ]] || continue
  printf '  %-9s gRPC req/s per round: %s; failed/errored/timed-out requests: %s; proxy CPU us per call: %s\n' "$t" \
    "$(for r in $(seq "$ROUNDS"); do printf '%s ' "${RPS[$t.$r]:--}"; done)" "${FAILED[$t]:-0}" \
    "$([[ $t == direct ]] && echo - || echo "${CPU_PER_CALL[$t]:--}")"
  printf '  %-9s echo p50/p99/max us per round: %s\n' "$t" \
    "$(for r in $(seq "$ROUNDS"); do printf '%s/%s/%s ' "${P50[$t.$r]:--}" "${P99[$t.$r]:--}" "${MAXRT[$t.$r]:--}"; done)"
done
for t in "${PROXIES[@]}"; do
  printf '  %-9s idle tunnels: RSS before %s KiB, with %s open %s KiB %s\n' "$t" "${IDLE_BEFORE[$t]:-?}" \
    "$IDLE_CONNS" "${IDLE_AFTER[$t]:-?}" "${IDLE_NOTE[$t]:-}"
done
if [[ " ${RUNNING[*]} " == *" holdfast "* ]]; then
  alive "$HF_PID" && echo "  dataplane still alive at the end" || echo "  DATAPLANE DIED during the run"
fi
echo
exit 0

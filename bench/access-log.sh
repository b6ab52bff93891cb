#!/usr/bin/env bash
# What seeing costs: small GETs through Holdfast's dataplane with its access log on (to a file) and metrics per
# route, against the same dataplane with both off, and against Debian's nginx with its default access log on (the
# `combined` format, to a file), interleaved round by round against one hash upstream. Prints requests/s per
# round and the proxy's CPU per request, the medians, the ratios and PASS/FAIL for issue 20's targets (on the median
# of the ratios of neighbouring runs):
#   Holdfast with both on >= 0.95 x Holdfast with both off;   Holdfast with both on >= 0.9 x nginx logging.
#
#   bash bench/access-log.sh                  # ~3 minutes after the build (scripts/build-dist, PGO)
#   BENCH_SKIP_BUILD=1 ROUNDS=9 bash bench/access-log.sh
#
# Traffic goes to 127.0.0.1 only; every process it starts is stopped by pid on exit and its temp dir removed; each
# wrk run is bounded by `timeout`. Knobs: ROUNDS (default 7), SECONDS_PER_ROUND (default 8), BENCH_SKIP_BUILD,
# CARGO_TARGET_DIR.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
ROUNDS=${ROUNDS:-7} SECS=${SECONDS_PER_ROUND:-8}
NPROC=$(nproc)
log() { printf '[access-log %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || die "missing ${missing[*]}: install them (or run as root)"
  log "installing ${missing[*]}"
  timeout 300 apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "${missing[@]}" >/dev/null
fi
BIN="${CARGO_TARGET_DIR:-$REPO/target}/dist"
[[ ${BENCH_SKIP_BUILD:-0} == 1 ]] || bash scripts/build-dist

PIDS=() TMP=""
cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  [[ -n $TMP && -d $TMP ]] && rm -rf "$TMP"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
TMP=$(mktemp -d /tmp/holdfast-access-log.XXXXXX)
mkdir -p "$TMP/nginx" "$TMP/spool.on" "$TMP/spool.off"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ok() { for _ in $(seq 100); do curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

"$BIN/holdfast-hash-upstream" --listen 127.0.0.1:0 >"$TMP/upstream.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q '^listening ' "$TMP/upstream.out" && break; sleep 0.1; done
UP_PORT=$(awk '/^listening /{n=split($2,a,":"); print a[n]; exit}' "$TMP/upstream.out")
[[ -n $UP_PORT ]] || die "the upstream did not start"

declare -A URL PID
# The snapshot names its Ingress and Service, as the controller's do, so that the route has its labelled series.
cat >"$TMP/snapshot.json" <<EOF
{"version":1,"hosts":[{"host":"","paths":[{"path":"/","pathType":"Prefix","backend":"apps/app:80",
  "ingress":{"namespace":"apps","name":"app"}}]}],
 "backends":{"apps/app:80":{"endpoints":[{"address":"127.0.0.1","port":$UP_PORT}],
  "service":{"namespace":"apps","name":"app","port":"80"}}}}
EOF
start_holdfast() { # name extra-args...
  local name=$1 port admin
  shift
  port=$(free_port) admin=$(free_port)
  RUST_LOG=warn "$BIN/holdfast-dataplane" --listen "127.0.0.1:$port" --listen-tls 127.0.0.1:0 \
    --admin "127.0.0.1:$admin" --spool-dir "$TMP/spool.$name" --max-requests-per-connection 1000000 \
    --config-file "$TMP/snapshot.json" "$@" >"$TMP/$name.log" 2>&1 &
  PIDS+=($!)
  PID[$name]=$!
  URL[$name]="http://127.0.0.1:$port/"
  wait_ok "${URL[$name]}" || die "holdfast ($name) did not start: $(tail -3 "$TMP/$name.log")"
}
start_holdfast on --access-log "$TMP/holdfast-access.log" --route-metrics on
start_holdfast off --access-log off --route-metrics off

NGINX_PORT=$(free_port)
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes $NPROC;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 8192; }
http {
    # nginx's default: the combined format, one write per request.
    access_log $TMP/nginx/access.log combined;
    keepalive_requests 1000000;
    upstream up { server 127.0.0.1:$UP_PORT; keepalive 64; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
        }
    }
}
EOF
nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" -e "$TMP/nginx/error.log" -g 'daemon off;' >/dev/null 2>&1 &
PIDS+=($!)
PID[nginx]=$!
URL[nginx]="http://127.0.0.1:$NGINX_PORT/"
wait_ok "${URL[nginx]}" || die "nginx did not start: $(tail -3 "$TMP/nginx/error.log")"

TARGETS=(off on nginx)
CLK_TCK=$(getconf CLK_TCK)
pids_of() { # the target's processes: the dataplane, or nginx's master and its workers
  if [[ $1 == nginx ]]; then echo "${PID[nginx]}" $(ps -o pid= --ppid "${PID[nginx]}"); else echo "${PID[$1]}"; fi
}
cpu_ticks() { # utime + stime of the target's processes, in clock ticks
  local pid ticks=0
  for pid in $(pids_of "$1"); do
    [[ -r /proc/$pid/stat ]] && ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$ticks"
}
declare -A RPS US RATIO
for t in "${TARGETS[@]}"; do timeout 30 wrk -t2 -c64 -d2s "${URL[$t]}" >/dev/null; done
for round in $(seq "$ROUNDS"); do
  declare -A this=()
  # Each round starts with the next target, so that none always runs right after another.
  k=$((round % ${#TARGETS[@]}))
  for t in "${TARGETS[@]:k}" "${TARGETS[@]:0:k}"; do
    c0=$(cpu_ticks "$t")
    out=$(timeout $((SECS + 30)) wrk -t2 -c64 "-d${SECS}s" "${URL[$t]}")
    c1=$(cpu_ticks "$t")
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    # The proxy's own CPU per request (user + system, µs): steadier than requests/s on a shared machine, because
    # time the machine gives to other guests or to wrk is not in it.
    us=$(awk -v c=$((c1 - c0)) -v n="${n:-0}" -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", n ? c / hz * 1e6 / n : 0}')
    this[$t]=${rps:-0}
    RPS[$t]+="${rps:-0} " US[$t]+="$us "
    log "round $round $t: ${rps:-?} req/s, ${us} µs CPU per request"
  done
  # Ratios of neighbouring runs, so that a slow minute of the machine weighs on both sides of a ratio.
  RATIO[on_off]+="$(awk -v a="${this[on]}" -v b="${this[off]}" 'BEGIN {printf "%.4f", b ? a / b : 0}') "
  RATIO[on_nginx]+="$(awk -v a="${this[on]}" -v b="${this[nginx]}" 'BEGIN {printf "%.4f", b ? a / b : 0}') "
done
# shellcheck disable=SC2086 # word splitting of the recorded figures is intended
{
  off=$(median ${RPS[off]}) on=$(median ${RPS[on]}) ngx=$(median ${RPS[nginx]})
  us_off=$(median ${US[off]}) us_on=$(median ${US[on]}) us_ngx=$(median ${US[nginx]})
  r_on_off=$(median ${RATIO[on_off]}) r_on_ngx=$(median ${RATIO[on_nginx]})
}
lines_hf=$(wc -l <"$TMP/holdfast-access.log") lines_ngx=$(wc -l <"$TMP/nginx/access.log")
ratio() { awk "BEGIN {printf \"%.3f\", $1 / $2}"; }
verdict() { awk "BEGIN {exit !($1)}" && echo PASS || echo FAIL; }
echo
echo "== small GETs: what the access log and the route metrics cost ($(date -u +'%Y-%m-%d %H:%M') UTC) =="
echo "wrk -t2 -c64 -d${SECS}s x $ROUNDS rounds, interleaved; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-58s %12s %12s\n' "medians" "req/s" "µs CPU/req"
printf '%-58s %12s %12s\n' "Holdfast, access log off, route metrics off" "$off" "$us_off"
printf '%-58s %12s %12s\n' "Holdfast, access log to a file, route metrics on" "$on" "$us_on"
printf '%-58s %12s %12s\n' "nginx, default access log (combined) to a file" "$ngx" "$us_ngx"
printf '%-58s %12s  %s\n' "on / off, median of per-round ratios (target >= 0.95)" "$r_on_off" "$(verdict "$r_on_off >= 0.95")"
printf '%-58s %12s  %s\n' "on / nginx, median of per-round ratios (target >= 0.9)" "$r_on_ngx" "$(verdict "$r_on_ngx >= 0.9")"
printf '%-58s %12s\n' "on / off, ratio of medians" "$(ratio "$on" "$off")"
printf '%-58s %12s\n' "on / nginx, ratio of medians" "$(ratio "$on" "$ngx")"
printf '%-58s %12s\n' "CPU per request, on / off (lower is cheaper)" "$(ratio "$us_on" "$us_off")"
printf '%-58s %12s\n' "CPU per request, on / nginx" "$(ratio "$us_on" "$us_ngx")"
echo "lines written: Holdfast $lines_hf, nginx $lines_ngx"
for t in "${TARGETS[@]}"; do echo "  $t per round: ${RPS[$t]}"; done
for t in "${TARGETS[@]}"; do echo "  $t µs CPU per request per round: ${US[$t]}"; done
echo "  on/off per round: ${RATIO[on_off]}"
echo "  on/nginx per round: ${RATIO[on_nginx]}"

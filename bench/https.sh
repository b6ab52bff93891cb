#!/usr/bin/env bash
# Small HTTPS requests, Holdfast's dataplane next to Debian's nginx, same certificate, same upstream, one run:
# HTTP/1.1 over TLS (wrk) and HTTP/2 over TLS (h2load, ALPN h2). Prints requests/s and the Holdfast/nginx ratios.
#
#   bash bench/https.sh                      # ~2 minutes after the build
#   BENCH_SKIP_BUILD=1 bash bench/https.sh   # use the binaries already in $CARGO_TARGET_DIR (default ./target)
#
# Traffic goes to 127.0.0.1 only; every process it starts is stopped by pid on exit; its temp dir is removed.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
NPROC=$(nproc)
ROUNDS=${BENCH_ROUNDS:-3}
SECONDS_PER_ROUND=${BENCH_SECONDS:-10}
H2_REQUESTS=${BENCH_H2_REQUESTS:-200000}

log() { printf '[https-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
PIDS=()
TMP=""
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [[ -n $TMP ]] && rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v openssl >/dev/null || missing+=(openssl)
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || die "missing ${missing[*]}: install them or run as root"
  log "installing ${missing[*]}"
  timeout 300 apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "${missing[@]}" >/dev/null
fi
BIN="${CARGO_TARGET_DIR:-$REPO/target}/dist" # the profile the image ships (Cargo.toml)
[[ ${BENCH_SKIP_BUILD:-0} == 1 ]] || bash "$REPO/scripts/build-dist" # as the image ships it: dist profile, PGO
TMP=$(mktemp -d /tmp/holdfast-https-bench.XXXXXX)
chmod 755 "$TMP"
mkdir -p "$TMP/nginx" "$TMP/spool"
chmod 755 "$TMP/nginx"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ok() { for _ in $(seq 100); do curl -ksf --max-time 2 "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

# One certificate for both proxies: ECDSA P-256, what rcgen and most ACME issuers hand out.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=bench.test \
  -addext subjectAltName=DNS:bench.test,IP:127.0.0.1 -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
chmod 644 "$TMP/key.pem"

"$BIN/holdfast-hash-upstream" --listen 127.0.0.1:0 >"$TMP/upstream.out" &
PIDS+=($!)
for _ in $(seq 50); do grep -q listening "$TMP/upstream.out" && break; sleep 0.1; done
UP=$(sed -n 's/^listening 127.0.0.1://p' "$TMP/upstream.out")
[[ -n $UP ]] || die "upstream did not start"

NGINX_PORT=$(free_port)
cat >"$TMP/nginx/nginx.conf" <<CONF
worker_processes $NPROC;
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
    http2_max_requests 1000000;
    upstream up { server 127.0.0.1:$UP; keepalive 64; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$NGINX_PORT ssl http2 backlog=4096;
        ssl_certificate $TMP/cert.pem;
        ssl_certificate_key $TMP/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
        }
    }
}
CONF
nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" -e "$TMP/nginx/error.log" -g 'daemon off;' >/dev/null 2>&1 &
PIDS+=($!)
wait_ok "https://127.0.0.1:$NGINX_PORT/" || die "nginx did not come up: $(tail -3 "$TMP/nginx/error.log")"

HF_TLS=$(free_port) HF_PLAIN=$(free_port) HF_ADMIN=$(free_port)
cat >"$TMP/snapshot.json" <<SNAP
{"version":1,"hosts":[{"host":"","paths":[{"path":"/","pathType":"Prefix","backend":"up"}]}],
 "backends":{"up":{"endpoints":[{"address":"127.0.0.1","port":$UP}]}}}
SNAP
RUST_LOG=warn "$BIN/holdfast-dataplane" --listen "127.0.0.1:$HF_PLAIN" --listen-tls "127.0.0.1:$HF_TLS" \
  --admin "127.0.0.1:$HF_ADMIN" --spool-dir "$TMP/spool" --config-file "$TMP/snapshot.json" \
  --max-requests-per-connection 1000000 --access-log off \
  --default-cert "$TMP/cert.pem" --default-key "$TMP/key.pem" >"$TMP/dataplane.log" 2>&1 &
PIDS+=($!)
wait_ok "https://127.0.0.1:$HF_TLS/" || die "dataplane did not come up: $(tail -3 "$TMP/dataplane.log")"

declare -A URL=([nginx]="https://127.0.0.1:$NGINX_PORT/" [holdfast]="https://127.0.0.1:$HF_TLS/")
declare -A H1 H2
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END { print (NR ? a[int((NR+1)/2)] : "n/a") }'; }
for t in nginx holdfast; do # warm-up
  timeout 30 wrk -t2 -c64 -d2s "${URL[$t]}" >/dev/null 2>&1 || true
done
for round in $(seq "$ROUNDS"); do
  for t in nginx holdfast; do
    h1=$(timeout $((SECONDS_PER_ROUND + 30)) wrk -t2 -c64 -d"${SECONDS_PER_ROUND}s" "${URL[$t]}" 2>&1 |
      awk '/^Requests\/sec:/ {print $2}')
    h2=$(timeout 120 h2load -n "$H2_REQUESTS" -c 64 -m 10 -t 2 "${URL[$t]}" 2>&1 |
      awk '/^finished in/ {gsub(/,/,""); print $4}')
    # h2load counts requests that got any response; check that all succeeded.
    H1[$t]+="${h1:-0} " H2[$t]+="${h2:-0} "
    log "round $round $t: HTTP/1.1+TLS ${h1:-?} req/s, HTTP/2+TLS ${h2:-?} req/s"
  done
done
h2_check=$(h2load -n 1000 -c 4 "${URL[holdfast]}" 2>&1 | awk '/^status codes:/ {print}')
log "holdfast HTTP/2 status codes over 1000 requests: $h2_check"

ratio() { awk "BEGIN { if ($2 > 0) printf \"%.2f\", $1 / $2; else print \"n/a\" }"; }
printf '\nmachine: %s cores; wrk -t2 -c64 -d%ss; h2load -n %s -c64 -m10 -t2; %s rounds, medians\n\n' \
  "$NPROC" "$SECONDS_PER_ROUND" "$H2_REQUESTS" "$ROUNDS"
printf '%-32s %12s %12s %8s\n' metric nginx holdfast ratio
for proto in H1 H2; do
  declare -n values=$proto
  n=$(median ${values[nginx]}) h=$(median ${values[holdfast]})
  name=$([[ $proto == H1 ]] && echo "HTTPS HTTP/1.1 small GET req/s" || echo "HTTPS HTTP/2 small GET req/s")
  printf '%-32s %12s %12s %8s\n' "$name" "$n" "$h" "$(ratio "$h" "$n")"
done

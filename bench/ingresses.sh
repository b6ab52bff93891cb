#!/usr/bin/env bash
# Thousands of Ingresses (issue 23): the release controller and dataplane with N Ingresses, each with its Service and
# an EndpointSlice of 10 endpoints, for N in $SIZES, read through the controller's `--from-dir` source (SOURCE=files,
# the default), its Kubernetes source (SOURCE=kube), or both in turn (SOURCE=both). Prints, per source and N: cold
# start to the last host served; convergence after editing one EndpointSlice (p50/p90/p99 over $EDITS edits, from the
# edit — the file's rename, or the PATCH sent to the API — to the first request answered by the new address); bytes
# pushed per change (the controller's metrics); controller and dataplane CPU per change (/proc/<pid>/stat, less
# their idle rate); peak RSS of each (VmHWM). At the largest N also small-GET requests/s against a second controller
# and dataplane with N = 1 (same 10 upstream addresses), in interleaved wrk rounds. PASS/FAIL on the targets at
# 5,000: convergence p99 <= 50 ms; cold start <= 3 s; bytes per one-slice change <= 16 KiB; controller peak RSS <=
# 128 MiB; GET req/s >= 0.95 x N = 1.
#
#   bash bench/ingresses.sh                            # builds with `cargo build --release` first
#   BENCH_SKIP_BUILD=1 SIZES="100 1000 5000" bash bench/ingresses.sh
#   BENCH_SKIP_BUILD=1 SOURCE=both bash bench/ingresses.sh
#
# The kube source reads, by default, bench/kube_api_double.py: a test double of the Kubernetes API server (lists,
# watches, patches; no auth) seeded with the same objects, on 127.0.0.1, one per pair, reached through a kubeconfig
# file (server http://127.0.0.1:PORT) in KUBECONFIG, the controller running out of cluster as it would from a laptop.
# The edits are merge PATCHes of the EndpointSlice, which the double turns into a MODIFIED watch event at once.
#
# With BENCH_KUBECONFIG=FILE the kube source reads the real API server FILE's current context names instead: each N
# gets a scratch namespace (holdfast-bench-RUN-…, deleted at the end, also on failure) and a scratch IngressClass
# with its own controller name, so that an installed Holdfast ignores them; objects are created with `kubectl apply
# --server-side`, the edits are the same PATCHes sent through `kubectl proxy` on 127.0.0.1. A real API server
# refuses EndpointSlice addresses in 127.0.0.0/8 (ValidateEndpointIP), so that mode needs BENCH_UPSTREAM_ADDRS: 10
# addresses of this machine outside 127.0.0.0/8 that the upstreams bind to (for example on a dummy interface:
# `ip link add hfbench type dummy && ip addr add 10.255.0.1/32 dev hfbench` … `10.255.0.10`), so that traffic still
# stays in this machine. The cluster's own nodes never send anything to them (the Services have no selector).
#
# The upstreams are 20 holdfast-hash-upstream processes: the 10 addresses (default 127.0.0.1-10) on one port answer
# 200 (every slice starts there) and on another answer 203 (where the edited slice moves to and from), so that a
# response's status says which address answered (to the probe's small POSTs; wrk's GETs are answered 200 by all).
# Client traffic goes to 127.0.0.0/8 only; every process this script starts is stopped by pid on exit and its temp
# dir removed; every wait, wrk run and kubectl call is bounded. Knobs: SOURCE (files, kube, both; default files),
# SIZES (default "100 1000 5000"), EDITS (default 30), ROUNDS (wrk rounds per side, default 5), SECONDS_PER_ROUND
# (default 5), BENCH_KUBECONFIG, BENCH_UPSTREAM_ADDRS, BENCH_DOUBLE_SECONDS (the double's own time limit, default
# 1200), BENCH_KEEP_TMP=1 (keep the temp dir and the processes' logs), BENCH_SKIP_BUILD, CARGO_TARGET_DIR.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
SIZES=${SIZES:-"100 1000 5000"} EDITS=${EDITS:-30} ROUNDS=${ROUNDS:-5} SECS=${SECONDS_PER_ROUND:-5}
REAL=${BENCH_KUBECONFIG:-} DOUBLE_SECONDS=${BENCH_DOUBLE_SECONDS:-1200}
log() { printf '[ingresses %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

case ${SOURCE:-files} in
  files | kube) SOURCES=("${SOURCE:-files}") ;;
  both) SOURCES=(files kube) ;;
  *) die "SOURCE must be files, kube or both, not ${SOURCE}" ;;
esac
read -r -a ADDRS <<<"${BENCH_UPSTREAM_ADDRS:-$(echo 127.0.0.{1..10})}"
((${#ADDRS[@]} == 10)) || die "BENCH_UPSTREAM_ADDRS must list 10 addresses, not ${#ADDRS[@]}"
if [[ -n $REAL && " ${SOURCES[*]} " == *" kube "* ]]; then
  [[ -r $REAL ]] || die "BENCH_KUBECONFIG=$REAL is not a readable file"
  # BENCH_ALLOW_LOOPBACK_SLICES=1 skips the check: for trying this path against an API test double started by hand.
  for a in "${ADDRS[@]}"; do
    [[ $a != 127.* || ${BENCH_ALLOW_LOOPBACK_SLICES:-0} == 1 ]] || die "a real API server refuses EndpointSlice addresses in 127.0.0.0/8: set" \
      "BENCH_UPSTREAM_ADDRS to 10 addresses of this machine outside it (see the top of this script)"
  done
fi

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || die "missing ${missing[*]}: install them (or run as root)"
  log "installing ${missing[*]}"
  timeout 300 apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[[ -z $REAL ]] || command -v kubectl >/dev/null || die "BENCH_KUBECONFIG is set but kubectl is missing"
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release"
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  timeout 3600 cargo build --release -p holdfast-controller -p holdfast-dataplane
fi
for b in holdfast-controller holdfast-dataplane holdfast-hash-upstream; do
  [[ -x $BIN/$b ]] || die "$BIN/$b is missing: build with cargo build --release"
done

PIDS=() TMP="" SCRATCH_NS=() RUN=$(date +%s)
kube() { timeout "${KUBECTL_SECONDS:-120}" kubectl --kubeconfig "$REAL" "$@"; }
cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  if [[ -n $REAL ]] && ((${#SCRATCH_NS[@]})); then
    log "deleting the scratch namespaces ${SCRATCH_NS[*]} and IngressClass holdfast-bench-$RUN (not waiting)"
    kube delete namespace "${SCRATCH_NS[@]}" --ignore-not-found --wait=false >/dev/null
    kube delete ingressclass "holdfast-bench-$RUN" --ignore-not-found --wait=false >/dev/null
  fi
  if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then
    log "kept $TMP (the processes' logs)"
  elif [[ -n $TMP && -d $TMP ]]; then
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
TMP=$(mktemp -d /tmp/holdfast-ingresses.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Stops one process of ours (by pid) and waits for it.
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_mib() { awk '/^VmHWM/{printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
# The first line of file $1 matching $2, waited for (up to 10 s) while process $3 lives.
await_line() {
  for _ in $(seq 200); do
    grep -m1 -- "$2" "$1" 2>/dev/null && return
    kill -0 "$3" 2>/dev/null || break
    sleep 0.05
  done
  return 1
}
TICKS=$(getconf CLK_TCK)
PROBE=(python3 "$REPO/bench/ingresses_probe.py")

# 20 upstreams: the 10 addresses at PORT_A (200) and at PORT_B (203).
PORT_A=$(free_port) PORT_B=$(free_port)
for i in "${!ADDRS[@]}"; do
  "$BIN/holdfast-hash-upstream" --listen "${ADDRS[$i]}:$PORT_A" >"$TMP/up-a$i.out" 2>&1 &
  PIDS+=($!)
  "$BIN/holdfast-hash-upstream" --listen "${ADDRS[$i]}:$PORT_B" --status 203 >"$TMP/up-b$i.out" 2>&1 &
  PIDS+=($!)
done
for f in "$TMP"/up-*.out; do
  for _ in $(seq 100); do grep -q '^listening ' "$f" && break; sleep 0.05; done
  grep -q '^listening ' "$f" || die "an upstream did not start (is its address on this machine?): $(cat "$f")"
done

# Writes N Ingresses into $1: ingress-I.yaml (Ingress and Service) and slice-I.yaml (its EndpointSlice). The kube
# source's objects are the same, from `bench/kube_api_double.py objects`.
generate() {
  python3 - "$1" "$2" "$PORT_A" "${ADDRS[@]}" <<'EOF'
import os, sys
d, n, port, addrs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
os.makedirs(d, exist_ok=True)
open(os.path.join(d, "class.yaml"), "w").write(
    "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: holdfast}\n"
    "spec: {controller: holdfast.io/ingress-controller}\n")
eps = "".join(f"  - {{addresses: [{a}], conditions: {{ready: true}}}}\n" for a in addrs)
for i in range(n):
    open(os.path.join(d, f"ingress-{i}.yaml"), "w").write(
        f"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: app-{i}, namespace: bench}}\n"
        f"spec:\n  ingressClassName: holdfast\n  rules:\n  - host: h{i}.bench.test\n    http:\n      paths:\n"
        f"      - {{path: /, pathType: Prefix, backend: {{service: {{name: app-{i}, port: {{number: 80}}}}}}}}\n"
        f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: app-{i}, namespace: bench}}\n"
        f"spec: {{ports: [{{name: http, port: 80}}]}}\n")
    open(os.path.join(d, f"slice-{i}.yaml"), "w").write(
        f"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\naddressType: IPv4\n"
        f"metadata: {{name: app-{i}-x, namespace: bench, labels: {{kubernetes.io/service-name: app-{i}}}}}\n"
        f"ports: [{{name: http, port: {port}}}]\nendpoints:\n{eps}")
EOF
}

declare -A DP_PID CTL_PID DP_PORT CTL_ADMIN API_PID API_BASE NS WHERE
PROXY_BASE=""
# `kubectl proxy` on 127.0.0.1, once: the probe's PATCHes reach the real API server through it.
start_proxy() {
  [[ -z $PROXY_BASE ]] || return 0
  kubectl --kubeconfig "$REAL" proxy --address 127.0.0.1 --port 0 >"$TMP/proxy.out" 2>&1 &
  PIDS+=($!)
  local line
  line=$(await_line "$TMP/proxy.out" 'Starting to serve on' $!) || die "kubectl proxy did not start: $(cat "$TMP/proxy.out")"
  PROXY_BASE="http://${line##* }"
}
# Puts N Ingresses where pair $1's controller reads them from source $2, and sets CTL_FROM (the controller's source
# flags) and CTL_KUBECONFIG.
prepare() { # name source n
  local name=$1 src=$2 n=$3 ns class controller
  CTL_KUBECONFIG=""
  if [[ $src == files ]]; then
    generate "$TMP/dir.$name" "$n"
    CTL_FROM=(--from-dir "$TMP/dir.$name") WHERE[$name]="--from-dir, $((2 * n + 1)) files"
    return
  fi
  if [[ -n $REAL ]]; then
    ns="holdfast-bench-$RUN-$name" class="holdfast-bench-$RUN" controller="holdfast.io/bench-$RUN"
  else
    ns=bench class=holdfast controller=holdfast.io/ingress-controller
  fi
  NS[$name]=$ns
  python3 bench/kube_api_double.py objects --ingresses "$n" --endpoint-port "$PORT_A" \
    --addresses "$(IFS=,; echo "${ADDRS[*]}")" --namespace "$ns" --class "$class" --controller "$controller" \
    >"$TMP/objects.$name.json"
  if [[ -n $REAL ]]; then
    start_proxy
    SCRATCH_NS+=("$ns")
    log "$name: kubectl apply --server-side of namespace $ns and its $((3 * n + 1)) objects"
    # --validate=false: no schema download (the objects are ours; the server still validates them as it stores them).
    KUBECTL_SECONDS=3600 kube apply --server-side --field-manager holdfast-bench --validate=false \
      -f "$TMP/objects.$name.json" >/dev/null
    CTL_KUBECONFIG=$REAL API_BASE[$name]=$PROXY_BASE
    WHERE[$name]="kube source, API server $(kube config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
  else
    python3 bench/kube_api_double.py serve --objects "$TMP/objects.$name.json" --time-limit "$DOUBLE_SECONDS" \
      >"$TMP/api.$name.out" 2>"$TMP/api.$name.log" &
    PIDS+=($!)
    API_PID[$name]=$!
    local line
    line=$(await_line "$TMP/api.$name.out" '^listening ' $!) || die "the API double did not start: $(cat "$TMP/api.$name.log")"
    line=${line#listening } API_BASE[$name]="http://${line%% *}"
    printf 'apiVersion: v1\nkind: Config\nclusters:\n- name: double\n  cluster: {server: "%s"}\nusers:\n- name: none\n  user: {}\ncontexts:\n- name: double\n  context: {cluster: double, user: none, namespace: %s}\ncurrent-context: double\n' \
      "${API_BASE[$name]}" "$ns" >"$TMP/kubeconfig.$name"
    CTL_KUBECONFIG=$TMP/kubeconfig.$name WHERE[$name]="kube source, API test double at ${API_BASE[$name]}"
  fi
  CTL_FROM=(--watch-namespace "$ns" --lease-namespace "$ns" --controller-name "$controller")
}
# Starts a dataplane (empty) and then a controller reading what `prepare` set; records the controller's start time
# in $TMP/$1.started.
start_pair() { # name source n
  local name=$1 admin
  prepare "$@"
  DP_PORT[$name]=$(free_port) admin=$(free_port) CTL_ADMIN[$name]=$(free_port)
  mkdir -p "$TMP/spool.$name"
  RUST_LOG=warn "$BIN/holdfast-dataplane" --listen "127.0.0.1:${DP_PORT[$name]}" --listen-tls 127.0.0.1:0 \
    --admin "127.0.0.1:$admin" --spool-dir "$TMP/spool.$name" --access-log off \
    --max-requests-per-connection 1000000 --shutdown-delay 0s --drain-timeout 5s >"$TMP/dp.$name.log" 2>&1 &
  PIDS+=($!)
  DP_PID[$name]=$!
  for _ in $(seq 100); do curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$admin/healthz" 2>/dev/null && break; sleep 0.05; done
  python3 -c 'import time; print(repr(time.time()))' >"$TMP/$name.started"
  # KUBECONFIG only for the kube source: it is how the controller finds the API, as kubectl does.
  env ${CTL_KUBECONFIG:+KUBECONFIG="$CTL_KUBECONFIG"} RUST_LOG=info "$BIN/holdfast-controller" "${CTL_FROM[@]}" \
    --dataplane-url "http://127.0.0.1:$admin/config" --admin "127.0.0.1:${CTL_ADMIN[$name]}" >"$TMP/ctl.$name.log" 2>&1 &
  PIDS+=($!)
  CTL_PID[$name]=$!
}
# Stops pair $1's controller; with the kube source also its API double, or deletes its scratch namespace.
stop_source() {
  local name=$1
  stop "${CTL_PID[$name]}"
  [[ -z ${API_PID[$name]:-} ]] || stop "${API_PID[$name]}"
  if [[ -n $REAL && -n ${NS[$name]:-} ]]; then
    KUBECTL_SECONDS=900 kube delete namespace "${NS[$name]}" --wait=true --timeout=600s >/dev/null ||
      log "namespace ${NS[$name]} not deleted yet; it is deleted again on exit"
  fi
}
metrics() { curl -fsS --max-time 5 "http://127.0.0.1:${CTL_ADMIN[$1]}/metrics"; }
pushed_bytes() { # name -> total body bytes pushed, all kinds
  metrics "$1" | awk '/^holdfast_controller_pushed_bytes_total/{s += $2} END {printf "%d", s}'
}
pushes_of() { # name kind
  metrics "$1" | awk -v k="kind=\"$2\"" 'index($0, "holdfast_controller_push_requests_total{" k "}") == 1 {print $2}'
}
# Watch lists since the start beyond each watch's first (kube-runtime's `Init` events), by kind: relists. Secrets
# are read by two watches (TLS and Opaque), every other kind by one.
relists() {
  metrics "$1" | awk '/^holdfast_controller_watch_events_total\{/ && /event="init"/ {
      match($0, /kind="[^"]*"/); k = substr($0, RSTART + 6, RLENGTH - 7); extra = $2 - (k == "Secret" ? 2 : 1)
      if (extra > 0) { printf "%s%s %d", sep, k, extra; sep = ", "; n += extra } }
    END { if (!n) printf "none" }'
}
percentile() { # p values... (nearest rank)
  local p=$1
  shift
  printf '%s\n' "$@" | sort -g | awk -v p="$p" '{a[NR]=$1} END {i = int((p * NR + 99) / 100); if (i < 1) i = 1; print a[i]}'
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "# bench/ingresses.sh $(date -u +%FT%TZ) on $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)," \
  "SOURCE=${SOURCE:-files}${REAL:+ (BENCH_KUBECONFIG: a real API server)}"
LAST=${SIZES##* } VERDICT=PASS
judge() { # what value op target
  if python3 -c "import sys; sys.exit(0 if $2 $3 $4 else 1)"; then echo "  PASS $1: $2 $3 $4"; else
    echo "  FAIL $1: $2 (target $3 $4)"
    VERDICT=FAIL
  fi
}

# The figures for source $1 at N = $2.
bench_one() {
  local src=$1 N=$2 name="$1-n$2" one="$1-n1"
  log "$name: preparing"
  rm -rf "$TMP/staging"
  mkdir -p "$TMP/staging"
  start_pair "$name" "$src" "$N"
  COLD=$(timeout 200 "${PROBE[@]}" cold "${DP_PORT[$name]}" "h$((N - 1)).bench.test" "$(cat "$TMP/$name.started")" 180)
  [[ $COLD != timeout ]] || die "$name: the last host was never served: $(tail -5 "$TMP/ctl.$name.log")"
  sleep 3 # let the start's work finish before the idle rate is taken
  c0=$(cpu_ticks "${CTL_PID[$name]}") d0=$(cpu_ticks "${DP_PID[$name]}")
  sleep 3
  c_idle=$(($(cpu_ticks "${CTL_PID[$name]}") - c0)) d_idle=$(($(cpu_ticks "${DP_PID[$name]}") - d0))
  b0=$(pushed_bytes "$name") full0=$(pushes_of "$name" full)
  c0=$(cpu_ticks "${CTL_PID[$name]}") d0=$(cpu_ticks "${DP_PID[$name]}") t0=$(date +%s.%N)
  if [[ $src == files ]]; then
    mapfile -t ROWS < <(timeout 600 "${PROBE[@]}" converge-file "${DP_PORT[$name]}" h0.bench.test \
      "$TMP/dir.$name/slice-0.yaml" "$TMP/staging" "$EDITS" "$PORT_A" "$PORT_B" 0.3)
  else
    mapfile -t ROWS < <(timeout 600 "${PROBE[@]}" converge-api "${DP_PORT[$name]}" h0.bench.test \
      "${API_BASE[$name]}" "${NS[$name]}" app-0-x "$EDITS" "$PORT_A" "$PORT_B" 0.3)
  fi
  sleep 0.5
  t1=$(date +%s.%N)
  c1=$(cpu_ticks "${CTL_PID[$name]}") d1=$(cpu_ticks "${DP_PID[$name]}")
  b1=$(pushed_bytes "$name") full1=$(pushes_of "$name" full)
  ((${#ROWS[@]} == EDITS)) || die "$name: convergence probe gave ${#ROWS[@]} of $EDITS figures"
  TIMES=() ACKS=()
  for row in "${ROWS[@]}"; do
    read -r took acked <<<"$row"
    TIMES+=("$took")
    [[ -z $acked ]] || ACKS+=("$acked")
  done
  [[ " ${TIMES[*]} " != *" timeout "* ]] || die "$name: an edit never reached the dataplane within 10 s"
  read -r CTL_CPU DP_CPU < <(python3 -c "
span = $t1 - $t0
for used, idle in (($c1 - $c0, $c_idle), ($d1 - $d0, $d_idle)):
    print(f'{max(0.0, (used - idle * span / 3) / $TICKS / $EDITS * 1000):.2f}', end=' ')
print()
")
  BYTES=$(((b1 - b0) / EDITS))
  P50=$(percentile 50 "${TIMES[@]}") P90=$(percentile 90 "${TIMES[@]}") P99=$(percentile 99 "${TIMES[@]}")
  CTL_HWM=$(hwm_mib "${CTL_PID[$name]}") DP_HWM=$(hwm_mib "${DP_PID[$name]}")
  echo "N=$N ingresses x 10 endpoints (${WHERE[$name]})"
  echo "  cold start to the last host served: ${COLD} s"
  echo "  convergence after one EndpointSlice edit (ms, $EDITS edits): p50 $P50  p90 $P90  p99 $P99"
  if ((${#ACKS[@]})); then
    echo "  the API's answer to the edit's PATCH (ms): p50 $(percentile 50 "${ACKS[@]}")  p99 $(percentile 99 "${ACKS[@]}");" \
      "watch relists: $(relists "$name");" \
      "controller warnings: $(grep -c 'WARN' "$TMP/ctl.$name.log" || true) ($(grep -c 'Watch failed' "$TMP/ctl.$name.log" || true) watch failures)"
  fi
  echo "  pushed per change: $BYTES bytes (full snapshots during the edits: $((full1 - full0)))"
  echo "  CPU per change: controller $CTL_CPU ms, dataplane $DP_CPU ms"
  echo "  peak RSS: controller $CTL_HWM MiB, dataplane $DP_HWM MiB"
  if [[ $N == "$LAST" ]]; then
    # N = 1 beside it, with the same 10 upstream addresses: only the route table differs.
    start_pair "$one" "$src" 1
    [[ $(timeout 40 "${PROBE[@]}" cold "${DP_PORT[$one]}" h0.bench.test "$(cat "$TMP/$one.started")" 30) != timeout ]] ||
      die "$one never served: $(tail -5 "$TMP/ctl.$one.log")"
    # The controllers (and API doubles) stop first: the dataplanes keep serving what they hold, and the larger
    # controller's work must not take CPU from one side of the comparison only.
    stop_source "$one"
    stop_source "$name"
    MID=$((N / 2))
    for t in "$name" "$one"; do timeout 30 wrk -t2 -c64 -d2s -H "Host: h$([[ $t == "$one" ]] && echo 0 || echo $MID).bench.test" "http://127.0.0.1:${DP_PORT[$t]}/" >/dev/null; done
    BIG=() ONE=() RATIOS=()
    for r in $(seq "$ROUNDS"); do
      for t in "$name" "$one"; do
        host="h$([[ $t == "$one" ]] && echo 0 || echo $MID).bench.test"
        out=$(timeout $((SECS + 30)) wrk -t2 -c64 "-d${SECS}s" -H "Host: $host" "http://127.0.0.1:${DP_PORT[$t]}/")
        grep -q "Non-2xx" <<<"$out" && die "wrk got non-2xx answers from $t: $out"
        rps=$(awk '/^Requests\/sec/{print $2}' <<<"$out")
        if [[ $t == "$one" ]]; then ONE+=("$rps"); else BIG+=("$rps"); fi
      done
      RATIOS+=("$(python3 -c "print(f'{${BIG[-1]} / ${ONE[-1]}:.3f}')")")
      log "round $r: N=$N ${BIG[-1]} req/s, N=1 ${ONE[-1]} req/s"
    done
    RATIO=$(median "${RATIOS[@]}")
    echo "  small GETs (wrk -t2 -c64 -d${SECS}s x $ROUNDS rounds, interleaved): N=$N median $(median "${BIG[@]}") req/s," \
      "N=1 median $(median "${ONE[@]}") req/s, median ratio $RATIO"
    stop "${DP_PID[$one]}"
    if [[ $N == 5000 ]]; then
      VERDICT=PASS
      echo "targets at N=5000 (${WHERE[$name]%%,*}):"
      judge "convergence p99 (ms)" "$P99" "<=" 50
      judge "cold start (s)" "$COLD" "<=" 3
      judge "bytes pushed per one-slice change" "$BYTES" "<=" 16384
      judge "controller peak RSS (MiB)" "$CTL_HWM" "<=" 128
      judge "GET req/s ratio N=5000 / N=1" "$RATIO" ">=" 0.95
      echo "$VERDICT"
    fi
  else
    stop_source "$name"
  fi
  stop "${DP_PID[$name]}"
  rm -rf "$TMP/dir.$name" "$TMP/objects.$name.json"
}

for N in $SIZES; do
  for src in "${SOURCES[@]}"; do
    bench_one "$src" "$N"
  done
done

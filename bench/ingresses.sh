#!/usr/bin/env bash
# Thousands of Ingresses (issue 23): the release controller (`--from-dir`) and dataplane with N Ingresses, each with
# its Service and an EndpointSlice of 10 endpoints, for N in $SIZES. Prints, per N: cold start to the last host
# served; convergence after editing one EndpointSlice (p50/p90/p99 over $EDITS edits, from the file's rename to the
# first request answered by the new address); bytes pushed per change (the controller's metrics); controller and
# dataplane CPU per change (/proc/<pid>/stat, less their idle rate); peak RSS of each (VmHWM). At the largest N also
# small-GET requests/s against a second controller and dataplane with N = 1 (same 10 upstream addresses), in
# interleaved wrk rounds. PASS/FAIL on the targets at 5,000: convergence p99 <= 50 ms; cold start <= 3 s; bytes per
# one-slice change <= 16 KiB; controller peak RSS <= 128 MiB; GET req/s >= 0.95 x N = 1.
#
#   bash bench/ingresses.sh                            # builds with `cargo build --release` first
#   BENCH_SKIP_BUILD=1 SIZES="100 1000 5000" bash bench/ingresses.sh
#
# The upstreams are 20 holdfast-hash-upstream processes: 127.0.0.1-10 on one port answer 200 (every slice starts
# there) and 127.0.0.1-10 on another answer 203 (where the edited slice moves to and from), so that a response's
# status says which address answered (to the probe's small POSTs; wrk's GETs are answered 200 by all). Traffic goes to 127.0.0.0/8 only; every process this script starts is
# stopped by pid on exit and its temp dir removed; every wait and wrk run is bounded. Knobs: SIZES (default
# "100 1000 5000"), EDITS (default 30), ROUNDS (wrk rounds per side, default 5), SECONDS_PER_ROUND (default 5),
# BENCH_SKIP_BUILD, CARGO_TARGET_DIR.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
SIZES=${SIZES:-"100 1000 5000"} EDITS=${EDITS:-30} ROUNDS=${ROUNDS:-5} SECS=${SECONDS_PER_ROUND:-5}
log() { printf '[ingresses %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

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
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release"
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  timeout 3600 cargo build --release -p holdfast-controller -p holdfast-dataplane
fi
for b in holdfast-controller holdfast-dataplane holdfast-hash-upstream; do
  [[ -x $BIN/$b ]] || die "$BIN/$b is missing: build with cargo build --release"
done

PIDS=() TMP=""
cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  [[ -n $TMP && -d $TMP ]] && rm -rf "$TMP"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
TMP=$(mktemp -d /tmp/holdfast-ingresses.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Stops one process of ours (by pid) and waits for it.
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_mib() { awk '/^VmHWM/{printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
TICKS=$(getconf CLK_TCK)

# The probe: cold start and convergence, timed in one process so that no fork sits in the measurement.
cat >"$TMP/probe.py" <<'EOF'
import http.client, os, sys, time

def status(conn_box, port, host):
    for _ in range(2):
        try:
            if conn_box[0] is None:
                conn_box[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            # A POST: holdfast-hash-upstream answers GETs 200 whatever its --status.
            conn_box[0].request("POST", "/", body=b"x", headers={"Host": host})
            r = conn_box[0].getresponse()
            r.read()
            return r.status
        except (OSError, http.client.HTTPException):
            conn_box[0] = None
    return None

def cold(port, host, started, limit):
    # `started` is the controller's start, in time.time() seconds.
    box = [None]
    while time.time() - started < limit:
        if status(box, port, host) == 200:
            print(f"{time.time() - started:.3f}")
            return
        time.sleep(0.005)
    print("timeout")

def converge(port, host, slice_file, staging, edits, port_a, port_b, settle):
    """Moves the slice between the 200 and the 203 upstreams `edits` times; prints each edit's convergence in ms."""
    text = open(slice_file).read()
    times = []
    for i in range(edits):
        to_b = i % 2 == 0
        new = text.replace(f"port: {port_a}}}", f"port: {port_b if to_b else port_a}}}")
        tmp = os.path.join(staging, "slice.tmp")
        with open(tmp, "w") as f:
            f.write(new)
        t0 = time.monotonic()
        os.rename(tmp, slice_file)
        took = wait_status_from(port, host, 203 if to_b else 200, 10, t0)
        times.append(took)
        time.sleep(settle)
    for t in times:
        print("timeout" if t is None else f"{t * 1000:.2f}")

def wait_status_from(port, host, want, limit, t0):
    """Polls (every 0.5 ms, for at most `limit` s after t0) until `host` answers `want`; seconds since t0, or None."""
    box = [None]
    while time.monotonic() - t0 < limit:
        if status(box, port, host) == want:
            return time.monotonic() - t0
        time.sleep(0.0005)
    return None

cmd = sys.argv[1]
if cmd == "cold":
    cold(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5]))
elif cmd == "converge":
    a = sys.argv
    converge(int(a[2]), a[3], a[4], a[5], int(a[6]), int(a[7]), int(a[8]), float(a[9]))
EOF

# 20 upstreams: 127.0.0.1-10 at PORT_A (200) and at PORT_B (203).
PORT_A=$(free_port) PORT_B=$(free_port)
for i in $(seq 1 10); do
  "$BIN/holdfast-hash-upstream" --listen "127.0.0.$i:$PORT_A" >"$TMP/up-a$i.out" 2>&1 &
  PIDS+=($!)
  "$BIN/holdfast-hash-upstream" --listen "127.0.0.$i:$PORT_B" --status 203 >"$TMP/up-b$i.out" 2>&1 &
  PIDS+=($!)
done
for f in "$TMP"/up-*.out; do
  for _ in $(seq 100); do grep -q '^listening ' "$f" && break; sleep 0.05; done
  grep -q '^listening ' "$f" || die "an upstream did not start: $(cat "$f")"
done

# Writes N Ingresses into $1: ingress-I.yaml (Ingress and Service) and slice-I.yaml (its EndpointSlice).
generate() {
  python3 - "$1" "$2" "$PORT_A" <<'EOF'
import os, sys
d, n, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.makedirs(d, exist_ok=True)
open(os.path.join(d, "class.yaml"), "w").write(
    "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: holdfast}\n"
    "spec: {controller: holdfast.io/ingress-controller}\n")
eps = "".join(f"  - {{addresses: [127.0.0.{k}], conditions: {{ready: true}}}}\n" for k in range(1, 11))
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

declare -A DP_PID CTL_PID DP_PORT CTL_ADMIN
# Starts a dataplane (empty) and then a controller on $2; records the controller's start time in $TMP/$1.started.
start_pair() { # name dir
  local name=$1 dir=$2 admin
  DP_PORT[$name]=$(free_port) admin=$(free_port) CTL_ADMIN[$name]=$(free_port)
  mkdir -p "$TMP/spool.$name"
  RUST_LOG=warn "$BIN/holdfast-dataplane" --listen "127.0.0.1:${DP_PORT[$name]}" --listen-tls 127.0.0.1:0 \
    --admin "127.0.0.1:$admin" --spool-dir "$TMP/spool.$name" --access-log off \
    --max-requests-per-connection 1000000 --shutdown-delay 0s --drain-timeout 5s >"$TMP/dp.$name.log" 2>&1 &
  PIDS+=($!)
  DP_PID[$name]=$!
  for _ in $(seq 100); do curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$admin/healthz" 2>/dev/null && break; sleep 0.05; done
  python3 -c 'import time; print(repr(time.time()))' >"$TMP/$name.started"
  RUST_LOG=info "$BIN/holdfast-controller" --from-dir "$dir" --dataplane-url "http://127.0.0.1:$admin/config" \
    --admin "127.0.0.1:${CTL_ADMIN[$name]}" >"$TMP/ctl.$name.log" 2>&1 &
  PIDS+=($!)
  CTL_PID[$name]=$!
}
pushed_bytes() { # name -> total body bytes pushed, all kinds
  curl -fsS --max-time 5 "http://127.0.0.1:${CTL_ADMIN[$1]}/metrics" |
    awk '/^holdfast_controller_pushed_bytes_total/{s += $2} END {printf "%d", s}'
}
pushes_of() { # name kind
  curl -fsS --max-time 5 "http://127.0.0.1:${CTL_ADMIN[$1]}/metrics" |
    awk -v k="kind=\"$2\"" 'index($0, "holdfast_controller_push_requests_total{" k "}") == 1 {print $2}'
}
percentile() { # p values... (nearest rank)
  local p=$1
  shift
  printf '%s\n' "$@" | sort -g | awk -v p="$p" '{a[NR]=$1} END {i = int((p * NR + 99) / 100); if (i < 1) i = 1; print a[i]}'
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "# bench/ingresses.sh $(date -u +%FT%TZ) on $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
LAST=${SIZES##* } VERDICT=PASS
judge() { # what value op target
  if python3 -c "import sys; sys.exit(0 if $2 $3 $4 else 1)"; then echo "  PASS $1: $2 $3 $4"; else
    echo "  FAIL $1: $2 (target $3 $4)"
    VERDICT=FAIL
  fi
}
for N in $SIZES; do
  log "N=$N: generating"
  rm -rf "$TMP/dir.$N" "$TMP/staging"
  mkdir -p "$TMP/staging"
  generate "$TMP/dir.$N" "$N"
  start_pair "n$N" "$TMP/dir.$N"
  COLD=$(timeout 200 python3 "$TMP/probe.py" cold "${DP_PORT[n$N]}" "h$((N - 1)).bench.test" "$(cat "$TMP/n$N.started")" 180)
  [[ $COLD != timeout ]] || die "N=$N: the last host was never served: $(tail -5 "$TMP/ctl.n$N.log")"
  sleep 3 # let the start's work finish before the idle rate is taken
  c0=$(cpu_ticks "${CTL_PID[n$N]}") d0=$(cpu_ticks "${DP_PID[n$N]}")
  sleep 3
  c_idle=$(($(cpu_ticks "${CTL_PID[n$N]}") - c0)) d_idle=$(($(cpu_ticks "${DP_PID[n$N]}") - d0))
  b0=$(pushed_bytes "n$N") full0=$(pushes_of "n$N" full)
  c0=$(cpu_ticks "${CTL_PID[n$N]}") d0=$(cpu_ticks "${DP_PID[n$N]}") t0=$(date +%s.%N)
  mapfile -t TIMES < <(timeout 600 python3 "$TMP/probe.py" converge "${DP_PORT[n$N]}" h0.bench.test \
    "$TMP/dir.$N/slice-0.yaml" "$TMP/staging" "$EDITS" "$PORT_A" "$PORT_B" 0.3)
  sleep 0.5
  t1=$(date +%s.%N)
  c1=$(cpu_ticks "${CTL_PID[n$N]}") d1=$(cpu_ticks "${DP_PID[n$N]}")
  b1=$(pushed_bytes "n$N") full1=$(pushes_of "n$N" full)
  ((${#TIMES[@]} == EDITS)) || die "N=$N: convergence probe gave ${#TIMES[@]} of $EDITS figures"
  [[ " ${TIMES[*]} " != *" timeout "* ]] || die "N=$N: an edit never reached the dataplane within 10 s"
  read -r CTL_CPU DP_CPU < <(python3 -c "
span = $t1 - $t0
for used, idle in (($c1 - $c0, $c_idle), ($d1 - $d0, $d_idle)):
    print(f'{max(0.0, (used - idle * span / 3) / $TICKS / $EDITS * 1000):.2f}', end=' ')
print()
")
  BYTES=$(((b1 - b0) / EDITS))
  P50=$(percentile 50 "${TIMES[@]}") P90=$(percentile 90 "${TIMES[@]}") P99=$(percentile 99 "${TIMES[@]}")
  CTL_HWM=$(hwm_mib "${CTL_PID[n$N]}") DP_HWM=$(hwm_mib "${DP_PID[n$N]}")
  echo "N=$N ingresses x 10 endpoints ($((2 * N + 1)) files)"
  echo "  cold start to the last host served: ${COLD} s"
  echo "  convergence after one EndpointSlice edit (ms, $EDITS edits): p50 $P50  p90 $P90  p99 $P99"
  echo "  pushed per change: $BYTES bytes (full snapshots during the edits: $((full1 - full0)))"
  echo "  CPU per change: controller $CTL_CPU ms, dataplane $DP_CPU ms"
  echo "  peak RSS: controller $CTL_HWM MiB, dataplane $DP_HWM MiB"
  if [[ $N == "$LAST" ]]; then
    # N = 1 beside it, with the same 10 upstream addresses: only the route table differs.
    generate "$TMP/dir.1" 1
    start_pair n1 "$TMP/dir.1"
    [[ $(timeout 40 python3 "$TMP/probe.py" cold "${DP_PORT[n1]}" h0.bench.test "$(cat "$TMP/n1.started")" 30) != timeout ]] ||
      die "N=1 never served"
    # The controllers stop first: the dataplanes keep serving what they hold, and the larger controller's periodic
    # re-scan of its files must not take CPU from one side of the comparison only.
    stop "${CTL_PID[n1]}"
    stop "${CTL_PID[n$N]}"
    MID=$((N / 2))
    for t in "n$N" n1; do timeout 30 wrk -t2 -c64 -d2s -H "Host: h$([[ $t == n1 ]] && echo 0 || echo $MID).bench.test" "http://127.0.0.1:${DP_PORT[$t]}/" >/dev/null; done
    BIG=() ONE=() RATIOS=()
    for r in $(seq "$ROUNDS"); do
      for t in "n$N" n1; do
        host="h$([[ $t == n1 ]] && echo 0 || echo $MID).bench.test"
        out=$(timeout $((SECS + 30)) wrk -t2 -c64 "-d${SECS}s" -H "Host: $host" "http://127.0.0.1:${DP_PORT[$t]}/")
        grep -q "Non-2xx" <<<"$out" && die "wrk got non-2xx answers from $t: $out"
        rps=$(awk '/^Requests\/sec/{print $2}' <<<"$out")
        if [[ $t == n1 ]]; then ONE+=("$rps"); else BIG+=("$rps"); fi
      done
      RATIOS+=("$(python3 -c "print(f'{${BIG[-1]} / ${ONE[-1]}:.3f}')")")
      log "round $r: N=$N ${BIG[-1]} req/s, N=1 ${ONE[-1]} req/s"
    done
    RATIO=$(median "${RATIOS[@]}")
    echo "  small GETs (wrk -t2 -c64 -d${SECS}s x $ROUNDS rounds, interleaved): N=$N median $(median "${BIG[@]}") req/s," \
      "N=1 median $(median "${ONE[@]}") req/s, median ratio $RATIO"
    stop "${DP_PID[n1]}"
    if [[ $N == 5000 ]]; then
      echo "targets at N=5000:"
      judge "convergence p99 (ms)" "$P99" "<=" 50
      judge "cold start (s)" "$COLD" "<=" 3
      judge "bytes pushed per one-slice change" "$BYTES" "<=" 16384
      judge "controller peak RSS (MiB)" "$CTL_HWM" "<=" 128
      judge "GET req/s ratio N=5000 / N=1" "$RATIO" ">=" 0.95
      echo "$VERDICT"
    fi
  fi
  stop "${CTL_PID[n$N]}"
  stop "${DP_PID[n$N]}"
  rm -rf "$TMP/dir.$N"
done

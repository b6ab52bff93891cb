#!/usr/bin/env python3
"""bench/ingresses.sh's probe: cold start and convergence, timed in one process so that no fork sits in the
measurement. Requests go to the dataplane on 127.0.0.1 with a Host header; the answer's status says which upstream
answered (200: the first set of addresses, 203: the second).

  cold PORT HOST STARTED LIMIT
      seconds from STARTED (time.time()) until HOST is answered 200, polling every 5 ms; `timeout` after LIMIT s.
  converge-file PORT HOST SLICE_FILE STAGING EDITS PORT_A PORT_B SETTLE
      moves the slice in SLICE_FILE between PORT_A and PORT_B EDITS times by renaming a rewritten copy over it;
      prints each edit's convergence in ms (from the rename to the first answer from the new port).
  converge-api PORT HOST API_BASE NAMESPACE SLICE EDITS PORT_A PORT_B SETTLE
      the same through a Kubernetes API (the test double, or a real one behind `kubectl proxy`): a merge PATCH of
      the EndpointSlice's ports; prints per edit `CONVERGENCE_MS API_ANSWER_MS` (from sending the PATCH to the first
      answer from the new port, and to the API's answer to the PATCH).
"""
import http.client
import json
import os
import sys
import time
import urllib.parse


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
    box = [None]
    while time.time() - started < limit:
        if status(box, port, host) == 200:
            print(f"{time.time() - started:.3f}")
            return
        time.sleep(0.005)
    print("timeout")


def wait_status_from(port, host, want, limit, t0):
    """Polls (every 0.5 ms, for at most `limit` s after t0) until `host` answers `want`; seconds since t0, or None."""
    box = [None]
    while time.monotonic() - t0 < limit:
        if status(box, port, host) == want:
            return time.monotonic() - t0
        time.sleep(0.0005)
    return None


def converge_file(port, host, slice_file, staging, edits, port_a, port_b, settle):
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
        times.append(wait_status_from(port, host, 203 if to_b else 200, 10, t0))
        time.sleep(settle)
    for t in times:
        print("timeout" if t is None else f"{t * 1000:.2f}")


def converge_api(port, host, api_base, namespace, name, edits, port_a, port_b, settle):
    base = urllib.parse.urlsplit(api_base)
    if base.hostname not in ("127.0.0.1", "localhost"):
        sys.exit(f"the API base must be on 127.0.0.1 (the double or kubectl proxy), not {api_base}")
    path = f"{base.path.rstrip('/')}/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/{name}"
    api = http.client.HTTPConnection("127.0.0.1", base.port, timeout=10)
    rows = []
    for i in range(edits):
        to_b = i % 2 == 0
        body = json.dumps({"ports": [{"name": "http", "port": port_b if to_b else port_a, "protocol": "TCP"}]})
        t0 = time.monotonic()
        for attempt in range(2):
            try:
                api.request("PATCH", path, body=body, headers={"Content-Type": "application/merge-patch+json"})
                answer = api.getresponse()
                text = answer.read()
                break
            except (OSError, http.client.HTTPException):
                # A kept-alive connection the server closed while we settled: once more on a new one.
                api.close()
                if attempt:
                    raise
        acked = time.monotonic() - t0
        if answer.status != 200:
            sys.exit(f"PATCH {path}: {answer.status} {text[:300]!r}")
        took = wait_status_from(port, host, 203 if to_b else 200, 10, t0)
        rows.append(("timeout" if took is None else f"{took * 1000:.2f}", f"{acked * 1000:.2f}"))
        time.sleep(settle)
    for took, acked in rows:
        print(took, acked)


def main():
    a = sys.argv
    if a[1] == "cold":
        cold(int(a[2]), a[3], float(a[4]), float(a[5]))
    elif a[1] == "converge-file":
        converge_file(int(a[2]), a[3], a[4], a[5], int(a[6]), int(a[7]), int(a[8]), float(a[9]))
    elif a[1] == "converge-api":
        converge_api(int(a[2]), a[3], a[4], a[5], a[6], int(a[7]), int(a[8]), int(a[9]), float(a[10]))
    else:
        sys.exit(f"unknown command {a[1]!r}")


if __name__ == "__main__":
    main()

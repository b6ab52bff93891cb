"""The chart's exec commands work against the real dataplane: the liveness probe passes at once, the readiness probe
only once a route snapshot is in force, and the controller's preStop wait lasts until the dataplane exits. Uses the dataplane binary `cargo build` left in target/ (scripts/test builds it first)."""

import os
import socket
import subprocess
import time
import urllib.request

import pytest

from holdfast_chart import ROOT, render


def dataplane_binary():
    candidates = [ROOT / "target" / profile / "holdfast-dataplane" for profile in ("debug", "release")]
    built = [p for p in candidates if p.exists()]
    if not built:
        pytest.skip("no holdfast-dataplane in target/: run cargo build -p holdfast-dataplane")
    return max(built, key=lambda p: p.stat().st_mtime)


def pod_commands(admin_port):
    """The dataplane's readiness and liveness probes and the controller's preStop wait, as rendered."""
    workload = next(o for o in render({"dataplane": {"adminPort": admin_port}}) if o["kind"] == "Deployment")
    containers = {c["name"]: c for c in workload["spec"]["template"]["spec"]["containers"]}
    dataplane = containers["dataplane"]
    return (dataplane["readinessProbe"]["exec"]["command"], dataplane["livenessProbe"]["exec"]["command"],
            containers["controller"]["lifecycle"]["preStop"]["exec"]["command"])


def wait_for_port(port, process, deadline=10.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        assert process.poll() is None, "the dataplane exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def free_port():
    # The dataplane takes the port by flag, so it is chosen here; a clash only fails this test, loudly.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_probes_pass_only_when_the_dataplane_is_alive_and_ready(tmp_path):
    binary = dataplane_binary()
    admin = free_port()
    readiness, liveness, controller_pre_stop = pod_commands(admin)
    process = subprocess.Popen(
        [binary, "--listen", f"127.0.0.1:{free_port()}", "--admin", f"127.0.0.1:{admin}", "--spool-dir", tmp_path],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
    try:
        wait_for_port(admin, process)
        assert subprocess.run(liveness, timeout=5).returncode == 0
        assert subprocess.run(readiness, timeout=5).returncode != 0, "ready before any snapshot"
        snapshot = (ROOT / "manifests" / "examples" / "local" / "snapshot.json").read_bytes()
        request = urllib.request.Request(f"http://127.0.0.1:{admin}/config", data=snapshot, method="PUT")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        assert subprocess.run(readiness, timeout=5).returncode == 0
        waiting = subprocess.Popen(controller_pre_stop)
        time.sleep(1.5)
        assert waiting.poll() is None, "the controller's preStop ended while the dataplane still runs"
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert waiting.wait(timeout=5) == 0, "the controller's preStop did not end when the dataplane exited"
    assert subprocess.run(liveness, timeout=5).returncode != 0, "alive after exit"

//! The real `holdfast-controller` binary, as a process: `--from-dir` on the shipped examples reaches a dataplane
//! (a test double of its admin API), a broken file is logged with its reason, SIGTERM stops it cleanly, and bad
//! flags fail at start.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::dataplane_double::DataplaneDouble;

const BIN: &str = env!("CARGO_BIN_EXE_holdfast-controller");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_example_manifests_and_logs_a_broken_file() {
    let dataplane = DataplaneDouble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/examples/local");
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let mut child = Command::new(BIN)
        .arg("--from-dir")
        .arg(dir.path())
        .args(["--admin", "127.0.0.1:0"])
        .env("HOLDFAST_DATAPLANE_URL", &dataplane.url)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let has_route = |s: &holdfast_snapshot::Snapshot| s.backends.contains_key("default/uploads:80");
    let first = dataplane.wait_for(Duration::from_secs(10), has_route).await;
    assert!(first.is_some(), "the example routes never reached the dataplane");

    std::fs::write(dir.path().join("ingress.yaml"), "kind: Ingress\napiVersion: networking.k8s.io/v1\nmetadata: [\n")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(has_route(&dataplane.in_force().unwrap()), "a broken file must keep the routes");

    // SIGTERM: the one shutdown path. The process must exit 0 promptly.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = wait_with_timeout(&mut child, Duration::from_secs(5));
    assert!(status.success(), "exit status {status:?}");
    let mut logs = String::new();
    child.stderr.take().unwrap().read_to_string(&mut logs).unwrap();
    assert!(logs.contains("Rejected a manifest file") && logs.contains("ingress.yaml"), "{logs}");
    assert!(logs.contains("Dataplane accepted the snapshot"), "{logs}");
}

#[test]
fn bad_flags_fail_at_start_with_the_reason() {
    let output = Command::new(BIN).args(["--from-dir", "/tmp", "--default-max-body-size", "huge"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--default-max-body-size") && stderr.contains("does not start with a number"), "{stderr}");

    let output =
        Command::new(BIN).args(["--from-dir", "/nonexistent/holdfast", "--admin", "127.0.0.1:0"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/holdfast"));
}

fn wait_with_timeout(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the controller did not exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

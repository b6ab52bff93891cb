//! SIGTERM to the real binary: unready at once, uploads in flight complete, exit 0 with an empty spool.

mod support;

use std::time::{Duration, Instant};
use support::*;

fn sigterm(pid: u32) {
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

async fn start(
    dir: &std::path::Path,
    upstream: std::net::SocketAddr,
    mode: &str,
) -> (DataplaneProcess, std::path::PathBuf) {
    let spool = dir.join("spool");
    std::fs::create_dir(&spool).unwrap();
    let snapshot_file = dir.join("snapshot.json");
    std::fs::write(&snapshot_file, snapshot(1, &[upstream], &format!(r#"{{"mode":"{mode}"}}"#))).unwrap();
    // Two workers even on one CPU, so that a Tee delivery runs on the neighbour of the worker reading the client.
    let extra = ["--shutdown-delay", "500ms", "--workers", "2"];
    let dataplane = DataplaneProcess::start(&spool, &snapshot_file, &extra).await;
    (dataplane, spool)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_an_upload_lets_it_complete_then_exits_0() {
    sigterm_during_an_upload("Buffered").await;
}

/// A Tee body is delivered from a neighbouring worker: that worker must not stop before the delivery ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_tee_upload_lets_it_complete_then_exits_0() {
    sigterm_during_an_upload("Tee").await;
}

async fn sigterm_during_an_upload(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let (mut dataplane, spool) = start(dir.path(), upstream.addr, mode).await;
    assert_eq!(get(dataplane.admin, "/readyz").await.0, 200);
    let client = tokio::spawn(upload(dataplane.addr, Upload { rate: Some(50 * MB), ..Upload::new("/up", 200 * MB) }));
    tokio::time::sleep(Duration::from_secs(1)).await;
    sigterm(dataplane.pid());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(dataplane.admin, "/readyz").await.0, 503, "unready as soon as the drain starts");
    let result = client.await.unwrap().unwrap();
    assert_eq!(result.status, 200, "{}", result.text());
    assert_eq!(result.json()["sha256"], result.sent_sha256.as_str());
    let status = tokio::time::timeout(Duration::from_secs(10), dataplane.child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_dir_empty(&spool);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let (mut dataplane, spool) = start(dir.path(), upstream.addr, "Buffered").await;
    let client = tokio::spawn(upload(dataplane.addr, Upload { rate: Some(10 * MB), ..Upload::new("/up", 200 * MB) }));
    tokio::time::sleep(Duration::from_millis(500)).await;
    sigterm(dataplane.pid());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = Instant::now();
    sigterm(dataplane.pid());
    let status = tokio::time::timeout(Duration::from_secs(5), dataplane.child.wait()).await.unwrap().unwrap();
    assert!(second.elapsed() < Duration::from_secs(2));
    assert!(status.success());
    assert!(client.await.unwrap().is_err(), "the upload is cut off");
    assert_dir_empty(&spool);
}

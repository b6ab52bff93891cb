//! The spool leaves nothing behind, even when the dataplane process itself is SIGKILLed mid-upload.

mod support;

use std::time::Duration;
use support::*;

/// Whether the process has an open file in `dir` (an unlinked spool file shows as `dir/#123 (deleted)` or similar).
fn has_open_file_in(pid: u32, dir: &std::path::Path) -> bool {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().starts_with(&dir)))
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_dir_is_empty_after_the_dataplane_is_sigkilled_mid_upload() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let snapshot_file = dir.path().join("snapshot.json");
    std::fs::write(&snapshot_file, snapshot(1, &[upstream.addr], r#"{"mode":"Buffered"}"#)).unwrap();
    let mut dataplane = DataplaneProcess::start(&spool, &snapshot_file, &[]).await;
    let client = tokio::spawn(upload(dataplane.addr, Upload { rate: Some(50 * MB), ..Upload::new("/up", 200 * MB) }));
    // Half way the body is on disk in the spool directory, already unlinked.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(has_open_file_in(dataplane.pid(), &spool), "the body must be spooled to --spool-dir");
    assert_dir_empty(&spool);
    dataplane.child.start_kill().unwrap();
    dataplane.child.wait().await.unwrap();
    assert!(client.await.unwrap().is_err(), "the client sees the connection drop");
    assert_dir_empty(&spool);
}

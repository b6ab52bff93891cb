//! SIGTERM to the real binary with a WebSocket tunnel open: the tunnel keeps carrying messages through the drain,
//! is closed when `--drain-timeout` ends, and the process exits 0.

mod support;

use futures::SinkExt;
use serde_json::json;
use std::time::{Duration, Instant};
use support::routes::routed;
use support::ws::{closed_within, connect, echo_and_push, hello, next_text};
use support::*;
use tokio_tungstenite::tungstenite::Message;

const DRAIN: Duration = Duration::from_secs(3);

fn sigterm(pid: u32) {
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_keeps_open_tunnels_working_until_the_drain_timeout_then_closes_them_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let peer = PeerProcess::ws(false, &[]).await;
    let snapshot_file = dir.path().join("snapshot.json");
    std::fs::write(&snapshot_file, routed(1, &[peer.addr], json!({}), json!({})).to_string()).unwrap();
    let extra = ["--drain-timeout", "3s", "--shutdown-delay", "200ms", "--workers", "2"];
    let mut dataplane = DataplaneProcess::start(dir.path(), &snapshot_file, &extra).await;
    let mut ws = connect(dataplane.addr, None, "/chat").await.unwrap();
    hello(&mut ws).await;
    echo_and_push(&mut ws).await;

    sigterm(dataplane.pid());
    let signalled = Instant::now();
    // Past the shutdown delay (the listeners are closed by then), the tunnel still carries messages both ways.
    for i in 0..8 {
        ws.send(Message::text(format!("draining {i}"))).await.unwrap();
        assert_eq!(next_text(&mut ws).await, format!("draining {i}"), "the tunnel works during the drain");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(signalled.elapsed() < DRAIN, "the exchanges above must end before the drain timeout");
    closed_within(&mut ws, DRAIN + Duration::from_secs(3)).await;
    let closed_after = signalled.elapsed();
    assert!(
        closed_after >= DRAIN - Duration::from_millis(300),
        "closed {closed_after:?} after SIGTERM, before the drain timeout"
    );
    let status =
        tokio::time::timeout(Duration::from_secs(5), dataplane.child.wait()).await.expect("exit in time").unwrap();
    assert_eq!(status.code(), Some(0));
    peer.lines.wait_for_nth(1, Duration::from_secs(5), |l| l.starts_with("closed 1")).await;
}

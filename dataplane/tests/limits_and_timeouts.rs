//! Body limits (413), the spool quota (507), and the timeouts that keep anything from hanging (408, 504).

mod support;

use std::time::Duration;
use support::upstream::deliveries;
use support::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_max_body_size_get_413_by_content_length_and_while_chunked() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("d.jsonl");
    let upstream = UpstreamProcess::start("127.0.0.1:0", &log, &[]).await;
    for mode in ["Buffered", "Tee", "Streaming"] {
        let policy = format!(r#"{{"mode":"{mode}","maxBodySizeBytes":1000000}}"#);
        let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], &policy)), 0).await;
        let by_length = upload(dataplane.addr, Upload::new("/up", 5 * MB)).await.unwrap();
        assert_eq!(by_length.status, 413, "{mode}: {}", by_length.text());
        assert!(by_length.text().contains("larger than the limit of 1000000 bytes"));
        assert!(by_length.elapsed < Duration::from_secs(2), "refused before the body is read");
        let chunked = upload(dataplane.addr, Upload { chunked: true, ..Upload::new("/up", 5 * MB) }).await.unwrap();
        assert_eq!(chunked.status, 413, "{mode}: {}", chunked.text());
        let fits = upload(dataplane.addr, Upload { chunked: true, ..Upload::new("/up", 1_000_000) }).await.unwrap();
        assert_eq!(fits.status, 200, "{mode}: {}", fits.text());
        dataplane.assert_spool_clean().await;
    }
    let delivered = deliveries(&log);
    assert_eq!(delivered.len(), 3);
    assert!(delivered.iter().all(|d| d["bytes"] == 1_000_000), "no oversized body reached the upstream");
    // Buffered mode re-frames a chunked body with a Content-Length; the streaming modes pass it on chunked.
    assert_eq!(delivered[0]["contentLength"], 1_000_000);
    assert_eq!(delivered[0]["chunked"], false);
    assert_eq!(delivered[2]["chunked"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_spool_quota_get_507_and_other_uploads_are_not_disturbed() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], r#"{"mode":"Buffered"}"#)), 4 * MB).await;
    // A slow upload that holds 3 MB of the 4 MB quota while the others are refused.
    let slow = tokio::spawn(upload(dataplane.addr, Upload { rate: Some(3 * MB), ..Upload::new("/up", 3 * MB) }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let by_length = upload(dataplane.addr, Upload::new("/up", 5 * MB)).await.unwrap();
    assert_eq!(by_length.status, 507, "{}", by_length.text());
    assert!(by_length.text().contains("not enough spool space"), "{}", by_length.text());
    let chunked = upload(dataplane.addr, Upload { chunked: true, ..Upload::new("/up", 5 * MB) }).await.unwrap();
    assert_eq!(chunked.status, 507, "{}", chunked.text());
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.status, 200, "{}", slow.text());
    assert_eq!(slow.json()["sha256"], slow.sent_sha256.as_str());
    dataplane.assert_spool_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_sending_its_body_gets_408() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("d.jsonl");
    let upstream = UpstreamProcess::start("127.0.0.1:0", &log, &[]).await;
    for mode in ["Buffered", "Tee"] {
        let policy = format!(r#"{{"mode":"{mode}","timeouts":{{"clientBodyMs":300}}}}"#);
        let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], &policy)), 0).await;
        let stalled = Upload { stop_after: Some(500_000), ..Upload::new("/up", 2 * MB) };
        let result = upload(dataplane.addr, stalled).await.unwrap();
        assert_eq!(result.status, 408, "{mode}: {}", result.text());
        assert!(result.elapsed < Duration::from_secs(3));
        dataplane.assert_spool_clean().await;
    }
    assert!(deliveries(&log).is_empty(), "a partial body is never delivered as complete");
}

/// An upstream that accepts connections and reads requests but never answers.
async fn silent_upstream(read: bool) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            if read {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            } else {
                held.push(stream);
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_gets_504_after_the_read_timeout_and_the_replays() {
    let addr = silent_upstream(true).await;
    let policy = r#"{"timeouts":{"upstreamReadMs":300},"replay":{"maxAttempts":2}}"#;
    let dataplane = Harness::start(Some(&snapshot(1, &[addr], policy)), 0).await;
    let result = upload(dataplane.addr, Upload::new("/up", MB)).await.unwrap();
    assert_eq!(result.status, 504, "{}", result.text());
    assert!(result.text().contains("no response within the read timeout"), "{}", result.text());
    assert!(result.elapsed >= Duration::from_millis(600) && result.elapsed < Duration::from_secs(3));
    dataplane.assert_spool_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_stops_reading_the_body_gets_504_after_the_send_timeout() {
    let addr = silent_upstream(false).await;
    let policy = r#"{"timeouts":{"upstreamSendMs":300},"replay":{"maxAttempts":1}}"#;
    let dataplane = Harness::start(Some(&snapshot(1, &[addr], policy)), 0).await;
    let result = upload(dataplane.addr, Upload::new("/up", 64 * MB)).await.unwrap();
    assert_eq!(result.status, 504, "{}", result.text());
    assert!(result.text().contains("stopped reading the body"), "{}", result.text());
    dataplane.assert_spool_clean().await;
}

//! The edges of a client connection that the seeds ask about: half-close, client aborts, early upstream responses,
//! lingering close, keep-alive, `Expect: 100-continue`, and Holdfast's own error pages.

mod support;

use std::time::Duration;
use support::client::{read_response, Payload};
use support::upstream::deliveries;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

fn body(len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    Payload::new(7).fill(&mut bytes);
    bytes
}

/// Writes a whole `POST /up` with a Content-Length on a connection the test goes on using.
async fn send_post(stream: &mut TcpStream, payload: &[u8]) {
    let head = format!("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", payload.len());
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(payload).await.unwrap();
}

/// Reads until the peer closes; true when that happens within the time limit.
async fn closes_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut sink = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_half_closes_after_its_request_gets_the_response_then_the_close() {
    for mode in ["Buffered", "Tee"] {
        let dir = tempfile::tempdir().unwrap();
        // A slow upstream, so that the FIN arrives while the delivery is still running.
        let upstream =
            UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &["--read-rate", "1000000"]).await;
        let policy = format!(r#"{{"mode":"{mode}"}}"#);
        let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], &policy)), 0).await;
        let payload = body(300_000);
        let mut stream = connect(dataplane.addr).await;
        send_post(&mut stream, &payload).await;
        stream.shutdown().await.unwrap(); // shutdown(SHUT_WR): a FIN, as in seed 003
        let (status, _, response) = read_response(&mut stream).await.unwrap();
        assert_eq!(status, 200, "mode {mode}: {}", String::from_utf8_lossy(&response));
        assert!(closes_within(&mut stream, Duration::from_secs(2)).await, "then the connection closes");
        dataplane.assert_spool_clean().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_abort_policy_ends_a_waiting_request_at_the_clients_fin() {
    for mode in ["Buffered", "Tee"] {
        // No endpoint: the request waits. With `halfClose: Abort` the client's FIN ends it at once.
        let policy = format!(r#"{{"mode":"{mode}","halfClose":"Abort","replay":{{"upstreamWaitTimeoutMs":10000}}}}"#);
        let dataplane = Harness::start(Some(&snapshot(1, &[], &policy)), 0).await;
        let mut stream = connect(dataplane.addr).await;
        stream.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello").await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = std::time::Instant::now();
        stream.shutdown().await.unwrap();
        let (status, _, _) = read_response(&mut stream).await.unwrap();
        assert_eq!(status, 400, "mode {mode}");
        assert!(started.elapsed() < Duration::from_secs(2), "mode {mode}");
        dataplane.assert_spool_clean().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_abort_cancel_closes_the_upstream_and_complete_finishes_the_delivery() {
    // Tee too: its body is complete before the delivery is (the upstream reads slowly), and from then on the client
    // is watched as in Buffered mode.
    let cases = [("Buffered", "Cancel", 0), ("Buffered", "Complete", 1), ("Tee", "Cancel", 0), ("Tee", "Complete", 1)];
    for (mode, abort, expected_deliveries) in cases {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("d.jsonl");
        // A slow upstream: the client is gone long before it has read the body.
        let upstream = UpstreamProcess::start("127.0.0.1:0", &log, &["--read-rate", "10000000"]).await;
        let policy = format!(r#"{{"mode":"{mode}","clientAbort":"{abort}"}}"#);
        let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], &policy)), 0).await;
        let payload = body(5_000_000);
        let mut stream = connect(dataplane.addr).await;
        send_post(&mut stream, &payload).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The client resets its connection (it was killed, or gave up).
        socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).unwrap();
        drop(stream);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(deliveries(&log).len(), expected_deliveries, "mode {mode}, clientAbort: {abort}");
        dataplane.assert_spool_clean().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_resets_mid_body_never_makes_a_streamed_body_look_complete() {
    for mode in ["Tee", "Streaming"] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("d.jsonl");
        let mut upstream = UpstreamProcess::start("127.0.0.1:0", &log, &[]).await;
        let dataplane =
            Harness::start(Some(&snapshot(1, &[upstream.addr], &format!(r#"{{"mode":"{mode}"}}"#))), 0).await;
        for chunked in [false, true] {
            let mut stream = connect(dataplane.addr).await;
            let framing = if chunked { "Transfer-Encoding: chunked" } else { "Content-Length: 10000000" };
            stream.write_all(format!("POST /up HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n").as_bytes()).await.unwrap();
            let part = body(2_000_000);
            if chunked {
                stream.write_all(format!("{:x}\r\n", part.len()).as_bytes()).await.unwrap();
            }
            stream.write_all(&part).await.unwrap();
            if chunked {
                stream.write_all(b"\r\n").await.unwrap();
            }
            upstream.wait_for_progress(1_000_000).await;
            socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).unwrap();
            drop(stream);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(deliveries(&log).is_empty(), "{mode}: the upstream must see an aborted body, not a complete one");
        dataplane.assert_spool_clean().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_413_from_the_upstream_reaches_the_client_and_is_not_replayed() {
    for mode in ["Buffered", "Tee"] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("d.jsonl");
        let upstream = UpstreamProcess::start("127.0.0.1:0", &log, &["--reject-after", "1000000"]).await;
        let dataplane =
            Harness::start(Some(&snapshot(1, &[upstream.addr], &format!(r#"{{"mode":"{mode}"}}"#))), 0).await;
        let result = upload(dataplane.addr, Upload::new("/up", 20 * MB)).await.unwrap();
        assert_eq!(result.status, 413, "{mode}: {}", result.text());
        assert_eq!(result.text(), "too large for this upstream\n");
        let seen = deliveries(&log);
        assert_eq!(seen.len(), 1, "{mode}: exactly one attempt, no replay: {seen:?}");
        assert_eq!(seen[0]["rejected"], true);
        dataplane.assert_spool_clean().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_gets_413_with_a_lingering_close_not_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let policy = r#"{"maxBodySizeBytes":1000000}"#;
    let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], policy)), 0).await;
    // curl sending 100 MB to a 1 MB limit, as in the issue.
    let file = dir.path().join("100mb");
    std::fs::write(&file, body(100_000_000)).unwrap();
    for framing in [&[][..], &["-H", "Transfer-Encoding: chunked"][..]] {
        let output = tokio::process::Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-T"])
            .arg(&file)
            .args(framing)
            .arg(format!("http://{}/up", dataplane.addr))
            .output()
            .await
            .expect("curl is installed");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(String::from_utf8_lossy(&output.stdout), "413", "curl saw: {stderr}");
        assert!(!stderr.contains("reset"), "{stderr}");
    }
    // A raw client that keeps writing after the response also reads the 413 and then a clean close.
    let mut stream = connect(dataplane.addr).await;
    stream.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n").await.unwrap();
    let (status, head, _) = read_response(&mut stream).await.unwrap();
    assert_eq!(status, 413);
    assert!(head.to_ascii_lowercase().contains("connection: close"));
    let chunk = body(1_000_000);
    for _ in 0..5 {
        // Writes still succeed: Holdfast is reading and discarding them.
        stream.write_all(&chunk).await.unwrap();
    }
    dataplane.assert_spool_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_holds_until_a_bad_request_or_the_request_limit() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let dataplane = Harness::start_with(Some(&snapshot(1, &[upstream.addr], "{}")), 0, 3).await;
    let mut stream = connect(dataplane.addr).await;
    for n in 1..=3 {
        stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n").await.unwrap();
        let (status, head, _) = read_response(&mut stream).await.unwrap();
        assert_eq!(status, 200);
        let closes = head.to_ascii_lowercase().contains("connection: close");
        assert_eq!(closes, n == 3, "request {n}: only the last allowed request closes:\n{head}");
    }
    assert!(closes_within(&mut stream, Duration::from_secs(2)).await);

    let mut stream = connect(dataplane.addr).await;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let (status, head, _) = read_response(&mut stream).await.unwrap();
    assert_eq!(status, 200);
    assert!(!head.to_ascii_lowercase().contains("connection: close"));
    stream.write_all(b"GARBAGE\r\n\r\n").await.unwrap();
    let (status, head, _) = read_response(&mut stream).await.unwrap();
    assert!(head.to_ascii_lowercase().contains("connection: close"));
    assert_eq!(status, 400, "a malformed request gets 400");
    assert!(closes_within(&mut stream, Duration::from_secs(2)).await, "and the connection closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_answered_by_holdfast_after_the_length_check() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("d.jsonl");
    let upstream = UpstreamProcess::start("127.0.0.1:0", &log, &[]).await;
    for mode in ["Buffered", "Tee"] {
        let policy = format!(r#"{{"mode":"{mode}","maxBodySizeBytes":1000000}}"#);
        let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], &policy)), 0).await;
        let mut stream = connect(dataplane.addr).await;
        let head = "POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        assert_eq!(read_response(&mut stream).await.unwrap().0, 413, "{mode}: refused without 100 Continue");

        let mut stream = connect(dataplane.addr).await;
        let head = "POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 500000\r\n\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut interim = [0u8; 25];
        stream.read_exact(&mut interim).await.unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n", "{mode}");
        stream.write_all(&body(500_000)).await.unwrap();
        assert_eq!(read_response(&mut stream).await.unwrap().0, 200, "{mode}");
    }
    assert_eq!(deliveries(&log).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_pages_replace_holdfasts_own_502_503_504_bodies() {
    let page =
        r#"{"errorPages":{"503":{"body":"<p>back soon</p>","status":200}},"replay":{"upstreamWaitTimeoutMs":300}}"#;
    let dataplane = Harness::start(Some(&snapshot(1, &[], page)), 0).await;
    let result = upload(dataplane.addr, Upload::new("/up", 1000)).await.unwrap();
    assert_eq!(result.status, 200, "the =200 rewrite");
    assert_eq!(result.text(), "<p>back soon</p>");
    assert!(result.head.contains("content-type: text/html; charset=utf-8"), "{}", result.head);

    let plain = r#"{"replay":{"upstreamWaitTimeoutMs":300},"retryAfterSeconds":7}"#;
    let dataplane = Harness::start(Some(&snapshot(1, &[], plain)), 0).await;
    let result = upload(dataplane.addr, Upload::new("/up", 1000)).await.unwrap();
    assert_eq!(result.status, 503);
    assert!(result.head.contains("retry-after: 7"), "{}", result.head);
}

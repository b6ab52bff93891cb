//! Upstreams killed with SIGKILL, down, or restarted while a body is on its way: the client still gets the
//! upstream's 200, and exactly one complete delivery of the exact bytes reaches an upstream.

mod support;

use std::time::Duration;
use support::upstream::deliveries;
use support::*;

const BIG: u64 = 200 * MB;

/// Kills the only upstream when it has received `percent` of the body, restarts it on the same address half a
/// second later, and checks the client's answer and what the upstreams received.
async fn killed_mid_delivery(mode: &str, percent: u64) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("deliveries.jsonl");
    // Reading at 100 MB/s gives the kill a window of about 20 ms per percent.
    let mut upstream = UpstreamProcess::start("127.0.0.1:0", &log, &["--read-rate", "100000000"]).await;
    let policy = format!(r#"{{"mode":"{mode}"}}"#);
    let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], &policy)), 0).await;
    let client = tokio::spawn(upload(dataplane.addr, Upload::new("/photos", BIG)));
    upstream.wait_for_progress(BIG * percent / 100).await;
    upstream.kill().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    upstream.restart().await;
    let result = client.await.unwrap().unwrap();
    assert_eq!(result.status, 200, "{}", result.text());
    let answer = result.json();
    assert_eq!(answer["sha256"], result.sent_sha256.as_str(), "the upstream hashed other bytes than were sent");
    assert_eq!(answer["bytes"], BIG);
    assert!(answer["attempt"].as_u64().unwrap() >= 2, "the answer must come from a replay: {answer}");
    let delivered = deliveries(&log);
    assert_eq!(delivered.len(), 1, "exactly one complete delivery: {delivered:?}");
    assert_eq!(delivered[0]["sha256"], result.sent_sha256.as_str());
    let request_id = header(&result.head, "x-request-id");
    assert_eq!(delivered[0]["requestId"], request_id.as_str(), "every attempt carries the same X-Request-Id");
    dataplane.assert_spool_clean().await;
}

fn header(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| {
            l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_upload_survives_upstream_sigkill_at_10_percent_of_relay() {
    killed_mid_delivery("Buffered", 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_upload_survives_upstream_sigkill_at_50_percent_of_relay() {
    killed_mid_delivery("Buffered", 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_upload_survives_upstream_sigkill_at_90_percent_of_relay() {
    killed_mid_delivery("Buffered", 90).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tee_upload_survives_upstream_sigkill_at_10_percent() {
    killed_mid_delivery("Tee", 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tee_upload_survives_upstream_sigkill_at_50_percent() {
    killed_mid_delivery("Tee", 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tee_upload_survives_upstream_sigkill_at_90_percent() {
    killed_mid_delivery("Tee", 90).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_waits_for_an_upstream_that_is_down_when_the_body_completes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("deliveries.jsonl");
    let mut upstream = UpstreamProcess::start("127.0.0.1:0", &log, &[]).await;
    upstream.kill().await;
    let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], r#"{"mode":"Buffered"}"#)), 0).await;
    let client = tokio::spawn(upload(dataplane.addr, Upload::new("/photos", 20 * MB)));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!client.is_finished(), "the request must wait for the upstream, not fail");
    upstream.restart().await;
    let result = client.await.unwrap().unwrap();
    assert_eq!(result.status, 200, "{}", result.text());
    assert_eq!(result.json()["sha256"], result.sent_sha256.as_str());
    assert!(result.elapsed >= Duration::from_secs(3));
    assert_eq!(deliveries(&log).len(), 1);
    dataplane.assert_spool_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_endpoint_gets_the_whole_body_when_the_first_dies_mid_relay() {
    let dir = tempfile::tempdir().unwrap();
    let (log_a, log_b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let mut slow = UpstreamProcess::start("127.0.0.1:0", &log_a, &["--read-rate", "50000000"]).await;
    let healthy = UpstreamProcess::start("127.0.0.1:0", &log_b, &[]).await;
    // Round robin starts with the first endpoint listed: the slow one receives the first relay.
    let json = snapshot(1, &[slow.addr, healthy.addr], r#"{"mode":"Buffered"}"#);
    let dataplane = Harness::start(Some(&json), 0).await;
    let client = tokio::spawn(upload(dataplane.addr, Upload::new("/photos", 100 * MB)));
    slow.wait_for_progress(30 * MB).await;
    slow.kill().await;
    let result = client.await.unwrap().unwrap();
    assert_eq!(result.status, 200, "{}", result.text());
    assert!(deliveries(&log_a).is_empty());
    let delivered = deliveries(&log_b);
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["sha256"], result.sent_sha256.as_str());
    assert_eq!(delivered[0]["attempt"], 2);
    dataplane.assert_spool_clean().await;
    drop(healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_endpoint_for_longer_than_the_wait_timeout_answers_503_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut gone = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    gone.kill().await;
    let policy = r#"{"mode":"Buffered","replay":{"upstreamWaitTimeoutMs":2000}}"#;
    // No endpoint at all, then an endpoint that refuses every connection.
    for endpoints in [vec![], vec![gone.addr]] {
        let dataplane = Harness::start(Some(&snapshot(1, &endpoints, policy)), 0).await;
        let result = upload(dataplane.addr, Upload::new("/photos", MB)).await.unwrap();
        assert_eq!(result.status, 503, "{}", result.text());
        assert!(result.text().contains("no endpoint of backend b took the request"), "{}", result.text());
        assert!(result.elapsed >= Duration::from_secs(2), "{:?}", result.elapsed);
        assert!(result.elapsed < Duration::from_secs(3), "{:?}", result.elapsed);
        dataplane.assert_spool_clean().await;
    }
}

/// A Tee request starts its delivery with the body. With no endpoint, it must not give up while the client is still
/// sending (here for 3 s, against a 2 s wait): it waits as a Buffered request would, counting from the body's end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tee_request_waits_for_an_endpoint_from_the_end_of_its_body_not_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("d.jsonl");
    let policy = r#"{"mode":"Tee","replay":{"upstreamWaitTimeoutMs":2000}}"#;
    let slow = |path| Upload { rate: Some(2 * MB), ..Upload::new(path, 6 * MB) };

    // An endpoint comes after the body is complete, within the wait: 200.
    let dataplane = Harness::start(Some(&snapshot(1, &[], policy)), 0).await;
    let client = tokio::spawn(upload(dataplane.addr, slow("/photos")));
    tokio::time::sleep(Duration::from_millis(3300)).await;
    assert!(!client.is_finished(), "the request gave up while its body was arriving: {:?}", client.await);
    let upstream = UpstreamProcess::start("127.0.0.1:0", &log, &[]).await;
    let (status, body) = push(dataplane.admin, &snapshot(2, &[upstream.addr], policy)).await;
    assert_eq!(status, 200, "{body}");
    let result = client.await.unwrap().unwrap();
    assert_eq!(result.status, 200, "{}", result.text());
    assert_eq!(result.json()["sha256"], result.sent_sha256.as_str());
    assert_eq!(deliveries(&log).len(), 1);
    dataplane.assert_spool_clean().await;

    // None comes: 503 one wait after the body's end (about 3 s in), not one wait after the start.
    let dataplane = Harness::start(Some(&snapshot(1, &[], policy)), 0).await;
    let result = upload(dataplane.addr, slow("/photos")).await.unwrap();
    assert_eq!(result.status, 503, "{}", result.text());
    assert!(result.elapsed >= Duration::from_millis(4800), "{:?}", result.elapsed);
    assert!(result.elapsed < Duration::from_secs(6), "{:?}", result.elapsed);
    dataplane.assert_spool_clean().await;
}

/// The same wait after a failure: a Tee upload that outlasts `upstreamWaitTimeout` and loses its upstream late in the
/// body is replayed, not answered 503 because the wait, counted from the start, had run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tee_upload_longer_than_the_wait_timeout_is_replayed_after_a_late_kill() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("d.jsonl");
    let mut upstream = UpstreamProcess::start("127.0.0.1:0", &log, &[]).await;
    let policy = r#"{"mode":"Tee","replay":{"upstreamWaitTimeoutMs":1000}}"#;
    let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], policy)), 0).await;
    let client = tokio::spawn(upload(dataplane.addr, Upload { rate: Some(2 * MB), ..Upload::new("/photos", 6 * MB) }));
    // About 2 s in: past the wait timeout, counted from the start.
    upstream.wait_for_progress(4 * MB).await;
    upstream.kill().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    upstream.restart().await;
    let result = client.await.unwrap().unwrap();
    assert_eq!(result.status, 200, "{}", result.text());
    assert_eq!(result.json()["sha256"], result.sent_sha256.as_str());
    assert!(result.json()["attempt"].as_u64().unwrap() >= 2, "{}", result.text());
    assert_eq!(deliveries(&log).len(), 1);
    dataplane.assert_spool_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_pushed_while_a_request_waits_is_used_by_that_request() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("d.jsonl");
    let policy = r#"{"mode":"Buffered","replay":{"upstreamWaitTimeoutMs":20000}}"#;
    let dataplane = Harness::start(Some(&snapshot(1, &[], policy)), 0).await;
    let client = tokio::spawn(upload(dataplane.addr, Upload::new("/photos", 5 * MB)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let upstream = UpstreamProcess::start("127.0.0.1:0", &log, &[]).await;
    let pushed_at = std::time::Instant::now();
    let (status, body) = push(dataplane.admin, &snapshot(2, &[upstream.addr], policy)).await;
    assert_eq!(status, 200, "{body}");
    let result = client.await.unwrap().unwrap();
    assert_eq!(result.status, 200, "{}", result.text());
    assert!(pushed_at.elapsed() < Duration::from_secs(2), "the waiting request must wake on the push");
    assert_eq!(deliveries(&log).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_mode_does_not_replay_and_the_upstream_never_sees_a_complete_body() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("d.jsonl");
    let mut upstream = UpstreamProcess::start("127.0.0.1:0", &log, &["--read-rate", "50000000"]).await;
    let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], r#"{"mode":"Streaming"}"#)), 0).await;
    let client = tokio::spawn(upload(dataplane.addr, Upload::new("/stream", 50 * MB)));
    upstream.wait_for_progress(10 * MB).await;
    upstream.kill().await;
    upstream.restart().await;
    let result = client.await.unwrap().unwrap();
    assert_eq!(result.status, 502, "{}", result.text());
    assert!(result.text().contains("cannot be replayed"), "{}", result.text());
    assert!(deliveries(&log).is_empty(), "a streamed body is never replayed");
    dataplane.assert_spool_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_closed_by_a_restarted_upstream_is_retried_on_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], "{}")), 0).await;
    for _ in 0..2 {
        assert_eq!(get(dataplane.addr, "/").await, (200, "ok\n".to_string()));
        // The connection from the first request stays pooled; killing the process makes it stale.
        upstream.kill().await;
        upstream.restart().await;
    }
    assert_eq!(get(dataplane.addr, "/").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tee_mode_streams_to_the_upstream_before_the_body_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let deliveries = dir.path().join("d.jsonl");
    let mut upstream = UpstreamProcess::start("127.0.0.1:0", &deliveries, &["--progress-step", "1"]).await;
    let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], r#"{"mode":"Tee"}"#)), 0).await;
    // The client sends 5 MB of a declared 20 MB and then stalls.
    let stalled =
        tokio::spawn(upload(dataplane.addr, Upload { stop_after: Some(5 * MB), ..Upload::new("/t", 20 * MB) }));
    // Every byte sent, the last ones before the stall too: the spool's readers hear of new bytes in steps, and of
    // the rest as soon as the client pauses.
    tokio::time::timeout(Duration::from_secs(10), upstream.wait_for_progress(5 * MB))
        .await
        .expect("the upstream must receive every byte sent while the client is still sending");
    stalled.abort();
}

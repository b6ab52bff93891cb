//! Large bodies on plain HTTP/1.1 connections are read past hyper, straight from the socket in large chunks
//! (`server::DirectBody`): the exact bytes still reach the upstream, `Expect: 100-continue`, the idle timeout and a
//! client that leaves still behave, and the connection closes after the answer because hyper never saw the end of
//! the body. Smaller bodies keep their connection.

mod support;

use sha2::{Digest, Sha256};
use std::time::Duration;
use support::client::{hex, read_response, Payload};
use support::upstream::deliveries;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Over the 8 MiB from which a body is read past hyper.
const LARGE: usize = 12_000_000;

fn body(len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    Payload::new(len as u64).fill(&mut bytes);
    bytes
}

fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

async fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

fn head(len: usize, extra: &str) -> String {
    format!("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n{extra}\r\n")
}

/// True when the server closes the connection within a few seconds (it sends nothing more).
async fn server_closes(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await, Ok(Ok(0) | Err(_)))
}

/// Writes a `POST` of `payload` on `stream` and reads its answer.
async fn post(stream: &mut TcpStream, payload: &[u8]) -> (u16, String, serde_json::Value) {
    stream.write_all(head(payload.len(), "").as_bytes()).await.unwrap();
    stream.write_all(payload).await.unwrap();
    answer(stream).await
}

/// The status, head and body of the next response: the upstream's JSON report, or the text of any other body.
async fn answer(stream: &mut TcpStream) -> (u16, String, serde_json::Value) {
    let (status, head, body) = read_response(stream).await.unwrap();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, head, json)
}

fn connection_close(head: &str) -> bool {
    head.lines().any(|l| l.eq_ignore_ascii_case("connection: close"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_reaches_the_upstream_intact_and_its_connection_closes_after_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("d.jsonl");
    let upstream = UpstreamProcess::start("127.0.0.1:0", &log, &[]).await;
    for mode in ["Buffered", "Tee"] {
        let policy = format!(r#"{{"mode":"{mode}"}}"#);
        let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], &policy)), 0).await;
        let payload = body(LARGE);
        let mut stream = connect(dataplane.addr).await;
        let (status, head, answer) = post(&mut stream, &payload).await;
        assert_eq!(status, 200, "{mode}: {answer}");
        assert_eq!(answer["sha256"], sha256(&payload).as_str(), "{mode}: the upstream hashed other bytes");
        assert_eq!(answer["bytes"], LARGE as u64);
        assert!(connection_close(&head), "{mode}: the body went past hyper, so the connection ends: {head}");
        assert!(server_closes(&mut stream).await, "{mode}: the server must close after the answer");
        dataplane.assert_spool_clean().await;
    }
    assert_eq!(deliveries(&log).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smaller_body_keeps_its_connection_for_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    for mode in ["Buffered", "Tee"] {
        let policy = format!(r#"{{"mode":"{mode}"}}"#);
        let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], &policy)), 0).await;
        let mut stream = connect(dataplane.addr).await;
        for len in [2_000_000, 10] {
            let payload = body(len);
            let (status, head, answer) = post(&mut stream, &payload).await;
            assert_eq!(status, 200, "{mode}");
            assert!(!connection_close(&head), "{mode}: {head}");
            assert_eq!(answer["sha256"], sha256(&payload).as_str(), "{mode}");
        }
        dataplane.assert_spool_clean().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_after_100_continue_is_read_past_hyper_too() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    for mode in ["Buffered", "Tee"] {
        let policy = format!(r#"{{"mode":"{mode}"}}"#);
        let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], &policy)), 0).await;
        let payload = body(LARGE);
        let mut stream = connect(dataplane.addr).await;
        stream.write_all(head(LARGE, "Expect: 100-continue\r\n").as_bytes()).await.unwrap();
        let mut interim = [0u8; 25];
        stream.read_exact(&mut interim).await.unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n", "{mode}");
        stream.write_all(&payload).await.unwrap();
        let (status, head, answer) = answer(&mut stream).await;
        assert_eq!(status, 200, "{mode}");
        assert!(connection_close(&head), "{mode}: {head}");
        assert_eq!(answer["sha256"], sha256(&payload).as_str(), "{mode}");
        dataplane.assert_spool_clean().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_or_leaves_mid_body_gets_408_or_nothing_and_frees_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("d.jsonl");
    let upstream = UpstreamProcess::start("127.0.0.1:0", &log, &[]).await;
    for mode in ["Buffered", "Tee"] {
        let policy = format!(r#"{{"mode":"{mode}","timeouts":{{"clientBodyMs":300}}}}"#);
        let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], &policy)), 0).await;
        // Stalls well past the first bytes hyper reads: the stall is seen by the reads past hyper.
        let stalled = Upload { stop_after: Some(9 * MB), ..Upload::new("/up", LARGE as u64) };
        let result = upload(dataplane.addr, stalled).await.unwrap();
        assert_eq!(result.status, 408, "{mode}: {}", result.text());
        assert!(connection_close(&result.head), "{mode}: {}", result.head);
        assert!(result.elapsed < Duration::from_secs(5), "{mode}: {:?}", result.elapsed);
        dataplane.assert_spool_clean().await;

        let mut stream = connect(dataplane.addr).await;
        stream.write_all(head(LARGE, "").as_bytes()).await.unwrap();
        stream.write_all(&body(LARGE)[..9_000_000]).await.unwrap();
        drop(stream);
        dataplane.assert_spool_clean().await;
        // The dataplane goes on serving.
        let result = upload(dataplane.addr, Upload::new("/up", 1000)).await.unwrap();
        assert_eq!(result.status, 200, "{mode}");
    }
    let delivered = deliveries(&log);
    assert!(
        delivered.iter().all(|d| d["bytes"] == 1000),
        "a partial body is never delivered as complete: {delivered:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reads_past_hyper_from_its_threshold_and_never_with_0() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let snapshot_file = dir.path().join("snapshot.json");
    std::fs::write(&snapshot_file, snapshot(1, &[upstream.addr], r#"{"mode":"Tee"}"#)).unwrap();
    // (threshold flag, body length, whether the connection closes after the answer)
    let cases = [("4Mi", 5_000_000, true), ("4Mi", 3_000_000, false), ("0", LARGE, false)];
    for (threshold, len, closes) in cases {
        let spool = tempfile::tempdir().unwrap();
        let dataplane =
            DataplaneProcess::start(spool.path(), &snapshot_file, &["--direct-body-min-bytes", threshold]).await;
        let payload = body(len);
        let mut stream = connect(dataplane.addr).await;
        let (status, head, answer) = post(&mut stream, &payload).await;
        assert_eq!(status, 200, "{threshold} {len}");
        assert_eq!(answer["sha256"], sha256(&payload).as_str(), "{threshold} {len}");
        assert_eq!(connection_close(&head), closes, "{threshold} {len}: {head}");
    }
}

//! The header read timeout: a connection that sends no complete request head for `--header-read-timeout` is
//! closed — new, idle after a response, or sending its head a byte at a time — and one that is busy with a request
//! or a response for longer than that is not. Holdfast closes such a connection between one and one and a half
//! timeouts after its last activity (`server/head_timeout.rs`).

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::client::read_response;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TIMEOUT: Duration = Duration::from_secs(1);

/// How long until the dataplane closes `stream`, reading and dropping whatever it sends; `None` after `limit`.
async fn closed_after(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut sink = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// Closed no earlier than the timeout, and within one and a half of it (plus scheduling slack).
fn assert_closed_in_bounds(after: Option<Duration>, what: &str) {
    let after = after.unwrap_or_else(|| panic!("{what}: still open after 5 s"));
    assert!(after >= TIMEOUT - Duration::from_millis(50), "{what}: closed too early, after {after:?}");
    assert!(after <= TIMEOUT * 3 / 2 + Duration::from_millis(500), "{what}: closed late, after {after:?}");
}

/// An upstream that answers every request with `len` bytes sent one per `gap`, on a raw socket.
async fn trickling_upstream(len: usize, gap: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let start = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
                if socket.write_all(start.as_bytes()).await.is_err() {
                    return;
                }
                for _ in 0..len {
                    tokio::time::sleep(gap).await;
                    if socket.write_all(b"x").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_a_request_head_is_closed_after_the_timeout() {
    let dataplane = Harness::start_with_header_timeout(None, TIMEOUT).await;
    let mut silent = TcpStream::connect(dataplane.addr).await.unwrap();
    assert_closed_in_bounds(closed_after(&mut silent, Duration::from_secs(5)).await, "a silent new connection");

    // Slowloris: a head that never ends, one byte every 100 ms, keeps nothing open.
    let mut slow = TcpStream::connect(dataplane.addr).await.unwrap();
    let started = Instant::now();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let closed = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if slow.write_all(b"a").await.is_err() || started.elapsed() > Duration::from_secs(5) {
            break started.elapsed();
        }
        let mut probe = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), slow.read(&mut probe)).await {
            break started.elapsed();
        }
    };
    assert_closed_in_bounds(Some(closed), "a head sent a byte at a time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not() {
    let upstream = trickling_upstream(0, Duration::ZERO).await;
    let dataplane = Harness::start_with_header_timeout(Some(&snapshot(1, &[upstream], "{}")), TIMEOUT).await;
    let mut stream = TcpStream::connect(dataplane.addr).await.unwrap();
    // One request every 400 ms for three timeouts: never quiet for a whole timeout, never closed.
    let started = Instant::now();
    loop {
        stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let (status, _, _) = read_response(&mut stream).await.expect("the connection stays open while used");
        assert_eq!(status, 200);
        if started.elapsed() >= TIMEOUT * 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // Then idle after a response: closed, counted from that response.
    assert_closed_in_bounds(closed_after(&mut stream, Duration::from_secs(5)).await, "idle after a response");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_sent_for_longer_than_the_timeout_is_not_cut() {
    // Ten bytes, 250 ms apart: 2.5 s of response, more than twice the timeout.
    let upstream = trickling_upstream(10, Duration::from_millis(250)).await;
    let dataplane = Harness::start_with_header_timeout(Some(&snapshot(1, &[upstream], "{}")), TIMEOUT).await;
    let mut stream = TcpStream::connect(dataplane.addr).await.unwrap();
    stream.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let (status, _, body) = read_response(&mut stream).await.expect("the whole response");
    assert_eq!((status, body), (200, b"xxxxxxxxxx".to_vec()));
    assert_closed_in_bounds(closed_after(&mut stream, Duration::from_secs(5)).await, "idle after the slow response");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_sent_for_longer_than_the_timeout_is_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let dataplane = Harness::start_with_header_timeout(Some(&snapshot(1, &[upstream.addr], "{}")), TIMEOUT).await;
    let mut stream = TcpStream::connect(dataplane.addr).await.unwrap();
    stream.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\n").await.unwrap();
    // 30 bytes over 3 s: the head is complete, the body is slow, the request is in flight.
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stream.write_all(b"b").await.unwrap();
    }
    let (status, _, body) = read_response(&mut stream).await.expect("the response");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    dataplane.assert_spool_clean().await;
}

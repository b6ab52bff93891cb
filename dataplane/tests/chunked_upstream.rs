//! Bodies of unknown length (a Tee request whose client sends it chunked) go to the upstream through hyper's client,
//! over pooled connections: a kept-alive connection that turns out closed is retried on a new one, numbered as the
//! next attempt, and a replay after that is numbered after both.
//!
//! The upstream is a scripted TCP server, because the point is closing a kept-alive connection on cue.

mod support;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use support::{snapshot, Harness};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request body of unknown length, so that hyper sends it chunked.
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }
}

fn body() -> Chunks {
    Chunks((0..4).map(|i| Bytes::from(vec![b'a' + i; 64 * 1024])).collect())
}

/// What the upstream does with a request, by its connection and the request's place on it.
#[derive(Clone, Copy, PartialEq)]
enum Act {
    /// Reads the chunked body to its end and answers 200, keeping the connection.
    Answer,
    /// Closes as soon as the head is in.
    Close,
}

/// Serves `script(connection, request on it)` and records each request head with its connection.
async fn scripted(script: fn(usize, usize) -> Act) -> (std::net::SocketAddr, Arc<Mutex<Vec<(usize, String)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        for connection in 0.. {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(serve(stream, connection, script, record.clone()));
        }
    });
    (addr, seen)
}

async fn serve(
    mut stream: TcpStream,
    connection: usize,
    script: fn(usize, usize) -> Act,
    seen: Arc<Mutex<Vec<(usize, String)>>>,
) {
    let mut buf = Vec::new();
    for request in 0.. {
        let Some(end) = read_until(&mut stream, &mut buf, b"\r\n\r\n").await else { return };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        seen.lock().unwrap().push((connection, head));
        if script(connection, request) == Act::Close {
            return;
        }
        // The body is 'a'…'d' bytes, so the last-chunk marker cannot occur inside it.
        let Some(end) = read_until(&mut stream, &mut buf, b"\r\n0\r\n\r\n").await else { return };
        buf.drain(..end);
        if stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await.is_err() {
            return;
        }
    }
}

/// Reads until `marker` is in `buf`; returns the offset just past it.
async fn read_until(stream: &mut TcpStream, buf: &mut Vec<u8>, marker: &[u8]) -> Option<usize> {
    loop {
        if let Some(at) = buf.windows(marker.len()).position(|w| w == marker) {
            return Some(at + marker.len());
        }
        let mut chunk = [0u8; 16 * 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn attempt_header(head: &str) -> Option<String> {
    let line = head.lines().find(|line| line.to_ascii_lowercase().starts_with("x-holdfast-attempt:"))?;
    Some(line["x-holdfast-attempt:".len()..].trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_pooled_connection_and_the_replay_after_it_are_numbered_as_attempts() {
    // Connection 0 answers the first upload and closes on the second (an upstream dying as it reads it); connection
    // 1 closes too; connection 2 answers.
    let (upstream, seen) = scripted(|connection, request| match (connection, request) {
        (0, 0) | (2.., _) => Act::Answer,
        _ => Act::Close,
    })
    .await;
    let hf = Harness::start(Some(&snapshot(1, &[upstream], r#"{"mode":"Tee"}"#)), 0).await;
    // One client connection, so that both uploads are served by the same worker, hence the same upstream pool.
    let stream = TcpStream::connect(hf.addr).await.unwrap();
    let (mut client, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    for _ in 0..2 {
        client.ready().await.unwrap();
        let request = http::Request::put("/up").header("host", "chunked.test").body(body()).unwrap();
        let response = client.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "ok");
    }
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().all(|(_, head)| head.to_ascii_lowercase().contains("transfer-encoding: chunked")), "{seen:?}");
    let connections: Vec<usize> = seen.iter().map(|(c, _)| *c).collect();
    assert_eq!(connections, [0, 0, 1, 2], "the second upload went out on the kept-alive connection first");
    let attempts: Vec<Option<String>> = seen.iter().map(|(_, head)| attempt_header(head)).collect();
    assert_eq!(attempts, [None, None, Some("2".into()), Some("3".into())], "{seen:?}");
    hf.assert_spool_clean().await;
}

//! Requests without a body go to the upstream over Holdfast's own HTTP/1.1 connections (no hyper client): every
//! way an upstream can frame its response reaches the client intact, connections are reused exactly when the
//! response allows it, and a connection the upstream dropped while idle is replaced without the client noticing.
//!
//! The upstream here is a scripted TCP server that answers with exact bytes, because the point is what happens
//! with responses a well-behaved HTTP library would never send (or never send on cue).

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{snapshot, Harness};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the scripted upstream does with one request.
#[derive(Clone)]
enum Act {
    /// Sends these bytes and keeps the connection for the next request.
    Reply(Vec<u8>),
    /// Sends these bytes, then closes.
    ReplyAndClose(Vec<u8>),
    /// Closes without answering.
    Close,
    /// Answers nothing and keeps the connection open.
    Silent,
}

/// A request as the upstream received it: on which of its connections (0, 1, …) and the head's text.
#[derive(Debug, Clone)]
struct Seen {
    connection: usize,
    head: String,
}

struct Scripted {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Scripted {
    /// Serves connections one after another; `script(connection, request on it)` says what to do.
    async fn start(script: impl Fn(usize, usize) -> Act + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (script, record) = (Arc::new(script), seen.clone());
        tokio::spawn(async move {
            for connection in 0.. {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (script, record) = (script.clone(), record.clone());
                tokio::spawn(serve(stream, connection, script, record));
            }
        });
        Scripted { addr, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve(
    mut stream: TcpStream,
    connection: usize,
    script: Arc<dyn Fn(usize, usize) -> Act + Send + Sync>,
    record: Arc<Mutex<Vec<Seen>>>,
) {
    let mut buf = Vec::new();
    for request in 0.. {
        let head = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
                buf.drain(..end + 4);
                break head;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        record.lock().unwrap().push(Seen { connection, head });
        match script(connection, request) {
            Act::Reply(bytes) => stream.write_all(&bytes).await.unwrap(),
            Act::ReplyAndClose(bytes) => {
                stream.write_all(&bytes).await.unwrap();
                return;
            }
            Act::Close => return,
            Act::Silent => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
        }
    }
}

/// The value of `X-Holdfast-Attempt` in a request head, if it has one.
fn attempt_header(head: &str) -> Option<String> {
    let line = head.lines().find(|line| line.to_ascii_lowercase().starts_with("x-holdfast-attempt:"))?;
    Some(line["x-holdfast-attempt:".len()..].trim().to_string())
}

/// A client connection to the dataplane: its requests all reach the same worker, hence the same upstream pool.
async fn client(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    sender
}

/// Status, headers and the whole body (or the error that ended it).
async fn request(
    sender: &mut SendRequest<Empty<Bytes>>,
    method: &str,
    path: &str,
) -> (u16, http::HeaderMap, Result<Bytes, String>) {
    sender.ready().await.unwrap();
    let request =
        http::Request::builder().method(method).uri(path).header("host", "bodiless.test").body(Empty::new()).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let body = response.into_body().collect().await.map(|b| b.to_bytes()).map_err(|e| e.to_string());
    (status, headers, body)
}

async fn harness_for(upstream: &Scripted, policy: &str) -> Harness {
    Harness::start(Some(&snapshot(1, &[upstream.addr], policy)), 0).await
}

fn reply(text: &str) -> Act {
    Act::Reply(text.as_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_response_reaches_the_client_and_its_connection_carries_the_next_request() {
    let upstream =
        Scripted::start(|_, _| reply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Custom: kept\r\n\r\nhello")).await;
    let hf = harness_for(&upstream, "{}").await;
    let mut c = client(hf.addr).await;
    for _ in 0..3 {
        let (status, headers, body) = request(&mut c, "GET", "/items?page=2").await;
        assert_eq!((status, body.unwrap()), (200, Bytes::from_static(b"hello")));
        assert_eq!(headers["x-custom"], "kept");
        assert!(headers.contains_key("x-request-id"));
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s.connection == 0), "one upstream connection for all three: {seen:?}");
    let head = seen[0].head.to_ascii_lowercase();
    assert!(head.starts_with("get /items?page=2 http/1.1\r\n"), "{head}");
    for field in ["host: bodiless.test", "x-forwarded-for: 127.0.0.1", "x-forwarded-proto: http", "x-request-id: "] {
        assert!(head.contains(field), "{field} missing from {head}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_and_large_bodies_arrive_whole_and_the_connection_is_reused_after_them() {
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut chunked_big = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in big.chunks(70_001) {
        chunked_big.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
        chunked_big.extend_from_slice(piece);
        chunked_big.extend_from_slice(b"\r\n");
    }
    chunked_big.extend_from_slice(b"0\r\nX-Trailer: dropped\r\n\r\n");
    let mut length_big = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", big.len()).into_bytes();
    length_big.extend_from_slice(&big);
    let script = move |_, request| match request {
        0 => reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        1 => Act::Reply(chunked_big.clone()),
        _ => Act::Reply(length_big.clone()),
    };
    let upstream = Scripted::start(script).await;
    let hf = harness_for(&upstream, "{}").await;
    let mut c = client(hf.addr).await;
    let (status, headers, body) = request(&mut c, "GET", "/a").await;
    assert_eq!((status, body.unwrap()), (200, Bytes::from_static(b"hello world")));
    assert!(!headers.contains_key("content-length"), "a chunked response has no length to announce");
    let digest = |bytes: &[u8]| Sha256::digest(bytes).to_vec();
    for path in ["/chunked", "/length"] {
        let (status, _, body) = request(&mut c, "GET", path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(digest(&body.unwrap()), digest(&big), "{path}: body differs");
    }
    let seen = upstream.seen();
    assert!(seen.iter().all(|s| s.connection == 0), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_delimited_by_the_close_arrives_whole_and_the_next_request_opens_a_new_connection() {
    let upstream = Scripted::start(|_, _| {
        Act::ReplyAndClose(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end".to_vec())
    })
    .await;
    let hf = harness_for(&upstream, "{}").await;
    let mut c = client(hf.addr).await;
    for _ in 0..2 {
        let (status, _, body) = request(&mut c, "GET", "/").await;
        assert_eq!((status, body.unwrap()), (200, Bytes::from_static(b"until the end")));
    }
    let connections: Vec<usize> = upstream.seen().iter().map(|s| s.connection).collect();
    assert_eq!(connections, [0, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_204_304_and_informational_responses_are_framed_without_a_body() {
    let script = |_, request| match request {
        // A HEAD response announces the length of the GET's body and has none.
        0 => reply("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
        1 => reply("HTTP/1.1 204 No Content\r\n\r\n"),
        2 => reply("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"),
        _ => reply("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    };
    let upstream = Scripted::start(script).await;
    let hf = harness_for(&upstream, "{}").await;
    let mut c = client(hf.addr).await;
    let (status, headers, body) = request(&mut c, "HEAD", "/").await;
    assert_eq!((status, body.unwrap().len()), (200, 0));
    assert_eq!(headers["content-length"], "1000");
    assert_eq!(request(&mut c, "GET", "/").await.0, 204);
    let (status, headers, _) = request(&mut c, "GET", "/").await;
    assert_eq!((status, &headers["etag"]), (304, &http::HeaderValue::from_static("\"x\"")));
    let (status, _, body) = request(&mut c, "GET", "/").await;
    assert_eq!((status, body.unwrap()), (200, Bytes::from_static(b"ok")));
    assert!(upstream.seen().iter().all(|s| s.connection == 0), "none of these left bytes in the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_encoding_overrides_content_length_and_the_connection_is_not_reused() {
    let script = |_, _| {
        reply("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
    };
    let upstream = Scripted::start(script).await;
    let hf = harness_for(&upstream, "{}").await;
    let mut c = client(hf.addr).await;
    for _ in 0..2 {
        let (status, headers, body) = request(&mut c, "GET", "/").await;
        assert_eq!((status, body.unwrap()), (200, Bytes::from_static(b"ok")));
        assert!(!headers.contains_key("content-length"));
    }
    let connections: Vec<usize> = upstream.seen().iter().map(|s| s.connection).collect();
    assert_eq!(connections, [0, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_response_is_a_502_and_is_not_replayed() {
    for bad in [
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
        "NOT HTTP AT ALL\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    ] {
        let upstream = Scripted::start(move |_, _| reply(bad)).await;
        let hf = harness_for(&upstream, "{}").await;
        let mut c = client(hf.addr).await;
        let (status, _, body) = request(&mut c, "GET", "/").await;
        assert_eq!(status, 502, "{bad:?}: {body:?}");
        assert_eq!(upstream.seen().len(), 1, "{bad:?}: the upstream answered, so the request is not sent again");
    }
    let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..2000 {
        huge.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "x".repeat(40)).as_bytes());
    }
    huge.extend_from_slice(b"\r\n");
    let upstream = Scripted::start(move |_, _| Act::Reply(huge.clone())).await;
    let hf = harness_for(&upstream, "{}").await;
    assert_eq!(request(&mut client(hf.addr).await, "GET", "/").await.0, 502, "a head of more than 64 KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_the_upstream_dropped_is_replaced_without_the_client_noticing() {
    // Connection 0 answers once, then closes when the second request arrives (an upstream's keep-alive timeout
    // racing the request, or an upstream dying as it reads it); connection 1 closes too (it died), connection 2
    // answers everything.
    let script = |connection, request| match (connection, request) {
        (0, 0) => reply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"),
        (0 | 1, _) => Act::Close,
        _ => reply("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"),
    };
    let upstream = Scripted::start(script).await;
    let hf = harness_for(&upstream, "{}").await;
    let mut c = client(hf.addr).await;
    assert_eq!(request(&mut c, "GET", "/").await.2.unwrap(), Bytes::from_static(b"first"));
    let (status, _, body) = request(&mut c, "GET", "/").await;
    assert_eq!((status, body.unwrap()), (200, Bytes::from_static(b"second")));
    let seen = upstream.seen();
    let connections: Vec<usize> = seen.iter().map(|s| s.connection).collect();
    assert_eq!(connections, [0, 0, 1, 2]);
    // The upstream may have got the request on the kept-alive connection, so each delivery after it is marked as
    // the next attempt, and the replay after the new connection failed counts both.
    let attempts: Vec<Option<String>> = seen.iter().map(|s| attempt_header(&s.head)).collect();
    assert_eq!(attempts, [None, None, Some("2".into()), Some("3".into())], "{seen:?}");

    // An upstream that closed an idle connection on its own is noticed before the connection is used.
    let script = |connection, _| {
        Act::ReplyAndClose(format!("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{connection}").into_bytes())
    };
    let upstream = Scripted::start(script).await;
    let hf = harness_for(&upstream, "{}").await;
    let mut c = client(hf.addr).await;
    for expected in ["0", "1", "2"] {
        assert_eq!(request(&mut c, "GET", "/").await.2.unwrap(), expected);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(upstream.seen().len(), 3, "each request was sent once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_cut_short_fails_the_clients_response_instead_of_looking_complete() {
    for cut in [
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    ] {
        let upstream = Scripted::start(move |_, _| Act::ReplyAndClose(cut.as_bytes().to_vec())).await;
        let hf = harness_for(&upstream, "{}").await;
        let mut c = client(hf.addr).await;
        c.ready().await.unwrap();
        let request = http::Request::get("/").header("host", "bodiless.test").body(Empty::new()).unwrap();
        // Either the head got out before the body failed and the body then fails, or the connection ends first:
        // never a response that looks complete.
        if let Ok(response) = c.send_request(request).await {
            assert_eq!(response.status(), 200);
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            assert!(body.is_err(), "{cut:?}: the client must see the body fail, got {body:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_gets_the_read_timeout_then_504() {
    let upstream = Scripted::start(|_, _| Act::Silent).await;
    let policy = r#"{"timeouts":{"upstreamReadMs":300},"replay":{"maxAttempts":2}}"#;
    let hf = harness_for(&upstream, policy).await;
    let started = std::time::Instant::now();
    let (status, _, body) = request(&mut client(hf.addr).await, "GET", "/").await;
    assert_eq!(status, 504, "{body:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2, "replayed once after the timeout (maxAttempts 2)");
    assert!(seen[1].head.to_ascii_lowercase().contains("x-holdfast-attempt: 2"), "{}", seen[1].head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_with_many_fields_passes_up_to_a_hundred_fields() {
    let head_with = |fields: usize| {
        let mut head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n".to_string();
        for i in 1..fields {
            head.push_str(&format!("X-Field-{i}: {i}\r\n"));
        }
        head + "\r\nok"
    };
    let (sixty, hundred_one) = (head_with(60), head_with(101));
    let upstream = Scripted::start(move |_, request| reply(if request == 0 { &sixty } else { &hundred_one })).await;
    let hf = harness_for(&upstream, "{}").await;
    let mut c = client(hf.addr).await;
    let (status, headers, body) = request(&mut c, "GET", "/").await;
    assert_eq!((status, body.unwrap()), (200, Bytes::from_static(b"ok")));
    assert_eq!(headers["x-field-59"], "59");
    assert_eq!(request(&mut c, "GET", "/").await.0, 502, "more fields than hyper's client accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_upstream_connection_is_closed_after_the_idle_timeout_without_further_traffic() {
    // The upstream keeps the connection open after its answer; Holdfast must close it once it has been idle for
    // --upstream-idle-timeout, even though no request comes to sweep it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut chunk = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await.unwrap();
            head.extend_from_slice(&chunk[..n]);
        }
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await.unwrap();
        let answered = std::time::Instant::now();
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        let _ = closed_tx.send((n, answered.elapsed()));
    });
    let dir = tempfile::tempdir().unwrap();
    let (spool, snapshot_file) = (dir.path().join("spool"), dir.path().join("snapshot.json"));
    std::fs::create_dir(&spool).unwrap();
    std::fs::write(&snapshot_file, snapshot(1, &[upstream], "{}")).unwrap();
    let extra = ["--upstream-idle-timeout", "300ms"];
    let dataplane = support::DataplaneProcess::start(&spool, &snapshot_file, &extra).await;
    assert_eq!(support::get(dataplane.addr, "/").await, (200, "ok".to_string()));
    let (read, after) = tokio::time::timeout(Duration::from_secs(5), closed_rx)
        .await
        .expect("the idle upstream connection is still open 5 s later")
        .unwrap();
    assert_eq!(read, 0, "nothing but the close arrives");
    assert!(after >= Duration::from_millis(250), "closed after {after:?}, before the idle timeout");
}

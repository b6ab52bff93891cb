//! Upstreams that answer with bytes no correct server sends, written exactly by a TCP (or HTTP/2) server in the test,
//! against a real dataplane over raw sockets, on every upstream client: Holdfast's own HTTP/1.1 client (a GET, a
//! Buffered upload of known length), hyper's HTTP/1.1 client (a Tee upload sent chunked, a Streaming upload, a
//! WebSocket handshake) and hyper's HTTP/2 client (an `Http2` backend).
//!
//! - a response head over the cap (64 KiB) or with more than 100 fields is a 502, and its connection is closed;
//! - `Content-Length` beside `Transfer-Encoding` on hyper's client: the coding wins, the length is not forwarded, and
//!   the connection carries no further request;
//! - an endless chunk-size line or trailer section is not buffered: the upstream connection is closed.

mod support;

use holdfast_dataplane::metrics::{ReplayLabel, ReplayReason};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::routes::{routed, tls_unverified};
use support::Harness;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

/// Longest any single wait of these tests may take: only reached when something is broken.
const WAIT: Duration = Duration::from_secs(20);
const MAX_HEAD: usize = 64 * 1024;

/// How a request reaches the upstream, hence which upstream client carries it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Path {
    /// A GET: Holdfast's own client, no body.
    PlainGet,
    /// A Buffered upload of known length: Holdfast's own client, the body from the spool.
    PlainBuffered,
    /// A Tee upload of unknown length: hyper's HTTP/1.1 client, sent chunked.
    HyperTee,
    /// A Streaming upload: hyper's HTTP/1.1 client.
    HyperStreaming,
    /// A WebSocket handshake: hyper's HTTP/1.1 client, whose `101` hands the connection over.
    HyperUpgrade,
}

const PATHS: [Path; 5] =
    [Path::PlainGet, Path::PlainBuffered, Path::HyperTee, Path::HyperStreaming, Path::HyperUpgrade];

impl Path {
    fn policy(self) -> serde_json::Value {
        match self {
            Path::PlainGet | Path::PlainBuffered | Path::HyperUpgrade => json!({"mode": "Buffered"}),
            Path::HyperTee => json!({"mode": "Tee"}),
            Path::HyperStreaming => json!({"mode": "Streaming"}),
        }
    }

    fn request(self) -> &'static [u8] {
        match self {
            Path::PlainGet => b"GET /x HTTP/1.1\r\nHost: hostile.test\r\n\r\n",
            Path::PlainBuffered | Path::HyperStreaming => {
                b"PUT /x HTTP/1.1\r\nHost: hostile.test\r\nContent-Length: 5\r\n\r\nhello"
            }
            Path::HyperTee => {
                b"PUT /x HTTP/1.1\r\nHost: hostile.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            }
            Path::HyperUpgrade => {
                b"GET /ws HTTP/1.1\r\nHost: hostile.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            }
        }
    }

    /// The status line a successful answer starts with.
    fn status_line(self) -> &'static str {
        match self {
            Path::HyperUpgrade => "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n",
            _ => "HTTP/1.1 200 OK\r\n",
        }
    }
}

/// What happened on one upstream connection.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Seen {
    /// The connection's `n`th request (from 0) was read.
    Request(usize, usize),
    /// The dataplane closed connection `n` (a read gave 0 or failed).
    Closed(usize),
    /// Writing the response failed on connection `n` before all of it went out.
    WriteFailed(usize),
}

/// An HTTP/1.1 upstream that answers every request with `answer` (written at once, in one `write_all`) and keeps the
/// connection for the next request, reporting what happened on its connections.
async fn hostile(answer: Vec<u8>) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    hostile_over(answer, None).await
}

/// [`hostile`], over TLS with `acceptor` when given.
async fn hostile_over(answer: Vec<u8>, tls: Option<TlsAcceptor>) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        for connection in 0.. {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (answer, tx) = (answer.clone(), tx.clone());
            match tls.clone() {
                None => drop(tokio::spawn(serve(stream, connection, answer, tx))),
                Some(acceptor) => drop(tokio::spawn(async move {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve(stream, connection, answer, tx).await;
                    }
                })),
            }
        }
    });
    (addr, rx)
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    connection: usize,
    answer: Arc<Vec<u8>>,
    tx: mpsc::UnboundedSender<Seen>,
) {
    let mut buf = Vec::new();
    for request in 0.. {
        if read_request(&mut stream, &mut buf).await.is_none() {
            let _ = tx.send(Seen::Closed(connection));
            return;
        }
        let _ = tx.send(Seen::Request(connection, request));
        if stream.write_all(&answer).await.is_err() {
            let _ = tx.send(Seen::WriteFailed(connection));
            return;
        }
    }
}

/// Reads one request (head, then a body of `Content-Length` or a chunked one) off the front of `buf` and the stream.
async fn read_request(stream: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>) -> Option<()> {
    let end = read_until(stream, buf, b"\r\n\r\n").await?;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    buf.drain(..end);
    if head.contains("transfer-encoding: chunked") {
        let end = read_until(stream, buf, b"0\r\n\r\n").await?;
        buf.drain(..end);
    } else if let Some(len) = field(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        while buf.len() < len {
            fill(stream, buf).await?;
        }
        buf.drain(..len);
    }
    Some(())
}

async fn read_until(stream: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>, marker: &[u8]) -> Option<usize> {
    loop {
        if let Some(at) = buf.windows(marker.len()).position(|w| w == marker) {
            return Some(at + marker.len());
        }
        fill(stream, buf).await?;
    }
}

/// One read into `buf`; `None` at the end of the stream, on an error, or after [`WAIT`] with nothing.
async fn fill(stream: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>) -> Option<usize> {
    let mut chunk = [0u8; 16 * 1024];
    match tokio::time::timeout(WAIT, stream.read(&mut chunk)).await {
        Ok(Ok(n)) if n > 0 => {
            buf.extend_from_slice(&chunk[..n]);
            Some(n)
        }
        _ => None,
    }
}

fn field<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// The next thing the upstream reports, within [`WAIT`].
async fn next(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(WAIT, seen.recv()).await.expect("the upstream reported nothing").expect("upstream gone")
}

/// A response as the client got it.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
    /// Whether the body ended where its framing says (rather than with the connection).
    complete: bool,
}

/// Reads one response off a client connection: a `Content-Length` or chunked body, or one up to the close; a `101`
/// has no body here.
async fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Answer {
    try_read_answer(stream, buf).await.expect("no response head")
}

/// [`read_answer`]; `None` when the connection ends before a response head.
async fn try_read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Answer> {
    let end = read_until(stream, buf, b"\r\n\r\n").await?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end);
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let lower = head.to_ascii_lowercase();
    if status == 101 {
        return Some(Answer { status, head, body: Vec::new(), complete: true });
    }
    if lower.contains("transfer-encoding: chunked") {
        let (body, complete) = read_chunked(stream, buf).await;
        return Some(Answer { status, head, body, complete });
    }
    let len = field(&lower, "content-length").and_then(|v| v.parse::<usize>().ok());
    while len.is_none_or(|len| buf.len() < len) {
        if fill(stream, buf).await.is_none() {
            break;
        }
    }
    let complete = len.is_none_or(|len| buf.len() >= len);
    let body: Vec<u8> = buf.drain(..len.unwrap_or(buf.len()).min(buf.len())).collect();
    Some(Answer { status, head, body, complete })
}

/// A chunked body (no extensions or trailers from the dataplane); `false` when the connection ended inside it.
async fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Some(end) = read_until(stream, buf, b"\r\n").await else { return (body, false) };
        let size = usize::from_str_radix(String::from_utf8_lossy(&buf[..end - 2]).trim(), 16).unwrap();
        buf.drain(..end);
        while buf.len() < size + 2 {
            if fill(stream, buf).await.is_none() {
                return (body, false);
            }
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
        if size == 0 {
            return (body, true);
        }
    }
}

/// A dataplane routing everything to `upstream` under `path`'s policy.
async fn dataplane(upstream: SocketAddr, path: Path) -> Harness {
    let snapshot = routed(1, &[upstream], json!({}), path.policy());
    Harness::start(Some(&snapshot.to_string()), 0).await
}

/// Sends `path`'s request on a new client connection and reads the answer.
async fn ask(hf: &Harness, path: Path) -> Answer {
    let mut client = TcpStream::connect(hf.addr).await.unwrap();
    client.write_all(path.request()).await.unwrap();
    read_answer(&mut client, &mut Vec::new()).await
}

/// A response head of exactly `len` bytes: `path`'s status line, `Content-Length: 2` and one field to fill it,
/// then the body `ok`.
fn answer_with_head_of(path: Path, len: usize) -> Vec<u8> {
    let mut head = format!("{}Content-Length: 2\r\nX-Big: ", path.status_line()).into_bytes();
    head.resize(len - 4, b'b');
    head.extend_from_slice(b"\r\n\r\nok");
    head
}

/// Waits until the upstream reports that the dataplane closed `connection` (or that writing to it failed).
async fn closed(seen: &mut mpsc::UnboundedReceiver<Seen>, connection: usize) {
    for _ in 0..10 {
        match next(seen).await {
            Seen::Closed(c) | Seen::WriteFailed(c) if c == connection => return,
            _ => {}
        }
    }
    panic!("connection {connection} was not closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_head_over_the_cap_is_a_502_on_every_http1_path_and_its_connection_closed() {
    // 70 and 119 KiB: complete in the read that crosses the cap on Holdfast's own client; 300 KiB: within hyper's
    // default buffer.
    for path in PATHS {
        for len in [MAX_HEAD + 1, 70 * 1024, 119 * 1024, 300 * 1024] {
            let (upstream, mut seen) = hostile(answer_with_head_of(path, len)).await;
            let hf = dataplane(upstream, path).await;
            let answer = ask(&hf, path).await;
            assert_eq!(answer.status, 502, "{path:?}, a head of {len} bytes: {}", answer.head);
            assert_eq!(next(&mut seen).await, Seen::Request(0, 0), "{path:?}: one delivery, no replay");
            closed(&mut seen, 0).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_head_at_the_cap_passes_on_every_http1_path() {
    for path in PATHS {
        let answer = answer_with_head_of(path, MAX_HEAD);
        let sent = field(std::str::from_utf8(&answer).unwrap(), "x-big").unwrap().len();
        let (upstream, _seen) = hostile(answer).await;
        let hf = dataplane(upstream, path).await;
        let got = ask(&hf, path).await;
        let expected = if path == Path::HyperUpgrade { 101 } else { 200 };
        assert_eq!(got.status, expected, "{path:?}: {}", &got.head[..got.head.len().min(200)]);
        assert_eq!(field(&got.head, "x-big").map(str::len), Some(sent), "{path:?}");
    }
}

/// A head with `n` fields besides `Content-Length`.
fn answer_with_fields(path: Path, n: usize) -> Vec<u8> {
    let mut head = format!("{}Content-Length: 2\r\n", path.status_line());
    // The status line of a 101 brings two fields of its own.
    let own = if path == Path::HyperUpgrade { 2 } else { 0 };
    for i in own..n {
        head.push_str(&format!("X-F{i}: {i}\r\n"));
    }
    head.push_str("\r\nok");
    head.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_with_more_than_100_fields_is_a_502_on_every_http1_path() {
    for path in PATHS {
        // 99 + Content-Length: at the cap; 100 + Content-Length: over it.
        for (n, expected) in [(99, if path == Path::HyperUpgrade { 101 } else { 200 }), (100, 502)] {
            let (upstream, _seen) = hostile(answer_with_fields(path, n)).await;
            let hf = dataplane(upstream, path).await;
            let answer = ask(&hf, path).await;
            assert_eq!(answer.status, expected, "{path:?} with {} fields", n + 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_beside_transfer_encoding_is_dropped_on_hyper_paths_and_the_connection_not_reused() {
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
                   5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    for first in [Path::HyperTee, Path::HyperStreaming] {
        let (upstream, mut seen) = hostile(answer.to_vec()).await;
        let hf = dataplane(upstream, first).await;
        // The second request is a Tee one, which takes a pooled connection if there is one; on the same client
        // connection, hence the same worker and its pool.
        let mut client = TcpStream::connect(hf.addr).await.unwrap();
        let mut buf = Vec::new();
        client.write_all(first.request()).await.unwrap();
        let got = read_answer(&mut client, &mut buf).await;
        assert_eq!(got.status, 200);
        assert!(field(&got.head, "content-length").is_none(), "{first:?} forwarded the length: {}", got.head);
        assert_eq!((got.body.as_slice(), got.complete), (&b"hello world"[..], true), "{first:?}");
        assert_eq!(next(&mut seen).await, Seen::Request(0, 0));
        closed(&mut seen, 0).await;

        client.write_all(Path::HyperTee.request()).await.unwrap();
        let again = read_answer(&mut client, &mut buf).await;
        assert_eq!((again.status, again.body.as_slice()), (200, &b"hello world"[..]));
        assert_eq!(next(&mut seen).await, Seen::Request(1, 0), "{first:?}: a new connection for the next request");
    }
}

/// An answer whose chunked body never ends its chunk-size line (`line`) or its trailer section (trailers): the
/// upstream writes 32 MiB of it, more than the loopback's socket buffers hold.
fn endless(prefix: &[u8], filler: &[u8]) -> Vec<u8> {
    let mut answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    answer.extend_from_slice(prefix);
    while answer.len() < 32 << 20 {
        answer.extend_from_slice(filler);
    }
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_chunk_size_line_or_trailer_section_is_not_buffered() {
    let cases = [
        ("extension", endless(b"5;", b"e")),
        ("whitespace", endless(b"5", b" ")),
        ("trailers", endless(b"5\r\nhello\r\n0\r\n", b"X-Trailer: t\r\n")),
    ];
    for path in [Path::PlainGet, Path::HyperTee] {
        for (what, answer) in &cases {
            let (upstream, mut seen) = hostile(answer.clone()).await;
            // hyper's client consumes whitespace after a chunk size without a count (nothing is buffered, and nothing
            // is handed on): there the response body's idle timeout ends it.
            let mut policy = path.policy();
            policy["timeouts"] = json!({"upstreamReadMs": 2000});
            let snapshot = routed(1, &[upstream], json!({}), policy);
            let hf = Harness::start(Some(&snapshot.to_string()), 0).await;
            let mut client = TcpStream::connect(hf.addr).await.unwrap();
            client.write_all(path.request()).await.unwrap();
            assert_eq!(next(&mut seen).await, Seen::Request(0, 0));
            // The upstream cannot write all of it: the dataplane stops reading and closes the connection.
            let stopped = next(&mut seen).await;
            assert!(matches!(stopped, Seen::WriteFailed(0) | Seen::Closed(0)), "{path:?}, endless {what}: {stopped:?}");
            // The head may have gone out before the body failed, or not: either way the client's connection ends
            // without a complete response (a 502 is no longer possible once the head is committed).
            let got = try_read_answer(&mut client, &mut Vec::new()).await;
            assert!(got.is_none_or(|got| !got.complete), "{path:?}, endless {what}: the response looks complete");
        }
    }
}

/// A TLS acceptor with a certificate made for the test (the dataplane does not verify it: `tls_unverified`).
fn tls_acceptor() -> TlsAcceptor {
    let made = rcgen::generate_simple_self_signed(vec![support::peer::TLS_NAME.to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_upstream_is_held_to_the_same_head_cap_and_its_length_beside_a_coding_dropped() {
    // Every request to a TLS backend goes through hyper's client, a GET included.
    let cases = [(MAX_HEAD, 200), (MAX_HEAD + 1, 502), (300 * 1024, 502)];
    for (len, expected) in cases {
        let (upstream, mut seen) = hostile_over(answer_with_head_of(Path::PlainGet, len), Some(tls_acceptor())).await;
        let snapshot = routed(1, &[upstream], json!({"tls": tls_unverified()}), json!({"mode": "Buffered"}));
        let hf = Harness::start(Some(&snapshot.to_string()), 0).await;
        let got = ask(&hf, Path::PlainGet).await;
        assert_eq!(got.status, expected, "a head of {len} bytes over TLS");
        assert_eq!(next(&mut seen).await, Seen::Request(0, 0));
        if expected == 502 {
            closed(&mut seen, 0).await;
        }
    }

    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
                   5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let (upstream, mut seen) = hostile_over(answer.to_vec(), Some(tls_acceptor())).await;
    let snapshot = routed(1, &[upstream], json!({"tls": tls_unverified()}), json!({"mode": "Buffered"}));
    let hf = Harness::start(Some(&snapshot.to_string()), 0).await;
    let mut client = TcpStream::connect(hf.addr).await.unwrap();
    let mut buf = Vec::new();
    for (nth, connection) in [(0, 0), (1, 1)] {
        client.write_all(Path::PlainGet.request()).await.unwrap();
        let got = read_answer(&mut client, &mut buf).await;
        assert!(field(&got.head, "content-length").is_none(), "the length was forwarded: {}", got.head);
        assert_eq!((got.body.as_slice(), got.complete), (&b"hello world"[..], true), "request {nth}");
        assert_eq!(next(&mut seen).await, Seen::Request(connection, 0), "request {nth} on a new connection");
        if nth == 0 {
            closed(&mut seen, 0).await;
        }
    }
}

/// HTTP/2 framing for the hostile HTTP/2 upstream.
mod h2_frames {
    pub const HEADERS: u8 = 0x1;
    pub const SETTINGS: u8 = 0x4;
    pub const CONTINUATION: u8 = 0x9;
    pub const END_STREAM: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const ACK: u8 = 0x1;
    /// SETTINGS_MAX_FRAME_SIZE's default: the largest frame payload the client takes.
    const MAX_FRAME: usize = 16 * 1024;

    pub fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
    }

    /// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), the prefix's other bits zero.
    fn integer(out: &mut Vec<u8>, mut value: usize, n: u32) {
        let max = (1usize << n) - 1;
        if value < max {
            out.push(value as u8);
            return;
        }
        out.push(max as u8);
        value -= max;
        while value >= 128 {
            out.push((value % 128 + 128) as u8);
            value /= 128;
        }
        out.push(value as u8);
    }

    /// A header block: `:status: 200` (static index 8), then each field as a literal without indexing, new name.
    pub fn block(fields: &[(String, String)]) -> Vec<u8> {
        let mut out = vec![0x88];
        for (name, value) in fields {
            out.push(0x00);
            integer(&mut out, name.len(), 7);
            out.extend_from_slice(name.as_bytes());
            integer(&mut out, value.len(), 7);
            out.extend_from_slice(value.as_bytes());
        }
        out
    }

    /// The response on `stream`: HEADERS and as many CONTINUATION frames as the block needs, ending the stream.
    pub fn response(stream: u32, block: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let pieces: Vec<&[u8]> = block.chunks(MAX_FRAME).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let last = if i + 1 == pieces.len() { END_HEADERS } else { 0 };
            match i {
                0 => frame(&mut out, HEADERS, END_STREAM | last, stream, piece),
                _ => frame(&mut out, CONTINUATION, last, stream, piece),
            }
        }
        out
    }
}

/// An HTTP/2 (h2c, prior knowledge) upstream answering each request's HEADERS with `fields`, with no body.
async fn hostile_h2(fields: Vec<(String, String)>) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let block = Arc::new(h2_frames::block(&fields));
    tokio::spawn(async move {
        for connection in 0.. {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(serve_h2(stream, connection, block.clone(), tx.clone()));
        }
    });
    (addr, rx)
}

async fn serve_h2(mut stream: TcpStream, connection: usize, block: Arc<Vec<u8>>, tx: mpsc::UnboundedSender<Seen>) {
    use h2_frames::{frame, response, ACK, END_HEADERS, HEADERS, SETTINGS};
    let mut buf = Vec::new();
    let mut hello = Vec::new();
    frame(&mut hello, SETTINGS, 0, 0, &[]);
    frame(&mut hello, SETTINGS, ACK, 0, &[]);
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if read_until(&mut stream, &mut buf, preface).await.is_none() || stream.write_all(&hello).await.is_err() {
        return;
    }
    buf.drain(..preface.len());
    let mut requests = 0;
    // Ends: every round consumes a frame or reads more, and reading ends with the connection or after `WAIT`.
    loop {
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            let (kind, flags) = (buf[3], buf[4]);
            let id = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            buf.drain(..9 + len);
            if kind == HEADERS && flags & END_HEADERS != 0 {
                let _ = tx.send(Seen::Request(connection, requests));
                requests += 1;
                if stream.write_all(&response(id, &block)).await.is_err() {
                    let _ = tx.send(Seen::WriteFailed(connection));
                    return;
                }
            }
        }
        if fill(&mut stream, &mut buf).await.is_none() {
            let _ = tx.send(Seen::Closed(connection));
            return;
        }
    }
}

async fn h2_dataplane(upstream: SocketAddr) -> Harness {
    let snapshot = routed(1, &[upstream], json!({"protocol": "Http2"}), json!({"mode": "Buffered"}));
    Harness::start(Some(&snapshot.to_string()), 0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_upstream_is_held_to_the_same_head_cap_and_field_count() {
    let big = |len: usize| vec![("x-big".to_string(), "b".repeat(len))];
    let numbered = |n: usize| (0..n).map(|i| (format!("x-f{i}"), i.to_string())).collect::<Vec<_>>();
    // Header list sizes count 32 bytes per field beside its name and value (RFC 9113 §6.5.2).
    let cases = [
        ("a 40 KiB head (over h2's own 16 KiB default)", big(40 * 1024), 200),
        ("a head just under the cap", big(MAX_HEAD - 5 - 32 - 1024), 200),
        ("a head over the cap", big(MAX_HEAD + 1), 502),
        ("a head of 300 KiB", big(300 * 1024), 502),
        ("100 fields", numbered(100), 200),
        ("101 fields", numbered(101), 502),
    ];
    for (what, fields, expected) in cases {
        let (upstream, mut seen) = hostile_h2(fields).await;
        let hf = h2_dataplane(upstream).await;
        let answer = ask(&hf, Path::PlainGet).await;
        assert_eq!(answer.status, expected, "{what}: {}", &answer.head[..answer.head.len().min(200)]);
        assert_eq!(next(&mut seen).await, Seen::Request(0, 0), "{what}");
        if expected == 502 {
            // Refused by h2 or by the field count as an invalid response: no replay.
            let label = ReplayLabel { reason: ReplayReason::reset_before_response };
            assert_eq!(hf.dp.metrics.replays.get_or_create(&label).get(), 0, "{what}: replayed");
        }
    }
}

//! Request-side framing: raw request bytes through hyper's HTTP/1.1 server, set up as the dataplane's listener sets
//! it up, into Holdfast's decisions about each request's body: the length hyper declares from `Content-Length` and
//! `Transfer-Encoding` (`size_hint().exact()`, which picks the body's path and refuses a declared length over the
//! limit before `100 Continue`), the body hyper then hands over, and the head Holdfast writes upstream for it
//! (`forward::upstream_head`, encoded as the plain client sends it).
//!
//! Checked for every request: a declared length is the length of the body that arrives; the upstream head is one
//! complete, valid HTTP/1.1 head with the client's method, with `Content-Length` exactly when the length is known
//! and equal to it, and without `Transfer-Encoding`, `Expect` or any other hop-by-hop field (a request smuggled
//! through either would reach the backend framed differently than Holdfast read it). And the stream gives the same
//! requests whether it arrives in one read or cut at the fuzzer's points.

#![no_main]

use bytes::Bytes;
use holdfast_dataplane::fuzzing::upstream_request_head;
use holdfast_fuzz::Split;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The dataplane's HTTP/1 read buffer cap (`server::READ_BUFFER`).
const READ_BUFFER: usize = 64 * 1024;

/// What Holdfast made of one request.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    method: String,
    declared: Option<u64>,
    /// The body's length, or `None` when hyper failed it (cut short, bad chunk).
    received: Option<usize>,
    upstream_head: Vec<u8>,
}

fuzz_target!(|input: &[u8]| {
    let split = Split::new(input);
    let whole = serve(vec![split.stream]);
    for seen in &whole {
        check(seen);
    }
    assert_eq!(serve(split.pieces()), whole, "cut at the fuzzer's points");
});

/// Serves the stream on one connection, read in `pieces`, and returns what each request became.
fn serve(pieces: Vec<&[u8]>) -> Vec<Seen> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let io = Reads { pieces: pieces.into_iter().filter(|p| !p.is_empty()).collect(), next: 0 };
    let service = {
        let seen = seen.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let seen = seen.clone();
            async move {
                let entry = decide(request).await;
                seen.borrow_mut().push(entry);
                Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // As `server::serve_listener` sets hyper up (its header read timeout is kept elsewhere, with a real clock).
    builder.header_read_timeout(None).keep_alive(true).half_close(true).max_buf_size(READ_BUFFER);
    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    // The connection's errors are the client's (a malformed request): hyper answers or closes, as it does live.
    let _ = runtime().block_on(connection);
    Rc::try_unwrap(seen).map(RefCell::into_inner).unwrap_or_default()
}

async fn decide(request: Request<Incoming>) -> Seen {
    let declared = request.body().size_hint().exact();
    let method = request.method().to_string();
    let (parts, body) = request.into_parts();
    let received = body.collect().await.ok().map(|body| body.to_bytes().len());
    Seen { method, declared, received, upstream_head: upstream_request_head(parts, declared) }
}

fn check(seen: &Seen) {
    if let (Some(declared), Some(received)) = (seen.declared, seen.received) {
        assert_eq!(declared, received as u64, "declared length and body differ");
    }
    let mut fields = [httparse::EMPTY_HEADER; 256];
    let mut parsed = httparse::Request::new(&mut fields);
    match parsed.parse(&seen.upstream_head) {
        Ok(httparse::Status::Complete(len)) => assert_eq!(len, seen.upstream_head.len(), "bytes after the head"),
        other => panic!("upstream head does not parse: {other:?}\n{}", String::from_utf8_lossy(&seen.upstream_head)),
    }
    assert_eq!(parsed.method, Some(seen.method.as_str()), "method changed");
    assert_eq!(parsed.version, Some(1), "not HTTP/1.1");
    let named = |name: &str| parsed.headers.iter().filter(|f| f.name.eq_ignore_ascii_case(name)).count();
    for hop_by_hop in ["transfer-encoding", "expect", "connection", "keep-alive", "proxy-connection", "upgrade"] {
        assert_eq!(named(hop_by_hop), 0, "{hop_by_hop} sent upstream");
    }
    let lengths: Vec<&[u8]> =
        parsed.headers.iter().filter(|f| f.name.eq_ignore_ascii_case("content-length")).map(|f| f.value).collect();
    match seen.declared {
        Some(len) => assert_eq!(lengths, vec![len.to_string().as_bytes()], "Content-Length upstream"),
        None => assert!(lengths.is_empty(), "Content-Length upstream for a body of unknown length"),
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    // No I/O driver and no timer: the connection is in memory and the server has no timeouts here.
    RUNTIME.get_or_init(|| match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(error) => panic!("no tokio runtime for the fuzz target: {error}"),
    })
}

/// The client's side of the connection in memory: each read returns the next piece, then the end of the stream;
/// writes (the responses) are taken and dropped. Never pending, so a request that waits for more ends at once.
struct Reads<'a> {
    pieces: Vec<&'a [u8]>,
    next: usize,
}

impl AsyncRead for Reads<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(piece) = this.pieces.get(this.next).copied() {
            let n = piece.len().min(buf.remaining());
            buf.put_slice(&piece[..n]);
            if n == piece.len() {
                this.next += 1;
            } else {
                this.pieces[this.next] = &piece[n..];
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Reads<'_> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

//! What the request path and the client's socket tell each other about one client connection.
//!
//! **Watching the client while its request is delivered** (seeds 000 and 003): hyper, with half-close allowed, does
//! not read the socket between the end of a body and the response, so it would not notice a client that went away.
//! The socket is shared (`Arc<TcpStream>`) so that [`ConnState::client_signal`] can peek at it meanwhile: a reset
//! means the client is gone; an end-of-file is either a half-close or a close, which TCP cannot tell apart without
//! writing, and the route's `halfClose` policy decides.
//!
//! The server creates one per accepted connection and its socket wrapper (`server::client_io`) reads the flags set
//! here; the request path ([`crate::proxy`]) sets them and watches the socket. Both sit above this module, so neither
//! imports the other for it.

use super::direct_body::DirectBody;
use holdfast_snapshot::MinBodyRate;
use prometheus_client::metrics::counter::Counter;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::net::TcpStream;

/// What the client did while its request was being delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSignal {
    /// End of file: a half-close (`shutdown(SHUT_WR)`) or a close.
    Eof,
    /// The connection was reset or failed: the client is gone.
    Gone,
}

/// What the request handlers and the socket tell each other about one client connection.
#[derive(Debug)]
pub struct ConnState {
    socket: Arc<TcpStream>,
    linger: AtomicBool,
    requests: AtomicU32,
    /// Responses whose body is still being sent (each request has one): with `requests`, what the header read
    /// timeout watches.
    responses_open: AtomicU32,
    http2: AtomicBool,
    /// `None` when hyper does not read this socket itself (TLS: it reads the decrypted stream above it), or when
    /// bodies are never read past hyper.
    direct_body: Option<DirectBody>,
    /// The least the client must read of its responses (`minBodyRate`, packed by [`pack`]): set by each request from
    /// its route's policy, read by the socket only when it finds the client not reading.
    read_floor: AtomicU64,
    /// Where a connection closed for reading too slowly is counted (set by its first request).
    read_too_slow: OnceLock<Counter>,
}

/// A rate in one word: bytes per second high, window low (both far below 2³² within the snapshot's bounds).
fn pack(rate: MinBodyRate) -> u64 {
    (rate.bytes_per_second.min(u32::MAX.into()) << 32) | rate.window_ms.min(u32::MAX.into())
}

fn unpack(word: u64) -> MinBodyRate {
    MinBodyRate { bytes_per_second: word >> 32, window_ms: word & u64::from(u32::MAX) }
}

impl ConnState {
    /// `direct_min`: bodies declared at least this large are read past hyper ([`DirectBody`]); `None` when hyper
    /// does not read this socket itself (TLS) or when that is turned off.
    pub fn new(socket: Arc<TcpStream>, direct_min: Option<u64>) -> Self {
        let direct_body = direct_min.map(|min_len| DirectBody::new(socket.clone(), min_len));
        ConnState {
            socket,
            linger: AtomicBool::new(false),
            requests: AtomicU32::new(0),
            responses_open: AtomicU32::new(0),
            http2: AtomicBool::new(false),
            direct_body,
            read_floor: AtomicU64::new(pack(MinBodyRate::default())),
            read_too_slow: OnceLock::new(),
        }
    }

    /// Judges the client's reading by `rate` from now on (the route of its latest request decides: on HTTP/2 several
    /// routes share the connection, and it is the connection that a slow reader holds), counting a close in `closed`.
    pub fn watch_reads(&self, rate: MinBodyRate, closed: &Counter) {
        self.read_floor.store(pack(rate), Ordering::Relaxed);
        self.read_too_slow.get_or_init(|| closed.clone());
    }

    /// The least the client must read, per [`ConnState::watch_reads`].
    pub(crate) fn read_floor(&self) -> MinBodyRate {
        unpack(self.read_floor.load(Ordering::Relaxed))
    }

    /// The connection is being closed for reading too slowly.
    pub(crate) fn count_read_too_slow(&self) {
        if let Some(counter) = self.read_too_slow.get() {
            counter.inc();
        }
    }

    /// Reading a body of `len` declared bytes past hyper, when this connection does that for such a body.
    pub fn direct_body(&self, len: u64) -> Option<&DirectBody> {
        self.direct_body.as_ref().filter(|direct| len >= direct.min_len())
    }

    /// Whether a request's body was read past hyper: hyper cannot read another request from this connection.
    pub fn body_taken(&self) -> bool {
        self.direct_body.as_ref().is_some_and(DirectBody::taken)
    }

    /// A response went out before the request body was read to its end: linger when closing.
    pub fn linger_on_close(&self) {
        self.linger.store(true, Ordering::Release);
    }

    /// Counts a request, whose response is on its way until the guard (held by the response body) is dropped.
    /// Returns how many requests this connection has carried, this one included.
    pub fn start_request(self: &Arc<Self>) -> (u32, ResponseInFlight) {
        let served = self.requests.fetch_add(1, Ordering::AcqRel) + 1;
        self.responses_open.fetch_add(1, Ordering::AcqRel);
        (served, ResponseInFlight(self.clone()))
    }

    /// Changes whenever a request head arrives (`requests` + 1, `responses_open` + 1) or a response finishes
    /// (`responses_open` − 1): twice the requests less the responses still open.
    pub(crate) fn activity(&self) -> u32 {
        let requests = self.requests.load(Ordering::Acquire);
        requests.wrapping_mul(2).wrapping_sub(self.responses_open.load(Ordering::Acquire))
    }

    /// A response is being sent, or the connection is closing after one (lingering has its own bounds).
    pub(crate) fn busy(&self) -> bool {
        self.responses_open.load(Ordering::Acquire) > 0 || self.linger.load(Ordering::Acquire)
    }

    /// The connection carries HTTP/2 (seen on its first request).
    pub fn mark_http2(&self) {
        self.http2.store(true, Ordering::Release);
    }

    pub(crate) fn is_http2(&self) -> bool {
        self.http2.load(Ordering::Acquire)
    }

    /// Resolves when the client half-closes, closes or resets. Call it only once the request body has been read:
    /// bytes waiting on the socket (a pipelined request) mean the client is still there, and the watch ends
    /// without resolving.
    pub async fn client_signal(&self) -> ClientSignal {
        let mut byte = [0u8; 1];
        match self.socket.peek(&mut byte).await {
            Ok(0) => ClientSignal::Eof,
            Ok(_) => std::future::pending().await,
            Err(_) => ClientSignal::Gone,
        }
    }
    /// The client's socket, shared with the reader hyper uses.
    pub(crate) fn socket(&self) -> &Arc<TcpStream> {
        &self.socket
    }

    /// Whether a close must linger ([`ConnState::linger_on_close`] was called).
    pub(crate) fn lingers(&self) -> bool {
        self.linger.load(Ordering::Acquire)
    }

    /// The hand-over of large bodies, when this connection reads them past hyper.
    pub(crate) fn direct(&self) -> Option<&DirectBody> {
        self.direct_body.as_ref()
    }
}

/// Counts a response as being sent while it lives: held by the request's future, then by its response body.
#[derive(Debug)]
pub struct ResponseInFlight(Arc<ConnState>);

impl Drop for ResponseInFlight {
    fn drop(&mut self) {
        self.0.responses_open.fetch_sub(1, Ordering::AcqRel);
    }
}

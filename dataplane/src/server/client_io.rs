//! The client's socket as hyper sees it, with the three things hyper does not do for us.
//!
//! **Lingering close** (RFC 9112 §9.6, seed 001): when Holdfast answers without reading the whole body (413, 507, an
//! early upstream response), closing the socket while the client is still sending makes the kernel send a reset that
//! can destroy the response before the client reads it. So on such a connection, shutting down first half-closes
//! (FIN after the response), then reads and discards the client's bytes for a bounded time and amount, and only then
//! lets the socket close.
//!
//! **Watching the client while its request is delivered** (seeds 000 and 003): hyper, with half-close allowed, does
//! not read the socket between the end of a body and the response, so it would not notice a client that went away.
//! The socket is shared (`Arc<TcpStream>`) so that [`ConnState::client_signal`] can peek at it meanwhile: a reset
//! means the client is gone; an end-of-file is either a half-close or a close, which TCP cannot tell apart without
//! writing, and the route's `halfClose` policy decides.

use super::direct_body::DirectBody;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// Bounds of a lingering close.
#[derive(Debug, Clone, Copy)]
pub struct Lingering {
    pub timeout: Duration,
    pub max_bytes: u64,
}

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
    pub(super) fn activity(&self) -> u32 {
        let requests = self.requests.load(Ordering::Acquire);
        requests.wrapping_mul(2).wrapping_sub(self.responses_open.load(Ordering::Acquire))
    }

    /// A response is being sent, or the connection is closing after one (lingering has its own bounds).
    pub(super) fn busy(&self) -> bool {
        self.responses_open.load(Ordering::Acquire) > 0 || self.linger.load(Ordering::Acquire)
    }

    /// The connection carries HTTP/2 (seen on its first request).
    pub fn mark_http2(&self) {
        self.http2.store(true, Ordering::Release);
    }

    pub(super) fn is_http2(&self) -> bool {
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
}

/// Counts a response as being sent while it lives: held by the request's future, then by its response body.
#[derive(Debug)]
pub struct ResponseInFlight(Arc<ConnState>);

impl Drop for ResponseInFlight {
    fn drop(&mut self) {
        self.0.responses_open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The shared client socket, readable and writable by hyper.
pub struct ClientIo {
    socket: Arc<TcpStream>,
    state: Arc<ConnState>,
    lingering: Lingering,
    drain: Option<Drain>,
}

struct Drain {
    write_shut: bool,
    deadline: Pin<Box<Sleep>>,
    discarded: u64,
}

impl ClientIo {
    pub fn new(state: Arc<ConnState>, lingering: Lingering) -> Self {
        ClientIo { socket: state.socket.clone(), state, lingering, drain: None }
    }

    /// Reads like tokio's own `TcpStream::poll_read`, including its one economy: a read that returns less than the
    /// buffer could take has emptied the socket, so the readiness is forgotten and the next read waits for epoll
    /// instead of trying the socket and getting `EAGAIN` — one system call fewer per request, here and in the peek
    /// of [`ConnState::client_signal`]. `try_read` alone keeps the readiness until a read fails; `try_io` forgets it
    /// when its closure reports `WouldBlock`, so the closure reports that after a short read and hands the bytes
    /// over on the side.
    fn read_into(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.socket.poll_read_ready(cx))?;
            // Read into hyper's buffer as it is: `try_read_buf` fills uninitialised capacity, so nothing is zeroed
            // first (hyper hands over all of its buffer's spare room, 8–64 KiB, to every read).
            let capacity = buf.remaining();
            let mut short_read = None;
            let result = self.socket.try_io(Interest::READABLE, || {
                let n = self.socket.try_read_buf(&mut *buf)?;
                if n > 0 && n < capacity {
                    short_read = Some(n);
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            });
            match (result, short_read) {
                // `try_read_buf` has advanced `buf` past the bytes read.
                (_, Some(_)) | (Ok(_), None) => return Poll::Ready(Ok(())),
                (Err(e), None) if e.kind() == io::ErrorKind::WouldBlock => continue,
                (Err(e), None) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        match socket2::SockRef::from(&*self.socket).shutdown(std::net::Shutdown::Write) {
            // Already disconnected: nothing left to shut down.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        }
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Some(direct) = &self.state.direct_body {
            if !direct.hyper_may_read(cx) {
                return Poll::Pending;
            }
        }
        self.read_into(cx, buf)
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.socket.poll_write_ready(cx))?;
            match self.socket.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.socket.poll_write_ready(cx))?;
            match self.socket.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // TCP has no user-space buffer to flush.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.state.linger.load(Ordering::Acquire) {
            return Poll::Ready(this.shutdown_write());
        }
        let timeout = this.lingering.timeout;
        let mut drain = this.drain.take().unwrap_or_else(|| Drain {
            write_shut: false,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            discarded: 0,
        });
        if !drain.write_shut {
            this.shutdown_write()?;
            drain.write_shut = true;
        }
        let mut scratch = [0u8; 16 * 1024];
        loop {
            if drain.deadline.as_mut().poll(cx).is_ready() || drain.discarded >= this.lingering.max_bytes {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match this.read_into(cx, &mut buf) {
                Poll::Pending => {
                    this.drain = Some(drain);
                    return Poll::Pending;
                }
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => drain.discarded += buf.filled().len() as u64,
                // End of file or an error: the client is done, the socket may close.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
            }
        }
    }
}

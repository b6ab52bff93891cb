//! The client's socket as hyper sees it, with the two things hyper does not do for us.
//!
//! **Lingering close** (RFC 9112 §9.6, seed 001): when Holdfast answers without reading the whole body (413, 507, an
//! early upstream response), closing the socket while the client is still sending makes the kernel send a reset that
//! can destroy the response before the client reads it. So on such a connection, shutting down first half-closes
//! (FIN after the response), then reads and discards the client's bytes for a bounded time and amount, and only then
//! lets the socket close.
//!
//! **Half-close detection** (seed 003): a read that returns end-of-file is recorded, so a request whose policy says
//! `halfClose: Abort` can treat it as the client going away, while the default (`Respond`) answers first.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Sleep;

/// Bounds of a lingering close.
#[derive(Debug, Clone, Copy)]
pub struct Lingering {
    pub timeout: Duration,
    pub max_bytes: u64,
}

/// What the request handlers and the socket tell each other about one client connection.
#[derive(Debug, Default)]
pub struct ConnState {
    linger: AtomicBool,
    read_eof: AtomicBool,
    eof: Notify,
    requests: AtomicU32,
}

impl ConnState {
    /// A response went out before the request body was read to its end: linger when closing.
    pub fn linger_on_close(&self) {
        self.linger.store(true, Ordering::Release);
    }

    /// Counts a request; returns how many this connection has carried, this one included.
    pub fn count_request(&self) -> u32 {
        self.requests.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Resolves once the client has shut down its write side (or closed).
    pub async fn client_eof(&self) {
        loop {
            let notified = self.eof.notified();
            if self.read_eof.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    fn saw_eof(&self) {
        self.read_eof.store(true, Ordering::Release);
        self.eof.notify_waiters();
    }
}

pub struct ClientIo<S> {
    inner: S,
    state: std::sync::Arc<ConnState>,
    lingering: Lingering,
    drain: Option<Drain>,
}

struct Drain {
    write_shut: bool,
    deadline: Pin<Box<Sleep>>,
    discarded: u64,
}

impl<S> ClientIo<S> {
    pub fn new(inner: S, state: std::sync::Arc<ConnState>, lingering: Lingering) -> Self {
        ClientIo { inner, state, lingering, drain: None }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ClientIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut self.inner).poll_read(cx, buf));
        if result.is_ok() && buf.filled().len() == before && buf.remaining() > 0 {
            self.state.saw_eof();
        }
        Poll::Ready(result)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ClientIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let lingers = this.state.linger.load(Ordering::Acquire) && !this.state.read_eof.load(Ordering::Acquire);
        if !lingers {
            return Pin::new(&mut this.inner).poll_shutdown(cx);
        }
        let timeout = this.lingering.timeout;
        let drain = this.drain.get_or_insert_with(|| Drain {
            write_shut: false,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            discarded: 0,
        });
        if !drain.write_shut {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            drain.write_shut = true;
        }
        let mut scratch = [0u8; 16 * 1024];
        loop {
            if drain.deadline.as_mut().poll(cx).is_ready() || drain.discarded >= this.lingering.max_bytes {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut this.inner).poll_read(cx, &mut buf)) {
                Ok(()) if !buf.filled().is_empty() => drain.discarded += buf.filled().len() as u64,
                // End of file or an error: the client is done, the socket may close.
                _ => return Poll::Ready(Ok(())),
            }
        }
    }
}

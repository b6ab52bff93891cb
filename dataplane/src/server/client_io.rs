//! The client's socket as hyper sees it, with what hyper does not do for us.
//!
//! **Lingering close** (RFC 9112 §9.6, seed 001): when Holdfast answers without reading the whole body (413, 507, an
//! early upstream response), closing the socket while the client is still sending makes the kernel send a reset that
//! can destroy the response before the client reads it. So on such a connection, shutting down first half-closes
//! (FIN after the response), then reads and discards the client's bytes for a bounded time and amount, and only then
//! lets the socket close.
//!
//! **Watching the client while its request is delivered**: the socket is shared with [`ConnState`], which peeks at it
//! while hyper is not reading (`crate::client`).
//!
//! **Slow readers** (`minBodyRate`, [`crate::min_rate`]): a client that reads its responses slower than the rate holds
//! the connection, the response's upstream connection and the bytes in between. The time judged is the time writes
//! wait for the client's socket to take more; a window of it that closes short with data still waiting closes the
//! connection, with a reset: the bytes the client did not read are dropped at once instead of being kept in the
//! kernel for a client that does not read them. A fast reader never makes a write wait, so it pays for nothing: no
//! clock read, no timer. A write that waited reads the clock once when it goes through. The rate is the connection's,
//! not a response's: the bytes waiting in the socket may belong to a response already finished, or on HTTP/2 to
//! several.

use crate::client::ConnState;
use crate::min_rate::{RateWindows, TooSlow};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// Bounds of a lingering close.
#[derive(Debug, Clone, Copy)]
pub struct Lingering {
    pub timeout: Duration,
    pub max_bytes: u64,
}

/// The shared client socket, readable and writable by hyper.
pub struct ClientIo {
    socket: Arc<TcpStream>,
    state: Arc<ConnState>,
    lingering: Lingering,
    drain: Option<Drain>,
    /// Created the first time a write waits for the client (boxed: most connections never need one).
    reads: Option<Box<ReadWatch>>,
}

/// The client's reading, judged in windows of time spent waiting for it to take more.
struct ReadWatch {
    windows: RateWindows,
    /// When the current wait began; `None` while writes go through.
    waiting_since: Option<Instant>,
    /// Wakes the connection's task when the windows run out of patience, so that a client that reads nothing at all
    /// is judged too.
    timer: Pin<Box<Sleep>>,
    /// A window closed short: the next write fails.
    verdict: Option<TooSlow>,
}

impl ReadWatch {
    /// `n` bytes went through; the wait before them, if there was one, ended now.
    fn wrote(&mut self, n: usize) {
        let waited = self.waiting_since.take().map_or(Duration::ZERO, |since| since.elapsed());
        if let Err(too_slow) = self.windows.waited(waited, n as u64) {
            self.verdict = Some(too_slow);
        }
    }

    /// A write must wait: judges the wait so far, and sets the timer to when the windows would run out of patience.
    fn wait(&mut self, cx: &mut Context<'_>) -> Result<(), TooSlow> {
        let now = Instant::now();
        let since = self.waiting_since.replace(now).unwrap_or(now);
        self.windows.waited(now - since, 0)?;
        self.timer.as_mut().reset(now + self.windows.patience());
        if self.timer.as_mut().poll(cx).is_ready() {
            // Already due (a zero patience): be polled again at once rather than never.
            cx.waker().wake_by_ref();
        }
        Ok(())
    }
}

struct Drain {
    write_shut: bool,
    deadline: Pin<Box<Sleep>>,
    discarded: u64,
}

impl ClientIo {
    pub fn new(state: Arc<ConnState>, lingering: Lingering) -> Self {
        ClientIo { socket: state.socket().clone(), state, lingering, drain: None, reads: None }
    }

    /// Bytes went through to the client.
    fn wrote(&mut self, n: usize) {
        if let Some(reads) = &mut self.reads {
            reads.wrote(n);
        }
    }

    /// A write must wait for the client to read: `Pending`, unless the client has been reading too slowly.
    fn wait_for_reader<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let rate = self.state.read_floor();
        let Some(windows) = RateWindows::new(rate) else {
            self.reads = None;
            return Poll::Pending;
        };
        let reads = match &mut self.reads {
            Some(reads) if reads.windows.rate() == rate => reads,
            // First wait, or the route's policy changed: new windows.
            slot => slot.insert(Box::new(ReadWatch {
                windows,
                waiting_since: None,
                timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
                verdict: None,
            })),
        };
        match reads.verdict.take().map_or_else(|| reads.wait(cx), Err) {
            Ok(()) => Poll::Pending,
            Err(too_slow) => Poll::Ready(Err(self.close_slow_reader(too_slow))),
        }
    }

    /// Counts the close, and makes it a reset (`SO_LINGER` 0) so that the unread bytes are dropped with the socket.
    fn close_slow_reader(&self, too_slow: TooSlow) -> io::Error {
        self.state.count_read_too_slow();
        let peer = self.socket.peer_addr().ok();
        tracing::info!(?peer, %too_slow, "closing a connection whose client reads its responses too slowly");
        let _ = socket2::SockRef::from(&*self.socket).set_linger(Some(Duration::ZERO));
        io::Error::new(io::ErrorKind::TimedOut, too_slow)
    }

    /// A verdict reached on the last write that went through fails this one.
    fn pending_verdict(&mut self) -> Option<io::Error> {
        let too_slow = self.reads.as_mut()?.verdict.take()?;
        Some(self.close_slow_reader(too_slow))
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

    /// One write (`try_write` or its vectored form) as soon as the socket takes it, under the slow-reader rule.
    fn write_with(
        &mut self,
        cx: &mut Context<'_>,
        try_write: impl Fn(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        if let Some(error) = self.pending_verdict() {
            return Poll::Ready(Err(error));
        }
        loop {
            if self.socket.poll_write_ready(cx)?.is_pending() {
                return self.wait_for_reader(cx);
            }
            match try_write(&self.socket) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Ok(n) => {
                    self.wrote(n);
                    return Poll::Ready(Ok(n));
                }
                other => return Poll::Ready(other),
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
        if let Some(direct) = self.state.direct() {
            if !direct.hyper_may_read(cx) {
                return Poll::Pending;
            }
        }
        self.read_into(cx, buf)
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.write_with(cx, |socket| socket.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.write_with(cx, |socket| socket.try_write_vectored(bufs))
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
        if !this.state.lingers() {
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

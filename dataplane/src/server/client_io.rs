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

use crate::client::ConnState;
use std::future::Future;
use std::io;
use std::pin::Pin;
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
        ClientIo { socket: state.socket().clone(), state, lingering, drain: None }
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

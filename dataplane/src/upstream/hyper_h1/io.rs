//! The upstream connection as hyper's HTTP/1.1 client sees it (TCP or TLS).
//!
//! An upstream may send a complete response early — say 413 with `Connection: close` after reading 1 MB of a
//! 100 MB body — and close, which makes our next write fail with a reset (seed 001). If hyper saw that write error
//! it would fail the request before reading the response already waiting in the socket. So a failed write is
//! recorded and further writes are discarded: hyper goes on to read, and either finds the upstream's response (which
//! the client then gets, and which is not replayed) or the end of the connection (a reset before the response, which
//! is replayed as usual).
//!
//! Writes are vectored: hyper then queues each body chunk as it is and hands head and chunks to one `writev`.
//! Without it hyper falls back to copying every body byte into its own buffer first.

use crate::upstream::transport::Stream;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub struct UpstreamIo {
    inner: Stream,
    write_failed: bool,
}

impl UpstreamIo {
    pub fn new(inner: Stream) -> Self {
        UpstreamIo { inner, write_failed: false }
    }
}

impl AsyncRead for UpstreamIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl UpstreamIo {
    /// A failed write is reported to hyper as a complete one, once recorded (see the module docs).
    fn absorb_write_error(&mut self, polled: Poll<io::Result<usize>>, len: usize) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(Err(error)) => {
                tracing::debug!(%error, "upstream stopped accepting the request; reading its response");
                self.write_failed = true;
                Poll::Ready(Ok(len))
            }
            other => other,
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.write_failed {
            return Poll::Ready(Ok(buf.len()));
        }
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.absorb_write_error(polled, buf.len())
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|buf| buf.len()).sum();
        if self.write_failed {
            return Poll::Ready(Ok(len));
        }
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.absorb_write_error(polled, len)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write_failed {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write_failed {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

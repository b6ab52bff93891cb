//! One direction of a tunnel: bytes read from one side written to the other, then the other's write side shut when
//! the first reaches its end (a half-close passed on).
//!
//! A tunnel spends nearly all its life idle (a WebSocket waiting for its next message), so a direction holds no
//! buffer while it waits: it reads into a scratch buffer of its worker thread, writes what it read at once, and only
//! what the other side does not take at once is copied into a buffer of its own, freed when it is written out.
//! `tokio::io::copy_bidirectional` keeps 8 KiB per direction for the tunnel's whole life: 16 KiB per idle WebSocket.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read at once; what one wakeup moves at most.
const SCRATCH: usize = 16 * 1024;

thread_local! {
    /// Borrowed only within one `poll`, which never polls another direction while it holds it.
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// Where one direction stands.
#[derive(Debug, Default)]
pub struct Direction {
    /// Read but not yet written: only while the writer is slower than the reader.
    pending: Vec<u8>,
    written: usize,
    /// Written since the last flush (TLS buffers records until flushed).
    unflushed: bool,
    read_done: bool,
    done: bool,
    /// Bytes moved, for the log line at the end.
    pub moved: u64,
}

impl Direction {
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Moves what can be moved now. Ready(Ok) once the source has ended and the end was passed on; `moved_any` is set
    /// when bytes went through (the tunnel's idle clock).
    pub fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut from: Pin<&mut R>,
        mut to: Pin<&mut W>,
        moved_any: &mut bool,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        loop {
            if self.written < self.pending.len() {
                let n = ready!(to.as_mut().poll_write(cx, &self.pending[self.written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.written += n;
                self.unflushed = true;
                *moved_any = true;
                if self.written == self.pending.len() {
                    // Caught up: give the buffer back, an idle tunnel holds none.
                    self.pending = Vec::new();
                    self.written = 0;
                }
                continue;
            }
            if self.read_done {
                ready!(to.as_mut().poll_shutdown(cx))?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            let read = SCRATCH_BUF.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let mut buf = ReadBuf::new(&mut scratch[..]);
                match from.as_mut().poll_read(cx, &mut buf) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(Ok(0)),
                    Poll::Ready(Ok(())) => {
                        let data = buf.filled();
                        // Written straight from the scratch buffer; only the rest is kept.
                        let sent = match to.as_mut().poll_write(cx, data) {
                            Poll::Ready(Ok(n)) => n,
                            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                            Poll::Pending => 0,
                        };
                        if sent < data.len() {
                            self.pending = data[sent..].to_vec();
                        }
                        Poll::Ready(Ok(data.len()))
                    }
                }
            });
            match read {
                Poll::Ready(Ok(0)) => self.read_done = true,
                Poll::Ready(Ok(n)) => {
                    self.moved += n as u64;
                    self.unflushed = true;
                    *moved_any = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    // Nothing more to read now: push out what was written.
                    if self.unflushed {
                        ready!(to.as_mut().poll_flush(cx))?;
                        self.unflushed = false;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

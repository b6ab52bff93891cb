//! Reading a large request body past hyper, straight from the client's socket, in large chunks.
//!
//! hyper reads a body through its connection's read buffer, at most `READ_BUFFER` (64 KiB) at a time, and keeps a
//! buffer it has grown for as long as the connection lives — so a bigger buffer made 1,000 slow uploads hold 663 MiB
//! instead of 248. Reading a 1 GiB body 64 KiB at a time, on the other hand, wakes every process on the way (client,
//! proxy, upstream) sixteen times per MiB; the same relay reading 1 MiB at a time used half the CPU
//! (`docs/benchmarks.md`, "Tee"). So for a body that is large, declared by `Content-Length` and on a plain HTTP/1.1
//! connection, the body is read here instead: each read allocates a buffer sized to what the socket has been
//! delivering (64 KiB up to 1 MiB), and an idle connection holds none.
//!
//! The hand-over, all within the connection's task:
//! 1. [`DirectBody::arm`]: from now on a read by hyper finds nothing and is recorded.
//! 2. The request's body is read through hyper until hyper asks the socket for more ([`DirectBody::poll_drained`]):
//!    then every byte hyper had buffered has come out of it, and the rest of the body is still in the socket.
//! 3. [`DirectBody::take`]; [`DirectBody::read`] until the declared length is reached.
//!
//! hyper never sees the rest of the body, so the connection cannot carry another request: the response says
//! `Connection: close` ([`DirectBody::taken`]), and hyper, whose reads stay unanswered, stops reading when the
//! request's body is dropped. A body that ends before hyper asked for more is simply handed back ([`disarm`]).
//!
//! [`disarm`]: DirectBody::disarm

use crate::read_size::ReadSize;
use crate::spool::BodyPipe;
use bytes::Bytes;
use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// The first direct read's size, hyper's own read size.
const FIRST_READ: usize = 64 * 1024;
/// The largest direct read.
const MAX_READ: usize = 1024 * 1024;

/// The read size a direct body starts with.
pub fn first_read_size() -> ReadSize {
    ReadSize::new(FIRST_READ, MAX_READ)
}

/// hyper reads the socket.
const OFF: u8 = 0;
/// hyper's next read finds nothing and is recorded.
const ARMED: u8 = 1;
/// hyper asked the socket for more: it holds no more body bytes.
const DRAINED: u8 = 2;
/// The body is read here; hyper never reads this socket again.
const TAKEN: u8 = 3;

/// The hand-over of one connection's body from hyper to the request (see the module docs).
#[derive(Debug)]
pub struct DirectBody {
    socket: Arc<TcpStream>,
    /// Bodies declared at least this large are read past hyper (`--direct-body-min-bytes`, 8 MiB by default: below
    /// that the connection's keep-alive is worth more than the larger reads).
    min_len: u64,
    state: AtomicU8,
    /// The request waiting for hyper to drain.
    request: Mutex<Option<Waker>>,
    /// hyper's last unanswered read, woken if the body is handed back.
    hyper: Mutex<Option<Waker>>,
}

impl DirectBody {
    pub fn new(socket: Arc<TcpStream>, min_len: u64) -> Self {
        DirectBody { socket, min_len, state: AtomicU8::new(OFF), request: Mutex::new(None), hyper: Mutex::new(None) }
    }

    /// The smallest declared length read past hyper.
    pub fn min_len(&self) -> u64 {
        self.min_len
    }

    /// Starts the hand-over. Only once per connection: a taken body ends the connection.
    pub fn arm(&self) -> bool {
        self.state.compare_exchange(OFF, ARMED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Whether hyper may read the socket. Called by the client socket for every read hyper makes; when hyper may
    /// not, its read is recorded and stays pending.
    pub(crate) fn hyper_may_read(&self, cx: &Context<'_>) -> bool {
        match self.state.load(Ordering::Acquire) {
            OFF => true,
            state => {
                *lock(&self.hyper) = Some(cx.waker().clone());
                if state == ARMED
                    && self.state.compare_exchange(ARMED, DRAINED, Ordering::AcqRel, Ordering::Acquire).is_ok()
                {
                    if let Some(request) = lock(&self.request).take() {
                        request.wake();
                    }
                }
                // A race with `disarm` between the load and here: hyper must not wait for a wakeup already given.
                if self.state.load(Ordering::Acquire) == OFF {
                    return true;
                }
                false
            }
        }
    }

    /// Ready once hyper has asked the socket for more, i.e. has handed over every body byte it had buffered.
    pub fn poll_drained(&self, cx: &Context<'_>) -> Poll<()> {
        if self.state.load(Ordering::Acquire) == DRAINED {
            return Poll::Ready(());
        }
        *lock(&self.request) = Some(cx.waker().clone());
        if self.state.load(Ordering::Acquire) == DRAINED {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// The rest of the body is read here from now on.
    pub fn take(&self) {
        self.state.store(TAKEN, Ordering::Release);
    }

    /// Whether the body was taken: the connection must close after the response.
    pub fn taken(&self) -> bool {
        self.state.load(Ordering::Acquire) == TAKEN
    }

    /// Gives the socket back to hyper, when the body ended (or failed) before it was taken.
    pub fn disarm(&self) {
        let state = self.state.load(Ordering::Acquire);
        if (state == ARMED || state == DRAINED)
            && self.state.compare_exchange(state, OFF, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            if let Some(hyper) = lock(&self.hyper).take() {
                hyper.wake();
            }
        }
    }

    /// Reads at most `max` bytes of the body; an empty chunk is the end of the stream. `size` is the read size,
    /// adapted here to what the socket delivers. `before_wait` runs whenever the socket has nothing yet.
    pub async fn read(&self, max: usize, size: &mut ReadSize, mut before_wait: impl FnMut()) -> io::Result<Bytes> {
        let want = size.get().min(max).max(1);
        loop {
            match self.try_read(want) {
                Err(error) if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
                Err(error) => return Err(error),
                Ok(buf) => {
                    size.record(buf.len(), want);
                    // A small read is copied out rather than pinning a large allocation for as long as its bytes
                    // are kept (a slow client's trickle).
                    return Ok(if buf.len() < want / 4 { Bytes::copy_from_slice(&buf) } else { Bytes::from(buf) });
                }
            }
            before_wait();
            self.socket.readable().await?;
        }
    }

    /// [`Self::read`] through a pipe: moves at most `max` bytes of the body from the socket into `pipe`, and returns
    /// how many (0 at the end of the stream), for the spool to write them to its file without a copy in memory.
    pub async fn splice_into(&self, pipe: &BodyPipe, max: usize, mut before_wait: impl FnMut()) -> io::Result<usize> {
        loop {
            // A fill shorter than asked for may have run out of pipe slots rather than emptied the socket (unlike a
            // short read), so readiness is only forgotten when the socket says `EAGAIN`. The fill caps `max` at the
            // pipe's capacity.
            match self.socket.try_io(Interest::READABLE, || pipe.fill(&*self.socket, max)) {
                Ok(n) => return Ok(n),
                Err(error) if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
                Err(error) => return Err(error),
            }
            before_wait();
            self.socket.readable().await?;
        }
    }

    /// One read without waiting, into a new buffer of `want` bytes (not zeroed first: the read fills it). The buffer
    /// is made per attempt rather than kept across a wait for the socket, so that a connection waiting for its client
    /// holds none. A read shorter than asked for emptied the socket, so its readiness is forgotten (as tokio's own
    /// reads do) and the next read waits for epoll instead of getting `EAGAIN`.
    fn try_read(&self, want: usize) -> io::Result<Vec<u8>> {
        // `with_capacity` gives exactly `want` (documented for `Vec`): the read cannot go past it.
        let mut buf = Vec::with_capacity(want);
        let mut short = false;
        let result = self.socket.try_io(Interest::READABLE, || {
            let n = rustix::io::read(&*self.socket, rustix::buffer::spare_capacity(&mut buf))?;
            if n > 0 && n < want {
                short = true;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(())
        });
        match (result, short) {
            (_, true) | (Ok(()), false) => Ok(buf),
            (Err(error), false) => Err(error),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_size_doubles_while_reads_fill_it_and_halves_when_they_come_back_small() {
        let mut size = first_read_size();
        for expected in [128 << 10, 256 << 10, 512 << 10, 1 << 20, 1 << 20] {
            size.record(size.get(), size.get());
            assert_eq!(size.get(), expected);
        }
        // A read capped by the end of the body says nothing about the socket.
        size.record(1000, 1000);
        assert_eq!(size.get(), 1 << 20);
        size.record(200 << 10, size.get());
        assert_eq!(size.get(), 512 << 10);
        for _ in 0..10 {
            size.record(10, size.get());
        }
        assert_eq!(size.get(), FIRST_READ);
    }
}

//! An upstream socket that Holdfast speaks HTTP/1.1 on itself, with its read buffer.
//!
//! The read buffer belongs to the connection, not to one response: bytes read past the end of a response would be
//! the start of the next one, so they must stay with the socket (in practice a correct upstream sends none, and a
//! connection with bytes left over is not reused).
//!
//! Reads go straight into the buffer's spare capacity, so nothing is zeroed before a read, and through `poll_read`,
//! so that a read returning less than it asked for marks the socket not ready: the next read then waits for epoll
//! instead of making a system call that would block. An idle connection is probed the same way.

use crate::read_size::ReadSize;
use bytes::{BufMut, BytesMut};
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};
use tokio::net::TcpStream;

/// The first read's size; reads double while they fill what they asked for.
const FIRST_READ: usize = 8 * 1024;
/// The largest read: a large response body is read in chunks of this size.
const MAX_READ: usize = 256 * 1024;
/// A buffer that grew past this is not kept while the connection is idle.
const MAX_IDLE_BUFFER: usize = 64 * 1024;

/// What ended a wait of [`PlainConnection::poll_send_ready`].
#[derive(Debug)]
pub enum SendReady {
    /// There is room in the socket again.
    Writable,
    /// The upstream sent bytes (now in `read_buf`: `Ok(n)`), closed (`Ok(0)`), or the connection failed.
    Heard(io::Result<usize>),
}

pub struct PlainConnection {
    stream: TcpStream,
    pub addr: SocketAddr,
    /// The thread whose runtime drives the socket's readiness: only that worker's requests may reuse it.
    pub opened_on: std::thread::ThreadId,
    /// Bytes read and not yet consumed.
    pub read_buf: BytesMut,
    /// The request head being sent; kept between requests for its capacity.
    pub write_buf: Vec<u8>,
    next_read: ReadSize,
}

impl PlainConnection {
    pub fn new(stream: TcpStream, addr: SocketAddr) -> Self {
        PlainConnection {
            stream,
            addr,
            opened_on: std::thread::current().id(),
            read_buf: BytesMut::new(),
            write_buf: Vec::new(),
            next_read: ReadSize::new(FIRST_READ, MAX_READ),
        }
    }

    /// Lets go of a read buffer that a large response grew, as the connection goes idle.
    pub fn shrink_for_idle(&mut self) {
        if self.read_buf.capacity() > MAX_IDLE_BUFFER {
            self.read_buf = BytesMut::new();
        }
    }

    /// Whether an idle connection can carry another request: the upstream has neither closed it nor sent anything
    /// unasked. Costs a system call only when the socket was reported readable since its last read.
    pub fn is_idle_and_open(&mut self) -> bool {
        // Nothing to wake: this only asks whether readiness is known.
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // An end of file, bytes nobody asked for, or readiness left from before: a read tells which.
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == ErrorKind::WouldBlock)
            }
        }
    }

    /// Writes what the socket takes of `write_buf` now, without waiting: usually all of a request head.
    pub fn try_send_write_buf(&mut self) -> io::Result<usize> {
        match self.stream.try_write(&self.write_buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(0),
            other => other,
        }
    }

    /// Writes the rest of `write_buf` from `from`, waiting for the socket to take it.
    pub async fn send_write_buf_from(&mut self, from: usize) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(&self.write_buf[from..]).await
    }

    /// Writes what the socket takes now, without waiting: the rest of the request head (`head`), then `body`, in one
    /// `writev` when there are both. A full socket is `ErrorKind::WouldBlock`.
    pub fn try_send(&self, head: &[u8], body: &[u8]) -> io::Result<usize> {
        match (head.is_empty(), body.is_empty()) {
            (_, true) => self.stream.try_write(head),
            (true, false) => self.stream.try_write(body),
            (false, false) => self.stream.try_write_vectored(&[io::IoSlice::new(head), io::IoSlice::new(body)]),
        }
    }

    /// Waits, while a request body is being sent, until the socket takes more bytes or the upstream says something
    /// (an early response, the end of the connection, an error): the body's sender stops at the latter. What the
    /// upstream sent is read into `read_buf`.
    pub fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<SendReady> {
        if let Poll::Ready(read) = self.poll_fill(cx) {
            return Poll::Ready(SendReady::Heard(read));
        }
        match ready!(self.stream.poll_write_ready(cx)) {
            Ok(()) => Poll::Ready(SendReady::Writable),
            Err(error) => Poll::Ready(SendReady::Heard(Err(error))),
        }
    }

    /// Reads more bytes into `read_buf`; `Ok(0)` is the end of the connection.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let asked = self.next_read.get();
        self.read_buf.reserve(asked);
        let mut limited = (&mut self.read_buf).limit(asked);
        let n = ready!(tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut limited))?;
        self.next_read.record(n, asked);
        Poll::Ready(Ok(n))
    }

    /// [`Self::poll_fill`] as a future.
    pub async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }
}

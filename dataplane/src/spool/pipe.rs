//! A kernel pipe through which a large body goes from the client's socket into the spool file without passing
//! through Holdfast's memory.
//!
//! Read into a buffer and then written to the file, every byte of a body was copied twice: from the socket's buffers
//! into Holdfast's, and from there into the page cache. `splice(socket → pipe)` hands the socket's buffers to the
//! pipe without a copy, and `splice(pipe → file)` copies them once, into the page cache (`docs/benchmarks.md`,
//! "Stop 14"). The pipe is only a conveyor: it is emptied into the file right after each fill, so it holds no bytes
//! while the request waits for its client.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;

use rustix::io::Errno;
use rustix::pipe::{fcntl_setpipe_size, pipe_with, splice, PipeFlags, SpliceFlags};

/// What one fill moves at most: the largest read of a body past hyper (`server::direct_body`), and the largest pipe
/// an unprivileged process may ask for by default (`/proc/sys/fs/pipe-max-size`).
pub const PIPE_CAPACITY: usize = 1024 * 1024;

/// A pipe of `PIPE_CAPACITY`, both ends non-blocking.
#[derive(Debug)]
pub struct BodyPipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl BodyPipe {
    /// A new pipe, or `None` when the system will not give one of full size: out of file descriptors, a
    /// `pipe-max-size` below `PIPE_CAPACITY`, or the per-user limit on pipe memory reached. A pipe of the default
    /// 64 KiB would take sixteen pairs of system calls per MiB, more than the reads it replaces, so the caller then
    /// reads the body into memory as before.
    pub fn new() -> Option<Self> {
        let made = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK);
        let (read, write) = match made {
            Ok(ends) => ends,
            Err(errno) => {
                tracing::debug!(%errno, "no pipe for the body: read into memory");
                return None;
            }
        };
        match fcntl_setpipe_size(&write, PIPE_CAPACITY) {
            Ok(size) if size >= PIPE_CAPACITY => Some(BodyPipe { read, write }),
            Ok(size) => {
                tracing::debug!(size, "pipe smaller than asked for: read the body into memory");
                None
            }
            Err(errno) => {
                tracing::debug!(%errno, "pipe cannot grow: read the body into memory");
                None
            }
        }
    }

    /// Moves up to `max` bytes waiting in `socket` into the pipe, which must be empty. `Ok(0)` is the end of the
    /// stream; `WouldBlock` means nothing is waiting. Fewer bytes than `max` do not mean the socket is empty: the pipe
    /// may have run out of slots (one per buffer of the socket's, however small).
    pub fn fill(&self, socket: impl AsFd, max: usize) -> io::Result<usize> {
        let len = max.min(PIPE_CAPACITY);
        Ok(splice(socket, None, &self.write, None, len, SpliceFlags::NONBLOCK | SpliceFlags::MOVE)?)
    }

    /// Writes the `len` bytes the pipe holds to `file` at `offset`. A filesystem that cannot take a splice (none of
    /// Linux's usual ones) gets them through a buffer instead.
    pub(super) fn drain_to(&self, file: &File, mut offset: u64, len: usize) -> io::Result<()> {
        let mut left = len;
        while left > 0 {
            match splice(&self.read, None, file, Some(&mut offset), left, SpliceFlags::MOVE) {
                // `splice` moved `n` and advanced `offset` by as much.
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => left -= n,
                Err(Errno::INTR) => {}
                Err(Errno::INVAL) => return self.copy_to(file, offset, left),
                Err(errno) => return Err(errno.into()),
            }
        }
        Ok(())
    }

    /// [`Self::drain_to`] through a buffer.
    fn copy_to(&self, file: &File, offset: u64, len: usize) -> io::Result<()> {
        file.write_all_at(&self.take(len)?, offset)
    }

    /// The `len` bytes the pipe holds, in memory: for a spool that no longer has a file (`spool::relay`).
    pub(super) fn take(&self, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(len);
        while buf.len() < len {
            match rustix::io::read(&self.read, rustix::buffer::spare_capacity(&mut buf)) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) | Err(Errno::INTR) => {}
                Err(errno) => return Err(errno.into()),
            }
        }
        Ok(buf)
    }

    /// The pipe's write end, for tests that fill it without a socket.
    #[cfg(test)]
    pub(super) fn write_end(&self) -> &OwnedFd {
        &self.write
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_pipe_moves_what_a_socket_holds_into_the_file_at_the_offset() {
        let pipe = BodyPipe::new().expect("a 1 MiB pipe on this machine");
        let (mut sender, receiver) = std::os::unix::net::UnixStream::pair().unwrap();
        receiver.set_nonblocking(true).unwrap();
        let err = pipe.fill(&receiver, 10).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "nothing was sent yet");

        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        sender.write_all(&body).unwrap();
        let file = tempfile::tempfile().unwrap();
        file.write_all_at(b"head", 0).unwrap();
        let mut at = 4;
        while at < 4 + body.len() as u64 {
            let n = pipe.fill(&receiver, PIPE_CAPACITY).unwrap();
            pipe.drain_to(&file, at, n).unwrap();
            at += n as u64;
        }
        let mut back = vec![0; 4 + body.len()];
        file.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(&back[..4], b"head");
        assert!(back[4..] == body[..], "the file holds the socket's bytes in order");

        drop(sender);
        assert_eq!(pipe.fill(&receiver, 10).unwrap(), 0, "end of stream");
    }

    #[test]
    fn the_buffered_copy_writes_the_same_bytes_as_the_splice() {
        let pipe = BodyPipe::new().expect("a 1 MiB pipe on this machine");
        let body = vec![7u8; 300_000];
        let mut written = 0;
        while written < body.len() {
            written += rustix::io::write(pipe.write_end(), &body[written..]).unwrap();
        }
        let file = tempfile::tempfile().unwrap();
        pipe.copy_to(&file, 10, body.len()).unwrap();
        let mut back = vec![1; 10 + body.len()];
        file.read_exact_at(&mut back, 0).unwrap();
        assert!(back[..10].iter().all(|&b| b == 0), "nothing written before the offset");
        assert!(back[10..] == body[..]);
    }
}

//! Sending a request head and its spooled body over a plain upstream connection ([`super`]).
//!
//! The request's own task writes the body, as the spool's reader, instead of a feeder task handing chunks to hyper's
//! client through a channel: the bytes the spool hands over (read back from its file, or still in memory) go out with
//! `write`, the first ones together with the head. Not with `sendfile` from the spool file: see [`crate::spool`].
//!
//! While it sends, the sender listens: an upstream may answer before the body is complete — 413 after 1 MB of a
//! 100 MB body, then close (seed 001) — or die. Either stops the sending, and the caller reads what came: a response
//! (which the client gets, and which is not replayed) or the end of the connection (which is replayed). Interim
//! `1xx` responses do not stop it, also when their head comes in two reads.
//!
//! The send timeout runs only while the upstream does not take bytes: time spent waiting for the client's next
//! bytes (Tee mode) is not the upstream's fault.

use super::conn::{PlainConnection, SendReady};
use crate::spool::{Available, ReadError, Spool, SpoolReader};
use crate::upstream::failure::{Failure, FailureKind};
use crate::upstream::limits::{MAX_RESPONSE_FIELDS, MAX_RESPONSE_HEAD_BYTES};
use bytes::{Bytes, BytesMut};
use std::io::ErrorKind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How the sending ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// The head and every byte of the body went out.
    Complete,
    /// The upstream said something (bytes, the end of the connection, an error) before the body was complete: the
    /// connection carries no further request, and what came decides between a response and a replay.
    Interrupted,
}

/// Sends the head in `conn.write_buf`, then `len` bytes of the spool, counting them in `delivered` if given.
pub async fn send_with_body(
    conn: &mut PlainConnection,
    (spool, len): (&Arc<Spool>, u64),
    send_limit: Duration,
    delivered: Option<&Arc<AtomicU64>>,
) -> Result<Sent, Failure> {
    let head = std::mem::take(&mut conn.write_buf);
    let delivered = delivered.cloned();
    let mut sender = Sender { reader: spool.reader(), len, segment: None, skip: 0, delivered };
    let sent = sender.run(conn, &head, send_limit).await;
    // Given back for its capacity: the next request on this connection encodes its head there.
    conn.write_buf = head;
    sent
}

struct Sender {
    reader: SpoolReader,
    len: u64,
    /// The bytes being sent, and how many of them are out.
    segment: Option<Bytes>,
    skip: usize,
    delivered: Option<Arc<AtomicU64>>,
}

impl Sender {
    async fn run(&mut self, conn: &mut PlainConnection, head: &[u8], send_limit: Duration) -> Result<Sent, Failure> {
        let addr = conn.addr;
        let mut head = head;
        let timer = tokio::time::sleep(send_limit);
        tokio::pin!(timer);
        loop {
            if self.segment.is_none() && self.reader.offset() < self.len {
                match self.reader.available().map_err(aborted)? {
                    Available::Segment(segment) => self.take(segment),
                    Available::End => return Err(short_body(self.reader.offset(), self.len)),
                    // The head goes out on its own, so that the upstream sees the request at once.
                    Available::NotYet if !head.is_empty() => {}
                    Available::NotYet => {
                        if !self.wait_for_client(conn).await? {
                            return Ok(Sent::Interrupted);
                        }
                        continue;
                    }
                }
            }
            if head.is_empty() && self.segment.is_none() {
                return Ok(Sent::Complete);
            }
            let body = self.segment.as_ref().map_or(&[][..], |segment| &segment[self.skip..]);
            match conn.try_send(head, body) {
                Ok(n) => {
                    let from_head = n.min(head.len());
                    head = &head[from_head..];
                    self.advance(n - from_head);
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    timer.as_mut().reset(Instant::now() + send_limit);
                    let ready = tokio::select! {
                        ready = std::future::poll_fn(|cx| conn.poll_send_ready(cx)) => ready,
                        () = &mut timer => {
                            return Err(Failure::new(FailureKind::SendTimeout, format!("{addr} after {send_limit:?}")))
                        }
                    };
                    if let SendReady::Heard(read) = ready {
                        if !goes_on_after(read, conn) {
                            return Ok(Sent::Interrupted);
                        }
                    }
                }
                // A reset or a closed connection: whatever the upstream sent before is still to be read.
                Err(error) => {
                    tracing::debug!(%error, %addr, "upstream stopped accepting the request; reading its response");
                    return Ok(Sent::Interrupted);
                }
            }
        }
    }

    /// Takes the next segment, cut to the declared length.
    fn take(&mut self, mut segment: Bytes) {
        let due = self.len - self.reader.offset();
        segment.truncate(usize::try_from(due).unwrap_or(usize::MAX));
        (self.segment, self.skip) = (Some(segment), 0);
    }

    fn advance(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.skip += n;
        self.reader.consumed(n as u64);
        if let Some(delivered) = &self.delivered {
            delivered.store(self.reader.offset(), Ordering::Relaxed);
        }
        if self.segment.as_ref().is_some_and(|segment| self.skip >= segment.len()) {
            self.segment = None;
        }
    }

    /// Waits for the client's next bytes (no timer: that wait is not the upstream's) while listening to the upstream.
    /// `false`: the upstream said something that ends the sending.
    async fn wait_for_client(&mut self, conn: &mut PlainConnection) -> Result<bool, Failure> {
        loop {
            tokio::select! {
                segment = self.reader.next_segment() => {
                    match segment.map_err(aborted)? {
                        Some(segment) => self.take(segment),
                        None => return Err(short_body(self.reader.offset(), self.len)),
                    }
                    return Ok(true);
                }
                read = conn.fill() => {
                    if !goes_on_after(read, conn) {
                        return Ok(false);
                    }
                }
            }
        }
    }
}

/// Whether the body goes on after the upstream sent something while it was being sent: only if all it sent were
/// interim responses.
fn goes_on_after(read: std::io::Result<usize>, conn: &mut PlainConnection) -> bool {
    matches!(read, Ok(n) if n > 0) && only_interim_responses(&mut conn.read_buf)
}

/// Drops complete interim (`1xx`, but not `101`) responses from the front of what the upstream sent; `true` when
/// nothing else is there, so that the body goes on. An upstream may send `100 Continue` unasked, and its head may come
/// in two reads: a head not complete yet whose status is interim (or not read far enough to tell) is left in the
/// buffer for the next read to complete, and the body goes on meanwhile.
fn only_interim_responses(read_buf: &mut BytesMut) -> bool {
    loop {
        if read_buf.is_empty() {
            return true;
        }
        let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_FIELDS];
        let mut parsed = httparse::Response::new(&mut fields);
        let status = parsed.parse(read_buf);
        // Known once the three digits are in, also for a head not complete yet.
        let interim = parsed.code.map(|code| (100..200).contains(&code) && code != 101);
        match status {
            // An interim head over the cap is left for `read_head`, which refuses it.
            Ok(httparse::Status::Complete(len)) if interim == Some(true) && len <= MAX_RESPONSE_HEAD_BYTES => {
                let _ = read_buf.split_to(len);
            }
            Ok(httparse::Status::Partial) => return interim != Some(false) && read_buf.len() < MAX_RESPONSE_HEAD_BYTES,
            _ => return false,
        }
    }
}

fn aborted(error: ReadError) -> Failure {
    Failure::new(FailureKind::ClientBodyAborted, error)
}

fn short_body(got: u64, len: u64) -> Failure {
    Failure::new(FailureKind::ClientBodyAborted, format!("the body ended after {got} of {len} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interim_responses_are_skipped_and_anything_else_stops_the_body() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"[..]);
        assert!(only_interim_responses(&mut buf));
        assert!(buf.is_empty());

        let early = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n";
        let mut buf = BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\n"[..]);
        buf.extend_from_slice(early);
        assert!(!only_interim_responses(&mut buf));
        assert_eq!(&buf[..], &early[..], "the final response is left for the caller to read");

        let stopping: [&[u8]; 4] = [
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            b"HTTP/1.1 413 Payload Too La",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200",
            b"garbage\r\n\r\n",
        ];
        for stops in stopping {
            let mut buf = BytesMut::from(stops);
            assert!(!only_interim_responses(&mut buf), "{:?}", String::from_utf8_lossy(stops));
            assert!(stops.ends_with(&buf), "a final response is left whole");
        }
    }

    #[test]
    fn an_interim_head_in_two_reads_is_completed_by_the_second() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 100 Cont"[..]);
        assert!(only_interim_responses(&mut buf), "an interim status: the body goes on");
        assert_eq!(&buf[..], b"HTTP/1.1 100 Cont", "kept for the next read");
        buf.extend_from_slice(b"inue\r\n\r\n");
        assert!(only_interim_responses(&mut buf));
        assert!(buf.is_empty());

        let mut buf = BytesMut::from(&b"HTTP/1.1 10"[..]);
        assert!(only_interim_responses(&mut buf), "not read far enough to tell");
        buf.extend_from_slice(b"1 Switching Protocols\r\n\r\n");
        assert!(!only_interim_responses(&mut buf), "101 is not an interim response here");

        let mut endless = BytesMut::from(&b"HTTP/1.1 100 Continue\r\nX-Field: "[..]);
        endless.resize(MAX_RESPONSE_HEAD_BYTES - 1, b'a');
        assert!(only_interim_responses(&mut endless), "within the limit of a head");
        endless.extend_from_slice(b"a");
        assert!(!only_interim_responses(&mut endless), "a head that never ends stops the body");
    }
}

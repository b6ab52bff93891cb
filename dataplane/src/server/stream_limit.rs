//! `--max-requests-per-connection` on HTTP/2: the streams one connection may carry.
//!
//! HTTP/1 connections are closed by the request path itself (`Connection: close` on the last response). An HTTP/2
//! connection has no such header: here each stream is counted when hyper hands it to the service, before anything of
//! it is proxied. The stream that reaches the limit is served, and the connection is asked to finish (hyper sends
//! GOAWAY, streams in flight complete: as nginx's `keepalive_requests` on HTTP/2).
//!
//! A graceful GOAWAY first names stream 2^31-1 and waits for the client's answer to a PING before naming the last
//! stream it will serve (RFC 9113 §6.8). A client that never answers (a paced rapid reset ignores both) could go on
//! opening streams for ever: every stream past the limit is therefore refused with `REFUSED_STREAM`, which tells an
//! honest client that nothing of it was processed and that it may retry elsewhere, and never reaches an upstream.
//! An honest client can have at most its concurrent streams in flight when the GOAWAY reaches it; once more streams
//! than that were refused, the peer is ignoring the GOAWAY and the connection is closed at once.

use std::sync::atomic::{AtomicU32, Ordering};

/// The error a refused stream's service returns: hyper resets the stream with the `h2` reason it finds in an error's
/// sources, here `REFUSED_STREAM` ("not processed, safe to retry", RFC 9113 §8.7).
#[derive(Debug, thiserror::Error)]
#[error("stream refused: the connection has carried --max-requests-per-connection streams")]
pub(crate) struct StreamRefused(#[source] h2::Error);

impl StreamRefused {
    pub fn new() -> Self {
        StreamRefused(h2::Error::from(h2::Reason::REFUSED_STREAM))
    }
}

/// What to do with a stream just opened on an HTTP/2 connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Proxy it.
    Serve,
    /// Proxy it, and ask the connection to finish: it is the last one.
    ServeLast,
    /// Refuse it (`REFUSED_STREAM`): the connection has carried its share.
    Refuse,
}

/// What the connection is asked to do, read by the connection's task around each poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// Nothing: go on serving.
    Nothing,
    /// Finish gracefully (GOAWAY, streams in flight complete).
    Finish,
    /// Close now: the peer keeps opening streams after the GOAWAY.
    Close,
}

/// Counts the streams of one HTTP/2 connection against `--max-requests-per-connection`.
#[derive(Debug)]
pub(crate) struct StreamLimit {
    /// Streams served at most; 0: no limit.
    max: u32,
    /// Streams refused after the limit beyond which the connection is closed at once.
    max_refused: u32,
    /// Streams opened so far (served and refused).
    opened: AtomicU32,
}

impl StreamLimit {
    /// `max`: streams served at most (0: no limit); `max_concurrent`: the connection's `SETTINGS_MAX_CONCURRENT_STREAMS`,
    /// the most streams an honest client may have sent before it saw the GOAWAY.
    pub fn new(max: u32, max_concurrent: u32) -> Self {
        StreamLimit { max, max_refused: max_concurrent, opened: AtomicU32::new(0) }
    }

    /// Counts one new stream and says what to do with it.
    pub fn admit(&self) -> Admission {
        if self.max == 0 {
            return Admission::Serve;
        }
        // Cannot wrap: a client opens at most 2^30 streams on one connection (odd stream ids below 2^31).
        let opened = self.opened.fetch_add(1, Ordering::AcqRel) + 1;
        match opened.cmp(&self.max) {
            std::cmp::Ordering::Less => Admission::Serve,
            std::cmp::Ordering::Equal => Admission::ServeLast,
            std::cmp::Ordering::Greater => Admission::Refuse,
        }
    }

    /// What the connection must do now. One atomic read: it is called on every poll of the connection.
    pub fn asked(&self) -> Asked {
        let opened = self.opened.load(Ordering::Acquire);
        if self.max == 0 || opened < self.max {
            Asked::Nothing
        } else if opened - self.max > self.max_refused {
            Asked::Close
        } else {
            Asked::Finish
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_up_to_the_limit_then_finishes_then_refuses_then_closes() {
        let limit = StreamLimit::new(3, 2);
        assert_eq!(limit.asked(), Asked::Nothing);
        assert_eq!([limit.admit(), limit.admit()], [Admission::Serve; 2]);
        assert_eq!(limit.asked(), Asked::Nothing);
        assert_eq!(limit.admit(), Admission::ServeLast);
        assert_eq!(limit.asked(), Asked::Finish);
        assert_eq!([limit.admit(), limit.admit()], [Admission::Refuse; 2]);
        assert_eq!(limit.asked(), Asked::Finish, "an honest client may have had these in flight");
        assert_eq!(limit.admit(), Admission::Refuse);
        assert_eq!(limit.asked(), Asked::Close);
    }

    #[test]
    fn zero_means_no_limit() {
        let limit = StreamLimit::new(0, 1);
        for _ in 0..10 {
            assert_eq!(limit.admit(), Admission::Serve);
        }
        assert_eq!(limit.asked(), Asked::Nothing);
    }
}

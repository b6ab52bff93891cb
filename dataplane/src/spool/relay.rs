//! A Tee upload that gave up its spool file under spool pressure, and goes on as a plain stream.
//!
//! Its attempt is relaying the body to the upstream as it arrives; failing it (507) would throw away an upload the
//! upstream is receiving. So it stops writing to disk: the bytes the attempt has already taken are freed at once
//! (a hole punched in the file, `FALLOC_FL_PUNCH_HOLE`), the ones still in the file are read from there as before,
//! and the file is closed once the attempt has passed its end; new bytes are held in memory, as received, until the
//! attempt takes them, the writer held to the attempt's pace (`spool::pace`, at most its lead ahead). The bytes
//! before the attempt's position are gone: the request can no longer be replayed, and a failure of the upstream from
//! then on is answered as a Streaming request's is.

use bytes::Bytes;
use std::collections::VecDeque;
use std::io;

/// The body's bytes past the spool file.
#[derive(Debug)]
pub(super) struct Relay {
    chunks: VecDeque<(u64, Bytes)>,
    /// The body's length so far.
    end: u64,
    /// Where the body stopped being spooled: bytes before it are in the file (if not freed), bytes from it on are
    /// held here until taken.
    pub(super) since: u64,
    /// The file's bytes before this were freed: the attempt had taken them.
    pub(super) freed_before: u64,
}

impl Relay {
    /// Starts at `since` (the file's length) with the bytes received past the file (`tail`).
    pub(super) fn new(since: u64, tail: Bytes) -> Self {
        let end = since + tail.len() as u64;
        let mut chunks = VecDeque::new();
        if !tail.is_empty() {
            chunks.push_back((since, tail));
        }
        Relay { chunks, end, since, freed_before: 0 }
    }

    pub(super) fn len(&self) -> u64 {
        self.end
    }

    /// Keeps `data`, the body's next bytes, and forgets what the attempt has taken (`taken`).
    pub(super) fn push(&mut self, data: &Bytes, taken: u64) {
        self.chunks.push_back((self.end, data.clone()));
        self.end += data.len() as u64;
        while self.chunks.front().is_some_and(|(start, chunk)| start + chunk.len() as u64 <= taken) {
            self.chunks.pop_front();
        }
    }

    /// Counts `n` bytes no attempt will read (none is open: the request cannot be replayed any more).
    pub(super) fn skip(&mut self, n: u64) {
        self.chunks.clear();
        self.end += n;
    }

    /// The bytes at `offset` (at or past [`Relay::since`]); empty at the end. A reader before the oldest byte held
    /// is a replay, which cannot be.
    pub(super) fn at(&self, offset: u64) -> io::Result<Bytes> {
        if offset >= self.end {
            return Ok(Bytes::new());
        }
        let found = self.chunks.iter().find(|(start, chunk)| *start <= offset && offset < start + chunk.len() as u64);
        match found {
            Some((start, chunk)) => Ok(chunk.slice(usize::try_from(offset - start).unwrap_or(0)..)),
            None => Err(gone()),
        }
    }
}

/// What a reader gets for bytes that were given up.
pub(super) fn gone() -> io::Error {
    io::Error::other("the spool file was given up under spool pressure: no replay")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_what_the_attempt_has_not_taken_and_refuses_a_replay() {
        let mut relay = Relay::new(100, Bytes::from_static(b"abc"));
        assert_eq!(relay.since, 100);
        relay.push(&Bytes::from_static(b"defg"), 100);
        assert_eq!(relay.at(101).unwrap(), Bytes::from_static(b"bc"));
        assert_eq!(relay.at(104).unwrap(), Bytes::from_static(b"efg"));
        assert!(relay.at(107).unwrap().is_empty(), "at the end");
        relay.push(&Bytes::from_static(b"h"), 103);
        assert!(relay.at(102).is_err(), "taken bytes are gone");
        assert_eq!(relay.at(103).unwrap(), Bytes::from_static(b"defg"));
        relay.skip(5);
        assert_eq!(relay.len(), 113);
        assert!(relay.at(107).is_err(), "skipped bytes were never kept");
    }
}

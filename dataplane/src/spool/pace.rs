//! Holding the client back to the pace of the attempt that follows the writer (Tee mode).
//!
//! Without it, the task reading the client runs ahead of a slower upstream and the spool absorbs the difference:
//! correct, but on a busy machine the reading competes for the cores with the upstream it is waiting for, and the
//! attempt then reads back from the file what it could have taken from memory. With it, the client is read only while
//! the attempt is less than [`LEAD`] behind, the way a streaming proxy's socket buffers pace a client — measured on
//! 1 GiB Tee uploads in `docs/benchmarks.md`, together with the large direct reads it is used with.
//!
//! Pacing only ever waits for an attempt that is reading: when none is (it failed and the next one has not started,
//! or every endpoint is down), the writer goes on at the client's pace, since the spool is what replays need.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use tokio::sync::Notify;

/// How far the writer may be ahead of the attempt before it stops reading the client. 4 MiB rather than 1: with
/// 1 MiB, as much as one read past hyper, the writer stopped after nearly every read, and a 1 GiB Tee upload cost the
/// dataplane 330 ms of CPU instead of 270, in the same time (`docs/benchmarks.md`, "Stop 14").
pub const LEAD: u64 = 4 * 1024 * 1024;

#[derive(Default)]
pub(super) struct Pace {
    /// Readers open on the spool.
    readers: AtomicUsize,
    /// The offset the latest reader to move has reached: the attempt in progress.
    position: AtomicU64,
    /// Bytes appended so far.
    written: AtomicU64,
    waiting: AtomicBool,
    resume: Notify,
}

impl Pace {
    pub(super) fn reader_opened(&self) {
        self.readers.fetch_add(1, Ordering::AcqRel);
        self.position.store(0, Ordering::Release);
    }

    pub(super) fn reader_closed(&self) {
        self.readers.fetch_sub(1, Ordering::AcqRel);
        // The writer may be waiting for this reader: it must look again (and go on if no reader is left).
        self.resume.notify_one();
    }

    /// A reader reached `offset`. The writer resumes once the lag is down to half the lead, so that it is woken
    /// once per half a lead rather than once per chunk.
    pub(super) fn reader_at(&self, offset: u64) {
        self.position.store(offset, Ordering::Release);
        if self.waiting.load(Ordering::Acquire) && self.lag() <= LEAD / 2 {
            self.resume.notify_one();
        }
    }

    pub(super) fn written(&self, len: u64) {
        self.written.store(len, Ordering::Release);
    }

    /// Whether any reader is open.
    pub(super) fn readers_open(&self) -> bool {
        self.readers.load(Ordering::Acquire) > 0
    }

    /// The reader's position, for trimming the bytes it no longer needs from memory.
    pub(super) fn position(&self) -> u64 {
        self.position.load(Ordering::Acquire)
    }

    fn lag(&self) -> u64 {
        self.written.load(Ordering::Acquire).saturating_sub(self.position.load(Ordering::Acquire))
    }

    fn must_wait(&self) -> bool {
        self.readers.load(Ordering::Acquire) > 0 && self.lag() > LEAD
    }

    /// Returns once a reader is within [`LEAD`] of the writer, or no reader is open. `publish` is called before
    /// waiting: the reader can only catch up on bytes it has heard of.
    pub(super) async fn wait(&self, publish: impl FnOnce()) {
        if !self.must_wait() {
            return;
        }
        publish();
        // Lowered again however the wait ends, also when the waiting request is dropped.
        let _waiting = Waiting(&self.waiting);
        loop {
            let resumed = self.resume.notified();
            tokio::pin!(resumed);
            // Registered before the flag is raised and the lag looked at again, so a reader moving in between is
            // not missed.
            resumed.as_mut().enable();
            self.waiting.store(true, Ordering::Release);
            if !self.must_wait() {
                break;
            }
            resumed.await;
            if !self.must_wait() {
                break;
            }
        }
    }
}

struct Waiting<'a>(&'a AtomicBool);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

//! Who yields when the spool has no room: the quota refuses a reservation, or the filesystem answers `ENOSPC` or
//! `EDQUOT`.
//!
//! Uploads of unknown length cannot be refused up front, so several of them can together outgrow the spool that each
//! alone would fit. Failing whichever writer meets the wall first fails them all in turn (each frees too little, too
//! late for the others): so the *oldest admitted* upload has priority. A writer that finds no room makes the newest
//! upload still writing to disk *after it* yield — its file is closed at once, giving its blocks and quota back —
//! and tries again once space is freed. With no newer upload to yield and nothing being freed, the writer itself
//! yields. At least the oldest upload that fits then completes, whatever the order in which they hit the wall.
//!
//! The same register serves the quota and a full disk: it knows which spools hold files and which files are being
//! closed, so a writer waits for space it knows is coming instead of failing or polling the disk.

use super::Spool;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How many times one write looks for room (a newer upload to yield, or space being freed) before its own upload
/// yields: each look yields one upload or waits for one file to close, so this bounds the work of one write.
const MAX_LOOKS: u32 = 32;
/// How long one write waits for room in all: closing even a 1 GiB file takes tens of milliseconds, so this is only
/// reached when the space freed keeps going to others.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// The spools writing to disk, by admission, and the files being closed.
#[derive(Default)]
pub(super) struct Pressure {
    admitted: AtomicU64,
    writers: Mutex<Writers>,
    /// Woken each time a spool file has been closed and its quota given back.
    freed: Notify,
}

impl std::fmt::Debug for Pressure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let writers = self.lock();
        f.debug_struct("Pressure").field("on_disk", &writers.on_disk.len()).field("closing", &writers.closing).finish()
    }
}

#[derive(Default)]
struct Writers {
    on_disk: BTreeMap<u64, Weak<Spool>>,
    closing: usize,
}

/// What a writer without room does next.
pub(super) enum Room {
    /// This newer upload must yield its space.
    Yield(Arc<Spool>),
    /// Space is being freed: wait for it.
    Wait,
    /// Nothing newer to yield and nothing being freed: the writer itself yields.
    None,
}

impl Pressure {
    /// The admission number of a new spool: lower is older, and has priority.
    pub(super) fn admit(&self) -> u64 {
        self.admitted.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The spool admitted as `seq` writes to a file now.
    pub(super) fn writing(&self, seq: u64, spool: Weak<Spool>) {
        self.lock().on_disk.insert(seq, spool);
    }

    /// The spool admitted as `seq` no longer writes to disk (complete, aborted, yielded or dropped).
    pub(super) fn done(&self, seq: u64) {
        self.lock().on_disk.remove(&seq);
    }

    /// A spool file is being closed; [`Pressure::closed`] follows once its space is free.
    pub(super) fn closing(&self) {
        self.lock().closing += 1;
    }

    pub(super) fn closed(&self) {
        let mut writers = self.lock();
        writers.closing = writers.closing.saturating_sub(1);
        drop(writers);
        self.freed.notify_waiters();
    }

    /// Space was freed without closing a file (a hole punched in a relayed upload's file).
    pub(super) fn freed_now(&self) {
        self.freed.notify_waiters();
    }

    /// A future that resolves at the next [`Pressure::closed`]; enable it before looking for room, so that a file
    /// closed in between is not missed.
    pub(super) fn freed(&self) -> Notified<'_> {
        self.freed.notified()
    }

    /// What the writer admitted as `seq` does about having no room: the newest writer after it, taken out of the
    /// register (it is about to yield), else a wait while files are being closed, else nothing.
    pub(super) fn room_for(&self, seq: u64) -> Room {
        let mut writers = self.lock();
        while let Some(newest) = writers.on_disk.range(seq + 1..).next_back().map(|(&newest, _)| newest) {
            let spool = writers.on_disk.remove(&newest).and_then(|weak| weak.upgrade());
            if let Some(spool) = spool {
                // Dropped after the register's lock: a spool dropped here would take it again.
                drop(writers);
                return Room::Yield(spool);
            }
        }
        if writers.closing > 0 {
            Room::Wait
        } else {
            Room::None
        }
    }

    #[cfg(test)]
    pub(super) fn writers(&self) -> usize {
        self.lock().on_disk.len()
    }

    fn lock(&self) -> MutexGuard<'_, Writers> {
        // The register holds no invariant a panic could break half-way.
        self.writers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The budget of one write's search for room.
pub(super) struct Search {
    looks: u32,
    deadline: Instant,
}

impl Search {
    pub(super) fn new() -> Self {
        Search { looks: 0, deadline: Instant::now() + MAX_WAIT }
    }

    /// Counts one more look; false once the budget is spent.
    pub(super) fn look(&mut self) -> bool {
        self.looks += 1;
        self.looks <= MAX_LOOKS && Instant::now() < self.deadline
    }

    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }
}

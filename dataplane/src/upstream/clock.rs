//! Where an attempt stands, for the send and read timeouts.
//!
//! The request body records what it is doing; a watchdog beside the attempt turns that into a deadline. "Waiting for
//! the upstream" starts when a body chunk was handed to hyper and ends when hyper asks for the next one: hyper only
//! asks once it has written the previous chunk, so an upstream that stops reading freezes the clock there. Time spent
//! waiting for the *client's* bytes (Tee mode) is not the upstream's fault and runs no timer.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::time::Duration;
use tokio::time::Instant;

const WAITING_FOR_SOURCE: u8 = 0;
const WAITING_FOR_UPSTREAM: u8 = 1;
const BODY_SENT: u8 = 2;

#[derive(Debug)]
pub struct AttemptClock {
    base: Instant,
    phase: AtomicU8,
    since_ms: AtomicU64,
    /// Bumped on every phase change, so the watchdog can tell that nothing happened while it slept.
    changes: AtomicU64,
    source_aborted: AtomicBool,
}

/// Which timeout fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    Send,
    Read,
}

impl AttemptClock {
    pub fn new(body_already_sent: bool) -> Self {
        let clock = AttemptClock {
            base: Instant::now(),
            phase: AtomicU8::new(WAITING_FOR_SOURCE),
            since_ms: AtomicU64::new(0),
            changes: AtomicU64::new(0),
            source_aborted: AtomicBool::new(false),
        };
        if body_already_sent {
            clock.set(BODY_SENT);
        }
        clock
    }

    pub fn chunk_handed_over(&self) {
        self.set(WAITING_FOR_UPSTREAM);
    }

    pub fn asked_for_more(&self) {
        self.set(WAITING_FOR_SOURCE);
    }

    pub fn body_sent(&self) {
        self.set(BODY_SENT);
    }

    pub fn source_aborted(&self) {
        self.source_aborted.store(true, Ordering::Release);
    }

    pub fn was_source_aborted(&self) -> bool {
        self.source_aborted.load(Ordering::Acquire)
    }

    /// Resolves when the upstream has exceeded one of the two timeouts.
    pub async fn expired(&self, send: Duration, read: Duration) -> Expired {
        loop {
            let changes = self.changes.load(Ordering::Acquire);
            let since = self.base + Duration::from_millis(self.since_ms.load(Ordering::Acquire));
            let (deadline, which) = match self.phase.load(Ordering::Acquire) {
                WAITING_FOR_UPSTREAM => (since + send, Some(Expired::Send)),
                BODY_SENT => (since + read, Some(Expired::Read)),
                // No timer runs; look again after the shortest timeout, which is never later than a deadline that a
                // phase change in the meantime could have set.
                _ => (Instant::now() + send.min(read), None),
            };
            tokio::time::sleep_until(deadline).await;
            if let Some(which) = which {
                if self.changes.load(Ordering::Acquire) == changes {
                    return which;
                }
            }
        }
    }

    fn set(&self, phase: u8) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.since_ms.store(ms, Ordering::Release);
        self.phase.store(phase, Ordering::Release);
        self.changes.fetch_add(1, Ordering::AcqRel);
    }
}

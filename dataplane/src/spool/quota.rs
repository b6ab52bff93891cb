//! The `--spool-quota`: one byte budget for every spool file of the process.
//!
//! Reservations are all-or-nothing, so a request that would not fit is refused (507) without disturbing the bytes
//! already granted to others. The budget also carries the register of who yields when there is no room
//! ([`super::pressure`]): every spool of the process shares it.

use super::pressure::Pressure;
use super::SpoolError;
use std::sync::atomic::{AtomicU64, Ordering};

/// A byte budget shared by all spools. A limit of 0 means unlimited.
#[derive(Debug)]
pub struct SpoolQuota {
    limit: u64,
    used: AtomicU64,
    pub(super) pressure: Pressure,
}

impl SpoolQuota {
    pub fn new(limit: u64) -> Self {
        SpoolQuota { limit, used: AtomicU64::new(0), pressure: Pressure::default() }
    }

    /// Takes `bytes` from the budget, or nothing at all.
    pub fn reserve(&self, bytes: u64) -> Result<(), SpoolError> {
        let limit = self.limit;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let after = used.checked_add(bytes)?;
                (limit == 0 || after <= limit).then_some(after)
            })
            .map(|_| ())
            .map_err(|_| SpoolError::QuotaExceeded { quota: limit })
    }

    /// Gives back bytes taken by [`SpoolQuota::reserve`].
    pub fn release(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Takes `bytes` whatever the limit: bytes already on the disk (resumable uploads found at start) are counted,
    /// so that requests admitted after them see the space that is really left.
    pub fn force_reserve(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::AcqRel);
    }

    /// The quota (0: none).
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

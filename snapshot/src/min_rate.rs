//! The least a body must move: a request body the client sends, or a response body the client reads.
//!
//! The idle timeout (`timeouts.clientBodyMs`) cuts a client that sends nothing for a while, but not one that sends a
//! byte every few seconds: such a client holds a connection, a request slot and a spool file forever. This rule
//! judges a body's bytes per window of time, Apache's mod_reqtimeout `MinRate` in another shape: each `windowMs` spent
//! waiting for the client must bring at least `bytesPerSecond × windowMs` bytes.
//!
//! The default is tuned so that it never cuts a phone on a poor network: 2G/EDGE carries 30–100 kbit/s (4–12 KB/s),
//! and a phone changing cells may stall 10–20 s. 500 B/s over 60 s asks for 30 KB a minute, which such a phone sends
//! in under 8 s of the minute, so it may stall for more than 50 s of every minute and still pass.

use serde::{Deserialize, Serialize};

/// The default floor: 500 bytes per second, on average over each window (Apache's `MinRate=500`).
pub const DEFAULT_MIN_BYTES_PER_SECOND: u64 = 500;
/// The default window: a minute, three times the longest stall of a phone changing cells.
pub const DEFAULT_MIN_RATE_WINDOW_MS: u64 = 60_000;
/// Shorter windows judge the scheduler's and the network's jitter rather than the client.
pub const MIN_RATE_WINDOW_FLOOR_MS: u64 = 100;
/// Longer windows would let a client hold a connection for hours before being judged.
pub const MIN_RATE_WINDOW_CEILING_MS: u64 = 3_600_000;
/// A floor above this (1 GiB/s) is a mistake; the bound also keeps `bytes_per_window` far from overflowing.
pub const MAX_MIN_BYTES_PER_SECOND: u64 = 1 << 30;

/// A body's minimum transfer rate. An absent field is the default; `bytesPerSecond: 0` turns the check off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MinBodyRate {
    /// Bytes per second the body must average over each window; 0: no minimum (the idle timeout still applies).
    pub bytes_per_second: u64,
    /// Length of a window, in milliseconds of time spent waiting for the client.
    pub window_ms: u64,
}

impl Default for MinBodyRate {
    fn default() -> Self {
        MinBodyRate { bytes_per_second: DEFAULT_MIN_BYTES_PER_SECOND, window_ms: DEFAULT_MIN_RATE_WINDOW_MS }
    }
}

impl MinBodyRate {
    /// No minimum at all.
    pub const OFF: MinBodyRate = MinBodyRate { bytes_per_second: 0, window_ms: DEFAULT_MIN_RATE_WINDOW_MS };

    pub fn is_off(&self) -> bool {
        self.bytes_per_second == 0
    }

    /// Whether this is the default: left out of serialized snapshots, so that a dataplane older than this field
    /// still takes a snapshot whose policies do not change it.
    pub fn is_default(&self) -> bool {
        *self == MinBodyRate::default()
    }

    /// Bytes each window must bring (within the bounds [`MinBodyRate::check`] enforces this cannot overflow).
    pub fn bytes_per_window(&self) -> u64 {
        self.bytes_per_second.saturating_mul(self.window_ms) / 1000
    }

    /// The bounds, as the field that breaks one and why.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.is_off() {
            return Ok(());
        }
        if self.bytes_per_second > MAX_MIN_BYTES_PER_SECOND {
            return Err(("minBodyRate.bytesPerSecond", "must be at most 1073741824 (1 GiB/s)"));
        }
        if !(MIN_RATE_WINDOW_FLOOR_MS..=MIN_RATE_WINDOW_CEILING_MS).contains(&self.window_ms) {
            return Err(("minBodyRate.windowMs", "must be between 100 ms and 1 h"));
        }
        Ok(())
    }
}

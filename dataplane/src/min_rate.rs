//! The policy's `minBodyRate`, enforced: the least a client must send of a request body, or read of a response, per
//! window of time spent waiting for it.
//!
//! Time is counted only while the dataplane waits for the client: a request body's time between asking for its next
//! bytes and getting them, a response's time while its connection's socket takes nothing more. Time the dataplane
//! spends not reading (an upstream that holds a streamed body back, a spool paced for a replay) is its own, not the
//! client's. The windows follow one another: each must bring `bytesPerSecond × window` bytes, judged when it closes.
//! A window that already has its bytes cannot fail, so the longest a client may then wait is the rest of it and the
//! whole of the next one ([`RateWindows::patience`]).
//!
//! [`RateWindows`] is the arithmetic alone (plain durations, unit-tested without clocks); [`Pace`] applies it with
//! the idle timeout to one request body's reads; the response side is the client's socket (`server::client_io`).

use holdfast_snapshot::MinBodyRate;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// A body moved slower than its minimum rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("fewer than {} bytes in {:?} (the minimum of {} bytes per second)", .0.bytes_per_window(), Duration::from_millis(.0.window_ms), .0.bytes_per_second)]
pub struct TooSlow(pub MinBodyRate);

/// The windows of one body (or one connection's responses).
#[derive(Debug, Clone)]
pub struct RateWindows {
    rate: MinBodyRate,
    window: Duration,
    /// Bytes each window must bring.
    required: u64,
    /// Of the current window.
    left: Duration,
    bytes: u64,
}

impl RateWindows {
    /// `None` when the rate is off.
    pub fn new(rate: MinBodyRate) -> Option<Self> {
        if rate.is_off() {
            return None;
        }
        let window = Duration::from_millis(rate.window_ms);
        Some(RateWindows { rate, window, required: rate.bytes_per_window(), left: window, bytes: 0 })
    }

    pub fn rate(&self) -> MinBodyRate {
        self.rate
    }

    /// The longest the client may keep the dataplane waiting from now without a window closing short.
    pub fn patience(&self) -> Duration {
        match self.bytes >= self.required {
            true => self.left + self.window,
            false => self.left,
        }
    }

    /// The client kept the dataplane waiting for `waited`, and then brought `bytes` (0: the wait was cut short by a
    /// timer). Fails when a window closed with fewer bytes than it needed.
    pub fn waited(&mut self, mut waited: Duration, mut bytes: u64) -> Result<(), TooSlow> {
        while waited >= self.left {
            // A window closed during the wait. The bytes that ended it came at the window's end or a timer's tick
            // later (a wait is never longer than `patience`, give or take the timer): they count for a window that
            // would close short without them.
            if self.bytes < self.required {
                self.bytes += std::mem::take(&mut bytes);
                if self.bytes < self.required {
                    return Err(TooSlow(self.rate));
                }
            }
            waited -= self.left;
            self.left = self.window;
            self.bytes = 0;
        }
        self.left -= waited;
        self.bytes += bytes;
        Ok(())
    }
}

/// Why a wait for the client's body ended without its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Late {
    /// Nothing at all for the idle timeout.
    Idle(Duration),
    TooSlow(TooSlow),
}

/// The idle timeout and the minimum rate of one request body, applied to each wait for its next bytes.
pub struct Pace {
    idle: Duration,
    windows: Option<RateWindows>,
}

impl Pace {
    pub fn new(idle: Duration, rate: MinBodyRate) -> Self {
        Pace { idle, windows: RateWindows::new(rate) }
    }

    /// Waits for `read` (the client's next bytes; `bytes` says how many it brought), within the idle timeout and the
    /// windows. `read` is kept, not dropped, when a window closes during the wait with its bytes in: only a verdict
    /// ends it early.
    pub async fn wait<F: Future>(&mut self, read: F, bytes: impl Fn(&F::Output) -> u64) -> Result<F::Output, Late> {
        let started = Instant::now();
        let idle_deadline = started + self.idle;
        let mut read = std::pin::pin!(read);
        let mut from = started;
        loop {
            let deadline = match &self.windows {
                Some(windows) => idle_deadline.min(from + windows.patience()),
                None => idle_deadline,
            };
            let result = tokio::time::timeout_at(deadline, read.as_mut()).await;
            // Windows without a floor cost no clock read.
            let Some(windows) = &mut self.windows else {
                return result.map_err(|_| Late::Idle(self.idle));
            };
            let now = Instant::now();
            let brought = result.as_ref().map_or(0, &bytes);
            windows.waited(now - from, brought).map_err(Late::TooSlow)?;
            match result {
                Ok(output) => return Ok(output),
                Err(_) if now >= idle_deadline => return Err(Late::Idle(self.idle)),
                Err(_) => from = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(bytes_per_second: u64, window_ms: u64) -> MinBodyRate {
        MinBodyRate { bytes_per_second, window_ms }
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn each_window_must_bring_its_bytes() {
        let mut w = RateWindows::new(rate(100, 10_000)).unwrap();
        assert_eq!(w.patience(), 10 * S);
        w.waited(4 * S, 600).unwrap();
        assert_eq!(w.patience(), 6 * S);
        w.waited(3 * S, 400).unwrap();
        // 1,000 bytes in: this window cannot fail, the next one must bring its own.
        assert_eq!(w.patience(), 13 * S);
        w.waited(5 * S, 10).unwrap();
        assert_eq!(w.patience(), 8 * S);
        assert_eq!(w.waited(8 * S, 0), Err(TooSlow(rate(100, 10_000))));
    }

    #[test]
    fn a_stall_within_a_window_is_forgiven_when_the_window_has_its_bytes() {
        // A phone at 4 KB/s that stalls 50 s changing cells, against the default of 500 B/s over 60 s.
        let mut w = RateWindows::new(MinBodyRate::default()).unwrap();
        for _ in 0..10 {
            w.waited(50 * S, 0).unwrap();
            for _ in 0..10 {
                w.waited(S, 4000).unwrap();
            }
        }
    }

    #[test]
    fn bytes_that_end_a_wait_at_a_window_end_count_for_that_window() {
        let mut w = RateWindows::new(rate(100, 1_000)).unwrap();
        w.waited(Duration::from_millis(1_002), 100).unwrap();
        // The next window starts empty, two milliseconds in.
        assert_eq!(w.patience(), Duration::from_millis(998));
        assert!(w.waited(Duration::from_millis(1_001), 99).is_err());
    }

    #[test]
    fn off_means_no_windows() {
        assert!(RateWindows::new(rate(0, 60_000)).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_is_too_slow_before_the_idle_timeout() {
        let mut pace = Pace::new(10 * S, rate(1000, 2_000));
        let mut verdict = None;
        for _ in 0..20 {
            match pace.wait(tokio::time::sleep(S), |_| 10).await {
                Ok(()) => continue,
                Err(late) => {
                    verdict = Some(late);
                    break;
                }
            }
        }
        assert!(matches!(verdict, Some(Late::TooSlow(_))), "{verdict:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_outlives_a_window_it_filled_and_nothing_at_all_is_the_idle_timeout() {
        let mut pace = Pace::new(10 * S, rate(100, 2_000));
        pace.wait(std::future::ready(()), |_| 500).await.unwrap();
        // 500 bytes fill this window: a read of 3 s is within patience (the rest of it and the next, 4 s).
        pace.wait(tokio::time::sleep(3 * S), |_| 200).await.unwrap();
        let mut idle = Pace::new(3 * S, rate(0, 2_000));
        assert_eq!(idle.wait(std::future::pending::<()>(), |_| 0).await, Err(Late::Idle(3 * S)));
    }
}

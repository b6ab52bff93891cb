//! The attempts of one request: where each went and how it ended. A request that waits long for an endpoint that
//! keeps refusing tries it again and again: consecutive attempts that ended alike at the same endpoint are one
//! record with a count, and past [`MAX_RECORDS`] records the rest are only counted, so that a log line stays short.

use crate::upstream::FailureKind;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The upstream's response head came back with this status.
    Answered(u16),
    Failed(FailureKind),
}

impl AttemptOutcome {
    /// For logs: the status, or the failure's metric name.
    pub fn label(&self) -> std::borrow::Cow<'static, str> {
        match self {
            AttemptOutcome::Answered(status) => status.to_string().into(),
            AttemptOutcome::Failed(kind) => kind.as_str().into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRecord {
    pub endpoint: SocketAddr,
    pub outcome: AttemptOutcome,
    /// Consecutive attempts at this endpoint that ended this way (1 but after repeated refusals).
    pub count: u32,
}

/// Records kept per request.
pub const MAX_RECORDS: usize = 32;

#[derive(Default)]
pub(super) struct Attempts {
    /// The first record apart, so that the usual request (one attempt) allocates nothing.
    first: Option<AttemptRecord>,
    more: Vec<AttemptRecord>,
    /// Attempts past [`MAX_RECORDS`] records.
    pub omitted: u32,
    /// The attempt under way, and when it started.
    current: Option<(SocketAddr, Instant)>,
    /// When the first response head came back.
    pub first_byte: Option<Instant>,
    /// Time spent waiting for an endpoint.
    pub waited: Duration,
}

impl Attempts {
    pub fn start(&mut self, endpoint: SocketAddr) {
        self.current = Some((endpoint, Instant::now()));
    }

    /// Ends the attempt under way; returns how long it took.
    pub fn end(&mut self, outcome: AttemptOutcome) -> Option<Duration> {
        let (endpoint, started) = self.current.take()?;
        let now = Instant::now();
        if matches!(outcome, AttemptOutcome::Answered(_)) {
            self.first_byte.get_or_insert(now);
        }
        self.record(AttemptRecord { endpoint, outcome, count: 1 });
        Some(now.duration_since(started))
    }

    fn record(&mut self, record: AttemptRecord) {
        if 1 + self.more.len() >= MAX_RECORDS {
            self.omitted += 1;
            return;
        }
        match self.more.last_mut().or(self.first.as_mut()) {
            None => self.first = Some(record),
            Some(last) if (last.endpoint, last.outcome) == (record.endpoint, record.outcome) => last.count += 1,
            Some(_) => self.more.push(record),
        }
    }

    /// The records, in order.
    pub fn records(&self) -> impl Iterator<Item = &AttemptRecord> {
        self.first.iter().chain(&self.more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::FailureKind;

    #[test]
    fn repeated_refusals_at_one_endpoint_make_one_record_and_the_list_is_bounded() {
        let (a, b): (SocketAddr, SocketAddr) = ("10.0.0.1:80".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
        let refused = AttemptOutcome::Failed(FailureKind::ConnectRefused);
        let mut attempts = Attempts::default();
        for (endpoint, outcome) in
            [(a, refused), (a, refused), (a, refused), (b, refused), (b, AttemptOutcome::Answered(200))]
        {
            attempts.start(endpoint);
            attempts.end(outcome);
        }
        let counts: Vec<_> = attempts.records().map(|r| (r.endpoint, r.outcome, r.count)).collect();
        assert_eq!(counts, [(a, refused, 3), (b, refused, 1), (b, AttemptOutcome::Answered(200), 1)]);
        for i in 0..100 {
            attempts.start(if i % 2 == 0 { a } else { b });
            attempts.end(refused);
        }
        assert_eq!(attempts.records().count(), MAX_RECORDS);
        assert_eq!(attempts.omitted, 100 + 3 - MAX_RECORDS as u32);
    }
}

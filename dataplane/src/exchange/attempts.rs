//! The attempts of one request: where each went and how it ended.

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

#[derive(Debug, Clone, Copy)]
pub struct AttemptRecord {
    pub endpoint: SocketAddr,
    pub outcome: AttemptOutcome,
}

#[derive(Default)]
pub(super) struct Attempts {
    pub list: Vec<AttemptRecord>,
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
        self.list.push(AttemptRecord { endpoint, outcome });
        Some(now.duration_since(started))
    }
}

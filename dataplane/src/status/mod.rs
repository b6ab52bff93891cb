//! The live status page (`GET /status` on the `--metrics` and admin listeners) and the JSON it reads
//! (`GET /status/api`): every request with a body, and every tunnel, in flight — route, client, bytes received of
//! bytes declared, bytes delivered, attempt, endpoint, state —, the last ones that finished, with their attempts,
//! the backends with their endpoints' health, and the spool against its quota.
//!
//! [`Board`] keeps the requests: registered when their body starts, moved to the finished list when they end. A
//! request without a body never touches it, so small GETs pay nothing for the page. The page itself
//! (`page.html`) is one self-contained file, compiled into the binary: nothing is fetched from outside the pod.

mod api;

pub use api::render;

use crate::exchange::{AttemptRecord, Exchange};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// The page, as served.
pub const PAGE: &str = include_str!("page.html");

/// Finished requests kept for the page.
pub const FINISHED_KEPT: usize = 50;

/// A request as it ended.
#[derive(Clone)]
pub struct Finished {
    pub exchange: Arc<Exchange>,
    pub finished_at: SystemTime,
    pub status: u16,
    pub attempts: Vec<AttemptRecord>,
    pub error: Option<String>,
}

#[derive(Default)]
struct Inner {
    /// By the exchange's address, which is unique while it lives.
    in_flight: HashMap<usize, Arc<Exchange>>,
    finished: VecDeque<Finished>,
}

/// The requests the page shows.
#[derive(Default)]
pub struct Board {
    inner: Mutex<Inner>,
}

impl Board {
    /// A request with a body, or a tunnel, starts.
    pub fn started(&self, exchange: &Arc<Exchange>) {
        self.lock().in_flight.insert(Arc::as_ptr(exchange) as usize, exchange.clone());
    }

    /// It ended with `status`.
    pub fn finished(&self, exchange: &Arc<Exchange>, status: u16) {
        let finished = Finished {
            exchange: exchange.clone(),
            finished_at: SystemTime::now(),
            status,
            attempts: exchange.attempts().list,
            error: exchange.error(),
        };
        let mut inner = self.lock();
        inner.in_flight.remove(&(Arc::as_ptr(exchange) as usize));
        if inner.finished.len() >= FINISHED_KEPT {
            inner.finished.pop_back();
        }
        inner.finished.push_front(finished);
    }

    /// What is in flight (newest first) and what finished (newest first).
    pub fn contents(&self) -> (Vec<Arc<Exchange>>, Vec<Finished>) {
        let inner = self.lock();
        let mut in_flight: Vec<_> = inner.in_flight.values().cloned().collect();
        in_flight.sort_by_key(|e| std::cmp::Reverse(e.started));
        (in_flight, inner.finished.iter().cloned().collect())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

//! Sharing client connections out evenly between the workers.
//!
//! Every worker accepts from the same listening sockets and the kernel wakes all of them for a new connection, so
//! whichever thread runs first takes it, and connections opened in a burst land unevenly: 20 opened at once by one
//! client all went to one of two idle workers in a test, and under wrk's 64 connections on 2 cores one worker was
//! busy 65–70 % of the time, the other 33–38 %. With `--balance-connections`, a worker that accepts a connection
//! while it has more open than the least loaded worker plus [`SLACK`] hands it over to that worker, so that a few
//! long-lived connections (a load balancer's) are spread over every core.
//!
//! It is off by default, as connection balancing is in nginx (the kernel's choice, `accept_mutex off`) and Envoy
//! (`exact_balance` is opt-in): where the clients open many connections the kernel's choice evens out under load,
//! and on the 2-core benchmark machine, where the client and the upstream share the cores, concentrating the work
//! was cheaper: 52.7k small GETs/s balanced against 54.5k (median of 9 interleaved rounds of 5 s).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// How many more open connections than the least loaded worker a worker may have and still keep a new one.
const SLACK: usize = 1;

/// Open client connections per worker.
#[derive(Debug)]
pub struct OpenConnections {
    per_worker: Box<[Slot]>,
}

/// One counter per cache line: each worker updates its own on every connection.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot(AtomicUsize);

impl OpenConnections {
    pub fn new(workers: usize) -> Arc<Self> {
        Arc::new(OpenConnections { per_worker: (0..workers.max(1)).map(|_| Slot::default()).collect() })
    }

    /// The worker that is to serve a connection accepted by worker `accepting`: that one, unless it has more than
    /// [`SLACK`] connections more than the least loaded worker. The connection counts there from now on, so that
    /// the next decision of a burst sees this one.
    pub fn assign(self: &Arc<Self>, accepting: usize) -> OpenConnection {
        let load =
            |worker: usize| self.per_worker.get(worker).map_or(usize::MAX, |slot| slot.0.load(Ordering::Relaxed));
        let least = (0..self.per_worker.len()).min_by_key(|&worker| load(worker)).unwrap_or(0);
        let worker = if load(accepting) > load(least).saturating_add(SLACK) { least } else { accepting };
        let worker = worker.min(self.per_worker.len() - 1);
        self.per_worker[worker].0.fetch_add(1, Ordering::Relaxed);
        OpenConnection { counts: self.clone(), worker }
    }

    /// Counts a connection on the worker that accepted it, wherever the others stand.
    pub fn keep(self: &Arc<Self>, accepting: usize) -> OpenConnection {
        let worker = accepting.min(self.per_worker.len() - 1);
        self.per_worker[worker].0.fetch_add(1, Ordering::Relaxed);
        OpenConnection { counts: self.clone(), worker }
    }

    /// Open connections of each worker.
    pub fn loads(&self) -> Vec<usize> {
        self.per_worker.iter().map(|slot| slot.0.load(Ordering::Relaxed)).collect()
    }
}

/// A connection counted on its worker until it is dropped.
#[derive(Debug)]
pub struct OpenConnection {
    counts: Arc<OpenConnections>,
    worker: usize,
}

impl OpenConnection {
    /// The worker the connection was assigned to.
    pub fn worker(&self) -> usize {
        self.worker
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.counts.per_worker[self.worker].0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_accepted_by_one_worker_is_shared_out_within_the_slack() {
        let open = OpenConnections::new(3);
        let held: Vec<_> = (0..30).map(|_| open.assign(0)).collect();
        let loads = open.loads();
        assert_eq!(loads.iter().sum::<usize>(), 30);
        assert!(loads.iter().all(|&n| (9..=11).contains(&n)), "{loads:?}");
        drop(held);
        assert_eq!(open.loads(), vec![0, 0, 0]);
    }

    #[test]
    fn a_worker_within_the_slack_keeps_its_connection() {
        let open = OpenConnections::new(2);
        let first = open.assign(1);
        assert_eq!(first.worker(), 1);
        let second = open.assign(1);
        assert_eq!(second.worker(), 1, "one more than the other worker is within the slack");
        assert_eq!(open.assign(1).worker(), 0, "two more is not");
    }
}

//! Choosing an endpoint for an attempt, and passive health.
//!
//! Kubernetes takes seconds to mark a killed pod not-ready, so an endpoint that the snapshot still calls ready but
//! that refuses or resets connections is set aside for a short backoff that grows with each consecutive failure. When
//! every candidate is set aside the caller learns when the earliest one may be tried again, and waits for that or for
//! a new snapshot, whichever comes first. A pod that comes back on the same address is found by the next try.
//!
//! Health and in-flight counts are kept per address, outside the snapshot, so that a config push does not forget
//! that an endpoint was failing or how busy it is.
//!
//! Every request picks an endpoint, and nearly always no endpoint has a failure on record. That case takes no lock,
//! reads no clock and hashes nothing: each backend keeps its candidates' shared counters at hand once looked up, and
//! the book counts its entries with a backoff, so that a pick sees at a glance that every candidate is available.

use crate::upstream::Upstream;
use holdfast_snapshot::{Backend, Balance};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// First backoff after a failure; doubled per consecutive failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Short enough that a pod restarting in place is found within a second of listening again.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A backend's endpoints as the snapshot describes them.
#[derive(Debug)]
pub struct BackendState {
    pub name: String,
    /// The Service port behind it, when the snapshot names it (metric labels, the status page).
    pub service: Option<holdfast_snapshot::ServicePort>,
    /// The protocol and transport its endpoints are reached by.
    pub upstream: Upstream,
    endpoints: Vec<EndpointInfo>,
    /// The endpoints a request may use, worked out once per snapshot rather than per request.
    candidates: Vec<SocketAddr>,
    /// Each candidate's entry in the health book, looked up (under the book's lock) by the first pick that needs it.
    /// The book keeps an entry while the snapshot in force names its address, so for that snapshot this is the one
    /// the book holds; a backend of an older snapshot may keep one the book has since dropped, which then counts only
    /// that snapshot's remaining requests.
    shared: Vec<OnceLock<Arc<Shared>>>,
    balance: Balance,
    next: AtomicUsize,
}

#[derive(Debug, Clone, Copy)]
struct EndpointInfo {
    addr: SocketAddr,
    ready: bool,
    serving: bool,
    terminating: bool,
}

impl BackendState {
    /// Compiles a validated backend (addresses are known to parse).
    pub fn new(name: &str, backend: &Backend) -> Self {
        let endpoints: Vec<EndpointInfo> = backend
            .endpoints
            .iter()
            .filter_map(|e| {
                let ip: IpAddr = e.address.parse().ok()?;
                Some(EndpointInfo {
                    addr: SocketAddr::new(ip, e.port),
                    ready: e.ready,
                    serving: e.serving,
                    terminating: e.terminating,
                })
            })
            .collect();
        let candidates = candidates(&endpoints);
        BackendState {
            name: name.to_string(),
            service: backend.service.clone(),
            upstream: Upstream::for_backend(backend),
            endpoints,
            shared: candidates.iter().map(|_| OnceLock::new()).collect(),
            candidates,
            balance: backend.balance,
            next: AtomicUsize::new(0),
        }
    }
}

/// Ready endpoints; when none is ready, the ones still serving while terminating (EndpointSlice semantics).
fn candidates(endpoints: &[EndpointInfo]) -> Vec<SocketAddr> {
    let ready: Vec<_> = endpoints.iter().filter(|e| e.ready).map(|e| e.addr).collect();
    if !ready.is_empty() {
        return ready;
    }
    endpoints.iter().filter(|e| e.serving && e.terminating).map(|e| e.addr).collect()
}

/// The outcome of a choice.
pub enum Pick {
    /// Send to this endpoint; the guard counts the attempt as in flight until dropped.
    Endpoint(SocketAddr, InFlight),
    /// Every candidate is backing off; the earliest may be tried at this instant.
    RetryAt(Instant),
    /// The backend has no candidate at all: only a new snapshot can help.
    NoCandidate,
}

#[derive(Debug, Default)]
struct EndpointHealth {
    failures: u32,
    retry_at: Option<Instant>,
    shared: Arc<Shared>,
}

/// What a request holds on to while it uses an endpoint, readable without the book's lock.
#[derive(Debug, Default)]
struct Shared {
    in_flight: AtomicUsize,
    /// Mirrors `failures > 0`, so that a success on a healthy endpoint (nearly every request) need not lock the book.
    failing: AtomicBool,
}

/// Health and load of every endpoint address, shared by all requests.
#[derive(Debug, Default)]
pub struct Health {
    book: Mutex<HashMap<SocketAddr, EndpointHealth>>,
    /// How many entries of the book have a backoff (`retry_at`); changed only under the book's lock.
    backing_off: AtomicUsize,
}

/// Counts one attempt against an endpoint while it lives.
pub struct InFlight(Arc<Shared>);

impl InFlight {
    fn start(shared: Arc<Shared>) -> Self {
        shared.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(shared)
    }

    /// Whether the endpoint has failures on record, which a success would clear.
    pub fn endpoint_failing(&self) -> bool {
        self.0.failing.load(Ordering::Acquire)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Health {
    /// Chooses an endpoint of `backend` for the next attempt. Runs for every request, so it allocates nothing: the
    /// candidates are counted and the chosen one is found by position.
    pub fn pick(&self, backend: &BackendState) -> Pick {
        let candidates = &backend.candidates;
        if candidates.is_empty() {
            return Pick::NoCandidate;
        }
        if self.backing_off.load(Ordering::Acquire) == 0 {
            return self.pick_all_available(backend);
        }
        let now = Instant::now();
        let mut book = self.lock();
        let available = |addr: &&SocketAddr| book.get(*addr).and_then(|h| h.retry_at).is_none_or(|at| at <= now);
        let count = candidates.iter().filter(available).count();
        if count == 0 {
            let earliest = candidates.iter().filter_map(|addr| book.get(addr).and_then(|h| h.retry_at)).min();
            return earliest.map_or(Pick::NoCandidate, Pick::RetryAt);
        }
        let turn = backend.next.fetch_add(1, Ordering::Relaxed);
        let chosen = match backend.balance {
            Balance::RoundRobin => candidates.iter().filter(available).nth(turn % count),
            Balance::LeastInFlight => {
                let load = |addr: &SocketAddr| book.get(addr).map_or(0, |h| h.shared.in_flight.load(Ordering::Acquire));
                let least = candidates.iter().filter(available).map(&load).min().unwrap_or(0);
                let tied = || candidates.iter().filter(available).filter(|a| load(a) == least);
                tied().nth(turn % tied().count())
            }
        };
        // `count > 0` and the book is locked, so the position exists; the fallback only keeps this panic-free.
        let chosen = *chosen.unwrap_or(&candidates[0]);
        let shared = book.entry(chosen).or_default().shared.clone();
        Pick::Endpoint(chosen, InFlight::start(shared))
    }

    /// [`Health::pick`] when no endpoint has a backoff: every candidate is available.
    fn pick_all_available(&self, backend: &BackendState) -> Pick {
        let candidates = &backend.candidates;
        let turn = backend.next.fetch_add(1, Ordering::Relaxed);
        let index = match backend.balance {
            Balance::RoundRobin => turn % candidates.len(),
            Balance::LeastInFlight => {
                let load = |i: usize| self.shared(backend, i).in_flight.load(Ordering::Acquire);
                let least = (0..candidates.len()).map(load).min().unwrap_or(0);
                let tied = || (0..candidates.len()).filter(|&i| load(i) == least);
                // A load may change between the two passes; then the first candidate stands in.
                tied().nth(turn % tied().count().max(1)).unwrap_or(0)
            }
        };
        Pick::Endpoint(candidates[index], InFlight::start(self.shared(backend, index).clone()))
    }

    /// The book's entry for the backend's `index`th candidate, looked up once per snapshot.
    fn shared<'a>(&self, backend: &'a BackendState, index: usize) -> &'a Arc<Shared> {
        backend.shared[index].get_or_init(|| self.lock().entry(backend.candidates[index]).or_default().shared.clone())
    }

    /// Sets an endpoint aside after a failed connect or a reset.
    pub fn record_failure(&self, addr: SocketAddr) {
        let mut book = self.lock();
        let health = book.entry(addr).or_default();
        health.failures = health.failures.saturating_add(1);
        health.shared.failing.store(true, Ordering::Release);
        let backoff = FIRST_BACKOFF.saturating_mul(1 << health.failures.min(16).saturating_sub(1)).min(MAX_BACKOFF);
        if health.retry_at.replace(Instant::now() + backoff).is_none() {
            self.backing_off.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Forgets past failures of an endpoint that answered. Callers may skip it when
    /// [`InFlight::endpoint_failing`] says there is nothing to forget.
    pub fn record_success(&self, addr: SocketAddr) {
        if let Some(health) = self.lock().get_mut(&addr) {
            health.failures = 0;
            if health.retry_at.take().is_some() {
                self.backing_off.fetch_sub(1, Ordering::AcqRel);
            }
            health.shared.failing.store(false, Ordering::Release);
        }
    }

    /// Drops what is known about addresses that no snapshot mentions any more (and that nothing is using).
    pub fn retain(&self, present: impl Fn(&SocketAddr) -> bool) {
        self.lock().retain(|addr, h| {
            let keep = present(addr) || h.shared.in_flight.load(Ordering::Acquire) > 0;
            if !keep && h.retry_at.is_some() {
                self.backing_off.fetch_sub(1, Ordering::AcqRel);
            }
            keep
        });
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SocketAddr, EndpointHealth>> {
        self.book.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What the status page and the metrics show of one endpoint.
#[derive(Debug, Clone)]
pub struct EndpointReport {
    pub addr: SocketAddr,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// Attempts using it now.
    pub in_flight: usize,
    /// Consecutive failures on record.
    pub failures: u32,
    /// How long it stays set aside, if it is.
    pub backing_off: Option<Duration>,
}

impl Health {
    /// Every endpoint of `backend` with its health and load (one lock of the book).
    pub fn report(&self, backend: &BackendState) -> Vec<EndpointReport> {
        let now = Instant::now();
        let book = self.lock();
        let report = |e: &EndpointInfo| {
            let health = book.get(&e.addr);
            EndpointReport {
                addr: e.addr,
                ready: e.ready,
                serving: e.serving,
                terminating: e.terminating,
                in_flight: health.map_or(0, |h| h.shared.in_flight.load(Ordering::Acquire)),
                failures: health.map_or(0, |h| h.failures),
                backing_off: health.and_then(|h| h.retry_at).filter(|at| *at > now).map(|at| at - now),
            }
        };
        backend.endpoints.iter().map(report).collect()
    }

    /// Addresses set aside now, whatever their backend.
    pub fn backing_off_now(&self) -> usize {
        let now = Instant::now();
        self.lock().values().filter(|h| h.retry_at.is_some_and(|at| at > now)).count()
    }
}

impl BackendState {
    /// Every address of this backend, for pruning the health book.
    pub fn addresses(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.endpoints.iter().map(|e| e.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_snapshot::Endpoint;

    fn backend(balance: Balance, endpoints: &[(u16, bool, bool, bool)]) -> BackendState {
        let endpoints = endpoints
            .iter()
            .map(|&(port, ready, serving, terminating)| Endpoint {
                address: "127.0.0.1".into(),
                port,
                ready,
                serving,
                terminating,
            })
            .collect();
        BackendState::new("b", &Backend { endpoints, balance, ..Default::default() })
    }

    fn port(pick: Pick) -> u16 {
        match pick {
            Pick::Endpoint(addr, _) => addr.port(),
            _ => panic!("expected an endpoint"),
        }
    }

    #[tokio::test]
    async fn round_robin_over_ready_endpoints_only() {
        let b =
            backend(Balance::RoundRobin, &[(1, true, true, false), (2, false, false, false), (3, true, true, false)]);
        let health = Health::default();
        let ports: Vec<u16> = (0..4).map(|_| port(health.pick(&b))).collect();
        assert_eq!(ports, [1, 3, 1, 3]);
    }

    #[tokio::test]
    async fn terminating_but_serving_endpoints_are_used_only_when_none_is_ready() {
        let b = backend(Balance::RoundRobin, &[(1, false, true, true), (2, false, false, true)]);
        assert_eq!(port(Health::default().pick(&b)), 1);
        let empty = backend(Balance::RoundRobin, &[(2, false, false, true)]);
        assert!(matches!(Health::default().pick(&empty), Pick::NoCandidate));
    }

    #[tokio::test]
    async fn least_in_flight_prefers_the_idle_endpoint() {
        let b = backend(Balance::LeastInFlight, &[(1, true, true, false), (2, true, true, false)]);
        let health = Health::default();
        let first = health.pick(&b);
        let busy = port_of(&first);
        for _ in 0..3 {
            assert_ne!(port(health.pick(&b)), busy);
        }
        drop(first);
    }

    fn port_of(pick: &Pick) -> u16 {
        match pick {
            Pick::Endpoint(addr, _) => addr.port(),
            _ => panic!("expected an endpoint"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_knows_whether_its_endpoint_has_failures_to_forget() {
        let b = backend(Balance::RoundRobin, &[(1, true, true, false)]);
        let health = Health::default();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let failing = |pick: Pick| match pick {
            Pick::Endpoint(_, in_flight) => in_flight.endpoint_failing(),
            _ => panic!("expected an endpoint"),
        };
        assert!(!failing(health.pick(&b)), "a healthy endpoint needs no success recorded");
        health.record_failure(addr);
        tokio::time::advance(FIRST_BACKOFF).await;
        assert!(failing(health.pick(&b)), "after a failure, a success must be recorded");
        health.record_success(addr);
        assert!(!failing(health.pick(&b)));
    }

    #[tokio::test(start_paused = true)]
    async fn failing_endpoints_back_off_with_growing_delays_and_recover() {
        let b = backend(Balance::RoundRobin, &[(1, true, true, false)]);
        let health = Health::default();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut delays = Vec::new();
        for _ in 0..6 {
            health.record_failure(addr);
            match health.pick(&b) {
                Pick::RetryAt(at) => delays.push((at - Instant::now()).as_millis()),
                _ => panic!("a failing endpoint must back off"),
            }
        }
        assert_eq!(delays, [50, 100, 200, 400, 800, 1000]);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(port(health.pick(&b)), 1, "tried again once its backoff has passed");
        health.record_success(addr);
        health.record_failure(addr);
        assert!(matches!(health.pick(&b), Pick::RetryAt(at) if at - Instant::now() == FIRST_BACKOFF));
    }

    #[tokio::test(start_paused = true)]
    async fn the_lock_free_pick_is_used_only_while_no_endpoint_backs_off() {
        let b = backend(Balance::RoundRobin, &[(1, true, true, false), (2, true, true, false)]);
        let health = Health::default();
        let (one, two): (SocketAddr, SocketAddr) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
        let backing_off = || health.backing_off.load(Ordering::Acquire);
        assert_eq!([port(health.pick(&b)), port(health.pick(&b))], [1, 2]);
        health.record_failure(one);
        health.record_failure(one);
        assert_eq!(backing_off(), 1, "one endpoint backs off, however often it failed");
        assert_eq!([port(health.pick(&b)), port(health.pick(&b))], [2, 2], "the failing endpoint is skipped");
        health.record_success(one);
        assert_eq!(backing_off(), 0);
        assert_eq!([port(health.pick(&b)), port(health.pick(&b))], [1, 2]);
        health.record_failure(two);
        health.retain(|addr| *addr != two);
        assert_eq!(backing_off(), 0, "an entry forgotten with its backoff no longer counts");
        let in_use = health.pick(&b);
        assert_eq!(port_of(&in_use), 1);
        health.record_failure(one);
        health.retain(|_| false);
        assert_eq!(backing_off(), 1, "an entry in use is kept, with its backoff");
        drop(in_use);
    }
}

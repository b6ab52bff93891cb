//! The record of one request as it goes through the dataplane: who asked for what, which route took it, each attempt
//! and how it ended, how many bytes went each way, and when. It has three readers: the access log line written when
//! the request ends ([`crate::access_log`]), the route's metrics ([`crate::metrics::route`]), and — for requests with
//! a body, and tunnels — the status page, which reads their progress while they run ([`crate::status`]).
//!
//! A request ends when hyper is done with its response (the response body is dropped: sent, or abandoned), or when
//! its future is dropped without a response (the client went away first: status 499, as nginx logs it). A tunnel
//! ends when its connections close, and is logged then, with its lifetime.

mod attempts;
mod progress;

pub use attempts::{AttemptOutcome, AttemptRecord, MAX_RECORDS};
pub use progress::{Progress, State};

use crate::metrics::route::RouteMetrics;
use crate::Dataplane;
use attempts::Attempts;
use http::{HeaderValue, Method, Uri, Version};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// The status logged for a request whose client went away before it was answered (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;
/// [`Exchange::cut`] of a request body slower than its route's `minBodyRate`.
pub const CUT_BODY_TOO_SLOW: &str = "client_body_too_slow";

/// How a request's body travels, for logs and the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No body.
    Bodiless,
    Buffered,
    Tee,
    Streaming,
    Tunnel,
    /// A part of a resumable upload (tus PATCH or creation), stored on the volume; or the delivery of a finished one.
    Resumable,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Bodiless => "None",
            Mode::Buffered => "Buffered",
            Mode::Tee => "Tee",
            Mode::Streaming => "Streaming",
            Mode::Tunnel => "Tunnel",
            Mode::Resumable => "Resumable",
        }
    }
}

/// What is known of a request from its head.
pub struct Head {
    pub id: HeaderValue,
    pub method: Method,
    pub uri: Uri,
    /// The `Host` field, when the URI has no authority (HTTP/1.1): shared, not copied.
    pub host_field: Option<HeaderValue>,
    pub client: SocketAddr,
    pub version: Version,
}

impl Head {
    /// The host routing used (HTTP/2's `:authority` or `Host`), without the port.
    pub fn host(&self) -> &str {
        let authority = match self.uri.authority() {
            Some(authority) => authority.as_str(),
            None => self.host_field.as_ref().and_then(|h| h.to_str().ok()).unwrap_or(""),
        };
        crate::route::host_of(authority)
    }
}

/// The attempts of a request, read in place.
pub struct AttemptsView<'a> {
    attempts: &'a Attempts,
    started: Instant,
}

impl AttemptsView<'_> {
    pub fn records(&self) -> impl Iterator<Item = &AttemptRecord> {
        self.attempts.records()
    }

    /// Attempts past the records' bound.
    pub fn omitted(&self) -> u32 {
        self.attempts.omitted
    }

    /// From the request's head to the first upstream response head.
    pub fn first_byte(&self) -> Option<Duration> {
        self.attempts.first_byte.map(|at| at.duration_since(self.started))
    }

    /// Time spent waiting for an endpoint.
    pub fn waited(&self) -> Duration {
        self.attempts.waited
    }
}

/// What [`Exchange::attempts`] returns.
pub struct AttemptsSoFar {
    pub list: Vec<AttemptRecord>,
    /// Attempts not in `list`, past its bound.
    pub omitted: u32,
    /// From the request's head to the first upstream response head.
    pub first_byte: Option<Duration>,
    /// Time spent waiting for an endpoint.
    pub waited: Duration,
}

/// One request's record.
pub struct Exchange {
    pub head: Head,
    /// The metrics of the route that took it; `None` for a request no route took (or without route metrics).
    pub route: Option<Arc<RouteMetrics>>,
    /// The route's backend, by name (logs, the status page).
    pub backend: Option<Arc<str>>,
    pub started: Instant,
    /// Set for requests with a body and for tunnels: what the status page shows while they run.
    progress: OnceLock<Arc<Progress>>,
    attempts: Mutex<Attempts>,
    status: AtomicU16,
    bytes_out: AtomicU64,
    /// Bytes of the body that went into a spool (memory or disk).
    spooled: AtomicU64,
    /// Where a Tee upload gave up its spool file under spool pressure and went on without replay, if it did.
    relayed_since: OnceLock<u64>,
    /// The response was `101`: the tunnel logs the request when it closes.
    tunnel: AtomicBool,
    error: Mutex<Option<String>>,
    /// The limit that cut the request short, for its log line; `None` for almost every request.
    cut: OnceLock<&'static str>,
    finished: AtomicBool,
}

impl Exchange {
    /// `route`: the route's metrics (if it has them) and its backend's name; `None` for a request no route took.
    pub fn new(head: Head, route: Option<(Option<Arc<RouteMetrics>>, Arc<str>)>) -> Arc<Self> {
        let (route, backend) = route.map_or((None, None), |(m, b)| (m, Some(b)));
        if let Some(route) = &route {
            route.in_flight.inc();
        }
        Arc::new(Exchange {
            head,
            route,
            backend,
            started: Instant::now(),
            progress: OnceLock::new(),
            attempts: Mutex::default(),
            status: AtomicU16::new(0),
            bytes_out: AtomicU64::new(0),
            spooled: AtomicU64::new(0),
            relayed_since: OnceLock::new(),
            tunnel: AtomicBool::new(false),
            error: Mutex::new(None),
            cut: OnceLock::new(),
            finished: AtomicBool::new(false),
        })
    }

    /// Gives a request with a body (or a tunnel request) its progress, and puts it on the status page; counted as
    /// an upload in flight. Once per request.
    pub fn track(self: &Arc<Self>, dp: &Dataplane, mode: Mode, declared: Option<u64>) -> Arc<Progress> {
        let mut created = false;
        let progress = self.progress.get_or_init(|| {
            created = true;
            Arc::new(Progress::new(mode, declared))
        });
        if created {
            if let (Some(route), true) = (&self.route, mode != Mode::Tunnel) {
                route.uploads.inc();
            }
            dp.status.started(self);
        }
        progress.clone()
    }

    /// The progress of a request with a body or a tunnel.
    pub fn progress(&self) -> Option<&Arc<Progress>> {
        self.progress.get()
    }

    /// An attempt starts on `endpoint` (the `n`th, 1-based).
    pub fn attempt_started(&self, endpoint: SocketAddr, n: u32) {
        self.lock_attempts().start(endpoint);
        if let Some(progress) = self.progress.get() {
            progress.attempt_started(endpoint, n);
        }
    }

    /// The attempt that started last ended with `outcome`.
    pub fn attempt_ended(&self, outcome: AttemptOutcome) {
        let took = self.lock_attempts().end(outcome);
        let answered = matches!(outcome, AttemptOutcome::Answered(_));
        if let Some(route) = &self.route {
            route.attempts.inc();
            if let (true, Some(took)) = (answered, took) {
                route.upstream_answered(took.as_secs_f64());
            }
        }
        if let (Some(progress), true) = (self.progress.get(), answered) {
            progress.set_state(State::Answered);
        }
    }

    /// The request waited `waited` for an endpoint that would take it.
    pub fn waited(&self, waited: Duration) {
        self.lock_attempts().waited += waited;
    }

    /// The request is waiting for an endpoint now.
    pub fn waiting(&self) {
        if let Some(progress) = self.progress.get() {
            progress.waiting();
        }
    }

    /// When the request started, by the wall clock (read now: requests do not pay for a second clock read).
    pub fn started_wall(&self) -> SystemTime {
        SystemTime::now() - self.started.elapsed()
    }

    pub fn spooled(&self, bytes: u64) {
        self.spooled.store(bytes, Ordering::Relaxed);
    }

    /// The body went on without its spool file from byte `offset` (`spool::relay`): no replay after that.
    pub fn relayed_since(&self, offset: Option<u64>) {
        if let Some(offset) = offset {
            let _ = self.relayed_since.set(offset);
        }
    }

    /// See [`Exchange::relayed_since`].
    pub fn unspooled_at(&self) -> Option<u64> {
        self.relayed_since.get().copied()
    }

    pub fn sent(&self, bytes: u64) {
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::Relaxed);
    }

    /// What went wrong, for the status page (the access log has the status; the failure is logged on its own).
    pub fn set_error(&self, error: &impl std::fmt::Display) {
        if self.progress.get().is_some() {
            *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
        }
    }

    /// The request body arrived slower than the route's `minBodyRate`: counted, and said on the log line.
    pub fn body_too_slow(&self, metrics: &crate::metrics::Metrics) {
        metrics.client_body_too_slow.inc();
        if let Some(route) = &self.route {
            route.body_too_slow();
        }
        let _ = self.cut.set(CUT_BODY_TOO_SLOW);
    }

    /// The limit that cut the request short ([`CUT_BODY_TOO_SLOW`]), if one did.
    pub fn cut(&self) -> Option<&'static str> {
        self.cut.get().copied()
    }

    /// The response switched protocols: the tunnel, not the response, ends this request.
    pub fn became_tunnel(&self) {
        self.tunnel.store(true, Ordering::Release);
        if let Some(route) = &self.route {
            route.tunnels.inc();
        }
        if let Some(progress) = self.progress.get() {
            progress.set_state(State::Tunnel);
        }
    }

    pub fn is_tunnel(&self) -> bool {
        self.tunnel.load(Ordering::Acquire)
    }

    pub fn status(&self) -> u16 {
        self.status.load(Ordering::Relaxed)
    }

    pub fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Ordering::Relaxed)
    }

    pub fn spooled_bytes(&self) -> u64 {
        self.spooled.load(Ordering::Relaxed)
    }

    pub fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The attempts so far, the time to the first upstream byte and the wait (a copy, for the status page).
    pub fn attempts(&self) -> AttemptsSoFar {
        self.with_attempts(|view| AttemptsSoFar {
            list: view.records().copied().collect(),
            omitted: view.omitted(),
            first_byte: view.first_byte(),
            waited: view.waited(),
        })
    }

    /// Reads the attempts in place (the access log: no copy per request).
    pub fn with_attempts<R>(&self, read: impl FnOnce(&AttemptsView<'_>) -> R) -> R {
        let attempts = self.lock_attempts();
        read(&AttemptsView { attempts: &attempts, started: self.started })
    }

    /// Ends the request once: its log line, its route's metrics, its entry on the status page. `tunnel_lifetime`
    /// for a tunnel that closed.
    pub fn finish(self: &Arc<Self>, dp: &Dataplane, tunnel_lifetime: Option<Duration>) {
        if self.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        let duration = self.started.elapsed();
        let status = match self.status() {
            0 => CLIENT_CLOSED,
            status => status,
        };
        if let Some(route) = &self.route {
            route.in_flight.dec();
            route.answered(status, duration.as_secs_f64());
            if let Some(progress) = self.progress.get() {
                if progress.mode == Mode::Tunnel {
                    if self.is_tunnel() {
                        route.tunnels.dec();
                    }
                } else {
                    route.uploads.dec();
                    route.body(progress.received());
                }
            }
        }
        dp.access_log.write(self, status, duration, tunnel_lifetime);
        if self.progress.get().is_some() {
            dp.status.finished(self, status);
        }
    }

    fn lock_attempts(&self) -> MutexGuard<'_, Attempts> {
        self.attempts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Ends its request when dropped, unless it was handed on: held by the request's future, then by its response body
/// (or, for a tunnel, by the tunnel).
pub struct Finisher {
    exchange: Arc<Exchange>,
    dp: Arc<Dataplane>,
}

impl Finisher {
    pub fn new(exchange: Arc<Exchange>, dp: Arc<Dataplane>) -> Self {
        Finisher { exchange, dp }
    }

    pub fn exchange(&self) -> &Arc<Exchange> {
        &self.exchange
    }
}

impl Drop for Finisher {
    fn drop(&mut self) {
        // A tunnel's request ends with the tunnel, which holds the exchange.
        if !self.exchange.is_tunnel() {
            self.exchange.finish(&self.dp, None);
        }
    }
}

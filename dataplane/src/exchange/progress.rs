//! Where a request with a body (or a tunnel) stands, in atomics: written by the request's tasks as it goes, read by
//! the status page at any moment, with no lock on either side (but the endpoint's, which changes per attempt).

use super::Mode;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// What a request is doing, as the status page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// The body is arriving and no attempt runs yet.
    Receiving,
    /// The body is complete and its delivery has not started.
    Spooled,
    /// No endpoint can take it now: none ready, or every one backing off.
    Waiting,
    /// The first attempt is sending or awaiting the response.
    Relaying,
    /// A later attempt is.
    Replaying,
    /// The response head came back; the response is on its way to the client.
    Answered,
    /// Joined to its upstream after `101`.
    Tunnel,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Receiving => "receiving",
            State::Spooled => "spooled",
            State::Waiting => "waiting",
            State::Relaying => "relaying",
            State::Replaying => "replaying",
            State::Answered => "answered",
            State::Tunnel => "tunnel",
        }
    }

    fn from_u8(n: u8) -> Self {
        [
            State::Receiving,
            State::Spooled,
            State::Waiting,
            State::Relaying,
            State::Replaying,
            State::Answered,
            State::Tunnel,
        ]
        .get(usize::from(n))
        .copied()
        .unwrap_or(State::Receiving)
    }
}

pub struct Progress {
    pub mode: Mode,
    /// The body's declared length (`None`: chunked, or a tunnel).
    pub declared: Option<u64>,
    received: AtomicU64,
    /// Body bytes the attempt under way has handed to its upstream connection; shared with the upstream layer.
    pub delivered: Arc<AtomicU64>,
    state: AtomicU8,
    attempt: AtomicU32,
    endpoint: Mutex<Option<SocketAddr>>,
}

impl Progress {
    pub fn new(mode: Mode, declared: Option<u64>) -> Self {
        let state = if mode == Mode::Tunnel { State::Relaying } else { State::Receiving };
        Progress {
            mode,
            declared,
            received: AtomicU64::new(0),
            delivered: Arc::default(),
            state: AtomicU8::new(state as u8),
            attempt: AtomicU32::new(0),
            endpoint: Mutex::new(None),
        }
    }

    pub fn set_state(&self, state: State) {
        self.state.store(state as u8, Ordering::Release);
    }

    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    /// The body so far.
    pub fn set_received(&self, bytes: u64) {
        self.received.store(bytes, Ordering::Relaxed);
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// The `n`th attempt (1-based) starts on `endpoint`: delivering from the body's start.
    pub fn attempt_started(&self, endpoint: SocketAddr, n: u32) {
        *self.endpoint.lock().unwrap_or_else(|p| p.into_inner()) = Some(endpoint);
        self.attempt.store(n, Ordering::Relaxed);
        self.delivered.store(0, Ordering::Relaxed);
        self.set_state(if n > 1 { State::Replaying } else { State::Relaying });
    }

    /// No attempt runs: the request waits for an endpoint.
    pub fn waiting(&self) {
        *self.endpoint.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.set_state(State::Waiting);
    }

    pub fn attempt(&self) -> u32 {
        self.attempt.load(Ordering::Relaxed)
    }

    pub fn endpoint(&self) -> Option<SocketAddr> {
        *self.endpoint.lock().unwrap_or_else(|p| p.into_inner())
    }
}

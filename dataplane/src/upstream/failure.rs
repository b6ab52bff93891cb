//! What went wrong with one attempt, classified for the replay decision.
//!
//! The classification records whether the upstream can have seen the request (`reached`), which is what makes a
//! retry safe or not, and whether it was a timeout, which decides between 503 and 504 when the request gives up.

use crate::metrics::ReplayReason;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Nothing listens on the address (the pod is gone or not up yet).
    ConnectRefused,
    /// The TCP connect did not finish within `upstreamConnectTimeout`.
    ConnectTimeout,
    /// The connection was reset or closed before the response head arrived.
    ResetBeforeResponse,
    /// The upstream stopped taking body bytes for longer than `upstreamSendTimeout`.
    SendTimeout,
    /// The response head did not arrive within `upstreamReadTimeout` after the body was sent.
    ReadTimeout,
    /// The upstream answered with something that is not HTTP.
    Protocol,
    /// The TLS handshake was refused: a certificate that does not verify, an alert, a peer that does not speak TLS.
    /// Nothing was sent, and another endpoint of the same backend would most likely refuse it the same way.
    TlsHandshake,
    /// The client's body did not complete; the upstream connection was aborted on purpose.
    ClientBodyAborted,
}

impl FailureKind {
    /// A fixed name, for logs and the status page.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::ConnectRefused => "connect_refused",
            FailureKind::ConnectTimeout => "connect_timeout",
            FailureKind::ResetBeforeResponse => "reset_before_response",
            FailureKind::SendTimeout => "send_timeout",
            FailureKind::ReadTimeout => "read_timeout",
            FailureKind::Protocol => "protocol",
            FailureKind::TlsHandshake => "tls_handshake",
            FailureKind::ClientBodyAborted => "client_body_aborted",
        }
    }
}

/// A failed attempt.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: FailureKind,
    pub detail: String,
    /// Deliveries the attempt made before the one that failed, each under its own attempt number: 1 when the request
    /// went out on a kept-alive connection that turned out closed and the retry on a new connection failed too.
    pub earlier_deliveries: u32,
}

impl Failure {
    pub fn new(kind: FailureKind, detail: impl fmt::Display) -> Self {
        Failure { kind, detail: detail.to_string(), earlier_deliveries: 0 }
    }

    /// Whether the upstream may have received (part of) the request.
    pub fn reached_upstream(&self) -> bool {
        !matches!(self.kind, FailureKind::ConnectRefused | FailureKind::ConnectTimeout | FailureKind::TlsHandshake)
    }

    /// The same failure, coming after `earlier` deliveries of the same attempt.
    pub fn after_deliveries(mut self, earlier: u32) -> Self {
        self.earlier_deliveries += earlier;
        self
    }

    /// Attempt numbers this failure used up: the deliveries before it, and itself if it may have reached the
    /// upstream.
    pub fn deliveries(&self) -> u32 {
        self.earlier_deliveries + u32::from(self.reached_upstream())
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, FailureKind::ConnectTimeout | FailureKind::SendTimeout | FailureKind::ReadTimeout)
    }

    /// Whether the endpoint itself looks unhealthy (as opposed to slow, the client being at fault, or a TLS setting
    /// that does not fit it: backing off would only delay the 502 that every try gets).
    pub fn blames_endpoint(&self) -> bool {
        !matches!(self.kind, FailureKind::ClientBodyAborted | FailureKind::TlsHandshake)
    }

    /// The metric label for a replay after this failure, if it may be replayed at all.
    pub fn replay_reason(&self) -> Option<ReplayReason> {
        Some(match self.kind {
            FailureKind::ConnectRefused => ReplayReason::connect_refused,
            FailureKind::ConnectTimeout => ReplayReason::connect_timeout,
            FailureKind::ResetBeforeResponse => ReplayReason::reset_before_response,
            FailureKind::SendTimeout => ReplayReason::send_timeout,
            FailureKind::ReadTimeout => ReplayReason::read_timeout,
            FailureKind::Protocol | FailureKind::TlsHandshake | FailureKind::ClientBodyAborted => return None,
        })
    }
}

impl FailureKind {
    /// In words, for people (the status page).
    pub fn describe(self) -> &'static str {
        match self {
            FailureKind::ConnectRefused => "connection refused",
            FailureKind::ConnectTimeout => "connect timed out",
            FailureKind::ResetBeforeResponse => "connection closed before the response",
            FailureKind::SendTimeout => "upstream stopped reading the body",
            FailureKind::ReadTimeout => "no response within the read timeout",
            FailureKind::Protocol => "invalid response",
            FailureKind::TlsHandshake => "TLS handshake failed",
            FailureKind::ClientBodyAborted => "client body aborted",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == FailureKind::TlsHandshake {
            // Its detail is a sentence of its own: `TLS handshake with <addr> failed: <rustls's reason>`.
            return f.write_str(&self.detail);
        }
        let what = self.kind.describe();
        write!(f, "{what} ({})", self.detail)
    }
}

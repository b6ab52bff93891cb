//! What one attempt is given and what it gives back, whichever protocol carries it.

use super::body_source::BodySource;
use super::pool::Connection;
use super::request::RequestHead;
use super::response_body::ResponseBody;
use super::transport::Upstream;
use holdfast_snapshot::Timeouts;
use hyper::upgrade::OnUpgrade;
use hyper::Response;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// Everything an attempt needs to (re)build its request.
#[derive(Clone, Copy)]
pub struct Delivery<'a> {
    /// Method, URI (origin form) and headers, already rewritten for the upstream.
    pub head: &'a RequestHead,
    pub body: &'a BodySource,
    pub timeouts: &'a Timeouts,
    /// The backend's protocol and transport.
    pub upstream: &'a Upstream,
    /// Where the attempt counts the body bytes it has handed to its connection (the status page), if anywhere.
    pub delivered: Option<&'a Arc<AtomicU64>>,
}

/// The result of a successful attempt: the response head (its body streams on), and what must outlive it.
pub struct Answer {
    pub response: Response<ResponseBody>,
    /// The HTTP/1.1 connection to give back once the response is read (hyper's client; a plain connection travels
    /// inside its response body, an HTTP/2 stream's share of its connection too).
    pub connection: Option<Connection>,
    /// On `101 Switching Protocols`: the upstream's side of the tunnel, once hyper hands the connection over.
    pub upgrade: Option<OnUpgrade>,
}

impl Answer {
    pub fn new(response: Response<ResponseBody>) -> Self {
        Answer { response, connection: None, upgrade: None }
    }
}

/// The delivery to make on a new connection: `delivery` itself, or, after a kept-alive connection failed, the same
/// request under `retry_head` (the next attempt number). Also returns how many deliveries came before it, which a
/// failure of the retry carries so that the replay loop numbers its next attempt after both.
pub(super) fn on_new_connection<'a>(
    delivery: &Delivery<'a>,
    retry_head: Option<&'a RequestHead>,
) -> (Delivery<'a>, u32) {
    match retry_head {
        Some(head) => (Delivery { head, ..*delivery }, 1),
        None => (*delivery, 0),
    }
}

pub(super) fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

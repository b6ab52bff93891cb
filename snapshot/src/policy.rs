//! The upload policy as the dataplane applies it: sizes in bytes, durations in milliseconds.
//!
//! Every field has a default, so `{}` is a complete policy. The defaults are the ones documented for the
//! `UploadPolicy` custom resource and match nginx's where nginx has an equivalent.

use crate::MinBodyRate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a request body travels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BodyMode {
    /// The whole body is spooled before any upstream is contacted; replayable.
    #[default]
    Buffered,
    /// The body streams to the upstream as it arrives and is spooled too; a failed attempt replays from the spool.
    Tee,
    /// No spool and no replay once the body has started to flow.
    Streaming,
}

/// The upload policy for one route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Policy {
    /// Largest accepted request body; 0 means unlimited.
    pub max_body_size_bytes: u64,
    /// Bytes of a body kept in memory before it spills to the spool directory.
    pub memory_buffer_bytes: u64,
    pub mode: BodyMode,
    pub replay: ReplayPolicy,
    pub timeouts: Timeouts,
    /// The least a request body must send and a response body must be read at (408, or the connection closed).
    /// Left out when it is the default, for dataplanes older than this field.
    #[serde(skip_serializing_if = "MinBodyRate::is_default")]
    pub min_body_rate: MinBodyRate,
    /// What a client that shuts down its write side after a complete request gets.
    pub half_close: HalfClose,
    /// What happens to the delivery when the client goes away.
    pub client_abort: ClientAbort,
    /// Pages Holdfast serves itself for 502, 503 and 504 (keys are those statuses).
    pub error_pages: BTreeMap<u16, ErrorPage>,
    /// `Retry-After` seconds on the 503s Holdfast answers itself; 0 leaves the header out.
    pub retry_after_seconds: u32,
    /// Resumable uploads (tus) terminated by the dataplane on this route; `None`: requests are only proxied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumable: Option<crate::Resumable>,
}

/// A client that half-closes (`shutdown(SHUT_WR)`) after sending a complete request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HalfClose {
    /// Send the response, then close: what Apache, Varnish and lighttpd do.
    #[default]
    Respond,
    /// Treat it as the client going away (nginx's default).
    Abort,
}

/// A client that goes away while its request is being delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientAbort {
    /// Close the upstream connection at once.
    #[default]
    Cancel,
    /// Once the whole body was received, finish the delivery (replays included) and drop the response.
    Complete,
}

/// A response body Holdfast serves itself when no upstream can answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorPage {
    pub body: String,
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Answer with this status instead (nginx's `error_page 503 =200 …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

fn default_content_type() -> String {
    "text/html; charset=utf-8".to_string()
}

/// When and how long a failed delivery is retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ReplayPolicy {
    /// Deliveries that reached an upstream (a connection was made and the request started). Refused connections
    /// send nothing, so they consume wait time but not attempts.
    pub max_attempts: u32,
    /// How long a request may wait for an endpoint that takes it, counted from the later of the delivery's start
    /// and the end of the client's body (a Tee delivery starts with the body).
    pub upstream_wait_timeout_ms: u64,
    /// Replay after a connection reset or close before the response head. Refused connects are always retried.
    pub on_reset: bool,
    /// Replay after an upstream connect, send or read timeout.
    pub on_timeout: bool,
}

/// Timeouts, all in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Timeouts {
    /// Longest idle gap between two reads of the client's body (408 when exceeded).
    pub client_body_ms: u64,
    /// Longest TCP connect to one endpoint.
    pub upstream_connect_ms: u64,
    /// Longest time the upstream may leave the body unread (it stops taking bytes).
    pub upstream_send_ms: u64,
    /// Longest time the upstream may take to send the response head once the body is sent.
    pub upstream_read_ms: u64,
    /// Longest a tunnel (a WebSocket or other Upgrade, after `101`) may carry no byte in either direction before
    /// both of its connections are closed.
    pub tunnel_idle_ms: u64,
}

/// One hour. WebSocket applications keep their connections alive with pings every 20-60 s (Socket.IO 25 s, browsers'
/// and servers' WebSocket pings, gRPC-Web's keep-alives), so any idle limit above a few minutes never cuts a live
/// one; an hour still frees, within the hour, a tunnel whose peer vanished without a FIN (a node gone, a NAT
/// entry dropped). nginx's 60 s default (`proxy_read_timeout`) is the first thing ingress-nginx users raise for
/// WebSockets, usually to 3600 s; HAProxy's documentation suggests `timeout tunnel 1h`.
pub const DEFAULT_TUNNEL_IDLE_MS: u64 = 3_600_000;

/// 128 KiB: enough for the bodies of ordinary API calls, small enough for 1,000 slow uploads in 128 MiB.
pub const DEFAULT_MEMORY_BUFFER: u64 = 128 * 1024;

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_body_size_bytes: 0,
            memory_buffer_bytes: DEFAULT_MEMORY_BUFFER,
            mode: BodyMode::Buffered,
            replay: ReplayPolicy::default(),
            timeouts: Timeouts::default(),
            min_body_rate: MinBodyRate::default(),
            half_close: HalfClose::Respond,
            client_abort: ClientAbort::Cancel,
            error_pages: BTreeMap::new(),
            retry_after_seconds: 5,
            resumable: None,
        }
    }
}

impl Default for ReplayPolicy {
    fn default() -> Self {
        ReplayPolicy { max_attempts: 5, upstream_wait_timeout_ms: 60_000, on_reset: true, on_timeout: true }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            client_body_ms: 60_000,
            upstream_connect_ms: 5_000,
            upstream_send_ms: 60_000,
            upstream_read_ms: 60_000,
            tunnel_idle_ms: DEFAULT_TUNNEL_IDLE_MS,
        }
    }
}

//! The HTTP/2 limits of the client listeners, and why each has its value. Everything a peer can make a connection
//! hold or do is bounded here or by h2 itself:
//!
//! - **Concurrent streams** (`SETTINGS_MAX_CONCURRENT_STREAMS`, `--http2-max-concurrent-streams`, 128 as nginx's
//!   `http2_max_concurrent_streams`): HEADERS for one more are answered `REFUSED_STREAM` by h2.
//! - **Header list size** (`SETTINGS_MAX_HEADER_LIST_SIZE`, `--http2-max-header-list-size`, 64 KiB, the size of the
//!   HTTP/1 read buffer a request head must fit: a client gets the same answer on both protocols). A larger list is
//!   answered 431 and the stream refused; one over four times the limit ends the connection (GOAWAY
//!   `ENHANCE_YOUR_CALM`).
//! - **CONTINUATION frames**: h2 bounds them by the header list size, not by a setting of its own. A header block
//!   may span at most `max(5, 1.25 × list size / frame size)` CONTINUATION frames (5 with 64 KiB lists and 16 KiB
//!   frames), empty ones included, and a block already over the list size may not grow past it: beyond either, GOAWAY
//!   (`ENHANCE_YOUR_CALM` or `COMPRESSION_ERROR`). So a CONTINUATION flood is buffered to about 100 KiB, never more.
//! - **Resets of streams not yet accepted** ([`MAX_PENDING_ACCEPT_RESET_STREAMS`]): a burst rapid reset
//!   (CVE-2023-44487) ends with GOAWAY `ENHANCE_YOUR_CALM`.
//! - **Resets the server had to send for the peer's protocol errors** ([`MAX_LOCAL_ERROR_RESET_STREAMS`]): the
//!   "MadeYouReset" variant, where the client provokes the resets, ends the same way.
//! - **Streams per connection** (`--max-requests-per-connection`, `stream_limit`): a paced rapid reset, each stream
//!   accepted before the client resets it, is bounded by nothing above; this limit sends GOAWAY after that many
//!   streams, refuses any further one, and closes a connection that goes on opening them.

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;

/// Streams the client may reset before the server has accepted them, per connection: h2's own default, kept
/// explicit. An honest client cancels a request it has already seen accepted (a response started, or time passed);
/// twenty cancelled in the instant before acceptance is a burst rapid reset.
pub const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;

/// Streams the server may reset because of the client's protocol errors, per connection, before it closes the
/// connection. hyper's default is 1,024; an honest client makes none, and each one is a stream whose request may
/// already be on its way upstream, so a handful is plenty.
pub const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 64;

/// The HTTP/2 limits a user may want to change (flags of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Limits {
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`: streams one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// `SETTINGS_MAX_HEADER_LIST_SIZE`, in bytes as RFC 9113 counts them (name + value + 32 per field).
    pub max_header_list_size: u32,
}

impl Default for Http2Limits {
    fn default() -> Self {
        Http2Limits { max_concurrent_streams: 128, max_header_list_size: 64 * 1024 }
    }
}

/// Sets the limits on the listener's HTTP/2 side.
pub(crate) fn configure(builder: &mut auto::Builder<TokioExecutor>, limits: Http2Limits) {
    builder
        .http2()
        .timer(TokioTimer::new())
        // RFC 8441: WebSockets over HTTP/2 streams (extended CONNECT), bridged to HTTP/1.1 upgrades upstream.
        .enable_connect_protocol()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(limits.max_header_list_size)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESET_STREAMS);
}

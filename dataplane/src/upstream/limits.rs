//! The limits every upstream response head is held to, whichever client reads it (Holdfast's own HTTP/1.1 client,
//! hyper's HTTP/1.1 client, hyper's HTTP/2 client): one cap on the head's size and one on its number of fields, so
//! that a backend's answer is refused (502) or passed on the same way on every route, and a hostile or broken backend
//! cannot make the dataplane buffer a head without bound.
//!
//! nginx answers 502 past `proxy_buffer_size` (4 or 8 KiB by default), which real applications outgrow (large
//! `Set-Cookie` and CSP headers are common and sites raise it to 16–32 KiB); hyper's own default is about 400 KiB.
//! 64 KiB holds every real application's head with room to spare and keeps what one response can pin small.

use super::failure::{Failure, FailureKind};
use http::HeaderMap;
use std::net::SocketAddr;

/// Largest response head accepted, in bytes: HTTP/1.1 counts its bytes on the wire, status line and final CRLF
/// included (per head: an interim `1xx` head and the final head each have the whole cap); HTTP/2 counts its header
/// list as RFC 9113 §6.5.2 does (each field's name and value, plus 32).
pub const MAX_RESPONSE_HEAD_BYTES: usize = 64 * 1024;

/// Most header fields accepted in a response head: hyper's default, so that what passed through hyper's client
/// before still passes.
pub const MAX_RESPONSE_FIELDS: usize = 100;

/// Refuses a head that hyper's HTTP/2 client passed with more than [`MAX_RESPONSE_FIELDS`] fields (its HTTP/1.1
/// client and Holdfast's own count them while parsing).
pub fn check_field_count(headers: &HeaderMap, addr: SocketAddr) -> Result<(), Failure> {
    if headers.len() > MAX_RESPONSE_FIELDS {
        let why =
            format!("{addr}: response head with {} header fields, more than {MAX_RESPONSE_FIELDS}", headers.len());
        return Err(Failure::new(FailureKind::Protocol, why));
    }
    Ok(())
}

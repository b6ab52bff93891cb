//! A request through one of hyper's clients (HTTP/1.1 or HTTP/2), under the attempt's send and read timeouts, with
//! hyper's errors classified for the replay decision.

use super::clock::{AttemptClock, Expired};
use super::delivery::ms;
use super::failure::{Failure, FailureKind};
use holdfast_snapshot::Timeouts;
use hyper::body::Incoming;
use hyper::Response;
use std::future::Future;
use std::net::SocketAddr;

/// Waits for `sent` (hyper sending the request and reading the response head) while the watchdog of `clock` looks
/// out for an upstream that stops taking the body or does not answer.
pub async fn within_timeouts(
    sent: impl Future<Output = Result<Response<Incoming>, hyper::Error>>,
    clock: &AttemptClock,
    timeouts: &Timeouts,
    addr: SocketAddr,
) -> Result<Response<Incoming>, Failure> {
    let outcome = tokio::select! {
        result = sent => result,
        expired = clock.expired(ms(timeouts.upstream_send_ms), ms(timeouts.upstream_read_ms)) => {
            let (kind, limit) = match expired {
                Expired::Send => (FailureKind::SendTimeout, timeouts.upstream_send_ms),
                Expired::Read => (FailureKind::ReadTimeout, timeouts.upstream_read_ms),
            };
            return Err(Failure::new(kind, format!("{addr} after {limit} ms")));
        }
    };
    match outcome {
        Ok(response) => Ok(response),
        Err(_) if clock.was_source_aborted() => {
            Err(Failure::new(FailureKind::ClientBodyAborted, "the client's body ended early"))
        }
        // A head over the size or field cap is a parse error too (hyper's `TooLarge`).
        Err(error) if error.is_parse() => Err(Failure::new(FailureKind::Protocol, format!("{addr}: {error}"))),
        // h2 itself reset the stream or the connection: the upstream broke the protocol (a response head over
        // SETTINGS_MAX_HEADER_LIST_SIZE, a malformed frame). Not a reset by the upstream, and not worth a replay.
        Err(error) if reset_by_h2(&error) => {
            Err(Failure::new(FailureKind::Protocol, format!("{addr}: {}", describe(&error))))
        }
        // Closed, reset, refused stream, GOAWAY: nothing came back, which the replay policy decides on.
        Err(error) => Err(Failure::new(FailureKind::ResetBeforeResponse, format!("{addr}: {}", describe(&error)))),
    }
}

/// Whether an HTTP/2 error was raised by h2 on its side (`is_library`), rather than received from the upstream or
/// an I/O error.
fn reset_by_h2(error: &hyper::Error) -> bool {
    let cause = std::error::Error::source(error);
    cause.and_then(|cause| cause.downcast_ref::<h2::Error>()).is_some_and(h2::Error::is_library)
}

/// hyper's error with its cause (an h2 reset code, an I/O error), which hyper's own message leaves out.
fn describe(error: &hyper::Error) -> String {
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

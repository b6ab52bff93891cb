//! Delivering a request to its backend: choosing endpoints, replaying after failures, waiting for an endpoint.
//!
//! An attempt that fails before any byte of the response came back is replayed with exactly the same bytes on the
//! next endpoint that may take it. When none may (nothing ready, or every endpoint backing off after failures), the
//! request waits for whichever comes first: a new snapshot (a watch notification, not polling) or the end of the
//! earliest backoff. It gives up after `upstreamWaitTimeout` or `maxAttempts` deliveries that reached an upstream,
//! with 503, or 504 when the last failure was a timeout. Refused connections deliver nothing, so they count against
//! the wait, not the attempts.
//!
//! The wait is counted from the later of the delivery's start and the end of the client's body. A Buffered delivery
//! starts once the body is complete; a Tee delivery starts with the body, and is not given up for want of an endpoint
//! while the client is still sending: the spool holds what comes meanwhile, and a long upload through a backend
//! that is down for a while is delivered as a Buffered one would be, not answered 503 halfway through.

use crate::balance::Pick;
use crate::error::ProxyError;
use crate::exchange::{AttemptOutcome, Exchange};
use crate::forward::RequestHead;
use crate::metrics::ReplayLabel;
use crate::spool::{ReadError, Spool};
use crate::state::Active;
use crate::upstream::{attempt, Answer, BodySource, Delivery, Failure, FailureKind};
use crate::Dataplane;
use holdfast_snapshot::Policy;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Delivers the request to an endpoint of `backend` and returns the first response head that came back.
/// `snapshot` is the one the request was routed with; the first endpoint is picked from it.
pub async fn deliver(
    dp: &Dataplane,
    (snapshot, backend, exchange): (&Arc<Active>, &str, &Exchange),
    head: &RequestHead,
    body: &BodySource,
    policy: &Policy,
) -> Result<Answer, ProxyError> {
    let started = Instant::now();
    let wait_limit = Duration::from_millis(policy.replay.upstream_wait_timeout_ms);
    // Subscribed to snapshot changes only once there is reason to wait: most requests are delivered at the first
    // try and need only the snapshot in force.
    let mut snapshots: Option<watch::Receiver<Arc<Active>>> = None;
    let mut routed_with = Some(snapshot);
    let mut reached: u32 = 0;
    let mut waited = Duration::ZERO;
    let mut last: Option<Failure> = None;
    loop {
        // Borrowed when it is the routing snapshot, so that the common case touches no shared reference count.
        let latest: Arc<Active>;
        let active: &Active = match (snapshots.as_mut(), routed_with.take()) {
            (Some(snapshots), _) => {
                latest = snapshots.borrow_and_update().clone();
                &latest
            }
            (None, Some(snapshot)) => snapshot,
            (None, None) => {
                latest = dp.config.current();
                &latest
            }
        };
        let state = active.backends.get(backend);
        let pick = state.map_or(Pick::NoCandidate, |b| dp.health.pick(b));
        let wake_at = match (pick, state) {
            (Pick::Endpoint(addr, in_flight), Some(state)) => {
                // Only replays carry the attempt header, so the first attempt sends the head as it is.
                let replay_head;
                let head = if reached == 0 {
                    head
                } else {
                    let mut marked = head.clone();
                    marked.set_attempt(reached + 1);
                    // Boxed: only replays need it, and inline it would be room in every request's future.
                    replay_head = Box::new(marked);
                    &*replay_head
                };
                let delivered = exchange.progress().map(|p| &p.delivered);
                let delivery =
                    Delivery { head, body, timeouts: &policy.timeouts, upstream: &state.upstream, delivered };
                exchange.attempt_started(addr, reached + 1);
                let failure = match attempt(&dp.pool, addr, &delivery).await {
                    Ok(answer) => {
                        exchange.attempt_ended(AttemptOutcome::Answered(answer.response.status().as_u16()));
                        if in_flight.endpoint_failing() {
                            dp.health.record_success(addr);
                        }
                        dp.metrics.upstream_wait_seconds.observe(waited.as_secs_f64());
                        return Ok(answer);
                    }
                    Err(failure) => failure,
                };
                exchange.attempt_ended(AttemptOutcome::Failed(failure.kind));
                tracing::info!(%addr, backend, %failure, "upstream attempt failed");
                if failure.blames_endpoint() {
                    dp.health.record_failure(addr);
                }
                reached += failure.deliveries();
                check_replayable(backend, &failure, body, policy, reached, started)?;
                if let Some(reason) = failure.replay_reason() {
                    dp.metrics.replays.get_or_create(&ReplayLabel { reason }).inc();
                    if let Some(route) = &exchange.route {
                        route.replayed(reason);
                    }
                }
                last = Some(failure);
                // The body may have completed during the attempt: its end moved the deadline.
                if body.arriving().is_none() && Instant::now() >= wait_deadline(started, body, wait_limit) {
                    return Err(give_up(backend, started, reached, last));
                }
                continue;
            }
            (Pick::RetryAt(at), _) => Some(at),
            (Pick::NoCandidate | Pick::Endpoint(..), _) => None,
        };
        // Looked at once for this wait, so that the deadline and the wait agree on it. While the body arrives there
        // is no deadline: its end is waited on below.
        let arriving = body.arriving();
        let wake_at = match arriving {
            Some(_) => wake_at,
            None => {
                let deadline = wait_deadline(started, body, wait_limit);
                if Instant::now() >= deadline {
                    return Err(give_up(backend, started, reached, last));
                }
                Some(wake_at.map_or(deadline, |at| at.min(deadline)))
            }
        };
        let Some(changes) = snapshots.as_mut() else {
            // Subscribing marks the snapshot in force as seen, and a snapshot pushed since it was read above would
            // go unnoticed: look again with the subscription before waiting on it.
            snapshots = Some(dp.config.subscribe());
            continue;
        };
        let wait_started = Instant::now();
        exchange.waiting();
        tokio::select! {
            _ = changes.changed() => {}
            () = sleep_until(wake_at) => {}
            // A body that will never complete is the client's failure, whatever the endpoints do; a complete one
            // sets the deadline in the next round.
            ended = body_end(arriving) => ended.map_err(|_| ProxyError::ClientAborted)?,
        }
        waited += wait_started.elapsed();
        exchange.waited(wait_started.elapsed());
    }
}

/// When a delivery gives up waiting for an endpoint: `upstreamWaitTimeout` after the later of its start and the end of
/// the client's body (module doc). Only for a body no longer arriving.
fn wait_deadline(started: Instant, body: &BodySource, wait_limit: Duration) -> Instant {
    body.completed_at().map_or(started, |completed| completed.max(started)) + wait_limit
}

/// Sleeps until `at`; with no time, forever (something else in the `select!` ends the wait).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The end of a body still arriving; with none, never.
async fn body_end(arriving: Option<&Spool>) -> Result<(), ReadError> {
    match arriving {
        Some(spool) => spool.ended().await,
        None => std::future::pending().await,
    }
}

/// Refuses to go on when the failure or the body forbids another delivery.
fn check_replayable(
    backend: &str,
    failure: &Failure,
    body: &BodySource,
    policy: &Policy,
    reached: u32,
    started: Instant,
) -> Result<(), ProxyError> {
    let allowed_by_policy = match failure.kind {
        FailureKind::ConnectRefused => true,
        FailureKind::ConnectTimeout | FailureKind::SendTimeout | FailureKind::ReadTimeout => policy.replay.on_timeout,
        FailureKind::ResetBeforeResponse => policy.replay.on_reset,
        FailureKind::ClientBodyAborted => return Err(ProxyError::ClientAborted),
        FailureKind::Protocol | FailureKind::TlsHandshake => false,
    };
    if !allowed_by_policy || !body.can_replay() {
        let last = failure.clone();
        return Err(if failure.is_timeout() {
            ProxyError::GatewayTimeout { backend: backend.to_string(), attempts: reached, last }
        } else {
            ProxyError::BadGateway { backend: backend.to_string(), last }
        });
    }
    if reached >= policy.replay.max_attempts {
        return Err(exhausted(backend, reached, failure.clone(), started.elapsed()));
    }
    Ok(())
}

fn give_up(backend: &str, started: Instant, attempts: u32, last: Option<Failure>) -> ProxyError {
    match last {
        Some(last) => exhausted(backend, attempts, last, started.elapsed()),
        None => ProxyError::Unavailable { backend: backend.to_string(), waited: started.elapsed(), attempts, last },
    }
}

fn exhausted(backend: &str, attempts: u32, last: Failure, waited: Duration) -> ProxyError {
    if last.is_timeout() {
        ProxyError::GatewayTimeout { backend: backend.to_string(), attempts, last }
    } else {
        ProxyError::Unavailable { backend: backend.to_string(), waited, attempts, last: Some(last) }
    }
}

//! Uploads owned by another replica. Each dataplane keeps its uploads on its own volume (a StatefulSet's claim per
//! replica), and an upload's id names its owner; a request for it that a load balancer sends to another replica is
//! passed to the owner, pod to pod, at the address the snapshot's `peers` give (the controller lists the
//! StatefulSet's pods), and the owner's answer is returned as it is.
//!
//! While the owner cannot be reached (restarting, rescheduled, not in the snapshot yet) the answer is `503` with
//! `Retry-After` — never `404`, which makes tus clients drop the upload and start again from byte 0 — except to a
//! HEAD, which gets `423`: tus-js-client takes any HEAD answer but 2xx and 423, 503 included, as the upload being
//! gone. Both are retried by the clients. A request passes one hop at most: one that a peer already passed on and
//! that still does not reach its owner is answered here.

use super::{number, plain, Context};
use crate::error::{BoxError, ProxyBody};
use http::{header, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// Set on a request passed to its owner: the replica that passed it.
const PASSED_BY: HeaderName = HeaderName::from_static("holdfast-passed-by");
/// How long the owner may take to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Seconds a client is asked to wait before trying again while the owner is away.
const RETRY_AFTER_SECONDS: u64 = 2;

pub async fn forward(cx: &Context<'_>, mut request: Request<Incoming>, method: &Method) -> Response<ProxyBody> {
    let id = super::upload_id(request.uri()).unwrap_or_default().to_string();
    let owner = super::owner_of(&id).to_string();
    if request.headers().contains_key(PASSED_BY) {
        return away(method, "the replica this upload was passed to does not own it\n");
    }
    let Some(peer) = cx.dp.config.current().peers.get(&owner).copied() else {
        tracing::warn!(upload = id, owner, "a request for an upload of a replica not among the peers");
        return away(method, "the replica that owns this upload is not reachable now; try again shortly\n");
    };
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(peer)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::info!(upload = id, owner, %peer, %error, "the replica that owns an upload is not reachable");
            return away(method, "the replica that owns this upload is not reachable now; try again shortly\n");
        }
        Err(_) => return away(method, "the replica that owns this upload did not answer; try again shortly\n"),
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
        Ok(pair) => pair,
        Err(_) => return away(method, "the replica that owns this upload did not answer; try again shortly\n"),
    };
    tokio::spawn(connection);
    let instance = HeaderValue::from_str(cx.dp.tus.instance()).unwrap_or(HeaderValue::from_static("unnamed"));
    request.headers_mut().insert(PASSED_BY, instance);
    // The owner sees the client's address where the creation would have: in X-Forwarded-For.
    if let Some(value) = crate::forward::forwarded_for(request.headers(), cx.client) {
        request.headers_mut().insert(crate::forward::X_FORWARDED_FOR, value);
    }
    if request.headers().get("x-forwarded-proto").is_none() {
        request.headers_mut().insert("x-forwarded-proto", HeaderValue::from_static(cx.client.scheme));
    }
    crate::forward::remove_hop_by_hop(request.headers_mut());
    // An HTTP/2 request has its host in the URI; HTTP/1.1 to the owner needs it as `Host`.
    if let Some(authority) = request.uri().authority().map(|a| a.as_str().to_string()) {
        if let Ok(host) = HeaderValue::from_str(&authority) {
            request.headers_mut().insert(header::HOST, host);
        }
    }
    let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str()).to_string();
    *request.uri_mut() = path.parse().unwrap_or_default();
    *request.version_mut() = http::Version::HTTP_11;
    match sender.send_request(request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            crate::forward::remove_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.map_err(|e| Box::new(e) as BoxError).boxed_unsync())
        }
        Err(error) => {
            tracing::info!(upload = id, owner, %peer, %error, "passing a request to the replica that owns its upload failed");
            away(method, "the replica that owns this upload did not answer; try again shortly\n")
        }
    }
}

/// The owner is away: `503` (`423` to a HEAD), with `Retry-After`.
fn away(method: &Method, text: &'static str) -> Response<ProxyBody> {
    let status = match *method {
        Method::HEAD => StatusCode::LOCKED,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut response = plain(status, text);
    response.headers_mut().insert(header::RETRY_AFTER, number(RETRY_AFTER_SECONDS));
    response
}

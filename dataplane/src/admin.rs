//! The admin listener (`--admin`, loopback only, never exposed outside the pod): snapshots in, health and metrics out.
//!
//! - `PUT /config`: a full route snapshot as JSON; 200 when it is in force, 400 with the reason otherwise (the
//!   previous snapshot keeps serving).
//! - `PATCH /config`: a delta of backends ([`SnapshotDelta`]) on top of the version in force; 200 when in force, 400
//!   with the reason otherwise — a delta for another base (a restart, another pusher) included, which the controller
//!   answers with the full snapshot. 400 rather than 409 for that too: whatever is wrong with a delta, the remedy
//!   is the same full `PUT`, so the pusher needs no second status to tell them apart.
//! - `GET /config`: `{"version": N}`, or `{"version": null}` before the first snapshot (the controller re-pushes when
//!   the version went back, i.e. the dataplane restarted).
//! - `GET /healthz`: the process is alive. `GET /readyz`: a snapshot is in force and the process is not draining.
//! - `GET /metrics`: Prometheus text format.
//! - `GET /status`: the live status page; `GET /status/api`: its data as JSON ([`crate::status`]).
//!
//! The same server runs read-only on `--metrics` ([`Access::ReadOnly`]): everything but `/config`, so that
//! Prometheus, the kubelet and an operator's browser can reach the pod IP without anyone who reaches it being able
//! to replace the routes.

use crate::error::{text_response, ProxyBody};
use crate::Dataplane;
use bytes::Bytes;
use holdfast_snapshot::{Snapshot, SnapshotDelta};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// Snapshots larger than this are refused: thousands of Ingresses fit in a few MiB.
const MAX_SNAPSHOT_BYTES: usize = 64 * 1024 * 1024;

/// What a listener of this server may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Everything, route pushes included: `--admin`, on loopback.
    Full,
    /// Reading only (metrics and probes): `--metrics`, which may face the pod network.
    ReadOnly,
}

/// Serves the admin API until `shutdown` resolves.
pub async fn serve(listener: TcpListener, dp: Arc<Dataplane>, access: Access, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = crate::server::accept(&listener, if access == Access::Full { "admin" } else { "metrics" }) => accepted,
            _ = &mut shutdown => return,
        };
        tokio::spawn(serve_connection(stream, dp.clone(), access));
    }
}

/// Serves one accepted admin connection until it closes. Public so that a test can hand the connections of one
/// listener to successive dataplanes, as the same admin port of a restarted process.
pub async fn serve_connection(stream: TcpStream, dp: Arc<Dataplane>, access: Access) {
    let service = hyper::service::service_fn(move |request| handle(dp.clone(), access, request));
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn handle(
    dp: Arc<Dataplane>,
    access: Access,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let response = match (request.method(), request.uri().path()) {
        (_, "/config") if access == Access::ReadOnly => text_response(StatusCode::NOT_FOUND, "not found\n"),
        (&Method::PUT, "/config") => put_config(&dp, request).await,
        (&Method::PATCH, "/config") => patch_config(&dp, request).await,
        (&Method::GET, "/config") => {
            let version = dp.config.current().version;
            json(StatusCode::OK, serde_json::json!({ "version": version }).to_string())
        }
        (&Method::GET, "/healthz") => text_response(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") if dp.drain.is_draining() => {
            text_response(StatusCode::SERVICE_UNAVAILABLE, "not ready: draining for shutdown\n")
        }
        (&Method::GET, "/readyz") => match dp.config.current().version {
            Some(version) => text_response(StatusCode::OK, format!("ready: snapshot version {version}\n")),
            None => text_response(StatusCode::SERVICE_UNAVAILABLE, "not ready: no route snapshot yet\n"),
        },
        (&Method::GET, "/metrics") => {
            let mut response = text_response(StatusCode::OK, dp.scrape());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            response
        }
        (&Method::GET, "/status" | "/status/") => page(),
        (&Method::GET, "/status/api") => {
            let mut response = json(StatusCode::OK, crate::status::render(&dp).to_string());
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        (_, "/config" | "/healthz" | "/readyz" | "/metrics" | "/status" | "/status/api") => {
            text_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text_response(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(response)
}

async fn put_config(dp: &Dataplane, request: Request<Incoming>) -> Response<ProxyBody> {
    let body = match read_body(request, "snapshot").await {
        Ok(body) => body,
        Err(response) => return response,
    };
    match Snapshot::from_json(&body).and_then(|snapshot| dp.apply_owned(snapshot)) {
        Ok(version) => {
            tracing::info!(version, "route snapshot in force");
            text_response(StatusCode::OK, format!("accepted version {version}\n"))
        }
        Err(error) => {
            tracing::warn!(%error, "route snapshot refused");
            text_response(StatusCode::BAD_REQUEST, format!("snapshot refused: {error}\n"))
        }
    }
}

async fn patch_config(dp: &Dataplane, request: Request<Incoming>) -> Response<ProxyBody> {
    let body = match read_body(request, "delta").await {
        Ok(body) => body,
        Err(response) => return response,
    };
    match SnapshotDelta::from_json(&body).and_then(|delta| dp.apply_delta(&delta)) {
        Ok(version) => {
            tracing::debug!(version, "route delta in force");
            text_response(StatusCode::OK, format!("accepted version {version}\n"))
        }
        Err(error) => {
            tracing::info!(%error, "route delta refused");
            text_response(StatusCode::BAD_REQUEST, format!("delta refused: {error}\n"))
        }
    }
}

async fn read_body(request: Request<Incoming>, what: &str) -> Result<Bytes, Response<ProxyBody>> {
    match Limited::new(request.into_body(), MAX_SNAPSHOT_BYTES).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(error) => Err(text_response(StatusCode::BAD_REQUEST, format!("could not read the {what}: {error}\n"))),
    }
}

/// The status page: one self-contained file, which reads `/status/api`.
fn page() -> Response<ProxyBody> {
    let mut response = text_response(StatusCode::OK, crate::status::PAGE);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    // Nothing but itself: no script, style or image from anywhere else, and no framing by another site.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'"),
    );
    response
}

fn json(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut response = text_response(status, Bytes::from(body));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

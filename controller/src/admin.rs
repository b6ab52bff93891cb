//! The controller's admin listener, separate from everything else: `GET /metrics` (Prometheus text), `/healthz`
//! (the process runs) and `/readyz` (the dataplane has accepted a snapshot from this controller).

use crate::drain::Shutdown;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves until shutdown on an already-bound listener.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    ready: watch::Receiver<bool>,
    mut shutdown: Shutdown,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "Admin listener accept failed");
                    continue;
                }
            },
            _ = shutdown.wait() => return,
        };
        let (registry, ready) = (registry.clone(), ready.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let response = respond(&req, &registry, *ready.borrow());
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(error) =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
            {
                tracing::debug!(%error, "Admin connection ended with an error");
            }
        });
    }
}

fn respond(req: &Request<Incoming>, registry: &Registry, ready: bool) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String| {
        let mut response = Response::new(Full::from(body));
        *response.status_mut() = status;
        response
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            let mut body = String::new();
            match prometheus_client::encoding::text::encode(&mut body, registry) {
                Ok(()) => text(StatusCode::OK, body),
                Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n".into()),
            }
        }
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n".into()),
        (&Method::GET, "/readyz") if ready => text(StatusCode::OK, "ready\n".into()),
        (&Method::GET, "/readyz") => {
            text(StatusCode::SERVICE_UNAVAILABLE, "the dataplane has not accepted a snapshot yet\n".into())
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

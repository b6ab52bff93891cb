//! A finished upload delivered to its backend: one ordinary request (the policy's method, to the URL the upload was
//! created at, with a `Content-Length`, the content fields made from its metadata, the creator's credentials and a
//! stable `X-Request-Id` — the upload's id — so that the backend can recognise a delivery it already took) through
//! [`crate::replay::deliver`], which waits for an endpoint and replays through churn as for any request.
//!
//! The delivery is the dataplane's own durable job: the upload's stage says `Delivering` on the volume before the
//! first attempt, so a restart resumes it. When no endpoint answers within the route's wait, it is tried again later
//! (backing off to a minute) until the upload's expiry — at least an hour after the upload completed. The backend's
//! answer (status, fields, the start of its body) is saved as the outcome, for the client's last PATCH, HEAD and GET,
//! and the data file is removed.

use super::registry::now_ms;
use super::store::{Info, Outcome, Stage, OUTCOME_BODY_MAX};
use super::upload::Upload;
use crate::error::ProxyError;
use crate::exchange::{Exchange, Head, Mode};
use crate::forward::{self, Added, RequestHead};
use crate::metrics::resumable::DeliveryOutcome;
use crate::route::host_of;
use crate::spool::Spool;
use crate::upstream::BodySource;
use crate::Dataplane;
use base64::Engine;
use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;

/// A delivery is given up no sooner than this after the upload completed, even if the upload's expiry is nearer.
const MIN_DELIVERY_WINDOW_MS: u64 = 3_600_000;
/// Bytes of a response body read (and dropped past [`OUTCOME_BODY_MAX`]) so that the connection ends cleanly.
const RESPONSE_READ_MAX: usize = 16 * 1024 * 1024;

/// Starts the delivery of a complete upload, once.
pub fn start(dp: &Arc<Dataplane>, upload: &Arc<Upload>) {
    if !upload.start_delivering() || upload.outcome().is_some() {
        return;
    }
    let mut info = upload.info().clone();
    if info.stage == Stage::Receiving {
        info.stage = Stage::Delivering;
        if let Err(error) = dp.tus.store.save(&info) {
            // The delivery goes on; a restart finds the upload complete and delivers it then too.
            tracing::error!(upload = upload.id, %error, "saving an upload's delivery stage failed");
        }
        *upload.info() = info;
    }
    tokio::spawn(run(dp.clone(), upload.clone()));
}

/// Resumes the deliveries found pending on the volume at start.
pub fn resume_deliveries(dp: &Arc<Dataplane>, uploads: Vec<Arc<Upload>>) {
    for upload in uploads {
        tracing::info!(upload = upload.id, "resuming the delivery of a finished upload");
        start(dp, &upload);
    }
}

async fn run(dp: Arc<Dataplane>, upload: Arc<Upload>) {
    let deadline = upload.info().expires_ms.max(now_ms() + MIN_DELIVERY_WINDOW_MS);
    let mut pause = Duration::from_secs(1);
    loop {
        if upload.is_gone() {
            return;
        }
        let outcome = match attempt(&dp, &upload).await {
            Ok(outcome) => outcome,
            Err(error) if now_ms() < deadline => {
                tracing::warn!(upload = upload.id, %error, retry_in = ?pause, "delivering a finished upload failed");
                dp.tus.metrics().delivery(DeliveryOutcome::retrying);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(60));
                continue;
            }
            Err(error) => {
                tracing::error!(upload = upload.id, %error, "a finished upload could not be delivered before its expiry");
                dp.tus.metrics().delivery(DeliveryOutcome::expired);
                Outcome {
                    status: error.status().as_u16(),
                    headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                    body: base64::engine::general_purpose::STANDARD.encode(format!("{error}\n")),
                    truncated: false,
                    from_backend: false,
                    at_ms: now_ms(),
                }
            }
        };
        if outcome.from_backend {
            let accepted = outcome.status < 400;
            dp.tus.metrics().delivery(if accepted { DeliveryOutcome::accepted } else { DeliveryOutcome::refused });
        }
        tracing::info!(upload = upload.id, status = outcome.status, "finished upload delivered");
        record(&dp, &upload, outcome);
        return;
    }
}

/// Saves the outcome (the client can read it from now on) and frees the data.
fn record(dp: &Dataplane, upload: &Upload, outcome: Outcome) {
    let mut info = upload.info().clone();
    info.stage = Stage::Delivered(outcome.clone());
    if let Err(error) = dp.tus.store.save(&info) {
        tracing::error!(upload = upload.id, %error, "saving a delivered upload's outcome failed");
    }
    *upload.info() = info;
    upload.set_outcome(outcome);
    dp.tus.delivered(upload);
}

/// One delivery through the route in force for the upload's URL: `Ok` with the backend's answer, `Err` when no
/// endpoint answered (or there is no route).
async fn attempt(dp: &Arc<Dataplane>, upload: &Upload) -> Result<Outcome, ProxyError> {
    let info = upload.info().clone();
    let active = dp.config.current();
    let (host, path) = (host_of(&info.target.host), info.target.path());
    let route = active
        .routes
        .find(host, path)
        .ok_or_else(|| ProxyError::NoRoute { host: host.to_string(), path: path.to_string() })?;
    let len = info.length.unwrap_or(0);
    let body = match len {
        0 => BodySource::Empty,
        _ => {
            let file = dp.tus.store.open_data(&upload.id).map_err(ProxyError::SpoolIo)?;
            BodySource::Spool(Spool::complete_from_file(dp.spool.clone(), file, len))
        }
    };
    let head = request_head(&info, len)?;
    let exchange = Exchange::new(
        Head {
            id: head.added.request_id.clone(),
            method: head.method.clone(),
            uri: head.uri.clone(),
            host_field: head.added.host.clone(),
            client: info.target.client.parse().unwrap_or_else(|_| ([0, 0, 0, 0], 0).into()),
            version: Version::HTTP_11,
        },
        Some((route.metrics.clone(), route.backend.clone())),
    );
    exchange.track(dp, Mode::Resumable, Some(len)).set_received(len);
    exchange.spooled(len);
    let delivered = crate::replay::deliver(dp, (&active, &route.backend, &exchange), &head, &body, &route.policy).await;
    let answer = match delivered {
        Ok(answer) => answer,
        Err(error) => {
            exchange.set_status(error.status().as_u16());
            exchange.set_error(&error);
            exchange.finish(dp, None);
            return Err(error);
        }
    };
    if let Some(connection) = answer.connection {
        dp.pool.release(connection);
    }
    let (mut parts, mut response_body) = answer.response.into_parts();
    forward::remove_hop_by_hop(&mut parts.headers);
    let status = parts.status.as_u16();
    exchange.set_status(status);
    // The start of the body is kept; the rest is read and dropped so that the upstream finishes cleanly.
    let idle = Duration::from_millis(route.policy.timeouts.upstream_read_ms);
    let (mut kept, mut read, mut truncated) = (BytesMut::new(), 0usize, false);
    while read < RESPONSE_READ_MAX {
        match tokio::time::timeout(idle, response_body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    read += data.len();
                    let room = OUTCOME_BODY_MAX.saturating_sub(kept.len());
                    truncated |= data.len() > room;
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Ok(None) => break,
            // The backend answered; a body cut short still leaves its status and fields.
            Ok(Some(Err(_))) | Err(_) => {
                truncated = true;
                break;
            }
        }
    }
    exchange.sent(read as u64);
    exchange.finish(dp, None);
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| *name != http::header::CONTENT_LENGTH)
        .filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.to_string())))
        .collect();
    Ok(Outcome {
        status,
        headers,
        body: base64::engine::general_purpose::STANDARD.encode(&kept),
        truncated,
        from_backend: true,
        at_ms: now_ms(),
    })
}

/// The delivery request's head, from what the creation saved.
fn request_head(info: &Info, len: u64) -> Result<RequestHead, ProxyError> {
    let bad = |what: &'static str| ProxyError::Internal(format!("upload {}: {what} saved with it is invalid", info.id));
    let method = Method::from_bytes(info.target.method.as_bytes()).map_err(|_| bad("the method"))?;
    let uri: Uri = info.target.path_and_query.parse().map_err(|_| bad("the URL"))?;
    let host = HeaderValue::from_str(&info.target.host).map_err(|_| bad("the host"))?;
    let mut headers = HeaderMap::new();
    let mut forwarded_for = None;
    for (name, value) in &info.target.headers {
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) else {
            continue;
        };
        match name == forward::X_FORWARDED_FOR {
            true => forwarded_for = Some(value),
            false => drop(headers.append(name, value)),
        }
    }
    let request_id = HeaderValue::from_str(&info.id).map_err(|_| bad("the id"))?;
    let added = Added {
        host: Some(host),
        // The Host is the creation's, set from `host`: the head has no Host field of its own.
        replaces_host: true,
        forwarded_for,
        forwarded_proto: if info.target.scheme == "https" { "https" } else { "http" },
        request_id,
        content_length: Some(len),
        attempt: 1,
        upgrade: None,
        te_trailers: false,
    };
    Ok(RequestHead { method, uri, headers, added })
}

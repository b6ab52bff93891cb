//! The upload as a resource: its state (HEAD), the backend's answer once delivered (GET), its end (DELETE), and what
//! the server supports (OPTIONS).
//!
//! HEAD never answers a live upload with a 4xx other than 423: tus-js-client forgets an upload on any other 4xx to
//! HEAD and starts again from byte 0. While the delivery runs HEAD answers 423, which clients retry; once the backend
//! has answered, HEAD says the upload is complete (`Upload-Offset` = `Upload-Length`, which clients take as done)
//! and carries the backend's status in `Holdfast-Delivery-Status`; GET returns the backend's response itself.

use super::patch::locked;
use super::protocol::{
    self, CHECKSUM_ALGORITHMS, EXTENSIONS, TUS_CHECKSUM_ALGORITHM, TUS_EXTENSION, TUS_MAX_SIZE, TUS_VERSION,
    UPLOAD_DEFER_LENGTH, UPLOAD_LENGTH, UPLOAD_METADATA, UPLOAD_OFFSET, VERSION,
};
use super::store::{Outcome, Stage};
use super::upload::Upload;
use super::{empty, expires_value, number, plain, Context};
use crate::error::{ProxyBody, ProxyError};
use base64::Engine;
use http::{header, HeaderName, HeaderValue, Response, StatusCode};
use std::sync::Arc;

pub fn options(cx: &Context<'_>) -> Response<ProxyBody> {
    let mut response = empty(StatusCode::NO_CONTENT);
    let h = response.headers_mut();
    // The spec leaves Tus-Resumable out of OPTIONS answers.
    h.remove(protocol::TUS_RESUMABLE);
    h.insert(TUS_VERSION, HeaderValue::from_static(VERSION));
    h.insert(TUS_EXTENSION, HeaderValue::from_static(EXTENSIONS));
    h.insert(TUS_CHECKSUM_ALGORITHM, HeaderValue::from_static(CHECKSUM_ALGORITHMS));
    if cx.max_size() > 0 {
        h.insert(TUS_MAX_SIZE, number(cx.max_size()));
    }
    response
}

pub fn head(cx: &Context<'_>, upload: &Arc<Upload>) -> Response<ProxyBody> {
    let info = upload.info().clone();
    if info.stage == Stage::Receiving && upload.is_complete() {
        // Complete, and no request started its delivery (which every completing request does): start it now.
        super::delivery::start(cx.dp, upload);
    }
    if info.stage == Stage::Delivering || upload.is_delivering() {
        return locked("the upload is complete and being delivered; ask again shortly\n");
    }
    let mut response = empty(StatusCode::OK);
    let h = response.headers_mut();
    h.insert(UPLOAD_OFFSET, number(upload.offset()));
    match info.length {
        Some(length) => drop(h.insert(UPLOAD_LENGTH, number(length))),
        None => drop(h.insert(UPLOAD_DEFER_LENGTH, HeaderValue::from_static("1"))),
    }
    if let Some(metadata) = info.metadata.as_deref().and_then(|m| HeaderValue::from_str(m).ok()) {
        h.insert(UPLOAD_METADATA, metadata);
    }
    match &info.stage {
        Stage::Receiving => drop(h.insert(protocol::UPLOAD_EXPIRES, expires_value(info.expires_ms))),
        Stage::Delivered(outcome) => {
            // A delivered upload's data is gone, but it was whole.
            h.insert(UPLOAD_OFFSET, number(info.length.unwrap_or(0)));
            h.insert(protocol::DELIVERY_STATUS, number(u64::from(outcome.status)));
        }
        Stage::Delivering => {}
    }
    if let super::Dialect::Ietf(_) = cx.dialect {
        let complete = upload.is_complete() || matches!(info.stage, Stage::Delivered(_));
        super::patch::mark_complete(cx, &mut response, complete);
        response.headers_mut().insert(protocol::UPLOAD_LIMIT, protocol::upload_limit(cx.max_size()));
    }
    response
}

pub fn get(upload: &Upload) -> Response<ProxyBody> {
    if let Some(outcome) = upload.outcome() {
        return outcome_response(upload, &outcome);
    }
    if upload.is_delivering() || upload.info().stage == Stage::Delivering {
        return locked("the upload is complete and being delivered; ask again shortly\n");
    }
    let mut response = plain(StatusCode::CONFLICT, "the upload is not complete\n");
    response.headers_mut().insert(UPLOAD_OFFSET, number(upload.offset()));
    response
}

pub async fn delete(cx: &Context<'_>, upload: &Arc<Upload>) -> Result<Response<ProxyBody>, ProxyError> {
    let Ok(held) = upload.take().await else {
        return Ok(locked("another request is writing this upload; try again\n"));
    };
    if upload.is_delivering() {
        return Ok(locked("the upload is being delivered and cannot be terminated now\n"));
    }
    cx.dp.tus.remove(upload);
    cx.dp.tus.terminated();
    drop(held);
    tracing::info!(upload = upload.id, "resumable upload terminated by the client");
    Ok(empty(StatusCode::NO_CONTENT))
}

/// The backend's response as the client gets it: its status, fields and (the kept start of) its body, with the
/// upload's `Upload-Offset` so that tus clients take it as the upload's end.
pub fn outcome_response(upload: &Upload, outcome: &Outcome) -> Response<ProxyBody> {
    let body = base64::engine::general_purpose::STANDARD.decode(&outcome.body).unwrap_or_default();
    let mut response = Response::new(crate::error::full_body(body));
    *response.status_mut() = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let h = response.headers_mut();
    for (name, value) in &outcome.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            h.append(name, value);
        }
    }
    // Its length is the body kept; the upload's own fields replace any the backend sent.
    for name in [header::CONTENT_LENGTH, header::TRANSFER_ENCODING, UPLOAD_OFFSET, protocol::TUS_RESUMABLE] {
        h.remove(name);
    }
    h.insert(UPLOAD_OFFSET, number(upload.info().length.unwrap_or(0)));
    h.insert(protocol::TUS_RESUMABLE, HeaderValue::from_static(VERSION));
    h.insert(protocol::DELIVERY_STATUS, number(u64::from(outcome.status)));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

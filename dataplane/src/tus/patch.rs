//! PATCH (and the body of a creation, creation-with-upload): the client's bytes appended to the upload's data file
//! at the offset it names, synced before the answer promises them, and — when the upload is complete — its
//! delivery started and its outcome awaited for the answer.

use super::protocol::{self, Checksum, Hasher, OFFSET_OCTET_STREAM, UPLOAD_CHECKSUM, UPLOAD_LENGTH, UPLOAD_OFFSET};
use super::store::Stage;
use super::upload::{Held, Upload};
use super::writeback::Writeback;
use super::{delivery, empty, expires_value, number, plain, resource, Context, Dialect};
use crate::error::{ProxyBody, ProxyError};
use crate::exchange::Mode;
use crate::min_rate::{Late, Pace};
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub async fn patch(
    cx: &Context<'_>,
    upload: &Arc<Upload>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let headers = request.headers();
    let content_type = headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes());
    let ends = match cx.dialect {
        Dialect::Tus if content_type != Some(OFFSET_OCTET_STREAM.as_bytes()) => {
            return Ok(plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, "a PATCH body is application/offset+octet-stream\n"));
        }
        Dialect::Tus => false,
        // Interop version 6 appends are application/partial-upload; version 5 names no type.
        Dialect::Ietf(6) if content_type.is_some_and(|t| t != protocol::PARTIAL_UPLOAD.as_bytes()) => {
            return Ok(plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, "an append is application/partial-upload\n"));
        }
        Dialect::Ietf(_) => match protocol::sf_boolean(headers, &protocol::UPLOAD_COMPLETE) {
            Some(ends) => ends,
            None => return Ok(plain(StatusCode::BAD_REQUEST, "an append needs Upload-Complete: ?0 or ?1\n")),
        },
    };
    let claimed = match protocol::integer(headers, &UPLOAD_OFFSET) {
        Ok(Some(offset)) => offset,
        Ok(None) => return Ok(plain(StatusCode::BAD_REQUEST, "a PATCH needs Upload-Offset\n")),
        Err(_) => return Ok(plain(StatusCode::BAD_REQUEST, "Upload-Offset must be a non-negative integer\n")),
    };
    let declared_length = match protocol::integer(headers, &UPLOAD_LENGTH) {
        Ok(length) => length,
        Err(_) => return Ok(plain(StatusCode::BAD_REQUEST, "Upload-Length must be a non-negative integer\n")),
    };
    let checksum = match headers.get(UPLOAD_CHECKSUM).map(protocol::checksum).transpose() {
        Ok(checksum) => checksum,
        Err(error) => return Ok(super::bad_request(&error)),
    };
    let Ok(held) = upload.take().await else {
        return Ok(locked("another request is writing this upload; try again\n"));
    };
    if upload.is_gone() {
        return Ok(plain(StatusCode::NOT_FOUND, "no such upload\n"));
    }
    // Complete already: a client whose last answer was lost asks again with the final offset and no body.
    let (receiving, length) = {
        let info = upload.info();
        (info.stage == Stage::Receiving, info.length)
    };
    if !receiving {
        drop(held);
        return Ok(match length == Some(claimed) {
            true => final_answer(cx, upload).await,
            false => mismatch(cx, upload),
        });
    }
    if claimed != upload.offset() {
        return Ok(mismatch(cx, upload));
    }
    if let Some(length) = declared_length {
        if let Some(response) = set_length(cx, upload, length)? {
            return Ok(response);
        }
    }
    if claimed > 0 && upload.interrupted.swap(false, Ordering::AcqRel) {
        cx.dp.tus.metrics().resumptions.inc();
    }
    write_body(cx, upload, held, request, (checksum, ends)).await
}

/// creation-with-upload: the creation request's body, at offset 0 of the new upload. `ends`: the body is the whole
/// upload (IETF `Upload-Complete: ?1`).
pub async fn write_first(
    cx: &Context<'_>,
    upload: &Arc<Upload>,
    request: Request<Incoming>,
    ends: bool,
) -> Result<Response<ProxyBody>, ProxyError> {
    let checksum = request.headers().get(UPLOAD_CHECKSUM).and_then(|v| protocol::checksum(v).ok());
    let Ok(held) = upload.take().await else { return Ok(locked("the upload is busy\n")) };
    write_body(cx, upload, held, request, (checksum, ends)).await
}

/// A deferred length, declared on a PATCH: fixed from then on. `Some` is the refusal.
fn set_length(cx: &Context<'_>, upload: &Upload, length: u64) -> Result<Option<Response<ProxyBody>>, ProxyError> {
    let mut info = upload.info().clone();
    match info.length {
        Some(known) if known == length => return Ok(None),
        Some(_) => return Ok(Some(plain(StatusCode::BAD_REQUEST, "Upload-Length cannot change\n"))),
        None => {}
    }
    let max = cx.max_size();
    if max > 0 && length > max {
        return Ok(Some(plain(StatusCode::PAYLOAD_TOO_LARGE, "the upload is larger than Tus-Max-Size\n")));
    }
    if length < upload.offset() {
        return Ok(Some(plain(StatusCode::BAD_REQUEST, "Upload-Length is below the bytes already stored\n")));
    }
    if cx.dp.tus.reserve_up_to(upload, length).is_err() {
        return Ok(Some(plain(StatusCode::INSUFFICIENT_STORAGE, "no room for an upload of this size now\n")));
    }
    info.length = Some(length);
    cx.dp.tus.store.save(&info).map_err(ProxyError::SpoolIo)?;
    *upload.info() = info;
    Ok(None)
}

/// How a body's reading ended.
enum Ended {
    /// The client sent it all.
    Complete,
    /// The client's connection failed or went idle; what arrived is kept.
    Cut,
    /// The client sent slower than the route's `minBodyRate`; what arrived is kept.
    TooSlow,
    /// Another request took the upload over.
    Stopped,
    /// The body goes past the upload's length (or the size limit of an upload of deferred length).
    TooLong,
    /// No room for the bytes (quota or disk).
    NoRoom,
}

async fn write_body(
    cx: &Context<'_>,
    upload: &Arc<Upload>,
    mut held: Held,
    request: Request<Incoming>,
    (checksum, ends): (Option<Checksum>, bool),
) -> Result<Response<ProxyBody>, ProxyError> {
    let file = match held.writer.file.clone() {
        Some(file) => file,
        None => {
            let file = Arc::new(cx.dp.tus.store.open_data(&upload.id).map_err(ProxyError::SpoolIo)?);
            held.writer.file = Some(file.clone());
            file
        }
    };
    let start = upload.offset();
    if checksum.is_some() {
        cx.dp.tus.store.begin_checked(&upload.id, start).map_err(ProxyError::SpoolIo)?;
    }
    let mut hasher = checksum.as_ref().map(|c| Hasher::new(c.algorithm));
    let (length, max) = (upload.info().length, cx.max_size());
    let mut pace = Pace::new(Duration::from_millis(cx.policy.timeouts.client_body_ms), cx.policy.min_body_rate);
    let brought = |frame: &Option<Result<http_body::Frame<Bytes>, hyper::Error>>| match frame {
        Some(Ok(frame)) => frame.data_ref().map_or(0, |data| data.len() as u64),
        _ => 0,
    };
    // On the status page while it runs, as any request with a body.
    let declared = hyper::body::Body::size_hint(request.body()).exact();
    let progress = cx.exchange.track(cx.dp, Mode::Resumable, declared);
    let mut body = request.into_body();
    let mut offset = start;
    let mut writeback = Writeback::new(file.clone());
    let ended = loop {
        let frame = tokio::select! {
            frame = pace.wait(body.frame(), brought) => frame,
            () = upload.stop_requested() => break Ended::Stopped,
        };
        let data: Bytes = match frame {
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue, // trailers
            },
            Ok(None) => break Ended::Complete,
            Err(Late::TooSlow(_)) => break Ended::TooSlow,
            Ok(Some(Err(_))) | Err(Late::Idle(_)) => break Ended::Cut,
        };
        let end = offset + data.len() as u64;
        let limit = length.unwrap_or(if max > 0 { max } else { u64::MAX });
        if end > limit {
            break Ended::TooLong;
        }
        if length.is_none() && cx.dp.tus.reserve_up_to(upload, end).is_err() {
            break Ended::NoRoom;
        }
        match append(&file, &data, offset) {
            Ok(()) => {}
            Err(error) if is_no_room(&error) => break Ended::NoRoom,
            Err(error) => {
                tracing::error!(upload = upload.id, %error, "writing an upload failed");
                break Ended::NoRoom;
            }
        }
        if let Some(hasher) = &mut hasher {
            hasher.update(&data);
        }
        cx.dp.metrics.bytes_in.inc_by(data.len() as u64);
        writeback.written(data.len() as u64);
        offset = end;
        progress.set_received(offset - start);
    };
    // A checked body is the upload's only if it arrived whole and its digest matches; otherwise it is taken off.
    let verified = match (&checksum, hasher) {
        (Some(expected), Some(hasher)) => Some(matches!(ended, Ended::Complete) && hasher.finish() == expected.digest),
        _ => None,
    };
    if verified == Some(false) {
        file.set_len(start).map_err(ProxyError::SpoolIo)?;
        offset = start;
    }
    let synced = writeback.finish().await;
    if checksum.is_some() {
        cx.dp.tus.store.end_checked(&upload.id).map_err(ProxyError::SpoolIo)?;
    }
    synced.map_err(ProxyError::SpoolIo)?;
    let live = cx.dp.tus.stored(upload, offset);
    if !live {
        return Ok(plain(StatusCode::NOT_FOUND, "the upload was removed (expired or terminated)\n"));
    }
    // IETF: an append that says it is the last fixes the length (it must agree with one declared before).
    if ends && matches!(ended, Ended::Complete) {
        match upload.info().length {
            Some(length) if length != offset => {
                drop(held);
                let text = "Upload-Complete: ?1 where the upload's length says more is to come\n";
                let mut response = plain(StatusCode::BAD_REQUEST, text);
                response.headers_mut().insert(UPLOAD_OFFSET, number(offset));
                return Ok(response);
            }
            _ => {}
        }
        if let Some(response) = set_length(cx, upload, offset)? {
            return Ok(response);
        }
    }
    drop(held);
    if !matches!(ended, Ended::Complete) {
        upload.interrupted.store(true, Ordering::Release);
    }
    // However this request ended, a complete upload is delivered: a request stopped by a takeover right after its
    // last byte would otherwise leave it complete and undelivered, with every later request only reading its offset.
    if upload.is_complete() {
        delivery::start(cx.dp, upload);
    }
    match ended {
        Ended::Complete if verified == Some(false) && checksum.is_some() => {
            let mut response =
                plain(checksum_mismatch(), "the body does not match Upload-Checksum; it was discarded\n");
            response.headers_mut().insert(UPLOAD_OFFSET, number(offset));
            Ok(response)
        }
        Ended::Complete if upload.is_complete() => Ok(final_answer(cx, upload).await),
        Ended::Complete => Ok(progress_answer(cx, upload)),
        Ended::Stopped => Ok(locked("another request took this upload over\n")),
        // As tusd does: a 5xx, so that a client still there retries (tus-js-client gives up on a 4xx) and resumes
        // from what was stored.
        Ended::Cut => {
            let mut response =
                plain(StatusCode::INTERNAL_SERVER_ERROR, "the body stopped arriving; what arrived is stored\n");
            response.headers_mut().insert(UPLOAD_OFFSET, number(offset));
            Ok(response)
        }
        // 408 as on every body path; the bytes that arrived stay in the upload, for a resumption at a better pace.
        Ended::TooSlow => {
            cx.exchange.body_too_slow(&cx.dp.metrics);
            let text = "the body arrived too slowly; what arrived is stored\n";
            let mut response = plain(StatusCode::REQUEST_TIMEOUT, text);
            response.headers_mut().insert(UPLOAD_OFFSET, number(offset));
            response.headers_mut().insert(header::CONNECTION, http::HeaderValue::from_static("close"));
            Ok(response)
        }
        Ended::TooLong => {
            let mut response = plain(StatusCode::PAYLOAD_TOO_LARGE, "the body goes past the upload's length\n");
            response.headers_mut().insert(UPLOAD_OFFSET, number(offset));
            Ok(response)
        }
        Ended::NoRoom => {
            let mut response = plain(StatusCode::INSUFFICIENT_STORAGE, "no room for more of this upload now\n");
            response.headers_mut().insert(UPLOAD_OFFSET, number(offset));
            Ok(response)
        }
    }
}

/// `460 Checksum Mismatch`, the checksum extension's own status.
fn checksum_mismatch() -> StatusCode {
    StatusCode::from_u16(460).expect("460 is a valid status")
}

fn append(file: &File, data: &[u8], offset: u64) -> std::io::Result<()> {
    file.write_all_at(data, offset)
}

fn is_no_room(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(error.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge)
}

/// `204` with the new offset (and the expiry).
fn progress_answer(cx: &Context<'_>, upload: &Upload) -> Response<ProxyBody> {
    let mut response = empty(StatusCode::NO_CONTENT);
    let h = response.headers_mut();
    h.insert(UPLOAD_OFFSET, number(upload.offset()));
    h.insert(protocol::UPLOAD_EXPIRES, expires_value(upload.info().expires_ms));
    mark_complete(cx, &mut response, false);
    response
}

/// `409`: the client's offset is not the upload's; the answer says the upload's.
fn mismatch(cx: &Context<'_>, upload: &Upload) -> Response<ProxyBody> {
    let mut response = plain(StatusCode::CONFLICT, "Upload-Offset does not match the upload's offset\n");
    response.headers_mut().insert(UPLOAD_OFFSET, number(upload.offset()));
    mark_complete(cx, &mut response, upload.is_complete());
    response
}

/// IETF answers say whether the upload is complete (`Upload-Complete`).
pub fn mark_complete(cx: &Context<'_>, response: &mut Response<ProxyBody>, complete: bool) {
    if let super::Dialect::Ietf(_) = cx.dialect {
        response.headers_mut().insert(protocol::UPLOAD_COMPLETE, protocol::sf_bool_value(complete));
    }
}

pub fn locked(text: &'static str) -> Response<ProxyBody> {
    let mut response = plain(StatusCode::LOCKED, text);
    response.headers_mut().insert(header::RETRY_AFTER, number(1));
    response
}

/// The answer to the request that completed the upload: the backend's, if it answers within `answerWaitMs`;
/// otherwise `204` with `Holdfast-Delivery: pending` (the upload is safe on the volume and its delivery goes on).
async fn final_answer(cx: &Context<'_>, upload: &Arc<Upload>) -> Response<ProxyBody> {
    delivery::start(cx.dp, upload);
    match upload.wait_outcome(cx.answer_wait()).await {
        Some(outcome) => {
            let mut response = resource::outcome_response(upload, &outcome);
            mark_complete(cx, &mut response, true);
            response
        }
        None => {
            let mut response = progress_answer(cx, upload);
            response.headers_mut().insert(protocol::DELIVERY, http::HeaderValue::from_static("pending"));
            mark_complete(cx, &mut response, true);
            response
        }
    }
}

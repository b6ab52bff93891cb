//! Creation (tus `creation`, `creation-defer-length`, `creation-with-upload`): the client's `POST` to the URL its
//! file is for becomes an upload on the volume, and the answer's `Location` names it.

use super::protocol::{self, OFFSET_OCTET_STREAM, UPLOAD_DEFER_LENGTH, UPLOAD_LENGTH, UPLOAD_METADATA};
use super::registry::{now_ms, CreateError};
use super::store::{Info, Stage, Target};
use super::{expires_value, patch, plain, Context, Dialect};
use crate::error::{ProxyBody, ProxyError};
use crate::forward;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper::body::{Body, Incoming};

pub async fn create(cx: &Context<'_>, request: Request<Incoming>) -> Result<Response<ProxyBody>, ProxyError> {
    let headers = request.headers();
    let length = match protocol::integer(headers, &UPLOAD_LENGTH) {
        Ok(length) => length,
        Err(error) => return Ok(super::bad_request(&error)),
    };
    // The IETF draft: the length is `Upload-Length`, or the body's when the creation carries it all
    // (`Upload-Complete: ?1`), or not known yet.
    let complete = protocol::sf_boolean(headers, &protocol::UPLOAD_COMPLETE);
    let length = match cx.dialect {
        Dialect::Tus => {
            let deferred = match headers.get(UPLOAD_DEFER_LENGTH) {
                None => false,
                Some(v) if v == "1" => true,
                Some(_) => return Ok(plain(StatusCode::BAD_REQUEST, "Upload-Defer-Length may only be 1\n")),
            };
            match (length, deferred) {
                (None, false) => {
                    let text = "a creation needs Upload-Length or Upload-Defer-Length: 1\n";
                    return Ok(plain(StatusCode::BAD_REQUEST, text));
                }
                (Some(_), true) => {
                    let text = "Upload-Length and Upload-Defer-Length exclude each other\n";
                    return Ok(plain(StatusCode::BAD_REQUEST, text));
                }
                _ => length,
            }
        }
        Dialect::Ietf(_) => {
            let Some(complete) = complete else {
                return Ok(plain(StatusCode::BAD_REQUEST, "Upload-Complete must be ?0 or ?1\n"));
            };
            let body_len = request.body().size_hint().exact();
            match (length, complete.then_some(body_len).flatten()) {
                (Some(a), Some(b)) if a != b => {
                    let text = "Upload-Length and the complete body's length disagree (inconsistent-upload-length)\n";
                    return Ok(plain(StatusCode::BAD_REQUEST, text));
                }
                (Some(length), _) | (None, Some(length)) => Some(length),
                (None, None) => None,
            }
        }
    };
    let max = cx.max_size();
    if let (Some(length), true) = (length, max > 0) {
        if length > max {
            let mut response = plain(StatusCode::PAYLOAD_TOO_LARGE, "the upload is larger than Tus-Max-Size\n");
            response.headers_mut().insert(protocol::TUS_MAX_SIZE, super::number(max));
            return Ok(response);
        }
    }
    let metadata = match headers.get(UPLOAD_METADATA).map(protocol::metadata).transpose() {
        Ok(metadata) => metadata.unwrap_or_default(),
        Err(error) => return Ok(super::bad_request(&error)),
    };
    let Some(host) = forward::authority(request.uri(), headers).map(str::to_string) else {
        return Ok(plain(StatusCode::BAD_REQUEST, "a creation needs a Host\n"));
    };
    let now = now_ms();
    let info = Info {
        id: cx.dp.tus.new_id(),
        length,
        metadata: headers.get(UPLOAD_METADATA).and_then(|v| v.to_str().ok()).map(str::to_string),
        created_ms: now,
        expires_ms: now.saturating_add(cx.resumable.expires_after_ms),
        target: Target {
            method: cx.resumable.delivery_method.as_str().to_string(),
            path_and_query: request.uri().path_and_query().map_or("/", |pq| pq.as_str()).to_string(),
            scheme: cx.client.scheme.to_string(),
            client: cx.client.addr.to_string(),
            headers: delivery_fields(cx, headers, &metadata),
            host,
        },
        stage: Stage::Receiving,
    };
    let location = location(cx, &request, &info.id);
    let expires = info.expires_ms;
    let upload = match cx.dp.tus.create(info) {
        Ok(upload) => upload,
        Err(CreateError::Quota(_) | CreateError::NoRoom { .. }) => {
            return Ok(plain(StatusCode::INSUFFICIENT_STORAGE, "no room for an upload of this size now; try later\n"))
        }
        Err(CreateError::Io(error)) => return Err(ProxyError::from(error)),
    };
    tracing::info!(upload = upload.id, length = ?length, "resumable upload created");
    // creation-with-upload (tus), or a creation carrying a body (IETF): the body holds the first bytes. The client
    // learns the offset from this answer.
    let content_type = headers.get(header::CONTENT_TYPE);
    let has_body = !request.body().is_end_stream()
        && match cx.dialect {
            Dialect::Tus => content_type.is_some_and(|v| v.as_bytes() == OFFSET_OCTET_STREAM.as_bytes()),
            Dialect::Ietf(_) => true,
        };
    let ends = complete == Some(true);
    let mut response = if has_body || length == Some(0) || ends {
        patch::write_first(cx, &upload, request, ends).await?
    } else {
        super::empty(StatusCode::CREATED)
    };
    let completed = response.headers().get(protocol::UPLOAD_COMPLETE).is_some_and(|v| v == "?1");
    match cx.dialect {
        // The draft: the response that completes the upload is the target resource's, as it answered.
        Dialect::Ietf(_) if completed => return Ok(response),
        _ if response.status().is_success() => *response.status_mut() = StatusCode::CREATED,
        _ => {}
    }
    let h = response.headers_mut();
    h.insert(header::LOCATION, location);
    h.entry(protocol::UPLOAD_EXPIRES).or_insert_with(|| expires_value(expires));
    if let Dialect::Ietf(_) = cx.dialect {
        h.insert(protocol::UPLOAD_LIMIT, protocol::upload_limit(cx.max_size()));
        h.entry(protocol::UPLOAD_COMPLETE).or_insert(protocol::sf_bool_value(false));
    }
    Ok(response)
}

/// The fields the delivery carries: the creation request's credentials (`Authorization`, `Cookie`) and where it
/// came from (`X-Forwarded-For` with this client), the content fields made from the `filetype` and `filename`
/// metadata, and the metadata the policy names as fields. Nothing else of the creation request: its other fields
/// describe a tus request, not the file.
fn delivery_fields(
    cx: &Context<'_>,
    headers: &HeaderMap,
    metadata: &[protocol::MetadataPair],
) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    fn keep(fields: &mut Vec<(String, String)>, name: &str, value: &HeaderValue) {
        if let Ok(value) = value.to_str() {
            fields.push((name.to_string(), value.to_string()));
        }
    }
    for name in [header::AUTHORIZATION, header::COOKIE] {
        for value in headers.get_all(&name) {
            keep(&mut fields, name.as_str(), value);
        }
    }
    if let Some(forwarded_for) = forward::forwarded_for(headers, cx.client) {
        keep(&mut fields, forward::X_FORWARDED_FOR.as_str(), &forwarded_for);
    }
    // The IETF draft's creation request carries the representation's own type; tus's carries it as metadata.
    let representation = match cx.dialect {
        Dialect::Ietf(_) => headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .filter(|t| ![protocol::PARTIAL_UPLOAD, OFFSET_OCTET_STREAM].contains(t)),
        Dialect::Tus => None,
    };
    let filetype = representation.or_else(|| protocol::metadata_text(metadata, "filetype"));
    keep(&mut fields, header::CONTENT_TYPE.as_str(), &protocol::content_type(filetype));
    if let Some(disposition) = protocol::metadata_text(metadata, "filename").and_then(protocol::content_disposition) {
        keep(&mut fields, header::CONTENT_DISPOSITION.as_str(), &disposition);
    }
    for (key, field) in &cx.resumable.metadata_headers {
        let value = metadata.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.as_deref());
        if let Some(value) = value.and_then(protocol::field_value) {
            keep(&mut fields, &field.to_ascii_lowercase(), &value);
        }
    }
    fields
}

/// The upload's URL: the creation URL's path with `?holdfast-upload=<id>`, absolute, with the scheme and host the
/// client used. Behind a load balancer that terminates TLS or rewrites the host, `X-Forwarded-Proto`,
/// `X-Forwarded-Host` and `X-Forwarded-Prefix` say what the client used (taking them from the client costs nothing:
/// the URL only ever goes back to that client).
fn location(cx: &Context<'_>, request: &Request<Incoming>, id: &str) -> HeaderValue {
    let headers = request.headers();
    let first =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.split(',').next()).map(str::trim);
    let scheme = match first("x-forwarded-proto") {
        Some(proto @ ("http" | "https")) => proto,
        _ => cx.client.scheme,
    };
    let host = first("x-forwarded-host")
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b'?' && b != b'#'))
        .or_else(|| forward::authority(request.uri(), headers))
        .unwrap_or("");
    let prefix = first("x-forwarded-prefix")
        .filter(|p| p.starts_with('/') && p.bytes().all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#'))
        .map_or("", |p| p.trim_end_matches('/'));
    let url = format!("{scheme}://{host}{prefix}{}?{}={id}", request.uri().path(), protocol::UPLOAD_PARAM);
    HeaderValue::from_str(&url).unwrap_or_else(|_| {
        HeaderValue::from_str(&format!("{}?{}={id}", request.uri().path(), protocol::UPLOAD_PARAM))
            .expect("a path and an id are a valid header value")
    })
}

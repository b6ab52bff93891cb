//! Requests that are not gRPC: a JSON description of what arrived, request trailers included, answered with
//! trailers of its own. For the tests of trailers between HTTP/1.1 clients and HTTP/2 upstreams.

use super::{Body, Seen};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use sha2::{Digest, Sha256};

/// Answers `{"method","path","bytes","sha256","trailers":{…},"te","attempt","requestId"}`, then the trailers
/// `x-peer`, `x-attempt` and `x-body-sha256` (a value known only once the body has been read: what trailers are for).
pub async fn answer(seen: Seen, request: http::Request<Incoming>) -> http::Response<Body> {
    let (head, mut body) = request.into_parts();
    let (mut hasher, mut bytes, mut trailers) = (Sha256::new(), 0u64, serde_json::Map::new());
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        match frame.into_data() {
            Ok(data) => {
                hasher.update(&data);
                bytes += data.len() as u64;
            }
            Err(frame) => {
                for (name, value) in frame.into_trailers().iter().flatten() {
                    trailers.insert(name.to_string(), String::from_utf8_lossy(value.as_bytes()).into());
                }
            }
        }
    }
    let sha256: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let te = head.headers.get("te").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let described = serde_json::json!({
        "method": head.method.as_str(), "path": head.uri.path(), "bytes": bytes, "sha256": sha256,
        "trailers": trailers, "te": te, "attempt": seen.attempt, "requestId": seen.request_id,
    });
    let mut response_trailers = seen.fields();
    response_trailers.insert("x-body-sha256", sha256.parse().expect("hex is a valid header value"));
    let frames = [Frame::data(Bytes::from(described.to_string())), Frame::trailers(response_trailers)];
    let mut response =
        http::Response::new(http_body_util::StreamBody::new(futures::stream::iter(frames.map(Ok))).boxed());
    response.headers_mut().insert("content-type", http::HeaderValue::from_static("application/json"));
    response
}

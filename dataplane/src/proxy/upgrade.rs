//! Requests that ask to switch protocols: an HTTP/1.1 `Upgrade` (a WebSocket handshake, most of the time) or an
//! HTTP/2 extended CONNECT (RFC 8441, a WebSocket over one stream of an HTTP/2 connection).
//!
//! Both are delivered like any request without a body — replayed on another endpoint while no response came, given
//! up with 503 when no endpoint takes them — as an HTTP/1.1 `Upgrade` to the upstream. Once the upstream answers
//! `101 Switching Protocols`, the client is told (`101`, or `200` on HTTP/2) and the two connections become a
//! [`crate::tunnel`]; any other answer (a 401, a 426) reaches the client as it is.
//!
//! Bridging HTTP/2 to HTTP/1.1 (RFC 8441 §5): the CONNECT becomes a `GET` with `Upgrade: websocket`; HTTP/2 carries
//! no `Sec-WebSocket-Key`, so Holdfast makes one for the upstream's handshake, and drops the upstream's
//! `Sec-WebSocket-Accept`, which means nothing to an HTTP/2 client. `Sec-WebSocket-Version`, `-Protocol` and
//! `-Extensions` pass through both ways.

use super::{delivered, into_client_response, Matched, While};
use crate::client::ConnState;
use crate::error::{ProxyBody, ProxyError};
use crate::exchange::{Exchange, Mode};
use crate::forward::{self, ClientInfo};
use crate::tunnel::{self, Ends};
use crate::upstream::request::has_token;
use crate::upstream::BodySource;
use crate::Dataplane;
use base64::Engine;
use holdfast_snapshot::UpstreamProtocol;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use std::sync::Arc;
use std::time::Duration;

const SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
const SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");

/// The protocol `request` asks to switch to, when it is a tunnel request.
///
/// `Upgrade: h2c` is HTTP/2's own upgrade (deprecated by RFC 9113, and not a tunnel): such a request is served as an
/// ordinary one, its `Upgrade` dropped with the other hop-by-hop fields. So is an HTTP/1.1 upgrade with a body,
/// which no WebSocket client sends.
pub(super) fn requested(request: &Request<Incoming>) -> Option<HeaderValue> {
    match request.version() {
        Version::HTTP_11 => {
            let upgrade = request.headers().get(header::UPGRADE)?;
            let first = upgrade.to_str().ok()?.split(',').next()?.trim();
            let h2c = first.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("h2c"));
            let asked = has_token(request.headers(), header::CONNECTION, "upgrade");
            (asked && !h2c && request.body().is_end_stream()).then(|| upgrade.clone())
        }
        Version::HTTP_2 if request.method() == Method::CONNECT => {
            let protocol = request.extensions().get::<hyper::ext::Protocol>()?;
            HeaderValue::from_str(protocol.as_str()).ok()
        }
        _ => None,
    }
}

/// Serves a tunnel request (see the module docs): `request` asks to switch to `protocol`.
pub(super) async fn serve(
    (dp, client, conn): (&Arc<Dataplane>, &ClientInfo, &Arc<ConnState>),
    route: &Matched,
    (request, protocol): (Request<Incoming>, HeaderValue),
    (request_id, exchange): (&HeaderValue, &Arc<Exchange>),
) -> Result<Response<ProxyBody>, ProxyError> {
    if route.upstream_protocol() == UpstreamProtocol::Http2 {
        return Err(ProxyError::TunnelUnsupported { backend: route.backend.to_string() });
    }
    let extended_connect = request.version() == Version::HTTP_2;
    let (mut parts, _empty_body) = request.into_parts();
    let client_side = parts.extensions.remove::<OnUpgrade>().ok_or_else(|| {
        ProxyError::Internal("the server gave no handle on the client's connection for a tunnel".to_string())
    })?;
    if extended_connect {
        parts.method = Method::GET;
        if protocol.as_bytes().eq_ignore_ascii_case(b"websocket") && !parts.headers.contains_key(SEC_WEBSOCKET_KEY) {
            parts.headers.insert(SEC_WEBSOCKET_KEY, websocket_key());
        }
    }
    let mut head = forward::upstream_head(parts, client, request_id, None);
    head.added.upgrade = Some(protocol);
    exchange.track(dp, Mode::Tunnel, None);
    let mut answer = delivered((dp, conn, route, exchange), &head, BodySource::Empty, While::BodyRead).await?;
    let Some(upstream_side) = answer.upgrade.take() else {
        // The upstream declined (401, 426…): its answer is the client's.
        return Ok(into_client_response(dp, answer, &route.policy, request_id));
    };
    let response = switched(answer.response.into_parts().0, extended_connect, request_id);
    let ends = Ends { client: client_side, upstream: upstream_side, upstream_conn: answer.connection.take() };
    let idle = Duration::from_millis(route.policy.timeouts.tunnel_idle_ms);
    // From here the tunnel, not the response, ends the request: it is logged when the tunnel closes.
    exchange.became_tunnel();
    tunnel::spawn(dp, ends, idle, exchange.clone());
    Ok(response)
}

/// The client's answer to an agreed switch: `101` with `Upgrade` on HTTP/1.1, `200` on HTTP/2 (RFC 8441 §5), with
/// the upstream's end-to-end fields.
fn switched(
    mut upstream: http::response::Parts,
    extended_connect: bool,
    request_id: &HeaderValue,
) -> Response<ProxyBody> {
    let upgrade = upstream.headers.get(header::UPGRADE).cloned();
    forward::remove_hop_by_hop(&mut upstream.headers);
    let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
    if extended_connect {
        upstream.headers.remove(SEC_WEBSOCKET_ACCEPT);
    } else {
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        upstream.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(upgrade) = upgrade {
            upstream.headers.insert(header::UPGRADE, upgrade);
        }
    }
    upstream.headers.entry(forward::REQUEST_ID).or_insert_with(|| request_id.clone());
    *response.headers_mut() = upstream.headers;
    response
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes in base64 (RFC 6455 §4.1).
fn websocket_key() -> HeaderValue {
    let nonce = uuid::Uuid::new_v4();
    let key = base64::engine::general_purpose::STANDARD.encode(nonce.as_bytes());
    HeaderValue::from_str(&key).expect("base64 is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switch_tells_an_http1_client_101_with_the_upstreams_upgrade_and_an_http2_client_200() {
        let upstream = Response::builder()
            .status(101)
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            .header("sec-websocket-protocol", "chat")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let id = HeaderValue::from_static("rid");
        let h1 = switched(upstream.clone(), false, &id);
        assert_eq!(h1.status(), 101);
        assert_eq!(h1.headers()["upgrade"], "websocket");
        assert_eq!(h1.headers()["connection"], "upgrade");
        assert_eq!(h1.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(h1.headers()["x-request-id"], "rid");
        let h2 = switched(upstream, true, &id);
        assert_eq!(h2.status(), 200);
        for gone in ["upgrade", "connection", "sec-websocket-accept"] {
            assert!(h2.headers().get(gone).is_none(), "{gone} must not reach an HTTP/2 client");
        }
        assert_eq!(h2.headers()["sec-websocket-protocol"], "chat");
    }

    #[test]
    fn websocket_keys_are_16_bytes_of_base64_and_differ() {
        let (a, b) = (websocket_key(), websocket_key());
        assert_ne!(a, b);
        let decoded = base64::engine::general_purpose::STANDARD.decode(a.as_bytes()).unwrap();
        assert_eq!(decoded.len(), 16);
    }
}

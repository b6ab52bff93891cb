//! RFC 8441: a WebSocket from an HTTP/2 client (`CONNECT` with `:protocol websocket`, answered `200`) bridged to an
//! HTTP/1.1 Upgrade upstream (`holdfast-ws-peer`), over h2c on the plain listener and h2 on the TLS listener. The
//! client is first proven through a reference bridge (`support::bridge`) without the dataplane.

mod support;

use serde_json::json;
use support::routes::routed;
use support::tls::ListenerCert;
use support::ws::{connect_h2, echo_and_push, hello, transport, STEP};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8441_client_reaches_the_ws_peer_through_a_reference_bridge_directly() {
    let peer = PeerProcess::ws(false, &[]).await;
    let bridge = bridge::start(peer.addr).await;
    let mut ws = connect_h2(transport(bridge, None).await, "http", "/chat").await.unwrap();
    assert_eq!(hello(&mut ws).await, peer.addr);
    echo_and_push(&mut ws).await;
}

/// A WebSocket over an HTTP/2 stream of the dataplane's plain (h2c) or TLS (ALPN h2) listener.
async fn extended_connect_is_bridged(tls: bool) {
    let peer = PeerProcess::ws(false, &[]).await;
    let mut snapshot = routed(1, &[peer.addr], json!({}), json!({}));
    let cert = ListenerCert::new("ws.test");
    cert.add_to(&mut snapshot);
    let dataplane = Harness::start(Some(&snapshot.to_string()), 0).await;
    let client = tls.then(|| cert.client(&[b"h2"]));
    let listener = if tls { dataplane.tls_addr } else { dataplane.addr };
    let scheme = if tls { "https" } else { "http" };
    let mut ws = connect_h2(transport(listener, client.as_ref()).await, scheme, "/chat").await.unwrap();
    assert_eq!(hello(&mut ws).await, peer.addr);
    echo_and_push(&mut ws).await;
    let line = peer.lines.wait_for("upgrade 1 ", STEP).await;
    let seen: serde_json::Value = serde_json::from_str(line.splitn(3, ' ').nth(2).unwrap()).unwrap();
    assert_eq!(seen["path"], "/chat");
    assert_eq!(seen["x-forwarded-proto"], scheme, "{seen}");
    assert!(seen["x-request-id"].as_str().is_some_and(|id| !id.is_empty()), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_extended_connect_websocket_is_bridged_to_an_http1_upgrade_upstream() {
    extended_connect_is_bridged(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_over_tls_extended_connect_websocket_is_bridged_to_an_http1_upgrade_upstream() {
    extended_connect_is_bridged(true).await;
}

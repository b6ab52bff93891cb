//! gRPC through Http2 backends, with tonic as the client and `holdfast-grpc-peer` as the server: every kind of call
//! with its metadata and trailers, an error status with its details, a call replayed after its endpoint was killed
//! before answering, 100 concurrent calls multiplexed on one upstream connection, and TLS to the upstream. The
//! `…_directly` tests run the same checks against the peer without the dataplane.

mod support;

use bytes::Bytes;
use serde_json::json;
use std::net::SocketAddr;
use support::grpc::{self, meta, method, request, unary, BytesCodec, Client};
use support::routes::{routed, tls_unverified};
use support::tls::ClientTls;
use support::ws::STEP;
use support::*;
use tokio::time::timeout;

/// What the peer's `Fail` answers (`holdfast-grpc-peer`'s `echo::FAIL_MESSAGE` and `FAIL_DETAILS`).
const FAIL_MESSAGE: &str = "not allowed: 100% denied ✗";
const FAIL_DETAILS: &[u8] = b"\x08\x07\x12\x06denied\x00\xff\xfe\x80";

/// A dataplane routing everything to `peers` as an Http2 backend (over TLS, unverified, when `tls`).
async fn dataplane_to(peers: &[SocketAddr], tls: bool) -> Harness {
    let backend = match tls {
        true => json!({"protocol": "Http2", "tls": tls_unverified()}),
        false => json!({"protocol": "Http2"}),
    };
    Harness::start(Some(&routed(1, peers, backend, json!({})).to_string()), 0).await
}

/// Unary, server-streaming, client-streaming and bidi calls and a failing one, each answered by `peer`.
async fn every_call_kind(client: &mut Client, peer: SocketAddr) {
    let peer = peer.to_string();
    let response = unary(client, "Unary", &b"hello unary"[..], &[]).await.expect("the unary call");
    assert_eq!(&response.get_ref()[..], b"hello unary");
    assert_eq!(meta(response.metadata(), "x-peer"), peer, "{:?}", response.metadata());
    assert_eq!(meta(response.metadata(), "x-attempt"), "1");
    assert_eq!(meta(response.metadata(), "grpc-status"), "0", "the trailers arrived");

    client.ready().await.unwrap();
    let call = client.server_streaming(
        request(Bytes::from_static(b"again"), &[("x-repeat", "5")]),
        method("ServerStream"),
        BytesCodec,
    );
    let mut stream = timeout(STEP, call).await.unwrap().expect("the server-streaming call").into_inner();
    for _ in 0..5 {
        assert_eq!(timeout(STEP, stream.message()).await.unwrap().unwrap().as_deref(), Some(&b"again"[..]));
    }
    assert_eq!(timeout(STEP, stream.message()).await.unwrap().unwrap(), None);
    let trailers = timeout(STEP, stream.trailers()).await.unwrap().unwrap().expect("trailers");
    assert_eq!((meta(&trailers, "x-count"), meta(&trailers, "x-peer")), ("5".to_string(), peer.clone()));

    let parts = futures::stream::iter([&b"one"[..], b"two", b"three"].map(Bytes::from_static));
    client.ready().await.unwrap();
    let call = client.client_streaming(request(parts, &[]), method("ClientStream"), BytesCodec);
    let response = timeout(STEP, call).await.unwrap().expect("the client-streaming call");
    assert_eq!(&response.get_ref()[..], b"onetwothree");
    assert_eq!(meta(response.metadata(), "x-count"), "3");

    bidi_in_lockstep(client, 10).await;

    let status = unary(client, "Fail", &b"please"[..], &[]).await.expect_err("Fail fails");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert_eq!(status.message(), FAIL_MESSAGE);
    assert_eq!(status.details(), FAIL_DETAILS);
    assert_eq!(meta(status.metadata(), "x-peer"), peer);
}

/// Sends each message only once the previous one's echo has arrived: anything that holds messages back until the
/// stream ends (a buffered body, a response not streamed) deadlocks, and the timeouts say so.
async fn bidi_in_lockstep(client: &mut Client, count: usize) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let outgoing = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    tx.send(Bytes::from("message 0")).await.unwrap();
    client.ready().await.unwrap();
    let call = client.streaming(request(outgoing, &[]), method("Bidi"), BytesCodec);
    let mut incoming = timeout(STEP, call).await.expect("the bidi call's head in time").unwrap().into_inner();
    for i in 0..count {
        let echo = timeout(STEP, incoming.message()).await.unwrap_or_else(|_| panic!("echo {i} held back"));
        assert_eq!(echo.unwrap(), Some(Bytes::from(format!("message {i}"))));
        if i + 1 < count {
            tx.send(Bytes::from(format!("message {}", i + 1))).await.unwrap();
        }
    }
    drop(tx);
    assert_eq!(timeout(STEP, incoming.message()).await.unwrap().unwrap(), None);
    let trailers = timeout(STEP, incoming.trailers()).await.unwrap().unwrap().expect("trailers");
    assert_eq!(meta(&trailers, "x-count"), count.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_peer_answers_every_call_kind_directly_over_h2c_and_tls() {
    let plain = PeerProcess::grpc(false).await;
    every_call_kind(&mut grpc::connect(plain.addr, None).await, plain.addr).await;
    let tls = PeerProcess::grpc(true).await;
    let client = ClientTls::ca_pem(tls.ca_pem.as_ref().unwrap(), peer::TLS_NAME, &[b"h2"]);
    every_call_kind(&mut grpc::connect(tls.addr, Some(&client)).await, tls.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_of_every_kind_pass_through_an_http2_backend_with_their_trailers_and_statuses() {
    let peer = PeerProcess::grpc(false).await;
    let dataplane = dataplane_to(&[peer.addr], false).await;
    every_call_kind(&mut grpc::connect(dataplane.addr, None).await, peer.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_pass_through_an_http2_backend_over_tls() {
    let peer = PeerProcess::grpc(true).await;
    let dataplane = dataplane_to(&[peer.addr], true).await;
    every_call_kind(&mut grpc::connect(dataplane.addr, None).await, peer.addr).await;
    peer.lines.wait_for("sni 1 ", STEP).await;
}

/// The value of `key=` on a peer's `call` line.
fn field(line: &str, key: &str) -> String {
    let prefix = format!("{key}=");
    line.split(' ').find_map(|w| w.strip_prefix(prefix.as_str())).unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_peer_hangs_a_first_attempt_until_killed_and_answers_a_later_one_directly() {
    let mut first = PeerProcess::grpc(false).await;
    let mut client = grpc::connect(first.addr, None).await;
    let call = tokio::spawn(async move { unary(&mut client, "Unary", &b"x"[..], &[("x-hang", "1")]).await });
    first.lines.wait_for("hanging 1 /holdfast.test.Echo/Unary", STEP).await;
    first.kill().await;
    assert!(call.await.unwrap().is_err(), "a call whose server died fails");
    let second = PeerProcess::grpc(false).await;
    let mut client = grpc::connect(second.addr, None).await;
    let replay = [("x-hang", "1"), ("x-holdfast-attempt", "2")];
    let response = unary(&mut client, "Unary", &b"x"[..], &replay).await.expect("attempt 2 is answered");
    assert_eq!(meta(response.metadata(), "x-attempt"), "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unary_call_is_replayed_on_the_other_endpoint_when_the_first_is_killed_before_answering() {
    let mut peers = [PeerProcess::grpc(false).await, PeerProcess::grpc(false).await];
    let dataplane = dataplane_to(&[peers[0].addr, peers[1].addr], false).await;
    let mut client = grpc::connect(dataplane.addr, None).await;
    let call = tokio::spawn(async move { unary(&mut client, "Unary", &b"replay me"[..], &[("x-hang", "1")]).await });
    let hung = tokio::select! {
        _ = peers[0].lines.wait_for("hanging ", STEP) => 0,
        _ = peers[1].lines.wait_for("hanging ", STEP) => 1,
    };
    peers[hung].kill().await;
    let response = call.await.unwrap().expect("the replay answers");
    let other = &peers[1 - hung];
    assert_eq!(&response.get_ref()[..], b"replay me");
    assert_eq!(meta(response.metadata(), "x-peer"), other.addr.to_string());
    assert_eq!(meta(response.metadata(), "x-attempt"), "2", "{:?}", response.metadata());
    // The peers print before they answer, but the test reads their output in a task of its own: wait for it.
    let hung_call = peers[hung].lines.wait_for("call ", STEP).await;
    let answered = other.lines.wait_for("call ", STEP).await;
    assert_eq!(field(&answered, "attempt"), "2");
    assert_eq!(field(&answered, "request-id"), field(&hung_call, "request-id"), "one request, two attempts");
    assert!(!field(&answered, "request-id").is_empty());
}

/// 100 unary calls at once on `client`'s one connection, each answered with its own message.
async fn hundred_concurrent_calls(client: &Client) {
    let calls = (0..100).map(|i| {
        let mut client = client.clone();
        async move {
            let message = format!("call {i}");
            let response = unary(&mut client, "Unary", message.clone(), &[]).await.expect("the call");
            assert_eq!(response.into_inner(), Bytes::from(message));
        }
    });
    timeout(STEP * 3, futures::future::join_all(calls)).await.expect("100 calls in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_calls_over_one_connection_reach_the_peer_on_one_connection_directly() {
    let peer = PeerProcess::grpc(false).await;
    hundred_concurrent_calls(&grpc::connect(peer.addr, None).await).await;
    peer.lines.wait_for_nth(100, STEP, |l| l.starts_with("call ")).await;
    assert_eq!(peer.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_grpc_calls_from_one_client_connection_share_one_upstream_connection() {
    let peer = PeerProcess::grpc(false).await;
    let dataplane = dataplane_to(&[peer.addr], false).await;
    hundred_concurrent_calls(&grpc::connect(dataplane.addr, None).await).await;
    peer.lines.wait_for_nth(100, STEP, |l| l.starts_with("call ")).await;
    assert_eq!(
        peer.connections(),
        1,
        "multiplexed on one upstream connection: {:?}",
        peer.lines.starting_with("connection ")
    );
}

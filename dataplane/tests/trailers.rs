//! Trailers across HTTP versions to an Http2 backend (`holdfast-grpc-peer`'s HTTP echo, which reports the request
//! trailers it got and sends trailers of its own): request trailers of an HTTP/1.1 client's chunked body reach the
//! upstream, and the upstream's response trailers reach an HTTP/2 client. The `…_directly` test proves both clients
//! against the peer without the dataplane.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use sha2::Digest;
use std::net::SocketAddr;
use support::routes::routed;
use support::ws::STEP;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BODY: &str = "hello trailers";

/// POSTs [`BODY`] chunked with a declared `x-checksum` trailer and `TE: trailers`, as an HTTP/1.1 client that
/// computes a checksum while it streams would; returns the status and the response body (chunked or not).
async fn http1_post_with_trailers(addr: SocketAddr) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (first, second) = BODY.split_at(5);
    let request = format!(
        "POST /trailers HTTP/1.1\r\nHost: trailers.test\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\
         TE: trailers\r\nConnection: TE, close\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\nx-checksum: {}\r\n\r\n",
        first.len(),
        second.len(),
        sha256(BODY)
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(STEP, tcp.read_to_end(&mut response)).await.expect("the response in time").unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    (status, if chunked { dechunk(body) } else { body.to_string() })
}

/// The data of a chunked body (its trailers, if any, are left out).
fn dechunk(mut rest: &str) -> String {
    let mut data = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        data.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    data
}

fn sha256(text: &str) -> String {
    support::client::hex(&sha2::Sha256::digest(text.as_bytes()))
}

/// POSTs [`BODY`] over h2c; returns the response's JSON and its trailers.
async fn http2_post(addr: SocketAddr) -> (Value, http::HeaderMap) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(connection);
    let request = http::Request::post("http://trailers.test/trailers").body(Full::new(Bytes::from(BODY))).unwrap();
    let response = tokio::time::timeout(STEP, sender.send_request(request)).await.expect("a head in time").unwrap();
    assert_eq!(response.status(), 200);
    let collected =
        tokio::time::timeout(STEP, response.into_body().collect()).await.expect("the body in time").unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    (serde_json::from_slice(&collected.to_bytes()).unwrap(), trailers)
}

fn check_trailers_arrived(described: &Value) {
    assert_eq!(described["sha256"], sha256(BODY), "{described}");
    assert_eq!(
        described["trailers"]["x-checksum"],
        sha256(BODY),
        "the request trailer reached the upstream: {described}"
    );
}

fn check_response_trailers(trailers: &http::HeaderMap, peer: SocketAddr) {
    assert_eq!(
        trailers.get("x-body-sha256").map(|v| v.to_str().unwrap().to_string()),
        Some(sha256(BODY)),
        "{trailers:?}"
    );
    assert_eq!(trailers.get("x-peer").unwrap(), peer.to_string().as_str());
}

async fn dataplane_to(peer: SocketAddr) -> Harness {
    Harness::start(Some(&routed(1, &[peer], json!({"protocol": "Http2"}), json!({})).to_string()), 0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_peer_reports_request_trailers_and_sends_response_trailers_directly() {
    let peer = PeerProcess::grpc(false).await;
    let (status, body) = http1_post_with_trailers(peer.addr).await;
    assert_eq!(status, 200, "{body}");
    check_trailers_arrived(&serde_json::from_str(&body).unwrap());
    let (described, trailers) = http2_post(peer.addr).await;
    assert_eq!(described["sha256"], sha256(BODY));
    check_response_trailers(&trailers, peer.addr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_trailers_of_a_chunked_http1_body_reach_an_http2_upstream() {
    let peer = PeerProcess::grpc(false).await;
    let dataplane = dataplane_to(peer.addr).await;
    let (status, body) = http1_post_with_trailers(dataplane.addr).await;
    assert_eq!(status, 200, "{body}");
    check_trailers_arrived(&serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_trailers_of_an_http2_upstream_reach_an_http2_client() {
    let peer = PeerProcess::grpc(false).await;
    let dataplane = dataplane_to(peer.addr).await;
    let (described, trailers) = http2_post(dataplane.addr).await;
    assert_eq!(described["sha256"], sha256(BODY), "{described}");
    check_response_trailers(&trailers, peer.addr);
}

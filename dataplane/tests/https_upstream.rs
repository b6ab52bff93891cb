//! HTTPS upstreams: `holdfast-hash-upstream` serving TLS with a certificate from a CA of its own. Uploads (Buffered
//! and Tee, checked by SHA-256) and a GET with verification off and with it on against the right `caPem`; a wrong
//! CA is a 502 whose body and log line name the TLS failure, with no request reaching the upstream and no retry;
//! SNI sent only when asked. The `…_directly` test proves the upstream and the TLS clients without the dataplane.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::time::Duration;
use support::client::payload_sha256;
use support::routes::routed;
use support::tls::{unrelated_ca_pem, ClientTls};
use support::upstream::deliveries;
use support::ws::STEP;
use support::*;

/// The name the upstream's certificate is made for.
const NAME: &str = "upstream.test";

/// POSTs `body` over HTTP/1.1 through `tls` to `addr`; returns the upstream's JSON answer.
async fn post_directly(addr: std::net::SocketAddr, tls: &ClientTls, body: &'static [u8]) -> Result<Value, String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio::time::timeout(STEP, tls.connect(tcp)).await.unwrap().map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(connection);
    let request = http::Request::post("/up").header("host", NAME).body(Full::new(Bytes::from_static(body))).unwrap();
    let response = tokio::time::timeout(STEP, sender.send_request(request)).await.unwrap().unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Ok(serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_upstream_serves_tls_reports_sni_and_is_refused_by_a_client_of_another_ca_directly() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start_tls("127.0.0.1:0", &dir.path().join("d.jsonl"), NAME, &[]).await;
    let ca = upstream.ca_pem.clone().unwrap();
    let answer = post_directly(upstream.addr, &ClientTls::ca_pem(&ca, NAME, &[b"http/1.1"]), b"over tls").await;
    assert_eq!(answer.unwrap()["bytes"], 8);
    upstream.lines.wait_for(&format!("sni {NAME}"), STEP).await;
    let answer = post_directly(upstream.addr, &ClientTls::ca_pem_without_sni(&ca, NAME, &[b"http/1.1"]), b"x").await;
    assert_eq!(answer.unwrap()["bytes"], 1);
    upstream.lines.wait_for("sni none", STEP).await;
    let refused =
        post_directly(upstream.addr, &ClientTls::ca_pem(&unrelated_ca_pem(), NAME, &[b"http/1.1"]), b"x").await;
    assert!(refused.unwrap_err().contains("UnknownIssuer"));
    upstream.lines.wait_for("tls handshake failed", STEP).await;
    assert_eq!(deliveries(&dir.path().join("d.jsonl")).len(), 2, "the refused client sent no request");
}

/// Backend fields for TLS to the upstream with these settings.
fn tls(verify: bool, ca_pem: Option<&str>, sni: bool) -> Value {
    json!({"tls": {"serverName": NAME, "verify": verify, "caPem": ca_pem, "sni": sni}})
}

/// A GET, then a Buffered and a Tee upload through `dataplane`, each checked by the upstream's hash.
async fn uploads_and_get_arrive(dataplane: &Harness, upstream: &UpstreamProcess, log: &std::path::Path) {
    let (status, body) = get(dataplane.addr, "/").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    for (path, len) in [("/buffered", 3 * MB), ("/tee", 5 * MB)] {
        let result = upload(dataplane.addr, Upload::new(path, len)).await.unwrap();
        assert_eq!(result.status, 200, "{}", result.text());
        assert_eq!(result.json()["sha256"], payload_sha256(len).as_str(), "{path}");
    }
    assert_eq!(deliveries(log).len(), 2);
    upstream.lines.wait_for("sni ", STEP).await;
}

/// Two routes, `/buffered` and `/tee`, to the TLS upstream with `backend_tls`.
fn snapshot_with(upstream: &UpstreamProcess, backend_tls: Value) -> String {
    let mut snapshot = routed(1, &[upstream.addr], backend_tls, json!({"mode": "Buffered"}));
    snapshot["policies"]["tee"] = json!({"mode": "Tee"});
    let tee = json!({"path": "/tee", "pathType": "Prefix", "backend": "b", "policy": "tee"});
    snapshot["hosts"][0]["paths"].as_array_mut().unwrap().insert(0, tee);
    snapshot.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_without_verification_carries_buffered_and_tee_uploads_and_gets() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("d.jsonl");
    let upstream = UpstreamProcess::start_tls("127.0.0.1:0", &log, NAME, &[]).await;
    let dataplane = Harness::start(Some(&snapshot_with(&upstream, tls(false, None, false))), 0).await;
    uploads_and_get_arrive(&dataplane, &upstream, &log).await;
    dataplane.assert_spool_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_verified_against_its_ca_pem_carries_buffered_and_tee_uploads_and_gets() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("d.jsonl");
    let upstream = UpstreamProcess::start_tls("127.0.0.1:0", &log, NAME, &[]).await;
    let backend = tls(true, upstream.ca_pem.as_deref(), false);
    let dataplane = Harness::start(Some(&snapshot_with(&upstream, backend)), 0).await;
    uploads_and_get_arrive(&dataplane, &upstream, &log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_of_an_unknown_ca_is_a_502_naming_the_tls_failure_in_body_and_log_and_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("d.jsonl");
    let upstream = UpstreamProcess::start_tls("127.0.0.1:0", &log, NAME, &[]).await;
    let snapshot_file = dir.path().join("snapshot.json");
    std::fs::write(&snapshot_file, snapshot_with(&upstream, tls(true, Some(&unrelated_ca_pem()), true))).unwrap();
    let dataplane = DataplaneProcess::start(dir.path(), &snapshot_file, &[]).await;
    let result =
        tokio::time::timeout(STEP, upload(dataplane.addr, Upload::new("/buffered", 1000))).await.unwrap().unwrap();
    let failure = format!("TLS handshake with {} failed", upstream.addr);
    assert_eq!(result.status, 502, "{}", result.text());
    assert!(result.text().contains(&failure) && result.text().contains("UnknownIssuer"), "{}", result.text());
    let logged = dataplane.log.wait_for_nth(1, STEP, |l| l.contains(&failure)).await;
    assert!(logged.contains("UnknownIssuer"), "{logged}");
    upstream.lines.wait_for("tls handshake failed", STEP).await;
    // A retry would have come before the 502.
    assert_eq!(upstream.lines.starting_with("tls handshake failed").len(), 1, "a certificate refused is not retried");
    assert!(deliveries(&log).is_empty(), "no request reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_is_sent_to_an_https_upstream_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start_tls("127.0.0.1:0", &dir.path().join("d.jsonl"), NAME, &[]).await;
    for (sni, expected) in [(true, format!("sni {NAME}")), (false, "sni none".to_string())] {
        // A dataplane of its own each time, so that no pooled connection (with the other setting) is reused.
        let dataplane = Harness::start(Some(&snapshot_with(&upstream, tls(false, None, sni))), 0).await;
        let before = upstream.lines.starting_with("sni ").len();
        assert_eq!(get(dataplane.addr, "/").await.0, 200);
        let line = upstream.lines.wait_for_nth(before + 1, Duration::from_secs(5), |l| l.starts_with("sni ")).await;
        assert_eq!(line, expected, "sni: {sni}");
    }
}

//! TLS by SNI from the snapshot, HTTP/2 over TLS (ALPN) and h2c, with the same spooling and replay as HTTP/1.1.
//! Certificates are made in the test with rcgen; the clients are hyper's own, over tokio-rustls.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use support::client::Payload;
use support::upstream::deliveries;
use support::*;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

struct TestCert {
    pem: String,
    key: String,
    der: CertificateDer<'static>,
}

fn cert(host: &str) -> TestCert {
    let made = rcgen::generate_simple_self_signed(vec![host.to_string()]).unwrap();
    TestCert { pem: made.cert.pem(), key: made.signing_key.serialize_pem(), der: made.cert.der().clone() }
}

/// A snapshot like [`snapshot`] with a certificate for `upload.test`.
fn tls_snapshot(version: u64, upstream: SocketAddr, cert: &TestCert, policy: &str) -> String {
    let mut json: serde_json::Value = serde_json::from_str(&snapshot(version, &[upstream], policy)).unwrap();
    json["tls"] = serde_json::json!([{"hosts": ["upload.test"], "certPem": cert.pem, "keyPem": cert.key}]);
    json.to_string()
}

fn connector(trusted: &CertificateDer<'static>, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

type Sender = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

async fn h2_over_tls(addr: SocketAddr, trusted: &CertificateDer<'static>) -> Sender {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("upload.test").unwrap();
    let tls = connector(trusted, &[b"h2"]).connect(name, tcp).await.expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "ALPN picks h2");
    let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    sender
}

fn payload(len: usize) -> Bytes {
    let mut bytes = vec![0u8; len];
    Payload::new(len as u64).fill(&mut bytes);
    Bytes::from(bytes)
}

async fn post(sender: &mut Sender, scheme: &str, body: Bytes) -> (u16, serde_json::Value) {
    let request = http::Request::post(format!("{scheme}://upload.test/up")).body(Full::new(body)).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    support::client::hex(&sha2::Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_over_tls_uploads_are_spooled_and_replayed_through_an_upstream_kill() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("d.jsonl");
    let mut upstream = UpstreamProcess::start("127.0.0.1:0", &log, &["--read-rate", "100000000"]).await;
    let cert = cert("upload.test");
    let dataplane = Harness::start(Some(&tls_snapshot(1, upstream.addr, &cert, r#"{"mode":"Buffered"}"#)), 0).await;
    let mut sender = h2_over_tls(dataplane.tls_addr, &cert.der).await;
    let body = payload(50_000_000);
    let expected = sha256(&body);
    let request = tokio::spawn(async move { post(&mut sender, "https", body).await });
    upstream.wait_for_progress(20_000_000).await;
    upstream.kill().await;
    upstream.restart().await;
    let (status, answer) = request.await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["sha256"], expected.as_str());
    assert_eq!(answer["attempt"], 2);
    assert_eq!(deliveries(&log).len(), 1);
    dataplane.assert_spool_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_with_prior_knowledge_and_http1_over_tls_are_served_too() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let cert = cert("upload.test");
    let dataplane = Harness::start(Some(&tls_snapshot(1, upstream.addr, &cert, r#"{"mode":"Tee"}"#)), 0).await;
    let tcp = TcpStream::connect(dataplane.addr).await.unwrap();
    let (mut h2c, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    // Larger than the bodies a plain HTTP/1 connection reads past hyper: neither HTTP/2 nor TLS may do that (the
    // socket carries other streams, or ciphertext), and both must keep their connection for the next request.
    let body = payload(12_000_000);
    let (status, answer) = post(&mut h2c, "http", body.clone()).await;
    assert_eq!((status, answer["sha256"].as_str()), (200, Some(sha256(&body).as_str())));
    let (status, _) = post(&mut h2c, "http", Bytes::from_static(b"again")).await;
    assert_eq!(status, 200);

    let tcp = TcpStream::connect(dataplane.tls_addr).await.unwrap();
    let name = ServerName::try_from("upload.test").unwrap();
    let tls = connector(&cert.der, &[b"http/1.1"]).connect(name, tcp).await.unwrap();
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    for body in [body, Bytes::from_static(b"again")] {
        let expected = sha256(&body);
        let request = http::Request::post("/up").header("host", "upload.test").body(Full::new(body)).unwrap();
        // hyper's client takes the next request only once its connection task has seen the last response end.
        h1.ready().await.unwrap();
        let response = h1.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("connection").is_none(), "TLS connections stay open after a large body");
        let answer: serde_json::Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(answer["sha256"], expected.as_str());
    }
    dataplane.assert_spool_clean().await;
}

/// Accepts any certificate and records the one the server presented.
#[derive(Debug)]
struct Recorder(std::sync::Mutex<Option<CertificateDer<'static>>>);

impl rustls::client::danger::ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self.0.lock().unwrap() = Some(end_entity.clone().into_owned());
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
    }
}

/// The certificate the server presents for `sni`.
async fn presented(addr: SocketAddr, sni: &str) -> CertificateDer<'static> {
    let recorder = Arc::new(Recorder(std::sync::Mutex::new(None)));
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    TlsConnector::from(Arc::new(config)).connect(name, tcp).await.expect("a handshake, not a reset");
    let der = recorder.0.lock().unwrap().clone().unwrap();
    der
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_follow_sni_fall_back_to_a_default_and_are_replaced_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let (first, second) = (cert("upload.test"), cert("upload.test"));
    let dataplane = Harness::start(Some(&tls_snapshot(1, upstream.addr, &first, "{}")), 0).await;
    assert_eq!(presented(dataplane.tls_addr, "upload.test").await, first.der);
    let unknown = presented(dataplane.tls_addr, "other.test").await;
    assert_ne!(unknown, first.der, "an unknown name gets the default certificate");

    let mut open = h2_over_tls(dataplane.tls_addr, &first.der).await;
    let (status, reason) = push(dataplane.admin, &tls_snapshot(2, upstream.addr, &second, "{}")).await;
    assert_eq!(status, 200, "{reason}");
    assert_eq!(presented(dataplane.tls_addr, "upload.test").await, second.der, "new handshakes get the new one");
    let (status, _) = post(&mut open, "https", payload(1000)).await;
    assert_eq!(status, 200, "a connection opened before the change keeps working");

    let mut malformed: serde_json::Value =
        serde_json::from_str(&tls_snapshot(3, upstream.addr, &second, "{}")).unwrap();
    malformed["tls"][0]["certPem"] = serde_json::json!("not PEM at all");
    let (status, reason) = push(dataplane.admin, &malformed.to_string()).await;
    assert_eq!(status, 400);
    assert!(reason.contains("tls[0]") && reason.contains("no CERTIFICATE"), "{reason}");
    assert_eq!(presented(dataplane.tls_addr, "upload.test").await, second.der, "the refused snapshot changed nothing");

    // A key that does not belong to its certificate costs only that entry: the snapshot is accepted, its hosts get
    // the default certificate, and routes keep serving.
    let mut mismatched: serde_json::Value =
        serde_json::from_str(&tls_snapshot(4, upstream.addr, &second, "{}")).unwrap();
    mismatched["tls"][0]["keyPem"] = serde_json::json!(first.key);
    assert_eq!(push(dataplane.admin, &mismatched.to_string()).await.0, 200);
    let served = presented(dataplane.tls_addr, "upload.test").await;
    assert!(served != second.der && served != first.der, "the default certificate");
    assert_eq!(get(dataplane.addr, "/").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_with_redirect_https_send_plain_http_clients_to_https() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let mut json: serde_json::Value = serde_json::from_str(&snapshot(1, &[upstream.addr], "{}")).unwrap();
    json["hosts"][0]["paths"][0]["redirectHttps"] = serde_json::json!(true);
    let dataplane = Harness::start(Some(&json.to_string()), 0).await;
    let result = upload(dataplane.addr, Upload::new("/photos?x=1", 1000)).await.unwrap();
    assert_eq!(result.status, 308);
    assert!(result.head.contains("location: https://upload.test/photos?x=1"), "{}", result.head);
}

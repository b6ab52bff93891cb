//! TLS to a backend's endpoints (rustls): one client configuration per distinct setting, shared by every backend and
//! snapshot that asks for the same one, so that a config push neither rebuilds it nor makes pooled connections
//! unusable.
//!
//! The defaults are ingress-nginx's, which migrating users expect: no certificate verification and no SNI. With
//! `verify` the chain is checked against the backend's CA (`proxy-ssl-secret`'s `ca.crt`) or, without one, the
//! system's trust store, and the certificate must be valid for `serverName`.
//!
//! A failed handshake is classified for the replay decision: rustls refusing the peer (a certificate that does not
//! verify, an alert, a plaintext server) is a configuration problem that another endpoint will not solve, so it
//! becomes a 502 at once, with rustls's reason in the body and the log; a connection that breaks during the
//! handshake sent no request, so it is retried like a refused connect.

use crate::upstream::failure::{Failure, FailureKind};
use holdfast_snapshot::{UpstreamProtocol, UpstreamTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The TLS side of one backend setting.
pub struct TlsClient {
    /// `Err`: the setting cannot be used (say a client key rustls refuses); every connect fails with the reason.
    config: Result<Arc<ClientConfig>, String>,
    server_name: ServerName<'static>,
    protocol: UpstreamProtocol,
    /// Identifies the setting in the connection pool: a connection made under another setting (another CA, name or
    /// client certificate) is never handed to this one.
    pub key: u64,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient").field("server_name", &self.server_name).field("key", &self.key).finish()
    }
}

/// Settings in use, so that every backend with the same setting shares one configuration.
type Cache = Mutex<HashMap<(UpstreamTls, UpstreamProtocol), Weak<TlsClient>>>;

impl TlsClient {
    /// The client for a backend's setting (validated by the snapshot: the name parses, PEM holds what it should).
    pub fn for_backend(tls: &UpstreamTls, protocol: UpstreamProtocol) -> Arc<TlsClient> {
        static CACHE: OnceLock<Cache> = OnceLock::new();
        let mut cache = CACHE.get_or_init(Cache::default).lock().unwrap_or_else(|p| p.into_inner());
        let wanted = (tls.clone(), protocol);
        if let Some(client) = cache.get(&wanted).and_then(Weak::upgrade) {
            return client;
        }
        cache.retain(|_, client| client.strong_count() > 0);
        let client = Arc::new(TlsClient::new(tls, protocol));
        cache.insert(wanted, Arc::downgrade(&client));
        client
    }

    fn new(tls: &UpstreamTls, protocol: UpstreamProtocol) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        (tls, protocol).hash(&mut hasher);
        // Validated with the snapshot; an IP address or a DNS name either way.
        let server_name = ServerName::try_from(tls.server_name.clone())
            .unwrap_or_else(|_| ServerName::try_from("invalid.name").expect("a valid DNS name"));
        let config = client_config(tls, protocol).map(Arc::new);
        if let Err(reason) = &config {
            let source = tls.source.as_deref().unwrap_or("no source");
            tracing::warn!(reason, source, "upstream TLS settings not usable; connections to these endpoints fail");
        }
        TlsClient { config, server_name, protocol, key: hasher.finish() | 1 }
    }

    /// A TLS connection over `tcp`, to `addr` (for messages). The handshake's time counts against the caller's
    /// connect timeout.
    pub async fn connect(&self, tcp: TcpStream, addr: SocketAddr) -> Result<TlsStream<TcpStream>, Failure> {
        let config = self.config.as_ref().map_err(|reason| {
            Failure::new(
                FailureKind::TlsHandshake,
                format!("TLS handshake with {addr} failed: unusable settings: {reason}"),
            )
        })?;
        let stream = TlsConnector::from(config.clone()).connect(self.server_name.clone(), tcp).await.map_err(|e| {
            match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                Some(refused) => {
                    Failure::new(FailureKind::TlsHandshake, format!("TLS handshake with {addr} failed: {refused}"))
                }
                // The connection broke before a byte of the request went out: as good as refused.
                None => Failure::new(FailureKind::ConnectRefused, format!("{addr}: TLS handshake: {e}")),
            }
        })?;
        let alpn = stream.get_ref().1.alpn_protocol();
        if self.protocol == UpstreamProtocol::Http2 && alpn.is_some_and(|chosen| chosen != b"h2") {
            let chosen = String::from_utf8_lossy(alpn.unwrap_or_default()).into_owned();
            return Err(Failure::new(
                FailureKind::TlsHandshake,
                format!("TLS handshake with {addr} failed: the endpoint chose ALPN {chosen:?}, not h2 (HTTP/2)"),
            ));
        }
        Ok(stream)
    }
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

fn client_config(tls: &UpstreamTls, protocol: UpstreamProtocol) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match (tls.verify, &tls.ca_pem) {
        (false, _) => builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider()))),
        (true, Some(pem)) => builder.with_root_certificates(roots_from_pem(pem)?),
        (true, None) => builder.with_root_certificates(system_roots()?),
    };
    let mut config = match (&tls.client_cert_pem, &tls.client_key_pem) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("client certificate PEM: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| format!("client key PEM: {e}"))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("client certificate: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    // Only what the backend's protocol can carry: a WebSocket needs HTTP/1.1, gRPC needs h2.
    config.alpn_protocols = match protocol {
        UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
        UpstreamProtocol::Http2 => vec![b"h2".to_vec()],
    };
    config.enable_sni = tls.sni;
    Ok(config)
}

fn roots_from_pem(pem: &str) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("CA PEM: {e}"))?;
        roots.add(cert).map_err(|e| format!("CA certificate: {e}"))?;
    }
    Ok(Arc::new(roots))
}

/// The system's trust store, read once: the image's `ca-certificates` (or `SSL_CERT_FILE`/`SSL_CERT_DIR`).
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            for error in &loaded.errors {
                tracing::warn!(%error, "reading the system's trust store");
            }
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(loaded.certs);
            match added {
                0 => Err("verification is on, no CA was given and the system's trust store is empty".to_string()),
                _ => Ok(Arc::new(roots)),
            }
        })
        .clone()
}

/// ingress-nginx's default (`proxy-ssl-verify: off`): any certificate is accepted. The handshake's signatures are
/// still checked, so the connection is encrypted to whoever holds the certificate's key; only who that is goes
/// unchecked.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

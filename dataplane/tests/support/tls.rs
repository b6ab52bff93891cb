//! TLS for the test clients: trust a peer's CA or a certificate made in the test, offer the ALPN protocols asked
//! for; and certificates for the dataplane's TLS listener, put into a snapshot.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A client's TLS settings: whom it trusts, the name it asks for, the protocols it offers.
#[derive(Clone)]
pub struct ClientTls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl ClientTls {
    /// Trusting the certificates of `ca_pem` (a peer's CA) for `name`.
    pub fn ca_pem(ca_pem: &str, name: &str, alpn: &[&[u8]]) -> Self {
        Self::trusting(pem_certificates(ca_pem), name, alpn)
    }

    /// Trusting exactly `certificates` for `name`.
    pub fn trusting(certificates: Vec<CertificateDer<'static>>, name: &str, alpn: &[&[u8]]) -> Self {
        let config = Self::config(certificates, alpn);
        ClientTls {
            connector: TlsConnector::from(Arc::new(config)),
            name: ServerName::try_from(name.to_string()).unwrap(),
        }
    }

    fn config(certificates: Vec<CertificateDer<'static>>, alpn: &[&[u8]]) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        for certificate in certificates {
            roots.add(certificate).unwrap();
        }
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }

    /// As [`ClientTls::ca_pem`], sending no SNI (as an upstream client with `sni: false` does).
    pub fn ca_pem_without_sni(ca_pem: &str, name: &str, alpn: &[&[u8]]) -> Self {
        let mut config = Self::config(pem_certificates(ca_pem), alpn);
        config.enable_sni = false;
        ClientTls {
            connector: TlsConnector::from(Arc::new(config)),
            name: ServerName::try_from(name.to_string()).unwrap(),
        }
    }

    pub async fn connect(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.connector.connect(self.name.clone(), tcp).await
    }
}

/// A self-signed certificate for the dataplane's TLS listener.
pub struct ListenerCert {
    pub pem: String,
    pub key: String,
    pub der: CertificateDer<'static>,
    pub host: String,
}

impl ListenerCert {
    pub fn new(host: &str) -> Self {
        let made = rcgen::generate_simple_self_signed(vec![host.to_string()]).unwrap();
        let (pem, key) = (made.cert.pem(), made.signing_key.serialize_pem());
        ListenerCert { pem, key, der: made.cert.der().clone(), host: host.to_string() }
    }

    /// A client of the dataplane's TLS listener trusting this certificate.
    pub fn client(&self, alpn: &[&[u8]]) -> ClientTls {
        ClientTls::trusting(vec![self.der.clone()], &self.host, alpn)
    }

    /// Adds this certificate to a snapshot's `tls` entries.
    pub fn add_to(&self, snapshot: &mut serde_json::Value) {
        let entry = serde_json::json!({"hosts": [self.host], "certPem": self.pem, "keyPem": self.key});
        match snapshot["tls"].as_array_mut() {
            Some(entries) => entries.push(entry),
            None => snapshot["tls"] = serde_json::json!([entry]),
        }
    }
}

/// The certificates of a PEM text.
pub fn pem_certificates(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes()).map(|c| c.expect("a PEM certificate")).collect()
}

/// The PEM of a CA that signed nothing the tests serve: what verifying against the wrong CA looks like.
pub fn unrelated_ca_pem() -> String {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem()
}

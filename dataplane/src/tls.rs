//! TLS for the client listener: certificates chosen by SNI from the snapshot, a default certificate when none
//! matches, ALPN `h2` and `http/1.1`.
//!
//! The certificates live in a [`CertStore`] that the rustls config reads on every handshake, so a new snapshot
//! replaces them without touching connections already open. rustls itself supplies the secure defaults: TLS 1.2 and
//! 1.3 only, and only AEAD cipher suites with forward secrecy.

use holdfast_snapshot::TlsCertificate;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Why the TLS listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the default certificate cannot be used: {0}")]
    DefaultCertificate(String),
    #[error("TLS configuration failed: {0}")]
    Config(#[from] rustls::Error),
}

/// Certificates by host name; compiled from one snapshot.
#[derive(Debug, Default)]
pub struct CertMap {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the suffix after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl CertMap {
    /// Loads the certificates of a validated snapshot. An entry whose key cannot be used (it does not match the
    /// certificate, or its algorithm is not supported) costs only its own hosts, which get the default certificate:
    /// one bad Secret must not take every route down.
    pub fn compile(entries: &[TlsCertificate]) -> Self {
        let provider = provider();
        let mut map = CertMap::default();
        for (index, entry) in entries.iter().enumerate() {
            let key = match certified_key(entry, &provider) {
                Ok(key) => key,
                Err(reason) => {
                    let source = entry.source.as_deref().unwrap_or("no source");
                    tracing::warn!(index, source, reason, hosts = ?entry.hosts, "TLS certificate not usable; its hosts get the default certificate");
                    continue;
                }
            };
            for host in &entry.hosts {
                let host = host.to_ascii_lowercase();
                match host.strip_prefix("*.") {
                    Some(suffix) => map.wildcard.insert(suffix.to_string(), key.clone()),
                    None => map.exact.insert(host, key.clone()),
                };
            }
        }
        map
    }

    fn find(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let name = server_name.to_ascii_lowercase();
        self.exact
            .get(&name)
            .or_else(|| name.split_once('.').and_then(|(_, suffix)| self.wildcard.get(suffix)))
            .cloned()
    }
}

fn certified_key(entry: &TlsCertificate, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(entry.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate PEM: {e}"))?;
    if chain.is_empty() {
        return Err("certificate PEM holds no certificate".to_string());
    }
    let key = PrivateKeyDer::from_pem_slice(entry.key_pem.as_bytes()).map_err(|e| format!("key PEM: {e}"))?;
    CertifiedKey::from_der(chain, key, provider).map(Arc::new).map_err(|e| e.to_string())
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// What the TLS listener serves: the snapshot's certificates and a default one.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertMap>>,
    default: Arc<CertifiedKey>,
}

impl CertStore {
    /// A store whose default certificate — served when no snapshot certificate matches the client's SNI — is
    /// `default` (the `--default-cert`/`--default-key` files), or else one generated at start, self-signed for
    /// `holdfast.invalid` like other ingress controllers' "fake" certificate: clients that ask for an unknown name
    /// get a handshake, not a reset.
    pub fn new(default: Option<TlsCertificate>) -> Result<Self, TlsError> {
        let entry = match default {
            Some(entry) => entry,
            None => {
                let generated = rcgen::generate_simple_self_signed(vec!["holdfast.invalid".to_string()])
                    .map_err(|e| TlsError::DefaultCertificate(e.to_string()))?;
                TlsCertificate {
                    hosts: Vec::new(),
                    cert_pem: generated.cert.pem(),
                    key_pem: generated.signing_key.serialize_pem(),
                    source: Some("generated default".to_string()),
                }
            }
        };
        let default = certified_key(&entry, &provider()).map_err(TlsError::DefaultCertificate)?;
        Ok(CertStore { current: RwLock::new(Arc::new(CertMap::default())), default })
    }

    /// Puts a snapshot's certificates in force for new handshakes.
    pub fn replace(&self, map: CertMap) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(map);
    }

    /// The rustls configuration of the TLS listener.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let map = self.current.read().unwrap_or_else(|p| p.into_inner()).clone();
        hello.server_name().and_then(|name| map.find(name)).or_else(|| Some(self.default.clone()))
    }
}

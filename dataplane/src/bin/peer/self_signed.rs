//! TLS for the test peers (`--tls-self-signed NAME --write-ca FILE`): a throw-away CA and a leaf for NAME signed
//! by it, made at start. The leaf (with the CA after it) is served; the CA's PEM is written to FILE, so that a test
//! can configure a verifying client (`caPem`) with it, and a verification failure can be provoked with another CA.
//!
//! A CA and a leaf rather than one self-signed certificate because that is what verification against `caPem` looks
//! like in a cluster (a private CA signing the Services' certificates), and webpki refuses a CA certificate used as
//! a server's leaf.

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The peers' TLS flags.
#[derive(clap::Args, Debug, Clone)]
pub struct TlsArgs {
    /// Serve TLS with a certificate for this name, signed by a CA made at start (needs --write-ca).
    #[arg(long, value_name = "NAME", requires = "write_ca")]
    pub tls_self_signed: Option<String>,
    /// Where to write that CA's certificate (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_self_signed")]
    pub write_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// The server configuration asked for, if any.
    pub fn server_config(&self, alpn: &[&[u8]]) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
        match (&self.tls_self_signed, &self.write_ca) {
            (Some(name), Some(ca_file)) => server_config(name, ca_file, alpn).map(Some),
            _ => Ok(None),
        }
    }
}

/// A server configuration presenting a leaf for `name`, with `alpn` offered in order; the CA goes to `ca_file`.
pub fn server_config(name: &str, ca_file: &Path, alpn: &[&[u8]]) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(DnType::CommonName, format!("holdfast test CA for {name}"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let leaf_key = KeyPair::generate()?;
    let mut leaf_params = CertificateParams::new(vec![name.to_string()]).context("the name for the certificate")?;
    leaf_params.distinguished_name.push(DnType::CommonName, name);
    let leaf = leaf_params.signed_by(&leaf_key, &ca)?;
    std::fs::write(ca_file, ca.pem()).with_context(|| format!("write the CA to {}", ca_file.display()))?;
    let chain: Vec<CertificateDer<'static>> = vec![leaf.der().clone(), ca.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The SNI a client sent, as the peers print it: the name, or `none`.
pub fn sni_of(connection: &rustls::ServerConnection) -> String {
    connection.server_name().unwrap_or("none").to_string()
}

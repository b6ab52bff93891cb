//! How the dataplane talks to a backend's endpoints: the HTTP version, and TLS with its verification settings.
//!
//! The controller chooses these from the Service port's `appProtocol` (KEP-3726) or, for users of ingress-nginx,
//! from its `backend-protocol` and `proxy-ssl-*` annotations. WebSocket and other HTTP/1.1 Upgrades are not a
//! protocol of their own here: any HTTP/1.1 backend may accept them, request by request.

use serde::{Deserialize, Serialize};

/// The HTTP version spoken to a backend's endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UpstreamProtocol {
    /// HTTP/1.1, with keep-alive; a request that asks for an Upgrade (WebSocket) becomes a tunnel on `101`.
    #[default]
    Http1,
    /// HTTP/2: with prior knowledge on a plain connection (h2c), or negotiated with ALPN `h2` over TLS. Requests
    /// are multiplexed over a few connections per endpoint; gRPC needs it.
    Http2,
}

impl UpstreamProtocol {
    pub fn is_default(&self) -> bool {
        *self == UpstreamProtocol::Http1
    }
}

/// TLS to a backend's endpoints (ingress-nginx's `backend-protocol: HTTPS`/`GRPCS` and its `proxy-ssl-*`
/// annotations). The defaults are ingress-nginx's: no verification, no SNI.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamTls {
    /// Verify the endpoint's certificate chain and that it is valid for `serverName` (`proxy-ssl-verify`).
    #[serde(default)]
    pub verify: bool,
    /// PEM certificates to trust when verifying (`ca.crt` of `proxy-ssl-secret`). Without them a verifying
    /// connection trusts the system's store (the image's `ca-certificates`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// The name the certificate must be valid for, and the SNI sent when `sni` is on (`proxy-ssl-name`; the
    /// controller's default is the Service's cluster name, `service.namespace.svc`). A DNS name or an IP address.
    pub server_name: String,
    /// Send `serverName` as SNI (`proxy-ssl-server-name`).
    #[serde(default)]
    pub sni: bool,
    /// A client certificate chain (PEM) for endpoints that ask for one (`tls.crt` of `proxy-ssl-secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_pem: Option<String>,
    /// Its private key (PEM; `tls.key` of `proxy-ssl-secret`). Never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_pem: Option<String>,
    /// Where the settings came from (for example `secret default/backend-ca`), for errors and logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Never prints PEM: snapshots are logged and compared in tests, and the client key is a secret.
impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("verify", &self.verify)
            .field("ca_pem", &self.ca_pem.as_ref().map(|pem| format!("<{} bytes>", pem.len())))
            .field("server_name", &self.server_name)
            .field("sni", &self.sni)
            .field("client_cert_pem", &self.client_cert_pem.as_ref().map(|pem| format!("<{} bytes>", pem.len())))
            .field("client_key_pem", &self.client_key_pem.as_ref().map(|_| "<redacted>"))
            .field("source", &self.source)
            .finish()
    }
}

impl UpstreamTls {
    /// Settings for `server_name` with every option at its default: no verification, no SNI.
    pub fn new(server_name: impl Into<String>) -> Self {
        UpstreamTls {
            verify: false,
            ca_pem: None,
            server_name: server_name.into(),
            sni: false,
            client_cert_pem: None,
            client_key_pem: None,
            source: None,
        }
    }

    /// Checks what can be checked without a crypto provider: the name, that the CA PEM holds certificates, and
    /// that a client certificate comes with exactly one key. The dataplane builds the TLS configuration on top.
    pub fn check(&self) -> Result<(), String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        if ServerName::try_from(self.server_name.as_str()).is_err() {
            return Err(format!("serverName {:?} is neither a DNS name nor an IP address", self.server_name));
        }
        let certificates = |what: &str, pem: &str| {
            let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{what} is malformed PEM: {e}"))?;
            match certs.is_empty() {
                true => Err(format!("{what} holds no CERTIFICATE block")),
                false => Ok(()),
            }
        };
        if let Some(ca) = &self.ca_pem {
            certificates("caPem", ca)?;
        }
        match (&self.client_cert_pem, &self.client_key_pem) {
            (None, None) => Ok(()),
            (Some(cert), Some(key)) => {
                certificates("clientCertPem", cert)?;
                PrivateKeyDer::from_pem_slice(key.as_bytes())
                    .map(drop)
                    .map_err(|e| format!("clientKeyPem holds no usable private key: {e}"))
            }
            _ => Err("clientCertPem and clientKeyPem must be given together".to_string()),
        }
    }
}

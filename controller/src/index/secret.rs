//! Secrets at the index boundary. The controller reads two kinds of Secret, through two watches with field
//! selectors, and keeps only the PEM keys it uses:
//!
//! - `kubernetes.io/tls`: `tls.crt`, `tls.key` (the listener's certificates, or a client certificate for an HTTPS
//!   upstream) and `ca.crt` when an issuer added one;
//! - `Opaque` with a `ca.crt`: ingress-nginx's `proxy-ssl-secret` is often made with `kubectl create secret generic
//!   --from-file=ca.crt=…`, with `tls.crt`/`tls.key` beside it for mutual TLS). Only those three keys are kept; an
//!   Opaque Secret without `ca.crt` is not kept at all, so other applications' credentials never enter the index.
//!
//! The two are separate kinds with separate stores because each watch relists on its own: a relist of the Opaque
//! watch must not drop the TLS Secrets.

use super::convert::Convert;
use super::model::{CaSecretModel, ObjectKey, Pem, TlsSecretModel};
use k8s_openapi::api::core::v1::Secret;

pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";
/// The type the API gives a Secret created without one (`kubectl create secret generic`).
pub const OPAQUE_SECRET_TYPE: &str = "Opaque";

/// A Secret read by the `type=Opaque` watch: the same API object, indexed into its own store.
#[derive(Debug, Clone)]
pub struct OpaqueSecret(pub Secret);

impl From<Secret> for OpaqueSecret {
    fn from(secret: Secret) -> Self {
        OpaqueSecret(secret)
    }
}

impl Convert for Secret {
    type Model = TlsSecretModel;
    fn convert(self, _: &ObjectKey, _: Option<&Self::Model>) -> Option<Self::Model> {
        if self.type_.as_deref() != Some(TLS_SECRET_TYPE) {
            return None;
        }
        Some(TlsSecretModel {
            cert_pem: pem(&self, "tls.crt"),
            key_pem: pem(&self, "tls.key"),
            ca_pem: pem(&self, "ca.crt"),
        })
    }
}

impl Convert for OpaqueSecret {
    type Model = CaSecretModel;
    fn convert(self, _: &ObjectKey, _: Option<&Self::Model>) -> Option<Self::Model> {
        let secret = self.0;
        // The API defaults an absent type to Opaque; manifests read from files may still lack it.
        if secret.type_.as_deref().is_some_and(|t| !t.is_empty() && t != OPAQUE_SECRET_TYPE) {
            return None;
        }
        let ca_pem = pem(&secret, "ca.crt")?;
        Some(CaSecretModel { ca_pem, cert_pem: pem(&secret, "tls.crt"), key_pem: pem(&secret, "tls.key") })
    }
}

/// One key of the Secret as PEM text; `None` when absent, blank or not UTF-8. `stringData` only exists in manifests
/// (the API server folds it into `data`), but the file source reads manifests.
fn pem(secret: &Secret, name: &str) -> Option<Pem> {
    let from_data = secret.data.as_ref().and_then(|d| d.get(name)).and_then(|v| String::from_utf8(v.0.clone()).ok());
    let from_string_data = || secret.string_data.as_ref().and_then(|d| d.get(name)).cloned();
    from_data.or_else(from_string_data).filter(|p| !p.trim().is_empty()).map(Pem)
}

//! Writing back to the cluster: UploadPolicy status, Ingress `status.loadBalancer`, and Warning events for what
//! translation reported. Only the leader writes ([`crate::lease`]). The writes go through [`ClusterWriter`], the
//! seam tests replace with a recording test double; [`kube_api`] is the real implementation.

pub mod conditions;
pub mod kube_api;
mod writer;

pub use writer::{run, Addresses, StatusWriter, RESYNC};

use crate::index::ObjectKey;
use crate::translate::Warning;
use holdfast_crds::UploadPolicyStatus;
use std::future::Future;

/// Why a write to the API failed; the writer logs it and tries again on the next change or resync.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {what}: {source}")]
pub struct WriteError {
    pub what: String,
    #[source]
    pub source: kube::Error,
}

/// The API calls the status writer makes.
pub trait ClusterWriter: Send + Sync {
    fn patch_policy_status(
        &self,
        key: &ObjectKey,
        status: &UploadPolicyStatus,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;

    /// Sets `status.loadBalancer.ingress` of an Ingress to these addresses (IPs or host names).
    fn patch_ingress_addresses(
        &self,
        key: &ObjectKey,
        addresses: &[String],
    ) -> impl Future<Output = Result<(), WriteError>> + Send;

    /// Empties `status.loadBalancer.ingress` of an Ingress this controller no longer owns, but only while it still
    /// lists exactly `written`, the addresses this replica wrote: the controller that owns it now may already have
    /// written its own, and those stay. An Ingress that no longer exists, or changed meanwhile, is left alone.
    fn clear_ingress_addresses(
        &self,
        key: &ObjectKey,
        written: &[String],
    ) -> impl Future<Output = Result<(), WriteError>> + Send;

    /// Records a Warning event on the object the warning is about.
    fn warning_event(&self, warning: &Warning) -> impl Future<Output = Result<(), WriteError>> + Send;

    /// The load-balancer addresses of a Service (for `--publish-service`).
    fn service_addresses(&self, key: &ObjectKey) -> impl Future<Output = Result<Vec<String>, WriteError>> + Send;
}

//! A recording test double of the Kubernetes API calls the status writer makes ([`ClusterWriter`]). It records
//! every call and can be told to fail the next calls, as an API server that is unreachable would.

use holdfast_controller::index::ObjectKey;
use holdfast_controller::status::{ClusterWriter, WriteError};
use holdfast_controller::translate::Warning;
use holdfast_crds::UploadPolicyStatus;
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    PolicyStatus(String, UploadPolicyStatus),
    IngressAddresses(String, Vec<String>),
    /// Cleared, if it still listed these.
    ClearIngressAddresses(String, Vec<String>),
    Event(String, &'static str),
}

#[derive(Default)]
pub struct RecordingClusterDouble {
    pub calls: Mutex<Vec<Call>>,
    failing: Mutex<bool>,
    pub service_addresses: Mutex<Vec<String>>,
}

impl RecordingClusterDouble {
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut self.calls.lock().unwrap())
    }

    pub fn set_failing(&self, failing: bool) {
        *self.failing.lock().unwrap() = failing;
    }

    fn record(&self, call: Call) -> Result<(), WriteError> {
        if *self.failing.lock().unwrap() {
            // Any kube::Error will do; the writer only logs it.
            let source = kube::Error::Service("API server unreachable (test double)".into());
            return Err(WriteError { what: format!("{call:?}"), source });
        }
        self.calls.lock().unwrap().push(call);
        Ok(())
    }
}

impl ClusterWriter for RecordingClusterDouble {
    async fn patch_policy_status(&self, key: &ObjectKey, status: &UploadPolicyStatus) -> Result<(), WriteError> {
        self.record(Call::PolicyStatus(key.to_string(), status.clone()))
    }

    async fn patch_ingress_addresses(&self, key: &ObjectKey, addresses: &[String]) -> Result<(), WriteError> {
        self.record(Call::IngressAddresses(key.to_string(), addresses.to_vec()))
    }

    async fn clear_ingress_addresses(&self, key: &ObjectKey, written: &[String]) -> Result<(), WriteError> {
        self.record(Call::ClearIngressAddresses(key.to_string(), written.to_vec()))
    }

    async fn warning_event(&self, warning: &Warning) -> Result<(), WriteError> {
        self.record(Call::Event(warning.key.to_string(), warning.reason.as_str()))
    }

    async fn service_addresses(&self, _: &ObjectKey) -> Result<Vec<String>, WriteError> {
        Ok(self.service_addresses.lock().unwrap().clone())
    }
}

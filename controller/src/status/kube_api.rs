//! [`ClusterWriter`] on the Kubernetes API: status subresource merge patches, and events through kube-runtime's
//! `Recorder` (which folds repeats into event series).

use super::{ClusterWriter, WriteError};
use crate::index::ObjectKey;
use crate::translate::Warning;
use holdfast_crds::{UploadPolicy, UploadPolicyStatus};
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client};
use serde_json::json;
use std::net::IpAddr;

/// Events carry at most 1 kB of note.
const MAX_NOTE: usize = 1000;

pub struct KubeClusterWriter {
    client: Client,
    recorder: Recorder,
}

impl KubeClusterWriter {
    /// `instance` identifies this replica in events (the pod name in a cluster).
    pub fn new(client: Client, instance: String) -> Self {
        let reporter = Reporter { controller: "holdfast-controller".into(), instance: Some(instance) };
        KubeClusterWriter { recorder: Recorder::new(client.clone(), reporter), client }
    }
}

fn failed(what: String) -> impl FnOnce(kube::Error) -> WriteError {
    move |source| WriteError { what, source }
}

impl ClusterWriter for KubeClusterWriter {
    async fn patch_policy_status(&self, key: &ObjectKey, status: &UploadPolicyStatus) -> Result<(), WriteError> {
        let api: Api<UploadPolicy> = Api::namespaced(self.client.clone(), &key.namespace);
        let patch = Patch::Merge(json!({ "status": status }));
        api.patch_status(&key.name, &PatchParams::default(), &patch)
            .await
            .map(drop)
            .map_err(failed(format!("status of UploadPolicy {key}")))
    }

    async fn patch_ingress_addresses(&self, key: &ObjectKey, addresses: &[String]) -> Result<(), WriteError> {
        let api: Api<Ingress> = Api::namespaced(self.client.clone(), &key.namespace);
        let entries: Vec<_> = addresses
            .iter()
            .map(|a| if a.parse::<IpAddr>().is_ok() { json!({ "ip": a }) } else { json!({ "hostname": a }) })
            .collect();
        let patch = Patch::Merge(json!({ "status": { "loadBalancer": { "ingress": entries } } }));
        api.patch_status(&key.name, &PatchParams::default(), &patch)
            .await
            .map(drop)
            .map_err(failed(format!("status of Ingress {key}")))
    }

    async fn clear_ingress_addresses(&self, key: &ObjectKey, written: &[String]) -> Result<(), WriteError> {
        let api: Api<Ingress> = Api::namespaced(self.client.clone(), &key.namespace);
        let what = || format!("status of Ingress {key}");
        let ingress = match api.get_status(&key.name).await {
            Ok(ingress) => ingress,
            Err(kube::Error::Api(status)) if status.is_not_found() => return Ok(()),
            Err(error) => return Err(failed(what())(error)),
        };
        let listed: Vec<String> = ingress
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|entry| entry.ip.or(entry.hostname))
            .collect();
        if listed != written {
            return Ok(());
        }
        // The resourceVersion makes the patch conditional: if anyone wrote the Ingress since it was read, the API
        // refuses it with a conflict, and what they wrote stays.
        let patch = Patch::Merge(json!({
            "metadata": { "resourceVersion": ingress.metadata.resource_version },
            "status": { "loadBalancer": { "ingress": [] } },
        }));
        match api.patch_status(&key.name, &PatchParams::default(), &patch).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.is_not_found() || status.is_conflict() => Ok(()),
            Err(error) => Err(failed(what())(error)),
        }
    }

    async fn warning_event(&self, warning: &Warning) -> Result<(), WriteError> {
        let api_version = match warning.kind {
            "Ingress" | "IngressClass" => "networking.k8s.io/v1",
            "UploadPolicy" => "holdfast.io/v1alpha1",
            "EndpointSlice" => "discovery.k8s.io/v1",
            _ => "v1",
        };
        let reference = ObjectReference {
            api_version: Some(api_version.into()),
            kind: Some(warning.kind.into()),
            namespace: Some(warning.key.namespace.clone()).filter(|ns| !ns.is_empty()),
            name: Some(warning.key.name.clone()),
            uid: warning.uid.clone(),
            ..ObjectReference::default()
        };
        let mut note = warning.message.clone();
        if note.len() > MAX_NOTE {
            let mut end = MAX_NOTE;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
        }
        let event = Event {
            type_: EventType::Warning,
            reason: warning.reason.as_str().into(),
            note: Some(note),
            action: "Translate".into(),
            secondary: None,
        };
        self.recorder
            .publish(&event, &reference)
            .await
            .map_err(failed(format!("event on {} {}", warning.kind, warning.key)))
    }

    async fn service_addresses(&self, key: &ObjectKey) -> Result<Vec<String>, WriteError> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), &key.namespace);
        let service = api.get(&key.name).await.map_err(failed(format!("Service {key}")))?;
        let entries = service.status.and_then(|s| s.load_balancer).and_then(|lb| lb.ingress).unwrap_or_default();
        Ok(entries.into_iter().filter_map(|e| e.ip.or(e.hostname)).collect())
    }
}

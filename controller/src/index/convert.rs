//! Conversion of API objects into index models, at the index boundary. Conversion never fails: what is malformed
//! is kept as an explicit "missing" or "unsupported" value for translation to report on the object.

use super::model::*;
use super::policy::PolicyModel;
use holdfast_crds::UploadPolicy;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};

pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
pub const POLICY_ANNOTATION: &str = "holdfast.io/upload-policy";
pub const SSL_REDIRECT_ANNOTATION: &str = "holdfast.io/ssl-redirect";
pub const NGINX_PREFIX: &str = "nginx.ingress.kubernetes.io/";
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

pub trait Convert {
    type Model;
    fn convert(self, key: &ObjectKey, previous: Option<&Self::Model>) -> Option<Self::Model>;
}

impl Convert for IngressClass {
    type Model = IngressClassModel;
    fn convert(self, _: &ObjectKey, _: Option<&Self::Model>) -> Option<Self::Model> {
        let is_default = annotation(&self.metadata, DEFAULT_CLASS_ANNOTATION).is_some_and(|v| v == "true");
        let controller = self.spec.and_then(|s| s.controller).unwrap_or_default();
        Some(IngressClassModel { controller, is_default })
    }
}

impl Convert for Ingress {
    type Model = IngressModel;
    fn convert(self, _: &ObjectKey, _: Option<&Self::Model>) -> Option<Self::Model> {
        let meta = &self.metadata;
        let spec = self.spec.unwrap_or_default();
        let nginx = meta
            .annotations
            .iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.strip_prefix(NGINX_PREFIX)?.to_string(), v.clone())))
            .collect();
        let rules = spec.rules.unwrap_or_default().into_iter().map(|rule| RuleModel {
            host: rule.host.unwrap_or_default(),
            paths: rule
                .http
                .map(|http| http.paths)
                .unwrap_or_default()
                .into_iter()
                .map(|p| PathModel { path: p.path, path_type: p.path_type, backend: backend(p.backend) })
                .collect(),
        });
        let tls = spec
            .tls
            .unwrap_or_default()
            .into_iter()
            .map(|t| TlsModel { hosts: t.hosts.unwrap_or_default(), secret_name: t.secret_name });
        Some(IngressModel {
            age: Age::new(meta.creation_timestamp.as_ref().map(|t| t.0)),
            generation: meta.generation,
            class_name: spec.ingress_class_name,
            legacy_class: annotation(meta, LEGACY_CLASS_ANNOTATION).map(str::to_string),
            policy_annotation: annotation(meta, POLICY_ANNOTATION).map(str::to_string),
            ssl_redirect_annotation: annotation(meta, SSL_REDIRECT_ANNOTATION).map(str::to_string),
            nginx,
            default_backend: spec.default_backend.map(backend),
            rules: rules.collect(),
            tls: tls.collect(),
        })
    }
}

fn backend(backend: IngressBackend) -> BackendModel {
    let Some(service) = backend.service else {
        return BackendModel::Unsupported;
    };
    let port = match service.port.map(|p| (p.number, p.name)) {
        Some((Some(number), _)) => PortRef::Number(number),
        Some((None, Some(name))) if !name.is_empty() => PortRef::Name(name),
        _ => PortRef::Missing,
    };
    BackendModel::Service { name: service.name, port }
}

impl Convert for Service {
    type Model = ServiceModel;
    fn convert(self, _: &ObjectKey, _: Option<&Self::Model>) -> Option<Self::Model> {
        let spec = self.spec.unwrap_or_default();
        let ports = spec.ports.unwrap_or_default().into_iter().map(|p| ServicePortModel {
            name: p.name.unwrap_or_default(),
            port: p.port,
            app_protocol: p.app_protocol,
        });
        Some(ServiceModel { external_name: spec.type_.as_deref() == Some("ExternalName"), ports: ports.collect() })
    }
}

impl Convert for EndpointSlice {
    type Model = SliceModel;
    fn convert(self, _: &ObjectKey, _: Option<&Self::Model>) -> Option<Self::Model> {
        let ports = self
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| SlicePortModel { name: p.name.unwrap_or_default(), port: p.port });
        let endpoints = self.endpoints.into_iter().map(|e| {
            let conditions = e.conditions.unwrap_or_default();
            // EndpointSlice API: nil `ready` means ready, nil `serving` means "defer to ready", nil terminating false.
            let ready = conditions.ready.unwrap_or(true);
            let pod = e.target_ref.filter(|r| r.kind.as_deref().is_none_or(|k| k == "Pod")).and_then(|r| r.name);
            SliceEndpointModel {
                addresses: e.addresses,
                ready,
                serving: conditions.serving.unwrap_or(ready),
                terminating: conditions.terminating.unwrap_or(false),
                pod: pod.filter(|name| !name.is_empty()),
            }
        });
        Some(SliceModel {
            service: self.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)).cloned(),
            address_type: self.address_type,
            ports: ports.collect(),
            endpoints: endpoints.collect(),
        })
    }
}

impl Convert for UploadPolicy {
    type Model = PolicyModel;
    fn convert(self, _: &ObjectKey, previous: Option<&Self::Model>) -> Option<Self::Model> {
        Some(PolicyModel::new(self, previous))
    }
}

fn annotation<'a>(meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, name: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(name).map(String::as_str)
}

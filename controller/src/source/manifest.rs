//! One manifest file's documents as the file source takes them: each object typed, keyed, and hashed (so that an
//! edit is noticed per object without keeping the object). A file is taken whole or not at all: the first document
//! that cannot be read rejects it, with the document's number and the reason.

use crate::index::{Index, IndexError, IndexKind, ObjectKey, OpaqueSecret};
use holdfast_crds::UploadPolicy;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde::Deserialize;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// Why a file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: document {document}: {source}")]
    Yaml { path: PathBuf, document: usize, source: serde_yaml::Error },
    #[error("{path}: document {document} ({kind}): {problem}")]
    Object { path: PathBuf, document: usize, kind: String, problem: String },
    #[error("{path}: document {document} ({kind}): {source}")]
    Key { path: PathBuf, document: usize, kind: String, source: IndexError },
}

/// The kinds the file source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Class,
    Ingress,
    Service,
    Slice,
    Secret,
    Policy,
}

impl Kind {
    pub const ALL: [Kind; 6] = [Kind::Class, Kind::Ingress, Kind::Service, Kind::Slice, Kind::Secret, Kind::Policy];

    /// The Kubernetes kind, as watch events are counted by.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Class => IngressClass::KIND,
            Kind::Ingress => Ingress::KIND,
            Kind::Service => Service::KIND,
            Kind::Slice => EndpointSlice::KIND,
            Kind::Secret => Secret::KIND,
            Kind::Policy => UploadPolicy::KIND,
        }
    }

    /// Removes the object of this kind at `key` from the index (a Secret from both of its stores).
    pub fn remove(self, index: &mut Index, key: &ObjectKey) {
        match self {
            Kind::Class => index.remove::<IngressClass>(key),
            Kind::Ingress => index.remove::<Ingress>(key),
            Kind::Service => index.remove::<Service>(key),
            Kind::Slice => index.remove::<EndpointSlice>(key),
            Kind::Secret => {
                index.remove::<Secret>(key);
                index.remove::<OpaqueSecret>(key);
            }
            Kind::Policy => index.remove::<UploadPolicy>(key),
        }
    }
}

/// One object of a file.
#[derive(Debug, Clone)]
pub enum Object {
    Class(IngressClass),
    Ingress(Ingress),
    Service(Service),
    Slice(EndpointSlice),
    Secret(Secret),
    Policy(UploadPolicy),
}

impl Object {
    /// Adds or replaces the object in the index. As from the API, where two watches read them, a Secret goes to
    /// the TLS store and to the Opaque one (kept there only with a `ca.crt`).
    pub fn apply(self, index: &mut Index) -> Result<(), IndexError> {
        match self {
            Object::Class(o) => index.apply(o),
            Object::Ingress(o) => index.apply(o),
            Object::Service(o) => index.apply(o),
            Object::Slice(o) => index.apply(o),
            Object::Secret(o) => {
                index.apply(OpaqueSecret(o.clone()))?;
                index.apply(o)
            }
            Object::Policy(o) => index.apply(o),
        }
    }
}

/// One document of a file: its object, the object's kind and key, and a hash of the document's YAML value.
#[derive(Debug, Clone)]
pub struct Document {
    pub kind: Kind,
    pub key: ObjectKey,
    pub hash: u64,
    pub object: Object,
}

/// Parses every document of a file; the first bad one rejects the file. Documents of kinds the controller does
/// not read are skipped.
pub fn parse(path: &Path, contents: &[u8]) -> Result<Vec<Document>, FileError> {
    let mut documents = Vec::new();
    for (number, de) in serde_yaml::Deserializer::from_slice(contents).enumerate() {
        let number = number + 1;
        let value = serde_yaml::Value::deserialize(de).map_err(|source| FileError::Yaml {
            path: path.to_path_buf(),
            document: number,
            source,
        })?;
        if value.is_null() {
            continue;
        }
        let path = || path.to_path_buf();
        match document(value) {
            Ok(Some(document)) => documents.push(document),
            Ok(None) => {}
            Err((kind, Problem::Key(source))) => {
                return Err(FileError::Key { path: path(), document: number, kind, source })
            }
            Err((kind, Problem::Other(problem))) => {
                return Err(FileError::Object { path: path(), document: number, kind, problem })
            }
        }
    }
    Ok(documents)
}

enum Problem {
    Key(IndexError),
    Other(String),
}

fn document(value: serde_yaml::Value) -> Result<Option<Document>, (String, Problem)> {
    let text = |field: &str| value.get(field).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let expected = match kind.as_str() {
        "IngressClass" | "Ingress" => "networking.k8s.io/v1",
        "Service" | "Secret" => "v1",
        "EndpointSlice" => "discovery.k8s.io/v1",
        "UploadPolicy" => "holdfast.io/v1alpha1",
        "" => return Err((kind, Problem::Other("has no kind".into()))),
        other => {
            tracing::debug!(kind = other, "Ignoring a document of a kind the controller does not read");
            return Ok(None);
        }
    };
    if api_version != expected {
        let problem = format!("apiVersion {api_version:?} is not supported; use {expected}");
        return Err((kind, Problem::Other(problem)));
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut hasher);
    let hash = hasher.finish();
    let result = match kind.as_str() {
        "IngressClass" => take(value, Kind::Class, Object::Class),
        "Ingress" => take(value, Kind::Ingress, Object::Ingress),
        "Service" => take(value, Kind::Service, Object::Service),
        "Secret" => take(value, Kind::Secret, Object::Secret),
        "EndpointSlice" => take(value, Kind::Slice, Object::Slice),
        _ => take(value, Kind::Policy, Object::Policy),
    };
    let (kind_of, key, object) = result.map_err(|problem| (kind, problem))?;
    Ok(Some(Document { kind: kind_of, key, hash, object }))
}

/// Deserializes one object and checks it can be keyed: the file source refuses what the index would refuse, so
/// the whole file is rejected up front rather than half applied.
fn take<K: IndexKind + serde::de::DeserializeOwned>(
    value: serde_yaml::Value,
    kind: Kind,
    wrap: fn(K) -> Object,
) -> Result<(Kind, ObjectKey, Object), Problem> {
    let object: K = serde_yaml::from_value(value).map_err(|e| Problem::Other(e.to_string()))?;
    let key = object.key().map_err(Problem::Key)?;
    Ok((kind, key, wrap(object)))
}

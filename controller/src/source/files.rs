//! The standalone file source: every `*.yaml` and `*.yml` file in one directory, several documents per file, polled
//! every [`POLL_INTERVAL`] (simpler and more portable than inotify, and well inside the 1 s budget). Other files,
//! such as a hand-written `snapshot.json` beside the manifests, are not read.
//!
//! A file is taken whole or not at all: if any document in it cannot be read, the objects the file defined last
//! time stay in force and the reason is logged once. A removed file removes its objects. After each change the
//! index is reset per kind to the union of all files, exactly like a relist from the API.

use crate::drain::Shutdown;
use crate::index::{Index, IndexError, IndexKind, OpaqueSecret};
use crate::metrics::SourceMetrics;
use crate::publish::Shared;
use holdfast_crds::UploadPolicy;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How often the directory is read.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

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

/// The objects of one file (or of all of them), by kind.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    pub classes: Vec<IngressClass>,
    pub ingresses: Vec<Ingress>,
    pub services: Vec<Service>,
    pub slices: Vec<EndpointSlice>,
    pub secrets: Vec<Secret>,
    pub policies: Vec<UploadPolicy>,
}

impl Objects {
    fn extend(&mut self, other: &Objects) {
        self.classes.extend(other.classes.iter().cloned());
        self.ingresses.extend(other.ingresses.iter().cloned());
        self.services.extend(other.services.iter().cloned());
        self.slices.extend(other.slices.iter().cloned());
        self.secrets.extend(other.secrets.iter().cloned());
        self.policies.extend(other.policies.iter().cloned());
    }

    /// Replaces the index's content with these objects, kind by kind.
    pub fn reset_index(self, index: &mut Index) -> Vec<IndexError> {
        let mut errors = index.reset(self.classes);
        errors.extend(index.reset(self.ingresses));
        errors.extend(index.reset(self.services));
        errors.extend(index.reset(self.slices));
        // As from the API, where two watches read them: TLS Secrets, and Opaque ones (kept only with a `ca.crt`).
        let opaque = self.secrets.iter().cloned().map(OpaqueSecret).collect();
        errors.extend(index.reset(self.secrets));
        errors.extend(index.reset::<OpaqueSecret>(opaque));
        errors.extend(index.reset(self.policies));
        errors
    }
}

/// One file as last read: its bytes (to notice edits) and the objects of its last good version.
struct FileState {
    contents: Vec<u8>,
    objects: Option<Objects>,
}

/// The directory's state between polls.
pub struct FileSource {
    dir: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
}

/// What one poll found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Whether the union of objects may have changed.
    pub changed: bool,
    /// Files that changed but could not be taken; their previous objects stay.
    pub rejected: Vec<FileError>,
}

impl FileSource {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileSource { dir: dir.into(), files: BTreeMap::new() }
    }

    /// Reads the directory once. Unchanged files are not parsed again.
    pub fn scan(&mut self) -> Result<Scan, FileError> {
        let read_error = |source| FileError::Read { path: self.dir.clone(), source };
        let mut present = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(read_error)? {
            let path = entry.map_err(|source| FileError::Read { path: self.dir.clone(), source })?.path();
            if is_manifest(&path) {
                present.push(path);
            }
        }
        let mut scan = Scan::default();
        let before = self.files.len();
        self.files.retain(|path, _| present.contains(path));
        scan.changed |= self.files.len() != before;
        for path in present {
            let contents = match std::fs::read(&path) {
                Ok(contents) => contents,
                // Removed between listing and reading: the next poll sees it gone.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    scan.rejected.push(FileError::Read { path, source });
                    continue;
                }
            };
            if self.files.get(&path).is_some_and(|f| f.contents == contents) {
                continue;
            }
            let previous = self.files.remove(&path).and_then(|f| f.objects);
            let objects = match parse(&path, &contents) {
                Ok(objects) => {
                    scan.changed = true;
                    Some(objects)
                }
                Err(error) => {
                    scan.rejected.push(error);
                    previous
                }
            };
            self.files.insert(path, FileState { contents, objects });
        }
        Ok(scan)
    }

    /// Every object of every file's last good version.
    pub fn objects(&self) -> Objects {
        let mut all = Objects::default();
        for objects in self.files.values().filter_map(|f| f.objects.as_ref()) {
            all.extend(objects);
        }
        all
    }
}

/// Editors leave swap and backup files next to the real ones; only plain manifest names count.
fn is_manifest(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !name.starts_with('.') && matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// Parses every document of a file; the first bad one rejects the file.
pub fn parse(path: &Path, contents: &[u8]) -> Result<Objects, FileError> {
    let mut objects = Objects::default();
    for (document, de) in serde_yaml::Deserializer::from_slice(contents).enumerate() {
        let document = document + 1;
        let value = serde_yaml::Value::deserialize(de).map_err(|source| FileError::Yaml {
            path: path.to_path_buf(),
            document,
            source,
        })?;
        if value.is_null() {
            continue;
        }
        add_document(&mut objects, value).map_err(|(kind, problem)| match problem {
            DocumentProblem::Key(source) => FileError::Key { path: path.to_path_buf(), document, kind, source },
            DocumentProblem::Other(problem) => FileError::Object { path: path.to_path_buf(), document, kind, problem },
        })?;
    }
    Ok(objects)
}

enum DocumentProblem {
    Key(IndexError),
    Other(String),
}

fn add_document(objects: &mut Objects, value: serde_yaml::Value) -> Result<(), (String, DocumentProblem)> {
    let text = |field: &str| value.get(field).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let expected = match kind.as_str() {
        "IngressClass" | "Ingress" => "networking.k8s.io/v1",
        "Service" | "Secret" => "v1",
        "EndpointSlice" => "discovery.k8s.io/v1",
        "UploadPolicy" => "holdfast.io/v1alpha1",
        "" => return Err((kind, DocumentProblem::Other("has no kind".into()))),
        other => {
            tracing::debug!(kind = other, "Ignoring a document of a kind the controller does not read");
            return Ok(());
        }
    };
    if api_version != expected {
        let problem = format!("apiVersion {api_version:?} is not supported; use {expected}");
        return Err((kind, DocumentProblem::Other(problem)));
    }
    let result = match kind.as_str() {
        "IngressClass" => take(value, &mut objects.classes),
        "Ingress" => take(value, &mut objects.ingresses),
        "Service" => take(value, &mut objects.services),
        "Secret" => take(value, &mut objects.secrets),
        "EndpointSlice" => take(value, &mut objects.slices),
        _ => take(value, &mut objects.policies),
    };
    result.map_err(|problem| (kind, problem))
}

/// Deserializes one object and checks it can be keyed: the file source refuses what the index would refuse, so
/// the whole file is rejected up front rather than half applied.
fn take<K: IndexKind + serde::de::DeserializeOwned>(
    value: serde_yaml::Value,
    into: &mut Vec<K>,
) -> Result<(), DocumentProblem> {
    let object: K = serde_yaml::from_value(value).map_err(|e| DocumentProblem::Other(e.to_string()))?;
    object.key().map_err(DocumentProblem::Key)?;
    into.push(object);
    Ok(())
}

/// Polls the directory until shutdown, resetting the index whenever the files' objects change, and counting the
/// changes as watch events.
pub async fn watch(mut source: FileSource, shared: Arc<Shared>, metrics: SourceMetrics, mut shutdown: Shutdown) {
    let mut previous: Option<Objects> = None;
    let mut interval = tokio::time::interval(POLL_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dir_unreadable = false;
    let mut last_rejected = BTreeSet::new();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.wait() => return,
        }
        // Reading a handful of small files takes microseconds; not worth a blocking-pool hop every 200 ms.
        let scan = match source.scan() {
            Ok(scan) => scan,
            Err(error) => {
                if !dir_unreadable {
                    tracing::warn!(%error, "Cannot read the manifest directory; keeping the routes in force");
                }
                dir_unreadable = true;
                continue;
            }
        };
        dir_unreadable = false;
        // An edited broken file is rejected once, but an unreadable one on every poll: log each error once in a row.
        let rejected: BTreeSet<String> = scan.rejected.iter().map(ToString::to_string).collect();
        for error in rejected.difference(&last_rejected) {
            tracing::warn!(%error, "Rejected a manifest file; the objects it defined before stay in force");
        }
        last_rejected = rejected;
        if scan.changed {
            let objects = source.objects();
            super::file_events::count(previous.as_ref(), &objects, &metrics);
            previous = Some(objects.clone());
            for error in shared.update(|index| objects.reset_index(index)) {
                tracing::warn!(%error, "Skipped an object");
            }
            tracing::debug!(files = source.files.len(), "Manifest directory changed");
        }
    }
}

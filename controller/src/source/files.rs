//! The standalone file source: every `*.yaml` and `*.yml` file in one directory, several documents per file. Other
//! files, such as a hand-written `snapshot.json` beside the manifests, are not read. [`watch`] says when files are
//! read; this module says what reading one does.
//!
//! A file is taken whole or not at all: if any document in it cannot be read, the objects the file defined last
//! time stay in force and the reason is logged once. A removed file removes its objects. Only what a file changes
//! reaches the index, object by object (a per-document hash tells an edited object from an unchanged one), so an
//! edit of one EndpointSlice is one slice change to the index, not a relist. What is kept per file is its
//! metadata, a hash of its bytes and the keys and hashes of its objects, never the objects themselves: the index's
//! models are the one copy.
//!
//! Two files may define one object: the file whose path sorts last wins, whatever order they were read in.

pub use super::dir_watch::{watch, RESCAN_INTERVAL};
pub use super::manifest::{parse, Document, FileError, Kind, Object};

use super::file_events::Tally;
use super::fingerprint::{Fingerprint, Known};
use crate::index::{Index, ObjectKey};
use crate::publish::Shared;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// One file as last read.
struct FileState {
    fingerprint: Option<Fingerprint>,
    /// Hash of the bytes last read, good or not, so that an unchanged broken file is reported once.
    hash: u64,
    /// The objects of its last good version: kind, key, document hash.
    objects: BTreeMap<(Kind, ObjectKey), u64>,
}

/// The directory's state between passes.
pub struct FileSource {
    dir: PathBuf,
    files: HashMap<PathBuf, FileState>,
    /// Which files define each object; the last path wins.
    owners: HashMap<(Kind, ObjectKey), BTreeSet<PathBuf>>,
}

/// What one pass found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Whether the index was changed.
    pub changed: bool,
    /// Files that changed but could not be taken; their previous objects stay.
    pub rejected: Vec<FileError>,
    /// What was applied to and removed from the index.
    pub tally: Tally,
}

impl FileSource {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileSource { dir: dir.into(), files: HashMap::new(), owners: HashMap::new() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many manifest files are known.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Reads the whole directory: files gone are forgotten, and files whose metadata changed (or that are new) are
    /// read. The first read, and what a re-scan does when it runs in one piece (tests; the running source finds
    /// the stale files off its loop with [`FileSource::known`] and reads them with [`FileSource::refresh`]).
    pub fn scan(&mut self, shared: &Shared) -> Result<Scan, FileError> {
        let stale = self.known().stale(is_manifest)?;
        Ok(self.refresh(stale, shared))
    }

    /// The fingerprints of the files as last read, for a re-scan that runs beside the source.
    pub fn known(&self) -> Known {
        let files = self.files.iter().map(|(path, file)| (path.clone(), file.fingerprint)).collect();
        Known::new(self.dir.clone(), files)
    }

    /// Reads the named files again (those a filesystem event named); a file no longer there is forgotten. Paths
    /// that are not manifests of this directory are skipped.
    pub fn refresh(&mut self, paths: impl IntoIterator<Item = PathBuf>, shared: &Shared) -> Scan {
        let mut scan = Scan::default();
        for path in paths {
            if path.parent() == Some(self.dir.as_path()) && is_manifest(&path) {
                self.read(&path, shared, &mut scan);
            }
        }
        scan
    }

    fn read(&mut self, path: &Path, shared: &Shared, scan: &mut Scan) {
        let fingerprint = Fingerprint::of(path);
        let contents = match std::fs::read(path) {
            Ok(contents) => contents,
            // Removed (or renamed away) since it was named: its objects go.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return self.forget(path, shared, scan),
            Err(source) => return scan.rejected.push(FileError::Read { path: path.to_path_buf(), source }),
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        contents.hash(&mut hasher);
        let hash = hasher.finish();
        let state = self.files.entry(path.to_path_buf()).or_insert_with(|| FileState {
            fingerprint: None,
            hash: hash.wrapping_add(1),
            objects: BTreeMap::new(),
        });
        state.fingerprint = fingerprint;
        if state.hash == hash {
            return;
        }
        state.hash = hash;
        match parse(path, &contents) {
            Ok(documents) => self.replace(path, documents, shared, scan),
            Err(error) => scan.rejected.push(error),
        }
    }

    fn forget(&mut self, path: &Path, shared: &Shared, scan: &mut Scan) {
        if self.files.contains_key(path) {
            self.replace(path, Vec::new(), shared, scan);
            self.files.remove(path);
        }
    }

    /// Makes `documents` the objects of `path`: what it no longer defines is released, what is new or edited is
    /// applied where this file wins.
    fn replace(&mut self, path: &Path, documents: Vec<Document>, shared: &Shared, scan: &mut Scan) {
        // Of two documents with one key in a file, the later wins, as it would in a relist.
        let mut next: BTreeMap<(Kind, ObjectKey), Document> = BTreeMap::new();
        for document in documents {
            next.insert((document.kind, document.key.clone()), document);
        }
        let previous = self.files.get_mut(path).map(|file| std::mem::take(&mut file.objects)).unwrap_or_default();
        let tally_before = scan.tally.clone();
        shared.update(|index| {
            for id in previous.keys().filter(|id| !next.contains_key(*id)) {
                self.release(path, id, index, scan);
            }
            let mut objects = BTreeMap::new();
            for (id, document) in next {
                objects.insert(id.clone(), document.hash);
                let owners = self.owners.entry(id.clone()).or_default();
                owners.insert(path.to_path_buf());
                let wins = owners.last().map(PathBuf::as_path) == Some(path);
                if wins && previous.get(&id) != Some(&document.hash) {
                    apply(document.object, index);
                    scan.tally.apply(id.0);
                }
            }
            if let Some(file) = self.files.get_mut(path) {
                file.objects = objects;
            }
        });
        scan.changed |= scan.tally != tally_before;
    }

    /// `path` no longer defines `id`: the object goes, or the next file that defines it takes over.
    fn release(&mut self, path: &Path, id: &(Kind, ObjectKey), index: &mut Index, scan: &mut Scan) {
        let Some(owners) = self.owners.get_mut(id) else { return };
        let won = owners.last().map(PathBuf::as_path) == Some(path);
        owners.remove(path);
        let Some(next) = owners.last().cloned() else {
            self.owners.remove(id);
            id.0.remove(index, &id.1);
            scan.tally.remove(id.0);
            return;
        };
        if !won {
            return;
        }
        // Rare (one object in two files): read the new winner's version of it.
        let document = std::fs::read(&next)
            .map_err(|source| FileError::Read { path: next.clone(), source })
            .and_then(|contents| parse(&next, &contents))
            .map(|documents| documents.into_iter().rev().find(|d| (d.kind, &d.key) == (id.0, &id.1)));
        match document {
            Ok(Some(document)) => {
                apply(document.object, index);
                scan.tally.apply(id.0);
            }
            Ok(None) => tracing::debug!(file = %next.display(), "The other file defining an object no longer does"),
            Err(error) => scan.rejected.push(error),
        }
    }
}

fn apply(object: Object, index: &mut Index) {
    // Keys were checked when the file was parsed, so the index has no reason left to refuse the object.
    if let Err(error) = object.apply(index) {
        tracing::warn!(%error, "Skipped an object");
    }
}

/// Editors leave swap and backup files next to the real ones, and a ConfigMap volume its `..data` links and
/// directories; only plain manifest names count.
pub fn is_manifest(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !name.starts_with('.') && matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

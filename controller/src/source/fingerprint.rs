//! Which manifest files must be read again, found from their metadata alone: the work of a full re-scan. It is
//! kept apart from reading so that it can run beside the file source's loop ([`super::dir_watch`]): at ten
//! thousand files the `stat`s take tens of milliseconds, and an edit announced meanwhile by a filesystem event
//! should not wait for them.

use super::manifest::FileError;
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What a re-scan compares to tell a file it need not read again: a write or a replacement changes one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Fingerprint {
    /// The file's fingerprint now, through symlinks (as a ConfigMap volume's files are: a new `..data` gives them
    /// new inodes); `None` when it cannot be read.
    pub fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Some(Fingerprint {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        })
    }
}

/// The files of a directory as last read: a copy of the file source's fingerprints, taken when a re-scan starts.
pub struct Known {
    dir: PathBuf,
    files: HashMap<PathBuf, Option<Fingerprint>>,
}

impl Known {
    pub fn new(dir: PathBuf, files: HashMap<PathBuf, Option<Fingerprint>>) -> Self {
        Known { dir, files }
    }

    /// The manifest files to read again: those gone (reading them finds them gone), those new, and those whose
    /// fingerprint differs from the known one or cannot be taken. A file changed after it was compared here is
    /// caught by its own filesystem event, and one read again needlessly is found unchanged by its hash.
    pub fn stale(&self, is_manifest: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>, FileError> {
        let read_error = |source| FileError::Read { path: self.dir.clone(), source };
        let mut present = HashSet::new();
        for entry in std::fs::read_dir(&self.dir).map_err(read_error)? {
            let path = entry.map_err(read_error)?.path();
            if is_manifest(&path) {
                present.insert(path);
            }
        }
        let mut stale: Vec<PathBuf> = self.files.keys().filter(|path| !present.contains(*path)).cloned().collect();
        for path in present {
            let now = Fingerprint::of(&path);
            if now.is_none() || self.files.get(&path) != Some(&now) {
                stale.push(path);
            }
        }
        Ok(stale)
    }
}

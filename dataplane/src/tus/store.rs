//! Resumable uploads on the spool volume, so that they outlive the dataplane: `<spool-dir>/tus/<id>.data` holds the
//! bytes received, appended in order; `<id>.info` (JSON) what the upload is, where it goes and how far its delivery
//! got, replaced whole (written aside, synced, renamed) so that a crash leaves the old or the new one, never half.
//! While a PATCH with a checksum is written, `<id>.check` holds the offset it started at: its bytes are not the
//! upload's until they are verified, and a crash meanwhile takes them back off.
//!
//! What reaches the disk before a client hears of it: a creation's files and the directory entry (the `201` promises
//! an upload that exists), and a PATCH's bytes (`fdatasync` before the `204` whose `Upload-Offset` promises them).
//! The offset found on start is the data file's length: every byte in it was received in order, and a byte that was
//! written but not yet synced when the process died is in the page cache, which a process kill does not lose.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Everything an upload is, as saved in its `.info` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    pub id: String,
    /// `None` while the client defers it (creation-defer-length).
    pub length: Option<u64>,
    /// The client's `Upload-Metadata`, as sent: HEAD answers echo it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// Unix milliseconds.
    pub created_ms: u64,
    pub expires_ms: u64,
    pub target: Target,
    pub stage: Stage,
}

/// The request a finished upload becomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub method: String,
    /// The host the client created the upload at (`Host` or `:authority`), as sent.
    pub host: String,
    /// The creation URL's path and query: where the upload is delivered.
    pub path_and_query: String,
    /// `http` or `https`: the client's scheme, for `X-Forwarded-Proto`.
    pub scheme: String,
    /// The creating client's address, for `X-Forwarded-For` and the access log.
    pub client: String,
    /// Fields of the delivery request, in order: the creation request's credentials and forwarding fields, the
    /// content fields made from the metadata.
    pub headers: Vec<(String, String)>,
}

impl Target {
    /// The path of the creation URL: an upload's URL must have the same.
    pub fn path(&self) -> &str {
        self.path_and_query.split('?').next().unwrap_or("")
    }
}

/// How far an upload has got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "stage")]
pub enum Stage {
    /// Bytes are still to come.
    Receiving,
    /// Complete: being delivered to the backend (again after a restart).
    Delivering,
    /// The backend answered (or the delivery was given up); the data file is gone.
    Delivered(Outcome),
}

/// What the delivery ended with: the backend's response, kept for the client to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The start of the response body (at most [`OUTCOME_BODY_MAX`] bytes), base64.
    pub body: String,
    /// The body was longer than what is kept.
    #[serde(default)]
    pub truncated: bool,
    /// Whether the status is the backend's (`false`: Holdfast gave up delivering and the status is its own).
    pub from_backend: bool,
    pub at_ms: u64,
}

/// Bytes of a backend's response body kept with the outcome: enough for the JSON or HTML an upload endpoint answers.
pub const OUTCOME_BODY_MAX: usize = 64 * 1024;

/// The uploads directory.
pub struct Store {
    dir: PathBuf,
}

/// What a scan found on start.
pub struct Found {
    pub info: Info,
    /// The data file's length (the offset), `None` when it is gone (expected once delivered).
    pub data_len: Option<u64>,
}

impl Store {
    pub fn new(spool_dir: &Path) -> Self {
        Store { dir: spool_dir.join("tus") }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{id}.{ext}"))
    }

    /// Creates an upload's files: the data file (empty, its blocks allocated when the length is known so that a
    /// full disk says so now), then the info, then syncs the directory. Until the info exists the data file is an
    /// orphan that a scan removes.
    pub fn create(&self, info: &Info) -> io::Result<File> {
        std::fs::create_dir_all(&self.dir)?;
        let data = OpenOptions::new().read(true).write(true).create_new(true).open(self.path(&info.id, "data"))?;
        if let Some(len) = info.length.filter(|&len| len > 0) {
            use rustix::fs::{fallocate, FallocateFlags};
            match fallocate(&data, FallocateFlags::KEEP_SIZE, 0, len) {
                Ok(()) | Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => {}
                Err(errno) => {
                    let _ = std::fs::remove_file(self.path(&info.id, "data"));
                    return Err(errno.into());
                }
            }
        }
        if let Err(error) = self.save(info) {
            let _ = std::fs::remove_file(self.path(&info.id, "data"));
            return Err(error);
        }
        Ok(data)
    }

    /// Replaces the info file whole, durably.
    pub fn save(&self, info: &Info) -> io::Result<()> {
        let json = serde_json::to_vec(info).map_err(io::Error::other)?;
        let (tmp, path) = (self.path(&info.id, "info.tmp"), self.path(&info.id, "info"));
        let mut file = File::create(&tmp)?;
        file.write_all(&json)?;
        file.sync_data()?;
        drop(file);
        std::fs::rename(&tmp, &path)?;
        self.sync_dir()
    }

    pub fn open_data(&self, id: &str) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).open(self.path(id, "data"))
    }

    /// Notes that bytes from `offset` on are not verified yet (a PATCH with a checksum starts).
    pub fn begin_checked(&self, id: &str, offset: u64) -> io::Result<()> {
        let path = self.path(id, "check");
        let mut file = File::create(&path)?;
        file.write_all(offset.to_string().as_bytes())?;
        file.sync_data()
    }

    /// The checked bytes were verified (and synced), or taken back off.
    pub fn end_checked(&self, id: &str) -> io::Result<()> {
        remove_if_there(&self.path(id, "check"))
    }

    /// Removes the data file (delivered or given up); the info stays, with the outcome.
    pub fn remove_data(&self, id: &str) -> io::Result<()> {
        remove_if_there(&self.path(id, "data"))
    }

    /// Removes every file of an upload.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        for ext in ["data", "check", "info.tmp", "info"] {
            remove_if_there(&self.path(id, ext))?;
        }
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    /// Reads the uploads on the volume, repairing what a crash left: a data file without info (a creation cut
    /// short) and stray temporary files are removed, unverified bytes of a checked PATCH are cut off, an info file
    /// that does not parse is removed with its data (logged: it cannot be served). Returns the uploads found.
    pub fn scan(&self) -> io::Result<Vec<Found>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let mut ids = std::collections::BTreeSet::new();
        for entry in entries {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            match name.split_once('.') {
                Some((id, _)) if valid_id(id) => drop(ids.insert(id.to_string())),
                _ => tracing::warn!(file = name, dir = %self.dir.display(), "not an upload's file; left alone"),
            }
        }
        let mut found = Vec::new();
        for id in ids {
            remove_if_there(&self.path(&id, "info.tmp"))?;
            let info = match std::fs::read(self.path(&id, "info")) {
                Ok(bytes) => match serde_json::from_slice::<Info>(&bytes) {
                    Ok(info) if info.id == id => info,
                    Ok(_) | Err(_) => {
                        tracing::error!(upload = id, "an upload's info file is unreadable; the upload is removed");
                        self.remove(&id)?;
                        continue;
                    }
                },
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    tracing::info!(upload = id, "removing a creation that did not complete");
                    self.remove(&id)?;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let data_path = self.path(&id, "data");
            if let Ok(text) = std::fs::read_to_string(self.path(&id, "check")) {
                if let (Ok(offset), Ok(data)) =
                    (text.trim().parse::<u64>(), OpenOptions::new().write(true).open(&data_path))
                {
                    data.set_len(offset)?;
                    data.sync_all()?;
                }
                self.end_checked(&id)?;
            }
            let data_len = match std::fs::metadata(&data_path) {
                Ok(meta) => Some(meta.len()),
                Err(error) if error.kind() == io::ErrorKind::NotFound => None,
                Err(error) => return Err(error),
            };
            found.push(Found { info, data_len });
        }
        Ok(found)
    }
}

/// Upload ids are made by [`crate::tus::Uploads::new_id`]: letters, digits and `-`. Anything else in the directory
/// is not ours.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

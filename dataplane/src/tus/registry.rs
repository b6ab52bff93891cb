//! The uploads this dataplane owns, by id: found on the volume at start, created by clients, removed when they are
//! terminated, expire, or their outcome has been kept long enough. Each holds its share of the spool quota for as
//! long as its bytes are on the volume.

use super::store::{Found, Info, Stage, Store};
use super::upload::Upload;
use crate::metrics::resumable::ResumableMetrics;
use crate::spool::{SpoolError, SpoolQuota};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct Uploads {
    pub store: Store,
    map: Mutex<HashMap<String, Arc<Upload>>>,
    /// This dataplane's name in the ids it makes (a pod's name), so that an upload's id names its owner.
    instance: String,
    quota: Arc<SpoolQuota>,
    metrics: Arc<crate::metrics::Metrics>,
}

/// An instance name (a pod's) as upload ids carry it: lower-case letters, digits and `-`.
pub fn instance_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect()
}

/// The instance that owns an upload: its id without the random part; empty for an id without one.
pub fn owner_of(id: &str) -> &str {
    id.rsplit_once('-').map_or("", |(owner, _)| owner)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Uploads {
    pub fn new(
        spool_dir: &Path,
        instance: &str,
        quota: Arc<SpoolQuota>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        let instance = instance_name(instance);
        Uploads { store: Store::new(spool_dir), map: Mutex::default(), instance, quota, metrics }
    }

    fn resumable(&self) -> &ResumableMetrics {
        &self.metrics.resumable
    }

    /// This dataplane's instance name, as its upload ids carry it.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// A new id: this instance's name and 128 random bits, so that an upload URL can be neither guessed nor
    /// confused with another replica's.
    pub fn new_id(&self) -> String {
        let random = uuid::Uuid::new_v4().simple().to_string();
        match self.instance.is_empty() {
            true => random,
            false => format!("{}-{random}", self.instance),
        }
    }

    /// Loads the uploads found on the volume (after [`Store::scan`] repaired them); returns those whose delivery
    /// must be resumed. Each takes its quota back; one that no longer fits is kept all the same (its bytes are
    /// on the disk already) and the quota shows the overdraft until uploads leave.
    pub fn load(&self) -> std::io::Result<Vec<Arc<Upload>>> {
        let found = self.store.scan()?;
        let mut resume = Vec::new();
        let mut map = self.lock();
        for Found { info, data_len } in found {
            let id = info.id.clone();
            let upload = match (&info.stage, data_len) {
                (Stage::Receiving | Stage::Delivering, None) => {
                    tracing::error!(upload = id, "an upload's data file is missing; the upload is removed");
                    self.store.remove(&id)?;
                    continue;
                }
                (Stage::Delivered(_), _) => {
                    // The data file may outlive a crash between saving the outcome and removing it.
                    self.store.remove_data(&id)?;
                    // It was whole: a stale PATCH learns the length as the offset, as HEAD says.
                    let length = info.length.unwrap_or(0);
                    Upload::new(info, length, None)
                }
                (_, Some(len)) => {
                    // A complete upload whose stage was not saved as Delivering (a crash in between) is delivered too.
                    let delivering = info.stage == Stage::Delivering || info.length == Some(len);
                    let held = info.length.unwrap_or(len).max(len);
                    let upload = Upload::new(info, len, None);
                    upload.interrupted.store(len > 0, Ordering::Relaxed);
                    if self.quota.reserve(held).is_err() {
                        tracing::warn!(upload = id, bytes = held, "an upload found on start exceeds the spool quota");
                        self.quota.force_reserve(held);
                    }
                    upload.reserved.store(held, Ordering::Relaxed);
                    upload.counted.store(true, Ordering::Relaxed);
                    self.resumable().in_flight.inc();
                    self.resumable().stored_bytes.inc_by(len as i64);
                    if delivering {
                        resume.push(upload.clone());
                    }
                    upload
                }
            };
            map.insert(id, upload);
        }
        tracing::info!(uploads = map.len(), resuming = resume.len(), dir = %self.store.dir().display(), "resumable uploads loaded");
        Ok(resume)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Upload>> {
        self.lock().get(id).cloned()
    }

    /// Creates an upload (its files on the volume) after reserving its declared length from the quota.
    pub fn create(&self, info: Info) -> Result<Arc<Upload>, CreateError> {
        let reserve = info.length.unwrap_or(0);
        self.quota.reserve(reserve).map_err(CreateError::Quota)?;
        if let Some(len) = info.length {
            if let Err(error) = check_free_space(self.store.dir().parent().unwrap_or(self.store.dir()), len) {
                self.quota.release(reserve);
                return Err(error);
            }
        }
        let file = match self.store.create(&info) {
            Ok(file) => file,
            Err(error) => {
                self.quota.release(reserve);
                return Err(CreateError::Io(SpoolError::from(error)));
            }
        };
        let upload = Upload::new(info, 0, Some(file));
        upload.reserved.store(reserve, Ordering::Relaxed);
        upload.counted.store(true, Ordering::Relaxed);
        self.resumable().created.inc();
        self.resumable().in_flight.inc();
        self.lock().insert(upload.id.clone(), upload.clone());
        Ok(upload)
    }

    /// Grows an upload's quota share to cover `len` bytes (an upload whose length was deferred).
    pub fn reserve_up_to(&self, upload: &Upload, len: u64) -> Result<(), SpoolError> {
        let gone = || SpoolError::Io(std::io::Error::other("the upload was removed"));
        if upload.is_gone() {
            return Err(gone());
        }
        let held = upload.reserved.load(Ordering::Acquire);
        if len > held {
            self.quota.reserve(len - held)?;
            upload.reserved.fetch_add(len - held, Ordering::AcqRel);
            // Removed meanwhile (expired, terminated): its release may have run already; give this back too.
            if upload.is_gone() {
                self.quota.release(upload.reserved.swap(0, Ordering::AcqRel));
                return Err(gone());
            }
        }
        Ok(())
    }

    /// Bytes of a live upload were stored and synced: its offset moves to `offset`. Nothing for an upload removed
    /// meanwhile (its gauges were given back when it was removed). Returns whether the upload is still live.
    pub fn stored(&self, upload: &Upload, offset: u64) -> bool {
        // Under the registry's lock, so that a removal sees either the old offset and gauges or the new ones.
        let _map = self.lock();
        if upload.is_gone() || !upload.counted.load(Ordering::Acquire) {
            return false;
        }
        let before = upload.offset();
        upload.set_offset(offset);
        self.resumable().stored_bytes.inc_by(offset as i64 - before as i64);
        true
    }

    /// The delivery ended: the data file goes, and its quota with it; the upload stays, with its outcome.
    pub fn delivered(&self, upload: &Upload) {
        if let Err(error) = self.store.remove_data(&upload.id) {
            tracing::error!(upload = upload.id, %error, "removing a delivered upload's data failed");
        }
        self.release(upload);
    }

    /// Gives back what an upload holds (quota, gauges), once.
    fn release(&self, upload: &Upload) {
        let reserved = upload.reserved.swap(0, Ordering::AcqRel);
        self.quota.release(reserved);
        if upload.counted.swap(false, Ordering::AcqRel) {
            self.resumable().stored_bytes.dec_by(upload.offset() as i64);
            self.resumable().in_flight.dec();
        }
    }

    /// Removes an upload and its files (terminated, expired, outcome kept long enough).
    pub fn remove(&self, upload: &Upload) {
        let removed = {
            let mut map = self.lock();
            upload.mark_gone();
            let removed = map.remove(&upload.id).is_some();
            if removed {
                self.release(upload);
            }
            removed
        };
        if !removed {
            return;
        }
        if let Err(error) = self.store.remove(&upload.id) {
            tracing::error!(upload = upload.id, %error, "removing an upload's files failed");
        }
    }

    /// Removes what is past its time: unfinished uploads past their expiry, outcomes kept longer than `retention`.
    /// Uploads being delivered stay: their delivery ends them.
    pub fn sweep(&self, retention_of: impl Fn(&Info) -> Duration) {
        let now = now_ms();
        let uploads: Vec<Arc<Upload>> = self.lock().values().cloned().collect();
        for upload in uploads {
            let (expired, stale) = {
                let info = upload.info();
                let retention = retention_of(&info).as_millis() as u64;
                match &info.stage {
                    Stage::Receiving => (info.expires_ms <= now, false),
                    Stage::Delivering => (false, false),
                    Stage::Delivered(outcome) => (false, outcome.at_ms.saturating_add(retention) <= now),
                }
            };
            if expired && !upload.is_complete() {
                self.expire(&upload);
            } else if stale {
                self.remove(&upload);
            }
        }
    }

    /// Removes an unfinished upload past its expiry.
    pub fn expire(&self, upload: &Upload) {
        if !upload.is_gone() {
            tracing::info!(upload = upload.id, "an unfinished upload expired and is removed");
            self.resumable().expired.inc();
        }
        self.remove(upload);
    }

    pub fn terminated(&self) {
        self.resumable().terminated.inc();
    }

    pub fn metrics(&self) -> &ResumableMetrics {
        self.resumable()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Upload>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why an upload could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Quota(SpoolError),
    #[error("the volume has {free} bytes free, too few for an upload of {needed} bytes")]
    NoRoom { free: u64, needed: u64 },
    #[error(transparent)]
    Io(SpoolError),
}

/// The volume must have room for the whole upload now: a creation that cannot fit is refused before a byte is
/// stored rather than failing half-way.
fn check_free_space(dir: &Path, needed: u64) -> Result<(), CreateError> {
    let Ok(stat) = rustix::fs::statvfs(dir) else { return Ok(()) };
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    match free < needed {
        true => Err(CreateError::NoRoom { free, needed }),
        false => Ok(()),
    }
}

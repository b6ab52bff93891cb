//! One upload in memory: its saved info, the offset the client has been promised, the one writer that may append to
//! it, and the outcome of its delivery for whoever waits for it.
//!
//! One writer at a time: a request that wants to write (PATCH) or to end the upload (DELETE) while another request
//! holds it asks that one to stop (a HEAD does not: it reports the offset already promised) — the older request is almost always a
//! connection the client already gave up on, whose end the server has not seen yet (a phone that changed networks)
//! — and waits briefly for it to store what it received and let go. This is the IETF draft's recommendation (a new
//! request terminates the older one); tusd reaches the same end with its lock-release requests. A request that
//! cannot get the upload within [`TAKE_OVER_WAIT`] answers `423 Locked`, which tus clients retry.

use super::store::{Info, Outcome, Stage};
use std::fs::File;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{watch, Notify, OwnedMutexGuard};

/// How long a request waits for the upload's current writer to stop.
pub const TAKE_OVER_WAIT: Duration = Duration::from_secs(5);

pub struct Upload {
    pub id: String,
    info: Mutex<Info>,
    /// Bytes stored and synced: what the client was or may be told.
    offset: AtomicU64,
    /// Held by the request writing (or reading a stable offset); holds the open data file.
    writer: Arc<tokio::sync::Mutex<Writer>>,
    /// Tells the holder of `writer` to stop; a permit waits for a holder that has not looked yet.
    stop: Notify,
    /// Set once the upload is complete and its delivery started (in this process).
    delivering: AtomicBool,
    outcome: watch::Sender<Option<Arc<Outcome>>>,
    /// Bytes of the spool quota this upload holds.
    pub reserved: AtomicU64,
    /// Counted in the in-flight and stored-bytes gauges (until delivered or removed).
    pub counted: AtomicBool,
    /// The last PATCH ended before its body did (the client's connection was cut): the next one resumes.
    pub interrupted: AtomicBool,
    /// Removed (terminated, expired): requests that still hold it answer 404.
    gone: AtomicBool,
}

/// The open data file, for the writer.
pub struct Writer {
    pub file: Option<Arc<File>>,
}

/// Exclusive hold of an upload's writing.
pub struct Held {
    pub writer: OwnedMutexGuard<Writer>,
}

/// Why a request could not take an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl Upload {
    pub fn new(info: Info, offset: u64, file: Option<File>) -> Arc<Self> {
        let outcome = match &info.stage {
            Stage::Delivered(outcome) => Some(Arc::new(outcome.clone())),
            _ => None,
        };
        Arc::new(Upload {
            id: info.id.clone(),
            info: Mutex::new(info),
            offset: AtomicU64::new(offset),
            writer: Arc::new(tokio::sync::Mutex::new(Writer { file: file.map(Arc::new) })),
            stop: Notify::new(),
            delivering: AtomicBool::new(false),
            outcome: watch::channel(outcome).0,
            reserved: AtomicU64::new(0),
            counted: AtomicBool::new(false),
            interrupted: AtomicBool::new(false),
            gone: AtomicBool::new(false),
        })
    }

    pub fn info(&self) -> MutexGuard<'_, Info> {
        self.info.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn offset(&self) -> u64 {
        self.offset.load(Ordering::Acquire)
    }

    /// Only by the holder, once the bytes up to `offset` are synced.
    pub fn set_offset(&self, offset: u64) {
        self.offset.store(offset, Ordering::Release);
    }

    /// Takes the upload's writing, asking its current holder to stop; `Busy` if it does not let go in time.
    pub async fn take(&self) -> Result<Held, Busy> {
        if let Ok(writer) = self.writer.clone().try_lock_owned() {
            return Ok(Held { writer });
        }
        self.stop.notify_one();
        match tokio::time::timeout(TAKE_OVER_WAIT, self.writer.clone().lock_owned()).await {
            Ok(writer) => {
                // A stop meant for the holder that just left must not stop this request.
                self.forget_stop();
                Ok(Held { writer })
            }
            Err(_) => Err(Busy),
        }
    }

    /// Resolves when another request asks the holder to stop.
    pub async fn stop_requested(&self) {
        self.stop.notified().await
    }

    fn forget_stop(&self) {
        // `notify_one` stores one permit when nobody waits; consume it without blocking.
        let notified = self.stop.notified();
        tokio::pin!(notified);
        let _ = notified.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
    }

    pub fn is_complete(&self) -> bool {
        self.info().length.is_some_and(|len| len == self.offset())
    }

    /// Marks the delivery started; false if it already was.
    pub fn start_delivering(&self) -> bool {
        !self.delivering.swap(true, Ordering::AcqRel)
    }

    pub fn is_delivering(&self) -> bool {
        self.delivering.load(Ordering::Acquire) && self.outcome.borrow().is_none()
    }

    pub fn outcome(&self) -> Option<Arc<Outcome>> {
        self.outcome.borrow().clone()
    }

    pub fn set_outcome(&self, outcome: Outcome) {
        self.outcome.send_replace(Some(Arc::new(outcome)));
    }

    /// Waits for the outcome of the delivery up to `limit`.
    pub async fn wait_outcome(&self, limit: Duration) -> Option<Arc<Outcome>> {
        let mut rx = self.outcome.subscribe();
        let waited = tokio::time::timeout(limit, rx.wait_for(|o| o.is_some())).await;
        match waited {
            Ok(Ok(outcome)) => outcome.clone(),
            _ => None,
        }
    }

    pub fn mark_gone(&self) {
        self.gone.store(true, Ordering::Release);
        self.stop.notify_one();
    }

    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }
}

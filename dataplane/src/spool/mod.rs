//! The spool: where a request body is held until an upstream has answered, so that it can be sent again.
//!
//! A body lives in memory up to the policy's memory buffer, then in an already-unlinked file under `--spool-dir`
//! (`tempfile::tempfile_in`, which uses `O_TMPFILE` on Linux): a crash of the dataplane leaves nothing behind, and
//! dropping the [`Spool`] frees the disk space. Bytes on disk count against one [`SpoolQuota`] shared by all requests.
//!
//! One writer (the task reading the client's body) appends; any number of [`SpoolReader`]s read from offset 0 and
//! follow the writer live (Tee mode replays from the spool and then continues with bytes still arriving). Readers
//! learn about progress through a `watch` channel, never by polling, in steps (see `PUBLISH_STEP`).
//!
//! When the spool has no room (quota or disk), [`Spool::write`] decides who yields (module `pressure`: the oldest
//! upload has priority): a yielding upload's file is closed at once and its writer fails with [`SpoolError`] (507),
//! except a Tee upload whose attempt is relaying it, which goes on without its file and without replay (module
//! `relay`).
//!
//! File I/O is plain positional `pwrite`/`pread` on the async thread, like nginx's default: the writes land in the
//! page cache in batches of at least 64 KiB (a chunk read past hyper, up to 1 MiB, is written as it came, or spliced
//! into the file from a [`BodyPipe`] without passing through memory), cheaper than a thread hop per chunk. Readers
//! take file bytes read back into memory, also the bytes a Tee attempt sends moments after they were written: sent
//! with `sendfile` instead, the page-cache pages reached the upstream's socket by reference, and on loopback the
//! upstream then needed a quarter more CPU to receive them; a 1 GiB Tee upload took 1.33 × as long as direct with
//! `sendfile` and 1.18 × with the read back, for 0.09 s more of Holdfast's CPU (`docs/benchmarks.md`, "Stop 16").

mod pace;
mod pipe;
mod pressure;
mod quota;
mod reader;
mod relay;

pub use pace::LEAD as PACE_LEAD;
pub use pipe::BodyPipe;
pub use quota::SpoolQuota;
pub use reader::{Available, ReadError, SpoolReader};

use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::metrics::Metrics;

/// Bytes gathered in memory before one write to the spool file, once the body has spilled to disk.
const WRITE_BATCH: usize = 64 * 1024;
/// For live readers (Tee mode), the chunks the reader has not taken yet are kept as received, up to this many bytes,
/// so that a reader just behind the writer takes them without a read back from the file. Only a body of unknown
/// length keeps the window; it is read through hyper, 64 KiB at a time, and hyper's reader (the attempt's body
/// feeder) normally keeps up; a slow reader's share of the window is dropped as it moves on, so a slow upload holds
/// next to nothing here.
///
/// A reader that falls further behind (the upstream is slower than the client and the writer is not pacing) reads
/// back from the file, which is still in the page cache.
const RECENT_WINDOW: usize = 2 * 1024 * 1024 + 256 * 1024;
/// The window while no reader is open (the attempt failed, or waits for an endpoint): the next reader starts from
/// the beginning of the file and needs the window only once it has caught up, so many requests waiting together do
/// not each hold the full window.
const IDLE_WINDOW: usize = 256 * 1024;
/// Readers hear of new bytes once this many have come since they last heard, or when the client's next bytes are
/// not there yet ([`Spool::publish`]): a reader on another worker is woken once per step rather than once per chunk
/// of the client's body.
const PUBLISH_STEP: u64 = 256 * 1024;

/// Why a spool stopped taking bytes.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool quota of {quota} bytes is used up")]
    QuotaExceeded { quota: u64 },
    #[error("the spool directory's disk is full")]
    DiskFull,
    #[error("spool file I/O failed: {0}")]
    Io(std::io::Error),
}

impl SpoolError {
    /// The spool has no room for more bytes, which another upload's yielding may change.
    pub fn is_no_room(&self) -> bool {
        matches!(self, SpoolError::QuotaExceeded { .. } | SpoolError::DiskFull)
    }
}

/// Why an upload yielded its spool space: the error its writer meets from then on.
#[derive(Debug, Clone, Copy)]
enum GaveUp {
    Quota(u64),
    Disk,
}

impl GaveUp {
    fn of(error: &SpoolError) -> Self {
        match error {
            SpoolError::QuotaExceeded { quota } => GaveUp::Quota(*quota),
            _ => GaveUp::Disk,
        }
    }

    fn error(self) -> SpoolError {
        match self {
            GaveUp::Quota(quota) => SpoolError::QuotaExceeded { quota },
            GaveUp::Disk => SpoolError::DiskFull,
        }
    }
}

impl From<std::io::Error> for SpoolError {
    fn from(error: std::io::Error) -> Self {
        use std::io::ErrorKind;
        match error.kind() {
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge => SpoolError::DiskFull,
            _ => SpoolError::Io(error),
        }
    }
}

/// How far the writer has got; readers wait on changes of this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// `len` bytes are readable and more may come.
    Open { len: u64 },
    /// The body is complete at `len` bytes.
    Complete { len: u64 },
    /// The client's body ended early or was refused: readers must fail, so the upstream never sees a body that
    /// looks complete.
    Aborted,
}

/// Where the spool directory is and how much of it requests may use together.
#[derive(Clone)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    pub quota: Arc<SpoolQuota>,
    pub metrics: Arc<Metrics>,
}

/// A request body held for replay. Cheap to share: clone the `Arc`.
pub struct Spool {
    inner: Mutex<Inner>,
    progress: watch::Sender<Progress>,
    /// Woken when the body completes or is aborted, for [`Spool::ended`]: a delivery waiting for an endpoint while
    /// the body arrives is not woken by every step of progress.
    end: Notify,
    /// When the body completed: a delivery's wait for an endpoint is counted from then.
    completed_at: OnceLock<Instant>,
    /// The trailer fields that ended the client's body, if it had any (set before [`Spool::finish`]): every attempt
    /// sends them after the body where its protocol can (HTTP/2, chunked HTTP/1.1).
    trailers: OnceLock<http::HeaderMap>,
    config: SpoolConfig,
    memory_limit: usize,
    /// The declared length does not fit the memory buffer: go to disk with the first byte instead of copying the
    /// memory buffer over later (and holding it meanwhile).
    straight_to_disk: bool,
    /// Readers follow the writer (Tee mode): tell them of progress in steps, and pace the writer.
    live_readers: bool,
    /// Keep [`RECENT_WINDOW`] for them: only for a body of unknown length, whose reader is hyper's body feeder
    /// ([`SpoolReader::next_chunk`]). A body of known length is sent over a plain connection, which takes its
    /// bytes from the file ([`SpoolReader::next_segment`]) and would leave the window unused.
    keep_recent: bool,
    pace: pace::Pace,
    /// Admission order, for who yields under spool pressure (module `pressure`): lower is older.
    seq: u64,
    /// This spool, for the register of spools writing to disk.
    me: Weak<Spool>,
}

struct Inner {
    /// Whole body while in memory; afterwards the tail not yet written to `file`.
    pending: BytesMut,
    file: Option<Arc<File>>,
    file_len: u64,
    /// Quota bytes held by this spool; released on drop.
    reserved: u64,
    /// The latest chunks with their offsets, for live readers.
    recent: VecDeque<(u64, Bytes)>,
    recent_bytes: usize,
    /// The length readers were last told about.
    published: u64,
    /// Set once a Tee upload gave up its file and relays its body without replay.
    relay: Option<relay::Relay>,
    /// Set once the upload yielded its space: every write fails.
    gave_up: Option<GaveUp>,
}

impl Spool {
    /// A new empty spool. `expected_len`, when the client declared a Content-Length, reserves the quota up front so
    /// that a body that cannot fit is refused before a byte of it is read. `live_readers`: readers will follow the
    /// writer (Tee mode) rather than start once the body is complete.
    pub fn new(
        config: SpoolConfig,
        memory_limit: u64,
        expected_len: Option<u64>,
        live_readers: bool,
    ) -> Result<Arc<Self>, SpoolError> {
        let memory_limit = usize::try_from(memory_limit).unwrap_or(usize::MAX);
        let mut reserved = 0;
        let straight_to_disk = expected_len.is_some_and(|len| len > memory_limit as u64);
        if let Some(len) = expected_len.filter(|_| straight_to_disk) {
            config.quota.reserve(len)?;
            reserved = len;
        }
        let (progress, _) = watch::channel(Progress::Open { len: 0 });
        let inner = Inner {
            pending: BytesMut::new(),
            file: None,
            file_len: 0,
            reserved,
            recent: VecDeque::new(),
            recent_bytes: 0,
            published: 0,
            relay: None,
            gave_up: None,
        };
        let seq = config.quota.pressure.admit();
        let spool = |me: &Weak<Spool>| Spool {
            inner: Mutex::new(inner),
            progress,
            end: Notify::new(),
            completed_at: OnceLock::new(),
            trailers: OnceLock::new(),
            config,
            memory_limit,
            straight_to_disk,
            live_readers,
            keep_recent: live_readers && expected_len.is_none(),
            pace: pace::Pace::default(),
            seq,
            me: me.clone(),
        };
        Ok(Arc::new_cyclic(spool))
    }

    /// A complete body that is already in a file (a finished resumable upload), read from it as a spooled body is:
    /// replays read it again from offset 0. The file belongs to its owner: its quota share is the owner's, and it is
    /// neither unlinked nor truncated here, only closed when the spool is dropped.
    pub fn complete_from_file(config: SpoolConfig, file: File, len: u64) -> Arc<Self> {
        let (progress, _) = watch::channel(Progress::Complete { len });
        config.metrics.spool_files.inc();
        config.metrics.spool_bytes.inc_by(len as i64);
        let inner = Inner {
            pending: BytesMut::new(),
            file: Some(Arc::new(file)),
            file_len: len,
            reserved: 0,
            recent: VecDeque::new(),
            recent_bytes: 0,
            published: len,
            relay: None,
            gave_up: None,
        };
        let completed_at = OnceLock::new();
        let _ = completed_at.set(Instant::now());
        Arc::new(Spool {
            inner: Mutex::new(inner),
            progress,
            end: Notify::new(),
            completed_at,
            trailers: OnceLock::new(),
            config,
            memory_limit: 0,
            straight_to_disk: true,
            live_readers: false,
            keep_recent: false,
            pace: pace::Pace::default(),
            // Never writes: it never yields, nor makes another yield.
            seq: 0,
            me: Weak::new(),
        })
    }

    /// Appends bytes from the client. Readers hear of them within `PUBLISH_STEP` bytes, or at the latest when the
    /// writer calls [`Spool::publish`] or [`Spool::finish`].
    /// Without room, fails without keeping any of `data`; [`Spool::write`] makes room and tries again.
    pub fn append(&self, data: &Bytes) -> Result<(), SpoolError> {
        let mut inner = self.lock();
        if let Some(gave_up) = inner.gave_up {
            return Err(gave_up.error());
        }
        if let Some(relay) = &mut inner.relay {
            match self.pace.readers_open() {
                true => relay.push(data, self.pace.position()),
                // No attempt is relaying any more, and none can start: nobody will read these bytes.
                false => relay.skip(data.len() as u64),
            }
            self.free_taken(&mut inner);
            self.appended(inner);
            return Ok(());
        }
        let offset = inner.len();
        if inner.file.is_none() && (self.straight_to_disk || inner.pending.len() + data.len() > self.memory_limit) {
            self.spill(&mut inner)?;
        }
        if inner.file.is_none() {
            inner.pending.extend_from_slice(data);
        } else {
            // The batch never grows past WRITE_BATCH: flush first, and write a large chunk as it is.
            if inner.pending.len() + data.len() > WRITE_BATCH {
                self.flush(&mut inner)?;
            }
            if data.len() >= WRITE_BATCH {
                self.write_through(&mut inner, data)?;
            } else {
                inner.pending.extend_from_slice(data);
            }
        }
        // Only once the bytes are kept: a failed append leaves nothing behind.
        if self.keep_recent {
            inner.recent.push_back((offset, data.clone()));
            inner.recent_bytes += data.len();
            let taken = self.pace.position();
            let window = if self.pace.readers_open() { RECENT_WINDOW } else { IDLE_WINDOW };
            while let Some((start, old)) = inner.recent.front() {
                let consumed = start + old.len() as u64 <= taken;
                if !consumed && (inner.recent_bytes <= window || inner.recent.len() == 1) {
                    break;
                }
                inner.recent_bytes -= old.len();
                inner.recent.pop_front();
            }
        }
        self.appended(inner);
        Ok(())
    }

    /// Appends bytes from the client as [`Spool::append`] does, making room when there is none: a newer upload
    /// yields its space, or this one does (module `pressure`). A Tee upload whose attempt relays it yields by giving
    /// up its file and goes on (module `relay`), held to the attempt's pace; any other fails with the error.
    pub async fn write(&self, data: &Bytes) -> Result<(), SpoolError> {
        let mut search = pressure::Search::new();
        loop {
            match self.append(data) {
                Err(error) if error.is_no_room() => self.make_room(&mut search, error).await?,
                result => break result?,
            }
        }
        if self.is_relaying() {
            self.paced().await;
        }
        Ok(())
    }

    /// [`Spool::append_from_pipe`] with [`Spool::write`]'s handling of a spool without room, except that the pipe's
    /// bytes cannot be taken back once a write failed: this upload yields at once (507). A declared length has its
    /// quota and blocks from the start, so this is rare.
    pub async fn write_from_pipe(&self, pipe: &BodyPipe, len: usize) -> Result<(), SpoolError> {
        if let Err(error) = self.append_from_pipe(pipe, len) {
            if error.is_no_room() {
                self.give_up(&error);
            }
            return Err(error);
        }
        if self.is_relaying() {
            self.paced().await;
        }
        Ok(())
    }

    /// After a write found no room: makes a newer upload yield and waits for its space, waits for space being
    /// freed, or yields this upload — within the search's budget, so a writer never spins.
    async fn make_room(&self, search: &mut pressure::Search, error: SpoolError) -> Result<(), SpoolError> {
        let pressure = &self.config.quota.pressure;
        let freed = pressure.freed();
        tokio::pin!(freed);
        // Enabled before anything is freed below: a file closed at once must not be missed.
        freed.as_mut().enable();
        loop {
            if self.lock().gave_up.is_some() || !search.look() {
                return self.yield_own(error);
            }
            match pressure.room_for(self.seq) {
                pressure::Room::Yield(newer) => {
                    if !newer.yield_space(&error) {
                        continue;
                    }
                }
                pressure::Room::Wait => {}
                pressure::Room::None => return self.yield_own(error),
            }
            // Woken when a file has closed; at the deadline the next append fails and the budget is spent.
            let _ = tokio::time::timeout_at(search.deadline(), freed).await;
            return Ok(());
        }
    }

    /// An older upload needs this one's space: gives up the file, relaying the body on if an attempt relays it,
    /// else failing the upload. False when there was nothing to give (the body completed, or it yielded already).
    fn yield_space(&self, cause: &SpoolError) -> bool {
        let mut inner = self.lock();
        if inner.file.is_none() || inner.gave_up.is_some() || inner.relay.is_some() || !self.is_arriving() {
            return false;
        }
        if !self.relay_locked(&mut inner) {
            self.give_up_locked(&mut inner, cause);
        }
        true
    }

    /// This upload yields: relays on if it can, else gives up its space and returns `error`.
    fn yield_own(&self, error: SpoolError) -> Result<(), SpoolError> {
        let mut inner = self.lock();
        if let Some(gave_up) = inner.gave_up {
            return Err(gave_up.error());
        }
        if inner.relay.is_some() || self.relay_locked(&mut inner) {
            return Ok(());
        }
        self.give_up_locked(&mut inner, &error);
        Err(error)
    }

    fn give_up(&self, cause: &SpoolError) {
        let mut inner = self.lock();
        if inner.gave_up.is_none() {
            self.give_up_locked(&mut inner, cause);
        }
    }

    /// Frees the file at once and fails every later write with `cause`.
    fn give_up_locked(&self, inner: &mut Inner, cause: &SpoolError) {
        inner.gave_up = Some(GaveUp::of(cause));
        inner.pending = BytesMut::new();
        inner.recent.clear();
        inner.recent_bytes = 0;
        let len = inner.len();
        self.drop_file(inner);
        self.config.metrics.spool_yielded.inc();
        tracing::info!(seq = self.seq, len, %cause, "upload yields its spool space");
    }

    /// A Tee upload whose attempt is reading goes on without writing to disk (module `relay`): the bytes the
    /// attempt has taken are freed at once, the rest of the file once it has been read. False when no attempt reads.
    fn relay_locked(&self, inner: &mut Inner) -> bool {
        if !self.live_readers || !self.pace.readers_open() {
            return false;
        }
        let since = inner.file_len;
        // The batch not written yet (or the whole body, still in memory) is held with the bytes to come.
        let tail = Bytes::copy_from_slice(&inner.pending);
        inner.pending = BytesMut::new();
        inner.recent.clear();
        inner.recent_bytes = 0;
        inner.relay = Some(relay::Relay::new(since, tail));
        self.config.quota.pressure.done(self.seq);
        self.free_taken(inner);
        self.config.metrics.tee_unspooled.inc();
        tracing::info!(seq = self.seq, since, "Tee upload gives up its spool file and relays on without replay");
        true
    }

    /// A relayed upload's file bytes that the attempt has taken are freed: the whole file once the attempt is past
    /// it, else its head (a hole punched in it, where the filesystem can).
    fn free_taken(&self, inner: &mut Inner) {
        let taken = self.pace.position();
        if inner.file.is_none() {
            return;
        }
        if taken >= inner.file_len {
            self.drop_file(inner);
            return;
        }
        let Some(relay) = inner.relay.as_mut() else { return };
        // Whole pages only: a partial page is not freed anyway.
        let upto = taken & !4095;
        if upto <= relay.freed_before {
            return;
        }
        let file = inner.file.as_ref().expect("checked above");
        let flags = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
        if rustix::fs::fallocate(file, flags, 0, upto).is_ok() {
            let freed = (upto - relay.freed_before).min(inner.reserved);
            relay.freed_before = upto;
            inner.reserved -= freed;
            self.config.quota.release(freed);
            self.config.quota.pressure.freed_now();
        }
    }

    /// Closes the file (in the background if large) and gives back its quota; the spool no longer writes to disk.
    fn drop_file(&self, inner: &mut Inner) {
        let (file, file_len, reserved) = (inner.file.take(), inner.file_len, inner.reserved);
        (inner.file_len, inner.reserved) = (0, 0);
        self.config.quota.pressure.done(self.seq);
        self.let_go(file, file_len, reserved);
    }

    /// Whether a Tee upload relays its body without its file (no replay is possible).
    fn is_relaying(&self) -> bool {
        self.lock().relay.is_some()
    }

    /// Whether another attempt can read the body from its start: false once the upload gave up its file.
    pub fn can_replay(&self) -> bool {
        let inner = self.lock();
        inner.relay.is_none() && inner.gave_up.is_none()
    }

    /// The body's length when the upload gave up its spool file and went on as a plain stream, if it did.
    pub fn relayed_since(&self) -> Option<u64> {
        self.lock().relay.as_ref().map(|relay| relay.since)
    }

    /// Whether the body may come through a [`BodyPipe`] ([`Spool::append_from_pipe`]): it goes to disk from its
    /// first byte, and no window of received chunks is kept for readers.
    pub fn takes_pipe(&self) -> bool {
        self.straight_to_disk && !self.keep_recent
    }

    /// Appends the `len` bytes waiting in `pipe` (filled from the client's socket) to the file, as [`Spool::append`]
    /// would have appended them from memory. Only for a spool that [`takes_pipe`](Spool::takes_pipe).
    pub fn append_from_pipe(&self, pipe: &BodyPipe, len: usize) -> Result<(), SpoolError> {
        debug_assert!(self.takes_pipe());
        let mut inner = self.lock();
        if let Some(gave_up) = inner.gave_up {
            return Err(gave_up.error());
        }
        if inner.relay.is_some() {
            // An older upload took this one's file: the attempt takes the bytes from memory.
            let data = Bytes::from(pipe.take(len)?);
            drop(inner);
            return self.append(&data);
        }
        if inner.file.is_none() {
            self.spill(&mut inner)?;
        }
        // Bytes that came through hyper before the hand-over go first.
        if !inner.pending.is_empty() {
            self.flush(&mut inner)?;
        }
        self.write_through_with(&mut inner, len as u64, |file, offset| pipe.drain_to(file, offset, len))?;
        self.appended(inner);
        Ok(())
    }

    /// After an append: the pace learns of it, and readers once a step's worth has come.
    fn appended(&self, inner: MutexGuard<'_, Inner>) {
        self.pace.written(inner.len());
        if self.live_readers && inner.len() - inner.published >= PUBLISH_STEP {
            self.publish_locked(inner);
        }
    }

    /// Waits until the reader following the writer (Tee mode) is within [`PACE_LEAD`] of it; returns at once when
    /// no reader is open or readers do not follow the writer (module `spool::pace`).
    pub async fn paced(&self) {
        if self.live_readers {
            self.pace.wait(|| self.publish()).await;
        }
    }

    /// Whether readers following the writer (Tee mode) have bytes still to hear of.
    pub fn has_unpublished(&self) -> bool {
        self.live_readers && {
            let inner = self.lock();
            inner.len() > inner.published
        }
    }

    /// Tells readers about every byte appended so far. The writer calls it when the client's next bytes are not
    /// there yet, so a slow client's bytes are never held back.
    pub fn publish(&self) {
        let inner = self.lock();
        if inner.len() > inner.published {
            self.publish_locked(inner);
        }
    }

    fn publish_locked(&self, mut inner: MutexGuard<'_, Inner>) {
        let len = inner.len();
        inner.published = len;
        drop(inner);
        self.progress.send_replace(Progress::Open { len });
    }

    /// Marks the body complete. The tail stays in memory: it is at most one batch.
    pub fn finish(&self) {
        // A complete body no longer yields to others: its delivery needs it.
        self.config.quota.pressure.done(self.seq);
        let mut inner = self.lock();
        let len = inner.len();
        inner.published = len;
        drop(inner);
        // Set before the state changes: whoever sees the body complete finds the time.
        let _ = self.completed_at.set(Instant::now());
        self.progress.send_replace(Progress::Complete { len });
        self.end.notify_waiters();
    }

    /// Keeps the trailer fields that ended the body; call before [`Spool::finish`], so that a reader that sees the
    /// body complete finds them.
    pub fn set_trailers(&self, trailers: http::HeaderMap) {
        let _ = self.trailers.set(trailers);
    }

    /// The body's trailer fields, once it is complete.
    pub fn trailers(&self) -> Option<&http::HeaderMap> {
        self.trailers.get()
    }

    /// Marks the body as never going to complete; readers fail.
    pub fn abort(&self) {
        self.config.quota.pressure.done(self.seq);
        self.progress.send_replace(Progress::Aborted);
        self.end.notify_waiters();
    }

    /// Whether the client's body is still arriving: neither complete nor aborted.
    pub fn is_arriving(&self) -> bool {
        matches!(*self.progress.borrow(), Progress::Open { .. })
    }

    /// When the client's body completed; `None` while it arrives, or when it was aborted.
    pub fn completed_at(&self) -> Option<Instant> {
        self.completed_at.get().copied()
    }

    /// Returns once the client's body is complete, or fails once it will never be.
    pub async fn ended(&self) -> Result<(), ReadError> {
        loop {
            let ended = self.end.notified();
            tokio::pin!(ended);
            // Registered before the state is looked at, so an end in between is not missed.
            ended.as_mut().enable();
            match *self.progress.borrow() {
                Progress::Complete { .. } => return Ok(()),
                Progress::Aborted => return Err(ReadError::Aborted),
                Progress::Open { .. } => {}
            }
            ended.await;
        }
    }

    /// Bytes held so far.
    pub fn len(&self) -> u64 {
        self.lock().len()
    }

    /// True while nothing has been appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether any of the body went to disk.
    pub fn on_disk(&self) -> bool {
        self.lock().file.is_some()
    }

    /// A reader from offset 0.
    pub fn reader(self: &Arc<Self>) -> SpoolReader {
        SpoolReader::new(self.clone())
    }

    /// The bytes at `offset`: the rest of a recent chunk as it is, else up to `max` bytes copied from the file or the
    /// in-memory tail; an empty buffer when nothing is there yet. A read never straddles the file and the tail.
    fn read_at(&self, offset: u64, max: usize) -> std::io::Result<Bytes> {
        let inner = self.lock();
        if inner.gave_up.is_some() {
            return Err(std::io::Error::other("the upload yielded its spool space"));
        }
        if let Some(relay) = &inner.relay {
            if offset >= relay.since {
                return relay.at(offset);
            }
            // The rest of the file, which the attempt had not taken yet: read from it while it is there.
            let file = inner.file.clone().filter(|_| offset >= relay.freed_before).ok_or_else(relay::gone)?;
            let available = usize::try_from(inner.file_len - offset).unwrap_or(usize::MAX);
            drop(inner);
            return read_back(&file, offset, max.min(available)).map(Bytes::from);
        }
        if let Some(chunk) = recent_at(&inner.recent, offset) {
            return Ok(chunk);
        }
        if offset < inner.file_len {
            let file = inner.file.clone().expect("file_len > 0 implies a file");
            let available = usize::try_from(inner.file_len - offset).unwrap_or(usize::MAX);
            drop(inner);
            return read_back(&file, offset, max.min(available)).map(Bytes::from);
        }
        let start = usize::try_from(offset - inner.file_len).unwrap_or(usize::MAX);
        if start >= inner.pending.len() {
            return Ok(Bytes::new());
        }
        let end = inner.pending.len().min(start + max);
        Ok(Bytes::copy_from_slice(&inner.pending[start..end]))
    }

    fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Moves the in-memory body to a new unlinked file.
    fn spill(&self, inner: &mut Inner) -> Result<(), SpoolError> {
        // A spill that failed for want of room has its file already, and is tried again.
        if inner.file.is_none() {
            let file = tempfile::tempfile_in(&self.config.dir)?;
            if self.straight_to_disk {
                allocate(&file, inner.reserved)?;
            }
            inner.file = Some(Arc::new(file));
            self.config.metrics.spool_files.inc();
            self.config.quota.pressure.writing(self.seq, self.me.clone());
        }
        self.flush(inner)?;
        // From now on only one write batch is buffered: give back what the memory phase grew.
        inner.pending = BytesMut::with_capacity(WRITE_BATCH);
        Ok(())
    }

    fn flush(&self, inner: &mut Inner) -> Result<(), SpoolError> {
        let batch = std::mem::take(&mut inner.pending);
        let result = self.write_through(inner, &batch);
        inner.pending = batch;
        // A batch that could not be written is kept, to be written once there is room.
        if result.is_ok() {
            inner.pending.clear();
        }
        result
    }

    /// Appends bytes to the file (which must exist), under the quota. Only called with `pending` empty, so the
    /// file stays in order.
    fn write_through(&self, inner: &mut Inner, data: &[u8]) -> Result<(), SpoolError> {
        self.write_through_with(inner, data.len() as u64, |file, offset| file.write_all_at(data, offset))
    }

    /// Appends `n` bytes to the file with `write(file, offset)`, under the quota; see [`Spool::write_through`].
    fn write_through_with(
        &self,
        inner: &mut Inner,
        n: u64,
        write: impl FnOnce(&File, u64) -> std::io::Result<()>,
    ) -> Result<(), SpoolError> {
        let needed = (inner.file_len + n).saturating_sub(inner.reserved);
        if needed > 0 {
            self.config.quota.reserve(needed)?;
            inner.reserved += needed;
        }
        let file = inner.file.as_ref().expect("writes happen only once there is a file");
        write(file, inner.file_len)?;
        inner.file_len += n;
        self.config.metrics.spool_bytes.inc_by(n as i64);
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the byte counts inconsistent in a way that matters more
        // than losing the request, so a poisoned lock is simply taken over.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Gives a file of declared length its disk blocks at once. Writing into allocated blocks skips the filesystem's
/// per-page block reservation (0.34 → 0.24 s of CPU per GiB written in 256 KiB writes on ext4, close included), and
/// a disk that cannot hold the body says so with its first bytes. The file's size stays what was written
/// (`KEEP_SIZE`): past it there is nothing to read. Filesystems without fallocate just go on.
fn allocate(file: &File, len: u64) -> Result<(), SpoolError> {
    use rustix::io::Errno;
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::KEEP_SIZE, 0, len) {
        Ok(()) => Ok(()),
        Err(Errno::NOSPC | Errno::DQUOT | Errno::FBIG) => Err(SpoolError::DiskFull),
        Err(Errno::OPNOTSUPP | Errno::NOSYS) => Ok(()),
        Err(errno) => Err(SpoolError::Io(errno.into())),
    }
}

/// Reads `len` bytes of the file at `offset` into a new buffer without zeroing it first (as `read_exact_at` would
/// need): a Tee attempt behind its client and every replay read each spooled byte back, and zeroing was one more
/// pass over all of them.
fn read_back(file: &File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    // `with_capacity` gives exactly `len` (a documented guarantee of `Vec`), so reads into the spare capacity never
    // go past the bytes asked for.
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let at = offset + buf.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
    Ok(buf)
}

impl Inner {
    fn len(&self) -> u64 {
        match &self.relay {
            Some(relay) => relay.len(),
            None => self.file_len + self.pending.len() as u64,
        }
    }
}

/// The rest of the recent chunk at `offset`, if the window still has it: a slice of bytes already held, so it is
/// handed over whole (up to 1 MiB from a direct read) rather than cut to the size of a read back from the file.
fn recent_at(recent: &VecDeque<(u64, Bytes)>, offset: u64) -> Option<Bytes> {
    let (start, chunk) =
        recent.iter().rev().find(|(start, chunk)| *start <= offset && offset < start + chunk.len() as u64)?;
    let from = usize::try_from(offset - start).ok()?;
    Some(chunk.slice(from..))
}

impl Drop for Spool {
    fn drop(&mut self) {
        let mut inner = self.lock();
        let (reserved, file_len, file) = (inner.reserved, inner.file_len, inner.file.take());
        drop(inner);
        self.config.quota.pressure.done(self.seq);
        self.let_go(file, file_len, reserved);
    }
}

impl Spool {
    /// Closes `file` and gives back its quota and gauges. They count the disk the file holds, so they are given
    /// back once it is closed: with a spool directory sized to `--spool-quota`, a request admitted meanwhile must
    /// find its blocks free; and a writer waiting for room is told then (module `pressure`).
    fn let_go(&self, file: Option<Arc<File>>, file_len: u64, reserved: u64) {
        let (quota, metrics, had_file) = (self.config.quota.clone(), self.config.metrics.clone(), file.is_some());
        if had_file {
            quota.pressure.closing();
        }
        let release = move || {
            quota.release(reserved);
            metrics.spool_bytes.dec_by(file_len as i64);
            if had_file {
                metrics.spool_files.dec();
                quota.pressure.closed();
            }
        };
        match file {
            Some(file) => close_in_background(file, file_len, release),
            None => release(),
        }
    }
}

/// Files at least this large are closed on a blocking thread rather than where the spool is dropped.
const BACKGROUND_CLOSE: u64 = 8 * 1024 * 1024;

/// Closes a spool file, then runs `closed`. Closing the last handle of an unlinked file frees its page cache and its
/// blocks — 32 ms for 1 GiB on ext4, measured — and a spool is dropped by the request that is about to answer its
/// client, on the worker that serves other connections too. So a large file is closed on tokio's blocking pool;
/// without a runtime it is closed here. A job the blocking pool drops unrun (one spawned while the runtime shuts down,
/// by a task dropped with it) closes the file and runs `closed` all the same, as it is dropped.
fn close_in_background(file: Arc<File>, len: u64, closed: impl FnOnce() + Send + 'static) {
    let closing = Closing { file: Some(file), closed: Some(closed) };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if len >= BACKGROUND_CLOSE => drop(runtime.spawn_blocking(move || drop(closing))),
        _ => drop(closing),
    }
}

/// A file to close and what to do once it is closed, both done when this is dropped.
struct Closing<F: FnOnce()> {
    file: Option<Arc<File>>,
    closed: Option<F>,
}

impl<F: FnOnce()> Drop for Closing<F> {
    fn drop(&mut self) {
        drop(self.file.take());
        if let Some(closed) = self.closed.take() {
            closed();
        }
    }
}

#[cfg(test)]
mod tests;

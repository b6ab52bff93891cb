//! When the file source reads: once at start, then when the filesystem says a file changed (inotify on Linux,
//! through the `notify` crate), and every [`RESCAN_INTERVAL`] in full as a safety net for filesystems whose changes
//! raise no events (some network and FUSE mounts) and for a queue of events that overflowed.
//!
//! An event names a file: that file alone is read again, whether it was written in place (acted on when it is
//! closed, not on each write, so a half-written file is not read as the new version), replaced by an editor's
//! rename, or removed. An event on a name starting with `..` is a ConfigMap volume swapping its `..data` link, which
//! changes every file at once without an event naming any: the whole directory is scanned. After the first read, a
//! full scan (that, or the periodic one) compares metadata on the blocking pool beside the loop and hands back the
//! files to read, so that an edit announced meanwhile is not held up by ten thousand `stat`s. Reading and parsing run
//! on the blocking pool, so that thousands of files at start never hold up the runtime the publisher translates
//! on; the first publication waits for the first complete read anyway ([`Shared::listed`]).

use super::files::{is_manifest, FileError, FileSource, Scan};
use crate::drain::Shutdown;
use crate::metrics::SourceMetrics;
use crate::publish::Shared;
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the whole directory is compared with what was read, whatever the events said.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(10);

/// The name the file source waits under before the first publication.
pub const SOURCE: &str = "files";

/// What the next pass reads.
#[derive(Debug)]
enum Pass {
    All,
    Files(HashSet<PathBuf>),
}

/// What one filesystem event asks for.
enum Wake {
    All,
    Files(Vec<PathBuf>),
}

/// Reads the directory until shutdown, feeding the index what changed and counting it as watch events. Registered
/// as a source the first publication waits for when called, before the future first runs.
pub fn watch(
    source: FileSource,
    shared: Arc<Shared>,
    metrics: SourceMetrics,
    shutdown: Shutdown,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    shared.expect(SOURCE);
    run(source, shared, metrics, shutdown)
}

async fn run(source: FileSource, shared: Arc<Shared>, metrics: SourceMetrics, mut shutdown: Shutdown) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Kept alive for the loop's life: dropping it stops the events.
    let _watcher = match start_watcher(&source, tx) {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            tracing::warn!(%error, every = ?RESCAN_INTERVAL, "Cannot watch the manifest directory; reading it in full periodically");
            None
        }
    };
    let mut rescan = tokio::time::interval_at(tokio::time::Instant::now() + RESCAN_INTERVAL, RESCAN_INTERVAL);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut log = Log::default();
    let mut source = Some(source);
    // The first pass reads everything in one piece: nothing is published before it anyway.
    let mut pass = Some(Pass::All);
    let mut listed = false;
    let mut rescanning = Rescan::default();
    loop {
        if let Some(next) = pass.take() {
            let (mut taken, s) = (source.take().expect("the source is back after each pass"), shared.clone());
            let job = tokio::task::spawn_blocking(move || {
                let result = match next {
                    Pass::All => taken.scan(&s),
                    Pass::Files(paths) => Ok(taken.refresh(paths, &s)),
                };
                (taken, result)
            });
            let Ok((taken, result)) = job.await else { return };
            let files = taken.len();
            source = Some(taken);
            if let Some(scan) = log.result(result) {
                scan.tally.count(!listed, &metrics);
                if !listed {
                    tracing::info!(files, "Read the manifest directory");
                    shared.listed(SOURCE);
                    listed = true;
                } else if scan.changed {
                    tracing::debug!(files, "Manifest directory changed");
                }
            }
        }
        let source_now = source.as_ref().expect("the source is back after each pass");
        pass = tokio::select! {
            Some(wake) = rx.recv() => match drain(wake, &mut rx) {
                Pass::All if listed => {
                    rescanning.start(source_now);
                    None
                }
                pass => Some(pass),
            },
            _ = rescan.tick() => {
                rescanning.start(source_now);
                None
            }
            stale = rescanning.done() => match stale {
                Ok(paths) => {
                    rescanning.again_if_asked(source_now);
                    Some(Pass::Files(paths.into_iter().collect()))
                }
                Err(error) => {
                    log.result(Err(error));
                    None
                }
            },
            _ = shutdown.wait() => return,
        };
        // Until the directory was read once, anything less than all of it would leave files unread.
        if !listed && pass.is_some() {
            pass = Some(Pass::All);
        }
    }
}

/// A full re-scan running on the blocking pool beside the loop: it only compares metadata (tens of milliseconds of
/// `stat`s at ten thousand files) and hands back the files to read, which the loop then reads as it reads the files
/// an event names. Events keep being served meanwhile, so an edit never waits for a re-scan.
#[derive(Default)]
struct Rescan {
    running: Option<tokio::task::JoinHandle<Result<Vec<PathBuf>, FileError>>>,
    /// Asked for while one was running: what it compared may predate the request.
    asked_again: bool,
}

impl Rescan {
    fn start(&mut self, source: &FileSource) {
        if self.running.is_some() {
            self.asked_again = true;
            return;
        }
        let known = source.known();
        self.running = Some(tokio::task::spawn_blocking(move || known.stale(is_manifest)));
    }

    /// The running re-scan's result; pending forever while none runs.
    async fn done(&mut self) -> Result<Vec<PathBuf>, FileError> {
        let Some(running) = self.running.as_mut() else { return std::future::pending().await };
        let result = running.await;
        self.running = None;
        match result {
            Ok(stale) => stale,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // Cancelled: the runtime is shutting down.
            Err(_) => std::future::pending().await,
        }
    }

    fn again_if_asked(&mut self, source: &FileSource) {
        if std::mem::take(&mut self.asked_again) {
            self.start(source);
        }
    }
}

/// The pass for `first` and every event already queued behind it.
fn drain(first: Wake, rx: &mut mpsc::UnboundedReceiver<Wake>) -> Pass {
    let mut paths = HashSet::new();
    let mut all = false;
    let mut next = Some(first);
    // Bounded by what is queued now: events arriving meanwhile wait for the next pass.
    let mut budget = rx.len() + 1;
    while let Some(wake) = next.take() {
        match wake {
            Wake::All => all = true,
            Wake::Files(files) => paths.extend(files),
        }
        budget -= 1;
        if budget > 0 {
            next = rx.try_recv().ok();
        }
    }
    if all {
        Pass::All
    } else {
        Pass::Files(paths)
    }
}

fn start_watcher(source: &FileSource, tx: mpsc::UnboundedSender<Wake>) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Some(wake) = wake_for(event) {
            // The receiver is gone only at shutdown.
            let _ = tx.send(wake);
        }
    })?;
    watcher.watch(source.dir(), RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// What an event asks for; `None` for events that change no file's content (reads, attribute changes) and for
/// writes still in progress (their close follows).
fn wake_for(event: notify::Result<notify::Event>) -> Option<Wake> {
    let event = match event {
        Ok(event) => event,
        Err(error) => {
            tracing::debug!(%error, "Filesystem watch error; reading the directory in full");
            return Some(Wake::All);
        }
    };
    if event.need_rescan() {
        return Some(Wake::All);
    }
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Metadata(_)) => return None,
        _ => {}
    }
    let swap = |path: &PathBuf| path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(".."));
    if event.paths.iter().any(swap) {
        return Some(Wake::All);
    }
    Some(Wake::Files(event.paths))
}

/// Logs each reading problem once while it lasts, not on every pass.
#[derive(Default)]
struct Log {
    dir_unreadable: bool,
    rejected: BTreeSet<String>,
}

impl Log {
    fn result(&mut self, result: Result<Scan, FileError>) -> Option<Scan> {
        let scan = match result {
            Ok(scan) => scan,
            Err(error) => {
                if !self.dir_unreadable {
                    tracing::warn!(%error, "Cannot read the manifest directory; keeping the routes in force");
                }
                self.dir_unreadable = true;
                return None;
            }
        };
        self.dir_unreadable = false;
        let rejected: BTreeSet<String> = scan.rejected.iter().map(ToString::to_string).collect();
        for error in rejected.difference(&self.rejected) {
            tracing::warn!(%error, "Rejected a manifest file; the objects it defined before stay in force");
        }
        self.rejected = rejected;
        Some(scan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, RemoveKind, RenameMode};

    fn event(kind: EventKind, name: &str) -> notify::Result<notify::Event> {
        Ok(notify::Event::new(kind).add_path(PathBuf::from("/manifests").join(name)))
    }

    fn files(wake: Option<Wake>) -> Option<Vec<String>> {
        match wake? {
            Wake::All => Some(vec!["*".into()]),
            Wake::Files(paths) => Some(paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into()).collect()),
        }
    }

    #[test]
    fn a_file_is_read_again_once_written_renamed_or_removed_and_a_configmap_swap_reads_everything() {
        let close_write = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(files(wake_for(event(close_write, "app.yaml"))), Some(vec!["app.yaml".into()]));
        let renamed_to = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert_eq!(files(wake_for(event(renamed_to, "app.yaml"))), Some(vec!["app.yaml".into()]));
        let removed = EventKind::Remove(RemoveKind::File);
        assert_eq!(files(wake_for(event(removed, "app.yaml"))), Some(vec!["app.yaml".into()]));
        // Still being written: its close follows.
        let write = EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any));
        assert_eq!(files(wake_for(event(write, "app.yaml"))), None);
        let read = EventKind::Access(AccessKind::Close(AccessMode::Read));
        assert_eq!(files(wake_for(event(read, "app.yaml"))), None);
        // The kubelet renames `..data_tmp` over `..data`: every file's link now leads elsewhere.
        assert_eq!(files(wake_for(event(renamed_to, "..data"))), Some(vec!["*".into()]));
        assert_eq!(
            files(wake_for(event(EventKind::Create(CreateKind::Folder), "..2026_12_06"))),
            Some(vec!["*".into()])
        );
        let overflow = notify::Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
        assert_eq!(files(wake_for(Ok(overflow))), Some(vec!["*".into()]));
    }
}

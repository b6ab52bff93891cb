//! The access log: one line per finished request ([`line`]), on by default (`--access-log stderr`), to a file
//! (`--access-log PATH`), or off.
//!
//! A line is formatted into a buffer of the thread that finished the request, and the buffer is written out when it
//! holds a few KiB or when its worker's flusher comes by (every [`FLUSH_EVERY`]), not once per request: a `write`
//! per request costs about as much as the rest of a small GET's logging (nginx's `access_log … buffer=` does the
//! same). A line is never split across two writes. A thread without a flusher (not a worker) writes each line at
//! once. On shutdown each worker flushes its buffer as it stops.

mod line;
mod time;

use crate::exchange::Exchange;
use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often a worker writes out what its requests logged.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Written out past this much, below the 4 KiB a pipe writes whole (stderr is usually one), so that lines from
/// several threads never interleave.
const FLUSH_AT_PIPE: usize = 4000;
/// For a file, opened to append: each write lands whole at the end, whatever its size.
const FLUSH_AT_FILE: usize = 64 * 1024;

/// Where lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Off,
    Stderr,
    File(PathBuf),
}

/// The access log's settings (`--access-log`, `--access-log-query`, and `--log-format` for the shape of a line).
#[derive(Debug, Clone)]
pub struct Settings {
    pub destination: Destination,
    pub json: bool,
    pub with_query: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { destination: Destination::Stderr, json: false, with_query: false }
    }
}

enum Sink {
    Stderr,
    File(File),
}

impl Sink {
    fn flush_at(&self) -> usize {
        match self {
            Sink::Stderr => FLUSH_AT_PIPE,
            Sink::File(_) => FLUSH_AT_FILE,
        }
    }

    fn write(&self, bytes: &[u8]) {
        // A full disk or a closed stderr costs the log line, never the request.
        let _ = match self {
            Sink::Stderr => std::io::stderr().lock().write_all(bytes),
            Sink::File(file) => (&*file).write_all(bytes),
        };
    }
}

pub struct AccessLog {
    sink: Option<Arc<Sink>>,
    json: bool,
    with_query: bool,
}

/// Why the access log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the access log {path:?}: {source}")]
pub struct OpenError {
    path: PathBuf,
    source: std::io::Error,
}

thread_local! {
    /// Lines not written yet, and the sink they are for.
    static PENDING: RefCell<Option<(Arc<Sink>, Vec<u8>)>> = const { RefCell::new(None) };
    /// Whether a flusher looks after this thread's buffer.
    static FLUSHED: Cell<bool> = const { Cell::new(false) };
}

impl AccessLog {
    pub fn open(settings: &Settings) -> Result<Self, OpenError> {
        let sink = match &settings.destination {
            Destination::Off => None,
            Destination::Stderr => Some(Sink::Stderr),
            Destination::File(path) => {
                let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
                Some(Sink::File(file.map_err(|source| OpenError { path: path.clone(), source })?))
            }
        };
        Ok(AccessLog { sink: sink.map(Arc::new), json: settings.json, with_query: settings.with_query })
    }

    /// Logs a finished request.
    pub fn write(&self, exchange: &Exchange, status: u16, duration: Duration, tunnel: Option<Duration>) {
        let Some(sink) = &self.sink else { return };
        exchange.with_attempts(|attempts| {
            let entry = line::Entry { exchange, status, duration, tunnel, attempts, with_query: self.with_query };
            self.append(sink, &entry);
        });
    }

    fn append(&self, sink: &Arc<Sink>, entry: &line::Entry<'_>) {
        let now = SystemTime::now();
        PENDING.with(|pending| {
            let mut pending = pending.borrow_mut();
            // Lines for another sink (another dataplane in the same process) go out first.
            if pending.as_ref().is_some_and(|(other, _)| !Arc::ptr_eq(other, sink)) {
                if let Some((other, buffer)) = pending.take() {
                    other.write(&buffer);
                }
            }
            let (_, buffer) = pending.get_or_insert_with(|| (sink.clone(), Vec::with_capacity(sink.flush_at() + 1024)));
            let before = buffer.len();
            match self.json {
                true => line::json(entry, now, buffer),
                false => line::text(entry, now, buffer),
            }
            let flush_at = sink.flush_at();
            if buffer.len() >= flush_at || !FLUSHED.get() {
                // Whole lines only: the buffer up to this line, then this line.
                if before > 0 && buffer.len() > flush_at {
                    sink.write(&buffer[..before]);
                    sink.write(&buffer[before..]);
                } else {
                    sink.write(buffer);
                }
                buffer.clear();
            }
        });
    }

    /// Writes out what this thread has buffered.
    pub fn flush(&self) {
        PENDING.with(|pending| {
            if let Some((sink, buffer)) = pending.borrow_mut().as_mut() {
                if !buffer.is_empty() {
                    sink.write(buffer);
                    buffer.clear();
                }
            }
        });
    }

    /// Flushes this thread's buffer every [`FLUSH_EVERY`] until `stop`, then once more. Each worker runs one.
    pub async fn flush_periodically(&self, stop: impl std::future::Future<Output = ()>) {
        if self.sink.is_none() {
            return;
        }
        FLUSHED.set(true);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = tokio::time::sleep(FLUSH_EVERY) => self.flush(),
                () = &mut stop => break,
            }
        }
        self.flush();
        // Whatever still ends on this thread (a neighbour's delivery while the others drain) writes at once.
        FLUSHED.set(false);
    }
}

//! Reading a spool from the start while its writer may still be appending.

use super::{Progress, Spool};
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::watch;

/// Chunk size of a read back from the file (a replay, or an attempt behind the window): large enough that syscalls do
/// not dominate, small enough to stay cache-friendly. Bytes still in the recent window come as they were received.
const READ_CHUNK: usize = 256 * 1024;

/// Why a reader could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the client's body did not complete")]
    Aborted,
    #[error("reading the spool failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A cursor over a spool that waits for bytes still to come.
pub struct SpoolReader {
    spool: Arc<Spool>,
    progress: watch::Receiver<Progress>,
    offset: u64,
}

impl SpoolReader {
    pub(super) fn new(spool: Arc<Spool>) -> Self {
        let progress = spool.subscribe();
        spool.pace.reader_opened();
        SpoolReader { spool, progress, offset: 0 }
    }

    /// The next bytes, `None` at the end of a complete body, or an error if the body was aborted.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ReadError> {
        loop {
            let progress = *self.progress.borrow_and_update();
            match progress {
                Progress::Aborted => return Err(ReadError::Aborted),
                Progress::Open { len } | Progress::Complete { len } if self.offset < len => {
                    let chunk = self.spool.read_at(self.offset, READ_CHUNK)?;
                    self.offset += chunk.len() as u64;
                    self.spool.pace.reader_at(self.offset);
                    return Ok(Some(chunk));
                }
                Progress::Complete { .. } => return Ok(None),
                Progress::Open { .. } => {
                    // The reader holds the spool, and with it the sender: `changed` cannot fail here.
                    if self.progress.changed().await.is_err() {
                        return Err(ReadError::Aborted);
                    }
                }
            }
        }
    }
}

impl Drop for SpoolReader {
    fn drop(&mut self) {
        self.spool.pace.reader_closed();
    }
}

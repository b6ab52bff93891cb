//! Reading a spool from the start while its writer may still be appending.

use super::{Progress, Spool};
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::watch;

/// Chunk size of a read back from the file (every byte a reader takes from the file): large enough that syscalls do
/// not dominate, small enough to stay cache-friendly. Bytes still in the recent window come as they were received.
pub(super) const READ_CHUNK: usize = 256 * 1024;

/// Why a reader could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the client's body did not complete")]
    Aborted,
    #[error("reading the spool failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What a reader can take now.
pub enum Available {
    /// The next bytes: read back from the file, or from the in-memory tail (or recent window) as they are.
    Segment(Bytes),
    /// The body is complete and the reader is at its end.
    End,
    /// The client's next bytes have not come yet.
    NotYet,
}

/// [`SpoolReader::ahead`]: whether bytes past the reader were announced.
enum Ahead {
    Bytes,
    End,
    NotYet,
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
        let chunk = self.next_segment().await?;
        if let Some(chunk) = &chunk {
            self.consumed(chunk.len() as u64);
        }
        Ok(chunk)
    }

    /// The next bytes, without moving past them: the caller says with [`Self::consumed`] how many of them it
    /// sent. `None` at the end of a complete body, an error if the body was aborted.
    pub async fn next_segment(&mut self) -> Result<Option<Bytes>, ReadError> {
        loop {
            match self.available()? {
                Available::Segment(segment) => return Ok(Some(segment)),
                Available::End => return Ok(None),
                Available::NotYet => self.more_announced().await?,
            }
        }
    }

    /// [`Self::next_segment`] without waiting.
    pub fn available(&mut self) -> Result<Available, ReadError> {
        Ok(match self.ahead()? {
            // The writer never takes bytes back, so what was announced is in the file or the tail.
            Ahead::Bytes => match self.spool.read_at(self.offset, READ_CHUNK)? {
                bytes if bytes.is_empty() => return Err(ReadError::Io(std::io::ErrorKind::UnexpectedEof.into())),
                bytes => Available::Segment(bytes),
            },
            Ahead::End => Available::End,
            Ahead::NotYet => Available::NotYet,
        })
    }

    /// What the writer has announced beyond this reader.
    fn ahead(&mut self) -> Result<Ahead, ReadError> {
        match *self.progress.borrow_and_update() {
            Progress::Aborted => Err(ReadError::Aborted),
            Progress::Open { len } | Progress::Complete { len } if self.offset < len => Ok(Ahead::Bytes),
            Progress::Complete { .. } => Ok(Ahead::End),
            Progress::Open { .. } => Ok(Ahead::NotYet),
        }
    }

    /// Resolves when the writer has announced more than this reader saw at its last [`Self::available`]: an owned
    /// future, for a reader that is polled rather than awaited (hyper's request bodies).
    pub fn announcement(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        // A clone has seen what the original has seen, so it waits for the next change.
        let mut progress = self.progress.clone();
        async move {
            let _ = progress.changed().await;
        }
    }

    /// The spool being read.
    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    /// Waits until the writer announces more (or ends the body).
    async fn more_announced(&mut self) -> Result<(), ReadError> {
        // The reader holds the spool, and with it the sender: `changed` cannot fail here.
        self.progress.changed().await.map_err(|_| ReadError::Aborted)
    }

    /// `n` bytes of the segment last returned were sent.
    pub fn consumed(&mut self, n: u64) {
        self.offset += n;
        self.spool.pace.reader_at(self.offset);
    }

    /// How far the reader has got.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl Drop for SpoolReader {
    fn drop(&mut self) {
        self.spool.pace.reader_closed();
    }
}

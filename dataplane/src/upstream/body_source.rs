//! The request body of one upstream attempt through hyper's client: a body of unknown length (Tee mode with a
//! chunked client body) or a streamed one. (A spooled body of known length goes over a plain connection instead,
//! [`super::plain`].)
//!
//! Bytes reach hyper through a small channel: for a spooled body a feeder task reads the spool from offset 0 (and
//! follows it live in Tee mode); for a streaming body the task reading the client writes into the channel itself.
//! The end of a body is an explicit message. A channel that closes without it, or an abort message, fails the body,
//! so hyper aborts the upstream connection instead of finishing a body that only looks complete.

use super::clock::AttemptClock;
use crate::spool::Spool;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Chunks in flight between the source and hyper.
const CHANNEL_DEPTH: usize = 4;

/// One message of a body in transit.
#[derive(Debug)]
pub enum BodyItem {
    Data(Bytes),
    /// The body's trailer fields, just before its end.
    Trailers(http::HeaderMap),
    End,
    Abort,
}

/// The body did not complete.
#[derive(Debug, thiserror::Error)]
#[error("the request body was aborted before its end")]
pub struct BodyAborted;

/// Where the bytes of every attempt of one request come from.
#[derive(Clone)]
pub enum BodySource {
    /// The request has no body.
    Empty,
    /// A spool, readable by any number of attempts.
    Spool(Arc<Spool>),
    /// A live stream that the first attempt takes; later attempts find it gone.
    Stream(Arc<Mutex<Option<mpsc::Receiver<BodyItem>>>>),
}

impl BodySource {
    /// A channel for a streaming body: the sender goes to the client reader.
    pub fn stream() -> (mpsc::Sender<BodyItem>, BodySource) {
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        (tx, BodySource::Stream(Arc::new(Mutex::new(Some(rx)))))
    }

    /// Whether another attempt can send the same bytes again.
    pub fn can_replay(&self) -> bool {
        match self {
            BodySource::Empty | BodySource::Spool(_) => true,
            BodySource::Stream(rx) => rx.lock().map(|rx| rx.is_some()).unwrap_or(false),
        }
    }

    /// The spool the client's body is still arriving into (Tee mode), if it is.
    pub fn arriving(&self) -> Option<&Spool> {
        match self {
            BodySource::Spool(spool) if spool.is_arriving() => Some(spool),
            _ => None,
        }
    }

    /// When the client's body completed into the spool, if it did.
    pub fn completed_at(&self) -> Option<Instant> {
        match self {
            BodySource::Spool(spool) => spool.completed_at(),
            _ => None,
        }
    }

    /// A body for a new attempt, or `None` when a streaming body was already taken.
    /// `len` is the Content-Length sent upstream, if any: hyper stops polling a body once that many bytes went out,
    /// so the body must notice its own end to start the read timeout.
    pub fn open(&self, clock: Arc<AttemptClock>, len: Option<u64>) -> Option<UpstreamBody> {
        let rx = match self {
            BodySource::Empty => None,
            BodySource::Spool(spool) => Some(feed_from_spool(spool.clone())),
            BodySource::Stream(slot) => Some(slot.lock().ok()?.take()?),
        };
        Some(UpstreamBody { done: rx.is_none() || len == Some(0), rx, clock, remaining: len })
    }
}

fn feed_from_spool(spool: Arc<Spool>) -> mpsc::Receiver<BodyItem> {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    tokio::spawn(async move {
        let mut reader = spool.reader();
        let mut sent_trailers = false;
        loop {
            let item = tokio::select! {
                chunk = reader.next_chunk() => match chunk {
                    Ok(Some(data)) => BodyItem::Data(data),
                    Ok(None) => match spool.trailers() {
                        Some(trailers) if !sent_trailers => {
                            sent_trailers = true;
                            BodyItem::Trailers(trailers.clone())
                        }
                        _ => BodyItem::End,
                    },
                    Err(error) => {
                        tracing::debug!(%error, "spool replay stopped");
                        BodyItem::Abort
                    }
                },
                // The attempt is over (it failed, or the response came early): stop reading.
                _ = tx.closed() => return,
            };
            let last = matches!(item, BodyItem::End | BodyItem::Abort);
            if tx.send(item).await.is_err() || last {
                return;
            }
        }
    });
    rx
}

/// The `http_body::Body` handed to hyper for one attempt.
pub struct UpstreamBody {
    rx: Option<mpsc::Receiver<BodyItem>>,
    done: bool,
    clock: Arc<AttemptClock>,
    /// Bytes still due when the length is declared.
    remaining: Option<u64>,
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyAborted;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyAborted>>> {
        if self.done {
            return Poll::Ready(None);
        }
        self.clock.asked_for_more();
        let Some(rx) = self.rx.as_mut() else { return Poll::Ready(None) };
        match rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(BodyItem::Data(data))) => {
                let remaining = self.remaining.map(|r| r.saturating_sub(data.len() as u64));
                self.remaining = remaining;
                if remaining == Some(0) {
                    // hyper's HTTP/1.1 client stops asking once the declared length went out, so the read timeout
                    // starts here; HTTP/2 asks on, for trailers and the end.
                    self.clock.body_sent();
                } else {
                    self.clock.chunk_handed_over();
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(BodyItem::Trailers(trailers))) => {
                self.clock.body_sent();
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            Poll::Ready(Some(BodyItem::End)) => {
                self.done = true;
                self.clock.body_sent();
                Poll::Ready(None)
            }
            Poll::Ready(Some(BodyItem::Abort)) | Poll::Ready(None) => {
                self.done = true;
                self.clock.source_aborted();
                Poll::Ready(Some(Err(BodyAborted)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        if self.done {
            SizeHint::with_exact(0)
        } else {
            SizeHint::default()
        }
    }
}

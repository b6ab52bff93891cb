//! Where the bytes of every attempt of one request come from ([`BodySource`]), and the request body of one attempt
//! through hyper's clients ([`UpstreamBody`]: HTTP/1.1 with a body of unknown length or a streamed one, a TLS
//! backend, HTTP/2). A spooled body of known length to a plain HTTP/1.1 backend goes over a plain connection instead
//! ([`super::plain`]).
//!
//! A spooled body is read from offset 0 as hyper asks for more, following the writer live in Tee mode (no task or
//! channel in between: one fewer task and wakeup per request, which a gRPC call to an HTTP/2 backend pays on every
//! call); a streaming body comes through a small channel that the task reading the client writes into. The end of a
//! body is explicit. A spool that is aborted, a channel that closes without its end, or an abort message fail the
//! body, so hyper aborts the upstream request instead of finishing a body that only looks complete.

use super::clock::AttemptClock;
use crate::spool::{Available, Spool, SpoolReader};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
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
            BodySource::Empty => true,
            // A Tee upload that gave up its spool file under spool pressure relays without replay.
            BodySource::Spool(spool) => spool.can_replay(),
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
    /// `delivered` counts the bytes handed to hyper, for the status page.
    pub fn open(
        &self,
        clock: Arc<AttemptClock>,
        len: Option<u64>,
        delivered: Option<Arc<AtomicU64>>,
    ) -> Option<UpstreamBody> {
        let feed = match self {
            BodySource::Empty => None,
            BodySource::Spool(spool) => {
                Some(Feed::Spool(SpoolFeed { reader: spool.reader(), announced: None, trailers_sent: false }))
            }
            BodySource::Stream(slot) => Some(Feed::Channel(slot.lock().ok()?.take()?)),
        };
        Some(UpstreamBody { done: feed.is_none() || len == Some(0), feed, clock, remaining: len, delivered })
    }
}

/// Where an attempt's body comes from.
enum Feed {
    /// The spool, read as hyper asks for more: no task or channel between them.
    Spool(SpoolFeed),
    /// A stream's channel, written by the task reading the client.
    Channel(mpsc::Receiver<BodyItem>),
}

struct SpoolFeed {
    reader: SpoolReader,
    /// Set while the reader has caught up with the writer: resolves when the writer announces more.
    announced: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    trailers_sent: bool,
}

impl SpoolFeed {
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<BodyItem> {
        loop {
            if let Some(announced) = self.announced.as_mut() {
                ready!(announced.as_mut().poll(cx));
                self.announced = None;
            }
            match self.reader.available() {
                Ok(Available::Segment(data)) => {
                    self.reader.consumed(data.len() as u64);
                    return Poll::Ready(BodyItem::Data(data));
                }
                Ok(Available::End) => {
                    let trailers = self.reader.spool().trailers().filter(|_| !self.trailers_sent);
                    self.trailers_sent = true;
                    return Poll::Ready(trailers.map_or(BodyItem::End, |t| BodyItem::Trailers(t.clone())));
                }
                Ok(Available::NotYet) => self.announced = Some(Box::pin(self.reader.announcement())),
                Err(error) => {
                    tracing::debug!(%error, "spool replay stopped");
                    return Poll::Ready(BodyItem::Abort);
                }
            }
        }
    }
}

impl Feed {
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<BodyItem>> {
        match self {
            Feed::Spool(feed) => feed.poll_item(cx).map(Some),
            Feed::Channel(rx) => rx.poll_recv(cx),
        }
    }
}

/// The `http_body::Body` handed to hyper for one attempt.
pub struct UpstreamBody {
    feed: Option<Feed>,
    done: bool,
    clock: Arc<AttemptClock>,
    /// Bytes still due when the length is declared.
    remaining: Option<u64>,
    delivered: Option<Arc<AtomicU64>>,
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyAborted;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyAborted>>> {
        if self.done {
            return Poll::Ready(None);
        }
        self.clock.asked_for_more();
        let Some(feed) = self.feed.as_mut() else { return Poll::Ready(None) };
        match feed.poll_item(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(BodyItem::Data(data))) => {
                if let Some(delivered) = &self.delivered {
                    delivered.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
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

//! Reading the client's request body into a spool or a stream, under the body limits.
//!
//! This is the only place that reads client bodies, so `maxBodySize` for chunked bodies and `clientBodyTimeout` are
//! enforced once for every mode. On any failure the sink is aborted, which fails every upstream attempt reading
//! from it: an upstream never sees a body that looks complete when the client's was not.

use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::spool::Spool;
use crate::upstream::BodyItem;
use bytes::Bytes;
use http_body::{Body, Frame};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::error::Elapsed;

/// Limits on a client's body.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// 0 means unlimited.
    pub max_bytes: u64,
    /// Longest gap between two reads.
    pub idle: Duration,
}

/// Where the body goes.
pub enum Sink {
    Spool(Arc<Spool>),
    Stream(mpsc::Sender<BodyItem>),
}

/// Reads the whole body into the sink; returns its length.
pub async fn receive(body: Incoming, sink: &Sink, limits: BodyLimits, metrics: &Metrics) -> Result<u64, ProxyError> {
    // If this future is dropped mid-body (the client's request was abandoned while a detached delivery goes on),
    // the spool must not stay open forever: abort it.
    let mut guard = AbortOnDrop { sink, armed: true };
    let result = copy(body, sink, limits, metrics).await;
    guard.armed = false;
    match (&result, sink) {
        (Ok(_), Sink::Spool(spool)) => spool.finish(),
        (Ok(_), Sink::Stream(tx)) => {
            let _ = tx.send(BodyItem::End).await;
        }
        (Err(_), Sink::Spool(spool)) => spool.abort(),
        (Err(_), Sink::Stream(tx)) => {
            let _ = tx.try_send(BodyItem::Abort);
        }
    }
    result
}

struct AbortOnDrop<'a> {
    sink: &'a Sink,
    armed: bool,
}

impl Drop for AbortOnDrop<'_> {
    fn drop(&mut self) {
        if let (true, Sink::Spool(spool)) = (self.armed, self.sink) {
            spool.abort();
        }
        // A stream's sender is dropped with the sink, which fails the body without an end message.
    }
}

async fn copy(mut body: Incoming, sink: &Sink, limits: BodyLimits, metrics: &Metrics) -> Result<u64, ProxyError> {
    let mut total: u64 = 0;
    loop {
        let frame = match next_frame(&mut body, sink, limits.idle).await {
            Err(_) => return Err(ProxyError::ClientBodyTimeout(limits.idle)),
            Ok(None) => return Ok(total),
            Ok(Some(Err(error))) => {
                tracing::debug!(%error, "client body failed");
                return Err(ProxyError::ClientAborted);
            }
            Ok(Some(Ok(frame))) => frame,
        };
        // Trailers are not forwarded: the upstream body is re-framed by Holdfast.
        let Ok(data) = frame.into_data() else { continue };
        total += data.len() as u64;
        metrics.bytes_in.inc_by(data.len() as u64);
        if limits.max_bytes > 0 && total > limits.max_bytes {
            return Err(ProxyError::BodyTooLarge { limit: limits.max_bytes });
        }
        match sink {
            Sink::Spool(spool) => spool.append(&data)?,
            Sink::Stream(tx) => tx.send(BodyItem::Data(data)).await.map_err(|_| ProxyError::StreamNotTaken)?,
        }
    }
}

/// The next frame of the client's body, within the idle timeout.
///
/// Readers of a spool on another worker hear of new bytes in steps of a few hundred KiB while the client sends
/// fast, and of every byte so far as soon as the client's next bytes are not there. hyper answers `Pending` between
/// any two chunks of a body, also when the next one is already in the socket, so one `Pending` says nothing: this
/// asks to be polled once more, which lets hyper read the socket again, and publishes only if the body is still
/// pending then. (A 1 ms timer did the same at the cost of a syscall per chunk: tokio wakes its own driver when a
/// timer earlier than all others is set.)
async fn next_frame(
    body: &mut Incoming,
    sink: &Sink,
    idle: Duration,
) -> Result<Option<Result<Frame<Bytes>, hyper::Error>>, Elapsed> {
    let mut looked_again = false;
    let next = std::future::poll_fn(|cx| {
        let polled = Pin::new(&mut *body).poll_frame(cx);
        if let (Poll::Pending, Sink::Spool(spool)) = (&polled, sink) {
            if spool.has_unpublished() {
                if looked_again {
                    spool.publish();
                } else {
                    looked_again = true;
                    cx.waker().wake_by_ref();
                }
            }
        }
        polled
    });
    tokio::time::timeout(idle, next).await
}

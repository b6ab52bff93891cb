//! Reading the client's request body into a spool or a stream, under the body limits.
//!
//! This is the only place that reads client bodies, so `maxBodySize` for chunked bodies, `clientBodyTimeout` and
//! `minBodyRate` ([`Pace`]) are enforced once for every mode. A body is read through hyper, or — large, declared, on
//! a plain HTTP/1 connection — through hyper until hyper has handed over what it buffered and then straight from the
//! socket in large chunks ([`DirectBody`]): into a spool file through a pipe ([`BodyPipe`]) where it can, else into
//! memory. A Tee writer reading that fast waits for its attempt ([`Spool::paced`]). On any failure the sink is
//! aborted, which fails every upstream attempt reading from it: an upstream never sees a body that looks complete when
//! the client's was not.

use crate::client::{first_read_size, DirectBody};
use crate::error::ProxyError;
use crate::exchange::Progress;
use crate::metrics::Metrics;
use crate::min_rate::{Late, Pace};
use crate::spool::{BodyPipe, Spool};
use crate::upstream::BodyItem;
use bytes::Bytes;
use holdfast_snapshot::MinBodyRate;
use http_body::{Body, Frame};
use hyper::body::Incoming;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::sync::mpsc;

/// Limits on a client's body.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// 0 means unlimited.
    pub max_bytes: u64,
    /// Longest gap between two reads.
    pub idle: Duration,
    /// The least the body must average per window of waiting for it.
    pub min_rate: MinBodyRate,
}

impl From<Late> for ProxyError {
    fn from(late: Late) -> Self {
        match late {
            Late::Idle(idle) => ProxyError::ClientBodyTimeout(idle),
            Late::TooSlow(too_slow) => ProxyError::ClientBodyTooSlow(too_slow),
        }
    }
}

/// Where the body goes.
pub enum Sink {
    Spool(Arc<Spool>),
    Stream(mpsc::Sender<BodyItem>),
}

/// A body to read past hyper once hyper has handed over what it buffered ([`DirectBody`]): the connection's hand-over
/// and the body's declared length.
#[derive(Clone, Copy)]
pub struct Direct<'a> {
    pub body: &'a DirectBody,
    pub len: u64,
}

/// Where the bytes received are counted: the process's metrics, and the request's progress (the status page).
pub type Counted<'a> = (&'a Metrics, Option<&'a Progress>);

/// Reads the whole body into the sink; returns its length. With `direct`, the body is read past hyper when the
/// connection allows it.
pub async fn receive(
    body: Incoming,
    sink: &Sink,
    limits: BodyLimits,
    metrics: Counted<'_>,
    direct: Option<Direct<'_>>,
) -> Result<u64, ProxyError> {
    // If this future is dropped mid-body (the client's request was abandoned while a detached delivery goes on),
    // the spool must not stay open forever: abort it.
    let mut guard = AbortOnDrop { sink, armed: true };
    let result = copy(body, sink, limits, metrics, direct).await;
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

async fn copy(
    mut body: Incoming,
    sink: &Sink,
    limits: BodyLimits,
    metrics: Counted<'_>,
    direct: Option<Direct<'_>>,
) -> Result<u64, ProxyError> {
    let direct = direct.filter(|direct| direct.body.arm());
    // A body that ends (or fails) before hyper has handed it over is handed back to hyper.
    let _hand_back = direct.map(|direct| HandBack(direct.body));
    let mut total: u64 = 0;
    let mut pace = Pace::new(limits.idle, limits.min_rate);
    let direct = loop {
        let frame = match pace.wait(next_frame(&mut body, sink, direct), Next::len).await {
            Err(late) => return Err(late.into()),
            Ok(Next::End) => return Ok(total),
            Ok(Next::Failed(error)) => {
                tracing::debug!(%error, "client body failed");
                return Err(ProxyError::ClientAborted);
            }
            Ok(Next::Frame(frame)) => frame,
            // Only reported with a hand-over armed.
            Ok(Next::Drained(direct)) => break direct,
        };
        match frame.into_data() {
            Ok(data) => keep(data, &mut total, sink, limits, metrics).await?,
            // The body's trailer fields: kept for every attempt, which sends them where its protocol can.
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    keep_trailers(trailers, sink).await?;
                }
            }
        }
    };
    // hyper has handed over every byte it had; the rest of the body is still in the socket.
    direct.body.take();
    drop(body);
    // A body bound for a spool file goes through a pipe, when the system gives one, instead of through memory.
    let piped = match sink {
        Sink::Spool(spool) if spool.takes_pipe() => BodyPipe::new().map(|pipe| (spool, pipe)),
        _ => None,
    };
    let mut size = first_read_size();
    while total < direct.len {
        let max = usize::try_from(direct.len - total).unwrap_or(usize::MAX);
        if let Some((spool, pipe)) = &piped {
            let moved = direct.body.splice_into(pipe, max, || publish_tail(sink));
            let n = within(&mut pace, moved, total, direct.len).await?;
            count(n, &mut total, limits, metrics)?;
            spool.write_from_pipe(pipe, n).await?;
        } else {
            let read = direct.body.read(max, &mut size, || publish_tail(sink));
            let data = within(&mut pace, read, total, direct.len).await?;
            keep(data, &mut total, sink, limits, metrics).await?;
        }
        if let Sink::Spool(spool) = sink {
            // Reads this large outrun a slower upstream; hyper's 64 KiB reads did not pace (docs/benchmarks.md).
            spool.paced().await;
        }
    }
    Ok(total)
}

/// One read past hyper (into memory or a pipe), within the idle timeout and the minimum rate; an empty read (the
/// client closed early) or a failed one is the client's abort.
async fn within<T: Received>(
    pace: &mut Pace,
    read: impl Future<Output = std::io::Result<T>>,
    total: u64,
    declared: u64,
) -> Result<T, ProxyError> {
    let brought = |read: &std::io::Result<T>| read.as_ref().map_or(0, Received::len);
    match pace.wait(read, brought).await {
        Err(late) => Err(late.into()),
        Ok(Err(error)) => {
            tracing::debug!(%error, "client body failed");
            Err(ProxyError::ClientAborted)
        }
        Ok(Ok(received)) if received.is_nothing() => {
            tracing::debug!(received = total, declared, "client closed before the end of its body");
            Err(ProxyError::ClientAborted)
        }
        Ok(Ok(received)) => Ok(received),
    }
}

/// What one read past hyper returns: the bytes, or how many went into the pipe.
trait Received {
    fn len(&self) -> u64;

    fn is_nothing(&self) -> bool {
        self.len() == 0
    }
}

impl Received for Bytes {
    fn len(&self) -> u64 {
        Bytes::len(self) as u64
    }
}

impl Received for usize {
    fn len(&self) -> u64 {
        *self as u64
    }
}

/// Counts `n` more bytes of the body and holds them to `maxBodySize`.
fn count(n: usize, total: &mut u64, limits: BodyLimits, (metrics, progress): Counted<'_>) -> Result<(), ProxyError> {
    *total += n as u64;
    metrics.bytes_in.inc_by(n as u64);
    if let Some(progress) = progress {
        progress.set_received(*total);
    }
    if limits.max_bytes > 0 && *total > limits.max_bytes {
        return Err(ProxyError::BodyTooLarge { limit: limits.max_bytes });
    }
    Ok(())
}

/// Counts and limits one chunk of the body and hands it to the sink.
async fn keep(
    data: Bytes,
    total: &mut u64,
    sink: &Sink,
    limits: BodyLimits,
    metrics: Counted<'_>,
) -> Result<(), ProxyError> {
    count(data.len(), total, limits, metrics)?;
    match sink {
        Sink::Spool(spool) => spool.write(&data).await?,
        Sink::Stream(tx) => tx.send(BodyItem::Data(data)).await.map_err(|_| ProxyError::StreamNotTaken)?,
    }
    Ok(())
}

/// Hands the body's trailer fields to the sink, before its end.
async fn keep_trailers(trailers: http::HeaderMap, sink: &Sink) -> Result<(), ProxyError> {
    match sink {
        Sink::Spool(spool) => spool.set_trailers(trailers),
        Sink::Stream(tx) => tx.send(BodyItem::Trailers(trailers)).await.map_err(|_| ProxyError::StreamNotTaken)?,
    }
    Ok(())
}

/// Tells readers following the spool about every byte so far: the client's next bytes are not there yet.
fn publish_tail(sink: &Sink) {
    if let Sink::Spool(spool) = sink {
        if spool.has_unpublished() {
            spool.publish();
        }
    }
}

struct HandBack<'a>(&'a DirectBody);

impl Drop for HandBack<'_> {
    fn drop(&mut self) {
        self.0.disarm();
    }
}

/// What the client's body did next.
enum Next<'a> {
    Frame(Frame<Bytes>),
    End,
    Failed(hyper::Error),
    /// hyper has handed over all it had buffered and asked the socket for more (only with a hand-over armed).
    Drained(Direct<'a>),
}

impl Next<'_> {
    /// Body bytes it brought (what the minimum rate counts).
    fn len(&self) -> u64 {
        match self {
            Next::Frame(frame) => frame.data_ref().map_or(0, |data| data.len() as u64),
            _ => 0,
        }
    }
}

/// The next frame of the client's body (the caller bounds the wait: [`Pace`]).
///
/// Readers of a spool on another worker hear of new bytes in steps of a few hundred KiB while the client sends
/// fast, and of every byte so far as soon as the client's next bytes are not there. hyper answers `Pending` between
/// any two chunks of a body, also when the next one is already in the socket, so one `Pending` says nothing: this
/// asks to be polled once more, which lets hyper read the socket again, and publishes only if the body is still
/// pending then. (A 1 ms timer did the same at the cost of a syscall per chunk: tokio wakes its own driver when a
/// timer earlier than all others is set.)
fn next_frame<'a, 'b>(
    body: &'b mut Incoming,
    sink: &'b Sink,
    direct: Option<Direct<'a>>,
) -> impl Future<Output = Next<'a>> + 'b
where
    'a: 'b,
{
    let mut looked_again = false;
    std::future::poll_fn(move |cx| {
        let polled = match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => return Poll::Ready(Next::Frame(frame)),
            Poll::Ready(Some(Err(error))) => return Poll::Ready(Next::Failed(error)),
            Poll::Ready(None) => return Poll::Ready(Next::End),
            Poll::Pending => Poll::Pending,
        };
        if let Some(direct) = direct.filter(|direct| direct.body.poll_drained(cx).is_ready()) {
            return Poll::Ready(Next::Drained(direct));
        }
        if let Sink::Spool(spool) = sink {
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
    })
}

//! The body of every response the dataplane sends to a client: the response itself (the upstream's, or one the
//! dataplane wrote), plus what must live exactly as long as hyper is sending it — the connection's count of
//! responses in flight (the header read timeout leaves a connection alone meanwhile) and the request's record,
//! which ends the request (its log line, its metrics) when hyper drops the body: sent, or abandoned.

use crate::client::ResponseInFlight;
use crate::error::{BoxError, ProxyBody};
use crate::exchange::Finisher;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use std::pin::Pin;
use std::task::{Context, Poll};

pub struct ClientBody {
    inner: ProxyBody,
    /// Response body bytes, counted per frame and added to the process-wide counter once at the end.
    sent: u64,
    bytes_out: Counter,
    finisher: Finisher,
    _in_flight: ResponseInFlight,
}

impl ClientBody {
    pub fn new(inner: ProxyBody, finisher: Finisher, in_flight: ResponseInFlight, bytes_out: Counter) -> Self {
        ClientBody { inner, sent: 0, bytes_out, finisher, _in_flight: in_flight }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.sent += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ClientBody {
    fn drop(&mut self) {
        self.bytes_out.inc_by(self.sent);
        // The finisher, dropped next, ends the request with these bytes counted.
        self.finisher.exchange().sent(self.sent);
    }
}

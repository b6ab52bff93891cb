//! A response body that fails when the upstream goes quiet for longer than the read timeout, so that a client is
//! never left hanging on an upstream that sent a head and then stopped.

use super::plain::PlainBodyError;
use super::response_body::ResponseBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Why the response body ended badly.
#[derive(Debug, thiserror::Error)]
pub enum ResponseBodyError {
    #[error("upstream response body failed: {0}")]
    Upstream(#[from] hyper::Error),
    #[error(transparent)]
    Plain(#[from] PlainBodyError),
    #[error("upstream sent no response bytes for {0:?}")]
    Idle(Duration),
}

pub struct IdleTimeoutBody {
    inner: ResponseBody,
    idle: Duration,
    /// Armed only when the upstream first makes us wait: a small response that is already there costs no timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl IdleTimeoutBody {
    pub fn new(inner: ResponseBody, idle: Duration) -> Self {
        IdleTimeoutBody { inner, idle, timer: None }
    }
}

impl Body for IdleTimeoutBody {
    type Data = Bytes;
    type Error = ResponseBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ResponseBodyError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            let idle = self.idle;
            if let Some(timer) = self.timer.as_mut() {
                timer.as_mut().reset(Instant::now() + idle);
            }
            return Poll::Ready(frame);
        }
        let idle = self.idle;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Some(Err(ResponseBodyError::Idle(self.idle))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

//! The body of an upstream's response, whichever client read its head.

use super::idle_body::ResponseBodyError;
use super::plain::PlainBody;
use super::pool::StreamLease;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};

pub enum ResponseBody {
    /// Read by hyper's HTTP/1.1 client.
    Hyper(Incoming),
    /// Read by hyper's HTTP/2 client; the lease counts the stream on its shared connection until the body is done.
    Hyper2(Incoming, StreamLease),
    /// Read over a plain connection (Holdfast's own HTTP/1.1 client).
    Plain(PlainBody),
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = ResponseBodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ResponseBody::Hyper(body) | ResponseBody::Hyper2(body, _) => {
                Pin::new(body).poll_frame(cx).map_err(ResponseBodyError::from)
            }
            ResponseBody::Plain(body) => Pin::new(body).poll_frame(cx).map_err(ResponseBodyError::from),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Hyper(body) | ResponseBody::Hyper2(body, _) => body.is_end_stream(),
            ResponseBody::Plain(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Hyper(body) | ResponseBody::Hyper2(body, _) => body.size_hint(),
            ResponseBody::Plain(body) => body.size_hint(),
        }
    }
}

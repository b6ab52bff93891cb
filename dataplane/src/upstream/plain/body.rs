//! The body of a response read over a plain connection ([`super`]), framed by Content-Length, by the
//! chunked coding, or by the end of the connection.
//!
//! The body owns the connection while it is read. Once the body has been read to its end, a connection the upstream
//! keeps open goes back to the pool; a body dropped before its end (the client went away) closes it, since the rest
//! of the response would still be in the socket.

use super::chunked::{ChunkedDecoder, ChunkedError, Decoded};
use super::conn::PlainConnection;
use crate::upstream::pool::Pool;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// How the body ends.
pub enum BodyFraming {
    /// This many bytes (0: no body, as for HEAD, 204 and 304).
    Length(u64),
    Chunked(ChunkedDecoder),
    /// When the upstream closes the connection.
    UntilClose,
}

/// Why a response body could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum PlainBodyError {
    #[error("reading the upstream's response body: {0}")]
    Io(#[from] std::io::Error),
    #[error("the upstream closed the connection {0} bytes before the end of the response body")]
    Truncated(u64),
    #[error("the upstream closed the connection inside a chunked response body")]
    TruncatedChunked,
    #[error("invalid chunked response body: {0}")]
    Chunked(#[from] ChunkedError),
}

pub struct PlainBody(State);

enum State {
    /// The whole body, read with the head; the connection is already back in the pool (or closed).
    Whole(Bytes),
    Reading(Box<Reading>),
    Done,
}

struct Reading {
    conn: PlainConnection,
    framing: BodyFraming,
    /// Whether the upstream keeps the connection open after this response.
    reusable: bool,
    pool: Arc<Pool>,
}

impl PlainBody {
    /// The body that follows a response head already taken from `conn`'s read buffer.
    pub fn new(mut conn: PlainConnection, framing: BodyFraming, reusable: bool, pool: &Arc<Pool>) -> Self {
        if let BodyFraming::Length(len) = framing {
            if len <= conn.read_buf.len() as u64 {
                // Most small responses: the body came with the head, and the connection is free at once.
                let body = conn.read_buf.split_to(len as usize).freeze();
                release(conn, reusable, pool);
                return PlainBody(if body.is_empty() { State::Done } else { State::Whole(body) });
            }
        }
        PlainBody(State::Reading(Box::new(Reading { conn, framing, reusable, pool: pool.clone() })))
    }
}

/// Puts the connection back when nothing of this response is left in it and the upstream keeps it open.
fn release(conn: PlainConnection, reusable: bool, pool: &Pool) {
    // Bytes after the response were not asked for: such a connection cannot be trusted with another request.
    if reusable && conn.read_buf.is_empty() {
        pool.put_back_plain(conn);
    }
}

/// What the buffered bytes allow next.
enum Step {
    Data(Bytes),
    End,
    Fill,
}

impl Reading {
    fn step(&mut self) -> Result<Step, PlainBodyError> {
        let buf = &mut self.conn.read_buf;
        Ok(match &mut self.framing {
            BodyFraming::Length(0) => Step::End,
            BodyFraming::Length(_) | BodyFraming::UntilClose if buf.is_empty() => Step::Fill,
            BodyFraming::Length(remaining) => {
                let n = (*remaining).min(buf.len() as u64);
                *remaining -= n;
                Step::Data(buf.split_to(n as usize).freeze())
            }
            BodyFraming::UntilClose => Step::Data(buf.split().freeze()),
            BodyFraming::Chunked(decoder) => match decoder.decode(buf)? {
                Decoded::Data(data) => Step::Data(data),
                Decoded::NeedMore => Step::Fill,
                Decoded::Done => Step::End,
            },
        })
    }

    /// The connection ended (`read` returned 0) where the framing expected more.
    fn ended(&self) -> Result<(), PlainBodyError> {
        match self.framing {
            BodyFraming::UntilClose => Ok(()),
            BodyFraming::Length(remaining) => Err(PlainBodyError::Truncated(remaining)),
            BodyFraming::Chunked(_) => Err(PlainBodyError::TruncatedChunked),
        }
    }
}

impl Body for PlainBody {
    type Data = Bytes;
    type Error = PlainBodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let reading = match &mut self.0 {
            State::Done => return Poll::Ready(None),
            State::Whole(body) => {
                let body = std::mem::take(body);
                self.0 = State::Done;
                return Poll::Ready(Some(Ok(Frame::data(body))));
            }
            State::Reading(reading) => reading,
        };
        let outcome = loop {
            match reading.step() {
                Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(Step::End) => break Ok(()),
                Ok(Step::Fill) => {}
                Err(error) => break Err(error),
            }
            match ready!(reading.conn.poll_fill(cx)) {
                Ok(0) => {
                    reading.reusable = false;
                    break reading.ended();
                }
                Ok(_) => {}
                Err(error) => break Err(error.into()),
            }
        };
        // After an error the connection is dropped with the state, which closes it.
        if let (State::Reading(reading), Ok(())) = (std::mem::replace(&mut self.0, State::Done), &outcome) {
            let Reading { conn, reusable, pool, .. } = *reading;
            release(conn, reusable, &pool);
        }
        Poll::Ready(outcome.err().map(Err))
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.0, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            State::Done => SizeHint::with_exact(0),
            State::Whole(body) => SizeHint::with_exact(body.len() as u64),
            State::Reading(reading) => match reading.framing {
                BodyFraming::Length(remaining) => SizeHint::with_exact(remaining),
                _ => SizeHint::default(),
            },
        }
    }
}

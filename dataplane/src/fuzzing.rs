//! Entry points for the fuzz targets in `fuzz/` (a cargo workspace of its own, run by `scripts/fuzz`): for fuzz
//! targets only, hidden from the docs and not an API.
//!
//! The plain upstream path's response parsers, and its encoding of the request head, are crate-internal. These thin
//! wrappers drive each one the way the request path drives it, from plain byte slices fed in pieces (the pieces
//! stand for the reads of a socket), and hand back what came out as plain data, so that a target can compare a split
//! run with an unsplit one. They panic where a parser breaks its own contract (an empty data slice, a stall with
//! bytes left): that is what the fuzzer is there to find.

use crate::forward::{self, ClientInfo};
use crate::upstream::plain::chunked::{ChunkedDecoder, Decoded};
use crate::upstream::plain::head::{framing, parse_response_head, Head};
use crate::upstream::plain::{encode_head, BodyFraming};
use bytes::BytesMut;
use http::HeaderValue;
use std::net::SocketAddr;

/// How feeding a stream to a parser ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The parser finished what it parses.
    Done,
    /// The stream ended before that: the parser waits for more.
    Incomplete,
    /// The parser refused the stream, with its reason.
    Failed(String),
}

/// What decoding one chunked body gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedRun {
    pub data: Vec<u8>,
    pub outcome: Outcome,
    /// What the decoder left in the buffer: the bytes after the body, or those after the first bad byte.
    pub rest: Vec<u8>,
}

/// Feeds `pieces` one after the other to a fresh chunked decoder (`upstream::plain::chunked`), as the plain
/// upstream path's body reads them.
pub fn chunked(pieces: &[&[u8]]) -> ChunkedRun {
    let mut decoder = ChunkedDecoder::new();
    let mut buf = BytesMut::new();
    let mut data = Vec::new();
    let mut failed = None;
    for piece in pieces {
        buf.extend_from_slice(piece);
        // Ends: every `Data` consumes at least one byte (asserted), every other answer leaves the loop.
        while failed.is_none() && !decoder.is_done() {
            match decoder.decode(&mut buf) {
                Ok(Decoded::Data(bytes)) => {
                    assert!(!bytes.is_empty(), "the chunked decoder handed out empty data");
                    data.extend_from_slice(&bytes);
                }
                Ok(Decoded::NeedMore) => {
                    assert!(buf.is_empty(), "the chunked decoder asked for more with {} bytes left", buf.len());
                    break;
                }
                Ok(Decoded::Done) => assert!(decoder.is_done(), "Done but not is_done"),
                Err(error) => failed = Some(error.to_string()),
            }
        }
    }
    let outcome = match failed {
        Some(why) => Outcome::Failed(why),
        None if decoder.is_done() => Outcome::Done,
        None => Outcome::Incomplete,
    };
    ChunkedRun { data, outcome, rest: buf.to_vec() }
}

/// A final response head as the plain upstream path parsed it, and the body framing it works out from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedHead {
    pub status: u16,
    pub version: String,
    /// In order, after `framing` removed what it removes (a `Content-Length` beside `Transfer-Encoding`).
    pub fields: Vec<(String, Vec<u8>)>,
    pub reason: Option<Vec<u8>>,
    /// `Length(n)`, `Chunked`, `UntilClose`, and whether the connection may be reused; or why framing refused it.
    pub framing: Result<(String, bool), String>,
}

/// What reading one response head gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadRun {
    pub outcome: Outcome,
    /// The final head, once `outcome` is `Done`.
    pub head: Option<ParsedHead>,
    /// Informational (1xx) heads skipped before it.
    pub informational: usize,
    /// The bytes of the stream after the final head (its body and beyond), once `outcome` is `Done`.
    pub rest: Vec<u8>,
}

/// Feeds `pieces` one after the other to the plain upstream path's response head parser the way its read loop
/// does: after each piece every complete head is taken, 1xx heads are skipped, and the final head's framing is
/// worked out for a response to a GET (`is_head_request`: to a HEAD).
pub fn response_head(pieces: &[&[u8]], is_head_request: bool) -> HeadRun {
    let mut buf = BytesMut::new();
    let mut informational = 0;
    for (at, piece) in pieces.iter().enumerate() {
        buf.extend_from_slice(piece);
        // Ends: each complete head is consumed from the buffer, so the buffer shrinks every round.
        loop {
            let (outcome, head) = match parse_response_head(&mut buf) {
                Err(error) => (Outcome::Failed(error.to_string()), None),
                Ok(None) => break,
                Ok(Some(head)) if head.status.is_informational() => {
                    informational += 1;
                    continue;
                }
                Ok(Some(head)) => (Outcome::Done, Some(parsed(head, is_head_request))),
            };
            // The body's reads would bring the rest of the stream in behind the head.
            let mut rest = Vec::new();
            if head.is_some() {
                rest.extend_from_slice(&buf);
                pieces[at + 1..].iter().for_each(|piece| rest.extend_from_slice(piece));
            }
            return HeadRun { outcome, head, informational, rest };
        }
    }
    HeadRun { outcome: Outcome::Incomplete, head: None, informational, rest: Vec::new() }
}

fn parsed(mut head: Head, is_head_request: bool) -> ParsedHead {
    let framing = framing(is_head_request, head.status, head.version, &mut head.headers).map(|(body, reusable)| {
        let body = match body {
            BodyFraming::Length(len) => format!("Length({len})"),
            BodyFraming::Chunked(_) => "Chunked".to_string(),
            BodyFraming::UntilClose => "UntilClose".to_string(),
        };
        (body, reusable)
    });
    let fields = head.headers.iter().map(|(name, value)| (name.to_string(), value.as_bytes().to_vec())).collect();
    ParsedHead {
        status: head.status.as_u16(),
        version: format!("{:?}", head.version),
        fields,
        reason: head.reason.map(|r| r.as_bytes().to_vec()),
        framing,
    }
}

/// What the plain upstream path would write upstream for a request that hyper's server accepted: Holdfast's
/// request head (`forward::upstream_head`, then the plain client's encoding), for a body whose exact length is
/// `body_len` (`None`: unknown, sent chunked by hyper's client).
pub fn upstream_request_head(parts: http::request::Parts, body_len: Option<u64>) -> Vec<u8> {
    let client = ClientInfo::new(SocketAddr::from(([127, 0, 0, 1], 40000)), "http");
    let head = forward::upstream_head(parts, &client, &HeaderValue::from_static("fuzz"), body_len);
    let mut out = Vec::new();
    encode_head(&head, &mut out);
    out
}

//! The gRPC wire format over HTTP/2 (grpc/grpc `doc/PROTOCOL-HTTP2.md`): length-prefixed messages in DATA frames,
//! the status in trailers, or in the only HEADERS frame of a trailers-only response.

use super::{Body, Seen};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};

/// Status codes used here (grpc/grpc `doc/statuscodes.md`).
pub const OK: u32 = 0;
pub const PERMISSION_DENIED: u32 = 7;
pub const UNIMPLEMENTED: u32 = 12;
pub const INTERNAL: u32 = 13;

/// Reads a request body's messages one at a time: a message may span DATA frames, and a frame may hold several.
pub struct Messages {
    body: Incoming,
    buffer: BytesMut,
}

impl Messages {
    pub fn new(body: Incoming) -> Self {
        Messages { body, buffer: BytesMut::new() }
    }

    /// The next whole message; `None` at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            if let Some(message) = self.split_message()? {
                return Ok(Some(message));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(error)) => return Err(format!("request stream failed: {error}")),
                None if self.buffer.is_empty() => return Ok(None),
                None => return Err(format!("request stream ended inside a message ({} bytes)", self.buffer.len())),
            }
        }
    }

    fn split_message(&mut self) -> Result<Option<Bytes>, String> {
        if self.buffer.len() < 5 {
            return Ok(None);
        }
        if self.buffer[0] != 0 {
            return Err("compressed messages are not supported (no grpc-encoding was offered)".to_string());
        }
        let length = u32::from_be_bytes([self.buffer[1], self.buffer[2], self.buffer[3], self.buffer[4]]) as usize;
        if self.buffer.len() < 5 + length {
            return Ok(None);
        }
        self.buffer.advance(5);
        Ok(Some(self.buffer.split_to(length).freeze()))
    }
}

/// One message as a DATA frame's bytes: uncompressed flag, big-endian length, the message.
pub fn frame(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(5 + message.len());
    framed.put_u8(0);
    framed.put_u32(message.len() as u32);
    framed.put_slice(message);
    framed.freeze()
}

/// The status fields, plus the peer's own, for trailers or a trailers-only response.
pub fn status(seen: &Seen, code: u32, message: &str, details: Option<&[u8]>) -> http::HeaderMap {
    let mut fields = seen.fields();
    fields.insert("grpc-status", code.into());
    if !message.is_empty() {
        fields.insert("grpc-message", percent_encode(message).parse().expect("percent-encoding leaves only ASCII"));
    }
    if let Some(details) = details {
        fields.insert("grpc-status-details-bin", base64(details).parse().expect("base64 is ASCII"));
    }
    fields
}

/// A response whose head carries the peer's fields; its messages follow, then `trailers`.
pub fn response(seen: &Seen, messages: Vec<Bytes>, trailers: http::HeaderMap) -> http::Response<Body> {
    let frames = messages.into_iter().map(|m| Frame::data(frame(&m))).chain([Frame::trailers(trailers)]);
    let body = http_body_util::StreamBody::new(futures::stream::iter(frames.map(Ok)));
    head(seen, body.boxed())
}

/// The head of every gRPC answer, with `body` after it.
pub fn head(seen: &Seen, body: Body) -> http::Response<Body> {
    let mut response = http::Response::new(body);
    let headers = response.headers_mut();
    headers.extend(seen.fields());
    headers.insert("content-type", http::HeaderValue::from_static("application/grpc"));
    response
}

/// An error in a trailers-only response: one HEADERS frame with END_STREAM, as gRPC servers send errors that come
/// before any message.
pub fn trailers_only(seen: &Seen, code: u32, message: &str, details: Option<&[u8]>) -> http::Response<Body> {
    let mut response = head(seen, http_body_util::Empty::new().boxed());
    response.headers_mut().extend(status(seen, code, message, details));
    response
}

/// `grpc-message` is percent-encoded: bytes outside printable ASCII, and `%` itself.
fn percent_encode(message: &str) -> String {
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        match byte {
            0x20..=0x7e if byte != b'%' => encoded.push(byte as char),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

/// Standard base64 without padding, as gRPC servers should send `-bin` fields.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut encoded = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            encoded.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    encoded
}

//! HTTP/2 frames written and read by hand (RFC 9113 §4 and §6), for tests that must send what no client library
//! sends: streams reset at a chosen pace, header blocks that never end. Requests are h2c with prior knowledge;
//! header blocks use HPACK literals without indexing and without Huffman coding (RFC 7541 §6.2.2), which every
//! decoder must take. What the server sends back is read by [`FrameLog`] and summed up, not decoded.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

pub const NO_ERROR: u32 = 0x0;
pub const REFUSED_STREAM: u32 = 0x7;
pub const CANCEL: u32 = 0x8;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// The largest frame payload a peer must accept without asking (SETTINGS_MAX_FRAME_SIZE's initial value).
pub const MAX_FRAME: usize = 16 * 1024;

/// One frame: a 9-byte header (length, type, flags, stream) and its payload.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 1 << 24, "a frame payload has a 24-bit length");
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The client preface and an empty SETTINGS frame: what a client sends before its first stream.
pub fn client_start() -> Vec<u8> {
    [PREFACE, &frame(SETTINGS, 0, 0, &[])].concat()
}

pub fn settings_ack() -> Vec<u8> {
    frame(SETTINGS, ACK, 0, &[])
}

pub fn ping_ack(payload: &[u8]) -> Vec<u8> {
    frame(PING, ACK, 0, payload)
}

pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

/// A GET of `path` on stream `stream` in one HEADERS frame, with no body.
pub fn get(stream: u32, path: &str) -> Vec<u8> {
    frame(HEADERS, END_HEADERS | END_STREAM, stream, &request_block("GET", path))
}

/// A header block in as many frames as it takes: HEADERS, then CONTINUATION frames of at most [`MAX_FRAME`] bytes,
/// the last with END_HEADERS. `end_stream`: the request has no body.
pub fn header_frames(stream: u32, block: &[u8], end_stream: bool) -> Vec<u8> {
    let chunks: Vec<&[u8]> = block.chunks(MAX_FRAME).collect();
    let last = chunks.len().saturating_sub(1);
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let (kind, mut flags) = if i == 0 { (HEADERS, 0) } else { (CONTINUATION, 0) };
        if i == 0 && end_stream {
            flags |= END_STREAM;
        }
        if i == last {
            flags |= END_HEADERS;
        }
        out.extend(frame(kind, flags, stream, chunk));
    }
    out
}

/// The header block of a request to `http://flood.test{path}`.
pub fn request_block(method: &str, path: &str) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in [(":method", method), (":scheme", "http"), (":authority", "flood.test"), (":path", path)] {
        literal(&mut block, name.as_bytes(), value.as_bytes());
    }
    block
}

/// A literal header field without indexing, with a new name (RFC 7541 §6.2.2).
pub fn literal(block: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    block.push(0x00);
    string_length(block, name.len());
    block.extend_from_slice(name);
    string_length(block, value.len());
    block.extend_from_slice(value);
}

/// The length of a string literal without Huffman coding: an integer with a 7-bit prefix (RFC 7541 §5.1, §5.2).
pub fn string_length(block: &mut Vec<u8>, len: usize) {
    if len < 0x7f {
        block.push(len as u8);
        return;
    }
    block.push(0x7f);
    let mut rest = len - 0x7f;
    while rest >= 0x80 {
        block.push((rest % 0x80) as u8 | 0x80);
        rest /= 0x80;
    }
    block.push(rest as u8);
}

/// One frame read back.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

/// The next frame, or `None` at the end of the stream (a reset counts as an end). Payloads over 16 MiB are refused.
pub async fn read_frame(reader: &mut (impl AsyncRead + Unpin)) -> Option<Frame> {
    let mut head = [0u8; 9];
    reader.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    reader.read_exact(&mut payload).await.ok()?;
    Some(Frame { kind: head[3], flags: head[4], stream, payload })
}

/// What the server sent on one connection, summed up.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Every GOAWAY: (last stream id, error code).
    pub goaways: Vec<(u32, u32)>,
    /// HEADERS frames (responses) whose first field is `:status 200` (HPACK static index 8).
    pub ok_responses: u32,
    /// HEADERS frames of any other status.
    pub other_responses: u32,
    /// RST_STREAM frames, by error code: (code, count).
    pub resets: Vec<(u32, u32)>,
    /// PINGs the server sent (answered only by tests that choose to: an attacker may ignore them).
    pub pings: u32,
    /// The payload of the last PING the server sent, to be echoed in a PING ACK.
    pub last_ping: Option<Vec<u8>>,
    /// The connection ended (end of file or reset).
    pub closed: bool,
}

impl Seen {
    pub fn resets_with(&self, code: u32) -> u32 {
        self.resets.iter().find(|(c, _)| *c == code).map_or(0, |(_, n)| *n)
    }

    fn record(&mut self, frame: &Frame) {
        match frame.kind {
            HEADERS if frame.payload.first() == Some(&0x88) => self.ok_responses += 1,
            HEADERS => self.other_responses += 1,
            RST_STREAM if frame.payload.len() == 4 => {
                let code = u32::from_be_bytes(frame.payload[..4].try_into().unwrap());
                match self.resets.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, n)) => *n += 1,
                    None => self.resets.push((code, 1)),
                }
            }
            GOAWAY if frame.payload.len() >= 8 => {
                let last = u32::from_be_bytes(frame.payload[..4].try_into().unwrap()) & 0x7fff_ffff;
                let code = u32::from_be_bytes(frame.payload[4..8].try_into().unwrap());
                self.goaways.push((last, code));
            }
            PING if frame.flags & ACK == 0 => {
                self.pings += 1;
                self.last_ping = Some(frame.payload.clone());
            }
            _ => {}
        }
    }
}

/// Reads every frame the server sends on a connection, in a task of its own, so that the test can write at its own
/// pace and look at what came back at any moment.
#[derive(Clone)]
pub struct FrameLog {
    seen: Arc<Mutex<Seen>>,
    changed: watch::Receiver<u64>,
}

impl FrameLog {
    pub fn follow(mut reader: impl AsyncRead + Unpin + Send + 'static) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (tx, changed) = watch::channel(0u64);
        let log = seen.clone();
        tokio::spawn(async move {
            while let Some(frame) = read_frame(&mut reader).await {
                log.lock().unwrap().record(&frame);
                tx.send_modify(|n| *n += 1);
            }
            log.lock().unwrap().closed = true;
            tx.send_modify(|n| *n += 1);
        });
        FrameLog { seen, changed }
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (at most `within`) until the connection has ended; returns what was seen by then.
    pub async fn closed(&self, within: std::time::Duration) -> Seen {
        self.wait_for(within, |seen| seen.closed).await
    }

    /// Waits (at most `within`) until what was seen satisfies `done`, or the connection ended; returns what was seen.
    pub async fn wait_for(&self, within: std::time::Duration, done: impl Fn(&Seen) -> bool) -> Seen {
        let mut changed = self.changed.clone();
        let ready = |_: &u64| {
            let seen = self.seen.lock().unwrap();
            seen.closed || done(&seen)
        };
        let _ = tokio::time::timeout(within, changed.wait_for(ready)).await;
        self.seen()
    }
}

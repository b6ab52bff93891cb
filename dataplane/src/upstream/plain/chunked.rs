//! Incremental decoder for the HTTP/1.1 chunked transfer coding (RFC 9112 §7.1) of upstream *response* bodies.
//!
//! It is sans-I/O: the caller owns the socket and the read buffer, which it shares with the response head parser.
//! [`ChunkedDecoder::decode`] only consumes the body's own bytes from the front of that buffer, so whatever follows the
//! body (the next response on a kept-alive connection) stays in the buffer untouched. Keeping I/O out also lets every
//! possible split of the byte stream be tested deterministically.
//!
//! The decoder keeps its position in the grammar between calls, so a partial line is consumed and never re-scanned;
//! chunk data is handed out as zero-copy slices of the buffer as soon as any of it has arrived. Chunk extensions and
//! trailer fields are discarded. Line endings must be CRLF everywhere, and the chunk-size line and the trailer
//! section are capped so that a misbehaving upstream cannot make us wait on them forever.

#![forbid(unsafe_code)]

use bytes::{Buf, Bytes, BytesMut};

/// Longest accepted chunk-size line, counting the chunk size, its extensions and the terminating CRLF.
pub const MAX_CHUNK_SIZE_LINE: usize = 4096;

/// Largest accepted trailer section, counting every field line with its CRLF and the final CRLF: a trailer section is
/// a header section, held to the response head's cap (as hyper's HTTP/1.1 client and h2 hold theirs).
pub const MAX_TRAILER_SECTION: usize = crate::upstream::limits::MAX_RESPONSE_HEAD_BYTES;

/// What one call of `decode` produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes, split off the front of the buffer without copying (`buf.split_to(n).freeze()`). Never empty.
    Data(Bytes),
    /// The buffer holds nothing more that can be decoded: read more bytes into it and call again.
    NeedMore,
    /// The last chunk, the trailer section (discarded) and its final CRLF have been consumed. Bytes left in the buffer
    /// after this belong to whatever follows the body on the connection and must not be touched.
    Done,
}

/// Why the body is not valid chunked coding. Every error is final: the connection cannot be reused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    /// The chunk size is missing, or the chunk-size line has a byte that is neither a hex digit, whitespace before an
    /// extension, `;` nor CRLF (this covers leading and trailing garbage).
    #[error("invalid chunk size: expected hex digits, optional extensions and CRLF")]
    InvalidChunkSize,
    #[error("chunk size too large: it does not fit in 64 bits")]
    ChunkSizeOverflow,
    #[error("invalid byte in chunk extension")]
    InvalidChunkExtension,
    #[error("chunk-size line longer than {MAX_CHUNK_SIZE_LINE} bytes")]
    ChunkSizeLineTooLong,
    #[error("chunk data not followed by CRLF")]
    MissingCrlfAfterData,
    /// A CR not followed by LF, or an LF not preceded by CR, in the chunk-size line or the trailer section.
    #[error("invalid line ending: CR and LF must come together as CRLF")]
    InvalidLineEnding,
    #[error("trailer section larger than {MAX_TRAILER_SECTION} bytes")]
    TrailerTooLarge,
}

/// Where the decoder is in the chunked-body grammar.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Start of a chunk-size line: a hex digit must come first.
    #[default]
    SizeStart,
    /// Inside the hex digits of the chunk size.
    Size,
    /// Whitespace after the chunk size: only more whitespace, `;` or CR may follow.
    SizeWs,
    /// Inside the chunk extensions, up to the CR.
    Ext,
    /// CR of the chunk-size line seen; LF must follow.
    SizeLf,
    /// Inside chunk data; `size` holds how many bytes of it remain.
    Data,
    /// Chunk data complete; its CR must follow.
    DataCr,
    /// CR after chunk data seen; LF must follow.
    DataLf,
    /// Start of a trailer field line, or of the final CRLF.
    TrailerLineStart,
    /// Inside a trailer field line, up to the CR.
    TrailerLine,
    /// CR of a trailer field line seen; LF must follow.
    TrailerLf,
    /// CR of the final CRLF seen; LF must follow.
    FinalLf,
    Done,
}

/// Incremental decoder of one chunked response body; see the module documentation.
///
/// Calling [`decode`](Self::decode) again after it returned [`Decoded::Done`] returns `Done` again without touching
/// the buffer. An error consumes the input up to and including the offending byte, and every further call returns
/// that same error: the connection must be closed.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: State,
    /// The chunk size while its digits are read, then the bytes of chunk data still to hand out.
    size: u64,
    /// Bytes of the current chunk-size line consumed so far (the line is never buffered, so it is capped by count).
    line_len: usize,
    /// Bytes of the trailer section consumed so far.
    trailer_len: usize,
    /// Kept so that a caller that ignores an error cannot resynchronise on garbage.
    error: Option<ChunkedError>,
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes what it can from the front of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkedError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        loop {
            match self.state {
                State::Done => return Ok(Decoded::Done),
                State::Data => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    // A chunk may be larger than the address space on 32-bit targets.
                    let n = usize::try_from(self.size).map_or(buf.len(), |remaining| remaining.min(buf.len()));
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok(Decoded::Data(buf.split_to(n).freeze()));
                }
                _ => {
                    // Framing bytes are few and small next to the data, so a byte-at-a-time state machine costs
                    // little and makes every split point behave alike; the buffer is advanced once per run.
                    let mut used = 0;
                    for &b in buf.iter() {
                        used += 1;
                        if let Err(error) = self.step(b) {
                            // Consuming the offending byte too makes what is left identical however the input was split.
                            buf.advance(used);
                            self.error = Some(error.clone());
                            return Err(error);
                        }
                        if matches!(self.state, State::Data | State::Done) {
                            break;
                        }
                    }
                    buf.advance(used);
                    if !matches!(self.state, State::Data | State::Done) {
                        return Ok(Decoded::NeedMore);
                    }
                }
            }
        }
    }

    /// True once `Done` was returned.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds one framing byte (anything but chunk data) through the grammar.
    fn step(&mut self, b: u8) -> Result<(), ChunkedError> {
        use ChunkedError as E;
        use State as S;

        match self.state {
            S::SizeStart | S::Size | S::SizeWs | S::Ext | S::SizeLf => {
                self.line_len += 1;
                if self.line_len > MAX_CHUNK_SIZE_LINE {
                    return Err(E::ChunkSizeLineTooLong);
                }
            }
            S::TrailerLineStart | S::TrailerLine | S::TrailerLf | S::FinalLf => {
                self.trailer_len += 1;
                if self.trailer_len > MAX_TRAILER_SECTION {
                    return Err(E::TrailerTooLarge);
                }
            }
            S::Data | S::DataCr | S::DataLf | S::Done => {}
        }

        self.state = match (self.state, b) {
            (S::SizeStart, _) => {
                self.size = u64::from(hex_value(b).ok_or(E::InvalidChunkSize)?);
                S::Size
            }
            (S::Size, b'\r') | (S::SizeWs, b'\r') | (S::Ext, b'\r') => S::SizeLf,
            (S::Size, b';') | (S::SizeWs, b';') => S::Ext,
            // BWS is only defined before `;`, but like hyper, httparse and Go we accept it before the CRLF too: it
            // cannot make the line ambiguous.
            (S::Size, b' ' | b'\t') | (S::SizeWs, b' ' | b'\t') => S::SizeWs,
            (S::Size | S::SizeWs | S::Ext, b'\n') => return Err(E::InvalidLineEnding),
            (S::Size, _) => {
                let digit = hex_value(b).ok_or(E::InvalidChunkSize)?;
                self.size = self
                    .size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(u64::from(digit)))
                    .ok_or(E::ChunkSizeOverflow)?;
                S::Size
            }
            (S::SizeWs, _) => return Err(E::InvalidChunkSize),
            // Extensions are ignored, so their name/value syntax is not checked; only where the line ends matters,
            // and a quoted-string cannot contain CR or LF, so the first CR ends the line. Control bytes are refused
            // because no valid extension has them.
            (S::Ext, b'\t' | 0x20..=0x7e | 0x80..=0xff) => S::Ext,
            (S::Ext, _) => return Err(E::InvalidChunkExtension),
            (S::SizeLf, b'\n') if self.size == 0 => {
                self.trailer_len = 0;
                S::TrailerLineStart
            }
            (S::SizeLf, b'\n') => S::Data,
            (S::SizeLf, _) => return Err(E::InvalidLineEnding),
            (S::DataCr, b'\r') => S::DataLf,
            (S::DataLf, b'\n') => {
                self.line_len = 0;
                S::SizeStart
            }
            (S::DataCr | S::DataLf, _) => return Err(E::MissingCrlfAfterData),
            (S::TrailerLineStart, b'\r') => S::FinalLf,
            (S::TrailerLine, b'\r') => S::TrailerLf,
            (S::TrailerLineStart | S::TrailerLine, b'\n') => return Err(E::InvalidLineEnding),
            (S::TrailerLineStart | S::TrailerLine, _) => S::TrailerLine,
            (S::TrailerLf, b'\n') => S::TrailerLineStart,
            (S::FinalLf, b'\n') => S::Done,
            (S::TrailerLf | S::FinalLf, _) => return Err(E::InvalidLineEnding),
            // `decode` never steps through data or after the end; staying put keeps this total without a panic.
            (S::Data | S::Done, _) => self.state,
        };
        Ok(())
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEXT: &[u8] = b"HTTP/1.1 200 OK\r\n";

    /// How feeding a stream ended.
    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        Done,
        Incomplete,
        Failed(ChunkedError),
    }

    /// Everything observable from decoding one stream fed in pieces.
    #[derive(Debug, PartialEq, Eq)]
    struct Run {
        data: Vec<u8>,
        outcome: Outcome,
        /// What is left in the buffer at the end, including pieces that arrived after `Done`.
        rest: Vec<u8>,
    }

    fn run(pieces: &[&[u8]]) -> Run {
        let mut decoder = ChunkedDecoder::new();
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        let mut failed = None;
        for piece in pieces {
            buf.extend_from_slice(piece);
            while failed.is_none() && !decoder.is_done() {
                match decoder.decode(&mut buf) {
                    Ok(Decoded::Data(bytes)) => {
                        assert!(!bytes.is_empty(), "Data must never be empty");
                        data.extend_from_slice(&bytes);
                    }
                    Ok(Decoded::NeedMore) => {
                        assert!(buf.is_empty(), "NeedMore with bytes left");
                        break;
                    }
                    Ok(Decoded::Done) => assert!(decoder.is_done()),
                    Err(error) => failed = Some(error),
                }
            }
        }
        let outcome = match failed {
            Some(error) => Outcome::Failed(error),
            None if decoder.is_done() => Outcome::Done,
            None => Outcome::Incomplete,
        };
        Run { data, outcome, rest: buf.to_vec() }
    }

    fn run_whole(stream: &[u8]) -> Run {
        run(&[stream])
    }

    fn run_bytewise(stream: &[u8]) -> Run {
        let pieces: Vec<&[u8]> = stream.chunks(1).collect();
        run(&pieces)
    }

    fn assert_body(stream: &[u8], body: &[u8]) {
        let got = run_whole(stream);
        assert_eq!(got.outcome, Outcome::Done, "stream {:?}", String::from_utf8_lossy(stream));
        assert_eq!(got.data, body);
        assert!(got.rest.is_empty());
    }

    fn assert_error(stream: &[u8], expected: ChunkedError) {
        let got = run_whole(stream);
        assert_eq!(got.outcome, Outcome::Failed(expected.clone()), "stream {:?}", String::from_utf8_lossy(stream));
        assert_eq!(run_bytewise(stream).outcome, Outcome::Failed(expected));
    }

    #[test]
    fn simple_body() {
        assert_body(b"5\r\nhello\r\n0\r\n\r\n", b"hello");
    }

    #[test]
    fn multiple_chunks() {
        assert_body(b"5\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n", b"hello world!");
    }

    #[test]
    fn hex_sizes_and_leading_zeros() {
        let body = vec![b'x'; 0x1a];
        let mut upper = b"1A\r\n".to_vec();
        upper.extend_from_slice(&body);
        upper.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_body(&upper, &body);
        let lower: Vec<u8> = upper.iter().map(|b| if *b == b'A' { b'a' } else { *b }).collect();
        assert_body(&lower, &body);
        assert_body(b"0005\r\nhello\r\n000\r\n\r\n", b"hello");
    }

    #[test]
    fn extensions_are_ignored() {
        assert_body(b"5;name=value\r\nhello\r\n0;last\r\n\r\n", b"hello");
        assert_body(b"5;a;b=\"quoted; \\\"value\\\"\"\r\nhello\r\n0\r\n\r\n", b"hello");
        assert_body(b"5 ;a=b\r\nhello\r\n0\t; x = y\r\n\r\n", b"hello");
        assert_body(b"5 \r\nhello\r\n0\r\n\r\n", b"hello");
    }

    #[test]
    fn trailers_are_discarded() {
        assert_body(b"5\r\nhello\r\n0\r\nExpires: never\r\nX-Checksum: abc\r\n\r\n", b"hello");
    }

    #[test]
    fn empty_body() {
        assert_body(b"0\r\n\r\n", b"");
    }

    #[test]
    fn data_is_returned_before_the_chunk_is_complete() {
        let mut decoder = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&b"b\r\nhel"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::Data(Bytes::from_static(b"hel")));
        assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::NeedMore);
        buf.extend_from_slice(b"lo w");
        assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::Data(Bytes::from_static(b"lo w")));
        assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::NeedMore);
        buf.extend_from_slice(b"orld\r\n3\r\nabc\r\n0\r\n\r\nrest");
        assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::Data(Bytes::from_static(b"orld")));
        assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::Data(Bytes::from_static(b"abc")));
        assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::Done);
        assert_eq!(&buf[..], b"rest");
    }

    #[test]
    fn decode_after_done_returns_done_and_leaves_the_buffer_alone() {
        let mut decoder = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&b"0\r\n\r\n"[..]);
        assert!(!decoder.is_done());
        assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::Done);
        assert!(decoder.is_done());
        buf.extend_from_slice(NEXT);
        for _ in 0..3 {
            assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::Done);
            assert_eq!(&buf[..], NEXT);
        }
    }

    #[test]
    fn errors_are_sticky() {
        let mut decoder = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&b"z\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap_err(), ChunkedError::InvalidChunkSize);
        let mut valid = BytesMut::from(&b"0\r\n\r\n"[..]);
        assert_eq!(decoder.decode(&mut valid).unwrap_err(), ChunkedError::InvalidChunkSize);
        assert!(!decoder.is_done());
    }

    const ENCODINGS: &[(&[u8], &[u8])] = &[
        (b"0\r\n\r\n", b""),
        (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n", b"hello world!"),
        (b"00B;ext=\"a;b\";x\r\nhello world\r\n0 ;done\r\nTrailer-A: 1\r\nTrailer-B:\r\n\r\n", b"hello world"),
        (b"1\r\n\r\r\n2\r\n\n\r\r\n0\r\n\r\n", b"\r\n\r"),
        (b"10\r\n0123456789ABCDEF\r\n0\r\n\r\n", b"0123456789ABCDEF"),
    ];

    #[test]
    fn every_split_point_gives_the_same_result() {
        for (encoding, body) in ENCODINGS {
            let mut stream = encoding.to_vec();
            stream.extend_from_slice(NEXT);
            let expected = Run { data: body.to_vec(), outcome: Outcome::Done, rest: NEXT.to_vec() };
            assert_eq!(run_whole(&stream), expected);
            assert_eq!(run_bytewise(&stream), expected);
            for at in 0..=stream.len() {
                let (a, b) = stream.split_at(at);
                assert_eq!(run(&[a, b]), expected, "split at {at} of {:?}", String::from_utf8_lossy(&stream));
            }
        }
    }

    #[test]
    fn every_split_point_gives_the_same_error() {
        let streams: &[&[u8]] = &[b"5\r\nhelloX\r\n0\r\n\r\n", b"5\r\nhello\r\nfffffffffffffffff\r\n", b"5\nhello"];
        for stream in streams {
            let expected = run_whole(stream);
            assert!(matches!(expected.outcome, Outcome::Failed(_)));
            for at in 0..=stream.len() {
                let (a, b) = stream.split_at(at);
                assert_eq!(run(&[a, b]), expected);
            }
            assert_eq!(run_bytewise(stream), expected);
        }
    }

    /// One stream for every way a body can be refused, the caps included.
    fn invalid_streams() -> Vec<(Vec<u8>, ChunkedError)> {
        let mut long_line = b"5;".to_vec();
        long_line.resize(MAX_CHUNK_SIZE_LINE + 1, b'e');
        let mut long_trailers = b"5\r\nhello\r\n0\r\nX: ".to_vec();
        long_trailers.resize(long_trailers.len() + MAX_TRAILER_SECTION, b't');
        let mut spaces = b"5".to_vec();
        spaces.resize(MAX_CHUNK_SIZE_LINE + 1, b' ');
        vec![
            (b"5\r\nhelloX\r\n0\r\n\r\n".to_vec(), ChunkedError::MissingCrlfAfterData),
            (b"5\r\nhello\r\nfffffffffffffffff\r\n".to_vec(), ChunkedError::ChunkSizeOverflow),
            (b"5\nhello".to_vec(), ChunkedError::InvalidLineEnding),
            (b"5\r\nhello\r\n0\r\nA: b\rc\r\n\r\n".to_vec(), ChunkedError::InvalidLineEnding),
            (b"5\r\nhello\r\nz\r\n".to_vec(), ChunkedError::InvalidChunkSize),
            (b"\r\n".to_vec(), ChunkedError::InvalidChunkSize),
            (b"5;a\x01\r\nhello\r\n".to_vec(), ChunkedError::InvalidChunkExtension),
            (long_line, ChunkedError::ChunkSizeLineTooLong),
            (spaces, ChunkedError::ChunkSizeLineTooLong),
            (long_trailers, ChunkedError::TrailerTooLarge),
        ]
    }

    #[test]
    fn every_refusal_is_the_same_however_the_stream_is_split() {
        for (stream, expected) in invalid_streams() {
            let whole = run_whole(&stream);
            let shown = String::from_utf8_lossy(&stream[..stream.len().min(40)]).into_owned();
            assert_eq!(whole.outcome, Outcome::Failed(expected), "{shown}");
            assert_eq!(run_bytewise(&stream), whole, "byte by byte: {shown}");
            // Every position of the short ones; of the trailer cap's 64 KiB, a sample (each split is a full decode).
            let step = if stream.len() > 8 * 1024 { 997 } else { 1 };
            let ends = [stream.len() - 1, stream.len()];
            for at in (0..=stream.len()).step_by(step).chain(ends) {
                let (a, b) = stream.split_at(at);
                assert_eq!(run(&[a, b]), whole, "split at {at}: {shown}");
            }
        }
    }

    #[test]
    fn incomplete_stream_is_not_done() {
        let stream = b"5\r\nhello\r\n0\r\n\r\n";
        for end in 0..stream.len() {
            let got = run_bytewise(&stream[..end]);
            assert_eq!(got.outcome, Outcome::Incomplete, "prefix of {end} bytes");
            assert!(got.rest.is_empty());
        }
    }

    #[test]
    fn bad_hex() {
        assert_error(b"g\r\nhello\r\n", ChunkedError::InvalidChunkSize);
        assert_error(b"5g\r\nhello\r\n", ChunkedError::InvalidChunkSize);
        assert_error(b"0x5\r\nhello\r\n", ChunkedError::InvalidChunkSize);
        assert_error(b"-5\r\nhello\r\n", ChunkedError::InvalidChunkSize);
        assert_error(b"+5\r\nhello\r\n", ChunkedError::InvalidChunkSize);
    }

    #[test]
    fn missing_chunk_size() {
        assert_error(b"\r\n\r\n", ChunkedError::InvalidChunkSize);
        assert_error(b";ext\r\n\r\n", ChunkedError::InvalidChunkSize);
    }

    #[test]
    fn leading_and_trailing_garbage() {
        assert_error(b" 5\r\nhello\r\n", ChunkedError::InvalidChunkSize);
        assert_error(b"5 5\r\nhello\r\n", ChunkedError::InvalidChunkSize);
        assert_error(b"5 x\r\nhello\r\n", ChunkedError::InvalidChunkSize);
        assert_error(b"5;a\0b\r\nhello\r\n", ChunkedError::InvalidChunkExtension);
    }

    #[test]
    fn missing_crlf_after_data() {
        assert_error(b"5\r\nhelloX\r\n", ChunkedError::MissingCrlfAfterData);
        assert_error(b"5\r\nhelloX\n0\r\n\r\n", ChunkedError::MissingCrlfAfterData);
        assert_error(b"5\r\nhello\rX", ChunkedError::MissingCrlfAfterData);
        assert_error(b"5\r\nhello\n0\r\n\r\n", ChunkedError::MissingCrlfAfterData);
        assert_error(b"5\r\nhello0\r\n\r\n", ChunkedError::MissingCrlfAfterData);
    }

    #[test]
    fn chunk_size_overflow() {
        assert_error(b"ffffffffffffffffff\r\n", ChunkedError::ChunkSizeOverflow);
        assert_error(b"10000000000000000\r\n", ChunkedError::ChunkSizeOverflow);
        // The largest size still parses, and its data is handed out as it arrives.
        let got = run_whole(b"ffffffffffffffff\r\nabc");
        assert_eq!((got.data.as_slice(), got.outcome), (&b"abc"[..], Outcome::Incomplete));
        let got = run_whole(b"0000000000000000000000ffffffffffffffff\r\nabc");
        assert_eq!(got.data, b"abc");
    }

    #[test]
    fn overlong_chunk_size_line() {
        // Exactly at the cap, CRLF included, is fine.
        let mut line = b"5;".to_vec();
        line.resize(MAX_CHUNK_SIZE_LINE - 2, b'a');
        line.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        assert_body(&line, b"hello");

        let mut line = b"5;".to_vec();
        line.resize(MAX_CHUNK_SIZE_LINE - 1, b'a');
        line.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        assert_error(&line, ChunkedError::ChunkSizeLineTooLong);

        // No CRLF ever arrives: the decoder must give up rather than wait forever.
        let mut no_crlf = b"5;".to_vec();
        no_crlf.resize(MAX_CHUNK_SIZE_LINE + 1, b'a');
        assert_error(&no_crlf, ChunkedError::ChunkSizeLineTooLong);
        assert_error(&vec![b'0'; MAX_CHUNK_SIZE_LINE + 1], ChunkedError::ChunkSizeLineTooLong);

        // The cap is per line, not cumulative over the body.
        let mut many = Vec::new();
        for _ in 0..10 {
            many.extend_from_slice(b"1;");
            many.resize(many.len() + MAX_CHUNK_SIZE_LINE - 5, b'e');
            many.extend_from_slice(b"\r\nx\r\n");
        }
        many.extend_from_slice(b"0\r\n\r\n");
        assert_body(&many, b"xxxxxxxxxx");
    }

    #[test]
    fn overlong_trailer_section() {
        // Exactly at the cap, final CRLF included, is fine.
        let mut at_cap = b"0\r\nX: ".to_vec();
        at_cap.resize(3 + MAX_TRAILER_SECTION - 4, b'a');
        at_cap.extend_from_slice(b"\r\n\r\n");
        assert_body(&at_cap, b"");

        let mut over = b"0\r\nX: ".to_vec();
        over.resize(3 + MAX_TRAILER_SECTION - 3, b'a');
        over.extend_from_slice(b"\r\n\r\n");
        assert_error(&over, ChunkedError::TrailerTooLarge);

        // Neither an unterminated line nor an endless run of short lines is buffered forever.
        let mut unterminated = b"0\r\nX: ".to_vec();
        unterminated.resize(3 + MAX_TRAILER_SECTION + 1, b'a');
        assert_error(&unterminated, ChunkedError::TrailerTooLarge);
        let mut many_lines = b"0\r\n".to_vec();
        while many_lines.len() <= MAX_TRAILER_SECTION + 3 {
            many_lines.extend_from_slice(b"A: b\r\n");
        }
        assert_error(&many_lines, ChunkedError::TrailerTooLarge);
    }

    #[test]
    fn bare_lf_and_bare_cr() {
        assert_error(b"5\nhello\r\n0\r\n\r\n", ChunkedError::InvalidLineEnding);
        assert_error(b"5;ext\nhello\r\n0\r\n\r\n", ChunkedError::InvalidLineEnding);
        assert_error(b"5\rhello\r\n0\r\n\r\n", ChunkedError::InvalidLineEnding);
        assert_error(b"0\n\r\n", ChunkedError::InvalidLineEnding);
        assert_error(b"0\r\n\n", ChunkedError::InvalidLineEnding);
        assert_error(b"0\r\n\rX", ChunkedError::InvalidLineEnding);
        assert_error(b"0\r\nX: y\n\r\n", ChunkedError::InvalidLineEnding);
        assert_error(b"0\r\nX: y\rz\r\n\r\n", ChunkedError::InvalidLineEnding);
        assert_error(b"\n", ChunkedError::InvalidChunkSize);
    }

    /// xorshift64*: deterministic, so a failure reproduces from the printed seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a [u8]]) -> &'a [u8] {
            items[self.below(items.len())]
        }
    }

    /// Cuts `stream` into random pieces, sometimes empty ones.
    fn random_pieces<'a>(rng: &mut Rng, stream: &'a [u8]) -> Vec<&'a [u8]> {
        let mut pieces = Vec::new();
        let mut rest = stream;
        while !rest.is_empty() {
            let max = if rng.below(4) == 0 { 3 } else { rest.len() + 1 };
            let (piece, tail) = rest.split_at(rng.below(max).min(rest.len()));
            pieces.push(piece);
            rest = tail;
        }
        pieces
    }

    /// A random valid chunked encoding of `body`, as hyper, nginx or a hand-written server might produce it.
    fn random_encoding(rng: &mut Rng, body: &[u8]) -> Vec<u8> {
        const EXTENSIONS: &[&[u8]] =
            &[b"", b";a", b";name=value", b";q=\"x;y \\\" z\"", b" ;a=b", b"\t;a; b = c", b" "];
        const TRAILERS: &[&[u8]] = &[b"", b"X-A: 1\r\n", b"Checksum: abc\r\nX-B:\r\n"];
        let mut out = Vec::new();
        let mut rest = body;
        loop {
            let n = if rest.is_empty() { 0 } else { 1 + rng.below(rest.len().min(40)) };
            out.resize(out.len() + rng.below(3), b'0');
            let size = if rng.below(2) == 0 { format!("{n:x}") } else { format!("{n:X}") };
            out.extend_from_slice(size.as_bytes());
            out.extend_from_slice(rng.pick(EXTENSIONS));
            out.extend_from_slice(b"\r\n");
            if n == 0 {
                out.extend_from_slice(rng.pick(TRAILERS));
                out.extend_from_slice(b"\r\n");
                return out;
            }
            out.extend_from_slice(&rest[..n]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
    }

    #[test]
    fn fuzz_valid_encodings_decode_to_the_original() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..3000 {
            let body: Vec<u8> = (0..rng.below(200)).map(|_| rng.next() as u8).collect();
            let mut stream = random_encoding(&mut rng, &body);
            stream.extend_from_slice(NEXT);
            let pieces = random_pieces(&mut rng, &stream);
            let expected = Run { data: body, outcome: Outcome::Done, rest: NEXT.to_vec() };
            assert_eq!(run(&pieces), expected, "round {round}: {:?}", String::from_utf8_lossy(&stream));
        }
    }

    #[test]
    fn fuzz_arbitrary_streams_never_panic_and_ignore_splits() {
        const ALPHABET: &[u8] = b"0123456789abcdefABCDEFxg;= \t\r\n\"\\:\0\x7f\xff";
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        for round in 0..3000 {
            let stream: Vec<u8> = if rng.below(2) == 0 {
                (0..rng.below(64)).map(|_| ALPHABET[rng.below(ALPHABET.len())]).collect()
            } else {
                // Mutating valid encodings reaches deeper states than pure noise does.
                let body: Vec<u8> = (0..rng.below(50)).map(|_| rng.next() as u8).collect();
                let mut stream = random_encoding(&mut rng, &body);
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(stream.len());
                    match rng.below(3) {
                        0 => stream[at] = ALPHABET[rng.below(ALPHABET.len())],
                        1 => {
                            stream.remove(at);
                        }
                        _ => stream.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
                    }
                }
                stream
            };
            let whole = run_whole(&stream);
            let context = format!("round {round}: {:?}", String::from_utf8_lossy(&stream));
            assert_eq!(run_bytewise(&stream), whole, "{context}");
            assert_eq!(run(&random_pieces(&mut rng, &stream)), whole, "{context}");
        }
    }
}

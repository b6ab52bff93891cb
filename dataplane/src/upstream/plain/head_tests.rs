//! The response head parser fed representative valid and invalid responses whole, byte by byte, and split in two at
//! every position: the outcome must not depend on how the upstream's bytes were cut into reads.

use super::*;

/// What reading one response off the front of a stream gave, as the read loop (`read_head`) would see it.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    /// The final head; `Ok(None)`: the stream ended before it was complete.
    outcome: Result<Option<Head>, HeadError>,
    /// Interim (1xx) heads skipped before it.
    interim: usize,
    /// The bytes after the final head (the start of its body), every piece included.
    rest: Vec<u8>,
}

fn run(pieces: &[&[u8]]) -> Run {
    let mut buf = BytesMut::new();
    let mut interim = 0;
    for (at, piece) in pieces.iter().enumerate() {
        buf.extend_from_slice(piece);
        // Ends: every complete head is consumed from the buffer.
        loop {
            match parse_response_head(&mut buf) {
                Err(error) => return Run { outcome: Err(error), interim, rest: Vec::new() },
                Ok(None) => break,
                Ok(Some(head)) if head.status.is_informational() => interim += 1,
                Ok(Some(head)) => {
                    pieces[at + 1..].iter().for_each(|later| buf.extend_from_slice(later));
                    return Run { outcome: Ok(Some(head)), interim, rest: buf.to_vec() };
                }
            }
        }
    }
    Run { outcome: Ok(None), interim, rest: Vec::new() }
}

fn whole(stream: &[u8]) -> Run {
    run(&[stream])
}

/// Asserts that `stream` gives the same run bytewise and split in two at each of `positions`.
fn assert_split_invariant(stream: &[u8], positions: impl Iterator<Item = usize>, bytewise: bool) -> Run {
    let expected = whole(stream);
    let shown = || String::from_utf8_lossy(&stream[..stream.len().min(120)]).into_owned();
    if bytewise {
        let pieces: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run(&pieces), expected, "byte by byte: {}", shown());
    }
    for at in positions {
        let (a, b) = stream.split_at(at);
        assert_eq!(run(&[a, b]), expected, "split at {at}: {}", shown());
    }
    expected
}

fn every_split(stream: &[u8]) -> Run {
    assert_split_invariant(stream, 0..=stream.len(), true)
}

/// A head with one field `X-Big` whose value makes the head exactly `len` bytes long.
fn head_of_len(len: usize) -> Vec<u8> {
    let mut head = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
    head.resize(len - 4, b'b');
    head.extend_from_slice(b"\r\n\r\n");
    head
}

/// A head with `n` fields.
fn head_with_fields(n: usize) -> Vec<u8> {
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..n {
        head.extend_from_slice(format!("X-F{i}: {i}\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// Large heads: split around the cap and the head's end, and at a sample of other places (every position of a
/// 64 KiB head, each re-parsed from its start, would take minutes in a debug build).
fn sampled_positions(len: usize) -> impl Iterator<Item = usize> {
    let cap = MAX_RESPONSE_HEAD_BYTES;
    let near = [0, 1, 17, cap - 2, cap - 1, cap, cap + 1, len - 3, len - 2, len - 1, len];
    near.into_iter().chain((0..len).step_by(4093)).filter(move |&at| at <= len)
}

const BODY: &[u8] = b"hello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n";

#[test]
fn valid_responses_parse_the_same_at_every_split() {
    let cases: &[(&[u8], u16, usize)] = &[
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 200, 0),
        (b"HTTP/1.0 404 Not Here\r\nServer: x\r\n\r\n", 404, 0),
        (b"HTTP/1.1 204 No Content\r\nA: 1\r\nA: 2\r\nEmpty:\r\nTabbed:\t v \t\r\n\r\n", 204, 0),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 200, 0),
        (b"HTTP/1.1 200 \r\nX-Obs: caf\xc3\xa9 \xff\r\n\r\n", 200, 0),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\n\r\n",
            201,
            2,
        ),
        (b"HTTP/1.1 200 OK\nBare-Lf: yes\n\n", 200, 0),
    ];
    for (head, status, interim) in cases {
        let mut stream = head.to_vec();
        stream.extend_from_slice(BODY);
        let got = every_split(&stream);
        let shown = String::from_utf8_lossy(head);
        let parsed = got.outcome.as_ref().unwrap_or_else(|e| panic!("{shown}: {e}")).as_ref().expect(&shown);
        assert_eq!((parsed.status.as_u16(), got.interim), (*status, *interim), "{shown}");
        assert_eq!(got.rest, BODY, "{shown}: the body's bytes are left in the buffer");
    }
}

#[test]
fn the_fields_and_reason_are_kept_as_sent() {
    let got = whole(b"HTTP/1.0 404 Not Here\r\nServer: x\r\nA: 1\r\nA: 2\r\n\r\n").outcome.unwrap().unwrap();
    assert_eq!(got.version, Version::HTTP_10);
    assert_eq!(got.reason.as_ref().map(|r| r.as_bytes()), Some(&b"Not Here"[..]));
    let a: Vec<_> = got.headers.get_all("a").iter().collect();
    assert_eq!(a, ["1", "2"]);
    let canonical = whole(b"HTTP/1.1 404 Not Found\r\n\r\n").outcome.unwrap().unwrap();
    assert_eq!(canonical.reason, None, "the usual phrase is hyper's own");
}

#[test]
fn a_reason_phrase_that_is_not_text_is_left_to_hyper() {
    // Found by fuzz/fuzz_targets/response_head.rs: the phrase's span was taken from outside the buffer (a panic).
    let got = every_split(b"HTTP/1.1 200 OK\x8d\r\nContent-Length: 0\r\n\r\n").outcome.unwrap().unwrap();
    assert_eq!((got.status, got.reason), (StatusCode::OK, None));
}

#[test]
fn invalid_responses_fail_the_same_at_every_split() {
    use httparse::Error as Syntax;
    let cases: &[(&[u8], HeadError)] = &[
        (b"garbage\r\n\r\n", HeadError::Syntax(Syntax::Version)),
        (b"HTTP/2 200\r\n\r\n", HeadError::Syntax(Syntax::Version)),
        (b"HTTP/1.1 2000 OK\r\n\r\n", HeadError::Syntax(Syntax::Status)),
        (b"HTTP/1.1 099 Low\r\n\r\n", HeadError::Status),
        (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", HeadError::Syntax(Syntax::HeaderName)),
        (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", HeadError::Syntax(Syntax::HeaderValue)),
        (b"HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n", HeadError::Syntax(Syntax::HeaderName)),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", HeadError::UnaskedSwitch),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n", HeadError::UnaskedSwitch),
    ];
    for (stream, expected) in cases {
        let got = every_split(stream);
        assert_eq!(got.outcome, Err(expected.clone()), "{}", String::from_utf8_lossy(stream));
    }
}

#[test]
fn incomplete_heads_wait_for_more_at_every_prefix() {
    let stream = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nA: b\r\n\r\n";
    for end in 0..stream.len() {
        let got = run(&stream[..end].chunks(1).collect::<Vec<_>>());
        assert_eq!(got.outcome, Ok(None), "prefix of {end} bytes");
    }
}

#[test]
fn a_head_at_the_cap_passes_and_one_byte_more_is_refused_however_it_arrives() {
    let at_cap = head_of_len(MAX_RESPONSE_HEAD_BYTES);
    let mut stream = at_cap.clone();
    stream.extend_from_slice(BODY);
    let got = assert_split_invariant(&stream, sampled_positions(stream.len()), false);
    assert_eq!(got.outcome.unwrap().unwrap().headers["x-big"].len(), MAX_RESPONSE_HEAD_BYTES - 4 - 24);
    assert_eq!(got.rest, BODY);

    for len in [MAX_RESPONSE_HEAD_BYTES + 1, 70 * 1024, 119 * 1024] {
        let over = head_of_len(len);
        let got = assert_split_invariant(&over, sampled_positions(over.len()), false);
        assert_eq!(got.outcome, Err(HeadError::TooLarge), "a head of {len} bytes");
    }
}

#[test]
fn a_head_that_completes_in_the_read_that_crosses_the_cap_is_refused() {
    // The defect of issue 22: checked only while incomplete, a head that arrived whole in one read passed.
    let mut buf = BytesMut::from(&head_of_len(80 * 1024)[..]);
    assert_eq!(parse_response_head(&mut buf).unwrap_err(), HeadError::TooLarge);
    // An interim head is held to the cap too.
    let mut interim = b"HTTP/1.1 103 Early Hints\r\nLink: ".to_vec();
    interim.resize(MAX_RESPONSE_HEAD_BYTES + 10, b'l');
    interim.extend_from_slice(b"\r\n\r\nHTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(whole(&interim).outcome, Err(HeadError::TooLarge));
}

#[test]
fn the_field_count_is_capped_at_every_split() {
    let at_cap = head_with_fields(MAX_RESPONSE_FIELDS);
    let got = every_split(&at_cap);
    assert_eq!(got.outcome.unwrap().unwrap().headers.len(), MAX_RESPONSE_FIELDS);
    // More than the usual room, less than the cap: parsed again with room for the cap.
    assert!(whole(&head_with_fields(USUAL_HEADERS + 1)).outcome.unwrap().is_some());
    let over = head_with_fields(MAX_RESPONSE_FIELDS + 1);
    assert_eq!(every_split(&over).outcome, Err(HeadError::TooManyFields));
}

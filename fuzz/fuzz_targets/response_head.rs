//! The plain upstream path's response head parser and framing (`upstream/plain/head.rs`): a response stream fed
//! whole, cut at the fuzzer's points, and byte by byte must give the same head (or the same refusal) and leave the
//! same bytes for the body, whatever the reads were. The framing of a response whose body is read, with both
//! `Transfer-Encoding` and `Content-Length`, must not pass the `Content-Length` on.

#![no_main]

use holdfast_dataplane::fuzzing::{response_head, Outcome};
use holdfast_fuzz::Split;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let split = Split::new(input);
    // The request's method changes only the framing: bit 3 of the first byte picks it (bits 0-2 count the cuts).
    let is_head_request = input.first().is_some_and(|b| b & 8 != 0);
    let whole = response_head(&[split.stream], is_head_request);
    assert_eq!(response_head(&split.pieces(), is_head_request), whole, "cut at the fuzzer's points");
    if let Some(bytes) = split.bytewise() {
        assert_eq!(response_head(&bytes, is_head_request), whole, "byte by byte");
    }
    let Some(head) = whole.head.filter(|_| whole.outcome == Outcome::Done) else { return };
    assert!(split.stream.ends_with(&whole.rest), "the bytes after the head are not the stream's tail");
    assert!(!(100..200).contains(&head.status), "an informational head was returned as the final one");
    // Where a body is read, its length comes from one field only. A response without a body (to HEAD, 204, 304)
    // keeps its Content-Length: it tells the client the size of what a GET would get.
    let has = |name: &str| head.fields.iter().any(|(n, _)| n == name);
    let bodiless = is_head_request || head.status == 204 || head.status == 304;
    if head.framing.is_ok() && has("transfer-encoding") && !bodiless {
        assert!(!has("content-length"), "Content-Length kept beside Transfer-Encoding");
    }
});

//! The plain upstream path's chunked decoder (`upstream/plain/chunked.rs`): a response body stream fed whole, cut at
//! the fuzzer's points, and byte by byte must give the same body, the same end (done, incomplete or the same error)
//! and the same bytes left after the body. A socket's reads may cut a body anywhere, so anything else would make a
//! response depend on timing.

#![no_main]

use holdfast_dataplane::fuzzing::{chunked, Outcome};
use holdfast_fuzz::Split;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let split = Split::new(input);
    let whole = chunked(&[split.stream]);
    assert_eq!(chunked(&split.pieces()), whole, "cut at the fuzzer's points");
    if let Some(bytes) = split.bytewise() {
        assert_eq!(chunked(&bytes), whole, "byte by byte");
    }
    // What follows a finished body is the stream's own tail, untouched.
    if whole.outcome == Outcome::Done {
        assert!(split.stream.ends_with(&whole.rest), "the bytes after the body are not the stream's tail");
        assert!(whole.data.len() + whole.rest.len() < split.stream.len(), "framing took no bytes");
    }
});

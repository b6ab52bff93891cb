//! The request path normaliser (`route::normalize_path`), whose output is both what routing matches and what the
//! upstream receives: any path gives a normal form or a refusal, never a panic; the normal form is normal (its own
//! normal form, unchanged: normalising twice must not move a request to another route); and it has none of what the
//! rules remove: no empty or dot segment, no escape of an unreserved character, no lower-case escape.

#![no_main]

use holdfast_dataplane::route::normalize_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(path) = std::str::from_utf8(input) else { return };
    let Ok(normal) = normalize_path(path) else { return };
    match normalize_path(&normal) {
        Ok(again) => assert_eq!(again, normal, "{path:?} normalised twice"),
        Err(error) => panic!("{path:?} normalised to {normal:?}, which is refused: {error}"),
    }
    if normal.is_empty() || normal == "*" {
        assert_eq!(normal, path, "only {path:?} itself is left as it is");
        return;
    }
    assert!(normal.starts_with('/'), "{path:?} normalised to {normal:?}");
    let segments: Vec<&str> = normal[1..].split('/').collect();
    let (last, inner) = segments.split_last().unwrap_or((&"", &[]));
    assert!(!inner.contains(&""), "{path:?} normalised to {normal:?}: an empty segment");
    for segment in inner.iter().chain([last]) {
        assert!(*segment != "." && *segment != "..", "{path:?} normalised to {normal:?}: a dot segment");
    }
    let bytes = normal.as_bytes();
    for (at, _) in normal.match_indices('%') {
        let hex = bytes.get(at + 1..at + 3).unwrap_or_default();
        let upper = |b: &u8| b.is_ascii_digit() || (b'A'..=b'F').contains(b);
        assert!(hex.len() == 2 && hex.iter().all(upper), "{path:?} normalised to {normal:?}: a bad escape");
        let byte = u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("00"), 16).unwrap_or(0);
        let unreserved = byte.is_ascii_alphanumeric() || b"-._~".contains(&byte);
        assert!(!unreserved, "{path:?} normalised to {normal:?}: an unreserved character still escaped");
    }
});

//! The tus header parsers (`dataplane/src/tus/protocol.rs`): `Upload-Metadata`, `Upload-Checksum`, the integer
//! fields, and the delivery's `Content-Type`, `Content-Disposition` and metadata fields made from the client's
//! metadata. Any header value gives a result or an error, never a panic, and metadata that was accepted, written
//! back the way a client writes it, parses to the same pairs.

#![no_main]

use base64::Engine;
use holdfast_dataplane::tus::protocol;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(input) else { return };
    if let Ok(pairs) = protocol::metadata(&value) {
        let encoded: Vec<String> = pairs
            .iter()
            .map(|(key, value)| match value {
                None => key.clone(),
                Some(bytes) => format!("{key} {}", base64::engine::general_purpose::STANDARD.encode(bytes)),
            })
            .collect();
        let again = HeaderValue::from_str(&encoded.join(",")).expect("keys and base64 are valid field text");
        assert_eq!(protocol::metadata(&again), Ok(pairs.clone()), "metadata through its own encoding");
        let _ = protocol::metadata_text(&pairs, "filename");
    }
    let _ = protocol::checksum(&value);
    let mut headers = HeaderMap::new();
    headers.insert(protocol::UPLOAD_LENGTH, value.clone());
    if let Ok(Some(n)) = protocol::integer(&headers, &protocol::UPLOAD_LENGTH) {
        let text = value.to_str().map(str::trim).unwrap_or_default();
        assert!(text.bytes().all(|b| b.is_ascii_digit()), "{text:?} taken as the integer {n}");
        assert_eq!(text.parse::<u64>(), Ok(n), "{text:?} taken as the integer {n}");
    }
    let _ = protocol::dialect(&headers);
    if let Ok(text) = std::str::from_utf8(input) {
        let _ = protocol::content_type(Some(text));
        if let Some(disposition) = protocol::content_disposition(text) {
            assert!(disposition.as_bytes().starts_with(b"attachment; filename=\""), "{disposition:?}");
        }
    }
    let _ = protocol::field_value(input);
});

//! The size and duration parsers: the UploadPolicy's Kubernetes quantities and durations (`holdfast_crds`: "10Gi",
//! "1.5Ki", "1h30m") and the dataplane's flags (`holdfast_dataplane::cli`: "500Mi", "30s"). Any text gives a value or
//! an error, never a panic; a value written back as a plain number parses to itself; and whatever a flag accepts,
//! the UploadPolicy field accepts with the same meaning, so that one setting means one thing in both places.

#![no_main]

use holdfast_dataplane::cli;
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else { return };
    let policy_bytes = holdfast_crds::parse_bytes(text);
    if let Ok(n) = policy_bytes {
        assert_eq!(holdfast_crds::parse_bytes(&n.to_string()), Ok(n), "{text:?} is {n} bytes");
    }
    let policy_duration = holdfast_crds::parse_duration(text);
    if let Ok(d) = policy_duration {
        assert_eq!(holdfast_crds::parse_duration(&format!("{}ms", d.as_millis())), Ok(d), "{text:?} is {d:?}");
    }
    if let Ok(n) = cli::parse_bytes(text) {
        assert_eq!(cli::parse_bytes(&n.to_string()), Ok(n), "flag {text:?} is {n} bytes");
        assert_eq!(policy_bytes, Ok(n), "flag {text:?} is {n} bytes");
    }
    if let Ok(d) = cli::parse_duration(text) {
        assert_eq!(cli::parse_duration(&format!("{}ms", d.as_millis())), Ok(d), "flag {text:?} is {d:?}");
        // The policy's durations are kept to the millisecond, as the flags' are.
        assert_eq!(policy_duration, Ok(Duration::from_millis(d.as_millis() as u64)), "flag {text:?} is {d:?}");
    }
});

//! The snapshot the dataplane's admin API takes (`holdfast_snapshot::Snapshot::from_json`: JSON, then
//! `validate()`): any bytes give a snapshot or an error, never a panic; and a snapshot that was accepted, written back
//! as JSON, is accepted again unchanged (what the controller writes is what the dataplane reads).

#![no_main]

use holdfast_snapshot::Snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(snapshot) = Snapshot::from_json(input) else { return };
    let json = match serde_json::to_vec(&snapshot) {
        Ok(json) => json,
        Err(error) => panic!("an accepted snapshot does not serialize: {error}"),
    };
    match Snapshot::from_json(&json) {
        Ok(again) => assert!(again == snapshot, "the snapshot changed through its own JSON"),
        Err(error) => panic!("an accepted snapshot's own JSON is refused: {error}"),
    }
});

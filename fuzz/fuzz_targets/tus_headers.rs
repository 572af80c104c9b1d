//! tus request headers as the origin parses them (`Upload-Concat`, `Upload-Metadata`,
//! `Upload-Checksum`, upload URLs): never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use origin::tus::{parse_checksum, parse_concat, parse_metadata, upload_id_from_url};

fuzz_target!(|value: &str| {
    let _ = parse_concat(value);
    let _ = parse_metadata(value);
    let _ = parse_checksum(value);
    if let Some(id) = upload_id_from_url(value) {
        assert!(!id.contains('/'), "an upload id with a slash from {value:?}");
    }
});

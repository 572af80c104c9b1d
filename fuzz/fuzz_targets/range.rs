//! `Range` headers as the PoP parses them: never a panic, and a satisfiable range lies inside
//! the object.
#![no_main]

use edge::range::{RangeRequest, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u64, &str)| {
    let (len, header) = input;
    if let RangeRequest::Bytes(first, last) = parse(Some(header), len) {
        assert!(first <= last && last < len, "{header:?} on {len} bytes gave {first}-{last}");
    }
});

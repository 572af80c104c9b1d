//! MP4/CMAF boxes: the box reader the packager's tests use (mp4-atom), and the packager's own
//! reading of an encoder's init template: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mp4_atom::{Any, Decode};

fuzz_target!(|bytes: &[u8]| {
    let mut rest = bytes;
    while !rest.is_empty() {
        if Any::decode(&mut rest).is_err() {
            break;
        }
    }
    let _ = encoder::package::cmaf::Track::from_template(bytes, 90_000);
});

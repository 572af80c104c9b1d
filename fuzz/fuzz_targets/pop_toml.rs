//! A PoP's `pop.toml`: never a panic, every problem reported. Files it names are resolved
//! under a folder that does not exist; device and kernel files are left out (reading a
//! character device is the operator's choice, not a parser's bug).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p)) {
        return;
    }
    let _ = pop_config::parse(text, Path::new("/nonexistent"));
});

//! Pipeline files (the TOML DAG a deployment may supply): never a panic, whatever the text.
#![no_main]

use std::path::Path;

use encoder::pipeline::Pipeline;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = Pipeline::parse(text, "fuzz.toml", Path::new("/nonexistent"));
});

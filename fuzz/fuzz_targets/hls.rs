//! HLS playlists as the load-test harness's player parses them (what a PoP under test may
//! answer): never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let base = url::Url::parse("https://pop.example/p/token/video/master.m3u8").expect("base URL");
    if let Ok(playlist) = loadtest::hls::parse(text, &base) {
        let _ = format!("{playlist:?}");
    }
});

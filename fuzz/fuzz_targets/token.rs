//! Playback tokens and upload URLs as the PoP and origin verify them: never a panic, and
//! nothing that was not signed by the origin's key is accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop_config::token::{Scope, SigningKey, query_param, verify_playback, verify_upload};

fuzz_target!(|input: (&str, &str, i64)| {
    let (token, video, now) = input;
    let keys = [SigningKey::from_seed("k1", &[7; 32]).expect("seed").public()];
    for scope in [Scope::Delivery, Scope::Keys] {
        assert!(verify_playback(&keys, token, video, scope, now).is_err(), "accepted {token:?}");
    }
    assert!(verify_upload(&keys, token, now).is_err(), "accepted {token:?}");
    let _ = query_param(token, video);
});

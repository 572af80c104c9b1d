//! `[[tokens]]`: the keys that verify playback tokens and upload URLs. Several may be live at
//! once, each under its key id, so the origin can rotate keys without breaking issued tokens.

use std::fs;
use std::path::Path;

use crate::document::{Section, string};
use crate::identity::name;
use crate::token::{Key, decode_hex};

/// HMAC-SHA256 keys shorter than 128 bits are guessable.
const MIN_SECRET_BYTES: usize = 16;

/// Reads every `[[tokens]]` entry of the root section; at least one is required.
pub(crate) fn read(root: &mut Section<'_>) -> Vec<Key> {
    let sections = root.sections("tokens").unwrap_or_default();
    if sections.is_empty() {
        root.report("tokens", "at least one [[tokens]] key (kid + secret) is required");
    }
    let mut keys = Vec::new();
    for s in sections {
        if let Some(key) = read_key(s, &keys) {
            keys.push(key);
        }
    }
    keys
}

fn read_key(mut s: Section<'_>, earlier: &[Key]) -> Option<Key> {
    let kid = s.required("kid", name);
    if let Some(kid) = &kid
        && earlier.iter().any(|k| k.kid == *kid)
    {
        s.report("kid", format!("duplicate key id `{kid}`: tokens name their key by id, so ids must be unique"));
    }
    let secret = match (s.value("secret").is_some(), s.value("secret_file").is_some()) {
        (true, false) => s.field("secret", |v| secret(string(v)?)),
        (false, true) => {
            s.path("secret_file").and_then(|path| secret_from_file(&path).map_err(|m| s.report("secret_file", m)).ok())
        }
        _ => {
            s.report_here("set exactly one of `secret` and `secret_file`");
            None
        }
    };
    s.finish();
    Some(Key::new(&kid?, &secret?))
}

fn secret(hex: &str) -> Result<Vec<u8>, String> {
    let bytes = decode_hex(hex.trim()).ok_or("not hex (an even number of 0-9, a-f digits)")?;
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(format!("too short: {} bytes, at least {MIN_SECRET_BYTES} are required", bytes.len()));
    }
    Ok(bytes)
}

fn secret_from_file(path: &Path) -> Result<Vec<u8>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    secret(&text).map_err(|why| format!("{}: {why}", path.display()))
}

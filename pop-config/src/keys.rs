//! `[[tokens]]`: the public keys that verify playback tokens and upload URLs. Several may be
//! live at once, each under its key id, so the origin can rotate keys without breaking issued
//! tokens. A PoP holds only what lets it verify: a private key or an HMAC secret here is
//! refused, because with it the PoP (a partner's machine, say) could grant access itself.

use std::path::Path;

use crate::document::{Section, read_small, string};
use crate::identity::name;
use crate::token::{PUBLIC_KEY_BYTES, PublicKey, decode_hex};

/// Keys that hold signing material: named so the refusal says why instead of "unknown key".
const SIGNING_MATERIAL: [&str; 5] = ["secret", "secret_file", "private_key", "private_key_file", "seed"];

/// Reads every `[[tokens]]` entry of the root section; at least one is required.
pub(crate) fn read(root: &mut Section<'_>) -> Vec<PublicKey> {
    let sections = root.sections("tokens").unwrap_or_default();
    if sections.is_empty() {
        root.report("tokens", "at least one [[tokens]] key (kid + public_key) is required");
    }
    let mut keys = Vec::new();
    for s in sections {
        if let Some(key) = read_key(s, &keys) {
            keys.push(key);
        }
    }
    keys
}

fn read_key(mut s: Section<'_>, earlier: &[PublicKey]) -> Option<PublicKey> {
    let kid = s.required("kid", name);
    if let Some(kid) = &kid
        && earlier.iter().any(|k| k.kid == *kid)
    {
        s.report("kid", format!("duplicate key id `{kid}`: tokens name their key by id, so ids must be unique"));
    }
    let refused = refuse_signing_material(&mut s);
    let public = match (s.value("public_key").is_some(), s.value("public_key_file").is_some()) {
        (true, false) => s.field("public_key", |v| public_key(string(v)?)),
        (false, true) => s
            .path("public_key_file")
            .and_then(|path| public_key_from_file(&path).map_err(|m| s.report("public_key_file", m)).ok()),
        _ if refused => None,
        _ => {
            s.report_here("set exactly one of `public_key` and `public_key_file`");
            None
        }
    };
    s.finish();
    PublicKey::new(&kid?, &public?)
}

/// Reports every key that would put signing material in a PoP; whether there was one.
fn refuse_signing_material(s: &mut Section<'_>) -> bool {
    let mut found = false;
    for key in SIGNING_MATERIAL {
        if s.value(key).is_some() {
            found = true;
            s.report(
                key,
                "a PoP holds only public keys: a secret or private key here would let this PoP mint tokens \
                 and upload URLs. Remove it and set `public_key` (`origin keys pop-toml` prints the entries)",
            );
        }
    }
    found
}

fn public_key(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    if text.contains("PRIVATE KEY") {
        return Err("this is a private key: a PoP holds only the public key (`origin keys pop-toml`)".into());
    }
    let bytes = decode_hex(text).ok_or("not hex (an even number of 0-9, a-f digits)")?;
    if bytes.len() != PUBLIC_KEY_BYTES {
        return Err(format!(
            "{} bytes: an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes (64 hex digits)",
            bytes.len()
        ));
    }
    Ok(bytes)
}

fn public_key_from_file(path: &Path) -> Result<Vec<u8>, String> {
    let text = read_small(path, 4096)?;
    public_key(&text).map_err(|why| format!("{}: {why}", path.display()))
}

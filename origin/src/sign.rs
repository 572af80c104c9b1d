//! Signed capabilities: pre-signed upload URLs (P5) and playback tokens. HMAC-SHA256 with
//! `ring`, verified in constant time, with expiry. The exact byte strings signed below are a
//! contract: edges verify playback tokens with the same key.

use ring::hmac;

use crate::error::{Error, Result};
use crate::meta::Millis;

/// Signs and verifies.
#[derive(Clone)]
pub struct Signer {
    key: hmac::Key,
    /// Key id carried in tokens so keys can rotate.
    kid: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish()
    }
}

/// The parameters an upload URL carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadGrant {
    /// Video the bytes belong to.
    pub video: String,
    /// Largest upload allowed.
    pub max_bytes: u64,
    /// Expiry, Unix seconds.
    pub expires: i64,
}

/// A verified playback token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybackGrant {
    /// Video.
    pub video: String,
    /// Expiry, Unix seconds.
    pub expires: i64,
    /// Viewer id, if the token was issued for one.
    pub viewer: Option<String>,
}

impl Signer {
    /// A signer with key id `kid`.
    pub fn new(secret: &[u8], kid: &str) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, secret), kid: kid.to_owned() }
    }

    fn tag(&self, message: &str) -> String {
        hex(hmac::sign(&self.key, message.as_bytes()).as_ref())
    }

    fn verify_tag(&self, message: &str, tag_hex: &str) -> bool {
        decode(tag_hex).is_some_and(|tag| hmac::verify(&self.key, message.as_bytes(), &tag).is_ok())
    }

    /// The query string of an upload URL.
    pub fn upload_query(&self, g: &UploadGrant) -> String {
        let sig = self.tag(&upload_message(g));
        format!("video={}&max={}&exp={}&sig={sig}", g.video, g.max_bytes, g.expires)
    }

    /// Verifies an upload URL's query (`now` in Unix seconds).
    pub fn verify_upload(&self, query: &str, now: i64) -> Result<UploadGrant> {
        let get = |k: &str| query_param(query, k);
        let (Some(video), Some(max), Some(exp), Some(sig)) = (get("video"), get("max"), get("exp"), get("sig")) else {
            return Err(Error::forbidden("missing_signature", "the upload URL is not signed"));
        };
        let grant = UploadGrant {
            video: video.to_owned(),
            max_bytes: max.parse().map_err(|_| bad_signature())?,
            expires: exp.parse().map_err(|_| bad_signature())?,
        };
        if !self.verify_tag(&upload_message(&grant), sig) {
            return Err(bad_signature());
        }
        if grant.expires < now {
            return Err(Error::api(http::StatusCode::GONE, "url_expired", "the upload URL has expired"));
        }
        Ok(grant)
    }

    /// A playback token: `v1.KID.VIDEO.EXPIRES.VIEWER.SIG`, path-safe.
    pub fn playback_token(&self, g: &PlaybackGrant) -> String {
        let viewer = g.viewer.as_deref().unwrap_or("-");
        let sig = self.tag(&playback_message(&self.kid, &g.video, g.expires, viewer));
        format!("v1.{}.{}.{}.{viewer}.{sig}", self.kid, g.video, g.expires)
    }

    /// Verifies a playback token for `video` (`now` in Unix seconds).
    pub fn verify_playback(&self, token: &str, video: &str, now: i64) -> Result<PlaybackGrant> {
        let parts: Vec<&str> = token.split('.').collect();
        let [version, kid, tok_video, expires, viewer, sig] = parts.as_slice() else {
            return Err(bad_token());
        };
        if *version != "v1" || *kid != self.kid {
            return Err(bad_token());
        }
        let expires: i64 = expires.parse().map_err(|_| bad_token())?;
        if !self.verify_tag(&playback_message(kid, tok_video, expires, viewer), sig) {
            return Err(bad_token());
        }
        if *tok_video != video {
            return Err(Error::forbidden("token_wrong_video", "the playback token is for another video"));
        }
        if expires < now {
            return Err(Error::forbidden("token_expired", "the playback token has expired"));
        }
        Ok(PlaybackGrant { video: video.to_owned(), expires, viewer: (*viewer != "-").then(|| (*viewer).to_owned()) })
    }

    /// HMAC-SHA256 of a webhook body, hex.
    pub fn webhook_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body);
        hex(ctx.sign().as_ref())
    }
}

fn upload_message(g: &UploadGrant) -> String {
    format!("upload\n{}\n{}\n{}", g.video, g.max_bytes, g.expires)
}

fn playback_message(kid: &str, video: &str, expires: i64, viewer: &str) -> String {
    format!("play\n{kid}\n{video}\n{expires}\n{viewer}")
}

fn bad_signature() -> Error {
    Error::forbidden("bad_signature", "the upload URL signature does not match")
}

fn bad_token() -> Error {
    Error::forbidden("bad_token", "the playback token is not valid")
}

/// A query parameter's raw value (the values signed here never need percent-decoding).
pub fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
}

/// Byte equality whose time does not depend on where the inputs differ.
pub fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether an id or viewer name is safe inside a path segment and a token.
pub fn is_safe_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect()
}

/// Unix seconds from store milliseconds.
pub fn unix_secs(ms: Millis) -> i64 {
    ms / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new(b"0123456789abcdef0123456789abcdef", "k1")
    }

    #[test]
    fn upload_urls_bind_video_size_and_expiry() {
        let s = signer();
        let g = UploadGrant { video: "abc".into(), max_bytes: 100, expires: 1000 };
        let q = s.upload_query(&g);
        assert_eq!(s.verify_upload(&q, 999).unwrap(), g);
        assert_eq!(s.verify_upload(&q, 1001).unwrap_err().code(), "url_expired");
        for tampered in
            [q.replace("video=abc", "video=abd"), q.replace("max=100", "max=101"), q.replace("exp=1000", "exp=9999")]
        {
            assert_eq!(s.verify_upload(&tampered, 999).unwrap_err().code(), "bad_signature", "{tampered}");
        }
        assert_eq!(s.verify_upload("video=abc", 0).unwrap_err().code(), "missing_signature");
        let other = Signer::new(b"another key of sixteen+ bytes!!", "k1");
        assert_eq!(other.verify_upload(&q, 999).unwrap_err().code(), "bad_signature");
    }

    #[test]
    fn playback_tokens_are_scoped_and_expire() {
        let s = signer();
        let g = PlaybackGrant { video: "v1d".into(), expires: 500, viewer: Some("alice".into()) };
        let t = s.playback_token(&g);
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)), "{t}");
        assert_eq!(s.verify_playback(&t, "v1d", 400).unwrap(), g);
        assert_eq!(s.verify_playback(&t, "v1d", 501).unwrap_err().code(), "token_expired");
        assert_eq!(s.verify_playback(&t, "other", 400).unwrap_err().code(), "token_wrong_video");
        let mut tampered = t.clone();
        tampered.replace_range(tampered.len() - 1.., if t.ends_with('0') { "1" } else { "0" });
        assert_eq!(s.verify_playback(&tampered, "v1d", 400).unwrap_err().code(), "bad_token");
        assert_eq!(s.verify_playback(&t.replace("alice", "mallory"), "v1d", 400).unwrap_err().code(), "bad_token");
        assert_eq!(s.verify_playback("garbage", "v1d", 400).unwrap_err().code(), "bad_token");
    }
}

//! Signed capabilities: pre-signed upload URLs (P5) and playback tokens, in the formats
//! `pop_config::token` defines (the contract PoPs verify against), mapped to API errors.

use pop_config::token::{self, Key, TokenError};
pub use pop_config::token::{PlaybackGrant, UploadGrant, query_param};
use ring::hmac;

use crate::error::{Error, Result};

/// Signs and verifies with the origin's key (its id travels in tokens so keys can rotate).
#[derive(Clone, Debug)]
pub struct Signer {
    key: Key,
}

fn refused(e: TokenError) -> Error {
    let status = if e == TokenError::UrlExpired { http::StatusCode::GONE } else { http::StatusCode::FORBIDDEN };
    Error::api(status, e.code(), e.to_string())
}

impl Signer {
    /// A signer with key id `kid`.
    pub fn new(secret: &[u8], kid: &str) -> Self {
        Self { key: Key::new(kid, secret) }
    }

    /// The query string of an upload URL.
    pub fn upload_query(&self, g: &UploadGrant) -> String {
        token::sign_upload(&self.key, g)
    }

    /// Verifies an upload URL's query (`now` in Unix seconds).
    pub fn verify_upload(&self, query: &str, now: i64) -> Result<UploadGrant> {
        token::verify_upload(std::slice::from_ref(&self.key), query, now).map_err(refused)
    }

    /// A playback token.
    pub fn playback_token(&self, g: &PlaybackGrant) -> String {
        token::sign_playback(&self.key, g)
    }

    /// Verifies a playback token for `video` (`now` in Unix seconds).
    pub fn verify_playback(&self, token: &str, video: &str, now: i64) -> Result<PlaybackGrant> {
        token::verify_playback(std::slice::from_ref(&self.key), token, video, now).map_err(refused)
    }

    /// HMAC-SHA256 of a webhook body, hex.
    pub fn webhook_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body);
        token::hex(ctx.sign().as_ref())
    }
}

/// Byte equality whose time does not depend on where the inputs differ.
pub fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether an id or viewer name is safe inside a path segment and a token.
pub fn is_safe_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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

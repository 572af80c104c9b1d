//! Signed capabilities: pre-signed upload URLs (P5) and playback tokens, in the formats
//! `pop_config::token` defines (the contract PoPs verify against), mapped to API errors. The
//! origin alone holds the Ed25519 private keys; PoPs hold the public halves.

use pop_config::token::{self, PublicKey, SigningKey, TokenError};
pub use pop_config::token::{PlaybackGrant, Scope, UploadGrant, query_param};
use ring::hmac;

use crate::error::{Error, Kind, Result};
use crate::secrets::Secrets;

/// Signs with the active key and verifies with every key not yet retired (key ids travel in
/// tokens, so keys rotate).
#[derive(Debug)]
pub struct Signer {
    active: SigningKey,
    publics: Vec<PublicKey>,
}

fn refused(e: TokenError) -> Error {
    let kind = if e == TokenError::UrlExpired { Kind::Gone } else { Kind::Forbidden };
    Error::refused(kind, e.code(), e.to_string())
}

impl Signer {
    /// A signer with one key, from its 32-byte seed.
    pub fn new(seed: &[u8; 32], kid: &str) -> Self {
        let active = SigningKey::from_seed(kid, seed).expect("32-byte seed");
        Self { publics: vec![active.public()], active }
    }

    /// The signer of `secrets`: the active key signs, all of them verify.
    pub fn from_secrets(secrets: &Secrets) -> Result<Self> {
        let keys = secrets.signing_keys();
        let publics = keys.iter().map(SigningKey::public).collect();
        let active = keys
            .into_iter()
            .find(|k| k.kid == secrets.active_kid)
            .ok_or_else(|| Error::Config(format!("the active signing key `{}` is missing", secrets.active_kid)))?;
        Ok(Self { active, publics })
    }

    /// The public keys PoPs configure (`[[tokens]]`).
    pub fn public_keys(&self) -> &[PublicKey] {
        &self.publics
    }

    /// The query string of an upload URL.
    pub fn upload_query(&self, g: &UploadGrant) -> String {
        token::sign_upload(&self.active, g)
    }

    /// Verifies an upload URL's query (`now` in Unix seconds).
    pub fn verify_upload(&self, query: &str, now: i64) -> Result<UploadGrant> {
        token::verify_upload(&self.publics, query, now).map_err(refused)
    }

    /// A playback token.
    pub fn playback_token(&self, g: &PlaybackGrant) -> String {
        token::sign_playback(&self.active, g)
    }

    /// Verifies a playback token for `video` and `scope` (`now` in Unix seconds).
    pub fn verify_playback(&self, token: &str, video: &str, scope: Scope, now: i64) -> Result<PlaybackGrant> {
        token::verify_playback(&self.publics, token, video, scope, now).map_err(refused)
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
        Signer::new(&[3; 32], "k1")
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
        let other = Signer::new(&[4; 32], "k1");
        assert_eq!(other.verify_upload(&q, 999).unwrap_err().code(), "bad_signature");
    }

    #[test]
    fn playback_tokens_are_scoped_and_expire() {
        let s = signer();
        let g =
            PlaybackGrant { video: "v1d".into(), expires: 500, viewer: Some("alice".into()), scope: Scope::Delivery };
        let t = s.playback_token(&g);
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)), "{t}");
        assert_eq!(s.verify_playback(&t, "v1d", Scope::Delivery, 400).unwrap(), g);
        assert_eq!(s.verify_playback(&t, "v1d", Scope::Delivery, 501).unwrap_err().code(), "token_expired");
        assert_eq!(s.verify_playback(&t, "other", Scope::Delivery, 400).unwrap_err().code(), "token_wrong_video");
        assert_eq!(s.verify_playback(&t, "v1d", Scope::Keys, 400).unwrap_err().code(), "token_wrong_scope");
        assert_eq!(
            s.verify_playback(&t.replace("alice", "mallory"), "v1d", Scope::Delivery, 400).unwrap_err().code(),
            "bad_token"
        );
        assert_eq!(s.verify_playback("garbage", "v1d", Scope::Delivery, 400).unwrap_err().code(), "bad_token");
    }
}

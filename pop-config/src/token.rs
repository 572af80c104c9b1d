//! The signed capabilities origin and PoPs share: playback tokens and pre-signed upload URLs.
//! HMAC-SHA256 with `ring`, checked in constant time, with expiry and scope. The exact byte
//! strings signed here are the contract; the origin signs with them, PoPs verify with them.

use ring::hmac;

/// A signing/verification key with its id (tokens name the key that signed them, so keys
/// can rotate: PoPs may hold several).
#[derive(Clone)]
pub struct Key {
    /// Key id.
    pub kid: String,
    key: hmac::Key,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl Key {
    /// A key from raw secret bytes.
    pub fn new(kid: &str, secret: &[u8]) -> Self {
        Self { kid: kid.to_owned(), key: hmac::Key::new(hmac::HMAC_SHA256, secret) }
    }

    fn tag(&self, message: &str) -> String {
        hex(hmac::sign(&self.key, message.as_bytes()).as_ref())
    }

    fn verifies(&self, message: &str, tag_hex: &str) -> bool {
        decode_hex(tag_hex).is_some_and(|tag| hmac::verify(&self.key, message.as_bytes(), &tag).is_ok())
    }
}

/// Why a token or URL is refused; each has a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not in the expected shape, unknown key, or the signature does not match.
    #[error("the playback token is not valid")]
    BadToken,
    /// Valid but past its expiry.
    #[error("the playback token has expired")]
    Expired,
    /// Valid but for another video.
    #[error("the playback token is for another video")]
    WrongVideo,
    /// An upload URL without its signature parameters.
    #[error("the upload URL is not signed")]
    MissingSignature,
    /// An upload URL whose signature does not match.
    #[error("the upload URL signature does not match")]
    BadSignature,
    /// An upload URL past its expiry.
    #[error("the upload URL has expired")]
    UrlExpired,
}

impl TokenError {
    /// Stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::BadToken => "bad_token",
            Self::Expired => "token_expired",
            Self::WrongVideo => "token_wrong_video",
            Self::MissingSignature => "missing_signature",
            Self::BadSignature => "bad_signature",
            Self::UrlExpired => "url_expired",
        }
    }
}

/// What a playback token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybackGrant {
    /// Video.
    pub video: String,
    /// Expiry, Unix seconds.
    pub expires: i64,
    /// Viewer id, if issued for one.
    pub viewer: Option<String>,
}

/// What an upload URL grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadGrant {
    /// Video the bytes belong to.
    pub video: String,
    /// Largest upload allowed.
    pub max_bytes: u64,
    /// Expiry, Unix seconds.
    pub expires: i64,
}

fn playback_message(kid: &str, video: &str, expires: i64, viewer: &str) -> String {
    format!("play\n{kid}\n{video}\n{expires}\n{viewer}")
}

fn upload_message(g: &UploadGrant) -> String {
    format!("upload\n{}\n{}\n{}", g.video, g.max_bytes, g.expires)
}

/// A playback token: `v1.KID.VIDEO.EXPIRES.VIEWER.SIG`, safe in a URL path segment.
pub fn sign_playback(key: &Key, g: &PlaybackGrant) -> String {
    let viewer = g.viewer.as_deref().unwrap_or("-");
    let sig = key.tag(&playback_message(&key.kid, &g.video, g.expires, viewer));
    format!("v1.{}.{}.{}.{viewer}.{sig}", key.kid, g.video, g.expires)
}

/// Verifies a playback token for `video` at `now` (Unix seconds) with any of `keys`.
pub fn verify_playback(keys: &[Key], token: &str, video: &str, now: i64) -> Result<PlaybackGrant, TokenError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [version, kid, tok_video, expires, viewer, sig] = parts.as_slice() else {
        return Err(TokenError::BadToken);
    };
    let key = keys.iter().find(|k| k.kid == *kid).filter(|_| *version == "v1").ok_or(TokenError::BadToken)?;
    let expires: i64 = expires.parse().map_err(|_| TokenError::BadToken)?;
    if !key.verifies(&playback_message(kid, tok_video, expires, viewer), sig) {
        return Err(TokenError::BadToken);
    }
    if *tok_video != video {
        return Err(TokenError::WrongVideo);
    }
    if expires < now {
        return Err(TokenError::Expired);
    }
    Ok(PlaybackGrant { video: video.to_owned(), expires, viewer: (*viewer != "-").then(|| (*viewer).to_owned()) })
}

/// The query string of a pre-signed upload URL.
pub fn sign_upload(key: &Key, g: &UploadGrant) -> String {
    let sig = key.tag(&upload_message(g));
    format!("video={}&max={}&exp={}&sig={sig}", g.video, g.max_bytes, g.expires)
}

/// Verifies an upload URL's query at `now` (Unix seconds) with any of `keys`.
pub fn verify_upload(keys: &[Key], query: &str, now: i64) -> Result<UploadGrant, TokenError> {
    let get = |k: &str| query_param(query, k);
    let (Some(video), Some(max), Some(exp), Some(sig)) = (get("video"), get("max"), get("exp"), get("sig")) else {
        return Err(TokenError::MissingSignature);
    };
    let grant = UploadGrant {
        video: video.to_owned(),
        max_bytes: max.parse().map_err(|_| TokenError::BadSignature)?,
        expires: exp.parse().map_err(|_| TokenError::BadSignature)?,
    };
    if !keys.iter().any(|k| k.verifies(&upload_message(&grant), sig)) {
        return Err(TokenError::BadSignature);
    }
    if grant.expires < now {
        return Err(TokenError::UrlExpired);
    }
    Ok(grant)
}

/// A query parameter's raw value (signed values never need percent-decoding).
pub fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes hex; `None` on odd length or a non-hex digit.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<Key> {
        vec![Key::new("k1", b"0123456789abcdef0123456789abcdef"), Key::new("k2", b"another secret of 16+ bytes....")]
    }

    #[test]
    fn upload_urls_bind_video_size_and_expiry() {
        let keys = keys();
        let g = UploadGrant { video: "abc".into(), max_bytes: 100, expires: 1000 };
        let q = sign_upload(&keys[0], &g);
        assert_eq!(verify_upload(&keys, &q, 999).unwrap(), g);
        assert_eq!(verify_upload(&keys, &q, 1001).unwrap_err(), TokenError::UrlExpired);
        for tampered in
            [q.replace("video=abc", "video=abd"), q.replace("max=100", "max=101"), q.replace("exp=1000", "exp=9999")]
        {
            assert_eq!(verify_upload(&keys, &tampered, 999).unwrap_err(), TokenError::BadSignature, "{tampered}");
        }
        assert_eq!(verify_upload(&keys, "video=abc", 0).unwrap_err(), TokenError::MissingSignature);
        assert_eq!(verify_upload(&keys[1..], &q, 999).unwrap_err(), TokenError::BadSignature);
    }

    #[test]
    fn playback_tokens_are_scoped_expire_and_rotate() {
        let keys = keys();
        let g = PlaybackGrant { video: "vid".into(), expires: 500, viewer: Some("alice".into()) };
        let t = sign_playback(&keys[1], &g);
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)), "{t}");
        assert_eq!(verify_playback(&keys, &t, "vid", 400).unwrap(), g);
        assert_eq!(verify_playback(&keys[..1], &t, "vid", 400).unwrap_err(), TokenError::BadToken, "unknown kid");
        assert_eq!(verify_playback(&keys, &t, "vid", 501).unwrap_err(), TokenError::Expired);
        assert_eq!(verify_playback(&keys, &t, "other", 400).unwrap_err(), TokenError::WrongVideo);
        let mut tampered = t.clone();
        tampered.replace_range(tampered.len() - 1.., if t.ends_with('0') { "1" } else { "0" });
        assert_eq!(verify_playback(&keys, &tampered, "vid", 400).unwrap_err(), TokenError::BadToken);
        assert_eq!(
            verify_playback(&keys, &t.replace("alice", "mallory"), "vid", 400).unwrap_err(),
            TokenError::BadToken
        );
        assert_eq!(verify_playback(&keys, "garbage", "vid", 400).unwrap_err(), TokenError::BadToken);
    }
}

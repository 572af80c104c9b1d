//! The signed capabilities origin and PoPs share: playback tokens and pre-signed upload URLs.
//! Ed25519 (`ring`): the origin signs with a private key only it holds ([`SigningKey`]); PoPs
//! verify with public keys ([`PublicKey`]), so a PoP, even one run by a partner, can check a
//! capability but never create one. The exact byte strings signed here are the contract.
//!
//! Tokens name the key that signed them (`kid`), so keys rotate: PoPs hold several public
//! keys at once while a new one is rolled out. Verification involves no secret, so there is
//! nothing to compare in constant time; the signature check itself is `ring`'s.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// Ed25519 public keys are 32 bytes.
pub const PUBLIC_KEY_BYTES: usize = 32;
/// Ed25519 seeds (the private key) are 32 bytes.
pub const SEED_BYTES: usize = 32;

/// The origin's private signing key with its id. Never part of a PoP's configuration.
pub struct SigningKey {
    /// Key id, carried in every token and URL it signs.
    pub kid: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The key pair for a 32-byte seed; `None` for any other length.
    pub fn from_seed(kid: &str, seed: &[u8]) -> Option<Self> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).ok().filter(|_| seed.len() == SEED_BYTES)?;
        Some(Self { kid: kid.to_owned(), pair })
    }

    /// The public half, which PoPs configure.
    pub fn public(&self) -> PublicKey {
        let bytes: [u8; PUBLIC_KEY_BYTES] = self.pair.public_key().as_ref().try_into().expect("Ed25519 public key");
        PublicKey { kid: self.kid.clone(), bytes }
    }

    fn sign(&self, message: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.pair.sign(message.as_bytes()))
    }
}

/// A verification key with its id.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// Key id.
    pub kid: String,
    bytes: [u8; PUBLIC_KEY_BYTES],
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({}: {})", self.kid, self.to_hex())
    }
}

impl PublicKey {
    /// A public key from its 32 bytes; `None` for any other length.
    pub fn new(kid: &str, bytes: &[u8]) -> Option<Self> {
        Some(Self { kid: kid.to_owned(), bytes: bytes.try_into().ok()? })
    }

    /// The 32 bytes as lower-case hex, as `pop.toml` spells them.
    pub fn to_hex(&self) -> String {
        hex(&self.bytes)
    }

    fn verifies(&self, message: &str, sig: &str) -> bool {
        let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else { return false };
        UnparsedPublicKey::new(&ED25519, &self.bytes).verify(message.as_bytes(), &sig).is_ok()
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
    /// Valid but for another use (a key token at a PoP, a delivery token at the key service).
    #[error("the token does not grant this")]
    WrongScope,
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
            Self::WrongScope => "token_wrong_scope",
            Self::MissingSignature => "missing_signature",
            Self::BadSignature => "bad_signature",
            Self::UrlExpired => "url_expired",
        }
    }
}

/// What a playback token may be used for. A viewer gets one of each: the delivery token goes
/// in the URLs a PoP sees; the key token goes only to the key service, so a PoP that logs
/// every URL it serves still holds nothing that fetches a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Objects: playlists, manifests, init and media segments, pictures.
    Delivery,
    /// Content keys and licences, at the key service.
    Keys,
}

impl Scope {
    fn letter(self) -> &'static str {
        match self {
            Self::Delivery => "d",
            Self::Keys => "k",
        }
    }

    fn from_letter(s: &str) -> Option<Self> {
        match s {
            "d" => Some(Self::Delivery),
            "k" => Some(Self::Keys),
            _ => None,
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
    /// What it may be used for.
    pub scope: Scope,
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

fn playback_message(kid: &str, scope: &str, video: &str, expires: i64, viewer: &str) -> String {
    format!("play2\n{kid}\n{scope}\n{video}\n{expires}\n{viewer}")
}

fn upload_message(kid: &str, g: &UploadGrant) -> String {
    format!("upload2\n{kid}\n{}\n{}\n{}", g.video, g.max_bytes, g.expires)
}

/// A playback token: `v2.KID.SCOPE.VIDEO.EXPIRES.VIEWER.SIG` (SIG base64url), safe in a URL
/// path segment.
pub fn sign_playback(key: &SigningKey, g: &PlaybackGrant) -> String {
    let viewer = g.viewer.as_deref().unwrap_or("-");
    let scope = g.scope.letter();
    let sig = key.sign(&playback_message(&key.kid, scope, &g.video, g.expires, viewer));
    format!("v2.{}.{scope}.{}.{}.{viewer}.{sig}", key.kid, g.video, g.expires)
}

/// Verifies a playback token for `video` and `scope` at `now` (Unix seconds) with any of `keys`.
pub fn verify_playback(
    keys: &[PublicKey],
    token: &str,
    video: &str,
    scope: Scope,
    now: i64,
) -> Result<PlaybackGrant, TokenError> {
    let parts: Vec<&str> = token.split('.').collect();
    let ["v2", kid, letter, tok_video, expires, viewer, sig] = parts.as_slice() else {
        return Err(TokenError::BadToken);
    };
    let key = keys.iter().find(|k| k.kid == *kid).ok_or(TokenError::BadToken)?;
    let expires: i64 = expires.parse().map_err(|_| TokenError::BadToken)?;
    if !key.verifies(&playback_message(kid, letter, tok_video, expires, viewer), sig) {
        return Err(TokenError::BadToken);
    }
    if Scope::from_letter(letter) != Some(scope) {
        return Err(TokenError::WrongScope);
    }
    if *tok_video != video {
        return Err(TokenError::WrongVideo);
    }
    if expires < now {
        return Err(TokenError::Expired);
    }
    let viewer = (*viewer != "-").then(|| (*viewer).to_owned());
    Ok(PlaybackGrant { video: video.to_owned(), expires, viewer, scope })
}

/// The query string of a pre-signed upload URL.
pub fn sign_upload(key: &SigningKey, g: &UploadGrant) -> String {
    let sig = key.sign(&upload_message(&key.kid, g));
    format!("video={}&max={}&exp={}&kid={}&sig={sig}", g.video, g.max_bytes, g.expires, key.kid)
}

/// Verifies an upload URL's query at `now` (Unix seconds) with any of `keys`.
pub fn verify_upload(keys: &[PublicKey], query: &str, now: i64) -> Result<UploadGrant, TokenError> {
    let get = |k: &str| query_param(query, k);
    let (Some(video), Some(max), Some(exp), Some(kid), Some(sig)) =
        (get("video"), get("max"), get("exp"), get("kid"), get("sig"))
    else {
        return Err(TokenError::MissingSignature);
    };
    let grant = UploadGrant {
        video: video.to_owned(),
        max_bytes: max.parse().map_err(|_| TokenError::BadSignature)?,
        expires: exp.parse().map_err(|_| TokenError::BadSignature)?,
    };
    let key = keys.iter().find(|k| k.kid == kid).ok_or(TokenError::BadSignature)?;
    if !key.verifies(&upload_message(kid, &grant), sig) {
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

    fn signers() -> Vec<SigningKey> {
        vec![SigningKey::from_seed("k1", &[1; 32]).unwrap(), SigningKey::from_seed("k2", &[2; 32]).unwrap()]
    }

    fn publics(s: &[SigningKey]) -> Vec<PublicKey> {
        s.iter().map(SigningKey::public).collect()
    }

    #[test]
    fn upload_urls_bind_video_size_and_expiry() {
        let signers = signers();
        let keys = publics(&signers);
        let g = UploadGrant { video: "abc".into(), max_bytes: 100, expires: 1000 };
        let q = sign_upload(&signers[0], &g);
        assert_eq!(verify_upload(&keys, &q, 999).unwrap(), g);
        assert_eq!(verify_upload(&keys, &q, 1001).unwrap_err(), TokenError::UrlExpired);
        for tampered in [
            q.replace("video=abc", "video=abd"),
            q.replace("max=100", "max=101"),
            q.replace("exp=1000", "exp=9999"),
            q.replace("kid=k1", "kid=k2"),
        ] {
            assert_eq!(verify_upload(&keys, &tampered, 999).unwrap_err(), TokenError::BadSignature, "{tampered}");
        }
        assert_eq!(verify_upload(&keys, "video=abc", 0).unwrap_err(), TokenError::MissingSignature);
        assert_eq!(verify_upload(&keys[1..], &q, 999).unwrap_err(), TokenError::BadSignature);
    }

    #[test]
    fn playback_tokens_are_scoped_expire_and_rotate() {
        let signers = signers();
        let keys = publics(&signers);
        let g =
            PlaybackGrant { video: "vid".into(), expires: 500, viewer: Some("alice".into()), scope: Scope::Delivery };
        let t = sign_playback(&signers[1], &g);
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)), "{t}");
        assert!(t.len() < 140, "{} bytes: {t}", t.len());
        assert_eq!(verify_playback(&keys, &t, "vid", Scope::Delivery, 400).unwrap(), g);
        assert_eq!(verify_playback(&keys, &t, "vid", Scope::Keys, 400).unwrap_err(), TokenError::WrongScope);
        assert_eq!(
            verify_playback(&keys[..1], &t, "vid", Scope::Delivery, 400).unwrap_err(),
            TokenError::BadToken,
            "unknown kid"
        );
        assert_eq!(verify_playback(&keys, &t, "vid", Scope::Delivery, 501).unwrap_err(), TokenError::Expired);
        assert_eq!(verify_playback(&keys, &t, "other", Scope::Delivery, 400).unwrap_err(), TokenError::WrongVideo);
        // Flip one bit of the signature's first byte: always a different signature.
        let (head, sig) = t.rsplit_once('.').unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
        raw[0] ^= 1;
        let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode(raw));
        assert_eq!(verify_playback(&keys, &tampered, "vid", Scope::Delivery, 400).unwrap_err(), TokenError::BadToken);
        for forged in [t.replace("alice", "mallory"), t.replace(".d.", ".k."), t.replace(".k2.", ".k1.")] {
            assert_eq!(verify_playback(&keys, &forged, "vid", Scope::Delivery, 400).unwrap_err(), TokenError::BadToken);
        }
        assert_eq!(verify_playback(&keys, "garbage", "vid", Scope::Delivery, 400).unwrap_err(), TokenError::BadToken);
    }

    #[test]
    fn seeds_must_be_32_bytes() {
        assert!(SigningKey::from_seed("k", &[0; 31]).is_none());
        assert!(SigningKey::from_seed("k", &[0; 33]).is_none());
        assert!(PublicKey::new("k", &[0; 31]).is_none());
    }
}

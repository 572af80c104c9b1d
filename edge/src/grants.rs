//! Playback tokens this PoP has verified, remembered until they expire. An Ed25519
//! verification is the largest step of a hit's request phase (a one-off profile, not a
//! script; `bench/edge-vs-nginx/missprobe.py` measures the request phase and hits with and
//! without this, `bench/README.md`, "HTTP/3 and the cold miss"), and a player presents the
//! same token on every request of a session. Only the signature check is
//! remembered: the video, scope and expiry are checked on every use, and anything that does
//! not match is verified again in full, so the errors are the same as without this cache.
//!
//! The verification keys are fixed for a PoP's run (a new key means a restart), so a
//! remembered token can never outlive the key that signed it.

use std::collections::HashMap;
use std::sync::RwLock;

use pop_config::token::{PublicKey, Scope, TokenError};

/// Tokens remembered at most; past it the memory is dropped at once (verifying again is the
/// only cost), so a flood of valid tokens cannot grow it.
const REMEMBERED: usize = 65_536;

/// What a verified token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    video: Box<str>,
    scope: Scope,
    expires: i64,
}

/// Verified playback tokens.
#[derive(Debug, Default)]
pub struct Grants {
    verified: RwLock<HashMap<Box<str>, Grant>>,
}

impl Grants {
    /// `pop_config::token::verify_playback`, answered from memory for a token whose signature
    /// was verified before.
    pub fn verify(
        &self,
        keys: &[PublicKey],
        token: &str,
        video: &str,
        scope: Scope,
        now: i64,
    ) -> Result<(), TokenError> {
        let granted = |g: &Grant| &*g.video == video && g.scope == scope && g.expires >= now;
        if self.verified.read().expect("grants lock").get(token).is_some_and(granted) {
            return Ok(());
        }
        let grant = pop_config::token::verify_playback(keys, token, video, scope, now)?;
        let mut verified = self.verified.write().expect("grants lock");
        if verified.len() >= REMEMBERED {
            verified.clear();
        }
        verified.insert(token.into(), Grant { video: grant.video.into(), scope: grant.scope, expires: grant.expires });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use pop_config::token::{PlaybackGrant, SigningKey, sign_playback};

    use super::*;

    fn token(key: &SigningKey, video: &str, scope: Scope, expires: i64) -> String {
        sign_playback(key, &PlaybackGrant { video: video.into(), expires, viewer: None, scope })
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed("k1", &[seed; 32]).unwrap()
    }

    #[test]
    fn remembered_tokens_are_still_checked_for_video_scope_and_expiry() {
        let key = key(1);
        let keys = [key.public()];
        let grants = Grants::default();
        let t = token(&key, "v1", Scope::Delivery, 1_000);
        assert_eq!(grants.verify(&keys, &t, "v1", Scope::Delivery, 10), Ok(()));
        assert_eq!(grants.verified.read().unwrap().len(), 1);
        assert_eq!(grants.verify(&keys, &t, "v1", Scope::Delivery, 20), Ok(()));
        assert_eq!(grants.verify(&keys, &t, "v2", Scope::Delivery, 20), Err(TokenError::WrongVideo));
        assert_eq!(grants.verify(&keys, &t, "v1", Scope::Delivery, 1_001), Err(TokenError::Expired));
        let other_scope = token(&key, "v1", Scope::Keys, 1_000);
        assert_eq!(grants.verify(&keys, &other_scope, "v1", Scope::Delivery, 10), Err(TokenError::WrongScope));
    }

    #[test]
    fn a_forged_token_is_never_remembered() {
        let key = key(1);
        let grants = Grants::default();
        let good = token(&key, "v1", Scope::Delivery, 1_000);
        let forged = format!("{}x", &good[..good.len() - 1]);
        let forged = if forged == good { format!("{}y", &good[..good.len() - 1]) } else { forged };
        assert_eq!(grants.verify(&[key.public()], &forged, "v1", Scope::Delivery, 10), Err(TokenError::BadToken));
        assert!(grants.verified.read().unwrap().is_empty());
        let stranger = self::key(2);
        let theirs = token(&stranger, "v1", Scope::Delivery, 1_000);
        assert_eq!(grants.verify(&[key.public()], &theirs, "v1", Scope::Delivery, 10), Err(TokenError::BadToken));
    }
}

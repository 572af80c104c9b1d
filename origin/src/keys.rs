//! The key service's storage half (P18): per-video AES-128 content keys, generated here,
//! kept only wrapped with the master key (AES-256-GCM, the video id as associated data so a
//! wrapped key cannot be moved to another video), unwrapped only to answer a viewer holding a
//! valid playback token or for the worker that packages the video.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};
use crate::meta::{MetaStore, WrappedKey};

/// Wraps and unwraps content keys.
pub struct KeyService {
    master: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for KeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyService(..)")
    }
}

/// The master key version this build writes.
const MASTER_VERSION: u32 = 1;

impl KeyService {
    /// A service with a 32-byte master key.
    pub fn new(master_key: &[u8; 32]) -> Self {
        let unbound = UnboundKey::new(&AES_256_GCM, master_key).expect("32-byte key");
        Self { master: LessSafeKey::new(unbound), rng: SystemRandom::new() }
    }

    /// Generates a content key for `video`, stores it wrapped, and returns it.
    pub async fn create(&self, meta: &dyn MetaStore, video: &str) -> Result<[u8; 16]> {
        let mut key = [0u8; 16];
        self.rng.fill(&mut key).map_err(|_| Error::Internal("no randomness".into()))?;
        meta.put_key(&self.wrap(video, &key)?).await?;
        Ok(key)
    }

    /// The content key of `video`, unwrapped; `None` when it has none (or it was taken down).
    pub async fn content_key(&self, meta: &dyn MetaStore, video: &str) -> Result<Option<[u8; 16]>> {
        match meta.key(video).await? {
            Some(w) => self.unwrap(&w).map(Some),
            None => Ok(None),
        }
    }

    fn wrap(&self, video: &str, key: &[u8; 16]) -> Result<WrappedKey> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| Error::Internal("no randomness".into()))?;
        let mut sealed = key.to_vec();
        self.master
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(video.as_bytes()), &mut sealed)
            .map_err(|_| Error::Internal("key wrapping failed".into()))?;
        Ok(WrappedKey { video_id: video.to_owned(), master_version: MASTER_VERSION, nonce: nonce.to_vec(), sealed })
    }

    fn unwrap(&self, w: &WrappedKey) -> Result<[u8; 16]> {
        let nonce: [u8; NONCE_LEN] =
            w.nonce.as_slice().try_into().map_err(|_| Error::Internal("stored nonce has the wrong size".into()))?;
        let mut sealed = w.sealed.clone();
        let plain = self
            .master
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(w.video_id.as_bytes()), &mut sealed)
            .map_err(|_| Error::Internal(format!("the key of {} does not open with this master key", w.video_id)))?;
        plain.try_into().map_err(|_| Error::Internal("stored key has the wrong size".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_keys_open_only_for_their_video_and_master() {
        let svc = KeyService::new(&[7u8; 32]);
        let key = [9u8; 16];
        let w = svc.wrap("vid", &key).unwrap();
        assert!(!w.sealed.windows(16).any(|s| s == key), "stored in the clear");
        assert_eq!(svc.unwrap(&w).unwrap(), key);
        let moved = WrappedKey { video_id: "other".into(), ..w.clone() };
        assert!(svc.unwrap(&moved).is_err());
        assert!(KeyService::new(&[8u8; 32]).unwrap(&w).is_err());
    }
}

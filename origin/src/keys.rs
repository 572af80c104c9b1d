//! The key service's storage half (P18): per-video AES-128 content keys, generated here,
//! kept only wrapped with a master key (AES-256-GCM, the video id as associated data so a
//! wrapped key cannot be moved to another video), unwrapped only to answer a viewer holding a
//! valid key token or for the worker that packages the video. Master keys are versioned: the
//! newest wraps, any known version unwraps, and [`KeyService::rewrap_all`] moves every key to
//! the newest without touching a segment.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};
use crate::meta::{MetaStore, WrappedKey};

/// Wraps and unwraps content keys.
pub struct KeyService {
    /// By version, oldest first; the last wraps.
    masters: Vec<(u32, LessSafeKey)>,
    rng: SystemRandom,
}

impl std::fmt::Debug for KeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyService(..)")
    }
}

/// Keys re-wrapped per database round trip during a rotation.
const REWRAP_BATCH: usize = 500;

impl KeyService {
    /// A service with one 32-byte master key (version 1).
    pub fn new(master_key: &[u8; 32]) -> Self {
        Self::versioned(&[(1, *master_key)])
    }

    /// A service with master keys by version; the newest wraps. At least one is required.
    pub fn versioned(masters: &[(u32, [u8; 32])]) -> Self {
        assert!(!masters.is_empty(), "at least one master key");
        let mut masters: Vec<(u32, LessSafeKey)> = masters
            .iter()
            .map(|(v, k)| (*v, LessSafeKey::new(UnboundKey::new(&AES_256_GCM, k).expect("32-byte key"))))
            .collect();
        masters.sort_by_key(|(v, _)| *v);
        Self { masters, rng: SystemRandom::new() }
    }

    /// The version new keys are wrapped with.
    pub fn current_version(&self) -> u32 {
        self.masters.last().map_or(0, |(v, _)| *v)
    }

    /// Re-wraps every content key wrapped by an older master key with the newest one; how many
    /// moved. Segments are untouched: the content keys themselves do not change.
    pub async fn rewrap_all(&self, store: &dyn crate::meta::pops::PopStore) -> Result<u64> {
        let current = self.current_version();
        let mut moved = 0;
        loop {
            let batch = store.keys_wrapped_before(current, REWRAP_BATCH).await?;
            if batch.is_empty() {
                return Ok(moved);
            }
            for old in &batch {
                let key = self.unwrap(old)?;
                if store.rewrap_key(old.master_version, &self.wrap(&old.video_id, &key)?).await? {
                    moved += 1;
                }
            }
        }
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
        let (version, master) = self.masters.last().expect("a master key");
        master
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(video.as_bytes()), &mut sealed)
            .map_err(|_| Error::Internal("key wrapping failed".into()))?;
        Ok(WrappedKey { video_id: video.to_owned(), master_version: *version, nonce: nonce.to_vec(), sealed })
    }

    fn unwrap(&self, w: &WrappedKey) -> Result<[u8; 16]> {
        let nonce: [u8; NONCE_LEN] =
            w.nonce.as_slice().try_into().map_err(|_| Error::Internal("stored nonce has the wrong size".into()))?;
        let mut sealed = w.sealed.clone();
        let master = self.masters.iter().find(|(v, _)| *v == w.master_version).map(|(_, k)| k).ok_or_else(|| {
            Error::Internal(format!(
                "the key of {} is wrapped by master key {}, which is gone",
                w.video_id, w.master_version
            ))
        })?;
        let plain = master
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

    #[test]
    fn the_newest_master_wraps_and_every_known_one_unwraps() {
        let old = KeyService::new(&[7u8; 32]);
        let w1 = old.wrap("vid", &[9u8; 16]).unwrap();
        let both = KeyService::versioned(&[(2, [8u8; 32]), (1, [7u8; 32])]);
        assert_eq!(both.current_version(), 2);
        assert_eq!(both.unwrap(&w1).unwrap(), [9u8; 16]);
        let w2 = both.wrap("vid", &[9u8; 16]).unwrap();
        assert_eq!(w2.master_version, 2);
        assert!(old.unwrap(&w2).is_err(), "version 2 is unknown to the old service");
    }
}

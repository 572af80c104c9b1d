//! The origin's own secrets: the Ed25519 keys that sign upload URLs and playback tokens, and
//! the versioned master keys that wrap content keys. Taken from the configuration, or kept in
//! `DATA/secrets.json` (mode 0600, replaced atomically) so a restarted origin keeps honouring
//! what it issued and can still unwrap its keys. Several signing keys and master keys live at
//! once: one signs (the active key) or wraps (the newest version), the others still verify or
//! unwrap until they are retired, which is how both rotate without breaking anything issued.

use std::path::{Path, PathBuf};

use pop_config::token::{SEED_BYTES, SigningKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The key id a configured `signing_key` signs under.
pub const CONFIGURED_KID: &str = "k1";

/// Raw key material.
#[derive(Clone)]
pub struct Secrets {
    /// Ed25519 seeds by key id, oldest first.
    pub signing: Vec<(String, [u8; SEED_BYTES])>,
    /// The key id that signs new tokens and URLs.
    pub active_kid: String,
    /// AES-256-GCM master keys by version, oldest first; the last wraps new content keys.
    pub masters: Vec<(u32, [u8; 32])>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

#[derive(Serialize, Deserialize, Default)]
struct Stored {
    #[serde(default)]
    signing_keys: Vec<StoredSigning>,
    #[serde(default)]
    active_signing_key: String,
    #[serde(default)]
    master_keys: Vec<StoredMaster>,
    /// Before versioned keys: the one master key (version 1). Read, never written.
    #[serde(default, skip_serializing)]
    master_key: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredSigning {
    kid: String,
    seed: String,
}

#[derive(Serialize, Deserialize)]
struct StoredMaster {
    version: u32,
    key: String,
}

/// Where the secrets of a data folder live.
pub fn file(data_dir: &Path) -> PathBuf {
    data_dir.join("secrets.json")
}

impl Secrets {
    /// Configured hex keys win (a configured signing seed signs as [`CONFIGURED_KID`], a
    /// configured master key is version 1); the rest come from, or are generated into, the
    /// data folder.
    pub fn load(data_dir: &Path, signing_hex: Option<&str>, master_hex: Option<&str>) -> Result<Self> {
        let mut secrets = Self::from_file(data_dir)?;
        if let Some(hex) = signing_hex {
            let seed = fixed::<SEED_BYTES>(hex, "signing_key", "an Ed25519 seed is 32 bytes (64 hex digits)")?;
            secrets.signing = vec![(CONFIGURED_KID.to_owned(), seed)];
            secrets.active_kid = CONFIGURED_KID.to_owned();
        }
        if let Some(hex) = master_hex {
            secrets.masters = vec![(1, fixed::<32>(hex, "master_key", "master_key must be 32 bytes (64 hex digits)")?)];
        }
        Ok(secrets)
    }

    /// The data folder's secrets, generated (and written) the first time; a file from before
    /// Ed25519 keeps its master key and gains a signing key.
    pub fn from_file(data_dir: &Path) -> Result<Self> {
        let path = file(data_dir);
        let stored = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Stored>(&bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored::default(),
            Err(e) => return Err(Error::io(format!("read {}", path.display()))(e)),
        };
        let mut changed = false;
        let mut secrets = Self::decode(stored)?;
        if secrets.masters.is_empty() {
            secrets.masters.push((1, random()?));
            changed = true;
        }
        if secrets.signing.is_empty() {
            secrets.signing.push((CONFIGURED_KID.to_owned(), random()?));
            secrets.active_kid = CONFIGURED_KID.to_owned();
            changed = true;
        }
        if changed {
            secrets.save(data_dir)?;
        }
        Ok(secrets)
    }

    fn decode(stored: Stored) -> Result<Self> {
        let mut signing = Vec::new();
        for s in stored.signing_keys {
            signing.push((s.kid, fixed::<SEED_BYTES>(&s.seed, "signing seed", "32 bytes")?));
        }
        let mut masters = Vec::new();
        if let Some(hex) = stored.master_key {
            masters.push((1, fixed::<32>(&hex, "master_key", "32 bytes")?));
        }
        for m in stored.master_keys {
            masters.push((m.version, fixed::<32>(&m.key, "master key", "32 bytes")?));
        }
        masters.sort_by_key(|(v, _)| *v);
        masters.dedup_by_key(|(v, _)| *v);
        Ok(Self { signing, active_kid: stored.active_signing_key, masters })
    }

    /// Writes the secrets to the data folder: a private temporary file, synced, renamed over.
    pub fn save(&self, data_dir: &Path) -> Result<()> {
        let stored = Stored {
            signing_keys: self
                .signing
                .iter()
                .map(|(kid, seed)| StoredSigning { kid: kid.clone(), seed: pop_config::token::hex(seed) })
                .collect(),
            active_signing_key: self.active_kid.clone(),
            master_keys: self
                .masters
                .iter()
                .map(|(version, key)| StoredMaster { version: *version, key: pop_config::token::hex(key) })
                .collect(),
            master_key: None,
        };
        std::fs::create_dir_all(data_dir).map_err(Error::io("create data folder"))?;
        write_private(&file(data_dir), &serde_json::to_vec_pretty(&stored)?)
    }

    /// Every signing key, the active one included.
    pub fn signing_keys(&self) -> Vec<SigningKey> {
        self.signing.iter().filter_map(|(kid, seed)| SigningKey::from_seed(kid, seed)).collect()
    }

    /// Adds a new signing key (not yet active: PoPs must learn its public key first); its id.
    pub fn add_signing_key(&mut self) -> Result<String> {
        let next = (1..).map(|n| format!("k{n}")).find(|kid| self.signing.iter().all(|(k, _)| k != kid));
        let kid = next.expect("an unused key id");
        self.signing.push((kid.clone(), random()?));
        Ok(kid)
    }

    /// Makes `kid` the key that signs.
    pub fn activate(&mut self, kid: &str) -> Result<()> {
        if !self.signing.iter().any(|(k, _)| k == kid) {
            return Err(Error::Config(format!("no signing key `{kid}`")));
        }
        self.active_kid = kid.to_owned();
        Ok(())
    }

    /// Drops a retired signing key: what it signed is refused from now on.
    pub fn retire(&mut self, kid: &str) -> Result<()> {
        if kid == self.active_kid {
            return Err(Error::Config(format!("`{kid}` signs: activate another key before retiring it")));
        }
        let before = self.signing.len();
        self.signing.retain(|(k, _)| k != kid);
        if self.signing.len() == before {
            return Err(Error::Config(format!("no signing key `{kid}`")));
        }
        Ok(())
    }

    /// Adds a master key one version above the newest; its version.
    pub fn add_master_key(&mut self) -> Result<u32> {
        let version = self.masters.last().map_or(1, |(v, _)| v + 1);
        self.masters.push((version, random()?));
        Ok(version)
    }

    /// Drops master keys older than `version` (once nothing is wrapped by them).
    pub fn retire_masters_before(&mut self, version: u32) {
        self.masters.retain(|(v, _)| *v >= version);
    }
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> Result<String> {
    let mut bytes = vec![0u8; n];
    SystemRandom::new().fill(&mut bytes).map_err(|_| Error::Internal("no randomness".into()))?;
    Ok(pop_config::token::hex(&bytes))
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    SystemRandom::new().fill(&mut bytes).map_err(|_| Error::Internal("no randomness".into()))?;
    Ok(bytes)
}

fn fixed<const N: usize>(hex: &str, field: &str, why: &str) -> Result<[u8; N]> {
    let bytes =
        pop_config::token::decode_hex(hex.trim()).ok_or_else(|| Error::Config(format!("{field} must be hex")))?;
    bytes.try_into().map_err(|_| Error::Config(format!("{field}: {why}")))
}

/// Replaces `path` with `bytes`, readable by its owner only: a new private file beside it,
/// synced, then renamed over (a file someone made there first never keeps its permissions).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut temp = path.as_os_str().to_owned();
    temp.push(".partial");
    let temp = PathBuf::from(temp);
    let _ = std::fs::remove_file(&temp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&temp).map_err(Error::io(format!("create {}", temp.display())))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(Error::io(format!("write {}", temp.display())))?;
    std::fs::rename(&temp, path).map_err(Error::io(format!("replace {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_kept_and_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let first = Secrets::from_file(dir.path()).unwrap();
        assert_eq!((first.signing.len(), first.masters.len(), first.active_kid.as_str()), (1, 1, "k1"));
        let again = Secrets::from_file(dir.path()).unwrap();
        assert_eq!(again.signing, first.signing);
        let mut s = again;
        let kid = s.add_signing_key().unwrap();
        assert_eq!(kid, "k2");
        s.activate(&kid).unwrap();
        assert!(s.retire("k2").is_err(), "the active key cannot be retired");
        assert_eq!(s.add_master_key().unwrap(), 2);
        s.save(dir.path()).unwrap();
        let reread = Secrets::from_file(dir.path()).unwrap();
        assert_eq!((reread.active_kid.as_str(), reread.masters.len()), ("k2", 2));
    }

    #[test]
    fn a_file_from_before_ed25519_keeps_its_master_key() {
        let dir = tempfile::tempdir().unwrap();
        let old = format!(r#"{{"signing_key": "{}", "master_key": "{}"}}"#, "ab".repeat(32), "cd".repeat(32));
        std::fs::write(file(dir.path()), old).unwrap();
        let s = Secrets::from_file(dir.path()).unwrap();
        assert_eq!(s.masters, vec![(1, [0xcd; 32])]);
        assert_eq!(s.signing.len(), 1);
        assert!(!std::fs::read_to_string(file(dir.path())).unwrap().contains("\"master_key\""));
    }
}

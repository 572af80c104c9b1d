//! The origin's own secrets: the HMAC key that signs upload URLs and playback tokens, and the
//! master key that wraps content keys. Taken from the configuration, or generated on first
//! start into `DATA/secrets.json` (mode 0600) so a restarted origin keeps honouring the URLs
//! and tokens it issued and can still unwrap its keys.

use std::path::Path;

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Raw key material.
#[derive(Clone)]
pub struct Secrets {
    /// HMAC-SHA256 key for URLs and tokens.
    pub signing_key: Vec<u8>,
    /// AES-256-GCM key wrapping content keys.
    pub master_key: [u8; 32],
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    signing_key: String,
    master_key: String,
}

impl Secrets {
    /// Configured hex keys win; missing ones come from (or are generated into) the data folder.
    pub fn load(data_dir: &Path, signing_hex: Option<&str>, master_hex: Option<&str>) -> Result<Self> {
        let path = data_dir.join("secrets.json");
        let stored = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Stored>(&bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let stored = Stored { signing_key: random_hex(32)?, master_key: random_hex(32)? };
                std::fs::create_dir_all(data_dir).map_err(Error::io("create data folder"))?;
                write_private(&path, &serde_json::to_vec_pretty(&stored)?)?;
                stored
            }
            Err(e) => return Err(Error::io(format!("read {}", path.display()))(e)),
        };
        let signing_key = decode_hex(signing_hex.unwrap_or(&stored.signing_key), "signing_key")?;
        let master = decode_hex(master_hex.unwrap_or(&stored.master_key), "master_key")?;
        let master_key =
            master.try_into().map_err(|_| Error::Config("master_key must be 32 bytes (64 hex digits)".into()))?;
        if signing_key.len() < 16 {
            return Err(Error::Config("signing_key must be at least 16 bytes".into()));
        }
        Ok(Self { signing_key, master_key })
    }
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> Result<String> {
    let mut bytes = vec![0u8; n];
    SystemRandom::new().fill(&mut bytes).map_err(|_| Error::Internal("no randomness".into()))?;
    Ok(pop_config::token::hex(&bytes))
}

fn decode_hex(hex: &str, field: &str) -> Result<Vec<u8>> {
    pop_config::token::decode_hex(hex).ok_or_else(|| Error::Config(format!("{field} must be hex")))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path).map_err(Error::io(format!("create {}", path.display())))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(Error::io(format!("write {}", path.display())))
}

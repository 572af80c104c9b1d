//! Operator commands that act on an origin's database and secrets without a running server:
//! enrolling and revoking PoPs (`origin pops ...`) and rotating signing and master keys
//! (`origin keys ...`). Each returns the text to print; the binary only parses arguments.

use std::fmt::Write as _;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::keys::KeyService;
use crate::meta::pops::PopStore;
use crate::meta::sql::SqlStore;
use crate::pops::Enrolment;
use crate::secrets::Secrets;

/// A PoP newly (re-)enrolled.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// Its credential, shown once: the registry keeps only its SHA-256.
    pub credential: String,
    /// What its operator puts in its `pop.toml`.
    pub instructions: String,
}

/// Enrols or re-enrols (a new credential) a PoP in the configured database.
pub async fn enrol(config: &Config, e: &Enrolment) -> Result<Enrolled> {
    let store = store(config).await?;
    let credential = crate::pops::enrol(&store, e, crate::meta::now()).await?;
    let role = if e.partner { "partner" } else { "own" };
    let instructions = format!(
        "enrolled PoP {id} ({role}, region {region}). In its pop.toml: [pop] id = \"{id}\", region = \"{region}\"{partner}; \
         [origin] credential (or credential_file) = the credential; [[tokens]] from `origin keys pop-toml`.",
        id = e.id,
        region = e.region,
        partner = if e.partner { ", partner = true" } else { "" },
    );
    Ok(Enrolled { credential, instructions })
}

/// A PoP registry command.
#[derive(Debug, Clone)]
pub enum PopCommand {
    /// Refuse the PoP's credential from now on.
    Revoke(String),
    /// Accept a revoked PoP's credential again.
    Enable(String),
    /// Every PoP.
    List,
}

/// Runs a registry command against the configured database.
pub async fn pops(config: &Config, command: PopCommand) -> Result<String> {
    let store = store(config).await?;
    let now = crate::meta::now();
    match command {
        PopCommand::Revoke(id) => switch(&store, &id, false, now).await,
        PopCommand::Enable(id) => switch(&store, &id, true, now).await,
        PopCommand::List => {
            let mut out = String::from("id\tregion\trole\tstate\n");
            for p in store.pops().await? {
                let role = if p.partner { "partner" } else { "own" };
                let state = if p.enabled { "enabled" } else { "revoked" };
                let _ = writeln!(out, "{}\t{}\t{role}\t{state}", p.id, p.region);
            }
            Ok(out)
        }
    }
}

async fn switch(store: &dyn PopStore, id: &str, enabled: bool, now: i64) -> Result<String> {
    if !store.set_pop_enabled(id, enabled, now).await? {
        return Err(Error::Config(format!("no PoP `{id}` is enrolled")));
    }
    Ok(if enabled { format!("PoP {id} enabled") } else { format!("PoP {id} revoked: its next request is refused") })
}

/// A key command.
#[derive(Debug, Clone)]
pub enum KeyCommand {
    /// The `[[tokens]]` entries PoPs configure: every signing key's public half.
    PopToml,
    /// A new signing key, not yet signing.
    Add,
    /// Make a key the one that signs.
    Activate(String),
    /// Forget a key: what it signed is refused from now on.
    Retire(String),
    /// A new master key version, and every content key re-wrapped with it.
    RotateMaster,
    /// Re-wrap stragglers, then drop master keys older than the newest.
    RetireMasters,
}

/// Runs a key command on the data folder's secrets (and the database, for master keys).
pub async fn keys(config: &Config, command: KeyCommand) -> Result<String> {
    let reads_only = matches!(command, KeyCommand::PopToml);
    if !reads_only && (config.signing_key.is_some() || config.master_key.is_some()) {
        return Err(Error::Config(
            "signing_key or master_key is set in the configuration: rotate them there, not in secrets.json".into(),
        ));
    }
    let dir = &config.data_dir;
    // Printing public keys also works for keys set in the configuration.
    let mut secrets = if reads_only {
        Secrets::load(dir, config.signing_key.as_deref(), config.master_key.as_deref())?
    } else {
        Secrets::from_file(dir)?
    };
    let text = match command {
        KeyCommand::PopToml => return Ok(pop_toml(&secrets)),
        KeyCommand::Add => {
            let kid = secrets.add_signing_key()?;
            format!("added signing key {kid}; give PoPs its public key (`origin keys pop-toml`), then activate it")
        }
        KeyCommand::Activate(kid) => {
            secrets.activate(&kid)?;
            format!("{kid} signs from the next origin start; keep the old key until what it signed expires")
        }
        KeyCommand::Retire(kid) => {
            secrets.retire(&kid)?;
            format!("retired {kid}; remove it from every PoP's [[tokens]]")
        }
        KeyCommand::RotateMaster => {
            let version = secrets.add_master_key()?;
            secrets.save(dir)?;
            let moved = rewrap(config, &secrets).await?;
            return Ok(format!(
                "master key {version} wraps now; {moved} content keys re-wrapped, no segment touched. Restart the \
                 origins, then `origin keys retire-masters`"
            ));
        }
        KeyCommand::RetireMasters => {
            let moved = rewrap(config, &secrets).await?;
            let newest = secrets.masters.last().map_or(1, |(v, _)| *v);
            secrets.retire_masters_before(newest);
            format!("{moved} more content keys re-wrapped; master keys before {newest} dropped")
        }
    };
    secrets.save(dir)?;
    Ok(text)
}

async fn rewrap(config: &Config, secrets: &Secrets) -> Result<u64> {
    let store = store(config).await?;
    KeyService::versioned(&secrets.masters).rewrap_all(&store).await
}

/// The `[[tokens]]` entries of every signing key, the active one marked.
pub fn pop_toml(secrets: &Secrets) -> String {
    let mut out = String::new();
    for key in secrets.signing_keys() {
        let note = if key.kid == secrets.active_kid { " # signs now" } else { "" };
        let public = key.public();
        let _ = writeln!(out, "[[tokens]]\nkid = \"{}\"\npublic_key = \"{}\"{note}\n", public.kid, public.to_hex());
    }
    out
}

/// The configured database, its data folder made first (a SQLite file lives there), as
/// `origin serve` does: enrolling before the first start must work.
async fn store(config: &Config) -> Result<SqlStore> {
    std::fs::create_dir_all(&config.data_dir).map_err(Error::io("create data folder"))?;
    SqlStore::connect(&config.database_url).await
}

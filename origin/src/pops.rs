//! PoP identity (P16, P18): enrolment issues a PoP its own credential, `{id}.{secret}`, of
//! which the registry keeps only a SHA-256; every PoP route authenticates with it, and a
//! revoked PoP is refused at its next request (`403 pop_revoked`) while the others go on.

// What the registry keeps of a credential is the digest a PoP's tier credential derives
// from (`pop_config::tier`): one definition, so the origin's tier verifiers match the PoPs'.
use pop_config::tier::fingerprint;

use crate::error::{Error, Kind, Result};
use crate::meta::pops::{PopRecord, PopStore};
use crate::sign::{constant_eq, is_safe_name};
use crate::web::Request;

/// What enrolment records about a PoP.
#[derive(Debug, Clone)]
pub struct Enrolment {
    /// PoP id (`[pop] id` in its `pop.toml`).
    pub id: String,
    /// Region it serves.
    pub region: String,
    /// Run by a partner.
    pub partner: bool,
}

/// Enrols (or re-enrols, replacing its credential) a PoP; its new credential, shown once.
pub async fn enrol(store: &dyn PopStore, e: &Enrolment, now: i64) -> Result<String> {
    if !is_safe_name(&e.id) || !is_safe_name(&e.region) {
        return Err(Error::Config("PoP id and region: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`".into()));
    }
    if e.id == crate::steering::HOME {
        return Err(Error::Config(format!(
            "`{}` names the pathway a playlist came from in steering: pick another id",
            e.id
        )));
    }
    let credential = format!("{}.{}", e.id, crate::secrets::random_hex(32)?);
    let enrolled_at = store.pop(&e.id).await?.map_or(now, |p| p.enrolled_at);
    let record = PopRecord {
        id: e.id.clone(),
        region: e.region.clone(),
        partner: e.partner,
        enabled: true,
        credential_sha256: fingerprint(&credential),
        enrolled_at,
        changed_at: now,
    };
    store.enrol_pop(&record).await?;
    Ok(credential)
}

/// The PoP behind `Authorization: Bearer {id}.{secret}`: `401` without a valid credential,
/// `403 pop_revoked` once revoked.
pub async fn authenticate(store: &dyn PopStore, req: &Request) -> Result<PopRecord> {
    let given = crate::api::bearer(req).ok_or_else(unauthenticated)?;
    verify(store, given).await
}

/// The PoP id a credential `{id}.{secret}` names, if it is a safe name.
pub fn id_of(given: &str) -> Option<&str> {
    given.split_once('.').map(|(id, _)| id).filter(|id| is_safe_name(id))
}

/// Whether `given` is `pop`'s credential (compared in constant time; enabled or not).
pub fn holds(pop: &PopRecord, given: &str) -> bool {
    id_of(given) == Some(pop.id.as_str())
        && constant_eq(fingerprint(given).as_bytes(), pop.credential_sha256.as_bytes())
}

fn unauthenticated() -> Error {
    Error::refused(Kind::Unauthenticated, "unauthenticated", "a PoP credential is required")
}

/// The enrolled, enabled PoP whose credential `given` (`{id}.{secret}`) is.
pub async fn verify(store: &dyn PopStore, given: &str) -> Result<PopRecord> {
    let id = id_of(given).ok_or_else(unauthenticated)?;
    let pop = store.pop(id).await?.ok_or_else(unauthenticated)?;
    if !holds(&pop, given) {
        return Err(unauthenticated());
    }
    if !pop.enabled {
        return Err(Error::forbidden("pop_revoked", format!("PoP {id} is revoked")));
    }
    Ok(pop)
}

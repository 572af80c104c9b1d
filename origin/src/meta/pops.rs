//! The PoP registry (P16, P18): who may pull objects, send heartbeats and read the purge log.
//! Each PoP has its own credential, of which only a SHA-256 is stored, so one PoP is revoked
//! (or re-enrolled with a new credential) without touching any other.

use async_trait::async_trait;

use super::{Millis, WrappedKey};
use crate::error::Result;

/// One PoP's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopRecord {
    /// The PoP id its credential names (`{id}.{secret}`).
    pub id: String,
    /// The region it serves.
    pub region: String,
    /// Run by a partner: never sent anything clear.
    pub partner: bool,
    /// False once revoked: every request with its credential is refused.
    pub enabled: bool,
    /// SHA-256 of the whole credential, hex.
    pub credential_sha256: String,
    /// First enrolment.
    pub enrolled_at: Millis,
    /// Last enrolment, revocation or re-enabling.
    pub changed_at: Millis,
}

/// What a PoP said about itself in its latest heartbeat: what content steering ranks by.
#[derive(Debug, Clone, PartialEq)]
pub struct PopStatus {
    /// The PoP's id (the registry's).
    pub pop: String,
    /// Its public base URL for viewers (`scheme://host[:port]`), if it gave a valid one.
    pub url: Option<String>,
    /// Its heartbeat interval (0: not reported).
    pub every_ms: u64,
    /// Its utilisation, 0 to 1.
    pub load: f64,
    /// Viewer requests, decayed: each beat halves the previous count and adds its own.
    pub requests: u64,
    /// `5xx` answers to viewers, decayed the same way.
    pub failed: u64,
    /// Whether it takes tus uploads.
    pub uploads: bool,
    /// When the origin recorded the beat.
    pub beat_at: Millis,
}

/// Storage of the PoP registry and of what master-key rotation needs.
#[async_trait]
pub trait PopStore: Send + Sync {
    /// Adds a PoP, or replaces an enrolled one's region, role and credential and enables it
    /// (re-enrolment); `enrolled_at` of an existing row is kept.
    async fn enrol_pop(&self, pop: &PopRecord) -> Result<()>;
    /// One PoP.
    async fn pop(&self, id: &str) -> Result<Option<PopRecord>>;
    /// Every PoP, by id.
    async fn pops(&self) -> Result<Vec<PopRecord>>;
    /// Revokes (false) or re-enables (true) a PoP; false when there is no such PoP.
    async fn set_pop_enabled(&self, id: &str, enabled: bool, now: Millis) -> Result<bool>;
    /// Up to `limit` content keys wrapped by a master key older than `version`.
    async fn keys_wrapped_before(&self, version: u32, limit: usize) -> Result<Vec<WrappedKey>>;
    /// Replaces a wrapped key only if it is still wrapped by `from_version` (so two rotations
    /// running at once cannot undo each other); whether it was replaced.
    async fn rewrap_key(&self, from_version: u32, key: &WrappedKey) -> Result<bool>;

    /// Adds what a PoP of `region` reported, `(video, requests)`, to `minute`'s counts.
    async fn add_popularity(&self, region: &str, minute: i64, counts: &[(String, u64)]) -> Result<()>;
    /// A region's counts from `since` (a minute) on: `(video, minute, requests)`.
    async fn popularity(&self, region: &str, since: i64) -> Result<Vec<(String, i64, u64)>>;
    /// Removes a region's counts before `before` (a minute).
    async fn forget_popularity(&self, region: &str, before: i64) -> Result<()>;

    /// Records a PoP's heartbeat status, replacing the previous one, except that `requests`
    /// and `failed` are added to half of the stored counts (in one statement, so two nodes'
    /// beats cannot lose one): a beat's weight halves with every beat after it, so the error
    /// ratio follows the last few beats without one quiet beat erasing a failing streak.
    async fn record_status(&self, status: &PopStatus) -> Result<()>;
    /// Every PoP's latest status, by PoP id.
    async fn statuses(&self) -> Result<Vec<PopStatus>>;
}

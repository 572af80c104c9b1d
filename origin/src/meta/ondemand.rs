//! The metadata of just-in-time encoding (P19, P10): the materialisation state of each rung,
//! operators' pins, the demand per video, who is encoding which segment, and which workers
//! are alive. Its own trait beside `MetaStore`, implemented by the same `SqlStore`, with its
//! own conformance suite (`origin/tests/ondemand_conformance.rs`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Millis;
use crate::error::Result;

/// Where a rung of a ready video is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RungState {
    /// Encoded at upload; always kept.
    Floor,
    /// Not (all) encoded: segments are encoded when asked for.
    OnDemand,
    /// Every missing segment is being encoded in the background.
    Materialising,
    /// Every segment is stored.
    Materialised,
    /// Was materialised, went cold and lost its segments; encoded when asked for again.
    Evicted,
}

impl RungState {
    /// Every state.
    pub const ALL: [Self; 5] = [Self::Floor, Self::OnDemand, Self::Materialising, Self::Materialised, Self::Evicted];

    /// Stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Floor => "floor",
            Self::OnDemand => "on_demand",
            Self::Materialising => "materialising",
            Self::Materialised => "materialised",
            Self::Evicted => "evicted",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether a missing segment of the rung is encoded when a viewer asks for it.
    pub fn encodes_on_request(self) -> bool {
        !matches!(self, Self::Floor)
    }
}

/// A rung's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RungStatus {
    /// Rendition name.
    pub name: String,
    /// State.
    pub state: RungState,
    /// Segments in transcoded storage.
    pub stored: u64,
    /// Segments the rung has.
    pub segments: u64,
    /// Last change.
    pub updated_at: Millis,
}

/// An operator's pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pin {
    /// Every rung stays materialised: promoted at once, never evicted.
    Full,
    /// Only the floor is ever stored: never promoted (segments are still encoded for
    /// viewers who ask, and evicted when cold).
    Floor,
}

impl Pin {
    /// Stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Floor => "floor",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Full, Self::Floor].into_iter().find(|p| p.as_str() == s)
    }
}

/// One segment of one rung of one video.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SegmentKey {
    /// Video.
    pub video: String,
    /// Rendition name.
    pub rung: String,
    /// Segment number.
    pub segment: u64,
}

/// Who encodes a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The API node (or loop) that asked for the encode and waits for it.
    pub owner: String,
    /// The worker that took the task, once one did.
    pub worker: Option<String>,
    /// Dispatches so far (1 for the first).
    pub attempt: u32,
    /// When it was claimed or last re-dispatched.
    pub claimed_at: Millis,
}

/// A worker process as it announces itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Unique per process run.
    pub id: String,
    /// Host name, for operators.
    pub host: String,
    /// Task kinds it takes.
    pub kinds: Vec<String>,
    /// Slots it runs at once.
    pub slots: u32,
    /// Slots busy now.
    pub busy: u32,
    /// Last heartbeat.
    pub heartbeat_at: Millis,
}

/// The on-demand store.
#[async_trait]
pub trait OnDemandStore: Send + Sync {
    /// Records a ready video's rungs (replacing earlier rows).
    async fn set_rungs(&self, video: &str, rungs: &[RungStatus]) -> Result<()>;
    /// A video's rungs, by name.
    async fn rungs(&self, video: &str) -> Result<Vec<RungStatus>>;
    /// Moves a rung to `to` if it is in one of `from`; false when it was not.
    async fn move_rung(&self, video: &str, rung: &str, from: &[RungState], to: RungState, now: Millis) -> Result<bool>;
    /// Counts `n` more stored segments of a rung.
    async fn add_stored(&self, video: &str, rung: &str, n: u64, now: Millis) -> Result<()>;
    /// Resets a rung's stored count (after its segments were removed).
    async fn clear_stored(&self, video: &str, rung: &str, now: Millis) -> Result<()>;
    /// Rungs in one of `states` whose last change is before `before`, oldest first.
    async fn rungs_in(&self, states: &[RungState], before: Millis, limit: u32) -> Result<Vec<(String, RungStatus)>>;
    /// Removes every on-demand row of a video (takedown).
    async fn forget_video(&self, video: &str) -> Result<()>;

    /// Sets or clears an operator's pin.
    async fn set_pin(&self, video: &str, pin: Option<Pin>) -> Result<()>;
    /// A video's pin.
    async fn pin(&self, video: &str) -> Result<Option<Pin>>;

    /// Adds `requests` to a video's demand in the minute of `now`.
    async fn add_demand(&self, video: &str, requests: u64, now: Millis) -> Result<()>;
    /// A video's requests since `since`.
    async fn demand_since(&self, video: &str, since: Millis) -> Result<u64>;
    /// Videos with at least `min` requests since `since`, most wanted first.
    async fn in_demand(&self, since: Millis, min: u64, limit: u32) -> Result<Vec<(String, u64)>>;
    /// When a video was last asked for (`None`: never).
    async fn last_demand(&self, video: &str) -> Result<Option<Millis>>;
    /// Drops demand older than `before`.
    async fn prune_demand(&self, before: Millis) -> Result<()>;

    /// Claims a segment's encode for `owner`; true when this call got it. A claim older than
    /// `stale_before` is taken over.
    async fn claim_segment(&self, key: &SegmentKey, owner: &str, now: Millis, stale_before: Millis) -> Result<bool>;
    /// A segment's claim.
    async fn segment_claim(&self, key: &SegmentKey) -> Result<Option<Claim>>;
    /// Records the worker that took a claimed segment's task.
    async fn claim_taken(&self, key: &SegmentKey, worker: &str) -> Result<()>;
    /// Counts a re-dispatch of a claimed segment (its worker died or failed), clearing the worker.
    async fn claim_redispatched(&self, key: &SegmentKey, now: Millis) -> Result<()>;
    /// Releases a claim.
    async fn release_segment(&self, key: &SegmentKey) -> Result<()>;
    /// Open claims on a video's segments newer than `since`.
    async fn claims_of(&self, video: &str, since: Millis) -> Result<u64>;

    /// Records a worker's heartbeat.
    async fn worker_heartbeat(&self, w: &WorkerInfo) -> Result<()>;
    /// Workers that beat since `since`.
    async fn live_workers(&self, since: Millis) -> Result<Vec<WorkerInfo>>;
    /// A worker's last heartbeat.
    async fn worker(&self, id: &str) -> Result<Option<WorkerInfo>>;
    /// Removes a worker's row (clean shutdown).
    async fn worker_gone(&self, id: &str) -> Result<()>;
}

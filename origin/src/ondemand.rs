//! Just-in-time encoding of the long tail (P19, P10, P8). An upload encodes only its floor and
//! leaves an on-demand plan beside the original; every rung is published with its playlist and
//! init segment from the start. A request for a segment that is not stored makes a worker
//! encode it, package and encrypt it exactly like a pre-encoded one, store it and stream it
//! back as CMAF chunks while it is still being encoded, with the next segments encoded ahead.
//! Videos asked for often are promoted to their whole ladder in the background; videos gone
//! cold lose what the floor and the plan do not need.
//!
//! | file | owns |
//! |---|---|
//! | `task.rs` | the queue messages: the task, the streamed replies, priorities by reason |
//! | `flight.rs` | one encode per segment per process, any number of requests streaming it |
//! | `dispatch.rs` | the API side: claim, dispatch, stream, retry elsewhere, deadlines, look-ahead |
//! | `work.rs` | the worker side: stage the original, encode, stream pieces, store |
//! | `policy.rs` | demand, promotion, eviction, pins, storage accounting |
//! | `bandwidth.rs` | a materialised rung's measured bandwidth in the multivariant playlist |
//! | `workers.rs` | the live workers (kinds, slots, heartbeats) and CPU accounting |
//! | `metrics.rs` | what it costs and how fast it is |

pub mod bandwidth;
pub mod dispatch;
pub mod flight;
pub mod metrics;
pub mod policy;
pub mod task;
pub mod work;
pub mod workers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use encoder::jit::OnDemandPlan;
use encoder::layout::Tree;
use encoder::task::Protection;

use crate::app::App;
use crate::error::Result;
use crate::meta::Rendition;
use crate::meta::ondemand::{RungState, RungStatus};
use crate::storage;

/// The on-demand state of one origin process.
#[derive(Debug)]
pub struct Runtime {
    /// This process, as the owner of the encodes it waits for.
    pub node: String,
    /// Encodes this process streams to its requests.
    pub flights: flight::Flights,
    /// Requests counted since the last flush to the database.
    pub demand: policy::Demand,
    plans: Mutex<HashMap<String, Arc<OnDemandPlan>>>,
    /// When stored bytes were last counted (a listing of the whole store).
    pub(crate) accounted: Mutex<Option<std::time::Instant>>,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            node: crate::secrets::random_hex(8).unwrap_or_default(),
            flights: flight::Flights::default(),
            demand: policy::Demand::default(),
            plans: Mutex::new(HashMap::new()),
            accounted: Mutex::new(None),
        }
    }
}

/// Plans kept in memory; they are small, read on every on-demand request, and never change.
const PLAN_CACHE: usize = 4096;

impl Runtime {
    /// A video's on-demand plan; `None` when the upload left none.
    pub async fn plan(&self, app: &App, video: &str) -> Result<Option<Arc<OnDemandPlan>>> {
        if let Some(p) = self.plans.lock().expect("plans").get(video) {
            return Ok(Some(p.clone()));
        }
        let key = format!("{}{}", storage::sources(video), encoder::jit::PLAN_FILE);
        let bytes = match app.blobs.read(&key).await {
            Ok(b) => b.to_vec(),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let plan: OnDemandPlan = serde_json::from_slice(&bytes)?;
        plan.check().map_err(|e| crate::Error::Internal(format!("plan of {video}: {e}")))?;
        let plan = Arc::new(plan);
        let mut plans = self.plans.lock().expect("plans");
        if plans.len() >= PLAN_CACHE {
            plans.clear();
        }
        plans.insert(video.to_owned(), plan.clone());
        Ok(Some(plan))
    }

    /// Forgets a video's plan (takedown).
    pub fn forget(&self, video: &str) {
        self.plans.lock().expect("plans").remove(video);
    }
}

/// Claims made before this were abandoned (their process died) and may be taken over.
pub fn stale_claims_before(app: &App, now: crate::meta::Millis) -> crate::meta::Millis {
    now - (app.config.on_demand.first_byte_deadline * 4).as_millis() as crate::meta::Millis
}

/// Records a ready video's rungs: the floor, and the rungs encoded when asked for.
pub async fn record_rungs(app: &App, video: &str, renditions: &[Rendition], segments: u64) -> Result<()> {
    let now = crate::meta::now();
    let rungs: Vec<RungStatus> = renditions
        .iter()
        .filter(|r| r.width > 0)
        .map(|r| RungStatus {
            name: r.name.clone(),
            state: if r.on_demand { RungState::OnDemand } else { RungState::Floor },
            stored: if r.on_demand { 0 } else { segments },
            segments,
            updated_at: now,
        })
        .collect();
    app.ondemand.set_rungs(video, &rungs).await
}

/// Queues the first `on_demand.opening_segments` segments of a ready video's on-demand rungs,
/// so a viewer starts on a stored segment whichever rung the player picks first.
pub async fn queue_openings(app: &App, video: &str, renditions: &[Rendition], segments: u64) -> Result<()> {
    let count = u64::from(app.config.on_demand.opening_segments).min(segments);
    if count == 0 {
        return Ok(());
    }
    for r in renditions.iter().filter(|r| r.on_demand && r.width > 0) {
        task::SegmentTask::new(video, &r.name, 0, count, task::Reason::Opening)?.publish(app.queue.as_ref()).await?;
    }
    Ok(())
}

/// `[cbcs/]{rung}/seg_NNNNN.m4s` → (tree, rung, segment number).
pub fn segment_path<'a>(rest: &[&'a str]) -> Option<(Tree, &'a str, u64)> {
    let (tree, rest) = match rest {
        [first, rest @ ..] if *first == encoder::layout::CBCS_TREE => (Tree::Cbcs, rest),
        _ => (Tree::Top, rest),
    };
    let [rung, file] = rest else { return None };
    let n = file.strip_prefix("seg_")?.strip_suffix(".m4s")?;
    if n.len() < 5 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((tree, *rung, n.parse().ok()?))
}

/// Blob key of a published segment in `tree`.
pub fn segment_key(video: &str, tree: Tree, rung: &str, segment: u64) -> String {
    format!(
        "{}{}{rung}/{}",
        storage::published(video),
        tree_prefix(tree),
        encoder::layout::segment_name(segment as usize)
    )
}

/// Where a tree's renditions sit in a video's published folder.
pub fn tree_prefix(tree: Tree) -> &'static str {
    match tree {
        Tree::Top => "",
        Tree::Cbcs => "cbcs/",
    }
}

/// The trees a protection profile publishes segments in; one encode of a segment seals it
/// for all of them, and the first is the one whose segments are counted.
pub fn trees(protection: Protection) -> &'static [Tree] {
    match protection {
        Protection::Aes128 => &[Tree::Top],
        Protection::Cbcs => &[Tree::Cbcs],
        Protection::Both => &[Tree::Top, Tree::Cbcs],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_paths() {
        assert_eq!(segment_path(&["720p", "seg_00004.m4s"]), Some((Tree::Top, "720p", 4)));
        assert_eq!(segment_path(&["cbcs", "720p", "seg_00004.m4s"]), Some((Tree::Cbcs, "720p", 4)));
        assert_eq!(segment_path(&["720p", "seg_123456.m4s"]), Some((Tree::Top, "720p", 123_456)));
        assert_eq!(segment_path(&["other", "720p", "seg_00004.m4s"]), None);
        assert_eq!(segment_path(&["720p", "init.mp4"]), None);
        assert_eq!(segment_path(&["720p", "seg_4.m4s"]), None);
        assert_eq!(segment_path(&["720p", "seg_0000x.m4s"]), None);
        assert_eq!(segment_path(&["master.m3u8"]), None);
        assert_eq!(segment_key("v", Tree::Top, "720p", 4), "videos/v/720p/seg_00004.m4s");
        assert_eq!(segment_key("v", Tree::Cbcs, "720p", 4), "videos/v/cbcs/720p/seg_00004.m4s");
    }
}

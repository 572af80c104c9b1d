//! `[prefetch]`: warming the cache with what is popular, and hearing about purges, on a heartbeat.

use std::time::Duration;

use crate::defaults;
use crate::document::{Section, boolean, count};
use crate::units::duration;

/// The heartbeat with the origin: popularity reports out, purges and prefetch lists in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefetch {
    /// Whether the PoP prefetches popular objects.
    pub enabled: bool,
    /// Interval of the popularity report and the purge poll.
    pub heartbeat: Duration,
    /// How many of the most popular objects a report names and a prefetch fetches.
    pub top_n: u32,
}

pub(crate) fn read(mut s: Section<'_>) -> Prefetch {
    let enabled = s.field("enabled", boolean).unwrap_or(defaults::PREFETCH_ENABLED);
    let heartbeat = s.field("heartbeat", duration).unwrap_or(defaults::PREFETCH_HEARTBEAT);
    let top_n = s.field("top_n", count).unwrap_or(defaults::PREFETCH_TOP_N);
    // Purges arrive on the heartbeat, so it must tick even when prefetching is off.
    if heartbeat.is_zero() {
        s.report("heartbeat", "must be longer than 0");
    }
    s.finish();
    Prefetch { enabled, heartbeat, top_n }
}

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
    /// Segments fetched ahead of a viewer, in the rendition it plays (0: none).
    pub readahead: u32,
    /// Percent of a video's segment requests that must be followed by the next one before
    /// its segments are read ahead (the PoP's own continuation statistics).
    pub readahead_continue_percent: u32,
}

pub(crate) fn read(mut s: Section<'_>) -> Prefetch {
    let enabled = s.field("enabled", boolean).unwrap_or(defaults::PREFETCH_ENABLED);
    let heartbeat = s.field("heartbeat", duration).unwrap_or(defaults::PREFETCH_HEARTBEAT);
    let top_n = s.field("top_n", count).unwrap_or(defaults::PREFETCH_TOP_N);
    let readahead = s.field("readahead", count).unwrap_or(defaults::PREFETCH_READAHEAD);
    let readahead_continue_percent =
        s.field("readahead_continue_percent", count).unwrap_or(defaults::PREFETCH_READAHEAD_CONTINUE_PERCENT);
    if readahead > 16 {
        s.report("readahead", "at most 16 segments: more is a download, not a read-ahead");
    }
    if readahead_continue_percent > 100 {
        s.report("readahead_continue_percent", "a percentage: 0 to 100");
    }
    // Purges arrive on the heartbeat, so it must tick even when prefetching is off.
    if heartbeat.is_zero() {
        s.report("heartbeat", "must be longer than 0");
    }
    s.finish();
    Prefetch { enabled, heartbeat, top_n, readahead, readahead_continue_percent }
}

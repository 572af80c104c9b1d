//! `[cache]` and `[admission]`: the hybrid memory + disk cache's sizes, and what earns a place
//! on disk.

use std::path::PathBuf;
use std::time::Duration;

use crate::defaults;
use crate::document::{Section, count};
use crate::units::{duration, size};

/// foyer aligns blocks to 4 KiB pages.
const BLOCK_ALIGN: u64 = 4 << 10;
/// Smaller blocks would pass most video segments through uncached.
const MIN_BLOCK: u64 = 1 << 20;
/// A smaller memory tier would hold hardly a segment.
const MIN_MEMORY: u64 = 1 << 20;
/// foyer keeps blocks free for flushing and reclaiming; with fewer than 4 it warns and thrashes.
const MIN_DISK_BLOCKS: u64 = 4;

/// The cache's tiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    /// Memory tier capacity, bytes.
    pub memory: u64,
    /// Disk tier capacity, bytes; 0 disables the disk tier.
    pub disk: u64,
    /// Directory of the disk tier (and of the development certificate, under `tls/`).
    pub path: PathBuf,
    /// foyer block size, bytes: the largest object cached; larger ones are passed through.
    pub block: u64,
    /// How long a stale playlist may be served while the origin fails.
    pub playlist_stale: Duration,
    /// How long the origin's `404` for an object is remembered (whole seconds; 0: not at
    /// all). Other refusals and 5xx are never remembered.
    pub not_found_ttl: Duration,
}

/// When an object is worth writing to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Requests of an object within `window` before it is admitted to disk.
    pub min_uses: u32,
    /// The window in which requests are counted.
    pub window: Duration,
}

pub(crate) fn read(mut s: Section<'_>) -> Cache {
    let memory = s.field("memory", size).unwrap_or(defaults::CACHE_MEMORY);
    let disk = s.field("disk", size).unwrap_or(defaults::CACHE_DISK);
    let path = s.path("path").unwrap_or_else(|| s.resolve(defaults::CACHE_PATH));
    let block = s.field("block", size).unwrap_or(defaults::CACHE_BLOCK);
    let playlist_stale = s.field("playlist_stale", duration).unwrap_or(defaults::CACHE_PLAYLIST_STALE);
    let not_found_ttl = s.field("not_found_ttl", duration).unwrap_or(defaults::CACHE_NOT_FOUND_TTL);
    let cache = Cache { memory, disk, path, block, playlist_stale, not_found_ttl };
    report_bad_sizes(&s, &cache);
    s.finish();
    cache
}

fn report_bad_sizes(s: &Section<'_>, cache: &Cache) {
    if cache.memory < MIN_MEMORY {
        s.report("memory", format!("{} bytes is too small: at least 1MiB", cache.memory));
    }
    if cache.block < MIN_BLOCK || !cache.block.is_multiple_of(BLOCK_ALIGN) {
        s.report("block", format!("{} bytes: must be a multiple of 4KiB and at least 1MiB", cache.block));
    }
    if cache.disk != 0 && cache.disk < MIN_DISK_BLOCKS * cache.block {
        let message = format!(
            "{} bytes is too small: 0 (no disk tier) or at least 4 blocks ({} bytes)",
            cache.disk,
            4 * cache.block
        );
        s.report("disk", message);
    }
    if cache.not_found_ttl.subsec_nanos() != 0 {
        s.report("not_found_ttl", "must be whole seconds (\"0s\" turns it off)");
    }
    if cache.path.is_file() {
        s.report("path", format!("{} is a file; the cache needs a directory", cache.path.display()));
    }
}

pub(crate) fn read_admission(mut s: Section<'_>) -> Admission {
    let min_uses = s.field("min_uses", count).unwrap_or(defaults::ADMISSION_MIN_USES);
    let window = s.field("window", duration).unwrap_or(defaults::ADMISSION_WINDOW);
    if min_uses == 0 {
        s.report("min_uses", "must be at least 1");
    }
    if window.is_zero() {
        s.report("window", "must be longer than 0");
    }
    s.finish();
    Admission { min_uses, window }
}

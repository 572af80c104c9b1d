//! The two-tier object cache: foyer's hybrid cache with an S3-FIFO memory tier (a scan of
//! one-hit objects passes through its small queue without evicting the hot set) over a disk
//! tier that survives restarts. Objects reach the disk only once admission says they are
//! asked for again; objects larger than a disk block are kept in block-sized chunks
//! (`chunks.rs`). Purged videos are remembered as tombstones (`purge.rs`), so a takedown
//! needs no scan of the cache; the disk tier is served only once they are up to date.

use std::path::PathBuf;

use bytes::Bytes;
use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder, HybridCachePolicy,
    HybridCacheProperties, Location, RecoverMode, S3FifoConfig, Source,
};

use crate::admission::Admission;
use crate::error::EdgeError;
use crate::object::{Form, Object};
use crate::purge::Purges;

/// Where a hit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// RAM.
    Memory,
    /// Local disk.
    Disk,
}

impl Tier {
    /// Label for headers and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Disk => "disk",
        }
    }
}

/// Sizes and policy.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// Memory tier bytes.
    pub memory: u64,
    /// Disk tier bytes (0: no disk tier).
    pub disk: u64,
    /// Disk folder.
    pub path: PathBuf,
    /// Disk block size: the largest object (or chunk of one) kept.
    pub block: u64,
    /// Requests within the window that earn disk admission.
    pub min_uses: u32,
    /// Admission window.
    pub window: std::time::Duration,
}

/// The cache.
pub struct ObjectCache {
    hybrid: HybridCache<String, Bytes>,
    admission: Admission,
    largest: u64,
    purges: Purges,
    /// When this run opened the cache, Unix ms: anything fetched before came from the disk tier.
    opened_at: i64,
}

impl std::fmt::Debug for ObjectCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectCache").field("largest", &self.largest).finish_non_exhaustive()
    }
}

impl ObjectCache {
    /// Opens (recovering the disk tier of a previous run).
    pub async fn open(s: &CacheSettings) -> Result<Self, EdgeError> {
        let internal = |e: &dyn std::fmt::Display| EdgeError::Internal(format!("cache: {e}"));
        std::fs::create_dir_all(&s.path).map_err(|e| internal(&e))?;
        let builder = HybridCacheBuilder::new()
            .with_name("edge")
            .with_policy(HybridCachePolicy::WriteOnInsertion)
            .memory(s.memory as usize)
            .with_shards(4)
            .with_eviction_config(S3FifoConfig::default())
            .with_weighter(|k: &String, v: &Bytes| k.len() + v.len());
        let hybrid = if s.disk == 0 {
            builder.storage().build().await.map_err(|e| internal(&e))?
        } else {
            let device = FsDeviceBuilder::new(s.path.join("blocks"))
                .with_capacity(s.disk as usize)
                .build()
                .map_err(|e| internal(&e))?;
            // Segments arrive in bursts of several MiB; the write buffers must hold a burst or
            // foyer drops writes (its disk tier is best effort).
            let buffers = (s.block as usize * 4).max(64 << 20);
            builder
                .storage()
                .with_engine_config(
                    BlockEngineConfig::new(device)
                        .with_block_size(s.block as usize)
                        .with_buffer_pool_size(buffers)
                        .with_submit_queue_size_threshold(buffers),
                )
                .with_recover_mode(RecoverMode::Quiet)
                .build()
                .await
                .map_err(|e| internal(&e))?
        };
        Ok(Self {
            hybrid,
            admission: Admission::new(s.min_uses, s.window),
            // A block also holds the entry's index, key and head.
            largest: s.block.saturating_sub(8 << 10),
            purges: Purges::open(&s.path, s.disk > 0),
            opened_at: crate::now_ms(),
        })
    }

    /// A cached object and its tier, unless missing or purged after it was fetched. What an
    /// earlier run left on disk counts as missing until the purges are caught up after a start
    /// (by its fetch time: a disk hit is copied to memory, so the tier does not tell).
    pub async fn lookup(&self, key: &str) -> Option<(Object, Tier)> {
        let key = key.to_owned();
        // The index first: foyer's lookup of a key it does not hold still costs a spawned task,
        // even without a disk tier (a one-off profile found it; `bench/edge-vs-nginx/missprobe.py`
        // measures the request phase it was part of, `bench/README.md`).
        if !self.hybrid.contains(&key) {
            return None;
        }
        let entry = self.hybrid.get(&key).await.ok().flatten()?;
        let tier = if entry.source() == Source::Disk { Tier::Disk } else { Tier::Memory };
        let object = Object::decode(entry.value())?;
        if object.head.fetched_at < self.opened_at && !self.purges.caught_up() {
            return None;
        }
        if self.purges.purged(&key, object.head.fetched_at) {
            self.hybrid.remove(&key);
            return None;
        }
        Some((object, tier))
    }

    /// The takedowns this cache honours.
    pub fn purges(&self) -> &Purges {
        &self.purges
    }

    /// The largest body kept as one entry: larger objects are kept in chunks of this size.
    pub fn chunk_size(&self) -> u64 {
        self.largest
    }

    /// Counts a request of `key` toward disk admission; `true` once it has earned it.
    pub fn record(&self, key: &str) -> bool {
        self.admission.record(key)
    }

    /// Keeps an object: in memory always (if it fits a block), on disk once `admitted`.
    /// Remembered refusals ([`Form::NotFound`]) stay in memory: they live for seconds.
    pub fn insert(&self, key: &str, object: &Object, admitted: bool) -> bool {
        if object.body.len() as u64 > self.largest {
            return false;
        }
        self.insert_stored(key, object.encode(), admitted && object.head.form != Form::NotFound);
        true
    }

    /// Keeps an object already in its stored form ([`Object::encode`]) of a body of `len`
    /// bytes, as [`insert`](Self::insert) does.
    pub fn insert_encoded(&self, key: &str, stored: impl FnOnce() -> Bytes, len: u64, admitted: bool) -> bool {
        if len > self.largest {
            return false;
        }
        self.insert_stored(key, stored(), admitted);
        true
    }

    fn insert_stored(&self, key: &str, stored: Bytes, admitted: bool) {
        let location = if admitted { Location::Default } else { Location::InMem };
        let props = HybridCacheProperties::default().with_location(location);
        self.hybrid.insert_with_properties(key.to_owned(), stored, props);
    }

    /// Gives an object held in memory only a place on disk too (it was asked for again). The
    /// stored bytes are handed over as they are, not encoded again.
    pub fn promote(&self, key: &str) {
        let key = key.to_owned();
        let Some(entry) = self.hybrid.memory().get(&key) else { return };
        if entry.properties().location() == Location::InMem {
            let props = HybridCacheProperties::default().with_location(Location::Default);
            self.hybrid.insert_with_properties(key, entry.value().clone(), props);
        }
    }

    /// Whether `key` is cached (memory or disk index).
    pub fn contains(&self, key: &str) -> bool {
        self.hybrid.contains(&key.to_owned())
    }

    /// Flushes the disk tier's buffers and closes it.
    pub async fn close(&self) {
        if let Err(e) = self.hybrid.close().await {
            tracing::warn!(error = %e, "cache close");
        }
    }
}

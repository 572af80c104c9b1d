//! Takedowns at a PoP: tombstones `(video, time)` and the purge cursor (the origin's sequence
//! number of the last takedown applied), kept together in one file so that they can never
//! disagree on disk.
//!
//! - The file is replaced durably: written to a temporary name, fsynced, renamed over, and
//!   the directory fsynced. The cursor on disk therefore moves only with the tombstones it
//!   covers.
//! - A write that fails keeps the tombstones in memory (the video stays unserved), leaves the
//!   durable cursor where it was (so the origin sends those takedowns again, and the write is
//!   retried on every heartbeat) and is reported by [`Purges::durable`].
//! - Until a heartbeat has brought the tombstones up to date after a start, the disk tier is
//!   not trusted ([`Purges::caught_up`]): takedowns may have happened while the PoP was down,
//!   or been held only in memory when it stopped.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use serde::{Deserialize, Serialize};

/// The file, in the cache folder.
const FILE: &str = "purged.json";
/// Where earlier versions kept the cursor apart from the tombstones (ignored, removed).
const LEGACY_CURSOR: &str = "purge-cursor";

/// What is on disk.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    /// The origin's sequence number of the last takedown these tombstones cover.
    cursor: i64,
    /// Video → Unix ms: objects of the video fetched at or before it are dropped.
    tombstones: HashMap<String, i64>,
}

/// The file as earlier versions wrote it: tombstones alone. Their cursor, kept in another file
/// without fsync, may have run ahead of them, so it is not trusted: reading starts over at 0.
#[derive(Deserialize)]
#[serde(untagged)]
enum OnDisk {
    Current(Saved),
    Legacy(HashMap<String, i64>),
}

#[derive(Debug, Default)]
struct State {
    /// What memory holds; its cursor is the highest sequence number applied.
    saved: Saved,
    /// The cursor in the file.
    durable: i64,
    /// Whether memory holds more than the file (or the file could not be read).
    dirty: bool,
    /// Why the last write failed, while it has not succeeded since.
    failure: Option<String>,
}

/// Tombstones and the cursor.
#[derive(Debug)]
pub struct Purges {
    file: PathBuf,
    state: Mutex<State>,
    caught_up: AtomicBool,
    /// When a heartbeat last brought the takedowns up to date, Unix ms (0: never).
    synced_at: AtomicI64,
}

impl Purges {
    /// Reads the purge state in `dir`. Whatever cannot be read is asked for again: the cursor
    /// starts at 0, so the origin sends every takedown, and the disk tier waits for them.
    /// `disk_tier` says whether a disk tier is recovered at all (otherwise nothing cached
    /// predates this start and there is nothing to catch up on).
    pub fn open(dir: &Path, disk_tier: bool) -> Self {
        let file = dir.join(FILE);
        let mut state = State::default();
        match std::fs::read(&file) {
            Ok(bytes) => match serde_json::from_slice::<OnDisk>(&bytes) {
                Ok(OnDisk::Current(saved)) => {
                    state.durable = saved.cursor;
                    state.saved = saved;
                }
                Ok(OnDisk::Legacy(tombstones)) => {
                    state.saved.tombstones = tombstones;
                    state.dirty = true;
                }
                Err(e) => state.unreadable(&file, &e),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => state.unreadable(&file, &e),
        }
        let _ = std::fs::remove_file(dir.join(LEGACY_CURSOR));
        Self { file, state: Mutex::new(state), caught_up: AtomicBool::new(!disk_tier), synced_at: AtomicI64::new(0) }
    }

    /// The cursor the heartbeat reports: the last takedown that is durable here.
    pub fn cursor(&self) -> i64 {
        self.lock().durable
    }

    /// Applies takedowns `(seq, video)` received with the origin's `next` cursor at `now`
    /// (Unix ms), then makes them durable; `true` when it wrote. Takedowns applied before (sent
    /// again because the cursor on disk did not move) keep their first time. In memory they
    /// hold whatever the write does. Called by the heartbeat only, one call at a time.
    pub async fn record(&self, purges: &[(i64, String)], next: i64, now: i64) -> std::io::Result<bool> {
        let snapshot = {
            let mut s = self.lock();
            let applied = s.saved.cursor;
            for (seq, video) in purges {
                if *seq > applied {
                    s.saved.tombstones.insert(video.clone(), now);
                } else {
                    s.saved.tombstones.entry(video.clone()).or_insert(now);
                }
            }
            let cursor = applied.max(next);
            if cursor == s.durable && !s.dirty && purges.is_empty() {
                return Ok(false);
            }
            s.saved.cursor = cursor;
            s.dirty = true;
            (cursor, serde_json::to_vec(&s.saved).unwrap_or_default())
        };
        let (cursor, snapshot) = snapshot;
        let file = self.file.clone();
        let written = tokio::task::spawn_blocking(move || replace_durably(&file, &snapshot))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        let mut s = self.lock();
        match &written {
            Ok(()) => {
                s.durable = cursor;
                s.dirty = false;
                s.failure = None;
            }
            Err(e) => s.failure = Some(e.to_string()),
        }
        written.map(|()| true)
    }

    /// Whether an object of `key` (`{video}/...`) fetched at `fetched_at` (Unix ms) is purged.
    pub fn purged(&self, key: &str, fetched_at: i64) -> bool {
        let video = key.split('/').next().unwrap_or_default();
        self.lock().saved.tombstones.get(video).is_some_and(|&at| fetched_at <= at)
    }

    /// Whether `video` has been taken down (whatever was fetched of it, when).
    pub fn taken_down(&self, video: &str) -> bool {
        self.lock().saved.tombstones.contains_key(video)
    }

    /// `Ok` when everything applied is on disk; otherwise why not.
    pub fn durable(&self) -> Result<(), String> {
        let s = self.lock();
        match (&s.failure, s.dirty) {
            (Some(why), _) => Err(why.clone()),
            (None, true) => Err("not yet written".to_owned()),
            (None, false) => Ok(()),
        }
    }

    /// A heartbeat's takedowns are in place at `now` (Unix ms): the disk tier may be served.
    pub fn set_caught_up(&self, now: i64) {
        self.caught_up.store(true, Ordering::Release);
        self.synced_at.fetch_max(now, Ordering::AcqRel);
    }

    /// Whether the takedowns were last brought up to date longer than `max_lag` before `now`
    /// (Unix ms), counting from `started` (Unix ms) when they never were. A zero `max_lag` is
    /// no limit.
    pub fn behind(&self, now: i64, started: i64, max_lag: std::time::Duration) -> bool {
        let since = self.synced_at.load(Ordering::Acquire).max(started);
        !max_lag.is_zero() && now - since > max_lag.as_millis() as i64
    }

    /// Whether the disk tier may be served (see the module's documentation).
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("purges lock")
    }
}

impl State {
    fn unreadable(&mut self, file: &Path, e: &dyn std::fmt::Display) {
        tracing::error!(file = %file.display(), error = %e, "purge state unreadable; asking the origin for every takedown");
        self.dirty = true;
        self.failure = Some(format!("{} unreadable: {e}", file.display()));
    }
}

/// Replaces `file` with `bytes` so that a crash leaves either the old or the new contents:
/// temporary file, fsync, rename, fsync of the directory.
fn replace_durably(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = file.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, file)?;
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tombstones_and_cursor_survive_together() {
        let dir = tempfile::tempdir().unwrap();
        let p = Purges::open(dir.path(), true);
        assert!(!p.caught_up(), "a recovered disk tier waits for a heartbeat");
        assert!(p.record(&[(3, "v".into())], 3, 1_000).await.unwrap());
        assert!(p.purged("v/a/seg", 1_000) && !p.purged("v/a/seg", 1_001) && !p.purged("w/a", 0));
        // Sent again: the first time holds.
        p.record(&[(3, "v".into())], 3, 9_000).await.unwrap();
        assert!(!p.purged("v/a/seg", 1_001));
        let again = Purges::open(dir.path(), true);
        assert_eq!(again.cursor(), 3);
        assert!(again.purged("v/x", 1_000) && again.durable().is_ok());
    }

    #[tokio::test]
    async fn a_failed_write_holds_in_memory_and_keeps_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let p = Purges::open(dir.path(), false);
        p.record(&[(1, "a".into())], 1, 10).await.unwrap();
        std::fs::remove_file(dir.path().join(FILE)).unwrap();
        std::fs::create_dir(dir.path().join(FILE)).unwrap();
        assert!(p.record(&[(2, "b".into())], 2, 20).await.is_err());
        assert!(p.purged("b/x", 20), "held in memory");
        assert_eq!(p.cursor(), 1, "the cursor did not move");
        assert!(p.durable().is_err());
        std::fs::remove_dir(dir.path().join(FILE)).unwrap();
        // The next beat (the origin sends b again, the cursor on disk being older) writes it.
        p.record(&[(2, "b".into())], 2, 30).await.unwrap();
        assert!(p.durable().is_ok());
        let again = Purges::open(dir.path(), true);
        assert_eq!(again.cursor(), 2);
        assert!(again.purged("b/x", 20) && !again.purged("b/x", 21), "the first time held");
    }

    #[test]
    fn an_unreadable_or_legacy_file_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), br#"{"v": 5}"#).unwrap();
        std::fs::write(dir.path().join(LEGACY_CURSOR), "9").unwrap();
        let p = Purges::open(dir.path(), true);
        assert_eq!(p.cursor(), 0, "a legacy cursor is not trusted");
        assert!(p.purged("v/x", 5));
        assert!(!dir.path().join(LEGACY_CURSOR).exists());
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        let p = Purges::open(dir.path(), true);
        assert_eq!(p.cursor(), 0);
        assert!(p.durable().is_err());
    }
}

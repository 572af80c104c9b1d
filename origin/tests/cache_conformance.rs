//! One conformance suite for every `MetaCache`: `MemoryCache`, and `RedisCache` on the server at
//! `TEST_REDIS_URL` (skipped loudly when unset outside CI, a failure in CI). The cache-aside
//! helpers are checked on top of each, against a real `SqlStore` on a temporary SQLite file.
//!
//! Redis keys live under a prefix unique to the run (pid and clock), so runs sharing a server
//! never meet, and are deleted afterwards even when a case fails.

mod common;

use common::services::service_url;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use origin::cache::memory::MemoryCache;
use origin::cache::redis::RedisCache;
use origin::cache::{self, MetaCache};
use origin::meta::sql::SqlStore;
use origin::meta::{MetaStore, NewVideo, Privacy, VideoPatch};
use redis::AsyncCommands;

/// Long enough never to run out during a case that does not want it to.
const LONG: Duration = Duration::from_secs(60);
/// Short enough to wait out; long enough that a read right after the write still finds the value
/// on a loaded machine.
const SHORT: Duration = Duration::from_millis(200);
/// Comfortably past `SHORT`: Redis expires keys lazily on access, so no slack is needed on its
/// side, only for timer granularity.
const PAST_SHORT: Duration = Duration::from_millis(450);

#[tokio::test]
async fn memory_conformance() {
    let cache = MemoryCache::new(1000);
    conformance("memory", &cache).await;
}

#[tokio::test]
async fn memory_cache_aside() {
    cache_aside("memory", &MemoryCache::new(1000)).await;
}

#[tokio::test]
async fn memory_evicts_oldest_beyond_capacity() {
    let cache = MemoryCache::new(3);
    for key in ["k1", "k2", "k3", "k4", "k5"] {
        put(&cache, key, key.as_bytes(), LONG).await;
    }
    for key in ["k1", "k2"] {
        assert_eq!(get(&cache, key).await, None, "{key} should have been evicted");
    }
    for key in ["k3", "k4", "k5"] {
        assert_eq!(get(&cache, key).await.as_deref(), Some(key.as_bytes()), "{key} should remain");
    }
}

#[tokio::test]
async fn memory_overwrite_and_invalidate_respect_capacity() {
    let cache = MemoryCache::new(3);
    for key in ["a", "b", "c"] {
        put(&cache, key, b"1", LONG).await;
    }
    // Overwriting is not a new entry, so nothing may be pushed out.
    put(&cache, "a", b"2", LONG).await;
    for key in ["a", "b", "c"] {
        assert!(get(&cache, key).await.is_some(), "{key} evicted by an overwrite");
    }
    // An invalidation frees a slot, so the next entry fits without evicting anyone.
    cache.invalidate("b").await.expect("invalidate");
    put(&cache, "d", b"1", LONG).await;
    assert_eq!(get(&cache, "a").await.as_deref(), Some(&b"2"[..]));
    assert_eq!(get(&cache, "b").await, None);
    assert!(get(&cache, "c").await.is_some(), "c evicted although a slot was free");
    assert!(get(&cache, "d").await.is_some());
}

/// A key dropped on read because it expired, then written again, is the newest entry and must
/// outlive entries written before it.
#[tokio::test]
async fn memory_reinserted_after_expiry_counts_as_newest() {
    let cache = MemoryCache::new(2);
    put(&cache, "hot", b"old", SHORT).await;
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(get(&cache, "hot").await, None);
    put(&cache, "older", b"1", LONG).await;
    put(&cache, "hot", b"new", LONG).await;
    put(&cache, "newest", b"1", LONG).await;
    assert_eq!(get(&cache, "older").await, None, "the oldest entry should have been evicted");
    assert_eq!(get(&cache, "hot").await.as_deref(), Some(&b"new"[..]), "a newer entry was evicted before an older one");
    assert!(get(&cache, "newest").await.is_some());
}

#[tokio::test]
async fn cache_failure_falls_back_to_the_database() {
    let db = TempStore::new().await;
    let created = db.store.create_video(&new_video("broken0cache")).await.expect("create video");
    let found = cache::video(&Broken, &db.store, &created.id).await.expect("a cache failure must not fail the read");
    assert_eq!(found, Some(created));
    cache::forget_video(&Broken, "broken0cache").await;
    db.store.close().await;
}

#[tokio::test]
async fn redis_conformance() {
    let Some(url) = redis_url() else { return };
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos();
    let run = format!("cache_test:{}_{nanos}", std::process::id());
    let prefix = format!("{run}:a:");
    let other_prefix = format!("{run}:b:");

    let first = RedisCache::connect(&url, &prefix).await.expect("connect to Redis");
    // A second connection on the same prefix stands in for a second API server.
    let second = RedisCache::connect(&url, &prefix).await.expect("connect to Redis again");
    let other = RedisCache::connect(&url, &other_prefix).await.expect("connect to Redis a third time");

    // In its own task so that a failed assertion still lets the keys be deleted.
    let outcome = tokio::spawn(async move {
        conformance("redis", &first).await;
        shared_between_handles(&first, &second).await;
        prefixes_are_isolated(&first, &other).await;
        cache_aside("redis", &first).await;
    })
    .await;

    let mut conn = redis::Client::open(url.as_str())
        .expect("Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis for cleanup");
    let pattern = format!("{run}:*");
    let keys: Vec<String> = conn.keys(&pattern).await.expect("list test keys");
    if !keys.is_empty() {
        let _: usize = conn.del(&keys).await.expect("delete test keys");
    }
    let left: Vec<String> = conn.keys(&pattern).await.expect("list test keys");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    assert!(left.is_empty(), "test keys survived cleanup: {left:?}");
}

fn redis_url() -> Option<String> {
    service_url("TEST_REDIS_URL", "Redis cache conformance")
}

async fn conformance(name: &str, cache: &dyn MetaCache) {
    miss(name, cache).await;
    put_then_get(name, cache).await;
    invalidate(name, cache).await;
    expiry(name, cache).await;
    overwrite(name, cache).await;
    binary_values(name, cache).await;
}

async fn miss(name: &str, cache: &dyn MetaCache) {
    assert_eq!(get(cache, "never-written").await, None, "{name}: a key never written");
    // Invalidating what is not there is how writers treat an uncached video: not an error.
    cache.invalidate("never-written").await.unwrap_or_else(|e| panic!("{name}: invalidate a missing key: {e}"));
}

async fn put_then_get(name: &str, cache: &dyn MetaCache) {
    put(cache, "video:put", br#"{"title":"Hello"}"#, LONG).await;
    assert_eq!(get(cache, "video:put").await.as_deref(), Some(&br#"{"title":"Hello"}"#[..]), "{name}");
    // A read does not consume the value.
    assert_eq!(get(cache, "video:put").await.as_deref(), Some(&br#"{"title":"Hello"}"#[..]), "{name}");
}

async fn invalidate(name: &str, cache: &dyn MetaCache) {
    put(cache, "video:gone", b"x", LONG).await;
    put(cache, "video:kept", b"y", LONG).await;
    cache.invalidate("video:gone").await.unwrap_or_else(|e| panic!("{name}: invalidate: {e}"));
    assert_eq!(get(cache, "video:gone").await, None, "{name}: invalidated key");
    assert_eq!(get(cache, "video:kept").await.as_deref(), Some(&b"y"[..]), "{name}: other keys stay");
}

async fn expiry(name: &str, cache: &dyn MetaCache) {
    put(cache, "expiry:short", b"short", SHORT).await;
    put(cache, "expiry:long", b"long", LONG).await;
    assert_eq!(get(cache, "expiry:short").await.as_deref(), Some(&b"short"[..]), "{name}: before its ttl");
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(get(cache, "expiry:short").await, None, "{name}: after its ttl");
    assert_eq!(get(cache, "expiry:long").await.as_deref(), Some(&b"long"[..]), "{name}: a longer ttl");
}

async fn overwrite(name: &str, cache: &dyn MetaCache) {
    put(cache, "overwrite", b"first, and longer than the second", SHORT).await;
    put(cache, "overwrite", b"second", LONG).await;
    assert_eq!(get(cache, "overwrite").await.as_deref(), Some(&b"second"[..]), "{name}: replaced value");
    // The new ttl replaces the old one too.
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(get(cache, "overwrite").await.as_deref(), Some(&b"second"[..]), "{name}: old ttl still applied");
}

async fn binary_values(name: &str, cache: &dyn MetaCache) {
    let all_bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let values: [(&str, &[u8]); 4] = [
        ("binary:all", &all_bytes),
        ("binary:nul", b"\0\0a\0"),
        ("binary:not-utf8", &[0xff, 0xfe, 0xc3, 0x28, 0x80]),
        ("binary:unicode-ключ-キー", "title: Ünïcödé 🎬".as_bytes()),
    ];
    for (key, value) in values {
        put(cache, key, value, LONG).await;
    }
    for (key, value) in values {
        assert_eq!(get(cache, key).await.as_deref(), Some(value), "{name}: {key}");
    }
}

async fn shared_between_handles(first: &dyn MetaCache, second: &dyn MetaCache) {
    put(first, "shared:video", b"from first", LONG).await;
    assert_eq!(get(second, "shared:video").await.as_deref(), Some(&b"from first"[..]), "write seen by the other");
    put(second, "shared:video", b"from second", LONG).await;
    assert_eq!(get(first, "shared:video").await.as_deref(), Some(&b"from second"[..]), "overwrite seen by the other");
    // The point of a shared cache: one server's invalidation reaches every server.
    first.invalidate("shared:video").await.expect("invalidate");
    assert_eq!(get(second, "shared:video").await, None, "invalidation seen by the other");
}

async fn prefixes_are_isolated(first: &dyn MetaCache, other: &dyn MetaCache) {
    assert_eq!(get(other, "video:put").await, None, "another prefix sees this prefix's key");
    put(first, "isolated", b"first", LONG).await;
    put(other, "isolated", b"other", LONG).await;
    assert_eq!(get(first, "isolated").await.as_deref(), Some(&b"first"[..]));
    assert_eq!(get(other, "isolated").await.as_deref(), Some(&b"other"[..]));
    other.invalidate("isolated").await.expect("invalidate");
    assert_eq!(get(first, "isolated").await.as_deref(), Some(&b"first"[..]), "invalidation crossed prefixes");
    assert_eq!(get(other, "isolated").await, None);
}

/// `cache::video` in front of a real store: the first read fills the cache, so a change made in
/// the store behind the cache's back stays invisible until `forget_video`.
async fn cache_aside(name: &str, cache: &dyn MetaCache) {
    let db = TempStore::new().await;
    let store = &db.store;

    // Nothing is cached for a missing video, so it appears as soon as it is created.
    assert_eq!(cache::video(cache, store, "cafe01").await.expect("read missing"), None, "{name}");
    let created = store.create_video(&new_video("cafe01")).await.expect("create video");
    let first = cache::video(cache, store, "cafe01").await.expect("first read");
    assert_eq!(first.as_ref(), Some(&created), "{name}: first read");

    let patch = VideoPatch { title: Some("Renamed".into()), ..VideoPatch::default() };
    let patched = store.patch_video("cafe01", &patch, created.updated_at + 1).await.expect("patch").expect("video");
    assert_eq!(patched.title, "Renamed");
    let stale = cache::video(cache, store, "cafe01").await.expect("cached read").expect("video");
    assert_eq!(stale.title, created.title, "{name}: the first read did not fill the cache");

    cache::forget_video(cache, "cafe01").await;
    let fresh = cache::video(cache, store, "cafe01").await.expect("read after forget");
    assert_eq!(fresh, Some(patched), "{name}: forget_video did not drop the cached record");
    // Forgetting one video leaves the others cached.
    let other = store.create_video(&new_video("cafe02")).await.expect("create video");
    cache::video(cache, store, "cafe02").await.expect("fill");
    cache::forget_video(cache, "cafe01").await;
    let patch = VideoPatch { title: Some("Other renamed".into()), ..VideoPatch::default() };
    store.patch_video("cafe02", &patch, other.updated_at + 1).await.expect("patch");
    let still = cache::video(cache, store, "cafe02").await.expect("cached read").expect("video");
    assert_eq!(still.title, other.title, "{name}: forgetting one video dropped another");

    db.store.close().await;
}

/// A cache whose backend is down.
struct Broken;

#[async_trait]
impl MetaCache for Broken {
    async fn get(&self, _: &str) -> origin::Result<Option<Vec<u8>>> {
        Err(origin::Error::Cache("down".into()))
    }

    async fn put(&self, _: &str, _: &[u8], _: Duration) -> origin::Result<()> {
        Err(origin::Error::Cache("down".into()))
    }

    async fn invalidate(&self, _: &str) -> origin::Result<()> {
        Err(origin::Error::Cache("down".into()))
    }
}

/// A store on a SQLite file that lives as long as the value.
struct TempStore {
    store: SqlStore,
    _folder: tempfile::TempDir,
}

impl TempStore {
    async fn new() -> Self {
        let folder = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", folder.path().join("meta.db").display());
        let store = SqlStore::connect(&url).await.expect("open SQLite store");
        Self { store, _folder: folder }
    }
}

fn new_video(id: &str) -> NewVideo {
    NewVideo {
        id: id.into(),
        creator: "creator1".into(),
        title: format!("Video {id}"),
        description: "cached".into(),
        language: "en".into(),
        filename: format!("{id}.mp4"),
        size: 1 << 20,
        content_type: "video/mp4".into(),
        privacy: Privacy::Public,
        channel: None,
        now: 1_700_000_000_000,
    }
}

async fn get(cache: &dyn MetaCache, key: &str) -> Option<Vec<u8>> {
    cache.get(key).await.unwrap_or_else(|e| panic!("get {key}: {e}"))
}

async fn put(cache: &dyn MetaCache, key: &str, value: &[u8], ttl: Duration) {
    cache.put(key, value, ttl).await.unwrap_or_else(|e| panic!("put {key}: {e}"));
}

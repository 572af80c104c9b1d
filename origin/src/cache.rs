//! The metadata cache (P3): hot video and account records in front of the database. One trait, two
//! implementations (in-process, Redis), one conformance suite
//! (`origin/tests/cache_conformance.rs`). Writers invalidate after every change; readers fill
//! it on a miss. A cache failure never fails a request: the database answers instead.

pub mod memory;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::meta::people::{PeopleStore, User};
use crate::meta::{MetaStore, Video};

/// A byte cache with expiry.
#[async_trait]
pub trait MetaCache: Send + Sync {
    /// The value under `key`, unless missing or expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Stores a value for `ttl`.
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()>;
    /// Removes a value.
    async fn invalidate(&self, key: &str) -> Result<()>;
}

/// How long a cached video record lives without an invalidation.
const VIDEO_TTL: Duration = Duration::from_secs(300);

fn video_key(id: &str) -> String {
    format!("video:{id}")
}

/// Cache-aside read of a video.
pub async fn video(cache: &dyn MetaCache, meta: &dyn MetaStore, id: &str) -> Result<Option<Video>> {
    aside(cache, &video_key(id), VIDEO_TTL, meta.video(id)).await
}

/// How long a cached account lives without an invalidation.
const USER_TTL: Duration = Duration::from_secs(300);

fn user_key(id: &str) -> String {
    format!("user:{id}")
}

/// Cache-aside read of an account (without its password hash, which is never cached: signing
/// in reads the store).
pub async fn user(cache: &dyn MetaCache, people: &dyn PeopleStore, id: &str) -> Result<Option<User>> {
    aside(cache, &user_key(id), USER_TTL, people.user(id)).await
}

/// Drops an account from the cache after it changed (its role).
pub async fn forget_user(cache: &dyn MetaCache, id: &str) {
    if let Err(e) = cache.invalidate(&user_key(id)).await {
        tracing::warn!(error = %e, user = id, "metadata cache invalidation failed");
    }
}

/// The value under `key`, or what `load` finds, which is then cached for `ttl`.
async fn aside<T: Serialize + DeserializeOwned>(
    cache: &dyn MetaCache,
    key: &str,
    ttl: Duration,
    load: impl Future<Output = Result<Option<T>>>,
) -> Result<Option<T>> {
    match cache.get(key).await {
        Ok(Some(bytes)) => {
            if let Ok(v) = serde_json::from_slice(&bytes) {
                return Ok(Some(v));
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "metadata cache read failed"),
    }
    let found = load.await?;
    if let Some(v) = &found
        && let Err(e) = cache.put(key, &serde_json::to_vec(v)?, ttl).await
    {
        tracing::warn!(error = %e, "metadata cache write failed");
    }
    Ok(found)
}

/// Drops a video from the cache after it changed.
pub async fn forget_video(cache: &dyn MetaCache, id: &str) {
    if let Err(e) = cache.invalidate(&video_key(id)).await {
        tracing::warn!(error = %e, video = id, "metadata cache invalidation failed");
    }
}

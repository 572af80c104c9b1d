//! The metadata cache on Redis, shared by every API server.
//!
//! A cache that is down must cost a request nothing but the database read it would have
//! saved: each command gets `COMMAND_TIMEOUT`, and after a failure the cache is skipped for
//! `PAUSE` (commands fail at once, and callers read the database) before it is tried again.
//! Without that, every request waited for Redis's connection timeout while it was down (5 s
//! at p50 in `bench/origin-load`).
//!
//! Invalidations are never skipped: one that fails is remembered, this node reads its key as a
//! miss meanwhile, and it is sent again once Redis answers this node. Other nodes may still read
//! the stale entry from a Redis that was only cut off (and kept its data) until it is sent or
//! its TTL (five minutes for a video) runs out; a crash of the writing node forgets what it had
//! not sent. A stale entry cannot hand out a taken-down video's bytes or key: a takedown
//! removes both from storage and the database, which no cache stands in front of.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::MetaCache;
use crate::error::{Error, Result};

/// The longest a cache command may take before it counts as a failure.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(250);
/// How long the cache is skipped after a failure.
const PAUSE: Duration = Duration::from_secs(1);

/// A Redis-backed cache; keys live under `prefix`.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    prefix: String,
    /// Until when (ms since the epoch) reads and writes are skipped.
    paused_until: Arc<AtomicI64>,
    /// Keys whose invalidation has not reached Redis yet.
    unsent: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache").field("prefix", &self.prefix).finish()
    }
}

impl RedisCache {
    /// Connects to `url` (`redis://host:port/db`); keys get `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self { conn, prefix: prefix.to_owned(), paused_until: Arc::default(), unsent: Arc::default() })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs a read or write unless the cache is paused.
    async fn run<T>(&self, command: impl Future<Output = redis::RedisResult<T>>) -> Result<T> {
        if crate::meta::now() < self.paused_until.load(Ordering::Relaxed) {
            return Err(Error::Cache("skipped after a recent failure".into()));
        }
        let value = self.timed(command).await?;
        self.send_unsent().await;
        Ok(value)
    }

    /// Runs a command within `COMMAND_TIMEOUT`; a failure pauses the cache.
    async fn timed<T>(&self, command: impl Future<Output = redis::RedisResult<T>>) -> Result<T> {
        let failure = match tokio::time::timeout(COMMAND_TIMEOUT, command).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => Error::from(e),
            Err(_) => Error::Cache(format!("no answer within {COMMAND_TIMEOUT:?}").into()),
        };
        self.paused_until.store(crate::meta::now() + PAUSE.as_millis() as i64, Ordering::Relaxed);
        Err(failure)
    }

    fn unsent(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.unsent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends the invalidations that failed earlier, now that Redis answers.
    async fn send_unsent(&self) {
        let keys: Vec<String> = self.unsent().iter().cloned().collect();
        for key in keys {
            let mut conn = self.conn.clone();
            let full = self.key(&key);
            if self.timed(async move { conn.del::<_, ()>(full).await }).await.is_err() {
                return;
            }
            self.unsent().remove(&key);
        }
    }
}

#[async_trait]
impl MetaCache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        if self.unsent().contains(key) {
            // Its invalidation has not reached Redis: what is there may be stale.
            return Ok(None);
        }
        let mut conn = self.conn.clone();
        self.run(async move { conn.get(self.key(key)).await }).await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        let millis = ttl.as_millis().max(1) as u64;
        let mut conn = self.conn.clone();
        // Written even while its invalidation is unsent (reads skip it until then); the late
        // invalidation removes it too, which costs one database read.
        self.run(async move { conn.pset_ex::<_, _, ()>(self.key(key), value, millis).await }).await
    }

    async fn invalidate(&self, key: &str) -> Result<()> {
        let mut conn = self.conn.clone();
        let full = self.key(key);
        match self.timed(async move { conn.del::<_, ()>(full).await }).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.unsent().insert(key.to_owned());
                Err(e)
            }
        }
    }
}

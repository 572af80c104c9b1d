//! The metadata cache on Redis, shared by every API server.

use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use super::MetaCache;
use crate::error::Result;

/// A Redis-backed cache; keys live under `prefix`.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    prefix: String,
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
        let conn = ConnectionManager::new(client).await?;
        Ok(Self { conn, prefix: prefix.to_owned() })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[async_trait]
impl MetaCache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.conn.clone().get(self.key(key)).await?)
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        let millis = ttl.as_millis().max(1) as u64;
        let _: () = self.conn.clone().pset_ex(self.key(key), value, millis).await?;
        Ok(())
    }

    async fn invalidate(&self, key: &str) -> Result<()> {
        let _: () = self.conn.clone().del(self.key(key)).await?;
        Ok(())
    }
}

//! The in-process cache: a bounded map with per-entry expiry. Right for one API server;
//! several servers share Redis instead, so an invalidation reaches all of them.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::MetaCache;
use crate::error::Result;

/// Bounded in-process cache.
#[derive(Debug)]
pub struct MemoryCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, (Vec<u8>, Instant)>,
    /// Insertion order, for evicting the oldest entry when full.
    order: VecDeque<String>,
}

impl MemoryCache {
    /// A cache holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self { inner: Mutex::new(Inner::default()), capacity: capacity.max(1) }
    }
}

#[async_trait]
impl MetaCache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut inner = self.inner.lock().expect("cache lock");
        match inner.entries.get(key) {
            Some((v, expires)) if *expires > Instant::now() => Ok(Some(v.clone())),
            Some(_) => {
                inner.entries.remove(key);
                inner.order.retain(|k| k != key);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        let mut inner = self.inner.lock().expect("cache lock");
        if inner.entries.insert(key.to_owned(), (value.to_vec(), Instant::now() + ttl)).is_none() {
            inner.order.push_back(key.to_owned());
        }
        while inner.entries.len() > self.capacity {
            let Some(oldest) = inner.order.pop_front() else { break };
            inner.entries.remove(&oldest);
        }
        Ok(())
    }

    async fn invalidate(&self, key: &str) -> Result<()> {
        let mut inner = self.inner.lock().expect("cache lock");
        if inner.entries.remove(key).is_some() {
            inner.order.retain(|k| k != key);
        }
        Ok(())
    }
}

//! The origin's shared state: configuration and every backend, built once from `Config`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use encoder::pipeline::Pipeline;
use opendal::Operator;

use crate::cache::MetaCache;
use crate::cache::memory::MemoryCache;
use crate::cache::redis::RedisCache;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::keys::KeyService;
use crate::meta::MetaStore;
use crate::meta::ondemand::OnDemandStore;
use crate::meta::sql::SqlStore;
use crate::metrics::Metrics;
use crate::notify::EventHub;
use crate::outbound::Outbound;
use crate::queue::local::LocalQueue;
use crate::queue::nats::NatsQueue;
use crate::queue::{Namespaced, Queue};
use crate::secrets::Secrets;
use crate::sign::Signer;

/// Everything a request handler, driver or worker needs.
pub struct App {
    /// Configuration.
    pub config: Config,
    /// Metadata database.
    pub meta: Arc<dyn MetaStore>,
    /// Just-in-time encoding's metadata (the same database).
    pub ondemand: Arc<dyn OnDemandStore>,
    /// The PoP registry (the same database).
    pub pops: Arc<dyn crate::meta::pops::PopStore>,
    /// Accounts, sessions, tokens, channels, shares, views and reports (the same database).
    pub people: Arc<dyn crate::meta::people::PeopleStore>,
    /// Sign-in throttling and bootstrap state of this node.
    pub accounts: crate::accounts::State,
    /// Just-in-time encoding's state in this process.
    pub jit: crate::ondemand::Runtime,
    /// Metadata cache.
    pub cache: Arc<dyn MetaCache>,
    /// Task, result, job and completion queues.
    pub queue: Arc<dyn Queue>,
    /// Blob storage.
    pub blobs: Operator,
    /// URL and token signing.
    pub signer: Signer,
    /// Content keys.
    pub keys: KeyService,
    /// SSE fan-out.
    pub hub: EventHub,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The pipeline every job runs.
    pub pipeline: Pipeline,
    /// Where requests to user-chosen addresses (webhooks) may go.
    pub outbound: Arc<Outbound>,
    /// Open server-sent event streams, overall and per client address.
    pub streams: Arc<crate::web::limits::Gate>,
    /// Page origins allowed to read key responses (CORS).
    pub page_origins: Vec<String>,
    /// Key service answers per key token per minute.
    pub key_rate: crate::api::keys::KeyRate,
    /// The registry and PoP statuses content steering reads, kept for a second.
    pub steering: crate::api::steering::Snapshot,
    /// One lock per upload id, so two PATCHes never write the same file at once.
    upload_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("listen", &self.config.listen).finish_non_exhaustive()
    }
}

impl App {
    /// Connects every backend named by the configuration.
    pub async fn open(config: Config) -> Result<Arc<Self>> {
        crate::storage::init_tls();
        std::fs::create_dir_all(&config.data_dir).map_err(Error::io("create data folder"))?;
        let secrets = Secrets::load(&config.data_dir, config.signing_key.as_deref(), config.master_key.as_deref())?;
        let sql = Arc::new(SqlStore::connect(&config.database_url).await?);
        let meta: Arc<dyn MetaStore> = sql.clone();
        let ondemand: Arc<dyn OnDemandStore> = sql.clone();
        let pops: Arc<dyn crate::meta::pops::PopStore> = sql.clone();
        let people: Arc<dyn crate::meta::people::PeopleStore> = sql;
        let pipeline = match &config.pipeline {
            Some(path) => Pipeline::load(path).map_err(|e| Error::Config(format!("pipeline: {e}")))?,
            None => Pipeline::builtin(),
        };
        let cache: Arc<dyn MetaCache> = if config.cache_url == "memory" {
            Arc::new(MemoryCache::new(10_000))
        } else {
            Arc::new(RedisCache::connect(&config.cache_url, "origin:").await?)
        };
        let mut queue: Arc<dyn Queue> = if config.queue_url == "local" {
            Arc::new(LocalQueue::open(&config.data_dir.join("queue.db")).await?)
        } else {
            Arc::new(NatsQueue::connect(&config.queue_url, config.queue_replicas).await?)
        };
        if let Some(ns) = &config.queue_namespace {
            queue = Arc::new(Namespaced::new(queue, ns));
        }
        let blobs = crate::storage::operator(&config.storage)?;
        Ok(Arc::new(Self {
            meta,
            ondemand,
            pops,
            people,
            accounts: crate::accounts::State::default(),
            jit: crate::ondemand::Runtime::default(),
            cache,
            queue,
            blobs,
            signer: Signer::from_secrets(&secrets)?,
            keys: KeyService::versioned(&secrets.masters),
            hub: EventHub::open(&config.database_url).await?,
            metrics: Metrics::default(),
            outbound: Outbound::new(config.webhook_allow.clone()),
            streams: config.limits.stream_gate(),
            page_origins: config.page_origins(),
            key_rate: Default::default(),
            steering: Default::default(),
            pipeline,
            upload_locks: Mutex::new(HashMap::new()),
            config,
        }))
    }

    /// A worker's local folder for a job's temporary files.
    pub fn scratch(&self, job: &str) -> PathBuf {
        self.config.data_dir.join("scratch").join(job)
    }

    /// The lock serialising writes to one upload.
    pub fn upload_lock(&self, upload_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.upload_locks.lock().expect("upload locks");
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(upload_id.to_owned()).or_default().clone()
    }

    /// The creator a bearer token belongs to.
    pub fn creator_of(&self, token: &str) -> Option<&str> {
        // Compare every configured token in constant time; the number of creators is small.
        self.config
            .creators
            .iter()
            .find(|(t, _)| crate::sign::constant_eq(t.as_bytes(), token.as_bytes()))
            .map(|(_, c)| c.as_str())
    }
}

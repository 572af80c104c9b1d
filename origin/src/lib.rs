//! The origin: API servers (stateless), resumable uploads, metadata database and cache, job
//! orchestration with a completion queue, the key service, and object serving for PoPs.
//!
//! `origin serve` runs everything on embedded defaults in `./data`; configuration swaps in
//! PostgreSQL, Redis, NATS JetStream and S3 to scale out. See `ARCHITECTURE.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod accounts;
pub mod admin;
pub mod api;
pub mod app;
pub mod cache;
pub mod client;
pub mod config;
pub mod error;
pub mod jobs;
pub mod keys;
pub mod lifecycle;
pub mod logs;
pub mod meta;
pub mod metrics;
pub mod notify;
pub mod ondemand;
pub mod outbound;
pub mod placement;
pub mod pops;
pub mod queue;
pub mod secrets;
pub mod sign;
pub mod steering;
pub mod storage;
pub mod tus;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use encoder::task::TaskKind;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::queue::consume::consume;

pub use app::App;
pub use config::Config;
pub use error::{Error, Result};

/// A running origin: API server, job drivers, completion handler, webhook sender, upload
/// collector and (unless `workers = 0`) in-process workers.
pub struct Running {
    /// Where the API listens.
    pub addr: SocketAddr,
    /// Where `/metrics` listens, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// Shared state, for tests and embedding.
    pub app: Arc<App>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// Binds the listener, connects the backends and starts every loop.
pub async fn start(mut config: Config) -> Result<Running> {
    let listener = TcpListener::bind(config.listen).await.map_err(Error::io(format!("bind {}", config.listen)))?;
    let addr = listener.local_addr().map_err(Error::io("local address"))?;
    let metrics_listener = match config.metrics_listen {
        Some(at) => Some(TcpListener::bind(at).await.map_err(Error::io(format!("bind metrics_listen {at}")))?),
        None => None,
    };
    let metrics_addr =
        metrics_listener.as_ref().map(TcpListener::local_addr).transpose().map_err(Error::io("local address"))?;
    // A configured port 0 (tests) is only known now; derived URLs follow it.
    let bound = |url: &str| url.replace(&config.listen.to_string(), &addr.to_string());
    config.public_url = bound(&config.public_url);
    config.upload_url = bound(&config.upload_url);
    config.playback_url = bound(&config.playback_url);
    config.key_url = bound(&config.key_url);
    let tls = config.tls.as_ref().map(|(cert, key)| web::server::tls_acceptor(cert, key)).transpose()?;
    let app = App::open(config).await?;
    let (shutdown, watch) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let limits = Arc::new(app.config.limits.clone());
    let connections = app.metrics.connections.clone();
    let handler_app = app.clone();
    let api = move |req| api::handle(handler_app.clone(), req);
    tasks.spawn(web::server::serve(listener, tls, limits.clone(), connections.clone(), api, watch.clone()));
    if let Some(listener) = metrics_listener {
        let metrics_app = app.clone();
        let metrics = move |req| std::future::ready(api::metrics_page(&metrics_app, &req));
        tasks.spawn(web::server::serve(listener, None, limits, connections, metrics, watch.clone()));
    }
    tasks.spawn(jobs::driver::run(app.clone(), watch.clone()));
    tasks.spawn(jobs::completion::run(app.clone(), watch.clone()));
    let webhooks = notify::Webhooks::new(app.meta.clone(), app.outbound.clone(), app.metrics.webhooks.clone());
    let outcomes = app.metrics.queue_messages.clone();
    tasks.spawn(consume(app.queue.clone(), notify::consumer(), Arc::new(webhooks), outcomes, watch.clone()));
    tasks.spawn(housekeeping(app.clone(), watch.clone()));
    tasks.spawn(ondemand::policy::run(app.clone(), watch.clone()));
    spawn_workers(&app, &mut tasks, &watch);
    tracing::info!(%addr, metrics = ?metrics_addr, public = %app.config.public_url, "origin listening");
    Ok(Running { addr, metrics_addr, app, shutdown, tasks })
}

/// Runs only workers (`origin worker`), until `shutdown` turns true.
pub async fn run_workers(config: Config, mut stop: watch::Receiver<bool>) -> Result<()> {
    let app = App::open(config).await?;
    let (shutdown, watch) = watch::channel(false);
    let mut tasks = JoinSet::new();
    spawn_workers(&app, &mut tasks, &watch);
    tracing::info!(workers = app.config.workers, "worker running");
    let _ = stop.changed().await;
    let _ = shutdown.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// `workers` encode loops sharing the cores, plus one loop for everything else.
fn spawn_workers(app: &Arc<App>, tasks: &mut JoinSet<()>, watch: &watch::Receiver<bool>) {
    let n = app.config.workers;
    if n == 0 {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let kinds = TaskKind::ALL.iter().map(|k| k.as_str().to_owned()).collect();
    let worker = ondemand::workers::Worker::new(kinds, n as u32 + 1);
    tasks.spawn(ondemand::workers::heartbeat(app.clone(), worker.clone(), watch.clone()));
    for _ in 0..n {
        let slot = jobs::worker::run(app.clone(), TaskKind::Encode, (cores / n).max(1), worker.clone(), watch.clone());
        tasks.spawn(slot);
    }
    tasks.spawn(jobs::worker::run(app.clone(), TaskKind::Inspect, 1, worker, watch.clone()));
    if !app.config.shared_scratch {
        tasks.spawn(jobs::worker::janitor(app.clone(), watch.clone()));
    }
}

/// Every minute: expired uploads collected, stranded jobs published, videos whose retention
/// after a moderator's takedown ended removed.
async fn housekeeping(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = api::uploads::collect_expired(&app).await {
                    tracing::warn!(error = %e, "expired upload collection failed");
                }
                if let Err(e) = jobs::publish_stranded(&app).await {
                    tracing::warn!(error = %e, "stranded jobs not published");
                }
                if let Err(e) = lifecycle::apply::expire_retained(&app, meta::now()).await {
                    tracing::warn!(error = %e, "expired retentions not removed");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, stops every loop. Leased work that
    /// did not finish is given back to the queue at once (`queue::consume`).
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

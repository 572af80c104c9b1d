//! The edge PoP: HTTP/1.1, HTTP/2 and HTTP/3 from a hybrid memory+disk cache, pulling through
//! from the origin with one fetch per object however many viewers ask, checking playback
//! tokens, passing keys and uploads through, purging and prefetching on the origin's word.
//!
//! It caches opaque HTTP objects and knows what a segment or a playlist is only from the
//! origin's headers: it never depends on FFmpeg, a database or origin internals (checked by
//! `tests/tests/architecture.rs`), and it never holds a content key or a clear segment.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
pub mod cache;
pub mod cdn_loop;
pub mod chunks;
pub mod conditional;
pub mod context;
pub mod error;
pub mod fetch;
pub mod flow;
pub mod grants;
pub mod inflight;
pub mod listen;
pub mod metrics;
pub mod object;
pub mod pages;
pub mod popularity;
pub mod proxy;
pub mod purge;
pub mod range;
pub mod readahead;
pub mod respond;
pub mod status;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pop_config::PopConfig;
use pop_config::token::PublicKey;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cache::{CacheSettings, ObjectCache};
use crate::flow::Protocol;
use crate::inflight::Flights;
use crate::listen::policy::Connections;
use crate::listen::tcp::Role;
use crate::metrics::EdgeMetrics;
use crate::popularity::Popularity;
use crate::upstream::Upstream;

/// The PoP's shared state.
#[derive(Debug)]
pub struct Edge {
    /// PoP id (sent in `x-pop` and heartbeats).
    pub pop_id: String,
    /// Region (heartbeats).
    pub region: String,
    /// Playback-token and upload-URL verification keys: public halves only, so this PoP can
    /// check a capability but never create one.
    pub keys: Vec<PublicKey>,
    /// Run by a partner: serves video objects and uploads, forwards no API call.
    pub partner: bool,
    /// The two-tier cache.
    pub cache: ObjectCache,
    /// Origin fetches in progress.
    pub flights: Flights,
    /// The origin.
    pub upstream: Upstream,
    /// Metrics.
    pub metrics: EdgeMetrics,
    /// Requests per video.
    pub popularity: Popularity,
    /// The headers every response carries (`x-pop`, `Alt-Svc` when HTTP/3 listens).
    pub stamp: context::Stamp,
    /// Stale-if-error window for playlists.
    pub playlist_stale: Duration,
    /// How long a viewer waits for the origin's headers.
    pub origin_timeout: Duration,
    /// How long the origin's `404` for an object is remembered.
    pub not_found_ttl: Duration,
    /// The viewer connections held, under `[limits]`.
    pub connections: Connections,
    /// The largest upload taken in, when tus uploads are taken in at all.
    pub uploads: Option<u64>,
    /// The catalogue, watch and upload pages, when configured.
    pub pages: Option<pages::Pages>,
    /// Where viewers reach this PoP, reported so that the origin steers to it.
    pub public_url: Option<String>,
    /// The heartbeat's interval (reported: the origin judges a PoP silent by it).
    pub heartbeat_every: Duration,
    /// Cached objects are refused once takedowns have not been heard of for this long.
    pub max_purge_lag: Duration,
    /// When this run started, Unix ms.
    pub started_at: i64,
    /// Child PoPs allowed to fetch objects here, by id: the verifiers of their tier
    /// credentials, from the origin's heartbeat answer.
    pub children: std::sync::RwLock<popularity::Children>,
    /// Requests and failed (5xx) requests since the last heartbeat, reported for steering.
    pub beat_counts: popularity::BeatCounts,
    /// Segments fetched ahead of viewers, and the statistics that decide for which videos.
    pub readahead: readahead::Readahead,
    /// Playback tokens verified before (the signature check is the costliest step of a hit).
    pub grants: grants::Grants,
}

/// A running PoP.
pub struct Running {
    /// HTTPS (h1/h2) address.
    pub https: SocketAddr,
    /// HTTP/3 (UDP) address.
    pub h3: Option<SocketAddr>,
    /// Plain HTTP address.
    pub http: Option<SocketAddr>,
    /// The metrics listener's address.
    pub metrics: Option<SocketAddr>,
    /// base64 SHA-256 of the certificate's SubjectPublicKeyInfo (Chromium's SPKI pin).
    pub spki: String,
    /// DER of the certificate, for clients that pin it.
    pub certificate: Vec<u8>,
    /// Shared state.
    pub edge: Arc<Edge>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("https", &self.https).field("h3", &self.h3).finish_non_exhaustive()
    }
}

/// Installs the process-wide TLS provider (ring) once.
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Starts every listener and loop of a PoP.
pub async fn start(config: PopConfig) -> anyhow::Result<Running> {
    init_tls();
    let tls = pop_config::tls::load_or_generate(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let https = TcpListener::bind(config.listen.https).await?;
    let https_addr = https.local_addr()?;
    let http = match config.listen.http {
        Some(a) => Some(TcpListener::bind(a).await?),
        None => None,
    };
    let http_addr = http.as_ref().map(|l| l.local_addr()).transpose()?;
    let admin = match config.listen.metrics {
        Some(a) => Some(TcpListener::bind(a).await?),
        None => None,
    };
    let metrics_addr = admin.as_ref().map(|l| l.local_addr()).transpose()?;
    let quic = match config.listen.h3 {
        Some(mut addr) => {
            // Port 0 (tests): the same number as the TCP listener, so Alt-Svc needs one port.
            if addr.port() == 0 {
                addr.set_port(https_addr.port());
            }
            let tls = listen::tls_config(&tls.cert_chain, &tls.key, &[b"h3"])?;
            Some(listen::quic::endpoint(tls, addr, &config.limits)?)
        }
        None => None,
    };
    let h3_addr = quic.as_ref().map(|e| e.local_addr()).transpose()?;
    let metrics = EdgeMetrics::default();
    let edge = Arc::new(Edge {
        pop_id: config.pop.id.clone(),
        region: config.pop.region.clone(),
        keys: config.tokens.clone(),
        partner: config.pop.partner,
        cache: ObjectCache::open(&CacheSettings {
            memory: config.cache.memory,
            disk: config.cache.disk,
            path: config.cache.path.clone(),
            block: config.cache.block,
            min_uses: config.admission.min_uses,
            window: config.admission.window,
        })
        .await?,
        flights: Flights::default(),
        upstream: Upstream::new(
            config.origin.urls.clone(),
            config.origin.credential.clone(),
            config.origin.connect_timeout,
            config.origin.request_timeout,
            config.origin.retries,
            metrics.origin_failovers.clone(),
        )
        .with_parents(config.origin.parents.clone(), &config.pop.id),
        connections: Connections::new(config.limits, &metrics),
        metrics,
        popularity: Popularity::new(Duration::from_secs(300)),
        stamp: context::Stamp::new(&config.pop.id, h3_addr.map(|a| a.port())),
        playlist_stale: config.cache.playlist_stale,
        origin_timeout: config.origin.request_timeout,
        not_found_ttl: config.cache.not_found_ttl,
        uploads: config.uploads.enabled.then_some(config.uploads.max_size),
        pages: config.web.as_ref().map(|w| {
            let key_service = w.key_service.as_deref().or(config.origin.urls.first().map(String::as_str));
            pages::Pages::new(w.dir.clone(), key_service.unwrap_or_default())
        }),
        public_url: config.pop.public_url.clone(),
        heartbeat_every: config.prefetch.heartbeat,
        max_purge_lag: config.origin.max_purge_lag,
        started_at: now_ms(),
        children: Default::default(),
        beat_counts: Default::default(),
        readahead: readahead::Readahead::new(config.prefetch.readahead, config.prefetch.readahead_continue_percent),
        grants: Default::default(),
    });
    let (shutdown, watch) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(listen::tls_config(
        &tls.cert_chain,
        &tls.key,
        &[b"h2", b"http/1.1"],
    )?));
    let top_n = config.prefetch.top_n as usize;
    // Takedowns first: until they are caught up the disk tier is not served anyway.
    popularity::catch_up(&edge, top_n, config.prefetch.enabled, config.origin.request_timeout).await;
    tasks.spawn(listen::tcp::serve(edge.clone(), https, Some(acceptor), Role::Viewers(Protocol::Https), watch.clone()));
    if let Some(listener) = http {
        tasks.spawn(listen::tcp::serve(edge.clone(), listener, None, Role::Viewers(Protocol::Http), watch.clone()));
    }
    if let Some(listener) = admin {
        tasks.spawn(listen::tcp::serve(edge.clone(), listener, None, Role::Admin, watch.clone()));
    }
    if let Some(endpoint) = quic {
        tasks.spawn(listen::quic::serve(edge.clone(), endpoint, watch.clone()));
    }
    tasks.spawn(popularity::heartbeat(
        edge.clone(),
        config.prefetch.heartbeat,
        top_n,
        config.prefetch.enabled,
        watch.clone(),
    ));
    tracing::info!(pop = %edge.pop_id, %https_addr, h3 = ?h3_addr, http = ?http_addr, metrics = ?metrics_addr, spki = %tls.spki_sha256, "edge listening");
    Ok(Running {
        https: https_addr,
        h3: h3_addr,
        http: http_addr,
        metrics: metrics_addr,
        spki: tls.spki_sha256.clone(),
        certificate: tls.cert_chain.first().cloned().unwrap_or_default(),
        edge,
        shutdown,
        tasks,
    })
}

impl Running {
    /// Stops every listener and loop and flushes the disk tier.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        self.edge.cache.close().await;
    }
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    now_ms() / 1000
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

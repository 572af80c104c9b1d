//! `origin.toml`: every setting has an embedded default, so `origin serve` with no file runs
//! a complete single-machine platform in `./data` (SQLite, local disk, in-process queue and
//! cache, in-process workers). Unknown keys are errors, reported with their path.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::web::limits::{Limits, SseLimits};

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Folder for everything local: SQLite files, blobs, secrets, worker scratch.
    pub data_dir: PathBuf,
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// Base URL clients use to reach this origin (upload and playback URLs start with it).
    pub public_url: String,
    /// Base URL of the upload endpoint handed to creators (the nearest PoP, or this origin).
    pub upload_url: String,
    /// Base URL of playback links handed to viewers (the CDN name that resolves to the
    /// nearest PoP, or this origin).
    pub playback_url: String,
    /// PEM certificate chain and key; plain HTTP when absent.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `sqlite://...` or `postgres://...`.
    pub database_url: String,
    /// `memory` or `redis://...`.
    pub cache_url: String,
    /// `local` (durable, in-process) or `nats://...` (several servers of a cluster separated
    /// by commas).
    pub queue_url: String,
    /// Copies JetStream keeps of the queue, each on its own server (1 to 5; 3 survives the
    /// loss of any one server). Ignored by the local queue.
    pub queue_replicas: usize,
    /// Blob storage.
    pub storage: StorageConfig,
    /// In-process encode workers (0: only `origin worker` processes encode).
    pub workers: usize,
    /// Creator bearer tokens: (token, creator id).
    pub creators: Vec<(String, String)>,
    /// Largest accepted upload.
    pub max_upload_bytes: u64,
    /// How long a pre-signed upload URL stays valid.
    pub upload_url_ttl: Duration,
    /// Incomplete uploads older than this are removed.
    pub upload_expiry: Duration,
    /// Playback token lifetime.
    pub playback_ttl: Duration,
    /// Task lease: a worker that stops renewing it loses the task.
    pub task_lease: Duration,
    /// Hex master key for wrapping content keys; generated into `data_dir` when absent.
    pub master_key: Option<String>,
    /// Hex Ed25519 seed (32 bytes) that signs upload URLs and playback tokens as key `k1`;
    /// when absent, the keys of `data_dir/secrets.json` (generated, rotated with `origin keys`).
    pub signing_key: Option<String>,
    /// Base URL of the key service (content keys and ClearKey licences), which viewers reach
    /// directly, never through a PoP; this origin unless it runs on its own host.
    pub key_url: String,
    /// How segments are encrypted: `aes128` (HLS AES-128, for native HLS players), `cbcs`
    /// (CENC for DASH and EME players, one copy) or `both` (two copies).
    pub protection: encoder::task::Protection,
    /// Prefix of every queue topic, so deployments can share a queue server.
    pub queue_namespace: Option<String>,
    /// Whether every worker sees the same `data_dir/scratch` (one machine, or a shared
    /// volume). When false, temporary artifacts travel through blob storage.
    pub shared_scratch: bool,
    /// Where `/metrics` is served, apart from the API (`None`: not served at all).
    pub metrics_listen: Option<SocketAddr>,
    /// Page origins (`scheme://host[:port]`) whose pages may read key responses;
    /// `None`: the origins of `playback_url` and `upload_url`.
    pub allowed_origins: Option<Vec<String>>,
    /// Networks webhooks may reach although they are loopback, private or otherwise reserved.
    pub webhook_allow: Vec<IpNet>,
    /// Proxies (load balancers) in front of the API whose `X-Forwarded-For` is believed.
    /// Our own PoPs are believed by their credential instead (`api::steering::client`).
    pub trusted_proxies: Vec<IpNet>,
    /// Uploads (single or partial) one video may have at once; concatenations not counted.
    pub max_uploads_per_video: usize,
    /// Timeouts and limits of every connection and event stream.
    pub limits: Limits,
    /// The pipeline file every job runs (`None`: the built-in pipeline).
    pub pipeline: Option<PathBuf>,
    /// Just-in-time encoding of the long tail.
    pub on_demand: OnDemandConfig,
    /// Content steering: viewers and creators sent to their best PoP.
    pub steering: SteeringConfig,
    /// Accounts: sessions and upload quotas.
    pub accounts: AccountsConfig,
}

/// `[accounts]`: how long a sign-in lasts, and how much each account may upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountsConfig {
    /// How long a session cookie works after signing in.
    pub session_ttl: Duration,
    /// Bytes an account may upload per day (videos created in the last 24 hours, however
    /// they ended).
    pub quota_day_bytes: u64,
    /// Bytes of an account's videos that are not deleted.
    pub quota_total_bytes: u64,
    /// How long a ready video a moderator took down keeps its bytes and key, restorable.
    pub restore_grace: Duration,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            quota_day_bytes: 20 << 30,
            quota_total_bytes: 200 << 30,
            restore_grace: Duration::from_secs(14 * 24 * 3600),
        }
    }
}

/// `[steering]`: which PoP viewers and creators are sent to, and how often players ask again.
#[derive(Debug, Clone, PartialEq)]
pub struct SteeringConfig {
    /// Playlists carry steering and playback and upload URLs name the best PoP.
    pub enabled: bool,
    /// How long a player keeps a steering manifest before asking again.
    pub ttl: Duration,
    /// How old the last beat of a PoP that did not say its heartbeat interval may be.
    pub stale_after: Duration,
    /// Client networks by region, so a client is sent to a PoP of its own region first.
    pub regions: Vec<Region>,
    /// Seconds of every rendition a region's PoPs are told to warm for a rising title
    /// (`placement.rs`); 0: two segments of the region's top titles only. Off by default: on
    /// the PoP that has the crowd it cost 26% more origin fetches for 6% fewer misses, and at
    /// a second PoP of the region 55% more origin bytes for 16% fewer misses
    /// (`bench/flash-crowd`): egress against waiting, the operator's trade.
    pub prefetch_opening_secs: u32,
}

impl Default for SteeringConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ttl: Duration::from_secs(10),
            stale_after: Duration::from_secs(30),
            regions: Vec::new(),
            prefetch_opening_secs: 0,
        }
    }
}

/// A region's client networks (`[[steering.regions]]`); `name` is a PoP region of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// The region, as PoPs are enrolled with it.
    pub name: String,
    /// Client networks (CIDR, v4 or v6) in the region.
    pub networks: Vec<IpNet>,
}

/// `[on_demand]`: which rungs an upload encodes, and when the rest are encoded or dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct OnDemandConfig {
    /// Encode only the floor at upload (false: every rung up front, as a plain encoder does).
    pub enabled: bool,
    /// The floor: the highest rung at or under this class.
    pub floor_class: u32,
    /// Segments encoded ahead of a viewer playing a just-in-time rung.
    pub lookahead: u32,
    /// First segments of every on-demand rung encoded right after the upload is ready (and
    /// kept through evictions), so viewers start on stored segments.
    pub opening_segments: u32,
    /// Segment encodes one video may have waiting or running at once.
    pub max_pending_per_video: u32,
    /// How long a viewer's request waits for its segment's first byte.
    pub first_byte_deadline: Duration,
    /// Requests within `promote_window` that promote a video to its full ladder.
    pub promote_requests: u64,
    /// Window over which requests count for promotion.
    pub promote_window: Duration,
    /// A video with no request for this long loses its non-floor segments.
    pub evict_after: Duration,
    /// Segments per background promotion task (shorter tasks let viewers' encodes in sooner).
    pub promote_span: u32,
    /// How often demand is written, and promotion and eviction decided.
    pub policy_interval: Duration,
    /// How often stored bytes are counted for the metrics (a listing of the whole store).
    pub account_interval: Duration,
}

impl Default for OnDemandConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            floor_class: 360,
            lookahead: 2,
            opening_segments: 1,
            max_pending_per_video: 8,
            first_byte_deadline: Duration::from_secs(10),
            // About five full viewings of a ten-minute video within the hour.
            promote_requests: 1500,
            promote_window: Duration::from_secs(3600),
            evict_after: Duration::from_secs(7 * 24 * 3600),
            promote_span: 4,
            policy_interval: Duration::from_secs(30),
            account_interval: Duration::from_secs(600),
        }
    }
}

/// Where blobs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// A local folder.
    Fs {
        /// Root folder.
        root: PathBuf,
    },
    /// An S3-compatible bucket.
    S3 {
        /// Endpoint URL (path-style).
        endpoint: String,
        /// Bucket.
        bucket: String,
        /// Region.
        region: String,
        /// Access key id.
        access_key: String,
        /// Secret key.
        secret_key: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    public_url: Option<String>,
    upload_url: Option<String>,
    playback_url: Option<String>,
    tls: Option<RawTls>,
    database_url: Option<String>,
    cache_url: Option<String>,
    queue_url: Option<String>,
    queue_replicas: Option<i64>,
    storage: Option<RawStorage>,
    workers: Option<usize>,
    creators: Option<Vec<RawCreator>>,
    max_upload_bytes: Option<u64>,
    upload_url_ttl_secs: Option<u64>,
    upload_expiry_secs: Option<u64>,
    playback_ttl_secs: Option<u64>,
    task_lease_secs: Option<u64>,
    master_key: Option<String>,
    signing_key: Option<String>,
    key_url: Option<String>,
    protection: Option<encoder::task::Protection>,
    shared_scratch: Option<bool>,
    queue_namespace: Option<String>,
    metrics_listen: Option<String>,
    allowed_origins: Option<Vec<String>>,
    webhook_allow: Option<Vec<String>>,
    trusted_proxies: Option<Vec<String>>,
    max_uploads_per_video: Option<usize>,
    limits: Option<RawLimits>,
    pipeline: Option<PathBuf>,
    on_demand: Option<RawOnDemand>,
    steering: Option<RawSteering>,
    accounts: Option<RawAccounts>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccounts {
    session_ttl_days: Option<u64>,
    quota_day_bytes: Option<u64>,
    quota_total_bytes: Option<u64>,
    restore_grace_days: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSteering {
    enabled: Option<bool>,
    ttl_secs: Option<u64>,
    stale_after_ms: Option<u64>,
    regions: Option<Vec<RawRegion>>,
    prefetch_opening_secs: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    name: String,
    networks: Vec<String>,
}

/// `[limits]`: every key optional, each defaulting to `Limits::default()`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    header_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    exempt: Option<Vec<String>>,
    h2_max_concurrent_streams: Option<u32>,
    h2_max_header_bytes: Option<u32>,
    h2_keepalive_secs: Option<u64>,
    sse_max_streams: Option<usize>,
    sse_streams_per_address: Option<usize>,
    sse_max_lifetime_secs: Option<u64>,
    sse_retry_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOnDemand {
    enabled: Option<bool>,
    floor_class: Option<u32>,
    lookahead: Option<u32>,
    opening_segments: Option<u32>,
    max_pending_per_video: Option<u32>,
    first_byte_deadline_ms: Option<u64>,
    promote_requests: Option<u64>,
    promote_window_secs: Option<u64>,
    evict_after_secs: Option<u64>,
    promote_span: Option<u32>,
    policy_interval_ms: Option<u64>,
    account_interval_ms: Option<u64>,
}

impl RawOnDemand {
    fn resolve(self) -> OnDemandConfig {
        let d = OnDemandConfig::default();
        OnDemandConfig {
            enabled: self.enabled.unwrap_or(d.enabled),
            floor_class: self.floor_class.unwrap_or(d.floor_class),
            lookahead: self.lookahead.unwrap_or(d.lookahead),
            opening_segments: self.opening_segments.unwrap_or(d.opening_segments),
            max_pending_per_video: self.max_pending_per_video.unwrap_or(d.max_pending_per_video),
            first_byte_deadline: self.first_byte_deadline_ms.map_or(d.first_byte_deadline, Duration::from_millis),
            promote_requests: self.promote_requests.unwrap_or(d.promote_requests),
            promote_window: self.promote_window_secs.map_or(d.promote_window, Duration::from_secs),
            evict_after: self.evict_after_secs.map_or(d.evict_after, Duration::from_secs),
            promote_span: self.promote_span.unwrap_or(d.promote_span),
            policy_interval: self.policy_interval_ms.map_or(d.policy_interval, Duration::from_millis),
            account_interval: self.account_interval_ms.map_or(d.account_interval, Duration::from_millis),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCreator {
    id: String,
    token: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
enum RawStorage {
    Fs { root: Option<PathBuf> },
    S3 { endpoint: String, bucket: String, region: Option<String>, access_key: String, secret_key: String },
}

/// The most copies of the queue `queue_replicas` may ask for (JetStream's limit).
pub const MAX_QUEUE_REPLICAS: usize = 5;

/// The creator token of the embedded defaults: fine on a laptop, replaced in production.
pub const DEV_CREATOR_TOKEN: &str = "dev-creator-token";

/// Where `/metrics` listens unless configured: loopback, so it is private by default.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

/// What to do instead of a key this version no longer reads (empty when none is there).
fn retired(text: &str) -> &'static str {
    let has = |key: &str| text.lines().any(|l| l.trim_start().starts_with(key) && l.contains('='));
    if has("pop_token") {
        " (`pop_token` is gone: each PoP has its own credential, from `origin pops enrol`)"
    } else {
        ""
    }
}

impl Config {
    /// Reads `path`, or the embedded defaults when `None`. Environment variables
    /// `DATABASE_URL`, `CACHE_URL`, `QUEUE_URL` override the file.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let raw: Raw = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| Error::Config(format!("cannot read {}: {e}", p.display())))?;
                toml::from_str(&text)
                    .map_err(|e| Error::Config(format!("{}: {}{}", p.display(), e.message(), retired(&text))))?
            }
            None => Raw::default(),
        };
        Self::from_raw(raw)
    }

    /// Defaults for a data folder (tests use this with `port 0`).
    pub fn for_dir(data_dir: &Path) -> Self {
        let raw = Raw {
            data_dir: Some(data_dir.to_owned()),
            listen: Some("127.0.0.1:0".into()),
            metrics_listen: Some("127.0.0.1:0".into()),
            ..Raw::default()
        };
        Self::from_raw(raw).expect("defaults are valid")
    }

    fn from_raw(raw: Raw) -> Result<Self> {
        let data_dir = raw.data_dir.unwrap_or_else(|| PathBuf::from("data"));
        let listen: SocketAddr = raw
            .listen
            .as_deref()
            .unwrap_or("127.0.0.1:8080")
            .parse()
            .map_err(|e| Error::Config(format!("listen: {e}")))?;
        let scheme = if raw.tls.is_some() { "https" } else { "http" };
        let public_url = raw.public_url.unwrap_or_else(|| format!("{scheme}://{listen}"));
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let database_url = env("DATABASE_URL")
            .or(raw.database_url)
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data_dir.join("meta.db").display()));
        let storage = match raw.storage {
            None | Some(RawStorage::Fs { root: None }) => StorageConfig::Fs { root: data_dir.join("blobs") },
            Some(RawStorage::Fs { root: Some(root) }) => StorageConfig::Fs { root },
            Some(RawStorage::S3 { endpoint, bucket, region, access_key, secret_key }) => StorageConfig::S3 {
                endpoint,
                bucket,
                region: region.unwrap_or_else(|| "us-east-1".into()),
                access_key,
                secret_key,
            },
        };
        let creators = match raw.creators {
            Some(list) => list.into_iter().map(|c| (c.token, c.id)).collect(),
            None => vec![(DEV_CREATOR_TOKEN.to_owned(), "dev".to_owned())],
        };
        let workers = raw.workers.unwrap_or(1);
        let mut problems = Vec::new();
        let metrics_listen = match raw.metrics_listen.as_deref().unwrap_or(DEFAULT_METRICS_LISTEN) {
            "off" => None,
            addr => addr.parse().map_err(|e| problems.push(format!("metrics_listen: {e}"))).ok(),
        };
        let webhook_allow = networks("webhook_allow", raw.webhook_allow.unwrap_or_default(), &mut problems);
        let trusted_proxies = networks("trusted_proxies", raw.trusted_proxies.unwrap_or_default(), &mut problems);
        // Addresses are compared as IPv4 when they are IPv4-mapped: a mapped network would never match.
        for net in &trusted_proxies {
            if let IpNet::V6(v6) = net
                && v6.addr().to_ipv4_mapped().is_some()
            {
                problems.push(format!("trusted_proxies: `{net}` is IPv4-mapped: write it as an IPv4 network"));
            }
        }
        let allowed_origins = raw.allowed_origins.map(|list| {
            list.iter()
                .filter_map(|o| page_origin(o).map_err(|e| problems.push(format!("allowed_origins: {e}"))).ok())
                .collect()
        });
        let limits = limits(raw.limits.unwrap_or_default(), &mut problems);
        let queue_replicas = queue_replicas(raw.queue_replicas, &mut problems);
        let steering = steering(raw.steering.unwrap_or_default(), &mut problems);
        let accounts = accounts(raw.accounts.unwrap_or_default(), &mut problems);
        let config = Self {
            key_url: raw.key_url.map_or_else(|| public_url.clone(), |u| u.trim_end_matches('/').to_owned()),
            protection: raw.protection.unwrap_or(encoder::task::Protection::Both),
            upload_url: raw.upload_url.unwrap_or_else(|| public_url.clone()),
            playback_url: raw.playback_url.unwrap_or_else(|| public_url.clone()),
            public_url,
            listen,
            tls: raw.tls.map(|t| (t.cert, t.key)),
            database_url,
            cache_url: env("CACHE_URL").or(raw.cache_url).unwrap_or_else(|| "memory".into()),
            queue_url: env("QUEUE_URL").or(raw.queue_url).unwrap_or_else(|| "local".into()),
            queue_replicas,
            storage,
            workers,
            creators,
            max_upload_bytes: raw.max_upload_bytes.unwrap_or(1 << 30),
            upload_url_ttl: Duration::from_secs(raw.upload_url_ttl_secs.unwrap_or(24 * 3600)),
            upload_expiry: Duration::from_secs(raw.upload_expiry_secs.unwrap_or(7 * 24 * 3600)),
            playback_ttl: Duration::from_secs(raw.playback_ttl_secs.unwrap_or(6 * 3600)),
            task_lease: Duration::from_secs(raw.task_lease_secs.unwrap_or(30)),
            master_key: raw.master_key,
            signing_key: raw.signing_key,
            shared_scratch: raw.shared_scratch.unwrap_or(true),
            queue_namespace: raw.queue_namespace,
            pipeline: raw.pipeline,
            on_demand: raw.on_demand.unwrap_or_default().resolve(),
            data_dir,
            metrics_listen,
            allowed_origins,
            webhook_allow,
            trusted_proxies,
            max_uploads_per_video: raw.max_uploads_per_video.unwrap_or(16),
            limits,
            steering,
            accounts,
        };
        config.validate(problems)?;
        Ok(config)
    }

    /// Every problem at once: those found while parsing, then these checks.
    fn validate(&self, mut problems: Vec<String>) -> Result<()> {
        if !(self.database_url.starts_with("sqlite:") || self.database_url.starts_with("postgres")) {
            problems.push(format!("database_url: `{}` is neither sqlite: nor postgres:", self.database_url));
        }
        if !(self.cache_url == "memory" || self.cache_url.starts_with("redis://")) {
            problems.push(format!("cache_url: `{}` is neither memory nor redis://", self.cache_url));
        }
        if !(self.queue_url == "local" || self.queue_url.starts_with("nats://")) {
            problems.push(format!("queue_url: `{}` is neither local nor nats://", self.queue_url));
        }
        if self.max_upload_bytes == 0 || self.max_upload_bytes > 1 << 30 {
            problems.push("max_upload_bytes: must be between 1 and 1 GiB".into());
        }
        let od = &self.on_demand;
        for (key, zero) in [
            ("max_pending_per_video", od.max_pending_per_video == 0),
            ("promote_span", od.promote_span == 0),
            ("first_byte_deadline_ms", od.first_byte_deadline.is_zero()),
            ("policy_interval_ms", od.policy_interval.is_zero()),
            ("promote_window_secs", od.promote_window.is_zero()),
        ] {
            if zero {
                problems.push(format!("on_demand.{key}: must be more than 0"));
            }
        }
        if let Some(path) = &self.pipeline
            && let Err(e) = encoder::pipeline::Pipeline::load(path)
        {
            problems.push(format!("pipeline: {e}"));
        }
        if self.creators.iter().any(|(t, _)| t.len() < 8) {
            problems.push("creators: tokens must have at least 8 characters".into());
        }
        if self.max_uploads_per_video == 0 {
            problems.push("max_uploads_per_video: must be at least 1".into());
        }
        problems.extend(self.limits.problems().into_iter().map(|p| format!("limits.{p}")));
        if problems.is_empty() { Ok(()) } else { Err(Error::Config(problems.join("; "))) }
    }

    /// The page origins allowed to read key responses: `allowed_origins`, or by default the
    /// origins of `playback_url` and `upload_url` (the PoP or origin serving the pages).
    pub fn page_origins(&self) -> Vec<String> {
        if let Some(list) = &self.allowed_origins {
            return list.clone();
        }
        let mut origins: Vec<String> =
            [&self.playback_url, &self.upload_url].into_iter().filter_map(|u| page_origin(u).ok()).collect();
        origins.dedup();
        origins
    }
}

/// `scheme://host[:port]` of a URL, as browsers send it in `Origin`.
fn page_origin(url: &str) -> std::result::Result<String, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}`: {e}"))?;
    let origin = parsed.origin();
    if origin.is_tuple() {
        Ok(origin.ascii_serialization())
    } else {
        Err(format!("`{url}` has no origin (use scheme://host[:port])"))
    }
}

/// CIDR networks (`10.0.0.0/8`, `::1/128`) or single addresses.
fn networks(key: &str, list: Vec<String>, problems: &mut Vec<String>) -> Vec<IpNet> {
    list.iter()
        .filter_map(|n| {
            let parsed = n.parse::<IpNet>().or_else(|_| n.parse::<std::net::IpAddr>().map(IpNet::from));
            parsed.map_err(|_| problems.push(format!("{key}: `{n}` is not an address or a CIDR network"))).ok()
        })
        .collect()
}

/// JetStream keeps at most five copies of a stream.
fn queue_replicas(raw: Option<i64>, problems: &mut Vec<String>) -> usize {
    let replicas = raw.unwrap_or(1);
    match usize::try_from(replicas) {
        Ok(n @ 1..=MAX_QUEUE_REPLICAS) => n,
        _ => {
            problems.push(format!("queue_replicas: {replicas} is not between 1 and {MAX_QUEUE_REPLICAS}"));
            1
        }
    }
}

/// `[accounts]`, each key defaulting to `AccountsConfig::default()`.
fn accounts(raw: RawAccounts, problems: &mut Vec<String>) -> AccountsConfig {
    let d = AccountsConfig::default();
    let days = raw.session_ttl_days.unwrap_or(d.session_ttl.as_secs() / 86_400);
    if !(1..=365).contains(&days) {
        problems.push("accounts.session_ttl_days: 1 to 365".into());
    }
    AccountsConfig {
        session_ttl: Duration::from_secs(days.clamp(1, 365) * 86_400),
        quota_day_bytes: raw.quota_day_bytes.unwrap_or(d.quota_day_bytes),
        quota_total_bytes: raw.quota_total_bytes.unwrap_or(d.quota_total_bytes),
        restore_grace: raw
            .restore_grace_days
            .map_or(d.restore_grace, |days| Duration::from_secs(days.min(365) * 86_400)),
    }
}

/// `[steering]`, its regions checked: names as the registry spells regions, each named once,
/// and every network a CIDR network in one region only (so a client has one region).
fn steering(raw: RawSteering, problems: &mut Vec<String>) -> SteeringConfig {
    let d = SteeringConfig::default();
    let ttl = raw.ttl_secs.map_or(d.ttl, Duration::from_secs);
    if ttl.is_zero() {
        problems.push("steering.ttl_secs: must be more than 0".into());
    }
    let stale_after = raw.stale_after_ms.map_or(d.stale_after, Duration::from_millis);
    if stale_after.is_zero() {
        problems.push("steering.stale_after_ms: must be more than 0".into());
    }
    let mut regions: Vec<Region> = Vec::new();
    for (i, r) in raw.regions.unwrap_or_default().into_iter().enumerate() {
        let at = format!("steering.regions[{i}]");
        if !crate::sign::is_safe_name(&r.name) {
            problems.push(format!("{at}.name: `{}` is not 1 to 64 of A-Z, a-z, 0-9, `_`, `-`", r.name));
        } else if regions.iter().any(|o| o.name == r.name) {
            problems.push(format!("{at}.name: region `{}` is listed twice", r.name));
        }
        let mut networks = Vec::new();
        for n in &r.networks {
            match n.parse::<IpNet>().map(|net| net.trunc()) {
                Ok(net) => match regions.iter().find(|o| o.networks.contains(&net)) {
                    Some(other) => problems.push(format!("{at}.networks: `{n}` is also in region `{}`", other.name)),
                    None => networks.push(net),
                },
                Err(_) => problems.push(format!("{at}.networks: `{n}` is not a CIDR network (such as 10.1.0.0/16)")),
            }
        }
        regions.push(Region { name: r.name, networks });
    }
    let prefetch_opening_secs = raw.prefetch_opening_secs.unwrap_or(d.prefetch_opening_secs);
    if prefetch_opening_secs > crate::placement::MAX_OPENING_SECONDS {
        let max = crate::placement::MAX_OPENING_SECONDS;
        problems.push(format!("steering.prefetch_opening_secs: at most {max} (ten minutes is already a large list)"));
    }
    SteeringConfig { enabled: raw.enabled.unwrap_or(d.enabled), ttl, stale_after, regions, prefetch_opening_secs }
}

fn limits(raw: RawLimits, problems: &mut Vec<String>) -> Limits {
    let d = Limits::default();
    let secs = |v: Option<u64>, default: Duration| v.map_or(default, Duration::from_secs);
    Limits {
        header_timeout: secs(raw.header_timeout_secs, d.header_timeout),
        idle_timeout: secs(raw.idle_timeout_secs, d.idle_timeout),
        body_timeout: secs(raw.body_timeout_secs, d.body_timeout),
        max_connections: raw.max_connections.unwrap_or(d.max_connections),
        max_connections_per_address: raw.max_connections_per_address.unwrap_or(d.max_connections_per_address),
        exempt: raw.exempt.map_or(d.exempt, |list| networks("limits.exempt", list, problems)),
        h2_max_concurrent_streams: raw.h2_max_concurrent_streams.unwrap_or(d.h2_max_concurrent_streams),
        h2_max_header_bytes: raw.h2_max_header_bytes.unwrap_or(d.h2_max_header_bytes),
        h2_keepalive: raw.h2_keepalive_secs.map_or(d.h2_keepalive, |s| (s > 0).then(|| Duration::from_secs(s))),
        sse: SseLimits {
            max_streams: raw.sse_max_streams.unwrap_or(d.sse.max_streams),
            per_address: raw.sse_streams_per_address.unwrap_or(d.sse.per_address),
            max_lifetime: secs(raw.sse_max_lifetime_secs, d.sse.max_lifetime),
            retry: raw.sse_retry_ms.map_or(d.sse.retry, Duration::from_millis),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        let raw: Raw = toml::from_str(text).map_err(|e| Error::Config(e.message().to_owned()))?;
        Config::from_raw(raw)
    }

    #[test]
    fn hardening_keys_have_defaults_and_parse() {
        let defaults =
            parse("playback_url = \"https://cdn.example/videos\"\nupload_url = \"https://up.example:8443\"").unwrap();
        assert_eq!(defaults.metrics_listen, Some(DEFAULT_METRICS_LISTEN.parse().unwrap()));
        assert_eq!(defaults.page_origins(), ["https://cdn.example", "https://up.example:8443"]);
        assert_eq!((defaults.max_uploads_per_video, defaults.webhook_allow.len()), (16, 0));
        assert_eq!(defaults.limits, Limits::default());

        let tuned = parse(
            r#"
            metrics_listen = "off"
            allowed_origins = ["https://watch.example/"]
            webhook_allow = ["127.0.0.1", "10.0.0.0/8"]
            max_uploads_per_video = 4
            [limits]
            header_timeout_secs = 5
            idle_timeout_secs = 20
            body_timeout_secs = 7
            max_connections = 100
            max_connections_per_address = 10
            exempt = ["192.0.2.0/24"]
            h2_max_concurrent_streams = 50
            h2_max_header_bytes = 8192
            h2_keepalive_secs = 0
            sse_max_streams = 30
            sse_streams_per_address = 3
            sse_max_lifetime_secs = 60
            sse_retry_ms = 1500
            "#,
        )
        .unwrap();
        assert_eq!(tuned.metrics_listen, None);
        assert_eq!(tuned.page_origins(), ["https://watch.example"]);
        assert_eq!(tuned.webhook_allow, ["127.0.0.1/32".parse::<IpNet>().unwrap(), "10.0.0.0/8".parse().unwrap()]);
        let l = &tuned.limits;
        assert_eq!(
            (l.header_timeout, l.idle_timeout, l.body_timeout),
            (Duration::from_secs(5), Duration::from_secs(20), Duration::from_secs(7))
        );
        assert_eq!((l.max_connections, l.max_connections_per_address, l.exempt.len()), (100, 10, 1));
        assert_eq!((l.h2_max_concurrent_streams, l.h2_max_header_bytes, l.h2_keepalive), (50, 8192, None));
        assert_eq!(
            l.sse,
            SseLimits {
                max_streams: 30,
                per_address: 3,
                max_lifetime: Duration::from_secs(60),
                retry: Duration::from_millis(1500)
            }
        );
    }

    #[test]
    fn on_demand_keys_have_defaults_and_parse() {
        let defaults = parse("").unwrap();
        assert_eq!(defaults.on_demand, OnDemandConfig::default());
        assert_eq!(defaults.pipeline, None);
        let tuned = parse(
            r#"
            [on_demand]
            enabled = false
            floor_class = 480
            lookahead = 0
            opening_segments = 2
            max_pending_per_video = 3
            first_byte_deadline_ms = 2500
            promote_requests = 10
            promote_window_secs = 60
            evict_after_secs = 120
            promote_span = 2
            policy_interval_ms = 500
            account_interval_ms = 1500
            "#,
        )
        .unwrap();
        assert_eq!(
            tuned.on_demand,
            OnDemandConfig {
                enabled: false,
                floor_class: 480,
                lookahead: 0,
                opening_segments: 2,
                max_pending_per_video: 3,
                first_byte_deadline: Duration::from_millis(2500),
                promote_requests: 10,
                promote_window: Duration::from_secs(60),
                evict_after: Duration::from_secs(120),
                promote_span: 2,
                policy_interval: Duration::from_millis(500),
                account_interval: Duration::from_millis(1500),
            }
        );
    }

    #[test]
    fn bad_on_demand_keys_and_pipelines_are_named() {
        let problems = |text: &str| parse(text).unwrap_err().to_string();
        assert!(
            problems(
                "[on_demand]
floor = 360"
            )
            .contains("unknown field `floor`")
        );
        let dir = tempfile::tempdir().unwrap();
        let pipeline = dir.path().join("pipeline.toml");
        std::fs::write(&pipeline, "[pipeline]\nname = \"x\"\n[[task]]\nid = \"a\"\nkind = \"nonsense\"\n").unwrap();
        let bad = problems(&format!(
            "pipeline = {:?}\n[on_demand]\nmax_pending_per_video = 0\npromote_span = 0\npolicy_interval_ms = 0",
            pipeline.display().to_string()
        ));
        for part in [
            "on_demand.max_pending_per_video: must be more than 0",
            "on_demand.promote_span: must be more than 0",
            "on_demand.policy_interval_ms: must be more than 0",
            "pipeline: ",
            "nonsense",
        ] {
            assert!(bad.contains(part), "{part} in {bad}");
        }
        let missing = problems("pipeline = \"no/such/pipeline.toml\"");
        assert!(missing.contains("pipeline: "), "{missing}");
    }

    #[test]
    fn bad_hardening_keys_are_named() {
        let problems = |text: &str| parse(text).unwrap_err().to_string();
        assert!(problems("[limits]\nheader_timeout = 5").contains("unknown field `header_timeout`"));
        let bad = problems(
            "webhook_allow = [\"10.0.0.0/33\"]\nallowed_origins = [\"not a url\"]\nmetrics_listen = \"nowhere\"\n\
             trusted_proxies = [\"::ffff:10.0.0.0/104\", \"10.1.0.0/16\"]\n[limits]\nmax_connections = 0",
        );
        for part in [
            "webhook_allow: `10.0.0.0/33`",
            "trusted_proxies: `::ffff:10.0.0.0/104` is IPv4-mapped",
            "allowed_origins: `not a url`",
            "metrics_listen:",
            "limits.max_connections: must be more than 0",
        ] {
            assert!(bad.contains(part), "{part} in {bad}");
        }
    }

    #[test]
    fn steering_keys_have_defaults_and_parse() {
        assert_eq!(parse("").unwrap().steering, SteeringConfig::default());
        assert!(SteeringConfig::default().enabled && SteeringConfig::default().ttl == Duration::from_secs(10));
        let tuned = parse(
            r#"
            [steering]
            enabled = false
            ttl_secs = 4
            stale_after_ms = 2500
            prefetch_opening_secs = 60
            regions = [
                { name = "r1", networks = ["10.77.1.0/24", "2001:db8:1::/48"] },
                { name = "r2", networks = ["10.77.2.7/24"] },
            ]
            "#,
        )
        .unwrap();
        let net = |n: &str| n.parse::<IpNet>().unwrap();
        assert_eq!(
            tuned.steering,
            SteeringConfig {
                enabled: false,
                ttl: Duration::from_secs(4),
                stale_after: Duration::from_millis(2500),
                regions: vec![
                    Region { name: "r1".into(), networks: vec![net("10.77.1.0/24"), net("2001:db8:1::/48")] },
                    // Host bits are dropped: the network is what a client is matched against.
                    Region { name: "r2".into(), networks: vec![net("10.77.2.0/24")] },
                ],
                prefetch_opening_secs: 60,
            }
        );
    }

    #[test]
    fn bad_steering_keys_are_named() {
        let problems = |text: &str| parse(text).unwrap_err().to_string();
        assert!(problems("[steering]\nttl = 3").contains("unknown field `ttl`"));
        assert!(
            problems("[[steering.regions]]\nname = \"r1\"\nnetworks = []\ncidr = 1").contains("unknown field `cidr`")
        );
        let bad = problems(
            r#"
            [steering]
            ttl_secs = 0
            stale_after_ms = 0
            prefetch_opening_secs = 601
            regions = [
                { name = "r1", networks = ["10.0.0.0/33", "10.1.0.0/16", "fe80::/10"] },
                { name = "r1", networks = ["10.1.0.0/16", "not-a-network", "10.2.0.1"] },
                { name = "bad name", networks = [] },
            ]
            "#,
        );
        for part in [
            "steering.ttl_secs: must be more than 0",
            "steering.stale_after_ms: must be more than 0",
            "steering.prefetch_opening_secs: at most 600",
            "steering.regions[0].networks: `10.0.0.0/33` is not a CIDR network",
            "steering.regions[1].name: region `r1` is listed twice",
            "steering.regions[1].networks: `10.1.0.0/16` is also in region `r1`",
            "steering.regions[1].networks: `not-a-network` is not a CIDR network",
            "steering.regions[1].networks: `10.2.0.1` is not a CIDR network",
            "steering.regions[2].name: `bad name` is not",
        ] {
            assert!(bad.contains(part), "{part} in {bad}");
        }
    }

    #[test]
    fn queue_replicas_default_to_one_and_stay_within_jetstreams_limit() {
        assert_eq!(parse("").unwrap().queue_replicas, 1);
        assert_eq!(parse("queue_replicas = 3").unwrap().queue_replicas, 3);
        for bad in ["0", "6", "-1"] {
            let said = parse(&format!("queue_replicas = {bad}")).unwrap_err().to_string();
            assert!(said.contains(&format!("queue_replicas: {bad} is not between 1 and 5")), "{said}");
        }
        assert!(parse("queue_replicas = \"three\"").unwrap_err().to_string().contains("invalid type"));
    }

    #[test]
    fn a_retired_pop_token_says_what_replaced_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("origin.toml");
        std::fs::write(&path, "pop_token = \"shared-by-every-pop\"\n").unwrap();
        let said = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(said.contains("unknown field `pop_token`") && said.contains("origin pops enrol"), "{said}");
        let config: Config = Config::for_dir(dir.path());
        assert_eq!(config.key_url, config.public_url, "the key service is the origin unless configured");
        assert_eq!(config.protection, encoder::task::Protection::Both);
    }
}

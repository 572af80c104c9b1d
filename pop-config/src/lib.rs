//! The PoP's configuration and its contract with the origin: listen addresses, TLS, origin
//! URLs, token keys, cache sizes, admission and prefetch policy, upload intake, connection
//! limits; and the signed-token formats both sides speak (`token`).
//!
//! A file (`pop.toml`) is read in one pass into [`PopConfig`], whose fields are typed (socket
//! addresses, byte counts, durations, keys); only `PopConfig` crosses into the edge. Every
//! problem is reported at once, each with its field path ([`ConfigErrors`]). Defaults live in
//! `defaults.rs`, each with its reason.
//!
//! The leaf of the workspace: it depends on no other workspace crate.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod tier;
pub mod tls;
pub mod token;

mod cache;
mod defaults;
mod der;
mod document;
mod error;
mod identity;
mod keys;
mod limits;
mod listen;
mod origin;
mod prefetch;
mod units;
mod uploads;
mod web;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

pub use cache::{Admission, Cache};
pub use error::{ConfigError, ConfigErrors};
pub use identity::Identity;
pub use limits::Limits;

/// The request header a PoP presents its own credential in when it passes a viewer's or
/// creator's request on to the origin (whose `Authorization` is the caller's): it is how the
/// origin knows the `X-Forwarded-For` the PoP set is the address the PoP saw.
pub const RELAY_CREDENTIAL_HEADER: &str = "x-pop-credential";
pub use listen::Listen;
pub use origin::Origin;
pub use prefetch::Prefetch;
pub use tls::{TlsFiles, TlsMaterial};
pub use uploads::Uploads;
pub use web::Web;

use document::{Document, Section};

/// The longest heartbeat interval: the origin takes a PoP out of steering after two intervals
/// of at most this, and a takedown waits for one.
const MAX_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(60);

/// A PoP's validated configuration.
#[derive(Debug, Clone)]
pub struct PopConfig {
    /// `[pop]`: id and region.
    pub pop: Identity,
    /// `[listen]`: HTTPS, HTTP/3 and plain HTTP addresses.
    pub listen: Listen,
    /// `[tls]`: certificate and key files; `None` means the development certificate
    /// (see [`tls::load_or_generate`]).
    pub tls: Option<TlsFiles>,
    /// `[origin]`: URLs, credentials, timeouts.
    pub origin: Origin,
    /// `[[tokens]]`: playback-token and upload-URL verification keys (public), at least one.
    pub tokens: Vec<token::PublicKey>,
    /// `[cache]`: tier sizes and paths.
    pub cache: Cache,
    /// `[admission]`: what is written to disk.
    pub admission: Admission,
    /// `[prefetch]`: the heartbeat with the origin.
    pub prefetch: Prefetch,
    /// `[uploads]`: upload intake.
    pub uploads: Uploads,
    /// `[web]`: the pages, when this PoP serves them.
    pub web: Option<Web>,
    /// `[limits]`: timeouts and connection limits on every listener.
    pub limits: Limits,
}

/// Reads and validates the file at `path`; relative paths in it resolve against its directory.
pub fn load(path: &Path) -> Result<PopConfig, ConfigErrors> {
    let text =
        fs::read_to_string(path).map_err(|e| ConfigErrors::one("", format!("cannot read {}: {e}", path.display())))?;
    let base_dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    parse(&text, base_dir)
}

/// Validates configuration text; relative paths in it resolve against `base_dir`.
pub fn parse(text: &str, base_dir: &Path) -> Result<PopConfig, ConfigErrors> {
    let doc = Document::new(text, base_dir);
    let table = doc.parse()?;
    let mut root = Section::root(&doc, &table);
    let pop = identity::read(root.section("pop"));
    let listen = listen::read(root.section("listen"));
    let tls = root.optional_section("tls").and_then(tls::read);
    let origin = origin::read(root.section("origin"));
    let limits = limits::read(root.section("limits"), origin.request_timeout);
    let config = PopConfig {
        pop,
        listen,
        tls,
        origin,
        tokens: keys::read(&mut root),
        cache: cache::read(root.section("cache")),
        admission: cache::read_admission(root.section("admission")),
        prefetch: prefetch::read(root.section("prefetch")),
        uploads: uploads::read(root.section("uploads")),
        web: root.optional_section("web").and_then(web::read),
        limits,
    };
    if !config.origin.credential.is_empty() && config.origin.credential_pop() != config.pop.id {
        root.report(
            "origin.credential",
            format!(
                "issued to PoP `{}` but this is `{}` ([pop] id): each PoP has its own credential",
                config.origin.credential_pop(),
                config.pop.id
            ),
        );
    }
    let (lag, beat) = (config.origin.max_purge_lag, config.prefetch.heartbeat);
    if !lag.is_zero() && lag < 2 * beat + config.origin.request_timeout {
        root.report(
            "origin.max_purge_lag_ms",
            format!(
                "{lag:?} would stop serving between ordinary heartbeats ({beat:?}): give at least two beats and the \
                 request timeout, or 0 for no limit"
            ),
        );
    }
    if beat > MAX_HEARTBEAT {
        root.report(
            "prefetch.heartbeat",
            format!("at most {MAX_HEARTBEAT:?}: the origin judges a PoP silent after two beats of at most that"),
        );
    }
    if config.pop.partner && config.web.is_some() {
        root.report("web", "a partner PoP ([pop] partner = true) serves no pages: remove [web]");
    }
    root.finish();
    doc.finish(config)
}

impl PopConfig {
    /// A PoP run in-process (tests, embedded runs): every default, except that HTTPS and
    /// HTTP/3 and the metrics listener use ephemeral loopback ports, and the cache (with the
    /// development certificate) lives in `dir` with small tiers. Set `listen.http` for plain
    /// HTTP.
    /// The PoP's id is the one its `credential` names (`{pop id}.{secret}`).
    pub fn default_for(dir: &Path, origin_url: &str, credential: &str, tokens: Vec<token::PublicKey>) -> Self {
        let ephemeral = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let id = credential.split_once('.').map_or(defaults::POP_ID, |(id, _)| id);
        Self {
            pop: Identity {
                id: id.to_owned(),
                region: defaults::POP_REGION.to_owned(),
                partner: false,
                public_url: None,
            },
            listen: Listen { https: ephemeral, h3: Some(ephemeral), http: None, metrics: Some(ephemeral) },
            tls: None,
            origin: Origin {
                urls: vec![origin_url.trim_end_matches('/').to_owned()],
                credential: credential.to_owned(),
                connect_timeout: defaults::ORIGIN_CONNECT_TIMEOUT,
                request_timeout: defaults::ORIGIN_REQUEST_TIMEOUT,
                retries: defaults::ORIGIN_RETRIES,
                parents: Vec::new(),
                max_purge_lag: defaults::MAX_PURGE_LAG,
            },
            tokens,
            cache: Cache {
                memory: defaults::EMBEDDED_CACHE_MEMORY,
                disk: defaults::EMBEDDED_CACHE_DISK,
                path: dir.to_owned(),
                block: defaults::CACHE_BLOCK,
                playlist_stale: defaults::CACHE_PLAYLIST_STALE,
                not_found_ttl: defaults::CACHE_NOT_FOUND_TTL,
            },
            admission: Admission { min_uses: defaults::ADMISSION_MIN_USES, window: defaults::ADMISSION_WINDOW },
            prefetch: Prefetch {
                enabled: defaults::PREFETCH_ENABLED,
                heartbeat: defaults::PREFETCH_HEARTBEAT,
                top_n: defaults::PREFETCH_TOP_N,
                readahead: defaults::PREFETCH_READAHEAD,
                readahead_continue_percent: defaults::PREFETCH_READAHEAD_CONTINUE_PERCENT,
            },
            uploads: Uploads { enabled: defaults::UPLOADS_ENABLED, max_size: defaults::UPLOADS_MAX_SIZE },
            web: None,
            limits: Limits::default(),
        }
    }
}

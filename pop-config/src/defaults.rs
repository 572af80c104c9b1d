//! Every default, in one place, each with the reason for its value. They describe a PoP on a
//! laptop next to a local origin; production files override what differs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// One PoP per laptop; production names each PoP so logs and reports tell them apart.
pub(crate) const POP_ID: &str = "pop-local";
/// Same reason as the id.
pub(crate) const POP_REGION: &str = "local";

/// Loopback so a development PoP is not exposed on the network; 8443 needs no privileges.
pub(crate) const LISTEN_HTTPS: SocketAddr = SocketAddr::new(LOOPBACK, 8443);
// `listen.h3` defaults to `listen.https`'s address: Alt-Svc advertises HTTP/3 by port, and one
// number for both (TCP and UDP do not clash) is what browsers and operators expect.
// `listen.http` defaults to absent: plain HTTP is for local tools only, so it is opt-in.
/// Metrics say what a PoP serves and to whom: loopback keeps them off the network, and 9464 is
/// the Prometheus exporter port convention. Scrapers elsewhere get a private address.
pub(crate) const LISTEN_METRICS: SocketAddr = SocketAddr::new(LOOPBACK, 9464);

/// Where the origin listens by default.
pub(crate) const ORIGIN_URL: &str = "http://127.0.0.1:8080";
/// A reachable origin accepts a connection in milliseconds; after 2 s trying the next is faster.
pub(crate) const ORIGIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Generous enough for a large segment on a slow link, short enough that viewers are not left hanging.
pub(crate) const ORIGIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Two more attempts ride out a restart or one bad origin without multiplying load during an outage.
pub(crate) const ORIGIN_RETRIES: u32 = 2;
/// Five minutes of serving without hearing about takedowns: long enough to ride out an origin
/// failover or a short partition, short enough that a legal takedown is not served for long by
/// a PoP cut off from its control plane (which steering stops sending viewers to anyway).
pub(crate) const MAX_PURGE_LAG: Duration = Duration::from_secs(300);

/// Holds a few hundred segments of the hot set on a laptop without crowding it.
pub(crate) const CACHE_MEMORY: u64 = 256 * MIB;
/// Several hours of video across the ladder; small enough for a laptop disk.
pub(crate) const CACHE_DISK: u64 = 4 * GIB;
/// An in-process PoP (tests, embedded runs) shares the machine with everything else it runs.
pub(crate) const EMBEDDED_CACHE_MEMORY: u64 = 64 * MIB;
/// foyer sizes its files to the full capacity up front; keep a test's footprint small.
pub(crate) const EMBEDDED_CACHE_DISK: u64 = 256 * MIB;
/// Relative to the configuration file, so a checkout keeps its cache beside its config.
pub(crate) const CACHE_PATH: &str = "data/edge-cache";
/// foyer's own default; above any 2–6 s segment at the ladder's top bitrate.
pub(crate) const CACHE_BLOCK: u64 = 16 * MIB;
/// A live playlist served 5 minutes stale beats an error while the origin recovers.
pub(crate) const CACHE_PLAYLIST_STALE: Duration = Duration::from_secs(300);
/// A burst of requests for a missing object costs the origin one a few seconds, and a video
/// that becomes ready is playable here a few seconds later at worst.
pub(crate) const CACHE_NOT_FOUND_TTL: Duration = Duration::from_secs(5);

/// One-hit wonders are most of a video catalogue's long tail; a second request shows interest.
pub(crate) const ADMISSION_MIN_USES: u32 = 2;
/// Long enough to see a viewer come back to a segment, short enough to forget yesterday's tail.
pub(crate) const ADMISSION_WINDOW: Duration = Duration::from_secs(600);

/// Prefetching the next segments is what keeps a PoP's first viewer from waiting on the origin.
pub(crate) const PREFETCH_ENABLED: bool = true;
/// Purges reach every PoP within seconds, and popularity reports stay cheap for the origin.
pub(crate) const PREFETCH_HEARTBEAT: Duration = Duration::from_secs(3);
/// The head of a catalogue draws most views; twenty objects cover it and keep each report small.
pub(crate) const PREFETCH_TOP_N: u32 = 20;
/// One segment ahead is fetched while the viewer plays the current one (a few seconds of
/// lead); more would cost origin bytes for viewers who stop.
pub(crate) const PREFETCH_READAHEAD: u32 = 1;
/// Read ahead only where a segment request is followed by the next more often than not:
/// below that, a prefetched segment is more likely wasted than watched.
pub(crate) const PREFETCH_READAHEAD_CONTINUE_PERCENT: u32 = 50;

/// Uploads are the platform's way in; a PoP near the creator makes them faster.
pub(crate) const UPLOADS_ENABLED: bool = true;
/// An hour of 1080p from a phone fits; larger files belong on a dedicated intake.
pub(crate) const UPLOADS_MAX_SIZE: u64 = GIB;

/// A PoP server holds tens of thousands of sockets; this bounds memory and file descriptors
/// well inside a default `ulimit -n` of 65536 (the disk tier and the origin need some too).
pub(crate) const LIMITS_MAX_CONNECTIONS: u32 = 20_000;
/// Browsers open at most 6 HTTP/1.1 connections per site and one for h2 or h3; carrier NAT
/// puts many households behind one address, so the bound is generous but still keeps one
/// host from taking the whole PoP.
pub(crate) const LIMITS_MAX_CONNECTIONS_PER_ADDRESS: u32 = 256;
/// RFC 9113 recommends no fewer than 100; a player has a handful of requests in flight.
pub(crate) const LIMITS_MAX_STREAMS_PER_CONNECTION: u32 = 100;
/// nginx's default total for request headers (4 × 8 KiB); a token path and tus metadata fit
/// with room to spare.
pub(crate) const LIMITS_MAX_HEADER_BYTES: u64 = 32 << 10;
/// A phone on a poor link finishes a TLS handshake and its headers in a few seconds; holding a
/// socket longer for them is what slowloris counts on.
pub(crate) const LIMITS_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Players ask every 2 to 6 s, so their connections stay; nginx keeps idle ones 75 s. It must
/// outlast `origin.request_timeout` (15 s), checked at load.
pub(crate) const LIMITS_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A mobile upload may stall for a handoff between cells; a body silent longer than this
/// holds the origin's upload lock for nothing.
pub(crate) const LIMITS_BODY_TIMEOUT: Duration = Duration::from_secs(30);

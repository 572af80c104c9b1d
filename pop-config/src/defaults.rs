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

/// Where the origin listens by default.
pub(crate) const ORIGIN_URL: &str = "http://127.0.0.1:8080";
/// A reachable origin accepts a connection in milliseconds; after 2 s trying the next is faster.
pub(crate) const ORIGIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Generous enough for a large segment on a slow link, short enough that viewers are not left hanging.
pub(crate) const ORIGIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Two more attempts ride out a restart or one bad origin without multiplying load during an outage.
pub(crate) const ORIGIN_RETRIES: u32 = 2;

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

/// One-hit wonders are most of a video catalogue's long tail; a second request shows interest.
pub(crate) const ADMISSION_MIN_USES: u32 = 2;
/// Long enough to see a viewer come back to a segment, short enough to forget yesterday's tail.
pub(crate) const ADMISSION_WINDOW: Duration = Duration::from_secs(600);

/// Prefetching the next segments is what keeps a PoP's first viewer from waiting on the origin.
pub(crate) const PREFETCH_ENABLED: bool = true;
/// Purges reach every PoP within seconds, and popularity reports stay cheap for the origin.
pub(crate) const PREFETCH_HEARTBEAT: Duration = Duration::from_secs(10);
/// The head of a catalogue draws most views; twenty objects cover it and keep each report small.
pub(crate) const PREFETCH_TOP_N: u32 = 20;

/// Uploads are the platform's way in; a PoP near the creator makes them faster.
pub(crate) const UPLOADS_ENABLED: bool = true;
/// An hour of 1080p from a phone fits; larger files belong on a dedicated intake.
pub(crate) const UPLOADS_MAX_SIZE: u64 = GIB;

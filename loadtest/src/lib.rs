//! The load-test harness operators run against a PoP before it takes traffic: virtual viewers
//! that arrive as a Poisson process, pick videos by Zipf popularity and play HLS like a player
//! (master, media playlists, init, key, segments, throughput ABR, seeks, abandons, content
//! steering with failover between PoPs) over HTTP/1.1, HTTP/2 or HTTP/3, optional tus uploads
//! at the same time, and a report with the numbers a PoP is judged by, plus a cost projection
//! to the reference scale. With `--trace` it keeps the run's request trace, which `replay`
//! plays through LRU, S3-FIFO and Belady beside the PoP's own cache ("cache vs optimum").
//!
//! It is a pure HTTP client: it depends on no other workspace crate (checked by
//! `tests/tests/architecture.rs`), so it measures a PoP exactly as a stranger would.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod abr;
pub mod arrivals;
pub mod buffer;
pub mod catalogue;
pub mod cli;
pub mod client;
pub mod clip;
pub mod cost;
pub mod egress;
pub mod error;
pub mod hls;
pub mod popularity;
pub mod progress;
pub mod record;
pub mod replay;
pub mod report;
pub mod run;
pub mod scenario;
pub mod session;
pub mod steering;
pub mod stop;
pub mod summary;
pub mod synth;
pub mod tls;
pub mod trace;
pub mod units;
pub mod upload;
pub mod viewer;

pub use error::{Error, Result};
pub use run::{RunOptions, run};
pub use scenario::Scenario;

//! What just-in-time encoding costs and how it performs, so the cost model reads measured
//! figures (`loadtest cost`) instead of assumptions.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// The on-demand metrics (`origin_` prefix).
#[derive(Debug, Clone)]
pub struct OnDemandMetrics {
    /// CPU seconds spent encoding, by reason (`upload`, `jit`, `lookahead`, `promotion`).
    pub encode_cpu: Family<Labels, Counter<f64, AtomicU64>>,
    /// Segments encoded, by reason.
    pub segments: Family<Labels, Counter>,
    /// Bytes in storage, by kind (`original`, `encode_index`, `floor`, `materialised`).
    pub stored_bytes: Family<Labels, Gauge>,
    /// Rungs by materialisation state.
    pub rungs: Family<Labels, Gauge>,
    /// Videos with recorded rungs (ready, not taken down): what per-video costs divide by.
    pub videos: Gauge,
    /// From a viewer's request to the first byte of a just-in-time segment.
    pub first_byte: Histogram,
    /// From a viewer's request to the last byte.
    pub last_byte: Histogram,
    /// Segment requests answered by the on-demand path, by outcome (`encoded`: this request
    /// started the encode, `joined`: it joined one in flight, `recent`: another node or the
    /// look-ahead had just stored it, `refused`, `failed`).
    pub requests: Family<Labels, Counter>,
    /// Videos promoted, and videos whose segments were evicted.
    pub transitions: Family<Labels, Counter>,
}

impl Default for OnDemandMetrics {
    fn default() -> Self {
        let seconds = || Histogram::new(exponential_buckets(0.01, 1.6, 16));
        Self {
            encode_cpu: Family::default(),
            segments: Family::default(),
            stored_bytes: Family::default(),
            rungs: Family::default(),
            videos: Gauge::default(),
            first_byte: seconds(),
            last_byte: seconds(),
            requests: Family::default(),
            transitions: Family::default(),
        }
    }
}

impl OnDemandMetrics {
    /// Registers every metric.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("encode_cpu_seconds", "CPU seconds spent encoding, by reason", self.encode_cpu.clone());
        registry.register("segments_encoded", "Segments encoded on demand, by reason", self.segments.clone());
        registry.register("stored_bytes", "Bytes in blob storage, by kind", self.stored_bytes.clone());
        registry.register("rungs", "Rungs by materialisation state", self.rungs.clone());
        registry.register("catalogue_videos", "Ready videos with recorded rungs", self.videos.clone());
        registry.register(
            "jit_first_byte_seconds",
            "Request to first byte of a just-in-time segment",
            self.first_byte.clone(),
        );
        registry.register(
            "jit_last_byte_seconds",
            "Request to last byte of a just-in-time segment",
            self.last_byte.clone(),
        );
        registry.register("jit_requests", "Segment requests on the on-demand path, by outcome", self.requests.clone());
        registry.register("materialisation", "Promotions and evictions", self.transitions.clone());
    }

    /// Counts CPU seconds for `reason`.
    pub fn cpu(&self, reason: &str, seconds: f64) {
        if seconds > 0.0 {
            self.encode_cpu.get_or_create(&vec![("reason", reason.to_owned())]).inc_by(seconds);
        }
    }

    /// Counts a request outcome.
    pub fn request(&self, outcome: &str) {
        self.requests.get_or_create(&vec![("outcome", outcome.to_owned())]).inc();
    }
}

//! The PoP's Prometheus metrics (`edge_` prefix), rendered at `/metrics` on the metrics
//! listener (`listen.metrics`), never on the viewers' listeners.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A metric's label pairs.
pub type Labels = Vec<(&'static str, &'static str)>;

/// Every metric the edge exports.
#[derive(Debug)]
pub struct EdgeMetrics {
    registry: Registry,
    /// Lookups by result (hit/miss/stale/pass) and tier.
    pub lookups: Family<Labels, Counter>,
    /// Bytes sent to viewers, by tier (memory, disk, origin).
    pub bytes: Family<Labels, Counter>,
    /// Origin fetches started, by outcome.
    pub origin_fetches: Family<Labels, Counter>,
    /// Moves to the next origin URL after one failed, by route (object, passthrough, heartbeat).
    pub origin_failovers: Family<Labels, Counter>,
    /// Time to the origin's response headers.
    pub origin_latency: Histogram,
    /// Requests by HTTP version (h1, h2, h3) and status class.
    pub requests: Family<Labels, Counter>,
    /// Body bytes received from the origin.
    pub origin_bytes: Counter,
    /// Writes of the purge state, by outcome (ok, failed).
    pub purge_writes: Family<Labels, Counter>,
    /// 1 while a takedown is held in memory only (it would be served again after a restart).
    pub purges_not_durable: Gauge,
    /// Viewer connections open (TCP and QUIC).
    pub connections_open: Gauge,
    /// Connections refused on arrival, by reason (capacity, per_address).
    pub connections_refused: Family<Labels, Counter>,
    /// Connections and requests cut off by a limit, by kind (handshake, header, idle, body).
    pub timeouts: Family<Labels, Counter>,
}

impl Default for EdgeMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("edge");
        let lookups = Family::<Labels, Counter>::default();
        let bytes = Family::<Labels, Counter>::default();
        let origin_fetches = Family::<Labels, Counter>::default();
        let origin_failovers = Family::<Labels, Counter>::default();
        let origin_latency = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let requests = Family::<Labels, Counter>::default();
        registry.register("cache_lookups", "Cache lookups by result and tier", lookups.clone());
        registry.register("served_bytes", "Bytes sent to viewers by tier", bytes.clone());
        registry.register("origin_fetches", "Origin fetches by outcome", origin_fetches.clone());
        registry.register(
            "origin_failovers",
            "Moves to the next origin URL after one failed, by route",
            origin_failovers.clone(),
        );
        registry.register("origin_fetch_duration_seconds", "Time to the origin's headers", origin_latency.clone());
        registry.register("requests", "Requests by HTTP version (h1, h2, h3) and status class", requests.clone());
        let origin_bytes = Counter::default();
        let purge_writes = Family::<Labels, Counter>::default();
        let purges_not_durable = Gauge::default();
        let connections_open = Gauge::default();
        let connections_refused = Family::<Labels, Counter>::default();
        let timeouts = Family::<Labels, Counter>::default();
        registry.register("origin_bytes", "Body bytes received from the origin", origin_bytes.clone());
        registry.register("purge_writes", "Writes of the purge state by outcome", purge_writes.clone());
        registry.register(
            "purges_not_durable",
            "1 while a takedown is held in memory only",
            purges_not_durable.clone(),
        );
        registry.register("connections_open", "Viewer connections open (TCP and QUIC)", connections_open.clone());
        registry.register(
            "connections_refused",
            "Connections refused on arrival by reason",
            connections_refused.clone(),
        );
        registry.register("timeouts", "Connections and requests cut off by a limit, by kind", timeouts.clone());
        Self {
            registry,
            lookups,
            bytes,
            origin_fetches,
            origin_failovers,
            origin_latency,
            requests,
            origin_bytes,
            purge_writes,
            purges_not_durable,
            connections_open,
            connections_refused,
            timeouts,
        }
    }
}

impl EdgeMetrics {
    /// Counts a lookup.
    pub fn lookup(&self, result: &'static str, tier: &'static str) {
        self.lookups.get_or_create(&vec![("result", result), ("tier", tier)]).inc();
    }

    /// Counts bytes sent from a tier.
    pub fn served(&self, tier: &'static str, n: u64) {
        self.bytes.get_or_create(&vec![("tier", tier)]).inc_by(n);
    }

    /// Counts a connection or request cut off by a limit.
    pub fn timeout(&self, kind: &'static str) {
        self.timeouts.get_or_create(&vec![("kind", kind)]).inc();
    }

    /// Counts a request.
    pub fn request(&self, protocol: &'static str, status: u16) {
        let class = match status {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests.get_or_create(&vec![("protocol", protocol), ("class", class)]).inc();
    }

    /// Text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

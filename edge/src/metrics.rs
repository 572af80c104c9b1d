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

/// Where a response's bytes came from: a tier of this PoP's cache, or upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The memory tier.
    Memory = 0,
    /// The disk tier.
    Disk = 1,
    /// The origin (or a parent PoP), streamed through.
    Origin = 2,
}

impl Source {
    const ALL: [Self; 3] = [Self::Memory, Self::Disk, Self::Origin];

    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Disk => "disk",
            Self::Origin => "origin",
        }
    }
}

impl From<crate::cache::Tier> for Source {
    fn from(t: crate::cache::Tier) -> Self {
        match t {
            crate::cache::Tier::Memory => Self::Memory,
            crate::cache::Tier::Disk => Self::Disk,
        }
    }
}

/// What a cache lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A fresh object.
    Hit(crate::cache::Tier),
    /// The origin's remembered 404.
    Negative(crate::cache::Tier),
    /// A stale copy, asked for again and renewed.
    Revalidated(crate::cache::Tier),
    /// A stale copy served because the upstream failed.
    Stale(crate::cache::Tier),
    /// Nothing: fetched upstream.
    Miss,
}

impl Lookup {
    const ALL: [Self; 9] = {
        use crate::cache::Tier::{Disk, Memory};
        [
            Self::Hit(Memory),
            Self::Hit(Disk),
            Self::Negative(Memory),
            Self::Negative(Disk),
            Self::Revalidated(Memory),
            Self::Revalidated(Disk),
            Self::Stale(Memory),
            Self::Stale(Disk),
            Self::Miss,
        ]
    };

    fn index(self) -> usize {
        let tier = |t: crate::cache::Tier| t as usize;
        match self {
            Self::Hit(t) => tier(t),
            Self::Negative(t) => 2 + tier(t),
            Self::Revalidated(t) => 4 + tier(t),
            Self::Stale(t) => 6 + tier(t),
            Self::Miss => 8,
        }
    }

    fn labels(self) -> Labels {
        let (result, tier) = match self {
            Self::Hit(t) => ("hit", t.as_str()),
            Self::Negative(t) => ("negative", t.as_str()),
            Self::Revalidated(t) => ("revalidated", t.as_str()),
            Self::Stale(t) => ("stale", t.as_str()),
            Self::Miss => ("miss", "origin"),
        };
        vec![("result", result), ("tier", tier)]
    }
}

/// The HTTP version a request was spoken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.1 (or 1.0).
    H1 = 0,
    /// HTTP/2.
    H2 = 1,
    /// HTTP/3.
    H3 = 2,
}

impl Version {
    const ALL: [Self; 3] = [Self::H1, Self::H2, Self::H3];

    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::H1 => "h1",
            Self::H2 => "h2",
            Self::H3 => "h3",
        }
    }
}

const CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// How an origin fetch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// `200`: the object came.
    Ok = 0,
    /// An answer that is not the object (404, 410, 5xx ...).
    Refused = 1,
    /// No answer, or a broken one.
    Error = 2,
}

/// The counters every request touches, resolved once at start: a request costs an atomic add
/// each, not a label vector, a hash and a lock.
#[derive(Debug)]
struct Resolved {
    lookups: [Counter; 9],
    served: [Counter; 3],
    requests: [[Counter; 4]; 3],
    fetches: [Counter; 3],
}

impl Resolved {
    fn new(
        lookups: &Family<Labels, Counter>,
        served: &Family<Labels, Counter>,
        requests: &Family<Labels, Counter>,
        fetches: &Family<Labels, Counter>,
    ) -> Self {
        Self {
            lookups: Lookup::ALL.map(|l| lookups.get_or_create(&l.labels()).clone()),
            served: Source::ALL.map(|f| served.get_or_create(&vec![("tier", f.as_str())]).clone()),
            requests: Version::ALL.map(|v| {
                CLASSES.map(|class| requests.get_or_create(&vec![("protocol", v.as_str()), ("class", class)]).clone())
            }),
            fetches: ["ok", "refused", "error"]
                .map(|outcome| fetches.get_or_create(&vec![("outcome", outcome)]).clone()),
        }
    }
}

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
    /// Segments asked for ahead of a viewer, not cached (`readahead.rs`; one already on its
    /// way is joined, not fetched twice).
    pub read_ahead: Counter,
    resolved: Resolved,
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
        let read_ahead = Counter::default();
        registry.register("read_ahead", "Segments fetched ahead of a viewer", read_ahead.clone());
        let resolved = Resolved::new(&lookups, &bytes, &requests, &origin_fetches);
        Self {
            read_ahead,
            resolved,
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
    pub fn lookup(&self, lookup: Lookup) {
        self.resolved.lookups[lookup.index()].inc();
    }

    /// Counts bytes sent to viewers.
    pub fn served(&self, from: Source, n: u64) {
        self.resolved.served[from as usize].inc_by(n);
    }

    /// Counts an origin fetch's end.
    pub fn fetched(&self, outcome: Fetched) {
        self.resolved.fetches[outcome as usize].inc();
    }

    /// Counts a connection or request cut off by a limit.
    pub fn timeout(&self, kind: &'static str) {
        self.timeouts.get_or_create(&vec![("kind", kind)]).inc();
    }

    /// Counts a request.
    pub fn request(&self, version: Version, status: u16) {
        let class = match status {
            200..=299 => 0,
            300..=399 => 1,
            400..=499 => 2,
            _ => 3,
        };
        self.resolved.requests[version as usize][class].inc();
    }

    /// Text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Tier;

    #[test]
    fn resolved_counters_are_the_exported_series() {
        let m = EdgeMetrics::default();
        m.lookup(Lookup::Hit(Tier::Disk));
        m.lookup(Lookup::Miss);
        m.lookup(Lookup::Miss);
        m.served(Source::Origin, 7);
        m.request(Version::H3, 404);
        m.fetched(Fetched::Refused);
        let text = m.render();
        for line in [
            "edge_cache_lookups_total{result=\"hit\",tier=\"disk\"} 1",
            "edge_cache_lookups_total{result=\"miss\",tier=\"origin\"} 2",
            "edge_cache_lookups_total{result=\"stale\",tier=\"memory\"} 0",
            "edge_served_bytes_total{tier=\"origin\"} 7",
            "edge_requests_total{protocol=\"h3\",class=\"4xx\"} 1",
            "edge_origin_fetches_total{outcome=\"refused\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        let distinct: std::collections::HashSet<usize> = Lookup::ALL.iter().map(|l| l.index()).collect();
        assert_eq!(distinct.len(), Lookup::ALL.len());
    }
}

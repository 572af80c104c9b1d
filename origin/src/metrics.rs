//! The origin's Prometheus metrics (`origin_` prefix), rendered at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// What the HTTP server does with connections (shared by the API and metrics listeners).
#[derive(Debug, Clone, Default)]
pub struct ConnectionMetrics {
    /// Connections open now.
    pub open: Gauge,
    /// Connections closed at accept, by reason (`full`, `per_address`).
    pub refused: Family<Labels, Counter>,
    /// Connections closed for idling, by reason (`first_request`, `idle`).
    pub closed_idle: Family<Labels, Counter>,
    /// Request bodies cut because the client stopped sending.
    pub body_stalls: Counter,
}

/// Every metric the origin exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route and status.
    pub requests: Family<Labels, Counter>,
    /// Request latency by route.
    pub latency: Family<Labels, Histogram>,
    /// Upload bytes made durable.
    pub upload_bytes: Counter,
    /// Jobs finished by outcome.
    pub jobs: Family<Labels, Counter>,
    /// Encoder tasks run by this process's workers, by kind and outcome.
    pub tasks: Family<Labels, Counter>,
    /// Jobs this process is driving now.
    pub jobs_running: Gauge,
    /// Bytes of objects served.
    pub served_bytes: Counter,
    /// Connections.
    pub connections: ConnectionMetrics,
    /// Server-sent event streams open now.
    pub sse_streams: Gauge,
    /// Event streams refused, by reason (`full`, `per_address`).
    pub sse_refused: Family<Labels, Counter>,
    /// Webhook delivery attempts, by outcome (`done`: delivered or nothing left to deliver,
    /// `retry`, `refused`: the target is not allowed).
    pub webhooks: Family<Labels, Counter>,
    /// Just-in-time encoding.
    pub on_demand: crate::ondemand::metrics::OnDemandMetrics,
    /// Key service answers, by kind (`aes128`, `clearkey`) and outcome (`issued` or the
    /// refusal's code).
    pub keys: Family<Labels, Counter>,
    /// Queue messages settled, by consumer and verdict (`queue::consume`).
    pub queue_messages: crate::queue::consume::Outcomes,
    /// Content steering manifests served, by kind (`hls`, `dash`).
    pub steering_manifests: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("origin");
        let requests = Family::<Labels, Counter>::default();
        let latency =
            Family::<Labels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16)));
        let upload_bytes = Counter::default();
        let jobs = Family::<Labels, Counter>::default();
        let tasks = Family::<Labels, Counter>::default();
        let jobs_running = Gauge::default();
        let served_bytes = Counter::default();
        let connections = ConnectionMetrics::default();
        let sse_streams = Gauge::default();
        let sse_refused = Family::<Labels, Counter>::default();
        let webhooks = Family::<Labels, Counter>::default();
        let keys = Family::<Labels, Counter>::default();
        let queue_messages = crate::queue::consume::Outcomes::default();
        let steering_manifests = Family::<Labels, Counter>::default();
        registry.register(
            "steering_manifests",
            "Content steering manifests served, by kind (hls, dash)",
            steering_manifests.clone(),
        );
        registry.register(
            "queue_messages",
            "Queue messages settled, by consumer and verdict (ack, retry, pass, dead, given_back)",
            queue_messages.clone(),
        );
        registry.register("keys", "Key service answers, by kind and outcome (issued or refusal code)", keys.clone());
        registry.register("http_requests", "HTTP requests by route and status", requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency", latency.clone());
        registry.register("upload_bytes", "Upload bytes acknowledged (durable)", upload_bytes.clone());
        registry.register("jobs", "Transcoding jobs finished, by outcome", jobs.clone());
        registry.register("tasks", "Encoder tasks run by this process, by kind and outcome", tasks.clone());
        registry.register("jobs_running", "Jobs this process is driving", jobs_running.clone());
        registry.register("served_bytes", "Object bytes served", served_bytes.clone());
        registry.register("connections_open", "HTTP connections open", connections.open.clone());
        registry.register(
            "connections_refused",
            "Connections closed at accept, by reason",
            connections.refused.clone(),
        );
        registry.register(
            "connections_idle_closed",
            "Connections closed for idling, by reason",
            connections.closed_idle.clone(),
        );
        registry.register(
            "request_body_stalls",
            "Request bodies cut after the body timeout",
            connections.body_stalls.clone(),
        );
        registry.register("sse_streams_open", "Server-sent event streams open", sse_streams.clone());
        registry.register("sse_streams_refused", "Event streams refused, by reason", sse_refused.clone());
        registry.register("webhook_deliveries", "Webhook delivery attempts, by outcome", webhooks.clone());
        let on_demand = crate::ondemand::metrics::OnDemandMetrics::default();
        on_demand.register(&mut registry);
        Self {
            on_demand,
            registry,
            requests,
            latency,
            upload_bytes,
            jobs,
            tasks,
            jobs_running,
            served_bytes,
            connections,
            sse_streams,
            sse_refused,
            webhooks,
            keys,
            queue_messages,
            steering_manifests,
        }
    }
}

impl Metrics {
    /// Records one finished request.
    pub fn request(&self, route: &'static str, status: u16, seconds: f64) {
        self.requests.get_or_create(&vec![("route", route.to_owned()), ("status", status.to_string())]).inc();
        self.latency.get_or_create(&vec![("route", route.to_owned())]).observe(seconds);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

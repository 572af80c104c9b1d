//! The origin's Prometheus metrics (`origin_` prefix), rendered at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

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
        registry.register("http_requests", "HTTP requests by route and status", requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency", latency.clone());
        registry.register("upload_bytes", "Upload bytes acknowledged (durable)", upload_bytes.clone());
        registry.register("jobs", "Transcoding jobs finished, by outcome", jobs.clone());
        registry.register("tasks", "Encoder tasks run by this process, by kind and outcome", tasks.clone());
        registry.register("jobs_running", "Jobs this process is driving", jobs_running.clone());
        registry.register("served_bytes", "Object bytes served", served_bytes.clone());
        Self { registry, requests, latency, upload_bytes, jobs, tasks, jobs_running, served_bytes }
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

//! One request's context: what the pipeline learned about a request as it went (the HTTP
//! version it came in, what the cache lookup found, how the object was served), turned by one
//! final step into the response's cache headers, the metrics and the log line. The phases in
//! `flow.rs` fill it in; none of them writes a cache header or a request metric itself, so
//! every response is counted once and says the same in its headers as in the metrics.

use std::time::Instant;

use http::{HeaderValue, header};

use crate::Edge;
use crate::metrics::{Lookup, Version};
use crate::object::Head;
use crate::respond::Response;
use crate::status::{Dating, Served};

/// What one request did.
#[derive(Debug)]
pub struct Exchange {
    started: Instant,
    version: Version,
    lookup: Option<Lookup>,
    delivery: Option<(Served, Dating)>,
    /// The `CDN-Loop` a child PoP's request came with.
    via: Option<String>,
}

impl Exchange {
    /// A request that has just arrived in `version`.
    pub fn new(version: Version) -> Self {
        Self { started: Instant::now(), version, lookup: None, delivery: None, via: None }
    }

    /// A child PoP's request, with the `CDN-Loop` it came with: the flights it starts pass it on.
    pub fn came_via(&mut self, via: Option<&str>) {
        self.via = via.map(str::to_owned);
    }

    /// The `CDN-Loop` the request came with, if a child PoP sent it.
    pub fn via(&self) -> Option<&str> {
        self.via.as_deref()
    }

    /// The HTTP version it came in.
    pub fn version(&self) -> Version {
        self.version
    }

    /// What the cache lookup found.
    pub fn looked_up(&mut self, lookup: Lookup) {
        self.lookup = Some(lookup);
    }

    /// The object answered with `head` was served as `served` (a hit, stale, or forwarded).
    pub fn served(&mut self, served: Served, head: &Head) {
        self.delivery = Some((served, Dating::of(head)));
    }

    /// The final step: the headers every response carries, the cache headers of a served
    /// object, the request's metrics, its heartbeat count and its log line.
    pub fn finish(self, edge: &Edge, response: &mut Response) {
        let status = response.status().as_u16();
        let headers = response.headers_mut();
        let stamp = &edge.stamp;
        if let Some(alt) = &stamp.alt_svc {
            headers.insert(header::ALT_SVC, alt.clone());
        }
        headers.insert("x-pop", stamp.pop.clone());
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        let cache = self.delivery.as_ref().map(|(served, dating)| {
            let now = crate::now_ms();
            headers.insert("x-cache", HeaderValue::from_static(served.x_cache()));
            if let Ok(v) = HeaderValue::try_from(served.cache_status(&edge.pop_id, dating, now)) {
                headers.insert("cache-status", v);
            }
            // How long ago the origin answered: a child PoP dates its copy by it.
            headers.insert(header::AGE, HeaderValue::from(crate::status::age_secs(dating.fetched_at, now)));
            served.x_cache()
        });
        edge.metrics.request(self.version, status);
        if let Some(lookup) = self.lookup {
            edge.metrics.lookup(lookup);
        }
        // A 503 with Retry-After is the origin busy making the object, not this PoP failing.
        let busy = headers.contains_key(header::RETRY_AFTER);
        edge.beat_counts.count(status >= 500 && !busy);
        let ms = self.started.elapsed().as_secs_f64() * 1e3;
        tracing::debug!(status, cache, head_ms = ms, "answered");
    }
}

/// The headers that are the same on every response of this PoP, made once.
#[derive(Debug)]
pub struct Stamp {
    pop: HeaderValue,
    alt_svc: Option<HeaderValue>,
}

impl Stamp {
    /// For PoP `pop`, advertising HTTP/3 on `h3_port` when it listens.
    pub fn new(pop: &str, h3_port: Option<u16>) -> Self {
        Self {
            // A PoP id is checked by pop-config (a DNS label); a bad one would be left out.
            pop: HeaderValue::from_str(pop).unwrap_or_else(|_| HeaderValue::from_static("-")),
            alt_svc: h3_port.and_then(|p| HeaderValue::try_from(format!("h3=\":{p}\"; ma=86400")).ok()),
        }
    }
}

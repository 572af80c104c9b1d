//! The origin, seen from a PoP: objects by path with the PoP's own credential, the video API
//! passed through, uploads forwarded. Bounded connect and read timeouts; retries (on the next
//! origin URL) only before the first byte, and only for errors a retry can fix.

use std::time::Duration;

use crate::error::EdgeError;

/// How to reach the origin(s).
#[derive(Debug, Clone)]
pub struct Upstream {
    client: reqwest::Client,
    passthrough: reqwest::Client,
    origins: Vec<String>,
    credential: String,
    retries: u32,
}

impl Upstream {
    /// A client for `origins` (tried in order), presenting this PoP's `credential`.
    pub fn new(origins: Vec<String>, credential: String, connect: Duration, read: Duration, retries: u32) -> Self {
        let builder =
            || reqwest::Client::builder().connect_timeout(connect).pool_max_idle_per_host(64).tcp_nodelay(true);
        let client = builder().read_timeout(read).build().expect("http client");
        // A read timeout would also run while a request body is still being sent, cutting off
        // an upload that takes longer than `read` to arrive; the pass-through bounds the wait
        // for the origin's answer itself, from the end of the body (`proxy.rs`).
        let passthrough = builder().build().expect("http client");
        Self {
            client,
            passthrough,
            origins: origins.into_iter().map(|o| o.trim_end_matches('/').to_owned()).collect(),
            credential,
            retries,
        }
    }

    /// The credential this PoP presents as a bearer token.
    pub fn credential(&self) -> &str {
        &self.credential
    }

    /// The HTTP client (pooled connections to the origins), with a read timeout.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The HTTP client for requests passed through with their bodies: no read timeout.
    pub fn passthrough(&self) -> &reqwest::Client {
        &self.passthrough
    }

    /// The origin base URLs (for rewriting the origin's absolute URLs to this PoP's).
    pub fn origins(&self) -> &[String] {
        &self.origins
    }

    /// `GET /v1/objects/{key}` with `Range: bytes={first}-{last}`: a cacheable object, or the
    /// part of one a PoP keeps as one entry.
    pub async fn object(&self, key: &str, (first, last): (u64, u64)) -> Result<reqwest::Response, EdgeError> {
        let range = format!("bytes={first}-{last}");
        self.send(|base| {
            self.client.get(format!("{base}/v1/objects/{key}")).bearer_auth(&self.credential).header("range", &range)
        })
        .await
    }

    /// Sends a request built for each origin in turn; 5xx and connection errors move on, but a
    /// `503` with `Retry-After` is handed to the viewer as `503 origin_busy`.
    pub async fn send(&self, build: impl Fn(&str) -> reqwest::RequestBuilder) -> Result<reqwest::Response, EdgeError> {
        let mut last = EdgeError::OriginUnavailable("no origin configured".into());
        let attempts = (self.retries as usize + 1).max(self.origins.len());
        for attempt in 0..attempts {
            let base = &self.origins[attempt % self.origins.len().max(1)];
            match build(base).send().await {
                // Busy making the object (a segment encoded on demand): asking again at once,
                // here or at another origin node sharing the work, would only wait again.
                Ok(r) if r.status() == 503 && r.headers().contains_key("retry-after") => {
                    return Err(EdgeError::OriginBusy);
                }
                Ok(r) if r.status().is_server_error() => {
                    last = EdgeError::OriginUnavailable(format!("{base} answered {}", r.status()));
                }
                Ok(r) => return Ok(r),
                Err(e) if e.is_timeout() => last = EdgeError::OriginTimeout,
                Err(e) => last = EdgeError::OriginUnavailable(format!("{base}: {}", e.without_url())),
            }
            tokio::time::sleep(Duration::from_millis(50 << attempt.min(4))).await;
        }
        Err(last)
    }
}

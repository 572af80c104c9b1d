//! The client that fetches objects (from the origin or a parent PoP): hyper's own, not
//! reqwest's, for one setting reqwest does not offer, the size of a connection's reads.
//!
//! hyper reads an answer into a buffer that grows while reads fill it, up to 408 KiB. On a
//! pooled connection that has carried large bodies, the read that brings a miss's head then
//! brings up to 408 KiB of body with it, and the head is handed on only after that copy: a
//! miss's head left the PoP later the larger the object (`bench/README.md`, edge-vs-nginx,
//! cold miss). Reads of a fixed [`READ_SIZE`] keep the head's wait flat in size, while still
//! taking a body in few system calls.
//!
//! Objects go over HTTP/1.1 only: one object per connection at a time, so a slow body never
//! holds up another's head, and the read size applies.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// How much of an answer one read takes: a head and its first body bytes, or a body's next
/// piece.
pub const READ_SIZE: usize = 64 * 1024;

/// Why an object request brought no answer.
#[derive(Debug)]
pub enum Failure {
    /// No head, or no next piece of the body, within the read timeout.
    Timeout,
    /// The connection could not be made or broke.
    Broken(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("timed out"),
            Self::Broken(why) => f.write_str(why),
        }
    }
}

/// Pooled HTTP/1.1 (plain or TLS) connections for objects.
#[derive(Clone)]
pub struct ObjectClient {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    /// The longest wait for the head, and then for each next piece of the body.
    read: Duration,
}

impl std::fmt::Debug for ObjectClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectClient").field("read", &self.read).finish_non_exhaustive()
    }
}

impl ObjectClient {
    /// A client that gives up connecting after `connect` and waiting after `read`; TLS
    /// servers are checked against the system's roots, as reqwest's clients do.
    pub fn new(connect: Duration, read: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect));
        // A pooled connection a middlebox dropped without a word is found out, as reqwest's were.
        http.set_keepalive(Some(Duration::from_secs(15)));
        http.set_keepalive_interval(Some(Duration::from_secs(15)));
        http.set_keepalive_retries(Some(3));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls_platform_verifier::Verifier::new(provider.clone()).expect("the system's TLS roots");
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .http1_read_buf_exact_size(READ_SIZE)
            .build(connector);
        Self { client, read }
    }

    /// `GET url` with `headers`, up to the answer's head.
    pub async fn get(&self, url: &str, headers: HeaderMap) -> Result<ObjectResponse, Failure> {
        let mut request = Request::get(url).body(Empty::new()).map_err(|e| Failure::Broken(e.to_string()))?;
        *request.headers_mut() = headers;
        match tokio::time::timeout(self.read, self.client.request(request)).await {
            Err(_) => Err(Failure::Timeout),
            Ok(Err(e)) => Err(failure(&e)),
            Ok(Ok(response)) => {
                let (head, body) = response.into_parts();
                Ok(ObjectResponse { status: head.status, headers: head.headers, body, read: self.read })
            }
        }
    }
}

/// An answer whose head is in and whose body is read piece by piece.
#[derive(Debug)]
pub struct ObjectResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Incoming,
    read: Duration,
}

impl ObjectResponse {
    /// The answer's status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The answer's headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body's length, when it is known before reading it: as hyper frames the body, so a
    /// `Content-Length` beside `Transfer-Encoding: chunked` (which hyper reads as chunked)
    /// gives none, as it did with reqwest.
    pub fn content_length(&self) -> Option<u64> {
        hyper::body::Body::size_hint(&self.body).exact()
    }

    /// The body's next piece, or `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Failure> {
        loop {
            let frame = match tokio::time::timeout(self.read, self.body.frame()).await {
                Err(_) => return Err(Failure::Timeout),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(failure(&e)),
                Ok(Some(Ok(frame))) => frame,
            };
            // Trailers, and empty pieces, carry nothing to keep.
            if let Ok(data) = frame.into_data()
                && !data.is_empty()
            {
                return Ok(Some(data));
            }
        }
    }
}

/// What an error of the client comes to: a timeout anywhere in its causes (connecting, or the
/// kernel's) is a timeout, as reqwest counted it; anything else broke.
fn failure(e: &(dyn std::error::Error + 'static)) -> Failure {
    let mut cause = Some(e);
    while let Some(c) = cause {
        let timed_out = c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            || c.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout);
        if timed_out {
            return Failure::Timeout;
        }
        cause = c.source();
    }
    Failure::Broken(error_chain(e))
}

/// An error with its causes, which is where hyper says what went wrong.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

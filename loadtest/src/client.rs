//! The viewers' HTTP clients: HTTP/1.1 and HTTP/2 through reqwest, HTTP/3 through quinn and
//! h3. Every protocol answers the same question the same way: status, `x-cache`, time to the
//! response head (TTFB), time to the last byte, and the bytes.

pub mod h1h2;
pub mod h3;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::tls::Trust;

/// The HTTP version viewers speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 (TLS ALPN `http/1.1`, or cleartext).
    H1,
    /// HTTP/2 (TLS ALPN `h2`, or cleartext prior knowledge).
    H2,
    /// HTTP/3 over QUIC (TLS only).
    H3,
}

impl FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "h1" | "http1" | "http/1.1" => Ok(Self::H1),
            "h2" | "http2" => Ok(Self::H2),
            "h3" | "http3" => Ok(Self::H3),
            _ => Err(format!("`{s}` is not a protocol (h1, h2 or h3)")),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::H1 => "h1",
            Self::H2 => "h2",
            Self::H3 => "h3",
        })
    }
}

/// One GET.
#[derive(Debug, Clone, Copy)]
pub struct Get<'a> {
    /// The URL.
    pub url: &'a Url,
    /// A `Range` header value.
    pub range: Option<&'a str>,
    /// Keep the body (playlists) or only count it (segments).
    pub keep_body: bool,
}

/// A response, whatever its status.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// HTTP status.
    pub status: u16,
    /// The `x-cache` header.
    pub x_cache: Option<String>,
    /// Request sent → response head received.
    pub ttfb: Duration,
    /// Request sent → last body byte received.
    pub total: Duration,
    /// Body bytes received.
    pub bytes: u64,
    /// The body, when asked for.
    pub body: Option<Bytes>,
}

/// A request that got no complete response.
#[derive(Debug, Clone)]
pub struct FetchError {
    /// Short, stable kind for "errors by kind": `connect`, `tls`, `timeout`, `body`, ...
    pub kind: &'static str,
    /// Details for logs.
    pub message: String,
    /// How long it took to fail.
    pub elapsed: Duration,
}

/// A connection (or pool) a viewer sends its requests on.
#[derive(Debug, Clone)]
pub enum Connection {
    /// reqwest, pinned to HTTP/1.1 or HTTP/2.
    Http(reqwest::Client),
    /// One QUIC connection, opened at the first request and reopened after a failure.
    H3(Arc<h3::H3Connection>),
}

impl Connection {
    /// One GET, bounded by `limit`.
    pub async fn get(&self, get: Get<'_>, limit: Duration) -> Result<Fetched, FetchError> {
        let start = tokio::time::Instant::now();
        let attempt = async {
            match self {
                Self::Http(c) => h1h2::get(c, get, start).await,
                Self::H3(c) => c.get(get, start).await,
            }
        };
        match tokio::time::timeout(limit, attempt).await {
            Ok(r) => r,
            Err(_) => Err(FetchError {
                kind: "timeout",
                message: format!("no answer in {limit:?}"),
                elapsed: start.elapsed(),
            }),
        }
    }
}

/// Makes connections for viewers: one each, or a fixed shared set.
#[derive(Debug)]
pub struct Connector {
    protocol: Protocol,
    tls: Option<rustls::ClientConfig>,
    timeout: Duration,
    quic: Option<Arc<h3::Quic>>,
    shared: Vec<Connection>,
}

impl Connector {
    /// For `target`; `shared` > 0 makes that many connections that all viewers share.
    pub async fn new(
        protocol: Protocol,
        trust: &Trust,
        target: &Url,
        timeout: Duration,
        shared: usize,
    ) -> Result<Self> {
        let https = match target.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(Error::Usage(format!("--target: `{other}` is not http or https"))),
        };
        if protocol == Protocol::H3 && !https {
            return Err(Error::Usage("HTTP/3 needs an https:// target".into()));
        }
        let alpn: &[&[u8]] = match protocol {
            Protocol::H1 => &[b"http/1.1"],
            Protocol::H2 => &[b"h2"],
            Protocol::H3 => &[b"h3"],
        };
        let tls = if https { Some(trust.client_config(alpn, protocol == Protocol::H3)?) } else { None };
        let quic = match (protocol, &tls) {
            (Protocol::H3, Some(tls)) => Some(Arc::new(h3::Quic::new(tls.clone(), target).await?)),
            _ => None,
        };
        let mut connector = Self { protocol, tls, timeout, quic, shared: Vec::new() };
        connector.shared = (0..shared).map(|_| connector.open()).collect::<Result<_>>()?;
        Ok(connector)
    }

    /// The connection viewer number `viewer` uses.
    pub fn connection(&self, viewer: u64) -> Result<Connection> {
        if self.shared.is_empty() { self.open() } else { Ok(self.shared[viewer as usize % self.shared.len()].clone()) }
    }

    fn open(&self) -> Result<Connection> {
        match &self.quic {
            Some(quic) => Ok(Connection::H3(Arc::new(h3::H3Connection::new(quic.clone())))),
            None => h1h2::client(self.protocol, self.tls.clone(), self.timeout).map(Connection::Http),
        }
    }
}

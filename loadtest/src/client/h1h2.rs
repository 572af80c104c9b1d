//! HTTP/1.1 and HTTP/2 through reqwest, with the harness's own rustls configuration.

use std::error::Error as _;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::Instant;

use super::{FetchError, Fetched, Get, Protocol};
use crate::error::{Error, Result};

/// A client pinned to one HTTP version. Over cleartext, HTTP/2 is prior knowledge (h2c).
pub fn client(protocol: Protocol, tls: Option<rustls::ClientConfig>, timeout: Duration) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().timeout(timeout).connect_timeout(timeout).pool_max_idle_per_host(64);
    builder = match protocol {
        Protocol::H2 => builder.http2_prior_knowledge(),
        _ => builder.http1_only(),
    };
    if let Some(tls) = tls {
        builder = builder.tls_backend_preconfigured(tls);
    }
    builder.build().map_err(|e| Error::Tls(format!("cannot build the HTTP client: {e}")))
}

/// One GET, timed from `start`.
pub async fn get(client: &reqwest::Client, get: Get<'_>, start: Instant) -> Result<Fetched, FetchError> {
    let mut request = client.get(get.url.clone());
    if let Some(range) = get.range {
        request = request.header(http::header::RANGE, range);
    }
    let mut response = request.send().await.map_err(|e| failure(&e, start))?;
    let ttfb = start.elapsed();
    let status = response.status().as_u16();
    let x_cache = response.headers().get("x-cache").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut bytes = 0u64;
    let mut body = get.keep_body.then(BytesMut::new);
    while let Some(chunk) = response.chunk().await.map_err(|e| failure(&e, start))? {
        bytes += chunk.len() as u64;
        if let Some(b) = &mut body {
            b.extend_from_slice(&chunk);
        }
    }
    Ok(Fetched { status, x_cache, ttfb, total: start.elapsed(), bytes, body: body.map(BytesMut::freeze) })
}

fn failure(e: &reqwest::Error, start: Instant) -> FetchError {
    FetchError { kind: kind(e), message: chain(e), elapsed: start.elapsed() }
}

/// reqwest folds TLS failures into connect errors; the source chain tells them apart.
fn kind(e: &reqwest::Error) -> &'static str {
    if e.source().is_some_and(is_tls) {
        "tls"
    } else if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    }
}

/// Whether a rustls error is somewhere below `e`. An `io::Error`'s `source()` skips the
/// error it wraps, so that one is looked into explicitly.
fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    if e.downcast_ref::<rustls::Error>().is_some() {
        return true;
    }
    if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref)
        && is_tls(inner)
    {
        return true;
    }
    e.source().is_some_and(is_tls)
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

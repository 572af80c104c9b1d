//! THE request pipeline, one place for the order of phases:
//!
//! ```text
//! route → authorize (playback token / upload URL) → lookup ─ fresh hit → serve (memory|disk)
//!                                                         ├ stale     → revalidate ─ ok → serve
//!                                                         │                        └ origin down → serve stale
//!                                                         └ miss      → join flight → stream + admit → serve
//! ```
//! The same handler serves HTTP/1.1, HTTP/2 and HTTP/3.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Method, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use crate::Edge;
use crate::cache::Tier;
use crate::error::EdgeError;
use crate::inflight::{Flight, FlightHead};
use crate::object::{Head, Object};
use crate::range::{self, RangeRequest};
use crate::respond::{self, Body, Response};

/// An incoming request with its body boxed, whatever the protocol.
pub type Request = http::Request<Body>;

/// How the request reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 or HTTP/2 over TLS.
    Https,
    /// Plain HTTP (local use).
    Http,
    /// HTTP/3 over QUIC.
    H3,
}

impl Protocol {
    /// The metrics label: the HTTP version actually spoken, since h1 and h2 share a listener.
    fn label(self, version: http::Version) -> &'static str {
        match (self, version) {
            (Self::H3, _) => "h3",
            (_, http::Version::HTTP_2) => "h2",
            _ => "h1",
        }
    }

    /// The scheme viewers used.
    pub fn scheme(self) -> &'static str {
        if self == Self::Http { "http" } else { "https" }
    }
}

/// Handles one request on any protocol.
pub async fn handle(edge: Arc<Edge>, req: Request, protocol: Protocol) -> Response {
    let path = req.uri().path().to_owned();
    let version = req.version();
    let mut response = match route(&edge, req, protocol).await {
        Ok(r) => r,
        Err(e) => {
            if e.status().is_server_error() {
                tracing::warn!(%path, error = %e, "request failed");
            }
            respond::error(&e)
        }
    };
    if let Some(alt) = &edge.alt_svc {
        respond::set(&mut response, header::ALT_SVC, alt);
    }
    respond::set(&mut response, "x-pop", &edge.pop_id);
    respond::set(&mut response, "access-control-allow-origin", "*");
    edge.metrics.request(protocol.label(version), response.status().as_u16());
    response
}

/// Path segments, refusing anything that could step outside a namespace.
fn segments(path: &str) -> Result<Vec<&str>, EdgeError> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let segs: Vec<&str> = if trimmed.is_empty() { Vec::new() } else { trimmed.split('/').collect() };
    if segs.iter().any(|s| s.is_empty() || *s == "." || *s == ".." || s.contains(['%', '\\'])) {
        return Err(EdgeError::BadRequest("bad_path", "the path has an empty, relative or escaped segment".into()));
    }
    Ok(segs)
}

async fn route(edge: &Arc<Edge>, req: Request, protocol: Protocol) -> Result<Response, EdgeError> {
    let path = req.uri().path().to_owned();
    let segs = segments(&path)?;
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    match segs.as_slice() {
        ["healthz"] if get => Ok(respond::with(StatusCode::OK, respond::full("ok"))),
        ["metrics"] if get => Ok(respond::with(StatusCode::OK, respond::full(edge.metrics.render()))),
        ["p", token, video, rest @ ..] if get && !rest.is_empty() => {
            pop_config::token::verify_playback(&edge.keys, token, video, crate::now_secs())?;
            if rest == ["key"] {
                // Keys are never cached here: the origin answers every key request itself.
                return crate::proxy::forward(edge, req, protocol).await;
            }
            let key = format!("{video}/{}", rest.join("/"));
            serve_object(edge, &req, &key, video).await
        }
        ["v1", "uploads", ..] => crate::proxy::upload(edge, req, protocol).await,
        ["v1", "videos", ..] => crate::proxy::forward(edge, req, protocol).await,
        _ if get => match &edge.pages {
            Some(pages) => {
                pages.serve(&segs, header_value(&req, header::IF_NONE_MATCH)).await.unwrap_or(Err(EdgeError::NotFound))
            }
            None => Err(EdgeError::NotFound),
        },
        _ => Err(EdgeError::NotFound),
    }
}

async fn serve_object(edge: &Arc<Edge>, req: &Request, key: &str, video: &str) -> Result<Response, EdgeError> {
    edge.popularity.count(video);
    let admitted = edge.cache.record(key);
    let now = crate::now_ms();
    match edge.cache.lookup(key).await {
        Some((object, tier)) if object.head.is_fresh(now) => {
            if admitted && tier == Tier::Memory {
                edge.cache.promote(key);
            }
            edge.metrics.lookup("hit", tier.as_str());
            Ok(serve_cached(edge, req, object, &format!("hit-{}", tier.as_str()), tier.as_str()))
        }
        Some((stale, tier)) => {
            let flight = start_fetch(edge, key, admitted);
            match wait_head(edge, &flight).await {
                Ok(head) if head.status == 200 => {
                    edge.metrics.lookup("revalidated", tier.as_str());
                    serve_flight(edge, req, &flight, head, "miss")
                }
                _ if stale.head.stale_within(now, edge.playlist_stale) => {
                    edge.metrics.lookup("stale", tier.as_str());
                    Ok(serve_cached(edge, req, stale, "stale", tier.as_str()))
                }
                Ok(head) => serve_flight(edge, req, &flight, head, "miss"),
                Err(e) => Err(e),
            }
        }
        None => {
            edge.metrics.lookup("miss", "origin");
            let flight = start_fetch(edge, key, admitted);
            let head = wait_head(edge, &flight).await?;
            serve_flight(edge, req, &flight, head, "miss")
        }
    }
}

/// Joins or starts the single flight for `key`.
pub fn start_fetch(edge: &Arc<Edge>, key: &str, admitted: bool) -> Arc<Flight> {
    let (flight, leader) = edge.flights.join(key);
    if leader {
        tokio::spawn(fetch(edge.clone(), key.to_owned(), flight.clone(), admitted));
    }
    flight
}

async fn wait_head(edge: &Edge, flight: &Flight) -> Result<FlightHead, EdgeError> {
    tokio::time::timeout(edge.origin_timeout, flight.head()).await.map_err(|_| EdgeError::OriginTimeout)?
}

/// The one origin fetch of a flight: streams into it, then caches the whole object.
async fn fetch(edge: Arc<Edge>, key: String, flight: Arc<Flight>, admitted: bool) {
    // A viewer may have missed the cache just before the previous flight for this key
    // landed; the object it fetched is in the cache now and must not be fetched again.
    if let Some((object, _)) = edge.cache.lookup(&key).await.filter(|(o, _)| o.head.is_fresh(crate::now_ms())) {
        let length = Some(object.body.len() as u64);
        flight.set_head(Ok(FlightHead { status: 200, head: object.head, length }));
        flight.push(object.body);
        edge.flights.land(&key);
        flight.finish(Ok(()));
        return;
    }
    let started = std::time::Instant::now();
    let response = edge.upstream.object(&key).await;
    edge.metrics.origin_latency.observe(started.elapsed().as_secs_f64());
    let mut response = match response {
        Ok(r) => r,
        Err(e) => {
            edge.metrics.origin_fetches.get_or_create(&vec![("outcome", "error")]).inc();
            flight.set_head(Err(e.clone()));
            edge.flights.land(&key);
            flight.finish(Err(e));
            return;
        }
    };
    let status = response.status().as_u16();
    let outcome = if status == 200 { "ok" } else { "refused" };
    edge.metrics.origin_fetches.get_or_create(&vec![("outcome", outcome)]).inc();
    let text = |name: header::HeaderName| {
        response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };
    let head = Head::new(
        text(header::CONTENT_TYPE),
        Some(text(header::ETAG)).filter(|e| !e.is_empty()),
        text(header::CACHE_CONTROL),
        crate::now_ms(),
    );
    let cacheable = status == 200 && Head::cacheable(&head.cache_control);
    let length = response.content_length();
    flight.set_head(Ok(FlightHead { status, head: head.clone(), length }));
    // Cached and landed before any viewer can hold the whole object: whoever asks next finds
    // it in the cache, never a finished flight. With a known length that is before the last
    // chunk goes out (a viewer is done when it has the length); otherwise at the end.
    let settle = |tail: &[u8], len: u64| {
        if cacheable {
            let stored = || flight.with_received(|pieces| Object::encode_pieces(&head, pieces, tail));
            edge.cache.insert_encoded(&key, stored, len, admitted);
        }
        edge.flights.land(&key);
    };
    let mut received = 0u64;
    let finished = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                received += chunk.len() as u64;
                if length == Some(received) {
                    settle(&chunk, received);
                }
                flight.push(chunk);
                // From a fast origin every read is ready at once, and this loop would keep the
                // worker until the whole body is in: let the viewers of this flight send what
                // has arrived.
                tokio::task::yield_now().await;
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(EdgeError::OriginUnavailable(format!("body: {e}"))),
        }
    };
    match (&finished, length) {
        (Ok(()), Some(n)) if n == received && n > 0 => {}
        (Ok(()), _) => settle(&[], received),
        // A broken body is never cached; a truncated one that claimed a length was settled
        // above only if every byte came, so nothing partial is ever stored.
        (Err(_), _) => edge.flights.land(&key),
    }
    flight.finish(finished);
}

fn origin_refusal(status: u16) -> EdgeError {
    match status {
        404 => EdgeError::NotFound,
        410 => EdgeError::Gone,
        s => EdgeError::OriginUnavailable(format!("origin answered {s}")),
    }
}

/// Streams a flight's body to one viewer (a byte range of it when asked).
fn serve_flight(
    edge: &Arc<Edge>,
    req: &Request,
    flight: &Arc<Flight>,
    head: FlightHead,
    x_cache: &str,
) -> Result<Response, EdgeError> {
    if head.status != 200 {
        return Err(origin_refusal(head.status));
    }
    let wanted = match head.length {
        Some(len) => range::parse(header_value(req, header::RANGE), len),
        None => RangeRequest::Whole,
    };
    let (status, skip, take) = match wanted {
        RangeRequest::Whole => (StatusCode::OK, 0, head.length),
        RangeRequest::Bytes(a, b) => (StatusCode::PARTIAL_CONTENT, a, Some(b - a + 1)),
        RangeRequest::Unsatisfiable => return Err(EdgeError::RangeNotSatisfiable(head.length.unwrap_or(0))),
    };
    let body: Body = if req.method() == Method::HEAD {
        respond::full(Bytes::new())
    } else {
        let metrics = edge.clone();
        let stream = window(flight.stream(), skip, take)
            .map(move |chunk| chunk.inspect(|c| metrics.metrics.served("origin", c.len() as u64)).map(Frame::data));
        BodyExt::boxed(StreamBody::new(stream))
    };
    let mut r = respond::with(status, body);
    headers(&mut r, &head.head, x_cache);
    if let Some(len) = take {
        respond::set(&mut r, header::CONTENT_LENGTH, &len.to_string());
    }
    if let (RangeRequest::Bytes(a, b), Some(len)) = (wanted, head.length) {
        respond::set(&mut r, header::CONTENT_RANGE, &format!("bytes {a}-{b}/{len}"));
    }
    Ok(r)
}

/// Bytes `skip..skip+take` of a chunk stream.
fn window(
    stream: impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    skip: u64,
    take: Option<u64>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let end = take.map_or(u64::MAX, |t| skip + t);
    stream
        .scan(0u64, move |pos, chunk| {
            let out = chunk.map(|c| {
                let (start, stop) = (*pos, *pos + c.len() as u64);
                *pos = stop;
                let from = skip.clamp(start, stop) - start;
                let to = end.clamp(start, stop) - start;
                c.slice(from as usize..to as usize)
            });
            std::future::ready(Some(out))
        })
        .filter(|c| std::future::ready(c.as_ref().map_or(true, |b| !b.is_empty())))
}

fn serve_cached(edge: &Edge, req: &Request, object: Object, x_cache: &str, tier: &'static str) -> Response {
    if object.head.etag.as_deref().is_some_and(|e| header_value(req, header::IF_NONE_MATCH) == Some(e)) {
        let mut r = respond::with(StatusCode::NOT_MODIFIED, respond::full(Bytes::new()));
        headers(&mut r, &object.head, x_cache);
        return r;
    }
    let len = object.body.len() as u64;
    let (status, body, start) = match range::parse(header_value(req, header::RANGE), len) {
        RangeRequest::Whole => (StatusCode::OK, object.body.clone(), 0),
        RangeRequest::Bytes(a, b) => (StatusCode::PARTIAL_CONTENT, object.body.slice(a as usize..=b as usize), a),
        RangeRequest::Unsatisfiable => return respond::error(&EdgeError::RangeNotSatisfiable(len)),
    };
    let sent = body.len();
    let mut r = if req.method() == Method::HEAD {
        respond::with(status, respond::full(Bytes::new()))
    } else {
        edge.metrics.served(tier, sent as u64);
        respond::with(status, respond::full(body))
    };
    headers(&mut r, &object.head, x_cache);
    respond::set(&mut r, header::CONTENT_LENGTH, &sent.to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        respond::set(&mut r, header::CONTENT_RANGE, &format!("bytes {start}-{}/{len}", start + sent as u64 - 1));
    }
    r
}

fn headers(r: &mut Response, head: &Head, x_cache: &str) {
    respond::set(r, header::CONTENT_TYPE, &head.content_type);
    respond::set(r, header::CACHE_CONTROL, &head.cache_control);
    respond::set(r, header::ACCEPT_RANGES, "bytes");
    respond::set(r, "x-cache", x_cache);
    if let Some(e) = &head.etag {
        respond::set(r, header::ETAG, e);
    }
}

fn header_value(req: &Request, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

//! THE request pipeline, one place for the order of phases:
//!
//! ```text
//! route → authorize (playback token / upload URL) → lookup ─ fresh hit → (If-None-Match) → serve (memory|disk)
//!                                                         ├ stale     → revalidate ─ ok → serve
//!                                                         │                        └ origin down → serve stale
//!                                                         └ miss      → join flight → stream + admit → serve
//! ```
//! A hit may be the origin's remembered 404, or a chunked object whose body comes from the
//! chunks its range covers (`chunks.rs`). The same handler serves HTTP/1.1, HTTP/2 and
//! HTTP/3; [`admin`] serves the metrics listener.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Method, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tracing::Instrument;

use pop_config::token::Scope;

use crate::Edge;
use crate::cache::Tier;
use crate::error::EdgeError;
use crate::fetch::{self, Want};
use crate::inflight::{Flight, FlightHead};
use crate::object::{Form, Head, Object};
use crate::range::{self, RangeRequest};
use crate::respond::{self, Body, Response};
use crate::{chunks, conditional};

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
    let version = req.version();
    let span = request_span(&req, protocol.label(version));
    let mut response = answer(route(&edge, req, protocol).instrument(span.clone()).await, &span);
    if let Some(alt) = &edge.alt_svc {
        respond::set(&mut response, header::ALT_SVC, alt);
    }
    respond::set(&mut response, "x-pop", &edge.pop_id);
    respond::set(&mut response, "access-control-allow-origin", "*");
    edge.metrics.request(protocol.label(version), response.status().as_u16());
    response
}

/// Handles one request on the metrics listener: `/metrics` and `/healthz`, nothing else.
pub async fn admin(edge: Arc<Edge>, req: Request) -> Response {
    let span = request_span(&req, "admin");
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    let result = match req.uri().path() {
        "/metrics" if get => {
            let mut r = respond::with(StatusCode::OK, respond::full(edge.metrics.render()));
            respond::set(&mut r, header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
            Ok(r)
        }
        "/healthz" if get => health(&edge),
        _ => Err(EdgeError::NotFound),
    };
    answer(result, &span)
}

/// Every request's span. What the client wrote (path, request id) is recorded with `Debug`,
/// which escapes control characters and line separators, so it cannot forge a log line. The
/// playback token is left out of the path (the query, with upload signatures, is never in it).
fn request_span(req: &Request, protocol: &'static str) -> tracing::Span {
    let request_id = req.headers().get("x-request-id").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let path = loggable(req.uri().path());
    tracing::info_span!("request", method = %req.method(), path = ?path, protocol, request_id = ?request_id)
}

/// `path` without the capability in it: `/p/{token}/...` becomes `/p/-/...`.
fn loggable(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/p/").and_then(|rest| rest.split_once('/')) {
        Some((_token, rest)) => format!("/p/-/{rest}").into(),
        None => path.into(),
    }
}

/// The response for a route's result; failures are logged here, with their internal detail.
fn answer(result: Result<Response, EdgeError>, span: &tracing::Span) -> Response {
    result.unwrap_or_else(|e| {
        if e.status().is_server_error() {
            span.in_scope(|| tracing::warn!(code = e.code(), error = %e, detail = ?e.detail(), "request failed"));
        }
        respond::error(&e)
    })
}

/// `ok`, unless a takedown is held in memory only: the PoP must be fixed before it restarts.
fn health(edge: &Edge) -> Result<Response, EdgeError> {
    edge.cache.purges().durable().map_err(EdgeError::PurgesNotDurable)?;
    Ok(respond::with(StatusCode::OK, respond::full("ok")))
}

/// Path segments, refusing anything that could step outside a namespace.
fn segments(path: &str) -> Result<Vec<&str>, EdgeError> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let segs: Vec<&str> = if trimmed.is_empty() { Vec::new() } else { trimmed.split('/').collect() };
    if segs.iter().any(|s| s.is_empty() || *s == "." || *s == ".." || s.contains(['%', '\\', '#'])) {
        return Err(EdgeError::BadRequest("bad_path", "the path has an empty, relative or escaped segment".into()));
    }
    Ok(segs)
}

async fn route(edge: &Arc<Edge>, req: Request, protocol: Protocol) -> Result<Response, EdgeError> {
    let path = req.uri().path().to_owned();
    let segs = segments(&path)?;
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    match segs.as_slice() {
        ["healthz"] if get => health(edge),
        ["p", token, video, rest @ ..] if get && !rest.is_empty() => {
            if rest == ["key"] {
                // Keys never pass through a PoP: players fetch them from the key service.
                return Err(EdgeError::NotFound);
            }
            pop_config::token::verify_playback(&edge.keys, token, video, Scope::Delivery, crate::now_secs())?;
            let key = format!("{video}/{}", rest.join("/"));
            serve_object(edge, &req, &key, video).await
        }
        ["v1", "uploads", ..] => crate::proxy::upload(edge, req, protocol).await,
        // A partner's PoP would see creators' bearer tokens: it forwards no API call.
        ["v1", "videos", ..] if !edge.partner => crate::proxy::forward(edge, req, protocol).await,
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
            let result = if object.head.form == Form::NotFound { "negative" } else { "hit" };
            edge.metrics.lookup(result, tier.as_str());
            serve_cached(edge, req, key, object, &format!("hit-{}", tier.as_str()), tier, admitted)
        }
        Some((stale, tier)) => {
            let flight = fetch::start(edge, Want::object(key), admitted);
            match wait_head(edge, &flight).await {
                Ok(head) if head.status == 200 => {
                    edge.metrics.lookup("revalidated", tier.as_str());
                    serve_flight(edge, req, key, &flight, head, admitted)
                }
                _ if stale.head.form != Form::NotFound && stale.head.stale_within(now, edge.playlist_stale) => {
                    edge.metrics.lookup("stale", tier.as_str());
                    serve_cached(edge, req, key, stale, "stale", tier, admitted)
                }
                Ok(head) => serve_flight(edge, req, key, &flight, head, admitted),
                Err(e) => Err(e),
            }
        }
        None => {
            edge.metrics.lookup("miss", "origin");
            let flight = fetch::start(edge, Want::object(key), admitted);
            let head = wait_head(edge, &flight).await?;
            serve_flight(edge, req, key, &flight, head, admitted)
        }
    }
}

/// Waits for a flight's origin headers, no longer than `origin.request_timeout`.
pub(crate) async fn wait_head(edge: &Edge, flight: &Flight) -> Result<FlightHead, EdgeError> {
    tokio::time::timeout(edge.origin_timeout, flight.head()).await.map_err(|_| EdgeError::OriginTimeout)?
}

fn origin_refusal(status: u16) -> EdgeError {
    match status {
        404 => EdgeError::NotFound,
        410 => EdgeError::Gone,
        s => EdgeError::OriginUnavailable(format!("origin answered {s}")),
    }
}

/// Serves a cached entry: the object, the origin's remembered 404, or a chunked object.
fn serve_cached(
    edge: &Arc<Edge>,
    req: &Request,
    key: &str,
    object: Object,
    x_cache: &str,
    tier: Tier,
    admitted: bool,
) -> Result<Response, EdgeError> {
    match object.head.form {
        Form::NotFound => Err(EdgeError::NotFound),
        _ if not_modified(req, &object.head) => Ok(not_modified_response(&object.head, x_cache)),
        Form::Chunked { length } => {
            let source = chunks::Source { object: key.to_owned(), head: object.head, length, first: None, admitted };
            serve_chunked(edge, req, source, x_cache)
        }
        Form::Whole => {
            let window = wanted(req, Some(object.body.len() as u64))?;
            let (from, len) = (window.start as usize, window.len.unwrap_or(0) as usize);
            let body = object.body.slice(from..from + len);
            if req.method() != Method::HEAD {
                edge.metrics.served(tier.as_str(), body.len() as u64);
            }
            Ok(respond_window(req, &object.head, x_cache, &window, respond::full(body)))
        }
    }
}

/// Streams a flight's body to one viewer (a byte range of it when asked).
fn serve_flight(
    edge: &Arc<Edge>,
    req: &Request,
    key: &str,
    flight: &Arc<Flight>,
    head: FlightHead,
    admitted: bool,
) -> Result<Response, EdgeError> {
    if head.status != 200 {
        return Err(origin_refusal(head.status));
    }
    if not_modified(req, &head.head) {
        return Ok(not_modified_response(&head.head, "miss"));
    }
    if let Form::Chunked { length } = head.head.form {
        let first = Some(flight.clone());
        let source = chunks::Source { object: key.to_owned(), head: head.head, length, first, admitted };
        return serve_chunked(edge, req, source, "miss");
    }
    let window = wanted(req, head.length)?;
    let counted = edge.clone();
    let stream = slice_stream(flight.stream(), window.start, window.len)
        .map(move |chunk| chunk.inspect(|c| counted.metrics.served("origin", c.len() as u64)).map(Frame::data));
    Ok(respond_window(req, &head.head, "miss", &window, BodyExt::boxed(StreamBody::new(stream))))
}

/// Serves an object kept in chunks, from whichever chunks the request's range covers.
fn serve_chunked(
    edge: &Arc<Edge>,
    req: &Request,
    source: chunks::Source,
    x_cache: &str,
) -> Result<Response, EdgeError> {
    let window = wanted(req, Some(source.length))?;
    let head = source.head.clone();
    // Built only when sent: assembling it starts fetching chunks.
    let body = if req.method() == Method::HEAD {
        respond::full(Bytes::new())
    } else {
        let stream = chunks::body(edge.clone(), source, window.start, window.len.unwrap_or(0));
        BodyExt::boxed(StreamBody::new(stream.map(|c| c.map(Frame::data))))
    };
    Ok(respond_window(req, &head, x_cache, &window, body))
}

/// The bytes of an object a request asks for.
struct Window {
    status: StatusCode,
    start: u64,
    /// `None` when the object's length is not known (it is then sent whole).
    len: Option<u64>,
    /// The object's length, when known.
    total: Option<u64>,
}

/// What the request's `Range` asks of an object of `length` bytes (unknown: all of it).
fn wanted(req: &Request, length: Option<u64>) -> Result<Window, EdgeError> {
    let Some(total) = length else {
        return Ok(Window { status: StatusCode::OK, start: 0, len: None, total: None });
    };
    match range::parse(header_value(req, header::RANGE), total) {
        RangeRequest::Whole => Ok(Window { status: StatusCode::OK, start: 0, len: Some(total), total: Some(total) }),
        RangeRequest::Bytes(a, b) => {
            Ok(Window { status: StatusCode::PARTIAL_CONTENT, start: a, len: Some(b - a + 1), total: Some(total) })
        }
        RangeRequest::Unsatisfiable => Err(EdgeError::RangeNotSatisfiable(total)),
    }
}

/// The response for `window` of an object, with `body` (dropped for HEAD).
fn respond_window(req: &Request, head: &Head, x_cache: &str, window: &Window, body: Body) -> Response {
    let body = if req.method() == Method::HEAD { respond::full(Bytes::new()) } else { body };
    let mut r = respond::with(window.status, body);
    headers(&mut r, head, x_cache);
    if let Some(len) = window.len {
        respond::set(&mut r, header::CONTENT_LENGTH, &len.to_string());
    }
    if let (StatusCode::PARTIAL_CONTENT, Some(len), Some(total)) = (window.status, window.len, window.total) {
        let (a, b) = (window.start, window.start + len - 1);
        respond::set(&mut r, header::CONTENT_RANGE, &format!("bytes {a}-{b}/{total}"));
    }
    r
}

fn not_modified(req: &Request, head: &Head) -> bool {
    conditional::not_modified(header_value(req, header::IF_NONE_MATCH), head.etag.as_deref())
}

fn not_modified_response(head: &Head, x_cache: &str) -> Response {
    let mut r = respond::with(StatusCode::NOT_MODIFIED, respond::full(Bytes::new()));
    headers(&mut r, head, x_cache);
    r
}

/// Bytes `skip..skip+take` of a chunk stream.
pub(crate) fn slice_stream(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_paths_leave_the_token_out() {
        assert_eq!(loggable("/p/v1.k.v.9.sig/v/360p/seg.m4s"), "/p/-/v/360p/seg.m4s");
        assert_eq!(loggable("/v1/videos/x"), "/v1/videos/x");
        assert_eq!(loggable("/p/only-a-token"), "/p/only-a-token");
    }
}

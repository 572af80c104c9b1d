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
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tracing::Instrument;

use pop_config::token::Scope;

use crate::Edge;
use crate::cache::Tier;
use crate::cdn_loop;
use crate::context::Exchange;
use crate::error::EdgeError;
use crate::fetch::{self, Want};
use crate::inflight::{Flight, FlightHead};
use crate::metrics::{Lookup, Source, Version};
use crate::object::{Form, Head, Object};
use crate::range::{self, RangeRequest};
use crate::respond::{self, Body, Response};
use crate::status::Served;
use crate::{chunks, conditional};

/// An incoming request with its body boxed, whatever the protocol.
pub type Request = http::Request<Body>;

/// The client's address, set by the listener on every request it hands over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client(pub std::net::IpAddr);

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
    /// The HTTP version actually spoken, since h1 and h2 share a listener.
    fn version(self, version: http::Version) -> Version {
        match (self, version) {
            (Self::H3, _) => Version::H3,
            (_, http::Version::HTTP_2) => Version::H2,
            _ => Version::H1,
        }
    }

    /// The scheme viewers used.
    pub fn scheme(self) -> &'static str {
        if self == Self::Http { "http" } else { "https" }
    }
}

/// Handles one request on any protocol.
pub async fn handle(edge: Arc<Edge>, req: Request, protocol: Protocol) -> Response {
    let mut exchange = Exchange::new(protocol.version(req.version()));
    let span = request_span(&req, exchange.version().as_str());
    let routed = route(&edge, req, protocol, &mut exchange).instrument(span.clone()).await;
    let mut response = answer(routed, &span);
    span.in_scope(|| exchange.finish(&edge, &mut response));
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

/// `ok`, unless a takedown is held in memory only (the PoP must be fixed before it restarts)
/// or takedowns have not been heard of for too long.
fn health(edge: &Edge) -> Result<Response, EdgeError> {
    edge.cache.purges().durable().map_err(EdgeError::PurgesNotDurable)?;
    if edge.cache.purges().behind(crate::now_ms(), edge.started_at, edge.max_purge_lag) {
        return Err(EdgeError::PurgesBehind);
    }
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

async fn route(edge: &Arc<Edge>, req: Request, protocol: Protocol, ex: &mut Exchange) -> Result<Response, EdgeError> {
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
            edge.grants.verify(&edge.keys, token, video, Scope::Delivery, crate::now_secs())?;
            let key = format!("{video}/{}", rest.join("/"));
            serve_object(edge, &req, &key, video, Asker::Viewer, ex).await
        }
        // A child PoP asking its parent (this PoP) for an object, as it would ask the origin.
        ["v1", "objects", video, rest @ ..] if get && !rest.is_empty() && rest != ["key"] => {
            let (child, partner) = authorize_child(edge, &req)?;
            let via = header_value(&req, header::HeaderName::from_static(cdn_loop::HEADER));
            // A child that has answered as this PoP's parent closes a cycle even when both miss
            // at once, which no list shows: each request then carries its own PoP alone.
            if edge.upstream.is_parent(&child) || via.is_some_and(|v| cdn_loop::names(v, &edge.pop_id)) {
                tracing::warn!(%child, via = ?via, "a child's request has passed this PoP already: parents form a cycle");
                return Err(EdgeError::LoopDetected);
            }
            // A partner's list is not passed on: it could name this PoP's parent to make it ask
            // the origin instead.
            ex.came_via(via.filter(|_| !partner));
            let key = format!("{video}/{}", rest.join("/"));
            if partner && pop_config::tier::is_clear(&key) {
                // As the origin refuses them to a partner's PoP: pictures are clear frames.
                let why = "pictures are clear content: not served to a partner's PoP";
                return Err(EdgeError::Forbidden("clear_to_partner", why.into()));
            }
            serve_object(edge, &req, &key, video, Asker::Child, ex).await
        }
        ["v1", "uploads", ..] => crate::proxy::upload(edge, req, protocol).await,
        // A partner's PoP would see creators' bearer tokens and session cookies: it forwards
        // no API call.
        ["v1", "videos" | "accounts" | "sessions" | "me" | "channels" | "reports" | "users", ..] if !edge.partner => {
            crate::proxy::forward(edge, req, protocol).await
        }
        _ if get => match &edge.pages {
            Some(pages) => {
                pages.serve(&segs, header_value(&req, header::IF_NONE_MATCH)).await.unwrap_or(Err(EdgeError::NotFound))
            }
            None => Err(EdgeError::NotFound),
        },
        _ => Err(EdgeError::NotFound),
    }
}

/// Who asks for an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asker {
    /// A viewer, with a playback token.
    Viewer,
    /// A child PoP, with its tier credential: its own viewers were counted there.
    Child,
}

/// A child PoP's tier credential (`pop_config::tier`), checked against the verifier the origin
/// sent for its id; nothing else opens a parent's `/v1/objects/`. The child's id, and whether
/// it is a partner's.
fn authorize_child(edge: &Edge, req: &Request) -> Result<(String, bool), EdgeError> {
    let presented = header_value(req, header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(EdgeError::Unauthenticated)?;
    let id = presented.split_once('.').map(|(id, _)| id).ok_or(EdgeError::Unauthenticated)?;
    let children = edge.children.read().expect("children lock");
    let child = children.get(id).ok_or(EdgeError::Unauthenticated)?;
    if pop_config::tier::verify(presented, &child.verifier) {
        Ok((id.to_owned(), child.partner))
    } else {
        Err(EdgeError::Unauthenticated)
    }
}

async fn serve_object(
    edge: &Arc<Edge>,
    req: &Request,
    key: &str,
    video: &str,
    asker: Asker,
    ex: &mut Exchange,
) -> Result<Response, EdgeError> {
    let now = crate::now_ms();
    if edge.cache.purges().behind(now, edge.started_at, edge.max_purge_lag) {
        return Err(EdgeError::PurgesBehind);
    }
    if asker == Asker::Viewer {
        edge.popularity.count(video);
    }
    let served = lookup_and_serve(edge, req, key, ex, now).await;
    // Read ahead only after a viewer was served: a video taken down (and not restored since)
    // is refused here first, so nothing of it is read ahead, and a restored one is again.
    if asker == Asker::Viewer && served.as_ref().is_ok_and(|r| matches!(r.status().as_u16(), 200 | 206 | 304)) {
        crate::readahead::after_request(edge, key);
    }
    served
}

async fn lookup_and_serve(
    edge: &Arc<Edge>,
    req: &Request,
    key: &str,
    ex: &mut Exchange,
    now: i64,
) -> Result<Response, EdgeError> {
    let admitted = edge.cache.record(key);
    match edge.cache.lookup(key).await {
        Some((object, tier)) if object.head.is_fresh(now) => {
            if admitted && tier == Tier::Memory {
                edge.cache.promote(key);
            }
            ex.looked_up(if object.head.form == Form::NotFound { Lookup::Negative(tier) } else { Lookup::Hit(tier) });
            serve_cached(edge, req, key, object, Served::Hit(tier), tier, admitted, ex)
        }
        Some((stale, tier)) => {
            let flight = fetch::start(edge, Want::object(key).via(ex.via()), admitted);
            match wait_head(edge, &flight).await {
                Ok(head) if head.status == 200 => {
                    ex.looked_up(Lookup::Revalidated(tier));
                    serve_flight(edge, req, key, &flight, head, true, admitted, ex)
                }
                // Gone upstream (taken down, and heard of there first): never stood in for.
                Ok(head) if matches!(head.status, 404 | 410) => {
                    serve_flight(edge, req, key, &flight, head, true, admitted, ex)
                }
                _ if stale.head.form != Form::NotFound && stale.head.stale_within(now, edge.playlist_stale) => {
                    ex.looked_up(Lookup::Stale(tier));
                    serve_cached(edge, req, key, stale, Served::Stale, tier, admitted, ex)
                }
                Ok(head) => serve_flight(edge, req, key, &flight, head, true, admitted, ex),
                Err(e) => Err(e),
            }
        }
        None => {
            ex.looked_up(Lookup::Miss);
            let flight = fetch::start(edge, Want::object(key).via(ex.via()), admitted);
            let head = wait_head(edge, &flight).await?;
            serve_flight(edge, req, key, &flight, head, false, admitted, ex)
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
#[allow(clippy::too_many_arguments)] // the request's facts, each needed once
fn serve_cached(
    edge: &Arc<Edge>,
    req: &Request,
    key: &str,
    object: Object,
    served: Served,
    tier: Tier,
    admitted: bool,
    ex: &mut Exchange,
) -> Result<Response, EdgeError> {
    match object.head.form {
        Form::NotFound => Err(EdgeError::NotFound),
        _ if not_modified(req, &object.head) => Ok(not_modified_response(&object.head, served, ex)),
        Form::Chunked { length } => {
            let via = ex.via().map(str::to_owned);
            let source =
                chunks::Source { object: key.to_owned(), head: object.head, length, first: None, admitted, via };
            serve_chunked(edge, req, source, served, ex)
        }
        Form::Whole => {
            let window = wanted(req, Some(object.body.len() as u64))?;
            let (from, len) = (window.start as usize, window.len.unwrap_or(0) as usize);
            let body = object.body.slice(from..from + len);
            if req.method() != Method::HEAD {
                edge.metrics.served(tier.into(), body.len() as u64);
            }
            Ok(respond_window(req, &object.head, served, &window, respond::full(body), ex))
        }
    }
}

/// Streams a flight's body to one viewer (a byte range of it when asked); `revalidated` when
/// it replaces a stale copy.
#[allow(clippy::too_many_arguments)] // the request's facts, each needed once
fn serve_flight(
    edge: &Arc<Edge>,
    req: &Request,
    key: &str,
    flight: &Arc<Flight>,
    head: FlightHead,
    revalidated: bool,
    admitted: bool,
    ex: &mut Exchange,
) -> Result<Response, EdgeError> {
    if head.status != 200 {
        return Err(origin_refusal(head.status));
    }
    let served = Served::Forwarded { revalidated, chain: head.chain };
    if not_modified(req, &head.head) {
        return Ok(not_modified_response(&head.head, served, ex));
    }
    if let Form::Chunked { length } = head.head.form {
        let first = Some(flight.clone());
        let via = ex.via().map(str::to_owned);
        let source = chunks::Source { object: key.to_owned(), head: head.head, length, first, admitted, via };
        return serve_chunked(edge, req, source, served, ex);
    }
    let window = wanted(req, head.length)?;
    let counted = edge.clone();
    let stream = slice_stream(flight.stream(), window.start, window.len)
        .map(move |chunk| chunk.inspect(|c| counted.metrics.served(Source::Origin, c.len() as u64)).map(Frame::data));
    Ok(respond_window(req, &head.head, served, &window, BodyExt::boxed(StreamBody::new(stream)), ex))
}

/// Serves an object kept in chunks, from whichever chunks the request's range covers.
fn serve_chunked(
    edge: &Arc<Edge>,
    req: &Request,
    source: chunks::Source,
    served: Served,
    ex: &mut Exchange,
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
    Ok(respond_window(req, &head, served, &window, body, ex))
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
fn respond_window(
    req: &Request,
    head: &Head,
    served: Served,
    window: &Window,
    body: Body,
    ex: &mut Exchange,
) -> Response {
    let body = if req.method() == Method::HEAD { respond::full(Bytes::new()) } else { body };
    let mut r = respond::with(window.status, body);
    object_headers(&mut r, head);
    ex.served(served, head);
    if let Some(len) = window.len {
        r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
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

fn not_modified_response(head: &Head, served: Served, ex: &mut Exchange) -> Response {
    let mut r = respond::with(StatusCode::NOT_MODIFIED, respond::full(Bytes::new()));
    object_headers(&mut r, head);
    ex.served(served, head);
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

/// The object's own headers; the cache's are the request context's (`context.rs`).
fn object_headers(r: &mut Response, head: &Head) {
    respond::set(r, header::CONTENT_TYPE, &head.content_type);
    respond::set(r, header::CACHE_CONTROL, &head.cache_control);
    r.headers_mut().insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
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

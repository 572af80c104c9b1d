//! What the PoP passes through to the origin without caching: the video and account API (not
//! on a partner's PoP) and regional tus uploads. Never keys: players reach the key service
//! directly. Bodies stream both ways; nothing is buffered whole. Upload URLs are checked here
//! first, so a forged one never costs the origin a byte. When an origin URL fails, the next is
//! tried only if the request cannot have done anything at the failed one, or is safe to repeat.

use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Method, header};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::Frame;
use tokio::sync::oneshot;

use crate::Edge;
use crate::error::EdgeError;
use crate::flow::{Protocol, Request};
use crate::respond::{self, Response};
use crate::upstream::{Attempt, Route};

/// Request headers worth passing on. Nothing hop-by-hop is among them; the body's framing
/// (`content-length`) is set from what the request carries.
const FORWARDED: [&str; 16] = [
    "authorization",
    // A signed-in page's session and its anti-forgery token (our own PoPs only: `flow` sends
    // a partner's PoP no API call), and where the browser says the request came from.
    "cookie",
    "x-csrf-token",
    "sec-fetch-site",
    "content-type",
    "range",
    "if-none-match",
    "tus-resumable",
    "upload-length",
    "upload-offset",
    "upload-metadata",
    "upload-concat",
    "upload-checksum",
    "upload-defer-length",
    "x-request-id",
    "access-control-request-method",
];

/// Response headers that belong to one connection (RFC 9110 §7.6.1), never passed on, besides
/// those the origin's `Connection` names.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// `/v1/uploads...`: checks the pre-signed query, then forwards.
pub async fn upload(edge: &Arc<Edge>, req: Request, protocol: Protocol) -> Result<Response, EdgeError> {
    let Some(max_size) = edge.uploads else {
        return Err(EdgeError::NotFound);
    };
    let mut limit = max_size;
    if req.method() != Method::OPTIONS {
        let query = req.uri().query().unwrap_or("");
        let grant = pop_config::token::verify_upload(&edge.keys, query, crate::now_secs())?;
        limit = limit.min(grant.max_bytes);
    }
    let announced = req.headers().get("upload-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if announced.is_some_and(|len: u64| len > limit) {
        return Err(EdgeError::TooLarge(limit));
    }
    forward(edge, req, protocol).await
}

/// Forwards a request to the origin and streams the answer back, with the origin's absolute
/// URLs (tus `Location`) pointing at this PoP instead. Origin URLs are tried in
/// [`Upstream::failover`](crate::upstream::Upstream::failover)'s order while the request can
/// have done nothing at the one that failed, or is safe to repeat (`next_origin_may_take`).
pub async fn forward(edge: &Arc<Edge>, req: Request, protocol: Protocol) -> Result<Response, EdgeError> {
    let here = format!(
        "{}://{}",
        protocol.scheme(),
        req.uri().authority().map(|a| a.to_string()).or_else(|| host(&req)).unwrap_or_default()
    );
    let method = Method::from_bytes(req.method().as_str().as_bytes()).map_err(|_| EdgeError::NotFound)?;
    let path = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
    let mut headers: Vec<(&'static str, String)> = FORWARDED
        .iter()
        .filter_map(|name| req.headers().get(*name).and_then(|v| v.to_str().ok()).map(|v| (*name, v.to_owned())))
        .collect();
    // The client this PoP saw, in place of whatever the client claimed: the origin steers a
    // creator to their nearest PoP, and throttles sign-ins and counts views, by it. The
    // origin believes it because this PoP's credential comes with it.
    if let Some(crate::flow::Client(ip)) = req.extensions().get::<crate::flow::Client>() {
        headers.push(("x-forwarded-for", ip.to_string()));
        headers.push((pop_config::RELAY_CREDENTIAL_HEADER, edge.upstream.credential().to_owned()));
    }
    let body = body_of(req).await?;
    let answer = edge
        .upstream
        .failover(Route::Passthrough, |base| {
            let mut outgoing = edge.upstream.passthrough().request(method.clone(), format!("{base}{path}"));
            for (name, value) in &headers {
                outgoing = outgoing.header(*name, value);
            }
            attempt(edge, outgoing, &method, body.as_ref())
        })
        .await?;
    let status = answer.status();
    let mut response_headers = answer.headers().clone();
    if let Some(location) = response_headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) {
        let rewritten = rewrite(location, edge.upstream.origins(), &here);
        if let Ok(v) = http::HeaderValue::from_str(&rewritten) {
            response_headers.insert(header::LOCATION, v);
        }
    }
    strip_hop_by_hop(&mut response_headers);
    let stream = answer.bytes_stream().map(|c| c.map(Frame::data).map_err(std::io::Error::other));
    let mut r = respond::with(status, BodyExt::boxed(StreamBody::new(stream)));
    *r.headers_mut() = response_headers;
    Ok(r)
}

/// One try at one origin: its answer, whatever the status (the origin's word for the client,
/// never a reason to ask another), or a failure and whether the next origin may be asked.
async fn attempt(
    edge: &Edge,
    mut outgoing: reqwest::RequestBuilder,
    method: &Method,
    body: Option<&HeldBody>,
) -> Attempt<reqwest::Response> {
    let (sent, body_sent) = oneshot::channel();
    match body {
        Some(held) => {
            if let Some(length) = held.length {
                outgoing = outgoing.header(header::CONTENT_LENGTH, length);
            }
            outgoing = outgoing.body(held.lend(sent));
        }
        None => {
            let _ = sent.send(());
        }
    }
    // The origin has `origin.request_timeout` to answer once the body is all there; while it
    // comes, `limits.body_timeout` bounds each silence.
    let answered = tokio::select! {
        r = outgoing.send() => Some(r),
        () = answer_due(body_sent, edge.origin_timeout) => None,
    };
    let untouched = body.is_none_or(HeldBody::untouched);
    let (error, connect) = match answered {
        Some(Ok(answer)) => return Attempt::Done(Ok(answer)),
        Some(Err(e)) if stalled(&e) => {
            // The client's silence, not the origin's: another origin would wait the same.
            return Attempt::Done(Err(EdgeError::BodyTimeout(edge.connections.limits().body_timeout)));
        }
        Some(Err(e)) if e.is_timeout() => (EdgeError::OriginTimeout, e.is_connect()),
        // Without the URL: its query may hold an upload signature.
        Some(Err(e)) => {
            let connect = e.is_connect();
            (EdgeError::OriginUnavailable(e.without_url().to_string()), connect)
        }
        None => (EdgeError::OriginTimeout, false),
    };
    if next_origin_may_take(method, connect, untouched) { Attempt::Next(error) } else { Attempt::Done(Err(error)) }
}

/// Whether a request that failed at one origin may be sent to the next. Only while its body, if
/// any, is still here to send (`untouched`), and then: after a failed connection (refused, timed
/// out, unresolved; `connect`), since no byte of the request went anywhere; or, whatever failed,
/// for a safe method (`GET`, `HEAD`, `OPTIONS`), which changes nothing at an origin that did
/// get it. Anything else may have reached the origin and acted there (a `PATCH` of an upload
/// body half taken in, a `POST` that created something): the client hears of the failure and
/// decides, as tus does with a `HEAD` for the offset to resume from.
fn next_origin_may_take(method: &Method, connect: bool, untouched: bool) -> bool {
    untouched && (connect || method.is_safe())
}

/// A request body, kept for the one attempt that reaches an origin. Every attempt borrows it
/// ([`HeldBody::lend`]), but it is handed over only when that attempt's connection asks for its
/// first byte, which hyper does only once connected (its client connects before it takes the
/// request; a connect error is one `connection_for` returned). So an attempt that got no
/// connection leaves the body whole here for the next origin, and nothing of it is buffered.
struct HeldBody {
    /// `content-length`, when the request said.
    length: Option<u64>,
    frames: Arc<Mutex<Option<Frames>>>,
}

type Frames = futures_util::stream::BoxStream<'static, Result<Bytes, std::io::Error>>;

impl HeldBody {
    fn new(length: Option<u64>, frames: Frames) -> Self {
        Self { length, frames: Arc::new(Mutex::new(Some(frames))) }
    }

    /// The body for one attempt, taking the client's bytes when first polled; `sent` fires
    /// once they have all gone.
    fn lend(&self, sent: oneshot::Sender<()>) -> reqwest::Body {
        let held = self.frames.clone();
        let mut taken: Option<Frames> = None;
        let mut sent = Some(sent);
        let stream = futures_util::stream::poll_fn(move |cx| {
            if taken.is_none() {
                taken = held.lock().expect("body lock").take();
            }
            // Never: a body once taken is never lent again (`next_origin_may_take`).
            let Some(frames) = taken.as_mut() else {
                return Poll::Ready(Some(Err(std::io::Error::other("the body went to another origin"))));
            };
            let next = frames.poll_next_unpin(cx);
            if let Poll::Ready(None) = next
                && let Some(sent) = sent.take()
            {
                let _ = sent.send(());
            }
            next
        });
        reqwest::Body::wrap_stream(stream)
    }

    /// Whether no attempt has taken any of the body.
    fn untouched(&self) -> bool {
        self.frames.lock().expect("body lock").is_some()
    }
}

/// The body a request carries, by its framing rather than its method: `content-length` when
/// it says (0: none), else whatever frames come (HTTP/1.1 chunked, an h2 or h3 stream that
/// did not end with its headers). `None` when there is no body at all.
async fn body_of(req: Request) -> Result<Option<HeldBody>, EdgeError> {
    let length = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).map(str::parse::<u64>);
    let length = match length {
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            return Err(EdgeError::BadRequest("bad_content_length", "content-length is not a number".into()));
        }
        None => None,
    };
    let mut body = req.into_body();
    if length == Some(0) || hyper::body::Body::is_end_stream(&body) {
        return Ok(None);
    }
    // An h3 request says whether a body follows only by sending one or ending the stream.
    let first = match length {
        Some(_) => None,
        None => match body.frame().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(body_error(&e)),
            Some(Ok(frame)) => Some(frame),
        },
    };
    let frames = futures_util::stream::iter(first.map(Ok)).chain(BodyStream::new(body));
    let data = frames.filter_map(|f| async move {
        match f {
            Ok(frame) => frame.into_data().ok().map(Ok),
            Err(e) => Some(Err(e)),
        }
    });
    Ok(Some(HeldBody::new(length, data.boxed())))
}

/// Resolves `wait` after the body was all sent; never if it broke off (the request fails).
async fn answer_due(body_sent: oneshot::Receiver<()>, wait: std::time::Duration) {
    match body_sent.await {
        Ok(()) => tokio::time::sleep(wait).await,
        Err(_) => std::future::pending().await,
    }
}

fn body_error(e: &std::io::Error) -> EdgeError {
    match crate::listen::policy::stall_of(e) {
        Some(after) => EdgeError::BodyTimeout(after),
        None => EdgeError::BadRequest("bad_body", "the request body broke off".into()),
    }
}

/// Whether a failed origin request failed because the client's body stalled.
fn stalled(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.downcast_ref::<std::io::Error>().is_some_and(|io| crate::listen::policy::stall_of(io).is_some()) {
            return true;
        }
        source = err.source();
    }
    false
}

/// Drops the hop-by-hop headers and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|n| n.trim().to_ascii_lowercase()))
        .collect();
    for name in HOP_BY_HOP.iter().copied().chain(named.iter().map(String::as_str)) {
        headers.remove(name);
    }
}

fn host(req: &Request) -> Option<String> {
    req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Points a URL at any of the origins (whichever answered: they are one service) at this PoP.
/// An origin matches only up to a boundary (`http://o:80` is no prefix of `http://o:8080/`),
/// and the longest match wins (`http://o/api` over `http://o` for `http://o/api/v1/...`).
fn rewrite(url: &str, origins: &[String], here: &str) -> String {
    origins
        .iter()
        .filter_map(|o| url.strip_prefix(o.as_str()))
        .filter(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']))
        .min_by_key(|rest| rest.len())
        .map_or_else(|| url.to_owned(), |rest| format!("{here}{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_locations_point_here() {
        let origins = vec!["http://origin:8080".to_owned()];
        assert_eq!(
            rewrite("http://origin:8080/v1/uploads/ab?sig=1", &origins, "https://pop:8443"),
            "https://pop:8443/v1/uploads/ab?sig=1"
        );
        assert_eq!(rewrite("https://elsewhere/x", &origins, "https://pop"), "https://elsewhere/x");
    }

    #[test]
    fn locations_of_whichever_origin_answered_point_here() {
        let origins = ["http://o:80", "http://o:8080", "http://p/api"].map(String::from);
        let here = "https://pop";
        assert_eq!(rewrite("http://o:8080/v1/uploads/u", &origins, here), "https://pop/v1/uploads/u");
        assert_eq!(rewrite("http://o:80/v1/uploads/u", &origins, here), "https://pop/v1/uploads/u");
        assert_eq!(rewrite("http://o:8088/v1/uploads/u", &origins, here), "http://o:8088/v1/uploads/u");
        assert_eq!(rewrite("http://p/api?x", &origins, here), "https://pop?x");
        let nested = ["http://p".to_owned(), "http://p/api".to_owned()];
        assert_eq!(rewrite("http://p/api/v1/uploads/u", &nested, here), "https://pop/v1/uploads/u");
    }

    #[test]
    fn only_what_cannot_have_reached_an_origin_goes_to_the_next() {
        // Nothing sent: any method, while its body is still here.
        assert!(next_origin_may_take(&Method::PATCH, true, true));
        assert!(next_origin_may_take(&Method::POST, true, true));
        assert!(!next_origin_may_take(&Method::PATCH, true, false));
        // Sent, or maybe sent: only what is safe to ask twice.
        assert!(next_origin_may_take(&Method::HEAD, false, true));
        assert!(next_origin_may_take(&Method::GET, false, true));
        assert!(!next_origin_may_take(&Method::POST, false, true));
        assert!(!next_origin_may_take(&Method::DELETE, false, true));
        assert!(!next_origin_may_take(&Method::PATCH, false, false));
    }

    #[tokio::test]
    async fn a_held_body_goes_whole_to_the_one_attempt_that_reads_it() {
        let chunks = ["up", "load"].map(|s| Ok(Bytes::from_static(s.as_bytes())));
        let held = HeldBody::new(None, futures_util::stream::iter(chunks).boxed());
        // An attempt that never got a connection drops its body unread.
        drop(held.lend(oneshot::channel().0));
        assert!(held.untouched());
        let (sent, all_sent) = oneshot::channel();
        assert_eq!(read(held.lend(sent)).await.unwrap(), "upload");
        assert!(!held.untouched());
        assert!(all_sent.await.is_ok(), "the end of the body is signalled");
        assert!(read(held.lend(oneshot::channel().0)).await.is_err(), "never sent twice");
    }

    async fn read(body: reqwest::Body) -> Result<Bytes, String> {
        body.collect().await.map(|c| c.to_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn hop_by_hop_headers_stay_on_their_hop() {
        let mut h = http::HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("x-secret-hop", "1"),
            ("content-type", "application/json"),
            ("upload-offset", "10"),
        ] {
            h.insert(http::HeaderName::from_static(k), http::HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "upload-offset"]);
    }
}

//! What the PoP passes through to the origin without caching: the video API (not on a
//! partner's PoP) and regional tus uploads. Never keys: players reach the key service
//! directly. Bodies stream both ways; nothing is buffered whole. Upload URLs are checked here
//! first, so a forged one never costs the origin a byte.

use std::sync::Arc;

use futures_util::StreamExt;
use http::{Method, header};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::Frame;
use tokio::sync::oneshot;

use crate::Edge;
use crate::error::EdgeError;
use crate::flow::{Protocol, Request};
use crate::respond::{self, Response};

/// Request headers worth passing on. Nothing hop-by-hop is among them; the body's framing
/// (`content-length`) is set from what the request carries.
const FORWARDED: [&str; 13] = [
    "authorization",
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
/// URLs (tus `Location`) pointing at this PoP instead.
pub async fn forward(edge: &Arc<Edge>, req: Request, protocol: Protocol) -> Result<Response, EdgeError> {
    let here = format!(
        "{}://{}",
        protocol.scheme(),
        req.uri().authority().map(|a| a.to_string()).or_else(|| host(&req)).unwrap_or_default()
    );
    let method = Method::from_bytes(req.method().as_str().as_bytes()).map_err(|_| EdgeError::NotFound)?;
    let path = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
    let headers: Vec<(&'static str, String)> = FORWARDED
        .iter()
        .filter_map(|name| req.headers().get(*name).and_then(|v| v.to_str().ok()).map(|v| (*name, v.to_owned())))
        .collect();
    let base = edge.upstream.origins().first().cloned().ok_or(EdgeError::OriginUnavailable("no origin".into()))?;
    let mut outgoing = edge.upstream.passthrough().request(method, format!("{base}{path}"));
    for (name, value) in &headers {
        outgoing = outgoing.header(*name, value);
    }
    let (sent, body_sent) = oneshot::channel();
    if let Some((length, body)) = body_of(req, sent).await? {
        if let Some(length) = length {
            outgoing = outgoing.header(header::CONTENT_LENGTH, length);
        }
        outgoing = outgoing.body(body);
    }
    // The origin has `origin.request_timeout` to answer once the body is all there; while it
    // comes, `limits.body_timeout` bounds each silence.
    let answered = async {
        tokio::select! {
            r = outgoing.send() => Some(r),
            () = answer_due(body_sent, edge.origin_timeout) => None,
        }
    };
    let answer = answered.await.ok_or(EdgeError::OriginTimeout)?.map_err(|e| {
        if stalled(&e) {
            EdgeError::BodyTimeout(edge.connections.limits().body_timeout)
        } else if e.is_timeout() {
            EdgeError::OriginTimeout
        } else {
            // Without the URL: its query may hold an upload signature.
            EdgeError::OriginUnavailable(e.without_url().to_string())
        }
    })?;
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

/// The body a request carries, by its framing rather than its method: `content-length` when
/// it says (0: none), else whatever frames come (HTTP/1.1 chunked, an h2 or h3 stream that
/// did not end with its headers). `None` when there is no body at all.
async fn body_of(req: Request, sent: oneshot::Sender<()>) -> Result<Option<(Option<u64>, reqwest::Body)>, EdgeError> {
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
        let _ = sent.send(());
        return Ok(None);
    }
    // An h3 request says whether a body follows only by sending one or ending the stream.
    let first = match length {
        Some(_) => None,
        None => match body.frame().await {
            None => {
                let _ = sent.send(());
                return Ok(None);
            }
            Some(Err(e)) => return Err(body_error(&e)),
            Some(Ok(frame)) => Some(frame),
        },
    };
    let frames = futures_util::stream::iter(first.map(Ok)).chain(BodyStream::new(body));
    let data = frames.filter_map(|f| async move {
        match f {
            Ok(frame) => frame.into_data().ok().map(Ok::<_, std::io::Error>),
            Err(e) => Some(Err(e)),
        }
    });
    let mut sent = Some(sent);
    let end = futures_util::stream::poll_fn(move |_| {
        if let Some(sent) = sent.take() {
            let _ = sent.send(());
        }
        std::task::Poll::Ready(None)
    });
    Ok(Some((length, reqwest::Body::wrap_stream(data.chain(end)))))
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

/// Points an origin URL at this PoP.
fn rewrite(url: &str, origins: &[String], here: &str) -> String {
    origins
        .iter()
        .find_map(|o| url.strip_prefix(o.as_str()).map(|rest| format!("{here}{rest}")))
        .unwrap_or_else(|| url.to_owned())
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

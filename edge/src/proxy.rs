//! What the PoP passes through to the origin without caching: the key service (the origin
//! checks the token itself; keys are never stored here), the video API, and regional tus
//! uploads. Bodies stream both ways; nothing is buffered whole. Upload URLs are checked here
//! first, so a forged one never costs the origin a byte.

use std::sync::Arc;

use futures_util::StreamExt;
use http::{Method, header};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::Frame;

use crate::Edge;
use crate::error::EdgeError;
use crate::flow::{Protocol, Request};
use crate::respond::{self, Response};

/// Request headers worth passing on.
const FORWARDED: [&str; 14] = [
    "authorization",
    "content-type",
    "content-length",
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
    let bodyless = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE);
    let base = edge.upstream.origins().first().cloned().ok_or(EdgeError::OriginUnavailable("no origin".into()))?;
    let mut outgoing = edge.upstream.client().request(method, format!("{base}{path}"));
    for (name, value) in &headers {
        outgoing = outgoing.header(*name, value);
    }
    if !bodyless {
        let body = BodyStream::new(req.into_body()).filter_map(|f| async move {
            match f {
                Ok(frame) => frame.into_data().ok().map(Ok::<_, std::io::Error>),
                Err(e) => Some(Err(e)),
            }
        });
        outgoing = outgoing.body(reqwest::Body::wrap_stream(body));
    }
    let answer = outgoing.send().await.map_err(|e| {
        if e.is_timeout() { EdgeError::OriginTimeout } else { EdgeError::OriginUnavailable(e.to_string()) }
    })?;
    let status = answer.status();
    let mut response_headers = answer.headers().clone();
    if let Some(location) = response_headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) {
        let rewritten = rewrite(location, edge.upstream.origins(), &here);
        if let Ok(v) = http::HeaderValue::from_str(&rewritten) {
            response_headers.insert(header::LOCATION, v);
        }
    }
    let stream = answer.bytes_stream().map(|c| c.map(Frame::data).map_err(std::io::Error::other));
    let mut r = respond::with(status, BodyExt::boxed(StreamBody::new(stream)));
    for (name, value) in response_headers.iter() {
        if name != header::TRANSFER_ENCODING && name != header::CONNECTION {
            r.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(r)
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
}

//! Response building, and the one place an [`EdgeError`] becomes a status and a body.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

use crate::error::EdgeError;

/// Body of every response: a buffer or a stream, on any protocol.
pub type Body = BoxBody<Bytes, std::io::Error>;
/// A response.
pub type Response = http::Response<Body>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// A response with a status and a body.
pub fn with(status: StatusCode, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r
}

/// Sets a header from a string (invalid values are skipped rather than failing the response).
pub fn set(r: &mut Response, name: impl header::IntoHeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// Seconds a viewer is told to wait when the origin is still making an object (its own
/// `Retry-After` for a segment being encoded is 2 s).
const ORIGIN_BUSY_RETRY_AFTER: &str = "2";

/// `{"error": {"code", "message"}}` with the error's status, never cached.
pub fn error(e: &EdgeError) -> Response {
    let body = serde_json::json!({ "error": { "code": e.code(), "message": e.to_string() } });
    let mut r = with(e.status(), full(body.to_string()));
    set(&mut r, header::CONTENT_TYPE, "application/json");
    set(&mut r, header::CACHE_CONTROL, "no-store");
    match e {
        EdgeError::RangeNotSatisfiable(len) => set(&mut r, header::CONTENT_RANGE, &format!("bytes */{len}")),
        EdgeError::OriginBusy => set(&mut r, header::RETRY_AFTER, ORIGIN_BUSY_RETRY_AFTER),
        _ => {}
    }
    r
}

//! HTTP plumbing shared by every handler: body types, response builders, and the one place
//! that turns an [`Error`] into a response (status, machine-readable code, human message).

pub mod limits;
pub mod server;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use serde::Serialize;

use crate::error::Error;

/// Response body: a full buffer or a stream.
pub type Body = BoxBody<Bytes, std::io::Error>;
/// A response.
pub type Response = http::Response<Body>;
/// An incoming request: its body fails when the client stalls (see `limits::RequestBody`).
pub type Request = http::Request<limits::RequestBody>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A response with a status and an empty body.
pub fn status(code: StatusCode) -> Response {
    let mut r = Response::new(empty());
    *r.status_mut() = code;
    r
}

/// A JSON response.
pub fn json<T: Serialize>(code: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut r = Response::new(full(bytes));
            *r.status_mut() = code;
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Err(e) => error(&Error::Internal(e.to_string()), ""),
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
    request_id: &'a str,
}

/// The response for an error: `{"error": {"code", "message", "request_id"}}`.
pub fn error(e: &Error, request_id: &str) -> Response {
    let body = ErrorBody { error: ErrorDetail { code: e.code(), message: e.public_message(), request_id } };
    let mut r = json(e.status(), &body);
    if e.status() == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// Sets a header from a string known to be a valid header value.
pub fn set(r: &mut Response, name: impl header::IntoHeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// Reads a request body to the end, refusing more than `limit` bytes.
pub async fn read_body(req: Request, limit: usize) -> crate::Result<Bytes> {
    let limited = http_body_util::Limited::new(req.into_body(), limit);
    limited.collect().await.map(|c| c.to_bytes()).map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            Error::api(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body exceeds {limit} bytes"),
            )
        } else if let Some(limits::BodyError::Stalled(after)) = e.downcast_ref() {
            body_stalled(*after)
        } else {
            Error::bad_request("body_interrupted", "the request body ended early")
        }
    })
}

/// 408 for a body the client stopped sending.
pub fn body_stalled(after: std::time::Duration) -> Error {
    Error::api(
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        format!("no part of the request body arrived for {} s", after.as_secs_f32()),
    )
}

/// Parses a JSON request body.
pub async fn read_json<T: serde::de::DeserializeOwned>(req: Request) -> crate::Result<T> {
    let bytes = read_body(req, 64 * 1024).await?;
    serde_json::from_slice(&bytes).map_err(|e| Error::bad_request("bad_json", format!("invalid JSON body: {e}")))
}

//! HTTP plumbing shared by every handler: body types, response builders, and the one place
//! that turns an [`Error`] into a response (status, machine-readable code, human message).

pub mod limits;
pub mod server;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use serde::Serialize;

use crate::error::{Error, Kind};

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

/// The one table from what kind of failure an error is to its HTTP status.
pub fn status_of(kind: Kind) -> StatusCode {
    match kind {
        Kind::Invalid => StatusCode::BAD_REQUEST,
        Kind::Unauthenticated => StatusCode::UNAUTHORIZED,
        Kind::Forbidden => StatusCode::FORBIDDEN,
        Kind::NotFound => StatusCode::NOT_FOUND,
        Kind::Timeout => StatusCode::REQUEST_TIMEOUT,
        Kind::Conflict => StatusCode::CONFLICT,
        Kind::Gone => StatusCode::GONE,
        Kind::Precondition => StatusCode::PRECONDITION_FAILED,
        Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Kind::UnsupportedMedia => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Kind::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
        Kind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        // tus's own status for a body that does not match Upload-Checksum.
        Kind::ChecksumMismatch => StatusCode::from_u16(460).expect("a valid status"),
        Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The response for an error: `{"error": {"code", "message", "request_id"}}`, with its
/// status from `status_of`.
pub fn error(e: &Error, request_id: &str) -> Response {
    let body = ErrorBody { error: ErrorDetail { code: e.code(), message: e.public_message(), request_id } };
    let mut r = json(status_of(e.kind()), &body);
    if e.kind() == Kind::Unauthenticated {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// A refusal a client should retry after `seconds` (`Retry-After`).
pub fn retry_later(kind: Kind, code: &'static str, message: &str, seconds: u32) -> Response {
    let mut r = error(&Error::refused(kind, code, message.to_owned()), "");
    set(&mut r, header::RETRY_AFTER.as_str(), &seconds.to_string());
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
            Error::refused(Kind::TooLarge, "body_too_large", format!("the request body exceeds {limit} bytes"))
        } else if let Some(limits::BodyError::Stalled(after)) = e.downcast_ref() {
            body_stalled(*after)
        } else {
            Error::bad_request("body_interrupted", "the request body ended early")
        }
    })
}

/// 408 for a body the client stopped sending.
pub fn body_stalled(after: std::time::Duration) -> Error {
    Error::refused(
        Kind::Timeout,
        "body_timeout",
        format!("no part of the request body arrived for {} s", after.as_secs_f32()),
    )
}

/// Reads an optional JSON body of at most `limit` bytes: `T::default()` when there is none.
pub async fn read_json_or_default<T: serde::de::DeserializeOwned + Default>(
    req: Request,
    limit: usize,
) -> crate::Result<T> {
    let bytes = read_body(req, limit).await?;
    if bytes.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| Error::bad_request("bad_json", format!("invalid JSON body: {e}")))
}

/// Reads a JSON body (at most 64 KiB) into `T`: `400 bad_json` when it is not one.
pub async fn read_json<T: serde::de::DeserializeOwned>(req: Request) -> crate::Result<T> {
    let bytes = read_body(req, 64 * 1024).await?;
    serde_json::from_slice(&bytes).map_err(|e| Error::bad_request("bad_json", format!("invalid JSON body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [Kind; 15] = [
        Kind::Invalid,
        Kind::Unauthenticated,
        Kind::Forbidden,
        Kind::NotFound,
        Kind::Timeout,
        Kind::Conflict,
        Kind::Gone,
        Kind::Precondition,
        Kind::TooLarge,
        Kind::UnsupportedMedia,
        Kind::RangeNotSatisfiable,
        Kind::RateLimited,
        Kind::ChecksumMismatch,
        Kind::Unavailable,
        Kind::Internal,
    ];

    #[test]
    fn every_kind_has_its_own_status_and_only_server_side_ones_are_5xx() {
        let statuses: std::collections::HashSet<u16> = KINDS.iter().map(|&k| status_of(k).as_u16()).collect();
        assert_eq!(statuses.len(), KINDS.len(), "two kinds share a status");
        for kind in KINDS {
            assert_eq!(status_of(kind).is_server_error(), kind.is_server_side(), "{kind:?}");
        }
        assert_eq!(status_of(Kind::ChecksumMismatch).as_u16(), 460, "tus's checksum status");
    }

    #[test]
    fn an_error_response_carries_its_code_and_a_challenge_when_unauthenticated() {
        let r = error(&Error::refused(Kind::Unauthenticated, "missing_token", "no token"), "req-1");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let r = error(&Error::Database("down".into()), "req-2");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(Error::Database("down".into()).is_retryable());
        assert!(!Error::bad_request("bad_json", "no").is_retryable());
        assert!(Error::refused(Kind::RateLimited, "slow_down", "later").is_retryable());
    }
}

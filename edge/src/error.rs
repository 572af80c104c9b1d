//! The edge's one error type; `respond::error` turns it into a response. What a client reads
//! (`Display`) never names the origin or an internal detail: that goes to the logs only
//! ([`EdgeError::detail`]).

use http::StatusCode;

/// What can go wrong serving a request.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EdgeError {
    /// The playback token or upload URL is refused.
    #[error("{1}")]
    Forbidden(&'static str, String),
    /// A signed URL past its expiry.
    #[error("{1}")]
    Expired(&'static str, String),
    /// An upload larger than this PoP takes in.
    #[error("uploads up to {0} bytes are taken here")]
    TooLarge(u64),
    /// Nothing here (or at the origin).
    #[error("not found")]
    NotFound,
    /// The origin says it is gone (taken down).
    #[error("gone")]
    Gone,
    /// A bad path or request.
    #[error("{1}")]
    BadRequest(&'static str, String),
    /// `Range` outside the object.
    #[error("range not satisfiable")]
    RangeNotSatisfiable(u64),
    /// The origin could not be reached or answered with an error; the detail (which origin,
    /// what it said) is for the logs.
    #[error("the origin is unavailable")]
    OriginUnavailable(String),
    /// The origin took too long.
    #[error("origin timed out")]
    OriginTimeout,
    /// The origin is busy making the object (a segment encoded when first asked for) and
    /// said when to ask again.
    #[error("the object is being made; ask again shortly")]
    OriginBusy,
    /// The client went silent inside its request body for longer than `limits.body_timeout`.
    #[error("the request body stalled for longer than {0:?}")]
    BodyTimeout(std::time::Duration),
    /// A takedown is held in memory only: the PoP would serve it again after a restart.
    #[error("purges are not durable: {0}")]
    PurgesNotDurable(String),
    /// No heartbeat has been answered for longer than `origin.max_purge_lag`: takedowns may
    /// have been missed, so cached objects are not served until one is.
    #[error("this PoP has not heard about takedowns for too long; ask another PoP")]
    PurgesBehind,
    /// A request that needs a PoP's tier credential (a child asking its parent) without a
    /// valid one.
    #[error("a PoP tier credential is required")]
    Unauthenticated,
    /// A child's request that has passed this PoP already (`CDN-Loop`): parents form a cycle.
    #[error("this PoP is on the request's path already (CDN-Loop): its parents form a cycle")]
    LoopDetected,
    /// A bug; the detail is for the logs.
    #[error("internal error")]
    Internal(String),
}

impl EdgeError {
    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Forbidden(..) => StatusCode::FORBIDDEN,
            Self::Expired(..) => StatusCode::GONE,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Gone => StatusCode::GONE,
            Self::BadRequest(..) => StatusCode::BAD_REQUEST,
            Self::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::OriginUnavailable(_) => StatusCode::BAD_GATEWAY,
            Self::OriginTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::OriginBusy => StatusCode::SERVICE_UNAVAILABLE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::PurgesNotDurable(_) | Self::PurgesBehind => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::LoopDetected => StatusCode::LOOP_DETECTED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the logs get besides the message: the internal detail clients never see.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::OriginUnavailable(d) | Self::Internal(d) => Some(d),
            _ => None,
        }
    }

    /// Whether asking again can succeed without the client changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::OriginUnavailable(_)
                | Self::OriginTimeout
                | Self::OriginBusy
                | Self::PurgesNotDurable(_)
                | Self::PurgesBehind
                | Self::Internal(_)
        )
    }

    /// Machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Forbidden(code, _) | Self::BadRequest(code, _) | Self::Expired(code, _) => code,
            Self::TooLarge(_) => "upload_too_large",
            Self::NotFound => "not_found",
            Self::Gone => "gone",
            Self::RangeNotSatisfiable(_) => "range_not_satisfiable",
            Self::OriginUnavailable(_) => "origin_unavailable",
            Self::OriginTimeout => "origin_timeout",
            Self::OriginBusy => "origin_busy",
            Self::BodyTimeout(_) => "body_timeout",
            Self::PurgesNotDurable(_) => "purges_not_durable",
            Self::PurgesBehind => "purges_behind",
            Self::Unauthenticated => "unauthenticated",
            Self::LoopDetected => "loop_detected",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<pop_config::token::TokenError> for EdgeError {
    fn from(e: pop_config::token::TokenError) -> Self {
        // Same statuses as the origin gives for the same refusal.
        if e == pop_config::token::TokenError::UrlExpired {
            Self::Expired(e.code(), e.to_string())
        } else {
            Self::Forbidden(e.code(), e.to_string())
        }
    }
}

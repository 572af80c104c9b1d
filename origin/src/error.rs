//! The origin's one error type. Every error says what kind of failure it is (`Kind`: the
//! client's fault and how, or the server's), whether trying again may help, and its
//! machine-readable code; infrastructure failures keep their source. HTTP statuses are not
//! chosen here: `web::status_of` is the one table from kinds to statuses, and `web::error` the one
//! place that turns an error into a response.

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the origin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request refused: what kind of refusal, a machine-readable code and a message.
    #[error("{message}")]
    Refused {
        /// What kind of refusal.
        kind: Kind,
        /// Machine-readable code.
        code: &'static str,
        /// Human message.
        message: String,
    },
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// The metadata database failed.
    #[error("database: {0}")]
    Database(#[source] Cause),
    /// Blob storage failed.
    #[error("storage: {0}")]
    Storage(#[source] Cause),
    /// The queue failed.
    #[error("queue: {0}")]
    Queue(#[source] Cause),
    /// The metadata cache failed.
    #[error("cache: {0}")]
    Cache(#[source] Cause),
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A value that did not encode or decode as JSON.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A bug or impossible state.
    #[error("internal: {0}")]
    Internal(String),
}

/// An infrastructure failure's cause, kept whole for the logs (never shown to clients): the
/// library's own error, or a message.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A cause with what was being done when it happened.
#[derive(Debug, thiserror::Error)]
#[error("{doing}: {source}")]
pub struct While {
    doing: String,
    #[source]
    source: Cause,
}

impl While {
    /// `source`, which happened while `doing`.
    pub fn cause(doing: impl Into<String>, source: impl Into<Cause>) -> Cause {
        Box::new(Self { doing: doing.into(), source: source.into() })
    }
}

/// What kind of failure an error is, in the domain's words. `web::status_of` maps each to its
/// HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The request is malformed or asks for something impossible.
    Invalid,
    /// No credential, or one that is not valid.
    Unauthenticated,
    /// A valid credential that does not allow this.
    Forbidden,
    /// No such thing.
    NotFound,
    /// The request body stopped arriving.
    Timeout,
    /// The resource is not in a state that allows it (an offset moved, a video completed).
    Conflict,
    /// It was there and is gone for good (taken down, expired).
    Gone,
    /// A protocol precondition failed (a tus version).
    Precondition,
    /// More bytes than allowed.
    TooLarge,
    /// A body of a type not accepted here.
    UnsupportedMedia,
    /// A byte range outside the object.
    RangeNotSatisfiable,
    /// Too many requests from this client or token: later.
    RateLimited,
    /// The body does not match its checksum (tus).
    ChecksumMismatch,
    /// Something this server depends on is not answering, or work is not done yet: later.
    Unavailable,
    /// A bug or an unexpected state of ours.
    Internal,
}

impl Kind {
    /// Whether the server, not the client, failed.
    pub fn is_server_side(self) -> bool {
        matches!(self, Self::Unavailable | Self::Internal)
    }
}

impl Error {
    /// A refusal.
    pub fn refused(kind: Kind, code: &'static str, message: impl Into<String>) -> Self {
        Self::Refused { kind, code, message: message.into() }
    }

    /// A missing resource.
    pub fn not_found(what: &str) -> Self {
        Self::refused(Kind::NotFound, "not_found", format!("{what} not found"))
    }

    /// A malformed request, with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::refused(Kind::Invalid, code, message)
    }

    /// A credential that does not allow this, with a code.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::refused(Kind::Forbidden, code, message)
    }

    /// Wraps an IO error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Refused { kind, .. } => *kind,
            Self::Database(_) | Self::Queue(_) | Self::Cache(_) => Kind::Unavailable,
            _ => Kind::Internal,
        }
    }

    /// Whether the same request may succeed later without changing it: a service that is
    /// down, a rate limit, work not done yet, a storage hiccup. Refusals of the request itself
    /// are not, nor are bugs.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), Kind::Unavailable | Kind::RateLimited | Kind::Timeout)
            || matches!(self, Self::Storage(_) | Self::Io { .. })
    }

    /// Machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Refused { code, .. } => code,
            Self::Config(_) => "config",
            Self::Database(_) => "database_unavailable",
            Self::Storage(_) => "storage_error",
            Self::Queue(_) => "queue_unavailable",
            Self::Cache(_) => "cache_unavailable",
            Self::Io { .. } => "io_error",
            Self::Json(_) | Self::Internal(_) => "internal",
        }
    }

    /// The message a client may see (infrastructure details stay in the logs).
    pub fn public_message(&self) -> String {
        match self {
            Self::Refused { message, .. } => message.clone(),
            _ => "the server could not complete the request; it has been logged".into(),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(Box::new(e))
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::Database(Box::new(e))
    }
}

impl From<opendal::Error> for Error {
    fn from(e: opendal::Error) -> Self {
        if e.kind() == opendal::ErrorKind::NotFound { Self::not_found("object") } else { Self::Storage(Box::new(e)) }
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        Self::Cache(Box::new(e))
    }
}

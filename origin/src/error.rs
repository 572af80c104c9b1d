//! The origin's one error type. Every error knows its HTTP status and machine-readable code;
//! `http::response::error` is the one place that turns it into a response.

use http::StatusCode;

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the origin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A client error with its own status and code.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: StatusCode,
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
    Database(String),
    /// Blob storage failed.
    #[error("storage: {0}")]
    Storage(String),
    /// The queue failed.
    #[error("queue: {0}")]
    Queue(String),
    /// The metadata cache failed.
    #[error("cache: {0}")]
    Cache(String),
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A bug or impossible state.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// A client error.
    pub fn api(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Api { status, code, message: message.into() }
    }

    /// 404 for a missing resource.
    pub fn not_found(what: &str) -> Self {
        Self::api(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::api(StatusCode::BAD_REQUEST, code, message)
    }

    /// 403 with a code.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::api(StatusCode::FORBIDDEN, code, message)
    }

    /// Wraps an IO error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Api { status, .. } => *status,
            Self::Database(_) | Self::Queue(_) | Self::Cache(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Api { code, .. } => code,
            Self::Config(_) => "config",
            Self::Database(_) => "database_unavailable",
            Self::Storage(_) => "storage_error",
            Self::Queue(_) => "queue_unavailable",
            Self::Cache(_) => "cache_unavailable",
            Self::Io { .. } => "io_error",
            Self::Internal(_) => "internal",
        }
    }

    /// The message a client may see (infrastructure details stay in the logs).
    pub fn public_message(&self) -> String {
        match self {
            Self::Api { message, .. } => message.clone(),
            _ => "the server could not complete the request; it has been logged".into(),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::Database(e.to_string())
    }
}

impl From<opendal::Error> for Error {
    fn from(e: opendal::Error) -> Self {
        if e.kind() == opendal::ErrorKind::NotFound { Self::not_found("object") } else { Self::Storage(e.to_string()) }
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        Self::Cache(e.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::Internal(format!("json: {e}"))
    }
}

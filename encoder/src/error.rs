//! The encoder's one error type, and how each error maps to a machine-readable code,
//! a process exit status (sysexits) and a retry decision.

use serde::{Deserialize, Serialize};

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an input was refused. Each variant has a stable machine-readable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Rejection {
    /// The input has zero bytes.
    EmptyFile,
    /// The input is larger than the upload limit.
    FileTooLarge,
    /// No demuxer recognises the input.
    NotMedia,
    /// A demuxer recognised it, but it cannot be read or decoded to the end.
    CorruptMedia,
    /// Audio-only or data-only input.
    NoVideoStream,
    /// A single still picture rather than a video.
    StillImage,
    /// Width or height outside the accepted range.
    DimensionsOutOfRange,
    /// Duration outside the accepted range.
    DurationOutOfRange,
    /// The video codec has no decoder here.
    UnsupportedCodec,
}

impl Rejection {
    /// Stable code, as sent over the API and printed by the CLI.
    pub fn code(self) -> &'static str {
        match self {
            Self::EmptyFile => "empty_file",
            Self::FileTooLarge => "file_too_large",
            Self::NotMedia => "not_media",
            Self::CorruptMedia => "corrupt_media",
            Self::NoVideoStream => "no_video_stream",
            Self::StillImage => "still_image",
            Self::DimensionsOutOfRange => "dimensions_out_of_range",
            Self::DurationOutOfRange => "duration_out_of_range",
            Self::UnsupportedCodec => "unsupported_codec",
        }
    }
}

/// Every failure the encoder reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input was refused; retrying cannot help.
    #[error("input rejected ({}): {message}", .reason.code())]
    Rejected {
        /// Which rule refused it.
        reason: Rejection,
        /// What a human should know.
        message: String,
    },
    /// The pipeline file is not a valid DAG.
    #[error("{0}")]
    Pipeline(#[from] crate::pipeline::PipelineError),
    /// A task kept failing after its retries, or failed in a way retries cannot fix.
    #[error("task {task} failed ({code}) after {attempts} attempt(s): {message}")]
    Task {
        /// The task id.
        task: String,
        /// The failure's code.
        code: String,
        /// The failure's message.
        message: String,
        /// How many attempts were made.
        attempts: u32,
        /// Whether the root cause is the input (exit status 65).
        rejected: bool,
    },
    /// FFmpeg reported an error that is not the input's fault.
    #[error("ffmpeg {context}: {message}")]
    Media {
        /// What we were doing.
        context: &'static str,
        /// FFmpeg's message.
        message: String,
    },
    /// A file-system operation failed.
    #[error("{context} {path}: {source}")]
    Io {
        /// What we were doing.
        context: &'static str,
        /// The path involved.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The input file does not exist or cannot be opened.
    #[error("cannot open input {0}")]
    NoInput(String),
    /// A caller passed options that contradict each other.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A bug or an impossible state; the message says which.
    #[error("internal error: {0}")]
    Internal(String),
    /// The job was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// Stable machine-readable code.
    pub fn code(&self) -> &str {
        match self {
            Self::Rejected { reason, .. } => reason.code(),
            Self::Pipeline(_) => "pipeline_invalid",
            Self::Task { code, .. } => code,
            Self::Media { .. } => "media_error",
            Self::Io { .. } => "io_error",
            Self::NoInput(_) => "input_not_found",
            Self::Invalid(_) => "invalid_request",
            Self::Internal(_) => "internal",
            Self::Cancelled => "cancelled",
        }
    }

    /// Process exit status, following sysexits.h.
    pub fn exit_status(&self) -> i32 {
        match self {
            Self::Rejected { .. } => 65,
            Self::Task { rejected: true, .. } => 65,
            Self::Pipeline(_) => 78,
            Self::NoInput(_) => 66,
            Self::Invalid(_) => 64,
            Self::Io { .. } => 74,
            Self::Cancelled => 130,
            _ => 70,
        }
    }

    /// Whether running the same work again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Io { .. } | Self::Media { .. })
    }

    /// Only FFmpeg's inspection and splitting refuse inputs.
    #[cfg(feature = "ffmpeg")]
    pub(crate) fn rejected(reason: Rejection, message: impl Into<String>) -> Self {
        Self::Rejected { reason, message: message.into() }
    }

    pub(crate) fn io(context: &'static str, path: impl AsRef<std::path::Path>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.as_ref().display().to_string();
        move |source| Self::Io { context, path, source }
    }
}

//! The library's one error type.

use std::path::{Path, PathBuf};

/// What can stop the harness (a failed request is not one of these: it is measured).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A scenario file that cannot be used; the message names the field.
    #[error("scenario {source_name}: {message}")]
    Scenario {
        /// The file (or built-in scenario) name.
        source_name: String,
        /// What is wrong, with the field.
        message: String,
    },
    /// A price table that cannot be used; the message names the field.
    #[error("prices {source_name}: {message}")]
    Prices {
        /// The file name.
        source_name: String,
        /// What is wrong, with the field.
        message: String,
    },
    /// Options that do not fit together.
    #[error("{0}")]
    Usage(String),
    /// Reading or writing a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TLS set-up (a CA file, a pin).
    #[error("TLS: {0}")]
    Tls(String),
    /// The catalogue could not be read.
    #[error("catalogue: {0}")]
    Catalogue(String),
    /// A report directory without a readable `report.json`.
    #[error("report {}: {message}", path.display())]
    Report {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The upload storm could not start (its individual uploads failing are measured instead).
    #[error("uploads: {0}")]
    Upload(String),
    /// A request trace that cannot be read or written (`--trace`, `replay`).
    #[error("trace {}: {message}", path.display())]
    Trace {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The ffmpeg CLI, used to make an upload source.
    #[error("ffmpeg: {0}")]
    Ffmpeg(String),
}

/// The library's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A closure for `map_err` that names the file.
    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io { path: path.to_owned(), source }
    }
}

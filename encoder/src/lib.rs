//! The encoder: inspect, GOP-aligned split, a DAG of tasks scheduled by a resource manager
//! onto workers, the adaptive ladder, and CMAF/HLS/DASH packaging with HLS AES-128 and/or
//! CENC 'cbcs'.
//!
//! Without the `ffmpeg` feature this crate is only the job contract (pipeline, tasks,
//! ladder, object layout), which the origin uses to plan and serve without linking FFmpeg.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod dag;
pub mod error;
pub mod es;
pub mod event;
pub mod executor;
pub mod jit;
pub mod job;
pub mod ladder;
pub mod layout;
pub mod media;
pub mod package;
pub mod pipeline;
pub mod plan;
pub mod resource;
pub mod store;
pub mod task;
pub mod transcode;

#[cfg(feature = "ffmpeg")]
pub mod cli;
#[cfg(feature = "ffmpeg")]
#[allow(unsafe_code)]
pub mod ffmpeg;

pub use error::{Error, Rejection, Result};

//! The origin: API, resumable uploads, metadata, job orchestration, key service and object
//! serving for PoPs. It plans jobs with the encoder's contract (`encoder` without its
//! `ffmpeg` feature). Its contents arrive with the origin.
#![forbid(unsafe_code)]

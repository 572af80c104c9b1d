//! The edge PoP: HTTP/1.1, HTTP/2 and HTTP/3 serving from a hybrid memory+disk cache,
//! pull-through from the origin with single-flight, token checks, purge and prefetch.
//!
//! It caches opaque HTTP objects and must never depend on FFmpeg, the metadata database or
//! origin internals (checked by `tests/tests/architecture.rs`). Its contents arrive with the
//! edge.
#![forbid(unsafe_code)]

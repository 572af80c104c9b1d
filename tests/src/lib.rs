//! What end-to-end tests share, across crates: generated media and ways to play it, and a
//! log writer to read what a process logged. The
//! tests themselves live in `tests/tests/` (and in each crate's own `tests/`). This library
//! depends on no workspace crate, so any crate may use it in its tests.
#![forbid(unsafe_code)]

pub mod logs;
pub mod media;

//! What end-to-end tests share, across crates: generated media and ways to play it, a log
//! writer to read what a process logged, and a network test bed (hosts in network namespaces
//! behind a router with real delay, loss and partitions). The
//! tests themselves live in `tests/tests/` (and in each crate's own `tests/`). This library
//! depends on no workspace crate, so any crate may use it in its tests.
#![forbid(unsafe_code)]

pub mod logs;
pub mod media;
pub mod netbed;
pub mod ns;

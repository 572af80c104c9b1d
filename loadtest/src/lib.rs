//! The load-test harness operators run against a PoP: a pure HTTP client that depends on
//! no other workspace crate. Its contents arrive with the harness.
#![forbid(unsafe_code)]

//! The PoP's configuration and its contract with the origin (listen addresses, TLS, origin
//! URLs, token keys, cache sizes, admission and prefetch policy).
//!
//! The leaf of the workspace: it depends on no other workspace crate, and the edge depends
//! on nothing else from the workspace. Its contents arrive with the edge.
#![forbid(unsafe_code)]

//! `[limits]`: what one client may hold of a PoP. Every connection, on every protocol, has a
//! deadline for its headers, for silence, and for the gaps in a request body, and the PoP
//! holds only so many connections in all and per client address.

use std::time::Duration;

use crate::defaults;
use crate::document::{Section, count};
use crate::units::{duration, size};

/// h2 and h3 carry the limit as a 32-bit setting; more than this is no limit at all.
const MAX_HEADER_BYTES: u64 = 1 << 20;
/// Below this a browser's ordinary request (cookies aside) no longer fits.
const MIN_HEADER_BYTES: u64 = 4 << 10;

/// Connection and request limits, shared by the TCP (h1, h2) and QUIC (h3) listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections held at once over every viewer listener; more are closed on arrival.
    pub max_connections: u32,
    /// Connections held at once from one client IP address.
    pub max_connections_per_address: u32,
    /// Concurrent requests on one connection: h2 `SETTINGS_MAX_CONCURRENT_STREAMS` and
    /// QUIC's bidirectional stream credit.
    pub max_streams_per_connection: u32,
    /// Largest request header block: the h2 header list, the h3 field section (431 beyond).
    pub max_header_bytes: u64,
    /// From accepting a connection (TLS handshake included) or from the end of the previous
    /// request to the end of the next request's headers.
    pub header_read_timeout: Duration,
    /// A connection that moves no byte either way for this long is closed (TCP), and QUIC's
    /// idle timeout.
    pub idle_timeout: Duration,
    /// The longest wait for the next bytes of a request body.
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: defaults::LIMITS_MAX_CONNECTIONS,
            max_connections_per_address: defaults::LIMITS_MAX_CONNECTIONS_PER_ADDRESS,
            max_streams_per_connection: defaults::LIMITS_MAX_STREAMS_PER_CONNECTION,
            max_header_bytes: defaults::LIMITS_MAX_HEADER_BYTES,
            header_read_timeout: defaults::LIMITS_HEADER_READ_TIMEOUT,
            idle_timeout: defaults::LIMITS_IDLE_TIMEOUT,
            body_timeout: defaults::LIMITS_BODY_TIMEOUT,
        }
    }
}

/// Reads `[limits]`; `origin_wait` is `origin.request_timeout`, which a silent connection must
/// outlast (a viewer waiting for a slow origin's headers moves no byte meanwhile).
pub(crate) fn read(mut s: Section<'_>, origin_wait: Duration) -> Limits {
    let d = Limits::default();
    let limits = Limits {
        max_connections: s.field("max_connections", count).unwrap_or(d.max_connections),
        max_connections_per_address: s
            .field("max_connections_per_address", count)
            .unwrap_or(d.max_connections_per_address),
        max_streams_per_connection: s
            .field("max_streams_per_connection", count)
            .unwrap_or(d.max_streams_per_connection),
        max_header_bytes: s.field("max_header_bytes", size).unwrap_or(d.max_header_bytes),
        header_read_timeout: s.field("header_read_timeout", duration).unwrap_or(d.header_read_timeout),
        idle_timeout: s.field("idle_timeout", duration).unwrap_or(d.idle_timeout),
        body_timeout: s.field("body_timeout", duration).unwrap_or(d.body_timeout),
    };
    report_bad_values(&s, &limits, origin_wait);
    s.finish();
    limits
}

fn report_bad_values(s: &Section<'_>, l: &Limits, origin_wait: Duration) {
    for (key, value) in [
        ("max_connections", l.max_connections),
        ("max_connections_per_address", l.max_connections_per_address),
        ("max_streams_per_connection", l.max_streams_per_connection),
    ] {
        if value == 0 {
            s.report(key, "must be at least 1");
        }
    }
    if l.max_connections_per_address > l.max_connections {
        let message = format!("{} is more than max_connections ({})", l.max_connections_per_address, l.max_connections);
        s.report("max_connections_per_address", message);
    }
    if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&l.max_header_bytes) {
        s.report("max_header_bytes", format!("{} bytes: must be 4KiB to 1MiB", l.max_header_bytes));
    }
    for (key, value) in [("header_read_timeout", l.header_read_timeout), ("body_timeout", l.body_timeout)] {
        if value.is_zero() {
            s.report(key, "must be longer than 0");
        }
    }
    if l.idle_timeout <= origin_wait {
        let message = format!(
            "{:?} must be longer than origin.request_timeout ({origin_wait:?}): a viewer waiting for the origin \
             moves no byte meanwhile",
            l.idle_timeout
        );
        s.report("idle_timeout", message);
    }
}

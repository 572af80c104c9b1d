//! `[listen]`: where viewers reach the PoP. HTTPS (h2 and http/1.1 by ALPN) on TCP, HTTP/3 on
//! UDP, optionally plain HTTP for local tools, and the metrics listener, which is kept apart
//! from the viewers' so that it can be bound to a private address.

use std::net::SocketAddr;

use toml::de::DeValue;

use crate::defaults;
use crate::document::{Section, string};

/// The PoP's listening addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    /// TCP, TLS with ALPN `h2` and `http/1.1`.
    pub https: SocketAddr,
    /// UDP, QUIC with ALPN `h3`; `None` when disabled (`h3 = false`).
    pub h3: Option<SocketAddr>,
    /// TCP, plain HTTP for local use; `None` unless configured.
    pub http: Option<SocketAddr>,
    /// TCP, plain HTTP: `/metrics` and `/healthz` for operators; `None` when disabled
    /// (`metrics = false`). The viewer listeners never serve `/metrics`.
    pub metrics: Option<SocketAddr>,
}

pub(crate) fn read(mut s: Section<'_>) -> Listen {
    let https = s.field("https", address).unwrap_or(defaults::LISTEN_HTTPS);
    let h3 = s.field("h3", |v| h3_address(v, https)).unwrap_or(Some(https));
    let http = s.field("http", address);
    let metrics = s.field("metrics", optional_address).unwrap_or(Some(defaults::LISTEN_METRICS));
    let listen = Listen { https, h3, http, metrics };
    report_conflicts(&s, &listen);
    s.finish();
    listen
}

fn address(v: &DeValue<'_>) -> Result<SocketAddr, String> {
    let text = string(v)?;
    text.parse().map_err(|_| format!("`{text}` is not an IP:port address (e.g. \"127.0.0.1:8443\", \"[::]:443\")"))
}

/// `false` disables HTTP/3 and `true` puts it on the HTTPS address; otherwise an address.
fn h3_address(v: &DeValue<'_>, https: SocketAddr) -> Result<Option<SocketAddr>, String> {
    match v {
        DeValue::Boolean(enabled) => Ok(enabled.then_some(https)),
        _ => address(v).map(Some),
    }
}

/// `false` disables the listener; otherwise an address.
fn optional_address(v: &DeValue<'_>) -> Result<Option<SocketAddr>, String> {
    match v {
        DeValue::Boolean(false) => Ok(None),
        DeValue::Boolean(true) => Err("expected an address, or false to disable it".to_owned()),
        _ => address(v).map(Some),
    }
}

/// TCP listeners must not claim the same port on overlapping addresses; HTTP/3 is UDP, so it
/// may share the HTTPS port number.
fn report_conflicts(s: &Section<'_>, listen: &Listen) {
    let tcp: Vec<(&str, SocketAddr)> =
        [("https", Some(listen.https)), ("http", listen.http), ("metrics", listen.metrics)]
            .into_iter()
            .filter_map(|(k, a)| Some((k, a?)))
            .collect();
    for (i, &(key, addr)) in tcp.iter().enumerate() {
        if let Some(&(earlier, taken)) = tcp[..i].iter().find(|(_, other)| overlaps(addr, *other)) {
            let path = s.path_of(earlier);
            s.report(key, format!("{addr} conflicts with {path} ({taken}): both are TCP port {}", addr.port()));
        }
    }
}

/// Whether two binds of the same protocol would collide. Port 0 asks the OS for a free port and
/// never collides; an unspecified address (`0.0.0.0`, `[::]`) covers every address.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.port() != 0 && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn overlapping_binds() {
        assert!(overlaps(addr("127.0.0.1:80"), addr("127.0.0.1:80")));
        assert!(overlaps(addr("0.0.0.0:80"), addr("127.0.0.1:80")));
        assert!(overlaps(addr("[::1]:80"), addr("[::]:80")));
        assert!(!overlaps(addr("127.0.0.1:80"), addr("127.0.0.2:80")));
        assert!(!overlaps(addr("127.0.0.1:80"), addr("127.0.0.1:81")));
        assert!(!overlaps(addr("127.0.0.1:0"), addr("127.0.0.1:0")));
    }
}

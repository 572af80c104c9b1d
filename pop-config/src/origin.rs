//! `[origin]`: where the PoP fetches what it does not hold, and how it identifies itself there:
//! with its own credential, issued when the PoP was enrolled (`origin pops enrol`), so one PoP
//! can be revoked without touching the others.

use std::fmt;
use std::time::Duration;

use toml::de::DeValue;

use crate::defaults;
use crate::document::{Section, count, read_small, string};

/// The secret part of a credential must not be guessable; 16 characters is the floor.
const MIN_SECRET_LEN: usize = 16;

/// How the PoP reaches its origin.
#[derive(Clone, PartialEq, Eq)]
pub struct Origin {
    /// Base URLs, `http(s)://host[:port][/path]` without a trailing `/`, tried in order when
    /// one fails.
    pub urls: Vec<String>,
    /// This PoP's credential, `{pop id}.{secret}`, presented as a bearer token.
    pub credential: String,
    /// Limit on establishing a connection to one origin URL.
    pub connect_timeout: Duration,
    /// Limit on one request, from sending it to the end of the response headers.
    pub request_timeout: Duration,
    /// Further attempts after the first fails.
    pub retries: u32,
    /// Parent PoPs (regional shields), `https://host[:port]`: objects are asked of them first,
    /// in order, with this PoP's tier credential, and of `urls` only when no parent answers.
    /// Heartbeats, the API and uploads always go to `urls`.
    pub parents: Vec<String>,
    /// How long the PoP goes on serving cached objects while it cannot hear about takedowns
    /// (no heartbeat answered): past it, objects are refused with `503 purges_behind` until a
    /// heartbeat catches up, so a takedown reaches a partitioned PoP before it serves again.
    /// Zero: no limit.
    pub max_purge_lag: Duration,
}

// The token is a credential: keep it out of logs.
impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Origin")
            .field("urls", &self.urls)
            .field("credential", &"<redacted>")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retries", &self.retries)
            .field("parents", &self.parents)
            .field("max_purge_lag", &self.max_purge_lag)
            .finish()
    }
}

pub(crate) fn read(mut s: Section<'_>) -> Origin {
    let urls = s.list("urls", url).unwrap_or_else(|| vec![defaults::ORIGIN_URL.to_owned()]);
    let credential = match (s.value("credential").is_some(), s.value("credential_file").is_some()) {
        (true, false) => s.field("credential", |v| credential(string(v)?)),
        (false, true) => s.path("credential_file").and_then(|path| {
            read_small(&path, 4096)
                .and_then(|text| credential(text.trim()))
                .map_err(|m| s.report("credential_file", m))
                .ok()
        }),
        _ => {
            s.report_here("set exactly one of `credential` and `credential_file` (from `origin pops enrol`)");
            None
        }
    }
    .unwrap_or_default();
    let millis = |v: &DeValue<'_>| count::<u64>(v).map(Duration::from_millis);
    let connect_timeout = s.field("connect_timeout_ms", millis).unwrap_or(defaults::ORIGIN_CONNECT_TIMEOUT);
    let request_timeout = s.field("request_timeout_ms", millis).unwrap_or(defaults::ORIGIN_REQUEST_TIMEOUT);
    let retries = s.field("retries", count).unwrap_or(defaults::ORIGIN_RETRIES);
    let parents = s.list("parents", url).unwrap_or_default();
    let max_purge_lag = s.field("max_purge_lag_ms", millis).unwrap_or(defaults::MAX_PURGE_LAG);
    s.finish();
    Origin { urls, credential, connect_timeout, request_timeout, retries, parents, max_purge_lag }
}

/// `{pop id}.{secret}`: the id names the PoP to the origin's registry, the secret proves it.
fn credential(text: &str) -> Result<String, String> {
    let Some((id, secret)) = text.split_once('.') else {
        return Err("not a PoP credential: expected `{pop id}.{secret}` as `origin pops enrol` prints it".into());
    };
    let id_ok = (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
    if !id_ok {
        Err("the part before `.` must be the PoP id (1 to 64 of A-Z, a-z, 0-9, `_`, `-`)".into())
    } else if secret.chars().count() < MIN_SECRET_LEN {
        Err(format!("too short: the secret after the PoP id needs at least {MIN_SECRET_LEN} characters"))
    } else if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("must not contain whitespace: it is sent in an HTTP header".to_owned())
    } else {
        Ok(text.to_owned())
    }
}

impl Origin {
    /// The PoP id the credential names.
    pub fn credential_pop(&self) -> &str {
        self.credential.split_once('.').map_or("", |(id, _)| id)
    }
}

fn url(v: &DeValue<'_>) -> Result<String, String> {
    let text = string(v)?;
    origin_url(text)
        .map_err(|why| format!("`{text}` is not an origin URL: {why} (expected http(s)://host[:port][/path])"))
}

/// Checks `http(s)://host[:port][/path]` and drops a trailing `/`, so request paths can be
/// appended as they are.
pub(crate) fn origin_url(text: &str) -> Result<String, &'static str> {
    let rest =
        text.strip_prefix("http://").or_else(|| text.strip_prefix("https://")).ok_or("scheme must be http or https")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    check_authority(authority)?;
    if path.chars().any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#') {
        return Err("the path must have no spaces, query or fragment");
    }
    Ok(text.trim_end_matches('/').to_owned())
}

fn check_authority(authority: &str) -> Result<(), &'static str> {
    let (host, port) = split_port(authority)?;
    if let Some(port) = port {
        port.parse::<u16>().ok().filter(|&p| p != 0).ok_or("the port must be 1 to 65535")?;
    }
    let valid_host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(ipv6) => ipv6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => !host.is_empty() && host.split('.').all(is_host_label),
    };
    if valid_host { Ok(()) } else { Err("the host is missing or malformed") }
}

/// `host:port` or `[v6]:port`; the port is optional.
fn split_port(authority: &str) -> Result<(&str, Option<&str>), &'static str> {
    if authority.contains('@') {
        return Err("credentials do not belong in the URL; use origin.credential");
    }
    let host_end = if authority.starts_with('[') { authority.find(']').map_or(0, |i| i + 1) } else { 0 };
    Ok(match authority[host_end..].rfind(':') {
        Some(i) => (&authority[..host_end + i], Some(&authority[host_end + i + 1..])),
        None => (authority, None),
    })
}

fn is_host_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_urls() {
        assert_eq!(origin_url("http://127.0.0.1:8080").as_deref(), Ok("http://127.0.0.1:8080"));
        assert_eq!(origin_url("https://origin.example.com/").as_deref(), Ok("https://origin.example.com"));
        assert_eq!(origin_url("https://[::1]:8443/base/").as_deref(), Ok("https://[::1]:8443/base"));
        assert_eq!(origin_url("http://origin:80/a/b").as_deref(), Ok("http://origin:80/a/b"));
        for bad in [
            "ftp://origin",
            "origin:8080",
            "http://",
            "http://:80",
            "http://origin:0",
            "http://origin:99999",
            "http://origin:port",
            "http://user:pw@origin",
            "http://bad host",
            "http://origin/a?b",
            "http://[::1",
            "http://-x-.com",
        ] {
            assert!(origin_url(bad).is_err(), "{bad}");
        }
    }
}

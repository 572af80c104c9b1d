//! What the platform tests share: one origin's address chosen before anything starts (the
//! PoPs need it first), the secrets an origin and its PoPs have in common, and their
//! configurations wired to each other.

use std::path::Path;

use pop_config::PopConfig;
use pop_config::token::Key;

/// The secrets one test's origin and PoPs share.
pub(crate) struct Secrets {
    /// The PoPs' bearer token for the origin.
    pub(crate) pop_token: &'static str,
    /// The token-signing key, hex (the origin signs, the PoPs verify with it as `k1`).
    pub(crate) signing_key: &'static str,
}

impl Secrets {
    /// The signing key as the PoPs hold it.
    pub(crate) fn key(&self) -> Key {
        Key::new("k1", &pop_config::token::decode_hex(self.signing_key).unwrap())
    }

    /// A PoP in `dir` pulling from `origin_url`, on embedded defaults.
    pub(crate) fn pop(&self, dir: &Path, origin_url: &str) -> PopConfig {
        PopConfig::default_for(dir, origin_url, self.pop_token, vec![self.key()])
    }

    /// The origin in `dir` on `origin_url`, sending creators to `upload_url` and viewers to
    /// `playback_url`.
    pub(crate) fn origin(&self, dir: &Path, origin_url: &str, upload_url: &str, playback_url: &str) -> origin::Config {
        let mut config = origin::Config::for_dir(dir);
        config.listen = origin_url.trim_start_matches("http://").parse().unwrap();
        config.public_url = origin_url.to_owned();
        config.upload_url = upload_url.to_owned();
        config.playback_url = playback_url.to_owned();
        config.pop_token = Some(self.pop_token.into());
        config.signing_key = Some(self.signing_key.into());
        config
    }
}

/// An origin URL on a port nothing listens on yet.
pub(crate) fn origin_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}")
}

/// The sum of the samples in a Prometheus page whose lines contain every one of `parts`.
#[allow(dead_code)] // not every test binary reads metrics
pub(crate) fn counter(page: &str, parts: &[&str]) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#') && parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

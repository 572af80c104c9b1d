//! What the platform tests share: one origin's address chosen before anything starts (the
//! PoPs need it first), the origin's signing key, PoPs enrolled in the origin's registry with
//! their own credentials, and their configurations wired to each other.

use std::path::Path;

use pop_config::PopConfig;
use pop_config::token::{PublicKey, SigningKey};

/// What one test's origin is configured with.
pub(crate) struct Secrets {
    /// The origin's Ed25519 signing seed, hex (it signs as `k1`; PoPs get the public key).
    pub(crate) signing_key: &'static str,
}

impl Secrets {
    /// The origin's signing key (what only the origin holds).
    #[allow(dead_code)] // not every test binary forges tokens
    pub(crate) fn signer(&self) -> SigningKey {
        SigningKey::from_seed("k1", &pop_config::token::decode_hex(self.signing_key).unwrap()).unwrap()
    }

    /// The public key, as the PoPs hold it.
    pub(crate) fn key(&self) -> PublicKey {
        self.signer().public()
    }

    /// PoP `id` in `dir` pulling from `origin_url`, on embedded defaults, enrolled in the
    /// registry of the origin whose data folder is `origin_dir` (before or after it starts).
    #[allow(dead_code)] // the network tests place their PoPs themselves
    pub(crate) async fn pop(&self, dir: &Path, origin_dir: &Path, origin_url: &str, id: &str) -> PopConfig {
        let credential = enrol(origin_dir, id, false).await;
        PopConfig::default_for(dir, origin_url, &credential, vec![self.key()])
    }

    /// The origin in `dir` on `origin_url`, sending creators to `upload_url` and viewers to
    /// `playback_url`.
    pub(crate) fn origin(&self, dir: &Path, origin_url: &str, upload_url: &str, playback_url: &str) -> origin::Config {
        let mut config = origin::Config::for_dir(dir);
        config.listen = origin_url.trim_start_matches("http://").parse().unwrap();
        config.public_url = origin_url.to_owned();
        config.key_url = origin_url.to_owned();
        config.upload_url = upload_url.to_owned();
        config.playback_url = playback_url.to_owned();
        config.signing_key = Some(self.signing_key.into());
        config
    }
}

/// Enrols PoP `id` in the registry of the origin whose data folder is `origin_dir`; its credential.
#[allow(dead_code)] // the network tests enrol PoPs in their regions
pub(crate) async fn enrol(origin_dir: &Path, id: &str, partner: bool) -> String {
    enrol_in(origin_dir, id, "kr-seoul", partner).await
}

/// Enrols PoP `id` of `region`; its credential.
pub(crate) async fn enrol_in(origin_dir: &Path, id: &str, region: &str, partner: bool) -> String {
    std::fs::create_dir_all(origin_dir).unwrap();
    let config = origin::Config::for_dir(origin_dir);
    let store = origin::meta::sql::SqlStore::connect(&config.database_url).await.expect("origin database");
    let who = origin::pops::Enrolment { id: id.to_owned(), region: region.to_owned(), partner };
    origin::pops::enrol(&store, &who, origin::meta::now()).await.expect("enrolled")
}

/// An origin URL on a port nothing listens on yet. Chosen below the kernel's ephemeral range
/// (32768 and up), so the ports other sockets get meanwhile never take it before the origin
/// binds it.
#[allow(dead_code)] // the network tests' origin has its own host
pub(crate) fn origin_url() -> String {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let start = std::process::id().wrapping_mul(7919).wrapping_add(seed);
    let port = (0..2000u32)
        .map(|i| 20_000 + ((start + i * 7) % 12_000) as u16)
        .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        .expect("a free port below the ephemeral range");
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

/// A playback's content key, from the key service with the playback's key token.
#[allow(dead_code)] // not every test binary decrypts
pub(crate) async fn content_key(http: &reqwest::Client, playback: &serde_json::Value) -> Vec<u8> {
    let url = playback["key_url"].as_str().expect("key_url");
    let token = playback["key_token"].as_str().expect("key_token");
    let r = http.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200, "the key service answers the key token");
    r.bytes().await.unwrap().to_vec()
}

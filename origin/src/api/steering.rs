//! Content steering, the IO half: the steering manifests players reload
//! (`GET /v1/steering/{id}`, `.../dash`), the client's region from its address, and the
//! registry and PoP statuses every steering decision reads, kept per process for a second
//! so a busy node asks the database about once a second, not once a request. The decisions
//! themselves are `crate::steering`'s.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http::{StatusCode, header};
use serde::Serialize;

use super::client_addr;
use crate::app::App;
use crate::error::Result;
use crate::meta::pops::{PopRecord, PopStatus};
use crate::steering::{self, Format, Pathway};
use crate::web::{self, Request, Response};

/// How long a process reuses what it read of the registry and the PoPs' statuses.
const SNAPSHOT_TTL: Duration = Duration::from_secs(1);

/// What steering reads from the database.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Every PoP of the registry.
    pub registry: Vec<PopRecord>,
    /// Every PoP's latest heartbeat status.
    pub statuses: Vec<PopStatus>,
}

/// This process's copy of [`Inputs`], at most [`SNAPSHOT_TTL`] old.
#[derive(Debug, Default)]
pub struct Snapshot {
    held: RwLock<Option<(Instant, Arc<Inputs>)>>,
}

impl Snapshot {
    /// The inputs, read again once the held copy is older than [`SNAPSHOT_TTL`]. Requests that
    /// arrive while it is being read again all read (for at most a query's time once a second),
    /// never a wrong answer.
    pub async fn inputs(&self, app: &App) -> Result<Arc<Inputs>> {
        if let Some((at, inputs)) = self.held.read().expect("steering snapshot").as_ref()
            && at.elapsed() < SNAPSHOT_TTL
        {
            return Ok(inputs.clone());
        }
        let inputs = Arc::new(Inputs { registry: app.pops.pops().await?, statuses: app.pops.statuses().await? });
        *self.held.write().expect("steering snapshot") = Some((Instant::now(), inputs.clone()));
        Ok(inputs)
    }
}

/// The address a client is steered, throttled (sign-in) and counted (views) by.
/// `X-Forwarded-For` is believed only from whoever may set it:
/// - one of our own PoPs, proven by its credential in `pop_config::RELAY_CREDENTIAL_HEADER`:
///   the PoP replaced whatever the client claimed with the address it saw, and proxies
///   between it and the origin only appended, so the first entry is the client;
/// - a proxy in `trusted_proxies`: its chain is read from the right, past the trusted hops,
///   and an entry that is no address ends the walk (who wrote it is not known).
///
/// Anyone else could write any address there (and pass a throttle per address by rotating
/// it), so they are the connection's peer.
pub async fn client(app: &App, req: &Request) -> IpAddr {
    let peer = client_addr(req).to_canonical();
    let chain: Vec<Option<IpAddr>> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|entry| forwarded_addr(entry.trim()).map(|a| a.to_canonical()))
        .collect();
    if chain.is_empty() {
        return peer;
    }
    if relayed_by_our_pop(app, req).await {
        return chain[0].unwrap_or(peer);
    }
    let trusted = |a: &IpAddr| app.config.trusted_proxies.iter().any(|n| n.contains(a));
    if !trusted(&peer) {
        return peer;
    }
    let mut nearest = peer;
    for entry in chain.iter().rev() {
        match entry {
            Some(a) if trusted(a) => nearest = *a,
            Some(a) => return *a,
            None => return nearest,
        }
    }
    nearest
}

/// Whether the request carries the credential of an enabled PoP of ours (not a partner's:
/// they pass on no API call), checked against the registry snapshot.
async fn relayed_by_our_pop(app: &App, req: &Request) -> bool {
    let Some(given) = req.headers().get(pop_config::RELAY_CREDENTIAL_HEADER).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Ok(inputs) = app.steering.inputs(app).await else {
        return false;
    };
    let id = crate::pops::id_of(given);
    let pop = inputs.registry.iter().find(|p| Some(p.id.as_str()) == id);
    pop.is_some_and(|p| p.enabled && !p.partner && crate::pops::holds(p, given))
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`192.0.2.1:5000`,
/// `[2001:db8::1]:5000`).
fn forwarded_addr(entry: &str) -> Option<IpAddr> {
    entry.parse().ok().or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}

/// The PoPs `client` may be sent to for `video`, best first (`steering::rank`). Empty when steering is
/// off, or when the database cannot say: steering only improves on the configured URLs,
/// so its failure falls back to them instead of failing the request.
pub async fn pathways(app: &App, client: IpAddr, video: &str) -> Vec<Pathway> {
    let config = &app.config.steering;
    if !config.enabled {
        return Vec::new();
    }
    match app.steering.inputs(app).await {
        Ok(inputs) => {
            let region = steering::region_of(&config.regions, client);
            let now = crate::meta::now();
            steering::rank(&inputs.statuses, &inputs.registry, region, video, now, config.stale_after)
        }
        Err(e) => {
            tracing::warn!(error = %e, "PoP statuses unavailable; steering falls back to the configured URLs");
            Vec::new()
        }
    }
}

/// Where players fetch a video's steering manifest. At the key service's address: players
/// reach it directly, never through a PoP, and PoP pages already allow connections to it.
pub fn server_uri(app: &App, id: &str, format: Format) -> String {
    let base = app.config.key_url.trim_end_matches('/');
    match format {
        Format::Hls => format!("{base}/v1/steering/{id}"),
        Format::Dash => format!("{base}/v1/steering/{id}/dash"),
    }
}

/// `GET /v1/steering/{id}` (HLS) and `GET /v1/steering/{id}/dash` (DASH-IF): the PoPs this
/// player should fetch from, best first. Query parameters (hls.js adds `_HLS_pathway` and
/// `_HLS_throughput`) are ignored. Public and fetched across origins by players on PoP pages.
pub async fn manifest(app: &Arc<App>, req: &Request, id: &str, format: Format) -> Result<Response> {
    super::objects::servable(app, id).await?;
    let ranked = pathways(app, client(app, req).await, id).await;
    let manifest = steering::manifest(format, app.config.steering.ttl, &server_uri(app, id, format), &ranked);
    app.metrics.steering_manifests.get_or_create(&vec![("kind", format.as_str().to_owned())]).inc();
    let mut r = web::json(StatusCode::OK, &manifest);
    // Answers depend on the client and on PoPs' last seconds: no cache may keep one.
    web::set(&mut r, header::CACHE_CONTROL, "no-store");
    web::set(&mut r, header::ACCESS_CONTROL_ALLOW_ORIGIN, "*");
    Ok(r)
}

/// One PoP's tier verifier, which its parents check its tier credential against.
#[derive(Debug, Serialize)]
pub struct Tier {
    /// The PoP.
    pub pop: String,
    /// `pop_config::tier::verifier` of its tier credential, hex.
    pub verifier: String,
    /// Run by a partner: a parent gives it nothing clear.
    pub partner: bool,
}

/// The tier verifiers of every enabled PoP, from the fingerprints the registry keeps (the
/// origin never holds a credential, and does not need one to derive them).
pub fn tiers(registry: &[PopRecord]) -> Vec<Tier> {
    registry
        .iter()
        .filter(|p| p.enabled)
        .map(|p| Tier {
            pop: p.id.clone(),
            verifier: pop_config::tier::verifier(&pop_config::tier::credential_from_fingerprint(
                &p.id,
                &p.credential_sha256,
            )),
            partner: p.partner,
        })
        .collect()
}

/// A short digest of a tier list: a PoP that reports the version it holds is not sent the list
/// again (every PoP's verifier to every PoP at every beat would grow as the square of the PoPs).
pub fn tiers_version(tiers: &[Tier]) -> String {
    let text = serde_json::to_string(tiers).unwrap_or_default();
    pop_config::token::hex(&ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref()[..12])
}

/// The base URLs of our own (not partner) enabled PoPs that report one, sorted: where a
/// player may be steered, fresh or not (a page outlives a beat), for the PoPs' pages to allow
/// connections to and for key responses to be readable from. Empty when steering is off.
pub fn page_urls(app: &App, inputs: &Inputs) -> Vec<String> {
    if !app.config.steering.enabled {
        return Vec::new();
    }
    let ours = |pop: &str| inputs.registry.iter().any(|p| p.id == pop && p.enabled && !p.partner);
    let mut urls: Vec<String> = inputs.statuses.iter().filter(|s| ours(&s.pop)).filter_map(|s| s.url.clone()).collect();
    urls.sort();
    urls.dedup();
    urls
}

/// Whether `page` (an `Origin`, `scheme://host[:port]`) is one of [`page_urls`].
pub async fn serves_pages_at(app: &App, page: &str) -> bool {
    if !app.config.steering.enabled {
        return false;
    }
    let Ok(inputs) = app.steering.inputs(app).await else { return false };
    page_urls(app, &inputs).iter().any(|u| u == page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_entries_may_carry_ports() {
        assert_eq!(forwarded_addr("192.0.2.1"), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(forwarded_addr("192.0.2.1:5000"), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(forwarded_addr("2001:db8::1"), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(forwarded_addr("[2001:db8::1]:5000"), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(forwarded_addr("unknown"), None);
    }

    #[test]
    fn tiers_are_derived_from_the_registrys_fingerprint_for_enabled_pops_only() {
        let credential = "pop-a.00112233445566778899aabbccddeeff";
        let record = |id: &str, enabled: bool, credential: &str| PopRecord {
            id: id.into(),
            region: "r1".into(),
            partner: false,
            enabled,
            credential_sha256: pop_config::tier::fingerprint(credential),
            enrolled_at: 0,
            changed_at: 0,
        };
        let tiers = tiers(&[record("pop-a", true, credential), record("pop-b", false, "pop-b.ff")]);
        assert_eq!(tiers.len(), 1);
        assert_eq!(tiers[0].pop, "pop-a");
        assert_eq!(tiers[0].verifier, pop_config::tier::verifier(&pop_config::tier::credential(credential)));
    }
}

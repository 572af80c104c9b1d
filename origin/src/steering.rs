//! Content steering, the pure half: which PoPs a client may be sent to and in what order
//! ([`rank`]), a client's region ([`region_of`]), and the steering manifests players reload
//! (HLS and DASH-IF, [`manifest`]); `tag` marks playlists and MPDs so players ask for them.
//! Everything here is a function of the registry, the PoPs' last heartbeats and the clock,
//! read from the database every API node shares, so every node steers the same. The IO half
//! (routes, the per-process snapshot, playback and upload URLs) is `api::steering`.

pub mod tag;

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use crate::config::Region;
use crate::meta::Millis;
use crate::meta::pops::{PopRecord, PopStatus};

/// The pathway a player starts on: wherever its playlist came from (the PoP that served it).
/// Every other pathway is a clone of it with another host.
pub const HOME: &str = "home";

/// More than this share of failed requests (percent) marks a PoP degraded: it goes last in
/// its group.
pub const MAX_ERROR_PERCENT: u64 = 20;
/// A load above this marks a PoP degraded: it is nearly full.
pub const MAX_LOAD: f64 = 0.9;
/// Fewer (decayed) requests than this say too little for an error ratio: one failed request
/// of a quiet PoP does not demote it.
const MIN_REQUESTS: u64 = 10;
/// Loads are compared in this many steps (tenths): closer loads are noise, and treating them
/// as ties (broken by [`affinity`]) keeps a player from being moved between two equal PoPs
/// at every reload.
const LOAD_STEPS: f64 = 10.0;
/// Slack past two missed beats before a PoP counts as gone (delivery and clock jitter).
const BEAT_GRACE_MS: u64 = 1000;

/// A PoP a client may be sent to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pathway {
    /// The PoP's id: the pathway's id in steering manifests.
    pub pop: String,
    /// Its public base URL (`scheme://host[:port]`).
    pub url: String,
    /// Its region (the registry's).
    #[serde(skip)]
    pub region: String,
    /// Run by a partner: sent nothing clear (pictures included).
    #[serde(skip)]
    pub partner: bool,
    /// It takes tus uploads.
    #[serde(skip)]
    pub uploads: bool,
}

/// How long after its last beat a PoP counts as gone: two missed beats and a second, or
/// `stale_after` for a PoP that did not say how often it beats.
pub fn stale_limit(status: &PopStatus, stale_after: Duration) -> Duration {
    if status.every_ms == 0 {
        stale_after
    } else {
        Duration::from_millis(status.every_ms.saturating_mul(2).saturating_add(BEAT_GRACE_MS))
    }
}

/// Whether a PoP's last beat is recent enough to send clients to it.
pub fn is_fresh(status: &PopStatus, now: Millis, stale_after: Duration) -> bool {
    let age = u128::try_from(now.saturating_sub(status.beat_at)).unwrap_or(0);
    age <= stale_limit(status, stale_after).as_millis()
}

/// Whether a live PoP is failing its viewers or nearly full: it goes last in its group.
pub fn is_degraded(status: &PopStatus) -> bool {
    let failing = status.requests >= MIN_REQUESTS
        && status.failed.saturating_mul(100) > status.requests.saturating_mul(MAX_ERROR_PERCENT);
    failing || status.load > MAX_LOAD
}

/// The PoPs a client may be sent to, best first. Left out: PoPs disabled in (or missing
/// from) the registry, without a URL, or whose last beat is stale. Order: the client's region
/// first; within each group healthy before degraded, then by load (in steps of a tenth),
/// then by [`affinity`] to `video` (then id), so every node ranks the same.
pub fn rank(
    statuses: &[PopStatus],
    registry: &[PopRecord],
    viewer_region: Option<&str>,
    video: &str,
    now: Millis,
    stale_after: Duration,
) -> Vec<Pathway> {
    let mut ranked: Vec<(&PopStatus, &PopRecord, &str)> = statuses
        .iter()
        .filter(|s| is_fresh(s, now, stale_after))
        .filter_map(|s| {
            let pop = registry.iter().find(|p| p.id == s.pop && p.enabled)?;
            Some((s, pop, s.url.as_deref()?))
        })
        .collect();
    ranked.sort_by_key(|(s, pop, _)| {
        let elsewhere = viewer_region.is_some_and(|r| r != pop.region);
        (elsewhere, is_degraded(s), load_step(s.load), std::cmp::Reverse(affinity(video, &pop.id)), pop.id.clone())
    });
    ranked
        .into_iter()
        .map(|(s, pop, url)| Pathway {
            pop: pop.id.clone(),
            url: url.to_owned(),
            region: pop.region.clone(),
            partner: pop.partner,
            uploads: s.uploads,
        })
        .collect()
}

/// How much `video` belongs at `pop`, for breaking ties between equally good PoPs
/// (rendezvous hashing): each video's viewers in a region meet at one PoP, so the region's
/// PoPs each cache a share of its titles instead of all caching the same ones, and the
/// titles spread evenly over the PoPs. Adding or removing a PoP moves only the videos it
/// wins or held. A fixed hash, so every API node ranks the same.
pub fn affinity(video: &str, pop: &str) -> u64 {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{video}\0{pop}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

fn load_step(load: f64) -> u32 {
    (load.clamp(0.0, 1.0) * LOAD_STEPS).floor() as u32
}

/// The region whose networks hold `addr` (the most specific network wins), if any. An
/// IPv4 address seen as IPv6 (`::ffff:10.0.0.1`, from a dual-stack listener) is matched as
/// IPv4.
pub fn region_of(regions: &[Region], addr: IpAddr) -> Option<&str> {
    let addr = addr.to_canonical();
    regions
        .iter()
        .flat_map(|r| r.networks.iter().map(move |n| (n, r.name.as_str())))
        .filter(|(n, _)| n.contains(&addr))
        .max_by_key(|(n, _)| n.prefix_len())
        .map(|(_, name)| name)
}

/// The host name of a PoP's base URL (`scheme://host[:port]`): what a pathway clone puts in
/// place of the home pathway's. `HOST` replaces the name only (hls.js sets the URL's
/// `hostname`; a value with a port is ignored), so PoPs steered between share a scheme and a
/// port, as public PoPs on 443 do.
pub fn host_of(url: &str) -> &str {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest).trim_end_matches('/');
    match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(authority, |(name, _)| &authority[..name.len() + 2]),
        None => authority.split_once(':').map_or(authority, |(name, _)| name),
    }
}

/// Which steering manifest: HLS's, or DASH-IF's (the same with other names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `PATHWAY-PRIORITY` (HLS content steering).
    Hls,
    /// `SERVICE-LOCATION-PRIORITY` (DASH-IF content steering) and, for players that read the
    /// HLS name in DASH too (shaka-player), `PATHWAY-PRIORITY`.
    Dash,
}

impl Format {
    /// Its metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hls => "hls",
            Self::Dash => "dash",
        }
    }
}

/// A steering manifest (HLS and DASH-IF share the shape but for the priority's name).
#[derive(Debug, Serialize)]
pub struct Manifest {
    #[serde(rename = "VERSION")]
    version: u32,
    #[serde(rename = "TTL")]
    ttl: u64,
    #[serde(rename = "RELOAD-URI")]
    reload_uri: String,
    #[serde(rename = "PATHWAY-PRIORITY", skip_serializing_if = "Option::is_none")]
    pathway_priority: Option<Vec<String>>,
    #[serde(rename = "SERVICE-LOCATION-PRIORITY", skip_serializing_if = "Option::is_none")]
    service_location_priority: Option<Vec<String>>,
    #[serde(rename = "PATHWAY-CLONES")]
    pathway_clones: Vec<PathwayClone>,
}

/// A pathway copied from the home pathway with the PoP's host, so a playlist need not list
/// every PoP.
#[derive(Debug, Serialize)]
struct PathwayClone {
    #[serde(rename = "BASE-ID")]
    base_id: &'static str,
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "URI-REPLACEMENT")]
    uri_replacement: UriReplacement,
}

#[derive(Debug, Serialize)]
struct UriReplacement {
    #[serde(rename = "HOST")]
    host: String,
}

/// The steering manifest sending a player along `ranked`, best first. `home` comes last:
/// the PoP that served the playlist reached this player once, so it is the fallback when
/// every ranked PoP fails it, and the only pathway when no PoP is live.
pub fn manifest(format: Format, ttl: Duration, reload_uri: &str, ranked: &[Pathway]) -> Manifest {
    let mut priority: Vec<String> = ranked.iter().map(|p| p.pop.clone()).collect();
    priority.push(HOME.to_owned());
    let pathway_clones = ranked
        .iter()
        .map(|p| PathwayClone {
            base_id: HOME,
            id: p.pop.clone(),
            uri_replacement: UriReplacement { host: host_of(&p.url).to_owned() },
        })
        .collect();
    // DASH players read the DASH-IF name or, like shaka-player, the HLS one: a DASH manifest
    // carries both.
    let (pathway_priority, service_location_priority) = match format {
        Format::Hls => (Some(priority), None),
        Format::Dash => (Some(priority.clone()), Some(priority)),
    };
    Manifest {
        version: 1,
        ttl: ttl.as_secs().max(1),
        reload_uri: reload_uri.to_owned(),
        pathway_priority,
        service_location_priority,
        pathway_clones,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_000_000;
    const STALE_AFTER: Duration = Duration::from_secs(30);

    fn pop(id: &str, region: &str) -> PopRecord {
        PopRecord {
            id: id.into(),
            region: region.into(),
            partner: false,
            enabled: true,
            credential_sha256: String::new(),
            enrolled_at: 0,
            changed_at: 0,
        }
    }

    fn beat(id: &str, load: f64) -> PopStatus {
        PopStatus {
            pop: id.into(),
            url: Some(format!("https://{id}.example:8443")),
            every_ms: 1000,
            load,
            requests: 100,
            failed: 0,
            uploads: true,
            beat_at: NOW - 500,
        }
    }

    fn ids(statuses: &[PopStatus], registry: &[PopRecord], region: Option<&str>) -> Vec<String> {
        rank(statuses, registry, region, "video", NOW, STALE_AFTER).into_iter().map(|p| p.pop).collect()
    }

    #[test]
    fn rank_orders_by_region_then_health_then_load() {
        let registry = [pop("a", "r1"), pop("b", "r1"), pop("c", "r2"), pop("d", "r2"), pop("e", "r1")];
        let failing = PopStatus { failed: 21, ..beat("e", 0.0) };
        let full = PopStatus { ..beat("d", 0.95) };
        let statuses = [beat("a", 0.5), beat("b", 0.2), beat("c", 0.7), full, failing];
        // (viewer region, expected order)
        let table: [(Option<&str>, [&str; 5]); 4] = [
            (Some("r1"), ["b", "a", "e", "c", "d"]),
            (Some("r2"), ["c", "d", "b", "a", "e"]),
            // No region known, or one without PoPs: one group.
            (None, ["b", "a", "c", "e", "d"]),
            (Some("r9"), ["b", "a", "c", "e", "d"]),
        ];
        for (region, expected) in table {
            assert_eq!(ids(&statuses, &registry, region), expected, "viewer in {region:?}");
        }
    }

    #[test]
    fn rank_leaves_out_stale_disabled_unknown_and_url_less_pops() {
        let mut registry = vec![pop("live", "r1"), pop("late", "r1"), pop("quiet", "r1"), pop("old", "r1")];
        registry.extend([PopRecord { enabled: false, ..pop("revoked", "r1") }, pop("nourl", "r1")]);
        let statuses = [
            beat("live", 0.0),
            // every_ms 1000: gone once its last beat is older than 2 * 1000 + 1000 ms.
            PopStatus { beat_at: NOW - 3001, ..beat("late", 0.0) },
            // No interval reported: `stale_after` (30 s) applies.
            // (A step more load than `live`, so that the order is fixed.)
            PopStatus { every_ms: 0, beat_at: NOW - 29_000, ..beat("quiet", 0.15) },
            PopStatus { every_ms: 0, beat_at: NOW - 30_001, ..beat("old", 0.0) },
            beat("revoked", 0.0),
            PopStatus { url: None, ..beat("nourl", 0.0) },
            beat("unenrolled", 0.0),
        ];
        assert_eq!(ids(&statuses, &registry, Some("r1")), ["live", "quiet"]);
        let edge = PopStatus { beat_at: NOW - 3000, ..beat("late", 0.0) };
        assert_eq!(ids(&[edge], &registry, None), ["late"], "exactly at the limit is still live");
        assert!(ids(&[], &registry, None).is_empty());
    }

    #[test]
    fn degraded_means_many_errors_or_nearly_full() {
        let table = [
            (100, 20, 0.0, false), // 20% is the limit, not over it
            (100, 21, 0.0, true),
            (9, 9, 0.0, false), // too few requests to judge
            (10, 3, 0.0, true),
            (0, 0, 0.9, false),
            (0, 0, 0.91, true),
        ];
        for (requests, failed, load, degraded) in table {
            let s = PopStatus { requests, failed, ..beat("x", load) };
            assert_eq!(is_degraded(&s), degraded, "{requests} requests, {failed} failed, load {load}");
        }
    }

    #[test]
    fn loads_within_a_tenth_tie_and_ties_spread_videos_evenly_and_stably() {
        let registry = [pop("b", "r1"), pop("a", "r1"), pop("c", "r1")];
        let statuses = [beat("b", 0.31), beat("a", 0.39), beat("c", 0.29)];
        let order = |video: &str| -> Vec<String> {
            rank(&statuses, &registry, Some("r1"), video, NOW, STALE_AFTER).into_iter().map(|p| p.pop).collect()
        };
        let mut first_of_tie = std::collections::HashMap::new();
        for n in 0..1000 {
            let video = format!("v{n}");
            let ranked = order(&video);
            assert_eq!(ranked[0], "c", "a lower load step wins whatever the video");
            assert_eq!(ranked, order(&video), "the same video, the same order");
            *first_of_tie.entry(ranked[1].clone()).or_insert(0) += 1;
        }
        // a and b tie: each wins about half of the videos (binomial, sd ~16).
        for pop in ["a", "b"] {
            let won = first_of_tie.get(pop).copied().unwrap_or(0);
            assert!((430..=570).contains(&won), "{pop} first for {won} of 1000 videos: {first_of_tie:?}");
        }
    }

    #[test]
    fn a_pop_leaving_a_tie_moves_only_its_own_videos() {
        let registry = [pop("a", "r1"), pop("b", "r1"), pop("c", "r1")];
        let three = [beat("a", 0.0), beat("b", 0.0), beat("c", 0.0)];
        let two = [beat("a", 0.0), beat("b", 0.0)];
        let first = |statuses: &[PopStatus], video: &str| {
            rank(statuses, &registry, None, video, NOW, STALE_AFTER)[0].pop.clone()
        };
        let mut moved_to = std::collections::HashSet::new();
        for n in 0..300 {
            let video = format!("v{n}");
            let (before, after) = (first(&three, &video), first(&two, &video));
            if before == "c" {
                moved_to.insert(after);
            } else {
                assert_eq!(after, before, "{video} moved though its PoP stayed");
            }
        }
        // c had its share, and its videos spread over both that remain.
        assert_eq!(moved_to.len(), 2, "c's videos went to {moved_to:?}");
    }

    #[test]
    fn regions_match_the_most_specific_network_and_mapped_ipv4() {
        let region = |name: &str, nets: &[&str]| Region {
            name: name.into(),
            networks: nets.iter().map(|n| n.parse().unwrap()).collect(),
        };
        let regions = [region("wide", &["10.0.0.0/8"]), region("r1", &["10.77.1.0/24", "2001:db8:1::/48"])];
        let at = |a: &str| region_of(&regions, a.parse().unwrap());
        assert_eq!(at("10.77.1.9"), Some("r1"));
        assert_eq!(at("10.77.2.9"), Some("wide"));
        assert_eq!(at("::ffff:10.77.1.9"), Some("r1"), "IPv4 through a dual-stack socket");
        assert_eq!(at("2001:db8:1:2::5"), Some("r1"));
        assert_eq!(at("192.0.2.1"), None);
        assert_eq!(region_of(&[], "10.77.1.9".parse().unwrap()), None);
    }

    #[test]
    fn manifests_clone_home_per_pop_and_fall_back_home() {
        let ranked =
            rank(&[beat("b", 0.0), beat("a", 0.5)], &[pop("a", "r1"), pop("b", "r1")], None, "v", NOW, STALE_AFTER);
        let hls =
            serde_json::to_value(manifest(Format::Hls, Duration::from_secs(10), "https://o/v1/steering/v", &ranked))
                .unwrap();
        assert_eq!(
            hls,
            serde_json::json!({
                "VERSION": 1, "TTL": 10, "RELOAD-URI": "https://o/v1/steering/v",
                "PATHWAY-PRIORITY": ["b", "a", "home"],
                "PATHWAY-CLONES": [
                    {"BASE-ID": "home", "ID": "b", "URI-REPLACEMENT": {"HOST": "b.example"}},
                    {"BASE-ID": "home", "ID": "a", "URI-REPLACEMENT": {"HOST": "a.example"}},
                ],
            })
        );
        let dash = serde_json::to_value(manifest(Format::Dash, Duration::from_secs(5), "https://o/d", &[])).unwrap();
        assert_eq!(
            dash,
            serde_json::json!({
                "VERSION": 1, "TTL": 5, "RELOAD-URI": "https://o/d",
                "SERVICE-LOCATION-PRIORITY": ["home"], "PATHWAY-PRIORITY": ["home"], "PATHWAY-CLONES": [],
            })
        );
        assert_eq!(host_of("https://[2001:db8::1]:8443"), "[2001:db8::1]");
        assert_eq!(host_of("http://10.77.0.3:8081"), "10.77.0.3");
        assert_eq!(host_of("http://pop.example"), "pop.example");
    }
}

//! Tiered caching: a child PoP asks its parent (a regional shield) before the origin, every
//! tier says what it did in `Cache-Status`, the parent lets in only the children the origin
//! vouches for, a takedown the parent has not heard of yet is not served by a child that has,
//! a dead parent costs a detour, and a PoP that cannot hear of takedowns stops serving.

mod common;

use std::time::Duration;

use common::{Pop, TestOrigin, config, fetch, init, refusing_origin, viewer_path};
use pop_config::PopConfig;

const CHILD: &str = "pop-child.edge-test-child-credential";
const CHILD_2: &str = "pop-child2.edge-test-child-credential-2";
const SHIELD: &str = "pop-shield.edge-test-shield-credential";

/// A PoP of `credential` in `dir`.
fn pop_config(dir: &std::path::Path, origin: &TestOrigin, credential: &str) -> PopConfig {
    origin.enrol(credential);
    let mut c = config(dir, &origin.url());
    c.origin.credential = credential.to_owned();
    c.pop.id = credential.split_once('.').unwrap().0.to_owned();
    c.cache.block = 1 << 20;
    c
}

/// Tells the origin to vouch for `children` (none a partner's) in its heartbeat answers.
fn vouch(origin: &TestOrigin, children: &[&str]) {
    vouch_for(origin, &children.iter().map(|c| (*c, false)).collect::<Vec<_>>());
}

/// Tells the origin to vouch for `children`, each a partner's or not.
fn vouch_for(origin: &TestOrigin, children: &[(&str, bool)]) {
    origin.beats().tiers = children
        .iter()
        .map(|(c, partner)| {
            let tier = pop_config::tier::credential(c);
            (c.split_once('.').unwrap().0.to_owned(), pop_config::tier::verifier(&tier), *partner)
        })
        .collect();
}

async fn get(pop: &Pop, path: &str) -> (u16, String, String, bytes::Bytes) {
    let r = pop.h1.get(pop.https(path)).send().await.unwrap();
    let status = r.status().as_u16();
    let cache_status = r.headers().get("cache-status").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let x_cache = r.headers().get("x-cache").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, x_cache, cache_status, r.bytes().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn children_fetch_through_their_parent_once_and_every_tier_says_what_it_did() {
    init();
    let origin = TestOrigin::start().await;
    let segment = origin.segment("v1/360p/seg_00000.m4s", 200_000);
    let big = origin.segment("v1/720p/seg_00000.m4s", (2 << 20) + 12_345);
    vouch(&origin, &[CHILD, CHILD_2]);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let shield = Pop::start(pop_config(dirs[0].path(), &origin, SHIELD)).await;
    let shield_url = shield.http("");
    let child = |dir, cred| {
        let mut c = pop_config(dir, &origin, cred);
        c.origin.parents = vec![shield_url.clone()];
        c
    };
    let a = Pop::start(child(dirs[1].path(), CHILD)).await;
    let b = Pop::start(child(dirs[2].path(), CHILD_2)).await;

    let path = viewer_path("v1", "360p/seg_00000.m4s");
    let many = (0..20).map(|_| get(&a, &path));
    for (status, _, _, body) in futures_util::future::join_all(many).await {
        assert_eq!((status, body.len()), (200, segment.len()));
        assert_eq!(body, segment);
    }
    assert_eq!(origin.fetches("v1/360p/seg_00000.m4s"), 1, "one origin fetch for the shield's one flight");
    let (_, x_cache, cache_status, _) = get(&a, &path).await;
    assert_eq!((x_cache.as_str(), cache_status.as_str()), ("hit-memory", "\"pop-child\"; hit"));

    let (status, x_cache, cache_status, body) = get(&b, &path).await;
    assert_eq!((status, x_cache.as_str(), body), (200, "miss", segment));
    assert_eq!(cache_status, "\"pop-shield\"; hit, \"pop-child2\"; fwd=miss; fwd-status=200; stored");
    assert_eq!(origin.fetches("v1/360p/seg_00000.m4s"), 1, "the second child is served by the shield");

    // An object kept in chunks at every tier: each chunk crosses each tier once.
    let big_path = viewer_path("v1", "720p/seg_00000.m4s");
    let (status, _, cache_status, body) = get(&a, &big_path).await;
    assert_eq!((status, body.len()), (200, big.len()));
    assert_eq!(body, big);
    assert!(cache_status.starts_with("\"pop-shield\"; fwd=miss"), "{cache_status}");
    let (_, _, _, body) = get(&b, &big_path).await;
    assert_eq!(body, big);
    assert_eq!(origin.fetches("v1/720p/seg_00000.m4s"), 3, "three 1 MiB chunks, each fetched once by the shield");

    // The shield's viewers were the children: their requests are not counted as its own.
    let reports = origin.beats().reports.clone();
    let report = reports.last().expect("heartbeats");
    assert_eq!(report["every_ms"], 3_000);
    assert_eq!(report["uploads"], true);
    assert!(report["load"].as_f64().is_some() && report["requests"].as_u64().is_some());
    for p in [a, b, shield] {
        p.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parents_that_name_each_other_are_caught_by_cdn_loop_not_waited_on() {
    init();
    let origin = TestOrigin::start().await;
    let segment = origin.segment("v1/360p/seg_00000.m4s", 200_000);
    vouch(&origin, &[CHILD, CHILD_2]);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    // Each the other's parent: B's port is chosen before A starts.
    let b_addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut a_config = pop_config(dirs[0].path(), &origin, CHILD);
    a_config.origin.parents = vec![format!("http://{b_addr}")];
    let a = Pop::start(a_config).await;
    let mut b_config = pop_config(dirs[1].path(), &origin, CHILD_2);
    b_config.listen.http = Some(b_addr);
    b_config.origin.parents = vec![a.http("")];
    let b = Pop::start(b_config).await;

    // A asks B, B asks A, A finds itself in CDN-Loop and refuses, B asks the origin. Without
    // the list each would join the other's flight and wait out the 3 s request timeout.
    let asked = std::time::Instant::now();
    let (status, _, cache_status, body) = get(&a, &viewer_path("v1", "360p/seg_00000.m4s")).await;
    assert_eq!((status, body), (200, segment));
    assert!(asked.elapsed() < Duration::from_secs(2), "waited {:?} ({cache_status})", asked.elapsed());
    assert_eq!(
        cache_status,
        "\"pop-child2\"; fwd=miss; fwd-status=200; stored, \"pop-child\"; fwd=miss; fwd-status=200; stored"
    );
    assert_eq!(origin.fetches("v1/360p/seg_00000.m4s"), 1);

    // Both miss the same objects at once: neither list names the other PoP, but each has heard
    // the other answer as its parent, so each refuses the other as a child and asks the origin.
    for n in 1..=3 {
        let path = viewer_path("v1", &format!("360p/seg_{n:05}.m4s"));
        let want = origin.segment(&format!("v1/360p/seg_{n:05}.m4s"), 50_000);
        let asked = std::time::Instant::now();
        let (at_a, at_b) = tokio::join!(get(&a, &path), get(&b, &path));
        assert_eq!((at_a.0, at_b.0), (200, 200));
        assert!(at_a.3 == want && at_b.3 == want);
        assert!(asked.elapsed() < Duration::from_secs(2), "segment {n}: waited {:?}", asked.elapsed());
    }

    // A request naming A already is refused at once, with the code.
    let tier = pop_config::tier::credential(CHILD_2);
    let url = a.http("/v1/objects/v1/360p/seg_00000.m4s");
    let r = reqwest::Client::new()
        .get(url)
        .bearer_auth(tier)
        .header("cdn-loop", "cdn-x; v=1, pop-child")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 508);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"]["code"], "loop_detected");
    for p in [a, b] {
        p.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_lets_in_only_the_children_the_origin_vouches_for() {
    init();
    let origin = TestOrigin::start().await;
    origin.segment("v2/360p/seg_00000.m4s", 10_000);
    vouch(&origin, &[CHILD]);
    let dir = tempfile::tempdir().unwrap();
    let shield = Pop::start(pop_config(dir.path(), &origin, SHIELD)).await;
    let url = shield.https("/v1/objects/v2/360p/seg_00000.m4s");
    let tier = pop_config::tier::credential(CHILD);
    let forged = format!("pop-child.{}", "0".repeat(64));
    let stranger = pop_config::tier::credential("pop-stranger.edge-test-stranger-credential");
    for (bearer, want) in [
        (None, 401),
        (Some(CHILD), 401),
        (Some(forged.as_str()), 401),
        (Some(stranger.as_str()), 401),
        (Some(&tier), 200),
    ] {
        let auth = bearer.map(|b| format!("Bearer {b}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let (status, _, _) = fetch(&shield.h1, &url, &headers).await;
        assert_eq!(status, want, "{bearer:?}");
    }
    let auth = format!("Bearer {tier}");
    let (status, _, _) = fetch(&shield.h1, &shield.https("/v1/objects/v2/key"), &[("authorization", &auth)]).await;
    assert_eq!(status, 404, "keys never pass through a PoP, parent or not");
    shield.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_gives_a_partners_pop_nothing_clear() {
    init();
    let origin = TestOrigin::start().await;
    origin.segment("v7/360p/seg_00000.m4s", 10_000);
    origin.put("v7/poster.jpg", bytes::Bytes::from_static(b"a clear picture"), "public, max-age=60");
    vouch_for(&origin, &[(CHILD, true), (CHILD_2, false)]);
    let dir = tempfile::tempdir().unwrap();
    let shield = Pop::start(pop_config(dir.path(), &origin, SHIELD)).await;
    for (child, picture) in [(CHILD, 403), (CHILD_2, 200)] {
        let auth = format!("Bearer {}", pop_config::tier::credential(child));
        let headers = [("authorization", auth.as_str())];
        let (status, _, body) = fetch(&shield.h1, &shield.https("/v1/objects/v7/poster.jpg"), &headers).await;
        assert_eq!(status, picture, "{child}: {}", String::from_utf8_lossy(&body));
        let (status, _, _) = fetch(&shield.h1, &shield.https("/v1/objects/v7/360p/seg_00000.m4s"), &headers).await;
        assert_eq!(status, 200, "{child}: encrypted media for every child");
    }
    shield.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_does_not_serve_a_parents_copy_of_a_video_it_knows_is_taken_down() {
    init();
    let origin = TestOrigin::start().await;
    origin.segment("v3/360p/seg_00000.m4s", 10_000);
    origin.segment("v3/360p/seg_00001.m4s", 10_000);
    vouch(&origin, &[CHILD]);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut shield_config = pop_config(dirs[0].path(), &origin, SHIELD);
    shield_config.prefetch.heartbeat = Duration::from_secs(3600);
    let shield = Pop::start(shield_config).await;
    // The shield holds both segments from before the takedown.
    let tier = format!("Bearer {}", pop_config::tier::credential(CHILD));
    for n in 0..2 {
        let url = shield.https(&format!("/v1/objects/v3/360p/seg_0000{n}.m4s"));
        assert_eq!(fetch(&shield.h1, &url, &[("authorization", &tier)]).await.0, 200);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    origin.take_down("v3");
    let mut child_config = pop_config(dirs[1].path(), &origin, CHILD);
    child_config.origin.parents = vec![shield.http("")];
    // Started after the takedown: its first heartbeat brings the tombstone.
    let child = Pop::start(child_config).await;
    let (status, _, _, _) = get(&child, &viewer_path("v3", "360p/seg_00000.m4s")).await;
    assert_eq!(status, 410, "the shield's copy predates the takedown the child has heard of");
    let (status, _, _, _) = get(&child, &viewer_path("v3", "360p/seg_00001.m4s")).await;
    assert_eq!(status, 410);
    assert_eq!(origin.fetches("v3/360p/seg_00000.m4s"), 1, "only the shield's one fetch");
    child.stop().await;
    shield.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_parent_costs_a_detour_not_an_outage() {
    init();
    let origin = TestOrigin::start().await;
    let body = origin.segment("v4/360p/seg_00000.m4s", 10_000);
    let dir = tempfile::tempdir().unwrap();
    let mut c = pop_config(dir.path(), &origin, CHILD);
    c.origin.parents = vec![refusing_origin()];
    let child = Pop::start(c).await;
    let (status, _, cache_status, got) = get(&child, &viewer_path("v4", "360p/seg_00000.m4s")).await;
    assert_eq!((status, got), (200, body));
    assert_eq!(cache_status, "\"pop-child\"; fwd=miss; fwd-status=200; stored", "straight from the origin");
    let metrics = child.metrics().await;
    assert!(common::metric(&metrics, "edge_origin_failovers_total", &["route=\"parent\""]) >= 1.0, "{metrics}");
    child.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pop_that_cannot_hear_of_takedowns_stops_serving_and_purges_before_it_serves_again() {
    init();
    let mut origin = TestOrigin::start().await;
    origin.segment("v5/360p/seg_00000.m4s", 10_000);
    origin.segment("v6/360p/seg_00000.m4s", 10_000);
    let dir = tempfile::tempdir().unwrap();
    let mut c = pop_config(dir.path(), &origin, CHILD);
    c.prefetch.heartbeat = Duration::from_millis(300);
    c.origin.max_purge_lag = Duration::from_millis(1500);
    let pop = Pop::start(c).await;
    let (taken, kept) = (viewer_path("v5", "360p/seg_00000.m4s"), viewer_path("v6", "360p/seg_00000.m4s"));
    assert_eq!(get(&pop, &taken).await.0, 200);
    assert_eq!(get(&pop, &kept).await.0, 200);

    origin.kill().await;
    origin.take_down("v5");
    // Cached, but past the lag nothing is served: it may have missed a takedown.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, _, _, body) = get(&pop, &kept).await;
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("purges_behind"));
    let health = reqwest::get(format!("http://{}/healthz", pop.running.metrics.unwrap())).await.unwrap();
    assert_eq!(health.status(), 503);

    origin.restart().await;
    // From the first answer on, the taken-down video is never served again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, ..) = get(&pop, &taken).await;
        assert_ne!(status, 200, "served a video taken down while the PoP was cut off");
        if get(&pop, &kept).await.0 == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the PoP never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, ..) = get(&pop, &taken).await;
    assert!(matches!(status, 404 | 410), "{status}");
    pop.stop().await;
}

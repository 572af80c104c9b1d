//! Content steering end to end against stand-in PoPs: viewers load the steering manifest the
//! multivariant playlist names, move to the pathway it puts first, fail over at once when a
//! pathway refuses connections or answers 5xx, and stay put when steering is switched off.
//! A title whose playlist cannot be reached at the target is played from a new grant.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::server::Server;
use loadtest::client::Protocol;
use loadtest::report::Report;
use loadtest::{RunOptions, Scenario, tls};
use reqwest::Url;
use tokio_util::sync::CancellationToken;

/// Where nothing listens: connections are refused.
const DEAD: &str = "127.0.0.1:9";

/// Four viewers of the 6 s ladder, each fetching a 2 s segment every 2 s (a 2 s buffer), so
/// requests keep coming while the test changes what the PoPs do.
const PLAYBACK: &str = r#"
[run]
duration = "5s"
pace = "playback"
viewers = 4
ramp = "200ms"
rate = 4.0
seed = 3
[session]
length = { distribution = "whole" }
abandon_probability = 0.0
seeks_per_minute = 0.0
[abr]
max_buffer = "2s"
"#;

struct Pops {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    home: Server,
    b: Server,
    c: Server,
}

/// Three stand-in PoPs over one ladder. `home` serves the multivariant playlist tagged with
/// its own steering server, whose manifest puts a dead pathway first, then `b`, `c`, `home`.
async fn pops() -> Pops {
    tls::init();
    let dir = tempfile::tempdir().unwrap();
    let ladder = common::ladder(dir.path());
    let (home, b, c) =
        (Server::start(ladder.clone()).await, Server::start(ladder.clone()).await, Server::start(ladder).await);
    *home.state.steering_uri.lock().unwrap() = Some(format!("http://{}/v1/steering/vid", home.plain));
    let clone =
        |id: &str, host: String| serde_json::json!({"BASE-ID": "home", "ID": id, "URI-REPLACEMENT": {"HOST": host}});
    *home.state.manifest.lock().unwrap() = serde_json::json!({
        "VERSION": 1,
        "TTL": 1,
        "RELOAD-URI": format!("http://{}/v1/steering/vid?reloaded=1", home.plain),
        "PATHWAY-PRIORITY": ["dead", "b", "c", "home"],
        "PATHWAY-CLONES": [clone("dead", DEAD.into()), clone("b", b.plain.to_string()), clone("c", c.plain.to_string())],
    });
    Pops { dir: dir.path().to_owned(), _dir: dir, home, b, c }
}

fn options(p: &Pops, toml: &str) -> RunOptions {
    let list = p.dir.join("masters.txt");
    std::fs::write(&list, "/p/tok/vid/master.m3u8\n").unwrap();
    let scenario = Scenario::parse(toml, "test", "test").unwrap();
    let mut o = RunOptions::new(scenario, Url::parse(&format!("http://{}", p.home.plain)).unwrap());
    o.protocol = Protocol::H1;
    o.catalogue = Some(list);
    o
}

async fn run(o: RunOptions) -> Report {
    loadtest::run(o, CancellationToken::new()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_follow_the_manifest_and_fail_over_at_once() {
    let p = pops().await;
    let o = options(&p, PLAYBACK);
    // After the second segments, `b` starts answering 503: the third go to `c`.
    let b = p.b.state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        b.failing.store(true, Ordering::SeqCst);
    });
    let r = run(o).await;

    let stats = r.steering.clone().expect("steering was followed");
    assert!(stats.enabled);
    let s = stats.counts;
    assert!(s.viewings >= 4, "{s:?}");
    assert!(s.manifests >= s.viewings, "each steered viewing loads the manifest: {s:?}");
    assert_eq!(s.manifest_errors, 0);
    // Each viewing that got the manifest before its last request tried `dead` first.
    assert!(s.failovers >= 2 && s.switches >= 2, "{s:?}");
    assert_eq!(r.playback.failed, 0, "every failure was retried elsewhere: {:?}", r.totals.errors_by_kind);
    assert!(r.playback.sessions >= 4, "{:?}", r.playback);

    // Who served what: `dead` refused every request sent to it, `b` served until it failed,
    // `c` after; `home` served every multivariant playlist.
    let dead = &r.servers[DEAD];
    assert!(dead.requests > 0 && dead.errors == dead.requests, "{dead:?}");
    assert_eq!(r.totals.errors_by_kind.get("connect"), Some(&dead.requests), "{:?}", r.totals.errors_by_kind);
    let (b, c) = (&r.servers[&p.b.plain.to_string()], &r.servers[&p.c.plain.to_string()]);
    assert!(b.bytes > 0 && b.errors > 0, "b served, then failed: {b:?}");
    assert!(c.bytes > 0 && c.errors == 0, "{c:?}");
    assert_eq!(b.errors, r.totals.errors_by_kind["http_503"]);
    assert_eq!(p.c.seen().requests.load(Ordering::SeqCst), c.requests, "c counted what the harness sent it");
    let home = &r.servers[&p.home.plain.to_string()];
    assert!(home.requests >= r.by_kind["master"].requests, "{home:?}");
    assert_eq!(r.by_kind["master"].errors, 0);
    // Media playlists were loaded again on each pathway moved to.
    assert!(c.requests > 0 && r.by_kind["playlist"].requests > 2 * s.viewings, "{:?}", r.by_kind);

    // Manifest requests name the pathway and the throughput, and follow RELOAD-URI.
    let queries = p.home.state.manifest_queries.lock().unwrap().clone();
    // A reload still on its way when the run's time is up is answered but never counted: at
    // most one per viewer (4 at once).
    let served = queries.len() as u64;
    assert!(served >= s.manifests && served <= s.manifests + 4, "{served} served, {} counted", s.manifests);
    assert!(queries.iter().all(|q| q.contains("_HLS_pathway=") && q.contains("_HLS_throughput=")), "{queries:?}");
    assert!(queries.iter().any(|q| q.starts_with("_HLS_pathway=home&")), "the first load is from home: {queries:?}");
    assert!(queries.iter().any(|q| q.starts_with("reloaded=1&")), "reloads use RELOAD-URI: {queries:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switched_off_every_request_goes_where_the_playlists_say() {
    let p = pops().await;
    let mut o = options(&p, PLAYBACK);
    o.scenario.steering.enabled = false;
    let r = run(o).await;
    assert_eq!(r.steering.as_ref().map(|s| s.enabled), Some(false));
    assert_eq!(r.totals.errors, 0, "{:?}", r.totals.errors_by_kind);
    assert_eq!(r.servers.keys().collect::<Vec<_>>(), [&p.home.plain.to_string()]);
    assert!(p.home.state.manifest_queries.lock().unwrap().is_empty(), "no manifest asked for");
    assert_eq!(p.b.seen().requests.load(Ordering::SeqCst) + p.c.seen().requests.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playlist_unreachable_at_the_target_is_played_from_a_new_grant() {
    let p = pops().await;
    // The target is down; the origin's grants name `c`.
    *p.home.state.issue_at.lock().unwrap() = format!("http://{}", p.c.plain);
    *p.home.state.steering_uri.lock().unwrap() = None;
    let mut o = options(&p, &PLAYBACK.replace("duration = \"5s\"", "duration = \"3s\""));
    o.catalogue = None;
    o.origin = Some(Url::parse(&format!("http://{}", p.home.plain)).unwrap());
    o.target = Url::parse(&format!("http://{DEAD}")).unwrap();
    let r = run(o).await;
    let s = r.steering.expect("new grants are counted").counts;
    assert!(s.regrants >= 2, "every viewing asked again: {s:?}");
    assert_eq!(s.viewings, 0, "no playlist asked for steering");
    assert_eq!(r.playback.failed, 0, "{:?}", r.totals.errors_by_kind);
    assert!(r.servers[&p.c.plain.to_string()].bytes > 0);
    assert!(r.servers[DEAD].errors >= 2);

    // Without steering, the page does not ask again: the viewings fail.
    let mut o = options(&p, &PLAYBACK.replace("duration = \"5s\"", "duration = \"2s\""));
    o.catalogue = None;
    o.origin = Some(Url::parse(&format!("http://{}", p.home.plain)).unwrap());
    o.target = Url::parse(&format!("http://{DEAD}")).unwrap();
    o.scenario.steering.enabled = false;
    let r = run(o).await;
    assert!(r.playback.failed > 0 && r.playback.completed == 0, "{:?}", r.playback);
}

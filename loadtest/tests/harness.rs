//! The harness end to end, in-process, against a real (generated) HLS ladder served by the
//! stand-in PoP in `common`: every protocol, every trust mode, both paces, both catalogue
//! sources, the upload storm, the report files, the cost mode and the command itself. Each
//! test compares the harness's numbers with what the server counted.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::server::{CREATOR_TOKEN, Server};
use loadtest::client::Protocol;
use loadtest::report::{self, Report};
use loadtest::stop::StopReason;
use loadtest::tls::{self, Trust};
use loadtest::{RunOptions, Scenario};
use reqwest::Url;
use tokio_util::sync::CancellationToken;

struct Fixture {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    server: Server,
}

async fn fixture() -> Fixture {
    tls::init();
    let dir = tempfile::tempdir().unwrap();
    let ladder = common::ladder(dir.path());
    let server = Server::start(ladder).await;
    Fixture { dir: dir.path().to_owned(), _dir: dir, server }
}

fn scenario(toml: &str) -> Scenario {
    Scenario::parse(toml, "test", "test").unwrap()
}

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

/// Two titles (distinct cache keys over the same files), given as paths.
fn list(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("masters.txt");
    std::fs::write(&path, "# two titles\n/p/tok/vid/master.m3u8\n/p/tok/two/master.m3u8\n").unwrap();
    path
}

async fn run(options: RunOptions) -> Report {
    loadtest::run(options, CancellationToken::new()).await.unwrap()
}

const FAST: &str = r#"
[run]
duration = "20s"
pace = "fast"
viewers = 4
max_requests = 150
seed = 7
[session]
length = { distribution = "whole" }
abandon_probability = 0.0
seeks_per_minute = 0.0
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_fast_pace_counts_exactly_what_the_server_served() {
    let f = fixture().await;
    let seen = f.server.seen();
    let mut o = RunOptions::new(scenario(FAST), url(&format!("http://{}", f.server.plain)));
    o.protocol = Protocol::H1;
    o.catalogue = Some(list(&f.dir));
    o.origin_metrics = Some(url(&format!("http://{}/metrics", f.server.plain)));
    let r = run(o).await;

    assert_eq!(r.run.stopped_by, StopReason::MaxRequests);
    assert_eq!(r.totals.requests, 150, "the budget is exact");
    assert_eq!(seen.requests.load(Ordering::SeqCst), 150, "and every request counted was served");
    assert_eq!(r.totals.bytes, seen.bytes.load(Ordering::SeqCst));
    assert_eq!(r.totals.errors, 0, "{:?}", r.totals.errors_by_kind);
    assert_eq!(seen.versions.lock().unwrap().get("HTTP/1.1"), Some(&150));

    // x-cache: the harness's verdict counts are the server's, and so is the ratio.
    let (hits, misses) = (seen.hits.load(Ordering::SeqCst), seen.misses.load(Ordering::SeqCst));
    assert_eq!((r.cache.hits, r.cache.misses), (hits, misses));
    let ratio = r.cache.hit_ratio.unwrap();
    assert!((ratio - hits as f64 / (hits + misses) as f64).abs() < 1e-12);
    assert!(ratio > 0.5, "two titles replayed: mostly hits ({ratio})");
    assert_eq!(r.cache.values.get("hit-memory"), Some(&hits));

    // Origin egress is the metric's delta: the bytes this PoP stand-in sent on misses.
    let origin = r.origin.as_ref().unwrap();
    assert_eq!(origin.bytes, seen.miss_bytes.load(Ordering::SeqCst) as f64);
    assert!(origin.bytes > 0.0 && origin.bytes < r.totals.bytes as f64);

    // A player's request mix: each viewing fetches its key at most once.
    for kind in ["master", "playlist", "init", "key", "segment", "audio"] {
        assert!(r.by_kind.get(kind).is_some_and(|k| k.requests > 0), "no {kind} requests: {:?}", r.by_kind);
    }
    assert!(r.by_kind["key"].requests <= r.by_kind["master"].requests);
    assert_eq!(seen.keys.load(Ordering::SeqCst), r.by_kind["key"].requests);
    // Localhost is fast: the throughput rule climbs to the top rung.
    assert!(r.rungs.iter().all(|g| g.rung == "240p" || g.rung == "120p"), "{:?}", r.rungs);
    assert!(r.rungs.iter().any(|g| g.rung == "240p"));
    assert_eq!(r.playback.rebuffer_ratio, None, "no playhead in fast pace");
    assert!(r.latency.ttfb_ms.count > 0 && r.latency.segment_ms.p50 > 0.0);
    assert!(r.latency.startup_ms.count > 0);
    assert_eq!(r.timeline.points.iter().map(|p| p.requests).sum::<u64>(), 150);

    let out = f.dir.join("report");
    report::write(&out, &r).unwrap();
    let back = report::json::read(&out).unwrap();
    assert_eq!(back.totals.requests, 150);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.matches("<svg").count() >= 4, "throughput, requests, latency, percentiles, rungs");
    for external in ["<script", "<link", " src=", " href="] {
        assert!(!html.contains(external), "report.html is self-contained: found {external}");
    }

    // The cost mode scales the measured origin share.
    let prices = loadtest::cost::Prices::load(None).unwrap();
    let (share, source) = loadtest::cost::origin_share(&back).unwrap();
    assert_eq!(source, loadtest::cost::ShareSource::OriginMetrics);
    assert!((share - origin.bytes / r.totals.bytes as f64).abs() < 1e-12);
    let cost = loadtest::cost::project(&prices, share, source);
    assert!((cost.commercial_cdn_per_day - 150_000.0).abs() < 1e-6);
    assert!((cost.origin_egress_per_day - 7.5e6 * share * 0.05).abs() < 1e-6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_run_replays_its_own_requests_beside_the_pops_answers() {
    let f = fixture().await;
    let seen = f.server.seen();
    let mut o = RunOptions::new(scenario(FAST), url(&format!("http://{}", f.server.plain)));
    o.protocol = Protocol::H1;
    o.catalogue = Some(list(&f.dir));
    let trace = f.dir.join("trace.tsv");
    o.trace = Some(trace.clone());
    o.replay_cache = Some(1 << 30);
    let r = run(o).await;

    // Every request succeeded with a body, so every one is a line, as the server saw it.
    let lines = loadtest::trace::read_file(&trace).unwrap();
    assert_eq!(lines.len() as u64, r.totals.requests);
    assert_eq!(lines.iter().map(|l| l.bytes).sum::<u64>(), seen.bytes.load(Ordering::SeqCst));
    let misses = lines.iter().filter(|l| l.x_cache.as_deref() == Some("miss")).count() as u64;
    assert_eq!(misses, seen.misses.load(Ordering::SeqCst));
    let server = f.server.plain.to_string();
    assert!(
        lines
            .iter()
            .all(|l| l.server == server && !l.key.contains("/p/") && !l.key.contains("tok") && !l.key.contains('?'))
    );
    assert!(lines.windows(2).filter(|w| w[0].at_ms > w[1].at_ms).count() < lines.len() / 4, "nearly in order");

    // The stand-in keeps everything: with room for the whole trace, LRU and Belady hit
    // exactly where it did, and its row is the report's own hit ratio.
    let c = r.cache_vs_optimum.as_ref().expect("--trace with --replay-cache");
    assert_eq!((c.capacity, c.pops.len()), (1 << 30, 1));
    let rows = &c.pops[0].policies;
    assert_eq!(rows[0].policy, "PoP (x-cache)");
    assert_eq!(rows[0].object_hit_ratio, r.cache.hit_ratio);
    assert_eq!(rows[0].byte_hit_ratio, r.cache.byte_hit_ratio);
    for row in &rows[1..] {
        assert!((row.object_hit_ratio.unwrap() - r.cache.hit_ratio.unwrap()).abs() < 1e-12, "{row:?}");
    }

    let out = f.dir.join("report");
    report::write(&out, &r).unwrap();
    assert_eq!(report::json::read(&out).unwrap().cache_vs_optimum.as_ref(), Some(c));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Cache vs optimum") && html.contains("Belady") && html.contains("S3-FIFO"));
    assert!(report::table::render(&r).contains("cache vs optimum"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_over_tls_with_a_pin_plays_the_origin_catalogue_while_uploading() {
    let f = fixture().await;
    let seen = f.server.seen();
    let upload = f.dir.join("upload.bin");
    std::fs::write(&upload, (0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()).unwrap();
    let s = scenario(
        r#"
[run]
duration = "3s"
pace = "playback"
viewers = 3
ramp = "300ms"
rate = 4.0
seed = 11
[session]
length = { distribution = "whole" }
abandon_probability = 0.0
seeks_per_minute = 0.0
[uploads]
count = 2
parallel = 2
chunk = "64KiB"
via = "target"
"#,
    );
    let mut o = RunOptions::new(s, url(&format!("https://127.0.0.1:{}", f.server.tls.port())));
    o.protocol = Protocol::H2;
    let pin = tls::spki_sha256(&f.server.certificate_der.clone().into()).unwrap();
    o.trust = Trust::Pins(vec![pin]);
    // The API is plain HTTP; its answers name a host where nothing listens, so playback
    // URLs must be moved onto the target, and uploads too (`via = "target"`).
    o.origin = Some(url(&format!("http://{}", f.server.plain)));
    o.creator_token = Some(CREATOR_TOKEN.into());
    o.upload_file = Some(upload);
    let r = run(o).await;

    assert_eq!(r.run.stopped_by, StopReason::Duration);
    assert_eq!(r.run.catalogue_titles, 2, "only ready videos");
    assert_eq!(r.totals.errors, 0, "{:?}", r.totals.errors_by_kind);
    assert_eq!(r.totals.requests, seen.requests.load(Ordering::SeqCst));
    assert_eq!(seen.versions.lock().unwrap().get("HTTP/2.0"), Some(&r.totals.requests), "all over HTTP/2");
    assert!(r.playback.sessions >= 3, "{:?}", r.playback);
    assert!(r.latency.startup_ms.count >= 3);
    let rebuffer = r.playback.rebuffer_ratio.expect("playback pace simulates a buffer");
    assert!((0.0..=1.0).contains(&rebuffer));
    assert!(r.playback.played_seconds > 0.0);
    assert!(r.by_kind["audio"].requests > 0 && r.by_kind["key"].requests > 0);

    let u = r.uploads.as_ref().unwrap();
    assert_eq!((u.completed, u.failed), (2, 0), "{u:?}");
    assert_eq!(u.bytes, 600_000);
    assert_eq!(*seen.uploads.lock().unwrap(), vec![300_000, 300_000], "every byte arrived, in order");
    assert!(u.chunk_ms.count >= 10, "300 kB in 64 KiB chunks is 5 PATCHes per upload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http3_with_a_ca_file() {
    let f = fixture().await;
    let seen = f.server.seen();
    let ca = f.dir.join("ca.pem");
    std::fs::write(&ca, &f.server.certificate_pem).unwrap();
    let mut o = RunOptions::new(scenario(FAST), url(&format!("https://127.0.0.1:{}", f.server.h3.port())));
    o.protocol = Protocol::H3;
    o.trust = Trust::Ca(ca);
    o.catalogue = Some(list(&f.dir));
    let r = run(o).await;
    assert_eq!(r.totals.errors, 0, "{:?}", r.totals.errors_by_kind);
    assert_eq!(r.totals.requests, 150);
    assert_eq!(seen.versions.lock().unwrap().get("HTTP/3.0"), Some(&150));
    assert_eq!(r.totals.bytes, seen.bytes.load(Ordering::SeqCst));
    assert!(r.cache.hit_ratio.unwrap() > 0.5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_is_a_tls_error_and_still_a_report() {
    let f = fixture().await;
    let mut o = RunOptions::new(
        scenario(&FAST.replace("max_requests = 150", "max_requests = 12")),
        url(&format!("https://127.0.0.1:{}", f.server.tls.port())),
    );
    o.trust = Trust::Pins(vec![[0u8; 32]]);
    o.catalogue = Some(list(&f.dir));
    let r = run(o).await;
    assert_eq!(r.totals.requests, 12);
    assert_eq!(r.totals.errors_by_kind.get("tls"), Some(&12), "{:?}", r.totals.errors_by_kind);
    assert_eq!(f.server.seen().requests.load(Ordering::SeqCst), 0, "nothing reached the handler");
    // Each viewing failed at its master playlist; the ones that found the budget spent stopped.
    assert_eq!(r.playback.failed, 12);
    assert_eq!(r.playback.completed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_ends_the_run_early_with_a_report() {
    let f = fixture().await;
    let s = scenario("[run]\nduration = \"60s\"\nviewers = 2\n");
    let mut o = RunOptions::new(s, url(&format!("http://{}", f.server.plain)));
    o.protocol = Protocol::H2;
    o.catalogue = Some(list(&f.dir));
    let interrupt = CancellationToken::new();
    let trigger = interrupt.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let r = loadtest::run(o, interrupt).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(r.run.stopped_by, StopReason::Interrupted);
    assert!(r.totals.requests > 0);
    assert_eq!(f.server.seen().versions.lock().unwrap().get("HTTP/2.0"), Some(&r.totals.requests), "h2c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_runs_and_prices_a_report() {
    let f = fixture().await;
    let scenario_file = f.dir.join("bench.toml");
    std::fs::write(&scenario_file, FAST).unwrap();
    let out = f.dir.join("cli-report");
    let bin = env!("CARGO_BIN_EXE_loadtest");
    let run = tokio::process::Command::new(bin)
        .args(["run", "--quiet", "--max-requests", "40", "--protocol", "h1"])
        .arg("--target")
        .arg(format!("http://{}", f.server.plain))
        .arg("--scenario")
        .arg(&scenario_file)
        .arg("--catalogue")
        .arg(list(&f.dir))
        .arg("--report")
        .arg(&out)
        .arg("--sessions")
        .arg(f.dir.join("sessions.jsonl"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("requests") && stdout.contains("40 ("), "{stdout}");
    assert!(out.join("report.json").is_file() && out.join("report.html").is_file());
    // One JSON line per viewing, as the report counted them.
    let sessions = std::fs::read_to_string(f.dir.join("sessions.jsonl")).unwrap();
    let viewings: Vec<serde_json::Value> = sessions.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(viewings.len() as u64, report::json::read(&out).unwrap().playback.sessions);
    assert!(viewings.iter().all(|v| v.get("startup").is_some() && v["stalled"].is_number()), "{sessions}");

    let cost = tokio::process::Command::new(bin).arg("cost").arg("--report").arg(&out).output().await.unwrap();
    let text = String::from_utf8_lossy(&cost.stdout);
    assert!(cost.status.success(), "{text}{}", String::from_utf8_lossy(&cost.stderr));
    assert!(text.contains("150,000.00"), "{text}");
    assert!(text.contains("1 - byte hit ratio"), "no origin metrics given: {text}");

    let bad = tokio::process::Command::new(bin)
        .args(["run", "--target", "http://127.0.0.1:1", "--viewers", "0"])
        .output()
        .await
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("run.viewers"));
}

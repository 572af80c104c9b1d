//! The load-test harness against the real platform: the origin transcodes a clip, one PoP
//! serves it over TLS, and `loadtest` plays it over HTTP/2 and HTTP/3 with the PoP's
//! certificate pinned by SPKI, taking its catalogue and playback tokens from the origin's API
//! and its egress from the origin's metrics. The harness's counts must agree with what the
//! PoP and the origin counted themselves.

mod common;

use std::time::Duration;

use common::{Secrets, counter};

use loadtest::client::Protocol;
use loadtest::report::Report;
use loadtest::stop::StopReason;
use loadtest::tls::{Trust, parse_pin};
use loadtest::{RunOptions, Scenario};
use origin::client::{Client, UploadPlan};
use origin::config::DEV_CREATOR_TOKEN;
use reqwest::Url;
use tests::media::clip;
use tokio_util::sync::CancellationToken;

const SECRETS: Secrets = Secrets { signing_key: "10ad10ad10ad10ad10ad10ad10ad10ad10ad10ad10ad10ad10ad10ad10ad10ad" };
const REQUESTS: u64 = 80;

/// Fast pace, whole viewings, a fixed seed: three viewers of the one title, so the second and
/// third are served from the PoP's cache.
const SCENARIO: &str = r#"
[run]
duration = "60s"
pace = "fast"
viewers = 3
max_requests = 80
seed = 11
[session]
length = { distribution = "whole" }
abandon_probability = 0.0
seeks_per_minute = 0.0
"#;

async fn play(pop: &edge::Running, origin: &origin::Running, target: String, protocol: Protocol) -> Report {
    let origin_url = &origin.app.config.public_url;
    let metrics = origin.metrics_addr.expect("the origin serves metrics");
    let scenario = Scenario::parse(SCENARIO, "pop-e2e", "pop-e2e").unwrap();
    let mut options = RunOptions::new(scenario, Url::parse(&target).unwrap());
    options.protocol = protocol;
    options.trust = Trust::Pins(vec![parse_pin(&pop.spki).unwrap()]);
    options.origin = Some(Url::parse(origin_url).unwrap());
    options.origin_metrics = Some(Url::parse(&format!("http://{metrics}/metrics")).unwrap());
    loadtest::run(options, CancellationToken::new()).await.expect("the run completes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_measures_a_real_pop_over_h2_and_h3() {
    edge::init_tls();
    let dir = tempfile::tempdir().unwrap();
    let origin_url = common::origin_url();
    let mut cfg = SECRETS.pop(&dir.path().join("pop"), &dir.path().join("origin"), &origin_url, "pop-local").await;
    // No prefetch: every byte the origin serves during a run is a viewer's miss.
    cfg.prefetch.enabled = false;
    let pop = edge::start(cfg).await.expect("PoP starts");
    let site = format!("https://127.0.0.1:{}", pop.https.port());
    let h3 = pop.h3.expect("the PoP listens for HTTP/3");

    let config = SECRETS.origin(&dir.path().join("origin"), &origin_url, &origin_url, &site);
    let origin = origin::start(config).await.expect("origin starts");

    let src = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || clip(&dir, "src.mp4", "640x360", 8)
    })
    .await
    .unwrap();
    let creator = Client::new(&origin_url, DEV_CREATOR_TOKEN);
    let (id, upload_url) = creator.create_video("부하 시험", &src).await.unwrap();
    creator.upload(&upload_url, &src, UploadPlan { chunk: 1 << 20, parallel: 1 }).await.unwrap();
    creator.wait_ready(&id, Duration::from_secs(180)).await.unwrap();

    let served = |protocol: &str| counter(&pop.edge.metrics.render(), &["edge_requests_total", protocol]);

    // HTTP/2 on a cold PoP.
    let before = served("protocol=\"h2\"");
    let h2 = play(&pop, &origin, site.clone(), Protocol::H2).await;
    assert_eq!(h2.run.stopped_by, StopReason::MaxRequests, "{:?}", h2.totals);
    assert_eq!(h2.run.catalogue_titles, 1, "the catalogue came from the origin's API");
    assert_eq!(h2.totals.requests, REQUESTS, "the budget is exact");
    assert_eq!(h2.totals.errors, 0, "{:?}", h2.totals.errors_by_kind);
    assert_eq!(served("protocol=\"h2\"") - before, REQUESTS as f64, "the PoP served every request counted");
    assert!(h2.cache.misses > 0 && h2.cache.hits > 0, "a cold PoP, then viewers of the same title: {:?}", h2.cache);
    let egress = h2.origin.as_ref().expect("origin egress was read").bytes;
    assert!(egress > 0.0, "the misses were pulled from the origin");
    assert!(egress < h2.totals.bytes as f64, "the PoP served more than it pulled: {egress} vs {}", h2.totals.bytes);
    assert!(h2.latency.ttfb_ms.count > 0 && h2.latency.startup_ms.count > 0);
    assert!(!h2.rungs.is_empty(), "segments were attributed to rungs");

    // HTTP/3 to the same PoP, now warm: what the first run fetched is served from its cache.
    let before = served("protocol=\"h3\"");
    let h3 = play(&pop, &origin, format!("https://127.0.0.1:{}", h3.port()), Protocol::H3).await;
    assert_eq!(h3.totals.requests, REQUESTS);
    assert_eq!(h3.totals.errors, 0, "{:?}", h3.totals.errors_by_kind);
    assert_eq!(served("protocol=\"h3\"") - before, REQUESTS as f64, "every request went over QUIC");
    let h3_egress = h3.origin.as_ref().expect("origin egress was read").bytes;
    assert!(h3.cache.hits > h2.cache.hits, "a warm PoP: {:?} after {:?}", h3.cache, h2.cache);
    assert!(h3_egress < egress, "a warm PoP pulls less: {h3_egress} vs {egress}");

    pop.stop().await;
    origin.stop().await;
}

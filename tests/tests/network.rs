//! The delivery network across real distance: an origin, two regions each with a shield and two
//! PoPs, viewers and creators, every host in its own network namespace behind the test bed's
//! router (`tests::netbed`: 5 ms viewer-PoP, 10 ms PoP-shield, 40 ms to the origin, 90 ms
//! across regions). Each server runs in-process on a runtime inside its host's namespace
//! (`tests::ns`), so killing a runtime is a host going dark.
//!
//! - Creators and viewers are steered to their own region: the upload URL, the playback URLs
//!   and the steering manifest name a PoP of the caller's region first.
//! - 200 viewers of one cold segment in two regions cost one origin fetch per shield.
//! - Origin egress for the same viewing with shields against without, written down.
//! - A takedown reaches every PoP and shield, and a PoP cut off at the time stops serving and
//!   purges before it serves again.
//! - tus through a PoP 50 ms away with 1% loss: four parallel parts against one stream, and an
//!   upload whose PoP dies resumes through another from the acknowledged offset.
//!
//! Needs root (namespaces): skipped loudly elsewhere, and failing under CI when it cannot run.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Secrets;
use origin::config::DEV_CREATOR_TOKEN;
use pop_config::PopConfig;
use tests::netbed::{Link, NetBed, Spec};
use tests::ns::NsRuntime;

const SECRETS: Secrets = Secrets { signing_key: "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e" };
const ORIGIN_PORT: u16 = 8080;
const POP_PORT: u16 = 8081;
const METRICS_PORT: u16 = 9464;
const HTTPS_PORT: u16 = 8443;

/// How the PoPs of a platform are set up.
#[derive(Clone, Copy)]
struct Options {
    /// PoPs ask their region's shield first.
    shields: bool,
    /// `origin.max_purge_lag` of every PoP.
    max_purge_lag: Duration,
    /// PoPs serve the pages (`web/`), and tell the origin their HTTPS address (players need a
    /// secure context for EME); test clients keep to the plain HTTP listeners.
    pages: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self { shields: false, max_purge_lag: Duration::from_secs(3), pages: false }
    }
}

fn workspace() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_owned()
}

/// A PoP of the bed: its runtime and what runs on it.
struct Pop {
    runtime: NsRuntime,
    running: Option<edge::Running>,
}

/// The platform on the bed.
struct Platform {
    bed: NetBed,
    dir: tempfile::TempDir,
    origin_rt: NsRuntime,
    origin: Option<origin::Running>,
    pops: BTreeMap<String, Pop>,
    credentials: BTreeMap<String, String>,
    options: Options,
    /// Runtimes of viewers and creators, by host.
    clients: BTreeMap<String, NsRuntime>,
}

fn pop_hosts(bed: &NetBed) -> Vec<String> {
    bed.hosts().filter(|h| h.contains("-pop-") || h.ends_with("-shield")).map(str::to_owned).collect()
}

fn region_of(host: &str) -> &str {
    host.split('-').next().unwrap_or_default()
}

impl Platform {
    fn origin_url(&self) -> String {
        format!("http://{}:{ORIGIN_PORT}", self.bed.addr("origin"))
    }

    /// A PoP's plain HTTP listener, which test clients use.
    fn pop_url(&self, host: &str) -> String {
        format!("http://{}:{POP_PORT}", self.bed.addr(host))
    }

    /// Where the origin steers viewers to a PoP: HTTPS when it serves the pages.
    fn public_url(&self, host: &str) -> String {
        if self.options.pages { format!("https://{}:{HTTPS_PORT}", self.bed.addr(host)) } else { self.pop_url(host) }
    }

    /// The base64 SHA-256 of every PoP's certificate key, for Chromium to trust them.
    fn spki_list(&self) -> String {
        self.pops.values().filter_map(|p| p.running.as_ref()).map(|r| r.spki.clone()).collect::<Vec<_>>().join(",")
    }

    /// Starts the origin (embedded defaults, steering by the bed's client addresses) and every
    /// PoP and shield.
    async fn start(bed: NetBed, options: Options) -> Self {
        edge::init_tls();
        let dir = tempfile::tempdir().unwrap();
        let origin_dir = dir.path().join("origin");
        let mut credentials = BTreeMap::new();
        for host in pop_hosts(&bed) {
            credentials.insert(host.clone(), common::enrol_in(&origin_dir, &host, region_of(&host), false).await);
        }
        let origin_rt = NsRuntime::start(bed.ns("origin"), 2).unwrap();
        let clients = bed
            .hosts()
            .filter(|h| h.ends_with("-viewer") || h.ends_with("-creator"))
            .map(|h| (h.to_owned(), NsRuntime::start(bed.ns(h), 2).unwrap()))
            .collect();
        let mut platform =
            Self { bed, dir, origin_rt, origin: None, pops: BTreeMap::new(), credentials, options, clients };
        let config = platform.origin_config(&origin_dir);
        platform.origin = Some(platform.origin_rt.run(async move { origin::start(config).await.unwrap() }).await);
        for host in pop_hosts(&platform.bed) {
            platform.start_pop(&host).await;
        }
        platform.wait_steerable().await;
        platform
    }

    fn origin_config(&self, origin_dir: &Path) -> origin::Config {
        let url = self.origin_url();
        let fallback = self.pop_url("r1-pop-a");
        let mut config = SECRETS.origin(origin_dir, &url, &fallback, &fallback);
        config.listen = SocketAddr::from((self.bed.addr("origin"), ORIGIN_PORT));
        config.steering.ttl = Duration::from_secs(2);
        config.steering.regions = ["r1", "r2"]
            .iter()
            .map(|region| origin::config::Region {
                name: (*region).to_owned(),
                networks: self
                    .bed
                    .hosts()
                    .filter(|h| region_of(h) == *region && (h.ends_with("-viewer") || h.ends_with("-creator")))
                    .map(|h| format!("{}/32", self.bed.addr(h)).parse().unwrap())
                    .collect(),
            })
            .collect();
        config
    }

    fn pop_config(&self, host: &str) -> PopConfig {
        let addr = self.bed.addr(host);
        let cache = self.dir.path().join(format!("{host}-{}", edge::now_ms()));
        let mut c = PopConfig::default_for(&cache, &self.origin_url(), &self.credentials[host], vec![SECRETS.key()]);
        c.pop.region = region_of(host).to_owned();
        // Shields serve PoPs, not viewers: without a public URL, steering never names one (as
        // in `bench/network`).
        c.pop.public_url = (!host.ends_with("-shield")).then(|| self.public_url(host));
        c.listen.https = SocketAddr::from((addr, HTTPS_PORT));
        c.listen.h3 = None;
        c.listen.http = Some(SocketAddr::from((addr, POP_PORT)));
        c.listen.metrics = Some(SocketAddr::from((addr, METRICS_PORT)));
        c.prefetch.enabled = false;
        c.prefetch.heartbeat = Duration::from_millis(500);
        c.origin.max_purge_lag = self.options.max_purge_lag;
        c.origin.connect_timeout = Duration::from_secs(1);
        c.origin.request_timeout = Duration::from_secs(10);
        if self.options.shields && host.contains("-pop-") {
            c.origin.parents = vec![self.pop_url(&format!("{}-shield", region_of(host)))];
        }
        if self.options.pages {
            c.web = Some(pop_config::Web { dir: workspace().join("web"), key_service: None });
        }
        c
    }

    async fn start_pop(&mut self, host: &str) {
        let config = self.pop_config(host);
        let runtime = NsRuntime::start(self.bed.ns(host), 2).unwrap();
        // A PoP started again where one was killed may find its port still held for a moment.
        let running = runtime
            .run(async move {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    match edge::start(config.clone()).await {
                        Ok(running) => break running,
                        Err(e) if Instant::now() < deadline => {
                            eprintln!("PoP start failed, trying again: {e}");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(e) => panic!("the PoP does not start: {e}"),
                    }
                }
            })
            .await;
        self.pops.insert(host.to_owned(), Pop { runtime, running: Some(running) });
    }

    /// Kills a PoP's host: every socket closes at once.
    fn kill_pop(&mut self, host: &str) {
        if let Some(pop) = self.pops.remove(host) {
            std::mem::forget(pop.running);
            pop.runtime.kill();
        }
    }

    /// Until every PoP but the shields has beaten with its URL since now, so the origin steers
    /// to all of them.
    async fn wait_steerable(&self) {
        // Shields have no public URL: they are never steered to.
        let want = self.pops.keys().filter(|h| !h.ends_with("-shield")).count();
        let app = self.origin.as_ref().expect("the origin runs").app.clone();
        let since = origin::meta::now();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let app = app.clone();
            let statuses = self.origin_rt.run(async move { app.pops.statuses().await.unwrap_or_default() }).await;
            let known = statuses.iter().filter(|s| s.url.is_some() && s.beat_at >= since).count();
            if known >= want {
                break;
            }
            assert!(Instant::now() < deadline, "only {known} of {want} PoPs have beaten with their URL");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The origin reads statuses through a one-second snapshot.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }

    fn client(&self, host: &str) -> &NsRuntime {
        &self.clients[host]
    }

    /// GET `url` from `host`; the body as JSON when it answers 200.
    async fn get_json(&self, url: &str, host: &str) -> Option<serde_json::Value> {
        let url = url.to_owned();
        self.client(host)
            .run(async move {
                let r = reqwest::get(&url).await.ok()?;
                if r.status() != 200 {
                    return None;
                }
                r.json().await.ok()
            })
            .await
    }

    /// GET `url` from `host`: status and body.
    async fn get(&self, url: &str, host: &str) -> (u16, Vec<u8>) {
        let url = url.to_owned();
        self.client(host)
            .run(async move {
                match reqwest::get(&url).await {
                    Ok(r) => (r.status().as_u16(), r.bytes().await.map(|b| b.to_vec()).unwrap_or_default()),
                    Err(_) => (0, Vec::new()),
                }
            })
            .await
    }

    /// A PoP's metrics page, read from a viewer host of its region.
    async fn metrics(&self, host: &str) -> String {
        let url = format!("http://{}:{METRICS_PORT}/metrics", self.bed.addr(host));
        let viewer = format!("{}-viewer", region_of(host));
        String::from_utf8_lossy(&self.get(&url, &viewer).await.1).into_owned()
    }

    /// Origin fetches a PoP (or shield) made that the origin or its parent answered.
    async fn origin_fetches(&self, host: &str) -> f64 {
        common::counter(&self.metrics(host).await, &["edge_origin_fetches_total", "outcome=\"ok\""])
    }

    /// Bytes the router carried from the origin to any host since the last reset.
    fn origin_egress(&self) -> u64 {
        self.bed.stats().unwrap().iter().filter(|p| p.from == "origin").map(|p| p.bytes).sum()
    }

    async fn stop(mut self) {
        for host in self.pops.keys().cloned().collect::<Vec<_>>() {
            if let Some(mut pop) = self.pops.remove(&host)
                && let Some(running) = pop.running.take()
            {
                pop.runtime.run(running.stop()).await;
            }
        }
        if let Some(origin) = self.origin.take() {
            self.origin_rt.run(origin.stop()).await;
        }
    }
}

/// The host of `url` (`http://10.77.0.3:8081/...` → `10.77.0.3:8081`).
fn authority(url: &str) -> &str {
    url.split('/').nth(2).unwrap_or_default()
}

/// Uploads a clip from `creator`, steered by the origin; the video id and the upload URL.
async fn upload_clip(p: &Platform, creator: &str, seconds: u32) -> (String, String) {
    let clip = {
        let dir = p.dir.path().to_owned();
        tokio::task::spawn_blocking(move || tests::media::clip(&dir, "clip.mp4", "640x360", seconds)).await.unwrap()
    };
    let origin_url = p.origin_url();
    p.client(creator)
        .run(async move {
            let client = origin::client::Client::new(&origin_url, DEV_CREATOR_TOKEN);
            let (id, url) = client.create_video("Across the network", &clip).await.expect("video created");
            // Through the steered PoP, on its plain listener (the test client trusts no certificate).
            let host = authority(&url).split(':').next().unwrap_or_default().to_owned();
            let url =
                url.replacen(authority(&url), &format!("{host}:{POP_PORT}"), 1).replacen("https://", "http://", 1);
            client.upload(&url, &clip, origin::client::UploadPlan::default()).await.expect("uploaded");
            client.wait_ready(&id, Duration::from_secs(180)).await.expect("ready");
            (id, url)
        })
        .await
}

/// A playback grant for `video`, asked from `viewer`.
async fn playback(p: &Platform, viewer: &str, video: &str) -> serde_json::Value {
    let (origin_url, video) = (p.origin_url(), video.to_owned());
    p.client(viewer)
        .run(async move { origin::client::Client::new(&origin_url, DEV_CREATOR_TOKEN).playback(&video).await.unwrap() })
        .await
}

/// The floor rung's segment URLs of a grant (stored at upload, never encoded on demand), from
/// its media playlist.
async fn floor_segments(p: &Platform, grant: &serde_json::Value, video: &str) -> Vec<String> {
    let url = format!("{}/v1/videos/{video}", p.origin_url());
    let v = p.get_json(&url, "r1-viewer").await.expect("the video");
    let floor = v["renditions"].as_array().unwrap().iter().find(|r| r["on_demand"] != true).expect("a floor rung");
    let master = grant["master_url"].as_str().unwrap();
    let base =
        format!("{}{}/", master.trim_end_matches(encoder::layout::MASTER_PLAYLIST), floor["name"].as_str().unwrap());
    let (status, playlist) = p.get(&format!("{base}{}", encoder::layout::MEDIA_PLAYLIST), "r1-viewer").await;
    assert_eq!(status, 200);
    let segments: Vec<String> = String::from_utf8_lossy(&playlist)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| format!("{base}{}", l.trim()))
        .collect();
    assert!(segments.len() >= 2, "{segments:?}");
    segments
}

/// `url` moved onto PoP `host`.
fn on_pop(p: &Platform, url: &str, host: &str) -> String {
    url.replacen(authority(url), authority(&p.pop_url(host)), 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_are_steered_shields_absorb_misses_and_takedowns_reach_partitioned_pops() {
    let spec = Spec::regions(2, 2, true);
    let Some(bed) = NetBed::require("network::regions", &spec) else { return };
    let mut p = Platform::start(bed, Options { shields: true, ..Options::default() }).await;

    // Creators are sent to a PoP of their own region.
    let (video, upload_url) = upload_clip(&p, "r2-creator", 8).await;
    let r2_pops = ["r2-pop-a", "r2-pop-b"].map(|h| authority(&p.pop_url(h)).to_owned());
    assert!(r2_pops.iter().any(|a| a == authority(&upload_url)), "upload at {upload_url}, not in r2");

    // Viewers too: playback URLs and the steering manifest name their region's PoPs first.
    for (viewer, region) in [("r1-viewer", "r1"), ("r2-viewer", "r2")] {
        let grant = playback(&p, viewer, &video).await;
        let master = grant["master_url"].as_str().unwrap();
        let home: Vec<String> =
            ["a", "b"].iter().map(|l| authority(&p.pop_url(&format!("{region}-pop-{l}"))).to_owned()).collect();
        assert!(home.iter().any(|h| h == authority(master)), "{viewer} sent to {master}");
        let steering = p.get_json(&format!("{}/v1/steering/{video}", p.origin_url()), viewer).await.unwrap();
        let first = steering["PATHWAY-PRIORITY"][0].as_str().unwrap().to_owned();
        assert!(first.starts_with(region), "{viewer}: {steering}");
        let (status, master_body) = p.get(master, viewer).await;
        assert_eq!(status, 200);
        let text = String::from_utf8_lossy(&master_body);
        assert!(text.contains("#EXT-X-CONTENT-STEERING:SERVER-URI="), "{text}");
    }

    // 200 viewers of one cold segment in two regions: one origin fetch per shield.
    let grant = playback(&p, "r1-viewer", &video).await;
    let segments = floor_segments(&p, &grant, &video).await;
    let cold = segments.last().unwrap().clone();
    let mut before = BTreeMap::new();
    for host in p.pops.keys() {
        before.insert(host.clone(), p.origin_fetches(host).await);
    }
    let mut bodies = Vec::new();
    for region in ["r1", "r2"] {
        let urls: Vec<String> = (0..100)
            .map(|i| on_pop(&p, &cold, &format!("{region}-pop-{}", if i % 2 == 0 { "a" } else { "b" })))
            .collect();
        let viewer = format!("{region}-viewer");
        let got = p
            .client(&viewer)
            .run(async move {
                let client = reqwest::Client::new();
                let all = urls.iter().map(|u| {
                    let client = client.clone();
                    async move {
                        let r = client.get(u).send().await.unwrap();
                        (r.status().as_u16(), r.bytes().await.unwrap())
                    }
                });
                futures_util::future::join_all(all).await
            })
            .await;
        bodies.extend(got);
    }
    assert!(bodies.iter().all(|(s, b)| *s == 200 && *b == bodies[0].1), "200 viewers, one body");
    for host in p.pops.keys() {
        let fetched = p.origin_fetches(host).await - before[host];
        assert_eq!(fetched, 1.0, "{host}: each tier fetched the segment once");
    }

    // Origin egress for the same viewing, with shields and without.
    let with = egress_of_viewing(&p, &segments).await;
    p.options.shields = false;
    for host in pop_hosts(&p.bed).into_iter().filter(|h| h.contains("-pop-")) {
        p.kill_pop(&host);
        p.start_pop(&host).await;
    }
    p.wait_steerable().await;
    let without = egress_of_viewing(&p, &segments).await;
    eprintln!(
        "origin egress for the same viewing: {with} bytes with shields, {without} without ({:.2}x)",
        with as f64 / without as f64
    );
    assert!((with as f64) < 0.6 * without as f64, "shields must at least nearly halve origin egress");

    // A takedown reaches every PoP and shield, including one cut off at the time.
    for host in pop_hosts(&p.bed) {
        assert_eq!(p.get(&on_pop(&p, &segments[0], &host), &format!("{}-viewer", region_of(&host))).await.0, 200);
    }
    p.bed.partition("r1-pop-a", "origin").unwrap();
    p.bed.partition("r1-pop-a", "r1-shield").unwrap();
    take_down(&p, &video).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    for host in pop_hosts(&p.bed).into_iter().filter(|h| h != "r1-pop-a") {
        let url = on_pop(&p, &segments[0], &host);
        let viewer = format!("{}-viewer", region_of(&host));
        while p.get(&url, &viewer).await.0 == 200 {
            assert!(Instant::now() < deadline, "{host} still serves a video taken down");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Cut off, the PoP stops serving once it has not heard of takedowns for its lag.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let cut_off = on_pop(&p, &segments[0], "r1-pop-a");
    assert_eq!(p.get(&cut_off, "r1-viewer").await.0, 503);
    p.bed.heal("r1-pop-a", "origin").unwrap();
    p.bed.heal("r1-pop-a", "r1-shield").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = p.get(&cut_off, "r1-viewer").await.0;
        assert_ne!(status, 200, "the cut-off PoP served a video taken down meanwhile");
        if status != 503 {
            break;
        }
        assert!(Instant::now() < deadline, "the cut-off PoP never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p.stop().await;
}

/// Takes `video` down at the origin, as its creator.
async fn take_down(p: &Platform, video: &str) {
    let url = format!("{}/v1/videos/{video}", p.origin_url());
    let status = p
        .client("r1-creator")
        .run(async move {
            reqwest::Client::new().delete(&url).bearer_auth(DEV_CREATOR_TOKEN).send().await.unwrap().status().as_u16()
        })
        .await;
    assert_eq!(status, 200, "takedown");
}

/// Origin egress while five viewers per PoP watch `segments` (the PoPs' caches cold).
async fn egress_of_viewing(p: &Platform, segments: &[String]) -> u64 {
    p.bed.reset_stats().unwrap();
    for region in ["r1", "r2"] {
        let urls: Vec<String> = ["a", "b"]
            .iter()
            .flat_map(|l| {
                let host = format!("{region}-pop-{l}");
                segments.iter().map(move |s| (s.clone(), host.clone()))
            })
            .flat_map(|(s, host)| std::iter::repeat_n(on_pop(p, &s, &host), 5))
            .collect();
        let viewer = format!("{region}-viewer");
        let statuses: Vec<u16> = p
            .client(&viewer)
            .run(async move {
                let client = reqwest::Client::new();
                let mut out = Vec::new();
                for u in urls {
                    let r = client.get(&u).send().await.unwrap();
                    out.push(r.status().as_u16());
                    let _ = r.bytes().await;
                }
                out
            })
            .await;
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
    p.origin_egress()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_over_a_lossy_link_and_through_a_pop_that_dies() {
    let spec = Spec::default()
        .host("origin", "core", "origin")
        .host("r1-pop-a", "r1", "pop")
        .host("r1-pop-b", "r1", "pop")
        .host("r1-creator", "r1", "creator")
        .host("r1-viewer", "r1", "viewer")
        .link("creator", "pop", Some(true), Link::rtt(50.0, 1.0).with_loss(0.01));
    let Some(bed) = NetBed::require("network::uploads", &spec) else { return };
    let mut p = Platform::start(bed, Options { max_purge_lag: Duration::ZERO, ..Options::default() }).await;
    let file = p.dir.path().join("upload.bin");
    let size: usize = 6 << 20;
    std::fs::write(&file, tests_bytes(size)).unwrap();

    // One stream against four parallel parts, the same bytes through the same PoP.
    let mut rates = Vec::new();
    for parallel in [1usize, 4] {
        let (origin_url, file, pop) = (p.origin_url(), file.clone(), p.pop_url("r1-pop-a"));
        let secs = p
            .client("r1-creator")
            .run(async move {
                let client = origin::client::Client::new(&origin_url, DEV_CREATOR_TOKEN);
                let (_id, url) = client.create_video("Lossy", &file).await.unwrap();
                let url = url.replacen(authority(&url), authority(&pop), 1);
                let started = Instant::now();
                let plan = origin::client::UploadPlan { chunk: 1 << 20, parallel };
                client.upload(&url, &file, plan).await.unwrap();
                started.elapsed().as_secs_f64()
            })
            .await;
        rates.push(size as f64 / secs / 1e6);
    }
    eprintln!(
        "tus at 50 ms RTT and 1% loss: one stream {:.2} MB/s, four parts {:.2} MB/s ({:.2}x)",
        rates[0],
        rates[1],
        rates[1] / rates[0]
    );

    // Half through PoP A, A dies, the rest through B from the offset the origin acknowledged.
    p.bed.set_link("r1-creator", "r1-pop-a", 5.0, 0.5, 0.0).unwrap();
    p.bed.set_link("r1-creator", "r1-pop-b", 5.0, 0.5, 0.0).unwrap();
    let (origin_url, data) = (p.origin_url(), Arc::new(tests_bytes(size)));
    let (pop_a, pop_b) = (p.pop_url("r1-pop-a"), p.pop_url("r1-pop-b"));
    let (location, id) = {
        let (file, data, pop_a) = (file.clone(), data.clone(), pop_a.clone());
        p.client("r1-creator")
            .run(async move {
                let client = origin::client::Client::new(&origin_url, DEV_CREATOR_TOKEN);
                let (id, url) = client.create_video("Moved", &file).await.unwrap();
                let url = url.replacen(authority(&url), authority(&pop_a), 1);
                let http = reqwest::Client::new();
                let created = http
                    .post(&url)
                    .header("tus-resumable", "1.0.0")
                    .header("upload-length", size.to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(created.status(), 201);
                let location = created.headers()["location"].to_str().unwrap().to_owned();
                let patched = http
                    .patch(&location)
                    .header("tus-resumable", "1.0.0")
                    .header("upload-offset", "0")
                    .header("content-type", "application/offset+octet-stream")
                    .body(data[..size / 2].to_vec())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(patched.status(), 204);
                (location, id)
            })
            .await
    };
    p.kill_pop("r1-pop-a");
    let moved = location.replacen(authority(&location), authority(&pop_b), 1);
    let origin_url = p.origin_url();
    p.client("r1-creator")
        .run(async move {
            let http = reqwest::Client::new();
            let head = http.head(&moved).header("tus-resumable", "1.0.0").send().await.unwrap();
            assert_eq!(head.status(), 200);
            let offset: usize = head.headers()["upload-offset"].to_str().unwrap().parse().unwrap();
            assert_eq!(offset, size / 2, "the acknowledged offset, at another PoP");
            let patched = http
                .patch(&moved)
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", offset.to_string())
                .header("content-type", "application/offset+octet-stream")
                .body(data[offset..].to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(patched.status(), 204);
            let v = origin::client::Client::new(&origin_url, DEV_CREATOR_TOKEN).video(&id).await.unwrap();
            assert_ne!(v["state"], "uploading", "the upload completed: {v}");
        })
        .await;
    p.stop().await;
}

/// `len` bytes that are not a video (the upload is what is measured, not the encode).
fn tests_bytes(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Why Chromium cannot run here, if it cannot (node, Chromium and the web packages).
fn browser_missing() -> Option<String> {
    let node = std::process::Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let chromium = std::env::var_os("CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), std::path::PathBuf::from);
    let web = workspace().join("web/node_modules");
    if !node {
        Some("node not found".into())
    } else if !chromium.is_file() {
        Some(format!("no Chromium at {}", chromium.display()))
    } else if !web.join("playwright-core").is_dir() || !web.join("hls.js").is_dir() {
        Some("web/node_modules is missing (npm ci --prefix web)".into())
    } else {
        None
    }
}

/// The browser script's own limit: generous, since a loaded 2-core machine (the whole suite
/// beside it) decodes and appends video far slower than real time.
const BROWSER_LIMIT: Duration = Duration::from_secs(240);

/// The next line of the browser script that starts with `what`, within its time limit.
async fn next_line(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    what: &str,
) -> Result<String, tokio::time::error::Elapsed> {
    let wanted = async {
        while let Some(line) = rx.recv().await {
            if line.starts_with(what) {
                return line;
            }
        }
        panic!("the browser script ended before {what}");
    };
    tokio::time::timeout(BROWSER_LIMIT + Duration::from_secs(30), wanted).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_goes_on_from_another_pop_when_its_pop_dies_and_comes_back_to_it() {
    if let Some(why) = browser_missing() {
        assert!(std::env::var_os("CI").is_none(), "{why}: CI must run the browser tests");
        let line = format!("\n*** SKIPPED: network::failover not run: {why} ***\n");
        std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes()).unwrap();
        return;
    }
    let spec = Spec::default()
        .host("origin", "core", "origin")
        .host("r1-pop-a", "r1", "pop")
        .host("r1-pop-b", "r1", "pop")
        .host("r1-viewer", "r1", "viewer")
        .host("r1-creator", "r1", "creator");
    let Some(bed) = NetBed::require("network::failover", &spec) else { return };
    let mut p = Platform::start(bed, Options { pages: true, ..Options::default() }).await;
    let (video, _) = upload_clip(&p, "r1-creator", 40).await;
    // PoP A is the one steering sends this video's viewers to (ties between idle PoPs go by
    // the video), PoP B the other.
    let steering = format!("{}/v1/steering/{video}", p.origin_url());
    let priority = p.get_json(&steering, "r1-viewer").await.unwrap()["PATHWAY-PRIORITY"].clone();
    let (a, b) = match priority[0].as_str() {
        Some("r1-pop-a") => ("r1-pop-a", "r1-pop-b"),
        Some("r1-pop-b") => ("r1-pop-b", "r1-pop-a"),
        _ => panic!("steering names a PoP of r1 first: {priority}"),
    };

    // hls.js: shaka-player does not follow the MPD's content steering yet (its segment requests
    // carry the home location only), so DASH is not asserted here.
    let engine = "hls";
    let r = play_through_a_pop_dying(&mut p, &video, engine, a).await;
    assert!(r["error"].is_null() && r["notice"].is_null(), "{engine}: no fatal error: {r}");
    assert_eq!(r["engine"], "hls.js", "{r}");
    let stalls: Vec<f64> = r["stalls"].as_array().unwrap().iter().filter_map(|s| s.as_f64()).collect();
    assert!(r["open"].is_null(), "{engine}: not stalled at the end: {r}");
    assert!(stalls.len() <= 1, "{engine}: at most one stall: {stalls:?}");
    assert!(stalls.iter().all(|ms| *ms < 5_000.0), "{engine}: a short one: {stalls:?}");
    let pop_b = p.bed.addr(b).to_string();
    let hosts = r["hosts"].as_array().unwrap();
    assert!(hosts.iter().any(|h| h.as_str().is_some_and(|h| h.starts_with(&pop_b))), "{engine}: from PoP B: {r}");
    let (at, end) = (r["currentTime"].as_f64().unwrap(), r["duration"].as_f64().unwrap());
    assert!(at >= end - 2.0, "{engine}: played to the end: {r}");
    p.start_pop(a).await;
    p.wait_steerable().await;

    // PoP A came back: new sessions are steered to it again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let first = p.get_json(&steering, "r1-viewer").await.map(|v| v["PATHWAY-PRIORITY"][0].clone());
        if first.as_ref().and_then(|f| f.as_str()) == Some(a) {
            break;
        }
        assert!(Instant::now() < deadline, "PoP A never came back into steering: {first:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let grant = playback(&p, "r1-viewer", &video).await;
    assert_eq!(authority(grant["master_url"].as_str().unwrap()), authority(&p.public_url(a)));
    p.stop().await;
}

/// Plays `video` with `engine` in Chromium from PoP `a`'s watch page, kills PoP `a` once
/// playback is past a second, and returns what the browser script saw afterwards.
async fn play_through_a_pop_dying(p: &mut Platform, video: &str, engine: &str, a: &str) -> serde_json::Value {
    let watch = format!("{}/watch/{video}", p.public_url(a));
    let mut node = p.bed.command("r1-viewer", "node");
    node.arg(workspace().join("web/tests/failover.mjs"))
        .args(["--watch", &watch, "--engine", engine, "--rate", "2", "--spki", &p.spki_list()])
        .args(["--limit", &BROWSER_LIMIT.as_secs().to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = node.spawn().expect("node starts");
    let mut stdin = child.stdin.take().unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            eprintln!("[failover] {line}");
            let _ = tx.send(line);
        }
    });
    next_line(&mut rx, "PLAYING").await.expect("playback starts at PoP A");
    p.kill_pop(a);
    std::io::Write::write_all(&mut stdin, b"KILLED\n").unwrap();
    let result = next_line(&mut rx, "RESULT").await.expect("a result");
    let _ = child.wait();
    let r: serde_json::Value = serde_json::from_str(result.trim_start_matches("RESULT ")).unwrap();
    eprintln!("{engine} after PoP A died: {r}");
    r
}

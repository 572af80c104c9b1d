//! Content steering end to end on one origin: three PoPs (two in r1, one in r2) heartbeat with
//! their URL, load, errors and upload role; clients placed by `X-Forwarded-For` get their
//! region's PoP first in the HLS and DASH steering manifests, in playback URLs and in upload
//! URLs (with alternates); a PoP failing its viewers is demoted, one that stops beating drops
//! out after two intervals and a second, a revoked one at once; the served multivariant
//! playlists and MPD carry the steering tags; the heartbeat answer carries every enabled PoP's
//! tier verifier and the live PoPs' URLs.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use origin::Config;
use origin::config::{DEV_CREATOR_TOKEN, Region};
use origin::pops::Enrolment;
use serde_json::{Value, json};

const R1_CLIENT: &str = "10.77.1.9";
const R2_CLIENT: &str = "10.77.2.9";
/// The PoPs' heartbeat interval: a PoP is gone 2 * 300 + 1000 ms after its last beat.
const EVERY_MS: u64 = 300;
const GONE_AFTER: Duration = Duration::from_millis(2 * EVERY_MS + 1000);
/// How long a condition may take to show: the origin's one-second snapshot plus slack.
const SETTLE: Duration = Duration::from_secs(5);

/// A PoP heartbeating every `EVERY_MS` with a report the test may change, until stopped.
struct Beating {
    report: Arc<Mutex<Value>>,
    answer: Arc<Mutex<Value>>,
    last_beat: Arc<Mutex<Instant>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Beating {
    async fn start(origin: &TestOrigin, credential: String, report: Value) -> Self {
        let (report, answer) = (Arc::new(Mutex::new(report)), Arc::new(Mutex::new(Value::Null)));
        let stop = Arc::new(AtomicBool::new(false));
        let (client, url) = (origin.client.clone(), origin.url("/v1/pops/heartbeat"));
        let beat = {
            let (report, answer) = (report.clone(), answer.clone());
            move || {
                let body = report.lock().unwrap().clone();
                let sent = client.post(&url).bearer_auth(&credential).json(&body).send();
                let answer = answer.clone();
                async move {
                    // A revoked PoP's beats are refused: it keeps its last answer.
                    let r = sent.await.unwrap();
                    if r.status() == 200 {
                        *answer.lock().unwrap() = r.json().await.unwrap();
                    }
                }
            }
        };
        let last_beat = Arc::new(Mutex::new(Instant::now()));
        beat().await;
        let task = {
            let (stop, last_beat) = (stop.clone(), last_beat.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(EVERY_MS)).await;
                    // Taken before sending: the origin records the beat after this instant.
                    let sending = Instant::now();
                    beat().await;
                    *last_beat.lock().unwrap() = sending;
                }
            })
        };
        Self { report, answer, last_beat, stop, task }
    }

    fn set(&self, field: &str, value: Value) {
        self.report.lock().unwrap()[field] = value;
    }

    /// Stops beating; when the last beat was sent.
    async fn stop(self) -> Instant {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        *self.last_beat.lock().unwrap()
    }
}

fn report(pop: &str, url: &str, load: f64, uploads: bool) -> Value {
    json!({
        "pop": pop, "url": url, "every_ms": EVERY_MS, "load": load,
        "requests": 100, "failed": 0, "uploads": uploads,
    })
}

async fn enrol(origin: &TestOrigin, id: &str, region: &str, partner: bool) -> String {
    let who = Enrolment { id: id.into(), region: region.into(), partner };
    origin::pops::enrol(origin.running.app.pops.as_ref(), &who, origin::meta::now()).await.unwrap()
}

/// `GET` from a client at `from` (none: the test's own loopback address, in no region).
async fn get(origin: &TestOrigin, path: &str, from: Option<&str>) -> reqwest::Response {
    let mut req = origin.client.get(origin.url(path));
    if let Some(addr) = from {
        // What a load balancer passing the request on would make of it.
        req = req.header("x-forwarded-for", format!("192.0.2.50, {addr}"));
    }
    req.send().await.unwrap()
}

async fn steering(origin: &TestOrigin, id: &str, from: Option<&str>) -> Value {
    let r = get(origin, &format!("/v1/steering/{id}?_HLS_pathway=home&_HLS_throughput=5000000"), from).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn priority(origin: &TestOrigin, id: &str, from: Option<&str>) -> Vec<String> {
    let manifest = steering(origin, id, from).await;
    serde_json::from_value(manifest["PATHWAY-PRIORITY"].clone()).unwrap()
}

/// Polls until `check` holds; fails with what it last said after `SETTLE`.
async fn eventually(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + SETTLE;
    loop {
        match check() {
            Ok(()) => return,
            Err(said) => assert!(Instant::now() < deadline, "{what}: {said}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `priority` until it is `expected`; fails after `SETTLE`.
async fn settle(origin: &TestOrigin, id: &str, from: Option<&str>, expected: &[&str]) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let got = priority(origin, id, from).await;
        if got == expected {
            return;
        }
        assert!(Instant::now() < deadline, "from {from:?}: {got:?}, never {expected:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn error_code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or_default();
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_steered_to_the_best_live_pop_of_their_region() {
    let dir = tempfile::tempdir().unwrap();
    let data = std::fs::read(clip(dir.path(), "src.mp4", "320x240", 2)).unwrap();
    let mut config = Config::for_dir(&dir.path().join("data"));
    let region = |name: &str, net: &str| Region { name: name.into(), networks: vec![net.parse().unwrap()] };
    config.steering.regions = vec![region("r1", "10.77.1.0/24"), region("r2", "10.77.2.0/24")];
    // The test stands in for the load balancer that adds `X-Forwarded-For`.
    config.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    let origin = TestOrigin::start_with(config).await;
    let base = origin.base.clone();

    let created = origin.create_video("steered", data.len() as u64).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    origin.tus(&created).upload(&data, 1 << 20).await;
    origin.wait_state(&id, "ready", 120).await;

    // Only a servable video has a steering manifest.
    let pending = origin.create_video("pending", 10).await;
    let pending = pending["video"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        error_code(get(&origin, &format!("/v1/steering/{pending}"), None).await).await,
        (404, "not_ready".into())
    );
    let r = origin.client.delete(origin.url(&format!("/v1/videos/{pending}"))).bearer_auth(DEV_CREATOR_TOKEN);
    assert_eq!(r.send().await.unwrap().status(), 200);
    for path in [format!("/v1/steering/{pending}"), format!("/v1/steering/{pending}/dash")] {
        assert_eq!(error_code(get(&origin, &path, None).await).await, (410, "deleted".into()), "{path}");
    }
    assert_eq!(error_code(get(&origin, "/v1/steering/nosuchvideo", None).await).await, (404, "not_found".into()));

    // No PoP has beaten yet: players stay where they are.
    assert_eq!(priority(&origin, &id, Some(R2_CLIENT)).await, ["home"]);

    let cred_a = enrol(&origin, "pop-a", "r1", false).await;
    let cred_b = enrol(&origin, "pop-b", "r1", false).await;
    let cred_c = enrol(&origin, "pop-c", "r2", true).await;
    let (url_a, url_b, url_c) = ("https://10.77.0.1:8443", "https://10.77.0.2:8443", "https://10.77.0.3:8443");
    let pop_a = Beating::start(&origin, cred_a.clone(), report("pop-a", url_a, 0.5, true)).await;
    let pop_b = Beating::start(&origin, cred_b.clone(), report("pop-b", url_b, 0.1, false)).await;
    let pop_c = Beating::start(&origin, cred_c.clone(), report("pop-c", url_c, 0.3, true)).await;

    // Region first, then load; a client in no region gets every PoP by load.
    settle(&origin, &id, Some(R2_CLIENT), &["pop-c", "pop-b", "pop-a", "home"]).await;
    settle(&origin, &id, Some(R1_CLIENT), &["pop-b", "pop-a", "pop-c", "home"]).await;
    settle(&origin, &id, None, &["pop-b", "pop-c", "pop-a", "home"]).await;

    // The whole HLS manifest, as a player gets it across origins.
    let r = get(&origin, &format!("/v1/steering/{id}?_HLS_pathway=home&_HLS_throughput=1"), Some(R2_CLIENT)).await;
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(r.headers()["content-type"], "application/json");
    let clone = |pop: &str, host: &str| json!({"BASE-ID": "home", "ID": pop, "URI-REPLACEMENT": {"HOST": host}});
    let clones = json!([clone("pop-c", "10.77.0.3"), clone("pop-b", "10.77.0.2"), clone("pop-a", "10.77.0.1")]);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({
            "VERSION": 1, "TTL": 10, "RELOAD-URI": format!("{base}/v1/steering/{id}"),
            "PATHWAY-PRIORITY": ["pop-c", "pop-b", "pop-a", "home"], "PATHWAY-CLONES": clones,
        })
    );
    let r = get(&origin, &format!("/v1/steering/{id}/dash"), Some(R2_CLIENT)).await;
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({
            "VERSION": 1, "TTL": 10, "RELOAD-URI": format!("{base}/v1/steering/{id}/dash"),
            "SERVICE-LOCATION-PRIORITY": ["pop-c", "pop-b", "pop-a", "home"],
            "PATHWAY-PRIORITY": ["pop-c", "pop-b", "pop-a", "home"], "PATHWAY-CLONES": clones,
        })
    );

    // The heartbeat answer: every enabled PoP's tier verifier (what a parent checks the
    // PoP's own derivation from its credential against) and whether it is a partner's, and our
    // own PoPs' URLs (not the partner's: its pages are not ours).
    let verifier = |cred: &str| pop_config::tier::verifier(&pop_config::tier::credential(cred));
    let tiers = json!([
        {"pop": "pop-a", "verifier": verifier(&cred_a), "partner": false},
        {"pop": "pop-b", "verifier": verifier(&cred_b), "partner": false},
        {"pop": "pop-c", "verifier": verifier(&cred_c), "partner": true},
    ]);
    eventually("the heartbeat answer", || {
        let answer = pop_a.answer.lock().unwrap().clone();
        let complete = answer["tiers"] == tiers && answer["pops"] == json!([url_a, url_b]);
        let kept = answer["purges"].is_array() && answer["region"] == "r1" && answer["partner"] == false;
        if complete && kept && answer["tiers_version"].is_string() { Ok(()) } else { Err(answer.to_string()) }
    })
    .await;
    // A PoP holding the current list is not sent it again.
    let version = pop_a.answer.lock().unwrap()["tiers_version"].clone();
    pop_a.set("tiers_version", version.clone());
    eventually("no tier list for a PoP that holds it", || {
        let answer = pop_a.answer.lock().unwrap().clone();
        let spared = answer.get("tiers").is_none() && answer["tiers_version"] == version;
        if spared { Ok(()) } else { Err(answer.to_string()) }
    })
    .await;

    // Both PoPs of r1 report the same title; only the one that prefetches is sent what to fetch.
    for pop in [&pop_a, &pop_b] {
        pop.set("top", json!([{"video": id, "requests": 50}]));
    }
    pop_b.set("prefetch", json!(false));
    eventually("prefetch lists only to PoPs that prefetch", || {
        let (a, b) = (pop_a.answer.lock().unwrap().clone(), pop_b.answer.lock().unwrap().clone());
        let listed =
            a["prefetch"].as_array().is_some_and(|l| l.iter().any(|k| k.as_str().is_some_and(|k| k.starts_with(&id))));
        let spared = b["prefetch"].as_array().is_some_and(Vec::is_empty);
        if listed && spared { Ok(()) } else { Err(format!("{a} / {b}")) }
    })
    .await;

    // Playback for an r2 viewer: media at pop-c; pictures (clear) not at pop-c, a partner's.
    let playback: Value = origin
        .client
        .post(origin.url(&format!("/v1/videos/{id}/playback")))
        .header("x-forwarded-for", R2_CLIENT)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for field in ["master_url", "dash_url"] {
        assert!(playback[field].as_str().unwrap().starts_with(&format!("{url_c}/p/")), "{field}: {playback}");
    }
    for field in ["poster_url", "storyboard_url"] {
        assert!(playback[field].as_str().unwrap().starts_with(&format!("{url_b}/p/")), "{field}: {playback}");
    }
    let pathway = |pop: &str, url: &str| json!({"pop": pop, "url": url});
    assert_eq!(
        playback["pathways"],
        json!([pathway("pop-c", url_c), pathway("pop-b", url_b), pathway("pop-a", url_a)])
    );
    assert!(playback["key_url"].as_str().unwrap().starts_with(&base), "keys never through a PoP: {playback}");

    // Pages our own PoPs serve may read key responses (a viewer steered there plays from that
    // PoP's page); a partner's and anyone else's may not.
    let key_path = format!("/v1/keys/{id}");
    for (page, allowed) in [(url_a, true), (url_b, true), (url_c, false), ("https://elsewhere.example", false)] {
        let r = origin
            .client
            .request(reqwest::Method::OPTIONS, origin.url(&key_path))
            .header("origin", page)
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        let allowed_origin = r.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(allowed_origin.as_deref() == Some(page), allowed, "{page}: {allowed_origin:?}");
    }

    // Uploads for an r1 creator: its region's PoP that takes uploads, then the others of ours
    // (not pop-c, a partner's: an original is clear content), then the configured upload URL;
    // the same signed query at each.
    let created: Value = origin
        .client
        .post(origin.url("/v1/videos"))
        .bearer_auth(DEV_CREATOR_TOKEN)
        .header("x-forwarded-for", R1_CLIENT)
        .json(&json!({"title": "up", "filename": "a.mp4", "size": 10, "content_type": "video/mp4"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = created["upload"]["url"].as_str().unwrap();
    let query = url.split_once('?').unwrap().1;
    assert!(url.starts_with(&format!("{url_a}/v1/uploads?")), "{created}");
    assert_eq!(created["upload"]["alternates"], json!([format!("{base}/v1/uploads?{query}")]), "{created}");

    // The served multivariant playlists and MPD carry steering, through the viewer and the
    // PoP routes alike; media playlists are untouched.
    let token = playback["token"].as_str().unwrap();
    let viewer = |path: &str| origin.client.get(origin.url(&format!("/p/{token}/{id}/{path}")));
    let as_pop = |path: &str| origin.client.get(origin.url(&format!("/v1/objects/{id}/{path}"))).bearer_auth(&cred_a);
    let tag = format!("#EXT-X-CONTENT-STEERING:SERVER-URI=\"{base}/v1/steering/{id}\",PATHWAY-ID=\"home\"");
    for path in ["master.m3u8", "cbcs/master.m3u8"] {
        let r = viewer(path).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        let length: usize = r.headers()["content-length"].to_str().unwrap().parse().unwrap();
        let text = r.text().await.unwrap();
        assert_eq!(length, text.len(), "{path}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..3], ["#EXTM3U", "#EXT-X-VERSION:7", tag.as_str()], "{path}: {text}");
        let variants: Vec<&&str> = lines.iter().filter(|l| l.starts_with("#EXT-X-STREAM-INF:")).collect();
        assert!(!variants.is_empty(), "{text}");
        assert!(variants.iter().all(|l| l.ends_with(",PATHWAY-ID=\"home\"")), "{text}");
        assert!(lines.iter().filter(|l| l.starts_with("#EXT-X-MEDIA:")).all(|l| !l.contains("PATHWAY-ID")), "{text}");
        // The stored object is what the encoder wrote; the served one is it, tagged.
        let stored = origin.running.app.blobs.read(&format!("videos/{id}/{path}")).await.unwrap().to_vec();
        let stored = String::from_utf8(stored).unwrap();
        assert!(!stored.contains("STEERING"));
        let server = format!("{base}/v1/steering/{id}");
        assert_eq!(text, origin::steering::tag::hls(&stored, &server));
        // Its own ETag (from the tagged bytes), the same on every route and request.
        assert!(etag.starts_with("\"st-"), "{etag}");
        let from_pop = as_pop(path).send().await.unwrap();
        assert_eq!(from_pop.headers()["etag"].to_str().unwrap(), etag);
        assert_eq!(from_pop.text().await.unwrap(), text);
        let again = viewer(path).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(again.status(), 304);
        let head = viewer(path).header("range", "bytes=0-6").send().await.unwrap();
        assert_eq!(head.status(), 206);
        assert_eq!(head.headers()["content-range"].to_str().unwrap(), format!("bytes 0-6/{}", text.len()));
        assert_eq!(head.text().await.unwrap(), "#EXTM3U");
    }
    let mpd = as_pop("manifest.mpd").send().await.unwrap();
    assert_eq!(mpd.headers()["content-type"], "application/dash+xml");
    let mpd = mpd.text().await.unwrap();
    let steering_element = format!(
        "<ContentSteering defaultServiceLocation=\"home\" queryBeforeStart=\"false\">{base}/v1/steering/{id}/dash</ContentSteering>"
    );
    let (base_at, steering_at) =
        (mpd.find("<BaseURL serviceLocation=\"home\">./</BaseURL>"), mpd.find(&steering_element));
    assert!(base_at.is_some() && steering_at.is_some(), "{mpd}");
    assert!(base_at < steering_at && steering_at < mpd.find("<Period"), "{mpd}");
    let master = viewer("master.m3u8").send().await.unwrap().text().await.unwrap();
    let media_playlist = master.lines().find(|l| l.ends_with(".m3u8")).unwrap().to_owned();
    let media = viewer(&media_playlist).send().await.unwrap().text().await.unwrap();
    assert!(media.contains("#EXTINF") && !media.contains("STEERING") && !media.contains("PATHWAY"), "{media}");

    // A PoP failing its viewers goes last in its region, and comes back as its errors decay.
    pop_b.set("failed", json!(50));
    settle(&origin, &id, Some(R1_CLIENT), &["pop-a", "pop-b", "pop-c", "home"]).await;
    pop_b.set("failed", json!(0));
    settle(&origin, &id, Some(R1_CLIENT), &["pop-b", "pop-a", "pop-c", "home"]).await;

    // A PoP that stops beating is steered to for two intervals and a second, then no more.
    let last = pop_a.stop().await;
    assert!(priority(&origin, &id, Some(R1_CLIENT)).await.contains(&"pop-a".to_owned()), "gone too soon");
    settle(&origin, &id, Some(R1_CLIENT), &["pop-b", "pop-c", "home"]).await;
    let gone = last.elapsed();
    assert!(gone >= GONE_AFTER, "dropped after {gone:?}, before {GONE_AFTER:?}");
    assert!(gone < GONE_AFTER + Duration::from_millis(2500), "dropped only after {gone:?}");
    // Pages keep allowing it: a page outlives a beat, and a player must not be refused a PoP
    // that steering brings back.
    let pops = pop_c.answer.lock().unwrap()["pops"].clone();
    assert_eq!(pops, json!([url_a, url_b]), "our own PoPs' pages, silent or not");

    // A revoked PoP is out of steering and of every parent's verifiers.
    let app = &origin.running.app;
    assert!(app.pops.set_pop_enabled("pop-c", false, origin::meta::now()).await.unwrap());
    settle(&origin, &id, Some(R2_CLIENT), &["pop-b", "home"]).await;
    eventually("pop-c out of the tier verifiers", || {
        let tiers = pop_b.answer.lock().unwrap()["tiers"].clone();
        let pops: Vec<&str> = tiers.as_array().unwrap().iter().map(|t| t["pop"].as_str().unwrap()).collect();
        if pops == ["pop-a", "pop-b"] { Ok(()) } else { Err(tiers.to_string()) }
    })
    .await;

    // Manifests served are counted by kind.
    let metrics = origin.running.metrics_addr.unwrap();
    let page = reqwest::get(format!("http://{metrics}/metrics")).await.unwrap().text().await.unwrap();
    let count = |kind: &str| -> f64 {
        let prefix = format!("origin_steering_manifests_total{{kind=\"{kind}\"}} ");
        page.lines().find_map(|l| l.strip_prefix(prefix.as_str())).map_or(0.0, |v| v.parse().unwrap())
    };
    assert!(count("hls") >= 10.0 && count("dash") == 1.0, "{page}");

    pop_b.stop().await;
    pop_c.stop().await;
    origin.running.stop().await;
}

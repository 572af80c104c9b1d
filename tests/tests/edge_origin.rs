//! The origin and two PoPs of one region, all real and in-process: a creator uploads through
//! the nearest PoP (tus, pre-signed URL checked there), the origin transcodes and encrypts,
//! viewers play the ladder through a PoP with ffprobe (keys from the key service, never through
//! the PoP), two
//! hundred viewers of a cold segment cost the origin one request, the other PoP has the
//! first segments before anyone asks there, and a takedown sent through a PoP empties both
//! PoPs within a heartbeat.

mod common;

use std::time::Duration;

use common::{Secrets, counter};

use origin::client::{Client, UploadPlan};
use origin::config::DEV_CREATOR_TOKEN;
use tests::media::{clip, probe_frames};

const SECRETS: Secrets = Secrets { signing_key: "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed" };
const HEARTBEAT: Duration = Duration::from_millis(400);

async fn start_pop(dir: &std::path::Path, origin: &str, id: &str, prefetch: bool) -> edge::Running {
    let origin_dir = dir.parent().unwrap().join("origin");
    let mut cfg = SECRETS.pop(dir, &origin_dir, origin, id).await;
    cfg.pop.region = "kr-seoul".into();
    cfg.listen.http = Some("127.0.0.1:0".parse().unwrap());
    cfg.prefetch.heartbeat = HEARTBEAT;
    cfg.prefetch.enabled = prefetch;
    edge::start(cfg).await.expect("PoP starts")
}

async fn origin_object_requests(http: &reqwest::Client, origin: &origin::Running) -> f64 {
    let metrics = origin.metrics_addr.expect("the origin serves metrics");
    let page = http.get(format!("http://{metrics}/metrics")).send().await.unwrap().text().await.unwrap();
    counter(&page, &["origin_http_requests_total", "route=\"/v1/objects/{id}/{path}\""])
}

async fn wait_until(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_play_coalesce_prefetch_and_take_down_through_pops() {
    edge::init_tls();
    let dir = tempfile::tempdir().unwrap();
    let origin_url = common::origin_url();
    let seoul_a = start_pop(&dir.path().join("pop-a"), &origin_url, "seoul-a", false).await;
    let seoul_b = start_pop(&dir.path().join("pop-b"), &origin_url, "seoul-b", true).await;
    let pop_a = format!("http://{}", seoul_a.http.unwrap());
    let pop_b = format!("http://{}", seoul_b.http.unwrap());

    let config = SECRETS.origin(&dir.path().join("origin"), &origin_url, &pop_a, &pop_a);
    let origin = origin::start(config).await.expect("origin starts");
    let http = reqwest::Client::new();

    // The creator talks to the origin's API, the bytes go to the PoP.
    let src = clip(dir.path(), "src.mp4", "640x360", 8);
    let creator = Client::new(&origin_url, DEV_CREATOR_TOKEN);
    let (id, upload_url) = creator.create_video("서울 PoP", &src).await.unwrap();
    assert!(upload_url.starts_with(&pop_a), "creators upload to their PoP: {upload_url}");
    let forged = upload_url.replace("sig=", "sig=ff");
    let refused = http.post(&forged).header("tus-resumable", "1.0.0").header("upload-length", "10").send().await;
    assert_eq!(refused.unwrap().status(), 403, "the PoP checks the signature");
    creator.upload(&upload_url, &src, UploadPlan { chunk: 256 << 10, parallel: 2 }).await.unwrap();
    creator.wait_ready(&id, Duration::from_secs(180)).await.unwrap();

    // Viewers play through the PoP: encrypted segments from its cache, keys from the origin.
    let playback = creator.playback(&id).await.unwrap();
    let master = playback["master_url"].as_str().unwrap().to_owned();
    assert!(master.starts_with(&pop_a), "{master}");
    let before = origin_object_requests(&http, &origin).await;
    let url = master.clone();
    let key_token = playback["key_token"].as_str().unwrap().to_owned();
    let token = key_token.clone();
    let (codec, frames) = tokio::task::spawn_blocking(move || probe_frames(&url, &token)).await.unwrap();
    assert_eq!((codec.as_str(), frames), ("h264", 240), "played through the PoP");
    let first_play = origin_object_requests(&http, &origin).await - before;
    assert!(first_play > 0.0);
    // Seoul A has no prefetch, so its own count of origin fetches is what its viewers cost.
    let a_fetches = || counter(&seoul_a.edge.metrics.render(), &["edge_origin_fetches_total"]);
    let fetched = a_fetches();
    let url = master.clone();
    let token = key_token.clone();
    let (_, frames) = tokio::task::spawn_blocking(move || probe_frames(&url, &token)).await.unwrap();
    assert_eq!(frames, 240);
    assert_eq!(a_fetches() - fetched, 0.0, "the second play came from the PoP's cache");
    let base = master.trim_end_matches("master.m3u8");
    let key = reqwest::get(format!("{base}key")).await.unwrap();
    assert_eq!(key.status(), 404, "a PoP has no key route");
    let key_url = playback["key_url"].as_str().unwrap();
    assert!(key_url.starts_with(&origin_url), "keys come from the key service: {key_url}");
    let key = http.get(key_url).bearer_auth(&key_token).send().await.unwrap();
    assert_eq!((key.status().as_u16(), key.headers()["cache-control"].to_str().unwrap()), (200, "no-store, private"));
    let delivery_token = playback["token"].as_str().unwrap();
    let refused = http.get(key_url).bearer_auth(delivery_token).send().await.unwrap();
    assert_eq!(refused.status(), 403, "the token a PoP sees fetches no key");

    // Seoul B has had no viewers; the region's popularity warmed it.
    let pop_b_master = master.replace(&pop_a, &pop_b);
    let edge_b = seoul_b.edge.clone();
    // What the origin names for prefetch: the playlists, init segments and first two segments
    // of each rendition, in both protections' trees (AES-128 for HLS, cbcs for DASH); of a
    // rung encoded on demand only its stored opening, so a prefetch never costs an encode.
    let video = creator.video(&id).await.unwrap();
    let on_demand: Vec<String> = video["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["on_demand"] == true)
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(!on_demand.is_empty(), "the source has a rung below the floor: {video}");
    let mut warm = vec![format!("{id}/master.m3u8"), format!("{id}/manifest.mpd"), format!("{id}/cbcs/master.m3u8")];
    let mut cold = Vec::new();
    for tree in ["", "cbcs/"] {
        for rendition in ["240p", "360p", "audio"] {
            for object in ["index.m3u8", "init.mp4", "seg_00000.m4s", "seg_00001.m4s"] {
                let key = format!("{id}/{tree}{rendition}/{object}");
                let encoded_later = on_demand.iter().any(|r| r == rendition) && object == "seg_00001.m4s";
                if encoded_later { cold.push(key) } else { warm.push(key) }
            }
        }
    }
    wait_until("prefetch at the other PoP", HEARTBEAT * 10, async || warm.iter().all(|k| edge_b.cache.contains(k)))
        .await;
    assert!(cold.iter().all(|k| !edge_b.cache.contains(k)), "nothing encoded for a prefetch: {cold:?}");
    let r = http.get(pop_b_master.replace("master.m3u8", "240p/seg_00000.m4s")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["x-cache"].to_str().unwrap().starts_with("hit"), "prefetched: {:?}", r.headers());

    // Two hundred viewers at Seoul B of a segment nobody has asked for there: one origin request.
    let segment = format!("{base}240p/seg_00003.m4s").replace(&pop_a, &pop_b);
    assert!(!edge_b.cache.contains(&format!("{id}/240p/seg_00003.m4s")));
    let direct = http
        .get(format!("{origin_url}/v1/objects/{id}/240p/seg_00003.m4s"))
        .bearer_auth(seoul_b.edge.upstream.credential())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let before = origin_object_requests(&http, &origin).await;
    let viewers: Vec<_> = (0..200)
        .map(|_| {
            let (http, segment) = (http.clone(), segment.clone());
            tokio::spawn(async move { http.get(segment).send().await.unwrap().bytes().await.unwrap() })
        })
        .collect();
    for v in viewers {
        assert!(v.await.unwrap() == direct, "every viewer got the origin's bytes");
    }
    let b_page = seoul_b.edge.metrics.render();
    assert_eq!(
        origin_object_requests(&http, &origin).await - before,
        1.0,
        "one origin fetch for 200 viewers; Seoul B: {b_page}"
    );

    // Take it down through the PoP, as the upload page does (a DELETE with a JSON body): both
    // PoPs stop serving it within a heartbeat (plus the request's time).
    let started = std::time::Instant::now();
    let r = http
        .delete(format!("{pop_a}/v1/videos/{id}"))
        .bearer_auth(DEV_CREATOR_TOKEN)
        .header("content-type", "application/json")
        .body(serde_json::json!({"reason": "upload cancelled by its creator"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert!(started.elapsed() < Duration::from_secs(5), "the takedown took {:?}", started.elapsed());
    let purged = async |pop: String| {
        let url = segment.replace(&pop_b, &pop);
        wait_until("the takedown at a PoP", HEARTBEAT * 3, async || {
            http.get(&url).send().await.unwrap().status() != 200
        })
        .await;
    };
    tokio::join!(purged(pop_a.clone()), purged(pop_b.clone()));
    let gone = http.get(&segment).send().await.unwrap();
    assert!([404, 410].contains(&gone.status().as_u16()), "{}", gone.status());

    seoul_a.stop().await;
    seoul_b.stop().await;
    origin.stop().await;
}

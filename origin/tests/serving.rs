//! What leaves the origin: objects and keys only of a ready video (through the viewer, key
//! and PoP routes alike), key responses readable only by the configured page origins,
//! `If-None-Match` by weak comparison over lists and `*`, and `/metrics` only on its own
//! listener.

mod common;

use common::*;
use origin::Config;
use origin::meta::{StateChange, VideoState};
use origin::sign::PlaybackGrant;

const POP_TOKEN: &str = "pop-token-for-serving-tests";

async fn code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

async fn set_state(origin: &TestOrigin, id: &str, state: VideoState) {
    let app = &origin.running.app;
    let change = StateChange { state, progress: 0.5, error: None, result: None, now: origin::meta::now() };
    app.meta.change_state(id, &change).await.unwrap().unwrap();
    origin::cache::forget_video(app.cache.as_ref(), id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_ready_video_leaves_the_origin_and_keys_only_to_page_origins() {
    let dir = tempfile::tempdir().unwrap();
    let data = std::fs::read(clip(dir.path(), "src.mp4", "320x240", 2)).unwrap();
    let mut config = Config::for_dir(&dir.path().join("data"));
    config.pop_token = Some(POP_TOKEN.into());
    config.playback_url = "https://cdn.example".into();
    let origin = TestOrigin::start_with(config).await;
    let created = origin.create_video("served", data.len() as u64).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    origin.tus(&created).upload(&data, 1 << 20).await;
    origin.wait_state(&id, "ready", 120).await;
    let app = &origin.running.app;
    let token = app.signer.playback_token(&PlaybackGrant {
        video: id.clone(),
        expires: origin::api::now_secs() + 600,
        viewer: None,
    });
    let viewer = |path: &str| origin.client.get(origin.url(&format!("/p/{token}/{id}/{path}")));
    let pop = |path: &str| origin.client.get(origin.url(&format!("/v1/objects/{id}/{path}"))).bearer_auth(POP_TOKEN);
    for r in [viewer("master.m3u8"), viewer("key"), pop("master.m3u8"), pop("240p/seg_00000.m4s")] {
        assert_eq!(r.send().await.unwrap().status(), 200);
    }

    // Published objects and the key exist, but a video that is not ready is not served.
    for state in [VideoState::Processing, VideoState::Queued, VideoState::Failed] {
        set_state(&origin, &id, state).await;
        for r in [viewer("master.m3u8"), viewer("key"), pop("master.m3u8"), pop("240p/seg_00000.m4s")] {
            assert_eq!(code(r.send().await.unwrap()).await, (404, "not_ready".into()), "{state:?}");
        }
    }
    set_state(&origin, &id, VideoState::Ready).await;

    // Keys: readable by the playback page's origin only.
    let from = |page: &str| viewer("key").header("origin", page).send();
    let allowed = from("https://cdn.example").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://cdn.example");
    assert_eq!(allowed.headers()["vary"], "origin");
    let foreign = from("https://evil.example").await.unwrap();
    assert_eq!(foreign.status(), 200);
    assert!(foreign.headers().get("access-control-allow-origin").is_none(), "{:?}", foreign.headers());
    let preflight = origin
        .client
        .request(reqwest::Method::OPTIONS, origin.url(&format!("/p/{token}/{id}/key")))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(preflight.headers().get("access-control-allow-origin").is_none());
    // Everything else stays open to any page (bearer tokens and signed URLs, no cookies).
    let segment = viewer("master.m3u8").header("origin", "https://evil.example").send().await.unwrap();
    assert_eq!(segment.headers()["access-control-allow-origin"], "*");

    // If-None-Match: weak comparison, lists, `*`.
    let etag = viewer("master.m3u8").send().await.unwrap().headers()["etag"].to_str().unwrap().to_owned();
    for matching in [etag.clone(), format!("W/{etag}"), format!("\"other\", {etag}"), "*".into()] {
        let r = viewer("master.m3u8").header("if-none-match", &matching).send().await.unwrap();
        assert_eq!(r.status(), 304, "{matching}");
        let r = pop("master.m3u8").header("if-none-match", &matching).send().await.unwrap();
        assert_eq!(r.status(), 304, "{matching}");
    }
    let r = viewer("master.m3u8").header("if-none-match", "\"other\", W/\"else\"").send().await.unwrap();
    assert_eq!(r.status(), 200);
    origin.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_only_on_their_own_listener() {
    let dir = tempfile::tempdir().unwrap();
    let origin = TestOrigin::start(&dir.path().join("data")).await;
    assert_eq!(origin.client.get(origin.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(code(origin.client.get(origin.url("/metrics")).send().await.unwrap()).await, (404, "no_route".into()));
    let at = origin.running.metrics_addr.expect("a metrics listener");
    assert_ne!(at, origin.running.addr);
    let page = reqwest::get(format!("http://{at}/metrics")).await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("origin_http_requests_total{route=\"/healthz\",status=\"200\"} 1"), "{page}");
    assert!(page.contains("origin_connections_open"), "{page}");
    // It serves nothing else.
    assert_eq!(reqwest::get(format!("http://{at}/v1/videos")).await.unwrap().status(), 404);
    origin.running.stop().await;

    // And not at all when switched off.
    let mut config = Config::for_dir(&dir.path().join("data"));
    config.metrics_listen = None;
    let origin = TestOrigin::start_with(config).await;
    assert_eq!(origin.running.metrics_addr, None);
    origin.running.stop().await;
}

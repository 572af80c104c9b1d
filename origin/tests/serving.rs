//! What leaves the origin: objects and keys only of a ready video (through the viewer, key
//! service and PoP routes alike), key responses readable only by the configured page
//! origins and only with a key token, PoPs each with their own credential (revoked at once,
//! partners sent nothing clear), `If-None-Match` by weak comparison over lists and `*`, and
//! `/metrics` only on its own listener.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use origin::Config;
use origin::meta::{StateChange, VideoState};
use origin::pops::Enrolment;
use origin::sign::{PlaybackGrant, Scope};

async fn code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

async fn set_state(origin: &TestOrigin, id: &str, state: VideoState) {
    let app = &origin.running.app;
    // Straight to the store, from any state: a fixture, not a lifecycle the origin would follow.
    let change = StateChange { state, progress: Some(0.5), error: None, result: None, now: origin::meta::now() };
    app.meta.change_state(id, &VideoState::ALL, &change).await.unwrap().unwrap();
    origin::cache::forget_video(app.cache.as_ref(), id).await;
}

async fn enrol(origin: &TestOrigin, id: &str, partner: bool) -> String {
    let who = Enrolment { id: id.into(), region: "eu".into(), partner };
    origin::pops::enrol(origin.running.app.pops.as_ref(), &who, origin::meta::now()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_ready_video_leaves_the_origin_and_keys_only_to_page_origins() {
    let dir = tempfile::tempdir().unwrap();
    let data = std::fs::read(clip(dir.path(), "src.mp4", "320x240", 2)).unwrap();
    let mut config = Config::for_dir(&dir.path().join("data"));
    config.playback_url = "https://cdn.example".into();
    let origin = TestOrigin::start_with(config).await;
    let own = enrol(&origin, "own-1", false).await;
    let created = origin.create_video("served", data.len() as u64).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    origin.tus(&created).upload(&data, 1 << 20).await;
    origin.wait_state(&id, "ready", 120).await;
    let app = &origin.running.app;
    let grant = PlaybackGrant {
        video: id.clone(),
        expires: origin::api::now_secs() + 600,
        viewer: None,
        scope: Scope::Delivery,
    };
    let token = app.signer.playback_token(&grant);
    let key_token = app.signer.playback_token(&PlaybackGrant { scope: Scope::Keys, ..grant.clone() });
    let viewer = |path: &str| origin.client.get(origin.url(&format!("/p/{token}/{id}/{path}")));
    let key = || origin.client.get(origin.url(&format!("/v1/keys/{id}"))).bearer_auth(&key_token);
    let pop = |path: &str| origin.client.get(origin.url(&format!("/v1/objects/{id}/{path}"))).bearer_auth(&own);
    for r in [viewer("master.m3u8"), key(), pop("master.m3u8"), pop("240p/seg_00000.m4s")] {
        assert_eq!(r.send().await.unwrap().status(), 200);
    }

    // Published objects and the key exist, but a video that is not ready is not served.
    for state in [VideoState::Processing, VideoState::Queued, VideoState::Failed] {
        set_state(&origin, &id, state).await;
        for r in [viewer("master.m3u8"), key(), pop("master.m3u8"), pop("240p/seg_00000.m4s")] {
            assert_eq!(code(r.send().await.unwrap()).await, (404, "not_ready".into()), "{state:?}");
        }
    }
    set_state(&origin, &id, VideoState::Ready).await;

    // Keys: only with the key token, never the delivery token a PoP sees; never stored.
    let r = key().send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store, private");
    let content_key = r.bytes().await.unwrap();
    assert_eq!(content_key.len(), 16);
    let with_delivery = origin.client.get(origin.url(&format!("/v1/keys/{id}"))).bearer_auth(&token);
    assert_eq!(code(with_delivery.send().await.unwrap()).await, (403, "token_wrong_scope".into()));
    let in_query = origin.client.get(origin.url(&format!("/v1/keys/{id}?token={key_token}")));
    assert_eq!(in_query.send().await.unwrap().bytes().await.unwrap(), content_key, "the query form for native players");
    let anonymous = origin.client.get(origin.url(&format!("/v1/keys/{id}")));
    assert_eq!(code(anonymous.send().await.unwrap()).await, (401, "unauthenticated".into()));
    assert_eq!(code(viewer("key").send().await.unwrap()).await, (404, "not_found".into()), "no key among objects");
    let as_object = origin.client.get(origin.url(&format!("/p/{key_token}/{id}/master.m3u8")));
    assert_eq!(code(as_object.send().await.unwrap()).await, (403, "token_wrong_scope".into()));

    // The ClearKey licence: this video's key under its key id, nothing else.
    let kid = encoder::package::cenc::CencKey::from_content_key(&content_key[..].try_into().unwrap()).kid;
    let licence = |kids: Vec<String>| {
        origin
            .client
            .post(origin.url(&format!("/v1/keys/{id}/licence")))
            .bearer_auth(&key_token)
            .json(&serde_json::json!({ "kids": kids, "type": "temporary" }))
            .send()
    };
    let answer: serde_json::Value = licence(vec![URL_SAFE_NO_PAD.encode(kid)]).await.unwrap().json().await.unwrap();
    assert_eq!(answer["keys"][0]["kty"], "oct");
    assert_eq!(answer["keys"][0]["kid"], URL_SAFE_NO_PAD.encode(kid));
    assert_eq!(URL_SAFE_NO_PAD.decode(answer["keys"][0]["k"].as_str().unwrap()).unwrap(), content_key);
    let other = licence(vec![URL_SAFE_NO_PAD.encode([0u8; 16])]).await.unwrap();
    assert_eq!(code(other).await, (404, "unknown_kid".into()));
    let garbage = origin.client.post(origin.url(&format!("/v1/keys/{id}/licence"))).bearer_auth(&key_token).body("{");
    assert_eq!(code(garbage.send().await.unwrap()).await, (400, "bad_licence_request".into()));

    // Key responses are readable by the playback page's origin only.
    let from = |page: &str| key().header("origin", page).send();
    let allowed = from("https://cdn.example").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://cdn.example");
    assert_eq!(allowed.headers()["vary"], "origin");
    let foreign = from("https://evil.example").await.unwrap();
    assert_eq!(foreign.status(), 200);
    assert!(foreign.headers().get("access-control-allow-origin").is_none(), "{:?}", foreign.headers());
    let preflight = origin
        .client
        .request(reqwest::Method::OPTIONS, origin.url(&format!("/v1/keys/{id}/licence")))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(preflight.headers().get("access-control-allow-origin").is_none());

    // PoPs: each its own credential. A partner's PoP gets media, never a clear picture; a
    // revoked PoP is refused at once while the others go on; re-enrolment replaces the secret.
    let partner = enrol(&origin, "partner-1", true).await;
    let as_pop = |credential: &str, path: &str| {
        origin.client.get(origin.url(&format!("/v1/objects/{id}/{path}"))).bearer_auth(credential.to_owned()).send()
    };
    assert_eq!(as_pop(&partner, "240p/seg_00000.m4s").await.unwrap().status(), 200);
    assert_eq!(code(as_pop(&partner, "poster.jpg").await.unwrap()).await, (403, "clear_to_partner".into()));
    assert_eq!(as_pop(&own, "poster.jpg").await.unwrap().status(), 200);
    let forged = format!("own-1.{}", "0".repeat(64));
    assert_eq!(code(as_pop(&forged, "master.m3u8").await.unwrap()).await, (401, "unauthenticated".into()));
    assert!(app.pops.set_pop_enabled("partner-1", false, origin::meta::now()).await.unwrap());
    assert_eq!(code(as_pop(&partner, "master.m3u8").await.unwrap()).await, (403, "pop_revoked".into()));
    assert_eq!(as_pop(&own, "master.m3u8").await.unwrap().status(), 200, "the other PoPs go on");
    let renewed = enrol(&origin, "partner-1", true).await;
    assert_eq!(code(as_pop(&partner, "master.m3u8").await.unwrap()).await, (401, "unauthenticated".into()));
    assert_eq!(as_pop(&renewed, "master.m3u8").await.unwrap().status(), 200);
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

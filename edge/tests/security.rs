//! What a PoP refuses, and what it never keeps: playback tokens that are tampered with,
//! expired or for another video; paths that try to step outside a video; forged or expired
//! upload URLs (refused before the origin sees a byte). Keys pass through and are never cached.

mod common;

use common::*;
use pop_config::token::{PlaybackGrant, Scope, UploadGrant};

async fn refusal(pop: &Pop, path: &str) -> (u16, String) {
    let r = pop.h1.get(pop.https(path)).send().await.unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_403_with_a_code() {
    init();
    let origin = TestOrigin::start().await;
    origin.segment("v6/360p/seg_00000.m4s", 1_000);
    let dir = tempfile::tempdir().unwrap();
    let pop = Pop::start(config(dir.path(), &origin.url())).await;

    let good = token("v6");
    assert_eq!(pop.get(&format!("/p/{good}/v6/360p/seg_00000.m4s")).await.0, 200);

    // One character of the signature changed.
    let mut tampered = good.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(refusal(&pop, &format!("/p/{tampered}/v6/360p/seg_00000.m4s")).await, (403, "bad_token".into()));

    // A longer expiry with the old signature.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[4] = 9_999_999_999i64.to_string();
    let stretched = parts.join(".");
    assert_eq!(refusal(&pop, &format!("/p/{stretched}/v6/360p/seg_00000.m4s")).await, (403, "bad_token".into()));

    let expired = pop_config::token::sign_playback(
        &key(),
        &PlaybackGrant { video: "v6".into(), expires: edge::now_secs() - 1, viewer: None, scope: Scope::Delivery },
    );
    assert_eq!(refusal(&pop, &format!("/p/{expired}/v6/360p/seg_00000.m4s")).await, (403, "token_expired".into()));

    let other = token("v7");
    assert_eq!(refusal(&pop, &format!("/p/{other}/v6/360p/seg_00000.m4s")).await, (403, "token_wrong_video".into()));

    let unknown_key = pop_config::token::sign_playback(
        &pop_config::token::SigningKey::from_seed("t2", &[9; 32]).unwrap(),
        &PlaybackGrant { video: "v6".into(), expires: edge::now_secs() + 60, viewer: None, scope: Scope::Delivery },
    );
    assert_eq!(refusal(&pop, &format!("/p/{unknown_key}/v6/360p/seg_00000.m4s")).await.0, 403);
    assert_eq!(refusal(&pop, "/p/garbage/v6/360p/seg_00000.m4s").await, (403, "bad_token".into()));
    assert_eq!(origin.fetches("v6/360p/seg_00000.m4s"), 1, "refused requests never reach the origin");
    pop.stop().await;
}

/// A GET sent as raw bytes over plain HTTP/1.1; the whole answer as text.
async fn raw_get(pop: &Pop, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(pop.running.http.unwrap()).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_cannot_leave_their_video() {
    init();
    let origin = TestOrigin::start().await;
    origin.segment("v6/360p/seg_00000.m4s", 1_000);
    let dir = tempfile::tempdir().unwrap();
    let pop = Pop::start(config(dir.path(), &origin.url())).await;
    let t = token("v6");
    // Sent byte for byte: clients would resolve dot segments before sending.
    for path in [
        format!("/p/{t}/v6/../v7/360p/seg_00000.m4s"),
        format!("/p/{t}/v6/%2e%2e/v7/360p/seg_00000.m4s"),
        format!("/p/{t}/v6/360p/..%2Fseg_00000.m4s"),
        format!("/p/{t}/v6//360p/seg_00000.m4s"),
        format!("/p/{t}/v6/360p/./seg_00000.m4s"),
        format!("/p/{t}/v6/360p/a%5cb"),
    ] {
        let answer = raw_get(&pop, &path).await;
        assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("bad_path"), "{path}: {answer}");
    }
    assert_eq!(refusal(&pop, "/etc/passwd").await, (404, "not_found".into()));
    assert_eq!(origin.total_fetches(), 0);
    pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_never_pass_through_a_pop() {
    init();
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pop = Pop::start(config(dir.path(), &origin.url())).await;
    for path in [viewer_path("v8", "key"), format!("/p/{}/v8/key", token("v9")), "/v1/keys/v8".into()] {
        assert_eq!(refusal(&pop, &path).await, (404, "not_found".into()), "{path}");
    }
    assert_eq!(origin.total_fetches(), 0, "nothing asked of the origin");
    assert!(!pop.running.edge.cache.contains("v8/key"));
    // A key token (what only the key service takes) opens nothing here either.
    let grant = PlaybackGrant { video: "v8".into(), expires: edge::now_secs() + 60, viewer: None, scope: Scope::Keys };
    let key_token = pop_config::token::sign_playback(&key(), &grant);
    let refused = refusal(&pop, &format!("/p/{key_token}/v8/master.m3u8")).await;
    assert_eq!(refused, (403, "token_wrong_scope".into()));
    pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_urls_are_checked_at_the_edge() {
    init();
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &origin.url());
    cfg.uploads.max_size = 1 << 20;
    let pop = Pop::start(cfg).await;
    let grant = |expires, max_bytes| UploadGrant { video: "v10".into(), max_bytes, expires };
    let signed = pop_config::token::sign_upload(&key(), &grant(edge::now_secs() + 60, 10 << 20));
    let create = |query: String, length: u64| {
        pop.h1
            .post(pop.https(&format!("/v1/uploads?{query}")))
            .header("tus-resumable", "1.0.0")
            .header("upload-length", length.to_string())
            .send()
    };

    let forged = signed.replace("sig=", "sig=00");
    let r = create(forged, 10).await.unwrap();
    assert_eq!(r.status(), 403);
    let expired = pop_config::token::sign_upload(&key(), &grant(edge::now_secs() - 1, 10 << 20));
    let r = create(expired, 10).await.unwrap();
    assert_eq!(r.status(), 410);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"]["code"], "url_expired");
    let r = create(signed.clone(), 2 << 20).await.unwrap();
    assert_eq!(r.status(), 413, "larger than this PoP takes");
    assert_eq!(origin.fetches("uploads"), 0, "refusals cost the origin nothing");

    let r = create(signed.clone(), 1000).await.unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let here = format!("https://localhost:{}/v1/uploads/u1?", pop.running.https.port());
    assert!(location.starts_with(&here), "Location points at the PoP: {location}");
    let body = origin::pattern("upload", 1000);
    let r = pop
        .h2
        .patch(&location)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["upload-offset"], "1000", "the body reached the origin whole");
    assert_eq!(origin.fetches("uploads"), 2);
    pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takedown_with_a_body_passes_through_promptly() {
    init();
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pop = Pop::start(config(dir.path(), &origin.url())).await;
    let reason = serde_json::json!({ "reason": "upload cancelled by its creator" }).to_string();
    // As `web/static/upload.js` sends it, over both TCP protocols.
    for client in [&pop.h1, &pop.h2] {
        let started = std::time::Instant::now();
        let r = client
            .delete(pop.https("/v1/videos/v40"))
            .header("authorization", "Bearer creator")
            .header("content-type", "application/json")
            .body(reason.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "took {:?}", started.elapsed());
    }
    // A body without a length (HTTP/1.1 chunked) and no body at all pass as they are.
    let chunks = futures_util::stream::iter(["{\"title\":", "\"t\"}"].map(|s| Ok::<_, std::io::Error>(s.to_owned())));
    let r = pop.h1.patch(pop.https("/v1/videos/v40")).body(reqwest::Body::wrap_stream(chunks)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = pop.h1.delete(pop.https("/v1/videos/v41")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = origin.api_requests();
    let bodies: Vec<(&str, &[u8])> = seen.iter().map(|(m, _, b)| (m.as_str(), b.as_ref())).collect();
    assert_eq!(
        bodies,
        [
            ("DELETE", reason.as_bytes()),
            ("DELETE", reason.as_bytes()),
            ("PATCH", b"{\"title\":\"t\"}".as_slice()),
            ("DELETE", b"".as_slice())
        ]
    );
    pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_only_on_their_own_listener() {
    init();
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pop = Pop::start(config(dir.path(), &origin.url())).await;
    assert_eq!(refusal(&pop, "/metrics").await, (404, "not_found".into()), "not to viewers");
    let r = reqwest::get(pop.http("/metrics")).await.unwrap();
    assert_eq!(r.status(), 404, "not on plain HTTP either");
    let page = pop.metrics().await;
    assert!(page.contains("edge_requests_total"), "{page}");
    let admin = pop.running.metrics.unwrap();
    let r = reqwest::get(format!("http://{admin}/healthz")).await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap().as_str()), (200, "ok"));
    let r = reqwest::get(format!("http://{admin}/p/x/y/z")).await.unwrap();
    assert_eq!(r.status(), 404, "nothing else there");
    pop.stop().await;
}

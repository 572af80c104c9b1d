//! Refusals, each with its own status and code: tampered, expired and wrong-video upload
//! URLs; size overruns; bad checksums; stale offsets; bad playback tokens; path traversal in
//! every path parameter; missing or foreign credentials; and a non-video upload that ends
//! `failed` with the encoder's code.

mod common;

use std::io::{Read, Write};

use base64::Engine;
use common::*;
use origin::config::DEV_CREATOR_TOKEN;
use origin::sign::{PlaybackGrant, Scope, UploadGrant};

async fn code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

fn now() -> i64 {
    origin::meta::now() / 1000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_urls_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let origin = TestOrigin::start(&dir.path().join("data")).await;
    let a = origin.create_video("a", 1000).await;
    let b = origin.create_video("b", 1000).await;
    let url_a = a["upload"]["url"].as_str().unwrap().to_owned();
    let url_b = b["upload"]["url"].as_str().unwrap().to_owned();
    let tus = Tus { client: &origin.client, url: url_a.clone() };
    let post = |url: String, len: u64| {
        origin.client.post(url).header("tus-resumable", "1.0.0").header("upload-length", len.to_string()).send()
    };

    // Tampered: another video id, a bigger size, a later expiry, a forged signature.
    let vid_b = b["video"]["id"].as_str().unwrap();
    let vid_a = a["video"]["id"].as_str().unwrap();
    for tampered in [
        url_a.replace(vid_a, vid_b),
        url_a.replace("max=1000", "max=99999"),
        url_a.replace("exp=", "exp=9"),
        last_digit_changed(&url_a),
    ] {
        assert_eq!(code(post(tampered.clone(), 10).await.unwrap()).await, (403, "bad_signature".into()), "{tampered}");
    }
    let unsigned = origin.url("/v1/uploads");
    assert_eq!(code(post(unsigned, 10).await.unwrap()).await, (403, "missing_signature".into()));
    // Expired: a correctly signed URL whose time has passed.
    let app = &origin.running.app;
    let expired = app.signer.upload_query(&UploadGrant { video: vid_a.into(), max_bytes: 1000, expires: now() - 5 });
    assert_eq!(
        code(post(origin.url(&format!("/v1/uploads?{expired}")), 10).await.unwrap()).await,
        (410, "url_expired".into())
    );
    // Size overrun, up front and by sending too much.
    assert_eq!(code(post(url_a.clone(), 1001).await.unwrap()).await, (413, "size_exceeded".into()));
    let location = tus.create(10, false).await;
    assert_eq!(code(tus.patch(&location, 0, vec![1; 11]).await).await, (413, "size_exceeded".into()));
    assert_eq!(tus.offset(&location).await, 0, "nothing of a refused body is kept");
    // Wrong video: B's valid URL on A's upload.
    let id = location.rsplit('/').next().unwrap().split('?').next().unwrap();
    let query_b = url_b.split_once('?').unwrap().1;
    let foreign = origin.url(&format!("/v1/uploads/{id}?{query_b}"));
    let r = origin.client.head(&foreign).header("tus-resumable", "1.0.0").send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        code(Tus { client: &origin.client, url: url_b.clone() }.patch(&foreign, 0, vec![1]).await).await,
        (403, "wrong_video".into())
    );
    // Checksum mismatch: 460, offset unchanged; a matching checksum is accepted.
    let bad = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
    let r = tus.patch_with_checksum(&location, 0, vec![7u8; 5], &format!("sha256 {bad}")).await;
    assert_eq!(code(r).await, (460, "checksum_mismatch".into()));
    assert_eq!(tus.offset(&location).await, 0);
    let good = base64::engine::general_purpose::STANDARD.encode(ring::digest::digest(&ring::digest::SHA256, &[7u8; 5]));
    let r = tus.patch_with_checksum(&location, 0, vec![7u8; 5], &format!("sha256 {good}")).await;
    assert_eq!(r.status(), 204);
    // A stale offset is a conflict; a missing Tus-Resumable a failed precondition.
    assert_eq!(code(tus.patch(&location, 0, vec![1]).await).await, (409, "offset_mismatch".into()));
    let r = origin.client.head(&location).send().await.unwrap();
    assert_eq!(r.status(), 412);
    origin.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playback_tokens_paths_and_credentials_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let src = clip(dir.path(), "src.mp4", "320x240", 2);
    let data = std::fs::read(&src).unwrap();
    let origin = TestOrigin::start(&dir.path().join("data")).await;
    let created = origin.create_video("t", data.len() as u64).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    let tus = origin.tus(&created);
    tus.upload(&data, 1 << 20).await;
    origin.wait_state(&id, "ready", 120).await;
    let app = &origin.running.app;
    let valid = app.signer.playback_token(&PlaybackGrant {
        video: id.clone(),
        expires: now() + 60,
        viewer: None,
        scope: Scope::Delivery,
    });
    let get = |path: String| origin.client.get(origin.url(&path)).send();
    assert_eq!(get(format!("/p/{valid}/{id}/master.m3u8")).await.unwrap().status(), 200);
    let key_token = app.signer.playback_token(&PlaybackGrant {
        video: id.clone(),
        expires: now() + 60,
        viewer: None,
        scope: Scope::Keys,
    });
    let key = origin.client.get(origin.url(&format!("/v1/keys/{id}"))).bearer_auth(&key_token).send().await.unwrap();
    assert_eq!(key.headers()["cache-control"], "no-store, private");
    assert_eq!(key.bytes().await.unwrap().len(), 16);

    let expired = app.signer.playback_token(&PlaybackGrant {
        video: id.clone(),
        expires: now() - 1,
        viewer: None,
        scope: Scope::Delivery,
    });
    let other = origin.create_video("other", 10).await;
    let other_id = other["video"]["id"].as_str().unwrap();
    let for_other = app.signer.playback_token(&PlaybackGrant {
        video: other_id.into(),
        expires: now() + 60,
        viewer: None,
        scope: Scope::Delivery,
    });
    let tampered = last_digit_changed(&valid);
    for (token, expected) in [(&expired, "token_expired"), (&for_other, "token_wrong_video"), (&tampered, "bad_token")]
    {
        for path in ["master.m3u8", "360p/seg_00000.m4s"] {
            assert_eq!(
                code(get(format!("/p/{token}/{id}/{path}")).await.unwrap()).await,
                (403, expected.into()),
                "{path}"
            );
        }
    }
    // Unknown files and traversal, in every path parameter, including raw `..` the client
    // library would otherwise normalise away.
    assert_eq!(code(get(format!("/p/{valid}/{id}/secrets.json")).await.unwrap()).await, (404, "not_found".into()));
    for raw in [
        format!("/p/{valid}/{id}/../../secrets.json"),
        format!("/p/{valid}/{id}/360p/..%2F..%2Fsecrets.json"),
        format!("/p/{valid}/..%2F..%2Fsecrets.json/master.m3u8"),
        "/v1/videos/..%2F..%2Fsecrets.json".into(),
        format!("/v1/objects/{id}/../../../secrets.json"),
        "/v1/uploads/..%2Fsecrets.json".into(),
    ] {
        let (status, body) = raw_get(&origin.running.addr.to_string(), &raw);
        assert!(status == 400 && body.contains("bad_path"), "{raw}: {status} {body}");
    }
    // Credentials: none, invalid, someone else's video.
    let patch = |token: Option<&str>| {
        let mut r =
            origin.client.patch(origin.url(&format!("/v1/videos/{id}"))).json(&serde_json::json!({"title": "x"}));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(code(patch(None).await.unwrap()).await, (401, "unauthenticated".into()));
    assert_eq!(code(patch(Some("not-a-creator-token")).await.unwrap()).await, (401, "bad_credentials".into()));
    assert_eq!(patch(Some(DEV_CREATOR_TOKEN)).await.unwrap().status(), 200);
    let r = origin.client.get(origin.url(&format!("/v1/objects/{id}/master.m3u8"))).send().await.unwrap();
    assert_eq!(code(r).await, (401, "unauthenticated".into()), "no PoP credential");
    let r = origin.client.get(origin.url(&format!("/v1/objects/{id}/master.m3u8"))).bearer_auth(DEV_CREATOR_TOKEN);
    assert_eq!(code(r.send().await.unwrap()).await, (401, "unauthenticated".into()), "a creator is no PoP");
    origin.running.stop().await;
}

/// A GET sent byte for byte, so dot segments reach the server unnormalised.
fn raw_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_video_upload_ends_failed_with_a_code() {
    let dir = tempfile::tempdir().unwrap();
    let origin = TestOrigin::start(&dir.path().join("data")).await;
    let data = "this is a plain text file pretending to be a video\n".repeat(200).into_bytes();
    let created = origin.create_video("text", data.len() as u64).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    origin.tus(&created).upload(&data, 4096).await;
    let v = origin.wait_state(&id, "failed", 60).await;
    assert_eq!(v["error_code"], "not_media", "{v}");
    let r = origin.client.post(origin.url(&format!("/v1/videos/{id}/playback"))).send().await.unwrap();
    assert_eq!(code(r).await, (409, "not_ready".into()));
    origin.running.stop().await;
}

/// `signed` with its last (signature) digit changed: to 1 where it was 0, so it always changes.
fn last_digit_changed(signed: &str) -> String {
    format!("{}{}", &signed[..signed.len() - 1], if signed.ends_with('0') { '1' } else { '0' })
}

//! The whole origin in-process: create a video, upload it with tus in four parallel partials
//! plus concatenation while renaming it, watch it become ready over server-sent events, get a
//! playback token, and play the encrypted ladder with the ffmpeg CLI through the origin's
//! URLs and key service.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_transcode_and_play() {
    let dir = tempfile::tempdir().unwrap();
    let src = clip(dir.path(), "src.mp4", "640x360", 4);
    let data = std::fs::read(&src).unwrap();
    let origin = TestOrigin::start(&dir.path().join("data")).await;
    let created = origin.create_video("첫 영상", data.len() as u64).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["video"]["state"], "uploading");

    // Watch the events from the start.
    let events = origin.client.get(origin.url(&format!("/v1/videos/{id}/events"))).send().await.unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let watcher = tokio::spawn(async move {
        let mut stream = events.bytes_stream();
        let mut text = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("\"state\":\"ready\"") || text.contains("\"state\":\"failed\"") {
                break;
            }
        }
        text
    });

    let tus = origin.tus(&created);
    // Metadata changes while the bytes flow.
    let patch = origin
        .client
        .patch(origin.url(&format!("/v1/videos/{id}")))
        .bearer_auth(origin::config::DEV_CREATOR_TOKEN)
        .json(&serde_json::json!({"title": "첫 번째 영상 (Final)", "description": "Δοκιμή"}))
        .send();
    let (upload, patched) = tokio::join!(tus.upload_parallel(&data, 4), patch);
    assert_eq!(upload.status(), 201, "{}", upload.text().await.unwrap());
    assert_eq!(patched.unwrap().status(), 200);

    let sse = tokio::time::timeout(Duration::from_secs(180), watcher).await.expect("ready within 3 minutes").unwrap();
    for state in ["uploading", "queued", "processing", "ready"] {
        assert!(sse.contains(&format!("\"state\":\"{state}\"")), "no {state} event in:\n{sse}");
    }
    let video = origin.video(&id).await;
    assert_eq!(video["state"], "ready");
    assert_eq!(video["title"], "첫 번째 영상 (Final)");
    assert!((video["duration"].as_f64().unwrap() - 4.0).abs() < 0.1, "{video}");
    let names: Vec<&str> =
        video["renditions"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["240p", "360p", "audio"]);

    // Search finds it by a lower-case fragment in Korean and Latin script.
    for q in ["%EB%B2%88%EC%A7%B8", "final"] {
        let found: serde_json::Value =
            origin.client.get(origin.url(&format!("/v1/videos?q={q}"))).send().await.unwrap().json().await.unwrap();
        assert_eq!(found["videos"][0]["id"], id.as_str(), "q={q}: {found}");
    }

    let playback = origin.playback(&id).await;
    let master = playback["master_url"].as_str().unwrap().to_owned();
    let key_token = playback["key_token"].as_str().unwrap().to_owned();
    let (codec, frames) = tokio::task::spawn_blocking(move || probe_frames(&master, &key_token)).await.unwrap();
    assert_eq!((codec.as_str(), frames), ("h264", 120), "ffmpeg played the encrypted ladder through the key service");

    // Object serving: Range, ETag revalidation, cache rules by kind, CORS for browser players.
    let seg = playback["master_url"].as_str().unwrap().replace("master.m3u8", "360p/seg_00000.m4s");
    let whole = origin.client.get(&seg).send().await.unwrap();
    assert_eq!(whole.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(whole.headers()["access-control-allow-origin"], "*");
    let etag = whole.headers()["etag"].to_str().unwrap().to_owned();
    let bytes = whole.bytes().await.unwrap();
    let part = origin.client.get(&seg).header("range", "bytes=16-31").send().await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], format!("bytes 16-31/{}", bytes.len()).as_str());
    assert_eq!(part.bytes().await.unwrap(), bytes.slice(16..32));
    let beyond = origin.client.get(&seg).header("range", format!("bytes={}-", bytes.len())).send().await.unwrap();
    assert_eq!(beyond.status(), 416);
    let again = origin.client.get(&seg).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    let playlist = origin.client.get(playback["master_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(playlist.headers()["cache-control"], "public, max-age=10");
    assert_eq!(playlist.headers()["content-type"], "application/vnd.apple.mpegurl");

    let metrics_page = format!("http://{}/metrics", origin.running.metrics_addr.unwrap());
    let metrics = origin.client.get(metrics_page).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("origin_jobs_total{outcome=\"ready\"} 1"), "{metrics}");
    origin.running.stop().await;
}

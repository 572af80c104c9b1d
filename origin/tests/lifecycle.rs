//! After a video is ready: takedown (everything goes, edges are told, an audit row stays),
//! HMAC-signed webhooks retried until delivered, and expired uploads collected.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use origin::Config;
use origin::config::DEV_CREATOR_TOKEN;

/// (timestamp, signature, body) of each delivery received.
type Deliveries = Arc<Mutex<Vec<(String, String, String)>>>;

/// A webhook receiver that refuses the first delivery (500) and accepts the next ones.
fn webhook_receiver() -> (String, Deliveries) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let (mut len, mut ts, mut sig) = (0usize, String::new(), String::new());
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end().to_owned();
                if line.is_empty() {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                } else if lower.starts_with("x-webhook-timestamp:") {
                    ts = line.split_once(':').unwrap().1.trim().to_owned();
                } else if lower.starts_with("x-webhook-signature:") {
                    sig = line.split_once(':').unwrap().1.trim().to_owned();
                }
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            record.lock().unwrap().push((ts, sig, String::from_utf8(body).unwrap()));
            let status = if n == 0 { "500 Internal Server Error" } else { "200 OK" };
            let _ = write!(conn, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_webhook_then_takedown() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_dir(&dir.path().join("data"));
    // The receiver is on loopback, which webhooks may reach only when the operator says so.
    config.webhook_allow = vec!["127.0.0.1/32".parse().unwrap()];
    let origin = TestOrigin::start_with(config).await;
    let (hook_url, deliveries) = webhook_receiver();
    let hook: serde_json::Value = origin
        .client
        .put(origin.url("/v1/webhook"))
        .bearer_auth(DEV_CREATOR_TOKEN)
        .json(&serde_json::json!({"url": hook_url}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = hook["secret"].as_str().unwrap().to_owned();

    let src = clip(dir.path(), "src.mp4", "320x240", 2);
    let data = std::fs::read(&src).unwrap();
    let created = origin.create_video("to be taken down", data.len() as u64).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    origin.tus(&created).upload(&data, 1 << 20).await;
    origin.wait_state(&id, "ready", 120).await;

    // The first delivery is refused; the retry (after backoff) arrives, signed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while deliveries.lock().unwrap().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "webhook not retried");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ts, sig, body) = deliveries.lock().unwrap()[1].clone();
    let expected = origin::sign::Signer::webhook_signature(&secret, ts.parse().unwrap(), body.as_bytes());
    assert_eq!(sig, format!("sha256={expected}"));
    let event: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((event["event"].as_str(), event["video"]["id"].as_str()), (Some("video.ready"), Some(id.as_str())));

    let blobs = dir.path().join("data/blobs");
    assert!(blobs.join(format!("videos/{id}/master.m3u8")).exists());
    let playback = origin.playback(&id).await;
    let master = playback["master_url"].as_str().unwrap().to_owned();
    let who = origin::pops::Enrolment { id: "pop-1".into(), region: "eu".into(), partner: false };
    let credential = origin::pops::enrol(origin.running.app.pops.as_ref(), &who, 0).await.unwrap();
    let pop_get = |path: String| origin.client.get(origin.url(&path)).bearer_auth(credential.clone()).send();
    assert_eq!(pop_get(format!("/v1/objects/{id}/240p/seg_00000.m4s")).await.unwrap().status(), 200);

    let r = origin
        .client
        .delete(origin.url(&format!("/v1/videos/{id}")))
        .bearer_auth(DEV_CREATOR_TOKEN)
        .json(&serde_json::json!({"reason": "copyright claim #42"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let taken: serde_json::Value = r.json().await.unwrap();
    assert_eq!(taken["video"]["state"], "deleted");
    assert_eq!(origin.video(&id).await["state"], "deleted");
    for gone in [master.clone(), master.replace("master.m3u8", "key")] {
        assert_eq!(origin.client.get(&gone).send().await.unwrap().status(), 410, "{gone}");
    }
    assert_eq!(pop_get(format!("/v1/objects/{id}/240p/seg_00000.m4s")).await.unwrap().status(), 410);
    assert!(!blobs.join(format!("videos/{id}")).exists(), "renditions removed");
    assert!(!blobs.join(format!("originals/{id}")).exists(), "original removed");
    let app = &origin.running.app;
    assert!(app.meta.key(&id).await.unwrap().is_none(), "key removed");
    let audits = app.meta.audits(&id).await.unwrap();
    assert_eq!((audits[0].action.as_str(), audits[0].reason.as_str()), ("takedown", "copyright claim #42"));
    let purges: serde_json::Value = pop_get("/v1/purges?after=0".into()).await.unwrap().json().await.unwrap();
    assert_eq!(purges["purges"][0]["video"], id.as_str(), "{purges}");
    let listed: serde_json::Value =
        origin.client.get(origin.url("/v1/videos")).send().await.unwrap().json().await.unwrap();
    assert!(
        listed["videos"].as_array().unwrap().iter().all(|v| v["id"] != id.as_str()),
        "taken-down videos are not listed"
    );
    origin.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_incomplete_uploads_are_collected() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_dir(&dir.path().join("data"));
    config.upload_expiry = Duration::from_millis(300);
    let origin = TestOrigin::start_with(config).await;
    let created = origin.create_video("abandoned", 100).await;
    let tus = origin.tus(&created);
    let location = tus.create(100, false).await;
    assert_eq!(tus.patch(&location, 0, vec![1; 40]).await.status(), 204);
    let id = location.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    let pieces = dir.path().join(format!("data/blobs/uploads/{id}"));
    assert_eq!(std::fs::read_dir(&pieces).unwrap().count(), 1, "one piece in blob storage");
    // A partial upload sent whole but never concatenated serves nothing either.
    let partial = tus.create(30, true).await;
    tus.send_all(&partial, &[2; 30], 30).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(origin::api::uploads::collect_expired(&origin.running.app).await.unwrap(), 2);
    assert_eq!(std::fs::read_dir(&pieces).map(|d| d.count()).unwrap_or(0), 0, "its pieces went");
    for gone in [&location, &partial] {
        let r = origin.client.head(gone).header("tus-resumable", "1.0.0").send().await.unwrap();
        assert_eq!(r.status(), 404);
    }
    origin.running.stop().await;
}

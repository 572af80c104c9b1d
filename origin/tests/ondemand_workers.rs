//! Just-in-time encoding across real worker processes: an API origin with no workers of its
//! own, two `origin worker` processes on the same database, queue and storage. The worker
//! encoding a viewer's segment is killed with SIGKILL midway; the viewer still gets the
//! segment from the other worker (bytes already sent checked against the new encode), or a
//! `503` with a code and `Retry-After`, within its deadline. A taken-down video answers `410`
//! and starts no encode. The origin runs an operator's pipeline file.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use origin::Config;
use origin::meta::ondemand::{OnDemandStore, SegmentKey};
use origin::meta::sql::SqlStore;

struct WorkerProcess {
    child: Child,
}

impl WorkerProcess {
    fn start(config: &Path) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_origin"))
            .args(["worker", "--config"])
            .arg(config)
            .env("ORIGIN_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("origin worker starts");
        Self { child }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The process id a worker id carries (`{host}-{pid}-{random}`).
fn pid_of(worker: &str) -> u32 {
    worker.rsplit('-').nth(1).and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no pid in {worker:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_hands_the_viewers_segment_to_another() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let worker_config = dir.path().join("worker.toml");
    std::fs::write(
        &worker_config,
        format!("data_dir = {:?}\ntask_lease_secs = 2\nworkers = 1\n", data.display().to_string()),
    )
    .unwrap();
    // An operator's pipeline file reaches the platform: 3 s segments instead of 2.
    let builtin =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../encoder/src/pipeline/default.toml")).unwrap();
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(&pipeline, builtin.replace("segment_seconds = 2.0", "segment_seconds = 3.0")).unwrap();
    let mut config = Config::for_dir(&data);
    config.pipeline = Some(pipeline);
    config.workers = 0;
    config.task_lease = Duration::from_secs(2);
    config.on_demand.lookahead = 0;
    let origin = TestOrigin::start_with(config).await;
    let mut workers = vec![WorkerProcess::start(&worker_config), WorkerProcess::start(&worker_config)];
    let store = SqlStore::connect(&format!("sqlite://{}?mode=rwc", data.join("meta.db").display())).await.unwrap();

    let src = clip(dir.path(), "src.mp4", "1920x1080", 6);
    let bytes = std::fs::read(&src).unwrap();
    let created = origin.create_video("killed worker", bytes.len() as u64).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    assert_eq!(origin.tus(&created).upload_parallel(&bytes, 1).await.status(), 201);
    origin.wait_state(&id, "ready", 240).await;
    let master = origin.playback(&id).await["master_url"].as_str().unwrap().to_owned();
    let segment_url = master.replace("master.m3u8", "1080p/seg_00001.m4s");
    let playlist = origin.client.get(master.replace("master.m3u8", "1080p/index.m3u8")).send().await.unwrap();
    let playlist = playlist.text().await.unwrap();
    assert_eq!(playlist.matches("#EXTINF:3.0").count(), 2, "the pipeline file's segment length: {playlist}");

    // Ask for a cold 1080p segment and kill whichever worker takes it.
    let started = Instant::now();
    let request = tokio::spawn({
        let client = origin.client.clone();
        let url = segment_url.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            let status = r.status();
            let retry_after = r.headers().get("retry-after").cloned();
            (status, retry_after, r.bytes().await)
        }
    });
    let key = SegmentKey { video: id.clone(), rung: "1080p".into(), segment: 1 };
    let victim = loop {
        if let Some(w) = store.segment_claim(&key).await.unwrap().and_then(|c| c.worker) {
            break w;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no worker took the segment");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let pid = pid_of(&victim);
    let i = workers.iter().position(|w| w.child.id() == pid).expect("the claim names one of our workers");
    let mut killed = workers.remove(i);
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();

    let (status, retry_after, body) = request.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(40), "answered within its deadline: {:?}", started.elapsed());
    match status.as_u16() {
        200 => {
            let body = body.expect("the whole segment, not a cut body");
            // The other worker stored the segment; the viewer got exactly those bytes.
            let stored = data.join("blobs/videos").join(&id).join("1080p/seg_00001.m4s");
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stored.exists() {
                assert!(Instant::now() < deadline, "the segment is stored");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(std::fs::read(&stored).unwrap(), body.to_vec());
        }
        503 => {
            assert!(retry_after.is_some(), "a 503 says when to come back");
            let error: serde_json::Value = serde_json::from_slice(&body.unwrap()).unwrap();
            assert!(error["error"]["code"].as_str().is_some_and(|c| c.starts_with("encode_")), "{error}");
        }
        other => panic!("unexpected status {other}"),
    }
    // Either way the segment is there for the next request, from the surviving worker.
    let again = origin.client.get(&segment_url).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert!(!again.bytes().await.unwrap().is_empty());

    // Taken down: the next cold segment is refused with 410 and nothing is encoded.
    let r = origin
        .client
        .delete(origin.url(&format!("/v1/videos/{id}")))
        .bearer_auth(origin::config::DEV_CREATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let gone = origin.client.get(master.replace("master.m3u8", "720p/seg_00002.m4s")).send().await.unwrap();
    assert_eq!(gone.status(), 410);
    let key = SegmentKey { video: id.clone(), rung: "720p".into(), segment: 2 };
    assert_eq!(store.segment_claim(&key).await.unwrap(), None, "no encode started");
    assert!(!data.join("blobs/videos").join(&id).join("720p/seg_00002.m4s").exists());
    origin.running.stop().await;
}

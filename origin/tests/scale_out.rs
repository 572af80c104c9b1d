//! The distributed configuration end to end: PostgreSQL metadata, Redis cache, NATS JetStream
//! queues, S3 blob storage (moto), an API origin with no workers of its own, and a separate
//! worker instance that shares nothing with it but those services (its own scratch folder,
//! artifacts staged through S3). Skipped loudly when a service is missing outside CI.

mod common;

use std::time::Duration;

use common::services::{BUCKET, FreshDatabase, Moto, moto_server, service_url, unique};
use common::*;
use origin::Config;
use origin::config::StorageConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_transcode_and_play_on_scale_out_services() {
    let (Some(pg), Some(redis), Some(nats), Some(moto)) = (
        service_url("TEST_POSTGRES_URL", "scale-out end to end"),
        service_url("TEST_REDIS_URL", "scale-out end to end"),
        service_url("TEST_NATS_URL", "scale-out end to end"),
        moto_server("scale-out end to end"),
    ) else {
        return;
    };
    let database = FreshDatabase::create(&pg, "e2e_scale_out").await;
    let s3 = Moto::start(&moto).await;
    let dir = tempfile::tempdir().unwrap();
    let namespace = unique("e2e");
    let configure = |folder: &str| {
        let mut c = Config::for_dir(&dir.path().join(folder));
        c.database_url = database.url.clone();
        c.cache_url = redis.clone();
        c.queue_url = nats.clone();
        c.queue_namespace = Some(namespace.clone());
        c.storage = StorageConfig::S3 {
            endpoint: s3.endpoint(),
            bucket: BUCKET.into(),
            region: "us-east-1".into(),
            access_key: "test".into(),
            secret_key: "test".into(),
        };
        c.shared_scratch = false;
        c.task_lease = Duration::from_secs(5);
        // Both sides must agree on the keys they sign and wrap with.
        c.signing_key = Some("5".repeat(64));
        c.master_key = Some("6".repeat(64));
        c
    };
    let mut api = configure("api");
    api.workers = 0;
    let origin = TestOrigin::start_with(api.clone()).await;
    // A second API node sharing nothing with the first but the services.
    let second = TestOrigin::start_with(Config { data_dir: dir.path().join("api2"), ..api }).await;
    let (stop_worker, watch) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(origin::run_workers(configure("worker"), watch));

    let src = clip(dir.path(), "src.mp4", "640x360", 3);
    let data = std::fs::read(&src).unwrap();
    let created = origin.create_video("scale-out", data.len() as u64).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    // Events of a video handled by the first node (or driven on either) reach a client of the
    // second one.
    let events = second.client.get(second.url(&format!("/v1/videos/{id}/events"))).send().await.unwrap();
    assert_eq!(events.status(), 200);
    let states = tokio::spawn(event_states(events));
    let tus = origin.tus(&created);
    assert_eq!(tus.upload_parallel(&data, 2).await.status(), 201);
    let video = origin.wait_state(&id, "ready", 180).await;
    let states = tokio::time::timeout(Duration::from_secs(30), states).await.expect("the stream ends").unwrap();
    assert_eq!(states.first().map(String::as_str), Some("uploading"), "{states:?}");
    assert_eq!(states.last().map(String::as_str), Some("ready"), "{states:?}");
    assert!(states.iter().any(|s| s == "queued"), "the upload's completion was heard: {states:?}");
    assert_eq!(video["renditions"].as_array().unwrap().len(), 3, "{video}");

    let playback = origin.playback(&id).await;
    let master = playback["master_url"].as_str().unwrap().to_owned();
    let key_token = playback["key_token"].as_str().unwrap().to_owned();
    let (codec, frames) = tokio::task::spawn_blocking(move || probe_frames(&master, &key_token)).await.unwrap();
    assert_eq!((codec.as_str(), frames), ("h264", 90));

    // The worker's staged copies go once the job has ended.
    let worker_scratch = dir.path().join("worker/scratch");
    origin::jobs::worker::sweep_scratch(&origin.running.app, &worker_scratch).await.unwrap();
    assert_eq!(std::fs::read_dir(&worker_scratch).map(|d| d.count()).unwrap_or(0), 0, "worker scratch swept");

    let _ = stop_worker.send(true);
    worker.await.unwrap().unwrap();
    second.running.stop().await;
    origin.running.stop().await;
    database.drop().await;
}

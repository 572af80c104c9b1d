//! One video, one completed upload: a second upload finishing while the first job runs, at
//! the same moment as the first, or after the video is ready gets `409 upload_completed`;
//! there is exactly one job and the original is never replaced; a video has a bounded number
//! of open uploads.

mod common;

use common::*;
use origin::Config;
use sqlx::Connection;

async fn code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

/// Jobs recorded for a video, read from the SQLite file itself.
async fn jobs_of(dir: &std::path::Path, video: &str) -> i64 {
    let url = format!("sqlite://{}", dir.join("data/meta.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM jobs WHERE video_id = ?").bind(video).fetch_one(&mut db).await.unwrap();
    db.close().await.unwrap();
    n
}

/// The video's original, once its job has assembled it from the upload's pieces.
async fn original(dir: &std::path::Path, video: &str) -> Vec<u8> {
    let path = dir.join(format!("data/blobs/originals/{video}"));
    for _ in 0..600 {
        if let Ok(bytes) = std::fs::read(&path) {
            return bytes;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no original for {video} after a minute")
}

/// The same clip with its last byte changed: as long, and distinguishable.
fn variant(data: &[u8]) -> Vec<u8> {
    let mut other = data.to_vec();
    *other.last_mut().unwrap() ^= 0x01;
    other
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_upload_cannot_complete_a_video_while_queued_or_after_ready() {
    let dir = tempfile::tempdir().unwrap();
    let data = std::fs::read(clip(dir.path(), "src.mp4", "320x240", 2)).unwrap();
    let other = variant(&data);
    let origin = TestOrigin::start(&dir.path().join("data")).await;
    let created = origin.create_video("once", data.len() as u64).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    let tus = origin.tus(&created);
    // Three uploads from the one pre-signed URL; the second and third stop one byte short.
    let first = tus.create(data.len() as u64, false).await;
    let second = tus.create(data.len() as u64, false).await;
    let third = tus.create(data.len() as u64, false).await;
    let last = other.len() - 1;
    tus.send_all(&second, &other[..last], 1 << 20).await;
    tus.send_all(&third, &other[..last], 1 << 20).await;
    tus.send_all(&first, &data, 1 << 20).await;
    let gone = async |location: &str| {
        let r = origin.client.head(location).header("tus-resumable", "1.0.0").send().await.unwrap();
        r.status() == 404
    };

    // The first completed the video: the second's last byte, a new upload and a
    // concatenation are all refused, and the job runs once.
    assert_eq!(
        code(tus.patch(&second, last as u64, other[last..].to_vec()).await).await,
        (409, "upload_completed".into())
    );
    assert!(gone(&second).await, "a refused upload can never be used, so it goes");
    let again = origin.client.post(&tus.url).header("tus-resumable", "1.0.0").header("upload-length", "10").send();
    assert_eq!(code(again.await.unwrap()).await, (409, "upload_completed".into()));
    let concat = origin
        .client
        .post(&tus.url)
        .header("tus-resumable", "1.0.0")
        .header("upload-concat", format!("final;{second}"));
    assert_eq!(code(concat.send().await.unwrap()).await.0, 409);
    origin.wait_state(&id, "ready", 120).await;
    assert_eq!(
        code(tus.patch(&third, last as u64, other[last..].to_vec()).await).await,
        (409, "upload_completed".into())
    );
    assert!(gone(&third).await);
    let after = origin.client.post(&tus.url).header("tus-resumable", "1.0.0").header("upload-length", "10").send();
    assert_eq!(code(after.await.unwrap()).await, (409, "upload_completed".into()));
    // The winner's last PATCH, retried, is answered rather than refused.
    assert_eq!(tus.patch(&first, data.len() as u64, Vec::new()).await.status(), 204);

    assert_eq!(origin.video(&id).await["state"], "ready", "never queued again");
    assert_eq!(jobs_of(dir.path(), &id).await, 1);
    assert!(original(dir.path(), &id).await == data, "the original is the first upload's");
    origin.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_uploads_finishing_at_once_complete_the_video_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = std::fs::read(clip(dir.path(), "src.mp4", "320x240", 2)).unwrap();
    let mut config = Config::for_dir(&dir.path().join("data"));
    config.workers = 0;
    let origin = TestOrigin::start_with(config).await;
    for round in 0..3 {
        let created = origin.create_video(&format!("race {round}"), data.len() as u64).await;
        let id = created["video"]["id"].as_str().unwrap().to_owned();
        let tus = origin.tus(&created);
        let bodies = [data.clone(), variant(&data)];
        let mut locations = Vec::new();
        let last = data.len() - 1;
        for body in &bodies {
            let location = tus.create(body.len() as u64, false).await;
            tus.send_all(&location, &body[..last], 1 << 20).await;
            locations.push(location);
        }
        let (a, b) = tokio::join!(
            tus.patch(&locations[0], last as u64, bodies[0][last..].to_vec()),
            tus.patch(&locations[1], last as u64, bodies[1][last..].to_vec()),
        );
        let outcomes = [code(a).await, code(b).await];
        let winner = outcomes.iter().position(|(s, _)| *s == 204).unwrap_or_else(|| panic!("no winner: {outcomes:?}"));
        assert_eq!(outcomes[1 - winner], (409, "upload_completed".into()), "{outcomes:?}");
        let state = origin.video(&id).await["state"].as_str().unwrap().to_owned();
        assert!(state == "queued" || state == "processing", "{state}");
        assert_eq!(jobs_of(dir.path(), &id).await, 1, "exactly one job");
        assert!(original(dir.path(), &id).await == bodies[winner], "the original is the winner's");
        // The loser can never be used again, so it is gone.
        let r = origin.client.head(&locations[1 - winner]).header("tus-resumable", "1.0.0").send().await.unwrap();
        assert_eq!(r.status(), 404);
    }
    origin.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_has_a_bounded_number_of_open_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_dir(&dir.path().join("data"));
    config.workers = 0;
    config.max_uploads_per_video = 3;
    let origin = TestOrigin::start_with(config).await;
    let data = vec![5u8; 300];
    let created = origin.create_video("bounded", data.len() as u64).await;
    let tus = origin.tus(&created);
    let mut parts = Vec::new();
    for piece in data.chunks(100) {
        let location = tus.create(piece.len() as u64, true).await;
        tus.send_all(&location, piece, 100).await;
        parts.push(location);
    }
    let create = |concat: bool| {
        let r = origin.client.post(&tus.url).header("tus-resumable", "1.0.0").header("upload-length", "100");
        if concat { r.header("upload-concat", "partial") } else { r }
    };
    assert_eq!(code(create(false).send().await.unwrap()).await, (409, "too_many_uploads".into()));
    assert_eq!(code(create(true).send().await.unwrap()).await, (409, "too_many_uploads".into()));
    // Terminating one frees its place.
    let r = origin.client.delete(&parts[2]).header("tus-resumable", "1.0.0").send().await.unwrap();
    assert_eq!(r.status(), 204);
    let replacement = tus.create(100, true).await;
    tus.send_all(&replacement, &data[200..], 100).await;
    assert_eq!(code(create(false).send().await.unwrap()).await, (409, "too_many_uploads".into()));
    // The concatenation is not counted: it completes the video.
    let r = origin
        .client
        .post(&tus.url)
        .header("tus-resumable", "1.0.0")
        .header("upload-concat", format!("final;{} {} {replacement}", parts[0], parts[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let id = created["video"]["id"].as_str().unwrap();
    assert_ne!(origin.video(id).await["state"], "uploading");
    assert!(original(dir.path(), id).await == data);
    origin.running.stop().await;
}

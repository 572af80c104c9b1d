//! The video lifecycle under races, on the real store and blob storage: a takedown racing a
//! completion leaves the video `deleted` with no object behind, whichever lands first; a late
//! progress report or completion never revives a taken-down video; a redelivered completion
//! changes nothing and tells nobody twice.

use std::sync::Arc;

use origin::app::App;
use origin::jobs::{Completion, Outcome};
use origin::lifecycle::apply::{self, Applied};
use origin::meta::{self, Audit, Job, JobState, NewVideo, Rendition, VideoState};
use origin::{Config, storage};

async fn app(dir: &std::path::Path) -> Arc<App> {
    App::open(Config::for_dir(dir)).await.unwrap()
}

/// A video in `processing` with its job, and a segment its job has published.
async fn processing(app: &App, id: &str) -> String {
    let now = meta::now();
    let video = NewVideo {
        id: id.into(),
        creator: "racer".into(),
        title: "Race".into(),
        description: String::new(),
        language: "und".into(),
        filename: "race.mp4".into(),
        size: 10,
        content_type: "video/mp4".into(),
        privacy: meta::Privacy::Public,
        channel: None,
        now,
    };
    app.meta.create_video(&video).await.unwrap();
    let job = Job {
        id: format!("job-{id}"),
        video_id: id.into(),
        state: JobState::Queued,
        error_code: None,
        created_at: now,
        updated_at: now,
    };
    assert!(app.meta.claim_completion(id, "upload").await.unwrap());
    app.meta.queue_completed(id, "upload", &job, now).await.unwrap().unwrap();
    assert!(matches!(apply::progress(app, id, 0.5).await.unwrap(), Applied::Moved(_)));
    publish_segment(app, id).await;
    job.id
}

async fn publish_segment(app: &App, id: &str) {
    app.blobs.write(&format!("{}720p/seg_00001.m4s", storage::published(id)), vec![7u8; 64]).await.unwrap();
}

async fn published(app: &App, id: &str) -> Vec<String> {
    let listed = app.blobs.list_with(&storage::published(id)).recursive(true).await.unwrap();
    listed.into_iter().filter(|e| e.metadata().is_file()).map(|e| e.path().to_owned()).collect()
}

fn ready(job: &str, id: &str) -> Completion {
    let rendition = Rendition {
        name: "720p".into(),
        codecs: "avc1.64001f".into(),
        width: 1280,
        height: 720,
        bitrate: 2_000_000,
        on_demand: false,
        state: None,
    };
    Completion {
        job: job.into(),
        video: id.into(),
        outcome: Outcome::Ready { duration: 2.0, renditions: vec![rendition], segments: 1 },
    }
}

fn takedown(id: &str) -> Audit {
    Audit {
        at: meta::now(),
        actor: "racer".into(),
        action: "takedown".into(),
        video_id: id.into(),
        reason: "race".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takedown_racing_a_completion_leaves_the_video_deleted_with_nothing_stored() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path()).await;
    for round in 0..12 {
        let id = format!("race{round:02}");
        let job = processing(&app, &id).await;
        let completion = ready(&job, &id);
        // Alternate which starts first; on two worker threads they overlap either way.
        let (done, (down, _)) = if round % 2 == 0 {
            tokio::join!(origin::jobs::completion::apply(&app, &completion), async {
                apply::take_down(&app, &id, takedown(&id)).await.unwrap()
            })
        } else {
            let (down, done) = tokio::join!(
                async { apply::take_down(&app, &id, takedown(&id)).await.unwrap() },
                origin::jobs::completion::apply(&app, &completion)
            );
            (done, down)
        };
        done.unwrap();
        assert!(matches!(down, Applied::Moved(_)), "round {round}: the takedown always wins: {down:?}");
        let video = app.meta.video(&id).await.unwrap().unwrap();
        assert_eq!(video.state, VideoState::Deleted, "round {round}");
        assert!(published(&app, &id).await.is_empty(), "round {round}: an object survived");
        assert!(app.ondemand.rungs(&id).await.unwrap().is_empty(), "round {round}: rung state survived");
        let job = app.meta.job(&job).await.unwrap().unwrap();
        assert!(matches!(job.state, JobState::Done | JobState::Failed), "round {round}: {job:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_late_revives_a_taken_down_video() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path()).await;
    let job = processing(&app, "late").await;
    apply::take_down(&app, "late", takedown("late")).await.unwrap();

    // A driver's progress and its job's completion arrive after the takedown.
    assert!(matches!(apply::progress(&app, "late", 0.9).await.unwrap(), Applied::Refused(_)));
    publish_segment(&app, "late").await;
    origin::jobs::completion::apply(&app, &ready(&job, "late")).await.unwrap();
    let failed = Completion {
        outcome: Outcome::Failed { code: "encode_failed".into(), message: "late".into() },
        ..ready(&job, "late")
    };
    origin::jobs::completion::apply(&app, &failed).await.unwrap();

    let video = app.meta.video("late").await.unwrap().unwrap();
    assert_eq!((video.state, video.error_code), (VideoState::Deleted, None));
    assert!(published(&app, "late").await.is_empty(), "what the late job published went too");
    let job = app.meta.job(&job).await.unwrap().unwrap();
    assert_eq!((job.state, job.error_code.as_deref()), (JobState::Failed, Some("deleted")));
    // A second takedown finds it deleted and cleans up again (finishing one that failed midway).
    publish_segment(&app, "late").await;
    let (again, purge) = apply::take_down(&app, "late", takedown("late")).await.unwrap();
    assert!(matches!(again, Applied::Already(_)) && purge.is_some(), "{again:?}");
    assert!(published(&app, "late").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_completion_changes_nothing_and_tells_nobody_twice() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path()).await;
    let job = processing(&app, "twice").await;
    let mut events = app.hub.subscribe();
    let completion = ready(&job, "twice");
    origin::jobs::completion::apply(&app, &completion).await.unwrap();
    let first = app.meta.video("twice").await.unwrap().unwrap();
    origin::jobs::completion::apply(&app, &completion).await.unwrap();
    let failed = Completion {
        outcome: Outcome::Failed { code: "encode_failed".into(), message: "a stale failure".into() },
        ..completion.clone()
    };
    origin::jobs::completion::apply(&app, &failed).await.unwrap();

    assert_eq!(app.meta.video("twice").await.unwrap().unwrap(), first, "still ready, untouched");
    assert_eq!(app.meta.job(&job).await.unwrap().unwrap().state, JobState::Done);
    assert!(matches!(apply::progress(&app, "twice", 0.1).await.unwrap(), Applied::Refused(_)));
    let mut states = Vec::new();
    while let Ok(e) = events.try_recv() {
        states.push(e.state);
    }
    assert_eq!(states, [VideoState::Ready], "one event, for the one change");
}

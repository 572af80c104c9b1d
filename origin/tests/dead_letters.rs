//! A job whose every delivery ended without a verdict (its driver's process died each time)
//! is not delivered for ever: the next origin to receive it buries it in the dead-letter topic,
//! and the video ends `failed` with the code, through the one completion handler.

mod common;

use std::time::Duration;

use common::*;
use origin::Config;
use origin::app::App;
use origin::jobs::{JOBS, JobMessage};
use origin::meta::{self, Job, JobState, NewVideo};
use origin::queue::consume::{DEAD_LETTERS, DeadLetter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_kept_killing_its_driver_ends_failed_with_a_code() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut config = Config::for_dir(&data);
    config.workers = 0;
    config.task_lease = Duration::from_secs(2);

    // A queued video with its job, whose message was delivered five times and never settled.
    let app = App::open(config.clone()).await.unwrap();
    let now = meta::now();
    let video = NewVideo {
        id: "doomed".into(),
        creator: "dev".into(),
        title: "Doomed".into(),
        description: String::new(),
        language: "und".into(),
        filename: "doomed.mp4".into(),
        size: 10,
        content_type: "video/mp4".into(),
        privacy: meta::Privacy::Public,
        channel: None,
        now,
    };
    app.meta.create_video(&video).await.unwrap();
    let job = Job {
        id: "job-doomed".into(),
        video_id: "doomed".into(),
        state: JobState::Queued,
        error_code: None,
        created_at: now,
        updated_at: now,
    };
    assert!(app.meta.claim_completion("doomed", "upload").await.unwrap());
    app.meta.queue_completed("doomed", "upload", &job, now).await.unwrap().unwrap();
    let message = JobMessage { job: job.id.clone(), video: "doomed".into() };
    app.queue.publish(JOBS, &serde_json::to_vec(&message).unwrap()).await.unwrap();
    for n in 1..=5 {
        let m = app.queue.receive(JOBS, config.task_lease, Duration::from_secs(5)).await.unwrap().unwrap();
        assert_eq!(m.deliveries, n);
        m.lease.nack(Duration::ZERO).await.unwrap();
    }
    drop(app);

    // The origin that receives it a sixth time does not run it.
    let origin = TestOrigin::start_with(config).await;
    let failed = origin.wait_state("doomed", "failed", 60).await;
    assert_eq!(failed["error_code"], "too_many_deliveries", "{failed}");
    let app = &origin.running.app;
    // The completion fails the video, then its job: two writes, and the video was seen first.
    let mut job = app.meta.job("job-doomed").await.unwrap().unwrap();
    for _ in 0..100 {
        if job.state != JobState::Queued {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        job = app.meta.job("job-doomed").await.unwrap().unwrap();
    }
    assert_eq!((job.state, job.error_code.as_deref()), (JobState::Failed, Some("too_many_deliveries")));
    let letter = app.queue.receive(DEAD_LETTERS, Duration::from_secs(30), Duration::from_secs(5)).await.unwrap();
    let letter: DeadLetter = serde_json::from_slice(&letter.expect("a dead letter").payload).unwrap();
    assert_eq!((letter.consumer.as_str(), letter.topic.as_str(), letter.deliveries), ("jobs", JOBS, 6));
    assert_eq!(letter.payload["job"], "job-doomed");
    origin.running.stop().await;
}

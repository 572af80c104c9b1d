//! Job drivers: lease a job, run the encoder's DAG for it with the queue executor, report
//! progress, and put the outcome on the completion queue. A driver that dies loses its lease;
//! the job is redelivered and the encoder's record of finished tasks lets the new driver
//! resume instead of starting over.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

use encoder::event::{Event, EventSink};
use encoder::jit::Materialise;
use encoder::job::{JobReport, JobRequest};
use encoder::media::Limits;
use tokio::sync::{Semaphore, mpsc, watch};

use super::executor::QueueExecutor;
use super::{Completion, JOBS, JobMessage, Outcome, publish_ref, source_ref};
use crate::app::App;
use crate::cache;
use crate::error::Result;
use crate::meta::ondemand::Pin;
use crate::meta::{self, JobState, Rendition, StateChange, VideoState};
use crate::notify::VideoEvent;
use crate::queue::{COMPLETIONS, Lease, Message};

/// Jobs one origin process drives at once.
const CONCURRENT_JOBS: usize = 4;

/// Leases and drives jobs until `shutdown`.
pub async fn run(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_JOBS));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("semaphore open"),
            _ = shutdown.changed() => return,
        };
        let msg = tokio::select! {
            m = app.queue.receive(JOBS, app.config.task_lease, Duration::from_secs(1)) => m,
            _ = shutdown.changed() => return,
        };
        match msg {
            Ok(Some(msg)) => {
                let app = app.clone();
                tokio::spawn(async move {
                    handle(app, msg).await;
                    drop(permit);
                });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "job queue unavailable");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn handle(app: Arc<App>, msg: Message) {
    let job: JobMessage = match serde_json::from_slice(&msg.payload) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(error = %e, "undecodable job dropped");
            let _ = msg.lease.ack().await;
            return;
        }
    };
    let span = tracing::info_span!("job", job = %job.job, video = %job.video, delivery = msg.deliveries);
    drive_and_settle(&app, msg, job).instrument(span).await;
}

async fn drive_and_settle(app: &Arc<App>, msg: Message, job: JobMessage) {
    app.metrics.jobs_running.inc();
    let outcome = with_renewal(app, msg.lease.as_ref(), drive(app, &job)).await;
    app.metrics.jobs_running.dec();
    let settled = match outcome {
        Ok(outcome) => {
            let completion = Completion { job: job.job.clone(), video: job.video.clone(), outcome };
            match app.queue.publish(COMPLETIONS, &serde_json::to_vec(&completion).unwrap_or_default()).await {
                Ok(()) => msg.lease.ack().await,
                Err(e) => {
                    tracing::warn!(error = %e, "completion not queued; the job will run again");
                    msg.lease.nack(Duration::from_secs(5)).await
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "job interrupted by an infrastructure error; it will run again");
            msg.lease.nack(Duration::from_secs(10)).await
        }
    };
    if let Err(e) = settled {
        tracing::warn!(error = %e, "job message not settled");
    }
}

/// Runs `work` while renewing `lease` every third of its period, so the lease only runs out
/// when this process stops.
pub(crate) async fn with_renewal<F: Future>(app: &App, lease: &dyn Lease, work: F) -> F::Output {
    tokio::pin!(work);
    let mut tick = tokio::time::interval(app.config.task_lease / 3);
    tick.tick().await;
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => {
                if let Err(e) = lease.extend().await {
                    tracing::warn!(error = %e, "lease not renewed");
                }
            }
        }
    }
}

async fn drive(app: &Arc<App>, job: &JobMessage) -> Result<Outcome> {
    let Some(video) = app.meta.video(&job.video).await? else {
        return Ok(Outcome::Failed { code: "video_missing".into(), message: "the video no longer exists".into() });
    };
    if video.state == VideoState::Deleted {
        return Ok(Outcome::Failed { code: "deleted".into(), message: "the video was taken down".into() });
    }
    app.meta.set_job_state(&job.job, JobState::Running, None, meta::now()).await?;
    set_progress(app, &job.video, 0.0).await?;
    if app.keys.content_key(app.meta.as_ref(), &job.video).await?.is_none() {
        app.keys.create(app.meta.as_ref(), &job.video).await?;
    }
    let request = JobRequest {
        id: job.job.clone(),
        source: PathBuf::from(source_ref(&job.video)),
        out_dir: PathBuf::from(publish_ref(&job.video)),
        pipeline: app.pipeline.clone(),
        // The key stays in the key service: each packaging worker fetches it for itself.
        encryption: Some(super::packaging_encryption(&app.config, &job.video)),
        work_dir: app.scratch(&job.job),
        limits: Limits { max_bytes: app.config.max_upload_bytes, ..Limits::default() },
        keep_work_dir: false,
        materialise: materialise(app, &job.video).await?,
        on_demand: true,
    };
    let executor = QueueExecutor::start(app.clone(), &job.job);
    let (sink, progress) = progress_sink(app.clone(), job.video.clone());
    let result = encoder::job::run(request, executor.clone(), sink).await;
    executor.close().await;
    progress.abort();
    Ok(outcome(result))
}

/// Which rungs this upload encodes now: the floor, unless just-in-time encoding is off or
/// an operator pinned the video to its full ladder.
async fn materialise(app: &App, video: &str) -> Result<Materialise> {
    let od = &app.config.on_demand;
    let pinned_full = app.ondemand.pin(video).await? == Some(Pin::Full);
    Ok(if od.enabled && !pinned_full { Materialise::Floor { max_class: od.floor_class } } else { Materialise::All })
}

fn outcome(result: encoder::Result<JobReport>) -> Outcome {
    match result {
        Ok(report) => Outcome::Ready {
            duration: report.summary.duration,
            renditions: report
                .summary
                .renditions
                .iter()
                .map(|r| Rendition {
                    name: r.name.clone(),
                    codecs: r.codecs.clone(),
                    width: r.width,
                    height: r.height,
                    bitrate: r.average_bitrate,
                    on_demand: r.on_demand,
                    state: None,
                })
                .collect(),
            segments: report.summary.segments as u64,
        },
        Err(e) => Outcome::Failed { code: e.code().to_owned(), message: e.to_string() },
    }
}

/// Turns encoder events into at most one progress update per second.
fn progress_sink(app: Arc<App>, video: String) -> (EventSink, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let task = tokio::spawn(async move {
        let (mut total, mut done) = (0usize, 0usize);
        let mut last = Instant::now();
        while let Some(e) = rx.recv().await {
            match e {
                Event::NodeQueued { tasks, .. } => total += tasks,
                Event::TaskFinished { .. } => done += 1,
                _ => continue,
            }
            if last.elapsed() >= Duration::from_secs(1) && total > 0 {
                last = Instant::now();
                let _ = set_progress(&app, &video, done as f64 / total as f64).await;
            }
        }
    });
    let sink: EventSink = Arc::new(move |e: &Event| {
        let _ = tx.send(e.clone());
    });
    (sink, task)
}

async fn set_progress(app: &App, video: &str, progress: f64) -> Result<()> {
    // A takedown during processing must not be undone by a progress report.
    if app.meta.video(video).await?.is_none_or(|v| v.state == VideoState::Deleted) {
        return Ok(());
    }
    let change = StateChange { state: VideoState::Processing, progress, error: None, result: None, now: meta::now() };
    if let Some(v) = app.meta.change_state(video, &change).await? {
        cache::forget_video(app.cache.as_ref(), video).await;
        app.hub.publish(VideoEvent::of(&v));
    }
    Ok(())
}

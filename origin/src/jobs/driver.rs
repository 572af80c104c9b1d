//! Job drivers: lease a job, run the encoder's DAG for it with the queue executor, report
//! progress, and put the outcome on the completion queue. A driver that dies loses its lease;
//! the job is redelivered and the encoder's record of finished tasks lets the new driver
//! resume instead of starting over.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

use async_trait::async_trait;
use encoder::event::{Event, EventSink};
use encoder::jit::Materialise;
use encoder::job::{JobReport, JobRequest};
use encoder::media::Limits;
use tokio::sync::{mpsc, watch};

use super::executor::QueueExecutor;
use super::{Completion, JOBS, JobMessage, Outcome, publish_ref, source_ref};
use crate::app::App;
use crate::error::Result;
use crate::lifecycle::JobEvent;
use crate::lifecycle::apply;
use crate::meta::ondemand::Pin;
use crate::meta::{JobState, Rendition, VideoState};
use crate::queue::COMPLETIONS;
use crate::queue::consume::{Backoff, Consumer, Delivery, Handler, Verdict, consume};

/// How jobs are consumed: a few at a time per process, each leased for as long as its DAG
/// runs. A job whose driver fails for an infrastructure reason is retried with backoff; one
/// that was delivered `MAX_DELIVERIES` times (its driver kept dying, or kept failing) ends
/// `failed` with the dead letter's code instead of coming back for ever.
pub fn consumer(app: &App) -> Consumer {
    Consumer {
        name: "jobs",
        topics: vec![JOBS.to_owned()],
        lease: app.config.task_lease,
        concurrency: CONCURRENT_JOBS,
        max_deliveries: MAX_DELIVERIES,
        backoff: Backoff { first: Duration::from_secs(5), max: Duration::from_secs(300) },
    }
}

/// Jobs one origin process drives at once.
const CONCURRENT_JOBS: usize = 4;

/// Deliveries of one job before it fails for good.
const MAX_DELIVERIES: u32 = 5;

/// Leases and drives jobs until `shutdown`.
pub async fn run(app: Arc<App>, shutdown: watch::Receiver<bool>) {
    let outcomes = app.metrics.queue_messages.clone();
    consume(app.queue.clone(), consumer(&app), Arc::new(Drivers(app)), outcomes, shutdown).await;
}

/// Drives jobs.
pub struct Drivers(pub Arc<App>);

#[async_trait]
impl Handler for Drivers {
    type Message = JobMessage;

    async fn handle(&self, job: &JobMessage, delivery: Delivery) -> Verdict {
        let span = tracing::info_span!("job", job = %job.job, video = %job.video, delivery = delivery.deliveries);
        self.drive_and_report(job, delivery.deliveries).instrument(span).await
    }

    async fn dead(&self, job: &JobMessage, _: Delivery, code: &str, reason: &str) -> Result<()> {
        report(&self.0, job, Outcome::Failed { code: code.to_owned(), message: reason.to_owned() }).await
    }
}

impl Drivers {
    async fn drive_and_report(&self, job: &JobMessage, deliveries: u32) -> Verdict {
        let app = &self.0;
        if deliveries == 1 && app.meta.job(&job.job).await.is_ok_and(|j| j.is_some_and(|j| j.state != JobState::Queued))
        {
            // A second copy of a job message (`jobs::publish_stranded`), not a redelivery: the
            // job runs, or ran, from the first.
            tracing::info!("second copy of a job dropped");
            return Verdict::Ack;
        }
        let running = Running::start(&app.metrics.jobs_running);
        let outcome = drive(app, job).await;
        drop(running);
        match outcome {
            Ok(Some(outcome)) => match report(app, job, outcome).await {
                Ok(()) => Verdict::Ack,
                Err(e) => Verdict::Retry(format!("completion not queued: {e}")),
            },
            Ok(None) => Verdict::Ack,
            Err(e) => Verdict::Retry(format!("job interrupted by an infrastructure error: {e}")),
        }
    }
}

/// Counts a job as running until dropped, however its driving ends (a shutdown included).
struct Running(prometheus_client::metrics::gauge::Gauge);

impl Running {
    fn start(gauge: &prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Puts a job's outcome on the completion queue, where the one completion handler applies it.
async fn report(app: &App, job: &JobMessage, outcome: Outcome) -> Result<()> {
    let completion = Completion { job: job.job.clone(), video: job.video.clone(), outcome };
    app.queue.publish(COMPLETIONS, &serde_json::to_vec(&completion)?).await
}

/// Runs a job's DAG; `None` when there is nothing to run (its job already ended).
async fn drive(app: &Arc<App>, job: &JobMessage) -> Result<Option<Outcome>> {
    let Some(video) = app.meta.video(&job.video).await? else {
        return Ok(Some(Outcome::Failed {
            code: "video_missing".into(),
            message: "the video no longer exists".into(),
        }));
    };
    if video.state == VideoState::Deleted {
        return Ok(Some(Outcome::Failed { code: "deleted".into(), message: "the video was taken down".into() }));
    }
    if !apply::job(app, &job.job, JobEvent::Start, None).await? {
        // A redelivered message of a job that has ended: its completion was applied already.
        tracing::info!("job already ended");
        return Ok(None);
    }
    set_progress(app, &job.video, 0.0).await?;
    super::original::assemble(app, &job.video).await?;
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
    Ok(Some(outcome(result)))
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

/// A takedown during processing is never undone by a progress report: the lifecycle refuses it.
async fn set_progress(app: &App, video: &str, progress: f64) -> Result<()> {
    apply::progress(app, video, progress).await.map(drop)
}

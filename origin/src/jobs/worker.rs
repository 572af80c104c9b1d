//! Workers: lease a task from the queue, run it (staging files as needed), send the result
//! to the job's driver, and only then acknowledge. Run in-process by `origin serve` and as
//! `origin worker` processes to scale out; a killed worker's task is redelivered elsewhere.

use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use async_trait::async_trait;
use encoder::task::{FailureClass, TaskFailure, TaskKind, TaskSpec};
use serde::Deserialize;
use tokio::sync::watch;

use super::{TaskResult, results_topic, task_topic};
use crate::app::App;
use crate::error::Result;
use crate::meta::JobState;
use crate::ondemand::task::{Reason, SegmentTask};
use crate::ondemand::workers::{Worker, process_cpu_seconds};
use crate::queue::consume::{Backoff, Consumer, Delivery, Handler, Verdict, consume};

/// Deliveries of one task before it is dead-lettered (and its job or viewer told).
const MAX_DELIVERIES: u32 = 5;

/// Runs one worker slot until `shutdown`. An encode slot takes, highest priority first, a
/// viewer's waiting segment, look-ahead segments, new uploads' tasks, then promotions; the
/// light slot takes the other task kinds.
pub async fn run(app: Arc<App>, kind: TaskKind, cores: usize, worker: Arc<Worker>, shutdown: watch::Receiver<bool>) {
    let topics: Vec<&str> = if kind == TaskKind::Encode {
        vec![Reason::Viewer.topic(), Reason::Lookahead.topic(), task_topic(kind), Reason::Promotion.topic()]
    } else {
        vec![task_topic(kind)]
    };
    let consumer = Consumer {
        name: if kind == TaskKind::Encode { "tasks.encode" } else { "tasks.light" },
        topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        lease: app.config.task_lease,
        concurrency: 1,
        // On-demand tasks come back when a worker passes one on (`avoid`), so allow more.
        max_deliveries: MAX_DELIVERIES * 4,
        backoff: Backoff { first: Duration::from_secs(2), max: Duration::from_secs(60) },
    };
    let outcomes = app.metrics.queue_messages.clone();
    let upload_topic = topics.iter().position(|t| *t == task_topic(kind)).unwrap_or(0);
    let slot = Slot { app: app.clone(), cores, worker, upload_topic };
    consume(app.queue.clone(), consumer, Arc::new(slot), outcomes, shutdown).await;
}

/// One worker slot: upload tasks from the encoder's DAG, and on-demand segment tasks.
struct Slot {
    app: Arc<App>,
    cores: usize,
    worker: Arc<Worker>,
    /// Which of the slot's topics carries upload tasks.
    upload_topic: usize,
}

/// What a slot's message is, by the topic it came from.
enum Work {
    /// A task of an upload's DAG.
    Upload(Box<TaskSpec>),
    /// Segments encoded on demand.
    Segments(SegmentTask),
}

impl Slot {
    fn work(&self, message: &serde_json::Value, delivery: Delivery) -> serde_json::Result<Work> {
        if delivery.topic == self.upload_topic {
            TaskSpec::deserialize(message).map(|spec| Work::Upload(Box::new(spec)))
        } else {
            SegmentTask::deserialize(message).map(Work::Segments)
        }
    }
}

#[async_trait]
impl Handler for Slot {
    type Message = serde_json::Value;

    async fn handle(&self, message: &serde_json::Value, delivery: Delivery) -> Verdict {
        match self.work(message, delivery) {
            Ok(Work::Segments(task)) => crate::ondemand::work::run(&self.app, &task, &self.worker, self.cores).await,
            Ok(Work::Upload(spec)) => {
                let span = tracing::info_span!("task", job = %spec.job, task = %spec.id, attempt = spec.attempt, delivery = delivery.deliveries);
                run_and_reply(&self.app, *spec, self.cores, &self.worker).instrument(span).await
            }
            Err(e) => Verdict::Dead { code: "undecodable".into(), message: e.to_string() },
        }
    }

    async fn dead(&self, message: &serde_json::Value, delivery: Delivery, code: &str, reason: &str) -> Result<()> {
        match self.work(message, delivery) {
            Ok(Work::Segments(task)) => crate::ondemand::work::abandon(&self.app, &task, code, reason).await,
            Ok(Work::Upload(spec)) => {
                // The driver waits for this attempt's answer: it gets a failure that stops the job.
                let failure =
                    TaskFailure { code: code.to_owned(), message: reason.to_owned(), class: FailureClass::Fatal };
                let result = TaskResult { task: spec.id.clone(), attempt: spec.attempt, result: Err(failure) };
                reply(&self.app, &spec.job, result).await
            }
            Err(_) => Ok(()),
        }
    }
}

async fn run_and_reply(app: &Arc<App>, spec: TaskSpec, cores: usize, worker: &Arc<Worker>) -> Verdict {
    let _busy = worker.busy();
    let (task, attempt, job, kind) = (spec.id.clone(), spec.attempt, spec.job.clone(), spec.kind());
    // A redelivered copy of a task whose job has already ended would only recreate its
    // temporary files; nobody waits for its result.
    if let Ok(Some(j)) = app.meta.job(&job).await
        && matches!(j.state, JobState::Done | JobState::Failed)
    {
        tracing::info!("task of a finished job dropped");
        return Verdict::Ack;
    }
    let cpu_before = process_cpu_seconds();
    let result = super::staging::run(app.clone(), spec, cores).await;
    let running = worker.running();
    app.metrics.on_demand.cpu("upload", (process_cpu_seconds() - cpu_before) / f64::from(running.max(1)));
    let outcome = if result.is_ok() { "ok" } else { "failed" };
    app.metrics.tasks.get_or_create(&vec![("kind", kind.as_str().to_owned()), ("outcome", outcome.to_owned())]).inc();
    if let Err(f) = &result {
        tracing::warn!(code = %f.code, message = %f.message, "task failed");
    }
    // Acknowledged only once the driver can see the result; otherwise it runs again.
    match reply(app, &job, TaskResult { task, attempt, result }).await {
        Ok(()) => Verdict::Ack,
        Err(e) => Verdict::Retry(format!("result not sent: {e}")),
    }
}

async fn reply(app: &App, job: &str, result: TaskResult) -> Result<()> {
    app.queue.publish(&results_topic(job), &serde_json::to_vec(&result)?).await
}

/// Removes this machine's scratch folders of jobs that have ended (with a shared scratch the
/// job's driver removes them itself; otherwise each worker keeps staged copies until then).
pub async fn sweep_scratch(app: &App, scratch: &std::path::Path) -> Result<usize> {
    let mut removed = 0;
    let Ok(mut entries) = tokio::fs::read_dir(scratch).await else { return Ok(0) };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let job = entry.file_name().to_string_lossy().into_owned();
        let ended = match app.meta.job(&job).await? {
            Some(j) => matches!(j.state, JobState::Done | JobState::Failed),
            None => true,
        };
        if ended && tokio::fs::remove_dir_all(entry.path()).await.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Sweeps scratch every few minutes until `shutdown`.
pub async fn janitor(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let scratch = app.config.data_dir.join("scratch");
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = sweep_scratch(&app, &scratch).await {
                    tracing::warn!(error = %e, "scratch sweep failed");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

//! Workers: lease a task from the queue, run it (staging files as needed), send the result
//! to the job's driver, and only then acknowledge. Run in-process by `origin serve` and as
//! `origin worker` processes to scale out; a killed worker's task is redelivered elsewhere.

use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use encoder::task::{TaskKind, TaskSpec};
use tokio::sync::watch;

use super::driver::with_renewal;
use super::{TaskResult, results_topic, task_topic};
use crate::app::App;
use crate::meta::JobState;
use crate::ondemand::task::Reason;
use crate::ondemand::workers::{Worker, process_cpu_seconds};
use crate::queue::Message;

/// Runs one worker slot until `shutdown`. An encode slot takes, highest priority first, a
/// viewer's waiting segment, look-ahead segments, new uploads' tasks, then promotions; the
/// light slot takes the other task kinds.
pub async fn run(
    app: Arc<App>,
    kind: TaskKind,
    cores: usize,
    worker: Arc<Worker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let topics: Vec<&str> = if kind == TaskKind::Encode {
        vec![Reason::Viewer.topic(), Reason::Lookahead.topic(), task_topic(kind), Reason::Promotion.topic()]
    } else {
        vec![task_topic(kind)]
    };
    loop {
        let msg = tokio::select! {
            m = app.queue.receive_first(&topics, app.config.task_lease, Duration::from_secs(1)) => m,
            _ = shutdown.changed() => return,
        };
        match msg {
            Ok(Some((i, msg))) if topics[i] == task_topic(kind) => process(&app, msg, cores, &worker).await,
            Ok(Some((_, msg))) => crate::ondemand::work::run(&app, msg, &worker, cores).await,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, ?topics, "task queue unavailable");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn process(app: &Arc<App>, msg: Message, cores: usize, worker: &Arc<Worker>) {
    let _busy = worker.busy();
    let spec: TaskSpec = match serde_json::from_slice(&msg.payload) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "undecodable task dropped");
            let _ = msg.lease.ack().await;
            return;
        }
    };
    let span = tracing::info_span!("task", job = %spec.job, task = %spec.id, attempt = spec.attempt, delivery = msg.deliveries);
    run_and_reply(app, msg, spec, cores, worker).instrument(span).await;
}

async fn run_and_reply(app: &Arc<App>, msg: Message, spec: TaskSpec, cores: usize, worker: &Worker) {
    let (task, attempt, job, kind) = (spec.id.clone(), spec.attempt, spec.job.clone(), spec.kind());
    // A redelivered copy of a task whose job has already ended would only recreate its
    // temporary files; nobody waits for its result.
    if let Ok(Some(j)) = app.meta.job(&job).await
        && matches!(j.state, JobState::Done | JobState::Failed)
    {
        tracing::info!("task of a finished job dropped");
        let _ = msg.lease.ack().await;
        return;
    }
    let cpu_before = process_cpu_seconds();
    let result = with_renewal(app, msg.lease.as_ref(), super::staging::run(app.clone(), spec, cores)).await;
    let running = worker.running();
    app.metrics.on_demand.cpu("upload", (process_cpu_seconds() - cpu_before) / f64::from(running.max(1)));
    let outcome = if result.is_ok() { "ok" } else { "failed" };
    app.metrics.tasks.get_or_create(&vec![("kind", kind.as_str().to_owned()), ("outcome", outcome.to_owned())]).inc();
    if let Err(f) = &result {
        tracing::warn!(code = %f.code, message = %f.message, "task failed");
    }
    let reply = TaskResult { task, attempt, result };
    let payload = serde_json::to_vec(&reply).unwrap_or_default();
    // Acknowledge only after the driver can see the result; otherwise run it again.
    let settled = match app.queue.publish(&results_topic(&job), &payload).await {
        Ok(()) => msg.lease.ack().await,
        Err(e) => {
            tracing::warn!(error = %e, "result not sent; the task will run again");
            msg.lease.nack(Duration::from_secs(2)).await
        }
    };
    if let Err(e) = settled {
        tracing::warn!(error = %e, "task message not settled");
    }
}

/// Removes this machine's scratch folders of jobs that have ended (with a shared scratch the
/// job's driver removes them itself; otherwise each worker keeps staged copies until then).
pub async fn sweep_scratch(app: &App, scratch: &std::path::Path) -> crate::Result<usize> {
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

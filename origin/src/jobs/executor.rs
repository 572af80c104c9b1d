//! The encoder's `Executor` over the queue: the DAG code runs unchanged in the driver while
//! its tasks travel to whichever worker leases them, and results come back on the job's own
//! results topic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use encoder::executor::{BoxFuture, Executor};
use encoder::resource::WorkerSlot;
use encoder::task::{FailureClass, TaskContext, TaskFailure, TaskKind, TaskOutput, TaskSpec};
use tokio::sync::{oneshot, watch};

use super::{TaskResult, results_topic, task_topic};
use crate::app::App;
use crate::queue::consume::{Backoff, Consumer, Delivery, Handler, Verdict, consume};

type Waiters = Arc<Mutex<HashMap<(String, u32), oneshot::Sender<Result<TaskOutput, TaskFailure>>>>>;

/// Tasks in flight per job: how many of its chunks may be encoding at once anywhere.
const ENCODE_SLOTS: usize = 6;
/// Other tasks in flight per job.
const LIGHT_SLOTS: usize = 3;
/// A task whose result never comes (every worker gone for this long) fails, and is retried.
const TASK_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

/// Publishes tasks, routes results back.
pub struct QueueExecutor {
    app: Arc<App>,
    job: String,
    waiting: Waiters,
    listener: tokio::task::JoinHandle<()>,
    /// Stops the listener.
    stop: watch::Sender<bool>,
}

impl Drop for QueueExecutor {
    fn drop(&mut self) {
        // A job interrupted without `close` (its driver's shutdown) leaves no listener behind.
        self.listener.abort();
    }
}

impl QueueExecutor {
    /// Starts listening for the job's results.
    pub fn start(app: Arc<App>, job: &str) -> Arc<Self> {
        let waiting: Waiters = Arc::default();
        let (stop, stopped) = watch::channel(false);
        let listener = tokio::spawn(listen(app.clone(), results_topic(job), waiting.clone(), stopped));
        Arc::new(Self { app, job: job.to_owned(), waiting, listener, stop })
    }

    /// Stops listening and drops the job's results topic.
    pub async fn close(&self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.app.queue.delete_topic(&results_topic(&self.job)).await {
            tracing::debug!(error = %e, "results topic not removed");
        }
    }
}

/// Routes each result to the task attempt waiting for it.
struct Results(Waiters);

#[async_trait]
impl Handler for Results {
    type Message = TaskResult;

    async fn handle(&self, r: &TaskResult, _: Delivery) -> Verdict {
        // A late answer to an attempt nobody waits for any more is dropped.
        if let Some(tx) = self.0.lock().expect("waiters").remove(&(r.task.clone(), r.attempt)) {
            let _ = tx.send(r.result.clone());
        }
        Verdict::Ack
    }
}

async fn listen(app: Arc<App>, topic: String, waiting: Waiters, shutdown: watch::Receiver<bool>) {
    let consumer = Consumer {
        name: "results",
        topics: vec![topic],
        lease: Duration::from_secs(30),
        concurrency: 1,
        max_deliveries: 5,
        backoff: Backoff { first: Duration::from_secs(1), max: Duration::from_secs(10) },
    };
    let outcomes = app.metrics.queue_messages.clone();
    consume(app.queue.clone(), consumer, Arc::new(Results(waiting)), outcomes, shutdown).await;
}

impl Executor for QueueExecutor {
    fn workers(&self) -> Vec<WorkerSlot> {
        let light: Vec<TaskKind> = TaskKind::ALL.into_iter().filter(|&k| k != TaskKind::Encode).collect();
        (0..ENCODE_SLOTS)
            .map(|i| WorkerSlot { id: i, name: format!("queue-encode-{i}"), kinds: vec![TaskKind::Encode] })
            .chain((0..LIGHT_SLOTS).map(|i| WorkerSlot {
                id: ENCODE_SLOTS + i,
                name: format!("queue-light-{i}"),
                kinds: light.clone(),
            }))
            .collect()
    }

    fn execute(
        &self,
        _worker: &WorkerSlot,
        task: TaskSpec,
        _ctx: TaskContext,
    ) -> BoxFuture<Result<TaskOutput, TaskFailure>> {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().expect("waiters").insert((task.id.clone(), task.attempt), tx);
        let app = self.app.clone();
        let waiting = self.waiting.clone();
        Box::pin(async move {
            let key = (task.id.clone(), task.attempt);
            let payload =
                serde_json::to_vec(&task).map_err(|e| failure("internal", &e.to_string(), FailureClass::Fatal))?;
            if let Err(e) = app.queue.publish(task_topic(task.kind()), &payload).await {
                waiting.lock().expect("waiters").remove(&key);
                return Err(failure("queue_unavailable", &e.to_string(), FailureClass::Retryable));
            }
            match tokio::time::timeout(TASK_TIMEOUT, rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(failure("driver_stopped", "the result listener stopped", FailureClass::Retryable)),
                Err(_) => {
                    waiting.lock().expect("waiters").remove(&key);
                    Err(failure("task_timeout", "no worker answered in time", FailureClass::Retryable))
                }
            }
        })
    }
}

fn failure(code: &str, message: &str, class: FailureClass) -> TaskFailure {
    TaskFailure { code: code.to_owned(), message: message.to_owned(), class }
}

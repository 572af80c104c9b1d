//! Job progress events: what the job runner reports while it works. The CLI turns them into
//! progress bars or JSON lines; the origin will turn them into job-state updates.

use std::sync::Arc;

use serde::Serialize;

use crate::task::{PackageSummary, TaskKind};

/// One thing that happened in a job.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The DAG is planned.
    JobStarted {
        /// Job id.
        job: String,
        /// Pipeline name.
        pipeline: String,
        /// Node ids per stage.
        stages: Vec<Vec<String>>,
        /// Worker names.
        workers: Vec<String>,
    },
    /// A node's inputs are done and its tasks are queued.
    NodeQueued {
        /// Node id.
        node: String,
        /// Tasks it expanded to.
        tasks: usize,
    },
    /// A worker took a task.
    TaskStarted {
        /// Task id.
        task: String,
        /// Kind.
        kind: TaskKind,
        /// Attempt number, from 1.
        attempt: u32,
        /// Worker name.
        worker: String,
        /// Seconds since the job started.
        at: f64,
    },
    /// Periodic progress of a running task.
    TaskProgress {
        /// Task id.
        task: String,
        /// Units done.
        done: u64,
        /// Units in all (0 when unknown).
        total: u64,
    },
    /// A task succeeded.
    TaskFinished {
        /// Task id.
        task: String,
        /// Kind.
        kind: TaskKind,
        /// Attempt that succeeded.
        attempt: u32,
        /// Worker name ("cache" when a previous run had finished it).
        worker: String,
        /// Wall seconds it took.
        seconds: f64,
        /// Seconds since the job started.
        at: f64,
    },
    /// A task failed and will run again.
    TaskRetried {
        /// Task id.
        task: String,
        /// The attempt that failed.
        attempt: u32,
        /// Delay before the next attempt.
        backoff_ms: u64,
        /// Failure code.
        code: String,
        /// Failure message.
        message: String,
    },
    /// A task failed for good.
    TaskFailed {
        /// Task id.
        task: String,
        /// The attempt that failed.
        attempt: u32,
        /// Failure code.
        code: String,
        /// Failure message.
        message: String,
    },
    /// The output is complete.
    JobFinished {
        /// Job id.
        job: String,
        /// Wall seconds.
        seconds: f64,
        /// Output folder.
        output: String,
        /// What was written.
        summary: PackageSummary,
    },
    /// The job stopped.
    JobFailed {
        /// Job id.
        job: String,
        /// Wall seconds.
        seconds: f64,
        /// Error code.
        code: String,
        /// Error message.
        message: String,
        /// Process exit status the CLI uses.
        exit_status: i32,
    },
}

/// Where events go.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

/// A sink that drops everything.
pub fn discard() -> EventSink {
    Arc::new(|_| {})
}

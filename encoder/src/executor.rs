//! Executors run tasks on workers. The job runner only sees this trait, so the in-process
//! thread pool below and a queue-backed remote pool are interchangeable.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::mpsc;

use crate::resource::WorkerSlot;
use crate::task::{FailureClass, TaskContext, TaskFailure, TaskKind, TaskOutput, TaskSpec};

/// A boxed future that can cross threads.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Runs tasks somewhere.
pub trait Executor: Send + Sync {
    /// The worker slots this executor offers; the resource manager assigns tasks to them.
    fn workers(&self) -> Vec<WorkerSlot>;

    /// Runs `task` on the given (free) worker slot.
    fn execute(
        &self,
        worker: &WorkerSlot,
        task: TaskSpec,
        ctx: TaskContext,
    ) -> BoxFuture<Result<TaskOutput, TaskFailure>>;
}

/// The function a local worker calls for each task. Blocking; runs on the worker's thread.
pub type Runner = Arc<dyn Fn(&TaskSpec, &TaskContext) -> Result<TaskOutput, TaskFailure> + Send + Sync>;

struct Assignment {
    task: TaskSpec,
    ctx: TaskContext,
    reply: tokio::sync::oneshot::Sender<Result<TaskOutput, TaskFailure>>,
}

/// Dedicated OS threads, one per worker slot, so FFmpeg never runs on the async runtime.
pub struct LocalExecutor {
    slots: Vec<WorkerSlot>,
    senders: Vec<mpsc::Sender<Assignment>>,
    cores_per_encode: usize,
}

impl LocalExecutor {
    /// `media` workers for encoding plus `light` workers (at least one) for everything else,
    /// so short tasks never hold up an encode slot and never wait behind one.
    pub fn new(media: usize, light: usize, runner: Runner) -> Self {
        let light_kinds: Vec<TaskKind> = TaskKind::ALL.into_iter().filter(|&k| k != TaskKind::Encode).collect();
        let mut slots = Vec::new();
        for i in 0..media.max(1) {
            slots.push(WorkerSlot { id: slots.len(), name: format!("media-{i}"), kinds: vec![TaskKind::Encode] });
        }
        for i in 0..light.max(1) {
            slots.push(WorkerSlot { id: slots.len(), name: format!("light-{i}"), kinds: light_kinds.clone() });
        }
        let senders = slots.iter().map(|s| spawn_worker(&s.name, runner.clone())).collect();
        let cores = machine_cores();
        Self { slots, senders, cores_per_encode: (cores / media.max(1)).max(1) }
    }

    /// Sized to this machine: one encode worker per two cores (each encode runs a thread
    /// per rung, so two cores per chunk keep them busy without holding twice the encoder
    /// memory), and one light worker.
    pub fn for_machine(runner: Runner) -> Self {
        Self::new((machine_cores() / 2).max(1), 1, runner)
    }
}

fn machine_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn spawn_worker(name: &str, runner: Runner) -> mpsc::Sender<Assignment> {
    let (tx, rx) = mpsc::channel::<Assignment>();
    std::thread::Builder::new()
        .name(format!("worker-{name}"))
        .spawn(move || {
            for a in rx {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner(&a.task, &a.ctx)))
                    .unwrap_or_else(|panic| {
                        let message = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                            .unwrap_or_else(|| "unknown panic".into());
                        Err(TaskFailure { code: "worker_panicked".into(), message, class: FailureClass::Retryable })
                    });
                let _ = a.reply.send(result);
            }
        })
        .expect("spawn worker thread");
    tx
}

impl Executor for LocalExecutor {
    fn workers(&self) -> Vec<WorkerSlot> {
        self.slots.clone()
    }

    fn execute(
        &self,
        worker: &WorkerSlot,
        task: TaskSpec,
        ctx: TaskContext,
    ) -> BoxFuture<Result<TaskOutput, TaskFailure>> {
        ctx.set_cores(if worker.kinds.contains(&TaskKind::Encode) { self.cores_per_encode } else { 1 });
        let (reply, rx) = tokio::sync::oneshot::channel();
        let sent = self.senders[worker.id].send(Assignment { task, ctx, reply });
        Box::pin(async move {
            if sent.is_err() {
                return Err(lost_worker());
            }
            rx.await.unwrap_or_else(|_| Err(lost_worker()))
        })
    }
}

fn lost_worker() -> TaskFailure {
    TaskFailure {
        code: "worker_lost".into(),
        message: "the worker thread stopped before answering".into(),
        class: FailureClass::Retryable,
    }
}

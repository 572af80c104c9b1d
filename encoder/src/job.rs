//! The job runner: the DAG scheduler's IO half. It walks the pipeline stage by stage as
//! inputs become ready, hands tasks to the resource manager, dispatches the pairs it picks
//! to the executor, retries failures with backoff, records finished tasks so a restarted
//! job resumes where it stopped, and cleans the temporary storage at the end.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::dag;
use crate::error::{Error, Result};
use crate::event::{Event, EventSink};
use crate::executor::Executor;
use crate::media::{Limits, MediaInfo};
use crate::pipeline::Pipeline;
use crate::plan::{self, JobContext, NodeOutput};
use crate::resource::{ResourceManager, WorkerSlot};
use crate::store::Store;
use crate::task::{Encryption, FailureClass, PackageSummary, TaskContext, TaskFailure, TaskKind, TaskOutput, TaskSpec};

/// Everything a job needs.
#[derive(Debug, Clone)]
pub struct JobRequest {
    /// Stable id: the same id finds the same temporary storage after a restart.
    pub id: String,
    /// Source file.
    pub source: PathBuf,
    /// Output folder.
    pub out_dir: PathBuf,
    /// The DAG.
    pub pipeline: Pipeline,
    /// AES-128 settings.
    pub encryption: Option<Encryption>,
    /// Temporary storage root for this job.
    pub work_dir: PathBuf,
    /// Accepted inputs.
    pub limits: Limits,
    /// Keep temporary storage after the job (for debugging).
    pub keep_work_dir: bool,
    /// Which rungs are encoded now; the rest are planned for later.
    pub materialise: crate::jit::Materialise,
    /// Leave an on-demand plan so any segment can be encoded later.
    pub on_demand: bool,
}

/// What a finished job reports.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// The inspected source.
    pub media: MediaInfo,
    /// The packaged output.
    pub summary: PackageSummary,
    /// Wall seconds.
    pub seconds: f64,
    /// Tasks run (not counting retries).
    pub tasks: usize,
    /// Failed attempts that were retried.
    pub retries: u32,
}

enum NodeState {
    Pending,
    Running { tasks: Vec<TaskSpec>, outputs: HashMap<String, TaskOutput> },
    Done,
}

struct Finished {
    task: TaskSpec,
    worker: WorkerSlot,
    started: Instant,
    result: Result<TaskOutput, TaskFailure>,
}

enum Completion {
    Finished(Box<Finished>),
    RetryDue(Box<TaskSpec>),
}

/// Runs a job to completion or to its first unrecoverable error.
pub async fn run(req: JobRequest, executor: Arc<dyn Executor>, events: EventSink) -> Result<JobReport> {
    let started = Instant::now();
    let store = Store::open(&req.work_dir)?;
    let mut runner = Runner::new(&req, executor, events.clone(), store.clone(), started);
    let outcome = runner.drive().await;
    runner.cancel_running().await;
    if !req.keep_work_dir
        && let Err(e) = store.remove()
    {
        tracing::warn!(error = %e, "temporary storage not removed");
    }
    let seconds = started.elapsed().as_secs_f64();
    match outcome {
        Ok(summary) => {
            let media = runner.media().cloned().ok_or_else(|| Error::Internal("no media info".into()))?;
            events(&Event::JobFinished {
                job: req.id.clone(),
                seconds,
                output: req.out_dir.display().to_string(),
                summary: summary.clone(),
            });
            Ok(JobReport { media, summary, seconds, tasks: runner.tasks_run, retries: runner.retries })
        }
        Err(e) => {
            events(&Event::JobFailed {
                job: req.id.clone(),
                seconds,
                code: e.code().to_owned(),
                message: e.to_string(),
                exit_status: e.exit_status(),
            });
            Err(e)
        }
    }
}

struct Runner<'a> {
    req: &'a JobRequest,
    ctx: JobContext,
    executor: Arc<dyn Executor>,
    events: EventSink,
    store: Store,
    started: Instant,
    states: Vec<NodeState>,
    outputs: Vec<Option<NodeOutput>>,
    rm: ResourceManager,
    inflight: JoinSet<Completion>,
    contexts: HashMap<String, TaskContext>,
    tasks_run: usize,
    retries: u32,
}

impl<'a> Runner<'a> {
    fn new(
        req: &'a JobRequest,
        executor: Arc<dyn Executor>,
        events: EventSink,
        store: Store,
        started: Instant,
    ) -> Self {
        let n = req.pipeline.nodes.len();
        let ctx = JobContext {
            job: req.id.clone(),
            source: req.source.display().to_string(),
            store: store.root().display().to_string(),
            out_dir: req.out_dir.display().to_string(),
            limits: req.limits,
            encryption: req.encryption.clone(),
            materialise: req.materialise,
            on_demand: req.on_demand,
        };
        let rm = ResourceManager::new(executor.workers());
        Self {
            req,
            ctx,
            executor,
            events,
            store,
            started,
            states: (0..n).map(|_| NodeState::Pending).collect(),
            outputs: vec![None; n],
            rm,
            inflight: JoinSet::new(),
            contexts: HashMap::new(),
            tasks_run: 0,
            retries: 0,
        }
    }

    fn media(&self) -> Option<&MediaInfo> {
        self.outputs.iter().flatten().find_map(|o| match o {
            NodeOutput::Media(m) => Some(m),
            _ => None,
        })
    }

    fn at(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    async fn drive(&mut self) -> Result<PackageSummary> {
        let pipeline = &self.req.pipeline;
        let stages = dag::stages(&pipeline.nodes)
            .into_iter()
            .map(|s| s.into_iter().map(|i| pipeline.nodes[i].id.clone()).collect())
            .collect();
        (self.events)(&Event::JobStarted {
            job: self.req.id.clone(),
            pipeline: pipeline.name.clone(),
            stages,
            workers: self.executor.workers().into_iter().map(|w| w.name).collect(),
        });
        let mut progress = tokio::time::interval(Duration::from_millis(500));
        loop {
            self.queue_ready_nodes()?;
            if let Some(summary) = self.finished_summary() {
                return Ok(summary);
            }
            self.dispatch();
            if self.inflight.is_empty() {
                return Err(Error::Internal("the job stalled: tasks wait but nothing runs".into()));
            }
            tokio::select! {
                joined = self.inflight.join_next() => {
                    match joined {
                        Some(Ok(completion)) => self.complete(completion)?,
                        Some(Err(join)) => return Err(Error::Internal(format!("task future failed: {join}"))),
                        None => {}
                    }
                }
                _ = progress.tick() => self.report_progress(),
            }
        }
    }

    fn finished_summary(&self) -> Option<PackageSummary> {
        self.outputs.iter().flatten().find_map(|o| match o {
            NodeOutput::Packaged(p) => Some(p.clone()),
            _ => None,
        })
    }

    /// Expands every node whose inputs are all done, until nothing changes (nodes with no
    /// tasks, or tasks already finished by an earlier run, complete on the spot).
    fn queue_ready_nodes(&mut self) -> Result<()> {
        loop {
            let ready: Vec<usize> = (0..self.states.len())
                .filter(|&i| matches!(self.states[i], NodeState::Pending))
                .filter(|&i| {
                    self.req.pipeline.nodes[i].after.iter().all(|&d| matches!(self.states[d], NodeState::Done))
                })
                .collect();
            if ready.is_empty() {
                return Ok(());
            }
            for i in ready {
                self.queue_node(i)?;
            }
        }
    }

    fn queue_node(&mut self, i: usize) -> Result<()> {
        let tasks = plan::expand(&self.req.pipeline, i, &self.outputs, &self.ctx)?;
        let node = &self.req.pipeline.nodes[i];
        (self.events)(&Event::NodeQueued { node: node.id.clone(), tasks: tasks.len() });
        let mut outputs = HashMap::new();
        for task in &tasks {
            if !self.rm.can_run(task.kind()) {
                return Err(Error::Internal(format!("no worker accepts {} tasks", task.kind().as_str())));
            }
            // Packaging writes outside temporary storage, so it always runs again.
            let cached = match task.kind() {
                TaskKind::Package => None,
                _ => self.store.read_json::<TaskOutput>(&done_key(&task.id)),
            };
            match cached {
                Some(out) => {
                    (self.events)(&Event::TaskFinished {
                        task: task.id.clone(),
                        kind: task.kind(),
                        attempt: task.attempt,
                        worker: "cache".into(),
                        seconds: 0.0,
                        at: self.at(),
                    });
                    outputs.insert(task.id.clone(), out);
                }
                None => self.rm.submit(task.clone()),
            }
        }
        self.states[i] = NodeState::Running { tasks, outputs };
        self.maybe_finish_node(i)
    }

    fn maybe_finish_node(&mut self, i: usize) -> Result<()> {
        let NodeState::Running { tasks, outputs } = &mut self.states[i] else { return Ok(()) };
        if outputs.len() < tasks.len() {
            return Ok(());
        }
        let ordered = tasks
            .iter()
            .map(|t| outputs.remove(&t.id).ok_or_else(|| Error::Internal(format!("missing output of {}", t.id))))
            .collect::<Result<Vec<_>>>()?;
        let node = &self.req.pipeline.nodes[i];
        self.outputs[i] = Some(plan::aggregate(node, tasks, ordered)?);
        self.states[i] = NodeState::Done;
        Ok(())
    }

    fn dispatch(&mut self) {
        while let Some((task, worker)) = self.rm.next_assignment() {
            (self.events)(&Event::TaskStarted {
                task: task.id.clone(),
                kind: task.kind(),
                attempt: task.attempt,
                worker: worker.name.clone(),
                at: self.at(),
            });
            let ctx = TaskContext::default();
            self.contexts.insert(task.id.clone(), ctx.clone());
            let run = self.executor.execute(&worker, task.clone(), ctx);
            self.inflight.spawn(async move {
                let started = Instant::now();
                let result = run.await;
                Completion::Finished(Box::new(Finished { task, worker, started, result }))
            });
        }
    }

    fn complete(&mut self, completion: Completion) -> Result<()> {
        match completion {
            Completion::RetryDue(task) => {
                self.rm.submit(*task);
                Ok(())
            }
            Completion::Finished(done) => {
                let Finished { task, worker, started, result } = *done;
                self.rm.finish(&task.id);
                self.contexts.remove(&task.id);
                match result {
                    Ok(output) => self.succeeded(task, &worker, started, output),
                    Err(failure) => self.failed(task, failure),
                }
            }
        }
    }

    fn succeeded(&mut self, task: TaskSpec, worker: &WorkerSlot, started: Instant, output: TaskOutput) -> Result<()> {
        self.tasks_run += 1;
        self.store.write_json(&done_key(&task.id), &output)?;
        (self.events)(&Event::TaskFinished {
            task: task.id.clone(),
            kind: task.kind(),
            attempt: task.attempt,
            worker: worker.name.clone(),
            seconds: started.elapsed().as_secs_f64(),
            at: self.at(),
        });
        let i = self.node_index(&task.node)?;
        if let NodeState::Running { outputs, .. } = &mut self.states[i] {
            outputs.insert(task.id.clone(), output);
        }
        self.maybe_finish_node(i)
    }

    fn failed(&mut self, task: TaskSpec, failure: TaskFailure) -> Result<()> {
        let max = self.req.pipeline.max_attempts;
        if failure.class == FailureClass::Retryable && task.attempt < max {
            let backoff_ms = self.req.pipeline.retry_backoff_ms.saturating_mul(1 << (task.attempt - 1).min(10));
            (self.events)(&Event::TaskRetried {
                task: task.id.clone(),
                attempt: task.attempt,
                backoff_ms,
                code: failure.code.clone(),
                message: failure.message.clone(),
            });
            self.retries += 1;
            let mut next = task;
            next.attempt += 1;
            self.inflight.spawn(async move {
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                Completion::RetryDue(Box::new(next))
            });
            return Ok(());
        }
        (self.events)(&Event::TaskFailed {
            task: task.id.clone(),
            attempt: task.attempt,
            code: failure.code.clone(),
            message: failure.message.clone(),
        });
        Err(failure.into_error(&task.id, task.attempt))
    }

    fn node_index(&self, id: &str) -> Result<usize> {
        self.req
            .pipeline
            .nodes
            .iter()
            .position(|n| n.id == id)
            .ok_or_else(|| Error::Internal(format!("unknown node {id}")))
    }

    fn report_progress(&self) {
        for (task, ctx) in &self.contexts {
            let (done, total) = ctx.read_progress();
            if done > 0 {
                (self.events)(&Event::TaskProgress { task: task.clone(), done, total });
            }
        }
    }

    /// Stops whatever still runs after a failure and waits for it, so nothing writes into
    /// temporary storage while it is being removed.
    async fn cancel_running(&mut self) {
        self.rm.clear_queue();
        for ctx in self.contexts.values() {
            ctx.cancel();
        }
        while self.inflight.join_next().await.is_some() {}
    }
}

fn done_key(task_id: &str) -> String {
    format!("done/{task_id}.json")
}

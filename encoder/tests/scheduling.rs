//! The DAG runner with real encodes: retries with backoff, a task that never succeeds, and a
//! job that resumes from the chunks an earlier run finished.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use common::*;
use encoder::event::Event;
use encoder::executor::{BoxFuture, Executor};
use encoder::resource::WorkerSlot;
use encoder::task::{FailureClass, TaskContext, TaskFailure, TaskOutput, TaskSpec};

/// Wraps the real executor and makes one task fail its first `failures` attempts.
struct Faulty {
    inner: Arc<dyn Executor>,
    task: &'static str,
    failures: u32,
    class: FailureClass,
    seen: AtomicU32,
}

impl Executor for Faulty {
    fn workers(&self) -> Vec<WorkerSlot> {
        self.inner.workers()
    }

    fn execute(
        &self,
        worker: &WorkerSlot,
        task: TaskSpec,
        ctx: TaskContext,
    ) -> BoxFuture<Result<TaskOutput, TaskFailure>> {
        if task.id == self.task && self.seen.fetch_add(1, Ordering::SeqCst) < self.failures {
            let class = self.class;
            return Box::pin(async move {
                Err(TaskFailure { code: "worker_crashed".into(), message: "injected failure".into(), class })
            });
        }
        self.inner.execute(worker, task, ctx)
    }
}

fn faulty(task: &'static str, failures: u32, class: FailureClass) -> Arc<Faulty> {
    Arc::new(Faulty { inner: local_executor(), task, failures, class, seen: AtomicU32::new(0) })
}

fn pipeline() -> String {
    let p = ladder_pipeline("rungs = [240, 360]", true).replacen(
        "after = [\"inspect\"]\n",
        "after = [\"inspect\"]\nchunk_seconds = 1.0\n",
        1,
    );
    format!("[pipeline]\nretry_backoff_ms = 20\n{p}")
}

#[test]
fn a_task_that_fails_twice_is_retried_and_the_job_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let src = h264_clip(dir.path(), "src.mp4", "640x360", 4, 30);
    let out = dir.path().join("out");
    let exec = faulty("encode/video/00001", 2, FailureClass::Retryable);
    let (report, events) = run(request(&src, &out, &dir.path().join("work"), Some(&pipeline())), exec.clone());
    let report = report.expect("the job succeeds on the third attempt");
    assert_eq!(report.retries, 2);
    let retried: Vec<(u32, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::TaskRetried { task, attempt, backoff_ms, .. } if task == "encode/video/00001" => {
                Some((*attempt, *backoff_ms))
            }
            _ => None,
        })
        .collect();
    assert_eq!(retried, vec![(1, 20), (2, 40)], "exponential backoff");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::TaskFinished { task, attempt: 3, .. } if task == "encode/video/00001"))
    );
    assert_eq!(extinf(&out.join("360p/index.m3u8")).len(), 2);
}

#[test]
fn a_task_that_always_fails_stops_the_job_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let src = h264_clip(dir.path(), "src.mp4", "640x360", 4, 30);
    let out = dir.path().join("out");
    let work = dir.path().join("work");
    let exec = faulty("encode/video/00002", u32::MAX, FailureClass::Retryable);
    let (result, events) = run(request(&src, &out, &work, Some(&pipeline())), exec);
    let err = result.expect_err("the job fails");
    assert_eq!(err.code(), "worker_crashed");
    assert_eq!(err.exit_status(), 70);
    assert!(err.to_string().contains("after 3 attempt(s)"), "{err}");
    assert!(events.iter().any(|e| matches!(e, Event::JobFailed { code, .. } if code == "worker_crashed")));
    assert_eq!(std::fs::read_dir(&work).map(|d| d.count()).unwrap_or(0), 0, "temporary storage is removed");
    assert!(!out.join("master.m3u8").exists());
}

#[test]
fn a_restarted_job_resumes_from_its_finished_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let src = h264_clip(dir.path(), "src.mp4", "640x360", 4, 30);
    let out = dir.path().join("out");
    let work = dir.path().join("work");
    let mut first = request(&src, &out, &work, Some(&pipeline()));
    // As if the process died during chunk 2: temporary storage is left behind.
    first.keep_work_dir = true;
    let exec = faulty("encode/video/00002", u32::MAX, FailureClass::Fatal);
    let (result, _) = run(first, exec);
    assert!(result.is_err());
    let (report, events) = run(request(&src, &out, &work, Some(&pipeline())), local_executor());
    report.expect("the second run completes");
    let ran_by = |id: &str| {
        events.iter().find_map(|e| match e {
            Event::TaskFinished { task, worker, .. } if task == id => Some(worker.clone()),
            _ => None,
        })
    };
    assert_eq!(ran_by("split/split").as_deref(), Some("cache"));
    // Chunks 0 and 1 ran side by side; whichever finished before the failure is reused.
    let cached =
        ["encode/video/00000", "encode/video/00001"].iter().filter(|id| ran_by(id).as_deref() == Some("cache")).count();
    assert!(cached >= 1, "no finished chunk was reused");
    assert_ne!(ran_by("encode/video/00002").as_deref(), Some("cache"));
    let frames = probe(
        &out.join("240p/index.m3u8"),
        &["-select_streams", "v:0", "-count_frames", "-show_entries", "stream=nb_read_frames"],
    );
    assert_eq!(frames["streams"][0]["nb_read_frames"].as_str(), Some("120"));
}

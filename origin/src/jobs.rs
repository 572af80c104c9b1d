//! Orchestration, in the seed's order: upload complete (claimed once per video) → job created with the encoder's DAG
//! → the DAG's tasks go to workers over the queue → renditions land in transcoded storage →
//! a completion event goes on the completion queue → the completion handler updates the
//! metadata and the cache and notifies.
//!
//! Queue topics: `jobs` (a driver leases a job for as long as it runs its DAG), `tasks.encode`
//! and `tasks.light` (workers lease tasks), `results.{job}` (task results back to the job's
//! driver), `completions` (finished jobs). Every lease is renewed while work goes on, so a
//! killed driver or worker loses its lease and the work is redelivered elsewhere.

pub mod completion;
pub mod driver;
pub mod executor;
pub mod original;
pub(crate) mod staging;
pub mod worker;

use std::path::Path;
use std::sync::Arc;

use encoder::task::{TaskFailure, TaskKind, TaskOutput};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::error::{Error, Result};
use crate::meta::{self, Intake, Job, JobState, Rendition, VideoState};
use crate::storage;

/// Topic of jobs waiting for a driver.
pub const JOBS: &str = "jobs";

/// The topic a task kind is queued on.
pub fn task_topic(kind: TaskKind) -> &'static str {
    if kind == TaskKind::Encode { "tasks.encode" } else { "tasks.light" }
}

/// The topic a job's task results come back on.
pub fn results_topic(job: &str) -> String {
    format!("results.{job}")
}

/// A job waiting for (or leased by) a driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    /// Job id (also the encoder job id: a redelivered job finds its finished tasks).
    pub job: String,
    /// Video.
    pub video: String,
}

/// A task's result, from a worker to the job's driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// Task id.
    pub task: String,
    /// Attempt it answers.
    pub attempt: u32,
    /// What happened.
    pub result: std::result::Result<TaskOutput, TaskFailure>,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Playable.
    Ready {
        /// Seconds.
        duration: f64,
        /// Renditions.
        renditions: Vec<Rendition>,
        /// Segments per video rendition.
        #[serde(default)]
        segments: u64,
    },
    /// Stopped.
    Failed {
        /// Machine-readable code (an input rejection code, or why processing stopped).
        code: String,
        /// Human message.
        message: String,
    },
}

/// A completion event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// Job.
    pub job: String,
    /// Video.
    pub video: String,
    /// Outcome.
    pub outcome: Outcome,
}

/// How every rendition of `video` is protected when packaged, and so how its just-in-time
/// segments must be: the deployment's protection profile, with the key fetched by the
/// packaging worker itself (`key_hex` stays empty on the queue), and key and licence URIs
/// that point at the key service, never at a PoP.
pub fn packaging_encryption(config: &crate::Config, video: &str) -> encoder::task::Encryption {
    let keys = format!("{}/v1/keys/{video}", config.key_url);
    encoder::task::Encryption {
        key_hex: String::new(),
        licence_uri: format!("{keys}/licence"),
        key_uri: keys,
        profile: config.protection,
    }
}

/// Where tasks find the original: resolved by each worker to its own local copy.
pub fn source_ref(video: &str) -> String {
    format!("blob:{}", storage::original(video))
}

/// Where the package task's output goes: published under `videos/{video}/` by the worker.
pub fn publish_ref(video: &str) -> String {
    format!("blob:{}", storage::published(video).trim_end_matches('/'))
}

/// Whether an upload may complete its video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// It holds the video's one completion: go on with [`finalize`].
    Ours,
    /// It already completed the video (a retried last request): nothing to do.
    AlreadyDone,
    /// Another upload completed the video, or it takes no uploads (`None`: no such video).
    Refused(Option<Intake>),
}

/// Claims the one completion of `video` for `upload`. The claim is a conditional update in
/// the database, so of two uploads finishing at once (on any API nodes) one gets `Ours`.
pub async fn claim(app: &App, video: &str, upload: &str) -> Result<Claim> {
    if app.meta.claim_completion(video, upload).await? {
        return Ok(Claim::Ours);
    }
    let intake = app.meta.intake(video).await?;
    Ok(match &intake {
        Some(i) if i.completed_by.as_deref() == Some(upload) && i.state != VideoState::Deleted => Claim::AlreadyDone,
        _ => Claim::Refused(intake),
    })
}

/// Completes a claimed upload: moves the video from uploading to queued together with
/// creating its job (one transaction, so exactly one job), then queues the job, which
/// assembles the original from the upload's pieces (`original::assemble`). Until the
/// transition commits, a failure gives the claim back, so the creator can try again; after
/// it, the upload's bytes are the video's.
pub async fn finalize(app: &Arc<App>, video: &str, upload: &str) -> Result<()> {
    let now = meta::now();
    let job = Job {
        id: crate::secrets::random_hex(12)?,
        video_id: video.to_owned(),
        state: JobState::Queued,
        error_code: None,
        created_at: now,
        updated_at: now,
    };
    let updated = match app.meta.queue_completed(video, upload, &job, now).await {
        Ok(Some(updated)) => updated,
        // Taken down meanwhile, or a retry of this upload queued it already.
        Ok(None) => return Ok(()),
        Err(e) => {
            if let Err(release) = app.meta.release_completion(video, upload).await {
                tracing::warn!(video, upload, error = %release, "completion claim not released");
            }
            return Err(e);
        }
    };
    // From here the upload is the video's: a failed publish is not the client's problem, and
    // `publish_stranded` publishes the job later.
    if let Err(e) = publish(app, &job).await {
        tracing::warn!(video, job = %job.id, error = %e, "job not queued yet; it will be");
    }
    crate::lifecycle::apply::queued(app, &updated).await?;
    tracing::info!(video, job = %job.id, "upload complete, job queued");
    Ok(())
}

/// Puts a recorded job's message on the queue, then records that it is there.
async fn publish(app: &App, job: &Job) -> Result<()> {
    let message = JobMessage { job: job.id.clone(), video: job.video_id.clone() };
    app.queue.publish(JOBS, &serde_json::to_vec(&message)?).await?;
    app.meta.job_published(&job.id).await
}

/// How long a recorded job may wait for its message before a sweeper publishes it.
const STRANDED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Publishes jobs recorded but never queued (the publish failed, or the node died between
/// the two). A job whose publish went through but was not recorded is published twice; its
/// driver drops the second copy (`driver`: a first delivery of a job already running or ended).
pub async fn publish_stranded(app: &App) -> Result<usize> {
    let before = meta::now() - STRANDED_AFTER.as_millis() as i64;
    let stranded = app.meta.unpublished_jobs(before).await?;
    for job in &stranded {
        tracing::warn!(job = %job.id, video = %job.video_id, "stranded job published");
        publish(app, job).await?;
    }
    Ok(stranded.len())
}

/// Streams a local file into blob storage.
pub async fn upload_file(app: &App, file: &Path, key: &str) -> Result<()> {
    use tokio::io::AsyncReadExt;
    let mut input = tokio::fs::File::open(file).await.map_err(Error::io(format!("open {}", file.display())))?;
    let mut writer = app.blobs.writer_with(key).chunk(8 << 20).await?;
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = input.read(&mut buf).await.map_err(Error::io("read for upload"))?;
        if n == 0 {
            break;
        }
        writer.write(buf[..n].to_vec()).await?;
    }
    writer.close().await?;
    Ok(())
}

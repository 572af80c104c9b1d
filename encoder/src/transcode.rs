//! One call from a source file to a playable output folder: checks the request, prepares
//! the output and the content key, derives a stable job id, and runs the job.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};
use crate::event::EventSink;
use crate::executor::Executor;
use crate::job::{self, JobReport, JobRequest};
use crate::media::Limits;
use crate::package::crypt::hex_encode;
use crate::pipeline::Pipeline;
use crate::task::{Encryption, Protection};

/// Where the content key goes and how playlists name it.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    /// File that receives the 16-byte key; must be outside the output folder.
    pub key_file: PathBuf,
    /// URI written into `EXT-X-KEY`; `{video}` is replaced by the video id.
    pub key_uri: String,
    /// Which trees are written (AES-128, cbcs or both).
    pub profile: Protection,
    /// ClearKey licence URL for the DASH manifest (cbcs); `{video}` is replaced by the
    /// video id; empty leaves it out.
    pub licence_uri: String,
}

/// A transcode request.
#[derive(Debug, Clone)]
pub struct TranscodeRequest {
    /// Source file.
    pub input: PathBuf,
    /// Output folder (created; must be empty unless `force`).
    pub out_dir: PathBuf,
    /// The DAG to run.
    pub pipeline: Pipeline,
    /// AES-128 settings, or `None` for clear output.
    pub encrypt: Option<KeyRequest>,
    /// Video id used in key URIs (defaults to the output folder's name).
    pub video_id: Option<String>,
    /// Temporary storage root (defaults to the system temp folder).
    pub work_dir: Option<PathBuf>,
    /// Keep temporary storage afterwards.
    pub keep_work_dir: bool,
    /// Replace a non-empty output folder.
    pub force: bool,
    /// Accepted inputs.
    pub limits: Limits,
    /// Which rungs are encoded now (every rung unless asked).
    pub materialise: crate::jit::Materialise,
    /// Leave an on-demand plan in `source/` so any segment can be encoded later.
    pub on_demand: bool,
}

/// Runs a transcode to completion.
pub async fn transcode(req: TranscodeRequest, executor: Arc<dyn Executor>, events: EventSink) -> Result<JobReport> {
    let input = fs::canonicalize(&req.input).map_err(|_| Error::NoInput(req.input.display().to_string()))?;
    let out_dir = prepare_output(&req.out_dir, req.force)?;
    let video_id = req.video_id.clone().unwrap_or_else(|| {
        out_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "video".into())
    });
    let encryption = req.encrypt.as_ref().map(|k| write_key(k, &out_dir, &video_id)).transpose()?;
    let id = job_id(&input, &out_dir, &req.pipeline)?;
    let work_dir = req.work_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("encoder-jobs")).join(&id);
    let job = JobRequest {
        id,
        source: input,
        out_dir,
        pipeline: req.pipeline,
        encryption,
        work_dir,
        limits: req.limits,
        keep_work_dir: req.keep_work_dir,
        materialise: req.materialise,
        on_demand: req.on_demand,
    };
    job::run(job, executor, events).await
}

fn prepare_output(dir: &Path, force: bool) -> Result<PathBuf> {
    if dir.exists() {
        let empty = fs::read_dir(dir).map_err(Error::io("read", dir))?.next().is_none();
        if !empty {
            if !force {
                return Err(Error::Invalid(format!(
                    "output folder {} is not empty (use --force to replace it)",
                    dir.display()
                )));
            }
            fs::remove_dir_all(dir).map_err(Error::io("remove", dir))?;
        }
    }
    fs::create_dir_all(dir).map_err(Error::io("create output folder", dir))?;
    fs::canonicalize(dir).map_err(Error::io("resolve", dir))
}

/// Generates a random content key, stores it beside (never inside) the served tree.
fn write_key(k: &KeyRequest, out_dir: &Path, video_id: &str) -> Result<Encryption> {
    let parent = k.key_file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(Error::io("create key folder", parent))?;
    let key_dir = fs::canonicalize(parent).map_err(Error::io("resolve", parent))?;
    if key_dir.starts_with(out_dir) {
        return Err(Error::Invalid("the key file must not be inside the output folder".into()));
    }
    let uri = k.key_uri.replace("{video}", video_id);
    if uri.is_empty() || uri.contains(['"', '\n', '\r']) {
        return Err(Error::Invalid(format!("key URI `{uri}` cannot be written into a playlist")));
    }
    let mut key = [0u8; 16];
    SystemRandom::new().fill(&mut key).map_err(|_| Error::Internal("no randomness for the content key".into()))?;
    let path = key_dir.join(k.key_file.file_name().ok_or_else(|| Error::Invalid("key file needs a name".into()))?);
    crate::store::write_atomic(&path, &key)?;
    restrict(&path)?;
    let licence_uri = k.licence_uri.replace("{video}", video_id);
    Ok(Encryption { key_hex: hex_encode(&key), key_uri: uri, profile: k.profile, licence_uri })
}

#[cfg(unix)]
fn restrict(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(Error::io("chmod", path))
}

#[cfg(not(unix))]
fn restrict(_: &Path) -> Result<()> {
    Ok(())
}

/// Same source file (path, size, mtime), output and pipeline: same id, so a restarted job
/// finds the chunks and encoded parts of the run it replaces.
fn job_id(input: &Path, out_dir: &Path, pipeline: &Pipeline) -> Result<String> {
    let meta = fs::metadata(input).map_err(Error::io("stat", input))?;
    let mtime =
        meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    let plan = serde_json::to_string(pipeline).map_err(|e| Error::Internal(e.to_string()))?;
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in
        [input.display().to_string(), meta.len().to_string(), mtime.to_string(), out_dir.display().to_string(), plan]
    {
        ctx.update(part.as_bytes());
        ctx.update(&[0]);
    }
    Ok(hex_encode(&ctx.finish().as_ref()[..8]))
}

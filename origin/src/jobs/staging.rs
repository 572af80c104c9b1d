//! Gives a task the files it names, on this worker's disk, and puts back what it made. With
//! the default shared scratch (every worker on one machine, or a shared volume) nothing moves
//! but the original (a hard link on local storage) and the published tree. Without it, every
//! artifact also travels through blob storage under `jobs/{job}/`, so workers on any machine
//! can pick up any task.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use encoder::task::{FailureClass, TaskContext, TaskFailure, TaskOutput, TaskSpec, Work};

use crate::app::App;
use crate::config::StorageConfig;
use crate::error::{Error, Result};
use crate::storage;

/// Runs a task with its inputs staged in and outputs staged out.
pub(super) async fn run(
    app: Arc<App>,
    mut spec: TaskSpec,
    cores: usize,
) -> std::result::Result<TaskOutput, TaskFailure> {
    let video = video_of(&spec).map_err(fatal)?;
    let scratch = app.scratch(&spec.job);
    stage_in(&app, &mut spec, &scratch, &video).await.map_err(retryable)?;
    let kind = spec.kind();
    let output = tokio::task::spawn_blocking(move || {
        let ctx = TaskContext::default();
        ctx.set_cores(if kind == encoder::task::TaskKind::Encode { cores } else { 1 });
        run_encoder_task(&spec, &ctx)
    })
    .await
    .map_err(|e| retryable(Error::Internal(format!("task thread: {e}"))))??;
    stage_out(&app, &scratch, &video, &output).await.map_err(retryable)?;
    Ok(output)
}

#[cfg(feature = "workers")]
fn run_encoder_task(spec: &TaskSpec, ctx: &TaskContext) -> std::result::Result<TaskOutput, TaskFailure> {
    encoder::ffmpeg::run_task(spec, ctx)
}

#[cfg(not(feature = "workers"))]
fn run_encoder_task(_: &TaskSpec, _: &TaskContext) -> std::result::Result<TaskOutput, TaskFailure> {
    Err(fatal(Error::Internal("this origin was built without workers".into())))
}

fn video_of(spec: &TaskSpec) -> Result<String> {
    let reference = match &spec.work {
        Work::Package { out_dir, .. } => out_dir.strip_prefix("blob:videos/"),
        w => w.source().and_then(|s| s.strip_prefix("blob:originals/")),
    };
    match reference {
        Some(v) if crate::sign::is_safe_name(v) => Ok(v.to_owned()),
        Some(v) => Err(Error::Internal(format!("bad video reference {v}"))),
        // Encode and watermark tasks name no video; they need none.
        None => Ok(String::new()),
    }
}

async fn stage_in(app: &App, spec: &mut TaskSpec, scratch: &Path, video: &str) -> Result<()> {
    tokio::fs::create_dir_all(scratch).await.map_err(Error::io("create scratch"))?;
    spec.store = scratch.display().to_string();
    for key in spec.work.inputs() {
        let local = local_path(scratch, &key)?;
        if tokio::fs::try_exists(&local).await.unwrap_or(false) {
            continue;
        }
        download(app, &format!("{}{key}", storage::job_prefix(&spec.job)), &local).await?;
    }
    let source = scratch.join("source");
    if spec.work.source().is_some() && !tokio::fs::try_exists(&source).await.unwrap_or(false) {
        fetch_original(app, video, &source).await?;
    }
    spec.work.localize(&source.display().to_string(), &scratch.join("publish").display().to_string());
    if let Work::Package { encryption: Some(enc), .. } = &mut spec.work
        && enc.key_hex.is_empty()
    {
        let key =
            app.keys.content_key(app.meta.as_ref(), video).await?.ok_or_else(|| Error::not_found("content key"))?;
        enc.key_hex = pop_config::token::hex(&key);
    }
    Ok(())
}

async fn stage_out(app: &App, scratch: &Path, video: &str, output: &TaskOutput) -> Result<()> {
    if !app.config.shared_scratch {
        let job = scratch.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for key in output.artifacts() {
            let local = local_path(scratch, &key)?;
            super::upload_file(app, &local, &format!("{}{key}", storage::job_prefix(&job))).await?;
        }
    }
    if let TaskOutput::Packaged(summary) = output {
        let publish = scratch.join("publish");
        // What later encodes need goes beside the original, outside the served tree; it is
        // written before the playable tree, so a published video always has its plan.
        for file in &summary.source_files {
            let local = local_path(&publish, file)?;
            let name = file.strip_prefix(encoder::package::SOURCE_DIR).unwrap_or(file).trim_start_matches('/');
            let bytes = tokio::fs::read(&local).await.map_err(Error::io(format!("read {}", local.display())))?;
            app.blobs.write(&format!("{}{name}", storage::sources(video)), bytes).await?;
        }
        // `files` ends with the multivariant playlist: published last, it marks completeness.
        for file in &summary.files {
            let local = local_path(&publish, file)?;
            let bytes = tokio::fs::read(&local).await.map_err(Error::io(format!("read {}", local.display())))?;
            app.blobs.write(&format!("{}{file}", storage::published(video)), bytes).await?;
        }
        let _ = tokio::fs::remove_dir_all(&publish).await;
    }
    Ok(())
}

/// This worker's copy of a video's original (and of its watermark, when it has one) for
/// just-in-time encodes, kept between encodes so a burst of segments stages it once.
pub(crate) async fn source_for_segments(app: &App, video: &str, overlay: bool) -> Result<(PathBuf, Option<PathBuf>)> {
    let dir = app.config.data_dir.join("scratch").join("sources").join(video);
    let original = dir.join("original");
    if !tokio::fs::try_exists(&original).await.unwrap_or(false) {
        tokio::fs::create_dir_all(&dir).await.map_err(Error::io("create source folder"))?;
        fetch_original(app, video, &original).await?;
    }
    let overlay = if overlay {
        let local = dir.join(encoder::jit::OVERLAY_FILE);
        if !tokio::fs::try_exists(&local).await.unwrap_or(false) {
            download(app, &format!("{}{}", storage::sources(video), encoder::jit::OVERLAY_FILE), &local).await?;
        }
        Some(local)
    } else {
        None
    };
    Ok((original, overlay))
}

/// Removes this worker's staged copy of a video's original (takedown, or it went cold).
pub(crate) async fn forget_source(app: &App, video: &str) {
    let _ = tokio::fs::remove_dir_all(app.config.data_dir.join("scratch").join("sources").join(video)).await;
}

/// The worker's copy of the original: a hard link on local storage, a download otherwise.
async fn fetch_original(app: &App, video: &str, target: &Path) -> Result<()> {
    let key = storage::original(video);
    if let StorageConfig::Fs { root } = &app.config.storage
        && tokio::fs::hard_link(root.join(&key), target).await.is_ok()
    {
        return Ok(());
    }
    download(app, &key, target).await
}

async fn download(app: &App, key: &str, target: &Path) -> Result<()> {
    use futures_util::TryStreamExt;
    use tokio::io::AsyncWriteExt;
    if let Some(dir) = target.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(Error::io("create scratch folder"))?;
    }
    let tmp = target.with_extension("download");
    let mut out = tokio::fs::File::create(&tmp).await.map_err(Error::io("create staged file"))?;
    let mut stream = app.blobs.reader(key).await?.into_bytes_stream(..).await?;
    while let Some(chunk) = stream.try_next().await.map_err(Error::io("download"))? {
        out.write_all(&chunk).await.map_err(Error::io("write staged file"))?;
    }
    out.sync_all().await.map_err(Error::io("sync staged file"))?;
    tokio::fs::rename(&tmp, target).await.map_err(Error::io("rename staged file"))
}

/// A key under a root, refusing anything but plain relative paths.
fn local_path(root: &Path, key: &str) -> Result<PathBuf> {
    let rel = Path::new(key);
    if key.is_empty() || !rel.components().all(|c| matches!(c, std::path::Component::Normal(_))) {
        return Err(Error::Internal(format!("artifact key `{key}` is not a plain relative path")));
    }
    Ok(root.join(rel))
}

fn retryable(e: Error) -> TaskFailure {
    TaskFailure { code: e.code().to_owned(), message: e.to_string(), class: FailureClass::Retryable }
}

fn fatal(e: Error) -> TaskFailure {
    TaskFailure { code: e.code().to_owned(), message: e.to_string(), class: FailureClass::Fatal }
}

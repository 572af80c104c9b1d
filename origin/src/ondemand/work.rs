//! The worker side of a just-in-time encode: check the task still stands, stage the original
//! once, encode on a blocking thread, send every piece to whoever waits as it is made, store
//! each finished segment (never for a taken-down video), and release its claim.

use std::sync::Arc;
use std::time::Duration;

use encoder::jit::{FragmentPolicy, SegmentPiece, SegmentsRequest};
use encoder::layout::Tree;
use encoder::package::fragment::Emit;
use encoder::task::TaskContext;
use tokio::sync::mpsc;

use super::segment_key;
use super::task::{Reply, SegmentTask};
use super::workers::{self, Worker};
use crate::app::App;
use crate::error::{Error, Kind, Result};
use crate::meta::ondemand::SegmentKey;
use crate::meta::{self, VideoState};
use crate::queue::consume::Verdict;

/// Runs one task from the on-demand topics. Failures are answered to whoever waits (the
/// reply topic), so the message itself is always done, unless this worker should leave it to
/// another one.
pub async fn run(app: &Arc<App>, task: &SegmentTask, worker: &Arc<Worker>, cores: usize) -> Verdict {
    if task.avoid.as_deref() == Some(worker.id.as_str())
        && workers::encoders_alive(app, Some(&worker.id)).await.unwrap_or(false)
    {
        // It failed here before: leave it to another worker.
        return Verdict::Pass(Duration::from_millis(200));
    }
    let span = tracing::info_span!("segments", video = %task.video, rung = %task.rung, first = task.first, count = task.count, reason = task.reason.as_str());
    let _busy = worker.busy();
    let outcome = {
        use tracing::Instrument;
        let work = async {
            if task.reason.claims_when_started() {
                claim_and_encode(app, task, worker, cores).await
            } else {
                encode(app, task, worker, cores).await
            }
        };
        work.instrument(span).await
    };
    let reply = match outcome {
        Ok(Settled::Done) => Some(Reply::Done),
        Ok(Settled::Superseded) => None,
        Err(e) => {
            tracing::warn!(error = %e, code = e.code(), "segment encode failed");
            if !task.reason.claims_when_started() {
                // Such a task released its own claims; the rest of its span is others'.
                release_all(app, task).await;
            }
            let code = if e.kind() == Kind::Gone { "deleted".to_owned() } else { e.code().to_owned() };
            Some(Reply::Failed { code, retryable: is_retryable(&e), message: e.to_string() })
        }
    };
    if let (Some(reply), Some(topic)) = (reply, &task.reply) {
        let _ = app.queue.publish(topic, &reply.encode()).await;
    }
    Verdict::Ack
}

/// A task that kept failing (or killing its worker) is given up: its claims go, and whoever
/// waits hears why.
pub async fn abandon(app: &App, task: &SegmentTask, code: &str, reason: &str) -> Result<()> {
    release_all(app, task).await;
    if let Some(topic) = &task.reply {
        let failed = Reply::Failed { code: code.to_owned(), retryable: false, message: reason.to_owned() };
        app.queue.publish(topic, &failed.encode()).await?;
    }
    Ok(())
}

enum Settled {
    Done,
    /// Another dispatch of the same segments took over; nothing to do.
    Superseded,
}

fn is_retryable(e: &Error) -> bool {
    !matches!(e, Error::Refused { .. })
}

fn keys(task: &SegmentTask) -> impl Iterator<Item = SegmentKey> + '_ {
    (task.first..task.first + task.count).map(|segment| SegmentKey {
        video: task.video.clone(),
        rung: task.rung.clone(),
        segment,
    })
}

async fn release_all(app: &App, task: &SegmentTask) {
    for key in keys(task) {
        let _ = app.ondemand.release_segment(&key).await;
    }
}

/// A promotion or an opening claims its segments only when a worker starts on it, not when it
/// is queued: until then a viewer who asks for one of them claims and encodes it at viewer
/// priority, and the task skips it. The task's segments are encoded in runs of consecutive
/// segments that are neither stored nor claimed by someone else.
async fn claim_and_encode(app: &Arc<App>, task: &SegmentTask, worker: &Arc<Worker>, cores: usize) -> Result<Settled> {
    let now = meta::now();
    let stale = super::stale_claims_before(app, now);
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for key in keys(task) {
        let counted = super::trees(app.config.protection)[0];
        let wanted = !app.blobs.exists(&segment_key(&key.video, counted, &key.rung, key.segment)).await?
            && app.ondemand.claim_segment(&key, &worker.id, now, stale).await?;
        match runs.last_mut() {
            Some((first, count)) if wanted && *first + *count == key.segment => *count += 1,
            _ if wanted => runs.push((key.segment, 1)),
            _ => {}
        }
    }
    for (i, &(first, count)) in runs.iter().enumerate() {
        let run = SegmentTask { first, count, ..task.clone() };
        if let Err(e) = encode(app, &run, worker, cores).await {
            // Only this task's own claims: the segments between its runs are others'.
            for &(first, count) in &runs[i..] {
                release_all(app, &SegmentTask { first, count, ..task.clone() }).await;
            }
            return Err(e);
        }
    }
    Ok(Settled::Done)
}

async fn encode(app: &Arc<App>, task: &SegmentTask, worker: &Arc<Worker>, cores: usize) -> Result<Settled> {
    let first = keys(task).next().expect("a task has a segment");
    match app.ondemand.segment_claim(&first).await? {
        Some(c) if c.attempt <= task.attempt => {}
        // Released (done) or dispatched again since this copy was published.
        _ => return Ok(Settled::Superseded),
    }
    app.ondemand.claim_taken(&first, &worker.id).await?;
    if let Some(topic) = &task.reply {
        app.queue.publish(topic, &Reply::Taken { worker: worker.id.clone() }.encode()).await?;
    }
    super::policy::check_servable(app, &task.video).await?;
    let plan = app.jit.plan(app, &task.video).await?.ok_or_else(|| Error::not_found("on-demand plan"))?;
    let (source, overlay) = crate::jobs::staging::source_for_segments(app, &task.video, plan.overlay.is_some()).await?;
    let mut encryption = crate::jobs::packaging_encryption(&app.config, &task.video);
    let key =
        app.keys.content_key(app.meta.as_ref(), &task.video).await?.ok_or_else(|| Error::not_found("content key"))?;
    encryption.key_hex = pop_config::token::hex(&key);
    let scratch = app.config.data_dir.join("scratch").join("segments");
    let request = SegmentsRequest {
        source: source.display().to_string(),
        plan: (*plan).clone(),
        overlay: overlay.map(|p| p.display().to_string()),
        rungs: vec![task.rung.clone()],
        first: task.first as usize,
        count: task.count as usize,
        encryption: Some(encryption),
        fragments: FragmentPolicy::streaming(plan.media.video.fps()),
        scratch: scratch.display().to_string(),
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<SegmentPiece>();
    let cpu_before = workers::process_cpu_seconds();
    let encoding = tokio::task::spawn_blocking(move || {
        let ctx = TaskContext::default();
        ctx.set_cores(cores);
        encode_span(&request, &ctx, Arc::new(move |piece| tx.send(piece).map_err(|_| encoder::Error::Cancelled)))
    });
    let trees = super::trees(app.config.protection);
    let mut seq = 0u32;
    // Each tree's copy of the segment being made, and the trees whose copy is stored.
    let mut copies: Vec<(Tree, Vec<u8>)> = trees.iter().map(|t| (*t, Vec::new())).collect();
    let mut stored: Vec<Tree> = Vec::new();
    while let Some(piece) = rx.recv().await {
        let segment = piece.segment as u64;
        let copy = copies.iter_mut().find(|(t, _)| *t == piece.tree).map(|(_, bytes)| bytes);
        let copy = copy.ok_or_else(|| Error::Internal("a piece of a tree nobody asked for".into()))?;
        copy.extend_from_slice(&piece.bytes);
        let (tree, last) = (piece.tree, piece.last);
        if let Some(topic) = &task.reply {
            let reply = Reply::Piece { segment, tree, seq, last, bytes: piece.bytes };
            app.queue.publish(topic, &reply.encode()).await?;
            seq += 1;
        }
        if last {
            write_copy(app, task, tree, segment, std::mem::take(copy)).await?;
            stored.push(tree);
        }
        if last && trees.iter().all(|t| stored.contains(t)) {
            stored.clear();
            settle(app, task, segment).await?;
        }
    }
    let report = encoding.await.map_err(|e| Error::Internal(format!("encoder thread: {e}")))?;
    // With several tasks at once in this process, each gets its share of the time spent.
    let cpu = (workers::process_cpu_seconds() - cpu_before) / f64::from(worker.running().max(1));
    app.metrics.on_demand.cpu(task.reason.as_str(), cpu);
    report.map_err(|e| match e {
        encoder::Error::Invalid(m) => Error::refused(Kind::NotFound, "segment_out_of_range", m),
        other => Error::Internal(format!("encode: {other}")),
    })?;
    Ok(Settled::Done)
}

/// Encodes the request's segments on this thread, every piece to `emit`.
#[cfg(feature = "workers")]
fn encode_span(request: &SegmentsRequest, ctx: &TaskContext, emit: Emit) -> encoder::Result<()> {
    encoder::ffmpeg::jit::encode_segments(request, ctx, emit).map(|_| ())
}

/// Built without FFmpeg, this origin serves the API and leaves encoding to `origin worker`s.
#[cfg(not(feature = "workers"))]
fn encode_span(_: &SegmentsRequest, _: &TaskContext, _: Emit) -> encoder::Result<()> {
    Err(encoder::Error::Internal("this origin was built without workers".into()))
}

/// Stores one tree's copy of a finished segment, unless the video was taken down meanwhile.
async fn write_copy(app: &App, task: &SegmentTask, tree: Tree, segment: u64, bytes: Vec<u8>) -> Result<()> {
    let blob = segment_key(&task.video, tree, &task.rung, segment);
    app.blobs.write(&blob, bytes).await?;
    // A takedown that ran while this segment was encoded must not leave it behind.
    if app.meta.video(&task.video).await?.is_none_or(|v| v.state == VideoState::Deleted) {
        app.blobs.delete(&blob).await?;
        return Err(Error::refused(Kind::Gone, "deleted", "the video was taken down"));
    }
    Ok(())
}

/// Every tree's copy of the segment is stored: count it and release its claim.
async fn settle(app: &App, task: &SegmentTask, segment: u64) -> Result<()> {
    let now = meta::now();
    app.ondemand.add_stored(&task.video, &task.rung, 1, now).await?;
    app.metrics.on_demand.segments.get_or_create(&vec![("reason", task.reason.as_str().to_owned())]).inc();
    let key = SegmentKey { video: task.video.clone(), rung: task.rung.clone(), segment };
    app.ondemand.release_segment(&key).await
}

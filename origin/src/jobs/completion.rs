//! The completion handler (P15): applies finished jobs to the metadata database, invalidates
//! the cache, and tells the creator (events and webhook). Idempotent, because a completion can
//! be delivered twice.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Completion, Outcome};
use crate::app::App;
use crate::cache;
use crate::error::Result;
use crate::meta::{self, JobState, StateChange, VideoState};
use crate::notify::{self, VideoEvent};
use crate::queue::COMPLETIONS;
use crate::storage;

/// Handles completions until `shutdown`.
pub async fn run(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let msg = tokio::select! {
            m = app.queue.receive(COMPLETIONS, Duration::from_secs(60), Duration::from_secs(1)) => m,
            _ = shutdown.changed() => return,
        };
        let msg = match msg {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "completion queue unavailable");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let settled = match serde_json::from_slice::<Completion>(&msg.payload) {
            Ok(c) => match apply(&app, &c).await {
                Ok(()) => msg.lease.ack().await,
                Err(e) => {
                    tracing::warn!(error = %e, job = %c.job, "completion not applied; retrying");
                    msg.lease.nack(Duration::from_secs(2)).await
                }
            },
            Err(e) => {
                tracing::error!(error = %e, "undecodable completion dropped");
                msg.lease.ack().await
            }
        };
        if let Err(e) = settled {
            tracing::warn!(error = %e, "completion not settled");
        }
    }
}

/// Applies one completion.
pub async fn apply(app: &App, c: &Completion) -> Result<()> {
    let now = meta::now();
    let Some(video) = app.meta.video(&c.video).await? else { return Ok(()) };
    if !app.config.shared_scratch {
        app.blobs.delete_with(&storage::job_prefix(&c.job)).recursive(true).await?;
    }
    if video.state == VideoState::Deleted {
        // Taken down while processing: whatever was published since goes too.
        app.blobs.delete_with(&storage::published(&c.video)).recursive(true).await?;
        app.meta.set_job_state(&c.job, JobState::Failed, Some("deleted"), now).await?;
        return Ok(());
    }
    let (change, job_state, code, event) = match &c.outcome {
        Outcome::Ready { duration, renditions, .. } => (
            StateChange {
                state: VideoState::Ready,
                progress: 1.0,
                error: None,
                result: Some((*duration, renditions.clone())),
                now,
            },
            JobState::Done,
            None,
            "video.ready",
        ),
        Outcome::Failed { code, message } => (
            StateChange {
                state: VideoState::Failed,
                progress: video.progress,
                error: Some((code.clone(), message.clone())),
                result: None,
                now,
            },
            JobState::Failed,
            Some(code.as_str()),
            "video.failed",
        ),
    };
    if let Outcome::Ready { renditions, segments, .. } = &c.outcome {
        // Before the state: a viewer who sees `ready` finds every rung's state.
        crate::ondemand::record_rungs(app, &c.video, renditions, *segments).await?;
        crate::ondemand::queue_openings(app, &c.video, renditions, *segments).await?;
    }
    let updated = app.meta.change_state(&c.video, &change).await?;
    app.meta.set_job_state(&c.job, job_state, code, now).await?;
    cache::forget_video(app.cache.as_ref(), &c.video).await;
    if let Some(v) = updated {
        app.hub.publish(VideoEvent::of(&v));
        notify::queue_webhook(app.queue.as_ref(), app.meta.as_ref(), &v, event).await?;
        let outcome = if v.state == VideoState::Ready { "ready" } else { "failed" };
        app.metrics.jobs.get_or_create(&vec![("outcome", outcome.to_owned())]).inc();
        tracing::info!(video = %v.id, job = %c.job, state = v.state.as_str(), code = ?v.error_code, "job complete");
    }
    Ok(())
}

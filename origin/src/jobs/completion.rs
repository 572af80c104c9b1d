//! The completion handler (P15): applies finished jobs to the metadata database, invalidates
//! the cache, and tells the creator (events and webhook). Idempotent, because a completion can
//! be delivered twice.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use async_trait::async_trait;

use super::{Completion, Outcome};
use crate::app::App;
use crate::error::Result;
use crate::lifecycle::JobEvent;
use crate::lifecycle::apply::{self, Applied};
use crate::meta::VideoState;
use crate::queue::COMPLETIONS;
use crate::queue::consume::{Backoff, Consumer, Delivery, Handler, Verdict, consume};
use crate::storage;

/// How completions are consumed: one at a time, in order of arrival; a completion that
/// cannot be applied (the database is down) is retried for about a day before it is
/// dead-lettered, since a lost completion leaves a video processing for ever.
pub fn consumer() -> Consumer {
    Consumer {
        name: "completions",
        topics: vec![COMPLETIONS.to_owned()],
        lease: Duration::from_secs(60),
        concurrency: 1,
        max_deliveries: 30,
        backoff: Backoff { first: Duration::from_secs(2), max: Duration::from_secs(3600) },
    }
}

/// Applies completions.
pub struct Completions(pub Arc<App>);

#[async_trait]
impl Handler for Completions {
    type Message = Completion;

    async fn handle(&self, c: &Completion, _: Delivery) -> Verdict {
        match apply(&self.0, c).await {
            Ok(()) => Verdict::Ack,
            Err(e) => Verdict::Retry(format!("completion of job {} not applied: {e}", c.job)),
        }
    }

    /// A completion that could not be applied for a day: the video and its job end `failed`
    /// with the code, where people look, rather than `processing` for ever.
    async fn dead(&self, c: &Completion, _: Delivery, code: &str, reason: &str) -> Result<()> {
        apply::fail(&self.0, &c.video, code, reason).await?;
        apply::job(&self.0, &c.job, JobEvent::Fail, Some(code)).await.map(drop)
    }
}

/// Handles completions until `shutdown`.
pub async fn run(app: Arc<App>, shutdown: watch::Receiver<bool>) {
    let outcomes = app.metrics.queue_messages.clone();
    consume(app.queue.clone(), consumer(), Arc::new(Completions(app)), outcomes, shutdown).await;
}

/// Applies one completion.
pub async fn apply(app: &App, c: &Completion) -> Result<()> {
    if !app.config.shared_scratch {
        storage::delete_tree(&app.blobs, &storage::job_prefix(&c.job)).await?;
    }
    let taken_down = app.meta.video(&c.video).await?.is_none_or(|v| v.state == VideoState::Deleted);
    if let (Outcome::Ready { renditions, segments, .. }, false) = (&c.outcome, taken_down) {
        // Before the state: a viewer who sees `ready` finds every rung's state.
        crate::ondemand::record_rungs(app, &c.video, renditions, *segments).await?;
        crate::ondemand::queue_openings(app, &c.video, renditions, *segments).await?;
    }
    let (applied, job_event, code) = match &c.outcome {
        Outcome::Ready { duration, renditions, .. } => {
            (apply::finish(app, &c.video, *duration, renditions.clone()).await?, JobEvent::Finish, None)
        }
        Outcome::Failed { code, message } => {
            (apply::fail(app, &c.video, code, message).await?, JobEvent::Fail, Some(code.as_str()))
        }
    };
    // The job ends as its video did; a redelivered completion may find only the job missing.
    let (job_event, code) = match &applied {
        Applied::Moved(v) => {
            let outcome = if v.state == VideoState::Ready { "ready" } else { "failed" };
            app.metrics.jobs.get_or_create(&vec![("outcome", outcome.to_owned())]).inc();
            tracing::info!(video = %v.id, job = %c.job, state = v.state.as_str(), code = ?v.error_code, "job complete");
            (job_event, code)
        }
        Applied::Already(_) => (job_event, code),
        Applied::Refused(v) if v.state == VideoState::Deleted => {
            // Taken down while processing (or just now, racing this completion): whatever
            // the job published since goes too, and so does the rungs' state recorded above.
            apply::remove_data(app, &c.video).await?;
            (JobEvent::Fail, Some("deleted"))
        }
        Applied::Refused(v) => {
            tracing::warn!(video = %v.id, job = %c.job, state = v.state.as_str(), "completion of a video that moved on");
            (JobEvent::Fail, Some("superseded"))
        }
        Applied::Missing => (JobEvent::Fail, Some("video_missing")),
    };
    apply::job(app, &c.job, job_event, code).await?;
    Ok(())
}

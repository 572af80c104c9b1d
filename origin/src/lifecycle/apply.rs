//! The IO half of the lifecycle: the one place a video's or a job's state is written (a
//! conditional update from the states `Event::from` allows), then the effects every change
//! has: the cache forgets the video, event streams on every node hear of it, and the creator's
//! webhook is queued for the events that have one.

use super::{Event, JobEvent};
use crate::app::App;
use crate::cache;
use crate::error::Result;
use crate::meta::{self, Audit, Millis, Rendition, StateChange, Video, VideoState};
use crate::notify::{self, VideoEvent};
use crate::storage;

/// What became of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The video moved; its effects ran.
    Moved(Video),
    /// The video was already where the event leads (a redelivered event): nothing ran again.
    Already(Video),
    /// The video is in a state the event does not leave (`deleted`, say): nothing changed.
    Refused(Video),
    /// No such video.
    Missing,
}

impl Applied {
    /// The video as it is now, if it exists.
    pub fn video(&self) -> Option<&Video> {
        match self {
            Self::Moved(v) | Self::Already(v) | Self::Refused(v) => Some(v),
            Self::Missing => None,
        }
    }
}

/// A driver started the video's job or reports how far it got.
pub async fn progress(app: &App, id: &str, progress: f64) -> Result<Applied> {
    apply(app, id, Event::Progress, change(Event::Progress, Some(progress))).await
}

/// The video's job finished: it is playable with these renditions.
pub async fn finish(app: &App, id: &str, duration: f64, renditions: Vec<Rendition>) -> Result<Applied> {
    let change = StateChange { result: Some((duration, renditions)), ..change(Event::Finish, Some(1.0)) };
    apply(app, id, Event::Finish, change).await
}

/// The video's job failed; the code is machine-readable, the message for people.
pub async fn fail(app: &App, id: &str, code: &str, message: &str) -> Result<Applied> {
    let change = StateChange { error: Some((code.to_owned(), message.to_owned())), ..change(Event::Fail, None) };
    apply(app, id, Event::Fail, change).await
}

/// Takes a video down: the state first (so a completion racing it is refused from then on),
/// then its key, every stored byte and a purge for the edges, with an audit row saying who and
/// why. A video found already `deleted` is cleaned up again: a takedown that failed after its
/// state change (storage down, the node killed) is finished by the next one. Returns the
/// purge's sequence number when the cleanup ran.
pub async fn take_down(app: &App, id: &str, audit: Audit) -> Result<(Applied, Option<i64>)> {
    app.meta.add_audit(&audit).await?;
    let applied = apply(app, id, Event::TakeDown, change(Event::TakeDown, None)).await?;
    if !matches!(applied, Applied::Moved(_) | Applied::Already(_)) {
        return Ok((applied, None));
    }
    // A suspended video taken down again is gone for good: its retention ends first, so a
    // restore racing this finds nothing to restore; one that got there first keeps its bytes.
    if !app.meta.end_retention(id, Millis::MAX).await?
        && let Some(now) = app.meta.video(id).await?
        && now.state != VideoState::Deleted
    {
        return Ok((Applied::Refused(now), None));
    }
    app.meta.delete_key(id).await?;
    remove_data(app, id).await?;
    let purge = app.meta.add_purge(id, audit.at).await?;
    // Forgotten again: a reader between the state change and the removal may have cached it.
    cache::forget_video(app.cache.as_ref(), id).await;
    tracing::info!(video = id, purge, "video taken down");
    Ok((applied, Some(purge)))
}

/// Takes a ready video down for a moderator, keeping its bytes and key until `until` so that a
/// mistaken takedown can be restored: unservable at once (the key service and object routes
/// check the state), purged from the edges, audited. A video that is not ready has nothing
/// worth keeping: it is taken down for good.
pub async fn suspend(app: &App, id: &str, audit: Audit, until: Millis) -> Result<(Applied, Option<i64>)> {
    let Some(video) = app.meta.suspend_video(id, until, meta::now()).await? else {
        // Suspended already (a second report decided, a retried request): it stays restorable.
        if let Some(v) = app.meta.video(id).await?
            && v.state == VideoState::Deleted
            && v.retained_until.is_some()
        {
            app.meta.add_audit(&audit).await?;
            return Ok((Applied::Already(v), None));
        }
        return take_down(app, id, audit).await;
    };
    app.meta.add_audit(&audit).await?;
    effects(app, &video, Event::TakeDown).await?;
    let purge = app.meta.add_purge(id, audit.at).await?;
    cache::forget_video(app.cache.as_ref(), id).await;
    tracing::info!(video = id, purge, until, "video suspended (restorable)");
    Ok((Applied::Moved(video), Some(purge)))
}

/// Restores a suspended video while it is retained; `Refused` when it is not suspended or its
/// retention ended. PoPs fetch it afresh: their tombstones drop only what was fetched before
/// the takedown.
pub async fn restore(app: &App, id: &str, audit: Audit) -> Result<Applied> {
    match app.meta.restore_video(id, meta::now()).await? {
        Some(video) => {
            app.meta.add_audit(&audit).await?;
            effects(app, &video, Event::Restore).await?;
            Ok(Applied::Moved(video))
        }
        None => Ok(app.meta.video(id).await?.map_or(Applied::Missing, Applied::Refused)),
    }
}

/// Removes the bytes and keys of suspended videos whose retention ended; how many.
pub async fn expire_retained(app: &App, now: Millis) -> Result<usize> {
    let mut removed = 0;
    for id in app.meta.expired_retentions(now, 100).await? {
        // Bytes first, the mark after: a removal cut short is found and run again by the next
        // sweep. A restore cannot run meanwhile: it needs a retention that has not ended.
        app.meta.delete_key(&id).await?;
        remove_data(app, &id).await?;
        if app.meta.end_retention(&id, now).await? {
            tracing::info!(video = %id, "retention ended: video removed for good");
            removed += 1;
        }
    }
    Ok(removed)
}

/// The effects of a video's move to `queued`, which `MetaStore::queue_completed` wrote together
/// with its job.
pub async fn queued(app: &App, video: &Video) -> Result<()> {
    effects(app, video, Event::Queue).await
}

/// Moves a job; false when the job had already ended (or does not exist).
pub async fn job(app: &App, id: &str, event: JobEvent, code: Option<&str>) -> Result<bool> {
    app.meta.set_job_state(id, event.from(), event.to(), code, meta::now()).await
}

/// Removes every byte stored for a video: original, published tree, what later encodes
/// needed, uploads, and its on-demand state. Safe to run again (a completion that lost the
/// race with a takedown runs it for whatever its job published meanwhile).
pub async fn remove_data(app: &App, id: &str) -> Result<()> {
    app.blobs.delete(&storage::original(id)).await?;
    storage::delete_tree(&app.blobs, &storage::published(id)).await?;
    storage::delete_tree(&app.blobs, &storage::sources(id)).await?;
    app.ondemand.forget_video(id).await?;
    app.jit.forget(id);
    crate::jobs::staging::forget_source(app, id).await;
    for upload in app.meta.uploads_of(id).await? {
        crate::api::uploads::discard(app, &upload).await?;
    }
    Ok(())
}

fn change(event: Event, progress: Option<f64>) -> StateChange {
    StateChange { state: event.to(), progress, error: None, result: None, now: meta::now() }
}

/// The one conditional write of a video's state, and its effects when it moved.
async fn apply(app: &App, id: &str, event: Event, change: StateChange) -> Result<Applied> {
    if let Some(video) = app.meta.change_state(id, event.from(), &change).await? {
        effects(app, &video, event).await?;
        return Ok(Applied::Moved(video));
    }
    let Some(video) = app.meta.video(id).await? else { return Ok(Applied::Missing) };
    if video.state == event.to() {
        return Ok(Applied::Already(video));
    }
    tracing::info!(video = id, ?event, state = video.state.as_str(), "state change refused");
    Ok(Applied::Refused(video))
}

async fn effects(app: &App, video: &Video, event: Event) -> Result<()> {
    cache::forget_video(app.cache.as_ref(), &video.id).await;
    app.hub.publish(VideoEvent::of(video)).await;
    if let Some(name) = event.webhook() {
        notify::queue_webhook(app.queue.as_ref(), app.meta.as_ref(), video, name).await?;
    }
    if video.state == VideoState::Processing {
        return Ok(());
    }
    tracing::info!(video = %video.id, state = video.state.as_str(), code = ?video.error_code, "video state changed");
    Ok(())
}

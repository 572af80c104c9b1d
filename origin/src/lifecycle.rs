//! The one owner of a video's life and of its job's: which states there are, which events move
//! them, and from where. This half is pure (`transition`, tested exhaustively below); `apply`
//! is the one place that writes a state, as a conditional update in the database (`... WHERE
//! state IN (allowed)`), followed by its effects (cache, events, webhook). Nothing else
//! changes a video's or a job's state, so a late progress report or a redelivered completion
//! can never overwrite `deleted`, and a second completion never flips `ready` to `failed`.
//!
//! The move from `uploading` to `queued` is the same kind of conditional update, made together
//! with the job's creation in one transaction (`MetaStore::queue_completed`, guarded by the
//! upload's completion claim); its effects go through `apply::queued`.

pub mod apply;

use crate::meta::{JobState, VideoState};

/// What happens to a video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// Its upload completed and its one job was recorded.
    Queue,
    /// A job driver started it or reports progress.
    Progress,
    /// Its job finished: it is playable.
    Finish,
    /// Its job failed with a code.
    Fail,
    /// Its creator (or an operator) took it down.
    TakeDown,
    /// A moderator undid a takedown while the video was retained (`MetaStore::restore_video`
    /// checks the retention in the same conditional update): only a suspended ready video.
    Restore,
}

impl Event {
    /// Every event, for exhaustive checks.
    pub const ALL: [Self; 6] = [Self::Queue, Self::Progress, Self::Finish, Self::Fail, Self::TakeDown, Self::Restore];

    /// The states this event may move a video out of.
    pub fn from(self) -> &'static [VideoState] {
        use VideoState::*;
        match self {
            Self::Queue => &[Uploading],
            // `queued` too: a redelivered job reports progress again from the start.
            Self::Progress => &[Queued, Processing],
            Self::Finish | Self::Fail => &[Queued, Processing],
            Self::TakeDown => &[Uploading, Queued, Processing, Ready, Failed],
            Self::Restore => &[Deleted],
        }
    }

    /// The state it moves a video into.
    pub fn to(self) -> VideoState {
        match self {
            Self::Queue => VideoState::Queued,
            Self::Progress => VideoState::Processing,
            Self::Finish => VideoState::Ready,
            Self::Fail => VideoState::Failed,
            Self::TakeDown => VideoState::Deleted,
            Self::Restore => VideoState::Ready,
        }
    }

    /// The webhook event a creator receives for it, if any.
    pub fn webhook(self) -> Option<&'static str> {
        match self {
            Self::Finish => Some("video.ready"),
            Self::Fail => Some("video.failed"),
            Self::TakeDown => Some("video.deleted"),
            Self::Restore => Some("video.restored"),
            Self::Queue | Self::Progress => None,
        }
    }
}

/// An event that does not apply to the state a video is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused<S> {
    /// The state it was in.
    pub state: S,
}

/// Where `event` takes a video in `state`, or why it does not.
pub fn transition(state: VideoState, event: Event) -> Result<VideoState, Refused<VideoState>> {
    if event.from().contains(&state) { Ok(event.to()) } else { Err(Refused { state }) }
}

/// What happens to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobEvent {
    /// A driver leased it (again, after a redelivery).
    Start,
    /// Its video became ready.
    Finish,
    /// It stopped with a code (or its video was taken down).
    Fail,
}

impl JobEvent {
    /// Every event, for exhaustive checks.
    pub const ALL: [Self; 3] = [Self::Start, Self::Finish, Self::Fail];

    /// The states this event may move a job out of.
    pub fn from(self) -> &'static [JobState] {
        &[JobState::Queued, JobState::Running]
    }

    /// The state it moves a job into.
    pub fn to(self) -> JobState {
        match self {
            Self::Start => JobState::Running,
            Self::Finish => JobState::Done,
            Self::Fail => JobState::Failed,
        }
    }
}

/// Where `event` takes a job in `state`, or why it does not.
pub fn job_transition(state: JobState, event: JobEvent) -> Result<JobState, Refused<JobState>> {
    if event.from().contains(&state) { Ok(event.to()) } else { Err(Refused { state }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB_STATES: [JobState; 4] = [JobState::Queued, JobState::Running, JobState::Done, JobState::Failed];

    /// The whole table, written out: (state, event) → next state, `None` where refused.
    fn expected(state: VideoState, event: Event) -> Option<VideoState> {
        use Event::*;
        use VideoState::*;
        match (state, event) {
            (Uploading, Queue) => Some(Queued),
            (Queued | Processing, Progress) => Some(Processing),
            (Queued | Processing, Finish) => Some(Ready),
            (Queued | Processing, Fail) => Some(Failed),
            (Uploading | Queued | Processing | Ready | Failed, TakeDown) => Some(Deleted),
            (Deleted, Restore) => Some(Ready),
            _ => None,
        }
    }

    #[test]
    fn every_video_state_and_event_matches_the_table() {
        for state in VideoState::ALL {
            for event in Event::ALL {
                let got = transition(state, event).ok();
                assert_eq!(got, expected(state, event), "{state:?} + {event:?}");
            }
        }
    }

    #[test]
    fn deleted_is_left_only_by_a_restore_and_nothing_leaves_ready_but_a_takedown() {
        for event in Event::ALL {
            if event != Event::Restore {
                assert_eq!(transition(VideoState::Deleted, event), Err(Refused { state: VideoState::Deleted }));
            }
            if event != Event::TakeDown {
                assert!(transition(VideoState::Ready, event).is_err(), "{event:?} must not leave ready");
            }
        }
    }

    #[test]
    fn refusals_name_the_state_they_met() {
        assert_eq!(transition(VideoState::Ready, Event::Progress), Err(Refused { state: VideoState::Ready }));
    }

    #[test]
    fn every_job_state_and_event() {
        for state in JOB_STATES {
            for event in JobEvent::ALL {
                let ended = matches!(state, JobState::Done | JobState::Failed);
                let got = job_transition(state, event);
                if ended {
                    assert_eq!(got, Err(Refused { state }), "{state:?} + {event:?}: an ended job stays ended");
                } else {
                    assert_eq!(got, Ok(event.to()), "{state:?} + {event:?}");
                }
            }
        }
    }

    #[test]
    fn only_ending_events_send_webhooks() {
        let hooks: Vec<_> = Event::ALL.into_iter().filter_map(Event::webhook).collect();
        assert_eq!(hooks, ["video.ready", "video.failed", "video.deleted", "video.restored"]);
    }
}

//! What a caller may do with a video: a pure policy, so every route asks the same question
//! and the answer is tested in one place. Refusals never say more than the caller may know:
//! a private video someone may not watch is `403 private_video` (its page says so, as
//! YouTube's does), and one they may not manage is `403 not_owner`.

use super::Principal;
use crate::error::{Error, Result};
use crate::meta::people::Role;
use crate::meta::{Privacy, Video};

/// Whether `who` owns `video`.
pub fn owns(video: &Video, who: &Principal) -> bool {
    video.creator == who.id
}

/// Whether `who` (`None`: nobody signed in) may see and play `video`; `shared` says whether
/// the owner shared it with them (only asked for private videos).
pub fn may_watch(video: &Video, who: Option<&Principal>, shared: bool) -> bool {
    match video.privacy {
        Privacy::Public | Privacy::Unlisted => true,
        Privacy::Private => who.is_some_and(|w| owns(video, w) || w.is(Role::Moderator) || shared),
    }
}

/// `Ok` when `who` may see and play `video`, else the refusal.
pub fn check_watch(video: &Video, who: Option<&Principal>, shared: bool) -> Result<()> {
    if may_watch(video, who, shared) {
        Ok(())
    } else if who.is_none() {
        Err(Error::refused(crate::error::Kind::Unauthenticated, "private_video", "this video is private: sign in"))
    } else {
        Err(Error::forbidden("private_video", "this video is private and not shared with you"))
    }
}

/// `Ok` when `who` may change `video`'s metadata, privacy and shares: its owner, or an admin.
pub fn check_manage(video: &Video, who: &Principal) -> Result<()> {
    if owns(video, who) || who.is(Role::Admin) {
        Ok(())
    } else {
        Err(Error::forbidden("not_owner", "the video belongs to another creator"))
    }
}

/// `Ok` when `who` may take `video` down: its owner, or a moderator.
pub fn check_take_down(video: &Video, who: &Principal) -> Result<()> {
    if owns(video, who) || who.is(Role::Moderator) {
        Ok(())
    } else {
        Err(Error::forbidden("not_owner", "the video belongs to another creator"))
    }
}

/// Whether `who` should see `video`'s internals (failure codes, moderation decisions, shares).
pub fn sees_internals(video: &Video, who: Option<&Principal>) -> bool {
    who.is_some_and(|w| owns(video, w) || w.is(Role::Moderator))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Via;
    use crate::meta::VideoState;

    fn video(privacy: Privacy) -> Video {
        Video {
            id: "v".into(),
            creator: "alice".into(),
            title: "t".into(),
            description: String::new(),
            language: "und".into(),
            filename: "f".into(),
            size: 1,
            content_type: "video/mp4".into(),
            state: VideoState::Ready,
            error_code: None,
            error_message: None,
            progress: 1.0,
            duration: Some(1.0),
            renditions: Vec::new(),
            created_at: 0,
            updated_at: 0,
            privacy,
            channel: None,
            views: 0,
            gated: false,
            retained_until: None,
            poster: 0,
        }
    }

    fn who(id: &str, role: Role) -> Principal {
        Principal { id: id.into(), handle: id.into(), role, via: Via::Session { secret_sha256: String::new() } }
    }

    #[test]
    fn private_videos_are_for_their_owner_moderators_and_those_shared_with() {
        let v = video(Privacy::Private);
        let (alice, bob, moderator) =
            (who("alice", Role::Creator), who("bob", Role::Creator), who("m", Role::Moderator));
        assert!(may_watch(&v, Some(&alice), false));
        assert!(may_watch(&v, Some(&moderator), false));
        assert!(!may_watch(&v, Some(&bob), false));
        assert!(may_watch(&v, Some(&bob), true));
        assert!(!may_watch(&v, None, false));
        assert_eq!(check_watch(&v, None, false).unwrap_err().code(), "private_video");
        assert_eq!(check_watch(&v, Some(&bob), false).unwrap_err().code(), "private_video");
        for open in [Privacy::Public, Privacy::Unlisted] {
            assert!(may_watch(&video(open), None, false));
        }
    }

    #[test]
    fn only_owners_and_admins_manage_and_moderators_take_down() {
        let v = video(Privacy::Public);
        let (alice, bob) = (who("alice", Role::Creator), who("bob", Role::Creator));
        let (moderator, admin) = (who("m", Role::Moderator), who("a", Role::Admin));
        assert!(check_manage(&v, &alice).is_ok());
        assert_eq!(check_manage(&v, &bob).unwrap_err().code(), "not_owner");
        assert!(check_manage(&v, &moderator).is_err());
        assert!(check_manage(&v, &admin).is_ok());
        assert!(check_take_down(&v, &moderator).is_ok());
        assert!(check_take_down(&v, &bob).is_err());
        assert!(sees_internals(&v, Some(&moderator)) && !sees_internals(&v, Some(&bob)) && !sees_internals(&v, None));
    }
}

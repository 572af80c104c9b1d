//! People on the platform (P2, P3, P21): accounts, their sessions and API tokens, channels,
//! who a private video is shared with, views, and reports for moderators. Secrets are never
//! stored: a session or API token is kept as the SHA-256 of its secret, a password as its
//! Argon2id PHC string. One trait over the same SQLite or PostgreSQL pool as the rest of the
//! metadata, one conformance suite (`origin/tests/people_conformance.rs`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Millis;
use crate::error::Result;

/// What an account may do. Ordered: each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Watches, reports, is shared private videos.
    Viewer,
    /// Also uploads to their channels.
    Creator,
    /// Also sees the report queue, takes videos down and restores them.
    Moderator,
    /// Also changes roles.
    Admin,
}

impl Role {
    /// Every role, least to most.
    pub const ALL: [Self; 4] = [Self::Viewer, Self::Creator, Self::Moderator, Self::Admin];

    /// Stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Creator => "creator",
            Self::Moderator => "moderator",
            Self::Admin => "admin",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Id (lower-case hex).
    pub id: String,
    /// The unique name people sign in with and see (`@handle`), as typed; unique ignoring case.
    pub handle: String,
    /// Shown name, any script.
    pub display_name: String,
    /// Optional; nothing is ever mailed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// What the account may do.
    pub role: Role,
    /// The password's Argon2id PHC string (never serialised: not to clients, not to caches).
    #[serde(skip)]
    pub password_phc: String,
    /// Creation time.
    pub created_at: Millis,
}

/// A signed-in browser. The cookie holds the secret; the store holds its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the cookie's secret, hex.
    pub secret_sha256: String,
    /// The account.
    pub user_id: String,
    /// The anti-forgery token state-changing requests must echo in `x-csrf-token`.
    pub csrf: String,
    /// Creation time.
    pub created_at: Millis,
    /// When it stops working, whatever happens.
    pub expires_at: Millis,
    /// When it was revoked (signed out, or every session of the account ended).
    pub revoked_at: Option<Millis>,
}

/// What an API token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Create videos and upload them.
    Upload,
    /// Read and change one's own videos (metadata, privacy, shares, deletion).
    Manage,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Self; 2] = [Self::Upload, Self::Manage];

    /// Stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upload => "upload",
            Self::Manage => "manage",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A personal API token (for scripts and `origin ingest`). Shown once; stored as a SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// Public id (also the token's prefix, so a leaked token is found and revoked by it).
    pub id: String,
    /// The account.
    pub user_id: String,
    /// The owner's label.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// SHA-256 of the whole token, hex.
    #[serde(skip)]
    pub secret_sha256: String,
    /// Creation time.
    pub created_at: Millis,
    /// When it was revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Millis>,
}

/// A channel: where a creator's videos are listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Channel {
    /// Id (lower-case hex).
    pub id: String,
    /// Owning account.
    pub owner: String,
    /// Unique name in URLs, unique ignoring case.
    pub handle: String,
    /// Shown name, any script.
    pub name: String,
    /// Creation time.
    pub created_at: Millis,
}

/// Why a video was reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportReason {
    /// Someone else's work.
    Copyright,
    /// Against the law.
    Illegal,
    /// Not for everyone: may be gated instead of removed.
    Sensitive,
    /// Spam or scam.
    Spam,
}

impl ReportReason {
    /// Every reason.
    pub const ALL: [Self; 4] = [Self::Copyright, Self::Illegal, Self::Sensitive, Self::Spam];

    /// Stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Copyright => "copyright",
            Self::Illegal => "illegal",
            Self::Sensitive => "sensitive",
            Self::Spam => "spam",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What a moderator decided about a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The video was taken down.
    TakenDown,
    /// The video was gated as sensitive (shown after a confirmation).
    Gated,
    /// Nothing to do.
    Dismissed,
}

impl Resolution {
    /// Every resolution.
    pub const ALL: [Self; 3] = [Self::TakenDown, Self::Gated, Self::Dismissed];

    /// Stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TakenDown => "taken_down",
            Self::Gated => "gated",
            Self::Dismissed => "dismissed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A report of a video.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Id (lower-case hex).
    pub id: String,
    /// The video.
    pub video_id: String,
    /// Who reported it.
    pub reporter: String,
    /// Why.
    pub reason: ReportReason,
    /// The reporter's words.
    pub text: String,
    /// When.
    pub created_at: Millis,
    /// Once decided: what, by whom, when, and the note the creator sees.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// The moderator who decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    /// When it was decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Millis>,
    /// The moderator's note, shown to the creator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What became of adding an account or channel whose handle must be unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// Stored.
    Created,
    /// The handle is taken (ignoring case).
    HandleTaken,
}

/// Storage of accounts and what hangs off them.
#[async_trait]
pub trait PeopleStore: Send + Sync {
    /// Adds an account and its first channel in one transaction (the channel's handle is the
    /// account's); `HandleTaken` when either handle is taken, ignoring case.
    async fn create_user(&self, user: &User, channel: &Channel) -> Result<Claimed>;
    /// An account by id.
    async fn user(&self, id: &str) -> Result<Option<User>>;
    /// An account by handle, ignoring case.
    async fn user_by_handle(&self, handle: &str) -> Result<Option<User>>;
    /// Whether any account is an admin: until one is, the configuration's creator tokens act
    /// as the bootstrap admin.
    async fn has_admin(&self) -> Result<bool>;
    /// Changes an account's role; false when there is no such account.
    async fn set_role(&self, user_id: &str, role: Role) -> Result<bool>;
    /// Replaces an account's password hash and revokes every session of it; false when there
    /// is no such account.
    async fn set_password(&self, user_id: &str, phc: &str, now: Millis) -> Result<bool>;

    /// Stores a new session.
    async fn create_session(&self, s: &Session) -> Result<()>;
    /// A session by the SHA-256 of its secret, revoked or expired ones included.
    async fn session(&self, secret_sha256: &str) -> Result<Option<Session>>;
    /// Revokes one session; false when it does not exist or already was.
    async fn revoke_session(&self, secret_sha256: &str, now: Millis) -> Result<bool>;
    /// Revokes every live session of an account; how many.
    async fn revoke_sessions_of(&self, user_id: &str, now: Millis) -> Result<u64>;

    /// Stores a new API token.
    async fn create_token(&self, t: &ApiToken) -> Result<()>;
    /// A token by id, revoked ones included.
    async fn token(&self, id: &str) -> Result<Option<ApiToken>>;
    /// An account's tokens, newest first, revoked ones included.
    async fn tokens_of(&self, user_id: &str) -> Result<Vec<ApiToken>>;
    /// Revokes a token of `user_id`; false when it is not theirs, does not exist, or already was.
    async fn revoke_token(&self, user_id: &str, id: &str, now: Millis) -> Result<bool>;

    /// Adds a channel; `HandleTaken` when its handle is taken, ignoring case.
    async fn create_channel(&self, c: &Channel) -> Result<Claimed>;
    /// A channel by id.
    async fn channel(&self, id: &str) -> Result<Option<Channel>>;
    /// A channel by handle, ignoring case.
    async fn channel_by_handle(&self, handle: &str) -> Result<Option<Channel>>;
    /// An account's channels, oldest first.
    async fn channels_of(&self, owner: &str) -> Result<Vec<Channel>>;

    /// Shares a private video with an account (idempotent).
    async fn share(&self, video_id: &str, user_id: &str, now: Millis) -> Result<()>;
    /// Stops sharing; false when it was not shared.
    async fn unshare(&self, video_id: &str, user_id: &str) -> Result<bool>;
    /// Whether a video is shared with an account.
    async fn is_shared(&self, video_id: &str, user_id: &str) -> Result<bool>;
    /// The accounts a video is shared with, by id.
    async fn shares_of(&self, video_id: &str) -> Result<Vec<String>>;

    /// Counts a view of `video_id` by `viewer` (a hash of the session or of the anonymous
    /// viewer's id) at most once: true when it was new, and then the video's count went up.
    async fn count_view(&self, video_id: &str, viewer: &str, now: Millis) -> Result<bool>;

    /// Bytes of videos `creator` created since `since` (deleted ones included: bytes uploaded
    /// today count against today's quota however they ended), and of its videos not deleted.
    async fn upload_usage(&self, creator: &str, since: Millis) -> Result<(u64, u64)>;

    /// When each video `creator` created since `since` was created, and its size, oldest
    /// first (deleted ones included, as in [`upload_usage`](Self::upload_usage)).
    async fn uploads_since(&self, creator: &str, since: Millis) -> Result<Vec<(Millis, u64)>>;

    /// Files a report.
    async fn create_report(&self, r: &Report) -> Result<()>;
    /// A report by id.
    async fn report(&self, id: &str) -> Result<Option<Report>>;
    /// Undecided reports, oldest first.
    async fn open_reports(&self, limit: u32) -> Result<Vec<Report>>;
    /// A video's reports, oldest first.
    async fn reports_of(&self, video_id: &str) -> Result<Vec<Report>>;
    /// The decided reports of every video of `creator`, oldest first: one query for a
    /// creator's list of videos (`GET /v1/me/videos`), not one per video.
    async fn decided_reports_for_creator(&self, creator: &str) -> Result<Vec<Report>>;
    /// Decides an undecided report; false when it does not exist or was decided already.
    async fn resolve_report(
        &self,
        id: &str,
        resolution: Resolution,
        moderator: &str,
        note: &str,
        now: Millis,
    ) -> Result<bool>;
}

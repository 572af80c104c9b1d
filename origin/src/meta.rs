//! The metadata database (P2): videos, uploads, jobs, wrapped content keys, webhooks, the
//! takedown audit trail and the purge log edges follow. One trait, two implementations
//! (`sql::SqlStore` over SQLite or PostgreSQL), one conformance suite
//! (`origin/tests/meta_conformance.rs`) run against every implementation.

pub mod ondemand;
pub mod people;
pub mod pops;
pub mod sql;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Milliseconds since the Unix epoch; every timestamp in the store uses it.
pub type Millis = i64;

/// Where a video is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoState {
    /// Created; bytes are arriving.
    Uploading,
    /// Upload complete; a job is waiting for workers.
    Queued,
    /// Workers are transcoding it.
    Processing,
    /// Playable.
    Ready,
    /// Processing stopped; `error_code` says why.
    Failed,
    /// Taken down.
    Deleted,
}

impl VideoState {
    /// Every state, in the order of a video's life.
    pub const ALL: [Self; 6] =
        [Self::Uploading, Self::Queued, Self::Processing, Self::Ready, Self::Failed, Self::Deleted];

    /// Stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uploading => "uploading",
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Ready => "ready",
            Self::Failed => "failed",
            Self::Deleted => "deleted",
        }
    }

    /// Whether the video's objects and key may leave the origin: only `ready` today. The
    /// one place that decides it (on-demand encoding will widen it to servable states).
    pub fn is_servable(self) -> bool {
        self == Self::Ready
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Who may find and play a video.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Privacy {
    /// Listed in the catalogue, search and its channel; anyone may play it.
    #[default]
    Public,
    /// Anyone with the link may play it; never listed or searched.
    Unlisted,
    /// Only its owner, moderators and the accounts it is shared with.
    Private,
}

impl Privacy {
    /// Every level.
    pub const ALL: [Self; 3] = [Self::Public, Self::Unlisted, Self::Private];

    /// Stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Unlisted => "unlisted",
            Self::Private => "private",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// One rendition of a ready video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendition {
    /// Folder name ("720p", "audio").
    pub name: String,
    /// RFC 6381 codecs.
    pub codecs: String,
    /// Width (0 for audio).
    pub width: u32,
    /// Height (0 for audio).
    pub height: u32,
    /// Average bitrate, bit/s (the rung's cap while it is not encoded).
    pub bitrate: u64,
    /// Not encoded at upload: encoded when asked for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_demand: bool,
    /// Materialisation state, as `GET /v1/videos/{id}` reports it (not stored here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ondemand::RungState>,
}

/// A video's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Video {
    /// Id (lower-case hex).
    pub id: String,
    /// Owning creator.
    pub creator: String,
    /// Title, any script.
    pub title: String,
    /// Description, any script.
    pub description: String,
    /// BCP 47 language tag.
    pub language: String,
    /// Original file name.
    pub filename: String,
    /// Declared size in bytes.
    pub size: u64,
    /// Declared content type.
    pub content_type: String,
    /// Life-cycle state.
    pub state: VideoState,
    /// Why it failed.
    pub error_code: Option<String>,
    /// Human reason for the failure.
    pub error_message: Option<String>,
    /// 0.0 to 1.0 while uploading or processing.
    pub progress: f64,
    /// Seconds, once ready.
    pub duration: Option<f64>,
    /// Renditions, once ready.
    pub renditions: Vec<Rendition>,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
    /// Who may find and play it.
    #[serde(default)]
    pub privacy: Privacy,
    /// The channel it is listed in (`None`: a bootstrap creator's video, in no channel).
    #[serde(default)]
    pub channel: Option<String>,
    /// Views counted (once per viewing session, after some seconds of playback).
    #[serde(default)]
    pub views: u64,
    /// Shown only after the viewer confirms (a moderator gated it as sensitive).
    #[serde(default)]
    pub gated: bool,
    /// Taken down by a moderator but kept until then (Unix ms), so that it can be restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained_until: Option<Millis>,
    /// The poster choice its creator picked (`encoder::layout::poster_choice`); 0: the
    /// encoder's own pick.
    #[serde(default)]
    pub poster: u8,
}

/// What a new video starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVideo {
    /// Id.
    pub id: String,
    /// Creator.
    pub creator: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Language.
    pub language: String,
    /// File name.
    pub filename: String,
    /// Declared size.
    pub size: u64,
    /// Declared content type.
    pub content_type: String,
    /// Who may find and play it.
    pub privacy: Privacy,
    /// Its channel.
    pub channel: Option<String>,
    /// Now.
    pub now: Millis,
}

/// Metadata a creator may change at any time, even while bytes are still arriving.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoPatch {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New language.
    pub language: Option<String>,
    /// New privacy level.
    pub privacy: Option<Privacy>,
    /// New poster choice (0: the encoder's pick); checked by the API.
    pub poster: Option<u8>,
    /// Gate (true) or ungate it as sensitive: moderators only, checked by the API.
    #[serde(skip)]
    pub gated: Option<bool>,
}

/// A listing request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VideoQuery {
    /// Case-insensitive substring of the title, in any script.
    pub title: Option<String>,
    /// Only this creator's videos.
    pub creator: Option<String>,
    /// Only this channel's videos.
    pub channel: Option<String>,
    /// Only public videos (the catalogue, search and channel pages).
    pub public_only: bool,
    /// Include taken-down videos.
    pub include_deleted: bool,
    /// Page size.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u32,
}

/// A state change as the store writes it; `lifecycle::apply` makes them, nothing else.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    /// New state.
    pub state: VideoState,
    /// New progress (`None` keeps it).
    pub progress: Option<f64>,
    /// (code, message) when failing.
    pub error: Option<(String, String)>,
    /// Duration and renditions when becoming ready.
    pub result: Option<(f64, Vec<Rendition>)>,
    /// Now.
    pub now: Millis,
}

/// What kind of tus upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadKind {
    /// A whole file.
    Single,
    /// One part of a parallel upload (tus concatenation).
    Partial,
    /// The concatenation of partial uploads.
    Final,
}

/// A tus upload.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    /// Id (unguessable hex).
    pub id: String,
    /// The video it belongs to.
    pub video_id: String,
    /// Total length in bytes.
    pub length: u64,
    /// Bytes acknowledged (durable).
    pub offset: u64,
    /// Single, partial or final.
    pub kind: UploadKind,
    /// For a final upload: the partial upload ids, in order.
    pub parts: Vec<String>,
    /// The raw `Upload-Metadata` header.
    pub metadata: String,
    /// When an incomplete upload is removed.
    pub expires_at: Millis,
    /// Creation time.
    pub created_at: Millis,
}

/// One acknowledged run of an upload's bytes, stored as one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Where it starts in the upload.
    pub offset: u64,
    /// Its bytes.
    pub length: u64,
    /// Its blob key.
    pub object: String,
}

/// Whether a video still takes uploads, and which upload completed it (at most one ever does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intake {
    /// The video's state.
    pub state: VideoState,
    /// The upload whose completion queued the video (or is queuing it now).
    pub completed_by: Option<String>,
}

impl Intake {
    /// Whether a new upload may start: still uploading, and no upload completed it.
    pub fn is_open(&self) -> bool {
        self.state == VideoState::Uploading && self.completed_by.is_none()
    }

    /// Whether `upload` may still receive bytes: the video is open, or `upload` is the one
    /// that completed it (a retried last request is answered, not refused).
    pub fn takes(&self, upload: &str) -> bool {
        match &self.completed_by {
            _ if self.state == VideoState::Deleted => false,
            Some(by) => by == upload,
            None => self.state == VideoState::Uploading,
        }
    }
}

/// What became of a request to record a new upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Recorded.
    Admitted,
    /// The video does not take uploads (`None`: it does not exist).
    Closed(Option<Intake>),
    /// The video already has this many single or partial uploads, the most allowed.
    TooMany(usize),
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a driver.
    Queued,
    /// A driver runs its DAG.
    Running,
    /// Finished; the video is ready.
    Done,
    /// Stopped with an error.
    Failed,
}

impl JobState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Done, Self::Failed].into_iter().find(|v| v.as_str() == s)
    }
}

/// A transcoding job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Id.
    pub id: String,
    /// Video.
    pub video_id: String,
    /// State.
    pub state: JobState,
    /// Failure code.
    pub error_code: Option<String>,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

/// A content key wrapped with the master key (envelope encryption).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Video.
    pub video_id: String,
    /// Which master key wrapped it.
    pub master_version: u32,
    /// AEAD nonce.
    pub nonce: Vec<u8>,
    /// Sealed content key (with tag).
    pub sealed: Vec<u8>,
}

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Audit {
    /// When.
    pub at: Millis,
    /// Who (creator or operator id).
    pub actor: String,
    /// What ("takedown").
    pub action: String,
    /// Which video.
    pub video_id: String,
    /// Why.
    pub reason: String,
}

/// A creator's webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Creator.
    pub creator: String,
    /// Where to POST.
    pub url: String,
    /// HMAC secret for the signature header.
    pub secret: String,
}

/// The metadata store.
#[async_trait]
pub trait MetaStore: Send + Sync {
    /// Creates a video in `uploading`.
    async fn create_video(&self, v: &NewVideo) -> Result<Video>;
    /// Removes a video just created, while it is still `uploading` with no upload begun (one
    /// that came in over the creator's quota together with another: `api/videos.rs`); `false`
    /// when it has moved on or is gone.
    async fn discard_new_video(&self, id: &str) -> Result<bool>;
    /// A video by id (deleted ones included).
    async fn video(&self, id: &str) -> Result<Option<Video>>;
    /// Videos, newest first.
    async fn list_videos(&self, q: &VideoQuery) -> Result<Vec<Video>>;
    /// Applies a metadata patch; `None` when the video does not exist.
    async fn patch_video(&self, id: &str, patch: &VideoPatch, now: Millis) -> Result<Option<Video>>;
    /// Moves a video to a new state if it is in one of `from`, atomically on every API node;
    /// `None` when it does not exist or is in another state. Only `lifecycle::apply` calls it.
    async fn change_state(&self, id: &str, from: &[VideoState], change: &StateChange) -> Result<Option<Video>>;

    /// Records a new upload, unconditionally.
    async fn create_upload(&self, u: &Upload) -> Result<()>;
    /// Records a new upload of a video that is open for uploads and, unless it is a
    /// concatenation, has fewer than `max_open` single and partial uploads. Atomic against
    /// other admissions and completions of the same video, on every API node.
    async fn admit_upload(&self, u: &Upload, max_open: usize) -> Result<Admission>;
    /// A video's intake: its state and the upload that completed it.
    async fn intake(&self, video_id: &str) -> Result<Option<Intake>>;
    /// Claims the one completion of an uploading video for `upload_id`; true when the claim
    /// is (or already was) this upload's. Of two uploads racing, exactly one wins.
    async fn claim_completion(&self, video_id: &str, upload_id: &str) -> Result<bool>;
    /// Gives a claim back while the video is still uploading (its completion failed).
    async fn release_completion(&self, video_id: &str, upload_id: &str) -> Result<()>;
    /// Moves the video from uploading to queued and records its job, in one transaction,
    /// when `upload_id` holds the claim. `None` when it does not (or the video moved on).
    async fn queue_completed(&self, video_id: &str, upload_id: &str, job: &Job, now: Millis) -> Result<Option<Video>>;
    /// An upload by id.
    async fn upload(&self, id: &str) -> Result<Option<Upload>>;
    /// Records a stored piece of an upload and moves the upload's offset past it, in one
    /// transaction, if the offset is still `piece.offset`; false when it is not (another
    /// request, on any node, got there first) or the upload does not exist.
    async fn append_piece(&self, upload: &str, piece: &Piece) -> Result<bool>;
    /// An upload's pieces, in order.
    async fn pieces(&self, upload: &str) -> Result<Vec<Piece>>;
    /// Removes an upload record and its pieces' records.
    async fn delete_upload(&self, id: &str) -> Result<()>;
    /// Uploads whose expiry is before `now` and that are incomplete or partial (a partial
    /// upload, complete or not, only ever serves a concatenation).
    async fn expired_uploads(&self, now: Millis) -> Result<Vec<Upload>>;
    /// Every upload of a video.
    async fn uploads_of(&self, video_id: &str) -> Result<Vec<Upload>>;

    /// Records a job.
    async fn create_job(&self, j: &Job) -> Result<()>;
    /// A job by id.
    async fn job(&self, id: &str) -> Result<Option<Job>>;
    /// Changes a job's state if it is in one of `from`; false when it is not (or the job does
    /// not exist). Only `lifecycle::apply` calls it.
    async fn set_job_state(
        &self,
        id: &str,
        from: &[JobState],
        state: JobState,
        error_code: Option<&str>,
        now: Millis,
    ) -> Result<bool>;
    /// Records that a job's message is on the queue.
    async fn job_published(&self, id: &str) -> Result<()>;
    /// Queued jobs created before `before` whose message is not known to be on the queue.
    async fn unpublished_jobs(&self, before: Millis) -> Result<Vec<Job>>;
    /// Jobs not yet done or failed, oldest first.
    async fn unfinished_jobs(&self) -> Result<Vec<Job>>;

    /// Stores (replaces) a video's wrapped key.
    async fn put_key(&self, k: &WrappedKey) -> Result<()>;
    /// A video's wrapped key.
    async fn key(&self, video_id: &str) -> Result<Option<WrappedKey>>;
    /// Removes a video's key (takedown).
    async fn delete_key(&self, video_id: &str) -> Result<()>;

    /// Takes a ready video down but keeps its bytes and key until `until`: `None` when it
    /// does not exist or is not ready. Only `lifecycle::apply` calls it.
    async fn suspend_video(&self, id: &str, until: Millis, now: Millis) -> Result<Option<Video>>;
    /// Makes a suspended video ready again while it is retained (`retained_until > now`);
    /// `None` otherwise. Only `lifecycle::apply` calls it.
    async fn restore_video(&self, id: &str, now: Millis) -> Result<Option<Video>>;
    /// Taken-down videos whose retention ended at or before `now`, at most `limit`.
    async fn expired_retentions(&self, now: Millis, limit: u32) -> Result<Vec<String>>;
    /// Ends an expired retention (its bytes may go): false when it is not expired, or a restore
    /// or another node got there first.
    async fn end_retention(&self, id: &str, now: Millis) -> Result<bool>;

    /// Appends an audit row.
    async fn add_audit(&self, a: &Audit) -> Result<()>;
    /// Audit rows of a video, oldest first.
    async fn audits(&self, video_id: &str) -> Result<Vec<Audit>>;

    /// Sets (replaces) a creator's webhook.
    async fn set_webhook(&self, w: &Webhook) -> Result<()>;
    /// A creator's webhook.
    async fn webhook(&self, creator: &str) -> Result<Option<Webhook>>;

    /// Appends a purge for edges; returns its sequence number.
    async fn add_purge(&self, video_id: &str, now: Millis) -> Result<i64>;
    /// Purges after `seq`, in order: (seq, video id).
    async fn purges_after(&self, seq: i64) -> Result<Vec<(i64, String)>>;
}

/// Now, in store time.
pub fn now() -> Millis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis)
}

//! The worker interface: what a task asks for and what it gives back.
//!
//! Everything here is plain serialisable data that names its inputs and outputs by
//! artifact key (a path relative to the job's working storage), so a task can be run by
//! the in-process thread pool today and handed to a remote worker over a queue later,
//! without the DAG code knowing the difference.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Rejection};
use crate::ladder::Rung;
use crate::media::{Limits, MediaInfo, Timeline, VideoInfo};
use crate::pipeline::{AudioSpec, PackageSpec, ThumbnailSpec, WatermarkSpec};

/// What kind of work a task is; workers advertise the kinds they accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Probe and validate the source.
    Inspect,
    /// Cut the source at GOP boundaries.
    Split,
    /// Render the watermark overlay.
    Watermark,
    /// Encode one chunk into every rung of a ladder.
    Encode,
    /// Encode the audio rendition.
    Audio,
    /// Poster and storyboard.
    Thumbnail,
    /// Segments, playlists, manifests.
    Package,
}

impl TaskKind {
    /// Every kind, in pipeline order.
    pub const ALL: [Self; 7] =
        [Self::Inspect, Self::Split, Self::Watermark, Self::Encode, Self::Audio, Self::Thumbnail, Self::Package];

    /// Name as written in pipeline files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inspect => "inspect",
            Self::Split => "split",
            Self::Watermark => "watermark",
            Self::Encode => "encode",
            Self::Audio => "audio",
            Self::Thumbnail => "thumbnail",
            Self::Package => "package",
        }
    }

    /// Parses a pipeline-file kind.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A unit of work for one worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The job it belongs to.
    pub job: String,
    /// Unique within the job, stable across restarts: "encode/video/0003".
    pub id: String,
    /// The pipeline node it comes from.
    pub node: String,
    /// 1 for the first run.
    pub attempt: u32,
    /// Higher runs first.
    pub priority: i64,
    /// Root of the job's working storage; artifact keys are relative to it.
    pub store: String,
    /// The work itself.
    pub work: Work,
}

impl TaskSpec {
    /// The task's kind.
    pub fn kind(&self) -> TaskKind {
        match self.work {
            Work::Inspect { .. } => TaskKind::Inspect,
            Work::Split { .. } => TaskKind::Split,
            Work::Watermark { .. } => TaskKind::Watermark,
            Work::Encode { .. } => TaskKind::Encode,
            Work::Audio { .. } => TaskKind::Audio,
            Work::Thumbnail { .. } => TaskKind::Thumbnail,
            Work::Package { .. } => TaskKind::Package,
        }
    }
}

/// Per-kind inputs.
// A job holds a handful of these and they travel as JSON: boxing the package variant would
// save nothing that matters and change the type every producer builds.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Work {
    /// Probe and validate `source`.
    Inspect {
        /// Source location.
        source: String,
        /// What to accept.
        limits: Limits,
    },
    /// Cut `source` into chunks of whole GOPs.
    Split {
        /// Source location.
        source: String,
        /// What inspect found.
        media: MediaInfo,
        /// Minimum chunk length.
        chunk_seconds: f64,
    },
    /// Render the overlay picture for `video`'s display size.
    Watermark {
        /// What to draw.
        spec: WatermarkSpec,
        /// The source video.
        video: VideoInfo,
    },
    /// Decode one chunk once and encode it into every rung.
    Encode {
        /// The chunk.
        chunk: Chunk,
        /// The timeline all chunks share.
        timeline: Timeline,
        /// The source video (rotation, size).
        video: VideoInfo,
        /// The rungs to produce.
        rungs: Vec<Rung>,
        /// Overlay to burn in first.
        overlay: Option<Overlay>,
        /// Keyframes are forced at multiples of this.
        segment_seconds: f64,
        /// Output key per rung, same order as `rungs`.
        outputs: Vec<String>,
        /// Rungs encoded later (just in time or on promotion); the first chunk records
        /// their codec configuration so the packager can publish their init segments.
        #[serde(default)]
        deferred: Vec<Rung>,
    },
    /// Encode the audio rendition.
    Audio {
        /// Source location.
        source: String,
        /// What inspect found.
        media: MediaInfo,
        /// The timeline the video uses, so both start together.
        timeline: Timeline,
        /// Codec and bitrate.
        spec: AudioSpec,
        /// Output key.
        output: String,
    },
    /// Poster and storyboard.
    Thumbnail {
        /// Source location.
        source: String,
        /// What inspect found.
        media: MediaInfo,
        /// Sizes and intervals.
        spec: ThumbnailSpec,
    },
    /// Segment, encrypt and describe everything.
    Package {
        /// Settings.
        spec: PackageSpec,
        /// Every encoded video ladder.
        ladders: Vec<EncodedLadder>,
        /// The encoded audio, if the source has sound.
        audio: Option<EncodedPart>,
        /// Pictures to publish beside the playlists.
        thumbnails: Option<Thumbnails>,
        /// Segment target.
        segment_seconds: f64,
        /// Destination folder of the playable output.
        out_dir: String,
        /// AES-128 settings; `None` leaves segments clear.
        encryption: Option<Encryption>,
        /// What a later just-in-time encode needs, when the job keeps it.
        #[serde(default)]
        on_demand: Option<OnDemandInputs>,
    },
}

/// The facts the package task writes into the on-demand plan beside the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnDemandInputs {
    /// What inspect found.
    pub media: MediaInfo,
    /// Every source keyframe (from split).
    pub keyframes: Vec<Keyframe>,
    /// The watermark, copied beside the plan.
    pub overlay: Option<Overlay>,
}

impl Work {
    /// Artifact keys (relative to the job's storage) the work reads.
    pub fn inputs(&self) -> Vec<String> {
        match self {
            Self::Encode { chunk, overlay, .. } => {
                std::iter::once(chunk.key.clone()).chain(overlay.iter().map(|o| o.key.clone())).collect()
            }
            Self::Package { ladders, audio, thumbnails, on_demand, .. } => ladders
                .iter()
                .flat_map(|l| l.parts.iter())
                .chain(audio.iter())
                .flat_map(|p| p.keys.iter().cloned())
                .chain(ladders.iter().flat_map(|l| l.deferred.iter().map(|d| d.template.clone())))
                .chain(thumbnails.iter().flat_map(Thumbnails::keys))
                .chain(on_demand.iter().filter_map(|o| o.overlay.as_ref()).map(|o| o.key.clone()))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The source location, when the work reads the source file.
    pub fn source(&self) -> Option<&str> {
        match self {
            Self::Inspect { source, .. }
            | Self::Split { source, .. }
            | Self::Audio { source, .. }
            | Self::Thumbnail { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Points the work at a worker's local copy of the source and a local output folder.
    pub fn localize(&mut self, local_source: &str, local_out_dir: &str) {
        match self {
            Self::Inspect { source, .. }
            | Self::Split { source, .. }
            | Self::Audio { source, .. }
            | Self::Thumbnail { source, .. } => *source = local_source.to_owned(),
            Self::Package { out_dir, .. } => *out_dir = local_out_dir.to_owned(),
            Self::Watermark { .. } | Self::Encode { .. } => {}
        }
    }
}

/// A run of whole source GOPs stored as its own file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// 0-based position.
    pub index: u32,
    /// Artifact key of the chunk file.
    pub key: String,
    /// First output tick this chunk owns (inclusive).
    pub start: i64,
    /// First output tick the next chunk owns; `None` for the last chunk.
    pub end: Option<i64>,
    /// Packets stored (including the next GOP's leading pictures, if any).
    pub packets: u32,
    /// Bytes stored.
    pub bytes: u64,
}

/// The chunks of a source, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkIndex {
    /// The shared timeline.
    pub timeline: Timeline,
    /// The chunks.
    pub chunks: Vec<Chunk>,
    /// Every keyframe of the source video, in decode order: where a later encode of any
    /// segment can start decoding without reading the file from its start.
    #[serde(default)]
    pub keyframes: Vec<Keyframe>,
}

/// A source keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyframe {
    /// Its pts, in the source video stream's time base.
    pub pts: i64,
    /// Its byte position in the file (-1 when the demuxer does not know it).
    pub pos: i64,
}

/// The rendered watermark and where to put it on the display-oriented source picture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overlay {
    /// Artifact key of the RGBA PNG.
    pub key: String,
    /// Left edge in pixels.
    pub x: u32,
    /// Top edge in pixels.
    pub y: u32,
}

/// One encoded elementary stream, possibly in several parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedPart {
    /// Rendition name ("720p", "audio").
    pub name: String,
    /// Artifact keys of its parts, in timeline order.
    pub keys: Vec<String>,
}

/// A ladder after encoding: its rungs and, per rung, the chunk parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncodedLadder {
    /// The rungs encoded now.
    pub rungs: Vec<Rung>,
    /// Parts of each rung, same order as `rungs`.
    pub parts: Vec<EncodedPart>,
    /// The rungs left for later, with their recorded codec configuration.
    #[serde(default)]
    pub deferred: Vec<DeferredRung>,
}

/// A rung of the ladder that is not encoded yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeferredRung {
    /// Its settings.
    pub rung: Rung,
    /// Artifact key of its init template (hex `ftyp`+`moov`).
    pub template: String,
}

/// Published pictures, as artifact keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thumbnails {
    /// Poster JPEG.
    pub poster: String,
    /// Storyboard sprite JPEG.
    pub sprite: String,
    /// Storyboard WebVTT, referencing `storyboard.jpg`.
    pub vtt: String,
    /// Poster choices, best first (published as `poster-1.jpg`...); absent from tasks made
    /// before creators could choose.
    #[serde(default)]
    pub choices: Vec<String>,
}

impl Thumbnails {
    /// Every artifact key.
    pub fn keys(&self) -> Vec<String> {
        [&self.poster, &self.sprite, &self.vtt].into_iter().chain(&self.choices).cloned().collect()
    }
}

/// Protection inputs of the package task and of just-in-time encodes.
///
/// Fields added after the first release default when absent, so tasks queued by an older
/// origin still parse (and mean AES-128, as they did).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// The content key, hex. The cbcs key, KID and IV are derived from it
    /// ([`crate::package::cenc::CencKey::from_content_key`]).
    pub key_hex: String,
    /// The AES-128 key URI of the HLS playlists (`EXT-X-KEY:URI`), which returns the raw
    /// 16-byte key. The cbcs playlists use the same URI (see [`Protection::Cbcs`]).
    pub key_uri: String,
    /// Which trees are written.
    #[serde(default)]
    pub profile: Protection,
    /// The ClearKey licence server (absolute URL) written into the DASH manifest's
    /// `dashif:Laurl`; empty leaves it out (the player is then configured with it).
    #[serde(default)]
    pub licence_uri: String,
}

/// How the published segments are protected (see [`crate::layout`] for where each goes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protection {
    /// HLS AES-128: whole segments, CBC, the sequence number as IV; no DASH manifest.
    #[default]
    Aes128,
    /// Common Encryption 'cbcs' (ISO/IEC 23001-7) in `cbcs/`, with a DASH manifest
    /// (ClearKey and the W3C common PSSH) and HLS `METHOD=SAMPLE-AES` playlists whose key
    /// URI is `key_uri` (HLS `KEYFORMAT="identity"`). The top-level `master.m3u8` is then
    /// the cbcs one, pointing into `cbcs/`.
    Cbcs,
    /// Both trees over the same encode: AES-128 at the top, cbcs in `cbcs/`.
    Both,
}

impl Protection {
    /// Whether the top-level (AES-128) tree is written.
    pub fn writes_aes128(self) -> bool {
        matches!(self, Self::Aes128 | Self::Both)
    }

    /// Whether the `cbcs/` tree and the DASH manifest are written.
    pub fn writes_cbcs(self) -> bool {
        matches!(self, Self::Cbcs | Self::Both)
    }
}

/// What the package task produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageSummary {
    /// Renditions written, with their measured bitrates.
    pub renditions: Vec<RenditionSummary>,
    /// Number of segments per rendition.
    pub segments: usize,
    /// Output duration in seconds.
    pub duration: f64,
    /// Files written, relative to the output folder.
    pub files: Vec<String>,
    /// Whether a DASH manifest was written.
    pub dash: bool,
    /// Files for later encodes (the on-demand plan, the watermark), relative to the output
    /// folder; they are not part of the playable tree.
    #[serde(default)]
    pub source_files: Vec<String>,
}

/// One rendition in the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenditionSummary {
    /// Folder name.
    pub name: String,
    /// RFC 6381 codec string.
    pub codecs: String,
    /// Width, height (0 for audio).
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Peak segment bitrate in bit/s.
    pub peak_bitrate: u64,
    /// Average bitrate in bit/s.
    pub average_bitrate: u64,
    /// Not encoded yet: the bitrates are the rung's caps, not measurements.
    #[serde(default)]
    pub on_demand: bool,
}

/// What a task gives back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "output", rename_all = "snake_case")]
pub enum TaskOutput {
    /// From inspect.
    Inspected(MediaInfo),
    /// From split.
    Split(ChunkIndex),
    /// From watermark; `None` when nothing is drawn.
    Watermark(Option<Overlay>),
    /// From encode: the artifact keys written, one per rung.
    Encoded(Vec<String>),
    /// From audio: the artifact key, or `None` when the source is silent.
    Audio(Option<String>),
    /// From thumbnail.
    Thumbnails(Thumbnails),
    /// From package.
    Packaged(PackageSummary),
}

impl TaskOutput {
    /// Artifact keys (relative to the job's storage) the task wrote, for later tasks.
    pub fn artifacts(&self) -> Vec<String> {
        match self {
            Self::Split(index) => index.chunks.iter().map(|c| c.key.clone()).collect(),
            Self::Watermark(overlay) => overlay.iter().map(|o| o.key.clone()).collect(),
            Self::Encoded(keys) => keys.clone(),
            Self::Audio(key) => key.iter().cloned().collect(),
            Self::Thumbnails(t) => t.keys(),
            Self::Inspected(_) | Self::Packaged(_) => Vec::new(),
        }
    }
}

/// How a failure should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The input is bad: stop the job, exit 65.
    Rejected,
    /// Try again later, elsewhere.
    Retryable,
    /// Stop the job.
    Fatal,
}

/// A task's failure, as it crosses the worker boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct TaskFailure {
    /// Machine-readable code.
    pub code: String,
    /// Human message.
    pub message: String,
    /// Retry decision.
    pub class: FailureClass,
}

impl From<Error> for TaskFailure {
    fn from(e: Error) -> Self {
        let class = match &e {
            Error::Rejected { .. } => FailureClass::Rejected,
            Error::Task { rejected: true, .. } => FailureClass::Rejected,
            e if e.is_retryable() => FailureClass::Retryable,
            _ => FailureClass::Fatal,
        };
        let message = match &e {
            Error::Rejected { message, .. } => message.clone(),
            other => other.to_string(),
        };
        Self { code: e.code().to_owned(), message, class }
    }
}

impl TaskFailure {
    /// Builds the job error after the last attempt.
    pub fn into_error(self, task: &str, attempts: u32) -> Error {
        if self.class == FailureClass::Rejected
            && let Ok(reason) = serde_json::from_value::<Rejection>(serde_json::Value::String(self.code.clone()))
        {
            return Error::Rejected { reason, message: self.message };
        }
        Error::Task {
            task: task.to_owned(),
            code: self.code,
            message: self.message,
            attempts,
            rejected: self.class == FailureClass::Rejected,
        }
    }
}

/// Shared between a running task and whoever watches it: progress and cancellation.
#[derive(Debug, Clone, Default)]
pub struct TaskContext {
    inner: Arc<ContextInner>,
}

#[derive(Debug, Default)]
struct ContextInner {
    done: AtomicU64,
    total: AtomicU64,
    cancelled: AtomicBool,
    cores: AtomicU64,
}

impl TaskContext {
    /// Tells the task how many CPU cores it may keep busy.
    pub fn set_cores(&self, cores: usize) {
        self.inner.cores.store(cores as u64, Ordering::Relaxed);
    }

    /// CPU cores this task may keep busy (at least 1).
    pub fn cores(&self) -> usize {
        (self.inner.cores.load(Ordering::Relaxed) as usize).max(1)
    }

    /// Reports progress in task-defined units (frames, bytes).
    pub fn progress(&self, done: u64, total: u64) {
        self.inner.done.store(done, Ordering::Relaxed);
        self.inner.total.store(total, Ordering::Relaxed);
    }

    /// Last reported (done, total).
    pub fn read_progress(&self) -> (u64, u64) {
        (self.inner.done.load(Ordering::Relaxed), self.inner.total.load(Ordering::Relaxed))
    }

    /// Asks the task to stop at its next check.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::Relaxed);
    }

    /// Fails with [`Error::Cancelled`] when the job is being cancelled.
    pub fn check(&self) -> crate::Result<()> {
        if self.inner.cancelled.load(Ordering::Relaxed) { Err(Error::Cancelled) } else { Ok(()) }
    }
}

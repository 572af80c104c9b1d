//! Segments encoded long after the upload, only when somebody asks for them: the contract
//! between the upload job, which leaves behind what any later encode needs (an
//! [`OnDemandPlan`] beside the original), and the encode of one segment (or a run of them)
//! of one or more rungs, which must be interchangeable with the copy a full encode would
//! have made: same frames, same timeline (`tfdt`, first keyframe at the slot start, same
//! durations), same codec configuration as the rung's published init segment.
//!
//! Pure data and arithmetic; the FFmpeg half is `ffmpeg::jit`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ladder::Rung;
use crate::media::{MediaInfo, VIDEO_TIMESCALE};
use crate::task::{Encryption, Keyframe, Overlay};

/// Version of the plan format; a reader refuses plans it does not know.
pub const PLAN_VERSION: u32 = 1;

/// File name of the plan in the source folder.
pub const PLAN_FILE: &str = "plan.json";

/// File name of the rendered watermark in the source folder.
pub const OVERLAY_FILE: &str = "overlay.png";

/// Everything a later encode of any segment of any rung needs, besides the original.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnDemandPlan {
    /// [`PLAN_VERSION`].
    pub version: u32,
    /// What inspection found (the timeline, rotation, frame rate).
    pub media: MediaInfo,
    /// Every keyframe of the source video stream, in order: where a decode may start.
    pub keyframes: Vec<Keyframe>,
    /// Segment target in seconds.
    pub segment_seconds: f64,
    /// (start, duration) of every segment in video ticks, shared by every rung.
    pub segments: Vec<(i64, i64)>,
    /// Every rung of every ladder, materialised at upload or not.
    pub rungs: Vec<PlannedRung>,
    /// The watermark burnt into every rung, as [`OVERLAY_FILE`] beside the plan.
    pub overlay: Option<Overlay>,
}

/// One rung of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedRung {
    /// Settings, exactly as a full encode would use them.
    pub rung: Rung,
    /// Encoded at upload (the floor); the others wait for a viewer or a promotion.
    pub floor: bool,
}

/// Which rungs an upload encodes at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Materialise {
    /// Every rung now (the encoder CLI, and videos pinned to the full ladder).
    #[default]
    All,
    /// Only the floor now: the highest rung at or under `max_class` (the lowest rung when
    /// none is); the others are encoded when somebody asks for them.
    Floor {
        /// Highest class of the floor.
        max_class: u32,
    },
}

impl Materialise {
    /// Splits a ladder (lowest rung first) into the rungs encoded now and those deferred.
    pub fn split(self, rungs: Vec<Rung>) -> (Vec<Rung>, Vec<Rung>) {
        let Self::Floor { max_class } = self else { return (rungs, Vec::new()) };
        let floor = rungs
            .iter()
            .map(|r| r.class)
            .filter(|&c| c <= max_class)
            .max()
            .or_else(|| rungs.iter().map(|r| r.class).min());
        rungs.into_iter().partition(|r| Some(r.class) == floor)
    }
}

/// A run of consecutive segments, as a decoder and an encoder see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First segment number.
    pub first: usize,
    /// Segments in the run.
    pub count: usize,
    /// Video tick of the first frame of the first segment.
    pub start: i64,
    /// Video tick of the first frame after the run; `None` when it runs to the end.
    pub end: Option<i64>,
    /// The last keyframe at or before `start`, where decoding begins.
    pub seek: Keyframe,
}

impl OnDemandPlan {
    /// Refuses a plan this build cannot honour.
    pub fn check(&self) -> Result<()> {
        if self.version != PLAN_VERSION {
            return Err(Error::Internal(format!("on-demand plan version {} is not {PLAN_VERSION}", self.version)));
        }
        if self.segments.is_empty() || self.keyframes.is_empty() {
            return Err(Error::Internal("on-demand plan has no segments or no keyframes".into()));
        }
        Ok(())
    }

    /// The rung named `name`.
    pub fn rung(&self, name: &str) -> Option<&PlannedRung> {
        self.rungs.iter().find(|r| r.rung.name == name)
    }

    /// Segments per rung.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Video ticks of a source pts.
    pub fn ticks(&self, pts: i64) -> i64 {
        self.media.timeline().to_ticks(pts, self.media.video.time_base, VIDEO_TIMESCALE)
    }

    /// Segments `first..first + count` (clamped to the end); `None` when `first` is past it.
    pub fn span(&self, first: usize, count: usize) -> Option<Span> {
        let &(start, _) = self.segments.get(first)?;
        let count = count.max(1).min(self.segments.len() - first);
        let end = self.segments.get(first + count).map(|s| s.0);
        // Keyframes are in decode order; take the latest whose frame presents at or before
        // the span, so every frame of the span is decodable from it.
        let seek = self
            .keyframes
            .iter()
            .filter(|k| self.ticks(k.pts) <= start)
            .max_by_key(|k| k.pts)
            .or_else(|| self.keyframes.first())
            .copied()?;
        Some(Span { first, count, start, end, seek })
    }

    /// The starts of segments `span.first..span.first + span.count`, in video ticks.
    pub fn starts(&self, span: &Span) -> Vec<i64> {
        self.segments[span.first..span.first + span.count].iter().map(|s| s.0).collect()
    }
}

/// The just-in-time encode of a run of segments of some rungs: the worker interface, plain
/// serialisable data like [`crate::task::TaskSpec`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentsRequest {
    /// The original, as a local path.
    pub source: String,
    /// The plan the upload left.
    pub plan: OnDemandPlan,
    /// The rendered watermark, as a local path, when the plan has one.
    pub overlay: Option<String>,
    /// Rung names to encode.
    pub rungs: Vec<String>,
    /// First segment.
    pub first: usize,
    /// Segments to encode.
    pub count: usize,
    /// Protection of the segments (the key filled in by the worker itself). Its profile
    /// names the trees the segments are for (see [`crate::layout`]): `aes128` the top
    /// level, `cbcs` `cbcs/`, `both` the two, each segment encoded once and sealed per tree
    /// ([`SegmentPiece::tree`]). None is the clear top level.
    pub encryption: Option<Encryption>,
    /// Samples in the first fragment of each segment, then in each later one.
    pub fragments: FragmentPolicy,
    /// Folder for the encoder's temporary files.
    pub scratch: String,
}

/// How a segment is cut into CMAF chunks (`moof`+`mdat`) as it is encoded: a small first
/// chunk gets the first byte out early, later ones amortise the box overhead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentPolicy {
    /// Samples in the first chunk.
    pub first: usize,
    /// Samples in each later chunk.
    pub then: usize,
}

impl FragmentPolicy {
    /// One `moof`+`mdat` per segment, as the packager writes stored segments.
    pub const WHOLE: Self = Self { first: usize::MAX, then: usize::MAX };

    /// Chunks for a stream: about a quarter second first, then half seconds.
    pub fn streaming(fps: f64) -> Self {
        let fps = if fps.is_finite() && fps > 0.0 { fps } else { 30.0 };
        Self { first: ((fps / 4.0).round() as usize).max(1), then: ((fps / 2.0).round() as usize).max(1) }
    }

    /// Samples the chunk after `sent` chunks may hold.
    pub fn limit(&self, sent: u32) -> usize {
        if sent == 0 { self.first } else { self.then }
    }
}

/// One piece of a segment, in order: a segment's copy in one tree is the concatenation of
/// its pieces for that tree. With several trees, the pieces of each chunk come once per
/// tree, interleaved, so one tree's pieces are never held back until the other's are done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentPiece {
    /// Index of the rung in the request's `rungs`.
    pub rung: usize,
    /// The tree these bytes belong to: where the segment is stored and served
    /// ([`crate::layout::cbcs_path`] for [`Tree::Cbcs`](crate::layout::Tree::Cbcs)).
    pub tree: crate::layout::Tree,
    /// Segment number.
    pub segment: usize,
    /// Bytes (encrypted when the rung is).
    pub bytes: Vec<u8>,
    /// The last piece of the segment's copy in this tree.
    pub last: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ladder::{LadderSpec, VideoCodec, derive};
    use crate::media::VideoInfo;

    fn plan() -> OnDemandPlan {
        let video = VideoInfo::sample(1920, 1080);
        let rungs = derive(&video, &LadderSpec::for_codec(VideoCodec::H264));
        OnDemandPlan {
            version: PLAN_VERSION,
            media: MediaInfo { container: "mp4".into(), size: 1, duration: 7.0, video, audio: None },
            // Keyframes every 1.5 s (90 kHz time base), not on segment boundaries.
            keyframes: (0..5).map(|i| Keyframe { pts: i * 135_000, pos: i * 1000 }).collect(),
            segment_seconds: 2.0,
            segments: vec![(0, 180_000), (180_000, 180_000), (360_000, 180_000), (540_000, 90_000)],
            rungs: rungs.into_iter().map(|rung| PlannedRung { floor: rung.class == 360, rung }).collect(),
            overlay: None,
        }
    }

    #[test]
    fn spans_start_at_the_last_keyframe_before_them() {
        let p = plan();
        p.check().unwrap();
        let s = p.span(1, 1).unwrap();
        assert_eq!((s.start, s.end, s.seek.pts), (180_000, Some(360_000), 135_000));
        let s = p.span(2, 9).unwrap();
        assert_eq!((s.count, s.end, s.seek.pts), (2, None, 270_000));
        assert_eq!(p.starts(&s), vec![360_000, 540_000]);
        assert_eq!(p.span(0, 1).unwrap().seek.pts, 0);
        assert!(p.span(4, 1).is_none());
        assert!(p.rung("720p").is_some_and(|r| !r.floor));
        assert!(p.rung("360p").is_some_and(|r| r.floor));
    }

    #[test]
    fn fragment_policy() {
        let f = FragmentPolicy::streaming(30.0);
        assert_eq!((f.limit(0), f.limit(1), f.limit(5)), (8, 15, 15));
        assert_eq!(FragmentPolicy::WHOLE.limit(0), usize::MAX);
    }

    #[test]
    fn the_floor_is_what_sits_at_or_under_its_class() {
        let video = VideoInfo::sample(1920, 1080);
        let rungs = derive(&video, &LadderSpec::for_codec(VideoCodec::H264));
        let names = |v: &[Rung]| v.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        let (now, later) = Materialise::Floor { max_class: 360 }.split(rungs.clone());
        assert_eq!(names(&now), ["360p"]);
        assert_eq!(names(&later), ["240p", "480p", "720p", "1080p"]);
        let (now, _) = Materialise::Floor { max_class: 100 }.split(rungs.clone());
        assert_eq!(names(&now), ["240p"], "the lowest rung when none is under the floor");
        assert_eq!(Materialise::All.split(rungs.clone()).0.len(), rungs.len());
    }

    #[test]
    fn newer_plans_are_refused() {
        let mut p = plan();
        p.version = PLAN_VERSION + 1;
        assert!(p.check().is_err());
    }
}

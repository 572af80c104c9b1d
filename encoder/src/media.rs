//! What inspection learns about a source, and the limits a source must respect.
//! Plain data: produced by `ffmpeg::inspect`, consumed by the ladder and the planner.

use serde::{Deserialize, Serialize};

/// The result of inspecting a source file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// Container format name(s) as FFmpeg reports them.
    pub container: String,
    /// File size in bytes.
    pub size: u64,
    /// Duration in seconds.
    pub duration: f64,
    /// The video stream that will be transcoded.
    pub video: VideoInfo,
    /// The audio stream that will be transcoded, if any.
    pub audio: Option<AudioInfo>,
}

/// The chosen video stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoInfo {
    /// Stream index in the container.
    pub index: usize,
    /// Codec name (h264, hevc, vp9, av1, ...).
    pub codec: String,
    /// Coded width in pixels.
    pub width: u32,
    /// Coded height in pixels.
    pub height: u32,
    /// Sample aspect ratio (1/1 for square pixels).
    pub sample_aspect: (u32, u32),
    /// Clockwise rotation to apply for display: 0, 90, 180 or 270.
    pub rotation: u32,
    /// Average frame rate as a fraction.
    pub frame_rate: (u32, u32),
    /// Whether timestamps suggest a variable frame rate.
    pub variable_frame_rate: bool,
    /// Pixel format name (yuv420p, yuv420p10le, ...).
    pub pixel_format: String,
    /// Bits per component.
    pub bit_depth: u32,
    /// Stream time base as a fraction of a second.
    pub time_base: (i32, i32),
    /// Pts (in `time_base`) of the first keyframe: output time zero.
    pub start_pts: i64,
}

impl MediaInfo {
    /// The output timeline every rendition shares.
    pub fn timeline(&self) -> Timeline {
        Timeline { origin_pts: self.video.start_pts, time_base: self.video.time_base }
    }
}

impl VideoInfo {
    /// Width and height as a viewer sees them: sample aspect and rotation applied.
    pub fn display_size(&self) -> (u32, u32) {
        let (num, den) = self.sample_aspect;
        let width = if num > 0 && den > 0 && num != den {
            (u64::from(self.width) * u64::from(num) / u64::from(den)) as u32
        } else {
            self.width
        };
        if self.rotation % 180 == 90 { (self.height, width) } else { (width, self.height) }
    }

    /// Average frames per second.
    pub fn fps(&self) -> f64 {
        let (num, den) = self.frame_rate;
        if den == 0 { 0.0 } else { f64::from(num) / f64::from(den) }
    }

    /// A square-pixel 30 fps H.264 stream of this size, for unit tests.
    #[cfg(test)]
    pub(crate) fn sample(width: u32, height: u32) -> Self {
        Self {
            index: 0,
            codec: "h264".into(),
            width,
            height,
            sample_aspect: (1, 1),
            rotation: 0,
            frame_rate: (30, 1),
            variable_frame_rate: false,
            pixel_format: "yuv420p".into(),
            bit_depth: 8,
            time_base: (1, 90000),
            start_pts: 0,
        }
    }
}

/// The chosen audio stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioInfo {
    /// Stream index in the container.
    pub index: usize,
    /// Codec name.
    pub codec: String,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u32,
    /// Channel layout description (stereo, 5.1, ...).
    pub layout: String,
}

/// What a source must respect to be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest accepted file, in bytes.
    pub max_bytes: u64,
    /// Smallest accepted width or height.
    pub min_dimension: u32,
    /// Largest accepted width or height.
    pub max_dimension: u32,
    /// Largest accepted number of pixels per frame.
    pub max_pixels: u64,
    /// Shortest accepted duration, in seconds.
    pub min_duration: f64,
    /// Longest accepted duration, in seconds.
    pub max_duration: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // The platform's upload limit (1 GiB).
            max_bytes: 1 << 30,
            // Below this a picture carries no watchable detail.
            min_dimension: 16,
            // 8K; beyond it no delivery rung exists and decoders refuse.
            max_dimension: 8192,
            max_pixels: 8192 * 4320,
            // A single frame or two is a still, not a video.
            min_duration: 0.2,
            // Twelve hours: longer is a stream dump, not an upload.
            max_duration: 12.0 * 3600.0,
        }
    }
}

/// Maps source timestamps onto the output timeline, which starts at zero at the first
/// decodable video frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    /// Source video pts (in `time_base`) that becomes output time zero.
    pub origin_pts: i64,
    /// Source video stream time base.
    pub time_base: (i32, i32),
}

/// Output ticks per second on the video timeline.
pub const VIDEO_TIMESCALE: u32 = 90_000;

impl Timeline {
    /// Converts a pts in time base `tb` to output ticks of `timescale` per second. Both
    /// terms are rounded separately, so every caller gets identical ticks for one instant.
    pub fn to_ticks(&self, pts: i64, tb: (i32, i32), timescale: u32) -> i64 {
        rescale(pts, tb, timescale) - rescale(self.origin_pts, self.time_base, timescale)
    }
}

/// `value * tb` seconds expressed in `1/timescale` units, rounded to nearest.
pub fn rescale(value: i64, tb: (i32, i32), timescale: u32) -> i64 {
    let num = i128::from(value) * i128::from(tb.0) * i128::from(timescale);
    let den = i128::from(tb.1.max(1));
    let half = den / 2;
    let q = if num >= 0 { (num + half) / den } else { (num - half) / den };
    q as i64
}

//! The adaptive-bitrate ladder: which renditions a source gets, at what size and bitrate cap.
//! Pure functions of the probed source and the pipeline's encode settings.

use serde::{Deserialize, Serialize};

use crate::media::VideoInfo;

/// Standard rendition classes, named by the short side of the picture ("720p").
pub const STANDARD_CLASSES: [u32; 7] = [240, 360, 480, 720, 1080, 1440, 2160];

/// A video codec a rung can be encoded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    /// H.264 / AVC via libx264: plays everywhere.
    H264,
    /// VP9 via libvpx-vp9.
    Vp9,
    /// AV1 via libsvtav1.
    Av1,
}

impl VideoCodec {
    /// The FFmpeg encoder that produces it.
    pub fn encoder_name(self) -> &'static str {
        match self {
            Self::H264 => "libx264",
            Self::Vp9 => "libvpx-vp9",
            Self::Av1 => "libsvtav1",
        }
    }

    /// Short lower-case name, as written in pipeline files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::H264 => "h264",
            Self::Vp9 => "vp9",
            Self::Av1 => "av1",
        }
    }

    /// Parses a pipeline-file codec name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "h264" | "avc" | "libx264" => Some(Self::H264),
            "vp9" | "libvpx-vp9" => Some(Self::Vp9),
            "av1" | "libsvtav1" => Some(Self::Av1),
            _ => None,
        }
    }

    /// Bitrate cap for a class at up to 30 frames per second, in kbit/s.
    fn base_cap_kbps(self, class: u32) -> u32 {
        // H.264 caps in line with common OTT ladders; newer codecs need less for the same look.
        let h264 = match class {
            0..=240 => 400,
            241..=360 => 800,
            361..=480 => 1400,
            481..=720 => 2800,
            721..=1080 => 5000,
            1081..=1440 => 9000,
            _ => 16000,
        };
        match self {
            Self::H264 => h264,
            Self::Vp9 => h264 * 6 / 10,
            Self::Av1 => h264 / 2,
        }
    }

    /// Default constant-rate factor.
    pub fn default_crf(self) -> u32 {
        match self {
            Self::H264 => 23,
            Self::Vp9 => 33,
            Self::Av1 => 35,
        }
    }

    /// Default speed preset.
    pub fn default_preset(self) -> &'static str {
        match self {
            Self::H264 => "veryfast",
            // cpu-used for libvpx, preset number for SVT-AV1.
            Self::Vp9 => "5",
            Self::Av1 => "8",
        }
    }
}

/// How the encoder spends bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateControl {
    /// Constant quality, capped by the rung's maximum bitrate (VBV).
    Crf,
    /// Average bitrate equal to the cap.
    Abr,
}

/// The encode settings a pipeline gives one encode task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LadderSpec {
    /// Codec of every rung.
    pub codec: VideoCodec,
    /// Explicit classes (short side in pixels); `None` means every standard class.
    pub classes: Option<Vec<u32>>,
    /// Highest class to produce.
    pub max_class: u32,
    /// Encoder speed preset.
    pub preset: String,
    /// Constant-rate factor for [`RateControl::Crf`].
    pub crf: u32,
    /// Rate-control mode.
    pub rate_control: RateControl,
    /// Multiplier applied to every bitrate cap.
    pub bitrate_scale: f64,
    /// Appended to each rung's name, e.g. "-vp9".
    pub name_suffix: String,
}

impl LadderSpec {
    /// Defaults for a codec.
    pub fn for_codec(codec: VideoCodec) -> Self {
        Self {
            codec,
            classes: None,
            max_class: 2160,
            preset: codec.default_preset().to_owned(),
            crf: codec.default_crf(),
            rate_control: RateControl::Crf,
            bitrate_scale: 1.0,
            name_suffix: match codec {
                VideoCodec::H264 => String::new(),
                other => format!("-{}", other.as_str()),
            },
        }
    }
}

/// One rendition of the ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rung {
    /// Folder and representation name, e.g. "720p".
    pub name: String,
    /// Class: the short side in pixels.
    pub class: u32,
    /// Output width (even).
    pub width: u32,
    /// Output height (even).
    pub height: u32,
    /// Codec.
    pub codec: VideoCodec,
    /// Speed preset.
    pub preset: String,
    /// Constant-rate factor.
    pub crf: u32,
    /// Rate-control mode.
    pub rate_control: RateControl,
    /// Maximum bitrate in bit/s.
    pub max_bitrate: u32,
    /// VBV buffer size in bits.
    pub buffer_bits: u32,
}

/// Derives the ladder for a source: never upscaled, portrait-aware, top rung at the
/// source's own size when it sits well above the nearest standard class.
pub fn derive(video: &VideoInfo, spec: &LadderSpec) -> Vec<Rung> {
    let (dw, dh) = video.display_size();
    let short = dw.min(dh).max(2);
    let limit = short.min(spec.max_class);
    let mut classes: Vec<u32> = match &spec.classes {
        Some(list) => list.iter().copied().filter(|&c| c <= limit).collect(),
        None => {
            let mut standard: Vec<u32> = STANDARD_CLASSES.iter().copied().filter(|&c| c <= limit).collect();
            let top = standard.last().copied().unwrap_or(0);
            // A 1000p source would otherwise top out at 720p and lose a third of its detail.
            if spec.max_class >= short && f64::from(short) > f64::from(top) * 1.15 {
                standard.push(even(short));
            }
            standard
        }
    };
    if classes.is_empty() {
        classes.push(even(limit));
    }
    classes.sort_unstable();
    classes.dedup();
    let fps_factor = if video.fps() > 31.0 { 1.5 } else { 1.0 };
    classes.into_iter().map(|class| rung(class, dw, dh, spec, fps_factor)).collect()
}

fn rung(class: u32, dw: u32, dh: u32, spec: &LadderSpec, fps_factor: f64) -> Rung {
    let (width, height) = if dw >= dh {
        (even_round(f64::from(class) * f64::from(dw) / f64::from(dh)), even(class))
    } else {
        (even(class), even_round(f64::from(class) * f64::from(dh) / f64::from(dw)))
    };
    let cap = f64::from(spec.codec.base_cap_kbps(class)) * 1000.0 * fps_factor * spec.bitrate_scale;
    let max_bitrate = cap.round() as u32;
    Rung {
        name: format!("{class}p{}", spec.name_suffix),
        class,
        width,
        height,
        codec: spec.codec,
        preset: spec.preset.clone(),
        crf: spec.crf,
        rate_control: spec.rate_control,
        max_bitrate,
        buffer_bits: max_bitrate.saturating_mul(2),
    }
}

fn even(v: u32) -> u32 {
    (v & !1).max(2)
}

fn even_round(v: f64) -> u32 {
    ((v / 2.0).round() as u32 * 2).max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(width: u32, height: u32, rotation: u32) -> VideoInfo {
        VideoInfo { rotation, ..VideoInfo::sample(width, height) }
    }

    fn names(rungs: &[Rung]) -> Vec<String> {
        rungs.iter().map(|r| format!("{}:{}x{}", r.name, r.width, r.height)).collect()
    }

    #[test]
    fn landscape_1080p_stops_at_source() {
        let rungs = derive(&video(1920, 1080, 0), &LadderSpec::for_codec(VideoCodec::H264));
        assert_eq!(names(&rungs), ["240p:426x240", "360p:640x360", "480p:854x480", "720p:1280x720", "1080p:1920x1080"]);
    }

    #[test]
    fn portrait_uses_short_side() {
        let rungs = derive(&video(1080, 1920, 0), &LadderSpec::for_codec(VideoCodec::H264));
        assert_eq!(rungs.last().unwrap().width, 1080);
        assert_eq!(rungs.last().unwrap().height, 1920);
        assert_eq!(rungs[0].name, "240p");
        assert_eq!((rungs[0].width, rungs[0].height), (240, 426));
    }

    #[test]
    fn rotation_metadata_makes_portrait() {
        let rungs = derive(&video(1920, 1080, 90), &LadderSpec::for_codec(VideoCodec::H264));
        let top = rungs.last().unwrap();
        assert_eq!((top.width, top.height), (1080, 1920));
    }

    #[test]
    fn never_upscales_explicit_classes() {
        let mut spec = LadderSpec::for_codec(VideoCodec::H264);
        spec.classes = Some(vec![1080, 720, 480, 360]);
        let rungs = derive(&video(1280, 720, 0), &spec);
        assert_eq!(names(&rungs), ["360p:640x360", "480p:854x480", "720p:1280x720"]);
    }

    #[test]
    fn odd_and_tiny_sources_get_even_sizes() {
        let rungs = derive(&video(175, 97, 0), &LadderSpec::for_codec(VideoCodec::H264));
        assert_eq!(names(&rungs), ["96p:174x96"]);
    }

    #[test]
    fn non_standard_source_keeps_its_height_on_top() {
        let rungs = derive(&video(1800, 1000, 0), &LadderSpec::for_codec(VideoCodec::Vp9));
        assert_eq!(rungs.last().unwrap().name, "1000p-vp9");
        assert_eq!(rungs.len(), 5);
    }

    #[test]
    fn high_frame_rate_raises_caps() {
        let mut v = video(1280, 720, 0);
        let base = derive(&v, &LadderSpec::for_codec(VideoCodec::H264));
        v.frame_rate = (60, 1);
        let fast = derive(&v, &LadderSpec::for_codec(VideoCodec::H264));
        assert_eq!(fast[3].max_bitrate, base[3].max_bitrate * 3 / 2);
    }
}

//! The DASH manifest (ISO/IEC 23009-1, live profile, static) over the same CMAF segments.

use std::fmt::Write;

use crate::layout;

/// One representation's description.
#[derive(Debug, Clone)]
pub struct Representation {
    /// Id, also its folder name.
    pub id: String,
    /// Peak bit/s.
    pub bandwidth: u64,
    /// RFC 6381 codec string.
    pub codecs: String,
    /// Width (video).
    pub width: u32,
    /// Height (video).
    pub height: u32,
    /// Frames per second (video).
    pub frame_rate: f64,
    /// Sample rate (audio).
    pub sample_rate: u32,
    /// Channels (audio).
    pub channels: u32,
}

/// Segment timing shared by every representation of an adaptation set.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// Ticks per second.
    pub timescale: u32,
    /// (start, duration) of each segment, in ticks.
    pub segments: Vec<(i64, i64)>,
}

/// An adaptation set: video of one codec, or audio.
#[derive(Debug, Clone)]
pub struct AdaptationSet {
    /// "video" or "audio".
    pub content_type: &'static str,
    /// Its representations.
    pub representations: Vec<Representation>,
    /// Their common timing.
    pub timeline: Timeline,
}

/// Renders the manifest for a presentation of `duration` seconds.
pub fn manifest(duration: f64, sets: &[AdaptationSet]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019\" type=\"static\" mediaPresentationDuration=\"{}\" minBufferTime=\"PT4S\">",
        iso_duration(duration)
    );
    out.push_str("  <Period id=\"0\" start=\"PT0S\">\n");
    for (i, set) in sets.iter().enumerate() {
        write_set(&mut out, i, set);
    }
    out.push_str("  </Period>\n</MPD>\n");
    out
}

fn write_set(out: &mut String, id: usize, set: &AdaptationSet) {
    let mime = if set.content_type == "video" { "video/mp4" } else { "audio/mp4" };
    let _ = write!(
        out,
        "    <AdaptationSet id=\"{id}\" contentType=\"{}\" mimeType=\"{mime}\" segmentAlignment=\"true\" startWithSAP=\"1\"",
        set.content_type
    );
    if set.content_type == "audio" {
        out.push_str(" lang=\"und\"");
    }
    out.push_str(">\n");
    let _ = writeln!(
        out,
        "      <SegmentTemplate timescale=\"{}\" initialization=\"$RepresentationID$/{}\" media=\"$RepresentationID$/{}\" startNumber=\"0\">",
        set.timeline.timescale,
        layout::INIT_SEGMENT,
        layout::DASH_SEGMENT_TEMPLATE
    );
    out.push_str("        <SegmentTimeline>\n");
    for (t, d, r) in runs(&set.timeline.segments) {
        let _ = write!(out, "          <S t=\"{t}\" d=\"{d}\"");
        if r > 0 {
            let _ = write!(out, " r=\"{r}\"");
        }
        out.push_str("/>\n");
    }
    out.push_str("        </SegmentTimeline>\n      </SegmentTemplate>\n");
    for r in &set.representations {
        let _ =
            write!(out, "      <Representation id=\"{}\" bandwidth=\"{}\" codecs=\"{}\"", r.id, r.bandwidth, r.codecs);
        if set.content_type == "video" {
            let _ = writeln!(
                out,
                " width=\"{}\" height=\"{}\" frameRate=\"{}\" sar=\"1:1\"/>",
                r.width,
                r.height,
                frame_rate(r.frame_rate)
            );
        } else {
            let _ = writeln!(
                out,
                " audioSamplingRate=\"{}\">\n        <AudioChannelConfiguration schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"{}\"/>\n      </Representation>",
                r.sample_rate, r.channels
            );
        }
    }
    out.push_str("    </AdaptationSet>\n");
}

/// Collapses equal consecutive durations into `S@r` runs.
fn runs(segments: &[(i64, i64)]) -> Vec<(i64, i64, usize)> {
    let mut out: Vec<(i64, i64, usize)> = Vec::new();
    for &(t, d) in segments {
        match out.last_mut() {
            Some((t0, d0, r)) if *d0 == d && *t0 + *d0 * (*r as i64 + 1) == t => *r += 1,
            _ => out.push((t, d, 0)),
        }
    }
    out
}

fn frame_rate(fps: f64) -> String {
    let ntsc = (fps * 1.001).round();
    if (fps - ntsc / 1.001).abs() < 0.001 && (fps - fps.round()).abs() > 0.001 {
        format!("{}/1001", ntsc as u64 * 1000)
    } else {
        format!("{}", fps.round() as u64)
    }
}

fn iso_duration(seconds: f64) -> String {
    format!("PT{seconds:.3}S")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_runs_collapse() {
        assert_eq!(runs(&[(0, 180000), (180000, 180000), (360000, 90000)]), vec![(0, 180000, 1), (360000, 90000, 0)]);
        assert_eq!(frame_rate(29.97), "30000/1001");
        assert_eq!(frame_rate(25.0), "25");
    }

    #[test]
    fn manifest_shape() {
        let mpd = manifest(
            4.0,
            &[AdaptationSet {
                content_type: "video",
                representations: vec![Representation {
                    id: "360p".into(),
                    bandwidth: 800_000,
                    codecs: "avc1.64001e".into(),
                    width: 640,
                    height: 360,
                    frame_rate: 30.0,
                    sample_rate: 0,
                    channels: 0,
                }],
                timeline: Timeline { timescale: 90000, segments: vec![(0, 180000), (180000, 180000)] },
            }],
        );
        assert!(mpd.contains("mediaPresentationDuration=\"PT4.000S\""));
        assert!(mpd.contains("media=\"$RepresentationID$/seg_$Number%05d$.m4s\""));
        assert!(mpd.contains("<S t=\"0\" d=\"180000\" r=\"1\"/>"));
        assert!(mpd.contains("<Representation id=\"360p\" bandwidth=\"800000\" codecs=\"avc1.64001e\" width=\"640\""));
    }
}

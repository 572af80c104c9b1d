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

/// How the segments a manifest points at are protected (CENC, one key for every set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentProtection {
    /// The protection scheme (`cbcs`).
    pub scheme: &'static str,
    /// The KID in UUID form, as `cenc:default_KID` writes it.
    pub default_kid: String,
    /// The common-system `pssh` box, base64.
    pub pssh_base64: String,
    /// The ClearKey licence server, absolute; empty leaves `dashif:Laurl` out.
    pub licence_uri: String,
}

/// Where a manifest's segments are and how they are protected.
#[derive(Debug, Clone, Copy, Default)]
pub struct ManifestOptions<'a> {
    /// Folder of the segment tree, relative to the manifest ("" or "cbcs/").
    pub media_root: &'a str,
    /// Their protection, if any.
    pub protection: Option<&'a ContentProtection>,
}

/// ContentProtection scheme of the MP4 protection (ISO/IEC 23009-1 §5.8.5.2).
const MP4_PROTECTION: &str = "urn:mpeg:dash:mp4protection:2011";
/// DRM system id of W3C ClearKey.
const CLEARKEY_SYSTEM: &str = "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e";
/// DRM system id of the W3C common PSSH format.
const COMMON_SYSTEM: &str = "urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b";

/// Renders the manifest for a presentation of `duration` seconds, over clear segments of
/// the top-level tree.
pub fn manifest(duration: f64, sets: &[AdaptationSet]) -> String {
    manifest_with(duration, sets, &ManifestOptions::default())
}

/// Renders the manifest for a presentation of `duration` seconds.
pub fn manifest_with(duration: f64, sets: &[AdaptationSet], options: &ManifestOptions<'_>) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let namespaces = match options.protection {
        Some(_) => " xmlns:cenc=\"urn:mpeg:cenc:2013\" xmlns:dashif=\"https://dashif.org/CPS\"",
        None => "",
    };
    let _ = writeln!(
        out,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\"{namespaces} profiles=\"urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019\" type=\"static\" mediaPresentationDuration=\"{}\" minBufferTime=\"PT4S\">",
        iso_duration(duration)
    );
    out.push_str("  <Period id=\"0\" start=\"PT0S\">\n");
    for (i, set) in sets.iter().enumerate() {
        write_set(&mut out, i, set, options);
    }
    out.push_str("  </Period>\n</MPD>\n");
    out
}

/// The three ContentProtection elements of a protected adaptation set: the scheme and KID
/// (what every CENC player reads first), ClearKey with its licence URL, and the common
/// system with its `pssh` (what EME's `cenc` init data carries).
fn write_protection(out: &mut String, p: &ContentProtection) {
    let _ = writeln!(
        out,
        "      <ContentProtection schemeIdUri=\"{MP4_PROTECTION}\" value=\"{}\" cenc:default_KID=\"{}\"/>",
        p.scheme, p.default_kid
    );
    if p.licence_uri.is_empty() {
        let _ = writeln!(out, "      <ContentProtection schemeIdUri=\"{CLEARKEY_SYSTEM}\" value=\"ClearKey1.0\"/>");
    } else {
        let _ = writeln!(
            out,
            "      <ContentProtection schemeIdUri=\"{CLEARKEY_SYSTEM}\" value=\"ClearKey1.0\">\n        <dashif:Laurl>{}</dashif:Laurl>\n      </ContentProtection>",
            xml_escape(&p.licence_uri)
        );
    }
    let _ = writeln!(
        out,
        "      <ContentProtection schemeIdUri=\"{COMMON_SYSTEM}\" value=\"cenc\">\n        <cenc:pssh>{}</cenc:pssh>\n      </ContentProtection>",
        p.pssh_base64
    );
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn write_set(out: &mut String, id: usize, set: &AdaptationSet, options: &ManifestOptions<'_>) {
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
    if let Some(p) = options.protection {
        write_protection(out, p);
    }
    let root = options.media_root;
    let _ = writeln!(
        out,
        "      <SegmentTemplate timescale=\"{}\" initialization=\"{root}$RepresentationID$/{}\" media=\"{root}$RepresentationID$/{}\" startNumber=\"0\">",
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

    fn video_set() -> AdaptationSet {
        AdaptationSet {
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
            timeline: Timeline { timescale: 90000, segments: vec![(0, 180000)] },
        }
    }

    #[test]
    fn a_protected_manifest_points_into_its_tree_and_names_the_key() {
        let p = ContentProtection {
            scheme: "cbcs",
            default_kid: "00112233-4455-6677-8899-aabbccddeeff".into(),
            pssh_base64: "AAAA".into(),
            licence_uri: "https://o.example/v1/licence?a=1&b=2".into(),
        };
        let mpd = manifest_with(2.0, &[video_set()], &ManifestOptions { media_root: "cbcs/", protection: Some(&p) });
        assert!(mpd.contains("xmlns:cenc=\"urn:mpeg:cenc:2013\" xmlns:dashif=\"https://dashif.org/CPS\""));
        assert!(mpd.contains("initialization=\"cbcs/$RepresentationID$/init.mp4\""));
        assert!(mpd.contains("media=\"cbcs/$RepresentationID$/seg_$Number%05d$.m4s\""));
        assert!(mpd.contains(
            "<ContentProtection schemeIdUri=\"urn:mpeg:dash:mp4protection:2011\" value=\"cbcs\" cenc:default_KID=\"00112233-4455-6677-8899-aabbccddeeff\"/>"
        ));
        assert!(mpd.contains("<dashif:Laurl>https://o.example/v1/licence?a=1&amp;b=2</dashif:Laurl>"));
        assert!(mpd.contains("<cenc:pssh>AAAA</cenc:pssh>"));
        assert!(mpd.find("ContentProtection").unwrap() < mpd.find("<SegmentTemplate").unwrap());
        let clear = manifest(2.0, &[video_set()]);
        assert!(!clear.contains("ContentProtection") && !clear.contains("xmlns:cenc"));
    }

    #[test]
    fn manifest_shape() {
        let timeline = Timeline { timescale: 90000, segments: vec![(0, 180000), (180000, 180000)] };
        let mpd = manifest(4.0, &[AdaptationSet { timeline, ..video_set() }]);
        assert!(mpd.contains("mediaPresentationDuration=\"PT4.000S\""));
        assert!(mpd.contains("media=\"$RepresentationID$/seg_$Number%05d$.m4s\""));
        assert!(mpd.contains("<S t=\"0\" d=\"180000\" r=\"1\"/>"));
        assert!(mpd.contains("<Representation id=\"360p\" bandwidth=\"800000\" codecs=\"avc1.64001e\" width=\"640\""));
    }
}

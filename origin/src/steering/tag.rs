//! What makes a player ask for steering: the multivariant playlists and the MPD are served
//! with the steering server's URL and every variant on the `home` pathway. Pure text edits of
//! what the packager wrote (`encoder::package::{hls, dash}`), so the stored objects stay as
//! the encoder made them and turning steering off serves them untouched.

use encoder::layout;

use super::{Format, HOME};

/// Which steering an object carries, if any: the multivariant playlists (the top-level one
/// and the cbcs tree's) and the MPD.
pub fn steerable(path: &str) -> Option<Format> {
    if path == layout::MASTER_PLAYLIST || path == layout::cbcs_path(layout::MASTER_PLAYLIST) {
        Some(Format::Hls)
    } else if path == layout::DASH_MANIFEST {
        Some(Format::Dash)
    } else {
        None
    }
}

/// The steering tag of `format` added to `body` (see [`hls`], [`dash`]).
pub fn tag(format: Format, body: &str, server_uri: &str) -> String {
    match format {
        Format::Hls => hls(body, server_uri),
        Format::Dash => dash(body, server_uri),
    }
}

/// A multivariant playlist with `#EXT-X-CONTENT-STEERING` after its `#EXTM3U` and
/// `#EXT-X-VERSION` lines and `PATHWAY-ID="home"` on every variant (`EXT-X-STREAM-INF`,
/// `EXT-X-I-FRAME-STREAM-INF`). Renditions (`EXT-X-MEDIA`) are left alone: their URIs are
/// moved with the variant's pathway. A playlist that already has steering comes back as it is.
pub fn hls(playlist: &str, server_uri: &str) -> String {
    if playlist.contains("#EXT-X-CONTENT-STEERING") {
        return playlist.to_owned();
    }
    let newline = if playlist.contains("\r\n") { "\r\n" } else { "\n" };
    let steering = format!("#EXT-X-CONTENT-STEERING:SERVER-URI=\"{server_uri}\",PATHWAY-ID=\"{HOME}\"{newline}");
    let mut out = String::with_capacity(playlist.len() + steering.len() + 256);
    let mut placed = false;
    for line in playlist.split_inclusive('\n') {
        let (text, ending) = split_ending(line);
        let header = text == "#EXTM3U" || text.starts_with("#EXT-X-VERSION:");
        if !placed && !header {
            out.push_str(&steering);
            placed = true;
        }
        out.push_str(text);
        let variant = text.starts_with("#EXT-X-STREAM-INF:") || text.starts_with("#EXT-X-I-FRAME-STREAM-INF:");
        if variant && !text.contains("PATHWAY-ID=") {
            out.push_str(&format!(",PATHWAY-ID=\"{HOME}\""));
        }
        out.push_str(if ending.is_empty() && !placed { newline } else { ending });
    }
    if !placed {
        out.push_str(&steering);
    }
    out
}

/// An MPD with `<ContentSteering>` before its first `<Period>` (after any `BaseURL`, as the
/// schema orders them) and, when it has no `BaseURL`, a `<BaseURL serviceLocation="home">`
/// of its own folder, so the home pathway names a service location clones can copy. An MPD
/// that already has steering, or has no Period, comes back as it is.
pub fn dash(mpd: &str, server_uri: &str) -> String {
    let Some(period) = mpd.find("<Period").filter(|_| !mpd.contains("<ContentSteering")) else {
        return mpd.to_owned();
    };
    // The Period's own line, so the new elements get its indentation.
    let line_start = mpd[..period].rfind('\n').map_or(0, |i| i + 1);
    let indent = &mpd[line_start..period];
    let (at, indent, end) = if indent.trim().is_empty() { (line_start, indent, "\n") } else { (period, "", "") };
    let mut added = String::new();
    if !mpd.contains("<BaseURL") {
        added.push_str(&format!("{indent}<BaseURL serviceLocation=\"{HOME}\">./</BaseURL>{end}"));
    }
    added.push_str(&format!(
        "{indent}<ContentSteering defaultServiceLocation=\"{HOME}\" queryBeforeStart=\"false\">{}</ContentSteering>{end}",
        xml_text(server_uri)
    ));
    let mut out = String::with_capacity(mpd.len() + added.len());
    out.push_str(&mpd[..at]);
    out.push_str(&added);
    out.push_str(&mpd[at..]);
    out
}

fn split_ending(line: &str) -> (&str, &str) {
    if let Some(text) = line.strip_suffix("\r\n") {
        (text, "\r\n")
    } else if let Some(text) = line.strip_suffix('\n') {
        (text, "\n")
    } else {
        (line, "")
    }
}

fn xml_text(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "https://origin.example/v1/steering/abc123";

    /// What `encoder::package::hls::master_playlist` writes for two rungs and audio.
    const MASTER: &str = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Default\",LANGUAGE=\"und\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/index.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=800000,RESOLUTION=640x360,CODECS=\"avc1.64001e,mp4a.40.2\",FRAME-RATE=30.000,AUDIO=\"audio\",CLOSED-CAPTIONS=NONE
360p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2600000,RESOLUTION=1280x720,CODECS=\"avc1.64001f,mp4a.40.2\",FRAME-RATE=30.000,AUDIO=\"audio\",CLOSED-CAPTIONS=NONE
720p/index.m3u8
";

    #[test]
    fn a_multivariant_playlist_gets_the_server_and_every_variant_the_home_pathway() {
        let expected = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-CONTENT-STEERING:SERVER-URI=\"https://origin.example/v1/steering/abc123\",PATHWAY-ID=\"home\"
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Default\",LANGUAGE=\"und\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/index.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=800000,RESOLUTION=640x360,CODECS=\"avc1.64001e,mp4a.40.2\",FRAME-RATE=30.000,AUDIO=\"audio\",CLOSED-CAPTIONS=NONE,PATHWAY-ID=\"home\"
360p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2600000,RESOLUTION=1280x720,CODECS=\"avc1.64001f,mp4a.40.2\",FRAME-RATE=30.000,AUDIO=\"audio\",CLOSED-CAPTIONS=NONE,PATHWAY-ID=\"home\"
720p/index.m3u8
";
        assert_eq!(hls(MASTER, SERVER), expected);
        assert_eq!(hls(expected, SERVER), expected, "tagging twice changes nothing");
        assert_eq!(tag(Format::Hls, MASTER, SERVER), expected);
    }

    #[test]
    fn i_frame_variants_crlf_and_a_bare_header_are_tagged_too() {
        let crlf = "#EXTM3U\r\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=\"i.m3u8\"\r\n";
        assert_eq!(
            hls(crlf, "u"),
            "#EXTM3U\r\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"u\",PATHWAY-ID=\"home\"\r\n\
             #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=\"i.m3u8\",PATHWAY-ID=\"home\"\r\n"
        );
        assert_eq!(hls("#EXTM3U", "u"), "#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"u\",PATHWAY-ID=\"home\"\n");
    }

    /// What `encoder::package::dash::manifest_with` writes (shortened to one set).
    const MPD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019" type="static" mediaPresentationDuration="PT4.000S" minBufferTime="PT4S">
  <Period id="0" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <SegmentTemplate timescale="90000" initialization="cbcs/$RepresentationID$/init.mp4" media="cbcs/$RepresentationID$/seg_$Number%05d$.m4s" startNumber="0">
        <SegmentTimeline>
          <S t="0" d="180000" r="1"/>
        </SegmentTimeline>
      </SegmentTemplate>
      <Representation id="360p" bandwidth="900000" codecs="avc1.64001e" width="640" height="360" frameRate="30" sar="1:1"/>
    </AdaptationSet>
  </Period>
</MPD>
"#;

    #[test]
    fn an_mpd_gets_a_home_base_url_and_content_steering_before_its_period() {
        let tagged = dash(MPD, "https://origin.example/v1/steering/abc123/dash?a=1&b=2");
        let expected = MPD.replace(
            "  <Period id=\"0\"",
            "  <BaseURL serviceLocation=\"home\">./</BaseURL>
  <ContentSteering defaultServiceLocation=\"home\" queryBeforeStart=\"false\">https://origin.example/v1/steering/abc123/dash?a=1&amp;b=2</ContentSteering>
  <Period id=\"0\"",
        );
        assert_eq!(tagged, expected);
        assert_eq!(dash(&tagged, "x"), tagged, "tagging twice changes nothing");
        let with_base = MPD.replace("  <Period", "  <BaseURL>https://cdn.example/</BaseURL>\n  <Period");
        let tagged = dash(&with_base, "u");
        assert!(!tagged.contains("serviceLocation=\"home\">./"), "an MPD with a BaseURL keeps its own");
        assert!(tagged.find("<BaseURL").unwrap() < tagged.find("<ContentSteering").unwrap());
        assert!(tagged.find("<ContentSteering").unwrap() < tagged.find("<Period").unwrap());
        assert_eq!(dash("<MPD/>", "u"), "<MPD/>", "nothing to steer without a Period");
    }

    #[test]
    fn only_multivariant_playlists_and_the_mpd_are_steerable() {
        assert_eq!(steerable("master.m3u8"), Some(Format::Hls));
        assert_eq!(steerable("cbcs/master.m3u8"), Some(Format::Hls));
        assert_eq!(steerable("manifest.mpd"), Some(Format::Dash));
        for other in ["360p/index.m3u8", "cbcs/360p/index.m3u8", "poster.jpg", "360p/seg_00000.m4s"] {
            assert_eq!(steerable(other), None, "{other}");
        }
    }
}

//! HLS playlists (RFC 8216): one media playlist per rendition and the multivariant playlist.

use std::fmt::Write;

use crate::layout;

/// One rendition's segments, as a media playlist needs them.
#[derive(Debug, Clone, Copy)]
pub struct MediaPlaylist<'a> {
    /// Segment durations in seconds.
    pub durations: &'a [f64],
    /// How segments are encrypted, if they are.
    pub key: Option<Key<'a>>,
}

/// The `EXT-X-KEY` of a media playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// Whole segments, AES-128-CBC; the URI returns the raw key.
    Aes128 {
        /// Key URI.
        uri: &'a str,
    },
    /// CENC 'cbcs' samples (`METHOD=SAMPLE-AES`) with a ClearKey-style raw key.
    ///
    /// `KEYFORMAT="identity"` is the one ClearKey form shaka-player's HLS parser accepts
    /// (its KEYFORMAT table knows identity, Widevine, PlayReady and FairPlay, and not the
    /// ClearKey system UUID); it fetches the raw key from the URI and pairs it with the KID
    /// from the init segment's `tenc`. hls.js and Safari need their own DRM set-up for
    /// SAMPLE-AES fMP4 either way; the AES-128 tree remains their path.
    SampleAes {
        /// Key URI (returns the raw 16-byte key, like the AES-128 one).
        uri: &'a str,
    },
}

impl MediaPlaylist<'_> {
    /// Renders the playlist.
    pub fn render(&self) -> String {
        // Rounded EXTINF values must not exceed the target duration (RFC 8216 §4.3.3.1).
        let target = self.durations.iter().map(|d| d.round() as u64).max().unwrap_or(1).max(1);
        let mut out = String::new();
        out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
        out.push_str("#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n");
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", layout::INIT_SEGMENT);
        match self.key {
            // After the MAP, so the init segment stays clear; no IV: the sequence number is the IV.
            Some(Key::Aes128 { uri }) => {
                let _ = writeln!(out, "#EXT-X-KEY:METHOD=AES-128,URI=\"{uri}\"");
            }
            // The constant IV is in the init segment's tenc, so none here either.
            Some(Key::SampleAes { uri }) => {
                let _ = writeln!(
                    out,
                    "#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"{uri}\",KEYFORMAT=\"identity\",KEYFORMATVERSIONS=\"1\""
                );
            }
            None => {}
        }
        for (i, d) in self.durations.iter().enumerate() {
            let _ = writeln!(out, "#EXTINF:{d:.6},\n{}", layout::segment_name(i));
        }
        out.push_str("#EXT-X-ENDLIST\n");
        out
    }
}

/// A video variant of the multivariant playlist.
#[derive(Debug, Clone)]
pub struct Variant {
    /// Path of its media playlist.
    pub uri: String,
    /// Peak bit/s including audio.
    pub bandwidth: u64,
    /// Average bit/s including audio.
    pub average_bandwidth: u64,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Video (and audio) codec strings, comma separated.
    pub codecs: String,
    /// Frames per second.
    pub frame_rate: f64,
}

/// The audio rendition group.
#[derive(Debug, Clone)]
pub struct AudioGroup {
    /// Path of its media playlist.
    pub uri: String,
    /// Channel count.
    pub channels: u32,
}

/// Group id of the one audio group.
const AUDIO_GROUP: &str = "audio";

/// Renders the multivariant playlist.
pub fn master_playlist(variants: &[Variant], audio: Option<&AudioGroup>) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    if let Some(a) = audio {
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{AUDIO_GROUP}\",NAME=\"Default\",LANGUAGE=\"und\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"{}\",URI=\"{}\"",
            a.channels, a.uri
        );
    }
    for v in variants {
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={}x{},CODECS=\"{}\",FRAME-RATE={:.3}",
            v.bandwidth, v.average_bandwidth, v.width, v.height, v.codecs, v.frame_rate
        );
        if audio.is_some() {
            let _ = write!(out, ",AUDIO=\"{AUDIO_GROUP}\"");
        }
        let _ = writeln!(out, ",CLOSED-CAPTIONS=NONE\n{}", v.uri);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_playlist_shape() {
        let p =
            MediaPlaylist { durations: &[2.0, 2.0, 1.4], key: Some(Key::Aes128 { uri: "https://k.example/v1/key" }) }
                .render();
        let expected = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init.mp4\"\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"https://k.example/v1/key\"\n#EXTINF:2.000000,\nseg_00000.m4s\n\
#EXTINF:2.000000,\nseg_00001.m4s\n#EXTINF:1.400000,\nseg_00002.m4s\n#EXT-X-ENDLIST\n";
        assert_eq!(p, expected);
    }

    #[test]
    fn cbcs_playlists_name_sample_aes_with_the_identity_key_format() {
        let p = MediaPlaylist { durations: &[2.0], key: Some(Key::SampleAes { uri: "../../key" }) }.render();
        assert!(p.contains(
            "#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"../../key\",KEYFORMAT=\"identity\",KEYFORMATVERSIONS=\"1\"\n"
        ));
    }

    #[test]
    fn master_has_audio_group_and_attributes() {
        let m = master_playlist(
            &[Variant {
                uri: "720p/index.m3u8".into(),
                bandwidth: 3_000_000,
                average_bandwidth: 2_000_000,
                width: 1280,
                height: 720,
                codecs: "avc1.64001f,mp4a.40.2".into(),
                frame_rate: 29.97,
            }],
            Some(&AudioGroup { uri: "audio/index.m3u8".into(), channels: 2 }),
        );
        assert!(m.contains("#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\""));
        assert!(m.contains(
            "BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2000000,RESOLUTION=1280x720,CODECS=\"avc1.64001f,mp4a.40.2\",FRAME-RATE=29.970,AUDIO=\"audio\""
        ));
        assert!(m.ends_with("720p/index.m3u8\n"));
    }
}

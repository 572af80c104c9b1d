//! HLS playlists (RFC 8216) as far as a player needs them to generate the right requests:
//! variants with BANDWIDTH and RESOLUTION, audio renditions, content steering
//! (`EXT-X-CONTENT-STEERING` and each variant's `PATHWAY-ID`), and media playlists with their
//! segments, EXT-X-MAP init sections, EXT-X-KEY key URIs and byte ranges. Relative URIs are
//! resolved against the playlist's own URL, as a player does.

use reqwest::Url;

/// A parsed playlist.
#[derive(Debug, Clone, PartialEq)]
pub enum Playlist {
    /// A multivariant (master) playlist.
    Master(Master),
    /// A media playlist.
    Media(Media),
}

/// The pathway of a variant without `PATHWAY-ID` (RFC 8216bis: ".").
pub const DEFAULT_PATHWAY: &str = ".";

/// A multivariant playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Master {
    /// Video variants of the ladder's pathway, sorted by ascending BANDWIDTH.
    pub variants: Vec<Variant>,
    /// `EXT-X-MEDIA:TYPE=AUDIO` renditions.
    pub audio: Vec<AudioRendition>,
    /// `EXT-X-CONTENT-STEERING`, when the playlist asks players to follow a steering server.
    pub steering: Option<SteeringTag>,
    /// The pathway `variants` are on: the tag's PATHWAY-ID when some variant has it, else
    /// the first variant's (as hls.js starts), `.` without pathways.
    pub pathway: String,
}

/// `EXT-X-CONTENT-STEERING`.
#[derive(Debug, Clone, PartialEq)]
pub struct SteeringTag {
    /// SERVER-URI, resolved against the playlist's URL.
    pub server_uri: Url,
    /// PATHWAY-ID: the pathway to start on.
    pub pathway: Option<String>,
}

/// One `EXT-X-STREAM-INF`.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Its media playlist.
    pub uri: Url,
    /// Peak bit/s.
    pub bandwidth: u64,
    /// Width and height.
    pub resolution: Option<(u32, u32)>,
    /// Audio group id.
    pub audio: Option<String>,
    /// PATHWAY-ID (`.` when absent).
    pub pathway: String,
}

impl Variant {
    /// A short name for reports: `720p`, or the bandwidth when there is no resolution.
    pub fn label(&self) -> String {
        match self.resolution {
            Some((_, h)) => format!("{h}p"),
            None if self.bandwidth > 0 => format!("{}k", self.bandwidth / 1000),
            None => "single".into(),
        }
    }
}

/// One `EXT-X-MEDIA:TYPE=AUDIO`.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioRendition {
    /// GROUP-ID.
    pub group: String,
    /// Its media playlist (none: the audio is muxed into the variant).
    pub uri: Option<Url>,
    /// DEFAULT=YES.
    pub default: bool,
}

impl Master {
    /// The audio rendition a player would pick for `variant`: the group's default, else its
    /// first with a URI.
    pub fn audio_for(&self, variant: &Variant) -> Option<&AudioRendition> {
        let group = variant.audio.as_deref()?;
        let members = || self.audio.iter().filter(move |a| a.group == group && a.uri.is_some());
        members().find(|a| a.default).or_else(|| members().next())
    }
}

/// A byte range `[start, start + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Length.
    pub len: u64,
}

impl ByteRange {
    /// The `Range` header value.
    pub fn header(&self) -> String {
        format!("bytes={}-{}", self.start, self.start + self.len.max(1) - 1)
    }
}

/// A resource a player fetches: a URI and an optional byte range.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resource {
    /// The URL.
    pub uri: Url,
    /// The range, when the playlist gives one.
    pub range: Option<(u64, u64)>,
}

impl Resource {
    fn new(uri: Url, range: Option<ByteRange>) -> Self {
        Self { uri, range: range.map(|r| (r.start, r.len)) }
    }

    /// The `Range` header value, if any.
    pub fn range_header(&self) -> Option<String> {
        self.range.map(|(start, len)| ByteRange { start, len }.header())
    }
}

/// A media playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    /// EXT-X-TARGETDURATION.
    pub target_duration: f64,
    /// The segments in order.
    pub segments: Vec<Segment>,
    /// Distinct init sections (`EXT-X-MAP`), referenced by index.
    pub maps: Vec<Resource>,
    /// Distinct key URIs (`EXT-X-KEY`), referenced by index.
    pub keys: Vec<Url>,
    /// `EXT-X-ENDLIST` seen (VOD).
    pub ended: bool,
    /// Start time of each segment, for seeking by time.
    starts: Vec<f64>,
}

/// One media segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// What to fetch.
    pub resource: Resource,
    /// EXTINF seconds.
    pub duration: f64,
    /// Index into `Media::maps`.
    pub map: Option<usize>,
    /// Index into `Media::keys`.
    pub key: Option<usize>,
}

impl Media {
    /// Seconds of media.
    pub fn duration(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).sum()
    }

    /// The segment that holds media time `t` (the last one past the end).
    pub fn index_at(&self, t: f64) -> usize {
        self.starts.partition_point(|&s| s <= t).saturating_sub(1)
    }

    /// Media time at which segment `i` starts.
    pub fn start_of(&self, i: usize) -> f64 {
        self.starts.get(i).copied().unwrap_or_else(|| self.duration())
    }
}

/// Parses a playlist fetched from `base`.
pub fn parse(text: &str, base: &Url) -> Result<Playlist, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some("#EXTM3U") {
        return Err("not a playlist: the first line is not #EXTM3U".into());
    }
    let is_master = text.lines().any(|l| l.trim_start().starts_with("#EXT-X-STREAM-INF"));
    if is_master { master(lines, base).map(Playlist::Master) } else { media(lines, base).map(Playlist::Media) }
}

fn master<'a>(lines: impl Iterator<Item = &'a str>, base: &Url) -> Result<Master, String> {
    let mut variants: Vec<(Variant, bool)> = Vec::new();
    let mut audio = Vec::new();
    let mut steering = None;
    let mut pending: Option<Vec<(String, String)>> = None;
    for line in lines {
        if let Some(attrs) = line.strip_prefix("#EXT-X-CONTENT-STEERING:") {
            let attrs = attributes(attrs);
            let uri = get(&attrs, "SERVER-URI").ok_or("EXT-X-CONTENT-STEERING without SERVER-URI")?;
            steering = Some(SteeringTag {
                server_uri: resolve(base, uri)?,
                pathway: get(&attrs, "PATHWAY-ID").map(str::to_owned),
            });
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-STREAM-INF:") {
            pending = Some(attributes(attrs));
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-MEDIA:") {
            let attrs = attributes(attrs);
            if get(&attrs, "TYPE") != Some("AUDIO") {
                continue;
            }
            let group = get(&attrs, "GROUP-ID").ok_or("EXT-X-MEDIA without GROUP-ID")?.to_owned();
            let uri = get(&attrs, "URI").map(|u| resolve(base, u)).transpose()?;
            audio.push(AudioRendition { group, uri, default: get(&attrs, "DEFAULT") == Some("YES") });
        } else if !line.starts_with('#') {
            let Some(attrs) = pending.take() else { continue };
            let bandwidth = get(&attrs, "BANDWIDTH")
                .ok_or_else(|| format!("EXT-X-STREAM-INF for {line} has no BANDWIDTH"))?
                .parse()
                .map_err(|_| format!("EXT-X-STREAM-INF for {line}: BANDWIDTH is not a number"))?;
            let resolution = get(&attrs, "RESOLUTION").and_then(|r| {
                let (w, h) = r.split_once(['x', 'X'])?;
                Some((w.parse().ok()?, h.parse().ok()?))
            });
            let audio = get(&attrs, "AUDIO").map(str::to_owned);
            let pathway = get(&attrs, "PATHWAY-ID").unwrap_or(DEFAULT_PATHWAY).to_owned();
            let audio_only = resolution.is_none() && get(&attrs, "CODECS").is_some_and(only_audio_codecs);
            variants.push((Variant { uri: resolve(base, line)?, bandwidth, resolution, audio, pathway }, audio_only));
        }
    }
    if pending.is_some() {
        return Err("EXT-X-STREAM-INF without a URI line after it".into());
    }
    // An audio-only variant is for listeners, not viewers: players skip it while a video
    // variant exists, so the ABR ladder should not descend onto it either.
    let has_video = variants.iter().any(|(_, audio_only)| !audio_only);
    let mut variants: Vec<Variant> =
        variants.into_iter().filter(|(_, audio_only)| !(has_video && *audio_only)).map(|(v, _)| v).collect();
    if variants.is_empty() {
        return Err("a multivariant playlist without variants".into());
    }
    // One ladder: the variants of the pathway a player starts on (hls.js: the tag's
    // PATHWAY-ID, or the first variant's when no variant is on it). Other pathways are
    // reached through the steering manifest's clones of this one.
    let wanted = steering.as_ref().and_then(|s| s.pathway.as_deref()).unwrap_or(DEFAULT_PATHWAY);
    let pathway =
        if variants.iter().any(|v| v.pathway == wanted) { wanted.to_owned() } else { variants[0].pathway.clone() };
    variants.retain(|v| v.pathway == pathway);
    variants.sort_by_key(|v| v.bandwidth);
    Ok(Master { variants, audio, steering, pathway })
}

fn media<'a>(lines: impl Iterator<Item = &'a str>, base: &Url) -> Result<Media, String> {
    let mut m = Media {
        target_duration: 0.0,
        segments: Vec::new(),
        maps: Vec::new(),
        keys: Vec::new(),
        ended: false,
        starts: Vec::new(),
    };
    let (mut duration, mut range): (Option<f64>, Option<ByteRange>) = (None, None);
    let (mut map, mut key) = (None, None);
    // Where the next range without an offset starts, per URI (RFC 8216 §4.3.2.2).
    let mut next_offset: Option<(Url, u64)> = None;
    for line in lines {
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            m.target_duration = v.trim().parse().map_err(|_| format!("bad EXT-X-TARGETDURATION `{v}`"))?;
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let d = v.split(',').next().unwrap_or_default().trim();
            let d: f64 = d.parse().map_err(|_| format!("bad EXTINF duration `{d}`"))?;
            if !(d.is_finite() && d >= 0.0) {
                return Err(format!("bad EXTINF duration `{d}`"));
            }
            duration = Some(d);
        } else if let Some(v) = line.strip_prefix("#EXT-X-BYTERANGE:") {
            range = Some(byte_range(v, None)?);
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-MAP:") {
            let attrs = attributes(attrs);
            let uri = resolve(base, get(&attrs, "URI").ok_or("EXT-X-MAP without URI")?)?;
            let r = get(&attrs, "BYTERANGE").map(|r| byte_range(r, Some(0))).transpose()?;
            let resource = Resource::new(uri, r);
            map = Some(m.maps.iter().position(|x| *x == resource).unwrap_or_else(|| {
                m.maps.push(resource);
                m.maps.len() - 1
            }));
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-KEY:") {
            let attrs = attributes(attrs);
            key = match (get(&attrs, "METHOD"), get(&attrs, "URI")) {
                (Some("NONE"), _) | (None, _) => None,
                (Some(_), None) => return Err("EXT-X-KEY without URI".into()),
                (Some(_), Some(u)) => {
                    let url = resolve(base, u)?;
                    // DRM key formats (skd://, data:) are fetched by a CDM, not as HTTP.
                    if matches!(url.scheme(), "http" | "https") {
                        Some(m.keys.iter().position(|k| *k == url).unwrap_or_else(|| {
                            m.keys.push(url);
                            m.keys.len() - 1
                        }))
                    } else {
                        None
                    }
                }
            };
        } else if line == "#EXT-X-ENDLIST" {
            m.ended = true;
        } else if !line.starts_with('#') {
            let d = duration.take().ok_or_else(|| format!("segment {line} has no EXTINF"))?;
            let uri = resolve(base, line)?;
            let r = range.take().map(|mut r| {
                if r.start == u64::MAX {
                    r.start = match &next_offset {
                        Some((u, o)) if *u == uri => *o,
                        _ => 0,
                    };
                }
                next_offset = Some((uri.clone(), r.start + r.len));
                r
            });
            m.segments.push(Segment { resource: Resource::new(uri, r), duration: d, map, key });
        }
    }
    if m.segments.is_empty() {
        return Err("a media playlist without segments".into());
    }
    let mut start = 0.0;
    m.starts = m
        .segments
        .iter()
        .map(|s| {
            let this = start;
            start += s.duration;
            this
        })
        .collect();
    Ok(m)
}

fn only_audio_codecs(codecs: &str) -> bool {
    const AUDIO: [&str; 7] = ["mp4a", "ac-3", "ec-3", "opus", "flac", "alac", "mp3"];
    codecs.split(',').map(str::trim).all(|c| AUDIO.iter().any(|a| c.starts_with(a)))
}

/// `len[@offset]`; a missing offset is `default`, or `u64::MAX` meaning "after the previous".
fn byte_range(v: &str, default: Option<u64>) -> Result<ByteRange, String> {
    let bad = || format!("bad byte range `{v}`");
    let (len, start) = match v.trim().split_once('@') {
        Some((l, o)) => (l.parse().map_err(|_| bad())?, o.parse().map_err(|_| bad())?),
        None => (v.trim().parse().map_err(|_| bad())?, default.unwrap_or(u64::MAX)),
    };
    Ok(ByteRange { start, len })
}

fn resolve(base: &Url, uri: &str) -> Result<Url, String> {
    base.join(uri).map_err(|e| format!("bad URI `{uri}`: {e}"))
}

fn get<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// An attribute list (`A=1,B="x,y",C=z`): commas inside quotes do not split.
fn attributes(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let name = rest[..eq].trim().to_owned();
        rest = &rest[eq + 1..];
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            value = quoted[..end].to_owned();
            rest = quoted.get(end + 1..).unwrap_or("");
            rest = rest.split_once(',').map_or("", |(_, r)| r);
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = rest.get(end + 1..).unwrap_or("");
        }
        out.push((name, value));
        rest = rest.trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    const MASTER: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Default\",LANGUAGE=\"und\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/index.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2000000,RESOLUTION=1280x720,CODECS=\"avc1.64001f,mp4a.40.2\",FRAME-RATE=29.970,AUDIO=\"audio\",CLOSED-CAPTIONS=NONE\n\
720p/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS=\"avc1.64001e,mp4a.40.2\",AUDIO=\"audio\"\n\
/abs/360p/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=70400,CODECS=\"mp4a.40.2\",AUDIO=\"audio\"\n\
audio/index.m3u8\n";

    #[test]
    fn master_variants_audio_and_relative_uris() {
        let base = url("https://pop.example/p/tok/vid/master.m3u8");
        let Playlist::Master(m) = parse(MASTER, &base).unwrap() else { panic!("not a master") };
        // The audio-only variant is not a rung while video variants exist.
        assert_eq!(m.variants.len(), 2);
        // Sorted by bandwidth; quoted CODECS with a comma did not split the attribute list.
        assert_eq!(m.variants[0].bandwidth, 800_000);
        assert_eq!(m.variants[0].uri.as_str(), "https://pop.example/abs/360p/index.m3u8");
        assert_eq!(m.variants[1].uri.as_str(), "https://pop.example/p/tok/vid/720p/index.m3u8");
        assert_eq!(m.variants[1].resolution, Some((1280, 720)));
        assert_eq!(m.variants[1].label(), "720p");
        assert_eq!(m.variants[1].audio.as_deref(), Some("audio"));
        let a = m.audio_for(&m.variants[1]).unwrap();
        assert_eq!(a.uri.as_ref().unwrap().as_str(), "https://pop.example/p/tok/vid/audio/index.m3u8");
        assert!(a.default);
    }

    #[test]
    fn media_map_key_and_segments() {
        let text = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-KEY:METHOD=AES-128,URI=\"../key\"\n\
#EXTINF:2.000000,\nseg_00000.m4s\n#EXTINF:2.000000,\nseg_00001.m4s\n#EXTINF:1.400000,\nseg_00002.m4s\n#EXT-X-ENDLIST\n";
        let base = url("https://pop.example/p/tok/vid/720p/index.m3u8");
        let Playlist::Media(m) = parse(text, &base).unwrap() else { panic!("not media") };
        assert_eq!(m.target_duration, 2.0);
        assert_eq!(m.segments.len(), 3);
        assert!(m.ended);
        assert_eq!(m.maps[0].uri.as_str(), "https://pop.example/p/tok/vid/720p/init.mp4");
        assert_eq!(m.keys, vec![url("https://pop.example/p/tok/vid/key")]);
        assert!(m.segments.iter().all(|s| s.key == Some(0) && s.map == Some(0)));
        assert_eq!(m.segments[2].resource.uri.as_str(), "https://pop.example/p/tok/vid/720p/seg_00002.m4s");
        assert!((m.duration() - 5.4).abs() < 1e-9);
        assert_eq!(m.index_at(0.0), 0);
        assert_eq!(m.index_at(3.9), 1);
        assert_eq!(m.index_at(99.0), 2);
        assert_eq!(m.index_at(2.0), 1, "a segment owns its start");
        assert!((m.start_of(2) - 4.0).abs() < 1e-9);
    }

    #[test]
    fn keys_change_and_stop_mid_playlist() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-KEY:METHOD=AES-128,URI=\"k1\"\n#EXTINF:4,\na.ts\n\
#EXT-X-KEY:METHOD=NONE\n#EXTINF:4,\nb.ts\n#EXT-X-KEY:METHOD=AES-128,URI=\"k2\",IV=0x01\n#EXTINF:4,\nc.ts\n\
#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"skd://drm\",KEYFORMAT=\"com.apple.streamingkeydelivery\"\n#EXTINF:4,\nd.ts\n";
        let Playlist::Media(m) = parse(text, &url("http://h/v/index.m3u8")).unwrap() else { panic!() };
        assert_eq!(m.keys.len(), 2);
        assert_eq!(m.segments.iter().map(|s| s.key).collect::<Vec<_>>(), vec![Some(0), None, Some(1), None]);
        assert!(m.maps.is_empty() && !m.ended);
    }

    #[test]
    fn byte_ranges_continue_from_the_previous_segment() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"all.mp4\",BYTERANGE=\"700@0\"\n\
#EXTINF:2,\n#EXT-X-BYTERANGE:1000@700\nall.mp4\n#EXTINF:2,\n#EXT-X-BYTERANGE:500\nall.mp4\n";
        let Playlist::Media(m) = parse(text, &url("http://h/v/index.m3u8")).unwrap() else { panic!() };
        assert_eq!(m.maps[0].range, Some((0, 700)));
        assert_eq!(m.segments[0].resource.range, Some((700, 1000)));
        assert_eq!(m.segments[1].resource.range, Some((1700, 500)));
        assert_eq!(m.segments[1].resource.range_header().as_deref(), Some("bytes=1700-2199"));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let base = url("http://h/master.m3u8");
        assert!(parse("<html>", &base).unwrap_err().contains("#EXTM3U"));
        let e = parse("#EXTM3U\n#EXT-X-STREAM-INF:RESOLUTION=1x1\nv.m3u8\n", &base).unwrap_err();
        assert!(e.contains("BANDWIDTH"), "{e}");
        let e = parse("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n", &base).unwrap_err();
        assert!(e.contains("URI"), "{e}");
        let e = parse("#EXTM3U\n#EXT-X-TARGETDURATION:2\nseg.ts\n", &base).unwrap_err();
        assert!(e.contains("EXTINF"), "{e}");
        let e = parse("#EXTM3U\n#EXTINF:abc,\nseg.ts\n", &base).unwrap_err();
        assert!(e.contains("abc"), "{e}");
        assert!(parse("#EXTM3U\n#EXT-X-ENDLIST\n", &base).is_err());
    }

    #[test]
    fn a_variant_without_resolution_is_labelled_by_bandwidth() {
        let v = Variant {
            uri: url("http://h/a"),
            bandwidth: 640_000,
            resolution: None,
            audio: None,
            pathway: DEFAULT_PATHWAY.into(),
        };
        assert_eq!(v.label(), "640k");
    }

    #[test]
    fn content_steering_tag_and_pathways() {
        // What the origin serves: the tag after the header, every variant on `home`.
        let text = "#EXTM3U\n#EXT-X-VERSION:7\n\
#EXT-X-CONTENT-STEERING:SERVER-URI=\"http://10.77.0.1:8080/v1/steering/vid\",PATHWAY-ID=\"home\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360,PATHWAY-ID=\"home\"\n360p/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=426x240,PATHWAY-ID=\"home\"\n240p/index.m3u8\n";
        let base = url("http://10.77.0.3:8081/p/tok/vid/master.m3u8");
        let Playlist::Master(m) = parse(text, &base).unwrap() else { panic!("not a master") };
        let tag = m.steering.as_ref().unwrap();
        assert_eq!(tag.server_uri.as_str(), "http://10.77.0.1:8080/v1/steering/vid");
        assert_eq!(tag.pathway.as_deref(), Some("home"));
        assert_eq!(m.pathway, "home");
        assert_eq!(m.variants.len(), 2);
        assert!(m.variants.iter().all(|v| v.pathway == "home"));

        // A relative SERVER-URI resolves against the playlist; variants listed for two
        // pathways make one ladder, the tag's.
        let text = "#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"/steer.json\",PATHWAY-ID=\"cdn-b\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=1,PATHWAY-ID=\"cdn-a\"\nhttp://a.example/v1.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=2,PATHWAY-ID=\"cdn-a\"\nhttp://a.example/v2.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=1,PATHWAY-ID=\"cdn-b\"\nhttp://b.example/v1.m3u8\n";
        let Playlist::Master(m) = parse(text, &base).unwrap() else { panic!() };
        assert_eq!(m.steering.as_ref().unwrap().server_uri.as_str(), "http://10.77.0.3:8081/steer.json");
        assert_eq!(m.pathway, "cdn-b");
        assert_eq!(m.variants.iter().map(|v| v.uri.as_str()).collect::<Vec<_>>(), ["http://b.example/v1.m3u8"]);

        // A PATHWAY-ID no variant is on: the first variant's pathway, as hls.js falls back.
        let text = "#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"s\",PATHWAY-ID=\"gone\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=1,PATHWAY-ID=\"x\"\nv.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2,PATHWAY-ID=\"y\"\nw.m3u8\n";
        let Playlist::Master(m) = parse(text, &base).unwrap() else { panic!() };
        assert_eq!((m.pathway.as_str(), m.variants.len()), ("x", 1));

        // No tag, no pathways: one ladder on `.`, as before.
        let Playlist::Master(m) = parse(MASTER, &base).unwrap() else { panic!() };
        assert!(m.steering.is_none());
        assert_eq!((m.pathway.as_str(), m.variants.len()), (DEFAULT_PATHWAY, 2));

        let e = parse("#EXTM3U\n#EXT-X-CONTENT-STEERING:PATHWAY-ID=\"a\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv\n", &base);
        assert!(e.unwrap_err().contains("SERVER-URI"));
    }
}

//! ABR-aware read-ahead: when a viewer fetches segment N of a rendition, the PoP fetches
//! N+1..N+depth of the same rendition into the memory tier before the viewer asks (the audio
//! rendition is a rendition: its requests read audio ahead). Only for videos whose viewers
//! usually go on watching, learned from this PoP's own requests, so the long tail's abandoners
//! cost no origin bytes and flush nothing; never past the video's last segment (from its
//! media playlist, as cached here: no playlist, no read-ahead); never for a taken-down video
//! (only after a viewer was served, which a taken-down video's viewers are not), and again
//! for one restored.
//!
//! The segment layout is the platform's published one (`{rendition}/seg_NNNNN.m4s`, also
//! under `cbcs/`): the PoP reads names, never the origin's internals.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::Edge;
use crate::fetch::{self, Want};

/// A media segment's place: the video, the rendition's folder, and its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// The video id.
    pub video: &'a str,
    /// The rendition's folder within the video (`720p`, `cbcs/audio`).
    pub rendition: &'a str,
    /// The segment's number, from 0.
    pub index: u32,
}

impl<'a> Segment<'a> {
    /// The segment named by a cache key `{video}/{rendition}/seg_NNNNN.m4s`, if it is one.
    pub fn parse(key: &'a str) -> Option<Self> {
        let (video, path) = key.split_once('/')?;
        let (rendition, name) = path.rsplit_once('/')?;
        let digits = name.strip_prefix("seg_")?.strip_suffix(".m4s")?;
        if digits.len() < 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self { video, rendition, index: digits.parse().ok()? })
    }

    /// The key of segment `index` of the same rendition.
    pub fn key_of(&self, index: u32) -> String {
        format!("{}/{}/seg_{index:05}.m4s", self.video, self.rendition)
    }

    /// The key of the rendition's media playlist.
    pub fn playlist_key(&self) -> String {
        format!("{}/{}/index.m3u8", self.video, self.rendition)
    }
}

/// The number of media segments a complete (VOD) media playlist lists; `None` for a playlist
/// that may still grow (no `#EXT-X-ENDLIST`) or that is not one.
pub fn segment_count(playlist: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(playlist).ok()?;
    if !text.starts_with("#EXTM3U") || !text.lines().any(|l| l.trim() == "#EXT-X-ENDLIST") {
        return None;
    }
    Some(text.lines().filter(|l| l.starts_with("#EXTINF")).count() as u32)
}

/// Videos followed above this many are forgotten all at once: the statistics stay bounded,
/// and popular videos are learned again within seconds.
const TRACKED_VIDEOS: usize = 100_000;
/// Segment requests of a video before its statistics are trusted.
const MIN_SAMPLES: u32 = 10;
/// A video's counts halve past this many requests, so a change in how it is watched shows.
const DECAY_AT: u32 = 1_000;

/// How a video's segments are asked for here.
#[derive(Debug, Default, Clone, Copy)]
struct Watching {
    /// Requests of its first segment (in any rendition): viewers starting.
    openings: u32,
    /// Requests of any of its segments.
    segments: u32,
}

/// Per-video continuation statistics and the segment counts of playlists seen.
#[derive(Debug)]
pub struct Readahead {
    depth: u32,
    continue_percent: u32,
    watching: Mutex<HashMap<String, Watching>>,
    lengths: Mutex<HashMap<String, u32>>,
}

impl Readahead {
    /// Reads `depth` segments ahead (0: never) for videos whose segment requests are followed
    /// by the next at least `continue_percent` percent of the time.
    pub fn new(depth: u32, continue_percent: u32) -> Self {
        Self { depth, continue_percent, watching: Mutex::default(), lengths: Mutex::default() }
    }

    /// Counts a viewer's request of `segment`; whether the video's viewers usually continue.
    /// A viewer who watches k segments asks for one opening and k segments, so the share of
    /// requests that continue is `1 - openings / segments`.
    pub fn record(&self, segment: &Segment<'_>) -> bool {
        let mut map = self.watching.lock().expect("readahead lock");
        if map.len() >= TRACKED_VIDEOS && !map.contains_key(segment.video) {
            map.clear();
        }
        let w = match map.get_mut(segment.video) {
            Some(w) => w,
            None => map.entry(segment.video.to_owned()).or_default(),
        };
        w.segments += 1;
        w.openings += u32::from(segment.index == 0);
        if w.segments >= DECAY_AT {
            *w = Watching { openings: w.openings / 2, segments: w.segments / 2 };
        }
        w.segments >= MIN_SAMPLES
            && u64::from(w.segments - w.openings.min(w.segments)) * 100
                >= u64::from(self.continue_percent) * u64::from(w.segments)
    }

    /// The segments to read ahead of `segment` in a rendition of `count` segments.
    pub fn ahead(&self, segment: &Segment<'_>, count: u32) -> std::ops::Range<u32> {
        let from = segment.index.saturating_add(1).min(count);
        from..segment.index.saturating_add(1).saturating_add(self.depth).min(count)
    }

    /// Whether reading ahead is on at all.
    pub fn enabled(&self) -> bool {
        self.depth > 0
    }

    fn length(&self, playlist: &str) -> Option<u32> {
        self.lengths.lock().expect("readahead lock").get(playlist).copied()
    }

    fn learn_length(&self, playlist: &str, count: u32) {
        let mut map = self.lengths.lock().expect("readahead lock");
        if map.len() >= TRACKED_VIDEOS {
            map.clear();
        }
        map.insert(playlist.to_owned(), count);
    }
}

/// After a viewer's request of `key`: reads the next segments ahead when the video earns it.
/// Cheap when it does not (a parse and a counter); the playlist is looked up off the request.
pub fn after_request(edge: &Arc<Edge>, key: &str) {
    let r = &edge.readahead;
    if !r.enabled() {
        return;
    }
    let Some(segment) = Segment::parse(key) else { return };
    if !r.record(&segment) {
        return;
    }
    let playlist = segment.playlist_key();
    match r.length(&playlist) {
        Some(count) => start(edge, &segment, count),
        None => {
            let (edge, key) = (edge.clone(), key.to_owned());
            tokio::spawn(async move {
                let Some(segment) = Segment::parse(&key) else { return };
                let Some((object, _)) = edge.cache.lookup(&playlist).await else { return };
                let Some(count) = segment_count(&object.body) else { return };
                edge.readahead.learn_length(&playlist, count);
                start(&edge, &segment, count);
            });
        }
    }
}

/// Fetches the segments ahead that are not cached, into memory only: a read-ahead is a guess,
/// and the disk is for what viewers asked for again. One already on its way is joined, not
/// fetched again (single flight).
fn start(edge: &Arc<Edge>, segment: &Segment<'_>, count: u32) {
    // After a restore, entries from before the takedown may still be held (purged lazily, on
    // lookup): for such a video, let the flight's own lookup tell what is really there.
    let restored = edge.cache.purges().taken_down(segment.video);
    for index in edge.readahead.ahead(segment, count) {
        let want = Want::object(&segment.key_of(index));
        let started = if restored {
            fetch::start(edge, want, false);
            true
        } else {
            fetch::start_unless_cached(edge, want, false)
        };
        if started {
            edge.metrics.read_ahead.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_of_the_published_layout() {
        let s = Segment::parse("v1/720p/seg_00007.m4s").unwrap();
        assert_eq!(s, Segment { video: "v1", rendition: "720p", index: 7 });
        assert_eq!(s.key_of(8), "v1/720p/seg_00008.m4s");
        assert_eq!(s.playlist_key(), "v1/720p/index.m3u8");
        let c = Segment::parse("v1/cbcs/audio/seg_00000.m4s").unwrap();
        assert_eq!((c.rendition, c.index), ("cbcs/audio", 0));
        for other in
            ["v1/720p/init.mp4", "v1/720p/index.m3u8", "v1/seg_00001.m4s", "v1/720p/seg_x.m4s", "v1/720p/seg_1.m4s"]
        {
            assert_eq!(Segment::parse(other), None, "{other}");
        }
    }

    #[test]
    fn playlists_count_their_segments_only_when_complete() {
        let vod = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg_00000.m4s\n#EXTINF:2.0,\nseg_00001.m4s\n#EXTINF:1.5,\nseg_00002.m4s\n#EXT-X-ENDLIST\n";
        assert_eq!(segment_count(vod), Some(3));
        assert_eq!(segment_count(b"#EXTM3U\n#EXTINF:2.0,\nseg_00000.m4s\n"), None);
        assert_eq!(segment_count(b"<html>"), None);
    }

    #[test]
    fn never_past_the_last_segment() {
        let r = Readahead::new(2, 50);
        let at = |index| Segment { video: "v", rendition: "720p", index };
        assert_eq!(r.ahead(&at(0), 5), 1..3);
        assert_eq!(r.ahead(&at(3), 5), 4..5);
        assert!(r.ahead(&at(4), 5).is_empty());
        assert!(r.ahead(&at(9), 5).is_empty());
    }

    #[test]
    fn only_videos_whose_viewers_continue() {
        let r = Readahead::new(1, 50);
        let at = |video, index| Segment { video, rendition: "720p", index };
        // Viewers of "binge" watch 10 segments; viewers of "tail" leave after the first two.
        let mut binge = false;
        for _ in 0..3 {
            for i in 0..10 {
                binge = r.record(&at("binge", i));
            }
        }
        // Viewers of "tail" mostly leave after the first segment: 3 of 13 requests continue.
        let mut tail = false;
        for viewer in 0..10 {
            tail = r.record(&at("tail", 0));
            if viewer < 3 {
                tail = r.record(&at("tail", 1));
            }
        }
        assert!(binge, "90% of its requests continue");
        assert!(!tail, "23% of its requests continue");
        // A video not seen enough is not read ahead.
        assert!(!r.record(&at("new", 3)));
        let strict = Readahead::new(1, 95);
        let mut seen = false;
        for i in 0..20 {
            seen = strict.record(&at("binge", i % 10));
        }
        assert!(!seen, "90% is below a 95% bar");
    }
}

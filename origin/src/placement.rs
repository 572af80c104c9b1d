//! Popularity-driven placement (P16): what the origin tells a PoP to warm on its heartbeat.
//! Pure: the heartbeat (`api::pops`) reads the region's minute counts, the video's metadata
//! and what is stored, and asks this module what to list.
//!
//! **Rising titles.** A region's minute counts give each title two rates: `recent`, the
//! higher of the previous minute and the current one at its pace so far (scaled to a whole
//! minute from at least [`MIN_SCALED_SECONDS`] of it, so a crowd shows within a few beats, not
//! at the next minute), and `baseline`, its per-minute average over the older minutes of the
//! horizon, weighted by age (halving every [`HALF_LIFE_MINUTES`]; a minute without requests
//! weighs in as zero). A title rises when `recent` is at least [`RISING_FACTOR`] times
//! `baseline` and at least [`RISING_FLOOR`]: a new title with a crowd rises at once; a steady
//! one does not; one viewer is noise and never does. Up to [`RISING_TITLES`] rising titles go
//! first, the decayed ranking (today's) fills up to [`PREFETCH_VIDEOS`].
//!
//! **The opening.** Every listed title gets today's short list (playlists, init segments and
//! [`SHORT_SEGMENTS`] segments per rendition). A rising title also gets its opening: the
//! segments that cover the first `steering.prefetch_opening_secs` of every rendition
//! (`ceil(opening / segment seconds)`, never past the last segment), on-demand rungs only what
//! is stored (a prefetch must never cost an encode).
//!
//! **Bounds.** Openings add at most [`OPENING_KEYS_PER_BEAT`] keys to one beat's answer, on
//! top of the short lists (at most [`PREFETCH_VIDEOS`] titles, as before). An opening is
//! listed time first (segment 2 of every rendition, then 3, ...) and paged: [`Openings`]
//! remembers per PoP and title where the next beat goes on, and once a PoP has been sent a
//! whole opening it is not sent again for [`RESEND_AFTER`]; the PoP skips keys it holds, so
//! a resend only repairs what it lost.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A count halves in this many minutes.
pub const HALF_LIFE_MINUTES: f64 = 15.0;
/// Counts older than this (eight half-lives: under 0.4% of their weight) are dropped.
pub const HORIZON_MINUTES: i64 = 120;
/// Titles a PoP is told to warm per heartbeat.
pub const PREFETCH_VIDEOS: usize = 10;
/// Leading segments warmed per rendition of every listed title: enough to start playback and
/// survive the first switch.
pub const SHORT_SEGMENTS: u64 = 2;

/// The longest opening `steering.prefetch_opening_secs` accepts.
pub const MAX_OPENING_SECONDS: u32 = 600;

/// Rising titles listed per beat at most (each with its opening).
pub const RISING_TITLES: usize = 3;
/// How many times its baseline a title's recent minute must be to rise.
pub const RISING_FACTOR: f64 = 2.0;
/// The least recent demand that can rise, in the unit PoPs report: each beat adds a PoP's
/// five-minute window totals to the minute, so at the default 3 s beat one viewer counts
/// about 1,300 in its first minute and about 6,000 a minute once it has watched for five
/// (arithmetic from those rules, not a measurement).
/// One viewer never rises; ten arriving together do within their first minute, a crowd of a
/// hundred within a few beats. An opening costs a minute of the whole ladder per PoP: it is
/// for crowds.
pub const RISING_FLOOR: u64 = 10_000;

/// Opening keys added to one beat's answer at most.
pub const OPENING_KEYS_PER_BEAT: usize = 256;
/// How long after a PoP was sent a whole opening it is sent again (it may have lost it).
pub const RESEND_AFTER: Duration = Duration::from_secs(300);
/// Entries each memo keeps at most; a full memo starts again (a resend costs little).
const MEMO_ENTRIES: usize = 4096;

/// One title's demand in a region, from its minute counts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Demand {
    /// Every minute's count weighed by its age: what the decayed ranking orders by.
    pub score: f64,
    /// Requests a minute now: the previous minute, or the current one at its pace so far.
    pub recent: u64,
    /// Weighted per-minute average of the older minutes in the horizon.
    pub baseline: f64,
}

impl Demand {
    /// Whether demand jumped: well above its own past, and above noise.
    pub fn is_rising(&self) -> bool {
        self.recent >= RISING_FLOOR && self.recent as f64 >= RISING_FACTOR * self.baseline
    }
}

/// The weight of a count `age` minutes old.
fn weight(age: i64) -> f64 {
    0.5f64.powf(age as f64 / HALF_LIFE_MINUTES)
}

/// Minutes that count as recent: the current one (filling) and the one before.
const RECENT_MINUTES: i64 = 2;

/// The least part of the current minute its count is scaled up from (so by three at most):
/// its first beat alone would otherwise count sixty times.
pub const MIN_SCALED_SECONDS: f64 = 20.0;

/// When the ranking is made: the minute the counts are filed under, and how far into it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    /// Minutes since the epoch.
    pub minute: i64,
    /// Seconds into that minute, 0 to 60.
    pub seconds: f64,
}

impl Clock {
    /// The clock at `now_ms` (milliseconds since the epoch, as the counts are filed).
    pub fn at(now_ms: i64) -> Self {
        Self { minute: now_ms.div_euclid(60_000), seconds: now_ms.rem_euclid(60_000) as f64 / 1000.0 }
    }

    /// The end of `minute`: its count is whole.
    pub fn end_of(minute: i64) -> Self {
        Self { minute, seconds: 60.0 }
    }

    /// The current minute's `requests` at a whole minute's pace.
    fn per_minute(&self, requests: u64) -> u64 {
        (requests as f64 * 60.0 / self.seconds.clamp(MIN_SCALED_SECONDS, 60.0)) as u64
    }
}

/// Sum of the weights of the baseline's minutes, every one of them, requested or not.
fn baseline_weight() -> f64 {
    (RECENT_MINUTES..=HORIZON_MINUTES).map(weight).sum()
}

/// Each title's demand at `now`, from `(video, minute, requests)` rows (several rows of one
/// title and minute add up: one per PoP or node).
pub fn demands(counts: &[(String, i64, u64)], now: Clock) -> HashMap<&str, Demand> {
    let mut minutes: HashMap<(&str, i64), u64> = HashMap::new();
    for (video, at, requests) in counts {
        // A node whose clock runs ahead writes a minute from the future: it is now.
        let age = (now.minute - at).max(0);
        let n = minutes.entry((video.as_str(), age)).or_default();
        *n = n.saturating_add(*requests);
    }
    let total = baseline_weight();
    let mut out: HashMap<&str, Demand> = HashMap::new();
    for ((video, age), requests) in minutes {
        let d = out.entry(video).or_default();
        d.score += requests as f64 * weight(age);
        if age == 0 {
            d.recent = d.recent.max(now.per_minute(requests));
        } else if age < RECENT_MINUTES {
            d.recent = d.recent.max(requests);
        } else {
            d.baseline += requests as f64 * weight(age) / total;
        }
    }
    out
}

/// A title to warm, and whether it rose (and so gets its opening).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    /// The video.
    pub video: String,
    /// Rising: gets its opening.
    pub rising: bool,
}

/// The titles a region's PoPs warm at `now`: up to `rising_titles` rising ones first (most
/// recent demand first), then the decayed ranking up to [`PREFETCH_VIDEOS`]; ties by id, so
/// every node picks the same.
pub fn choose(counts: &[(String, i64, u64)], now: Clock, rising_titles: usize) -> Vec<Pick> {
    let demands = demands(counts, now);
    let mut rising: Vec<(&str, &Demand)> =
        demands.iter().map(|(v, d)| (*v, d)).filter(|(_, d)| d.is_rising()).collect();
    rising.sort_by(|a, b| b.1.recent.cmp(&a.1.recent).then_with(|| a.0.cmp(b.0)));
    rising.truncate(rising_titles.min(PREFETCH_VIDEOS));
    let mut ranked: Vec<(&str, &Demand)> = demands.iter().map(|(v, d)| (*v, d)).collect();
    ranked.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then_with(|| a.0.cmp(b.0)));
    let mut picks: Vec<Pick> = rising.iter().map(|(v, _)| Pick { video: (*v).to_owned(), rising: true }).collect();
    for (video, _) in ranked {
        if picks.len() >= PREFETCH_VIDEOS {
            break;
        }
        if !picks.iter().any(|p| p.video == video) {
            picks.push(Pick { video: video.to_owned(), rising: false });
        }
    }
    picks
}

/// A video's segment duration: the on-demand plan's target when the upload left one, else
/// the duration over the segment count (at most the target, so an opening counted with it
/// covers at least its seconds).
pub fn segment_seconds(planned: Option<f64>, duration: Option<f64>, segments: u64) -> Option<f64> {
    let seconds = planned.or_else(|| duration.map(|d| d / segments as f64))?;
    (seconds.is_finite() && seconds > 0.0).then_some(seconds)
}

/// Segments per rendition that cover the first `opening_seconds`, never past the last one.
pub fn opening_segments(segment_seconds: f64, opening_seconds: u32, segments: u64) -> u64 {
    if opening_seconds == 0 || !(segment_seconds.is_finite() && segment_seconds > 0.0) {
        return 0;
    }
    // Float noise (60 / 2.0000001) must not cost a whole segment.
    let exact = f64::from(opening_seconds) / segment_seconds;
    let needed = if (exact - exact.round()).abs() < 1e-6 { exact.round() } else { exact.ceil() };
    (needed as u64).min(segments)
}

/// Which segments of a rendition are in storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// All of them: encoded at upload, or materialised since.
    All,
    /// Only these (an on-demand rung): the others would be encoded if asked for.
    Only(BTreeSet<u64>),
}

impl Stored {
    fn has(&self, segment: u64) -> bool {
        match self {
            Self::All => true,
            Self::Only(set) => set.contains(&segment),
        }
    }
}

/// What a video's opening is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// Where each protection tree's renditions sit (`""`, `"cbcs/"`).
    pub trees: Vec<&'static str>,
    /// Each rendition's folder and what of it is stored.
    pub renditions: Vec<(String, Stored)>,
    /// Segments per rendition in the opening (already capped at the video's count).
    pub opening: u64,
}

impl Shape {
    /// The opening's keys (`{video}/{tree}{rendition}/seg_NNNNN.m4s`) from segment `from` on,
    /// time first (one segment of every rendition, then the next), whole segments only and no
    /// more than `budget` keys; and the segment the next page starts at.
    pub fn page(&self, video: &str, from: u64, budget: usize) -> (Vec<String>, u64) {
        let mut keys = Vec::new();
        let mut next = from;
        while next < self.opening {
            let row = self.row(video, next);
            if keys.len() + row.len() > budget {
                break;
            }
            keys.extend(row);
            next += 1;
        }
        (keys, next)
    }

    /// Segment `n` of every rendition that has it stored, in every tree.
    fn row(&self, video: &str, n: u64) -> Vec<String> {
        let name = encoder::layout::segment_name(n as usize);
        let mut keys = Vec::new();
        for tree in &self.trees {
            for (rendition, _) in self.renditions.iter().filter(|(_, s)| s.has(n)) {
                keys.push(format!("{video}/{tree}{rendition}/{name}"));
            }
        }
        keys
    }

    /// Whether `from` is the end: nothing more to send.
    pub fn done(&self, from: u64) -> bool {
        from >= self.opening
    }
}

/// How far a PoP has been sent a title's opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Progress {
    /// The next segment to list.
    next: u64,
    /// When its first page was sent.
    started: Instant,
}

/// Per process: how far each PoP has been sent each opening, and each video's [`Shape`]
/// (looked up in the database and storage at most once per [`SHAPE_TTL`]).
#[derive(Debug, Default)]
pub struct Openings {
    sent: HashMap<(String, String), Progress>,
    shapes: HashMap<String, (Instant, Option<Arc<Shape>>)>,
}

/// How long a video's shape is reused: on-demand rungs gain stored segments as viewers ask,
/// and a beat may list them a little late.
pub const SHAPE_TTL: Duration = Duration::from_secs(30);

impl Openings {
    /// Where `pop`'s next page of `video`'s opening starts at `now`: after the short list
    /// when never sent or sent whole longer than [`RESEND_AFTER`] ago.
    pub fn from(&self, pop: &str, video: &str, now: Instant) -> u64 {
        match self.sent.get(&(pop.to_owned(), video.to_owned())) {
            Some(p) if now.duration_since(p.started) < RESEND_AFTER => p.next,
            _ => SHORT_SEGMENTS,
        }
    }

    /// `pop` was sent `video`'s opening up to `next` (exclusive) in a page that started at
    /// `from`: a page from the start starts the resend clock.
    pub fn record(&mut self, pop: &str, video: &str, from: u64, next: u64, now: Instant) {
        let key = (pop.to_owned(), video.to_owned());
        let started = match self.sent.get(&key) {
            Some(p) if from != SHORT_SEGMENTS => p.started,
            _ => now,
        };
        if !self.sent.contains_key(&key) && self.sent.len() >= MEMO_ENTRIES {
            self.sent.clear();
        }
        self.sent.insert(key, Progress { next, started });
    }

    /// `video`'s shape, if looked up within [`SHAPE_TTL`] of `now` (`Some(None)`: it has no
    /// opening).
    pub fn shape(&self, video: &str, now: Instant) -> Option<Option<Arc<Shape>>> {
        let (at, shape) = self.shapes.get(video)?;
        (now.duration_since(*at) < SHAPE_TTL).then(|| shape.clone())
    }

    /// Keeps `video`'s shape, looked up at `now`.
    pub fn keep_shape(&mut self, video: &str, shape: Option<Arc<Shape>>, now: Instant) {
        if !self.shapes.contains_key(video) && self.shapes.len() >= MEMO_ENTRIES {
            self.shapes.clear();
        }
        self.shapes.insert(video.to_owned(), (now, shape));
    }
}

#[cfg(test)]
mod tests;

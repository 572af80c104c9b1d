//! `loadtest synth-trace`: a synthetic request trace of video viewing, in the `trace`
//! format, to compare eviction policies without a PoP (and to check the replay against known
//! figures).
//!
//! The model: a catalogue of `videos` titles of `segments` segments of `segment_bytes` each.
//! A viewer picks a title by Zipf(`alpha`) popularity and watches segments 0, 1, 2, ... in
//! order, for a prefix whose length is exponential with mean `abandon_mean` segments,
//! rounded up (at least one segment, at most the whole title): most viewers leave early, so
//! the first segments of a title are far more popular than its last.
//!
//! The interleaving: `viewers` viewings run at once and take turns, one segment each, round
//! robin; a viewing that has watched its prefix is replaced, in its turn, by a new viewer.
//! That is a PoP with a steady audience whose members each fetch one segment per segment
//! duration; with one viewer at a time the trace would be whole prefixes back to back, which
//! no PoP sees.

use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::arrivals::exponential;
use crate::popularity::Zipf;
use crate::trace::TraceRecord;

/// The `server` every synthetic request names.
pub const SERVER: &str = "synth";

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthSpec {
    /// Zipf exponent of title popularity.
    pub alpha: f64,
    /// Titles in the catalogue.
    pub videos: usize,
    /// Segments per title.
    pub segments: u32,
    /// Bytes per segment.
    pub segment_bytes: u64,
    /// Mean segments a viewer watches before leaving (exponential).
    pub abandon_mean: f64,
    /// Requests (lines) to generate.
    pub requests: u64,
    /// Viewings at once.
    pub viewers: usize,
    /// Seed of every draw.
    pub seed: u64,
}

impl SynthSpec {
    /// The whole catalogue's bytes.
    pub fn catalogue_bytes(&self) -> u64 {
        self.videos as u64 * u64::from(self.segments) * self.segment_bytes
    }
}

#[derive(Debug, Clone, Copy)]
struct Viewing {
    video: usize,
    next: u32,
    length: u32,
}

/// The trace, one request at a time.
#[derive(Debug)]
pub struct Synth {
    spec: SynthSpec,
    zipf: Zipf,
    rng: SmallRng,
    viewings: Vec<Option<Viewing>>,
    emitted: u64,
}

impl Synth {
    /// A generator for `spec`; the same spec gives the same trace.
    pub fn new(spec: SynthSpec) -> Self {
        Self {
            zipf: Zipf::new(spec.videos, spec.alpha),
            rng: SmallRng::seed_from_u64(spec.seed),
            viewings: vec![None; spec.viewers.max(1)],
            emitted: 0,
            spec,
        }
    }

    fn arrive(&mut self) -> Viewing {
        let video = self.zipf.sample(&mut self.rng);
        let watched = exponential(self.spec.abandon_mean, &mut self.rng).ceil();
        let length = (watched as u32).clamp(1, self.spec.segments.max(1));
        Viewing { video, next: 0, length }
    }
}

impl Iterator for Synth {
    type Item = TraceRecord;

    fn next(&mut self) -> Option<TraceRecord> {
        if self.emitted >= self.spec.requests {
            return None;
        }
        let turn = (self.emitted % self.viewings.len() as u64) as usize;
        let mut viewing = match self.viewings[turn] {
            Some(v) if v.next < v.length => v,
            _ => self.arrive(),
        };
        let segment = viewing.next;
        viewing.next += 1;
        self.viewings[turn] = Some(viewing);
        let record = TraceRecord {
            at_ms: self.emitted,
            server: SERVER.into(),
            key: format!("/synth/v{:05}/seg_{segment:05}.m4s", viewing.video),
            bytes: self.spec.segment_bytes,
            x_cache: None,
        };
        self.emitted += 1;
        Some(record)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn spec() -> SynthSpec {
        SynthSpec {
            alpha: 0.9,
            videos: 50,
            segments: 10,
            segment_bytes: 1000,
            abandon_mean: 3.0,
            requests: 20_000,
            viewers: 4,
            seed: 5,
        }
    }

    fn parts(key: &str) -> (u32, u32) {
        let (video, segment) = key.trim_start_matches("/synth/v").split_once("/seg_").unwrap();
        (video.parse().unwrap(), segment.trim_end_matches(".m4s").parse().unwrap())
    }

    #[test]
    fn viewers_watch_prefixes_in_turn() {
        let trace: Vec<_> = Synth::new(spec()).collect();
        assert_eq!(trace.len(), 20_000);
        assert!(trace.iter().all(|r| r.bytes == 1000 && r.server == SERVER && r.x_cache.is_none()));
        // Each of the 4 turns walks its titles segment by segment from 0.
        for turn in 0..4 {
            let mut last: Option<(u32, u32)> = None;
            for r in trace.iter().skip(turn).step_by(4) {
                let (video, segment) = parts(&r.key);
                assert!(segment < 10);
                match last {
                    Some((v, s)) if segment != 0 => assert_eq!((video, segment), (v, s + 1), "{}", r.key),
                    _ => assert_eq!(segment, 0, "a viewing starts at the first segment: {}", r.key),
                }
                last = Some((video, segment));
            }
        }
        // Leaving early: first segments are asked for far more than last ones.
        let mut by_segment: HashMap<u32, u32> = HashMap::new();
        for r in &trace {
            *by_segment.entry(parts(&r.key).1).or_default() += 1;
        }
        assert!(by_segment[&0] > 5 * by_segment[&9], "{by_segment:?}");
        // Popular titles first.
        let count = |v: u32| trace.iter().filter(|r| parts(&r.key).0 == v).count();
        assert!(count(0) > 3 * count(49));
    }

    #[test]
    fn the_same_seed_gives_the_same_trace() {
        let a: Vec<_> = Synth::new(spec()).take(500).collect();
        let b: Vec<_> = Synth::new(spec()).take(500).collect();
        let c: Vec<_> = Synth::new(SynthSpec { seed: 6, ..spec() }).take(500).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(spec().catalogue_bytes(), 50 * 10 * 1000);
    }
}

//! The PoP's two tiers replayed: an S3-FIFO memory tier over a disk tier that evicts in
//! write order (foyer's block engine reclaims its oldest blocks first), with the disk's
//! admission rule as the variable. The PoP's rule is [`Admission::SecondRequest`]: an object
//! reaches the disk once it has been asked for twice (`edge/src/admission.rs`), and is
//! written then even if the memory tier still holds it. [`Admission::Opening`] is the
//! segment-order rule the issue proposes: a title's first segments are worth more than its
//! late ones (viewers abandon), so they reach the disk on their first request and the rest
//! on their second. The replay decides between them; the PoP keeps the rule that wins.
//!
//! A hit in either tier is a hit. An object found only on disk is read back into memory, as
//! foyer does.

use std::collections::VecDeque;

use super::s3fifo::S3Fifo;
use super::{Policy, slot};

/// When an object earns a place on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// On its second request (the PoP's rule).
    SecondRequest,
    /// Segments numbered below `segments` on their first request, everything else on its
    /// second.
    Opening {
        /// How many of a title's first segments count as its opening.
        segments: u32,
    },
}

/// Memory over disk.
#[derive(Debug)]
pub struct Tiers {
    memory: S3Fifo,
    disk: Fifo,
    admission: Admission,
    /// Per object: its segment number, if its name has one.
    segment: Vec<Option<u32>>,
    /// Per object: requests so far.
    requests: Vec<u32>,
}

impl Tiers {
    /// `memory` and `disk` bytes, objects numbered as in `segment` (their segment numbers).
    pub fn new(memory: u64, disk: u64, admission: Admission, segment: Vec<Option<u32>>) -> Self {
        Self { memory: S3Fifo::new(memory), disk: Fifo::new(disk), admission, segment, requests: Vec::new() }
    }

    fn admits(&self, object: u32, requests: u32) -> bool {
        match self.admission {
            Admission::SecondRequest => requests >= 2,
            Admission::Opening { segments } => {
                requests >= 2 || self.segment.get(object as usize).copied().flatten().is_some_and(|s| s < segments)
            }
        }
    }
}

impl Policy for Tiers {
    fn name(&self) -> &'static str {
        match self.admission {
            Admission::SecondRequest => "+disk, 2nd req",
            Admission::Opening { .. } => "+disk, opening",
        }
    }

    fn access(&mut self, object: u32, size: u64) -> bool {
        let requests = {
            let n = slot(&mut self.requests, object);
            *n = n.saturating_add(1);
            *n
        };
        let on_disk = self.disk.holds(object);
        let in_memory = self.memory.access(object, size);
        if !on_disk && self.admits(object, requests) {
            self.disk.write(object, size);
        }
        in_memory || on_disk
    }
}

/// A cache that evicts in write order.
#[derive(Debug, Default)]
struct Fifo {
    capacity: u64,
    used: u64,
    order: VecDeque<(u32, u64)>,
    held: Vec<bool>,
}

impl Fifo {
    fn new(capacity: u64) -> Self {
        Self { capacity, ..Self::default() }
    }

    fn holds(&self, object: u32) -> bool {
        self.held.get(object as usize).copied().unwrap_or(false)
    }

    fn write(&mut self, object: u32, size: u64) {
        if size > self.capacity {
            return;
        }
        while self.used + size > self.capacity {
            let Some((victim, freed)) = self.order.pop_front() else { break };
            self.held[victim as usize] = false;
            self.used -= freed;
        }
        *slot(&mut self.held, object) = true;
        self.order.push_back((object, size));
        self.used += size;
    }
}

/// The segment number in a key's last path element (`seg_00012.m4s` → 12), if any.
pub fn segment_number(key: &str) -> Option<u32> {
    let name = key.rsplit('/').next()?;
    let digits = name.strip_prefix("seg_")?.split('.').next()?;
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::super::tests::requests;
    use super::*;

    fn run(tiers: &mut Tiers, sequence: &str) -> String {
        requests(sequence).iter().map(|r| if tiers.access(r.object, r.size) { 'h' } else { '.' }).collect()
    }

    #[test]
    fn segment_numbers_come_from_the_file_name() {
        assert_eq!(segment_number("/p/t/v1/720p/seg_00012.m4s"), Some(12));
        assert_eq!(segment_number("/synth/v00003/seg_00000.m4s"), Some(0));
        assert_eq!(segment_number("/v1/720p/init.mp4"), None);
        assert_eq!(segment_number("/v1/720p/seg_x.m4s"), None);
    }

    #[test]
    fn the_disk_admits_on_the_second_request_and_evicts_in_write_order() {
        // No memory tier, a disk of two objects (a=0, b=1, c=2; no segment numbers). The
        // second a is written; b likewise; c's second request pushes a out, a's return b.
        let mut tiers = Tiers::new(0, 2, Admission::SecondRequest, vec![None; 3]);
        assert_eq!(run(&mut tiers, "a b a c a b b c a"), "....h.h..");
    }

    #[test]
    fn the_opening_rule_admits_early_segments_on_their_first_request() {
        // Two opening segments (0, 1) and a later one (2); no memory tier, disk for three.
        let segments = vec![Some(0), Some(1), Some(2)];
        let mut opening = Tiers::new(0, 3, Admission::Opening { segments: 2 }, segments.clone());
        let mut second = Tiers::new(0, 3, Admission::SecondRequest, segments);
        assert_eq!(run(&mut opening, "s0 s1 s2 s0 s1 s2 s2"), "...hh.h");
        assert_eq!(run(&mut second, "s0 s1 s2 s0 s1 s2 s2"), "......h");
    }

    #[test]
    fn a_hit_in_either_tier_counts() {
        // Memory of ten objects holds a; the disk never admits (one request each, no opening).
        let mut tiers = Tiers::new(10, 10, Admission::SecondRequest, vec![None; 2]);
        assert_eq!(run(&mut tiers, "a a b"), ".h.");
    }
}

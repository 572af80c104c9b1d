//! S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction", SOSP'23): the
//! family the PoP's memory tier belongs to (foyer's S3-FIFO), so the replay shows what the
//! policy itself achieves on a trace apart from the PoP's tiers and admission.
//!
//! Three FIFO queues: new objects enter a small queue (10 % of the bytes); those requested
//! again while there move to the main queue (90 %), the rest leave and are remembered in a
//! ghost queue of keys, from which a returning object goes straight to the main queue. The
//! main queue is a clock with a 2-bit counter: an object requested since it last passed the
//! tail goes round again with its count decreased.
//!
//! Following the paper's Algorithm 1: a hit increments the counter, capped at 3; a miss
//! evicts (from the small queue while it holds at least its 10 %, else from the main queue)
//! until the object fits. One choice differs between sources: how many hits move an object
//! from the small queue to the main one. The SOSP artifact (libCacheSim's `S3FIFOv0.c`,
//! `move-to-main-threshold=2`) asks for two (`freq > 1`); the blog's wording ("accessed more
//! than once", the inserting request included) and earlier libCacheSim defaults for one.
//! We take one ([`MOVE_TO_MAIN`], `freq > 0`): a video segment asked for again while still in
//! the small queue is the next viewer of the same title, and that is the sign worth keeping.
//! (Most objects reach the main queue through the ghost anyway; the two choices were not
//! compared by a script in the repo: `loadtest synth-trace` + `replay` with the constant set
//! to 1 would.) The object's counter starts again from zero in the main queue.
//!
//! The ghost remembers as many keys as the main queue holds objects: counted with their
//! sizes against the main queue's capacity, as the reference implementation does, which
//! for objects of one size is the main queue's count when full. (Its count at the moment
//! would leave the ghost empty while the main queue is still filling, so an object evicted
//! from the small queue early could never come back.)

use std::collections::VecDeque;

use super::{Policy, slot};

/// Share of the capacity the small queue holds.
const SMALL_SHARE: f64 = 0.10;
/// Hits at least, while in the small queue, that move an object to the main queue.
pub const MOVE_TO_MAIN: u8 = 1;
/// The counter's cap (two bits).
const MAX_FREQ: u8 = 3;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Place {
    #[default]
    Out,
    Small,
    Main,
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    place: Place,
    freq: u8,
    size: u64,
    /// When it entered the ghost (a sequence number), while it is there; 0 otherwise.
    ghost: u64,
}

/// The three queues.
#[derive(Debug, Default)]
pub struct S3Fifo {
    capacity: u64,
    small_capacity: u64,
    main_capacity: u64,
    entries: Vec<Entry>,
    small: VecDeque<u32>,
    main: VecDeque<u32>,
    small_bytes: u64,
    main_bytes: u64,
    /// Keys with the sequence number they entered with; an entry whose object has left the
    /// ghost since (a ghost hit) is stale and skipped.
    ghost: VecDeque<(u32, u64)>,
    /// Sizes of the objects the ghost remembers.
    ghost_bytes: u64,
    ghost_seq: u64,
}

impl S3Fifo {
    /// An empty cache of `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        let small_capacity = (capacity as f64 * SMALL_SHARE) as u64;
        Self { capacity, small_capacity, main_capacity: capacity - small_capacity, ..Self::default() }
    }

    /// Whether a missed object is remembered by the ghost; it leaves the ghost either way
    /// (before any eviction, which could push it out).
    fn leave_ghost(&mut self, object: u32) -> bool {
        let e = &mut self.entries[object as usize];
        let returning = e.ghost != 0;
        if returning {
            e.ghost = 0;
            self.ghost_bytes -= e.size;
        }
        returning
    }

    fn insert(&mut self, object: u32, size: u64, returning: bool) {
        let place = if returning { Place::Main } else { Place::Small };
        self.entries[object as usize] = Entry { place, freq: 0, size, ghost: 0 };
        match place {
            Place::Main => {
                self.main.push_back(object);
                self.main_bytes += size;
            }
            _ => {
                self.small.push_back(object);
                self.small_bytes += size;
            }
        }
    }

    fn evict(&mut self) {
        if self.small_bytes >= self.small_capacity.max(1) || self.main.is_empty() {
            self.evict_small();
        } else {
            self.evict_main();
        }
    }

    /// Takes objects off the small queue's tail until one leaves the cache: those hit while
    /// there move to the main queue instead.
    fn evict_small(&mut self) {
        while let Some(object) = self.small.pop_front() {
            let e = &mut self.entries[object as usize];
            self.small_bytes -= e.size;
            if e.freq >= MOVE_TO_MAIN {
                (e.place, e.freq) = (Place::Main, 0);
                self.main_bytes += e.size;
                self.main.push_back(object);
                if self.main_bytes > self.main_capacity {
                    self.evict_main();
                }
            } else {
                e.place = Place::Out;
                self.remember(object);
                return;
            }
        }
    }

    /// Takes objects off the main queue's tail until one with a zero counter leaves; the
    /// others go round again with their counter decreased.
    fn evict_main(&mut self) {
        while let Some(object) = self.main.pop_front() {
            let e = &mut self.entries[object as usize];
            if e.freq > 0 {
                e.freq -= 1;
                self.main.push_back(object);
            } else {
                e.place = Place::Out;
                self.main_bytes -= e.size;
                return;
            }
        }
    }

    /// Puts an object evicted from the small queue into the ghost, and forgets the oldest
    /// keys beyond the main queue's capacity.
    fn remember(&mut self, object: u32) {
        self.ghost_seq += 1;
        let e = &mut self.entries[object as usize];
        e.ghost = self.ghost_seq;
        self.ghost_bytes += e.size;
        self.ghost.push_back((object, self.ghost_seq));
        while self.ghost_bytes > self.main_capacity || self.ghost.front().is_some_and(|g| !self.live(*g)) {
            let Some(g) = self.ghost.pop_front() else { break };
            if self.live(g) {
                let e = &mut self.entries[g.0 as usize];
                e.ghost = 0;
                self.ghost_bytes -= e.size;
            }
        }
    }

    fn live(&self, (object, seq): (u32, u64)) -> bool {
        self.entries[object as usize].ghost == seq
    }
}

impl Policy for S3Fifo {
    fn name(&self) -> &'static str {
        "S3-FIFO"
    }

    fn access(&mut self, object: u32, size: u64) -> bool {
        let e = slot(&mut self.entries, object);
        if e.place != Place::Out {
            e.freq = (e.freq + 1).min(MAX_FREQ);
            return true;
        }
        if size > self.capacity {
            return false;
        }
        let returning = self.leave_ghost(object);
        while self.small_bytes + self.main_bytes + size > self.capacity {
            self.evict();
        }
        self.insert(object, size, returning);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::hits;
    use super::*;

    #[test]
    fn one_hit_in_the_small_queue_earns_the_main_queue() {
        // Capacity 10 unit objects: small 1, main 9. Requests: a a b c a.
        // a: miss, small [a]. a: hit, freq 1. b: miss; the cache is not full, small [a b].
        // Fill with c..j (8 misses): 10 objects cached. k: miss, full; small holds 10 >= 1,
        // so evict from small: a (freq 1) moves to main, b (freq 0) leaves for the ghost.
        // b again: a ghost hit, so a miss that enters main. a: hit (it is in main).
        let mut s3 = S3Fifo::new(10);
        assert_eq!(hits(&mut s3, "a a b c d e f g h i j k b a"), ".h...........h");
        assert_eq!(s3.entries[1].place, Place::Main, "b came back from the ghost into main");
        assert_eq!(s3.entries[0].place, Place::Main);
    }

    #[test]
    fn a_one_hit_scan_passes_through_the_small_queue() {
        // Capacity 10: small 1, main 9. a and b are hit while small (freq 1), then pushed
        // out by the scan x..: each scan object enters small and leaves at the next miss
        // (freq 0), while a and b, moved to main, stay. After the scan a and b still hit.
        let mut s3 = S3Fifo::new(10);
        let got = hits(&mut s3, "a a b b c d e f g h i j k l m n o p q r s t u v w x y z a b");
        assert!(got.ends_with("hh"), "{got}");
        // LRU of the same size has lost them to the scan.
        let mut lru = super::super::lru::Lru::new(10);
        assert!(hits(&mut lru, "a a b b c d e f g h i j k l m n o p q r s t u v w x y z a b").ends_with(".."));
    }

    #[test]
    fn the_main_queue_gives_a_requested_object_another_round() {
        // Capacity 20: small 2, main 18. o0..o17 asked twice each while the cache fills: all
        // in small with a count of 1. x, y: the cache is full (20). z: evict from small:
        // o0..o17 move to main (18, not over), x leaves for the ghost; small [y z].
        // o0: a hit in main, count 1. w: evict from small: y leaves; small [z w].
        // x: a ghost hit: evict from small (z leaves), x enters main (19 > 18); small [w].
        // v: small holds 1 < 2, so evict from main: o0 (count 1) goes round with 0, o1
        // (count 0) leaves.
        let mut s3 = S3Fifo::new(20);
        let warm: String = (0..18).map(|i| format!("o{i} o{i} ")).collect();
        let got = hits(&mut s3, &format!("{warm}x y z o0 w x v"));
        assert_eq!(&got[36..], "...h...", "{got}");
        assert_eq!((s3.entries[0].place, s3.entries[0].freq), (Place::Main, 0), "o0 went round");
        assert_eq!(s3.entries[1].place, Place::Out, "o1 was evicted");
        assert_eq!(s3.entries[18].place, Place::Main, "x came back into main");
    }

    #[test]
    fn the_main_queue_is_a_two_bit_clock() {
        let mut s3 = S3Fifo::new(10);
        for _ in 0..5 {
            s3.access(0, 1);
        }
        assert_eq!(s3.entries[0].freq, MAX_FREQ, "capped at 3");
        // Oversized objects are never admitted.
        assert!(!s3.access(9, 11) && !s3.access(9, 11));
        assert_eq!(s3.entries[9].place, Place::Out);
    }
}

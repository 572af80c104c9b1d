//! Belady's clairvoyant policy, made size-aware: the yardstick for how much of a trace any
//! cache of that size could have served.
//!
//! It knows the whole trace, so it knows each request's next use of the same object. On a
//! miss it admits the object only if it will be used again, and only if the room it needs
//! can be made by evicting objects whose next use is farther than its own; those go,
//! farthest first. Otherwise the object bypasses the cache. A hit on an object never used
//! again frees its room at once.
//!
//! With objects of one size this is Belady's MIN, optimal for the hit count (and so for
//! bytes). With sizes that vary, finding the optimum is NP-hard, and "farthest next use"
//! is the standard heuristic: it is not an exact bound (a cache that keeps many small objects
//! instead of one big one may beat it on bytes, or the reverse on requests), but on traces
//! like a CDN's it sits well above any online policy, and reads as "about the best a cache of
//! this size could do".

use std::collections::BTreeSet;

use super::{Policy, Request, slot};

/// A next use that never comes.
const NEVER: usize = usize::MAX;

/// Farthest-next-use with bypass, over one known trace.
#[derive(Debug)]
pub struct Belady {
    capacity: u64,
    used: u64,
    /// For each request of the trace, the index of the next request for the same object.
    next_use: Vec<usize>,
    /// The trace's objects, to check it is replayed as given.
    objects: Vec<u32>,
    /// The request about to be served.
    position: usize,
    /// Per object: its next use and size, while cached.
    cached: Vec<Option<(usize, u64)>>,
    /// Cached objects by next use.
    by_next_use: BTreeSet<(usize, u32)>,
}

impl Belady {
    /// A cache of `capacity` bytes that will be fed exactly `trace`, in order.
    pub fn new(capacity: u64, trace: &[Request]) -> Self {
        Self {
            capacity,
            used: 0,
            next_use: next_uses(trace),
            objects: trace.iter().map(|r| r.object).collect(),
            position: 0,
            cached: Vec::new(),
            by_next_use: BTreeSet::new(),
        }
    }

    /// The cached objects to evict, farthest next use first, to make `room` bytes, all of
    /// them used later than `next`; `None` if that is not enough.
    fn victims(&self, room: u64, next: usize) -> Option<Vec<(usize, u32)>> {
        let mut freed = 0;
        let mut victims = Vec::new();
        for &(their_next, object) in self.by_next_use.iter().rev() {
            if freed >= room {
                break;
            }
            if their_next <= next {
                return None;
            }
            freed += self.cached[object as usize].map_or(0, |(_, size)| size);
            victims.push((their_next, object));
        }
        (freed >= room).then_some(victims)
    }

    fn evict(&mut self, (next, object): (usize, u32)) {
        self.by_next_use.remove(&(next, object));
        if let Some((_, size)) = self.cached[object as usize].take() {
            self.used -= size;
        }
    }
}

/// Each request's next use of the same object, by one backward pass.
fn next_uses(trace: &[Request]) -> Vec<usize> {
    let mut seen: Vec<usize> = Vec::new();
    let mut next = vec![NEVER; trace.len()];
    for (i, r) in trace.iter().enumerate().rev() {
        let last = slot(&mut seen, r.object);
        // `slot` fills with 0; store i + 1 so that 0 means "not seen yet".
        if *last != 0 {
            next[i] = *last - 1;
        }
        *last = i + 1;
    }
    next
}

impl Policy for Belady {
    fn name(&self) -> &'static str {
        "Belady"
    }

    fn access(&mut self, object: u32, size: u64) -> bool {
        let i = self.position;
        self.position += 1;
        assert_eq!(self.objects.get(i), Some(&object), "Belady replays the trace it was given, in order");
        let next = self.next_use[i];
        if let Some((was, kept)) = *slot(&mut self.cached, object) {
            self.by_next_use.remove(&(was, object));
            if next == NEVER {
                self.cached[object as usize] = None;
                self.used -= kept;
            } else {
                self.cached[object as usize] = Some((next, kept));
                self.by_next_use.insert((next, object));
            }
            return true;
        }
        if next == NEVER || size > self.capacity {
            return false;
        }
        let room = (self.used + size).saturating_sub(self.capacity);
        let Some(victims) = self.victims(room, next) else { return false };
        for v in victims {
            self.evict(v);
        }
        self.cached[object as usize] = Some((next, size));
        self.by_next_use.insert((next, object));
        self.used += size;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{hits, requests};
    use super::*;

    #[test]
    fn evicts_the_object_used_farthest_ahead() {
        // Capacity 3, unit sizes; the sequence the LRU test uses:
        //   i:    0 1 2 3 4 5 6 7 8 9
        //   key:  a b c a d a b c a d
        //   next: 3 6 7 5 9 8 - - - -
        // a b c: misses, admitted (each is used again). a: hit. d (next 9): full, and the
        // farthest cached next use is c's 7, nearer than 9: d bypasses. a: hit. b, c, a: hits,
        // each the object's last use, which frees it. d: miss, never used again.
        // Hits: 5, where LRU got 3.
        let seq = "a b c a d a b c a d";
        let mut belady = Belady::new(3, &requests(seq));
        assert_eq!(hits(&mut belady, seq), "...h.hhhh.");
    }

    #[test]
    fn a_big_object_that_would_push_out_many_small_ones_is_bypassed() {
        // Capacity 4: four 1-byte objects, then a 4-byte one, then the small ones again,
        // then the big one. Keeping the big one would cost four hits to win one: it bypasses.
        let trace: Vec<Request> = [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
            .iter()
            .map(|&object| Request { object, size: if object == 4 { 4 } else { 1 } })
            .collect();
        let mut belady = Belady::new(4, &trace);
        let got: Vec<bool> = trace.iter().map(|r| belady.access(r.object, r.size)).collect();
        assert_eq!(got, [false, false, false, false, false, true, true, true, true, false]);
        // LRU takes the big one in and loses every small one.
        let mut lru = super::super::lru::Lru::new(4);
        assert!(trace.iter().all(|r| !lru.access(r.object, r.size)));
    }

    #[test]
    fn the_next_use_of_each_request() {
        let trace = requests("a b a c b a");
        assert_eq!(next_uses(&trace), [2, 4, 5, NEVER, NEVER, NEVER]);
    }
}

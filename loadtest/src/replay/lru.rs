//! Least recently used, with a capacity in bytes: the baseline every cache is compared with.

use std::collections::BTreeMap;

use super::{Policy, slot};

/// Classic LRU: a hit makes the object the most recent; a miss admits it and evicts the
/// least recent objects until it fits.
#[derive(Debug, Default)]
pub struct Lru {
    capacity: u64,
    used: u64,
    /// Advances on every access: the recency order.
    clock: u64,
    /// Per object: its last access and its size, while cached.
    cached: Vec<Option<(u64, u64)>>,
    /// Cached objects by last access, least recent first.
    by_recency: BTreeMap<u64, u32>,
}

impl Lru {
    /// An empty cache of `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        Self { capacity, ..Self::default() }
    }
}

impl Policy for Lru {
    fn name(&self) -> &'static str {
        "LRU"
    }

    fn access(&mut self, object: u32, size: u64) -> bool {
        self.clock += 1;
        let now = self.clock;
        let entry = slot(&mut self.cached, object);
        if let Some((last, kept)) = *entry {
            *entry = Some((now, kept));
            self.by_recency.remove(&last);
            self.by_recency.insert(now, object);
            return true;
        }
        if size > self.capacity {
            return false;
        }
        while self.used + size > self.capacity {
            let Some((_, victim)) = self.by_recency.pop_first() else { break };
            let (_, freed) = self.cached[victim as usize].take().expect("every ordered object is cached");
            self.used -= freed;
        }
        self.cached[object as usize] = Some((now, size));
        self.by_recency.insert(now, object);
        self.used += size;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::hits;
    use super::*;

    #[test]
    fn evicts_the_least_recently_used() {
        // Capacity 3, unit sizes. a b c: 3 misses, cache [a b c]. a: hit (order b c a).
        // d: miss, evicts b (cache c a d). a: hit. b: miss, evicts c (a d b). c: miss, evicts
        // d (a b c). a: hit. d: miss, evicts b (c a d). Hits: a, a, a = 3.
        let mut lru = Lru::new(3);
        assert_eq!(hits(&mut lru, "a b c a d a b c a d"), "...h.h..h.");
    }

    #[test]
    fn sizes_count_in_bytes_and_oversized_objects_are_never_kept() {
        // Capacity 10: a(4) b(4) fit; c(4) evicts a; b hits; a misses again and evicts c.
        let mut lru = Lru::new(10);
        let seq = [(0, 4), (1, 4), (2, 4), (1, 4), (0, 4), (3, 11), (3, 11), (1, 4)];
        let got: Vec<bool> = seq.iter().map(|&(o, s)| lru.access(o, s)).collect();
        assert_eq!(got, [false, false, false, true, false, false, false, true], "the 11-byte object never stays");
        assert!(lru.used <= 10);
    }
}

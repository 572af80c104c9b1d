//! The arena's free space as extents: a request takes the smallest extent that holds it, and
//! what is given back merges with its free neighbours, so long-lived objects do not split the
//! space into pieces too small for the next segment.

use std::collections::{BTreeMap, BTreeSet};

/// Free extents of a space of bytes.
#[derive(Debug)]
pub(crate) struct Extents {
    /// Offset → length.
    by_offset: BTreeMap<u64, u64>,
    /// (length, offset), for best fit.
    by_size: BTreeSet<(u64, u64)>,
}

impl Extents {
    /// A space of `size` bytes, all free.
    pub(crate) fn new(size: u64) -> Self {
        let mut extents = Self { by_offset: BTreeMap::new(), by_size: BTreeSet::new() };
        if size > 0 {
            extents.add(0, size);
        }
        extents
    }

    /// A place for `len` bytes (`len > 0`): the smallest free extent that holds them, the lowest
    /// offset among equals; `None` when no extent is large enough.
    pub(crate) fn take(&mut self, len: u64) -> Option<u64> {
        let &(size, offset) = self.by_size.range((len, 0)..).next()?;
        self.remove(offset, size);
        if size > len {
            self.add(offset + len, size - len);
        }
        Some(offset)
    }

    /// Gives back `len` bytes at `offset`, taken before and not given back since.
    pub(crate) fn give_back(&mut self, offset: u64, len: u64) {
        let (mut start, mut end) = (offset, offset + len);
        if let Some((&before, &before_len)) = self.by_offset.range(..offset).next_back() {
            debug_assert!(before + before_len <= offset, "given back twice");
            if before + before_len == offset {
                self.remove(before, before_len);
                start = before;
            }
        }
        if let Some(&after_len) = self.by_offset.get(&end) {
            self.remove(end, after_len);
            end += after_len;
        }
        self.add(start, end - start);
    }

    /// Free bytes.
    #[cfg(test)]
    fn free(&self) -> u64 {
        self.by_offset.values().sum()
    }

    fn add(&mut self, offset: u64, len: u64) {
        self.by_offset.insert(offset, len);
        self.by_size.insert((len, offset));
    }

    fn remove(&mut self, offset: u64, len: u64) {
        self.by_offset.remove(&offset);
        self.by_size.remove(&(len, offset));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_in_order_until_full_and_refuses_what_does_not_fit() {
        let mut e = Extents::new(100);
        assert_eq!(e.take(40), Some(0));
        assert_eq!(e.take(40), Some(40));
        assert_eq!(e.take(40), None, "20 left");
        assert_eq!(e.take(20), Some(80));
        assert_eq!(e.free(), 0);
        assert_eq!(e.take(1), None);
    }

    #[test]
    fn the_smallest_hole_that_fits_is_used() {
        let mut e = Extents::new(100);
        let (a, _b, c, _d) = (e.take(30).unwrap(), e.take(10).unwrap(), e.take(10).unwrap(), e.take(10).unwrap());
        e.give_back(a, 30);
        e.give_back(c, 10);
        // Free: [0,30) and [40,50) and [60,100). Ten bytes go into the ten-byte hole.
        assert_eq!(e.take(10), Some(40));
        assert_eq!(e.take(35), Some(60), "only the tail holds 35");
        assert_eq!(e.take(30), Some(0));
    }

    #[test]
    fn given_back_neighbours_merge_into_one_extent() {
        let mut e = Extents::new(90);
        let parts: Vec<u64> = (0..3).map(|_| e.take(30).unwrap()).collect();
        // Middle last: it must merge with both sides.
        e.give_back(parts[0], 30);
        e.give_back(parts[2], 30);
        e.give_back(parts[1], 30);
        assert_eq!(e.free(), 90);
        assert_eq!(e.take(90), Some(0), "one extent again");
    }

    #[test]
    fn churn_keeps_the_space_whole() {
        let mut e = Extents::new(1 << 20);
        let mut held = Vec::new();
        for i in 0..2000u64 {
            let len = 4096 * (1 + i % 7);
            if let Some(at) = e.take(len) {
                held.push((at, len));
            }
            if i % 3 == 0 && !held.is_empty() {
                let (at, len) = held.swap_remove((i as usize * 7) % held.len());
                e.give_back(at, len);
            }
        }
        let mut spans: Vec<_> = held.clone();
        spans.sort_unstable();
        assert!(spans.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0), "no extent handed out twice");
        held.into_iter().for_each(|(at, len)| e.give_back(at, len));
        assert_eq!(e.take(1 << 20), Some(0));
    }
}

//! The PoP's cache measured against the optimum: a request trace (`trace`) replayed through
//! eviction policies of the same capacity, LRU (the baseline), S3-FIFO (the family of the
//! PoP's memory tier) and Belady (clairvoyant, "about the best any cache could do"), beside
//! what the PoP itself answered in `x-cache`.
//!
//! Pure: no IO, no clock. Keys are interned to dense integer ids first, so each policy keeps
//! its state in vectors indexed by object. Capacities are in bytes, and an object larger
//! than the whole capacity is never cached. An object asked for with another size than it
//! was cached with (a ranged request of the same path) is a hit for the bytes asked.
//!
//! Every row covers the same requests: those the PoP gave a verdict on (`hit-*`, `stale`,
//! `miss`), since a request it did not cache by design (`pass`, or no `x-cache`, like a
//! `no-store` key) is not its cache's workload; or all of them when it gave none at all (a
//! synthetic trace, a server that does not say).

pub mod belady;
pub mod lru;
pub mod s3fifo;
pub mod tiers;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::record::CacheOutcome;
use crate::trace::TraceRecord;

/// An eviction policy fed one request at a time.
pub trait Policy {
    /// The name in tables.
    fn name(&self) -> &'static str;
    /// One request for `object` (an interned id) of `size` bytes: whether it was a hit. On a
    /// miss the policy decides whether to admit the object and what to evict.
    fn access(&mut self, object: u32, size: u64) -> bool;
}

/// One request of a trace, its key interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Dense object id, in order of first appearance.
    pub object: u32,
    /// Body bytes.
    pub size: u64,
}

/// Hits and bytes of one replay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Requests replayed.
    pub requests: u64,
    /// Of those, hits.
    pub hits: u64,
    /// Bytes asked for.
    pub bytes: u64,
    /// Bytes served from the cache.
    pub hit_bytes: u64,
}

impl Tally {
    fn add(&mut self, size: u64, hit: bool) {
        self.requests += 1;
        self.bytes += size;
        if hit {
            self.hits += 1;
            self.hit_bytes += size;
        }
    }

    /// The row of a table.
    pub fn ratios(&self, policy: &str) -> PolicyRatios {
        PolicyRatios {
            policy: policy.to_owned(),
            byte_hit_ratio: (self.bytes > 0).then(|| self.hit_bytes as f64 / self.bytes as f64),
            object_hit_ratio: (self.requests > 0).then(|| self.hits as f64 / self.requests as f64),
        }
    }
}

/// One policy's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRatios {
    /// `PoP (x-cache)`, `LRU`, `S3-FIFO`, `Belady`.
    pub policy: String,
    /// Bytes served from cache over bytes asked for.
    pub byte_hit_ratio: Option<f64>,
    /// Requests served from cache over requests (the object hit ratio).
    pub object_hit_ratio: Option<f64>,
}

/// One PoP's requests replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PopReplay {
    /// `host[:port]`, as in the trace.
    pub pop: String,
    /// Requests replayed.
    pub requests: u64,
    /// Bytes asked for.
    pub bytes: u64,
    /// Distinct keys.
    pub objects: u64,
    /// The PoP's own answer first, then each policy.
    pub policies: Vec<PolicyRatios>,
}

/// A disk tier under the memory tier, for the two-tier rows (`tiers.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// Disk tier bytes.
    pub bytes: u64,
    /// Segments of a title that the opening rule admits on their first request.
    pub opening: u32,
}

/// The trace replayed, per PoP, at one capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheVsOptimum {
    /// Cache size, bytes (the memory tier's, when there is a disk).
    pub capacity: u64,
    /// The disk tier of the two-tier rows, if they were replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<Disk>,
    /// One replay per PoP in the trace.
    pub pops: Vec<PopReplay>,
}

/// The name of the row the PoP's `x-cache` answers make.
pub const MEASURED: &str = "PoP (x-cache)";

/// Replays `records` at `capacity` bytes, each PoP on its own (each has its own cache), or
/// only `pop`'s; with `disk`, also through a memory tier of `capacity` over that disk, once
/// per admission rule. Requests are taken in the order they were sent (`at_ms`, stable).
pub fn replay(
    records: &[TraceRecord],
    capacity: u64,
    disk: Option<Disk>,
    pop: Option<&str>,
) -> Result<CacheVsOptimum, String> {
    let mut by_pop: BTreeMap<&str, Vec<&TraceRecord>> = BTreeMap::new();
    for r in records {
        by_pop.entry(r.server.as_str()).or_default().push(r);
    }
    if let Some(wanted) = pop {
        let seen = by_pop.keys().copied().collect::<Vec<_>>().join(", ");
        let only = by_pop
            .remove_entry(wanted)
            .ok_or_else(|| format!("no request went to {wanted} (the trace has: {seen})"))?;
        by_pop = BTreeMap::from([only]);
    }
    let pops = by_pop
        .into_iter()
        .map(|(pop, mut records)| {
            records.sort_by_key(|r| r.at_ms);
            replay_pop(pop, &workload(records), capacity, disk)
        })
        .collect();
    Ok(CacheVsOptimum { capacity, disk, pops })
}

/// One PoP's requests, in order: the PoP's `x-cache` row, then LRU, S3-FIFO and Belady, and
/// with `disk` the two tiers under each admission rule.
pub fn replay_pop(pop: &str, records: &[&TraceRecord], capacity: u64, disk: Option<Disk>) -> PopReplay {
    let (trace, objects) = intern(records.iter().map(|r| (r.key.as_str(), r.bytes)));
    let mut policies = vec![measured(records)];
    let mut lru = lru::Lru::new(capacity);
    let mut s3 = s3fifo::S3Fifo::new(capacity);
    let mut belady = belady::Belady::new(capacity, &trace);
    for policy in [&mut lru as &mut dyn Policy, &mut s3, &mut belady] {
        policies.push(simulate(policy, &trace).ratios(policy.name()));
    }
    if let Some(disk) = disk {
        let segments = segment_numbers(records, &trace, objects);
        let rules = [tiers::Admission::SecondRequest, tiers::Admission::Opening { segments: disk.opening }];
        for rule in rules {
            let mut two = tiers::Tiers::new(capacity, disk.bytes, rule, segments.clone());
            policies.push(simulate(&mut two, &trace).ratios(two.name()));
        }
    }
    PopReplay {
        pop: pop.to_owned(),
        requests: trace.len() as u64,
        bytes: trace.iter().map(|r| r.size).sum(),
        objects: objects as u64,
        policies,
    }
}

/// The requests a PoP's cache answered for (see the module's notes).
fn workload(records: Vec<&TraceRecord>) -> Vec<&TraceRecord> {
    let judged = |r: &&TraceRecord| {
        matches!(CacheOutcome::of(r.x_cache.as_deref()), CacheOutcome::Hit | CacheOutcome::Stale | CacheOutcome::Miss)
    };
    if records.iter().any(judged) { records.into_iter().filter(judged).collect() } else { records }
}

/// Each object's segment number (`tiers::segment_number` of its key), by interned id.
fn segment_numbers(records: &[&TraceRecord], trace: &[Request], objects: usize) -> Vec<Option<u32>> {
    let mut segments = vec![None; objects];
    for (record, request) in records.iter().zip(trace) {
        segments[request.object as usize] = tiers::segment_number(&record.key);
    }
    segments
}

/// Ids for keys, in order of first appearance; returns the requests and the number of
/// distinct keys.
pub fn intern<'a>(requests: impl Iterator<Item = (&'a str, u64)>) -> (Vec<Request>, usize) {
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let trace = requests
        .map(|(key, size)| {
            let next = ids.len() as u32;
            Request { object: *ids.entry(key).or_insert(next), size }
        })
        .collect();
    (trace, ids.len())
}

/// Feeds `trace` to `policy`, counting its hits.
pub fn simulate(policy: &mut dyn Policy, trace: &[Request]) -> Tally {
    let mut tally = Tally::default();
    for r in trace {
        tally.add(r.size, policy.access(r.object, r.size));
    }
    tally
}

/// What the PoP answered: `hit-*` and `stale` are served from its cache (as the report's own
/// hit ratio counts them), `miss` is not; requests without a verdict (no header, `pass`) are
/// left out, and the row is `None` against a server that says nothing.
pub fn measured(records: &[&TraceRecord]) -> PolicyRatios {
    let mut tally = Tally::default();
    for r in records {
        match CacheOutcome::of(r.x_cache.as_deref()) {
            o @ (CacheOutcome::Hit | CacheOutcome::Stale | CacheOutcome::Miss) => tally.add(r.bytes, o.from_cache()),
            CacheOutcome::Other | CacheOutcome::Absent => {}
        }
    }
    tally.ratios(MEASURED)
}

/// The entry for `object`, growing the vector as new objects appear.
fn slot<T: Default>(entries: &mut Vec<T>, object: u32) -> &mut T {
    let i = object as usize;
    if i >= entries.len() {
        entries.resize_with(i + 1, T::default);
    }
    &mut entries[i]
}

#[cfg(test)]
pub(crate) mod tests {
    use rand::rngs::SmallRng;
    use rand::{RngExt, SeedableRng};

    use super::*;

    /// Unit-size requests from space-separated names.
    pub(crate) fn requests(sequence: &str) -> Vec<Request> {
        intern(sequence.split_whitespace().map(|k| (k, 1))).0
    }

    /// The sequence through `policy`, as `h` (hit) and `.` (miss) per request.
    pub(crate) fn hits(policy: &mut dyn Policy, sequence: &str) -> String {
        requests(sequence).iter().map(|r| if policy.access(r.object, r.size) { 'h' } else { '.' }).collect()
    }

    fn all(capacity: u64, trace: &[Request]) -> [Tally; 3] {
        let mut lru = lru::Lru::new(capacity);
        let mut s3 = s3fifo::S3Fifo::new(capacity);
        let mut belady = belady::Belady::new(capacity, trace);
        [simulate(&mut lru, trace), simulate(&mut s3, trace), simulate(&mut belady, trace)]
    }

    /// A skewed random trace: object k drawn with weight ~ 1/(k+1).
    fn random_trace(rng: &mut SmallRng, len: usize, objects: u32, sizes: impl Fn(u32) -> u64) -> Vec<Request> {
        (0..len)
            .map(|_| {
                let u: f64 = rng.random();
                let object = ((objects as f64 + 1.0).powf(u) - 1.0) as u32 % objects;
                Request { object, size: sizes(object) }
            })
            .collect()
    }

    #[test]
    fn belady_is_never_worse_than_lru_or_s3fifo_on_unit_sizes() {
        // With one size, farthest-next-use is Belady's MIN: optimal, so no online policy may
        // beat it on any trace.
        let mut rng = SmallRng::seed_from_u64(17);
        for round in 0..200 {
            let objects = rng.random_range(2..60);
            let trace = random_trace(&mut rng, 400, objects, |_| 1);
            let capacity = rng.random_range(1..40);
            let [lru, s3, belady] = all(capacity, &trace);
            assert!(
                belady.hits >= lru.hits && belady.hits >= s3.hits,
                "round {round}: capacity {capacity}, {objects} objects: LRU {} S3-FIFO {} Belady {}",
                lru.hits,
                s3.hits,
                belady.hits
            );
        }
    }

    #[test]
    fn belady_leads_on_random_traces_with_sizes() {
        // Sizes vary: the heuristic is no proven bound, but on skewed traces it leads.
        let mut rng = SmallRng::seed_from_u64(23);
        for round in 0..100 {
            let trace = random_trace(&mut rng, 2000, 200, |k| 1 + u64::from(k.wrapping_mul(2_654_435_761) % 16));
            let capacity = rng.random_range(16..400);
            let [lru, s3, belady] = all(capacity, &trace);
            assert!(
                belady.hit_bytes >= lru.hit_bytes && belady.hit_bytes >= s3.hit_bytes,
                "round {round}: bytes: LRU {} S3-FIFO {} Belady {}",
                lru.hit_bytes,
                s3.hit_bytes,
                belady.hit_bytes
            );
            assert!(belady.hits >= lru.hits && belady.hits >= s3.hits, "round {round}: requests");
        }
    }

    #[test]
    fn a_scan_of_one_hit_objects_leaves_s3fifos_hot_set_hitting() {
        // 100 unit objects of cache. A hot set of 10 asked for in turn, each followed by 15
        // objects never asked for again: 159 other objects between two requests of a hot
        // one, so LRU has always evicted it. S3-FIFO evicts it from the small queue too the
        // first time, but its ghost (90 keys) still knows it when it comes back, so it enters
        // the main queue, where the scan never goes: from the third round on, it hits.
        let mut keys = Vec::new();
        for round in 0..30 {
            for hot in 0..10 {
                keys.push(format!("hot{hot}"));
                keys.extend((0..15).map(|i| format!("scan{round}.{hot}.{i}")));
            }
        }
        let (trace, _) = intern(keys.iter().map(|k| (k.as_str(), 1)));
        let warm = 2 * 10 * 16;
        let hot_hit_ratio = |policy: &mut dyn Policy| {
            let (mut asked, mut hit) = (0, 0);
            for (i, (r, key)) in trace.iter().zip(&keys).enumerate() {
                let h = policy.access(r.object, r.size);
                if key.starts_with("hot") && i >= warm {
                    asked += 1;
                    hit += u32::from(h);
                }
            }
            f64::from(hit) / f64::from(asked)
        };
        let s3 = hot_hit_ratio(&mut s3fifo::S3Fifo::new(100));
        let lru = hot_hit_ratio(&mut lru::Lru::new(100));
        assert!(s3 > 0.9, "S3-FIFO keeps the hot set: {s3}");
        assert!(lru < 0.01, "LRU loses it to the scan: {lru}");
    }

    #[test]
    fn interning_numbers_keys_by_first_appearance() {
        let (trace, n) = intern([("/b", 5), ("/a", 7), ("/b", 5)].into_iter());
        assert_eq!(n, 2);
        assert_eq!(
            trace,
            [Request { object: 0, size: 5 }, Request { object: 1, size: 7 }, Request { object: 0, size: 5 }]
        );
    }

    fn line(at_ms: u64, server: &str, key: &str, bytes: u64, x_cache: Option<&str>) -> TraceRecord {
        TraceRecord { at_ms, server: server.into(), key: key.into(), bytes, x_cache: x_cache.map(Into::into) }
    }

    #[test]
    fn a_disk_adds_one_two_tier_row_per_admission_rule() {
        // No memory tier, a disk of two segments: seg 0 is an opening segment (opening 1).
        let records: Vec<_> = ["/v/seg_00000.m4s", "/v/seg_00001.m4s", "/v/seg_00000.m4s", "/v/seg_00001.m4s"]
            .iter()
            .enumerate()
            .map(|(i, key)| line(i as u64, "pop", key, 1, None))
            .collect();
        let replayed = replay(&records, 0, Some(Disk { bytes: 2, opening: 1 }), None).unwrap();
        let rows = &replayed.pops[0].policies;
        let names: Vec<_> = rows.iter().map(|p| p.policy.as_str()).collect();
        assert_eq!(names, [MEASURED, "LRU", "S3-FIFO", "Belady", "+disk, 2nd req", "+disk, opening"]);
        // The second request of seg 0 hits only where it was admitted on its first.
        assert_eq!(rows[4].object_hit_ratio, Some(0.0));
        assert_eq!(rows[5].object_hit_ratio, Some(0.25));
    }

    #[test]
    fn each_pop_is_replayed_apart_and_in_sent_order() {
        let records = vec![
            line(0, "pop-a", "/s1", 10, Some("miss")),
            line(5, "pop-b", "/s1", 10, Some("miss")),
            // Written after the next line, sent before it.
            line(9, "pop-a", "/s1", 10, Some("hit-memory")),
            line(8, "pop-a", "/s2", 30, Some("miss")),
            line(12, "pop-b", "/s1", 10, Some("hit-disk")),
            line(13, "pop-b", "/s2", 10, Some("pass")),
            line(14, "pop-b", "/key", 16, None),
        ];
        let all = replay(&records, 100, None, None).unwrap();
        assert_eq!(all.pops.iter().map(|p| p.pop.as_str()).collect::<Vec<_>>(), ["pop-a", "pop-b"]);
        let a = &all.pops[0];
        assert_eq!((a.requests, a.bytes, a.objects), (3, 50, 2));
        let names: Vec<_> = a.policies.iter().map(|p| p.policy.as_str()).collect();
        assert_eq!(names, [MEASURED, "LRU", "S3-FIFO", "Belady"]);
        // pop-a measured: 1 hit of 3 requests, 10 of 50 bytes; LRU the same (the cold misses).
        for row in &a.policies[..2] {
            assert_eq!(row.object_hit_ratio, Some(1.0 / 3.0), "{row:?}");
            assert_eq!(row.byte_hit_ratio, Some(0.2), "{row:?}");
        }
        // pop-b: the `pass` and the key without x-cache are not its cache's workload: every
        // row covers the two judged requests, 1 hit.
        let b = &all.pops[1];
        assert_eq!((b.requests, b.objects), (2, 1));
        assert!(b.policies.iter().all(|p| p.object_hit_ratio == Some(0.5)), "{b:?}");

        let b = replay(&records, 100, None, Some("pop-b")).unwrap();
        assert_eq!(b.pops.len(), 1);
        let e = replay(&records, 100, None, Some("pop-c")).unwrap_err();
        assert!(e.contains("pop-a, pop-b"), "{e}");
        let silent = replay(&[line(0, "nginx", "/x", 1, None)], 100, None, None).unwrap();
        assert_eq!(silent.pops[0].policies[0].byte_hit_ratio, None, "no x-cache, no measured row");
    }
}

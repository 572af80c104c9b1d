//! Which objects earn a place on disk: those asked for at least `min_uses` times within a
//! window. A count-min sketch remembers recent requests in fixed memory; halving every window
//! lets old popularity fade. One-hit wonders stay in the memory tier's small FIFO queue
//! (S3-FIFO), where a scan passes through without touching the hot set.

use std::sync::Mutex;
use std::time::{Duration, Instant};

const ROWS: usize = 4;
const WIDTH: usize = 1 << 16;

/// A count-min sketch with periodic decay.
#[derive(Debug)]
pub struct Admission {
    min_uses: u8,
    window: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    counters: Vec<u8>,
    since: Instant,
}

impl Admission {
    /// Admits objects seen `min_uses` times within `window`.
    pub fn new(min_uses: u32, window: Duration) -> Self {
        Self {
            min_uses: min_uses.clamp(1, 255) as u8,
            window,
            state: Mutex::new(State { counters: vec![0; ROWS * WIDTH], since: Instant::now() }),
        }
    }

    /// Records one request of `key`; returns whether it has now earned disk admission.
    pub fn record(&self, key: &str) -> bool {
        let mut s = self.state.lock().expect("admission lock");
        if s.since.elapsed() >= self.window {
            s.counters.iter_mut().for_each(|c| *c /= 2);
            s.since = Instant::now();
        }
        let mut estimate = u8::MAX;
        for row in 0..ROWS {
            let i = row * WIDTH + slot(key, row);
            s.counters[i] = s.counters[i].saturating_add(1);
            estimate = estimate.min(s.counters[i]);
        }
        estimate >= self.min_uses
    }
}

fn slot(key: &str, row: usize) -> usize {
    // FNV-1a with a per-row seed: cheap and good enough to spread keys over a row.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ (row as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h as usize) & (WIDTH - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_request_admits_and_scans_do_not() {
        let a = Admission::new(2, Duration::from_secs(600));
        assert!(!a.record("hot"));
        assert!(a.record("hot"));
        let admitted = (0..10_000).filter(|i| a.record(&format!("scan/{i}"))).count();
        assert!(admitted < 50, "{admitted} one-hit objects admitted");
    }

    #[test]
    fn popularity_fades() {
        let a = Admission::new(2, Duration::from_millis(1));
        assert!(!a.record("x"));
        std::thread::sleep(Duration::from_millis(5));
        assert!(!a.record("x"), "an old request no longer counts fully");
    }
}

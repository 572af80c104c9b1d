//! Throughput-based rung selection, the rule most players start from: an exponentially
//! weighted moving average of download throughput, weighted by download time (as hls.js
//! does), and the highest rung whose BANDWIDTH fits under a safety fraction of it.

use std::time::Duration;

use crate::scenario::{self, Rule};

/// One viewer's ABR state.
#[derive(Debug, Clone)]
pub struct Abr {
    rule: Rule,
    safety: f64,
    half_life: f64,
    estimate: f64,
}

impl Abr {
    /// From the scenario's `[abr]`.
    pub fn new(config: &scenario::Abr) -> Self {
        Self {
            rule: config.rule,
            safety: config.safety,
            half_life: config.half_life.as_secs_f64(),
            estimate: config.initial_bandwidth as f64,
        }
    }

    /// Current throughput estimate, bit/s.
    pub fn estimate(&self) -> f64 {
        self.estimate
    }

    /// Folds in one download. Tiny downloads say more about latency than bandwidth, so
    /// they count for their (short) time only, like every other sample.
    pub fn observe(&mut self, bytes: u64, took: Duration) {
        let seconds = took.as_secs_f64().max(1e-4);
        let sample = bytes as f64 * 8.0 / seconds;
        let keep = 0.5f64.powf(seconds / self.half_life);
        self.estimate = keep * self.estimate + (1.0 - keep) * sample;
    }

    /// Index of the rung to fetch next among `bandwidths` (ascending).
    pub fn choose(&self, bandwidths: &[u64]) -> usize {
        let last = bandwidths.len().saturating_sub(1);
        match self.rule {
            Rule::Lowest => 0,
            Rule::Highest => last,
            Rule::Throughput => {
                let budget = self.safety * self.estimate;
                bandwidths.iter().rposition(|&b| (b as f64) < budget).unwrap_or(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn abr(rule: Rule, initial: u64) -> Abr {
        Abr::new(&scenario::Abr { rule, initial_bandwidth: initial, ..scenario::Abr::default() })
    }

    const LADDER: [u64; 4] = [400_000, 1_000_000, 2_500_000, 5_000_000];

    #[test]
    fn picks_the_highest_rung_under_the_safety_margin() {
        // 0.8 × 3 Mbit/s = 2.4 Mbit/s: 2.5 M does not fit, 1 M does.
        assert_eq!(abr(Rule::Throughput, 3_000_000).choose(&LADDER), 1);
        // 0.8 × 3.2 Mbit/s = 2.56 Mbit/s fits 2.5 M.
        assert_eq!(abr(Rule::Throughput, 3_200_000).choose(&LADDER), 2);
        assert_eq!(abr(Rule::Throughput, 100_000_000).choose(&LADDER), 3);
        // Nothing fits: the lowest rung, never nothing.
        assert_eq!(abr(Rule::Throughput, 10_000).choose(&LADDER), 0);
        assert_eq!(abr(Rule::Lowest, 100_000_000).choose(&LADDER), 0);
        assert_eq!(abr(Rule::Highest, 1).choose(&LADDER), 3);
    }

    #[test]
    fn the_estimate_moves_with_download_time_weighted_samples() {
        let mut a = abr(Rule::Throughput, 1_000_000);
        // One half-life (3 s) of downloading at 9 Mbit/s moves the estimate halfway.
        a.observe(9_000_000 * 3 / 8, Duration::from_secs(3));
        assert!((a.estimate() - 5_000_000.0).abs() < 1.0, "{}", a.estimate());
        // A long run of fast downloads converges to their throughput and climbs the ladder.
        for _ in 0..20 {
            a.observe(1_000_000, Duration::from_secs(1));
        }
        assert!((a.estimate() - 8_000_000.0).abs() < 100_000.0);
        assert_eq!(a.choose(&LADDER), 3);
        // Then a congested link pulls it back down.
        for _ in 0..20 {
            a.observe(100_000, Duration::from_secs(1));
        }
        assert!(a.estimate() < 1_000_000.0);
        assert_eq!(a.choose(&LADDER), 0);
    }

    #[test]
    fn a_short_download_barely_moves_the_estimate() {
        let mut a = abr(Rule::Throughput, 2_000_000);
        a.observe(10_000, Duration::from_millis(1));
        assert!((a.estimate() - 2_000_000.0).abs() / 2_000_000.0 < 0.2, "{}", a.estimate());
    }
}

//! When viewers arrive: a Poisson process (exponential gaps), faster during a flash crowd.

use rand::{Rng, RngExt};

/// An exponential draw with this mean (inverse transform).
pub fn exponential<R: Rng + ?Sized>(mean: f64, rng: &mut R) -> f64 {
    let u: f64 = rng.random();
    // 1 - u is in (0, 1], so the log is finite.
    -mean * (1.0 - u).ln()
}

/// A piecewise-constant-rate Poisson process.
#[derive(Debug, Clone, Copy)]
pub struct Arrivals {
    /// Arrivals per second (`None`: no gap at all, viewers start as slots free up).
    pub rate: Option<f64>,
    /// `(until, multiplier)`: before `until` seconds the rate is multiplied.
    pub burst: Option<(f64, f64)>,
}

impl Arrivals {
    /// The rate at `t` seconds.
    pub fn rate_at(&self, t: f64) -> Option<f64> {
        match self.burst {
            Some((until, multiplier)) if t < until => self.rate.map(|r| r * multiplier),
            _ => self.rate,
        }
    }

    /// The next arrival after one at `t`. Exact for piecewise-constant rates: the process is
    /// memoryless, so a gap that crosses a rate change restarts at the change.
    pub fn next<R: Rng + ?Sized>(&self, t: f64, rng: &mut R) -> f64 {
        let Some(rate) = self.rate_at(t) else { return t };
        let next = t + exponential(1.0 / rate, rng);
        match self.burst {
            Some((until, _)) if t < until && next >= until => self.next(until, rng),
            _ => next,
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    fn times(a: Arrivals, horizon: f64, seed: u64) -> Vec<f64> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut t = a.next(0.0, &mut rng);
        let mut out = Vec::new();
        while t < horizon {
            out.push(t);
            t = a.next(t, &mut rng);
        }
        out
    }

    #[test]
    fn gaps_are_exponential_with_the_right_mean() {
        let rate = 5.0;
        let arrivals = times(Arrivals { rate: Some(rate), burst: None }, 4000.0, 1);
        let n = arrivals.len() as f64;
        // Expect 20 000 ± 141 (Poisson sd = sqrt(mean)); 5 sd is a generous bound.
        assert!((n - 20_000.0).abs() < 5.0 * 20_000f64.sqrt(), "{n}");
        let gaps: Vec<f64> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 0.2).abs() < 0.01, "mean gap {mean}");
        // Exponential: P(gap > mean) = e^-1, and the sd equals the mean.
        let over = gaps.iter().filter(|g| **g > 0.2).count() as f64 / gaps.len() as f64;
        assert!((over - (-1f64).exp()).abs() < 0.015, "{over}");
        let sd = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt();
        assert!((sd / mean - 1.0).abs() < 0.05, "sd/mean {}", sd / mean);
    }

    #[test]
    fn counts_per_window_have_poisson_dispersion() {
        // A Poisson count's variance equals its mean; a fixed-interval schedule has none.
        let arrivals = times(Arrivals { rate: Some(3.0), burst: None }, 3000.0, 2);
        let mut counts = vec![0f64; 3000];
        for t in arrivals {
            counts[t as usize] += 1.0;
        }
        let mean = counts.iter().sum::<f64>() / counts.len() as f64;
        let var = counts.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / counts.len() as f64;
        assert!((mean - 3.0).abs() < 0.15, "{mean}");
        assert!((var / mean - 1.0).abs() < 0.1, "dispersion {}", var / mean);
    }

    #[test]
    fn a_burst_multiplies_the_rate_only_inside_it() {
        let a = Arrivals { rate: Some(2.0), burst: Some((100.0, 5.0)) };
        let all = times(a, 200.0, 3);
        let inside = all.iter().filter(|t| **t < 100.0).count() as f64;
        let outside = all.len() as f64 - inside;
        assert!((inside - 1000.0).abs() < 5.0 * 1000f64.sqrt(), "{inside}");
        assert!((outside - 200.0).abs() < 5.0 * 200f64.sqrt(), "{outside}");
    }

    #[test]
    fn no_rate_means_no_gap() {
        let mut rng = SmallRng::seed_from_u64(4);
        assert_eq!(Arrivals { rate: None, burst: None }.next(1.5, &mut rng), 1.5);
    }
}

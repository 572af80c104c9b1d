//! Which title an arriving viewer picks: Zipf popularity over the catalogue's ranks, with an
//! optional flash crowd that sends most early arrivals to one title.

use rand::{Rng, RngExt};

/// Zipf(α) over ranks `0..n`: rank k is picked with probability ∝ 1 / (k+1)^α.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// Over `n` ranks (at least one).
    pub fn new(n: usize, alpha: f64) -> Self {
        let n = n.max(1);
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += (k as f64).powf(-alpha);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Self { cdf }
    }

    /// Probability of rank `k` (0-based).
    pub fn probability(&self, k: usize) -> f64 {
        match k {
            0 => self.cdf[0],
            k if k < self.cdf.len() => self.cdf[k] - self.cdf[k - 1],
            _ => 0.0,
        }
    }

    /// A rank (0-based) by inverse transform: one uniform draw and a binary search.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&c| c <= u).min(self.cdf.len() - 1)
    }
}

/// A flash crowd: `share` of arrivals before `until` seconds pick `title`.
#[derive(Debug, Clone, Copy)]
pub struct Flash {
    /// Catalogue index of the flash title.
    pub title: usize,
    /// Probability an arrival in the window picks it.
    pub share: f64,
    /// End of the window, seconds from the start.
    pub until: f64,
}

/// Picks a catalogue index for each arrival.
#[derive(Debug, Clone)]
pub struct Picker {
    zipf: Zipf,
    /// `ranks[k]` is the catalogue index of popularity rank k.
    ranks: Vec<usize>,
    flash: Option<Flash>,
}

impl Picker {
    /// `ranks` maps popularity rank to catalogue index (see `shuffled_ranks`).
    pub fn new(ranks: Vec<usize>, alpha: f64, flash: Option<Flash>) -> Self {
        Self { zipf: Zipf::new(ranks.len(), alpha), ranks, flash }
    }

    /// The title for an arrival at `t` seconds.
    pub fn pick<R: Rng + ?Sized>(&self, t: f64, rng: &mut R) -> usize {
        if let Some(f) = self.flash
            && t < f.until
            && rng.random_bool(f.share)
        {
            return f.title;
        }
        self.ranks[self.zipf.sample(rng)]
    }
}

/// Catalogue indexes `0..n` in a seeded random order (Fisher–Yates), so rank 1 is not
/// simply the first title listed.
pub fn shuffled_ranks<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Vec<usize> {
    let mut ranks: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        ranks.swap(i, j);
    }
    ranks
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn zipf_probabilities_follow_the_power_law() {
        let z = Zipf::new(100, 1.0);
        let total: f64 = (0..100).map(|k| z.probability(k)).sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert!((z.probability(0) / z.probability(1) - 2.0).abs() < 1e-9, "p1/p2 = 2^α");
        assert!((z.probability(0) / z.probability(9) - 10.0).abs() < 1e-9);
        let uniform = Zipf::new(4, 0.0);
        assert!((uniform.probability(3) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn zipf_sampling_matches_its_distribution() {
        let mut rng = SmallRng::seed_from_u64(7);
        let (n, draws) = (50, 200_000);
        for alpha in [0.6, 0.9, 1.2] {
            let z = Zipf::new(n, alpha);
            let mut counts = vec![0u32; n];
            for _ in 0..draws {
                counts[z.sample(&mut rng)] += 1;
            }
            // Pearson's chi-square over 50 ranks (49 degrees of freedom): the 99.9th
            // percentile is about 85; a wrong exponent or an off-by-one rank lands far above.
            let chi2: f64 = (0..n)
                .map(|k| {
                    let expected = z.probability(k) * draws as f64;
                    (counts[k] as f64 - expected).powi(2) / expected
                })
                .sum();
            assert!(chi2 < 85.0, "alpha {alpha}: chi-square {chi2}");
            // And the head really is heavier than the tail.
            assert!(counts[0] > counts[1] && counts[1] > counts[n - 1]);
        }
    }

    #[test]
    fn a_wrong_exponent_fails_the_same_check() {
        // Guards the test above: samples from α = 0.9 do not pass for α = 0.6.
        let mut rng = SmallRng::seed_from_u64(8);
        let (n, draws) = (50, 200_000);
        let (truth, claimed) = (Zipf::new(n, 0.9), Zipf::new(n, 0.6));
        let mut counts = vec![0u32; n];
        for _ in 0..draws {
            counts[truth.sample(&mut rng)] += 1;
        }
        let chi2: f64 = (0..n)
            .map(|k| {
                let expected = claimed.probability(k) * draws as f64;
                (counts[k] as f64 - expected).powi(2) / expected
            })
            .sum();
        assert!(chi2 > 85.0, "chi-square {chi2}");
    }

    #[test]
    fn flash_crowd_takes_its_share_only_in_its_window() {
        let mut rng = SmallRng::seed_from_u64(9);
        let picker = Picker::new((0..100).collect(), 0.9, Some(Flash { title: 42, share: 0.8, until: 10.0 }));
        let early = (0..10_000).filter(|_| picker.pick(1.0, &mut rng) == 42).count() as f64 / 10_000.0;
        // 0.8 from the crowd plus 0.2 × Zipf's share of rank 42.
        assert!((early - 0.8).abs() < 0.03, "{early}");
        let late = (0..10_000).filter(|_| picker.pick(11.0, &mut rng) == 42).count() as f64 / 10_000.0;
        assert!(late < 0.02, "{late}");
    }

    #[test]
    fn shuffled_ranks_are_a_permutation() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut r = shuffled_ranks(1000, &mut rng);
        assert_ne!(r, (0..1000).collect::<Vec<_>>());
        r.sort_unstable();
        assert_eq!(r, (0..1000).collect::<Vec<_>>());
    }
}

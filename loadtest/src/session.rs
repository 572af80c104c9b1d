//! One viewing's plan, drawn when the viewer arrives: how long they will watch, whether they
//! give up early, and how often they seek.

use rand::{Rng, RngExt};

use crate::arrivals::exponential;
use crate::scenario::{Length, Session};

/// What one viewer intends to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Seconds of media to watch (capped later by the video's duration); infinite: all of it.
    pub watch: f64,
    /// Whether this viewer gives up early.
    pub abandons: bool,
    /// Seeks per second of media played.
    pub seek_rate: f64,
}

impl Plan {
    /// Draws a plan.
    pub fn draw<R: Rng + ?Sized>(session: &Session, rng: &mut R) -> Self {
        let abandons = rng.random_bool(session.abandon_probability);
        let watch = if abandons {
            exponential(session.abandon_mean.as_secs_f64(), rng)
        } else {
            match &session.length {
                Length::Exponential { mean } => exponential(mean.as_secs_f64(), rng),
                Length::LogNormal { median, sigma } => median.as_secs_f64() * (sigma * standard_normal(rng)).exp(),
                Length::Fixed { seconds } => seconds.as_secs_f64(),
                Length::Whole => f64::INFINITY,
            }
        };
        Self { watch, abandons, seek_rate: session.seeks_per_minute / 60.0 }
    }

    /// Whether to seek after playing `seconds` more media.
    pub fn seeks_after<R: Rng + ?Sized>(&self, seconds: f64, rng: &mut R) -> bool {
        self.seek_rate > 0.0 && rng.random_bool(1.0 - (-self.seek_rate * seconds).exp())
    }
}

/// A standard normal draw (Box–Muller).
fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    fn session(length: Length, abandon: f64) -> Session {
        Session { length, abandon_probability: abandon, abandon_mean: Duration::from_secs(10), seeks_per_minute: 6.0 }
    }

    #[test]
    fn watch_times_follow_the_configured_distribution() {
        let mut rng = SmallRng::seed_from_u64(5);
        let s = session(Length::Exponential { mean: Duration::from_secs(360) }, 0.0);
        let n = 50_000;
        let mean = (0..n).map(|_| Plan::draw(&s, &mut rng).watch).sum::<f64>() / n as f64;
        assert!((mean - 360.0).abs() < 8.0, "{mean}");

        let s = session(Length::LogNormal { median: Duration::from_secs(90), sigma: 1.0 }, 0.0);
        let mut w: Vec<f64> = (0..n).map(|_| Plan::draw(&s, &mut rng).watch).collect();
        w.sort_by(f64::total_cmp);
        assert!((w[n / 2] - 90.0).abs() < 4.0, "median {}", w[n / 2]);

        let s = session(Length::Whole, 0.0);
        assert!(Plan::draw(&s, &mut rng).watch.is_infinite());
    }

    #[test]
    fn abandoners_take_their_share_and_leave_early() {
        let mut rng = SmallRng::seed_from_u64(6);
        let s = session(Length::Fixed { seconds: Duration::from_secs(600) }, 0.25);
        let plans: Vec<Plan> = (0..20_000).map(|_| Plan::draw(&s, &mut rng)).collect();
        let abandoned: Vec<&Plan> = plans.iter().filter(|p| p.abandons).collect();
        let share = abandoned.len() as f64 / plans.len() as f64;
        assert!((share - 0.25).abs() < 0.02, "{share}");
        let mean = abandoned.iter().map(|p| p.watch).sum::<f64>() / abandoned.len() as f64;
        assert!((mean - 10.0).abs() < 1.0, "{mean}");
        assert!(plans.iter().filter(|p| !p.abandons).all(|p| p.watch == 600.0));
    }

    #[test]
    fn seeks_happen_at_the_configured_rate() {
        let mut rng = SmallRng::seed_from_u64(7);
        let plan = Plan::draw(&session(Length::Whole, 0.0), &mut rng);
        // 6 per minute = 0.1/s; over 10 000 two-second segments expect about 2000.
        let seeks = (0..10_000).filter(|_| plan.seeks_after(2.0, &mut rng)).count() as f64;
        assert!((seeks - 10_000.0 * (1.0 - (-0.2f64).exp())).abs() < 100.0, "{seeks}");
    }
}

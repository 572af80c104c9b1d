//! Scenario files: what the viewers (and uploaders) do. TOML, unknown keys refused, every
//! problem reported with its field. Four ship with the harness (`scenarios/*.toml`) and can
//! be named instead of given as a path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::units;

/// The scenarios that ship with the harness, by name.
pub const BUILT_IN: [(&str, &str); 4] = [
    ("steady", include_str!("../scenarios/steady.toml")),
    ("flash-crowd", include_str!("../scenarios/flash-crowd.toml")),
    ("long-tail", include_str!("../scenarios/long-tail.toml")),
    ("upload-storm", include_str!("../scenarios/upload-storm.toml")),
];

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Shown in the report; defaults to the file's stem.
    #[serde(default)]
    pub name: String,
    /// What the scenario exercises.
    #[serde(default)]
    pub description: String,
    /// Bounds and load shape.
    #[serde(default)]
    pub run: Run,
    /// Where the titles come from.
    #[serde(default)]
    pub catalogue: Catalogue,
    /// Which titles viewers pick.
    #[serde(default)]
    pub popularity: Popularity,
    /// One title that takes most requests early on.
    #[serde(default)]
    pub flash_crowd: Option<FlashCrowd>,
    /// How long viewers watch, abandon and seek.
    #[serde(default)]
    pub session: Session,
    /// Rung selection and buffering.
    #[serde(default)]
    pub abr: Abr,
    /// HLS content steering.
    #[serde(default)]
    pub steering: Steering,
    /// tus uploads while viewers watch.
    #[serde(default)]
    pub uploads: Option<Uploads>,
    /// Folder relative paths in the file are resolved against.
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
}

/// How segments are fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pace {
    /// Like a player: keep a bounded buffer ahead of a playhead that moves in real time.
    Playback,
    /// Every segment as soon as the previous one is in: a throughput benchmark.
    Fast,
}

/// `[run]`: bounds and the load's shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Run {
    /// Wall time of the run.
    #[serde(deserialize_with = "units::duration")]
    pub duration: Duration,
    /// Stop after this many requests (none: no cap).
    pub max_requests: Option<u64>,
    /// Playback or fast.
    pub pace: Pace,
    /// Viewers watching at once, at most. Arrivals beyond it wait for a viewer to leave.
    pub viewers: usize,
    /// In playback pace the run starts with `viewers` already mid-viewing, started evenly
    /// over this long so they do not ask in lockstep (0: all at once).
    #[serde(deserialize_with = "units::duration")]
    pub ramp: Duration,
    /// Arrivals per second. Default: `viewers` / mean watch time (playback pace), so the
    /// population settles near `viewers`; unlimited in fast pace, which keeps exactly
    /// `viewers` busy.
    pub rate: Option<f64>,
    /// Seed of every random draw (default: from the clock, and printed in the report).
    pub seed: Option<u64>,
    /// One request's time limit.
    #[serde(deserialize_with = "units::duration")]
    pub request_timeout: Duration,
    /// Connections shared by all viewers; 0 gives every viewer its own, like real players.
    pub connections: usize,
}

impl Default for Run {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(30),
            max_requests: None,
            pace: Pace::Playback,
            viewers: 20,
            ramp: Duration::from_secs(1),
            rate: None,
            seed: None,
            request_timeout: Duration::from_secs(10),
            connections: 0,
        }
    }
}

/// Order of titles before popularity ranks are assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Rank 1 is the first title listed (the origin lists newest first).
    Listed,
    /// Ranks are a seeded shuffle, so popularity is unrelated to age.
    Shuffled,
}

/// `[catalogue]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Catalogue {
    /// A file of master playlist URLs or paths, one a line (relative to the scenario file).
    /// Without it, the catalogue is read from the origin's API (`--origin`).
    pub list: Option<PathBuf>,
    /// Use at most this many titles.
    pub limit: Option<usize>,
    /// Rank order.
    pub order: Order,
}

impl Default for Catalogue {
    fn default() -> Self {
        Self { list: None, limit: None, order: Order::Shuffled }
    }
}

/// `[popularity]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Popularity {
    /// Zipf exponent: 0 is uniform, around 1 is the classic web-video skew.
    pub alpha: f64,
}

impl Default for Popularity {
    fn default() -> Self {
        Self { alpha: 0.9 }
    }
}

/// `[flash_crowd]`: one title takes `share` of arrivals during `window`, and arrivals come
/// `rate_multiplier` times as fast.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlashCrowd {
    /// Probability that an arrival in the window picks the flash title.
    pub share: f64,
    /// How long the crowd lasts from the start.
    #[serde(deserialize_with = "units::duration")]
    pub window: Duration,
    /// Arrival rate in the window relative to the normal rate.
    #[serde(default = "one")]
    pub rate_multiplier: f64,
    /// Index of the flash title in listed order (0: the origin's newest video).
    #[serde(default)]
    pub title: usize,
}

fn one() -> f64 {
    1.0
}

/// How much of a video one viewing covers.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "distribution", rename_all = "lowercase", deny_unknown_fields)]
pub enum Length {
    /// Exponential with this mean (memoryless: the same share leaves every minute).
    Exponential {
        /// Mean watch time.
        #[serde(deserialize_with = "units::duration")]
        mean: Duration,
    },
    /// Log-normal: most viewings short, a long tail of full ones.
    LogNormal {
        /// Median watch time.
        #[serde(deserialize_with = "units::duration")]
        median: Duration,
        /// Standard deviation of the log.
        sigma: f64,
    },
    /// Always this long.
    Fixed {
        /// Watch time.
        #[serde(deserialize_with = "units::duration")]
        seconds: Duration,
    },
    /// The whole video.
    Whole,
}

impl Length {
    /// The mean, for deriving an arrival rate (`None` for whole videos: unknown up front).
    pub fn mean(&self) -> Option<Duration> {
        match self {
            Self::Exponential { mean } => Some(*mean),
            Self::LogNormal { median, sigma } => Some(median.mul_f64((sigma * sigma / 2.0).exp())),
            Self::Fixed { seconds } => Some(*seconds),
            Self::Whole => None,
        }
    }
}

/// `[session]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Session {
    /// Watch-time distribution (capped by the video's duration).
    pub length: Length,
    /// Share of viewers who give up early.
    pub abandon_probability: f64,
    /// Mean watch time of those who give up (exponential).
    #[serde(deserialize_with = "units::duration")]
    pub abandon_mean: Duration,
    /// Seeks per minute of playback (Poisson); a seek jumps to a random position.
    pub seeks_per_minute: f64,
}

impl Default for Session {
    fn default() -> Self {
        // The reference viewer watches 30 minutes a day over 5 videos: 6 minutes each.
        Self {
            length: Length::Exponential { mean: Duration::from_secs(360) },
            abandon_probability: 0.1,
            abandon_mean: Duration::from_secs(15),
            seeks_per_minute: 0.1,
        }
    }
}

/// Rung selection rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// Highest rung under `safety` × estimated throughput.
    Throughput,
    /// Always the lowest rung.
    Lowest,
    /// Always the highest rung.
    Highest,
}

/// `[abr]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Abr {
    /// The rule.
    pub rule: Rule,
    /// Fraction of the estimate a rung's BANDWIDTH may use.
    pub safety: f64,
    /// Half-life of the throughput estimate, in seconds of download time.
    #[serde(deserialize_with = "units::duration")]
    pub half_life: Duration,
    /// Estimate before the first download, bit/s.
    pub initial_bandwidth: u64,
    /// Forward buffer a player keeps (playback pace).
    #[serde(deserialize_with = "units::duration")]
    pub max_buffer: Duration,
}

impl Default for Abr {
    fn default() -> Self {
        Self {
            rule: Rule::Throughput,
            safety: 0.8,
            half_life: Duration::from_secs(3),
            initial_bandwidth: 1_500_000,
            max_buffer: Duration::from_secs(30),
        }
    }
}

/// `[steering]`: HLS content steering, followed as hls.js follows it when a multivariant
/// playlist has `EXT-X-CONTENT-STEERING` (over HTTP/1.1 and HTTP/2; an HTTP/3 viewer's one
/// QUIC connection goes to the target only).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Steering {
    /// Follow steering: load the manifest, move between pathways, fail over. Off: every
    /// request goes where the playlists say, as without the tag.
    pub enabled: bool,
    /// How long a pathway that failed a request is avoided.
    #[serde(deserialize_with = "units::duration")]
    pub penalty: Duration,
}

impl Default for Steering {
    fn default() -> Self {
        Self { enabled: true, penalty: crate::steering::PENALTY }
    }
}

/// Where uploads are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// To the pre-signed URL exactly as the origin issued it.
    Origin,
    /// To the same path on the target PoP, which passes tus through to the origin.
    Target,
}

/// `[uploads]`: the upload storm.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Uploads {
    /// Uploads in total (0: keep uploading until the run ends).
    #[serde(default)]
    pub count: usize,
    /// Uploads in flight at once.
    #[serde(default = "four")]
    pub parallel: usize,
    /// Bytes per PATCH.
    #[serde(default = "chunk", deserialize_with = "units::size")]
    pub chunk: u64,
    /// A real video file to upload (the origin validates media, so random bytes fail).
    /// Without it a clip is generated with the ffmpeg CLI.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Length of the generated clip.
    #[serde(default = "clip_seconds", deserialize_with = "units::duration")]
    pub clip: Duration,
    /// Where the tus requests go.
    #[serde(default = "via_origin")]
    pub via: Via,
}

fn four() -> usize {
    4
}

fn chunk() -> u64 {
    4 << 20
}

fn clip_seconds() -> Duration {
    Duration::from_secs(10)
}

fn via_origin() -> Via {
    Via::Origin
}

impl Scenario {
    /// A scenario file by path, or a built-in one by name (`steady`, `flash-crowd`, ...).
    pub fn load(arg: &str) -> Result<Self> {
        let path = Path::new(arg);
        if path.is_file() {
            let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let mut scenario = Self::parse(&text, &path.display().to_string(), &stem)?;
            scenario.base_dir = path.parent().map(Path::to_owned);
            return Ok(scenario);
        }
        match BUILT_IN.iter().find(|(name, _)| *name == arg) {
            Some((name, text)) => Self::parse(text, name, name),
            None => Err(Error::Usage(format!(
                "no scenario file `{arg}`, and it is not a built-in one ({})",
                BUILT_IN.map(|(n, _)| n).join(", ")
            ))),
        }
    }

    /// Parses and checks `text`; `source_name` names it in errors.
    pub fn parse(text: &str, source_name: &str, default_name: &str) -> Result<Self> {
        let mut scenario: Self = toml::from_str(text)
            .map_err(|e| Error::Scenario { source_name: source_name.to_owned(), message: e.to_string() })?;
        if scenario.name.is_empty() {
            default_name.clone_into(&mut scenario.name);
        }
        scenario.check().map_err(|message| Error::Scenario { source_name: source_name.to_owned(), message })?;
        Ok(scenario)
    }

    /// The checks serde cannot express; each message starts with the field.
    pub fn check(&self) -> Result<(), String> {
        let run = &self.run;
        positive("run.duration", run.duration)?;
        positive("run.request_timeout", run.request_timeout)?;
        if run.ramp > run.duration {
            return Err("run.ramp: must not be longer than run.duration".into());
        }
        if run.viewers == 0 {
            return Err("run.viewers: must be at least 1".into());
        }
        if run.max_requests == Some(0) {
            return Err("run.max_requests: must be at least 1 (leave it out for no cap)".into());
        }
        if let Some(rate) = run.rate {
            finite_positive("run.rate", rate)?;
        }
        if !(self.popularity.alpha.is_finite() && self.popularity.alpha >= 0.0) {
            return Err(format!("popularity.alpha: {} must be a number ≥ 0", self.popularity.alpha));
        }
        if self.catalogue.limit == Some(0) {
            return Err("catalogue.limit: must be at least 1".into());
        }
        if let Some(f) = &self.flash_crowd {
            probability("flash_crowd.share", f.share)?;
            positive("flash_crowd.window", f.window)?;
            finite_positive("flash_crowd.rate_multiplier", f.rate_multiplier)?;
        }
        let s = &self.session;
        match &s.length {
            Length::Exponential { mean } => positive("session.length.mean", *mean)?,
            Length::LogNormal { median, sigma } => {
                positive("session.length.median", *median)?;
                if !(sigma.is_finite() && *sigma >= 0.0) {
                    return Err(format!("session.length.sigma: {sigma} must be a number ≥ 0"));
                }
            }
            Length::Fixed { seconds } => positive("session.length.seconds", *seconds)?,
            Length::Whole => {}
        }
        probability("session.abandon_probability", s.abandon_probability)?;
        positive("session.abandon_mean", s.abandon_mean)?;
        if !(s.seeks_per_minute.is_finite() && s.seeks_per_minute >= 0.0) {
            return Err(format!("session.seeks_per_minute: {} must be a number ≥ 0", s.seeks_per_minute));
        }
        let a = &self.abr;
        if !(a.safety > 0.0 && a.safety <= 1.0) {
            return Err(format!("abr.safety: {} must be in (0, 1]", a.safety));
        }
        positive("abr.half_life", a.half_life)?;
        positive("abr.max_buffer", a.max_buffer)?;
        positive("steering.penalty", self.steering.penalty)?;
        if a.initial_bandwidth == 0 {
            return Err("abr.initial_bandwidth: must be at least 1 bit/s".into());
        }
        if let Some(u) = &self.uploads {
            if u.parallel == 0 {
                return Err("uploads.parallel: must be at least 1".into());
            }
            if u.chunk == 0 {
                return Err("uploads.chunk: must be at least 1 byte".into());
            }
            positive("uploads.clip", u.clip)?;
        }
        Ok(())
    }

    /// A path from the file, resolved against the file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match &self.base_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        }
    }

    /// Arrivals per second outside a flash crowd (`None`: as fast as viewers free up).
    pub fn arrival_rate(&self) -> Option<f64> {
        if let Some(rate) = self.run.rate {
            return Some(rate);
        }
        match self.run.pace {
            Pace::Fast => None,
            Pace::Playback => {
                // Little's law: population = rate × time in system. Abandoners stay shorter.
                let full = self.session.length.mean().unwrap_or(Duration::from_secs(360)).as_secs_f64();
                let p = self.session.abandon_probability;
                let stay = (1.0 - p) * full + p * self.session.abandon_mean.as_secs_f64().min(full);
                Some(self.run.viewers as f64 / stay.max(0.001))
            }
        }
    }
}

fn positive(field: &str, d: Duration) -> Result<(), String> {
    if d.is_zero() { Err(format!("{field}: must be longer than zero")) } else { Ok(()) }
}

fn finite_positive(field: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v > 0.0 { Ok(()) } else { Err(format!("{field}: {v} must be a number > 0")) }
}

fn probability(field: &str, p: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&p) { Ok(()) } else { Err(format!("{field}: {p} must be between 0 and 1")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        Scenario::parse(text, "t.toml", "t").unwrap_err().to_string()
    }

    #[test]
    fn every_built_in_scenario_parses() {
        for (name, _) in BUILT_IN {
            let s = Scenario::load(name).unwrap();
            assert_eq!(s.name, name);
        }
        let storm = Scenario::load("upload-storm").unwrap();
        assert!(storm.uploads.is_some());
        let flash = Scenario::load("flash-crowd").unwrap();
        assert!(flash.flash_crowd.unwrap().share > 0.5);
        assert!((Scenario::load("long-tail").unwrap().popularity.alpha - 0.6).abs() < 1e-9);
        assert!((Scenario::load("steady").unwrap().popularity.alpha - 0.9).abs() < 1e-9);
    }

    #[test]
    fn defaults_fill_an_empty_file() {
        let s = Scenario::parse("", "t.toml", "fallback").unwrap();
        assert_eq!(s.name, "fallback");
        assert_eq!(s.run.duration, Duration::from_secs(30));
        assert_eq!(s.run.pace, Pace::Playback);
        assert!(s.uploads.is_none() && s.flash_crowd.is_none());
    }

    #[test]
    fn unknown_fields_are_named() {
        let e = error_of("[run]\nviewerz = 3\n");
        assert!(e.contains("viewerz"), "{e}");
        assert!(e.contains("t.toml"), "{e}");
        let e = error_of("[popularity]\nalpha = 0.9\nbeta = 1\n");
        assert!(e.contains("beta"), "{e}");
        let e = error_of("[sesion]\n");
        assert!(e.contains("sesion"), "{e}");
        let e = error_of("[session.length]\ndistribution = \"exponential\"\nmean = \"6m\"\nmedian = \"1m\"\n");
        assert!(e.contains("median"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = error_of("[run]\nduration = \"5 parsecs\"\n");
        assert!(e.contains("duration") && e.contains("5 parsecs"), "{e}");
        let e = error_of("[run]\nviewers = 0\n");
        assert!(e.contains("run.viewers"), "{e}");
        let e = error_of("[popularity]\nalpha = -1.0\n");
        assert!(e.contains("popularity.alpha"), "{e}");
        let e = error_of("[abr]\nsafety = 1.5\n");
        assert!(e.contains("abr.safety"), "{e}");
        let e = error_of("[flash_crowd]\nshare = 2.0\nwindow = \"10s\"\n");
        assert!(e.contains("flash_crowd.share"), "{e}");
        let e = error_of("[flash_crowd]\nshare = 0.5\n");
        assert!(e.contains("window"), "{e}");
        let e = error_of("[run]\npace = \"slow\"\n");
        assert!(e.contains("slow"), "{e}");
        let e = error_of("[uploads]\nchunk = \"big\"\n");
        assert!(e.contains("big"), "{e}");
        let e = error_of("[session.length]\ndistribution = \"pareto\"\n");
        assert!(e.contains("pareto"), "{e}");
        let e = error_of("[steering]\npenalty = \"0s\"\n");
        assert!(e.contains("steering.penalty"), "{e}");
        let e = error_of("[steering]\nenable = false\n");
        assert!(e.contains("enable"), "{e}");
    }

    #[test]
    fn steering_is_on_by_default_and_can_be_switched_off() {
        let s = Scenario::parse("", "t", "t").unwrap();
        assert!(s.steering.enabled);
        assert_eq!(s.steering.penalty, Duration::from_secs(300));
        let s = Scenario::parse("[steering]\nenabled = false\npenalty = \"30s\"\n", "t", "t").unwrap();
        assert!(!s.steering.enabled);
        assert_eq!(s.steering.penalty, Duration::from_secs(30));
    }

    #[test]
    fn lengths_and_rates() {
        let s = Scenario::parse(
            "[run]\nviewers = 60\n[session]\nabandon_probability = 0.0\nlength = { distribution = \"fixed\", seconds = \"1m\" }\n",
            "t",
            "t",
        )
        .unwrap();
        assert!((s.arrival_rate().unwrap() - 1.0).abs() < 1e-9, "60 viewers staying 60 s arrive at 1/s");
        let fast = Scenario::parse("[run]\npace = \"fast\"\n", "t", "t").unwrap();
        assert_eq!(fast.arrival_rate(), None);
        let lognormal = Length::LogNormal { median: Duration::from_secs(100), sigma: 1.0 };
        assert!((lognormal.mean().unwrap().as_secs_f64() - 100.0 * 0.5f64.exp()).abs() < 1e-6);
    }

    #[test]
    fn unknown_scenario_names_list_the_built_ins() {
        let e = Scenario::load("no-such-scenario").unwrap_err().to_string();
        assert!(e.contains("steady") && e.contains("upload-storm"), "{e}");
    }
}

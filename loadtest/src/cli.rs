//! The command line: `loadtest run`, `loadtest cost`, `loadtest scenarios`, `loadtest replay`,
//! `loadtest synth-trace`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use reqwest::Url;

use crate::client::Protocol;
use crate::error::{Error, Result};
use crate::run::RunOptions;
use crate::scenario::{Pace, Scenario};
use crate::synth::SynthSpec;
use crate::tls::Trust;
use crate::units::{parse_duration, parse_size};

/// Load-test a PoP with HLS viewers (and uploads), report, and project the cost.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario against a PoP.
    Run(Box<RunArgs>),
    /// Scale a report's measurements to the reference scale and compare costs.
    Cost(CostArgs),
    /// List the built-in scenarios.
    Scenarios,
    /// Replay a request trace through LRU, S3-FIFO and Belady at one cache size, beside what
    /// the PoP answered.
    Replay(ReplayArgs),
    /// Write a synthetic request trace of video viewing (Zipf titles, early leavers).
    SynthTrace(SynthArgs),
}

/// `loadtest run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The PoP: `https://host:port` (or `http://`); master URLs are moved onto it.
    #[arg(long)]
    pub target: Url,
    /// A scenario file, or a built-in name (steady, flash-crowd, long-tail, upload-storm).
    #[arg(long, default_value = "steady")]
    pub scenario: String,
    /// Run time (e.g. 30s, 5m), overriding the scenario's.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Concurrent viewers at most, overriding the scenario's.
    #[arg(long)]
    pub viewers: Option<usize>,
    /// h1, h2 or h3 (default: h2 for https, h1 for http).
    #[arg(long)]
    pub protocol: Option<Protocol>,
    /// `playback` (real-time playhead, rebuffering measured) or `fast` (a throughput test).
    #[arg(long, value_parser = parse_pace)]
    pub pace: Option<Pace>,
    /// Viewer arrivals per second, overriding the scenario's.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Stop after this many requests.
    #[arg(long)]
    pub max_requests: Option<u64>,
    /// Seed of every random draw (for a repeatable run).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Connections shared by all viewers (default 0: one per viewer).
    #[arg(long)]
    pub connections: Option<usize>,
    /// Do not follow HLS content steering (`EXT-X-CONTENT-STEERING`), overriding the
    /// scenario's `[steering] enabled`: every request goes where the playlists say.
    #[arg(long)]
    pub no_steering: bool,
    /// A file of master playlist URLs or paths, one a line.
    #[arg(long)]
    pub catalogue: Option<PathBuf>,
    /// The origin's API, for the catalogue, playback tokens and uploads.
    #[arg(long)]
    pub origin: Option<Url>,
    /// The origin's Prometheus metrics page, read before and after the run.
    #[arg(long)]
    pub origin_metrics: Option<Url>,
    /// The egress counter on that page.
    #[arg(long, default_value = crate::egress::DEFAULT_METRIC)]
    pub egress_metric: String,
    /// Creator bearer token for uploads.
    #[arg(long, env = "LOADTEST_CREATOR_TOKEN", hide_env_values = true)]
    pub creator_token: Option<String>,
    /// A video file for uploads (default: the scenario's, or a clip made with ffmpeg).
    #[arg(long)]
    pub upload_file: Option<PathBuf>,
    /// Trust server certificates issued by the CAs in this PEM file.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Trust a server whose SubjectPublicKeyInfo has this SHA-256 (base64, as the edge
    /// prints it); may be repeated.
    #[arg(long)]
    pub spki_pin: Vec<String>,
    /// Trust any certificate (local tests only).
    #[arg(long)]
    pub insecure: bool,
    /// Write `report.json` and `report.html` here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write every viewing to this file, one JSON line each (startup, played and stalled
    /// seconds, ...), so runs from several hosts can be merged exactly.
    #[arg(long)]
    pub sessions: Option<PathBuf>,
    /// Write the request trace here: one line per successful object request (when sent,
    /// the PoP, the path, body bytes, `x-cache`), for `loadtest replay`.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// With `--trace`: replay it at the end through LRU, S3-FIFO and Belady with a cache of
    /// this size (e.g. 2GiB), for the report's "cache vs optimum".
    #[arg(long, requires = "trace", value_parser = parse_size)]
    pub replay_cache: Option<u64>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_pace(s: &str) -> Result<Pace, String> {
    match s {
        "playback" => Ok(Pace::Playback),
        "fast" => Ok(Pace::Fast),
        _ => Err(format!("`{s}` is not a pace (playback or fast)")),
    }
}

impl RunArgs {
    /// The run's options (scenario loaded and overridden, then checked again).
    pub fn options(self) -> Result<RunOptions> {
        let mut scenario = Scenario::load(&self.scenario)?;
        let run = &mut scenario.run;
        if let Some(d) = self.duration {
            run.duration = d;
            run.ramp = run.ramp.min(d);
        }
        if let Some(v) = self.viewers {
            run.viewers = v;
        }
        if let Some(p) = self.pace {
            run.pace = p;
        }
        if self.rate.is_some() {
            run.rate = self.rate;
        }
        if self.max_requests.is_some() {
            run.max_requests = self.max_requests;
        }
        if self.seed.is_some() {
            run.seed = self.seed;
        }
        if let Some(c) = self.connections {
            run.connections = c;
        }
        if self.no_steering {
            scenario.steering.enabled = false;
        }
        scenario.check().map_err(|message| Error::Usage(format!("after the command-line overrides, {message}")))?;
        let protocol =
            self.protocol.unwrap_or(if self.target.scheme() == "https" { Protocol::H2 } else { Protocol::H1 });
        Ok(RunOptions {
            scenario,
            target: self.target,
            protocol,
            trust: Trust::from_options(self.ca, &self.spki_pin, self.insecure)?,
            catalogue: self.catalogue,
            origin: self.origin,
            origin_metrics: self.origin_metrics,
            egress_metric: self.egress_metric,
            creator_token: self.creator_token,
            upload_file: self.upload_file,
            progress: !self.quiet,
            sessions: self.sessions,
            trace: self.trace,
            replay_cache: self.replay_cache,
        })
    }
}

/// `loadtest cost`.
#[derive(Debug, Args)]
pub struct CostArgs {
    /// A report directory written by `loadtest run --report`.
    #[arg(long)]
    pub report: PathBuf,
    /// A price table (default: the shipped `prices.toml`).
    #[arg(long)]
    pub prices: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The Prometheus page (a file, e.g. saved with curl) of the origin that ran the
    /// just-in-time policy during the run; with `--full-metrics`, encode and storage are
    /// priced for three designs.
    #[arg(long, requires = "full_metrics")]
    pub policy_metrics: Option<PathBuf>,
    /// The Prometheus page of an origin that encoded the same catalogue's whole ladder at
    /// upload.
    #[arg(long, requires = "policy_metrics")]
    pub full_metrics: Option<PathBuf>,
}

/// `loadtest replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A trace written by `loadtest run --trace` or `loadtest synth-trace`.
    pub trace: PathBuf,
    /// The cache size every policy gets (e.g. 64MiB, 2GiB).
    #[arg(long, value_parser = parse_size)]
    pub cache: u64,
    /// Only the requests sent to this PoP (`host:port`, as in the trace); by default each
    /// PoP in the trace is replayed on its own.
    #[arg(long)]
    pub pop: Option<String>,
    /// Also replay a memory tier of `--cache` over a disk tier of this size, once per disk
    /// admission rule (the PoP's second request, and the segment-order rule).
    #[arg(long, value_parser = parse_size)]
    pub disk: Option<u64>,
    /// With `--disk`: the segments of a title the segment-order rule admits on their first request.
    #[arg(long, default_value_t = 3, requires = "disk")]
    pub opening: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl ReplayArgs {
    /// The disk tier of the two-tier rows, if asked for.
    pub fn disk(&self) -> Option<crate::replay::Disk> {
        self.disk.map(|bytes| crate::replay::Disk { bytes, opening: self.opening })
    }
}

/// `loadtest synth-trace`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// The trace file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Zipf exponent of title popularity.
    #[arg(long, default_value_t = 0.9)]
    pub alpha: f64,
    /// Titles in the catalogue.
    #[arg(long, default_value_t = 2000)]
    pub videos: usize,
    /// Segments per title.
    #[arg(long, default_value_t = 30)]
    pub segments: u32,
    /// Bytes per segment (e.g. 1MiB).
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    pub segment_bytes: u64,
    /// Mean number of segments a viewer watches before leaving (exponential).
    #[arg(long, default_value_t = 10.0)]
    pub abandon_mean: f64,
    /// Requests to write.
    #[arg(long, default_value_t = 1_000_000)]
    pub requests: u64,
    /// Viewings at once, taking turns segment by segment.
    #[arg(long, default_value_t = 100)]
    pub viewers: usize,
    /// Seed of every draw.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl SynthArgs {
    /// The generator's settings, checked.
    pub fn spec(&self) -> Result<SynthSpec> {
        let bad = |m: &str| Err(Error::Usage(format!("synth-trace: {m}")));
        if !(self.alpha >= 0.0 && self.alpha.is_finite()) {
            return bad("--alpha must be a number of at least 0");
        }
        if !(self.abandon_mean > 0.0 && self.abandon_mean.is_finite()) {
            return bad("--abandon-mean must be more than 0");
        }
        if self.videos == 0 || self.segments == 0 || self.viewers == 0 || self.segment_bytes == 0 {
            return bad("--videos, --segments, --viewers and --segment-bytes must be at least 1");
        }
        Ok(SynthSpec {
            alpha: self.alpha,
            videos: self.videos,
            segments: self.segments,
            segment_bytes: self.segment_bytes,
            abandon_mean: self.abandon_mean,
            requests: self.requests,
            viewers: self.viewers,
            seed: self.seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("loadtest").chain(args.iter().copied()))
    }

    #[test]
    fn overrides_reach_the_scenario() {
        let Command::Run(args) = parse(&[
            "run",
            "--target",
            "http://127.0.0.1:8080",
            "--scenario",
            "long-tail",
            "--duration",
            "5s",
            "--viewers",
            "7",
            "--pace",
            "fast",
            "--max-requests",
            "100",
        ])
        .unwrap()
        .command
        else {
            panic!("not run")
        };
        let o = args.options().unwrap();
        assert_eq!(o.scenario.name, "long-tail");
        assert_eq!(o.scenario.run.duration, Duration::from_secs(5));
        assert_eq!(o.scenario.run.viewers, 7);
        assert_eq!(o.scenario.run.pace, Pace::Fast);
        assert_eq!(o.scenario.run.max_requests, Some(100));
        assert_eq!(o.protocol, Protocol::H1, "http defaults to HTTP/1.1");
        assert!(o.scenario.steering.enabled, "steering is followed unless switched off");
        let Command::Run(args) = parse(&["run", "--target", "http://pop", "--no-steering"]).unwrap().command else {
            panic!("not run")
        };
        assert!(!args.options().unwrap().scenario.steering.enabled);
    }

    #[test]
    fn trace_replay_and_synth_options() {
        assert!(parse(&["run", "--target", "http://pop", "--replay-cache", "2GiB"]).is_err(), "needs --trace");
        let Command::Run(args) =
            parse(&["run", "--target", "http://pop", "--trace", "t.tsv", "--replay-cache", "2GiB"]).unwrap().command
        else {
            panic!("not run")
        };
        let o = args.options().unwrap();
        assert_eq!((o.trace, o.replay_cache), (Some(PathBuf::from("t.tsv")), Some(2 << 30)));
        let Command::Replay(r) =
            parse(&["replay", "t.tsv", "--cache", "64MiB", "--pop", "pop-a:8443"]).unwrap().command
        else {
            panic!("not replay")
        };
        assert_eq!((r.cache, r.pop.as_deref(), r.json), (64 << 20, Some("pop-a:8443"), false));
        assert!(parse(&["replay", "t.tsv"]).is_err(), "--cache is required");
        let Command::SynthTrace(s) = parse(&["synth-trace", "--out", "s.tsv"]).unwrap().command else {
            panic!("not synth-trace")
        };
        let spec = s.spec().unwrap();
        assert_eq!((spec.alpha, spec.videos, spec.segments, spec.segment_bytes), (0.9, 2000, 30, 1 << 20));
        assert_eq!(spec.catalogue_bytes(), 60_000 << 20, "2000 x 30 x 1 MiB");
        let Command::SynthTrace(s) = parse(&["synth-trace", "--out", "s.tsv", "--abandon-mean", "0"]).unwrap().command
        else {
            panic!("not synth-trace")
        };
        assert!(s.spec().unwrap_err().to_string().contains("--abandon-mean"));
    }

    #[test]
    fn bad_overrides_and_clashing_trust_are_refused() {
        let run = |extra: &[&str]| {
            let mut a = vec!["run", "--target", "https://pop:8443"];
            a.extend_from_slice(extra);
            match parse(&a).unwrap().command {
                Command::Run(args) => args.options().map(|_| ()),
                _ => unreachable!(),
            }
        };
        assert!(run(&["--viewers", "0"]).unwrap_err().to_string().contains("run.viewers"));
        assert!(run(&["--insecure", "--ca", "x.pem"]).is_err());
        assert!(run(&["--scenario", "nope"]).unwrap_err().to_string().contains("built-in"));
        assert!(parse(&["run", "--target", "https://pop", "--protocol", "h4"]).is_err());
        assert!(parse(&["run", "--target", "https://pop", "--duration", "soon"]).is_err());
    }
}

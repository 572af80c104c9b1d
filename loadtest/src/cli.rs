//! The command line: `loadtest run`, `loadtest cost`, `loadtest scenarios`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use reqwest::Url;

use crate::client::Protocol;
use crate::error::{Error, Result};
use crate::run::RunOptions;
use crate::scenario::{Pace, Scenario};
use crate::tls::Trust;
use crate::units::parse_duration;

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

//! The `loadtest` command.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use loadtest::cli::{Cli, Command};
use loadtest::cost::{self, Prices};
use loadtest::report::{self, json, table};
use loadtest::scenario::{BUILT_IN, Scenario};
use loadtest::synth::Synth;
use loadtest::units::human_bytes;
use loadtest::{replay, trace};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOADTEST_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Scenarios => {
            for (name, _) in BUILT_IN {
                println!("{name:<14}{}", Scenario::load(name)?.description);
            }
            Ok(())
        }
        Command::Cost(args) => {
            let report = json::read(&args.report)?;
            let prices = Prices::load(args.prices.as_deref())?;
            let (share, source) = cost::origin_share(&report).map_err(anyhow::Error::msg)?;
            let projection = cost::project(&prices, share, source);
            let designs = match (&args.policy_metrics, &args.full_metrics) {
                (Some(policy), Some(full)) => {
                    let read = |path: &std::path::Path, what: &str| -> anyhow::Result<cost::media::OriginFigures> {
                        let page =
                            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                        cost::media::OriginFigures::parse(&page, what).map_err(anyhow::Error::msg)
                    };
                    let (policy, full) = (read(policy, "--policy-metrics")?, read(full, "--full-metrics")?);
                    let sessions = report.playback.sessions;
                    Some(
                        cost::media::designs(&prices, &projection, sessions, full, policy)
                            .map_err(anyhow::Error::msg)?,
                    )
                }
                _ => None,
            };
            if args.json {
                // Without origin metrics, the delivery projection alone, as it always was.
                let out = match &designs {
                    Some(d) => serde_json::json!({ "delivery": projection, "designs": d }),
                    None => serde_json::to_value(&projection)?,
                };
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!("{}", cost::render(&projection, &prices, &report));
                if let Some(d) = &designs {
                    print!("{}", cost::media::render(d, &prices));
                }
            }
            Ok(())
        }
        Command::Replay(args) => {
            let records = trace::read_file(&args.trace)?;
            let replayed =
                replay::replay(&records, args.cache, args.disk(), args.pop.as_deref()).map_err(anyhow::Error::msg)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&replayed)?);
            } else {
                print!("{}", table::cache_vs_optimum(&replayed));
            }
            Ok(())
        }
        Command::SynthTrace(args) => {
            let spec = args.spec()?;
            let lines = trace::write_file(&args.out, Synth::new(spec))?;
            let catalogue = spec.catalogue_bytes();
            println!(
                "{lines} requests written to {}; the catalogue is {} ({catalogue} bytes), 5 % of it {} bytes",
                args.out.display(),
                human_bytes(catalogue as f64),
                catalogue / 20
            );
            Ok(())
        }
        Command::Run(args) => {
            let report_dir = args.report.clone();
            let options = args.options()?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let report = runtime.block_on(async {
                let interrupt = CancellationToken::new();
                let on_signal = interrupt.clone();
                tokio::spawn(async move {
                    if tokio::signal::ctrl_c().await.is_ok() {
                        eprintln!("interrupted: finishing requests in flight and writing the report");
                        on_signal.cancel();
                    }
                });
                loadtest::run(options, interrupt).await
            })?;
            print!("{}", table::render(&report));
            if let Some(dir) = report_dir {
                report::write(&dir, &report)?;
                println!("report: {}", dir.join("report.html").display());
            }
            Ok(())
        }
    }
}

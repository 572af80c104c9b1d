use std::path::PathBuf;

use clap::{Parser, Subcommand};
use origin::Config;

/// The origin: API, uploads, metadata, orchestration, keys and object serving.
#[derive(Parser)]
#[command(name = "origin", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API, job drivers, completion handler and in-process workers.
    Serve {
        /// Configuration file; embedded defaults in ./data when omitted.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run only workers that take tasks from the queue (to scale encoding out).
    Worker {
        /// Configuration file (the same backends as the origin's).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file without starting.
    CheckConfig {
        /// The file.
        path: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ORIGIN_LOG").unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("ORIGIN_LOG_FORMAT").as_deref() == Ok("json") {
        logs.json().init()
    } else {
        logs.init()
    }
    match Cli::parse().command {
        Command::Serve { config } => {
            let running = origin::start(Config::load(config.as_deref())?).await?;
            println!("origin listening on {} (API: {}/v1/videos)", running.addr, running.app.config.public_url);
            tokio::signal::ctrl_c().await?;
            running.stop().await;
        }
        Command::Worker { config } => {
            let (stop, watch) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                let _ = stop.send(true);
            });
            origin::run_workers(Config::load(config.as_deref())?, watch).await?;
        }
        Command::CheckConfig { path } => {
            Config::load(Some(&path))?;
            println!("{}: valid", path.display());
        }
    }
    Ok(())
}

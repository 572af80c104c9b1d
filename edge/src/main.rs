use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// An edge PoP.
#[derive(Parser)]
#[command(name = "edge", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTPS (h1/h2), HTTP/3 and optional plain HTTP.
    Serve {
        /// The PoP's configuration.
        #[arg(long)]
        config: PathBuf,
        /// Worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Validate a configuration without starting.
    CheckConfig {
        /// The file.
        path: PathBuf,
    },
}

/// `EX_CONFIG` from sysexits: the configuration is wrong, restarting will not help.
const EX_CONFIG: i32 = 78;

fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDGE_LOG").unwrap_or_else(|_| "info".into());
    // Colours only for a terminal: log files stay plain.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    match Cli::parse().command {
        Command::CheckConfig { path } => {
            load(&path);
            println!("{}: valid", path.display());
            Ok(())
        }
        Command::Serve { config, threads } => {
            let config = load(&config);
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = threads {
                runtime.worker_threads(n.max(1));
            }
            runtime.enable_all().build()?.block_on(serve(config))
        }
    }
}

fn load(path: &std::path::Path) -> pop_config::PopConfig {
    pop_config::load(path).unwrap_or_else(|errors| {
        eprintln!("{errors}");
        std::process::exit(EX_CONFIG);
    })
}

async fn serve(config: pop_config::PopConfig) -> anyhow::Result<()> {
    let stop = shutdown_signal()?;
    let running = edge::start(config).await?;
    println!(
        "edge listening: https://{} h3={:?} http={:?} spki={}",
        running.https, running.h3, running.http, running.spki
    );
    stop.await;
    running.stop().await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed before it returns, so a signal
/// that comes while the server is still starting stops it cleanly instead of killing it.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

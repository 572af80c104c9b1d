use std::path::PathBuf;

use clap::{Parser, Subcommand};
use origin::Config;
use origin::admin::{KeyCommand, PopCommand};

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
    /// Upload a file to an origin as the given creator and follow it until it is ready.
    Ingest {
        /// The video file.
        file: PathBuf,
        /// The origin's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// A personal API token with the `upload` scope (`vt_...`, made on the account page or with `POST /v1/me/tokens`), or a bootstrap creator token.
        #[arg(long, default_value = origin::config::DEV_CREATOR_TOKEN)]
        token: String,
        /// Title (defaults to the file name).
        #[arg(long)]
        title: Option<String>,
        /// Partial uploads sent side by side.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// A PEM certificate to trust besides the system's (a PoP's development certificate,
        /// when the upload URL points at it).
        #[arg(long)]
        ca: Option<PathBuf>,
    },
    /// Validate a configuration file without starting.
    CheckConfig {
        /// The file.
        path: PathBuf,
    },
    /// The PoP registry: enrol (prints the PoP's credential once), revoke, enable, list.
    Pops {
        /// Configuration file (its database).
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: PopsCommand,
    },
    /// Signing keys (Ed25519, for tokens and upload URLs) and master keys (wrapping content keys).
    Keys {
        /// Configuration file (its data folder and database).
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum PopsCommand {
    /// Enrol a PoP, or re-enrol it with a new credential (the old one stops working).
    Enrol {
        /// Its `[pop] id`.
        id: String,
        /// The region it serves.
        #[arg(long)]
        region: String,
        /// Run by a partner: only encrypted media is sent to it.
        #[arg(long)]
        partner: bool,
        /// Write the credential to this file (mode 0600) instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Refuse a PoP from its next request on.
    Revoke {
        /// Its id.
        id: String,
    },
    /// Accept a revoked PoP again (with its existing credential).
    Enable {
        /// Its id.
        id: String,
    },
    /// Every enrolled PoP.
    List,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print the `[[tokens]]` entries (public keys only) for every PoP's pop.toml.
    PopToml,
    /// Add a signing key that does not sign yet.
    Add,
    /// Make a signing key the one that signs (at the next start).
    Activate {
        /// Key id.
        kid: String,
    },
    /// Drop a signing key; what it signed is refused.
    Retire {
        /// Key id.
        kid: String,
    },
    /// Add a master key version and re-wrap every content key with it (segments untouched).
    RotateMaster,
    /// Re-wrap what is left and drop older master keys (after every origin restarted).
    RetireMasters,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    origin::logs::init();
    match Cli::parse().command {
        Command::Serve { config } => {
            let stop = shutdown_signal()?;
            let running = origin::start(Config::load(config.as_deref())?).await?;
            let metrics = running.metrics_addr.map_or_else(|| "off".to_owned(), |at| format!("http://{at}/metrics"));
            // One line: whoever starts the process may read only the first.
            println!(
                "origin listening on {} (API: {}/v1/videos, metrics: {metrics})",
                running.addr, running.app.config.public_url
            );
            stop.await;
            running.stop().await;
        }
        Command::Worker { config } => {
            let (stop, watch) = tokio::sync::watch::channel(false);
            let signal = shutdown_signal()?;
            tokio::spawn(async move {
                signal.await;
                let _ = stop.send(true);
            });
            origin::run_workers(Config::load(config.as_deref())?, watch).await?;
        }
        Command::Ingest { file, url, token, title, parallel, ca } => {
            let client = match ca {
                Some(pem) => origin::client::Client::trusting(&url, &token, &std::fs::read(&pem)?)?,
                None => origin::client::Client::new(&url, &token),
            };
            let title =
                title.unwrap_or_else(|| file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            let (id, upload) = client.create_video(&title, &file).await?;
            println!("video {id}: uploading {}", file.display());
            let plan = origin::client::UploadPlan { parallel, ..Default::default() };
            client.upload(&upload, &file, plan).await?;
            println!("video {id}: uploaded, transcoding");
            client.wait_ready(&id, std::time::Duration::from_secs(3600)).await?;
            let playback = client.playback(&id).await?;
            println!("video {id}: ready\nplay: {}", playback["master_url"].as_str().unwrap_or_default());
        }
        Command::CheckConfig { path } => {
            Config::load(Some(&path))?;
            println!("{}: valid", path.display());
        }
        Command::Pops { config, command } => {
            let config = Config::load(config.as_deref())?;
            let command = match command {
                PopsCommand::Enrol { id, region, partner, out } => {
                    let who = origin::pops::Enrolment { id, region, partner };
                    let enrolled = origin::admin::enrol(&config, &who).await?;
                    match out {
                        Some(path) => {
                            origin::secrets::write_private(&path, enrolled.credential.as_bytes())?;
                            println!("{}\ncredential written to {}", enrolled.instructions, path.display());
                        }
                        None => {
                            println!("{}\ncredential (shown only now):\n{}", enrolled.instructions, enrolled.credential)
                        }
                    }
                    return Ok(());
                }
                PopsCommand::Revoke { id } => PopCommand::Revoke(id),
                PopsCommand::Enable { id } => PopCommand::Enable(id),
                PopsCommand::List => PopCommand::List,
            };
            println!("{}", origin::admin::pops(&config, command).await?);
        }
        Command::Keys { config, command } => {
            let config = Config::load(config.as_deref())?;
            let command = match command {
                KeysCommand::PopToml => KeyCommand::PopToml,
                KeysCommand::Add => KeyCommand::Add,
                KeysCommand::Activate { kid } => KeyCommand::Activate(kid),
                KeysCommand::Retire { kid } => KeyCommand::Retire(kid),
                KeysCommand::RotateMaster => KeyCommand::RotateMaster,
                KeysCommand::RetireMasters => KeyCommand::RetireMasters,
            };
            print!("{}", origin::admin::keys(&config, command).await?);
        }
    }
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

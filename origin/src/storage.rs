//! Blob storage (P4, P12, P14) is an opendal `Operator`: the local file system by default,
//! an S3-compatible bucket when configured. Built once here, with retries and timeouts.
//!
//! Object layout:
//! ```text
//! uploads/{upload}/{offset}-{n} one acknowledged piece of a tus upload (until the job assembles it)
//! originals/{video}           the uploaded file, as received
//! jobs/{job}/{artifact key}   temporary GOP chunks and encoded parts (removed with the job)
//! videos/{video}/{layout}     the published tree (`encoder::layout`)
//! sources/{video}/plan.json   what a later encode of any segment needs (`encoder::jit`)
//! sources/{video}/overlay.png the watermark that plan burns in
//! ```

use std::sync::Once;
use std::time::Duration;

use opendal::Operator;
use opendal::layers::{RetryLayer, TimeoutLayer};

use crate::config::StorageConfig;
use crate::error::{Error, Result};

/// Installs process-wide TLS and HTTP plumbing that S3 (and every rustls user) relies on.
pub fn init_tls() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        opendal::HttpTransporter::install_default(opendal_http_transport_reqwest::ReqwestTransport::new(
            reqwest::Client::new(),
        ));
    });
}

/// Builds the operator for a configuration.
pub fn operator(config: &StorageConfig) -> Result<Operator> {
    init_tls();
    let op = match config {
        StorageConfig::Fs { root } => {
            std::fs::create_dir_all(root).map_err(Error::io(format!("create {}", root.display())))?;
            let root = std::fs::canonicalize(root).map_err(Error::io(format!("resolve {}", root.display())))?;
            // Writes land in a folder beside the root and are renamed into place, so a reader
            // (a viewer, a PoP, another process) never finds half an object: a segment being
            // stored by a just-in-time encode, or a playlist rewritten with measured bandwidths.
            let staging = root.with_file_name(format!(
                "{}.partial",
                root.file_name().map_or_else(|| "blobs".into(), |n| n.to_string_lossy())
            ));
            std::fs::create_dir_all(&staging).map_err(Error::io(format!("create {}", staging.display())))?;
            Operator::new(
                opendal::services::Fs::default()
                    .root(&root.to_string_lossy())
                    .atomic_write_dir(&staging.to_string_lossy()),
            )?
        }
        StorageConfig::S3 { endpoint, bucket, region, access_key, secret_key } => Operator::new(
            opendal::services::S3::default()
                .endpoint(endpoint)
                .bucket(bucket)
                .region(region)
                .access_key_id(access_key)
                .secret_access_key(secret_key)
                .disable_config_load(),
        )?,
    };
    Ok(op.layer(TimeoutLayer::new().with_timeout(Duration::from_secs(60))).layer(RetryLayer::new().with_max_times(4)))
}

/// Removes every object under `prefix`. Safe to run twice at once (a takedown and a late
/// completion both clean up): an object another remover took first is not an error.
pub async fn delete_tree(blobs: &Operator, prefix: &str) -> Result<()> {
    match blobs.delete_with(prefix).recursive(true).await {
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(()),
        other => Ok(other?),
    }
}

/// Makes a just-written object's name durable on a file system: opendal syncs the file's bytes
/// and renames it into place, but the folders that name it must be synced too, or a power loss
/// can forget a piece the database records (S3 needs nothing). Syncs each folder from the
/// object's up to the root.
pub async fn sync_name(config: &StorageConfig, key: &str) -> Result<()> {
    let StorageConfig::Fs { root } = config else { return Ok(()) };
    let root = root.clone();
    let key = key.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut dir = std::path::Path::new(&key).parent();
        while let Some(d) = dir {
            let path = root.join(d);
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(Error::io(format!("sync {}", path.display())))?;
            if d.as_os_str().is_empty() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    })
    .await
    .map_err(|e| Error::Internal(format!("sync thread: {e}")))?
}

/// Prefix of a tus upload's pieces.
pub fn upload_pieces(upload: &str) -> String {
    format!("uploads/{upload}/")
}

/// Key of one piece of a tus upload: its offset (zero-padded, so pieces list in order) and a
/// random tag, so two nodes writing at the same offset never share an object.
pub fn upload_piece(upload: &str, offset: u64, tag: &str) -> String {
    format!("uploads/{upload}/{offset:020}-{tag}")
}

/// Key of a video's original.
pub fn original(video: &str) -> String {
    format!("originals/{video}")
}

/// Prefix of a video's published tree.
pub fn published(video: &str) -> String {
    format!("videos/{video}/")
}

/// Prefix of what later encodes of a video need, beside its original.
pub fn sources(video: &str) -> String {
    format!("sources/{video}/")
}

/// Prefix of a job's temporary artifacts.
pub fn job_prefix(job: &str) -> String {
    format!("jobs/{job}/")
}

//! The upload storm: creators uploading while viewers watch. Each upload follows the
//! origin's protocol: `POST /v1/videos` with a creator bearer token returns a pre-signed
//! tus URL; a tus 1.0.0 creation `POST` to it (`Upload-Length`) returns the upload's
//! `Location`; `PATCH` requests then send chunks at `Upload-Offset`, and a chunk that fails
//! is resumed from the offset a `HEAD` reports, not restarted.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use reqwest::Url;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::catalogue::rebase;
use crate::record::{Recorder, UploadSample};
use crate::scenario::{Uploads, Via};
use crate::stop::Stop;

/// Attempts per chunk.
const ATTEMPTS: u32 = 3;

/// Everything an uploader needs.
#[derive(Debug)]
pub struct Storm {
    /// The origin's API.
    pub origin: Url,
    /// Creator bearer token.
    pub token: String,
    /// The file to upload.
    pub file: PathBuf,
    /// Its size.
    pub size: u64,
    /// `[uploads]`.
    pub config: Uploads,
    /// The PoP, for `via = "target"`.
    pub target: Url,
}

#[derive(Deserialize)]
struct Created {
    upload: Ticket,
}

#[derive(Deserialize)]
struct Ticket {
    url: String,
}

/// A failed step: a short kind for the report and details for the log.
struct Failure(&'static str, String);

/// Runs `parallel` uploaders until `count` uploads are done or the run stops.
pub async fn run(storm: Arc<Storm>, client: reqwest::Client, recorder: Arc<Recorder>, stop: Arc<Stop>) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..storm.config.parallel {
        let (storm, client, recorder, stop, next) =
            (storm.clone(), client.clone(), recorder.clone(), stop.clone(), next.clone());
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if stop.is_stopped() || (storm.config.count > 0 && n >= storm.config.count) {
                    break;
                }
                let started = Instant::now();
                let outcome = tokio::select! {
                    r = upload(&storm, &client, &recorder, n) => r,
                    () = stop.stopped() => Err(Failure("interrupted", String::new())),
                };
                let (bytes, failed) = match outcome {
                    Ok(bytes) => (bytes, None),
                    Err(Failure(kind, message)) => {
                        if kind != "interrupted" {
                            tracing::warn!(upload = n, kind, %message, "upload failed");
                        }
                        (0, Some(kind.to_owned()))
                    }
                };
                recorder.upload(UploadSample { bytes, seconds: started.elapsed().as_secs_f32(), failed });
            }
        });
    }
    while workers.join_next().await.is_some() {}
}

async fn upload(storm: &Storm, client: &reqwest::Client, recorder: &Recorder, n: usize) -> Result<u64, Failure> {
    let fail = |kind| move |e: reqwest::Error| Failure(kind, e.to_string());
    let create = storm.origin.join("/v1/videos").map_err(|e| Failure("create", e.to_string()))?;
    let body = serde_json::json!({
        "title": format!("loadtest upload {n}"),
        "filename": storm.file.file_name().map_or("upload.mp4".into(), |f| f.to_string_lossy()),
        "size": storm.size,
        "content_type": "video/mp4",
    });
    let r = client
        .post(create)
        .bearer_auth(&storm.token)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(fail("create"))?;
    let status = r.status();
    let text = r.bytes().await.map_err(fail("create"))?;
    if !status.is_success() {
        return Err(Failure("create", format!("{status}: {}", String::from_utf8_lossy(&text))));
    }
    let created: Created = serde_json::from_slice(&text).map_err(|e| Failure("create", e.to_string()))?;
    let ticket = storm.origin.join(&created.upload.url).map_err(|e| Failure("create", e.to_string()))?;
    let ticket = place(storm, &ticket);

    let r = client
        .post(ticket.clone())
        .header("tus-resumable", "1.0.0")
        .header("upload-length", storm.size.to_string())
        .send()
        .await
        .map_err(fail("tus_create"))?;
    if r.status() != reqwest::StatusCode::CREATED {
        return Err(Failure("tus_create", format!("{}", r.status())));
    }
    let location = r
        .headers()
        .get(http::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| Failure("tus_create", "no Location".into()))?;
    let location = place(storm, &ticket.join(location).map_err(|e| Failure("tus_create", e.to_string()))?);

    let mut file = tokio::fs::File::open(&storm.file).await.map_err(|e| Failure("file", e.to_string()))?;
    let mut offset = 0u64;
    let mut failures = 0;
    while offset < storm.size {
        let len = storm.config.chunk.min(storm.size - offset);
        let mut chunk = vec![0u8; len as usize];
        file.seek(SeekFrom::Start(offset)).await.map_err(|e| Failure("file", e.to_string()))?;
        file.read_exact(&mut chunk).await.map_err(|e| Failure("file", e.to_string()))?;
        let started = Instant::now();
        match patch(client, &location, offset, chunk).await {
            Ok(acknowledged) => {
                recorder.upload_chunk(started.elapsed());
                offset = acknowledged;
                failures = 0;
            }
            Err(Failure(kind, message)) => {
                failures += 1;
                if failures >= ATTEMPTS {
                    return Err(Failure(kind, message));
                }
                offset = server_offset(client, &location).await.unwrap_or(offset);
            }
        }
    }
    Ok(offset)
}

/// Where a URL goes: as the origin gave it, or moved onto the PoP.
fn place(storm: &Storm, url: &Url) -> Url {
    match storm.config.via {
        Via::Origin => url.clone(),
        Via::Target => rebase(url, &storm.target),
    }
}

async fn patch(client: &reqwest::Client, location: &Url, offset: u64, chunk: Vec<u8>) -> Result<u64, Failure> {
    let r = client
        .patch(location.clone())
        .header("tus-resumable", "1.0.0")
        .header(http::header::CONTENT_TYPE, "application/offset+octet-stream")
        .header("upload-offset", offset.to_string())
        .body(chunk)
        .send()
        .await
        .map_err(|e| Failure("patch", e.to_string()))?;
    if r.status() != reqwest::StatusCode::NO_CONTENT {
        return Err(Failure("patch", format!("{}", r.status())));
    }
    upload_offset(&r).ok_or_else(|| Failure("patch", "no Upload-Offset".into()))
}

async fn server_offset(client: &reqwest::Client, location: &Url) -> Option<u64> {
    let r = client.head(location.clone()).header("tus-resumable", "1.0.0").send().await.ok()?;
    upload_offset(&r)
}

fn upload_offset(r: &reqwest::Response) -> Option<u64> {
    r.headers().get("upload-offset")?.to_str().ok()?.parse().ok()
}

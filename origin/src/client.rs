//! A client of the origin: create a video, upload it with tus (in chunks, optionally as
//! parallel partial uploads joined by concatenation, each failed chunk retried alone after
//! asking the server where it stopped), follow it to `ready`. Used by `origin ingest`, the
//! upload benchmark and tests.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::error::{Error, Result};

/// An API client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// How to upload.
#[derive(Debug, Clone, Copy)]
pub struct UploadPlan {
    /// Bytes per PATCH request.
    pub chunk: u64,
    /// Partial uploads sent side by side (1: a single upload).
    pub parallel: usize,
}

impl Default for UploadPlan {
    fn default() -> Self {
        Self { chunk: 16 << 20, parallel: 4 }
    }
}

/// Attempts per chunk before the upload gives up.
const CHUNK_ATTEMPTS: u32 = 5;

fn http_error(e: reqwest::Error) -> Error {
    Error::Io { context: "HTTP".into(), source: std::io::Error::other(e) }
}

/// Requests may take long (whole uploads); idle connections are dropped well before the
/// origin's and PoPs' idle timeout (60 s by default) closes them under a request.
fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().timeout(Duration::from_secs(600)).pool_idle_timeout(Duration::from_secs(20))
}

impl Client {
    /// A client of `base` (e.g. `http://127.0.0.1:8080`) acting with a creator token.
    pub fn new(base: &str, creator_token: &str) -> Self {
        crate::storage::init_tls();
        let http = builder().build().expect("http client");
        Self { http, base: base.trim_end_matches('/').to_owned(), token: creator_token.to_owned() }
    }

    /// Like [`Client::new`], also trusting the PEM certificate `pem` (a PoP's development
    /// certificate, when upload URLs point at it).
    pub fn trusting(base: &str, creator_token: &str, pem: &[u8]) -> Result<Self> {
        crate::storage::init_tls();
        let cert = reqwest::Certificate::from_pem(pem).map_err(http_error)?;
        let http = builder().add_root_certificate(cert).build().map_err(http_error)?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned(), token: creator_token.to_owned() })
    }

    async fn json(&self, req: reqwest::RequestBuilder) -> Result<Value> {
        let r = req.send().await.map_err(http_error)?;
        let status = r.status();
        let body = r.bytes().await.map_err(http_error)?;
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status.is_success() { Ok(value) } else { Err(Error::Internal(format!("{status}: {value}"))) }
    }

    /// `POST /v1/videos`; returns (video id, pre-signed upload URL).
    pub async fn create_video(&self, title: &str, file: &Path) -> Result<(String, String)> {
        let size = tokio::fs::metadata(file).await.map_err(Error::io("stat upload"))?.len();
        let filename = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "video".into());
        let body = serde_json::json!({"title": title, "filename": filename, "size": size, "content_type": "video/mp4"});
        let v =
            self.json(self.http.post(format!("{}/v1/videos", self.base)).bearer_auth(&self.token).json(&body)).await?;
        let id = v["video"]["id"].as_str().unwrap_or_default().to_owned();
        let url = v["upload"]["url"].as_str().unwrap_or_default().to_owned();
        Ok((id, url))
    }

    /// Uploads `file` to a pre-signed tus URL.
    pub async fn upload(&self, url: &str, file: &Path, plan: UploadPlan) -> Result<()> {
        let size = tokio::fs::metadata(file).await.map_err(Error::io("stat upload"))?.len();
        if plan.parallel <= 1 {
            let location = self.create_upload(url, size, false).await?;
            return self.send_range(&location, file, 0, size, plan.chunk).await;
        }
        let part = size.div_ceil(plan.parallel as u64).max(1);
        let mut locations = Vec::new();
        let mut sends = Vec::new();
        for start in (0..size).step_by(part as usize) {
            let len = part.min(size - start);
            let location = self.create_upload(url, len, true).await?;
            locations.push(location.clone());
            let (client, file) = (self.clone(), file.to_owned());
            sends.push(tokio::spawn(async move { client.send_range(&location, &file, start, len, plan.chunk).await }));
        }
        for s in sends {
            s.await.map_err(|e| Error::Internal(e.to_string()))??;
        }
        let r = self
            .http
            .post(url)
            .header("tus-resumable", "1.0.0")
            .header("upload-concat", format!("final;{}", locations.join(" ")))
            .send()
            .await
            .map_err(http_error)?;
        if r.status() != 201 {
            return Err(Error::Internal(format!("concatenation refused: {}", r.status())));
        }
        Ok(())
    }

    async fn create_upload(&self, url: &str, length: u64, partial: bool) -> Result<String> {
        let mut req = self.http.post(url).header("tus-resumable", "1.0.0").header("upload-length", length.to_string());
        if partial {
            req = req.header("upload-concat", "partial");
        }
        let r = req.send().await.map_err(http_error)?;
        if r.status() != 201 {
            return Err(Error::Internal(format!(
                "upload creation refused: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            )));
        }
        r.headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| Error::Internal("no Location".into()))
    }

    /// Sends bytes `[start, start + len)` of `file` as the upload at `location`, resuming from
    /// the server's offset after any failure.
    async fn send_range(&self, location: &str, file: &Path, start: u64, len: u64, chunk: u64) -> Result<()> {
        let mut input = tokio::fs::File::open(file).await.map_err(Error::io("open upload"))?;
        let mut offset = 0u64;
        let mut failures = 0;
        while offset < len {
            let n = chunk.min(len - offset);
            input.seek(std::io::SeekFrom::Start(start + offset)).await.map_err(Error::io("seek upload"))?;
            let mut buf = vec![0u8; n as usize];
            input.read_exact(&mut buf).await.map_err(Error::io("read upload"))?;
            match self.patch(location, offset, buf).await {
                Ok(new_offset) => offset = new_offset,
                Err(e) => {
                    failures += 1;
                    if failures >= CHUNK_ATTEMPTS {
                        return Err(e);
                    }
                    tracing::info!(error = %e, "chunk failed; asking the server where to resume");
                    tokio::time::sleep(Duration::from_millis(200 << failures)).await;
                    offset = self.offset(location).await.unwrap_or(offset);
                }
            }
        }
        Ok(())
    }

    async fn patch(&self, location: &str, offset: u64, bytes: Vec<u8>) -> Result<u64> {
        let r = self
            .http
            .patch(location)
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", offset.to_string())
            .body(bytes)
            .send()
            .await
            .map_err(http_error)?;
        if r.status() != 204 {
            return Err(Error::Internal(format!("PATCH refused: {}", r.status())));
        }
        upload_offset(&r)
    }

    /// The server's acknowledged offset of an upload.
    pub async fn offset(&self, location: &str) -> Result<u64> {
        let r = self.http.head(location).header("tus-resumable", "1.0.0").send().await.map_err(http_error)?;
        upload_offset(&r)
    }

    /// `GET /v1/videos/{id}`.
    pub async fn video(&self, id: &str) -> Result<Value> {
        self.json(self.http.get(format!("{}/v1/videos/{id}", self.base))).await
    }

    /// Waits for `ready` (or `failed`, an error) for at most `timeout`.
    pub async fn wait_ready(&self, id: &str, timeout: Duration) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let v = self.video(id).await?;
            match v["state"].as_str() {
                Some("ready") => return Ok(v),
                Some("failed") | Some("deleted") => {
                    return Err(Error::Internal(format!("video ended {}: {}", v["state"], v["error_code"])));
                }
                _ if tokio::time::Instant::now() > deadline => {
                    return Err(Error::Internal(format!("not ready in time: {v}")));
                }
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    /// `POST /v1/videos/{id}/playback`.
    pub async fn playback(&self, id: &str) -> Result<Value> {
        self.json(self.http.post(format!("{}/v1/videos/{id}/playback", self.base))).await
    }
}

fn upload_offset(r: &reqwest::Response) -> Result<u64> {
    r.headers()
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::Internal(format!("no Upload-Offset ({})", r.status())))
}

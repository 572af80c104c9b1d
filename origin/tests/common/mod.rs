//! Shared helpers for origin tests: an in-process origin on a temp folder, generated clips,
//! and a small tus client speaking the protocol over real HTTP.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod services;

pub use tests::media::{clip, probe_frames};

use std::path::{Path, PathBuf};
use std::time::Duration;

use origin::config::DEV_CREATOR_TOKEN;
use origin::{Config, Running};
use serde_json::Value;

/// An origin running on embedded defaults in a temp folder.
pub struct TestOrigin {
    pub running: Running,
    pub base: String,
    pub client: reqwest::Client,
    pub dir: PathBuf,
}

pub fn client() -> reqwest::Client {
    origin::storage::init_tls();
    reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap()
}

impl TestOrigin {
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(Config::for_dir(dir)).await
    }

    pub async fn start_with(config: Config) -> Self {
        let dir = config.data_dir.clone();
        let running = origin::start(config).await.expect("origin starts");
        let base = running.app.config.public_url.clone();
        Self { running, base, client: client(), dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POST /v1/videos as the dev creator.
    pub async fn create_video(&self, title: &str, size: u64) -> Value {
        let body = serde_json::json!({"title": title, "filename": "clip.mp4", "size": size, "content_type": "video/mp4", "language": "ko"});
        let r =
            self.client.post(self.url("/v1/videos")).bearer_auth(DEV_CREATOR_TOKEN).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        r.json().await.unwrap()
    }

    /// The tus client for a created video's pre-signed upload URL.
    pub fn tus(&self, created: &Value) -> Tus<'_> {
        Tus { client: &self.client, url: created["upload"]["url"].as_str().expect("an upload URL").to_owned() }
    }

    /// POST /v1/videos/{id}/playback: the grant with its URLs.
    pub async fn playback(&self, id: &str) -> Value {
        let r = self.client.post(self.url(&format!("/v1/videos/{id}/playback"))).send().await.unwrap();
        r.json().await.unwrap()
    }

    pub async fn video(&self, id: &str) -> Value {
        self.client.get(self.url(&format!("/v1/videos/{id}"))).send().await.unwrap().json().await.unwrap()
    }

    /// Polls until the video reaches `state` (or fails the test after `secs`).
    pub async fn wait_state(&self, id: &str, state: &str, secs: u64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.video(id).await;
            if v["state"] == state {
                return v;
            }
            assert!(v["state"] != "failed" || state == "failed", "video failed: {v}");
            assert!(tokio::time::Instant::now() < deadline, "video never reached {state}: {v}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The tus side of a client: creation, PATCH, HEAD, concatenation.
pub struct Tus<'a> {
    pub client: &'a reqwest::Client,
    /// The pre-signed creation URL.
    pub url: String,
}

impl Tus<'_> {
    /// Creates an upload (optionally partial); returns its Location.
    pub async fn create(&self, length: u64, partial: bool) -> String {
        let mut req = self
            .client
            .post(&self.url)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", length.to_string())
            .header("upload-metadata", "filename Y2xpcC5tcDQ=");
        if partial {
            req = req.header("upload-concat", "partial");
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        r.headers()["location"].to_str().unwrap().to_owned()
    }

    /// Sends `bytes` at `offset`; returns the response.
    pub async fn patch(&self, location: &str, offset: u64, bytes: Vec<u8>) -> reqwest::Response {
        self.patch_request(location, offset, bytes).send().await.unwrap()
    }

    /// The same PATCH with an `Upload-Checksum` header.
    pub async fn patch_with_checksum(
        &self,
        location: &str,
        offset: u64,
        bytes: Vec<u8>,
        checksum: &str,
    ) -> reqwest::Response {
        self.patch_request(location, offset, bytes).header("upload-checksum", checksum).send().await.unwrap()
    }

    fn patch_request(&self, location: &str, offset: u64, bytes: Vec<u8>) -> reqwest::RequestBuilder {
        self.client
            .patch(location)
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", offset.to_string())
            .body(bytes)
    }

    /// The acknowledged offset.
    pub async fn offset(&self, location: &str) -> u64 {
        let r = self.client.head(location).header("tus-resumable", "1.0.0").send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.headers()["upload-offset"].to_str().unwrap().parse().unwrap()
    }

    /// Uploads `data` as one upload in chunks of `chunk` bytes.
    pub async fn upload(&self, data: &[u8], chunk: usize) -> String {
        let location = self.create(data.len() as u64, false).await;
        self.send_all(&location, data, chunk).await;
        location
    }

    pub async fn send_all(&self, location: &str, data: &[u8], chunk: usize) {
        self.send_all_from(location, data, 0, chunk).await;
    }

    /// Sends `data[from..]`, `from` being the acknowledged offset, in chunks.
    pub async fn send_all_from(&self, location: &str, data: &[u8], from: usize, chunk: usize) {
        let mut offset = from;
        for piece in data[from..].chunks(chunk) {
            let r = self.patch(location, offset as u64, piece.to_vec()).await;
            assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
            offset += piece.len();
            assert_eq!(r.headers()["upload-offset"].to_str().unwrap(), offset.to_string());
        }
    }

    /// Uploads `data` as `parts` partial uploads sent in parallel, then concatenates them.
    pub async fn upload_parallel(&self, data: &[u8], parts: usize) -> reqwest::Response {
        let size = data.len().div_ceil(parts);
        let pieces: Vec<&[u8]> = data.chunks(size).collect();
        let mut locations = Vec::new();
        for p in &pieces {
            locations.push(self.create(p.len() as u64, true).await);
        }
        let sends = pieces.iter().zip(&locations).map(|(p, l)| self.send_all(l, p, 256 * 1024));
        futures_util::future::join_all(sends).await;
        self.client
            .post(&self.url)
            .header("tus-resumable", "1.0.0")
            .header("upload-concat", format!("final;{}", locations.join(" ")))
            .send()
            .await
            .unwrap()
    }
}

/// The states an SSE stream reports, until it ends after a final one.
pub async fn event_states(mut events: reqwest::Response) -> Vec<String> {
    let (mut text, mut states) = (String::new(), Vec::new());
    while let Some(chunk) = events.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: "))
                && let Ok(e) = serde_json::from_str::<Value>(data)
                && let Some(state) = e["state"].as_str()
            {
                states.push(state.to_owned());
            }
        }
    }
    states
}

//! An off-the-shelf tus client against the origin: tus-js-client 4 from npm, unchanged and run
//! by Node (`tests/tus-client/upload.mjs`), uploads a clip to an in-process origin three ways:
//! in one go, aborted half way and resumed by a new `Upload` found in its URL storage, and in
//! four parallel partial uploads joined by concatenation. Each original must arrive byte for
//! byte and transcode to `ready`.
//!
//! Needs `node` (and `npm` when `tests/tus-client/node_modules` is absent). Without them the
//! test is skipped locally and fails under CI (`CI` set).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tus-client")
}

fn runs(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success())
}

fn unavailable(why: &str) -> bool {
    services::skip(&format!("SKIPPED ({why}): tus-js-client test not run"));
    false
}

/// Whether Node can run the client, installing the locked dependencies on a clean clone.
fn node_ready() -> bool {
    if !runs("node") {
        return unavailable("node/npm not found");
    }
    let dir = client_dir();
    if dir.join("node_modules/tus-js-client").is_dir() {
        return true;
    }
    if !runs("npm") {
        return unavailable("node/npm not found");
    }
    let out = Command::new("npm")
        .arg("ci")
        .arg("--prefix")
        .arg(&dir)
        .args(["--no-audit", "--no-fund"])
        .output()
        .expect("npm runs");
    assert!(
        out.status.success(),
        "npm ci in {}:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// Runs `upload.mjs` and returns its JSON line, failing on anything but success.
async fn tus_js_client(endpoint: &str, file: &Path, mode: &str) -> Value {
    let mut command = Command::new("node");
    command.arg(client_dir().join("upload.mjs")).arg(endpoint).arg(file).arg(mode);
    // Blocking wait off the runtime's workers: the origin serves the client from them.
    let out = tokio::task::spawn_blocking(move || command.output().expect("node runs")).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let result: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("{mode}: no JSON from upload.mjs ({}):\n{stdout}{stderr}", out.status));
    assert!(
        out.status.success() && result["ok"] == true,
        "{mode}: upload.mjs failed ({}): {result:#}\n{stderr}",
        out.status
    );
    result
}

fn count(requests: &Value, key: &str) -> u64 {
    requests[key].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_uploads_whole_resumed_and_parallel() {
    if !node_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = clip(dir.path(), "src.mp4", "320x240", 2);
    let data = std::fs::read(&src).unwrap();
    let size = data.len() as u64;
    let data_dir = dir.path().join("data");
    let origin = TestOrigin::start(&data_dir).await;

    let mut videos = Vec::new();
    for mode in ["whole", "resume", "parallel"] {
        let created = origin.create_video(&format!("tus-js-client {mode}"), size).await;
        let id = created["video"]["id"].as_str().unwrap().to_owned();
        let endpoint = created["upload"]["url"].as_str().unwrap();
        let result = tus_js_client(endpoint, &src, mode).await;
        eprintln!("{mode}: {result}");
        assert_eq!(result["size"], size, "{result}");
        let url = result["url"].as_str().unwrap();
        let requests = &result["requests"];

        match mode {
            "whole" => {
                assert_eq!(count(requests, "POST"), 1, "{result}");
                assert!(count(requests, "PATCH") >= 4, "small chunks take several PATCHes: {result}");
            }
            "resume" => {
                assert_eq!(result["first_url"], url, "the second run continued the first upload: {result}");
                let from = result["resumed_from"].as_u64().unwrap();
                let sent = result["second_run_bytes"].as_u64().unwrap();
                assert!(from > 0 && sent < size, "the second run resumed instead of starting over: {result}");
                assert_eq!(from + sent, size, "{result}");
                let second = &requests["second"];
                assert_eq!(count(second, "POST"), 0, "no new upload was created: {result}");
                assert!(count(second, "HEAD") >= 1, "{result}");
            }
            "parallel" => {
                assert_eq!(count(requests, "POST partial"), 4, "{result}");
                assert_eq!(count(requests, "POST final"), 1, "{result}");
                let head = origin.client.head(url).header("tus-resumable", "1.0.0").send().await.unwrap();
                assert_eq!(head.status(), 200);
                let header = |name: &str| head.headers()[name].to_str().unwrap().to_owned();
                let concat = header("upload-concat");
                let parts = concat.strip_prefix("final;").unwrap_or_else(|| panic!("not a final upload: {concat}"));
                assert_eq!(parts.split_whitespace().count(), 4, "{concat}");
                assert_eq!(header("upload-offset"), size.to_string());
                assert_eq!(header("upload-length"), size.to_string());
            }
            _ => unreachable!(),
        }

        // The upload completes before the client hears so.
        assert_ne!(origin.video(&id).await["state"], "uploading", "{mode}");
        videos.push((mode, id));
    }

    for (mode, id) in &videos {
        let video = origin.wait_state(id, "ready", 120).await;
        assert!((video["duration"].as_f64().unwrap() - 2.0).abs() < 0.1, "{video}");
        // The job assembled the original from the upload's pieces, whichever way they came.
        let original = std::fs::read(data_dir.join("blobs/originals").join(id)).unwrap();
        assert!(original == data, "{mode}: the stored original differs from the file ({} bytes)", original.len());
    }
    assert_eq!(files_under(&data_dir.join("blobs/uploads")), 0, "the pieces went once each original was whole");
    origin.running.stop().await;
}

fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries.flatten().map(|e| if e.path().is_dir() { files_under(&e.path()) } else { 1 }).sum()
}

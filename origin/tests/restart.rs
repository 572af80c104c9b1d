//! The real `origin` binary killed with SIGKILL in the middle of an upload and in the middle
//! of a transcode: the upload resumes from its last acknowledged offset, the job is
//! redelivered after its lease and completes, and the output plays whole.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use origin::client::Client;
use origin::config::DEV_CREATOR_TOKEN;

struct OriginProcess {
    child: Child,
}

impl OriginProcess {
    /// Starts `origin serve` and waits until it listens.
    fn start(config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_origin"))
            .args(["serve", "--config"])
            .arg(config)
            .env("ORIGIN_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("origin binary starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("origin listening"), "unexpected first line: {line:?}");
        Self { child }
    }

    /// SIGKILL: no graceful anything.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for OriginProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path) -> (std::path::PathBuf, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let path = dir.join("origin.toml");
    let data = dir.join("data");
    std::fs::write(
        &path,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:{port}\"\nmetrics_listen = \"127.0.0.1:0\"\ntask_lease_secs = 2\nworkers = 1\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    (path, format!("http://127.0.0.1:{port}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_resumes_after_the_origin_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, base) = config(dir.path());
    let src = clip(dir.path(), "src.mp4", "320x240", 3);
    let data = std::fs::read(&src).unwrap();
    let origin = OriginProcess::start(&cfg);
    let api = Client::new(&base, DEV_CREATOR_TOKEN);
    let (id, url) = api.create_video("resumable", &src).await.unwrap();
    let http = client();
    let tus = Tus { client: &http, url };
    let location = tus.create(data.len() as u64, false).await;
    let half = data.len() / 2;
    tus.send_all(&location, &data[..half], 64 * 1024).await;
    origin.kill();

    let origin = OriginProcess::start(&cfg);
    assert_eq!(tus.offset(&location).await, half as u64, "the acknowledged offset survived");
    let r = tus.patch(&location, half as u64, data[half..].to_vec()).await;
    assert_eq!(r.status(), 204);
    let ready = api.wait_ready(&id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(ready["size"], data.len());
    let original = std::fs::read(dir.path().join(format!("data/blobs/originals/{id}"))).unwrap();
    assert!(original == data, "the original is byte-identical");
    drop(origin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_completes_after_the_origin_is_killed_mid_transcode() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, base) = config(dir.path());
    let src = clip(dir.path(), "src.mp4", "854x480", 10);
    let origin = OriginProcess::start(&cfg);
    let api = Client::new(&base, DEV_CREATOR_TOKEN);
    let (id, url) = api.create_video("interrupted", &src).await.unwrap();
    api.upload(&url, &src, origin::client::UploadPlan { chunk: 1 << 20, parallel: 2 }).await.unwrap();
    // Kill once some tasks have finished and others are running.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let v = api.video(&id).await.unwrap();
        if v["state"] == "processing" && v["progress"].as_f64().unwrap_or(0.0) > 0.2 {
            break;
        }
        assert!(v["state"] != "ready", "finished before it could be interrupted; use a longer clip");
        assert!(tokio::time::Instant::now() < deadline, "never started processing: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    origin.kill();

    let origin = OriginProcess::start(&cfg);
    let ready = api.wait_ready(&id, Duration::from_secs(180)).await.unwrap();
    assert!((ready["duration"].as_f64().unwrap() - 10.0).abs() < 0.1, "{ready}");
    let playback = api.playback(&id).await.unwrap();
    let master = playback["master_url"].as_str().unwrap().to_owned();
    let key_token = playback["key_token"].as_str().unwrap().to_owned();
    let (codec, frames) = tokio::task::spawn_blocking(move || probe_frames(&master, &key_token)).await.unwrap();
    assert_eq!((codec.as_str(), frames), ("h264", 300), "the resumed job's output plays whole");
    drop(origin);
}

//! The origin as a set of stateless processes on the shared services (PostgreSQL, Redis, NATS
//! JetStream, S3 on moto), each killed with SIGKILL at the worst moment:
//! - two API nodes take a tus upload's PATCHes in turn; the node being written to dies
//!   mid-PATCH, and the upload finishes on the other one from the acknowledged offset, the
//!   original byte-identical;
//! - the worker process holding the job's tasks dies; another worker finishes them, and the
//!   video becomes `ready` once, with one job and one `ready` event on a node's stream.
//!
//! Skipped loudly when a service is missing outside CI.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::services::{BUCKET, FreshDatabase, Moto, moto_server, service_url, unique};
use common::*;
use origin::config::StorageConfig;
use tokio::io::AsyncWriteExt;

/// The shared services every process of a test uses.
struct Services {
    database: FreshDatabase,
    redis: String,
    nats: String,
    namespace: String,
    s3: Moto,
    dir: tempfile::TempDir,
}

impl Services {
    async fn start(what: &str) -> Option<Self> {
        let (Some(pg), Some(redis), Some(nats), Some(moto)) = (
            service_url("TEST_POSTGRES_URL", what),
            service_url("TEST_REDIS_URL", what),
            service_url("TEST_NATS_URL", what),
            moto_server(what),
        ) else {
            return None;
        };
        let database = FreshDatabase::create(&pg, "ha").await;
        let s3 = Moto::start(&moto).await;
        Some(Self { database, redis, nats, namespace: unique("ha"), s3, dir: tempfile::tempdir().unwrap() })
    }

    /// Writes `{name}.toml` for one process with its own data folder; returns its path and,
    /// for an API node, its base URL.
    fn config(&self, name: &str, workers: usize) -> (PathBuf, String) {
        let port = free_port();
        let path = self.dir.path().join(format!("{name}.toml"));
        let toml = format!(
            r#"data_dir = {data:?}
listen = "127.0.0.1:{port}"
metrics_listen = "off"
database_url = {db:?}
cache_url = {redis:?}
queue_url = {nats:?}
queue_namespace = {ns:?}
task_lease_secs = 3
workers = {workers}
shared_scratch = false
signing_key = "{sign}"
master_key = "{master}"

[storage]
kind = "s3"
endpoint = {endpoint:?}
bucket = {bucket:?}
region = "us-east-1"
access_key = "test"
secret_key = "test"
"#,
            data = self.dir.path().join(name).display().to_string(),
            db = self.database.url,
            redis = self.redis,
            nats = self.nats,
            ns = self.namespace,
            sign = "5".repeat(64),
            master = "6".repeat(64),
            endpoint = self.s3.endpoint(),
            bucket = BUCKET,
        );
        std::fs::write(&path, toml).unwrap();
        (path, format!("http://127.0.0.1:{port}"))
    }

    /// The blob store every process shares, to read what they stored.
    fn blobs(&self) -> opendal::Operator {
        origin::storage::operator(&StorageConfig::S3 {
            endpoint: self.s3.endpoint(),
            bucket: BUCKET.into(),
            region: "us-east-1".into(),
            access_key: "test".into(),
            secret_key: "test".into(),
        })
        .unwrap()
    }
}

/// A port below the ephemeral range, free now.
fn free_port() -> u16 {
    for _ in 0..200 {
        let port = 20_000 + (rand_u16() % 10_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port")
}

fn rand_u16() -> u16 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    (nanos ^ (std::process::id() << 7)) as u16
}

/// An `origin` process, SIGKILLed when dropped.
struct Process {
    child: Child,
}

impl Process {
    /// `origin serve` (an API node), once it listens.
    fn serve(config: &Path) -> Self {
        let mut child = command(config, "serve").stdout(Stdio::piped()).spawn().expect("origin starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("origin listening"), "unexpected first line: {line:?}");
        Self { child }
    }

    /// `origin worker`.
    fn worker(config: &Path) -> Self {
        Self { child: command(config, "worker").stdout(Stdio::null()).spawn().expect("worker starts") }
    }

    /// SIGKILL: no graceful anything.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

fn command(config: &Path, what: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_origin"));
    c.args([what, "--config"]).arg(config).env("ORIGIN_LOG", "warn").stdin(Stdio::null());
    c
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The same upload URL on another node.
fn on(base: &str, location: &str) -> String {
    let path = location.split_once("/v1/").map(|(_, rest)| rest).expect("an upload URL");
    format!("{base}/v1/{path}")
}

async fn create(base: &str, title: &str, size: usize) -> serde_json::Value {
    let r = client()
        .post(format!("{base}/v1/videos"))
        .bearer_auth(origin::config::DEV_CREATOR_TOKEN)
        .json(&serde_json::json!({
            "title": title, "filename": "clip.mp4", "size": size, "content_type": "video/mp4"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn state_of(base: &str, id: &str) -> serde_json::Value {
    let r = client().get(format!("{base}/v1/videos/{id}")).send().await.unwrap();
    r.json().await.unwrap()
}

async fn wait_ready(base: &str, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let v = state_of(base, id).await;
        match v["state"].as_str() {
            Some("ready") => return v,
            Some("failed") => panic!("failed: {v}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "never ready: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts a PATCH of `data` at `offset` to `url` over a raw connection, sends only `sent` bytes
/// of its body, and leaves it hanging there.
async fn hanging_patch(url: &str, offset: u64, data: &[u8], sent: usize) -> tokio::net::TcpStream {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "PATCH /{path} HTTP/1.1\r\nhost: {host}\r\ntus-resumable: 1.0.0\r\n\
         content-type: application/offset+octet-stream\r\nupload-offset: {offset}\r\ncontent-length: {}\r\n\r\n",
        data.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&data[..sent]).await.unwrap();
    stream.flush().await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_alternates_api_nodes_and_survives_the_death_of_the_one_it_writes_to() {
    let Some(services) = Services::start("stateless API nodes").await else { return };
    let (a_config, a) = services.config("api-a", 0);
    let (b_config, b) = services.config("api-b", 0);
    let (w_config, _) = services.config("worker", 1);
    let node_a = Process::serve(&a_config);
    let node_b = Process::serve(&b_config);
    let _worker = Process::worker(&w_config);

    let data = std::fs::read(clip(services.dir.path(), "src.mp4", "320x240", 2)).unwrap();
    let created = create(&a, "two nodes", data.len()).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    let http = client();
    let tus = Tus { client: &http, url: created["upload"]["url"].as_str().unwrap().to_owned() };
    let location = tus.create(data.len() as u64, false).await;

    // Chunks go to A, B, A, B, ...: each node continues what the other acknowledged.
    let chunk = data.len() / 8;
    let mut offset = 0usize;
    for (i, piece) in data[..chunk * 4].chunks(chunk).enumerate() {
        let node = if i % 2 == 0 { &a } else { &b };
        let r = tus.patch(&on(node, &location), offset as u64, piece.to_vec()).await;
        assert_eq!(r.status(), 204, "chunk {i} on {node}: {}", r.text().await.unwrap());
        offset += piece.len();
    }
    // B dies while a PATCH to it is half sent.
    let next = &data[offset..offset + chunk];
    let _hanging = hanging_patch(&on(&b, &location), offset as u64, next, chunk / 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    node_b.kill();

    // A answers with the acknowledged offset: nothing of the unfinished PATCH counts.
    assert_eq!(tus.offset(&on(&a, &location)).await, offset as u64);
    tus.send_all_from(&on(&a, &location), &data, offset, chunk).await;
    let ready = wait_ready(&a, &id).await;
    assert_eq!(ready["size"], data.len());
    let original = services.blobs().read(&origin::storage::original(&id)).await.unwrap().to_vec();
    assert!(original == data, "the original is byte-identical ({} bytes)", original.len());
    let left = services.blobs().list_with("uploads/").recursive(true).await.unwrap();
    assert!(left.iter().all(|e| e.metadata().is_dir()), "no piece left behind: {left:?}");
    drop(node_a);
    services.database.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_tasks_finish_elsewhere_and_the_video_is_ready_once() {
    let Some(services) = Services::start("worker failover").await else { return };
    let (api_config, api) = services.config("api", 0);
    let (w1_config, _) = services.config("worker-1", 1);
    let (w2_config, _) = services.config("worker-2", 1);
    let _node = Process::serve(&api_config);
    let first = Process::worker(&w1_config);

    let data = std::fs::read(clip(services.dir.path(), "src.mp4", "854x480", 8)).unwrap();
    let created = create(&api, "worker dies", data.len()).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    let events = client().get(format!("{api}/v1/videos/{id}/events")).send().await.unwrap();
    let states = tokio::spawn(event_states(events));
    let http = client();
    let tus = Tus { client: &http, url: created["upload"]["url"].as_str().unwrap().to_owned() };
    tus.upload(&data, 1 << 20).await;

    // Only the first worker runs: once progress shows, it holds the job's tasks.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = state_of(&api, &id).await;
        if v["state"] == "processing" && v["progress"].as_f64().unwrap_or(0.0) > 0.1 {
            break;
        }
        assert!(v["state"] != "ready", "finished before the worker could be killed; use a longer clip");
        assert!(Instant::now() < deadline, "never started processing: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill();
    let _second = Process::worker(&w2_config);

    let ready = wait_ready(&api, &id).await;
    assert!((ready["duration"].as_f64().unwrap() - 8.0).abs() < 0.1, "{ready}");
    let states = tokio::time::timeout(Duration::from_secs(30), states).await.expect("the stream ends").unwrap();
    assert_eq!(states.iter().filter(|s| *s == "ready").count(), 1, "one ready event: {states:?}");
    let jobs: i64 = {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(&services.database.url).await.unwrap();
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM jobs WHERE video_id = $1 AND state = 'done'")
            .bind(&id)
            .fetch_one(&mut db)
            .await
            .unwrap();
        n
    };
    assert_eq!(jobs, 1, "one job, done");
    services.database.drop().await;
}

//! Real backing services for tests: a moto S3 server of the test's own, fresh PostgreSQL
//! databases, and the URLs of the machine's Redis and NATS. A missing service skips the test
//! loudly outside CI and fails it in CI.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use origin::storage;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Executor};

/// The bucket moto serves.
pub const BUCKET: &str = "conformance";

/// Says loudly that a test is skipped (or fails it in CI).
pub fn skip(line: &str) {
    assert!(std::env::var_os("CI").is_none(), "CI must run this: {line}");
    // Straight to stderr, not eprintln!: the test harness swallows a passing test's prints.
    std::io::stderr().write_all(format!("{line}\n").as_bytes()).expect("write to stderr");
}

/// A service URL from the environment, or `None` (after a loud skip) when unset.
pub fn service_url(var: &str, what: &str) -> Option<String> {
    let url = std::env::var(var).ok().filter(|v| !v.is_empty());
    if url.is_none() {
        skip(&format!("SKIPPED ({var} unset): {what} not run"));
    }
    url
}

/// A name no other test run uses at the same time.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// A PostgreSQL database of its own, dropped by `drop`.
pub struct FreshDatabase {
    admin: PgConnection,
    name: String,
    /// Its URL.
    pub url: String,
}

impl FreshDatabase {
    /// Creates one next to the database `admin_url` names.
    pub async fn create(admin_url: &str, prefix: &str) -> Self {
        let options = PgConnectOptions::from_str(admin_url).expect("postgres URL");
        let name = unique(prefix);
        let mut admin = options.connect().await.expect("connect to PostgreSQL");
        admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.expect("create database");
        let url = options.database(&name).to_url_lossy().to_string();
        Self { admin, name, url }
    }

    /// Drops it (forcing other connections closed).
    pub async fn drop(mut self) {
        let sql = format!("DROP DATABASE {} WITH (FORCE)", self.name);
        self.admin.execute(sqlx::AssertSqlSafe(sql)).await.expect("drop database");
    }

    /// Runs `suite` with the URL of a fresh database, in its own task so that a failed
    /// assertion still lets the database be dropped; then fails as the suite did.
    #[allow(dead_code)] // not every test binary runs a suite this way
    pub async fn run<F, Fut>(admin_url: &str, prefix: &str, suite: F)
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let database = Self::create(admin_url, prefix).await;
        let outcome = tokio::spawn(suite(database.url.clone())).await;
        database.drop().await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

/// The moto executable, or `None` when `what` must be skipped (a failure in CI).
pub fn moto_server(what: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MOTO_SERVER").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "MOTO_SERVER={} is not a file", path.display());
        return Some(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tools/venv/bin/moto_server");
    if venv.is_file() {
        return Some(venv);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file());
    if on_path.is_none() {
        skip(&format!("SKIPPED (moto_server not found): {what} not run"));
    }
    on_path
}

/// A moto server of our own, killed when dropped, so a failing case does not leave it running.
pub struct Moto {
    child: Child,
    port: u16,
    /// Its output, shown if it never comes up.
    log: tempfile::NamedTempFile,
}

impl Moto {
    pub async fn start(exe: &Path) -> Self {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = Command::new(exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("log file"))
            .stderr(log.reopen().expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", exe.display()));
        let mut server = Self { child, port, log };
        server.wait_until_up().await;
        server.create_bucket().await;
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_until_up(&mut self) {
        storage::init_tls();
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("moto status") {
                panic!("moto_server exited with {status}:\n{}", self.output());
            }
            if client.get(self.endpoint()).timeout(Duration::from_secs(2)).send().await.is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "moto_server did not answer within 60 s:\n{}", self.output());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn create_bucket(&self) {
        let response =
            reqwest::Client::new().put(format!("{}/{BUCKET}", self.endpoint())).send().await.expect("create bucket");
        assert!(response.status().is_success(), "create bucket: {}", response.status());
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now. Another process could take it in the moment before moto
/// binds it; moto then exits and `wait_until_up` says so.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

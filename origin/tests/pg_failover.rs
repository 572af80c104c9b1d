//! PostgreSQL failover under a live upload. The test runs a primary and a synchronous streaming
//! replica of its own (`initdb` and `pg_basebackup` in a temp folder, on free ports; never the
//! machine's own server), gives the origin both hosts, crashes the primary while a PATCH is in
//! flight, promotes the replica, and checks that the origin writes again within a bound, that
//! no acknowledged offset was lost, and that the upload completes once. Skipped loudly when the
//! PostgreSQL programs are missing outside CI; a failure in CI.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::services::skip;
use common::*;
use futures_util::StreamExt;
use origin::Config;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

/// The size of each PATCH.
const CHUNK: usize = 256 * 1024;
/// The upload: sixteen chunks, eight before the crash.
const SIZE: usize = 16 * CHUNK;
/// How long the origin may be unable to write after the primary dies.
const MAX_UNAVAILABLE: Duration = Duration::from_secs(30);
/// The programs the test needs, all from one PostgreSQL installation.
const PROGRAMS: [&str; 4] = ["initdb", "pg_ctl", "pg_basebackup", "postgres"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_survive_a_primary_crash_and_a_promoted_replica() {
    let Some(pg) = Postgres::find() else { return };
    let servers = Servers::start_pair(&pg);
    let (primary, replica) = (&servers.clusters[0], &servers.clusters[1]);
    wait_for_sync_standby(&primary.url()).await;

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_dir(&dir.path().join("data"));
    config.database_url = format!("postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres", primary.port, replica.port);
    // No worker: a completed upload stays `queued`, which is what this test looks for.
    config.workers = 0;
    let origin = TestOrigin::start_with(config).await;
    let data: Vec<u8> = (0..SIZE).map(|i| (i * 31 % 251) as u8).collect();
    let created = origin.create_video("failover", SIZE as u64).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    let tus = origin.tus(&created);
    let location = tus.create(SIZE as u64, false).await;

    // Half the upload, every offset acknowledged.
    let mut acknowledged = 0;
    for chunk in data[..SIZE / 2].chunks(CHUNK) {
        let r = tus.patch(&location, acknowledged, chunk.to_vec()).await;
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
        acknowledged = offset_of(&r);
    }

    // A PATCH whose body is half sent when the primary crashes: the origin has read the upload
    // from the old primary and records the piece after the crash.
    let (resume_body, in_flight) = straddling_patch(&tus, &location, acknowledged, &data);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let crashed_at = Instant::now();
    tokio::task::block_in_place(|| primary.crash());
    tokio::task::block_in_place(|| replica.promote());
    let promoted_after = crashed_at.elapsed();
    let _ = resume_body.send(());
    let straddler = in_flight.await.unwrap().expect("the in-flight PATCH is answered");
    let mut first_write = None;
    match straddler.status().as_u16() {
        204 => {
            acknowledged = offset_of(&straddler);
            first_write = Some(crashed_at.elapsed());
        }
        503 => {}
        status => panic!("the in-flight PATCH got {status}: {}", straddler.text().await.unwrap()),
    }

    // The client's resume: HEAD until the origin answers, then the rest of the upload.
    let offset = head_until_answered(&tus, &location, crashed_at).await;
    let readable_after = crashed_at.elapsed();
    assert!(offset >= acknowledged, "acknowledged offset {acknowledged} lost: the new primary has {offset}");
    assert!(offset <= SIZE as u64, "offset {offset} past the upload's {SIZE} bytes");
    let written_after = send_rest(&tus, &location, &data, offset, crashed_at).await;
    let unavailable = first_write.unwrap_or(written_after);
    eprintln!(
        "PostgreSQL failover: replica promoted {:.1} s after the crash; the origin answered reads after \
         {:.1} s and acknowledged writes after {:.1} s",
        promoted_after.as_secs_f64(),
        readable_after.as_secs_f64(),
        unavailable.as_secs_f64()
    );
    assert!(unavailable < MAX_UNAVAILABLE, "writes were unavailable for {unavailable:?}");

    // The upload completed exactly once, on the new primary, with every byte.
    assert_eq!(tus.offset(&location).await, SIZE as u64);
    let state = state_after_upload(&origin, &id).await;
    assert!(["queued", "processing"].contains(&state.as_str()), "the completed video is {state}");
    assert!(original(&dir.path().join("data"), &id).await == data, "the original differs from what was sent");
    let mut db = PgConnection::connect(&replica.url()).await.unwrap();
    let (jobs,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM jobs WHERE video_id = $1").bind(&id).fetch_one(&mut db).await.unwrap();
    assert_eq!(jobs, 1, "the completed upload queued one job");
    db.close().await.unwrap();
    origin.running.stop().await;
}

/// The video's state once it has left `uploading`.
async fn state_after_upload(origin: &TestOrigin, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = origin.video(id).await["state"].as_str().unwrap_or_default().to_owned();
        if state != "uploading" {
            return state;
        }
        assert!(Instant::now() < deadline, "the video never left uploading");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The original the job assembles from the upload's pieces, once it is there.
async fn original(data_dir: &Path, id: &str) -> Vec<u8> {
    let path = data_dir.join(format!("blobs/originals/{id}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(bytes) = std::fs::read(&path) {
            return bytes;
        }
        assert!(Instant::now() < deadline, "{} never appeared", path.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn offset_of(r: &reqwest::Response) -> u64 {
    r.headers()["upload-offset"].to_str().unwrap().parse().unwrap()
}

/// Starts a PATCH of the chunk at `offset` that sends half its body, then waits for the
/// returned sender before sending the rest.
fn straddling_patch(
    tus: &Tus<'_>,
    location: &str,
    offset: u64,
    data: &[u8],
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>) {
    let chunk = &data[offset as usize..offset as usize + CHUNK];
    let (first, rest) = chunk.split_at(CHUNK / 2);
    let (first, rest) = (Bytes::copy_from_slice(first), Bytes::copy_from_slice(rest));
    let (resume, resumed) = tokio::sync::oneshot::channel::<()>();
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(
        futures_util::stream::once(async move {
            let _ = resumed.await;
            Ok(rest)
        }),
    );
    let request = tus
        .client
        .patch(location)
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("content-length", CHUNK.to_string())
        .header("upload-offset", offset.to_string())
        .body(reqwest::Body::wrap_stream(body));
    (resume, tokio::spawn(request.send()))
}

/// HEADs the upload until the origin answers (503 while no primary is reachable).
async fn head_until_answered(tus: &Tus<'_>, location: &str, since: Instant) -> u64 {
    loop {
        let r = tus.client.head(location).header("tus-resumable", "1.0.0").send().await.unwrap();
        match r.status().as_u16() {
            200 => return offset_of(&r),
            503 => assert!(since.elapsed() < MAX_UNAVAILABLE, "HEAD still 503 after {:?}", since.elapsed()),
            status => panic!("HEAD got {status}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `data` from `offset` to the end, going back to HEAD after a 503. Returns how long
/// after `since` the first PATCH was acknowledged.
async fn send_rest(tus: &Tus<'_>, location: &str, data: &[u8], mut offset: u64, since: Instant) -> Duration {
    let mut first = None;
    while offset < data.len() as u64 {
        let end = (offset as usize + CHUNK).min(data.len());
        let r = tus.patch(location, offset, data[offset as usize..end].to_vec()).await;
        match r.status().as_u16() {
            204 => {
                offset = offset_of(&r);
                first.get_or_insert(since.elapsed());
            }
            503 => {
                assert!(since.elapsed() < MAX_UNAVAILABLE, "PATCH still 503 after {:?}", since.elapsed());
                offset = head_until_answered(tus, location, since).await;
            }
            status => panic!("PATCH at {offset} got {status}: {}", r.text().await.unwrap()),
        }
    }
    first.expect("at least one PATCH after the crash")
}

/// Waits until the primary has a synchronous standby, so that every commit it acknowledges
/// is on the replica too.
async fn wait_for_sync_standby(primary_url: &str) {
    let options = PgConnectOptions::from_str(primary_url).unwrap();
    let mut db = options.connect().await.expect("connect to the test primary");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (sync,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM pg_stat_replication WHERE sync_state = 'sync'")
            .fetch_one(&mut db)
            .await
            .unwrap();
        if sync == 1 {
            return db.close().await.unwrap();
        }
        assert!(Instant::now() < deadline, "the replica never became a synchronous standby");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The PostgreSQL programs, and who runs them.
#[derive(Debug, Clone)]
struct Postgres {
    bin: PathBuf,
    /// When the test runs as root (as in CI): PostgreSQL refuses to, so its programs run as
    /// this OS user (name, uid, gid), owning the clusters' folder.
    as_user: Option<(String, u32, u32)>,
}

impl Postgres {
    /// The installation `pg_config` names, or the one `initdb` on PATH belongs to; `None`
    /// (after a loud skip, or a failure in CI) without one.
    fn find() -> Option<Self> {
        let Some(bin) = bindir() else {
            skip(&format!("SKIPPED ({} not found): PostgreSQL failover not run", PROGRAMS.join(", ")));
            return None;
        };
        let as_user = if output_of("id", &["-u"]).as_deref() == Some("0") {
            let ids = (output_of("id", &["-u", "postgres"]), output_of("id", &["-g", "postgres"]));
            let (Some(uid), Some(gid), Some(_)) = (ids.0, ids.1, on_path("runuser")) else {
                skip("SKIPPED (running as root without a postgres user or runuser): PostgreSQL failover not run");
                return None;
            };
            Some(("postgres".to_owned(), uid.parse().unwrap(), gid.parse().unwrap()))
        } else {
            None
        };
        Some(Self { bin, as_user })
    }

    /// A command running `program` of the installation as the right user.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = match &self.as_user {
            Some((user, ..)) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        };
        command.stdin(Stdio::null());
        command
    }

    /// Hands a folder to the user the servers run as.
    fn give(&self, path: &Path) {
        if let Some((_, uid, gid)) = &self.as_user {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid)).expect("chown the clusters' folder");
        }
    }
}

fn bindir() -> Option<PathBuf> {
    let from_pg_config = output_of("pg_config", &["--bindir"]).map(PathBuf::from);
    let beside_initdb =
        on_path("initdb").and_then(|p| std::fs::canonicalize(p).ok()).and_then(|p| p.parent().map(Path::to_owned));
    [from_pg_config, beside_initdb].into_iter().flatten().find(|dir| PROGRAMS.iter().all(|p| dir.join(p).is_file()))
}

fn on_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

/// A program's trimmed standard output, if it ran and succeeded.
fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Runs a command to completion, failing the test with its output (and a server log) if it fails.
fn run(command: &mut Command, log: Option<&Path>) {
    let out = command.output().unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    if !out.status.success() {
        let log = log.and_then(|l| std::fs::read_to_string(l).ok()).unwrap_or_default();
        panic!(
            "{command:?} failed with {}:\n{}{}\nserver log:\n{log}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// One PostgreSQL cluster of the test's.
#[derive(Debug)]
struct Cluster {
    pg: Postgres,
    data: PathBuf,
    log: PathBuf,
    port: u16,
}

impl Cluster {
    fn new(pg: &Postgres, dir: &Path, name: &str) -> Self {
        Self { pg: pg.clone(), data: dir.join(name), log: dir.join(format!("{name}.log")), port: free_port() }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) {
        run(self.pg.command("pg_ctl").arg("-D").arg(&self.data).args(args), Some(&self.log));
    }

    /// Settings appended to `postgresql.conf` (later lines win).
    fn configure(&self, settings: &str) {
        let mut conf =
            std::fs::OpenOptions::new().append(true).open(self.data.join("postgresql.conf")).expect("postgresql.conf");
        conf.write_all(settings.as_bytes()).expect("write postgresql.conf");
    }

    fn start(&self) {
        let log = self.log.to_str().expect("a UTF-8 temp path");
        self.pg_ctl(&["-l", log, "-w", "-t", "60", "start"]);
    }

    /// Kills the server the way a crash would: no shutdown checkpoint, clients cut off.
    fn crash(&self) {
        self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
    }

    /// Makes a standby the primary, returning once it accepts writes.
    fn promote(&self) {
        self.pg_ctl(&["-w", "-t", "60", "promote"]);
    }
}

/// The test's clusters, stopped when dropped (also when the test panics), before their
/// folder goes.
struct Servers {
    clusters: Vec<Cluster>,
    _dir: tempfile::TempDir,
}

impl Servers {
    /// A primary that commits only once its one standby has the commit too
    /// (`synchronous_standby_names = '*'`), and that standby, streaming from it.
    fn start_pair(pg: &Postgres) -> Self {
        let dir = tempfile::tempdir().unwrap();
        pg.give(dir.path());
        let path = dir.path().to_owned();
        let mut servers = Self { clusters: Vec::new(), _dir: dir };
        let primary = Cluster::new(pg, &path, "primary");
        let mut initdb = pg.command("initdb");
        run(
            initdb.arg("-D").arg(&primary.data).args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]),
            None,
        );
        primary.configure(&format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             wal_level = replica\nmax_wal_senders = 4\n\
             synchronous_commit = on\nsynchronous_standby_names = '*'\n",
            primary.port,
            path.display()
        ));
        servers.start(primary);

        let source = servers.clusters[0].port.to_string();
        let replica = Cluster::new(pg, &path, "replica");
        let mut backup = pg.command("pg_basebackup");
        backup.args(["-h", "127.0.0.1", "-p", &source, "-U", "postgres", "-X", "stream", "-R", "--no-sync", "-D"]);
        run(backup.arg(&replica.data), Some(&servers.clusters[0].log));
        // Its own port; and once promoted it has no standby of its own to wait for (a failover
        // manager such as Patroni rewrites this setting the same way).
        replica.configure(&format!("\nport = {}\nsynchronous_standby_names = ''\n", replica.port));
        servers.start(replica);
        servers
    }

    /// Starts a cluster, owned by the guard even if starting fails.
    fn start(&mut self, cluster: Cluster) {
        self.clusters.push(cluster);
        self.clusters.last().expect("just pushed").start();
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for cluster in self.clusters.iter().rev() {
            // Already stopped (the crashed primary) or never started is fine.
            let _ = cluster
                .pg
                .command("pg_ctl")
                .arg("-D")
                .arg(&cluster.data)
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

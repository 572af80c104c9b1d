//! The NATS queue survives losing any one server: a three-node JetStream cluster of the test's
//! own (`nats-server` from `NATS_SERVER` or `PATH`; skipped loudly when missing, except in CI),
//! the queue replicated three times, and the stream's leader killed while a receiver holds
//! leased messages. Every message published before or during the outage is received and its
//! work finished, none acknowledged before the kill comes back, and the topic ends empty. And a
//! whole transcode on such a cluster finishes, once, when the leader dies mid-job.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, stream};
use common::services::skip;
use origin::queue::nats::NatsQueue;
use origin::queue::{Message, Queue};

const TOPIC: &str = "work";
/// Its consumer's name (the topic has no dot or underscore to escape).
const CONSUMER: &str = "work";
/// The stream `NatsQueue` keeps every topic in.
const STREAM: &str = "ORIGIN";
const REPLICAS: usize = 3;
/// Published before the kill.
const BEFORE: usize = 200;
/// Of those, received and acknowledged before the kill.
const ACKED_BEFORE: usize = 50;
/// Of those, leased by a receiver connected to the leader when it dies; half are acked after
/// the kill, half abandoned (they must come back when their lease runs out).
const HELD: usize = 10;
/// Published after the kill, while the cluster elects new leaders.
const DURING: usize = 50;
/// Short, so abandoned leases come back within the test.
const LEASE: Duration = Duration::from_secs(3);
/// Generous bound on the cluster's election and the client's recovery.
const RECOVERY: Duration = Duration::from_secs(30);
/// Between retries of a call that failed during the outage.
const RETRY: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_survives_killing_the_stream_leader() {
    let Some(exe) = nats_server() else { return };
    let mut cluster = Cluster::start(&exe, REPLICAS);
    // One copy first, then three: connecting with another replica count changes the stream.
    cluster.queue(1).await;
    let queue = Arc::new(cluster.queue(REPLICAS).await);
    let js = jetstream::new(async_nats::connect(cluster.addresses().as_slice()).await.expect("connect to the cluster"));
    assert_eq!(stream_info(&js).await.config.num_replicas, REPLICAS, "the stream was not scaled up");
    wait_for_stream_copies(&js).await;

    let mut log = Log::default();
    for i in 0..BEFORE {
        queue.publish(TOPIC, format!("before-{i}#1").as_bytes()).await.expect("publish before the kill");
    }
    for _ in 0..ACKED_BEFORE {
        let message = queue.receive(TOPIC, LEASE, LEASE).await.expect("receive").expect("a message");
        log.delivered(&message);
        message.lease.ack().await.expect("ack before the kill");
        log.acked(&message);
    }
    assert_consumer_replicated(&js).await;

    let leader = lead_both_from_one_server(&js).await;
    // The holder talks to the doomed server only; it must find the others by itself.
    let holder = NatsQueue::connect(&cluster.url(&leader), REPLICAS).await.expect("connect to the leader");
    let mut held = Vec::new();
    for _ in 0..HELD {
        let message = holder.receive(TOPIC, LEASE, LEASE).await.expect("receive").expect("a message");
        log.delivered(&message);
        held.push(message);
    }

    eprintln!("killing {leader}, leader of the stream and the consumer");
    cluster.kill(&leader);
    let killed = Instant::now();
    let publisher = tokio::spawn(publish_during_outage(queue.clone(), killed));
    // The other half is abandoned, as by a receiver that died with the server: their leases
    // must run out and the messages come back.
    let abandoned = held.split_off(HELD / 2);
    let first_ack = ack_after_outage(&mut log, &held, killed).await;
    drop(abandoned);
    let first_receive = finish_all_work(&mut log, &[&*queue, &holder], killed).await;
    let first_publish = publisher.await.expect("publisher");
    drain(&mut log, &queue).await;
    assert_eq!(log.done.len(), BEFORE + DURING, "every message's work finished");
    assert!(queue.receive(TOPIC, LEASE, Duration::from_millis(200)).await.expect("receive").is_none());
    assert_stream_empties(&js).await;

    let new_leader = stream_info(&js).await.cluster.and_then(|c| c.leader);
    eprintln!(
        "killed {leader}; new stream leader {new_leader:?}; from the kill: first publish {first_publish:?}, \
         first ack {first_ack:?}, first receive {first_receive:?}; {} deliveries of {} stored messages for {} messages, {} errors",
        log.deliveries,
        log.seen.len(),
        BEFORE + DURING,
        log.errors
    );
}

/// A whole upload and transcode on a three-server cluster: the stream's leader is SIGKILLed
/// while the job is processing (jobs, tasks and results all live in that stream), and the
/// video still becomes ready, once, with every frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcode_finishes_when_the_stream_leader_dies() {
    let Some(exe) = nats_server() else { return };
    let mut cluster = Cluster::start(&exe, REPLICAS);
    cluster.queue(REPLICAS).await;
    let js = jetstream::new(async_nats::connect(cluster.addresses().as_slice()).await.expect("connect to the cluster"));
    wait_for_stream_copies(&js).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = origin::Config::for_dir(&dir.path().join("data"));
    config.queue_url = cluster.urls();
    config.queue_replicas = REPLICAS;
    config.task_lease = LEASE;
    let origin = common::TestOrigin::start_with(config).await;
    let data = std::fs::read(common::clip(dir.path(), "src.mp4", "640x360", 6)).unwrap();
    let created = origin.create_video("leader dies", data.len() as u64).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    let events = origin.client.get(origin.url(&format!("/v1/videos/{id}/events"))).send().await.unwrap();
    let states = tokio::spawn(common::event_states(events));
    origin.tus(&created).upload(&data, 1 << 20).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while origin.video(&id).await["state"] != "processing" {
        assert!(Instant::now() < deadline, "never processing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let leader = stream_info(&js).await.cluster.and_then(|c| c.leader).expect("a stream leader");
    cluster.kill(&leader);
    let killed = Instant::now();
    let ready = origin.wait_state(&id, "ready", 240).await;
    eprintln!("killed {leader} while processing; ready {:?} later", killed.elapsed());
    assert!((ready["duration"].as_f64().unwrap() - 6.0).abs() < 0.1, "{ready}");
    let states = tokio::time::timeout(Duration::from_secs(30), states).await.expect("the stream ends").unwrap();
    assert_eq!(states.iter().filter(|s| *s == "ready").count(), 1, "ready once: {states:?}");
    let playback = origin.playback(&id).await;
    let master = playback["master_url"].as_str().unwrap().to_owned();
    let key_token = playback["key_token"].as_str().unwrap().to_owned();
    let (codec, frames) = tokio::task::spawn_blocking(move || common::probe_frames(&master, &key_token)).await.unwrap();
    assert_eq!((codec.as_str(), frames), ("h264", 180), "the output plays whole");
    origin.running.stop().await;
}

/// A lone server cannot keep more than one copy: connecting asking for three says so rather
/// than running with one.
#[tokio::test]
async fn a_lone_server_refuses_more_copies() {
    let Some(exe) = nats_server() else { return };
    let mut server = Cluster::start(&exe, 1);
    server.queue(1).await;
    let refused = NatsQueue::connect(&server.urls(), REPLICAS).await.expect_err("three copies on one server");
    assert!(refused.to_string().contains("the server is not in a cluster"), "{refused}");
}

/// Publishes the outage's messages, retrying each until it is taken; the time from the kill
/// to the first one taken. Each attempt's payload names the attempt, so a copy left by an
/// attempt that failed after the server took it is told apart from a redelivery.
async fn publish_during_outage(queue: Arc<NatsQueue>, killed: Instant) -> Duration {
    let mut first = None;
    for i in 0..DURING {
        let mut attempt = 0;
        retry("publish", || {
            attempt += 1;
            let payload = format!("during-{i}#{attempt}");
            let queue = queue.clone();
            async move { queue.publish(TOPIC, payload.as_bytes()).await }
        })
        .await;
        first.get_or_insert_with(|| killed.elapsed());
    }
    first.expect("published")
}

/// Acks the held messages whose receiver survived the kill, retrying until the new leader
/// takes each; the time from the kill to the first ack taken.
async fn ack_after_outage(log: &mut Log, held: &[Message], killed: Instant) -> Duration {
    let mut first = None;
    for message in held {
        log.errors += retry("ack", || message.lease.ack()).await;
        first.get_or_insert_with(|| killed.elapsed());
        log.acked(message);
    }
    first.expect("acked")
}

/// Receives from every handle in turn, retrying on errors, until every message's work is
/// done; the time from the kill to the first message received.
async fn finish_all_work(log: &mut Log, queues: &[&NatsQueue], killed: Instant) -> Duration {
    let mut first = None;
    for queue in queues.iter().cycle() {
        if log.done.len() == BEFORE + DURING {
            break;
        }
        assert!(killed.elapsed() < 2 * RECOVERY, "work unfinished: {} of {} done", log.done.len(), BEFORE + DURING);
        match queue.receive(TOPIC, LEASE, Duration::from_millis(500)).await {
            Ok(Some(message)) => {
                first.get_or_insert_with(|| killed.elapsed());
                log.delivered(&message);
                // An ack lost in the outage leaves the message to come back; it is done then.
                match message.lease.ack().await {
                    Ok(()) => log.acked(&message),
                    Err(_) => log.errors += 1,
                }
            }
            Ok(None) => {}
            Err(_) => {
                log.errors += 1;
                tokio::time::sleep(RETRY).await;
            }
        }
    }
    first.expect("received")
}

/// Takes what is left: copies of messages whose publish was retried after the server had taken
/// it, or whose ack was lost. Done once nothing comes for longer than a lease.
async fn drain(log: &mut Log, queue: &NatsQueue) {
    let deadline = Instant::now() + RECOVERY;
    loop {
        assert!(Instant::now() < deadline, "the topic never emptied");
        match queue.receive(TOPIC, LEASE, LEASE + Duration::from_secs(1)).await {
            Ok(Some(message)) => {
                log.delivered(&message);
                if message.lease.ack().await.is_ok() {
                    log.acked(&message);
                }
            }
            Ok(None) => return,
            Err(_) => tokio::time::sleep(RETRY).await,
        }
    }
}

/// Retries `call` until it succeeds, within `RECOVERY`; how many times it failed.
async fn retry<F, Fut>(what: &str, mut call: F) -> usize
where
    F: FnMut() -> Fut,
    Fut: Future<Output = origin::Result<()>>,
{
    let started = Instant::now();
    let mut failures = 0;
    loop {
        match call().await {
            Ok(()) => return failures,
            Err(e) => {
                failures += 1;
                assert!(started.elapsed() < RECOVERY, "{what} still failing after {RECOVERY:?}: {e}");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// What happened to each message. Payloads are `name#attempt`: unique per stored message.
#[derive(Default)]
struct Log {
    /// Payloads whose ack the server confirmed: never to be delivered again.
    acked: HashSet<String>,
    /// Names of the messages whose work is done (a copy of theirs was acked).
    done: HashSet<String>,
    /// Deliveries of each payload.
    seen: HashMap<String, u32>,
    deliveries: usize,
    errors: usize,
}

impl Log {
    fn delivered(&mut self, message: &Message) {
        let payload = text(message);
        assert!(!self.acked.contains(&payload), "{payload} delivered again after its ack was confirmed");
        *self.seen.entry(payload).or_default() += 1;
        self.deliveries += 1;
    }

    fn acked(&mut self, message: &Message) {
        let payload = text(message);
        let name = payload.split('#').next().expect("a name").to_owned();
        self.acked.insert(payload);
        self.done.insert(name);
    }
}

fn text(message: &Message) -> String {
    String::from_utf8(message.payload.clone()).expect("utf-8 payload")
}

async fn stream_info(js: &jetstream::Context) -> stream::Info {
    let mut stream = js.get_stream(STREAM).await.expect("the stream");
    stream.info().await.expect("stream info").clone()
}

async fn consumer_info(js: &jetstream::Context) -> jetstream::consumer::Info {
    let stream = js.get_stream(STREAM).await.expect("the stream");
    stream.consumer_info(CONSUMER).await.expect("consumer info")
}

/// Scaling up is done once the stream has a leader again and every copy has caught up.
async fn wait_for_stream_copies(js: &jetstream::Context) {
    let deadline = Instant::now() + RECOVERY;
    loop {
        let cluster = stream_info(js).await.cluster.expect("stream cluster info");
        let copies = cluster.replicas.iter().filter(|peer| peer.current).count();
        if cluster.leader.is_some() && copies == REPLICAS - 1 {
            return;
        }
        assert!(Instant::now() < deadline, "the stream never got {REPLICAS} copies: {cluster:?}");
        tokio::time::sleep(RETRY).await;
    }
}

/// The topic's consumer keeps as many copies as the stream, so acks survive the kill too.
async fn assert_consumer_replicated(js: &jetstream::Context) {
    let info = consumer_info(js).await;
    let peers = info.cluster.expect("consumer cluster info").replicas.len();
    assert_eq!(peers, REPLICAS - 1, "copies of the consumer");
}

/// Moves the consumer's leadership onto the stream's leader, so that killing one server takes
/// both at once (and the held leases' server): the hardest case, in every run rather than by
/// chance. Returns that server's name.
async fn lead_both_from_one_server(js: &jetstream::Context) -> String {
    let deadline = Instant::now() + RECOVERY;
    let step_down = format!("$JS.API.CONSUMER.LEADER.STEPDOWN.{STREAM}.{CONSUMER}");
    loop {
        let stream_leader = stream_info(js).await.cluster.and_then(|c| c.leader);
        // None while an earlier step-down's election runs.
        let consumer_leader =
            async { js.get_stream(STREAM).await.ok()?.consumer_info(CONSUMER).await.ok()?.cluster?.leader };
        match (stream_leader, consumer_leader.await) {
            (Some(stream), Some(consumer)) if stream == consumer => return stream,
            (_, Some(_)) => {
                // A step-down that fails is simply asked for again.
                let _ = js.client().request(step_down.clone(), "".into()).await;
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "the consumer's leadership never reached the stream's leader");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Acked messages leave a work-queue stream; the new leader may take a moment to apply the
/// last acks.
async fn assert_stream_empties(js: &jetstream::Context) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let messages = stream_info(js).await.state.messages;
        if messages == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{messages} messages left in the stream");
        tokio::time::sleep(RETRY).await;
    }
}

/// The `nats-server` executable, or `None` after a loud skip (a failure in CI).
fn nats_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NATS_SERVER").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "NATS_SERVER={} is not a file", path.display());
        return Some(path);
    }
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        skip("SKIPPED (nats-server not found): NATS cluster failover not run");
    }
    found
}

/// One server of the cluster.
struct Node {
    name: String,
    client_port: u16,
    cluster_port: u16,
    child: Option<Child>,
}

/// `nats-server` processes with JetStream, each with its own store, killed when dropped (a
/// failing test included) before their folder goes. More than one form a cluster.
struct Cluster {
    nodes: Vec<Node>,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start(exe: &Path, size: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports = free_ports(2 * size);
        let nodes = (0..size)
            .map(|i| Node {
                name: format!("n{}", i + 1),
                client_port: ports[i],
                cluster_port: ports[size + i],
                child: None,
            })
            .collect();
        let mut cluster = Self { nodes, dir };
        for i in 0..cluster.nodes.len() {
            cluster.spawn(exe, i);
        }
        cluster
    }

    fn spawn(&mut self, exe: &Path, i: usize) {
        let name = self.nodes[i].name.clone();
        let config = self.dir.path().join(format!("{name}.conf"));
        std::fs::write(&config, self.config(i)).expect("write server config");
        let log = std::fs::File::create(self.log_path(&name)).expect("log file");
        let child = Command::new(exe)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", exe.display()));
        self.nodes[i].child = Some(child);
    }

    /// A node's configuration: its ports, its store, and routes to the others.
    fn config(&self, i: usize) -> String {
        let node = &self.nodes[i];
        let store = self.dir.path().join(&node.name);
        let server = format!(
            "server_name: {name}\nlisten: \"127.0.0.1:{client}\"\njetstream {{\n  store_dir: {store:?}\n}}\n",
            name = node.name,
            client = node.client_port,
            store = store.display().to_string(),
        );
        if self.nodes.len() == 1 {
            return server;
        }
        let routes: Vec<String> = self
            .nodes
            .iter()
            .filter(|other| other.name != node.name)
            .map(|other| format!("\"nats-route://127.0.0.1:{}\"", other.cluster_port))
            .collect();
        format!(
            "{server}cluster {{\n  name: origin-test\n  listen: \"127.0.0.1:{cluster}\"\n  routes: [{routes}]\n}}\n",
            cluster = node.cluster_port,
            routes = routes.join(", "),
        )
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// Every server's client URL.
    fn addresses(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.client_port)).collect()
    }

    /// The queue URL naming the whole cluster.
    fn urls(&self) -> String {
        self.addresses().join(",")
    }

    /// The client URL of the server named `name`.
    fn url(&self, name: &str) -> String {
        let node = self.nodes.iter().find(|n| n.name == name).unwrap_or_else(|| panic!("no server {name}"));
        format!("nats://127.0.0.1:{}", node.client_port)
    }

    /// A queue with `replicas` copies, once the cluster can hold them: the servers must have
    /// found each other and elected a JetStream meta leader first.
    async fn queue(&mut self, replicas: usize) -> NatsQueue {
        let deadline = Instant::now() + RECOVERY;
        loop {
            match NatsQueue::connect(&self.urls(), replicas).await {
                Ok(queue) => return queue,
                Err(e) => {
                    self.assert_running();
                    assert!(Instant::now() < deadline, "no queue within {RECOVERY:?}: {e}\n{}", self.logs());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    fn assert_running(&mut self) {
        for i in 0..self.nodes.len() {
            let child = self.nodes[i].child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("server status") {
                panic!("{} exited with {status}:\n{}", self.nodes[i].name, self.logs());
            }
        }
    }

    /// SIGKILLs the server named `name`: no goodbye to its peers or clients.
    fn kill(&mut self, name: &str) {
        let node = self.nodes.iter_mut().find(|n| n.name == name).unwrap_or_else(|| panic!("no server {name}"));
        let mut child = node.child.take().expect("running");
        child.kill().expect("kill");
        child.wait().expect("reap");
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- {}\n{}", n.name, std::fs::read_to_string(self.log_path(&n.name)).unwrap_or_default()))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// `count` distinct ports nothing listens on, below the kernel's ephemeral range (32768 and
/// up) so the ports other sockets get meanwhile never take them before the servers bind them.
fn free_ports(count: usize) -> Vec<u16> {
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").subsec_nanos();
    let start = std::process::id().wrapping_mul(7919).wrapping_add(seed);
    let mut ports = Vec::new();
    for i in 0..4000u32 {
        let port = 20_000 + (start.wrapping_add(i * 7) % 12_000) as u16;
        if !ports.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
        if ports.len() == count {
            return ports;
        }
    }
    panic!("fewer than {count} free ports below the ephemeral range");
}

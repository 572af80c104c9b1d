//! A network test bed: hosts in Linux network namespaces joined by a user-space router
//! (`scripts/netbed.py`) that adds real delay, jitter, loss, partitions and rate limits, and
//! counts the bytes and packets of every directed pair of hosts.
//!
//! The kernels we run on have no netem qdisc, so each host gets a TUN device as `eth0` whose
//! other end is the router's file descriptor; the router holds every IPv4 packet for its link's
//! one-way delay before writing it into the destination's TUN. Needs root, `ip` (iproute2) and
//! Python 3; [`NetBed::require`] skips a test loudly without them, and fails it under CI.
//!
//! Links are symmetric rules matched by the unordered pair of host kinds (`"*"` is any kind)
//! and, when the rule says so, by whether the two hosts share a region; the first matching rule
//! wins, else the fallback. [`Spec::link`] rules come before the built-in table
//! ([`Spec::default_links`], the same as the script's):
//!
//! | pair                     | regions | RTT   | jitter |
//! |--------------------------|---------|-------|--------|
//! | viewer <-> pop           | same    | 5 ms  | 0.5 ms |
//! | creator <-> pop          | same    | 5 ms  | 0.5 ms |
//! | pop <-> shield           | same    | 10 ms | 0.5 ms |
//! | pop <-> origin           | any     | 40 ms | 1 ms   |
//! | shield <-> origin        | any     | 40 ms | 1 ms   |
//! | anything else (fallback) |         | 90 ms | 1 ms   |
//!
//! No loss and no rate limit by default. Each direction waits `rtt_ms / 2` plus a jitter drawn
//! uniformly from `±jitter_ms / 2`, never leaving before the previous packet of the same
//! direction (no reordering). `loss` is per packet and per direction: a round trip survives
//! with `(1 - loss)²`. A rate limit is a per-direction token bucket in the router that drops
//! what would queue more than 100 ms.
//!
//! Namespaces are named `{prefix}{pid}-{host}` (pid of the router); a bed coming up deletes
//! those whose router is dead, so a crashed run leaves nothing behind for long. The router
//! also tears down when the process that started it (the test) dies.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long [`NetBed::up`] waits for the router's `ready.json`.
const READY_LIMIT: Duration = Duration::from_secs(20);
/// How long [`Drop`] waits for the router to tear down after SIGTERM before killing it.
const STOP_LIMIT: Duration = Duration::from_secs(10);
/// Spacing of [`NetBed::probe`]'s UDP pings.
const PROBE_INTERVAL: Duration = Duration::from_millis(2);
/// How long a probe waits for late replies after its last ping.
const PROBE_WAIT: Duration = Duration::from_secs(1);

/// `scripts/netbed.py`, found from this crate's manifest.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/netbed.py")
}

/// One machine of the bed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub region: String,
    /// `origin`, `shield`, `pop`, `viewer`, `creator`, or any word a link rule names.
    pub kind: String,
}

/// What one link does to each packet, in each direction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Link {
    pub rtt_ms: f64,
    pub jitter_ms: f64,
    /// Chance that one packet in one direction is dropped.
    pub loss: f64,
    /// Per-direction rate limit; `None` is unlimited.
    pub rate_mbit: Option<f64>,
}

impl Link {
    /// The fallback for pairs no rule matches: anything cross-region.
    pub const CROSS_REGION: Self = Self { rtt_ms: 90.0, jitter_ms: 1.0, loss: 0.0, rate_mbit: None };

    /// A link of this round-trip time and jitter, lossless and unlimited.
    pub const fn rtt(rtt_ms: f64, jitter_ms: f64) -> Self {
        Self { rtt_ms, jitter_ms, loss: 0.0, rate_mbit: None }
    }

    pub const fn with_loss(self, loss: f64) -> Self {
        Self { loss, ..self }
    }

    pub const fn with_rate_mbit(self, rate_mbit: f64) -> Self {
        Self { rate_mbit: Some(rate_mbit), ..self }
    }

    fn to_json(self) -> Value {
        json!({"rtt_ms": self.rtt_ms, "jitter_ms": self.jitter_ms, "loss": self.loss, "rate_mbit": self.rate_mbit})
    }
}

/// A symmetric link rule: hosts of kinds `{a, b}` (either order, `"*"` is any kind), in the same
/// region (`Some(true)`), in different ones (`Some(false)`) or either (`None`).
#[derive(Clone, Debug, PartialEq)]
pub struct LinkRule {
    pub from_kind: String,
    pub to_kind: String,
    pub same_region: Option<bool>,
    pub link: Link,
}

impl LinkRule {
    pub fn new(from_kind: &str, to_kind: &str, same_region: Option<bool>, link: Link) -> Self {
        Self { from_kind: from_kind.into(), to_kind: to_kind.into(), same_region, link }
    }

    /// The rule as the script reads it.
    pub fn to_json(&self) -> Value {
        let mut rule = self.link.to_json();
        rule["from_kind"] = json!(self.from_kind);
        rule["to_kind"] = json!(self.to_kind);
        rule["same_region"] = json!(self.same_region);
        rule
    }
}

/// The hosts of a bed and the links between them.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Namespace names start with it (lowercase letters, at most 8).
    pub prefix: String,
    pub mtu: u32,
    /// Seeds the router's loss and jitter draws (random when `None`).
    pub seed: Option<u64>,
    pub hosts: Vec<Host>,
    /// Rules added with [`Spec::link`]; they come before `base`.
    pub overrides: Vec<LinkRule>,
    /// The built-in table unless replaced.
    pub base: Vec<LinkRule>,
    /// For pairs no rule matches.
    pub fallback: Link,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            prefix: "nb".into(),
            mtu: 1500,
            seed: None,
            hosts: Vec::new(),
            overrides: Vec::new(),
            base: Self::default_links(),
            fallback: Link::CROSS_REGION,
        }
    }
}

impl Spec {
    /// The built-in table of the module doc; the fallback is [`Link::CROSS_REGION`].
    pub fn default_links() -> Vec<LinkRule> {
        vec![
            LinkRule::new("viewer", "pop", Some(true), Link::rtt(5.0, 0.5)),
            LinkRule::new("creator", "pop", Some(true), Link::rtt(5.0, 0.5)),
            LinkRule::new("pop", "shield", Some(true), Link::rtt(10.0, 0.5)),
            LinkRule::new("pop", "origin", None, Link::rtt(40.0, 1.0)),
            LinkRule::new("shield", "origin", None, Link::rtt(40.0, 1.0)),
        ]
    }

    /// `origin` (region `core`) and per region `r{n}` (from 1): `r{n}-shield` when `shields`,
    /// `r{n}-pop-a`, `r{n}-pop-b`, ... (`pops_per_region` of them), `r{n}-viewer` and
    /// `r{n}-creator`.
    pub fn regions(regions: usize, pops_per_region: usize, shields: bool) -> Self {
        assert!(pops_per_region <= 26, "pops are lettered a to z");
        let mut spec = Self::default().host("origin", "core", "origin");
        for n in 1..=regions {
            let region = format!("r{n}");
            if shields {
                spec = spec.host(&format!("{region}-shield"), &region, "shield");
            }
            for letter in ('a'..='z').take(pops_per_region) {
                spec = spec.host(&format!("{region}-pop-{letter}"), &region, "pop");
            }
            spec = spec.host(&format!("{region}-viewer"), &region, "viewer");
            spec = spec.host(&format!("{region}-creator"), &region, "creator");
        }
        spec
    }

    pub fn host(mut self, name: &str, region: &str, kind: &str) -> Self {
        self.hosts.push(Host { name: name.into(), region: region.into(), kind: kind.into() });
        self
    }

    /// A rule that wins over the built-in table (and over rules added after it).
    pub fn link(mut self, from_kind: &str, to_kind: &str, same_region: Option<bool>, link: Link) -> Self {
        self.overrides.push(LinkRule::new(from_kind, to_kind, same_region, link));
        self
    }

    /// The link of pairs no rule matches.
    pub fn otherwise(mut self, link: Link) -> Self {
        self.fallback = link;
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.into();
        self
    }

    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = mtu;
        self
    }

    /// SPEC.json as `netbed.py run` reads it.
    pub fn to_json(&self) -> Value {
        let hosts: Vec<Value> =
            self.hosts.iter().map(|h| json!({"name": h.name, "region": h.region, "kind": h.kind})).collect();
        let links: Vec<Value> = self.overrides.iter().chain(&self.base).map(LinkRule::to_json).collect();
        json!({"prefix": self.prefix, "mtu": self.mtu, "seed": self.seed, "hosts": hosts, "links": links, "default": self.fallback.to_json()})
    }
}

/// What the router counted for one direction between two hosts since the last reset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PairStats {
    pub from: String,
    pub to: String,
    /// Forwarded IP bytes (headers included).
    pub bytes: u64,
    /// Forwarded packets.
    pub packets: u64,
    /// Packets offered and dropped (loss, partition, rate-limit queue, refused write).
    pub dropped: u64,
}

/// The result of a UDP ping run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Probe {
    pub sent: u64,
    pub received: u64,
    /// `None` when nothing came back.
    pub rtt_p50_ms: Option<f64>,
    pub rtt_p90_ms: Option<f64>,
}

/// One TCP stream read to its end.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transfer {
    pub bytes: u64,
    pub secs: f64,
}

impl Transfer {
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs
    }
}

/// Where a host lives.
#[derive(Clone, Debug)]
struct Placed {
    ns: String,
    addr: Ipv4Addr,
}

/// A running bed; dropping it tears it down (its namespaces are gone afterwards).
#[derive(Debug)]
pub struct NetBed {
    router: Child,
    pid: u32,
    dir: tempfile::TempDir,
    control: PathBuf,
    hosts: BTreeMap<String, Placed>,
}

impl NetBed {
    /// Whether beds can run here (Linux, root, `ip`, Python 3, and a namespace with a TUN in it
    /// can be made and deleted); the reason when not. Checked once per process.
    pub fn available() -> Result<(), String> {
        static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
        CHECK.get_or_init(check_machine).clone()
    }

    /// A bed for `test`, or `None` after a loud `SKIPPED` line when beds cannot run here.
    /// Panics when `CI` is set and beds cannot run (CI must not skip), and when a bed that
    /// should come up does not.
    pub fn require(test: &str, spec: &Spec) -> Option<Self> {
        if let Err(why) = Self::available() {
            assert!(std::env::var_os("CI").is_none(), "CI must run {test}: the network test bed cannot run: {why}");
            // Straight to stderr, not eprintln!: the test harness swallows a passing test's prints.
            let line = format!("\n*** SKIPPED: {test} not run: the network test bed cannot run here: {why} ***\n");
            std::io::stderr().write_all(line.as_bytes()).expect("write to stderr");
            return None;
        }
        Some(Self::up(spec).unwrap_or_else(|e| panic!("{test}: the network test bed did not come up: {e}")))
    }

    /// Starts the router with `spec` and waits until every host is up.
    pub fn up(spec: &Spec) -> Result<Self, String> {
        let dir = tempfile::Builder::new().prefix("netbed").tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let spec_path = dir.path().join("spec.json");
        std::fs::write(&spec_path, spec.to_json().to_string()).map_err(|e| format!("write spec: {e}"))?;
        let log = std::fs::File::create(dir.path().join("netbed.log")).map_err(|e| format!("log file: {e}"))?;
        let router = Command::new("python3")
            .arg(script())
            .args(["run", "--spec"])
            .arg(&spec_path)
            .arg("--state")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("python3 {}: {e}", script().display()))?;
        let pid = router.id();
        let control = dir.path().join("control.sock");
        // From here on, dropping `bed` (an early return included) stops the router.
        let mut bed = Self { router, pid, dir, control, hosts: BTreeMap::new() };
        let ready = bed.wait_ready()?;
        for (name, host) in ready["hosts"].as_object().ok_or("ready.json without hosts")? {
            let ns = host["ns"].as_str().ok_or("host without ns")?.to_owned();
            let addr = host["addr"].as_str().and_then(|a| a.parse().ok()).ok_or("host without addr")?;
            bed.hosts.insert(name.clone(), Placed { ns, addr });
        }
        Ok(bed)
    }

    fn wait_ready(&mut self) -> Result<Value, String> {
        let path = self.dir.path().join("ready.json");
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            // Written to a temporary name and renamed: once it exists it is whole.
            if let Ok(text) = std::fs::read_to_string(&path) {
                return serde_json::from_str(&text).map_err(|e| format!("ready.json: {e}"));
            }
            if let Ok(Some(status)) = self.router.try_wait() {
                return Err(format!("the router exited ({status}) before it was ready: {}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after {READY_LIMIT:?}: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the router wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("netbed.log")).unwrap_or_default().trim().to_owned()
    }

    /// The router's process id (the `{pid}` of its namespace names).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The names of the hosts.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts.keys().map(String::as_str)
    }

    fn placed(&self, host: &str) -> &Placed {
        self.hosts.get(host).unwrap_or_else(|| panic!("no host {host:?} in this bed"))
    }

    /// The host's address (panics for an unknown host).
    pub fn addr(&self, host: &str) -> Ipv4Addr {
        self.placed(host).addr
    }

    /// The host's network namespace (panics for an unknown host).
    pub fn ns(&self, host: &str) -> &str {
        &self.placed(host).ns
    }

    /// `program` to be run inside the host's namespace (`ip netns exec NS program`).
    pub fn command(&self, host: &str, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", self.ns(host), program]);
        command
    }

    /// Drops every packet between `a` and `b`, both ways, until [`NetBed::heal`].
    pub fn partition(&self, a: &str, b: &str) -> Result<(), String> {
        self.request(json!({"cmd": "partition", "a": a, "b": b})).map(drop)
    }

    pub fn heal(&self, a: &str, b: &str) -> Result<(), String> {
        self.request(json!({"cmd": "heal", "a": a, "b": b})).map(drop)
    }

    /// Sets the link between `a` and `b`, both directions (`loss` applies to each).
    pub fn set_link(&self, a: &str, b: &str, rtt_ms: f64, jitter_ms: f64, loss: f64) -> Result<(), String> {
        let request = json!({"cmd": "set", "a": a, "b": b, "rtt_ms": rtt_ms, "jitter_ms": jitter_ms, "loss": loss});
        self.request(request).map(drop)
    }

    /// Limits each direction between `a` and `b` to `rate_mbit` (`None`: unlimited).
    pub fn set_rate(&self, a: &str, b: &str, rate_mbit: Option<f64>) -> Result<(), String> {
        self.request(json!({"cmd": "set", "a": a, "b": b, "rate_mbit": rate_mbit})).map(drop)
    }

    /// The counters of every directed pair that carried or dropped something.
    pub fn stats(&self) -> Result<Vec<PairStats>, String> {
        let answer = self.request(json!({"cmd": "stats"}))?;
        let pairs = answer["pairs"].as_array().ok_or("stats without pairs")?;
        Ok(pairs
            .iter()
            .map(|p| PairStats {
                from: p["from"].as_str().unwrap_or_default().to_owned(),
                to: p["to"].as_str().unwrap_or_default().to_owned(),
                bytes: p["bytes"].as_u64().unwrap_or_default(),
                packets: p["packets"].as_u64().unwrap_or_default(),
                dropped: p["dropped"].as_u64().unwrap_or_default(),
            })
            .collect())
    }

    /// The counters of `from -> to` (zero when it carried nothing).
    pub fn pair_stats(&self, from: &str, to: &str) -> Result<PairStats, String> {
        let found = self.stats()?.into_iter().find(|p| p.from == from && p.to == to);
        Ok(found.unwrap_or_else(|| PairStats { from: from.into(), to: to.into(), ..PairStats::default() }))
    }

    pub fn reset_stats(&self) -> Result<(), String> {
        self.request(json!({"cmd": "reset_stats"})).map(drop)
    }

    /// `count` UDP pings from `from` to an echo server in `to`, 2 ms apart.
    pub fn probe(&self, from: &str, to: &str, count: u32) -> Result<Probe, String> {
        self.probe_every(from, to, count, PROBE_INTERVAL)
    }

    /// `count` UDP pings from `from` to an echo server started in `to` for them.
    pub fn probe_every(&self, from: &str, to: &str, count: u32, interval: Duration) -> Result<Probe, String> {
        let (echo, port) = Helper::start(self.helper(to, "echo").args(["--port", "0"]))?;
        let out = self
            .helper(from, "probe")
            .args(["--to", &self.addr(to).to_string(), "--port", &port.to_string(), "--count", &count.to_string()])
            .args(["--interval-ms", &(interval.as_secs_f64() * 1e3).to_string()])
            .args(["--wait-ms", &PROBE_WAIT.as_millis().to_string()])
            .output()
            .map_err(|e| format!("probe: {e}"))?;
        drop(echo);
        let report = helper_output("probe", &out)?;
        let ms = |key: &str| report[key].as_f64();
        Ok(Probe {
            sent: report["sent"].as_u64().unwrap_or_default(),
            received: report["received"].as_u64().unwrap_or_default(),
            rtt_p50_ms: ms("rtt_ms_p50"),
            rtt_p90_ms: ms("rtt_ms_p90"),
        })
    }

    /// One TCP stream of `bytes` from `sender` to `receiver`, read to its end by the receiver.
    pub fn tcp_transfer(&self, sender: &str, receiver: &str, bytes: u64) -> Result<Transfer, String> {
        let (server, port) =
            Helper::start(self.helper(sender, "tcp-serve").args(["--port", "0", "--bytes", &bytes.to_string()]))?;
        let out = self
            .helper(receiver, "tcp-fetch")
            .args(["--to", &self.addr(sender).to_string(), "--port", &port.to_string()])
            .output()
            .map_err(|e| format!("tcp-fetch: {e}"))?;
        drop(server);
        let report = helper_output("tcp-fetch", &out)?;
        Ok(Transfer {
            bytes: report["bytes"].as_u64().unwrap_or_default(),
            secs: report["secs"].as_f64().unwrap_or(f64::NAN),
        })
    }

    /// `netbed.py SUBCOMMAND --ns NS`, for the host's namespace.
    fn helper(&self, host: &str, subcommand: &str) -> Command {
        let mut command = Command::new("python3");
        command.arg(script()).args([subcommand, "--ns", self.ns(host)]).stdin(Stdio::null());
        command
    }

    /// One request on the control socket, its answer (an error when it says `ok: false`).
    fn request(&self, request: Value) -> Result<Value, String> {
        let failed = |e: std::io::Error| format!("control socket {}: {e}", self.control.display());
        let mut stream = UnixStream::connect(&self.control).map_err(failed)?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(failed)?;
        stream.write_all(format!("{request}\n").as_bytes()).map_err(failed)?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).map_err(failed)?;
        let answer: Value = serde_json::from_str(&line).map_err(|e| format!("control answer {line:?}: {e}"))?;
        if answer["ok"] == json!(true) {
            Ok(answer)
        } else {
            Err(format!("{request}: {}", answer["error"].as_str().unwrap_or("failed")))
        }
    }
}

impl Drop for NetBed {
    fn drop(&mut self) {
        // Not yet reaped, the pid is still the router's (a zombie at worst): safe to signal.
        if matches!(self.router.try_wait(), Ok(None)) {
            let _ = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
            let deadline = Instant::now() + STOP_LIMIT;
            while matches!(self.router.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.router.kill();
            let _ = self.router.wait();
        }
        // A router that died without tearing down (killed) leaves its namespaces: delete them.
        for ns in namespaces_of(self.pid) {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}

/// The network namespaces that exist now (`ip netns list`).
pub fn namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out).lines().filter_map(|l| l.split_whitespace().next()).map(str::to_owned).collect()
}

/// The namespaces of the router with this pid, whatever its prefix.
pub fn namespaces_of(pid: u32) -> Vec<String> {
    let owned = |ns: &str| {
        let rest = ns.trim_start_matches(|c: char| c.is_ascii_lowercase());
        rest.strip_prefix(&pid.to_string()).is_some_and(|r| r.starts_with('-'))
    };
    namespaces().into_iter().filter(|ns| owned(ns)).collect()
}

/// A helper process in a namespace that prints `{"port": N}` once it listens; killed on drop.
struct Helper(Child);

impl Helper {
    fn start(command: &mut Command) -> Result<(Self, u16), String> {
        let mut child = command.stdout(Stdio::piped()).spawn().map_err(|e| format!("python3: {e}"))?;
        let stdout: ChildStdout = child.stdout.take().ok_or("no stdout")?;
        let helper = Self(child);
        let mut line = String::new();
        // The helper either prints its port or exits (closing stdout): this read ends.
        BufReader::new(stdout).read_line(&mut line).map_err(|e| format!("helper: {e}"))?;
        let port =
            serde_json::from_str::<Value>(&line).ok().and_then(|v| v["port"].as_u64()).and_then(|p| p.try_into().ok());
        match port {
            Some(port) => Ok((helper, port)),
            None => Err(format!("helper did not start listening (printed {line:?})")),
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn helper_output(what: &str, out: &std::process::Output) -> Result<Value, String> {
    if !out.status.success() {
        return Err(format!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{what} printed {:?}: {e}", String::from_utf8_lossy(&out.stdout)))
}

fn check_machine() -> Result<(), String> {
    if !cfg!(target_os = "linux") {
        return Err("network namespaces need Linux".into());
    }
    let mut status = String::new();
    std::fs::File::open("/proc/self/status")
        .and_then(|mut f| f.read_to_string(&mut status))
        .map_err(|e| format!("/proc/self/status: {e}"))?;
    // "Uid:\treal\teffective\tsaved\tfs"
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|ids| ids.split_whitespace().nth(1));
    if euid != Some("0") {
        return Err("not root (namespaces and TUN devices need it)".into());
    }
    let runs = |program: &str, arg: &str| Command::new(program).arg(arg).output().is_ok_and(|o| o.status.success());
    if !runs("ip", "-V") {
        return Err("`ip` (iproute2) not found".into());
    }
    if !runs("python3", "--version") {
        return Err("python3 not found".into());
    }
    let out =
        Command::new("python3").arg(script()).arg("check").output().map_err(|e| format!("netbed.py check: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok(())
}

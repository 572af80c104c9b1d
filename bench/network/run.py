#!/usr/bin/env python3
"""The delivery network across real distance: shields and content steering measured with
loadtest's viewers on the network test bed (scripts/netbed.py, needs root).

An origin, two regions each with a shield and two PoPs (r1-pop-a, r1-pop-b, ...) and one
viewer host, every host in its own namespace behind the bed's router (viewer-PoP 5 ms RTT,
PoP-shield 10 ms, PoP/shield-origin 40 ms, across regions 90 ms). The origin runs on embedded
defaults (SQLite, in-process worker) with every rung encoded at upload, steering by the
viewer hosts' addresses; BENCH_TITLES generated clips are ingested through its API once.
Then three configurations, each with fresh PoP caches and the same catalogue and seeds:

  (a) PoPs straight to the origin, no shields; viewers ignore steering (--no-steering)
  (b) PoPs ask their region's shield first; viewers ignore steering
  (c) as (b), viewers follow steering, and r1-pop-a is SIGKILLed halfway through the run
  (d) only with --configs ...,d: as (c) without steering, for comparison

In each, four `loadtest run` processes start at once (bench/network/scenario.toml: the
long-tail scenario, 90 s), one per PoP: from each region's viewer host, one against pop-a and
one against pop-b (seeds 7, 8, 9, 10 in every configuration).

Reported per configuration: startup p50/p95 and stall ratio (every viewing of the four
processes merged, from `loadtest run --sessions`), failed viewings, failovers and new grants;
from the router's byte counts, origin egress (bytes from the origin host to any host, and the
part to PoPs and shields), its share of the bytes PoPs delivered to viewer hosts, and
cross-region bytes (hosts of r1 and r2 talking; the origin excluded); beside them, the object
bytes the origin itself counted (`origin_served_bytes_total`: no heartbeat answers, no API).
Prints a table, whether the issue's targets were met (shields halve origin egress against
(a); with a PoP killed the stall ratio rises by under one point against (b)), and writes
bench/results/network-DATE.json.

    make bench-network                       # = release origin, edge and loadtest, then this
    bench/network/run.py --bin-dir target/debug --seconds 60

Options (or environment): --bin-dir (BENCH_BIN_DIR, target/release), --seconds
(BENCH_SECONDS, 90), --viewers per process (BENCH_VIEWERS, 25), --titles (BENCH_TITLES, 16),
--clip-seconds (BENCH_CLIP_SECONDS, 8), --configs (a,b,c; d too on request), --keep (leave the
scratch folder with logs, reports and caches), BENCH_DIR (an empty folder to use as scratch,
kept; default a temporary folder).
Everything it starts is stopped, and the bed torn down, on exit and on Ctrl-C.
"""
import argparse
import concurrent.futures
import ctypes
import datetime
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NETBED = os.path.join(ROOT, "scripts", "netbed.py")
SCENARIO = os.path.join(ROOT, "bench", "network", "scenario.toml")
REGIONS = ("r1", "r2")
ORIGIN_PORT, POP_PORT, METRICS_PORT = 8080, 8081, 9464
STEERING_TTL = 4
# Heartbeats every second: a killed PoP leaves steering after 2 x 1 s + 1 s.
HEARTBEAT = "1s"
SEEDS = {("r1", "a"): 7, ("r1", "b"): 8, ("r2", "a"): 9, ("r2", "b"): 10}
CONFIGS = {
    "a": {"title": "(a) no shields", "shields": False, "steering": False, "kill": None},
    "b": {"title": "(b) shields", "shields": True, "steering": False, "kill": None},
    "c": {"title": "(c) shields, steering, r1-pop-a killed", "shields": True, "steering": True, "kill": "r1-pop-a"},
    # Not run by default: what (c) would be without steering (--configs a,b,c,d).
    "d": {"title": "(d) shields, no steering, r1-pop-a killed", "shields": True, "steering": False,
          "kill": "r1-pop-a"},
}
# Viewings that start this early meet empty caches all at once (the warm population starts
# within the first second): startup is also reported without them.
WARM_AFTER = 10


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def die_with_parent():
    """Runs in a child before exec: it gets SIGTERM if this script dies without cleaning up
    (kept across `ip netns exec`, which execs in place)."""
    os.setsid()
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Bed:
    """scripts/netbed.py run, in the foreground of a child process."""

    def __init__(self, scratch):
        self.state = os.path.join(scratch, "bed")
        spec = {"prefix": "bn", "seed": 7, "hosts": [{"name": "origin", "region": "core", "kind": "origin"}]}
        for r in REGIONS:
            spec["hosts"] += [{"name": f"{r}-shield", "region": r, "kind": "shield"},
                              {"name": f"{r}-pop-a", "region": r, "kind": "pop"},
                              {"name": f"{r}-pop-b", "region": r, "kind": "pop"},
                              {"name": f"{r}-viewer", "region": r, "kind": "viewer"}]
        path = os.path.join(scratch, "bed.json")
        with open(path, "w") as f:
            json.dump(spec, f)
        self.log = open(os.path.join(scratch, "logs", "bed.log"), "w")
        self.proc = subprocess.Popen([sys.executable, NETBED, "run", "--spec", path, "--state", self.state],
                                     stdout=self.log, stderr=self.log, preexec_fn=die_with_parent)
        ready = os.path.join(self.state, "ready.json")
        deadline = time.monotonic() + 30
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the bed did not come up; see {self.log.name}")
            time.sleep(0.1)
        with open(ready) as f:
            self.info = json.load(f)
        self.hosts = self.info["hosts"]

    def ns(self, host):
        return self.hosts[host]["ns"]

    def addr(self, host):
        return self.hosts[host]["addr"]

    def region(self, host):
        return self.hosts[host]["region"]

    def control(self, command):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.info["control"])
            s.sendall(json.dumps(command).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
        answer = json.loads(data)
        if not answer.get("ok"):
            raise RuntimeError(f"bed: {answer}")
        return answer

    def stats(self):
        return self.control({"cmd": "stats"})["pairs"]

    def reset_stats(self):
        self.control({"cmd": "reset_stats"})

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Bench:
    def __init__(self, args, scratch):
        self.args, self.scratch = args, scratch
        self.bins = {name: os.path.join(args.bin_dir, name) for name in ("origin", "edge", "loadtest")}
        self.procs = {}  # name -> Popen, everything long-running
        self.bed = None
        self.videos = []

    # -- processes

    def run_in(self, host, cmd):
        return ["ip", "netns", "exec", self.bed.ns(host), *cmd]

    def spawn(self, name, host, cmd, env=None):
        out = open(os.path.join(self.scratch, "logs", f"{name}.log"), "w")
        proc = subprocess.Popen(self.run_in(host, cmd), stdout=out, stderr=out, preexec_fn=die_with_parent,
                                env=dict(os.environ, ORIGIN_LOG="warn", EDGE_LOG="warn", **(env or {})))
        self.procs[name] = proc
        return proc

    def stop(self, name, sig=signal.SIGTERM, wait=15):
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self):
        # Viewers first, then PoPs, then the origin: nothing is left asking a stopped server.
        for prefix in ("loadtest", "edge", "origin"):
            for name in [n for n in self.procs if n.startswith(prefix)]:
                self.stop(name)
        if self.bed:
            self.bed.stop()

    def curl(self, host, url, timeout=5):
        """GET url from inside host's namespace: (status, body)."""
        done = subprocess.run(self.run_in(host, ["curl", "-s", "--max-time", str(timeout), "-o", "-", "-w",
                                                 "\n%{http_code}", url]), capture_output=True, text=True)
        body, _, status = done.stdout.rpartition("\n")
        return int(status or 0), body

    def wait_http(self, host, url, what, limit=60):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.curl(host, url, timeout=2)[0] == 200:
                return
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    sys.exit(f"{name} exited ({proc.returncode}); see {self.scratch}/logs/{name}.log")
            time.sleep(0.2)
        sys.exit(f"{what} did not answer {url} within {limit} s")

    # -- the platform

    def url(self, host, port=POP_PORT):
        return f"http://{self.bed.addr(host)}:{port}"

    def pops(self):
        return [f"{r}-pop-{x}" for r in REGIONS for x in "ab"]

    def start_origin(self):
        root = os.path.join(self.scratch, "origin")
        os.makedirs(root)
        self.origin_toml = os.path.join(root, "origin.toml")
        origin = self.url("origin", ORIGIN_PORT)
        regions = ", ".join(
            f'{{ name = "{r}", networks = ["{self.bed.addr(f"{r}-viewer")}/32"] }}' for r in REGIONS)
        with open(self.origin_toml, "w") as f:
            f.write(f'data_dir = "{root}/data"\nlisten = "{self.bed.addr("origin")}:{ORIGIN_PORT}"\n'
                    f'public_url = "{origin}"\nkey_url = "{origin}"\nupload_url = "{origin}"\n'
                    f'playback_url = "{self.url("r1-pop-a")}"\n'
                    f'metrics_listen = "{self.bed.addr("origin")}:{METRICS_PORT}"\n'
                    # Every rung at upload: no encode during the runs, the same catalogue for all three.
                    f'[on_demand]\nenabled = false\n'
                    f'[steering]\nttl_secs = {STEERING_TTL}\nregions = [{regions}]\n')
        self.credentials = {}
        for host in [*self.pops(), *(f"{r}-shield" for r in REGIONS)]:
            path = os.path.join(root, f"{host}.credential")
            subprocess.run([self.bins["origin"], "pops", "enrol", host, "--region", self.bed.region(host),
                            "--config", self.origin_toml, "--out", path], check=True, capture_output=True)
            self.credentials[host] = path
        self.public_keys = subprocess.run([self.bins["origin"], "keys", "pop-toml", "--config", self.origin_toml],
                                          check=True, capture_output=True, text=True).stdout
        self.spawn("origin", "origin", [self.bins["origin"], "serve", "--config", self.origin_toml])
        self.wait_http("origin", f"{origin}/healthz", "the origin")

    def ingest(self):
        clips = os.path.join(self.scratch, "clips")
        os.makedirs(clips)
        n, seconds = self.args.titles, self.args.clip_seconds
        log(f"making {n} clips of {seconds} s, 640x360")

        def make(i):
            path = os.path.join(clips, f"clip-{i:02d}.mp4")
            subprocess.run(["ffmpeg", "-y", "-hide_banner", "-loglevel", "error",
                            "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=30:duration={seconds}",
                            "-f", "lavfi", "-i", f"sine=frequency={220 + 20 * i}:sample_rate=48000:duration={seconds}",
                            "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-pix_fmt", "yuv420p",
                            "-c:a", "aac", "-b:a", "128k", "-shortest", path], check=True)
            return path

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            paths = list(pool.map(make, range(n)))
        log(f"ingesting {n} clips through the origin's API")
        started = time.monotonic()
        # Two at a time, from the origin's own host (no PoP runs yet: uploads go to the origin).
        pending, running = list(enumerate(paths)), []
        while pending or running:
            while pending and len(running) < 2:
                i, path = pending.pop(0)
                out = open(os.path.join(self.scratch, "logs", f"ingest-{i:02d}.log"), "w+")
                cmd = self.run_in("origin", [self.bins["origin"], "ingest", path, "--url",
                                             self.url("origin", ORIGIN_PORT), "--title", f"network {i:02d}"])
                running.append((i, subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                                    preexec_fn=die_with_parent), out))
            time.sleep(0.2)
            for item in [r for r in running if r[1].poll() is not None]:
                running.remove(item)
                i, proc, out = item
                out.seek(0)
                text = out.read()
                found = re.search(r"video (\w+): ready", text)
                if proc.returncode != 0 or not found:
                    sys.exit(f"ingest of clip {i} failed:\n{text}")
                self.videos.append(found.group(1))
        self.ingest_seconds = time.monotonic() - started
        log(f"{n} videos ready in {self.ingest_seconds:.0f} s")

    def pop_toml(self, config, host, shields):
        addr = self.bed.addr(host)
        region = self.bed.region(host)
        shield = host.endswith("-shield")
        cache = os.path.join(self.scratch, config, host)
        os.makedirs(cache)
        parents = f'parents = ["{self.url(f"{region}-shield")}"]\n' if shields and not shield else ""
        # Shields have no public URL: steering never sends a viewer to one.
        public = "" if shield else f'public_url = "{self.url(host)}"\n'
        path = os.path.join(self.scratch, config, f"{host}.toml")
        with open(path, "w") as f:
            f.write(f'[pop]\nid = "{host}"\nregion = "{region}"\n{public}'
                    f'[listen]\nhttps = "{addr}:8443"\nh3 = false\nhttp = "{addr}:{POP_PORT}"\n'
                    f'metrics = "{addr}:{METRICS_PORT}"\n'
                    f'[origin]\nurls = ["{self.url("origin", ORIGIN_PORT)}"]\n'
                    f'credential_file = "{self.credentials[host]}"\nconnect_timeout_ms = 1000\n{parents}'
                    f'{self.public_keys}\n'
                    f'[cache]\npath = "{cache}"\nmemory = "256MiB"\ndisk = "1GiB"\n'
                    # No prefetch: the origin's egress is what the viewers asked for.
                    f'[prefetch]\nenabled = false\nheartbeat = "{HEARTBEAT}"\n')
        return path

    def start_edges(self, config, shields):
        hosts = [*((f"{r}-shield" for r in REGIONS) if shields else ()), *self.pops()]
        for host in hosts:
            self.spawn(f"edge-{host}", host, [self.bins["edge"], "serve", "--config",
                                                  self.pop_toml(config, host, shields)])
        for host in hosts:
            self.wait_http(host, f"http://{self.bed.addr(host)}:{METRICS_PORT}/healthz", host)
        # Until the origin steers each region's viewers to all four PoPs (each has beaten).
        deadline = time.monotonic() + 30
        for region in REGIONS:
            while True:
                status, body = self.curl(f"{region}-viewer", f"{self.url('origin', ORIGIN_PORT)}/v1/steering/"
                                                             f"{self.videos[0]}")
                known = json.loads(body).get("PATHWAY-PRIORITY", []) if status == 200 else []
                if set(self.pops()) <= set(known):
                    if not known[0].startswith(region):
                        sys.exit(f"{region}'s viewers are steered to {known[0]} first: {body}")
                    break
                if time.monotonic() > deadline:
                    sys.exit(f"the origin does not steer {region} to every PoP: {status} {body}")
                time.sleep(0.3)
        return hosts

    # -- one configuration

    def configuration(self, name):
        c = CONFIGS[name]
        log(f"{c['title']}: starting PoPs{' and shields' if c['shields'] else ''} with empty caches")
        edges = self.start_edges(name, c["shields"])
        # What flows from the origin with nobody watching (heartbeat answers), for the record.
        self.bed.reset_stats()
        time.sleep(5)
        idle = sum(p["bytes"] for p in self.bed.stats() if p["from"] == "origin") / 5
        out = os.path.join(self.scratch, name, "viewers")
        objects_before = self.served_bytes()
        self.bed.reset_stats()
        started = time.monotonic()
        runs = {}
        for (region, letter), seed in SEEDS.items():
            pop = f"{region}-pop-{letter}"
            report = os.path.join(out, pop)
            os.makedirs(report)
            cmd = [self.bins["loadtest"], "run", "--target", self.url(pop), "--origin",
                   self.url("origin", ORIGIN_PORT), "--scenario", SCENARIO, "--duration", f"{self.args.seconds}s",
                   "--viewers", str(self.args.viewers), "--seed", str(seed), "--quiet", "--report", report,
                   "--sessions", os.path.join(report, "sessions.jsonl")]
            if not c["steering"]:
                cmd.append("--no-steering")
            runs[pop] = (report, self.spawn(f"loadtest-{name}-{pop}", f"{region}-viewer", cmd))
        log(f"{c['title']}: 4 x {self.args.viewers} viewers for {self.args.seconds} s")
        killed_at = None
        if c["kill"]:
            time.sleep(max(0.0, started + self.args.seconds / 2 - time.monotonic()))
            self.stop(f"edge-{c['kill']}", signal.SIGKILL)
            killed_at = time.monotonic() - started
            log(f"{c['kill']} killed (SIGKILL) at {killed_at:.1f} s")
        for pop, (_, proc) in runs.items():
            try:
                proc.wait(timeout=self.args.seconds + 120)
            except subprocess.TimeoutExpired:
                sys.exit(f"loadtest against {pop} did not finish")
            self.procs.pop(f"loadtest-{name}-{pop}")
            if proc.returncode != 0:
                sys.exit(f"loadtest against {pop} failed; see {self.scratch}/logs/loadtest-{name}-{pop}.log")
        pairs = self.bed.stats()
        objects = self.served_bytes() - objects_before
        for host in edges:
            self.stop(f"edge-{host}")
        return self.figures(runs, pairs, idle, objects, killed_at)

    def served_bytes(self):
        """The origin's own count of object bytes served (segments, playlists, init
        sections, keys): its egress without heartbeat answers and API JSON."""
        status, page = self.curl("origin", f"http://{self.bed.addr('origin')}:{METRICS_PORT}/metrics")
        if status != 200:
            sys.exit(f"the origin's metrics page answered {status}")
        return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
                   if line.startswith("origin_served_bytes_total"))

    def figures(self, runs, pairs, idle, objects, killed_at):
        kind = {h: v["kind"] for h, v in self.bed.hosts.items()}
        region = {h: v["region"] for h, v in self.bed.hosts.items()}
        from_origin = [p for p in pairs if p["from"] == "origin"]
        egress = sum(p["bytes"] for p in from_origin)
        to_tiers = sum(p["bytes"] for p in from_origin if kind[p["to"]] in ("pop", "shield"))
        delivered = sum(p["bytes"] for p in pairs
                        if kind[p["from"]] in ("pop", "shield") and kind[p["to"]] == "viewer")
        cross = [p for p in pairs if region[p["from"]] in REGIONS and region[p["to"]] in REGIONS
                 and region[p["from"]] != region[p["to"]]]
        sessions, reports = [], {}
        for pop, (report, _) in runs.items():
            with open(os.path.join(report, "sessions.jsonl")) as f:
                sessions += [json.loads(line) for line in f if line.strip()]
            with open(os.path.join(report, "report.json")) as f:
                reports[pop] = json.load(f)
        startups = sorted(s["startup"] for s in sessions if s.get("startup") is not None)
        warm = sorted(s["startup"] for s in sessions if s.get("startup") is not None and s["started"] >= WARM_AFTER)
        after_kill = [s for s in sessions if killed_at is not None and killed_at <= s["started"] < killed_at + 10]
        after_kill_startups = sorted(s["startup"] for s in after_kill if s.get("startup") is not None)
        paced = [s for s in sessions if s["paced"]]
        played = sum(s["played"] for s in paced)
        stalled = sum(s["stalled"] for s in paced)
        steering = [r.get("steering") or {} for r in reports.values()]
        servers = {}
        for r in reports.values():
            for host, s in r.get("servers", {}).items():
                servers[host] = servers.get(host, 0) + s["bytes"]
        return {
            "viewings": len(sessions),
            "failed_viewings": sum(1 for s in sessions if s.get("failed")),
            "failed_by_kind": count(s["failed"] for s in sessions if s.get("failed")),
            "startup_ms": {"count": len(startups), "p50": nearest_rank(startups, 0.50) * 1000,
                           "p95": nearest_rank(startups, 0.95) * 1000},
            "startup_ms_after_warm_up": {"count": len(warm), "p50": nearest_rank(warm, 0.50) * 1000,
                                         "p95": nearest_rank(warm, 0.95) * 1000, "started_after_s": WARM_AFTER},
            "viewings_within_10s_of_the_kill": None if killed_at is None else {
                "count": len(after_kill), "failed": sum(1 for s in after_kill if s.get("failed")),
                "startup_p50_ms": nearest_rank(after_kill_startups, 0.50) * 1000,
                "startup_p95_ms": nearest_rank(after_kill_startups, 0.95) * 1000},
            "stall_ratio": stalled / (played + stalled) if played + stalled > 0 else 0.0,
            "stalls": sum(s["stalls"] for s in paced),
            "played_seconds": played,
            "stalled_seconds": stalled,
            "requests": sum(r["totals"]["requests"] for r in reports.values()),
            "request_errors": sum(r["totals"]["errors"] for r in reports.values()),
            "errors_by_kind": merge(r["totals"]["errors_by_kind"] for r in reports.values()),
            "failovers": sum(s.get("failovers", 0) for s in steering),
            "pathway_switches": sum(s.get("switches", 0) for s in steering),
            "steering_manifests": sum(s.get("manifests", 0) for s in steering),
            "new_grants": sum(s.get("regrants", 0) for s in steering),
            "origin_egress_bytes": egress,
            "origin_to_pops_and_shields_bytes": to_tiers,
            "origin_to_viewers_bytes": egress - to_tiers,
            "origin_idle_bytes_per_second": idle,
            "origin_object_bytes": objects,
            "delivered_to_viewers_bytes": delivered,
            "origin_share": egress / delivered if delivered else None,
            "cross_region_bytes": sum(p["bytes"] for p in cross),
            "cross_region_pairs": {f"{p['from']}>{p['to']}": p["bytes"] for p in cross},
            "viewer_bytes_by_server": {host_name(self.bed, h): b for h, b in sorted(servers.items())},
            "killed_at_seconds": killed_at,
            "router_pairs": pairs,
        }


def count(items):
    out = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out


def merge(maps):
    out = {}
    for m in maps:
        for k, v in m.items():
            out[k] = out.get(k, 0) + v
    return out


def nearest_rank(values, p):
    """loadtest's percentile (nearest rank, of sorted `values`): a value that was measured."""
    if not values:
        return 0.0
    return values[min(len(values), max(1, math.ceil(p * len(values)))) - 1]


def host_name(bed, authority):
    """The bed host behind `addr:port`, else the authority itself."""
    addr = authority.split(":")[0]
    return next((h for h, v in bed.hosts.items() if v["addr"] == addr), authority)


def mb(n):
    return f"{n / 1e6:.1f} MB"


def table(results):
    names = list(results)
    rows = [
        ("viewings (failed)", lambda r: f"{r['viewings']} ({r['failed_viewings']})"),
        ("startup p50 / p95", lambda r: f"{r['startup_ms']['p50']:.0f} / {r['startup_ms']['p95']:.0f} ms"),
        (f"startup p50 / p95, viewings from {WARM_AFTER} s on",
         lambda r: f"{r['startup_ms_after_warm_up']['p50']:.0f} / {r['startup_ms_after_warm_up']['p95']:.0f} ms"),
        ("stall ratio", lambda r: f"{r['stall_ratio'] * 100:.2f} %"),
        ("origin egress (to PoPs, shields)", lambda r: f"{mb(r['origin_egress_bytes'])} "
                                                        f"({mb(r['origin_to_pops_and_shields_bytes'])})"),
        ("origin objects served (its own counter)", lambda r: mb(r["origin_object_bytes"])),
        ("origin egress with nobody watching", lambda r: f"{r['origin_idle_bytes_per_second'] / 1e3:.1f} kB/s"),
        ("delivered to viewers", lambda r: mb(r["delivered_to_viewers_bytes"])),
        ("origin share of delivered", lambda r: f"{(r['origin_share'] or 0) * 100:.1f} %"),
        ("cross-region bytes", lambda r: mb(r["cross_region_bytes"])),
        ("failovers", lambda r: str(r["failovers"])),
        ("viewings started in the 10 s after the kill (failed)",
         lambda r: "" if r["viewings_within_10s_of_the_kill"] is None else
         f"{r['viewings_within_10s_of_the_kill']['count']} ({r['viewings_within_10s_of_the_kill']['failed']})"),
        ("new grants (playlist at a dead PoP)", lambda r: str(r["new_grants"])),
    ]
    lines = ["| | " + " | ".join(CONFIGS[n]["title"] for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(results[n]) for n in names) + " |")
    return "\n".join(lines)


def targets(results):
    out = {}
    if "a" in results and "b" in results:
        a, b = results["a"], results["b"]
        ratio = b["origin_egress_bytes"] / a["origin_egress_bytes"] if a["origin_egress_bytes"] else None
        objects = b["origin_object_bytes"] / a["origin_object_bytes"] if a["origin_object_bytes"] else None
        out["shields_halve_origin_egress"] = {
            "target": "origin egress with shields <= 0.5 x without", "ratio": ratio,
            "met": ratio is not None and ratio <= 0.5,
            # The same with only the objects the origin served (no heartbeat answers, no API).
            "objects_ratio": objects, "objects_met": objects is not None and objects <= 0.5}
    if "b" in results and "c" in results:
        # The target: with steering, a PoP's death costs under a point of stalls.
        rise = (results["c"]["stall_ratio"] - results["b"]["stall_ratio"]) * 100
        out["pop_killed_stall_rise"] = {"target": "stall ratio with r1-pop-a killed < (b) + 1 point",
                                        "rise_points": rise, "met": rise < 1.0}
    return out


def write_result(fields):
    """bench/results/network-DATE.json with the date, core count and commit, as the other
    benchmarks write theirs."""
    out = {"date": datetime.date.today().isoformat(), "cores": os.cpu_count(),
           "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip(), **fields}
    path = os.path.join(ROOT, "bench", "results", f"network-{out['date']}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
    print(f"\nwrote {os.path.relpath(path, ROOT)}")


def arguments():
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin-dir", default=env("BENCH_BIN_DIR", os.path.join(ROOT, "target", "release")),
                   help="where origin, edge and loadtest are (default target/release)")
    p.add_argument("--seconds", type=int, default=int(env("BENCH_SECONDS", "90")), help="each run's length")
    p.add_argument("--viewers", type=int, default=int(env("BENCH_VIEWERS", "25")),
                   help="viewers of each of the four loadtest processes")
    p.add_argument("--titles", type=int, default=int(env("BENCH_TITLES", "16")), help="clips in the catalogue")
    p.add_argument("--clip-seconds", type=int, default=int(env("BENCH_CLIP_SECONDS", "8")))
    p.add_argument("--configs", default="a,b,c", help="which configurations, in order (default a,b,c; d: as c "
                                                      "without steering)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, reports, caches)")
    args = p.parse_args()
    args.bin_dir = os.path.abspath(args.bin_dir)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if not set(args.configs) <= set(CONFIGS):
        p.error(f"--configs: pick from {','.join(CONFIGS)}")
    return args


def shown(path):
    """A path relative to the repository when it is inside it."""
    relative = os.path.relpath(path, ROOT)
    return path if relative.startswith("..") else relative


def interrupted(*_):
    raise KeyboardInterrupt


def main():
    args = arguments()
    if os.geteuid() != 0:
        sys.exit("the network bed needs root (namespaces and TUN devices)")
    for name in ("origin", "edge", "loadtest"):
        if not os.access(os.path.join(args.bin_dir, name), os.X_OK):
            sys.exit(f"{args.bin_dir}/{name} is missing: cargo build --release -p origin -p edge -p loadtest")
    for tool in ("ffmpeg", "curl", "ip"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed")
    check = subprocess.run([sys.executable, NETBED, "check"], capture_output=True, text=True)
    if check.returncode != 0:
        sys.exit(f"this machine cannot run the bed: {check.stderr.strip()}")
    # SIGINT and SIGTERM end the run through the clean-up below (SIGINT explicitly: a shell
    # that starts this in the background has it ignored).
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    # BENCH_DIR (an empty or new folder) is kept; a folder of our own is removed unless --keep.
    given = os.environ.get("BENCH_DIR")
    scratch = given or tempfile.mkdtemp(prefix="bench-network-")
    if given and os.path.isdir(given) and os.listdir(given):
        sys.exit(f"BENCH_DIR {given} is not empty")
    os.makedirs(os.path.join(scratch, "logs"), exist_ok=True)
    log(f"scratch: {scratch}; binaries: {args.bin_dir}")
    bench = Bench(args, scratch)
    results = {}
    try:
        bench.bed = Bed(scratch)
        bench.start_origin()
        bench.ingest()
        for name in args.configs:
            results[name] = bench.configuration(name)
            r = results[name]
            log(f"{CONFIGS[name]['title']}: {r['viewings']} viewings, stall {r['stall_ratio'] * 100:.2f} %, "
                f"origin egress {mb(r['origin_egress_bytes'])}, failovers {r['failovers']}")
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        raise SystemExit(130)
    finally:
        bench.stop_all()
        if args.keep or given:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    print(f"\n{args.titles} clips of {args.clip_seconds} s (640x360), 4 loadtest processes x {args.viewers} viewers "
          f"for {args.seconds} s, binaries in {shown(args.bin_dir)}\n")
    print(table(results))
    met = targets(results)
    print()
    verdict = {True: "met", False: "NOT met"}
    for key, t in met.items():
        if key.startswith("shields"):
            print(f"target: {t['target']}: router bytes {t['ratio']:.2f}x: {verdict[t['met']]}; "
                  f"objects the origin served {t['objects_ratio']:.2f}x: {verdict[t['objects_met']]}")
        else:
            print(f"target: {t['target']}: {t['rise_points']:+.2f} points: {verdict[t['met']]}")
    write_result({
        "bin_dir": shown(args.bin_dir), "seconds": args.seconds,
        "viewers_per_process": args.viewers, "processes": 4, "titles": args.titles,
        "clip_seconds": args.clip_seconds, "ingest_seconds": bench.ingest_seconds,
        "links": "netbed defaults: viewer-PoP 5 ms, PoP-shield 10 ms, PoP/shield-origin 40 ms, cross-region 90 ms",
        "configs": {n: {"title": CONFIGS[n]["title"], **r} for n, r in results.items()},
        "targets": met,
    })


if __name__ == "__main__":
    main()

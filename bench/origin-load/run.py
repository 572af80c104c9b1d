#!/usr/bin/env python3
"""Two stateless origin API nodes under load while one of them is SIGKILLed and restarted
every BENCH_KILL_EVERY seconds (alternating nodes): uploaders send tus PATCHes to either node
(switching on failure, as a load balancer would) and resume from the offset a HEAD reports;
viewers ask for playback tokens. Both nodes share PostgreSQL, NATS JetStream, a Redis cache of
the bench's own and one blob folder; a worker process encodes. Halfway through a kill period,
the Redis server is SIGKILLed too and restarted 5 s later: the cache may only cost latency.

    make bench-origin-load                 # = build release origin, then this
    BENCH_SECONDS=60 bench/origin-load/run.py

Reports requests completed, errors by code, acknowledged bytes lost (an offset a HEAD shows
below one already acknowledged; must be 0), originals that differ from what was sent (must
be 0) and p50/p99 latency of the answered requests, and writes
bench/results/origin-load-DATE.json. Latencies are also split by whether the cache was down.

Environment: BENCH_SECONDS (60), BENCH_UPLOADERS (8), BENCH_VIEWERS (8), BENCH_UPLOAD_MIB (4),
BENCH_KILL_EVERY (20), TEST_POSTGRES_URL (postgres://postgres@127.0.0.1:5432/postgres),
TEST_NATS_URL (nats://127.0.0.1:4222), ORIGIN (target/release/origin).
"""
import collections
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "jit-vs-ffmpeg"))
import run as jit  # noqa: E402  (free_port, wait_http, source clips, write_result)

ROOT = jit.ROOT
ORIGIN = os.environ.get("ORIGIN", os.path.join(ROOT, "target", "release", "origin"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "60"))
UPLOADERS = int(os.environ.get("BENCH_UPLOADERS", "8"))
VIEWERS = int(os.environ.get("BENCH_VIEWERS", "8"))
UPLOAD_BYTES = int(float(os.environ.get("BENCH_UPLOAD_MIB", "4")) * (1 << 20))
KILL_EVERY = float(os.environ.get("BENCH_KILL_EVERY", "20"))
CHUNK = 256 * 1024
PG = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
NATS = os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222")
TOKEN = "dev-creator-token"


class Cluster:
    """Two API nodes and a worker on shared services, in `root`."""

    def __init__(self, root):
        self.root = root
        self.database = f"origin_load_{os.getpid()}_{int(time.time())}"
        jit.sh(["psql", PG, "-qc", f"CREATE DATABASE {self.database}"])
        parsed = urllib.parse.urlsplit(PG)
        self.db_url = urllib.parse.urlunsplit(parsed._replace(path="/" + self.database))
        self.blobs = os.path.join(root, "blobs")
        self.ports = [jit.free_port(), jit.free_port()]
        self.nodes = [f"http://127.0.0.1:{p}" for p in self.ports]
        self.log = open(os.path.join(root, "servers.log"), "w")
        self.redis_port = jit.free_port()
        self.start_redis()
        self.procs = {}
        for i in range(2):
            self.write_config(f"api-{i}", self.ports[i], workers=0)
            self.start(i)
        self.write_config("worker", jit.free_port(), workers=1)
        self.worker = subprocess.Popen([ORIGIN, "worker", "--config", os.path.join(root, "worker.toml")],
                                       stdout=self.log, stderr=self.log, env=self.env())

    def start_redis(self):
        self.redis = subprocess.Popen(["redis-server", "--port", str(self.redis_port), "--save", "",
                                       "--appendonly", "no"], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(self.redis_port), "ping"], capture_output=True).returncode:
            if time.monotonic() > deadline:
                sys.exit("redis-server did not start")
            time.sleep(0.1)

    def kill_redis(self):
        self.redis.send_signal(signal.SIGKILL)
        self.redis.wait()

    def write_config(self, name, port, workers):
        with open(os.path.join(self.root, f"{name}.toml"), "w") as f:
            f.write(f'data_dir = "{self.root}/{name}"\nlisten = "127.0.0.1:{port}"\nmetrics_listen = "off"\n'
                    f'database_url = "{self.db_url}"\nqueue_url = "{NATS}"\n'
                    f'cache_url = "redis://127.0.0.1:{self.redis_port}"\n'
                    f'queue_namespace = "{self.database}"\nworkers = {workers}\nshared_scratch = false\n'
                    f'task_lease_secs = 5\nsigning_key = "{"5" * 64}"\nmaster_key = "{"6" * 64}"\n'
                    f'[storage]\nkind = "fs"\nroot = "{self.blobs}"\n')

    def env(self):
        return dict(os.environ, ORIGIN_LOG="warn")

    def start(self, i):
        config = os.path.join(self.root, f"api-{i}.toml")
        self.procs[i] = subprocess.Popen([ORIGIN, "serve", "--config", config],
                                         stdout=self.log, stderr=self.log, env=self.env())
        jit.wait_http(f"{self.nodes[i]}/healthz")

    def kill(self, i):
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait()

    def stop(self):
        for p in [*self.procs.values(), self.worker, self.redis]:
            p.terminate()
        for p in [*self.procs.values(), self.worker, self.redis]:
            p.wait()
        subprocess.run(["psql", PG, "-qc", f"DROP DATABASE {self.database} WITH (FORCE)"], check=False)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = collections.defaultdict(list)
        self.errors = collections.Counter()
        self.completed = collections.Counter()
        self.lost_bytes = 0
        self.uploads_done = []

        self.cache_down = False

    def ok(self, kind, seconds):
        with self.lock:
            self.completed[kind] += 1
            self.latency[kind].append(seconds)
            self.latency[f"{kind} (cache down)" if self.cache_down else f"{kind} (cache up)"].append(seconds)

    def error(self, kind, code):
        with self.lock:
            self.errors[f"{kind}:{code}"] += 1


def request(node, method, path, body=None, headers=None, timeout=10):
    """(status, headers, body) or raises OSError."""
    host = urllib.parse.urlsplit(node).netloc
    conn = http.client.HTTPConnection(host, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        conn.close()


def error_code(status, body):
    try:
        return f"{status} {json.loads(body)['error']['code']}"
    except (ValueError, KeyError, TypeError):
        return str(status)


class Uploader(threading.Thread):
    def __init__(self, cluster, stats, stop, n):
        super().__init__(daemon=True)
        self.cluster, self.stats, self.stop, self.rng = cluster, stats, stop, random.Random(n)

    def node(self):
        return self.rng.choice(self.cluster.nodes)

    def call(self, kind, method, path, body=None, headers=None):
        """One request to some node, retried on another when a node is down."""
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                status, h, data = request(self.node(), method, path, body, headers)
            except OSError as e:
                self.stats.error(kind, type(e).__name__)
                time.sleep(0.05)
                continue
            if status >= 500:
                self.stats.error(kind, error_code(status, data))
                time.sleep(0.2)
                continue
            self.stats.ok(kind, time.monotonic() - started)
            return status, h, data
        return None

    def run(self):
        while not self.stop.is_set():
            self.one_upload()

    def one_upload(self):
        data = self.rng.randbytes(UPLOAD_BYTES)
        meta = json.dumps({"title": "load", "filename": "load.mp4", "size": len(data),
                           "content_type": "video/mp4"}).encode()
        answer = self.call("create", "POST", "/v1/videos", meta,
                           {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"})
        if not answer or answer[0] != 201:
            return
        created = json.loads(answer[2])
        url = urllib.parse.urlsplit(created["upload"]["url"])
        tus = {"tus-resumable": "1.0.0"}
        answer = self.call("tus_create", "POST", f"{url.path}?{url.query}", b"",
                           {**tus, "upload-length": str(len(data))})
        if not answer or answer[0] != 201:
            return
        location = urllib.parse.urlsplit(answer[1]["location"])
        path = f"{location.path}?{location.query}"
        acknowledged = 0
        while acknowledged < len(data) and not self.stop.is_set():
            body = data[acknowledged:acknowledged + CHUNK]
            answer = self.call("patch", "PATCH", path, body,
                               {**tus, "content-type": "application/offset+octet-stream",
                                "upload-offset": str(acknowledged)})
            if not answer:
                return
            if answer[0] == 204:
                acknowledged = int(answer[1]["upload-offset"])
                continue
            # 409 offset_mismatch after a node died mid-PATCH: ask where it stands.
            head = self.call("head", "HEAD", path, None, tus)
            if not head:
                return
            offset = int(head[1]["upload-offset"])
            if offset < acknowledged:
                with self.stats.lock:
                    self.stats.lost_bytes += acknowledged - offset
            acknowledged = offset
        if acknowledged == len(data):
            with self.stats.lock:
                self.stats.uploads_done.append((created["video"]["id"], hashlib.sha256(data).hexdigest()))


class Viewer(threading.Thread):
    def __init__(self, cluster, stats, stop, video, n):
        super().__init__(daemon=True)
        self.cluster, self.stats, self.stop, self.video, self.rng = cluster, stats, stop, video, random.Random(-n)

    def run(self):
        while not self.stop.is_set():
            node = self.rng.choice(self.cluster.nodes)
            started = time.monotonic()
            try:
                status, _, data = request(node, "POST", f"/v1/videos/{self.video}/playback", b"{}",
                                          {"content-type": "application/json"})
            except OSError as e:
                self.stats.error("playback", type(e).__name__)
                time.sleep(0.05)
                continue
            if status == 200:
                self.stats.ok("playback", time.monotonic() - started)
            else:
                self.stats.error("playback", error_code(status, data))


def ready_video(cluster):
    clip = os.path.join(cluster.root, "clip.mp4")
    jit.sh(["ffmpeg", "-y", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
            "testsrc2=size=320x240:rate=30:duration=2", "-f", "lavfi", "-i", "sine=duration=2",
            "-c:v", "libx264", "-c:a", "aac", "-shortest", clip])
    out = jit.sh([ORIGIN, "ingest", clip, "--url", cluster.nodes[0], "--title", "ready"],
                 capture_output=True, text=True).stdout
    return re.search(r"video (\w+): ready", out).group(1)


def originals_intact(cluster, done):
    """How many completed uploads' originals match what was sent (waiting for their jobs)."""
    intact, differ, missing = 0, 0, 0
    deadline = time.monotonic() + 60
    for video, digest in done:
        path = os.path.join(cluster.blobs, "originals", video)
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not os.path.exists(path):
            missing += 1
            continue
        with open(path, "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() == digest:
                intact += 1
            else:
                differ += 1
    return intact, differ, missing


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else None


def main():
    root = tempfile.mkdtemp(prefix="bench-origin-load-")
    cluster = Cluster(root)
    try:
        video = ready_video(cluster)
        stats, stop = Stats(), threading.Event()
        threads = [Uploader(cluster, stats, stop, n) for n in range(UPLOADERS)]
        threads += [Viewer(cluster, stats, stop, video, n) for n in range(VIEWERS)]
        for t in threads:
            t.start()
        started, kills, victim = time.monotonic(), 0, 0
        redis_killed = False
        while time.monotonic() - started < SECONDS:
            time.sleep(min(KILL_EVERY / 2, max(0.0, SECONDS - (time.monotonic() - started))))
            if not redis_killed and time.monotonic() - started < SECONDS - 6:
                cluster.kill_redis()
                stats.cache_down, redis_killed = True, True
                time.sleep(5)
                cluster.start_redis()
                stats.cache_down = False
            time.sleep(min(KILL_EVERY / 2, max(0.0, SECONDS - (time.monotonic() - started))))
            if time.monotonic() - started >= SECONDS:
                break
            cluster.kill(victim)
            kills += 1
            time.sleep(2)
            cluster.start(victim)
            victim = 1 - victim
        stop.set()
        for t in threads:
            t.join(timeout=30)
        intact, differ, missing = originals_intact(cluster, stats.uploads_done)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    result = {
        "seconds": SECONDS, "uploaders": UPLOADERS, "viewers": VIEWERS, "upload_bytes": UPLOAD_BYTES,
        "kills": kills, "completed": dict(stats.completed), "errors": dict(stats.errors),
        "acknowledged_bytes_lost": stats.lost_bytes, "uploads_completed": len(stats.uploads_done),
        "originals": {"intact": intact, "differ": differ, "missing": missing},
        "latency_ms": {k: {"p50": round(percentile(v, 0.5) * 1000, 1), "p99": round(percentile(v, 0.99) * 1000, 1)}
                       for k, v in stats.latency.items()},
    }
    print(json.dumps(result, indent=2))
    jit.write_result("origin-load", result)
    if stats.lost_bytes or differ:
        sys.exit("acknowledged bytes were lost")


if __name__ == "__main__":
    main()

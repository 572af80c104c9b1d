#!/usr/bin/env python3
"""A cold just-in-time 720p segment of a 1080p source, asked for through a PoP, against the
ffmpeg CLI making the same 2 s 720p segment from the same source (input seek + encode, one
process). Both use libx264 veryfast, CRF 23, the 720p rung's caps (2800k, buffer 5600k) and
every core. We measure the PoP viewer's time to first byte and to last byte; ffmpeg's wall
time from start to exit. Each run asks for a segment no one asked for before, and runs are
interleaved (ours, ffmpeg, ours, ...), so machine noise hits both; ratios are of medians.

Two sources, 20 s 1080p30 each: testsrc2, and a grainy one (testsrc2 under strong temporal
noise), which x264 finds as hard as camera footage; no real footage can be fetched here.

Prints a table and writes bench/results/jit-vs-ffmpeg-<date>.json.

Environment: BENCH_RUNS (default 5, at most 8: one cold segment each), BENCH_DIR (scratch,
default a temp dir), ORIGIN and EDGE (binaries, default target/release).
"""
import datetime
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ORIGIN = os.environ.get("ORIGIN", os.path.join(ROOT, "target", "release", "origin"))
EDGE = os.environ.get("EDGE", os.path.join(ROOT, "target", "release", "edge"))
RUNS = min(int(os.environ.get("BENCH_RUNS", "5")), 8)
SCRATCH = os.environ.get("BENCH_DIR") or tempfile.mkdtemp(prefix="bench-jit-")
SECONDS = 20
SEGMENT = 2.0
SOURCES = {
    "testsrc2": "testsrc2=size=1920x1080:rate=30:duration={d}",
    "grainy": "testsrc2=size=1920x1080:rate=30:duration={d},noise=alls=30:allf=t+u",
}


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def generated_clip(folder, width, height, seconds, preset="medium", audio="128k"):
    """A testsrc2 + sine clip in `folder`, made once per size and length (no media is committed)."""
    path = os.path.join(folder, f"clip-{height}p30-{seconds}s.mp4")
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        sh(["ffmpeg", "-y", "-hide_banner", "-loglevel", "error",
            "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v", "libx264", "-preset", preset, "-g", "60", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", audio, path + ".partial.mp4"])
        os.rename(path + ".partial.mp4", path)
    return path


def source(name):
    os.makedirs(SCRATCH, exist_ok=True)
    path = os.path.join(SCRATCH, f"{name}-1080p30-{SECONDS}s.mp4")
    if not os.path.exists(path):
        print(f"generating {path}", file=sys.stderr)
        sh(["ffmpeg", "-y", "-hide_banner", "-loglevel", "error",
            "-f", "lavfi", "-i", SOURCES[name].format(d=SECONDS),
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}",
            "-c:v", "libx264", "-preset", "medium", "-g", "60", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "128k", path + ".partial.mp4"])
        os.rename(path + ".partial.mp4", path)
    return path


def wait_http(url, limit=30):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{url} did not answer within {limit} s")


class Platform:
    """An origin and a PoP in `root`; `on_demand` is the origin's `[on_demand]` section."""

    def __init__(self, root, on_demand=""):
        self.root = root
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        self.origin_port, metrics, self.pop_port, pop_https, pop_metrics = (free_port() for _ in range(5))
        self.origin = f"http://127.0.0.1:{self.origin_port}"
        self.metrics = f"http://127.0.0.1:{metrics}"
        self.pop = f"http://127.0.0.1:{self.pop_port}"
        self.pop_metrics = f"http://127.0.0.1:{pop_metrics}"
        origin_toml = os.path.join(root, "origin.toml")
        with open(origin_toml, "w") as f:
            f.write(f'data_dir = "{root}/origin"\nlisten = "127.0.0.1:{self.origin_port}"\n'
                    f'metrics_listen = "127.0.0.1:{metrics}"\nplayback_url = "{self.pop}"\n'
                    f'[on_demand]\n{on_demand}')
        # The PoP gets its own credential from the registry and only the origin's public keys.
        credential = os.path.join(root, "pop.credential")
        sh([ORIGIN, "pops", "enrol", "bench", "--region", "local", "--config", origin_toml, "--out", credential],
           capture_output=True)
        public_keys = sh([ORIGIN, "keys", "pop-toml", "--config", origin_toml], capture_output=True, text=True).stdout
        with open(os.path.join(root, "pop.toml"), "w") as f:
            f.write(f'[pop]\nid = "bench"\nregion = "local"\n'
                    f'[listen]\nhttps = "127.0.0.1:{pop_https}"\nhttp = "127.0.0.1:{self.pop_port}"\n'
                    f'metrics = "127.0.0.1:{pop_metrics}"\n'
                    f'[origin]\nurls = ["{self.origin}"]\ncredential_file = "{credential}"\n'
                    f'{public_keys}\n'
                    f'[cache]\npath = "{root}/pop"\nmemory = "256MiB"\ndisk = "1GiB"\n'
                    f'[prefetch]\nenabled = false\n')
        log = open(os.path.join(root, "servers.log"), "w")
        env = dict(os.environ, ORIGIN_LOG="warn", EDGE_LOG="warn")
        self.procs = [subprocess.Popen([ORIGIN, "serve", "--config", os.path.join(root, "origin.toml")],
                                       stdout=log, stderr=log, env=env)]
        wait_http(f"{self.origin}/healthz")
        self.procs.append(subprocess.Popen([EDGE, "serve", "--config", os.path.join(root, "pop.toml")],
                                           stdout=log, stderr=log, env=env))
        wait_http(f"{self.pop}/healthz")

    def ingest(self, path, title):
        out = sh([ORIGIN, "ingest", path, "--url", self.origin, "--title", title],
                 capture_output=True, text=True).stdout
        return re.search(r"play: (\S+)", out).group(1)

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait()


def ours(master, segment):
    """Time to first and last byte of a cold 720p segment through the PoP."""
    url = master.replace("master.m3u8", f"720p/seg_{segment:05d}.m4s")
    out = sh(["curl", "-sS", "-o", "/dev/null", "-D", "-", "-w", "%{time_starttransfer} %{time_total} %{size_download}",
              url], capture_output=True, text=True).stdout
    head, _, times = out.rpartition("\n")
    if " 200" not in head.splitlines()[0] or "x-cache: miss" not in head.lower():
        sys.exit(f"{url}: not a cold 200\n{head}")
    first, last, size = times.split()
    return {"first_byte": float(first), "last_byte": float(last), "bytes": int(size)}


def ffmpeg(src, segment, out):
    cmd = ["ffmpeg", "-y", "-hide_banner", "-loglevel", "error", "-ss", f"{segment * SEGMENT:.3f}", "-i", src,
           "-t", f"{SEGMENT:.3f}", "-an", "-vf", "scale=1280:720", "-c:v", "libx264", "-preset", "veryfast",
           "-crf", "23", "-maxrate", "2800k", "-bufsize", "5600k", "-g", "60", "-pix_fmt", "yuv420p",
           "-movflags", "frag_keyframe+empty_moov", "-f", "mp4", out]
    start = time.monotonic()
    sh(cmd)
    wall = time.monotonic() - start
    return {"wall": wall, "bytes": os.path.getsize(out)}


def main():
    for exe in (ORIGIN, EDGE):
        if not os.access(exe, os.X_OK):
            sys.exit(f"{exe} is missing: run `cargo build --release -p origin -p edge` first")
    # No look-ahead: one segment is what is timed, and nothing else competes for the cores.
    platform = Platform(os.path.join(SCRATCH, "platform"), on_demand="lookahead = 0\n")
    results = {}
    try:
        for name in SOURCES:
            src = source(name)
            master = platform.ingest(src, f"bench {name}")
            print(f"{name}: ready, {master}", file=sys.stderr)
            runs = {"ours": [], "ffmpeg": []}
            for i in range(RUNS):
                segment = 1 + i  # a new, cold segment each run (the last one is shorter: left out)
                runs["ours"].append(ours(master, segment))
                runs["ffmpeg"].append(ffmpeg(src, segment, os.path.join(SCRATCH, f"ffmpeg-{name}-{i}.mp4")))
            results[name] = runs
    finally:
        platform.stop()
    report(results)


def write_result(bench, fields):
    """bench/results/<bench>-<date>.json with the date, core count and commit beside `fields`."""
    out = {"date": datetime.date.today().isoformat(), "cores": os.cpu_count(),
           "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip(), **fields}
    path = os.path.join(ROOT, "bench", "results", f"{bench}-{out['date']}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
    print(f"\nwrote {os.path.relpath(path, ROOT)}")


def report(results):
    out = {"runs": RUNS, "sources": {}}
    print("\n| source | ours first byte | ours last byte | ffmpeg wall | first/ffmpeg | last/ffmpeg |")
    print("|---|---|---|---|---|---|")
    for name, runs in results.items():
        first = statistics.median(r["first_byte"] for r in runs["ours"])
        last = statistics.median(r["last_byte"] for r in runs["ours"])
        wall = statistics.median(r["wall"] for r in runs["ffmpeg"])
        print(f"| {name} | {first:.3f} s | {last:.3f} s | {wall:.3f} s | {first / wall:.2f}x | {last / wall:.2f}x |")
        out["sources"][name] = {"runs": runs, "median": {"first_byte": first, "last_byte": last, "ffmpeg_wall": wall},
                                "ratio": {"first_byte": first / wall, "last_byte": last / wall}}
    write_result("jit-vs-ffmpeg", out)


if __name__ == "__main__":
    main()

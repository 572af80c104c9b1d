#!/usr/bin/env python3
"""The PoP's byte hit ratio against LRU, S3-FIFO and Belady's optimum on the same trace.

One origin with a catalogue (BENCH_VIDEOS uploads of one generated clip, the whole ladder
encoded at upload so every leg sees the same bytes) and, per leg, a fresh PoP whose cache is
BENCH_CACHE_PERCENT (default 5) % of the catalogue's bytes (memory tier only: a catalogue this
small makes a disk tier of blocks meaningless). Viewers: bench/long-tail/scenario.toml at
Zipf 0.9 and 0.7, playback pace, the same seed in every leg. Each leg records its request
trace (`loadtest run --trace`) and replays it through LRU, S3-FIFO and Belady at the PoP's
size (`loadtest replay`), so the policies and the PoP are judged on the very same requests.

Legs: for each skew, each read-ahead setting of BENCH_READAHEAD (default "0,1:50,1:80": off,
then one segment for videos whose segment requests continue at least 50% / 80% of the time), so
a change to the PoP shows its effect on hit ratio and origin egress side by side.

Prints a table and writes bench/results/hit-ratio-<date>.json.

Environment: BENCH_VIDEOS (default 60), BENCH_CLIP_SECONDS (20), BENCH_SECONDS (run length per
leg, 120), BENCH_VIEWERS (24), BENCH_CACHE_PERCENT (5), BENCH_ALPHAS ("0.9,0.7"), BENCH_DIR
(scratch, default a temp dir), ORIGIN, EDGE and LOADTEST (binaries, default target/release).
"""
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "jit-vs-ffmpeg"))
import run as jit  # noqa: E402  (the platform helpers)

ROOT = jit.ROOT
LOADTEST = os.environ.get("LOADTEST", os.path.join(ROOT, "target", "release", "loadtest"))
VIDEOS = max(int(os.environ.get("BENCH_VIDEOS", "60")), 1)
CLIP_SECONDS = int(os.environ.get("BENCH_CLIP_SECONDS", "20"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "120"))
VIEWERS = int(os.environ.get("BENCH_VIEWERS", "24"))
CACHE_PERCENT = float(os.environ.get("BENCH_CACHE_PERCENT", "5"))
ALPHAS = [float(a) for a in os.environ.get("BENCH_ALPHAS", "0.9,0.7").split(",")]
# (segments ahead, continue percent) per leg.
READAHEAD = [tuple(int(x) for x in (r + ":50").split(":")[:2])
             for r in os.environ.get("BENCH_READAHEAD", "0,1:50,1:80").split(",")]
SCRATCH = os.environ.get("BENCH_DIR") or tempfile.mkdtemp(prefix="bench-hit-ratio-")
SCENARIO = os.path.join(ROOT, "bench", "long-tail", "scenario.toml")
# What a viewer can ask a PoP for: the top-level tree's playlists, headers and segments.
VIEWER_OBJECT = re.compile(r"(seg_\d+\.m4s|init\.mp4|\.m3u8)$")


def clip():
    return jit.generated_clip(SCRATCH, 854, 480, CLIP_SECONDS, preset="veryfast")


def catalogue_bytes(origin_dir):
    """Bytes of every object a viewer may ask for (the cbcs tree, originals and pictures aside)."""
    total = 0
    for folder, dirs, files in os.walk(origin_dir):
        dirs[:] = [d for d in dirs if d != "cbcs"]
        total += sum(os.path.getsize(os.path.join(folder, f)) for f in files if VIEWER_OBJECT.search(f))
    return total


def pop_metric(platform, name):
    page = urllib.request.urlopen(f"{platform.pop_metrics}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def restart_pop(platform, cache_bytes, readahead):
    """A fresh PoP (empty cache) of `cache_bytes` memory, reading `readahead` = (segments,
    continue percent) ahead."""
    edge = platform.procs.pop()
    edge.terminate()
    edge.wait()
    shutil.rmtree(os.path.join(platform.root, "pop"), ignore_errors=True)
    conf = os.path.join(platform.root, "pop.toml")
    with open(conf) as f:
        text = f.read()
    text = re.sub(r'memory = "[^"]*"\ndisk = "[^"]*"\n', f'memory = "{cache_bytes}"\ndisk = "0"\n', text)
    ahead, percent = readahead
    text = re.sub(r"\[prefetch\]\n.*", f"[prefetch]\nenabled = false\nreadahead = {ahead}\n"
                  f"readahead_continue_percent = {percent}\n", text, flags=re.S)
    with open(conf, "w") as f:
        f.write(text)
    log = open(os.path.join(platform.root, "servers.log"), "a")
    env = dict(os.environ, EDGE_LOG="warn")
    platform.procs.append(subprocess.Popen([jit.EDGE, "serve", "--config", conf], stdout=log, stderr=log, env=env))
    jit.wait_http(f"{platform.pop}/healthz")


def leg(platform, alpha, readahead, cache_bytes):
    name = f"zipf{alpha}-readahead{readahead[0]}-{readahead[1]}"
    restart_pop(platform, cache_bytes, readahead)
    root = os.path.join(SCRATCH, name)
    os.makedirs(root, exist_ok=True)
    scenario = os.path.join(root, "scenario.toml")
    with open(SCENARIO) as f:
        text = f.read()
    with open(scenario, "w") as f:
        f.write(re.sub(r"alpha = [0-9.]+", f"alpha = {alpha}", text))
    origin_before = pop_metric(platform, "edge_origin_bytes_total")
    trace = os.path.join(root, "trace.tsv")
    report = os.path.join(root, "report")
    jit.sh([LOADTEST, "run", "--target", platform.pop, "--origin", platform.origin, "--scenario", scenario,
            "--duration", f"{SECONDS}s", "--viewers", str(VIEWERS), "--seed", "7", "--quiet",
            "--report", report, "--trace", trace, "--replay-cache", str(cache_bytes)],
           stdout=subprocess.DEVNULL)
    origin_bytes = pop_metric(platform, "edge_origin_bytes_total") - origin_before
    replay = json.loads(jit.sh([LOADTEST, "replay", trace, "--cache", str(cache_bytes), "--json"],
                               capture_output=True, text=True).stdout)
    with open(os.path.join(report, "report.json")) as f:
        figures = json.load(f)
    print(f"{name}: done", file=sys.stderr)
    return {"alpha": alpha, "readahead": readahead[0], "continue_percent": readahead[1], "origin_bytes": origin_bytes, "replay": replay,
            "served_bytes": figures["totals"]["bytes"], "rebuffer_ratio": figures["playback"]["rebuffer_ratio"],
            "startup_p50_ms": figures["latency"]["startup_ms"]["p50"],
            # Relative to BENCH_DIR: no machine's paths in the results.
            "trace": os.path.relpath(trace, SCRATCH)}


POLICIES = {"PoP (x-cache)": "pop", "LRU": "lru", "S3-FIFO": "s3-fifo", "Belady": "belady"}


def ratios(replay):
    """{policy: (byte hit ratio, object hit ratio)} of the one PoP replayed."""
    rows = replay["pops"][0]["policies"]
    return {POLICIES[r["policy"]]: (r["byte_hit_ratio"] or 0.0, r["object_hit_ratio"] or 0.0) for r in rows}


def main():
    for exe in (jit.ORIGIN, jit.EDGE, LOADTEST):
        if not os.access(exe, os.X_OK):
            sys.exit(f"{exe} is missing: run `cargo build --release -p origin -p edge -p loadtest` first")
    src = clip()
    platform = jit.Platform(os.path.join(SCRATCH, "platform"), on_demand="enabled = false\n")
    try:
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda i: platform.ingest(src, f"hit-ratio {i}"), range(VIDEOS)))
        print(f"{VIDEOS} videos ready in {time.monotonic() - started:.0f} s", file=sys.stderr)
        catalogue = catalogue_bytes(os.path.join(platform.root, "origin"))
        cache_bytes = int(catalogue * CACHE_PERCENT / 100)
        legs = [leg(platform, alpha, readahead, cache_bytes) for alpha in ALPHAS for readahead in READAHEAD]
    finally:
        platform.stop()
    print(f"\n{VIDEOS} videos of {CLIP_SECONDS} s, catalogue {catalogue / 1e6:.1f} MB, cache {CACHE_PERCENT:g} % "
          f"= {cache_bytes / 1e6:.1f} MB, {VIEWERS} viewers for {SECONDS} s per leg\n")
    print("| Zipf | read-ahead (bar) | PoP | LRU | S3-FIFO | Belady | PoP - S3-FIFO | origin egress / served |")
    print("|---|---|---|---|---|---|---|---|")
    for l in legs:
        r = ratios(l["replay"])
        pop, lru, s3, opt = (r[k][0] for k in ("pop", "lru", "s3-fifo", "belady"))
        bar = f" ({l['continue_percent']} %)" if l["readahead"] else ""
        print(f"| {l['alpha']} | {l['readahead']}{bar} | {pop:.3f} | {lru:.3f} | {s3:.3f} | {opt:.3f} | "
              f"{(pop - s3) * 100:+.1f} points | {l['origin_bytes'] / max(l['served_bytes'], 1):.3f} |")
    print("\nbyte hit ratios; object hit ratios are in the JSON")
    jit.write_result("hit-ratio", {"videos": VIDEOS, "clip_seconds": CLIP_SECONDS, "viewers": VIEWERS,
                                   "seconds": SECONDS, "catalogue_bytes": catalogue, "cache_bytes": cache_bytes,
                                   "legs": legs})


if __name__ == "__main__":
    main()

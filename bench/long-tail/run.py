#!/usr/bin/env python3
"""The just-in-time long tail against the same catalogue fully encoded at upload.

Two platforms, one after the other so they never share the CPU: an origin and a PoP that
encode the whole ladder at upload (`[on_demand] enabled = false`), and an origin and a PoP on
the default policy (the floor at upload, the rest when watched). Each gets the same catalogue
(BENCH_VIDEOS uploads of one generated 720p30 clip, at least 50) and the same viewers
(`loadtest run` with bench/long-tail/scenario.toml: Zipf 0.9, playback pace, same seed). We
compare stall ratio, startup time, stored bytes and encode CPU, then `loadtest cost` prices
the three designs at the reference scale from the two origins' metrics and the
just-in-time run's report.

Prints a table and writes bench/results/long-tail-<date>.json (with both reports' figures and
the cost projection).

Environment: BENCH_REUSE=1 (analyse the legs saved in BENCH_DIR again), BENCH_VIDEOS (default 50), BENCH_SECONDS (run length, default 90), BENCH_VIEWERS
(default 16), BENCH_CLIP_SECONDS (default 12), BENCH_DIR (scratch, default a temp dir),
ORIGIN, EDGE and LOADTEST (binaries, default target/release).
"""
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "jit-vs-ffmpeg"))
import run as jit  # noqa: E402  (the platform helpers)

ROOT = jit.ROOT
LOADTEST = os.environ.get("LOADTEST", os.path.join(ROOT, "target", "release", "loadtest"))
VIDEOS = max(int(os.environ.get("BENCH_VIDEOS", "50")), 1)
SECONDS = int(os.environ.get("BENCH_SECONDS", "90"))
VIEWERS = int(os.environ.get("BENCH_VIEWERS", "16"))
CLIP_SECONDS = int(os.environ.get("BENCH_CLIP_SECONDS", "12"))
SCRATCH = os.environ.get("BENCH_DIR") or tempfile.mkdtemp(prefix="bench-long-tail-")
SCENARIO = os.path.join(ROOT, "bench", "long-tail", "scenario.toml")


def clip():
    return jit.generated_clip(SCRATCH, 1280, 720, CLIP_SECONDS)


def metrics(platform):
    return urllib.request.urlopen(f"{platform.metrics}/metrics", timeout=10).read().decode()


def leg(name, on_demand, src):
    root = os.path.join(SCRATCH, name)
    saved = os.path.join(root, "leg.json")
    if os.environ.get("BENCH_REUSE") and os.path.exists(saved):
        # Analyse an earlier run's legs again (after a change to the analysis or the cost model).
        with open(saved) as f:
            return json.load(f)
    extra = "" if on_demand else "enabled = false\n"
    # Accounting every 2 s, so the metrics read after the run are current.
    platform = jit.Platform(root, on_demand=f"policy_interval_ms = 2000\naccount_interval_ms = 2000\n{extra}")
    try:
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda i: platform.ingest(src, f"{name} {i}"), range(VIDEOS)))
        ingest = time.monotonic() - started
        print(f"{name}: {VIDEOS} videos ready in {ingest:.0f} s", file=sys.stderr)
        time.sleep(3)
        before = metrics(platform)
        report = os.path.join(root, "report")
        jit.sh([LOADTEST, "run", "--target", platform.pop, "--origin", platform.origin,
                "--origin-metrics", f"{platform.metrics}/metrics", "--scenario", SCENARIO,
                "--duration", f"{SECONDS}s", "--viewers", str(VIEWERS), "--seed", "7", "--quiet",
                "--report", report], stdout=subprocess.DEVNULL)
        time.sleep(3)
        after = metrics(platform)
        page = os.path.join(root, "metrics.prom")
        with open(page, "w") as f:
            f.write(after)
        with open(os.path.join(report, "report.json")) as f:
            figures = json.load(f)
        result = {"ingest_seconds": ingest, "report": report, "metrics": page, "figures": figures,
                  "before": before, "after": after}
        with open(saved, "w") as f:
            json.dump(result, f)
        return result
    finally:
        platform.stop()


def value(page, metric, labels=""):
    total = 0.0
    for line in page.splitlines():
        if line.startswith(metric) and labels in line and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main():
    for exe in (jit.ORIGIN, jit.EDGE, LOADTEST):
        if not os.access(exe, os.X_OK):
            sys.exit(f"{exe} is missing: run `cargo build --release -p origin -p edge -p loadtest` first")
    src = clip()
    legs = {"full": leg("full", False, src), "jit": leg("jit", True, src)}
    cost = subprocess.run([LOADTEST, "cost", "--report", legs["jit"]["report"], "--policy-metrics",
                           legs["jit"]["metrics"], "--full-metrics", legs["full"]["metrics"]],
                          check=True, capture_output=True, text=True).stdout
    cost_json = json.loads(subprocess.run(
        [LOADTEST, "cost", "--json", "--report", legs["jit"]["report"], "--policy-metrics", legs["jit"]["metrics"],
         "--full-metrics", legs["full"]["metrics"]], check=True, capture_output=True, text=True).stdout)
    rows = {}
    for name, l in legs.items():
        f, page = l["figures"], l["after"]
        rows[name] = {
            "sessions": f["playback"]["sessions"],
            "rebuffer_ratio": f["playback"]["rebuffer_ratio"] or 0.0,
            "stalls": f["playback"]["stalls"],
            "startup_p50_ms": f["latency"]["startup_ms"]["p50"],
            "startup_p90_ms": f["latency"]["startup_ms"]["p90"],
            "errors": f["totals"]["errors"],
            "stored_bytes": value(page, "origin_stored_bytes{"),
            # An upload's encode and its rungs' opening segments.
            "upload_cpu_s": sum(value(page, "origin_encode_cpu_seconds_total", f'reason="{r}"')
                                for r in ("upload", "opening")),
            "transcoded_bytes": sum(value(page, "origin_stored_bytes", f'kind="{k}"')
                                    for k in ("floor", "materialised")),
            "on_demand_cpu_s": sum(value(page, "origin_encode_cpu_seconds_total", f'reason="{r}"')
                                   for r in ("jit", "lookahead", "promotion")),
            "jit_segments": sum(value(page, "origin_segments_encoded_total", f'reason="{r}"')
                                for r in ("jit", "lookahead", "promotion")),
            "ingest_seconds": l["ingest_seconds"],
        }
    full, ours = rows["full"], rows["jit"]
    print(f"\n{VIDEOS} videos of {CLIP_SECONDS} s 720p30, {VIEWERS} viewers for {SECONDS} s, Zipf 0.9\n")
    print("| | full ladder | just-in-time | ratio or delta |")
    print("|---|---|---|---|")
    print(f"| sessions | {full['sessions']} | {ours['sessions']} | |")
    print(f"| rebuffer ratio | {full['rebuffer_ratio'] * 100:.2f} % | {ours['rebuffer_ratio'] * 100:.2f} % | "
          f"{(ours['rebuffer_ratio'] - full['rebuffer_ratio']) * 100:+.2f} points |")
    print(f"| startup p50 | {full['startup_p50_ms']:.0f} ms | {ours['startup_p50_ms']:.0f} ms | "
          f"{ours['startup_p50_ms'] / max(full['startup_p50_ms'], 1e-9):.2f}x |")
    print(f"| startup p90 | {full['startup_p90_ms']:.0f} ms | {ours['startup_p90_ms']:.0f} ms | "
          f"{ours['startup_p90_ms'] / max(full['startup_p90_ms'], 1e-9):.2f}x |")
    print(f"| errors | {full['errors']} | {ours['errors']} | |")
    print(f"| stored bytes | {full['stored_bytes'] / 1e6:.1f} MB | {ours['stored_bytes'] / 1e6:.1f} MB | "
          f"{ours['stored_bytes'] / max(full['stored_bytes'], 1):.2f}x |")
    print(f"| transcoded bytes (no originals) | {full['transcoded_bytes'] / 1e6:.1f} MB | "
          f"{ours['transcoded_bytes'] / 1e6:.1f} MB | {ours['transcoded_bytes'] / max(full['transcoded_bytes'], 1):.2f}x |")
    print(f"| upload encode CPU (with openings) | {full['upload_cpu_s']:.0f} s | {ours['upload_cpu_s']:.0f} s | "
          f"{ours['upload_cpu_s'] / max(full['upload_cpu_s'], 1e-9):.2f}x |")
    print(f"| encode CPU the viewers caused | {full['on_demand_cpu_s']:.0f} s | {ours['on_demand_cpu_s']:.0f} s | "
          f"{ours['jit_segments']:.0f} segments |")
    print(f"| time to ingest the catalogue | {full['ingest_seconds']:.0f} s | {ours['ingest_seconds']:.0f} s | "
          f"{ours['ingest_seconds'] / max(full['ingest_seconds'], 1e-9):.2f}x |")
    print(cost)
    jit.write_result("long-tail", {"videos": VIDEOS, "clip_seconds": CLIP_SECONDS, "viewers": VIEWERS,
                                   "seconds": SECONDS, "legs": rows, "cost": cost_json})


if __name__ == "__main__":
    main()

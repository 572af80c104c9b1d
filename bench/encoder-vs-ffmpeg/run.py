#!/usr/bin/env python3
"""Our encoder against one ffmpeg CLI process on the same 60 s 1080p30 source and the same
4-rung ladder (1080p/720p/480p/360p, libx264 veryfast CRF 23 with the same VBV caps, 2 s
keyframe interval, AAC 128k, HLS fMP4). Runs are interleaved (ours, ffmpeg, ours, ...) so
machine noise hits both; the ratio is of medians. Prints a table and writes
bench/results/encoder-vs-ffmpeg-<date>.json.

Environment: BENCH_RUNS (default 3), BENCH_DIR (scratch, default a temp dir), ENCODER (binary).
"""
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ENCODER = os.environ.get("ENCODER", os.path.join(ROOT, "target", "release", "encoder"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SCRATCH = os.environ.get("BENCH_DIR") or tempfile.mkdtemp(prefix="bench-encoder-")
# (name, width, height, maxrate kbit/s): the caps our ladder derives for these rungs.
RUNGS = [("1080p", 1920, 1080, 5000), ("720p", 1280, 720, 2800), ("480p", 854, 480, 1400), ("360p", 640, 360, 800)]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def source():
    os.makedirs(SCRATCH, exist_ok=True)
    path = os.path.join(SCRATCH, "source-1080p30-60s.mp4")
    if not os.path.exists(path):
        print(f"generating {path}", file=sys.stderr)
        sh(["ffmpeg", "-y", "-hide_banner", "-loglevel", "error",
            "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30:duration=60",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=60",
            "-c:v", "libx264", "-preset", "medium", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", path + ".partial.mp4"])
        os.rename(path + ".partial.mp4", path)
    return path


def ffmpeg_cmd(src, out):
    split = "[0:v]split=4[v0in][v1in][v2in][v3in];[v0in]null[v0];" + ";".join(
        f"[v{i}in]scale={w}:{h}[v{i}]" for i, (_, w, h, _) in enumerate(RUNGS) if i > 0)
    cmd = ["ffmpeg", "-y", "-hide_banner", "-loglevel", "error", "-i", src, "-filter_complex", split]
    for i in range(len(RUNGS)):
        cmd += ["-map", f"[v{i}]"]
    for _ in RUNGS:
        cmd += ["-map", "0:a"]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
            "-g", "60", "-keyint_min", "60", "-sc_threshold", "0"]
    for i, (_, _, _, cap) in enumerate(RUNGS):
        cmd += [f"-maxrate:v:{i}", f"{cap}k", f"-bufsize:v:{i}", f"{2 * cap}k"]
    cmd += ["-c:a", "aac", "-b:a", "128k", "-ac", "2", "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod",
            "-hls_segment_type", "fmp4", "-hls_segment_filename", os.path.join(out, "v%v/seg_%03d.m4s"),
            "-master_pl_name", "master.m3u8",
            "-var_stream_map", " ".join(f"v:{i},a:{i}" for i in range(len(RUNGS))), os.path.join(out, "v%v/index.m3u8")]
    return cmd


def ours_cmd(src, out):
    return [ENCODER, "transcode", src, "--out", out, "--force",
            "--pipeline", os.path.join(ROOT, "bench", "encoder-vs-ffmpeg", "ladder.toml")]


def measure(cmd, out):
    """Wall seconds, CPU seconds and peak RSS (MiB) of one run."""
    if os.path.exists(out):
        sh(["rm", "-rf", out])
    os.makedirs(out)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    if status != 0:
        sys.exit(f"{cmd[0]} failed with status {status}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024}


def psnr(playlist, src, w, h):
    graph = (f"[0:v]setpts=PTS-STARTPTS[a];[1:v]scale={w}:{h}:flags=bicubic,setpts=PTS-STARTPTS[b];[a][b]psnr")
    log = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", playlist, "-i", src, "-lavfi", graph, "-f", "null", "-"],
                         capture_output=True, text=True).stderr
    m = re.search(r"average:([0-9.]+|inf)", log)
    return float(m.group(1)) if m else float("nan")


def main():
    if not os.path.exists(ENCODER):
        sys.exit(f"{ENCODER} not found: run `cargo build --release -p encoder` first")
    src = source()
    runs = {"ours": [], "ffmpeg": []}
    outs = {"ours": os.path.join(SCRATCH, "ours"), "ffmpeg": os.path.join(SCRATCH, "ffmpeg")}
    for i in range(RUNS):
        for side, build in (("ours", ours_cmd), ("ffmpeg", ffmpeg_cmd)):
            r = measure(build(src, outs[side]), outs[side])
            runs[side].append(r)
            print(f"run {i + 1}/{RUNS} {side:6}: {r['wall']:6.2f} s wall, {r['cpu']:6.1f} CPU-s, {r['rss_mib']:5.0f} MiB", file=sys.stderr)
    quality = []
    for i, (name, w, h, _) in enumerate(RUNGS):
        ours = psnr(os.path.join(outs["ours"], name, "index.m3u8"), src, w, h)
        theirs = psnr(os.path.join(outs["ffmpeg"], f"v{i}", "index.m3u8"), src, w, h)
        quality.append({"rung": name, "psnr_ours": ours, "psnr_ffmpeg": theirs, "delta": ours - theirs})
    med = {s: {k: statistics.median(r[k] for r in runs[s]) for k in ("wall", "cpu", "rss_mib")} for s in runs}
    peak = {s: max(r["rss_mib"] for r in runs[s]) for s in runs}
    ratio = med["ours"]["wall"] / med["ffmpeg"]["wall"]
    print()
    print(f"{'':8} {'wall s':>8} {'x realtime':>10} {'CPU-s':>7} {'peak MiB':>9}")
    for s in ("ours", "ffmpeg"):
        print(f"{s:8} {med[s]['wall']:8.2f} {60 / med[s]['wall']:10.2f} {med[s]['cpu']:7.1f} {peak[s]:9.0f}")
    print(f"ratio ours/ffmpeg (median wall): {ratio:.3f}   CPU-s ratio: {med['ours']['cpu'] / med['ffmpeg']['cpu']:.3f}")
    print(f"{'rung':6} {'PSNR ours':>10} {'PSNR ffmpeg':>12} {'delta dB':>9}")
    for q in quality:
        print(f"{q['rung']:6} {q['psnr_ours']:10.2f} {q['psnr_ffmpeg']:12.2f} {q['delta']:+9.2f}")
    result = {
        "benchmark": "encoder-vs-ffmpeg",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "runs": runs,
        "median": med,
        "peak_rss_mib": peak,
        "ratio_wall": ratio,
        "psnr": quality,
    }
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    path = os.path.join(ROOT, "bench", "results", f"encoder-vs-ffmpeg-{result['date'][:10]}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()

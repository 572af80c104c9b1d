#!/usr/bin/env python3
"""Disk admission by segment order, decided by replay.

The issue asked for a disk tier that knows segment order (a title's early segments worth more
than its late ones). Before building it into the PoP, this replays the issue's synthetic trace
(2000 titles x 30 one-MiB segments, viewers abandoning after an exponential prefix of mean 10,
Zipf 0.9 and 0.7; `loadtest synth-trace`, seeded, so every run gives the same numbers) through
an S3-FIFO memory tier over a disk tier that evicts in write order, once with the PoP's
admission rule (an object reaches the disk on its second request) and once with the
segment-order rule (a title's first N segments on their first request, the rest on their
second), at two disk sizes and three opening lengths (`loadtest replay --disk --opening`).

Usage: bench/hit-ratio/admission.py   (LOADTEST=path/to/loadtest to skip the cargo build;
BENCH_DIR for the traces, default a temp dir). Prints a table and writes
bench/results/admission-<date>.json.
"""
import datetime
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LOADTEST = os.environ.get("LOADTEST", os.path.join(ROOT, "target", "release", "loadtest"))
SCRATCH = os.environ.get("BENCH_DIR") or tempfile.mkdtemp(prefix="bench-admission-")
MEMORY = "600MiB"  # 1 % of the 60,000 MiB catalogue
DISKS = ["3000MiB", "12000MiB"]  # 5 % and 20 %
OPENINGS = [1, 3, 10]
SKEWS = [0.9, 0.7]


def main():
    if "LOADTEST" not in os.environ:
        subprocess.run(["cargo", "build", "--release", "-p", "loadtest"], cwd=ROOT, check=True)
    os.makedirs(SCRATCH, exist_ok=True)
    rows = []
    for alpha in SKEWS:
        trace = os.path.join(SCRATCH, f"zipf-{alpha}.tsv")
        subprocess.run([LOADTEST, "synth-trace", "--out", trace, "--alpha", str(alpha)], check=True,
                       stdout=subprocess.DEVNULL)
        for disk in DISKS:
            for opening in OPENINGS:
                out = subprocess.run([LOADTEST, "replay", trace, "--cache", MEMORY, "--disk", disk,
                                      "--opening", str(opening), "--json"], check=True, capture_output=True, text=True)
                policies = {p["policy"]: p["byte_hit_ratio"] for p in json.loads(out.stdout)["pops"][0]["policies"]}
                rows.append({"zipf": alpha, "memory": MEMORY, "disk": disk, "opening": opening,
                             "s3fifo_memory_only": policies["S3-FIFO"], "belady_memory_only": policies["Belady"],
                             "second_request": policies["+disk, 2nd req"], "opening_rule": policies["+disk, opening"]})
    print("| Zipf | memory + disk | opening | S3-FIFO (memory only) | 2nd request (the PoP's) | opening rule | difference |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        diff = (r["opening_rule"] - r["second_request"]) * 100
        print(f"| {r['zipf']} | {r['memory']} + {r['disk']} | {r['opening']} | {r['s3fifo_memory_only']:.3f} "
              f"| {r['second_request']:.4f} | {r['opening_rule']:.4f} | {diff:+.2f} points |")
    date = datetime.date.today().isoformat()
    path = os.environ.get("BENCH_OUT") or os.path.join(ROOT, "bench", "results", f"admission-{date}.json")
    with open(path, "w") as f:
        json.dump({"benchmark": "admission", "date": date, "trace": "loadtest synth-trace defaults", "rows": rows},
                  f, indent=2)
    print(f"wrote {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Popularity-driven placement under a flash crowd: a new title takes most of a PoP's arrivals
within seconds. With placement, the origin sees the title's regional counts jump on the PoP's
next heartbeat and lists its opening minute (every rendition) for the PoP to fetch before the
viewers ask; without it (`[steering] prefetch_opening_secs = 0`), the PoP is told only today's two
segments per rendition of its region's top titles.

One origin (release build, every rung encoded at upload, so nothing is encoded while viewers
watch) with BENCH_CLIPS uploads of one generated clip (640x360 testsrc2 + sine, BENCH_CLIP_SECONDS
long, at least 60 s so an opening minute exists; a 240p and a 360p rung). Two legs, one after
the other: the origin restarted with the leg's opening length, then a fresh PoP (empty cache,
prefetch on, 3 s heartbeat, a region of its own so the other leg's counts do not count) and
`loadtest run` with bench/flash-crowd/scenario.toml for BENCH_SECONDS: BENCH_VIEWERS viewers
arriving over 10 s, 90% of them on the leg's own crowd title (two identical uploads, one per
leg), the same seed in both legs. A second fresh PoP in the same region gets the same crowd
(BENCH_VIEWERS more, another seed) BENCH_SECOND_DELAY s later (default 20) for
BENCH_SECOND_SECONDS (default 30): on the PoP that has the crowd first, placement can only
move fetches earlier; at the region's other PoPs it can warm the cache before their viewers
come, and their misses and origin fetches before and during their viewing show whether it did.

For the crowd's first minute we report when the origin first listed an opening to the PoP
and how many opening keys it sent (its heartbeat answers, logged at debug as JSON lines), the
PoP's origin fetches (`edge_origin_fetches_total`, `edge_origin_bytes_total`, before and
after), the origin's object requests and bytes (`origin_http_requests_total` on /v1/objects,
`origin_served_bytes_total`), and the viewers' cache hit ratio, startup time and stall ratio
from loadtest's report.json. The PoP's own read-ahead is off (where its build has one), so
what differs between the legs is the origin's placement alone.

Prints a table and writes bench/results/flash-crowd-<date>.json.

Environment: BENCH_SECONDS (default 60), BENCH_VIEWERS (default 150), BENCH_CLIPS (default 5,
two of them the crowd titles), BENCH_CLIP_SECONDS (default 70), BENCH_OPENING (the placement
leg's opening, default 60), BENCH_DIR (scratch, default a temp dir), ORIGIN, EDGE and LOADTEST
(binaries, default target/release).
"""
import datetime
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def _helpers(name, path):
    """Another bench's run.py as a module (they share the file name, so not by import)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


jit = _helpers("jit_vs_ffmpeg", os.path.join(HERE, "..", "jit-vs-ffmpeg", "run.py"))  # sh, free_port, ...

ROOT = jit.ROOT
ORIGIN, EDGE = jit.ORIGIN, jit.EDGE
LOADTEST = os.environ.get("LOADTEST", os.path.join(ROOT, "target", "release", "loadtest"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "60"))
VIEWERS = int(os.environ.get("BENCH_VIEWERS", "150"))
CLIPS = max(int(os.environ.get("BENCH_CLIPS", "5")), 2)
CLIP_SECONDS = max(int(os.environ.get("BENCH_CLIP_SECONDS", "70")), 60)
OPENING = int(os.environ.get("BENCH_OPENING", "60"))
SCRATCH = os.environ.get("BENCH_DIR") or tempfile.mkdtemp(prefix="bench-flash-crowd-")
SCENARIO = os.path.join(HERE, "scenario.toml")
SEED = 11
# The crowd reaches a second PoP of the same region this many seconds after the first, for
# this long: what placement is for is warming it before its own viewers come.
SECOND_DELAY = int(os.environ.get("BENCH_SECOND_DELAY", "20"))
SECOND_SECONDS = int(os.environ.get("BENCH_SECOND_SECONDS", "30"))
# (leg, the origin's opening seconds): today's two segments first, then placement.
LEGS = [("two-segments", 0), ("opening-minute", OPENING)]


def clip():
    return jit.generated_clip(SCRATCH, 640, 360, CLIP_SECONDS, preset="veryfast", audio="96k")


def get(url, timeout=10):
    return urllib.request.urlopen(url, timeout=timeout).read().decode()


def total(page, metric, contains=""):
    """Sum of a Prometheus counter's samples whose line contains `contains`."""
    out = 0.0
    for line in page.splitlines():
        if line.startswith(metric) and not line.startswith("#") and contains in line:
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name == metric:
                out += float(line.rsplit(" ", 1)[1])
    return out


def beats(log, pop, since):
    """`pop`'s heartbeat answers from `since` on (seconds after it; keys listed; opening keys)."""
    out = []
    with open(log) as f:
        for line in f:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            fields = entry.get("fields", {})
            if fields.get("message") != "heartbeat" or fields.get("pop") != pop:
                continue
            at = datetime.datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
            if at >= since:
                out.append({"t": round(at - since, 1), "prefetch": fields.get("prefetch", 0),
                            "opening_keys": fields.get("opening_keys", 0)})
    return out


class Platform:
    """One origin (restarted per leg with its opening length) and a fresh PoP per leg."""

    def __init__(self, root):
        self.root = root
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        self.origin_port, metrics = jit.free_port(), jit.free_port()
        self.origin = f"http://127.0.0.1:{self.origin_port}"
        self.metrics = f"http://127.0.0.1:{metrics}"
        # Each leg's first PoP listens on the same ports (one leg at a time), so playback URLs
        # name it and the viewers leave the key service (the origin) alone, as a page does;
        # loadtest moves the second PoP's viewers onto it (`--target`).
        self.ports = {side: (jit.free_port(), jit.free_port(), jit.free_port()) for side in ("first", "second")}
        self.pop = f"http://127.0.0.1:{self.ports['first'][0]}"
        self.origin_toml = os.path.join(root, "origin.toml")
        with open(self.origin_toml, "w") as f:
            # Every rung at upload: the crowd measures caching and placement, not encodes.
            f.write(f'data_dir = "{root}/origin"\nlisten = "127.0.0.1:{self.origin_port}"\n'
                    f'metrics_listen = "127.0.0.1:{metrics}"\nplayback_url = "{self.pop}"\n'
                    f'[on_demand]\nenabled = false\n')
        self.public_keys = jit.sh([ORIGIN, "keys", "pop-toml", "--config", self.origin_toml],
                                  capture_output=True, text=True).stdout
        self.log = open(os.path.join(root, "servers.log"), "a")
        self.origin_proc = None
        self.origin_log = None
        self.pop_procs = {}

    def start_origin(self, opening, log="origin"):
        """The origin with `opening` seconds of placement; its heartbeat answers (how many keys,
        how many of them openings) logged as JSON lines in `<log>.log`."""
        self.stop_origin()
        self.origin_log = os.path.join(self.root, f"{log}.log")
        with open(self.origin_toml) as f:
            text = re.sub(r"\n\[steering\]\n.*", "\n", f.read(), flags=re.S)
        with open(self.origin_toml, "w") as f:
            f.write(text.rstrip("\n") + f"\n[steering]\nprefetch_opening_secs = {opening}\n")
        env = dict(os.environ, ORIGIN_LOG="warn,origin::api::pops=debug", ORIGIN_LOG_FORMAT="json")
        with open(self.origin_log, "a") as out:
            self.origin_proc = subprocess.Popen([ORIGIN, "serve", "--config", self.origin_toml],
                                                stdout=out, stderr=out, env=env)
        jit.wait_http(f"{self.origin}/healthz")

    def stop_origin(self):
        if self.origin_proc:
            self.origin_proc.terminate()
            self.origin_proc.wait()
            self.origin_proc = None

    def enrol(self, pop, region):
        """A PoP in `region` (with the origin stopped: the registry is its database)."""
        credential = os.path.join(self.root, f"{pop}.credential")
        jit.sh([ORIGIN, "pops", "enrol", pop, "--region", region, "--config", self.origin_toml,
                "--out", credential], capture_output=True)
        return credential

    def start_pop(self, pop, credential, region, side):
        """A PoP with an empty cache that prefetches, on `side`'s ports; its URL and metrics URL."""
        folder = os.path.join(self.root, pop)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        http, https, metrics = self.ports[side]
        toml = os.path.join(folder, "pop.toml")
        body = (f'[pop]\nid = "{pop}"\nregion = "{region}"\n'
                f'[listen]\nhttps = "127.0.0.1:{https}"\nhttp = "127.0.0.1:{http}"\nmetrics = "127.0.0.1:{metrics}"\n'
                f'[origin]\nurls = ["{self.origin}"]\ncredential_file = "{credential}"\n{self.public_keys}\n'
                f'[cache]\npath = "{folder}/cache"\nmemory = "256MiB"\ndisk = "1GiB"\n'
                # Every viewer comes from this one host: the per-address cap would refuse them.
                f'[limits]\nmax_connections_per_address = 4096\n'
                f'[prefetch]\nenabled = true\nheartbeat = "3s"\n')
        # A PoP that reads ahead by itself would blur what placement does: off where the
        # build knows the key (older builds have no read-ahead).
        with open(toml, "w") as f:
            f.write(body + "readahead = 0\n")
        if subprocess.run([EDGE, "check-config", toml], capture_output=True).returncode != 0:
            with open(toml, "w") as f:
                f.write(body)
        env = dict(os.environ, EDGE_LOG="warn")
        self.pop_procs[pop] = subprocess.Popen([EDGE, "serve", "--config", toml], stdout=self.log, stderr=self.log,
                                               env=env)
        url = f"http://127.0.0.1:{http}"
        jit.wait_http(f"{url}/healthz")
        return url, f"http://127.0.0.1:{metrics}/metrics"

    def stop_pops(self):
        for proc in self.pop_procs.values():
            proc.terminate()
            proc.wait()
        self.pop_procs = {}

    def ingest(self, path, title):
        out = jit.sh([ORIGIN, "ingest", path, "--url", self.origin, "--title", title],
                     capture_output=True, text=True).stdout
        return re.search(r"video (\S+): ready", out).group(1)

    def listed_index(self, video):
        """Where `video` is in the catalogue loadtest reads (ready videos, newest first)."""
        ready = [v["id"] for v in json.loads(get(f"{self.origin}/v1/videos?limit=100"))["videos"]
                 if v["state"] == "ready"]
        return ready.index(video)

    def stop(self):
        self.stop_pops()
        self.stop_origin()


def loadtest_cmd(url, platform, scenario, seconds, report, seed):
    return [LOADTEST, "run", "--target", url, "--origin", platform.origin,
            "--origin-metrics", f"{platform.metrics}/metrics", "--scenario", scenario,
            "--duration", f"{seconds}s", "--viewers", str(VIEWERS), "--seed", str(seed), "--quiet",
            "--report", report]


def viewers(report):
    """What loadtest's report.json says of the viewers."""
    with open(os.path.join(report, "report.json")) as f:
        figures = json.load(f)
    return {
        "requests": figures["totals"]["requests"],
        "errors": figures["totals"]["errors"],
        "hit_ratio": figures["cache"]["hit_ratio"],
        "byte_hit_ratio": figures["cache"]["byte_hit_ratio"],
        "misses": figures["cache"]["misses"],
        "startup_ms": figures["latency"]["startup_ms"],
        "sessions": figures["playback"]["sessions"],
        "stall_ratio": figures["playback"]["rebuffer_ratio"],
        "stalls": figures["playback"]["stalls"],
        "rungs": figures["rungs"],
    }


def leg(platform, name, opening, crowd_title):
    """The crowd at the region's first PoP, and SECOND_DELAY s later at its second."""
    region = f"region-{name}"
    first, second = f"pop-{name}", f"pop-{name}-second"
    platform.stop_origin()
    credentials = {pop: platform.enrol(pop, region) for pop in (first, second)}
    platform.start_origin(opening, log=f"origin-{name}")
    url, pop_metrics = platform.start_pop(first, credentials[first], region, "first")
    second_url, second_metrics = platform.start_pop(second, credentials[second], region, "second")
    time.sleep(4)  # their first beats: nothing popular yet in their fresh region
    scenario = os.path.join(SCRATCH, f"scenario-{name}.toml")
    with open(SCENARIO) as f:
        text = re.sub(r"(?m)^title = \d+", f"title = {platform.listed_index(crowd_title)}", f.read())
    with open(scenario, "w") as f:
        f.write(text)
    origin_metrics = f"{platform.metrics}/metrics"
    before = {"pop": get(pop_metrics), "origin": get(origin_metrics), "second": get(second_metrics)}
    report = os.path.join(SCRATCH, f"report-{name}")
    second_report = os.path.join(SCRATCH, f"report-{name}-second")
    print(f"{name}: {VIEWERS} viewers for {SECONDS} s (opening {opening} s), and {VIEWERS} more at the second PoP "
          f"after {SECOND_DELAY} s for {SECOND_SECONDS} s", file=sys.stderr)
    crowd_start = time.time()
    crowd = subprocess.Popen(loadtest_cmd(url, platform, scenario, SECONDS, report, SEED), stdout=subprocess.DEVNULL)
    try:
        time.sleep(SECOND_DELAY)
        arrival = {"second": get(second_metrics)}
        second_start = time.time()
        jit.sh(loadtest_cmd(second_url, platform, scenario, SECOND_SECONDS, second_report, SEED + 1),
               stdout=subprocess.DEVNULL)
        if crowd.wait() != 0:
            sys.exit(f"loadtest at {first} failed")
    finally:
        if crowd.poll() is None:  # the second loadtest failed: the first is not left running
            crowd.kill()
            crowd.wait()
    after = {"pop": get(pop_metrics), "origin": get(origin_metrics), "second": get(second_metrics)}
    platform.stop_pops()
    delta = lambda a, b, side, metric, contains="": total(b[side], metric, contains) - total(a[side], metric, contains)
    answers = beats(platform.origin_log, first, crowd_start)
    opened = [b for b in answers if b["opening_keys"] > 0]
    second_opened = [b for b in beats(platform.origin_log, second, crowd_start) if b["opening_keys"] > 0]
    return {
        "beats": answers,
        "first_opening_after_s": opened[0]["t"] if opened else None,
        "opening_keys_sent": sum(b["opening_keys"] for b in answers),
        "largest_answer_keys": max((b["prefetch"] for b in answers), default=0),
        "opening_seconds": opening,
        "crowd_title": crowd_title,
        "report": os.path.relpath(report, SCRATCH),  # under BENCH_DIR: no machine's paths in the results
        "pop_origin_fetches": delta(before, after, "pop", "edge_origin_fetches_total"),
        "pop_origin_bytes": delta(before, after, "pop", "edge_origin_bytes_total"),
        "origin_object_requests": delta(before, after, "origin", "origin_http_requests_total", "/v1/objects/"),
        "origin_served_bytes": delta(before, after, "origin", "origin_served_bytes_total"),
        **viewers(report),
        "second_pop": {
            "arrives_after_s": round(second_start - crowd_start, 1),
            "seconds": SECOND_SECONDS,
            "first_opening_after_s": second_opened[0]["t"] if second_opened else None,
            "origin_fetches_before_its_viewers": delta(before, arrival, "second", "edge_origin_fetches_total"),
            "origin_fetches_while_its_viewers_watched": delta(arrival, after, "second", "edge_origin_fetches_total"),
            "origin_bytes": delta(before, after, "second", "edge_origin_bytes_total"),
            "report": os.path.relpath(second_report, SCRATCH),
            **viewers(second_report),
        },
    }


def main():
    for exe in (ORIGIN, EDGE, LOADTEST):
        if not os.access(exe, os.X_OK):
            sys.exit(f"{exe} is missing: run `cargo build --release -p origin -p edge -p loadtest` first")
    src = clip()
    platform = Platform(os.path.join(SCRATCH, "platform"))
    legs = {}
    try:
        platform.start_origin(OPENING)
        started = time.monotonic()
        for i in range(CLIPS - 2):
            platform.ingest(src, f"catalogue {i}")
        crowd = {name: platform.ingest(src, f"crowd {name}") for name, _ in LEGS}
        print(f"{CLIPS} videos ready in {time.monotonic() - started:.0f} s", file=sys.stderr)
        for name, opening in LEGS:
            legs[name] = leg(platform, name, opening, crowd[name])
    finally:
        platform.stop()
    report(legs)


def fmt_ratio(r):
    return "n/a" if r is None else f"{100 * r:.2f} %"


def report(legs):
    off, on = (legs[name] for name, _ in LEGS)
    rows = [
        ("PoP origin fetches", lambda l: f"{l['pop_origin_fetches']:.0f}"),
        ("PoP bytes from the origin", lambda l: f"{l['pop_origin_bytes'] / 1e6:.1f} MB"),
        ("origin object requests (both PoPs)", lambda l: f"{l['origin_object_requests']:.0f}"),
        ("origin object bytes served (both PoPs)", lambda l: f"{l['origin_served_bytes'] / 1e6:.1f} MB"),
        ("first opening sent, after the crowd began",
         lambda l: "never" if l["first_opening_after_s"] is None else f"{l['first_opening_after_s']:.1f} s"),
        ("opening keys sent (largest answer)", lambda l: f"{l['opening_keys_sent']} ({l['largest_answer_keys']} keys)"),
        ("viewer requests (errors)", lambda l: f"{l['requests']} ({l['errors']})"),
        ("viewer cache misses", lambda l: f"{l['misses']}"),
        ("viewer hit ratio", lambda l: fmt_ratio(l["hit_ratio"])),
        ("viewer byte hit ratio", lambda l: fmt_ratio(l["byte_hit_ratio"])),
        ("startup p50 / p90 / p99",
         lambda l: f"{l['startup_ms']['p50']:.0f} / {l['startup_ms']['p90']:.0f} / {l['startup_ms']['p99']:.0f} ms"),
        ("viewings (stalls)", lambda l: f"{l['sessions']} ({l['stalls']})"),
        ("stall ratio", lambda l: fmt_ratio(l["stall_ratio"])),
        ("**second PoP**, crowd arrives after", lambda l: f"{l['second_pop']['arrives_after_s']:.1f} s"),
        ("first opening sent to it, after the crowd began",
         lambda l: "never" if l["second_pop"]["first_opening_after_s"] is None
         else f"{l['second_pop']['first_opening_after_s']:.1f} s"),
        ("its origin fetches before / while its viewers watched",
         lambda l: f"{l['second_pop']['origin_fetches_before_its_viewers']:.0f} / "
                   f"{l['second_pop']['origin_fetches_while_its_viewers_watched']:.0f}"),
        ("its viewer requests (errors)", lambda l: f"{l['second_pop']['requests']} ({l['second_pop']['errors']})"),
        ("its viewer cache misses", lambda l: f"{l['second_pop']['misses']}"),
        ("its viewer byte hit ratio", lambda l: fmt_ratio(l["second_pop"]["byte_hit_ratio"])),
        ("its startup p50 / p90 / p99",
         lambda l: "{p50:.0f} / {p90:.0f} / {p99:.0f} ms".format(**l["second_pop"]["startup_ms"])),
        ("its stall ratio", lambda l: fmt_ratio(l["second_pop"]["stall_ratio"])),
    ]
    print(f"\nFirst {SECONDS} s of a flash crowd, {VIEWERS} viewers at a PoP and {VIEWERS} more at a second PoP "
          f"of its region from {SECOND_DELAY} s on:\n")
    print(f"| | two segments (opening 0) | opening minute ({OPENING} s) |")
    print("|---|---|---|")
    for label, cell in rows:
        print(f"| {label} | {cell(off)} | {cell(on)} |")
    jit.write_result("flash-crowd", {"seconds": SECONDS, "viewers": VIEWERS, "second_delay": SECOND_DELAY,
                                     "second_seconds": SECOND_SECONDS, "clips": CLIPS,
                                     "clip_seconds": CLIP_SECONDS, "opening_seconds": OPENING, "seed": SEED,
                                     "legs": legs})


if __name__ == "__main__":
    main()

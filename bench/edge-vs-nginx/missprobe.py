#!/usr/bin/env python3
"""Where an edge's cold miss spends its time, from the wire: run.py's origin nginx and edge (the
same configs, the edge pinned to CPU0 with one worker thread, curl to CPU1), one curl at a time
on never-requested names, and a loopback capture (tcpdump, headers only) of every exchange. Per
miss, from the packets' own timestamps:

    request   curl's GET reaches the edge         -> the edge's GET leaves for the origin
    origin    the edge's GET leaves               -> the origin's first byte (its head)
    head      the origin's first byte              -> the edge's first byte to curl
    body      the edge's first byte to curl        -> its last
    hit       the second request of the name: curl's GET reaches the cache -> its first byte out

plus the origin's body bytes the edge had received before its own head went out, and whether
the miss opened a new connection to the origin (a SYN). Varnish (run.py's, pinned like the edge)
is measured the same way. `origin-range` is the origin asked directly with the edge's Range
header, `origin` without it, to see what the Range costs nginx.

    EDGE=target/release/edge EDGE_BASELINE=/tmp/edge-before bench/edge-vs-nginx/missprobe.py

With EDGE_BASELINE, both edges answer every name (alternating which goes first). Environment as
run.py's (BENCH_DIR, BENCH_COLD_URLS, default 40 here too); ORIGIN_CPU pins the origin nginx
(run.py leaves it unpinned); needs tcpdump. Prints the table of p50s and writes them, with
every request's phases, to bench/results/missprobe-<date>.json (BENCH_OUT: elsewhere).
"""
import datetime
import json
import os
import statistics
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ left next to run.py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the same setup as the bench)

SNAP = 128  # Ethernet + IP + TCP headers, and the first bytes of the payload


def read_pcap(path):
    """(seconds, src port, dst port, flags, payload length, first payload bytes) per TCP packet."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    scale = 1e-9 if magic == 0xA1B23C4D else 1e-6
    out, at = [], 24
    while at + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack("<IIII", data[at:at + 16])
        pkt = data[at + 16:at + 16 + incl]
        at += 16 + incl
        if len(pkt) < 34 or pkt[12:14] != b"\x08\x00":
            continue
        ihl = (pkt[14] & 0x0F) * 4
        total = struct.unpack(">H", pkt[16:18])[0]
        if pkt[23] != 6:
            continue
        tcp = pkt[14 + ihl:]
        sport, dport = struct.unpack(">HH", tcp[:4])
        off = (tcp[12] >> 4) * 4
        flags = tcp[13]
        payload = total - ihl - off
        out.append((sec + frac * scale, sport, dport, flags, payload, tcp[off:off + 16]))
    return out


def curl(url, extra=()):
    fmt = "%{http_code} %{time_starttransfer} %{time_total} %{size_download} %{local_port}"
    cmd = ["taskset", "-c", run.CLIENT_CPU, "curl", "-s", "-o", "/dev/null", "-w", fmt, *extra, url]
    code, ttfb, total, size, port = subprocess.run(cmd, capture_output=True, text=True).stdout.split()
    return int(code), float(ttfb) * 1e3, float(total) * 1e3, int(size), int(port)


def timeline(packets, client_port, edge_port, origin_port, t_from, t_to):
    """The phases of one miss from the packets between t_from and t_to."""
    window = [p for p in packets if t_from <= p[0] <= t_to]
    def first(src, dst, after=0.0, payload=True):
        return next((p for p in window if p[1] == src and p[2] == dst and p[0] >= after and
                     (p[4] > 0 if payload else True)), None)
    get = first(client_port, edge_port)
    if get is None:
        return None
    up = next((p for p in window if p[2] == origin_port and p[4] > 0 and p[0] >= get[0]), None)
    if up is None:
        # No origin request: a hit, served from the cache.
        out = first(edge_port, client_port, get[0])
        return {"hit": (out[0] - get[0]) * 1e3} if out else None
    conn = up[1]  # the edge's port toward the origin
    syn = any(p[2] == origin_port and p[1] == conn and p[3] & 0x02 for p in window)
    head = first(origin_port, conn, up[0])
    out = first(edge_port, client_port, get[0])
    last = max((p[0] for p in window if p[1] == edge_port and p[2] == client_port and p[4] > 0), default=None)
    if head is None or out is None:
        return None
    before = sum(p[4] for p in window if p[1] == origin_port and p[2] == conn and p[0] < out[0])
    return {"request": (up[0] - get[0]) * 1e3, "origin": (head[0] - up[0]) * 1e3, "head": (out[0] - head[0]) * 1e3,
            "body": (last - out[0]) * 1e3, "origin_bytes_before_head": before, "new_origin_connection": syn}


def main():
    run.ensure_packages({"tcpdump": ["tcpdump"]})
    os.makedirs(run.SCRATCH, exist_ok=True)
    cert, key = run.make_cert()
    objects = run.make_objects()
    pcap = os.path.join(run.SCRATCH, "miss.pcap")
    try:
        origin = run.start_origin(objects, os.environ.get("ORIGIN_CPU"))
        edges = {"edge": run.start_edge(origin, cert, key)}
        if run.BASELINE:
            edges["baseline"] = run.start_edge(origin, cert, key, run.BASELINE, "baseline")
        varnish = run.start_varnish(origin)
        dump = run.spawn(["tcpdump", "-i", "lo", "-s", str(SNAP), "-B", "65536", "-U", "--time-stamp-precision=nano",
                          "-w", pcap, "tcp"], "tcpdump")
        time.sleep(1.5)
        token = run.playback_token("cold")
        marks = []
        for label, _size in run.COLD_SIZES:
            for i in range(run.COLD_URLS):
                name = f"r0-{label}-{i}.bin"
                order = list(edges) if i % 2 == 0 else list(reversed(edges))
                urls = {side: (f"http://127.0.0.1:{edges[side]['http']}/p/{token}/cold/{name}", edges[side]["http"])
                        for side in order}
                urls["varnish"] = (f"http://127.0.0.1:{varnish}/v1/objects/cold/{name}", varnish)
                for phase in ("", "-hit"):
                    for side, (url, server) in urls.items():
                        t0 = time.time()
                        code, ttfb, total, got, port = curl(url)
                        marks.append((side + phase, label, t0, time.time(), port, server, ttfb, total, code))
                for side, extra in (("origin", ()), ("origin-range", ("-H", "Range: bytes=0-16769023"))):
                    t0 = time.time()
                    code, ttfb, total, got, port = curl(f"http://127.0.0.1:{origin}/v1/objects/cold/{name}", extra)
                    marks.append((side, label, t0, time.time(), port, origin, ttfb, total, code))
                time.sleep(0.01)
        time.sleep(0.5)
        dump.terminate()
        dump.wait(5)
    finally:
        run.stop_all()
    packets = read_pcap(pcap)
    rows = {}
    for side, label, t0, t1, port, server, ttfb, total, code in sorted(marks, key=lambda m: m[0]):
        r = {"ttfb": ttfb, "total": total}
        if not side.startswith("origin"):
            t = timeline(packets, port, server, origin, t0 - 0.001, t1 + 0.001)
            if t:
                r.update(t)
        rows.setdefault((side, label), []).append(r)
    print("p50 ms per phase (curl's TTFB and total; wire phases from the capture)\n")
    print("| side | size | curl TTFB | request | origin | head | body | hit | curl total | origin KiB in before head "
          "| new origin conns |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    med = lambda rs, k: statistics.median(r[k] for r in rs if k in r) if any(k in r for r in rs) else float("nan")
    for (side, label), rs in rows.items():
        news = sum(1 for r in rs if r.get("new_origin_connection"))
        print(f"| {side} | {label} | {med(rs, 'ttfb'):.3f} | {med(rs, 'request'):.3f} | {med(rs, 'origin'):.3f} "
              f"| {med(rs, 'head'):.3f} | {med(rs, 'body'):.3f} | {med(rs, 'hit'):.3f} | {med(rs, 'total'):.3f} "
              f"| {med(rs, 'origin_bytes_before_head') / 1024:.0f} | {news}/{len(rs)} |")
    keys = ("ttfb", "request", "origin", "head", "body", "hit", "total", "origin_bytes_before_head")
    result = {
        "benchmark": "missprobe",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": run.machine(),
        "settings": {"names_per_size": run.COLD_URLS, "sizes": dict(run.COLD_SIZES), "edge": run.EDGE,
                     "edge_baseline": run.BASELINE, "origin_cpu": os.environ.get("ORIGIN_CPU"),
                     "units": "ms, except origin_bytes_before_head (bytes)"},
        # A phase a side has no packets for (a hit has no origin phase) is null, not NaN.
        "p50": [{"side": side, "size": label, **{k: (lambda v: None if v != v else v)(med(rs, k)) for k in keys},
                 "new_origin_connections": sum(1 for r in rs if r.get("new_origin_connection")), "requests": len(rs)}
                for (side, label), rs in rows.items()],
        "requests": [{"side": side, "size": label, **r} for (side, label), rs in rows.items() for r in rs],
    }
    name = f"missprobe-{result['date'][:10]}.json"
    path = os.environ.get("BENCH_OUT") or os.path.join(run.ROOT, "bench", "results", name)
    with open(path, "w") as f:
        json.dump(result, f, indent=2, default=lambda v: None)
    print(f"wrote {os.path.relpath(path, run.ROOT)}")


if __name__ == "__main__":
    main()

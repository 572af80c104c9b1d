#!/usr/bin/env python3
"""Abuse on loopback, bounded: what a PoP and the origin hold under slowloris, header floods,
many idle connections and many cold range requests, and whether normal viewers keep being
served meanwhile.

    make bench-abuse                          # = build release origin + edge, then this
    BENCH_ATTACK_SECONDS=20 bench/abuse/run.py

A release origin and PoP (bench/jit-vs-ffmpeg's `Platform`) serve one ingested clip. For
each attack, ten viewers fetch a cached segment through the PoP in a loop (a new connection
every fifth request) while the attack runs against the PoP (the first three also against the
origin). Each line reports, per server, the most connections it held at once, how many it
refused or cut off, the viewers' p50/p99 latency and their errors, and the origin egress of
the cold-range attack against the bytes it asked for. The result goes to
bench/results/abuse-DATE.json.
"""

import asyncio
import json
import os
import re
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "jit-vs-ffmpeg"))
import run as jit  # noqa: E402  (the platform helpers: release binaries, Platform)

SECONDS = float(os.environ.get("BENCH_ATTACK_SECONDS", "15"))
ATTACKERS = int(os.environ.get("BENCH_ATTACKERS", "1500"))  # connections an attack opens
VIEWERS = 10


# ---- a minimal HTTP/1.1 client on asyncio streams ---------------------------------------

# Viewers come from their own loopback address, attackers from 16 others: the servers limit
# connections per client address, and a viewer behind an attacker's address is not the case
# measured here.
VIEWER_ADDRESS = "127.0.0.2"


def attacker_address(i):
    return f"127.0.1.{i % 16 + 1}"


async def get(host, port, path, headers=None, reader_writer=None, timeout=10.0, local=VIEWER_ADDRESS):
    """GET `path`; (status, body length, connection to reuse or None)."""
    if reader_writer is None:
        reader_writer = await asyncio.wait_for(asyncio.open_connection(host, port, local_addr=(local, 0)), timeout)
    reader, writer = reader_writer
    head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    writer.write((head + "\r\n").encode())
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout)
    status = int(status_line.split()[1])
    length, close = 0, False
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value.strip())
        if name.lower() == "connection" and value.strip().lower() == "close":
            close = True
    await asyncio.wait_for(reader.readexactly(length), timeout)
    if close:
        writer.close()
        return status, length, None
    return status, length, (reader, writer)


async def viewer(host, port, path, until, samples):
    conn, n = None, 0
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            status, _, conn = await get(host, port, path, reader_writer=conn)
            samples.append((time.monotonic() - started, status))
        except Exception:  # noqa: BLE001  (any failure is an error sample)
            samples.append((time.monotonic() - started, 0))
            conn = None
        n += 1
        if n % 5 == 0 and conn:
            conn[1].close()
            conn = None
        await asyncio.sleep(0.02)


# ---- attacks ----------------------------------------------------------------------------

async def hold(host, port, until, send, local):
    """One attacking connection: `send(writer)` until the deadline or the server hangs up."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, local_addr=(local, 0)), 5)
    except Exception:  # noqa: BLE001
        return "refused"
    try:
        while time.monotonic() < until:
            await send(writer)
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1024), 1.0) == b"":
                    return "closed"
            except asyncio.TimeoutError:
                pass
        return "held"
    except Exception:  # noqa: BLE001
        return "closed"
    finally:
        writer.close()


def slowloris(host):
    async def send(writer):
        if not getattr(writer, "started", False):
            writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\n".encode())
            writer.started = True
        writer.write(b"X-a: b\r\n")  # one more header line now and then, never the end
        await asyncio.sleep(2)
    return send


def header_flood(host):
    async def send(writer):
        writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\n".encode() + b"X-Flood: " + b"a" * 8000 + b"\r\n")
    return send


def idle(_host):
    async def send(_writer):
        await asyncio.sleep(1)
    return send


async def cold_ranges(host, port, paths, until):
    """`Range: bytes=0-0` for objects nobody asked for; (requests, bytes asked)."""
    sent = asked = 0
    conns = [None] * 8

    async def worker(i):
        nonlocal sent, asked
        while time.monotonic() < until and sent < len(paths):
            path = paths[sent % len(paths)]
            sent += 1
            try:
                _, length, conns[i] = await get(host, port, path, {"Range": "bytes=0-0"}, conns[i], local=attacker_address(i))
                asked += length
            except Exception:  # noqa: BLE001
                conns[i] = None
    await asyncio.gather(*(worker(i) for i in range(len(conns))))
    return sent, asked


# ---- measuring --------------------------------------------------------------------------

def metric(url, name, *labels):
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(l in line for l in labels):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def watch_open(url, name, until, peak):
    while time.monotonic() < until:
        try:
            peak[0] = max(peak[0], metric(url, name))
        except Exception:  # noqa: BLE001
            pass
        await asyncio.sleep(0.5)


def summary(samples):
    ok = sorted(t for t, s in samples if 200 <= s < 300)
    errors = sum(1 for _, s in samples if not 200 <= s < 300)
    p = lambda q: round(ok[min(len(ok) - 1, int(q * len(ok)))] * 1000, 1) if ok else None  # noqa: E731
    return {"requests": len(samples), "errors": errors, "p50_ms": p(0.5), "p99_ms": p(0.99)}


async def attack(name, target, stack, viewer_path, attack_fn):
    """Viewers through the PoP while `attack_fn`'s connections (if any) hit `target`."""
    host = "127.0.0.1"
    port = target["port"]
    until = time.monotonic() + SECONDS
    samples, peak = [], [0.0]
    refused_before = metric(target["metrics"], target["prefix"] + "connections_refused_total")
    timeouts_before = metric(target["metrics"], target["prefix"] + target["cut"])
    pop_port = int(stack.pop.rsplit(":", 1)[1])
    tasks = [viewer(host, pop_port, viewer_path, until, samples) for _ in range(VIEWERS)]
    tasks.append(watch_open(target["metrics"], target["prefix"] + "connections_open", until, peak))
    result = {}
    if attack_fn is None:
        await asyncio.gather(*tasks)
    else:
        outcomes = (await asyncio.gather(*tasks, *(hold(host, port, until, attack_fn(host), attacker_address(i)) for i in range(ATTACKERS))))[len(tasks):]
        result["attackers"] = {k: outcomes.count(k) for k in ("held", "closed", "refused")}
    result.update({
        "attack": name,
        "server": target["name"],
        "most_connections_open": peak[0],
        "refused": metric(target["metrics"], target["prefix"] + "connections_refused_total") - refused_before,
        "cut_off": metric(target["metrics"], target["prefix"] + target["cut"]) - timeouts_before,
        "viewers": summary(samples),
    })
    print(json.dumps(result), flush=True)
    return result


async def main():
    root = os.environ.get("BENCH_DIR") or tempfile.mkdtemp(prefix="bench-abuse-")
    stack = jit.Platform(os.path.join(root, "stack"), on_demand="enabled = false\n")
    try:
        src = os.path.join(root, "clip.mp4")
        jit.sh(["ffmpeg", "-y", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                "testsrc2=size=640x360:rate=30:duration=8", "-f", "lavfi", "-i", "sine=duration=8",
                "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac", src])
        master = stack.ingest(src, "abuse")
        base = re.sub(r"^https?://[^/]+", "", master).rsplit("/", 1)[0]
        viewer_path = f"{base}/360p/seg_00000.m4s"
        pop_port = int(stack.pop.rsplit(":", 1)[1])
        await get("127.0.0.1", pop_port, viewer_path)  # cached before anyone measures
        pop = {"name": "pop", "port": pop_port, "metrics": stack.pop_metrics + "/metrics", "prefix": "edge_",
               "cut": "timeouts_total"}
        origin = {"name": "origin", "port": stack.origin_port, "metrics": stack.metrics + "/metrics",
                  "prefix": "origin_", "cut": "connections_idle_closed_total"}
        results = [await attack("none (baseline)", pop, stack, viewer_path, None)]
        for name, fn in (("slowloris", slowloris), ("header flood", header_flood), ("idle connections", idle)):
            for target in (pop, origin):
                results.append(await attack(name, target, stack, viewer_path, fn))
        # Cold ranges: one byte of each object nobody asked for yet, then the same again; the
        # origin's egress for each pass. A PoP fetches an object below its block size whole,
        # once; larger ones by the block.
        paths = [f"{base}/{t}{r}/seg_{n:05d}.m4s" for t in ("", "cbcs/") for r in ("240p", "360p", "audio")
                 for n in range(4)]
        for name in ("cold ranges", "the same ranges again"):
            egress_before = metric(stack.metrics + "/metrics", "origin_served_bytes_total")
            sent, asked = await cold_ranges("127.0.0.1", pop_port, paths, time.monotonic() + SECONDS)
            egress = metric(stack.metrics + "/metrics", "origin_served_bytes_total") - egress_before
            cold = {"attack": name, "server": "pop", "requests": sent, "bytes_asked": asked,
                    "origin_egress_bytes": egress}
            print(json.dumps(cold), flush=True)
            results.append(cold)
    finally:
        stack.stop()
    jit.write_result("abuse", {"seconds": SECONDS, "attackers": ATTACKERS, "viewers": VIEWERS, "results": results})


if __name__ == "__main__":
    asyncio.run(main())

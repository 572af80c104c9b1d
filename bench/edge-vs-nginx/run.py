#!/usr/bin/env python3
"""The edge's memory tier against nginx serving the same files with sendfile, and the edge's
cold-miss latency against Varnish.

Hot throughput: 8 objects of 1 MiB and 8 of 4 MiB (random bytes), served by the edge after a
warm-up (every request a memory hit) and by nginx from disk (page cache hot), over HTTPS
(TLS 1.3, same ECDSA P-256 certificate, TLS_AES_128_GCM_SHA256) and plain HTTP/1.1, at 16, 64
and 256 connections. Layout `1w-pin` of the research anchors: one nginx worker or one edge
worker thread, pinned to CPU0; `wrk -t1` pinned to CPU1. Per cell the edge and nginx run back
to back (order alternating), so machine noise hits both. Server CPU-seconds are utime+stime
from /proc over the run (nginx master + worker, every thread of the edge).

The same hot cells (HTTPS and HTTP, 1 and 4 MiB, at 16 and 64 connections) are measured a
second time with our own harness, `loadtest run --pace fast` (target/release/loadtest, pinned to
CPU1 like wrk), so the comparison is not tied to one load tool. loadtest plays HLS: run.py writes
a master playlist per size (one variant) and a media playlist that cycles through the same 8
segment files, both served by nginx from disk and by the edge via pull-through, and the
catalogue file names the master under each server's prefix. One viewer = one HTTP/1.1
keep-alive connection (`--viewers N`), as wrk's `-cN`. GB/s is body bytes over the run from
report.json; the same /proc CPU accounting as for wrk.

Cold miss: 40 never-requested URLs per size (64 KiB, 1 MiB, 4 MiB), one curl at a time (pinned
to CPU1), from the edge and from Varnish (also pinned to CPU0), both pulling from the same
origin nginx, and from that origin directly; then the same URLs a second and a third time as
hits. TTFB is curl's time_starttransfer on a new connection.

HTTP/3: the edge listens for QUIC on its HTTPS port, and each loadtest HTTPS cell of the edge is
run a second time with `--protocol h3`, next to the edge's h1 run of the same cell (order
alternating). nginx-light has no HTTP/3, so this row compares the edge with itself: GB/s and
CPU-s/GB over h3, and their ratios to the edge's own HTTPS h1.

Prints markdown tables and writes bench/results/edge-vs-nginx-<date>.json.

Environment: BENCH_SECONDS (per wrk or loadtest run, default 5), BENCH_RUNS (repeats, default 1;
medians are reported), BENCH_DIR (scratch, default a temp dir), EDGE and LOADTEST (binaries;
default: build target/release/edge and target/release/loadtest), BENCH_LOADTEST=0 skips the
loadtest leg, BENCH_H3=0 skips the h3 cells (and leaves h3 off on the edge), BENCH_ONLY=hot or
BENCH_ONLY=coldmiss runs only that part, BENCH_COLD_URLS (default 40) names per size in the cold
part, EDGE_BASELINE (another edge binary, e.g. a build of the previous commit) is measured next to
EDGE in every hot cell and on every name of the cold part, so a change is compared in one run,
BENCH_PROTOS=http or =https runs only those hot cells, BENCH_CONNS and BENCH_LT_CONNS
(e.g. 16,256) replace the connection counts of the wrk and loadtest cells, BENCH_ORIGIN_CPU pins the origin nginx
(default: unpinned), BENCH_OUT writes the JSON there
instead of bench/results/ (where a partial run is named edge-vs-nginx-<date>-<part>.json).
"""
import base64
import datetime
import hashlib
import http.client
import json
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.dirname(os.path.abspath(__file__))
EDGE = os.environ.get("EDGE", os.path.join(ROOT, "target", "release", "edge"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
RUNS = int(os.environ.get("BENCH_RUNS", "1"))
LOADTEST = os.environ.get("LOADTEST", os.path.join(ROOT, "target", "release", "loadtest"))
WITH_LOADTEST = os.environ.get("BENCH_LOADTEST", "1") != "0"
WITH_H3 = WITH_LOADTEST and os.environ.get("BENCH_H3", "1") != "0"
ONLY = os.environ.get("BENCH_ONLY", "")
if ONLY not in ("", "hot", "coldmiss"):
    sys.exit(f"BENCH_ONLY={ONLY!r}: expected hot or coldmiss")
WITH_HOT, WITH_COLD = ONLY != "coldmiss", ONLY != "hot"
BASELINE = os.environ.get("EDGE_BASELINE")
SCRATCH = os.path.abspath(os.environ.get("BENCH_DIR") or tempfile.mkdtemp(prefix="bench-edge-"))

HOT_SIZES = [("1m", 1 << 20), ("4m", 4 << 20)]
HOT_FILES = 8  # per size: small enough to stay hot in the edge's memory and the page cache
# BENCH_PROTOS=http (or https) runs only those cells.
PROTOS = [p.strip() for p in os.environ.get("BENCH_PROTOS", "https,http").split(",")]
if not PROTOS or any(p not in ("https", "http") for p in PROTOS):
    sys.exit(f"BENCH_PROTOS={os.environ['BENCH_PROTOS']!r}: a comma-separated list of https and http")
# BENCH_CONNS and BENCH_LT_CONNS (comma-separated) replace the connection counts of wrk's and
# loadtest's cells.
CONNS = [int(c) for c in os.environ.get("BENCH_CONNS", "16,64,256").split(",")]
LT_CONNS = [int(c) for c in os.environ.get("BENCH_LT_CONNS", "16,64").split(",")]  # loadtest viewers, a connection each
# Entries of each media playlist: enough that no viewer reaches the end within a run (up to about
# 500 req/s per connection), small enough that fetching and parsing it does not weigh on the run.
PLAYLIST_SEGMENTS = max(1024, 512 * SECONDS)
COLD_SIZES = [("64k", 64 << 10), ("1m", 1 << 20), ("4m", 4 << 20)]
COLD_URLS = int(os.environ.get("BENCH_COLD_URLS", "40"))
SERVER_CPU, CLIENT_CPU = "0", "1"
# Where the origin nginx runs: unpinned unless BENCH_ORIGIN_CPU names a CPU.
ORIGIN_CPU = os.environ.get("BENCH_ORIGIN_CPU") or None
CIPHER = "TLS_AES_128_GCM_SHA256"
# The origin's Ed25519 signing seed (bench only); the edge is given its public key.
KID, SEED = "b1", b"bench-only-ed25519-seed-32-bytes"
CREDENTIAL = "bench.bench-pop-credential-0123456789"  # the stand-in origin checks nothing
# Segments are immutable: the edge and Varnish cache them for as long as they like.
IMMUTABLE = "public, max-age=31536000, immutable"
CLK_TCK = os.sysconf("SC_CLK_TCK")
STARTED = []  # every process this script started, stopped on exit
PORTS = set()  # ports handed out so far


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


# ---------------------------------------------------------------------------------------------
# Setup: packages, binary, certificate, objects


def ensure_packages(extra=None):
    """Installs Debian's nginx, wrk and varnish (and `extra`: {command: [packages]}) when their
    commands are missing."""
    wanted = {"nginx": ["nginx-light", "nginx"], "wrk": ["wrk"], "varnishd": ["varnish"], **(extra or {})}
    missing = [pkgs for cmd, pkgs in wanted.items() if shutil.which(cmd) is None]
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # The packages would start their services on ports 80 and 6081 at install time; Debian's
    # policy-rc.d hook (exit 101) stops that. Only add one for the install if none exists.
    policy = "/usr/sbin/policy-rc.d"
    added_policy = False
    if not os.path.exists(policy):
        sh(sudo + ["sh", "-c", f"printf '#!/bin/sh\\nexit 101\\n' > {policy} && chmod 755 {policy}"])
        added_policy = True
    try:
        sh(sudo + ["apt-get", "update", "-qq"], env=env)
        for choices in missing:
            for i, pkg in enumerate(choices):
                r = subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", pkg], env=env)
                if r.returncode == 0:
                    break
                if i == len(choices) - 1:
                    sys.exit(f"cannot install any of {choices}")
    finally:
        if added_policy:
            sh(sudo + ["rm", "-f", policy])
    # On a systemd host, keep the packaged services off for good: we run our own instances.
    if os.path.isdir("/run/systemd/system") and shutil.which("systemctl"):
        subprocess.run(sudo + ["systemctl", "disable", "--now", "nginx", "varnish", "varnishncsa"],
                       stderr=subprocess.DEVNULL)


def ensure_binaries():
    packages = [] if "EDGE" in os.environ else ["-p", "edge"]
    if WITH_LOADTEST and WITH_HOT and "LOADTEST" not in os.environ:
        packages += ["-p", "loadtest"]
    if packages:
        cargo = shutil.which("cargo") or os.path.expanduser("~/.cargo/bin/cargo")
        sh([cargo, "build", "--release", *packages], cwd=ROOT)
    for binary in [EDGE] + ([LOADTEST] if WITH_LOADTEST and WITH_HOT else []) + ([BASELINE] if BASELINE else []):
        if not os.path.exists(binary):
            sys.exit(f"{binary} not found")


def make_cert():
    """One ECDSA P-256 self-signed certificate, presented by both nginx and the edge."""
    cert, key = os.path.join(SCRATCH, "cert.pem"), os.path.join(SCRATCH, "key.pem")
    if not (os.path.exists(cert) and os.path.exists(key)):
        sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], stderr=subprocess.DEVNULL)
    return cert, key


def openssl_client_conf(suites=CIPHER, name="openssl-client.cnf"):
    """An OpenSSL config that makes wrk (and s_client) offer only TLS 1.3 with one cipher suite,
    so both servers negotiate the same one (rustls and OpenSSL would otherwise take the client's
    first choice, AES-256-GCM)."""
    path = os.path.join(SCRATCH, name)
    with open(path, "w") as f:
        f.write("openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n[ssl_sect]\n"
                "system_default = system_default_sect\n[system_default_sect]\n"
                f"MinProtocol = TLSv1.3\nCiphersuites = {suites}\n")
    return path


# loadtest's rustls client (ring provider) offers the TLS 1.3 suites in this order; both servers
# follow the client's order, so over loadtest both negotiate AES-256-GCM. run.py checks that
# with s_client offering the same list.
RUSTLS_SUITES = "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"


def spki_pin(cert):
    """base64(SHA-256(SubjectPublicKeyInfo)), what `loadtest --spki-pin` takes."""
    pub = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"], check=True,
                         capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, check=True,
                         capture_output=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def write_random(path, size):
    if os.path.exists(path) and os.path.getsize(path) == size:
        return
    with open(path + ".partial", "wb") as f:
        f.write(os.urandom(size))
    os.rename(path + ".partial", path)


def make_objects():
    """objects/hot/<size>-<i>.bin: distinct random files for the throughput runs.
    objects/cold/r<rep>-<size>-<i>.bin: hard links to one random file per size, so every cold URL
    is new to the caches while the origin reads the same hot page cache."""
    objects = os.path.join(SCRATCH, "objects")
    for video in ("hot", "cold"):
        os.makedirs(os.path.join(objects, video), exist_ok=True)
    for label, size in HOT_SIZES:
        for i in range(HOT_FILES):
            write_random(os.path.join(objects, "hot", f"{label}-{i}.bin"), size)
    for label, _ in HOT_SIZES:
        write_playlists(os.path.join(objects, "hot"), label)
    for label, size in COLD_SIZES:
        master = os.path.join(objects, f"cold-{label}.bin")
        write_random(master, size)
        for rep in range(RUNS):
            for i in range(COLD_URLS):
                link = os.path.join(objects, "cold", f"r{rep}-{label}-{i}.bin")
                if not os.path.exists(link):
                    os.link(master, link)
    # nginx workers and Varnish drop root: they must be able to read the scratch tree.
    for d, _, files in os.walk(SCRATCH):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    return objects


def write_playlists(folder, label):
    """<label>.m3u8 (master, one variant) and <label>-media.m3u8 (VOD, PLAYLIST_SEGMENTS entries
    of 2 s cycling through <label>-0.bin ... <label>-7.bin). URIs are relative, so the same files
    work under nginx's /static/hot/ and the edge's /p/<token>/hot/."""
    with open(os.path.join(folder, f"{label}.m3u8"), "w") as f:
        f.write(f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:BANDWIDTH=8000000\n{label}-media.m3u8\n")
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0",
             "#EXT-X-PLAYLIST-TYPE:VOD"]
    for i in range(PLAYLIST_SEGMENTS):
        lines += ["#EXTINF:2.000,", f"{label}-{i % HOT_FILES}.bin"]
    lines.append("#EXT-X-ENDLIST")
    with open(os.path.join(folder, f"{label}-media.m3u8"), "w") as f:
        f.write("\n".join(lines) + "\n")


def signing_key():
    """The seed as a PKCS#8 DER file OpenSSL signs with, and its 32-byte public key (hex)."""
    path = os.path.join(SCRATCH, "signing-key.der")
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(bytes.fromhex("302e020100300506032b657004220420") + SEED)
    public = subprocess.run(["openssl", "pkey", "-inform", "DER", "-in", path, "-pubout", "-outform", "DER"],
                            check=True, capture_output=True).stdout[-32:]
    return path, public.hex()


def playback_token(video, expires=None):
    """`v2.KID.d.VIDEO.EXPIRES.VIEWER.SIG` (a delivery token), as pop-config/src/token.rs signs it."""
    expires = expires or int(time.time()) + 86400
    viewer = "-"
    msg = f"play2\n{KID}\nd\n{video}\n{expires}\n{viewer}".encode()
    key, _ = signing_key()
    # OpenSSL 3.0 signs Ed25519 only from a file: the whole message at once.
    with tempfile.NamedTemporaryFile(dir=SCRATCH) as m:
        m.write(msg)
        m.flush()
        sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", key, "-keyform", "DER", "-rawin", "-in", m.name],
                             check=True, capture_output=True).stdout
    return f"v2.{KID}.d.{video}.{expires}.{viewer}.{base64.urlsafe_b64encode(sig).decode().rstrip('=')}"


# ---------------------------------------------------------------------------------------------
# Processes


def free_port():
    """A port the kernel says is free, never the same one twice in a run."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in PORTS:
            PORTS.add(port)
            return port


def wait_port(port, proc, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{proc.args[0]} exited with {proc.returncode} (logs in {SCRATCH})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port} after {timeout} s (logs in {SCRATCH})")


def spawn(cmd, name, **kw):
    logf = open(os.path.join(SCRATCH, f"{name}.log"), "w")
    proc = subprocess.Popen(cmd, stderr=logf, stdout=kw.pop("stdout", logf), **kw)
    STARTED.append(proc)
    return proc


def stop_all():
    for proc in reversed(STARTED):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in reversed(STARTED):
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def children(pid):
    """Direct children of pid (nginx's workers), from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


def cpu_seconds(pids):
    """utime+stime of the processes (all their threads), in seconds."""
    ticks = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return ticks / CLK_TCK


def machine_busy():
    """CPU-seconds the whole machine spent busy (and stolen by the hypervisor), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    steal = fields[7] if len(fields) > 7 else 0
    return (sum(fields[:8]) - idle - steal) / CLK_TCK, steal / CLK_TCK


def nginx_conf(name, servers):
    """A self-contained nginx config in the scratch dir (own pid, logs and temp paths)."""
    prefix = os.path.join(SCRATCH, name)
    os.makedirs(prefix, exist_ok=True)
    temp = "".join(f"    {k}_temp_path {prefix}/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = f"""worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush off;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
{temp}{servers}}}
"""
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return prefix, path


def start_nginx(name, servers, ports, pin):
    prefix, conf = nginx_conf(name, servers)
    cmd = ["nginx", "-p", prefix, "-e", os.path.join(prefix, "error.log"), "-c", conf, "-g", "daemon off;"]
    proc = spawn((["taskset", "-c", pin] if pin else []) + cmd, name)
    for port in ports:
        wait_port(port, proc)
    return proc


def start_origin(objects, pin=None):
    """The origin both caches pull from: nginx, unpinned unless `pin` names a CPU."""
    port = free_port()
    servers = f"""    server {{
        listen 127.0.0.1:{port};
        location /v1/objects/ {{
            alias {objects}/;
            add_header Cache-Control "{IMMUTABLE}";
        }}
        # The PoP's heartbeat, answered as the origin would with no takedowns: a PoP whose
        # beats fail retries every second and, past origin.max_purge_lag, serves nothing.
        location = /v1/pops/heartbeat {{
            default_type application/json;
            return 200 '{{"next":0}}';
        }}
    }}
"""
    start_nginx("origin", servers, [port], pin=pin)
    return port


def start_static(objects, cert, key):
    """The nginx under test: one worker pinned to the server CPU, files by sendfile."""
    https, http_ = free_port(), free_port()
    servers = f"""    server {{
        listen 127.0.0.1:{https} ssl;
        listen 127.0.0.1:{http_};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        location /static/ {{
            alias {objects}/;
            add_header Cache-Control "{IMMUTABLE}";
        }}
    }}
"""
    proc = start_nginx("nginx", servers, [https, http_], pin=SERVER_CPU)
    workers = children(proc.pid)
    if len(workers) != 1:
        sys.exit(f"expected one nginx worker, found {workers}")
    return {"name": "nginx", "proc": proc, "pids": [proc.pid] + workers, "https": https, "http": http_, "prefix": "/static/hot/"}


def start_edge(origin_port, cert, key, binary=EDGE, name="edge"):
    """`binary` as a PoP pulling from the origin, one worker thread pinned to the server CPU; its
    config, cache and log under `name` in the scratch dir."""
    https, http_, metrics = free_port(), free_port(), free_port()
    cache = os.path.join(SCRATCH, f"{name}-cache")
    config = os.path.join(SCRATCH, f"{name}.toml")
    with open(config, "w") as f:
        f.write(f"""[pop]
id = "bench"
[listen]
https = "127.0.0.1:{https}"
# QUIC on the HTTPS port (UDP), for the h3 cells.
h3 = {"true" if WITH_H3 else "false"}
http = "127.0.0.1:{http_}"
# Its own port: the default one would clash with another PoP on the box.
metrics = "127.0.0.1:{metrics}"
[tls]
cert = "{cert}"
key = "{key}"
[origin]
urls = ["http://127.0.0.1:{origin_port}"]
credential = "{CREDENTIAL}"
[[tokens]]
kid = "{KID}"
public_key = "{signing_key()[1]}"
[cache]
memory = "1GiB"
disk = "0"
path = "{cache}"
[limits]
# Every viewer of the bench comes from 127.0.0.1: the per-address cap (256 by default) would
# refuse loadtest's 256-viewer cells, which open a few connections more than viewers.
max_connections_per_address = 4096
[prefetch]
enabled = false
heartbeat = "60s"
[uploads]
enabled = false
""")
    cmd = ["taskset", "-c", SERVER_CPU, binary, "serve", "--config", config, "--threads", "1"]
    # rustls warns on every handshake from wrk (it sends the IP address as SNI): keep that
    # logging cost out of the measurement.
    env = dict(os.environ, EDGE_LOG="info,rustls=error")
    proc = spawn(cmd, name, stdout=subprocess.PIPE, text=True, env=env)
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("edge listening"):
        sys.exit(f"the edge did not start: {line!r} (log in {SCRATCH}/{name}.log)")
    wait_port(https, proc)
    return {"name": "edge", "proc": proc, "pids": [proc.pid], "https": https, "http": http_, "metrics": metrics,
            "prefix": f"/p/{playback_token('hot')}/hot/"}


def start_varnish(origin_port):
    port = free_port()
    workdir = os.path.join(SCRATCH, "varnish")
    os.makedirs(workdir, exist_ok=True)
    cmd = ["taskset", "-c", SERVER_CPU, "varnishd", "-F", "-a", f"127.0.0.1:{port}",
           "-b", f"127.0.0.1:{origin_port}", "-s", "malloc,512M", "-n", workdir]
    wait_port(port, spawn(cmd, "varnish"), timeout=60)
    return port


# ---------------------------------------------------------------------------------------------
# Checks and warm-up


def get(port, path):
    """GET over plain HTTP: status, headers (lower-case), body length."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, len(body)


def warm(servers):
    """Every hot object twice through the edge and the baseline edge, if any (the second must be
    a memory hit), and once through nginx; all must answer 200 with the full length."""
    for edge in [servers[side] for side in ("edge", "baseline") if side in servers]:
        warm_edge(edge, servers["nginx"])


def warm_edge(edge, nginx):
    for label, size in HOT_SIZES:
        for i in range(HOT_FILES):
            name = f"{label}-{i}.bin"
            for attempt in range(2):
                status, headers, length = get(edge["http"], edge["prefix"] + name)
                if status != 200 or length != size:
                    sys.exit(f"edge {name}: {status}, {length} bytes")
                want = "miss" if attempt == 0 else "hit-memory"
                if attempt == 1 and headers.get("x-cache") != want:
                    sys.exit(f"edge {name}: x-cache {headers.get('x-cache')!r}, expected {want}")
            status, _, length = get(nginx["http"], nginx["prefix"] + name)
            if status != 200 or length != size:
                sys.exit(f"nginx {name}: {status}, {length} bytes")
        # loadtest's playlists, the same way (their size: whatever nginx serves).
        for name in (f"{label}.m3u8", f"{label}-media.m3u8"):
            status, _, want = get(nginx["http"], nginx["prefix"] + name)
            if status != 200:
                sys.exit(f"nginx {name}: {status}")
            for attempt in range(2):
                status, headers, length = get(edge["http"], edge["prefix"] + name)
                if status != 200 or length != want:
                    sys.exit(f"edge {name}: {status}, {length} bytes (nginx: {want})")
                if attempt == 1 and headers.get("x-cache") != "hit-memory":
                    sys.exit(f"edge {name}: x-cache {headers.get('x-cache')!r}, expected hit-memory")


def negotiated_cipher(port, env):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief"],
                       input="", capture_output=True, text=True, env=env, timeout=10)
    m = re.search(r"Ciphersuite: (\S+)", r.stdout + r.stderr)
    return m.group(1) if m else "unknown"


# ---------------------------------------------------------------------------------------------
# Hot throughput


def measured(server, cmd, path, env, tag):
    """Runs one load client (already pinned by `cmd`) to completion, its output in `path`, and
    measures the CPU the server, the client and everything else used meanwhile."""
    before = cpu_seconds(server["pids"])
    busy_before, steal_before = machine_busy()
    t0 = time.monotonic()
    with open(path, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        # taskset execs the client in place, so this is the client's own CPU (every thread):
        # near 1.0 per second means the client was the limit.
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    if server["proc"].poll() is not None:
        sys.exit(f"{server['name']} exited with {server['proc'].returncode} during {tag} (log in {SCRATCH})")
    cpu = cpu_seconds(server["pids"]) - before
    busy_after, steal_after = machine_busy()
    client = usage.ru_utime + usage.ru_stime
    with open(path) as f:
        text = f.read()
    return {"status": status, "text": text, "wall": wall, "cpu": cpu, "client": client,
            # Cores used by everything else on the box (and stolen from it): noise, should be ~0.
            "other": max(0.0, busy_after - busy_before - cpu - client), "steal": steal_after - steal_before}


def wrk_run(server, proto, label, conns, env, tag):
    url = f"{proto}://127.0.0.1:{server[proto]}"
    cmd = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{conns}", f"-d{SECONDS}s", "--timeout", "10s",
           "--latency", "-s", os.path.join(HERE, "rotate.lua"), url, "--", server["prefix"], label, str(HOT_FILES)]
    m = measured(server, cmd, os.path.join(SCRATCH, "wrk", f"{tag}.txt"), env, tag)
    line = next((l for l in m["text"].splitlines() if l.startswith("{")), None)
    if m["status"] != 0 or line is None:
        sys.exit(f"wrk failed for {tag}:\n{m['text']}")
    s = json.loads(line)
    secs = s["duration_us"] / 1e6
    gb = s["bytes"] / 1e9
    return {
        "req_s": s["requests"] / secs,
        "gb_s": gb / secs,
        "p50_ms": s["p50_us"] / 1e3,
        "p99_ms": s["p99_us"] / 1e3,
        "cpu_s": m["cpu"],
        "cpu_s_per_gb": m["cpu"] / gb if gb else float("nan"),
        "server_busy": m["cpu"] / secs,  # cores the server used; 1.0 is all of CPU0
        "client_busy": m["client"] / secs,
        "other_busy": m["other"] / secs,
        "steal": m["steal"] / secs,
        "errors": {k: s[k] for k in ("connect_errors", "read_errors", "write_errors", "non_2xx_3xx", "timeouts")},
        "requests": s["requests"],
        "bytes": s["bytes"],
        "seconds": secs,
    }


def loadtest_run(server, proto, label, conns, pin, tag, protocol="h1"):
    """`loadtest run --pace fast`: `conns` viewers, each on its own HTTP/1.1 keep-alive
    connection (or, with `protocol` h3, its own QUIC connection to the HTTPS port), each playing
    the size's master playlist from the start."""
    folder = os.path.join(SCRATCH, "loadtest")
    catalogue = os.path.join(folder, f"catalogue-{server['name']}-{label}.txt")
    with open(catalogue, "w") as f:
        f.write(f"{server['prefix']}{label}.m3u8\n")
    report = os.path.join(folder, tag)
    cmd = ["taskset", "-c", CLIENT_CPU, LOADTEST, "run", "--target", f"{proto}://127.0.0.1:{server[proto]}",
           "--scenario", os.path.join(HERE, "hot.toml"), "--pace", "fast", "--catalogue", catalogue,
           "--viewers", str(conns), "--duration", f"{SECONDS}s", "--protocol", protocol, "--seed", "1",
           "--quiet", "--report", report]
    if proto == "https":
        cmd += ["--spki-pin", pin]
    m = measured(server, cmd, os.path.join(folder, f"{tag}.txt"), None, tag)
    path = os.path.join(report, "report.json")
    if m["status"] != 0 or not os.path.exists(path):
        sys.exit(f"loadtest failed for {tag}:\n{m['text']}")
    with open(path) as f:
        r = json.load(f)
    t = r["totals"]
    secs = r["run"]["seconds"]
    gb = t["bytes"] / 1e9
    seg = r["latency"]["segment_ms"]
    errors = dict(t["errors_by_kind"])
    # A hot run must be all hits at the edge: anything else would measure the origin.
    cache = r["cache"]
    not_hit = cache["misses"] + cache["stale"] + cache["other"] if server["name"] == "edge" else 0
    if not_hit:
        errors["not_a_hit"] = not_hit
    return {
        "req_s": t["requests_per_second"],
        "gb_s": gb / secs,
        "p50_ms": seg["p50"],  # segment download time (request sent to last byte), like wrk's latency
        "p99_ms": seg["p99"],
        "cpu_s": m["cpu"],
        "cpu_s_per_gb": m["cpu"] / gb if gb else float("nan"),
        # CPU is counted over the client's whole life (start-up and drain too): per its wall time.
        "server_busy": m["cpu"] / m["wall"],
        "client_busy": m["client"] / m["wall"],
        # The client's own cost per byte: which side runs out of its core first (h3 cells).
        "client_cpu_s_per_gb": m["client"] / gb if gb else float("nan"),
        "other_busy": m["other"] / m["wall"],
        "steal": m["steal"] / m["wall"],
        "errors": errors,
        "requests": t["requests"],
        "segments": r["by_kind"].get("segment", {}).get("requests", 0),
        "bytes": t["bytes"],
        "seconds": secs,
        "sessions": r["playback"]["sessions"],
    }


def log_run(tool, tag, r):
    bad = sum(r["errors"].values())
    log(f"{tool:8} {tag:28} {r['req_s']:8.0f} req/s {r['gb_s']:6.2f} GB/s p50 {r['p50_ms']:7.2f} "
        f"p99 {r['p99_ms']:7.2f} ms {r['cpu_s_per_gb']:5.3f} CPU-s/GB busy srv {r['server_busy']:4.2f} "
        f"client {r['client_busy']:4.2f} other {r['other_busy'] + r['steal']:4.2f}"
        + (f"  ERRORS {r['errors']}" if bad else ""))


def hot(servers, env, pin):
    """Per repeat: every wrk cell, then every loadtest cell; edge and nginx back to back in
    each cell, alternating which goes first."""
    os.makedirs(os.path.join(SCRATCH, "wrk"), exist_ok=True)
    os.makedirs(os.path.join(SCRATCH, "loadtest"), exist_ok=True)
    tools = [("wrk", CONNS)] + ([("loadtest", LT_CONNS)] if WITH_LOADTEST else [])
    runs = []
    n = 0
    for rep in range(RUNS):
        for tool, conns_list in tools:
            for label, _ in HOT_SIZES:
                for proto in PROTOS:
                    for conns in conns_list:
                        # Alternate which side goes first, so neither always runs on a warmer box.
                        order = ("edge", "nginx") if n % 2 == 0 else ("nginx", "edge")
                        n += 1
                        # The edge's h3 run sits next to its own HTTPS h1 run, before it when the
                        # edge goes first and after it otherwise, so neither protocol always
                        # follows nginx.
                        h3 = WITH_H3 and tool == "loadtest" and proto == "https"
                        steps = [(side, proto) for side in order]
                        if h3:
                            steps.insert(0 if order[0] == "edge" else len(steps), ("edge", "h3"))
                        if "baseline" in servers:
                            # The baseline edge next to the edge, on the side away from the h3 run, so
                            # the two meet the same box and take turns going first (and h3 stays
                            # next to the edge's own HTTPS run).
                            at = steps.index(("edge", proto))
                            steps.insert(at if order[0] == "nginx" else at + 1, ("baseline", proto))
                        for side, spoken in steps:
                            tag = f"r{rep}-{side}-{label}-{spoken}-c{conns}"
                            if tool == "wrk":
                                r = wrk_run(servers[side], proto, label, conns, env, tag)
                            else:
                                protocol = "h3" if spoken == "h3" else "h1"
                                r = loadtest_run(servers[side], proto, label, conns, pin, tag, protocol)
                            r.update(tool=tool, rep=rep, side=side, size=label, proto=spoken, conns=conns)
                            runs.append(r)
                            log_run(tool, tag, r)
    return runs


def summarize_hot(runs, tool):
    cells = []
    for label, _ in HOT_SIZES:
        for proto in PROTOS:
            for conns in (CONNS if tool == "wrk" else LT_CONNS):
                cell = {"tool": tool, "size": label, "proto": proto, "conns": conns}
                for side in ("edge", "nginx", "baseline"):
                    rs = [r for r in runs if (r["tool"], r["size"], r["proto"], r["conns"], r["side"]) ==
                          (tool, label, proto, conns, side)]
                    if rs:
                        cell[side] = medians(rs, ("req_s", "gb_s", "p50_ms", "p99_ms", "cpu_s_per_gb", "server_busy",
                                                  "client_busy", "other_busy", "steal"))
                if "edge" in cell and "nginx" in cell:
                    cell["ratio_gb_s"] = cell["edge"]["gb_s"] / cell["nginx"]["gb_s"]
                    cell["ratio_cpu_s_per_gb"] = cell["edge"]["cpu_s_per_gb"] / cell["nginx"]["cpu_s_per_gb"]
                    if "baseline" in cell:
                        cell["ratio_gb_s_to_baseline"] = cell["edge"]["gb_s"] / cell["baseline"]["gb_s"]
                        cell["ratio_cpu_s_per_gb_to_baseline"] = (cell["edge"]["cpu_s_per_gb"] /
                                                                  cell["baseline"]["cpu_s_per_gb"])
                    cells.append(cell)
    return cells


def medians(rs, keys):
    """The median of each of `keys` over the runs `rs` of one cell and side, and their errors."""
    out = {k: statistics.median(r[k] for r in rs) for k in keys}
    out["errors"] = sum(sum(r["errors"].values()) for r in rs)
    return out


def summarize_h3(runs):
    """The edge over h3 against the edge over HTTPS h1, per loadtest cell (medians of runs)."""
    cells = []
    keys = ("req_s", "gb_s", "p50_ms", "p99_ms", "cpu_s_per_gb", "client_cpu_s_per_gb", "server_busy", "client_busy",
            "other_busy", "steal")
    for label, _ in HOT_SIZES:
        for conns in LT_CONNS:
            cell = {"tool": "loadtest", "size": label, "conns": conns}
            for proto, name in (("h3", "h3"), ("https", "h1")):
                rs = [r for r in runs if (r["tool"], r["size"], r["proto"], r["conns"], r["side"]) ==
                      ("loadtest", label, proto, conns, "edge")]
                if not rs:
                    break
                cell[name] = medians(rs, keys)
            else:
                cell["ratio_gb_s"] = cell["h3"]["gb_s"] / cell["h1"]["gb_s"]
                cell["ratio_cpu_s_per_gb"] = cell["h3"]["cpu_s_per_gb"] / cell["h1"]["cpu_s_per_gb"]
                cells.append(cell)
    return cells


def verdict_h3(cells):
    if not cells:
        return {}
    gb = [c["ratio_gb_s"] for c in cells]
    cpu = [c["ratio_cpu_s_per_gb"] for c in cells]
    return {"gb_s_ratio_geomean": geomean(gb), "gb_s_ratio_min": min(gb), "cpu_ratio_geomean": geomean(cpu),
            "cpu_ratio_max": max(cpu), "target": "h3 GB/s >= 0.7x the edge's own HTTPS h1",
            "met": geomean(gb) >= 0.7, "met_in_every_cell": min(gb) >= 0.7}


def geomean(xs):
    xs = list(xs)
    return statistics.geometric_mean(xs) if xs else float("nan")


def verdicts(cells):
    """The issue's targets, over the cells of each protocol (geometric mean and worst cell)."""
    out = {}
    if not cells:
        return out
    for proto in PROTOS:
        cs = [c for c in cells if c["proto"] == proto]
        gb = [c["ratio_gb_s"] for c in cs]
        cpu = [c["ratio_cpu_s_per_gb"] for c in cs]
        out[proto] = {"gb_s_ratio_geomean": geomean(gb), "gb_s_ratio_min": min(gb),
                      "cpu_ratio_geomean": geomean(cpu), "cpu_ratio_max": max(cpu)}
    if "https" in out:
        out["https"]["target"] = "GB/s >= 1.25x nginx at CPU-s/GB <= 0.8x"
        out["https"]["met"] = out["https"]["gb_s_ratio_geomean"] >= 1.25 and out["https"]["cpu_ratio_geomean"] <= 0.8
    if "http" in out:
        # nginx's sendfile throughput at equal or lower CPU per byte, in every cell.
        out["http"]["target"] = "GB/s >= 1.0x nginx at CPU-s/GB <= 1.0x, every cell"
        out["http"]["met"] = out["http"]["gb_s_ratio_min"] >= 1.0 and out["http"]["cpu_ratio_max"] <= 1.0
    return out


# ---------------------------------------------------------------------------------------------
# Cold miss


PHASES = ("miss", "hit", "hit3")  # first, second and third request of each URL


def curl(url):
    """status, TTFB ms, total ms, bytes, x-cache, x-varnish of one request on a new connection,
    curl pinned to the client CPU like wrk."""
    fmt = "%{http_code} %{time_starttransfer} %{time_total} %{size_download} [%header{x-cache}] [%header{x-varnish}]"
    cmd = ["taskset", "-c", CLIENT_CPU, "curl", "-s", "-o", "/dev/null", "-w", fmt, url]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    code, ttfb, total, size, rest = out.split(" ", 4)
    xcache, xvarnish = re.findall(r"\[([^\]]*)\]", rest)
    return int(code), float(ttfb) * 1e3, float(total) * 1e3, int(size), xcache, xvarnish


def percentiles(xs):
    xs = sorted(xs)
    return {"p50": statistics.median(xs), "p90": xs[int(0.9 * (len(xs) - 1))], "max": xs[-1]}


def cold(edge_port, varnish_port, origin_port, baseline_port=None):
    """One request at a time on never-seen names, the edge, Varnish and the origin itself in turn
    on each name (and the baseline edge, when there is one, next to the edge: which of the two
    goes first alternates by name). The second request of a URL is its first hit; the edge also
    copies the object then (disk admission), so a third request shows the steady-state hit."""
    token = playback_token("cold")
    bases = {"edge": f"http://127.0.0.1:{edge_port}/p/{token}/cold/",
             "varnish": f"http://127.0.0.1:{varnish_port}/v1/objects/cold/",
             "origin": f"http://127.0.0.1:{origin_port}/v1/objects/cold/"}
    if baseline_port:
        bases["baseline"] = f"http://127.0.0.1:{baseline_port}/p/{token}/cold/"
    samples = []
    problems = []
    for rep in range(RUNS):
        for label, size in COLD_SIZES:
            for phase in PHASES:
                for i in range(COLD_URLS):
                    name = f"r{rep}-{label}-{i}.bin"
                    edges = ["edge", "baseline"] if i % 2 == 0 else ["baseline", "edge"]
                    for side in [e for e in edges if e in bases] + ["varnish", "origin"]:
                        code, ttfb, total, got, xcache, xvarnish = curl(bases[side] + name)
                        # A miss must really go to the origin, a hit must really be cached.
                        hit = phase != "miss"
                        cached = {"edge": xcache.startswith("hit"), "baseline": xcache.startswith("hit"),
                                  "varnish": len(xvarnish.split()) == 2, "origin": hit}[side]
                        if code != 200 or got != size or cached != hit:
                            problems.append(f"{side} {phase} {name}: {code}, {got} bytes, "
                                            f"x-cache {xcache!r}, x-varnish {xvarnish!r}")
                        samples.append({"side": side, "size": label, "phase": phase, "rep": rep,
                                        "ttfb_ms": ttfb, "total_ms": total})
    sides = [s for s in ("edge", "baseline", "varnish", "origin") if s in bases]
    rows = []
    for label, _ in COLD_SIZES:
        row = {"size": label}
        for side in sides:
            for phase in PHASES:
                ss = [s for s in samples if (s["side"], s["size"], s["phase"]) == (side, label, phase)]
                t, tt = percentiles(s["ttfb_ms"] for s in ss), percentiles(s["total_ms"] for s in ss)
                row[f"{side}_{phase}"] = {"ttfb_p50_ms": t["p50"], "ttfb_p90_ms": t["p90"], "ttfb_max_ms": t["max"],
                                          "total_p50_ms": tt["p50"], "total_p90_ms": tt["p90"]}
        row["ratio_miss_ttfb"] = row["edge_miss"]["ttfb_p50_ms"] / row["varnish_miss"]["ttfb_p50_ms"]
        if baseline_port:
            row["ratio_miss_ttfb_baseline"] = row["baseline_miss"]["ttfb_p50_ms"] / row["varnish_miss"]["ttfb_p50_ms"]
            row["ratio_miss_ttfb_edge_over_baseline"] = row["edge_miss"]["ttfb_p50_ms"] / row["baseline_miss"]["ttfb_p50_ms"]
        rows.append(row)
    growth = {f"{side}_miss_ttfb_4m_over_64k": rows[-1][f"{side}_miss"]["ttfb_p50_ms"] / rows[0][f"{side}_miss"]["ttfb_p50_ms"]
              for side in sides}
    return rows, growth, problems


# ---------------------------------------------------------------------------------------------
# Report


def version(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    return (r.stdout + r.stderr).strip().splitlines()[0]


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    git = lambda *args: subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    # The edge is built from the working tree: say when it differs from the commit.
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "edge", "pop-config", "Cargo.lock"))
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "nginx": version(["nginx", "-v"]),
        "varnish": version(["varnishd", "-V"]),
        "wrk": version(["wrk", "-v"]),
        "openssl": version(["openssl", "version"]),
        "curl": version(["curl", "--version"]),
        "commit": git("rev-parse", "--short", "HEAD") + ("-dirty" if dirty else ""),
    }


def print_hot(tool, cells, verdict):
    latency = "p50/p99 ms" if tool == "wrk" else "segment p50/p99 ms"
    print(f"\n{tool}:\n")
    print(f"| size | proto | conns | req/s edge / nginx | GB/s edge / nginx | ratio | {latency} edge "
          f"| {latency} nginx | CPU-s/GB edge / nginx | ratio | server cores edge / nginx | {tool} cores edge / nginx |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for c in cells:
        e, n = c["edge"], c["nginx"]
        print(f"| {c['size']} | {c['proto']} | {c['conns']} | {e['req_s']:,.0f} / {n['req_s']:,.0f} "
              f"| {e['gb_s']:.2f} / {n['gb_s']:.2f} | **{c['ratio_gb_s']:.2f}** "
              f"| {e['p50_ms']:.1f} / {e['p99_ms']:.1f} | {n['p50_ms']:.1f} / {n['p99_ms']:.1f} "
              f"| {e['cpu_s_per_gb']:.3f} / {n['cpu_s_per_gb']:.3f} | **{c['ratio_cpu_s_per_gb']:.2f}** "
              f"| {e['server_busy']:.2f} / {n['server_busy']:.2f} | {e['client_busy']:.2f} / {n['client_busy']:.2f} |")
    if any("baseline" in c for c in cells):
        print(f"\n{tool}, the edge against EDGE_BASELINE (run next to it in every cell):\n")
        print("| size | proto | conns | GB/s edge / baseline | ratio | CPU-s/GB edge / baseline | ratio |")
        print("|---|---|---|---|---|---|---|")
        for c in cells:
            if "baseline" in c:
                e, b = c["edge"], c["baseline"]
                print(f"| {c['size']} | {c['proto']} | {c['conns']} | {e['gb_s']:.2f} / {b['gb_s']:.2f} "
                      f"| **{c['ratio_gb_s_to_baseline']:.2f}** | {e['cpu_s_per_gb']:.3f} / {b['cpu_s_per_gb']:.3f} "
                      f"| **{c['ratio_cpu_s_per_gb_to_baseline']:.2f}** |")
    print()
    for proto in PROTOS:
        v = verdict[proto]
        print(f"{tool} {proto}: GB/s edge/nginx geomean {v['gb_s_ratio_geomean']:.2f} (worst {v['gb_s_ratio_min']:.2f}), "
              f"CPU-s/GB geomean {v['cpu_ratio_geomean']:.2f} (worst {v['cpu_ratio_max']:.2f}); "
              f"target {v['target']}: {'met' if v['met'] else 'NOT met'}")


def print_h3(cells, verdict):
    print("\nloadtest, the edge over HTTP/3 against its own HTTPS h1 (nginx-light has no h3):\n")
    print("| size | viewers | GB/s h3 / h1 | ratio | CPU-s/GB h3 / h1 | ratio | segment p50/p99 ms h3 "
          "| segment p50/p99 ms h1 | edge cores h3 / h1 | loadtest cores h3 / h1 | loadtest CPU-s/GB h3 / h1 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for c in cells:
        q, h = c["h3"], c["h1"]
        print(f"| {c['size']} | {c['conns']} | {q['gb_s']:.2f} / {h['gb_s']:.2f} | **{c['ratio_gb_s']:.2f}** "
              f"| {q['cpu_s_per_gb']:.3f} / {h['cpu_s_per_gb']:.3f} | **{c['ratio_cpu_s_per_gb']:.2f}** "
              f"| {q['p50_ms']:.1f} / {q['p99_ms']:.1f} | {h['p50_ms']:.1f} / {h['p99_ms']:.1f} "
              f"| {q['server_busy']:.2f} / {h['server_busy']:.2f} | {q['client_busy']:.2f} / {h['client_busy']:.2f} "
              f"| {q['client_cpu_s_per_gb']:.3f} / {h['client_cpu_s_per_gb']:.3f} |")
    print(f"\nh3: GB/s h3/h1 geomean {verdict['gb_s_ratio_geomean']:.2f} (worst {verdict['gb_s_ratio_min']:.2f}), "
          f"CPU-s/GB geomean {verdict['cpu_ratio_geomean']:.2f} (worst {verdict['cpu_ratio_max']:.2f}); "
          f"target {verdict['target']}: {'met' if verdict['met'] else 'NOT met'}"
          f"{'' if verdict['met_in_every_cell'] else ' (not in every cell)'}")


def print_tables(hot_cells, verdict, h3_cells, rows, growth):
    for tool, cells in hot_cells.items():
        if cells:
            print_hot(tool, cells, verdict[tool])
    if h3_cells:
        print_h3(h3_cells, verdict_h3(h3_cells))
    if rows:
        print_cold(rows, growth)


def print_cold(rows, growth):
    print()
    print("p50 ms, TTFB / total (edge miss: p90 TTFB in brackets)")
    print()
    baseline = "baseline_miss" in rows[0]
    extra = " baseline miss | baseline / Varnish | edge / baseline |" if baseline else ""
    print("| size | edge miss | Varnish miss | ratio TTFB | edge hit (2nd) | edge hit (3rd) | Varnish hit (2nd) "
          "| origin direct |" + extra)
    print("|---|---|---|---|---|---|---|---|" + ("---|---|---|" if baseline else ""))
    for r in rows:
        cell = lambda k: f"{r[k]['ttfb_p50_ms']:.2f} / {r[k]['total_p50_ms']:.2f}"
        more = (f" {cell('baseline_miss')} [{r['baseline_miss']['ttfb_p90_ms']:.2f}] "
                f"| **{r['ratio_miss_ttfb_baseline']:.2f}** | **{r['ratio_miss_ttfb_edge_over_baseline']:.2f}** |"
                if baseline else "")
        print(f"| {r['size']} | {cell('edge_miss')} [{r['edge_miss']['ttfb_p90_ms']:.2f}] | {cell('varnish_miss')} "
              f"| **{r['ratio_miss_ttfb']:.2f}** | {cell('edge_hit')} | {cell('edge_hit3')} | {cell('varnish_hit')} "
              f"| {cell('origin_miss')} |" + more)
    print(f"\nmiss TTFB p50, 4 MiB / 64 KiB: " + ", ".join(
        f"{side} {g:.2f}" for side, g in ((k.split("_")[0], v) for k, v in growth.items()))
          + " (1.0 = does not grow with size)")


def main():
    # A plain `kill` must still stop the servers this script started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    ensure_packages()
    ensure_binaries()
    os.makedirs(SCRATCH, exist_ok=True)
    log(f"scratch: {SCRATCH}")
    cert, key = make_cert()
    pin = spki_pin(cert)
    objects = make_objects()
    env = dict(os.environ, OPENSSL_CONF=openssl_client_conf())
    lt_env = dict(os.environ, OPENSSL_CONF=openssl_client_conf(RUSTLS_SUITES, "openssl-rustls-order.cnf"))
    runs, ciphers, lt_ciphers, rows, growth, problems = [], {}, {}, [], {}, []
    try:
        origin = start_origin(objects, ORIGIN_CPU)
        servers = {"edge": start_edge(origin, cert, key)}
        if WITH_HOT:
            servers["nginx"] = start_static(objects, cert, key)
            if BASELINE:
                servers["baseline"] = start_edge(origin, cert, key, BASELINE, "baseline")
            warm(servers)
            ciphers = {side: negotiated_cipher(s["https"], env) for side, s in servers.items()}
            if set(ciphers.values()) != {CIPHER}:
                sys.exit(f"negotiated cipher suites {ciphers}, expected {CIPHER} on both")
            # What a client offering rustls' order gets: the same suite on both sides is what matters.
            lt_ciphers = {side: negotiated_cipher(s["https"], lt_env) for side, s in servers.items()}
            if len(set(lt_ciphers.values())) != 1:
                sys.exit(f"with loadtest's suite order the servers negotiate different suites: {lt_ciphers}")
            runs = hot(servers, env, pin)
        if WITH_COLD:
            varnish = start_varnish(origin)
            if BASELINE and "baseline" not in servers:
                servers["baseline"] = start_edge(origin, cert, key, BASELINE, "baseline")
            baseline = servers["baseline"]["http"] if BASELINE else None
            rows, growth, problems = cold(servers["edge"]["http"], varnish, origin, baseline)
    finally:
        stop_all()
    tools = (["wrk"] + (["loadtest"] if WITH_LOADTEST else [])) if WITH_HOT else []
    hot_cells = {tool: summarize_hot(runs, tool) for tool in tools}
    verdict = {tool: verdicts(cells) for tool, cells in hot_cells.items()}
    h3_cells = summarize_h3(runs) if WITH_H3 else []
    print_tables(hot_cells, verdict, h3_cells, rows, growth)
    errors = {tool: sum(c[side]["errors"] for c in cells for side in ("edge", "nginx", "baseline") if side in c)
              for tool, cells in hot_cells.items()}
    errors["loadtest-h3"] = sum(c["h3"]["errors"] for c in h3_cells)
    if any(errors.values()) or problems:
        print(f"\nWARNING: errors in the hot runs {errors} (see hot_runs), {len(problems)} cold-test problems:")
        for p in problems[:20]:
            print("  " + p)
    result = {
        "benchmark": "edge-vs-nginx",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {
            "seconds_per_run": SECONDS, "repeats": RUNS, "connections": CONNS, "protocols": PROTOS,
            "edge": EDGE, "hot_files_per_size": HOT_FILES,
            "loadtest_connections": LT_CONNS if WITH_LOADTEST else [],
            "hot_sizes": dict(HOT_SIZES), "cold_sizes": dict(COLD_SIZES), "cold_urls_per_size": COLD_URLS,
            "layout": f"1w-pin: server (nginx 1 worker / edge --threads 1 / Varnish) on CPU{SERVER_CPU}, "
                      f"wrk -t1, loadtest and curl on CPU{CLIENT_CPU}; origin nginx "
                      + (f"on CPU{ORIGIN_CPU}" if ORIGIN_CPU else "unpinned"),
            "tls": f"TLS 1.3, ECDSA P-256 self-signed, HTTP/1.1 keep-alive; wrk offers only {CIPHER} "
                   "(client-side OpenSSL config); loadtest (rustls, ring) offers its default order "
                   f"{RUSTLS_SUITES}",
            "negotiated": ciphers,
            "negotiated_with_loadtest_order": lt_ciphers,
            "nginx": "worker_processes 1, sendfile on, tcp_nopush off, tcp_nodelay on, access_log off, "
                     "keepalive_requests 1000000, ssl_protocols TLSv1.3, default output_buffers",
            "edge": f"memory 1GiB, disk 0, prefetch off, h3 {'on (UDP, the HTTPS port)' if WITH_H3 else 'off'}, "
                    "warmed (each object twice, hit-memory)",
            "only": ONLY or "all",
            "edge_baseline": BASELINE,
            "varnish": "varnishd -s malloc,512M, built-in VCL, -b origin",
            "loadtest": "loadtest run --scenario bench/edge-vs-nginx/hot.toml --pace fast --protocol h1 "
                        "--viewers N (one connection each) --catalogue <master of the size> --seed 1; "
                        f"media playlist of {PLAYLIST_SEGMENTS} entries cycling through the {HOT_FILES} hot files",
            "units": "GB = 1e9 bytes; wrk: response bytes incl. headers; loadtest: body bytes (report.json "
                     "totals.bytes / run.seconds); CPU-s = utime+stime from /proc",
        },
        "hot_runs": runs,
        "hot": hot_cells.get("wrk", []),
        "targets": verdict.get("wrk", {}),
        "hot_loadtest": hot_cells.get("loadtest", []),
        "targets_loadtest": verdict.get("loadtest", {}),
        "hot_h3": h3_cells,
        "targets_h3": verdict_h3(h3_cells),
        "cold": rows,
        "cold_growth": growth,
        "cold_problems": problems,
    }
    # A partial run is not the day's result: it gets its own name.
    part = "-".join(([ONLY] if ONLY else []) + (PROTOS if len(PROTOS) == 1 else []))
    name = f"edge-vs-nginx-{result['date'][:10]}{'-' + part if part else ''}.json"
    path = os.environ.get("BENCH_OUT") or os.path.join(ROOT, "bench", "results", name)
    if "BENCH_OUT" not in os.environ:
        # A second run of the day (another build, other cells) does not replace the first.
        stem, n = path[:-len(".json")], 2
        while os.path.exists(path):
            path, n = f"{stem}-{n}.json", n + 1
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()

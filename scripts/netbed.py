#!/usr/bin/env python3
"""A network test bed: hosts in Linux network namespaces, joined by a user-space router that
adds real delay, jitter, loss, partitions and per-link rate limits, and counts the bytes and
packets of every directed pair of hosts.

Why user space: the kernels we run on have no netem (and no fq) qdisc, so the delay cannot
come from `tc`. Each host instead gets one TUN device, made in the root namespace (where this
script keeps its file descriptor) and then moved into the host's namespace as `eth0`, with the
host's address and a default route through it. Whatever a host sends leaves through its TUN
and is read here; the router holds it for the link's one-way delay and writes it into the
destination host's TUN. Only IPv4 is routed (IPv6 is switched off on the TUNs); a packet to
an address that is no host is dropped without being counted.

Commands (all need root, stdlib only):

  run --spec SPEC.json --state DIR   the bed, in the foreground, until SIGTERM/SIGINT or until
                                     the process that started it dies; then everything is torn
                                     down. Writes DIR/ready.json when the hosts are up and
                                     answers DIR/control.sock.
  probe --ns NS --to ADDR --port P --count N --interval-ms M [--wait-ms W]
                                     UDP ping from inside NS; prints
                                     {"sent","received","rtt_ms_p50","rtt_ms_p90","rtt_ms_min","rtt_ms_max"}
  echo [--ns NS] --port P            UDP echo server (port 0: any; prints {"port": N} first)
  tcp-serve [--ns NS] --port P --bytes N
                                     sends N bytes to the first TCP client, then exits
                                     (prints {"port": N} first)
  tcp-fetch [--ns NS] --to ADDR --port P
                                     reads one TCP stream to its end; prints {"bytes","secs"}
  clean --prefix nb                  deletes the namespaces of this prefix whose owner is dead
  check                              exits 0 when this machine can run a bed (else says why)
  defaults                           prints the built-in link table as JSON

SPEC.json:

  {"prefix": "nb", "mtu": 1500, "seed": 7,
   "hosts": [{"name": "origin", "region": "core", "kind": "origin"}, ...],
   "links": [{"from_kind": "viewer", "to_kind": "pop", "same_region": true,
              "rtt_ms": 5, "jitter_ms": 0.5, "loss": 0.0, "rate_mbit": null}, ...],
   "default": {"rtt_ms": 90, "jitter_ms": 1, "loss": 0}}

Link rules are symmetric. A rule matches a pair of hosts when its two kinds are the pair's two
kinds in either order ("*" matches any kind) and, when `same_region` is true or false, whether
the two hosts share a region is that; `same_region` null or absent matches both. The first
matching rule wins; no match takes `default`. `links` absent takes the built-in table below;
`default` absent takes the built-in default.

Built-in table (DEFAULT_LINKS; the Rust wrapper tests/src/netbed.rs keeps the same one):

  viewer  <-> pop     same region   5 ms RTT, jitter 0.5 ms
  creator <-> pop     same region   5 ms RTT, jitter 0.5 ms (a creator is placed like a viewer)
  pop     <-> shield  same region  10 ms RTT, jitter 0.5 ms
  pop     <-> origin  any region   40 ms RTT, jitter 1 ms
  shield  <-> origin  any region   40 ms RTT, jitter 1 ms
  anything else (cross-region)     90 ms RTT, jitter 1 ms
  loss 0 everywhere, no rate limit.

What the numbers mean: each direction waits rtt_ms/2 plus a jitter drawn uniformly from
[-jitter_ms/2, +jitter_ms/2], so an RTT lies within rtt_ms +- jitter_ms and averages rtt_ms.
A packet never leaves before the one sent before it on the same directed pair (no
reordering: the draw is raised to the previous packet's departure). `loss` is the chance that
one packet in one direction is dropped; a round trip survives with (1 - loss)^2. `rate_mbit`
(optional, null = unlimited) is a per-direction token bucket in the router: packets wait for
the link to be free, and a packet that would wait more than 100 ms is dropped (tail drop), so
the rate limit is done here, not with `tc tbf`.

Namespaces are named {prefix}{pid}-{host}, pid being this script's. The router's own packet
counters see only what crosses it: traffic a host sends to itself stays on its loopback.

Control: one JSON object per line on DIR/control.sock, one JSON line back ({"ok": true, ...}
or {"ok": false, "error": "..."}):

  {"cmd": "partition", "a": "h1", "b": "h2"}   drop everything between h1 and h2, both ways
  {"cmd": "heal", "a": "h1", "b": "h2"}        undo a partition
  {"cmd": "set", "a": .., "b": .., "rtt_ms": .., "jitter_ms": .., "loss": .., "rate_mbit": ..,
   "oneway": false}                           change a link (fields left out stay); both
                                              directions unless oneway (then a -> b only)
  {"cmd": "stats"}    -> {"ok": true, "pairs": [{"from", "to", "bytes", "packets",
                                                 "dropped", "dropped_bytes"}, ...]}
                         `packets`/`bytes` were forwarded, `dropped` were offered and dropped
                         (loss, partition, rate-limit queue, or a failed write); only pairs
                         with traffic are listed
  {"cmd": "reset_stats"}

DIR/ready.json: {"pid": .., "control": "DIR/control.sock",
                 "hosts": {"name": {"ns": .., "addr": "10.77.0.1", "region": .., "kind": ..}}}
"""

import argparse
import errno
import fcntl
import heapq
import itertools
import json
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

DEFAULT_LINKS = [
    {"from_kind": "viewer", "to_kind": "pop", "same_region": True, "rtt_ms": 5, "jitter_ms": 0.5, "loss": 0},
    {"from_kind": "creator", "to_kind": "pop", "same_region": True, "rtt_ms": 5, "jitter_ms": 0.5, "loss": 0},
    {"from_kind": "pop", "to_kind": "shield", "same_region": True, "rtt_ms": 10, "jitter_ms": 0.5, "loss": 0},
    {"from_kind": "pop", "to_kind": "origin", "same_region": None, "rtt_ms": 40, "jitter_ms": 1, "loss": 0},
    {"from_kind": "shield", "to_kind": "origin", "same_region": None, "rtt_ms": 40, "jitter_ms": 1, "loss": 0},
]
DEFAULT_LINK = {"rtt_ms": 90, "jitter_ms": 1, "loss": 0}

# A packet that would queue longer than this behind a rate limit is dropped (tail drop), so
# a slow link behaves like a router with a bounded buffer instead of growing without end.
RATE_QUEUE_LIMIT_S = 0.1
# How often the loop wakes, at least, to see whether the process that started it is gone.
PARENT_POLL_S = 0.2
# Packets read from one TUN before the loop looks at the others and at the clock.
READ_BURST = 64
HOST_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
PREFIX = re.compile(r"^[a-z]{1,8}$")


def log(message):
    print(f"netbed[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


def ip(args, batch=None):
    """Runs `ip`, with `batch` lines on stdin (one process for many commands); raises with
    ip's own message when it fails."""
    cmd = ["ip", *args] + (["-force", "-batch", "-"] if batch is not None else [])
    done = subprocess.run(cmd, input="".join(f"{line}\n" for line in batch or []), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")
    return done.stdout


# ---------------------------------------------------------------------------------------------
# Namespaces and TUN devices


def namespaces():
    # `ip netns list` prints "name" or "name (id: N)" per line.
    return [line.split()[0] for line in ip(["netns", "list"]).splitlines() if line.strip()]


def owner_alive(pid):
    # A pid alone may have been reused since; the owner must also still be this script.
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"netbed" in f.read()
    except OSError:
        return False


def clean_stale(prefix):
    """Deletes the namespaces `{prefix}{pid}-*` whose pid is no live netbed (a bed that was
    killed before it could tear down). Returns their names."""
    owned = re.compile(rf"^{re.escape(prefix)}(\d+)-")
    stale = [ns for ns in namespaces() if (m := owned.match(ns)) and not owner_alive(int(m.group(1)))]
    if stale:
        # -force: one already gone (another bed cleaning at the same time) must not stop the rest.
        subprocess.run(["ip", "-force", "-batch", "-"], input="".join(f"netns del {ns}\n" for ns in stale),
                       capture_output=True, text=True)
        log(f"removed stale namespaces: {' '.join(stale)}")
    return stale


def open_tun(template):
    """A new TUN device in the root namespace, named by the kernel from `template` ("nbt%d"), so
    beds starting at the same time never pick the same name. Returns (fd, name)."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        ifr = fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", template.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd, ifr[:16].rstrip(b"\0").decode()


def host_addr(i):
    return f"10.77.{i // 250}.{i % 250 + 1}"


def configure_host(ns, tun, addr, mtu):
    # addrgenmode none: no IPv6 link-local address, hence no router solicitations or DAD
    # packets for the router to read and throw away.
    ip(["-n", ns], batch=[
        "link set dev lo up",
        f"link set dev {tun} name eth0",
        f"link set dev eth0 mtu {mtu} addrgenmode none",
        "link set dev eth0 up",
        f"addr add {addr}/16 dev eth0",
        "route add default dev eth0",
    ])


# ---------------------------------------------------------------------------------------------
# Links


def rule_matches(rule, a, b):
    """Whether a symmetric rule covers hosts a and b (see the module doc)."""

    def kinds(first, second):
        return rule["from_kind"] in ("*", first["kind"]) and rule["to_kind"] in ("*", second["kind"])

    same = rule.get("same_region")
    region_ok = same is None or same == (a["region"] == b["region"])
    return region_ok and (kinds(a, b) or kinds(b, a))


class Link:
    """One direction between two hosts: its settings, its counters, and the state that keeps
    its packets in order and within its rate."""

    def __init__(self, params):
        self.rtt_ms = float(params.get("rtt_ms", 0))
        self.jitter_ms = float(params.get("jitter_ms", 0))
        self.loss = float(params.get("loss", 0))
        self.rate_mbit = params.get("rate_mbit")
        self.partitioned = False
        self.last_due = 0.0
        self.busy_until = 0.0
        self.reset()

    def reset(self):
        self.packets = self.bytes = self.dropped = self.dropped_bytes = 0

    def update(self, params):
        for key in ("rtt_ms", "jitter_ms", "loss"):
            if params.get(key) is not None:
                setattr(self, key, float(params[key]))
        if "rate_mbit" in params:
            self.rate_mbit = params["rate_mbit"]

    def drop(self, size):
        self.dropped += 1
        self.dropped_bytes += size

    def one_way_s(self, rng):
        jitter = (rng.random() - 0.5) * self.jitter_ms if self.jitter_ms else 0.0
        return max(0.0, self.rtt_ms / 2 + jitter) / 1000


# ---------------------------------------------------------------------------------------------
# The bed


class Bed:
    def __init__(self, spec, state_dir):
        self.prefix = spec.get("prefix", "nb")
        if not PREFIX.match(self.prefix):
            raise ValueError(f"prefix {self.prefix!r}: lowercase letters only, at most 8")
        self.mtu = int(spec.get("mtu", 1500))
        self.hosts = [{"name": h["name"], "region": h["region"], "kind": h["kind"]} for h in spec["hosts"]]
        names = [h["name"] for h in self.hosts]
        for name in names:
            if not HOST_NAME.match(name):
                raise ValueError(f"host name {name!r}: lowercase letters, digits and '-', at most 31")
        if len(set(names)) != len(names):
            raise ValueError("host names must be unique")
        self.index = {name: i for i, name in enumerate(names)}
        self.rules = spec.get("links", DEFAULT_LINKS)
        self.default = spec.get("default", DEFAULT_LINK)
        self.rng = random.Random(spec.get("seed"))
        self.state_dir = state_dir
        self.pid = os.getpid()
        self.ns = [f"{self.prefix}{self.pid}-{name}" for name in names]
        self.addrs = [host_addr(i) for i in range(len(names))]
        self.by_addr = {socket.inet_aton(a): i for i, a in enumerate(self.addrs)}
        self.fds = []
        self.made_ns = []
        self.links = {}

    # -- set-up and tear-down

    def up(self):
        clean_stale(self.prefix)
        # Namespaces first and remembered at once, so a failure half-way still tears them down.
        self.made_ns = list(self.ns)
        ip([], batch=[f"netns add {ns}" for ns in self.ns])
        tuns = []
        for _ in self.hosts:
            fd, name = open_tun(f"{self.prefix}t%d")
            self.fds.append(fd)
            tuns.append(name)
        # The fd stays here, in the root namespace; only the device moves.
        ip([], batch=[f"link set dev {tun} netns {ns}" for tun, ns in zip(tuns, self.ns)])
        for ns, tun, addr in zip(self.ns, tuns, self.addrs):
            configure_host(ns, tun, addr, self.mtu)

    def down(self):
        for fd in self.fds:
            os.close(fd)  # a TUN that is not persistent disappears with its last fd
        self.fds = []
        if self.made_ns:
            subprocess.run(["ip", "-force", "-batch", "-"], input="".join(f"netns del {ns}\n" for ns in self.made_ns),
                           capture_output=True, text=True)
            self.made_ns = []

    def ready_info(self):
        return {
            "pid": self.pid,
            "control": os.path.join(self.state_dir, "control.sock"),
            "hosts": {h["name"]: {"ns": ns, "addr": addr, "region": h["region"], "kind": h["kind"]}
                      for h, ns, addr in zip(self.hosts, self.ns, self.addrs)},
        }

    # -- links

    def link(self, src, dst):
        link = self.links.get((src, dst))
        if link is None:
            a, b = self.hosts[src], self.hosts[dst]
            rule = next((r for r in self.rules if rule_matches(r, a, b)), self.default)
            link = self.links[(src, dst)] = Link(rule)
        return link

    def host_pair(self, request):
        for key in ("a", "b"):
            if request.get(key) not in self.index:
                raise ValueError(f"{key}: unknown host {request.get(key)!r}")
        return self.index[request["a"]], self.index[request["b"]]

    def control(self, request):
        if not isinstance(request, dict):
            raise ValueError("a request is a JSON object")
        cmd = request.get("cmd")
        if cmd in ("partition", "heal"):
            a, b = self.host_pair(request)
            for src, dst in ((a, b), (b, a)):
                self.link(src, dst).partitioned = cmd == "partition"
            return {}
        if cmd == "set":
            a, b = self.host_pair(request)
            for src, dst in ((a, b),) if request.get("oneway") else ((a, b), (b, a)):
                self.link(src, dst).update(request)
            return {}
        if cmd == "stats":
            names = [h["name"] for h in self.hosts]
            return {"pairs": [
                {"from": names[s], "to": names[d], "bytes": link.bytes, "packets": link.packets,
                 "dropped": link.dropped, "dropped_bytes": link.dropped_bytes}
                for (s, d), link in sorted(self.links.items()) if link.packets or link.dropped]}
        if cmd == "reset_stats":
            for link in self.links.values():
                link.reset()
            return {}
        if cmd == "ping":
            return {}
        raise ValueError(f"unknown cmd {cmd!r}")


class Router:
    """One thread, one epoll: the TUNs, the control socket and its clients, and a wake-up pipe
    for signals. Packets in flight wait in one heap ordered by (due time, arrival sequence)."""

    def __init__(self, bed, control_path, stop, parent):
        self.bed = bed
        self.ep = select.epoll()
        self.handlers = {}
        self.queue = []
        self.seq = itertools.count()
        self.stop = stop
        self.parent = parent
        self.parent_checked = time.monotonic()
        self.bufsize = bed.mtu + 64
        for src, fd in enumerate(bed.fds):
            self.watch(fd, lambda fd=fd, src=src: self.read_tun(fd, src))
        # Signals only set a flag; the byte the wake-up fd receives ends the epoll wait at once.
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        self.watch(wake_r, lambda: self.drain(wake_r))
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(control_path)
        self.listener.listen(16)
        self.listener.setblocking(False)
        self.watch(self.listener.fileno(), self.accept)

    def watch(self, fd, handler):
        self.handlers[fd] = handler
        self.ep.register(fd, select.EPOLLIN)

    def unwatch(self, fd):
        self.ep.unregister(fd)
        del self.handlers[fd]

    @staticmethod
    def drain(fd):
        try:
            while os.read(fd, 256):
                pass
        except BlockingIOError:
            pass

    # -- packets

    def read_tun(self, fd, src):
        for _ in range(READ_BURST):
            try:
                packet = os.read(fd, self.bufsize)
            except BlockingIOError:
                return
            self.route(src, packet)

    def route(self, src, packet):
        # The source host is the TUN the packet came from; only the destination is parsed.
        if len(packet) < 20 or packet[0] >> 4 != 4:
            return
        dst = self.bed.by_addr.get(packet[16:20])
        if dst is None or dst == src:
            return
        link = self.bed.link(src, dst)
        size = len(packet)
        rng = self.bed.rng
        if link.partitioned or (link.loss > 0 and rng.random() < link.loss):
            link.drop(size)
            return
        now = time.monotonic()
        start = now
        if link.rate_mbit:
            start = max(now, link.busy_until)
            if start - now > RATE_QUEUE_LIMIT_S:
                link.drop(size)
                return
            link.busy_until = start + size * 8 / (float(link.rate_mbit) * 1e6)
            start = link.busy_until
        due = max(start + link.one_way_s(rng), link.last_due)
        link.last_due = due
        link.packets += 1
        link.bytes += size
        heapq.heappush(self.queue, (due, next(self.seq), self.bed.fds[dst], packet, link))

    def deliver_due(self):
        now = time.monotonic()
        queue = self.queue
        while queue and queue[0][0] <= now:
            _, _, fd, packet, link = heapq.heappop(queue)
            try:
                os.write(fd, packet)
            except OSError:
                # The destination's stack refused it (its queue is full): the packet is lost.
                link.packets -= 1
                link.bytes -= len(packet)
                link.drop(len(packet))

    def timeout(self):
        if not self.queue:
            return PARENT_POLL_S
        return min(PARENT_POLL_S, max(0.0, self.queue[0][0] - time.monotonic()))

    # -- control

    def accept(self):
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        buffer = bytearray()
        self.watch(conn.fileno(), lambda: self.read_control(conn, buffer))

    def read_control(self, conn, buffer):
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.unwatch(conn.fileno())
            conn.close()
            return
        buffer += data
        while b"\n" in buffer:
            line, _, rest = bytes(buffer).partition(b"\n")
            buffer[:] = rest
            try:
                answer = {"ok": True, **self.bed.control(json.loads(line))}
            except (ValueError, TypeError, KeyError) as e:
                answer = {"ok": False, "error": str(e)}
            # Answers are small (a stats list of a few KiB) and the peer is waiting for them:
            # a blocking send of one answer does not stall the packets noticeably.
            conn.setblocking(True)
            try:
                conn.sendall(json.dumps(answer).encode() + b"\n")
            except OSError:
                pass
            conn.setblocking(False)

    # -- the loop

    def parent_gone(self):
        now = time.monotonic()
        if now - self.parent_checked < PARENT_POLL_S:
            return False
        self.parent_checked = now
        return os.getppid() != self.parent

    def run(self):
        while not self.stop.requested:
            # epoll_wait counts whole milliseconds, rounded up, which would add half a
            # millisecond to every hop on average; select on the epoll fd waits to the
            # microsecond, and the poll after it only collects what is ready.
            timeout = self.timeout()
            if timeout > 0:
                select.select([self.ep.fileno()], [], [], timeout)
            for fd, _ in self.ep.poll(0):
                handler = self.handlers.get(fd)
                if handler:
                    handler()
            self.deliver_due()
            if self.parent_gone():
                log("parent process gone, tearing down")
                break


def write_atomically(path, data):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.rename(tmp, path)


class Stop:
    """Set by SIGTERM or SIGINT. Installed before anything is made, so a signal during set-up
    still ends in a tear-down rather than in leftover namespaces."""

    def __init__(self):
        self.requested = False
        signal.signal(signal.SIGTERM, self.request)
        signal.signal(signal.SIGINT, self.request)

    def request(self, *_):
        self.requested = True


def cmd_run(args):
    stop = Stop()
    # Taken first: a parent that dies during set-up is noticed once the loop runs.
    parent = os.getppid()
    with open(args.spec) as f:
        spec = json.load(f)
    os.makedirs(args.state, exist_ok=True)
    bed = Bed(spec, args.state)
    control_path = os.path.join(args.state, "control.sock")
    ready_path = os.path.join(args.state, "ready.json")
    if os.path.exists(control_path):
        os.unlink(control_path)
    try:
        bed.up()
        router = Router(bed, control_path, stop, parent)
        # The delays are only as good as the router's wake-ups: on a busy machine (CI runs
        # every test at once) a higher priority keeps them within a fraction of a millisecond.
        try:
            os.nice(-10)
        except OSError:
            pass
        write_atomically(ready_path, bed.ready_info())
        log(f"{len(bed.hosts)} hosts up")
        router.run()
    finally:
        bed.down()
        for path in (ready_path, control_path):
            if os.path.exists(path):
                os.unlink(path)
    return 0


# ---------------------------------------------------------------------------------------------
# Measuring from inside a namespace


def enter_ns(args):
    """Re-runs this command inside `args.ns` (Python 3.11 has no os.setns)."""
    if not getattr(args, "ns", None):
        return
    argv = sys.argv[1:]
    i = argv.index("--ns")
    del argv[i:i + 2]
    os.execvp("ip", ["ip", "netns", "exec", args.ns, sys.executable, os.path.abspath(__file__), *argv])


def percentile(sorted_values, p):
    # Nearest rank: a value that was measured, never an interpolation between two.
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def cmd_probe(args):
    enter_ns(args)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    target = (args.to, args.port)
    interval = args.interval_ms / 1000
    sent_at = {}
    rtts = []
    start = time.monotonic()
    next_send = start
    seq = 0
    deadline = None
    while True:
        now = time.monotonic()
        if seq < args.count and now >= next_send:
            # 16 bytes of sequence and send time, padded: the echo returns them as they are.
            try:
                sock.sendto(struct.pack("!QQ", seq, time.monotonic_ns()).ljust(args.size, b"\0"), target)
            except OSError:
                pass  # a full socket buffer: this probe is lost, like one the link dropped
            sent_at[seq] = now
            seq += 1
            next_send = start + seq * interval
            if seq == args.count:
                deadline = now + args.wait_ms / 1000
            continue
        if deadline is not None and (now >= deadline or len(rtts) == args.count):
            break
        wake = next_send if seq < args.count else deadline
        readable, _, _ = select.select([sock], [], [], max(0.0, wake - now))
        if readable:
            receive_replies(sock, sent_at, rtts)
    rtts.sort()
    print(json.dumps({
        "sent": seq, "received": len(rtts),
        "rtt_ms_p50": percentile(rtts, 50), "rtt_ms_p90": percentile(rtts, 90),
        "rtt_ms_min": rtts[0] if rtts else None, "rtt_ms_max": rtts[-1] if rtts else None,
    }))
    return 0


def receive_replies(sock, sent_at, rtts):
    while True:
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            continue  # an ICMP error for an earlier probe (echo not there): that probe is lost
        if len(data) < 16:
            continue
        seq, sent_ns = struct.unpack("!QQ", data[:16])
        # pop: a duplicate reply counts once.
        if sent_at.pop(seq, None) is not None:
            rtts.append((time.monotonic_ns() - sent_ns) / 1e6)


def watch_parent():
    """A function that tells whether the process that started this one is gone (the helpers
    below must not outlive a test that was killed)."""
    parent = os.getppid()
    return lambda: os.getppid() != parent


def announce_port(sock):
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)


def cmd_echo(args):
    enter_ns(args)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", args.port))
    announce_port(sock)
    orphaned = watch_parent()
    while not orphaned():
        readable, _, _ = select.select([sock], [], [], 0.5)
        if readable:
            data, peer = sock.recvfrom(65536)
            sock.sendto(data, peer)
    return 0


def cmd_tcp_serve(args):
    enter_ns(args)
    listener = socket.create_server(("0.0.0.0", args.port))
    announce_port(listener)
    listener.settimeout(args.timeout)
    conn, _ = listener.accept()
    chunk = bytes(65536)
    left = args.bytes
    with conn:
        while left > 0:
            n = conn.send(chunk[:min(left, len(chunk))])
            left -= n
        conn.shutdown(socket.SHUT_WR)
        # Wait for the reader's close, so every byte was acknowledged before this exits.
        conn.settimeout(args.timeout)
        while conn.recv(4096):
            pass
    return 0


def cmd_tcp_fetch(args):
    enter_ns(args)
    start = time.monotonic()
    total = 0
    with socket.create_connection((args.to, args.port), timeout=args.timeout) as conn:
        while data := conn.recv(262144):
            total += len(data)
    print(json.dumps({"bytes": total, "secs": time.monotonic() - start}))
    return 0


# ---------------------------------------------------------------------------------------------
# Housekeeping


def cmd_clean(args):
    clean_stale(args.prefix)
    return 0


def cmd_check(args):
    """Makes and deletes one namespace with a TUN in it: what `run` needs, on a small scale."""
    if os.geteuid() != 0:
        print("not root", file=sys.stderr)
        return 1
    ns = f"{args.prefix}{os.getpid()}-check"
    fd = None
    try:
        ip(["netns", "add", ns])
        fd, tun = open_tun(f"{args.prefix}t%d")
        ip(["link", "set", "dev", tun, "netns", ns])
        configure_host(ns, tun, host_addr(0), 1500)
    except (OSError, RuntimeError) as e:
        print(f"cannot make a namespace with a TUN in it: {e}", file=sys.stderr)
        return 1
    finally:
        if fd is not None:
            os.close(fd)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    return 0


def cmd_defaults(_args):
    print(json.dumps({"links": DEFAULT_LINKS, "default": DEFAULT_LINK}))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("--spec", required=True)
    p.add_argument("--state", required=True)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("probe")
    p.add_argument("--ns")
    p.add_argument("--to", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--interval-ms", type=float, default=10)
    p.add_argument("--wait-ms", type=float, default=1000, help="how long to wait for replies after the last probe")
    p.add_argument("--size", type=int, default=64, help="UDP payload bytes (at least 16)")
    p.set_defaults(func=cmd_probe)
    p = sub.add_parser("echo")
    p.add_argument("--ns")
    p.add_argument("--port", type=int, required=True)
    p.set_defaults(func=cmd_echo)
    p = sub.add_parser("tcp-serve")
    p.add_argument("--ns")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bytes", type=int, required=True)
    p.add_argument("--timeout", type=float, default=30)
    p.set_defaults(func=cmd_tcp_serve)
    p = sub.add_parser("tcp-fetch")
    p.add_argument("--ns")
    p.add_argument("--to", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=30)
    p.set_defaults(func=cmd_tcp_fetch)
    p = sub.add_parser("clean")
    p.add_argument("--prefix", default="nb")
    p.set_defaults(func=cmd_clean)
    p = sub.add_parser("check")
    p.add_argument("--prefix", default="nb")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("defaults")
    p.set_defaults(func=cmd_defaults)
    args = parser.parse_args()
    try:
        return args.func(args)
    except (RuntimeError, ValueError, OSError) as e:
        if isinstance(e, OSError) and e.errno == errno.EPIPE:
            return 1
        log(f"error: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())

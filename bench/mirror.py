"""Pull-through cache rows for bench/run --mirror: one upstream (our
registry, plain HTTP on loopback) holding a big blob and a small image,
pulled straight from it, and through a cache of it (`proxy: remoteurl:`),
ours and Debian's docker-registry, each cache started on a fresh directory
per repetition so its first pull is cold. Optionally the upstream sits
behind a relay pacing it to a link's speed.
See bench/README.md, "Pull-through cache"."""

import os
import re
import shutil
import socket
import statistics
import subprocess
import threading
import time
import urllib.request

BLOB_REPO, IMAGE_REPO, TAG = "bench/big", "bench/small", "t00000"
# distribution stores a proxied blob in the background; the warm rows wait
# for it, at most this long.
STORE_WAIT = 300
# The machine is shared (other engineers' builds): a repetition in which
# anything else took more than this share of a core during one of its pulls
# is run again, at most RETRIES times, and noted either way.
BUSY_OTHERS, MIN_OTHERS, RETRIES = 0.25, 0.1, 3


def busy():
    """CPU seconds the whole machine has spent busy so far (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


class Throttle:
    """A TCP relay in front of the upstream that paces what the upstream
    sends to `mbps` MB/s per connection, as if it were across a link of that
    speed (requests pass unpaced). Each connection's bytes are timed from
    its first byte (idle time on a kept connection earns no credit), so the
    average rate is exact; nginx's `limit_rate` was tried first, but it
    counts in whole seconds and lets a second's worth through at once:
    486 MB/s came through a 300 MB/s limit."""

    PIECE = 256 << 10
    SLACK = 0.005

    def __init__(self, upstream_port, mbps):
        self.upstream = ("127.0.0.1", upstream_port)
        self.rate = mbps * 1e6
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.open = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            up = socket.create_connection(self.upstream)
            for s in (down, up):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.open += [down, up]
            threading.Thread(target=self.pump, args=(down, up, None), daemon=True).start()
            threading.Thread(target=self.pump, args=(up, down, self.rate), daemon=True).start()

    @classmethod
    def pump(cls, src, dst, rate):
        buf = bytearray(cls.PIECE)
        view = memoryview(buf)
        sent, t0 = 0, None
        try:
            while True:
                n = src.recv_into(buf)
                if n == 0:
                    break
                if rate:
                    now = time.perf_counter()
                    t0 = now if t0 is None else t0
                    sent += n
                    due = t0 + sent / rate
                    if due > now:
                        time.sleep(due - now)
                    elif now - due > cls.SLACK:
                        # Idle on a kept connection: no credit for it.
                        t0 = now - sent / rate
                dst.sendall(view[:n])
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @staticmethod
    def cpu():
        """CPU seconds of this process: the relay's threads, and the
        harness, which only waits while a pull runs."""
        t = os.times()
        return t.user + t.system

    def stop(self):
        self.listener.close()
        for s in self.open:
            s.close()


class MirrorBench:
    def __init__(self, ctx, blob, digest):
        self.ctx, self.blob, self.digest = ctx, blob, digest
        self.size = os.path.getsize(blob)
        self.samples = {}  # (setting, row, kind) -> [value]
        self.metrics = None  # the upstream's Prometheus URL
        self.relay = None  # the Throttle in front of the upstream, if any
        # The current repetition's figures: kept once it ran undisturbed
        # (`busiest_others`), or after its last retry.
        self.pending, self.busiest_others = [], 0.0
        self.notes = []

    # ------------------------------------------------------------ measuring

    def run_lg(self, base, cmd, *a, procs=None):
        """One load generator run against `base`: its JSON, plus `cpu`, the
        CPU seconds each of `procs` ({name: Registry}) used meanwhile, and
        `client`, the load generator's own."""
        procs = dict(procs or {})
        if self.relay and procs:
            procs["relay"] = self.relay
        os.sync()
        c0 = {n: p.cpu() for n, p in procs.items()}
        b0, t0, w0 = busy(), os.times(), time.perf_counter()
        out = subprocess.run([self.ctx.loadgen, cmd, "--base", base, *a], capture_output=True,
                             text=True, env=self.ctx.client_env)
        t1, b1 = os.times(), busy()
        if out.returncode != 0:
            raise RuntimeError(f"loadgen {cmd} {base}: {out.stderr.strip()}")
        r = self.ctx.json.loads(out.stdout)
        r["cpu"] = {n: p.cpu() - c0[n] for n, p in procs.items()}
        r["client"] = (t1.children_user - t0.children_user) + (t1.children_system - t0.children_system)
        if procs:
            # The machine is shared: what else ran meanwhile (the harness
            # only waits; the relay, when there is one, is in `procs`).
            r["cpu"]["others"] = max(0.0, b1 - b0 - sum(r["cpu"].values()) - r["client"])
            # Clock ticks (10 ms) in six counters make a short pull's share
            # rough: less than a tenth of a second is not counted.
            if r["cpu"]["others"] > MIN_OTHERS:
                share = r["cpu"]["others"] / max(time.perf_counter() - w0, 1e-3)
                self.busiest_others = max(self.busiest_others, share)
        if r.get("err"):
            self.notes.append(f"{cmd} {base}: {r['err']} failed requests")
        return r

    def pull(self, base, procs):
        r = self.run_lg(base, "pull", "--path", f"/v2/{BLOB_REPO}/blobs/{self.digest}", procs=procs)
        if r["bytes"] != self.size:
            raise RuntimeError(f"pull from {base}: {r['bytes']} of {self.size} bytes")
        return r

    def add(self, setting, row, kind, value):
        self.pending.append(((setting, row, kind), value))

    def add_pull(self, setting, row, kind, r):
        """A pull's MB/s and the CPU behind it, each in a row of its own."""
        self.add(setting, row, kind, r["mbps"])
        for name, secs in r["cpu"].items():
            self.add(setting, f"{row}: CPU, {name} (s)", kind, secs)
        self.add(setting, f"{row}: CPU, client (s)", kind, r["client"])

    # ------------------------------------------------------------ processes

    def upstream_sent(self):
        """Bytes the upstream has sent so far (its debug listener's metrics)."""
        with urllib.request.urlopen(self.metrics, timeout=10) as r:
            text = r.read().decode()
        m = re.search(r"^registry_network_sent_bytes_total(?:\{[^}]*\})? (\S+)$", text, re.M)
        if not m:
            raise RuntimeError(f"{self.metrics}: no registry_network_sent_bytes_total")
        return float(m[1])

    def registry(self, kind, extra=()):
        ctx = self.ctx
        r = ctx.Registry(kind, ctx.ours_bin if kind == "ours" else ctx.ref_bin, "plain", None,
                         ctx.work, extra=list(extra))
        r.start()
        return r

    def cache(self, kind, upstream_base):
        return self.registry(kind, ["proxy:", f"  remoteurl: {upstream_base}"])

    def drop(self, reg):
        reg.stop()
        shutil.rmtree(reg.dir, ignore_errors=True)

    def stored(self, reg):
        """Waits until the blob is in the cache's store (distribution writes it
        in the background); seconds waited, or None if it never came."""
        hexd = self.digest.split(":", 1)[1]
        data = os.path.join(reg.data, "docker", "registry", "v2", "blobs", "sha256", hexd[:2],
                            hexd, "data")
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < STORE_WAIT:
            try:
                if os.path.getsize(data) == self.size:
                    return time.perf_counter() - t0
            except OSError:
                pass
            time.sleep(0.01)
        return None

    # ------------------------------------------------------------ rows

    def setting(self, upstream, ref_direct, limit, reps):
        """Every row for one way of reaching the upstream: straight (limit 0)
        or paced to `limit` MB/s by a relay."""
        ctx = self.ctx
        name = "loopback" if not limit else f"upstream limited to {limit:g} MB/s"
        front = Throttle(upstream.port, limit) if limit else None
        ubase = front.base if front else upstream.base
        self.relay = front
        try:
            ctx.log(f"{name}: warming the upstream's page cache")
            self.pull(ubase, {})
            for rep in range(reps):
                for attempt in range(1 + RETRIES):
                    ctx.log(f"{name}: repetition {rep + 1}/{reps}"
                            + (f", again ({attempt + 1})" if attempt else ""))
                    self.pending, self.busiest_others = [], 0.0
                    self.repetition(name, rep, upstream, ubase, ref_direct, limit)
                    if self.busiest_others <= BUSY_OTHERS:
                        break
                    self.notes.append(
                        f"{name}, repetition {rep + 1}: other processes took "
                        f"{self.busiest_others:.2f} of a core during a pull"
                        + ("; repeated" if attempt < RETRIES else "; kept (no retries left)"))
                for key, value in self.pending:
                    self.samples.setdefault(key, []).append(value)
                self.pending = []
        finally:
            self.relay = None
            if front:
                front.stop()

    def repetition(self, name, rep, upstream, ubase, ref_direct, limit):
        order = ["ours", "ref"] if rep % 2 == 0 else ["ref", "ours"]
        # Straight pulls, the baselines: from the upstream (our registry), as
        # the caches reach it, and, on loopback, from a plain registry of each kind.
        r = self.pull(ubase, {"upstream": upstream})
        self.add_pull(name, "pull straight from the upstream (MB/s)", "ours", r)
        if not limit:
            direct = {"ours": upstream, "ref": ref_direct}
            for kind in order:
                r = self.pull(direct[kind].base, {"registry": direct[kind]})
                self.add_pull(name, "pull from a plain registry of this kind (MB/s)", kind, r)
        for kind in order:
            cache = self.cache(kind, ubase)
            try:
                self.through(name, kind, cache, upstream, rep, limit)
            finally:
                self.drop(cache)

    def through(self, name, kind, cache, upstream, rep, limit):
        procs = {"cache": cache, "upstream": upstream}
        sent = self.upstream_sent()
        r = self.pull(cache.base, procs)
        self.add_pull(name, "cold pull through the cache (MB/s)", kind, r)
        waited = self.stored(cache)
        # distribution fetches a blob twice: once for the client, once for its store.
        self.add(name, "cold pull: bytes the upstream sent / blob size", kind,
                 (self.upstream_sent() - sent) / self.size)
        if waited is None:
            self.notes.append(f"{name}: {kind} had not stored the blob {STORE_WAIT} s after the cold pull")
            return
        self.add(name, "blob stored, after the client's last byte (s)", kind, waited)
        if limit:
            # Warm pulls do not reach the upstream: the loopback rows have them.
            return
        r = self.pull(cache.base, procs)
        self.add_pull(name, "first warm pull (MB/s)", kind, r)
        r = self.pull(cache.base, procs)
        self.add_pull(name, "warm pull (MB/s)", kind, r)
        self.image_rows(name, kind, cache)

    def image_rows(self, name, kind, cache):
        """The small image's manifest by tag: the first GET (fetched from the
        upstream), then GETs in a loop on one connection (ours serves the tag
        from the cache within its ttl, 1 minute by default; distribution asks
        the upstream each time)."""
        url = f"{cache.base}/v2/{IMAGE_REPO}/manifests/{TAG}"
        out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
                              "-H", self.ctx.manifest_accept, url], capture_output=True, text=True)
        code, secs = (out.stdout.split() + ["", ""])[:2]
        if code != "200":
            self.notes.append(f"{kind}: first manifest GET through the cache: {code or out.stderr.strip()}")
            return
        self.add(name, "manifest GET by tag, first (ms)", kind, float(secs) * 1000)
        r = self.run_lg(cache.base, "rate", "--path", f"/v2/{IMAGE_REPO}/manifests/{TAG}",
                        "--header", self.ctx.manifest_accept, "--conns", "1", "--secs", "2")
        self.add(name, "manifest GET by tag, cached, 1 connection, p50 (ms)", kind, r["p50_ms"])


def run(ctx, blob, digest):
    """All settings; returns the MirrorBench with its samples."""
    a = ctx.args
    bench = MirrorBench(ctx, blob, digest)
    upstream = ref_direct = None
    try:
        # The upstream's configuration ends inside `http:`, where `debug:` belongs.
        debug = ctx.free_port()
        upstream = bench.registry("ours", ["  debug:", f"    addr: 127.0.0.1:{debug}",
                                           "    prometheus:", "      enabled: true"])
        bench.metrics = f"http://127.0.0.1:{debug}/metrics"
        ref_direct = bench.registry("ref")
        ctx.log(f"upstream {upstream.base}: pushing the blob and a small image")
        for reg in (upstream, ref_direct):
            bench.run_lg(reg.base, "push-file", "--repo", BLOB_REPO, "--file", blob, "--digest", digest)
        bench.run_lg(upstream.base, "tags", "--repo", IMAGE_REPO, "--count", "1", "--conns", "1")
        bench.pull(ref_direct.base, {})
        for limit in a.upstream_limit:
            bench.setting(upstream, ref_direct, limit, a.reps)
    finally:
        for reg in (upstream, ref_direct):
            if reg:
                reg.stop()
    return bench


# ---------------------------------------------------------------- report

def med(vs):
    return statistics.median(vs) if vs else None


def fmt(v):
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}"


def ratios(bench, setting, kind, row, base_row, base_kind):
    """Per repetition, `row` of `kind` over `base_row` of `base_kind` in that
    same repetition (the same moment's conditions); their median."""
    a = bench.samples.get((setting, row, kind), [])
    b = bench.samples.get((setting, base_row, base_kind), [])
    return med([x / y for x, y in zip(a, b) if y])


def setting_table(bench, setting):
    straight = "pull straight from the upstream (MB/s)"
    plain = "pull from a plain registry of this kind (MB/s)"
    cold, warm = "cold pull through the cache (MB/s)", "warm pull (MB/s)"
    rows = []
    for (s, row, _) in bench.samples:
        if s == setting and ": CPU" not in row and row not in rows:
            rows.append(row)
    out = [f"### {setting}", "", "| row | ours | reference | ours / reference | target | holds |",
           "|---|---:|---:|---:|---:|:---:|"]

    def line(row, o, r, target=None, lower_better=False, no_ratio=False):
        x = None
        if o and r and not no_ratio:
            x = r / o if lower_better else o / r
        holds = ""
        if target is not None and o is not None:
            holds = "yes" if o >= target else "NO"
        out.append("| " + " | ".join([row, fmt(o), fmt(r), f"{x:.2f}x" if x else "-",
                                      f">= {target:g}" if target is not None else "",
                                      holds]) + " |")

    for row in rows:
        o = med(bench.samples.get((setting, row, "ours"), []))
        r = med(bench.samples.get((setting, row, "ref"), []))
        lower = row.endswith("(ms)") or row.endswith("(s)")
        if row.startswith(("blob stored", "cold pull: bytes")):
            line(row, o, r, no_ratio=True)
        else:
            line(row, o, r, lower_better=lower)
        if row == cold:
            line("cold pull / pull straight from the upstream",
                 ratios(bench, setting, "ours", cold, straight, "ours"),
                 ratios(bench, setting, "ref", cold, straight, "ours"), target=0.85)
        if row == warm:
            line("warm pull / pull straight from our registry",
                 ratios(bench, setting, "ours", warm, straight, "ours"),
                 ratios(bench, setting, "ref", warm, straight, "ours"), target=1.0)
            if (setting, plain, "ref") in bench.samples:
                line("warm pull / pull from a plain registry of its own kind",
                     ratios(bench, setting, "ours", warm, plain, "ours"),
                     ratios(bench, setting, "ref", warm, plain, "ref"))
    cpu_rows = [row for row in rows if row.endswith("(MB/s)")]
    names = ["cache", "upstream", "client"]
    if any(s == setting and row.endswith(": CPU, relay (s)") for (s, row, _) in bench.samples):
        names.append("relay")
    names.append("others")
    relay = ", the relay's" if "relay" in names else ""
    out += ["", f"CPU seconds per pull (medians): the cache's (or the plain registry's), "
            f"the upstream's, the load generator's{relay}, and everything else on the machine "
            f"meanwhile (other work on this shared machine):", "",
            "| row | " + " | ".join(f"{k}: {n}" for k in ("ours", "ref") for n in names) + " |",
            "|---|" + "---:|" * (2 * len(names))]
    for row in cpu_rows:
        cells = [row.replace(" (MB/s)", "")]
        for kind in ("ours", "ref"):
            for name in names:
                v = None
                for alias in ((name, "registry") if name == "cache" else (name,)):
                    v = v if v is not None else med(bench.samples.get((setting, f"{row}: CPU, {alias} (s)", kind), []))
                cells.append(fmt(v))
        if any(c != "-" for c in cells[1:]):
            out.append("| " + " | ".join(cells) + " |")
    return out


def report(bench, header):
    settings = []
    for (s, _, _) in bench.samples:
        if s not in settings:
            settings.append(s)
    out = [header, ""]
    for s in settings:
        out += setting_table(bench, s) + [""]
    if bench.notes:
        out += ["Notes:"] + [f"- {n}" for n in bench.notes]
    return "\n".join(out).rstrip()

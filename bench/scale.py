"""Scale-out rows for bench/run --nodes: N registry nodes of one kind on one
Garage bucket prefix behind Debian's HAProxy (mode http, roundrobin, health
check /healthz), the same work offered at every N, and the CPU each process
spent per unit of that work. See bench/README.md, "Scale-out"."""

import os
import socket
import statistics
import subprocess
import tempfile
import time

# The same offered load at every N, so a node's cost per unit is compared
# at equal work: 64 connections of manifest GETs, 16 clients of small
# pushes, STREAMS concurrent 1 GiB pushes and pulls (one blob each).
RATE_CONNS, SMALL_CLIENTS, SMALL_COUNT, TAGS = 64, 16, 500, 8
# HAProxy's health check per kind: distribution 2.8 has no /healthz (its
# health endpoint is on the debug listener), and answers GET /v2/ with 200
# when no auth is configured, as here.
HEALTH = {"ours": "/healthz", "ref": "/v2/"}


def switches(pids):
    """Context switches (voluntary and not) so far, over every thread of
    the processes: how often they were woken or preempted."""
    total = 0
    for pid in pids:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/status") as f:
                    total += sum(int(l.split()[1]) for l in f if "ctxt_switches" in l)
            except FileNotFoundError:  # a thread that ended meanwhile
                pass
    return total


class Haproxy:
    """Debian's haproxy in the foreground in front of `backends` (host:port),
    with a stats socket to tell when every server is up and how the requests
    and bytes were spread."""

    def __init__(self, work, backends, check, balance, proc_cpu, free_port):
        self.dir = tempfile.mkdtemp(prefix="haproxy-", dir=work)
        self.sock = os.path.join(self.dir, "stats")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.names = [f"n{i + 1}" for i in range(len(backends))]
        self.proc_cpu = proc_cpu
        cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("\n".join([
                "global", f"  stats socket {self.sock} mode 600 level admin", "  maxconn 4096",
                # Server state changes only (notice), not a line per request.
                "  log stderr format short local0 notice",
                "defaults", "  mode http", "  log global", "  timeout connect 5s",
                # /healthz writes to and reads from the store: under a 1 GiB
                # push Garage takes seconds, and the default (inter) of 1 s
                # took the only node down mid-pull.
                "  timeout check 10s",
                # A 1 GiB push through a busy Garage takes tens of seconds.
                "  timeout client 10m", "  timeout server 10m",
                f"frontend fe", f"  bind 127.0.0.1:{self.port}", "  default_backend nodes",
                "backend nodes", f"  balance {balance}",
                f"  option httpchk GET {check}", "  http-check expect status 200",
                *[f"  server {n} {b} check inter 2s" for n, b in zip(self.names, backends)],
            ]) + "\n")
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen(["/usr/sbin/haproxy", "-db", "-f", cfg], stdout=self.log,
                                     stderr=self.log, stdin=subprocess.DEVNULL)
        try:
            self.wait_up()
        except BaseException:
            self.stop()
            raise

    def stats(self):
        """{server: {column: value}} from `show stat` (CSV)."""
        for _ in range(50):
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.sock)
                    s.sendall(b"show stat\n")
                    data = b""
                    while chunk := s.recv(65536):
                        data += chunk
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"haproxy exited; see {self.dir}/log")
                time.sleep(0.1)
        else:
            raise RuntimeError(f"haproxy's stats socket did not answer; see {self.dir}/log")
        lines = data.decode().splitlines()
        cols = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(cols, line.split(",")))
            if row.get("pxname") == "nodes" and row.get("svname") in self.names:
                out[row["svname"]] = row
        return out

    def wait_up(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st = self.stats()
            if len(st) == len(self.names) and all(r["status"] == "UP" for r in st.values()):
                return
            time.sleep(0.2)
        raise RuntimeError(f"haproxy: not every node passed /healthz within 30 s: "
                           f"{ {k: v['status'] for k, v in self.stats().items()} }")

    def counters(self):
        """Per server: [requests, bytes to it, bytes from it], in node order."""
        st = self.stats()
        return [[int(st[n]["stot"]), int(st[n]["bin"]), int(st[n]["bout"])] for n in self.names]

    def cpu(self):
        return self.proc_cpu(self.proc.pid)

    def state_changes(self):
        """HAProxy's lines about a server going down or up, so far."""
        with open(os.path.join(self.dir, "log"), errors="replace") as f:
            return [l.strip() for l in f if " is DOWN" in l or " is UP" in l]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Group:
    """N started registry nodes of one kind on one root directory, and the
    HAProxy in front of them."""

    def __init__(self, ctx, kind, n, rep=0, redirect=False):
        self.kind, self.n = kind, n
        # A fresh root per repetition, so no push finds its blob already
        # there; a redirecting group reuses a streamed group's (its blobs).
        root = f"{kind}-n{n}-r{rep}"
        self.nodes = [ctx.registry(kind, root, redirect) for _ in range(n)]
        try:
            for r in self.nodes:
                r.start()
            self.front = Haproxy(ctx.work, [f"127.0.0.1:{r.port}" for r in self.nodes],
                                 HEALTH[kind], ctx.args.balance, ctx.proc_cpu, ctx.free_port)
        except BaseException:
            self.stop(front=False)
            raise
        self.base = self.front.base

    def stop(self, front=True):
        if front:
            self.front.stop()
        for r in self.nodes:
            r.stop()


class ScaleBench:
    """Runs the rows for each group and records, per row, the aggregate
    figure and the CPU per unit of every node, of HAProxy and of Garage."""

    def __init__(self, ctx, blobs):
        self.ctx, self.blobs = ctx, blobs  # blobs: [(path, digest, size)]
        self.results = {}  # (row, kind, n) -> [sample dict]
        self.idle_cpu = {}  # (kind, n) -> [[nodes, HAProxy, Garage (ms/s), S3 requests/s]]
        self.notes = []

    def want(self, key):
        only = self.ctx.args.only
        return not only or key in only

    def measure(self, group, cmds, share):
        """Runs the client commands at once; returns the wall time, their
        parsed outputs and CPU use: per node (split by HAProxy's counters,
        column `share`), HAProxy's, Garage's, the clients'."""
        ctx, front = self.ctx, group.front
        os.sync()
        k0 = front.counters()
        n0 = [r.cpu() for r in group.nodes]
        s0 = ctx.garage.s3_requests()
        nodes = [r.proc.pid for r in group.nodes]
        x0 = (switches(nodes), switches(ctx.garage.pids))
        h0, g0, t0 = front.cpu(), ctx.garage.cpu(), os.times()
        w0 = time.perf_counter()
        procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=ctx.client_env) for c in cmds]
        outs = [(p, *p.communicate()) for p in procs]
        wall = time.perf_counter() - w0
        n1 = [r.cpu() for r in group.nodes]
        h1, g1, t1 = front.cpu(), ctx.garage.cpu(), os.times()
        k1 = front.counters()
        s1 = ctx.garage.s3_requests()
        x1 = (switches(nodes), switches(ctx.garage.pids))
        for p, out, err in outs:
            if p.returncode != 0:
                raise RuntimeError(f"{group.kind} x{group.n}: {' '.join(p.args[:2])}: {err.strip()[:300]}")
        return {
            "wall": wall, "outs": [o for _, o, _ in outs],
            "node_cpu": [b - a for a, b in zip(n0, n1)],
            "work": [b[share] - a[share] for a, b in zip(k0, k1)],
            "requests": [b[0] - a[0] for a, b in zip(k0, k1)],
            "haproxy_cpu": h1 - h0, "garage_cpu": g1 - g0,
            "load": os.getloadavg()[0],
            "switches": [b - a for a, b in zip(x0, x1)],
            "s3": sum(n - s0.get(op, (0, 0))[0] for op, (n, _) in s1.items()),
            "client_cpu": (t1.children_user - t0.children_user) + (t1.children_system - t0.children_system),
        }

    def record(self, row, group, m, value, units):
        """Keeps a row's figure and its CPU per unit (units: requests, or GiB)."""
        total = sum(m["work"]) or 1
        m.update(value=value, units=units,
                 per_node=[c / (units * w / total) if w else float("nan")
                           for c, w in zip(m["node_cpu"], m["work"])])
        self.results.setdefault((row, group.kind, group.n), []).append(m)

    def lg(self, group, *a):
        return [self.ctx.loadgen, a[0], "--base", group.base, *a[1:]]

    def run_group(self, group, rep, reps):
        """One repetition of every wanted row against a freshly started group."""
        tag = f"{group.kind} x{group.n}, repetition {rep + 1}/{reps}"
        self.idle(group)
        rows = [(self.want("push") or self.want("pull"), lambda: self.big_rows(group, tag)),
                (self.want("small"), lambda: self.small_row(group, tag, rep)),
                (self.want("manifest"), lambda: self.manifest_row(group, tag))]
        for wanted, row in rows:
            if not wanted:
                continue
            try:
                row()
            except RuntimeError as e:  # a failed row is reported, not fatal
                self.notes.append(f"{tag}: {e}")
                self.ctx.log(f"{tag}: FAILED: {e}")
        for line in group.front.state_changes():
            self.notes.append(f"{tag}: HAProxy: {line}")

    def idle(self, group, secs=5):
        """What the group costs doing nothing (HAProxy's health checks, each
        node's storage check behind /healthz, Garage's own background work),
        in CPU-milliseconds per second: the floor under every row's figures."""
        m = self.measure(group, [["sleep", str(secs)]], 0)
        self.idle_cpu.setdefault((group.kind, group.n), []).append(
            [sum(m["node_cpu"]) / m["wall"] * 1e3, m["haproxy_cpu"] / m["wall"] * 1e3,
             m["garage_cpu"] / m["wall"] * 1e3, m["s3"] / m["wall"]])

    def big_rows(self, group, tag):
        """STREAMS concurrent pushes of a blob each (also needed by the
        pulls), then as many concurrent pulls of them."""
        lg, blobs = self.lg, self.blobs
        gib = sum(s for _, _, s in blobs) / (1 << 30)
        mib, streams = blobs[0][2] >> 20, len(blobs)
        self.ctx.log(f"{tag}: {streams} concurrent {mib} MiB pushes")
        m = self.measure(group, [lg(group, "push-file", "--repo", f"bench/big{i}", "--file", p,
                                    "--digest", d) for i, (p, d, _) in enumerate(blobs)], 1)
        if self.want("push"):
            self.record(f"{streams} x {mib} MiB push, monolithic (MB/s)", group, m,
                        gib * (1 << 30) / m["wall"] / 1e6, gib)
        if not self.want("pull"):
            return
        self.ctx.log(f"{tag}: {streams} concurrent {mib} MiB pulls")
        m = self.measure(group, [lg(group, "pull", "--path", f"/v2/bench/big{i}/blobs/{d}")
                                 for i, (_, d, _) in enumerate(blobs)], 2)
        self.check_pulls(m)
        self.record(f"{streams} x {mib} MiB pull, streamed (MB/s)", group, m,
                    gib * (1 << 30) / m["wall"] / 1e6, gib)

    def small_row(self, group, tag, rep):
        self.ctx.log(f"{tag}: {SMALL_COUNT} small pushes")
        m = self.measure(group, [self.lg(group, "push-blobs", "--repo", "bench/small", "--count",
                                         str(SMALL_COUNT), "--size", "4096", "--conns",
                                         str(SMALL_CLIENTS), "--seed", str(100 * group.n + rep + 1))], 0)
        o = self.ctx.parse(m["outs"][0], self.notes, f"{group.kind} x{group.n} small pushes")
        self.record(f"{SMALL_COUNT} x 4 KiB pushes, {SMALL_CLIENTS} clients (/s)", group, m,
                    o["rate"], o["ok"])

    def manifest_row(self, group, tag):
        # The tags are made through the group too, unmeasured.
        self.measure(group, [self.lg(group, "tags", "--repo", "bench/tags", "--count", str(TAGS),
                                     "--conns", str(TAGS))], 0)
        self.ctx.log(f"{tag}: manifest GETs")
        m = self.measure(group, [self.lg(group, "rate", "--method", "GET", "--path",
                                         "/v2/bench/tags/manifests/t00000", "--header",
                                         self.ctx.manifest_accept, "--conns", str(RATE_CONNS),
                                         "--secs", "4")], 0)
        o = self.ctx.parse(m["outs"][0], self.notes, f"{group.kind} x{group.n} manifest GET")
        self.record(f"manifest GET, {RATE_CONNS} connections (req/s)", group, m, o["rate"], o["ok"])

    def check_pulls(self, m):
        for out, (_, _, size) in zip(m["outs"], self.blobs):
            got = self.ctx.parse(out, self.notes, "pull")["bytes"]
            if got != size:
                raise RuntimeError(f"a pull returned {got} of {size} bytes")

    def redirect_pull(self, group, reps):
        """The pulls with redirects on: HAProxy passes each node's 307 to a
        presigned Garage URL, which curl follows straight to Garage."""
        mib = self.blobs[0][2] >> 20
        gib = sum(s for _, _, s in self.blobs) / (1 << 30)
        cmds = [["curl", "-sS", "-L", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{num_redirects}",
                 f"{group.base}/v2/bench/big{i}/blobs/{d}"] for i, (_, d, _) in enumerate(self.blobs)]
        for rep in range(reps):
            self.ctx.log(f"{group.kind} x{group.n}: {len(cmds)} concurrent pulls with redirects, "
                         f"repetition {rep + 1}/{reps}")
            m = self.measure(group, cmds, 0)
            for out, (_, _, size) in zip(m["outs"], self.blobs):
                code, n, redirects = out.split()
                if code != "200" or int(n) != size or redirects != "1":
                    raise RuntimeError(f"redirected pull: status {code}, {n} bytes, {redirects} redirect(s)")
            self.record(f"{len(cmds)} x {mib} MiB pull, redirect to Garage, curl -L (MB/s)", group, m,
                        gib * (1 << 30) / m["wall"] / 1e6, gib)


def seed(ctx, bench):
    """Pushes the blobs once through one node of ours under a root of its
    own, unmeasured but for Garage's CPU: Garage keeps one copy of a data
    block whatever object holds it, so only the first push of a blob writes
    new blocks. Seeding puts every measured push on the same footing."""
    group = Group(ctx, "ours", 1, rep="seed")
    try:
        ctx.log("seeding: the blobs pushed once, so every measured push finds their blocks in Garage")
        cmds = [bench.lg(group, "push-file", "--repo", f"seed/big{i}", "--file", p, "--digest", d)
                for i, (p, d, _) in enumerate(bench.blobs)]
        m = bench.measure(group, cmds, 1)
        gib = sum(s for _, _, s in bench.blobs) / (1 << 30)
        bench.notes.append(
            f"Seeding push (new blocks for Garage, {len(cmds)} concurrent through 1 node of ours, "
            f"not in the table): {gib * (1 << 30) / m['wall'] / 1e6:.1f} MB/s; CPU per GiB: "
            f"node {sum(m['node_cpu']) / gib:.2f} s, HAProxy {m['haproxy_cpu'] / gib:.2f} s, "
            f"Garage {m['garage_cpu'] / gib:.2f} s.")
    finally:
        group.stop()


def groups_to_run(args):
    """(kind, N) in run order: ours at every N, the reference at the ends."""
    ns = [int(n) for n in args.nodes.split(",")]
    out = [("ours", n) for n in ns]
    if args.ref_nodes:
        out += [("ref", int(n)) for n in args.ref_nodes.split(",")]
    return out


def run(ctx, blobs):
    bench = ScaleBench(ctx, blobs)
    if ctx.args.seed:
        seed(ctx, bench)
    reps = ctx.args.reps
    for rep in range(reps):
        # Alternating the order, so neither end of the run has all of one N.
        order = groups_to_run(ctx.args)
        for kind, n in order if rep % 2 == 0 else order[::-1]:
            group = Group(ctx, kind, n, rep)
            try:
                ctx.log(f"{kind}: {n} node(s) behind HAProxy at {group.base}")
                bench.run_group(group, rep, reps)
            finally:
                group.stop()
    if ctx.args.redirect_nodes and (bench.want("pull") or bench.want("redirect")):
        for n in (int(x) for x in ctx.args.redirect_nodes.split(",")):
            # Same root as the streamed group of that N, so the blobs are there.
            group = Group(ctx, "ours", n, redirect=True)
            try:
                bench.redirect_pull(group, reps)
            finally:
                group.stop()
    return bench


# ---------------------------------------------------------------- report

def fmt(v):
    if v != v:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}"


def med(ms, f):
    return statistics.median(f(m) for m in ms)


def per_unit(row):
    """Rate rows are per request, in microseconds; the others per GiB, in seconds."""
    return (1e6, "µs/req") if row.endswith(("(/s)", "(req/s)")) else (1, "s/GiB")


def report(bench, header):
    rows = []
    for (row, _, _) in bench.results:
        if row not in rows:
            rows.append(row)
    out = [header, "",
           "Aggregate throughput through HAProxy, and CPU per unit of work (medians): per node "
           "(its own CPU over its share of the row's work, by HAProxy's counters: requests for "
           "rate rows, bytes for the 1 GiB rows), all nodes together, HAProxy, the three Garage "
           "nodes, the clients. Units: microseconds per request for rate rows, CPU-seconds per "
           "GiB moved otherwise. S3 requests per unit of work, from Garage's metrics; HTTP "
           "requests each node served, from HAProxy's counters (first repetition).", "",
           "| row | kind | nodes | throughput | per node | nodes, sum | HAProxy | Garage | clients | S3 requests | requests per node | load | context switches per unit, nodes / Garage |",
           "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|---|---|"]
    for row in rows:
        scale, unit = per_unit(row)
        for (r, kind, n), ms in bench.results.items():
            if r != row:
                continue
            per_node = [statistics.median(m["per_node"][i] for m in ms) * scale for i in range(n)]
            cells = [row, "ours" if kind == "ours" else "reference", str(n), fmt(med(ms, lambda m: m["value"])),
                     " / ".join(fmt(v) for v in per_node) + f" {unit}"]
            for key in ("node_cpu", "haproxy_cpu", "garage_cpu", "client_cpu"):
                cells.append(fmt(med(ms, lambda m: (sum(m[key]) if key == "node_cpu" else m[key])
                                     / m["units"]) * scale))
            cells.append(fmt(med(ms, lambda m: m["s3"] / m["units"])))
            cells.append(" / ".join(str(v) for v in ms[0]["requests"]))
            cells.append(" / ".join(f"{m['load']:.1f}" for m in ms))
            cells.append(" / ".join(fmt(med(ms, lambda m: m["switches"][i] / m["units"]))
                                    for i in range(2)))
            out.append("| " + " | ".join(cells) + " |")
    out += ["", "Idle (5 s with the group up and nothing asked of it; medians): CPU-milliseconds "
            "per second of all nodes, HAProxy and Garage, and S3 requests per second. Every row's "
            "CPU includes this floor; the load column above is the 1-minute load average after "
            "each repetition (the whole machine, this run's own processes included).", "",
            "| kind | nodes | nodes (ms/s) | HAProxy (ms/s) | Garage (ms/s) | S3 requests/s |",
            "|---|---:|---:|---:|---:|---:|"]
    for (kind, n), vs in bench.idle_cpu.items():
        cells = [statistics.median(v[i] for v in vs) for i in range(4)]
        out.append(f"| {'ours' if kind == 'ours' else 'reference'} | {n} | "
                   + " | ".join(fmt(c) for c in cells) + " |")
    ratios = ratio_table(bench, rows)
    if ratios:
        out += ["", "Ours against the reference at equal N (throughput: ours / reference; CPU: "
                "reference / ours, so >1 means ours is better in both):", "",
                "| row | nodes | throughput | nodes' CPU per unit | Garage's CPU per unit |",
                "|---|---:|---:|---:|---:|"] + ratios
    if bench.notes:
        out += ["", "Notes:"] + [f"- {n}" for n in bench.notes]
    return "\n".join(out)


def ratio_table(bench, rows):
    out = []
    for row in rows:
        for (r, kind, n), ref in bench.results.items():
            ours = bench.results.get((row, "ours", n))
            if r != row or kind != "ref" or not ours:
                continue
            v = med(ours, lambda m: m["value"]) / med(ref, lambda m: m["value"])
            c = [med(ref, lambda m: f(m) / m["units"]) / max(med(ours, lambda m: f(m) / m["units"]), 1e-12)
                 for f in (lambda m: sum(m["node_cpu"]), lambda m: m["garage_cpu"])]
            out.append(f"| {row} | {n} | {v:.2f}x | {c[0]:.2f}x | {c[1]:.2f}x |")
    return out

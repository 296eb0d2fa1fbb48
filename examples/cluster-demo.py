#!/usr/bin/env python3
"""examples/cluster-demo.py - `sluice demo` running as a cluster (issue 16).

Starts, all on 127.0.0.1 with free ports and in one temporary directory:
  - a private redis-server (no persistence),
  - a fake downstream that accepts D = --limit calls at once and counts the
    calls in flight from every process (one line "<hold us>\\n" per call,
    answered "ok\\n" once it has been held),
  - --replicas `sluice demo` replicas of one service whose sluice.yaml has a
    cluster: section in strict mode and a downstream-budget.yaml giving the
    service the whole downstream (share = D).

Then it shows, printing each replica's K (sluice_budget_pool_k from its
/metrics) and the downstream's calls in flight once a second:
  1. the replicas split D: K = D / replicas each;
  2. kill -9 of one replica: within the member TTL the others' K grow to
     D / (replicas - 1);
  3. SIGSTOP of Redis: every replica falls back to its last fair share and
     says so in /health/pools ("cluster DEGRADED"), still ready;
  4. SIGCONT: they recover.
Everything it started is stopped at the end (also on Ctrl-C or an error)
and the directory removed.

Exit status: 0 when the downstream never saw more than D calls at once,
K grew after the kill, and the fallback was seen and left; 1 otherwise;
2 bad usage or a process that would not start; 77 when redis-server is
not installed (scripts/install-deps.sh installs it).

    python3 examples/cluster-demo.py [--short] [--replicas 3] [--limit 30]
                                     [--sluice build/tools/sluice/sluice]

--short runs each phase briefly (the test cluster_demo runs it so).
"""
import argparse
import os
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SERVICE = "checkout"
POOL = "payments"
DOWNSTREAM = "payments-api"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Downstream:
    """The fake downstream: counts calls in flight across all callers."""

    def __init__(self):
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls = 0
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                try:
                    self.serve()
                except OSError:
                    pass  # a caller that went away (the kill -9)

            def serve(self):
                for line in self.rfile:
                    try:
                        hold_us = int(line)
                    except ValueError:
                        return
                    with outer.lock:
                        outer.in_flight += 1
                        outer.calls += 1
                        outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                    time.sleep(hold_us / 1e6)
                    with outer.lock:
                        outer.in_flight -= 1
                    try:
                        self.wfile.write(b"ok\n")
                        self.wfile.flush()
                    except OSError:
                        return

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 256

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def snapshot(self):
        with self.lock:
            return self.in_flight, self.max_in_flight, self.calls

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def http_get(port, path, timeout=2.0):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def metric(text, name):
    """The value of `name{...pool="payments"...}` or of a service-level series."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if name == "sluice_budget_pool_k" and 'pool="%s"' % POOL not in line:
                continue
            try:
                return float(line.rsplit(" ", 1)[1])
            except ValueError:
                return None
    return None


class Demo:
    def __init__(self, args):
        self.args = args
        self.procs = []  # (name, Popen) in start order
        self.dir = tempfile.mkdtemp(prefix="sluice-cluster-demo-")
        self.redis = None
        self.downstream = None
        self.replicas = []  # dicts: name, port, proc, alive
        self.failures = []

    # ---- processes -------------------------------------------------------

    def start_redis(self):
        # A port seen free may be taken (by another test) before redis-server
        # binds it: then our server exits, and a PING would be answered by
        # the other program's. So the server that answers must report our
        # child's pid (INFO server's process_id); otherwise another port.
        for _ in range(20):
            self.redis_port = free_port()
            log = open(os.path.join(self.dir, "redis.log"), "w")
            p = subprocess.Popen(
                ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", self.dir, "--daemonize", "no"],
                stdout=log, stderr=subprocess.STDOUT)
            if self.wait_own_redis(p):
                self.redis = p
                self.procs.append(("redis", p))
                return
            if p.poll() is None:
                p.kill()
            p.wait()
        raise RuntimeError("redis-server did not start (20 ports tried; see %s/redis.log)" % self.dir)

    def wait_own_redis(self, p):
        """True when the redis-server answering on self.redis_port is p."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and p.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=0.5) as s:
                    s.sendall(b"INFO server\r\n")
                    reply, m = b"", None
                    while m is None:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        reply += chunk
                        m = re.search(rb"process_id:(\d+)\r\n", reply)
                    if m:
                        return int(m.group(1)) == p.pid
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def write_config(self):
        a = self.args
        hb, ttl = ("100ms", "500ms") if a.short else ("250ms", "1s")
        with open(os.path.join(self.dir, "downstream-budget.yaml"), "w") as f:
            f.write("downstream: %s\ntotal_limit: %d\nshares:\n  %s: %d\nfree_pool: 0\n"
                    % (DOWNSTREAM, a.limit, SERVICE, a.limit))
        with open(os.path.join(self.dir, "sluice.yaml"), "w") as f:
            f.write("""service:
  name: %s
  drain_budget: 5s
pools:
  - name: %s
    workers: %d
    rationale: %s accepts %d calls at once from the whole service; the cluster splits it
    queue_capacity: 1000
    downstream: %s
    demo_latency_p50: 20ms
    demo_latency_p99: 80ms
cluster:
  redis: 127.0.0.1:%d
  key_prefix: demo
  mode: strict
  heartbeat: %s
  member_ttl: %s
  lease_ttl: %s
  redis_timeout: 200ms
  budget_file: downstream-budget.yaml
""" % (SERVICE, POOL, a.limit, DOWNSTREAM, a.limit, DOWNSTREAM, self.redis_port, hb, ttl, ttl))

    def start_replica(self, i):
        # Port 0: the replica binds a free port itself (a port picked here
        # could be taken before it binds) and names it on stderr
        # ("admin http://127.0.0.1:PORT;").
        name = "replica-%d" % (i + 1)
        log_path = os.path.join(self.dir, name + ".log")
        log = open(log_path, "w")
        p = subprocess.Popen(
            [self.args.sluice, "demo", "--config", os.path.join(self.dir, "sluice.yaml"),
             "--listen", "127.0.0.1:0", "--rate", str(self.args.rate), "--view", "none",
             "--downstream-at", "127.0.0.1:%d" % self.downstream.port],
            stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((name, p))
        r = {"name": name, "port": None, "proc": p, "alive": True}
        self.replicas.append(r)
        for _ in range(600):
            if p.poll() is not None:
                raise RuntimeError("%s exited with %d (see %s)" % (name, p.returncode, log_path))
            if r["port"] is None:
                with open(log_path, errors="replace") as f:
                    m = re.search(r"admin http://127\.0\.0\.1:(\d+);", f.read())
                r["port"] = int(m.group(1)) if m else None
            if r["port"] is not None and http_get(r["port"], "/health/live", 0.5)[0] == 200:
                return
            time.sleep(0.05)
        raise RuntimeError("%s did not answer (admin port %s; see %s)" % (name, r["port"], log_path))

    def stop_all(self):
        for r in self.replicas:
            if r["alive"] and r["proc"].poll() is None:
                r["proc"].send_signal(signal.SIGTERM)
        if self.redis and self.redis.poll() is None:
            self.redis.send_signal(signal.SIGCONT)
        for name, p in self.procs:
            if name == "redis":
                continue
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.redis and self.redis.poll() is None:
            self.redis.terminate()
            try:
                self.redis.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.redis.kill()
                self.redis.wait()
        if self.downstream:
            self.downstream.stop()
        if self.args.keep:
            print("logs kept in %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ---- observation -----------------------------------------------------

    def sample(self):
        out = []
        for r in self.replicas:
            if not r["alive"]:
                continue
            _, text = http_get(r["port"], "/metrics")
            out.append((r, metric(text, "sluice_budget_pool_k"), metric(text, "sluice_budget_fallback")))
        return out

    def show(self, label):
        s = self.sample()
        in_flight, mx, calls = self.downstream.snapshot()
        ks = "  ".join("%s K=%s%s" % (r["name"], "?" if k is None else int(k), " (fallback)" if fb else "")
                       for r, k, fb in s)
        print("%6.1fs %-9s %s | downstream: %2d in flight, max %d of D=%d, %d calls"
              % (time.monotonic() - self.t0, label, ks, in_flight, mx, self.args.limit, calls), flush=True)
        return s

    def wait_for(self, label, cond, timeout):
        """Sample and print once a second until cond(samples) holds."""
        end = time.monotonic() + timeout
        last = 0.0
        while time.monotonic() < end:
            s = self.sample()
            if cond(s):
                self.show(label)
                return True
            if time.monotonic() - last >= 1.0:
                self.show(label)
                last = time.monotonic()
            time.sleep(0.1)
        self.show(label)
        return False

    def hold(self, label, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.show(label)
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))

    # ---- the story -------------------------------------------------------

    def run(self):
        a = self.args
        self.t0 = time.monotonic()
        self.start_redis()
        self.downstream = Downstream()
        self.write_config()
        for i in range(a.replicas):
            self.start_replica(i)
        n = a.replicas
        print("redis 127.0.0.1:%d, downstream 127.0.0.1:%d (D=%d), %d replicas of %s; files in %s"
              % (self.redis_port, self.downstream.port, a.limit, n, SERVICE, self.dir), flush=True)
        hold = 1.0 if a.short else 4.0

        def ks_are(want):
            return lambda s: len(s) > 0 and all(k == want for _, k, _ in s)

        k_before = a.limit // n
        if not self.wait_for("split", ks_are(k_before), 30):
            self.failures.append("the replicas did not settle at K=%d each" % k_before)
        self.hold("steady", hold)

        victim = self.replicas[-1]
        victim["proc"].kill()  # kill -9
        victim["proc"].wait()
        victim["alive"] = False
        t_kill = time.monotonic()
        print("%6.1fs kill -9 %s" % (t_kill - self.t0, victim["name"]), flush=True)
        k_after = a.limit // (n - 1)
        grew = self.wait_for("rebalance", ks_are(k_after), 30)
        if grew:
            print("K grew from %d to %d on the %d survivors, %.1fs after the kill"
                  % (k_before, k_after, n - 1, time.monotonic() - t_kill), flush=True)
        else:
            self.failures.append("K did not grow to %d after the kill" % k_after)
        self.hold("steady", hold)

        self.redis.send_signal(signal.SIGSTOP)
        print("%6.1fs SIGSTOP redis-server (Redis stops answering)" % (time.monotonic() - self.t0), flush=True)
        fell = self.wait_for("redis-down", lambda s: len(s) > 0 and all(fb == 1 for _, _, fb in s), 30)
        health = [http_get(r["port"], "/health/pools", 5.0) for r in self.replicas if r["alive"]]
        for r, (status, body) in zip([r for r in self.replicas if r["alive"]], health):
            line = next((l for l in body.splitlines() if l.startswith("cluster ")), "(no cluster line)")
            print("        %s /health/pools %d: %s" % (r["name"], status, line), flush=True)
        # DEGRADED keeps the replica ready; /health/pools may still be 503
        # for another reason (a saturated pool's full queue refuses the probe).
        if not fell or not all("cluster DEGRADED" in b and "cluster FAIL" not in b for _, b in health):
            self.failures.append("the replicas did not report the fallback (cluster DEGRADED)")
        self.hold("fallback", hold)

        self.redis.send_signal(signal.SIGCONT)
        print("%6.1fs SIGCONT redis-server" % (time.monotonic() - self.t0), flush=True)
        if not self.wait_for("recovered", lambda s: len(s) > 0 and all(fb == 0 for _, _, fb in s), 30):
            self.failures.append("the replicas did not leave the fallback")
        self.hold("steady", hold)

        _, mx, calls = self.downstream.snapshot()
        print("max calls in flight at the downstream: %d (D = %d) over %d calls" % (mx, a.limit, calls))
        if mx > a.limit:
            self.failures.append("the downstream saw %d calls at once, more than D = %d" % (mx, a.limit))
        if calls == 0:
            self.failures.append("no call reached the downstream")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="sluice demo as a cluster (see the file's header)")
    ap.add_argument("--sluice", default=os.environ.get("SLUICE", os.path.join(here, "..", "build", "tools",
                                                                             "sluice", "sluice")))
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--limit", type=int, default=30, help="D: the downstream's limit (default 30)")
    ap.add_argument("--rate", type=float, default=0, help="notifications/s per replica (default: 2 x capacity)")
    ap.add_argument("--short", action="store_true", help="brief phases (tests)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    a = ap.parse_args()
    if a.replicas < 2 or a.limit < a.replicas:
        print("cluster-demo: want --replicas >= 2 and --limit >= --replicas", file=sys.stderr)
        return 2
    if not shutil.which("redis-server"):
        print("cluster-demo: redis-server is not installed (scripts/install-deps.sh installs it)", file=sys.stderr)
        return 77
    if not os.access(a.sluice, os.X_OK):
        print("cluster-demo: no sluice at %s (build first: make build, or --sluice PATH)" % a.sluice, file=sys.stderr)
        return 2
    if a.rate <= 0:
        a.rate = 2 * (a.limit / a.replicas) / 0.025  # K calls of ~25 ms mean, twice over: always saturated
    d = Demo(a)

    def on_signal(signo, frame):
        raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, on_signal)
    try:
        d.run()
    except KeyboardInterrupt:
        d.failures.append("interrupted")
    except RuntimeError as e:
        print("cluster-demo: %s" % e, file=sys.stderr)
        d.failures.append("start: %s" % e)
        d.start_failed = True
    finally:
        if d.procs:
            d.stop_all()
    if getattr(d, "start_failed", False):
        return 2
    for f in d.failures:
        print("FAILED: %s" % f)
    if not d.failures:
        print("OK: never more than D in flight, K grew after the kill, fallback seen and left")
    return 1 if d.failures else 0


if __name__ == "__main__":
    sys.exit(main())

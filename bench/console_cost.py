#!/usr/bin/env python3
"""bench/console_cost.py - what open web consoles cost a service.

Runs `sluice demo` twice for the same time at the same rate: alone, then
watched by N consoles. A console here is what the page does (see
src/admin/console/console.html): every second, GET /debug/pools and GET
/metrics, on fresh connections. Prints, for each run, the demo's tasks
finished per second, its CPU use (user+system, from /proc), and the
consoles' request latency; then the ratios. A benchmark: it prints
figures, it never fails on them.

Usage: console_cost.py SLUICE [--consoles 20] [--seconds 20] [--rate 2000]
"""
import argparse
import os
import re
import subprocess
import threading
import time
import urllib.request


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def finished(url):
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    total = 0
    for m in re.finditer(r'^pool_(completed|failed|panicked)_total\{[^}]*\} (\d+)', text, re.M):
        total += int(m.group(2))
    return total


def console(url, stop, latencies):
    while not stop.is_set():
        t0 = time.monotonic()
        for path in ("/debug/pools", "/metrics"):
            s = time.monotonic()
            urllib.request.urlopen(url + path, timeout=10).read()
            latencies.append(time.monotonic() - s)
        stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))


def run(sluice, consoles, seconds, rate):
    demo = subprocess.Popen([sluice, "demo", "--listen", "127.0.0.1:0", "--view", "none", "--rate", str(rate)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = None
    while not url:
        line = demo.stderr.readline()
        m = re.search(r"admin (http://[0-9.:]+)", line)
        url = m.group(1) if m else None
    time.sleep(3)  # warm up: workers started, rates steady
    stop, latencies = threading.Event(), []
    threads = [threading.Thread(target=console, args=(url, stop, latencies)) for _ in range(consoles)]
    for t in threads:
        t.start()
    c0, f0, t0 = cpu_seconds(demo.pid), finished(url), time.monotonic()
    time.sleep(seconds)
    c1, f1, t1 = cpu_seconds(demo.pid), finished(url), time.monotonic()
    stop.set()
    for t in threads:
        t.join()
    demo.terminate()
    demo.wait()
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3 if latencies else 0.0
    return {"tasks_s": (f1 - f0) / (t1 - t0), "cpu": (c1 - c0) / (t1 - t0), "requests": len(latencies),
            "p50_ms": p(0.5), "p99_ms": p(0.99)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sluice")
    ap.add_argument("--consoles", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rate", type=float, default=2000)
    a = ap.parse_args()
    base = run(a.sluice, 0, a.seconds, a.rate)
    watched = run(a.sluice, a.consoles, a.seconds, a.rate)
    print("demo --rate %g, %g s each, %d CPUs" % (a.rate, a.seconds, os.cpu_count()))
    print("%-12s %10s %10s %10s %10s %10s" % ("consoles", "tasks/s", "CPU", "requests", "p50 ms", "p99 ms"))
    for n, r in ((0, base), (a.consoles, watched)):
        print("%-12d %10.0f %9.1f%% %10d %10.2f %10.2f" % (n, r["tasks_s"], 100 * r["cpu"], r["requests"],
                                                          r["p50_ms"], r["p99_ms"]))
    print("tasks/s ratio (watched / alone): %.3f; CPU added by %d consoles: %.1f%% of one core" %
          (watched["tasks_s"] / base["tasks_s"], a.consoles, 100 * (watched["cpu"] - base["cpu"])))


if __name__ == "__main__":
    main()

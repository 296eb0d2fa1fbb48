#!/usr/bin/env python3
"""tests/cli/console_browser.py - the web console, as a person uses it.

Starts `sluice demo` (free port, sms stalled from 4 s), opens its console
at / in a real headless Chromium driven over the DevTools protocol (a
small WebSocket client below, standard library only), and checks that:
  - a card per pool appears and its numbers change between two looks;
  - the stalled pool (sms) turns to the "stalled" state, the others do not;
  - clicking a worker of the stalled pool shows its stack, naming the
    demo's downstream call it is stuck in;
  - the page logged no error and no exception, and every poll succeeded.
It saves a screenshot (the artefact) to ARTEFACT_DIR/console.png.

Then the same page (its bytes as the demo served them) against a stand-in
admin server on loopback that requires a bearer token and exports sync
primitives: the page asks for the token and shows no pool until it has
it, then sends it; the limits-and-budgets tables show the semaphore,
breaker, per-tenant limiter and retry budget; when the server goes away
the cards turn stale under a banner. Screenshot: console-token.png.

Usage: console_browser.py SLUICE_BINARY ARTEFACT_DIR
Exit: 0 pass, 1 fail, 77 skip (no Chromium, or Chromium cannot start here).
Waits are bounded polls of the page's own state (data-* attributes), each
with a safety timeout; nothing asserts on wall time.
"""
import base64
import http.server
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SKIP = 77
SAFETY_S = 90


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    raise SystemExit(1)


class WebSocket:
    """Just enough RFC 6455 for the DevTools protocol: text frames, client
    masking, 16/64-bit lengths, continuation frames."""

    def __init__(self, url):
        m = re.match(r"ws://([^:/]+):(\d+)(/.*)", url)
        if not m:
            fail("unexpected DevTools URL " + url)
        self.sock = socket.create_connection((m.group(1), int(m.group(2))), timeout=SAFETY_S)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n") % (m.group(3), m.group(1), m.group(2), key)
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                fail("DevTools closed the WebSocket handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n")[0]:
            fail("DevTools refused the WebSocket: " + head.decode(errors="replace"))

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                fail("DevTools closed the WebSocket")
            buf += chunk
        return buf

    def send(self, text):
        data = text.encode()
        head = bytearray([0x81])
        if len(data) < 126:
            head.append(0x80 | len(data))
        elif len(data) < 65536:
            head.append(0x80 | 126)
            head += struct.pack(">H", len(data))
        else:
            head.append(0x80 | 127)
            head += struct.pack(">Q", len(data))
        mask = os.urandom(4)
        head += mask
        self.sock.sendall(bytes(head) + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._recv_exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._recv_exact(8))[0]
            payload = self._recv_exact(n)
            opcode = b0 & 0x0F
            if opcode == 8:
                fail("DevTools closed the WebSocket")
            if opcode in (0, 1, 2):
                message += payload
                if b0 & 0x80:
                    return message.decode()


class Page:
    """A DevTools session on one page: commands, and the events seen."""

    def __init__(self, ws_url):
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.errors = []
        self.exceptions = []

    def _event(self, msg):
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.errors.append("exception: %s %s" % (d.get("text"), d.get("exception", {}).get("description", "")))
            self.exceptions.append(self.errors[-1])
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.errors.append("console.%s: %s" % (p["type"], [a.get("value", a.get("description")) for a in p.get("args", [])]))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            self.errors.append("log: %s %s" % (e.get("text"), e.get("url", "")))

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    fail("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            self._event(msg)

    def js(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        if "exceptionDetails" in r:
            fail("evaluating %s: %s" % (expr, r["exceptionDetails"]))
        return r["result"].get("value")

    def wait(self, what, expr):
        """Poll expr (JS) until it is truthy; fail after the safety timeout."""
        deadline = time.monotonic() + SAFETY_S
        while time.monotonic() < deadline:
            # The page may still be loading (no body yet): that is "not yet".
            v = self.js("(() => { try { return (%s); } catch (e) { return false; } })()" % expr)
            if v:
                return v
            time.sleep(0.2)
        fail("timed out waiting for " + what + "; page state: " + json.dumps(cards(self)) + "; stack view: " +
             repr((self.js("(document.getElementById('stacktext') || {}).textContent") or "")[:400]))


TOKEN = "tok-123"
FAKE_POOLS = {"ready": True, "pools": [{"name": "ingest", "config": {}, "stats": {
    "running": 2, "capacity": 4, "workers": 3, "idle": 1, "waiting": 0, "queue_depth": 1, "queue_capacity": 16,
    "draining": False, "submitted": 100, "completed": 90, "failed": 3, "panicked": 1, "rejected": 0, "dropped": 0,
    "shed": 2, "abandoned": 0}, "workers": [
    {"index": 0, "state": "running", "for_seconds": 0.5, "task": "ingest.batch", "tasks_run": 40},
    {"index": 1, "state": "running", "for_seconds": 0.1, "task": "ingest.batch", "tasks_run": 38},
    {"index": 2, "state": "idle", "for_seconds": 1.0, "task": None, "tasks_run": 20}]}]}


class StandIn(http.server.BaseHTTPRequestHandler):
    """An admin server with a token and sync primitives (the HTTP contract only)."""
    page = b""
    polls = 0
    authorized = 0

    def log_message(self, *args):
        pass

    def reply(self, status, ctype, body, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/":
            self.reply(200, "text/html; charset=utf-8", StandIn.page)
        elif path.startswith("/debug/"):
            if self.headers.get("Authorization") != "Bearer " + TOKEN:
                self.reply(401, "text/plain", b"unauthorized\n", [("WWW-Authenticate", 'Bearer realm="sluice-admin"')])
                return
            StandIn.authorized += 1
            self.reply(200, "application/json", json.dumps(FAKE_POOLS).encode())
        elif path == "/metrics":
            StandIn.polls += 1
            n = StandIn.polls
            text = "\n".join([
                '# TYPE pool_task_duration_seconds histogram',
                'pool_task_duration_seconds_bucket{name="ingest",le="0.01"} %d' % (5 * n),
                'pool_task_duration_seconds_bucket{name="ingest",le="0.1"} %d' % (9 * n),
                'pool_task_duration_seconds_bucket{name="ingest",le="+Inf"} %d' % (10 * n),
                'sluice_semaphore_capacity{name="decode"} 8', 'sluice_semaphore_in_use{name="decode"} 8',
                'sluice_semaphore_waiters{name="decode"} 3', 'sluice_semaphore_acquired_total{name="decode"} %d' % (50 * n),
                'sluice_breaker_state{name="payments"} 1', 'sluice_breaker_rejected_total{name="payments"} 7',
                'sluice_breaker_calls_total{name="payments",outcome="failure"} 12',
                'sluice_keyed_limiter_keys{name="per_tenant"} 42', 'sluice_keyed_limiter_max_keys{name="per_tenant"} 1000',
                'sluice_keyed_limiter_limited_total{name="per_tenant"} %d' % (3 * n),
                'sluice_retry_budget_balance{name="api"} 3.5', 'sluice_retry_budget_ratio{name="api"} 0.1',
                'sluice_retry_budget_refused_total{name="api"} 0', ""])
            self.reply(200, "text/plain; version=0.0.4", text.encode())
        else:
            self.reply(404, "text/plain", b"not found\n")


def stand_in_phase(page, page_bytes, artefacts):
    StandIn.page = page_bytes
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = "http://127.0.0.1:%d" % server.server_address[1]
    try:
        page.call("Page.navigate", url=url + "/")
        page.wait("the token prompt", "document.getElementById('token').classList.contains('on')")
        if page.js("document.querySelectorAll('section.pool').length") or "ingest" in page.js("document.body.innerText"):
            fail("the console shows pool data without the token")
        page.js("document.getElementById('tokenval').focus()")
        page.call("Input.insertText", text=TOKEN)
        page.js("document.getElementById('tokengo').click()")
        page.wait("the ingest card with the token", "!!document.querySelector('section.pool[data-pool=ingest]')")
        if not StandIn.authorized:
            fail("the page never sent the token")
        page.wait("the limits and budgets", "document.querySelectorAll('#sync tr[data-kind]').length >= 4")
        rows = page.js("""Object.fromEntries(Array.from(document.querySelectorAll('#sync tr[data-kind]')).map(r =>
            [r.dataset.kind + '/' + r.dataset.name, [r.className, Array.from(r.cells).map(c => c.textContent)]]))""")
        want = {"semaphore/decode": ("bad", "8 / 8"), "breaker/payments": ("bad", "open"),
                "keyed_limiter/per_tenant": (None, "42 / 1000"), "retry_budget/api": ("", "3.5")}
        for key, (cls, text) in want.items():
            if key not in rows or text not in rows[key][1] or (cls is not None and rows[key][0] != cls):
                fail("limits and budgets: %s should show %r (class %r): %s" % (key, text, cls, rows))
        shot = page.call("Page.captureScreenshot", format="png")
        with open(os.path.join(artefacts, "console-token.png"), "wb") as f:
            f.write(base64.b64decode(shot["data"]))
    finally:
        server.shutdown()
        server.server_close()
    page.wait("the banner once the server is gone",
              "document.getElementById('banner').classList.contains('on') && "
              "document.querySelector('section.pool[data-pool=ingest]').classList.contains('stale')")
    if page.exceptions:
        fail("the page threw: %s" % page.exceptions)


def cards(page):
    return page.js("""Array.from(document.querySelectorAll('section.pool')).map(c => ({
        pool: c.dataset.pool, state: c.dataset.state, running: +c.dataset.running,
        finished: +c.dataset.finished, rate: c.querySelector('td.n').textContent}))""")


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def main():
    if len(sys.argv) != 3:
        print("usage: console_browser.py SLUICE ARTEFACT_DIR", file=sys.stderr)
        return 2
    sluice, artefacts = sys.argv[1], sys.argv[2]
    chromium = find_chromium()
    if not chromium:
        print("SKIP: no chromium on PATH (scripts/install-deps.sh installs Debian's chromium)")
        return SKIP
    os.makedirs(artefacts, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="sluice-console.")
    procs = []
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLUICE_POOL_", "SLUICE_SERVICE_"))}
        demo_err = open(os.path.join(tmp, "demo.err"), "w+")
        demo = subprocess.Popen([sluice, "demo", "--listen", "127.0.0.1:0", "--view", "none", "--rate", "300",
                                 "--stall", "sms@4s", "--duration", "300s"],
                                stdout=subprocess.DEVNULL, stderr=demo_err, env=env)
        procs.append(demo)
        url = None
        deadline = time.monotonic() + SAFETY_S
        while not url and time.monotonic() < deadline:
            demo_err.seek(0)
            m = re.search(r"admin (http://127\.0\.0\.1:\d+)", demo_err.read())
            url = m.group(1) if m else None
            if demo.poll() is not None:
                fail("sluice demo exited %d before serving" % demo.returncode)
            time.sleep(0.05)
        if not url:
            fail("sluice demo did not print its admin URL")
        with urllib.request.urlopen(url + "/", timeout=10) as r:
            if r.status != 200 or b"Sluice console" not in r.read():
                fail("GET / did not serve the console")

        profile = os.path.join(tmp, "profile")
        chrome_log = open(os.path.join(tmp, "chromium.log"), "w+")
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        chrome = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                   "--disable-extensions", "--hide-scrollbars", "--window-size=1400,1000",
                                   "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                                   "--user-data-dir=" + profile, "about:blank"],
                                  stdout=chrome_log, stderr=chrome_log)
        procs.append(chrome)
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + 60
        while not os.path.exists(port_file) or os.path.getsize(port_file) == 0:
            if chrome.poll() is not None or time.monotonic() > deadline:
                chrome_log.seek(0)
                print("SKIP: Chromium cannot run here:\n" + chrome_log.read()[-2000:])
                return SKIP
            time.sleep(0.1)
        time.sleep(0.2)  # the file is written in two lines; let it finish
        devtools_port = int(open(port_file).read().split()[0])
        targets = json.load(urllib.request.urlopen("http://127.0.0.1:%d/json/list" % devtools_port, timeout=10))
        pages = [t for t in targets if t.get("type") == "page"]
        if not pages:
            fail("Chromium has no page target: %s" % targets)
        page = Page(pages[0]["webSocketDebuggerUrl"])
        page.call("Runtime.enable")
        page.call("Log.enable")
        page.call("Page.enable")
        page.call("Page.navigate", url=url + "/")

        # First look: three cards with numbers.
        page.wait("two polls", "+document.body.dataset.polls >= 2")
        first = cards(page)
        names = sorted(c["pool"] for c in first)
        if names != ["email", "push", "sms"]:
            fail("pool cards %s, want email, push, sms" % names)
        # Second look, a few polls later: the push pool has finished more.
        polls = page.js("+document.body.dataset.polls")
        page.wait("three more polls", "+document.body.dataset.polls >= %d" % (polls + 3))
        second = cards(page)
        f1 = {c["pool"]: c["finished"] for c in first}
        f2 = {c["pool"]: c["finished"] for c in second}
        if not f2["push"] > f1["push"]:
            fail("push finished %d then %d: the card did not change" % (f1["push"], f2["push"]))
        rate = next(c["rate"] for c in second if c["pool"] == "push")
        if not re.match(r"^[0-9.]+k?$", rate) or float(rate.rstrip("k")) <= 0:
            fail("push tasks/s shows %r, want a positive number" % rate)

        # The stalled pool turns red; the others stay healthy.
        page.wait("sms to turn stalled",
                  "document.querySelector('section.pool[data-pool=sms]').dataset.state === 'stalled'")
        states = {c["pool"]: c["state"] for c in cards(page)}
        if states["push"] == "stalled" or states["email"] == "stalled":
            fail("only sms is stalled, states %s" % states)
        why = page.js("document.querySelector('section.pool[data-pool=sms] .why').textContent")
        if "none finished" not in why:
            fail("the stalled card says %r" % why)

        # Click the first worker of the stalled pool: its stack (under TSan too:
        # a timed-out capture can no longer leave a late handler reading the next
        # request; src/obs/stacks.c, the claim protocol).
        rect = page.js("""(() => { const r = document.querySelector('section.pool[data-pool=sms] canvas.strip')
                              .getBoundingClientRect(); return [r.left, r.top]; })()""")
        for kind in ("mousePressed", "mouseReleased"):
            page.call("Input.dispatchMouseEvent", type=kind, x=rect[0] + 3, y=rect[1] + 3, button="left",
                      clickCount=1)
        stack = page.wait("the worker's stack",
                          "(t => /^worker \\d+ running/.test(t) && t.includes('#0') && t)"
                          "(document.getElementById('stacktext').textContent)")
        # The stalled worker is seen stuck in the demo's downstream call.
        if "demo_downstream_call" not in stack:
            fail("the stalled worker's stack does not name demo_downstream_call: %r" % stack[:600])
        page.js("document.getElementById('stackclose').click()")

        errors_seen = page.js("+document.body.dataset.errors")
        shot = page.call("Page.captureScreenshot", format="png")
        with open(os.path.join(artefacts, "console.png"), "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        if errors_seen:
            fail("%d polls failed (banner: %s)" % (errors_seen, page.js("document.getElementById('banner').textContent")))
        if page.errors:
            fail("the page logged errors: %s" % page.errors)
        with urllib.request.urlopen(url + "/", timeout=10) as r:
            stand_in_phase(page, r.read(), artefacts)
        print("PASS: console cards %s, push %d -> %d finished, states %s; token, limits and stale checked; "
              "screenshot %s" %
              (names, f1["push"], f2["push"], states, os.path.join(artefacts, "console.png")))
        return 0
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

#!/bin/sh
# `sluice top` against an admin server that requires a bearer token (a
# stand-in on loopback speaking the /debug/pools contract): without the
# token the instance is reported with the 401 and how to pass one; with
# SLUICE_ADMIN_TOKEN or --token-file its pools are shown.
. "$(dirname "$0")/lib.sh"
"$SLUICE" top --help >/dev/null 2>&1 || { echo "skipped: sluice built without ncurses/jansson (no top)"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "skipped: no python3"; exit 77; }
cat >"$TMP/server.py" <<'PY'
import http.server, json, sys
TOKEN = "t0p-secret"
BODY = json.dumps({"ready": True, "pools": [{"name": "ingest", "stats": {
    "running": 3, "capacity": 4, "workers": 4, "idle": 1, "waiting": 0, "queue_depth": 2, "queue_capacity": 8,
    "draining": False, "completed": 10, "failed": 1, "panicked": 0, "rejected": 0, "dropped": 0, "shed": 0},
    "workers": []}]}).encode()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        ok = self.headers.get("Authorization") == "Bearer " + TOKEN
        body = BODY if ok else b"unauthorized\n"
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
python3 "$TMP/server.py" >"$TMP/port" 2>"$TMP/server.err" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$TMP"' EXIT
i=0
while [ ! -s "$TMP/port" ]; do
    i=$((i + 1)); [ $i -lt 200 ] || fail "the stand-in server did not start"; sleep 0.05
done
port=$(cat "$TMP/port")

unset SLUICE_ADMIN_TOKEN
run 1 top --once --interval 100ms ":$port"
contains "$TMP/err" "127.0.0.1:$port: /debug/pools answered 401 (needs a token: --token-file or SLUICE_ADMIN_TOKEN)"
grep -q "^127.0.0.1:$port *- *down" "$TMP/out" || fail "no down row without the token: $(cat "$TMP/out")"
grep -q ingest "$TMP/out" && fail "pools shown without the token"

SLUICE_ADMIN_TOKEN=t0p-secret run 0 top --once --interval 100ms ":$port"
grep -q "^127.0.0.1:$port *ingest *healthy *3/4 *75 *2/8" "$TMP/out" || fail "with SLUICE_ADMIN_TOKEN: $(cat "$TMP/out")"
unset SLUICE_ADMIN_TOKEN

printf 't0p-secret\n' >"$TMP/token"
run 0 top --once --interval 100ms --token-file "$TMP/token" ":$port"
grep -q "^127.0.0.1:$port *ingest" "$TMP/out" || fail "with --token-file: $(cat "$TMP/out")"
printf 'wrong\n' >"$TMP/token"
run 1 top --once --interval 100ms --token-file "$TMP/token" ":$port"
contains "$TMP/err" "answered 401"
: >"$TMP/empty"
run 2 top --once --token-file "$TMP/empty" ":$port"
contains "$TMP/err" "--token-file: cannot read a token"
echo ok

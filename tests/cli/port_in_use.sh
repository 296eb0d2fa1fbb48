#!/bin/sh
# An admin port that is already taken gives a clear error naming the
# address and the flag to change it, and exits 1 before any work starts.
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null 2>&1 || { echo "skipped: no python3"; exit 77; }
python3 - "$TMP/port" <<'PY' &
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1])); __import__("os").rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(30)
PY
holder=$!
trap 'kill $holder 2>/dev/null; rm -rf "$TMP"' EXIT
i=0
while [ ! -s "$TMP/port" ]; do i=$((i + 1)); [ $i -lt 200 ] || fail "no port"; sleep 0.05; done
port=$(cat "$TMP/port")
"$SLUICE" demo --listen "127.0.0.1:$port" --duration 1s --view none >"$TMP/out" 2>"$TMP/err"
rc=$?
if grep -q "admin server not built" "$TMP/err"; then
    echo "skipped: built without src/admin"
    exit 77
fi
[ $rc -eq 1 ] || fail "exit $rc, want 1"
contains "$TMP/err" "cannot serve the admin endpoints on 127.0.0.1:$port"
contains "$TMP/err" "--listen"
echo ok

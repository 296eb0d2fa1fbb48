#!/bin/sh
# On SIGTERM /health/ready turns 503 (the load balancer is told first, and
# the lifecycle logs it before it stops the producers), and the run still
# ends balanced.
#
# The 503 is observable from SIGTERM until the admin server stops after the
# drain: the grace plus the drain, under a second with the built-in 0.5 s
# grace. A curl on a loaded machine took longer than that once, so the
# demo runs with a 10 s grace: the window is then a safety bound, and the
# poll below stops at the first 503 (the test waits out the rest of the
# grace, as a load balancer would).
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null 2>&1 || { echo "skipped: no curl"; exit 77; }
SLUICE_SERVICE_SHUTDOWN_GRACE=10s "$SLUICE" demo --listen 127.0.0.1:0 --view plain >"$TMP/out" 2>"$TMP/err" &
pid=$!
wait_for "$TMP/err" "Ctrl-C drains"
if grep -q "admin off" "$TMP/err"; then
    kill -TERM $pid
    wait $pid
    echo "skipped: built without src/admin"
    exit 77
fi
url=$(sed -n 's/.*admin \(http:[^;]*\);.*/\1/p' "$TMP/err" | head -1)
[ -n "$url" ] || fail "no admin URL on stderr"
code=$(curl -s -o /dev/null -w '%{http_code}' "$url/health/ready")
[ "$code" = 200 ] || fail "/health/ready is $code before SIGTERM, want 200"
curl -s "$url/metrics" >"$TMP/metrics" || fail "no /metrics"
contains "$TMP/metrics" 'pool_capacity{name="sms"} 100'
kill -TERM $pid
# The server stays up through the grace and the drain, so the 503 is
# observable: poll until it comes (a safety bound of 20 s, the grace's
# double), failing at once if the demo is already gone.
start=$(date +%s)
while :; do
    code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$url/health/ready")
    [ "$code" = 503 ] && break
    kill -0 $pid 2>/dev/null || fail "the demo exited before /health/ready answered 503 (last $code)"
    [ $(($(date +%s) - start)) -lt 20 ] || fail "/health/ready never turned 503 after SIGTERM (last $code)"
    sleep 0.02
done
contains "$TMP/err" "waiting 10.000s grace before stopping producers"
wait $pid
rc=$?
[ $rc -eq 0 ] || fail "exit $rc"
nr=$(grep -n "not ready: /health/ready now answers 503" "$TMP/err" | cut -d: -f1)
ps=$(grep -n "producers stopped" "$TMP/err" | cut -d: -f1)
{ [ -n "$nr" ] && [ -n "$ps" ] && [ "$nr" -lt "$ps" ]; } || fail "not-ready was not logged before producers stopped"
contains "$TMP/out" "balanced: every accepted notification is accounted for"
echo ok

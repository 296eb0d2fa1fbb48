#!/bin/sh
# On SIGTERM /health/ready turns 503 (the load balancer is told first, and
# the lifecycle logs it before it stops the producers), and the run still
# ends balanced.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null 2>&1 || { echo "skipped: no curl"; exit 77; }
"$SLUICE" demo --listen 127.0.0.1:0 --view plain >"$TMP/out" 2>"$TMP/err" &
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
# The server stays up through the drain, so the 503 is observable.
i=0
while :; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$url/health/ready")
    [ "$code" = 503 ] && break
    i=$((i + 1))
    [ $i -lt 200 ] || fail "/health/ready never turned 503 after SIGTERM (last $code)"
    sleep 0.02
done
wait $pid
rc=$?
[ $rc -eq 0 ] || fail "exit $rc"
nr=$(grep -n "not ready: /health/ready now answers 503" "$TMP/err" | cut -d: -f1)
ps=$(grep -n "producers stopped" "$TMP/err" | cut -d: -f1)
{ [ -n "$nr" ] && [ -n "$ps" ] && [ "$nr" -lt "$ps" ]; } || fail "not-ready was not logged before producers stopped"
contains "$TMP/out" "balanced: every accepted notification is accounted for"
echo ok

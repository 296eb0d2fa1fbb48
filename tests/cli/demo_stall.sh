#!/bin/sh
# A stalled downstream end to end (issue 15): with sms's downstream stalled,
# every sms worker sits in the downstream call, the scrape shows what
# PoolStalled alerts on (running == K, the oldest task ageing, nothing
# finishing), /health/ready turns 503, and /debug/pools/stacks shows the
# workers inside the downstream call. Then the test ends the stall itself
# (SIGUSR1: the demo's stalls end at once), sms recovers, and the run
# drains balanced. The stall has no end of its own (sms@1s), so a slow,
# loaded machine cannot run out of stall before the checks are done (a
# fixed +12s once left about 5 s of margin); every wait is for an event,
# with a bound that only a broken run reaches; nothing asserts on wall time.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null 2>&1 || { echo "skipped: no curl"; exit 77; }
SLUICE_POOL_SMS_WORKERS=4 SLUICE_POOL_SMS_QUEUE_CAPACITY=20 SLUICE_SERVICE_SATURATION_THRESHOLD=1s \
    "$SLUICE" demo --listen 127.0.0.1:0 --view none --rate 300 --stall sms@1s >"$TMP/out" 2>"$TMP/err" &
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

# metric NAME: the sms sample of NAME in $TMP/m
metric() { sed -n "s/^$1{name=\"sms\"} //p" "$TMP/m" | head -1; }
scrape() { curl -s -m 5 "$url/metrics" >"$TMP/m" || fail "no /metrics"; }

# Wait (bounded) until all 4 sms workers are stuck and the oldest task is
# past 2 s: the test's stand-in for PoolStalled's 30 s threshold.
i=0
while :; do
    scrape
    run=$(metric pool_running)
    old=$(metric pool_oldest_running_seconds)
    [ "$run" = 4 ] && awk -v o="${old:-0}" 'BEGIN { exit !(o > 2) }' && break
    i=$((i + 1))
    [ $i -lt 1200 ] || fail "sms never stalled (running=$run oldest=$old)"
    sleep 0.05
done
[ "$(metric pool_capacity)" = 4 ] || fail "sms capacity is not 4"
done_now() { echo $(($(metric pool_completed_total) + $(metric pool_failed_total) + $(metric pool_panicked_total))); }
# Nothing finishes while it stays stalled, and the oldest task keeps ageing:
# a full second of ageing with no completion. A worker may still finish a
# task it began before the stall (running == 4 counts it too), so a window
# with a completion starts the watch again, three times at most.
tries=0
while :; do
    done1=$(done_now)
    old1=$(metric pool_oldest_running_seconds)
    i=0
    while :; do
        sleep 0.2
        scrape
        awk -v a="$old1" -v b="$(metric pool_oldest_running_seconds)" 'BEGIN { exit !(b >= a + 1) }' && break
        i=$((i + 1))
        [ $i -lt 100 ] || fail "the oldest sms task stopped ageing"
    done
    done2=$(done_now)
    [ "$done1" = "$done2" ] && break
    tries=$((tries + 1))
    [ $tries -lt 3 ] || fail "sms tasks kept finishing during the stall ($done1 -> $done2, $tries windows)"
done
[ "$(metric pool_running)" = 4 ] || fail "sms is no longer saturated"

# Readiness flips (saturation_threshold 1s; the 20-slot queue fills behind
# the stuck workers).
i=0
while :; do
    code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$url/health/ready")
    [ "$code" = 503 ] && break
    i=$((i + 1))
    [ $i -lt 1200 ] || fail "/health/ready never turned 503 during the stall (last $code)"
    sleep 0.05
done
curl -s -m 5 "$url/health/pools" >"$TMP/pools" || fail "no /health/pools"
grep -q "sms" "$TMP/pools" || fail "/health/pools does not name sms"

# The stacks show the sms workers inside the downstream call.
curl -s -m 10 "$url/debug/pools/stacks" >"$TMP/stacks" || fail "no /debug/pools/stacks"
n=$(grep -c "demo_downstream_call" "$TMP/stacks")
[ "$n" -ge 4 ] || { cat "$TMP/stacks" >&2; fail "want the 4 sms workers in demo_downstream_call, saw $n frames"; }

# End the stall; sms finishes tasks again, then the drain balances.
kill -USR1 $pid || fail "could not signal the demo"
i=0
while :; do
    scrape
    done3=$(($(metric pool_completed_total) + $(metric pool_failed_total) + $(metric pool_panicked_total)))
    [ "$done3" -gt "$done2" ] && break
    i=$((i + 1))
    [ $i -lt 1200 ] || fail "sms never recovered after SIGUSR1 ended the stall"
    sleep 0.05
done
kill -TERM $pid
wait $pid
rc=$?
[ $rc -eq 0 ] || fail "exit $rc"
contains "$TMP/out" "balanced: every accepted notification is accounted for"
echo ok

#!/bin/sh
# Crash consistency of the drain (issue 12): kill -9 the demo in the middle
# of its drain, after one pool has handed its queue back; every
# notification it handed back is in the spool, and the next start with the
# same --spool replays exactly those and ends balanced with an empty spool.
. "$(dirname "$0")/lib.sh"
cat >"$TMP/stuck.yaml" <<'YAML'
service:
  name: spooltest
  drain_budget: 120s
pools:
  - name: fast
    workers: 2
    queue_capacity: 40
    drain_timeout: 300ms
  - name: slow
    workers: 1
    queue_capacity: 4
    drain_timeout: 110s
YAML
spool="$TMP/spool"
# Both downstreams stall: "fast" fills its queue and hands it back at its
# 300 ms deadline; "slow" keeps the drain going for 110 s.
"$SLUICE" demo --config "$TMP/stuck.yaml" --listen 127.0.0.1:0 --view plain --rate 400 \
    --stall fast@0s --stall slow@0s --spool "$spool" >"$TMP/out" 2>"$TMP/err" &
pid=$!
# Wait until "fast" has a queue to hand back (at least half full; workers
# may hold a claimed batch, so the depth need not reach 40).
i=0
while :; do
    q=$(sed -n 's/.* fast run=2\/2 q=\([0-9]*\) .*/\1/p' "$TMP/out" | tail -1)
    [ -n "$q" ] && [ "$q" -ge 20 ] && break
    i=$((i + 1))
    [ $i -lt 400 ] || fail "pool fast never queued 20 notifications"
    sleep 0.05
done
kill -TERM $pid
# The drain-finished event of "fast" comes after its hand-back (each
# notification is written to the spool before the handler counts it).
wait_for "$TMP/err" "pool=fast completed="
kill -KILL $pid
wait $pid 2>/dev/null
pid=
handed=$(sed -n 's/.*pool=fast completed=[0-9]* still_running=[0-9]* handed_back=\([0-9]*\).*/\1/p' "$TMP/err" | head -1)
[ -n "$handed" ] || fail "no handed_back count for pool fast in the drain event"
[ "$handed" -gt 0 ] || fail "pool fast handed back nothing; the test needs a full queue"
lines=$(grep -c '^notification fast ' "$spool")
# Tasks a worker had already claimed are handed back by that worker, so
# the spool may hold more than the drain's own count, never fewer.
[ "$lines" -ge "$handed" ] || fail "spool holds $lines notifications of fast, the drain handed back $handed"
total=$(grep -c '^notification ' "$spool")
[ "$total" -eq "$(wc -l <"$spool")" ] || fail "the spool has lines that are not notifications"

# The next start replays exactly what the spool holds, and drains in time.
cat >"$TMP/ok.yaml" <<'YAML'
service:
  name: spooltest
  drain_budget: 20s
pools:
  - name: fast
    workers: 20
    queue_capacity: 400
    demo_latency_p50: 1ms
    demo_latency_p99: 5ms
  - name: slow
    workers: 5
    queue_capacity: 100
    demo_latency_p50: 1ms
    demo_latency_p99: 5ms
YAML
"$SLUICE" demo --config "$TMP/ok.yaml" --listen 127.0.0.1:0 --view none --rate 50 --duration 1s \
    --spool "$spool" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ $rc -eq 0 ] || fail "the replaying run exited $rc"
contains "$TMP/err" "replaying $total notifications"
contains "$TMP/out" "replayed from the spool at start (counted as accepted above): $total"
contains "$TMP/out" "balanced: every accepted notification is accounted for"
[ ! -e "$spool.replaying" ] || fail "$spool.replaying is still there after every replay finished"
[ ! -s "$spool" ] || fail "the spool is not empty after a clean run: $(head -3 "$spool")"
echo ok

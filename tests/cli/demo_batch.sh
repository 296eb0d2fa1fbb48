#!/bin/sh
# The demo's email destination sends in batches (demo_batch: 50 in the
# built-in config): the live view shows its batches per second and mean
# size, /metrics has the batcher's families for name="email", a failed or
# panicked batch hands each of its notifications back to the spool, the
# reconciliation counts email's notifications through the batcher and its
# batch tasks through the pool and balances, and the next start replays
# the spooled notifications through the batcher and balances again.
. "$(dirname "$0")/lib.sh"
run 0 demo --print-config
contains "$TMP/out" "demo_batch: 50"
contains "$TMP/out" "demo_batch_wait: 1s"

spool="$TMP/spool"
"$SLUICE" demo --listen 127.0.0.1:0 --view plain --rate 400 --error-rate 0.2 --panic-rate 0.05 \
    --spool "$spool" >"$TMP/out" 2>"$TMP/err" &
pid=$!
wait_for "$TMP/err" "Ctrl-C drains"
# The plain view: email's batches per second and a mean batch size.
i=0
while ! grep -q ' | email run=.* batches=[0-9.]*/s mean_batch=[0-9]' "$TMP/out"; do
    i=$((i + 1)); [ $i -lt 400 ] || fail "no batch figures for email in the live view"; sleep 0.05
done
sed 's/ | /\n/g' "$TMP/out" | grep -q '^push run=.*batches=' && fail "push is not batched but shows batches"
# A failed batch is handed back whole (the log line says so).
wait_for "$TMP/err" "pool email: a batch of"
contains "$TMP/err" "handed back to the spool"
if command -v curl >/dev/null 2>&1 && ! grep -q "admin off" "$TMP/err"; then
    url=$(sed -n 's/.*admin \(http:[^;]*\);.*/\1/p' "$TMP/err" | head -1)
    [ -n "$url" ] || fail "no admin URL on stderr"
    i=0
    while :; do
        curl -s -m 5 "$url/metrics" >"$TMP/m" || fail "no /metrics"
        n=$(sed -n 's/^sluice_batcher_batches_total{name="email",reason="size"} //p' "$TMP/m")
        [ -n "$n" ] && [ "$n" -gt 0 ] && break
        i=$((i + 1)); [ $i -lt 400 ] || fail "no size-sealed email batches in /metrics"; sleep 0.05
    done
    grep -q '^sluice_batcher_batch_size_bucket{name="email",le="50"} [1-9]' "$TMP/m" ||
        fail "no email batch-size histogram in /metrics"
    grep -q '^sluice_batcher_items_total{name="email",outcome="failed"} ' "$TMP/m" ||
        fail "no failed-items counter for email in /metrics"
    grep -q 'sluice_batcher.*name="push"' "$TMP/m" && fail "push has batcher metrics"
fi
kill -TERM $pid
wait $pid
rc=$?
pid=
[ $rc -eq 0 ] || fail "exit $rc"
contains "$TMP/out" "balanced: every accepted notification is accounted for"
line=$(grep '^email notifications (batched, up to 50 per call): ' "$TMP/out")
[ -n "$line" ] || fail "no notification line for email in the reconciliation"
acc=$(echo "$line" | sed -n 's/.*accepted \([0-9]*\) = added \([0-9]*\) = delivered \([0-9]*\) + handed back \([0-9]*\)$/\1 \2 \3 \4/p')
set -- $acc
[ $# -eq 4 ] || fail "cannot read: $line"
[ "$1" -eq "$2" ] && [ "$2" -eq $(($3 + $4)) ] || fail "email does not add up: $line"
[ "$4" -gt 0 ] || fail "no email notification was handed back (error rate 0.2 per batch)"
grep -q '^email batches (its tasks above): [0-9]* sent (by size [1-9]' "$TMP/out" || fail "no batch line for email"
grep -q '^email .* ok' "$TMP/out" || fail "email's row does not balance"
# Every handed-back email notification is in the spool, once.
lines=$(grep -c '^notification email ' "$spool")
[ "$lines" -eq "$4" ] || fail "spool holds $lines email notifications, the batcher handed back $4"
dups=$(grep '^notification email ' "$spool" | sort | uniq -d | wc -l)
[ "$dups" -eq 0 ] || fail "the spool holds an email notification twice"

# The next start replays them through the batcher, delivers them (no
# faults) and balances with the spool empty.
run 0 demo --listen 127.0.0.1:0 --view none --rate 50 --duration 2s --spool "$spool"
contains "$TMP/out" "balanced: every accepted notification is accounted for"
line=$(grep '^email notifications (batched' "$TMP/out")
acc=$(echo "$line" | sed -n 's/.*accepted \([0-9]*\) = added \([0-9]*\) = delivered \([0-9]*\) + handed back \([0-9]*\)$/\1 \2 \3 \4/p')
set -- $acc
[ $# -eq 4 ] || fail "cannot read: $line"
[ "$1" -ge "$lines" ] || fail "email accepted $1 after a replay of $lines"
[ "$4" -eq 0 ] || fail "email handed back $4 without faults"
[ ! -s "$spool" ] || fail "the spool is not empty after a clean replay"
echo ok

#!/bin/sh
# `sluice top --once` (and top with a pipe for stdout) prints a plain table
# a script can read: a header, one row per pool per instance, the most
# saturated first; an instance that does not answer is a "down" row, named
# on stderr, exit 1; --sort and --filter; bad URLs and flags exit 2.
. "$(dirname "$0")/lib.sh"
"$SLUICE" top --help >"$TMP/help" 2>&1 || { grep -q "unknown command 'top'" "$TMP/help" &&
    { echo "skipped: sluice built without ncurses/jansson (no top)"; exit 77; }; fail "top --help"; }
contains "$TMP/help" "Enter workers"
# sms drains for 1 s, not 8 s: its stall never ends, so the drain at the
# end waits out the whole timeout (the test's run time under load, where a
# slowed ASan run once went past the CTest timeout).
SLUICE_POOL_SMS_DRAIN_TIMEOUT=1s "$SLUICE" demo --listen 127.0.0.1:0 --view none --duration 120s --stall sms@1s \
    >"$TMP/out" 2>"$TMP/err" &
pid=$!
wait_for "$TMP/err" "Ctrl-C drains"
grep -q "admin off" "$TMP/err" && { kill -TERM $pid; wait $pid; echo "skipped: built without src/admin"; exit 77; }
url=$(sed -n 's/.*admin \(http:[^;]*\);.*/\1/p' "$TMP/err" | head -1)
[ -n "$url" ] || fail "no admin URL on stderr"
hostport=${url#http://}

# A port nobody listens on: bind one, note it, close it.
dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# Once sms is stalled (it runs 100/100 and nothing finishes), it is first.
i=0
while :; do
    "$SLUICE" top --once "$url" >"$TMP/top" 2>"$TMP/toperr"
    rc=$?
    [ $rc -eq 0 ] || fail "top --once exited $rc: $(cat "$TMP/toperr")"
    # A worker may still finish a task it began before the stall (99/100
    # for a moment): wait for all 100 stuck, which the endless stall makes
    # permanent.
    awk 'NR == 2 { exit !($2 == "sms" && $3 == "stalled" && $4 == "100/100") }' "$TMP/top" && break
    i=$((i + 1))
    [ $i -lt 60 ] || { cat "$TMP/top" >&2; fail "sms never showed as the first row, stalled at 100/100"; }
done
head -1 "$TMP/top" | grep -q "^INSTANCE *POOL *STATE *RUN/K *SAT%v *QUEUE" || fail "header: $(head -1 "$TMP/top")"
[ "$(wc -l <"$TMP/top")" -eq 4 ] || fail "want a header and 3 rows, got: $(cat "$TMP/top")"
awk -v hp="$hostport" 'NR > 1 && $1 != hp { exit 1 }' "$TMP/top" || fail "INSTANCE is not $hostport"
# sms: 100/100 running, SAT 100; push finished tasks between the two looks.
awk 'NR > 1 && $2 == "sms" { exit !($4 == "100/100" && $5 == 100) }' "$TMP/top" || fail "sms row: $(grep sms "$TMP/top")"
awk 'NR > 1 && $2 == "push" { exit !($8 > 0 && $3 == "healthy") }' "$TMP/top" || fail "push row: $(grep push "$TMP/top")"

# Sorted by pool name; filtered.
"$SLUICE" top --once --sort pool "$url" >"$TMP/top" 2>&1 || fail "--sort pool"
[ "$(awk 'NR > 1 { printf "%s ", $2 }' "$TMP/top")" = "email push sms " ] || fail "--sort pool order: $(cat "$TMP/top")"
"$SLUICE" top --once --filter ema "$url" >"$TMP/top" 2>&1 || fail "--filter"
[ "$(awk 'NR > 1 { printf "%s ", $2 }' "$TMP/top")" = "email " ] || fail "--filter ema: $(cat "$TMP/top")"

# Not a terminal: the same table, without --once.
"$SLUICE" top --interval 200ms "$url" | cat >"$TMP/top" || fail "top into a pipe"
[ "$(wc -l <"$TMP/top")" -eq 4 ] || fail "top into a pipe: $(cat "$TMP/top")"

# A fleet with one instance down: its row says so, stderr names it, exit 1.
"$SLUICE" top --once --interval 100ms "$url" "127.0.0.1:$dead" >"$TMP/top" 2>"$TMP/toperr"
rc=$?
[ $rc -eq 1 ] || fail "an unreachable instance: exit $rc, want 1"
grep -q "^127.0.0.1:$dead *- *down" "$TMP/top" || fail "no down row: $(cat "$TMP/top")"
contains "$TMP/toperr" "127.0.0.1:$dead: connect: Connection refused"
[ "$(grep -c "^$hostport" "$TMP/top")" -eq 3 ] || fail "the live instance's rows are missing"

# Usage errors.
run 2 top --once https://127.0.0.1:9464
contains "$TMP/err" "is not an admin address"
run 2 top --once 127.0.0.1:99999
run 2 top --sort bogus
contains "$TMP/err" "--sort: unknown column \"bogus\""
run 2 top --interval 1ms
run 2 top --token-file "$TMP/nonexistent"

kill -TERM $pid
wait $pid
echo ok

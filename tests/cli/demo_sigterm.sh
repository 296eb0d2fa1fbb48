#!/bin/sh
# SIGTERM drains and reconciles (exit 0); a second SIGTERM during a drain
# that a stalled downstream keeps busy exits at once, non-zero, saying so.
. "$(dirname "$0")/lib.sh"
wait_for() { # FILE TEXT: poll up to 20 s
    i=0
    while ! grep -qF -- "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        [ $i -lt 400 ] || fail "timed out waiting for '$2' in $1"
        sleep 0.05
    done
}
"$SLUICE" demo --listen 127.0.0.1:0 --view plain >"$TMP/out" 2>"$TMP/err" &
pid=$!
wait_for "$TMP/out" "t=1s"
kill -TERM $pid
wait $pid
rc=$?
[ $rc -eq 0 ] || fail "SIGTERM run exited $rc"
contains "$TMP/err" "SIGTERM: shutting down"
contains "$TMP/out" "balanced: every accepted notification is accounted for"

"$SLUICE" demo --listen 127.0.0.1:0 --view plain --stall sms@0s >"$TMP/out" 2>"$TMP/err" &
pid=$!
wait_for "$TMP/out" "t=1s"
kill -TERM $pid
wait_for "$TMP/err" "producers stopped"
kill -TERM $pid
wait $pid
rc=$?
[ $rc -eq 130 ] || fail "second SIGTERM: exit $rc, want 130"
contains "$TMP/err" "second signal (SIGTERM) during shutdown: exiting at once without finishing the drain"
echo ok

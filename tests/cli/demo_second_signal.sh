#!/bin/sh
# A second SIGTERM during a drain that a stalled downstream keeps busy
# exits at once, non-zero (130), and says so.
. "$(dirname "$0")/lib.sh"
"$SLUICE" demo --listen 127.0.0.1:0 --view plain --stall sms@0s >"$TMP/out" 2>"$TMP/err" &
pid=$!
wait_for "$TMP/out" " | push run="
kill -TERM $pid
wait_for "$TMP/err" "producers stopped"
kill -TERM $pid
wait $pid
rc=$?
[ $rc -eq 130 ] || fail "second SIGTERM: exit $rc, want 130"
contains "$TMP/err" "second signal (SIGTERM) during shutdown: exiting at once without finishing the drain"
echo ok

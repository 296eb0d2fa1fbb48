#!/bin/sh
# SIGTERM drains and reconciles: exit 0, balanced.
. "$(dirname "$0")/lib.sh"
"$SLUICE" demo --listen 127.0.0.1:0 --view plain >"$TMP/out" 2>"$TMP/err" &
pid=$!
wait_for "$TMP/out" " | push run="
kill -TERM $pid
wait $pid
rc=$?
[ $rc -eq 0 ] || fail "SIGTERM run exited $rc"
contains "$TMP/err" "SIGTERM: shutting down"
contains "$TMP/out" "balanced: every accepted notification is accounted for"

echo ok

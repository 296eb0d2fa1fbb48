#!/bin/sh
# Issue 12.12: when the demo cannot start its view or producer threads (as
# under RLIMIT_NPROC or a small RLIMIT_AS), it says so, drains what it
# accepted and exits 1 at once, instead of running on and exiting 0.
# SLUICE_DEMO_FAIL_THREADS makes those thread starts fail (root, who runs
# CI, is exempt from RLIMIT_NPROC).
. "$(dirname "$0")/lib.sh"
for what in producer view; do
    SLUICE_DEMO_FAIL_THREADS=$what "$SLUICE" demo --listen 127.0.0.1:0 --view plain --duration 10m \
        >"$TMP/out" 2>"$TMP/err" &
    pid=$!
    wait $pid
    rc=$?
    pid=
    [ $rc -eq 1 ] || fail "$what threads failing: exit $rc, want 1"
    contains "$TMP/err" "cannot start"
    contains "$TMP/err" "could not start its $what thread"
    contains "$TMP/out" "FAILED: the demo could not start the threads it needs"
done
echo ok

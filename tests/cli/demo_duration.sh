#!/bin/sh
# A short demo run with faults injected ends by itself, drains, prints a
# balanced reconciliation and exits 0.
. "$(dirname "$0")/lib.sh"
run 0 demo --duration 2s --rate 200 --listen 127.0.0.1:0 --panic-rate 0.02 --error-rate 0.02 \
    --slowdown email@1sx3 --view plain
contains "$TMP/out" "reconciliation: submitted = completed+failed+panicked+dropped+shed+abandoned"
contains "$TMP/out" "balanced: every accepted notification is accounted for"
grep -q '^total .* ok$' "$TMP/out" || fail "no balanced total line"
grep -q '^t=[0-9]*s | push run=' "$TMP/out" || fail "no per-second line"
contains "$TMP/err" "not ready: /health/ready now answers 503"
contains "$TMP/err" "shutdown complete"
echo ok

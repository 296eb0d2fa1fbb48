#!/bin/sh
# `sluice --help` and `sluice demo --help` exit 0 and document every flag.
. "$(dirname "$0")/lib.sh"
run 0 --help
contains "$TMP/out" "usage: sluice"
contains "$TMP/out" "demo"
run 0 demo --help
for flag in --rate --duration --config --print-config --listen --panic-rate --error-rate \
            --slowdown --stall --seed --view --log-format --help SLUICE_POOL_; do
    contains "$TMP/out" "$flag"
done
run 0 help demo
contains "$TMP/out" "usage: sluice demo"
run 2
echo ok

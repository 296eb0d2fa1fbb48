#!/bin/sh
# scripts/fuzz.sh BUILD_DIR [RUNS] - run every libFuzzer target built in
# BUILD_DIR/fuzz (configured with -DSLUICE_FUZZ=ON; `make fuzz` does both)
# for RUNS inputs (default 10000) on top of its corpus.
#
# The corpus in the repository is only read: new inputs go to a scratch
# copy under BUILD_DIR/fuzz-work/, and a crash, leak, timeout (-timeout=10)
# or violated property leaves its input in BUILD_DIR/fuzz-work/NAME/ and
# fails the run. Keep such an input in fuzz/corpus/NAME/ with the fix.
set -eu
BUILD=${1:?usage: scripts/fuzz.sh BUILD_DIR [RUNS]}
RUNS=${2:-10000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK="$BUILD/fuzz-work"
rm -rf "$WORK"
mkdir -p "$WORK"
status=0
for name in fuzz_config fuzz_config_env fuzz_scalars fuzz_prom_text fuzz_admin_route; do
    bin="$BUILD/fuzz/$name"
    [ -x "$bin" ] || { echo "fuzz: $bin not built; skipped"; continue; }
    case $name in
    fuzz_config) seeds="$ROOT/fuzz/config_corpus" ;;
    *) seeds="$ROOT/fuzz/corpus/${name#fuzz_}" ;;
    esac
    mkdir -p "$WORK/$name/new"
    echo "=== $name: corpus $seeds + $RUNS runs"
    # -max_len: the parsers' inputs are small; longer ones only slow the run.
    if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$bin" -runs="$RUNS" -timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
        -artifact_prefix="$WORK/$name/" "$WORK/$name/new" "$seeds" >"$WORK/$name/log" 2>&1; then
        echo "fuzz: $name FAILED; input and log in $WORK/$name/"
        tail -40 "$WORK/$name/log"
        status=1
    else
        grep -E "^stat::(number_of_executed_units|new_units_added|peak_rss_mb)" "$WORK/$name/log" || true
    fi
done
exit $status

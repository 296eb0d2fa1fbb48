#!/bin/sh
# Every command `sluice --help` lists keeps the house rules of docs/ops.md
# ("Common behaviour"): `CMD --help` prints its usage on stdout and exits 0
# (so does `sluice help CMD`, the same text); an unknown flag, and a flag
# missing its value, is one line on stderr naming the flag, nothing on
# stdout, exit 2. `sluice bench` hands its flags to the benchmark driver
# (bench/) but checks them against the driver's list first
# (bench/bench_flags.h), so it answers the same way, driver built or not.
. "$(dirname "$0")/lib.sh"
one_line() { # TEXT
    [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "stderr is not one line"
    [ -s "$TMP/out" ] && fail "stdout is not empty"
    contains "$TMP/err" "$1"
}
run 0 --help
commands=$(sed -n 's/^  \([a-z][a-z]*\)  .*/\1/p' "$TMP/out")
[ "$(printf '%s\n' "$commands" | wc -l)" -ge 8 ] || fail "sluice --help lists only: $commands"
for c in $commands; do
    run 0 "$c" --help
    [ -s "$TMP/err" ] && [ "$c" != bench ] && fail "sluice $c --help wrote to stderr"
    head -1 "$TMP/out" | grep -q "^usage: sluice $c" || fail "sluice $c --help does not start with its usage"
    cp "$TMP/out" "$TMP/help"
    run 0 help "$c"
    cmp -s "$TMP/out" "$TMP/help" || fail "sluice help $c differs from sluice $c --help"
    case $c in
    budget)
        run 2 budget --bogus
        one_line 'unknown subcommand "--bogus"'
        run 2 budget status --bogus
        ;;
    *) run 2 "$c" --bogus ;;
    esac
    one_line "unknown flag '--bogus'"
done
# A flag that takes a value, given none.
for args in "demo --rate" "top --interval" "plan --rate" "lint --cpus" "rules --output" "dashboard --output" \
    "runbook --output" "inventory --config" "budget status --redis" "bench --baseline" "bench --runs"; do
    # shellcheck disable=SC2086 # the words are the arguments
    run 2 $args
    one_line "${args##* }"
    contains "$TMP/err" "needs a"
done
# The help of a mode flag's command: dashboard's --fleet beside --help
# (it said "unknown flag '--fleet'").
run 0 dashboard --fleet --help
contains "$TMP/out" "usage: sluice dashboard"
echo ok

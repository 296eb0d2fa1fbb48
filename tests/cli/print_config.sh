#!/bin/sh
# --print-config prints YAML that loads back to the same config, with the
# environment overrides applied.
. "$(dirname "$0")/lib.sh"
run 0 demo --print-config
cp "$TMP/out" "$TMP/a.yaml"
contains "$TMP/a.yaml" "name: \"push\""
contains "$TMP/a.yaml" "workers: 1000"
run 0 demo --config "$TMP/a.yaml" --print-config
cmp -s "$TMP/a.yaml" "$TMP/out" || fail "print-config does not round-trip: $(diff "$TMP/a.yaml" "$TMP/out")"
SLUICE_POOL_SMS_WORKERS=20 run 0 demo --print-config
awk '/name: "sms"/{s=1} s&&/workers:/{print; exit}' "$TMP/out" | grep -qx '    workers: 20' ||
    fail "SLUICE_POOL_SMS_WORKERS=20 not applied"
# The reference config follows the team framework (when lint is built).
if "$SLUICE" lint --help >/dev/null 2>&1; then
    "$SLUICE" lint "$TMP/a.yaml" >"$TMP/lint" 2>&1 || fail "the built-in config fails sluice lint: $(cat "$TMP/lint")"
fi
# examples/sluice.yaml is the built-in config with comments.
if [ -n "${2:-}" ]; then
    run 0 demo --config "$2/examples/sluice.yaml" --print-config
    sed 1d "$TMP/out" >"$TMP/ex.yaml"
    sed 1d "$TMP/a.yaml" >"$TMP/builtin.yaml"
    cmp -s "$TMP/ex.yaml" "$TMP/builtin.yaml" ||
        fail "examples/sluice.yaml differs from the built-in config: $(diff "$TMP/builtin.yaml" "$TMP/ex.yaml")"
fi
echo ok

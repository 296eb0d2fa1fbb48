#!/bin/sh
# A bad config exits 2 before anything starts, naming file:line:col, the key
# and the value; so do a missing file and a mistyped environment override.
. "$(dirname "$0")/lib.sh"
cat >"$TMP/bad.yaml" <<'YAML'
pools:
  - name: push
    workers: 0
    queue_capacity: 10
YAML
run 2 demo --config "$TMP/bad.yaml"
contains "$TMP/err" "$TMP/bad.yaml:3:14: pools[0].workers: must be > 0, got 0"
contains "$TMP/err" "nothing started"
[ ! -s "$TMP/out" ] || fail "something was printed on stdout"

cat >"$TMP/typo.yaml" <<'YAML'
pools:
  - name: push
    workers: 4
    queue_capacity: 10
    submit_timout: 1s
YAML
run 2 demo --config "$TMP/typo.yaml"
contains "$TMP/err" "$TMP/typo.yaml:5:5: pools[0].submit_timout: unknown key"

run 2 demo --config "$TMP/missing.yaml"
contains "$TMP/err" "$TMP/missing.yaml: cannot open: No such file or directory"

SLUICE_POOL_PUSH_WORKRES=5 run 2 demo --print-config
contains "$TMP/err" "env SLUICE_POOL_PUSH_WORKRES"
SLUICE_POOL_SMS_WORKERS=0 run 2 demo --print-config
contains "$TMP/err" "env SLUICE_POOL_SMS_WORKERS: pools[1].workers: must be > 0, got 0"
echo ok

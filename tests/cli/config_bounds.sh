#!/bin/sh
# Config input the loader must refuse fast, with a message and exit 2,
# whatever its size or shape (issue 12): an endless stdin, deep nesting,
# a queue bound no pool could allocate, malformed override names.
. "$(dirname "$0")/lib.sh"

# `sluice lint -` reads stdin up to the 1 MiB limit, not to the end.
"$SLUICE" lint - </dev/zero >"$TMP/out" 2>"$TMP/err"
rc=$?
[ $rc -eq 2 ] || fail "lint - < /dev/zero exited $rc, want 2"
contains "$TMP/err" "<stdin>: file too large (more than 1048576 bytes; the limit is 1048576)"

# 200 KB of '[': refused at depth 33, not after libyaml's quadratic walk.
head -c 200000 /dev/zero | tr '\0' '[' >"$TMP/deep.yaml"
run 2 lint "$TMP/deep.yaml"
contains "$TMP/err" "$TMP/deep.yaml:1:33: nested deeper than 32 lists and mappings"

cat >"$TMP/big.yaml" <<'YAML'
pools:
  - name: push
    workers: 4
    queue_capacity: 4294967296
YAML
run 2 lint "$TMP/big.yaml"
contains "$TMP/err" "$TMP/big.yaml:4:21: pools[0].queue_capacity: must be <= 1073741824"

env 'SLUICE_POOL_=1' "$SLUICE" demo --print-config >"$TMP/out" 2>"$TMP/err"
rc=$?
[ $rc -eq 2 ] || fail "SLUICE_POOL_=1: exited $rc, want 2"
contains "$TMP/err" "env SLUICE_POOL_: SLUICE_POOL_: names no pool and key"

long=SLUICE_POOL_PUSH_$(head -c 300 /dev/zero | tr '\0' 'W')
env "$long=1" "$SLUICE" demo --print-config >"$TMP/out" 2>"$TMP/err"
rc=$?
[ $rc -eq 2 ] || fail "a 317-byte override name: exited $rc, want 2"
contains "$TMP/err" "the variable's name is 317 bytes; an override's name is at most 255"
echo ok

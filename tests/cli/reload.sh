#!/bin/sh
# SIGHUP reloads --config FILE: a new K applies live (and shows in the
# view); a bad file is refused with its line and column and the service
# runs on; the run still ends balanced.
. "$(dirname "$0")/lib.sh"
"$SLUICE" demo --print-config >"$TMP/sluice.yaml" || fail "print-config"
"$SLUICE" demo --config "$TMP/sluice.yaml" --listen 127.0.0.1:0 --view plain >"$TMP/out" 2>"$TMP/err" &
pid=$!
wait_for "$TMP/out" " | push run="
# email: workers 200 -> 50
awk '/name: "email"/{e=1} e&&/workers: 200/{sub(/200/,"50"); e=0} {print}' "$TMP/sluice.yaml" >"$TMP/new.yaml"
cp "$TMP/new.yaml" "$TMP/sluice.yaml"
kill -HUP $pid
wait_for "$TMP/err" "pool email: workers 200 -> 50 (applied)"
wait_for "$TMP/err" 'msg="pool resized" pool=email old=200 new=50'
wait_for "$TMP/out" "/50 q="
# A bad file: refused, nothing changes.
sed 's/workers: 50/workers: 0/' "$TMP/new.yaml" >"$TMP/sluice.yaml"
line=$(grep -n "workers: 0" "$TMP/sluice.yaml" | cut -d: -f1)
kill -HUP $pid
wait_for "$TMP/err" "reload refused, running config unchanged: $TMP/sluice.yaml:$line:14: pools[2].workers: must be > 0, got 0"
kill -TERM $pid
wait $pid
rc=$?
[ $rc -eq 0 ] || fail "exit $rc"
contains "$TMP/out" "balanced: every accepted notification is accounted for"
echo ok

#!/bin/sh
# `sluice demo --spike` (issue 14 item 5): a load spike against two pools,
# sms with overload: codel+lifo and email with overload off (FIFO). Each
# pool logs the spike's start (with its mode) and, when it ends, its wait
# p99, what it served and what it shed. CoDel sheds during the spike; the
# FIFO pool sheds nothing (no deadlines here); the drain balances. The
# waits themselves are printed, not asserted (no test asserts on time).
. "$(dirname "$0")/lib.sh"
SLUICE_POOL_SMS_WORKERS=8 SLUICE_POOL_SMS_OVERLOAD=codel+lifo SLUICE_POOL_EMAIL_WORKERS=16 \
    "$SLUICE" demo --listen 127.0.0.1:0 --view none --rate 200 --spike 5x@1s+3s --duration 6s \
    >"$TMP/out" 2>"$TMP/err"
rc=$?
[ $rc -eq 0 ] || fail "exit $rc"
contains "$TMP/err" "pool sms: spike: 5x its rate (overload: codel+lifo)"
contains "$TMP/err" "pool email: spike: 5x its rate (overload: off)"
sms=$(grep -F "pool sms: spike over:" "$TMP/err" | head -1)
email=$(grep -F "pool email: spike over:" "$TMP/err" | head -1)
[ -n "$sms" ] || fail "no spike summary for sms"
[ -n "$email" ] || fail "no spike summary for email"
echo "$sms"
echo "$email"
case $sms in *"(overload: codel+lifo)"*) ;; *) fail "sms summary does not name its mode: $sms" ;; esac
sms_shed=$(echo "$sms" | sed -n 's/.* \([0-9][0-9]*\) shed .*/\1/p')
email_shed=$(echo "$email" | sed -n 's/.* \([0-9][0-9]*\) shed .*/\1/p')
[ -n "$sms_shed" ] && [ "$sms_shed" -gt 0 ] || fail "CoDel shed nothing from sms during a 5x spike: $sms"
[ "$email_shed" = 0 ] || fail "the FIFO pool shed tasks without deadlines: $email"
contains "$TMP/out" "balanced: every accepted notification is accounted for"

# A malformed spike is a usage error naming the flag.
run 2 demo --spike 5@1s
contains "$TMP/err" "--spike: must be Fx@T[+D]"
run 2 demo --spike 0.5x@1s
contains "$TMP/err" "--spike: must be Fx@T[+D]"
echo ok

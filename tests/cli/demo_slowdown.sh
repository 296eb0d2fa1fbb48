#!/bin/sh
# --slowdown shows the control loop (issue 14 item 5): the slowed pool gets
# auto-tune, its K first falls to what its traffic needs, climbs while the
# downstream is 5x slower, and falls again after; each change is an
# "autotune" log line with its reason and inputs, and the run drains
# balanced. Bounded polls only; nothing asserts on wall time.
. "$(dirname "$0")/lib.sh"
"$SLUICE" demo --listen 127.0.0.1:0 --view none --rate 300 --slowdown email@6s+8sx5 --duration 24s \
    >"$TMP/out" 2>"$TMP/err" &
pid=$!
wait_for "$TMP/err" "auto-tune on for pool email"
wait_for "$TMP/err" "pool=email autotune down"
# After the slowdown begins: growth, with Little's law in the line.
i=0
while ! grep -q "pool=email autotune up .*reason=\(utilisation\|drops\).*little_k=" "$TMP/err"; do
    i=$((i + 1))
    [ $i -lt 600 ] || fail "email's K never grew during the slowdown"
    sleep 0.05
done
wait $pid
rc=$?
pid=
[ "$rc" -eq 0 ] || fail "demo exited $rc"
# The order: down (to the traffic), up (the slowdown), down (recovered).
awk '/pool=email autotune down/ { if (up) { ok = 1 } else { down = 1 } }
     /pool=email autotune up/ { if (down) up = 1 }
     END { exit !ok }' "$TMP/err" || fail "no down, up, down sequence of email's K"
contains "$TMP/out" "balanced"
echo ok

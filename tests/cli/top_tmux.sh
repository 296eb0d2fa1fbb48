#!/bin/sh
# `sluice top` as a person uses it, in a real terminal (tmux): keys sort,
# filter and drill into a pool's workers, and an instance that goes away
# is marked stale and picked up again when it comes back. Each step sends
# keys and waits (bounded) for capture-pane to show the expected screen.
. "$(dirname "$0")/lib.sh"
command -v tmux >/dev/null 2>&1 || { echo "skipped: no tmux (scripts/install-deps.sh installs it)"; exit 77; }
"$SLUICE" top --help >/dev/null 2>&1 || { echo "skipped: sluice built without ncurses/jansson (no top)"; exit 77; }
SOCK="$TMP/tmux.sock"
pid=""
pid2=""
cleanup() {
    tmux -S "$SOCK" kill-server 2>/dev/null
    for p in $pid $pid2; do kill -TERM "$p" 2>/dev/null; done
    for p in $pid $pid2; do wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT

start_demo() { # LISTEN LOG [flags]: starts a demo, sets $started
    listen=$1 log=$2
    shift 2
    # sms drains for 1 s, not 8 s: with an endless stall the cleanup's drain
    # waits out the whole timeout (the run time under load, where a slowed
    # ASan run once went past the CTest timeout).
    SLUICE_POOL_SMS_DRAIN_TIMEOUT=1s "$SLUICE" demo --listen "$listen" --view none --duration 300s "$@" \
        >/dev/null 2>"$log" &
    started=$!
    wait_for "$log" "Ctrl-C drains"
    grep -q "admin off" "$log" && { echo "skipped: built without src/admin"; exit 77; }
}
start_demo 127.0.0.1:0 "$TMP/err" --stall sms@1s
pid=$started
url=$(sed -n 's/.*admin \(http:[^;]*\);.*/\1/p' "$TMP/err" | head -1)
hp=${url#http://}
# The second instance on a port we pick, so it can come back on the same one.
port2=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_demo "127.0.0.1:$port2" "$TMP/err2" --rate 50
pid2=$started

tmux -S "$SOCK" new-session -d -x 170 -y 30 "TERM=xterm-256color $SLUICE top $url 127.0.0.1:$port2; sleep 60" ||
    fail "tmux cannot start a session"
screen() { tmux -S "$SOCK" capture-pane -p -t 0 >"$TMP/screen" 2>/dev/null; }
keys() { tmux -S "$SOCK" send-keys -t 0 "$@"; }
# see DESCRIPTION AWK-CONDITION: wait until the screen satisfies the condition.
see() {
    i=0
    while :; do
        screen
        awk "$2" "$TMP/screen" && return 0
        i=$((i + 1))
        [ $i -lt 300 ] || { cat "$TMP/screen" >&2; fail "the screen never showed: $1"; }
        sleep 0.1
    done
}
# Rows are lines 3.. (line 1 title, line 2 header).
see "6 rows, sms of the first instance first and stalled" \
    "NR == 3 && \$1 == \"$hp\" && \$2 == \"sms\" && \$3 == \"stalled\" { ok = 1 } END { exit !ok }"
see "the keys on the last line" '/q quit  Up\/Down select  Enter workers  < > sort column/ { ok = 1 } END { exit !ok }'
[ "$(awk 'NR > 2 && ($1 ~ /^127\.0\.0\.1:/) { n++ } END { print n }' "$TMP/screen")" -eq 6 ] ||
    fail "want 6 rows (3 pools x 2 instances): $(cat "$TMP/screen")"

# Sort by POOL (three columns left of SAT%), ascending; r reverses.
keys '<' '<' '<'
see "sorted by pool" '/sort: POOL ascending/ { t = 1 } NR == 3 && $2 == "email" && NR == 3 { a = 1 } END { exit !(t && a) }'
awk 'NR > 2 && $1 ~ /^127/ { printf "%s ", $2 }' "$TMP/screen" | grep -q "^email email push push sms sms $" ||
    fail "not in pool order: $(cat "$TMP/screen")"
keys r
see "sorted by pool, descending" '/sort: POOL descending/ { t = 1 } NR == 3 && $2 == "sms" { a = 1 } END { exit !(t && a) }'

# Filter, then drill into the stalled pool's workers.
keys / s m s Enter
see "filter sms" '/filter: sms/ { t = 1 } NR > 2 && $1 ~ /^127/ { n++; if ($2 != "sms") bad = 1 } END { exit !(t && n == 2 && !bad) }'
# Select the first instance's row (the selection follows the row, not the line).
keys Down Up
i=0
while screen; ! awk "NR > 2 && \$1 == \"$hp\" && /sms/ && /stalled/ { ok = 1 } END { exit !ok }" "$TMP/screen"; do
    i=$((i + 1)); [ $i -lt 300 ] || fail "no stalled sms row"; sleep 0.1
done
# Move the selection to the stalled row: it is first or second in the list.
first=$(awk 'NR == 3 { print $1 }' "$TMP/screen")
[ "$first" = "$hp" ] || keys Down
keys Enter
see "the workers of sms" "/workers of sms at $hp: 100 running \\/ K 100/ { t = 1 } /^[0-9]+ +running +[0-9.]+ +[0-9]+  sms\$/ { n++ } END { exit !(t && n >= 10) }"
see "the drill-down keys" '/Esc\/Left back/ { ok = 1 } END { exit !ok }'
keys Escape
see "back to the list" '/sort: POOL descending - filter: sms/ { ok = 1 } END { exit !ok }'
keys / BSpace BSpace BSpace Enter
see "no filter" '/filter: none/ { ok = 1 } END { exit !ok }'

# The second instance goes away: its rows stay, marked stale, and the
# status line says why. It comes back on the same port: fresh rows again.
kill -KILL "$pid2"
wait "$pid2" 2>/dev/null
pid2=""
see "the second instance stale" "/127\\.0\\.0\\.1:$port2 stale for [0-9]+s: connect: Connection refused/ { s = 1 } \$1 == \"127.0.0.1:$port2\" && \$3 == \"stale\" { n++ } END { exit !(s && n == 3) }"
start_demo "127.0.0.1:$port2" "$TMP/err3" --rate 50
pid2=$started
see "the second instance back" "\$1 == \"127.0.0.1:$port2\" && \$3 == \"healthy\" { n++ } /stale/ { s = 1 } END { exit !(n == 3 && !s) }"

keys q
i=0
while tmux -S "$SOCK" capture-pane -p -t 0 2>/dev/null | grep -q "sluice top"; do
    i=$((i + 1)); [ $i -lt 300 ] || fail "q did not quit"; sleep 0.1
done
echo ok

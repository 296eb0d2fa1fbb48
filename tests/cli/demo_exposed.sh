#!/bin/sh
# An admin address beyond loopback: the start line names the address as
# bound (not 127.0.0.1), a warning says what is exposed, and with a token
# /debug/* answers 401 without it. Loopback: no warning.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null 2>&1 || { echo "skip: no curl"; exit 77; }
run 0 demo --duration 1s --rate 50 --listen 127.0.0.1:0 --view none
grep -q "warning: the admin server listens" "$TMP/err" && fail "warned about a loopback address"
contains "$TMP/err" "admin http://127.0.0.1:"

printf 'Tok-3n_x\n' >"$TMP/tok"
# Emptied here, not only by the background job's redirection: wait_for
# could otherwise find the first run's "Ctrl-C drains" in the old file
# before the job opens it (seen under load: then err read empty).
: >"$TMP/err"
"$SLUICE" demo --duration 20s --rate 50 --listen 0.0.0.0:0 --view none --admin-token-file "$TMP/tok" \
    >"$TMP/out" 2>"$TMP/err" &
pid=$!
wait_for "$TMP/err" "Ctrl-C drains"
contains "$TMP/err" "warning: the admin server listens on 0.0.0.0:"
contains "$TMP/err" "/debug/* and the console's data need the token"
port=$(sed -n 's/.*admin http:\/\/0\.0\.0\.0:\([0-9]*\).*/\1/p' "$TMP/err" | head -1)
[ -n "$port" ] || fail "no bound address in the start line"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/debug/pools")
[ "$code" = 401 ] || fail "/debug/pools without the token: $code, want 401"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer Tok-3n_x' "http://127.0.0.1:$port/debug/pools")
[ "$code" = 200 ] || fail "/debug/pools with the token: $code, want 200"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health/live")
[ "$code" = 200 ] || fail "/health/live: $code, want 200"
kill -TERM "$pid"
wait "$pid" || fail "demo exited $?"
pid=
echo ok

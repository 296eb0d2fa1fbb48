#!/bin/sh
# The admin token from sluice.yaml (service.admin_token_file): the config
# and --print-config hold the path, never the token; the demo reads the
# file at start and /debug/pools then answers 401 without the token and
# 200 with it; --admin-token-file wins over the key; a missing, oversized
# or empty file stops the start with a message naming the key and the file.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null 2>&1 || { echo "skipped: no curl"; exit 77; }
printf 'From-Yaml_1\n' >"$TMP/tok"
run 0 demo --print-config
sed "s|^service:|service:\n  admin_token_file: \"$TMP/tok\"|" "$TMP/out" >"$TMP/cfg.yaml"
grep -q "admin_token_file" "$TMP/cfg.yaml" || fail "could not add the key"

# --print-config: the path, not the token.
run 0 demo --config "$TMP/cfg.yaml" --print-config
contains "$TMP/out" "admin_token_file: \"$TMP/tok\""
grep -q "From-Yaml_1" "$TMP/out" && fail "--print-config printed the token"

# Refused at start, naming the key and the file, nothing started.
rm -f "$TMP/tok"
run 2 demo --config "$TMP/cfg.yaml" --duration 1s --listen 127.0.0.1:0 --view none
contains "$TMP/err" "service.admin_token_file: $TMP/tok: No such file or directory"
contains "$TMP/err" "nothing started"
head -c 4096 /dev/zero | tr '\0' 'x' >"$TMP/tok"
run 2 demo --config "$TMP/cfg.yaml" --duration 1s --listen 127.0.0.1:0 --view none
contains "$TMP/err" "service.admin_token_file: $TMP/tok: more than 320 bytes"
: >"$TMP/tok"
run 2 demo --config "$TMP/cfg.yaml" --duration 1s --listen 127.0.0.1:0 --view none
contains "$TMP/err" "service.admin_token_file: $TMP/tok: empty"
# The flag's own file gets the same checks, named by the flag.
run 2 demo --admin-token-file "$TMP/none" --duration 1s --view none
contains "$TMP/err" "--admin-token-file: $TMP/none: No such file or directory"

# code URL [TOKEN]: the HTTP status of /debug/pools
code() {
    if [ -n "${2:-}" ]; then
        curl -s -m 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $2" "$1/debug/pools"
    else
        curl -s -m 5 -o /dev/null -w '%{http_code}' "$1/debug/pools"
    fi
}
# start ARGS...: a demo in the background; sets pid and url.
start() {
    # A fresh file: the previous run's err already says "Ctrl-C drains".
    rm -f "$TMP/out" "$TMP/err"
    "$SLUICE" demo --rate 50 --listen 127.0.0.1:0 --view none "$@" >"$TMP/out" 2>"$TMP/err" &
    pid=$!
    wait_for "$TMP/err" "Ctrl-C drains"
    if grep -q "admin off" "$TMP/err"; then
        kill -TERM $pid; wait $pid
        echo "skipped: built without src/admin"
        exit 77
    fi
    url=$(sed -n 's/.*admin \(http:[^;]*\);.*/\1/p' "$TMP/err" | head -1)
    [ -n "$url" ] || fail "no admin URL on stderr"
}
stop() {
    kill -TERM "$pid"
    wait "$pid" || fail "demo exited $?"
    pid=
}

printf 'From-Yaml_1\n' >"$TMP/tok"
start --config "$TMP/cfg.yaml"
[ "$(code "$url")" = 401 ] || fail "/debug/pools without the token: want 401"
[ "$(code "$url" From-Yaml_1)" = 200 ] || fail "/debug/pools with the config's token: want 200"
[ "$(code "$url" wrong)" = 401 ] || fail "/debug/pools with a wrong token: want 401"
stop
grep -q "From-Yaml_1" "$TMP/out" "$TMP/err" && fail "the token was printed"

# The flag wins over the key.
printf 'From-Flag_2\n' >"$TMP/flagtok"
start --config "$TMP/cfg.yaml" --admin-token-file "$TMP/flagtok"
[ "$(code "$url" From-Flag_2)" = 200 ] || fail "with the flag's token: want 200"
[ "$(code "$url" From-Yaml_1)" = 401 ] || fail "the config's token still works: the flag must win"
stop
echo ok

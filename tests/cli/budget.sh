#!/bin/sh
# `sluice budget`: check prints the shares of a good downstream-budget.yaml
# and exits 2 naming file:line:col for a bad one; status exits 1 when Redis
# is unreachable and prints the (empty) allocation of a live redis-server
# that this test starts on a free loopback port (skipped, exit 77, without
# redis-server).
. "$(dirname "$0")/lib.sh"
cat >"$TMP/budget.yaml" <<'YAML'
# downstream-budget.yaml
downstream: payments-api
total_limit: 200
shares:
  orders-service: 80 # 40% of budget
  refunds-service: 60 # 30%
  reports-service: 40 # 20%
free_pool: 20 # 10% (for new services)
YAML
run 0 budget check "$TMP/budget.yaml"
contains "$TMP/out" "downstream payments-api: total_limit 200"
contains "$TMP/out" "refunds-service"
contains "$TMP/out" "free_pool"

cat >"$TMP/bad.yaml" <<'YAML'
downstream: payments-api
total_limit: 200
shares:
  orders-service: eighty
YAML
run 2 budget check "$TMP/bad.yaml"
contains "$TMP/err" "$TMP/bad.yaml:4:19: shares.orders-service: must be an integer >= 1, got \"eighty\""
run 2 budget check "$TMP/missing.yaml"
contains "$TMP/err" "$TMP/missing.yaml: No such file or directory"
run 2 budget frobnicate
contains "$TMP/err" "unknown subcommand"
run 2 budget status --redis nocolon
contains "$TMP/err" "--redis: want HOST:PORT"

command -v redis-server >/dev/null 2>&1 || { echo "SKIP: redis-server is not installed"; exit 77; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
run 1 budget status --redis "127.0.0.1:$port"
contains "$TMP/err" "redis 127.0.0.1:$port:"
mkdir "$TMP/redis"
redis-server --port "$port" --bind 127.0.0.1 --dir "$TMP/redis" --save "" --appendonly no \
    --logfile "" >/dev/null 2>&1 &
pid=$!
i=0
until redis-cli -p "$port" ping >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 400 ] || fail "redis-server did not start"
    sleep 0.05
done
run 0 budget status --redis "127.0.0.1:$port" --prefix cli
contains "$TMP/out" "key prefix \"cli\""
contains "$TMP/out" "no services registered"
kill "$pid"
wait "$pid" 2>/dev/null
pid=
exit 0

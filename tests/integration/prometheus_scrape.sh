#!/bin/sh
# tests/integration/prometheus_scrape.sh TARGET_PROGRAM
#
# Starts the scrape target (prom_target: a pool "itest" with 37 tasks
# completed and 2 held running, behind the admin server on a free port),
# starts a real Prometheus on loopback scraping it every second (temp
# config and storage, a free port), then asks Prometheus's HTTP API for
# pool_completed_total and pool_running of the test pool and checks them.
# Both processes are started and stopped here; every wait is bounded.
# Exit 77 (skipped) when prometheus, curl or jq is not installed.
set -u
target=$1
for tool in prometheus curl jq; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: $tool not installed"
        exit 77
    fi
done

tmp=$(mktemp -d /tmp/sluice-prom-XXXXXX)
target_pid=""
prom_pid=""
cleanup() {
    [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null
    exec 3>&- # closing the target's stdin ends it
    if [ -n "$target_pid" ]; then
        i=0
        while kill -0 "$target_pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        kill "$target_pid" 2>/dev/null
        wait "$target_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    [ -f "$tmp/prom.log" ] && { echo "--- prometheus log (tail) ---"; tail -n 20 "$tmp/prom.log"; }
    exit 1
}

mkfifo "$tmp/in"
"$target" <"$tmp/in" >"$tmp/out" 2>"$tmp/err" &
target_pid=$!
exec 3>"$tmp/in"

i=0
while ! grep -q '^READY' "$tmp/out" 2>/dev/null; do
    i=$((i + 1))
    [ $i -gt 100 ] && fail "target did not start: $(cat "$tmp/err")"
    kill -0 "$target_pid" 2>/dev/null || fail "target exited: $(cat "$tmp/err")"
    sleep 0.1
done
set -- $(grep '^READY' "$tmp/out")
admin_port=$2
prom_port=$3
echo "target admin on 127.0.0.1:$admin_port, prometheus on 127.0.0.1:$prom_port"

cat >"$tmp/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: sluice_itest
    static_configs:
      - targets: ['127.0.0.1:$admin_port']
YAML

prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
    --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$tmp/prom.log" 2>&1 &
prom_pid=$!

# query EXPR -> prints the first result's value, or nothing.
query() {
    curl -s -m 2 -G "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1" |
        jq -r '.data.result[0].value[1] // empty' 2>/dev/null
}

# Wait (at most 40 s) until both series have been scraped.
i=0
completed=""
running=""
while [ $i -lt 200 ]; do
    kill -0 "$prom_pid" 2>/dev/null || fail "prometheus exited"
    completed=$(query 'pool_completed_total{name="itest"}')
    running=$(query 'pool_running{name="itest"}')
    [ -n "$completed" ] && [ -n "$running" ] && break
    sleep 0.2
    i=$((i + 1))
done
[ -n "$completed" ] || fail "pool_completed_total{name=\"itest\"} never appeared in Prometheus"
up=$(query 'up{job="sluice_itest"}')
echo "prometheus sees: up=$up pool_completed_total=$completed pool_running=$running"
[ "$up" = "1" ] || fail "up is '$up', want 1"
[ "$completed" = "37" ] || fail "pool_completed_total is '$completed', want 37"
[ "$running" = "2" ] || fail "pool_running is '$running', want 2"
capacity=$(query 'pool_capacity{name="itest"}')
[ "$capacity" = "2" ] || fail "pool_capacity is '$capacity', want 2"
# A histogram came through too (OpenMetrics or text, whichever was negotiated).
hist=$(query 'pool_task_duration_seconds_count{name="itest"}')
[ "$hist" = "37" ] || fail "pool_task_duration_seconds_count is '$hist', want 37"
every=$(query 'pool_timing_sample_every{name="itest"}')
[ "$every" = "1" ] || fail "pool_timing_sample_every is '$every', want 1"
echo "PASS"
exit 0

#!/bin/sh
# tests/tools/cli_ops.sh CASE SLUICE SRCDIR - one CLI behaviour of the
# operations subcommands per CASE (registered one CTest test per case in
# tests/tools/CMakeLists.txt). Exit 0 pass, 1 fail, 77 skipped (a tool the
# case needs, such as promtool, is not installed).
set -u
CASE=$1
S=$2
SRC=$3
FIX=$SRC/tests/tools/fixtures
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
OPS_CMDS="plan lint rules dashboard runbook inventory"

fail() { echo "FAIL [$CASE]: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "SKIP [$CASE]: $1 not installed" >&2; exit 77; }; }
# run CMD...: stdout in $TMP/out, stderr in $TMP/err, status in $rc
run() { "$@" >"$TMP/out" 2>"$TMP/err"; rc=$?; }
expect_rc() { [ "$rc" -eq "$1" ] || { cat "$TMP/out" "$TMP/err" >&2; fail "expected exit $1, got $rc: $2"; }; }
has() { grep -q -- "$2" "$1" || { cat "$1" >&2; fail "$1 lacks '$2'"; }; }

case $CASE in
help)
    for c in $OPS_CMDS; do
        run "$S" "$c" --help
        expect_rc 0 "$c --help"
        has "$TMP/out" "usage: sluice $c"
        has "$TMP/out" "Exit status"
        [ -s "$TMP/err" ] && fail "$c --help wrote to stderr"
        run "$S" help "$c"
        expect_rc 0 "sluice help $c"
    done
    run "$S" --help
    for c in $OPS_CMDS; do has "$TMP/out" "  $c "; done
    ;;
bad_flag)
    for c in $OPS_CMDS; do
        run "$S" "$c" --no-such-flag "$FIX/ops.yaml"
        expect_rc 2 "$c with an unknown flag"
        has "$TMP/err" "unknown flag '--no-such-flag'"
        [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "$c: want one line on stderr"
        [ -s "$TMP/out" ] && fail "$c: wrote to stdout on a usage error"
    done
    run "$S" lint --cpus
    expect_rc 2 "lint --cpus without a value"
    has "$TMP/err" "needs a value"
    run "$S" lint --cpus zero "$FIX/ops.yaml"
    expect_rc 2 "lint --cpus zero"
    has "$TMP/err" '\-\-cpus must be a whole number'
    ;;
bad_config)
    for c in lint rules dashboard runbook; do
        run "$S" "$c" "$FIX/broken.yaml"
        expect_rc 2 "$c on an invalid config"
        has "$TMP/err" "broken.yaml:5:"
        has "$TMP/err" "workers"
        [ -s "$TMP/out" ] && fail "$c printed output for an invalid config"
        run "$S" "$c" "$TMP/missing.yaml"
        expect_rc 2 "$c on a missing file"
        has "$TMP/err" "missing.yaml"
        run "$S" "$c"
        expect_rc 2 "$c without a file"
    done
    # -o leaves no file behind when the config is bad, and no .tmp ever.
    run "$S" rules -o "$TMP/r.yml" "$FIX/broken.yaml"
    [ -e "$TMP/r.yml" ] && fail "rules -o wrote a file for a bad config"
    run "$S" rules -o "$TMP/r.yml" "$FIX/ops.yaml"
    expect_rc 0 "rules -o"
    [ -s "$TMP/r.yml" ] && [ ! -e "$TMP/r.yml.tmp" ] || fail "rules -o: file missing or .tmp left"
    ;;
lint_exit_codes)
    run "$S" lint --cpus 8 "$FIX/ops.yaml"
    expect_rc 0 "lint on a clean config"
    has "$TMP/out" "clean: 2 pools pass every rule"
    run "$S" lint --cpus 8 "$FIX/lint_findings.yaml"
    expect_rc 1 "lint with findings"
    # Exactly these findings, in this order (service first, then pools by name).
    grep -o '^[^ ]*: [a-z-]*: \(service\|pool [a-z]*\|downstream [a-z-]*\)' "$TMP/out" | sed 's/^[^:]*:[0-9]*:[0-9]*: //' >"$TMP/got"
    cat >"$TMP/want" <<'EOF'
drain-vs-grace: service
downstream-total: downstream payments-api
k-rationale: pool bare
kind-declared: pool bare
panic-handling: pool bare
block-bounded: pool bare
cpu-bound-k: pool crunch
submit-timeout-vs-deadline: pool payments
downstream-share: pool payments
EOF
    diff "$TMP/want" "$TMP/got" >&2 || fail "lint findings differ"
    [ "$(grep -c '^    fix: ' "$TMP/out")" -eq 9 ] || fail "every finding needs a fix line"
    has "$TMP/out" "lint_findings.yaml:33:21: submit-timeout-vs-deadline"
    # Every finding has a file:line:col, service-level ones included.
    [ "$(grep -c '^[^ ]*lint_findings.yaml:[0-9]*:[0-9]*: ' "$TMP/out")" -eq 9 ] || fail "a finding has no line:col"
    # pool good has none; more CPUs clears crunch; replicas make payments worse.
    grep -q "pool good" "$TMP/out" && fail "pool good reported"
    run "$S" lint --cpus 64 "$FIX/lint_findings.yaml"
    grep -q "cpu-bound-k" "$TMP/out" && fail "cpu-bound-k with 64 CPUs"
    run "$S" lint --cpus 8 --replicas 4 "$FIX/ops.yaml"
    expect_rc 0 "ops.yaml: 10 x 4 replicas fits the share of 40"
    run "$S" lint --cpus 8 --replicas 5 "$FIX/ops.yaml"
    expect_rc 1 "ops.yaml: 10 x 5 replicas exceeds the share of 40"
    has "$TMP/out" "downstream-share: pool payments"
    # --grace overrides the config's orchestrator_grace (30s; drain_budget 20s).
    run "$S" lint --cpus 8 --grace 20s "$FIX/ops.yaml"
    expect_rc 1 "lint --grace 20s"
    has "$TMP/out" "drain_budget 20s is not below the orchestrator's grace period 20s"
    run "$S" lint --cpus 8 --grace soon "$FIX/ops.yaml"
    expect_rc 2 "lint --grace soon"
    # stdin
    run sh -c "\"$S\" lint --cpus 8 - <\"$FIX/ops.yaml\""
    expect_rc 0 "lint from stdin"
    ;;
lint_json)
    need python3
    run "$S" lint --json --cpus 8 "$FIX/lint_findings.yaml"
    expect_rc 1 "lint --json with findings"
    python3 - "$TMP/out" <<'EOF' || fail "lint --json content"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["clean"] is False and r["pools"] == 4 and r["cpus"] == 8, r
f = r["findings"]
assert len(f) == 9, len(f)
assert f[0]["pool"] is None and f[0]["rule"] == "drain-vs-grace", f[0]
for x in f:
    assert set(x) == {"pool", "rule", "message", "fix", "line", "column"}, x
    assert x["line"] > 0 and x["fix"], x
keys = [(x["pool"] or "", x["rule"]) for x in f]
assert [k[0] for k in keys] == sorted(k[0] for k in keys), keys
EOF
    run "$S" lint --json --cpus 8 "$FIX/ops.yaml"
    expect_rc 0 "lint --json clean"
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["clean"] and r["findings"]==[]' "$TMP/out" ||
        fail "clean JSON report"
    run "$S" lint --list-rules
    expect_rc 0 "--list-rules"
    [ "$(wc -l <"$TMP/out")" -eq 16 ] || fail "--list-rules: want 16 rules"
    ;;
rules_promtool)
    need promtool
    "$S" rules -o "$TMP/rules.yml" "$FIX/ops.yaml" || fail "rules"
    promtool check rules "$TMP/rules.yml" >"$TMP/check" 2>&1 || { cat "$TMP/check" >&2; fail "promtool check rules"; }
    has "$TMP/check" "SUCCESS: 45 rules found" # and thumbnails (fair) TenantStarved, payments PoolProbeFailing, the 4 of the cluster budget
    cp "$SRC/tests/tools/rules_test.yml" "$TMP/rules_test.yml"
    promtool test rules "$TMP/rules_test.yml" >"$TMP/test" 2>&1 || { cat "$TMP/test" >&2; fail "promtool test rules"; }
    # The demo's rules (ops/) pass the checker too.
    "$S" demo --print-config >"$TMP/demo.yaml" && "$S" rules "$TMP/demo.yaml" >"$TMP/demo_rules.yml" ||
        fail "demo rules"
    promtool check rules "$TMP/demo_rules.yml" >"$TMP/check" 2>&1 || { cat "$TMP/check" >&2; fail "demo rules check"; }
    ;;
dashboard_metrics)
    need python3
    "$S" dashboard "$FIX/ops.yaml" >"$TMP/d.json" || fail "dashboard"
    "$S" rules "$FIX/ops.yaml" >"$TMP/r.yml" || fail "rules"
    python3 - "$TMP/d.json" "$TMP/r.yml" "$SRC/docs/metrics.md" <<'EOF' || fail "dashboard/rules metrics"
import json, os, re, sys
d = json.load(open(sys.argv[1]))
# The metric names the library exports: docs/metrics.md when it exists,
# and in any case the list of issue 3 (which docs/metrics.md must contain).
exported = {"pool_running", "pool_capacity", "pool_waiting", "pool_queue_depth", "pool_submitted_total",
            "pool_completed_total", "pool_dropped_total", "pool_panicked_total", "pool_task_duration_seconds",
            "pool_submit_duration_seconds", "pool_idle_workers", "pool_expired_workers_total",
            "pool_resize_events_total", "pool_worker_utilization_ratio", "pool_failed_total", "pool_shed_total",
            "pool_abandoned_total", "pool_rejected_total", "pool_queue_capacity", "pool_oldest_running_seconds",
            "pool_started_workers_total", "pool_retired_workers_total",
            # fair pools (issue 13)
            "pool_tenant_queued", "pool_tenant_running", "pool_tenant_submitted_total",
            "pool_tenant_completed_total", "pool_tenant_failed_total", "pool_tenant_panicked_total",
            "pool_tenant_dropped_total", "pool_tenant_rejected_total", "pool_tenant_shed_total",
            "pool_tenant_abandoned_total", "pool_tenant_submit_duration_seconds", "pool_tenants_tracked",
            "pool_tenants_folded",
            # a service's pool controller (sluice/control.h)
            "pool_concurrency_limit", "pool_autotune_pinned", "pool_autotune_decisions_total",
            "pool_probe_duration_seconds", "pool_probe_failures_total", "pool_probe_healthy"}
if os.path.exists(sys.argv[3]):
    documented = set(re.findall(r"\bpool_[a-z_]+[a-z]", open(sys.argv[3]).read()))
    missing = exported - documented
    assert not missing, "not in docs/metrics.md: %s" % sorted(missing)
def used(text):
    names = set()
    for m in re.findall(r"\bpool_[a-z_]+[a-z]", text):
        names.add(re.sub(r"_(bucket|sum|count)$", "", m))
    return names
exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
assert len(exprs) >= 20, len(exprs)
budget_exprs = [e for e in exprs if "sluice_budget_" in e]
exprs = [e for e in exprs if "sluice_budget_" not in e]
# The cluster budget's row (the fixture has a cluster: section), filtered
# by job and instance; every sluice_budget_* family it uses is documented.
assert len(budget_exprs) >= 10, budget_exprs
cluster_doc = open(os.path.join(os.path.dirname(sys.argv[3]), "cluster.md")).read()
for e in budget_exprs:
    assert '{job="$job",instance=~"$instance"}' in e, e
    assert "[5m]" not in e, e
    for m in re.findall(r"\bsluice_budget_[a-z_]+[a-z]", e):
        assert m in cluster_doc, "not in docs/cluster.md: " + m
for t in ["Cluster members", "K per replica vs share", "Permits held, leased and limit (strict mode)",
          "Redis round trip", "Redis up, errors and fallbacks"]:
    assert t in [p["title"] for p in d["panels"]], t
for e in exprs:
    # Filtered by service (job), instance and pool; rate windows follow
    # Grafana's $__rate_interval; an instantaneous ratio is averaged over time.
    # The sync primitives' panels show every object of the job (by name).
    if "sluice_" in e:
        assert '{job="$job",instance=~"$instance"}' in e and "by (name)" in e, e
    else:
        assert '{job="$job",instance=~"$instance",name="$pool"}' in e, e
    assert "[5m]" not in e, e
    if "pool_worker_utilization_ratio" in e:
        assert "avg_over_time(pool_worker_utilization_ratio" in e, e
bad = used("\n".join(exprs)) - exported
assert not bad, "dashboard uses unexported metrics: %s" % sorted(bad)
rules = [l for l in open(sys.argv[2]) if "expr:" in l]
bad = used("".join(rules)) - exported
assert not bad, "rules use unexported metrics: %s" % sorted(bad)
names = [v["name"] for v in d["templating"]["list"]]
assert names == ["datasource", "job", "instance", "pool"], names
job = [v for v in d["templating"]["list"] if v["name"] == "job"][0]
assert job["current"]["value"] == "checkout", job
inst = [v for v in d["templating"]["list"] if v["name"] == "instance"][0]
assert inst["multi"] and inst["includeAll"] and inst["allValue"] == ".*", inst
var = [v for v in d["templating"]["list"] if v["name"] == "pool"]
assert var and var[0]["regex"] == "/^(payments|thumbnails)$/", var
titles = " | ".join(p["title"] for p in d["panels"])
for want in ["Running vs capacity", "Submit rate", "Completion rate", "Drop rate", "Task duration p50 / p95 / p99",
             "Submit wait", "Panics", "Worker churn", "Worker utilization", "Running by instance",
             "Oldest running task by instance", "Utilization by instance", "Loss by instance",
             "Circuit breakers", "Semaphores: in use / capacity", "Rate limiters: limited share"]:
    assert want in titles, want
assert any("pool_started_workers_total" in e for e in exprs), "worker churn must show spawns"
ids = [p["id"] for p in d["panels"]]
assert len(ids) == len(set(ids)), ids
EOF
    ;;
runbook_anchors)
    "$S" rules "$FIX/ops.yaml" >"$TMP/r.yml" || fail "rules"
    "$S" runbook "$FIX/ops.yaml" >"$TMP/rb.md" || fail "runbook"
    n=0
    for url in $(sed -n 's/^ *runbook_url: "\(.*\)"$/\1/p' "$TMP/r.yml"); do
        case $url in https://runbooks.example.com/checkout.md#*) ;; *) fail "runbook_url base: $url" ;; esac
        anchor=${url#*#}
        grep -q "^<a id=\"$anchor\"></a>$" "$TMP/rb.md" || fail "no anchor $anchor in the runbook"
        n=$((n + 1))
    done
    # 7 alerts for each of the 2 pools, and the service's SluiceTargetDown.
    # ... and payments' SLO alerts (fast and slow, availability and latency),
    # the 3 service-wide alerts on breakers, semaphores and limiters, the
    # service SLO's fast and slow burn, and TenantStarved for thumbnails
    # (queue_discipline: fair), and payments'
    # PoolProbeFailing (payments has probe_every), and the 4 alerts
    # of the cluster budget.
    [ "$n" -eq 30 ] || fail "want 30 runbook_urls, got $n"
    # ... and the 4 incidents the reference text's playbook lists that no
    # single alert names.
    [ "$(grep -c '^<a id=' "$TMP/rb.md")" -eq 32 ] || fail "want 32 runbook entries"
    for id in memory-growth exhausted-at-startup unresponsive-after-deploy stall-deadlock; do
        has "$TMP/rb.md" "<a id=\"incident-$id\"></a>"
    done
    has "$TMP/rb.md" "kubectl rollout undo"
    for s in "#### Quick checks (5 min)" "#### Mitigations (15 min)" "#### Long-term fixes" "#### Rollback"; do
        [ "$(grep -c "^$s" "$TMP/rb.md")" -eq 32 ] || fail "every entry needs '$s'"
    done
    has "$TMP/rb.md" "K is 10 because: payments-api allows 40 concurrent calls, 4 replicas"
    has "$TMP/rb.md" "SLUICE_POOL_PAYMENTS_WORKERS"
    ;;
plan_numbers)
    need python3
    # Erlang C table: A = 10 Erlangs, 15 servers -> P(wait) 0.1020; SLO p99.9
    # wait <= 100 ms first met at K = 15 (14 gives 129 ms).
    run "$S" plan --json --rate 100 --latency-mean 100ms --slo '99.9%<200ms' --headroom 1
    expect_rc 0 "plan (SLO binds)"
    python3 - "$TMP/out" <<'EOF' || fail "plan JSON numbers"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["littles_law"]["k_per_pod"] == 10, r
assert r["k_slo"] == 15 and r["k_recommended"] == 15, r
assert "SLO" in r["binding_constraint"], r
assert abs(r["queue_wait"]["p_wait"] - 0.1020) < 5e-5, r["queue_wait"]
assert abs(r["error_budget"]["minutes_per_month"] - 43.2) < 1e-9, r
assert r["ok"] is True
EOF
    # Little's law: 10k/s x 20 ms = 200 busy; 2x headroom over 4 pods = 100 per pod.
    run "$S" plan --rate 10000 --latency-mean 20ms --replicas 4
    expect_rc 0 "plan (Little's law)"
    has "$TMP/out" "Recommended K per pod: 100 (cluster 400); binding constraint: traffic x headroom"
    has "$TMP/out" "busy workers at peak, cluster *200.00"
    # A downstream limit below the load: exit 1 and say why.
    run "$S" plan --rate 10000 --latency-mean 100ms --replicas 2 --downstream-limit 200
    expect_rc 1 "plan that cannot keep up"
    has "$TMP/out" "binding constraint: the downstream limit"
    has "$TMP/out" "Plan fails: K=100 per pod"
    # From the config: K, kind and the downstream share (40) come from the file.
    run "$S" plan --config "$FIX/ops.yaml" --pool payments --rate 400 --latency-mean 50ms --replicas 4
    expect_rc 0 "plan --config"
    has "$TMP/out" "Configured K: 10 (matches)"
    has "$TMP/out" "downstream limit 40 / 4 replicas"
    ;;
plan_errors)
    run "$S" plan --latency-mean 10ms
    expect_rc 2 "plan without --rate"
    has "$TMP/err" "--rate and --latency-mean are required"
    run "$S" plan --rate 10 --latency-mean 10
    expect_rc 2 "duration without a unit"
    has "$TMP/err" '\-\-latency-mean must be a duration'
    run "$S" plan --rate 10 --latency-mean 10ms --slo '120%<1s'
    expect_rc 2 "SLO above 100%"
    has "$TMP/err" "\-\-slo must be"
    run "$S" plan --rate -5 --latency-mean 10ms
    expect_rc 2 "negative rate"
    run "$S" plan --rate 10 --latency-mean 10ms --config "$FIX/ops.yaml"
    expect_rc 2 "--config without --pool"
    run "$S" plan --rate 10 --latency-mean 10ms --config "$FIX/ops.yaml" --pool nope
    expect_rc 2 "unknown pool"
    has "$TMP/err" 'no pool named "nope"'
    ;;
inventory)
    cd "$FIX" || fail "cd"
    run "$S" inventory inventory
    expect_rc 0 "inventory"
    cat >"$TMP/want" <<'EOF'
inventory/app/main.c:14: sluice: sluice_pool_create, pool "payments"
inventory/app/main.c:20: sluice: sluice_pool_create, pool "legacy"
inventory/app/main.c:28: sluice: sluice_pool_create, pool from sluice.yaml
inventory/vendor/others.c:12: c-thread-pool: thpool_init
inventory/vendor/others.c:13: glib: g_thread_pool_new
inventory/vendor/others.c:15: apr: apr_thread_pool_create
inventory/vendor/others.c:16: libuv: uv_queue_work
inventory/vendor/others.c:21: pthread-loop: pthread_create, confidence medium
inventory/wrapped/uses.c:8: c-thread-pool: thpool_init via MAKE_POOL_CHECKED
inventory/wrapped/uses.c:14: thread-loop: uv_thread_create_ex, confidence medium
inventory/wrapped/uses.c:22: pthread-loop: pthread_create, confidence low (joined in the same function: a fork-join batch)
11 sites: sluice 3, c-thread-pool 2, glib 1, apr 1, libuv 1, pthread-loop 2, thread-loop 1
EOF
    diff "$TMP/want" "$TMP/out" >&2 || fail "inventory output"
    run "$S" inventory "$TMP/nonexistent"
    expect_rc 2 "inventory of a missing path"
    has "$TMP/err" "nonexistent"
    ;;
inventory_config)
    need python3
    cd "$FIX" || fail "cd"
    run "$S" inventory --config ops.yaml inventory/app
    expect_rc 1 "a Sluice pool not in the config"
    has "$TMP/out" 'pool "legacy", NOT declared in config'
    has "$TMP/out" 'pool "payments", declared in config'
    has "$TMP/out" 'pool from sluice.yaml, declared in config'
    run "$S" inventory --json --config ops.yaml inventory
    expect_rc 1 "inventory --json"
    python3 - "$TMP/out" <<'EOF' || fail "inventory JSON"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["undeclared"] == 1 and r["counts"]["sluice"] == 3 and r["counts"]["pthread-loop"] == 2, r
assert r["counts"]["thread-loop"] == 1, r
w = [x for x in r["sites"] if x["via"]][0]
assert w["via"] == "MAKE_POOL_CHECKED" and w["call"] == "thpool_init" and w["confidence"] == "high", w
assert sorted(x["confidence"] for x in r["sites"] if "loop" in x["kind"]) == ["low", "medium", "medium"], r
s = [x for x in r["sites"] if x.get("pool") == "legacy"][0]
assert s["declared"] is False and s["file"] == "inventory/app/main.c" and s["line"] == 20, s
EOF
    ;;
deterministic)
    # The same config with pools and shares in another order (and the same
    # file name) gives byte-identical output; so does a second run.
    mkdir "$TMP/a" "$TMP/b"
    cp "$FIX/ops.yaml" "$TMP/a/ops.yaml"
    need python3
    python3 - "$FIX/ops.yaml" "$TMP/b/ops.yaml" <<'EOF' || fail "reorder"
import sys
t = open(sys.argv[1]).read()
head, rest = t.split("pools:\n", 1)
pools, tail = rest.split("downstream_budget:\n", 1)
items = ["  - name:" + p for p in pools.split("  - name:")[1:]]
lines = tail.splitlines(True)
shares = [l for l in lines if l.startswith("      ")]
other = [l for l in lines if not l.startswith("      ")]
open(sys.argv[2], "w").write(head + "pools:\n" + "".join(reversed(items)) + "downstream_budget:\n" +
                             "".join(other) + "".join(reversed(shares)))
EOF
    grep -q "name: thumbnails" "$TMP/b/ops.yaml" || fail "reordered copy"
    for c in rules dashboard runbook; do
        "$S" "$c" "$TMP/a/ops.yaml" >"$TMP/a/$c" || fail "$c a"
        "$S" "$c" "$TMP/b/ops.yaml" >"$TMP/b/$c" || fail "$c b"
        "$S" "$c" "$TMP/a/ops.yaml" >"$TMP/a/$c.2" || fail "$c a2"
        cmp -s "$TMP/a/$c" "$TMP/b/$c" || { diff "$TMP/a/$c" "$TMP/b/$c" | head -20 >&2; fail "$c depends on file order"; }
        cmp -s "$TMP/a/$c" "$TMP/a/$c.2" || fail "$c differs between runs"
    done
    # Environment overrides reach the output only with --env.
    SLUICE_POOL_PAYMENTS_WORKERS=7 "$S" rules "$TMP/a/ops.yaml" >"$TMP/a/rules.env" || fail "rules with env"
    cmp -s "$TMP/a/rules" "$TMP/a/rules.env" || fail "rules read the environment without --env"
    SLUICE_POOL_PAYMENTS_WORKERS=7 "$S" rules --env "$TMP/a/ops.yaml" >"$TMP/a/rules.env" || fail "rules --env"
    grep -q "K=7 (" "$TMP/a/rules.env" || fail "rules --env did not apply SLUICE_POOL_PAYMENTS_WORKERS"
    # Lint: the same findings in the same order (positions differ, so drop them).
    "$S" lint --cpus 1 "$TMP/a/ops.yaml" | sed "s|^$TMP/a/ops.yaml[:0-9]*: ||" >"$TMP/a/lint"
    "$S" lint --cpus 1 "$TMP/b/ops.yaml" | sed "s|^$TMP/b/ops.yaml[:0-9]*: ||" >"$TMP/b/lint"
    grep -q "cpu-bound-k" "$TMP/a/lint" || fail "lint --cpus 1 should find cpu-bound-k"
    cmp -s "$TMP/a/lint" "$TMP/b/lint" || { diff "$TMP/a/lint" "$TMP/b/lint" >&2; fail "lint depends on file order"; }
    ;;
arg_order)
    # Flags may come before or after the config file, for every command.
    for c in rules dashboard runbook; do
        "$S" "$c" "$FIX/ops.yaml" -o "$TMP/after.$c" || fail "$c FILE -o OUT"
        "$S" "$c" -o "$TMP/before.$c" "$FIX/ops.yaml" || fail "$c -o OUT FILE"
        cmp -s "$TMP/after.$c" "$TMP/before.$c" || fail "$c: output depends on flag order"
    done
    run "$S" lint "$FIX/ops.yaml" --cpus 4 --json
    expect_rc 0 "lint FILE --cpus 4 --json"
    has "$TMP/out" '"cpus": 4'
    run "$S" lint "$FIX/ops.yaml" --no-such-flag
    expect_rc 2 "lint FILE --no-such-flag"
    has "$TMP/err" "unknown flag '--no-such-flag'"
    run "$S" rules "$FIX/ops.yaml" "$FIX/ops.yaml"
    expect_rc 2 "rules with two files"
    # "--" ends the flags: a file named like a flag still works.
    cp "$FIX/ops.yaml" "$TMP/-o"
    run "$S" rules -- "$TMP/-o"
    expect_rc 0 "rules -- FILE"
    ;;
readme_examples)
    # Every `sluice ...` command README.md and docs/ops.md show runs as
    # written (in a scratch directory holding a sluice.yaml, src/ and ops/):
    # exit 0, or 1 where the command reports findings; never a usage error.
    need python3
    need promtool
    mkdir -p "$TMP/bin" "$TMP/run/ops"
    ln -s "$S" "$TMP/bin/sluice"
    cp "$FIX/ops.yaml" "$TMP/run/sluice.yaml"
    ln -s "$SRC/src" "$TMP/run/src"
    python3 "$SRC/tests/tools/doc_commands.py" "$SRC/README.md" "$SRC/docs/ops.md" >"$TMP/cmds" ||
        fail "extracting the examples"
    n=0
    while IFS= read -r cmd; do
        [ -n "$cmd" ] || continue
        (cd "$TMP/run" && PATH="$TMP/bin:$PATH" sh -c "$cmd" </dev/null >"$TMP/out" 2>"$TMP/err")
        rc=$?
        if [ "$rc" -gt 1 ]; then cat "$TMP/err" >&2; fail "exit $rc: $cmd"; fi
        n=$((n + 1))
    done <"$TMP/cmds"
    [ "$n" -ge 10 ] || fail "found only $n example commands"
    echo "ran $n example commands"
    ;;
rules_unfireable)
    # A timing alert that can never fire is refused with the key's position;
    # nothing is written. The same threshold with larger buckets is fine.
    # (inserted into the thumbnails pool, after its last key "kind: cpu")
    sed 's/^    kind: cpu$/&\n    alert_slow_task_p99: 10s/' "$FIX/ops.yaml" >"$TMP/slow.yaml"
    run "$S" rules "$TMP/slow.yaml" -o "$TMP/never.yml"
    expect_rc 2 "rules with a threshold above the buckets"
    has "$TMP/err" "slow.yaml:41:26: pool thumbnails: alert_slow_task_p99 10s is not below the largest finite histogram bucket 6.5536s"
    has "$TMP/err" "PoolSlowTasks can never fire"
    [ -e "$TMP/never.yml" ] && fail "rules wrote a file it refused"
    [ -s "$TMP/out" ] && fail "rules printed rules it refused"
    sed -i 's/^    alert_slow_task_p99: 10s$/&\n    histogram_buckets: [0.1, 1, 30]/' "$TMP/slow.yaml"
    run "$S" rules "$TMP/slow.yaml"
    expect_rc 0 "rules with buckets above the threshold"
    sed 's/^    kind: cpu$/&\n    timing: false/' "$FIX/ops.yaml" >"$TMP/off.yaml"
    run "$S" rules "$TMP/off.yaml"
    expect_rc 2 "rules with timing off"
    has "$TMP/err" "timing is off"
    # A latency SLO must sit on a histogram bound; an objective of 1 has
    # no error budget at all.
    sed 's/^    slo_latency: 409.6ms$/    slo_latency: 300ms/' "$FIX/ops.yaml" >"$TMP/slo.yaml"
    run "$S" rules "$TMP/slo.yaml"
    expect_rc 2 "rules with an slo_latency between bounds"
    has "$TMP/err" "slo_latency 0.3s is not one of the pool's histogram bounds"
    # The service's latency SLO needs its bound in every pool (thumbnails
    # keeps the default buckets, which have 0.4096 but not 0.3).
    sed 's/^  slo_objective: 0.99$/&\n  slo_latency: 300ms/' "$FIX/ops.yaml" >"$TMP/sslo.yaml"
    run "$S" rules "$TMP/sslo.yaml"
    expect_rc 2 "rules with a service slo_latency off the bounds"
    has "$TMP/err" "service: service slo_latency: pool payments: slo_latency 0.3s is not one of the pool's histogram bounds"
    sed -i 's/^  slo_latency: 300ms$/  slo_latency: 409.6ms/' "$TMP/sslo.yaml"
    run "$S" rules "$TMP/sslo.yaml"
    expect_rc 0 "rules with a service slo_latency every pool has"
    has "$TMP/out" "sluice_slo:service_error_ratio:rate5m"
    sed 's/^    slo_objective: 0.999$/    slo_objective: 1/' "$FIX/ops.yaml" >"$TMP/slo1.yaml"
    run "$S" rules "$TMP/slo1.yaml"
    expect_rc 2 "rules with slo_objective 1"
    has "$TMP/err" "slo_objective: must be below 1"
    run "$S" lint "$TMP/off.yaml"
    expect_rc 1 "lint with timing off"
    has "$TMP/out" "alert-thresholds: pool thumbnails: timing is off"
    ;;
dashboard_fleet)
    # The fleet view: no config; every query parses as PromQL (promtool
    # checks them as recording rules, with Grafana's variables filled in),
    # uses only exported metrics, and the offenders table sorts by
    # saturation, worst first. The service dashboard's queries parse too.
    need python3
    need promtool
    run "$S" dashboard --fleet
    expect_rc 0 "dashboard --fleet"
    cp "$TMP/out" "$TMP/fleet.json"
    "$S" dashboard "$FIX/ops.yaml" -o "$TMP/svc.json" || fail "dashboard"
    run "$S" dashboard --fleet "$FIX/ops.yaml"
    expect_rc 2 "dashboard --fleet with a config"
    has "$TMP/err" "takes no config file"
    python3 - "$TMP/fleet.json" "$TMP/svc.json" "$TMP/rules.yml" <<'PY' || fail "fleet dashboard"
import json, re, sys
fleet = json.load(open(sys.argv[1]))
svc = json.load(open(sys.argv[2]))
assert fleet["uid"] == "sluice-fleet"
assert [v["name"] for v in fleet["templating"]["list"]] == ["datasource", "job"]
titles = [p["title"] for p in fleet["panels"]]
for want in ["Every pool, most saturated first", "Top 10 pools by saturation", "Top 10 oldest running tasks",
             "Top 10 pools by lost work"]:
    assert want in titles, titles
table = [p for p in fleet["panels"] if p["type"] == "table"][0]
assert table["targets"][0]["expr"].startswith("sort_desc("), table["targets"][0]
sort = [t for t in table["transformations"] if t["id"] == "sortBy"][0]
assert sort["options"]["sort"] == [{"field": "saturation", "desc": True}], sort
exprs = []
for d in (fleet, svc):
    for p in d["panels"]:
        for t in p.get("targets", []):
            exprs.append(t["expr"])
with open(sys.argv[3], "w") as out:
    out.write("groups:\n  - name: dashboard-queries\n    rules:\n")
    for i, e in enumerate(exprs):
        e = e.replace("$__rate_interval", "5m").replace("$job", ".*").replace("$instance", ".*")
        e = e.replace("$pool", "p")
        out.write("      - record: q:%d\n        expr: %s\n" % (i, json.dumps(e)))
PY
    promtool check rules "$TMP/rules.yml" >"$TMP/check" 2>&1 || { cat "$TMP/check" >&2; fail "a dashboard query is not valid PromQL"; }
    ;;
bench_baseline)
    # sluice bench --baseline FILE against a stand-in driver ($SLUICE_BENCH)
    # that prints a fixed JSON document: a throughput drop beyond the
    # spread is a regression (exit 1), one inside it is not, a latency rise
    # beyond it is, and a bad baseline file is a usage error.
    doc() { # noop_median noop_min noop_max lat_median
        cat <<JSON
{"machine": {"cpu_model": "test", "cpus": 2}, "workloads": [
 {"name": "noop-1p", "better": "higher", "results": [
   {"impl": "sluice", "median": $1, "min": $2, "max": $3},
   {"impl": "glib", "median": 1000, "min": 990, "max": 1010}]},
 {"name": "latency", "better": "lower", "results": [
   {"impl": "sluice", "median": $4, "min": $4, "max": $4}]}]}
JSON
    }
    doc 10000 9800 10200 20 >"$TMP/base.json"
    printf '#!/bin/sh\ncat "%s"\n' "$TMP/now.json" >"$TMP/fake-bench"
    chmod +x "$TMP/fake-bench"
    doc 9700 9600 9800 20.5 >"$TMP/now.json"    # -3% and +2.5%: within the 5% floor
    SLUICE_BENCH="$TMP/fake-bench" run "$S" bench --baseline "$TMP/base.json"
    expect_rc 0 "no regression"
    has "$TMP/out" "0 regressions beyond the run-to-run spread"
    doc 8000 7900 8100 20 >"$TMP/now.json"      # -20%: a regression
    SLUICE_BENCH="$TMP/fake-bench" run "$S" bench --quick --baseline "$TMP/base.json"
    expect_rc 1 "throughput regression"
    grep -q "^noop-1p .*REGRESSION" "$TMP/out" || { cat "$TMP/out" >&2; fail "noop-1p not flagged"; }
    doc 10000 9800 10200 30 >"$TMP/now.json"    # latency +50%: a regression
    SLUICE_BENCH="$TMP/fake-bench" run "$S" bench --baseline="$TMP/base.json"
    expect_rc 1 "latency regression"
    grep -q "^latency .*REGRESSION" "$TMP/out" || { cat "$TMP/out" >&2; fail "latency not flagged"; }
    doc 8000 5000 12000 20 >"$TMP/now.json"     # -20% but the run spread 87%: noise
    SLUICE_BENCH="$TMP/fake-bench" run "$S" bench --baseline "$TMP/base.json"
    expect_rc 0 "a drop inside a noisy run's spread"
    echo '{"not": "a bench doc"}' >"$TMP/bad.json"
    SLUICE_BENCH="$TMP/fake-bench" run "$S" bench --baseline "$TMP/bad.json"
    expect_rc 2 "a baseline that is not bench output"
    has "$TMP/err" 'no "workloads" array'
    SLUICE_BENCH="$TMP/fake-bench" run "$S" bench --baseline "$TMP/missing.json"
    expect_rc 2 "a missing baseline"
    ;;
plan_memory)
    # A memory-bound pool: 2 GiB for tasks of 64 MiB caps K at 32 per pod,
    # below Little's 200, and says so; half of the flag pair is refused.
    need python3
    run "$S" plan --json --rate 1000 --latency-mean 100ms --kind memory --task-memory 64Mi --memory-budget 2Gi
    expect_rc 1 "a memory cap below the load"
    python3 - "$TMP/out" <<'PY' || fail "plan memory JSON"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["k_recommended"] == 32 and r["binding_constraint"] == "the memory budget", r
assert r["input"]["task_memory_bytes"] == 64 << 20 and r["input"]["memory_budget_bytes"] == 2 << 30, r["input"]
PY
    run "$S" plan --rate 100 --latency-mean 100ms --task-memory 64Mi --memory-budget 4G
    expect_rc 0 "memory enough for Little's K"
    has "$TMP/out" "binding constraint: traffic x headroom"
    run "$S" plan --rate 100 --latency-mean 100ms --task-memory 64Mi
    expect_rc 2 "--task-memory alone"
    has "$TMP/err" "go together"
    run "$S" plan --rate 100 --latency-mean 100ms --task-memory lots --memory-budget 1G
    expect_rc 2 "a bad size"
    has "$TMP/err" "--task-memory must be a byte count"
    ;;
lint_budget)
    # sluice lint --budget FILE --replicas N --surge M: the downstream-share
    # rule against a downstream-budget.yaml (docs/cluster.md).
    printf 'downstream: payments-api\ntotal_limit: 100\nshares:\n  checkout: 40\n  refunds: 60\n' >"$TMP/budget.yaml"
    run "$S" lint --cpus 8 --budget "$TMP/budget.yaml" "$FIX/ops.yaml"
    if grep -q "needs libsluice-cluster" "$TMP/err"; then echo "SKIP [$CASE]: built without hiredis" >&2; exit 77; fi
    # ops.yaml has a cluster: section in share mode: payments is bound and
    # its part is the whole share of 40, enough for 30 replicas + 10 surge.
    run "$S" lint --cpus 8 --replicas 30 --surge 10 --budget "$TMP/budget.yaml" "$FIX/ops.yaml"
    expect_rc 0 "40 pods fit a part of 40"
    run "$S" lint --cpus 8 --replicas 30 --surge 11 --budget "$TMP/budget.yaml" "$FIX/ops.yaml"
    expect_rc 1 "41 pods do not fit a part of 40"
    has "$TMP/out" "ops.yaml:19:14: downstream-share: pool payments: its part of checkout's share of payments-api is 40 (of 40), but 30 replicas + 11 surge each run K >= 1: up to 41 calls at once"
    has "$TMP/out" "cluster.mode: strict"
    # Strict mode holds the share whatever K is.
    sed 's/^  mode: share/  mode: strict/' "$FIX/ops.yaml" >"$TMP/strict.yaml"
    run "$S" lint --cpus 8 --replicas 30 --surge 11 --budget "$TMP/budget.yaml" "$TMP/strict.yaml"
    expect_rc 0 "strict mode"
    # Without a cluster: section K is static: 10 x (4 + 1 surge) = 50 > 40.
    sed '/^# One downstream budget across/,/^  budget_file:/d' "$FIX/ops.yaml" >"$TMP/static.yaml"
    run "$S" lint --cpus 8 --replicas 4 --budget "$TMP/budget.yaml" "$TMP/static.yaml"
    expect_rc 0 "10 x 4 fits 40"
    run "$S" lint --cpus 8 --replicas 4 --surge 1 --budget "$TMP/budget.yaml" "$TMP/static.yaml"
    expect_rc 1 "10 x (4 + 1) exceeds 40"
    has "$TMP/out" "static.yaml:12:14: downstream-share: pool payments: K=10; this service's pools calling payments-api make 50 concurrent calls over 4 replicas + 1 surge, above its share of 40"
    run "$S" lint --json --cpus 8 --replicas 4 --surge 1 --budget "$TMP/budget.yaml" "$TMP/static.yaml"
    has "$TMP/out" '"surge": 1'
    # A budget without this service: a finding at the pool's downstream key.
    printf 'downstream: payments-api\ntotal_limit: 100\nshares:\n  refunds: 60\n' >"$TMP/other.yaml"
    run "$S" lint --cpus 8 --budget "$TMP/other.yaml" "$FIX/ops.yaml"
    expect_rc 1 "no share"
    has "$TMP/out" "downstream-share: pool payments: calls downstream payments-api, whose budget file has no share for service checkout"
    # A bad budget file: file:line:col and exit 2, like sluice.yaml.
    printf 'downstream: payments-api\ntotal_limit: 50\nshares:\n  checkout: 40\n  refunds: 60\n' >"$TMP/bad.yaml"
    run "$S" lint --cpus 8 --budget "$TMP/bad.yaml" "$FIX/ops.yaml"
    expect_rc 2 "bad budget"
    has "$TMP/err" "bad.yaml:"
    run "$S" lint --cpus 8 --budget "$TMP/missing.yaml" "$FIX/ops.yaml"
    expect_rc 2 "missing budget"
    run "$S" lint --cpus 8 --surge -1 "$FIX/ops.yaml"
    expect_rc 2 "bad surge"
    ;;
rules_thresholds)
    # Every threshold is configurable per pool, with a rationale that lands
    # in the alert description and the runbook; out-of-range values are
    # refused with the key's position.
    need promtool
    sed 's/^    kind: cpu$/&\n    alert_saturation: 0.75\n    alert_loss_ratio: 0.05\n    alert_for: 10m\n    alert_rationale: "batch thumbnails tolerate {{ backlog }}"/' \
        "$FIX/ops.yaml" >"$TMP/t.yaml"
    run "$S" rules "$TMP/t.yaml" -o "$TMP/t.yml"
    expect_rc 0 "rules with per-pool thresholds"
    has "$TMP/t.yml" 'pool_running{name="thumbnails"} / pool_capacity{name="thumbnails"} > 0.75'
    has "$TMP/t.yml" 'pool_rejected_total{name="thumbnails"}\[5m\])) > 0.05'
    has "$TMP/t.yml" "for: 10m"
    # (the rationale's "{{" is escaped for Go templates, then for YAML)
    has "$TMP/t.yml" 'Thresholds: batch thumbnails tolerate {{ \\"{{\\" }} backlog'
    grep -q 'name="payments"} > 0.9' "$TMP/t.yml" || fail "payments keeps the default saturation"
    promtool check rules "$TMP/t.yml" >"$TMP/check" 2>&1 || { cat "$TMP/check" >&2; fail "promtool check rules"; }
    run "$S" runbook "$TMP/t.yaml"
    expect_rc 0 "runbook with per-pool thresholds"
    has "$TMP/out" "| alert thresholds | saturation 0.75, loss 0.05, for 10m (batch thumbnails tolerate"
    sed 's/^    kind: cpu$/&\n    alert_saturation: 1.5/' "$FIX/ops.yaml" >"$TMP/bad.yaml"
    run "$S" rules "$TMP/bad.yaml"
    expect_rc 2 "alert_saturation above 1"
    has "$TMP/err" "alert_saturation: must be at most 1"
    ;;
ops_up_to_date)
    # ops/ holds the files generated from the demo's built-in config;
    # regenerate with: ops/regenerate.sh build/tools/sluice/sluice
    "$S" demo --print-config >"$TMP/sluice.yaml" || fail "demo --print-config"
    cmp -s "$TMP/sluice.yaml" "$SRC/ops/sluice.yaml" ||
        { diff "$SRC/ops/sluice.yaml" "$TMP/sluice.yaml" >&2; fail "ops/sluice.yaml is stale: run ops/regenerate.sh"; }
    for pair in rules:rules.yml dashboard:dashboard.json runbook:runbook.md; do
        c=${pair%%:*} f=${pair#*:}
        "$S" "$c" "$SRC/ops/sluice.yaml" >"$TMP/$f" || fail "$c"
        cmp -s "$TMP/$f" "$SRC/ops/$f" ||
            { diff "$SRC/ops/$f" "$TMP/$f" | head -40 >&2; fail "ops/$f is stale: run ops/regenerate.sh"; }
    done
    ;;
*)
    fail "unknown case"
    ;;
esac
exit 0

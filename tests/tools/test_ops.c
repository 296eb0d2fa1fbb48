/*
 * tests/tools/test_ops.c - the pure parts of the operations subcommands:
 * quoting and formatting helpers, the lint rules (one config per rule,
 * loaded from text through the real config loader), and the inventory
 * scanner on sources written to fool a naive grep (comments, strings,
 * declarations, members, macros, loops with and without braces).
 *
 * Design: each test feeds a small input and asserts the exact findings or
 * sites, including what must NOT be reported, so a scanner or rule that
 * over-reports fails as surely as one that misses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/config.h"

#include "../../tools/sluice/ops_inventory.h"
#include "../../tools/sluice/ops_lint.h"
#include "../../tools/sluice/ops_rules.h"
#include "../../tools/sluice/ops_util.h"

/* ---- helpers -------------------------------------------------------------- */

static void durations(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(sluice_config_format_duration(0, b, sizeof b), "0s");
    assert_string_equal(sluice_config_format_duration(250000000ull, b, sizeof b), "250ms");
    assert_string_equal(sluice_config_format_duration(90ull * 1000000000ull, b, sizeof b), "90s");
    assert_string_equal(sluice_config_format_duration(3600ull * 1000000000ull, b, sizeof b), "1h");
    assert_string_equal(sluice_config_format_duration(1500ull, b, sizeof b), "1500ns");
    assert_string_equal(ops_format_seconds(250000000ull, b, sizeof b), "0.25");
    assert_string_equal(ops_format_seconds(1000000000ull, b, sizeof b), "1");
    assert_string_equal(ops_format_seconds(100000ull, b, sizeof b), "0.0001");
    uint64_t ns = 0;
    assert_int_equal(sluice_config_parse_duration("1.5s", &ns), SLUICE_OK);
    assert_true(ns == 1500000000ull);
    assert_int_equal(sluice_config_parse_duration("40ms", &ns), SLUICE_OK);
    assert_true(ns == 40000000ull);
    assert_int_equal(sluice_config_parse_duration("0", &ns), SLUICE_OK);
    assert_true(ns == 0);
    assert_int_equal(sluice_config_parse_duration("40", &ns), SLUICE_EINVAL);
    assert_int_equal(sluice_config_parse_duration("-1s", &ns), SLUICE_EINVAL);
    assert_int_equal(sluice_config_parse_duration("1x", &ns), SLUICE_EINVAL);
    assert_int_equal(sluice_config_parse_duration("", &ns), SLUICE_EINVAL);
}

static void quoting(void **state)
{
    (void)state;
    ops_buf b = {0};
    ops_json_str(&b, "a\"b\\c\nd\x01");
    assert_string_equal(ops_buf_str(&b), "\"a\\\"b\\\\c\\nd\\u0001\"");
    ops_buf_free(&b);
    ops_yaml_str(&b, "say \"hi\"\t");
    assert_string_equal(ops_buf_str(&b), "\"say \\\"hi\\\"\\t\"");
    ops_buf_free(&b);
    ops_yaml_squote(&b, "it's {name=\"x\"}");
    assert_string_equal(ops_buf_str(&b), "'it''s {name=\"x\"}'");
    ops_buf_free(&b);
    ops_template_text(&b, "a {{ b }} c");
    assert_string_equal(ops_buf_str(&b), "a {{ \"{{\" }} b {{ \"}}\" }} c");
    ops_buf_free(&b);
    ops_md_text(&b, "a|b\nc");
    assert_string_equal(ops_buf_str(&b), "a\\|b c");
    ops_buf_free(&b);
    char a[64];
    assert_string_equal(ops_runbook_anchor("PoolSaturated", "push", a, sizeof a), "poolsaturated-push");
    assert_string_equal(ops_runbook_anchor("PoolPanic", "eu.push:v2", a, sizeof a),
                        "poolpanic-eu_2epush_3av2");
    /* Names that differ only in punctuation or case get distinct anchors. */
    static const char *const near[] = {"a.b", "a:b", "a-b", "A-b", "a_b", "a__b", "a_5fb", "a-_b"};
    char seen[sizeof near / sizeof near[0]][64];
    for (size_t i = 0; i < sizeof near / sizeof near[0]; i++) {
        ops_runbook_anchor("PoolPanic", near[i], seen[i], sizeof seen[i]);
        for (const char *c = seen[i]; *c; c++)
            assert_true((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_');
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(seen[i], seen[j]);
    }
}

static void json_writer(void **state)
{
    (void)state;
    ops_buf b = {0};
    ops_jw w;
    ops_jw_init(&w, &b);
    ops_jw_obj(&w, NULL);
    ops_jw_str(&w, "a", "x");
    ops_jw_arr(&w, "e");
    ops_jw_end_arr(&w);
    ops_jw_arr(&w, "l");
    ops_jw_int(&w, NULL, 1);
    ops_jw_num(&w, NULL, 0.5);
    ops_jw_bool(&w, NULL, 0);
    ops_jw_str(&w, NULL, NULL);
    ops_jw_end_arr(&w);
    ops_jw_end_obj(&w);
    assert_string_equal(ops_buf_str(&b),
                        "{\n  \"a\": \"x\",\n  \"e\": [],\n  \"l\": [\n    1,\n    0.5,\n    "
                        "false,\n    null\n  ]\n}\n");
    ops_buf_free(&b);
}

/* ---- lint ----------------------------------------------------------------- */

static sluice_config *load(const char *yaml)
{
    sluice_config_load_opts o = {0};
    o.no_env = true;
    sluice_config *cfg = NULL;
    char err[2048];
    sluice_err rc = sluice_config_load_string(yaml, strlen(yaml), "t.yaml", &o, &cfg, err, sizeof err);
    if (rc != SLUICE_OK)
        fail_msg("config did not load: %s", err);
    return cfg;
}

/* The rule ids found, "pool/rule" joined by spaces, in output order. */
static void lint_ids(const char *yaml, unsigned cpus, unsigned replicas, char *out, size_t len)
{
    sluice_config *cfg = load(yaml);
    ops_findings f = {0};
    ops_lint_opts o = {cpus, replicas, 0, 1ull << 30, "test", 0, NULL};
    ops_lint_run(cfg, &o, &f);
    out[0] = '\0';
    for (size_t i = 0; i < f.n; i++) {
        char one[128];
        snprintf(one, sizeof one, "%s%s/%s", i ? " " : "", f.v[i].pool ? f.v[i].pool : "-", f.v[i].rule);
        strncat(out, one, len - strlen(out) - 1);
        assert_non_null(f.v[i].fix);
        assert_true(strlen(f.v[i].message) > 10);
    }
    ops_findings_free(&f);
    sluice_config_free(cfg);
}

#define SERVICE_OK "service:\n  name: svc\n  drain_budget: 20s\n  orchestrator_grace: 30s\n"
/* A pool every rule passes, but for block-bounded (no submit bound). */
#define POOL_BARE(n)                                                                                         \
    "  - name: " n "\n    workers: 4\n    rationale: r\n    queue_capacity: 10\n    kind: io\n"              \
    "    fault_policy: reraise\n"
#define POOL_OK(n) POOL_BARE(n) "    submit_timeout: 100ms\n"

static void lint_clean(void **state)
{
    (void)state;
    char ids[1024];
    lint_ids(SERVICE_OK "pools:\n" POOL_OK("a") POOL_OK("b"), 4, 1, ids, sizeof ids);
    assert_string_equal(ids, "");
    /* The service section's defaults pass their own lint (drain_budget
     * 25s below orchestrator_grace 30s; runbook_base_url unset). */
    lint_ids("service:\n  name: svc\npools:\n" POOL_OK("a"), 4, 1, ids, sizeof ids);
    assert_string_equal(ids, "");
    /* A runbook_base_url that is given must be absolute. */
    lint_ids("service:\n  name: svc\n  runbook_base_url: ops/runbook.md\npools:\n" POOL_OK("a"), 4, 1, ids,
             sizeof ids);
    assert_string_equal(ids, "-/runbook-url");
    lint_ids("service:\n  name: svc\n  runbook_base_url: https://r.example/rb.md\npools:\n" POOL_OK("a"), 4,
             1, ids, sizeof ids);
    assert_string_equal(ids, "");
}

static void lint_each_rule(void **state)
{
    (void)state;
    char ids[1024];
    /* No rationale, no kind, fault guard off. */
    lint_ids(SERVICE_OK "pools:\n  - name: p\n    workers: 4\n    queue_capacity: 10\n", 4, 1, ids,
             sizeof ids);
    /* ... and a default (blocking) pool with no bound on the submit wait. */
    assert_string_equal(ids, "p/k-rationale p/kind-declared p/panic-handling p/block-bounded");
    /* Service drain budget equal to the orchestrator's grace: not below it. */
    lint_ids("service:\n  name: svc\n  drain_budget: 30s\n  orchestrator_grace: 30s\npools:\n" POOL_OK("p"),
             4, 1, ids, sizeof ids);
    assert_string_equal(ids, "-/drain-vs-grace");
    /* shutdown_grace counts too. The pool's drain_timeout is capped by the
     * budget (the service finding covers it), so the pool is not named. */
    lint_ids("service:\n  name: svc\n  drain_budget: 20s\n  shutdown_grace: 5s\n  orchestrator_grace: 25s\n"
             "pools:\n" POOL_OK("p") "    drain_timeout: 40s\n",
             4, 1, ids, sizeof ids);
    assert_string_equal(ids, "-/drain-vs-grace p/drain-timeout-vs-budget");
    /* With no budget, each pool's own timeout governs: p too long, q
     * unlimited, r fine. */
    lint_ids("service:\n  name: svc\n  drain_budget: 0s\n  shutdown_grace: 5s\n  orchestrator_grace: 25s\n"
             "pools:\n" POOL_OK("p") "    drain_timeout: 20s\n" POOL_OK("q")
                 POOL_OK("r") "    drain_timeout: 15s\n",
             4, 1, ids, sizeof ids);
    assert_string_equal(ids, "p/drain-vs-grace q/drain-vs-grace");
    /* Submit timeout vs caller deadline: missing, too long, fine, and
     * irrelevant for a rejecting pool. */
    lint_ids(SERVICE_OK "pools:\n" POOL_BARE("a") "    caller_deadline: 1s\n" POOL_BARE(
                 "b") "    caller_deadline: 1s\n    submit_timeout: "
                      "1s\n" POOL_BARE("c") "    caller_deadline: 1s\n "
                                            "   submit_timeout: "
                                            "250ms\n" POOL_BARE("d") " "
                                                                     " "
                                                                     " "
                                                                     " "
                                                                     "c"
                                                                     "a"
                                                                     "l"
                                                                     "l"
                                                                     "e"
                                                                     "r"
                                                                     "_"
                                                                     "d"
                                                                     "e"
                                                                     "a"
                                                                     "d"
                                                                     "l"
                                                                     "i"
                                                                     "n"
                                                                     "e"
                                                                     ":"
                                                                     " "
                                                                     "1"
                                                                     "s"
                                                                     "\n    overflow: reject\n",
             4, 1, ids, sizeof ids);
    assert_string_equal(ids, "a/submit-timeout-vs-deadline b/submit-timeout-vs-deadline");
    /* CPU-bound K above the CPU count. */
    lint_ids(SERVICE_OK "pools:\n  - name: c\n    workers: 9\n    rationale: cores\n    queue_capacity: 10\n"
                        "    kind: cpu\n    fault_policy: recover\n    overflow: reject\n",
             8, 1, ids, sizeof ids);
    assert_string_equal(ids, "c/cpu-bound-k");
    lint_ids(SERVICE_OK "pools:\n  - name: c\n    workers: 8\n    rationale: cores\n    queue_capacity: 10\n"
                        "    kind: cpu\n    fault_policy: recover\n    overflow: reject\n",
             8, 1, ids, sizeof ids);
    assert_string_equal(ids, "");
    /* fifo_batch wants BLOCK: every other policy is a finding, plain fifo
     * with any policy is not. */
    lint_ids(SERVICE_OK "pools:\n" POOL_OK(
                 "b") "    queue_discipline: fifo_batch\n"
                      "  - name: r\n    workers: 2\n    rationale: cores\n    queue_capacity: 64\n"
                      "    kind: cpu\n    fault_policy: recover\n    overflow: reject\n"
                      "    queue_discipline: fifo_batch\n"
                      "  - name: f\n    workers: 2\n    rationale: cores\n    queue_capacity: 64\n"
                      "    kind: cpu\n    fault_policy: recover\n    overflow: reject\n",
             8, 1, ids, sizeof ids);
    assert_string_equal(ids, "r/batch-blocks");
}

/* The rules of issue 15: unbounded blocking submits, a drain_timeout the
 * budget silently cuts, queues too big for the memory limit, and timing
 * alerts that can never fire. Each fires, and its near miss does not. */
static void lint_sharper_rules(void **state)
{
    (void)state;
    char ids[1024];
    lint_ids(SERVICE_OK "pools:\n" POOL_BARE("blk")
                 POOL_BARE("ddl") "    caller_deadline: 2s\n"
                                  "    submit_timeout: 500ms\n" POOL_BARE("rej") "    overflow: reject\n",
             4, 1, ids, sizeof ids);
    assert_string_equal(ids, "blk/block-bounded");
    /* drain_timeout above the 20s budget; equal to it is fine. */
    lint_ids(SERVICE_OK
             "pools:\n" POOL_OK("a") "    drain_timeout: 25s\n" POOL_OK("b") "    drain_timeout: 20s\n",
             4, 1, ids, sizeof ids);
    assert_string_equal(ids, "a/drain-timeout-vs-budget");
    /* 50M slots (the reference text's "just make the queue huge") against
     * the 1 GiB limit: the pool and the service total; 1M slots are fine. */
    lint_ids(SERVICE_OK "pools:\n  - name: huge\n    workers: 10\n    rationale: r\n    kind: io\n"
                        "    fault_policy: reraise\n    submit_timeout: 1s\n    queue_capacity: 50000000\n"
                        "  - name: fine\n    workers: 10\n    rationale: r\n    kind: io\n"
                        "    fault_policy: reraise\n    submit_timeout: 1s\n    queue_capacity: 1000000\n",
             4, 1, ids, sizeof ids);
    assert_string_equal(ids, "-/queue-memory huge/queue-memory");
    /* kind: memory: task_memory must be declared, and K x task_memory stay
     * under half of the 1 GiB limit (8 x 64Mi = 512Mi is exactly half: fine;
     * 9 x 64Mi is not). */
#define MEM_POOL(n, k, extra)                                                                                \
    "  - name: " n "\n    workers: " k "\n    rationale: r\n    queue_capacity: 10\n    kind: memory\n"      \
    "    fault_policy: reraise\n    submit_timeout: 100ms\n" extra
    lint_ids(SERVICE_OK "pools:\n" MEM_POOL("none", "4", "") MEM_POOL("half", "8", "    task_memory: 64Mi\n")
                 MEM_POOL("over", "9", "    task_memory: 64Mi\n")
                     MEM_POOL("bytes", "2", "    task_memory: 1000\n"),
             4, 1, ids, sizeof ids);
    assert_string_equal(ids, "none/memory-bound-k over/memory-bound-k");
    /* The key takes byte units and refuses anything else. */
    {
        sluice_config *bad = NULL;
        char err[512];
        static const char y[] =
            "pools:\n  - name: p\n    workers: 1\n    queue_capacity: 1\n    task_memory: 64MB\n";
        sluice_config_load_opts lo = {0};
        lo.no_env = true;
        assert_int_not_equal(sluice_config_load_string(y, strlen(y), "t.yaml", &lo, &bad, err, sizeof err),
                             SLUICE_OK);
        assert_non_null(strstr(err, "t.yaml:5:18: pools[0].task_memory: not a byte count"));
        sluice_config *good =
            load("pools:\n  - name: p\n    workers: 1\n    queue_capacity: 1\n    task_memory: 3Gi\n");
        assert_int_equal(sluice_config_pool_ops(&good->pools[0])->task_memory, (size_t)3 << 30);
        sluice_config_free(good);
    }
    assert_true(sluice_pool_queue_bytes(50000000) >= 50000000ull * 16);
    assert_int_equal(sluice_pool_queue_bytes(0), 0);
    assert_true(sluice_pool_queue_bytes(SIZE_MAX) == SIZE_MAX);
    /* A p99 threshold at or above the largest default bucket (6.5536s)
     * can never fire; below it, or with larger buckets, it can. Timing off
     * silences both timing alerts. */
    lint_ids(SERVICE_OK "pools:\n" POOL_OK("slow") "    alert_slow_task_p99: 10s\n" POOL_OK(
                 "wait") "    alert_submit_wait_p99: 7s\n" POOL_OK("ok") "    alert_slow_task_p99: "
                                                                         "6s\n" POOL_OK(
                                                                             "big") "    "
                                                                                    "alert_slow_"
                                                                                    "task_p99: "
                                                                                    "10s\n    "
                                                                                    "histogram_"
                                                                                    "buckets: [1, "
                                                                                    "5, "
                                                                                    "30]"
                                                                                    "\n" POOL_OK(
                                                                                        "off") "    timing: "
                                                                                               "false\n",
             4, 1, ids, sizeof ids);
    assert_string_equal(ids, "off/alert-thresholds slow/alert-thresholds wait/alert-thresholds");
}

static void lint_downstream(void **state)
{
    (void)state;
    char ids[1024];
    const char *yaml =
        SERVICE_OK "pools:\n" POOL_OK("a") "    downstream: db\n" POOL_OK("b") "    downstream: db\n" POOL_OK(
            "x") "    downstream: other\n"
                 "downstream_budget:\n  - downstream: db\n    total_limit: 20\n    shares:\n"
                 "      svc: 8\n      reports: 12\n";
    /* a + b = 8 concurrent calls: exactly the share. */
    lint_ids(yaml, 4, 1, ids, sizeof ids);
    assert_string_equal(ids, "");
    /* With 2 replicas, 16 > 8: both pools are named. */
    lint_ids(yaml, 4, 2, ids, sizeof ids);
    assert_string_equal(ids, "a/downstream-share b/downstream-share");
    /* Shares above the total; and a service with no share at all. */
    lint_ids(SERVICE_OK "pools:\n" POOL_OK(
                 "a") "    downstream: db\n"
                      "downstream_budget:\n  - downstream: db\n    total_limit: 10\n    shares:\n"
                      "      billing: 8\n      reports: 12\n",
             4, 1, ids, sizeof ids);
    assert_string_equal(ids, "-/downstream-total a/downstream-share");
}

static void lint_positions_and_order(void **state)
{
    (void)state;
    /* Pools out of name order in the file; findings come sorted, with the
     * line of the key to change. */
    sluice_config *cfg = load(SERVICE_OK "pools:\n  - name: zeta\n    workers: 4\n    queue_capacity: 10\n"
                                         "    rationale: r\n    kind: io\n    fault_policy: off\n"
                                         "    overflow: reject\n"
                                         "  - name: alpha\n    workers: 4\n    queue_capacity: 10\n"
                                         "    rationale: r\n    kind: io\n    overflow: reject\n");
    ops_findings f = {0};
    ops_lint_opts o = {4, 1, 0, 1ull << 30, "test", 0, NULL};
    ops_lint_run(cfg, &o, &f);
    assert_int_equal(f.n, 2);
    assert_string_equal(f.v[0].pool, "alpha");
    assert_string_equal(f.v[1].pool, "zeta");
    assert_string_equal(f.v[1].rule, "panic-handling");
    assert_int_equal(f.v[1].line, 11); /* fault_policy: off */
    assert_int_equal(f.v[0].line, 13); /* no fault_policy key: alpha's entry */
    ops_findings_free(&f);
    sluice_config_free(cfg);
}

/* ---- inventory ------------------------------------------------------------ */

static void scan(const char *src, char *out, size_t len)
{
    ops_sites s = {0};
    ops_inventory_scan_text("f.c", src, strlen(src), &s);
    ops_sites_sort(&s);
    out[0] = '\0';
    for (size_t i = 0; i < s.n; i++) {
        char one[160];
        snprintf(one, sizeof one, "%s%u:%s%s%s", i ? " " : "", s.v[i].line, s.v[i].kind,
                 s.v[i].pool ? "=" : "", s.v[i].pool ? s.v[i].pool : "");
        strncat(out, one, len - strlen(out) - 1);
    }
    ops_sites_free(&s);
}

static void inventory_kinds(void **state)
{
    (void)state;
    char out[1024];
    scan("#include <glib.h>\n"
         "static void f(void) {\n"
         "    GThreadPool *g = g_thread_pool_new(fn, NULL, 4, FALSE, NULL);\n"
         "    threadpool t = thpool_init(4);\n"
         "    apr_thread_pool_create(&p, 2, 8, mp);\n"
         "    uv_queue_work(loop, &req, work, after);\n"
         "    g_thread_pool_new_full(fn, NULL, free, 4, FALSE, NULL);\n"
         "}\n",
         out, sizeof out);
    assert_string_equal(out, "3:glib 4:c-thread-pool 5:apr 6:libuv 7:glib");
}

static void inventory_not_fooled(void **state)
{
    (void)state;
    char out[1024];
    scan(
        "/* thpool_init(4) in a comment */\n"
        "// g_thread_pool_new(x) in a line comment\n"
        "#define MAKE thpool_init(8)\n"
        "threadpool thpool_init(int n);\n"             /* a declaration at file scope */
        "static const char *s = \"uv_queue_work(\";\n" /* a string */
        "int f(struct x *o) {\n"
        "    o->thpool_init(3);\n" /* a member */
        "    o.uv_queue_work(1);\n"
        "    extern int apr_thread_pool_create(int);\n"    /* a declaration in a body */
        "    char c = '\"'; thpool_init /* call */ (2);\n" /* a char literal with a quote, then a real call */
        "    return 0;\n"
        "}\n",
        out, sizeof out);
    assert_string_equal(out, "10:c-thread-pool");
}

static void inventory_pthread_loops(void **state)
{
    (void)state;
    char out[1024];
    scan("void a(void) {\n"
         "    pthread_create(&t, NULL, fn, NULL);\n" /* 2: not in a loop */
         "    for (int i = 0; i < n; i++) {\n"
         "        pthread_create(&t[i], NULL, fn, NULL);\n" /* 4: braced for */
         "    }\n"
         "    for (i = 0; i < n; i++)\n"
         "        pthread_create(&t[i], NULL, fn, NULL);\n"               /* 7: single statement */
         "    pthread_create(&u, NULL, fn, NULL);\n"                      /* 8: after it: not */
         "    while (more()) if (ok) { pthread_create(&v, 0, fn, 0); }\n" /* 9: if inside while */
         "    pthread_create(&w, NULL, fn, NULL);\n"                      /* 10: not */
         "    do { pthread_create(&x, 0, fn, 0); } while (0);\n"          /* 11: do-while */
         "    while (x) { if (y) { } }\n"
         "    pthread_create(&z, NULL, fn, NULL);\n" /* 13: not */
         "}\n",
         out, sizeof out);
    assert_string_equal(out, "4:pthread-loop 7:pthread-loop 9:pthread-loop 11:pthread-loop");
}

static void inventory_sluice_names(void **state)
{
    (void)state;
    char out[1024];
    scan("int a(void) {\n"
         "    sluice_pool_config pc;\n"
         "    sluice_pool_config_init(&pc);\n"
         "    pc.name = \"push\";\n"
         "    return sluice_pool_create(&pc, &p, NULL, 0);\n" /* 5: push */
         "}\n"
         "int b(const char *n) {\n"
         "    pc.name = n;\n"
         "    return sluice_pool_create(&pc, &p, NULL, 0);\n" /* 9: unknown: b's own scope */
         "}\n"
         "int c(void) {\n"
         "    sluice_pool_config pc = {.name = \"email\", .workers = 2};\n"
         "    if (sluice_pool_create(&pc, &p, NULL, 0)) return 1;\n" /* 13: email */
         "    return 0;\n"
         "}\n",
         out, sizeof out);
    assert_string_equal(out, "5:sluice=push 9:sluice 13:sluice=email");

    ops_sites s = {0};
    const char *src = "int d(void) {\n"
                      "    sluice_config_pool_to_pool_config(&cfg->pools[i], &pc);\n"
                      "    return sluice_pool_create(&pc, &p, NULL, 0);\n"
                      "}\n";
    ops_inventory_scan_text("d.c", src, strlen(src), &s);
    assert_int_equal(s.n, 1);
    assert_true(s.v[0].from_config);
    ops_sites_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(durations),
        cmocka_unit_test(quoting),
        cmocka_unit_test(json_writer),
        cmocka_unit_test(lint_clean),
        cmocka_unit_test(lint_each_rule),
        cmocka_unit_test(lint_downstream),
        cmocka_unit_test(lint_sharper_rules),
        cmocka_unit_test(lint_positions_and_order),
        cmocka_unit_test(inventory_kinds),
        cmocka_unit_test(inventory_not_fooled),
        cmocka_unit_test(inventory_pthread_loops),
        cmocka_unit_test(inventory_sluice_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * tests/config/test_config.c - sluice.yaml: parsing, validation messages,
 * environment overrides, the writer's round trip, and reload.
 *
 * Every error test checks the exact "file:line:col: path: what" text, since
 * the message is the interface an operator sees.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sluice/config.h"
#include "sluice/pool.h"

static const sluice_config_load_opts NO_ENV = {.no_env = true};

static sluice_err load(const char *text, const sluice_config_load_opts *opts, sluice_config **out, char *err,
                       size_t len)
{
    return sluice_config_load_string(text, strlen(text), "sluice.yaml", opts ? opts : &NO_ENV, out, err, len);
}

static const char GOOD[] = "service:\n"
                           "  name: notifications\n"
                           "  listen: 127.0.0.1:9999\n"
                           "  drain-budget: 20s\n"
                           "  shutdown_grace: 1500ms\n"
                           "  runbook_base_url: https://runbooks.example/sluice\n"
                           "pools:\n"
                           "  - name: push\n"
                           "    workers: 1000\n"
                           "    rationale: APNS allows 1000 concurrent streams\n"
                           "    queue_capacity: 5000\n"
                           "    submit_timeout: 250ms\n"
                           "    idle_expiry: 5m\n"
                           "    drain_timeout: 10s\n"
                           "    histogram_buckets: [0.001, 5ms, 0.25, 1s]\n"
                           "    timing_sample_every: 4\n"
                           "    kind: io\n"
                           "    downstream: apns\n"
                           "    caller_deadline: 2s\n"
                           "    alert_slow_task_p99: 500ms\n"
                           "  - name: sms\n"
                           "    workers: 100\n"
                           "    min_workers: 10\n"
                           "    queue_capacity: 1000\n"
                           "    overflow: reject\n"
                           "    prewarm: true\n"
                           "    fault_policy: recover\n"
                           "downstream_budget:\n"
                           "  - downstream: apns\n"
                           "    total_limit: 1500\n"
                           "    shares:\n"
                           "      notifications: 1000\n"
                           "      marketing: 500\n";

static void test_good_file(void **state)
{
    (void)state;
    sluice_config *c = NULL;
    char err[2048];
    assert_int_equal(load(GOOD, NULL, &c, err, sizeof err), SLUICE_OK);
    assert_string_equal(err, "");
    assert_string_equal(c->service.name, "notifications");
    assert_string_equal(c->service.listen, "127.0.0.1:9999");
    assert_int_equal(c->service.drain_budget_ns, 20 * SLUICE_NS_PER_SEC);
    assert_int_equal(c->service.shutdown_grace_ns, 1500 * SLUICE_NS_PER_MS);
    assert_int_equal(c->service.orchestrator_grace_ns, 30 * SLUICE_NS_PER_SEC);
    assert_int_equal(c->service.saturation_threshold_ns, 30 * SLUICE_NS_PER_SEC); /* default */
    assert_string_equal(c->service.runbook_base_url, "https://runbooks.example/sluice");
    assert_int_equal(c->pool_count, 2);
    const sluice_config_pool *p = &c->pools[0];
    assert_string_equal(p->name, "push");
    assert_int_equal(p->workers, 1000);
    assert_string_equal(p->rationale, "APNS allows 1000 concurrent streams");
    assert_int_equal(p->queue_capacity, 5000);
    assert_int_equal(p->overflow, SLUICE_OVERFLOW_BLOCK);
    assert_int_equal(p->submit_timeout_ns, 250 * SLUICE_NS_PER_MS);
    assert_int_equal(p->idle_expiry_ns, 300 * SLUICE_NS_PER_SEC);
    assert_int_equal(p->drain_timeout_ns, 10 * SLUICE_NS_PER_SEC);
    assert_int_equal(p->histogram_bucket_count, 4);
    assert_true(p->histogram_buckets[0] == 0.001);
    assert_true(p->histogram_buckets[1] == 0.005);
    assert_true(p->histogram_buckets[3] == 1.0);
    assert_int_equal(p->timing_sample_every, 4);
    assert_int_equal(sluice_config_pool_ops(p)->kind, SLUICE_POOL_KIND_IO);
    assert_string_equal(p->downstream, "apns");
    assert_int_equal(p->caller_deadline_ns, 2 * SLUICE_NS_PER_SEC);
    assert_int_equal(sluice_config_pool_ops(p)->alert_slow_task_p99_ns, 500 * SLUICE_NS_PER_MS);
    assert_true(sluice_config_pool_has(p, SLUICE_PK_RATIONALE));
    assert_false(sluice_config_pool_has(p, SLUICE_PK_MIN_WORKERS));
    assert_int_equal(p->pos[SLUICE_PK_WORKERS].line, 9);
    assert_int_equal(p->pos[SLUICE_PK_WORKERS].column, 14);
    const sluice_config_pool *s = sluice_config_find_pool(c, "sms");
    assert_non_null(s);
    assert_int_equal(s->min_workers, 10);
    assert_int_equal(s->overflow, SLUICE_OVERFLOW_REJECT);
    assert_true(s->prewarm);
    assert_int_equal(s->fault_policy, SLUICE_FAULT_RECOVER);
    assert_null(s->rationale);
    assert_int_equal(s->timing_sample_every, SLUICE_TIMING_SAMPLE_AUTO);
    assert_null(sluice_config_find_pool(c, "email"));
    assert_int_equal(c->downstream_count, 1);
    assert_string_equal(c->downstreams[0].name, "apns");
    assert_int_equal(c->downstreams[0].total_limit, 1500);
    assert_int_equal(c->downstreams[0].share_count, 2);
    assert_string_equal(c->downstreams[0].shares[1].service, "marketing");
    assert_int_equal(c->downstreams[0].shares[1].limit, 500);

    sluice_pool_config pc;
    sluice_config_pool_to_pool_config(s, &pc);
    assert_string_equal(pc.name, "sms");
    assert_int_equal(pc.workers, 100);
    assert_int_equal(pc.min_workers, 10);
    assert_int_equal(pc.queue_capacity, 1000);
    assert_int_equal(pc.overflow, SLUICE_OVERFLOW_REJECT);
    assert_int_equal(pc.fault_mode, SLUICE_FAULT_RECOVER);
    assert_true(pc.prewarm);
    assert_int_equal(sluice_config_pool_drain_timeout(c, s), 20 * SLUICE_NS_PER_SEC);
    assert_int_equal(sluice_config_pool_drain_timeout(c, p), 10 * SLUICE_NS_PER_SEC);
    sluice_config_free(c);
    sluice_config_free(NULL);
}

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t ns;
    } good[] = {
        {"0", 0},
        {"0s", 0},
        {"1ns", 1},
        {"250ms", 250000000},
        {"30s", 30000000000ull},
        {"5m", 300000000000ull},
        {"1h", 3600000000000ull},
        {"1.5s", 1500000000},
        {"2us", 2000},
        {"0.25ms", 250000},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t v = 7;
        assert_int_equal(sluice_config_parse_duration(good[i].text, &v), SLUICE_OK);
        assert_int_equal(v, good[i].ns);
    }
    static const char *const bad[] = {
        "", "5", "-1s", "1 s", "1sec", "ms", ".5s", "1e3s", "5d", "99999999999999999999s", "30000000h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 7;
        assert_int_equal(sluice_config_parse_duration(bad[i], &v), SLUICE_EINVAL);
        assert_int_equal(v, 7);
    }
    char buf[32];
    assert_string_equal(sluice_config_format_duration(0, buf, sizeof buf), "0s");
    assert_string_equal(sluice_config_format_duration(250000000, buf, sizeof buf), "250ms");
    assert_string_equal(sluice_config_format_duration(1500000000, buf, sizeof buf), "1500ms");
    assert_string_equal(sluice_config_format_duration(300000000000ull, buf, sizeof buf), "5m");
    assert_string_equal(sluice_config_format_duration(1001, buf, sizeof buf), "1001ns");
    assert_string_equal(sluice_config_env_name("push-eu.1", buf, sizeof buf), "SLUICE_POOL_PUSH_EU_1_");
}

/* One bad document, one expected message (the whole errbuf). */
static void expect_error(const char *text, sluice_err code, const char *message)
{
    sluice_config *c = (sluice_config *)0x1;
    char err[2048];
    sluice_err r = load(text, NULL, &c, err, sizeof err);
    if (r != code || strcmp(err, message) != 0) {
        print_error("got %d \"%s\"\nwant %d \"%s\"\n", r, err, code, message);
        fail();
    }
    assert_ptr_equal(c, (sluice_config *)0x1); /* untouched */
}

/* The "(known: ...)" list of an unknown-key message, from the schema: the
 * library's rows of `section` (pool rows without `name` for the
 * environment), then the default extensions' rows, so adding a key does
 * not mean editing every expected message. */
static const char *known_keys(sluice_config_section section, bool skip_name, const char *tail)
{
    static char buf[4096];
    size_t n = 0;
    buf[0] = '\0';
    unsigned count = 0;
    const sluice_config_key *rows = sluice_config_schema(section, &count);
    for (unsigned i = 0; i < count; i++) {
        if (skip_name && strcmp(rows[i].name, "name") == 0) {
            continue;
        }
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", n ? ", " : "", rows[i].name);
    }
    const sluice_config_extension *x[] = {&sluice_config_ext_ops, &sluice_config_ext_demo,
                                          &sluice_config_ext_ops_service};
    {
        for (size_t e = 0; e < 3; e++) {
            if (x[e]->section != section) {
                continue;
            }
            for (unsigned i = 0; i < x[e]->key_count; i++) {
                n += (size_t)snprintf(buf + n, sizeof buf - n, ", %s", x[e]->keys[i].name);
            }
        }
    }
    snprintf(buf + n, sizeof buf - n, "%s", tail);
    return buf;
}

static char *cat3(const char *a, const char *b, const char *c)
{
    static char out[3][8192];
    static int next;
    char *o = out[next++ % 3];
    snprintf(o, sizeof out[0], "%s%s%s", a, b, c);
    return o;
}

#define POOL0 "pools:\n  - name: push\n    workers: 10\n    queue_capacity: 100\n"

static void test_validation_messages(void **state)
{
    (void)state;
    expect_error(POOL0 "  - name: sms\n    workers: 0\n    queue_capacity: 10\n", SLUICE_EINVAL,
                 "sluice.yaml:6:14: pools[1].workers: must be > 0, got 0");
    expect_error(POOL0 "    readiness_weight: 1.5\n", SLUICE_EINVAL,
                 "sluice.yaml:5:23: pools[0].readiness_weight: must be a number from 0 to 1, got \"1.5\"");
    expect_error(POOL0 "    readiness_weight: nan\n", SLUICE_EINVAL,
                 "sluice.yaml:5:23: pools[0].readiness_weight: must be a number from 0 to 1, got \"nan\"");
    expect_error(POOL0 "  - name: sms\n    workers: -3\n    queue_capacity: 10\n", SLUICE_EINVAL,
                 "sluice.yaml:6:14: pools[1].workers: must be > 0, got -3");
    expect_error(POOL0 "    wrokers: 5\n", SLUICE_EINVAL,
                 cat3("sluice.yaml:5:5: pools[0].wrokers: unknown key (known: ",
                      known_keys(SLUICE_CONFIG_SECTION_POOL, false, ")"), ""));
    expect_error(POOL0 "    workers: 11\n", SLUICE_EINVAL,
                 "sluice.yaml:5:5: pools[0].workers: duplicate key (first at line 3)");
    expect_error(POOL0 "  - name: push\n    workers: 1\n    queue_capacity: 1\n", SLUICE_EINVAL,
                 "sluice.yaml:5:11: pools[1].name: duplicate pool name \"push\" (also pools[0])");
    expect_error(
        POOL0 "  - name: PUSH\n    workers: 1\n    queue_capacity: 1\n", SLUICE_EINVAL,
        "sluice.yaml:5:11: pools[1].name: \"PUSH\" and pools[0] \"push\" share the environment prefix "
        "SLUICE_POOL_PUSH_; rename one");
    expect_error(
        "pools:\n  - name: push\n    workers: 10\n    queue_capacity: unbounded\n", SLUICE_EINVAL,
        "sluice.yaml:4:21: pools[0].queue_capacity: must be > 0 (there is no unbounded queue; a queue "
        "without a bound turns a burst into an out-of-memory kill), got unbounded");
    expect_error(
        "pools:\n  - name: push\n    workers: 10\n    queue_capacity: 0\n", SLUICE_EINVAL,
        "sluice.yaml:4:21: pools[0].queue_capacity: must be > 0 (there is no unbounded queue), got 0");
    expect_error("pools:\n  - name: push\n    workers: 10\n", SLUICE_EINVAL,
                 "sluice.yaml:2:5: pools[0].queue_capacity: required (there is no unbounded queue)");
    expect_error(
        POOL0 "    submit_timeout: 250\n", SLUICE_EINVAL,
        "sluice.yaml:5:21: pools[0].submit_timeout: not a duration (a number with a unit: ns, us, ms, s, "
        "m, h; for example 250ms), got \"250\"");
    expect_error(
        POOL0 "    overflow: spill\n", SLUICE_EINVAL,
        "sluice.yaml:5:15: pools[0].overflow: must be one of block, reject, caller_runs, drop_oldest, got "
        "\"spill\"");
    expect_error(POOL0 "    min_workers: 11\n", SLUICE_EINVAL,
                 "sluice.yaml:5:18: pools[0].min_workers: must be <= workers (10), got 11");
    expect_error(
        POOL0 "    histogram_buckets: [0.1, 0.05]\n", SLUICE_EINVAL,
        "sluice.yaml:5:24: pools[0].histogram_buckets[1]: must be greater than the bound before it (0.1), "
        "got 0.05");
    expect_error(POOL0 "    name2: x\n    prewarm: maybe\n", SLUICE_EINVAL,
                 cat3("sluice.yaml:5:5: pools[0].name2: unknown key (known: ",
                      known_keys(SLUICE_CONFIG_SECTION_POOL, false, ")\n"),
                      "sluice.yaml:6:14: pools[0].prewarm: not a boolean (true or false), got \"maybe\""));
    expect_error(
        "service:\n  listen: nowhere\n" POOL0, SLUICE_EINVAL,
        "sluice.yaml:2:11: service.listen: must be host:port with a port in 0..65535, got \"nowhere\"");
    expect_error("servcie:\n  name: x\n" POOL0, SLUICE_EINVAL,
                 "sluice.yaml:1:1: servcie: unknown top-level key (known: service, pools, downstream_budget, "
                 "cluster)");
    expect_error("pools:\n  - name: push\n    workers: [1, 2]\n    queue_capacity: 1\n", SLUICE_EINVAL,
                 "sluice.yaml:3:14: pools[0].workers: must be a single value, got a list");
    expect_error("pools: {}\n", SLUICE_EINVAL,
                 "sluice.yaml:1:8: pools: must be a list of pools (\"- name: ...\" items), got a mapping");
    expect_error("", SLUICE_EINVAL, "sluice.yaml: the file is empty: it needs at least a pools: list");
    expect_error("service:\n  name: x\n", SLUICE_EINVAL, "sluice.yaml: pools: at least one pool is required");
    expect_error(
        "pools:\n  - name: [push\n", SLUICE_EPARSE,
        "sluice.yaml:3:1: not valid YAML: did not find expected ',' or ']' while parsing a flow sequence");
    expect_error(POOL0 "---\n" POOL0, SLUICE_EINVAL,
                 "sluice.yaml:6:1: a second YAML document: the file must hold exactly one");
    expect_error(
        "pools:\n  - name: \"bad name\"\n    workers: 1\n    queue_capacity: 1\n", SLUICE_EINVAL,
        "sluice.yaml:2:11: pools[0].name: must be 1..48 characters of [A-Za-z0-9_.:-], got \"bad name\"");
    expect_error("pools:\n  - name: p\n    workers: 1\n    queue_capacity: 1\n    overflow: reject\n"
                 "    submit_timeout: 1s\n",
                 SLUICE_EINVAL,
                 "sluice.yaml:6:21: pools[0].submit_timeout: applies only to overflow: block (this pool has "
                 "reject); remove it");
}

static void test_file_errors(void **state)
{
    (void)state;
    sluice_config *c = NULL;
    char err[512];
    assert_int_equal(sluice_config_load_file("/nonexistent/sluice.yaml", &NO_ENV, &c, err, sizeof err),
                     SLUICE_EIO);
    assert_string_equal(err, "/nonexistent/sluice.yaml: cannot open: No such file or directory");
    assert_null(c);
    char path[] = "/tmp/sluice-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(GOOD, f);
    fclose(f);
    assert_int_equal(sluice_config_load_file(path, &NO_ENV, &c, err, sizeof err), SLUICE_OK);
    assert_string_equal(c->source, path);
    assert_string_equal(c->pools[0].pos[SLUICE_PK_NAME].file, path);
    sluice_config_free(c);
    unlink(path);
}

static void test_env_overrides(void **state)
{
    (void)state;
    const char *env[] = {"PATH=/bin",
                         "SLUICE_POOL_PUSH_WORKERS=200",
                         "SLUICE_POOL_SMS_IDLE_EXPIRY=1s",
                         "SLUICE_POOL_SMS_HISTOGRAM_BUCKETS=0.01, 0.1,1s",
                         "SLUICE_SERVICE_LISTEN=0.0.0.0:1234",
                         "SLUICE_STRESS_SCALE=3",
                         NULL};
    sluice_config_load_opts o = {.envp = env};
    sluice_config *c = NULL;
    char err[2048];
    assert_int_equal(load(GOOD, &o, &c, err, sizeof err), SLUICE_OK);
    assert_int_equal(c->pools[0].workers, 200);
    assert_string_equal(c->pools[0].pos[SLUICE_PK_WORKERS].env, "SLUICE_POOL_PUSH_WORKERS");
    assert_int_equal(c->pools[1].idle_expiry_ns, SLUICE_NS_PER_SEC);
    assert_true(sluice_config_pool_has(&c->pools[1], SLUICE_PK_IDLE_EXPIRY));
    assert_int_equal(c->pools[1].histogram_bucket_count, 3);
    assert_true(c->pools[1].histogram_buckets[2] == 1.0);
    assert_string_equal(c->service.listen, "0.0.0.0:1234");
    sluice_config_free(c);

    /* service.saturation_threshold: a duration > 0. */
    const char *sat[] = {"SLUICE_SERVICE_SATURATION_THRESHOLD=45s", NULL};
    o.envp = sat;
    assert_int_equal(load(GOOD, &o, &c, err, sizeof err), SLUICE_OK);
    assert_int_equal(c->service.saturation_threshold_ns, 45 * SLUICE_NS_PER_SEC);
    sluice_config_free(c);
    const char *sat0[] = {"SLUICE_SERVICE_SATURATION_THRESHOLD=0s", NULL};
    o.envp = sat0;
    assert_int_equal(load(GOOD, &o, &c, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err,
                        "env SLUICE_SERVICE_SATURATION_THRESHOLD: service.saturation_threshold: must be > 0 "
                        "(how long a pool may stay saturated before /health/ready turns 503), got \"0s\"");

    /* timing_sample_every takes "auto" (the default) or a number. */
    const char *autos[] = {"SLUICE_POOL_PUSH_TIMING_SAMPLE_EVERY=auto", NULL};
    o.envp = autos;
    assert_int_equal(load(GOOD, &o, &c, err, sizeof err), SLUICE_OK);
    assert_int_equal(c->pools[0].timing_sample_every, SLUICE_TIMING_SAMPLE_AUTO);
    sluice_config_free(c);
    const char *often[] = {"SLUICE_POOL_PUSH_TIMING_SAMPLE_EVERY=often", NULL};
    o.envp = often;
    assert_int_equal(load(GOOD, &o, &c, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "env SLUICE_POOL_PUSH_TIMING_SAMPLE_EVERY: pools[0].timing_sample_every: not an "
                             "integer in 0..4294967295 or \"auto\", got \"often\"");

    /* A bad value is reported against the variable, after validation. */
    const char *bad[] = {"SLUICE_POOL_PUSH_WORKERS=0", NULL};
    o.envp = bad;
    c = (sluice_config *)0x1;
    assert_int_equal(load(GOOD, &o, &c, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "env SLUICE_POOL_PUSH_WORKERS: pools[0].workers: must be > 0, got 0");
    const char *typo[] = {"SLUICE_POOL_PUSH_WORKRES=5", "SLUICE_POOL_EMAIL_WORKERS=5",
                          "SLUICE_POOL_SMS_WORKERS=lots", "SLUICE_SERVICE_PORT=1", NULL};
    o.envp = typo;
    assert_int_equal(load(GOOD, &o, &c, err, sizeof err), SLUICE_EINVAL);
    char want[8192];
    snprintf(want, sizeof want,
             "env SLUICE_POOL_PUSH_WORKRES: SLUICE_POOL_PUSH_WORKRES: unknown pool key (known: %s"
             "env SLUICE_POOL_EMAIL_WORKERS: SLUICE_POOL_EMAIL_WORKERS: names no pool in sluice.yaml "
             "(SLUICE_POOL_<NAME>_<KEY>, NAME upper-cased)\n"
             "env SLUICE_POOL_SMS_WORKERS: pools[1].workers: not an integer in 0..4294967295, got \"lots\"\n",
             known_keys(SLUICE_CONFIG_SECTION_POOL, true, ", upper-cased)\n"));
    snprintf(want + strlen(want), sizeof want - strlen(want),
             "env SLUICE_SERVICE_PORT: service.port: unknown key (known: %s",
             known_keys(SLUICE_CONFIG_SECTION_SERVICE, false, ")"));
    assert_string_equal(err, want);
    assert_ptr_equal(c, (sluice_config *)0x1);
}

static char *write_to_string(const sluice_config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(sluice_config_write(c, f), SLUICE_OK);
    fclose(f);
    return buf;
}

/* Overload queue management keys (issue 14): parse, bounds, cross-key
 * checks, environment, the pool config they become, and write. */
static void test_overload_keys(void **state)
{
    (void)state;
    sluice_config *c = NULL;
    char err[2048];
    assert_int_equal(load(POOL0, NULL, &c, err, sizeof err), SLUICE_OK);
    assert_int_equal(c->pools[0].overload, SLUICE_OVERLOAD_OFF);
    assert_int_equal(c->pools[0].overload_target_ns, 5 * SLUICE_NS_PER_MS);
    assert_int_equal(c->pools[0].overload_interval_ns, 100 * SLUICE_NS_PER_MS);
    assert_int_equal(c->pools[0].overload_slough_ns, 0);
    sluice_config_free(c);

    const char *file =
        POOL0 "    overload: codel+lifo\n    overload_target: 2ms\n    overload_interval: 50ms\n"
              "    overload_slough: 20ms\n";
    assert_int_equal(load(file, NULL, &c, err, sizeof err), SLUICE_OK);
    const sluice_config_pool *p = &c->pools[0];
    assert_int_equal(p->overload, SLUICE_OVERLOAD_CODEL_LIFO);
    sluice_pool_config pc;
    sluice_config_pool_to_pool_config(p, &pc);
    assert_int_equal(pc.overload, SLUICE_OVERLOAD_CODEL_LIFO);
    assert_int_equal(pc.overload_target_ns, 2 * SLUICE_NS_PER_MS);
    assert_int_equal(pc.overload_interval_ns, 50 * SLUICE_NS_PER_MS);
    assert_int_equal(pc.overload_slough_ns, 20 * SLUICE_NS_PER_MS);
    /* The pool takes what the config accepted. */
    sluice_pool *pool = NULL;
    assert_int_equal(sluice_pool_create(&pc, &pool, err, sizeof err), SLUICE_OK);
    sluice_pool_destroy(pool);
    /* --print-config writes it back, and it reads the same. */
    char *a = write_to_string(c);
    assert_non_null(strstr(a, "overload: codel+lifo\n"));
    sluice_config *c2 = NULL;
    assert_int_equal(load(a, NULL, &c2, err, sizeof err), SLUICE_OK);
    assert_int_equal(c2->pools[0].overload_slough_ns, 20 * SLUICE_NS_PER_MS);
    assert_int_equal(c2->pools[0].overload_interval_ns, 50 * SLUICE_NS_PER_MS);
    free(a);
    sluice_config_free(c2);
    sluice_config_free(c);

    /* An environment override, by the same rules as a file value. */
    const char *env[] = {"SLUICE_POOL_PUSH_OVERLOAD=lifo", "SLUICE_POOL_PUSH_OVERLOAD_TARGET=1ms", NULL};
    sluice_config_load_opts o = {0};
    o.envp = env;
    assert_int_equal(load(POOL0, &o, &c, err, sizeof err), SLUICE_OK);
    assert_int_equal(c->pools[0].overload, SLUICE_OVERLOAD_LIFO);
    assert_int_equal(c->pools[0].overload_target_ns, SLUICE_NS_PER_MS);
    sluice_config_free(c);

    expect_error(
        POOL0 "    overload: red\n", SLUICE_EINVAL,
        "sluice.yaml:5:15: pools[0].overload: must be one of off, codel, lifo, codel+lifo, got \"red\"");
    expect_error(POOL0 "    overload_target: 0s\n", SLUICE_EINVAL,
                 "sluice.yaml:5:22: pools[0].overload_target: must be > 0 (every wait would count as too "
                 "long), got \"0s\"");
    expect_error(
        POOL0 "    overload: codel\n    overload_target: 200ms\n", SLUICE_EINVAL,
        "sluice.yaml:6:22: pools[0].overload_target: must be <= overload_interval (100 ms), got 200 ms "
        "(CoDel's target is a small part of its interval: 5ms of 100ms)");
    expect_error(
        POOL0 "    queue_discipline: sharded\n    overload: codel+lifo\n", SLUICE_EINVAL,
        "sluice.yaml:6:15: pools[0].overload: codel+lifo needs a queue that can serve its newest task; "
        "queue_discipline: sharded serves shard by shard (codel composes with it; so does fair)");
    /* The sharded queue: parsed, written back, and CoDel composes with it. */
    assert_int_equal(
        load(POOL0 "    queue_discipline: sharded\n    overload: codel\n", NULL, &c, err, sizeof err),
        SLUICE_OK);
    assert_int_equal(c->pools[0].queue_discipline, SLUICE_QUEUE_SHARDED);
    a = write_to_string(c);
    assert_non_null(strstr(a, "queue_discipline: sharded\n"));
    free(a);
    sluice_config_free(c);
    /* LIFO composes with the fair queue (it serves the newest task of the
     * tenant whose turn it is): accepted, and the pool takes it. */
    assert_int_equal(
        load(POOL0 "    queue_discipline: fair\n    overload: codel+lifo\n", NULL, &c, err, sizeof err),
        SLUICE_OK);
    sluice_config_pool_to_pool_config(&c->pools[0], &pc);
    assert_int_equal(pc.queue_discipline, SLUICE_QUEUE_FAIR);
    assert_int_equal(pc.overload, SLUICE_OVERLOAD_CODEL_LIFO);
    assert_int_equal(sluice_pool_create(&pc, &pool, err, sizeof err), SLUICE_OK);
    sluice_pool_destroy(pool);
    sluice_config_free(c);
    expect_error(
        POOL0 "    overload: codel\n    overload_slough: 1ms\n", SLUICE_EINVAL,
        "sluice.yaml:6:22: pools[0].overload_slough: must be >= overload_target (5 ms), got 1 ms (no "
        "task below the target is shed)");
}

static void test_write_round_trip(void **state)
{
    (void)state;
    sluice_config *c = NULL, *c2 = NULL;
    char err[2048];
    assert_int_equal(load(GOOD, NULL, &c, err, sizeof err), SLUICE_OK);
    char *a = write_to_string(c);
    assert_int_equal(load(a, NULL, &c2, err, sizeof err), SLUICE_OK);
    char *b = write_to_string(c2);
    assert_string_equal(a, b);
    assert_int_equal(c2->pools[0].submit_timeout_ns, c->pools[0].submit_timeout_ns);
    assert_true(c2->pools[0].histogram_buckets[1] == c->pools[0].histogram_buckets[1]);
    assert_string_equal(c2->pools[0].rationale, c->pools[0].rationale);
    free(a);
    free(b);
    sluice_config_free(c);
    sluice_config_free(c2);
}

/* ---- reload --------------------------------------------------------- */

typedef struct log_buf {
    char text[4096];
    size_t len;
} log_buf;

static void log_line(void *user, const char *line)
{
    log_buf *lb = user;
    int n = snprintf(lb->text + lb->len, sizeof lb->text - lb->len, "%s\n", line);
    if (n > 0 && (size_t)n < sizeof lb->text - lb->len) {
        lb->len += (size_t)n;
    }
}

static const char RELOAD_A[] =
    "pools:\n"
    "  - name: push\n    workers: 4\n    queue_capacity: 16\n    submit_timeout: 1s\n"
    "  - name: sms\n    workers: 2\n    min_workers: 2\n    queue_capacity: 8\n";

static void test_apply_live(void **state)
{
    (void)state;
    sluice_config *cur = NULL, *next = NULL;
    char err[2048];
    assert_int_equal(load(RELOAD_A, NULL, &cur, err, sizeof err), SLUICE_OK);
    sluice_pool *pools[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        sluice_pool_config pc;
        sluice_config_pool_to_pool_config(&cur->pools[i], &pc);
        assert_int_equal(sluice_pool_create(&pc, &pools[i], err, sizeof err), SLUICE_OK);
    }
    /* K up, timeout down, queue_capacity changed (restart-only), a pool added. */
    const char *b = "pools:\n"
                    "  - name: push\n    workers: 9\n    queue_capacity: 32\n    submit_timeout: 100ms\n"
                    "    rationale: more\n"
                    "  - name: sms\n    workers: 3\n    min_workers: 2\n    queue_capacity: 8\n"
                    "  - name: email\n    workers: 1\n    queue_capacity: 1\n";
    assert_int_equal(load(b, NULL, &next, err, sizeof err), SLUICE_OK);
    log_buf lb = {.len = 0};
    sluice_config *before = cur;
    assert_int_equal(sluice_config_apply(&cur, next, pools, log_line, &lb, err, sizeof err), SLUICE_OK);
    assert_ptr_not_equal(cur, before); /* replaced */
    assert_string_equal(lb.text,
                        "pool push: workers 4 -> 9 (applied)\n"
                        "pool push: submit_timeout 1s -> 100ms (applied)\n"
                        "pool push: declarations (rationale, kind, downstream, alerts, demo) updated\n"
                        "pool push: queue_capacity 16 -> 32 not applied: needs a restart\n"
                        "pool sms: workers 2 -> 3 (applied)\n"
                        "pool email: new in the file; not applied: adding a pool needs a restart\n");
    assert_int_equal(cur->pool_count, 2);
    assert_int_equal(cur->pools[0].workers, 9);
    assert_int_equal(cur->pools[0].queue_capacity, 16); /* the running value */
    assert_int_equal(cur->pools[0].submit_timeout_ns, 100 * SLUICE_NS_PER_MS);
    assert_string_equal(cur->pools[0].rationale, "more");
    sluice_pool_stats st;
    sluice_pool_stats_get(pools[0], &st);
    assert_int_equal(st.capacity, 9);
    sluice_pool_config live;
    sluice_pool_config_get(pools[0], &live);
    assert_int_equal(live.submit_timeout_ns, 100 * SLUICE_NS_PER_MS);
    sluice_config_free(next);

    /* All-or-nothing: K below the running min_workers refuses the whole
     * reload, including the valid push change. */
    const char *c3 = "pools:\n"
                     "  - name: push\n    workers: 5\n    queue_capacity: 16\n    submit_timeout: 100ms\n"
                     "  - name: sms\n    workers: 1\n    min_workers: 1\n    queue_capacity: 8\n";
    assert_int_equal(load(c3, NULL, &next, err, sizeof err), SLUICE_OK);
    lb.len = 0;
    lb.text[0] = '\0';
    before = cur;
    assert_int_equal(sluice_config_apply(&cur, next, pools, log_line, &lb, err, sizeof err), SLUICE_EINVAL);
    assert_ptr_equal(cur, before);
    assert_string_equal(
        err, "sluice.yaml:7:14: pool sms: workers 1 cannot be applied: the running min_workers is 2 "
             "(a min_workers change needs a restart)");
    sluice_pool_stats_get(pools[0], &st);
    assert_int_equal(st.capacity, 9);
    assert_int_equal(cur->pools[0].workers, 9);
    sluice_config_free(next);
    for (int i = 0; i < 2; i++) {
        sluice_pool_destroy(pools[i]);
    }
    sluice_config_free(cur);
}

static void test_reload_file(void **state)
{
    (void)state;
    char path[] = "/tmp/sluice-reload-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(RELOAD_A, f);
    fclose(f);
    sluice_config *cur = NULL;
    char err[2048];
    assert_int_equal(sluice_config_load_file(path, &NO_ENV, &cur, err, sizeof err), SLUICE_OK);
    /* A bad new file: refused, the running config stays. */
    f = fopen(path, "w");
    fputs("pools:\n  - name: push\n    workers: 0\n    queue_capacity: 16\n", f);
    fclose(f);
    log_buf lb = {.len = 0};
    sluice_config *before = cur;
    assert_int_equal(sluice_config_reload(&cur, path, &NO_ENV, NULL, log_line, &lb, err, sizeof err),
                     SLUICE_EINVAL);
    assert_ptr_equal(cur, before);
    assert_int_equal(cur->pools[0].workers, 4);
    char want[512];
    snprintf(want, sizeof want, "%s:3:14: pools[0].workers: must be > 0, got 0", path);
    assert_string_equal(err, want);
    snprintf(want, sizeof want,
             "reload refused, running config unchanged: %s:3:14: pools[0].workers: must be > 0, got 0\n",
             path);
    assert_string_equal(lb.text, want);
    /* A good one: applied (no pools bound: only the config moves). */
    f = fopen(path, "w");
    fputs(RELOAD_A, f);
    fputs("    idle_expiry: 30s\n", f);
    fclose(f);
    lb.len = 0;
    lb.text[0] = '\0';
    assert_int_equal(sluice_config_reload(&cur, path, &NO_ENV, NULL, log_line, &lb, err, sizeof err),
                     SLUICE_OK);
    assert_string_equal(lb.text, "pool sms: idle_expiry 0s -> 30s (applied)\n");
    assert_int_equal(cur->pools[1].idle_expiry_ns, 30 * SLUICE_NS_PER_SEC);
    lb.len = 0;
    lb.text[0] = '\0';
    assert_int_equal(sluice_config_reload(&cur, path, &NO_ENV, NULL, log_line, &lb, err, sizeof err),
                     SLUICE_OK);
    assert_string_equal(lb.text, "reload: no change\n");
    sluice_config_free(cur);
    unlink(path);
}

/* A reload whose every change waits for a restart applies nothing, and its
 * last line says so: it said "reload: no change" right after the "needs a
 * restart" lines, as if the file matched what runs. */
static void test_reload_restart_only_summary(void **state)
{
    (void)state;
    sluice_config *cur = NULL, *next = NULL;
    char err[2048];
    assert_int_equal(load(RELOAD_A, NULL, &cur, err, sizeof err), SLUICE_OK);
    log_buf lb = {.len = 0};
    /* One restart-only key. */
    const char *one = "pools:\n"
                      "  - name: push\n    workers: 4\n    queue_capacity: 32\n    submit_timeout: 1s\n"
                      "  - name: sms\n    workers: 2\n    min_workers: 2\n    queue_capacity: 8\n";
    assert_int_equal(load(one, NULL, &next, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_config_apply(&cur, next, NULL, log_line, &lb, err, sizeof err), SLUICE_OK);
    assert_string_equal(lb.text, "pool push: queue_capacity 16 -> 32 not applied: needs a restart\n"
                                 "reload: no change applied; 1 change needs a restart\n");
    assert_int_equal(cur->pools[0].queue_capacity, 16);
    sluice_config_free(next);
    /* Three: a key, a pool removed, a pool added (each needs a restart). */
    const char *three = "pools:\n"
                        "  - name: push\n    workers: 4\n    queue_capacity: 64\n    submit_timeout: 1s\n"
                        "  - name: email\n    workers: 1\n    queue_capacity: 1\n";
    assert_int_equal(load(three, NULL, &next, err, sizeof err), SLUICE_OK);
    lb.len = 0;
    lb.text[0] = '\0';
    assert_int_equal(sluice_config_apply(&cur, next, NULL, log_line, &lb, err, sizeof err), SLUICE_OK);
    assert_string_equal(lb.text,
                        "pool push: queue_capacity 16 -> 64 not applied: needs a restart\n"
                        "pool sms: removed from the file; not applied: removing a pool needs a restart\n"
                        "pool email: new in the file; not applied: adding a pool needs a restart\n"
                        "reload: no change applied; 3 changes need a restart\n");
    assert_int_equal(cur->pool_count, 2);
    sluice_config_free(next);
    /* With a change applied beside it: the lines above say it all, no summary. */
    const char *mixed = "pools:\n"
                        "  - name: push\n    workers: 5\n    queue_capacity: 32\n    submit_timeout: 1s\n"
                        "  - name: sms\n    workers: 2\n    min_workers: 2\n    queue_capacity: 8\n";
    assert_int_equal(load(mixed, NULL, &next, err, sizeof err), SLUICE_OK);
    lb.len = 0;
    lb.text[0] = '\0';
    assert_int_equal(sluice_config_apply(&cur, next, NULL, log_line, &lb, err, sizeof err), SLUICE_OK);
    assert_string_equal(lb.text, "pool push: workers 4 -> 5 (applied)\n"
                                 "pool push: queue_capacity 16 -> 32 not applied: needs a restart\n");
    sluice_config_free(next);
    /* The values in force: nothing differs, "no change" is true. */
    const char *same = "pools:\n"
                       "  - name: push\n    workers: 5\n    queue_capacity: 16\n    submit_timeout: 1s\n"
                       "  - name: sms\n    workers: 2\n    min_workers: 2\n    queue_capacity: 8\n";
    assert_int_equal(load(same, NULL, &next, err, sizeof err), SLUICE_OK);
    lb.len = 0;
    lb.text[0] = '\0';
    assert_int_equal(sluice_config_apply(&cur, next, NULL, log_line, &lb, err, sizeof err), SLUICE_OK);
    assert_string_equal(lb.text, "reload: no change\n");
    sluice_config_free(next);
    sluice_config_free(cur);
}

/* Service-level changes and declarations move with a reload; the listen
 * address and removed pools do not. */
static void test_apply_service_and_declarations(void **state)
{
    (void)state;
    sluice_config *cur = NULL, *next = NULL;
    char err[2048];
    assert_int_equal(load(GOOD, NULL, &cur, err, sizeof err), SLUICE_OK);
    const char *b = "service:\n  name: notifications\n  listen: 0.0.0.0:1\n  drain_budget: 5s\n"
                    "  shutdown_grace: 1500ms\n"
                    "pools:\n  - name: push\n    workers: 1000\n    queue_capacity: 5000\n"
                    "    submit_timeout: 250ms\n    idle_expiry: 5m\n    drain_timeout: 10s\n"
                    "    histogram_buckets: [0.001, 5ms, 0.25, 1s]\n    timing_sample_every: 4\n"
                    "    kind: cpu\n"
                    "downstream_budget:\n  - downstream: ses\n    total_limit: 7\n";
    assert_int_equal(load(b, NULL, &next, err, sizeof err), SLUICE_OK);
    log_buf lb = {.len = 0};
    sluice_pool *pools[2] = {NULL, NULL};
    assert_int_equal(sluice_config_apply(&cur, next, pools, log_line, &lb, err, sizeof err), SLUICE_OK);
    assert_string_equal(lb.text,
                        "pool push: declarations (rationale, kind, downstream, alerts, demo) updated\n"
                        "pool sms: removed from the file; not applied: removing a pool needs a restart\n"
                        "service: drain_budget 20s -> 5s (applied)\n"
                        "service: runbook_base_url updated (applied)\n"
                        "service: listen 127.0.0.1:9999 -> 0.0.0.0:1 not applied: needs a restart\n");
    assert_int_equal(cur->service.drain_budget_ns, 5 * SLUICE_NS_PER_SEC);
    assert_string_equal(cur->service.listen, "127.0.0.1:9999");
    assert_null(cur->service.runbook_base_url);
    assert_int_equal(cur->pool_count, 2); /* sms still runs */
    assert_int_equal(sluice_config_pool_ops(&cur->pools[0])->kind, SLUICE_POOL_KIND_CPU);
    assert_null(cur->pools[0].rationale);
    assert_false(sluice_config_pool_has(&cur->pools[0], SLUICE_PK_RATIONALE));
    assert_int_equal(cur->downstream_count, 1);
    assert_string_equal(cur->downstreams[0].name, "ses");
    assert_int_equal(cur->downstreams[0].total_limit, 7);
    sluice_config_free(next);
    /* The config in force still writes out and loads back. */
    char *text = write_to_string(cur);
    sluice_config *again = NULL;
    assert_int_equal(load(text, NULL, &again, err, sizeof err), SLUICE_OK);
    free(text);
    sluice_config_free(again);
    sluice_config_free(cur);
}

/* ---- issue 12: input the loader must refuse fast ------------------- */

/* 200 KB of '[' took libyaml ~24 s to refuse (quadratic in depth), and a
 * reload of such a file held up the drain behind it. The event pass stops
 * at depth 33. */
static void test_deep_nesting(void **state)
{
    (void)state;
    size_t n = 200000;
    char *deep = malloc(n + 1);
    assert_non_null(deep);
    memset(deep, '[', n);
    deep[n] = '\0';
    expect_error(deep, SLUICE_EINVAL,
                 "sluice.yaml:1:33: nested deeper than 32 lists and mappings (sluice.yaml needs at most 5)");
    /* Block mappings count the same. */
    size_t used = 0;
    for (int d = 0; d < 40; d++) {
        used += (size_t)snprintf(deep + used, n - used, "%*sk%d:\n", d, "", d);
    }
    expect_error(deep, SLUICE_EINVAL,
                 "sluice.yaml:33:33: nested deeper than 32 lists and mappings (sluice.yaml needs at most 5)");
    free(deep);
    /* A syntax error before the limit is still libyaml's. */
    expect_error(
        "pools: [[[\n", SLUICE_EPARSE,
        "sluice.yaml:2:1: not valid YAML: did not find expected node content while parsing a flow node");
}

/* A queue bound no ring can allocate passed the loader and failed
 * sluice_pool_create with an empty message. */
static void test_queue_capacity_max(void **state)
{
    (void)state;
    expect_error(
        "pools:\n  - name: push\n    workers: 1\n    queue_capacity: 4294967296\n", SLUICE_EINVAL,
        "sluice.yaml:4:21: pools[0].queue_capacity: must be <= 1073741824 (the queue's slots are allocated "
        "when the pool is created), got 4294967296");
    sluice_config *c = NULL;
    char err[1024];
    const char *max = "pools:\n  - name: push\n    workers: 1\n    queue_capacity: 1073741824\n";
    assert_int_equal(load(max, NULL, &c, err, sizeof err), SLUICE_OK);
    assert_int_equal(c->pools[0].queue_capacity, SLUICE_CONFIG_QUEUE_CAPACITY_MAX);
    sluice_config_free(c);
    /* A duration's bound is written as a duration, not in nanoseconds. */
    expect_error(
        "pools:\n  - name: push\n    workers: 1\n    queue_capacity: 1\n    demo_batch_wait: 2h\n",
        SLUICE_EINVAL,
        "sluice.yaml:5:22: pools[0].demo_batch_wait: must be <= 1h (the batcher's longest wait), got "
        "\"2h\"");
    expect_error(
        "pools:\n  - name: push\n    workers: 1\n    queue_capacity: 1\n    stack_size: 100\n", SLUICE_EINVAL,
        "sluice.yaml:5:17: pools[0].stack_size: must be 0 (the system's default) or >= 16384, got 100");
}

/* Override names that cannot name a pool and key are errors, as the docs
 * say; they were skipped without a word. */
static void test_env_names(void **state)
{
    (void)state;
    sluice_config *c = (sluice_config *)0x1;
    char err[2048];
    const char *bare[] = {"SLUICE_POOL_=1", "SLUICE_SERVICE_=x", NULL};
    sluice_config_load_opts o = {.envp = bare};
    assert_int_equal(load(GOOD, &o, &c, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err,
                        "env SLUICE_POOL_: SLUICE_POOL_: names no pool and key (SLUICE_POOL_<NAME>_<KEY>)\n"
                        "env SLUICE_SERVICE_: SLUICE_SERVICE_: names no key (SLUICE_SERVICE_<KEY>)");
    char name[400];
    snprintf(name, sizeof name, "SLUICE_POOL_PUSH_");
    memset(name + 17, 'W', 300);
    snprintf(name + 317, sizeof name - 317, "=5");
    const char *longname[] = {name, NULL};
    o.envp = longname;
    assert_int_equal(load(GOOD, &o, &c, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err,
                        "env SLUICE_POOL_PUSH_WWWWWWWWWWWWWWWWWWWWWWW...: the variable's name is 317 bytes; "
                        "an override's name is at most 255");
    /* 255 bytes is still a name (of no key here). */
    name[255] = '=';
    name[256] = '5';
    name[257] = '\0';
    assert_int_equal(load(GOOD, &o, &c, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, ": unknown pool key (known: workers,"));
    assert_ptr_equal(c, (sluice_config *)0x1);
}

/* A stream is read no further than the limit (sluice lint - < /dev/zero
 * read without bound and aborted). */
static void test_stream_bound(void **state)
{
    (void)state;
    FILE *zero = fopen("/dev/zero", "rb");
    assert_non_null(zero);
    sluice_config *c = (sluice_config *)0x1;
    char err[512];
    assert_int_equal(sluice_config_load_stream(zero, "<stdin>", &NO_ENV, &c, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "<stdin>: file too large (more than 1048576 bytes; the limit is 1048576)");
    assert_ptr_equal(c, (sluice_config *)0x1);
    fclose(zero);
    FILE *f = fmemopen((void *)GOOD, sizeof GOOD - 1, "rb");
    assert_non_null(f);
    assert_int_equal(sluice_config_load_stream(f, "mem", &NO_ENV, &c, err, sizeof err), SLUICE_OK);
    assert_string_equal(c->source, "mem");
    fclose(f);
    sluice_config_free(c);
}

/* Aliases cannot multiply the walk: too many keys in one mapping. */
static void test_shape_bounds(void **state)
{
    (void)state;
    size_t cap = 400 * 16;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t used = (size_t)snprintf(text, cap, "pools:\n  - name: p\n");
    for (int i = 0; i < 300; i++) {
        used += (size_t)snprintf(text + used, cap - used, "    k%d: 1\n", i);
    }
    expect_error(text, SLUICE_EINVAL, "sluice.yaml:2:5: pools[0]: more than 256 keys");
    free(text);
}

/* ---- the cluster section --------------------------------------------- */

static void test_cluster_section(void **state)
{
    (void)state;
    sluice_config *c = NULL, *c2 = NULL;
    char err[2048];
    /* Absent: present false, defaults in place, nothing written. */
    assert_int_equal(load(POOL0, NULL, &c, err, sizeof err), SLUICE_OK);
    assert_false(c->cluster.present);
    char *a = write_to_string(c);
    assert_null(strstr(a, "cluster:"));
    free(a);
    sluice_config_free(c);

    const char *text =
        "service:\n  name: orders\n" POOL0 "    downstream: payments\n"
        "cluster:\n  redis: redis.internal:6380\n  mode: strict\n  heartbeat: 200ms\n"
        "  member_ttl: 1s\n  budget_file: budget.yaml\n  fallback_k: 3\n  fallback_unready: true\n";
    assert_int_equal(load(text, NULL, &c, err, sizeof err), SLUICE_OK);
    assert_true(c->cluster.present);
    assert_string_equal(c->cluster.redis, "redis.internal:6380");
    assert_string_equal(c->cluster.key_prefix, "sluice");
    assert_null(c->cluster.service); /* = service.name */
    assert_int_equal(c->cluster.mode, SLUICE_CLUSTER_MODE_STRICT);
    assert_int_equal(c->cluster.heartbeat_ns, 200 * SLUICE_NS_PER_MS);
    assert_int_equal(c->cluster.member_ttl_ns, SLUICE_NS_PER_SEC);
    assert_int_equal(c->cluster.lease_ttl_ns, 0);
    assert_int_equal(c->cluster.redis_timeout_ns, 250 * SLUICE_NS_PER_MS);
    assert_int_equal(c->cluster.reconnect_min_ns, 50 * SLUICE_NS_PER_MS);
    assert_int_equal(c->cluster.reconnect_max_ns, 2 * SLUICE_NS_PER_SEC);
    assert_string_equal(c->cluster.budget_file, "budget.yaml");
    assert_int_equal(c->cluster.fallback_k, 3);
    assert_true(c->cluster.fallback_unready);
    assert_int_equal(c->cluster.pos[SLUICE_CK_MODE].line, 10);
    /* Written and read back the same. */
    a = write_to_string(c);
    assert_non_null(strstr(a, "cluster:\n  redis: "));
    assert_int_equal(load(a, NULL, &c2, err, sizeof err), SLUICE_OK);
    char *b = write_to_string(c2);
    assert_string_equal(a, b);
    free(a);
    free(b);
    /* A reload keeps the running section and says a change needs a restart. */
    log_buf lb = {0};
    sluice_config *next = NULL;
    const char *changed =
        "service:\n  name: orders\n" POOL0 "    downstream: payments\n"
        "cluster:\n  redis: redis.internal:6380\n  mode: share\n  heartbeat: 200ms\n"
        "  member_ttl: 1s\n  budget_file: budget.yaml\n  fallback_k: 3\n  fallback_unready: true\n";
    assert_int_equal(load(changed, NULL, &next, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_config_apply(&c2, next, NULL, log_line, &lb, err, sizeof err), SLUICE_OK);
    assert_non_null(strstr(lb.text, "cluster: mode strict -> share not applied: needs a restart"));
    assert_int_equal(c2->cluster.mode, SLUICE_CLUSTER_MODE_STRICT);
    sluice_config_free(next);
    sluice_config_free(c2);
    sluice_config_free(c);

    /* Errors name file:line:col and the key. */
    expect_error(
        POOL0 "cluster:\n  redis: localhost\n", SLUICE_EINVAL,
        "sluice.yaml:5:1: cluster.budget_file: required (the downstream-budget.yaml whose share the "
        "pools keep)\n"
        "sluice.yaml:6:10: cluster.redis: must be host:port with a port in 1..65535, got \"localhost\"");
    expect_error(POOL0 "cluster:\n  budget_file: b.yaml\n  mode: loose\n", SLUICE_EINVAL,
                 "sluice.yaml:7:9: cluster.mode: must be one of share, strict, got \"loose\"");
    expect_error(
        POOL0 "cluster:\n  budget_file: b.yaml\n  heartbeat: 1s\n  lease_ttl: 500ms\n", SLUICE_EINVAL,
        "sluice.yaml:8:14: cluster.lease_ttl: must be longer than heartbeat (1s), got 500ms (a member "
        "would expire between two beats)");
    expect_error(
        POOL0 "cluster:\n  budget_file: b.yaml\n  servce: x\n", SLUICE_EINVAL,
        "sluice.yaml:7:3: cluster.servce: unknown key (known: redis, key_prefix, service, replica_id, "
        "heartbeat, member_ttl, lease_ttl, redis_timeout, mode, budget_file, fallback_k, block, "
        "fallback_unready, reconnect_min, reconnect_max)");
    /* The reconnect backoff: its own keys, both bounds > 0, min <= max,
     * and the error blames the key the file wrote. */
    sluice_config *rc = NULL;
    assert_int_equal(load(POOL0
                          "cluster:\n  budget_file: b.yaml\n  reconnect_min: 10ms\n  reconnect_max: 30s\n",
                          NULL, &rc, err, sizeof err),
                     SLUICE_OK);
    assert_int_equal(rc->cluster.reconnect_min_ns, 10 * SLUICE_NS_PER_MS);
    assert_int_equal(rc->cluster.reconnect_max_ns, 30 * SLUICE_NS_PER_SEC);
    a = write_to_string(rc);
    assert_non_null(strstr(a, "  reconnect_min: 10ms\n"));
    assert_non_null(strstr(a, "  reconnect_max: 30s\n"));
    free(a);
    sluice_config_free(rc);
    expect_error(POOL0 "cluster:\n  budget_file: b.yaml\n  reconnect_min: 5s\n", SLUICE_EINVAL,
                 "sluice.yaml:7:18: cluster.reconnect_min: 5s is above reconnect_max (2s, the default); the "
                 "backoff bound starts at reconnect_min and never exceeds reconnect_max");
    expect_error(
        POOL0 "cluster:\n  budget_file: b.yaml\n  reconnect_max: 10ms\n", SLUICE_EINVAL,
        "sluice.yaml:7:18: cluster.reconnect_max: 10ms is below reconnect_min (50ms, the default); the "
        "backoff bound starts at reconnect_min and never exceeds reconnect_max");
    expect_error(POOL0 "cluster:\n  budget_file: b.yaml\n  reconnect_min: 3s\n  reconnect_max: 1s\n",
                 SLUICE_EINVAL,
                 "sluice.yaml:7:18: cluster.reconnect_min: 3s is above reconnect_max (1s); the backoff bound "
                 "starts at reconnect_min and never exceeds reconnect_max");
    expect_error(
        POOL0 "cluster:\n  budget_file: b.yaml\n  service: a/b\n", SLUICE_EINVAL,
        "sluice.yaml:7:12: cluster.service: must be 1..64 characters of [A-Za-z0-9_.:-], got \"a/b\"");
    expect_error(POOL0 "cluster:\n", SLUICE_EINVAL,
                 "sluice.yaml:5:1: cluster.budget_file: required (the downstream-budget.yaml whose share the "
                 "pools keep)");
    expect_error(POOL0 "cluster: [1]\n", SLUICE_EINVAL,
                 "sluice.yaml:5:10: cluster: must be a mapping (key: value lines), got a list");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_validation_messages),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_write_round_trip),
        cmocka_unit_test(test_cluster_section),
        cmocka_unit_test(test_overload_keys),
        cmocka_unit_test(test_apply_live),
        cmocka_unit_test(test_reload_file),
        cmocka_unit_test(test_reload_restart_only_summary),
        cmocka_unit_test(test_apply_service_and_declarations),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_queue_capacity_max),
        cmocka_unit_test(test_env_names),
        cmocka_unit_test(test_stream_bound),
        cmocka_unit_test(test_shape_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * tests/cluster/test_join.c - a service built from sluice.yaml joins the
 * cluster of its `cluster:` section (sluice_cluster_join_create): pools on
 * the budget's downstream are bound to the service's share (split by
 * workers), the replicas' K sum to each part, a leave gives the part back
 * to the others, the "cluster" health check says OK / DEGRADED / FAIL
 * (fallback_unready), strict mode makes the semaphore, and every refusal
 * names what is wrong. Two replicas are two services in one process
 * against a private redis-server (redis_fixture.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "redis_fixture.h"
#include "sluice/cluster_join.h"
#include "sluice/config.h"
#include "sluice/service.h"

static redis_fixture redis;
static char dir[64];
static int seq;

#define POLL(cond, ms)                                                                                       \
    ({                                                                                                       \
        bool ok_ = false;                                                                                    \
        for (int i_ = 0; i_ <= (ms) / 10 && !(ok_ = (cond)); i_++) {                                         \
            fixture_sleep_ms(10);                                                                            \
        }                                                                                                    \
        ok_;                                                                                                 \
    })

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sluice-join-XXXXXX");
    if (!mkdtemp(dir)) {
        return -1;
    }
    return redis_fixture_start(&redis) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    redis_fixture_stop(&redis);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* What a test makes is registered (common/cleanup.h), so a failed
 * assertion does not leave a service or a joined cluster (with its
 * thread) running into the next test. */
static void undo_config(void *p)
{
    sluice_config_free(p);
}

static void undo_service(void *p)
{
    sluice_service_destroy(p);
}

static void undo_join(void *p)
{
    sluice_cluster_join_destroy(p);
}

/* After each test, passed or failed: Redis running again (a failed test
 * may have left it stopped; the destroys talk to it), then whatever the
 * test did not destroy, newest first. */
static int per_test_end(void **state)
{
    redis_fixture_resume(&redis);
    return cleanup_teardown(state);
}

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static const char BUDGET[] = "downstream: payments-api\n"
                             "total_limit: 100\n"
                             "shares:\n"
                             "  orders: 40\n"
                             "  refunds: 20\n"
                             "free_pool: 10\n";

/* sluice.yaml for service `svc` with `extra` appended to its cluster:
 * section, a fresh key prefix per call. The member and lease TTLs are real
 * time on Redis's clock: 1.5 s, so that a replica whose heartbeat thread
 * is off the CPU for a while (a Redis round trip took over 500 ms once
 * under TSan on a busy 2-core box) keeps its membership, and the two
 * replicas' K still split the part "of 2"; no test here waits for one to
 * expire. */
static sluice_config *load(const char *svc, const char *extra, const char *pools)
{
    char text[4096], path[256], err[1024];
    snprintf(
        text, sizeof text,
        "service:\n  name: %s\n"
        "pools:\n%s"
        "cluster:\n  redis: 127.0.0.1:%d\n  key_prefix: j%d\n  heartbeat: 50ms\n  member_ttl: 1500ms\n"
        "  lease_ttl: 1500ms\n  redis_timeout: %s\n  budget_file: budget.yaml\n%s",
        svc,
        pools ? pools
              : "  - name: charge\n    workers: 99\n    queue_capacity: 100\n    downstream: payments-api\n"
                "  - name: refund\n    workers: 33\n    queue_capacity: 100\n    downstream: payments-api\n"
                "  - name: mail\n    workers: 4\n    queue_capacity: 10\n",
        redis.port, seq,
#ifdef SLUICE_SANITIZER
        "3s",
#else
        "500ms",
#endif
        extra ? extra : "");
    snprintf(path, sizeof path, "%s/sluice.yaml", dir);
    write_file("sluice.yaml", text);
    sluice_config *cfg = NULL;
    sluice_config_load_opts o = {.no_env = true};
    if (sluice_config_load_file(path, &o, &cfg, err, sizeof err) != SLUICE_OK) {
        fail_msg("config: %s", err);
    }
    return cleanup_push(undo_config, cfg);
}

static sluice_service *service_of(const sluice_config *cfg)
{
    sluice_service_config sc;
    sluice_service_config_init(&sc);
    sc.no_signals = true;
    sluice_service *svc = NULL;
    char err[512];
    if (sluice_service_create_from_config(cfg, &sc, NULL, NULL, &svc, err, sizeof err) != SLUICE_OK) {
        fail_msg("service: %s", err);
    }
    return cleanup_push(undo_service, svc);
}

static unsigned k_of(sluice_service *svc, const char *pool)
{
    sluice_pool_stats st;
    sluice_pool_stats_get(sluice_service_find_pool(svc, pool), &st);
    return (unsigned)st.capacity;
}

static sluice_health_state check_of(sluice_service *svc, char *line, size_t len)
{
    sluice_service_check_result r[SLUICE_SERVICE_MAX_CHECKS];
    size_t n = sluice_service_run_checks(svc, r, SLUICE_SERVICE_MAX_CHECKS);
    assert_int_equal(n, 1);
    assert_string_equal(r[0].name, "cluster");
    snprintf(line, len, "%s", r[0].line);
    return r[0].state;
}

static bool beat(sluice_cluster_join *a, sluice_cluster_join *b)
{
    sluice_cluster_heartbeat_now(sluice_cluster_join_cluster(a));
    if (b) {
        sluice_cluster_heartbeat_now(sluice_cluster_join_cluster(b));
    }
    return true;
}

static void test_share_bound_and_leave(void **state)
{
    (void)state;
    seq++;
    write_file("budget.yaml", BUDGET);
    sluice_config *cfg = load("orders", NULL, NULL);
    sluice_service *s1 = service_of(cfg), *s2 = service_of(cfg);
    sluice_cluster_join *j1 = NULL, *j2 = NULL;
    char err[1024];
    assert_int_equal(sluice_cluster_join_create(cfg, s1, NULL, &j1, err, sizeof err), SLUICE_OK);
    cleanup_push(undo_join, j1);
    assert_int_equal(sluice_cluster_join_create(cfg, s2, NULL, &j2, err, sizeof err), SLUICE_OK);
    cleanup_push(undo_join, j2);
    /* 40 split 99:33 -> 30 and 10; the mail pool is not bound. */
    assert_int_equal(sluice_cluster_join_part(j1, sluice_service_find_pool(s1, "charge")), 30);
    assert_int_equal(sluice_cluster_join_part(j1, sluice_service_find_pool(s1, "refund")), 10);
    assert_int_equal(sluice_cluster_join_part(j1, sluice_service_find_pool(s1, "mail")), 0);
    assert_null(sluice_cluster_join_dsem(j1)); /* share mode */
    /* Two replicas: each pool's K sum to its part. */
    assert_true(POLL((beat(j1, j2), k_of(s1, "charge") + k_of(s2, "charge") == 30 &&
                                        k_of(s1, "refund") + k_of(s2, "refund") == 10),
                     5000));
    assert_int_equal(k_of(s1, "charge"), 15);
    assert_int_equal(k_of(s1, "mail"), 4);
    char line[SLUICE_SERVICE_CHECK_LINE_MAX + 1];
    assert_int_equal(check_of(s1, line, sizeof line), SLUICE_HEALTH_OK);
    assert_non_null(strstr(line, "of 2, share 40 of payments-api (charge K=15, refund K=5)"));

    /* Redis stops answering: DEGRADED (still ready), K kept. */
    redis_fixture_pause(&redis);
    assert_int_equal(sluice_cluster_heartbeat_now(sluice_cluster_join_cluster(j1)), SLUICE_EIO);
    assert_int_equal(check_of(s1, line, sizeof line), SLUICE_HEALTH_DEGRADED);
    assert_non_null(strstr(line, "fallback: Redis 127.0.0.1:"));
    assert_non_null(strstr(line, "still ready"));
    assert_int_equal(k_of(s1, "charge"), 15);
    redis_fixture_resume(&redis);
    assert_true(POLL(sluice_cluster_heartbeat_now(sluice_cluster_join_cluster(j1)) == SLUICE_OK, 5000));
    assert_int_equal(check_of(s1, line, sizeof line), SLUICE_HEALTH_OK);

    /* One replica leaves: the other takes each whole part. */
    cleanup_now(j1);
    assert_int_equal(sluice_service_run_checks(s1, NULL, 0), 0); /* the check went with it */
    assert_true(POLL((beat(j2, NULL), k_of(s2, "charge") == 30 && k_of(s2, "refund") == 10), 5000));
    cleanup_now(j2);
    cleanup_now(s1);
    cleanup_now(s2);
    cleanup_now(cfg);
}

static void test_strict_and_unready(void **state)
{
    (void)state;
    seq++;
    write_file("budget.yaml", BUDGET);
    sluice_config *cfg = load("refunds", "  mode: strict\n  fallback_unready: true\n  fallback_k: 2\n", NULL);
    sluice_service *s = service_of(cfg);
    sluice_cluster_join *j = NULL;
    char err[1024];
    assert_int_equal(sluice_cluster_join_create(cfg, s, NULL, &j, err, sizeof err), SLUICE_OK);
    cleanup_push(undo_join, j);
    sluice_dsem *ds = sluice_cluster_join_dsem(j);
    assert_non_null(ds);
    /* EAGAIN while the cluster thread's renewal is in flight: retry. */
    assert_true(POLL(sluice_dsem_try_acquire(ds) == SLUICE_OK, 5000));
    sluice_dsem_stats st;
    sluice_dsem_stats_get(ds, &st);
    assert_int_equal(st.share, 20);
    assert_int_equal(sluice_dsem_release(ds), SLUICE_OK);
    assert_true(POLL((beat(j, NULL), k_of(s, "charge") == 15 && k_of(s, "refund") == 5), 5000));
    redis_fixture_pause(&redis);
    assert_int_equal(sluice_cluster_heartbeat_now(sluice_cluster_join_cluster(j)), SLUICE_EIO);
    char line[SLUICE_SERVICE_CHECK_LINE_MAX + 1];
    assert_int_equal(check_of(s, line, sizeof line), SLUICE_HEALTH_FAIL);
    assert_null(strstr(line, "still ready"));
    assert_int_equal(k_of(s, "charge"), 2); /* min(fallback_k, last K) */
    redis_fixture_resume(&redis);
    assert_true(POLL(sluice_cluster_heartbeat_now(sluice_cluster_join_cluster(j)) == SLUICE_OK, 5000));
    cleanup_now(j);
    cleanup_now(s);
    cleanup_now(cfg);
}

/* One refusal: the message must contain `want`. */
static void expect_refusal(const char *svc, const char *pools, const char *budget, const char *want)
{
    seq++;
    write_file("budget.yaml", budget);
    sluice_config *cfg = load(svc, NULL, pools);
    sluice_service *s = service_of(cfg);
    sluice_cluster_join *j = (sluice_cluster_join *)0x1;
    char err[1024] = "";
    sluice_err r = sluice_cluster_join_create(cfg, s, NULL, &j, err, sizeof err);
    if (r == SLUICE_OK || !strstr(err, want)) {
        fail_msg("got %d \"%s\", want an error containing \"%s\"", r, err, want);
    }
    assert_null(j);
    assert_int_equal(sluice_service_run_checks(s, NULL, 0), 0);
    cleanup_now(s);
    cleanup_now(cfg);
}

static void test_refusals(void **state)
{
    (void)state;
    expect_refusal("shipping", NULL, BUDGET, "cluster.service: \"shipping\" has no share in ");
    expect_refusal("shipping", NULL, BUDGET, "(shares: orders, refunds)");
    expect_refusal("orders", "  - name: mail\n    workers: 4\n    queue_capacity: 10\n", BUDGET,
                   "cluster: no pool has downstream: payments-api");
    expect_refusal("orders", NULL, "downstream: payments-api\ntotal_limit: 10\nshares:\n  orders: 40\n",
                   "budget.yaml:");
    expect_refusal("orders", NULL, "downstream: payments-api\ntotal_limit: 100\nshares:\n  orders: 1\n",
                   "orders's share of payments-api is 1, less than the 2 pools that call it");
    /* No section: nothing to do, nothing made. */
    sluice_config *cfg = NULL;
    char err[512];
    const char *plain = "pools:\n  - name: p\n    workers: 1\n    queue_capacity: 1\n";
    assert_int_equal(sluice_config_load_string(plain, strlen(plain), "x.yaml", NULL, &cfg, err, sizeof err),
                     SLUICE_OK);
    cleanup_push(undo_config, cfg);
    sluice_service *s = service_of(cfg);
    sluice_cluster_join *j = (sluice_cluster_join *)0x1;
    assert_int_equal(sluice_cluster_join_create(cfg, s, NULL, &j, err, sizeof err), SLUICE_OK);
    assert_null(j);
    sluice_cluster_join_destroy(NULL);
    assert_int_equal(sluice_cluster_join_create(NULL, s, NULL, &j, err, sizeof err), SLUICE_EINVAL);
    cleanup_now(s);
    cleanup_now(cfg);
}

/* The pool limit: SLUICE_CLUSTER_MAX_BINDINGS (16) pools on the budget's
 * downstream join (each bound, the parts summing to the share); a 17th is
 * refused with SLUICE_EINVAL and the message cluster_join.h gives, and
 * nothing is left running. */
static char *many_pools(int n)
{
    static char text[4096];
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        used += (size_t)snprintf(text + used, sizeof text - used,
                                 "  - name: p%02d\n    workers: 4\n    queue_capacity: 4\n"
                                 "    downstream: payments-api\n",
                                 i);
        assert_true(used < sizeof text);
    }
    return text;
}

static void test_pool_limit(void **state)
{
    (void)state;
    seq++;
    write_file("budget.yaml", BUDGET);
    sluice_config *cfg = load("orders", NULL, many_pools(SLUICE_CLUSTER_MAX_BINDINGS));
    sluice_service *s = service_of(cfg);
    sluice_cluster_join *j = NULL;
    char err[1024] = "";
    if (sluice_cluster_join_create(cfg, s, NULL, &j, err, sizeof err) != SLUICE_OK) {
        fail_msg("16 pools: %s", err);
    }
    cleanup_push(undo_join, j);
    unsigned sum = 0;
    for (int i = 0; i < SLUICE_CLUSTER_MAX_BINDINGS; i++) {
        char name[8];
        snprintf(name, sizeof name, "p%02d", i);
        unsigned part = sluice_cluster_join_part(j, sluice_service_find_pool(s, name));
        assert_true(part >= 2 && part <= 3); /* 40 split 16 ways by equal workers */
        sum += part;
    }
    assert_int_equal(sum, 40);
    cleanup_now(j);
    cleanup_now(s);
    cleanup_now(cfg);

    expect_refusal("orders", many_pools(SLUICE_CLUSTER_MAX_BINDINGS + 1), BUDGET,
                   "cluster: more than 16 pools call downstream payments-api");
    seq++;
    cfg = load("orders", NULL, many_pools(SLUICE_CLUSTER_MAX_BINDINGS + 1));
    s = service_of(cfg);
    j = (sluice_cluster_join *)0x1;
    assert_int_equal(sluice_cluster_join_create(cfg, s, NULL, &j, err, sizeof err), SLUICE_EINVAL);
    assert_null(j);
    cleanup_now(s);
    cleanup_now(cfg);
}

int main(void)
{
    if (!redis_fixture_available()) {
        fprintf(stderr, "cluster_join: redis-server is not installed (scripts/install-deps.sh); skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_share_bound_and_leave, per_test_end),
        cmocka_unit_test_teardown(test_strict_and_unready, per_test_end),
        cmocka_unit_test_teardown(test_refusals, per_test_end),
        cmocka_unit_test_teardown(test_pool_limit, per_test_end),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * tests/cluster/test_contracts_cluster.c - the promises of sluice/cluster.h
 * that hold without Redis, probed at their extremes: names at 64 bytes and
 * 65, TTLs at and below the heartbeat, a heartbeat so long its default
 * TTLs would overflow, bindings at SLUICE_CLUSTER_MAX_BINDINGS and one
 * more, K raised to the pool's min_workers, the semaphore's and the
 * limiter's refusals, a limiter named with 64 bytes answering in
 * fallback, SLUICE_RATE_INF making no Redis call.
 *
 * Redis is never started: every cluster points at a loopback port that
 * was free a moment ago, so it starts in fallback (which the header says
 * is not an error) and its reconnects are refused at once. No test waits
 * for time to pass.
 */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/redis_fixture.h"
#include "cluster/undo.h"
#include "common/cleanup.h"
#include "sluice/cluster.h"
#include "sluice/sluice.h"

static unsigned dead_port;

static sluice_cluster_config base_config(void)
{
    sluice_cluster_config cfg;
    sluice_cluster_config_init(&cfg);
    cfg.redis_port = dead_port;
    cfg.service = "orders";
    cfg.redis_timeout_ns = 100 * SLUICE_NS_PER_MS;
    return cfg;
}

/* What a test makes is registered (common/cleanup.h, with cluster/undo.h's
 * adapters), so a failed assertion does not leave a cluster thread or a
 * redis-server running into the next test; cleanup_teardown undoes it,
 * newest first. A binding to undo before its pool goes (the pool is made after the
 * cluster, so the stack order alone would free the pool first). */
typedef struct binding {
    sluice_cluster *c;
    unsigned id;
} binding;

static void undo_binding(void *p)
{
    binding *b = p;
    sluice_cluster_unbind(b->c, b->id);
}

static sluice_cluster *make_cluster(sluice_cluster_config *cfg)
{
    sluice_cluster *c = NULL;
    char err[256];
    if (sluice_cluster_create(cfg, &c, err, sizeof err) != SLUICE_OK) {
        fail_msg("cluster create: %s", err);
    }
    return cleanup_push(undo_cluster, c);
}

static const char *name_of(char *buf, size_t n)
{
    memset(buf, 'r', n);
    buf[n] = '\0';
    return buf;
}

/* Names at SLUICE_CLUSTER_NAME_MAX and one past; the TTLs against the
 * heartbeat; a heartbeat whose default TTLs (3 heartbeats) pass
 * UINT64_MAX; Redis down is not an error. */
static void test_cluster_config_extremes(void **state)
{
    (void)state;
    char name[SLUICE_CLUSTER_NAME_MAX + 2], err[256];
    sluice_cluster *c = NULL;
    static const char *const fields[] = {"service", "key_prefix", "replica_id"};
    for (size_t i = 0; i < 3; i++) {
        sluice_cluster_config cfg = base_config();
        const char **slot = i == 0 ? &cfg.service : i == 1 ? &cfg.key_prefix : &cfg.replica_id;
        *slot = name_of(name, SLUICE_CLUSTER_NAME_MAX + 1);
        assert_int_equal(sluice_cluster_create(&cfg, &c, err, sizeof err), SLUICE_EINVAL);
        assert_null(c);
        assert_non_null(strstr(err, fields[i]));
        *slot = "";
        assert_int_equal(sluice_cluster_create(&cfg, &c, err, sizeof err), SLUICE_EINVAL);
        *slot = name_of(name, SLUICE_CLUSTER_NAME_MAX);
        c = make_cluster(&cfg);
        sluice_cluster_status st;
        sluice_cluster_status_get(c, &st);
        assert_true(st.fallback);
        assert_false(st.redis_up);
        if (i == 2) {
            assert_string_equal(st.replica_id, name);
        }
        cleanup_now(c);
        c = NULL;
    }

    sluice_cluster_config cfg = base_config();
    cfg.heartbeat_ns = SLUICE_NS_PER_SEC;
    cfg.lease_ttl_ns = SLUICE_NS_PER_SEC; /* equal: a lease would expire between renewals */
    assert_int_equal(sluice_cluster_create(&cfg, &c, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "lease_ttl"));
    cfg.lease_ttl_ns = SLUICE_NS_PER_SEC + 1; /* just longer */
    cfg.member_ttl_ns = SLUICE_NS_PER_SEC + 1;
    c = make_cluster(&cfg);
    cleanup_now(c);
    c = NULL;
    cfg.heartbeat_ns = SLUICE_NS_PER_MS - 1; /* under 1 ms */
    cfg.lease_ttl_ns = cfg.member_ttl_ns = 0;
    assert_int_equal(sluice_cluster_create(&cfg, &c, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "heartbeat"));
    cfg.heartbeat_ns = SLUICE_NS_PER_MS; /* exactly 1 ms */
    c = make_cluster(&cfg);
    cleanup_now(c);
    c = NULL;

    /* A heartbeat above UINT64_MAX / 3: its default TTLs ("3 heartbeats")
     * must saturate, not wrap below the heartbeat and be refused for a
     * field that was never set. */
    cfg.heartbeat_ns = UINT64_MAX / 2;
    err[0] = '\0';
    if (sluice_cluster_create(&cfg, &c, err, sizeof err) != SLUICE_OK) {
        fail_msg("a heartbeat of UINT64_MAX / 2 with default TTLs was refused: %s", err);
    }
    cleanup_push(undo_cluster, c);
    cleanup_now(c);
    c = NULL;
    cfg.heartbeat_ns = UINT64_MAX;
    cfg.reconnect_min_ns = UINT64_MAX;
    cfg.reconnect_max_ns = UINT64_MAX; /* the documented maximum */
    if (sluice_cluster_create(&cfg, &c, err, sizeof err) != SLUICE_OK) {
        fail_msg("a heartbeat of UINT64_MAX with default TTLs was refused: %s", err);
    }
    cleanup_push(undo_cluster, c);
    cleanup_now(c);
    c = NULL;

    cfg = base_config();
    cfg.redis_port = 65536;
    assert_int_equal(sluice_cluster_create(&cfg, &c, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "redis_port"));
    assert_int_equal(sluice_cluster_create(NULL, &c, err, sizeof err), SLUICE_EINVAL);
    assert_int_equal(sluice_cluster_create(&cfg, NULL, err, sizeof err), SLUICE_EINVAL);
}

typedef struct k_seen {
    _Atomic unsigned k;
    _Atomic int calls;
} k_seen;

static void on_k(void *user, unsigned k, sluice_share_reason reason)
{
    (void)reason;
    k_seen *ks = user;
    atomic_store(&ks->k, k);
    atomic_fetch_add(&ks->calls, 1);
}

/* Bindings: share 0 and "no pool and no on_k" refused; the sixteenth
 * binding fits and the seventeenth is EBUSY; unbind frees a slot once;
 * share_k_get is 0 for a bad or freed id; a pool's K is raised to its
 * min_workers. With no member list ever read the K is fallback_k or 1. */
static void test_cluster_bindings(void **state)
{
    (void)state;
    sluice_cluster_config cfg = base_config();
    sluice_cluster *c = make_cluster(&cfg);
    k_seen seen[SLUICE_CLUSTER_MAX_BINDINGS + 1];
    memset(seen, 0, sizeof seen);
    unsigned id = 99;
    sluice_share_binding zero = {.share = 0, .on_k = on_k, .user = &seen[0]};
    assert_int_equal(sluice_cluster_bind_share(c, &zero, &id), SLUICE_EINVAL);
    sluice_share_binding nothing = {.share = 5};
    assert_int_equal(sluice_cluster_bind_share(c, &nothing, &id), SLUICE_EINVAL);
    assert_int_equal(sluice_cluster_bind_share(c, NULL, &id), SLUICE_EINVAL);
    assert_int_equal(id, 99); /* untouched on error */
    unsigned ids[SLUICE_CLUSTER_MAX_BINDINGS];
    for (unsigned i = 0; i < SLUICE_CLUSTER_MAX_BINDINGS; i++) {
        sluice_share_binding b = {.share = 10, .fallback_k = i % 2 ? 3 : 0, .on_k = on_k, .user = &seen[i]};
        assert_int_equal(sluice_cluster_bind_share(c, &b, &ids[i]), SLUICE_OK);
        /* No list ever read: fallback_k, or 1. */
        assert_int_equal(atomic_load(&seen[i].k), i % 2 ? 3 : 1);
        assert_int_equal(sluice_cluster_share_k_get(c, ids[i]), i % 2 ? 3 : 1);
    }
    sluice_share_binding extra = {.share = 10, .on_k = on_k, .user = &seen[SLUICE_CLUSTER_MAX_BINDINGS]};
    unsigned extra_id = 99;
    assert_int_equal(sluice_cluster_bind_share(c, &extra, &extra_id), SLUICE_EBUSY);
    assert_int_equal(atomic_load(&seen[SLUICE_CLUSTER_MAX_BINDINGS].calls), 0);
    assert_int_equal(sluice_cluster_unbind(c, ids[3]), SLUICE_OK);
    assert_int_equal(sluice_cluster_unbind(c, ids[3]), SLUICE_ENOENT);
    assert_int_equal(sluice_cluster_share_k_get(c, ids[3]), 0);
    assert_int_equal(sluice_cluster_unbind(c, SLUICE_CLUSTER_MAX_BINDINGS), SLUICE_ENOENT);
    assert_int_equal(sluice_cluster_unbind(c, UINT32_MAX), SLUICE_ENOENT);
    assert_int_equal(sluice_cluster_share_k_get(c, UINT32_MAX), 0);
    assert_int_equal(sluice_cluster_bind_share(c, &extra, &extra_id), SLUICE_OK); /* the freed slot */
    assert_int_equal(extra_id, ids[3]);
    for (unsigned i = 0; i < SLUICE_CLUSTER_MAX_BINDINGS; i++) {
        assert_int_equal(sluice_cluster_unbind(c, ids[i]), SLUICE_OK);
    }

    /* A pool: K = max(fallback bound, min_workers). */
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "bound";
    pc.workers = 8;
    pc.min_workers = 2;
    pc.queue_capacity = 8;
    sluice_pool *pool = NULL;
    assert_int_equal(sluice_pool_create(&pc, &pool, NULL, 0), SLUICE_OK);
    cleanup_push(undo_pool, pool);
    sluice_share_binding pb = {.pool = pool, .share = 40, .fallback_k = 1};
    unsigned pid;
    assert_int_equal(sluice_cluster_bind_share(c, &pb, &pid), SLUICE_OK);
    static binding bound;
    bound = (binding){c, pid};
    cleanup_push(undo_binding, &bound);
    sluice_pool_stats ps;
    sluice_pool_stats_get(pool, &ps);
    assert_int_equal(ps.capacity, 2);
    assert_int_equal(sluice_cluster_share_k_get(c, pid), 2);
    cleanup_take(&bound);
    assert_int_equal(sluice_cluster_unbind(c, pid), SLUICE_OK);

    /* Redis down: heartbeat_now says EIO; the member list is empty. */
    assert_int_equal(sluice_cluster_heartbeat_now(c), SLUICE_EIO);
    char ids_out[1][SLUICE_CLUSTER_NAME_MAX + 1];
    assert_int_equal(sluice_cluster_members(c, ids_out, 0), 0);
    assert_int_equal(sluice_cluster_members(c, ids_out, 1), 0);
    cleanup_now(c);
    cleanup_now(pool); /* the cluster only forgot it */
}

/* sluice_share_k at the edges of its arguments. */
static void test_share_k_edges(void **state)
{
    (void)state;
    assert_int_equal(sluice_share_k(0, 3, 0), 0);
    assert_int_equal(sluice_share_k(0, 0, 0), 0);
    assert_int_equal(sluice_share_k(7, 1, 0), 7);
    assert_int_equal(sluice_share_k(UINT32_MAX, UINT32_MAX, 0), 1);
    assert_int_equal(sluice_share_k(UINT32_MAX, UINT32_MAX, UINT32_MAX - 1), 1);
    assert_int_equal(sluice_share_k(UINT32_MAX - 1, UINT32_MAX, UINT32_MAX - 1), 0);
    assert_int_equal(sluice_share_k(UINT32_MAX - 1, UINT32_MAX, UINT32_MAX - 2), 1);
}

/* The semaphore's and the limiter's refusals, names at 64 and 65 bytes;
 * release with none held; close; SLUICE_RATE_INF never calls Redis. */
static void test_dsem_dlimiter_refusals(void **state)
{
    (void)state;
    sluice_cluster_config cfg = base_config();
    sluice_cluster *c = make_cluster(&cfg);
    char name[SLUICE_CLUSTER_NAME_MAX + 2], err[256];
    sluice_dsem_config dc;
    sluice_dsem_config_init(&dc);
    sluice_dsem *ds = NULL;
    dc.share = 4;
    dc.downstream = NULL;
    assert_int_equal(sluice_dsem_create(c, &dc, &ds, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "downstream"));
    dc.downstream = name_of(name, SLUICE_CLUSTER_NAME_MAX + 1);
    assert_int_equal(sluice_dsem_create(c, &dc, &ds, err, sizeof err), SLUICE_EINVAL);
    dc.downstream = name_of(name, SLUICE_CLUSTER_NAME_MAX);
    dc.share = 0;
    assert_int_equal(sluice_dsem_create(c, &dc, &ds, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "share"));
    dc.share = 4;
    dc.total_limit = 5;
    dc.free_pool = 2; /* 4 + 2 > 5 */
    assert_int_equal(sluice_dsem_create(c, &dc, &ds, err, sizeof err), SLUICE_EINVAL);
    assert_null(ds);
    dc.free_pool = 1; /* exactly the total */
    dc.fallback_k = 2;
    assert_int_equal(sluice_dsem_create(c, &dc, &ds, err, sizeof err), SLUICE_OK);
    cleanup_push(undo_dsem, ds);
    assert_int_equal(sluice_dsem_release(ds), SLUICE_EOVERFLOW); /* none held */
    assert_int_equal(sluice_dsem_try_acquire(ds), SLUICE_OK);
    assert_int_equal(sluice_dsem_try_acquire(ds), SLUICE_OK);
    assert_int_equal(sluice_dsem_try_acquire(ds), SLUICE_EAGAIN); /* the fallback bound: 2 */
    sluice_dsem_close(ds);
    assert_int_equal(sluice_dsem_try_acquire(ds), SLUICE_ECLOSED);
    assert_int_equal(sluice_dsem_acquire(ds, NULL), SLUICE_ECLOSED); /* would wait for ever if not closed */
    assert_int_equal(sluice_dsem_release(ds), SLUICE_OK);            /* releases still work */
    assert_int_equal(sluice_dsem_release(ds), SLUICE_OK);
    assert_int_equal(sluice_dsem_release(ds), SLUICE_EOVERFLOW);
    cleanup_now(ds);

    sluice_dlimiter_config lc;
    sluice_dlimiter_config_init(&lc);
    sluice_dlimiter *dl = NULL;
    lc.name = name_of(name, SLUICE_CLUSTER_NAME_MAX + 1);
    lc.rate = 10;
    lc.burst = 1;
    assert_int_equal(sluice_dlimiter_create(c, &lc, &dl, err, sizeof err), SLUICE_EINVAL);
    lc.name = name_of(name, SLUICE_CLUSTER_NAME_MAX);
    /* and the range's extremes: just under the smallest, the smallest
     * doubles, just over the largest, and DBL_MAX */
    double bad_rates[] = {0,
                          -1,
                          NAN,
                          -INFINITY,
                          nextafter(SLUICE_DLIMITER_RATE_MIN, 0),
                          DBL_MIN,
                          DBL_TRUE_MIN,
                          nextafter(SLUICE_DLIMITER_RATE_MAX, INFINITY),
                          DBL_MAX};
    for (size_t i = 0; i < sizeof bad_rates / sizeof bad_rates[0]; i++) {
        lc.rate = bad_rates[i];
        assert_int_equal(sluice_dlimiter_create(c, &lc, &dl, err, sizeof err), SLUICE_EINVAL);
        assert_non_null(strstr(err, "rate"));
        assert_null(dl);
    }
    assert_non_null(strstr(err, "SLUICE_DLIMITER_RATE_MAX")); /* the last one names the bound */
    lc.rate = SLUICE_DLIMITER_RATE_MAX; /* the largest is taken, and set_rate's bound is the same */
    lc.burst = 1;
    assert_int_equal(sluice_dlimiter_create(c, &lc, &dl, err, sizeof err), SLUICE_OK);
    cleanup_push(undo_dlimiter, dl);
    assert_int_equal(sluice_dlimiter_set_rate(dl, nextafter(SLUICE_DLIMITER_RATE_MAX, INFINITY)),
                     SLUICE_EINVAL);
    assert_int_equal(sluice_dlimiter_set_rate(dl, DBL_MAX), SLUICE_EINVAL);
    assert_int_equal(sluice_dlimiter_set_rate(dl, nextafter(SLUICE_DLIMITER_RATE_MIN, 0)), SLUICE_EINVAL);
    assert_int_equal(sluice_dlimiter_set_rate(dl, SLUICE_DLIMITER_RATE_MIN), SLUICE_OK);
    assert_int_equal(sluice_dlimiter_set_rate(dl, SLUICE_DLIMITER_RATE_MAX), SLUICE_OK);
    cleanup_now(dl);
    /* A name of 64 bytes works in fallback too (Redis is down here): the
     * fallback bucket was a sluice_limiter named after the limiter, whose
     * names stop at 48 bytes, so it could not be made and every call was
     * refused (reserve said SLUICE_ENOMEM). */
    lc.rate = 1e-3; /* a token in 1000 s: no refill between the calls below, however loaded the box */
    lc.burst = 2;
    lc.fallback_replicas = 1; /* no member list ever read: a lone replica, the whole bucket */
    assert_int_equal(sluice_dlimiter_create(c, &lc, &dl, err, sizeof err), SLUICE_OK);
    cleanup_push(undo_dlimiter, dl);
    assert_true(sluice_dlimiter_allow(dl));
    sluice_reservation r;
    assert_int_equal(sluice_dlimiter_reserve(dl, 1, &r), SLUICE_OK);
    assert_int_equal(r.delay_ns, 0);
    assert_false(sluice_dlimiter_allow(dl)); /* the bucket of 2 is empty */
    assert_int_equal(sluice_dlimiter_reserve(dl, 1, &r), SLUICE_OK);
    assert_true(r.delay_ns > 0 && r.delay_ns <= 1000 * SLUICE_NS_PER_SEC); /* 1e-3/s: a token in 1000 s */
    sluice_dlimiter_stats ls;
    sluice_dlimiter_stats_get(dl, &ls);
    assert_true(ls.fallback);
    assert_int_equal(ls.redis_calls, 0);
    cleanup_now(dl);
    /* wait at the slowest rate, in fallback: the debt's pay-back saturates
     * at the clock's end, and so must the wait's time to act. The sum
     * wrapped to a moment already past, and every wait returned OK at once
     * with its tokens: 100 tokens in 5 calls at 1e-9/s. A deadline before
     * the tokens would come is SLUICE_ETIMEDOUT at once (limiter.h). */
    lc.rate = SLUICE_DLIMITER_RATE_MIN;
    lc.burst = 20;
    assert_int_equal(sluice_dlimiter_create(c, &lc, &dl, err, sizeof err), SLUICE_OK);
    cleanup_push(undo_dlimiter, dl);
    assert_int_equal(sluice_dlimiter_reserve(dl, 20, &r), SLUICE_OK); /* the whole bucket */
    for (int i = 0; i < 5; i++) {
        sluice_ctx *ctx = NULL;
        assert_int_equal(sluice_ctx_with_timeout(&ctx, NULL, SLUICE_NS_PER_SEC, NULL), SLUICE_OK);
        sluice_err werr = sluice_dlimiter_wait(dl, 20, ctx);
        sluice_ctx_release(ctx);
        assert_int_equal(werr, SLUICE_ETIMEDOUT);
    }
    sluice_dlimiter_stats_get(dl, &ls);
    assert_int_equal(ls.wait_timeouts, 5);
    cleanup_now(dl);
    lc.rate = 10;
    lc.burst = 0;
    assert_int_equal(sluice_dlimiter_create(c, &lc, &dl, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "burst"));
    lc.rate = SLUICE_RATE_INF; /* burst ignored */
    assert_int_equal(sluice_dlimiter_create(c, &lc, &dl, err, sizeof err), SLUICE_OK);
    cleanup_push(undo_dlimiter, dl);
    assert_string_equal(sluice_dlimiter_name(dl), name);
    for (int i = 0; i < 100; i++) {
        assert_true(sluice_dlimiter_allow(dl));
        assert_true(sluice_dlimiter_allow_n(dl, UINT64_MAX));
    }
    sluice_dlimiter_stats_get(dl, &ls);
    assert_int_equal(ls.redis_calls, 0);
    assert_int_equal(ls.allowed, 200);
    cleanup_now(dl);
    cleanup_now(c);
}

/* The recovery window after a long outage - a lease TTL + reconnect_max +
 * a heartbeat, during which the semaphore keeps its fallback bound - with
 * reconnect_max at its documented maximum, UINT64_MAX: the window has no
 * end, it must not wrap to a short one. The local clock is a fake one
 * (the outage is "long" on it); Redis is paused, not killed, so it keeps
 * the leases and would grant more as soon as the window ended. Needs
 * redis-server (skipped without it). */
static void test_dsem_recovery_window_at_max_backoff(void **state)
{
    (void)state;
    if (!redis_fixture_available()) {
        skip();
    }
    static redis_fixture redis; /* static: its teardown runs after this frame is gone */
    cleanup_push(undo_redis, &redis);
    assert_true(redis_fixture_start(&redis));
    sluice_fake_clock fake;
    sluice_fake_clock_init(&fake, 1000 * SLUICE_NS_PER_SEC);
    sluice_cluster_config cfg;
    sluice_cluster_config_init(&cfg);
    cfg.redis_port = (unsigned)redis.port;
    cfg.key_prefix = "contracts";
    cfg.service = "orders";
    cfg.replica_id = "solo";
    cfg.clock = &fake.clock;
    cfg.heartbeat_ns = SLUICE_NS_PER_SEC;
    cfg.lease_ttl_ns = 30 * SLUICE_NS_PER_SEC; /* Redis's clock: no lease expires in this test */
    cfg.member_ttl_ns = 30 * SLUICE_NS_PER_SEC;
    /* Long enough that a loaded box (TSan) never times a call out by
     * accident: a spurious fallback after the recovery would take a new
     * bound. Only the one call into the paused Redis waits it out. */
#ifdef SLUICE_SANITIZER
    cfg.redis_timeout_ns = 3 * SLUICE_NS_PER_SEC;
#else
    cfg.redis_timeout_ns = SLUICE_NS_PER_SEC;
#endif
    cfg.reconnect_min_ns = SLUICE_NS_PER_MS;
    cfg.reconnect_max_ns = UINT64_MAX;
    sluice_cluster *c = make_cluster(&cfg);
    assert_int_equal(sluice_cluster_heartbeat_now(c), SLUICE_OK);
    sluice_dsem_config dc;
    sluice_dsem_config_init(&dc);
    dc.downstream = "bank";
    dc.share = 10;
    dc.block = 4;
    sluice_dsem *ds = NULL;
    assert_int_equal(sluice_dsem_create(c, &dc, &ds, NULL, 0), SLUICE_OK);
    cleanup_push(undo_dsem, ds);
    unsigned held = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_dsem_try_acquire(ds), SLUICE_OK);
        held++;
    }
    sluice_dsem_stats st;
    sluice_dsem_stats_get(ds, &st);
    assert_false(st.fallback);

    /* The outage: Redis stops answering; a heartbeat times out. */
    redis_fixture_pause(&redis);
    assert_int_equal(sluice_cluster_heartbeat_now(c), SLUICE_EIO);
    sluice_dsem_stats_get(ds, &st);
    assert_true(st.fallback);
    unsigned bound = st.fallback_bound;
    assert_true(bound >= held && bound < dc.share);
    /* Long on the local clock: past (lease TTL - heartbeat) / 2. */
    sluice_fake_clock_advance(&fake, cfg.lease_ttl_ns);
    redis_fixture_resume(&redis);
    /* Back: the reconnect's backoff (at most 1 ms after the first failure)
     * has passed on the fake clock. */
    bool back = false;
    for (int i = 0; i < 50 && !back; i++) {
        sluice_fake_clock_advance(&fake, 10 * SLUICE_NS_PER_MS);
        back = sluice_cluster_heartbeat_now(c) == SLUICE_OK;
    }
    assert_true(back);
    sluice_dsem_stats_get(ds, &st);
    assert_false(st.fallback);

    /* Far past lease TTL + heartbeat (where a wrapped window would end):
     * still at most the fallback bound in use, however often we ask. */
    sluice_fake_clock_advance(&fake, 3600 * SLUICE_NS_PER_SEC);
    assert_int_equal(sluice_cluster_heartbeat_now(c), SLUICE_OK);
    for (int i = 0; i < 20; i++) {
        if (sluice_dsem_try_acquire(ds) == SLUICE_OK) {
            held++;
        }
        sluice_cluster_heartbeat_now(c);
    }
    sluice_dsem_stats_get(ds, &st);
    if (st.in_use > bound) {
        fail_msg("%u permits in use after the recovery, above the fallback bound %u: the window with "
                 "reconnect_max = UINT64_MAX ended",
                 st.in_use, bound);
    }
    assert_int_equal(st.in_use, held);
    for (unsigned i = 0; i < held; i++) {
        assert_int_equal(sluice_dsem_release(ds), SLUICE_OK);
    }
    cleanup_now(ds);
    cleanup_now(c);
    cleanup_now(&redis);
}

int main(void)
{
    int dead_fd; /* held open for the program's life: nothing listens there */
    int port = redis_fixture_dead_port(&dead_fd);
    if (port <= 0) {
        fprintf(stderr, "no free loopback port\n");
        return 1;
    }
    dead_port = (unsigned)port;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_cluster_config_extremes, cleanup_teardown),
        cmocka_unit_test_teardown(test_cluster_bindings, cleanup_teardown),
        cmocka_unit_test(test_share_k_edges),
        cmocka_unit_test_teardown(test_dsem_dlimiter_refusals, cleanup_teardown),
        cmocka_unit_test_teardown(test_dsem_recovery_window_at_max_backoff, cleanup_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

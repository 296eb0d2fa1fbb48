/*
 * tests/cluster/test_cluster.c - libsluice-cluster in one process: several
 * sluice_cluster objects stand for replicas of a service, against a
 * private redis-server (redis_fixture.h).
 *
 * Covered: the share split at its extremes; membership joins and leaves;
 * share mode resizing real pools so the K sum to the share; fallback on
 * SIGSTOP of Redis (bound, one log line, status) and recovery on SIGCONT;
 * the leased semaphore's limits, fair shares, the free pool, lease
 * expiry of a holder that stops renewing, Redis data loss (grace and
 * re-claim) and NOSCRIPT reload; the GCRA limiter shared by two replicas,
 * its rate changes (in fallback too, on a fake clock), the debt carried
 * back to Redis on recovery, one burst (not one a cycle) while Redis
 * answers heartbeats but fails the limiter's script, a carry of 1e12
 * tokens coming back in one step, a semaphore's block at UINT_MAX, a
 * limiter made while Redis is down
 * and one across a Redis restarted empty, a mixed fleet with replicas of
 * the version before (their script's writes issued directly) and the
 * TAT's precision at the largest rate; budget files and their
 * file:line:col errors; the status report at its extremes (a 1 ns
 * timeout against a stopped Redis, ports past 65535, a 64-byte prefix).
 *
 * Timing: Redis TTLs are small and real; every wait for a Redis-side
 * effect is bounded polling (POLL), never a fixed sleep that asserts.
 *
 * Failures stay in their test: what a test makes is registered
 * (common/cleanup.h) and per_test_end destroys it, Redis resumed first,
 * even when an assertion ended the test half-way.
 */
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka after the standard headers it needs */
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>

#include "cluster/cluster_internal.h"
#include "cluster/redis_fixture.h"
#include "cluster/undo.h"
#include "common/cleanup.h"
#include "sluice/cluster.h"
#include "sluice/sluice.h"

static redis_fixture redis;
/* A port where nothing answers (redis_fixture_dead_port), for the tests of
 * Redis being down; held for the program's life. */
static int dead_port;

/* The TTLs are real time on Redis's clock: a replica whose heartbeat
 * thread is off the CPU for longer than a TTL loses its membership or its
 * lease, and every share and permit count the tests assert changes with
 * it. A Redis round trip took over 500 ms once under TSan on a busy 2-core
 * box, so the TTLs are 1.5 s: a stall that long is a safety margin, not
 * the expected case. (The expiry tests wait for them by bounded polling.) */
#define HB_MS 50
#define MEMBER_TTL_MS 1500
#define LEASE_TTL_MS 1500

/* Generous: a loaded CI box must not fall back by accident. Under the
 * sanitizers (5-15x slower) a Redis round trip on a busy 2-core box took
 * over 500 ms once and the fair-share check saw a fallback. */
#ifdef SLUICE_SANITIZER
#define REDIS_TIMEOUT_MS 3000
#else
#define REDIS_TIMEOUT_MS 500
#endif

/* Poll `cond` every 10 ms for at most `ms`; evaluates to its last value. */
#define POLL(cond, ms)                                                                                       \
    ({                                                                                                       \
        bool ok_ = false;                                                                                    \
        for (int i_ = 0; i_ <= (ms) / 10 && !(ok_ = (cond)); i_++) {                                         \
            fixture_sleep_ms(10);                                                                            \
        }                                                                                                    \
        ok_;                                                                                                 \
    })

/* A try_acquire answers EAGAIN, without asking Redis, while the cluster
 * thread's renewal of the semaphore is in flight (dsem.c: one lease call
 * at a time per semaphore; a renewal runs every heartbeat), so a test
 * that expects a permit retries an EAGAIN (bounded) before it counts the
 * permit missing. */
#define TAKE_ONE(ds) POLL(sluice_dsem_try_acquire(ds) == SLUICE_OK, 5000)

static int setup(void **state)
{
    (void)state;
    return redis_fixture_start(&redis) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    redis_fixture_stop(&redis);
    return 0;
}

/* Each test gets its own key prefix, so tests do not see each other. */
static char prefix[32];
static int per_test(void **state)
{
    (void)state;
    static int n;
    snprintf(prefix, sizeof prefix, "t%d", ++n);
    if (redis.pid > 0) {
        redis_fixture_resume(&redis); /* a failed test may have left it stopped */
    }
    if (redis.pid == 0 || kill(redis.pid, 0) != 0) {
        redis_fixture_stop(&redis); /* reaps the dead one, removes its directory */
        return redis_fixture_start(&redis) ? 0 : -1;
    }
    return 0;
}

/* What a test makes is registered (common/cleanup.h) with one of these or
 * those of cluster/undo.h, so a failed assertion does not leave clusters,
 * their threads and their Redis state running into the next test:
 * per_test_end undoes it. */
static void undo_logger(void *p)
{
    sluice_logger_destroy(p);
}

static void undo_ctx(void *p)
{
    sluice_ctx_release(p);
}

/* After each test, passed or failed: Redis running again (a failed test
 * may have left it stopped, and the destroys below talk to it), then
 * whatever the test did not destroy, newest first. */
static int per_test_end(void **state)
{
    redis_fixture_resume(&redis);
    return cleanup_teardown(state);
}

typedef struct log_count {
    _Atomic int fallback, recovered;
} log_count;

static void count_sink(void *user, sluice_log_level level, const char *line, size_t len)
{
    (void)level;
    (void)len;
    log_count *lc = user;
    if (strstr(line, "budget fallback")) {
        atomic_fetch_add(&lc->fallback, 1);
    }
    if (strstr(line, "budget recovered")) {
        atomic_fetch_add(&lc->recovered, 1);
    }
}

static sluice_cluster *replica(const char *service, const char *id, sluice_logger *lg)
{
    sluice_cluster_config cfg;
    sluice_cluster_config_init(&cfg);
    cfg.redis_port = (unsigned)redis.port;
    cfg.key_prefix = prefix;
    cfg.service = service;
    cfg.replica_id = id;
    cfg.heartbeat_ns = HB_MS * SLUICE_NS_PER_MS;
    cfg.member_ttl_ns = MEMBER_TTL_MS * SLUICE_NS_PER_MS;
    cfg.lease_ttl_ns = LEASE_TTL_MS * SLUICE_NS_PER_MS;
    cfg.redis_timeout_ns = REDIS_TIMEOUT_MS * SLUICE_NS_PER_MS;
    cfg.reconnect_min_ns = 10 * SLUICE_NS_PER_MS;
    cfg.reconnect_max_ns = 100 * SLUICE_NS_PER_MS;
    cfg.logger = lg;
    sluice_cluster *c = NULL;
    char err[256];
    sluice_err e = sluice_cluster_create(&cfg, &c, err, sizeof err);
    if (e) {
        fail_msg("sluice_cluster_create: %s", err);
    }
    return cleanup_push(undo_cluster, c);
}

static unsigned members_of(sluice_cluster *c)
{
    sluice_cluster_heartbeat_now(c);
    sluice_cluster_status st;
    sluice_cluster_status_get(c, &st);
    return st.members;
}

/* ---- share split ----------------------------------------------------------- */

static void test_share_k_sums(void **state)
{
    (void)state;
    const unsigned shares[] = {1, 2, 7, 10, 50, 80, 1000, 65537};
    for (size_t s = 0; s < sizeof shares / sizeof shares[0]; s++) {
        for (unsigned n = 1; n <= 40; n++) {
            unsigned long long sum = 0;
            unsigned lo = UINT32_MAX, hi = 0;
            for (unsigned r = 0; r < n; r++) {
                unsigned k = sluice_share_k(shares[s], n, r);
                sum += k;
                lo = k < lo ? k : lo;
                hi = k > hi ? k : hi;
            }
            assert_int_equal(sum, shares[s]);
            assert_true(hi - lo <= 1); /* the remainder spreads, one each */
        }
    }
    assert_int_equal(sluice_share_k(10, 0, 0), 10);
    assert_int_equal(sluice_share_k(2, 5, 4), 0); /* share < replicas: some get 0 */
    assert_int_equal(sluice_share_k(UINT32_MAX, 1, 0), UINT32_MAX);
    assert_int_equal(sluice_share_k(UINT32_MAX, 2, 0), UINT32_MAX / 2 + 1);
}

static void test_config_errors(void **state)
{
    (void)state;
    sluice_cluster_config cfg;
    sluice_cluster_config_init(&cfg);
    sluice_cluster *c = NULL;
    char err[256];
    assert_int_equal(sluice_cluster_create(&cfg, &c, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "service"));
    cfg.service = "bad name";
    assert_int_equal(sluice_cluster_create(&cfg, &c, err, sizeof err), SLUICE_EINVAL);
    cfg.service = "svc";
    cfg.heartbeat_ns = SLUICE_NS_PER_SEC;
    cfg.member_ttl_ns = SLUICE_NS_PER_SEC;
    assert_int_equal(sluice_cluster_create(&cfg, &c, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "member_ttl"));
    assert_null(c);
    /* The reconnect backoff: min above max is refused, after the defaults
     * (50 ms / 2 s) fill what is 0. */
    cfg.member_ttl_ns = 0;
    cfg.reconnect_min_ns = 3 * SLUICE_NS_PER_SEC; /* above the default max */
    assert_int_equal(sluice_cluster_create(&cfg, &c, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "reconnect_min"));
    cfg.reconnect_min_ns = 0;
    cfg.reconnect_max_ns = 10 * SLUICE_NS_PER_MS; /* below the default min */
    assert_int_equal(sluice_cluster_create(&cfg, &c, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "reconnect_max"));
    assert_null(c);
    sluice_cluster_destroy(NULL);
    sluice_dsem_destroy(NULL);
    sluice_dlimiter_destroy(NULL);
}

/* ---- membership --------------------------------------------------------------- */

static void test_membership_join_leave(void **state)
{
    (void)state;
    sluice_cluster *a = replica("orders", "a", NULL);
    assert_int_equal(members_of(a), 1);
    sluice_cluster *b = replica("orders", "b", NULL);
    sluice_cluster *c = replica("orders", "c", NULL);
    sluice_cluster *other = replica("refunds", "a", NULL); /* another service: not counted */
    /* Every replica knows the count after its next heartbeat. */
    assert_int_equal(members_of(a), 3);
    assert_int_equal(members_of(b), 3);
    assert_int_equal(members_of(c), 3);
    assert_int_equal(members_of(other), 1);
    char ids[4][SLUICE_CLUSTER_NAME_MAX + 1];
    assert_int_equal(sluice_cluster_members(b, ids, 4), 3);
    assert_string_equal(ids[0], "a");
    assert_string_equal(ids[2], "c");
    sluice_cluster_status st;
    sluice_cluster_status_get(c, &st);
    assert_int_equal(st.rank, 2);
    assert_true(st.redis_up);
    assert_false(st.fallback);
    /* A graceful leave is seen at the next heartbeat (no TTL wait). */
    cleanup_now(b);
    assert_int_equal(members_of(a), 2);
    assert_int_equal(sluice_cluster_members(a, ids, 4), 2);
    assert_string_equal(ids[1], "c");
    /* The background thread keeps the view fresh without heartbeat_now. */
    sluice_cluster *d = replica("orders", "d", NULL);
    assert_true(POLL((sluice_cluster_status_get(a, &st), st.members == 3), 5000));
    cleanup_now(d);
    cleanup_now(c);
    cleanup_now(other);
    cleanup_now(a);
}

/* A replica that stops heartbeating (a crash, seen from Redis) is
 * dropped once its TTL passes, by Redis's clock. The crash is simulated
 * by writing a member whose expiry is near, as a dead replica leaves it. */
static void test_membership_expiry(void **state)
{
    (void)state;
    sluice_cluster *a = replica("orders", "a", NULL);
    char key[96];
    snprintf(key, sizeof key, "%s:svc:orders:members", prefix);
    redisReply *t = redis_fixture_cmd(&redis, "TIME");
    assert_non_null(t);
    long long now_ms = atoll(t->element[0]->str) * 1000 + atoll(t->element[1]->str) / 1000;
    freeReplyObject(t);
    redisReply *r = redis_fixture_cmd(&redis, "ZADD %s %lld dead", key, now_ms + MEMBER_TTL_MS);
    assert_non_null(r);
    freeReplyObject(r);
    assert_int_equal(members_of(a), 2);
    assert_true(POLL(members_of(a) == 1, 5 * MEMBER_TTL_MS));
    cleanup_now(a);
}

/* ---- share mode ------------------------------------------------------------------ */

static sluice_pool *make_pool(const char *name)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = name;
    pc.workers = 4;
    pc.queue_capacity = 16;
    sluice_pool *p = NULL;
    char err[256];
    if (sluice_pool_create(&pc, &p, err, sizeof err)) {
        fail_msg("pool: %s", err);
    }
    return cleanup_push(undo_pool, p);
}

static unsigned pool_k(sluice_pool *p)
{
    sluice_pool_config pc;
    sluice_pool_config_get(p, &pc);
    return pc.workers; /* the live K */
}

static void test_share_mode_sum(void **state)
{
    (void)state;
    enum { N = 4, SHARE = 10 };
    sluice_cluster *c[N] = {0};
    sluice_pool *p[N];
    unsigned id[N];
    char name[8];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "r%d", i);
        p[i] = make_pool(name);
    }
    int live = 0;
    for (int step = 0; step < 2 * N; step++) {
        /* joins, then leaves */
        if (step < N) {
            snprintf(name, sizeof name, "r%d", step);
            c[step] = replica("orders", name, NULL);
            sluice_share_binding b = {.pool = p[step], .share = SHARE};
            assert_int_equal(sluice_cluster_bind_share(c[step], &b, &id[step]), SLUICE_OK);
            live++;
        } else {
            int i = step - N;
            sluice_cluster_unbind(c[i], id[i]);
            cleanup_now(c[i]);
            c[i] = NULL;
            live--;
            if (live == 0) {
                break;
            }
        }
        /* Within one heartbeat of each replica, the K sum to the share. */
        unsigned sum = 0;
        for (int i = 0; i < N; i++) {
            if (c[i]) {
                sluice_cluster_heartbeat_now(c[i]);
            }
        }
        for (int i = 0; i < N; i++) {
            if (c[i]) {
                unsigned k = sluice_cluster_share_k_get(c[i], id[i]);
                assert_int_equal(k, pool_k(p[i]));
                sum += k;
            }
        }
        assert_int_equal(sum, SHARE);
    }
    for (int i = 0; i < N; i++) {
        cleanup_now(p[i]);
    }
}

typedef struct k_seen {
    _Atomic unsigned k;
    _Atomic int reason;
} k_seen;

static void on_k(void *user, unsigned k, sluice_share_reason reason)
{
    k_seen *ks = user;
    atomic_store(&ks->k, k);
    atomic_store(&ks->reason, (int)reason);
}

/* SIGSTOP Redis: the replica falls back to min(fallback_k, last K), logs
 * once, reports it; SIGCONT: it recovers and logs once. */
static void test_share_fallback_stop_cont(void **state)
{
    (void)state;
    log_count lc = {0};
    sluice_log_config lcfg;
    sluice_log_config_init(&lcfg);
    lcfg.sink = count_sink;
    lcfg.sink_user = &lc;
    sluice_logger *lg = NULL;
    assert_int_equal(sluice_logger_create(&lcfg, &lg), SLUICE_OK);
    cleanup_push(undo_logger, lg);
    sluice_cluster *a = replica("orders", "a", lg);
    sluice_cluster *b = replica("orders", "b", NULL);
    members_of(a);
    k_seen ka = {0}, kb = {0};
    sluice_share_binding ba = {.share = 9, .on_k = on_k, .user = &ka};
    sluice_share_binding bb = {.share = 9, .fallback_k = 2, .on_k = on_k, .user = &kb};
    unsigned ida, idb;
    assert_int_equal(sluice_cluster_bind_share(a, &ba, &ida), SLUICE_OK);
    assert_int_equal(sluice_cluster_bind_share(b, &bb, &idb), SLUICE_OK);
    sluice_cluster_heartbeat_now(a);
    assert_int_equal(atomic_load(&ka.k), 5);
    assert_int_equal(atomic_load(&kb.k), 4);

    redis_fixture_pause(&redis);
    assert_int_equal(sluice_cluster_heartbeat_now(a), SLUICE_EIO);
    sluice_cluster_heartbeat_now(b);
    sluice_cluster_status st;
    sluice_cluster_status_get(a, &st);
    assert_true(st.fallback);
    assert_false(st.redis_up);
    assert_int_equal(st.members, 2);         /* last known */
    assert_int_equal(atomic_load(&ka.k), 5); /* last share / replicas: unchanged, no call */
    assert_int_equal(atomic_load(&kb.k), 2); /* min(fallback_k, last) */
    assert_int_equal(atomic_load(&kb.reason), SLUICE_SHARE_FALLBACK);
    for (int i = 0; i < 3; i++) {
        sluice_cluster_heartbeat_now(a); /* more failures: no more lines */
    }
    assert_int_equal(atomic_load(&lc.fallback), 1);

    redis_fixture_resume(&redis);
    assert_true(POLL(sluice_cluster_heartbeat_now(a) == SLUICE_OK, 5000));
    assert_true(POLL(sluice_cluster_heartbeat_now(b) == SLUICE_OK, 5000));
    sluice_cluster_status_get(a, &st);
    assert_false(st.fallback);
    assert_int_equal(st.fallbacks, 1);
    assert_true(POLL((sluice_cluster_heartbeat_now(b), atomic_load(&kb.k) == 4), 5000));
    assert_int_equal(atomic_load(&kb.reason), SLUICE_SHARE_VIEW);
    assert_int_equal(atomic_load(&lc.recovered), 1);
    cleanup_now(a);
    cleanup_now(b);
    cleanup_now(lg);
}

/* No Redis at all: the cluster starts in fallback with fallback_k (or 1). */
static void test_no_redis_at_start(void **state)
{
    (void)state;
    sluice_cluster_config cfg;
    sluice_cluster_config_init(&cfg);
    cfg.redis_port = (unsigned)dead_port;
    cfg.service = "orders";
    cfg.heartbeat_ns = HB_MS * SLUICE_NS_PER_MS;
    sluice_cluster *c = NULL;
    assert_int_equal(sluice_cluster_create(&cfg, &c, NULL, 0), SLUICE_OK);
    cleanup_push(undo_cluster, c);
    sluice_cluster_status st;
    sluice_cluster_status_get(c, &st);
    assert_true(st.fallback);
    assert_false(st.have_view);
    k_seen k1 = {0}, k2 = {0};
    sluice_share_binding b1 = {.share = 50, .on_k = on_k, .user = &k1};
    sluice_share_binding b2 = {.share = 50, .fallback_k = 3, .on_k = on_k, .user = &k2};
    assert_int_equal(sluice_cluster_bind_share(c, &b1, NULL), SLUICE_OK);
    assert_int_equal(sluice_cluster_bind_share(c, &b2, NULL), SLUICE_OK);
    assert_int_equal(atomic_load(&k1.k), 1);
    assert_int_equal(atomic_load(&k2.k), 3);
    sluice_dsem_config dc;
    sluice_dsem_config_init(&dc);
    dc.downstream = "bank";
    dc.share = 10;
    sluice_dsem *ds = NULL;
    assert_int_equal(sluice_dsem_create(c, &dc, &ds, NULL, 0), SLUICE_OK);
    cleanup_push(undo_dsem, ds);
    assert_true(TAKE_ONE(ds)); /* the fallback bound: 1 */
    assert_int_equal(sluice_dsem_try_acquire(ds), SLUICE_EAGAIN);
    assert_int_equal(sluice_dsem_release(ds), SLUICE_OK);
    assert_int_equal(sluice_dsem_release(ds), SLUICE_EOVERFLOW);
    cleanup_now(ds);
    cleanup_now(c);
}

/* The backoff at its maximum: bounds of UINT64_MAX are accepted, and a
 * failed connect with them must neither divide by zero (bound + 1 wraps)
 * nor wrap the next attempt to "now" (a tight reconnect loop). */
static void test_reconnect_backoff_at_max(void **state)
{
    (void)state;
    sluice_cluster_config cfg;
    sluice_cluster_config_init(&cfg);
    cfg.redis_port = (unsigned)dead_port;
    cfg.service = "orders";
    cfg.heartbeat_ns = HB_MS * SLUICE_NS_PER_MS;
    cfg.reconnect_min_ns = UINT64_MAX;
    cfg.reconnect_max_ns = UINT64_MAX;
    sluice_cluster *c = NULL;
    char err[256];
    assert_int_equal(sluice_cluster_create(&cfg, &c, err, sizeof err), SLUICE_OK);
    cleanup_push(undo_cluster, c);
    sluice_cluster_status st;
    sluice_cluster_status_get(c, &st);
    assert_true(st.fallback);
    uint64_t errors = st.redis_errors;
    /* Forced beats: the backoff (unbounded here) refuses every reconnect,
     * so no further connect is tried and no error is added. */
    for (int i = 0; i < 3; i++) {
        sluice_cluster_heartbeat_now(c);
    }
    sluice_cluster_status_get(c, &st);
    assert_true(st.fallback);
    assert_int_equal(st.redis_errors, errors);
    cleanup_now(c);
}

/* ---- strict mode ------------------------------------------------------------------ */

static sluice_dsem *dsem(sluice_cluster *c, unsigned share, unsigned total, unsigned free_pool,
                         unsigned block)
{
    sluice_dsem_config dc;
    sluice_dsem_config_init(&dc);
    dc.downstream = "bank";
    dc.share = share;
    dc.total_limit = total;
    dc.free_pool = free_pool;
    dc.block = block;
    sluice_dsem *ds = NULL;
    char err[256];
    if (sluice_dsem_create(c, &dc, &ds, err, sizeof err)) {
        fail_msg("dsem: %s", err);
    }
    return cleanup_push(undo_dsem, ds);
}

/* cluster.h at its extremes with Redis running. The smallest TTLs (a
 * heartbeat of 1 ms, the least create takes, and member and lease TTLs of
 * 1 ms + 1 ns, the least "longer than the heartbeat") reached the scripts
 * rounded down to whole milliseconds, 1 ms: no longer than the heartbeat,
 * so a member or a lease could expire between beats, which create refuses
 * to configure. They are rounded up now (2 ms). On a fake clock that
 * never moves the cluster threads never beat on their own. The largest
 * values (redis_timeout, member and lease TTLs at UINT64_MAX) connect,
 * beat and lease. sluice_cluster_members: the count whatever cap, cap 0
 * writes nothing. */
static sluice_cluster *extreme_replica(const char *id, sluice_fake_clock *fake, uint64_t hb, uint64_t ttl,
                                       uint64_t timeout)
{
    sluice_cluster_config cfg;
    sluice_cluster_config_init(&cfg);
    cfg.redis_port = (unsigned)redis.port;
    cfg.key_prefix = prefix;
    cfg.service = "orders";
    cfg.replica_id = id;
    cfg.clock = &fake->clock;
    cfg.heartbeat_ns = hb;
    cfg.member_ttl_ns = ttl;
    cfg.lease_ttl_ns = ttl;
    cfg.redis_timeout_ns = timeout;
    sluice_cluster *c = NULL;
    char err[256];
    if (sluice_cluster_create(&cfg, &c, err, sizeof err)) {
        fail_msg("sluice_cluster_create: %s", err);
    }
    return cleanup_push(undo_cluster, c);
}

static void test_cluster_extremes_with_redis(void **state)
{
    (void)state;
    static sluice_fake_clock fake;
    sluice_fake_clock_init(&fake, 1000 * SLUICE_NS_PER_SEC);
    /* the smallest TTLs */
    const uint64_t hb = SLUICE_NS_PER_MS, ttl = SLUICE_NS_PER_MS + 1;
    sluice_cluster *a = extreme_replica("a", &fake, hb, ttl, REDIS_TIMEOUT_MS * SLUICE_NS_PER_MS);
    sluice_cluster *b = extreme_replica("b", &fake, hb, ttl, REDIS_TIMEOUT_MS * SLUICE_NS_PER_MS);
    assert_int_equal(sluice_cluster_heartbeat_now(a), SLUICE_OK);
    assert_int_equal(sluice_cluster_heartbeat_now(b), SLUICE_OK);
    sluice_cluster_status st;
    sluice_cluster_status_get(b, &st);
    assert_true(st.have_view);
    assert_false(st.fallback);
    /* b saw itself at least; a's member may have expired in the 2 ms
     * between (Redis time runs) */
    assert_true(st.members >= 1 && st.members <= 2);
    char ids[3][SLUICE_CLUSTER_NAME_MAX + 1];
    memset(ids, 0, sizeof ids);
    size_t n = sluice_cluster_members(b, ids, 0); /* cap 0: the count, nothing written */
    assert_int_equal(n, st.members);
    assert_int_equal(ids[0][0], 0);
    n = sluice_cluster_members(b, ids, 3);
    assert_int_equal(n, st.members);
    assert_string_equal(ids[n - 1], "b");
    /* a lease of 1 ms + 1 ns lives 2 ms of Redis time (it was 1 ms, the
     * heartbeat: it could expire between renewals). The first lease call
     * creates the epoch with the same `now` as the lease's expiry, so
     * their difference is the TTL the script was given. The thread never
     * ticks (the fake clock stands still): the try is the only lease
     * call. */
    sluice_dsem *da = dsem(a, 4, 4, 0, 1);
    assert_int_equal(sluice_dsem_try_acquire(da), SLUICE_OK);
    redisReply *ep = redis_fixture_cmd(&redis, "HGET %s:ds:bank:meta epoch", prefix);
    redisReply *exp = redis_fixture_cmd(&redis, "ZSCORE %s:ds:bank:exp orders|a", prefix);
    assert_non_null(ep);
    assert_non_null(exp);
    assert_int_equal(ep->type, REDIS_REPLY_STRING);
    assert_int_equal(exp->type, REDIS_REPLY_STRING);
    long long ttl_ms = strtoll(exp->str, NULL, 10) - strtoll(ep->str, NULL, 10);
    freeReplyObject(ep);
    freeReplyObject(exp);
    assert_int_equal(ttl_ms, 2);
    assert_int_equal(sluice_dsem_release(da), SLUICE_OK);
    cleanup_now(da);
    cleanup_now(b);
    cleanup_now(a);

    /* the largest: redis_timeout and TTLs at UINT64_MAX */
    sluice_cluster *m = extreme_replica("m", &fake, SLUICE_NS_PER_SEC, UINT64_MAX, UINT64_MAX);
    assert_int_equal(sluice_cluster_heartbeat_now(m), SLUICE_OK);
    sluice_cluster_status_get(m, &st);
    assert_false(st.fallback);
    assert_int_equal(st.members, 1);
    assert_int_equal(sluice_cluster_members(m, ids, 1), 1);
    assert_string_equal(ids[0], "m");
    sluice_dsem *dm = dsem(m, 4, 4, 0, 0);
    assert_int_equal(sluice_dsem_try_acquire(dm), SLUICE_OK);
    sluice_dsem_stats ds;
    sluice_dsem_stats_get(dm, &ds);
    assert_false(ds.fallback);
    assert_true(ds.leased >= 1);
    assert_int_equal(sluice_dsem_release(dm), SLUICE_OK);
    cleanup_now(dm);
    cleanup_now(m);
}

/* Take the `want` permits the test expects (each TAKE_ONE), then try one
 * more, which must fail. Returns how many were taken: want when exactly
 * want were there, fewer when one did not come within the safety limit,
 * want + 1 when there was one too many (an EAGAIN of that last try during
 * a renewal can only hide an extra permit, never fail the test). */
static unsigned take_all(sluice_dsem *ds, unsigned want)
{
    unsigned n = 0;
    while (n < want && TAKE_ONE(ds)) {
        n++;
    }
    if (n == want && sluice_dsem_try_acquire(ds) == SLUICE_OK) {
        n++;
    }
    return n;
}

static long long redis_hget_int(const char *key, const char *field)
{
    redisReply *r = redis_fixture_cmd(&redis, "HGET %s %s", key, field);
    long long v = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    if (r) {
        freeReplyObject(r);
    }
    return v;
}

static void test_dsem_limit_and_fair_shares(void **state)
{
    (void)state;
    sluice_cluster *a = replica("orders", "a", NULL);
    sluice_cluster *b = replica("orders", "b", NULL);
    members_of(a);
    members_of(b);
    sluice_dsem *da = dsem(a, 11, 0, 0, 0);
    sluice_dsem *db = dsem(b, 11, 0, 0, 0);
    /* Rank 0 gets 6, rank 1 gets 5: the fair shares sum to the limit. */
    assert_int_equal(take_all(da, 6), 6);
    assert_int_equal(take_all(db, 5), 5);
    sluice_dsem_stats st;
    sluice_dsem_stats_get(da, &st);
    assert_int_equal(st.cap, 6);
    assert_int_equal(st.leased, 6);
    assert_int_equal(st.in_use, 6);
    char key[96];
    snprintf(key, sizeof key, "%s:ds:bank:meta", prefix);
    assert_int_equal(redis_hget_int(key, "held"), 11);
    /* Waiting with a deadline ends in SLUICE_ETIMEDOUT. */
    sluice_ctx *ctx = NULL;
    assert_int_equal(sluice_ctx_with_timeout(&ctx, NULL, 30 * SLUICE_NS_PER_MS, NULL), SLUICE_OK);
    cleanup_push(undo_ctx, ctx);
    assert_int_equal(sluice_dsem_acquire(da, ctx), SLUICE_ETIMEDOUT);
    cleanup_now(ctx);
    /* Releases are local and cheap; the renewals return what is idle
     * beyond one block. */
    for (int i = 0; i < 6; i++) {
        assert_int_equal(sluice_dsem_release(da), SLUICE_OK);
    }
    sluice_cluster_heartbeat_now(a);
    sluice_dsem_stats_get(da, &st);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(st.leased, 2); /* one block: a quarter of 6, rounded up */
    assert_true(st.returned >= 4);
    /* A third replica joins: caps become 4,4,3; the over-share replica
     * hands out nothing until it is under its new cap. */
    sluice_cluster *c = replica("orders", "c", NULL);
    members_of(c);
    sluice_dsem *dc = dsem(c, 11, 0, 0, 0);
    sluice_cluster_heartbeat_now(a);
    sluice_cluster_heartbeat_now(b);
    sluice_dsem_stats_get(db, &st);
    assert_int_equal(st.cap, 4);
    assert_int_equal(sluice_dsem_try_acquire(db), SLUICE_EAGAIN); /* 5 in use > 4 */
    assert_int_equal(sluice_dsem_release(db), SLUICE_OK);
    assert_int_equal(sluice_dsem_release(db), SLUICE_OK);
    sluice_cluster_heartbeat_now(b); /* gives the excess back */
    assert_int_equal(take_all(dc, 3), 3);
    assert_int_equal(take_all(da, 4), 4);
    assert_true(redis_hget_int(key, "held") <= 11);
    sluice_dsem_close(dc);
    assert_int_equal(sluice_dsem_acquire(dc, NULL), SLUICE_ECLOSED);
    for (int i = 0; i < 3; i++) {
        sluice_dsem_release(dc);
        sluice_dsem_release(db);
    }
    for (int i = 0; i < 4; i++) {
        sluice_dsem_release(da);
    }
    cleanup_now(dc);
    cleanup_now(da);
    cleanup_now(db);
    /* Every permit went back on destroy. */
    assert_int_equal(redis_hget_int(key, "held"), 0);
    cleanup_now(c);
    cleanup_now(a);
    cleanup_now(b);
}

/* A holder that stops renewing (a crash, as Redis sees it) loses its
 * permits once the lease TTL passes on Redis's clock. */
static void test_dsem_lease_expiry(void **state)
{
    (void)state;
    sluice_cluster *a = replica("orders", "a", NULL);
    sluice_cluster *b = replica("orders", "b", NULL);
    members_of(a);
    members_of(b);
    sluice_dsem *db = dsem(b, 10, 0, 0, 0);
    /* a "crashed" holder: a lease record whose expiry is near */
    char held[96], exp[96], svc[96], meta[96];
    snprintf(held, sizeof held, "%s:ds:bank:held", prefix);
    snprintf(exp, sizeof exp, "%s:ds:bank:exp", prefix);
    snprintf(svc, sizeof svc, "%s:ds:bank:svc", prefix);
    snprintf(meta, sizeof meta, "%s:ds:bank:meta", prefix);
    assert_int_equal(take_all(db, 5), 5); /* b's fair share, epoch made */
    redisReply *t = redis_fixture_cmd(&redis, "TIME");
    long long now_ms = atoll(t->element[0]->str) * 1000 + atoll(t->element[1]->str) / 1000;
    freeReplyObject(t);
    freeReplyObject(redis_fixture_cmd(&redis, "HSET %s orders|a 5", held));
    freeReplyObject(redis_fixture_cmd(&redis, "ZADD %s %lld orders|a", exp, now_ms + LEASE_TTL_MS));
    freeReplyObject(redis_fixture_cmd(&redis, "HINCRBY %s orders 5", svc));
    freeReplyObject(redis_fixture_cmd(&redis, "HINCRBY %s held 5", meta));
    assert_int_equal(redis_hget_int(meta, "held"), 10);
    /* b is at its cap; the dead lease comes back within the TTL. */
    assert_true(
        POLL((sluice_cluster_heartbeat_now(b), redis_hget_int(held, "orders|a") == 0), 10 * LEASE_TTL_MS));
    assert_int_equal(redis_hget_int(meta, "held"), 5);
    for (int i = 0; i < 5; i++) {
        sluice_dsem_release(db);
    }
    cleanup_now(db);
    cleanup_now(a);
    cleanup_now(b);
}

/* Two services share a downstream: each gets its share; the free pool
 * is lent to one that wants more and is not lent twice. */
static void test_dsem_free_pool(void **state)
{
    (void)state;
    sluice_cluster *o = replica("orders", "o", NULL);
    sluice_cluster *r = replica("refunds", "r", NULL);
    sluice_dsem *dso = dsem(o, 5, 12, 2, 1);
    sluice_dsem *dsr = dsem(r, 5, 12, 2, 1);
    assert_int_equal(take_all(dso, 7), 7); /* share 5 + the free pool 2 */
    sluice_dsem_stats st;
    sluice_dsem_stats_get(dso, &st);
    assert_int_equal(st.cap, 7);
    assert_int_equal(take_all(dsr, 5), 5); /* its own share, nothing left to borrow */
    /* orders ends two calls: its renewal keeps one block (1) of headroom
     * and gives the other permit back; refunds may borrow that one. */
    sluice_dsem_release(dso);
    sluice_dsem_release(dso);
    sluice_cluster_heartbeat_now(o);
    sluice_dsem_stats_get(dso, &st);
    assert_int_equal(st.leased, 6);
    assert_int_equal(take_all(dsr, 1), 1);
    assert_int_equal(take_all(dso, 1), 1); /* its headroom, no more */
    for (int i = 0; i < 6; i++) {
        assert_int_equal(sluice_dsem_release(dsr), SLUICE_OK);
        assert_int_equal(sluice_dsem_release(dso), SLUICE_OK);
    }
    cleanup_now(dso);
    cleanup_now(dsr);
    cleanup_now(o);
    cleanup_now(r);
}

/* SIGSTOP: the bound is what was leased (within the fair share); nothing
 * more is handed out. SIGCONT: renewals resume and the lease comes back. */
static void test_dsem_fallback(void **state)
{
    (void)state;
    sluice_cluster *a = replica("orders", "a", NULL);
    sluice_dsem *da = dsem(a, 8, 0, 0, 2);
    assert_true(TAKE_ONE(da));
    /* The permit may have come from a renewal's block (target 0 in use +
     * 2) rather than from the acquire's own lease (1 + 2); a renewal now
     * sets the lease to 1 in use + one block either way. */
    assert_int_equal(sluice_cluster_heartbeat_now(a), SLUICE_OK);
    sluice_dsem_stats st;
    sluice_dsem_stats_get(da, &st);
    unsigned leased = st.leased; /* 1 in use + a block of 2 */
    assert_int_equal(leased, 3);
    redis_fixture_pause(&redis);
    sluice_cluster_heartbeat_now(a);
    sluice_dsem_stats_get(da, &st);
    assert_true(st.fallback);
    assert_int_equal(st.fallback_bound, 3);
    assert_int_equal(take_all(da, 2), 2); /* up to the bound, no Redis call */
    redis_fixture_resume(&redis);
    assert_true(POLL((sluice_cluster_heartbeat_now(a), sluice_dsem_stats_get(da, &st), !st.fallback), 5000));
    assert_int_equal(st.in_use, 3);
    assert_true(st.leased >= 3);
    for (int i = 0; i < 3; i++) {
        sluice_dsem_release(da);
    }
    cleanup_now(da);
    cleanup_now(a);
}

/* ---- a TCP proxy in front of Redis, to cut one replica off ------------------ */

#include <poll.h>

typedef struct proxy {
    int lfd, port;
    _Atomic bool blocked, stop;
    _Atomic int pumps; /* live pump threads; proxy_stop waits for 0 */
    pthread_t th;
} proxy;

typedef struct pump_arg {
    proxy *px;
    int a, b;
} pump_arg;

/* Copies both ways until either side closes or the proxy is blocked. */
static void *pump(void *arg)
{
    pump_arg *pa = arg;
    char buf[4096];
    struct pollfd fds[2] = {{pa->a, POLLIN, 0}, {pa->b, POLLIN, 0}};
    while (!atomic_load(&pa->px->blocked) && !atomic_load(&pa->px->stop)) {
        if (poll(fds, 2, 20) <= 0) {
            continue;
        }
        bool done = false;
        for (int k = 0; k < 2 && !done; k++) {
            if (fds[k].revents) {
                ssize_t n = read(fds[k].fd, buf, sizeof buf);
                done = n <= 0 || write(fds[1 - k].fd, buf, (size_t)n) != n;
            }
        }
        if (done) {
            break;
        }
    }
    close(pa->a);
    close(pa->b);
    proxy *px = pa->px;
    free(pa);
    atomic_fetch_sub(&px->pumps, 1); /* last touch of px: pairs with proxy_stop's load */
    return NULL;
}

static void *proxy_main(void *arg)
{
    proxy *px = arg;
    struct pollfd pfd = {px->lfd, POLLIN, 0};
    while (!atomic_load(&px->stop)) {
        if (poll(&pfd, 1, 20) <= 0) {
            continue;
        }
        int c = accept(px->lfd, NULL, NULL);
        if (c < 0) {
            continue;
        }
        int r = -1;
        if (!atomic_load(&px->blocked)) {
            struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)redis.port)};
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            r = socket(AF_INET, SOCK_STREAM, 0);
            if (r >= 0 && connect(r, (struct sockaddr *)&a, sizeof a) != 0) {
                close(r);
                r = -1;
            }
        }
        if (r < 0) {
            close(c); /* blocked: the replica sees a refused call */
            continue;
        }
        pump_arg *pa = malloc(sizeof *pa);
        *pa = (pump_arg){px, c, r};
        pthread_t t;
        atomic_fetch_add(&px->pumps, 1);
        if (pthread_create(&t, NULL, pump, pa) != 0) {
            atomic_fetch_sub(&px->pumps, 1);
            close(c);
            close(r);
            free(pa);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

static void proxy_start(proxy *px)
{
    memset(px, 0, sizeof *px);
    px->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    assert_int_equal(bind(px->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(px->lfd, 16), 0);
    assert_int_equal(getsockname(px->lfd, (struct sockaddr *)&a, &len), 0);
    px->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&px->th, NULL, proxy_main, px), 0);
}

/* Stops the proxy; true when every pump ended within the bound. */
static bool proxy_stop(proxy *px)
{
    atomic_store(&px->stop, true);
    pthread_join(px->th, NULL);
    close(px->lfd);
    /* Each pump sees stop within one 20 ms poll; wait (bounded) for all. */
    return POLL(atomic_load(&px->pumps) == 0, 5000);
}

static void undo_proxy(void *p)
{
    proxy_stop(p);
}

/* An outage longer than the member and lease TTLs: every membership and
 * lease expires together. The first replica back sees itself alone (fair
 * share = the whole share) while the other still runs its fallback
 * permits, which Redis no longer counts; it must not be granted them
 * (the cluster demo once saw 45 calls in flight against D = 30). Replica
 * b reaches Redis through a proxy that stays blocked while a comes back,
 * so a is first. The recovery window is on a's local clock, which the
 * test stops once a is back and lets run again after its checks: however
 * slow the machine, the window cannot pass between a's recovery and its
 * acquires (it lasts a lease TTL + reconnect_max + a heartbeat, 3.15 s of
 * real time that a loaded TSan run could use up). */

/* A local clock that follows CLOCK_MONOTONIC until the test stops it. */
typedef struct stoppable_clock {
    sluice_clock clock;
    _Atomic uint64_t stopped_at; /* 0: running */
} stoppable_clock;

static uint64_t stoppable_now(void *ctx)
{
    stoppable_clock *sc = ctx;
    uint64_t at = atomic_load(&sc->stopped_at);
    return at ? at : sluice_clock_now(NULL);
}

static void test_dsem_recovery_after_long_outage(void **state)
{
    (void)state;
    static proxy px; /* outlives the test: a pump may still be closing when it returns */
    proxy_start(&px);
    cleanup_push(undo_proxy, &px);
    static stoppable_clock a_clock; /* outlives the test: the teardown may destroy a */
    a_clock.clock = (sluice_clock){.now_ns = stoppable_now, .clock_ctx = &a_clock};
    atomic_store(&a_clock.stopped_at, 0);
    sluice_cluster *cl[2];
    for (int i = 0; i < 2; i++) {
        sluice_cluster_config cfg;
        sluice_cluster_config_init(&cfg);
        cfg.redis_port = i == 0 ? (unsigned)redis.port : (unsigned)px.port;
        cfg.key_prefix = prefix;
        cfg.service = "orders";
        cfg.replica_id = i == 0 ? "a" : "b";
        cfg.heartbeat_ns = HB_MS * SLUICE_NS_PER_MS;
        cfg.member_ttl_ns = MEMBER_TTL_MS * SLUICE_NS_PER_MS;
        cfg.lease_ttl_ns = 3 * SLUICE_NS_PER_SEC;
        cfg.redis_timeout_ns = REDIS_TIMEOUT_MS * SLUICE_NS_PER_MS;
        cfg.reconnect_min_ns = 10 * SLUICE_NS_PER_MS;
        cfg.reconnect_max_ns = 100 * SLUICE_NS_PER_MS;
        cfg.clock = i == 0 ? &a_clock.clock : NULL;
        char err[256];
        if (sluice_cluster_create(&cfg, &cl[i], err, sizeof err)) {
            fail_msg("sluice_cluster_create: %s", err);
        }
        cleanup_push(undo_cluster, cl[i]);
    }
    sluice_cluster *a = cl[0], *b = cl[1];
    assert_true(POLL(members_of(a) == 2 && members_of(b) == 2, 5000));
    sluice_dsem *da = dsem(a, 10, 0, 0, 0);
    sluice_dsem *db = dsem(b, 10, 0, 0, 0);
    assert_int_equal(take_all(da, 5), 5);
    assert_int_equal(take_all(db, 5), 5);
    /* b first, so that no call of b's waits in the paused Redis's socket
     * buffer to be run when it resumes (it would renew b's membership on
     * Redis's clock after the outage, and a would not be alone). Each pump
     * sees the block within one 20 ms poll and closes its connection; the
     * pumps are awaited, not slept for: a pump still forwarding when
     * Redis is paused is what leaves such a call behind. */
    atomic_store(&px.blocked, true);
    assert_true(POLL(atomic_load(&px.pumps) == 0, 5000));
    /* A pump's last write may still sit unread in Redis's socket buffer
     * (Redis not scheduled yet on a loaded machine): paused then, it
     * would run b's heartbeat after the outage (seen once under ASan: a
     * saw 2 members). One round trip of our own first: Redis replies
     * after it has handled every connection that was readable with it,
     * so b's last call has run by the time the PONG is here. */
    redisReply *pong = redis_fixture_cmd(&redis, "PING");
    assert_non_null(pong);
    freeReplyObject(pong);
    redis_fixture_pause(&redis);
    sluice_cluster_heartbeat_now(a);
    sluice_cluster_heartbeat_now(b);
    sluice_dsem_stats sa, sb;
    sluice_dsem_stats_get(da, &sa);
    sluice_dsem_stats_get(db, &sb);
    assert_true(sa.fallback && sb.fallback);
    fixture_sleep_ms(3000 + 500); /* Redis's clock runs on: every lease and membership expires */
    redis_fixture_resume(&redis);
    assert_true(POLL((sluice_cluster_heartbeat_now(a), sluice_dsem_stats_get(da, &sa), !sa.fallback), 5000));
    /* a is back and its window has begun: a's clock stops here. */
    atomic_store(&a_clock.stopped_at, sluice_clock_now(NULL));
    sluice_dsem_stats_get(db, &sb);
    assert_true(sb.fallback);           /* b still runs its 5 on the fallback bound */
    assert_int_equal(members_of(a), 1); /* a sees itself alone */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_dsem_try_acquire(da), SLUICE_EAGAIN); /* 5 + 5 already in flight */
        sluice_cluster_heartbeat_now(a);
    }
    atomic_store(&a_clock.stopped_at, 0); /* on again (forward: still monotonic) */
    /* b comes back and re-claims its 5: Redis counts both again. */
    atomic_store(&px.blocked, false);
    assert_true(POLL((sluice_cluster_heartbeat_now(b), sluice_dsem_stats_get(db, &sb), !sb.fallback), 5000));
    sluice_cluster_heartbeat_now(a);
    char meta[96];
    snprintf(meta, sizeof meta, "%s:ds:bank:meta", prefix);
    assert_int_equal(redis_hget_int(meta, "held"), 10);
    assert_int_equal(sluice_dsem_try_acquire(da), SLUICE_EAGAIN);
    for (int i = 0; i < 5; i++) {
        sluice_dsem_release(da);
        sluice_dsem_release(db);
    }
    cleanup_now(da);
    cleanup_now(db);
    cleanup_now(a);
    cleanup_now(b);
    cleanup_take(&px);
    assert_true(proxy_stop(&px));
}

/* Redis loses its data (restart without persistence): the live holder
 * re-claims what it uses; nothing new is granted for one lease TTL. */
static void test_dsem_redis_restart(void **state)
{
    (void)state;
    sluice_cluster *a = replica("orders", "a", NULL);
    sluice_dsem *da = dsem(a, 6, 0, 0, 1);
    assert_true(TAKE_ONE(da));
    assert_true(TAKE_ONE(da));
    assert_true(redis_fixture_restart(&redis));
    char held[96], meta[96];
    snprintf(held, sizeof held, "%s:ds:bank:held", prefix);
    snprintf(meta, sizeof meta, "%s:ds:bank:meta", prefix);
    assert_true(POLL((sluice_cluster_heartbeat_now(a), redis_hget_int(held, "orders|a") >= 2), 5000));
    assert_true(redis_hget_int(meta, "grace_until") > 0);
    sluice_dsem_stats st;
    sluice_dsem_stats_get(da, &st);
    assert_false(st.fallback);
    for (int i = 0; i < 2; i++) {
        sluice_dsem_release(da);
    }
    cleanup_now(da);
    sluice_cluster_status cs;
    sluice_cluster_status_get(a, &cs);
    assert_true(cs.reconnects >= 2);
    cleanup_now(a);
}

/* SCRIPT FLUSH: the next call answers NOSCRIPT and the script is
 * reloaded once, transparently. */
static void test_noscript_reload(void **state)
{
    (void)state;
    sluice_cluster *a = replica("orders", "a", NULL);
    sluice_cluster_status st;
    sluice_cluster_status_get(a, &st);
    uint64_t before = st.script_reloads;
    freeReplyObject(redis_fixture_cmd(&redis, "SCRIPT FLUSH"));
    assert_int_equal(sluice_cluster_heartbeat_now(a), SLUICE_OK);
    sluice_cluster_status_get(a, &st);
    assert_true(st.script_reloads > before);
    assert_false(st.fallback);
    cleanup_now(a);
}

/* `sluice budget status`: the live allocation, read back from Redis. */
static void test_budget_report(void **state)
{
    (void)state;
    sluice_cluster *a = replica("orders", "a", NULL);
    sluice_cluster *b = replica("orders", "b", NULL);
    members_of(a);
    sluice_dsem *da = dsem(a, 10, 12, 2, 1);
    assert_true(TAKE_ONE(da));
    sluice_cluster_heartbeat_now(a); /* "in use" is as of the last renewal */
    char *text = NULL;
    char err[256];
    assert_int_equal(sluice_budget_report(NULL, (unsigned)redis.port, prefix, 0, &text, err, sizeof err),
                     SLUICE_OK);
    assert_non_null(strstr(text, "service orders: 2 live members"));
    assert_non_null(strstr(text, "member b: "));
    assert_non_null(strstr(text, "downstream bank: total_limit 12, free_pool 2, leased 2"));
    assert_non_null(strstr(text, "service orders: share 10, leased 2"));
    assert_non_null(strstr(text, "replica a: leased 2, in use 1, lease "));
    free(text);
    assert_int_equal(
        sluice_budget_report(NULL, (unsigned)redis.port, "bad prefix", 0, &text, err, sizeof err),
        SLUICE_EINVAL);
    assert_int_equal(sluice_budget_report(NULL, (unsigned)dead_port, prefix, 0, &text, err, sizeof err),
                     SLUICE_EIO);
    assert_non_null(strstr(err, "redis 127.0.0.1:"));
    sluice_dsem_release(da);
    cleanup_now(da);
    cleanup_now(a);
    cleanup_now(b);
}

/* The report on a thread, so a report that never returns is seen as one
 * (the test then resumes Redis, which lets it end, and fails). */
typedef struct report_call {
    uint64_t timeout_ns;
    sluice_err err;
    char *text;
    char errbuf[256];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} report_call;

static void *report_main(void *arg)
{
    report_call *rc = arg;
    sluice_err e = sluice_budget_report(NULL, (unsigned)redis.port, prefix, rc->timeout_ns, &rc->text,
                                        rc->errbuf, sizeof rc->errbuf);
    pthread_mutex_lock(&rc->mu);
    rc->err = e;
    rc->done = true;
    pthread_cond_signal(&rc->cv);
    pthread_mutex_unlock(&rc->mu);
    return NULL;
}

/* A hang detector, not a timing: the report with the fix answers within
 * a few milliseconds, without it never. */
#define REPORT_HANG_S 60

/* sluice_budget_report at its extremes. A timeout under a microsecond is
 * the shortest timeout, not none: it was cut to 0 s 0 us, which the
 * socket reads as "no timeout", so against a stopped Redis the report
 * waited for ever. A port past 65535 is refused naming it (it was handed
 * to the resolver, whose "Servname not supported" was the message). The
 * longest timeout and a 64-byte prefix work. */
static void test_budget_report_extremes(void **state)
{
    (void)state;
    redis_fixture_pause(&redis);
    static report_call rc;
    memset(&rc, 0, sizeof rc);
    rc.timeout_ns = 1;
    pthread_mutex_init(&rc.mu, NULL);
    pthread_cond_init(&rc.cv, NULL);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, report_main, &rc), 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += REPORT_HANG_S;
    pthread_mutex_lock(&rc.mu);
    while (!rc.done && pthread_cond_timedwait(&rc.cv, &rc.mu, &until) == 0) {
    }
    bool done = rc.done;
    pthread_mutex_unlock(&rc.mu);
    redis_fixture_resume(&redis);
    pthread_join(th, NULL);
    pthread_cond_destroy(&rc.cv);
    pthread_mutex_destroy(&rc.mu);
    free(rc.text);
    if (!done) {
        fail_msg("a report with a 1 ns timeout against a stopped Redis still waited after %d s",
                 REPORT_HANG_S);
    }
    assert_int_equal(rc.err, SLUICE_EIO);
    assert_non_null(strstr(rc.errbuf, "redis 127.0.0.1:"));

    char *text = NULL;
    char err[256] = "";
    assert_int_equal(sluice_budget_report(NULL, 65536, prefix, 0, &text, err, sizeof err), SLUICE_EINVAL);
    assert_null(text);
    if (!strstr(err, "port")) {
        fail_msg("port 65536: \"%s\" does not name the port", err);
    }
    assert_int_equal(sluice_budget_report(NULL, UINT32_MAX, prefix, 0, &text, err, sizeof err),
                     SLUICE_EINVAL);
    assert_int_equal(
        sluice_budget_report(NULL, (unsigned)redis.port, prefix, UINT64_MAX, &text, err, sizeof err),
        SLUICE_OK);
    free(text);
    char longest[SLUICE_CLUSTER_NAME_MAX + 2];
    memset(longest, 'p', SLUICE_CLUSTER_NAME_MAX);
    longest[SLUICE_CLUSTER_NAME_MAX] = '\0';
    assert_int_equal(sluice_budget_report(NULL, (unsigned)redis.port, longest, 0, &text, err, sizeof err),
                     SLUICE_OK);
    assert_non_null(strstr(text, "no services registered"));
    free(text);
    longest[SLUICE_CLUSTER_NAME_MAX] = 'p';
    longest[SLUICE_CLUSTER_NAME_MAX + 1] = '\0';
    assert_int_equal(sluice_budget_report(NULL, (unsigned)redis.port, longest, 0, &text, err, sizeof err),
                     SLUICE_EINVAL);
    assert_non_null(strstr(err, "prefix"));
}

/* ---- the distributed limiter ------------------------------------------------------- */

/* The limiter's refill runs on Redis's clock (the GCRA script reads
 * TIME), which no test can hold still, so the rates here make the refill
 * irrelevant whatever the machine's speed: 0.001 tokens/s brings a token
 * back after 1000 s of Redis time, far past ctest's timeout of this
 * program, and every count below is exact until then. */
#define SLOW_RATE 0.001
#define SLOW_TOKEN_NS ((uint64_t)(1 / SLOW_RATE) * SLUICE_NS_PER_SEC) /* 1000 s */

static void test_dlimiter_shared_bucket(void **state)
{
    (void)state;
    sluice_cluster *a = replica("orders", "a", NULL);
    sluice_cluster *b = replica("orders", "b", NULL);
    sluice_dlimiter_config lc;
    sluice_dlimiter_config_init(&lc);
    lc.name = "bank-rps";
    lc.rate = SLOW_RATE;
    lc.burst = 6;
    sluice_dlimiter *la = NULL, *lb = NULL;
    char err[256];
    assert_int_equal(sluice_dlimiter_create(a, &lc, &la, err, sizeof err), SLUICE_OK);
    cleanup_push(undo_dlimiter, la);
    assert_int_equal(sluice_dlimiter_create(b, &lc, &lb, err, sizeof err), SLUICE_OK);
    cleanup_push(undo_dlimiter, lb);
    /* One bucket across both replicas: 10 asks, the burst of 6 allowed. */
    int allowed = 0;
    for (int i = 0; i < 5; i++) {
        allowed += sluice_dlimiter_allow(la);
        allowed += sluice_dlimiter_allow(lb);
    }
    assert_int_equal(allowed, 6);
    assert_false(sluice_dlimiter_allow_n(la, 7)); /* more than burst: never */
    assert_true(sluice_dlimiter_allow_n(la, 0));
    sluice_reservation r;
    assert_int_equal(sluice_dlimiter_reserve(la, 7, &r), SLUICE_EOVERFLOW);
    assert_int_equal(sluice_dlimiter_reserve(la, 2, &r), SLUICE_OK);
    /* In debt by two tokens: two token times from the emptying, less the
     * (far shorter) time since. */
    assert_true(r.delay_ns > SLOW_TOKEN_NS);
    assert_true(r.delay_ns <= 2 * SLOW_TOKEN_NS);
    sluice_dlimiter_cancel(la, &r); /* given back */
    /* A wait whose deadline comes before the token is refused at once. */
    sluice_ctx *ctx = NULL;
    assert_int_equal(sluice_ctx_with_timeout(&ctx, NULL, 20 * SLUICE_NS_PER_MS, NULL), SLUICE_OK);
    cleanup_push(undo_ctx, ctx);
    assert_int_equal(sluice_dlimiter_wait(lb, 1, ctx), SLUICE_ETIMEDOUT);
    cleanup_now(ctx);
    sluice_dlimiter_stats st;
    sluice_dlimiter_stats_get(la, &st);
    assert_true(st.redis_calls >= 5);
    assert_false(st.fallback);
    sluice_dlimiter_stats_get(lb, &st);
    assert_int_equal(st.wait_timeouts, 1);
    assert_false(st.fallback);
    cleanup_now(la);
    cleanup_now(lb);

    /* set_rate takes effect: a fresh bucket created at the slow rate and
     * raised to 1000/s before its first call. Its first token is the full
     * bucket's; the second comes 1 ms later, so a wait within a 30 s
     * deadline succeeds (at the slow rate it would be refused at once). */
    lc.name = "refill";
    lc.burst = 1;
    assert_int_equal(sluice_dlimiter_create(a, &lc, &la, err, sizeof err), SLUICE_OK);
    cleanup_push(undo_dlimiter, la);
    assert_int_equal(sluice_dlimiter_set_rate(la, 1000), SLUICE_OK);
    assert_int_equal(sluice_dlimiter_set_rate(la, 0), SLUICE_EINVAL);
    assert_true(sluice_dlimiter_allow(la));
    assert_int_equal(sluice_ctx_with_timeout(&ctx, NULL, 30 * SLUICE_NS_PER_SEC, NULL), SLUICE_OK);
    cleanup_push(undo_ctx, ctx);
    assert_int_equal(sluice_dlimiter_wait(la, 1, ctx), SLUICE_OK);
    cleanup_now(ctx);
    assert_int_equal(sluice_dlimiter_wait(la, 1, NULL), SLUICE_OK);
    cleanup_now(la);

    /* rate 0 is refused, INF never calls Redis */
    lc.rate = 0;
    assert_int_equal(sluice_dlimiter_create(a, &lc, &la, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "rate"));
    lc.rate = SLUICE_RATE_INF;
    assert_int_equal(sluice_dlimiter_create(a, &lc, &la, err, sizeof err), SLUICE_OK);
    cleanup_push(undo_dlimiter, la);
    for (int i = 0; i < 100; i++) {
        assert_true(sluice_dlimiter_allow(la));
    }
    sluice_dlimiter_stats_get(la, &st);
    assert_int_equal(st.redis_calls, 0);
    cleanup_now(la);
    cleanup_now(a);
    cleanup_now(b);
}

static void test_dlimiter_fallback(void **state)
{
    (void)state;
    sluice_cluster *a = replica("orders", "a", NULL);
    sluice_cluster *b = replica("orders", "b", NULL);
    members_of(a);
    sluice_dlimiter_config lc;
    sluice_dlimiter_config_init(&lc);
    lc.name = "fb";
    lc.rate = SLOW_RATE;
    lc.burst = 10;
    sluice_dlimiter *la = NULL;
    assert_int_equal(sluice_dlimiter_create(a, &lc, &la, NULL, 0), SLUICE_OK);
    cleanup_push(undo_dlimiter, la);
    redis_fixture_pause(&redis);
    sluice_cluster_heartbeat_now(a);
    /* burst / 2 last known replicas = 5 locally */
    int allowed = 0;
    for (int i = 0; i < 10; i++) {
        allowed += sluice_dlimiter_allow(la);
    }
    assert_int_equal(allowed, 5);
    /* the local burst (5) is the largest request in fallback */
    sluice_reservation r;
    assert_int_equal(sluice_dlimiter_reserve(la, 6, &r), SLUICE_EOVERFLOW);
    assert_false(sluice_dlimiter_allow_n(la, 6));
    sluice_dlimiter_stats st;
    sluice_dlimiter_stats_get(la, &st);
    assert_true(st.fallback);
    assert_int_equal(st.rejected, 1);
    redis_fixture_resume(&redis);
    assert_true(POLL(sluice_cluster_heartbeat_now(a) == SLUICE_OK, 5000));
    assert_true(sluice_dlimiter_allow(la));                          /* the shared bucket again (full) */
    assert_int_equal(sluice_dlimiter_reserve(la, 6, &r), SLUICE_OK); /* within its burst of 10 */
    cleanup_now(la);
    cleanup_now(a);
    cleanup_now(b);
}

/* set_rate rescales the shared debt (tokens are kept as a count, as
 * sluice_limiter_set_rate does). Rates of 0.01 and 0.001 tokens/s: no
 * token comes back within the test, so each delay is exact but for the
 * Redis time elapsed since the debt was taken, which the rescale
 * multiplies by at most 10; the bounds leave 10 s (100 s at 10x) of it. */
#define SEC(x) ((uint64_t)(x)*SLUICE_NS_PER_SEC)

static sluice_dlimiter *slow_limiter(sluice_cluster *c, const char *name, double rate)
{
    sluice_dlimiter_config lc;
    sluice_dlimiter_config_init(&lc);
    lc.name = name;
    lc.rate = rate;
    lc.burst = 1;
    sluice_dlimiter *dl = NULL;
    char err[256];
    assert_int_equal(sluice_dlimiter_create(c, &lc, &dl, err, sizeof err), SLUICE_OK);
    cleanup_push(undo_dlimiter, dl);
    return dl;
}

/* The interval the interval key records ("" when absent); the key also
 * vouches for the TAT it was written with, which must be the TAT key's
 * value (both are written by one script). */
static void interval_key(const char *name, char *out, size_t len)
{
    redisReply *r = redis_fixture_cmd(&redis, "GET %s:rlt:%s", prefix, name);
    assert_non_null(r);
    snprintf(out, len, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    char *space = strchr(out, ' ');
    if (space) {
        *space = '\0';
        redisReply *tat = redis_fixture_cmd(&redis, "GET %s:rl:%s", prefix, name);
        assert_non_null(tat);
        assert_int_equal(tat->type, REDIS_REPLY_STRING);
        assert_string_equal(space + 1, tat->str);
        freeReplyObject(tat);
    }
}

static void test_dlimiter_set_rate_rescales(void **state)
{
    (void)state;
    sluice_cluster *a = replica("orders", "a", NULL);
    /* Slow, then 10x faster: 1 token in debt at 1000 s a token. */
    sluice_dlimiter *la = slow_limiter(a, "up", 0.001);
    sluice_reservation r1, r2, r3;
    assert_int_equal(sluice_dlimiter_reserve(la, 1, &r1), SLUICE_OK);
    assert_int_equal(r1.delay_ns, 0); /* the full bucket's token */
    assert_int_equal(sluice_dlimiter_reserve(la, 1, &r2), SLUICE_OK);
    assert_true(r2.delay_ns > SEC(990) && r2.delay_ns <= SEC(1000));
    assert_int_equal(sluice_dlimiter_set_rate(la, 0.01), SLUICE_OK);
    /* Two tokens outstanding are now 200 s, not 2000 s: one more waits
     * ~200 s (unrescaled it would wait ~2000 s). */
    assert_int_equal(sluice_dlimiter_reserve(la, 1, &r3), SLUICE_OK);
    assert_true(r3.delay_ns > SEC(190) && r3.delay_ns <= SEC(200));
    char iv[64];
    interval_key("up", iv, sizeof iv);
    assert_string_equal(iv, "100000000"); /* 100 s in us, recorded */
    /* Cancel after the change gives back a token at the new rate: r2,
     * reserved at 1000 s a token, takes 100 s off (not 1000 s). */
    sluice_dlimiter_cancel(la, &r2);
    sluice_reservation r4;
    assert_int_equal(sluice_dlimiter_reserve(la, 1, &r4), SLUICE_OK);
    assert_true(r4.delay_ns > SEC(190) && r4.delay_ns <= SEC(200));
    cleanup_now(la);

    /* A cancel that is the first call after the change rescales first. */
    la = slow_limiter(a, "up2", 0.001);
    assert_int_equal(sluice_dlimiter_reserve(la, 1, &r1), SLUICE_OK);
    assert_int_equal(sluice_dlimiter_reserve(la, 1, &r2), SLUICE_OK);
    assert_int_equal(sluice_dlimiter_set_rate(la, 0.01), SLUICE_OK);
    sluice_dlimiter_cancel(la, &r2); /* ~200 s outstanding, less 100 s */
    assert_int_equal(sluice_dlimiter_reserve(la, 1, &r3), SLUICE_OK);
    assert_true(r3.delay_ns > SEC(90) && r3.delay_ns <= SEC(100));
    cleanup_now(la);

    /* Fast, then 10x slower: the debt grows to the same token count. */
    la = slow_limiter(a, "down", 0.01);
    assert_int_equal(sluice_dlimiter_reserve(la, 1, &r1), SLUICE_OK);
    assert_int_equal(sluice_dlimiter_reserve(la, 1, &r2), SLUICE_OK);
    assert_true(r2.delay_ns > SEC(90) && r2.delay_ns <= SEC(100));
    assert_int_equal(sluice_dlimiter_set_rate(la, 0.001), SLUICE_OK);
    /* A refused allow stores the rescale too. */
    assert_false(sluice_dlimiter_allow(la));
    interval_key("down", iv, sizeof iv);
    assert_string_equal(iv, "1000000000");
    assert_int_equal(sluice_dlimiter_reserve(la, 1, &r3), SLUICE_OK);
    assert_true(r3.delay_ns > SEC(1900) && r3.delay_ns <= SEC(2000)); /* unrescaled: ~200 s */
    /* Both keys are set with the same PX by one script, the TAT first, so
     * the interval key never expires before its TAT. Absolute expiries
     * (PEXPIRETIME, Redis 7): a PTTL pair read a tick apart, or SETs a
     * preemption apart on a loaded box, differ by that time. */
    redisReply *pt = redis_fixture_cmd(&redis, "EVAL %s 2 %s:rl:down %s:rlt:down",
                                       "return {redis.call('PEXPIRETIME', KEYS[1]), "
                                       "redis.call('PEXPIRETIME', KEYS[2])}",
                                       prefix, prefix);
    assert_non_null(pt);
    if (pt->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "no PEXPIRETIME (Redis < 7): expiry order not checked: %s\n", pt->str);
    } else {
        assert_int_equal(pt->type, REDIS_REPLY_ARRAY);
        assert_true(pt->element[0]->integer > 0);
        assert_true(pt->element[1]->integer >= pt->element[0]->integer);
    }
    freeReplyObject(pt);
    cleanup_now(la);
    cleanup_now(a);
}

/* Replicas at different rates: each call rescales the shared debt to its
 * caller's rate, so the last caller's rate wins. */
static void test_dlimiter_replicas_disagree(void **state)
{
    (void)state;
    sluice_cluster *a = replica("orders", "a", NULL);
    sluice_cluster *b = replica("orders", "b", NULL);
    sluice_dlimiter *la = slow_limiter(a, "mixed", 0.001);
    sluice_dlimiter *lb = slow_limiter(b, "mixed", 0.01);
    sluice_reservation r;
    assert_int_equal(sluice_dlimiter_reserve(la, 1, &r), SLUICE_OK);
    assert_int_equal(r.delay_ns, 0);
    assert_int_equal(sluice_dlimiter_reserve(la, 1, &r), SLUICE_OK);
    assert_true(r.delay_ns > SEC(990) && r.delay_ns <= SEC(1000));
    /* b: the 2 tokens at 100 s each, plus its own */
    assert_int_equal(sluice_dlimiter_reserve(lb, 1, &r), SLUICE_OK);
    assert_true(r.delay_ns > SEC(190) && r.delay_ns <= SEC(200));
    /* a again: the 3 tokens at 1000 s each, plus its own */
    assert_int_equal(sluice_dlimiter_reserve(la, 1, &r), SLUICE_OK);
    assert_true(r.delay_ns > SEC(2900) && r.delay_ns <= SEC(3000));
    cleanup_now(la);
    cleanup_now(lb);
    cleanup_now(a);
    cleanup_now(b);
}

/* A TAT left by the version before (a plain string, no interval key) is
 * taken as built at the caller's rate, then rescaled from there on. */
static void test_dlimiter_old_key(void **state)
{
    (void)state;
    sluice_cluster *a = replica("orders", "a", NULL);
    redisReply *t = redis_fixture_cmd(&redis, "TIME");
    assert_non_null(t);
    long long now_us = atoll(t->element[0]->str) * 1000000 + atoll(t->element[1]->str);
    freeReplyObject(t);
    redisReply *w = redis_fixture_cmd(&redis, "SET %s:rl:old %lld PX 600000", prefix, now_us + 500000000LL);
    assert_non_null(w);
    freeReplyObject(w);
    sluice_dlimiter *la = slow_limiter(a, "old", 0.01);
    sluice_reservation r;
    /* 500 s outstanding at 100 s a token: 5 tokens, the 6th waits ~500 s */
    assert_int_equal(sluice_dlimiter_reserve(la, 1, &r), SLUICE_OK);
    assert_true(r.delay_ns > SEC(490) && r.delay_ns <= SEC(500));
    char iv[64];
    interval_key("old", iv, sizeof iv);
    assert_string_equal(iv, "100000000");
    assert_int_equal(sluice_dlimiter_set_rate(la, 0.001), SLUICE_OK);
    /* 6 tokens at 1000 s each, the 7th waits ~6000 s */
    assert_int_equal(sluice_dlimiter_reserve(la, 1, &r), SLUICE_OK);
    assert_true(r.delay_ns > SEC(5900) && r.delay_ns <= SEC(6000));
    /* INF: no Redis call, the shared debt left as it was for the return */
    sluice_dlimiter_stats st;
    sluice_dlimiter_stats_get(la, &st);
    uint64_t calls = st.redis_calls;
    assert_int_equal(sluice_dlimiter_set_rate(la, SLUICE_RATE_INF), SLUICE_OK);
    assert_true(sluice_dlimiter_allow(la));
    sluice_dlimiter_stats_get(la, &st);
    assert_int_equal(st.redis_calls, calls);
    assert_int_equal(sluice_dlimiter_set_rate(la, 0.001), SLUICE_OK);
    assert_false(sluice_dlimiter_allow(la)); /* still ~7 tokens in debt */
    assert_int_equal(sluice_dlimiter_set_rate(la, -1), SLUICE_EINVAL);
    assert_int_equal(sluice_dlimiter_set_rate(la, NAN), SLUICE_EINVAL);
    cleanup_now(la);
    /* Created at INF with no burst: a finite rate needs a burst first. */
    sluice_dlimiter_config lc;
    sluice_dlimiter_config_init(&lc);
    lc.name = "inf";
    lc.rate = SLUICE_RATE_INF;
    assert_int_equal(sluice_dlimiter_create(a, &lc, &la, NULL, 0), SLUICE_OK);
    cleanup_push(undo_dlimiter, la);
    assert_int_equal(sluice_dlimiter_set_rate(la, 1), SLUICE_EINVAL);
    assert_int_equal(sluice_dlimiter_set_burst(la, 1), SLUICE_OK);
    assert_int_equal(sluice_dlimiter_set_rate(la, 1), SLUICE_OK);
    assert_true(sluice_dlimiter_allow(la));
    cleanup_now(la);
    cleanup_now(a);
}

/* ---- fallback keeps its debt, and carries it back to Redis --------------------------- */

/* A replica with an injected clock: the fallback bucket (a local
 * sluice_limiter on that clock) is then exact. `port` 0 = the fixture's. */
static sluice_cluster *clocked_replica(const char *id, int port, sluice_fake_clock *fake)
{
    sluice_cluster_config cfg;
    sluice_cluster_config_init(&cfg);
    cfg.redis_port = (unsigned)(port ? port : redis.port);
    cfg.key_prefix = prefix;
    cfg.service = "orders";
    cfg.replica_id = id;
    cfg.clock = &fake->clock;
    cfg.heartbeat_ns = SLUICE_NS_PER_SEC; /* on the fake clock: the test calls heartbeat_now */
    cfg.member_ttl_ns = 30 * SLUICE_NS_PER_SEC;
    cfg.lease_ttl_ns = 30 * SLUICE_NS_PER_SEC;
    cfg.redis_timeout_ns = REDIS_TIMEOUT_MS * SLUICE_NS_PER_MS;
    cfg.reconnect_min_ns = 10 * SLUICE_NS_PER_MS;
    cfg.reconnect_max_ns = 100 * SLUICE_NS_PER_MS;
    sluice_cluster *c = NULL;
    char err[256];
    if (sluice_cluster_create(&cfg, &c, err, sizeof err)) {
        fail_msg("sluice_cluster_create: %s", err);
    }
    return cleanup_push(undo_cluster, c);
}

static uint64_t reserve_delay(sluice_dlimiter *dl, uint64_t n)
{
    sluice_reservation r;
    assert_int_equal(sluice_dlimiter_reserve(dl, n, &r), SLUICE_OK);
    return r.delay_ns;
}

/* Exact but for the bucket's floating point: within a microsecond. */
#define assert_delay(got, want_ns)                                                                           \
    do {                                                                                                     \
        uint64_t g_ = (got), w_ = (want_ns);                                                                 \
        if ((g_ > w_ ? g_ - w_ : w_ - g_) > 1000) {                                                          \
            fail_msg("delay %llu ns, want %llu ns", (unsigned long long)g_, (unsigned long long)w_);         \
        }                                                                                                    \
    } while (0)

/* set_rate and set_burst in fallback keep the local bucket's debt as a
 * count (as sluice_limiter_set_rate/_set_burst); the version before built
 * it again full, so the next reserve after a set_rate waited nothing. No
 * Redis at all: fallback from the start, the bucket is the whole rate. */
static void test_dlimiter_fallback_set_rate_keeps_debt(void **state)
{
    (void)state;
    static sluice_fake_clock fake; /* static: the teardown may destroy after this frame */
    sluice_fake_clock_init(&fake, 1000 * SLUICE_NS_PER_SEC);
    sluice_cluster *c = clocked_replica("fb", dead_port, &fake);
    sluice_dlimiter_config lc;
    sluice_dlimiter_config_init(&lc);
    lc.name = "fbrate";
    lc.rate = 1;
    lc.burst = 10;
    lc.fallback_replicas = 1; /* no member list ever read: a lone replica */
    sluice_dlimiter *dl = NULL;
    assert_int_equal(sluice_dlimiter_create(c, &lc, &dl, NULL, 0), SLUICE_OK);
    cleanup_push(undo_dlimiter, dl);
    assert_delay(reserve_delay(dl, 10), 0);                    /* the full bucket */
    assert_delay(reserve_delay(dl, 5), 5 * SLUICE_NS_PER_SEC); /* 5 in debt at 1/s */
    sluice_dlimiter_stats st;
    sluice_dlimiter_stats_get(dl, &st);
    assert_true(st.fallback);
    assert_int_equal(st.redis_calls, 0);
    /* 10x faster: 5 tokens in debt are 0.5 s; one more waits 0.6 s (a
     * bucket built again full would wait nothing) */
    assert_int_equal(sluice_dlimiter_set_rate(dl, 10), SLUICE_OK);
    assert_delay(reserve_delay(dl, 1), 600 * SLUICE_NS_PER_MS);
    /* back to 1/s: 6 in debt, one more waits 7 s */
    assert_int_equal(sluice_dlimiter_set_rate(dl, 1), SLUICE_OK);
    assert_delay(reserve_delay(dl, 1), 7 * SLUICE_NS_PER_SEC);
    /* 3 s repay 3 of the 7: one more waits 5 s */
    sluice_fake_clock_advance(&fake, 3 * SLUICE_NS_PER_SEC);
    assert_delay(reserve_delay(dl, 1), 5 * SLUICE_NS_PER_SEC);
    /* set_burst keeps the debt too (5 in debt, bucket of 4) */
    assert_int_equal(sluice_dlimiter_set_burst(dl, 4), SLUICE_OK);
    assert_delay(reserve_delay(dl, 1), 6 * SLUICE_NS_PER_SEC);
    /* INF: every call allowed, the bucket left as it was */
    assert_int_equal(sluice_dlimiter_set_rate(dl, SLUICE_RATE_INF), SLUICE_OK);
    assert_true(sluice_dlimiter_allow_n(dl, 1000));
    assert_int_equal(sluice_dlimiter_set_rate(dl, 1), SLUICE_OK);
    assert_false(sluice_dlimiter_allow(dl));
    assert_delay(reserve_delay(dl, 1), 7 * SLUICE_NS_PER_SEC);
    /* a full bucket stays full across a rate change */
    sluice_fake_clock_advance(&fake, 100 * SLUICE_NS_PER_SEC);
    assert_int_equal(sluice_dlimiter_set_rate(dl, 0.5), SLUICE_OK);
    for (int i = 0; i < 4; i++) {
        assert_true(sluice_dlimiter_allow(dl));
    }
    assert_false(sluice_dlimiter_allow(dl));
    sluice_dlimiter_stats_get(dl, &st);
    assert_int_equal(st.redis_calls, 0);
    cleanup_now(dl);
    cleanup_now(c);
}

/* Leaving fallback, the fallback bucket's debt (reservations not yet due)
 * is charged to the shared bucket by the first call that reaches Redis;
 * a cancel of such a reservation then gives its tokens back there. Rates
 * of 1000 s a token: Redis's real clock refills nothing meanwhile. */
static void test_dlimiter_recovery_carries_debt(void **state)
{
    (void)state;
    static sluice_fake_clock fake;
    sluice_fake_clock_init(&fake, 1000 * SLUICE_NS_PER_SEC);
    sluice_cluster *a = clocked_replica("a", 0, &fake);
    assert_int_equal(sluice_cluster_heartbeat_now(a), SLUICE_OK); /* a view of 1 replica */
    sluice_dlimiter_config lc;
    sluice_dlimiter_config_init(&lc);
    lc.name = "carry";
    lc.rate = SLOW_RATE;
    lc.burst = 10;
    sluice_dlimiter *dl = NULL;
    assert_int_equal(sluice_dlimiter_create(a, &lc, &dl, NULL, 0), SLUICE_OK);
    cleanup_push(undo_dlimiter, dl);
    redis_fixture_pause(&redis);
    assert_int_equal(sluice_cluster_heartbeat_now(a), SLUICE_EIO);
    /* fallback: the local bucket of 10, then 2 in debt */
    assert_delay(reserve_delay(dl, 10), 0);
    sluice_reservation r1, r2;
    assert_int_equal(sluice_dlimiter_reserve(dl, 1, &r1), SLUICE_OK);
    assert_int_equal(sluice_dlimiter_reserve(dl, 1, &r2), SLUICE_OK);
    assert_delay(r1.delay_ns, SLOW_TOKEN_NS);
    assert_delay(r2.delay_ns, 2 * SLOW_TOKEN_NS);
    sluice_dlimiter_stats st;
    sluice_dlimiter_stats_get(dl, &st);
    assert_true(st.fallback);
    redis_fixture_resume(&redis);
    /* past the reconnect backoff (fake clock); 1 s repays 0.001 token */
    sluice_fake_clock_advance(&fake, SLUICE_NS_PER_SEC);
    assert_true(POLL(sluice_cluster_heartbeat_now(a) == SLUICE_OK, 10000));
    /* The shared bucket held 10; the 2 tokens owed are charged first, so
     * 8 are left (without the carry: 10). */
    int allowed = 0;
    for (int i = 0; i < 12; i++) {
        allowed += sluice_dlimiter_allow(dl);
    }
    assert_int_equal(allowed, 8);
    sluice_dlimiter_stats_get(dl, &st);
    assert_false(st.fallback);
    /* r2 was charged to Redis: cancelling it now gives its token back there */
    sluice_dlimiter_cancel(dl, &r2);
    assert_true(sluice_dlimiter_allow(dl));
    assert_false(sluice_dlimiter_allow(dl));
    cleanup_now(dl);
    cleanup_now(a);
}

/* "PING works, EVAL fails": a foreign value under the limiter's key (a
 * hash where the TAT string belongs) makes every take script fail
 * (WRONGTYPE) while heartbeats succeed, so each cycle is: a heartbeat
 * (the view looks healthy), a call that reaches Redis and fails into
 * fallback, the fallback bucket. The bucket of the cycle before is kept,
 * so across the cycles the replica takes at most one burst plus what its
 * rate refilled; built full on each entry, it handed out a burst a cycle
 * (50 over 5 cycles here). Its debt survives the failed recovery too: a
 * reservation after a cycle waits as long as one before it plus a token
 * (less the refill), where a full bucket built again waited nothing. */
static void set_foreign_value(const char *name)
{
    redisReply *r = redis_fixture_cmd(&redis, "HSET %s:rl:%s foreign value", prefix, name);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    freeReplyObject(r);
}

/* One cycle: past the reconnect backoff (the fake clock), then a
 * heartbeat that succeeds, so the cluster's view is healthy again. */
static void healthy_again(sluice_cluster *c, sluice_fake_clock *fake)
{
    sluice_fake_clock_advance(fake, SLUICE_NS_PER_SEC);
    assert_true(POLL(sluice_cluster_heartbeat_now(c) == SLUICE_OK, 10000));
}

static void test_dlimiter_eval_fails_keeps_bucket(void **state)
{
    (void)state;
    static sluice_fake_clock fake;
    sluice_fake_clock_init(&fake, 1000 * SLUICE_NS_PER_SEC);
    sluice_cluster *a = clocked_replica("a", 0, &fake);
    assert_int_equal(sluice_cluster_heartbeat_now(a), SLUICE_OK); /* a view of 1 replica */
    sluice_dlimiter_config lc;
    sluice_dlimiter_config_init(&lc);
    lc.name = "evalfail";
    lc.rate = SLOW_RATE;
    lc.burst = 10;
    sluice_dlimiter *dl = NULL;
    assert_int_equal(sluice_dlimiter_create(a, &lc, &dl, NULL, 0), SLUICE_OK);
    cleanup_push(undo_dlimiter, dl);
    set_foreign_value("evalfail");
    uint64_t t0 = sluice_clock_now(&fake.clock);
    enum { CYCLES = 5 };
    unsigned granted = 0;
    for (int cycle = 0; cycle < CYCLES; cycle++) {
        healthy_again(a, &fake);
        sluice_dlimiter_stats st;
        sluice_dlimiter_stats_get(dl, &st);
        uint64_t calls = st.redis_calls;
        for (int i = 0; i < 20 && sluice_dlimiter_allow(dl); i++) {
            granted++;
        }
        sluice_dlimiter_stats_get(dl, &st);
        assert_int_equal(st.redis_calls, calls + 1); /* the cycle's call reached Redis, and failed */
        assert_true(st.fallback);
    }
    double elapsed_s = (double)(sluice_clock_now(&fake.clock) - t0) / 1e9;
    unsigned bound = (unsigned)(lc.burst + floor(SLOW_RATE * elapsed_s));
    if (granted < lc.burst || granted > bound) {
        fail_msg("%u tokens granted over %d cycles of %.0f s, want %llu to %u (one burst plus the refill)",
                 granted, CYCLES, elapsed_s, (unsigned long long)lc.burst, bound);
    }
    /* debt: one reservation waits a token; a cycle (1 s of refill) later
     * the next waits a token more, less that second */
    uint64_t d1 = reserve_delay(dl, 1);
    assert_true(d1 > 0 && d1 <= SLOW_TOKEN_NS);
    healthy_again(a, &fake);
    assert_delay(reserve_delay(dl, 1), d1 + SLOW_TOKEN_NS - SLUICE_NS_PER_SEC);
    cleanup_now(dl);
    cleanup_now(a);
}

/* A failed carry of a large debt goes back into the fallback bucket in
 * one step, to the token: it took one reservation of at most a burst at
 * a time under the limiter's mutex, so a debt of ~1e12 tokens carried
 * into a bucket of 1 never finished (the test's timeout). The debt is
 * built in fallback with a burst of 1e12, then the burst is set to 1;
 * the take script fails (a foreign value under the key) so the carry
 * comes back. At 1000 tokens/s 1 s of the fake clock repays 1000 of them,
 * exactly. */
static void test_dlimiter_large_carry_back(void **state)
{
    (void)state;
    static sluice_fake_clock fake;
    sluice_fake_clock_init(&fake, 1000 * SLUICE_NS_PER_SEC);
    sluice_cluster *a = clocked_replica("a", 0, &fake);
    assert_int_equal(sluice_cluster_heartbeat_now(a), SLUICE_OK); /* a view of 1 replica */
    const uint64_t big = 1000000000000ULL;
    sluice_dlimiter_config lc;
    sluice_dlimiter_config_init(&lc);
    lc.name = "bigcarry";
    lc.rate = 1000;
    lc.burst = big;
    sluice_dlimiter *dl = NULL;
    assert_int_equal(sluice_dlimiter_create(a, &lc, &dl, NULL, 0), SLUICE_OK);
    cleanup_push(undo_dlimiter, dl);
    set_foreign_value("bigcarry");
    assert_delay(reserve_delay(dl, big), 0); /* the call fails: the full fallback bucket */
    assert_delay(reserve_delay(dl, big), big * SLUICE_NS_PER_MS); /* 1e12 in debt at 1000/s */
    assert_int_equal(sluice_dlimiter_set_burst(dl, 1), SLUICE_OK);
    healthy_again(a, &fake); /* 1 s: 1000 repaid */
    sluice_dlimiter_stats st;
    sluice_dlimiter_stats_get(dl, &st);
    uint64_t calls = st.redis_calls;
    /* leaving fallback carries big - 1000 tokens; the call fails, they come
     * back: one more token waits for big - 1000 + 1 of them (within 1 ms:
     * 1e21 ns in doubles) */
    uint64_t d = reserve_delay(dl, 1);
    uint64_t want = (big - 1000 + 1) * SLUICE_NS_PER_MS;
    if ((d > want ? d - want : want - d) > SLUICE_NS_PER_MS) {
        fail_msg("delay %llu ns after the carry came back, want %llu ns", (unsigned long long)d,
                 (unsigned long long)want);
    }
    sluice_dlimiter_stats_get(dl, &st);
    assert_int_equal(st.redis_calls, calls + 1);
    assert_true(st.fallback);
    cleanup_now(dl);
    cleanup_now(a);
}

/* One limiter's script failing is that limiter's alone. A foreign value
 * under its key makes its take script answer WRONGTYPE; the reply is read
 * whole, so the connection is kept, the cluster stays out of fallback and
 * only that limiter answers from its fallback bucket (for one heartbeat,
 * then it tries Redis again). Another limiter of the same replica keeps
 * its shared bucket, a share binding keeps its K (no FALLBACK callback),
 * and a semaphore whose own keys are foreign falls back alone too. Before,
 * the error reply dropped the connection and put the whole replica in
 * fallback: the other limiter answered from a local bucket, every
 * binding flapped. */
static void test_dlimiter_script_error_is_its_own(void **state)
{
    (void)state;
    static sluice_fake_clock fake;
    static k_seen ks;
    atomic_store(&ks.k, 0);
    atomic_store(&ks.reason, -1);
    sluice_fake_clock_init(&fake, 1000 * SLUICE_NS_PER_SEC);
    sluice_cluster *a = clocked_replica("a", 0, &fake);
    assert_int_equal(sluice_cluster_heartbeat_now(a), SLUICE_OK); /* a view of 1 replica */
    sluice_share_binding b = {.share = 8, .on_k = on_k, .user = &ks};
    unsigned bid;
    assert_int_equal(sluice_cluster_bind_share(a, &b, &bid), SLUICE_OK);
    assert_int_equal(atomic_load(&ks.k), 8);
    assert_int_equal(atomic_load(&ks.reason), SLUICE_SHARE_VIEW);
    sluice_cluster_status cs0, cs;
    sluice_cluster_status_get(a, &cs0);
    sluice_dlimiter *bad = slow_limiter(a, "bad", SLOW_RATE);
    sluice_dlimiter *good = slow_limiter(a, "good", SLOW_RATE);
    assert_int_equal(sluice_dlimiter_set_burst(bad, 10), SLUICE_OK);
    assert_int_equal(sluice_dlimiter_set_burst(good, 3), SLUICE_OK);
    set_foreign_value("bad");

    /* the bad limiter: its call fails, its fallback bucket answers */
    assert_true(sluice_dlimiter_allow(bad));
    sluice_dlimiter_stats st;
    sluice_dlimiter_stats_get(bad, &st);
    assert_int_equal(st.redis_calls, 1);
    assert_int_equal(st.fallback_calls, 1);
    assert_true(st.fallback);
    /* within the heartbeat it does not ask Redis again */
    assert_true(sluice_dlimiter_allow(bad));
    sluice_dlimiter_stats_get(bad, &st);
    assert_int_equal(st.redis_calls, 1);
    /* the connection was kept, the cluster is not in fallback */
    sluice_cluster_status_get(a, &cs);
    assert_false(cs.fallback);
    assert_true(cs.redis_up);
    assert_int_equal(cs.fallbacks, cs0.fallbacks);
    assert_int_equal(cs.reconnects, cs0.reconnects);
    assert_int_equal(cs.redis_errors, cs0.redis_errors + 1); /* counted */

    /* the good limiter: its shared bucket of 3, exactly, from Redis */
    int allowed = 0;
    for (int i = 0; i < 5; i++) {
        allowed += sluice_dlimiter_allow(good);
    }
    assert_int_equal(allowed, 3);
    sluice_dlimiter_stats_get(good, &st);
    assert_false(st.fallback);
    assert_int_equal(st.redis_calls, 5);
    assert_int_equal(st.fallback_calls, 0);

    /* a semaphore with a foreign value under its keys falls back alone */
    redisReply *r = redis_fixture_cmd(&redis, "SET %s:ds:bank:held foreign", prefix);
    assert_non_null(r);
    freeReplyObject(r);
    sluice_dsem *ds = dsem(a, 4, 4, 0, 0);
    assert_int_equal(sluice_cluster_heartbeat_now(a), SLUICE_OK); /* its renewal fails */
    sluice_dsem_stats dst;
    sluice_dsem_stats_get(ds, &dst);
    assert_true(dst.fallback);
    sluice_cluster_status_get(a, &cs);
    assert_false(cs.fallback);
    assert_int_equal(cs.fallbacks, cs0.fallbacks);
    assert_int_equal(cs.reconnects, cs0.reconnects);
    assert_int_equal(sluice_cluster_share_k_get(a, bid), 8);
    assert_int_equal(atomic_load(&ks.reason), SLUICE_SHARE_VIEW); /* K never went to the fallback bound */
    sluice_dlimiter_stats_get(good, &st);
    assert_false(st.fallback);
    assert_false(sluice_dlimiter_allow(good)); /* from Redis: its bucket is empty */
    sluice_dlimiter_stats_get(good, &st);
    assert_int_equal(st.redis_calls, 6);
    assert_int_equal(st.fallback_calls, 0);

    /* a heartbeat later the bad limiter tries Redis once more; the key
     * repaired, it answers from the shared bucket again */
    r = redis_fixture_cmd(&redis, "DEL %s:rl:bad", prefix);
    assert_non_null(r);
    freeReplyObject(r);
    sluice_fake_clock_advance(&fake, SLUICE_NS_PER_SEC);
    assert_true(sluice_dlimiter_allow(bad));
    sluice_dlimiter_stats_get(bad, &st);
    assert_int_equal(st.redis_calls, 2);
    assert_false(st.fallback);
    r = redis_fixture_cmd(&redis, "EXISTS %s:rl:bad", prefix);
    assert_non_null(r);
    assert_int_equal(r->integer, 1); /* written by the script */
    freeReplyObject(r);
    assert_int_equal(sluice_cluster_unbind(a, bid), SLUICE_OK);
    cleanup_now(ds);
    cleanup_now(good);
    cleanup_now(bad);
    cleanup_now(a);
}

/* A cancel gives the tokens back where they were charged, whatever the
 * mode when it is called. Routed by the mode (the version before): a
 * reservation taken from Redis and cancelled in fallback refilled the
 * fallback bucket, which had not given those tokens; one taken from Redis
 * and cancelled after a recovery, before the limiter's next call, went to
 * the fallback bucket too and stayed charged in Redis; one taken in
 * fallback, carried to Redis on recovery and cancelled in a later
 * fallback refilled the fallback bucket again. Rates of 1000 s a token:
 * Redis's real clock refills nothing meanwhile; the fallback bucket runs
 * on the fake clock. Burst 2, one replica: the fallback bucket holds 2. */
/* The heartbeat's script fails on the cluster's own keys (a foreign
 * value under the member set here; on Redis 5/6 a demoted primary that
 * keeps its clients answers so too, its -READONLY wrapped in "ERR Error
 * running script"): the connection is dropped and the next heartbeat
 * after the backoff reconnects. It was kept as for one object's script
 * error, so the replica stayed in fallback on that socket for as long as
 * the socket stayed open (redis_up 1, no reconnect). */
static void test_heartbeat_script_error_reconnects(void **state)
{
    (void)state;
    static sluice_fake_clock fake;
    sluice_fake_clock_init(&fake, 1000 * SLUICE_NS_PER_SEC);
    sluice_cluster *a = clocked_replica("a", 0, &fake);
    assert_int_equal(sluice_cluster_heartbeat_now(a), SLUICE_OK);
    sluice_cluster_status cs0, cs;
    sluice_cluster_status_get(a, &cs0);
    assert_true(cs0.redis_up);
    redisReply *r = redis_fixture_cmd(&redis, "SET %s:svc:orders:members foreign", prefix);
    assert_non_null(r);
    freeReplyObject(r);
    assert_int_equal(sluice_cluster_heartbeat_now(a), SLUICE_EIO);
    sluice_cluster_status_get(a, &cs);
    assert_true(cs.fallback);
    assert_false(cs.redis_up); /* dropped, not kept */
    assert_true(cs.redis_errors > cs0.redis_errors);
    r = redis_fixture_cmd(&redis, "DEL %s:svc:orders:members", prefix);
    assert_non_null(r);
    freeReplyObject(r);
    healthy_again(a, &fake);
    sluice_cluster_status_get(a, &cs);
    assert_false(cs.fallback);
    assert_true(cs.redis_up);
    assert_int_equal(cs.reconnects, cs0.reconnects + 1);
}

/* Which error replies say the server serves nobody (the connection is
 * dropped) and which are the call's own (kept): the first word, and the
 * code Redis 5/6 wrap inside "ERR Error running script" (canned replies:
 * Redis 7 here sends the inner code first). */
static void test_server_error_classes(void **state)
{
    (void)state;
    static const char *const server[] = {
        "READONLY You can't write against a read only replica. script: 1a2b, on @user_script:1.",
        "BUSY Redis is busy running a script.",
        "LOADING Redis is loading the dataset in memory",
        "ERR Error running script (call to f_0123456789abcdef): @user_script:1: @user_script: 1: -READONLY "
        "You can't write against a read only replica. ",
        "ERR Error running script (call to f_0123456789abcdef): @user_script:1: @user_script: 1: -OOM "
        "command "
        "not allowed when used memory > 'maxmemory'. ",
        "ERR Error running script (call to f_0123): @user_script:1: MISCONF Redis is configured to save RDB "
        "snapshots, but it's currently unable to persist to disk.",
        "ERR Error running script (call to f_0123): @user_script:1: @user_script: 1: -NOREPLICAS Not enough "
        "good replicas to write.",
    };
    static const char *const own[] = {
        "WRONGTYPE Operation against a key holding the wrong kind of value script: 1a2b, on @user_script:1.",
        "ERR user_script:1: Script attempted to access nonexistent global variable 'x' script: 1a2b",
        "ERR Error running script (call to f_0123): @user_script:1: WRONGTYPE Operation against a key "
        "holding the wrong kind of value",
        "ERR Error running script (call to f_0123): @user_script:12: user_script:12: attempt to compare nil "
        "with number",
        "ERR wrong number of arguments for 'evalsha' command",
        "READONLYX not a code",
        "",
    };
    for (size_t i = 0; i < sizeof server / sizeof server[0]; i++) {
        if (!sluice__redis_server_error(server[i])) {
            fail_msg("not classed as the server's: %s", server[i]);
        }
    }
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        if (sluice__redis_server_error(own[i])) {
            fail_msg("classed as the server's: %s", own[i]);
        }
    }
    assert_false(sluice__redis_server_error(NULL));
}

static void outage(sluice_cluster *c)
{
    redis_fixture_pause(&redis);
    assert_int_equal(sluice_cluster_heartbeat_now(c), SLUICE_EIO);
}

static void recovery(sluice_cluster *c, sluice_fake_clock *fake)
{
    redis_fixture_resume(&redis);
    healthy_again(c, fake);
}

static void test_dlimiter_cancel_goes_where_charged(void **state)
{
    (void)state;
    static sluice_fake_clock fake;
    sluice_fake_clock_init(&fake, 1000 * SLUICE_NS_PER_SEC);
    sluice_cluster *a = clocked_replica("a", 0, &fake);
    assert_int_equal(sluice_cluster_heartbeat_now(a), SLUICE_OK); /* a view of 1 replica */
    sluice_dlimiter *dl = slow_limiter(a, "where", SLOW_RATE);
    assert_int_equal(sluice_dlimiter_set_burst(dl, 2), SLUICE_OK);
    /* Redis: the bucket of 2 taken, then two tokens in debt */
    assert_true(sluice_dlimiter_allow(dl));
    assert_true(sluice_dlimiter_allow(dl));
    sluice_reservation rr1, rr2, rl, rl2;
    assert_int_equal(sluice_dlimiter_reserve(dl, 1, &rr1), SLUICE_OK);
    assert_int_equal(sluice_dlimiter_reserve(dl, 1, &rr2), SLUICE_OK);
    assert_true(rr1.delay_ns > 0 && rr2.delay_ns > rr1.delay_ns);

    /* 1. taken from Redis, cancelled in fallback: not into the fallback
     * bucket (Redis cannot be reached: the tokens stay spent) */
    outage(a);
    assert_true(sluice_dlimiter_allow(dl)); /* the fallback bucket, full: 2 */
    assert_true(sluice_dlimiter_allow(dl));
    assert_false(sluice_dlimiter_allow(dl));
    sluice_dlimiter_cancel(dl, &rr1);
    assert_false(sluice_dlimiter_allow(dl)); /* was true: the bucket got rr1's token */
    assert_int_equal(sluice_dlimiter_reserve(dl, 1, &rl), SLUICE_OK); /* a fallback debt */
    assert_true(rl.delay_ns > 0);

    /* 2. taken from Redis, cancelled after the recovery but before the
     * limiter's next call: back to Redis. Redis then holds the burst
     * and rr1's token (never given back): one more token waits two token
     * times (was three: rr2's stayed charged there). The fallback
     * reservation rl, cancelled before any carry, goes back to the
     * fallback bucket, so the next call carries nothing. */
    recovery(a, &fake);
    sluice_dlimiter_cancel(dl, &rr2);
    sluice_dlimiter_cancel(dl, &rl);
    sluice_reservation rx;
    assert_int_equal(sluice_dlimiter_reserve(dl, 1, &rx), SLUICE_OK);
    sluice_dlimiter_stats st;
    sluice_dlimiter_stats_get(dl, &st);
    assert_false(st.fallback);
    if (rx.delay_ns <= 3 * SLOW_TOKEN_NS / 2 || rx.delay_ns > 2 * SLOW_TOKEN_NS) {
        fail_msg("a token after the cancels waits %llu ns, want about two tokens (%llu ns)",
                 (unsigned long long)rx.delay_ns, (unsigned long long)(2 * SLOW_TOKEN_NS));
    }
    sluice_dlimiter_cancel(dl, &rx); /* Redis's: back to rr1's token of debt */

    /* 3. taken in fallback, carried to Redis on recovery, cancelled in a
     * later fallback: not into the fallback bucket */
    outage(a);
    assert_int_equal(sluice_dlimiter_reserve(dl, 1, &rl2), SLUICE_OK); /* the bucket's, in debt */
    assert_true(rl2.delay_ns > 0);
    recovery(a, &fake);
    assert_false(sluice_dlimiter_allow(dl)); /* carries rl2's token to Redis */
    outage(a);
    assert_false(sluice_dlimiter_allow(dl)); /* in fallback: the bucket is empty */
    sluice_dlimiter_cancel(dl, &rl2);
    assert_false(sluice_dlimiter_allow(dl)); /* was true: the bucket got a token Redis was charged */
    redis_fixture_resume(&redis);
    cleanup_now(dl);
    cleanup_now(a);
}

/* A Redis restarted empty sets the restart grace (the bucket starts
 * empty) at the first call that sees the new epoch; a cancel of a
 * reservation taken from the old server then gives nothing back. It
 * moved the fresh TAT back by its tokens: 5 of the grace's 10 came back
 * at once (and a cancel of a whole burst deleted the keys: a full
 * bucket). FLUSHALL stands in for the restart (the connection stays). */
static void test_dlimiter_cancel_after_restart(void **state)
{
    (void)state;
    static sluice_fake_clock fake;
    sluice_fake_clock_init(&fake, 1000 * SLUICE_NS_PER_SEC);
    sluice_cluster *a = clocked_replica("a", 0, &fake);
    assert_int_equal(sluice_cluster_heartbeat_now(a), SLUICE_OK);
    sluice_dlimiter *dl = slow_limiter(a, "restartcancel", SLOW_RATE);
    assert_int_equal(sluice_dlimiter_set_burst(dl, 10), SLUICE_OK);
    assert_true(sluice_dlimiter_allow_n(dl, 10));
    sluice_reservation r, big;
    assert_int_equal(sluice_dlimiter_reserve(dl, 5, &r), SLUICE_OK);
    assert_int_equal(sluice_dlimiter_reserve(dl, 10, &big), SLUICE_OK);
    assert_true(r.delay_ns > 0 && big.delay_ns > r.delay_ns);
    redisReply *rep = redis_fixture_cmd(&redis, "FLUSHALL");
    assert_non_null(rep);
    freeReplyObject(rep);
    assert_false(sluice_dlimiter_allow(dl)); /* the grace: the bucket starts empty */
    sluice_dlimiter_cancel(dl, &r);
    assert_false(sluice_dlimiter_allow_n(dl, 5)); /* was true: the cancel took 5 off the grace */
    sluice_dlimiter_cancel(dl, &big);
    assert_false(sluice_dlimiter_allow(dl)); /* was true: the keys deleted, a full bucket */
    sluice_dlimiter_stats st;
    sluice_dlimiter_stats_get(dl, &st);
    assert_false(st.fallback);
    /* a reservation taken after the restart is given back as before */
    sluice_fake_clock_advance(&fake, 1);
    sluice_reservation after;
    assert_int_equal(sluice_dlimiter_reserve(dl, 1, &after), SLUICE_OK);
    uint64_t d1 = after.delay_ns;
    sluice_dlimiter_cancel(dl, &after);
    assert_int_equal(sluice_dlimiter_reserve(dl, 1, &after), SLUICE_OK);
    assert_true(after.delay_ns <= d1);
    cleanup_now(dl);
    cleanup_now(a);
}

/* A recovery carries the fallback bucket's debt to Redis: with 1 token
 * left, a reserve of 2 puts it 1 in debt and 1 token is carried. A cancel
 * gives that 1 back to Redis and the other to the bucket; it gave both to
 * Redis (one never charged there: the shared bucket one token looser)
 * and none to the bucket. */
static void test_dlimiter_cancel_splits_carry(void **state)
{
    (void)state;
    static sluice_fake_clock fake;
    sluice_fake_clock_init(&fake, 1000 * SLUICE_NS_PER_SEC);
    sluice_cluster *a = clocked_replica("a", 0, &fake);
    assert_int_equal(sluice_cluster_heartbeat_now(a), SLUICE_OK); /* a view of 1 replica */
    sluice_dlimiter *dl = slow_limiter(a, "split", SLOW_RATE);
    assert_int_equal(sluice_dlimiter_set_burst(dl, 2), SLUICE_OK);
    outage(a);
    assert_true(sluice_dlimiter_allow(dl)); /* the fallback bucket of 2: 1 left */
    sluice_reservation r;
    assert_int_equal(sluice_dlimiter_reserve(dl, 2, &r), SLUICE_OK); /* 1 in debt */
    assert_true(r.delay_ns > 0);
    recovery(a, &fake);
    /* the shared bucket of 2, 1 carried in: one allow, then empty */
    assert_true(sluice_dlimiter_allow(dl));
    assert_false(sluice_dlimiter_allow(dl));
    sluice_dlimiter_cancel(dl, &r);
    assert_true(sluice_dlimiter_allow(dl));  /* the carried token, back in Redis */
    assert_false(sluice_dlimiter_allow(dl)); /* was true: 2 given back to Redis */
    outage(a);
    assert_true(sluice_dlimiter_allow(dl)); /* was false: the bucket's own token came back */
    assert_false(sluice_dlimiter_allow(dl));
    redis_fixture_resume(&redis);
    cleanup_now(dl);
    cleanup_now(a);
}

/* A fallback reservation cancelled twice gives back once: the second
 * cancel found no entry and gave the tokens to Redis, never charged
 * there. */
static void test_dlimiter_cancel_twice(void **state)
{
    (void)state;
    static sluice_fake_clock fake;
    sluice_fake_clock_init(&fake, 1000 * SLUICE_NS_PER_SEC);
    sluice_cluster *a = clocked_replica("a", 0, &fake);
    assert_int_equal(sluice_cluster_heartbeat_now(a), SLUICE_OK);
    sluice_dlimiter *dl = slow_limiter(a, "twice", SLOW_RATE);
    assert_int_equal(sluice_dlimiter_set_burst(dl, 2), SLUICE_OK);
    assert_true(sluice_dlimiter_allow_n(dl, 2)); /* the shared bucket, empty */
    outage(a);
    assert_true(sluice_dlimiter_allow_n(dl, 2)); /* the fallback bucket, empty */
    sluice_reservation r;
    assert_int_equal(sluice_dlimiter_reserve(dl, 1, &r), SLUICE_OK);
    assert_true(r.delay_ns > 0);
    sluice_dlimiter_cancel(dl, &r);
    sluice_dlimiter_cancel(dl, &r); /* nothing: Redis cannot be reached anyway */
    recovery(a, &fake);
    sluice_dlimiter_cancel(dl, &r); /* nothing: was a token to Redis */
    assert_false(sluice_dlimiter_allow(dl));
    outage(a);
    assert_false(sluice_dlimiter_allow(dl)); /* the bucket got its token back once, then repaid it */
    redis_fixture_resume(&redis);
    cleanup_now(dl);
    cleanup_now(a);
}

/* A limiter whose own script fails answers from its fallback bucket for
 * one heartbeat, at most 1 s: with a heartbeat of UINT64_MAX the retry
 * time saturated and it never tried Redis again. */
static void test_dlimiter_script_error_retry_capped(void **state)
{
    (void)state;
    static sluice_fake_clock fake;
    sluice_fake_clock_init(&fake, 1000 * SLUICE_NS_PER_SEC);
    sluice_cluster *a = extreme_replica("a", &fake, UINT64_MAX, 0, REDIS_TIMEOUT_MS * SLUICE_NS_PER_MS);
    assert_int_equal(sluice_cluster_heartbeat_now(a), SLUICE_OK);
    sluice_dlimiter *dl = slow_limiter(a, "retrycap", SLOW_RATE);
    assert_int_equal(sluice_dlimiter_set_burst(dl, 4), SLUICE_OK);
    set_foreign_value("retrycap");
    assert_true(sluice_dlimiter_allow(dl)); /* the script fails: the fallback bucket */
    sluice_dlimiter_stats st;
    sluice_dlimiter_stats_get(dl, &st);
    assert_true(st.fallback);
    redisReply *rep = redis_fixture_cmd(&redis, "DEL %s:rl:retrycap", prefix);
    assert_non_null(rep);
    freeReplyObject(rep);
    sluice_fake_clock_advance(&fake, SLUICE_NS_PER_SEC);
    sluice_dlimiter_stats_get(dl, &st);
    assert_false(st.fallback); /* was true: retry_at_ns at UINT64_MAX */
    uint64_t calls = st.redis_calls;
    assert_true(sluice_dlimiter_allow_n(dl, 4)); /* the shared bucket, full */
    sluice_dlimiter_stats_get(dl, &st);
    assert_int_equal(st.redis_calls, calls + 1);
    cleanup_now(dl);
    cleanup_now(a);
}

static bool key_exists(const char *key)
{
    redisReply *r = redis_fixture_cmd(&redis, "EXISTS %s", key);
    bool yes = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r) {
        freeReplyObject(r);
    }
    return yes;
}

/* Redis down when the cluster and the limiter are made (not an error):
 * the limiter answers from its fallback bucket, which with no replica
 * count ever read holds one token (fallback_replicas 0: as many replicas
 * as the burst has tokens); Redis back, it answers from the
 * shared bucket. Redis restarted empty: the shared debt is gone with the
 * keys, but the limiter, which had seen the old server's epoch, starts
 * the bucket empty there (a restart grace of burst / rate; it was full
 * again, a fresh burst per limiter), answers from Redis again once a
 * heartbeat reconnects, its script loaded anew, not stuck in fallback;
 * a limiter that never reached the old server finds the bucket full. */
static void test_dlimiter_down_at_create_and_restart_empty(void **state)
{
    (void)state;
    redis_fixture_pause(&redis);
    sluice_cluster *a = replica("orders", "a", NULL);
    sluice_cluster_status cs;
    sluice_cluster_status_get(a, &cs);
    assert_true(cs.fallback);
    assert_false(cs.have_view);
    sluice_dlimiter_config lc;
    sluice_dlimiter_config_init(&lc);
    lc.name = "downstart";
    lc.rate = SLOW_RATE;
    lc.burst = 4;
    sluice_dlimiter *dl = NULL;
    char err[256];
    assert_int_equal(sluice_dlimiter_create(a, &lc, &dl, err, sizeof err), SLUICE_OK);
    cleanup_push(undo_dlimiter, dl);
    int allowed = 0;
    for (int i = 0; i < 8; i++) {
        allowed += sluice_dlimiter_allow(dl);
    }
    assert_int_equal(allowed, 1); /* no replica count known: as many replicas as tokens, one each */
    sluice_dlimiter_stats st;
    sluice_dlimiter_stats_get(dl, &st);
    assert_true(st.fallback);
    assert_int_equal(st.redis_calls, 0);
    redis_fixture_resume(&redis);
    assert_true(POLL(sluice_cluster_heartbeat_now(a) == SLUICE_OK, 10000));
    /* the shared bucket, full: the outage's burst was not charged to it
     * (allows never go into debt) */
    allowed = 0;
    for (int i = 0; i < 8; i++) {
        allowed += sluice_dlimiter_allow(dl);
    }
    sluice_dlimiter_stats_get(dl, &st);
    assert_false(st.fallback);
    assert_true(st.redis_calls >= 1);
    assert_int_equal(allowed, 4);

    assert_true(redis_fixture_restart(&redis));
    /* the first calls may fail on the old connection; once a heartbeat
     * reconnects, the shared bucket answers from the new server: empty,
     * not full (the restart grace: this replica had seen the old epoch,
     * the new server has none), so no call is allowed, from Redis or from
     * the fallback bucket (1 taken, 0.001/s). The TAT on the new server
     * shows that a call reached it. */
    assert_true(POLL(sluice_cluster_heartbeat_now(a) == SLUICE_OK, 10000));
    char tat_key[96];
    snprintf(tat_key, sizeof tat_key, "%s:rl:downstart", prefix);
    bool any = false;
    assert_true(POLL((sluice_cluster_heartbeat_now(a), any |= sluice_dlimiter_allow(dl), key_exists(tat_key)),
                     10000));
    assert_false(any); /* was true: the bucket full again */
    sluice_dlimiter_stats_get(dl, &st);
    assert_false(st.fallback);
    /* the bucket starts empty and refills at the rate: one more token
     * waits a token time (less the Redis time since); full, it waited
     * nothing */
    uint64_t d = reserve_delay(dl, 1);
    if (d <= SLOW_TOKEN_NS / 2 || d > SLOW_TOKEN_NS) {
        fail_msg("a token after the restart waits %llu ns, want about a token (%llu ns)",
                 (unsigned long long)d, (unsigned long long)SLOW_TOKEN_NS);
    }
    /* a limiter that never reached the old server takes the bucket as it
     * finds it (it knows no epoch): full */
    lc.name = "fresh";
    sluice_dlimiter *fresh = NULL;
    assert_int_equal(sluice_dlimiter_create(a, &lc, &fresh, err, sizeof err), SLUICE_OK);
    cleanup_push(undo_dlimiter, fresh);
    allowed = 0;
    for (int i = 0; i < 8; i++) {
        allowed += sluice_dlimiter_allow(fresh);
    }
    assert_int_equal(allowed, 4);
    cleanup_now(fresh);
    cleanup_now(dl);
    cleanup_now(a);
}

/* With no member list ever read (Redis down since the cluster was made)
 * the fallback bucket does not assume one replica (the whole rate and
 * burst each, so N replicas started in an outage took N times the rate):
 * it assumes cfg.fallback_replicas, by default as many replicas as the
 * burst has tokens, one token each at rate / burst, and a set_burst moves
 * that assumption with it. fallback_replicas 2 halves rate and burst; at
 * UINT_MAX the bucket still holds one token. Exact on the fake clock. */
static sluice_dlimiter *no_count_limiter(sluice_cluster *c, const char *name, unsigned fallback_replicas)
{
    sluice_dlimiter_config lc;
    sluice_dlimiter_config_init(&lc);
    lc.name = name;
    lc.rate = 1;
    lc.burst = 10;
    lc.fallback_replicas = fallback_replicas;
    sluice_dlimiter *dl = NULL;
    assert_int_equal(sluice_dlimiter_create(c, &lc, &dl, NULL, 0), SLUICE_OK);
    return cleanup_push(undo_dlimiter, dl);
}

static int allow_count(sluice_dlimiter *dl, int most)
{
    int n = 0;
    while (n < most && sluice_dlimiter_allow(dl)) {
        n++;
    }
    return n;
}

static void test_dlimiter_no_count_assumes_burst_replicas(void **state)
{
    (void)state;
    static sluice_fake_clock fake;
    sluice_fake_clock_init(&fake, 1000 * SLUICE_NS_PER_SEC);
    sluice_cluster *c = clocked_replica("nocount", dead_port, &fake);
    sluice_cluster_status cs;
    sluice_cluster_status_get(c, &cs);
    assert_false(cs.have_view);
    /* default: 10 replicas assumed, a bucket of 1 at 0.1/s */
    sluice_dlimiter *dl = no_count_limiter(c, "nc0", 0);
    assert_int_equal(allow_count(dl, 20), 1);
    assert_delay(reserve_delay(dl, 1), 10 * SLUICE_NS_PER_SEC);
    sluice_dlimiter_stats st;
    sluice_dlimiter_stats_get(dl, &st);
    assert_true(st.fallback);
    assert_int_equal(st.redis_calls, 0);
    /* the burst grows to 20: 20 replicas assumed, still a bucket of 1, at 0.05/s
     * (the debt of 1 token is kept as a count, 20 s at the new rate) */
    assert_int_equal(sluice_dlimiter_set_burst(dl, 20), SLUICE_OK);
    assert_int_equal(sluice_dlimiter_set_rate(dl, 1), SLUICE_OK);
    assert_delay(reserve_delay(dl, 1), 40 * SLUICE_NS_PER_SEC);
    cleanup_now(dl);
    /* 2 replicas: 5 tokens at 0.5/s */
    dl = no_count_limiter(c, "nc2", 2);
    assert_int_equal(allow_count(dl, 20), 5);
    assert_delay(reserve_delay(dl, 1), 2 * SLUICE_NS_PER_SEC);
    cleanup_now(dl);
    /* 1 replica: the whole bucket */
    dl = no_count_limiter(c, "nc1", 1);
    assert_int_equal(allow_count(dl, 20), 10);
    cleanup_now(dl);
    /* UINT_MAX replicas: still one token */
    dl = no_count_limiter(c, "ncmax", UINT_MAX);
    assert_int_equal(allow_count(dl, 20), 1);
    assert_false(sluice_dlimiter_allow(dl));
    cleanup_now(dl);
    cleanup_now(c);
}

/* A semaphore's block at its largest, UINT_MAX: a lease asks for all
 * the service may hold. in_use + waiters + 1 + block wrapped to a target
 * of 0, so a try_acquire that had to lease asked Redis for nothing and
 * said EAGAIN with the whole share free. On a fake clock no renewal
 * (which asks without the + 1, and so did not wrap) runs to hide it. */
static void test_dsem_block_at_max(void **state)
{
    (void)state;
    static sluice_fake_clock fake;
    sluice_fake_clock_init(&fake, 1000 * SLUICE_NS_PER_SEC);
    sluice_cluster *a = clocked_replica("a", 0, &fake);
    assert_int_equal(sluice_cluster_heartbeat_now(a), SLUICE_OK);
    sluice_dsem *ds = dsem(a, 4, 0, 0, UINT_MAX);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sluice_dsem_try_acquire(ds), SLUICE_OK);
    }
    assert_int_equal(sluice_dsem_try_acquire(ds), SLUICE_EAGAIN); /* the share, all in use */
    sluice_dsem_stats st;
    sluice_dsem_stats_get(ds, &st);
    assert_int_equal(st.leased, 4);
    assert_int_equal(st.lease_calls, 2); /* the first leased all 4; the fifth try asked again */
    assert_false(st.fallback);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sluice_dsem_release(ds), SLUICE_OK);
    }
    /* a renewal keeps the whole lease: a block's headroom is all of it */
    assert_int_equal(sluice_cluster_heartbeat_now(a), SLUICE_OK);
    sluice_dsem_stats_get(ds, &st);
    assert_int_equal(st.leased, 4);
    cleanup_now(ds);
    cleanup_now(a);
}

/* ---- rolling upgrade: replicas of the version before ----------------------------------- */

/* The take script of the version before rate changes rescaled the debt
 * (before the interval key), as it ran on those replicas: the TAT alone,
 * in whole microseconds, at the caller's own interval. */
static const char old_gcra_lua[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local T, burst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if tat < now then tat = now end\n"
    "local new_tat = tat + n * T\n"
    "local wait = new_tat - burst * T - now\n"
    "if ARGV[4] == 'allow' and wait > 0 then return {0, math.floor(wait)} end\n"
    "redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + "
    "1)\n"
    "if wait < 0 then wait = 0 end\n"
    "return {1, math.floor(wait)}\n";

/* An old replica at `rate` reserves n tokens of limiter `name`; returns
 * the wait it was told (us). */
static long long old_reserve(const char *name, double rate, unsigned n)
{
    char key[96];
    snprintf(key, sizeof key, "%s:rl:%s", prefix, name);
    redisReply *r = redis_fixture_cmd(&redis, "EVAL %s 1 %s %.6f %s %u %s", old_gcra_lua, key, 1e6 / rate,
                                      "1", n, "reserve");
    assert_non_null(r);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        fail_msg("old script: %s", r->type == REDIS_REPLY_ERROR ? r->str : "not {taken, wait}");
    }
    assert_int_equal(r->element[0]->integer, 1);
    long long w = r->element[1]->integer;
    freeReplyObject(r);
    return w;
}

/* A mixed fleet. The usual rolling upgrade (every replica at one rate)
 * is exact. When an old replica runs at another rate than the interval a
 * new one recorded, what it adds to the TAT is read as built at the
 * reader's rate (as the old version reads everything), not rescaled from
 * an interval it never used: before, a reader at the old replica's rate
 * counted its 10 tokens as 1. And an old replica reads the new TAT
 * format (decimals) as the number it is. */
static void test_dlimiter_rolling_upgrade(void **state)
{
    (void)state;
    sluice_cluster *a = replica("orders", "a", NULL);
    sluice_cluster *b = replica("orders", "b", NULL);
    /* all at 0.01/s (100 s a token): 1 (new) + 3 (old) in debt, the next
     * new one waits 4 tokens' time */
    sluice_dlimiter *same = slow_limiter(a, "same", 0.01);
    assert_int_equal(reserve_delay(same, 1), 0);
    old_reserve("same", 0.01, 3);
    uint64_t d = reserve_delay(same, 1);
    assert_true(d > SEC(390) && d <= SEC(400));
    /* the old replica reads the TAT the new one stored (with decimals):
     * 5 tokens in debt now, its 6th waits ~5 tokens' time */
    long long w = old_reserve("same", 0.01, 1);
    assert_true(w > 490000000LL && w <= 500000000LL);

    /* new replica a at 0.001/s records 1000 s a token and takes the full
     * bucket's token (1000 s outstanding) */
    sluice_dlimiter *na = slow_limiter(a, "mixed", 0.001);
    assert_int_equal(reserve_delay(na, 1), 0);
    /* an old replica at 0.01/s takes 10 tokens: 10 x 100 s more */
    old_reserve("mixed", 0.01, 10);
    /* new replica b at 0.01/s: the vouched 1000 s is 1 token (100 s at
     * its rate), the old replica's 1000 s are its 10 tokens: 11 in debt,
     * the 12th waits 1100 s. (Rescaling all 2000 s from the recorded
     * 1000 s a token said 2 tokens: a wait of 200 s.) */
    sluice_dlimiter *nb = slow_limiter(b, "mixed", 0.01);
    d = reserve_delay(nb, 1);
    if (!(d > SEC(1090) && d <= SEC(1100))) {
        fail_msg("new replica after an old one's 10 tokens waits %.1f s, want ~1100 s", (double)d / 1e9);
    }
    char iv[64];
    interval_key("mixed", iv, sizeof iv); /* now vouches for the whole TAT at b's interval */
    assert_string_equal(iv, "100000000");
    /* and a, back at 1000 s a token: 12 tokens, the 13th waits 12000 s */
    d = reserve_delay(na, 1);
    assert_true(d > SEC(11900) && d <= SEC(12000));
    cleanup_now(nb);
    cleanup_now(na);
    cleanup_now(same);
    cleanup_now(a);
    cleanup_now(b);
}

/* ---- precision at the largest rate -------------------------------------------------- */

/* The stored TAT in units of 1e-9 us (whole us x 1e9 + the decimals),
 * exact: integer arithmetic on the string. */
static __int128 tat_units(const char *name)
{
    redisReply *r = redis_fixture_cmd(&redis, "GET %s:rl:%s", prefix, name);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char *dot = strchr(r->str, '.');
    __int128 v = (__int128)strtoll(r->str, NULL, 10) * 1000000000;
    if (dot) {
        char frac[10] = "000000000";
        memcpy(frac, dot + 1, strnlen(dot + 1, 9));
        v += strtoll(frac, NULL, 10);
    }
    freeReplyObject(r);
    return v;
}

/* k reserves of one token at `rate` move the TAT by k / rate within the
 * header's bound: 5e-10 us plus 2^-52 of the outstanding time, a call.
 * The bucket first goes `ahead_s` seconds into debt (burst = rate x
 * ahead_s), so the TAT stays ahead of Redis's clock throughout. */
static void check_precision(const char *name, double rate, double ahead_s, int k)
{
    sluice_cluster *a = replica("orders", "a", NULL);
    sluice_dlimiter_config lc;
    sluice_dlimiter_config_init(&lc);
    lc.name = name;
    lc.rate = rate;
    lc.burst = (uint64_t)(rate * ahead_s);
    sluice_dlimiter *dl = NULL;
    char err[256];
    assert_int_equal(sluice_dlimiter_create(a, &lc, &dl, err, sizeof err), SLUICE_OK);
    cleanup_push(undo_dlimiter, dl);
    reserve_delay(dl, lc.burst);
    __int128 before = tat_units(name);
    for (int i = 0; i < k; i++) {
        reserve_delay(dl, 1);
    }
    __int128 moved = tat_units(name) - before;
    double want = k * 1e6 / rate * 1e9; /* units of 1e-9 us */
    double bound = k * (0.5 + 2.3e-16 * ahead_s * 1e6 * 1e9) + 1;
    if (fabs((double)moved - want) > bound) {
        fail_msg("%d tokens at %g/s moved the TAT %.3f us, want %.3f us (+-%.6f)", k, rate,
                 (double)moved / 1e9, want / 1e9, bound / 1e9);
    }
    cleanup_now(dl);
    cleanup_now(a);
}

/* The smallest rate, a token every 31.7 years: a wait past 2^53 us is
 * reported as 2^53 us (the reply integer of a larger number was garbage,
 * read as no wait at all), and a debt of 1e21 us still stores (its PX,
 * capped at 1e15 ms, was printed by Lua as 1e+18, and the call failed
 * into fallback). */
static void test_dlimiter_slowest(void **state)
{
    (void)state;
    sluice_cluster *a = replica("orders", "a", NULL);
    sluice_dlimiter_config lc;
    sluice_dlimiter_config_init(&lc);
    lc.name = "slowest";
    lc.rate = SLUICE_DLIMITER_RATE_MIN;
    lc.burst = 2;
    sluice_dlimiter *dl = NULL;
    char err[256];
    assert_int_equal(sluice_dlimiter_create(a, &lc, &dl, err, sizeof err), SLUICE_OK);
    cleanup_push(undo_dlimiter, dl);
    assert_int_equal(reserve_delay(dl, 2), 0);
    /* one token: 1e15 us less the little Redis time since (10 s allowed) */
    uint64_t d = reserve_delay(dl, 1);
    assert_true(d <= 1000000000000000000ULL && d > 1000000000000000000ULL - SEC(10));
    assert_int_equal(sluice_dlimiter_set_burst(dl, 1000000), SLUICE_OK);
    reserve_delay(dl, 1000000);
    sluice_reservation r;
    assert_int_equal(sluice_dlimiter_reserve(dl, 1000000, &r), SLUICE_OK); /* ~2e21 us in debt */
    assert_int_equal(r.delay_ns, 9007199254740992ULL * SLUICE_NS_PER_US);
    assert_true(r.act_at_ns > r.reserved_at_ns);
    assert_false(sluice_dlimiter_allow(dl));
    redisReply *pt = redis_fixture_cmd(&redis, "PTTL %s:rl:slowest", prefix);
    assert_non_null(pt);
    assert_true(pt->integer > 0 && pt->integer <= 1000000000000000LL);
    freeReplyObject(pt);
    sluice_dlimiter_stats st;
    sluice_dlimiter_stats_get(dl, &st);
    assert_false(st.fallback);
    assert_int_equal(st.fallback_calls, 0);
    cleanup_now(dl);
    cleanup_now(a);
}

/* A burst at its largest, UINT64_MAX, with Redis running, at the slowest
 * and the fastest rate: the whole bucket is one allow_n and a reserve of
 * UINT64_MAX more reports the capped wait of 2^53 us, answered by Redis
 * (no fallback call) with the keys' expiry within its cap. Counted to the
 * token only below 2^52 tokens of outstanding time (cluster.h, burst): at
 * 2^50 and the slowest rate, the token after the whole bucket is refused. */
static sluice_dlimiter *burst_limiter(sluice_cluster *c, const char *name, double rate, uint64_t burst)
{
    sluice_dlimiter_config lc;
    sluice_dlimiter_config_init(&lc);
    lc.name = name;
    lc.rate = rate;
    lc.burst = burst;
    sluice_dlimiter *dl = NULL;
    char err[256];
    assert_int_equal(sluice_dlimiter_create(c, &lc, &dl, err, sizeof err), SLUICE_OK);
    return cleanup_push(undo_dlimiter, dl);
}

static void test_dlimiter_burst_at_max(void **state)
{
    (void)state;
    sluice_cluster *a = replica("orders", "a", NULL);
    const double rates[] = {SLUICE_DLIMITER_RATE_MIN, SLUICE_DLIMITER_RATE_MAX};
    for (int i = 0; i < 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "maxburst%d", i);
        sluice_dlimiter *dl = burst_limiter(a, name, rates[i], UINT64_MAX);
        assert_true(sluice_dlimiter_allow_n(dl, UINT64_MAX)); /* the full bucket */
        sluice_reservation r;
        assert_int_equal(sluice_dlimiter_reserve(dl, UINT64_MAX, &r), SLUICE_OK);
        assert_int_equal(r.delay_ns, 9007199254740992ULL * SLUICE_NS_PER_US);
        assert_int_equal(r.act_at_ns - r.reserved_at_ns, r.delay_ns);
        redisReply *pt = redis_fixture_cmd(&redis, "PTTL %s:rl:%s", prefix, name);
        assert_non_null(pt);
        assert_true(pt->integer > 0 && pt->integer <= 1000000000000000LL);
        freeReplyObject(pt);
        sluice_dlimiter_stats st;
        sluice_dlimiter_stats_get(dl, &st);
        assert_false(st.fallback);
        assert_int_equal(st.fallback_calls, 0);
        assert_int_equal(st.rejected, 0);
        cleanup_now(dl);
    }
    sluice_dlimiter *dl = burst_limiter(a, "burst50", SLUICE_DLIMITER_RATE_MIN, 1ULL << 50);
    assert_true(sluice_dlimiter_allow_n(dl, 1ULL << 50));
    assert_false(sluice_dlimiter_allow(dl)); /* 1e15 us a token, counted */
    uint64_t d = reserve_delay(dl, 1);
    assert_true(d > 1000000000000000000ULL / 2 && d <= 1000000000000000000ULL);
    cleanup_now(dl);
    cleanup_now(a);
}

static void test_dlimiter_precision(void **state)
{
    (void)state;
    /* The largest rate: 1e-3 us a token (whole microseconds charged
     * nothing: the TAT did not move). */
    check_precision("max", SLUICE_DLIMITER_RATE_MAX, 100, 300);
    /* An interval that is no whole number of microseconds: 3.33 us
     * (whole microseconds charged 3 us: 10% too little). */
    check_precision("third", 3e5, 100, 300);
}

/* ---- budget files ------------------------------------------------------------------ */

static void test_budget_parse(void **state)
{
    (void)state;
    const char *good = "# downstream-budget.yaml\n"
                       "downstream: payments-api\n"
                       "total_limit: 200\n"
                       "shares:\n"
                       "  orders-service: 80 # 40% of budget\n"
                       "  refunds-service: 60 # 30%\n"
                       "  reports-service: 40 # 20%\n"
                       "free_pool: 20 # 10% (for new services)\n";
    sluice_budget b;
    char err[256] = "";
    assert_int_equal(sluice_budget_parse(good, strlen(good), "b.yaml", &b, err, sizeof err), SLUICE_OK);
    assert_string_equal(b.downstream, "payments-api");
    assert_int_equal(b.total_limit, 200);
    assert_int_equal(b.free_pool, 20);
    assert_int_equal(b.share_count, 3);
    assert_int_equal(sluice_budget_share_of(&b, "refunds-service"), 60);
    assert_int_equal(sluice_budget_share_of(&b, "nobody"), 0);
    assert_int_equal(b.shares[0].line, 5);
    assert_int_equal(b.shares[0].col, 3);
    /* free_pool inside shares, as the text's flattened copy may be read */
    const char *inside = "downstream: x\ntotal_limit: 10\nshares:\n  a: 5\n  free_pool: 5\n";
    assert_int_equal(sluice_budget_parse(inside, strlen(inside), "b.yaml", &b, err, sizeof err), SLUICE_OK);
    assert_int_equal(b.free_pool, 5);
    assert_int_equal(b.share_count, 1);

    static const struct {
        const char *text, *want;
    } bad[] = {
        {"downstream: x\ntotal_limit: 10\nshares:\n  a: many\n",
         "b.yaml:4:6: shares.a: must be an integer >= 1"},
        {"downstream: x\ntotal_limit: 10\nshares:\n  a: 8\n  b: 3\n",
         "b.yaml:3:1: shares: the shares plus free_pool sum to 11, over total_limit 10"},
        {"downstream: x\ntotal_limit: 10\nshares:\n  a: 1\n  a: 2\n",
         "b.yaml:5:3: shares.a: service given twice"},
        {"downstream: x\ntotal_limit: 10\nshare:\n  a: 1\n", "b.yaml:3:1: share: unknown key"},
        {"total_limit: 10\n", "b.yaml:1:1: downstream: required"},
        {"downstream: x\n", "b.yaml:1:1: total_limit: required"},
        {"downstream: x\ntotal_limit: -3\n", "b.yaml:2:14: total_limit: must be an integer >= 1"},
        {"downstream: x\ntotal_limit: 10\nfree_pool: 1\nshares:\n  free_pool: 1\n", "free_pool: given twice"},
        {"downstream: 'a b'\ntotal_limit: 1\n", "b.yaml:1:13: downstream: must be"},
        {"downstream: x\n total_limit: [\n", "b.yaml:"},
        {"- 1\n- 2\n", "b.yaml:1:1: the file must be a mapping"},
        {"", "b.yaml:1:1: empty file"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        sluice_err e = sluice_budget_parse(bad[i].text, strlen(bad[i].text), "b.yaml", &b, err, sizeof err);
        assert_true(e == SLUICE_EINVAL || e == SLUICE_EPARSE);
        if (!strstr(err, bad[i].want)) {
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, bad[i].want);
        }
    }
    assert_int_equal(sluice_budget_load("/nonexistent/b.yaml", &b, err, sizeof err), SLUICE_EIO);
    assert_non_null(strstr(err, "/nonexistent/b.yaml: "));
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_settings(void **state)
{
    (void)state;
    char dir[] = "/tmp/sluice-settings-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[96];
    snprintf(path, sizeof path, "%s/sluice.yaml", dir);
    write_file(path, "pools: []\n"
                     "cluster:\n"
                     "  redis: redis.internal:6380\n"
                     "  service: orders-service\n"
                     "  heartbeat: 500ms\n"
                     "  member_ttl: 2s\n"
                     "  mode: strict\n"
                     "  budget_file: downstream-budget.yaml\n"
                     "  fallback_k: 3\n");
    sluice_cluster_settings s;
    char err[512];
    assert_int_equal(sluice_cluster_settings_load(path, &s, err, sizeof err), SLUICE_OK);
    assert_true(s.present);
    assert_string_equal(s.redis_host, "redis.internal");
    assert_int_equal(s.redis_port, 6380);
    assert_int_equal(s.heartbeat_ns, 500 * SLUICE_NS_PER_MS);
    assert_int_equal(s.member_ttl_ns, 2 * SLUICE_NS_PER_SEC);
    assert_true(s.strict);
    assert_int_equal(s.fallback_k, 3);
    char want[128];
    snprintf(want, sizeof want, "%s/downstream-budget.yaml", dir);
    assert_string_equal(s.budget_file, want);
    sluice_cluster_config cfg;
    sluice_cluster_settings_apply(&s, &cfg);
    assert_string_equal(cfg.service, "orders-service");
    assert_int_equal(cfg.redis_port, 6380);
    assert_null(cfg.replica_id);

    write_file(path, "cluster:\n  service: a\n  block: 4294967295\n  fallback_k: 0\n");
    assert_int_equal(sluice_cluster_settings_load(path, &s, err, sizeof err), SLUICE_OK);
    assert_int_equal(s.block, UINT_MAX);
    assert_int_equal(s.fallback_k, 0);

    write_file(path, "pools: []\n");
    assert_int_equal(sluice_cluster_settings_load(path, &s, err, sizeof err), SLUICE_OK);
    assert_false(s.present);

    static const struct {
        const char *text, *want;
    } bad[] = {
        {"cluster:\n  service: a\n  heartbeat: soon\n", ":3:14: cluster.heartbeat: want a duration"},
        {"cluster:\n  service: a\n  redis: nocolon\n", ":3:10: cluster.redis: want HOST:PORT"},
        {"cluster:\n  service: a\n  mode: loose\n", ":3:9: cluster.mode: want share or strict"},
        {"cluster:\n  service: a\n  hartbeat: 1s\n", ":3:3: cluster.hartbeat: unknown key"},
        {"cluster:\n  redis: h:1\n", ":2:3: cluster.service: required"},
        {"cluster:\n  service: a\n  heartbeat: 1s\n  member_ttl: 1s\n", "member_ttl: must be longer"},
        {"cluster: 3\n", ":1:10: cluster: must be a mapping"},
        /* past UINT_MAX: the message said "an integer >= 0" of a number that is */
        {"cluster:\n  service: a\n  block: 4294967296\n",
         ":3:10: cluster.block: must be an integer from 0 to 4294967295, got \"4294967296\""},
        {"cluster:\n  service: a\n  fallback_k: -1\n",
         ":3:15: cluster.fallback_k: must be an integer from 0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i].text);
        err[0] = '\0';
        assert_int_not_equal(sluice_cluster_settings_load(path, &s, err, sizeof err), SLUICE_OK);
        if (!strstr(err, path) || !strstr(err, bad[i].want)) {
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, bad[i].want);
        }
    }
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    if (!redis_fixture_available()) {
        fprintf(stderr, "SKIP: redis-server is not installed (Debian package redis-server; "
                        "scripts/install-deps.sh installs it)\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    int dead_fd;
    dead_port = redis_fixture_dead_port(&dead_fd);
    if (dead_port <= 0) {
        fprintf(stderr, "no free loopback port\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_share_k_sums),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_budget_parse),
        cmocka_unit_test(test_settings),
        cmocka_unit_test_setup_teardown(test_membership_join_leave, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_membership_expiry, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_share_mode_sum, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_share_fallback_stop_cont, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_no_redis_at_start, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_reconnect_backoff_at_max, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_cluster_extremes_with_redis, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dsem_limit_and_fair_shares, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dsem_lease_expiry, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dsem_free_pool, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dsem_fallback, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dsem_redis_restart, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dsem_recovery_after_long_outage, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_noscript_reload, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_budget_report, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_budget_report_extremes, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dlimiter_shared_bucket, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dlimiter_fallback, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dlimiter_set_rate_rescales, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dlimiter_replicas_disagree, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dlimiter_old_key, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dlimiter_fallback_set_rate_keeps_debt, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dlimiter_recovery_carries_debt, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dlimiter_eval_fails_keeps_bucket, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dlimiter_large_carry_back, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dlimiter_script_error_is_its_own, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_heartbeat_script_error_reconnects, per_test, per_test_end),
        cmocka_unit_test(test_server_error_classes),
        cmocka_unit_test_setup_teardown(test_dlimiter_cancel_goes_where_charged, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dlimiter_cancel_after_restart, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dlimiter_cancel_splits_carry, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dlimiter_cancel_twice, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dlimiter_script_error_retry_capped, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dlimiter_no_count_assumes_burst_replicas, per_test,
                                        per_test_end),
        cmocka_unit_test_setup_teardown(test_dlimiter_down_at_create_and_restart_empty, per_test,
                                        per_test_end),
        cmocka_unit_test_setup_teardown(test_dsem_block_at_max, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dlimiter_rolling_upgrade, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dlimiter_precision, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dlimiter_slowest, per_test, per_test_end),
        cmocka_unit_test_setup_teardown(test_dlimiter_burst_at_max, per_test, per_test_end),
    };
    /* By hand: CLUSTER_TEST_FILTER='test_dlimiter_*' runs only those
     * (cmocka's wildcards), to repeat a few tests in a loop. */
    const char *filter = getenv("CLUSTER_TEST_FILTER");
    if (filter && *filter) {
        cmocka_set_test_filter(filter);
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}

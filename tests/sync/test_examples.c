/*
 * tests/sync/test_examples.c - the examples of docs/sync.md, compiled and
 * run, with the stubs they call (die, reply_429, ...) defined here. When
 * an example in the doc changes, change it here too: docs_c_examples
 * (tests/docs/c_examples.py) fails, naming the example and its first line
 * not found here, until every statement of each example appears here as
 * the doc writes it (whitespace aside; statements may be split between a
 * test and the helpers it calls, and test-only lines may come between).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/sluice.h"

static char errbuf[256];

static void die(const char *msg)
{
    fail_msg("%s", msg);
}

/* ---- contexts ------------------------------------------------------------------ */

static _Atomic int dropped;
static _Atomic int drop_cause;

static void drop_conn(sluice_ctx *ctx, sluice_err cause, void *conn)
{
    (void)ctx;
    (void)conn;
    atomic_store(&drop_cause, (int)cause);
    atomic_fetch_add(&dropped, 1);
}

static int processed;
/* The test's hold on time: process() moves the fake clock by `row_cost`
 * per row (0: time stands still). */
static sluice_fake_clock *example_clock;
static uint64_t row_cost;

static void process(int row)
{
    processed += row;
    if (row_cost) {
        sluice_fake_clock_advance(example_clock, row_cost);
    }
}

/* The example, line for line as docs/sync.md shows it. Its context's
 * deadline is read from the clock of server_ctx (a child made with clock
 * NULL inherits its parent's), which the test makes a fake one: the
 * 250 ms pass only when the test moves it, so no machine is too slow for
 * the three steps, and the test can also make them outlast the deadline. */
static void ctx_example(sluice_ctx *server_ctx, int *conn, const int *row, size_t rows)
{
    /* A request's context: 250 ms from now, a child of the server's root. */
    sluice_ctx *req;
    sluice_ctx_with_timeout(&req, server_ctx, 250 * SLUICE_NS_PER_MS, NULL);

    /* Release a connection back to its pool if the request is abandoned. */
    uint64_t cb;
    sluice_ctx_on_cancel(req, drop_conn, conn, &cb);

    for (size_t i = 0; i < rows; i++) {
        if (sluice_ctx_err(req)) /* cheap: one relaxed load (+ a clock read) */
            break;
        process(row[i]);
    }
    sluice_ctx_remove_cancel(req, cb); /* after it returns, drop_conn is not running */
    sluice_ctx_release(req);
}

static void test_ctx_example(void **state)
{
    (void)state;
    sluice_fake_clock clock;
    sluice_fake_clock_init(&clock, 1000 * SLUICE_NS_PER_SEC);
    example_clock = &clock;
    sluice_ctx *server_ctx;
    assert_int_equal(sluice_ctx_create(&server_ctx, NULL, 0, &clock.clock), SLUICE_OK);
    int conn_obj, *conn = &conn_obj;
    int row[3] = {1, 2, 3};
    size_t rows = 3;

    /* Within the deadline: every row is processed, the connection kept. */
    processed = 0;
    row_cost = 0;
    ctx_example(server_ctx, conn, row, rows);
    assert_int_equal(processed, 6);
    assert_int_equal(atomic_load(&dropped), 0);

    /* Rows of 130 ms: the deadline passes during the second row, so the
     * check before the third stops the loop and drops the connection. */
    processed = 0;
    row_cost = 130 * SLUICE_NS_PER_MS;
    ctx_example(server_ctx, conn, row, rows);
    assert_int_equal(processed, 1 + 2);
    assert_int_equal(atomic_load(&dropped), 1);
    assert_int_equal(atomic_load(&drop_cause), SLUICE_ETIMEDOUT);
    assert_int_equal(sluice_ctx_err(server_ctx), SLUICE_OK); /* the root has no deadline */

    row_cost = 0;
    sluice_ctx_release(server_ctx);
}

/* ---- semaphore ----------------------------------------------------------------- */

static int reply_503(sluice_err err)
{
    return (int)err;
}

static void decode(const char *body)
{
    (void)body;
}

static int handler(sluice_sem *sem, const char *body, size_t body_len, sluice_ctx *req_ctx)
{
    /* In a handler: wait for room, but no longer than the request allows. */
    sluice_err err = sluice_sem_acquire(sem, body_len, req_ctx);
    if (err) /* ETIMEDOUT, ECANCELED, EOVERFLOW, ECLOSED */
        return reply_503(err);
    decode(body);
    sluice_sem_release(sem, body_len);
    return 0;
}

static void test_sem_example(void **state)
{
    (void)state;
    sluice_sem_config cfg;
    sluice_sem_config_init(&cfg);
    cfg.name = "decode_bytes";
    cfg.capacity = 64u << 20; /* 64 MiB of decode buffers */
    sluice_sem *sem;
    if (sluice_sem_create(&cfg, &sem, errbuf, sizeof errbuf))
        die(errbuf);

    assert_int_equal(handler(sem, "body", 4, NULL), 0);
    assert_int_equal(handler(sem, "huge", (64u << 20) + 1, NULL), SLUICE_EOVERFLOW);
    sluice_sem_destroy(sem);
}

/* ---- group --------------------------------------------------------------------- */

typedef struct job {
    int id;
    int fetched;
} job;

static int fetch_one(void *arg)
{
    job *j = arg;
    j->fetched = 1;
    return j->id == 3 ? SLUICE_EIO : 0;
}

static void log_error(const char *fmt, ...)
{
    (void)fmt;
}

static void test_group_example(void **state)
{
    (void)state;
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "example";
    pc.workers = 2;
    pc.queue_capacity = 64;
    sluice_pool *pool;
    assert_int_equal(sluice_pool_create(&pc, &pool, NULL, 0), SLUICE_OK);
    sluice_ctx *req_ctx;
    sluice_ctx_with_timeout(&req_ctx, NULL, 10 * SLUICE_NS_PER_SEC, NULL);
    job jobs[5] = {{0, 0}, {1, 0}, {2, 0}, {3, 0}, {4, 0}};
    size_t n = 5;

    sluice_group_config gc;
    sluice_group_config_init(&gc);
    gc.name = "fetch";
    gc.pool = pool;      /* or NULL and gc.threads = 8: a private pool */
    gc.limit = 8;        /* at most 8 in flight */
    gc.parent = req_ctx; /* the request's deadline covers the fan-out */
    sluice_group *g;
    if (sluice_group_create(&gc, &g, errbuf, sizeof errbuf))
        die(errbuf);
    for (size_t i = 0; i < n; i++)
        sluice_group_run(g, fetch_one, &jobs[i]); /* waits for a slot at the limit */

    sluice_group_result res;
    sluice_err err = sluice_group_wait(g, &res);
    if (err)
        log_error("fetch: %s (rc %d%s%s)", sluice_strerror(err), res.first_rc,
                  res.panicked ? ", panic: " : "", res.message);
    sluice_group_destroy(g);

    assert_int_equal(err, SLUICE_EIO);
    assert_int_equal(res.first_rc, SLUICE_EIO);
    sluice_ctx_release(req_ctx);
    sluice_pool_drain(pool, 0, NULL);
    sluice_pool_destroy(pool);
}

/* ---- breaker ------------------------------------------------------------------- */

static _Atomic int transitions;

static void log_breaker(sluice_breaker *b, sluice_breaker_state from, sluice_breaker_state to, void *user)
{
    (void)b;
    (void)from;
    (void)to;
    (void)user;
    atomic_fetch_add(&transitions, 1);
}

static int payments_rc;

static int call_payments(void)
{
    return payments_rc;
}

static bool is_client_error(int rc)
{
    return rc == 400;
}

static int serve_fallback(void)
{
    return 1;
}

static int pay(sluice_breaker *br)
{
    uint64_t ticket;
    if (sluice_breaker_allow(br, &ticket) == SLUICE_EOPEN)
        return serve_fallback();
    int rc = call_payments();
    sluice_breaker_record(br, ticket,
                          rc == 0               ? SLUICE_BREAKER_SUCCESS
                          : is_client_error(rc) ? SLUICE_BREAKER_IGNORED
                                                : SLUICE_BREAKER_FAILURE);
    return 0;
}

static void test_breaker_example(void **state)
{
    (void)state;
    sluice_breaker_config cfg;
    sluice_breaker_config_init(&cfg);
    cfg.name = "payments";
    cfg.open_duration_ns = 30 * SLUICE_NS_PER_SEC;
    cfg.on_state_change = log_breaker; /* (breaker, from, to, user) */
    sluice_breaker *br;
    if (sluice_breaker_create(&cfg, &br, errbuf, sizeof errbuf))
        die(errbuf);

    payments_rc = 400; /* client errors never trip it */
    for (int i = 0; i < 10; i++) {
        assert_int_equal(pay(br), 0);
    }
    payments_rc = 500;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(pay(br), 0);
    }
    assert_int_equal(pay(br), 1); /* open: the fallback */
    assert_int_equal(atomic_load(&transitions), 1);
    sluice_breaker_destroy(br);
}

/* ---- limiters ------------------------------------------------------------------ */

static int reply_429(void)
{
    return 429;
}

static int handle(void *req)
{
    (void)req;
    return 0;
}

static int serve(sluice_limiter *lim, sluice_keyed_limiter *per_tenant, const char *tenant_id,
                 sluice_pool *pool, sluice_ctx *req_ctx, void *req, uint64_t max_delay)
{
    /* Shed at the door ... */
    if (!sluice_limiter_allow(lim))
        return reply_429();
    /* ... or pace a producer, giving up with the request. */
    if (sluice_limiter_wait(lim, 1, req_ctx) == SLUICE_OK)
        sluice_pool_submit(pool, handle, req);
    /* ... or reserve and schedule yourself. */
    sluice_reservation r;
    if (sluice_limiter_reserve(lim, 10, &r) == SLUICE_OK && r.delay_ns > max_delay)
        sluice_limiter_cancel(lim, &r); /* give the tokens back */

    if (!sluice_keyed_limiter_allow(per_tenant, tenant_id, 1))
        return reply_429();
    return 0;
}

static void test_limiter_example(void **state)
{
    (void)state;
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "paced";
    pc.workers = 1;
    pc.queue_capacity = 16;
    sluice_pool *pool;
    assert_int_equal(sluice_pool_create(&pc, &pool, NULL, 0), SLUICE_OK);

    sluice_limiter_config cfg;
    sluice_limiter_config_init(&cfg);
    cfg.name = "ingest";
    cfg.rate = 200; /* tokens per second */
    cfg.burst = 50;
    sluice_limiter *lim;
    if (sluice_limiter_create(&cfg, &lim, errbuf, sizeof errbuf))
        die(errbuf);

    /* Per tenant, with at most 10 000 tenants remembered. */
    sluice_keyed_limiter_config kc;
    sluice_keyed_limiter_config_init(&kc);
    kc.rate = 10;
    kc.burst = 20;
    kc.max_keys = 10000;
    sluice_keyed_limiter *per_tenant;
    sluice_keyed_limiter_create(&kc, &per_tenant, errbuf, sizeof errbuf);

    assert_int_equal(serve(lim, per_tenant, "acme", pool, NULL, NULL, SLUICE_NS_PER_SEC), 0);

    /* Metrics for all of it. */
    sluice_metrics *reg;
    sluice_metrics_create(NULL, &reg);
    sluice_sync_metrics *sm;
    sluice_sync_metrics_create(reg, &sm); /* one collector on the registry */
    sluice_sync_metrics_add_limiter(sm, lim);
    sluice_sync_metrics_add_keyed_limiter(sm, per_tenant);
    char *text;
    size_t len;
    assert_int_equal(sluice_metrics_render(reg, SLUICE_EXPO_PROMETHEUS, &text, &len), SLUICE_OK);
    assert_non_null(strstr(text, "sluice_limiter_allowed_total{name=\"ingest\"} 3"));
    free(text);
    sluice_sync_metrics_remove_limiter(sm, lim);
    sluice_sync_metrics_remove_keyed_limiter(sm, per_tenant);
    sluice_sync_metrics_destroy(sm);
    sluice_metrics_destroy(reg);

    sluice_keyed_limiter_destroy(per_tenant);
    sluice_limiter_destroy(lim);
    sluice_pool_drain(pool, 0, NULL);
    sluice_pool_destroy(pool);
}

/* ---- retries ------------------------------------------------------------------- */

typedef struct payment_req {
    int responses[4]; /* what the gateway answers, attempt by attempt */
    int attempt;
} payment_req;

static int charge_card(void *arg)
{
    payment_req *p = arg;
    return p->responses[p->attempt++]; /* 0 = charged; an HTTP status otherwise */
}

static bool gateway_retryable(int rc, void *user)
{
    (void)user;
    return rc >= 500; /* 5xx and timeouts; never a 4xx */
}

static const char *last_unavailable;

static void reply_unavailable(const char *why)
{
    last_unavailable = why;
}

static _Atomic int payments_done;

static void payment_done(const sluice_retry_result *res, void *arg)
{
    (void)arg;
    if (res->err == SLUICE_OK) {
        atomic_fetch_add(&payments_done, 1);
    }
}

static void test_retry_example(void **state)
{
    (void)state;
    sluice_ctx *req_ctx;
    sluice_ctx_with_timeout(&req_ctx, NULL, 25 * SLUICE_NS_PER_SEC, NULL);
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "payments";
    pc.workers = 2;
    pc.queue_capacity = 16;
    sluice_pool *payments_pool;
    assert_int_equal(sluice_pool_create(&pc, &payments_pool, NULL, 0), SLUICE_OK);

    /* One budget for everything that calls the gateway: retries may add 10%
     * to its load, plus 10 retries/s so a quiet service can still retry. */
    sluice_retry_budget_config bc;
    sluice_retry_budget_config_init(&bc); /* ratio 0.1, 10/s, 10 s window */
    bc.name = "payments";
    sluice_retry_budget *budget;
    if (sluice_retry_budget_create(&bc, &budget, errbuf, sizeof errbuf))
        die(errbuf);

    sluice_retry_config rc;
    sluice_retry_config_init(&rc);
    rc.name = "payment-gateway";
    rc.max_attempts = 2;                         /* "1 retry" */
    rc.backoff.base_ns = 200 * SLUICE_NS_PER_MS; /* full jitter in [0, 200 ms) */
    rc.call_timeout_ns = 10 * SLUICE_NS_PER_SEC; /* both attempts within 10 s */
    rc.retryable = gateway_retryable;            /* 5xx and timeouts; never a 4xx */
    rc.budget = budget;
    sluice_retry *gateway;
    if (sluice_retry_create(&rc, &gateway, errbuf, sizeof errbuf))
        die(errbuf);

    /* In the handler, under the request's 25 s context: */
    payment_req payment = {{503, 0}, 0}; /* a 503, then charged */
    sluice_retry_result res;
    if (sluice_retry_call(gateway, req_ctx, charge_card, &payment, &res) != SLUICE_OK)
        reply_unavailable(sluice_retry_outcome_name(res.outcome)); /* "budget", "deadline", ... */
    assert_int_equal(res.attempts, 2);
    assert_null(last_unavailable);
    payment_req declined = {{402, 0}, 0};
    if (sluice_retry_call(gateway, req_ctx, charge_card, &declined, &res) != SLUICE_OK)
        reply_unavailable(sluice_retry_outcome_name(res.outcome));
    assert_string_equal(last_unavailable, "not_retryable");

    rc.pool = payments_pool; /* attempts run here */
    sluice_retry *async_gw;
    sluice_retry_create(&rc, &async_gw, errbuf, sizeof errbuf);
    /* done(res, arg) runs exactly once per accepted call, with the final result. */
    payment = (payment_req){{503, 0}, 0};
    sluice_retry_submit(async_gw, req_ctx, charge_card, &payment, payment_done);

    sluice_retry_destroy(async_gw); /* waits for the attempt in flight */
    sluice_pool_drain(payments_pool, 0, NULL);
    sluice_pool_destroy(payments_pool);
    /* The retry was either made (charged) or still waiting at destroy (refused). */
    assert_true(atomic_load(&payments_done) <= 1);
    sluice_retry_destroy(gateway);
    sluice_retry_budget_destroy(budget);
    sluice_ctx_release(req_ctx);
}

/* ---- keyed serial executor ----------------------------------------------------- */

typedef struct ledger_entry {
    uint64_t account_id;
    long amount;
} ledger_entry;

static long balances[4];
static long last_seen[4];
static _Atomic int persisted;

static int apply_entry(void *arg)
{
    ledger_entry *e = arg;
    balances[e->account_id] += e->amount; /* one task per account at a time: no lock */
    last_seen[e->account_id] = e->amount;
    return 0;
}

static void persist_entry(const sluice_keyed_abandoned *task, void *user)
{
    (void)task;
    (void)user;
    atomic_fetch_add(&persisted, 1);
}

static void test_keyed_example(void **state)
{
    (void)state;
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "consumers";
    pc.workers = 4;
    pc.queue_capacity = 64;
    sluice_pool *pool;
    assert_int_equal(sluice_pool_create(&pc, &pool, NULL, 0), SLUICE_OK);

    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.name = "ledger";
    kc.pool = pool;         /* shared with other work */
    kc.max_active_keys = 8; /* at most 8 accounts at once */
    kc.key_backlog = 1000;  /* per account */
    kc.total_backlog = 100000;
    kc.abandon_handler = persist_entry; /* handed back key by key, in order */
    sluice_keyed *ledger;
    if (sluice_keyed_create(&kc, &ledger, errbuf, sizeof errbuf))
        die(errbuf);

    static ledger_entry entries[400];
    for (int i = 0; i < 400; i++) {
        ledger_entry *entry = &entries[i];
        entry->account_id = (uint64_t)(i % 4);
        entry->amount = i;
        /* Per message: entries of one account apply in the order submitted. */
        sluice_keyed_submit(ledger, entry->account_id, apply_entry, entry);
    }

    /* At shutdown: what did not apply within 5 s comes back, per account in
     * order, so it can be persisted and replayed without reordering. */
    sluice_keyed_drain(ledger, 5 * SLUICE_NS_PER_SEC, NULL);
    sluice_keyed_destroy(ledger);
    long total = 0;
    for (int a = 0; a < 4; a++) {
        total += balances[a];
        assert_int_equal(last_seen[a], 396 + a); /* each account's last entry applied last */
    }
    assert_int_equal(total, 399 * 400 / 2);
    assert_int_equal(atomic_load(&persisted), 0);
    sluice_pool_destroy(pool);
}

/* ---- batcher -------------------------------------------------------------------- */

static _Atomic int inserted, spooled;

static int insert_events(void **events, size_t n, void *user)
{
    (void)events;
    (void)user;
    atomic_fetch_add(&inserted, (int)n); /* one INSERT of n rows */
    return 0;
}

static void spool_events(void **events, size_t n, int rc, sluice_batch_failure why, void *user)
{
    (void)events;
    (void)rc;
    (void)why;
    (void)user;
    atomic_fetch_add(&spooled, (int)n);
}

static void test_batcher_example(void **state)
{
    (void)state;
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "ingest";
    pc.workers = 4;
    pc.queue_capacity = 64;
    sluice_pool *pool;
    assert_int_equal(sluice_pool_create(&pc, &pool, NULL, 0), SLUICE_OK);

    sluice_batcher_config bc;
    sluice_batcher_config_init(&bc);
    bc.name = "clickhouse";
    bc.pool = pool;
    bc.max_items = 100;                       /* 100 events per INSERT */
    bc.max_delay_ns = 200 * SLUICE_NS_PER_MS; /* or 200 ms after the first */
    bc.max_in_flight = 4;                     /* at most 4 INSERTs out */
    bc.batch_fn = insert_events;              /* int (void **events, size_t n, void *user) */
    bc.failure_fn = spool_events;             /* gets a failed batch whole */
    sluice_batcher *ch;
    if (sluice_batcher_create(&bc, &ch, errbuf, sizeof errbuf))
        die(errbuf);

    static int evs[1050];
    for (int i = 0; i < 1050; i++) {
        void *event = &evs[i];
        sluice_batcher_add(ch, event); /* per event, from any thread */
    }
    sluice_batcher_destroy(ch); /* flushes the partial batch first */
    assert_int_equal(atomic_load(&inserted) + atomic_load(&spooled), 1050);
    assert_int_equal(atomic_load(&spooled), 0);
    sluice_pool_destroy(pool);
}

/* ---- adaptive concurrency limiter ------------------------------------------------ */

#define BUSY 2

typedef struct billing_req {
    int answer; /* what the stub downstream returns */
} billing_req;

static int call_billing(const billing_req *req)
{
    return req->answer;
}

static int billing_handler(sluice_adaptive *billing, sluice_ctx *req_ctx, uint64_t deadline_ns,
                           const billing_req *req)
{
    /* Around each call to the downstream: */
    sluice_adaptive_token tok;
    sluice_err err = sluice_adaptive_acquire_until(billing, req_ctx, deadline_ns, &tok);
    if (err) /* ETIMEDOUT, ECANCELED, ECLOSED */
        return reply_503(err);
    int rc = call_billing(req);
    sluice_adaptive_release(billing, &tok,
                            rc == 0      ? SLUICE_ADAPTIVE_SUCCESS  /* an RTT sample */
                            : rc == BUSY ? SLUICE_ADAPTIVE_DROPPED  /* overload: back off */
                                         : SLUICE_ADAPTIVE_IGNORE); /* says nothing about load */
    return rc;
}

static void test_adaptive_example(void **state)
{
    (void)state;
    sluice_adaptive_config cfg;
    sluice_adaptive_config_init(&cfg);
    cfg.name = "billing";
    cfg.mode = SLUICE_ADAPTIVE_GRADIENT2;
    cfg.min_limit = 2;
    cfg.max_limit = 200;
    sluice_adaptive *billing;
    if (sluice_adaptive_create(&cfg, &billing, errbuf, sizeof errbuf))
        die(errbuf);

    billing_req ok = {0}, busy = {BUSY}, bad = {1};
    assert_int_equal(billing_handler(billing, NULL, 0, &ok), 0);
    assert_int_equal(billing_handler(billing, NULL, 0, &bad), 1);
    assert_int_equal(sluice_adaptive_limit_get(billing), 20);
    assert_int_equal(billing_handler(billing, NULL, 0, &busy), BUSY);
    assert_int_equal(sluice_adaptive_limit_get(billing), 18); /* 20 * 0.9 */
    sluice_adaptive_stats st;
    sluice_adaptive_stats_get(billing, &st);
    assert_int_equal(st.successes, 1);
    assert_int_equal(st.ignored, 1);
    assert_int_equal(st.drops, 1);
    sluice_adaptive_close(billing);
    assert_int_equal(billing_handler(billing, NULL, 0, &ok), SLUICE_ECLOSED);
    sluice_adaptive_destroy(billing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctx_example),      cmocka_unit_test(test_sem_example),
        cmocka_unit_test(test_group_example),    cmocka_unit_test(test_breaker_example),
        cmocka_unit_test(test_limiter_example),  cmocka_unit_test(test_retry_example),
        cmocka_unit_test(test_keyed_example),    cmocka_unit_test(test_batcher_example),
        cmocka_unit_test(test_adaptive_example),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

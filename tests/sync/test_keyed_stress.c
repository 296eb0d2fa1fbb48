/*
 * tests/sync/test_keyed_stress.c - the keyed executor under load: 8
 * producers submit to 1,000 keys (100k tasks at SLUICE_STRESS_SCALE=1,
 * a fifth of that under a sanitizer), each task checking that no other
 * task of its key is running and that, per (key, producer), it starts
 * after every task that producer submitted to that key before it. Then
 * the same through DROP_OLDEST with small bounds, checking that every
 * task ran or was handed back exactly once. Run it under TSan/ASan.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/keyed.h"
#include "common/wait.h"

#define PRODUCERS 8
#define KEYS 1000

typedef struct stask {
    uint32_t key;
    uint32_t producer;
    uint32_t seq;     /* per (key, producer), from 1 */
    _Atomic int fate; /* 0 none, 1 ran, 2 handed back */
} stask;

static _Atomic int busy[KEYS];
/* Written only by the task holding the key: the executor orders them. */
static uint32_t last_seq[KEYS][PRODUCERS];
static _Atomic uint64_t violations, ran, twice;

static int stress_fn(void *arg)
{
    stask *t = arg;
    if (atomic_exchange_explicit(&busy[t->key], 1, memory_order_acquire) != 0) {
        atomic_fetch_add(&violations, 1); /* two tasks of one key at once */
    }
    if (t->seq <= last_seq[t->key][t->producer]) {
        atomic_fetch_add(&violations, 1); /* out of submission order */
    }
    last_seq[t->key][t->producer] = t->seq;
    atomic_store_explicit(&busy[t->key], 0, memory_order_release);
    int expected = 0;
    if (!atomic_compare_exchange_strong(&t->fate, &expected, 1)) {
        atomic_fetch_add(&twice, 1);
    }
    atomic_fetch_add_explicit(&ran, 1, memory_order_relaxed);
    return 0;
}

static _Atomic uint64_t handed_back;

static void stress_abandon(const sluice_keyed_abandoned *a, void *user)
{
    (void)user;
    stask *t = a->arg;
    assert_int_equal(a->key, t->key);
    int expected = 0;
    if (!atomic_compare_exchange_strong(&t->fate, &expected, 2)) {
        atomic_fetch_add(&twice, 1);
    }
    atomic_fetch_add(&handed_back, 1);
}

typedef struct producer {
    sluice_keyed *ex;
    stask *tasks;
    size_t n;
    uint64_t refused;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    for (size_t i = 0; i < p->n; i++) {
        stask *t = &p->tasks[i];
        sluice_err err = sluice_keyed_submit(p->ex, t->key, stress_fn, t);
        if (err != SLUICE_OK) {
            p->refused++;
            atomic_store(&t->fate, 3); /* refused: the caller kept it */
        }
    }
    return NULL;
}

static size_t total_tasks(void)
{
    size_t n = 100000;
#ifdef SLUICE_SANITIZER
    n /= 5;
#endif
    return n * (size_t)stress_scale();
}

static stask *make_tasks(size_t total)
{
    stask *all = calloc(total, sizeof *all);
    assert_non_null(all);
    static uint32_t next_seq[KEYS][PRODUCERS];
    memset(next_seq, 0, sizeof next_seq);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    size_t per = total / PRODUCERS;
    for (size_t p = 0; p < PRODUCERS; p++) {
        for (size_t i = 0; i < per; i++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            stask *t = &all[p * per + i];
            t->key = (uint32_t)(rng % KEYS);
            t->producer = (uint32_t)p;
            t->seq = ++next_seq[t->key][p];
        }
    }
    return all;
}

static void run(sluice_keyed_config *kc, size_t total, stask *all, producer *prods)
{
    sluice_keyed *ex;
    char err[200];
    assert_int_equal(sluice_keyed_create(kc, &ex, err, sizeof err), SLUICE_OK);
    pthread_t th[PRODUCERS];
    size_t per = total / PRODUCERS;
    for (size_t p = 0; p < PRODUCERS; p++) {
        prods[p] = (producer){.ex = ex, .tasks = &all[p * per], .n = per};
        pthread_create(&th[p], NULL, produce, &prods[p]);
    }
    for (size_t p = 0; p < PRODUCERS; p++) {
        pthread_join(th[p], NULL);
    }
    assert_int_equal(sluice_keyed_drain(ex, 0, NULL), SLUICE_OK);
    sluice_keyed_stats st;
    sluice_keyed_stats_get(ex, &st);
    assert_int_equal(st.submitted, st.completed + st.failed + st.panicked + st.dropped + st.abandoned);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.keys, 0);
    assert_int_equal(st.active_keys, 0);
    assert_true(st.keys_hwm <= KEYS);
    sluice_keyed_destroy(ex);
}

static sluice_pool *make_pool(void)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "keyed_stress";
    pc.workers = 4;
    pc.queue_capacity = 1024;
    sluice_pool *pool;
    assert_int_equal(sluice_pool_create(&pc, &pool, NULL, 0), SLUICE_OK);
    return pool;
}

static void test_order_under_load(void **state)
{
    (void)state;
    size_t total = total_tasks() / PRODUCERS * PRODUCERS;
    stask *all = make_tasks(total);
    memset(last_seq, 0, sizeof last_seq);
    atomic_store(&violations, 0);
    atomic_store(&ran, 0);
    atomic_store(&twice, 0);
    sluice_pool *pool = make_pool();
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.name = "stress";
    kc.pool = pool;
    kc.key_backlog = 64;
    kc.total_backlog = 4096; /* producers block: the bounds are exercised */
    producer prods[PRODUCERS];
    run(&kc, total, all, prods);
    for (size_t p = 0; p < PRODUCERS; p++) {
        assert_int_equal(prods[p].refused, 0);
    }
    assert_int_equal(atomic_load(&violations), 0);
    assert_int_equal(atomic_load(&twice), 0);
    assert_int_equal(atomic_load(&ran), total);
    for (size_t i = 0; i < total; i++) {
        assert_int_equal(atomic_load(&all[i].fate), 1);
    }
    sluice_pool_destroy(pool);
    free(all);
}

static void test_drop_oldest_under_load(void **state)
{
    (void)state;
    size_t total = total_tasks() / 4 / PRODUCERS * PRODUCERS;
    stask *all = make_tasks(total);
    memset(last_seq, 0, sizeof last_seq);
    atomic_store(&violations, 0);
    atomic_store(&ran, 0);
    atomic_store(&twice, 0);
    atomic_store(&handed_back, 0);
    sluice_pool *pool = make_pool();
    sluice_keyed_config kc;
    sluice_keyed_config_init(&kc);
    kc.name = "stress_drop";
    kc.pool = pool;
    kc.max_active_keys = 2;
    kc.key_backlog = 4;
    kc.total_backlog = 64;
    kc.overflow = SLUICE_OVERFLOW_DROP_OLDEST;
    kc.abandon_handler = stress_abandon;
    producer prods[PRODUCERS];
    run(&kc, total, all, prods);
    assert_int_equal(atomic_load(&violations), 0);
    assert_int_equal(atomic_load(&twice), 0);
    /* Every task ran or came back, once (none refused under DROP_OLDEST). */
    assert_int_equal(atomic_load(&ran) + atomic_load(&handed_back), total);
    for (size_t i = 0; i < total; i++) {
        int f = atomic_load(&all[i].fate);
        assert_true(f == 1 || f == 2);
    }
    sluice_pool_destroy(pool);
    free(all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_under_load),
        cmocka_unit_test(test_drop_oldest_under_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

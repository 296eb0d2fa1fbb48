/*
 * tests/core/test_idle_worker.c - the small idle worker (issue 19, third
 * part): what moved out of the worker slot still works, and what stayed
 * in it reads consistently from other threads.
 *
 *   1. A worker's first SLUICE__HIST_OWN_AFTER timed tasks are recorded in
 *      the caller shard's histogram pair; the next one takes the worker's
 *      own pair (from the pool's slabs), and the histograms' totals count
 *      every timed task exactly once, before and after.
 *   2. The running task's frame and the loop's jump point live on the
 *      worker's stack (sluice__run): panics one after another on one
 *      worker each report their own message, backtrace, label and worker
 *      index, run their cleanup handlers, and leave the next task a clean
 *      frame (no panic message, the worker's init state and index).
 *   3. A fault recovered by the guard (RECOVER) lands on the same jump
 *      point: it is reported with its signal and a backtrace, and the
 *      worker is replaced.
 *   4. The slot readers (stats, workers, histograms) run against busy
 *      workers: every figure they report only grows, and at quiescence they
 *      add up exactly (run under TSan, this is the slot's race check).
 *
 * Waits are for the state that is asserted: a worker's status (stored
 * with release after its counters and histograms) is what tests wait on,
 * never a counter that is written before the histogram it is read with.
 */
#include <signal.h>

#include "common/fault.h"
#include "common/pool.h"
#include "core/internal.h"

/* Tasks run by the worker in slot 0 (K = 1): its status count. */
static uint64_t slot0_tasks_run(sluice_pool *p)
{
    sluice_worker_info info;
    if (sluice_pool_workers_get(p, &info, 1) != 1) {
        return 0;
    }
    return info.tasks_run;
}

static sluice__hist *slot0_pair(sluice_pool *p)
{
    pthread_mutex_lock(&p->mu);
    sluice__hist *pair = p->nslots ? atomic_load(&p->slots[0]->shard.hists) : NULL;
    pthread_mutex_unlock(&p->mu);
    return pair;
}

static uint64_t pair_count(sluice_pool *p, sluice__hist *pair, int which)
{
    return pair ? atomic_load(&sluice__hist_of(pair, p->nbounds, which)->count) : 0;
}

/* ---- 1. the histogram pair is taken after the shared phase ------------------ */

static void test_hist_pair_after_shared_phase(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "hist", 1, 256, t);
    cfg.timing_sample_every = 1; /* every task timed: exact counts */
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    sluice__hist *caller = atomic_load(&p->caller_shard.hists);
    assert_non_null(caller);

    for (unsigned i = 0; i < SLUICE__HIST_OWN_AFTER; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    WAIT_FOR(slot0_tasks_run(p) == SLUICE__HIST_OWN_AFTER, "%u tasks run", SLUICE__HIST_OWN_AFTER);
    /* All in the shared pair; the worker has none of its own yet. */
    assert_null(slot0_pair(p));
    assert_int_equal(pair_count(p, caller, 0), SLUICE__HIST_OWN_AFTER);
    assert_int_equal(pair_count(p, caller, 1), SLUICE__HIST_OWN_AFTER);
    sluice_histogram h;
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
    assert_int_equal(h.count, SLUICE__HIST_OWN_AFTER);
    sluice_pool_histogram_get(p, SLUICE_HIST_WAIT, &h);
    assert_int_equal(h.count, SLUICE__HIST_OWN_AFTER);

    /* The next timed task takes the worker's own pair and lands there. */
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    WAIT_FOR(slot0_tasks_run(p) == SLUICE__HIST_OWN_AFTER + 1, "one more task run");
    sluice__hist *own = slot0_pair(p);
    assert_non_null(own);
    assert_ptr_not_equal(own, caller);
    assert_true((uintptr_t)own % SLUICE__CACHELINE == 0);
    assert_int_equal(pair_count(p, own, 0), 1);
    assert_int_equal(pair_count(p, own, 1), 1);
    assert_int_equal(pair_count(p, caller, 0), SLUICE__HIST_OWN_AFTER);

    /* And keeps it: 100 more, all in the own pair; the totals are exact. */
    for (unsigned i = 0; i < 100; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    WAIT_FOR(slot0_tasks_run(p) == SLUICE__HIST_OWN_AFTER + 101, "100 more tasks run");
    assert_ptr_equal(slot0_pair(p), own);
    assert_int_equal(pair_count(p, own, 0), 101);
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
    assert_int_equal(h.count, SLUICE__HIST_OWN_AFTER + 101);
    uint64_t buckets = 0;
    for (size_t i = 0; i <= h.bucket_count; i++) {
        buckets += h.counts[i];
    }
    assert_int_equal(buckets, SLUICE__HIST_OWN_AFTER + 101);
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* With timing off no worker ever takes a pair, however many tasks it runs. */
static void test_no_pair_with_timing_off(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "hist-off", 1, 256, t);
    cfg.timing_disabled = true;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    for (unsigned i = 0; i < 3 * SLUICE__HIST_OWN_AFTER; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    WAIT_FOR(slot0_tasks_run(p) == 3 * SLUICE__HIST_OWN_AFTER, "tasks run");
    assert_null(slot0_pair(p));
    sluice_histogram h;
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
    assert_int_equal(h.count, 0);
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* ---- 2. panics, one after another, on one worker ---------------------------- */

#define NPANICS 20

static _Atomic unsigned cleanups_run;
static _Atomic unsigned clean_frames; /* normal tasks that saw a clean frame */
static _Atomic unsigned bad_frames;

static void count_cleanup(void *arg)
{
    (void)arg;
    /* Runs because of the panic: the message is visible here. */
    if (sluice_task_panic_message() == NULL) {
        atomic_fetch_add(&bad_frames, 1);
    }
    atomic_fetch_add(&cleanups_run, 1);
}

static int panic_nth(void *arg)
{
    unsigned n = (unsigned)(uintptr_t)arg;
    sluice_cleanup_push(count_cleanup, NULL);
    sluice_cleanup_push(count_cleanup, NULL);
    sluice_panic("panic number %u", n);
}

static int check_frame(void *arg)
{
    sluice_pool *p = arg;
    unsigned *box = sluice_worker_state();
    bool ok = sluice_task_panic_message() == NULL && sluice_task_pool() == p && sluice_worker_index() == 0 &&
              box != NULL && *box == 0;
    /* The frame starts with no cleanup handler: all SLUICE_CLEANUP_MAX
     * places are free, and no more. */
    for (int i = 0; i < SLUICE_CLEANUP_MAX; i++) {
        ok = ok && sluice_cleanup_push(count_cleanup, NULL) == SLUICE_OK;
    }
    ok = ok && sluice_cleanup_push(count_cleanup, NULL) == SLUICE_EOVERFLOW;
    for (int i = 0; i < SLUICE_CLEANUP_MAX; i++) {
        sluice_cleanup_pop(false);
    }
    atomic_fetch_add(ok ? &clean_frames : &bad_frames, 1);
    return 0;
}

static void test_panics_in_a_row(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "panics", 1, 256, t);
    with_hooks(&cfg);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    atomic_store(&cleanups_run, 0);
    atomic_store(&clean_frames, 0);
    atomic_store(&bad_frames, 0);
    char labels[NPANICS][16];
    for (unsigned i = 0; i < NPANICS; i++) {
        snprintf(labels[i], sizeof labels[i], "p%u", i);
        sluice_submit_opts o = {.label = labels[i]};
        assert_int_equal(sluice_pool_submit_ex(p, panic_nth, (void *)(uintptr_t)i, &o), SLUICE_OK);
        assert_int_equal(sluice_pool_submit(p, check_frame, p), SLUICE_OK);
    }
    WAIT_FOR(slot0_tasks_run(p) == 2 * NPANICS, "all tasks run");
    assert_int_equal(atomic_load(&t->panics), NPANICS);
    assert_int_equal(atomic_load(&clean_frames), NPANICS);
    assert_int_equal(atomic_load(&bad_frames), 0);
    /* Two per panic; the normal tasks pop theirs without running them. */
    assert_int_equal(atomic_load(&cleanups_run), 2 * NPANICS);
    pthread_mutex_lock(&t->mu);
    assert_int_equal(t->nrecords, NPANICS);
    for (unsigned i = 0; i < NPANICS; i++) {
        const panic_record *r = &t->records[i];
        char want[64];
        snprintf(want, sizeof want, "panic number %u", i);
        assert_string_equal(r->message, want);
        assert_string_equal(r->label, labels[i]);
        assert_string_equal(r->pool_name, "panics");
        assert_int_equal(r->worker_index, 0);
        assert_int_equal(r->signal, 0);
        assert_false(r->caller_thread);
        assert_true(r->frames_nonnull);
        assert_true(r->frame_count > 1 && r->frame_count <= SLUICE_BACKTRACE_MAX);
    }
    pthread_mutex_unlock(&t->mu);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.panicked, NPANICS);
    assert_int_equal(s.completed, NPANICS);
    assert_int_equal(s.started_workers, 1); /* a panic does not cost the worker */
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&t->finis), 1);
    assert_int_equal(atomic_load(&t->violations), 0);
    tally_free(t);
}

/* ---- 3. a fault recovered by the guard -------------------------------------- */

static int task_segv_with_cleanup(void *arg)
{
    (void)arg;
    sluice_cleanup_push(count_cleanup, NULL);
    return deref_null() + 1;
}

static void test_recovered_fault(void **state)
{
    (void)state;
    if (under_sanitizer()) {
        skip(); /* the sanitizers own SIGSEGV */
    }
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "fault", 1, 16, t);
    with_hooks(&cfg);
    cfg.fault_mode = SLUICE_FAULT_RECOVER;
    cfg.prewarm = true;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    atomic_store(&cleanups_run, 0);
    atomic_store(&bad_frames, 0);
    atomic_store(&clean_frames, 0);
    sluice_submit_opts o = {.label = "segv"};
    assert_int_equal(sluice_pool_submit_ex(p, task_segv_with_cleanup, NULL, &o), SLUICE_OK);
    WAIT_FOR(atomic_load(&t->exits_by[EXIT_FAULT]) == 1, "the faulting worker retired");
    WAIT_FOR(atomic_load(&t->inits) == 2, "a replacement started");
    assert_int_equal(sluice_pool_submit(p, check_frame, p), SLUICE_OK);
    WAIT_FOR(atomic_load(&clean_frames) + atomic_load(&bad_frames) == 1, "the next task ran");
    assert_int_equal(atomic_load(&clean_frames), 1);
    assert_int_equal(atomic_load(&cleanups_run), 1);
    pthread_mutex_lock(&t->mu);
    assert_int_equal(t->nrecords, 1);
    assert_int_equal(t->records[0].signal, SIGSEGV);
    assert_string_equal(t->records[0].label, "segv");
    assert_int_equal(t->records[0].worker_index, 0);
    assert_true(t->records[0].frame_count > 1);
    pthread_mutex_unlock(&t->mu);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* ---- 4. slot readers against busy workers ----------------------------------- */

typedef struct reader_arg {
    sluice_pool *pool;
    atomic_bool stop;
    _Atomic uint64_t rounds;
    _Atomic uint64_t violations;
} reader_arg;

static int task_labelled(void *arg)
{
    (void)arg;
    return 0;
}

static int task_failing(void *arg)
{
    (void)arg;
    return 1;
}

#define READER_K 4

static uint64_t tasks_run_sum(sluice_pool *p)
{
    sluice_worker_info info[READER_K];
    size_t k = sluice_pool_workers_get(p, info, READER_K);
    uint64_t sum = 0;
    for (size_t i = 0; i < k; i++) {
        sum += info[i].tasks_run;
    }
    return sum;
}

static void *slot_reader(void *arg)
{
    reader_arg *ra = arg;
    uint64_t last_run[READER_K] = {0};
    uint64_t last_hist = 0, last_done = 0;
    while (!atomic_load(&ra->stop)) {
        sluice_worker_info info[READER_K + 1];
        size_t n = sluice_pool_workers_get(ra->pool, info, READER_K + 1);
        if (n > READER_K) {
            atomic_fetch_add(&ra->violations, 1);
            n = READER_K;
        }
        for (size_t i = 0; i < n; i++) {
            unsigned idx = info[i].index;
            if (idx >= READER_K || info[i].state > SLUICE_WORKER_EXITING ||
                info[i].tasks_run < last_run[idx]) {
                atomic_fetch_add(&ra->violations, 1);
                continue;
            }
            if (info[i].task_label && strcmp(info[i].task_label, "L") != 0) {
                atomic_fetch_add(&ra->violations, 1);
            }
            last_run[idx] = info[i].tasks_run;
        }
        sluice_pool_stats s;
        sluice_pool_stats_get(ra->pool, &s);
        uint64_t done = s.completed + s.failed + s.panicked + s.shed;
        sluice_histogram h;
        sluice_pool_histogram_get(ra->pool, SLUICE_HIST_TASK, &h);
        if (done < last_done || h.count < last_hist || s.running > READER_K) {
            atomic_fetch_add(&ra->violations, 1);
        }
        last_done = done;
        last_hist = h.count;
        atomic_fetch_add(&ra->rounds, 1);
    }
    return NULL;
}

static void test_slot_readers_consistent(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "readers", READER_K, 1024, t);
    cfg.timing_sample_every = 1;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    reader_arg *ra = calloc(1, sizeof *ra);
    assert_non_null(ra);
    ra->pool = p;
    pthread_t th;
    START_THREAD(&th, slot_reader, ra);
    const unsigned n = 4000 * stress_scale();
    sluice_submit_opts o = {.label = "L"};
    for (unsigned i = 0; i < n; i++) {
        sluice_err rc = i % 7 == 0   ? sluice_pool_submit(p, task_failing, NULL)
                        : i % 2 == 0 ? sluice_pool_submit_ex(p, task_labelled, NULL, &o)
                                     : sluice_pool_submit(p, task_count, t);
        assert_int_equal(rc, SLUICE_OK);
    }
    /* The status counts are stored after each task's counters and
     * histogram samples (release), so once they add up to n every sample
     * is visible. */
    WAIT_FOR(tasks_run_sum(p) == n, "%u tasks run", n);
    WAIT_FOR(atomic_load(&ra->rounds) > 10, "the reader went round");
    atomic_store(&ra->stop, true);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&ra->violations), 0);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.completed + s.failed, n);
    assert_int_equal(s.failed, (n + 6) / 7);
    sluice_histogram h;
    sluice_pool_histogram_get(p, SLUICE_HIST_TASK, &h);
    assert_int_equal(h.count, n);
    sluice_pool_histogram_get(p, SLUICE_HIST_WAIT, &h);
    assert_int_equal(h.count, n);
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    free(ra);
    tally_free(t);
}

/* ---- the slot's shape ---------------------------------------------------------- */

/* Slots are cache-line aligned and two lines apart, so two workers' hot
 * lines never share one (internal.h, sluice__worker). */
static void test_slots_are_line_aligned(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "slots", 300, 16, t);
    cfg.prewarm = true; /* more slots than one slab holds */
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    pthread_mutex_lock(&p->mu);
    assert_int_equal(p->nslots, 300);
    for (unsigned i = 0; i < p->nslots; i++) {
        assert_true((uintptr_t)p->slots[i] % SLUICE__CACHELINE == 0);
        assert_int_equal(p->slots[i]->index, i);
        assert_ptr_equal(p->slots[i]->pool, p);
        for (unsigned j = 0; j < i && j < 8; j++) {
            uintptr_t a = (uintptr_t)p->slots[i], b = (uintptr_t)p->slots[j];
            assert_true(a > b ? a - b >= sizeof(sluice__worker) : b - a >= sizeof(sluice__worker));
        }
    }
    pthread_mutex_unlock(&p->mu);
    ASSERT_IDENTITY(p);
    sluice_pool_destroy(p);
    tally_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_pair_after_shared_phase),
        cmocka_unit_test(test_no_pair_with_timing_off),
        cmocka_unit_test(test_panics_in_a_row),
        cmocka_unit_test(test_recovered_fault),
        cmocka_unit_test(test_slot_readers_consistent),
        cmocka_unit_test(test_slots_are_line_aligned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * tests/core/test_task.c - what a task sees and how it can end: per-task
 * deadlines and contexts (shed while queued, should_stop while running),
 * the task accessors, sluice_panic with cleanup handlers, panics in every
 * worker, and the fault guard (RECOVER in-process; RERAISE in a forked
 * child that must die by SIGSEGV).
 */
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/pool.h"

static void hold_workers(sluice_pool *p, gate *g, unsigned k)
{
    for (unsigned i = 0; i < k; i++) {
        assert_int_equal(sluice_pool_submit(p, task_gate, g), SLUICE_OK);
    }
    WAIT_FOR(atomic_load(&g->inside) == (int)k, "%u workers at the gate", k);
    WAIT_FOR(stats_now(p).queue_depth == 0, "gate tasks taken");
}

/* ---- deadlines and contexts ------------------------------------------------ */

/* A task still queued when its deadline passes is shed, not run. */
static void test_deadline_shed(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 100 * SLUICE_NS_PER_SEC);
    sluice_pool_config cfg;
    base_config(&cfg, "shed", 1, 16, t);
    cfg.clock = &fc.clock;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 1);
    uint64_t now = sluice_clock_now(&fc.clock);
    sluice_submit_opts soon = {.deadline_ns = now + 1 * SLUICE_NS_PER_SEC, .label = "soon"};
    sluice_submit_opts later = {.deadline_ns = now + 10 * SLUICE_NS_PER_SEC, .label = "later"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_pool_submit_ex(p, task_count, t, &soon), SLUICE_OK);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sluice_pool_submit_ex(p, task_count, t, &later), SLUICE_OK);
    }
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK); /* no deadline */
    sluice_fake_clock_advance(&fc, 2 * SLUICE_NS_PER_SEC);             /* soon passed, later not */
    gate_open(g);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.shed, 3);
    assert_int_equal(s.completed, 1 + 2 + 1);
    assert_int_equal(atomic_load(&t->ran), 3);
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_SHED]), 3);
    assert_int_equal(atomic_load(&t->abandoned_total), 3);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* A task whose context is cancelled while queued is shed; one whose
 * context deadline passes too. */
static void test_ctx_cancelled_shed(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, SLUICE_NS_PER_SEC);
    sluice_pool_config cfg;
    base_config(&cfg, "ctxshed", 1, 16, t);
    cfg.clock = &fc.clock;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 1);
    sluice_ctx *a, *b, *c;
    assert_int_equal(sluice_ctx_create(&a, NULL, 0, &fc.clock), SLUICE_OK);
    assert_int_equal(sluice_ctx_create(&b, NULL, 5 * SLUICE_NS_PER_SEC, &fc.clock), SLUICE_OK);
    assert_int_equal(sluice_ctx_create(&c, NULL, 0, &fc.clock), SLUICE_OK);
    sluice_submit_opts oa = {.ctx = a}, ob = {.ctx = b}, oc = {.ctx = c};
    assert_int_equal(sluice_pool_submit_ex(p, task_count, t, &oa), SLUICE_OK);
    assert_int_equal(sluice_pool_submit_ex(p, task_count, t, &ob), SLUICE_OK);
    assert_int_equal(sluice_pool_submit_ex(p, task_count, t, &oc), SLUICE_OK);
    /* The pool holds its own references while queued. */
    sluice_ctx_cancel(a, SLUICE_ECANCELED);
    sluice_ctx_release(a);
    sluice_ctx_release(b);
    sluice_fake_clock_advance(&fc, 10 * SLUICE_NS_PER_SEC); /* b's deadline passes */
    gate_open(g);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.shed, 2);
    assert_int_equal(atomic_load(&t->ran), 1); /* only c */
    assert_int_equal(atomic_load(&t->abandoned_by[SLUICE_ABANDON_SHED]), 2);
    sluice_ctx_release(c);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

typedef struct seen {
    uint64_t deadline;
    sluice_ctx *ctx;
    bool stop_before;
    bool stop_after;
    sluice_fake_clock *fc;
    gate *g;
    _Atomic int entered;
    _Atomic int done;
} seen;

/* Records the accessors, waits until the test moves the clock past the
 * deadline, then records should_stop again. */
static int task_sees(void *arg)
{
    seen *s = arg;
    s->deadline = sluice_task_deadline();
    s->ctx = sluice_task_ctx();
    s->stop_before = sluice_task_should_stop();
    atomic_store(&s->entered, 1);
    gate_pass(s->g, false);
    s->stop_after = sluice_task_should_stop();
    atomic_store(&s->done, 1);
    return 0;
}

static void test_task_accessors_and_should_stop(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, SLUICE_NS_PER_SEC);
    sluice_pool_config cfg;
    base_config(&cfg, "sees", 1, 4, t);
    cfg.clock = &fc.clock;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);

    /* Deadline: earliest of the submit deadline and the ctx deadline. */
    sluice_ctx *ctx;
    assert_int_equal(sluice_ctx_create(&ctx, NULL, 3 * SLUICE_NS_PER_SEC, &fc.clock), SLUICE_OK);
    seen s1 = {.g = g, .fc = &fc};
    sluice_submit_opts o = {.deadline_ns = 5 * SLUICE_NS_PER_SEC, .ctx = ctx};
    assert_int_equal(sluice_pool_submit_ex(p, task_sees, &s1, &o), SLUICE_OK);
    WAIT_FOR(atomic_load(&s1.entered), "task 1 to start");
    sluice_fake_clock_advance(&fc, 3 * SLUICE_NS_PER_SEC); /* the ctx deadline passes while it runs */
    gate_open(g);
    WAIT_FOR(atomic_load(&s1.done), "task 1 to finish");
    assert_int_equal(s1.deadline, 3 * SLUICE_NS_PER_SEC);
    assert_ptr_equal(s1.ctx, ctx);
    assert_false(s1.stop_before);
    assert_true(s1.stop_after);
    ASSERT_IDENTITY(p);
    assert_int_equal(stats_now(p).completed, 1); /* it ran: it started in time */

    /* Cancelling the ctx of a running task turns should_stop on. */
    gate_close(g);
    sluice_ctx *ctx2;
    assert_int_equal(sluice_ctx_create(&ctx2, NULL, 0, &fc.clock), SLUICE_OK);
    seen s2 = {.g = g};
    sluice_submit_opts o2 = {.ctx = ctx2};
    assert_int_equal(sluice_pool_submit_ex(p, task_sees, &s2, &o2), SLUICE_OK);
    WAIT_FOR(atomic_load(&s2.entered), "task 2 to start");
    sluice_ctx_cancel(ctx2, SLUICE_ECANCELED);
    gate_open(g);
    WAIT_FOR(atomic_load(&s2.done), "task 2 to finish");
    assert_int_equal(s2.deadline, 0);
    assert_false(s2.stop_before);
    assert_true(s2.stop_after);

    /* No options: no deadline, no ctx, never asked to stop. */
    seen s3 = {.g = g};
    assert_int_equal(sluice_pool_submit(p, task_sees, &s3), SLUICE_OK);
    WAIT_FOR(atomic_load(&s3.done), "task 3 to finish");
    assert_int_equal(s3.deadline, 0);
    assert_null(s3.ctx);
    assert_false(s3.stop_after);

    /* Outside a task. */
    assert_int_equal(sluice_task_deadline(), 0);
    assert_null(sluice_task_ctx());
    assert_false(sluice_task_should_stop());
    ASSERT_IDENTITY(p);
    sluice_ctx_release(ctx);
    sluice_ctx_release(ctx2);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* ---- sluice_panic --------------------------------------------------------- */

static _Atomic int cleanup_log[8];
static _Atomic int cleanup_n;
static void cleanup_record(void *arg)
{
    int i = atomic_fetch_add(&cleanup_n, 1);
    if (i < 8) {
        atomic_store(&cleanup_log[i], (int)(intptr_t)arg);
    }
}

static _Atomic int after_panic_reached;
static int task_panics_with_cleanups(void *arg)
{
    (void)arg;
    /* (No cmocka asserts off the main thread: a failed push shows up as a
     * wrong cleanup log in the test.) */
    (void)sluice_cleanup_push(cleanup_record, (void *)(intptr_t)1);
    (void)sluice_cleanup_push(cleanup_record, (void *)(intptr_t)2);
    (void)sluice_cleanup_push(cleanup_record, (void *)(intptr_t)3);
    sluice_cleanup_pop(true); /* runs 3 now */
    sluice_panic("bad input %d in %s", 42, "parser");
    atomic_store(&after_panic_reached, 1);
    return 0;
}

static void test_panic_reports_and_unwinds(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "pan", 1, 8, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    atomic_store(&cleanup_n, 0);
    sluice_submit_opts o = {.label = "parse-job"};
    assert_int_equal(sluice_pool_submit_ex(p, task_panics_with_cleanups, NULL, &o), SLUICE_OK);
    /* The worker goes on with the next task. */
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.panicked, 1);
    assert_int_equal(s.completed, 1);
    assert_int_equal(atomic_load(&t->ran), 1);
    assert_int_equal(atomic_load(&after_panic_reached), 0);
    /* 3 popped and run by the task, then 2, 1 innermost-first by the panic. */
    assert_int_equal(atomic_load(&cleanup_n), 3);
    assert_int_equal(atomic_load(&cleanup_log[0]), 3);
    assert_int_equal(atomic_load(&cleanup_log[1]), 2);
    assert_int_equal(atomic_load(&cleanup_log[2]), 1);
    assert_int_equal(atomic_load(&t->panics), 1);
    pthread_mutex_lock(&t->mu);
    panic_record r = t->records[0];
    pthread_mutex_unlock(&t->mu);
    assert_string_equal(r.pool_name, "pan");
    assert_string_equal(r.message, "bad input 42 in parser");
    assert_string_equal(r.label, "parse-job");
    assert_int_equal(r.signal, 0);
    assert_int_equal(r.worker_index, 0);
    assert_false(r.caller_thread);
    assert_true(r.frames_nonnull);
    assert_true(r.frame_count > 1);
    assert_true(r.frame_count <= SLUICE_BACKTRACE_MAX);
    assert_int_equal(stats_now(p).workers, 1); /* the same worker went on */
    sluice_pool_destroy(p);
    tally_free(t);
}

/* The frames handed to the panic handler can be formatted. */
static char formatted_bt[8192];
static size_t formatted_len;
static void format_panic(const sluice_panic_info *info, void *user)
{
    formatted_len =
        sluice_backtrace_format(info->frames, info->frame_count, formatted_bt, sizeof formatted_bt);
    tally_panic(info, user);
}

static int task_panic_plain(void *arg)
{
    (void)arg;
    sluice_panic("plain");
}

static void test_panic_backtrace_format(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "panbt", 1, 8, t);
    cfg.panic_handler = format_panic;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    assert_int_equal(sluice_pool_submit(p, task_panic_plain, NULL), SLUICE_OK);
    ASSERT_IDENTITY(p);
    /* The tally's atomic count, bumped after the handler wrote the text,
     * orders the handler's writes before the reads below. */
    WAIT_FOR(atomic_load(&t->panics) == 1, "the panic handler");
    assert_true(formatted_len > 0);
    assert_true(strncmp(formatted_bt, "#0 ", 3) == 0);
    assert_non_null(strstr(formatted_bt, "\n#1 "));
    /* Truncation: still NUL-terminated, returns the wanted length. */
    char small[16];
    void *frames[2] = {(void *)test_panic_backtrace_format, (void *)task_panic_plain};
    size_t want = sluice_backtrace_format(frames, 2, small, sizeof small);
    assert_true(want >= strlen(small));
    assert_int_equal(strlen(small), sizeof small - 1);
    sluice_pool_destroy(p);
    tally_free(t);
}

/* Cleanup stack limits and misuse. */
static _Atomic int push_results[SLUICE_CLEANUP_MAX + 2];
static void cleanup_nop(void *arg)
{
    (void)arg;
}
static int task_push_too_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < SLUICE_CLEANUP_MAX + 1; i++) {
        atomic_store(&push_results[i], (int)sluice_cleanup_push(cleanup_nop, NULL));
    }
    for (int i = 0; i < SLUICE_CLEANUP_MAX + 3; i++) {
        sluice_cleanup_pop(false); /* extra pops are harmless */
    }
    return 0;
}

static void test_cleanup_limits(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "cleanup", 1, 8, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    assert_int_equal(sluice_pool_submit(p, task_push_too_many, NULL), SLUICE_OK);
    ASSERT_IDENTITY(p);
    for (int i = 0; i < SLUICE_CLEANUP_MAX; i++) {
        assert_int_equal(atomic_load(&push_results[i]), SLUICE_OK);
    }
    assert_int_equal(atomic_load(&push_results[SLUICE_CLEANUP_MAX]), SLUICE_EOVERFLOW);
    /* Outside a task. */
    assert_int_equal(sluice_cleanup_push(cleanup_nop, NULL), SLUICE_EINVAL);
    sluice_cleanup_pop(true); /* no-op */
    sluice_pool_destroy(p);
    tally_free(t);
}

/* A panic in a CALLER_RUNS task unwinds to the submitter, which returns
 * SLUICE_OK (the task was accepted and ran) and counts the panic. */
static void test_panic_on_caller_thread(void **state)
{
    (void)state;
    tally *t = tally_new();
    gate *g = gate_new();
    sluice_pool_config cfg;
    base_config(&cfg, "pancr", 1, 2, t);
    cfg.overflow = SLUICE_OVERFLOW_CALLER_RUNS;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    hold_workers(p, g, 1);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    atomic_store(&cleanup_n, 0);
    assert_int_equal(sluice_pool_submit(p, task_panics_with_cleanups, NULL), SLUICE_OK);
    assert_int_equal(atomic_load(&t->panics), 1);
    pthread_mutex_lock(&t->mu);
    panic_record r = t->records[0];
    pthread_mutex_unlock(&t->mu);
    assert_true(r.caller_thread);
    assert_string_equal(r.message, "bad input 42 in parser");
    assert_int_equal(atomic_load(&cleanup_n), 3);
    /* This thread is not inside a task any more. */
    assert_null(sluice_task_pool());
    gate_open(g);
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.panicked, 1);
    assert_int_equal(s.caller_ran, 1);
    sluice_pool_destroy(p);
    gate_free(g);
    tally_free(t);
}

/* Every worker panics, repeatedly; all keep going; nothing is lost. */
typedef struct panic_all {
    latch *all_in; /* every worker holds one panicking task at once */
} panic_all;

static _Atomic unsigned panicked_workers;
static int task_panic_after_latch(void *arg)
{
    latch *l = arg;
    unsigned idx = sluice_worker_index();
    atomic_fetch_or(&panicked_workers, idx < 32 ? 1u << idx : 0u);
    latch_count_down(l);
    latch_wait_bg(l);
    sluice_panic("worker %u gives up", sluice_worker_index());
}

static void test_panics_in_every_worker(void **state)
{
    (void)state;
    tally *t = tally_new();
    const unsigned k = 4;
    sluice_pool_config cfg;
    base_config(&cfg, "panall", k, 64, t);
    with_hooks(&cfg);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    latch *l = malloc(sizeof *l);
    latch_init(l, k);
    for (unsigned i = 0; i < k; i++) {
        assert_int_equal(sluice_pool_submit(p, task_panic_after_latch, l), SLUICE_OK);
    }
    LATCH_WAIT(l, "all workers in a panicking task");
    for (unsigned i = 0; i < 200; i++) {
        assert_int_equal(sluice_pool_submit(p, i % 2 ? task_panic_plain : task_count, t), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.panicked, k + 100);
    assert_int_equal(s.completed, 100);
    assert_int_equal(atomic_load(&t->panics), k + 100);
    /* Workers survived their panics: none was replaced. */
    assert_int_equal(s.started_workers, k);
    assert_int_equal(s.workers, k);
    /* The latch made all k panicking tasks run at once: on k workers. */
    assert_int_equal(atomic_load(&panicked_workers), (1u << k) - 1);
    sluice_pool_destroy(p);
    assert_int_equal(atomic_load(&t->inits), k);
    assert_int_equal(atomic_load(&t->finis), k);
    latch_destroy(l);
    free(l);
    tally_free(t);
}

/* ---- the fault guard ---------------------------------------------------------- */

static int *volatile null_ptr;

__attribute__((noinline, no_sanitize_address, no_sanitize_undefined, no_sanitize_thread)) static int
deref_null(void)
{
    return *null_ptr;
}

static _Atomic int fault_cleanup_ran;
static void fault_cleanup(void *arg)
{
    (void)arg;
    atomic_fetch_add(&fault_cleanup_ran, 1);
}

static int task_segv(void *arg)
{
    (void)arg;
    sluice_cleanup_push(fault_cleanup, NULL);
    return deref_null() + 1;
}

/* Records whether the guarded signals are blocked on the running worker:
 * after a recovered fault, a worker (or its replacement, which inherits
 * the mask of the thread that spawned it) with SIGSEGV blocked would be
 * killed outright by its next fault. */
static _Atomic int blocked_mask_seen;
static int task_check_mask(void *arg)
{
    (void)arg;
    sigset_t cur;
    if (pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0 &&
        (sigismember(&cur, SIGSEGV) || sigismember(&cur, SIGBUS) || sigismember(&cur, SIGFPE) ||
         sigismember(&cur, SIGILL))) {
        atomic_fetch_add(&blocked_mask_seen, 1);
    }
    return 0;
}

static void test_fault_recover(void **state)
{
    if (SLUICE_TEST_TSAN) {
        /* ThreadSanitizer cannot follow a siglongjmp out of a signal
         * handler: its per-thread state stays "in the handler" and the next
         * event crashes it. RECOVER is covered by the plain and ASan runs. */
        skip();
    }
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "faultrec", 2, 64, t);
    with_hooks(&cfg);
    cfg.fault_mode = SLUICE_FAULT_RECOVER;
    cfg.min_workers = 2;
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    assert_true(sluice_fault_guard_installed());
    WAIT_FOR(stats_now(p).workers == 2, "min workers");
    atomic_store(&fault_cleanup_ran, 0);
    sluice_submit_opts o = {.label = "segv-task"};
    assert_int_equal(sluice_pool_submit_ex(p, task_segv, NULL, &o), SLUICE_OK);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    assert_int_equal(sluice_pool_submit(p, task_segv, NULL), SLUICE_OK);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(sluice_pool_submit(p, task_count, t), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    sluice_pool_stats s = stats_now(p);
    assert_int_equal(s.panicked, 2);
    assert_int_equal(s.completed, 100);
    assert_int_equal(atomic_load(&t->ran), 100);
    assert_int_equal(atomic_load(&fault_cleanup_ran), 2);
    assert_int_equal(atomic_load(&t->panics), 2);
    pthread_mutex_lock(&t->mu);
    panic_record r0 = t->records[0], r1 = t->records[1];
    pthread_mutex_unlock(&t->mu);
    /* The two faults may be reported in either order. */
    panic_record r = strcmp(r0.label, "segv-task") == 0 ? r0 : r1;
    assert_int_equal(r0.signal, SIGSEGV);
    assert_int_equal(r1.signal, SIGSEGV);
    assert_string_equal(r.pool_name, "faultrec");
    assert_string_equal(r.label, "segv-task");
    assert_non_null(strstr(r.message, "SIGSEGV"));
    assert_true(r.frame_count > 0);
    assert_false(r.caller_thread);
    /* The faulting workers were retired and replaced. A replacement is
     * started by the retiring worker on its way out, after the task's
     * outcome was counted, so the counts are awaited, not read once. */
    WAIT_FOR(stats_now(p).retired_workers >= 2, "two faulting workers retired");
    WAIT_FOR(stats_now(p).started_workers >= 4, "two replacements started");
    WAIT_FOR(stats_now(p).workers == 2, "min_workers restored");
    WAIT_FOR(atomic_load(&t->exits_by[EXIT_FAULT]) == 2, "two 'fault' exit events");
    /* The replacements run with the guarded signals unblocked. */
    atomic_store(&blocked_mask_seen, 0);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(sluice_pool_submit(p, task_check_mask, NULL), SLUICE_OK);
    }
    ASSERT_IDENTITY(p);
    assert_int_equal(atomic_load(&blocked_mask_seen), 0);
    sluice_pool_destroy(p);
    /* Every worker that ran init also ran fini (the faulting ones too). */
    assert_int_equal(atomic_load(&t->inits), atomic_load(&t->finis));
    assert_int_equal(atomic_load(&t->violations), 0);
    tally_free(t);
}

/* RERAISE (the default mode of the guard): the process dies by the signal.
 * Run in a forked child; the parent asserts how it died. */
static void test_fault_reraise_kills_process(void **state)
{
    (void)state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Child: no core file, please. */
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        tally *t = tally_new();
        sluice_pool_config cfg;
        base_config(&cfg, "reraise", 1, 4, t);
        cfg.fault_mode = SLUICE_FAULT_RERAISE;
        sluice_pool *p = NULL;
        if (sluice_pool_create(&cfg, &p, NULL, 0) != SLUICE_OK) {
            _exit(3);
        }
        sluice_pool_submit(p, task_segv, NULL);
        /* Wait to be killed; if the guard swallowed the fault, say so. */
        uint64_t limit = real_now_ns() + 10 * SLUICE_NS_PER_SEC;
        while (real_now_ns() < limit) {
            poll_pause();
        }
        _exit(4);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status)) {
        fail_msg("child was not killed by a signal (exit status %d)",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    assert_int_equal(WTERMSIG(status), SIGSEGV);
}

/* Runs `child` in a forked process; returns its wait status. */
static int run_in_child(void (*child)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        child();
        _exit(4);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

/* The guard catches faults only on a guarded worker inside a task: a fault
 * on another thread takes the default action (the process dies). */
static void child_fault_on_main_thread(void)
{
    /* cmocka catches SIGSEGV in the test process; a service would not. */
    signal(SIGSEGV, SIG_DFL);
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "guard-main", 1, 4, t);
    cfg.fault_mode = SLUICE_FAULT_RECOVER;
    sluice_pool *p = NULL;
    if (sluice_pool_create(&cfg, &p, NULL, 0) != SLUICE_OK) {
        _exit(3);
    }
    (void)deref_null();
    _exit(5); /* survived: the guard swallowed a fault it does not own */
}

static void test_fault_outside_worker_not_swallowed(void **state)
{
    (void)state;
    int status = run_in_child(child_fault_on_main_thread);
    if (WIFEXITED(status) && under_sanitizer() && WEXITSTATUS(status) != 5 && WEXITSTATUS(status) != 0) {
        return; /* the sanitizer's own SIGSEGV report ended it: not swallowed */
    }
    if (!WIFSIGNALED(status)) {
        fail_msg("child exited with %d instead of dying by SIGSEGV",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    assert_int_equal(WTERMSIG(status), SIGSEGV);
}

/* A SIGSEGV handler installed before the guard still gets the faults that
 * are not the guard's (chaining). */
static void user_segv_handler(int sig)
{
    (void)sig;
    _exit(42);
}

static void child_fault_chains_to_user_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = user_segv_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "guard-chain", 1, 4, t);
    cfg.fault_mode = SLUICE_FAULT_RECOVER;
    sluice_pool *p = NULL;
    if (sluice_pool_create(&cfg, &p, NULL, 0) != SLUICE_OK) {
        _exit(3);
    }
    (void)deref_null();
    _exit(5);
}

static void test_fault_chains_to_previous_handler(void **state)
{
    (void)state;
    if (under_sanitizer()) {
        skip(); /* the sanitizer runtime owns SIGSEGV handling on non-worker threads */
    }
    int status = run_in_child(child_fault_chains_to_user_handler);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 42) {
        fail_msg("the previous SIGSEGV handler was not called (status 0x%x)", (unsigned)status);
    }
}

/* Without the guard, nothing is installed for a pool with FAULT_OFF; a
 * later guarded pool installs it once. (Order-dependent: runs first.) */
static void test_fault_off_installs_nothing(void **state)
{
    (void)state;
    tally *t = tally_new();
    sluice_pool_config cfg;
    base_config(&cfg, "faultoff", 1, 4, t);
    sluice_pool *p;
    CREATE_POOL(&cfg, &p);
    assert_false(sluice_fault_guard_installed());
    sluice_pool_destroy(p);
    tally_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_off_installs_nothing),
        cmocka_unit_test(test_deadline_shed),
        cmocka_unit_test(test_ctx_cancelled_shed),
        cmocka_unit_test(test_task_accessors_and_should_stop),
        cmocka_unit_test(test_panic_reports_and_unwinds),
        cmocka_unit_test(test_panic_backtrace_format),
        cmocka_unit_test(test_cleanup_limits),
        cmocka_unit_test(test_panic_on_caller_thread),
        cmocka_unit_test(test_panics_in_every_worker),
        cmocka_unit_test(test_fault_reraise_kills_process),
        cmocka_unit_test(test_fault_recover),
        cmocka_unit_test(test_fault_outside_worker_not_swallowed),
        cmocka_unit_test(test_fault_chains_to_previous_handler),
    };
    return cmocka_run_group_tests_name("core_task", tests, NULL, NULL);
}

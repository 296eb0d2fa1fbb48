/*
 * tests/service/test_check_reentry.c - health checks run with no service
 * lock held: a check may call back into the service.
 *
 * Checks ran under the service's check lock, so a check that called
 * add_check or remove_check (its own removal included) deadlocked on it.
 * Each test that could deadlock runs the checks on a helper thread and
 * waits for it with a watchdog (a latch with a safety limit): a deadlock
 * fails the test in seconds instead of hanging it.
 *
 *  - a check adds a check, reads the service, runs the checks (nested),
 *    and removes itself; the nested run sees the added check;
 *  - remove_check from another thread still waits for a run of the check
 *    in progress (the header's promise), and a run that starts after the
 *    removal began no longer runs it;
 *  - a check removed by an earlier check of the same run is not run;
 *  - remove_check from inside a check of another service still waits for
 *    the run in progress (only a check of the same service skips it),
 *    and a check of B run from a check of A removes A's check without
 *    waiting for itself;
 *  - a stress: threads run the checks while others add and remove checks
 *    and the checks re-enter. Sized by SLUICE_STRESS_SCALE; run it under
 *    TSan.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/wait.h"
#include "sluice/service.h"

static sluice_service *make_service(void)
{
    sluice_service_config sc;
    sluice_service_config_init(&sc);
    sc.no_signals = true;
    sluice_service *svc = NULL;
    char err[256];
    if (sluice_service_create(&sc, &svc, err, sizeof err) != SLUICE_OK) {
        fail_msg("service create: %s", err);
    }
    return svc;
}

static sluice_health_state plain_check(void *user, char *line, size_t len)
{
    (void)user;
    snprintf(line, len, "plain");
    return SLUICE_HEALTH_OK;
}

/* ---- a check that calls back into the service ----------------------------- */

typedef struct reentrant {
    sluice_service *svc;
    _Atomic int calls;
    sluice_err add_r, remove_r, again_r;
    size_t nested_n;
    char nested_second[SLUICE_SERVICE_CHECK_LINE_MAX + 1];
    bool ready;
    int other; /* the added check's user */
} reentrant;

static sluice_health_state reentrant_check(void *user, char *line, size_t len)
{
    reentrant *r = user;
    if (atomic_fetch_add(&r->calls, 1) == 0) {
        r->add_r = sluice_service_add_check(r->svc, "other", plain_check, &r->other);
        r->ready = sluice_service_ready(r->svc);
        /* A nested run: this check runs again (calls is 1 now, so it only
         * says so), and the check just added runs too. */
        sluice_service_check_result res[SLUICE_SERVICE_MAX_CHECKS];
        r->nested_n = sluice_service_run_checks(r->svc, res, SLUICE_SERVICE_MAX_CHECKS);
        if (r->nested_n >= 2) {
            snprintf(r->nested_second, sizeof r->nested_second, "%s", res[1].line);
        }
        /* Its own removal, from inside its own run: it must not wait for
         * itself. */
        r->remove_r = sluice_service_remove_check(r->svc, r);
        r->again_r = sluice_service_remove_check(r->svc, r);
    }
    snprintf(line, len, "reentrant");
    return SLUICE_HEALTH_OK;
}

typedef struct run_job {
    sluice_service *svc;
    size_t n;
    sluice_service_check_result res[SLUICE_SERVICE_MAX_CHECKS];
    latch done;
} run_job;

static void *run_checks_thread(void *arg)
{
    run_job *j = arg;
    j->n = sluice_service_run_checks(j->svc, j->res, SLUICE_SERVICE_MAX_CHECKS);
    latch_count_down(&j->done);
    return NULL;
}

static void test_check_calls_back_into_the_service(void **state)
{
    (void)state;
    sluice_service *svc = make_service();
    reentrant r = {.svc = svc};
    assert_int_equal(sluice_service_add_check(svc, "reentrant", reentrant_check, &r), SLUICE_OK);
    run_job job = {.svc = svc};
    latch_init(&job.done, 1);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_checks_thread, &job), 0);
    /* The watchdog: a check that deadlocks never lets run_checks return. */
    if (!latch_wait_bg(&job.done)) {
        fail_msg("run_checks did not return: a check deadlocked calling back into the service");
    }
    pthread_join(t, NULL);
    latch_destroy(&job.done);
    assert_int_equal(atomic_load(&r.calls), 2); /* the outer run and the nested one */
    assert_int_equal(r.add_r, SLUICE_OK);
    assert_false(r.ready);
    assert_int_equal(r.nested_n, 2);
    assert_string_equal(r.nested_second, "plain");
    assert_int_equal(r.remove_r, SLUICE_OK);
    assert_int_equal(r.again_r, SLUICE_ENOENT);
    assert_int_equal(job.n, 1); /* counted when the run began */
    assert_string_equal(job.res[0].name, "reentrant");
    assert_string_equal(job.res[0].line, "reentrant");
    /* Now: only the added check; the removed one is gone for good. */
    sluice_service_check_result res[SLUICE_SERVICE_MAX_CHECKS];
    assert_int_equal(sluice_service_run_checks(svc, res, SLUICE_SERVICE_MAX_CHECKS), 1);
    assert_string_equal(res[0].name, "other");
    assert_int_equal(atomic_load(&r.calls), 2);
    /* Its slot is free again: the most checks fit. */
    int users[SLUICE_SERVICE_MAX_CHECKS];
    for (int i = 1; i < SLUICE_SERVICE_MAX_CHECKS; i++) {
        assert_int_equal(sluice_service_add_check(svc, "more", plain_check, &users[i]), SLUICE_OK);
    }
    assert_int_equal(sluice_service_add_check(svc, "more", plain_check, &users[0]), SLUICE_EOVERFLOW);
    sluice_service_destroy(svc);
}

/* ---- a check removed by an earlier check of the same run ------------------ */

typedef struct check_remover {
    sluice_service *svc;
    void *victim;
    sluice_err r;
} check_remover;

static sluice_health_state remover_check(void *user, char *line, size_t len)
{
    check_remover *rm = user;
    rm->r = sluice_service_remove_check(rm->svc, rm->victim);
    snprintf(line, len, "removed the next");
    return SLUICE_HEALTH_OK;
}

static sluice_health_state counted_check(void *user, char *line, size_t len)
{
    atomic_fetch_add((_Atomic int *)user, 1);
    snprintf(line, len, "ran");
    return SLUICE_HEALTH_OK;
}

/* remove_check promises that no run starts the check from the call on:
 * a check that removes the next one of the same run keeps it from
 * running (the run had marked every check before calling the first, and
 * called the removed one anyway: its user may be freed by then). */
static void test_removed_by_an_earlier_check_is_not_run(void **state)
{
    (void)state;
    sluice_service *svc = make_service();
    _Atomic int victim_calls = 0;
    check_remover rm = {.svc = svc, .victim = (void *)&victim_calls};
    assert_int_equal(sluice_service_add_check(svc, "remover", remover_check, &rm), SLUICE_OK);
    assert_int_equal(sluice_service_add_check(svc, "victim", counted_check, (void *)&victim_calls),
                     SLUICE_OK);
    assert_int_equal(sluice_service_add_check(svc, "last", plain_check, &rm.r), SLUICE_OK);
    sluice_service_check_result res[SLUICE_SERVICE_MAX_CHECKS];
    size_t n = sluice_service_run_checks(svc, res, SLUICE_SERVICE_MAX_CHECKS);
    assert_int_equal(rm.r, SLUICE_OK);
    assert_int_equal(atomic_load(&victim_calls), 0);
    assert_int_equal(n, 2); /* three when the run began, less the one removed before its turn */
    assert_string_equal(res[0].name, "remover");
    assert_string_equal(res[1].name, "last");
    assert_string_equal(res[1].line, "plain");
    sluice_service_destroy(svc);
}

/* ---- remove_check waits for a run on another thread ----------------------- */

typedef struct blocking {
    gate g;
    _Atomic int entered, left;
} blocking;

static sluice_health_state blocking_check(void *user, char *line, size_t len)
{
    blocking *b = user;
    atomic_fetch_add(&b->entered, 1);
    gate_pass(&b->g, false);
    snprintf(line, len, "blocked");
    atomic_fetch_add(&b->left, 1);
    return SLUICE_HEALTH_OK;
}

typedef struct remove_job {
    sluice_service *svc;
    void *user;
    sluice_err r;
    _Atomic int returned;
    int left_at_return;
    blocking *b;
} remove_job;

static void *remove_thread(void *arg)
{
    remove_job *j = arg;
    j->r = sluice_service_remove_check(j->svc, j->user);
    j->left_at_return = atomic_load(&j->b->left);
    atomic_store(&j->returned, 1);
    return NULL;
}

static void test_remove_waits_for_a_run_elsewhere(void **state)
{
    (void)state;
    sluice_service *svc = make_service();
    blocking b = {0};
    gate_init(&b.g);
    assert_int_equal(sluice_service_add_check(svc, "blocking", blocking_check, &b), SLUICE_OK);
    run_job job = {.svc = svc};
    latch_init(&job.done, 1);
    pthread_t runner, remover;
    assert_int_equal(pthread_create(&runner, NULL, run_checks_thread, &job), 0);
    WAIT_FOR(atomic_load(&b.entered) == 1, "the check runs");
    remove_job rj = {.svc = svc, .user = &b, .b = &b};
    assert_int_equal(pthread_create(&remover, NULL, remove_thread, &rj), 0);
    /* The removal has begun once a new run no longer runs the check; the
     * run in progress still holds it, so remove_check has not returned. */
    WAIT_FOR(sluice_service_run_checks(svc, NULL, 0) == 0, "the removal begins");
    assert_int_equal(atomic_load(&rj.returned), 0);
    assert_int_equal(atomic_load(&b.left), 0);
    gate_open(&b.g);
    LATCH_WAIT(&job.done, "the run in progress ends");
    pthread_join(remover, NULL);
    pthread_join(runner, NULL);
    assert_int_equal(rj.r, SLUICE_OK);
    assert_int_equal(rj.left_at_return, 1); /* the check had returned */
    assert_int_equal(job.n, 1);
    assert_string_equal(job.res[0].line, "blocked");
    assert_int_equal(atomic_load(&b.entered), 1);
    latch_destroy(&job.done);
    gate_destroy(&b.g);
    sluice_service_destroy(svc);
}

/* ---- remove_check from a check of another service still waits ------------- */

/* A check of service A that removes a check of service B. */
typedef struct cross_remover {
    sluice_service *other;
    blocking *b;
    sluice_err r;
    int left_at_return;
    _Atomic int returned;
} cross_remover;

static sluice_health_state cross_remover_check(void *user, char *line, size_t len)
{
    cross_remover *x = user;
    x->r = sluice_service_remove_check(x->other, x->b);
    x->left_at_return = atomic_load(&x->b->left);
    atomic_store(&x->returned, 1);
    snprintf(line, len, "removed b's");
    return SLUICE_HEALTH_OK;
}

/* The depth that told remove_check "inside a check: do not wait" was per
 * thread, for every service: from inside a check of A, the removal of a
 * check of B still running on another thread returned at once (its user
 * then freed under the run). Only a check of the same service may skip
 * the wait. */
static void test_remove_from_another_services_check_waits(void **state)
{
    (void)state;
    sluice_service *a = make_service(), *b_svc = make_service();
    blocking b = {0};
    gate_init(&b.g);
    assert_int_equal(sluice_service_add_check(b_svc, "blocking", blocking_check, &b), SLUICE_OK);
    cross_remover x = {.other = b_svc, .b = &b};
    assert_int_equal(sluice_service_add_check(a, "remover", cross_remover_check, &x), SLUICE_OK);
    run_job on_b = {.svc = b_svc}, on_a = {.svc = a};
    latch_init(&on_b.done, 1);
    latch_init(&on_a.done, 1);
    pthread_t tb, ta;
    assert_int_equal(pthread_create(&tb, NULL, run_checks_thread, &on_b), 0);
    WAIT_FOR(atomic_load(&b.entered) == 1, "b's check runs");
    assert_int_equal(pthread_create(&ta, NULL, run_checks_thread, &on_a), 0);
    /* The removal has begun once a new run of B no longer runs the check;
     * B's run in progress still holds it, so the removal inside A's check
     * has not returned. */
    WAIT_FOR(sluice_service_run_checks(b_svc, NULL, 0) == 0, "the removal begins");
    assert_int_equal(atomic_load(&x.returned), 0);
    assert_int_equal(atomic_load(&b.left), 0);
    gate_open(&b.g);
    LATCH_WAIT(&on_b.done, "b's run ends");
    LATCH_WAIT(&on_a.done, "a's run ends");
    pthread_join(tb, NULL);
    pthread_join(ta, NULL);
    assert_int_equal(x.r, SLUICE_OK);
    assert_int_equal(x.left_at_return, 1); /* b's check had returned */
    assert_int_equal(on_a.n, 1);
    assert_string_equal(on_a.res[0].line, "removed b's");
    assert_int_equal(on_b.n, 1);
    assert_string_equal(on_b.res[0].line, "blocked");
    latch_destroy(&on_a.done);
    latch_destroy(&on_b.done);
    gate_destroy(&b.g);
    sluice_service_destroy(a);
    sluice_service_destroy(b_svc);
}

/* A check of A runs B's checks; B's check removes A's check, the one this
 * thread is inside two frames out: it must not wait for itself. */
typedef struct nested {
    sluice_service *a, *b;
    sluice_err r;
    size_t inner_n;
    _Atomic int outer_calls;
} nested;

static sluice_health_state nested_inner_check(void *user, char *line, size_t len)
{
    nested *ns = user;
    ns->r = sluice_service_remove_check(ns->a, ns);
    snprintf(line, len, "removed a's");
    return SLUICE_HEALTH_OK;
}

static sluice_health_state nested_outer_check(void *user, char *line, size_t len)
{
    nested *ns = user;
    atomic_fetch_add(&ns->outer_calls, 1);
    sluice_service_check_result res[SLUICE_SERVICE_MAX_CHECKS];
    ns->inner_n = sluice_service_run_checks(ns->b, res, SLUICE_SERVICE_MAX_CHECKS);
    snprintf(line, len, "outer");
    return SLUICE_HEALTH_OK;
}

static void test_nested_services_remove_outer_check(void **state)
{
    (void)state;
    nested ns = {.a = make_service(), .b = make_service(), .r = SLUICE_EINVAL};
    assert_int_equal(sluice_service_add_check(ns.a, "outer", nested_outer_check, &ns), SLUICE_OK);
    assert_int_equal(sluice_service_add_check(ns.b, "inner", nested_inner_check, &ns), SLUICE_OK);
    run_job job = {.svc = ns.a};
    latch_init(&job.done, 1);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_checks_thread, &job), 0);
    if (!latch_wait_bg(&job.done)) {
        fail_msg("run_checks did not return: the removal of the check this thread is inside waited for it");
    }
    pthread_join(t, NULL);
    latch_destroy(&job.done);
    assert_int_equal(ns.r, SLUICE_OK);
    assert_int_equal(ns.inner_n, 1);
    assert_int_equal(job.n, 1);
    assert_string_equal(job.res[0].line, "outer");
    assert_int_equal(sluice_service_run_checks(ns.a, NULL, 0), 0); /* gone */
    assert_int_equal(atomic_load(&ns.outer_calls), 1);
    sluice_service_destroy(ns.a);
    sluice_service_destroy(ns.b);
}

/* ---- stress ---------------------------------------------------------------- */

typedef struct stress {
    sluice_service *svc;
    _Atomic int stop;
    _Atomic long runs, failed;
} stress;

static sluice_health_state stress_check(void *user, char *line, size_t len)
{
    stress *s = *(stress **)user;
    /* Re-enter: read the service and add/remove a check of our own. */
    int mine;
    (void)sluice_service_ready(s->svc);
    sluice_err r = sluice_service_add_check(s->svc, "inner", plain_check, &mine);
    if (r == SLUICE_OK && sluice_service_remove_check(s->svc, &mine) != SLUICE_OK) {
        atomic_fetch_add(&s->failed, 1);
    } else if (r != SLUICE_OK && r != SLUICE_EOVERFLOW) {
        atomic_fetch_add(&s->failed, 1);
    }
    snprintf(line, len, "stress");
    return SLUICE_HEALTH_OK;
}

typedef struct churn_arg {
    stress *s;
    stress *self[2]; /* each check's user points at the run's stress */
} churn_arg;

static void *stress_runner(void *arg)
{
    stress *s = arg;
    while (!atomic_load(&s->stop)) {
        sluice_service_check_result res[SLUICE_SERVICE_MAX_CHECKS];
        size_t n = sluice_service_run_checks(s->svc, res, SLUICE_SERVICE_MAX_CHECKS);
        if (n > SLUICE_SERVICE_MAX_CHECKS) {
            atomic_fetch_add(&s->failed, 1);
        }
        atomic_fetch_add(&s->runs, 1);
    }
    return NULL;
}

static void *stress_churner(void *arg)
{
    churn_arg *c = arg;
    while (!atomic_load(&c->s->stop)) {
        for (int i = 0; i < 2; i++) {
            sluice_err r = sluice_service_add_check(c->s->svc, "churn", stress_check, &c->self[i]);
            if (r == SLUICE_OK) {
                if (sluice_service_remove_check(c->s->svc, &c->self[i]) != SLUICE_OK) {
                    atomic_fetch_add(&c->s->failed, 1);
                }
            } else if (r != SLUICE_EOVERFLOW) {
                atomic_fetch_add(&c->s->failed, 1);
            }
        }
    }
    return NULL;
}

static void test_stress_reentrant_checks(void **state)
{
    (void)state;
    stress s = {.svc = make_service()};
    enum { RUNNERS = 2, CHURNERS = 2 };
    churn_arg ca[CHURNERS];
    pthread_t runners[RUNNERS], churners[CHURNERS];
    for (int i = 0; i < RUNNERS; i++) {
        assert_int_equal(pthread_create(&runners[i], NULL, stress_runner, &s), 0);
    }
    for (int i = 0; i < CHURNERS; i++) {
        ca[i].s = &s;
        ca[i].self[0] = ca[i].self[1] = &s;
        assert_int_equal(pthread_create(&churners[i], NULL, stress_churner, &ca[i]), 0);
    }
    long target = 2000L * (long)stress_scale();
    WAIT_FOR(atomic_load(&s.runs) >= target, "the runners make %ld runs", target);
    atomic_store(&s.stop, 1);
    for (int i = 0; i < RUNNERS; i++) {
        pthread_join(runners[i], NULL);
    }
    for (int i = 0; i < CHURNERS; i++) {
        pthread_join(churners[i], NULL);
    }
    assert_int_equal(atomic_load(&s.failed), 0);
    /* Every check was removed: none is left, and none runs. */
    assert_int_equal(sluice_service_run_checks(s.svc, NULL, 0), 0);
    sluice_service_destroy(s.svc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_calls_back_into_the_service),
        cmocka_unit_test(test_remove_waits_for_a_run_elsewhere),
        cmocka_unit_test(test_removed_by_an_earlier_check_is_not_run),
        cmocka_unit_test(test_remove_from_another_services_check_waits),
        cmocka_unit_test(test_nested_services_remove_outer_check),
        cmocka_unit_test(test_stress_reentrant_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

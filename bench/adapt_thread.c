/*
 * bench/adapt_thread.c - thread per task: pthread_create for every task.
 *
 * Purpose. The baseline a C programmer starts from before reaching for a
 * pool: no queue, no reuse, a fresh detached thread per task.
 *
 * Design. Concurrency is bounded by a counting semaphore of K slots, so
 * the comparison with K-worker pools is fair (an unbounded version would
 * start thousands of threads in the sleep workload and measure the kernel,
 * not the pattern). A submitter waits for a slot: a full "queue" blocks.
 * Each task gets a small heap record {pool, idx}, part of the pattern's
 * cost. destroy() takes back all K slots, so it returns only after every
 * task has finished (the threads may still be unwinding: they are
 * detached and touch nothing after sem_post).
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

typedef struct tpt_pool {
    sem_t slots;
    unsigned workers;
    pthread_attr_t attr;
} tpt_pool;

typedef struct tpt_task {
    tpt_pool *pool;
    void *arg; /* bench_arg_make */
} tpt_task;

static void sem_wait_intr(sem_t *s)
{
    while (sem_wait(s) != 0 && errno == EINTR) {
    }
}

static void *tpt_main(void *arg)
{
    tpt_task *t = arg;
    tpt_pool *p = t->pool;
    bench_task_run(bench_arg_take(t->arg));
    free(t);
    sem_post(&p->slots);
    return NULL;
}

static int tpt_create(const bench_adapter *self, const bench_pool_opts *opts, void **out, char *err,
                      size_t errlen)
{
    (void)self;
    tpt_pool *p = calloc(1, sizeof *p);
    if (!p || sem_init(&p->slots, 0, opts->workers) != 0) {
        snprintf(err, errlen, "thread-per-task: out of memory or sem_init failed");
        free(p);
        return -1;
    }
    p->workers = opts->workers;
    pthread_attr_init(&p->attr);
    pthread_attr_setdetachstate(&p->attr, PTHREAD_CREATE_DETACHED);
    *out = p;
    return 0;
}

static int tpt_submit(void *pool, void *producer, uint64_t idx)
{
    (void)producer;
    tpt_pool *p = pool;
    tpt_task *t = malloc(sizeof *t);
    if (!t) {
        return BENCH_EFAIL;
    }
    t->pool = p;
    t->arg = bench_arg_make(idx);
    if (!t->arg) {
        free(t);
        return BENCH_EFAIL;
    }
    sem_wait_intr(&p->slots);
    pthread_t th;
    if (pthread_create(&th, &p->attr, tpt_main, t) != 0) {
        sem_post(&p->slots);
        if (bench_g.malloc_arg) {
            free(t->arg);
        }
        free(t);
        return BENCH_EFAIL;
    }
    return BENCH_OK;
}

static void tpt_destroy(void *pool)
{
    tpt_pool *p = pool;
    for (unsigned i = 0; i < p->workers; i++) {
        sem_wait_intr(&p->slots);
    }
    pthread_attr_destroy(&p->attr);
    sem_destroy(&p->slots);
    free(p);
}

const bench_adapter bench_adapter_thread = {
    .name = "thread-per-task",
    .overflow = "pthread_create per task, at most K at once: a full pool blocks the submitter",
    .flags = BENCH_F_NO_IDLE,
    .size_divisor = 20,
    .create = tpt_create,
    .submit = tpt_submit,
    .destroy = tpt_destroy,
};

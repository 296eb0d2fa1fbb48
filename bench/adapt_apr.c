/*
 * bench/adapt_apr.c - APR apr_thread_pool (libaprutil1-dev).
 *
 * Design of the peer: one mutex over a priority task list with recycled
 * task records and a condition variable per idle thread; threads start on
 * demand up to max_threads (or all at create when the workload asks). The
 * queue is unbounded: a burst grows memory.
 *
 * Its push is O(backlog): add_task walks the queued tasks of the same
 * priority to insert after the last of them, so N pushes into a growing
 * backlog cost O(N^2). With 4 producers and 1M no-op tasks that took
 * minutes per run (one run passed the driver's 300 s limit), so, like
 * thread-per-task, it runs N/20 tasks and is reported per task; its
 * figures are then better than it would show at full N.
 */
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_thread_pool.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

typedef struct apr_bench_pool {
    apr_pool_t *mem;
    apr_thread_pool_t *tp;
} apr_bench_pool;

static void *APR_THREAD_FUNC apr_task(apr_thread_t *thread, void *param)
{
    (void)thread;
    bench_task_run(bench_arg_take(param));
    return NULL;
}

static int apr_create(const bench_adapter *self, const bench_pool_opts *opts, void **out, char *err,
                      size_t errlen)
{
    (void)self;
    static int initialized;
    if (!initialized) {
        if (apr_initialize() != APR_SUCCESS) {
            snprintf(err, errlen, "apr: apr_initialize failed");
            return -1;
        }
        initialized = 1;
    }
    apr_bench_pool *p = calloc(1, sizeof *p);
    if (!p || apr_pool_create(&p->mem, NULL) != APR_SUCCESS) {
        snprintf(err, errlen, "apr: out of memory");
        free(p);
        return -1;
    }
    apr_status_t st =
        apr_thread_pool_create(&p->tp, opts->start_all ? opts->workers : 0, opts->workers, p->mem);
    if (st != APR_SUCCESS) {
        char buf[128];
        snprintf(err, errlen, "apr: apr_thread_pool_create: %s", apr_strerror(st, buf, sizeof buf));
        apr_pool_destroy(p->mem);
        free(p);
        return -1;
    }
    *out = p;
    return 0;
}

static int apr_submit(void *pool, void *producer, uint64_t idx)
{
    (void)producer;
    apr_bench_pool *p = pool;
    void *arg = bench_arg_make(idx);
    if (!arg) {
        return BENCH_EFAIL;
    }
    apr_status_t st = apr_thread_pool_push(p->tp, apr_task, arg, APR_THREAD_TASK_PRIORITY_NORMAL, NULL);
    if (st != APR_SUCCESS && bench_g.malloc_arg) {
        free(arg);
    }
    return st == APR_SUCCESS ? BENCH_OK : BENCH_EFAIL;
}

static void apr_destroy(void *pool)
{
    apr_bench_pool *p = pool;
    apr_thread_pool_destroy(p->tp);
    apr_pool_destroy(p->mem);
    free(p);
}

const bench_adapter bench_adapter_apr = {
    .name = "apr",
    .overflow =
        "APR apr_thread_pool: mutex + priority list, recycled task records; unbounded: a burst grows memory",
    .size_divisor = 20,
    .create = apr_create,
    .submit = apr_submit,
    .destroy = apr_destroy,
};

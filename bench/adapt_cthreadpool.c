/*
 * bench/adapt_cthreadpool.c - C-Thread-Pool (Debian cthreadpool-dev,
 * Pithikos/C-Thread-Pool), a popular minimal pool.
 *
 * Design of the peer, for reading the figures: one mutex-protected linked
 * list with a malloc per job and a binary-semaphore wake-up; the queue is
 * unbounded, so a burst grows memory. The library keeps its keep-alive
 * flags in process globals, so only one pool may exist at a time: the
 * driver runs every measurement in its own process anyway.
 *
 * Debian ships it as source (thpool.c), compiled into the driver with the
 * library's own flags; see bench/CMakeLists.txt.
 *
 * Destroy is not called. thpool_destroy wakes parked threads with
 * bsem_post_all, but its binary semaphore lets only one waiter through per
 * post (the first to wake resets it), so after a first second of busy
 * posting it releases about one thread per sleep(1): a 1000-thread pool
 * takes minutes to destroy (seen here: 570 threads left after the first
 * second). The adapter waits for the pool to be idle (thpool_wait) and
 * leaves the threads parked; the measurement's process exits right after.
 */
#include <cthreadpool/thpool.h>
#include <stdio.h>

#include "bench.h"

static void ctp_task(void *arg)
{
    bench_task_run(bench_arg_take(arg));
}

static int ctp_create(const bench_adapter *self, const bench_pool_opts *opts, void **out, char *err,
                      size_t errlen)
{
    (void)self;
    threadpool tp = thpool_init((int)opts->workers);
    if (!tp) {
        snprintf(err, errlen, "cthreadpool: thpool_init(%u) failed", opts->workers);
        return -1;
    }
    *out = tp;
    return 0;
}

static int ctp_submit(void *pool, void *producer, uint64_t idx)
{
    (void)producer;
    void *arg = bench_arg_make(idx);
    if (!arg) {
        return BENCH_EFAIL;
    }
    if (thpool_add_work(pool, ctp_task, arg) != 0) {
        if (bench_g.malloc_arg) {
            free(arg);
        }
        return BENCH_EFAIL;
    }
    return BENCH_OK;
}

static void ctp_destroy(void *pool)
{
    thpool_wait(pool); /* see the header: thpool_destroy is not called */
}

const bench_adapter bench_adapter_cthreadpool = {
    .name = "cthreadpool",
    .overflow = "C-Thread-Pool: mutex + linked list, malloc per job; unbounded: a burst grows memory",
    .create = ctp_create,
    .submit = ctp_submit,
    .destroy = ctp_destroy,
};

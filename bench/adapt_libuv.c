/*
 * bench/adapt_libuv.c - libuv uv_queue_work (libuv1-dev).
 *
 * Design of the peer: one process-wide pool of UV_THREADPOOL_SIZE threads
 * (read from the environment once, at first use; at most 1024) behind a
 * mutex-protected intrusive queue; finished requests go back to the
 * submitting loop through an async handle, and a request (the caller's
 * memory) is reusable only after its after_work callback ran on the loop.
 * The queue is unbounded and the memory is the caller's: a burst grows the
 * caller's request allocations.
 *
 * uv_queue_work may be called only from the loop's thread, so each
 * producer gets its own loop (libuv's own pattern: loops share the global
 * pool). Requests are recycled through a per-loop free list; when the list
 * is empty every 256 submissions, the producer runs its loop once without
 * blocking to reap completions, as a libuv program's loop would. The
 * producer runs its loop to completion at the end (producer_end). The pool
 * size comes from the environment, so "create" only sets the variable:
 * every measurement runs in a fresh process, where libuv has not started.
 */
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "bench.h"

typedef struct uvb_req {
    uv_work_t work;
    struct uvb_req *next_free;
} uvb_req;

typedef struct uvb_producer {
    uv_loop_t loop;
    uvb_req *free_list;
    unsigned since_reap;
} uvb_producer;

static int uvb_dummy_pool;

static void uvb_work(uv_work_t *req)
{
    bench_task_run(bench_arg_take(req->data));
}

static void uvb_after(uv_work_t *req, int status)
{
    (void)status;
    uvb_req *r = (uvb_req *)req;
    uvb_producer *pr = req->loop->data;
    r->next_free = pr->free_list;
    pr->free_list = r;
}

static int uvb_create(const bench_adapter *self, const bench_pool_opts *opts, void **out, char *err,
                      size_t errlen)
{
    (void)self;
    if (opts->workers > 1024) {
        snprintf(err, errlen, "libuv: UV_THREADPOOL_SIZE is capped at 1024, asked %u", opts->workers);
        return -1;
    }
    char buf[16];
    snprintf(buf, sizeof buf, "%u", opts->workers);
    setenv("UV_THREADPOOL_SIZE", buf, 1);
    *out = &uvb_dummy_pool;
    return 0;
}

static void *uvb_producer_begin(void *pool)
{
    (void)pool;
    uvb_producer *pr = calloc(1, sizeof *pr);
    if (!pr || uv_loop_init(&pr->loop) != 0) {
        free(pr);
        return NULL;
    }
    pr->loop.data = pr;
    return pr;
}

static int uvb_submit(void *pool, void *producer, uint64_t idx)
{
    (void)pool;
    uvb_producer *pr = producer;
    if (!pr) {
        return BENCH_EFAIL;
    }
    if (!pr->free_list && ++pr->since_reap >= 256) {
        pr->since_reap = 0;
        uv_run(&pr->loop, UV_RUN_NOWAIT);
    }
    uvb_req *r = pr->free_list;
    if (r) {
        pr->free_list = r->next_free;
    } else if (!(r = malloc(sizeof *r))) {
        return BENCH_EFAIL;
    }
    r->work.data = bench_arg_make(idx);
    if (!r->work.data) {
        free(r);
        return BENCH_EFAIL;
    }
    if (uv_queue_work(&pr->loop, &r->work, uvb_work, uvb_after) != 0) {
        if (bench_g.malloc_arg) {
            free(r->work.data);
        }
        free(r);
        return BENCH_EFAIL;
    }
    return BENCH_OK;
}

static void uvb_producer_end(void *pool, void *producer)
{
    (void)pool;
    uvb_producer *pr = producer;
    if (!pr) {
        return;
    }
    uv_run(&pr->loop, UV_RUN_DEFAULT);
    uv_loop_close(&pr->loop);
    while (pr->free_list) {
        uvb_req *r = pr->free_list;
        pr->free_list = r->next_free;
        free(r);
    }
    free(pr);
}

static void uvb_destroy(void *pool)
{
    (void)pool; /* the global pool lives until the process exits */
}

const bench_adapter bench_adapter_libuv = {
    .name = "libuv",
    .overflow = "libuv uv_queue_work: global pool, mutex + intrusive queue, loop-thread completion; "
                "unbounded: caller-owned requests grow",
    .create = uvb_create,
    .producer_begin = uvb_producer_begin,
    .submit = uvb_submit,
    .producer_end = uvb_producer_end,
    .destroy = uvb_destroy,
};

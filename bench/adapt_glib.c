/*
 * bench/adapt_glib.c - GLib GThreadPool (libglib2.0-dev).
 *
 * Design of the peer: tasks go through a GAsyncQueue (mutex + condition
 * variable); the pool is created exclusive, so its K threads are its own
 * and start at once. The queue is unbounded: a burst grows memory.
 * GLib refuses NULL task data, hence the idx + 1 encoding (bench.h).
 */
#include <glib.h>
#include <stdio.h>

#include "bench.h"

static void glib_task(gpointer data, gpointer user_data)
{
    (void)user_data;
    bench_task_run(bench_arg_take(data));
}

static int glib_create(const bench_adapter *self, const bench_pool_opts *opts, void **out, char *err,
                       size_t errlen)
{
    (void)self;
    GError *gerr = NULL;
    GThreadPool *tp = g_thread_pool_new(glib_task, NULL, (gint)opts->workers, TRUE, &gerr);
    if (!tp) {
        snprintf(err, errlen, "glib: g_thread_pool_new: %s", gerr ? gerr->message : "failed");
        if (gerr) {
            g_error_free(gerr);
        }
        return -1;
    }
    *out = tp;
    return 0;
}

static int glib_submit(void *pool, void *producer, uint64_t idx)
{
    (void)producer;
    GError *gerr = NULL;
    void *arg = bench_arg_make(idx);
    if (!arg) {
        return BENCH_EFAIL;
    }
    if (!g_thread_pool_push(pool, arg, &gerr)) {
        if (bench_g.malloc_arg) {
            free(arg);
        }
        if (gerr) {
            g_error_free(gerr);
        }
        return BENCH_EFAIL;
    }
    return BENCH_OK;
}

static void glib_destroy(void *pool)
{
    g_thread_pool_free(pool, FALSE, TRUE);
}

const bench_adapter bench_adapter_glib = {
    .name = "glib",
    .overflow = "GLib GThreadPool (exclusive): GAsyncQueue, mutex + condvar; unbounded: a burst grows memory",
    .create = glib_create,
    .submit = glib_submit,
    .destroy = glib_destroy,
};

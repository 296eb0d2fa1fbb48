/*
 * src/sync/timer.c - the internal timer of src/sync (see timer.h).
 *
 * Design. A binary min-heap of entries keyed by (due_ns, seq), where seq
 * is a counter taken at add time so that entries due at the same time
 * fire in the order they were added. One thread, started by the first
 * add, loops: pop every due entry and call it with the mutex dropped,
 * then sleep until the new earliest due time (system clock: one timed
 * wait on a CLOCK_MONOTONIC condition variable; other clocks: a wait of
 * at most SLUICE_CLOCK_POLL_NS real time, then re-read the clock). An add
 * that becomes the new earliest entry signals the thread.
 *
 * Destroy sets `stopping`, wakes and joins the thread (so a callback in
 * progress finishes first), then pops what is left in due order and
 * calls each with canceled = true, without the mutex. Adds after destroy
 * began are refused with SLUICE_ECLOSED; a callback that adds while the
 * destroyer is draining the heap gets that answer too, so draining ends.
 *
 * sluice__timer_reserve grows the heap ahead, so that an owner with a
 * known bound on its pending entries (the keyed executor: two) never sees
 * an add fail for memory. A test may fail adds through sluice__sync_fault
 * (timer.h).
 *
 * Lock order: t->mu only. Callbacks never run under it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/sync_internal.h"
#include "sync/timer.h"

typedef struct entry {
    uint64_t due_ns;
    uint64_t seq;
    sluice__timer_fn fn;
    void *arg;
    uint64_t tag;
} entry;

struct sluice__timer {
    const sluice_clock *clock; /* immutable */
    char name[16];             /* immutable */

    pthread_mutex_t mu;
    pthread_cond_t cv; /* the earliest entry changed, or stopping */
    /* Guarded by mu. */
    entry *heap;
    size_t n, cap;
    uint64_t next_seq;
    bool started;  /* the thread exists (join it at destroy) */
    bool stopping; /* destroy has begun: the thread exits, adds are refused */
    pthread_t thread;
};

static bool before(const entry *a, const entry *b)
{
    return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

static void sift_up(entry *h, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&h[i], &h[parent])) {
            break;
        }
        entry tmp = h[i];
        h[i] = h[parent];
        h[parent] = tmp;
        i = parent;
    }
}

static void sift_down(entry *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && before(&h[l], &h[m])) {
            m = l;
        }
        if (r < n && before(&h[r], &h[m])) {
            m = r;
        }
        if (m == i) {
            return;
        }
        entry tmp = h[i];
        h[i] = h[m];
        h[m] = tmp;
        i = m;
    }
}

/* Remove and return the earliest entry (mu held, n > 0). */
static entry pop_min(sluice__timer *t)
{
    entry top = t->heap[0];
    t->heap[0] = t->heap[--t->n];
    sift_down(t->heap, t->n, 0);
    return top;
}

static void *timer_main(void *arg)
{
    sluice__timer *t = arg;
    pthread_setname_np(pthread_self(), t->name);
    pthread_mutex_lock(&t->mu);
    while (!t->stopping) {
        if (t->n > 0 && sluice_clock_now(t->clock) >= t->heap[0].due_ns) {
            entry e = pop_min(t);
            pthread_mutex_unlock(&t->mu);
            e.fn(e.arg, e.tag, false);
            pthread_mutex_lock(&t->mu);
            continue;
        }
        sluice__wait_until(t->clock, &t->cv, &t->mu, t->n > 0 ? t->heap[0].due_ns : 0);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

sluice_err sluice__timer_create(const sluice_clock *clk, const char *name, sluice__timer **out)
{
    sluice__timer *t = calloc(1, sizeof *t);
    if (!t) {
        return SLUICE_ENOMEM;
    }
    if (pthread_mutex_init(&t->mu, NULL) != 0) {
        free(t);
        return SLUICE_ENOMEM;
    }
    if (sluice__cond_init(&t->cv) != 0) {
        pthread_mutex_destroy(&t->mu);
        free(t);
        return SLUICE_ENOMEM;
    }
    t->clock = clk;
    snprintf(t->name, sizeof t->name, "%s", name ? name : "sluice-timer");
    *out = t;
    return SLUICE_OK;
}

_Atomic(sluice__sync_fault_fn) sluice__sync_fault;

/* Grow the heap to hold at least `need` entries (mu held). */
static bool heap_room(sluice__timer *t, size_t need)
{
    if (t->cap >= need) {
        return true;
    }
    size_t cap = t->cap ? t->cap : 16;
    while (cap < need) {
        cap *= 2;
    }
    entry *grown = realloc(t->heap, cap * sizeof *grown);
    if (!grown) {
        return false;
    }
    t->heap = grown;
    t->cap = cap;
    return true;
}

sluice_err sluice__timer_reserve(sluice__timer *t, size_t n)
{
    pthread_mutex_lock(&t->mu);
    bool ok = heap_room(t, n);
    pthread_mutex_unlock(&t->mu);
    return ok ? SLUICE_OK : SLUICE_ENOMEM;
}

sluice_err sluice__timer_add(sluice__timer *t, uint64_t due_ns, sluice__timer_fn fn, void *arg, uint64_t tag)
{
    sluice_err fault = sluice__sync_faulted("timer_add", arg);
    if (fault != SLUICE_OK) {
        return fault;
    }
    pthread_mutex_lock(&t->mu);
    if (t->stopping) {
        pthread_mutex_unlock(&t->mu);
        return SLUICE_ECLOSED;
    }
    if (!heap_room(t, t->n + 1)) {
        pthread_mutex_unlock(&t->mu);
        return SLUICE_ENOMEM;
    }
    if (!t->started) {
        if (pthread_create(&t->thread, NULL, timer_main, t) != 0) {
            pthread_mutex_unlock(&t->mu);
            return SLUICE_ESYS;
        }
        t->started = true;
    }
    t->heap[t->n] = (entry){due_ns, t->next_seq++, fn, arg, tag};
    sift_up(t->heap, t->n);
    bool earliest = t->heap[0].seq == t->next_seq - 1;
    t->n++;
    if (earliest) {
        pthread_cond_signal(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
    return SLUICE_OK;
}

size_t sluice__timer_pending(sluice__timer *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->n;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void sluice__timer_destroy(sluice__timer *t)
{
    if (!t) {
        return;
    }
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    pthread_cond_broadcast(&t->cv);
    bool started = t->started;
    pthread_mutex_unlock(&t->mu);
    if (started && pthread_equal(pthread_self(), t->thread)) {
        /* A callback destroyed its own owner (keyed.h, batcher.h forbid
         * it): the join would fail (EDEADLK) and the free below pull the
         * timer from under the callback still running. Stop here, loudly. */
        fprintf(stderr, "sluice: a timer destroyed from its own thread (an executor or batcher destroyed "
                        "from its own handler); aborting\n");
        fflush(stderr);
        abort();
    }
    if (started) {
        pthread_join(t->thread, NULL);
    }
    pthread_mutex_lock(&t->mu);
    while (t->n > 0) {
        entry e = pop_min(t);
        pthread_mutex_unlock(&t->mu);
        e.fn(e.arg, e.tag, true);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    free(t->heap);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/*
 * src/core/queue_deque.c - a bounded double-ended queue under one mutex:
 * the queue of pools whose overload mode serves the newest task first
 * (adaptive LIFO, src/core/overload.c).
 *
 * Why a lock. The pool's FIFO ring (queue_ring.c) is lock-free because a
 * push and a pop touch opposite ends; a pop of the newest task races with
 * the push that is writing it, and making that safe without a lock costs
 * more than the lock (every push would have to be confirmed by a second
 * CAS). A LIFO pool is a pool under overload, where a task waits far
 * longer than a mutex hand-off, so this queue takes the simple route:
 * every operation on the slots holds `mu` for a few instructions. Pools
 * without a LIFO mode never use it (the ring's hot path is unchanged).
 *
 * Layout. `slots` is a circular buffer of `cap` tasks; `head` indexes the
 * oldest; `count` tasks follow it. push writes at head + count (newest
 * end); pop takes head (oldest); pop_newest takes head + count - 1.
 *
 * Ordering (the contract in internal.h). `count` is written only under mu
 * but read without it by the parking protocol, so it is an atomic: push
 * stores it with seq_cst (inside the lock) and pending/depth load it with
 * seq_cst, which is the Dekker pairing the parking protocol needs (a
 * producer's store of the count and a worker's increment of `idle` cannot
 * both be missed; see worker.c). `pushed` is exact: incremented under mu
 * before the lock is released.
 *
 * Lock order: mu is a leaf (it is taken under pool->mu by DROP_OLDEST's
 * eviction and by nothing else held).
 */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

typedef struct deque {
    pthread_mutex_t mu;
    /* Guarded by mu. */
    sluice__task *slots;
    size_t cap;
    size_t head;
    bool closed;
    /* Written under mu; read without it (see the header). */
    _Atomic size_t count;
    _Atomic uint64_t pushed;
} deque;

sluice_err sluice__deque_create(size_t capacity, void **out)
{
    if (capacity == 0 || capacity > SIZE_MAX / sizeof(sluice__task)) {
        return SLUICE_EINVAL;
    }
    deque *d = calloc(1, sizeof *d);
    if (!d) {
        return SLUICE_ENOMEM;
    }
    d->slots = calloc(capacity, sizeof *d->slots);
    if (!d->slots) {
        free(d);
        return SLUICE_ENOMEM;
    }
    d->cap = capacity;
    pthread_mutex_init(&d->mu, NULL);
    atomic_init(&d->count, 0);
    atomic_init(&d->pushed, 0);
    *out = d;
    return SLUICE_OK;
}

static inline size_t slot_index(const deque *d, size_t i)
{
    size_t at = d->head + i;
    return at >= d->cap ? at - d->cap : at;
}

static sluice__qres deque_push(void *q, const sluice__task *task, uint64_t *pos_out)
{
    deque *d = q;
    pthread_mutex_lock(&d->mu);
    if (d->closed) {
        pthread_mutex_unlock(&d->mu);
        return SLUICE__Q_CLOSED;
    }
    size_t n = atomic_load_explicit(&d->count, memory_order_relaxed);
    if (n == d->cap) {
        pthread_mutex_unlock(&d->mu);
        return SLUICE__Q_FULL;
    }
    d->slots[slot_index(d, n)] = *task;
    uint64_t pos = atomic_load_explicit(&d->pushed, memory_order_relaxed);
    atomic_store_explicit(&d->pushed, pos + 1, memory_order_release);
    /* seq_cst: pairs with the worker's seq_cst increment of idle and its
     * read of pending() (worker.c, park). */
    atomic_store_explicit(&d->count, n + 1, memory_order_seq_cst);
    pthread_mutex_unlock(&d->mu);
    if (pos_out) {
        *pos_out = pos;
    }
    return SLUICE__Q_OK;
}

static sluice__qres deque_take(deque *d, sluice__task *out, bool newest)
{
    pthread_mutex_lock(&d->mu);
    size_t n = atomic_load_explicit(&d->count, memory_order_relaxed);
    if (n == 0) {
        pthread_mutex_unlock(&d->mu);
        return SLUICE__Q_EMPTY;
    }
    if (newest) {
        *out = d->slots[slot_index(d, n - 1)];
    } else {
        *out = d->slots[d->head];
        d->head = slot_index(d, 1);
    }
    /* seq_cst: blocked submitters read the depth after their own seq_cst
     * increment of `waiting` (pool.c, wait_for_space). */
    atomic_store_explicit(&d->count, n - 1, memory_order_seq_cst);
    pthread_mutex_unlock(&d->mu);
    return SLUICE__Q_OK;
}

static sluice__qres deque_pop(void *q, sluice__task *out)
{
    return deque_take(q, out, false);
}

static sluice__qres deque_pop_newest(void *q, sluice__task *out)
{
    return deque_take(q, out, true);
}

static uint64_t deque_oldest_ns(void *q)
{
    deque *d = q;
    pthread_mutex_lock(&d->mu);
    uint64_t ns = atomic_load_explicit(&d->count, memory_order_relaxed) ? d->slots[d->head].enqueue_ns : 0;
    pthread_mutex_unlock(&d->mu);
    return ns;
}

static void deque_close(void *q)
{
    deque *d = q;
    pthread_mutex_lock(&d->mu);
    d->closed = true;
    pthread_mutex_unlock(&d->mu);
}

static bool deque_pending(void *q)
{
    return atomic_load_explicit(&((deque *)q)->count, memory_order_seq_cst) > 0;
}

static bool deque_ready(void *q)
{
    return atomic_load_explicit(&((deque *)q)->count, memory_order_relaxed) > 0;
}

static size_t deque_depth(void *q)
{
    return atomic_load_explicit(&((deque *)q)->count, memory_order_seq_cst);
}

static uint64_t deque_pushed(void *q)
{
    return atomic_load_explicit(&((deque *)q)->pushed, memory_order_acquire);
}

static size_t deque_capacity(void *q)
{
    return ((deque *)q)->cap;
}

static void deque_destroy(void *q)
{
    deque *d = q;
    if (d) {
        pthread_mutex_destroy(&d->mu);
        free(d->slots);
        free(d);
    }
}

const sluice__queue_ops sluice__deque_ops = {
    .push = deque_push,
    .pop = deque_pop,
    .close = deque_close,
    .pending = deque_pending,
    .ready = deque_ready,
    .depth = deque_depth,
    .pushed = deque_pushed,
    .capacity = deque_capacity,
    .destroy = deque_destroy,
    .pop_newest = deque_pop_newest,
    .oldest_ns = deque_oldest_ns,
};

/*
 * bench/adapt_ring.c - the raw reference: a bounded lock-free ring with one
 * spinning consumer. Not a pool (no parking, no policies, no accounting
 * beyond the driver's); it measures what one hand-off between two threads
 * costs on this machine, so the report can say how close each pool gets.
 *
 * Design. One producer: a single-producer single-consumer ring (ring_spsc)
 * with cached indices, so the producer and consumer touch each other's
 * line only when their cached view runs out. Several producers: Vyukov's
 * bounded multi-producer ring (ring_mpmc), one sequence number per cell.
 * The consumer never parks: it spins with a pause instruction and yields
 * the CPU every 1024 empty polls, since on a 2-core machine a consumer
 * that never yields would starve the producers it waits for. A full ring
 * makes the producer spin the same way.
 *
 * Invariants (SPSC): (1) only the producer writes tail, only the consumer
 * writes head; (2) a slot is written before the release store of tail that
 * publishes it, and read after the acquire load of tail that observed it;
 * (3) the consumer's release store of head hands the slot back, paired with
 * the producer's acquire load of head. (MPMC): a cell's seq == pos means
 * free for the producer claiming pos; seq == pos + 1 means filled for the
 * consumer at pos; the release store of seq pairs with the acquire load of
 * the other side.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

#define RING_LINE 64

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    __asm__ volatile("" ::: "memory");
#endif
}

static inline void backoff(unsigned *spins)
{
    if (++*spins % 1024 == 0) {
        sched_yield();
    } else {
        cpu_relax();
    }
}

typedef struct ring_cell {
    _Atomic uint64_t seq;
    uint64_t idx;
} ring_cell;

typedef struct ring {
    /* producer side */
    _Alignas(RING_LINE) _Atomic uint64_t tail;
    uint64_t head_cache;
    /* consumer side */
    _Alignas(RING_LINE) _Atomic uint64_t head;
    uint64_t tail_cache;
    /* shared, read-mostly */
    _Alignas(RING_LINE) uint64_t mask;
    bool mpmc;
    atomic_bool stop;
    uint64_t *slots;  /* SPSC */
    ring_cell *cells; /* MPMC */
    pthread_t consumer;
} ring;

static bool ring_pop(ring *r, uint64_t *idx)
{
    if (!r->mpmc) {
        uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
        if (h == r->tail_cache) {
            r->tail_cache =
                atomic_load_explicit(&r->tail, memory_order_acquire); /* pairs with push's release */
            if (h == r->tail_cache) {
                return false;
            }
        }
        *idx = r->slots[h & r->mask];
        atomic_store_explicit(&r->head, h + 1, memory_order_release); /* pairs with push's acquire of head */
        return true;
    }
    /* one consumer: head is ours alone */
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    ring_cell *c = &r->cells[h & r->mask];
    if (atomic_load_explicit(&c->seq, memory_order_acquire) != h + 1) { /* pairs with push's release */
        return false;
    }
    *idx = c->idx;
    atomic_store_explicit(&c->seq, h + r->mask + 1, memory_order_release); /* frees the cell for pos + size */
    atomic_store_explicit(&r->head, h + 1, memory_order_relaxed);
    return true;
}

static void *ring_consumer(void *arg)
{
    ring *r = arg;
    unsigned spins = 0;
    uint64_t idx;
    for (;;) {
        if (ring_pop(r, &idx)) {
            bench_task_run(bench_arg_take((void *)(uintptr_t)idx));
            spins = 0;
            continue;
        }
        if (atomic_load_explicit(&r->stop, memory_order_acquire)) {
            break;
        }
        backoff(&spins);
    }
    return NULL;
}

static int ring_create(const bench_adapter *self, const bench_pool_opts *opts, void **out, char *err,
                       size_t errlen)
{
    (void)self;
    size_t cap = 1024;
    while (cap < opts->queue_capacity) {
        cap <<= 1;
    }
    ring *r = aligned_alloc(RING_LINE, sizeof(ring));
    if (!r) {
        snprintf(err, errlen, "ring: out of memory");
        return -1;
    }
    *r = (ring){0};
    r->mask = cap - 1;
    r->mpmc = opts->producers > 1;
    if (r->mpmc) {
        r->cells = calloc(cap, sizeof(ring_cell));
        for (size_t i = 0; r->cells && i < cap; i++) {
            atomic_init(&r->cells[i].seq, i);
        }
    } else {
        r->slots = calloc(cap, sizeof(uint64_t));
    }
    if ((r->mpmc && !r->cells) || (!r->mpmc && !r->slots) ||
        pthread_create(&r->consumer, NULL, ring_consumer, r) != 0) {
        snprintf(err, errlen, "ring: out of memory or pthread_create failed");
        free(r->cells);
        free(r->slots);
        free(r);
        return -1;
    }
    *out = r;
    return 0;
}

static int ring_submit(void *pool, void *producer, uint64_t task)
{
    (void)producer;
    ring *r = pool;
    /* The ring carries the argument pointer as a word (bench_arg_make). */
    void *arg = bench_arg_make(task);
    if (!arg) {
        return BENCH_EFAIL;
    }
    uint64_t idx = (uint64_t)(uintptr_t)arg;
    unsigned spins = 0;
    if (!r->mpmc) {
        uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
        while (t - r->head_cache > r->mask) {
            r->head_cache =
                atomic_load_explicit(&r->head, memory_order_acquire); /* pairs with pop's release */
            if (t - r->head_cache > r->mask) {
                backoff(&spins);
            }
        }
        r->slots[t & r->mask] = idx;
        atomic_store_explicit(&r->tail, t + 1, memory_order_release); /* pairs with pop's acquire */
        return BENCH_OK;
    }
    for (;;) {
        uint64_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
        ring_cell *c = &r->cells[pos & r->mask];
        uint64_t seq = atomic_load_explicit(&c->seq, memory_order_acquire); /* pairs with pop's release */
        if (seq == pos) {
            if (atomic_compare_exchange_weak_explicit(&r->tail, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                c->idx = idx;
                atomic_store_explicit(&c->seq, pos + 1, memory_order_release); /* pairs with pop's acquire */
                return BENCH_OK;
            }
        } else {
            backoff(&spins); /* full (seq < pos) or another producer moved tail (seq > pos) */
        }
    }
}

static void ring_destroy(void *pool)
{
    ring *r = pool;
    atomic_store_explicit(&r->stop, true, memory_order_release);
    pthread_join(r->consumer, NULL);
    free(r->cells);
    free(r->slots);
    free(r);
}

const bench_adapter bench_adapter_ring = {
    .name = "raw-ring",
    .overflow = "reference: bounded lock-free ring (SPSC, or MPMC with several producers), 1 spinning "
                "consumer; full: producer spins",
    .flags = BENCH_F_REF | BENCH_F_NO_IDLE,
    .create = ring_create,
    .submit = ring_submit,
    .destroy = ring_destroy,
};

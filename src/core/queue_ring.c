/*
 * src/core/queue_ring.c - the pool's bounded MPMC FIFO: a ring of slots
 * with per-slot sequence numbers (Dmitry Vyukov's bounded MPMC queue),
 * plus a "closed" bit in the tail so drain can stop producers exactly.
 *
 * Design. `tail` counts pushes that claimed a place and `head` counts pops.
 * Slot i carries a sequence number seq:
 *   seq == pos          the slot is free for the push that claims `pos`
 *   seq == pos + 1      the slot holds the task pushed at `pos`
 *   seq == pos + cap    the pop at `pos` has emptied it for push pos + cap
 * A producer claims `pos` by CAS on tail, writes the task, then publishes
 * it by storing seq = pos + 1 (release). A consumer claims by CAS on head,
 * copies the task out, then frees the slot by storing seq = pos + cap
 * (release). Tasks are copied by value: no allocation per task.
 *
 * Invariants:
 *  1. tail - head <= cap at every moment (a push claims only a slot whose
 *     seq says it was freed).
 *  2. Every claimed position is eventually published (the claim and the
 *     publish are a few instructions apart with nothing that can fail in
 *     between), so a pop that finds a claimed-but-unpublished slot waits
 *     for it instead of reporting EMPTY: pop never reports EMPTY while a
 *     successful push's task is still inside.
 *  3. The closed bit (TAIL_CLOSED) lives in the tail word, so a CAS that
 *     would claim a place fails once it is set: no push can start after
 *     close, and the final tail is exact. Drain waits for head to reach it.
 *  4. tail - head <= limit, the promised capacity: the ring has max(limit,
 *     2) slots, and with limit 1 a push also checks head (the only case
 *     where slots and limit differ).
 *  5. push's CAS on tail and pop's CAS on head are seq_cst, and so are the
 *     reads in `pending` and in the full check; the pool's parking protocol
 *     (worker.c) depends on that (Dekker-style: a parking worker's
 *     increment of `idle` and a producer's claim cannot both be missed).
 *
 * The capacity is exact (the configured queue_capacity); when it is a
 * power of two the slot index is a mask, otherwise a modulo.
 *
 * Slot i stores seq - i, not seq, so a new ring (every seq == i) is all
 * zeros: calloc'ed and never written at create, its pages become resident
 * only as the queue first gets that deep. Initialising the seqs touched
 * the whole ring: a 65,536-slot queue was 4 MiB of RSS at create, which
 * the 1,000-worker rss benchmark counted as 4 KiB per idle worker.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#define TAIL_CLOSED (UINT64_C(1) << 63)

/* A slot stores the task without its `tenant` (FIFO pools have none, and
 * the slot stays 64 bytes); pop hands back tenant = NULL. */
#define RING_TASK_BYTES offsetof(sluice__task, tenant)

typedef struct ring_slot {
    _Atomic uint64_t seq;
    unsigned char task[RING_TASK_BYTES];
} ring_slot;

_Static_assert(sizeof(ring_slot) == 64, "a ring slot is 64 bytes (pool.h, docs/ops.md)");

typedef struct ring {
    SLUICE__ALIGNED _Atomic uint64_t tail; /* pushes claimed | TAIL_CLOSED */
    SLUICE__ALIGNED _Atomic uint64_t head; /* pops claimed */
    SLUICE__ALIGNED uint64_t cap;          /* slots in the ring: max(limit, 2) */
    uint64_t limit;                        /* the queue capacity the pool promised */
    uint64_t mask;                         /* cap - 1 when cap is a power of two, else 0 */
    ring_slot *slots;
} ring;

static inline ring_slot *slot_at(ring *r, uint64_t pos)
{
    return &r->slots[r->mask ? (pos & r->mask) : (pos % r->cap)];
}

/* The slot's seq (stored relative to its index, see the header). */
static inline uint64_t seq_load(const ring *r, ring_slot *s, memory_order mo)
{
    return atomic_load_explicit(&s->seq, mo) + (uint64_t)(s - r->slots);
}

static inline void seq_store(const ring *r, ring_slot *s, uint64_t seq, memory_order mo)
{
    atomic_store_explicit(&s->seq, seq - (uint64_t)(s - r->slots), mo);
}

size_t sluice_pool_queue_bytes(size_t queue_capacity)
{
    if (queue_capacity == 0) {
        return 0;
    }
    size_t slots = queue_capacity < 2 ? 2 : queue_capacity;
    if (slots > (SIZE_MAX - sizeof(ring)) / sizeof(ring_slot)) {
        return SIZE_MAX;
    }
    return sizeof(ring) + slots * sizeof(ring_slot);
}

sluice_err sluice__ring_create(size_t capacity, void **out)
{
    if (capacity == 0 || capacity > (SIZE_MAX / sizeof(ring_slot)) / 2) {
        return SLUICE_EINVAL;
    }
    ring *r = aligned_alloc(SLUICE__CACHELINE, sizeof *r);
    if (!r) {
        return SLUICE_ENOMEM;
    }
    memset(r, 0, sizeof *r);
    /* A one-slot ring cannot tell "published at pos" (seq pos + 1) from
     * "free for pos + 1" (seq pos + cap): give it two slots and enforce the
     * limit of one against head (invariant 4). */
    size_t slots = capacity < 2 ? 2 : capacity;
    r->slots = calloc(slots, sizeof(ring_slot));
    if (!r->slots) {
        free(r);
        return SLUICE_ENOMEM;
    }
    r->cap = slots;
    r->limit = capacity;
    r->mask = (slots & (slots - 1)) == 0 ? slots - 1 : 0;
    /* Every slot's stored seq is 0 (seq == its index): calloc did it. */
    atomic_init(&r->tail, 0);
    atomic_init(&r->head, 0);
    *out = r;
    return SLUICE_OK;
}

static sluice__qres ring_push(void *q, const sluice__task *task, uint64_t *pos_out)
{
    ring *r = q;
    uint64_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (;;) {
        if (pos & TAIL_CLOSED) {
            return SLUICE__Q_CLOSED;
        }
        ring_slot *s = slot_at(r, pos);
        uint64_t seq = seq_load(r, s, memory_order_acquire);
        int64_t diff = (int64_t)(seq - pos);
        if (diff == 0 && r->limit < r->cap &&
            pos - atomic_load_explicit(&r->head, memory_order_seq_cst) >= r->limit) {
            return SLUICE__Q_FULL; /* the one-task queue is taken */
        }
        if (diff == 0) {
            /* Pairs with the seq_cst load of tail in ring_pending(). */
            if (atomic_compare_exchange_weak_explicit(&r->tail, &pos, pos + 1, memory_order_seq_cst,
                                                      memory_order_relaxed)) {
                /* Invariants 1 and 4: head only grows, so a later read
                 * can only make the difference smaller. */
                SLUICE__ASSERT(pos + 1 - atomic_load_explicit(&r->head, memory_order_relaxed) <= r->limit);
                memcpy(s->task, task, RING_TASK_BYTES);
                /* Publish; pairs with the acquire load of seq in ring_pop. */
                seq_store(r, s, pos + 1, memory_order_release);
                if (pos_out) {
                    *pos_out = pos;
                }
                return SLUICE__Q_OK;
            }
            /* pos was reloaded by the failed CAS. */
        } else if (diff < 0) {
            /* The slot still holds the task of pos - cap. If a pop has
             * already claimed it (head moved past), it is being copied
             * out right now: wait for it. Otherwise the queue is full. */
            uint64_t head = atomic_load_explicit(&r->head, memory_order_seq_cst);
            if (pos - head >= r->limit) {
                return SLUICE__Q_FULL;
            }
            sluice__cpu_relax();
            pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
        } else {
            pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
        }
    }
}

static sluice__qres ring_pop(void *q, sluice__task *out)
{
    ring *r = q;
    uint64_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    unsigned spins = 0;
    for (;;) {
        ring_slot *s = slot_at(r, pos);
        uint64_t seq = seq_load(r, s, memory_order_acquire);
        int64_t diff = (int64_t)(seq - (pos + 1));
        if (diff == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->head, &pos, pos + 1, memory_order_seq_cst,
                                                      memory_order_relaxed)) {
                memcpy(out, s->task, RING_TASK_BYTES);
                out->tenant = NULL;
                /* The contract: a pop returns only a pushed task (pushes
                 * refuse a NULL fn), claimed below the tail. */
                SLUICE__ASSERT(out->fn != NULL);
                SLUICE__ASSERT(pos < (atomic_load_explicit(&r->tail, memory_order_relaxed) & ~TAIL_CLOSED));
                /* Free the slot; pairs with the acquire load in ring_push. */
                seq_store(r, s, pos + r->cap, memory_order_release);
                return SLUICE__Q_OK;
            }
        } else if (diff < 0) {
            /* Not published. Empty, unless a push claimed it and is
             * writing right now (invariant 2): then wait for it. */
            uint64_t tail = atomic_load_explicit(&r->tail, memory_order_seq_cst) & ~TAIL_CLOSED;
            if (tail <= pos) {
                return SLUICE__Q_EMPTY;
            }
            if (++spins > 64) {
                /* The producer was preempted between claim and publish. */
                sched_yield();
                spins = 0;
            } else {
                sluice__cpu_relax();
            }
            pos = atomic_load_explicit(&r->head, memory_order_relaxed);
        } else {
            pos = atomic_load_explicit(&r->head, memory_order_relaxed);
        }
    }
}

static void ring_close(void *q)
{
    ring *r = q;
    atomic_fetch_or_explicit(&r->tail, TAIL_CLOSED, memory_order_seq_cst);
}

static bool ring_pending(void *q)
{
    ring *r = q;
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_seq_cst) & ~TAIL_CLOSED;
    uint64_t head = atomic_load_explicit(&r->head, memory_order_seq_cst);
    return tail > head;
}

/* A hint for spinning workers: is the task at head published? Reads the
 * slot the next push writes, never `tail`: a worker polling tail would
 * pull the producers' hottest line away from them on every poll, so every
 * push would pay a cache miss on its CAS. Not a seq_cst read: parking
 * re-checks with ring_pending. */
static bool ring_ready(void *q)
{
    ring *r = q;
    uint64_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    return seq_load(r, slot_at(r, pos), memory_order_relaxed) == pos + 1;
}

static size_t ring_depth(void *q)
{
    ring *r = q;
    /* seq_cst: blocked submitters (pool.c, wait_for_space) and starting
     * workers (worker.c, chain_spawn) read the depth after a seq_cst RMW
     * of their own and pair with the pops and pushes of others. On x86 a
     * seq_cst load is a plain load. */
    uint64_t head = atomic_load_explicit(&r->head, memory_order_seq_cst);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_seq_cst) & ~TAIL_CLOSED;
    return tail > head ? (size_t)(tail - head) : 0;
}

static uint64_t ring_pushed(void *q)
{
    ring *r = q;
    return atomic_load_explicit(&r->tail, memory_order_acquire) & ~TAIL_CLOSED;
}

static size_t ring_capacity(void *q)
{
    return (size_t)((ring *)q)->limit;
}

static void ring_destroy(void *q)
{
    ring *r = q;
    if (r) {
        free(r->slots);
        free(r);
    }
}

const sluice__queue_ops sluice__ring_ops = {
    .push = ring_push,
    .pop = ring_pop,
    .close = ring_close,
    .pending = ring_pending,
    .ready = ring_ready,
    .depth = ring_depth,
    .pushed = ring_pushed,
    .capacity = ring_capacity,
    .destroy = ring_destroy,
};

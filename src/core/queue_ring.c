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
    struct hand *hands; /* fifo_batch only (see "Batch claims" below); NULL for a plain ring */
    unsigned nhands;
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

/* Polls of a slot that a pop has claimed but not emptied, before a push
 * to a ring with batch claims calls the queue full (see ring_push): the
 * bound for a slot no hand was seen to hold (a run between hands, or a
 * copy-out preempted). A slot a hand is seen to hold is full at once. */
#define HELD_SPINS 256u

static bool held_in_hand(const ring *r, uint64_t pos);

static sluice__qres ring_push(void *q, const sluice__task *task, uint64_t *pos_out)
{
    ring *r = q;
    uint64_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    unsigned held_spins = 0;
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
                 * can only make the difference smaller. Written without
                 * the subtraction: with batch claims head may already be
                 * past pos (a claim takes claimed-but-unpublished places
                 * into a hand, and take_slot waits for them). */
                SLUICE__ASSERT(pos + 1 <= atomic_load_explicit(&r->head, memory_order_relaxed) + r->limit);
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
            /* With batch claims the slot may be held in a worker's hand
             * (claimed, not yet taken) for as long as that worker's task
             * runs: full for now, not a copy to wait out. Said at once
             * when a hand is seen holding it: a DROP_OLDEST submitter
             * calls this under the pool's mutex before it evicts that
             * very task, and a blocking one goes on to wait for space. */
            if (r->hands && (held_in_hand(r, pos - r->cap) || ++held_spins > HELD_SPINS)) {
                return SLUICE__Q_FULL;
            }
            sluice__cpu_relax();
            pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
        } else {
            pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
        }
    }
}

/* Pushes the longest prefix of tasks[0..n) that fits, claiming its places
 * with ONE CAS on tail (sluice_pool_submit_batch): the producers' hottest
 * line is taken once per run instead of once per task. The places claimed
 * are those whose slots are free now (seq == their position): a free slot
 * stays free for its position until tail passes it, and only this CAS can
 * move tail past it, so the run is exactly as safe as n single claims
 * (invariants 1 and 4; a held slot of fifo_batch is not free and ends the
 * run). Each task is published as soon as it is copied, so a pop waits at
 * most one copy for it (invariant 2). Returns how many were pushed; when
 * fewer than n, *why says why the next one was not: CLOSED, or FULL when
 * its slot was not free at the look (the queue may be full, or a pop may
 * be copying out of it: the caller goes on with single pushes, which
 * know how to wait out a copy or call it full). A one-task queue (limit <
 * slots) goes through ring_push, and so does the first task after three
 * lost CASes (bounded progress against other producers). */
static size_t ring_push_n(void *q, const sluice__task *tasks, size_t n, sluice__qres *why)
{
    ring *r = q;
    *why = SLUICE__Q_OK;
    if (n == 0) {
        return 0;
    }
    if (r->limit < r->cap || n == 1) {
        sluice__qres res = ring_push(q, &tasks[0], NULL);
        *why = res == SLUICE__Q_OK && n > 1 ? SLUICE__Q_FULL : res;
        return res == SLUICE__Q_OK;
    }
    uint64_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (unsigned tries = 0;; tries++) {
        if (pos & TAIL_CLOSED) {
            *why = SLUICE__Q_CLOSED;
            return 0;
        }
        size_t m = 0;
        uint64_t lim = n < r->cap ? n : r->cap;
        /* After a few lost CASes (other producers keep moving tail while
         * this one scans), one task the single way: progress is bounded. */
        while (tries < 3 && m < lim && seq_load(r, slot_at(r, pos + m), memory_order_acquire) == pos + m) {
            m++;
        }
        if (m == 0 && tries < 3) {
            if ((int64_t)(seq_load(r, slot_at(r, pos), memory_order_acquire) - pos) > 0) {
                /* Another producer claimed pos since tail was read. */
                pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
                continue;
            }
            /* The first place is not free: full, a copy out in flight, or
             * (fifo_batch) held in a hand. The caller's single push
             * decides which, waiting once, not here and again there. */
            *why = SLUICE__Q_FULL;
            return 0;
        }
        if (m == 0) {
            /* Contended: one task the single way. */
            sluice__qres res = ring_push(q, &tasks[0], NULL);
            *why = res == SLUICE__Q_OK ? SLUICE__Q_FULL : res;
            return res == SLUICE__Q_OK;
        }
        /* Pairs with the seq_cst load of tail in ring_pending(), as a
         * single push's CAS does. */
        if (atomic_compare_exchange_weak_explicit(&r->tail, &pos, pos + m, memory_order_seq_cst,
                                                  memory_order_relaxed)) {
            SLUICE__ASSERT(pos + m <= atomic_load_explicit(&r->head, memory_order_relaxed) + r->limit);
            for (size_t i = 0; i < m; i++) {
                ring_slot *s = slot_at(r, pos + i);
                memcpy(s->task, &tasks[i], RING_TASK_BYTES);
                seq_store(r, s, pos + i + 1, memory_order_release);
            }
            if (m < n) {
                *why = SLUICE__Q_FULL;
            }
            return m;
        }
        /* pos was reloaded by the failed CAS. */
    }
}

static sluice__qres ring_pop(void *q, sluice__task *out)
{
    ring *r = q;
    /* acquire (a plain load on x86): with batch claims, a pop that finds
     * the ring empty then looks for the claimed run in the hands, which
     * the claimer reserved before its head CAS (queue_ring.c, "Batch
     * claims"); seeing the CAS's head must let it see the reservation. */
    uint64_t pos = atomic_load_explicit(&r->head, memory_order_acquire);
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
            pos = atomic_load_explicit(&r->head, memory_order_acquire);
        } else {
            pos = atomic_load_explicit(&r->head, memory_order_acquire);
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
    /* A reader that stalls between the two loads sees a tail from later
     * than its head and would report more than the ring ever held (seen:
     * 271 queued at capacity 256, a queue_depth_hwm of 761 at 64, by
     * core_fifo_batch's sampler on a plain FIFO pool). The ring never holds
     * more than its limit (invariant 4): the snapshot is capped there. */
    uint64_t d = tail > head ? tail - head : 0;
    return (size_t)(d > r->limit ? r->limit : d);
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
        free(r->hands);
        free(r->slots);
        free(r);
    }
}

const sluice__queue_ops sluice__ring_ops = {
    .push = ring_push,
    .push_n = ring_push_n,
    .pop = ring_pop,
    .close = ring_close,
    .pending = ring_pending,
    .ready = ring_ready,
    .depth = ring_depth,
    .pushed = ring_pushed,
    .capacity = ring_capacity,
    .destroy = ring_destroy,
};

/* ---- Batch claims: queue_discipline fifo_batch ---------------------------
 *
 * Why. Every pop of the plain ring starts with a CAS on `head`, the line the
 * previous pop (on another core) just wrote: one cache miss per task before
 * the task is read (docs/RATIONALE.md). Here a worker that finds the queue
 * deep claims a run of n tasks (4..32, at most a quarter of what is queued)
 * with ONE CAS on head and takes them one by one from its *hand*, a word on
 * a line of its own: one head miss per run instead of per task.
 *
 * A hand is one 64-bit word: the position of the oldest task it holds (high
 * 56 bits) and how many it holds (low 8 bits; 0 = empty). HAND_RESERVED
 * (count bits all ones) marks a hand whose claimer is between its CAS on
 * head and storing the run. Hands: min(K at create, 16); a worker's home
 * hand is its slot index modulo that, so with more workers than hands some
 * share one (correct, only less spread).
 *
 * The three guarantees that removed the first attempt (RATIONALE.md), and
 * how they hold here:
 *  1. Claimed tasks stay queued and counted. A claimed task stays in its
 *     ring slot until it is taken (copied out and the slot freed) just
 *     before it runs, so a held task still occupies its slot: the ring
 *     never holds more than queue_capacity tasks, and `depth` is what the
 *     ring holds below head plus every hand's count. (A push that meets a
 *     held slot reports FULL rather than wait for it: while a run is held,
 *     the queue can report full with up to that many places free further
 *     on; docs/RATIONALE.md.)
 *  2. A drain hands them back. Drain, destroy and DROP_OLDEST take tasks
 *     with `evict` (batch_evict): the oldest queued task, the lowest
 *     position at the front of a hand, else the ring's head, waiting out a
 *     RESERVED hand (a few instructions of the claimer's, no user code) and
 *     looking at the hands again after the ring is found empty, so drain's
 *     hand-back takes every claimed task: none is stranded in a hand.
 *  3. A held task does not wait behind a long one. Any worker may take from
 *     any hand (one CAS on the hand word, so each task is taken once). A
 *     worker whose own hand is empty looks at the other hands before it
 *     claims: a hand unchanged since that worker last looked (its owner has
 *     not taken a task meanwhile: it is running a long one, or is stopped)
 *     is taken over whole. A worker that finds the ring empty takes from
 *     any hand. And a claimer that leaves tasks in its hand wakes a parked
 *     worker if one is parked and none spins, and, with none parked,
 *     starts one if fewer than K exist, as a push would (after_hide). So a
 *     held task waits at most for another worker to finish the run it
 *     holds.
 *  4. Held tasks are seen by starting workers. A worker starting in a burst
 *     starts the next one only if it sees work for it (worker.c,
 *     chain_spawn, pairing with the submitters' read of `starting`). It
 *     reads the depth, hands included: with the ring's fill alone, a burst
 *     of 20 blocking tasks into a K = 20 pool started 16 workers, and the
 *     4 tasks a claimer held waited behind its long task with K not
 *     reached (core_contracts_fifo_batch). The claimer closes the other
 *     side: its seq_cst store of the run is followed by after_hide's read
 *     of `starting`, so a starting worker whose depth read saw the hand
 *     still RESERVED (run not counted) is seen by the claimer as started,
 *     and the claimer starts the next worker itself.
 *
 * What it gives up: FIFO order is kept within a run, and across the pool up
 * to the runs in hands (a task in one worker's hand can start after newer
 * ones another worker claimed); adaptive LIFO (needs pop_newest) is refused
 * at create, as for sharded.
 *
 * Parking (worker.c): `pending` reads head, tail and every hand seq_cst; a
 * claim is a seq_cst CAS on head followed by a seq_cst store of the hand,
 * after which the claimer reads `idle` (sluice__after_claim). A parking
 * worker that missed the run in the hand is therefore seen by the claimer,
 * which wakes it; a RESERVED hand counts as pending.
 *
 * Positions above 2^56 (at 10^8 tasks a second, 22 years of pushes) are not
 * claimed: pops go one by one, as in the plain ring.
 */

#define HANDS_MAX 16u
#define CLAIM_MIN 4u
#define CLAIM_MAX 32u
#define HAND_COUNT(w) ((unsigned)((w)&0xffu))
#define HAND_POS(w) ((w) >> 8)
#define HAND_WORD(pos, n) (((pos) << 8) | (uint64_t)(n))
#define HAND_RESERVED UINT64_C(0xff)
#define HAND_POS_LIMIT (UINT64_C(1) << 56)

typedef struct hand {
    SLUICE__ALIGNED _Atomic uint64_t word;
} hand;

_Static_assert(sizeof(hand) == SLUICE__CACHELINE, "a hand is one cache line");
_Static_assert(CLAIM_MAX < 0xffu, "a hand's count fits below HAND_RESERVED");

/* Per thread: the hands as this thread last saw them (the staleness test of
 * guarantee 3), for the one batch ring it last popped. */
static SLUICE__TLS const ring *tls_seen_ring;
static SLUICE__TLS uint64_t tls_seen[HANDS_MAX];

static inline bool hand_holds(uint64_t w)
{
    return w != 0 && w != HAND_RESERVED;
}

/* Whether some hand holds the task at `pos` (claimed, not yet taken): a
 * snapshot read hand by hand, so "no" can be wrong while a run moves
 * between hands; ring_push bounds its wait for that case. */
static bool held_in_hand(const ring *r, uint64_t pos)
{
    for (unsigned i = 0; i < r->nhands; i++) {
        uint64_t w = atomic_load_explicit(&r->hands[i].word, memory_order_acquire);
        if (hand_holds(w) && pos >= HAND_POS(w) && pos - HAND_POS(w) < HAND_COUNT(w)) {
            return true;
        }
    }
    return false;
}

sluice_err sluice__ring_batch_create(size_t capacity, unsigned workers, void **out)
{
    sluice_err err = sluice__ring_create(capacity, out);
    if (err) {
        return err;
    }
    ring *r = *out;
    unsigned n = workers ? workers : 1;
    r->nhands = n > HANDS_MAX ? HANDS_MAX : n;
    r->hands = aligned_alloc(SLUICE__CACHELINE, r->nhands * sizeof(hand));
    if (!r->hands) {
        ring_destroy(r);
        *out = NULL;
        return SLUICE_ENOMEM;
    }
    for (unsigned i = 0; i < r->nhands; i++) {
        atomic_init(&r->hands[i].word, 0);
    }
    return SLUICE_OK;
}

/* Copies out the task at `pos`, which this thread has taken (claimed below
 * tail, so its push has claimed the place and publishes it within a few
 * instructions: invariant 2), and frees its slot. */
static void take_slot(ring *r, uint64_t pos, sluice__task *out)
{
    ring_slot *s = slot_at(r, pos);
    unsigned spins = 0;
    while (seq_load(r, s, memory_order_acquire) != pos + 1) {
        if (++spins > 64) {
            sched_yield(); /* the producer was preempted between claim and publish */
            spins = 0;
        } else {
            sluice__cpu_relax();
        }
    }
    memcpy(out, s->task, RING_TASK_BYTES);
    out->tenant = NULL;
    SLUICE__ASSERT(out->fn != NULL);
    seq_store(r, s, pos + r->cap, memory_order_release);
}

/* Takes the oldest task of hand h: true with its position in *pos. */
static bool hand_take(hand *h, uint64_t *pos)
{
    uint64_t w = atomic_load_explicit(&h->word, memory_order_acquire);
    while (hand_holds(w)) {
        unsigned n = HAND_COUNT(w);
        uint64_t next = n > 1 ? HAND_WORD(HAND_POS(w) + 1, n - 1) : 0;
        if (atomic_compare_exchange_weak_explicit(&h->word, &w, next, memory_order_seq_cst,
                                                  memory_order_acquire)) {
            *pos = HAND_POS(w);
            return true;
        }
    }
    return false;
}

/* The home hand of the calling thread, or -1 when it is not one of this
 * queue's pool's workers between tasks (drain, destroy, an evicting
 * submitter, a task calling into its own pool): only a worker's loop
 * claims runs. */
static int home_of(ring *r)
{
    const sluice__run *run = sluice__tls_worker;
    if (!run || run->pool->q != (void *)r || sluice__tls_frame) {
        return -1;
    }
    return (int)(run->slot->index % r->nhands);
}

/* Takes the oldest task of the first hand that holds one. With `wait`, a
 * RESERVED hand is waited out (its claimer stores the run within a few
 * instructions), so no task moving from the ring to a hand is missed. */
static bool take_any(ring *r, sluice__task *out, bool wait)
{
    for (unsigned i = 0; i < r->nhands; i++) {
        uint64_t pos;
        for (;;) {
            if (hand_take(&r->hands[i], &pos)) {
                take_slot(r, pos, out);
                return true;
            }
            /* Decide from a fresh load: the claimer may have stored its
             * run since hand_take saw RESERVED (then take again). */
            uint64_t w = atomic_load_explicit(&r->hands[i].word, memory_order_acquire);
            if (hand_holds(w)) {
                continue;
            }
            if (!wait || w != HAND_RESERVED) {
                break;
            }
            sched_yield();
        }
    }
    return false;
}

/* Guarantees 3 and 4: the calling worker has just stored a run of tasks
 * into a hand (a claim, a take-over) and goes on to run one of them. Wake
 * a parked worker for the rest if none spins (sluice__after_claim); with
 * none parked, start one if fewer than K exist, as a push would
 * (sluice__spawn_for_work reads `starting` seq_cst, after the seq_cst
 * store of the hand). At K, two more loads per run. */
static void after_hide(struct sluice_pool *p)
{
    sluice__after_claim(p);
    if (atomic_load_explicit(&p->idle, memory_order_seq_cst) == 0) {
        sluice__spawn_for_work(p, 1);
    }
}

/* Guarantee 3: a hand that has not changed since this thread last looked
 * is taken over whole into this thread's empty home hand (or, if that
 * cannot be reserved, its oldest task is taken). */
static bool take_stale(ring *r, unsigned home, sluice__task *out)
{
    if (tls_seen_ring != r) {
        tls_seen_ring = r;
        memset(tls_seen, 0, sizeof tls_seen);
    }
    for (unsigned i = 0; i < r->nhands; i++) {
        if (i == home) {
            continue;
        }
        uint64_t w = atomic_load_explicit(&r->hands[i].word, memory_order_acquire);
        if (!hand_holds(w) || w != tls_seen[i]) {
            tls_seen[i] = w;
            continue;
        }
        tls_seen[i] = 0;
        hand *mine = &r->hands[home];
        uint64_t zero = 0;
        if (atomic_compare_exchange_strong_explicit(&mine->word, &zero, HAND_RESERVED, memory_order_seq_cst,
                                                    memory_order_relaxed)) {
            if (atomic_compare_exchange_strong_explicit(&r->hands[i].word, &w, 0, memory_order_seq_cst,
                                                        memory_order_relaxed)) {
                unsigned n = HAND_COUNT(w);
                atomic_store_explicit(&mine->word, n > 1 ? HAND_WORD(HAND_POS(w) + 1, n - 1) : 0,
                                      memory_order_seq_cst);
                take_slot(r, HAND_POS(w), out);
                /* The run was in no hand for a moment: a worker that
                 * parked meanwhile is woken, as after a claim. */
                if (n > 1) {
                    after_hide(sluice__tls_worker->pool);
                }
                return true;
            }
            atomic_store_explicit(&mine->word, 0, memory_order_seq_cst);
        }
        uint64_t pos;
        if (hand_take(&r->hands[i], &pos)) {
            take_slot(r, pos, out);
            return true;
        }
    }
    return false;
}

/* Pops after a look that found the queue too shallow to claim, before the
 * next look (SLUICE__BATCH_SHALLOW_SKIP, internal.h). */
static SLUICE__TLS unsigned tls_shallow_skip;

/* Claims a run into the empty home hand h when the ring is deep, else pops
 * one task as the plain ring does. */

static sluice__qres claim_or_pop(ring *r, hand *h, sluice__task *out)
{
    if (tls_shallow_skip > 0) {
        tls_shallow_skip--;
        return ring_pop(r, out);
    }
    uint64_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed) & ~TAIL_CLOSED;
    uint64_t quarter = tail > pos ? (tail - pos) / 4 : 0;
    unsigned n = quarter > CLAIM_MAX ? CLAIM_MAX : (unsigned)quarter;
    uint64_t zero = 0;
    if (n >= CLAIM_MIN && pos + n < HAND_POS_LIMIT &&
        atomic_compare_exchange_strong_explicit(&h->word, &zero, HAND_RESERVED, memory_order_seq_cst,
                                                memory_order_relaxed)) {
        if (atomic_compare_exchange_strong_explicit(&r->head, &pos, pos + n, memory_order_seq_cst,
                                                    memory_order_relaxed)) {
            /* Every claimed position is below the tail read above (tail
             * only grows), so each is published or about to be. */
            SLUICE__ASSERT(pos + n <= tail);
            atomic_store_explicit(&h->word, HAND_WORD(pos + 1, n - 1), memory_order_seq_cst);
            take_slot(r, pos, out);
            after_hide(sluice__tls_worker->pool); /* n >= CLAIM_MIN: the rest is in the hand */
            return SLUICE__Q_OK;
        }
        atomic_store_explicit(&h->word, 0, memory_order_seq_cst);
    } else if (n < CLAIM_MIN) {
        tls_shallow_skip = SLUICE__BATCH_SHALLOW_SKIP;
    }
    return ring_pop(r, out);
}

static sluice__qres batch_pop(void *q, sluice__task *out)
{
    ring *r = q;
    int home = home_of(r);
    if (home >= 0) {
        uint64_t pos;
        if (hand_take(&r->hands[home], &pos)) {
            take_slot(r, pos, out);
            return SLUICE__Q_OK;
        }
        if (r->nhands > 1 && take_stale(r, (unsigned)home, out)) {
            return SLUICE__Q_OK;
        }
        if (claim_or_pop(r, &r->hands[home], out) == SLUICE__Q_OK) {
            return SLUICE__Q_OK;
        }
        /* The ring is empty: help with any hand. A RESERVED one is not
         * waited for: it counts as pending, so this worker looks again
         * rather than park. */
        return take_any(r, out, false) ? SLUICE__Q_OK : SLUICE__Q_EMPTY;
    }
    /* Not a worker between tasks: the held tasks first (they are older),
     * then the ring, then the hands again, waiting out a claim in flight:
     * a run claimed before the ring was found empty is in a hand by then. */
    if (take_any(r, out, false) || ring_pop(r, out) == SLUICE__Q_OK || take_any(r, out, true)) {
        return SLUICE__Q_OK;
    }
    return SLUICE__Q_EMPTY;
}

/* The oldest queued task (drain, destroy and DROP_OLDEST come here; the
 * pool prefers evict to pop). Every held position is below head, so the
 * oldest is the lowest position at the front of a hand, else the ring's
 * head. A RESERVED hand is waited out: it may be a run being taken over,
 * which is in no hand for a moment and may be the oldest. Taking exactly
 * the oldest matters for DROP_OLDEST: a push that meets a held slot needs
 * that slot, which holds the oldest position still in the ring's slots;
 * evicting a newer task would free a slot the push cannot use, and the
 * submitter would evict again (measured by review: 12 tasks dropped for
 * one submit, with first-hand-first). */
static sluice__qres batch_evict(void *q, const sluice__task *incoming, sluice__task *out)
{
    (void)incoming;
    ring *r = q;
    bool ring_empty = false;
    for (;;) {
        int best = -1;
        uint64_t best_w = 0;
        bool reserved = false;
        for (unsigned i = 0; i < r->nhands; i++) {
            uint64_t w = atomic_load_explicit(&r->hands[i].word, memory_order_acquire);
            if (hand_holds(w) && (best < 0 || HAND_POS(w) < HAND_POS(best_w))) {
                best = (int)i;
                best_w = w;
            }
            reserved |= w == HAND_RESERVED;
        }
        if (reserved) {
            sched_yield();
            continue;
        }
        if (best >= 0) {
            unsigned n = HAND_COUNT(best_w);
            uint64_t next = n > 1 ? HAND_WORD(HAND_POS(best_w) + 1, n - 1) : 0;
            if (atomic_compare_exchange_strong_explicit(&r->hands[best].word, &best_w, next,
                                                        memory_order_seq_cst, memory_order_relaxed)) {
                take_slot(r, HAND_POS(best_w), out);
                return SLUICE__Q_OK;
            }
            continue;
        }
        if (ring_empty) {
            return SLUICE__Q_EMPTY; /* the ring was empty, and then no hand held or was filling */
        }
        if (ring_pop(r, out) == SLUICE__Q_OK) {
            return SLUICE__Q_OK;
        }
        ring_empty = true; /* a run claimed before that may be in a hand now: look once more */
    }
}

/* Tasks held in hands (a RESERVED hand counts as one: it is about to hold
 * some, and `pending` must not miss it). */
static uint64_t held(ring *r, memory_order mo, bool reserved_counts)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < r->nhands; i++) {
        uint64_t w = atomic_load_explicit(&r->hands[i].word, mo);
        n += hand_holds(w) ? HAND_COUNT(w) : (w == HAND_RESERVED && reserved_counts);
    }
    return n;
}

static bool batch_pending(void *q)
{
    return ring_pending(q) || held(q, memory_order_seq_cst, true) > 0;
}

static bool batch_ready(void *q)
{
    return ring_ready(q) || held(q, memory_order_relaxed, true) > 0;
}

/* depth and fill are snapshots summed from reads made one after another:
 * a reader that stalls between its loads of head and tail (ring_depth), or
 * between the ring and the hands while a claim moves a run from one to the
 * other, adds counts from different moments and can report more than the
 * queue ever held (core_fifo_batch's sampler saw 415 queued in a 256-place
 * queue, and a queue_depth_hwm of 31,068 at capacity 64, from the fill the
 * submit path records). The queue never holds more than its limit
 * (guarantee 1), so the snapshot is capped there. */
static size_t cap_at_limit(const ring *r, size_t n)
{
    return n > r->limit ? (size_t)r->limit : n;
}

static size_t batch_depth(void *q)
{
    return cap_at_limit(q, ring_depth(q) + (size_t)held(q, memory_order_seq_cst, false));
}

static size_t batch_fill(void *q)
{
    return cap_at_limit(q, ring_depth(q));
}

const sluice__queue_ops sluice__ring_batch_ops = {
    .push = ring_push,
    .push_n = ring_push_n,
    .pop = batch_pop,
    .close = ring_close,
    .pending = batch_pending,
    .ready = batch_ready,
    .evict = batch_evict,
    .depth = batch_depth,
    .fill = batch_fill,
    .pushed = ring_pushed,
    .capacity = ring_capacity,
    .destroy = ring_destroy,
};

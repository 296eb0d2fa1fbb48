/*
 * src/core/queue_sharded.c - the `sharded` queue discipline: one bounded
 * ring (queue_ring.c) per shard, pushes spread over the shards, each
 * worker pops from its home shard first and steals from the others when
 * that one is empty.
 *
 * Why. With one ring every pop starts with the same head line, which the
 * previous pop moved to another core: one cache miss per task before the
 * task is even read (docs/RATIONALE.md, "Spreading the head"). Here a
 * producer sends consecutive tasks to consecutive shards and each worker
 * has a home shard, so with one worker per shard the heads stay in their
 * workers' caches. This is the shape of Go's and Tokio's schedulers (a
 * run queue per worker, stealing when it is empty), kept bounded.
 *
 * Pushes go to one shard in runs of PUSH_RUN (below), then the next.
 *
 * What it gives up. FIFO order holds within a shard, not across the pool:
 * a task may start before one submitted just before it to another shard.
 * DROP_OLDEST evicts the oldest task of one shard, not of the pool: the
 * shard each eviction starts from rotates, so evictions spread over the
 * shards as evenly as the pushes that filled them did, and while every
 * shard still holds tasks older than any pushed since the queue filled,
 * only those older tasks go (core_sharded tests this). Adaptive
 * LIFO (overload: lifo, codel_lifo) needs pop_newest, which this queue
 * does not offer: pool create refuses that combination. Everything else
 * the pool promises holds:
 *  - The capacity is exact: the shards' limits add up to queue_capacity
 *    (each gets capacity / n, the first capacity % n one more), and a push
 *    that finds its shard full tries every other shard before FULL, so
 *    FULL means every shard was full when the push looked at it.
 *  - depth and pushed are the sums over the shards (a snapshot while
 *    pushes and pops run, exact when none is), so queue_depth stays one
 *    number and counts every queued task: no task is claimed by a worker
 *    ahead of running it, so none can be stranded behind a long task.
 *  - pop tries every shard before EMPTY, so it never reports EMPTY while a
 *    task whose push returned OK before the pop began is still queued
 *    (each ring waits for a push in flight; queue_ring.c invariant 2).
 *    Drain and destroy hand back every task through pop, as with the ring.
 *  - No task waits while a worker is idle: a worker whose home shard is
 *    empty steals from the others before it parks, and a parking worker's
 *    last check (`pending`) reads every shard.
 *  - close closes every shard; a push that claimed a place in a ring
 *    before that ring closed completes (and the drain, which closes the
 *    queue before it waits, sees it), later ones get CLOSED at once.
 *  - The parking protocol (worker.c) needs push to be a seq_cst RMW and
 *    `pending` a seq_cst read of what it pairs with: a push is one ring's
 *    seq_cst CAS on its tail, and pending reads every ring's tail and head
 *    seq_cst, so the Dekker argument holds shard by shard.
 *
 * Shards: min(K, the CPUs the creating thread may use, 16, capacity), at
 * least 1, fixed at create.
 * More shards than CPUs only lengthens the scans. Resize changes K, not
 * the shards: workers past the shard count share homes, and with fewer
 * workers than shards the homeless shards are served by stealing. Homes
 * are handed out round robin to the threads that pop (workers, and the
 * rare drain or DROP_OLDEST submitter), so the producers do not skew them.
 *
 * Per-thread state: a one-entry thread-local cache (which queue, the
 * shard this thread pushes to and how much of its run is left, the home
 * shard). A thread alternating between two
 * sharded pools re-binds at each switch: correct, only a little slower. A
 * new queue may reuse a destroyed one's address, so cached indices are
 * clamped to the shard count before use.
 *
 * Locks: none. The rings are the only shared state besides the two
 * round-robin counters (relaxed: they only spread threads out).
 */
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"

#define SHARDS_MAX 16

typedef struct sharded {
    unsigned n;                  /* shards, 1..SHARDS_MAX */
    size_t limit;                /* the promised capacity: the sum of the shards' */
    _Atomic unsigned next_home;  /* hands out home shards to popping threads, round robin */
    _Atomic unsigned next_start; /* spreads the pushing threads' first shards */
    _Atomic unsigned next_evict; /* the shard the next eviction starts from */
    void *ring[SHARDS_MAX];
} sharded;

/* One entry per thread (see the header). Written only by its own thread. */
static SLUICE__TLS const sharded *tls_q;
static SLUICE__TLS unsigned tls_push_next;
static SLUICE__TLS unsigned tls_push_left; /* pushes left in this run to tls_push_next */

/* A pushing thread sends runs of PUSH_RUN consecutive tasks to one shard
 * before it moves to the next. Task by task, a producer's consecutive
 * allocations (task arguments it malloc'ed) went to alternate workers,
 * which then freed neighbouring chunks on different CPUs: the noop-malloc
 * workload cost 370 CPU ns a task against 279 with runs of 32 (and the
 * no-op one 107 against 90), in one run on the 2-vCPU VM
 * (docs/performance.md). A run is short next to any queue deep enough to
 * matter, and idle workers steal what their home shard lacks. */
#define PUSH_RUN 32u
static SLUICE__TLS unsigned tls_home; /* UINT_MAX until this thread first pops */

static inline void tls_bind(sharded *s)
{
    if (tls_q != s) {
        tls_q = s;
        tls_push_next = atomic_fetch_add_explicit(&s->next_start, 1, memory_order_relaxed) % s->n;
        tls_push_left = 0;
        tls_home = UINT_MAX;
    }
}

static inline unsigned home_of(sharded *s)
{
    tls_bind(s);
    if (tls_home >= s->n) {
        tls_home = atomic_fetch_add_explicit(&s->next_home, 1, memory_order_relaxed) % s->n;
    }
    return tls_home;
}

unsigned sluice__sharded_shards_for(size_t capacity, unsigned workers)
{
    /* The CPUs this thread may run on (taskset, cpusets), else the online
     * ones. Not sluice_cpu_count: its cgroup quota reading opens files,
     * which the core never does; K, the first bound, usually carries it. */
    long cpus = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        cpus = CPU_COUNT(&set);
    }
    if (cpus <= 0) {
        cpus = sysconf(_SC_NPROCESSORS_ONLN);
    }
    unsigned n = workers ? workers : 1;
    if (cpus > 0 && (unsigned long)cpus < n) {
        n = (unsigned)cpus;
    }
    if (n > SHARDS_MAX) {
        n = SHARDS_MAX;
    }
    if (capacity < n) {
        n = capacity ? (unsigned)capacity : 1;
    }
    return n;
}

static void sharded_destroy(void *q);

sluice_err sluice__sharded_create(size_t capacity, unsigned shards, void **out)
{
    if (capacity == 0 || shards == 0 || shards > SHARDS_MAX || shards > capacity) {
        return SLUICE_EINVAL;
    }
    sharded *s = calloc(1, sizeof *s);
    if (!s) {
        return SLUICE_ENOMEM;
    }
    s->n = shards;
    s->limit = capacity;
    atomic_init(&s->next_home, 0);
    atomic_init(&s->next_start, 0);
    atomic_init(&s->next_evict, 0);
    for (unsigned i = 0; i < shards; i++) {
        size_t part = capacity / shards + (i < capacity % shards ? 1 : 0);
        sluice_err e = sluice__ring_create(part, &s->ring[i]);
        if (e != SLUICE_OK) {
            sharded_destroy(s); /* destroys the rings made so far (the rest are NULL) */
            return e;
        }
    }
    *out = s;
    return SLUICE_OK;
}

static sluice__qres sharded_push(void *q, const sluice__task *task, uint64_t *pos_out)
{
    sharded *s = q;
    tls_bind(s);
    unsigned start = tls_push_next < s->n ? tls_push_next : 0; /* round robin, no division */
    if (tls_push_left == 0) {
        tls_push_left = PUSH_RUN;
    }
    if (--tls_push_left == 0) {
        tls_push_next = start + 1 < s->n ? start + 1 : 0;
    }
    for (unsigned i = 0; i < s->n; i++) {
        unsigned j = start + i < s->n ? start + i : start + i - s->n;
        sluice__qres r = sluice__ring_ops.push(s->ring[j], task, pos_out);
        if (r != SLUICE__Q_FULL) {
            return r; /* OK, or CLOSED: the pool closes every shard together */
        }
    }
    return SLUICE__Q_FULL;
}

static sluice__qres sharded_pop(void *q, sluice__task *out)
{
    sharded *s = q;
    unsigned home = home_of(s);
    for (unsigned i = 0; i < s->n; i++) {
        unsigned j = home + i < s->n ? home + i : home + i - s->n;
        if (sluice__ring_ops.pop(s->ring[j], out) == SLUICE__Q_OK) {
            return SLUICE__Q_OK;
        }
    }
    return SLUICE__Q_EMPTY;
}

/* DROP_OLDEST (incoming set; the pool holds its mutex) and drain or
 * destroy (incoming NULL): any queued task, from a rotating first shard. */
static sluice__qres sharded_evict(void *q, const sluice__task *incoming, sluice__task *out)
{
    (void)incoming;
    sharded *s = q;
    unsigned start = atomic_fetch_add_explicit(&s->next_evict, 1, memory_order_relaxed) % s->n;
    for (unsigned i = 0; i < s->n; i++) {
        unsigned j = start + i < s->n ? start + i : start + i - s->n;
        if (sluice__ring_ops.pop(s->ring[j], out) == SLUICE__Q_OK) {
            return SLUICE__Q_OK;
        }
    }
    return SLUICE__Q_EMPTY;
}

static void sharded_close(void *q)
{
    sharded *s = q;
    for (unsigned i = 0; i < s->n; i++) {
        sluice__ring_ops.close(s->ring[i]);
    }
}

static bool sharded_pending(void *q)
{
    sharded *s = q;
    for (unsigned i = 0; i < s->n; i++) {
        if (sluice__ring_ops.pending(s->ring[i])) {
            return true;
        }
    }
    return false;
}

/* The spinning worker's hint: its home shard first, then the others. */
static bool sharded_ready(void *q)
{
    sharded *s = q;
    unsigned home = home_of(s);
    for (unsigned i = 0; i < s->n; i++) {
        unsigned j = home + i < s->n ? home + i : home + i - s->n;
        if (sluice__ring_ops.ready(s->ring[j])) {
            return true;
        }
    }
    return false;
}

static size_t sharded_depth(void *q)
{
    sharded *s = q;
    size_t d = 0;
    for (unsigned i = 0; i < s->n; i++) {
        d += sluice__ring_ops.depth(s->ring[i]);
    }
    return d;
}

static uint64_t sharded_pushed(void *q)
{
    sharded *s = q;
    uint64_t n = 0;
    for (unsigned i = 0; i < s->n; i++) {
        n += sluice__ring_ops.pushed(s->ring[i]);
    }
    return n;
}

static size_t sharded_capacity(void *q)
{
    return ((sharded *)q)->limit;
}

static void sharded_destroy(void *q)
{
    sharded *s = q;
    if (!s) {
        return;
    }
    for (unsigned i = 0; i < s->n; i++) {
        if (s->ring[i]) {
            sluice__ring_ops.destroy(s->ring[i]);
        }
    }
    free(s);
}

const sluice__queue_ops sluice__sharded_ops = {
    .push = sharded_push,
    .pop = sharded_pop,
    .close = sharded_close,
    .pending = sharded_pending,
    .ready = sharded_ready,
    .depth = sharded_depth,
    .pushed = sharded_pushed,
    .capacity = sharded_capacity,
    .destroy = sharded_destroy,
    .evict = sharded_evict,
};

/*
 * src/sync/keyed.c - the keyed serial executor (see sluice/keyed.h).
 *
 * Purpose. Per key, run tasks one at a time in submission order; across
 * keys, run in parallel up to K; on a pool the caller already has, without
 * ever parking a worker on a busy key.
 *
 * Design.
 *  - State, all under ex->mu: a chained hash table of `kstate`s (one per
 *    key with a task waiting or running; a key with neither is removed and
 *    its kstate recycled), each with a singly linked FIFO of `kitem`s; a
 *    FIFO of READY keys (waiting tasks, none running); and a global FIFO
 *    of every waiting item in submission order (doubly linked), which is
 *    how DROP_OLDEST finds the oldest task overall. The oldest item overall
 *    is always the head of its own key's FIFO (both FIFOs are in
 *    submission order), so eviction only ever pops key heads.
 *  - Runners. A runner is one pool task that loops: pop a ready key, mark
 *    it running, take up to SLUICE_KEYED_RUN_BATCH of its items, drop the
 *    lock, run them in order, retake the lock, and either re-queue the key
 *    at the TAIL of the ready FIFO (more arrived: fairness between keys)
 *    or forget it. When the ready FIFO is empty the runner returns to the
 *    pool. At most K runners exist (ex->runners), so at most K keys run.
 *    A submit that leaves a ready key behind while fewer than K runners
 *    exist starts one (the count is taken under the lock; the pool submit
 *    happens after it is dropped).
 *  - Why a key is never lost: a runner exits only after seeing the ready
 *    FIFO empty under the lock, and every transition that makes a key
 *    ready (submit, a runner re-queueing, a panic putting items back)
 *    either happens in a runner (which will loop to it) or is followed,
 *    under the same lock hold, by the "fewer than K runners?" check. The
 *    gaps are a runner the pool refuses and one it hands back. A submit
 *    whose runner is refused, with no runner left for its task, takes the
 *    task back and returns the pool's error; keys still ready after a
 *    refusal (a submit's, a panic's replacement) get a restart from the
 *    timer, as below. A runner the pool hands back
 *    (its on_abandon, runner_abandoned) must not be replaced from there:
 *    the pool's contract forbids calling the pool from on_abandon (a
 *    replacement that evicted another executor's runner would recurse,
 *    without bound on a full DROP_OLDEST pool). So under DROPPED and SHED
 *    the executor's timer thread (sync/timer.h, on the system clock, its
 *    thread started on first use) submits the replacement (restart_due):
 *    at once when the pool's queue has a free place; on a full queue it
 *    polls (1, 2, 4, 8, then every 10 ms) rather than evict, while another
 *    runner of this executor remains or for the first four polls; then, no
 *    runner left, it submits as any submit does (DROP_OLDEST evicts for
 *    it), so an overload cannot starve the keys and two executors evict
 *    each other's runners at most once per poll, never in a loop. Under
 *    DRAIN and DESTROY (the pool closed for good) the runner's on_abandon
 *    records that (pool_closed: no pool call from then on) and the timer
 *    hands the waiting tasks to the abandon handler at once, with the
 *    pool's reason, when no runner is left; a restart that finds the pool
 *    closed does the same (DRAIN). The user's abandon handler never runs
 *    inside the pool's on_abandon: it may block (persist a task) or
 *    submit elsewhere, which on_abandon must not. So no accepted task
 *    waits for a submit or drain that may never come, unless the timer's
 *    thread cannot start: then keys wait for the next submit (which
 *    starts a runner, or, refused by a closed pool, hands them back on
 *    its own thread), drain or destroy. The timer cannot fail for memory:
 *    create reserves its two entries (a restart, a hand-back). The pool
 *    must outlive the executor (the timer calls it): destroy stops the
 *    timer before it frees.
 *  - Panics. The runner pushes a cleanup handler around its batch. On a
 *    panic it counts the panic, puts the rest of the batch back at the
 *    head of the key's FIFO (order kept), releases the key, and hands its
 *    runner slot to a replacement runner (or gives it up if the pool will
 *    not take one); then the pool unwinds the worker.
 *  - Blocking submit waits on cv_space (broadcast whenever a runner takes
 *    items, an item is evicted, or the executor closes), bounded by
 *    submit_timeout_ns on ex->clock. Destroy waits for blocked submitters
 *    to leave before it frees.
 *
 * Ordering guarantees: a key's items are appended under ex->mu in the
 * order their submits took it, and only the one runner holding the key
 * (running == true) pops them, in FIFO order; the next batch of a key
 * starts only after the previous runner cleared `running` under ex->mu,
 * which orders the previous task's writes before the next task.
 *
 * Lock order: ex->drain_mu -> ex->mu -> the timer's mutex (a restart is
 * put on the timer under ex->mu). No task, abandon handler or pool call
 * runs under ex->mu; the timer's callbacks run with no timer lock held.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "sluice/keyed.h"
#include "sluice/task.h"
#include "sync/sync_internal.h"
#include "sync/timer.h"

#define ITEM_SLAB 256 /* items allocated at a time */
#define FREE_KEYS_MAX 1024
#define MAX_ACTIVE_KEYS 65536u
/* A replacement runner polls a full pool queue at 1, 2, 4, 8 ms and then
 * every RESTART_POLL_MAX_NS; after RESTART_POLITE_TRIES full polls with no
 * runner left it is submitted anyway (DROP_OLDEST then evicts for it). */
#define RESTART_POLL_FIRST_NS SLUICE_NS_PER_MS
#define RESTART_POLL_MAX_NS (10 * SLUICE_NS_PER_MS)
#define RESTART_POLITE_TRIES 4u
/* The tags of the executor's two timer entries (at most one of each is
 * pending: restart_pending, handback_pending; create reserves both). */
#define TAG_RESTART 0u  /* submit a replacement runner (restart_due) */
#define TAG_HANDBACK 1u /* the pool is closed for good: hand back, no pool call */

typedef struct kstate kstate;

typedef struct kitem {
    struct kitem *next;          /* the key's FIFO */
    struct kitem *gprev, *gnext; /* the global FIFO */
    kstate *ks;                  /* valid while waiting or running */
    uint64_t key;                /* kept for hand-backs, after the kstate may be gone */
    uint64_t seq;                /* tells a recycled node from the one a submit made */
    sluice_task_fn fn;
    void *arg;
} kitem;

struct kstate {
    uint64_t key;
    kstate *hnext; /* hash chain */
    kstate *rnext; /* ready FIFO */
    kitem *head, *tail;
    size_t queued;
    bool running; /* a runner holds this key */
    bool ready;   /* in the ready FIFO */
};

struct sluice_keyed {
    /* Immutable after create. */
    char name[SLUICE_KEYED_NAME_MAX + 1];
    sluice_pool *pool;
    unsigned max_active;
    size_t key_backlog, total_backlog;
    size_t total_low; /* blocked submitters wake at or below this */
    sluice_overflow overflow;
    uint64_t submit_timeout_ns;
    void (*abandon_handler)(const sluice_keyed_abandoned *task, void *user);
    void *user;
    const sluice_clock *clock;
    sluice__timer *timer; /* replacement runners (system clock; its thread starts on first use) */

    pthread_mutex_t drain_mu; /* serialises drain and destroy */
    pthread_mutex_t mu;
    pthread_cond_t cv_space; /* room may have appeared, or closed */
    pthread_cond_t cv_idle;  /* a task or a runner finished */
    /* Guarded by mu. */
    kstate **buckets;
    size_t nbuckets; /* a power of two */
    size_t nkeys;
    kstate *ready_head, *ready_tail;
    kitem *ghead, *gtail;
    size_t queued;
    unsigned active; /* keys running */
    unsigned runners;
    unsigned waiting; /* blocked submitters */
    /* Detached lists whose abandon-handler calls have not all returned
     * (counted in the lock hold that detaches them, uncounted by
     * hand_back once the handler is done): drain returns only at 0, so a
     * handler on the timer thread or a submitter never outlives it. */
    unsigned handing_back;
    bool closed;
    bool drained;
    bool restart_pending;   /* a TAG_RESTART entry is on the timer */
    bool handback_pending;  /* a TAG_HANDBACK entry is on the timer */
    unsigned restart_polls; /* restarts since a runner last ran: full polls and hand-backs */
    kitem *free_items;      /* recycled items (all allocated items are here or in use) */
    void *slabs;            /* the item slabs, linked through their first word */
    kstate *free_keys;
    size_t nfree_keys;
    uint64_t next_seq;
    sluice_keyed_stats st; /* counters and high-water marks */
    /* 0 while the pool may run a runner; DRAIN or DESTROY once it handed
     * one back for that reason: closed for good (and, at DESTROY, about to
     * be freed), so the executor never calls it again. Written under mu
     * (release), read anywhere (acquire, paired with that store) before a
     * pool call. */
    _Atomic int pool_closed;
};

/* The executor whose task this thread runs (innermost), for EDEADLK. */
static _Thread_local const sluice_keyed *tls_keyed;
/* The executor whose abandon handler this thread is inside (innermost):
 * its drain would wait for this very call (EDEADLK), its destroy would
 * free the executor under it (a fatal misuse, reported). */
static _Thread_local const sluice_keyed *tls_handing_back;

static int runner(void *arg);

uint64_t sluice_keyed_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; s && *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

void sluice_keyed_config_init(sluice_keyed_config *cfg)
{
    if (cfg) {
        memset(cfg, 0, sizeof *cfg);
    }
}

/* ---- the key table (mu held) ------------------------------------------------------- */

static size_t bucket_of(const sluice_keyed *ex, uint64_t key)
{
    uint64_t h = key * 0x9e3779b97f4a7c15ull;
    return (size_t)(h ^ (h >> 29)) & (ex->nbuckets - 1);
}

static kstate *key_find(sluice_keyed *ex, uint64_t key)
{
    for (kstate *k = ex->buckets[bucket_of(ex, key)]; k; k = k->hnext) {
        if (k->key == key) {
            return k;
        }
    }
    return NULL;
}

static void table_grow(sluice_keyed *ex)
{
    size_t nb = ex->nbuckets * 2;
    kstate **b = calloc(nb, sizeof *b);
    if (!b) {
        return; /* longer chains, still correct */
    }
    kstate **old = ex->buckets;
    size_t on = ex->nbuckets;
    ex->buckets = b;
    ex->nbuckets = nb;
    for (size_t i = 0; i < on; i++) {
        for (kstate *k = old[i], *next; k; k = next) {
            next = k->hnext;
            size_t j = bucket_of(ex, k->key);
            k->hnext = b[j];
            b[j] = k;
        }
    }
    free(old);
}

static kstate *key_get(sluice_keyed *ex, uint64_t key)
{
    kstate *k = key_find(ex, key);
    if (k) {
        return k;
    }
    if (ex->free_keys) {
        k = ex->free_keys;
        ex->free_keys = k->hnext;
        ex->nfree_keys--;
    } else if (!(k = malloc(sizeof *k))) {
        return NULL;
    }
    memset(k, 0, sizeof *k);
    k->key = key;
    size_t i = bucket_of(ex, key);
    k->hnext = ex->buckets[i];
    ex->buckets[i] = k;
    if (++ex->nkeys > ex->st.keys_hwm) {
        ex->st.keys_hwm = ex->nkeys;
    }
    if (ex->nkeys > ex->nbuckets) {
        table_grow(ex);
    }
    return k;
}

/* Forget a key with nothing waiting or running, not in the ready FIFO. */
static void key_remove(sluice_keyed *ex, kstate *k)
{
    kstate **pp = &ex->buckets[bucket_of(ex, k->key)];
    while (*pp != k) {
        pp = &(*pp)->hnext;
    }
    *pp = k->hnext;
    ex->nkeys--;
    if (ex->nfree_keys < FREE_KEYS_MAX) {
        k->hnext = ex->free_keys;
        ex->free_keys = k;
        ex->nfree_keys++;
    } else {
        free(k);
    }
}

/* A key that has nothing waiting may be forgotten unless in use. */
static void key_maybe_remove(sluice_keyed *ex, kstate *k)
{
    if (!k->head && !k->running && !k->ready) {
        key_remove(ex, k);
    }
}

static void ready_push(sluice_keyed *ex, kstate *k)
{
    k->ready = true;
    k->rnext = NULL;
    if (ex->ready_tail) {
        ex->ready_tail->rnext = k;
    } else {
        ex->ready_head = k;
    }
    ex->ready_tail = k;
}

static kstate *ready_pop(sluice_keyed *ex)
{
    kstate *k = ex->ready_head;
    if (k) {
        ex->ready_head = k->rnext;
        if (!ex->ready_head) {
            ex->ready_tail = NULL;
        }
        k->ready = false;
        k->rnext = NULL;
    }
    return k;
}

/* ---- items (mu held) ------------------------------------------------------------- */

/* Items come from slabs of ITEM_SLAB and are recycled, never freed
 * before destroy: the live ones are bounded by total_backlog plus the
 * runners' batches, so the slabs are bounded by the peak of those. */
static kitem *item_new(sluice_keyed *ex)
{
    if (!ex->free_items) {
        /* One slab: a link word (max-aligned) and then the items. */
        size_t head = sizeof(max_align_t);
        char *slab = sluice__sync_faulted("keyed_item", ex) == SLUICE_OK
                         ? malloc(head + ITEM_SLAB * sizeof(kitem))
                         : NULL;
        if (!slab) {
            return NULL;
        }
        *(void **)slab = ex->slabs;
        ex->slabs = slab;
        kitem *items = (kitem *)(void *)(slab + head);
        for (size_t i = 0; i < ITEM_SLAB; i++) {
            items[i].next = ex->free_items;
            ex->free_items = &items[i];
        }
    }
    kitem *it = ex->free_items;
    ex->free_items = it->next;
    return it;
}

static void item_free(sluice_keyed *ex, kitem *it)
{
    it->next = ex->free_items;
    ex->free_items = it;
}

static void global_unlink(sluice_keyed *ex, kitem *it)
{
    if (it->gprev) {
        it->gprev->gnext = it->gnext;
    } else {
        ex->ghead = it->gnext;
    }
    if (it->gnext) {
        it->gnext->gprev = it->gprev;
    } else {
        ex->gtail = it->gprev;
    }
    it->gprev = it->gnext = NULL;
}

/* Append it to its key and to the global FIFO; make the key ready. */
static void item_enqueue(sluice_keyed *ex, kstate *k, kitem *it)
{
    it->ks = k;
    it->next = NULL;
    if (k->tail) {
        k->tail->next = it;
    } else {
        k->head = it;
    }
    k->tail = it;
    k->queued++;
    it->gnext = NULL;
    it->gprev = ex->gtail;
    if (ex->gtail) {
        ex->gtail->gnext = it;
    } else {
        ex->ghead = it;
    }
    ex->gtail = it;
    ex->queued++;
    if (ex->queued > ex->st.queued_hwm) {
        ex->st.queued_hwm = ex->queued;
    }
    if (k->queued > ex->st.longest_backlog_hwm) {
        ex->st.longest_backlog_hwm = k->queued;
    }
    if (!k->running && !k->ready) {
        ready_push(ex, k);
    }
}

/* Pop the head of k (waiting, not running). */
static kitem *key_pop_head(sluice_keyed *ex, kstate *k)
{
    kitem *it = k->head;
    k->head = it->next;
    if (!k->head) {
        k->tail = NULL;
    }
    k->queued--;
    ex->queued--;
    global_unlink(ex, it);
    it->next = NULL;
    return it;
}

/* Remove a specific waiting item (rare: a submit taking its task back):
 * the node `it` if it is still waiting on `key` with sequence `seq`. */
static bool key_unlink_item(sluice_keyed *ex, uint64_t key, kitem *it, uint64_t seq)
{
    kstate *k = key_find(ex, key);
    if (!k) {
        return false;
    }
    kitem *prev = NULL;
    for (kitem *x = k->head; x; prev = x, x = x->next) {
        if (x != it || x->seq != seq) {
            continue;
        }
        if (prev) {
            prev->next = x->next;
        } else {
            k->head = x->next;
        }
        if (k->tail == x) {
            k->tail = prev;
        }
        k->queued--;
        ex->queued--;
        global_unlink(ex, x);
        return true;
    }
    return false;
}

/* Detach every waiting item, grouped key by key in order, into a list
 * linked through `next` (mu held). Keys keep running if they run. */
static kitem *detach_all(sluice_keyed *ex, uint64_t *nitems, uint64_t *nkeys)
{
    kitem *head = NULL, *tail = NULL;
    *nitems = *nkeys = 0;
    /* Walk keys in the order of their oldest waiting item. */
    while (ex->ghead) {
        kstate *k = ex->ghead->ks;
        (*nkeys)++;
        while (k->head) {
            kitem *it = key_pop_head(ex, k);
            (*nitems)++;
            if (tail) {
                tail->next = it;
            } else {
                head = it;
            }
            tail = it;
        }
    }
    /* Ready keys now have nothing waiting: empty the FIFO, forget them. */
    kstate *k;
    while ((k = ready_pop(ex)) != NULL) {
        key_maybe_remove(ex, k);
    }
    if (head) {
        ex->handing_back++; /* hand_back uncounts it */
    }
    return head;
}

/* Hand a detached list (counted in handing_back when it was detached, as
 * detach_all and an eviction do) to the abandon handler (mu NOT held),
 * then recycle it and uncount it: drain waits for that. */
static void hand_back(sluice_keyed *ex, kitem *list, sluice_abandon_reason reason)
{
    if (!list) {
        return;
    }
    const sluice_keyed *saved = tls_handing_back;
    tls_handing_back = ex;
    for (kitem *it = list; it; it = it->next) {
        if (ex->abandon_handler) {
            sluice_keyed_abandoned a = {it->key, it->fn, it->arg, reason};
            ex->abandon_handler(&a, ex->user);
        }
    }
    tls_handing_back = saved;
    pthread_mutex_lock(&ex->mu);
    for (kitem *it = list, *next; it; it = next) {
        next = it->next;
        item_free(ex, it);
    }
    SLUICE__ASSERT(ex->handing_back > 0);
    if (--ex->handing_back == 0) {
        pthread_cond_broadcast(&ex->cv_idle);
    }
    pthread_mutex_unlock(&ex->mu);
}

/* ---- runners --------------------------------------------------------------------- */

/* Claim a runner slot if a ready key needs one (mu held). */
static bool need_runner(sluice_keyed *ex)
{
    if (ex->ready_head && ex->runners < ex->max_active) {
        ex->runners++;
        ex->st.runner_starts++;
        return true;
    }
    return false;
}

static sluice_err start_runner_or_retry(sluice_keyed *ex, bool nonblocking, bool retry);
static void restart_due(void *arg, uint64_t tag, bool canceled);

/* The n-th poll's delay (n >= 1): 1, 2, 4, 8 ms, then RESTART_POLL_MAX_NS. */
static uint64_t restart_backoff(unsigned n)
{
    uint64_t delay = n <= 4 ? RESTART_POLL_FIRST_NS << (n - 1) : RESTART_POLL_MAX_NS;
    return delay < RESTART_POLL_MAX_NS ? delay : RESTART_POLL_MAX_NS;
}

/* Put a restart on the timer, `delay_ns` from now (mu held). Returns
 * whether one is pending now. */
static bool restart_schedule(sluice_keyed *ex, uint64_t delay_ns)
{
    SLUICE__ASSERT_HELD(&ex->mu);
    if (!ex->restart_pending) {
        uint64_t due = delay_ns ? sluice__add_sat(sluice_clock_now(NULL), delay_ns) : 0;
        ex->restart_pending = sluice__timer_add(ex->timer, due, restart_due, ex, TAG_RESTART) == SLUICE_OK;
    }
    return ex->restart_pending;
}

/* Put a hand-back on the timer, due at once (mu held). */
static bool handback_schedule(sluice_keyed *ex)
{
    SLUICE__ASSERT_HELD(&ex->mu);
    if (!ex->handback_pending) {
        ex->handback_pending = sluice__timer_add(ex->timer, 0, restart_due, ex, TAG_HANDBACK) == SLUICE_OK;
    }
    return ex->handback_pending;
}

/* No runner will come for the waiting tasks (the pool is closed, or the
 * timer could not be used): detach them all to hand back (mu held; the
 * caller holds a runner slot or the timer's callback, so destroy cannot
 * free ex meanwhile). NULL when the executor is closing (its drain or
 * destroy hands them back) or a runner is still there to run them. */
static kitem *detach_stranded(sluice_keyed *ex, unsigned runners_left)
{
    SLUICE__ASSERT_HELD(&ex->mu);
    if (ex->closed || ex->runners > runners_left || ex->queued == 0) {
        return NULL;
    }
    uint64_t n, nk;
    kitem *list = detach_all(ex, &n, &nk);
    ex->st.abandoned += n;
    return list;
}

/* The pool handed a queued runner back (its on_abandon). The pool's
 * contract forbids blocking or calling the pool from here, so nothing
 * that may do either runs on this thread: no replacement is submitted and
 * no task goes to the abandon handler (a user's handler may block to
 * persist a task, or submit elsewhere). Under DROPPED or SHED the timer
 * thread submits a replacement (restart_due); under DRAIN or DESTROY the
 * pool is closed for good and the timer hands the waiting tasks back at
 * once, if no runner is left to run them, without calling the pool. The
 * slot is given up in the same lock hold as the entry is put on the
 * timer: a submit from then on sees no runner and starts its own (which
 * a closed pool refuses: it takes its task back), and a restart that ran
 * before the slot was free saw K runners and did nothing. If the timer
 * cannot take the entry (its thread cannot start), the keys wait for the
 * next submit (which starts a runner), drain or destroy (keyed.h). ex
 * stays valid until the slot is given up (destroy waits for it) and,
 * for the timer's entry, until destroy has stopped the timer. */
static void runner_abandoned(const sluice_abandoned *task)
{
    sluice_keyed *ex = task->arg;
    pthread_mutex_lock(&ex->mu);
    bool pool_closed = task->reason == SLUICE_ABANDON_DRAIN || task->reason == SLUICE_ABANDON_DESTROY;
    if (pool_closed &&
        atomic_load_explicit(&ex->pool_closed, memory_order_relaxed) != SLUICE_ABANDON_DESTROY) {
        atomic_store_explicit(&ex->pool_closed, (int)task->reason, memory_order_release);
    }
    if (!ex->closed && ex->ready_head) {
        if (pool_closed) {
            (void)handback_schedule(ex);
        } else {
            /* The first replacement goes at once; one handed back again
             * before it ran waits 1, 2, 4, 8, then 10 ms (restart_polls
             * counts them and goes back to 0 only when a runner runs): a
             * FAIR pool whose tenant is full while the pool is not evicted
             * each replacement with the next, 750,000 times in 0.5 s, with
             * none ever waiting. */
            unsigned polls = ex->restart_polls;
            ex->restart_polls = polls < UINT32_MAX ? polls + 1 : polls;
            (void)restart_schedule(ex, polls ? restart_backoff(polls) : 0);
        }
    }
    ex->runners--;
    pthread_cond_broadcast(&ex->cv_idle);
    pthread_mutex_unlock(&ex->mu);
    /* ex may be freed from here on (after destroy stopped the timer). */
}

/* The timer: start a runner for keys left ready by a runner the pool
 * handed back (not on the pool's callback: here the pool may be called).
 * Polite first: while runners of this executor remain, or for the first
 * few polls, a full pool queue is waited out (polled with backoff) rather
 * than evicted from, so two executors on one DROP_OLDEST pool do not evict
 * each other's runners in a loop; with no runner left it then submits as
 * any submit does, so a standing overload cannot starve the keys. The
 * pool closed (ECLOSED, or draining): the waiting tasks are handed back
 * (DRAIN) when no runner is left. A TAG_HANDBACK entry, and any entry
 * once the pool handed a runner back at its drain deadline or destroy
 * (pool_closed), calls no pool: it hands the waiting tasks back with that
 * reason when no runner is left. ex is valid throughout: destroy stops
 * the timer (waiting for this callback) before it frees. */
static void restart_due(void *arg, uint64_t tag, bool canceled)
{
    sluice_keyed *ex = arg;
    if (canceled) {
        return; /* destroy: it hands back whatever waits */
    }
    pthread_mutex_lock(&ex->mu);
    if (tag == TAG_HANDBACK) {
        ex->handback_pending = false;
    } else {
        ex->restart_pending = false;
    }
    int closed_for_good = atomic_load_explicit(&ex->pool_closed, memory_order_relaxed);
    if (closed_for_good) {
        /* The pool handed a runner back at its drain deadline or destroy:
         * it will never run another, and may be gone. No pool call; the
         * waiting tasks go back now unless a runner is left to run them. */
        kitem *stranded = detach_stranded(ex, 0);
        pthread_mutex_unlock(&ex->mu);
        if (stranded) {
            hand_back(ex, stranded, (sluice_abandon_reason)closed_for_good);
        }
        return;
    }
    if (ex->closed || !ex->ready_head || ex->queued == 0 || ex->runners >= ex->max_active) {
        ex->restart_polls = 0;
        pthread_mutex_unlock(&ex->mu);
        return;
    }
    bool polite = ex->runners > 0 || ex->restart_polls < RESTART_POLITE_TRIES;
    pthread_mutex_unlock(&ex->mu);
    sluice_pool_stats ps;
    sluice_pool_stats_get(ex->pool, &ps);
    sluice_err err = ps.draining ? SLUICE_ECLOSED : SLUICE_EFULL;
    if (!ps.draining && !(polite && ps.queue_depth >= ps.queue_capacity)) {
        pthread_mutex_lock(&ex->mu);
        bool claimed = need_runner(ex);
        pthread_mutex_unlock(&ex->mu);
        err = claimed ? start_runner_or_retry(ex, true, false) : SLUICE_OK;
    }
    kitem *list = NULL;
    pthread_mutex_lock(&ex->mu);
    if (err == SLUICE_OK) {
        /* restart_polls stays: it goes back to 0 when the runner runs
         * (an accepted runner may still be handed back before it does). */
        if (ex->ready_head && ex->runners < ex->max_active) {
            (void)restart_schedule(ex, 0); /* more keys than runners: another */
        }
    } else if (err == SLUICE_ECLOSED) {
        list = detach_stranded(ex, 0);
    } else if (!ex->closed && ex->ready_head) {
        /* Full (or refused for now): poll again. */
        unsigned polls = ex->restart_polls < UINT32_MAX ? ++ex->restart_polls : ex->restart_polls;
        /* On the timer's own thread, with room reserved: it fails only
         * once destroy has begun, which hands back what waits. */
        (void)restart_schedule(ex, restart_backoff(polls));
    }
    pthread_mutex_unlock(&ex->mu);
    if (list) {
        hand_back(ex, list, SLUICE_ABANDON_DRAIN);
    }
}

/* Submit one runner whose slot is already counted. On refusal the slot is
 * given back, and with `retry` a restart is put on the timer when keys are
 * ready (so a refusal strands none of them). Never waits for queue space
 * when `nonblocking`. */
static sluice_err start_runner_or_retry(sluice_keyed *ex, bool nonblocking, bool retry)
{
    sluice_submit_opts o = {0};
    o.label = "keyed"; /* static: the pool reads it after the executor may be gone */
    o.on_abandon = runner_abandoned;
    sluice_err err;
    if (atomic_load_explicit(&ex->pool_closed, memory_order_acquire)) {
        err = SLUICE_ECLOSED; /* closed for good, maybe freed: what it would answer */
    } else {
        err = nonblocking ? sluice__sync_submit_now(ex->pool, runner, ex, &o)
                          : sluice_pool_submit_ex(ex->pool, runner, ex, &o);
    }
    if (err) {
        pthread_mutex_lock(&ex->mu);
        if (retry && !ex->closed && ex->ready_head && ex->queued > 0) {
            /* Keys wait with a runner fewer than they may have: the timer
             * retries (restart_due), before the slot is given up (ex stays
             * valid until then). */
            (void)restart_schedule(ex, RESTART_POLL_FIRST_NS);
        }
        ex->runners--;
        pthread_cond_broadcast(&ex->cv_idle);
        pthread_mutex_unlock(&ex->mu);
    }
    return err;
}

typedef struct batch {
    sluice_keyed *ex;
    kstate *k;
    kitem *items[SLUICE_KEYED_RUN_BATCH];
    size_t n;
    size_t at;        /* the item running now */
    uint64_t ok, bad; /* of items[0..at) */
    const sluice_keyed *saved_tls;
} batch;

/* Put items[from..n) back at the head of the key (mu held). */
static void batch_put_back(batch *b, size_t from)
{
    sluice_keyed *ex = b->ex;
    kstate *k = b->k;
    for (size_t i = b->n; i-- > from;) {
        kitem *it = b->items[i];
        it->next = k->head;
        k->head = it;
        if (!k->tail) {
            k->tail = it;
        }
        k->queued++;
        ex->queued++;
        /* Oldest overall again: back to the head of the global FIFO. */
        it->gprev = NULL;
        it->gnext = ex->ghead;
        if (ex->ghead) {
            ex->ghead->gprev = it;
        } else {
            ex->gtail = it;
        }
        ex->ghead = it;
    }
}

/* Release the key a batch ran on (mu held). */
static void key_release(sluice_keyed *ex, kstate *k)
{
    k->running = false;
    ex->active--;
    if (k->head) {
        ready_push(ex, k);
    } else {
        key_remove(ex, k);
    }
    pthread_cond_broadcast(&ex->cv_idle);
}

static void batch_panicked(void *arg)
{
    batch *b = arg;
    sluice_keyed *ex = b->ex;
    tls_keyed = b->saved_tls;
    pthread_mutex_lock(&ex->mu);
    ex->st.panicked++;
    ex->st.completed += b->ok;
    ex->st.failed += b->bad;
    for (size_t i = 0; i <= b->at; i++) {
        item_free(ex, b->items[i]);
    }
    batch_put_back(b, b->at + 1);
    key_release(ex, b->k);
    /* This runner dies with the worker's unwinding; its slot goes to a
     * replacement when keys are ready, else it is given up. */
    bool replace = ex->ready_head != NULL && !ex->closed;
    if (replace) {
        ex->st.runner_starts++;
    } else {
        ex->runners--;
        pthread_cond_broadcast(&ex->cv_idle);
    }
    pthread_mutex_unlock(&ex->mu);
    if (replace) {
        (void)start_runner_or_retry(ex, true, true); /* refused: the timer retries */
    }
}

static int runner(void *arg)
{
    sluice_keyed *ex = arg;
    batch b = {.ex = ex};
    pthread_mutex_lock(&ex->mu);
    ex->restart_polls = 0; /* a runner runs: the replacements' backoff starts over */
    for (;;) {
        kstate *k = ready_pop(ex);
        if (!k) {
            break;
        }
        if (!k->head) { /* emptied by DROP_OLDEST while ready */
            key_maybe_remove(ex, k);
            continue;
        }
        k->running = true;
        ex->active++;
        b.k = k;
        b.n = 0;
        bool key_was_full = k->queued >= ex->key_backlog;
        while (b.n < SLUICE_KEYED_RUN_BATCH && k->head) {
            b.items[b.n++] = key_pop_head(ex, k);
        }
        /* Wake blocked submitters when one may be waiting on this key, or
         * once the total is down to its low-water mark (a quarter free):
         * not on every batch, which would wake every producer each time. */
        if (ex->waiting && (key_was_full || ex->queued <= ex->total_low)) {
            pthread_cond_broadcast(&ex->cv_space);
        }
        pthread_mutex_unlock(&ex->mu);

        b.ok = b.bad = 0;
        b.saved_tls = tls_keyed;
        bool guarded = sluice_cleanup_push(batch_panicked, &b) == SLUICE_OK;
        tls_keyed = ex;
        for (b.at = 0; b.at < b.n; b.at++) {
            kitem *it = b.items[b.at];
            if (it->fn(it->arg) == 0) {
                b.ok++;
            } else {
                b.bad++;
            }
        }
        tls_keyed = b.saved_tls;
        if (guarded) {
            sluice_cleanup_pop(false);
        }

        pthread_mutex_lock(&ex->mu);
        ex->st.completed += b.ok;
        ex->st.failed += b.bad;
        for (size_t i = 0; i < b.n; i++) {
            item_free(ex, b.items[i]);
        }
        key_release(ex, k);
    }
    ex->runners--;
    pthread_cond_broadcast(&ex->cv_idle);
    pthread_mutex_unlock(&ex->mu);
    /* ex may be freed from here on. */
    return 0;
}

/* ---- create / submit --------------------------------------------------------------- */

sluice_err sluice_keyed_create(const sluice_keyed_config *cfg, sluice_keyed **out, char *errbuf,
                               size_t errlen)
{
    if (!cfg || !out) {
        sluice__errf(errbuf, errlen, "%s: must not be NULL", !cfg ? "cfg" : "out");
        return SLUICE_EINVAL;
    }
    if (!cfg->pool) {
        sluice__errf(errbuf, errlen, "pool: required (the pool the tasks run on)");
        return SLUICE_EINVAL;
    }
    if (cfg->overflow == SLUICE_OVERFLOW_CALLER_RUNS) {
        sluice__errf(errbuf, errlen,
                     "overflow: caller_runs would run a key's task out of order; use block, reject or "
                     "drop_oldest");
        return SLUICE_EINVAL;
    }
    if ((unsigned)cfg->overflow > (unsigned)SLUICE_OVERFLOW_DROP_OLDEST) {
        sluice__errf(errbuf, errlen, "overflow: unknown policy %d", (int)cfg->overflow);
        return SLUICE_EINVAL;
    }
    sluice_pool_config pc;
    sluice_pool_config_get(cfg->pool, &pc);
    /* 0: the pool's workers, at most the maximum (a pool's K may be
     * anything up to UINT_MAX; only a value given is refused past it). */
    unsigned k = cfg->max_active_keys ? cfg->max_active_keys
                                      : (pc.workers < MAX_ACTIVE_KEYS ? pc.workers : MAX_ACTIVE_KEYS);
    if (k == 0 || k > MAX_ACTIVE_KEYS) {
        sluice__errf(errbuf, errlen, "max_active_keys: must be <= %u, got %u", MAX_ACTIVE_KEYS,
                     cfg->max_active_keys);
        return SLUICE_EINVAL;
    }
    size_t kb = cfg->key_backlog ? cfg->key_backlog : 1024;
    size_t tb = cfg->total_backlog ? cfg->total_backlog : 65536;
    if (tb < kb) {
        sluice__errf(errbuf, errlen, "total_backlog: must be >= key_backlog (%zu), got %zu", kb, tb);
        return SLUICE_EINVAL;
    }
    sluice_keyed *ex = calloc(1, sizeof *ex);
    if (!ex) {
        return SLUICE_ENOMEM;
    }
    sluice_err err = sluice__sync_name_copy(ex->name, sizeof ex->name, cfg->name, "keyed", errbuf, errlen);
    if (err) {
        free(ex);
        return err;
    }
    ex->nbuckets = 64;
    ex->buckets = calloc(ex->nbuckets, sizeof *ex->buckets);
    if (!ex->buckets) {
        free(ex);
        return SLUICE_ENOMEM;
    }
    if (pthread_mutex_init(&ex->mu, NULL) != 0 || pthread_mutex_init(&ex->drain_mu, NULL) != 0 ||
        sluice__cond_init(&ex->cv_space) != 0 || sluice__cond_init(&ex->cv_idle) != 0) {
        free(ex->buckets);
        free(ex);
        return SLUICE_ENOMEM;
    }
    ex->pool = cfg->pool;
    ex->max_active = k;
    ex->key_backlog = kb;
    ex->total_backlog = tb;
    ex->total_low = tb - tb / 4 - (tb >= 4 ? 0 : 1);
    ex->overflow = cfg->overflow;
    ex->submit_timeout_ns = cfg->submit_timeout_ns;
    ex->abandon_handler = cfg->abandon_handler;
    ex->user = cfg->user;
    ex->clock = cfg->clock ? cfg->clock : sluice_pool_clock(cfg->pool);
    /* Two entries at most are ever pending (a restart, a hand-back): with
     * room for both made now, no later add fails for memory. */
    if (sluice__timer_create(NULL, ex->name, &ex->timer) != SLUICE_OK ||
        sluice__timer_reserve(ex->timer, 2) != SLUICE_OK) {
        sluice__timer_destroy(ex->timer);
        pthread_cond_destroy(&ex->cv_idle);
        pthread_cond_destroy(&ex->cv_space);
        pthread_mutex_destroy(&ex->mu);
        pthread_mutex_destroy(&ex->drain_mu);
        free(ex->buckets);
        free(ex);
        return SLUICE_ENOMEM;
    }
    *out = ex;
    return SLUICE_OK;
}

static sluice_err submit(sluice_keyed *ex, uint64_t key, sluice_task_fn fn, void *arg, bool may_wait)
{
    if (!ex || !fn) {
        return SLUICE_EINVAL;
    }
    kitem *evicted = NULL;
    sluice_err err = SLUICE_OK;
    bool waited = false;
    uint64_t deadline = 0;
    pthread_mutex_lock(&ex->mu);
    kstate *k;
    for (;;) {
        if (ex->closed) {
            err = SLUICE_ECLOSED;
            goto out;
        }
        k = key_get(ex, key);
        if (!k) {
            err = SLUICE_ENOMEM;
            goto out;
        }
        bool key_full = k->queued >= ex->key_backlog;
        bool total_full = ex->queued >= ex->total_backlog;
        if (!key_full && !total_full) {
            break;
        }
        if (ex->overflow == SLUICE_OVERFLOW_DROP_OLDEST) {
            /* The new task's item first: an eviction is never undone, so
             * a submit that evicted and then failed for memory would have
             * lost the evicted task (counted dropped, never handed back). */
            kitem *spare = item_new(ex);
            if (!spare) {
                key_maybe_remove(ex, k);
                err = SLUICE_ENOMEM;
                goto out;
            }
            item_free(ex, spare); /* the item_new below takes it back */
            kstate *victim = key_full ? k : ex->ghead->ks;
            evicted = key_pop_head(ex, victim);
            ex->handing_back++; /* hand_back below uncounts it */
            ex->st.dropped++;
            break;
        }
        key_maybe_remove(ex, k);
        if (ex->overflow == SLUICE_OVERFLOW_REJECT || !may_wait) {
            err = SLUICE_EFULL;
            goto out;
        }
        if (tls_keyed == ex) {
            err = SLUICE_EDEADLK;
            goto out;
        }
        if (!waited) {
            waited = true;
            ex->waiting++;
            if (ex->submit_timeout_ns) {
                deadline = sluice__add_sat(sluice_clock_now(ex->clock), ex->submit_timeout_ns);
            }
        } else if (sluice__deadline_passed(sluice_clock_now(ex->clock), deadline)) {
            err = SLUICE_ETIMEDOUT;
            goto out;
        }
        sluice__wait_until(ex->clock, &ex->cv_space, &ex->mu, deadline);
    }
    kitem *it = item_new(ex);
    if (!it) {
        key_maybe_remove(ex, k);
        err = SLUICE_ENOMEM;
        goto out;
    }
    it->fn = fn;
    it->arg = arg;
    it->key = key;
    uint64_t seq = it->seq = ex->next_seq++;
    item_enqueue(ex, k, it);
    ex->st.submitted++;
    bool start = need_runner(ex);
    if (waited) {
        ex->waiting--;
        pthread_cond_broadcast(&ex->cv_idle);
    }
    pthread_mutex_unlock(&ex->mu);
    if (evicted) {
        evicted->next = NULL;
        hand_back(ex, evicted, SLUICE_ABANDON_DROPPED);
    }
    /* The runner is submitted as the pool's submit does (a full BLOCK pool
     * waits for space, try_submit too), except on one of the pool's own
     * workers, which must not wait on its pool. A try_submit that refused
     * the runner at once whenever the pool was briefly full (3d7cc73)
     * stranded tasks: two submitters racing for the last runner slot, the
     * second answered OK on the first's runner, whose start then failed
     * (the review measured 1024 accepted tasks with no runner). The pool
     * refuses a waiting runner only when it closes or its submit timeout
     * passes, the gap the file comment names. */
    if (start && (err = start_runner_or_retry(ex, sluice_task_pool() == ex->pool, false)) != SLUICE_OK) {
        /* The pool refused the runner. If no runner is left, take this task
         * back (if still waiting) rather than strand it; other tasks still
         * waiting with no runner get a restart from the timer, or, when
         * the timer cannot take one and the pool is closed for good (it
         * will never run them), go to the abandon handler from here: a
         * submitter's thread, not the pool's on_abandon. */
        sluice_err refusal = err;
        kitem *stranded = NULL;
        sluice_abandon_reason why = SLUICE_ABANDON_DRAIN;
        pthread_mutex_lock(&ex->mu);
        if (ex->runners == 0 && key_unlink_item(ex, key, it, seq)) {
            kstate *ks = it->ks;
            item_free(ex, it);
            ex->st.submitted--;
            ex->st.rejected++;
            key_maybe_remove(ex, ks); /* a ready key stays: runners skip empty keys */
        } else {
            err = SLUICE_OK; /* a runner will get to it */
        }
        if (!ex->closed && ex->runners == 0 && ex->queued > 0 && ex->ready_head &&
            !restart_schedule(ex, RESTART_POLL_FIRST_NS) && refusal == SLUICE_ECLOSED) {
            if (atomic_load_explicit(&ex->pool_closed, memory_order_relaxed) == SLUICE_ABANDON_DESTROY) {
                why = SLUICE_ABANDON_DESTROY;
            }
            stranded = detach_stranded(ex, 0);
        }
        pthread_mutex_unlock(&ex->mu);
        if (stranded) {
            hand_back(ex, stranded, why);
        }
    }
    return err;

out:
    if (err != SLUICE_ECLOSED) {
        ex->st.rejected++;
    }
    if (waited) {
        ex->waiting--;
        pthread_cond_broadcast(&ex->cv_idle);
    }
    pthread_mutex_unlock(&ex->mu);
    return err;
}

sluice_err sluice_keyed_submit(sluice_keyed *ex, uint64_t key, sluice_task_fn fn, void *arg)
{
    return submit(ex, key, fn, arg, true);
}

sluice_err sluice_keyed_try_submit(sluice_keyed *ex, uint64_t key, sluice_task_fn fn, void *arg)
{
    return submit(ex, key, fn, arg, false);
}

/* ---- drain / destroy -------------------------------------------------------------- */

sluice_err sluice_keyed_drain(sluice_keyed *ex, uint64_t timeout_ns, sluice_keyed_drain_report *report)
{
    sluice_keyed_drain_report scratch;
    if (!report) {
        report = &scratch;
    }
    memset(report, 0, sizeof *report);
    if (!ex) {
        return SLUICE_EINVAL;
    }
    if (tls_keyed == ex || tls_handing_back == ex) {
        return SLUICE_EDEADLK;
    }
    pthread_mutex_lock(&ex->drain_mu);
    pthread_mutex_lock(&ex->mu);
    if (ex->drained) {
        pthread_mutex_unlock(&ex->mu);
        pthread_mutex_unlock(&ex->drain_mu);
        return SLUICE_OK;
    }
    ex->closed = true;
    pthread_cond_broadcast(&ex->cv_space);
    uint64_t done0 = ex->st.completed + ex->st.failed + ex->st.panicked;
    uint64_t deadline = timeout_ns ? sluice__add_sat(sluice_clock_now(ex->clock), timeout_ns) : 0;
    bool timed_out = false;
    for (;;) {
        if (ex->queued == 0 && ex->active == 0) {
            break;
        }
        if (sluice__deadline_passed(sluice_clock_now(ex->clock), deadline)) {
            timed_out = true;
            break;
        }
        bool retry_soon = false;
        if (need_runner(ex)) {
            /* Keys are waiting with no runner (the pool refused or handed
             * one back): try again. */
            pthread_mutex_unlock(&ex->mu);
            sluice_err err = start_runner_or_retry(ex, true, false); /* drain retries itself */
            pthread_mutex_lock(&ex->mu);
            if (err == SLUICE_ECLOSED && ex->runners == 0) {
                timed_out = true; /* the pool will never run them: hand back now */
                break;
            }
            if (err == SLUICE_OK) {
                /* mu was dropped: the runner may already have finished
                 * everything and sent its last cv_idle broadcast, which a
                 * wait now would miss for ever. Check again first. */
                continue;
            }
            retry_soon = true; /* refused; the state may have moved meanwhile too */
        }
        uint64_t until = deadline;
        if (retry_soon || (ex->ready_head && ex->runners == 0)) {
            /* Retry a refused runner every 10 ms. */
            uint64_t retry = sluice__add_sat(sluice_clock_now(ex->clock), 10 * SLUICE_NS_PER_MS);
            until = sluice__min_deadline(until, retry);
        }
        sluice__wait_until(ex->clock, &ex->cv_idle, &ex->mu, until);
    }
    /* Tasks detached off this path (a pool hand-back on the timer thread,
     * an eviction) may still be in the abandon handler: wait for it, past
     * the deadline as drain's own hand-back runs past it, so no handler
     * call outlives drain (the caller may free the handler's user next). */
    while (ex->handing_back > 0) {
        sluice__wait_until(NULL, &ex->cv_idle, &ex->mu, 0);
    }
    kitem *list = NULL;
    if (timed_out) {
        list = detach_all(ex, &report->handed_back, &report->keys_handed_back);
        ex->st.abandoned += report->handed_back;
    }
    report->completed = ex->st.completed + ex->st.failed + ex->st.panicked - done0;
    report->timed_out = timed_out;
    ex->drained = true;
    pthread_mutex_unlock(&ex->mu);
    hand_back(ex, list, SLUICE_ABANDON_DRAIN);
    pthread_mutex_unlock(&ex->drain_mu);
    return timed_out ? SLUICE_ETIMEDOUT : SLUICE_OK;
}

void sluice_keyed_destroy(sluice_keyed *ex)
{
    if (!ex) {
        return;
    }
    if (tls_handing_back == ex) {
        /* Freeing the executor under the handler call that is running
         * would corrupt memory: report the misuse and stop. */
        fprintf(stderr, "sluice: sluice_keyed_destroy called from its own abandon handler "
                        "(keyed.h forbids it); aborting\n");
        fflush(stderr);
        abort();
    }
    pthread_mutex_lock(&ex->drain_mu);
    pthread_mutex_lock(&ex->mu);
    ex->closed = true;
    pthread_cond_broadcast(&ex->cv_space);
    uint64_t n, nk;
    kitem *list = detach_all(ex, &n, &nk);
    ex->st.abandoned += n;
    pthread_mutex_unlock(&ex->mu);
    hand_back(ex, list, SLUICE_ABANDON_DESTROY);
    pthread_mutex_lock(&ex->mu);
    while (ex->runners > 0 || ex->waiting > 0 || ex->active > 0 || ex->handing_back > 0) {
        sluice__wait_until(NULL, &ex->cv_idle, &ex->mu, 0);
    }
    pthread_mutex_unlock(&ex->mu);
    pthread_mutex_unlock(&ex->drain_mu);
    /* A restart in progress ends first (it sees `closed`); one pending is
     * called canceled and does nothing. */
    sluice__timer_destroy(ex->timer);
    for (size_t i = 0; i < ex->nbuckets; i++) {
        for (kstate *k = ex->buckets[i], *next; k; k = next) {
            next = k->hnext;
            free(k);
        }
    }
    for (kstate *k = ex->free_keys, *next; k; k = next) {
        next = k->hnext;
        free(k);
    }
    for (void *slab = ex->slabs, *next; slab; slab = next) {
        next = *(void **)slab;
        free(slab);
    }
    free(ex->buckets);
    pthread_cond_destroy(&ex->cv_idle);
    pthread_cond_destroy(&ex->cv_space);
    pthread_mutex_destroy(&ex->mu);
    pthread_mutex_destroy(&ex->drain_mu);
    free(ex);
}

/* ---- stats ------------------------------------------------------------------------ */

void sluice_keyed_stats_get(sluice_keyed *ex, sluice_keyed_stats *out)
{
    if (!out) {
        return;
    }
    memset(out, 0, sizeof *out);
    if (!ex) {
        return;
    }
    pthread_mutex_lock(&ex->mu);
    *out = ex->st;
    out->keys = ex->nkeys;
    out->active_keys = ex->active;
    out->queued = ex->queued;
    out->runners = ex->runners;
    out->waiting = ex->waiting;
    out->closed = ex->closed;
    size_t longest = 0;
    for (size_t i = 0; i < ex->nbuckets; i++) {
        for (kstate *k = ex->buckets[i]; k; k = k->hnext) {
            if (k->queued > longest) {
                longest = k->queued;
            }
        }
    }
    out->longest_backlog = longest;
    pthread_mutex_unlock(&ex->mu);
}

const char *sluice_keyed_name(const sluice_keyed *ex)
{
    return ex ? ex->name : "";
}

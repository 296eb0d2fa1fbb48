/*
 * src/core/queue_fair.c - the FAIR queue discipline: one FIFO per tenant,
 * served by weighted deficit round robin, behind sluice__queue_ops.
 *
 * Purpose. With the FIFO ring one tenant that submits faster than the
 * workers drain fills the queue and holds all K workers; everyone behind
 * it waits (the reference text's multi-tenant SaaS story). Here each
 * tenant has its own FIFO, and a worker asking for a task takes it from
 * the tenant whose turn it is, so a flood delays the others by at most
 * the flooder's share.
 *
 * Design.
 *  - Slots. queue_capacity nodes are allocated at create and kept on a
 *    free list: no allocation per task. A node holds the task by value
 *    and links to the next node of its tenant's FIFO.
 *  - Tenants with queued tasks are on the active ring, a circular doubly
 *    linked list; `turn` is the tenant whose turn it is. Deficit round
 *    robin with a cost of one task: when a tenant's turn comes it is
 *    credited `weight`, each start costs 1, and when its deficit is spent
 *    the turn passes on. A tenant whose FIFO empties leaves the ring with
 *    its deficit reset to 0 (no hoarding of credit while idle). Over any
 *    stretch in which tenants stay backlogged, their starts are in the
 *    ratio of their weights to within one round. (RATIONALE.md says why
 *    DRR over WFQ and lottery.)
 *  - Running limits. A tenant with running_limit N and N tasks started
 *    and not finished is capped. A capped tenant's turn is skipped while
 *    any uncapped tenant has queued work; with nothing else to run it is
 *    served anyway (work-conserving) unless it is strict. Strict capped
 *    tenants' tasks do not count as `pending`, so workers park instead of
 *    spinning on tasks that may not start; the worker that finishes one of
 *    the tenant's tasks uncaps it and pops next itself.
 *  - Tenants by name: a chained hash table (seeded FNV-1a and a 64-bit
 *    mix) of tracked tenants. At most max_tenants unconfigured tenants
 *    are tracked; beyond that a name is dealt a hand of hand_size of the
 *    shard_queues shared queues (a hash of the name picks them, as
 *    Kubernetes API Priority and Fairness deals them) and each of its
 *    tasks goes to the shortest queue of its hand: a flood from one name
 *    fills only its own hand, and two names share every queue only if
 *    dealt the same hand. Ties go to the first of the hand in its dealt
 *    order (random per name), so an idle pool spreads names evenly over
 *    the queues. Unconfigured tenants with nothing queued or running and
 *    no handle held are kept on an idle list in the order they went idle
 *    and forgotten after idle_forget_ns (pool clock), swept when a new
 *    name arrives (at most SWEEP_CHUNK of them) and when the tenants are
 *    listed or ranked.
 *  - DROP_OLDEST evicts the oldest task of the tenant that is most over
 *    its share: the largest queued / weight. That tenant holds the most
 *    queue per unit of its entitlement, so it is the one a fair queue
 *    would serve last; taking its oldest keeps DROP_OLDEST's meaning (the
 *    stalest task goes) inside that tenant. A tenant at its own
 *    queued_limit with overflow DROP_OLDEST evicts its own oldest.
 *  - Adaptive LIFO (overload lifo, codel+lifo): pop_newest picks the
 *    tenant by the same round robin and takes that tenant's newest task
 *    (nodes link both ways for it), so LIFO reorders only within a
 *    tenant's FIFO and the tenants' shares are unchanged; oldest_ns is the
 *    head of the tenant pop would serve next, the task CoDel judges.
 *  - Config changes. Each setter (tenant_set, _unset, _default_set) is
 *    one hold of mu after the pool is checked not draining. A reload's
 *    whole tenant list is one batch (sluice_pool_tenants_apply): every
 *    argument checked and every new tenant record allocated first, then
 *    all the changes in one hold of mu; close takes mu too, so a drain
 *    comes before the whole batch or after it, and a refusal changes
 *    nothing.
 *  - Accounting. push counts `submitted`; finish (called by the pool for
 *    every task pop or evict returned, and for CALLER_RUNS and refused
 *    submits) counts the outcome and the wait. A tenant with tasks held
 *    (popped or evicted, not finished) is never forgotten, so the pool
 *    may touch it until finish.
 *  - Two locks a task, not three. A worker does not finish its task when
 *    it returns: it keeps the outcome and hands it to its next pop
 *    (pop_finish), which finishes it and pops under one lock. The task
 *    stays counted in its tenant's `running` (and its outcome uncounted)
 *    for the few instructions between the end of the task and that pop,
 *    or until the worker leaves its loop (shrink, stop, a fault), where it
 *    finishes it plainly. A running limit is therefore released by the
 *    worker's own next pop, which sees the tenant uncapped; parked
 *    workers are woken for a strict tenant it uncaps, as by finish.
 *    Pools with an overload mode finish at once (their pop is not this
 *    queue's alone).
 *  - Scrapes in bounded pieces. A pool may track a million tenants, and
 *    a scrape that copied each of them (about 1.2 KiB of
 *    sluice_tenant_stats) under mu held every submit and pop of the pool
 *    for the length of a 1.2 GiB copy. The scrape calls instead
 *    (sluice_pool_tenants_top, sluice_pool_tenants_select) never hold mu
 *    for work that grows with the tenants: `sum` keeps every counter of
 *    every tenant (and the forgotten record) summed as the counters move,
 *    one more add under the lock each already holds (invariant 6), so the
 *    counts of all the tenants a scrape does not keep are `sum` minus the
 *    few it keeps, read in one hold of O(names asked for). Which tenants
 *    to keep is found by a walk of the table that takes mu for at most
 *    WALK_TENANTS tenants or WALK_BUCKETS buckets at a time and keeps only
 *    the best `cap` (a heap in the caller's array). The table never
 *    resizes, so a bucket index is a cursor that survives the unlocks: a
 *    tenant lives in one bucket, so the walk sees it at most once; one
 *    made or forgotten meanwhile may be missed. The walk only ranks; the
 *    sums never come from it, so what it misses cannot break them. The
 *    forgetting a scrape does first is chunked the same way
 *    (SWEEP_CHUNK). Between two pieces the walker lets waiting threads
 *    in first (fair_lock counts them; let_in yields until one got mu):
 *    otherwise it would take mu straight back every time, before a
 *    waiter woke, and the waiter would wait for the whole walk after all.
 *    RATIONALE.md ("Tenant scrapes in bounded pieces") has the shapes
 *    rejected.
 *
 * Ordering and the parking protocol. Every operation runs under the
 * queue's mutex `mu` (adaptive: it spins briefly before sleeping).
 * `avail` (tasks that may start: queued minus those of strict capped
 * tenants) and `depth` are mirrored in one atomic word, stored seq_cst
 * under mu whenever either changes, so pending/ready/depth read them
 * without the lock and the pool's Dekker pairings (worker.c: a producer's
 * push then its read of `idle`; a parking worker's increment of `idle`
 * then its read of pending; the same for `waiting` and `starting`) hold as
 * with the ring's seq_cst CAS. `pushed` is stored with release (stats).
 *
 * Invariants (under mu):
 *  1. total == sum of queued over tenants <= capacity; free nodes ==
 *     capacity - total.
 *  2. A tenant is on the active ring iff queued > 0.
 *  3. n_uncapped == number of active tenants that are not capped;
 *     strict_blocked == sum of queued over capped strict tenants.
 *  4. avail == total - strict_blocked, and avail > 0 implies pop finds a
 *     task (a capped work-conserving tenant is skipped only while an
 *     uncapped active tenant exists, which is then eligible).
 *  5. A tracked tenant is on the idle list iff it is unconfigured, has
 *     queued == held == refs == 0; only idle-list tenants are freed.
 *  6. Each counter and wait bucket of `sum` == retired's + the sum over
 *     tracked tenants and shard queues; sum->running == the sum of
 *     running; total == the sum of queued (1.); shards_seen == the shard
 *     queues with submitted + rejected > 0 (the ones listed). Forgetting
 *     moves counts from a tenant to retired and leaves `sum` as it was.
 *
 * Lock order: pool->mu -> fair->mu (evict under the pool's DROP_OLDEST
 * lock). No user code runs under fair->mu.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/enums.h"
#include "core/internal.h"
#include "sluice/tenant.h"

#define DEFAULT_MAX_TENANTS 1024u
#define MAX_MAX_TENANTS (1u << 20)
#define DEFAULT_SHARDS 64u
#define MAX_SHARDS 65536u
#define DEFAULT_HAND 8u
#define MAX_HAND 16u
#define DEFAULT_IDLE_FORGET_NS (60 * SLUICE_NS_PER_SEC)
#define DEFAULT_TENANT "default"
/* The most a scrape does per hold of mu (see "Scrapes in bounded pieces"):
 * a few microseconds each. */
#define WALK_TENANTS 256u
#define WALK_BUCKETS 4096u
#define SWEEP_CHUNK 256u

typedef enum tenant_kind { KIND_TRACKED = 0, KIND_SHARD, KIND_ALIAS } tenant_kind;

typedef struct node {
    sluice__task task;
    struct node *next;
    struct node *prev; /* toward the head: pop_newest takes the tail */
} node;

typedef struct fair fair;

struct sluice_tenant {
    fair *fq;
    tenant_kind kind;
    uint64_t hash;
    char name[SLUICE_TENANT_NAME_MAX + 1];
    uint16_t hand[MAX_HAND]; /* KIND_ALIAS: indices of its shard queues */

    /* Guarded by fq->mu. */
    bool configured;
    bool named;               /* its cfg was set by name (sluice_pool_tenant_set), not the default's */
    sluice_tenant_config cfg; /* weight >= 1 */
    unsigned refs;            /* handles and submits in flight by name */
    node *head, *tail;
    size_t queued;
    unsigned running; /* popped, not finished */
    unsigned held;    /* popped or evicted, not finished */
    bool capped;
    int64_t deficit;
    bool credited; /* its current turn has been credited */
    struct sluice_tenant *act_prev, *act_next;
    struct sluice_tenant *idle_prev, *idle_next;
    bool on_idle;
    uint64_t idle_since;
    struct sluice_tenant *hnext;
    uint64_t serial; /* this incarnation of the name (sluice_tenant_stats.incarnation) */
    uint64_t picked; /* the select (fq->picks) that last found it: counted once per select */

    uint64_t submitted, started, completed, failed, panicked, dropped, rejected, shed, abandoned, caller_ran;
    uint64_t wait_sum_ns;
    uint64_t wait_counts[]; /* nbounds + 1 (KIND_ALIAS: none) */
};

struct fair {
    struct sluice_pool *pool;
    size_t capacity;
    size_t nbounds;
    unsigned max_tenants, nshards, hand;
    uint64_t forget_ns;
    bool known_only;
    sluice_tenant_config dflt;
    uint64_t seed;

    /* Read without mu (stored seq_cst under it). */
    SLUICE__ALIGNED _Atomic uint64_t counts_a; /* avail << 32 | depth (capacity < 2^32) */
    _Atomic uint64_t pushed_a;

    /* Hints for a scrape's walk (let_in), relaxed: touched only by threads
     * that found mu held, on a line of their own. */
    SLUICE__ALIGNED _Atomic unsigned contended; /* threads waiting for mu now */
    _Atomic uint64_t handoffs;                  /* acquisitions of mu after a wait */

    SLUICE__ALIGNED pthread_mutex_t mu;
    uint64_t published; /* the last value stored in counts_a */
    bool closed;
    node *nodes;
    node *free_nodes;
    size_t total;
    size_t strict_blocked;
    unsigned n_uncapped;
    unsigned nactive;
    struct sluice_tenant *turn; /* the active ring, at the tenant whose turn it is */
    struct sluice_tenant *idle_head, *idle_tail;
    struct sluice_tenant **buckets;
    size_t nbuckets;
    unsigned tracked_dynamic, tracked_configured;
    uint64_t forgotten, sharded_submits;
    uint64_t serials;              /* the last serial handed out */
    struct sluice_tenant *retired; /* the counts of every forgotten tenant, summed */
    struct sluice_tenant *sum;     /* every tenant's counts and running, summed (invariant 6) */
    unsigned shards_seen;          /* shard queues with submitted or rejected > 0 */
    uint64_t picks;                /* the last select's number (tenant->picked) */
    size_t tenant_bytes;
    struct sluice_tenant **shards;
    struct sluice_tenant *dflt_tenant;
};

/* ---- small helpers ------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return x;
}

static uint64_t name_hash(const fair *fq, const char *name)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325) ^ fq->seed;
    for (const unsigned char *s = (const unsigned char *)name; *s; s++) {
        h ^= *s;
        h *= UINT64_C(0x100000001b3);
    }
    return mix64(h);
}

static void normalize(sluice_tenant_config *c)
{
    if (c->weight == 0) {
        c->weight = 1;
    }
}

/* What is wrong with a tenant config, if anything: the bad field's name,
 * with why[] saying how ("10001 is out of range 0..10000 (0 means 1)");
 * NULL when it is fine. queued_limit and running_limit take any value
 * (0 = none; the pool's queue_capacity and K bound them anyway), strict
 * any. */
static const char *tenant_config_fault(const sluice_tenant_config *c, char *why, size_t whylen)
{
    if (c->weight > SLUICE_TENANT_WEIGHT_MAX) {
        sluice__errf(why, whylen, "%u is out of range 0..%u (0 means 1)", c->weight,
                     SLUICE_TENANT_WEIGHT_MAX);
        return "weight";
    }
    if ((unsigned)c->overflow >= SLUICE_TENANT_OVERFLOW_COUNT_) {
        sluice__errf(why, whylen, "%d is not a tenant overflow (reject or drop_oldest)", (int)c->overflow);
        return "overflow";
    }
    return NULL;
}

/* A tenant name as a message may show it: at most 32 bytes, each byte
 * outside the name charset (a space, a control byte) as '?', and "..."
 * when cut. out holds at least 36 bytes. */
static const char *shown_name(const char *name, char *out, size_t outlen)
{
    size_t n = 0;
    for (; name[n] && n < 32 && n + 4 < outlen; n++) {
        out[n] = sluice__name_char_ok(name[n]) ? name[n] : '?';
    }
    snprintf(out + n, outlen - n, "%s", name[n] ? "..." : "");
    return out;
}

/* A tenant name checked against the rule, the message naming the field
 * ("tenant name: ..." or "tenant \"a?b\": name: ..."). */
static sluice_err check_tenant_name(const char *name, char *errbuf, size_t errlen)
{
    size_t len = name ? strlen(name) : 0;
    char shown[40];
    if (!name) {
        sluice__errf(errbuf, errlen, "tenant name: NULL; must be 1..%d bytes of " SLUICE__NAME_CHARSET,
                     SLUICE_TENANT_NAME_MAX);
        return SLUICE_EINVAL;
    }
    if (len == 0 || len > SLUICE_TENANT_NAME_MAX) {
        sluice__errf(errbuf, errlen,
                     "tenant \"%s\": name is %zu bytes; must be 1..%d bytes of " SLUICE__NAME_CHARSET,
                     shown_name(name, shown, sizeof shown), len, SLUICE_TENANT_NAME_MAX);
        return SLUICE_EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        if (!sluice__name_char_ok(name[i])) {
            sluice__errf(errbuf, errlen,
                         "tenant \"%s\": name has byte 0x%02x at %zu, outside " SLUICE__NAME_CHARSET,
                         shown_name(name, shown, sizeof shown), (unsigned)(unsigned char)name[i], i);
            return SLUICE_EINVAL;
        }
    }
    return SLUICE_OK;
}

/* A pool's fair.tenant_default at create ("fair.tenant_default.weight:
 * ..."). */
static sluice_err check_default_config(const sluice_tenant_config *c, char *errbuf, size_t errlen)
{
    char why[128];
    const char *field = tenant_config_fault(c, why, sizeof why);
    if (field) {
        sluice__errf(errbuf, errlen, "fair.tenant_default.%s: %s", field, why);
        return SLUICE_EINVAL;
    }
    return SLUICE_OK;
}

SLUICE__ENUM_FUNCTIONS(sluice_queue_discipline, SLUICE_QUEUE_DISCIPLINE_MAP, 0, "unknown",
                       sluice_queue_discipline_name, sluice_queue_discipline_parse)
SLUICE__ENUM_FUNCTIONS(sluice_tenant_overflow, SLUICE_TENANT_OVERFLOW_MAP, 0, "unknown",
                       sluice_tenant_overflow_name, sluice_tenant_overflow_parse)

sluice_err sluice__fair_validate(const sluice_pool_config *cfg, char *errbuf, size_t errlen)
{
    const sluice_fair_config *f = &cfg->fair;
    if ((unsigned)cfg->queue_discipline >= SLUICE_QUEUE_DISCIPLINE_COUNT_) {
        sluice__errf(errbuf, errlen,
                     "queue_discipline: unknown discipline %d (fifo, fair, sharded or fifo_batch)",
                     (int)cfg->queue_discipline);
        return SLUICE_EINVAL;
    }
    if (cfg->queue_discipline != SLUICE_QUEUE_FAIR) {
        return SLUICE_OK;
    }
    if (cfg->queue_capacity > UINT32_MAX) {
        sluice__errf(errbuf, errlen, "queue_capacity: at most %u with queue_discipline fair, got %zu",
                     UINT32_MAX, cfg->queue_capacity);
        return SLUICE_EINVAL;
    }
    if (f->max_tenants > MAX_MAX_TENANTS) {
        sluice__errf(errbuf, errlen, "fair.max_tenants: at most %u, got %u", MAX_MAX_TENANTS, f->max_tenants);
        return SLUICE_EINVAL;
    }
    if (f->shard_queues > MAX_SHARDS) {
        sluice__errf(errbuf, errlen, "fair.shard_queues: at most %u, got %u", MAX_SHARDS, f->shard_queues);
        return SLUICE_EINVAL;
    }
    unsigned shards = f->shard_queues ? f->shard_queues : DEFAULT_SHARDS;
    if (f->hand_size > MAX_HAND || f->hand_size > shards) {
        sluice__errf(errbuf, errlen, "fair.hand_size: at most %u and at most shard_queues (%u), got %u",
                     MAX_HAND, shards, f->hand_size);
        return SLUICE_EINVAL;
    }
    return check_default_config(&f->tenant_default, errbuf, errlen);
}

/* ---- the lock ------------------------------------------------------------------ */

/* Take mu. A thread that finds it held counts itself in `contended`
 * until it has it, so that a scrape walking in pieces lets it in between
 * two pieces (let_in) instead of taking mu straight back: a mutex is not
 * fair, and the walker, releasing and retaking it on a hot cache line,
 * would win against a waiter that must first wake up, for the whole walk.
 * Uncontended, this is the plain lock's one compare-and-swap. */
static void fair_lock(fair *fq)
{
    if (pthread_mutex_trylock(&fq->mu) == 0) {
        return;
    }
    atomic_fetch_add_explicit(&fq->contended, 1, memory_order_relaxed);
    pthread_mutex_lock(&fq->mu);
    atomic_fetch_sub_explicit(&fq->contended, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&fq->handoffs, 1, memory_order_relaxed);
}

/* Between two pieces of a walk (mu not held): while threads wait for mu,
 * give them the chance to take it: yield until one has (a handoff) or
 * LET_IN_TRIES yields have passed (a pool so busy that someone always
 * waits still lets the walk go on). */
#define LET_IN_TRIES 64u

static void let_in(fair *fq)
{
    uint64_t before = atomic_load_explicit(&fq->handoffs, memory_order_relaxed);
    for (unsigned i = 0; i < LET_IN_TRIES && atomic_load_explicit(&fq->contended, memory_order_relaxed) > 0 &&
                         atomic_load_explicit(&fq->handoffs, memory_order_relaxed) == before;
         i++) {
        sched_yield();
    }
}

/* ---- tenant state (all under fq->mu) ---------------------------------------- */

/* Take a tenant's contribution out of the aggregate counts (invariant 3)
 * before changing its queued, running or config ... */
static void acct_out(fair *fq, struct sluice_tenant *t)
{
    if (t->queued > 0 && !t->capped) {
        fq->n_uncapped--;
    }
    if (t->capped && t->cfg.strict) {
        fq->strict_blocked -= t->queued;
    }
}

/* ... and put it back after. */
static void acct_in(fair *fq, struct sluice_tenant *t)
{
    t->capped = t->cfg.running_limit != 0 && t->running >= t->cfg.running_limit;
    if (t->queued > 0 && !t->capped) {
        fq->n_uncapped++;
    }
    if (t->capped && t->cfg.strict) {
        fq->strict_blocked += t->queued;
    }
}

/* Mirror the counts for the lock-free readers, in one word so one seq_cst
 * store (see the header) covers both, and only when they changed. */
static void publish(fair *fq)
{
    uint64_t word = ((uint64_t)(fq->total - fq->strict_blocked) << 32) | (uint64_t)fq->total;
    if (word != fq->published) {
        fq->published = word;
        atomic_store_explicit(&fq->counts_a, word, memory_order_seq_cst);
    }
}

#define COUNTS_AVAIL(w) ((w) >> 32)
#define COUNTS_DEPTH(w) ((w)&UINT64_C(0xffffffff))

static void active_insert(fair *fq, struct sluice_tenant *t)
{
    /* Joins at the back of the round: just before the tenant whose turn it is. */
    if (!fq->turn) {
        t->act_next = t->act_prev = t;
        fq->turn = t;
    } else {
        struct sluice_tenant *back = fq->turn->act_prev;
        t->act_prev = back;
        t->act_next = fq->turn;
        back->act_next = t;
        fq->turn->act_prev = t;
    }
    t->deficit = 0;
    t->credited = false;
    fq->nactive++;
}

static void active_remove(fair *fq, struct sluice_tenant *t)
{
    if (t->act_next == t) {
        fq->turn = NULL;
    } else {
        t->act_prev->act_next = t->act_next;
        t->act_next->act_prev = t->act_prev;
        if (fq->turn == t) {
            fq->turn = t->act_next;
        }
    }
    t->act_next = t->act_prev = NULL;
    t->deficit = 0;
    t->credited = false;
    fq->nactive--;
}

static bool forgettable(const struct sluice_tenant *t)
{
    return t->kind == KIND_TRACKED && !t->configured && t->queued == 0 && t->held == 0 && t->refs == 0;
}

static void idle_unlink(fair *fq, struct sluice_tenant *t)
{
    if (t->idle_prev) {
        t->idle_prev->idle_next = t->idle_next;
    } else {
        fq->idle_head = t->idle_next;
    }
    if (t->idle_next) {
        t->idle_next->idle_prev = t->idle_prev;
    } else {
        fq->idle_tail = t->idle_prev;
    }
    t->idle_prev = t->idle_next = NULL;
    t->on_idle = false;
}

/* Keep invariant 5 after a change to t. Reads the pool clock only when t
 * goes idle. */
static void settle(fair *fq, struct sluice_tenant *t)
{
    bool f = forgettable(t);
    if (f && !t->on_idle) {
        t->idle_since = sluice__now(fq->pool);
        t->idle_prev = fq->idle_tail;
        t->idle_next = NULL;
        if (fq->idle_tail) {
            fq->idle_tail->idle_next = t;
        } else {
            fq->idle_head = t;
        }
        fq->idle_tail = t;
        t->on_idle = true;
    } else if (!f && t->on_idle) {
        idle_unlink(fq, t);
    }
}

static size_t tenant_size(const fair *fq)
{
    return sizeof(struct sluice_tenant) + (fq->nbounds + 1) * sizeof(uint64_t);
}

static void table_unlink(fair *fq, struct sluice_tenant *t)
{
    struct sluice_tenant **link = &fq->buckets[t->hash & (fq->nbuckets - 1)];
    while (*link != t) {
        link = &(*link)->hnext;
    }
    *link = t->hnext;
}

/* Add a tenant about to be forgotten to fq->retired, so that the tenants
 * listed plus the retired record still add up to the pool's totals. An
 * idle tenant has nothing queued, running or held: only counters. */
static void retire(fair *fq, const struct sluice_tenant *t)
{
    struct sluice_tenant *r = fq->retired;
    SLUICE__ASSERT(t->queued == 0 && t->running == 0 && t->held == 0);
    r->submitted += t->submitted;
    r->started += t->started;
    r->completed += t->completed;
    r->failed += t->failed;
    r->panicked += t->panicked;
    r->dropped += t->dropped;
    r->rejected += t->rejected;
    r->shed += t->shed;
    r->abandoned += t->abandoned;
    r->caller_ran += t->caller_ran;
    r->wait_sum_ns += t->wait_sum_ns;
    for (size_t i = 0; i <= fq->nbounds; i++) {
        r->wait_counts[i] += t->wait_counts[i];
    }
}

/* Forget the tenants idle for forget_ns or longer (the idle list is in
 * the order they went idle), at most `limit` of them. Returns true when
 * it stopped at the limit with more due. */
static bool sweep_some(fair *fq, size_t limit)
{
    if (fq->forget_ns == UINT64_MAX || !fq->idle_head) {
        return false;
    }
    uint64_t now = sluice__now(fq->pool);
    while (fq->idle_head && now - fq->idle_head->idle_since >= fq->forget_ns) {
        if (limit-- == 0) {
            return true;
        }
        struct sluice_tenant *t = fq->idle_head;
        idle_unlink(fq, t);
        table_unlink(fq, t);
        retire(fq, t);
        fq->tracked_dynamic--;
        fq->forgotten++;
        fq->tenant_bytes -= tenant_size(fq);
        free(t);
    }
    return false;
}

static void sweep(fair *fq)
{
    (void)sweep_some(fq, SIZE_MAX);
}

static struct sluice_tenant *table_find(fair *fq, const char *name, uint64_t h)
{
    for (struct sluice_tenant *t = fq->buckets[h & (fq->nbuckets - 1)]; t; t = t->hnext) {
        if (t->hash == h && strcmp(t->name, name) == 0) {
            return t;
        }
    }
    return NULL;
}

void *(*sluice__fair_tenant_calloc)(size_t count, size_t size) = calloc;

static size_t tenant_bytes(const fair *fq, tenant_kind kind)
{
    return kind == KIND_ALIAS ? sizeof(struct sluice_tenant) : tenant_size(fq);
}

/* Fill a fresh record (zeroed, tenant_bytes(fq, kind) long) and, when
 * tracked, put it in the table. */
static void tenant_init(fair *fq, struct sluice_tenant *t, tenant_kind kind, const char *name, uint64_t h,
                        const sluice_tenant_config *cfg)
{
    size_t size = tenant_bytes(fq, kind);
    t->fq = fq;
    t->kind = kind;
    t->hash = h;
    t->serial = ++fq->serials;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->cfg = *cfg;
    normalize(&t->cfg);
    if (kind == KIND_TRACKED) {
        struct sluice_tenant **b = &fq->buckets[h & (fq->nbuckets - 1)];
        t->hnext = *b;
        *b = t;
        fq->tenant_bytes += size;
    }
}

static struct sluice_tenant *tenant_new(fair *fq, tenant_kind kind, const char *name, uint64_t h,
                                        const sluice_tenant_config *cfg)
{
    struct sluice_tenant *t = sluice__fair_tenant_calloc(1, tenant_bytes(fq, kind));
    if (t) {
        tenant_init(fq, t, kind, name, h, cfg);
    }
    return t;
}

/* Deal a hand of fq->hand distinct shard queues from h (mixed radix:
 * h mod S, then mod S-1, ...; remixed when the hash runs low), then put
 * it in a dealt order drawn from the hash too. The order matters:
 * shortest_of takes the first of equally short queues, and when the pool
 * keeps up every queue is empty, so a name's tasks go to the first queue
 * of its hand. Left sorted, that would be its lowest-numbered queue, and
 * an idle pool would pile names onto ~shard-0, -1, ... (shard 0 is the
 * lowest of 1 in S/hand hands: 12.5% of all sharded traffic with 64
 * queues and hands of 8, eight times its share). Shuffled, the first
 * queue is uniform over the shards, so idle traffic spreads evenly, and a
 * name keeps one queue while it is alone (its tasks stay in order). */
static void deal_hand(const fair *fq, uint64_t h, uint16_t *hand)
{
    uint64_t bits = h;
    for (unsigned i = 0; i < fq->hand; i++) {
        unsigned left = fq->nshards - i;
        if (bits < left) {
            bits = mix64(h + i + 1);
        }
        unsigned r = (unsigned)(bits % left);
        bits /= left;
        /* The r-th shard not yet in the hand (kept sorted while dealt). */
        unsigned pick = r;
        for (unsigned j = 0; j < i; j++) {
            if (hand[j] <= pick) {
                pick++;
            }
        }
        /* Insert in order. */
        unsigned j = i;
        while (j > 0 && hand[j - 1] > pick) {
            hand[j] = hand[j - 1];
            j--;
        }
        hand[j] = (uint16_t)pick;
    }
    /* Fisher-Yates with bits independent of the ones that chose the hand. */
    uint64_t order = mix64(h ^ UINT64_C(0x9e3779b97f4a7c15));
    for (unsigned i = fq->hand - 1; i > 0; i--) {
        unsigned j = (unsigned)(order % (i + 1));
        order /= i + 1;
        uint16_t tmp = hand[i];
        hand[i] = hand[j];
        hand[j] = tmp;
    }
}

static struct sluice_tenant *shortest_of(fair *fq, const uint16_t *hand)
{
    struct sluice_tenant *best = fq->shards[hand[0]];
    for (unsigned i = 1; i < fq->hand; i++) {
        struct sluice_tenant *s = fq->shards[hand[i]];
        if (s->queued < best->queued) {
            best = s;
        }
    }
    return best;
}

/* The queue tenant a task's tenant stands for: an alias's shortest shard. */
static struct sluice_tenant *resolve(fair *fq, struct sluice_tenant *t)
{
    return t->kind == KIND_ALIAS ? shortest_of(fq, t->hand) : t;
}

/*
 * Find or make the tenant for `name` (under mu). Returns a tracked tenant,
 * or, beyond max_tenants, a shard queue (alias_out NULL) or a new alias
 * (alias_out set). SLUICE_ENOENT under known_only.
 */
static sluice_err lookup_locked(fair *fq, const char *name, bool want_alias, struct sluice_tenant **out)
{
    uint64_t h = name_hash(fq, name);
    struct sluice_tenant *t = table_find(fq, name, h);
    if (t && !(fq->known_only && !t->configured)) {
        *out = t;
        return SLUICE_OK;
    }
    if (fq->known_only) {
        /* A name unset (sluice_pool_tenant_unset) is unknown again, though
         * tracked until forgotten; handles already held keep working. */
        return SLUICE_ENOENT;
    }
    /* A piece, not all that are due: a mass expiry is freed over the next
     * new names and scrapes, never in one submit (one freed is room). */
    (void)sweep_some(fq, SWEEP_CHUNK);
    if (fq->tracked_dynamic < fq->max_tenants) {
        t = tenant_new(fq, KIND_TRACKED, name, h, &fq->dflt);
        if (!t) {
            return SLUICE_ENOMEM;
        }
        fq->tracked_dynamic++;
        *out = t;
        return SLUICE_OK;
    }
    uint16_t hand[MAX_HAND] = {0};
    deal_hand(fq, h, hand);
    if (!want_alias) {
        *out = shortest_of(fq, hand);
        return SLUICE_OK;
    }
    t = tenant_new(fq, KIND_ALIAS, name, h, &fq->dflt);
    if (!t) {
        return SLUICE_ENOMEM;
    }
    memcpy(t->hand, hand, sizeof hand);
    *out = t;
    return SLUICE_OK;
}

/* ---- create / destroy ------------------------------------------------------- */

static void fair_destroy(void *q)
{
    fair *fq = q;
    if (!fq) {
        return;
    }
    for (size_t i = 0; fq->buckets && i < fq->nbuckets; i++) {
        struct sluice_tenant *t = fq->buckets[i];
        while (t) {
            struct sluice_tenant *next = t->hnext;
            free(t);
            t = next;
        }
    }
    for (unsigned i = 0; fq->shards && i < fq->nshards; i++) {
        free(fq->shards[i]);
    }
    free(fq->retired);
    free(fq->sum);
    free(fq->shards);
    free(fq->buckets);
    free(fq->nodes);
    pthread_mutex_destroy(&fq->mu);
    free(fq);
}

sluice_err sluice__fair_create(struct sluice_pool *pool, void **out)
{
    const sluice_pool_config *cfg = &pool->cfg;
    const sluice_fair_config *f = &cfg->fair;
    fair *fq = aligned_alloc(SLUICE__CACHELINE,
                             (sizeof *fq + SLUICE__CACHELINE - 1) / SLUICE__CACHELINE * SLUICE__CACHELINE);
    if (!fq) {
        return SLUICE_ENOMEM;
    }
    memset(fq, 0, sizeof *fq);
    /* Adaptive: critical sections are a few dozen instructions, so a
     * contended lock spins briefly before it sleeps in the kernel. */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&fq->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    fq->pool = pool;
    fq->capacity = cfg->queue_capacity;
    fq->nbounds = pool->nbounds;
    fq->max_tenants = f->max_tenants ? f->max_tenants : DEFAULT_MAX_TENANTS;
    fq->nshards = f->shard_queues ? f->shard_queues : DEFAULT_SHARDS;
    fq->hand = f->hand_size ? f->hand_size : (fq->nshards < DEFAULT_HAND ? fq->nshards : DEFAULT_HAND);
    fq->forget_ns = f->idle_forget_ns ? f->idle_forget_ns : DEFAULT_IDLE_FORGET_NS;
    fq->known_only = f->known_only;
    fq->dflt = f->tenant_default;
    normalize(&fq->dflt);
    /* Not secret, but not fixed either: a name flood cannot be precomputed
     * to land in one bucket of every process. */
    fq->seed = mix64((uint64_t)(uintptr_t)fq ^ sluice_clock_now(NULL));

    fq->nbuckets = 16;
    while (fq->nbuckets < fq->max_tenants) {
        fq->nbuckets *= 2;
    }
    fq->nodes = calloc(fq->capacity, sizeof(node));
    fq->buckets = calloc(fq->nbuckets, sizeof *fq->buckets);
    fq->shards = calloc(fq->nshards, sizeof *fq->shards);
    if (!fq->nodes || !fq->buckets || !fq->shards) {
        fair_destroy(fq);
        return SLUICE_ENOMEM;
    }
    for (size_t i = 0; i < fq->capacity; i++) {
        fq->nodes[i].next = i + 1 < fq->capacity ? &fq->nodes[i + 1] : NULL;
    }
    fq->free_nodes = &fq->nodes[0];
    for (unsigned i = 0; i < fq->nshards; i++) {
        char name[32];
        snprintf(name, sizeof name, "~shard-%u", i);
        fq->shards[i] = tenant_new(fq, KIND_SHARD, name, i, &fq->dflt);
        if (!fq->shards[i]) {
            fair_destroy(fq);
            return SLUICE_ENOMEM;
        }
    }
    /* "default": the tenant of tasks that name none; configured, so it is
     * never forgotten nor refused by known_only. */
    fq->dflt_tenant = tenant_new(fq, KIND_TRACKED, DEFAULT_TENANT, name_hash(fq, DEFAULT_TENANT), &fq->dflt);
    if (!fq->dflt_tenant) {
        fair_destroy(fq);
        return SLUICE_ENOMEM;
    }
    fq->dflt_tenant->configured = true;
    fq->tracked_configured = 1;
    /* Not in the table: a record, never queued on. */
    fq->retired = tenant_new(fq, KIND_SHARD, SLUICE_TENANT_FORGOTTEN, 0, &fq->dflt);
    if (!fq->retired) {
        fair_destroy(fq);
        return SLUICE_ENOMEM;
    }
    fq->retired->serial = 0;
    fq->sum = tenant_new(fq, KIND_SHARD, "~sum", 0, &fq->dflt);
    if (!fq->sum) {
        fair_destroy(fq);
        return SLUICE_ENOMEM;
    }
    fq->sum->serial = 0;
    *out = fq;
    return SLUICE_OK;
}

/* ---- the queue operations ----------------------------------------------------- */

/* Count one more of t's `field`, in t and in fq->sum (invariant 6). */
#define COUNT(fq, t, field) ((t)->field++, (fq)->sum->field++)

/* Before t's first submitted or rejected: a shard queue is listed from
 * then on (invariant 6's shards_seen). */
static void note_traffic(fair *fq, const struct sluice_tenant *t)
{
    if (t->kind == KIND_SHARD && t->submitted == 0 && t->rejected == 0) {
        fq->shards_seen++;
    }
}

static void enqueue_locked(fair *fq, struct sluice_tenant *t, const sluice__task *task)
{
    node *n = fq->free_nodes;
    fq->free_nodes = n->next;
    n->task = *task;
    n->task.tenant = t;
    n->next = NULL;
    n->prev = t->tail;
    acct_out(fq, t);
    if (t->tail) {
        t->tail->next = n;
    } else {
        t->head = n;
    }
    t->tail = n;
    t->queued++;
    fq->total++;
    acct_in(fq, t);
    if (t->queued == 1) {
        active_insert(fq, t);
        settle(fq, t);
    }
}

/* Take t's oldest task (its newest with `newest`: adaptive LIFO) into
 * *out. popped: a start (counts in running). */
static void dequeue_locked(fair *fq, struct sluice_tenant *t, sluice__task *out, bool popped, bool newest)
{
    node *n = newest ? t->tail : t->head;
    acct_out(fq, t);
    if (newest) {
        t->tail = n->prev;
        if (t->tail) {
            t->tail->next = NULL;
        } else {
            t->head = NULL;
        }
    } else {
        t->head = n->next;
        if (t->head) {
            t->head->prev = NULL;
        } else {
            t->tail = NULL;
        }
    }
    t->queued--;
    fq->total--;
    t->held++;
    if (popped) {
        COUNT(fq, t, running);
        COUNT(fq, t, started);
    }
    acct_in(fq, t);
    if (t->queued == 0) {
        active_remove(fq, t);
    }
    *out = n->task;
    n->next = fq->free_nodes;
    fq->free_nodes = n;
}

static sluice__qres fair_push(void *q, const sluice__task *task, uint64_t *pos_out)
{
    fair *fq = q;
    fair_lock(fq);
    if (fq->closed) {
        pthread_mutex_unlock(&fq->mu);
        return SLUICE__Q_CLOSED;
    }
    struct sluice_tenant *t = task->tenant ? task->tenant : fq->dflt_tenant;
    if (t->kind == KIND_ALIAS) {
        t = shortest_of(fq, t->hand);
    }
    if (t->cfg.queued_limit && t->queued >= t->cfg.queued_limit) {
        pthread_mutex_unlock(&fq->mu);
        return SLUICE__Q_TENANT_FULL;
    }
    if (fq->total >= fq->capacity) {
        pthread_mutex_unlock(&fq->mu);
        return SLUICE__Q_FULL;
    }
    if (t->kind == KIND_SHARD) {
        fq->sharded_submits++;
    }
    enqueue_locked(fq, t, task);
    note_traffic(fq, t);
    COUNT(fq, t, submitted);
    uint64_t pos = atomic_load_explicit(&fq->pushed_a, memory_order_relaxed);
    /* Release: pairs with the acquire in fair_pushed (stats). */
    atomic_store_explicit(&fq->pushed_a, pos + 1, memory_order_release);
    publish(fq);
    pthread_mutex_unlock(&fq->mu);
    if (pos_out) {
        *pos_out = pos;
    }
    return SLUICE__Q_OK;
}

static bool eligible(const fair *fq, const struct sluice_tenant *t)
{
    return !t->capped || (!t->cfg.strict && fq->n_uncapped == 0);
}

/* The pop proper, under mu; the caller publishes. pop and pop_newest
 * alike take the tenant by deficit round robin; with `newest` that
 * tenant's newest task (adaptive LIFO while the queue stands,
 * src/core/overload.c), so LIFO reorders within a tenant and never across
 * tenants' shares. */
static sluice__qres pop_locked(fair *fq, sluice__task *out, bool newest)
{
    /* Each pass either serves the tenant whose turn it is or passes the
     * turn on from an ineligible one; after nactive passes every tenant
     * has been looked at. */
    for (unsigned pass = 0, n = fq->nactive; pass < n && fq->turn; pass++) {
        struct sluice_tenant *t = fq->turn;
        if (!eligible(fq, t)) {
            t->deficit = 0; /* a skipped turn earns no credit */
            t->credited = false;
            fq->turn = t->act_next;
            continue;
        }
        if (!t->credited) {
            t->deficit += t->cfg.weight;
            t->credited = true;
        }
        /* weight >= 1 and the deficit never goes below 0: it is >= 1. */
        t->deficit--;
        bool spent = t->deficit < 1;
        dequeue_locked(fq, t, out, true, newest);
        if (t->queued > 0 && spent) {
            t->credited = false;
            fq->turn = t->act_next;
        }
        return SLUICE__Q_OK;
    }
    return SLUICE__Q_EMPTY;
}

static sluice__qres take(void *q, sluice__task *out, bool newest)
{
    fair *fq = q;
    if (COUNTS_AVAIL(atomic_load_explicit(&fq->counts_a, memory_order_relaxed)) == 0) {
        /* Nothing that may start: skip the lock. A push in flight wakes a
         * worker or is seen through pending() (seq_cst), as with the ring;
         * a later load cannot read an older value than pending() read. */
        return SLUICE__Q_EMPTY;
    }
    fair_lock(fq);
    sluice__qres r = pop_locked(fq, out, newest);
    publish(fq);
    pthread_mutex_unlock(&fq->mu);
    return r;
}

static sluice__qres fair_pop(void *q, sluice__task *out)
{
    return take(q, out, false);
}

static sluice__qres fair_pop_newest(void *q, sluice__task *out)
{
    return take(q, out, true);
}

/* The enqueue_ns of the task fair_pop would return next: the head of the
 * first eligible tenant from the turn on (as pop_locked walks, without
 * moving the turn); 0 when none may start. */
static uint64_t fair_oldest_ns(void *q)
{
    fair *fq = q;
    uint64_t ns = 0;
    fair_lock(fq);
    struct sluice_tenant *t = fq->turn;
    for (unsigned pass = 0; pass < fq->nactive && t; pass++, t = t->act_next) {
        if (eligible(fq, t)) {
            ns = t->head->task.enqueue_ns;
            break;
        }
    }
    pthread_mutex_unlock(&fq->mu);
    return ns;
}

/* The tenant most over its share: the largest queued / weight (ties: the
 * first found). */
static struct sluice_tenant *most_over_share(fair *fq)
{
    struct sluice_tenant *best = NULL;
    struct sluice_tenant *t = fq->turn;
    for (unsigned i = 0; i < fq->nactive; i++, t = t->act_next) {
        if (!best || (unsigned __int128)t->queued * best->cfg.weight >
                         (unsigned __int128)best->queued * t->cfg.weight) {
            best = t;
        }
    }
    return best;
}

static sluice__qres fair_evict(void *q, const sluice__task *incoming, sluice__task *out)
{
    fair *fq = q;
    fair_lock(fq);
    struct sluice_tenant *victim = NULL;
    if (incoming) {
        struct sluice_tenant *t = resolve(fq, incoming->tenant ? incoming->tenant : fq->dflt_tenant);
        if (t->cfg.queued_limit && t->queued >= t->cfg.queued_limit) {
            if (t->cfg.overflow != SLUICE_TENANT_OVERFLOW_DROP_OLDEST) {
                pthread_mutex_unlock(&fq->mu);
                return SLUICE__Q_TENANT_FULL;
            }
            victim = t;
        } else {
            victim = most_over_share(fq);
        }
    } else {
        victim = fq->turn;
    }
    if (!victim || victim->queued == 0) {
        pthread_mutex_unlock(&fq->mu);
        return SLUICE__Q_EMPTY;
    }
    dequeue_locked(fq, victim, out, false, false);
    publish(fq);
    pthread_mutex_unlock(&fq->mu);
    return SLUICE__Q_OK;
}

/* The finish proper, under mu; the caller publishes. Returns true when it
 * let a strict capped tenant's queued tasks start again. */
static bool finish_locked(fair *fq, struct sluice_tenant *t, sluice__origin origin, sluice__outcome outcome,
                          int wait_bucket, uint64_t wait_ns)
{
    t = t ? t : fq->dflt_tenant;
    if (t->kind == KIND_ALIAS) {
        t = fq->shards[t->hand[0]];
    }
    bool unblocked = false;
    switch (origin) {
    case SLUICE__FROM_POP:
        unblocked = t->capped && t->cfg.strict && t->queued > 0;
        acct_out(fq, t);
        t->running--;
        fq->sum->running--;
        t->held--;
        acct_in(fq, t);
        unblocked = unblocked && !t->capped;
        break;
    case SLUICE__FROM_EVICT:
        t->held--;
        break;
    case SLUICE__FROM_SUBMIT:
        if (outcome != SLUICE__OUT_REJECTED) {
            note_traffic(fq, t);
            COUNT(fq, t, submitted); /* accepted and run (or shed) by CALLER_RUNS */
            if (outcome <= SLUICE__OUT_PANICKED) {
                COUNT(fq, t, caller_ran);
            }
        }
        break;
    }
    switch (outcome) {
    case SLUICE__OUT_COMPLETED:
        COUNT(fq, t, completed);
        break;
    case SLUICE__OUT_FAILED:
        COUNT(fq, t, failed);
        break;
    case SLUICE__OUT_PANICKED:
        COUNT(fq, t, panicked);
        break;
    case SLUICE__OUT_SHED:
        COUNT(fq, t, shed);
        break;
    case SLUICE__OUT_DROPPED:
        COUNT(fq, t, dropped);
        break;
    case SLUICE__OUT_ABANDONED:
        COUNT(fq, t, abandoned);
        break;
    case SLUICE__OUT_REJECTED:
        note_traffic(fq, t);
        COUNT(fq, t, rejected);
        break;
    }
    if (wait_bucket >= 0 && (size_t)wait_bucket <= fq->nbounds) {
        COUNT(fq, t, wait_counts[wait_bucket]);
        t->wait_sum_ns += wait_ns;
        fq->sum->wait_sum_ns += wait_ns;
    }
    settle(fq, t);
    return unblocked;
}

static void fair_finish(void *q, const sluice__task *task, sluice__origin origin, sluice__outcome outcome,
                        int wait_bucket, uint64_t wait_ns)
{
    fair *fq = q;
    fair_lock(fq);
    bool unblocked = finish_locked(fq, task->tenant, origin, outcome, wait_bucket, wait_ns);
    publish(fq);
    pthread_mutex_unlock(&fq->mu);
    if (unblocked) {
        /* A strict tenant's task may start again. The worker finishing
         * here usually pops it next, but one that retires now (shrink, a
         * fault) would not, and idle workers parked while it was blocked
         * (it did not count as pending): wake one. Called on a worker, so
         * the pool outlives the call. */
        sluice__spawn_for_work(fq->pool, 1);
    }
}

/* A worker's finish of its last task and its next pop under one lock: a
 * task costs the queue two lock round trips (push, this) instead of three
 * (push, pop, finish). The finish comes first, so a tenant it uncaps is
 * eligible for this very pop. */
static sluice__qres fair_pop_finish(void *q, const sluice__done *done, sluice__task *out)
{
    fair *fq = q;
    fair_lock(fq);
    bool unblocked =
        finish_locked(fq, done->tenant, SLUICE__FROM_POP, done->outcome, done->wait_bucket, done->wait_ns);
    sluice__qres r = pop_locked(fq, out, false);
    publish(fq);
    pthread_mutex_unlock(&fq->mu);
    if (unblocked) {
        /* As in fair_finish: this worker may have taken another tenant's
         * task, and workers that parked while the tenant was blocked do
         * not know it may start. */
        sluice__spawn_for_work(fq->pool, 1);
    }
    return r;
}

static void fair_close(void *q)
{
    fair *fq = q;
    fair_lock(fq);
    fq->closed = true;
    pthread_mutex_unlock(&fq->mu);
}

static bool fair_pending(void *q)
{
    return COUNTS_AVAIL(atomic_load_explicit(&((fair *)q)->counts_a, memory_order_seq_cst)) > 0;
}

static bool fair_ready(void *q)
{
    return COUNTS_AVAIL(atomic_load_explicit(&((fair *)q)->counts_a, memory_order_relaxed)) > 0;
}

static size_t fair_depth(void *q)
{
    return (size_t)COUNTS_DEPTH(atomic_load_explicit(&((fair *)q)->counts_a, memory_order_seq_cst));
}

static uint64_t fair_pushed(void *q)
{
    return atomic_load_explicit(&((fair *)q)->pushed_a, memory_order_acquire);
}

static size_t fair_capacity(void *q)
{
    return ((fair *)q)->capacity;
}

const sluice__queue_ops sluice__fair_ops = {
    .push = fair_push,
    .pop = fair_pop,
    .close = fair_close,
    .pending = fair_pending,
    .ready = fair_ready,
    .depth = fair_depth,
    .pushed = fair_pushed,
    .capacity = fair_capacity,
    .destroy = fair_destroy,
    .evict = fair_evict,
    .finish = fair_finish,
    .pop_newest = fair_pop_newest,
    .oldest_ns = fair_oldest_ns,
    .pop_finish = fair_pop_finish,
};

/* ---- the submit side ------------------------------------------------------------ */

sluice_err sluice__fair_tenant_ref(struct sluice_pool *pool, const sluice_submit_opts *opts,
                                   struct sluice_tenant **out, bool *unref)
{
    fair *fq = pool->q;
    *unref = false;
    if (opts && opts->tenant) {
        if (opts->tenant->fq != fq) {
            return SLUICE_EINVAL; /* a handle of another pool */
        }
        *out = opts->tenant; /* the handle holds a reference */
        return SLUICE_OK;
    }
    if (!opts || !opts->tenant_name) {
        *out = fq->dflt_tenant;
        return SLUICE_OK;
    }
    if (!sluice__name_valid(opts->tenant_name, SLUICE_TENANT_NAME_MAX)) {
        return SLUICE_EINVAL;
    }
    fair_lock(fq);
    struct sluice_tenant *t = NULL;
    sluice_err err = lookup_locked(fq, opts->tenant_name, false, &t);
    if (!err && t->kind == KIND_TRACKED) {
        t->refs++;
        settle(fq, t);
        *unref = true;
    }
    pthread_mutex_unlock(&fq->mu);
    *out = t;
    return err;
}

void sluice__fair_tenant_unref(struct sluice_pool *pool, struct sluice_tenant *t)
{
    fair *fq = pool->q;
    fair_lock(fq);
    t->refs--;
    settle(fq, t);
    pthread_mutex_unlock(&fq->mu);
}

/* ---- the public tenant API -------------------------------------------------------- */

/* Give t a new config, keeping the aggregate counts (invariant 3) true
 * across the change of its running limit and strictness. */
static void retune(fair *fq, struct sluice_tenant *t, const sluice_tenant_config *cfg)
{
    acct_out(fq, t);
    t->cfg = *cfg;
    normalize(&t->cfg);
    acct_in(fq, t);
}

/* The end of a config change (called with mu held; releases it): settle t
 * (NULL: none in particular), publish the counts, and wake workers for the
 * queued tasks a higher running limit may have let start. */
static sluice_err settle_and_wake(struct sluice_pool *pool, fair *fq, struct sluice_tenant *t)
{
    if (t) {
        settle(fq, t);
    }
    publish(fq);
    size_t depth = fq->total;
    pthread_mutex_unlock(&fq->mu);
    if (depth) {
        sluice__spawn_for_work(pool, depth);
    }
    return SLUICE_OK;
}

/* The checks every tenant setter shares: errbuf cleared, the arguments
 * checked (name when with_name, cfg when given; need_cfg: cfg must be).
 * Returns whether they pass, else false with *err set. Every message
 * (setter_begin's too) begins with its subject - `tenant
 * "NAME"` (or `tenant name` when the name itself is missing), or `tenants'
 * default` for default_set - and names the bad field or argument:
 * `tenant "gold": weight 20000 is out of range 0..10000 (0 means 1)`. */
static bool setter_check(sluice_pool *pool, bool with_name, const char *name, bool need_cfg,
                         const sluice_tenant_config *cfg, char *errbuf, size_t errlen, sluice_err *err)
{
    if (errbuf && errlen) {
        errbuf[0] = '\0';
    }
    *err = SLUICE_EINVAL;
    if (with_name && check_tenant_name(name, errbuf, errlen)) {
        return false;
    }
    char subject[SLUICE_TENANT_NAME_MAX + 16];
    if (with_name) {
        snprintf(subject, sizeof subject, "tenant \"%s\"", name); /* checked: 1..64 bytes */
    } else {
        snprintf(subject, sizeof subject, "tenants' default");
    }
    if (!pool || (need_cfg && !cfg)) {
        sluice__errf(errbuf, errlen, "%s: %s is NULL", subject, !pool ? "pool" : "cfg");
        return false;
    }
    if (!pool->fair) {
        sluice__errf(errbuf, errlen, "%s: pool %s is not fair; tenants need queue_discipline fair", subject,
                     pool->name);
        *err = SLUICE_ENOTSUP;
        return false;
    }
    char why[128];
    const char *field = cfg ? tenant_config_fault(cfg, why, sizeof why) : NULL;
    if (field) {
        sluice__errf(errbuf, errlen, "%s: %s %s", subject, field, why);
        return false;
    }
    return true;
}

/* The opening every tenant setter shares: setter_check, then fq->mu
 * taken and the pool not draining. Returns the queue, locked, or NULL
 * with *err set. */
static fair *setter_begin(sluice_pool *pool, bool with_name, const char *name, bool need_cfg,
                          const sluice_tenant_config *cfg, char *errbuf, size_t errlen, sluice_err *err)
{
    if (!setter_check(pool, with_name, name, need_cfg, cfg, errbuf, errlen, err)) {
        return NULL;
    }
    char subject[SLUICE_TENANT_NAME_MAX + 16];
    if (with_name) {
        snprintf(subject, sizeof subject, "tenant \"%s\"", name);
    } else {
        snprintf(subject, sizeof subject, "tenants' default");
    }
    fair *fq = pool->q;
    fair_lock(fq);
    if (fq->closed) {
        pthread_mutex_unlock(&fq->mu);
        sluice__errf(errbuf, errlen, "%s: pool %s is draining", subject, pool->name);
        *err = SLUICE_ECLOSED;
        return NULL;
    }
    return fq;
}

/* Make t (found in the table, or fresh: zeroed, not yet in it) the
 * tenant set by name as cfg (mu held). */
static void set_locked(fair *fq, struct sluice_tenant *t, bool fresh, const char *name, uint64_t h,
                       const sluice_tenant_config *cfg)
{
    if (fresh) {
        tenant_init(fq, t, KIND_TRACKED, name, h, cfg);
        t->configured = true;
        fq->tracked_configured++;
    } else {
        if (!t->configured) {
            t->configured = true;
            fq->tracked_dynamic--;
            fq->tracked_configured++;
        }
        retune(fq, t, cfg);
    }
    t->named = true;
}

/* Undo set_locked for t, set by name (mu held). */
static void unset_locked(fair *fq, struct sluice_tenant *t)
{
    t->named = false;
    if (t != fq->dflt_tenant) {
        /* Back among the tenants tracked because they were seen: counted
         * against max_tenants (which it may now exceed until some are
         * forgotten) and forgotten itself once idle. */
        t->configured = false;
        fq->tracked_configured--;
        fq->tracked_dynamic++;
    }
    retune(fq, t, &fq->dflt);
}

/* The default config to cfg, and every tenant not set by name with it:
 * the tracked ones, "default" (unless set by name) and the shard queues.
 * Aliases hold no config of their own (their tasks queue on the shards).
 * mu held. */
static void default_locked(fair *fq, const sluice_tenant_config *cfg)
{
    fq->dflt = *cfg;
    normalize(&fq->dflt);
    for (size_t i = 0; i < fq->nbuckets; i++) {
        for (struct sluice_tenant *t = fq->buckets[i]; t; t = t->hnext) {
            if (!t->named) {
                retune(fq, t, &fq->dflt);
            }
        }
    }
    for (unsigned i = 0; i < fq->nshards; i++) {
        retune(fq, fq->shards[i], &fq->dflt);
    }
}

sluice_err sluice_pool_tenant_set(sluice_pool *pool, const char *name, const sluice_tenant_config *cfg,
                                  char *errbuf, size_t errlen)
{
    sluice_err err;
    fair *fq = setter_begin(pool, true, name, true, cfg, errbuf, errlen, &err);
    if (!fq) {
        return err;
    }
    uint64_t h = name_hash(fq, name);
    struct sluice_tenant *t = table_find(fq, name, h);
    bool fresh = !t;
    if (fresh) {
        t = sluice__fair_tenant_calloc(1, tenant_bytes(fq, KIND_TRACKED));
        if (!t) {
            pthread_mutex_unlock(&fq->mu);
            sluice__errf(errbuf, errlen, "tenant \"%s\": out of memory", name);
            return SLUICE_ENOMEM;
        }
    }
    set_locked(fq, t, fresh, name, h, cfg);
    return settle_and_wake(pool, fq, t);
}

sluice_err sluice_pool_tenant_unset(sluice_pool *pool, const char *name, char *errbuf, size_t errlen)
{
    sluice_err err;
    fair *fq = setter_begin(pool, true, name, false, NULL, errbuf, errlen, &err);
    if (!fq) {
        return err;
    }
    struct sluice_tenant *t = table_find(fq, name, name_hash(fq, name));
    if (!t || !t->named) {
        pthread_mutex_unlock(&fq->mu);
        sluice__errf(errbuf, errlen, "tenant \"%s\": not set by name in pool %s", name, pool->name);
        return SLUICE_ENOENT;
    }
    unset_locked(fq, t);
    return settle_and_wake(pool, fq, t);
}

sluice_err sluice_pool_tenant_default_set(sluice_pool *pool, const sluice_tenant_config *cfg, char *errbuf,
                                          size_t errlen)
{
    sluice_err err;
    fair *fq = setter_begin(pool, false, NULL, true, cfg, errbuf, errlen, &err);
    if (!fq) {
        return err;
    }
    default_locked(fq, cfg);
    return settle_and_wake(pool, fq, NULL);
}

/* The batch: checked, allocated, then made in one hold of mu (see
 * sluice/tenant.h). A fresh record per change that may create a tenant is
 * allocated under mu, once the table says the name is new, and the lot
 * is freed untouched when one allocation fails. */
sluice_err sluice_pool_tenants_apply(sluice_pool *pool, const sluice_tenant_config *dflt,
                                     const sluice_tenant_change *changes, size_t n, size_t *failed,
                                     char *errbuf, size_t errlen)
{
    size_t failed_here;
    if (!failed) {
        failed = &failed_here; /* optional */
    }
    *failed = dflt ? SLUICE_TENANTS_DEFAULT : 0;
    sluice_err err = SLUICE_OK;
    if (n && !changes) {
        sluice__errf(errbuf, errlen, "tenants: changes is NULL with n = %zu", n);
        return SLUICE_EINVAL;
    }
    if (!pool) {
        sluice__errf(errbuf, errlen, "tenants: pool is NULL");
        return SLUICE_EINVAL;
    }
    /* The arguments, as the setters check them (no lock taken). */
    if (dflt && !setter_check(pool, false, NULL, true, dflt, errbuf, errlen, &err)) {
        return err;
    }
    for (size_t i = 0; i < n; i++) {
        if (!setter_check(pool, true, changes[i].name, false, changes[i].cfg, errbuf, errlen, &err)) {
            *failed = i;
            return err;
        }
    }
    if (!dflt && n == 0) {
        if (errbuf && errlen) {
            errbuf[0] = '\0';
        }
        return SLUICE_OK;
    }
    struct sluice_tenant **fresh = n ? calloc(n, sizeof *fresh) : NULL;
    if (n && !fresh) {
        sluice__errf(errbuf, errlen, "%s%s%s: out of memory", dflt ? "tenants' default" : "tenant \"",
                     dflt ? "" : changes[0].name, dflt ? "" : "\"");
        return SLUICE_ENOMEM;
    }
    /* The lock, and the pool not draining: the subject is the first change. */
    fair *fq = dflt ? setter_begin(pool, false, NULL, true, dflt, errbuf, errlen, &err)
                    : setter_begin(pool, true, changes[0].name, false, changes[0].cfg, errbuf, errlen, &err);
    if (!fq) {
        free(fresh);
        return err;
    }
    /* Allocate every tenant a set creates (a name set twice is created
     * by its first set); nothing has changed yet. */
    for (size_t i = 0; i < n; i++) {
        if (!changes[i].cfg || table_find(fq, changes[i].name, name_hash(fq, changes[i].name))) {
            continue;
        }
        bool earlier = false;
        for (size_t j = 0; j < i && !earlier; j++) {
            earlier = fresh[j] && strcmp(changes[j].name, changes[i].name) == 0;
        }
        if (earlier) {
            continue;
        }
        fresh[i] = sluice__fair_tenant_calloc(1, tenant_bytes(fq, KIND_TRACKED));
        if (!fresh[i]) {
            pthread_mutex_unlock(&fq->mu);
            for (size_t j = 0; j < i; j++) {
                free(fresh[j]);
            }
            free(fresh);
            *failed = i;
            sluice__errf(errbuf, errlen, "tenant \"%s\": out of memory", changes[i].name);
            return SLUICE_ENOMEM;
        }
    }
    /* Commit: nothing below can fail. */
    if (dflt) {
        default_locked(fq, dflt);
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t h = name_hash(fq, changes[i].name);
        struct sluice_tenant *t = fresh[i] ? fresh[i] : table_find(fq, changes[i].name, h);
        if (!changes[i].cfg) {
            if (t && t->named) {
                unset_locked(fq, t);
                settle(fq, t);
            }
            continue;
        }
        set_locked(fq, t, fresh[i] != NULL, changes[i].name, h, changes[i].cfg);
        settle(fq, t);
    }
    free(fresh);
    return settle_and_wake(pool, fq, NULL);
}

void sluice__fair_default_get(struct sluice_pool *pool, sluice_tenant_config *out)
{
    fair *fq = pool->q;
    fair_lock(fq);
    *out = fq->dflt;
    pthread_mutex_unlock(&fq->mu);
}

sluice_err sluice_pool_tenant_acquire(sluice_pool *pool, const char *name, sluice_tenant **out)
{
    if (!pool || !out || !name) {
        return SLUICE_EINVAL;
    }
    if (!pool->fair) {
        return SLUICE_ENOTSUP;
    }
    if (!sluice__name_valid(name, SLUICE_TENANT_NAME_MAX)) {
        return SLUICE_EINVAL;
    }
    fair *fq = pool->q;
    fair_lock(fq);
    struct sluice_tenant *t = NULL;
    sluice_err err = lookup_locked(fq, name, true, &t);
    if (!err) {
        t->refs++;
        settle(fq, t);
        *out = t;
    }
    pthread_mutex_unlock(&fq->mu);
    return err;
}

void sluice_tenant_release(sluice_tenant *t)
{
    if (!t) {
        return;
    }
    fair *fq = t->fq;
    fair_lock(fq);
    t->refs--;
    bool free_alias = t->kind == KIND_ALIAS && t->refs == 0;
    if (!free_alias) {
        settle(fq, t);
    }
    pthread_mutex_unlock(&fq->mu);
    if (free_alias) {
        free(t);
    }
}

const char *sluice_tenant_name(const sluice_tenant *t)
{
    return t ? t->name : NULL;
}

static void snapshot_locked(fair *fq, const struct sluice_tenant *t, sluice_tenant_stats *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", t->name);
    out->configured = t->configured;
    out->shard = t->kind == KIND_SHARD;
    out->config = t->cfg;
    out->queued = t->queued;
    out->running = t->running;
    out->submitted = t->submitted;
    out->started = t->started;
    out->completed = t->completed;
    out->failed = t->failed;
    out->panicked = t->panicked;
    out->dropped = t->dropped;
    out->rejected = t->rejected;
    out->shed = t->shed;
    out->abandoned = t->abandoned;
    out->caller_ran = t->caller_ran;
    out->incarnation = t->serial;
    out->wait.bucket_count = fq->nbounds;
    memcpy(out->wait.bounds, fq->pool->bounds, fq->nbounds * sizeof(double));
    for (size_t i = 0; i <= fq->nbounds; i++) {
        out->wait.counts[i] = t->wait_counts[i];
        out->wait.count += t->wait_counts[i];
    }
    out->wait.sum_seconds = (double)t->wait_sum_ns / 1e9;
}

sluice_err sluice_tenant_stats_get(sluice_tenant *t, sluice_tenant_stats *out)
{
    if (!t || !out) {
        return SLUICE_EINVAL;
    }
    fair *fq = t->fq;
    fair_lock(fq);
    snapshot_locked(fq, t->kind == KIND_ALIAS ? fq->shards[t->hand[0]] : t, out);
    pthread_mutex_unlock(&fq->mu);
    return SLUICE_OK;
}

size_t sluice_pool_tenants_get(sluice_pool *pool, sluice_tenant_stats *out, size_t cap)
{
    return sluice_pool_tenants_snapshot(pool, out, cap, NULL);
}

size_t sluice_pool_tenants_snapshot(sluice_pool *pool, sluice_tenant_stats *out, size_t cap,
                                    sluice_tenant_stats *forgotten)
{
    if (forgotten) {
        memset(forgotten, 0, sizeof *forgotten);
        snprintf(forgotten->name, sizeof forgotten->name, "%s", SLUICE_TENANT_FORGOTTEN);
    }
    if (!pool || !pool->fair) {
        return 0;
    }
    fair *fq = pool->q;
    size_t n = 0;
    fair_lock(fq);
    sweep(fq);
    if (forgotten) {
        snapshot_locked(fq, fq->retired, forgotten);
        forgotten->shard = false;
    }
    for (size_t i = 0; i < fq->nbuckets; i++) {
        for (struct sluice_tenant *t = fq->buckets[i]; t; t = t->hnext) {
            if (out && n < cap) {
                snapshot_locked(fq, t, &out[n]);
            }
            n++;
        }
    }
    for (unsigned i = 0; i < fq->nshards; i++) {
        const struct sluice_tenant *t = fq->shards[i];
        if (t->submitted == 0 && t->rejected == 0) {
            continue;
        }
        if (out && n < cap) {
            snapshot_locked(fq, t, &out[n]);
        }
        n++;
    }
    pthread_mutex_unlock(&fq->mu);
    return n;
}

/* ---- scrapes in bounded pieces ----------------------------------------------------- */

/* The key a tenant is ranked by. */
static uint64_t rank_key(const struct sluice_tenant *t, sluice_tenant_order by)
{
    return by == SLUICE_TENANT_BY_LOAD ? (uint64_t)t->queued + t->running : t->submitted + t->rejected;
}

/* True when (key, name) ranks before r: a larger key, or the same key and
 * a smaller name, so the order is total and stable between calls. */
static bool ranks_before(uint64_t key, const char *name, const sluice_tenant_rank *r)
{
    return key != r->key ? key > r->key : strcmp(name, r->name) < 0;
}

static void rank_swap(sluice_tenant_rank *a, sluice_tenant_rank *b)
{
    sluice_tenant_rank tmp = *a;
    *a = *b;
    *b = tmp;
}

/* heap[0..n) is a heap whose root ranks last of all; restore it below i. */
static void heap_down(sluice_tenant_rank *heap, size_t n, size_t i)
{
    for (;;) {
        size_t last = i, l = 2 * i + 1, r = l + 1;
        if (l < n && ranks_before(heap[last].key, heap[last].name, &heap[l])) {
            last = l;
        }
        if (r < n && ranks_before(heap[last].key, heap[last].name, &heap[r])) {
            last = r;
        }
        if (last == i) {
            return;
        }
        rank_swap(&heap[i], &heap[last]);
        i = last;
    }
}

static void heap_up(sluice_tenant_rank *heap, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!ranks_before(heap[parent].key, heap[parent].name, &heap[i])) {
            return;
        }
        rank_swap(&heap[i], &heap[parent]);
        i = parent;
    }
}

/* Offer t to the best-`cap` heap (under mu). */
static void rank_offer(const struct sluice_tenant *t, sluice_tenant_order by, sluice_tenant_rank *heap,
                       size_t cap, size_t *n)
{
    uint64_t key = rank_key(t, by);
    size_t at;
    if (*n < cap) {
        at = (*n)++;
    } else if (cap > 0 && ranks_before(key, t->name, &heap[0])) {
        at = 0;
    } else {
        return;
    }
    memcpy(heap[at].name, t->name, strlen(t->name) + 1);
    heap[at].incarnation = t->serial;
    heap[at].key = key;
    if (at == 0 && *n == cap) {
        heap_down(heap, *n, 0);
    } else {
        heap_up(heap, at);
    }
}

static int rank_order(const void *a, const void *b)
{
    const sluice_tenant_rank *x = a, *y = b;
    if (ranks_before(x->key, x->name, y)) {
        return -1;
    }
    return ranks_before(y->key, y->name, x) ? 1 : 0;
}

sluice_err sluice_pool_tenants_top(sluice_pool *pool, sluice_tenant_order by, sluice_tenant_rank *out,
                                   size_t cap, size_t *found)
{
    if (found) {
        *found = 0;
    }
    if (!pool || !found || (cap > 0 && !out) ||
        (by != SLUICE_TENANT_BY_TRAFFIC && by != SLUICE_TENANT_BY_LOAD)) {
        return SLUICE_EINVAL;
    }
    if (!pool->fair) {
        return SLUICE_ENOTSUP;
    }
    fair *fq = pool->q;
    /* Forget the tenants due, SWEEP_CHUNK at a time. New ones may go idle
     * meanwhile: stop after as many as were tracked when it began (and
     * one chunk), so a flood of short-lived names cannot keep it here. */
    fair_lock(fq);
    size_t budget = (size_t)fq->tracked_dynamic + SWEEP_CHUNK;
    bool more = sweep_some(fq, SWEEP_CHUNK);
    pthread_mutex_unlock(&fq->mu);
    for (size_t swept = SWEEP_CHUNK; more && swept < budget; swept += SWEEP_CHUNK) {
        let_in(fq);
        fair_lock(fq);
        more = sweep_some(fq, SWEEP_CHUNK);
        pthread_mutex_unlock(&fq->mu);
    }
    /* The table, then the shard queues, a bounded piece per hold; nbuckets
     * and nshards are fixed at create, so the cursors stay valid. */
    size_t n = 0;
    for (size_t b = 0; b < fq->nbuckets;) {
        if (b > 0) {
            let_in(fq);
        }
        fair_lock(fq);
        for (size_t seen = 0, end = b + WALK_BUCKETS; b < fq->nbuckets && b < end && seen < WALK_TENANTS;
             b++) {
            for (const struct sluice_tenant *t = fq->buckets[b]; t; t = t->hnext) {
                rank_offer(t, by, out, cap, &n);
                seen++;
            }
        }
        pthread_mutex_unlock(&fq->mu);
    }
    for (unsigned i = 0; i < fq->nshards;) {
        let_in(fq);
        fair_lock(fq);
        for (unsigned end = i + WALK_TENANTS; i < fq->nshards && i < end; i++) {
            const struct sluice_tenant *t = fq->shards[i];
            if (t->submitted != 0 || t->rejected != 0) {
                rank_offer(t, by, out, cap, &n);
            }
        }
        pthread_mutex_unlock(&fq->mu);
    }
    if (n > 1) {
        qsort(out, n, sizeof *out, rank_order);
    }
    *found = n;
    return SLUICE_OK;
}

/* The listed tenant (tracked, or a shard queue that has seen a task) with
 * this name, or NULL (under mu). */
static struct sluice_tenant *find_listed(fair *fq, const char *name)
{
    if (!name) {
        return NULL;
    }
    static const char shard_prefix[] = "~shard-";
    if (strncmp(name, shard_prefix, sizeof shard_prefix - 1) == 0) {
        const char *digits = name + sizeof shard_prefix - 1;
        unsigned long i = 0;
        size_t len = strspn(digits, "0123456789");
        if (len == 0 || len > 5 || digits[len] != '\0' || (len > 1 && digits[0] == '0')) {
            return NULL; /* not a name the pool gives ("~shard-%u") */
        }
        i = strtoul(digits, NULL, 10);
        if (i >= fq->nshards) {
            return NULL;
        }
        struct sluice_tenant *t = fq->shards[i];
        return t->submitted != 0 || t->rejected != 0 ? t : NULL;
    }
    if (!sluice__name_valid(name, SLUICE_TENANT_NAME_MAX)) {
        return NULL;
    }
    return table_find(fq, name, name_hash(fq, name));
}

/* An absent entry: the name (when it is a string that fits), all else 0. */
static void absent(sluice_tenant_stats *out, const char *name)
{
    memset(out, 0, sizeof *out);
    if (name && strnlen(name, sizeof out->name) < sizeof out->name) {
        memcpy(out->name, name, strlen(name) + 1);
    }
}

sluice_err sluice_pool_tenants_select(sluice_pool *pool, const char *const *names, size_t n,
                                      sluice_tenant_stats *out, sluice_tenant_selection *sel)
{
    if (sel) {
        memset(sel, 0, sizeof *sel);
        snprintf(sel->rest.name, sizeof sel->rest.name, "%s", SLUICE_TENANT_REST);
        snprintf(sel->forgotten.name, sizeof sel->forgotten.name, "%s", SLUICE_TENANT_FORGOTTEN);
    }
    /* Every out[i] given starts absent, on an error too (with no names:
     * nameless). */
    for (size_t i = 0; out && i < n; i++) {
        absent(&out[i], names ? names[i] : NULL);
    }
    if (!pool || !sel || (n > 0 && (!names || !out))) {
        return SLUICE_EINVAL;
    }
    if (!pool->fair) {
        return SLUICE_ENOTSUP;
    }
    fair *fq = pool->q;
    fair_lock(fq);
    /* rest = sum - the tenants found, each once (a name asked twice is
     * filled twice and subtracted once: `picked`). The sum's counts cover
     * every tenant found (invariant 6), so nothing goes below zero. */
    snapshot_locked(fq, fq->sum, &sel->rest);
    size_t queued = fq->total;
    unsigned running = fq->sum->running;
    uint64_t wait_ns = fq->sum->wait_sum_ns;
    uint64_t pick = ++fq->picks;
    for (size_t i = 0; i < n; i++) {
        struct sluice_tenant *t = find_listed(fq, names[i]);
        if (!t) {
            continue;
        }
        snapshot_locked(fq, t, &out[i]);
        if (t->picked == pick) {
            continue;
        }
        t->picked = pick;
        sel->found++;
        queued -= t->queued;
        running -= t->running;
        wait_ns -= t->wait_sum_ns;
        sluice_tenant_stats *r = &sel->rest;
#define SUB(f) (SLUICE__ASSERT(r->f >= out[i].f), r->f -= out[i].f)
        SUB(submitted);
        SUB(started);
        SUB(completed);
        SUB(failed);
        SUB(panicked);
        SUB(dropped);
        SUB(rejected);
        SUB(shed);
        SUB(abandoned);
        SUB(caller_ran);
        SUB(wait.count);
        for (size_t b = 0; b <= fq->nbounds; b++) {
            SUB(wait.counts[b]);
        }
#undef SUB
    }
    sel->rest.queued = queued;
    sel->rest.running = running;
    sel->rest.wait.sum_seconds = (double)wait_ns / 1e9;
    snapshot_locked(fq, fq->retired, &sel->forgotten);
    sel->tenants = (size_t)fq->tracked_dynamic + fq->tracked_configured + fq->shards_seen;
    sel->last_incarnation = fq->serials;
    pthread_mutex_unlock(&fq->mu);
    /* The records are sums, not tenants: no config, no kind, no serial. */
    sluice_tenant_stats *recs[2] = {&sel->rest, &sel->forgotten};
    for (size_t i = 0; i < 2; i++) {
        recs[i]->shard = false;
        recs[i]->incarnation = 0;
        memset(&recs[i]->config, 0, sizeof recs[i]->config);
    }
    snprintf(sel->rest.name, sizeof sel->rest.name, "%s", SLUICE_TENANT_REST);
    return SLUICE_OK;
}

void sluice_pool_tenancy_get(sluice_pool *pool, sluice_tenancy_stats *out)
{
    if (!out) {
        return;
    }
    memset(out, 0, sizeof *out);
    if (!pool || !pool->fair) {
        return;
    }
    fair *fq = pool->q;
    fair_lock(fq);
    out->tracked = fq->tracked_dynamic + fq->tracked_configured;
    out->configured = fq->tracked_configured;
    out->active = fq->nactive;
    out->shard_queues = fq->nshards;
    out->forgotten = fq->forgotten;
    out->sharded_submits = fq->sharded_submits;
    out->memory_bytes = sizeof *fq + fq->capacity * sizeof(node) + fq->nbuckets * sizeof *fq->buckets +
                        (fq->nshards + 2) * tenant_size(fq) + fq->nshards * sizeof *fq->shards +
                        fq->tenant_bytes; /* + 2: the retired and sum records */
    pthread_mutex_unlock(&fq->mu);
}

/*
 * sluice/tenant.h - tenants of a FAIR pool: handles, configuration and
 * per-tenant accounting.
 *
 * A pool created with queue_discipline = SLUICE_QUEUE_FAIR keeps one FIFO
 * per tenant and starts tasks by weighted deficit round robin across the
 * tenants that have work, so one tenant flooding the pool delays the
 * others by at most its share (docs/ARCHITECTURE.md, "Life of a task
 * through the fair queue"; docs/RATIONALE.md for DRR and shuffle
 * sharding). A task names its tenant at submit (sluice_submit_opts:
 * `tenant` handle or `tenant_name`); tasks that name none belong to the
 * tenant "default".
 *
 * Tenants come in three kinds:
 *   configured  set with sluice_pool_tenant_set: their own weight and
 *               limits, always tracked, never forgotten.
 *   tracked     any other name, while fewer than fair.max_tenants are
 *               tracked: the fair.tenant_default config, its own queue and
 *               counters; forgotten after fair.idle_forget_ns idle.
 *   sharded     a new name when max_tenants are tracked: it is dealt a hand
 *               of fair.hand_size of the fair.shard_queues shared queues
 *               (a hash of the name picks them) and each of its tasks goes
 *               to the shortest queue of its hand (of equally short ones,
 *               the first in an order dealt at random per name, so the
 *               queues share idle traffic evenly). Its counts appear under
 *               those queues ("~shard-N"), not under its name. A flood
 *               from one sharded name fills only its hand; another name
 *               shares all its queues with it only if dealt the same hand.
 *
 * Accounting: for each tenant, as for the pool,
 *     submitted = completed + failed + panicked + dropped + shed + abandoned
 * holds whenever nothing of that tenant is queued or running; refused
 * submits count in `rejected` (closed-pool refusals are not counted).
 *
 * Thread-safety: every call here is safe from any thread, including pool
 * workers and tasks; each takes the fair queue's lock briefly and none
 * calls user code. Handles must be released before the pool is destroyed.
 */
#ifndef SLUICE_TENANT_H
#define SLUICE_TENANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/common.h"
#include "sluice/pool.h"

/* A handle on one tenant of one pool (opaque). */
typedef struct sluice_tenant sluice_tenant;

/* Tenant names: 1..SLUICE_TENANT_NAME_MAX bytes of [A-Za-z0-9_.:-]. */
#define SLUICE_TENANT_NAME_MAX 64

/*
 * sluice_pool_tenant_set - configure a tenant (create it if new): its
 * weight, queued and running limits and overflow. A configured tenant is
 * always tracked (max_tenants does not apply) and never forgotten.
 * Changes apply from the next decision: a new weight at the tenant's next
 * round, a lower queued_limit refuses new submits but evicts nothing, a
 * higher running_limit wakes workers for its queued tasks.
 * Returns: SLUICE_OK; SLUICE_EINVAL naming the bad field in errbuf (name,
 * weight above SLUICE_TENANT_WEIGHT_MAX, overflow); SLUICE_ENOTSUP for a
 * FIFO pool; SLUICE_ENOMEM; SLUICE_ECLOSED once the pool is draining.
 * errbuf: optional (NULL, 0), always NUL-terminated when given. Each
 * message names the tenant, then the field or argument and what is wrong:
 * `tenant "gold": weight 20000 is out of range 0..10000 (0 means 1)`,
 * `tenant "a?b": name has byte 0x20 at 1, outside [A-Za-z0-9_.:-]`.
 * Ownership: cfg and name are copied.
 */
SLUICE_API sluice_err sluice_pool_tenant_set(sluice_pool *pool, const char *name,
                                             const sluice_tenant_config *cfg, char *errbuf, size_t errlen);

/*
 * sluice_pool_tenant_unset - undo sluice_pool_tenant_set: the tenant
 * takes the pool's default config again (fair.tenant_default, or what
 * sluice_pool_tenant_default_set last set) and is tracked like a tenant
 * that was only seen: it counts against max_tenants (the count may exceed
 * it until idle tenants are forgotten; nothing is evicted) and is
 * forgotten once idle for idle_forget_ns. Its queued tasks, counters and
 * handles are untouched. "default" (the tenant of tasks that name none)
 * takes the default config but is never forgotten. With known_only the
 * name is refused by name from now on (SLUICE_ENOENT), as if never set;
 * handles already acquired keep submitting. Changes apply as
 * sluice_pool_tenant_set's do (a lower running limit stops nothing that
 * runs; a higher one wakes workers for its queued tasks).
 * Returns: SLUICE_OK; SLUICE_ENOENT when the name was not set with
 * sluice_pool_tenant_set (never seen, only seen, or unset already);
 * SLUICE_EINVAL (NULL pool, bad name); SLUICE_ENOTSUP for a FIFO pool;
 * SLUICE_ECLOSED once the pool is draining. errbuf: optional (NULL, 0),
 * always NUL-terminated when given. Thread-safe; takes the fair queue's
 * lock once; never blocks on a task.
 */
SLUICE_API sluice_err sluice_pool_tenant_unset(sluice_pool *pool, const char *name, char *errbuf,
                                               size_t errlen);

/*
 * sluice_pool_tenant_default_set - change the config of every tenant not
 * set by name (the pool's fair.tenant_default, the `"*"` entry of a
 * config's `tenants:`): tenants tracked because they were seen,
 * "default" unless it was set by name, the shard queues of untracked
 * names, and every tenant seen from now on. Applies at once, as
 * sluice_pool_tenant_set does; sluice_pool_config_get reports it.
 * Cost: one pass over the tracked tenants and shard queues under the fair
 * queue's lock (submits and pops of the pool wait for it, in proportion
 * to the tenants tracked); meant for reloads, not for every task.
 * Returns: SLUICE_OK; SLUICE_EINVAL (NULL argument; weight above
 * SLUICE_TENANT_WEIGHT_MAX or an unknown overflow, named in errbuf after
 * "tenants' default: ");
 * SLUICE_ENOTSUP for a FIFO pool; SLUICE_ECLOSED once the pool is
 * draining. Ownership: cfg is copied. Thread-safe.
 */
SLUICE_API sluice_err sluice_pool_tenant_default_set(sluice_pool *pool, const sluice_tenant_config *cfg,
                                                     char *errbuf, size_t errlen);

/* One change of sluice_pool_tenants_apply: set `name` to *cfg (as
 * sluice_pool_tenant_set), or, with cfg NULL, unset it (as
 * sluice_pool_tenant_unset). */
typedef struct sluice_tenant_change {
    const char *name;
    const sluice_tenant_config *cfg;
} sluice_tenant_change;

/* sluice_pool_tenants_apply's *failed when the refusal is about dflt. */
#define SLUICE_TENANTS_DEFAULT ((size_t)-1)

/*
 * sluice_pool_tenants_apply - change a whole tenant list at once, all or
 * nothing (what a config reload does): dflt as
 * sluice_pool_tenant_default_set (NULL: unchanged), then changes[0..n) in
 * order, each as sluice_pool_tenant_set or, with cfg NULL,
 * sluice_pool_tenant_unset (an unset of a name not set by name is
 * skipped, not an error). A name may appear more than once; the last
 * change to it wins. Every argument is checked and every new tenant
 * record allocated before anything changes, and the changes are made in
 * one hold of the fair queue's lock: a drain (which closes the queue
 * under that lock) comes before all of them or after, so either every
 * change is made or none is. dflt NULL with n = 0 changes nothing and
 * returns SLUICE_OK; n has no maximum but memory (the lock is held for
 * the whole list: submits and pops of the pool wait meanwhile, as for
 * sluice_pool_tenant_default_set).
 * Returns: SLUICE_OK; SLUICE_EINVAL (NULL pool, changes NULL with n > 0,
 * a bad name, a cfg the setters refuse); SLUICE_ENOTSUP for a FIFO pool;
 * SLUICE_ENOMEM; SLUICE_ECLOSED once the pool is draining. On a refusal
 * nothing changed, errbuf has the setter's message (`tenant "gold":
 * weight 20000 is out of range ...`), and *failed (optional: NULL) is the
 * index of the change it is about, SLUICE_TENANTS_DEFAULT for dflt
 * (ECLOSED: the first change, or dflt when given).
 * errbuf: optional (NULL, 0), always NUL-terminated when given.
 * Ownership: dflt, changes, names and cfgs are borrowed for the call and
 * copied. Thread-safe; takes the fair queue's lock once; never blocks on
 * a task.
 */
SLUICE_API sluice_err sluice_pool_tenants_apply(sluice_pool *pool, const sluice_tenant_config *dflt,
                                                const sluice_tenant_change *changes, size_t n, size_t *failed,
                                                char *errbuf, size_t errlen);

/*
 * sluice_pool_tenant_acquire - look a tenant up once for the submit fast
 * path: a submit with opts.tenant = the handle does no hashing, no
 * allocation and no string work. A new name is tracked (or sharded, see
 * above) as if a task had named it. Holding a handle keeps a tracked
 * tenant from being forgotten.
 * Returns: SLUICE_OK with *out set; SLUICE_EINVAL (NULL argument, bad
 * name); SLUICE_ENOENT (known_only and the name is not configured);
 * SLUICE_ENOTSUP (FIFO pool); SLUICE_ENOMEM.
 * Ownership: the caller owns *out and must give it back with
 * sluice_tenant_release before the pool is destroyed.
 */
SLUICE_API sluice_err sluice_pool_tenant_acquire(sluice_pool *pool, const char *name, sluice_tenant **out);

/* sluice_tenant_release - give a handle back. NULL is a no-op. The
 * tenant's queued tasks are not affected. */
SLUICE_API void sluice_tenant_release(sluice_tenant *tenant);

/* sluice_tenant_name - the name the handle was acquired with; valid while
 * the handle is held. */
SLUICE_API const char *sluice_tenant_name(const sluice_tenant *tenant);

/* A snapshot of one tenant (or one shared shard queue). */
typedef struct sluice_tenant_stats {
    char name[SLUICE_TENANT_NAME_MAX + 1]; /* "~shard-N" for a shard queue */
    bool configured;                       /* set with sluice_pool_tenant_set */
    bool shard;                            /* a shared queue of sharded tenants */
    sluice_tenant_config config;           /* weight (never 0 here) and limits in force */
    /* gauges */
    size_t queued;    /* tasks waiting now */
    unsigned running; /* tasks started from the queue and not yet finished */
    /* counters since the tenant was first seen (reset if forgotten: the
     * forgotten counts move to sluice_pool_tenants_snapshot's record) */
    uint64_t submitted; /* accepted (queued, or run on the submitter by CALLER_RUNS) */
    uint64_t started;   /* taken from the queue by a worker (its share of the pool) */
    uint64_t completed;
    uint64_t failed;
    uint64_t panicked;
    uint64_t dropped;    /* evicted: the pool's DROP_OLDEST or the tenant's own */
    uint64_t rejected;   /* refused at submit (tenant full, pool full, timeout) */
    uint64_t shed;       /* deadline or context passed while queued */
    uint64_t abandoned;  /* handed back at drain or destroy */
    uint64_t caller_ran; /* of submitted, run on the submitter (CALLER_RUNS) */
    /* Which incarnation of the name this is: a number the pool hands out
     * when it first sees a name (or makes a shard queue), never reused in
     * the pool's life. A forgotten name seen again is a new tenant whose
     * counters start at 0 under a new number, so a reader that keeps
     * snapshots across calls tells a restart from traffic by comparing it.
     * 0 for the forgotten record (sluice_pool_tenants_snapshot). */
    uint64_t incarnation;
    /* Time from submit to start (every task of a FAIR pool is timed unless
     * timing is disabled); the pool's bounds, counts not cumulative. */
    sluice_histogram wait;
} sluice_tenant_stats;

/*
 * sluice_tenant_stats_get - snapshot the tenant behind a handle (for a
 * sharded name, the first shard queue of its hand: a sharded name's own
 * counts are not kept). Returns SLUICE_OK, or SLUICE_EINVAL for a
 * NULL argument.
 */
SLUICE_API sluice_err sluice_tenant_stats_get(sluice_tenant *tenant, sluice_tenant_stats *out);

/*
 * sluice_pool_tenants_get - snapshot every tracked tenant and every shard
 * queue that has seen a task, into out[0..cap) (tracked tenants in no
 * particular order, then the shard queues by number). It first forgets
 * the tenants idle past idle_forget_ns.
 * Returns: how many there are (may exceed cap: call again with a bigger
 * array); 0 for a FIFO pool or NULL pool. Each entry is about 1.2 KiB.
 * Cost: one hold of the fair queue's lock for the whole walk, the
 * forgetting and the copies: in proportion to the tenants tracked (at
 * max_tenants of 2^20, hundreds of milliseconds during which every submit
 * and pop of the pool waits). For a periodic scrape of a pool that may
 * track many tenants use sluice_pool_tenants_top and
 * sluice_pool_tenants_select, whose holds are bounded.
 */
SLUICE_API size_t sluice_pool_tenants_get(sluice_pool *pool, sluice_tenant_stats *out, size_t cap);

/* The name of the record that sums every forgotten tenant. '~' is outside
 * the tenant name charset, so no tenant can take it. */
#define SLUICE_TENANT_FORGOTTEN "~forgotten"

/*
 * sluice_pool_tenants_snapshot - sluice_pool_tenants_get, and under the
 * same lock, when `forgotten` is not NULL, the counters and wait histogram
 * of every tenant this pool has forgotten, summed into *forgotten (name
 * SLUICE_TENANT_FORGOTTEN, gauges and config zero, incarnation 0; all
 * zeros for a FIFO or NULL pool). A tenant is added to it in the same step
 * that removes it from the list, so the entries plus *forgotten add up to
 * the pool's totals (submitted, completed, ..., the wait histogram's
 * counts) at any snapshot taken at quiescence, and a reader summing them
 * never sees a tenant twice or not at all. Every field of *forgotten only
 * grows. The metrics collector uses it to keep tenant="other" a counter.
 * Returns: as sluice_pool_tenants_get. Thread-safe; takes the fair
 * queue's lock once, as tenants_get does; never blocks on a task.
 */
SLUICE_API size_t sluice_pool_tenants_snapshot(sluice_pool *pool, sluice_tenant_stats *out, size_t cap,
                                               sluice_tenant_stats *forgotten);

/*
 * Scraping a pool with many tenants. sluice_pool_tenants_snapshot copies
 * every tenant under the fair queue's lock. These two calls get what a
 * scrape shows (a few tenants by name, the rest summed) with the lock held
 * only for bounded pieces of work, and allocate nothing:
 *   1. sluice_pool_tenants_top ranks the tenants and returns the names of
 *      the best `cap` (a walk that takes the lock in small pieces);
 *   2. sluice_pool_tenants_select, in one short hold of the lock, gives the
 *      exact stats of the tenants named (those, a name set the caller
 *      keeps, or both) and every other tenant summed into one record.
 * The ranks are a hint (read piece by piece while the pool runs); the
 * sums come from select alone, and are exact.
 */

/* What sluice_pool_tenants_top ranks by (larger first). */
typedef enum sluice_tenant_order {
    SLUICE_TENANT_BY_TRAFFIC = 0, /* submitted + rejected: the busiest (the metrics' choice) */
    SLUICE_TENANT_BY_LOAD = 1,    /* queued + running now (the debug page's choice) */
} sluice_tenant_order;

/* One tenant as sluice_pool_tenants_top ranks it. */
typedef struct sluice_tenant_rank {
    char name[SLUICE_TENANT_NAME_MAX + 1]; /* "~shard-N" for a shard queue */
    uint64_t incarnation;                  /* as sluice_tenant_stats.incarnation */
    uint64_t key;                          /* the value ranked by, when its piece was walked */
} sluice_tenant_rank;

/*
 * sluice_pool_tenants_top - the best `cap` of the tenants that
 * sluice_pool_tenants_get would list (tracked tenants, and shard queues
 * that have seen a task), ranked by `by`, into out[0..*found), best first
 * (ties: the smaller name first). It first forgets the tenants idle past
 * idle_forget_ns, as tenants_get does.
 * cap: 0 ranks nothing (it still forgets); SIZE_MAX or any cap at or
 * above the number of tenants returns them all. Memory: out only (about
 * 90 bytes an entry); nothing is allocated.
 * Consistency: the walk takes the fair queue's lock for at most 256
 * tenants (or 4096 empty table buckets, or 256 forgettings) at a time and
 * lets go between: submits and pops wait at most one such piece (a few
 * microseconds), however many tenants there are, while the whole call
 * takes time in proportion to them (and to max_tenants: the table's
 * size). So the result is not a snapshot: a tenant is listed at most once,
 * with its key as its piece saw it, and one made, forgotten or busier
 * after its piece was walked may be missing. Use it to choose names; take
 * counts from sluice_pool_tenants_select.
 * Returns: SLUICE_OK with *found set; SLUICE_EINVAL (NULL pool or found,
 * out NULL with cap > 0, an unknown `by`); SLUICE_ENOTSUP for a FIFO pool
 * (*found = 0 on every error).
 * Thread-safe; never blocks on a task; calls no user code but the pool's
 * clock (to forget). Deadlock hazard: none from the caller's side (it
 * takes only the fair queue's lock, never while holding the pool's).
 */
SLUICE_API sluice_err sluice_pool_tenants_top(sluice_pool *pool, sluice_tenant_order by,
                                              sluice_tenant_rank *out, size_t cap, size_t *found);

/* The name of sluice_tenant_selection.rest ('~': no tenant can take it). */
#define SLUICE_TENANT_REST "~rest"

/* What sluice_pool_tenants_select reports besides the named tenants. */
typedef struct sluice_tenant_selection {
    /* Every tenant not found among the names, every shard queue not found,
     * and the forgotten record, summed: counters, wait histogram and the
     * gauges queued and running. Name SLUICE_TENANT_REST, config zero,
     * incarnation 0. The found entries plus rest add up to the pool's
     * per-tenant totals at the instant of the call, exactly (and to the
     * pool's own totals at quiescence), however tenants come and go. */
    sluice_tenant_stats rest;
    /* Of rest, the forgotten record alone (as sluice_pool_tenants_snapshot
     * gives it; only grows). */
    sluice_tenant_stats forgotten;
    /* How many tenants are listed now: tracked tenants and shard queues
     * that have seen a task, as sluice_pool_tenants_get lists them, but
     * counting tenants idle past idle_forget_ns that no sweep has
     * forgotten yet (tenants_get forgets them first, so it may list
     * fewer). */
    size_t tenants;
    size_t found; /* of the names, the distinct tenants found */
    /* The highest incarnation the pool had handed out at the call: a
     * tenant with a higher one is newer than this call, so none of its
     * counts were in this call's rest. */
    uint64_t last_incarnation;
} sluice_tenant_selection;

/*
 * sluice_pool_tenants_select - the stats of the tenants named in
 * names[0..n) into out[0..n) (out[i] for names[i]), and every other
 * tenant summed into sel->rest, all read in one hold of the fair queue's
 * lock (one snapshot).
 * A name is found when sluice_pool_tenants_get would list it: a tracked
 * tenant or a shard queue ("~shard-N") that has seen a task. A name not
 * found (unknown, forgotten, malformed, NULL, SLUICE_TENANT_FORGOTTEN)
 * gets an entry of zeros with incarnation 0 (every tenant's is >= 1) and
 * its name when it is a string of at most SLUICE_TENANT_NAME_MAX bytes.
 * A name given twice is filled twice and counted once (not subtracted
 * from rest twice): sum each distinct found tenant once. A tenant seen
 * again after being forgotten is found under its new incarnation: compare
 * incarnations to tell. This call forgets nothing (a tenant past
 * idle_forget_ns stays until a sweep: sluice_pool_tenants_top or a new
 * name).
 * n: 0 gives only sel (rest = every tenant, the cheapest way to read the
 * per-tenant totals); there is no maximum, but the lock is held for n
 * lookups and copies of about 1.2 KiB (about 0.3 us each): keep n to what
 * a scrape shows (the metrics collector asks at most 3 x its series cap).
 * Returns: SLUICE_OK; SLUICE_EINVAL (NULL pool or sel, names or out NULL
 * with n > 0); SLUICE_ENOTSUP for a FIFO pool. On an error every out[i]
 * given is an absent entry and sel (when given) is zeros with its names.
 * Ownership: names are read during the call only; out and sel are the
 * caller's. Thread-safe; never blocks on a task; calls no user code;
 * allocates nothing. Deadlock hazard: none from the caller's side (takes
 * only the fair queue's lock, once).
 */
SLUICE_API sluice_err sluice_pool_tenants_select(sluice_pool *pool, const char *const *names, size_t n,
                                                 sluice_tenant_stats *out, sluice_tenant_selection *sel);

/* The tenant table of a FAIR pool as a whole. */
typedef struct sluice_tenancy_stats {
    unsigned tracked;         /* gauge: tenants with their own queue (configured ones included) */
    unsigned configured;      /* gauge: of those, set with sluice_pool_tenant_set */
    unsigned active;          /* gauge: tenants and shard queues with queued tasks */
    unsigned shard_queues;    /* the shared queues (fair.shard_queues) */
    uint64_t forgotten;       /* counter: tenants forgotten after idling */
    uint64_t sharded_submits; /* counter: tasks of untracked names put on a shard queue */
    size_t memory_bytes;      /* gauge: the fair queue's own memory (slots, table, tenants) */
} sluice_tenancy_stats;

/* sluice_pool_tenancy_get - fill *out (zeros for a FIFO pool). */
SLUICE_API void sluice_pool_tenancy_get(sluice_pool *pool, sluice_tenancy_stats *out);

#endif /* SLUICE_TENANT_H */

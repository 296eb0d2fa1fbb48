/*
 * sluice/batcher.h - batch items for a downstream: call a batch function
 * with up to N items once N have arrived, or T after the first item of
 * the batch, whichever comes first, on a pool, with a bound on batches in
 * flight; a failed batch goes whole to a failure handler.
 *
 * Case Study 2 of the reference text cut ClickHouse load 100x by
 * inserting 100 events at a time instead of one; sluice_pool_submit_batch
 * batches submissions, not downstream calls. A batcher collects items
 * (void pointers you own) into the current batch; the batch is SEALED
 * when it holds max_items (reason "size"), when max_delay_ns has passed
 * since its first item (reason "time"), or by flush/drain/destroy (reason
 * "drain"), and then runs as one pool task calling batch_fn(items, n).
 *
 * Bounded in flight: at most max_in_flight sealed batches are queued or
 * running on the pool at once. When that many are out, a batch that is
 * due stays the current one until one finishes (then it is sealed at
 * once); meanwhile it fills up to max_items and add() waits for room
 * (try_add returns SLUICE_EFULL). So the items held are at most
 * max_items * (max_in_flight + 1).
 *
 * No silent loss: every item added is, exactly once, either delivered in
 * a batch whose batch_fn returned 0, or handed with its whole batch to
 * failure_fn: the batch function failed (non-zero), panicked, the pool
 * refused the batch or handed it back (drained, destroyed, dropped), or
 * drain's deadline came with the items still unsealed. At quiescence
 *     added = delivered + failed.
 *
 * The pool's on_abandon must not block or call the pool (sluice/pool.h),
 * and the batcher honours that: a batch the pool hands back fails
 * (ABANDONED) on the batcher's timer thread, never inside on_abandon, so
 * failure_fn may call the pool; it should still not block for long (see
 * sluice_batch_failed_fn: on the timer thread it holds up time-sealed
 * batches). The due batch its freed in-flight
 * slot seals is submitted from there, or fails as REFUSED with
 * SLUICE_ECLOSED when the pool handed the first back at its drain
 * deadline or destroy (closed for good: what the submit would answer), as
 * does every batch sealed after that, with no pool call. Only if the
 * timer cannot take the failure (no memory, or its thread cannot start)
 * does failure_fn run inside on_abandon. The pool must outlive the
 * batcher.
 *
 * Example (the ClickHouse insert):
 *
 *     sluice_batcher_config bc;
 *     sluice_batcher_config_init(&bc);
 *     bc.name = "clickhouse";
 *     bc.pool = pool;
 *     bc.max_items = 100;                        // 100 events per INSERT
 *     bc.max_delay_ns = 200 * SLUICE_NS_PER_MS;  // or 200 ms after the first
 *     bc.max_in_flight = 4;                      // 4 INSERTs at once
 *     bc.batch_fn = insert_events;               // int (void **events, size_t n, void *user)
 *     bc.failure_fn = spool_events;              // keeps them for a later retry
 *     sluice_batcher *ch;
 *     if (sluice_batcher_create(&bc, &ch, errbuf, sizeof errbuf)) ...;
 *     sluice_batcher_add(ch, event);             // per event, from any thread
 *
 * Lock order: the batcher's mutex -> the timer's; no batch function,
 * failure handler or pool call runs under it.
 */
#ifndef SLUICE_BATCHER_H
#define SLUICE_BATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/clock.h"
#include "sluice/common.h"
#include "sluice/pool.h"

typedef struct sluice_batcher sluice_batcher;

#define SLUICE_BATCHER_NAME_MAX 48
#define SLUICE_BATCHER_MAX_ITEMS 1000000u

/* Why a batch was sealed. */
#define SLUICE_FLUSH_REASON_MAP(XX)                                                                          \
    XX(SIZE, "size")   /* it reached max_items */                                                            \
    XX(TIME, "time")   /* max_delay_ns passed since its first item */                                        \
    XX(DRAIN, "drain") /* flush, drain or destroy */

typedef enum sluice_flush_reason {
#define SLUICE_FLUSH_ENUM_(id, name) SLUICE_FLUSH_##id,
    SLUICE_FLUSH_REASON_MAP(SLUICE_FLUSH_ENUM_)
#undef SLUICE_FLUSH_ENUM_
        SLUICE_FLUSH_REASON_COUNT_ /* not a reason; keep last */
} sluice_flush_reason;

/* Why a batch went to the failure handler. */
#define SLUICE_BATCH_FAILURE_MAP(XX)                                                                         \
    XX(FAILED, "failed")       /* batch_fn returned non-zero (rc) */                                         \
    XX(PANICKED, "panicked")   /* batch_fn panicked */                                                       \
    XX(REFUSED, "refused")     /* the pool refused the batch task (rc = the sluice_err) */                   \
    XX(ABANDONED, "abandoned") /* the pool handed the queued batch back (rc = its reason) */                 \
    XX(UNSENT, "unsent")       /* drain's deadline came before the batch could be sealed */

typedef enum sluice_batch_failure {
#define SLUICE_BATCH_FAILURE_ENUM_(id, name) SLUICE_BATCH_##id,
    SLUICE_BATCH_FAILURE_MAP(SLUICE_BATCH_FAILURE_ENUM_)
#undef SLUICE_BATCH_FAILURE_ENUM_
        SLUICE_BATCH_FAILURE_COUNT_ /* not a failure; keep last */
} sluice_batch_failure;

/* "size", "time", "drain" / "failed", "panicked", ...; "unknown" when out
 * of range. Static strings. The parsers take exactly a row's name
 * (SLUICE_EINVAL otherwise, NULL included; *out unchanged). Thread-safe. */
SLUICE_API const char *sluice_flush_reason_name(sluice_flush_reason reason);
SLUICE_API const char *sluice_batch_failure_name(sluice_batch_failure failure);
SLUICE_API sluice_err sluice_flush_reason_parse(const char *text, sluice_flush_reason *out);
SLUICE_API sluice_err sluice_batch_failure_parse(const char *text, sluice_batch_failure *out);

/* The batch function: deliver items[0..n) (n >= 1, in the order added).
 * 0 is success; anything else sends the whole batch to failure_fn. Runs
 * on a pool worker. The items array is valid only during the call; the
 * items themselves are yours (free them here when you are done). */
typedef int (*sluice_batch_fn)(void **items, size_t n, void *user);

/* The failure handler: the batch that was not delivered, whole. Runs on
 * the thread that found out (a worker, the timer thread (every batch the
 * pool hands back), a submitter, the thread draining or destroying the
 * batcher, or, only when the timer cannot take the failure, the pool's
 * on_abandon), with no batcher lock held. It must not block for long: on
 * the timer thread it delays every time-sealed batch (max_delay_ns) and
 * every other hand-back for as long as it blocks. It must not add to this
 * batcher under a full in-flight bound, and must not call this batcher's
 * drain or destroy (they wait for the batch being failed: deadlock). */
typedef void (*sluice_batch_failed_fn)(void **items, size_t n, int rc, sluice_batch_failure why, void *user);

typedef struct sluice_batcher_config {
    /* Optional; copied; [A-Za-z0-9_.:-]. NULL = "batcher". */
    const char *name;
    /* Required: the pool batches run on (borrowed; it must outlive the
     * batcher). */
    sluice_pool *pool;
    /* Required, 1 .. SLUICE_BATCHER_MAX_ITEMS: N. 1 sends every item
     * alone. */
    size_t max_items;
    /* T: a batch is sealed this long after its first item; 0 = never by
     * time (only by size and flush/drain). At most 1 hour. */
    uint64_t max_delay_ns;
    /* Sealed batches queued or running at once; 0 = the pool's workers
     * (65536 for a pool of more). At most 65536. */
    unsigned max_in_flight;
    /* Longest add() waits for room; 0 = no limit (until room or close). */
    uint64_t add_timeout_ns;
    sluice_batch_fn batch_fn;          /* required */
    sluice_batch_failed_fn failure_fn; /* required: no batch is dropped silently */
    void *user;
    /* Clock for T and timeouts; NULL = the pool's clock. */
    const sluice_clock *clock;
    /* Batch-size histogram upper bounds (items), strictly increasing;
     * NULL/0 = 1, 2, 5, 10, 20, 50, 100, ... up to max_items. */
    const double *size_buckets;
    size_t size_bucket_count;
} sluice_batcher_config;

/* sluice_batcher_config_init - zero cfg; set pool, max_items, batch_fn,
 * failure_fn. */
SLUICE_API void sluice_batcher_config_init(sluice_batcher_config *cfg);

/*
 * sluice_batcher_create - a batcher (its timer thread starts with the
 * first batch that has a time limit, or the first batch the pool hands
 * back).
 * Returns: SLUICE_OK; SLUICE_EINVAL naming the field in errbuf ("max_items:
 * must be 1..1000000, got 0", "failure_fn: required: a failed batch must
 * go somewhere"); SLUICE_ENOMEM.
 * Ownership: *out belongs to the caller; free with sluice_batcher_destroy.
 */
SLUICE_API sluice_err sluice_batcher_create(const sluice_batcher_config *cfg, sluice_batcher **out,
                                            char *errbuf, size_t errlen);

/*
 * sluice_batcher_add - add one item to the current batch (sealing it when
 * it reaches max_items). Waits while the current batch is full and
 * max_in_flight batches are out, up to add_timeout_ns.
 * Returns:
 *   SLUICE_OK        added: it will be delivered or handed to failure_fn
 *   SLUICE_ETIMEDOUT no room came within add_timeout_ns
 *   SLUICE_EDEADLK   no room, and the caller is running one of this
 *                    batcher's batches (it would wait for itself)
 *   SLUICE_ECLOSED   draining or destroyed
 *   SLUICE_EINVAL    b NULL
 *   SLUICE_ENOMEM
 * Ownership: on OK the batcher holds the item until batch_fn or failure_fn
 * gets it; on error the caller keeps it.
 * Thread-safety: safe from any thread. Sealing by size submits the batch
 * from this thread (a BLOCK pool that is full makes this add wait for it).
 */
SLUICE_API sluice_err sluice_batcher_add(sluice_batcher *b, void *item);

/* sluice_batcher_try_add - as add, but SLUICE_EFULL instead of waiting for
 * room in the batcher (a full current batch with max_in_flight out). A batch
 * it seals by size is submitted to the pool as add's are: on a full BLOCK
 * pool that waits for space (at most the pool's submit timeout), except
 * on one of the pool's own workers, where a full pool refuses the batch at
 * once (failure_fn, REFUSED; the add itself is OK). */
SLUICE_API sluice_err sluice_batcher_try_add(sluice_batcher *b, void *item);

/* sluice_batcher_flush - seal the current batch now (reason "drain") if
 * it has items, as soon as the in-flight bound allows. Never waits for the
 * in-flight bound (a batch that cannot go out yet is sealed when one
 * ends). A batch sealed now is submitted from this thread as add's are:
 * a full BLOCK pool makes flush wait for space (within the pool's submit
 * timeout), except on a worker of the pool, where it is refused at once
 * (REFUSED). Returns SLUICE_OK, SLUICE_EINVAL. */
SLUICE_API sluice_err sluice_batcher_flush(sluice_batcher *b);

typedef struct sluice_batcher_drain_report {
    uint64_t batches;      /* batches finished during the drain */
    uint64_t items_unsent; /* items handed to failure_fn as UNSENT at the deadline */
    uint64_t in_flight;    /* batches still out at the deadline (they finish or fail later) */
    bool timed_out;
} sluice_batcher_drain_report;

/*
 * sluice_batcher_drain - stop accepting (add returns SLUICE_ECLOSED), seal
 * the partial batch (reason "drain"), and wait up to timeout_ns (0 = no
 * limit) for every batch to finish. At the deadline, items still unsealed
 * (the in-flight bound never let them out) go to failure_fn as UNSENT;
 * batches on the pool are left to finish (each ends in batch_fn or
 * failure_fn later; destroy waits for them). The partial batch's submit
 * waits for space in a full BLOCK pool at most until the deadline too
 * (the pool then refuses it: failure_fn, REFUSED).
 * Returns: SLUICE_OK; SLUICE_ETIMEDOUT; SLUICE_EDEADLK from one of its own
 * batches. A second drain returns SLUICE_OK with an empty report.
 */
SLUICE_API sluice_err sluice_batcher_drain(sluice_batcher *b, uint64_t timeout_ns,
                                           sluice_batcher_drain_report *report);

/*
 * sluice_batcher_destroy - drain without a limit (the partial batch is
 * flushed and every batch finishes or fails), stop the timer, free. NULL
 * is a no-op. Thread-safety: once, with no add starting, not from a batch
 * function. Deadlock hazard: it waits for batches on the pool: destroy the
 * batcher before the pool (or after draining the pool, when its batches
 * come back as ABANDONED failures).
 */
SLUICE_API void sluice_batcher_destroy(sluice_batcher *b);

typedef struct sluice_batcher_stats {
    /* gauges */
    size_t pending_items; /* in the current (unsealed) batch */
    unsigned in_flight;   /* sealed batches queued or running */
    unsigned waiting;     /* adders waiting for room */
    bool closed;          /* drain or destroy has begun */
    /* counters */
    uint64_t added;
    uint64_t delivered;    /* items in batches batch_fn accepted */
    uint64_t failed_items; /* items handed to failure_fn */
    uint64_t batches;      /* sealed */
    uint64_t batches_ok;
    uint64_t batches_failed;                        /* handed to failure_fn, any reason */
    uint64_t flushes[SLUICE_FLUSH_REASON_COUNT_];   /* sealed, by reason */
    uint64_t failures[SLUICE_BATCH_FAILURE_COUNT_]; /* failed batches, by why */
    uint64_t rejected;                              /* adds refused (EFULL, ETIMEDOUT, EDEADLK) */
} sluice_batcher_stats;

SLUICE_API void sluice_batcher_stats_get(sluice_batcher *b, sluice_batcher_stats *out);
/* sluice_batcher_size_histogram - items per sealed batch. */
SLUICE_API void sluice_batcher_size_histogram(sluice_batcher *b, sluice_histogram *out);
SLUICE_API const char *sluice_batcher_name(const sluice_batcher *b);

#endif /* SLUICE_BATCHER_H */

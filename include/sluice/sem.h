/*
 * sluice/sem.h - a weighted semaphore with strict FIFO fairness.
 *
 * A semaphore of capacity N hands out units; acquire(n) takes n of them
 * and release(n) gives them back. Use it to bound something shared across
 * handlers (bytes in flight, connections to a downstream, memory for
 * decoding) where one pool's K does not fit.
 *
 * Fairness (as Go's golang.org/x/sync/semaphore):
 *  - Strict FIFO. A newcomer never overtakes a queued waiter, even when
 *    enough units are free for it: it queues behind.
 *  - Head of line. A large waiter at the head blocks the smaller ones
 *    behind it until it is served, so large acquirers never starve.
 *  - A request for more than the capacity fails at once (SLUICE_EOVERFLOW)
 *    instead of sitting at the head and blocking everyone forever.
 *  - A waiter that gives up (context cancelled, deadline passed, semaphore
 *    closed) leaves the queue; if it was the head, the waiters behind it
 *    are served at once if the free units allow.
 *  - Releasing more than is held is refused with SLUICE_EOVERFLOW and
 *    changes nothing (Go panics; a library must not).
 *
 * Example:
 *
 *     sluice_sem_config cfg;
 *     sluice_sem_config_init(&cfg);
 *     cfg.name = "decode_bytes";
 *     cfg.capacity = 64u << 20;                 // 64 MiB of decode buffers
 *     sluice_sem *sem;
 *     if (sluice_sem_create(&cfg, &sem, errbuf, sizeof errbuf)) ...;
 *
 *     // in a handler, with the request's context:
 *     sluice_err err = sluice_sem_acquire(sem, body_len, req_ctx);
 *     if (err) return err;                      // ETIMEDOUT, ECANCELED, EOVERFLOW, ECLOSED
 *     decode(body);
 *     sluice_sem_release(sem, body_len);
 *
 * Lock order: one mutex per semaphore; it is never held while user code
 * (context callbacks) runs.
 */
#ifndef SLUICE_SEM_H
#define SLUICE_SEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/clock.h"
#include "sluice/common.h"
#include "sluice/ctx.h"
#include "sluice/pool.h" /* sluice_histogram */

typedef struct sluice_sem sluice_sem;

#define SLUICE_SEM_NAME_MAX 48

typedef struct sluice_sem_config {
    /* Optional; copied. Used as the name="" label by the metrics layer.
     * At most SLUICE_SEM_NAME_MAX bytes of [A-Za-z0-9_.:-]; NULL = "sem". */
    const char *name;
    /* Required, > 0: the number of units. */
    uint64_t capacity;
    /* Acquire-wait histogram upper bounds in seconds, strictly increasing;
     * NULL/0 = the pool default 0.0001 * 2^k, k = 0..16. Copied. */
    const double *histogram_buckets;
    size_t histogram_bucket_count;
    /* The clock for deadlines and wait times; NULL = system. */
    const sluice_clock *clock;
} sluice_sem_config;

/* sluice_sem_config_init - zero cfg (all defaults); the caller sets capacity. */
SLUICE_API void sluice_sem_config_init(sluice_sem_config *cfg);

/*
 * sluice_sem_create - a semaphore with all cfg->capacity units free.
 * Returns: SLUICE_OK; SLUICE_EINVAL naming the bad field in errbuf
 * ("capacity: must be > 0"); SLUICE_ENOMEM.
 * Ownership: *out belongs to the caller; free with sluice_sem_destroy.
 * errbuf: optional (NULL, 0), NUL-terminated when given.
 */
SLUICE_API sluice_err sluice_sem_create(const sluice_sem_config *cfg, sluice_sem **out, char *errbuf,
                                        size_t errlen);

/*
 * sluice_sem_destroy - close the semaphore (waiters return SLUICE_ECLOSED),
 * wait until every thread blocked in acquire has left, and free it. NULL is
 * a no-op. Units still held are forgotten.
 * Thread-safety: no call may start on sem once destroy has begun.
 */
SLUICE_API void sluice_sem_destroy(sluice_sem *sem);

/*
 * sluice_sem_acquire - take n units, waiting in FIFO order until they are
 * free, ctx is done, or the semaphore is closed.
 * sluice_sem_acquire_until - the same with a deadline on the semaphore's
 * clock as well (0 = none); the earlier of it and ctx's deadline applies.
 * Returns:
 *   SLUICE_OK         the n units are held; give them back with release
 *   SLUICE_EINVAL     sem is NULL or n is 0
 *   SLUICE_EOVERFLOW  n > capacity: it could never be served (fails at once,
 *                     or when sluice_sem_set_capacity shrinks below n)
 *   SLUICE_ECANCELED / SLUICE_ETIMEDOUT (or ctx's cause): ctx is done or the
 *                     deadline passed first; nothing is held. A done ctx
 *                     (or a deadline already passed) fails the call even
 *                     when units are free. deadline_ns UINT64_MAX never
 *                     comes.
 *   SLUICE_ECLOSED    the semaphore is closed
 * If the units are granted at the same moment the context ends, the grant
 * wins and SLUICE_OK is returned (the caller must release).
 * Thread-safety: safe from any thread. Deadlock hazard: acquiring more
 * units than a thread can ever get back while it holds others (for example
 * acquire twice from the same task with capacity for one) waits until ctx
 * ends; give every acquire a deadline in services.
 */
SLUICE_API sluice_err sluice_sem_acquire(sluice_sem *sem, uint64_t n, sluice_ctx *ctx);
SLUICE_API sluice_err sluice_sem_acquire_until(sluice_sem *sem, uint64_t n, sluice_ctx *ctx,
                                               uint64_t deadline_ns);

/*
 * sluice_sem_try_acquire - take n units only if that needs no waiting: the
 * units are free and nobody is queued (FIFO holds for try as well).
 * Returns: SLUICE_OK; SLUICE_EAGAIN (would wait); SLUICE_EOVERFLOW (n >
 * capacity); SLUICE_EINVAL (NULL sem or n == 0); SLUICE_ECLOSED.
 */
SLUICE_API sluice_err sluice_sem_try_acquire(sluice_sem *sem, uint64_t n);

/*
 * sluice_sem_release - give back n units and serve the queue in order.
 * Returns: SLUICE_OK; SLUICE_EOVERFLOW when n exceeds the units held in
 * total (nothing changes; counted in release_errors); SLUICE_EINVAL (NULL
 * sem or n == 0). Works after close.
 * Thread-safety: safe from any thread (the releaser need not be the
 * acquirer).
 */
SLUICE_API sluice_err sluice_sem_release(sluice_sem *sem, uint64_t n);

/*
 * sluice_sem_set_capacity - change the capacity live (a reload, a
 * downstream that announced a new limit). Growing serves queued acquirers
 * in order at once. Shrinking takes nothing back: units held stay held, so
 * in_use may exceed the capacity until they are released, and nobody is
 * served meanwhile; queued acquirers asking for more than the new capacity
 * fail with SLUICE_EOVERFLOW (they could never be served), as new ones do.
 * Returns: SLUICE_OK; SLUICE_EINVAL (NULL sem or capacity 0);
 * SLUICE_ECLOSED. Thread-safety: safe from any thread.
 */
SLUICE_API sluice_err sluice_sem_set_capacity(sluice_sem *sem, uint64_t capacity);

/*
 * sluice_sem_close - refuse new acquires with SLUICE_ECLOSED and wake every
 * waiter with it. Releases still work. Idempotent.
 */
SLUICE_API void sluice_sem_close(sluice_sem *sem);

/* A snapshot. Gauges are values at the time of the call; counters are
 * totals since create. */
typedef struct sluice_sem_stats {
    /* gauges */
    uint64_t capacity;
    uint64_t in_use;        /* units held */
    unsigned waiters;       /* acquirers queued now */
    uint64_t waiting_units; /* units the queued acquirers ask for, in all
                               (UINT64_MAX when the sum is more) */
    bool closed;
    /* counters */
    uint64_t acquired;       /* successful acquires (fast or after a wait) */
    uint64_t waited;         /* of those, how many had to queue */
    uint64_t try_failed;     /* try_acquire calls refused with SLUICE_EAGAIN */
    uint64_t timeouts;       /* acquires that ended SLUICE_ETIMEDOUT */
    uint64_t canceled;       /* acquires that ended with another ctx cause */
    uint64_t oversize;       /* acquires refused with SLUICE_EOVERFLOW (n > capacity) */
    uint64_t release_errors; /* releases refused with SLUICE_EOVERFLOW */
    /* high-water marks */
    uint64_t in_use_hwm;
    unsigned waiters_hwm;
} sluice_sem_stats;

/* sluice_sem_stats_get - fill *out. Thread-safe (takes the lock briefly). */
SLUICE_API void sluice_sem_stats_get(sluice_sem *sem, sluice_sem_stats *out);

/*
 * sluice_sem_histogram_get - the acquire-wait histogram: time from the
 * call to the grant, for every successful acquire (0 for those served at
 * once). Failed acquires are not observed (see timeouts/canceled).
 */
SLUICE_API void sluice_sem_histogram_get(sluice_sem *sem, sluice_histogram *out);

/* sluice_sem_name - the name given at create ("sem" by default). */
SLUICE_API const char *sluice_sem_name(const sluice_sem *sem);

#endif /* SLUICE_SEM_H */

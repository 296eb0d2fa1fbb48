/*
 * sluice/sync_metrics.h - export the sync primitives (semaphores, circuit
 * breakers, rate limiters, task groups, retriers, retry budgets, keyed
 * executors, batchers, adaptive concurrency limiters) through a metrics
 * registry.
 *
 * A sluice_sync_metrics is one collector on a registry that writes every
 * family of every primitive added to it, labelled name="<primitive's
 * name>", from the primitives' stats snapshots at scrape time: nothing is
 * added to their hot paths. Families (docs/sync.md lists them all):
 *
 *   sluice_semaphore_capacity / _in_use / _waiters                   gauges
 *   sluice_semaphore_acquired_total / _timeouts_total / _canceled_total /
 *     _try_failed_total / _release_errors_total                      counters
 *   sluice_semaphore_acquire_wait_seconds                            histogram
 *   sluice_breaker_state (0 closed, 1 open, 2 half-open)             gauge
 *   sluice_breaker_calls_total{outcome="success|failure|ignored"}    counter
 *   sluice_breaker_rejected_total, sluice_breaker_transitions_total{to=...}
 *   sluice_limiter_allowed_total / _limited_total, sluice_limiter_tokens
 *   sluice_keyed_limiter_keys / _evictions_total / _allowed_total / _limited_total
 *   sluice_group_running / _pending, sluice_group_tasks_total{outcome=...}
 *   sluice_retry_in_flight / _waiting, sluice_retry_attempts_total /
 *     _retries_total / _budget_exhausted_total,
 *     sluice_retry_calls_total{outcome=...}
 *   sluice_retry_budget_first_attempts_total / _granted_total /
 *     _refused_total, sluice_retry_budget_balance / _ratio
 *   sluice_keyed_executor_keys / _active_keys / _queued / _longest_backlog /
 *     _longest_backlog_max / _runners / _waiting                     gauges
 *   sluice_keyed_executor_submitted_total / _rejected_total / _dropped_total /
 *     _abandoned_total, sluice_keyed_executor_tasks_total{outcome=...}
 *   sluice_batcher_pending_items / _in_flight / _waiting                gauges
 *   sluice_batcher_added_total / _rejected_total,
 *     sluice_batcher_items_total{outcome="delivered|failed"},
 *     sluice_batcher_batches_total{reason="size|time|drain"},
 *     sluice_batcher_failed_batches_total{why=...}                   counters
 *   sluice_batcher_batch_size (items per batch)                      histogram
 *   sluice_adaptive_limit / _inflight / _waiters / _probing,
 *     _no_load_rtt_seconds / _rtt_seconds                            gauges
 *   sluice_adaptive_acquired_total / _rejected_total / _timeouts_total /
 *     _canceled_total / _probes_total / _rebases_total / _congestion_total,
 *     sluice_adaptive_releases_total{outcome="success|dropped|ignored"},
 *     sluice_adaptive_decisions_total{direction="up|down"}            counters
 *
 * Example:
 *
 *     sluice_sync_metrics *sm;
 *     sluice_sync_metrics_create(reg, &sm);
 *     sluice_sync_metrics_add_sem(sm, decode_sem);
 *     sluice_sync_metrics_add_breaker(sm, payments_breaker);
 *     ...
 *     sluice_sync_metrics_remove_sem(sm, decode_sem);   // before sluice_sem_destroy
 *     sluice_sync_metrics_destroy(sm);                  // before sluice_metrics_destroy
 *
 * Ownership: the primitives are borrowed: remove each one before
 * destroying it. After a remove returns, no scrape touches it.
 * Thread-safety: all calls are safe from any thread, except from inside a
 * collector of the same registry. Lock order: registry lock -> this set's
 * lock -> a primitive's own lock (taken by its stats_get).
 */
#ifndef SLUICE_SYNC_METRICS_H
#define SLUICE_SYNC_METRICS_H

#include "sluice/adaptive.h"
#include "sluice/batcher.h"
#include "sluice/breaker.h"
#include "sluice/common.h"
#include "sluice/group.h"
#include "sluice/limiter.h"
#include "sluice/metrics.h"
#include "sluice/keyed.h"
#include "sluice/retry.h"
#include "sluice/sem.h"

typedef struct sluice_sync_metrics sluice_sync_metrics;

/*
 * sluice_sync_metrics_create - an empty set, registered as a collector.
 * Returns: SLUICE_OK; SLUICE_EINVAL (NULL); SLUICE_ENOMEM.
 * Ownership: *out belongs to the caller; destroy it before the registry.
 */
SLUICE_API sluice_err sluice_sync_metrics_create(sluice_metrics *reg, sluice_sync_metrics **out);

/* sluice_sync_metrics_destroy - unregister and free. NULL is a no-op. */
SLUICE_API void sluice_sync_metrics_destroy(sluice_sync_metrics *sm);

/*
 * Add or remove one primitive.
 * Returns: SLUICE_OK; SLUICE_EINVAL (NULL); SLUICE_ENOMEM; SLUICE_EBUSY
 * (add: already added, or another one of the same kind has the same name,
 * which would make two series identical); SLUICE_ENOENT (remove: not
 * added).
 */
SLUICE_API sluice_err sluice_sync_metrics_add_sem(sluice_sync_metrics *sm, sluice_sem *sem);
SLUICE_API sluice_err sluice_sync_metrics_remove_sem(sluice_sync_metrics *sm, sluice_sem *sem);
SLUICE_API sluice_err sluice_sync_metrics_add_breaker(sluice_sync_metrics *sm, sluice_breaker *breaker);
SLUICE_API sluice_err sluice_sync_metrics_remove_breaker(sluice_sync_metrics *sm, sluice_breaker *breaker);
SLUICE_API sluice_err sluice_sync_metrics_add_limiter(sluice_sync_metrics *sm, sluice_limiter *lim);
SLUICE_API sluice_err sluice_sync_metrics_remove_limiter(sluice_sync_metrics *sm, sluice_limiter *lim);
SLUICE_API sluice_err sluice_sync_metrics_add_keyed_limiter(sluice_sync_metrics *sm,
                                                            sluice_keyed_limiter *kl);
SLUICE_API sluice_err sluice_sync_metrics_remove_keyed_limiter(sluice_sync_metrics *sm,
                                                               sluice_keyed_limiter *kl);
SLUICE_API sluice_err sluice_sync_metrics_add_group(sluice_sync_metrics *sm, sluice_group *g);
SLUICE_API sluice_err sluice_sync_metrics_remove_group(sluice_sync_metrics *sm, sluice_group *g);
SLUICE_API sluice_err sluice_sync_metrics_add_retry(sluice_sync_metrics *sm, sluice_retry *r);
SLUICE_API sluice_err sluice_sync_metrics_remove_retry(sluice_sync_metrics *sm, sluice_retry *r);
SLUICE_API sluice_err sluice_sync_metrics_add_retry_budget(sluice_sync_metrics *sm, sluice_retry_budget *b);
SLUICE_API sluice_err sluice_sync_metrics_remove_retry_budget(sluice_sync_metrics *sm,
                                                              sluice_retry_budget *b);
SLUICE_API sluice_err sluice_sync_metrics_add_keyed(sluice_sync_metrics *sm, sluice_keyed *ex);
SLUICE_API sluice_err sluice_sync_metrics_remove_keyed(sluice_sync_metrics *sm, sluice_keyed *ex);
SLUICE_API sluice_err sluice_sync_metrics_add_batcher(sluice_sync_metrics *sm, sluice_batcher *b);
SLUICE_API sluice_err sluice_sync_metrics_remove_batcher(sluice_sync_metrics *sm, sluice_batcher *b);
SLUICE_API sluice_err sluice_sync_metrics_add_adaptive(sluice_sync_metrics *sm, sluice_adaptive *lim);
SLUICE_API sluice_err sluice_sync_metrics_remove_adaptive(sluice_sync_metrics *sm, sluice_adaptive *lim);

#endif /* SLUICE_SYNC_METRICS_H */

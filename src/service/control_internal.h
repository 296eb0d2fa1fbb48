/*
 * src/service/control_internal.h - the service's control loop (control.c)
 * as service.c sees it: one object per service, made at create, with a
 * thread that starts with the first controller.
 *
 * Thread-safety: add and remove are serialised by the caller (service.c
 * holds its control_mu); stats and pin/release are safe from any thread; destroy
 * runs once, after the watchers have let go and before any pool goes.
 * Log lines: `log` (the service's) and a controller config's own log are
 * called with no lock of control.c held, on the thread that caused the
 * line: the control thread after each round, others at flush.
 */
#ifndef SLUICE_SERVICE_CONTROL_INTERNAL_H
#define SLUICE_SERVICE_CONTROL_INTERNAL_H

#include "sluice/control.h"
#include "sluice/metrics.h"
#include "sluice/service.h"

typedef struct sluice__svc_control sluice__svc_control;

/* NULL when out of memory. The registry is borrowed (its collector is
 * added with the first controller). */
sluice__svc_control *sluice__svc_control_new(sluice_metrics *reg, void (*log)(void *user, const char *line),
                                             void *log_user);
/* Make the pool's controller and run it. When it has one: SLUICE_EBUSY,
 * or with `update` its settings change (sluice_pool_control_reconfigure). */
sluice_err sluice__svc_control_add(sluice__svc_control *sc, sluice_pool *pool,
                                   const sluice_pool_control_config *cfg, bool update, char *errbuf,
                                   size_t errlen);
/* Take the pool's controller out of the list and free it: SLUICE_OK, or
 * SLUICE_ENOENT (none). Waits for the thread's round of ticks or a scrape
 * in progress; afterwards nothing ticks, exports or reaches it. */
sluice_err sluice__svc_control_remove(sluice__svc_control *sc, const sluice_pool *pool);
/* Deliver the log lines the calling thread's controller calls queued
 * (add, remove, pin: their controllers log under locks, so their lines
 * wait for this), in order. Call it holding no service lock, before the
 * public call returns. NULL ok. */
void sluice__svc_control_flush(sluice__svc_control *sc);
/* SLUICE_OK and *out, or SLUICE_ENOENT (no controller for the pool). */
sluice_err sluice__svc_control_stats(sluice__svc_control *sc, const sluice_pool *pool,
                                     sluice_pool_control_stats *out);
/* Pin at k (pin = true) or release; SLUICE_ENOENT without a controller. */
sluice_err sluice__svc_control_pin(sluice__svc_control *sc, const sluice_pool *pool, bool pin, unsigned k);
/* Stop the thread, remove the collector, destroy the controllers. NULL ok. */
void sluice__svc_control_destroy(sluice__svc_control *sc);

#endif

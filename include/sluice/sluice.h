/*
 * sluice/sluice.h - the whole public API of libsluice.
 */
#ifndef SLUICE_SLUICE_H
#define SLUICE_SLUICE_H

#include "sluice/common.h"
#include "sluice/clock.h"
#include "sluice/ctx.h"
#include "sluice/pool.h"
#include "sluice/tenant.h"
#include "sluice/task.h"
#include "sluice/fault.h"
#include "sluice/cpu.h"
/* Areas above the core add their headers here, one line each. */
#include "sluice/metrics.h"
#include "sluice/log.h"
#include "sluice/sem.h"
#include "sluice/group.h"
#include "sluice/breaker.h"
#include "sluice/limiter.h"
#include "sluice/sync_metrics.h"
#include "sluice/retry.h"
#include "sluice/lifecycle.h"
#include "sluice/service.h"
#include "sluice/router.h"
#include "sluice/keyed.h"
#include "sluice/batcher.h"
#include "sluice/adaptive.h"
#include "sluice/control.h"

#endif /* SLUICE_SLUICE_H */

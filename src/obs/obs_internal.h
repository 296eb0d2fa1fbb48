/*
 * src/obs/obs_internal.h - what the files of src/obs share: the exposition
 * writer's buffer and the pool collector's entry point.
 *
 * The writer (struct sluice_expo) is a growable text buffer plus the state
 * of the family being written. It is created per scrape on the scraping
 * thread and never shared, so it has no lock.
 */
#ifndef SLUICE_OBS_INTERNAL_H
#define SLUICE_OBS_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/metrics.h"

struct sluice_expo {
    char *buf;
    size_t len;
    size_t cap;
    bool oom; /* an allocation failed: the render fails with ENOMEM */
    sluice_expo_format format;
    /* The family being written; family_ok false = skip its samples. */
    char family[SLUICE_METRIC_NAME_MAX + 1];
    sluice_metric_type family_type;
    bool family_ok;
    uint64_t write_errors; /* bad names or labels skipped in this scrape */
};

void sluice__expo_init(sluice_expo *w, sluice_expo_format format);
void sluice__expo_put(sluice_expo *w, const char *s, size_t n);
void sluice__expo_puts(sluice_expo *w, const char *s);
void sluice__expo_printf(sluice_expo *w, const char *fmt, ...) SLUICE_PRINTF(2, 3);

bool sluice__valid_metric_name(const char *s);
bool sluice__valid_label_name(const char *s);

/* What a registry keeps between scrapes about one fair pool's tenant
 * series: which tenants have their own series, and from what count each
 * was given it, so that tenant="other" only ever grows (pool_collector.c).
 * NULL until the pool's first scrape as a fair pool. */
typedef struct sluice__tenant_fold sluice__tenant_fold;
void sluice__tenant_fold_free(sluice__tenant_fold *f);

/* The pool families for pools[0..n), all pools per family, and the
 * tenant families of fair pools with at most tenant_series series per
 * pool (the rest folded into "other"), folds[i] the state kept for
 * pools[i] (made here when NULL) (pool_collector.c). */
void sluice__expo_pools(sluice_expo *w, sluice_pool *const *pools, sluice__tenant_fold **folds, size_t n,
                        size_t tenant_series);

#endif /* SLUICE_OBS_INTERNAL_H */

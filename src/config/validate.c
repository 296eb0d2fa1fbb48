/*
 * src/config/validate.c - the checks of a finished config that look at
 * more than one value: required keys, min_workers <= workers, bucket
 * order, submit_timeout only with overflow: block, unique pool names (also
 * once turned into environment prefixes), the listen address, the
 * downstream budget, and each extension's own check.
 *
 * Checks of a single value (its type and bounds) are the schema's
 * (schema.c) and happen when the value is set. The rules shared with the
 * pool and the admin server (the name charset, the listen address,
 * histogram bounds) are src/base/rules.h's, one definition for all.
 *
 * Runs once, after the environment overrides. No state.
 */
#include <stdio.h>
#include <string.h>

#include "base/rules.h"
#include "config/config_internal.h"

static const sluice_config_pos *pool_pos(const sluice_config_pool *p, sluice_pool_key k)
{
    return sluice_config_pool_has(p, k) ? &p->pos[k] : &p->entry_pos;
}

/* Every REQUIRED row of a slot that was not given. */
static void required(const cfg_slot *slot, const char *path, const sluice_config_pos *where, cfg_errs *e)
{
    for (unsigned i = 0; i < slot->count; i++) {
        const sluice_config_key *k = &slot->keys[i];
        if ((k->flags & SLUICE_CONFIG_REQUIRED) && !((*slot->set >> i) & 1u)) {
            char why[256] = "";
            if (k->required_why) {
                snprintf(why, sizeof why, " (%s)", k->required_why);
            }
            sluice__cfg_errf(e, SLUICE_EINVAL, where, "%s.%s: required%s", path, k->name, why);
        }
    }
}

/* The extensions' own checks of one section instance. */
static void ext_checks(sluice_config_ext_values *ext, size_t n, const char *path, cfg_errs *e)
{
    for (size_t i = 0; i < n; i++) {
        const sluice_config_extension *x = ext[i].ext;
        unsigned key = 0;
        const char *why = x->check ? x->check(ext[i].values, ext[i].set, &key) : NULL;
        if (why && key < x->key_count) {
            sluice__cfg_errf(e, SLUICE_EINVAL, &ext[i].pos[key], "%s.%s: %s", path, x->keys[key].name, why);
        }
    }
}

static void validate_pool(const sluice_config *cfg, size_t i, cfg_errs *e)
{
    sluice_config_pool *p = &cfg->pools[i];
    char path[48];
    snprintf(path, sizeof path, "pools[%zu]", i);
    cfg_slot slots[1 + SLUICE__CONFIG_MAX_EXTS];
    unsigned n = sluice__cfg_pool_slots(p, slots, 1 + SLUICE__CONFIG_MAX_EXTS);
    for (unsigned s = 0; s < n; s++) {
        required(&slots[s], path, &p->entry_pos, e);
    }
    if (p->name && !sluice__name_valid(p->name, SLUICE_POOL_NAME_MAX)) {
        sluice__cfg_errf(e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_NAME),
                         "%s.name: must be 1..%d characters of " SLUICE__NAME_CHARSET ", got \"%s\"", path,
                         SLUICE_POOL_NAME_MAX, p->name);
    }
    if (p->workers > 0 && p->min_workers > p->workers) {
        sluice__cfg_errf(e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_MIN_WORKERS),
                         "%s.min_workers: must be <= workers (%u), got %u", path, p->workers, p->min_workers);
    }
    if (p->stack_size && p->stack_size < 16384) {
        sluice__cfg_errf(e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_STACK_SIZE),
                         "%s.stack_size: must be 0 (the system's default) or >= 16384, got %zu", path,
                         p->stack_size);
    }
    if (sluice_config_pool_has(p, SLUICE_PK_HISTOGRAM_BUCKETS)) {
        if (p->histogram_bucket_count == 0) {
            sluice__cfg_errf(
                e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_HISTOGRAM_BUCKETS),
                "%s.histogram_buckets: must list at least one bound (omit the key for the default)", path);
        } else {
            char field[sizeof path + 24], why[256];
            snprintf(field, sizeof field, "%s.histogram_buckets", path);
            if (sluice__hist_bounds_check(p->histogram_buckets, p->histogram_bucket_count, field, why, sizeof why) != SLUICE_OK) {
                sluice__cfg_errf(e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_HISTOGRAM_BUCKETS), "%s", why);
            }
        }
    }
    if (sluice_config_pool_has(p, SLUICE_PK_SUBMIT_TIMEOUT) && p->overflow != SLUICE_OVERFLOW_BLOCK &&
        p->submit_timeout_ns) {
        sluice__cfg_errf(e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_SUBMIT_TIMEOUT),
                         "%s.submit_timeout: applies only to overflow: block (this pool has %s); remove it",
                         path, sluice_overflow_name(p->overflow));
    }
    ext_checks(p->ext, p->ext_count, path, e);
    /* Duplicates: names equal ignoring case, or equal once turned into an
     * environment prefix, cannot be told apart by an override. */
    for (size_t j = 0; p->name && j < i; j++) {
        const sluice_config_pool *q = &cfg->pools[j];
        if (!q->name) {
            continue;
        }
        char a[SLUICE_POOL_NAME_MAX * 2 + 16], b[SLUICE_POOL_NAME_MAX * 2 + 16];
        sluice_config_env_name(p->name, a, sizeof a);
        sluice_config_env_name(q->name, b, sizeof b);
        if (strcmp(p->name, q->name) == 0) {
            sluice__cfg_errf(e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_NAME),
                             "%s.name: duplicate pool name \"%s\" (also pools[%zu])", path, p->name, j);
        } else if (strcmp(a, b) == 0) {
            sluice__cfg_errf(
                e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_NAME),
                "%s.name: \"%s\" and pools[%zu] \"%s\" share the environment prefix %s; rename one", path,
                p->name, j, q->name, a);
        }
    }
}

void sluice__cfg_validate(const sluice_config *cfg, cfg_errs *e)
{
    const sluice_config_service *s = &cfg->service;
    sluice_config_pos src = {cfg->source, 0, 0, NULL};
    const sluice_config_pos *lp = (s->set >> SLUICE_SK_LISTEN) & 1u ? &s->pos[SLUICE_SK_LISTEN] : &src;
    if (!s->listen || sluice__listen_parse(s->listen, NULL, NULL, NULL, 0) != SLUICE_OK) {
        sluice__cfg_errf(e, SLUICE_EINVAL, lp,
                         "service.listen: must be host:port with a port in 0..65535, got \"%s\"",
                         s->listen ? s->listen : "");
    }
    ext_checks(s->ext, s->ext_count, "service", e);
    if (cfg->pool_count == 0) {
        sluice__cfg_errf(e, SLUICE_EINVAL, &src, "pools: at least one pool is required");
    }
    for (size_t i = 0; i < cfg->pool_count; i++) {
        validate_pool(cfg, i, e);
    }
    for (size_t i = 0; i < cfg->downstream_count; i++) {
        const sluice_config_downstream *d = &cfg->downstreams[i];
        if (!d->name) {
            sluice__cfg_errf(e, SLUICE_EINVAL, &d->pos, "downstream_budget[%zu].downstream: required", i);
        }
        if (d->total_limit == 0) {
            sluice__cfg_errf(e, SLUICE_EINVAL, &d->pos, "downstream_budget[%zu].total_limit: required, > 0",
                             i);
        }
        for (size_t j = 0; d->name && j < i; j++) {
            if (cfg->downstreams[j].name && strcmp(cfg->downstreams[j].name, d->name) == 0) {
                sluice__cfg_errf(
                    e, SLUICE_EINVAL, &d->pos,
                    "downstream_budget[%zu].downstream: duplicate \"%s\" (also downstream_budget[%zu])", i,
                    d->name, j);
            }
        }
    }
}

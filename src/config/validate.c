/*
 * src/config/validate.c - the checks of a finished config that look at
 * more than one value: required keys, min_workers <= workers, bucket
 * order, submit_timeout only with overflow: block, unique pool names (also
 * once turned into environment prefixes), the listen address, the
 * downstream budget, the cluster section, and each extension's own check.
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

/* The controller's keys, checked by the controller's own rules; its field
 * names map to the file's keys. */
static void control_check(const sluice_config_pool *p, const char *path, cfg_errs *e)
{
    static const struct {
        const char *field;
        sluice_pool_key key;
    } names[] = {
        {"mode", SLUICE_PK_CONCURRENCY_MODE},      {"min_limit", SLUICE_PK_CONCURRENCY_MIN},
        {"max_limit", SLUICE_PK_CONCURRENCY_MAX},  {"interval", SLUICE_PK_CONCURRENCY_INTERVAL},
        {"cooldown", SLUICE_PK_AUTOTUNE_COOLDOWN}, {"util_high", SLUICE_PK_AUTOTUNE_UTIL_HIGH},
        {"util_low", SLUICE_PK_AUTOTUNE_UTIL_LOW}, {"hysteresis", SLUICE_PK_AUTOTUNE_HYSTERESIS},
        {"probe_every", SLUICE_PK_PROBE_EVERY},
    };
    sluice_pool_control_config cc;
    if (!sluice_config_pool_to_control_config(p, &cc) || p->workers == 0) {
        if (sluice_config_pool_has(p, SLUICE_PK_PROBE_TIMEOUT) && !p->probe_every_ns) {
            sluice__cfg_errf(e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_PROBE_TIMEOUT),
                             "%s.probe_timeout: needs probe_every (no probes run without it)", path);
        }
        return;
    }
    const char *field = NULL;
    char why[200];
    if (sluice_pool_control_config_check(&cc, p->workers, p->min_workers, &field, why, sizeof why) ==
        SLUICE_OK) {
        return;
    }
    sluice_pool_key key = SLUICE_PK_CONCURRENCY_MODE;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(names[i].field, field) == 0) {
            key = names[i].key;
        }
    }
    sluice__cfg_errf(e, SLUICE_EINVAL, pool_pos(p, key), "%s.%s: %s", path, sluice_pool_key_name(key), why);
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

static const sluice_config_pos *tenant_pos(const sluice_config_tenant *t, sluice_tenant_key k)
{
    return ((t->set >> k) & 1u) ? &t->pos[k] : &t->entry_pos;
}

static bool is_default_tenant(const sluice_config_tenant *t)
{
    return t->name && strcmp(t->name, SLUICE_CONFIG_TENANT_DEFAULT) == 0;
}

/* A pool's tenants: names, duplicates, limits against the pool's own
 * bounds, and what a FIFO pool can honour (nothing but routing). */
static void validate_tenants(const sluice_config_pool *p, const char *path, cfg_errs *e)
{
    bool fair = p->queue_discipline == SLUICE_QUEUE_FAIR;
    static const sluice_pool_key fair_keys[] = {SLUICE_PK_MAX_TENANTS, SLUICE_PK_TENANT_SHARD_QUEUES,
                                                SLUICE_PK_TENANT_HAND_SIZE, SLUICE_PK_TENANT_IDLE_FORGET,
                                                SLUICE_PK_KNOWN_TENANTS_ONLY};
    for (size_t k = 0; !fair && k < sizeof fair_keys / sizeof fair_keys[0]; k++) {
        if (sluice_config_pool_has(p, fair_keys[k])) {
            sluice__cfg_errf(e, SLUICE_EINVAL, &p->pos[fair_keys[k]],
                             "%s.%s: applies only to queue_discipline: fair", path,
                             sluice__cfg_pool_keys[fair_keys[k]].name);
        }
    }
    unsigned shards = p->tenant_shard_queues ? p->tenant_shard_queues : 64;
    if (fair && p->tenant_hand_size > shards) {
        sluice__cfg_errf(e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_TENANT_HAND_SIZE),
                         "%s.tenant_hand_size: must be <= tenant_shard_queues (%u), got %u", path, shards,
                         p->tenant_hand_size);
    }
    if (p->tenant_count && !fair && !p->tier) {
        sluice__cfg_errf(e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_TENANTS),
                         "%s.tenants: a fifo pool serves tasks in arrival order whatever their tenant: set "
                         "queue_discipline: fair (or a tier, to route these tenants to this pool)",
                         path);
        return;
    }
    for (size_t i = 0; i < p->tenant_count; i++) {
        const sluice_config_tenant *t = &p->tenants[i];
        if (!t->name) {
            continue; /* "required" was said where the item was read */
        }
        /* The tenant as the messages below name it: the name when valid
         * (or "*"), else "?" (the name's own message shows it). */
        const char *shown =
            is_default_tenant(t) || sluice__name_valid(t->name, SLUICE_TENANT_NAME_MAX) ? t->name : "?";
        if (!is_default_tenant(t) && !sluice__name_valid(t->name, SLUICE_TENANT_NAME_MAX)) {
            sluice__cfg_errf(e, SLUICE_EINVAL, tenant_pos(t, SLUICE_TK_NAME),
                             "%s.tenants[%zu].name: must be 1..%d characters of " SLUICE__NAME_CHARSET
                             " (or \"*\" for every other tenant), got \"%s\"",
                             path, i, SLUICE_TENANT_NAME_MAX, t->name);
        }
        for (size_t j = 0; j < i; j++) {
            if (p->tenants[j].name && strcmp(p->tenants[j].name, t->name) == 0) {
                sluice__cfg_errf(e, SLUICE_EINVAL, tenant_pos(t, SLUICE_TK_NAME),
                                 "%s.tenants[%zu].name: duplicate tenant \"%s\" (also tenants[%zu])", path, i,
                                 t->name, j);
                break;
            }
        }
        if (!fair) {
            static const sluice_tenant_key shares[] = {SLUICE_TK_WEIGHT, SLUICE_TK_QUEUED_LIMIT,
                                                       SLUICE_TK_RUNNING_LIMIT, SLUICE_TK_STRICT,
                                                       SLUICE_TK_OVERFLOW};
            for (size_t k = 0; k < sizeof shares / sizeof shares[0]; k++) {
                if ((t->set >> shares[k]) & 1u) {
                    sluice__cfg_errf(
                        e, SLUICE_EINVAL, &t->pos[shares[k]],
                        "%s.tenants[%zu].%s (tenant \"%s\"): applies only to queue_discipline: "
                        "fair (this pool is fifo: its tenants are listed only for the router)",
                        path, i, sluice__cfg_pool_keys[SLUICE_PK_TENANTS].table->keys[shares[k]].name, shown);
                }
            }
            continue;
        }
        if (p->queue_capacity && t->queued_limit > p->queue_capacity) {
            sluice__cfg_errf(e, SLUICE_EINVAL, tenant_pos(t, SLUICE_TK_QUEUED_LIMIT),
                             "%s.tenants[%zu].queued_limit (tenant \"%s\"): must be <= queue_capacity (%zu), "
                             "got %zu",
                             path, i, shown, p->queue_capacity, t->queued_limit);
        }
        if (p->workers && t->running_limit > p->workers) {
            sluice__cfg_errf(e, SLUICE_EINVAL, tenant_pos(t, SLUICE_TK_RUNNING_LIMIT),
                             "%s.tenants[%zu].running_limit (tenant \"%s\"): must be <= workers (%u), got %u",
                             path, i, shown, p->workers, t->running_limit);
        }
    }
}

/* Tiers: each names one pool, and the router must map every name to at
 * most one pool: a tenant in two tier pools, two catch-alls, or a tenant
 * named like a tier would make `submit(name)` ambiguous. */
static void validate_tiers(const sluice_config *cfg, cfg_errs *e)
{
    for (size_t i = 0; i < cfg->pool_count; i++) {
        const sluice_config_pool *p = &cfg->pools[i];
        if (!p->tier) {
            continue;
        }
        if (!sluice__name_valid(p->tier, SLUICE_POOL_NAME_MAX)) {
            sluice__cfg_errf(e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_TIER),
                             "pools[%zu].tier: must be 1..%d characters of " SLUICE__NAME_CHARSET
                             ", got \"%s\"",
                             i, SLUICE_POOL_NAME_MAX, p->tier);
        }
        for (size_t j = 0; j < i; j++) {
            const sluice_config_pool *q = &cfg->pools[j];
            if (q->tier && strcmp(q->tier, p->tier) == 0) {
                sluice__cfg_errf(e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_TIER),
                                 "pools[%zu].tier: tier \"%s\" is already served by pools[%zu] (%s); a tier "
                                 "is one pool",
                                 i, p->tier, j, q->name ? q->name : "?");
            }
        }
        for (size_t t = 0; t < p->tenant_count; t++) {
            const sluice_config_tenant *a = &p->tenants[t];
            if (!a->name) {
                continue;
            }
            for (size_t j = 0; j < cfg->pool_count; j++) {
                const sluice_config_pool *q = &cfg->pools[j];
                if (!q->tier) {
                    continue;
                }
                if (strcmp(q->tier, a->name) == 0) {
                    sluice__cfg_errf(e, SLUICE_EINVAL, tenant_pos(a, SLUICE_TK_NAME),
                                     "pools[%zu].tenants[%zu].name: \"%s\" is also a tier (pools[%zu]): the "
                                     "router could not tell them apart",
                                     i, t, a->name, j);
                }
                for (size_t u = 0; j < i && u < q->tenant_count; u++) {
                    if (q->tenants[u].name && strcmp(q->tenants[u].name, a->name) == 0) {
                        sluice__cfg_errf(e, SLUICE_EINVAL, tenant_pos(a, SLUICE_TK_NAME),
                                         is_default_tenant(a)
                                             ? "pools[%zu].tenants[%zu].name: \"%s\" (unknown tenants) is "
                                               "already routed to tier %s (pools[%zu]); one tier takes them"
                                             : "pools[%zu].tenants[%zu].name: tenant \"%s\" is already in "
                                               "tier %s (pools[%zu]); a tenant has one tier",
                                         i, t, a->name, q->tier, j);
                    }
                }
            }
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
            if (sluice__hist_bounds_check(p->histogram_buckets, p->histogram_bucket_count, field, why,
                                          sizeof why) != SLUICE_OK) {
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
    validate_tenants(p, path, e);
    control_check(p, path, e);
    if (p->overload_target_ns > p->overload_interval_ns) {
        sluice__cfg_errf(e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_OVERLOAD_TARGET),
                         "%s.overload_target: must be <= overload_interval (%.3g ms), got %.3g ms (CoDel's "
                         "target is a small part of its interval: 5ms of 100ms)",
                         path, (double)p->overload_interval_ns / 1e6, (double)p->overload_target_ns / 1e6);
    }
    if ((p->overload == SLUICE_OVERLOAD_LIFO || p->overload == SLUICE_OVERLOAD_CODEL_LIFO) &&
        (p->queue_discipline == SLUICE_QUEUE_SHARDED || p->queue_discipline == SLUICE_QUEUE_FIFO_BATCH)) {
        sluice__cfg_errf(
            e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_OVERLOAD),
            "%s.overload: %s needs a queue that can serve its newest task; queue_discipline: %s "
            "serves %s (codel composes with it; so does fair)",
            path, sluice_overload_mode_name(p->overload), sluice_queue_discipline_name(p->queue_discipline),
            p->queue_discipline == SLUICE_QUEUE_SHARDED ? "shard by shard" : "runs from the head");
    }
    if (p->overload_slough_ns && p->overload_slough_ns < p->overload_target_ns) {
        sluice__cfg_errf(
            e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_OVERLOAD_SLOUGH),
            "%s.overload_slough: must be >= overload_target (%.3g ms), got %.3g ms (no task below "
            "the target is shed)",
            path, (double)p->overload_target_ns / 1e6, (double)p->overload_slough_ns / 1e6);
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

/* "host:port" with a non-empty host and a port in 1..65535 (a Redis
 * host may be a DNS name, unlike the admin's numeric listen host). */
static bool redis_address_ok(const char *a)
{
    const char *colon = a ? strrchr(a, ':') : NULL;
    if (!colon || colon == a || colon[1] == '\0' || strlen(colon + 1) > 5) {
        return false;
    }
    unsigned port = 0;
    for (const char *d = colon + 1; *d; d++) {
        if (*d < '0' || *d > '9') {
            return false;
        }
        port = port * 10 + (unsigned)(*d - '0');
    }
    return port >= 1 && port <= 65535;
}

/* The cluster section, when the file has one. */
static void validate_cluster(const sluice_config *cfg, cfg_errs *e)
{
    sluice_config_cluster *cl = (sluice_config_cluster *)&cfg->cluster; /* read only */
    if (!cl->present) {
        return;
    }
    cfg_slot slot;
    sluice__cfg_cluster_slots(cl, &slot, 1);
    required(&slot, "cluster", &cl->section_pos, e);
#define CPOS(k) (((cl->set >> (k)) & 1u) ? &cl->pos[k] : &cl->section_pos)
    if (!redis_address_ok(cl->redis)) {
        sluice__cfg_errf(e, SLUICE_EINVAL, CPOS(SLUICE_CK_REDIS),
                         "cluster.redis: must be host:port with a port in 1..65535, got \"%s\"",
                         cl->redis ? cl->redis : "");
    }
    static const struct {
        sluice_cluster_key key;
        const char *what;
    } names[] = {{SLUICE_CK_KEY_PREFIX, "key_prefix"},
                 {SLUICE_CK_SERVICE, "service"},
                 {SLUICE_CK_REPLICA_ID, "replica_id"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = *(char *const *)((const char *)cl + slot.keys[names[i].key].offset);
        if (v && !sluice__name_valid(v, 64)) {
            sluice__cfg_errf(e, SLUICE_EINVAL, CPOS(names[i].key),
                             "cluster.%s: must be 1..64 characters of " SLUICE__NAME_CHARSET ", got \"%s\"",
                             names[i].what, v);
        }
    }
    if (!cl->service && cfg->service.name && !sluice__name_valid(cfg->service.name, 64)) {
        sluice__cfg_errf(e, SLUICE_EINVAL, &cl->section_pos,
                         "cluster.service: not given, and service.name \"%s\" is not 1..64 characters "
                         "of " SLUICE__NAME_CHARSET " (set cluster.service)",
                         cfg->service.name);
    }
    static const struct {
        sluice_cluster_key key;
        const char *what;
    } ttls[] = {{SLUICE_CK_MEMBER_TTL, "member_ttl"}, {SLUICE_CK_LEASE_TTL, "lease_ttl"}};
    for (size_t i = 0; i < sizeof ttls / sizeof ttls[0]; i++) {
        uint64_t ttl = *(const uint64_t *)((const char *)cl + slot.keys[ttls[i].key].offset);
        if (ttl && ttl <= cl->heartbeat_ns) {
            char a[32], b[32];
            sluice__cfg_errf(e, SLUICE_EINVAL, CPOS(ttls[i].key),
                             "cluster.%s: must be longer than heartbeat (%s), got %s (a member would expire "
                             "between two beats)",
                             ttls[i].what, sluice_config_format_duration(cl->heartbeat_ns, a, sizeof a),
                             sluice_config_format_duration(ttl, b, sizeof b));
        }
    }
    if (cl->reconnect_min_ns > cl->reconnect_max_ns) {
        /* Blame the key the file wrote (reconnect_min when both are). */
        bool min_given = (cl->set >> SLUICE_CK_RECONNECT_MIN) & 1u;
        bool max_given = (cl->set >> SLUICE_CK_RECONNECT_MAX) & 1u;
        char a[32], b[32];
        sluice_config_format_duration(cl->reconnect_min_ns, a, sizeof a);
        sluice_config_format_duration(cl->reconnect_max_ns, b, sizeof b);
        if (min_given || !max_given) {
            sluice__cfg_errf(
                e, SLUICE_EINVAL, CPOS(SLUICE_CK_RECONNECT_MIN),
                "cluster.reconnect_min: %s is above reconnect_max (%s%s); the backoff bound starts at "
                "reconnect_min and never exceeds reconnect_max",
                a, b, max_given ? "" : ", the default");
        } else {
            sluice__cfg_errf(
                e, SLUICE_EINVAL, CPOS(SLUICE_CK_RECONNECT_MAX),
                "cluster.reconnect_max: %s is below reconnect_min (%s, the default); the backoff "
                "bound starts at reconnect_min and never exceeds reconnect_max",
                b, a);
        }
    }
    if (cl->budget_file && !cl->budget_file[0]) {
        sluice__cfg_errf(e, SLUICE_EINVAL, CPOS(SLUICE_CK_BUDGET_FILE), "cluster.budget_file: empty");
    }
#undef CPOS
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
    validate_tiers(cfg, e);
    validate_cluster(cfg, e);
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

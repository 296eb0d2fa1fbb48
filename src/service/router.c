/*
 * src/service/router.c - the tier router: a name (a tier or a tenant) to
 * the pool of its tier.
 *
 * Purpose. Tier pools ring-fence capacity (premium, standard and free each
 * with a K of their own); callers should not carry the tenant -> tier map
 * around, so `sluice_router_submit(r, tenant, ...)` does the look-up. An
 * unknown name is an error the caller sees (SLUICE_ENOENT with the tiers
 * listed), never a silent fall-through to some pool, unless a tier opted
 * in to take unknown tenants ("*").
 *
 * Design. Built once and immutable: every name (tier names and tenant
 * names) goes into one array sorted by strcmp, each entry pointing at its
 * tier; a route is one binary search, with no lock and no allocation. The
 * checks that make a name mean exactly one pool (no duplicate tier, no
 * tenant in two tiers, no tenant named like a tier, one "*") run at
 * create, on the sorted array: equal names are neighbours.
 *
 * Tenants. In a tier whose pool is fair (SLUICE_QUEUE_FAIR), a submit for
 * a tenant carries the tenant: a listed tenant by the handle the router
 * acquired at create (no hashing in the pool), an unknown one taken by
 * "*" by name. A FIFO tier pool has no tenants; its submits carry none.
 * The caller's own opts.tenant / opts.tenant_name win over the router's.
 *
 * Ordering, locks: none; the pools do their own locking inside submit.
 */
#include <stdlib.h>
#include <string.h>

#include "base/errbuf.h"
#include "sluice/router.h"
#include "sluice/tenant.h"

typedef struct route_name {
    const char *name; /* points into the router's copy of the tier's strings */
    size_t tier;
    bool is_tier;          /* the tier's own name, not a tenant */
    sluice_tenant *handle; /* a listed tenant of a fair tier; released at destroy */
} route_name;

struct sluice_router {
    sluice_router_tier *tiers; /* copies: name and tenants owned here */
    bool *fair;                /* [tier]: its pool is SLUICE_QUEUE_FAIR */
    size_t tier_count;
    route_name *names; /* sorted by strcmp(name) */
    size_t name_count;
    size_t any_tier; /* the tier that lists "*"; tier_count when none */
};

static int cmp_names(const void *a, const void *b)
{
    const route_name *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c != 0) {
        return c;
    }
    /* Equal names: a stable order (tier first, then by tier) so the
     * message names the earlier entry. */
    if (x->is_tier != y->is_tier) {
        return x->is_tier ? -1 : 1;
    }
    return (x->tier > y->tier) - (x->tier < y->tier);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) {
        memcpy(d, s, n);
    }
    return d;
}

void sluice_router_destroy(sluice_router *r)
{
    if (!r) {
        return;
    }
    for (size_t i = 0; r->names && i < r->name_count; i++) {
        sluice_tenant_release(r->names[i].handle);
    }
    free(r->fair);
    for (size_t i = 0; i < r->tier_count; i++) {
        free((char *)r->tiers[i].name);
        if (r->tiers[i].tenants) {
            for (const char *const *t = r->tiers[i].tenants; *t; t++) {
                free((char *)*t);
            }
            free((void *)r->tiers[i].tenants);
        }
    }
    free(r->tiers);
    free(r->names);
    free(r);
}

/* Validate the shape of one tier before anything is copied. */
static sluice_err check_tier(const sluice_router_tier *t, size_t i, size_t *tenants, char *errbuf,
                             size_t errlen)
{
    if (!t->name || !t->name[0] || strlen(t->name) > 255) {
        sluice__errf(errbuf, errlen, "router: tiers[%zu]: the name must be 1..255 bytes", i);
        return SLUICE_EINVAL;
    }
    if (!t->pool) {
        sluice__errf(errbuf, errlen, "router: tier %s: no pool", t->name);
        return SLUICE_EINVAL;
    }
    for (const char *const *n = t->tenants; n && *n; n++) {
        if (!(*n)[0] || strlen(*n) > 255) {
            sluice__errf(errbuf, errlen, "router: tier %s: tenants[%zu]: the name must be 1..255 bytes",
                         t->name, (size_t)(n - t->tenants));
            return SLUICE_EINVAL;
        }
        if (++*tenants > SLUICE_ROUTER_MAX_TENANTS) {
            sluice__errf(errbuf, errlen, "router: more than %d tenants", SLUICE_ROUTER_MAX_TENANTS);
            return SLUICE_EINVAL;
        }
    }
    return SLUICE_OK;
}

/* Two neighbours of the sorted array with one name: why that is refused. */
static void explain_clash(const sluice_router *r, const route_name *a, const route_name *b, char *errbuf,
                          size_t errlen)
{
    const char *ta = r->tiers[a->tier].name, *tb = r->tiers[b->tier].name;
    if (a->is_tier && b->is_tier) {
        sluice__errf(errbuf, errlen, "router: duplicate tier \"%s\"", a->name);
    } else if (a->is_tier) {
        sluice__errf(errbuf, errlen,
                     "router: tenant \"%s\" of tier %s is named like the tier %s: a submit for it could mean "
                     "either",
                     b->name, tb, ta);
    } else if (strcmp(a->name, SLUICE_ROUTER_ANY_TENANT) == 0) {
        sluice__errf(errbuf, errlen, "router: tiers %s and %s both take unknown tenants (\"*\"); one may", ta,
                     tb);
    } else if (a->tier == b->tier) {
        sluice__errf(errbuf, errlen, "router: tier %s lists tenant \"%s\" twice", ta, a->name);
    } else {
        sluice__errf(errbuf, errlen, "router: tenant \"%s\" is in tiers %s and %s; a tenant has one tier",
                     a->name, ta, tb);
    }
}

sluice_err sluice_router_create(const sluice_router_tier *tiers, size_t count, sluice_router **out,
                                char *errbuf, size_t errlen)
{
    sluice__errf(errbuf, errlen, "%s", "");
    if (!out || (!tiers && count)) {
        sluice__errf(errbuf, errlen, "router: %s is NULL", out ? "tiers" : "out");
        return SLUICE_EINVAL;
    }
    if (count == 0 || count > SLUICE_ROUTER_MAX_TIERS) {
        sluice__errf(errbuf, errlen, "router: needs 1..%d tiers, got %zu", SLUICE_ROUTER_MAX_TIERS, count);
        return SLUICE_EINVAL;
    }
    size_t tenants = 0;
    for (size_t i = 0; i < count; i++) {
        sluice_err e = check_tier(&tiers[i], i, &tenants, errbuf, errlen);
        if (e != SLUICE_OK) {
            return e;
        }
    }
    sluice_router *r = calloc(1, sizeof *r);
    if (!r || !(r->tiers = calloc(count, sizeof *r->tiers)) || !(r->fair = calloc(count, sizeof *r->fair)) ||
        !(r->names = calloc(count + tenants, sizeof *r->names))) {
        sluice_router_destroy(r);
        return SLUICE_ENOMEM;
    }
    r->any_tier = count;
    for (size_t i = 0; i < count; i++) {
        sluice_router_tier *t = &r->tiers[r->tier_count++];
        t->pool = tiers[i].pool;
        if (!(t->name = dup_str(tiers[i].name))) {
            sluice_router_destroy(r);
            return SLUICE_ENOMEM;
        }
        r->names[r->name_count++] = (route_name){t->name, i, true, NULL};
        sluice_pool_config pc;
        sluice_pool_config_get(t->pool, &pc);
        r->fair[i] = pc.queue_discipline == SLUICE_QUEUE_FAIR;
        size_t n = 0;
        for (const char *const *p = tiers[i].tenants; p && *p; p++) {
            n++;
        }
        if (n == 0) {
            continue;
        }
        const char **copy = calloc(n + 1, sizeof *copy);
        t->tenants = copy;
        if (!copy) {
            sluice_router_destroy(r);
            return SLUICE_ENOMEM;
        }
        for (size_t j = 0; j < n; j++) {
            if (!(copy[j] = dup_str(tiers[i].tenants[j]))) {
                sluice_router_destroy(r);
                return SLUICE_ENOMEM;
            }
            r->names[r->name_count++] = (route_name){copy[j], i, false, NULL};
            if (strcmp(copy[j], SLUICE_ROUTER_ANY_TENANT) == 0) {
                r->any_tier = i;
            }
        }
    }
    qsort(r->names, r->name_count, sizeof *r->names, cmp_names);
    for (size_t i = 1; i < r->name_count; i++) {
        if (strcmp(r->names[i - 1].name, r->names[i].name) == 0) {
            explain_clash(r, &r->names[i - 1], &r->names[i], errbuf, errlen);
            sluice_router_destroy(r);
            return SLUICE_EINVAL;
        }
    }
    /* Handles last, once the map is known to be sound. */
    for (size_t i = 0; i < r->name_count; i++) {
        route_name *n = &r->names[i];
        if (n->is_tier || !r->fair[n->tier] || strcmp(n->name, SLUICE_ROUTER_ANY_TENANT) == 0) {
            continue;
        }
        sluice_err e = sluice_pool_tenant_acquire(r->tiers[n->tier].pool, n->name, &n->handle);
        if (e != SLUICE_OK) {
            sluice__errf(errbuf, errlen, "router: tier %s: tenant \"%s\": %s", r->tiers[n->tier].name,
                         n->name, sluice_strerror(e));
            n->handle = NULL;
            sluice_router_destroy(r);
            return e;
        }
    }
    *out = r;
    return SLUICE_OK;
}

static const route_name *find(const sluice_router *r, const char *name)
{
    size_t lo = 0, hi = r->name_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, r->names[mid].name);
        if (c == 0) {
            return &r->names[mid];
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

sluice_err sluice_router_route(const sluice_router *r, const char *name, sluice_route *out, char *errbuf,
                               size_t errlen)
{
    if (!r || !name || !out) {
        sluice__errf(errbuf, errlen, "router: %s is NULL", !r ? "the router" : !name ? "name" : "out");
        return SLUICE_EINVAL;
    }
    const route_name *hit = strcmp(name, SLUICE_ROUTER_ANY_TENANT) == 0 ? NULL : find(r, name);
    if (hit) {
        const sluice_router_tier *t = &r->tiers[hit->tier];
        *out = (sluice_route){t->pool, t->name,     hit->is_tier ? NULL : hit->name,
                              false,   hit->handle, r->fair[hit->tier]};
        return SLUICE_OK;
    }
    if (r->any_tier < r->tier_count) {
        const sluice_router_tier *t = &r->tiers[r->any_tier];
        /* The tenant's own name goes on (the pool counts it); the router
         * cannot hand out a pointer into its own strings for it. */
        *out = (sluice_route){t->pool, t->name, name, true, NULL, r->fair[r->any_tier]};
        return SLUICE_OK;
    }
    if (errbuf && errlen) {
        size_t used = 0;
        int w = snprintf(errbuf, errlen, "unknown tier or tenant \"%.256s\" (tiers:", name);
        used = w > 0 ? (size_t)w : 0;
        for (size_t i = 0; i < r->tier_count && used < errlen; i++) {
            w = snprintf(errbuf + used, errlen - used, "%s %s", i ? "," : "", r->tiers[i].name);
            used += w > 0 ? (size_t)w : 0;
        }
        if (used < errlen) {
            snprintf(errbuf + used, errlen - used, ")");
        }
    }
    return SLUICE_ENOENT;
}

sluice_err sluice_router_submit(const sluice_router *r, const char *name, sluice_task_fn fn, void *arg,
                                const sluice_submit_opts *opts)
{
    if (!fn) {
        return SLUICE_EINVAL;
    }
    sluice_route route;
    sluice_err e = sluice_router_route(r, name, &route, NULL, 0);
    if (e != SLUICE_OK) {
        return e;
    }
    if (!route.fair || !route.tenant || (opts && (opts->tenant || opts->tenant_name))) {
        return sluice_pool_submit_ex(route.pool, fn, arg, opts);
    }
    sluice_submit_opts o;
    if (opts) {
        o = *opts;
    } else {
        memset(&o, 0, sizeof o);
    }
    if (route.handle) {
        o.tenant = route.handle;
    } else {
        o.tenant_name = route.tenant;
    }
    return sluice_pool_submit_ex(route.pool, fn, arg, &o);
}

size_t sluice_router_tier_count(const sluice_router *r)
{
    return r ? r->tier_count : 0;
}

const sluice_router_tier *sluice_router_tier_get(const sluice_router *r, size_t i)
{
    return (r && i < r->tier_count) ? &r->tiers[i] : NULL;
}

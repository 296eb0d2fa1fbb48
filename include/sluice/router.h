/*
 * sluice/router.h - tier pools: send a submit to the pool of a tier, named
 * by the tier or by one of its tenants.
 *
 * The multi-tenant story (docs/service.md, "Tier pools and the router"): one shared
 * pool lets one customer's flood hold every worker. A fair queue
 * (`queue_discipline: fair`) shares one pool by weight; tiers go further
 * and ring-fence capacity: premium, standard and free each get a pool and
 * a K of their own, so no burst in one tier can take a worker from
 * another. The router is the small map in front of them:
 *
 *     sluice_router_submit(router, "acme", fn, arg, NULL);     // acme's tier
 *     sluice_router_submit(router, "premium", fn, arg, NULL);  // the tier itself
 *     sluice_router_submit(router, "nobody", fn, arg, NULL);   // SLUICE_ENOENT, or
 *                                                               // the tier listing "*"
 *
 * A name is resolved in this order: a tier's name; a tenant a tier lists;
 * the tier that lists "*" (SLUICE_ROUTER_ANY_TENANT: it takes every tenant
 * no tier names); else the name is unknown (SLUICE_ENOENT; the route call
 * says which tiers exist). A tier name and a tenant name may not be equal,
 * a tenant is in at most one tier, and at most one tier lists "*": the
 * router refuses a map in which a name could mean two pools.
 *
 * From sluice.yaml, a pool's `tier:` and its `tenants:` list make the map
 * (sluice_router_create_from_config in sluice/config.h); the map is fixed
 * when the router is created, as the pools are (a reload that changes a
 * tier or a tenants list logs "needs a restart").
 *
 * Ownership: the router borrows the pools; destroy it before them. The
 * names are copied. Thread-safety: a router is immutable once created, so
 * route and submit are safe from any number of threads without a lock; a
 * route is a binary search over the names (no allocation).
 */
#ifndef SLUICE_ROUTER_H
#define SLUICE_ROUTER_H

#include <stddef.h>

#include "sluice/common.h"
#include "sluice/pool.h"

typedef struct sluice_router sluice_router;

/* The tenant name that makes a tier take every tenant no tier names. */
#define SLUICE_ROUTER_ANY_TENANT "*"

/* The most tiers, and tenant names over all tiers, one router holds. */
#define SLUICE_ROUTER_MAX_TIERS 64
#define SLUICE_ROUTER_MAX_TENANTS 65536

/* One tier: its name, its pool and the tenants it serves. */
typedef struct sluice_router_tier {
    const char *name;           /* required, non-empty, at most 255 bytes */
    sluice_pool *pool;          /* required; borrowed */
    const char *const *tenants; /* NULL-terminated list (NULL = none); "*" = every unnamed tenant */
} sluice_router_tier;

/*
 * sluice_router_create - a router over tiers[0..count).
 * Returns: SLUICE_OK and *out; SLUICE_EINVAL with the reason in errbuf
 * (no tiers, more than SLUICE_ROUTER_MAX_TIERS, a NULL or empty name, a
 * NULL pool, a duplicate tier, a tenant in two tiers, a tenant named like
 * a tier, two tiers listing "*", more than SLUICE_ROUTER_MAX_TENANTS
 * tenants); in a fair tier, the error of sluice_pool_tenant_acquire for a
 * listed tenant (a bad name: SLUICE_EINVAL); SLUICE_ENOMEM. On error
 * nothing is allocated.
 * Handles: for each listed tenant of a fair tier the router holds a
 * tenant handle (so that tenant is never forgotten while the router
 * lives); sluice_router_destroy releases them.
 * Ownership: *out belongs to the caller (sluice_router_destroy); the
 * strings are copied, the pools borrowed.
 * Thread-safety: safe; the result is immutable.
 */
SLUICE_API sluice_err sluice_router_create(const sluice_router_tier *tiers, size_t count, sluice_router **out,
                                           char *errbuf, size_t errlen);

/* sluice_router_destroy - free the router (never its pools). NULL is a
 * no-op. No route or submit may run or start on it. */
SLUICE_API void sluice_router_destroy(sluice_router *r);

struct sluice_tenant;

/* Where a name goes. The strings and the handle belong to the router
 * (`tenant` is the caller's own `name` when by_default). */
typedef struct sluice_route {
    sluice_pool *pool;            /* the tier's pool */
    const char *tier;             /* the tier's name */
    const char *tenant;           /* the tenant the submit is for; NULL when the name was a tier */
    bool by_default;              /* the tier took the name through "*" (no tier lists it) */
    struct sluice_tenant *handle; /* a listed tenant of a fair tier (sluice/tenant.h); else NULL */
    bool fair;                    /* the tier's pool is SLUICE_QUEUE_FAIR: submits carry the tenant */
} sluice_route;

/*
 * sluice_router_route - resolve a tier or tenant name (see the order
 * above).
 * Returns: SLUICE_OK and *out; SLUICE_ENOENT when no tier takes the name
 * (errbuf: `unknown tier or tenant "x" (tiers: premium, standard, free)`);
 * SLUICE_EINVAL (NULL router, name or out).
 * Thread-safety: safe from any thread; no lock, no allocation.
 */
SLUICE_API sluice_err sluice_router_route(const sluice_router *r, const char *name, sluice_route *out,
                                          char *errbuf, size_t errlen);

/*
 * sluice_router_submit - route `name`, then sluice_pool_submit_ex(fn, arg,
 * opts) on its pool. In a fair tier the submit carries the tenant (the
 * handle of a listed tenant, the name of one taken by "*"), unless opts
 * names a tenant itself.
 * Returns: SLUICE_ENOENT for an unknown name (the caller keeps arg;
 * sluice_router_route says why), SLUICE_EINVAL (NULL router, name or
 * fn), else what the pool's submit returns.
 * Ownership, blocking and deadlock hazards: those of sluice_pool_submit_ex
 * on the tier's pool (a BLOCK pool may block the caller).
 * Thread-safety: safe from any thread.
 */
SLUICE_API sluice_err sluice_router_submit(const sluice_router *r, const char *name, sluice_task_fn fn,
                                           void *arg, const sluice_submit_opts *opts);

/* sluice_router_tier_count / sluice_router_tier_get - the tiers, in the
 * order given at create (for listings: /debug, the demo). get returns
 * NULL past the end. */
SLUICE_API size_t sluice_router_tier_count(const sluice_router *r);
SLUICE_API const sluice_router_tier *sluice_router_tier_get(const sluice_router *r, size_t i);

#endif /* SLUICE_ROUTER_H */

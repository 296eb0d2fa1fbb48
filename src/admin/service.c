/*
 * src/admin/service.c - an admin server that serves a service object
 * (sluice_admin_config.service): the service's pools and readiness reach
 * the server through a service watcher, so a pool registered once with the
 * service (sluice_service_add_pool) is served without the program telling
 * the server again.
 *
 * Design: the server is one watcher of the service (user = the server).
 * pool_added / pool_removed become sluice_admin_add_pool / remove_pool;
 * ready_changed becomes sluice_admin_set_ready. /metrics serves the
 * service's registry (unless the config names another), where the service
 * exported each pool once, so add_pool finds it there and exports nothing
 * twice.
 *
 * Ordering: attach runs at the end of sluice_admin_start (the server is
 * fully up, so the watcher's first pool_added can be served), detach at
 * the start of sluice_admin_stop (no pool arrives while the server goes).
 * When the service is destroyed first, its `detached` call clears the
 * link and stop only forgets what is left.
 *
 * Lock order: the service calls its watchers with no lock of its own
 * held; add/remove take pools_lock inside the watcher calls. No admin
 * lock is held while calling the service (its unwatch waits for a watcher
 * call in progress on another thread, which may take pools_lock).
 */
#include <stdio.h>

#include "admin/admin_internal.h"

static void w_pool_added(void *user, sluice_pool *pool)
{
    sluice_admin *a = user;
    char why[256];
    sluice_err r = sluice_admin_add_pool_ex(a, pool, why, sizeof why);
    if (r != SLUICE_OK) {
        /* EOVERFLOW past SLUICE__ADMIN_MAX_POOLS, or a name clash (in the
         * server or in its registry): said once on stderr, as the server
         * has no log of its own. */
        fprintf(stderr, "sluice admin: pool %s is not served: %s (%s)\n", sluice_pool_name(pool), why,
                sluice_strerror(r));
    }
}

static void w_pool_removed(void *user, sluice_pool *pool)
{
    sluice_admin_remove_pool(user, pool);
}

static void w_ready(void *user, bool ready)
{
    sluice_admin_set_ready(user, ready);
}

static void w_detached(void *user)
{
    sluice_admin *a = user;
    /* Under pools_lock: a request running the service's checks holds it
     * (read), so the service is not freed under one (health.c). */
    pthread_rwlock_wrlock(&a->pools_lock);
    atomic_store_explicit(&a->service, NULL, memory_order_release); /* pairs with detach's acquire load */
    pthread_rwlock_unlock(&a->pools_lock);
}

sluice_err sluice__admin_attach(sluice_admin *a, sluice_service *svc)
{
    sluice_service_watcher w = {
        .pool_added = w_pool_added,
        .pool_removed = w_pool_removed,
        .ready_changed = w_ready,
        .detached = w_detached,
        .user = a,
    };
    atomic_store_explicit(&a->service, svc, memory_order_release);
    sluice_err r = sluice_service_watch(svc, &w);
    if (r != SLUICE_OK) {
        atomic_store_explicit(&a->service, NULL, memory_order_release);
    }
    return r;
}

void sluice__admin_detach(sluice_admin *a)
{
    sluice_service *svc = atomic_load_explicit(&a->service, memory_order_acquire);
    if (svc) {
        sluice_service_unwatch(svc, a);
        atomic_store_explicit(&a->service, NULL, memory_order_release);
    }
}

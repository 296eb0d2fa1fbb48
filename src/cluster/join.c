/*
 * src/cluster/join.c - a service built from sluice.yaml joins the cluster
 * its `cluster:` section names, with no wiring of its own.
 *
 * Purpose. The config layer parses `cluster:` (schema rows, src/config)
 * but sits below this library and never links hiredis; the service sits
 * lower still. This file is where they meet: from a loaded config and the
 * service made from it, it creates the sluice_cluster (Redis address,
 * prefix, service, timings), loads the budget file, binds every pool
 * whose `downstream` is the budget's downstream to the service's share
 * (share mode: K = part / live replicas at each membership change), in
 * strict mode also creates the leased semaphore of that downstream, and
 * registers a "cluster" health check on the service, so /health/ready
 * and /health/pools show the fallback.
 *
 * Several pools on the budget's downstream split the service's share in
 * proportion to their configured workers (largest remainders first, so
 * the parts sum to the share exactly; each part at least 1). Each part is
 * then split among the replicas by sluice_cluster_bind_share.
 *
 * Design. Everything is made in create, undone in destroy in the reverse
 * order: health check removed first (so no request reads a half-torn
 * object), then bindings, then the semaphore, then the cluster. No lock
 * of its own: the fields are immutable between create and destroy; the
 * health check reads the cluster's status (its own locks).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rules.h"
#include "cluster/cluster_internal.h"
#include "sluice/cluster_join.h"
#include "sluice/service.h"

typedef struct join_pool {
    sluice_pool *pool;
    unsigned part;    /* this pool's part of the service's share */
    unsigned bind_id; /* sluice_cluster_bind_share's id */
} join_pool;

struct sluice_cluster_join {
    sluice_service *svc;
    sluice_cluster *cluster;
    sluice_dsem *dsem; /* strict mode */
    bool check_added;
    bool fallback_unready;
    bool strict;
    char redis[300];
    sluice_budget budget;
    unsigned share;
    size_t pool_count;
    size_t bound; /* pools[0..bound) are bound */
    join_pool pools[SLUICE_CLUSTER_MAX_BINDINGS];
    /* strings the cluster config points at while it is created */
    char host[256];
};

/* "host:port" -> host, port (the config layer checked the shape). */
static bool split_redis(const char *a, char *host, size_t hlen, unsigned *port)
{
    const char *colon = a ? strrchr(a, ':') : NULL;
    if (!colon || (size_t)(colon - a) >= hlen) {
        return false;
    }
    memcpy(host, a, (size_t)(colon - a));
    host[colon - a] = '\0';
    *port = (unsigned)strtoul(colon + 1, NULL, 10);
    return *port > 0 && *port <= 65535;
}

/* The budget file's path: relative paths are taken from the config
 * file's directory (a built-in config's from the working directory). */
static void budget_path(const sluice_config *cfg, char *out, size_t len)
{
    const char *bf = cfg->cluster.budget_file;
    const char *src = cfg->source ? cfg->source : "";
    const char *slash = strrchr(src, '/');
    if (bf[0] == '/' || !slash || src[0] == '<') {
        snprintf(out, len, "%s", bf);
    } else {
        snprintf(out, len, "%.*s/%s", (int)(slash - src), src, bf);
    }
}

static sluice_health_state check(void *user, char *line, size_t len)
{
    sluice_cluster_join *j = user;
    sluice_cluster_status st;
    sluice_cluster_status_get(j->cluster, &st);
    char ks[160] = "";
    size_t used = 0;
    for (size_t i = 0; i < j->pool_count && used < sizeof ks; i++) {
        int w = snprintf(ks + used, sizeof ks - used, "%s%s K=%u", i ? ", " : "",
                         sluice_pool_name(j->pools[i].pool),
                         sluice_cluster_share_k_get(j->cluster, j->pools[i].bind_id));
        used += w > 0 ? (size_t)w : 0;
    }
    if (st.fallback) {
        snprintf(line, len, "fallback: Redis %s unreachable, local bound (%s; last known %u replicas)%s",
                 j->redis, ks, st.members,
                 j->fallback_unready ? "" : "; still ready (cluster.fallback_unready: false)");
        return j->fallback_unready ? SLUICE_HEALTH_FAIL : SLUICE_HEALTH_DEGRADED;
    }
    snprintf(line, len, "%s replica %u of %u, share %u of %s (%s)", st.replica_id, st.rank + 1, st.members,
             j->share, j->budget.downstream, ks);
    return SLUICE_HEALTH_OK;
}

void sluice_cluster_join_destroy(sluice_cluster_join *j)
{
    if (!j) {
        return;
    }
    if (j->check_added) {
        sluice_service_remove_check(j->svc, j);
    }
    for (size_t i = 0; i < j->bound; i++) {
        sluice_cluster_unbind(j->cluster, j->pools[i].bind_id);
    }
    sluice_dsem_destroy(j->dsem);
    sluice_cluster_destroy(j->cluster);
    free(j);
}

static sluice_err fail(sluice_cluster_join *j, sluice_err r, char *errbuf, size_t errlen, const char *fmt,
                       ...) SLUICE_PRINTF(5, 6);
static sluice_err fail(sluice_cluster_join *j, sluice_err r, char *errbuf, size_t errlen, const char *fmt,
                       ...)
{
    va_list ap;
    va_start(ap, fmt);
    sluice__verrf(errbuf, errlen, fmt, ap);
    va_end(ap);
    sluice_cluster_join_destroy(j);
    return r;
}

sluice_err sluice_cluster_join_create(const sluice_config *cfg, sluice_service *svc, sluice_logger *logger,
                                      sluice_cluster_join **out, char *errbuf, size_t errlen)
{
    if (errbuf && errlen) {
        errbuf[0] = '\0';
    }
    if (!cfg || !svc || !out) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "cluster join: %s is NULL", !cfg ? "cfg" : !svc ? "svc" : "out");
        }
        return SLUICE_EINVAL;
    }
    *out = NULL;
    const sluice_config_cluster *cl = &cfg->cluster;
    if (!cl->present) {
        return SLUICE_OK; /* nothing to join */
    }
    sluice_cluster_join *j = calloc(1, sizeof *j);
    if (!j) {
        return SLUICE_ENOMEM;
    }
    j->svc = svc;
    j->fallback_unready = cl->fallback_unready;
    j->strict = cl->mode == SLUICE_CLUSTER_MODE_STRICT;
    snprintf(j->redis, sizeof j->redis, "%s", cl->redis ? cl->redis : "");
    const char *service = cl->service ? cl->service : cfg->service.name;

    /* The budget. */
    char path[4096], why[512];
    budget_path(cfg, path, sizeof path);
    sluice_err r = sluice_budget_load(path, &j->budget, why, sizeof why);
    if (r != SLUICE_OK) {
        return fail(j, r, errbuf, errlen, "cluster.budget_file: %s", why);
    }
    j->share = sluice_budget_share_of(&j->budget, service);
    if (j->share == 0) {
        char names[256] = "";
        size_t used = 0;
        for (size_t i = 0; i < j->budget.share_count && used < sizeof names; i++) {
            int w = snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                             j->budget.shares[i].service);
            used += w > 0 ? (size_t)w : 0;
        }
        return fail(j, SLUICE_EINVAL, errbuf, errlen,
                    "cluster.service: \"%s\" has no share in %s (shares: %s)", service, path, names);
    }

    /* The pools on the budget's downstream. */
    unsigned weight[SLUICE_CLUSTER_MAX_BINDINGS], part[SLUICE_CLUSTER_MAX_BINDINGS];
    for (size_t i = 0; i < cfg->pool_count; i++) {
        const sluice_config_pool *cp = &cfg->pools[i];
        if (!cp->downstream || strcmp(cp->downstream, j->budget.downstream) != 0) {
            continue;
        }
        if (j->pool_count == SLUICE_CLUSTER_MAX_BINDINGS) {
            return fail(j, SLUICE_EINVAL, errbuf, errlen, "cluster: more than %d pools call downstream %s",
                        SLUICE_CLUSTER_MAX_BINDINGS, j->budget.downstream);
        }
        sluice_pool *p = sluice_service_find_pool(svc, cp->name);
        if (!p) {
            return fail(
                j, SLUICE_EINVAL, errbuf, errlen,
                "cluster: pool %s is in the config but not in the service (was the service built from "
                "this config?)",
                cp->name);
        }
        weight[j->pool_count] = cp->workers;
        j->pools[j->pool_count++].pool = p;
    }
    if (j->pool_count == 0) {
        return fail(
            j, SLUICE_EINVAL, errbuf, errlen,
            "cluster: no pool has downstream: %s (the downstream of %s); set it on the pools that call it",
            j->budget.downstream, path);
    }
    if (j->share < j->pool_count) {
        return fail(
            j, SLUICE_EINVAL, errbuf, errlen,
            "cluster: %s's share of %s is %u, less than the %zu pools that call it (each needs K >= 1)",
            service, j->budget.downstream, j->share, j->pool_count);
    }
    sluice__share_split(j->share, weight, j->pool_count, part);

    /* The cluster. */
    sluice_cluster_config cc;
    sluice_cluster_config_init(&cc);
    if (!split_redis(cl->redis, j->host, sizeof j->host, &cc.redis_port)) {
        return fail(j, SLUICE_EINVAL, errbuf, errlen, "cluster.redis: want host:port, got \"%s\"",
                    cl->redis ? cl->redis : "");
    }
    cc.redis_host = j->host;
    cc.key_prefix = cl->key_prefix;
    cc.service = service;
    cc.replica_id = cl->replica_id;
    cc.heartbeat_ns = cl->heartbeat_ns;
    cc.member_ttl_ns = cl->member_ttl_ns;
    cc.lease_ttl_ns = cl->lease_ttl_ns;
    cc.redis_timeout_ns = cl->redis_timeout_ns;
    cc.reconnect_min_ns = cl->reconnect_min_ns;
    cc.reconnect_max_ns = cl->reconnect_max_ns;
    cc.logger = logger;
    cc.metrics = sluice_service_metrics(svc);
    r = sluice_cluster_create(&cc, &j->cluster, why, sizeof why);
    if (r != SLUICE_OK) {
        return fail(j, r, errbuf, errlen, "cluster: %s", why);
    }
    if (j->strict) {
        sluice_dsem_config dc;
        sluice_dsem_config_init(&dc);
        dc.downstream = j->budget.downstream;
        dc.share = j->share;
        dc.total_limit = j->budget.total_limit;
        dc.free_pool = j->budget.free_pool;
        dc.block = cl->block;
        dc.fallback_k = cl->fallback_k;
        r = sluice_dsem_create(j->cluster, &dc, &j->dsem, why, sizeof why);
        if (r != SLUICE_OK) {
            return fail(j, r, errbuf, errlen, "cluster: strict mode: %s", why);
        }
    }
    for (size_t i = 0; i < j->pool_count; i++) {
        j->pools[i].part = part[i];
        sluice_share_binding b = {
            .pool = j->pools[i].pool,
            .share = part[i],
            .fallback_k = cl->fallback_k,
        };
        r = sluice_cluster_bind_share(j->cluster, &b, &j->pools[i].bind_id);
        if (r != SLUICE_OK) {
            return fail(j, r, errbuf, errlen, "cluster: binding pool %s: %s",
                        sluice_pool_name(j->pools[i].pool), sluice_strerror(r));
        }
        j->bound++;
    }
    r = sluice_service_add_check(svc, "cluster", check, j);
    if (r != SLUICE_OK) {
        return fail(j, r, errbuf, errlen, "cluster: cannot add its health check: %s", sluice_strerror(r));
    }
    j->check_added = true;
    *out = j;
    return SLUICE_OK;
}

sluice_cluster *sluice_cluster_join_cluster(const sluice_cluster_join *j)
{
    return j ? j->cluster : NULL;
}

sluice_dsem *sluice_cluster_join_dsem(const sluice_cluster_join *j)
{
    return j ? j->dsem : NULL;
}

unsigned sluice_cluster_join_part(const sluice_cluster_join *j, const sluice_pool *pool)
{
    for (size_t i = 0; j && i < j->pool_count; i++) {
        if (j->pools[i].pool == pool) {
            return j->pools[i].part;
        }
    }
    return 0;
}

const sluice_budget *sluice_cluster_join_budget(const sluice_cluster_join *j)
{
    return j ? &j->budget : NULL;
}

/*
 * sluice/cluster_join.h - a service built from sluice.yaml joins the
 * cluster its `cluster:` section names (libsluice-cluster; links hiredis,
 * and the config layer's header for sluice_config).
 *
 *     sluice_config *cfg;      ... sluice_config_load_file(...)
 *     sluice_service *svc;     ... sluice_service_create_from_config(cfg, ...)
 *     sluice_cluster_join *j;
 *     if (sluice_cluster_join_create(cfg, svc, NULL, &j, err, sizeof err)) ... // exit 2 with err
 *     sluice_service_run(svc, &rep);
 *     sluice_cluster_join_destroy(j);   // before sluice_service_destroy
 *     sluice_service_destroy(svc);
 *
 * What it does: registers this replica under cluster.service (default
 * service.name), loads cluster.budget_file, and binds every pool whose
 * `downstream` is the budget's downstream to the service's share (several
 * such pools split it in proportion to their `workers`): each pool's K
 * follows its part / live replicas. In strict mode a leased distributed
 * semaphore for the downstream is made too (sluice_cluster_join_dsem):
 * tasks that take a permit from it around each call keep the cluster at
 * most the share in flight. A "cluster" health check on the service shows
 * the replica's state in /health/ready and /health/pools: in fallback it
 * is DEGRADED (200) or, with cluster.fallback_unready, FAIL (503). The
 * sluice_budget_* metrics go to the service's registry.
 */
#ifndef SLUICE_CLUSTER_JOIN_H
#define SLUICE_CLUSTER_JOIN_H

#include "sluice/cluster.h"
#include "sluice/config.h"
#include "sluice/service.h"

typedef struct sluice_cluster_join sluice_cluster_join;

/*
 * sluice_cluster_join_create - join cfg's cluster (see above). Redis being
 * down is not an error (the replica starts in fallback and keeps trying).
 * Returns: SLUICE_OK with *out, or *out NULL when cfg has no `cluster:`
 * section (nothing to do; destroy(NULL) is a no-op); SLUICE_EIO (budget
 * file unreadable), SLUICE_EPARSE / SLUICE_EINVAL with "file:line:col: ..."
 * for a bad budget file, or a sentence naming the key for a service with
 * no share, no pool on the budget's downstream, a share smaller than the
 * number of such pools; SLUICE_EINVAL with "cluster: more than 16 pools
 * call downstream NAME" when more than SLUICE_CLUSTER_MAX_BINDINGS (16)
 * pools name the budget's downstream (each is one share binding; exactly
 * 16 join); SLUICE_ENOMEM; SLUICE_ESYS. On error nothing is left running
 * and errbuf says why.
 * Ownership: *out belongs to the caller; svc and logger are borrowed and
 * must outlive it; cfg is read during the call only (the budget path is
 * relative to cfg->source's directory).
 * Thread-safety: call once, before sluice_service_run.
 */
SLUICE_API sluice_err sluice_cluster_join_create(const sluice_config *cfg, sluice_service *svc,
                                                 sluice_logger *logger, sluice_cluster_join **out,
                                                 char *errbuf, size_t errlen);

/*
 * sluice_cluster_join_destroy - remove the health check, unbind the pools,
 * destroy the semaphore (every permit must be released) and leave the
 * cluster (at once when Redis answers). Call before sluice_service_destroy:
 * the bound pools are the service's. NULL is a no-op. Blocks for at most a
 * few Redis timeouts.
 */
SLUICE_API void sluice_cluster_join_destroy(sluice_cluster_join *j);

/* The cluster (for sluice_cluster_status_get); owned by j. */
SLUICE_API sluice_cluster *sluice_cluster_join_cluster(const sluice_cluster_join *j);

/* Strict mode: the downstream's leased semaphore (NULL in share mode);
 * owned by j. Take a permit around each downstream call. */
SLUICE_API sluice_dsem *sluice_cluster_join_dsem(const sluice_cluster_join *j);

/* A bound pool's part of the service's share (0 when the pool is not bound). */
SLUICE_API unsigned sluice_cluster_join_part(const sluice_cluster_join *j, const sluice_pool *pool);

/* The budget file as loaded; owned by j. */
SLUICE_API const sluice_budget *sluice_cluster_join_budget(const sluice_cluster_join *j);

#endif /* SLUICE_CLUSTER_JOIN_H */

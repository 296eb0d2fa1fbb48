/*
 * tests/cluster/undo.h - the cleanup adapters the cluster tests share: a
 * test registers what it makes with cleanup_push (common/cleanup.h) and
 * one of these, so a failed assertion does not leave clusters, their
 * threads, pools or a redis-server running into the next test. Adapters
 * used by one file only stay in that file.
 */
#ifndef SLUICE_TESTS_CLUSTER_UNDO_H
#define SLUICE_TESTS_CLUSTER_UNDO_H

#include "sluice/cluster.h"
#include "sluice/sluice.h"

#include "cluster/redis_fixture.h"

static inline void undo_cluster(void *p)
{
    sluice_cluster_destroy(p);
}

static inline void undo_dsem(void *p)
{
    sluice_dsem_destroy(p);
}

static inline void undo_dlimiter(void *p)
{
    sluice_dlimiter_destroy(p);
}

static inline void undo_pool(void *p)
{
    sluice_pool_destroy(p);
}

static inline void undo_redis(void *p)
{
    redis_fixture_stop(p);
}

#endif /* SLUICE_TESTS_CLUSTER_UNDO_H */

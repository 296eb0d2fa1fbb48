/*
 * src/admin/admin_internal.h - what the admin server's files share: the
 * server object, the response buffer and the response helpers. Internal
 * (not installed). The route table is in route.h.
 *
 * Lock order (all files): pools_lock (read for requests and the sampler,
 * write for add/remove) -> sat_lock -> the metrics registry lock -> pool
 * getters. conn_lock (http.c, the connection slots) is a leaf: nothing is
 * taken under it.
 */
#ifndef SLUICE_ADMIN_INTERNAL_H
#define SLUICE_ADMIN_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "admin/route.h"
#include "sluice/admin.h"
#include "sluice/service.h"

#define SLUICE__ADMIN_MAX_POOLS 64
#define SLUICE__ADMIN_PROBE_LABEL "sluice.admin.probe"

/* ---- a growable string (one thread writes it) ---------------------------------- */

typedef struct sluice__sb {
    char *buf;
    size_t len;
    size_t cap;
    bool oom; /* latched: the response becomes a 500 */
} sluice__sb;

void sluice__sb_put(sluice__sb *b, const char *s, size_t n);
void sluice__sb_puts(sluice__sb *b, const char *s);
void sluice__sb_printf(sluice__sb *b, const char *fmt, ...) SLUICE_PRINTF(2, 3);
void sluice__sb_json_str(sluice__sb *b, const char *s);

/* ---- the server ------------------------------------------------------------------ */

typedef struct sluice__admin_pool {
    sluice_pool *pool;
    bool in_registry; /* we added it to the registry, so we remove it */
    /* Guarded by sat_lock. */
    bool saturated;
    uint64_t sat_since;
} sluice__admin_pool;

struct sluice_admin {
    /* Immutable after start. */
    sluice_admin_config cfg; /* defaults filled; address points at `address` */
    char address[256];
    char token[SLUICE_ADMIN_TOKEN_MAX + 1]; /* "" = no token */
    sluice_metrics *metrics;
    bool own_metrics;
    struct MHD_Daemon *daemon;
    unsigned port;

    _Atomic bool ready; /* release by set_ready, acquire by the readers */

    /* The service served (cfg.service) while attached; NULL before attach,
     * after detach, or once the service was destroyed (its `detached`). */
    _Atomic(sluice_service *) service;

    /* Guarded by pools_lock. */
    pthread_rwlock_t pools_lock;
    sluice__admin_pool pools[SLUICE__ADMIN_MAX_POOLS];
    size_t pool_count;
    pthread_mutex_t sat_lock; /* the saturation fields of pools[] */

    /* The sampler. Guarded by sampler_mu. */
    pthread_mutex_t sampler_mu;
    pthread_cond_t sampler_cv;
    bool sampler_stop;
    bool sampler_started;
    pthread_t sampler;
};

/* ---- responses (http.c) ------------------------------------------------------------ */

/* Queue `body` (malloc'd; freed by MHD, or here on failure). */
int sluice__admin_respond(struct MHD_Connection *c, unsigned status, const char *type, char *body,
                          size_t len);
int sluice__admin_respond_text(struct MHD_Connection *c, unsigned status, const char *text);
/* Queue b's text (its buffer is handed over), or 500 when it ran out of memory. */
int sluice__admin_respond_sb(struct MHD_Connection *c, unsigned status, const char *type, sluice__sb *b);

/* ---- health.c ------------------------------------------------------------------------ */

/* One look at each pool's saturation (the sampler thread's body). */
void sluice__admin_sample(sluice_admin *a);
/* The health probe's task function (a no-op that tells the request). */
int sluice__admin_probe_fn(void *arg);

/* ---- service.c ----------------------------------------------------------------------- */

/* Serve `svc`: watch it (its pools are added, readiness follows it).
 * Returns sluice_service_watch's result. */
sluice_err sluice__admin_attach(sluice_admin *a, sluice_service *svc);
/* Stop watching (no-op when not attached or the service is gone). */
void sluice__admin_detach(sluice_admin *a);

#endif /* SLUICE_ADMIN_INTERNAL_H */

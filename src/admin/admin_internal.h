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
#include "base/errbuf.h"
#include "base/rules.h"
#include "base/text.h"
#include "base/timing.h"
#include "sluice/admin.h"
#include "sluice/service.h"

#define SLUICE__ADMIN_MAX_POOLS 64
#define SLUICE__ADMIN_PROBE_LABEL "sluice.admin.probe"

/* The submit deadline of a /health/pools probe (health.c), on the pool's
 * clock reading `now`: a BLOCK pool whose queue filled since the look
 * waits at most `health_timeout_ns`, saturating at UINT64_MAX (a timeout
 * of UINT64_MAX is "for ever", never a wrapped deadline in the past that
 * would fail the probe at once); on a fake clock, which may never move,
 * the deadline is due at the first tick (now + 1; at the clock's end,
 * where there is no next tick, UINT64_MAX - 1, due at once: UINT64_MAX
 * would be "never" and the probe would wait for ever on a full BLOCK
 * pool). Never 0, which submit_deadline_ns reads as "none". */
static inline uint64_t sluice__admin_probe_deadline(uint64_t now, bool system_clock,
                                                    uint64_t health_timeout_ns)
{
    if (!system_clock) {
        return now == UINT64_MAX ? UINT64_MAX - 1 : now + 1;
    }
    return sluice__add_sat(now, health_timeout_ns);
}

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

/* One open connection (http.c), from libmicrohttpd's "started" notice to
 * its "closed" notice; MHD closes the socket only after the latter, so
 * while an entry is listed (under conn_lock) its fd is this connection's. */
typedef struct sluice__admin_conn {
    /* Guarded by conn_lock. */
    struct sluice__admin_conn *prev, *next;
    int fd;
    bool busy;               /* a handler is running for it: never shut down */
    bool closing;            /* shut down by us (evicted or past its deadline) */
    uint64_t since_ns;       /* CLOCK_MONOTONIC: connected, or last left a handler */
    uint64_t answered_ns;    /* CLOCK_MONOTONIC: the last answer left its handler; 0 = none */
    uint64_t bytes_at_since; /* bytes received before since_ns (TCP_INFO) */
    /* The current request's target as sent, before decoding (written by the
     * URI callback and read by the dispatcher, both on the connection's
     * MHD thread). */
    const char *raw_target;
    size_t raw_len;    /* up to its first NUL */
    bool pct_nul;      /* "%00" in its path */
    bool headers_seen; /* the handler's first call for this request came (http.c: keep-alive) */
    int served;
    uint64_t t0;
} sluice__admin_conn;

typedef struct sluice__admin_pool {
    sluice_pool *pool;
    bool in_registry; /* we added it to the registry, so we remove it */
    /* Readiness weight in thousandths (sluice_admin_set_pool_readiness),
     * or -1: not set here, so the served service's weight (1000 without a
     * service). Guarded by sat_lock. */
    int ready_milli;
    /* Guarded by sat_lock. */
    bool saturated;
    uint64_t sat_since;
} sluice__admin_pool;

struct sluice_admin {
    /* Immutable after start. */
    sluice_admin_config cfg; /* defaults filled; address points at `address` */
    char address[SLUICE_ADMIN_ADDRESS_MAX + 1];
    char token[SLUICE_ADMIN_TOKEN_MAX + 1]; /* "" = no token */
    sluice_metrics *metrics;
    bool own_metrics;
    struct MHD_Daemon *daemon;
    unsigned port;
    char bound[64]; /* the bound address, numeric: "127.0.0.1:9464", "[::1]:9464" */
    bool loopback;  /* bound to a loopback address (not a wildcard) */

    _Atomic bool ready; /* release by set_ready, acquire by the readers */

    /* The service served (cfg.service) while attached; NULL before attach,
     * after detach, or once the service was destroyed (its `detached`). */
    _Atomic(sluice_service *) service;

    /* Guarded by pools_lock. */
    pthread_rwlock_t pools_lock;
    sluice__admin_pool pools[SLUICE__ADMIN_MAX_POOLS];
    size_t pool_count;
    pthread_mutex_t sat_lock; /* the saturation fields of pools[] */

    /* Connection slots (http.c). Guarded by conn_lock, a leaf lock. */
    pthread_mutex_t conn_lock;
    sluice__admin_conn conns; /* list sentinel */
    unsigned conn_open;       /* listed and not closing */
    unsigned slow_cap;        /* immutable: SLUICE__ROUTE_SLOW requests at once */
    _Atomic unsigned slow_inflight;

    /* The sampler. Guarded by sampler_mu. */
    pthread_mutex_t sampler_mu;
    pthread_cond_t sampler_cv;
    bool sampler_stop;
    bool sampler_started;
    pthread_t sampler;
};

/* ---- responses (http.c) ------------------------------------------------------------ */

/* Queue `body` (malloc'd; freed by MHD, or here on failure). */
/*
 * sluice__admin_request_waiting - whether socket fd holds, unread, a whole
 * HTTP request head (its blank line, CR LF CR LF) within its first 4 KiB:
 * a client waiting for the server, which eviction spares. Peeks
 * (MSG_PEEK | MSG_DONTWAIT): the bytes stay for libmicrohttpd, and it never
 * blocks. false for fd < 0, an empty socket, an error, or a head not
 * complete yet.
 */
bool sluice__admin_request_waiting(int fd);

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

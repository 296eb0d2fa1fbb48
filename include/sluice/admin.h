/*
 * sluice/admin.h - the admin HTTP server (libsluice_admin, on
 * libmicrohttpd): metrics, health and debug endpoints for a service's
 * pools.
 *
 *   GET /metrics             the registry (sluice/metrics.h), Prometheus text
 *                            0.0.4, or OpenMetrics 1.0 when Accept asks for it
 *   GET /health/live         200 "live" while the process serves
 *   GET /health/ready        200, or 503 while draining (sluice_admin_set_ready
 *                            false) or while any pool has been saturated
 *                            (running == capacity and queue full) for longer
 *                            than saturation_threshold_ns; one line per pool
 *                            saying why ("ingest ok", "ingest saturated for 42.0s")
 *   GET /health/pools        a no-op task submitted to each pool; 200 when
 *                            all ran within health_timeout_ns, else 503
 *                            naming the ones that did not
 *   GET /debug/pools         JSON: each pool's config, stats and workers
 *   GET /debug/pools/stacks  text: the backtrace of every worker thread
 *   anything else            404; a method other than GET/HEAD: 405;
 *                            oversized or malformed requests: 4xx from
 *                            libmicrohttpd, connection closed.
 *
 * The server binds 127.0.0.1:9464 unless told otherwise; it runs one
 * thread per connection (up to max_connections) so that a slow
 * /health/pools does not hold up /metrics, and one sampler thread that
 * watches for saturation.
 *
 * The health probe: a task with label "sluice.admin.probe" that does
 * nothing. It is counted like any task (submitted, completed). It is
 * submitted with try-submit semantics and never to a full DROP_OLDEST
 * pool (it would evict real work): a full queue is reported as "queue
 * full" without submitting. If a probe is still queued when the pool
 * drains, it comes back to the admin (its own on_abandon), not to the
 * pool's abandon handler, and the pool is reported "draining".
 *
 * Lock order: admin pool list (read) -> metrics registry -> pool getters.
 */
#ifndef SLUICE_ADMIN_H
#define SLUICE_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/clock.h"
#include "sluice/common.h"
#include "sluice/metrics.h"
#include "sluice/pool.h"

typedef struct sluice_admin sluice_admin;

#define SLUICE_ADMIN_DEFAULT_ADDRESS "127.0.0.1:9464"

typedef struct sluice_admin_config {
    /* "host:port" with a numeric IPv4 host, "[v6]:port", or ":port" /
     * "port" for 127.0.0.1. Port 0 picks a free port (read it back with
     * sluice_admin_port). NULL = SLUICE_ADMIN_DEFAULT_ADDRESS. */
    const char *address;
    /* The registry served at /metrics; borrowed, must outlive the server.
     * NULL: the server creates its own (sluice_admin_metrics). */
    sluice_metrics *metrics;
    /* Concurrent connections; 0 = 16. Further connections are refused. */
    unsigned max_connections;
    /* Longest request line + headers in bytes; 0 = 8192. */
    size_t max_request_bytes;
    /* /health/pools wait per request; 0 = 5 s. */
    uint64_t health_timeout_ns;
    /* /health/ready: saturated longer than this is not ready; 0 = 30 s. */
    uint64_t saturation_threshold_ns;
    /* How often the sampler looks at each pool; 0 = 250 ms (real time). */
    uint64_t sample_interval_ns;
    /* /debug/pools/stacks wait per thread; 0 = 200 ms. */
    uint64_t stack_timeout_ns;
    /* Idle connections are closed after this; 0 = 10 s. */
    uint64_t connection_timeout_ns;
    /* The clock saturation durations are measured on; NULL = system. */
    const sluice_clock *clock;
} sluice_admin_config;

/* sluice_admin_config_init - zero cfg (every field then means its default). */
SLUICE_API void sluice_admin_config_init(sluice_admin_config *cfg);

/*
 * sluice_admin_start - bind and start serving.
 * Returns: SLUICE_OK; SLUICE_EINVAL (bad address, with the reason in
 * errbuf); SLUICE_EBUSY ("127.0.0.1:9464: address already in use");
 * SLUICE_ESYS (another bind/listen failure, or libmicrohttpd could not
 * start, with strerror in errbuf); SLUICE_ENOMEM.
 * Ownership: *out belongs to the caller; free with sluice_admin_stop.
 * cfg is copied (the registry is borrowed).
 * errbuf: optional (NULL, 0); NUL-terminated when given.
 */
SLUICE_API sluice_err sluice_admin_start(const sluice_admin_config *cfg, sluice_admin **out, char *errbuf,
                                         size_t errlen);

/*
 * sluice_admin_stop - stop accepting, wait for requests in flight (at most
 * the health timeout), join the threads, free. Pools are only forgotten;
 * an owned registry is destroyed. NULL is a no-op.
 */
SLUICE_API void sluice_admin_stop(sluice_admin *admin);

/* sluice_admin_port - the bound port (useful with port 0). */
SLUICE_API unsigned sluice_admin_port(const sluice_admin *admin);

/* sluice_admin_metrics - the registry served at /metrics. Borrowed. */
SLUICE_API sluice_metrics *sluice_admin_metrics(sluice_admin *admin);

/*
 * sluice_admin_add_pool - serve `pool` in /health/... and /debug/pools, and
 * export its metrics in the server's registry (unless it is already there).
 * Returns: SLUICE_OK; SLUICE_EINVAL; SLUICE_ENOMEM; SLUICE_EBUSY (already
 * added, or a pool with that name); SLUICE_EOVERFLOW (more than 64 pools).
 * Ownership: borrowed; call sluice_admin_remove_pool before
 * sluice_pool_destroy.
 * Thread-safety: safe. remove_pool waits for requests that use the pool
 * (at most the health timeout) and takes it out of the registry too.
 */
SLUICE_API sluice_err sluice_admin_add_pool(sluice_admin *admin, sluice_pool *pool);
SLUICE_API sluice_err sluice_admin_remove_pool(sluice_admin *admin, sluice_pool *pool);

/*
 * sluice_admin_set_ready - false turns /health/ready into 503 "draining"
 * (the lifecycle's step 1); true turns it back. Thread-safe, lock-free.
 */
SLUICE_API void sluice_admin_set_ready(sluice_admin *admin, bool ready);

/* Adapter for sluice_lifecycle_config.set_ready; `user` is the admin. */
SLUICE_API void sluice_admin_ready_handler(void *user, bool ready);

/* The health probe's task function (see the header comment). */
SLUICE_API int sluice_admin_probe_fn(void *arg);

/*
 * sluice_admin_route - how the server classifies a request, without a
 * socket (the fuzz target and tests use it). `url` is the path with any
 * query string. Returns the HTTP status the server would answer before
 * running the endpoint: 200 for a known endpoint and an allowed method,
 * 404, 405, or 400 (malformed: not starting with '/', control bytes, a
 * '..' segment, or longer than 2048 bytes). *endpoint gets a static name
 * ("metrics", "live", "ready", "pools", "debug", "stacks") or NULL.
 */
SLUICE_API int sluice_admin_route(const char *method, const char *url, const char **endpoint);

#endif /* SLUICE_ADMIN_H */

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
 *                            naming the ones that did not; a pool that
 *                            could not start worker threads says how many
 *                            ("(worker starts failed: N)")
 *   GET /debug/pools         JSON: each pool's config, stats and workers (and a
 *                            fair pool's tenants: queued, running, limits)
 *   GET /debug/pools/stacks  text: the backtrace of every worker thread
 *   GET /                    the web console: one self-contained HTML page
 *                            (compiled in) that polls /debug/pools and
 *                            /metrics once a second; docs/metrics.md
 *   anything else            404 listing the endpoints; a method other than
 *                            GET/HEAD on an endpoint: 405; malformed
 *                            requests: 400, or 4xx from libmicrohttpd,
 *                            connection closed.
 * With a token (sluice_admin_config.token), /debug/... answer 401 unless
 * the request carries "Authorization: Bearer <token>".
 * Connections are kept alive: requests on one connection, pipelined or
 * not, are answered in order until the client closes it or sends
 * "Connection: close" (HTTP/1.0: unless it asks for keep-alive), a
 * request with a body (no endpoint takes one), one with an "Expect"
 * header or a malformed one (400, also for ambiguous framing: two
 * Content-Length headers, one not a plain decimal, or Content-Length with
 * Transfer-Encoding) is answered, or it idles past connection_timeout_ns;
 * the server then closes it, serving nothing sent behind that request.
 *
 * The server binds 127.0.0.1:9464 unless told otherwise; it runs one
 * thread per connection so that a slow /health/pools does not hold up
 * /metrics, and one sampler thread that watches for saturation and closes
 * connections past their deadline. Slow or idle clients cannot keep
 * /health/live out (see max_connections). A NUL byte in the request
 * target, sent raw or as %00, is a 400.
 *
 * Exposure: /metrics shows pool names, sizes and counters; /health/...
 * pool names and states; /debug/pools each pool's configuration and the
 * labels of running tasks; /debug/pools/stacks code addresses and symbol
 * names of the binary. Binding beyond loopback exposes them to the
 * network: set a token for /debug/... (sluice_admin_address says whether
 * the bound address is loopback). Each /debug/pools/stacks request sends
 * SIGURG to every worker: a blocking call in a running task that does not
 * restart after a signal handler (nanosleep, poll, select, epoll_wait,
 * sem_timedwait, ...) returns EINTR.
 *
 * The health probe: a task with label "sluice.admin.probe" that does
 * nothing, submitted with sluice_pool_submit_ex and its own on_abandon. It
 * is counted like any task (submitted, completed). It is not submitted to
 * a draining pool or a full queue ("draining", "queue full"). If the queue
 * fills between that look and the submit, the pool's overflow policy
 * applies to the probe as to any task: BLOCK waits for space for at most
 * health_timeout_ns (not at all on a fake pool clock); REJECT and a BLOCK
 * timeout are reported as the submit's error; DROP_OLDEST may evict the
 * oldest queued task to make room; CALLER_RUNS runs the probe on the
 * request's thread.
 * A probe handed back (evicted, or still queued when the pool drains)
 * comes back to the admin, not to the pool's abandon handler, and the
 * pool is reported "probe evicted" or "draining".
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
#include "sluice/service.h"

typedef struct sluice_admin sluice_admin;

#define SLUICE_ADMIN_DEFAULT_ADDRESS "127.0.0.1:9464"
/* The longest sluice_admin_config.address accepted, in bytes. */
#define SLUICE_ADMIN_ADDRESS_MAX 255
/* The longest bearer token accepted (sluice_admin_config.token). */
#define SLUICE_ADMIN_TOKEN_MAX 256
/* The largest sluice_admin_config.max_request_bytes (1 MiB). */
#define SLUICE_ADMIN_REQUEST_BYTES_MAX ((size_t)1 << 20)

typedef struct sluice_admin_config {
    /* "host:port" with a numeric IPv4 or IPv6 host, "[v6]:port", or
     * ":port" for 127.0.0.1; a bare "port" is refused (the config file's
     * service.listen follows the same rule). Port 0 picks a free port
     * (read it back with sluice_admin_port). NULL =
     * SLUICE_ADMIN_DEFAULT_ADDRESS. */
    const char *address;
    /* The registry served at /metrics; borrowed, must outlive the server.
     * NULL: the server creates its own (sluice_admin_metrics). */
    sluice_metrics *metrics;
    /* Connections served at once; 0 = 16. When more are open, the server
     * closes the slowest client that is not being answered (one trickling
     * its request, reading its answer slowly, or idle between requests;
     * never one whose whole request head is already in its socket, unread),
     * so a new request, a liveness probe first, always gets in. Closing
     * ones take a moment to go: up to 4 x max_connections (at least 8) are
     * open at most, beyond which new connections are refused.
     * /health/pools and /debug/pools/stacks, which may wait, run at most
     * max_connections / 2 (at least 1) at once; more get 503 at once. */
    unsigned max_connections;
    /* Longest request line + headers in bytes; 0 = 8192; at most
     * SLUICE_ADMIN_REQUEST_BYTES_MAX (start refuses more: each connection
     * may take this much memory, plus 4 KiB of libmicrohttpd's own). A head
     * of up to this many bytes is served; one more than 4 KiB past it is
     * refused with a 4xx or a closed connection. */
    size_t max_request_bytes;
    /* /health/pools wait per request; 0 = 5 s. */
    uint64_t health_timeout_ns;
    /* /health/ready: saturated longer than this is not ready; 0 = 30 s. */
    uint64_t saturation_threshold_ns;
    /* How often the sampler looks at each pool; 0 = 250 ms (real time). */
    uint64_t sample_interval_ns;
    /* /debug/pools/stacks wait per thread; 0 = 200 ms. */
    uint64_t stack_timeout_ns;
    /* A connection is closed when it has spent this long outside a
     * handler: to send its request (however slowly its bytes come), to
     * read its answer, or idle between requests; checked every
     * sample_interval_ns. 0 = 10 s; UINT64_MAX (or any value past what
     * libmicrohttpd's seconds hold) = never. */
    uint64_t connection_timeout_ns;
    /* The clock saturation durations are measured on; NULL = system. */
    const sluice_clock *clock;
    /* A bearer token that /debug/... require ("Authorization: Bearer
     * <token>", else 401); NULL or "" = none. 1..SLUICE_ADMIN_TOKEN_MAX
     * characters of A-Z a-z 0-9 - . _ ~ + / = (RFC 6750); copied. */
    const char *token;
    /* A service to serve (sluice/service.h); borrowed. Its pools are
     * served as they are registered with it (no sluice_admin_add_pool),
     * /health/ready follows its readiness (not ready from the first step
     * of its shutdown), and /metrics serves its registry unless `metrics`
     * names another. Stop the server before destroying the service, or
     * destroy the service first (the server then lets go of its pools and
     * forgets it); never both at once. NULL = pools are added by hand. */
    sluice_service *service;
} sluice_admin_config;

/* sluice_admin_config_init - zero cfg (every field then means its default). */
SLUICE_API void sluice_admin_config_init(sluice_admin_config *cfg);

/*
 * sluice_admin_start - bind and start serving.
 * Returns: SLUICE_OK; SLUICE_EINVAL (bad address or token, an address
 * of more than SLUICE_ADMIN_ADDRESS_MAX bytes,
 * max_request_bytes past SLUICE_ADMIN_REQUEST_BYTES_MAX, with the reason
 * in errbuf); SLUICE_EBUSY ("127.0.0.1:9464: address already in use");
 * SLUICE_ESYS (another bind/listen failure, or libmicrohttpd could not
 * start, with strerror in errbuf); SLUICE_ENOMEM.
 * Ownership: *out belongs to the caller; free with sluice_admin_stop.
 * cfg is copied (the registry is borrowed).
 * errbuf: optional (NULL, 0); NUL-terminated when given.
 */
SLUICE_API sluice_err sluice_admin_start(const sluice_admin_config *cfg, sluice_admin **out, char *errbuf,
                                         size_t errlen);

/*
 * sluice_admin_stop - stop watching the service (cfg.service), stop
 * accepting, wait for requests in flight (at most the health timeout),
 * join the threads, free. Pools are only forgotten; an owned registry is
 * destroyed. NULL is a no-op.
 */
SLUICE_API void sluice_admin_stop(sluice_admin *admin);

/* sluice_admin_port - the bound port (useful with port 0); 0 for NULL.
 * Thread-safe. */
SLUICE_API unsigned sluice_admin_port(const sluice_admin *admin);

/*
 * sluice_admin_address - the address the server is bound to, numeric and
 * with the real port: "127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464" for
 * every IPv4 interface. Owned by the server (valid until stop); "" for
 * NULL. Thread-safe.
 */
SLUICE_API const char *sluice_admin_address(const sluice_admin *admin);

/*
 * sluice_admin_is_loopback - true when the bound address is a loopback
 * address (127.0.0.0/8, ::1, ::ffff:127.x.y.z), so only this host can
 * connect; false for a wildcard (0.0.0.0, ::) or any other address, which
 * exposes the endpoints to the network (see the header comment), and for
 * NULL. Thread-safe.
 */
SLUICE_API bool sluice_admin_is_loopback(const sluice_admin *admin);

/* sluice_admin_metrics - the registry served at /metrics (borrowed: the
 * caller's, or the server's own until stop); NULL for NULL. Thread-safe. */
SLUICE_API sluice_metrics *sluice_admin_metrics(sluice_admin *admin);

/*
 * sluice_admin_add_pool - serve `pool` in /health/... and /debug/pools, and
 * export its metrics in the server's registry, unless that very pool is
 * already there (a service's registry, say: then it is served and nothing
 * is exported twice, and remove_pool leaves it in the registry).
 * A server given a service (cfg.service) is told of its pools by the
 * service; this call is for pools that are not in one.
 * Returns: SLUICE_OK; SLUICE_EINVAL (NULL); SLUICE_ENOMEM; SLUICE_EBUSY
 * (already added; another added pool has that name; or the registry
 * exports another pool under that name, whose figures /metrics would show
 * as this pool's: refused, nothing changed); SLUICE_EOVERFLOW (more than
 * 64 pools).
 * Ownership: borrowed; call sluice_admin_remove_pool before
 * sluice_pool_destroy.
 * Thread-safety: safe. remove_pool waits for requests that use the pool
 * (at most the health timeout) and takes it out of the registry too
 * (only if this server put it there). Returns SLUICE_OK,
 * SLUICE_EINVAL (NULL), SLUICE_ENOENT (not added).
 */
SLUICE_API sluice_err sluice_admin_add_pool(sluice_admin *admin, sluice_pool *pool);
SLUICE_API sluice_err sluice_admin_remove_pool(sluice_admin *admin, sluice_pool *pool);

/*
 * sluice_admin_add_pool_ex - sluice_admin_add_pool, saying why in errbuf
 * when it refuses: 'pool "ingest": the metrics registry already exports
 * another pool named "ingest" (...)', 'pool "ingest": already served by
 * this server', 'pool "ingest": the server already serves 64 pools, ...'.
 * Same returns, ownership and thread safety.
 * errbuf: optional (NULL, 0); NUL-terminated when given ("" on success).
 */
SLUICE_API sluice_err sluice_admin_add_pool_ex(sluice_admin *admin, sluice_pool *pool, char *errbuf,
                                               size_t errlen);

/*
 * sluice_admin_set_pool_readiness - how much `pool` saturated counts
 * against /health/ready: the endpoint turns 503 when the weights of the
 * pools saturated longer than saturation_threshold_ns add up to 1 or
 * more. 1 (the default): one such pool is enough; 0: the pool never makes
 * the server unready (it is still listed, marked "not gating"); 0.5: two
 * such pools do. Stored in thousandths. Overrides, for this server, the
 * weight a served service gives the pool (sluice_service_set_readiness_weight,
 * which is where a configured service's `readiness_weight` goes); see
 * there for the trade-off of leaving a pool out.
 * Returns SLUICE_OK, SLUICE_EINVAL (NULL, or weight not in [0, 1]: NaN
 * included), SLUICE_ENOENT (the server does not serve the pool).
 * Thread-safe; the next /health/ready uses it.
 */
SLUICE_API sluice_err sluice_admin_set_pool_readiness(sluice_admin *admin, const sluice_pool *pool,
                                                      double weight);

/*
 * sluice_admin_set_ready - false turns /health/ready into 503 "draining"
 * (the lifecycle's step 1); true turns it back. Thread-safe, lock-free.
 */
SLUICE_API void sluice_admin_set_ready(sluice_admin *admin, bool ready);

/* Adapter for sluice_lifecycle_config.set_ready; `user` is the admin. */
SLUICE_API void sluice_admin_ready_handler(void *user, bool ready);

#endif /* SLUICE_ADMIN_H */

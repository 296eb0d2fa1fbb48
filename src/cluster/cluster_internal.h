/*
 * src/cluster/cluster_internal.h - shared between the files of
 * libsluice-cluster: the Redis connection, the scripts, and the hooks the
 * cluster thread calls on each semaphore.
 */
#ifndef SLUICE_CLUSTER_INTERNAL_H
#define SLUICE_CLUSTER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/errbuf.h"
#include "base/rules.h"
#include "base/timing.h"
#include "sluice/cluster.h"

struct redisContext;
struct redisReply;

/* The Lua scripts, loaded once per connection (SCRIPT LOAD) and called by
 * EVALSHA; a NOSCRIPT answer (Redis restarted or SCRIPT FLUSH) reloads. */
typedef enum sluice__script_id {
    SLUICE__SCRIPT_HEARTBEAT = 0,
    SLUICE__SCRIPT_LEAVE,
    SLUICE__SCRIPT_LEASE,
    SLUICE__SCRIPT_GCRA,
    SLUICE__SCRIPT_GCRA_CANCEL,
    SLUICE__SCRIPT_COUNT_
} sluice__script_id;

extern const char *const sluice__script_source[SLUICE__SCRIPT_COUNT_];

/*
 * One Redis connection. Every field is guarded by mu, which is held for
 * the whole of one call (send + reply), so calls from the cluster thread
 * and from acquirers serialise on it. A failed or timed-out call closes
 * the connection (a late reply must never be read as the next call's);
 * reconnecting waits for the backoff.
 */
typedef struct sluice__redis {
    pthread_mutex_t mu;
    char host[256];
    unsigned port;
    uint64_t timeout_ns;
    uint64_t backoff_min_ns, backoff_max_ns;
    const sluice_clock *clock;
    /* guarded by mu */
    struct redisContext *ctx; /* NULL while down */
    char sha[SLUICE__SCRIPT_COUNT_][41];
    uint64_t backoff_bound_ns; /* current jitter bound */
    uint64_t next_attempt_ns;  /* local clock; 0 = at once */
    uint64_t rng;
    char last_error[160];
    /* counters and gauges read without mu */
    _Atomic uint64_t round_trips, errors, reloads, reconnects, latency_ns;
    _Atomic bool up;
} sluice__redis;

void sluice__redis_init(sluice__redis *r, const char *host, unsigned port, uint64_t timeout_ns,
                        uint64_t backoff_min_ns, uint64_t backoff_max_ns, const sluice_clock *clock,
                        uint64_t seed);
void sluice__redis_fini(sluice__redis *r);

/* Connect now if down and the backoff allows (force: ignore the backoff).
 * Returns true when connected. Takes mu. */
bool sluice__redis_ensure(sluice__redis *r, bool force);

/* How a call failed (sluice__redis_eval's *fail). */
typedef enum sluice__redis_fail {
    SLUICE__REDIS_FAIL_NONE = 0, /* a reply that is not an error */
    /* No usable reply: I/O error, timeout, not connected, or an error
     * reply that says the server serves nobody now (-BUSY, -LOADING,
     * -READONLY...). The connection was closed: the cluster falls back. */
    SLUICE__REDIS_FAIL_DOWN,
    /* The script's own error reply (WRONGTYPE on a foreign value under
     * its keys, a Lua error): this call failed, the connection is kept
     * and in step; only the caller's object falls back. */
    SLUICE__REDIS_FAIL_SCRIPT,
} sluice__redis_fail;

/*
 * sluice__redis_eval - EVALSHA script with nkeys keys then args (argc
 * strings in all), reloading on NOSCRIPT. Does not reconnect (callers
 * call sluice__redis_ensure first). Returns the reply (free with
 * freeReplyObject) or NULL on failure, with *fail (when fail is not
 * NULL) saying which: SLUICE__REDIS_FAIL_DOWN (the connection was
 * closed) or SLUICE__REDIS_FAIL_SCRIPT (it was kept); last_error says
 * why either way. Takes mu.
 */
struct redisReply *sluice__redis_eval(sluice__redis *r, sluice__script_id script, int nkeys, int argc,
                                      const char **argv, sluice__redis_fail *fail);

/* Whether an error reply says the server serves nobody now (-BUSY,
 * -LOADING, -READONLY..., also wrapped by Redis 5/6 inside "ERR Error
 * running script ..."), rather than the call's own failure. NULL: false. */
bool sluice__redis_server_error(const char *msg);

/* Close the connection (if open) as a failed call does, with `why` as the
 * last error; the next call reconnects after the backoff. Takes mu. */
void sluice__redis_drop(sluice__redis *r, const char *why);

/* sluice__redis_command - a plain command (argv form); as _eval. */
struct redisReply *sluice__redis_command(sluice__redis *r, int argc, const char **argv);

/* The reply's integer element i of an array (0 when absent or not one). */
long long sluice__reply_int(const struct redisReply *rep, size_t i);

/* ---- what the cluster thread does with each semaphore and limiter ------ */

/* The cluster's view, handed to hooks (read under the cluster mutex and
 * copied). */
typedef struct sluice__view {
    bool have_view;
    bool fallback;
    unsigned members, rank;
} sluice__view;

typedef struct sluice__hook {
    void (*tick)(void *obj, const sluice__view *v); /* renew (or enter/leave fallback) */
    void *obj;
    struct sluice__hook *next;
} sluice__hook;

void sluice__cluster_add_hook(sluice_cluster *c, sluice__hook *h);
void sluice__cluster_remove_hook(sluice_cluster *c, sluice__hook *h);
void sluice__cluster_view(sluice_cluster *c, sluice__view *out);
sluice__redis *sluice__cluster_redis(sluice_cluster *c);
const char *sluice__cluster_prefix(const sluice_cluster *c);
const char *sluice__cluster_service(const sluice_cluster *c);
const char *sluice__cluster_replica(const sluice_cluster *c);
uint64_t sluice__cluster_lease_ttl_ns(const sluice_cluster *c);
uint64_t sluice__cluster_heartbeat_ns(const sluice_cluster *c);
const sluice_clock *sluice__cluster_clock(const sluice_cluster *c);
/* A TTL as the scripts take it, whole milliseconds of Redis time: rounded
 * up, so never shorter than configured. Rounded down, a TTL of 1 ms + 1 ns
 * (the least create takes with a heartbeat of 1 ms) was 1 ms, no longer
 * than the heartbeat: a member or a lease could expire between beats,
 * which create refuses to configure. At least 1 (a script TTL of 0 would
 * expire at once). */
static inline uint64_t sluice__ttl_ms(uint64_t ns)
{
    uint64_t ms = ns / SLUICE_NS_PER_MS + (ns % SLUICE_NS_PER_MS != 0);
    return ms ? ms : 1;
}

/* A Redis call failed outside the cluster thread: enter fallback now. */
void sluice__cluster_redis_failed(sluice_cluster *c);

/* Metrics: the semaphores export through the cluster's collector. */
typedef struct sluice__dsem_export {
    const char *downstream;
    unsigned share, cap, leased, in_use;
} sluice__dsem_export;
void sluice__dsem_export_get(sluice_dsem *ds, sluice__dsem_export *out);
void sluice__cluster_add_dsem(sluice_cluster *c, sluice_dsem *ds);
void sluice__cluster_remove_dsem(sluice_cluster *c, sluice_dsem *ds);

#endif

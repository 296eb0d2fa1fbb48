/*
 * sluice/cluster.h - one downstream budget across replicas, on Redis
 * (libsluice-cluster; links hiredis; the core never does).
 *
 * Sluice's semaphore, limiter and K are process-local. A service that runs
 * N replicas in front of a downstream that accepts D concurrent calls
 * needs the replicas to agree. This layer keeps that agreement in Redis:
 *
 *   sluice_cluster  one per process and service: a Redis connection, the
 *                   replica's membership (heartbeat + TTL, both on
 *                   Redis's clock), the live member list, the fallback
 *                   state, and a background thread that drives them.
 *   share mode      sluice_cluster_bind_share: a pool's K follows
 *                   share / live replicas (the remainder spread by rank
 *                   so the K of all replicas sum to exactly the share),
 *                   applied with sluice_pool_resize at each change.
 *   strict mode     sluice_dsem: a distributed leased semaphore. The
 *                   cluster never holds more than the limit. A replica
 *                   leases blocks of permits up to its fair share, hands
 *                   them out locally and returns what it does not use.
 *   rate limiting   sluice_dlimiter: GCRA in one Lua script, the API shape
 *                   of sluice_limiter.
 *   budgets         sluice_budget_load: a downstream-budget.yaml (each
 *                   service's share and a free pool lent to services that
 *                   need more; see docs/cluster.md).
 *
 * Failure semantics (docs/cluster.md has the whole table): when Redis is
 * unreachable or slower than redis_timeout, every replica falls back to a
 * local bound that is never above its last fair share (share / last known
 * replicas, by rank), or a configured fallback_k when that is lower; the
 * change is logged once, counted, and visible in sluice_cluster_status.
 * The connection is retried with exponential backoff and full jitter.
 *
 * Keys: everything lives under "<key_prefix>:" (default "sluice"); see
 * docs/cluster.md for the key layout. Times in Redis (member expiry,
 * lease expiry, GCRA state) are read from Redis's TIME inside the
 * scripts, so clock skew between replicas does not matter. Local times
 * (heartbeat schedule, backoff, local lease deadlines) use cfg.clock.
 *
 * Thread-safety: every call is safe from any thread unless it says
 * otherwise. Lock order: dsem/dlimiter mutex -> cluster mutex -> Redis
 * connection mutex; no lock is held while user callbacks run except the
 * share callback (called on the cluster thread with no lock held).
 */
#ifndef SLUICE_CLUSTER_H
#define SLUICE_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/clock.h"
#include "sluice/common.h"
#include "sluice/ctx.h"
#include "sluice/limiter.h"
#include "sluice/log.h"
#include "sluice/metrics.h"
#include "sluice/pool.h"

typedef struct sluice_cluster sluice_cluster;

#define SLUICE_CLUSTER_NAME_MAX 64
#define SLUICE_CLUSTER_MAX_BINDINGS 16

typedef struct sluice_cluster_config {
    /* Redis address; NULL = "127.0.0.1"; port 0 = 6379. A single primary
     * (or a Sentinel-managed / managed primary address); not Redis Cluster. */
    const char *redis_host;
    unsigned redis_port;
    /* Key prefix; NULL = "sluice". [A-Za-z0-9_.:-], at most 64 bytes. */
    const char *key_prefix;
    /* Required: the service this replica belongs to ([A-Za-z0-9_.:-]). */
    const char *service;
    /* This replica's id, unique in the service; NULL = "<host>-<pid>-<random>". */
    const char *replica_id;
    /* How often the replica heartbeats (and renews leases); 0 = 1 s. At
     * least 1 ms (less is SLUICE_EINVAL from sluice_cluster_create); up
     * to UINT64_MAX. */
    uint64_t heartbeat_ns;
    /* How long a member lives without a heartbeat; 0 = 3 heartbeats
     * (UINT64_MAX when that does not fit). Must be > heartbeat when given
     * (a member must not expire between beats). Redis keeps both TTLs in
     * whole milliseconds, rounded up; UINT64_MAX is 584 years. */
    uint64_t member_ttl_ns;
    /* How long a lease lives without renewal; 0 = 3 heartbeats (as
     * member_ttl_ns); > heartbeat when given. */
    uint64_t lease_ttl_ns;
    /* A Redis call slower than this counts as a failure (the connection
     * is dropped and the replica falls back); 0 = 250 ms. */
    uint64_t redis_timeout_ns;
    /* Reconnect backoff: the first retry waits up to reconnect_min, each
     * failure doubles the bound up to reconnect_max, and each wait is
     * drawn uniformly in [0, bound] (full jitter, so replicas that lost
     * Redis together do not come back together). 0 = 50 ms / 2 s; the
     * maximum is UINT64_MAX (a replica that lost Redis may then wait
     * without bound). reconnect_min above reconnect_max (after the
     * defaults) is SLUICE_EINVAL from sluice_cluster_create. */
    uint64_t reconnect_min_ns, reconnect_max_ns;
    /* The local clock (heartbeat schedule, backoff, lease deadlines);
     * NULL = system. Redis-side times always use Redis's clock. */
    const sluice_clock *clock;
    /* Optional: fallback and recovery lines go here (one line per change). */
    sluice_logger *logger;
    /* Optional: the sluice_budget_* families are exported through it
     * (a collector; remove happens in sluice_cluster_destroy). */
    sluice_metrics *metrics;
    /* Seed for the backoff jitter; 0 = from the replica id and time. */
    uint64_t seed;
} sluice_cluster_config;

/* sluice_cluster_config_init - zero cfg (all defaults); set service. */
SLUICE_API void sluice_cluster_config_init(sluice_cluster_config *cfg);

/*
 * sluice_cluster_create - connect, register this replica (one heartbeat
 * is attempted before returning, so the member count is known at once
 * when Redis is up), and start the cluster thread. Redis being down is
 * not an error: the cluster starts in fallback and keeps retrying.
 * Returns: SLUICE_OK; SLUICE_EINVAL naming the field in errbuf;
 * SLUICE_ENOMEM; SLUICE_ESYS (thread creation).
 * Ownership: *out belongs to the caller (sluice_cluster_destroy); cfg's
 * strings are copied; clock, logger and metrics are borrowed and must
 * outlive the cluster.
 */
SLUICE_API sluice_err sluice_cluster_create(const sluice_cluster_config *cfg, sluice_cluster **out,
                                            char *errbuf, size_t errlen);

/*
 * sluice_cluster_destroy - stop the thread, deregister (the member leaves
 * at once instead of after the TTL; leases are returned) when Redis is
 * reachable, and free. Every sluice_dsem and sluice_dlimiter made on it
 * must be destroyed first; bound pools are only forgotten. NULL is a no-op.
 * Blocks for at most about one redis_timeout per Redis call it makes.
 */
SLUICE_API void sluice_cluster_destroy(sluice_cluster *c);

/* A snapshot of the cluster's state. */
typedef struct sluice_cluster_status {
    /* gauges */
    bool redis_up;             /* the last Redis call succeeded */
    bool fallback;             /* in fallback (Redis down or never reached) */
    bool have_view;            /* a member list was read at least once */
    unsigned members;          /* live replicas of the service (last known) */
    unsigned rank;             /* this replica's index among them (ids sorted) */
    uint64_t redis_latency_ns; /* last round trip */
    uint64_t view_age_ns;      /* since the member list was last read */
    /* counters */
    uint64_t heartbeats;        /* successful heartbeats */
    uint64_t view_changes;      /* member-list changes seen */
    uint64_t fallbacks;         /* entries into fallback */
    uint64_t reconnects;        /* successful (re)connections */
    uint64_t redis_round_trips; /* Redis calls made, all objects together */
    uint64_t redis_errors;      /* Redis calls that failed (error, timeout) */
    uint64_t script_reloads;    /* NOSCRIPT answers that reloaded a script */
    char replica_id[SLUICE_CLUSTER_NAME_MAX + 1];
} sluice_cluster_status;

SLUICE_API void sluice_cluster_status_get(sluice_cluster *c, sluice_cluster_status *out);

/*
 * sluice_cluster_members - copy up to cap live member ids (sorted, the
 * last known list) into ids[i] (each SLUICE_CLUSTER_NAME_MAX + 1 bytes).
 * Returns the number of members (which may be more than cap).
 */
SLUICE_API size_t sluice_cluster_members(sluice_cluster *c, char (*ids)[SLUICE_CLUSTER_NAME_MAX + 1],
                                         size_t cap);

/*
 * sluice_cluster_heartbeat_now - run one heartbeat (and lease renewal)
 * on the calling thread instead of waiting for the next tick, reconnecting
 * first if the backoff allows. For tests and for services that want the
 * member count right now. Returns SLUICE_OK or SLUICE_EIO (Redis failed;
 * the cluster is then in fallback).
 */
SLUICE_API sluice_err sluice_cluster_heartbeat_now(sluice_cluster *c);

/* ---- share mode ------------------------------------------------------------ */

/*
 * sluice_share_k - the K of the replica at `rank` of `replicas` for a
 * share: share / replicas, plus one for the first share % replicas ranks,
 * so the K of all ranks sum to exactly `share`. 0 replicas -> share.
 * May be 0 when share < replicas (see sluice_cluster_bind_share).
 */
SLUICE_API unsigned sluice_share_k(unsigned share, unsigned replicas, unsigned rank);

/* Why a binding's K changed. */
typedef enum sluice_share_reason {
    SLUICE_SHARE_VIEW = 0, /* a new member list */
    SLUICE_SHARE_FALLBACK, /* Redis is down: the fallback bound */
} sluice_share_reason;

typedef void (*sluice_share_fn)(void *user, unsigned k, sluice_share_reason reason);

typedef struct sluice_share_binding {
    /* The pool to resize (may be NULL when only on_k is wanted). The pool
     * is borrowed: unbind it before destroying it. */
    sluice_pool *pool;
    /* This service's share of the downstream, > 0. */
    unsigned share;
    /* Fallback bound when Redis is down: min(fallback_k, last K). 0 = the
     * last K; with no member list ever read, fallback_k or else 1. */
    unsigned fallback_k;
    /* Optional: called with each new K, after the pool was resized: on
     * the cluster thread, or on the thread in sluice_cluster_bind_share
     * (the first K) or sluice_cluster_heartbeat_now. It runs under the
     * cluster's binding lock (that is what lets unbind promise that no
     * callback runs after it returns), so it must not call bind_share,
     * unbind, share_k_get or heartbeat_now on this cluster. */
    sluice_share_fn on_k;
    void *user;
} sluice_share_binding;

/*
 * sluice_cluster_bind_share - keep a pool's K at this replica's part of
 * `share`: at once (from the last known list, or the fallback bound) and
 * at every member-list change within one heartbeat. A pool needs K >= 1:
 * when share < replicas a replica whose part is 0 runs with K = 1 and
 * the cluster's total exceeds the share by up to replicas - share (use
 * strict mode for such small budgets). K is also raised to the pool's
 * min_workers if needed (resize refuses less).
 * Returns: SLUICE_OK with *id for unbind; SLUICE_EINVAL (share 0, no pool
 * and no on_k); SLUICE_ENOMEM / SLUICE_EFULL... SLUICE_EBUSY when
 * SLUICE_CLUSTER_MAX_BINDINGS are bound.
 */
SLUICE_API sluice_err sluice_cluster_bind_share(sluice_cluster *c, const sluice_share_binding *b,
                                                unsigned *id);

/* sluice_cluster_unbind - forget a binding; after it returns its callback
 * does not run and its pool is not touched. SLUICE_ENOENT for a bad id. */
SLUICE_API sluice_err sluice_cluster_unbind(sluice_cluster *c, unsigned id);

/* sluice_cluster_share_k_get - the K last applied to binding id (0 for a
 * bad id). */
SLUICE_API unsigned sluice_cluster_share_k_get(sluice_cluster *c, unsigned id);

/* ---- strict mode: a distributed leased semaphore ------------------------------ */

typedef struct sluice_dsem sluice_dsem;

typedef struct sluice_dsem_config {
    /* Required: the downstream's name ([A-Za-z0-9_.:-]); replicas and
     * services that name the same downstream share one budget. */
    const char *downstream;
    /* Required, > 0: this service's share of the downstream (the whole
     * limit D when the service is alone). */
    unsigned share;
    /* The downstream's total limit; 0 = share. No grant ever takes the
     * permits held by all services above it. */
    unsigned total_limit;
    /* Permits lent to services that want more than their share; taken
     * back first (no new loans, borrowers return the excess as calls end)
     * when the free pool shrinks. 0 = none. share + other shares + free
     * must fit in total_limit (the budget file checks it). */
    unsigned free_pool;
    /* Permits leased per Redis call when local ones run out, and the
     * headroom kept when returning unused ones. 0 = a quarter of the fair
     * share (at least 1); up to UINT_MAX, where every lease call asks for
     * all this service may hold (share + free_pool) and nothing leased is
     * returned early. */
    unsigned block;
    /* Fallback bound as for sluice_share_binding.fallback_k (the default
     * is the last fair share of the service's own share, and never more
     * than the permits leased when Redis was lost). */
    unsigned fallback_k;
} sluice_dsem_config;

SLUICE_API void sluice_dsem_config_init(sluice_dsem_config *cfg);

/*
 * sluice_dsem_create - a distributed semaphore on cluster c.
 * Returns: SLUICE_OK; SLUICE_EINVAL naming the field; SLUICE_ENOMEM.
 * Ownership: *out belongs to the caller; destroy it before the cluster.
 */
SLUICE_API sluice_err sluice_dsem_create(sluice_cluster *c, const sluice_dsem_config *cfg, sluice_dsem **out,
                                         char *errbuf, size_t errlen);

/*
 * sluice_dsem_destroy - return every leased permit to Redis (if reachable)
 * and free. No acquire may be in progress and every permit must have been
 * released. NULL is a no-op.
 */
SLUICE_API void sluice_dsem_destroy(sluice_dsem *ds);

/*
 * sluice_dsem_acquire - take one permit: a locally leased one if there is
 * one (no Redis call), else lease a block from Redis (one round trip,
 * at most one in flight per semaphore), else wait for a release or the
 * next renewal until ctx ends. In fallback, permits come from the local
 * fallback bound.
 * Returns: SLUICE_OK; ctx's cause (SLUICE_ETIMEDOUT, SLUICE_ECANCELED);
 * SLUICE_ECLOSED (sluice_dsem_close was called).
 * Deadlock hazard: waits with no lock held that ctx callbacks need. A
 * NULL ctx waits until a permit comes.
 */
SLUICE_API sluice_err sluice_dsem_acquire(sluice_dsem *ds, sluice_ctx *ctx);

/* sluice_dsem_try_acquire - as acquire, but never waits (it may still make
 * one Redis call to lease a block). SLUICE_EAGAIN when none is free here:
 * no permit of this replica's lease is free and it could not lease more
 * without waiting, which includes the moment the cluster thread's own call
 * for this semaphore (a renewal, every heartbeat) is in flight; Redis may
 * have had room. A caller that must know retries, or uses acquire with a
 * deadline. */
SLUICE_API sluice_err sluice_dsem_try_acquire(sluice_dsem *ds);

/* sluice_dsem_release - give one permit back (locally; Redis learns at the
 * next renewal). SLUICE_EOVERFLOW when none is held. */
SLUICE_API sluice_err sluice_dsem_release(sluice_dsem *ds);

/* sluice_dsem_close - wake every waiter with SLUICE_ECLOSED; later
 * acquires fail; releases still work. */
SLUICE_API void sluice_dsem_close(sluice_dsem *ds);

typedef struct sluice_dsem_stats {
    /* gauges */
    unsigned share;  /* the service's share */
    unsigned cap;    /* this replica's fair share (last Redis answer) */
    unsigned leased; /* permits Redis granted this replica */
    unsigned in_use; /* handed out locally now */
    unsigned waiters;
    bool fallback;
    unsigned fallback_bound; /* the local bound while in fallback */
    /* counters */
    uint64_t acquired;
    uint64_t lease_calls;       /* Redis calls made by acquirers (out of permits) */
    uint64_t renew_calls;       /* Redis calls made by the cluster thread */
    uint64_t granted;           /* permits Redis granted, in total */
    uint64_t returned;          /* permits given back to Redis, in total */
    uint64_t fallback_acquires; /* permits handed out under the fallback bound */
    uint64_t timeouts;          /* acquires that ended on ctx */
} sluice_dsem_stats;

SLUICE_API void sluice_dsem_stats_get(sluice_dsem *ds, sluice_dsem_stats *out);

/* ---- distributed rate limiter (GCRA) ------------------------------------------ */

typedef struct sluice_dlimiter sluice_dlimiter;

/*
 * The largest finite rate a sluice_dlimiter takes, tokens per second: an
 * emission interval of 1e-3 us (a nanosecond). Faster rates are refused;
 * SLUICE_RATE_INF means no limit.
 * Precision: the shared arrival time (TAT) is kept as microseconds of
 * Redis time with nine decimals, and each script computes with the
 * offset TAT - now in doubles, so a call of n tokens moves the TAT by
 * n x 1e6 / rate us to within 5e-10 us (the stored decimals) plus 2^-52
 * (2.3e-16) of the time then outstanding (double rounding): a relative
 * error of at most (5e-10 + 2.3e-16 x outstanding_us) / (n x 1e6 / rate),
 * either way. At this rate a one-token call (1e-3 us) is charged within
 * 1e-6 of it while under 0.1 s is outstanding; at 1e6/s within 1e-9 while
 * under a second is. Redis's clock ticks in whole microseconds, so the
 * refill is seen up to 1 us late (at this rate up to 1000 tokens late),
 * never early.
 */
#define SLUICE_DLIMITER_RATE_MAX 1e9

/*
 * The smallest rate a sluice_dlimiter takes: a token every 1e15 us (31.7
 * years), so n x interval stays a finite double for any n. Slower rates
 * are refused. At the slow end, a wait over 2^53 us (285 years) is
 * reported as 2^53 us, and the shared keys expire after at most 1e15 ms
 * (31,700 years) however deep the debt.
 */
#define SLUICE_DLIMITER_RATE_MIN 1e-9

typedef struct sluice_dlimiter_config {
    /* Required: the limiter's name; every replica using the same name
     * (under the same key prefix) shares one bucket. */
    const char *name;
    /* Tokens per second across the cluster: from SLUICE_DLIMITER_RATE_MIN
     * (1e-9) to SLUICE_DLIMITER_RATE_MAX (1e9), or SLUICE_RATE_INF (every
     * call allowed, no Redis call). 0 is refused (a bucket that never
     * refills is a local sluice_limiter's job), and so are finite rates
     * outside that range. */
    double rate;
    /* The bucket size and largest request, > 0 (ignored for INF), up to
     * UINT64_MAX. The shared bucket counts to the token while the time
     * outstanding stays under 2^52 tokens and under 2^53 us (285 years):
     * past that the stored arrival time is a double (see the precision
     * note at SLUICE_DLIMITER_RATE_MAX), and a one-token call may be
     * charged nothing or more than a token (a burst of UINT64_MAX at
     * 1e-9/s, emptied, lets single tokens through). */
    uint64_t burst;
    /* The replicas the fallback bucket assumes while this replica has
     * never read a member list (Redis down since the cluster was made):
     * it then holds burst / fallback_replicas (at least 1) refilling at
     * rate / fallback_replicas. 0 = the default, as many replicas as the
     * burst has tokens (up to UINT_MAX): a bucket of 1 token refilling at
     * rate / burst, the smallest share that still lets each replica take
     * a token, and one that keeps the cluster within its rate for up to
     * burst replicas. Set it to the replicas you run (1 for a lone
     * replica) to take more while Redis has never answered. Once a member
     * list was read, the last known count is used instead. Any value up
     * to UINT_MAX. */
    unsigned fallback_replicas;
} sluice_dlimiter_config;

SLUICE_API void sluice_dlimiter_config_init(sluice_dlimiter_config *cfg);

/*
 * sluice_dlimiter_create - a GCRA limiter whose state (one key: the
 * theoretical arrival time, on Redis's clock) is shared by all replicas.
 * While Redis is down, or a call to it fails (a timeout, even while
 * heartbeats succeed; a timeout or a lost connection puts the whole
 * cluster in fallback), it falls back to a local bucket with
 * rate / last known replicas and burst / last known replicas (at least 1).
 * An error reply to this limiter's own script (a foreign value under its
 * key) puts only this limiter there, for one heartbeat (at most 1 s), after which its
 * next call tries Redis again; the connection is kept, and the cluster,
 * its bindings and its other limiters and semaphores stay in cluster
 * mode (a semaphore whose own script fails falls back alone the same way,
 * until a renewal succeeds).
 * That bucket is built full on the first entry into fallback and then
 * kept: a later fallback finds it as the last one left it, refilled at
 * its rate meanwhile, so fallbacks that follow each other closely (a
 * Redis that answers heartbeats but fails every limiter call) share one
 * burst instead of each starting full. When Redis is back, the tokens
 * the fallback bucket is in debt by (reservations not yet due) move out
 * of it and are charged to the shared bucket by the first call that
 * reaches Redis, so they count against the cluster's rate there; if that
 * call fails they go back into the fallback bucket. What the fallback
 * buckets took and is already due is not charged, so across one outage
 * the cluster may take up to two bursts more than one bucket would: one
 * because each replica's fallback bucket may be full when the outage
 * starts, and, once the outage has lasted burst / rate, one more because
 * the shared bucket refilled meanwhile while the fallback buckets spent
 * the rate. A Redis whose limiter calls fail and succeed by turns, with
 * the successes at least burst / rate apart, repeats the second part each
 * time: up to one burst per cycle over the rate. With no replica count ever read (Redis down since the
 * cluster was made) the fallback bucket assumes cfg->fallback_replicas replicas, by default as many as
 * the burst has tokens: one token, refilling at rate / burst (it had the whole rate and burst, so N
 * replicas started during an outage took N times the rate). A Redis that restarts empty forgets the
 * shared debt with its keys; a limiter that had reached the old server sees its epoch gone
 * (<prefix>:rlepoch) and starts the shared bucket empty, refilling at the rate (a grace of burst / rate;
 * it was full again, a fresh burst per limiter), answering from it as soon as a heartbeat has
 * reconnected. A limiter that never reached the old server takes the bucket as it finds it.
 * Returns and ownership as sluice_limiter_create (SLUICE_EINVAL with the
 * reason in errbuf: a bad name, a rate that is NaN or outside
 * [SLUICE_DLIMITER_RATE_MIN, SLUICE_DLIMITER_RATE_MAX] and not INF, a
 * finite rate with burst 0); destroy before the cluster.
 */
SLUICE_API sluice_err sluice_dlimiter_create(sluice_cluster *c, const sluice_dlimiter_config *cfg,
                                             sluice_dlimiter **out, char *errbuf, size_t errlen);
SLUICE_API void sluice_dlimiter_destroy(sluice_dlimiter *dl);

/* As sluice_limiter_allow / _allow_n: one Redis round trip (none for INF). */
SLUICE_API bool sluice_dlimiter_allow(sluice_dlimiter *dl);
SLUICE_API bool sluice_dlimiter_allow_n(sluice_dlimiter *dl, uint64_t n);

/*
 * sluice_dlimiter_reserve - take n tokens now (into debt if needed) and
 * say how long to wait (out->delay_ns; act_at_ns on cfg clock of the
 * cluster). Returns as sluice_limiter_reserve. In fallback the local
 * bucket's burst (burst / last known replicas, at least 1) is the
 * largest request: a larger one is refused there (SLUICE_EOVERFLOW here,
 * false from allow_n) though the shared bucket takes it once Redis
 * answers again.
 */
SLUICE_API sluice_err sluice_dlimiter_reserve(sluice_dlimiter *dl, uint64_t n, sluice_reservation *out);

/* sluice_dlimiter_cancel - give a reservation back if its time has not
 * come, to where its tokens were charged, whatever the mode now: one the
 * fallback bucket made goes back to that bucket, but for the tokens of
 * it a recovery carried to Redis (the bucket's debt, spread over its
 * newest reservations), which go back to Redis; any other moves the
 * shared arrival time back by its tokens. Stays spent (stricter, never
 * looser): a Redis part when Redis cannot be reached; one whose carry is
 * in flight; a second cancel of a fallback reservation; a Redis
 * reservation made before this limiter saw Redis restarted empty (a
 * refund would undo the restart grace), or before a fallback reservation
 * it had no memory to remember. The limiter remembers the fallback
 * bucket's reservations that wait, until they are due; r is matched by
 * its tokens, reserved_at_ns and act_at_ns. A Redis reservation cancelled
 * twice is given back twice (the caller's error). */
SLUICE_API void sluice_dlimiter_cancel(sluice_dlimiter *dl, const sluice_reservation *r);

/* sluice_dlimiter_wait - as sluice_limiter_wait (reserve, then sleep until
 * the tokens are ready or ctx ends; a cancelled wait gives them back). */
SLUICE_API sluice_err sluice_dlimiter_wait(sluice_dlimiter *dl, uint64_t n, sluice_ctx *ctx);

/*
 * sluice_dlimiter_set_rate - change this replica's rate (tokens per second
 * across the cluster) live. As sluice_limiter_set_rate, tokens are kept
 * as a count: the tokens missing from the shared bucket, or in debt
 * after reserves, stay the same number and are repaid at the new rate
 * (after 1/s with 10 tokens in debt, 100/s makes the next reserve wait
 * ~0.1 s, not ~10 s; a slower rate makes it longer the same way); a full
 * bucket stays full. No Redis call is made here: the shared debt is
 * rescaled by this replica's next allow/reserve/cancel, in the same
 * script. A reservation taken before the change and cancelled after it
 * gives back its tokens at the new rate (its share of the debt was
 * rescaled with the rest).
 * Other replicas: the rate is per replica (each passes its own to Redis);
 * set it on every replica. While replicas disagree, each call rescales
 * the shared debt to its own rate first: the last caller's rate wins.
 * rate: from SLUICE_DLIMITER_RATE_MIN to SLUICE_DLIMITER_RATE_MAX (see
 * there for the precision: within 1e-6 a token at the largest), or
 * SLUICE_RATE_INF (every call allowed without Redis; the shared state is
 * left as it was and is rescaled when a finite rate is set again). 0,
 * negative, NaN and finite rates outside the range are refused.
 * The local fallback bucket (in fallback, or kept from the last one)
 * changes rate in place (rate / the replicas it was sized for), as
 * sluice_limiter_set_rate: its debt stays a count and is repaid at the
 * new rate, a full bucket stays full; INF leaves it as it was. Returns SLUICE_OK; SLUICE_EINVAL (NULL, a
 * refused rate, or a finite rate for a limiter created at INF with no burst: set_burst first). Thread-safe;
 * takes the limiter's mutex only, no deadlock hazard.
 */
SLUICE_API sluice_err sluice_dlimiter_set_rate(sluice_dlimiter *dl, double rate);
/* sluice_dlimiter_set_burst - change this replica's burst (> 0, else
 * SLUICE_EINVAL); the shared TAT is kept, the next call checks against
 * the new burst. The local fallback bucket (in fallback, or kept from
 * the last one) takes burst / replicas (at least 1) in place, keeping its
 * debt (sluice_limiter_set_burst).
 * Thread-safe; takes the limiter's mutex only. */
SLUICE_API sluice_err sluice_dlimiter_set_burst(sluice_dlimiter *dl, uint64_t burst);

typedef struct sluice_dlimiter_stats {
    double rate;
    uint64_t burst;
    bool fallback;
    uint64_t allowed, limited, redis_calls, fallback_calls, wait_timeouts, wait_canceled, rejected;
} sluice_dlimiter_stats;

SLUICE_API void sluice_dlimiter_stats_get(sluice_dlimiter *dl, sluice_dlimiter_stats *out);
SLUICE_API const char *sluice_dlimiter_name(const sluice_dlimiter *dl);

/* ---- downstream budget files --------------------------------------------------- */

#define SLUICE_BUDGET_MAX_SHARES 64

typedef struct sluice_budget_share {
    char service[SLUICE_CLUSTER_NAME_MAX + 1];
    unsigned share;
    unsigned line, col; /* where it was written (1-based) */
} sluice_budget_share;

/* One downstream-budget.yaml: the text's format,
 *
 *     downstream: payments-api
 *     total_limit: 200
 *     shares:
 *       orders-service: 80
 *       refunds-service: 60
 *       reports-service: 40
 *     free_pool: 20
 *
 * (free_pool may also be written inside shares:). */
typedef struct sluice_budget {
    char downstream[SLUICE_CLUSTER_NAME_MAX + 1];
    unsigned total_limit;
    unsigned free_pool;
    size_t share_count;
    sluice_budget_share shares[SLUICE_BUDGET_MAX_SHARES];
} sluice_budget;

/*
 * sluice_budget_load - read and check a budget file: downstream and
 * total_limit required, shares a mapping of service -> integer >= 1,
 * free_pool >= 0, no duplicate service, shares + free_pool <= total_limit,
 * names [A-Za-z0-9_.:-].
 * Returns: SLUICE_OK; SLUICE_EIO (unreadable; errbuf "path: reason");
 * SLUICE_EPARSE / SLUICE_EINVAL with errbuf "path:line:col: what is wrong".
 * Ownership: out is the caller's (plain data, nothing to free).
 */
SLUICE_API sluice_err sluice_budget_load(const char *path, sluice_budget *out, char *errbuf, size_t errlen);

/* sluice_budget_parse - as sluice_budget_load for text already in memory;
 * `name` is used in messages in place of the path. */
SLUICE_API sluice_err sluice_budget_parse(const char *text, size_t len, const char *name, sluice_budget *out,
                                          char *errbuf, size_t errlen);

/* sluice_budget_share_of - a service's share (0 when it has none). */
SLUICE_API unsigned sluice_budget_share_of(const sluice_budget *b, const char *service);

/* ---- the `cluster:` section of a YAML file ------------------------------------ */

/* What a `cluster:` section says (see sluice_cluster_settings_load). */
typedef struct sluice_cluster_settings {
    bool present; /* the file has a cluster: section */
    char redis_host[256];
    unsigned redis_port;
    char key_prefix[SLUICE_CLUSTER_NAME_MAX + 1];
    char service[SLUICE_CLUSTER_NAME_MAX + 1];
    char replica_id[SLUICE_CLUSTER_NAME_MAX + 1];
    uint64_t heartbeat_ns, member_ttl_ns, lease_ttl_ns, redis_timeout_ns; /* 0 = default */
    bool strict;                                                          /* mode: strict (else share) */
    char budget_file[4096]; /* relative paths are taken from the file's directory */
    unsigned fallback_k, block;
} sluice_cluster_settings;

/*
 * sluice_cluster_settings_load - read the `cluster:` section of a YAML
 * file. Other top-level keys are ignored; sluice.yaml's own loader does
 * not accept a `cluster:` key yet, so today the section lives in a file
 * of its own (cluster.yaml):
 *
 *     cluster:
 *       redis: 127.0.0.1:6379      # HOST:PORT
 *       key_prefix: sluice
 *       service: orders-service    # required when the section is there
 *       replica_id: orders-7f9c    # optional
 *       heartbeat: 1s              # durations: ns, us, ms, s, m
 *       member_ttl: 3s
 *       lease_ttl: 3s
 *       redis_timeout: 250ms
 *       mode: share                # or strict
 *       budget_file: downstream-budget.yaml
 *       fallback_k: 0
 *       block: 0
 *
 * Returns: SLUICE_OK (out->present false when there is no section);
 * SLUICE_EIO ("path: reason"); SLUICE_EPARSE / SLUICE_EINVAL with
 * "path:line:col: cluster.key: what is wrong" in errbuf.
 */
SLUICE_API sluice_err sluice_cluster_settings_load(const char *path, sluice_cluster_settings *out,
                                                   char *errbuf, size_t errlen);

/* sluice_cluster_settings_apply - a sluice_cluster_config from settings
 * (init + the fields given). cfg's strings point into s, which must
 * outlive the sluice_cluster_create call. */
SLUICE_API void sluice_cluster_settings_apply(const sluice_cluster_settings *s, sluice_cluster_config *cfg);

/*
 * sluice_budget_report - the live allocation in Redis as text (what
 * `sluice budget status` prints): each service's members with the time
 * left on their TTL, and for each downstream its limit, free pool, any
 * grace period, and per service and replica the permits leased and in
 * use (as of that replica's last renewal), with the time left on each
 * lease. Times are Redis's. Read-only
 * (TIME, SMEMBERS, ZRANGE, HGETALL, SCAN - never KEYS); opens and closes
 * its own connection. host NULL = "127.0.0.1", port 0 = 6379 (above
 * 65535 is refused), prefix NULL = "sluice", timeout_ns: per call (the
 * connect, and each reply), 0 = 1 s, under a microsecond counts as one
 * (never as no timeout), UINT64_MAX in effect waits without bound.
 * Returns: SLUICE_OK with *out malloc'd text (the caller frees it);
 * SLUICE_EIO ("redis HOST:PORT: reason" in errbuf: down, refused, or
 * slower than the timeout); SLUICE_EINVAL (out NULL; a bad prefix or
 * port, named in errbuf); SLUICE_ENOMEM.
 */
SLUICE_API sluice_err sluice_budget_report(const char *host, unsigned port, const char *prefix,
                                           uint64_t timeout_ns, char **out, char *errbuf, size_t errlen);

#endif /* SLUICE_CLUSTER_H */

/*
 * src/cluster/redis.c - the one Redis connection of a cluster: connect
 * with a timeout, scripts loaded once and called by EVALSHA, reconnect
 * with exponential backoff and full jitter.
 *
 * Design. hiredis's blocking API with a socket timeout (SO_RCVTIMEO /
 * SO_SNDTIMEO) bounds every call: a stopped or slow Redis turns into a
 * failed call after timeout_ns, never a hang. After any failure the
 * context is freed: a reply that arrives late must not be read as the
 * answer to the next call. Reconnection never happens inside a failed
 * call; the cluster thread (or heartbeat_now) calls sluice__redis_ensure,
 * which honours the backoff, so a dead Redis costs the hot path nothing
 * but a flag test.
 *
 * Backoff: after a failure the next attempt waits uniform[0, bound]; the
 * bound starts at backoff_min and doubles per failed attempt up to
 * backoff_max ("full jitter"): replicas that lost Redis at the same
 * moment spread their reconnections instead of arriving as a herd.
 *
 * Scripts: each connection loads every script with SCRIPT LOAD and keeps
 * the SHA1 Redis returns. EVALSHA answering NOSCRIPT (a restarted Redis
 * or SCRIPT FLUSH on the same connection) reloads that script and
 * retries once.
 *
 * Which failures drop the connection. An I/O error, a timeout, or a reply
 * that says the server cannot serve anyone (-BUSY, -LOADING, -READONLY,
 * server_error's list) drops it, and the caller puts the cluster in
 * fallback. Any other error reply to a script (WRONGTYPE from a foreign
 * value under one limiter's key, a Lua error) is that call's alone: the
 * reply was read whole, so the connection is in step, and it is kept
 * (SLUICE__REDIS_FAIL_SCRIPT); the caller puts only its own object in
 * fallback. Dropping it made one limiter's bad key flap every binding
 * and semaphore of the replica into fallback, call after call. A server
 * error that Redis 5/6 wraps inside a script error ("ERR Error running
 * script ... -OOM ...") is read as the call's; the heartbeat, which
 * writes too, then fails and falls back within one heartbeat.
 *
 * Lock order: r->mu is a leaf (no other lock is taken under it).
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "base/check.h"
#include "cluster/cluster_internal.h"

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sluice__redis_init(sluice__redis *r, const char *host, unsigned port, uint64_t timeout_ns,
                        uint64_t backoff_min_ns, uint64_t backoff_max_ns, const sluice_clock *clock,
                        uint64_t seed)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    snprintf(r->host, sizeof r->host, "%s", host);
    r->port = port;
    r->timeout_ns = timeout_ns;
    r->backoff_min_ns = backoff_min_ns;
    r->backoff_max_ns = backoff_max_ns;
    r->backoff_bound_ns = backoff_min_ns;
    r->clock = clock;
    r->rng = seed;
}

static void drop_locked(sluice__redis *r, const char *why)
{
    SLUICE__ASSERT_HELD(&r->mu);
    if (r->ctx) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }
    snprintf(r->last_error, sizeof r->last_error, "%s", why);
    atomic_store(&r->up, false);
    atomic_fetch_add(&r->errors, 1);
    /* Saturating at the extremes: a bound of UINT64_MAX must not make the
     * modulus 0, nor the doubling or the deadline wrap to a short wait. */
    uint64_t bound = r->backoff_bound_ns;
    uint64_t jitter = 0;
    if (bound == UINT64_MAX) {
        jitter = rng_next(&r->rng);
    } else if (bound) {
        jitter = rng_next(&r->rng) % (bound + 1);
    }
    uint64_t now = sluice_clock_now(r->clock);
    r->next_attempt_ns = jitter > UINT64_MAX - now ? UINT64_MAX : now + jitter;
    uint64_t doubled = bound > UINT64_MAX / 2 ? UINT64_MAX : bound * 2;
    r->backoff_bound_ns = doubled > r->backoff_max_ns ? r->backoff_max_ns : doubled;
}

void sluice__redis_fini(sluice__redis *r)
{
    if (r->ctx) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }
    pthread_mutex_destroy(&r->mu);
}

static struct timeval tv_of(uint64_t ns)
{
    struct timeval tv = {(time_t)(ns / SLUICE_NS_PER_SEC), (suseconds_t)((ns % SLUICE_NS_PER_SEC) / 1000)};
    if (tv.tv_sec == 0 && tv.tv_usec == 0) {
        tv.tv_usec = 1;
    }
    return tv;
}

static bool load_scripts_locked(sluice__redis *r)
{
    SLUICE__ASSERT_HELD(&r->mu);
    for (int i = 0; i < SLUICE__SCRIPT_COUNT_; i++) {
        redisReply *rep = redisCommand(r->ctx, "SCRIPT LOAD %s", sluice__script_source[i]);
        atomic_fetch_add(&r->round_trips, 1);
        if (!rep || rep->type != REDIS_REPLY_STRING || rep->len != 40) {
            char why[160];
            snprintf(why, sizeof why, "SCRIPT LOAD: %.120s",
                     rep ? (rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply") : r->ctx->errstr);
            if (rep) {
                freeReplyObject(rep);
            }
            drop_locked(r, why);
            return false;
        }
        memcpy(r->sha[i], rep->str, 40);
        r->sha[i][40] = '\0';
        freeReplyObject(rep);
    }
    return true;
}

bool sluice__redis_ensure(sluice__redis *r, bool force)
{
    pthread_mutex_lock(&r->mu);
    if (r->ctx) {
        pthread_mutex_unlock(&r->mu);
        return true;
    }
    if (!force && sluice_clock_now(r->clock) < r->next_attempt_ns) {
        pthread_mutex_unlock(&r->mu);
        return false;
    }
    redisContext *ctx = redisConnectWithTimeout(r->host, (int)r->port, tv_of(r->timeout_ns));
    if (!ctx || ctx->err) {
        char why[160];
        snprintf(why, sizeof why, "connect %.64s:%u: %.80s", r->host, r->port,
                 ctx ? ctx->errstr : "out of memory");
        if (ctx) {
            redisFree(ctx);
        }
        drop_locked(r, why);
        pthread_mutex_unlock(&r->mu);
        return false;
    }
    redisSetTimeout(ctx, tv_of(r->timeout_ns));
    r->ctx = ctx;
    bool ok = load_scripts_locked(r);
    if (ok) {
        r->backoff_bound_ns = r->backoff_min_ns;
        atomic_store(&r->up, true);
        atomic_fetch_add(&r->reconnects, 1);
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

/* One call on the connection; NULL (and the connection dropped) on I/O
 * failure. Error replies are returned to the caller. */
static redisReply *call_locked(sluice__redis *r, int argc, const char **argv)
{
    SLUICE__ASSERT_HELD(&r->mu);
    if (!r->ctx) {
        return NULL;
    }
    uint64_t t0 = sluice_clock_now(NULL);
    redisReply *rep = redisCommandArgv(r->ctx, argc, argv, NULL);
    atomic_fetch_add(&r->round_trips, 1);
    if (!rep) {
        char why[160];
        snprintf(why, sizeof why, "%.16s: %.120s", argv[0], r->ctx->errstr[0] ? r->ctx->errstr : "no reply");
        drop_locked(r, why);
        return NULL;
    }
    atomic_store(&r->latency_ns, sluice_clock_now(NULL) - t0);
    atomic_store(&r->up, true);
    return rep;
}

static void set_fail(sluice__redis_fail *fail, sluice__redis_fail v)
{
    if (fail) {
        *fail = v;
    }
}

/* An error reply that says the server, not the call, is unusable: it
 * refuses every call until something changes on its side (a script
 * running too long, a load from disk, a replica after a failover, a
 * full memory or disk, an ACL change, a cluster redirection). Matched on
 * the error code: the reply's first word, or, where Redis 5 and 6 wrap
 * an error raised by a command inside a script ("ERR Error running script
 * (call to f_...): @user_script:1: -READONLY You can't write..."), the
 * code after the script's position ("-CODE " or ": CODE "). Redis 7 sends
 * the inner code first. Any other error reply is the call's own. */
static const char *const server_codes[] = {"BUSY",   "LOADING",  "READONLY",   "MASTERDOWN",  "MISCONF",
                                           "NOAUTH", "NOPERM",   "OOM",        "CLUSTERDOWN", "MOVED",
                                           "ASK",    "TRYAGAIN", "NOREPLICAS", "NOSCRIPT"};

static bool is_server_code(const char *word, size_t len)
{
    for (size_t i = 0; i < sizeof server_codes / sizeof server_codes[0]; i++) {
        if (strlen(server_codes[i]) == len && strncmp(word, server_codes[i], len) == 0) {
            return true;
        }
    }
    return false;
}

bool sluice__redis_server_error(const char *msg)
{
    if (!msg) {
        return false;
    }
    if (is_server_code(msg, strcspn(msg, " "))) {
        return true;
    }
    const char *script = strstr(msg, "Error running script");
    if (!script) {
        return false;
    }
    /* A wrapped error: look at each word that follows "-" or ": ". */
    for (const char *p = script; *p; p++) {
        const char *word = NULL;
        if (*p == '-' && (p == script || p[-1] == ' ')) {
            word = p + 1;
        } else if (p[0] == ':' && p[1] == ' ') {
            word = p + 2;
        }
        if (word) {
            size_t len = strcspn(word, " .");
            if (len && word[len] == ' ' && is_server_code(word, len)) {
                return true;
            }
        }
    }
    return false;
}

void sluice__redis_drop(sluice__redis *r, const char *why)
{
    pthread_mutex_lock(&r->mu);
    drop_locked(r, why);
    pthread_mutex_unlock(&r->mu);
}

redisReply *sluice__redis_eval(sluice__redis *r, sluice__script_id script, int nkeys, int argc,
                               const char **argv, sluice__redis_fail *fail)
{
    const char *args[32];
    char nk[16];
    set_fail(fail, SLUICE__REDIS_FAIL_NONE);
    if (argc + 3 > 32) {
        set_fail(fail, SLUICE__REDIS_FAIL_DOWN);
        return NULL;
    }
    snprintf(nk, sizeof nk, "%d", nkeys);
    pthread_mutex_lock(&r->mu);
    for (int attempt = 0; attempt < 2; attempt++) {
        args[0] = "EVALSHA";
        args[1] = r->sha[script];
        args[2] = nk;
        memcpy(&args[3], argv, (size_t)argc * sizeof *argv);
        redisReply *rep = call_locked(r, argc + 3, args);
        if (!rep) {
            pthread_mutex_unlock(&r->mu);
            set_fail(fail, SLUICE__REDIS_FAIL_DOWN);
            return NULL;
        }
        if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0 && attempt == 0) {
            freeReplyObject(rep);
            atomic_fetch_add(&r->reloads, 1);
            const char *load[3] = {"SCRIPT", "LOAD", sluice__script_source[script]};
            redisReply *lr = call_locked(r, 3, load);
            if (!lr) {
                pthread_mutex_unlock(&r->mu);
                set_fail(fail, SLUICE__REDIS_FAIL_DOWN);
                return NULL;
            }
            bool ok = lr->type == REDIS_REPLY_STRING && lr->len == 40;
            if (ok) {
                memcpy(r->sha[script], lr->str, 40);
                r->sha[script][40] = '\0';
            }
            freeReplyObject(lr);
            if (!ok) {
                drop_locked(r, "SCRIPT LOAD after NOSCRIPT failed");
                pthread_mutex_unlock(&r->mu);
                set_fail(fail, SLUICE__REDIS_FAIL_DOWN);
                return NULL;
            }
            continue;
        }
        if (rep->type == REDIS_REPLY_ERROR) {
            char why[160];
            snprintf(why, sizeof why, "script: %.140s", rep->str);
            bool server = sluice__redis_server_error(rep->str);
            freeReplyObject(rep);
            if (server) {
                /* -BUSY, -LOADING, -READONLY...: the server cannot serve
                 * anyone now; the cluster falls back. */
                drop_locked(r, why);
                set_fail(fail, SLUICE__REDIS_FAIL_DOWN);
            } else {
                /* The script's own error (a foreign value under its keys,
                 * a bug): that one call failed. The reply was read whole,
                 * so the connection is in step and is kept: one object's
                 * keys must not take every object of the replica down. */
                snprintf(r->last_error, sizeof r->last_error, "%s", why);
                atomic_fetch_add(&r->errors, 1);
                set_fail(fail, SLUICE__REDIS_FAIL_SCRIPT);
            }
            pthread_mutex_unlock(&r->mu);
            return NULL;
        }
        pthread_mutex_unlock(&r->mu);
        return rep;
    }
    pthread_mutex_unlock(&r->mu);
    set_fail(fail, SLUICE__REDIS_FAIL_DOWN);
    return NULL;
}

redisReply *sluice__redis_command(sluice__redis *r, int argc, const char **argv)
{
    pthread_mutex_lock(&r->mu);
    redisReply *rep = call_locked(r, argc, argv);
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        char why[160];
        snprintf(why, sizeof why, "%.16s: %.120s", argv[0], rep->str);
        freeReplyObject(rep);
        drop_locked(r, why);
        rep = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    return rep;
}

long long sluice__reply_int(const redisReply *rep, size_t i)
{
    if (!rep || rep->type != REDIS_REPLY_ARRAY || i >= rep->elements) {
        return 0;
    }
    const redisReply *e = rep->element[i];
    if (e->type == REDIS_REPLY_INTEGER) {
        return e->integer;
    }
    if (e->type == REDIS_REPLY_STRING) {
        return strtoll(e->str, NULL, 10);
    }
    return 0;
}

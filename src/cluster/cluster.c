/*
 * src/cluster/cluster.c - membership, share mode and fallback of one
 * replica, driven by one background thread.
 *
 * Membership. Each replica is a member of a sorted set per service whose
 * score is the member's expiry in Redis milliseconds. A heartbeat (one
 * script, one round trip) drops expired members, pushes this member's
 * expiry to now + member_ttl and returns the live ids, so every replica
 * learns the member list at each of its own heartbeats: a join or a
 * graceful leave is seen everywhere within one heartbeat, a kill -9
 * within member_ttl + one heartbeat. Expiry is decided by Redis's clock
 * only.
 *
 * The view. The ids are sorted (strcmp); this replica's rank is its index.
 * Share mode gives rank r of n replicas sluice_share_k(share, n, r): every
 * replica that has the same view computes the same split, and the parts
 * sum to the share.
 *
 * Fallback. Any failed Redis call (error, timeout, connection loss) puts
 * the cluster in fallback: bound pools are resized to their fallback
 * bound, semaphores switch to their local bound. One line is logged on
 * entry and one on recovery, however long it lasts. The thread retries
 * the connection at the backoff's pace (redis.c), not only at heartbeats.
 *
 * Threads and locks. The cluster thread ticks every heartbeat; a tick
 * heartbeats, applies share bindings and runs each semaphore's renewal
 * hook. sluice_cluster_heartbeat_now runs a tick on the caller's thread.
 * Lock order:
 *     tick_mu -> (dsem mu) -> mu -> redis.mu        and
 *     (registry lock) -> exp_mu -> (dsem mu) -> mu
 * tick_mu serialises ticks and guards the bindings' applied K and the
 * hook list, so unbind and hook removal wait for a running tick. mu
 * guards the view, status and stop flag. exp_mu guards the list of
 * semaphores the metrics collector reads. Pool resizes and on_k
 * callbacks run under tick_mu only.
 */
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/check.h"
#include "cluster/cluster_internal.h"

#define ID_LEN (SLUICE_CLUSTER_NAME_MAX + 1)
#define MAX_DSEMS 32

typedef struct binding {
    bool used;
    sluice_share_binding b;
    unsigned k; /* last applied (0 = none yet) */
} binding;

struct sluice_cluster {
    char prefix[ID_LEN], service[ID_LEN], replica[ID_LEN];
    char key_members[3 * ID_LEN + 16], key_services[ID_LEN + 16];
    uint64_t heartbeat_ns, member_ttl_ns, lease_ttl_ns;
    const sluice_clock *clock;
    sluice_logger *logger;
    sluice_metrics *metrics;
    sluice__redis redis;
    pthread_t thread;
    bool thread_started;

    pthread_mutex_t tick_mu; /* guards: bindings, hooks; serialises ticks */
    binding bindings[SLUICE_CLUSTER_MAX_BINDINGS];
    sluice__hook *hooks;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    bool stop;
    bool have_view, fallback;
    unsigned members, rank;
    char (*ids)[ID_LEN];
    size_t ids_cap;
    uint64_t view_at_ns;
    uint64_t heartbeats, view_changes, fallbacks;
    char fallback_reason[160];

    pthread_mutex_t exp_mu; /* guards dsems[] for the collector */
    sluice_dsem *dsems[MAX_DSEMS];
};

void sluice_cluster_config_init(sluice_cluster_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
}

unsigned sluice_share_k(unsigned share, unsigned replicas, unsigned rank)
{
    if (replicas == 0) {
        return share;
    }
    return share / replicas + (rank < share % replicas ? 1u : 0u);
}

/* ---- the view --------------------------------------------------------- */

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Install a new member list from a heartbeat reply. Returns true when it
 * differs from the last one. Caller holds mu. */
static bool install_view_locked(sluice_cluster *c, const redisReply *rep)
{
    SLUICE__ASSERT_HELD(&c->mu);
    size_t n = rep->elements;
    if (n > c->ids_cap) {
        size_t cap = n < 16 ? 16 : n * 2;
        void *p = realloc(c->ids, cap * sizeof *c->ids);
        if (!p) {
            return false; /* keep the old view; the next beat retries */
        }
        c->ids = p;
        c->ids_cap = cap;
    }
    char(*fresh)[ID_LEN] = calloc(n ? n : 1, sizeof *fresh);
    if (!fresh) {
        return false;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = rep->element[i];
        if (e->type == REDIS_REPLY_STRING && e->len < ID_LEN) {
            memcpy(fresh[m], e->str, e->len);
            fresh[m][e->len] = '\0';
            m++;
        }
    }
    qsort(fresh, m, sizeof *fresh, cmp_id);
    bool changed = !c->have_view || m != c->members || memcmp(fresh, c->ids, m * sizeof *fresh) != 0;
    memcpy(c->ids, fresh, m * sizeof *fresh);
    free(fresh);
    unsigned rank = 0;
    for (size_t i = 0; i < m; i++) {
        if (strcmp(c->ids[i], c->replica) == 0) {
            rank = (unsigned)i;
        }
    }
    c->members = (unsigned)m;
    c->rank = rank;
    c->have_view = true;
    c->view_at_ns = sluice_clock_now(c->clock);
    if (changed) {
        c->view_changes++;
    }
    return changed;
}

void sluice__cluster_view(sluice_cluster *c, sluice__view *out)
{
    pthread_mutex_lock(&c->mu);
    out->have_view = c->have_view;
    out->fallback = c->fallback;
    out->members = c->members;
    out->rank = c->rank;
    pthread_mutex_unlock(&c->mu);
}

static void log_line(sluice_cluster *c, sluice_log_level lvl, const char *msg, const char *reason,
                     unsigned members)
{
    if (!c->logger) {
        return;
    }
    char mem[16];
    snprintf(mem, sizeof mem, "%u", members);
    sluice_log_kv(c->logger, lvl, msg, "service", c->service, "replica", c->replica, "last_members", mem,
                  "reason", reason, NULL);
}

/* Mark the cluster in fallback; logs on entry only. */
static void enter_fallback(sluice_cluster *c)
{
    char reason[160];
    pthread_mutex_lock(&c->redis.mu);
    snprintf(reason, sizeof reason, "%s", c->redis.last_error[0] ? c->redis.last_error : "unreachable");
    pthread_mutex_unlock(&c->redis.mu);
    pthread_mutex_lock(&c->mu);
    bool entering = !c->fallback;
    if (entering) {
        c->fallback = true;
        c->fallbacks++;
        snprintf(c->fallback_reason, sizeof c->fallback_reason, "%s", reason);
    }
    unsigned members = c->members;
    pthread_mutex_unlock(&c->mu);
    if (entering) {
        log_line(c, SLUICE_LOG_WARN, "budget fallback: Redis unreachable, local bound in force", reason,
                 members);
    }
}

void sluice__cluster_redis_failed(sluice_cluster *c)
{
    enter_fallback(c);
    /* Wake the thread so it starts the reconnect backoff now. */
    pthread_mutex_lock(&c->mu);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* ---- share bindings ----------------------------------------------------- */

/* The K a binding should have now. Caller holds tick_mu. */
static unsigned binding_k(const sluice_cluster *c, const binding *bd, const sluice__view *v)
{
    unsigned k;
    if (!v->fallback && v->have_view) {
        k = sluice_share_k(bd->b.share, v->members, v->rank);
    } else {
        unsigned last = v->have_view ? sluice_share_k(bd->b.share, v->members, v->rank)
                                     : (bd->b.fallback_k ? bd->b.fallback_k : 1);
        k = bd->b.fallback_k && bd->b.fallback_k < last ? bd->b.fallback_k : last;
    }
    (void)c;
    if (bd->b.pool) {
        if (k < 1) {
            k = 1;
        }
        sluice_pool_config pc;
        sluice_pool_config_get(bd->b.pool, &pc);
        if (k < pc.min_workers) {
            k = pc.min_workers;
        }
    }
    return k;
}

static void apply_binding(sluice_cluster *c, binding *bd, const sluice__view *v)
{
    unsigned k = binding_k(c, bd, v);
    if (k == bd->k) {
        return;
    }
    if (bd->b.pool) {
        sluice_err err = sluice_pool_resize(bd->b.pool, k);
        if (err && c->logger) {
            char ks[16];
            snprintf(ks, sizeof ks, "%u", k);
            sluice_log_kv(c->logger, SLUICE_LOG_WARN, "budget: pool resize failed", "pool",
                          sluice_pool_name(bd->b.pool), "k", ks, "err", sluice_err_name(err), NULL);
            return;
        }
    }
    bd->k = k;
    if (bd->b.on_k) {
        bd->b.on_k(bd->b.user, k, v->fallback || !v->have_view ? SLUICE_SHARE_FALLBACK : SLUICE_SHARE_VIEW);
    }
}

/* ---- the tick ------------------------------------------------------------ */

static bool heartbeat(sluice_cluster *c)
{
    if (!sluice__redis_ensure(&c->redis, false)) {
        return false;
    }
    char ttl[32];
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)sluice__ttl_ms(c->member_ttl_ns));
    const char *argv[] = {c->key_members, c->key_services, c->replica, ttl, c->service};
    sluice__redis_fail fail;
    redisReply *rep = sluice__redis_eval(&c->redis, SLUICE__SCRIPT_HEARTBEAT, 2, 5, argv, &fail);
    if (!rep) {
        if (fail == SLUICE__REDIS_FAIL_SCRIPT) {
            /* The heartbeat's keys are the cluster's own: an error there
             * is the server's state (a wrapped -READONLY from a demoted
             * primary that keeps its clients, a foreign value), not one
             * object's. Drop the connection so the next tick reconnects
             * (through DNS or a VIP to the new primary) after the backoff;
             * kept, it would serve fallback for as long as it stays open. */
            char why[200];
            pthread_mutex_lock(&c->redis.mu);
            snprintf(why, sizeof why, "heartbeat %.180s", c->redis.last_error);
            pthread_mutex_unlock(&c->redis.mu);
            sluice__redis_drop(&c->redis, why);
        }
        return false;
    }
    bool ok = rep->type == REDIS_REPLY_ARRAY;
    bool recovered = false;
    unsigned members = 0;
    if (ok) {
        pthread_mutex_lock(&c->mu);
        install_view_locked(c, rep);
        c->heartbeats++;
        recovered = c->fallback;
        c->fallback = false;
        members = c->members;
        pthread_mutex_unlock(&c->mu);
    }
    freeReplyObject(rep);
    if (recovered) {
        log_line(c, SLUICE_LOG_INFO, "budget recovered: Redis reachable, cluster bound in force",
                 "reconnected", members);
    }
    return ok;
}

/* One tick. Caller holds tick_mu. */
static bool tick_locked(sluice_cluster *c)
{
    SLUICE__ASSERT_HELD(&c->tick_mu);
    bool ok = heartbeat(c);
    if (!ok) {
        enter_fallback(c);
    }
    sluice__view v;
    sluice__cluster_view(c, &v);
    for (size_t i = 0; i < SLUICE_CLUSTER_MAX_BINDINGS; i++) {
        if (c->bindings[i].used) {
            apply_binding(c, &c->bindings[i], &v);
        }
    }
    for (sluice__hook *h = c->hooks; h; h = h->next) {
        h->tick(h->obj, &v);
    }
    return ok;
}

sluice_err sluice_cluster_heartbeat_now(sluice_cluster *c)
{
    if (!c) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&c->tick_mu);
    bool ok = tick_locked(c);
    pthread_mutex_unlock(&c->tick_mu);
    return ok ? SLUICE_OK : SLUICE_EIO;
}

static uint64_t next_attempt(sluice_cluster *c)
{
    pthread_mutex_lock(&c->redis.mu);
    uint64_t t = c->redis.ctx ? UINT64_MAX : c->redis.next_attempt_ns;
    pthread_mutex_unlock(&c->redis.mu);
    return t;
}

/* Wait until `until` on the cluster clock or stop. Caller holds mu. */
static void wait_until_locked(sluice_cluster *c, uint64_t until)
{
    SLUICE__ASSERT_HELD(&c->mu);
    bool sys = sluice_clock_is_system(c->clock);
    while (!c->stop) {
        uint64_t now = sluice_clock_now(c->clock);
        if (now >= until) {
            return;
        }
        uint64_t step = until - now;
        if (!sys && step > SLUICE_CLOCK_POLL_NS) {
            step = SLUICE_CLOCK_POLL_NS;
        }
        struct timespec ts = sluice__ts_after(CLOCK_MONOTONIC, step);
        int rc = pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        (void)rc;
        if (sys && !c->stop && c->fallback) {
            /* A wake-up while in fallback (sluice__cluster_redis_failed):
             * go and retry on the backoff's schedule. */
            uint64_t na = 0;
            pthread_mutex_unlock(&c->mu);
            na = next_attempt(c);
            pthread_mutex_lock(&c->mu);
            if (na < until) {
                until = na;
            }
        }
    }
}

static void *cluster_thread(void *arg)
{
    sluice_cluster *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        uint64_t until = sluice__add_sat(sluice_clock_now(c->clock), c->heartbeat_ns);
        bool fb = c->fallback;
        pthread_mutex_unlock(&c->mu);
        if (fb) {
            uint64_t na = next_attempt(c);
            if (na < until) {
                until = na;
            }
        }
        pthread_mutex_lock(&c->mu);
        wait_until_locked(c, until);
        if (c->stop) {
            break;
        }
        pthread_mutex_unlock(&c->mu);
        pthread_mutex_lock(&c->tick_mu);
        tick_locked(c);
        pthread_mutex_unlock(&c->tick_mu);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---- metrics -------------------------------------------------------------- */

static void collect(sluice_expo *w, void *user)
{
    sluice_cluster *c = user;
    sluice_cluster_status st;
    sluice_cluster_status_get(c, &st);
    sluice_metric_label svc[] = {{"service", c->service}};
    sluice_expo_family(w, "sluice_budget_members", SLUICE_METRIC_GAUGE,
                       "Live replicas of the service (last known member list).");
    sluice_expo_sample(w, svc, 1, st.members);
    sluice_expo_family(w, "sluice_budget_fallback", SLUICE_METRIC_GAUGE,
                       "1 while this replica runs on its local fallback bound (Redis unreachable).");
    sluice_expo_sample(w, svc, 1, st.fallback ? 1 : 0);
    sluice_expo_family(w, "sluice_budget_fallbacks_total", SLUICE_METRIC_COUNTER,
                       "Entries into the local fallback bound.");
    sluice_expo_sample(w, svc, 1, (double)st.fallbacks);
    sluice_expo_family(w, "sluice_budget_redis_up", SLUICE_METRIC_GAUGE,
                       "1 when the last Redis call succeeded.");
    sluice_expo_sample(w, svc, 1, st.redis_up ? 1 : 0);
    sluice_expo_family(w, "sluice_budget_redis_latency_seconds", SLUICE_METRIC_GAUGE,
                       "Round trip of the last Redis call.");
    sluice_expo_sample(w, svc, 1, (double)st.redis_latency_ns / 1e9);
    sluice_expo_family(w, "sluice_budget_redis_round_trips_total", SLUICE_METRIC_COUNTER,
                       "Redis calls made by this replica.");
    sluice_expo_sample(w, svc, 1, (double)st.redis_round_trips);
    sluice_expo_family(w, "sluice_budget_redis_errors_total", SLUICE_METRIC_COUNTER,
                       "Redis calls that failed (error, timeout, connection lost).");
    sluice_expo_sample(w, svc, 1, (double)st.redis_errors);

    pthread_mutex_lock(&c->tick_mu);
    sluice_expo_family(w, "sluice_budget_pool_k", SLUICE_METRIC_GAUGE,
                       "K applied to a pool bound to the service's share.");
    for (size_t i = 0; i < SLUICE_CLUSTER_MAX_BINDINGS; i++) {
        const binding *bd = &c->bindings[i];
        if (bd->used) {
            sluice_metric_label l[] = {{"service", c->service},
                                       {"pool", bd->b.pool ? sluice_pool_name(bd->b.pool) : "-"}};
            sluice_expo_sample(w, l, 2, bd->k);
        }
    }
    sluice_expo_family(w, "sluice_budget_pool_share", SLUICE_METRIC_GAUGE,
                       "The share a bound pool's K is split from (the K of all replicas sum to it).");
    for (size_t i = 0; i < SLUICE_CLUSTER_MAX_BINDINGS; i++) {
        const binding *bd = &c->bindings[i];
        if (bd->used) {
            sluice_metric_label l[] = {{"service", c->service},
                                       {"pool", bd->b.pool ? sluice_pool_name(bd->b.pool) : "-"}};
            sluice_expo_sample(w, l, 2, bd->b.share);
        }
    }
    pthread_mutex_unlock(&c->tick_mu);

    static const struct {
        const char *name, *help;
    } fam[] = {
        {"sluice_budget_permits_limit", "The service's share of the downstream."},
        {"sluice_budget_permits_cap", "This replica's fair share of the service's permits."},
        {"sluice_budget_permits_leased", "Permits this replica holds leased from Redis."},
        {"sluice_budget_permits_held", "Permits this replica has handed out (calls in flight)."},
    };
    pthread_mutex_lock(&c->exp_mu);
    sluice__dsem_export ex[MAX_DSEMS];
    size_t n = 0;
    for (size_t i = 0; i < MAX_DSEMS; i++) {
        if (c->dsems[i]) {
            sluice__dsem_export_get(c->dsems[i], &ex[n++]);
        }
    }
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        sluice_expo_family(w, fam[f].name, SLUICE_METRIC_GAUGE, fam[f].help);
        for (size_t i = 0; i < n; i++) {
            sluice_metric_label l[] = {{"downstream", ex[i].downstream}, {"service", c->service}};
            unsigned v = f == 0 ? ex[i].share : f == 1 ? ex[i].cap : f == 2 ? ex[i].leased : ex[i].in_use;
            sluice_expo_sample(w, l, 2, v);
        }
    }
    pthread_mutex_unlock(&c->exp_mu);
}

void sluice__cluster_add_dsem(sluice_cluster *c, sluice_dsem *ds)
{
    pthread_mutex_lock(&c->exp_mu);
    for (size_t i = 0; i < MAX_DSEMS; i++) {
        if (!c->dsems[i]) {
            c->dsems[i] = ds;
            break;
        }
    }
    pthread_mutex_unlock(&c->exp_mu);
}

void sluice__cluster_remove_dsem(sluice_cluster *c, sluice_dsem *ds)
{
    pthread_mutex_lock(&c->exp_mu);
    for (size_t i = 0; i < MAX_DSEMS; i++) {
        if (c->dsems[i] == ds) {
            c->dsems[i] = NULL;
        }
    }
    pthread_mutex_unlock(&c->exp_mu);
}

/* ---- create / destroy ------------------------------------------------------ */

sluice_err sluice_cluster_create(const sluice_cluster_config *cfg, sluice_cluster **out, char *errbuf,
                                 size_t errlen)
{
    if (!cfg || !out) {
        sluice__errf(errbuf, errlen, "cfg and out are required");
        return SLUICE_EINVAL;
    }
    *out = NULL;
    const char *prefix = cfg->key_prefix ? cfg->key_prefix : "sluice";
    if (!sluice__name_valid(cfg->service, SLUICE_CLUSTER_NAME_MAX)) {
        sluice__errf(errbuf, errlen,
                     "service: must be 1-64 characters of " SLUICE__NAME_CHARSET ", got \"%s\"",
                     cfg->service ? cfg->service : "(null)");
        return SLUICE_EINVAL;
    }
    if (!sluice__name_valid(prefix, SLUICE_CLUSTER_NAME_MAX)) {
        sluice__errf(errbuf, errlen,
                     "key_prefix: must be 1-64 characters of " SLUICE__NAME_CHARSET ", got \"%s\"", prefix);
        return SLUICE_EINVAL;
    }
    if (cfg->replica_id && !sluice__name_valid(cfg->replica_id, SLUICE_CLUSTER_NAME_MAX)) {
        sluice__errf(errbuf, errlen,
                     "replica_id: must be 1-64 characters of " SLUICE__NAME_CHARSET ", got \"%s\"",
                     cfg->replica_id);
        return SLUICE_EINVAL;
    }
    const char *host = cfg->redis_host ? cfg->redis_host : "127.0.0.1";
    if (!*host || strlen(host) >= 256) {
        sluice__errf(errbuf, errlen, "redis_host: must be 1-255 characters, got \"%s\"", host);
        return SLUICE_EINVAL;
    }
    if (cfg->redis_port > 65535) {
        sluice__errf(errbuf, errlen, "redis_port: must be 1-65535");
        return SLUICE_EINVAL;
    }
    uint64_t hb = cfg->heartbeat_ns ? cfg->heartbeat_ns : SLUICE_NS_PER_SEC;
    if (hb < SLUICE_NS_PER_MS) {
        sluice__errf(errbuf, errlen, "heartbeat: must be at least 1ms");
        return SLUICE_EINVAL;
    }
    /* 3 heartbeats, saturating: a heartbeat above UINT64_MAX / 3 must not
     * wrap its default TTLs below itself (and be refused for a field the
     * caller never set). Only a TTL given is held to "> heartbeat": a
     * default one is 3 heartbeats, or UINT64_MAX (no expiry in practice)
     * when that does not fit. */
    uint64_t hb3 = hb > UINT64_MAX / 3 ? UINT64_MAX : 3 * hb;
    uint64_t mttl = cfg->member_ttl_ns ? cfg->member_ttl_ns : hb3;
    uint64_t lttl = cfg->lease_ttl_ns ? cfg->lease_ttl_ns : hb3;
    if (cfg->member_ttl_ns && mttl <= hb) {
        sluice__errf(errbuf, errlen,
                     "member_ttl: must be longer than heartbeat (a member would expire between beats)");
        return SLUICE_EINVAL;
    }
    if (cfg->lease_ttl_ns && lttl <= hb) {
        sluice__errf(errbuf, errlen,
                     "lease_ttl: must be longer than heartbeat (a lease would expire between renewals)");
        return SLUICE_EINVAL;
    }
    uint64_t rmin = cfg->reconnect_min_ns ? cfg->reconnect_min_ns : 50 * SLUICE_NS_PER_MS;
    uint64_t rmax = cfg->reconnect_max_ns ? cfg->reconnect_max_ns : 2 * SLUICE_NS_PER_SEC;
    if (rmin > rmax) {
        sluice__errf(errbuf, errlen,
                     "reconnect_min: %llu ns is above reconnect_max (%llu ns); the backoff bound starts at "
                     "reconnect_min and never exceeds reconnect_max",
                     (unsigned long long)rmin, (unsigned long long)rmax);
        return SLUICE_EINVAL;
    }
    sluice_cluster *c = calloc(1, sizeof *c);
    if (!c) {
        return SLUICE_ENOMEM;
    }
    snprintf(c->prefix, sizeof c->prefix, "%s", prefix);
    snprintf(c->service, sizeof c->service, "%s", cfg->service);
    if (cfg->replica_id) {
        snprintf(c->replica, sizeof c->replica, "%s", cfg->replica_id);
    } else {
        char hostn[40] = "host";
        gethostname(hostn, sizeof hostn - 1);
        for (char *p = hostn; *p; p++) {
            if (!sluice__name_char_ok(*p)) {
                *p = '_';
            }
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(c->replica, sizeof c->replica, "%.32s-%ld-%04lx", hostn, (long)getpid(),
                 (unsigned long)((uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)c) & 0xffff);
    }
    snprintf(c->key_members, sizeof c->key_members, "%s:svc:%s:members", c->prefix, c->service);
    snprintf(c->key_services, sizeof c->key_services, "%s:services", c->prefix);
    c->heartbeat_ns = hb;
    c->member_ttl_ns = mttl;
    c->lease_ttl_ns = lttl;
    c->clock = cfg->clock;
    c->logger = cfg->logger;
    c->metrics = cfg->metrics;
    uint64_t seed = cfg->seed;
    if (!seed) {
        seed = sluice_clock_now(NULL);
        for (const char *p = c->replica; *p; p++) {
            seed = seed * 131 + (unsigned char)*p;
        }
    }
    sluice__redis_init(&c->redis, host, cfg->redis_port ? cfg->redis_port : 6379,
                       cfg->redis_timeout_ns ? cfg->redis_timeout_ns : 250 * SLUICE_NS_PER_MS, rmin, rmax,
                       cfg->clock, seed);
    pthread_mutex_init(&c->tick_mu, NULL);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->exp_mu, NULL);
    sluice__cond_init(&c->cv);

    /* The first heartbeat, with the connection forced (no backoff yet). */
    pthread_mutex_lock(&c->tick_mu);
    if (sluice__redis_ensure(&c->redis, true)) {
        tick_locked(c);
    } else {
        enter_fallback(c);
    }
    pthread_mutex_unlock(&c->tick_mu);

    if (c->metrics && sluice_metrics_add_collector(c->metrics, collect, c) != SLUICE_OK) {
        c->metrics = NULL;
    }
    if (pthread_create(&c->thread, NULL, cluster_thread, c) != 0) {
        sluice__errf(errbuf, errlen, "cannot start the cluster thread");
        sluice_cluster_destroy(c);
        return SLUICE_ESYS;
    }
    c->thread_started = true;
    *out = c;
    return SLUICE_OK;
}

void sluice_cluster_destroy(sluice_cluster *c)
{
    if (!c) {
        return;
    }
    if (c->metrics) {
        sluice_metrics_remove_collector(c->metrics, collect, c);
    }
    if (c->thread_started) {
        pthread_mutex_lock(&c->mu);
        c->stop = true;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
    }
    /* Leave at once (no TTL wait) when Redis is there; never reconnect for it. */
    pthread_mutex_lock(&c->redis.mu);
    bool connected = c->redis.ctx != NULL;
    pthread_mutex_unlock(&c->redis.mu);
    if (connected) {
        const char *argv[] = {c->key_members, c->replica};
        redisReply *rep = sluice__redis_eval(&c->redis, SLUICE__SCRIPT_LEAVE, 1, 2, argv, NULL);
        if (rep) {
            freeReplyObject(rep);
        }
    }
    sluice__redis_fini(&c->redis);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->tick_mu);
    pthread_mutex_destroy(&c->exp_mu);
    free(c->ids);
    free(c);
}

/* ---- status and bindings --------------------------------------------------- */

void sluice_cluster_status_get(sluice_cluster *c, sluice_cluster_status *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&c->mu);
    out->fallback = c->fallback;
    out->have_view = c->have_view;
    out->members = c->members;
    out->rank = c->rank;
    out->view_age_ns = c->have_view ? sluice_clock_now(c->clock) - c->view_at_ns : 0;
    out->heartbeats = c->heartbeats;
    out->view_changes = c->view_changes;
    out->fallbacks = c->fallbacks;
    pthread_mutex_unlock(&c->mu);
    out->redis_up = atomic_load(&c->redis.up);
    out->redis_latency_ns = atomic_load(&c->redis.latency_ns);
    out->reconnects = atomic_load(&c->redis.reconnects);
    out->redis_round_trips = atomic_load(&c->redis.round_trips);
    out->redis_errors = atomic_load(&c->redis.errors);
    out->script_reloads = atomic_load(&c->redis.reloads);
    snprintf(out->replica_id, sizeof out->replica_id, "%s", c->replica);
}

size_t sluice_cluster_members(sluice_cluster *c, char (*ids)[SLUICE_CLUSTER_NAME_MAX + 1], size_t cap)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->members;
    for (size_t i = 0; i < n && i < cap; i++) {
        memcpy(ids[i], c->ids[i], ID_LEN);
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

sluice_err sluice_cluster_bind_share(sluice_cluster *c, const sluice_share_binding *b, unsigned *id)
{
    if (!c || !b || b->share == 0 || (!b->pool && !b->on_k)) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&c->tick_mu);
    for (unsigned i = 0; i < SLUICE_CLUSTER_MAX_BINDINGS; i++) {
        if (!c->bindings[i].used) {
            c->bindings[i] = (binding){.used = true, .b = *b, .k = 0};
            sluice__view v;
            sluice__cluster_view(c, &v);
            apply_binding(c, &c->bindings[i], &v);
            pthread_mutex_unlock(&c->tick_mu);
            if (id) {
                *id = i;
            }
            return SLUICE_OK;
        }
    }
    pthread_mutex_unlock(&c->tick_mu);
    return SLUICE_EBUSY;
}

sluice_err sluice_cluster_unbind(sluice_cluster *c, unsigned id)
{
    if (!c || id >= SLUICE_CLUSTER_MAX_BINDINGS) {
        return SLUICE_ENOENT;
    }
    pthread_mutex_lock(&c->tick_mu);
    bool was = c->bindings[id].used;
    c->bindings[id].used = false;
    pthread_mutex_unlock(&c->tick_mu);
    return was ? SLUICE_OK : SLUICE_ENOENT;
}

unsigned sluice_cluster_share_k_get(sluice_cluster *c, unsigned id)
{
    if (!c || id >= SLUICE_CLUSTER_MAX_BINDINGS) {
        return 0;
    }
    pthread_mutex_lock(&c->tick_mu);
    unsigned k = c->bindings[id].used ? c->bindings[id].k : 0;
    pthread_mutex_unlock(&c->tick_mu);
    return k;
}

/* ---- for the semaphores and limiters --------------------------------------- */

void sluice__cluster_add_hook(sluice_cluster *c, sluice__hook *h)
{
    pthread_mutex_lock(&c->tick_mu);
    h->next = c->hooks;
    c->hooks = h;
    pthread_mutex_unlock(&c->tick_mu);
}

void sluice__cluster_remove_hook(sluice_cluster *c, sluice__hook *h)
{
    pthread_mutex_lock(&c->tick_mu);
    for (sluice__hook **pp = &c->hooks; *pp; pp = &(*pp)->next) {
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    }
    pthread_mutex_unlock(&c->tick_mu);
}

sluice__redis *sluice__cluster_redis(sluice_cluster *c)
{
    return &c->redis;
}
const char *sluice__cluster_prefix(const sluice_cluster *c)
{
    return c->prefix;
}
const char *sluice__cluster_service(const sluice_cluster *c)
{
    return c->service;
}
const char *sluice__cluster_replica(const sluice_cluster *c)
{
    return c->replica;
}
uint64_t sluice__cluster_lease_ttl_ns(const sluice_cluster *c)
{
    return c->lease_ttl_ns;
}
uint64_t sluice__cluster_heartbeat_ns(const sluice_cluster *c)
{
    return c->heartbeat_ns;
}
const sluice_clock *sluice__cluster_clock(const sluice_cluster *c)
{
    return c->clock;
}

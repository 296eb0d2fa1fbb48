/*
 * src/cluster/dsem.c - strict mode: a distributed, leased semaphore with
 * block leasing.
 *
 * Model. Redis records, per downstream, how many permits each replica has
 * leased and until when (lease script, scripts.c). The sum never passes
 * the downstream's total limit, a service's sum never passes its share
 * plus what the free pool can lend, and a replica's lease never passes
 * its fair share (by rank) of that. Locally a replica hands out the
 * permits it leased: acquire and release are a mutex and a counter, no
 * Redis call, as long as `in_use < leased`.
 *
 * Invariant L (local): a permit is handed out only while in_use < leased
 * (and in_use < cap, the fair share), where `leased` never exceeds what
 * Redis last granted. Before a call
 * that returns permits, `leased` is lowered first (to the target), so no
 * acquire can take a permit that is on its way back.
 *
 * Block leasing (Doorman's idea): when permits run out, one acquirer
 * (lease_inflight) asks for in_use + waiters + block; each heartbeat the
 * cluster thread renews the lease with the same target, so a replica
 * keeps one block of headroom and returns the rest. At a steady load the
 * only Redis calls are the renewals: one per heartbeat per semaphore.
 *
 * Expiry and crashes. A lease lives lease_ttl after its last renewal on
 * Redis's clock; a replica killed -9 stops renewing and its permits come
 * back at the first lease call after the TTL. A renewal always records
 * the permits in use (a re-claim after an expiry or a Redis restart), so
 * Redis never believes fewer calls run than do; grants resume only once
 * the total is back under the limit. After Redis lost its data the script
 * grants nothing new for one lease TTL while the holders re-claim.
 *
 * Fallback. When Redis fails (or this semaphore's own lease script
 * fails while the connection stays up: a foreign value under its keys,
 * which puts only this semaphore in fallback, and its renewal retries at
 * each heartbeat), the bound becomes min(fair share of the
 * service's own share at the last view, permits leased at that moment),
 * or min(fallback_k, fair share) when fallback_k is set. Each replica
 * stays within what Redis had granted it, so the cluster stays within
 * the limit through a full outage. A one-replica partition is the one
 * case where this is not enough: Redis expires the partitioned
 * replica's lease and re-grants its permits while it may still use them
 * (docs/cluster.md).
 *
 * Recovery. An outage longer than the member and lease TTLs expires every
 * replica's membership and lease together. The first replica back then
 * sees itself alone (fair share = the whole share) while the others still
 * run their fallback permits, which Redis no longer counts: granting it
 * more would put up to share + the others' bounds in flight (the cluster
 * demo saw 45 calls against D = 30). So after leaving fallback a
 * replica keeps its fallback bound (recover_until, recover_bound) for a
 * lease TTL + reconnect_max + a heartbeat: every replica that is
 * reachable reconnects within reconnect_max of Redis's return (its
 * backoff bound grew to that during the outage), re-registers and
 * re-claims what it has in use at its next heartbeat, and only then do
 * grants above the bound resume. (One lease TTL alone was not enough:
 * the demo still saw 45 once a replica's reconnect was drawn late.)
 * A shorter fallback, (lease TTL - heartbeat) / 2 or less, expired no
 * lease of a replica that lost Redis at the same time, and has no window.

 *
 * Lock order: ds->mu -> cluster mu -> redis mu. No Redis call is made
 * with ds->mu held (lease_inflight keeps one per semaphore).
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/check.h"
#include "cluster/cluster_internal.h"

#define KEY_LEN 256

struct sluice_dsem {
    sluice_cluster *c;
    sluice__hook hook;
    char downstream[SLUICE_CLUSTER_NAME_MAX + 1];
    char keys[6][KEY_LEN];
    char member[2 * SLUICE_CLUSTER_NAME_MAX + 2];
    unsigned share, total_limit, free_pool, block_cfg, fallback_k;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;  /* permits freed, grants, fallback changes, close */
    unsigned leased, in_use, cap, waiters;
    bool fallback, closed, lease_inflight;
    unsigned fallback_bound;
    uint64_t fallback_since; /* local clock: when the fallback began */
    uint64_t recover_until;  /* local clock: until then at most recover_bound in use (see Recovery) */
    unsigned recover_bound;
    char epoch[32];
    sluice__view view; /* last view seen */
    uint64_t last_lease_ns;
    uint64_t acquired, lease_calls, renew_calls, granted, returned, fallback_acquires, timeouts;
};

void sluice_dsem_config_init(sluice_dsem_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
}

static unsigned own_fair_share(const sluice_dsem *ds)
{
    return sluice_share_k(ds->share, ds->view.have_view ? ds->view.members : 1, ds->view.rank);
}

static unsigned block_of(const sluice_dsem *ds)
{
    if (ds->block_cfg) {
        return ds->block_cfg;
    }
    unsigned cap = ds->cap ? ds->cap : own_fair_share(ds);
    unsigned b = (cap + 3) / 4;
    return b ? b : 1;
}

/* Caller holds mu. */
static void enter_fallback_locked(sluice_dsem *ds)
{
    SLUICE__ASSERT_HELD(&ds->mu);
    if (ds->fallback) {
        return;
    }
    unsigned fair = ds->view.have_view ? own_fair_share(ds) : (ds->fallback_k ? ds->fallback_k : 1);
    unsigned bound;
    if (ds->fallback_k) {
        bound = ds->fallback_k < fair ? ds->fallback_k : fair;
    } else {
        bound = ds->view.have_view ? (ds->leased < fair ? ds->leased : fair) : fair;
    }
    ds->fallback = true;
    ds->fallback_bound = bound;
    ds->fallback_since = sluice_clock_now(sluice__cluster_clock(ds->c));
    pthread_cond_broadcast(&ds->cv);
}

/* The target lease for a call, lowering `leased` first when it shrinks
 * (invariant L). Caller holds mu. */
static bool recovering_locked(const sluice_dsem *ds)
{
    return ds->recover_until && sluice_clock_now(sluice__cluster_clock(ds->c)) < ds->recover_until;
}

static unsigned prepare_target_locked(sluice_dsem *ds, unsigned extra)
{
    SLUICE__ASSERT_HELD(&ds->mu);
    /* In 64 bits: a block near UINT_MAX (the documented largest) wrapped
     * the sum to a target of 0, a lease call that asked for nothing. */
    uint64_t want = (uint64_t)ds->in_use + ds->waiters + extra + block_of(ds);
    if (recovering_locked(ds)) {
        unsigned most = ds->recover_bound > ds->in_use ? ds->recover_bound : ds->in_use;
        want = want < most ? want : most; /* ask for no more than may be used */
    }
    unsigned limit = ds->share + ds->free_pool; /* <= total_limit: create checked it */
    unsigned target = (unsigned)want;
    if (want > limit) {
        target = limit > ds->in_use ? limit : ds->in_use;
    }
    if (target < ds->leased) {
        ds->returned += ds->leased - target;
        ds->leased = target;
    }
    return target;
}

/* One lease call with mu released around it. Caller holds mu and has set
 * lease_inflight; it is still held (and the flag still set) on return.
 * Returns false when Redis failed. */
static bool lease_call_locked(sluice_dsem *ds, unsigned target, bool from_tick)
{
    SLUICE__ASSERT_HELD(&ds->mu);
    char in_use[16], tgt[16], n[16], rank[16], ttl[24], share[16], total[16], free_pool[16], epoch[32];
    snprintf(in_use, sizeof in_use, "%u", ds->in_use);
    snprintf(tgt, sizeof tgt, "%u", target);
    snprintf(n, sizeof n, "%u", ds->view.members ? ds->view.members : 1);
    snprintf(rank, sizeof rank, "%u", ds->view.rank);
    snprintf(ttl, sizeof ttl, "%llu",
             (unsigned long long)sluice__ttl_ms(sluice__cluster_lease_ttl_ns(ds->c)));
    snprintf(share, sizeof share, "%u", ds->share);
    snprintf(total, sizeof total, "%u", ds->total_limit);
    snprintf(free_pool, sizeof free_pool, "%u", ds->free_pool);
    snprintf(epoch, sizeof epoch, "%s", ds->epoch);
    unsigned before = ds->leased;
    if (from_tick) {
        ds->renew_calls++;
    } else {
        ds->lease_calls++;
    }
    ds->last_lease_ns = sluice_clock_now(sluice__cluster_clock(ds->c));
    pthread_mutex_unlock(&ds->mu);

    const char *argv[] = {ds->keys[0], ds->keys[1], ds->keys[2], ds->keys[3],
                          ds->keys[4], ds->keys[5], ds->member,  ds->c ? sluice__cluster_service(ds->c) : "",
                          in_use,      tgt,         n,           rank,
                          ttl,         epoch,       share,       total,
                          free_pool};
    sluice__redis *r = sluice__cluster_redis(ds->c);
    sluice__redis_fail fail = SLUICE__REDIS_FAIL_DOWN;
    redisReply *rep = sluice__redis_ensure(r, false)
                          ? sluice__redis_eval(r, SLUICE__SCRIPT_LEASE, 6, 17, argv, &fail)
                          : NULL;
    bool ok = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 7;
    long long newv = 0, cap = 0;
    char new_epoch[32] = "";
    if (ok) {
        newv = sluice__reply_int(rep, 0);
        cap = sluice__reply_int(rep, 1);
        const redisReply *e = rep->element[2];
        if (e->type == REDIS_REPLY_STRING && e->len < sizeof new_epoch) {
            memcpy(new_epoch, e->str, e->len);
            new_epoch[e->len] = '\0';
        }
    }
    if (rep) {
        freeReplyObject(rep);
    }
    if (!ok && fail != SLUICE__REDIS_FAIL_SCRIPT && fail != SLUICE__REDIS_FAIL_NONE) {
        /* The connection went: the whole cluster falls back. A script
         * error (a foreign value under this semaphore's keys) or a reply
         * of the wrong shape is this semaphore's alone: it falls back
         * below and its renewals retry at each heartbeat. */
        sluice__cluster_redis_failed(ds->c);
    }

    pthread_mutex_lock(&ds->mu);
    if (!ok) {
        enter_fallback_locked(ds);
        return false;
    }
    unsigned nv = newv < 0 ? 0 : (unsigned)newv;
    /* Grants are what Redis added over what we held when we asked (after
     * lowering); a re-claim after an expiry shows as a grant too. */
    if (nv > before) {
        ds->granted += nv - before;
    } else if (nv < ds->leased) {
        ds->returned += ds->leased - nv;
    }
    ds->leased = nv;
    ds->cap = cap < 0 ? 0 : (unsigned)cap;
    if (new_epoch[0]) {
        snprintf(ds->epoch, sizeof ds->epoch, "%s", new_epoch);
    }
    if (ds->fallback) {
        uint64_t now = sluice_clock_now(sluice__cluster_clock(ds->c));
        uint64_t lttl = sluice__cluster_lease_ttl_ns(ds->c), hb = sluice__cluster_heartbeat_ns(ds->c);
        if (now - ds->fallback_since > (lttl > hb ? lttl - hb : 0) / 2) {
            /* Long enough for the others to come back too: their next
             * reconnect is at most reconnect_max away (the backoff bound
             * grew to it during the outage), then one heartbeat. */
            /* Saturating: reconnect_max may be UINT64_MAX (no bound on
             * the others' return), and then so is the window. */
            ds->recover_until = sluice__add_sat(
                sluice__add_sat(sluice__add_sat(now, lttl), sluice__cluster_redis(ds->c)->backoff_max_ns),
                hb);
            ds->recover_bound = ds->fallback_bound;
        }
        ds->fallback = false;
        ds->fallback_bound = 0;
    }
    pthread_cond_broadcast(&ds->cv);
    return true;
}

/* The cluster thread's renewal, once per heartbeat. */
static void dsem_tick(void *obj, const sluice__view *v)
{
    sluice_dsem *ds = obj;
    pthread_mutex_lock(&ds->mu);
    if (v->have_view) {
        ds->view = *v;
    } else {
        ds->view.fallback = v->fallback;
    }
    if (v->fallback || !v->have_view) {
        enter_fallback_locked(ds);
        pthread_mutex_unlock(&ds->mu);
        return;
    }
    if (ds->lease_inflight) {
        /* An acquirer is renewing right now; that call refreshes the lease. */
        pthread_mutex_unlock(&ds->mu);
        return;
    }
    ds->lease_inflight = true;
    unsigned target = prepare_target_locked(ds, 0);
    lease_call_locked(ds, target, true);
    ds->lease_inflight = false;
    pthread_mutex_unlock(&ds->mu);
}

sluice_err sluice_dsem_create(sluice_cluster *c, const sluice_dsem_config *cfg, sluice_dsem **out,
                              char *errbuf, size_t errlen)
{
    if (!c || !cfg || !out) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "cluster, cfg and out are required");
        }
        return SLUICE_EINVAL;
    }
    *out = NULL;
    if (!sluice__name_valid(cfg->downstream, SLUICE_CLUSTER_NAME_MAX)) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "downstream: must be 1-64 characters of [A-Za-z0-9_.:-], got \"%s\"",
                     cfg->downstream ? cfg->downstream : "(null)");
        }
        return SLUICE_EINVAL;
    }
    if (cfg->share == 0) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "share: must be > 0");
        }
        return SLUICE_EINVAL;
    }
    unsigned total = cfg->total_limit ? cfg->total_limit : cfg->share;
    if ((uint64_t)cfg->share + cfg->free_pool > total) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "share + free_pool (%u + %u) must fit in total_limit (%u)", cfg->share,
                     cfg->free_pool, total);
        }
        return SLUICE_EINVAL;
    }
    sluice_dsem *ds = calloc(1, sizeof *ds);
    if (!ds) {
        return SLUICE_ENOMEM;
    }
    ds->c = c;
    snprintf(ds->downstream, sizeof ds->downstream, "%s", cfg->downstream);
    static const char *const suffix[6] = {"held", "exp", "svc", "meta", "share", "use"};
    for (int i = 0; i < 6; i++) {
        snprintf(ds->keys[i], KEY_LEN, "%s:ds:%s:%s", sluice__cluster_prefix(c), ds->downstream, suffix[i]);
    }
    snprintf(ds->member, sizeof ds->member, "%s|%s", sluice__cluster_service(c), sluice__cluster_replica(c));
    ds->share = cfg->share;
    ds->total_limit = total;
    ds->free_pool = cfg->free_pool;
    ds->block_cfg = cfg->block;
    ds->fallback_k = cfg->fallback_k;
    snprintf(ds->epoch, sizeof ds->epoch, "0");
    pthread_mutex_init(&ds->mu, NULL);
    sluice__cond_init(&ds->cv);
    sluice__cluster_view(c, &ds->view);
    if (ds->view.fallback || !ds->view.have_view) {
        /* Not shared yet; the lock keeps enter_fallback_locked's contract. */
        pthread_mutex_lock(&ds->mu);
        enter_fallback_locked(ds);
        pthread_mutex_unlock(&ds->mu);
    }
    ds->hook.tick = dsem_tick;
    ds->hook.obj = ds;
    sluice__cluster_add_hook(c, &ds->hook);
    sluice__cluster_add_dsem(c, ds);
    *out = ds;
    return SLUICE_OK;
}

void sluice_dsem_destroy(sluice_dsem *ds)
{
    if (!ds) {
        return;
    }
    sluice__cluster_remove_dsem(ds->c, ds);
    sluice__cluster_remove_hook(ds->c, &ds->hook);
    /* Give every leased permit back (target 0, nothing in use). */
    pthread_mutex_lock(&ds->mu);
    ds->closed = true;
    if (!ds->fallback && ds->leased > 0 && ds->in_use == 0) {
        ds->lease_inflight = true;
        ds->returned += ds->leased;
        ds->leased = 0;
        lease_call_locked(ds, 0, true);
        ds->lease_inflight = false;
    }
    pthread_mutex_unlock(&ds->mu);
    pthread_cond_destroy(&ds->cv);
    pthread_mutex_destroy(&ds->mu);
    free(ds);
}

static void wake_cb(sluice_ctx *ctx, sluice_err cause, void *arg)
{
    (void)ctx;
    (void)cause;
    sluice_dsem *ds = arg;
    pthread_mutex_lock(&ds->mu);
    pthread_cond_broadcast(&ds->cv);
    pthread_mutex_unlock(&ds->mu);
}

/* Take a permit if one can be had now, making at most one lease call.
 * Caller holds mu. Returns true when taken. */
static bool try_take_locked(sluice_dsem *ds, bool may_lease, uint64_t min_gap_ns)
{
    SLUICE__ASSERT_HELD(&ds->mu);
    for (;;) {
        if (ds->fallback) {
            if (ds->in_use < ds->fallback_bound) {
                ds->in_use++;
                ds->acquired++;
                ds->fallback_acquires++;
                return true;
            }
            return false;
        }
        /* Over the fair share (the member list grew), hand out nothing
         * until in_use falls under it: the renewals then return the
         * excess to the replicas that joined. */
        if (ds->in_use < ds->leased && (ds->cap == 0 || ds->in_use < ds->cap) &&
            (!recovering_locked(ds) || ds->in_use < ds->recover_bound)) {
            ds->in_use++;
            ds->acquired++;
            return true;
        }
        if (!may_lease || ds->lease_inflight) {
            return false;
        }
        uint64_t now = sluice_clock_now(sluice__cluster_clock(ds->c));
        if (min_gap_ns && now - ds->last_lease_ns < min_gap_ns) {
            return false;
        }
        ds->lease_inflight = true;
        unsigned target = prepare_target_locked(ds, 1);
        lease_call_locked(ds, target, false);
        ds->lease_inflight = false;
        pthread_cond_broadcast(&ds->cv);
        may_lease = false; /* one call per attempt; loop to take what came (or fall back) */
    }
}

sluice_err sluice_dsem_try_acquire(sluice_dsem *ds)
{
    if (!ds) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&ds->mu);
    sluice_err err = ds->closed ? SLUICE_ECLOSED : try_take_locked(ds, true, 0) ? SLUICE_OK : SLUICE_EAGAIN;
    pthread_mutex_unlock(&ds->mu);
    return err;
}

sluice_err sluice_dsem_acquire(sluice_dsem *ds, sluice_ctx *ctx)
{
    if (!ds) {
        return SLUICE_EINVAL;
    }
    sluice_err err = sluice_ctx_err(ctx);
    if (err) {
        return err;
    }
    pthread_mutex_lock(&ds->mu);
    if (ds->closed) {
        pthread_mutex_unlock(&ds->mu);
        return SLUICE_ECLOSED;
    }
    if (try_take_locked(ds, true, 0)) {
        pthread_mutex_unlock(&ds->mu);
        return SLUICE_OK;
    }
    pthread_mutex_unlock(&ds->mu);

    uint64_t cb_id = 0;
    bool registered = ctx && sluice_ctx_on_cancel(ctx, wake_cb, ds, &cb_id) == SLUICE_OK;
    /* While waiting, retry a lease at most four times per lease TTL / 3
     * (about a heartbeat); releases and renewals wake us sooner. */
    uint64_t gap = sluice__cluster_lease_ttl_ns(ds->c) / 12;
    if (gap < SLUICE_NS_PER_MS) {
        gap = SLUICE_NS_PER_MS;
    }
    pthread_mutex_lock(&ds->mu);
    ds->waiters++;
    for (;;) {
        if (ds->closed) {
            err = SLUICE_ECLOSED;
            break;
        }
        if (try_take_locked(ds, true, gap)) {
            err = SLUICE_OK;
            break;
        }
        pthread_mutex_unlock(&ds->mu);
        err = sluice_ctx_err(ctx);
        pthread_mutex_lock(&ds->mu);
        if (err) {
            ds->timeouts++;
            break;
        }
        uint64_t step = gap;
        uint64_t dl = ctx ? sluice_ctx_deadline(ctx) : 0;
        if (dl) {
            const sluice_clock *cc = sluice_ctx_clock(ctx);
            uint64_t now = sluice_clock_now(cc);
            uint64_t left = dl > now ? dl - now : 0;
            if (!sluice_clock_is_system(cc) && left > SLUICE_CLOCK_POLL_NS) {
                left = SLUICE_CLOCK_POLL_NS;
            }
            if (left < step) {
                step = left ? left : 1;
            }
        }
        struct timespec ts = sluice__ts_after(CLOCK_MONOTONIC, step); /* cv is sluice__cond_init's */
        pthread_cond_timedwait(&ds->cv, &ds->mu, &ts);
    }
    ds->waiters--;
    pthread_mutex_unlock(&ds->mu);
    if (registered) {
        sluice_ctx_remove_cancel(ctx, cb_id);
    }
    return err;
}

sluice_err sluice_dsem_release(sluice_dsem *ds)
{
    if (!ds) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&ds->mu);
    if (ds->in_use == 0) {
        pthread_mutex_unlock(&ds->mu);
        return SLUICE_EOVERFLOW;
    }
    ds->in_use--;
    if (ds->waiters) {
        pthread_cond_signal(&ds->cv);
    }
    pthread_mutex_unlock(&ds->mu);
    return SLUICE_OK;
}

void sluice_dsem_close(sluice_dsem *ds)
{
    if (!ds) {
        return;
    }
    pthread_mutex_lock(&ds->mu);
    ds->closed = true;
    pthread_cond_broadcast(&ds->cv);
    pthread_mutex_unlock(&ds->mu);
}

void sluice_dsem_stats_get(sluice_dsem *ds, sluice_dsem_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&ds->mu);
    out->share = ds->share;
    out->cap = ds->cap;
    out->leased = ds->leased;
    out->in_use = ds->in_use;
    out->waiters = ds->waiters;
    out->fallback = ds->fallback;
    out->fallback_bound = ds->fallback_bound;
    out->acquired = ds->acquired;
    out->lease_calls = ds->lease_calls;
    out->renew_calls = ds->renew_calls;
    out->granted = ds->granted;
    out->returned = ds->returned;
    out->fallback_acquires = ds->fallback_acquires;
    out->timeouts = ds->timeouts;
    pthread_mutex_unlock(&ds->mu);
}

void sluice__dsem_export_get(sluice_dsem *ds, sluice__dsem_export *out)
{
    pthread_mutex_lock(&ds->mu);
    out->downstream = ds->downstream;
    out->share = ds->share;
    out->cap = ds->cap;
    out->leased = ds->leased;
    out->in_use = ds->in_use;
    pthread_mutex_unlock(&ds->mu);
}

/*
 * src/cluster/dlimiter.c - a rate limiter shared by all replicas: GCRA
 * (the generic cell rate algorithm) in one Lua script.
 *
 * GCRA keeps one number per limiter, the theoretical arrival time (TAT)
 * on Redis's clock in microseconds. With T = 1/rate and a bucket of
 * `burst` tokens, a request for n tokens conforms when
 * max(TAT, now) + n*T - burst*T <= now; taking it moves TAT to
 * max(TAT, now) + n*T. This is the token bucket of sluice_limiter seen
 * from the other side (a full bucket = TAT <= now), in one key with an
 * expiry, updated atomically by one script per call: one round trip per
 * allow/reserve, no lock across replicas, no clock of a replica involved.
 *
 * Rate changes (set_rate) rescale the debt, as sluice_limiter_set_rate
 * keeps its token count: the TAT's outstanding part is tokens x T, so a
 * second key (<p>:rlt:<name>, same PX) records "T TAT": the T it was
 * built with and the TAT it vouches for; each script, seeing a caller's T
 * that differs, first maps the vouched part of TAT - now by
 * T_new / T_old and records T_new. A second key rather than a hash or a
 * "tat T" string: the TAT key keeps the format of the version before (a
 * number), so a key it left and a replica still running it both keep
 * working. What such a replica adds to the TAT (past the TAT the second
 * key vouches for) was built at its own T, which nobody recorded: it is
 * read as built at the caller's T, as that version reads all of it
 * (scripts.c, "Rolling upgrade"). The rescale is in the script, not in set_rate: set_rate makes
 * no Redis call (it may run while Redis is down), and the shared debt is
 * rescaled by the first script that sees the new T, on any replica.
 * Replicas at different rates at once: each script rescales the shared
 * debt to its caller's T, so the last caller's T wins. Cancel passes its
 * replica's current T and the tokens: after the rescale to that T, the
 * reservation's share of the debt is tokens x T, whatever T it was
 * reserved at.
 *
 * Precision and the largest rate: the scripts keep the TAT to nine
 * decimals of a microsecond (scripts.c), so a call is charged n / rate to
 * within about 1e-9 us; rates above SLUICE_DLIMITER_RATE_MAX (1e9/s, an
 * interval of a nanosecond) are refused, SLUICE_RATE_INF is the way to
 * say "no limit".
 *
 * Fallback: while the cluster is in fallback, or when a call fails, the
 * limiter answers from a local token bucket with rate / members and
 * burst / members (at least 1) of the last known view, so the cluster as
 * a whole stays near the rate. With no view ever read (Redis down since
 * the cluster was made) it assumes cfg.fallback_replicas replicas, by
 * default as many as the burst has tokens: a bucket of one token at
 * rate / burst. (It assumed one replica, the whole rate each: N replicas
 * started in an outage took N times the rate.) The bucket is sluice_limiter's own
 * (sluice__tb, src/base/tb.h) kept in dl and guarded by dl->mu: a
 * debt of any size is charged to it or taken out of it in one step (a
 * sluice_limiter takes at most one burst a call, so a carry of C tokens
 * into a bucket of B took C/B calls under dl->mu), and it has no name of
 * its own to refuse (a sluice_limiter's is at most 48 bytes, a
 * dlimiter's 64: with a longer name every call in fallback was refused).
 * It is built full on the first entry into
 * fallback and then kept: the next entry finds it as the last fallback
 * left it, refilled at its rate meanwhile (resized in place if the
 * view's replica count changed). Built full on each entry, it handed out
 * a fresh burst per cycle while Redis answered heartbeats but failed the
 * limiter's calls (a foreign value under its key, a call timing out):
 * each cycle of heartbeat, failed call, fallback took one more burst
 * than the rate allows. set_rate and set_burst change it in place
 * (as sluice_limiter_set_rate/_set_burst: its debt stays a count of
 * tokens). Leaving fallback, the tokens it is in debt by (reservations
 * not yet due) move out of it and are carried into the first script
 * call that reaches Redis (ARGV 5 of the take script), so they count
 * against the shared bucket instead. If that call fails, the debt stays
 * owed and goes back into the bucket on the way into fallback. (A call
 * that timed out after Redis ran it charges the debt twice: stricter,
 * never looser.)
 *
 * Cancel goes back to where the tokens were charged, not by the mode the
 * limiter is in when it is called: the fallback bucket keeps a list of
 * the reservations it made with a wait (lres, until they are due), each
 * with the tokens of it a carry moved to Redis (the carried debt spread
 * newest first), and a cancel that matches one (tokens, reserved_at,
 * act_at) gives those back to Redis and the rest to the bucket, once: the
 * entry is marked and a second cancel gives nothing (it gave the bucket's
 * tokens to Redis). Any other reservation was charged to Redis and its
 * cancel goes to Redis, or is lost when Redis cannot be reached
 * (stricter, never looser), or when it was reserved at or before
 * no_refund_upto_ns: the local time this limiter first saw a changed
 * epoch (its tokens were in the lost TAT, and a refund would undo the
 * restart grace: a cancel of burst tokens deleted the key, a full
 * bucket), or of a fallback reservation it had no memory to record. Routed by the mode, a reservation taken
 * from Redis and cancelled in fallback refilled the fallback bucket with tokens it never gave, and one
 * carried to Redis and cancelled in a later fallback did the same (test_dlimiter_cancel_goes_where_charged).
 * A cancel of a reservation whose carry is in flight gives nothing back. A Redis reservation identical in all
 * three fields to a recorded fallback one (possible only on an injected clock) would be given back to the
 * bucket instead, and the other one later to Redis: the same tokens, swapped.
 *
 * Redis restarted without its data: every TAT is gone and each bucket
 * would be full again, a fresh burst per limiter. The take script keeps
 * an epoch per key prefix (scripts.c, "Restart grace"); the limiter
 * passes the one it last saw, and the first call that finds another
 * starts the bucket empty, refilling at the rate. dl->epoch is read and
 * written under mu; the call itself runs without it.
 *
 * Which failure is whose: a call whose connection failed (I/O, timeout,
 * a server that serves nobody) puts the cluster in fallback, every
 * binding, semaphore and limiter of the replica with it. A call that
 * failed alone, the script's own error reply (a foreign value under this
 * limiter's key) or a reply of the wrong shape, keeps the connection
 * (redis.c) and puts only this limiter on its fallback bucket, for one
 * heartbeat but at most a second (retry_at_ns; a heartbeat of UINT64_MAX
 * saturated it and left the limiter in fallback for good), after which
 * the next call tries Redis again: at most one failing round trip per
 * heartbeat, and the replica's other
 * limiters and bindings never notice (test_dlimiter_script_error_is_its_own).
 *
 * Lock order: dl->mu -> cluster mu; no Redis call is made with dl->mu
 * held (the connection's own mutex serialises calls).
 */
#include <hiredis/hiredis.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/check.h"
#include "cluster/cluster_internal.h"
#include "sync/sync_internal.h"

/* A reservation taken from the fallback bucket (see lres). */
typedef struct local_res {
    uint64_t tokens, reserved_at_ns, act_at_ns;
    uint64_t carry_gen; /* 0: none in flight; else the carry in flight that moves `moving` of it */
    uint64_t carried;   /* of its tokens, those charged to Redis by carries (in flight included) */
    uint64_t moving;    /* of `carried`, those the carry in flight moves (back to the bucket if it fails) */
    bool done;          /* cancelled once: a second cancel gives nothing back */
} local_res;

struct sluice_dlimiter {
    sluice_cluster *c;
    char name[SLUICE_CLUSTER_NAME_MAX + 1];
    char key[256];      /* the TAT */
    char tkey[256];     /* the emission interval the TAT was built with */
    char ekey[256];     /* the key prefix's limiter epoch (a restart check) */
    pthread_mutex_t mu; /* guards everything below */
    double rate;
    uint64_t burst;
    /* The fallback bucket, built on the first fallback and kept. */
    bool have_local;
    sluice__tb local;
    double local_rate;          /* rate / local_members (INF as it is) */
    uint64_t local_burst;       /* burst / local_members, at least 1 */
    unsigned local_members;     /* the replicas its rate and burst were divided by */
    bool local_counted;         /* local_members came from a member list (else assumed) */
    unsigned fallback_replicas; /* cfg: replicas assumed with no member list; 0 = burst */
    bool fallback;
    /* Local clock: after this limiter's own script failed with the
     * connection up (a foreign value under its key), it answers from the
     * fallback bucket until then, one heartbeat (at most 1 s), and then tries Redis
     * again; the cluster is not told (its other objects keep working). */
    uint64_t retry_at_ns;
    uint64_t carry; /* tokens of fallback debt not yet charged to Redis */
    char epoch[32]; /* the limiter epoch Redis last answered with; "0" = none yet */
    /* Local clock: a cancel of a reservation not in lres (charged to
     * Redis) reserved at or before this gives nothing back. Set when a
     * call first sees a changed epoch (Redis lost its data: a pre-restart
     * reservation's tokens are not in the fresh TAT, which holds the
     * restart grace instead) and when a fallback reservation could not be
     * recorded (no memory: its cancel must not go to Redis). */
    uint64_t no_refund_upto_ns;
    /* The reservations the fallback bucket is owed for (taken there with a
     * wait, not yet due, not yet carried to Redis): a cancel of one of
     * these goes back to the bucket, of any other to Redis. A carry marks
     * those it moves with its generation; when its call succeeds they are
     * Redis's and are forgotten, when it fails they are the bucket's
     * again. */
    local_res *lres;
    size_t lres_n, lres_cap;
    uint64_t carry_gen; /* the last carry's generation */
    uint64_t allowed, limited, redis_calls, fallback_calls, wait_timeouts, wait_canceled, rejected;
};

void sluice_dlimiter_config_init(sluice_dlimiter_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
}

static bool rate_ok(double rate)
{
    return rate == SLUICE_RATE_INF || (rate >= SLUICE_DLIMITER_RATE_MIN && rate <= SLUICE_DLIMITER_RATE_MAX);
}

sluice_err sluice_dlimiter_create(sluice_cluster *c, const sluice_dlimiter_config *cfg, sluice_dlimiter **out,
                                  char *errbuf, size_t errlen)
{
    if (!c || !cfg || !out) {
        return SLUICE_EINVAL;
    }
    *out = NULL;
    if (!sluice__name_valid(cfg->name, SLUICE_CLUSTER_NAME_MAX)) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "name: must be 1-64 characters of [A-Za-z0-9_.:-], got \"%s\"",
                     cfg->name ? cfg->name : "(null)");
        }
        return SLUICE_EINVAL;
    }
    if (!rate_ok(cfg->rate)) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen,
                     "rate: must be from %g (SLUICE_DLIMITER_RATE_MIN) to %g tokens/s "
                     "(SLUICE_DLIMITER_RATE_MAX), or SLUICE_RATE_INF for no limit, got %g (a bucket "
                     "that never refills is a local sluice_limiter's job)",
                     SLUICE_DLIMITER_RATE_MIN, SLUICE_DLIMITER_RATE_MAX, cfg->rate);
        }
        return SLUICE_EINVAL;
    }
    if (cfg->rate != SLUICE_RATE_INF && cfg->burst == 0) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "burst: must be > 0");
        }
        return SLUICE_EINVAL;
    }
    sluice_dlimiter *dl = calloc(1, sizeof *dl);
    if (!dl) {
        return SLUICE_ENOMEM;
    }
    dl->c = c;
    snprintf(dl->name, sizeof dl->name, "%s", cfg->name);
    snprintf(dl->key, sizeof dl->key, "%s:rl:%s", sluice__cluster_prefix(c), dl->name);
    snprintf(dl->tkey, sizeof dl->tkey, "%s:rlt:%s", sluice__cluster_prefix(c), dl->name);
    snprintf(dl->ekey, sizeof dl->ekey, "%s:rlepoch", sluice__cluster_prefix(c));
    snprintf(dl->epoch, sizeof dl->epoch, "0");
    dl->rate = cfg->rate;
    dl->burst = cfg->burst;
    dl->fallback_replicas = cfg->fallback_replicas;
    pthread_mutex_init(&dl->mu, NULL);
    *out = dl;
    return SLUICE_OK;
}

void sluice_dlimiter_destroy(sluice_dlimiter *dl)
{
    if (!dl) {
        return;
    }
    pthread_mutex_destroy(&dl->mu);
    free(dl->lres);
    free(dl);
}

static uint64_t now_ns(const sluice_dlimiter *dl)
{
    return sluice_clock_now(sluice__cluster_clock(dl->c));
}

/* Give the fallback bucket rate / n and burst / n (at least 1) in place:
 * its tokens, or its debt, stay a count (as sluice_limiter_set_rate and
 * _set_burst: brought up to date at the old rate first, capped at the
 * new burst). INF leaves its rate as it was: INF calls never reach it.
 * Caller holds mu. */
static void local_resize_locked(sluice_dlimiter *dl, unsigned n)
{
    SLUICE__ASSERT_HELD(&dl->mu);
    sluice__tb_advance(&dl->local, dl->local_rate, dl->local_burst, now_ns(dl));
    if (dl->rate != SLUICE_RATE_INF) {
        dl->local_rate = dl->rate / n;
    }
    dl->local_burst = dl->burst / n ? dl->burst / n : 1;
    if (dl->local.tokens > (double)dl->local_burst) {
        dl->local.tokens = (double)dl->local_burst;
    }
    dl->local_members = n;
}

/* The replicas the fallback bucket divides by while no member list was
 * ever read: cfg's fallback_replicas, else as many as the burst has
 * tokens (a bucket of 1 at rate / burst). Caller holds mu. */
static unsigned assumed_replicas_locked(const sluice_dlimiter *dl)
{
    if (dl->fallback_replicas) {
        return dl->fallback_replicas;
    }
    return dl->burst == 0 ? 1 : dl->burst > UINT_MAX ? UINT_MAX : (unsigned)dl->burst;
}

/* Enter fallback (if not in it) and charge the fallback bucket any debt
 * a failed carry left owed, in one step. The bucket is built full once
 * and then kept from one fallback to the next (resized in place when the
 * view's replica count changed), so a fallback entered again soon after
 * the last, as in a "PING works, EVAL fails" state where each recovery
 * is followed by a failed call, finds the bucket as that fallback left
 * it, refilled only at its rate meanwhile: a bucket built full on each
 * entry handed out one fresh burst a cycle. Caller holds mu. */
static void local_locked(sluice_dlimiter *dl)
{
    SLUICE__ASSERT_HELD(&dl->mu);
    SLUICE__ASSERT(!dl->fallback || dl->have_local); /* in fallback, the bucket exists */
    uint64_t now = now_ns(dl);
    if (!dl->fallback) {
        sluice__view v;
        sluice__cluster_view(dl->c, &v);
        bool counted = v.have_view && v.members;
        unsigned n = counted ? v.members : assumed_replicas_locked(dl);
        dl->local_counted = counted;
        if (!dl->have_local) {
            dl->local_rate = dl->rate / n;
            dl->local_burst = dl->burst / n ? dl->burst / n : 1;
            dl->local_members = n;
            sluice__tb_init(&dl->local, dl->local_burst, now);
            dl->have_local = true;
        } else if (n != dl->local_members) {
            local_resize_locked(dl, n);
        }
        dl->fallback = true;
    }
    if (dl->carry > 0) {
        sluice__tb_advance(&dl->local, dl->local_rate, dl->local_burst, now);
        dl->local.tokens -= (double)dl->carry;
        dl->carry = 0;
    }
}

/* Leaving fallback for a Redis call: the fallback bucket's debt (tokens
 * reserved but not yet due, rounded up) moves out of it into what is
 * owed, and all of that is handed to the caller to carry into its script
 * call. The bucket keeps the rest of its state (a bucket left empty stays
 * empty, refilling at its rate), so the debt is counted once: in Redis
 * if the call succeeds, back in the bucket (local_locked) if it fails.
 * *gen is the generation of the carry (0 when there is none): the debt
 * is spread over the recorded reservations newest first, each marked
 * with the tokens of it the carry moves (at most its own: a bucket of 1
 * token that reserved 2 carries 1, and a cancel gives 1 back to Redis and
 * 1 to the bucket; it gave 2 to Redis, one never charged there), and
 * until the call returns (carried_locked) a cancel of one of them gives
 * nothing back (the tokens are in transit). Caller holds mu. */
static uint64_t leave_fallback_locked(sluice_dlimiter *dl, uint64_t *gen)
{
    SLUICE__ASSERT_HELD(&dl->mu);
    *gen = 0;
    if (dl->fallback && dl->have_local) {
        sluice__tb_advance(&dl->local, dl->local_rate, dl->local_burst, now_ns(dl));
        if (dl->local.tokens < 0) {
            double debt = ceil(-dl->local.tokens);
            dl->carry = sluice__add_sat(dl->carry, debt >= 1.8e19 ? UINT64_MAX : (uint64_t)debt);
            dl->local.tokens += debt;
        }
    }
    dl->fallback = false;
    uint64_t carry = dl->carry;
    dl->carry = 0;
    if (carry > 0) {
        /* The debt is the newest reservations' (the bucket repays the
         * oldest first): spread it over them, newest first, so a cancel
         * gives back to Redis only what was carried there. */
        *gen = ++dl->carry_gen;
        uint64_t left = carry;
        for (size_t i = dl->lres_n; i-- > 0 && left > 0;) {
            local_res *e = &dl->lres[i];
            if (e->done || e->carry_gen != 0 || e->carried >= e->tokens) {
                continue;
            }
            uint64_t m = e->tokens - e->carried < left ? e->tokens - e->carried : left;
            e->carried += m;
            e->moving = m;
            e->carry_gen = *gen;
            left -= m;
        }
    }
    return carry;
}

/* A call that carried generation gen (leave_fallback_locked) returned:
 * on success the tokens it moved are charged to Redis (kept in `carried`
 * until the entry is due); on failure they are the bucket's again (as
 * their debt is, local_locked). Caller holds mu. */
static void carried_locked(sluice_dlimiter *dl, uint64_t gen, bool ok)
{
    SLUICE__ASSERT_HELD(&dl->mu);
    if (gen == 0) {
        return;
    }
    for (size_t i = 0; i < dl->lres_n; i++) {
        local_res *e = &dl->lres[i];
        if (e->carry_gen == gen) {
            if (!ok) {
                e->carried -= e->moving;
            }
            e->moving = 0;
            e->carry_gen = 0;
        }
    }
}

/* A Redis call of this limiter saw epoch `seen` where it passed `known`:
 * record it, and when it changed from one it had seen (Redis lost its
 * data; this call or another just set the restart grace), stop giving
 * back reservations taken from Redis before now. Caller holds mu. */
static void saw_epoch_locked(sluice_dlimiter *dl, const char *known, const char *seen)
{
    SLUICE__ASSERT_HELD(&dl->mu);
    if (!seen[0]) {
        return;
    }
    if (strcmp(known, "0") != 0 && strcmp(seen, known) != 0) {
        uint64_t now = now_ns(dl);
        if (now > dl->no_refund_upto_ns) {
            dl->no_refund_upto_ns = now;
        }
    }
    memcpy(dl->epoch, seen, sizeof dl->epoch);
}

/* Record a reservation the fallback bucket just made with a wait, so its
 * cancel comes back here. Entries already due are dropped first (their
 * cancel is a no-op). Without memory for it, it is not recorded: its
 * cancel, and that of every Redis reservation made until now, then gives
 * nothing back (no_refund_upto_ns; stricter). Caller holds mu. */
static void record_local_locked(sluice_dlimiter *dl, const sluice_reservation *r, uint64_t now)
{
    SLUICE__ASSERT_HELD(&dl->mu);
    if (dl->lres_n == dl->lres_cap) {
        size_t k = 0;
        for (size_t i = 0; i < dl->lres_n; i++) {
            if (dl->lres[i].act_at_ns > now) {
                dl->lres[k++] = dl->lres[i];
            }
        }
        dl->lres_n = k;
    }
    if (dl->lres_n == dl->lres_cap) {
        size_t cap = dl->lres_cap ? dl->lres_cap * 2 : 8;
        local_res *p = realloc(dl->lres, cap * sizeof *p);
        if (!p) {
            if (r->reserved_at_ns > dl->no_refund_upto_ns) {
                dl->no_refund_upto_ns = r->reserved_at_ns;
            }
            return;
        }
        dl->lres = p;
        dl->lres_cap = cap;
    }
    dl->lres[dl->lres_n++] =
        (local_res){.tokens = r->tokens, .reserved_at_ns = r->reserved_at_ns, .act_at_ns = r->act_at_ns};
}

/* The emission interval in us, as the scripts take it: %.17g keeps every
 * finite rate's interval exact enough to compare with the recorded one
 * (a fixed 6 decimals would read intervals under 1 ps as 0). */
static void interval_arg(char *buf, size_t len, double rate)
{
    snprintf(buf, len, "%.17g", 1e6 / rate);
}

/* One GCRA call, `carry` tokens of fallback debt charged first. Returns
 * 1 taken, 0 not taken, -1 Redis failed (the cluster is in fallback
 * now), -2 this call alone failed (the script's error reply, or a reply
 * of the wrong shape: the connection is kept and the cluster is not
 * told); *wait_us. */
static int gcra(sluice_dlimiter *dl, double rate, uint64_t burst, uint64_t n, bool reserve, uint64_t carry,
                const char *known_epoch, char *epoch, size_t epoch_len, uint64_t *wait_us)
{
    char T[48], b[24], ns[24], cs[24];
    interval_arg(T, sizeof T, rate);
    snprintf(b, sizeof b, "%llu", (unsigned long long)burst);
    snprintf(ns, sizeof ns, "%llu", (unsigned long long)n);
    snprintf(cs, sizeof cs, "%llu", (unsigned long long)carry);
    const char *argv[] = {dl->key, dl->tkey,   dl->ekey, T, b, ns, reserve ? "reserve" : "allow",
                          cs,      known_epoch};
    sluice__redis *r = sluice__cluster_redis(dl->c);
    sluice__redis_fail fail = SLUICE__REDIS_FAIL_DOWN;
    redisReply *rep =
        sluice__redis_ensure(r, false) ? sluice__redis_eval(r, SLUICE__SCRIPT_GCRA, 3, 9, argv, &fail) : NULL;
    if (!rep) {
        if (fail == SLUICE__REDIS_FAIL_SCRIPT) {
            return -2;
        }
        sluice__cluster_redis_failed(dl->c);
        return -1;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2) {
        freeReplyObject(rep);
        return -2;
    }
    int taken = (int)sluice__reply_int(rep, 0);
    long long w = sluice__reply_int(rep, 1);
    *wait_us = w > 0 ? (uint64_t)w : 0;
    epoch[0] = '\0';
    if (rep->elements >= 3 && rep->element[2]->type == REDIS_REPLY_STRING &&
        rep->element[2]->len < epoch_len) {
        memcpy(epoch, rep->element[2]->str, rep->element[2]->len);
        epoch[rep->element[2]->len] = '\0';
    }
    freeReplyObject(rep);
    return taken ? 1 : 0;
}

/* Whether calls answer from the fallback bucket now: the cluster is in
 * fallback (or never had a view), or this limiter's own script failed
 * less than a heartbeat ago. Caller holds mu. */
static bool in_fallback_locked(sluice_dlimiter *dl)
{
    SLUICE__ASSERT_HELD(&dl->mu);
    if (dl->retry_at_ns && now_ns(dl) < dl->retry_at_ns) {
        return true;
    }
    sluice__view v;
    sluice__cluster_view(dl->c, &v);
    return v.fallback || !v.have_view;
}

/* A Redis call of this limiter failed (gcra's t < 0), with the carry it
 * took still owed: back into what is owed, and for a failure of its own
 * (t == -2) no Redis call for one heartbeat, at most 1 s. Caller holds mu. */
static void call_failed_locked(sluice_dlimiter *dl, int t, uint64_t carry)
{
    SLUICE__ASSERT_HELD(&dl->mu);
    dl->carry = sluice__add_sat(dl->carry, carry); /* not charged: still owed */
    if (t == -2) {
        uint64_t hb = sluice__cluster_heartbeat_ns(dl->c);
        dl->retry_at_ns = sluice__add_sat(now_ns(dl), hb < SLUICE_NS_PER_SEC ? hb : SLUICE_NS_PER_SEC);
        if (dl->retry_at_ns == 0) {
            dl->retry_at_ns = 1;
        }
    }
}

bool sluice_dlimiter_allow_n(sluice_dlimiter *dl, uint64_t n)
{
    if (!dl) {
        return false;
    }
    pthread_mutex_lock(&dl->mu);
    double rate = dl->rate;
    uint64_t burst = dl->burst;
    if (rate == SLUICE_RATE_INF || n == 0) {
        dl->allowed++;
        pthread_mutex_unlock(&dl->mu);
        return true;
    }
    if (n > burst) {
        dl->limited++;
        pthread_mutex_unlock(&dl->mu);
        return false;
    }
    bool fb = in_fallback_locked(dl);
    if (!fb) {
        uint64_t gen;
        uint64_t carry = leave_fallback_locked(dl, &gen);
        dl->redis_calls++;
        char known[sizeof dl->epoch], seen[sizeof dl->epoch];
        memcpy(known, dl->epoch, sizeof known);
        pthread_mutex_unlock(&dl->mu);
        uint64_t w;
        int t = gcra(dl, rate, burst, n, false, carry, known, seen, sizeof seen, &w);
        pthread_mutex_lock(&dl->mu);
        carried_locked(dl, gen, t >= 0);
        if (t >= 0) {
            saw_epoch_locked(dl, known, seen);
        }
        if (t >= 0) {
            if (t) {
                dl->allowed++;
            } else {
                dl->limited++;
            }
            pthread_mutex_unlock(&dl->mu);
            return t == 1;
        }
        call_failed_locked(dl, t, carry);
    }
    local_locked(dl);
    dl->fallback_calls++;
    bool ok = sluice__tb_allow(&dl->local, dl->local_rate, dl->local_burst, n, now_ns(dl));
    if (ok) {
        dl->allowed++;
    } else {
        dl->limited++;
    }
    pthread_mutex_unlock(&dl->mu);
    return ok;
}

bool sluice_dlimiter_allow(sluice_dlimiter *dl)
{
    return sluice_dlimiter_allow_n(dl, 1);
}

sluice_err sluice_dlimiter_reserve(sluice_dlimiter *dl, uint64_t n, sluice_reservation *out)
{
    if (!dl || !out) {
        return SLUICE_EINVAL;
    }
    const sluice_clock *clk = sluice__cluster_clock(dl->c);
    pthread_mutex_lock(&dl->mu);
    double rate = dl->rate;
    uint64_t burst = dl->burst;
    uint64_t now = sluice_clock_now(clk);
    *out = (sluice_reservation){.tokens = n, .reserved_at_ns = now, .act_at_ns = now, .delay_ns = 0};
    if (rate == SLUICE_RATE_INF || n == 0) {
        dl->allowed++;
        pthread_mutex_unlock(&dl->mu);
        return SLUICE_OK;
    }
    if (n > burst) {
        dl->rejected++;
        pthread_mutex_unlock(&dl->mu);
        return SLUICE_EOVERFLOW;
    }
    if (!in_fallback_locked(dl)) {
        uint64_t gen;
        uint64_t carry = leave_fallback_locked(dl, &gen);
        dl->redis_calls++;
        char known[sizeof dl->epoch], seen[sizeof dl->epoch];
        memcpy(known, dl->epoch, sizeof known);
        pthread_mutex_unlock(&dl->mu);
        uint64_t w = 0;
        int t = gcra(dl, rate, burst, n, true, carry, known, seen, sizeof seen, &w);
        pthread_mutex_lock(&dl->mu);
        carried_locked(dl, gen, t >= 0);
        if (t >= 0) {
            saw_epoch_locked(dl, known, seen);
        }
        if (t >= 0) {
            dl->allowed++;
            /* w <= 2^53 us (the script's cap): 9e18 ns, no overflow; act_at saturates */
            out->delay_ns = w * SLUICE_NS_PER_US;
            out->act_at_ns = out->delay_ns > UINT64_MAX - out->reserved_at_ns
                                 ? UINT64_MAX
                                 : out->reserved_at_ns + out->delay_ns;
            pthread_mutex_unlock(&dl->mu);
            return SLUICE_OK;
        }
        call_failed_locked(dl, t, carry);
    }
    local_locked(dl);
    dl->fallback_calls++;
    uint64_t at = now_ns(dl);
    sluice_err err = sluice__tb_reserve(&dl->local, dl->local_rate, dl->local_burst, n, at, out);
    if (err == SLUICE_OK) {
        if (out->act_at_ns > at) {
            record_local_locked(dl, out, at);
        }
        dl->allowed++;
    } else {
        dl->rejected++;
    }
    pthread_mutex_unlock(&dl->mu);
    return err;
}

void sluice_dlimiter_cancel(sluice_dlimiter *dl, const sluice_reservation *r)
{
    if (!dl || !r || r->tokens == 0) {
        return;
    }
    const sluice_clock *clk = sluice__cluster_clock(dl->c);
    pthread_mutex_lock(&dl->mu);
    if (sluice_clock_now(clk) >= r->act_at_ns || dl->rate == SLUICE_RATE_INF) {
        pthread_mutex_unlock(&dl->mu);
        return; /* its time has come: the tokens are spent */
    }
    /* Back to where it was charged, whatever the mode now: one of the
     * fallback bucket's gives the part of it a carry moved to Redis back
     * to Redis and the rest to the bucket; any other reservation was
     * Redis's. Nothing back (stricter, never looser) for: a second cancel
     * of a fallback reservation, one whose carry is in flight, and a
     * Redis one reserved before this limiter saw Redis lose its data (its
     * tokens are not in the new TAT, which holds the restart grace). */
    uint64_t to_redis = r->tokens;
    for (size_t i = 0; i < dl->lres_n; i++) {
        local_res *e = &dl->lres[i];
        if (e->tokens == r->tokens && e->reserved_at_ns == r->reserved_at_ns &&
            e->act_at_ns == r->act_at_ns) {
            if (e->done || e->carry_gen != 0) {
                e->done = true;
                pthread_mutex_unlock(&dl->mu);
                return;
            }
            e->done = true;
            to_redis = e->carried;
            sluice_reservation mine = *r;
            mine.tokens = r->tokens - e->carried;
            if (mine.tokens > 0 && dl->have_local) {
                sluice__tb_cancel(&dl->local, dl->local_rate, dl->local_burst, &mine, now_ns(dl));
            }
            break;
        }
    }
    if (to_redis == 0 || r->reserved_at_ns <= dl->no_refund_upto_ns) {
        pthread_mutex_unlock(&dl->mu);
        return;
    }
    char T[48], tokens[24];
    interval_arg(T, sizeof T, dl->rate);
    snprintf(tokens, sizeof tokens, "%llu", (unsigned long long)to_redis);
    dl->redis_calls++;
    pthread_mutex_unlock(&dl->mu);
    const char *argv[] = {dl->key, dl->tkey, T, tokens};
    sluice__redis *rd = sluice__cluster_redis(dl->c);
    redisReply *rep = sluice__redis_eval(rd, SLUICE__SCRIPT_GCRA_CANCEL, 2, 4, argv, NULL);
    if (rep) {
        freeReplyObject(rep);
    }
}

sluice_err sluice_dlimiter_wait(sluice_dlimiter *dl, uint64_t n, sluice_ctx *ctx)
{
    if (!dl) {
        return SLUICE_EINVAL;
    }
    sluice_err err = sluice_ctx_err(ctx);
    if (err) {
        return err;
    }
    sluice_reservation r;
    err = sluice_dlimiter_reserve(dl, n, &r);
    if (err) {
        return err;
    }
    if (r.delay_ns == 0) {
        return SLUICE_OK;
    }
    if (ctx) {
        const sluice_clock *cc = sluice_ctx_clock(ctx);
        /* Saturating: a fallback reservation at the slowest rates pays
         * back at the clock's end (delay_ns = UINT64_MAX - now), and the
         * plain sum wrapped to a moment already past: the wait returned
         * OK at once, with the tokens taken. */
        uint64_t act = sluice__add_sat(sluice_clock_now(cc), r.delay_ns);
        uint64_t dl_ns = sluice_ctx_deadline(ctx);
        if (dl_ns && dl_ns < act) {
            sluice_dlimiter_cancel(dl, &r);
            pthread_mutex_lock(&dl->mu);
            dl->wait_timeouts++;
            pthread_mutex_unlock(&dl->mu);
            return SLUICE_ETIMEDOUT;
        }
        err = sluice_ctx_wait(ctx, act);
        if (err) {
            sluice_dlimiter_cancel(dl, &r);
            pthread_mutex_lock(&dl->mu);
            if (err == SLUICE_ETIMEDOUT) {
                dl->wait_timeouts++;
            } else {
                dl->wait_canceled++;
            }
            pthread_mutex_unlock(&dl->mu);
        }
        return err;
    }
    sluice__sleep_until(sluice__cluster_clock(dl->c), r.act_at_ns);
    return SLUICE_OK;
}

sluice_err sluice_dlimiter_set_rate(sluice_dlimiter *dl, double rate)
{
    if (!dl || !rate_ok(rate)) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&dl->mu);
    if (rate != SLUICE_RATE_INF && dl->burst == 0) {
        pthread_mutex_unlock(&dl->mu);
        return SLUICE_EINVAL; /* created at INF with no burst: set_burst first */
    }
    dl->rate = rate;
    /* The fallback bucket, in fallback or kept for the next, keeps its
     * debt as a count (INF leaves it as it was: INF calls never reach it). */
    if (dl->have_local && rate != SLUICE_RATE_INF) {
        sluice__tb_advance(&dl->local, dl->local_rate, dl->local_burst, now_ns(dl));
        dl->local_rate = rate / dl->local_members;
    }
    pthread_mutex_unlock(&dl->mu);
    return SLUICE_OK;
}

sluice_err sluice_dlimiter_set_burst(sluice_dlimiter *dl, uint64_t burst)
{
    if (!dl || burst == 0) {
        return SLUICE_EINVAL;
    }
    pthread_mutex_lock(&dl->mu);
    dl->burst = burst;
    if (dl->have_local) {
        /* An assumed count follows the burst it was derived from. */
        local_resize_locked(dl, dl->local_counted ? dl->local_members : assumed_replicas_locked(dl));
    }
    pthread_mutex_unlock(&dl->mu);
    return SLUICE_OK;
}

void sluice_dlimiter_stats_get(sluice_dlimiter *dl, sluice_dlimiter_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&dl->mu);
    out->rate = dl->rate;
    out->burst = dl->burst;
    out->fallback = dl->fallback;
    out->allowed = dl->allowed;
    out->limited = dl->limited;
    out->redis_calls = dl->redis_calls;
    out->fallback_calls = dl->fallback_calls;
    out->wait_timeouts = dl->wait_timeouts;
    out->wait_canceled = dl->wait_canceled;
    out->rejected = dl->rejected;
    out->fallback = in_fallback_locked(dl);
    pthread_mutex_unlock(&dl->mu);
}

const char *sluice_dlimiter_name(const sluice_dlimiter *dl)
{
    return dl ? dl->name : NULL;
}

/*
 * src/base/tb.h - the token bucket that sluice_limiter (src/sync/limiter.c),
 * the keyed limiter (src/sync/keyed_limiter.c) and the distributed
 * limiter's fallback (src/cluster/dlimiter.c) share.
 *
 * Design. A bucket is two numbers: `tokens` (a double, so fractional
 * refill is not lost between calls; negative while reservations are in
 * debt) and `last_ns`, the time they were brought up to date. Every
 * operation first advances the bucket to "now" (tokens += elapsed * rate,
 * capped at burst), so no timer is needed. A reservation subtracts its
 * tokens at once, possibly below zero; the time to act is when the refill
 * pays the debt back, saturated at the clock's end. A clock that steps
 * backwards adds nothing and does not move last_ns back. rate and burst
 * are arguments, so the owner may change them between calls.
 *
 * Header-only on purpose, as text.h: sluice_cluster is a separate library
 * that users link against the shared libsluice, where internal sluice__
 * functions are hidden (-fvisibility=hidden), so code it shares with
 * src/sync must be compiled into it (tests/install checks that no
 * installed archive needs a hidden symbol).
 *
 * No locks: each bucket is guarded by its owner's lock.
 */
#ifndef SLUICE_BASE_TB_H
#define SLUICE_BASE_TB_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "sluice/limiter.h"

typedef struct sluice__tb {
    double tokens;    /* may be negative: debt to reservations */
    uint64_t last_ns; /* when tokens was last brought up to date */
} sluice__tb;

static inline void sluice__tb_init(sluice__tb *tb, uint64_t burst, uint64_t now)
{
    tb->tokens = (double)burst;
    tb->last_ns = now;
}

static inline void sluice__tb_advance(sluice__tb *tb, double rate, uint64_t burst, uint64_t now)
{
    if (now <= tb->last_ns) {
        return;
    }
    double cap = (double)burst;
    if (tb->tokens < cap && rate > 0) {
        double add = (double)(now - tb->last_ns) * rate / 1e9;
        tb->tokens = tb->tokens + add >= cap ? cap : tb->tokens + add;
    }
    if (tb->tokens > cap) {
        tb->tokens = cap; /* after a smaller burst was set */
    }
    tb->last_ns = now;
}

static inline bool sluice__tb_allow(sluice__tb *tb, double rate, uint64_t burst, uint64_t n, uint64_t now)
{
    if (isinf(rate) || n == 0) {
        return true;
    }
    if (n > burst) {
        return false;
    }
    sluice__tb_advance(tb, rate, burst, now);
    if (tb->tokens >= (double)n) {
        tb->tokens -= (double)n;
        return true;
    }
    return false;
}

static inline sluice_err sluice__tb_reserve(sluice__tb *tb, double rate, uint64_t burst, uint64_t n,
                                            uint64_t now, sluice_reservation *r)
{
    memset(r, 0, sizeof *r);
    r->reserved_at_ns = r->act_at_ns = now;
    if (isinf(rate) || n == 0) {
        return SLUICE_OK; /* nothing taken: tokens stays 0 in r */
    }
    if (n > burst) {
        return SLUICE_EOVERFLOW;
    }
    sluice__tb_advance(tb, rate, burst, now);
    double after = tb->tokens - (double)n;
    if (after < 0 && rate <= 0) {
        return SLUICE_EAGAIN; /* no refill: it would never be ready */
    }
    tb->tokens = after;
    r->tokens = n;
    if (after < 0) {
        /* The debt's pay-back time saturates at the clock's end: act_at_ns
         * is at most UINT64_MAX and delay_ns is always act_at_ns - now.
         * (Saturating act_at_ns alone, as before, left delay_ns larger
         * than the gap near the clock's end: a caller adding delay_ns to
         * reserved_at_ns wrapped around.) A debt past 2^64 ns (584 years;
         * 19 tokens at 1e-9/s), and a rate so small that the
         * division overflows to infinity, land there too. */
        double wait = ceil(-after * 1e9 / rate);
        uint64_t room = UINT64_MAX - now;
        r->delay_ns = wait >= (double)room ? room : (uint64_t)wait;
        r->act_at_ns = now + r->delay_ns;
    }
    return SLUICE_OK;
}

static inline void sluice__tb_cancel(sluice__tb *tb, double rate, uint64_t burst, const sluice_reservation *r,
                                     uint64_t now)
{
    if (r->tokens == 0 || now >= r->act_at_ns) {
        return; /* nothing taken, or already spent */
    }
    sluice__tb_advance(tb, rate, burst, now);
    tb->tokens += (double)r->tokens;
    if (tb->tokens > (double)burst) {
        tb->tokens = (double)burst;
    }
}

#endif /* SLUICE_BASE_TB_H */

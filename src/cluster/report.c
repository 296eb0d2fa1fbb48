/*
 * src/cluster/report.c - the live allocation in Redis as text, for
 * `sluice budget status`.
 *
 * Read-only: SMEMBERS of the service set, ZRANGE WITHSCORES of each
 * member set, SCAN for the downstreams' meta hashes, HGETALL of their
 * hashes, and TIME so that expiries are shown as time left on Redis's
 * clock. Expired entries that no script has pruned yet are shown as
 * "expired". It opens its own short-lived connection (no sluice_cluster
 * needed, so an operator can run it from anywhere that reaches Redis).
 * No locks, no shared state.
 */
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "base/text.h"
#include "cluster/cluster_internal.h"

typedef struct sbuf {
    char *s;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) SLUICE_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (!b->oom && !sluice__text_vappendf(&b->s, &b->len, &b->cap, 1024, fmt, ap)) {
        b->oom = true;
    }
    va_end(ap);
}

static redisReply *cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    return r;
}

static const char *hfield(const redisReply *h, const char *field)
{
    if (!h || h->type != REDIS_REPLY_ARRAY) {
        return NULL;
    }
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        if (strcmp(h->element[i]->str, field) == 0) {
            return h->element[i + 1]->str;
        }
    }
    return NULL;
}

static long long hint(const redisReply *h, const char *field)
{
    const char *v = hfield(h, field);
    return v ? atoll(v) : 0;
}

static void left(sbuf *b, long long expiry_ms, long long now_ms)
{
    if (expiry_ms <= now_ms) {
        sb_printf(b, "expired");
    } else {
        sb_printf(b, "%lld ms left", expiry_ms - now_ms);
    }
}

static void report_downstream(sbuf *b, redisContext *c, const char *prefix, const char *ds, long long now_ms)
{
    redisReply *meta = cmd(c, "HGETALL %s:ds:%s:meta", prefix, ds);
    redisReply *svc = cmd(c, "HGETALL %s:ds:%s:svc", prefix, ds);
    redisReply *share = cmd(c, "HGETALL %s:ds:%s:share", prefix, ds);
    redisReply *held = cmd(c, "HGETALL %s:ds:%s:held", prefix, ds);
    redisReply *use = cmd(c, "HGETALL %s:ds:%s:use", prefix, ds);
    redisReply *exp = cmd(c, "ZRANGE %s:ds:%s:exp 0 -1 WITHSCORES", prefix, ds);
    long long grace = hint(meta, "grace_until");
    sb_printf(b, "downstream %s: total_limit %lld, free_pool %lld, leased %lld", ds,
              hint(meta, "total_limit"), hint(meta, "free_pool"), hint(meta, "held"));
    if (grace > now_ms) {
        sb_printf(b, ", grace (no new grants after Redis lost its data) %lld ms left", grace - now_ms);
    }
    sb_printf(b, "\n");
    for (size_t i = 0; share && share->type == REDIS_REPLY_ARRAY && i + 1 < share->elements; i += 2) {
        const char *s = share->element[i]->str;
        long long sh = atoll(share->element[i + 1]->str);
        long long h = hint(svc, s);
        sb_printf(b, "  service %s: share %lld, leased %lld", s, sh, h);
        if (h > sh) {
            sb_printf(b, " (%lld borrowed from the free pool)", h - sh);
        }
        sb_printf(b, "\n");
        size_t slen = strlen(s);
        for (size_t j = 0; exp && exp->type == REDIS_REPLY_ARRAY && j + 1 < exp->elements; j += 2) {
            const char *m = exp->element[j]->str;
            if (strncmp(m, s, slen) != 0 || m[slen] != '|') {
                continue;
            }
            sb_printf(b, "    replica %s: leased %lld, in use %lld, lease ", m + slen + 1, hint(held, m),
                      hint(use, m));
            left(b, atoll(exp->element[j + 1]->str), now_ms);
            sb_printf(b, "\n");
        }
    }
    redisReply *all[] = {meta, svc, share, held, use, exp};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (all[i]) {
            freeReplyObject(all[i]);
        }
    }
}

sluice_err sluice_budget_report(const char *host, unsigned port, const char *prefix, uint64_t timeout_ns,
                                char **out, char *errbuf, size_t errlen)
{
    if (!out) {
        return SLUICE_EINVAL;
    }
    *out = NULL;
    host = host ? host : "127.0.0.1";
    port = port ? port : 6379;
    prefix = prefix ? prefix : "sluice";
    if (!sluice__name_valid(prefix, SLUICE_CLUSTER_NAME_MAX)) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen,
                     "prefix: must be 1-64 characters of " SLUICE__NAME_CHARSET ", got \"%s\"", prefix);
        }
        return SLUICE_EINVAL;
    }
    if (port > 65535) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "port: must be 1-65535 (0 = 6379), got %u", port);
        }
        return SLUICE_EINVAL;
    }
    timeout_ns = timeout_ns ? timeout_ns : SLUICE_NS_PER_SEC;
    /* At least 1 us: a timeval of zero is no timeout at all to the
     * socket (SO_RCVTIMEO), so a shorter one would wait for ever. */
    struct timeval tv = {(time_t)(timeout_ns / SLUICE_NS_PER_SEC),
                         (suseconds_t)(timeout_ns % SLUICE_NS_PER_SEC / 1000)};
    if (tv.tv_sec == 0 && tv.tv_usec == 0) {
        tv.tv_usec = 1;
    }
    redisContext *c = redisConnectWithTimeout(host, (int)port, tv);
    if (!c || c->err) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "redis %s:%u: %s", host, port, c ? c->errstr : "out of memory");
        }
        if (c) {
            redisFree(c);
        }
        return SLUICE_EIO;
    }
    redisSetTimeout(c, tv);
    sbuf b = {0};
    redisReply *t = cmd(c, "TIME");
    if (!t || t->type != REDIS_REPLY_ARRAY || t->elements != 2) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "redis %s:%u: %s", host, port,
                     t && t->type == REDIS_REPLY_ERROR ? t->str
                     : c->errstr[0]                    ? c->errstr
                                                       : "no answer to TIME");
        }
        if (t) {
            freeReplyObject(t);
        }
        redisFree(c);
        return SLUICE_EIO;
    }
    long long now_ms = atoll(t->element[0]->str) * 1000 + atoll(t->element[1]->str) / 1000;
    freeReplyObject(t);
    sb_printf(&b, "redis %s:%u, key prefix \"%s\"\n", host, port, prefix);

    redisReply *svcs = cmd(c, "SMEMBERS %s:services", prefix);
    size_t nsvc = svcs && svcs->type == REDIS_REPLY_ARRAY ? svcs->elements : 0;
    if (nsvc == 0) {
        sb_printf(&b, "no services registered\n");
    }
    for (size_t i = 0; i < nsvc; i++) {
        const char *s = svcs->element[i]->str;
        redisReply *m = cmd(c, "ZRANGE %s:svc:%s:members 0 -1 WITHSCORES", prefix, s);
        size_t live = 0;
        for (size_t j = 0; m && m->type == REDIS_REPLY_ARRAY && j + 1 < m->elements; j += 2) {
            live += atoll(m->element[j + 1]->str) > now_ms;
        }
        sb_printf(&b, "service %s: %zu live member%s\n", s, live, live == 1 ? "" : "s");
        for (size_t j = 0; m && m->type == REDIS_REPLY_ARRAY && j + 1 < m->elements; j += 2) {
            sb_printf(&b, "  member %s: ", m->element[j]->str);
            left(&b, atoll(m->element[j + 1]->str), now_ms);
            sb_printf(&b, "\n");
        }
        if (m) {
            freeReplyObject(m);
        }
    }
    if (svcs) {
        freeReplyObject(svcs);
    }

    /* Downstreams: SCAN (never KEYS) for <prefix>:ds:*:meta. */
    char cursor[32] = "0";
    size_t plen = strlen(prefix);
    do {
        redisReply *r = cmd(c, "SCAN %s MATCH %s:ds:*:meta COUNT 1000", cursor, prefix);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r) {
                freeReplyObject(r);
            }
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        const redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            const char *k = keys->element[i]->str;
            size_t klen = strlen(k);
            if (klen <= plen + 4 + 5) {
                continue;
            }
            char ds[SLUICE_CLUSTER_NAME_MAX + 1];
            size_t dlen = klen - plen - 4 - 5; /* "<prefix>:ds:" ... ":meta" */
            if (dlen > SLUICE_CLUSTER_NAME_MAX) {
                continue;
            }
            memcpy(ds, k + plen + 4, dlen);
            ds[dlen] = '\0';
            report_downstream(&b, c, prefix, ds, now_ms);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    bool failed = c->err != 0;
    if (failed && errbuf && errlen) {
        snprintf(errbuf, errlen, "redis %s:%u: %s", host, port, c->errstr);
    }
    redisFree(c);
    if (b.oom) {
        free(b.s);
        return SLUICE_ENOMEM;
    }
    if (failed) {
        free(b.s);
        return SLUICE_EIO;
    }
    *out = b.s;
    return SLUICE_OK;
}

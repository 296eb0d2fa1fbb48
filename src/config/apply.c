/*
 * src/config/apply.c - moving a running service to a new config (reload).
 *
 * Purpose. An operator edits sluice.yaml and sends SIGHUP: K, timeouts and
 * sampling change without a restart; a bad file is refused and the running
 * config stays. Both halves matter: a reload that half-applies leaves the
 * service in a state no file describes.
 *
 * Design: three passes over (current, next), matched by pool name.
 *   1. Plan: for each field, classify the difference as live (applied by a
 *      pool setter), declaration (just recorded: rationale, ops fields), or
 *      restart-only (logged, not applied). Check every live change that can
 *      fail before any is made: a new K must be > 0 and >= the running
 *      min_workers (sluice_pool_resize would refuse it otherwise).
 *   2. Build the config that will be in force, as a fresh copy: next's
 *      live and declared values, current's restart-only values. If the
 *      copy cannot be built (ENOMEM), nothing has been touched yet.
 *   3. Apply to the pools and log each change. The setters for timeouts
 *      and sampling cannot fail; only resize can (SLUICE_ECLOSED when a
 *      drain began in between), and then the message says which pools
 *      were already changed.
 *
 * Thread-safety: one reloader at a time (the caller serialises, typically
 * the lifecycle's signal thread); the pools are used by other threads
 * throughout, which the pool setters allow.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

static void logf_(sluice_config_log_fn log, void *user, const char *fmt, ...) SLUICE_PRINTF(3, 4);
static void logf_(sluice_config_log_fn log, void *user, const char *fmt, ...)
{
    if (!log) {
        return;
    }
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    log(user, line);
}

static bool str_eq(const char *a, const char *b)
{
    if (!a || !b) {
        return a == b;
    }
    return strcmp(a, b) == 0;
}

static bool buckets_eq(const sluice_config_pool *a, const sluice_config_pool *b)
{
    if (a->histogram_bucket_count != b->histogram_bucket_count) {
        return false;
    }
    for (size_t i = 0; i < a->histogram_bucket_count; i++) {
        if (a->histogram_buckets[i] != b->histogram_buckets[i]) {
            return false;
        }
    }
    return true;
}

/* "auto" or the number, for log lines about timing_sample_every. */
static const char *sample_name(unsigned every, char *buf, size_t len)
{
    if (every == SLUICE_TIMING_SAMPLE_AUTO) {
        return "auto";
    }
    snprintf(buf, len, "%u", every);
    return buf;
}

static const char *dur(uint64_t ns, char *buf, size_t len)
{
    return sluice_config_format_duration(ns, buf, len);
}

/* Log restart-only differences of one pool. */
static void log_restart_only(const sluice_config_pool *o, const sluice_config_pool *n,
                             sluice_config_log_fn log, void *user)
{
    const char *nm = o->name;
    if (o->queue_capacity != n->queue_capacity) {
        logf_(log, user, "pool %s: queue_capacity %zu -> %zu not applied: needs a restart", nm,
              o->queue_capacity, n->queue_capacity);
    }
    if (o->overflow != n->overflow) {
        logf_(log, user, "pool %s: overflow %s -> %s not applied: needs a restart", nm,
              sluice_overflow_name(o->overflow), sluice_overflow_name(n->overflow));
    }
    if (o->min_workers != n->min_workers) {
        logf_(log, user, "pool %s: min_workers %u -> %u not applied: needs a restart", nm, o->min_workers,
              n->min_workers);
    }
    if (o->prewarm != n->prewarm) {
        logf_(log, user, "pool %s: prewarm not applied: needs a restart", nm);
    }
    if (o->fault_policy != n->fault_policy) {
        logf_(log, user, "pool %s: fault_policy not applied: needs a restart", nm);
    }
    if (!buckets_eq(o, n)) {
        logf_(log, user, "pool %s: histogram_buckets not applied: needs a restart", nm);
    }
    if (o->timing != n->timing) {
        logf_(log, user, "pool %s: timing not applied: needs a restart", nm);
    }
    if (o->stack_size != n->stack_size) {
        logf_(log, user, "pool %s: stack_size not applied: needs a restart", nm);
    }
}

/* Copy next's live and declared fields of a pool into dst (a pool of the
 * new config being built in c). */
static void take_live(cfg_impl *c, sluice_config_pool *dst, const sluice_config_pool *n)
{
    dst->workers = n->workers;
    dst->submit_timeout_ns = n->submit_timeout_ns;
    dst->idle_expiry_ns = n->idle_expiry_ns;
    dst->drain_timeout_ns = n->drain_timeout_ns;
    dst->timing_sample_every = n->timing_sample_every;
    dst->rationale = sluice__cfg_strdup(c, n->rationale);
    dst->downstream = sluice__cfg_strdup(c, n->downstream);
    dst->kind = n->kind;
    dst->caller_deadline_ns = n->caller_deadline_ns;
    dst->alert_slow_task_p99_ns = n->alert_slow_task_p99_ns;
    dst->alert_submit_wait_p99_ns = n->alert_submit_wait_p99_ns;
    dst->demo_latency_p50_ns = n->demo_latency_p50_ns;
    dst->demo_latency_p99_ns = n->demo_latency_p99_ns;
    dst->demo_weight = n->demo_weight;
    static const sluice_pool_key live[] = {
        SLUICE_PK_WORKERS,
        SLUICE_PK_SUBMIT_TIMEOUT,
        SLUICE_PK_IDLE_EXPIRY,
        SLUICE_PK_DRAIN_TIMEOUT,
        SLUICE_PK_TIMING_SAMPLE_EVERY,
        SLUICE_PK_RATIONALE,
        SLUICE_PK_DOWNSTREAM,
        SLUICE_PK_KIND,
        SLUICE_PK_CALLER_DEADLINE,
        SLUICE_PK_ALERT_SLOW_TASK_P99,
        SLUICE_PK_ALERT_SUBMIT_WAIT_P99,
        SLUICE_PK_DEMO_LATENCY_P50,
        SLUICE_PK_DEMO_LATENCY_P99,
        SLUICE_PK_DEMO_WEIGHT,
    };
    for (size_t i = 0; i < sizeof live / sizeof live[0]; i++) {
        uint64_t bit = (uint64_t)1 << live[i];
        dst->set = (dst->set & ~bit) | (n->set & bit);
        dst->pos[live[i]] = n->pos[live[i]];
        if (dst->pos[live[i]].file) {
            dst->pos[live[i]].file = c->pub.source;
        }
        if (dst->pos[live[i]].env) {
            dst->pos[live[i]].env = sluice__cfg_strdup(c, dst->pos[live[i]].env);
        }
    }
}

sluice_err sluice_config_apply(sluice_config **current, const sluice_config *next, sluice_pool *const *pools,
                               sluice_config_log_fn log, void *user, char *errbuf, size_t errlen)
{
    if (errbuf && errlen) {
        errbuf[0] = '\0';
    }
    if (!current || !*current || !next) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "sluice_config_apply: current and next are required");
        }
        return SLUICE_EINVAL;
    }
    const sluice_config *cur = *current;
    char a[32], b[32];

    /* Pass 1: check what could fail. */
    cfg_errs *e = calloc(1, sizeof *e);
    if (!e) {
        return SLUICE_ENOMEM;
    }
    for (size_t i = 0; i < cur->pool_count; i++) {
        const sluice_config_pool *o = &cur->pools[i];
        const sluice_config_pool *n = sluice_config_find_pool(next, o->name);
        if (!n || n->workers == o->workers) {
            continue;
        }
        if (n->workers == 0 || n->workers < o->min_workers) {
            sluice__cfg_errf(
                e, SLUICE_EINVAL, &n->pos[SLUICE_PK_WORKERS],
                "pool %s: workers %u cannot be applied: the running min_workers is %u (a min_workers "
                "change needs a restart)",
                o->name, n->workers, o->min_workers);
        }
    }
    if (e->count) {
        sluice__cfg_errs_copy(e, errbuf, errlen);
        logf_(log, user, "reload refused, running config unchanged: %s", e->buf);
        free(e);
        return SLUICE_EINVAL;
    }
    free(e);

    /* Pass 2: build the config that will be in force. */
    cfg_impl *c = sluice__cfg_clone(cur);
    if (!c) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "reload: out of memory; running config unchanged");
        }
        return SLUICE_ENOMEM;
    }
    for (size_t i = 0; i < cur->pool_count; i++) {
        const sluice_config_pool *n = sluice_config_find_pool(next, cur->pools[i].name);
        if (n) {
            take_live(c, &c->pub.pools[i], n);
        }
    }
    sluice_config_service *s = &c->pub.service;
    s->drain_budget_ns = next->service.drain_budget_ns;
    s->shutdown_grace_ns = next->service.shutdown_grace_ns;
    s->orchestrator_grace_ns = next->service.orchestrator_grace_ns;
    s->runbook_base_url = sluice__cfg_strdup(c, next->service.runbook_base_url);
    /* Declarations: the downstream budget is replaced whole. */
    free(c->pub.downstreams);
    c->pub.downstreams = NULL;
    c->pub.downstream_count = 0;
    if (next->downstream_count) {
        cfg_impl *tmp = sluice__cfg_clone(next);
        if (!tmp) {
            sluice_config_free(&c->pub);
            return SLUICE_ENOMEM;
        }
        /* Move tmp's downstream array and its arena into c. */
        c->pub.downstreams = tmp->pub.downstreams;
        c->pub.downstream_count = tmp->pub.downstream_count;
        tmp->pub.downstreams = NULL;
        tmp->pub.downstream_count = 0;
        cfg_block **tail = &c->blocks;
        while (*tail) {
            tail = &(*tail)->next;
        }
        *tail = tmp->blocks;
        tmp->blocks = NULL;
        sluice_config_free(&tmp->pub);
    }

    /* Pass 3: apply and log. */
    unsigned changes = 0;
    sluice_err result = SLUICE_OK;
    char resized[512] = "";
    size_t rlen = 0;
    for (size_t i = 0; i < cur->pool_count; i++) {
        const sluice_config_pool *o = &cur->pools[i];
        const sluice_config_pool *n = sluice_config_find_pool(next, o->name);
        sluice_pool *pool = pools ? pools[i] : NULL;
        if (!n) {
            logf_(log, user, "pool %s: removed from the file; not applied: removing a pool needs a restart",
                  o->name);
            changes++;
            continue;
        }
        if (o->workers != n->workers) {
            sluice_err r = pool ? sluice_pool_resize(pool, n->workers) : SLUICE_OK;
            if (r != SLUICE_OK) {
                if (result == SLUICE_OK) {
                    result = r;
                    if (errbuf && errlen) {
                        snprintf(errbuf, errlen, "pool %s: resize to %u failed: %s; already resized:%s",
                                 o->name, n->workers, sluice_strerror(r), rlen ? resized : " none");
                    }
                }
                logf_(log, user, "pool %s: workers %u -> %u failed: %s", o->name, o->workers, n->workers,
                      sluice_strerror(r));
                c->pub.pools[i].workers = o->workers;
            } else {
                logf_(log, user, "pool %s: workers %u -> %u (applied)", o->name, o->workers, n->workers);
                if (rlen + strlen(o->name) + 2 < sizeof resized) {
                    rlen += (size_t)snprintf(resized + rlen, sizeof resized - rlen, " %s", o->name);
                }
            }
            changes++;
        }
        if (o->submit_timeout_ns != n->submit_timeout_ns) {
            if (pool) {
                sluice_pool_set_submit_timeout(pool, n->submit_timeout_ns);
            }
            logf_(log, user, "pool %s: submit_timeout %s -> %s (applied)", o->name,
                  dur(o->submit_timeout_ns, a, 32), dur(n->submit_timeout_ns, b, 32));
            changes++;
        }
        if (o->idle_expiry_ns != n->idle_expiry_ns) {
            if (pool) {
                sluice_pool_set_idle_expiry(pool, n->idle_expiry_ns);
            }
            logf_(log, user, "pool %s: idle_expiry %s -> %s (applied)", o->name,
                  dur(o->idle_expiry_ns, a, 32), dur(n->idle_expiry_ns, b, 32));
            changes++;
        }
        if (o->timing_sample_every != n->timing_sample_every) {
            if (pool) {
                sluice_pool_set_timing_sample(pool, n->timing_sample_every);
            }
            logf_(log, user, "pool %s: timing_sample_every %s -> %s (applied)", o->name,
                  sample_name(o->timing_sample_every, a, sizeof a), sample_name(n->timing_sample_every, b, sizeof b));
            changes++;
        }
        if (o->drain_timeout_ns != n->drain_timeout_ns) {
            logf_(log, user, "pool %s: drain_timeout %s -> %s (applied at the next drain)", o->name,
                  dur(o->drain_timeout_ns, a, 32), dur(n->drain_timeout_ns, b, 32));
            changes++;
        }
        if (!str_eq(o->rationale, n->rationale) || !str_eq(o->downstream, n->downstream) ||
            o->kind != n->kind || o->caller_deadline_ns != n->caller_deadline_ns ||
            o->alert_slow_task_p99_ns != n->alert_slow_task_p99_ns ||
            o->alert_submit_wait_p99_ns != n->alert_submit_wait_p99_ns ||
            o->demo_latency_p50_ns != n->demo_latency_p50_ns ||
            o->demo_latency_p99_ns != n->demo_latency_p99_ns || o->demo_weight != n->demo_weight) {
            logf_(log, user, "pool %s: declarations (rationale, kind, downstream, alerts, demo) updated",
                  o->name);
            changes++;
        }
        log_restart_only(o, n, log, user);
    }
    for (size_t i = 0; i < next->pool_count; i++) {
        if (!sluice_config_find_pool(cur, next->pools[i].name)) {
            logf_(log, user, "pool %s: new in the file; not applied: adding a pool needs a restart",
                  next->pools[i].name);
            changes++;
        }
    }
    const sluice_config_service *os = &cur->service, *ns = &next->service;
    if (os->drain_budget_ns != ns->drain_budget_ns) {
        logf_(log, user, "service: drain_budget %s -> %s (applied)", dur(os->drain_budget_ns, a, 32),
              dur(ns->drain_budget_ns, b, 32));
        changes++;
    }
    if (os->shutdown_grace_ns != ns->shutdown_grace_ns) {
        logf_(log, user, "service: shutdown_grace %s -> %s (applied)", dur(os->shutdown_grace_ns, a, 32),
              dur(ns->shutdown_grace_ns, b, 32));
        changes++;
    }
    if (os->orchestrator_grace_ns != ns->orchestrator_grace_ns) {
        logf_(log, user, "service: orchestrator_grace %s -> %s (applied)",
              dur(os->orchestrator_grace_ns, a, 32), dur(ns->orchestrator_grace_ns, b, 32));
        changes++;
    }
    if (!str_eq(os->runbook_base_url, ns->runbook_base_url)) {
        logf_(log, user, "service: runbook_base_url updated (applied)");
        changes++;
    }
    if (os->saturation_threshold_ns != ns->saturation_threshold_ns) {
        logf_(log, user, "service: saturation_threshold %s -> %s not applied: needs a restart",
              dur(os->saturation_threshold_ns, a, 32), dur(ns->saturation_threshold_ns, b, 32));
    }
    if (!str_eq(os->listen, ns->listen)) {
        logf_(log, user, "service: listen %s -> %s not applied: needs a restart", os->listen, ns->listen);
    }
    if (!str_eq(os->name, ns->name)) {
        logf_(log, user, "service: name not applied: needs a restart");
    }
    if (changes == 0) {
        logf_(log, user, "reload: no change");
    }
    sluice_config_free(*current);
    *current = &c->pub;
    return result;
}

sluice_err sluice_config_reload(sluice_config **current, const char *path,
                                const sluice_config_load_opts *opts, sluice_pool *const *pools,
                                sluice_config_log_fn log, void *user, char *errbuf, size_t errlen)
{
    char local[4096];
    char *eb = errbuf && errlen ? errbuf : local;
    size_t el = errbuf && errlen ? errlen : sizeof local;
    sluice_config *next = NULL;
    sluice_err r = sluice_config_load_file(path, opts, &next, eb, el);
    if (r != SLUICE_OK) {
        logf_(log, user, "reload refused, running config unchanged: %s", eb);
        return r;
    }
    r = sluice_config_apply(current, next, pools, log, user, eb, el);
    sluice_config_free(next);
    return r;
}

/*
 * src/config/write.c - writing a config back out as YAML, and deep copies.
 *
 * Purpose. `sluice demo --print-config` shows the built-in config so an
 * operator can start from it, and the ops tools print the config they
 * derived their output from. The output must load back to the same config:
 * every key is written (defaults included), strings are double-quoted and
 * escaped, durations use the largest unit that is exact, and bucket bounds
 * use the shortest decimal that reads back to the same double. The test
 * suite checks write(load(write(x))) == write(x).
 *
 * Keys that hold nothing (no rationale, no downstream, ops thresholds of
 * zero) are left out, so they stay "not given" after the round trip.
 *
 * No locks, no global state.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

static void put_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            fputc('\\', f);
            fputc(ch, f);
        } else if (ch == '\n') {
            fputs("\\n", f);
        } else if (ch == '\t') {
            fputs("\\t", f);
        } else if (ch < 0x20) {
            fprintf(f, "\\x%02x", ch);
        } else {
            fputc(ch, f);
        }
    }
    fputc('"', f);
}

static void put_double(FILE *f, double v)
{
    char buf[40];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) {
            break;
        }
    }
    /* YAML reads "1e-05" as a string in some readers; ours goes through
     * strtod, which takes it, so the short form is kept. */
    fputs(buf, f);
}

static void put_dur(FILE *f, const char *indent, const char *key, uint64_t ns)
{
    char b[32];
    fprintf(f, "%s%s: %s\n", indent, key, sluice_config_format_duration(ns, b, sizeof b));
}

sluice_err sluice_config_write(const sluice_config *cfg, FILE *f)
{
    if (!cfg || !f) {
        return SLUICE_EINVAL;
    }
    const sluice_config_service *s = &cfg->service;
    fprintf(f, "# sluice.yaml: reference in docs/config.md\n");
    fprintf(f, "service:\n  name: ");
    put_str(f, s->name ? s->name : "sluice");
    fprintf(f, "\n  listen: ");
    put_str(f, s->listen ? s->listen : "127.0.0.1:9464");
    fputc('\n', f);
    put_dur(f, "  ", "drain_budget", s->drain_budget_ns);
    put_dur(f, "  ", "shutdown_grace", s->shutdown_grace_ns);
    put_dur(f, "  ", "orchestrator_grace", s->orchestrator_grace_ns);
    put_dur(f, "  ", "saturation_threshold", s->saturation_threshold_ns);
    if (s->runbook_base_url) {
        fprintf(f, "  runbook_base_url: ");
        put_str(f, s->runbook_base_url);
        fputc('\n', f);
    }
    fprintf(f, "pools:\n");
    for (size_t i = 0; i < cfg->pool_count; i++) {
        const sluice_config_pool *p = &cfg->pools[i];
        fprintf(f, "  - name: ");
        put_str(f, p->name ? p->name : "");
        fprintf(f, "\n    workers: %u\n", p->workers);
        if (p->rationale) {
            fprintf(f, "    rationale: ");
            put_str(f, p->rationale);
            fputc('\n', f);
        }
        fprintf(f, "    min_workers: %u\n", p->min_workers);
        fprintf(f, "    queue_capacity: %zu\n", p->queue_capacity);
        fprintf(f, "    overflow: %s\n", sluice_overflow_name(p->overflow));
        if (p->overflow == SLUICE_OVERFLOW_BLOCK) {
            put_dur(f, "    ", "submit_timeout", p->submit_timeout_ns);
        }
        put_dur(f, "    ", "idle_expiry", p->idle_expiry_ns);
        put_dur(f, "    ", "drain_timeout", p->drain_timeout_ns);
        fprintf(f, "    prewarm: %s\n", p->prewarm ? "true" : "false");
        fprintf(f, "    fault_policy: %s\n", sluice_fault_mode_name(p->fault_policy));
        if (p->histogram_bucket_count) {
            fprintf(f, "    histogram_buckets: [");
            for (size_t b = 0; b < p->histogram_bucket_count; b++) {
                if (b) {
                    fputs(", ", f);
                }
                put_double(f, p->histogram_buckets[b]);
            }
            fprintf(f, "]\n");
        }
        if (p->timing_sample_every == SLUICE_TIMING_SAMPLE_AUTO) {
            fprintf(f, "    timing_sample_every: auto\n");
        } else {
            fprintf(f, "    timing_sample_every: %u\n", p->timing_sample_every);
        }
        fprintf(f, "    timing: %s\n", p->timing ? "true" : "false");
        if (p->stack_size) {
            fprintf(f, "    stack_size: %zu\n", p->stack_size);
        }
        if (p->kind != SLUICE_POOL_KIND_UNSET) {
            fprintf(f, "    kind: %s\n", sluice_pool_kind_name(p->kind));
        }
        if (p->downstream) {
            fprintf(f, "    downstream: ");
            put_str(f, p->downstream);
            fputc('\n', f);
        }
        if (p->caller_deadline_ns) {
            put_dur(f, "    ", "caller_deadline", p->caller_deadline_ns);
        }
        if (p->alert_slow_task_p99_ns) {
            put_dur(f, "    ", "alert_slow_task_p99", p->alert_slow_task_p99_ns);
        }
        if (p->alert_submit_wait_p99_ns) {
            put_dur(f, "    ", "alert_submit_wait_p99", p->alert_submit_wait_p99_ns);
        }
        if (p->demo_latency_p50_ns) {
            put_dur(f, "    ", "demo_latency_p50", p->demo_latency_p50_ns);
        }
        if (p->demo_latency_p99_ns) {
            put_dur(f, "    ", "demo_latency_p99", p->demo_latency_p99_ns);
        }
        if (sluice_config_pool_has(p, SLUICE_PK_DEMO_WEIGHT)) {
            fprintf(f, "    demo_weight: ");
            put_double(f, p->demo_weight);
            fputc('\n', f);
        }
    }
    if (cfg->downstream_count) {
        fprintf(f, "downstream_budget:\n");
        for (size_t i = 0; i < cfg->downstream_count; i++) {
            const sluice_config_downstream *d = &cfg->downstreams[i];
            fprintf(f, "  - downstream: ");
            put_str(f, d->name ? d->name : "");
            fprintf(f, "\n    total_limit: %u\n", d->total_limit);
            if (d->share_count) {
                fprintf(f, "    shares:\n");
                for (size_t j = 0; j < d->share_count; j++) {
                    fprintf(f, "      ");
                    put_str(f, d->shares[j].service);
                    fprintf(f, ": %u\n", d->shares[j].limit);
                }
            }
        }
    }
    return ferror(f) ? SLUICE_EIO : SLUICE_OK;
}

/* ---- deep copies ---------------------------------------------------- */

static sluice_config_pos copy_pos(cfg_impl *c, const sluice_config_pos *p)
{
    sluice_config_pos r = *p;
    if (r.file) {
        r.file = c->pub.source;
    }
    if (r.env) {
        r.env = sluice__cfg_strdup(c, r.env);
    }
    return r;
}

void sluice__cfg_copy_pool(cfg_impl *c, sluice_config_pool *dst, const sluice_config_pool *src)
{
    *dst = *src;
    dst->name = sluice__cfg_strdup(c, src->name);
    dst->rationale = sluice__cfg_strdup(c, src->rationale);
    dst->downstream = sluice__cfg_strdup(c, src->downstream);
    if (src->histogram_bucket_count) {
        dst->histogram_buckets = sluice__cfg_alloc(c, src->histogram_bucket_count * sizeof(double));
        if (dst->histogram_buckets) {
            memcpy(dst->histogram_buckets, src->histogram_buckets,
                   src->histogram_bucket_count * sizeof(double));
        }
    } else {
        dst->histogram_buckets = NULL;
    }
    for (int k = 0; k < SLUICE_PK_COUNT_; k++) {
        dst->pos[k] = copy_pos(c, &src->pos[k]);
    }
    dst->entry_pos = copy_pos(c, &src->entry_pos);
}

cfg_impl *sluice__cfg_clone(const sluice_config *src)
{
    cfg_impl *c = sluice__cfg_new(src->source);
    if (!c) {
        return NULL;
    }
    sluice_config_service *s = &c->pub.service;
    *s = src->service;
    s->name = sluice__cfg_strdup(c, src->service.name);
    s->listen = sluice__cfg_strdup(c, src->service.listen);
    s->runbook_base_url = sluice__cfg_strdup(c, src->service.runbook_base_url);
    s->pos_listen = copy_pos(c, &src->service.pos_listen);
    s->pos_drain_budget = copy_pos(c, &src->service.pos_drain_budget);
    s->pos_shutdown_grace = copy_pos(c, &src->service.pos_shutdown_grace);
    s->pos_orchestrator_grace = copy_pos(c, &src->service.pos_orchestrator_grace);
    s->pos_saturation_threshold = copy_pos(c, &src->service.pos_saturation_threshold);
    for (size_t i = 0; i < src->pool_count; i++) {
        sluice_config_pool *p = sluice__cfg_add_pool(c);
        if (!p) {
            sluice_config_free(&c->pub);
            return NULL;
        }
        sluice__cfg_copy_pool(c, p, &src->pools[i]);
    }
    if (src->downstream_count) {
        c->pub.downstreams = calloc(src->downstream_count, sizeof *c->pub.downstreams);
        if (!c->pub.downstreams) {
            sluice_config_free(&c->pub);
            return NULL;
        }
        for (size_t i = 0; i < src->downstream_count; i++) {
            const sluice_config_downstream *sd = &src->downstreams[i];
            sluice_config_downstream *d = &c->pub.downstreams[c->pub.downstream_count++];
            *d = *sd;
            d->name = sluice__cfg_strdup(c, sd->name);
            d->pos = copy_pos(c, &sd->pos);
            d->shares = sd->share_count ? sluice__cfg_alloc(c, sd->share_count * sizeof *d->shares) : NULL;
            if (sd->share_count && !d->shares) {
                sluice_config_free(&c->pub);
                return NULL;
            }
            for (size_t j = 0; j < sd->share_count; j++) {
                d->shares[j] = sd->shares[j];
                d->shares[j].service = sluice__cfg_strdup(c, sd->shares[j].service);
                d->shares[j].pos = copy_pos(c, &sd->shares[j].pos);
            }
        }
    }
    return c;
}

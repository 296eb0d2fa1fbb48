/*
 * src/config/config.c - the config object: its arena, its error lines,
 * its registered extensions, and the accessors a service uses.
 *
 * Ownership. A loaded config owns every string and array it points to
 * through an arena of blocks (sluice__cfg_alloc) freed in one sweep by
 * sluice_config_free; only the pools and downstreams arrays, which grow,
 * are separate allocations. The loader builds a fresh config and hands it
 * out only when no error was found (yaml.c), so a bad file never
 * half-applies; apply.c keeps the same promise for a reload.
 *
 * No global state; no locks. Thread-safe on distinct configs; a finished
 * config is immutable and may be read from any number of threads.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rules.h"
#include "config/config_internal.h"
#include "core/internal.h"

/* ---- arena ---------------------------------------------------------- */

cfg_impl *sluice__cfg_new(const char *source)
{
    cfg_impl *c = calloc(1, sizeof *c);
    if (!c) {
        return NULL;
    }
    c->pub.source = sluice__cfg_strdup(c, source ? source : "<string>");
    cfg_slot slot, cluster;
    sluice__cfg_service_slots(&c->pub.service, &slot, 1);
    sluice__cfg_cluster_slots(&c->pub.cluster, &cluster, 1);
    if (!c->pub.source || !sluice__cfg_defaults(c, &slot) || !sluice__cfg_defaults(c, &cluster)) {
        sluice_config_free(&c->pub);
        return NULL;
    }
    return c;
}

bool sluice__cfg_set_exts(cfg_impl *c, const sluice_config_extension *const *exts, unsigned n)
{
    c->ext_count = 0;
    for (unsigned i = 0; i < n && i < SLUICE__CONFIG_MAX_EXTS; i++) {
        c->exts[c->ext_count++] = exts[i];
    }
    return sluice__cfg_attach_exts(c, SLUICE_CONFIG_SECTION_SERVICE, &c->pub.service.ext,
                                   &c->pub.service.ext_count);
}

bool sluice__cfg_register_exts(cfg_impl *c, const sluice_config_load_opts *opts, cfg_errs *e, bool *oom)
{
    const sluice_config_extension *list[SLUICE__CONFIG_MAX_EXTS];
    unsigned n = 0;
    sluice_config_pos src = {c->pub.source, 0, 0, NULL};
    if (!(opts && opts->no_default_extensions)) {
        list[n++] = &sluice_config_ext_ops;
        list[n++] = &sluice_config_ext_demo;
        list[n++] = &sluice_config_ext_ops_service;
    }
    for (const sluice_config_extension *const *x = opts ? opts->extensions : NULL; x && *x; x++) {
        const sluice_config_extension *ext = *x;
        if (n == SLUICE__CONFIG_MAX_EXTS) {
            sluice__cfg_errf(e, SLUICE_EINVAL, &src, "sluice_config_load_opts.extensions: more than %d",
                             SLUICE__CONFIG_MAX_EXTS);
            return false;
        }
        if (!ext->name || !ext->keys || ext->key_count == 0 || ext->key_count > 64 ||
            (ext->section != SLUICE_CONFIG_SECTION_SERVICE && ext->section != SLUICE_CONFIG_SECTION_POOL)) {
            sluice__cfg_errf(e, SLUICE_EINVAL, &src,
                             "sluice_config_load_opts.extensions: extension \"%s\" needs a name, a section "
                             "(service or pool) and 1..64 keys",
                             ext->name ? ext->name : "");
            return false;
        }
        /* A key must name one thing: not a library key, not another
         * extension's key of the same section. */
        const char *clash = NULL;
        unsigned count = 0;
        const sluice_config_key *lib = sluice_config_schema(ext->section, &count);
        for (unsigned k = 0; k < ext->key_count && !clash; k++) {
            for (unsigned j = 0; j < count && !clash; j++) {
                if (sluice__cfg_key_eq(ext->keys[k].name, lib[j].name)) {
                    clash = ext->keys[k].name;
                }
            }
            for (unsigned m = 0; m < n && !clash; m++) {
                if (list[m] == ext) {
                    clash = ext->keys[k].name; /* registered twice */
                }
                for (unsigned j = 0; list[m]->section == ext->section && j < list[m]->key_count && !clash;
                     j++) {
                    if (sluice__cfg_key_eq(ext->keys[k].name, list[m]->keys[j].name)) {
                        clash = ext->keys[k].name;
                    }
                }
            }
        }
        if (clash) {
            sluice__cfg_errf(e, SLUICE_EINVAL, &src,
                             "sluice_config_load_opts.extensions: \"%s\": key \"%s\" is already defined (or "
                             "the extension is registered twice)",
                             ext->name, clash);
            return false;
        }
        list[n++] = ext;
    }
    if (!sluice__cfg_set_exts(c, list, n)) {
        *oom = true;
        return false;
    }
    return true;
}

void *sluice__cfg_alloc(cfg_impl *c, size_t size)
{
    cfg_block *b = calloc(1, sizeof *b + size);
    if (!b) {
        return NULL;
    }
    b->next = c->blocks;
    c->blocks = b;
    return b->data;
}

char *sluice__cfg_strdup(cfg_impl *c, const char *s)
{
    if (!s) {
        return NULL;
    }
    size_t n = strlen(s);
    char *d = sluice__cfg_alloc(c, n + 1);
    if (d) {
        memcpy(d, s, n + 1);
    }
    return d;
}

sluice_config_pool *sluice__cfg_add_pool(cfg_impl *c)
{
    if (c->pub.pool_count == c->pool_cap) {
        size_t cap = c->pool_cap ? c->pool_cap * 2 : 4;
        sluice_config_pool *np = realloc(c->pub.pools, cap * sizeof *np);
        if (!np) {
            return NULL;
        }
        c->pub.pools = np;
        c->pool_cap = cap;
    }
    sluice_config_pool *p = &c->pub.pools[c->pub.pool_count];
    memset(p, 0, sizeof *p);
    cfg_slot slot;
    sluice__cfg_pool_slots(p, &slot, 1);
    if (!sluice__cfg_defaults(c, &slot) ||
        !sluice__cfg_attach_exts(c, SLUICE_CONFIG_SECTION_POOL, &p->ext, &p->ext_count)) {
        return NULL;
    }
    c->pub.pool_count++;
    return p;
}

void sluice_config_free(sluice_config *cfg)
{
    if (!cfg) {
        return;
    }
    cfg_impl *c = (cfg_impl *)cfg;
    cfg_block *b = c->blocks;
    while (b) {
        cfg_block *next = b->next;
        free(b);
        b = next;
    }
    free(c->pub.pools);
    free(c->pub.downstreams);
    free(c);
}

/* ---- errors --------------------------------------------------------- */

void sluice__cfg_errf(cfg_errs *e, sluice_err kind, const sluice_config_pos *pos, const char *fmt, ...)
{
    if (e->count == 0) {
        e->first = kind;
    }
    e->count++;
    if (e->count > SLUICE__CONFIG_MAX_ERRORS) {
        return;
    }
    char line[1024];
    size_t n = 0;
    if (pos && pos->env) {
        n = (size_t)snprintf(line, sizeof line, "env %s: ", pos->env);
    } else if (pos && pos->file && pos->line) {
        n = (size_t)snprintf(line, sizeof line, "%s:%u:%u: ", pos->file, pos->line, pos->column);
    } else if (pos && pos->file) {
        n = (size_t)snprintf(line, sizeof line, "%s: ", pos->file);
    }
    if (n >= sizeof line) {
        n = sizeof line - 1;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    size_t ll = strlen(line);
    if (e->len + ll + 2 > sizeof e->buf) {
        return;
    }
    if (e->len) {
        e->buf[e->len++] = '\n';
    }
    memcpy(e->buf + e->len, line, ll + 1);
    e->len += ll;
}

void sluice__cfg_errs_label(cfg_errs *e, size_t from, const char *path, const char *what, const char *value)
{
    if (from >= e->len) {
        return;
    }
    char shown[72];
    size_t n = 0;
    for (; value[n] && n < 64; n++) {
        shown[n] = sluice__name_char_ok(value[n]) || value[n] == '*' ? value[n] : '?';
    }
    snprintf(shown + n, sizeof shown - n, "%s", value[n] ? "..." : "");
    char label[128];
    snprintf(label, sizeof label, " (%s \"%s\")", what, shown);
    size_t llen = strlen(label);
    /* The lines written since `from`, each after a '\n' unless first. */
    char old[sizeof e->buf];
    size_t olen = e->len - from;
    memcpy(old, e->buf + from, olen);
    old[olen] = '\0';
    e->len = from;
    e->buf[e->len] = '\0';
    char *line = old;
    if (from > 0 && *line == '\n') {
        line++;
    }
    while (line) {
        char *next = strchr(line, '\n');
        if (next) {
            *next++ = '\0';
        }
        size_t ll = strlen(line);
        const char *at = strstr(line, path);
        const char *colon = at ? strstr(at + strlen(path), ": ") : NULL;
        bool fits = colon && e->len + ll + llen + 2 <= sizeof e->buf;
        if (!fits && e->len + ll + 2 > sizeof e->buf) {
            break; /* the labels before it took its room: dropped, as errf drops a line with no room */
        }
        if (e->len) {
            e->buf[e->len++] = '\n';
        }
        if (fits) {
            size_t head = (size_t)(colon - line);
            memcpy(e->buf + e->len, line, head);
            memcpy(e->buf + e->len + head, label, llen);
            memcpy(e->buf + e->len + head + llen, colon, ll - head + 1);
            e->len += ll + llen;
        } else {
            memcpy(e->buf + e->len, line, ll + 1);
            e->len += ll;
        }
        line = next;
    }
}

void sluice__cfg_errs_copy(const cfg_errs *e, char *errbuf, size_t errlen)
{
    if (!errbuf || errlen == 0) {
        return;
    }
    if (e->count > SLUICE__CONFIG_MAX_ERRORS) {
        snprintf(errbuf, errlen, "%s\n(%u more errors not shown)", e->buf,
                 e->count - SLUICE__CONFIG_MAX_ERRORS);
    } else {
        snprintf(errbuf, errlen, "%s", e->buf);
    }
}

/* ---- accessors ------------------------------------------------------ */

const sluice_config_pool *sluice_config_find_pool(const sluice_config *cfg, const char *name)
{
    if (!cfg || !name) {
        return NULL;
    }
    for (size_t i = 0; i < cfg->pool_count; i++) {
        if (cfg->pools[i].name && strcmp(cfg->pools[i].name, name) == 0) {
            return &cfg->pools[i];
        }
    }
    return NULL;
}

static sluice_tenant_config tenant_config(const sluice_config_tenant *t)
{
    sluice_tenant_config tc = {.weight = t->weight,
                               .queued_limit = t->queued_limit,
                               .running_limit = t->running_limit,
                               .strict = t->strict,
                               .overflow = t->overflow};
    return tc;
}

void sluice_config_pool_to_pool_config(const sluice_config_pool *p, sluice_pool_config *out)
{
    sluice_pool_config_init(out);
    out->name = p->name;
    out->workers = p->workers;
    out->min_workers = p->min_workers;
    out->queue_capacity = p->queue_capacity;
    out->overflow = p->overflow;
    out->submit_timeout_ns = p->submit_timeout_ns;
    out->idle_expiry_ns = p->idle_expiry_ns;
    out->prewarm = p->prewarm;
    out->stack_size = p->stack_size;
    out->fault_mode = p->fault_policy;
    out->histogram_buckets = p->histogram_bucket_count ? p->histogram_buckets : NULL;
    out->histogram_bucket_count = p->histogram_bucket_count;
    out->timing_sample_every = p->timing_sample_every;
    out->timing_disabled = !p->timing;
    out->queue_discipline = p->queue_discipline;
    if (p->queue_discipline == SLUICE_QUEUE_FAIR) {
        const sluice_config_tenant *any = NULL;
        for (size_t i = 0; i < p->tenant_count; i++) {
            if (p->tenants[i].name && strcmp(p->tenants[i].name, SLUICE_CONFIG_TENANT_DEFAULT) == 0) {
                any = &p->tenants[i];
            }
        }
        if (any) {
            out->fair.tenant_default = tenant_config(any);
        }
        out->fair.max_tenants = p->max_tenants;
        out->fair.shard_queues = p->tenant_shard_queues;
        out->fair.hand_size = p->tenant_hand_size;
        out->fair.idle_forget_ns = p->tenant_idle_forget_ns;
        out->fair.known_only = p->known_tenants_only;
    }
    out->overload = p->overload;
    out->overload_target_ns = p->overload_target_ns;
    out->overload_interval_ns = p->overload_interval_ns;
    out->overload_slough_ns = p->overload_slough_ns;
}

sluice_err sluice_config_pool_set_tenants(const sluice_config_pool *p, sluice_pool *pool, char *errbuf,
                                          size_t errlen)
{
    if (errbuf && errlen) {
        errbuf[0] = '\0';
    }
    if (!p || !pool) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "set tenants: %s is NULL", p ? "pool" : "the config entry");
        }
        return SLUICE_EINVAL;
    }
    if (p->queue_discipline != SLUICE_QUEUE_FAIR) {
        return SLUICE_OK; /* a fifo tier pool lists tenants only for the router */
    }
    for (size_t i = 0; i < p->tenant_count; i++) {
        const sluice_config_tenant *t = &p->tenants[i];
        if (!t->name || strcmp(t->name, SLUICE_CONFIG_TENANT_DEFAULT) == 0) {
            continue;
        }
        sluice_tenant_config tc = tenant_config(t);
        char why[512];
        sluice_err r = sluice_pool_tenant_set(pool, t->name, &tc, why, sizeof why);
        if (r != SLUICE_OK) {
            /* The library's message names the tenant and the field
             * ("tenant \"gold\": pool p is draining"); the index says
             * which entry of the file's list it was. */
            if (errbuf && errlen) {
                if (why[0]) {
                    snprintf(errbuf, errlen, "tenants[%zu]: %s", i, why);
                } else {
                    snprintf(errbuf, errlen, "tenants[%zu]: tenant \"%s\": %s", i, t->name,
                             sluice_strerror(r));
                }
            }
            return r;
        }
    }
    return SLUICE_OK;
}

/* ---- reloading `tenants:` (the row's hooks in schema.c) ------------------ */

/* The entry named exactly `name` (no "*" fallback), or NULL. */
static const sluice_config_tenant *tenant_exact(const sluice_config_pool *p, const char *name)
{
    for (size_t i = 0; i < p->tenant_count; i++) {
        if (p->tenants[i].name && strcmp(p->tenants[i].name, name) == 0) {
            return &p->tenants[i];
        }
    }
    return NULL;
}

static bool tenant_named(const sluice_config_tenant *t)
{
    return t->name && strcmp(t->name, SLUICE_CONFIG_TENANT_DEFAULT) != 0;
}

static bool tenant_config_eq(const sluice_tenant_config *a, const sluice_tenant_config *b)
{
    return a->weight == b->weight && a->queued_limit == b->queued_limit &&
           a->running_limit == b->running_limit && a->strict == b->strict && a->overflow == b->overflow;
}

/* The "*" entry's values: what sluice_config_pool_to_pool_config gives a
 * pool as fair.tenant_default. */
static sluice_tenant_config tenant_default_of(const sluice_config_pool *p)
{
    const sluice_config_tenant *any = tenant_exact(p, SLUICE_CONFIG_TENANT_DEFAULT);
    sluice_tenant_config none = {0};
    return any ? tenant_config(any) : none;
}

/* A tier pool's names are the router's, and the router is built once: a
 * change to which names it lists waits for a restart (their weights and
 * limits do not). */
bool sluice__cfg_tenants_restart_if(const sluice_config_pool *running, const sluice_config_pool *next,
                                    char *why, size_t len)
{
    if (!running->tier) {
        return false;
    }
    for (int pass = 0; pass < 2; pass++) {
        const sluice_config_pool *from = pass ? next : running, *to = pass ? running : next;
        for (size_t i = 0; i < from->tenant_count; i++) {
            const char *name = from->tenants[i].name;
            if (name && !tenant_exact(to, name)) {
                snprintf(why, len, "tier %s's tenants changed: \"%s\" %s; the router is built at start",
                         running->tier, name, pass ? "added" : "removed");
                return true;
            }
        }
    }
    return false;
}

/* A tenant setter's refusal in the form a load error takes (the file
 * position, the path, the item's label, then what is wrong):
 * `sluice.yaml:9:9: pools[0].tenants[2] (tenant "gold"): pool f is
 * draining`. The library's message opens with its subject (`tenant
 * "gold": `, `tenants' default: `), which the label says already; a
 * refusal with no message says the error's text. `label` is what follows
 * "tenant" in the parentheses. */
static void tenant_why(char *why, size_t len, const sluice_config_pos *pos, const char *path,
                       const char *index, const char *label, const char *subject, const char *msg,
                       sluice_err r)
{
    if (!why || !len) {
        return;
    }
    const char *what = msg && msg[0] ? msg : sluice_strerror(r);
    size_t sl = strlen(subject);
    if (strncmp(what, subject, sl) == 0 && strncmp(what + sl, ": ", 2) == 0) {
        what += sl + 2;
    }
    char at[256] = "";
    if (pos && pos->file && pos->line) {
        snprintf(at, sizeof at, "%s:%u:%u: ", pos->file, pos->line, pos->column);
    } else if (pos && pos->file) {
        snprintf(at, sizeof at, "%s: ", pos->file);
    }
    snprintf(why, len, "%s%s.tenants%s (tenant %s): %s", at, path ? path : "pools[?]", index, label, what);
}

/* The position of next's `tenants:` key, or of its entry when absent. */
static const sluice_config_pos *tenants_pos(const sluice_config_pool *next)
{
    return ((next->set >> SLUICE_PK_TENANTS) & 1u) ? &next->pos[SLUICE_PK_TENANTS] : &next->entry_pos;
}

/* Move a running fair pool's tenants from running's list to next's: the
 * "*" values to every tenant not set by name, dropped names back to them,
 * new and changed names set. Fifo pools have no tenants to move. All or
 * nothing: the steps go to the pool as one batch
 * (sluice_pool_tenants_apply), checked and allocated before any is made
 * and made in one hold of the fair queue's lock, so a refusal (out of
 * memory, or a drain that began) leaves the running list whole; it was
 * step by step, and a refusal midway left the pool with half the new
 * list. why says which entry the refusal was about (tenant_why). */
sluice_err sluice__cfg_tenants_apply(sluice_pool *pool, const sluice_config_pool *running,
                                     const sluice_config_pool *next, const char *path, char *why, size_t len)
{
    if (why && len) {
        why[0] = '\0';
    }
    if (running->queue_discipline != SLUICE_QUEUE_FAIR) {
        return SLUICE_OK;
    }
    sluice_tenant_config was = tenant_default_of(running), now = tenant_default_of(next);
    bool new_default = !tenant_config_eq(&was, &now);
    /* The steps: drops (unsets) first, then sets, as the setters took them. */
    size_t cap = running->tenant_count + next->tenant_count;
    sluice_tenant_change *changes = cap ? calloc(cap, sizeof *changes) : NULL;
    sluice_tenant_config *cfgs = next->tenant_count ? calloc(next->tenant_count, sizeof *cfgs) : NULL;
    const sluice_config_tenant **from = cap ? calloc(cap, sizeof *from) : NULL; /* each step's entry */
    if ((cap && (!changes || !from)) || (next->tenant_count && !cfgs)) {
        free(changes);
        free(cfgs);
        free(from);
        if (why && len) {
            snprintf(why, len, "%s.tenants: out of memory; the running list stays", path ? path : "pools[?]");
        }
        return SLUICE_ENOMEM;
    }
    size_t n = 0, drops = 0;
    for (size_t i = 0; i < running->tenant_count; i++) {
        const sluice_config_tenant *t = &running->tenants[i];
        if (tenant_named(t) && !tenant_exact(next, t->name)) {
            from[n] = t;
            changes[n++] = (sluice_tenant_change){.name = t->name, .cfg = NULL};
        }
    }
    drops = n;
    for (size_t i = 0; i < next->tenant_count; i++) {
        const sluice_config_tenant *t = &next->tenants[i];
        if (!tenant_named(t)) {
            continue;
        }
        const sluice_config_tenant *old = tenant_exact(running, t->name);
        cfgs[i] = tenant_config(t);
        if (old) {
            sluice_tenant_config oc = tenant_config(old);
            if (tenant_config_eq(&oc, &cfgs[i])) {
                continue;
            }
        }
        from[n] = t;
        changes[n++] = (sluice_tenant_change){.name = t->name, .cfg = &cfgs[i]};
    }
    sluice_err r = SLUICE_OK;
    if (new_default || n) {
        char msg[512];
        size_t failed = 0;
        r = sluice_pool_tenants_apply(pool, new_default ? &now : NULL, changes, n, &failed, msg, sizeof msg);
        if (r != SLUICE_OK) {
            char index[32] = "", label[SLUICE_TENANT_NAME_MAX + 48], subject[SLUICE_TENANT_NAME_MAX + 16];
            if (failed == SLUICE_TENANTS_DEFAULT) {
                const sluice_config_tenant *any = tenant_exact(next, SLUICE_CONFIG_TENANT_DEFAULT);
                if (any) {
                    snprintf(index, sizeof index, "[%zu]", (size_t)(any - next->tenants));
                }
                tenant_why(why, len, any ? &any->entry_pos : tenants_pos(next), path, index,
                           any ? "\"*\"" : "\"*\", no longer listed", "tenants' default", msg, r);
            } else if (failed < drops) {
                snprintf(subject, sizeof subject, "tenant \"%s\"", from[failed]->name);
                snprintf(label, sizeof label, "\"%s\", no longer listed", from[failed]->name);
                tenant_why(why, len, tenants_pos(next), path, "", label, subject, msg, r);
            } else if (failed < n) {
                const sluice_config_tenant *t = from[failed];
                snprintf(subject, sizeof subject, "tenant \"%s\"", t->name);
                snprintf(label, sizeof label, "\"%s\"", t->name);
                snprintf(index, sizeof index, "[%zu]", (size_t)(t - next->tenants));
                tenant_why(why, len, &t->entry_pos, path, index, label, subject, msg, r);
            }
        }
    }
    free(changes);
    free(cfgs);
    free(from);
    return r;
}

bool sluice_config_pool_to_control_config(const sluice_config_pool *p, sluice_pool_control_config *out)
{
    sluice_pool_control_config_init(out);
    if (!p) {
        return false;
    }
    out->mode = (sluice_control_mode)p->concurrency_mode;
    out->min_limit = p->concurrency_min;
    out->max_limit = p->concurrency_max ? p->concurrency_max : p->workers;
    out->interval_ns = p->concurrency_interval_ns;
    out->autotune = p->autotune;
    out->cooldown_ns = p->autotune_cooldown_ns;
    out->max_step = p->autotune_max_step;
    out->hysteresis = p->autotune_hysteresis;
    out->util_high = p->autotune_util_high;
    out->util_low = p->autotune_util_low;
    out->probe_every_ns = p->probe_every_ns;
    out->probe_timeout_ns = p->probe_timeout_ns;
    out->probe_affects_ready = p->probe_affects_ready;
    return out->mode != SLUICE_CONTROL_FIXED || out->autotune || out->probe_every_ns != 0;
}

uint64_t sluice_config_pool_drain_timeout(const sluice_config *cfg, const sluice_config_pool *p)
{
    if (p && p->drain_timeout_ns) {
        return p->drain_timeout_ns;
    }
    return cfg ? cfg->service.drain_budget_ns : 0;
}

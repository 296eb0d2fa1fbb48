/*
 * src/config/apply.c - moving a running service to a new config (reload).
 *
 * Purpose. An operator edits sluice.yaml and sends SIGHUP: K, timeouts and
 * sampling change without a restart; a bad file is refused and the running
 * config stays. Both halves matter: a reload that half-applies leaves the
 * service in a state no file describes.
 *
 * Design: three passes over (current, next), matched by pool name, each
 * a walk over the schema's rows (schema.c), so a new key reloads the way
 * its row's class says without a line here:
 *   1. Check: every LIVE row whose value changed and that has a check
 *      hook is asked first (workers: a new K must be > 0 and >= the
 *      running min_workers, or sluice_pool_resize would refuse it). One
 *      refusal refuses the whole reload.
 *   2. Build the config that will be in force, as a fresh copy: next's
 *      live and declared values, current's restart-only values. If the
 *      copy cannot be built (ENOMEM), nothing has been touched yet.
 *   3. Apply to the pools through the rows' apply hooks and log each
 *      change: LIVE rows "(applied)", DECLARATIVE rows one "declarations
 *      updated" line per pool, RESTART rows "not applied: needs a restart"
 *      (the running value stays in the config in force). Only a resize
 *      and a tenant list can fail (SLUICE_ECLOSED when a drain began in
 *      between, SLUICE_ENOMEM for a new tenant); a failed row changes
 *      nothing and keeps its running value, the message says which pools
 *      were already changed, and the last log line names every failed
 *      row and whether the rest applied ("reload: no change" only when
 *      nothing changed and nothing failed; "reload: no change applied;
 *      N changes need a restart" when every change waits for a restart).
 *
 * Thread-safety: one reloader at a time (the caller serialises, typically
 * the lifecycle's signal thread); the pools are used by other threads
 * throughout, which the pool setters allow.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

static void logf_(sluice_config_log_fn log, void *user, const char *fmt, ...) SLUICE_PRINTF(3, 4);
static void logf_(sluice_config_log_fn log, void *user, const char *fmt, ...)
{
    if (!log) {
        return;
    }
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    log(user, line);
}

#define MAX_SLOTS (1 + SLUICE__CONFIG_MAX_EXTS)

/* The slot of `next` that holds the same table as `cur` (the library's,
 * or the same extension), or NULL when next has no such slot (it was
 * loaded without that extension: nothing of it changes). */
static const cfg_slot *same_table(const cfg_slot *cur, const cfg_slot *next, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (next[i].keys == cur->keys) {
            return &next[i];
        }
    }
    return NULL;
}

/* The class this change of row k takes: a LIVE row's restart_if may make
 * one change a restart (running and next: the pools, NULL outside the
 * pool section). why: the reason, "" when none. */
static sluice_config_reload_class class_of(const sluice_config_key *k, const sluice_config_pool *running,
                                           const sluice_config_pool *next, char *why, size_t len)
{
    why[0] = '\0';
    if (k->reload == SLUICE_CONFIG_LIVE && k->restart_if && running && next &&
        !sluice__cfg_value_eq(k, running, next) && k->restart_if(running, next, why, len)) {
        return SLUICE_CONFIG_RESTART;
    }
    return k->reload;
}

/* Move the LIVE and DECLARATIVE values of next into the config in force
 * (dst), keeping RESTART values. o, on: the running and next pools (NULL
 * for the service section). */
static bool take_new(cfg_impl *c, const cfg_slot *dst, unsigned nd, const cfg_slot *next, unsigned nn,
                     const sluice_config_pool *o, const sluice_config_pool *on)
{
    for (unsigned s = 0; s < nd; s++) {
        const cfg_slot *n = same_table(&dst[s], next, nn);
        if (!n) {
            continue;
        }
        for (unsigned i = 0; i < dst[s].count; i++) {
            const sluice_config_key *k = &dst[s].keys[i];
            char why[256];
            if (class_of(k, s == 0 ? o : NULL, s == 0 ? on : NULL, why, sizeof why) ==
                SLUICE_CONFIG_RESTART) {
                continue;
            }
            if (!sluice__cfg_copy_value(c, k, dst[s].base, n->base)) {
                return false;
            }
            uint64_t bit = (uint64_t)1 << i;
            *dst[s].set = (*dst[s].set & ~bit) | (*n->set & bit);
            dst[s].pos[i] = sluice__cfg_copy_pos(c, &n->pos[i]);
        }
    }
    return true;
}

/* "pool push: " or "service: " */
typedef struct diff_log {
    sluice_config_log_fn log;
    void *user;
    const char *who;
    const sluice_config_pool *running, *next; /* the pools; NULL for the service and cluster */
} diff_log;

/* Log (and count) the changed rows of one class. */
static unsigned log_changes(const diff_log *d, const cfg_slot *cur, unsigned nc, const cfg_slot *next,
                            unsigned nn, sluice_config_reload_class cls)
{
    unsigned changes = 0;
    for (unsigned s = 0; s < nc; s++) {
        const cfg_slot *n = same_table(&cur[s], next, nn);
        for (unsigned i = 0; n && i < cur[s].count; i++) {
            const sluice_config_key *k = &cur[s].keys[i];
            char why[256];
            bool pool_row = cur[s].base == (const void *)d->running; /* the library's pool table */
            if (class_of(k, pool_row ? d->running : NULL, pool_row ? d->next : NULL, why, sizeof why) !=
                    cls ||
                sluice__cfg_value_eq(k, cur[s].base, n->base)) {
                continue;
            }
            char a[256], b[256];
            bool show = k->type != SLUICE_CONFIG_SECONDS_LIST &&
                        !(k->type == SLUICE_CONFIG_STRING && cls == SLUICE_CONFIG_LIVE);
            if (cls == SLUICE_CONFIG_LIVE) {
                if (show) {
                    logf_(d->log, d->user, "%s%s %s -> %s %s", d->who, k->name,
                          sluice__cfg_format(k, cur[s].base, a, sizeof a),
                          sluice__cfg_format(k, n->base, b, sizeof b),
                          k->applied_note ? k->applied_note : "(applied)");
                } else {
                    logf_(d->log, d->user, "%s%s updated %s", d->who, k->name,
                          k->applied_note ? k->applied_note : "(applied)");
                }
            } else if (cls == SLUICE_CONFIG_RESTART) {
                char paren[264] = "";
                if (why[0]) {
                    snprintf(paren, sizeof paren, " (%s)", why);
                }
                if (show) {
                    logf_(d->log, d->user, "%s%s %s -> %s not applied: needs a restart%s", d->who, k->name,
                          sluice__cfg_format(k, cur[s].base, a, sizeof a),
                          sluice__cfg_format(k, n->base, b, sizeof b), paren);
                } else {
                    logf_(d->log, d->user, "%s%s not applied: needs a restart%s", d->who, k->name, paren);
                }
            }
            changes++;
        }
    }
    return changes;
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
    sluice_config *cur = *current;
    cfg_slot cs[MAX_SLOTS], ns[MAX_SLOTS];

    /* Pass 1: check what could fail. */
    cfg_errs *e = calloc(1, sizeof *e);
    if (!e) {
        return SLUICE_ENOMEM;
    }
    for (size_t i = 0; i < cur->pool_count; i++) {
        sluice_config_pool *o = &cur->pools[i];
        sluice_config_pool *n = (sluice_config_pool *)sluice_config_find_pool(next, o->name);
        if (!n) {
            continue;
        }
        unsigned nc = sluice__cfg_pool_slots(o, cs, MAX_SLOTS), nn = sluice__cfg_pool_slots(n, ns, MAX_SLOTS);
        for (unsigned s = 0; s < nc; s++) {
            const cfg_slot *to = same_table(&cs[s], ns, nn);
            for (unsigned k = 0; to && k < cs[s].count; k++) {
                const sluice_config_key *row = &cs[s].keys[k];
                char why[512];
                if (class_of(row, s == 0 ? o : NULL, s == 0 ? n : NULL, why, sizeof why) ==
                        SLUICE_CONFIG_LIVE &&
                    row->check && !sluice__cfg_value_eq(row, cs[s].base, to->base) &&
                    !row->check(o, n, why, sizeof why)) {
                    sluice__cfg_errf(e, SLUICE_EINVAL, &to->pos[k], "pool %s: %s", o->name, why);
                }
            }
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
    bool ok = true;
    for (size_t i = 0; i < cur->pool_count && ok; i++) {
        sluice_config_pool *n = (sluice_config_pool *)sluice_config_find_pool(next, cur->pools[i].name);
        if (n) {
            unsigned nd = sluice__cfg_pool_slots(&c->pub.pools[i], cs, MAX_SLOTS);
            unsigned nn = sluice__cfg_pool_slots(n, ns, MAX_SLOTS);
            ok = take_new(c, cs, nd, ns, nn, &cur->pools[i], n);
        }
    }
    if (ok) {
        unsigned nd = sluice__cfg_service_slots(&c->pub.service, cs, MAX_SLOTS);
        unsigned nn = sluice__cfg_service_slots((sluice_config_service *)&next->service, ns, MAX_SLOTS);
        ok = take_new(c, cs, nd, ns, nn, NULL, NULL);
    }
    /* Declarations: the downstream budget is replaced whole. */
    free(c->pub.downstreams);
    c->pub.downstreams = NULL;
    c->pub.downstream_count = 0;
    if (ok && next->downstream_count) {
        cfg_impl *tmp = sluice__cfg_clone(next);
        if (!tmp) {
            ok = false;
        } else {
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
    }
    if (!ok) {
        sluice_config_free(&c->pub);
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "reload: out of memory; running config unchanged");
        }
        return SLUICE_ENOMEM;
    }

    /* Pass 3: apply and log. */
    unsigned changes = 0, failures = 0;
    unsigned restarts = 0; /* changes logged "not applied: needs a restart" */
    sluice_err result = SLUICE_OK;
    char resized[512] = "";
    size_t rlen = 0;
    char failed[512] = ""; /* "pool f: tenants, pool g: workers" */
    size_t flen = 0;
    for (size_t i = 0; i < cur->pool_count; i++) {
        sluice_config_pool *o = &cur->pools[i];
        sluice_config_pool *n = (sluice_config_pool *)sluice_config_find_pool(next, o->name);
        sluice_pool *pool = pools ? pools[i] : NULL;
        if (!n) {
            logf_(log, user, "pool %s: removed from the file; not applied: removing a pool needs a restart",
                  o->name);
            restarts++;
            continue;
        }
        char who[SLUICE_POOL_NAME_MAX + 16];
        snprintf(who, sizeof who, "pool %s: ", o->name);
        diff_log d = {log, user, who, o, n};
        unsigned nc = sluice__cfg_pool_slots(o, cs, MAX_SLOTS), nn = sluice__cfg_pool_slots(n, ns, MAX_SLOTS);
        cfg_slot fs[MAX_SLOTS];
        sluice__cfg_pool_slots(&c->pub.pools[i], fs, MAX_SLOTS);
        /* LIVE rows, one by one: apply, then log. */
        bool listed = false; /* o->name is in `resized` */
        for (unsigned s = 0; s < nc; s++) {
            const cfg_slot *to = same_table(&cs[s], ns, nn);
            for (unsigned k = 0; to && k < cs[s].count; k++) {
                const sluice_config_key *row = &cs[s].keys[k];
                char why[256];
                if (class_of(row, s == 0 ? o : NULL, s == 0 ? n : NULL, why, sizeof why) !=
                        SLUICE_CONFIG_LIVE ||
                    sluice__cfg_value_eq(row, cs[s].base, to->base)) {
                    continue;
                }
                /* The hook's complaint names the entry as the load does:
                 * "pools[I]" is n's place in the new file. */
                char path[32], hook_why[1024] = "";
                snprintf(path, sizeof path, "pools[%zu]", (size_t)(n - next->pools));
                sluice_err r = !pool ? SLUICE_OK
                               : row->apply_change
                                   ? row->apply_change(pool, o, n, path, hook_why, sizeof hook_why)
                               : row->apply ? row->apply(pool, n)
                                            : SLUICE_OK;
                char a[256], b[256];
                if (r != SLUICE_OK) {
                    const char *what = hook_why[0] ? hook_why : sluice_strerror(r);
                    if (result == SLUICE_OK) {
                        result = r;
                        if (errbuf && errlen) {
                            snprintf(errbuf, errlen, "pool %s: %s to %s failed: %s; already changed:%s",
                                     o->name, row->name, sluice__cfg_format(row, to->base, b, sizeof b), what,
                                     rlen ? resized : " none");
                        }
                    }
                    logf_(log, user, "pool %s: %s %s -> %s failed: %s", o->name, row->name,
                          sluice__cfg_format(row, cs[s].base, a, sizeof a),
                          sluice__cfg_format(row, to->base, b, sizeof b), what);
                    /* The config in force keeps the running value. */
                    sluice__cfg_copy_value(c, row, fs[s].base, cs[s].base);
                    if (flen < sizeof failed) {
                        int w = snprintf(failed + flen, sizeof failed - flen, "%spool %s: %s",
                                         failures ? ", " : "", o->name, row->name);
                        flen += w > 0 ? (size_t)w : 0;
                    }
                    failures++;
                } else {
                    cfg_slot one = cs[s];
                    one.keys = row;
                    one.count = 1;
                    one.base = cs[s].base;
                    cfg_slot other = *to;
                    other.keys = row;
                    other.count = 1;
                    changes += log_changes(&d, &one, 1, &other, 1, SLUICE_CONFIG_LIVE);
                    if ((row->apply || row->apply_change) && pool && !listed &&
                        rlen + strlen(o->name) + 2 < sizeof resized) {
                        rlen += (size_t)snprintf(resized + rlen, sizeof resized - rlen, " %s", o->name);
                        listed = true;
                    }
                }
            }
        }
        /* DECLARATIVE rows: one line. */
        bool declared = false;
        for (unsigned s = 0; s < nc && !declared; s++) {
            const cfg_slot *to = same_table(&cs[s], ns, nn);
            for (unsigned k = 0; to && k < cs[s].count && !declared; k++) {
                declared = cs[s].keys[k].reload == SLUICE_CONFIG_DECLARATIVE &&
                           !sluice__cfg_value_eq(&cs[s].keys[k], cs[s].base, to->base);
            }
        }
        if (declared) {
            logf_(log, user, "pool %s: declarations (rationale, kind, downstream, alerts, demo) updated",
                  o->name);
            changes++;
        }
        /* RESTART rows: logged, not applied, counted apart from the changes. */
        restarts += log_changes(&d, cs, nc, ns, nn, SLUICE_CONFIG_RESTART);
    }
    for (size_t i = 0; i < next->pool_count; i++) {
        if (!sluice_config_find_pool(cur, next->pools[i].name)) {
            logf_(log, user, "pool %s: new in the file; not applied: adding a pool needs a restart",
                  next->pools[i].name);
            restarts++;
        }
    }
    diff_log d = {log, user, "service: ", NULL, NULL};
    unsigned nc = sluice__cfg_service_slots(&cur->service, cs, MAX_SLOTS);
    unsigned nn = sluice__cfg_service_slots((sluice_config_service *)&next->service, ns, MAX_SLOTS);
    changes += log_changes(&d, cs, nc, ns, nn, SLUICE_CONFIG_LIVE);
    changes += log_changes(&d, cs, nc, ns, nn, SLUICE_CONFIG_DECLARATIVE);
    restarts += log_changes(&d, cs, nc, ns, nn, SLUICE_CONFIG_RESTART);
    /* The cluster is joined once: every change to its section waits for a restart. */
    diff_log dc = {log, user, "cluster: ", NULL, NULL};
    if (cur->cluster.present != next->cluster.present) {
        logf_(log, user, "cluster: section %s; not applied: needs a restart",
              next->cluster.present ? "added" : "removed");
        restarts++;
    } else if (cur->cluster.present) {
        nc = sluice__cfg_cluster_slots(&cur->cluster, cs, MAX_SLOTS);
        nn = sluice__cfg_cluster_slots((sluice_config_cluster *)&next->cluster, ns, MAX_SLOTS);
        restarts += log_changes(&dc, cs, nc, ns, nn, SLUICE_CONFIG_RESTART);
    }
    /* The last line sums the reload up. After a refused row it says
     * which and what the rest did: "no change" would read as if the file
     * matched what runs. A refused row changed nothing (a resize either
     * happens or not; a tenant list moves whole or not at all). Nor is a
     * reload whose every change waits for a restart "no change": the file
     * differs from what runs, and the line says by how much. */
    char waiting[64] = "";
    if (restarts) {
        snprintf(waiting, sizeof waiting, "; %u %s a restart", restarts,
                 restarts == 1 ? "change needs" : "changes need");
    }
    if (failures) {
        logf_(log, user, "reload: %s failed and %s; %s%s", failed,
              failures == 1 ? "keeps its running value" : "keep their running values",
              changes    ? "the other changes above applied"
              : restarts ? "nothing else applied"
                         : "nothing else changed",
              changes ? "" : waiting);
    } else if (changes == 0) {
        logf_(log, user, "reload: no change%s%s", restarts ? " applied" : "", waiting);
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

/*
 * src/config/service_config.c - a service (sluice/service.h) built from a
 * loaded sluice.yaml, and reloaded from it.
 *
 * Purpose: the config knows the pools, their drain timeouts and the
 * service's grace and budget; the service object knows how to register
 * each pool once and drain it. This file is the one place they meet, so
 * the service area stays free of YAML (it sits below this library) and a
 * program with a config file writes no wiring of its own.
 *
 * Design: create goes through the public service API only (create, then
 * add_pool per entry in file order, and set_control for a pool with
 * concurrency_*, autotune* or probe_* keys, destroying the service on the
 * first refusal). Reload maps the config's pool entries to the service's pools
 * by name, so it does not depend on the order pools were added in. A
 * pool's controller follows its file: made when a control key turns on,
 * reconfigured when they change, removed (and K set back to `workers`,
 * unless the pool drains: then K stays) when every one of them is off
 * again.
 *
 * The admin token (service.admin_token_file) is read here too, at start,
 * by the program that starts the admin server: the config keeps only the
 * path, so --print-config, reload logs and error messages never carry the
 * secret. The reader bounds what it reads (a token file is tiny; a path
 * to a log or a device by mistake is refused, not slurped).
 *
 * Lock order: none of its own; the service's and the pools' locks are
 * taken inside their calls.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/config.h"

sluice_err sluice_service_create_from_config(const sluice_config *cfg, const sluice_service_config *base,
                                             sluice_config_pool_hook prepare, void *prepare_user,
                                             sluice_service **out, char *errbuf, size_t errlen)
{
    if (errbuf && errlen) {
        errbuf[0] = '\0';
    }
    if (!cfg || !out) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "service from config: %s is NULL", cfg ? "out" : "cfg");
        }
        return SLUICE_EINVAL;
    }
    sluice_service_config sc;
    if (base) {
        sc = *base;
    } else {
        sluice_service_config_init(&sc);
    }
    sc.name = cfg->service.name;
    sc.shutdown_grace_ns = cfg->service.shutdown_grace_ns;
    sc.drain_budget_ns = cfg->service.drain_budget_ns;
    sluice_service *svc = NULL;
    sluice_err r = sluice_service_create(&sc, &svc, errbuf, errlen);
    if (r != SLUICE_OK) {
        return r;
    }
    for (size_t i = 0; i < cfg->pool_count; i++) {
        const sluice_config_pool *cp = &cfg->pools[i];
        sluice_pool_config pc;
        sluice_config_pool_to_pool_config(cp, &pc);
        if (prepare) {
            prepare(prepare_user, cp, i, &pc);
        }
        char why[1024];
        sluice_pool *pool = NULL;
        r = sluice_service_add_pool(svc, &pc, sluice_config_pool_drain_timeout(cfg, cp), &pool, why,
                                    sizeof why);
        if (r == SLUICE_OK) {
            r = sluice_service_set_readiness_weight(svc, pool, cp->readiness_weight);
        }
        if (r == SLUICE_OK) {
            why[0] = '\0';
            r = sluice_config_pool_set_tenants(cp, pool, why, sizeof why);
        }
        sluice_pool_control_config cc;
        if (r == SLUICE_OK && sluice_config_pool_to_control_config(cp, &cc)) {
            /* The pool's controller: adaptive limit, auto-tune, probes. */
            r = sluice_service_set_control(svc, pool, &cc, why, sizeof why);
        }
        if (r != SLUICE_OK) {
            if (errbuf && errlen) {
                snprintf(errbuf, errlen, "pool %s: %s", cp->name, why[0] ? why : sluice_strerror(r));
            }
            sluice_service_destroy(svc);
            return r;
        }
    }
    *out = svc;
    return SLUICE_OK;
}

/* A reload turned every control key of pool off: its controller goes
 * and K goes back to the file's `workers` (the controller may have moved
 * it anywhere in [concurrency_min, concurrency_max]). One log line says
 * so. SLUICE_ENOENT (no controller: the program removed it) is no error.
 *
 * The removal succeeds as a whole while the pool drains: a draining pool
 * takes no resize (SLUICE_ECLOSED) and needs none, since the drain is the
 * end of its work, so K stays where the controller left it and the line
 * says why. Refusing the reload instead would have kept nothing either:
 * the controller's own resizes are refused during the drain too. */
static sluice_err remove_control(sluice_service *svc, sluice_pool *pool, const sluice_config_pool *entry,
                                 sluice_config_log_fn log, void *user, char *why, size_t whylen)
{
    sluice_err r = sluice_service_remove_control(svc, pool);
    if (r == SLUICE_ENOENT) {
        return SLUICE_OK;
    }
    if (r != SLUICE_OK) {
        snprintf(why, whylen, "cannot remove its controller: %s", sluice_strerror(r));
        return r;
    }
    sluice_pool_stats ps;
    sluice_pool_stats_get(pool, &ps); /* the K it left */
    r = sluice_pool_resize(pool, entry->workers);
    if (r != SLUICE_OK && r != SLUICE_ECLOSED) {
        /* The reload's checks passed `workers` against the running
         * min_workers, so only a drain refuses this resize. */
        snprintf(why, whylen, "controller removed, but K not set back to workers (%u): %s", entry->workers,
                 sluice_strerror(r));
        return r;
    }
    if (log) {
        char line[256];
        if (r == SLUICE_ECLOSED) {
            snprintf(line, sizeof line,
                     "pool %s: controller removed (every concurrency_*, autotune* and probe_* key off); K "
                     "stays %u: the pool is draining (workers %u not applied)",
                     entry->name, ps.capacity, entry->workers);
        } else {
            snprintf(line, sizeof line,
                     "pool %s: controller removed (every concurrency_*, autotune* and probe_* key off); K %u "
                     "-> %u (workers)",
                     entry->name, ps.capacity, entry->workers);
        }
        log(user, line);
    }
    return SLUICE_OK;
}

sluice_err sluice_service_reload_config(sluice_service *svc, sluice_config **current, const char *path,
                                        const sluice_config_load_opts *opts, sluice_config_log_fn log,
                                        void *user, char *errbuf, size_t errlen)
{
    if (!svc || !current || !*current || !path) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "reload: %s is NULL",
                     !svc    ? "the service"
                     : !path ? "path"
                             : "the config");
        }
        return SLUICE_EINVAL;
    }
    const sluice_config *cur = *current;
    sluice_pool *stack_pools[SLUICE_SERVICE_MAX_POOLS];
    if (cur->pool_count > SLUICE_SERVICE_MAX_POOLS) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "reload: the config in force has %zu pools, a service holds at most %d",
                     cur->pool_count, SLUICE_SERVICE_MAX_POOLS);
        }
        return SLUICE_EINVAL;
    }
    /* The controllers' settings before the reload (the old config is
     * freed by it): a pool's controller is reconfigured when they change,
     * and removed when they all went back to off. */
    size_t was_count = cur->pool_count;
    sluice_pool_control_config *was = calloc(was_count ? was_count : 1, sizeof *was);
    bool *was_on = calloc(was_count ? was_count : 1, sizeof *was_on);
    if (!was || !was_on) {
        free(was);
        free(was_on);
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "reload: out of memory; running config unchanged");
        }
        return SLUICE_ENOMEM;
    }
    for (size_t i = 0; i < cur->pool_count; i++) {
        stack_pools[i] = sluice_service_find_pool(svc, cur->pools[i].name);
        was_on[i] = sluice_config_pool_to_control_config(&cur->pools[i], &was[i]);
    }
    /* A refused file leaves *current alone: nothing changed, nothing to
     * follow. A file applied with one pool setter refused midway (a resize
     * or a tenant while the pool drains) replaced *current with the config
     * now in force, that one value kept: the service follows it too, or a
     * later reload would compare against settings the service never took
     * (a controller the file turned off would stay for good). The new
     * config is made while the old one lives, so the pointers differ. */
    const sluice_config *before = *current;
    sluice_err r = sluice_config_reload(current, path, opts, stack_pools, log, user, errbuf, errlen);
    if (r != SLUICE_OK && *current == before) {
        free(was);
        free(was_on);
        return r;
    }
    const sluice_config *now = *current;
    sluice_service_set_budget(svc, now->service.shutdown_grace_ns, now->service.drain_budget_ns);
    for (size_t i = 0; i < now->pool_count; i++) {
        sluice_pool *p = sluice_service_find_pool(svc, now->pools[i].name);
        if (!p) {
            continue;
        }
        sluice_service_set_drain_timeout(svc, p, sluice_config_pool_drain_timeout(now, &now->pools[i]));
        sluice_service_set_readiness_weight(svc, p, now->pools[i].readiness_weight);
        /* The pools of a reload are the pools at create, in the same order
         * (adding or removing one needs a restart). Both settings come from
         * sluice_config_pool_to_control_config, which zeroes the struct
         * first, so bytes compare. */
        sluice_pool_control_config cc;
        bool wants = sluice_config_pool_to_control_config(&now->pools[i], &cc);
        if (i >= was_count || memcmp(&was[i], &cc, sizeof cc) == 0) {
            continue;
        }
        sluice_err u = SLUICE_OK;
        char why[256] = "";
        if (wants) {
            u = sluice_service_update_control(svc, p, &cc, why, sizeof why);
        } else if (was_on[i]) {
            /* Every control key off: the controller goes (its series
             * leave /metrics) and K goes back to the file's workers. A
             * controller the program made itself for a pool whose file
             * never asked for one is not the file's to remove. */
            u = remove_control(svc, p, &now->pools[i], log, user, why, sizeof why);
        }
        if (u != SLUICE_OK) {
            if (r == SLUICE_OK && errbuf && errlen) { /* the first refusal is the call's */
                snprintf(errbuf, errlen, "pool %s: the controller's new settings were refused: %s",
                         now->pools[i].name, why);
            }
            if (log) {
                char line[512];
                snprintf(line, sizeof line, "pool %s: controller settings not applied: %s",
                         now->pools[i].name, why);
                log(user, line);
            }
            r = r == SLUICE_OK ? u : r;
        }
    }
    free(was_on);
    free(was);
    return r;
}

sluice_err sluice_router_create_from_config(const sluice_config *cfg, const sluice_service *svc,
                                            sluice_router **out, char *errbuf, size_t errlen)
{
    if (errbuf && errlen) {
        errbuf[0] = '\0';
    }
    if (!cfg || !svc || !out) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "router from config: %s is NULL", !cfg ? "cfg" : !svc ? "svc" : "out");
        }
        return SLUICE_EINVAL;
    }
    size_t n = 0;
    for (size_t i = 0; i < cfg->pool_count; i++) {
        n += cfg->pools[i].tier != NULL;
    }
    if (n == 0) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "router from config: no pool has a tier");
        }
        return SLUICE_ENOENT;
    }
    sluice_router_tier *tiers = calloc(n, sizeof *tiers);
    const char **names = NULL;
    size_t total = 0;
    for (size_t i = 0; i < cfg->pool_count; i++) {
        total += cfg->pools[i].tier ? cfg->pools[i].tenant_count + 1 : 0;
    }
    names = calloc(total ? total : 1, sizeof *names);
    if (!tiers || !names) {
        free(tiers);
        free(names);
        return SLUICE_ENOMEM;
    }
    sluice_err r = SLUICE_OK;
    size_t t = 0, used = 0;
    for (size_t i = 0; i < cfg->pool_count && r == SLUICE_OK; i++) {
        const sluice_config_pool *p = &cfg->pools[i];
        if (!p->tier) {
            continue;
        }
        sluice_pool *pool = sluice_service_find_pool(svc, p->name);
        if (!pool) {
            if (errbuf && errlen) {
                snprintf(errbuf, errlen, "router from config: tier %s: the service has no pool %s", p->tier,
                         p->name);
            }
            r = SLUICE_ENOENT;
            break;
        }
        tiers[t].name = p->tier;
        tiers[t].pool = pool;
        tiers[t].tenants = &names[used];
        for (size_t j = 0; j < p->tenant_count; j++) {
            names[used++] = p->tenants[j].name;
        }
        names[used++] = NULL;
        t++;
    }
    if (r == SLUICE_OK) {
        r = sluice_router_create(tiers, n, out, errbuf, errlen);
    }
    free(tiers);
    free(names);
    return r;
}

/* ---- the admin token ------------------------------------------------ */

static sluice_err token_fail(char *out, size_t outlen, sluice_err r)
{
    if (out && outlen) {
        out[0] = '\0';
    }
    return r;
}

sluice_err sluice_config_read_token_file(const char *path, const char *what, char *out, size_t outlen,
                                         char *errbuf, size_t errlen)
{
    if (errbuf && errlen) {
        errbuf[0] = '\0';
    }
    if (!what) {
        what = "token file";
    }
    if (!path || !out || outlen == 0) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "%s: %s", what, path ? "no room for the token" : "no path");
        }
        return token_fail(out, outlen, SLUICE_EINVAL);
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "%s: %s: %s", what, path, strerror(errno));
        }
        return token_fail(out, outlen, SLUICE_EIO);
    }
    /* A token, a newline and a little slack: anything larger is not a
     * token file. One byte more than that is read to tell. */
    enum { LIMIT = SLUICE_CONFIG_ADMIN_TOKEN_MAX + 64 };
    char buf[LIMIT + 2];
    size_t n = fread(buf, 1, LIMIT + 1, f);
    int read_err = ferror(f) ? errno : 0;
    fclose(f);
    if (read_err) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "%s: %s: %s", what, path, strerror(read_err));
        }
        return token_fail(out, outlen, SLUICE_EIO);
    }
    if (n > LIMIT) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen,
                     "%s: %s: more than %d bytes; a token file holds one line of at most %d characters", what,
                     path, LIMIT, SLUICE_CONFIG_ADMIN_TOKEN_MAX);
        }
        return token_fail(out, outlen, SLUICE_EINVAL);
    }
    buf[n] = '\0';
    if (memchr(buf, '\0', n)) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "%s: %s: holds a NUL byte; a token is one line of text", what, path);
        }
        return token_fail(out, outlen, SLUICE_EINVAL);
    }
    size_t len = strcspn(buf, "\n");
    /* Only blank lines may follow the token. */
    for (size_t i = len; i < n; i++) {
        if (!strchr("\n\r \t", buf[i])) {
            if (errbuf && errlen) {
                snprintf(errbuf, errlen, "%s: %s: more than one line; a token file holds the token alone",
                         what, path);
            }
            return token_fail(out, outlen, SLUICE_EINVAL);
        }
    }
    while (len > 0 && strchr("\r \t", buf[len - 1])) {
        len--;
    }
    if (len == 0 || len > SLUICE_CONFIG_ADMIN_TOKEN_MAX || len >= outlen) {
        if (errbuf && errlen) {
            if (len == 0) {
                snprintf(errbuf, errlen, "%s: %s: empty; want one line holding the token", what, path);
            } else {
                snprintf(errbuf, errlen, "%s: %s: the token has %zu characters, at most %d (or %zu here)",
                         what, path, len, SLUICE_CONFIG_ADMIN_TOKEN_MAX, outlen ? outlen - 1 : 0);
            }
        }
        return token_fail(out, outlen, SLUICE_EINVAL);
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c && strchr("-._~+/=", c)))) {
            if (errbuf && errlen) {
                /* The position, never the character: it is part of a secret. */
                snprintf(errbuf, errlen,
                         "%s: %s: character %zu of the token is not allowed (A-Z a-z 0-9 - . _ ~ + / =)",
                         what, path, i + 1);
            }
            return token_fail(out, outlen, SLUICE_EINVAL);
        }
    }
    memcpy(out, buf, len);
    out[len] = '\0';
    return SLUICE_OK;
}

sluice_err sluice_config_admin_token(const sluice_config *cfg, char *out, size_t outlen, char *errbuf,
                                     size_t errlen)
{
    if (errbuf && errlen) {
        errbuf[0] = '\0';
    }
    if (!cfg || !out || outlen == 0) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "admin token: %s is NULL", cfg ? "out" : "cfg");
        }
        return token_fail(out, outlen, SLUICE_EINVAL);
    }
    out[0] = '\0';
    if (!cfg->service.admin_token_file) {
        return SLUICE_OK;
    }
    return sluice_config_read_token_file(cfg->service.admin_token_file, "service.admin_token_file", out,
                                         outlen, errbuf, errlen);
}

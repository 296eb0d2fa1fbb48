/*
 * src/config/env.c - environment overrides: SLUICE_POOL_<NAME>_<KEY> and
 * SLUICE_SERVICE_<KEY>.
 *
 * Purpose. A deployment changes one value (K of one pool during an
 * incident, the listen address in a container) without editing the file.
 * An override is parsed by the same row as the file's value
 * (sluice__cfg_set), so it is refused with the same message, reported
 * against the variable ("env SLUICE_POOL_PUSH_WORKERS: pools[0].workers:
 * must be > 0, got 0").
 *
 * Every variable that starts with SLUICE_POOL_ or SLUICE_SERVICE_ is an
 * override and must name a pool and a key: a typo is an error, never
 * silently ignored. That includes the bare prefixes ("SLUICE_POOL_=1")
 * and names too long to be any key (256 bytes or more), which earlier
 * builds skipped without a word.
 *
 * Runs after the YAML walk (overrides need the pool names) and before
 * validation. No state.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "config/config_internal.h"

#define POOL_PREFIX "SLUICE_POOL_"
#define SERVICE_PREFIX "SLUICE_SERVICE_"

/* The longest variable name an override may have. */
#define MAX_ENV_NAME 255

static void lower_into(const char *s, char *key, size_t len)
{
    size_t i = 0;
    for (; *s && i + 1 < len; s++) {
        unsigned char ch = (unsigned char)*s;
        key[i++] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : (char)ch;
    }
    key[i] = '\0';
}

static bool override_service(cfg_impl *c, cfg_errs *e, const char *name, const char *value,
                             const sluice_config_pos *pos)
{
    cfg_slot slots[1 + SLUICE__CONFIG_MAX_EXTS];
    unsigned n = sluice__cfg_service_slots(&c->pub.service, slots, 1 + SLUICE__CONFIG_MAX_EXTS);
    char key[MAX_ENV_NAME + 1];
    lower_into(name + strlen(SERVICE_PREFIX), key, sizeof key);
    unsigned s, i;
    if (!sluice__cfg_find(slots, n, key, &s, &i)) {
        char known[1024];
        sluice__cfg_list_keys(slots, n, false, known, sizeof known);
        sluice__cfg_errf(e, SLUICE_EINVAL, pos, "service.%s: unknown key (known: %s)", key, known);
        return true;
    }
    return sluice__cfg_set(c, e, &slots[s], i, "service", value, pos);
}

/* SLUICE_POOL_<NAME>_<KEY>: find the pool whose prefix matches and whose
 * remainder is a known key; exactly one must. */
static bool override_pool(cfg_impl *c, cfg_errs *e, const char *name, const char *value,
                          const sluice_config_pos *pos)
{
    sluice_config *cfg = &c->pub;
    int match_pool = -1, matches = 0;
    unsigned match_slot = 0, match_key = 0;
    bool prefix_seen = false;
    cfg_slot slots[1 + SLUICE__CONFIG_MAX_EXTS];
    for (size_t i = 0; i < cfg->pool_count; i++) {
        if (!cfg->pools[i].name) {
            continue;
        }
        char prefix[MAX_ENV_NAME + 16];
        sluice_config_env_name(cfg->pools[i].name, prefix, sizeof prefix);
        size_t pl = strlen(prefix);
        if (strncmp(name, prefix, pl) != 0 || name[pl] == '\0') {
            continue;
        }
        prefix_seen = true;
        char key[MAX_ENV_NAME + 1];
        lower_into(name + pl, key, sizeof key);
        unsigned n = sluice__cfg_pool_slots(&cfg->pools[i], slots, 1 + SLUICE__CONFIG_MAX_EXTS);
        unsigned s, k;
        /* The name itself (the library's row 0) cannot be overridden. */
        if (sluice__cfg_find(slots, n, key, &s, &k) && !(s == 0 && k == SLUICE_PK_NAME)) {
            if (matches == 0) {
                match_pool = (int)i;
                match_slot = s;
                match_key = k;
            }
            matches++;
        }
    }
    if (matches == 0) {
        if (prefix_seen) {
            /* Any pool lists the same keys. */
            unsigned n = sluice__cfg_pool_slots(&cfg->pools[0], slots, 1 + SLUICE__CONFIG_MAX_EXTS);
            char known[1024];
            sluice__cfg_list_keys(slots, n, true, known, sizeof known);
            sluice__cfg_errf(e, SLUICE_EINVAL, pos, "%s: unknown pool key (known: %s, upper-cased)", name,
                             known);
        } else {
            sluice__cfg_errf(e, SLUICE_EINVAL, pos,
                             "%s: names no pool in %s (SLUICE_POOL_<NAME>_<KEY>, NAME upper-cased)", name,
                             cfg->source);
        }
        return true;
    }
    if (matches > 1) {
        sluice__cfg_errf(e, SLUICE_EINVAL, pos,
                         "%s: ambiguous: it matches more than one pool and key; rename a pool", name);
        return true;
    }
    char path[48];
    snprintf(path, sizeof path, "pools[%d]", match_pool);
    sluice__cfg_pool_slots(&cfg->pools[match_pool], slots, 1 + SLUICE__CONFIG_MAX_EXTS);
    return sluice__cfg_set(c, e, &slots[match_slot], match_key, path, value, pos);
}

void sluice__cfg_apply_env(cfg_impl *c, cfg_errs *e, const char *const *envp, bool *oom)
{
    for (const char *const *ep = envp; ep && *ep; ep++) {
        const char *var = *ep;
        const char *eq = strchr(var, '=');
        if (!eq) {
            continue;
        }
        size_t nlen = (size_t)(eq - var);
        const char *value = eq + 1;
        bool is_pool = nlen >= strlen(POOL_PREFIX) && strncmp(var, POOL_PREFIX, strlen(POOL_PREFIX)) == 0;
        bool is_service =
            nlen >= strlen(SERVICE_PREFIX) && strncmp(var, SERVICE_PREFIX, strlen(SERVICE_PREFIX)) == 0;
        if (!is_pool && !is_service) {
            continue;
        }
        char name[MAX_ENV_NAME + 1];
        if (nlen > MAX_ENV_NAME) {
            /* Named by its first bytes: the whole name may be kilobytes. */
            char head[64];
            snprintf(head, sizeof head, "%.40s...", var);
            sluice_config_pos pos = {c->pub.source, 0, 0, sluice__cfg_strdup(c, head)};
            if (!pos.env) {
                *oom = true;
                return;
            }
            sluice__cfg_errf(e, SLUICE_EINVAL, &pos,
                             "the variable's name is %zu bytes; an override's name is at most %d", nlen,
                             MAX_ENV_NAME);
            continue;
        }
        memcpy(name, var, nlen);
        name[nlen] = '\0';
        char *env_name = sluice__cfg_strdup(c, name);
        if (!env_name) {
            *oom = true;
            return;
        }
        sluice_config_pos pos = {c->pub.source, 0, 0, env_name};
        if (nlen == strlen(is_pool ? POOL_PREFIX : SERVICE_PREFIX)) {
            sluice__cfg_errf(e, SLUICE_EINVAL, &pos, "%s: names no %s (%s)", name,
                             is_pool ? "pool and key" : "key",
                             is_pool ? "SLUICE_POOL_<NAME>_<KEY>" : "SLUICE_SERVICE_<KEY>");
            continue;
        }
        bool ok =
            is_service ? override_service(c, e, name, value, &pos) : override_pool(c, e, name, value, &pos);
        if (!ok) {
            *oom = true;
            return;
        }
    }
}

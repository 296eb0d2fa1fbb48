/*
 * src/cluster/settings.c - the `cluster:` section of a YAML file.
 *
 *     cluster:
 *       redis: 127.0.0.1:6379
 *       key_prefix: sluice
 *       service: orders-service
 *       replica_id: orders-7f9c        # optional
 *       heartbeat: 1s
 *       member_ttl: 3s
 *       lease_ttl: 3s
 *       redis_timeout: 250ms
 *       mode: share                    # or strict
 *       budget_file: downstream-budget.yaml
 *       fallback_k: 0
 *       block: 0
 *
 * Other top-level keys are left to their own readers (so the section can
 * live in sluice.yaml once the config layer knows to pass it through).
 * Errors name file:line:col like sluice.yaml's. A relative budget_file
 * is taken relative to the file's directory. Durations: an integer with
 * ns, us, ms, s or m. Pure function of the file; no state, no locks.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cluster/cluster_internal.h"

typedef struct sparse {
    const char *name;
    char *errbuf;
    size_t errlen;
    bool failed;
} sparse;

static void fail(sparse *p, const yaml_node_t *n, const char *fmt, ...) SLUICE_PRINTF(3, 4);
static void fail(sparse *p, const yaml_node_t *n, const char *fmt, ...)
{
    if (p->failed) {
        return;
    }
    p->failed = true;
    if (p->errbuf && p->errlen) {
        char what[300];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        snprintf(p->errbuf, p->errlen, "%s:%lu:%lu: %s", p->name, (unsigned long)n->start_mark.line + 1,
                 (unsigned long)n->start_mark.column + 1, what);
    }
}

static const char *scalar(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static bool parse_duration(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+') {
        return false;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) {
        return false;
    }
    uint64_t mul;
    if (strcmp(end, "ns") == 0) {
        mul = 1;
    } else if (strcmp(end, "us") == 0) {
        mul = SLUICE_NS_PER_US;
    } else if (strcmp(end, "ms") == 0) {
        mul = SLUICE_NS_PER_MS;
    } else if (strcmp(end, "s") == 0) {
        mul = SLUICE_NS_PER_SEC;
    } else if (strcmp(end, "m") == 0) {
        mul = 60 * SLUICE_NS_PER_SEC;
    } else {
        return false;
    }
    if (v > UINT64_MAX / mul) {
        return false;
    }
    *out = v * mul;
    return true;
}

static void pair(sparse *p, sluice_cluster_settings *s, const char *key, const yaml_node_t *k,
                 const yaml_node_t *v, const char *dir)
{
    const char *val = scalar(v);
    if (!val) {
        fail(p, v, "cluster.%s: must be a single value", key);
        return;
    }
    unsigned long long u;
    char *end;
    if (strcmp(key, "redis") == 0) {
        const char *colon = strrchr(val, ':');
        errno = 0;
        u = colon ? strtoull(colon + 1, &end, 10) : 0;
        if (!colon || colon == val || (size_t)(colon - val) >= sizeof s->redis_host || errno || *end ||
            u == 0 || u > 65535) {
            fail(p, v, "cluster.redis: want HOST:PORT, got \"%s\"", val);
            return;
        }
        memcpy(s->redis_host, val, (size_t)(colon - val));
        s->redis_host[colon - val] = '\0';
        s->redis_port = (unsigned)u;
    } else if (strcmp(key, "key_prefix") == 0 || strcmp(key, "service") == 0 ||
               strcmp(key, "replica_id") == 0) {
        if (!sluice__name_valid(val, SLUICE_CLUSTER_NAME_MAX)) {
            fail(p, v, "cluster.%s: must be 1-64 characters of " SLUICE__NAME_CHARSET ", got \"%s\"", key,
                 val);
            return;
        }
        char *dst = key[0] == 'k' ? s->key_prefix : key[0] == 's' ? s->service : s->replica_id;
        snprintf(dst, SLUICE_CLUSTER_NAME_MAX + 1, "%s", val);
    } else if (strcmp(key, "heartbeat") == 0 || strcmp(key, "member_ttl") == 0 ||
               strcmp(key, "lease_ttl") == 0 || strcmp(key, "redis_timeout") == 0) {
        uint64_t ns;
        if (!parse_duration(val, &ns) || ns == 0) {
            fail(p, v, "cluster.%s: want a duration > 0 such as 250ms or 1s, got \"%s\"", key, val);
            return;
        }
        uint64_t *dst = key[0] == 'h'   ? &s->heartbeat_ns
                        : key[0] == 'm' ? &s->member_ttl_ns
                        : key[0] == 'l' ? &s->lease_ttl_ns
                                        : &s->redis_timeout_ns;
        *dst = ns;
    } else if (strcmp(key, "mode") == 0) {
        if (strcmp(val, "share") == 0) {
            s->strict = false;
        } else if (strcmp(val, "strict") == 0) {
            s->strict = true;
        } else {
            fail(p, v, "cluster.mode: want share or strict, got \"%s\"", val);
        }
    } else if (strcmp(key, "budget_file") == 0) {
        int n = val[0] == '/' || !dir[0] ? snprintf(s->budget_file, sizeof s->budget_file, "%s", val)
                                         : snprintf(s->budget_file, sizeof s->budget_file, "%s/%s", dir, val);
        if (n < 0 || (size_t)n >= sizeof s->budget_file || !val[0]) {
            fail(p, v, "cluster.budget_file: empty or too long");
        }
    } else if (strcmp(key, "fallback_k") == 0 || strcmp(key, "block") == 0) {
        errno = 0;
        u = strtoull(val, &end, 10);
        if (val[0] == '-' || errno || *end || end == val || u > UINT_MAX) {
            fail(p, v, "cluster.%s: must be an integer from 0 to %u, got \"%s\"", key, UINT_MAX, val);
            return;
        }
        *(key[0] == 'f' ? &s->fallback_k : &s->block) = (unsigned)u;
    } else {
        fail(p, k,
             "cluster.%s: unknown key (known: redis, key_prefix, service, replica_id, heartbeat, member_ttl, "
             "lease_ttl, redis_timeout, mode, budget_file, fallback_k, block)",
             key);
    }
}

sluice_err sluice_cluster_settings_load(const char *path, sluice_cluster_settings *out, char *errbuf,
                                        size_t errlen)
{
    if (!path || !out) {
        return SLUICE_EINVAL;
    }
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
        }
        return SLUICE_EIO;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return SLUICE_ENOMEM;
    }
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "%s:%lu:%lu: %s", path, (unsigned long)parser.problem_mark.line + 1,
                     (unsigned long)parser.problem_mark.column + 1,
                     parser.problem ? parser.problem : "YAML syntax error");
        }
        yaml_parser_delete(&parser);
        fclose(f);
        return SLUICE_EPARSE;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
    } else {
        dir[0] = '\0';
    }
    sparse p = {.name = path, .errbuf = errbuf, .errlen = errlen};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    const yaml_node_t *section = NULL;
    if (root && root->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
            yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
            if (scalar(k) && strcmp(scalar(k), "cluster") == 0) {
                section = yaml_document_get_node(&doc, pr->value);
            }
        }
    }
    if (section && section->type != YAML_MAPPING_NODE) {
        fail(&p, section, "cluster: must be a mapping (redis, service, mode, ...)");
    }
    for (yaml_node_pair_t *pr =
             section && section->type == YAML_MAPPING_NODE ? section->data.mapping.pairs.start : NULL;
         pr && pr < section->data.mapping.pairs.top && !p.failed; pr++) {
        yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(&doc, pr->value);
        if (!scalar(k)) {
            fail(&p, k, "cluster: keys must be plain words");
            break;
        }
        pair(&p, out, scalar(k), k, v, dir);
    }
    if (section && !p.failed && !out->service[0]) {
        fail(&p, section, "cluster.service: required (the service this replica belongs to)");
    }
    if (!p.failed && out->heartbeat_ns) {
        uint64_t hb = out->heartbeat_ns;
        if (out->member_ttl_ns && out->member_ttl_ns <= hb) {
            fail(&p, section, "cluster.member_ttl: must be longer than heartbeat");
        } else if (out->lease_ttl_ns && out->lease_ttl_ns <= hb) {
            fail(&p, section, "cluster.lease_ttl: must be longer than heartbeat");
        }
    }
    out->present = section != NULL;
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return p.failed ? SLUICE_EINVAL : SLUICE_OK;
}

void sluice_cluster_settings_apply(const sluice_cluster_settings *s, sluice_cluster_config *cfg)
{
    sluice_cluster_config_init(cfg);
    cfg->redis_host = s->redis_host[0] ? s->redis_host : NULL;
    cfg->redis_port = s->redis_port;
    cfg->key_prefix = s->key_prefix[0] ? s->key_prefix : NULL;
    cfg->service = s->service[0] ? s->service : NULL;
    cfg->replica_id = s->replica_id[0] ? s->replica_id : NULL;
    cfg->heartbeat_ns = s->heartbeat_ns;
    cfg->member_ttl_ns = s->member_ttl_ns;
    cfg->lease_ttl_ns = s->lease_ttl_ns;
    cfg->redis_timeout_ns = s->redis_timeout_ns;
}

/*
 * src/cluster/budget.c - downstream-budget.yaml: the text's format for
 * how services share one downstream.
 *
 *     downstream: payments-api
 *     total_limit: 200
 *     shares:
 *       orders-service: 80
 *       refunds-service: 60
 *       reports-service: 40
 *     free_pool: 20
 *
 * The file is read with libyaml's document API, so every error names the
 * file, line and column of the node that is wrong ("budget.yaml:4:19:
 * shares.orders-service: must be an integer >= 1, got \"many\""), like
 * sluice.yaml's errors. Checks: known keys only, downstream and
 * total_limit present, integers in range, no service twice, names of
 * [A-Za-z0-9_.:-], and shares + free_pool <= total_limit (the error
 * sits on the `shares` key and gives the sum). free_pool may be written
 * at the top level or inside shares (the text's flattened copy leaves
 * its indentation unclear); twice is an error.
 *
 * No state, no locks: parsing is a pure function of the text.
 */
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cluster/cluster_internal.h"

typedef struct bparse {
    yaml_document_t *doc;
    const char *name;
    char *errbuf;
    size_t errlen;
    bool failed;
    bool seen_free, seen_total, seen_downstream;
    sluice_budget *out;
} bparse;

static void fail(bparse *p, const yaml_node_t *n, const char *fmt, ...) SLUICE_PRINTF(3, 4);
static void fail(bparse *p, const yaml_node_t *n, const char *fmt, ...)
{
    if (p->failed) {
        return; /* the first error is the one reported */
    }
    p->failed = true;
    if (p->errbuf && p->errlen) {
        char what[256];
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

static bool parse_uint(const char *s, unsigned min, unsigned *out)
{
    if (!s || !*s || *s == '-' || *s == '+') {
        return false;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > UINT_MAX || v < min) {
        return false;
    }
    *out = (unsigned)v;
    return true;
}

static void read_uint(bparse *p, const char *key, const yaml_node_t *v, unsigned min, unsigned *out)
{
    const char *s = scalar(v);
    if (!parse_uint(s, min, out)) {
        fail(p, v, "%s: must be an integer >= %u, got \"%s\"", key, min, s ? s : "(not a scalar)");
    }
}

static void read_free(bparse *p, const yaml_node_t *v)
{
    if (p->seen_free) {
        fail(p, v, "free_pool: given twice");
        return;
    }
    p->seen_free = true;
    read_uint(p, "free_pool", v, 0, &p->out->free_pool);
}

static void read_shares(bparse *p, const yaml_node_t *m)
{
    if (m->type != YAML_MAPPING_NODE) {
        fail(p, m, "shares: must be a mapping of service: share");
        return;
    }
    for (yaml_node_pair_t *pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top && !p->failed;
         pr++) {
        yaml_node_t *k = yaml_document_get_node(p->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(p->doc, pr->value);
        const char *key = scalar(k);
        if (!key) {
            fail(p, k, "shares: keys must be service names");
            return;
        }
        if (strcmp(key, "free_pool") == 0) {
            read_free(p, v);
            continue;
        }
        if (!sluice__name_valid(key, SLUICE_CLUSTER_NAME_MAX)) {
            fail(p, k, "shares.%s: a service name must be 1-64 characters of " SLUICE__NAME_CHARSET, key);
            return;
        }
        for (size_t i = 0; i < p->out->share_count; i++) {
            if (strcmp(p->out->shares[i].service, key) == 0) {
                fail(p, k, "shares.%s: service given twice", key);
                return;
            }
        }
        if (p->out->share_count == SLUICE_BUDGET_MAX_SHARES) {
            fail(p, k, "shares: more than 64 services");
            return;
        }
        sluice_budget_share *s = &p->out->shares[p->out->share_count];
        char path[96];
        snprintf(path, sizeof path, "shares.%s", key);
        read_uint(p, path, v, 1, &s->share);
        snprintf(s->service, sizeof s->service, "%s", key);
        s->line = (unsigned)k->start_mark.line + 1;
        s->col = (unsigned)k->start_mark.column + 1;
        p->out->share_count++;
    }
}

sluice_err sluice_budget_parse(const char *text, size_t len, const char *name, sluice_budget *out,
                               char *errbuf, size_t errlen)
{
    if (!text || !out) {
        return SLUICE_EINVAL;
    }
    memset(out, 0, sizeof *out);
    if (!name) {
        name = "budget";
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        return SLUICE_ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "%s:%lu:%lu: %s", name, (unsigned long)parser.problem_mark.line + 1,
                     (unsigned long)parser.problem_mark.column + 1,
                     parser.problem ? parser.problem : "YAML syntax error");
        }
        yaml_parser_delete(&parser);
        return SLUICE_EPARSE;
    }
    bparse p = {.doc = &doc, .name = name, .errbuf = errbuf, .errlen = errlen, .out = out};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    sluice_err err = SLUICE_OK;
    yaml_node_t *shares_key = NULL;
    if (!root) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "%s:1:1: empty file (want downstream, total_limit, shares)", name);
        }
        err = SLUICE_EINVAL;
        goto done;
    }
    if (root->type != YAML_MAPPING_NODE) {
        fail(&p, root, "the file must be a mapping (downstream, total_limit, shares, free_pool)");
    }
    for (yaml_node_pair_t *pr = root->type == YAML_MAPPING_NODE ? root->data.mapping.pairs.start : NULL;
         pr && pr < root->data.mapping.pairs.top && !p.failed; pr++) {
        yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(&doc, pr->value);
        const char *key = scalar(k);
        if (!key) {
            fail(&p, k, "keys must be plain words");
        } else if (strcmp(key, "downstream") == 0) {
            const char *s = scalar(v);
            if (!sluice__name_valid(s, SLUICE_CLUSTER_NAME_MAX)) {
                fail(&p, v, "downstream: must be 1-64 characters of " SLUICE__NAME_CHARSET ", got \"%s\"",
                     s ? s : "(not a scalar)");
            } else {
                snprintf(out->downstream, sizeof out->downstream, "%s", s);
                p.seen_downstream = true;
            }
        } else if (strcmp(key, "total_limit") == 0) {
            read_uint(&p, "total_limit", v, 1, &out->total_limit);
            p.seen_total = true;
        } else if (strcmp(key, "shares") == 0) {
            shares_key = k;
            read_shares(&p, v);
        } else if (strcmp(key, "free_pool") == 0) {
            read_free(&p, v);
        } else {
            fail(&p, k, "%s: unknown key (known: downstream, total_limit, shares, free_pool)", key);
        }
    }
    if (!p.failed && !p.seen_downstream) {
        fail(&p, root, "downstream: required (the downstream's name)");
    }
    if (!p.failed && !p.seen_total) {
        fail(&p, root, "total_limit: required (the downstream's limit)");
    }
    if (!p.failed) {
        unsigned long long sum = out->free_pool;
        for (size_t i = 0; i < out->share_count; i++) {
            sum += out->shares[i].share;
        }
        if (sum > out->total_limit) {
            char a[64], b[32];
            snprintf(a, sizeof a, "%llu", sum);
            snprintf(b, sizeof b, "%u", out->total_limit);
            fail(&p, shares_key ? shares_key : root,
                 "shares: the shares plus free_pool sum to %s, over total_limit %s", a, b);
        }
    }
    err = p.failed ? SLUICE_EINVAL : SLUICE_OK;
done:
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return err;
}

sluice_err sluice_budget_load(const char *path, sluice_budget *out, char *errbuf, size_t errlen)
{
    if (!path || !out) {
        return SLUICE_EINVAL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
        }
        return SLUICE_EIO;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap) {
            break;
        }
        if (cap >= (1u << 20)) {
            free(buf);
            fclose(f);
            if (errbuf && errlen) {
                snprintf(errbuf, errlen, "%s: larger than 1 MiB", path);
            }
            return SLUICE_EINVAL;
        }
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    bool rerr = ferror(f);
    fclose(f);
    if (!buf) {
        return SLUICE_ENOMEM;
    }
    if (rerr) {
        free(buf);
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "%s: read error", path);
        }
        return SLUICE_EIO;
    }
    sluice_err err = sluice_budget_parse(buf, len, path, out, errbuf, errlen);
    free(buf);
    return err;
}

unsigned sluice_budget_share_of(const sluice_budget *b, const char *service)
{
    if (!b || !service) {
        return 0;
    }
    for (size_t i = 0; i < b->share_count; i++) {
        if (strcmp(b->shares[i].service, service) == 0) {
            return b->shares[i].share;
        }
    }
    return 0;
}

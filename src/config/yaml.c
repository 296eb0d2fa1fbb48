/*
 * src/config/yaml.c - reading sluice.yaml: the YAML walk and the load
 * calls.
 *
 * Purpose. The file is the service's source of truth for its pools, so a
 * mistake in it must be caught before anything runs, and reported so that
 * a person can fix it without reading code: every message names the file,
 * line and column of the value, the dotted path of the key, what is wrong,
 * and the value that was found.
 *
 * Design. Two passes over libyaml:
 *  1. Events (yaml_parser_parse), only to bound the nesting depth: the
 *     walk stops at the first list or mapping deeper than
 *     SLUICE__CONFIG_MAX_DEPTH with its line and column. libyaml's scanner
 *     and document loader are quadratic in depth (a 200 KB file of '['
 *     took 24 s), so the bound has to hold before the tree is built; a
 *     reload of a hostile file then ends in microseconds and never holds
 *     up a drain waiting for the reload thread.
 *  2. The document loader builds a node tree (anchors and aliases
 *     resolved; every node carries its start mark), walked against the
 *     schema's rows (schema.c): a key that is in no row is an error, as is
 *     a duplicate key or a value of the wrong shape. Every scalar goes
 *     through sluice__cfg_set, which the environment overrides (env.c)
 *     reuse, so "workers: 0" in the file and SLUICE_POOL_PUSH_WORKERS=0
 *     are parsed and reported the same way. Validation of the whole
 *     (validate.c) runs once, after the overrides, on the finished struct.
 *
 * All-or-nothing. The loader builds a fresh config in its own arena and
 * hands it out only when no error was found; on any error the arena is
 * freed and the caller's state is untouched.
 *
 * Bounds. Input larger than 1 MiB is refused (streams are read no further
 * than that); nesting is bounded as above; libyaml keeps aliases as shared
 * nodes and this walk descends only into the known structure, so alias
 * tricks cannot make it loop or explode.
 *
 * No global state; no locks. Thread-safe on distinct configs.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "config/config_internal.h"

extern char **environ;

/* Bounds on the shape, so that aliases cannot multiply the walk's work:
 * keys in one mapping (the duplicate check is quadratic) and entries of
 * `pools:` / `downstream_budget:`. */
#define MAX_KEYS 256
#define MAX_ITEMS 1024

/* ---- the loader's state --------------------------------------------- */

typedef struct loader {
    cfg_impl *c;
    cfg_errs *e;
    yaml_document_t *doc;
    bool oom;
} loader;

static sluice_config_pos mark_pos(loader *L, const yaml_node_t *n)
{
    sluice_config_pos p = {L->c->pub.source, (unsigned)n->start_mark.line + 1,
                           (unsigned)n->start_mark.column + 1, NULL};
    return p;
}

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* Is the scalar a YAML null (empty / ~ / null) written plainly? */
static bool is_null_scalar(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return false;
    }
    const char *s = scalar(n);
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

/* Iterate a mapping's pairs, reporting duplicate keys and non-scalar keys.
 * Returns false when the node is not a mapping (error reported). */
typedef void (*pair_fn)(loader *L, void *obj, const char *path, const char *key, yaml_node_t *keynode,
                        yaml_node_t *value);

static bool walk_mapping(loader *L, yaml_node_t *n, const char *path, void *obj, pair_fn fn)
{
    if (n->type != YAML_MAPPING_NODE) {
        sluice_config_pos pos = mark_pos(L, n);
        if (is_null_scalar(n)) {
            return true; /* an empty section */
        }
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "%s: must be a mapping (key: value lines), got %s", path,
                         node_kind(n));
        return false;
    }
    yaml_node_pair_t *start = n->data.mapping.pairs.start;
    yaml_node_pair_t *top = n->data.mapping.pairs.top;
    if (top - start > MAX_KEYS) {
        /* The duplicate check is quadratic, and an alias can repeat a
         * mapping many times: bound the work up front. */
        sluice_config_pos pos = mark_pos(L, n);
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "%s: more than %d keys", path[0] ? path : "the file",
                         MAX_KEYS);
        return false;
    }
    for (yaml_node_pair_t *pr = start; pr < top; pr++) {
        yaml_node_t *k = yaml_document_get_node(L->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(L->doc, pr->value);
        sluice_config_pos kp = mark_pos(L, k);
        if (k->type != YAML_SCALAR_NODE) {
            sluice__cfg_errf(L->e, SLUICE_EINVAL, &kp, "%s: keys must be plain words, got %s", path,
                             node_kind(k));
            continue;
        }
        bool dup = false;
        for (yaml_node_pair_t *q = start; q < pr; q++) {
            yaml_node_t *qk = yaml_document_get_node(L->doc, q->key);
            if (qk->type == YAML_SCALAR_NODE) {
                /* Compare in canonical form: "a-b" and "a_b" are one key. */
                const char *x = scalar(qk), *y = scalar(k);
                for (; *x && *y; x++, y++) {
                    if ((*x == '-' ? '_' : *x) != (*y == '-' ? '_' : *y)) {
                        break;
                    }
                }
                if (*x == '\0' && *y == '\0') {
                    dup = true;
                    sluice__cfg_errf(L->e, SLUICE_EINVAL, &kp, "%s.%s: duplicate key (first at line %u)",
                                     path, scalar(k), (unsigned)qk->start_mark.line + 1);
                    break;
                }
            }
        }
        if (!dup) {
            fn(L, obj, path, scalar(k), k, v);
        }
    }
    return true;
}

static bool want_scalar(loader *L, const char *path, const char *key, yaml_node_t *v)
{
    if (v->type == YAML_SCALAR_NODE) {
        return true;
    }
    sluice_config_pos pos = mark_pos(L, v);
    sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "%s.%s: must be a single value, got %s", path, key,
                     node_kind(v));
    return false;
}

/* A list of seconds written as a YAML list (the scalar form goes through
 * the row's text parser, as an environment value does). */
static void set_list_node(loader *L, const cfg_slot *slot, unsigned index, const char *path, yaml_node_t *n)
{
    const sluice_config_key *k = &slot->keys[index];
    sluice_config_pos pos = mark_pos(L, n);
    size_t cap = k->max ? (size_t)k->max : SLUICE_HIST_MAX_BUCKETS;
    if (n->type != YAML_SEQUENCE_NODE) {
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "%s.%s: must be a list of seconds, got %s", path, k->name,
                         node_kind(n));
        return;
    }
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count > cap) {
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "%s.%s: at most %zu bounds, got %zu", path, k->name, cap,
                         count);
        return;
    }
    double *b = sluice__cfg_alloc(L->c, (count ? count : 1) * sizeof(double));
    if (!b) {
        L->oom = true;
        return;
    }
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *it = yaml_document_get_node(L->doc, n->data.sequence.items.start[i]);
        sluice_config_pos ip = mark_pos(L, it);
        if (it->type != YAML_SCALAR_NODE || !sluice__cfg_parse_bound(scalar(it), &b[i])) {
            sluice__cfg_errf(L->e, SLUICE_EINVAL, &ip,
                             "%s.%s[%zu]: not a number of seconds or a duration, got %s%s%s", path, k->name,
                             i, it->type == YAML_SCALAR_NODE ? "\"" : "",
                             it->type == YAML_SCALAR_NODE ? scalar(it) : node_kind(it),
                             it->type == YAML_SCALAR_NODE ? "\"" : "");
            return;
        }
    }
    *(double **)((unsigned char *)slot->base + k->offset) = b;
    *(size_t *)((unsigned char *)slot->base + k->count_offset) = count;
    *slot->set |= (uint64_t)1 << index;
    slot->pos[index] = pos;
}

/* One `key: value` of a TABLE item: the item's rows are one slot. */
static void item_pair(loader *L, void *obj, const char *path, const char *key, yaml_node_t *kn,
                      yaml_node_t *v);

typedef struct item_ctx {
    cfg_slot slot;
} item_ctx;

/* A TABLE row's value: a list of mappings, each item parsed against the
 * table's rows into an array in the config's arena. Required keys and the
 * table's own check are judged per item here (the environment cannot
 * change an item, so nothing later could fix them). */
static void set_table_node(loader *L, const cfg_slot *slot, unsigned index, const char *path, yaml_node_t *n)
{
    const sluice_config_key *k = &slot->keys[index];
    const sluice_config_table *t = k->table;
    sluice_config_pos pos = mark_pos(L, n);
    if (n->type != YAML_SEQUENCE_NODE) {
        if (is_null_scalar(n)) {
            *slot->set |= (uint64_t)1 << index; /* "tenants:" with nothing: an empty list */
            slot->pos[index] = pos;
            return;
        }
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos,
                         "%s.%s: must be a list of mappings (\"- name: ...\" items), got %s", path, k->name,
                         node_kind(n));
        return;
    }
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    size_t cap = t->max_items ? t->max_items : MAX_ITEMS;
    if (count > cap) {
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "%s.%s: at most %zu entries, got %zu", path, k->name, cap,
                         count);
        return;
    }
    unsigned char *items = NULL;
    if (count) {
        items = sluice__cfg_alloc(L->c, count * t->item_size);
        if (!items) {
            L->oom = true;
            return;
        }
        memset(items, 0, count * t->item_size);
    }
    for (size_t i = 0; i < count && !L->oom; i++) {
        yaml_node_t *it = yaml_document_get_node(L->doc, n->data.sequence.items.start[i]);
        unsigned char *item = items + i * t->item_size;
        item_ctx ic = {{t->keys, t->key_count, item, (uint64_t *)(item + t->set_offset),
                        (sluice_config_pos *)(item + t->pos_offset)}};
        sluice_config_pos ip = mark_pos(L, it);
        *(sluice_config_pos *)(item + t->entry_pos_offset) = ip;
        if (!sluice__cfg_defaults(L->c, &ic.slot)) {
            L->oom = true;
            return;
        }
        char ipath[160];
        snprintf(ipath, sizeof ipath, "%s.%s[%zu]", path, k->name, i);
        if (it->type != YAML_MAPPING_NODE) {
            sluice__cfg_errf(L->e, SLUICE_EINVAL, &ip,
                             "%s: must be a mapping (name: ..., and the keys of %s), got %s", ipath, k->name,
                             node_kind(it));
            continue;
        }
        unsigned before = L->e->count;
        size_t before_len = L->e->len;
        walk_mapping(L, it, ipath, &ic, item_pair);
        for (unsigned j = 0; j < t->key_count; j++) {
            if ((t->keys[j].flags & SLUICE_CONFIG_REQUIRED) && !((*ic.slot.set >> j) & 1u)) {
                sluice__cfg_errf(L->e, SLUICE_EINVAL, &ip, "%s.%s: required", ipath, t->keys[j].name);
            }
        }
        unsigned bad = 0;
        const char *why = (L->e->count == before && t->check) ? t->check(item, &bad) : NULL;
        if (why && bad < t->key_count) {
            const sluice_config_pos *bp = ((*ic.slot.set >> bad) & 1u) ? &ic.slot.pos[bad] : &ip;
            sluice__cfg_errf(L->e, SLUICE_EINVAL, bp, "%s.%s: %s", ipath, t->keys[bad].name, why);
        }
        /* Say which item each complaint is about ("(tenant \"gold\")"). */
        if (t->item_label && L->e->count > before && t->label_key < t->key_count &&
            t->keys[t->label_key].type == SLUICE_CONFIG_STRING && ((*ic.slot.set >> t->label_key) & 1u)) {
            const char *label = *(const char *const *)(item + t->keys[t->label_key].offset);
            if (label) {
                sluice__cfg_errs_label(L->e, before_len, ipath, t->item_label, label);
            }
        }
    }
    *(unsigned char **)((unsigned char *)slot->base + k->offset) = items;
    *(size_t *)((unsigned char *)slot->base + k->count_offset) = count;
    *slot->set |= (uint64_t)1 << index;
    slot->pos[index] = pos;
}

/* One `key: value` of a section: find the row among the slots (library,
 * then extensions) and set it. */
static void section_pair(loader *L, const cfg_slot *slots, unsigned nslots, const char *path, const char *key,
                         yaml_node_t *kn, yaml_node_t *v)
{
    unsigned s, i;
    if (!sluice__cfg_find(slots, nslots, key, &s, &i)) {
        char known[1024] = "";
        if (L->e->count < SLUICE__CONFIG_MAX_ERRORS) { /* past it the line is only counted */
            sluice__cfg_list_keys(slots, nslots, false, known, sizeof known);
        }
        sluice_config_pos pos = mark_pos(L, kn);
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "%s.%s: unknown key (known: %s)", path, key, known);
        return;
    }
    if (slots[s].keys[i].type == SLUICE_CONFIG_SECONDS_LIST && v->type != YAML_SCALAR_NODE) {
        set_list_node(L, &slots[s], i, path, v);
        return;
    }
    if (slots[s].keys[i].type == SLUICE_CONFIG_TABLE) {
        set_table_node(L, &slots[s], i, path, v);
        return;
    }
    if (!want_scalar(L, path, key, v)) {
        return;
    }
    sluice_config_pos pos = mark_pos(L, v);
    if (!sluice__cfg_set(L->c, L->e, &slots[s], i, path, scalar(v), &pos)) {
        L->oom = true;
    }
}

static void item_pair(loader *L, void *obj, const char *path, const char *key, yaml_node_t *kn,
                      yaml_node_t *v)
{
    item_ctx *ic = obj;
    unsigned s, i;
    if (!sluice__cfg_find(&ic->slot, 1, key, &s, &i)) {
        char known[512] = "";
        sluice__cfg_list_keys(&ic->slot, 1, false, known, sizeof known);
        sluice_config_pos pos = mark_pos(L, kn);
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "%s.%s: unknown key (known: %s)", path, key, known);
        return;
    }
    if (!want_scalar(L, path, key, v)) {
        return;
    }
    sluice_config_pos pos = mark_pos(L, v);
    if (!sluice__cfg_set(L->c, L->e, &ic->slot, i, path, scalar(v), &pos)) {
        L->oom = true;
    }
}

/* The nested form of the adaptive limit's keys (issue 14's shape):
 * `concurrency: {mode: aimd, min: 2, max: 64, interval: 1s}` sets the
 * same schema rows as the flat `concurrency_mode`, `concurrency_min`, ...
 * A subkey given both ways is an error, like a key given twice. */
static const char *const nested_concurrency[] = {"mode", "min", "max", "interval"};

typedef struct nested_ctx {
    sluice_config_pool *pool;
    const char *pool_path;
} nested_ctx;

static void concurrency_pair(loader *L, void *obj, const char *path, const char *key, yaml_node_t *kn,
                             yaml_node_t *v)
{
    nested_ctx *nc = obj;
    size_t n = sizeof nested_concurrency / sizeof nested_concurrency[0];
    size_t i = 0;
    while (i < n && strcmp(key, nested_concurrency[i]) != 0) {
        i++;
    }
    sluice_config_pos pos = mark_pos(L, kn);
    if (i == n) {
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "%s.%s: unknown key (known: mode, min, max, interval)",
                         path, key);
        return;
    }
    char flat[64];
    snprintf(flat, sizeof flat, "concurrency_%s", key);
    cfg_slot slots[1 + SLUICE__CONFIG_MAX_EXTS];
    unsigned ns = sluice__cfg_pool_slots(nc->pool, slots, 1 + SLUICE__CONFIG_MAX_EXTS);
    unsigned s, row;
    if (!sluice__cfg_find(slots, ns, flat, &s, &row)) { /* the schema lost a row: a bug, said plainly */
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "%s.%s: no schema row %s", path, key, flat);
        return;
    }
    if ((*slots[s].set >> row) & 1u) {
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "%s.%s: given twice (also as %s.%s)", path, key,
                         nc->pool_path, flat);
        return;
    }
    section_pair(L, slots, ns, nc->pool_path, flat, kn, v);
}

static void pool_pair(loader *L, void *obj, const char *path, const char *key, yaml_node_t *kn,
                      yaml_node_t *v)
{
    cfg_slot slots[1 + SLUICE__CONFIG_MAX_EXTS];
    unsigned n = sluice__cfg_pool_slots(obj, slots, 1 + SLUICE__CONFIG_MAX_EXTS);
    if (strcmp(key, "concurrency") == 0) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s.concurrency", path);
        nested_ctx nc = {.pool = obj, .pool_path = path};
        (void)walk_mapping(L, v, sub, &nc, concurrency_pair);
        return;
    }
    if (strncmp(key, "concurrency_", 12) == 0) {
        /* The flat key after the nested map gave it: the same error. */
        unsigned s, row;
        if (sluice__cfg_find(slots, n, key, &s, &row) && ((*slots[s].set >> row) & 1u)) {
            sluice_config_pos pos = mark_pos(L, kn);
            sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "%s.%s: given twice (also as %s.concurrency.%s)",
                             path, key, path, key + 12);
            return;
        }
    }
    section_pair(L, slots, n, path, key, kn, v);
}

static void service_pair(loader *L, void *obj, const char *path, const char *key, yaml_node_t *kn,
                         yaml_node_t *v)
{
    cfg_slot slots[1 + SLUICE__CONFIG_MAX_EXTS];
    unsigned n = sluice__cfg_service_slots(&L->c->pub.service, slots, 1 + SLUICE__CONFIG_MAX_EXTS);
    section_pair(L, slots, n, "service", key, kn, v);
}

typedef struct ds_ctx {
    sluice_config_downstream *d;
    size_t share_cap;
} ds_ctx;

static void share_pair(loader *L, void *obj, const char *path, const char *key, yaml_node_t *kn,
                       yaml_node_t *v)
{
    ds_ctx *dc = obj;
    sluice_config_downstream *d = dc->d;
    if (!want_scalar(L, path, key, v)) {
        return;
    }
    sluice_config_pos pos = mark_pos(L, v);
    uint64_t u;
    bool neg;
    if (!sluice__cfg_parse_u64(scalar(v), &u, &neg) || u > UINT_MAX) {
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "%s.%s: not a non-negative integer, got \"%s\"", path,
                         key, scalar(v));
        return;
    }
    if (d->share_count == dc->share_cap) {
        size_t cap = dc->share_cap ? dc->share_cap * 2 : 8;
        sluice_config_share *ns = sluice__cfg_alloc(L->c, cap * sizeof *ns);
        if (!ns) {
            L->oom = true;
            return;
        }
        if (d->share_count) {
            memcpy(ns, d->shares, d->share_count * sizeof *ns);
        }
        d->shares = ns;
        dc->share_cap = cap;
    }
    sluice_config_share *s = &d->shares[d->share_count++];
    s->service = sluice__cfg_strdup(L->c, key);
    s->limit = (unsigned)u;
    s->pos = pos;
    if (!s->service) {
        L->oom = true;
    }
}

static void downstream_pair(loader *L, void *obj, const char *path, const char *key, yaml_node_t *kn,
                            yaml_node_t *v)
{
    ds_ctx *dc = obj;
    sluice_config_downstream *d = dc->d;
    sluice_config_pos pos = mark_pos(L, v);
    if (sluice__cfg_key_eq(key, "downstream")) {
        if (want_scalar(L, path, key, v)) {
            d->name = sluice__cfg_strdup(L->c, scalar(v));
            L->oom |= d->name == NULL;
        }
    } else if (sluice__cfg_key_eq(key, "total_limit")) {
        if (want_scalar(L, path, key, v)) {
            uint64_t u;
            bool neg;
            if (!sluice__cfg_parse_u64(scalar(v), &u, &neg) || u == 0 || u > UINT_MAX) {
                sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos,
                                 "%s.total_limit: must be an integer > 0, got \"%s\"", path, scalar(v));
            } else {
                d->total_limit = (unsigned)u;
            }
        }
    } else if (sluice__cfg_key_eq(key, "shares")) {
        char sp[96];
        snprintf(sp, sizeof sp, "%s.shares", path);
        walk_mapping(L, v, sp, dc, share_pair);
    } else {
        sluice_config_pos kp = mark_pos(L, kn);
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &kp,
                         "%s.%s: unknown key (known: downstream, total_limit, shares)", path, key);
    }
}

static void walk_pools(loader *L, yaml_node_t *n)
{
    sluice_config_pos pos = mark_pos(L, n);
    if (n->type != YAML_SEQUENCE_NODE) {
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos,
                         "pools: must be a list of pools (\"- name: ...\" items), got %s", node_kind(n));
        return;
    }
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count > MAX_ITEMS) {
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "pools: more than %d pools", MAX_ITEMS);
        return;
    }
    for (size_t i = 0; i < count && !L->oom; i++) {
        yaml_node_t *it = yaml_document_get_node(L->doc, n->data.sequence.items.start[i]);
        sluice_config_pool *p = sluice__cfg_add_pool(L->c);
        if (!p) {
            L->oom = true;
            return;
        }
        p->entry_pos = mark_pos(L, it);
        char path[48];
        snprintf(path, sizeof path, "pools[%zu]", i);
        walk_mapping(L, it, path, p, pool_pair);
    }
}

static void walk_downstreams(loader *L, yaml_node_t *n)
{
    sluice_config_pos pos = mark_pos(L, n);
    if (n->type != YAML_SEQUENCE_NODE) {
        if (is_null_scalar(n)) {
            return;
        }
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos,
                         "downstream_budget: must be a list of {downstream, total_limit, shares}, got %s",
                         node_kind(n));
        return;
    }
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0) {
        return;
    }
    if (count > MAX_ITEMS) {
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "downstream_budget: more than %d entries", MAX_ITEMS);
        return;
    }
    sluice_config *cfg = &L->c->pub;
    cfg->downstreams = calloc(count, sizeof *cfg->downstreams);
    if (!cfg->downstreams) {
        L->oom = true;
        return;
    }
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *it = yaml_document_get_node(L->doc, n->data.sequence.items.start[i]);
        sluice_config_downstream *d = &cfg->downstreams[cfg->downstream_count++];
        d->pos = mark_pos(L, it);
        char path[48];
        snprintf(path, sizeof path, "downstream_budget[%zu]", i);
        ds_ctx dc = {d, 0};
        walk_mapping(L, it, path, &dc, downstream_pair);
    }
}

static void cluster_pair(loader *L, void *obj, const char *path, const char *key, yaml_node_t *kn,
                         yaml_node_t *v)
{
    (void)obj;
    cfg_slot slot;
    sluice__cfg_cluster_slots(&L->c->pub.cluster, &slot, 1);
    section_pair(L, &slot, 1, path, key, kn, v);
}

static void top_pair(loader *L, void *obj, const char *path, const char *key, yaml_node_t *kn, yaml_node_t *v)
{
    bool *seen_pools = obj;
    if (sluice__cfg_key_eq(key, "service")) {
        walk_mapping(L, v, "service", NULL, service_pair);
    } else if (sluice__cfg_key_eq(key, "pools")) {
        *seen_pools = true;
        walk_pools(L, v);
    } else if (sluice__cfg_key_eq(key, "downstream_budget")) {
        walk_downstreams(L, v);
    } else if (sluice__cfg_key_eq(key, "cluster")) {
        L->c->pub.cluster.present = true;
        L->c->pub.cluster.section_pos = mark_pos(L, kn);
        walk_mapping(L, v, "cluster", NULL, cluster_pair);
    } else {
        sluice_config_pos pos = mark_pos(L, kn);
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos,
                         "%s: unknown top-level key (known: service, pools, "
                         "downstream_budget, cluster)",
                         key);
    }
}

/* ---- load ----------------------------------------------------------- */

static sluice_err finish(cfg_impl *c, cfg_errs *e, bool oom, sluice_config **out, char *errbuf, size_t errlen)
{
    if (oom) {
        sluice_config_free(&c->pub);
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "out of memory while loading the config");
        }
        return SLUICE_ENOMEM;
    }
    if (e->count) {
        sluice__cfg_errs_copy(e, errbuf, errlen);
        sluice_config_free(&c->pub);
        return e->first;
    }
    if (errbuf && errlen) {
        errbuf[0] = '\0';
    }
    *out = &c->pub;
    return SLUICE_OK;
}

/*
 * Pass 1: walk the events and stop at the first list or mapping nested
 * deeper than SLUICE__CONFIG_MAX_DEPTH, or at a syntax error. Returns true
 * when the text may go on to the document loader.
 */
static bool check_depth(cfg_impl *c, cfg_errs *e, const char *text, size_t len, bool *oom)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        *oom = true;
        return false;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    unsigned depth = 0;
    bool ok = true;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            if (parser.error == YAML_MEMORY_ERROR) {
                *oom = true;
            } else {
                sluice_config_pos pos = {c->pub.source, (unsigned)parser.problem_mark.line + 1,
                                         (unsigned)parser.problem_mark.column + 1, NULL};
                sluice__cfg_errf(e, SLUICE_EPARSE, &pos, "not valid YAML: %s%s%s",
                                 parser.problem ? parser.problem : "unknown problem",
                                 parser.context ? " " : "", parser.context ? parser.context : "");
            }
            ok = false;
            break;
        }
        yaml_event_type_t type = ev.type;
        if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) {
            if (++depth > SLUICE__CONFIG_MAX_DEPTH) {
                sluice_config_pos pos = {c->pub.source, (unsigned)ev.start_mark.line + 1,
                                         (unsigned)ev.start_mark.column + 1, NULL};
                sluice__cfg_errf(e, SLUICE_EINVAL, &pos,
                                 "nested deeper than %d lists and mappings (sluice.yaml needs at most 5)",
                                 SLUICE__CONFIG_MAX_DEPTH);
                ok = false;
            }
        } else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) {
            depth--;
        }
        yaml_event_delete(&ev);
        if (!ok || type == YAML_STREAM_END_EVENT) {
            break;
        }
    }
    yaml_parser_delete(&parser);
    return ok;
}

sluice_err sluice_config_load_string(const char *text, size_t len, const char *name,
                                     const sluice_config_load_opts *opts, sluice_config **out, char *errbuf,
                                     size_t errlen)
{
    if (errbuf && errlen) {
        errbuf[0] = '\0';
    }
    if (!text || !out) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "sluice_config_load_string: text and out are required");
        }
        return SLUICE_EINVAL;
    }
    cfg_errs *e = calloc(1, sizeof *e);
    cfg_impl *c = sluice__cfg_new(name);
    if (!e || !c) {
        free(e);
        sluice_config_free(c ? &c->pub : NULL);
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "out of memory while loading the config");
        }
        return SLUICE_ENOMEM;
    }
    bool oom = false;
    if (len > SLUICE__CONFIG_MAX_INPUT) {
        sluice_config_pos src = {c->pub.source, 0, 0, NULL};
        sluice__cfg_errf(e, SLUICE_EINVAL, &src, "file too large (%zu bytes; the limit is %u)", len,
                         SLUICE__CONFIG_MAX_INPUT);
    }
    if (e->count == 0) {
        sluice__cfg_register_exts(c, opts, e, &oom);
    }
    if (e->count || oom || !check_depth(c, e, text, len, &oom)) {
        sluice_err r = finish(c, e, oom, out, errbuf, errlen);
        free(e);
        return r;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        free(e);
        sluice_config_free(&c->pub);
        return SLUICE_ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        sluice_config_pos pos = {c->pub.source, (unsigned)parser.problem_mark.line + 1,
                                 (unsigned)parser.problem_mark.column + 1, NULL};
        sluice__cfg_errf(e, SLUICE_EPARSE, &pos, "not valid YAML: %s%s%s",
                         parser.problem ? parser.problem : "unknown problem", parser.context ? " " : "",
                         parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        sluice_err r = finish(c, e, false, out, errbuf, errlen);
        free(e);
        return r;
    }
    loader L = {c, e, &doc, false};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    sluice_config_pos src = {c->pub.source, 0, 0, NULL};
    bool seen_pools = false;
    if (!root) {
        sluice__cfg_errf(e, SLUICE_EINVAL, &src, "the file is empty: it needs at least a pools: list");
    } else if (root->type != YAML_MAPPING_NODE) {
        sluice_config_pos pos = mark_pos(&L, root);
        sluice__cfg_errf(e, SLUICE_EINVAL, &pos, "the top level must be a mapping (service:, pools:), got %s",
                         node_kind(root));
    } else {
        walk_mapping(&L, root, "", &seen_pools, top_pair);
        /* A second document is a mistake (a stray "---"), not ignored. */
        yaml_document_t doc2;
        if (yaml_parser_load(&parser, &doc2)) {
            yaml_node_t *r2 = yaml_document_get_root_node(&doc2);
            if (r2) {
                sluice_config_pos pos = mark_pos(&L, r2);
                sluice__cfg_errf(e, SLUICE_EINVAL, &pos,
                                 "a second YAML document: the file must hold exactly one");
            }
            yaml_document_delete(&doc2);
        }
    }
    /* Environment overrides need the pool names, so they run after the
     * walk; only when the file itself was fine, so every message is about
     * one problem, not its echoes. */
    if (e->count == 0 && !L.oom && !(opts && opts->no_env)) {
        const char *const *envp = (opts && opts->envp) ? opts->envp : (const char *const *)environ;
        sluice__cfg_apply_env(c, e, envp, &L.oom);
    }
    if (e->count == 0 && !L.oom) {
        sluice__cfg_validate(&c->pub, e);
    }
    oom = L.oom;
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    sluice_err r = finish(c, e, oom, out, errbuf, errlen);
    free(e);
    return r;
}

sluice_err sluice_config_load_stream(FILE *in, const char *name, const sluice_config_load_opts *opts,
                                     sluice_config **out, char *errbuf, size_t errlen)
{
    if (errbuf && errlen) {
        errbuf[0] = '\0';
    }
    if (!in || !out) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "sluice_config_load_stream: in and out are required");
        }
        return SLUICE_EINVAL;
    }
    if (!name) {
        name = "<stream>";
    }
    /* Read one byte past the limit, no more: that byte says "too large"
     * without reading an endless stream (/dev/zero, a pipe) to its end. */
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf && len <= SLUICE__CONFIG_MAX_INPUT) {
        if (len == cap) {
            size_t ncap = cap * 2 > SLUICE__CONFIG_MAX_INPUT + 1 ? SLUICE__CONFIG_MAX_INPUT + 1 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, in);
        len += got;
        if (got == 0) {
            break;
        }
    }
    int rerr = ferror(in) ? errno : 0;
    if (!buf) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "%s: out of memory reading the file", name);
        }
        return SLUICE_ENOMEM;
    }
    if (rerr) {
        free(buf);
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "%s: read failed: %s", name, strerror(rerr));
        }
        return SLUICE_EIO;
    }
    if (len > SLUICE__CONFIG_MAX_INPUT) {
        free(buf);
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "%s: file too large (more than %u bytes; the limit is %u)", name,
                     SLUICE__CONFIG_MAX_INPUT, SLUICE__CONFIG_MAX_INPUT);
        }
        return SLUICE_EINVAL;
    }
    sluice_err r = sluice_config_load_string(buf, len, name, opts, out, errbuf, errlen);
    free(buf);
    return r;
}

sluice_err sluice_config_load_file(const char *path, const sluice_config_load_opts *opts, sluice_config **out,
                                   char *errbuf, size_t errlen)
{
    if (!path || !out) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "sluice_config_load_file: path and out are required");
        }
        return SLUICE_EINVAL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "%s: cannot open: %s", path, strerror(errno));
        }
        return SLUICE_EIO;
    }
    sluice_err r = sluice_config_load_stream(f, path, opts, out, errbuf, errlen);
    fclose(f);
    return r;
}

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
 * The rows (schema.c) drive it: every key of every slot in table order,
 * library keys first, then each registered extension's. Keys that hold
 * nothing (no rationale, no downstream, rows flagged OMIT_ZERO at zero,
 * OMIT_UNSET when not given) are left out, so they stay "not given" after
 * the round trip.
 *
 * No locks, no global state.
 */
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

/* May code point cp (>= 0x80) be written as itself in a double-quoted
 * scalar? Not when YAML cannot print it, and not the line breaks NEL, LS
 * and PS, which a reader folds into a space. */
static bool yaml_printable(unsigned long cp)
{
    if (cp == 0x2028 || cp == 0x2029) {
        return false;
    }
    return (cp >= 0xA0 && cp <= 0xD7FF) || (cp >= 0xE000 && cp <= 0xFFFD && cp != 0xFEFF) ||
           (cp >= 0x10000 && cp <= 0x10FFFF);
}

size_t sluice__cfg_utf8_decode(const unsigned char *s, unsigned long *cp)
{
    size_t n;
    unsigned long v, min;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        n = 2, v = s[0] & 0x1Fu, min = 0x80;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        n = 3, v = s[0] & 0x0Fu, min = 0x800;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        n = 4, v = s[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0u) != 0x80) {
            return 0;
        }
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        return 0;
    }
    *cp = v;
    return n;
}

/* A double-quoted YAML string that reads back to the same bytes (for
 * valid UTF-8; a byte that is not is written as \xHH, which reads back as
 * that code point). */
static void put_str(FILE *f, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    fputc('"', f);
    while (*s) {
        unsigned char ch = *s;
        if (ch == '"' || ch == '\\') {
            fputc('\\', f);
            fputc(ch, f);
        } else if (ch == '\n') {
            fputs("\\n", f);
        } else if (ch == '\t') {
            fputs("\\t", f);
        } else if (ch < 0x20 || ch == 0x7F) {
            fprintf(f, "\\x%02x", ch);
        } else if (ch >= 0x80) {
            unsigned long cp = 0;
            size_t n = sluice__cfg_utf8_decode(s, &cp);
            if (n == 0) {
                fprintf(f, "\\x%02x", ch);
            } else {
                if (yaml_printable(cp)) {
                    fwrite(s, 1, n, f);
                } else if (cp <= 0xFFFF) {
                    fprintf(f, "\\u%04lx", cp);
                } else {
                    fprintf(f, "\\U%08lx", cp);
                }
                s += n;
                continue;
            }
        } else {
            fputc(ch, f);
        }
        s++;
    }
    fputc('"', f);
}

/* One section instance: every row of every slot, in order, unless the
 * row says to leave it out. `first` is written on the list item's line
 * ("  - "), the rest indented by `indent`. */
static void put_slots(FILE *f, const cfg_slot *slots, unsigned n, const char *indent, const char *first);

/* A TABLE row: one "- " item per entry, its keys indented under it. */
static void put_table(FILE *f, const sluice_config_key *k, const void *base, const char *indent)
{
    const sluice_config_table *t = k->table;
    size_t count = *(const size_t *)((const unsigned char *)base + k->count_offset);
    unsigned char *items = *(unsigned char *const *)((const unsigned char *)base + k->offset);
    char first[64], rest[64];
    snprintf(first, sizeof first, "%s  - ", indent);
    snprintf(rest, sizeof rest, "%s    ", indent);
    for (size_t i = 0; i < count; i++) {
        unsigned char *item = items + i * t->item_size;
        cfg_slot slot = {t->keys, t->key_count, item, (uint64_t *)(item + t->set_offset),
                         (sluice_config_pos *)(item + t->pos_offset)};
        put_slots(f, &slot, 1, rest, first);
    }
}

static void put_slots(FILE *f, const cfg_slot *slots, unsigned n, const char *indent, const char *first)
{
    bool at_first = first != NULL;
    for (unsigned s = 0; s < n; s++) {
        for (unsigned i = 0; i < slots[s].count; i++) {
            const sluice_config_key *k = &slots[s].keys[i];
            bool given = (*slots[s].set >> i) & 1u;
            if (sluice__cfg_omit(k, slots[s].base, given)) {
                continue;
            }
            if (k->type == SLUICE_CONFIG_TABLE) {
                fprintf(f, "%s%s:\n", at_first ? first : indent, k->name);
                at_first = false;
                put_table(f, k, slots[s].base, indent);
                continue;
            }
            char buf[2048];
            const char *v = sluice__cfg_format(k, slots[s].base, buf, sizeof buf);
            fprintf(f, "%s%s: ", at_first ? first : indent, k->name);
            at_first = false;
            if (k->type == SLUICE_CONFIG_STRING) {
                put_str(f, v);
            } else {
                fputs(v, f);
            }
            fputc('\n', f);
        }
    }
}

sluice_err sluice_config_write(const sluice_config *cfg, FILE *f)
{
    if (!cfg || !f) {
        return SLUICE_EINVAL;
    }
    cfg_slot slots[1 + SLUICE__CONFIG_MAX_EXTS];
    fprintf(f, "# sluice.yaml: reference in docs/config.md\n");
    fprintf(f, "service:\n");
    sluice_config_service *s = (sluice_config_service *)&cfg->service; /* read only */
    unsigned n = sluice__cfg_service_slots(s, slots, 1 + SLUICE__CONFIG_MAX_EXTS);
    put_slots(f, slots, n, "  ", NULL);
    fprintf(f, "pools:\n");
    for (size_t i = 0; i < cfg->pool_count; i++) {
        n = sluice__cfg_pool_slots(&cfg->pools[i], slots, 1 + SLUICE__CONFIG_MAX_EXTS);
        put_slots(f, slots, n, "    ", "  - ");
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
    if (cfg->cluster.present) {
        fprintf(f, "cluster:\n");
        n = sluice__cfg_cluster_slots((sluice_config_cluster *)&cfg->cluster, slots, 1);
        put_slots(f, slots, n, "  ", NULL);
    }
    return ferror(f) ? SLUICE_EIO : SLUICE_OK;
}

/* ---- deep copies ---------------------------------------------------- */

/* Copy every row of src's slots into dst's (same layout), with positions. */
static bool copy_slots(cfg_impl *c, const cfg_slot *dst, const cfg_slot *src, unsigned n)
{
    for (unsigned s = 0; s < n; s++) {
        *dst[s].set = *src[s].set;
        for (unsigned i = 0; i < src[s].count; i++) {
            if (!sluice__cfg_copy_value(c, &src[s].keys[i], dst[s].base, src[s].base)) {
                return false;
            }
            dst[s].pos[i] = sluice__cfg_copy_pos(c, &src[s].pos[i]);
        }
    }
    return true;
}

cfg_impl *sluice__cfg_clone(const sluice_config *src)
{
    const cfg_impl *si = (const cfg_impl *)src;
    cfg_impl *c = sluice__cfg_new(src->source);
    if (!c || !sluice__cfg_set_exts(c, si->exts, si->ext_count)) {
        sluice_config_free(c ? &c->pub : NULL);
        return NULL;
    }
    cfg_slot from[1 + SLUICE__CONFIG_MAX_EXTS], to[1 + SLUICE__CONFIG_MAX_EXTS];
    unsigned n =
        sluice__cfg_service_slots((sluice_config_service *)&src->service, from, 1 + SLUICE__CONFIG_MAX_EXTS);
    sluice__cfg_service_slots(&c->pub.service, to, 1 + SLUICE__CONFIG_MAX_EXTS);
    if (!copy_slots(c, to, from, n)) {
        sluice_config_free(&c->pub);
        return NULL;
    }
    n = sluice__cfg_cluster_slots((sluice_config_cluster *)&src->cluster, from, 1);
    sluice__cfg_cluster_slots(&c->pub.cluster, to, 1);
    c->pub.cluster.present = src->cluster.present;
    c->pub.cluster.section_pos = sluice__cfg_copy_pos(c, &src->cluster.section_pos);
    if (!copy_slots(c, to, from, n)) {
        sluice_config_free(&c->pub);
        return NULL;
    }
    for (size_t i = 0; i < src->pool_count; i++) {
        sluice_config_pool *p = sluice__cfg_add_pool(c);
        if (!p) {
            sluice_config_free(&c->pub);
            return NULL;
        }
        n = sluice__cfg_pool_slots(&src->pools[i], from, 1 + SLUICE__CONFIG_MAX_EXTS);
        sluice__cfg_pool_slots(p, to, 1 + SLUICE__CONFIG_MAX_EXTS);
        if (!copy_slots(c, to, from, n)) {
            sluice_config_free(&c->pub);
            return NULL;
        }
        p->entry_pos = sluice__cfg_copy_pos(c, &src->pools[i].entry_pos);
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
            d->pos = sluice__cfg_copy_pos(c, &sd->pos);
            d->shares = sd->share_count ? sluice__cfg_alloc(c, sd->share_count * sizeof *d->shares) : NULL;
            if (sd->share_count && !d->shares) {
                sluice_config_free(&c->pub);
                return NULL;
            }
            for (size_t j = 0; j < sd->share_count; j++) {
                d->shares[j] = sd->shares[j];
                d->shares[j].service = sluice__cfg_strdup(c, sd->shares[j].service);
                d->shares[j].pos = sluice__cfg_copy_pos(c, &sd->shares[j].pos);
            }
        }
    }
    return c;
}

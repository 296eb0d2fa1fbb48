/*
 * src/config/config_internal.h - shared between the files of src/config.
 *
 * The files, by concern:
 *   schema.c    the rows (one per key) and the generic operations on a
 *               value that every other file uses: parse, compare, format,
 *               copy, defaults
 *   scalar.c    the text forms: durations, integers, booleans, numbers
 *   config.c    the arena, error lines, accessors
 *   yaml.c      the YAML walk (depth-limited event pass, then the tree)
 *   env.c       SLUICE_POOL_* / SLUICE_SERVICE_* overrides
 *   validate.c  checks across keys (required, K >= min, names, buckets)
 *   write.c     --print-config and deep copies
 *   apply.c     reload: diff, check, apply, log
 *
 * A loaded sluice_config owns its strings through a small arena: every
 * string and array it points to is allocated with cfg_alloc and freed in
 * one sweep by sluice_config_free. The public struct is the first member
 * of cfg_impl, so a sluice_config * converts back with a cast.
 */
#ifndef SLUICE_CONFIG_INTERNAL_H
#define SLUICE_CONFIG_INTERNAL_H

#include <stdarg.h>

#include "sluice/config.h"

typedef struct cfg_block {
    struct cfg_block *next;
    /* payload follows, max-aligned */
    _Alignas(max_align_t) unsigned char data[];
} cfg_block;

/* The most extensions one load registers (defaults included). */
#define SLUICE__CONFIG_MAX_EXTS 16

typedef struct cfg_impl {
    sluice_config pub;
    cfg_block *blocks;
    size_t pool_cap;
    /* The extensions registered for this config, in order; every pool's
     * (and the service's) ext[] has one entry per extension of its section,
     * in this order. */
    const sluice_config_extension *exts[SLUICE__CONFIG_MAX_EXTS];
    unsigned ext_count;
} cfg_impl;

/* The most error lines one load reports; the rest are counted. */
#define SLUICE__CONFIG_MAX_ERRORS 20

/* The largest input the loader reads. */
#define SLUICE__CONFIG_MAX_INPUT (1u << 20)

/* The deepest nesting of lists and mappings the loader accepts; the
 * config itself needs 5 (pools[].tenants[]). */
#define SLUICE__CONFIG_MAX_DEPTH 32

/* Collected error lines. */
typedef struct cfg_errs {
    char buf[8192];
    size_t len;
    unsigned count;
    sluice_err first; /* the kind of the first error */
} cfg_errs;

cfg_impl *sluice__cfg_new(const char *source);
void *sluice__cfg_alloc(cfg_impl *c, size_t size);
char *sluice__cfg_strdup(cfg_impl *c, const char *s);
sluice_config_pool *sluice__cfg_add_pool(cfg_impl *c);
void sluice__cfg_errf(cfg_errs *e, sluice_err kind, const sluice_config_pos *pos, const char *fmt, ...)
    SLUICE_PRINTF(4, 5);
void sluice__cfg_errs_copy(const cfg_errs *e, char *errbuf, size_t errlen);
/* Name the item each error line written since e->len was `from` is about:
 * after `path` and the key that follows it in the line, insert
 * " (<what> \"<value>\")" (the value cut at 64 bytes, bytes outside
 * [A-Za-z0-9_.:*-] shown as '?'). A line the room left cannot hold keeps
 * its text. */
void sluice__cfg_errs_label(cfg_errs *e, size_t from, const char *path, const char *what, const char *value);

/* ---- scalar.c ---- */
/* A non-negative integer; *neg set when the text is a negative integer. */
/* sluice_config_parse_duration, saying why it refused: *why is "not a
 * duration" (the syntax), or the more precise reason for white space and
 * for a nonzero value that rounds to 0 ns. A static string. */
sluice_err sluice__cfg_parse_duration(const char *text, uint64_t *out, const char **why);
bool sluice__cfg_parse_u64(const char *s, uint64_t *out, bool *neg);
bool sluice__cfg_parse_bool(const char *s, bool *out);
bool sluice__cfg_parse_double(const char *s, double *out);
/* A bucket bound: a plain number is seconds; a duration is converted. */
bool sluice__cfg_parse_bound(const char *s, double *out);
/* Keys compare with '-' read as '_'. */
bool sluice__cfg_key_eq(const char *written, const char *canon);

/* Decode one UTF-8 sequence at s (no overlongs, no surrogates); returns
 * its length, 0 when it is not valid. (write.c) */
size_t sluice__cfg_utf8_decode(const unsigned char *s, unsigned long *cp);

/* ---- schema.c ---- */

/* Where a section instance keeps its values and bookkeeping. */
typedef struct cfg_slot {
    const sluice_config_key *keys;
    unsigned count;
    void *base; /* the struct the offsets are relative to */
    uint64_t *set;
    sluice_config_pos *pos; /* [count] */
} cfg_slot;

/* The library's rows. */
extern const sluice_config_key sluice__cfg_pool_keys[SLUICE_PK_COUNT_];
extern const sluice_config_key sluice__cfg_service_keys[SLUICE_SK_COUNT_];
extern const sluice_config_key sluice__cfg_cluster_keys[SLUICE_CK_COUNT_];

/* The slots of a pool / the service: the library's first, then one per
 * registered extension of the section. Returns how many were written. */
unsigned sluice__cfg_pool_slots(sluice_config_pool *p, cfg_slot *out, unsigned max);
unsigned sluice__cfg_service_slots(sluice_config_service *s, cfg_slot *out, unsigned max);
/* The cluster section's one slot (it takes no extensions). */
unsigned sluice__cfg_cluster_slots(sluice_config_cluster *cl, cfg_slot *out, unsigned max);

/* Find a key among slots; *slot and *index on success. */
bool sluice__cfg_find(const cfg_slot *slots, unsigned n, const char *written, unsigned *slot,
                      unsigned *index);
/* "name, workers, ..." of every key of the slots (skip: leave the first
 * row of the first slot out). */
void sluice__cfg_list_keys(const cfg_slot *slots, unsigned n, bool skip_first, char *buf, size_t len);

/* The outcome of setting one value. */
typedef enum cfg_set_result { CFG_SET_OK = 0, CFG_SET_BAD, CFG_SET_OOM } cfg_set_result;

/* Parse `text` into the row's value in slot->base (no bookkeeping); on
 * CFG_SET_BAD, msg holds "what, got value". Bounds are checked. */
cfg_set_result sluice__cfg_parse_value(cfg_impl *c, const sluice_config_key *k, void *base, const char *text,
                                       char *msg, size_t len);
/* Parse and record: set bit and position; errors go to e as
 * "pos: path.key: msg". Returns false on OOM. */
bool sluice__cfg_set(cfg_impl *c, cfg_errs *e, const cfg_slot *slot, unsigned index, const char *path,
                     const char *text, const sluice_config_pos *pos);
/* Fill a slot's defaults (rows' default_value); false on OOM. */
bool sluice__cfg_defaults(cfg_impl *c, const cfg_slot *slot);
/* Make room for the registered extensions of a section in a new pool or
 * the service; false on OOM. */
bool sluice__cfg_attach_exts(cfg_impl *c, sluice_config_section section, sluice_config_ext_values **ext,
                             size_t *ext_count);

bool sluice__cfg_value_eq(const sluice_config_key *k, const void *a, const void *b);
/* The value as written in the file ("250ms", "auto", "true"); strings
 * unquoted; "[...]" for lists. Returns buf. */
const char *sluice__cfg_format(const sluice_config_key *k, const void *base, char *buf, size_t len);
/* Copy a value from src (a struct of the same layout) into dst, duplicating
 * strings and lists into c; false on OOM. */
bool sluice__cfg_copy_value(cfg_impl *c, const sluice_config_key *k, void *dst, const void *src);
/* Should the writer leave this value out? */
bool sluice__cfg_omit(const sluice_config_key *k, const void *base, bool given);
/* A position copied into c (file pointer rebased, env name duplicated). */
sluice_config_pos sluice__cfg_copy_pos(cfg_impl *c, const sluice_config_pos *p);

/* The markdown key table of a section (library rows and the default
 * extensions), as docs/config.md holds it. */
void sluice__cfg_doc_table(sluice_config_section section, FILE *out);

/* ---- yaml.c / env.c / validate.c ---- */
void sluice__cfg_apply_env(cfg_impl *c, cfg_errs *e, const char *const *envp, bool *oom);
/* Checks of a finished config (after env). Appends to e. */
void sluice__cfg_validate(const sluice_config *cfg, cfg_errs *e);
/* Register the extensions of opts (defaults first) in c; false with an
 * error in e when there are too many or one is malformed. */
bool sluice__cfg_register_exts(cfg_impl *c, const sluice_config_load_opts *opts, cfg_errs *e, bool *oom);
/* Set c's extensions (a new config, before any pool) and attach the
 * service's values with their defaults; false on OOM. */
bool sluice__cfg_set_exts(cfg_impl *c, const sluice_config_extension *const *exts, unsigned n);

/* ---- write.c ---- */
/* A deep copy; NULL on ENOMEM. */
cfg_impl *sluice__cfg_clone(const sluice_config *src);

/* The `tenants` row's reload hooks (config.c): a tier pool's names wait
 * for a restart; a fair pool's weights, limits, names and "*" apply live. */
bool sluice__cfg_tenants_restart_if(const sluice_config_pool *running, const sluice_config_pool *next,
                                    char *why, size_t len);
sluice_err sluice__cfg_tenants_apply(sluice_pool *pool, const sluice_config_pool *running,
                                     const sluice_config_pool *next, const char *path, char *why, size_t len);

#endif

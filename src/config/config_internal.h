/*
 * src/config/config_internal.h - shared between the files of src/config.
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

typedef struct cfg_impl {
    sluice_config pub;
    cfg_block *blocks;
    size_t pool_cap;
} cfg_impl;

/* The most error lines one load reports; the rest are counted. */
#define SLUICE__CONFIG_MAX_ERRORS 20

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

/* Checks of a finished config (after env). Appends to e. */
void sluice__cfg_validate(const sluice_config *cfg, cfg_errs *e);
/* A deep copy; NULL on ENOMEM. */
cfg_impl *sluice__cfg_clone(const sluice_config *src);
/* Copy one pool entry into c (strings duplicated). */
void sluice__cfg_copy_pool(cfg_impl *c, sluice_config_pool *dst, const sluice_config_pool *src);

#endif

/*
 * fuzz/fuzz_util.h - what the fuzz targets share: a property check that
 * names the target, the input as a NUL-terminated string, and the write /
 * load / write round trip the two config targets check.
 *
 * A target defines FUZZ_TARGET (its name, a string literal) before
 * including this header. Everything here is static inline, so each target
 * stays one .c file (fuzz/CMakeLists.txt) and links only the libraries it
 * uses: a target that never calls fuzz_config_round_trip does not need
 * libsluice-config.
 *
 * On a violated property these abort, which is what libFuzzer and the
 * standalone replay driver (fuzz/standalone_main.c) report.
 */
#ifndef SLUICE_FUZZ_UTIL_H
#define SLUICE_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/config.h"

#ifndef FUZZ_TARGET
#error "define FUZZ_TARGET (the target's name) before including fuzz_util.h"
#endif

/* Aborts with "<target>: property violated: <what>" unless cond holds. */
static inline void fuzz_check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, FUZZ_TARGET ": property violated: %s\n", what);
        abort();
    }
}

/*
 * The input as a string: a malloc'ed copy of data[0..size) followed by
 * `nuls` (at least 1) NUL bytes, so a parser that stops at the first NUL
 * sees the input and one that runs past it is caught by ASan. Returns NULL
 * when size is above max_size (inputs no parser here reads whole: skip
 * them) or memory runs out; the caller frees the copy.
 */
static inline char *fuzz_input_string(const uint8_t *data, size_t size, size_t max_size, size_t nuls)
{
    if (size > max_size || nuls == 0) {
        return NULL;
    }
    char *text = malloc(size + nuls);
    if (!text) {
        return NULL;
    }
    memcpy(text, data, size);
    memset(text + size, 0, nuls);
    return text;
}

/*
 * The --print-config round trip of a config that loaded: it writes out as
 * YAML that loads again (without the environment, whose overrides are
 * already in cfg) and writes out the same bytes. Aborts, printing the
 * written text, when it does not. cfg stays the caller's.
 */
static inline void fuzz_config_round_trip(const sluice_config *cfg)
{
    char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    char err[4096];
    FILE *f = open_memstream(&a, &alen);
    fuzz_check(f && sluice_config_write(cfg, f) == SLUICE_OK, "write failed");
    fclose(f);
    sluice_config *again = NULL;
    sluice_config_load_opts no_env = {.no_env = true};
    if (sluice_config_load_string(a, alen, "written.yaml", &no_env, &again, err, sizeof err) != SLUICE_OK) {
        fprintf(stderr, FUZZ_TARGET ": written config does not load: %s\n---\n%s\n", err, a);
        abort();
    }
    f = open_memstream(&b, &blen);
    fuzz_check(f && sluice_config_write(again, f) == SLUICE_OK, "second write failed");
    fclose(f);
    fuzz_check(alen == blen && memcmp(a, b, alen) == 0, "write(load(write(x))) != write(x)");
    free(a);
    free(b);
    sluice_config_free(again);
}

#endif /* SLUICE_FUZZ_UTIL_H */

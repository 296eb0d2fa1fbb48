/*
 * fuzz/fuzz_config_env.c - fuzz the environment overrides
 * (SLUICE_POOL_<NAME>_<KEY>, SLUICE_SERVICE_<KEY>; src/config/env.c) on a
 * fixed, valid file.
 *
 * Input: lines, each one "NAME=VALUE" entry of the environment (at most
 * 32; a line without '=' is passed as is, as a broken environ might).
 * Properties: a refused load leaves *out alone and says why; an accepted
 * one writes out a file that loads again (without the environment) and
 * writes out the same, and every pool still has K > 0 and a queue bound
 * in 1..SLUICE_CONFIG_QUEUE_CAPACITY_MAX (the overrides went through the
 * same rows as the file).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char FILE_TEXT[] =
    "service:\n  name: fuzz\n  listen: 127.0.0.1:0\n"
    "pools:\n"
    "  - name: push\n    workers: 4\n    queue_capacity: 16\n"
    "  - name: sms-eu\n    workers: 2\n    queue_capacity: 8\n    overflow: reject\n"
    "    kind: io\n";

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_config_env: property violated: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) {
        return 0;
    }
    char *text = malloc(size + 1);
    if (!text) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    const char *env[33];
    size_t n = 0;
    for (char *line = text; n < 32;) {
        char *nl = strchr(line, '\n');
        if (nl) {
            *nl = '\0';
        }
        env[n++] = line;
        if (!nl) {
            break;
        }
        line = nl + 1;
    }
    env[n] = NULL;
    sluice_config_load_opts opts = {.envp = env};
    sluice_config *cfg = (sluice_config *)&opts;
    char err[4096];
    sluice_err r =
        sluice_config_load_string(FILE_TEXT, sizeof FILE_TEXT - 1, "fuzz.yaml", &opts, &cfg, err, sizeof err);
    if (r != SLUICE_OK) {
        check(cfg == (sluice_config *)&opts, "a refused load changed *out");
        check(err[0] != '\0', "a refused load gave no message");
        free(text);
        return 0;
    }
    for (size_t i = 0; i < cfg->pool_count; i++) {
        check(cfg->pools[i].workers > 0, "K = 0 accepted");
        check(cfg->pools[i].queue_capacity > 0 &&
                  cfg->pools[i].queue_capacity <= SLUICE_CONFIG_QUEUE_CAPACITY_MAX,
              "a queue bound out of range accepted");
    }
    char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    FILE *f = open_memstream(&a, &alen);
    check(f && sluice_config_write(cfg, f) == SLUICE_OK, "write failed");
    fclose(f);
    sluice_config *again = NULL;
    sluice_config_load_opts no_env = {.no_env = true};
    r = sluice_config_load_string(a, alen, "written.yaml", &no_env, &again, err, sizeof err);
    if (r != SLUICE_OK) {
        fprintf(stderr, "fuzz_config_env: written config does not load: %s\n---\n%s\n", err, a);
        abort();
    }
    f = open_memstream(&b, &blen);
    check(f && sluice_config_write(again, f) == SLUICE_OK, "second write failed");
    fclose(f);
    check(alen == blen && memcmp(a, b, alen) == 0, "write(load(write(x))) != write(x)");
    free(a);
    free(b);
    sluice_config_free(again);
    sluice_config_free(cfg);
    free(text);
    return 0;
}

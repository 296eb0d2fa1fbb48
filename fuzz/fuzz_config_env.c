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
#include <stdlib.h>
#include <string.h>

#include "sluice/config.h"

#define FUZZ_TARGET "fuzz_config_env"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char FILE_TEXT[] =
    "service:\n  name: fuzz\n  listen: 127.0.0.1:0\n"
    "pools:\n"
    "  - name: push\n    workers: 4\n    queue_capacity: 16\n"
    "  - name: sms-eu\n    workers: 2\n    queue_capacity: 8\n    overflow: reject\n"
    "    kind: io\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_input_string(data, size, 1 << 16, 1);
    if (!text) {
        return 0;
    }
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
        fuzz_check(cfg == (sluice_config *)&opts, "a refused load changed *out");
        fuzz_check(err[0] != '\0', "a refused load gave no message");
        free(text);
        return 0;
    }
    for (size_t i = 0; i < cfg->pool_count; i++) {
        fuzz_check(cfg->pools[i].workers > 0, "K = 0 accepted");
        fuzz_check(cfg->pools[i].queue_capacity > 0 &&
                       cfg->pools[i].queue_capacity <= SLUICE_CONFIG_QUEUE_CAPACITY_MAX,
                   "a queue bound out of range accepted");
    }
    fuzz_config_round_trip(cfg);
    sluice_config_free(cfg);
    free(text);
    return 0;
}

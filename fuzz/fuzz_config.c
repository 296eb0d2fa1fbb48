/*
 * fuzz/fuzz_config.c - fuzz the sluice.yaml loader (parse, env overrides,
 * validation, write-back).
 *
 * Property: for any input, sluice_config_load_string either fails with a
 * non-empty message and leaves *out untouched, or succeeds; and a config
 * that loads writes out as YAML that loads again and writes out the same
 * (the --print-config round trip). Memory errors and leaks are caught by
 * the sanitizers the target is built with.
 *
 * Build and run (see fuzz/CMakeLists.txt): `make fuzz` builds every target
 * with clang and libFuzzer, the library instrumented too, and runs each
 * for a fixed number of inputs on top of its corpus; by hand:
 *     build-fuzz/fuzz/fuzz_config -max_total_time=600 fuzz/config_corpus
 * Without libFuzzer, fuzz/standalone_main.c replays the corpus (the test
 * fuzz_config_corpus).
 */
#include <stdint.h>

#include "sluice/config.h"

#define FUZZ_TARGET "fuzz_config"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Overrides exercised too: a fixed environment that names the pools a
     * generated file is likely to have. */
    static const char *const env[] = {"SLUICE_POOL_PUSH_WORKERS=7", "SLUICE_POOL_A_SUBMIT_TIMEOUT=1s", NULL};
    sluice_config_load_opts opts = {.envp = env};
    sluice_config *cfg = (sluice_config *)&opts; /* a sentinel: must stay put on failure */
    char err[2048];
    sluice_err r =
        sluice_config_load_string((const char *)data, size, "fuzz.yaml", &opts, &cfg, err, sizeof err);
    if (r != SLUICE_OK) {
        fuzz_check(cfg == (sluice_config *)&opts, "a failed load changed *out");
        fuzz_check(err[0] != '\0', "a failed load gave no message");
        return 0;
    }
    fuzz_config_round_trip(cfg);
    sluice_config_free(cfg);
    return 0;
}

/*
 * fuzz/fuzz_scalars.c - fuzz the text forms of config values: durations,
 * sizes and integers, booleans, numbers, enums, lists of seconds, through
 * every row of the schema (src/config/schema.c) as a file value or an
 * environment override would reach them.
 *
 * Properties, for any input text:
 *  - sluice_config_parse_duration either refuses it (leaving *out alone)
 *    or gives a value that sluice_config_format_duration writes and the
 *    parser reads back to the same value;
 *  - any uint64_t (the input's first 8 bytes) formats as a duration that
 *    parses back to itself;
 *  - for every row of every section: a value the row accepts formats (as
 *    --print-config writes it) to a text the row accepts again, giving an
 *    equal value; a refused value comes with a message;
 *  - no parser reads past the NUL or overflows (ASan/UBSan in the fuzz
 *    build).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

#define FUZZ_TARGET "fuzz_scalars"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what, const char *text)
{
    if (!cond) {
        fprintf(stderr, "fuzz_scalars: property violated: %s (input \"%s\")\n", what, text);
        abort();
    }
}

/* A scratch struct big enough for any section's values. */
typedef union scratch {
    sluice_config_pool pool;
    sluice_config_service service;
    sluice_config_ops_keys ops;
    sluice_config_demo_keys demo;
} scratch;

static void rows(cfg_impl *c, const sluice_config_key *keys, unsigned n, const char *text)
{
    for (unsigned i = 0; i < n; i++) {
        const sluice_config_key *k = &keys[i];
        scratch a, b;
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        char msg[1024] = "";
        cfg_set_result r = sluice__cfg_parse_value(c, k, &a, text, msg, sizeof msg);
        if (r == CFG_SET_OOM) {
            continue;
        }
        if (r == CFG_SET_BAD) {
            check(msg[0] != '\0', "a refused value gave no message", text);
            continue;
        }
        char out[4096];
        sluice__cfg_format(k, &a, out, sizeof out);
        const char *again = out;
        char inner[4096];
        if (k->type == SLUICE_CONFIG_SECONDS_LIST) {
            /* Written as a YAML list "[a, b]"; the text form is "a, b". */
            size_t len = strlen(out);
            check(len >= 2 && out[0] == '[' && out[len - 1] == ']', "a list is not written as [...]", text);
            snprintf(inner, sizeof inner, "%.*s", (int)(len - 2), out + 1);
            again = inner;
        }
        if (k->type == SLUICE_CONFIG_STRING && strlen(text) >= sizeof out - 1) {
            continue; /* cut by the format buffer */
        }
        r = sluice__cfg_parse_value(c, k, &b, again, msg, sizeof msg);
        if (r == CFG_SET_OOM) {
            continue;
        }
        if (r != CFG_SET_OK) {
            fprintf(stderr, "fuzz_scalars: %s: \"%s\" parsed, was written as \"%s\", which does not: %s\n",
                    k->name, text, again, msg);
            abort();
        }
        if (!sluice__cfg_value_eq(k, &a, &b)) {
            fprintf(stderr, "fuzz_scalars: %s: \"%s\" -> \"%s\" reads back different\n", k->name, text,
                    again);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_input_string(data, size, 4096, 1);
    if (!text) {
        return 0;
    }

    uint64_t ns = 7;
    if (sluice_config_parse_duration(text, &ns) == SLUICE_OK) {
        char buf[64];
        uint64_t back = 1;
        sluice_config_format_duration(ns, buf, sizeof buf);
        check(sluice_config_parse_duration(buf, &back) == SLUICE_OK && back == ns,
              "a parsed duration does not read back", text);
    } else {
        check(ns == 7, "a refused duration changed *out", text);
    }
    if (size >= 8) {
        uint64_t v;
        memcpy(&v, data, 8);
        char buf[64];
        uint64_t back = 0;
        sluice_config_format_duration(v, buf, sizeof buf);
        check(sluice_config_parse_duration(buf, &back) == SLUICE_OK && back == v,
              "a formatted duration does not read back", buf);
    }
    uint64_t u;
    bool neg;
    if (sluice__cfg_parse_u64(text, &u, &neg)) {
        char buf[32], *end = NULL;
        snprintf(buf, sizeof buf, "%" PRIu64, u);
        check(strtoull(buf, &end, 10) == u && !neg, "parse_u64 disagrees with strtoull", text);
    }
    bool b;
    (void)sluice__cfg_parse_bool(text, &b);
    double d;
    if (sluice__cfg_parse_bound(text, &d)) {
        check(d == d, "a bound parsed to NaN", text);
    }

    cfg_impl *c = sluice__cfg_new("fuzz");
    if (c) {
        unsigned n;
        const sluice_config_key *k = sluice_config_schema(SLUICE_CONFIG_SECTION_POOL, &n);
        rows(c, k, n, text);
        k = sluice_config_schema(SLUICE_CONFIG_SECTION_SERVICE, &n);
        rows(c, k, n, text);
        rows(c, sluice_config_ext_ops.keys, sluice_config_ext_ops.key_count, text);
        rows(c, sluice_config_ext_demo.keys, sluice_config_ext_demo.key_count, text);
        sluice_config_free(&c->pub);
    }
    free(text);
    return 0;
}

/*
 * tests/tools/fuzz_ops.c - fuzz the inventory scanner, and the generators
 * and lint on any config that loads.
 *
 * Properties: for any bytes, ops_inventory_scan_text terminates without a
 * memory error, reports sites in the input's line range, and reports the
 * same sites when run twice; if the bytes load as a sluice.yaml, rules,
 * dashboard, runbook and lint run without a memory error and produce the
 * same text twice (determinism), and the rules and runbook agree on the
 * number of entries.
 *
 * Build with libFuzzer (clang), from the repository root:
 *     clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude -Isrc \
 *         tests/tools/fuzz_ops.c tools/sluice/ops_util.c tools/sluice/ops_inventory.c \
 *         tools/sluice/ops_lint.c tools/sluice/ops_rules.c tools/sluice/ops_dashboard.c \
 *         tools/sluice/ops_runbook.c src/config/(all .c) src/core/(all .c) src/sync/(all .c) \
 *         src/sys/(all .c) src/obs/(all .c) -lyaml -lpthread -ldl -lm -o fuzz_ops
 *     ./fuzz_ops tests/tools/fixtures
 * With SLUICE_FUZZ_STANDALONE defined, main() runs every file named on the
 * command line once (the CTest regression run over tests/tools/fixtures).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

#include "sluice/config.h"

#include "../../tools/sluice/ops_inventory.h"
#include "../../tools/sluice/ops_lint.h"
#include "../../tools/sluice/ops_rules.h"
#include "../../tools/sluice/ops_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_ops: property violated: %s\n", what);
        abort();
    }
}

static size_t count(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Distinct values of the lines that start (after spaces) with `key`. */
static size_t count_distinct_lines(const char *text, const char *key)
{
    size_t n = 0;
    for (const char *p = strstr(text, key); p; p = strstr(p + 1, key)) {
        const char *end = strchr(p + 1, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        bool seen = false;
        for (const char *q = strstr(text, key); q && q < p && !seen; q = strstr(q + 1, key)) {
            const char *qe = strchr(q + 1, '\n');
            size_t ql = qe ? (size_t)(qe - q) : strlen(q);
            seen = ql == len && memcmp(p, q, len) == 0;
        }
        n += !seen;
    }
    return n;
}

typedef void (*ops_generator_fn)(const sluice_config *cfg, const char *source_name, ops_buf *out);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;

    /* Scanner. */
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    ops_sites a = {0}, b = {0};
    ops_inventory_scan_text("f.c", text, size, &a);
    ops_inventory_scan_text("f.c", text, size, &b);
    check(a.n == b.n, "scan is deterministic");
    for (size_t i = 0; i < a.n; i++) {
        check(a.v[i].line >= 1 && a.v[i].line <= lines, "site line within the input");
        check(a.v[i].line == b.v[i].line && strcmp(a.v[i].kind, b.v[i].kind) == 0, "same sites twice");
    }
    ops_sites_free(&a);
    ops_sites_free(&b);

    /* Generators and lint on whatever loads. */
    sluice_config_load_opts opts = {0};
    opts.no_env = true;
    sluice_config *cfg = NULL;
    char err[1024];
    if (sluice_config_load_string(text, size, "f.yaml", &opts, &cfg, err, sizeof err) != SLUICE_OK)
        return 0;
    ops_generator_fn gens[] = {ops_rules_generate, ops_dashboard_generate, ops_runbook_generate};
    ops_buf first[3] = {{0}}, second[3] = {{0}};
    for (int g = 0; g < 3; g++) {
        gens[g](cfg, "f.yaml", &first[g]);
        gens[g](cfg, "f.yaml", &second[g]);
        check(strcmp(ops_buf_str(&first[g]), ops_buf_str(&second[g])) == 0, "generators are deterministic");
    }
    /* One runbook entry per distinct runbook_url (a pool's availability
     * and latency SLO alerts share one), plus the four incidents. */
    check(count_distinct_lines(ops_buf_str(&first[0]), "\n          runbook_url: ") + 4 ==
              count(ops_buf_str(&first[2]), "\n<a id=\""),
          "one runbook entry per alert");
    for (int g = 0; g < 3; g++) {
        ops_buf_free(&first[g]);
        ops_buf_free(&second[g]);
    }
    ops_findings f = {0};
    ops_lint_opts lo = {4, 2, 0, 1ull << 30, "fuzz", 0, NULL};
    ops_lint_run(cfg, &lo, &f);
    for (size_t i = 0; i < f.n; i++)
        check(f.v[i].rule && f.v[i].message && f.v[i].fix, "findings are complete");
    ops_findings_free(&f);
    sluice_config_free(cfg);
    return 0;
}

#ifdef SLUICE_FUZZ_STANDALONE
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *fp = fopen(argv[i], "rb");
        if (!fp) {
            fprintf(stderr, "fuzz_ops: cannot open %s\n", argv[i]);
            return 1;
        }
        ops_buf b = {0};
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0)
            ops_buf_putn(&b, chunk, n);
        fclose(fp);
        LLVMFuzzerTestOneInput((const uint8_t *)ops_buf_str(&b), b.len);
        ops_buf_free(&b);
    }
    return 0;
}
#endif

/*
 * tests/tools/test_ops_metrics.c - the generated alerts and dashboard use
 * only metrics the library really exports.
 *
 * Design: ground truth is the library's own exposition, not a list: the
 * test creates a pool, exports it through a sluice_metrics registry,
 * renders the Prometheus text, and collects the families from the "# TYPE"
 * lines. Then it checks both ways: ops_exported_metrics (the list the ops
 * tools are written against) equals the pool_* families rendered, and
 * every pool_* name in the rules and dashboard generated for the test
 * fixture is a rendered family (histogram names with _bucket only for
 * histogram families).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/config.h"
#include "sluice/metrics.h"
#include "sluice/pool.h"
#include "sluice/service.h"

#include "../../tools/sluice/ops_rules.h"
#include "../../tools/sluice/ops_util.h"

#define MAX_FAMILIES 128

typedef struct families {
    char name[MAX_FAMILIES][96];
    char type[MAX_FAMILIES][24];
    size_t n;
} families;

static int noop(void *arg)
{
    (void)arg;
    return 0;
}

/* The pool_* families the library renders for one live pool: a fair pool
 * (so the per-tenant families render too; a FIFO pool has none) of a
 * service with a controller that probes it (so the control families,
 * exported by the service, render too). */
static void rendered_families(families *f)
{
    sluice_metrics *reg = NULL;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    sluice_service_config sc;
    sluice_service_config_init(&sc);
    sc.no_signals = true;
    sc.metrics = reg;
    sluice_service *svc = NULL;
    char err[256];
    assert_int_equal(sluice_service_create(&sc, &svc, err, sizeof err), SLUICE_OK);
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "probe";
    pc.workers = 2;
    pc.queue_capacity = 4;
    pc.queue_discipline = SLUICE_QUEUE_FAIR;
    sluice_pool *p = NULL;
    assert_int_equal(sluice_service_add_pool(svc, &pc, 0, &p, err, sizeof err), SLUICE_OK);
    sluice_pool_control_config cc;
    sluice_pool_control_config_init(&cc);
    cc.autotune = true;
    cc.probe_every_ns = 3600 * SLUICE_NS_PER_SEC;
    assert_int_equal(sluice_service_set_control(svc, p, &cc, err, sizeof err), SLUICE_OK);
    sluice_submit_opts o = {.tenant_name = "acme"};
    assert_int_equal(sluice_pool_submit_ex(p, noop, NULL, &o), SLUICE_OK);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sluice_metrics_render(reg, SLUICE_EXPO_PROMETHEUS, &text, &len), SLUICE_OK);
    f->n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char name[96], type[24];
        if (sscanf(line, "# TYPE %95s %23s", name, type) == 2 && strncmp(name, "pool_", 5) == 0) {
            assert_true(f->n < MAX_FAMILIES);
            strcpy(f->name[f->n], name);
            strcpy(f->type[f->n], type);
            f->n++;
        }
    }
    free(text);
    sluice_service_destroy(svc);
    sluice_metrics_destroy(reg);
}

static const char *family_type(const families *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->name[i], name) == 0)
            return f->type[i];
    return NULL;
}

static void list_matches_exposition(void **state)
{
    (void)state;
    families f;
    rendered_families(&f);
    size_t listed = 0;
    for (const char *const *m = ops_exported_metrics; *m; m++, listed++) {
        if (!family_type(&f, *m))
            fail_msg("ops_exported_metrics lists %s, which the library does not render", *m);
    }
    for (size_t i = 0; i < f.n; i++) {
        bool found = false;
        for (const char *const *m = ops_exported_metrics; *m; m++)
            found = found || strcmp(*m, f.name[i]) == 0;
        if (!found)
            fail_msg("the library renders %s, missing from ops_exported_metrics", f.name[i]);
    }
    assert_int_equal(listed, f.n);
}

/* Every pool_* identifier in text is a rendered family (after stripping a
 * histogram suffix, which only histograms may carry). Returns the count. */
static size_t check_names(const families *f, const char *text, const char *what)
{
    size_t n = 0;
    for (const char *p = strstr(text, "pool_"); p; p = strstr(p + 1, "pool_")) {
        if (p > text && (p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z')))
            continue; /* part of a longer word */
        char name[96];
        size_t k = 0;
        while (k + 1 < sizeof name && ((p[k] >= 'a' && p[k] <= 'z') || p[k] == '_'))
            name[k] = p[k], k++;
        name[k] = '\0';
        while (k > 0 && name[k - 1] == '_')
            name[--k] = '\0';
        const char *type = family_type(f, name);
        if (!type) {
            char *suffix = NULL;
            const char *const sfx[] = {"_bucket", "_sum", "_count"};
            for (int s = 0; s < 3 && !suffix; s++) {
                size_t sl = strlen(sfx[s]);
                if (k > sl && strcmp(name + k - sl, sfx[s]) == 0)
                    suffix = name + k - sl;
            }
            if (suffix) {
                *suffix = '\0';
                type = family_type(f, name);
                if (type && strcmp(type, "histogram") != 0)
                    fail_msg("%s uses a histogram suffix on %s (%s)", what, name, type);
            }
        }
        /* Words like "pool_name" in prose are not metric references. */
        if (!type && (strstr(name, "_total") || strstr(name, "_seconds") || strstr(name, "_ratio") ||
                      strcmp(name, "pool_running") == 0))
            fail_msg("%s refers to %s, which the library does not export", what, name);
        if (type)
            n++;
    }
    return n;
}

static sluice_config *fixture(void)
{
    const char *yaml = "service:\n  name: svc\npools:\n"
                       "  - name: a\n    workers: 4\n    queue_capacity: 10\n"
                       "  - name: b\n    workers: 2\n    queue_capacity: 5\n    overflow: reject\n";
    sluice_config_load_opts o = {0};
    o.no_env = true;
    sluice_config *cfg = NULL;
    char err[1024];
    assert_int_equal(sluice_config_load_string(yaml, strlen(yaml), "t.yaml", &o, &cfg, err, sizeof err),
                     SLUICE_OK);
    return cfg;
}

static void generated_queries_use_exported_metrics(void **state)
{
    (void)state;
    families f;
    rendered_families(&f);
    sluice_config *cfg = fixture();
    ops_buf rules = {0}, dash = {0};
    ops_rules_generate(cfg, "t.yaml", &rules);
    ops_dashboard_generate(cfg, "t.yaml", &dash);
    /* Many references each; a generator that stopped emitting queries
     * would pass the check vacuously. */
    assert_true(check_names(&f, ops_buf_str(&rules), "rules") >= 2 * 8);
    assert_true(check_names(&f, ops_buf_str(&dash), "dashboard") >= 20);
    ops_buf_free(&rules);
    ops_buf_free(&dash);
    sluice_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(list_matches_exposition),
        cmocka_unit_test(generated_queries_use_exported_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

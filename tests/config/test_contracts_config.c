/*
 * tests/config/test_contracts_config.c - sluice/config.h probed from the
 * header alone, at its extremes, and the Prometheus exposition of a
 * configured service across reloads:
 *
 *   - sluice_config_parse_duration at the top of uint64_t in every unit
 *     (the largest value exact, one past it refused, *out untouched), the
 *     forms the header refuses (no unit but 0, negatives, other units), and
 *     sluice_config_format_duration's round trip at 0, 1 and UINT64_MAX;
 *   - a service built from a config, a fair pool with tenants and an
 *     auto-tuned pool, scraped before and after reloads that resize,
 *     change tenants' weights, reconfigure the controller, turn it off
 *     and on again: every counter series present in two scrapes never goes
 *     down, no family is declared twice, and no series is written twice.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/wait.h"
#include "sluice/config.h"
#include "sluice/metrics.h"
#include "sluice/service.h"

static const sluice_config_load_opts NO_ENV = {.no_env = true};

/* ---- durations ----------------------------------------------------------------------- */

static void test_duration_extremes(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        bool ok;
        uint64_t want;
    } cases[] = {
        {"0", true, 0},
        {"0ns", true, 0},
        {"0h", true, 0},
        {"1ns", true, 1},
        {"18446744073709551615ns", true, UINT64_MAX},
        {"18446744073709551616ns", false, 0},
        {"18446744073709551us", true, 18446744073709551000ull},
        {"18446744073709552us", false, 0},
        {"18446744073709ms", true, 18446744073709000000ull},
        {"18446744074s", false, 0},
        {"18446744073.709551615s", true, UINT64_MAX},
        {"18446744073.709551616s", false, 0},
        {"307445734m", true, 307445734ull * 60 * SLUICE_NS_PER_SEC},
        {"307445735m", false, 0},
        {"5124095h", true, 5124095ull * 3600 * SLUICE_NS_PER_SEC},
        {"5124096h", false, 0},
        {"99999999999999999999999999h", false, 0},
        {"1.5s", true, 1500000000ull},
        {"1", false, 0},
        {"1.5", false, 0},
        {"-1s", false, 0},
        {"-0", false, 0},
        {"5d", false, 0},
        {"5sec", false, 0},
        {"5S", false, 0},
        {"s", false, 0},
        {"", false, 0},
        {"5 s", false, 0},
        {"5s ", false, 0},
        {"1e3s", false, 0},
        {"NaNs", false, 0},
        {"infs", false, 0},
        {"0x10s", false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 777;
        sluice_err r = sluice_config_parse_duration(cases[i].text, &v);
        if (cases[i].ok) {
            if (r != SLUICE_OK || v != cases[i].want) {
                fail_msg("'%s': %s %llu, want %llu", cases[i].text, sluice_strerror(r), (unsigned long long)v,
                         (unsigned long long)cases[i].want);
            }
        } else if (r != SLUICE_EINVAL || v != 777) {
            fail_msg("'%s': %s %llu, want EINVAL and *out untouched", cases[i].text, sluice_strerror(r),
                     (unsigned long long)v);
        }
    }
    const uint64_t vals[] = {0,
                             1,
                             999,
                             1000,
                             60 * SLUICE_NS_PER_SEC,
                             1500 * SLUICE_NS_PER_MS,
                             UINT64_MAX - 1,
                             UINT64_MAX,
                             5124095ull * 3600 * SLUICE_NS_PER_SEC};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        char buf[64];
        assert_ptr_equal(sluice_config_format_duration(vals[i], buf, sizeof buf), buf);
        uint64_t back = 0;
        assert_int_equal(sluice_config_parse_duration(buf, &back), SLUICE_OK);
        assert_true(back == vals[i]);
    }
}

/* Spaces are refused at both ends alike (a leading one was accepted, a
 * trailing one refused), and a value that is not 0 but rounds to 0 ns is
 * refused (it read as 0: "the default" for many keys); a fraction keeps
 * 18 digits (12 before: "0.0000000000009h", 3.24 ns, read as 0). The
 * loader's message names the key, the value and the rule, from the file
 * and from the environment. */
static void test_duration_spaces_and_tiny(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        bool ok;
        uint64_t want;
    } cases[] = {
        {" 5s", false, 0},
        {"5s ", false, 0},
        {"\t5s", false, 0},
        {"5s\n", false, 0},
        {" 0", false, 0},
        {"0 ", false, 0},
        {"1. 5s", false, 0},
        {"0.0000000001s", false, 0},
        {"0.1ns", false, 0},
        {"0.4999999999ns", false, 0},
        {"0.0000000000000000000001h", false, 0},
        {"0.0000001", false, 0},
        {"0.5ns", true, 1},
        {"0.0000000005s", true, 1},
        {"0.0000000000009h", true, 3},
        {"0.000000000000000000000s", true, 0},
        {"0.0", true, 0},
        {"0.000000000000000000000", true, 0},
        {"1.0000000000000000001ns", true, 1},
        {"0.000000001s", true, 1},
        {"18446744073.7095516149999999999s", true, UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 777;
        sluice_err r = sluice_config_parse_duration(cases[i].text, &v);
        if (cases[i].ok) {
            if (r != SLUICE_OK || v != cases[i].want) {
                fail_msg("'%s': %s %llu, want %llu", cases[i].text, sluice_strerror(r), (unsigned long long)v,
                         (unsigned long long)cases[i].want);
            }
        } else if (r != SLUICE_EINVAL || v != 777) {
            fail_msg("'%s': %s %llu, want EINVAL and *out untouched", cases[i].text, sluice_strerror(r),
                     (unsigned long long)v);
        }
    }
    uint64_t v = 777;
    assert_int_equal(sluice_config_parse_duration(NULL, &v), SLUICE_EINVAL);
    assert_int_equal(sluice_config_parse_duration("5s", NULL), SLUICE_EINVAL);
    assert_true(v == 777);

    /* Through the loader: the file (a quoted YAML string keeps its
     * spaces) and the environment. */
    static const struct {
        const char *value; /* YAML text of submit_timeout */
        const char *env;   /* or an environment override of it */
        const char *want;
    } loads[] = {
        {"\" 5s\"", NULL,
         "pools[0].submit_timeout: no spaces around or inside a duration (a number with a unit: ns, us, ms, "
         "s, "
         "m, h; for example 250ms), got \" 5s\""},
        {"\"5s \"", NULL, "pools[0].submit_timeout: no spaces around or inside a duration (a number"},
        {"\"5 s\"", NULL, "got \"5 s\""},
        {"0.0000000001s", NULL,
         "pools[0].submit_timeout: a duration that is not 0 must be at least 0.5ns (it rounds to whole ns, "
         "and 0 means the default or none): write 0 or 1ns (a number with a unit: ns, us, ms, s, m, h; for "
         "example 250ms), got \"0.0000000001s\""},
        {NULL, "SLUICE_POOL_PUSH_SUBMIT_TIMEOUT= 5s",
         "env SLUICE_POOL_PUSH_SUBMIT_TIMEOUT: pools[0].submit_timeout: no spaces around or inside a "
         "duration"},
        {NULL, "SLUICE_POOL_PUSH_SUBMIT_TIMEOUT=5s ", "got \"5s \""},
        {NULL, "SLUICE_POOL_PUSH_SUBMIT_TIMEOUT=0.1ns",
         "env SLUICE_POOL_PUSH_SUBMIT_TIMEOUT: pools[0].submit_timeout: a duration that is not 0 must be at "
         "least 0.5ns"},
        {"\" 0.5\"", NULL, "pools[0].readiness_weight: must be a number from 0 to 1, got \" 0.5\""},
    };
    for (size_t i = 0; i < sizeof loads / sizeof loads[0]; i++) {
        char text[512];
        const char *key = strstr(loads[i].want, "readiness_weight") ? "readiness_weight" : "submit_timeout";
        snprintf(text, sizeof text, "pools:\n  - name: push\n    workers: 1\n    queue_capacity: 1\n%s%s%s%s",
                 loads[i].value ? "    " : "", loads[i].value ? key : "", loads[i].value ? ": " : "",
                 loads[i].value ? loads[i].value : "");
        strcat(text, "\n");
        const char *envp[] = {loads[i].env, NULL};
        sluice_config_load_opts opts = {.envp = envp};
        sluice_config *cfg = NULL;
        char err[1024] = "";
        sluice_err r =
            sluice_config_load_string(text, strlen(text), "sluice.yaml", &opts, &cfg, err, sizeof err);
        if (r != SLUICE_EINVAL || cfg || !strstr(err, loads[i].want)) {
            fail_msg("case %zu: %s, \"%s\"; want EINVAL with \"%s\"", i, sluice_strerror(r), err,
                     loads[i].want);
        }
    }
    /* And with no space, the same values load. */
    const char *ok_envp[] = {"SLUICE_POOL_PUSH_SUBMIT_TIMEOUT=0.5ns", NULL};
    sluice_config_load_opts ok_opts = {.envp = ok_envp};
    const char *ok_text = "pools:\n  - name: push\n    workers: 1\n    queue_capacity: 1\n";
    sluice_config *cfg = NULL;
    char err[512];
    assert_int_equal(
        sluice_config_load_string(ok_text, strlen(ok_text), "sluice.yaml", &ok_opts, &cfg, err, sizeof err),
        SLUICE_OK);
    assert_non_null(cfg);
    sluice_config_free(cfg);
}

/* sluice_config_env_name and _format_duration at their buffer sizes:
 * len 0 writes nothing (env_name wrote buf[SIZE_MAX]), len 1 is "", a
 * name of SLUICE_POOL_NAME_MAX bytes fits in SLUICE_POOL_NAME_MAX + 14
 * and is cut one byte shorter; a NULL name reads as "" (it crashed). */
static void test_text_buffers_at_their_sizes(void **state)
{
    (void)state;
    char buf[SLUICE_POOL_NAME_MAX + 32];
    memset(buf, 'x', sizeof buf);
    assert_ptr_equal(sluice_config_env_name("push", buf, 0), buf);
    assert_int_equal(buf[0], 'x');
    assert_null(sluice_config_env_name("push", NULL, 0));
    assert_ptr_equal(sluice_config_env_name("push", buf, 1), buf);
    assert_string_equal(buf, "");
    assert_string_equal(sluice_config_env_name("push-eu.1", buf, sizeof buf), "SLUICE_POOL_PUSH_EU_1_");
    assert_string_equal(sluice_config_env_name(NULL, buf, sizeof buf), "SLUICE_POOL__");
    assert_string_equal(sluice_config_env_name("", buf, sizeof buf), "SLUICE_POOL__");
    assert_string_equal(sluice_config_env_name("push", buf, 5), "SLUI");
    char name[SLUICE_POOL_NAME_MAX + 1];
    memset(name, 'a', SLUICE_POOL_NAME_MAX);
    name[SLUICE_POOL_NAME_MAX] = '\0';
    char want[SLUICE_POOL_NAME_MAX + 14];
    snprintf(want, sizeof want, "SLUICE_POOL_%.*s_", SLUICE_POOL_NAME_MAX,
             "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    memset(buf, 'x', sizeof buf);
    assert_string_equal(sluice_config_env_name(name, buf, SLUICE_POOL_NAME_MAX + 14), want);
    assert_true(strlen(buf) == SLUICE_POOL_NAME_MAX + 13);
    sluice_config_env_name(name, buf, SLUICE_POOL_NAME_MAX + 13);
    assert_true(strlen(buf) == SLUICE_POOL_NAME_MAX + 12);

    memset(buf, 'x', sizeof buf);
    assert_ptr_equal(sluice_config_format_duration(250 * SLUICE_NS_PER_MS, buf, 0), buf);
    assert_int_equal(buf[0], 'x');
    assert_string_equal(sluice_config_format_duration(250 * SLUICE_NS_PER_MS, buf, 1), "");
    assert_string_equal(sluice_config_format_duration(250 * SLUICE_NS_PER_MS, buf, 3), "25");
    assert_string_equal(sluice_config_format_duration(0, buf, sizeof buf), "0s");
    char top[23];
    assert_string_equal(sluice_config_format_duration(UINT64_MAX, top, sizeof top), "18446744073709551615ns");
}

/* ---- counters across reloads ----------------------------------------------------------- */

typedef struct sample {
    char key[512];
    double v;
} sample;

typedef struct scrape {
    sample *s;
    size_t n;
} scrape;

/* The counter samples of an exposition (counter families' samples and
 * histograms' _bucket/_count), after checking that no family is declared
 * twice and no series is written twice. */
static scrape parse_counters(const char *text)
{
    scrape sc = {calloc(8192, sizeof(sample)), 0};
    assert_non_null(sc.s);
    char *copy = strdup(text);
    char fams[512][160];
    size_t nf = 0;
    char type[32] = "";
    for (char *save = NULL, *ln = strtok_r(copy, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        if (strncmp(ln, "# TYPE ", 7) == 0) {
            char fam[160];
            assert_int_equal(sscanf(ln + 7, "%159s %31s", fam, type), 2);
            for (size_t i = 0; i < nf; i++) {
                if (strcmp(fams[i], fam) == 0) {
                    fail_msg("family %s declared twice", fam);
                }
            }
            assert_true(nf < 512);
            snprintf(fams[nf++], sizeof fams[0], "%s", fam);
            continue;
        }
        if (ln[0] == '#') {
            continue;
        }
        char *sp = strrchr(ln, ' ');
        assert_non_null(sp);
        *sp = '\0';
        for (size_t i = 0; i < sc.n; i++) {
            if (strcmp(sc.s[i].key, ln) == 0) {
                fail_msg("series %s written twice", ln);
            }
        }
        bool counter = strcmp(type, "counter") == 0 ||
                       (strcmp(type, "histogram") == 0 && (strstr(ln, "_bucket") || strstr(ln, "_count")));
        if (counter) {
            assert_true(sc.n < 8192);
            snprintf(sc.s[sc.n].key, sizeof sc.s[0].key, "%s", ln);
            sc.s[sc.n].v = strtod(sp + 1, NULL);
            sc.n++;
        }
    }
    free(copy);
    return sc;
}

/* Every counter of `before` that `after` also has is at least as large. */
static void expect_no_decrease(const scrape *before, const scrape *after, const char *step)
{
    size_t common = 0;
    for (size_t i = 0; i < before->n; i++) {
        for (size_t j = 0; j < after->n; j++) {
            if (strcmp(before->s[i].key, after->s[j].key) == 0) {
                common++;
                if (after->s[j].v < before->s[i].v) {
                    fail_msg("%s: %s went down: %g -> %g", step, before->s[i].key, before->s[i].v,
                             after->s[j].v);
                }
                break;
            }
        }
    }
    assert_true(common > 20); /* the pools' own counters stay */
}

static scrape take(sluice_service *svc)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sluice_metrics_render(sluice_service_metrics(svc), SLUICE_EXPO_PROMETHEUS, &text, &len),
                     SLUICE_OK);
    scrape sc = parse_counters(text);
    free(text);
    char *om = NULL;
    assert_int_equal(sluice_metrics_render(sluice_service_metrics(svc), SLUICE_EXPO_OPENMETRICS, &om, &len),
                     SLUICE_OK);
    scrape o = parse_counters(om); /* the checks only */
    free(o.s);
    free(om);
    return sc;
}

static int ok_task(void *arg)
{
    (void)arg;
    return 0;
}

static int fail_task(void *arg)
{
    (void)arg;
    return 3;
}

static uint64_t g_submitted;

static void work(sluice_service *svc)
{
    sluice_pool *fair = sluice_service_find_pool(svc, "fair");
    sluice_pool *tuned = sluice_service_find_pool(svc, "tuned");
    const char *tenants[] = {"acme", "globex", "initech", "other", "x.y:z-1"};
    for (int i = 0; i < 40; i++) {
        sluice_submit_opts o;
        memset(&o, 0, sizeof o);
        o.tenant_name = tenants[i % 5];
        assert_int_equal(sluice_pool_submit_ex(fair, i % 7 ? ok_task : fail_task, NULL, &o), SLUICE_OK);
        assert_int_equal(sluice_pool_submit(tuned, i % 5 ? ok_task : fail_task, NULL), SLUICE_OK);
    }
    g_submitted += 40;
    sluice_pool *pools[] = {fair, tuned};
    for (int p = 0; p < 2; p++) {
        sluice_pool_stats st;
        WAIT_FOR((sluice_pool_stats_get(pools[p], &st),
                  st.completed + st.failed >= g_submitted && st.running == 0),
                 "the tasks ran");
    }
}

static void put_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void quiet(void *user, const char *line)
{
    (void)user;
    (void)line;
}

#define FAIR_POOL(workers, weight)                                                                           \
    "  - name: fair\n    workers: " workers "\n    queue_capacity: 200\n    queue_discipline: fair\n"        \
    "    tenants:\n      - {name: acme, weight: " weight "}\n      - {name: globex, weight: 1}\n"

static void test_counters_never_go_down_across_reloads(void **state)
{
    (void)state;
    const char *files[] = {
        /* resize both, a tenant's weight, the controller's bounds */
        "pools:\n" FAIR_POOL("6", "3") "  - name: tuned\n    workers: 6\n    queue_capacity: 100\n"
                                       "    concurrency_mode: aimd\n    concurrency_min: 2\n    "
                                       "concurrency_max: 12\n    autotune: true\n",
        /* the controller off (its series leave), K back to workers; fewer workers */
        "pools:\n" FAIR_POOL("1", "1") "  - name: tuned\n    workers: 1\n    queue_capacity: 100\n",
        /* on again (a fresh controller), the tenants list changed */
        "pools:\n  - name: fair\n    workers: 3\n    queue_capacity: 200\n    queue_discipline: fair\n"
        "    tenants:\n      - {name: initech, weight: 5}\n"
        "  - name: tuned\n    workers: 8\n    queue_capacity: 100\n    autotune: true\n",
    };
    const char *first = "pools:\n" FAIR_POOL(
        "4", "2") "  - name: tuned\n    workers: 4\n    queue_capacity: 100\n"
                  "    concurrency_mode: gradient2\n    concurrency_max: 16\n    autotune: true\n";
    sluice_config *cfg = NULL;
    char err[1024];
    assert_int_equal(
        sluice_config_load_string(first, strlen(first), "sluice.yaml", &NO_ENV, &cfg, err, sizeof err),
        SLUICE_OK);
    sluice_service_config base;
    sluice_service_config_init(&base);
    base.no_signals = true;
    base.log = quiet;
    sluice_service *svc = NULL;
    if (sluice_service_create_from_config(cfg, &base, NULL, NULL, &svc, err, sizeof err) != SLUICE_OK) {
        fail_msg("create: %s", err);
    }
    g_submitted = 0;
    work(svc);
    scrape prev = take(svc);
    char path[] = "/tmp/sluice-contracts-reload-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    for (size_t round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            put_file(path, files[i]);
            if (sluice_service_reload_config(svc, &cfg, path, &NO_ENV, quiet, NULL, err, sizeof err) !=
                SLUICE_OK) {
                fail_msg("reload %zu: %s", i, err);
            }
            scrape mid = take(svc); /* right after the reload, before more work */
            char step[64];
            snprintf(step, sizeof step, "reload %zu (round %zu)", i, round);
            expect_no_decrease(&prev, &mid, step);
            work(svc);
            scrape next = take(svc);
            expect_no_decrease(&mid, &next, "work after a reload");
            free(prev.s);
            free(mid.s);
            prev = next;
        }
    }
    free(prev.s);
    unlink(path);
    sluice_service_shutdown(svc);
    sluice_lifecycle_report rep;
    assert_int_equal(sluice_service_run(svc, &rep), SLUICE_OK);
    sluice_service_destroy(svc);
    sluice_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_extremes),
        cmocka_unit_test(test_duration_spaces_and_tiny),
        cmocka_unit_test(test_text_buffers_at_their_sizes),
        cmocka_unit_test(test_counters_never_go_down_across_reloads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

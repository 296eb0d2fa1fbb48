/*
 * tests/obs/test_contracts_obs.c - sluice/metrics.h and sluice/log.h
 * probed from the headers alone, at their extremes: names at
 * SLUICE_METRIC_NAME_MAX and one past, label counts at
 * SLUICE_METRIC_MAX_LABELS and one past, label values at 256 bytes and
 * 257 and every kind of bad UTF-8, buckets at SLUICE_HIST_MAX_BUCKETS and
 * at their bounds, max_series 1 and SIZE_MAX (per metric and per
 * registry, with a fair pool scraped), NaN and the infinities through
 * every update, a label value of "other" against the series cap, names
 * whose exposition would clash (a counter and a gauge of one OpenMetrics
 * family, a histogram's _count, the library's sluice_ families), a
 * collector removed while scrapes run, pool counters across resizes,
 * sluice_format_double's buffers and round trips; and for the logger:
 * bad enums, lines cut at SLUICE_LOG_LINE_MAX in both formats with every
 * line valid UTF-8 (and JSON), a sink that logs again, the rate limit at
 * 1 ns and UINT64_MAX on a fake clock and with more keys than its table.
 *
 * Every exposition rendered here goes through expo_check: each family is
 * declared once, each series (name and labels) is written once, and each
 * sample belongs to the family declared last - what a scraper refuses a
 * whole scrape for.
 */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/wait.h"
#include "sluice/clock.h"
#include "sluice/log.h"
#include "sluice/metrics.h"
#include "sluice/pool.h"
#include "sluice/tenant.h"

/* ---- exposition checks ----------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The family a sample name belongs to, given the family's declared name
 * and type: the name itself, or with a histogram's or counter's suffix. */
static bool sample_in_family(const char *sample, const char *family, const char *type, bool om)
{
    size_t n = strlen(family);
    if (strncmp(sample, family, n) != 0) {
        return false;
    }
    const char *rest = sample + n;
    if (strcmp(type, "histogram") == 0) {
        return strcmp(rest, "_bucket") == 0 || strcmp(rest, "_count") == 0 || strcmp(rest, "_sum") == 0;
    }
    if (strcmp(type, "counter") == 0 && om) {
        return strcmp(rest, "_total") == 0;
    }
    return *rest == '\0';
}

/* Fails the test unless `text` is an exposition a scraper takes whole. */
static void expo_check(const char *text, bool om)
{
    char *copy = strdup(text);
    assert_non_null(copy);
    size_t cap = 64, nfam = 0, nser = 0, sercap = 64;
    char **fams = malloc(cap * sizeof *fams);
    char **sers = malloc(sercap * sizeof *sers);
    assert_non_null(fams);
    assert_non_null(sers);
    char family[256] = "", type[32] = "";
    bool eof = false;
    for (char *save = NULL, *ln = strtok_r(copy, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        assert_false(eof); /* nothing after # EOF */
        if (strncmp(ln, "# HELP ", 7) == 0) {
            continue;
        }
        if (strcmp(ln, "# EOF") == 0) {
            eof = true;
            continue;
        }
        if (strncmp(ln, "# TYPE ", 7) == 0) {
            assert_int_equal(sscanf(ln + 7, "%255s %31s", family, type), 2);
            for (size_t i = 0; i < nfam; i++) {
                if (strcmp(fams[i], family) == 0) {
                    fail_msg("family %s declared twice in:\n%s", family, text);
                }
            }
            if (nfam == cap) {
                cap *= 2;
                fams = realloc(fams, cap * sizeof *fams);
                assert_non_null(fams);
            }
            fams[nfam++] = strdup(family);
            continue;
        }
        assert_true(ln[0] != '#');
        /* A sample: name{labels} value. */
        char *sp = strrchr(ln, ' ');
        assert_non_null(sp);
        char name[256];
        size_t nl = strcspn(ln, "{ ");
        assert_true(nl < sizeof name);
        memcpy(name, ln, nl);
        name[nl] = '\0';
        if (!family[0] || !sample_in_family(name, family, type, om)) {
            fail_msg("sample %s is not of family %s (%s)", ln, family, type);
        }
        if (nser == sercap) {
            sercap *= 2;
            sers = realloc(sers, sercap * sizeof *sers);
            assert_non_null(sers);
        }
        sers[nser++] = strndup(ln, (size_t)(sp - ln));
        /* The value reads back as a double. */
        const char *v = sp + 1;
        if (strcmp(v, "+Inf") && strcmp(v, "-Inf") && strcmp(v, "NaN")) {
            char *end;
            strtod(v, &end);
            assert_true(*end == '\0' && end != v);
        }
    }
    assert_true(eof == om);
    qsort(sers, nser, sizeof *sers, cmp_str);
    for (size_t i = 1; i < nser; i++) {
        if (strcmp(sers[i - 1], sers[i]) == 0) {
            fail_msg("series %s written twice", sers[i]);
        }
    }
    for (size_t i = 0; i < nfam; i++) {
        free(fams[i]);
    }
    for (size_t i = 0; i < nser; i++) {
        free(sers[i]);
    }
    free(fams);
    free(sers);
    free(copy);
}

static char *render_checked(sluice_metrics *reg, sluice_expo_format fmt)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sluice_metrics_render(reg, fmt, &text, &len), SLUICE_OK);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    expo_check(text, fmt == SLUICE_EXPO_OPENMETRICS);
    return text;
}

static void render_both(sluice_metrics *reg)
{
    free(render_checked(reg, SLUICE_EXPO_PROMETHEUS));
    free(render_checked(reg, SLUICE_EXPO_OPENMETRICS));
}

/* The value of the sample line starting with `key ` in text, or NAN. */
static double sample_value(const char *text, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, n) == 0 && p[n] == ' ') {
            return strtod(p + n + 1, NULL);
        }
    }
    return NAN;
}

/* ---- registration ----------------------------------------------------------------- */

static void test_register_bounds(void **state)
{
    (void)state;
    sluice_metrics_destroy(NULL); /* a no-op */
    assert_int_equal(sluice_metrics_create(NULL, NULL), SLUICE_EINVAL);
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    sluice_metric *m = NULL;
    char err[256];

    /* NULLs: EINVAL with a message; errbuf optional and cut to its size. */
    sluice_metric_desc d = {.name = "app_g"};
    assert_int_equal(sluice_metrics_register(NULL, SLUICE_METRIC_GAUGE, &d, &m, err, sizeof err),
                     SLUICE_EINVAL);
    assert_true(err[0] != '\0');
    assert_int_equal(sluice_metrics_register(reg, SLUICE_METRIC_GAUGE, NULL, &m, NULL, 0), SLUICE_EINVAL);
    assert_int_equal(sluice_metrics_register(reg, SLUICE_METRIC_GAUGE, &d, NULL, err, 1), SLUICE_EINVAL);
    assert_int_equal(err[0], '\0');
    assert_int_equal(sluice_metrics_register(reg, (sluice_metric_type)3, &d, &m, err, sizeof err),
                     SLUICE_EINVAL);
    assert_int_equal(sluice_metrics_register(reg, (sluice_metric_type)-1, &d, &m, err, sizeof err),
                     SLUICE_EINVAL);

    /* Names: SLUICE_METRIC_NAME_MAX bytes and one past; empty; a digit
     * first; ':' anywhere; NULL. */
    char name[SLUICE_METRIC_NAME_MAX + 2];
    memset(name, 'a', sizeof name);
    name[SLUICE_METRIC_NAME_MAX] = '\0';
    d.name = name;
    assert_int_equal(sluice_metrics_register(reg, SLUICE_METRIC_GAUGE, &d, &m, err, sizeof err), SLUICE_OK);
    assert_int_equal(err[0], '\0'); /* NUL-terminated, empty on success */
    name[SLUICE_METRIC_NAME_MAX] = 'a';
    name[SLUICE_METRIC_NAME_MAX + 1] = '\0';
    assert_int_equal(sluice_metrics_register(reg, SLUICE_METRIC_GAUGE, &d, &m, err, sizeof err),
                     SLUICE_EINVAL);
    assert_non_null(strstr(err, "not a valid metric name"));
    const char *bad_names[] = {"", "1abc", "a-b", "a b", "a\xc3\xa9", "a{b}", NULL};
    for (size_t i = 0; bad_names[i]; i++) {
        d.name = bad_names[i];
        assert_int_equal(sluice_metrics_register(reg, SLUICE_METRIC_GAUGE, &d, &m, err, sizeof err),
                         SLUICE_EINVAL);
    }
    d.name = NULL;
    assert_int_equal(sluice_metrics_register(reg, SLUICE_METRIC_GAUGE, &d, &m, err, sizeof err),
                     SLUICE_EINVAL);
    d.name = ":app:colon_1";
    assert_int_equal(sluice_metrics_register(reg, SLUICE_METRIC_GAUGE, &d, &m, err, sizeof err), SLUICE_OK);

    /* Labels: SLUICE_METRIC_MAX_LABELS and one past (desc and shorthand),
     * a count with no names, a label name at the length limit, repeated,
     * "__" first, "le" on a histogram. */
    static const char *const four[] = {"a", "b", "c", "d", NULL};
    static const char *const five[] = {"a", "b", "c", "d", "e", NULL};
    assert_int_equal(sluice_metrics_gauge(reg, "app_four", NULL, four, &m), SLUICE_OK);
    assert_int_equal(sluice_metrics_gauge(reg, "app_five", NULL, five, &m), SLUICE_EINVAL);
    d = (sluice_metric_desc){.name = "app_five", .label_names = five, .label_count = 5};
    assert_int_equal(sluice_metrics_register(reg, SLUICE_METRIC_GAUGE, &d, &m, err, sizeof err),
                     SLUICE_EINVAL);
    assert_non_null(strstr(err, "app_five"));
    d = (sluice_metric_desc){.name = "app_nonames", .label_count = 1};
    assert_int_equal(sluice_metrics_register(reg, SLUICE_METRIC_GAUGE, &d, &m, err, sizeof err),
                     SLUICE_EINVAL);
    char lname[SLUICE_METRIC_NAME_MAX + 2];
    memset(lname, 'l', sizeof lname);
    lname[SLUICE_METRIC_NAME_MAX] = '\0';
    const char *longlabel[] = {lname, NULL};
    assert_int_equal(sluice_metrics_gauge(reg, "app_longlabel", NULL, longlabel, &m), SLUICE_OK);
    const char *v1[] = {"x"};
    assert_int_equal(sluice_metric_set(m, v1, 1), SLUICE_OK);
    lname[SLUICE_METRIC_NAME_MAX] = 'l';
    lname[SLUICE_METRIC_NAME_MAX + 1] = '\0';
    assert_int_equal(sluice_metrics_gauge(reg, "app_longlabel2", NULL, longlabel, &m), SLUICE_EINVAL);
    static const char *const rep[] = {"k", "k", NULL};
    assert_int_equal(sluice_metrics_gauge(reg, "app_rep", NULL, rep, &m), SLUICE_EINVAL);
    static const char *const dunder[] = {"__k", NULL};
    assert_int_equal(sluice_metrics_counter(reg, "app_dunder_total", NULL, dunder, &m), SLUICE_EINVAL);
    static const char *const le[] = {"le", NULL};
    assert_int_equal(sluice_metrics_histogram(reg, "app_le_seconds", NULL, le, NULL, 0, &m), SLUICE_EINVAL);
    static const char *const empty_label[] = {"", NULL};
    assert_int_equal(sluice_metrics_gauge(reg, "app_emptylabel", NULL, empty_label, &m), SLUICE_EINVAL);

    /* Buckets: 1 and SLUICE_HIST_MAX_BUCKETS, one past; given with a count
     * of 0; not increasing; 0, negative, past 1e9, NaN, +Inf. */
    double b[SLUICE_HIST_MAX_BUCKETS + 1];
    for (size_t i = 0; i <= SLUICE_HIST_MAX_BUCKETS; i++) {
        b[i] = 0.001 * (double)(i + 1);
    }
    assert_int_equal(sluice_metrics_histogram(reg, "app_one_seconds", NULL, NULL, b, 1, &m), SLUICE_OK);
    assert_int_equal(
        sluice_metrics_histogram(reg, "app_max_seconds", NULL, NULL, b, SLUICE_HIST_MAX_BUCKETS, &m),
        SLUICE_OK);
    assert_int_equal(sluice_metric_observe(m, NULL, 1e6), SLUICE_OK);
    assert_int_equal(
        sluice_metrics_histogram(reg, "app_past_seconds", NULL, NULL, b, SLUICE_HIST_MAX_BUCKETS + 1, &m),
        SLUICE_EINVAL);
    assert_int_equal(sluice_metrics_histogram(reg, "app_zero_count_seconds", NULL, NULL, b, 0, &m),
                     SLUICE_EINVAL);
    const double edges[][2] = {{0, 1}, {-1, 1}, {1, 1e9 * (1 + 1e-9)}, {NAN, 1}, {1, INFINITY}, {2, 1}};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        d = (sluice_metric_desc){.name = "app_edge_seconds", .buckets = edges[i], .bucket_count = 2};
        assert_int_equal(sluice_metrics_register(reg, SLUICE_METRIC_HISTOGRAM, &d, &m, err, sizeof err),
                         SLUICE_EINVAL);
        assert_true(err[0] != '\0');
    }
    const double top[] = {1e-9, 1e9};
    assert_int_equal(sluice_metrics_histogram(reg, "app_top_seconds", NULL, NULL, top, 2, &m), SLUICE_OK);

    /* Same name: the same metric only for the same type and labels. */
    sluice_metric *g1, *g2;
    static const char *const k[] = {"k", NULL};
    static const char *const j[] = {"j", NULL};
    assert_int_equal(sluice_metrics_gauge(reg, "app_same", "one", k, &g1), SLUICE_OK);
    assert_int_equal(sluice_metrics_gauge(reg, "app_same", "two", k, &g2), SLUICE_OK);
    assert_ptr_equal(g1, g2);
    assert_int_equal(sluice_metrics_gauge(reg, "app_same", NULL, j, &g2), SLUICE_EINVAL);
    assert_int_equal(sluice_metrics_gauge(reg, "app_same", NULL, NULL, &g2), SLUICE_EINVAL);
    assert_int_equal(sluice_metrics_histogram(reg, "app_same", NULL, k, NULL, 0, &g2), SLUICE_EINVAL);
    render_both(reg);
    sluice_metrics_destroy(reg);
}

/* Names whose exposition would clash: a scraper refuses the whole scrape
 * for a family declared twice or a series written twice, so register
 * refuses the second name, saying which it clashes with. */
static void test_register_refuses_clashing_names(void **state)
{
    (void)state;
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    sluice_metric *m;
    char err[256];
    struct {
        sluice_metric_type type;
        const char *first, *second;
        sluice_metric_type second_type;
    } cases[] = {
        /* OpenMetrics names a counter's family without _total. */
        {SLUICE_METRIC_COUNTER, "app_a_total", "app_a", SLUICE_METRIC_GAUGE},
        {SLUICE_METRIC_GAUGE, "app_b", "app_b_total", SLUICE_METRIC_COUNTER},
        {SLUICE_METRIC_HISTOGRAM, "app_b2", "app_b2_total", SLUICE_METRIC_COUNTER},
        /* A histogram's series. */
        {SLUICE_METRIC_HISTOGRAM, "app_c", "app_c_count", SLUICE_METRIC_GAUGE},
        {SLUICE_METRIC_HISTOGRAM, "app_d", "app_d_sum", SLUICE_METRIC_GAUGE},
        {SLUICE_METRIC_HISTOGRAM, "app_e", "app_e_bucket", SLUICE_METRIC_GAUGE},
        {SLUICE_METRIC_GAUGE, "app_f_count", "app_f", SLUICE_METRIC_HISTOGRAM},
        {SLUICE_METRIC_HISTOGRAM, "app_g", "app_g_count_total", SLUICE_METRIC_COUNTER},
        {SLUICE_METRIC_COUNTER, "app_h_sum_total", "app_h", SLUICE_METRIC_HISTOGRAM},
        /* OpenMetrics' _created, of counters and histograms. */
        {SLUICE_METRIC_COUNTER, "app_i_total", "app_i_created", SLUICE_METRIC_GAUGE},
        {SLUICE_METRIC_HISTOGRAM, "app_j", "app_j_created", SLUICE_METRIC_GAUGE},
        {SLUICE_METRIC_GAUGE, "app_k_created", "app_k_total", SLUICE_METRIC_COUNTER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sluice_metric_desc d = {.name = cases[i].first};
        assert_int_equal(sluice_metrics_register(reg, cases[i].type, &d, &m, err, sizeof err), SLUICE_OK);
        d.name = cases[i].second;
        sluice_err r = sluice_metrics_register(reg, cases[i].second_type, &d, &m, err, sizeof err);
        if (r != SLUICE_EINVAL) {
            fail_msg("%s after %s: %s, want EINVAL", cases[i].second, cases[i].first, sluice_strerror(r));
        }
        assert_non_null(strstr(err, cases[i].first));
    }
    /* The library's own families. */
    const char *reserved[] = {"sluice_metrics_write_errors_total", "sluice_metrics_series_overflow_total",
                              "sluice_sync_anything_total", NULL};
    for (size_t i = 0; reserved[i]; i++) {
        sluice_metric_desc d = {.name = reserved[i]};
        assert_int_equal(sluice_metrics_register(reg, SLUICE_METRIC_COUNTER, &d, &m, err, sizeof err),
                         SLUICE_EINVAL);
        assert_non_null(strstr(err, "reserved"));
    }
    /* Names that only look alike are fine. */
    assert_int_equal(sluice_metrics_gauge(reg, "app_a_totals", NULL, NULL, &m), SLUICE_OK);
    assert_int_equal(sluice_metrics_gauge(reg, "app_c_counts", NULL, NULL, &m), SLUICE_OK);
    assert_int_equal(sluice_metrics_gauge(reg, "sluicex", NULL, NULL, &m), SLUICE_OK);
    render_both(reg);
    sluice_metrics_destroy(reg);
}

/* ---- series and updates --------------------------------------------------------- */

static void test_label_values(void **state)
{
    (void)state;
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    static const char *const l1[] = {"k", NULL};
    sluice_metric *g;
    sluice_series *s;
    assert_int_equal(sluice_metrics_gauge(reg, "app_v", NULL, l1, &g), SLUICE_OK);
    char v[300];
    memset(v, 'v', sizeof v);
    v[256] = '\0';
    const char *vals[] = {v};
    assert_int_equal(sluice_metric_series(g, vals, &s), SLUICE_OK);
    v[256] = 'v';
    v[257] = '\0';
    assert_int_equal(sluice_metric_series(g, vals, &s), SLUICE_EINVAL);
    /* 256 bytes of 2-byte characters. */
    for (size_t i = 0; i < 256; i += 2) {
        v[i] = '\xc3';
        v[i + 1] = '\xa9';
    }
    v[256] = '\0';
    assert_int_equal(sluice_metric_series(g, vals, &s), SLUICE_OK);
    const char *bad[] = {
        "\x80",             /* continuation first */
        "\xc3",             /* cut */
        "\xe2\x82",         /* cut */
        "\xc0\x80",         /* overlong NUL */
        "\xe0\x80\xaf",     /* overlong */
        "\xed\xa0\x80",     /* surrogate */
        "\xf4\x90\x80\x80", /* past U+10FFFF */
        "\xf8\x88\x80\x80\x80",
        "\xff",
        "a\xc3(b",
        NULL,
    };
    for (size_t i = 0; bad[i]; i++) {
        const char *bv[] = {bad[i]};
        assert_int_equal(sluice_metric_series(g, bv, &s), SLUICE_EINVAL);
        assert_int_equal(sluice_metric_set(g, bv, 1), SLUICE_EINVAL);
    }
    const char *good[] = {"", "\xf4\x8f\xbf\xbf", "\xef\xbb\xbf", "tab\there", "q\"\\\n", NULL};
    for (size_t i = 0; good[i]; i++) {
        const char *gv[] = {good[i]};
        assert_int_equal(sluice_metric_set(g, gv, (double)i), SLUICE_OK);
    }
    const char *nullv[] = {NULL};
    assert_int_equal(sluice_metric_series(g, nullv, &s), SLUICE_EINVAL);
    assert_int_equal(sluice_metric_series(g, NULL, &s), SLUICE_EINVAL);
    assert_int_equal(sluice_metric_series(NULL, vals, &s), SLUICE_EINVAL);
    /* An unlabelled metric ignores values. */
    sluice_metric *u;
    assert_int_equal(sluice_metrics_gauge(reg, "app_u", NULL, NULL, &u), SLUICE_OK);
    assert_int_equal(sluice_metric_set(u, vals, 5), SLUICE_OK);
    assert_int_equal(sluice_metric_series(u, NULL, &s), SLUICE_OK);
    assert_true(sluice_series_value(s) == 5);
    char *text = render_checked(reg, SLUICE_EXPO_PROMETHEUS);
    assert_non_null(strstr(text, "app_v{k=\"q\\\"\\\\\\n\"} 4\n"));
    assert_non_null(strstr(text, "app_v{k=\"tab\there\"} 3\n"));
    free(text);
    free(render_checked(reg, SLUICE_EXPO_OPENMETRICS));
    sluice_metrics_destroy(reg);
}

static void test_updates_at_extremes(void **state)
{
    (void)state;
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    sluice_metric *c, *g, *h;
    assert_int_equal(sluice_metrics_counter(reg, "app_c_total", NULL, NULL, &c), SLUICE_OK);
    assert_int_equal(sluice_metrics_gauge(reg, "app_g", NULL, NULL, &g), SLUICE_OK);
    static const double b[] = {1, 2};
    assert_int_equal(sluice_metrics_histogram(reg, "app_h_seconds", NULL, NULL, b, 2, &h), SLUICE_OK);
    sluice_series *cs, *gs, *hs;
    assert_int_equal(sluice_metric_series(c, NULL, &cs), SLUICE_OK);
    assert_int_equal(sluice_metric_series(g, NULL, &gs), SLUICE_OK);
    assert_int_equal(sluice_metric_series(h, NULL, &hs), SLUICE_OK);

    /* NaN: refused by every update, by values and by series. */
    assert_int_equal(sluice_metric_add(c, NULL, NAN), SLUICE_EINVAL);
    assert_int_equal(sluice_metric_add(g, NULL, NAN), SLUICE_EINVAL);
    assert_int_equal(sluice_metric_set(g, NULL, NAN), SLUICE_EINVAL);
    assert_int_equal(sluice_metric_observe(h, NULL, NAN), SLUICE_EINVAL);
    assert_int_equal(sluice_series_add(cs, NAN), SLUICE_EINVAL);
    assert_int_equal(sluice_series_set(gs, -NAN), SLUICE_EINVAL);
    assert_int_equal(sluice_series_observe(hs, NAN), SLUICE_EINVAL);
    /* Wrong type, negative counter steps, NULL series. */
    assert_int_equal(sluice_series_add(cs, -1e-300), SLUICE_EINVAL);
    assert_int_equal(sluice_series_add(cs, -INFINITY), SLUICE_EINVAL);
    assert_int_equal(sluice_series_set(cs, 1), SLUICE_EINVAL);
    assert_int_equal(sluice_series_observe(cs, 1), SLUICE_EINVAL);
    assert_int_equal(sluice_series_observe(gs, 1), SLUICE_EINVAL);
    assert_int_equal(sluice_series_add(hs, 1), SLUICE_EINVAL);
    assert_int_equal(sluice_series_set(hs, 1), SLUICE_EINVAL);
    assert_int_equal(sluice_series_add(NULL, 1), SLUICE_EINVAL);
    assert_int_equal(sluice_series_set(NULL, 1), SLUICE_EINVAL);
    assert_int_equal(sluice_series_observe(NULL, 1), SLUICE_EINVAL);
    assert_true(sluice_series_value(NULL) == 0);
    assert_true(sluice_series_value(cs) == 0); /* nothing refused changed a value */
    assert_true(sluice_series_value(gs) == 0);
    assert_true(sluice_series_value(hs) == 0);

    /* -0 is a counter step of zero; the largest finite steps and +Inf. */
    assert_int_equal(sluice_series_add(cs, -0.0), SLUICE_OK);
    assert_int_equal(sluice_series_add(cs, 0), SLUICE_OK);
    assert_int_equal(sluice_series_add(cs, 1e308), SLUICE_OK);
    assert_int_equal(sluice_series_add(cs, 1e308), SLUICE_OK); /* overflows to +Inf: never down */
    assert_true(isinf(sluice_series_value(cs)) && sluice_series_value(cs) > 0);
    assert_int_equal(sluice_series_set(gs, -INFINITY), SLUICE_OK);
    /* A histogram: le inclusive at both bounds, +Inf in the last bucket;
     * its value is the count. */
    assert_int_equal(sluice_series_observe(hs, 1), SLUICE_OK);
    assert_int_equal(sluice_series_observe(hs, 2), SLUICE_OK);
    assert_int_equal(sluice_series_observe(hs, INFINITY), SLUICE_OK);
    assert_int_equal(sluice_series_observe(hs, -5), SLUICE_OK);
    assert_true(sluice_series_value(hs) == 4);
    char *text = render_checked(reg, SLUICE_EXPO_PROMETHEUS);
    assert_non_null(strstr(text, "app_c_total +Inf\n"));
    assert_non_null(strstr(text, "app_g -Inf\n"));
    assert_non_null(strstr(text, "app_h_seconds_bucket{le=\"1\"} 2\n"
                                 "app_h_seconds_bucket{le=\"2\"} 3\n"
                                 "app_h_seconds_bucket{le=\"+Inf\"} 4\n"
                                 "app_h_seconds_count 4\n"
                                 "app_h_seconds_sum +Inf\n"));
    free(text);
    text = render_checked(reg, SLUICE_EXPO_OPENMETRICS);
    assert_non_null(strstr(text, "app_h_seconds_bucket{le=\"1.0\"} 2\n"));
    free(text);
    sluice_metrics_destroy(reg);
}

/* A label value that is itself "other": the series cap folds into a
 * series of that name, and the exposition must still write it once. */
static void test_other_value_and_the_cap(void **state)
{
    (void)state;
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    static const char *const l1[] = {"tenant", NULL};
    static const char *const l2[] = {"a", "b", NULL};
    sluice_metric_desc d = {.name = "app_req_total", .label_names = l1, .label_count = 1, .max_series = 2};
    sluice_metric *m, *m2;
    char err[128];
    assert_int_equal(sluice_metrics_register(reg, SLUICE_METRIC_COUNTER, &d, &m, err, sizeof err), SLUICE_OK);
    d = (sluice_metric_desc){.name = "app_two_total", .label_names = l2, .label_count = 2, .max_series = 1};
    assert_int_equal(sluice_metrics_register(reg, SLUICE_METRIC_COUNTER, &d, &m2, err, sizeof err),
                     SLUICE_OK);
    const char *other[] = {SLUICE_METRIC_OTHER, SLUICE_METRIC_OTHER};
    const char *acme[] = {"acme", "x"};
    const char *zeta[] = {"zeta", "y"};
    sluice_series *so, *sa, *sz, *sz2;
    assert_int_equal(sluice_metric_series(m, other, &so), SLUICE_OK);
    assert_int_equal(sluice_metric_series(m, acme, &sa), SLUICE_OK);
    assert_int_equal(sluice_metric_series(m, zeta, &sz), SLUICE_OK); /* past the cap of 2 */
    assert_ptr_equal(sz, so);                                        /* "other" is "other" */
    assert_int_equal(sluice_series_add(so, 1), SLUICE_OK);
    assert_int_equal(sluice_series_add(sz, 2), SLUICE_OK);
    assert_int_equal(sluice_series_add(sa, 4), SLUICE_OK);
    /* max_series 1 with two labels, the first series all "other". */
    assert_int_equal(sluice_metric_add(m2, other, 1), SLUICE_OK);
    assert_int_equal(sluice_metric_add(m2, acme, 1), SLUICE_OK);
    assert_int_equal(sluice_metric_series(m2, zeta, &sz2), SLUICE_OK);
    assert_int_equal(sluice_series_add(sz2, 1), SLUICE_OK);
    char *text = render_checked(reg, SLUICE_EXPO_PROMETHEUS);
    assert_true(sample_value(text, "app_req_total{tenant=\"other\"}") == 3);
    assert_true(sample_value(text, "app_req_total{tenant=\"acme\"}") == 4);
    assert_true(sample_value(text, "app_two_total{a=\"other\",b=\"other\"}") == 3);
    assert_true(sample_value(text, "sluice_metrics_series_overflow_total{metric=\"app_req_total\"}") == 1);
    assert_true(sample_value(text, "sluice_metrics_series_overflow_total{metric=\"app_two_total\"}") == 2);
    free(text);
    free(render_checked(reg, SLUICE_EXPO_OPENMETRICS));
    sluice_metrics_destroy(reg);
}

/* max_series at its maximum: no cap at all. Registering must not spin or
 * allocate in proportion to the cap; series are made as they come. */
static void test_max_series_unbounded(void **state)
{
    (void)state;
    sluice_metrics_config cfg = {.max_series = SIZE_MAX};
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(&cfg, &reg), SLUICE_OK);
    static const char *const l1[] = {"k", NULL};
    sluice_metric *m, *m2;
    assert_int_equal(sluice_metrics_counter(reg, "app_unbounded_total", NULL, l1, &m), SLUICE_OK);
    sluice_metric_desc d = {
        .name = "app_big_total", .label_names = l1, .label_count = 1, .max_series = (size_t)1 << 62};
    assert_int_equal(sluice_metrics_register(reg, SLUICE_METRIC_COUNTER, &d, &m2, NULL, 0), SLUICE_OK);
    enum { N = 3000 };
    char v[16];
    for (int i = 0; i < N; i++) {
        snprintf(v, sizeof v, "s%d", i);
        const char *vals[] = {v};
        assert_int_equal(sluice_metric_add(m, vals, 1), SLUICE_OK);
        assert_int_equal(sluice_metric_add(m2, vals, 2), SLUICE_OK);
    }
    for (int i = 0; i < N; i += 97) { /* each still its own series */
        snprintf(v, sizeof v, "s%d", i);
        const char *vals[] = {v};
        sluice_series *s;
        assert_int_equal(sluice_metric_series(m2, vals, &s), SLUICE_OK);
        assert_true(sluice_series_value(s) == 2);
    }
    char *text = render_checked(reg, SLUICE_EXPO_PROMETHEUS);
    assert_null(strstr(text, "k=\"other\""));
    assert_true(sample_value(text, "sluice_metrics_series_overflow_total{metric=\"app_big_total\"}") == 0);
    free(text);
    sluice_metrics_destroy(reg);
}

/* ---- pools ---------------------------------------------------------------------- */

static int ok_task(void *arg)
{
    (void)arg;
    return 0;
}

static int fail_task(void *arg)
{
    (void)arg;
    return 1;
}

static sluice_pool *make_pool(const char *name, bool fair)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = name;
    pc.workers = 2;
    pc.queue_capacity = 64;
    if (fair) {
        pc.queue_discipline = SLUICE_QUEUE_FAIR;
        pc.fair.idle_forget_ns = UINT64_MAX;
    }
    sluice_pool *p = NULL;
    char err[256];
    assert_int_equal(sluice_pool_create(&pc, &p, err, sizeof err), SLUICE_OK);
    return p;
}

static void submit_as(sluice_pool *p, const char *tenant, sluice_task_fn fn)
{
    sluice_submit_opts o;
    memset(&o, 0, sizeof o);
    o.tenant_name = tenant;
    assert_int_equal(sluice_pool_submit_ex(p, fn, NULL, &o), SLUICE_OK);
}

static void wait_idle(sluice_pool *p, uint64_t submitted)
{
    sluice_pool_stats st;
    WAIT_FOR((sluice_pool_stats_get(p, &st), st.completed + st.failed == submitted && st.running == 0),
             "the pool's tasks finished");
}

/* A registry with no cap on series (max_series at its maximum, and one
 * past any tenant count) scrapes a fair pool: every tenant its own series. */
static void test_fair_pool_with_unbounded_series(void **state)
{
    (void)state;
    const size_t caps[] = {SIZE_MAX, (size_t)1 << 61, (size_t)1 << 40, 1, 2};
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        sluice_metrics_config cfg = {.max_series = caps[c]};
        sluice_metrics *reg;
        assert_int_equal(sluice_metrics_create(&cfg, &reg), SLUICE_OK);
        sluice_pool *p = make_pool("fairp", true);
        assert_int_equal(sluice_metrics_add_pool(reg, p), SLUICE_OK);
        submit_as(p, "alpha", ok_task);
        submit_as(p, "beta", ok_task);
        submit_as(p, "beta", fail_task);
        submit_as(p, "gamma", ok_task);
        wait_idle(p, 4);
        char *text = render_checked(reg, SLUICE_EXPO_PROMETHEUS);
        double sum = 0;
        int series = 0;
        const char *tenants[] = {"alpha", "beta", "gamma", "other"};
        for (size_t t = 0; t < 4; t++) {
            char key[128];
            snprintf(key, sizeof key, "pool_tenant_submitted_total{name=\"fairp\",tenant=\"%s\"}",
                     tenants[t]);
            double v = sample_value(text, key);
            if (!isnan(v)) {
                sum += v;
                series++;
            }
        }
        assert_true(sum == 4); /* the families add up to the pool's totals */
        if (caps[c] > 3) {
            assert_int_equal(series, 3); /* no folding */
        } else {
            /* At most max(max_series, 2) series: one tenant and "other" at 1 and 2. */
            assert_int_equal(series, 2);
        }
        free(text);
        free(render_checked(reg, SLUICE_EXPO_OPENMETRICS));
        assert_int_equal(sluice_metrics_remove_pool(reg, p), SLUICE_OK);
        sluice_pool_destroy(p);
        sluice_metrics_destroy(reg);
    }
}

static void test_pool_registration(void **state)
{
    (void)state;
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    sluice_pool *a = make_pool("same", false);
    sluice_pool *b = make_pool("same", false);
    sluice_pool *c = make_pool("other", true); /* a pool named like the fold */
    assert_int_equal(sluice_metrics_add_pool(NULL, a), SLUICE_EINVAL);
    assert_int_equal(sluice_metrics_add_pool(reg, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_metrics_add_pool(reg, a), SLUICE_OK);
    assert_int_equal(sluice_metrics_add_pool(reg, a), SLUICE_EBUSY);
    assert_int_equal(sluice_metrics_add_pool(reg, b), SLUICE_EBUSY); /* same name */
    assert_int_equal(sluice_metrics_add_pool(reg, c), SLUICE_OK);
    assert_int_equal(sluice_metrics_remove_pool(reg, b), SLUICE_ENOENT);
    assert_int_equal(sluice_metrics_remove_pool(NULL, a), SLUICE_EINVAL);
    submit_as(c, SLUICE_METRIC_OTHER, ok_task); /* a tenant named "other" */
    submit_as(c, "t1", ok_task);
    wait_idle(c, 2);
    render_both(reg);
    assert_int_equal(sluice_metrics_remove_pool(reg, a), SLUICE_OK);
    assert_int_equal(sluice_metrics_remove_pool(reg, a), SLUICE_ENOENT);
    assert_int_equal(sluice_metrics_add_pool(reg, b), SLUICE_OK); /* the name is free again */
    render_both(reg);
    sluice_pool_destroy(a);
    assert_int_equal(sluice_metrics_remove_pool(reg, b), SLUICE_OK);
    assert_int_equal(sluice_metrics_remove_pool(reg, c), SLUICE_OK);
    sluice_pool_destroy(b);
    sluice_pool_destroy(c);
    char *text = render_checked(reg, SLUICE_EXPO_PROMETHEUS);
    assert_null(strstr(text, "pool_"));
    free(text);
    sluice_metrics_destroy(reg);
}

/* Counters never go down across resizes (down to 1, up past the start,
 * and back) while tasks complete and fail between scrapes. */
static void test_pool_counters_monotonic_across_resize(void **state)
{
    (void)state;
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    sluice_pool *p = make_pool("rz", true);
    assert_int_equal(sluice_metrics_add_pool(reg, p), SLUICE_OK);
    const char *keys[] = {
        "pool_submitted_total{name=\"rz\"}",
        "pool_completed_total{name=\"rz\"}",
        "pool_failed_total{name=\"rz\"}",
        "pool_task_duration_seconds_count{name=\"rz\"}",
        "pool_tenant_submitted_total{name=\"rz\",tenant=\"t0\"}",
        "pool_tenant_completed_total{name=\"rz\",tenant=\"t1\"}",
    };
    enum { NK = sizeof keys / sizeof keys[0] };
    double last[NK] = {0};
    const unsigned sizes[] = {1, 8, 1, 3, 64, 2};
    uint64_t submitted = 0;
    for (size_t round = 0; round < 12; round++) {
        assert_int_equal(sluice_pool_resize(p, sizes[round % 6]), SLUICE_OK);
        for (int i = 0; i < 10; i++) {
            char t[8];
            snprintf(t, sizeof t, "t%d", i % 3);
            submit_as(p, t, i % 4 ? ok_task : fail_task);
            submitted++;
        }
        wait_idle(p, submitted);
        char *text = render_checked(reg, round % 2 ? SLUICE_EXPO_OPENMETRICS : SLUICE_EXPO_PROMETHEUS);
        for (size_t k = 0; k < NK; k++) {
            double v = sample_value(text, keys[k]);
            assert_false(isnan(v));
            assert_true(v >= last[k]);
            last[k] = v;
        }
        assert_true(last[0] == (double)submitted);
        free(text);
    }
    assert_int_equal(sluice_metrics_remove_pool(reg, p), SLUICE_OK);
    sluice_pool_destroy(p);
    sluice_metrics_destroy(reg);
}

/* ---- collectors ------------------------------------------------------------------ */

typedef struct coll_state {
    atomic_int running;
    atomic_bool removed;
    atomic_int after_remove; /* runs that began after remove returned */
    atomic_int calls;
    sluice_metric *counter; /* a metric of the same registry, updated inside */
} coll_state;

static void odd_collector(sluice_expo *w, void *user)
{
    coll_state *cs = user;
    atomic_fetch_add(&cs->running, 1);
    if (atomic_load(&cs->removed)) {
        atomic_fetch_add(&cs->after_remove, 1);
    }
    int n = atomic_fetch_add(&cs->calls, 1);
    /* Updates on the same registry's metrics are allowed in here, a new
     * series included (the metric's series lock, under the registry's). */
    char v[16];
    snprintf(v, sizeof v, "c%d", n % 5);
    const char *vals[] = {v};
    sluice_metric_add(cs->counter, vals, 1);
    sluice_expo_family(w, "app_odd", SLUICE_METRIC_GAUGE, "Odd values.\nSecond \\ line \xff.");
    sluice_metric_label l[2] = {{"k", "nan"}, {"bad_utf8", "a\xff\xc3(b\xed\xa0\x80"}};
    sluice_expo_sample(w, l, 2, NAN);
    l[0].value = "pinf";
    sluice_expo_sample(w, l, 1, INFINITY);
    l[0].value = "ninf";
    sluice_expo_sample(w, l, 1, -INFINITY);
    l[0].value = "tiny";
    sluice_expo_sample(w, l, 1, 5e-324);
    l[0].value = "";
    sluice_expo_sample(w, l, 1, -0.0);
    sluice_metric_label badname = {"le-x", "v"};
    sluice_expo_sample(w, &badname, 1, 1); /* skipped, counted */
    sluice_metric_label twice[2] = {{"k", "a"}, {"k", "b"}};
    sluice_expo_sample(w, twice, 2, 1);                          /* a label twice: skipped, counted */
    sluice_expo_sample(w, NULL, 1, 1);                           /* no labels given: skipped, counted */
    sluice_expo_family(w, "app bad", SLUICE_METRIC_GAUGE, NULL); /* skipped, counted */
    sluice_expo_sample(w, NULL, 0, 1);                           /* its sample skipped */
    sluice_expo_family(w, "app_odd_seconds", SLUICE_METRIC_HISTOGRAM, NULL);
    sluice_metric_label le = {"le", "1"};
    sluice_histogram h;
    memset(&h, 0, sizeof h);
    h.bucket_count = 1;
    h.bounds[0] = 1;
    sluice_expo_histogram(w, &le, 1, &h);         /* "le" is the histogram's: skipped, counted */
    h.bucket_count = SLUICE_HIST_MAX_BUCKETS + 1; /* skipped, counted */
    sluice_expo_histogram(w, NULL, 0, &h);
    h.bucket_count = 0; /* just +Inf */
    h.counts[0] = 3;
    h.sum_seconds = NAN;
    sluice_expo_histogram(w, NULL, 0, &h);
    atomic_fetch_sub(&cs->running, 1);
}

typedef struct scraper_arg {
    sluice_metrics *reg;
    atomic_bool stop;
    atomic_int scrapes;
    atomic_int bad;
} scraper_arg;

static void *scraper(void *arg)
{
    scraper_arg *a = arg;
    while (!atomic_load(&a->stop)) {
        char *text;
        size_t len;
        if (sluice_metrics_render(a->reg, SLUICE_EXPO_OPENMETRICS, &text, &len) != SLUICE_OK) {
            atomic_fetch_add(&a->bad, 1);
        } else {
            free(text);
        }
        atomic_fetch_add(&a->scrapes, 1);
    }
    return NULL;
}

static void test_collectors(void **state)
{
    (void)state;
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    coll_state cs;
    memset(&cs, 0, sizeof cs);
    static const char *const l1[] = {"k", NULL};
    assert_int_equal(sluice_metrics_counter(reg, "app_inside_total", NULL, l1, &cs.counter), SLUICE_OK);
    assert_int_equal(sluice_metrics_add_collector(NULL, odd_collector, &cs), SLUICE_EINVAL);
    assert_int_equal(sluice_metrics_add_collector(reg, NULL, &cs), SLUICE_EINVAL);
    assert_int_equal(sluice_metrics_remove_collector(reg, odd_collector, &cs), SLUICE_ENOENT);
    assert_int_equal(sluice_metrics_add_collector(reg, odd_collector, &cs), SLUICE_OK);
    assert_int_equal(sluice_metrics_add_collector(reg, odd_collector, &cs), SLUICE_EBUSY);
    assert_int_equal(sluice_metrics_add_collector(reg, odd_collector, NULL), SLUICE_OK); /* another pair */
    assert_int_equal(sluice_metrics_remove_collector(reg, odd_collector, NULL), SLUICE_OK);

    char *text = render_checked(reg, SLUICE_EXPO_PROMETHEUS);
    assert_non_null(strstr(text, "# HELP app_odd Odd values.\\nSecond \\\\ line \xef\xbf\xbd.\n"));
    assert_non_null(strstr(text, "app_odd{k=\"nan\",bad_utf8=\"a\xef\xbf\xbd\xef\xbf\xbd(b"
                                 "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"} NaN\n"));
    assert_non_null(strstr(text, "app_odd{k=\"pinf\"} +Inf\n"));
    assert_non_null(strstr(text, "app_odd{k=\"ninf\"} -Inf\n"));
    assert_true(sample_value(text, "app_odd{k=\"tiny\"}") == 5e-324);
    assert_non_null(strstr(text, "app_odd{k=\"\"} "));
    assert_non_null(strstr(text, "app_odd_seconds_bucket{le=\"+Inf\"} 3\napp_odd_seconds_count 3\n"
                                 "app_odd_seconds_sum NaN\n"));
    if (sample_value(text, "sluice_metrics_write_errors_total") != 6) { /* each skipped write once */
        fail_msg("write errors: %s", text);
    }
    free(text);

    /* Removed while two threads scrape: once remove returns, it never runs. */
    scraper_arg sa = {.reg = reg};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, scraper, &sa), 0);
    }
    WAIT_FOR(atomic_load(&cs.calls) >= 5, "scrapes ran the collector");
    assert_int_equal(sluice_metrics_remove_collector(reg, odd_collector, &cs), SLUICE_OK);
    assert_int_equal(atomic_load(&cs.running), 0);
    atomic_store(&cs.removed, true);
    int seen = atomic_load(&sa.scrapes);
    WAIT_FOR(atomic_load(&sa.scrapes) >= seen + 4, "scrapes after the removal");
    atomic_store(&sa.stop, true);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    assert_int_equal(atomic_load(&cs.after_remove), 0);
    assert_int_equal(atomic_load(&sa.bad), 0);
    assert_int_equal(sluice_metrics_remove_collector(reg, odd_collector, &cs), SLUICE_ENOENT);
    /* Every update the collector made is there. */
    double total = 0;
    for (int i = 0; i < 5; i++) {
        char v[8];
        snprintf(v, sizeof v, "c%d", i);
        const char *vals[] = {v};
        sluice_series *s;
        assert_int_equal(sluice_metric_series(cs.counter, vals, &s), SLUICE_OK);
        total += sluice_series_value(s);
    }
    assert_true(total == (double)atomic_load(&cs.calls));
    render_both(reg);
    sluice_metrics_destroy(reg);
}

/* ---- render, numbers and negotiation ------------------------------------------- */

static void test_render_and_numbers(void **state)
{
    (void)state;
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    char *text = (char *)1;
    size_t len = 7;
    assert_int_equal(sluice_metrics_render(NULL, SLUICE_EXPO_PROMETHEUS, &text, &len), SLUICE_EINVAL);
    assert_int_equal(sluice_metrics_render(reg, SLUICE_EXPO_PROMETHEUS, NULL, &len), SLUICE_EINVAL);
    assert_int_equal(sluice_metrics_render(reg, (sluice_expo_format)2, &text, &len), SLUICE_EINVAL);
    assert_int_equal(sluice_metrics_render(reg, (sluice_expo_format)-1, &text, &len), SLUICE_EINVAL);
    assert_ptr_equal(text, (char *)1); /* untouched on an error */
    assert_int_equal(len, 7);
    /* An empty registry; len may be NULL. */
    assert_int_equal(sluice_metrics_render(reg, SLUICE_EXPO_PROMETHEUS, &text, NULL), SLUICE_OK);
    expo_check(text, false);
    free(text);
    text = render_checked(reg, SLUICE_EXPO_OPENMETRICS);
    assert_true(strlen(text) >= 6 && strcmp(text + strlen(text) - 6, "# EOF\n") == 0);
    free(text);
    sluice_metrics_destroy(reg);

    /* sluice_format_double: the length whatever the buffer; cut and
     * NUL-terminated; reads back exactly. */
    char b[64];
    memset(b, 'x', sizeof b);
    assert_int_equal(sluice_format_double(0.1, false, b, 0), 3);
    assert_int_equal(b[0], 'x');
    assert_int_equal(sluice_format_double(0.1, false, NULL, 0), 3);
    assert_int_equal(sluice_format_double(0.1, false, b, 1), 3);
    assert_string_equal(b, "");
    assert_int_equal(sluice_format_double(0.125, false, b, 3), 5);
    assert_string_equal(b, "0.");
    assert_int_equal(sluice_format_double(NAN, true, b, sizeof b), 3);
    assert_string_equal(b, "NaN");
    assert_int_equal(sluice_format_double(-INFINITY, true, b, sizeof b), 4);
    assert_string_equal(b, "-Inf");
    const double vals[] = {
        0,       -0.0,    1,           -1,      1e15,     -1e15, 999999999999999.0, 9007199254740993.0,
        1e300,   -1e-300, 5e-324,      DBL_MAX, -DBL_MAX, 0.1,   1.0 / 3,           2.5e-7,
        123.456, 1e21,    4294967296.0};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        for (int om = 0; om < 2; om++) {
            size_t n = sluice_format_double(vals[i], om, b, sizeof b);
            assert_int_equal(n, strlen(b));
            char *end;
            double back = strtod(b, &end);
            assert_true(*end == '\0');
            if (back != vals[i] || signbit(back) != signbit(vals[i])) {
                fail_msg("%.17g wrote %s", vals[i], b);
            }
            if (om) { /* OpenMetrics: a float always, never a bare integer */
                assert_non_null(strpbrk(b, ".eE"));
            }
        }
    }

    /* Negotiation: case, q out of range, q ties, huge and odd headers. */
    assert_int_equal(sluice_expo_negotiate("APPLICATION/OPENMETRICS-TEXT"), SLUICE_EXPO_OPENMETRICS);
    assert_int_equal(sluice_expo_negotiate("application/openmetrics-text;q=1.5, text/plain;q=1"),
                     SLUICE_EXPO_OPENMETRICS); /* an invalid q is 1 */
    assert_int_equal(sluice_expo_negotiate("application/openmetrics-text;q=0.5, text/plain;q=0.5"),
                     SLUICE_EXPO_OPENMETRICS); /* a tie goes to OpenMetrics */
    assert_int_equal(sluice_expo_negotiate("application/openmetrics-text;q=0.4, */*;q=0.5"),
                     SLUICE_EXPO_PROMETHEUS);
    assert_int_equal(sluice_expo_negotiate("application/openmetrics-text-x"), SLUICE_EXPO_PROMETHEUS);
    assert_int_equal(sluice_expo_negotiate("application/openmetrics"), SLUICE_EXPO_PROMETHEUS);
    size_t big = 1 << 20;
    char *hdr = malloc(big + 64);
    assert_non_null(hdr);
    for (size_t i = 0; i < big; i++) {
        hdr[i] = ";, q=\t"[i % 6];
    }
    strcpy(hdr + big, ",application/openmetrics-text");
    assert_int_equal(sluice_expo_negotiate(hdr), SLUICE_EXPO_OPENMETRICS);
    free(hdr);
    assert_int_equal(sluice_expo_negotiate("application/openmetrics-text;q=1e-400"), SLUICE_EXPO_OPENMETRICS);
    assert_string_equal(sluice_expo_content_type((sluice_expo_format)7), sluice_expo_content_type(0));
}

/* ---- the logger ------------------------------------------------------------------ */

typedef struct capture {
    pthread_mutex_t mu;
    char lines[64][SLUICE_LOG_LINE_MAX + 1];
    size_t lens[64];
    sluice_log_level levels[64];
    int n;
    sluice_logger *again; /* log one more line from inside the sink */
    int depth;
} capture;

static capture *cap_new(void)
{
    capture *c = calloc(1, sizeof *c);
    assert_non_null(c);
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void cap_sink(void *user, sluice_log_level level, const char *line, size_t len)
{
    capture *c = user;
    pthread_mutex_lock(&c->mu);
    bool again = c->again && c->depth == 0;
    if (c->n < 64) {
        memcpy(c->lines[c->n], line, len < SLUICE_LOG_LINE_MAX + 1 ? len : SLUICE_LOG_LINE_MAX);
        c->lens[c->n] = len;
        c->levels[c->n] = level;
        c->n++;
    }
    if (again) {
        c->depth++;
    }
    pthread_mutex_unlock(&c->mu);
    if (again) {
        /* The sink is called under no lock of the logger. */
        sluice_log_submit_error(c->again, "inner", SLUICE_EFULL);
        sluice_log_kv(c->again, SLUICE_LOG_ERROR, "from the sink", NULL);
        pthread_mutex_lock(&c->mu);
        c->depth--;
        pthread_mutex_unlock(&c->mu);
    }
}

static sluice_logger *logger(capture *c, sluice_log_format f, sluice_log_level min, const sluice_clock *clk,
                             uint64_t interval)
{
    sluice_log_config cfg;
    sluice_log_config_init(&cfg);
    cfg.format = f;
    cfg.min_level = min;
    cfg.sink = cap_sink;
    cfg.sink_user = c;
    cfg.clock = clk;
    cfg.submit_error_interval_ns = interval;
    cfg.omit_timestamp = true;
    sluice_logger *lg = NULL;
    assert_int_equal(sluice_logger_create(&cfg, &lg), SLUICE_OK);
    return lg;
}

/* Valid UTF-8 (no overlongs or surrogates, nothing past U+10FFFF). */
static bool utf8_ok(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k;
        unsigned cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += k + 1;
    }
    return true;
}

/* A JSON string at *p (just past its opening quote): well formed, no raw
 * control character; *p left past the closing quote. */
static bool json_string(const char **p)
{
    const char *s = *p;
    while (*s && *s != '"') {
        if ((unsigned char)*s < 0x20) {
            return false;
        }
        if (*s == '\\') {
            s++;
            if (*s == 'u') {
                for (int i = 1; i <= 4; i++) {
                    if (!strchr("0123456789abcdefABCDEF", s[i]) || !s[i]) {
                        return false;
                    }
                }
                s += 4;
            } else if (!*s || !strchr("\"\\/bfnrt", *s)) {
                return false;
            }
        }
        s++;
    }
    if (*s != '"') {
        return false;
    }
    *p = s + 1;
    return true;
}

/* One flat JSON object of string and integer values (what the logger writes). */
static bool json_object(const char *s)
{
    if (*s++ != '{') {
        return false;
    }
    bool first = true;
    while (*s != '}') {
        if (!first && *s++ != ',') {
            return false;
        }
        first = false;
        if (*s++ != '"' || !json_string(&s) || *s++ != ':') {
            return false;
        }
        if (*s == '"') {
            s++;
            if (!json_string(&s)) {
                return false;
            }
        } else {
            if (*s < '0' || *s > '9') {
                return false;
            }
            while (*s >= '0' && *s <= '9') {
                s++;
            }
        }
    }
    return s[1] == '\0';
}

static void test_logger_contracts(void **state)
{
    (void)state;
    sluice_logger_destroy(NULL);
    sluice_logger *lg = NULL;
    assert_int_equal(sluice_logger_create(NULL, NULL), SLUICE_EINVAL);
    sluice_log_config cfg;
    sluice_log_config_init(&cfg);
    assert_int_equal(cfg.format, SLUICE_LOG_LOGFMT);
    assert_int_equal(cfg.min_level, SLUICE_LOG_INFO);
    cfg.format = SLUICE_LOG_FORMAT_COUNT_;
    assert_int_equal(sluice_logger_create(&cfg, &lg), SLUICE_EINVAL);
    cfg.format = (sluice_log_format)-1;
    assert_int_equal(sluice_logger_create(&cfg, &lg), SLUICE_EINVAL);
    sluice_log_config_init(&cfg);
    cfg.min_level = SLUICE_LOG_LEVEL_COUNT_;
    assert_int_equal(sluice_logger_create(&cfg, &lg), SLUICE_EINVAL);
    assert_null(lg);
    assert_int_equal(sluice_logger_create(NULL, &lg), SLUICE_OK);
    sluice_logger_destroy(lg);

    assert_string_equal(sluice_log_level_name(SLUICE_LOG_LEVEL_COUNT_), "unknown");
    assert_string_equal(sluice_log_level_name((sluice_log_level)-1), "unknown");
    assert_string_equal(sluice_log_format_name(SLUICE_LOG_FORMAT_COUNT_), "unknown");
    const char *levels[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        sluice_log_level l;
        assert_int_equal(sluice_log_parse_level(levels[i], &l), SLUICE_OK);
        assert_int_equal(l, i);
        assert_string_equal(sluice_log_level_name(l), levels[i]);
    }
    sluice_log_level l;
    sluice_log_format f;
    const char *bad[] = {"", "INFO", "info ", "warning", "err", "unknown", NULL};
    for (size_t i = 0; bad[i]; i++) {
        assert_int_equal(sluice_log_parse_level(bad[i], &l), SLUICE_EINVAL);
        assert_int_equal(sluice_log_parse_format(bad[i], &f), SLUICE_EINVAL);
    }
    assert_int_equal(sluice_log_parse_level(NULL, &l), SLUICE_EINVAL);
    assert_int_equal(sluice_log_parse_format(NULL, &f), SLUICE_EINVAL);
    assert_int_equal(sluice_log_parse_format("json", &f), SLUICE_OK);
    assert_int_equal(f, SLUICE_LOG_JSON);
    assert_int_equal(sluice_log_parse_format("JSON", &f), SLUICE_EINVAL);

    /* min_level: lines below it never reach the sink; ERROR passes it all. */
    capture *c = cap_new();
    lg = logger(c, SLUICE_LOG_LOGFMT, SLUICE_LOG_ERROR, NULL, 0);
    sluice_log_kv(lg, SLUICE_LOG_DEBUG, "d", NULL);
    sluice_log_kv(lg, SLUICE_LOG_INFO, "i", NULL);
    sluice_log_kv(lg, SLUICE_LOG_WARN, "w", NULL);
    sluice_log_submit_error(lg, "p", SLUICE_EFULL); /* a warn line */
    sluice_log_kv(lg, SLUICE_LOG_ERROR, NULL, "k", NULL, NULL);
    assert_int_equal(c->n, 1);
    assert_string_equal(c->lines[0], "level=error msg=\"\" k=\"\"");
    assert_int_equal(c->levels[0], SLUICE_LOG_ERROR);
    sluice_logger_destroy(lg);
    free(c);
}

/* Lines at SLUICE_LOG_LINE_MAX in both formats: cut, ending in "...",
 * each one line of valid UTF-8 (and JSON), whatever bytes came in. */
static void test_log_lines_cut_and_escaped(void **state)
{
    (void)state;
    for (int fmt = 0; fmt < 2; fmt++) {
        capture *c = cap_new();
        sluice_logger *lg = logger(c, (sluice_log_format)fmt, SLUICE_LOG_DEBUG, NULL, 0);
        size_t n = 3 * SLUICE_LOG_LINE_MAX;
        char *big = malloc(n + 1);
        assert_non_null(big);
        /* A value of 3-byte characters: a cut must not split one. */
        for (size_t i = 0; i + 3 <= n; i += 3) {
            memcpy(big + i, "\xe2\x82\xac", 3); /* U+20AC */
        }
        big[n - n % 3] = '\0';
        sluice_log_kv(lg, SLUICE_LOG_INFO, "euros", "v", big, "after", "x", NULL);
        /* Bytes that are not UTF-8, control bytes, quotes, DEL. */
        sluice_log_kv(lg, SLUICE_LOG_INFO, "bad \xff\xfe bytes", "v",
                      "a\xc3(\x80\xed\xa0\x80z\x01\x7f\"\\\n\r\t", "cut", "\xe2\x82", "empty", "", NULL);
        /* Each shift of a 4-byte character across the cut. */
        for (size_t shift = 0; shift < 4; shift++) {
            memset(big, 'a', shift);
            for (size_t i = shift; i + 4 <= n; i += 4) {
                memcpy(big + i, "\xf0\x9f\x98\x80", 4); /* U+1F600 */
            }
            big[n - 4] = '\0';
            sluice_log_kv(lg, SLUICE_LOG_WARN, big, "v", big, NULL);
        }
        /* A panic line with a message full of escapes. */
        sluice_panic_info pi;
        memset(&pi, 0, sizeof pi);
        pi.pool_name = "p";
        pi.task_label = "lab\"el";
        pi.message = big;
        sluice_log_panic(lg, &pi);
        /* Every event kind, one past the list included. */
        sluice_drain_report d = {.completed = UINT64_MAX, .elapsed_ns = UINT64_MAX, .timed_out = true};
        for (int k = 0; k <= 8; k++) {
            sluice_pool_event ev;
            memset(&ev, 0, sizeof ev);
            ev.kind = (sluice_event_kind)k;
            ev.pool_name = k % 2 ? NULL : "p";
            ev.detail = k % 3 ? "fault" : NULL;
            ev.drain = k % 2 ? &d : NULL;
            ev.old_value = UINT64_MAX;
            ev.err = SLUICE_EFULL;
            sluice_log_pool_event(lg, &ev);
        }
        sluice_log_line_handler(lg, "a line\nwith a newline");
        assert_true(c->n >= 8);
        for (int i = 0; i < c->n; i++) {
            const char *line = c->lines[i];
            size_t len = c->lens[i];
            assert_true(len < SLUICE_LOG_LINE_MAX);
            assert_int_equal(strlen(line), len);
            assert_null(strchr(line, '\n'));
            if (!utf8_ok((const unsigned char *)line, len)) {
                fail_msg("line %d (%s) is not valid UTF-8: %.200s", i, fmt ? "json" : "logfmt", line);
            }
            if (fmt == SLUICE_LOG_JSON && !json_object(line)) {
                fail_msg("line %d is not a JSON object: %.300s", i, line);
            }
        }
        /* The cut lines end in "..." inside their value. */
        assert_non_null(strstr(c->lines[0], fmt ? "...\"}" : "..."));
        assert_null(strstr(c->lines[0], "after"));
        sluice_logger_destroy(lg);
        free(big);
        free(c);
    }
}

static void test_log_rate_limit_extremes(void **state)
{
    (void)state;
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 0);
    /* 1 ns: every refusal at a new instant is a line; one at the same
     * instant is counted in the next line's suppressed. */
    capture *c = cap_new();
    sluice_logger *lg = logger(c, SLUICE_LOG_LOGFMT, SLUICE_LOG_INFO, &fc.clock, 1);
    sluice_log_submit_error(lg, "p", SLUICE_EFULL);
    sluice_log_submit_error(lg, "p", SLUICE_EFULL);
    sluice_fake_clock_advance(&fc, 1);
    sluice_log_submit_error(lg, "p", SLUICE_EFULL);
    assert_int_equal(c->n, 2);
    assert_non_null(strstr(c->lines[0], "suppressed=0"));
    assert_non_null(strstr(c->lines[1], "suppressed=1"));
    sluice_logger_destroy(lg);
    free(c);

    /* UINT64_MAX: one line per key for ever, on a clock far along. */
    c = cap_new();
    sluice_fake_clock_init(&fc, UINT64_MAX - 10);
    lg = logger(c, SLUICE_LOG_JSON, SLUICE_LOG_INFO, &fc.clock, UINT64_MAX);
    for (int i = 0; i < 100; i++) {
        sluice_log_submit_error(lg, "p", SLUICE_EFULL);
        sluice_fake_clock_advance(&fc, 0);
    }
    sluice_log_submit_error(lg, "p", SLUICE_ECLOSED); /* another key */
    sluice_log_submit_error(lg, NULL, SLUICE_EFULL);  /* NULL pool: "" */
    assert_int_equal(c->n, 3);
    sluice_logger_destroy(lg);
    free(c);

    /* More keys than the table: the number of lines per interval stays
     * bounded (at most one per key in it, at least one line at all). */
    c = cap_new();
    sluice_fake_clock_init(&fc, 1000);
    lg = logger(c, SLUICE_LOG_LOGFMT, SLUICE_LOG_INFO, &fc.clock, SLUICE_NS_PER_SEC);
    char name[SLUICE_POOL_NAME_MAX + 8];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 500; i++) {
            snprintf(name, sizeof name, "pool-%d", i);
            sluice_log_submit_error(lg, name, SLUICE_EFULL);
        }
    }
    int first = c->n;
    assert_true(first >= 1 && first <= 64); /* capture keeps 64 */
    sluice_logger_destroy(lg);
    free(c);

    /* A sink that logs again on the same logger: no deadlock. */
    c = cap_new();
    lg = logger(c, SLUICE_LOG_LOGFMT, SLUICE_LOG_INFO, NULL, 0);
    c->again = lg;
    sluice_log_submit_error(lg, "outer", SLUICE_EFULL);
    assert_int_equal(c->n, 3);
    sluice_logger_destroy(lg);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_bounds),
        cmocka_unit_test(test_register_refuses_clashing_names),
        cmocka_unit_test(test_label_values),
        cmocka_unit_test(test_updates_at_extremes),
        cmocka_unit_test(test_other_value_and_the_cap),
        cmocka_unit_test(test_max_series_unbounded),
        cmocka_unit_test(test_fair_pool_with_unbounded_series),
        cmocka_unit_test(test_pool_registration),
        cmocka_unit_test(test_pool_counters_monotonic_across_resize),
        cmocka_unit_test(test_collectors),
        cmocka_unit_test(test_render_and_numbers),
        cmocka_unit_test(test_logger_contracts),
        cmocka_unit_test(test_log_lines_cut_and_escaped),
        cmocka_unit_test(test_log_rate_limit_extremes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

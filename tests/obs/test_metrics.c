/*
 * tests/obs/test_metrics.c - the registry: names, labels, the series cap,
 * collectors, and the exposition text in both formats (golden).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "sluice/metrics.h"

static char *render(sluice_metrics *reg, sluice_expo_format fmt)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sluice_metrics_render(reg, fmt, &text, &len), SLUICE_OK);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

static void test_golden_prometheus(void **state)
{
    (void)state;
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    static const char *const labels[] = {"tenant", NULL};
    sluice_metric *req, *temp, *lat;
    assert_int_equal(sluice_metrics_counter(reg, "app_requests_total", "Requests served.", labels, &req),
                     SLUICE_OK);
    assert_int_equal(sluice_metrics_gauge(reg, "app_temperature", "Line one\nback\\slash", NULL, &temp),
                     SLUICE_OK);
    static const double b[] = {0.5, 1, 2.5};
    assert_int_equal(sluice_metrics_histogram(reg, "app_latency_seconds", "Latency.", NULL, b, 3, &lat),
                     SLUICE_OK);

    const char *acme[] = {"acme"};
    const char *quote[] = {"a\"b\\c\nd"};
    assert_int_equal(sluice_metric_add(req, acme, 2), SLUICE_OK);
    assert_int_equal(sluice_metric_add(req, acme, 1), SLUICE_OK);
    assert_int_equal(sluice_metric_add(req, quote, 1), SLUICE_OK);
    assert_int_equal(sluice_metric_set(temp, NULL, -1.5), SLUICE_OK);
    assert_int_equal(sluice_metric_observe(lat, NULL, 0.25), SLUICE_OK);
    assert_int_equal(sluice_metric_observe(lat, NULL, 0.5), SLUICE_OK); /* le is inclusive */
    assert_int_equal(sluice_metric_observe(lat, NULL, 2), SLUICE_OK);
    assert_int_equal(sluice_metric_observe(lat, NULL, 100), SLUICE_OK);

    char *text = render(reg, SLUICE_EXPO_PROMETHEUS);
    const char *want =
        "# HELP app_requests_total Requests served.\n"
        "# TYPE app_requests_total counter\n"
        "app_requests_total{tenant=\"acme\"} 3\n"
        "app_requests_total{tenant=\"a\\\"b\\\\c\\nd\"} 1\n"
        "# HELP app_temperature Line one\\nback\\\\slash\n"
        "# TYPE app_temperature gauge\n"
        "app_temperature -1.5\n"
        "# HELP app_latency_seconds Latency.\n"
        "# TYPE app_latency_seconds histogram\n"
        "app_latency_seconds_bucket{le=\"0.5\"} 2\n"
        "app_latency_seconds_bucket{le=\"1\"} 2\n"
        "app_latency_seconds_bucket{le=\"2.5\"} 3\n"
        "app_latency_seconds_bucket{le=\"+Inf\"} 4\n"
        "app_latency_seconds_count 4\n"
        "app_latency_seconds_sum 102.75\n"
        "# HELP sluice_metrics_series_overflow_total Updates whose label values were folded into "
        "\"other\" by the series cap.\n"
        "# TYPE sluice_metrics_series_overflow_total counter\n"
        "sluice_metrics_series_overflow_total{metric=\"app_requests_total\"} 0\n"
        "# HELP sluice_metrics_write_errors_total Collector writes skipped for an invalid name, label "
        "or type.\n"
        "# TYPE sluice_metrics_write_errors_total counter\n"
        "sluice_metrics_write_errors_total 0\n";
    assert_string_equal(text, want);
    free(text);

    text = render(reg, SLUICE_EXPO_OPENMETRICS);
    assert_non_null(strstr(text, "# TYPE app_requests counter\n"));
    assert_non_null(strstr(text, "# HELP app_requests Requests served.\n"));
    assert_non_null(strstr(text, "app_requests_total{tenant=\"acme\"} 3\n"));
    assert_non_null(strstr(text, "app_latency_seconds_bucket{le=\"1.0\"} 2\n"));
    assert_non_null(strstr(text, "# TYPE sluice_metrics_write_errors counter\n"));
    size_t n = strlen(text);
    assert_true(n > 6 && strcmp(text + n - 6, "# EOF\n") == 0);
    free(text);
    sluice_metrics_destroy(reg);
}

static void test_names_and_errors(void **state)
{
    (void)state;
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    sluice_metric *m, *m2;
    char err[200];
    sluice_metric_desc d = {.name = "bad name"};
    assert_int_equal(sluice_metrics_register(reg, SLUICE_METRIC_GAUGE, &d, &m, err, sizeof err),
                     SLUICE_EINVAL);
    assert_non_null(strstr(err, "'bad name' is not a valid metric name"));
    d.name = "app_requests";
    assert_int_equal(sluice_metrics_register(reg, SLUICE_METRIC_COUNTER, &d, &m, err, sizeof err),
                     SLUICE_EINVAL);
    assert_non_null(strstr(err, "must end in _total"));
    d.name = "pool_mine";
    assert_int_equal(sluice_metrics_register(reg, SLUICE_METRIC_GAUGE, &d, &m, err, sizeof err),
                     SLUICE_EINVAL);
    assert_non_null(strstr(err, "reserved"));
    static const char *const le[] = {"le", NULL};
    assert_int_equal(sluice_metrics_histogram(reg, "app_h", NULL, le, NULL, 0, &m), SLUICE_EINVAL);
    static const char *const dunder[] = {"__x", NULL};
    assert_int_equal(sluice_metrics_gauge(reg, "app_g", NULL, dunder, &m), SLUICE_EINVAL);
    static const double bad[] = {1, 1};
    assert_int_equal(sluice_metrics_histogram(reg, "app_h", NULL, NULL, bad, 2, &m), SLUICE_EINVAL);

    /* Same shape: the same metric; another shape: an error naming it. */
    assert_int_equal(sluice_metrics_gauge(reg, "app_g", NULL, NULL, &m), SLUICE_OK);
    assert_int_equal(sluice_metrics_gauge(reg, "app_g", "other help", NULL, &m2), SLUICE_OK);
    assert_ptr_equal(m, m2);
    d.name = "app_g";
    assert_int_equal(sluice_metrics_register(reg, SLUICE_METRIC_HISTOGRAM, &d, &m2, err, sizeof err),
                     SLUICE_EINVAL);
    assert_non_null(strstr(err, "already registered as a gauge"));

    /* Wrong operation for the type. */
    assert_int_equal(sluice_metric_observe(m, NULL, 1), SLUICE_EINVAL);
    sluice_metric *c;
    assert_int_equal(sluice_metrics_counter(reg, "app_c_total", NULL, NULL, &c), SLUICE_OK);
    assert_int_equal(sluice_metric_add(c, NULL, -1), SLUICE_EINVAL);
    assert_int_equal(sluice_metric_set(c, NULL, 1), SLUICE_EINVAL);
    /* Bad label values: missing, invalid UTF-8. */
    static const char *const l1[] = {"k", NULL};
    sluice_metric *g;
    assert_int_equal(sluice_metrics_gauge(reg, "app_l", NULL, l1, &g), SLUICE_OK);
    assert_int_equal(sluice_metric_set(g, NULL, 1), SLUICE_EINVAL);
    const char *badutf[] = {"\xC0\xAF"};
    assert_int_equal(sluice_metric_set(g, badutf, 1), SLUICE_EINVAL);
    const char *okutf[] = {"caf\xC3\xA9"};
    assert_int_equal(sluice_metric_set(g, okutf, 1), SLUICE_OK);
    sluice_metrics_destroy(reg);
}

static void test_series_cap(void **state)
{
    (void)state;
    sluice_metrics_config cfg = {.max_series = 3};
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(&cfg, &reg), SLUICE_OK);
    static const char *const labels[] = {"path", "code", NULL};
    sluice_metric *m;
    assert_int_equal(sluice_metrics_counter(reg, "app_hits_total", "Hits.", labels, &m), SLUICE_OK);
    char path[32];
    for (int i = 0; i < 10; i++) {
        snprintf(path, sizeof path, "/p%d", i);
        const char *v[] = {path, "200"};
        assert_int_equal(sluice_metric_add(m, v, 1), SLUICE_OK);
    }
    /* An existing series still resolves to itself after the cap. */
    const char *p0[] = {"/p0", "200"};
    assert_int_equal(sluice_metric_add(m, p0, 1), SLUICE_OK);
    sluice_series *s;
    assert_int_equal(sluice_metric_series(m, p0, &s), SLUICE_OK);
    assert_true(sluice_series_value(s) == 2.0);
    const char *other[] = {"other", "other"};
    (void)other;
    char *text = render(reg, SLUICE_EXPO_PROMETHEUS);
    assert_non_null(strstr(text, "app_hits_total{path=\"/p0\",code=\"200\"} 2\n"));
    assert_non_null(strstr(text, "app_hits_total{path=\"/p2\",code=\"200\"} 1\n"));
    assert_null(strstr(text, "/p3"));
    assert_non_null(strstr(text, "app_hits_total{path=\"other\",code=\"other\"} 7\n"));
    assert_non_null(strstr(text, "sluice_metrics_series_overflow_total{metric=\"app_hits_total\"} 7\n"));
    free(text);
    sluice_metrics_destroy(reg);
}

static void my_collector(sluice_expo *w, void *user)
{
    int *calls = user;
    (*calls)++;
    sluice_expo_family(w, "app_items", SLUICE_METRIC_GAUGE, "Items.");
    sluice_metric_label l = {"queue", "q1"};
    sluice_expo_sample(w, &l, 1, 42);
    sluice_metric_label bad = {"0bad", "x"};
    sluice_expo_sample(w, &bad, 1, 1);                                      /* skipped, counted once */
    sluice_expo_family(w, "app_wrong", SLUICE_METRIC_COUNTER, "no _total"); /* skipped, counted */
    sluice_expo_sample(w, NULL, 0, 1);
    sluice_histogram h = {0};
    h.bucket_count = 2;
    h.bounds[0] = 0.1;
    h.bounds[1] = 1;
    h.counts[0] = 1;
    h.counts[1] = 2;
    h.counts[2] = 3;
    h.sum_seconds = 9.5;
    sluice_expo_family(w, "app_wait_seconds", SLUICE_METRIC_HISTOGRAM, "Wait.");
    sluice_expo_histogram(w, NULL, 0, &h);
}

static void test_collector(void **state)
{
    (void)state;
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    int calls = 0;
    assert_int_equal(sluice_metrics_add_collector(reg, my_collector, &calls), SLUICE_OK);
    assert_int_equal(sluice_metrics_add_collector(reg, my_collector, &calls), SLUICE_EBUSY);
    char *text = render(reg, SLUICE_EXPO_PROMETHEUS);
    assert_int_equal(calls, 1);
    assert_non_null(strstr(text, "# TYPE app_items gauge\napp_items{queue=\"q1\"} 42\n"));
    assert_null(strstr(text, "app_wrong"));
    assert_non_null(strstr(text, "app_wait_seconds_bucket{le=\"0.1\"} 1\n"
                                 "app_wait_seconds_bucket{le=\"1\"} 3\n"
                                 "app_wait_seconds_bucket{le=\"+Inf\"} 6\n"
                                 "app_wait_seconds_count 6\n"
                                 "app_wait_seconds_sum 9.5\n"));
    assert_non_null(strstr(text, "sluice_metrics_write_errors_total 2\n"));
    free(text);
    assert_int_equal(sluice_metrics_remove_collector(reg, my_collector, &calls), SLUICE_OK);
    assert_int_equal(sluice_metrics_remove_collector(reg, my_collector, &calls), SLUICE_ENOENT);
    text = render(reg, SLUICE_EXPO_PROMETHEUS);
    assert_int_equal(calls, 1);
    assert_null(strstr(text, "app_items"));
    free(text);
    sluice_metrics_destroy(reg);
}

static void test_negotiate_and_numbers(void **state)
{
    (void)state;
    assert_int_equal(sluice_expo_negotiate(NULL), SLUICE_EXPO_PROMETHEUS);
    assert_int_equal(sluice_expo_negotiate(""), SLUICE_EXPO_PROMETHEUS);
    assert_int_equal(sluice_expo_negotiate("text/plain"), SLUICE_EXPO_PROMETHEUS);
    assert_int_equal(sluice_expo_negotiate("application/openmetrics-text"), SLUICE_EXPO_OPENMETRICS);
    /* What Prometheus 2.x sends. */
    assert_int_equal(
        sluice_expo_negotiate("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                              "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
        SLUICE_EXPO_OPENMETRICS);
    assert_int_equal(sluice_expo_negotiate("application/openmetrics-text;q=0.2, text/plain;q=0.9"),
                     SLUICE_EXPO_PROMETHEUS);
    assert_int_equal(sluice_expo_negotiate("application/openmetrics-text;q=0"), SLUICE_EXPO_PROMETHEUS);
    assert_int_equal(sluice_expo_negotiate("*/*"), SLUICE_EXPO_PROMETHEUS);
    assert_int_equal(sluice_expo_negotiate(";;,,q=,"), SLUICE_EXPO_PROMETHEUS);
    assert_non_null(strstr(sluice_expo_content_type(SLUICE_EXPO_PROMETHEUS), "version=0.0.4"));
    assert_non_null(strstr(sluice_expo_content_type(SLUICE_EXPO_OPENMETRICS), "openmetrics-text"));

    char b[40];
    sluice_format_double(0.0001, false, b, sizeof b);
    assert_string_equal(b, "0.0001");
    sluice_format_double(6.5536, true, b, sizeof b);
    assert_string_equal(b, "6.5536");
    sluice_format_double(3, true, b, sizeof b);
    assert_string_equal(b, "3.0");
    sluice_format_double(3, false, b, sizeof b);
    assert_string_equal(b, "3");
    sluice_format_double(0.1 + 0.2, false, b, sizeof b);
    assert_string_equal(b, "0.30000000000000004");
    sluice_format_double(1.0 / 0.0, false, b, sizeof b);
    assert_string_equal(b, "+Inf");
    sluice_format_double(-1.0 / 0.0, false, b, sizeof b);
    assert_string_equal(b, "-Inf");
}

/* Concurrent updates (by label values and through cached series) while
 * another thread renders: totals come out exact, and TSan sees no race. */
typedef struct conc {
    sluice_metric *c;
    sluice_metric *h;
    int id;
} conc;

enum { CONC_THREADS = 4, CONC_ITERS = 5000 };

static void *conc_updater(void *arg)
{
    conc *k = arg;
    const char *keys[] = {"a", "b", "c"};
    sluice_series *mine;
    const char *v0[] = {"cached"};
    sluice_metric_series(k->c, v0, &mine);
    for (int i = 0; i < CONC_ITERS; i++) {
        const char *v[] = {keys[(i + k->id) % 3]};
        sluice_metric_add(k->c, v, 1);
        sluice_series_add(mine, 2);
        sluice_metric_observe(k->h, NULL, 0.001 * (i % 10));
    }
    return NULL;
}

static void *conc_renderer(void *arg)
{
    sluice_metrics *reg = arg;
    for (int i = 0; i < 50; i++) {
        char *text;
        size_t len;
        if (sluice_metrics_render(reg, i % 2 ? SLUICE_EXPO_OPENMETRICS : SLUICE_EXPO_PROMETHEUS, &text,
                                  &len) == SLUICE_OK) {
            free(text);
        }
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    sluice_metrics *reg;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    static const char *const labels[] = {"k", NULL};
    conc k[CONC_THREADS];
    sluice_metric *c, *h;
    assert_int_equal(sluice_metrics_counter(reg, "app_conc_total", "c", labels, &c), SLUICE_OK);
    assert_int_equal(sluice_metrics_histogram(reg, "app_conc_seconds", "h", NULL, NULL, 0, &h), SLUICE_OK);
    pthread_t th[CONC_THREADS + 1];
    for (int i = 0; i < CONC_THREADS; i++) {
        k[i] = (conc){c, h, i};
        assert_int_equal(pthread_create(&th[i], NULL, conc_updater, &k[i]), 0);
    }
    assert_int_equal(pthread_create(&th[CONC_THREADS], NULL, conc_renderer, reg), 0);
    for (int i = 0; i <= CONC_THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    char *text = render(reg, SLUICE_EXPO_PROMETHEUS);
    char want[128];
    snprintf(want, sizeof want, "app_conc_total{k=\"cached\"} %d\n", 2 * CONC_THREADS * CONC_ITERS);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof want, "app_conc_seconds_count %d\n", CONC_THREADS * CONC_ITERS);
    assert_non_null(strstr(text, want));
    double total = 0;
    const char *keys[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        sluice_series *s;
        const char *v[] = {keys[i]};
        assert_int_equal(sluice_metric_series(c, v, &s), SLUICE_OK);
        total += sluice_series_value(s);
    }
    assert_true(total == (double)(CONC_THREADS * CONC_ITERS));
    free(text);
    sluice_metrics_destroy(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_prometheus),
        cmocka_unit_test(test_names_and_errors),
        cmocka_unit_test(test_series_cap),
        cmocka_unit_test(test_collector),
        cmocka_unit_test(test_negotiate_and_numbers),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

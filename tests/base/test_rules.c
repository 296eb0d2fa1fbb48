/*
 * tests/base/test_rules.c - the rules and helpers of src/base at their
 * extremes: the name charset, histogram bounds, listen addresses, the
 * error-buffer formatter, saturating time arithmetic and timespecs.
 *
 * These are header-only helpers (static inline), so the test includes
 * them directly; the public calls that apply them (pool, sem, metrics,
 * config, admin) have their own tests.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/errbuf.h"
#include "base/rules.h"
#include "base/text.h"
#include "base/timing.h"
#include "sluice/metrics.h"

static void test_names(void **state)
{
    (void)state;
    char err[160];
    assert_true(sluice__name_valid("a", 1));
    assert_true(sluice__name_valid("Az09_.:-", 8));
    assert_false(sluice__name_valid("Az09_.:-", 7)); /* one byte too long */
    assert_false(sluice__name_valid("", 8));
    assert_false(sluice__name_valid(NULL, 8));
    assert_false(sluice__name_valid("a b", 8));
    assert_false(sluice__name_valid("caf\xc3\xa9", 8)); /* bytes >= 0x80, whatever the locale */
    assert_false(sluice__name_valid("a/b", 8));
    assert_int_equal(sluice__name_check("a b", 8, "name", err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "name: 'a b' has a character outside [A-Za-z0-9_.:-] at 1");
    assert_int_equal(sluice__name_check("", 8, "name", err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "name: must be 1..8 bytes, got 0");
    assert_int_equal(sluice__name_check("123456789", 8, "name", err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "name: must be 1..8 bytes, got 9");
    assert_int_equal(sluice__name_check("12345678", 8, "name", NULL, 0), SLUICE_OK);
}

static void test_bounds(void **state)
{
    (void)state;
    char err[160];
    const double *d = sluice__hist_default_bounds();
    assert_int_equal(sluice__hist_bounds_check(d, SLUICE_HIST_DEFAULT_BUCKETS, "b", err, sizeof err),
                     SLUICE_OK);
    for (size_t i = 0; i < SLUICE_HIST_DEFAULT_BUCKETS; i++) {
        assert_true(d[i] == 0.0001 * (double)(1u << i) ||
                    fabs(d[i] / (0.0001 * (double)(1u << i)) - 1) < 1e-12);
    }
    const double top[] = {1e-9, 1e9};
    assert_int_equal(sluice__hist_bounds_check(top, 2, "b", err, sizeof err), SLUICE_OK);
    const double over[] = {1e9, nextafter(1e9, INFINITY)};
    assert_int_equal(sluice__hist_bounds_check(over, 2, "b", err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "b[1]: must be a finite number of seconds in (0, 1e9]"));
    const double zero[] = {0.0};
    assert_int_equal(sluice__hist_bounds_check(zero, 1, "b", err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "b[0]: must be a finite number of seconds in (0, 1e9], got 0");
    const double neg[] = {-1};
    assert_int_equal(sluice__hist_bounds_check(neg, 1, "b", err, sizeof err), SLUICE_EINVAL);
    const double nan_[] = {0.1, NAN};
    assert_int_equal(sluice__hist_bounds_check(nan_, 2, "b", err, sizeof err), SLUICE_EINVAL);
    const double inf_[] = {0.1, INFINITY};
    assert_int_equal(sluice__hist_bounds_check(inf_, 2, "b", err, sizeof err), SLUICE_EINVAL);
    const double dup[] = {0.1, 0.1};
    assert_int_equal(sluice__hist_bounds_check(dup, 2, "b", err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err, "b[1]: must be greater than the bound before it (0.1), got 0.1");
    assert_int_equal(sluice__hist_bounds_check(d, 0, "b", err, sizeof err), SLUICE_EINVAL);
    assert_int_equal(sluice__hist_bounds_check(NULL, 3, "b", err, sizeof err), SLUICE_EINVAL);
    double many[SLUICE_HIST_MAX_BUCKETS + 1];
    for (size_t i = 0; i < SLUICE_HIST_MAX_BUCKETS + 1; i++) {
        many[i] = (double)(i + 1);
    }
    assert_int_equal(sluice__hist_bounds_check(many, SLUICE_HIST_MAX_BUCKETS, "b", err, sizeof err),
                     SLUICE_OK);
    assert_int_equal(sluice__hist_bounds_check(many, SLUICE_HIST_MAX_BUCKETS + 1, "b", err, sizeof err),
                     SLUICE_EINVAL);
}

/* The registry applies the same rule: a bound <= 0 is refused (it used to
 * be accepted). */
static void test_metrics_use_the_rule(void **state)
{
    (void)state;
    sluice_metrics *reg = NULL;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    sluice_metric *m = NULL;
    const double neg[] = {-1, 1};
    const double ok[] = {0.5, 1};
    const double huge[] = {1, 2e9};
    assert_int_equal(sluice_metrics_histogram(reg, "app_neg_seconds", NULL, NULL, neg, 2, &m), SLUICE_EINVAL);
    assert_int_equal(sluice_metrics_histogram(reg, "app_huge_seconds", NULL, NULL, huge, 2, &m),
                     SLUICE_EINVAL);
    assert_int_equal(sluice_metrics_histogram(reg, "app_ok_seconds", NULL, NULL, ok, 2, &m), SLUICE_OK);
    sluice_metrics_destroy(reg);
}

static void listen_ok(const char *addr, const char *host, unsigned port)
{
    char h[SLUICE__LISTEN_HOST_MAX];
    unsigned p = 99999;
    char err[160] = "";
    assert_int_equal(sluice__listen_parse(addr, h, &p, err, sizeof err), SLUICE_OK);
    assert_string_equal(h, host);
    assert_int_equal(p, port);
}

static void listen_bad(const char *addr, const char *why)
{
    char err[160] = "";
    assert_int_equal(sluice__listen_parse(addr, NULL, NULL, err, sizeof err), SLUICE_EINVAL);
    if (!strstr(err, why)) {
        fail_msg("%s: got \"%s\", want \"%s\"", addr, err, why);
    }
}

static void test_listen(void **state)
{
    (void)state;
    listen_ok("127.0.0.1:9464", "127.0.0.1", 9464);
    listen_ok("0.0.0.0:0", "0.0.0.0", 0);
    listen_ok(":65535", "127.0.0.1", 65535);
    listen_ok("[::1]:80", "::1", 80);
    listen_ok("::1:80", "::1", 80); /* unbracketed v6: the last colon splits */
    listen_bad("9464", "want host:port");
    listen_bad("", "want host:port");
    listen_bad(NULL, "want host:port");
    listen_bad("127.0.0.1:65536", "not a number in 0..65535");
    listen_bad("127.0.0.1:", "not a number in 0..65535");
    listen_bad("127.0.0.1:+80", "not a number in 0..65535");
    listen_bad("127.0.0.1: 80", "not a number in 0..65535");
    listen_bad("127.0.0.1:99999999999999999999", "not a number in 0..65535");
    listen_bad("127.0.0.1:http", "not a number in 0..65535");
    listen_bad("localhost:80", "not a numeric IPv4 or IPv6 address");
    listen_bad("[::1]80", "want [ipv6]:port");
    listen_bad("[]:80", "not a numeric IPv6 address");
    listen_bad("[nope]:80", "not a numeric IPv4 or IPv6 address");
}

static void verr_through(char *errbuf, size_t errlen, const char *fmt, ...) SLUICE_PRINTF(3, 4);
static void verr_through(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sluice__verrf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

static void test_errf(void **state)
{
    (void)state;
    char small[4] = "xyz";
    sluice__errf(small, sizeof small, "%s", "abcdef");
    assert_string_equal(small, "abc"); /* truncated, still terminated */
    sluice__errf(NULL, 10, "ignored %d", 1);
    sluice__errf(small, 0, "ignored %d", 1);
    assert_string_equal(small, "abc");
    /* The va_list form behind a caller's own variadic error function. */
    verr_through(small, sizeof small, "%d-%s", 12, "xy");
    assert_string_equal(small, "12-");
    verr_through(NULL, 8, "%d", 1);
}

static void test_time(void **state)
{
    (void)state;
    assert_true(sluice__add_sat(1, 2) == 3);
    assert_true(sluice__add_sat(UINT64_MAX - 1, 1) == UINT64_MAX);
    assert_true(sluice__add_sat(UINT64_MAX, UINT64_MAX) == UINT64_MAX);
    assert_true(sluice__min_deadline(0, 5) == 5);
    assert_true(sluice__min_deadline(5, 0) == 5);
    assert_true(sluice__min_deadline(3, 5) == 3);
    assert_true(sluice__min_deadline(0, 0) == 0);
    struct timespec ts = sluice__ts_from_ns(UINT64_MAX);
    assert_true(sluice__ts_to_ns(&ts) == UINT64_MAX);
    ts = sluice__ts_from_ns(1500000001);
    assert_int_equal(ts.tv_sec, 1);
    assert_int_equal(ts.tv_nsec, 500000001);
    struct timespec neg = {-1, 0};
    assert_true(sluice__ts_to_ns(&neg) == 0);
    /* "For ever" stays far in the future instead of wrapping to the past. */
    struct timespec far = sluice__ts_after(CLOCK_MONOTONIC, UINT64_MAX);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    assert_true(far.tv_sec > now.tv_sec);
    assert_true(far.tv_nsec >= 0 && far.tv_nsec < 1000000000);

    /* sleep_until: a deadline already reached returns at once (0, the
     * past, now), on any clock; a near one returns no earlier than it. */
    sluice_fake_clock fc;
    sluice_fake_clock_init(&fc, 1000);
    sluice__sleep_until(&fc.clock, 0);
    sluice__sleep_until(&fc.clock, 999);
    sluice__sleep_until(&fc.clock, 1000);
    sluice__sleep_until(NULL, 0);
    uint64_t until = sluice_clock_now(NULL) + SLUICE_NS_PER_MS;
    sluice__sleep_until(NULL, until);
    assert_true(sluice_clock_now(NULL) >= until);
}

static bool vappend(char **buf, size_t *len, size_t *cap, const char *fmt, ...) SLUICE_PRINTF(4, 5);
static bool vappend(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool ok = sluice__text_vappendf(buf, len, cap, 16, fmt, ap);
    va_end(ap);
    return ok;
}

static void test_text(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    assert_true(sluice__text_append(&buf, &len, &cap, 2, "hello", 5));
    assert_true(sluice__text_append(&buf, &len, &cap, 2, ", world", 7));
    assert_string_equal(buf, "hello, world");
    assert_int_equal(len, 12);
    assert_true(cap >= 13);
    free(buf);

    /* printf form: short results, empty ones, and results around and far
     * past the on-stack size (511/512/513 bytes, 10000 bytes) all arrive
     * whole, each after what was there. */
    buf = NULL;
    len = cap = 0;
    assert_true(vappend(&buf, &len, &cap, "%s=%d", "k", 7));
    assert_true(vappend(&buf, &len, &cap, "%s", ""));
    assert_string_equal(buf, "k=7");
    size_t sizes[] = {511, 512, 513, 10000};
    size_t want = 3;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        assert_true(vappend(&buf, &len, &cap, "%0*d", (int)sizes[i], 5));
        want += sizes[i];
        assert_int_equal(len, want);
        assert_int_equal(strlen(buf), want);
        assert_int_equal(buf[want - 1], '5');
        assert_int_equal(buf[want - sizes[i]], sizes[i] > 1 ? '0' : '5');
    }
    assert_memory_equal(buf, "k=70000", 7);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_metrics_use_the_rule),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_errf),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

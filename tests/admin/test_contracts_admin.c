/*
 * tests/admin/test_contracts_admin.c - sluice/admin.h probed from the
 * header alone, from outside over loopback, at its extremes:
 *
 *   - the config's sizes and durations at 0 (defaults), 1 and their
 *     maximum: max_request_bytes (a head of exactly that many bytes is
 *     served, one well past it refused, SIZE_MAX refused at start),
 *     connection_timeout_ns past UINT_MAX seconds (a connection that
 *     pauses is still served), health_timeout_ns and sample_interval_ns
 *     at UINT64_MAX, max_connections at 1 and UINT_MAX; bad addresses;
 *   - requests a header reader would not expect: every method on an
 *     endpoint and off one, lower-case methods, absolute-form and "*"
 *     targets, percent-encoded and near-miss paths, a 64 KiB path, HTTP/1.0
 *     without Host, bad versions, a header without a colon, a folded
 *     header, a body on a GET, pipelined requests, a half-sent request
 *     then a close; the server answers each with a 4xx or the endpoint,
 *     never a 5xx, and /health/live answers after every one;
 *   - the pool API: 64 pools and a 65th, names taken, readiness weights
 *     at and past [0, 1] (NaN, -0, the thousandths), set_ready idempotent;
 *   - /debug/pools stays JSON of valid UTF-8 whatever bytes a running
 *     task's label holds.
 */
#include <errno.h>
#include <limits.h>
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
#include <time.h>

#include <cmocka.h>

#include "admin/admin_fixture.h"
#include "admin/http_client.h"
#include "common/wait.h"
#include "sluice/admin.h"
#include "sluice/metrics.h"

static void expect_live(unsigned port)
{
    http_reply r = http_do(port, "GET", "/health/live", NULL);
    if (r.status != 200) {
        fail_msg("/health/live answered %d (%s, errno %d): %.200s", r.status, r.failed_at ? r.failed_at : "-",
                 r.sys_errno, r.raw);
    }
    http_free(&r);
}

/* A status a server may answer a request it refuses with: a 4xx, or no
 * status at all (libmicrohttpd closing the connection). Never a 2xx or 5xx. */
static void expect_refused(const http_reply *r, const char *what)
{
    if (!(r->status == 0 || (r->status >= 400 && r->status < 500) || r->status == 505)) {
        fail_msg("%s: answered %d: %.300s", what, r->status, r->raw);
    }
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL); /* the client's own pause: what the server must tolerate */
}

/* ---- config extremes ----------------------------------------------------------------- */

static void test_bad_addresses(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         ":",
                         "127.0.0.1:",
                         "127.0.0.1",
                         "[::1]",
                         "[::1",
                         "1.2.3.4.5:0",
                         "127.0.0.1:0:0",
                         "127.0.0.1:-1",
                         "127.0.0.1:+1",
                         "127.0.0.1:65536",
                         "127.0.0.1:99999999999999999999",
                         " 127.0.0.1:0",
                         "127.0.0.1:0 ",
                         "127.0.0.1 :0",
                         "localhost:0",
                         NULL};
    for (size_t i = 0; bad[i]; i++) {
        sluice_admin_config cfg;
        sluice_admin_config_init(&cfg);
        cfg.address = bad[i];
        sluice_admin *a = (sluice_admin *)&cfg; /* must stay as it is */
        char err[256] = "x";
        sluice_err r = sluice_admin_start(&cfg, &a, err, sizeof err);
        if (r != SLUICE_EINVAL) {
            fail_msg("address '%s': %s (%s), want EINVAL", bad[i], sluice_strerror(r), err);
        }
        assert_ptr_equal(a, (sluice_admin *)&cfg);
        assert_true(err[0] != '\0');
        /* errbuf optional, and cut to its size. */
        assert_int_equal(sluice_admin_start(&cfg, &a, NULL, 0), SLUICE_EINVAL);
        char one[1] = {'x'};
        assert_int_equal(sluice_admin_start(&cfg, &a, one, 1), SLUICE_EINVAL);
        assert_int_equal(one[0], '\0');
    }
    /* Past SLUICE_ADMIN_ADDRESS_MAX bytes: refused, never cut (cut inside
     * the zeros, "127.0.0.1:000...0080" was port 0, and the server bound a
     * port nobody asked for); at exactly the limit, served. */
    {
        char addr[SLUICE_ADMIN_ADDRESS_MAX + 8];
        memset(addr, '0', sizeof addr);
        memcpy(addr, "127.0.0.1:", 10);
        memcpy(addr + SLUICE_ADMIN_ADDRESS_MAX - 1, "80", 2); /* 256 bytes: one past */
        addr[SLUICE_ADMIN_ADDRESS_MAX + 1] = '\0';
        sluice_admin_config lc;
        sluice_admin_config_init(&lc);
        lc.address = addr;
        sluice_admin *la = NULL;
        char lerr[256] = "";
        assert_int_equal(sluice_admin_start(&lc, &la, lerr, sizeof lerr), SLUICE_EINVAL);
        assert_null(la);
        if (!strstr(lerr, "longer than 255 bytes")) {
            fail_msg("a 256-byte address: \"%s\"", lerr);
        }
        addr[SLUICE_ADMIN_ADDRESS_MAX] = '\0'; /* 255 bytes: "127.0.0.1:000...0" + "8" */
        assert_int_equal(sluice_admin_start(&lc, &la, lerr, sizeof lerr), SLUICE_OK);
        assert_true(sluice_admin_port(la) != 0);
        sluice_admin_stop(la);
    }
    assert_int_equal(sluice_admin_port(NULL), 0);
    assert_null(sluice_admin_metrics(NULL));
    /* An address this host does not have: a bind failure, with strerror. */
    sluice_admin_config cfg;
    sluice_admin_config_init(&cfg);
    cfg.address = "192.0.2.1:0"; /* TEST-NET-1 */
    sluice_admin *a = NULL;
    char err[256];
    sluice_err r = sluice_admin_start(&cfg, &a, err, sizeof err);
    assert_int_equal(r, SLUICE_ESYS);
    assert_null(a);
    assert_non_null(strstr(err, "192.0.2.1"));
}

/* A head of exactly max_request_bytes is served; one well past it is
 * refused and the server lives on; SIZE_MAX is not a size it can serve. */
static void test_max_request_bytes(void **state)
{
    (void)state;
    const size_t limits[] = {512, 8192, 1 << 20};
    for (size_t li = 0; li < sizeof limits / sizeof limits[0]; li++) {
        size_t max = limits[li];
        sluice_admin_config cfg;
        sluice_admin_config_init(&cfg);
        cfg.max_request_bytes = max;
        sluice_admin *a = start_admin(&cfg);
        unsigned port = sluice_admin_port(a);
        /* The request line and headers, blank line included, exactly max. */
        const char *pre = "GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: ";
        char *req = malloc(max + 8192);
        assert_non_null(req);
        size_t n = strlen(pre);
        memcpy(req, pre, n);
        size_t pad = max - n - 4; /* "\r\n\r\n" */
        memset(req + n, 'p', pad);
        memcpy(req + n + pad, "\r\n\r\n", 5);
        assert_int_equal(strlen(req), max);
        http_reply r = http_raw(port, req, max);
        if (r.status != 200) {
            fail_msg("a %zu-byte head with max_request_bytes %zu: %d (%s)", max, max, r.status,
                     r.failed_at ? r.failed_at : "-");
        }
        http_free(&r);
        /* 4 KiB + 1 past it. */
        size_t over = max + 4097;
        req = realloc(req, over + 8);
        memset(req + n, 'p', over - n - 4);
        memcpy(req + over - 4, "\r\n\r\n", 5);
        r = http_raw(port, req, over);
        expect_refused(&r, "a head past max_request_bytes");
        http_free(&r);
        free(req);
        expect_live(port);
        sluice_admin_stop(a);
    }
    /* The maximum of the size: refused at start, naming the field. */
    const size_t huge[] = {SIZE_MAX, SIZE_MAX - 4095, ((size_t)1 << 20) + 1};
    for (size_t i = 0; i < 3; i++) {
        sluice_admin_config cfg;
        sluice_admin_config_init(&cfg);
        cfg.address = "127.0.0.1:0";
        cfg.max_request_bytes = huge[i];
        sluice_admin *a = NULL;
        char err[256];
        sluice_err r = sluice_admin_start(&cfg, &a, err, sizeof err);
        if (r == SLUICE_OK) {
            /* Whatever the server accepts, it must then serve. */
            unsigned port = sluice_admin_port(a);
            http_reply hr = http_do(port, "GET", "/health/live", NULL);
            int status = hr.status;
            http_free(&hr);
            sluice_admin_stop(a);
            fail_msg("max_request_bytes %zu accepted; /health/live then answered %d", huge[i], status);
        }
        assert_int_equal(r, SLUICE_EINVAL);
        assert_non_null(strstr(err, "max_request_bytes"));
        assert_null(a);
    }
}

/* Durations at their maximum mean "never", not a wrapped small value. */
static void test_durations_at_maximum(void **state)
{
    (void)state;
    sluice_admin_config cfg;
    sluice_admin_config_init(&cfg);
    /* Past UINT_MAX seconds: (2^32 + 1) s, and UINT64_MAX. */
    const uint64_t timeouts[] = {(((uint64_t)1 << 32) + 1) * SLUICE_NS_PER_SEC, UINT64_MAX};
    for (size_t i = 0; i < 2; i++) {
        sluice_admin_config_init(&cfg);
        cfg.connection_timeout_ns = timeouts[i];
        cfg.health_timeout_ns = UINT64_MAX;
        cfg.stack_timeout_ns = UINT64_MAX;
        cfg.saturation_threshold_ns = UINT64_MAX;
        cfg.max_connections = i ? UINT_MAX : 1;
        sluice_admin *a = start_admin(&cfg);
        unsigned port = sluice_admin_port(a);
        sluice_pool *p = make_pool("dur", 1, 4, SLUICE_OVERFLOW_REJECT);
        assert_int_equal(sluice_admin_add_pool(a, p), SLUICE_OK);
        /* Half a request, a pause of 2.5 s, the rest: still served. */
        int fd = http_connect(port);
        assert_true(fd >= 0);
        const char *first = "GET /health/pools HTTP/1.1\r\nHost: x\r\n";
        assert_int_equal(write(fd, first, strlen(first)), (ssize_t)strlen(first));
        pause_ms(2500);
        const char *rest = "Connection: close\r\n\r\n";
        ssize_t w = write(fd, rest, strlen(rest));
        http_reply r = {0};
        if (w != (ssize_t)strlen(rest)) {
            r.failed_at = "write";
        }
        http_read_reply(fd, &r);
        close(fd);
        if (r.status != 200) {
            fail_msg("connection_timeout_ns %llu: a 2.5 s pause got %d (%s)", (unsigned long long)timeouts[i],
                     r.status, r.failed_at ? r.failed_at : "-");
        }
        expect_body_has(&r, "dur ok");
        http_free(&r);
        expect_get_has(port, "/health/ready", 200, "dur");
        expect_get_has(port, "/debug/pools/stacks", 200, "dur");
        assert_int_equal(sluice_admin_remove_pool(a, p), SLUICE_OK);
        sluice_admin_stop(a);
        sluice_pool_destroy(p);
    }
    /* The sampler at UINT64_MAX never runs, and stop still returns. */
    sluice_admin_config_init(&cfg);
    cfg.sample_interval_ns = UINT64_MAX;
    sluice_admin *a = start_admin(&cfg);
    expect_live(sluice_admin_port(a));
    expect_get_has(sluice_admin_port(a), "/health/ready", 200, "");
    sluice_admin_stop(a);
}

/* ---- requests from outside --------------------------------------------------------- */

static void test_methods_and_targets(void **state)
{
    (void)state;
    sluice_admin *a = start_admin(NULL);
    unsigned port = sluice_admin_port(a);
    char hv[128];
    const char *endpoints[] = {
        "/metrics", "/health/live", "/health/ready", "/health/pools", "/debug/pools", "/debug/pools/stacks",
        "/"};
    const char *methods[] = {"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "BREW", NULL};
    for (size_t e = 0; e < sizeof endpoints / sizeof endpoints[0]; e++) {
        for (size_t m = 0; methods[m]; m++) {
            http_reply r = http_do(port, methods[m], endpoints[e], "Content-Length: 0\r\n");
            if (r.status != 405) {
                fail_msg("%s %s: %d, want 405", methods[m], endpoints[e], r.status);
            }
            assert_non_null(http_header(&r, "Allow", hv, sizeof hv));
            assert_string_equal(hv, "GET, HEAD");
            http_free(&r);
        }
        /* Methods are case-sensitive (RFC 9110): "get" is not GET. */
        http_reply r = http_do(port, "get", endpoints[e], NULL);
        assert_true(r.status == 405 || r.status == 400 || r.status == 501);
        http_free(&r);
        /* HEAD: the headers of GET, no body. */
        r = http_do(port, "HEAD", endpoints[e], NULL);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "");
        http_free(&r);
    }
    /* Off the endpoints: 404 whatever the method. */
    for (size_t m = 0; methods[m]; m++) {
        assert_int_equal(http_status(port, methods[m], "/nope", "Content-Length: 0\r\n"), 404);
    }
    const char *near[] = {
        "/metrics/", "//metrics", "/METRICS",      "/metrics%2F",           "/health",
        "/health/",  "/debug",    "/debug/pools/", "/debug/pools/stacks/x", "/health/live;x",
        NULL};
    for (size_t i = 0; near[i]; i++) {
        http_reply r = http_do(port, "GET", near[i], NULL);
        if (r.status != 404 && r.status != 400) {
            fail_msg("GET %s: %d, want 404 or 400", near[i], r.status);
        }
        http_free(&r);
    }
    /* Percent-encoding is decoded before routing, or refused: never a 5xx. */
    http_reply r = http_do(port, "GET", "/health/%6Cive", NULL);
    assert_true(r.status == 200 || r.status == 404 || r.status == 400);
    http_free(&r);
    r = http_do(port, "GET", "/health/%zz", NULL);
    assert_true(r.status == 404 || r.status == 400);
    http_free(&r);
    /* Targets that are not an origin-form path. */
    const char *raw_bad[] = {
        "GET http://127.0.0.1/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET  /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /metrics HTTP/2.0\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /metrics HTTP/1.1x\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /metrics FTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /metrics\r\n\r\n", /* HTTP/0.9 */
        "GET /metrics HTTP/1.1\r\nHost: x\r\nNoColon\r\nConnection: close\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\nConnection: close\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost: x\r\nHost: y\r\nConnection: close\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\nConnection: close\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\nConnection: "
        "close\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n"
        "Connection: close\r\n\r\n0\r\n\r\n",
        "GET /met\x01rics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-\xff: \xff\xfe\r\nConnection: close\r\n\r\n",
        "\r\n\r\n\r\n",
        "GET /metrics HTTP/1.1\n\n",
        NULL,
    };
    for (size_t i = 0; raw_bad[i]; i++) {
        r = http_raw(port, raw_bad[i], strlen(raw_bad[i]));
        if (r.status >= 500 && r.status != 505) {
            fail_msg("request %zu answered %d: %.200s", i, r.status, r.raw);
        }
        http_free(&r);
        expect_live(port);
    }
    /* HTTP/1.0 needs no Host; a body on a GET is answered or refused, and
     * the server lives on. */
    const char *v10 = "GET /health/live HTTP/1.0\r\n\r\n";
    r = http_raw(port, v10, strlen(v10));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "live\n");
    http_free(&r);
    const char *body =
        "GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    r = http_raw(port, body, strlen(body));
    assert_true(r.status == 200 || (r.status >= 400 && r.status < 500));
    http_free(&r);
    /* A 64 KiB path and a 64 KiB query string. */
    size_t big = 64 * 1024;
    char *req = malloc(big + 128);
    assert_non_null(req);
    for (int q = 0; q < 2; q++) {
        int n = snprintf(req, 128, "GET /%s", q ? "metrics?" : "");
        memset(req + n, 'a', big);
        strcpy(req + n + big, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        r = http_raw(port, req, strlen(req));
        expect_refused(&r, q ? "a 64 KiB query" : "a 64 KiB path");
        http_free(&r);
    }
    free(req);
    expect_live(port);
    sluice_admin_stop(a);
}

/* Read one whole answer (head and Content-Length bytes of body) from fd
 * without waiting for the connection to close; its status, or 0. */
static int read_one_answer(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        buf[len] = '\0';
        const char *sep = strstr(buf, "\r\n\r\n");
        if (sep) {
            const char *cl = strstr(buf, "Content-Length: ");
            size_t want = (size_t)(sep + 4 - buf) + (cl && cl < sep ? strtoul(cl + 16, NULL, 10) : 0);
            if (len >= want) {
                break;
            }
        }
        if (len + 1 >= cap) {
            return 0;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len); /* SO_RCVTIMEO (10 s) bounds a missing answer */
        if (n <= 0) {
            return 0;
        }
        len += (size_t)n;
    }
    int status = 0;
    sscanf(buf, "HTTP/1.1 %d", &status);
    return status;
}

/* Pipelined requests on one connection are all answered, in order (the
 * server answered only the first and closed: it queued each answer before
 * the request was complete, which libmicrohttpd takes as "early"); a
 * request half sent and then abandoned costs nothing. */
static void test_pipelining_and_abandoned(void **state)
{
    (void)state;
    sluice_admin *a = start_admin(NULL);
    unsigned port = sluice_admin_port(a);
    const char *three = "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"
                        "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    http_reply r = http_raw(port, three, strlen(three));
    assert_int_equal(r.status, 200);
    assert_null(r.failed_at); /* closed after the third, not timed out */
    assert_true(strncmp(r.body, "live\n", 5) == 0);
    const char *p2 = strstr(r.body, "HTTP/1.1 ");
    assert_non_null(p2);
    assert_true(strncmp(p2, "HTTP/1.1 200", 12) == 0);
    const char *p3 = strstr(p2 + 1, "HTTP/1.1 ");
    assert_non_null(p3);
    assert_true(strncmp(p3, "HTTP/1.1 404", 12) == 0);
    assert_null(strstr(p3 + 1, "HTTP/1.1 "));
    http_free(&r);
    for (int i = 0; i < 50; i++) {
        int fd = http_connect(port);
        assert_true(fd >= 0);
        const char *half = i % 2 ? "GET /metr" : "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Half: ";
        assert_int_equal(write(fd, half, strlen(half)), (ssize_t)strlen(half));
        if (i % 3 == 0) {
            shutdown(fd, SHUT_WR); /* a half close: the request will never end */
        }
        close(fd);
    }
    expect_live(port);
    expect_get_has(port, "/metrics", 200, "sluice_metrics_write_errors_total");
    sluice_admin_stop(a);
}

/* One connection serves request after request (keep-alive), each answer
 * whole before the next request is sent; "Connection: close" closes it
 * after its answer; a 400 closes it too (the rest of a malformed stream
 * is not trusted), and so does an answer to HTTP/1.0. */
static void test_keep_alive(void **state)
{
    (void)state;
    sluice_admin *a = start_admin(NULL);
    unsigned port = sluice_admin_port(a);
    int fd = http_connect(port);
    assert_true(fd >= 0);
    char buf[16384];
    static const char *const paths[] = {"/health/live", "/metrics", "/health/ready", "/nope", "/health/live"};
    static const int want[] = {200, 200, 200, 404, 200};
    for (size_t i = 0; i < 5; i++) {
        char req[256];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", paths[i]);
        assert_int_equal(write(fd, req, (size_t)n), n);
        int status = read_one_answer(fd, buf, sizeof buf);
        if (status != want[i]) {
            fail_msg("request %zu (%s) on one connection: status %d, want %d", i, paths[i], status, want[i]);
        }
        assert_null(strstr(buf, "Connection: close"));
    }
    const char *last = "GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(write(fd, last, strlen(last)), (ssize_t)strlen(last));
    http_reply r = {0};
    http_read_reply(fd, &r); /* to EOF: the server closes */
    close(fd);
    assert_int_equal(r.status, 200);
    assert_null(r.failed_at);
    http_free(&r);
    static const char *const closing[] = {
        "GET /health/live%00x HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /a/../metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /health/live HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /health/live HTTP/1.0\r\n\r\n",
    };
    static const int closing_status[] = {400, 400, 200};
    for (size_t i = 0; i < 3; i++) {
        r = http_raw(port, closing[i], strlen(closing[i]));
        if (r.status != closing_status[i] || r.failed_at || strstr(r.body, "HTTP/1.")) {
            fail_msg("case %zu: status %d (%s), want %d and the connection closed after one answer", i,
                     r.status, r.failed_at ? r.failed_at : "closed", closing_status[i]);
        }
        http_free(&r);
    }
    expect_live(port);
    sluice_admin_stop(a);
}

/* A request whose framing two parsers could read two ways is refused and
 * nothing after it on the connection is served: more than one
 * Content-Length (different or equal), one that is not a plain decimal,
 * Content-Length with Transfer-Encoding. MHD framed by the first
 * Content-Length, so "Content-Length: 0" then "Content-Length: 35" and 35
 * bytes of another request got two 200s (a proxy honouring the last would
 * have forwarded the 35 bytes as body: request smuggling). */
static void test_request_smuggling(void **state)
{
    (void)state;
    sluice_admin *a = start_admin(NULL);
    unsigned port = sluice_admin_port(a);
    const char *inner = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t inner_len = strlen(inner);
    char cases[7][512];
    snprintf(cases[0], sizeof cases[0],
             "GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: %zu\r\n\r\n%s",
             inner_len, inner);
    snprintf(cases[1], sizeof cases[1],
             "GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\nContent-Length: 0\r\n\r\n%s",
             inner_len, inner);
    snprintf(cases[2], sizeof cases[2],
             "GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\ncontent-length: 0\r\n\r\n%s",
             inner);
    snprintf(cases[3], sizeof cases[3],
             "GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: +0\r\n\r\n%s", inner);
    snprintf(cases[4], sizeof cases[4],
             "GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 0x0\r\n\r\n%s", inner);
    snprintf(cases[5], sizeof cases[5],
             "GET /health/live HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"
             "0\r\n\r\n%s",
             inner);
    snprintf(cases[6], sizeof cases[6],
             "GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"
             "0\r\n\r\n%s",
             inner);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_reply r = http_raw(port, cases[i], strlen(cases[i]));
        /* Only 400s (MHD's own for a length it cannot parse repeats its
         * head, 0.9.75), and EOF: the request behind was not served. */
        if (r.status != 400 || r.failed_at || strstr(r.raw, "HTTP/1.1 2")) {
            fail_msg("case %zu: status %d (%s), want 400 and the connection closed after it", i, r.status,
                     r.failed_at ? r.failed_at : (strstr(r.raw, "HTTP/1.1 2") ? "a 2xx answer" : "closed"));
        }
        http_free(&r);
    }
    /* One Content-Length: 0 is plain framing: it and its follower are served. */
    const char *ok = "GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                     "GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    http_reply r = http_raw(port, ok, strlen(ok));
    assert_int_equal(r.status, 200);
    assert_null(r.failed_at);
    assert_non_null(strstr(r.body, "HTTP/1.1 200"));
    http_free(&r);
    expect_live(port);
    sluice_admin_stop(a);
}

/* A body-less GET with "Expect: 100-continue" and a request pipelined
 * behind it: the first is answered (no "100 Continue"), and the follower
 * is answered too or the connection closes after the first answer. It got
 * "100 Continue" and EOF, neither answered. */
static void test_expect_continue(void **state)
{
    (void)state;
    sluice_admin *a = start_admin(NULL);
    unsigned port = sluice_admin_port(a);
    static const char *const reqs[] = {
        "GET /health/live HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n"
        "GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /health/live HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n"
        "GET /health/live HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n"
        "GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        http_reply r = http_raw(port, reqs[i], strlen(reqs[i]));
        if (r.status != 200 || r.failed_at || strstr(r.raw, "100 Continue")) {
            fail_msg("case %zu: status %d (%s), want 200 first and no 100 Continue", i, r.status,
                     r.failed_at ? r.failed_at : "closed");
        }
        for (const char *p = strstr(r.body, "HTTP/1."); p; p = strstr(p + 1, "HTTP/1.")) {
            int st = 0;
            sscanf(p, "HTTP/1.%*d %d", &st);
            if (st != 200) {
                fail_msg("case %zu: a later answer is %d, want 200", i, st);
            }
        }
        http_free(&r);
    }
    expect_live(port);
    sluice_admin_stop(a);
}

/* /metrics: the format asked for, an exposition ending as it must. */
static void test_metrics_formats(void **state)
{
    (void)state;
    sluice_admin *a = start_admin(NULL);
    unsigned port = sluice_admin_port(a);
    char hv[128];
    http_reply r =
        http_do(port, "GET", "/metrics", "Accept: application/openmetrics-text; version=1.0.0\r\n");
    assert_int_equal(r.status, 200);
    assert_non_null(http_header(&r, "Content-Type", hv, sizeof hv));
    assert_non_null(strstr(hv, "application/openmetrics-text"));
    size_t n = strlen(r.body);
    assert_true(n >= 6 && strcmp(r.body + n - 6, "# EOF\n") == 0);
    http_free(&r);
    /* A long Accept header (700 media ranges) still picks the text format. */
    char *req = malloc(8192);
    assert_non_null(req);
    int k = snprintf(req, 8192, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept: ");
    for (int i = 0; i < 700; i++) {
        k += snprintf(req + k, 8192 - (size_t)k, "x/y;q=0,");
    }
    snprintf(req + k, 8192 - (size_t)k, "text/plain\r\n\r\n");
    r = http_raw(port, req, strlen(req));
    free(req);
    assert_int_equal(r.status, 200);
    assert_non_null(http_header(&r, "Content-Type", hv, sizeof hv));
    assert_non_null(strstr(hv, "version=0.0.4"));
    http_free(&r);
    sluice_admin_stop(a);
}

/* ---- the pool API -------------------------------------------------------------------- */

static void test_pool_api_extremes(void **state)
{
    (void)state;
    sluice_admin *a = start_admin(NULL);
    unsigned port = sluice_admin_port(a);
    enum { MAXP = 64 };
    sluice_pool *pools[MAXP + 1];
    char name[32];
    for (int i = 0; i <= MAXP; i++) {
        snprintf(name, sizeof name, "p%02d", i);
        pools[i] = make_pool(name, 1, 2, SLUICE_OVERFLOW_REJECT);
    }
    assert_int_equal(sluice_admin_add_pool(NULL, pools[0]), SLUICE_EINVAL);
    assert_int_equal(sluice_admin_add_pool(a, NULL), SLUICE_EINVAL);
    for (int i = 0; i < MAXP; i++) {
        assert_int_equal(sluice_admin_add_pool(a, pools[i]), SLUICE_OK);
    }
    assert_int_equal(sluice_admin_add_pool(a, pools[MAXP]), SLUICE_EOVERFLOW);
    assert_int_equal(sluice_admin_add_pool(a, pools[3]), SLUICE_EBUSY);
    sluice_pool *twin = make_pool("p03", 1, 2, SLUICE_OVERFLOW_REJECT);
    assert_int_equal(sluice_admin_remove_pool(a, pools[0]), SLUICE_OK);
    assert_int_equal(sluice_admin_add_pool(a, twin), SLUICE_EBUSY); /* the name is taken */
    assert_int_equal(sluice_admin_remove_pool(a, pools[0]), SLUICE_ENOENT);
    assert_int_equal(sluice_admin_remove_pool(a, NULL), SLUICE_EINVAL);
    assert_int_equal(sluice_admin_add_pool(a, pools[MAXP]), SLUICE_OK); /* room again */
    expect_get_has(port, "/health/pools", 200, "p64 ok");
    expect_get_has(port, "/health/ready", 200, "p63 ok");
    http_reply r = http_do(port, "GET", "/metrics", NULL);
    assert_int_equal(r.status, 200);
    expect_body_has(&r, "pool_capacity{name=\"p64\"} 1\n");
    assert_null(strstr(r.body, "name=\"p00\""));
    http_free(&r);

    /* Readiness weights: [0, 1] only; NaN and the pools not served refused. */
    const double bad[] = {NAN, -NAN, -1e-300, 1.0000000001, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sluice_admin_set_pool_readiness(a, pools[1], bad[i]), SLUICE_EINVAL);
    }
    assert_int_equal(sluice_admin_set_pool_readiness(NULL, pools[1], 1), SLUICE_EINVAL);
    assert_int_equal(sluice_admin_set_pool_readiness(a, NULL, 1), SLUICE_EINVAL);
    assert_int_equal(sluice_admin_set_pool_readiness(a, pools[0], 1), SLUICE_ENOENT);
    assert_int_equal(sluice_admin_set_pool_readiness(a, twin, 1), SLUICE_ENOENT);
    assert_int_equal(sluice_admin_set_pool_readiness(a, pools[1], -0.0), SLUICE_OK);
    expect_get_has(port, "/health/ready", 200, "not gating");
    assert_int_equal(sluice_admin_set_pool_readiness(a, pools[1], 0), SLUICE_OK);
    assert_int_equal(sluice_admin_set_pool_readiness(a, pools[1], 1), SLUICE_OK);
    assert_int_equal(sluice_admin_set_pool_readiness(a, pools[1], 0.0005), SLUICE_OK);

    /* set_ready: idempotent both ways; the adapter does the same. */
    for (int i = 0; i < 3; i++) {
        sluice_admin_set_ready(a, false);
    }
    expect_get_has(port, "/health/ready", 503, "draining");
    sluice_admin_ready_handler(a, true);
    sluice_admin_ready_handler(a, true);
    assert_int_equal(http_status(port, "GET", "/health/ready", NULL), 200);
    sluice_admin_set_ready(NULL, false); /* a no-op */

    for (int i = 1; i <= MAXP; i++) {
        assert_int_equal(sluice_admin_remove_pool(a, pools[i]), SLUICE_OK);
    }
    sluice_admin_stop(a);
    for (int i = 0; i <= MAXP; i++) {
        sluice_pool_destroy(pools[i]);
    }
    sluice_pool_destroy(twin);
}

/* ---- /debug/pools: JSON of valid UTF-8 ------------------------------------------------ */

static gate g_hold;

static int held_task(void *arg)
{
    (void)arg;
    gate_pass(&g_hold, false);
    return 0;
}

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

static void test_debug_pools_utf8(void **state)
{
    (void)state;
    gate_init(&g_hold);
    sluice_admin *a = start_admin(NULL);
    unsigned port = sluice_admin_port(a);
    sluice_pool *p = make_pool("lab", 2, 8, SLUICE_OVERFLOW_REJECT);
    assert_int_equal(sluice_admin_add_pool(a, p), SLUICE_OK);
    static const char *const labels[] = {"bad \xff\xfe \xc3( \xed\xa0\x80 end",
                                         "ok caf\xc3\xa9 \"q\" \\ \x01"};
    for (int i = 0; i < 2; i++) {
        sluice_submit_opts o;
        memset(&o, 0, sizeof o);
        o.label = labels[i];
        assert_int_equal(sluice_pool_submit_ex(p, held_task, NULL, &o), SLUICE_OK);
    }
    GATE_WAIT_ENTERED(&g_hold, 2);
    http_reply r = http_do(port, "GET", "/debug/pools", NULL);
    assert_int_equal(r.status, 200);
    expect_body_has(&r, "ok caf\xc3\xa9 \\\"q\\\" \\\\ \\u0001");
    expect_body_has(&r, "bad ");
    if (!utf8_ok((const unsigned char *)r.body, strlen(r.body))) {
        fail_msg("/debug/pools is not valid UTF-8: %s", r.body);
    }
    http_free(&r);
    gate_open(&g_hold);
    assert_int_equal(sluice_admin_remove_pool(a, p), SLUICE_OK);
    sluice_admin_stop(a);
    sluice_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_addresses),
        cmocka_unit_test(test_max_request_bytes),
        cmocka_unit_test(test_durations_at_maximum),
        cmocka_unit_test(test_methods_and_targets),
        cmocka_unit_test(test_pipelining_and_abandoned),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_request_smuggling),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_metrics_formats),
        cmocka_unit_test(test_pool_api_extremes),
        cmocka_unit_test(test_debug_pools_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

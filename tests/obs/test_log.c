/*
 * tests/obs/test_log.c - log lines in logfmt and JSON (golden), the
 * rate limit on refused submits (fake clock), event and panic lines from a
 * real pool, and cutting of oversized values.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sluice/log.h"
#include "sluice/task.h"

#define MAX_LINES 64

typedef struct capture {
    pthread_mutex_t mu;
    int n;
    char lines[MAX_LINES][SLUICE_LOG_LINE_MAX + 1];
    sluice_log_level levels[MAX_LINES];
} capture;

static capture *cap_new(void)
{
    capture *c = calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void cap_sink(void *user, sluice_log_level level, const char *line, size_t len)
{
    capture *c = user;
    pthread_mutex_lock(&c->mu);
    if (c->n < MAX_LINES) {
        assert_int_equal(strlen(line), len);
        memcpy(c->lines[c->n], line, len + 1);
        c->levels[c->n] = level;
        c->n++;
    }
    pthread_mutex_unlock(&c->mu);
}

static sluice_logger *make_logger(capture *c, sluice_log_format fmt, sluice_log_level min,
                                  const sluice_clock *clock)
{
    sluice_log_config cfg;
    sluice_log_config_init(&cfg);
    cfg.format = fmt;
    cfg.min_level = min;
    cfg.sink = cap_sink;
    cfg.sink_user = c;
    cfg.omit_timestamp = true;
    cfg.clock = clock;
    cfg.submit_error_interval_ns = 10 * SLUICE_NS_PER_SEC;
    sluice_logger *lg;
    assert_int_equal(sluice_logger_create(&cfg, &lg), SLUICE_OK);
    return lg;
}

static void test_formats(void **state)
{
    (void)state;
    capture *c = cap_new();
    sluice_logger *lf = make_logger(c, SLUICE_LOG_LOGFMT, SLUICE_LOG_INFO, NULL);
    sluice_logger *js = make_logger(c, SLUICE_LOG_JSON, SLUICE_LOG_INFO, NULL);
    sluice_log_kv(lf, SLUICE_LOG_WARN, "upstream slow", "host", "db-1", "note", "a \"b\"\nc=d", "empty", "",
                  NULL);
    sluice_log_kv(js, SLUICE_LOG_WARN, "upstream slow", "host", "db-1", "note", "a \"b\"\nc=d\x01", NULL);
    sluice_log_kv(lf, SLUICE_LOG_DEBUG, "not shown", NULL);
    sluice_pool_event ev = {
        .kind = SLUICE_EVENT_RESIZE, .pool_name = "ingest", .old_value = 4, .new_value = 8};
    sluice_log_pool_event(lf, &ev);
    sluice_log_pool_event(js, &ev);
    sluice_drain_report d = {.completed = 10,
                             .still_running = 1,
                             .handed_back = 2,
                             .elapsed_ns = 1500 * SLUICE_NS_PER_MS,
                             .timed_out = true};
    sluice_pool_event end = {.kind = SLUICE_EVENT_DRAIN_END, .pool_name = "ingest", .drain = &d};
    sluice_log_pool_event(lf, &end);
    sluice_pool_event start = {
        .kind = SLUICE_EVENT_DRAIN_START, .pool_name = "ingest", .old_value = 2, .new_value = 5};
    sluice_log_pool_event(js, &start);
    sluice_pool_event exp = {
        .kind = SLUICE_EVENT_WORKER_EXIT, .pool_name = "ingest", .worker_index = 3, .detail = "expired"};
    sluice_log_pool_event(lf, &exp);
    sluice_log_line_handler(lf, "drain complete");

    assert_int_equal(c->n, 8);
    assert_string_equal(c->lines[0],
                        "level=warn msg=\"upstream slow\" host=db-1 note=\"a \\\"b\\\"\\nc=d\" empty=\"\"");
    assert_string_equal(c->lines[1], "{\"level\":\"warn\",\"msg\":\"upstream "
                                     "slow\",\"host\":\"db-1\",\"note\":\"a \\\"b\\\"\\nc=d\\u0001\"}");
    assert_string_equal(c->lines[2], "level=info msg=\"pool resized\" pool=ingest old=4 new=8");
    assert_string_equal(
        c->lines[3], "{\"level\":\"info\",\"msg\":\"pool resized\",\"pool\":\"ingest\",\"old\":4,\"new\":8}");
    assert_string_equal(c->lines[4],
                        "level=warn msg=\"drain finished\" pool=ingest completed=10 still_running=1 "
                        "handed_back=2 elapsed_ms=1500 timed_out=true");
    assert_int_equal(c->levels[4], SLUICE_LOG_WARN);
    assert_string_equal(
        c->lines[5],
        "{\"level\":\"info\",\"msg\":\"drain started\",\"pool\":\"ingest\",\"queued\":5,\"running\":2}");
    assert_string_equal(c->lines[6], "level=info msg=\"worker exited\" pool=ingest worker=3 reason=expired");
    assert_string_equal(c->lines[7], "level=info msg=\"drain complete\"");
    sluice_logger_destroy(lf);
    sluice_logger_destroy(js);

    /* The timestamp, when not omitted: ts=YYYY-MM-DDTHH:MM:SS.mmmZ first. */
    sluice_log_config cfg;
    sluice_log_config_init(&cfg);
    cfg.sink = cap_sink;
    cfg.sink_user = c;
    sluice_logger *t;
    assert_int_equal(sluice_logger_create(&cfg, &t), SLUICE_OK);
    sluice_log_kv(t, SLUICE_LOG_INFO, "x", NULL);
    assert_int_equal(strncmp(c->lines[8], "ts=20", 5), 0);
    assert_int_equal(c->lines[8][26], 'Z');
    assert_string_equal(c->lines[8] + 27, " level=info msg=x");
    sluice_logger_destroy(t);

    sluice_log_format f;
    sluice_log_level l;
    assert_int_equal(sluice_log_parse_format("json", &f), SLUICE_OK);
    assert_int_equal(f, SLUICE_LOG_JSON);
    assert_int_equal(sluice_log_parse_format("xml", &f), SLUICE_EINVAL);
    assert_int_equal(sluice_log_parse_level("warn", &l), SLUICE_OK);
    assert_int_equal(l, SLUICE_LOG_WARN);
    assert_int_equal(sluice_log_parse_level("loud", &l), SLUICE_EINVAL);
    free(c);
}

static void test_rate_limit(void **state)
{
    (void)state;
    capture *c = cap_new();
    sluice_fake_clock fake;
    sluice_fake_clock_init(&fake, 5 * SLUICE_NS_PER_SEC);
    sluice_logger *lg = make_logger(c, SLUICE_LOG_LOGFMT, SLUICE_LOG_INFO, &fake.clock);
    /* 1000 refusals inside the interval: one line. */
    for (int i = 0; i < 1000; i++) {
        sluice_log_submit_error(lg, "ingest", SLUICE_EFULL);
    }
    /* Another key logs at once. */
    sluice_pool_event ev = {
        .kind = SLUICE_EVENT_SUBMIT_REFUSED, .pool_name = "ingest", .err = SLUICE_ETIMEDOUT};
    sluice_log_pool_event(lg, &ev);
    sluice_log_pool_event(lg, &ev);
    assert_int_equal(c->n, 2);
    assert_string_equal(c->lines[0],
                        "level=warn msg=\"submit refused\" pool=ingest err=SLUICE_EFULL suppressed=0");
    assert_string_equal(c->lines[1],
                        "level=warn msg=\"submit refused\" pool=ingest err=SLUICE_ETIMEDOUT suppressed=0");
    sluice_fake_clock_advance(&fake, 9 * SLUICE_NS_PER_SEC);
    sluice_log_submit_error(lg, "ingest", SLUICE_EFULL);
    assert_int_equal(c->n, 2);
    sluice_fake_clock_advance(&fake, 1 * SLUICE_NS_PER_SEC);
    sluice_log_submit_error(lg, "ingest", SLUICE_EFULL);
    assert_int_equal(c->n, 3);
    assert_string_equal(c->lines[2],
                        "level=warn msg=\"submit refused\" pool=ingest err=SLUICE_EFULL suppressed=1000");
    /* Many pools: the table fills, the overflow slot still bounds the lines. */
    char name[32];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "p%d", i);
        sluice_log_submit_error(lg, name, SLUICE_EFULL);
    }
    assert_true(c->n <= 3 + 64 + 1);
    sluice_logger_destroy(lg);
    free(c);
}

static void test_cut_long_values(void **state)
{
    (void)state;
    capture *c = cap_new();
    sluice_logger *js = make_logger(c, SLUICE_LOG_JSON, SLUICE_LOG_INFO, NULL);
    char *big = malloc(3 * SLUICE_LOG_LINE_MAX);
    memset(big, 'x', 3 * SLUICE_LOG_LINE_MAX - 1);
    big[3 * SLUICE_LOG_LINE_MAX - 1] = '\0';
    sluice_log_kv(js, SLUICE_LOG_ERROR, "big", "v", big, "after", "y", NULL);
    assert_int_equal(c->n, 1);
    size_t n = strlen(c->lines[0]);
    assert_true(n < SLUICE_LOG_LINE_MAX);
    assert_string_equal(c->lines[0] + n - 5, "...\"}");
    free(big);
    sluice_logger_destroy(js);
    free(c);
}

static int panicking(void *arg)
{
    (void)arg;
    sluice_panic("boom %d", 42);
}

static void test_pool_panic_line(void **state)
{
    (void)state;
    capture *c = cap_new();
    sluice_logger *lg = make_logger(c, SLUICE_LOG_LOGFMT, SLUICE_LOG_INFO, NULL);
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = "pp";
    cfg.workers = 1;
    cfg.queue_capacity = 4;
    cfg.event_handler = sluice_log_event_handler;
    cfg.panic_handler = sluice_log_panic_handler;
    cfg.user = lg;
    sluice_pool *p;
    assert_int_equal(sluice_pool_create(&cfg, &p, NULL, 0), SLUICE_OK);
    sluice_submit_opts o = {.label = "job-7"};
    assert_int_equal(sluice_pool_submit_ex(p, panicking, NULL, &o), SLUICE_OK);
    assert_int_equal(sluice_pool_resize(p, 2), SLUICE_OK);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    sluice_pool_destroy(p);
    bool panic = false, resize = false, dstart = false, dend = false;
    for (int i = 0; i < c->n; i++) {
        const char *l = c->lines[i];
        if (strstr(l, "msg=\"task panicked\"")) {
            panic = true;
            assert_non_null(strstr(l, "pool=pp worker="));
            assert_non_null(strstr(l, " task=job-7 signal=0 caller_thread=false message=\"boom 42\""));
            assert_non_null(strstr(l, "backtrace=\"#0 "));
            assert_null(strchr(l, '\n'));
        }
        resize |= strstr(l, "msg=\"pool resized\" pool=pp old=1 new=2") != NULL;
        dstart |= strstr(l, "msg=\"drain started\" pool=pp") != NULL;
        dend |= strstr(l, "msg=\"drain finished\" pool=pp") != NULL;
    }
    for (int i = 0; i < c->n; i++) {
        if (!(panic && resize && dstart && dend)) {
            fprintf(stderr, "%s\n", c->lines[i]);
        }
    }
    assert_true(panic);
    assert_true(resize);
    assert_true(dstart);
    assert_true(dend);
    sluice_logger_destroy(lg);
    free(c);
}

/* Every JSON line, escapes and cut values included, parses with jq (when
 * jq is installed). */
static void test_json_parses(void **state)
{
    (void)state;
    if (system("command -v jq >/dev/null 2>&1") != 0) {
        print_message("jq not installed: skipping\n");
        return;
    }
    capture *c = cap_new();
    sluice_log_config cfg;
    sluice_log_config_init(&cfg);
    cfg.format = SLUICE_LOG_JSON;
    cfg.sink = cap_sink;
    cfg.sink_user = c;
    sluice_logger *lg;
    assert_int_equal(sluice_logger_create(&cfg, &lg), SLUICE_OK);
    char ctl[40];
    for (int i = 0; i < 31; i++) {
        ctl[i] = (char)(i + 1);
    }
    ctl[31] = '\x7f';
    ctl[32] = '\0';
    sluice_log_kv(lg, SLUICE_LOG_INFO, "ctl", "v", ctl, "q", "\"\\/", "utf8", "caf\xC3\xA9", NULL);
    char *big = malloc(2 * SLUICE_LOG_LINE_MAX);
    memset(big, '"', 2 * SLUICE_LOG_LINE_MAX - 1);
    big[2 * SLUICE_LOG_LINE_MAX - 1] = '\0';
    sluice_log_kv(lg, SLUICE_LOG_INFO, "big quotes", "v", big, NULL);
    free(big);
    sluice_drain_report d = {.completed = 1};
    sluice_pool_event ev = {.kind = SLUICE_EVENT_DRAIN_END, .pool_name = "p", .drain = &d};
    sluice_log_pool_event(lg, &ev);
    char path[] = "/tmp/sluice-obs-json-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    for (int i = 0; i < c->n; i++) {
        assert_int_equal(write(fd, c->lines[i], strlen(c->lines[i])), (ssize_t)strlen(c->lines[i]));
        assert_int_equal(write(fd, "\n", 1), 1);
    }
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "jq -c 'select(.level == null) | halt_error(1)' %s >/dev/null", path);
    int rc = system(cmd);
    snprintf(cmd, sizeof cmd, "jq -e . %s >/dev/null", path);
    int rc2 = system(cmd);
    unlink(path);
    assert_int_equal(rc, 0);
    assert_int_equal(rc2, 0);
    assert_int_equal(c->n, 3);
    sluice_logger_destroy(lg);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats),         cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_cut_long_values), cmocka_unit_test(test_pool_panic_line),
        cmocka_unit_test(test_json_parses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

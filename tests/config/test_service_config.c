/*
 * tests/config/test_service_config.c - a service built from a config
 * (sluice_service_create_from_config) and reloaded from a file
 * (sluice_service_reload_config): the pools in file order with their
 * limits and drain timeouts, the hook that adds code to each pool, the
 * all-or-nothing create, and the reload that reaches both the pools and
 * the service's drain budget; the admin token read from the file that
 * service.admin_token_file names (the config holds only the path).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/wait.h"
#include "sluice/config.h"
#include "sluice/service.h"

static const sluice_config_load_opts NO_ENV = {.no_env = true};

static const char TWO_POOLS[] = "service:\n"
                                "  name: mailer\n"
                                "  drain_budget: 20s\n"
                                "pools:\n"
                                "  - name: send\n"
                                "    workers: 3\n"
                                "    queue_capacity: 30\n"
                                "    drain_timeout: 5s\n"
                                "  - name: bounce\n"
                                "    workers: 2\n"
                                "    queue_capacity: 20\n"
                                "    readiness_weight: 0\n";

typedef struct hook_seen {
    int calls;
    size_t last_index;
    char names[4][32];
} hook_seen;

static void on_abandon(const sluice_abandoned *task, void *user)
{
    (void)task;
    (void)user;
}

static void prepare(void *user, const sluice_config_pool *entry, size_t index, sluice_pool_config *pc)
{
    hook_seen *h = user;
    snprintf(h->names[h->calls % 4], sizeof h->names[0], "%s", entry->name);
    h->calls++;
    h->last_index = index;
    pc->abandon_handler = on_abandon; /* code, not config */
}

static void quiet(void *user, const char *line)
{
    (void)user;
    (void)line;
}

static sluice_config *load(const char *text)
{
    sluice_config *cfg = NULL;
    char err[1024];
    assert_int_equal(
        sluice_config_load_string(text, strlen(text), "sluice.yaml", &NO_ENV, &cfg, err, sizeof err),
        SLUICE_OK);
    return cfg;
}

/* A quiet service from cfg (no signal thread), asserted made. */
static sluice_service *quiet_service(sluice_config *cfg)
{
    sluice_service_config base;
    sluice_service_config_init(&base);
    base.no_signals = true;
    base.log = quiet;
    sluice_service *svc = NULL;
    char err[512];
    sluice_err r = sluice_service_create_from_config(cfg, &base, NULL, NULL, &svc, err, sizeof err);
    if (r != SLUICE_OK) {
        fail_msg("create from config: %s", err);
    }
    return svc;
}

/* Make the empty file named by the mkstemp template path. */
static void make_temp(char *path)
{
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
}

/* Replace the file at path with text (a reload's next file). */
static void put_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* A scrape of the service's registry (malloc'd). */
static char *scrape(sluice_service *svc)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sluice_metrics_render(sluice_service_metrics(svc), SLUICE_EXPO_PROMETHEUS, &text, &len),
                     SLUICE_OK);
    return text;
}

/* The reload's log lines, one after another. */
typedef struct log_seen {
    char text[4096];
} log_seen;

static void remember(void *user, const char *line)
{
    log_seen *l = user;
    size_t n = strlen(l->text);
    snprintf(l->text + n, sizeof l->text - n, "%s\n", line);
}

static void test_create_from_config(void **state)
{
    (void)state;
    sluice_config *cfg = load(TWO_POOLS);
    sluice_service_config base;
    sluice_service_config_init(&base);
    base.no_signals = true;
    base.log = quiet;
    base.name = "ignored: the config names the service";
    hook_seen h = {0};
    sluice_service *svc = NULL;
    char err[512];
    assert_int_equal(sluice_service_create_from_config(cfg, &base, prepare, &h, &svc, err, sizeof err),
                     SLUICE_OK);
    assert_string_equal(sluice_service_name(svc), "mailer");
    assert_int_equal(h.calls, 2);
    assert_string_equal(h.names[0], "send");
    assert_string_equal(h.names[1], "bounce");
    assert_int_equal(sluice_service_pool_count(svc), 2);
    sluice_pool *send = sluice_service_pool(svc, 0);
    assert_string_equal(sluice_pool_name(send), "send");
    sluice_pool_config pc;
    sluice_pool_config_get(send, &pc);
    assert_int_equal(pc.workers, 3);
    assert_int_equal(pc.queue_capacity, 30);
    assert_ptr_equal(pc.abandon_handler, on_abandon);
    assert_non_null(sluice_service_find_pool(svc, "bounce"));
    /* readiness_weight: the default (1) and a given one (TWO_POOLS: 0). */
    assert_int_equal(sluice_service_readiness_weight(svc, send), 1000);
    assert_int_equal(sluice_service_readiness_weight(svc, sluice_service_find_pool(svc, "bounce")), 0);
    assert_int_equal(sluice_service_readiness_weight(svc, NULL), 1000);
    assert_int_equal(sluice_service_set_readiness_weight(svc, send, 1.5), SLUICE_EINVAL);
    assert_int_equal(sluice_service_set_readiness_weight(svc, send, -0.0), SLUICE_OK);
    assert_int_equal(sluice_service_readiness_weight(svc, send), 0);
    assert_int_equal(sluice_service_set_readiness_weight(svc, send, 0.3333), SLUICE_OK);
    assert_int_equal(sluice_service_readiness_weight(svc, send), 333);
    /* Registered once in the service's registry. */
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sluice_metrics_render(sluice_service_metrics(svc), SLUICE_EXPO_PROMETHEUS, &text, &len),
                     SLUICE_OK);
    assert_non_null(strstr(text, "pool_submitted_total{name=\"send\"}"));
    assert_non_null(strstr(text, "pool_submitted_total{name=\"bounce\"}"));
    free(text);
    sluice_service_shutdown(svc);
    sluice_lifecycle_report rep;
    assert_int_equal(sluice_service_run(svc, &rep), SLUICE_OK);
    assert_int_equal(rep.pool_count, 2);
    sluice_service_destroy(svc);
    sluice_config_free(cfg);
}

/* A pool the service refuses (here: its name is already in a borrowed
 * registry) fails the whole create with the pool named; nothing is left. */
static void test_create_all_or_nothing(void **state)
{
    (void)state;
    sluice_config *cfg = load(TWO_POOLS);
    sluice_metrics *reg = NULL;
    assert_int_equal(sluice_metrics_create(NULL, &reg), SLUICE_OK);
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "bounce";
    pc.workers = 1;
    pc.queue_capacity = 1;
    sluice_pool *squatter = NULL;
    assert_int_equal(sluice_pool_create(&pc, &squatter, NULL, 0), SLUICE_OK);
    assert_int_equal(sluice_metrics_add_pool(reg, squatter), SLUICE_OK);
    sluice_service_config base;
    sluice_service_config_init(&base);
    base.no_signals = true;
    base.metrics = reg;
    sluice_service *svc = NULL;
    char err[512];
    assert_int_equal(sluice_service_create_from_config(cfg, &base, NULL, NULL, &svc, err, sizeof err),
                     SLUICE_EBUSY);
    assert_null(svc);
    assert_non_null(strstr(err, "pool bounce:"));
    /* "send" was created and then taken down again: not in the registry. */
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sluice_metrics_render(reg, SLUICE_EXPO_PROMETHEUS, &text, &len), SLUICE_OK);
    assert_null(strstr(text, "name=\"send\""));
    free(text);
    assert_int_equal(sluice_service_create_from_config(NULL, &base, NULL, NULL, &svc, err, sizeof err),
                     SLUICE_EINVAL);
    sluice_metrics_remove_pool(reg, squatter);
    sluice_pool_destroy(squatter);
    sluice_metrics_destroy(reg);
    sluice_config_free(cfg);
}

/* Reload reaches the pools (K) and the config in force (budget); a file
 * that does not load changes nothing. */
static void test_reload_reaches_pools_and_budget(void **state)
{
    (void)state;
    char path[] = "/tmp/sluice-svc-reload-XXXXXX";
    make_temp(path);
    sluice_config *cfg = load(TWO_POOLS);
    sluice_service *svc = quiet_service(cfg);
    char err[1024];
    put_file(path, "service:\n  name: mailer\n  drain_budget: 1ms\npools:\n"
                   "  - name: send\n    workers: 5\n    queue_capacity: 30\n    drain_timeout: 5s\n"
                   "  - name: bounce\n    workers: 2\n    queue_capacity: 20\n    readiness_weight: 0.25\n");
    assert_int_equal(sluice_service_reload_config(svc, &cfg, path, &NO_ENV, quiet, NULL, err, sizeof err),
                     SLUICE_OK);
    /* readiness_weight is live: 0 (TWO_POOLS) -> 0.25; send back to 1. */
    assert_int_equal(sluice_service_readiness_weight(svc, sluice_service_find_pool(svc, "bounce")), 250);
    assert_int_equal(sluice_service_readiness_weight(svc, sluice_service_find_pool(svc, "send")), 1000);
    sluice_pool_stats st;
    sluice_pool_stats_get(sluice_service_find_pool(svc, "send"), &st);
    assert_int_equal(st.capacity, 5);
    assert_int_equal(cfg->service.drain_budget_ns, SLUICE_NS_PER_MS);

    put_file(path, "pools: [\n"); /* not YAML */
    assert_int_not_equal(sluice_service_reload_config(svc, &cfg, path, &NO_ENV, quiet, NULL, err, sizeof err),
                         SLUICE_OK);
    sluice_pool_stats_get(sluice_service_find_pool(svc, "send"), &st);
    assert_int_equal(st.capacity, 5);
    assert_int_equal(sluice_service_reload_config(NULL, &cfg, path, &NO_ENV, quiet, NULL, err, sizeof err),
                     SLUICE_EINVAL);

    sluice_service_shutdown(svc);
    sluice_lifecycle_report rep;
    assert_int_equal(sluice_service_run(svc, &rep), SLUICE_OK); /* nothing queued */
    sluice_service_destroy(svc);
    sluice_config_free(cfg);
    unlink(path);
}

/* A reload reconfigures a pool's controller when its concurrency_*,
 * autotune* or probe_* keys change, and makes one for a pool that had
 * none; K carries over. On -> off -> on: a reload that turns every key
 * off removes the controller (gone from the stats and /metrics, K back
 * to the file's workers), and the next that turns one on makes a fresh
 * one. */
static void test_control_reload(void **state)
{
    (void)state;
    char path[] = "/tmp/sluice-svc-ctl-reload-XXXXXX";
    make_temp(path);
    sluice_config *cfg = load("pools:\n"
                              "  - name: email\n    workers: 16\n    queue_capacity: 100\n"
                              "    concurrency_mode: gradient2\n    concurrency_max: 64\n"
                              "    autotune: true\n    probe_every: 10s\n"
                              "  - name: plain\n    workers: 2\n    queue_capacity: 10\n");
    sluice_service *svc = quiet_service(cfg);
    char err[512];
    sluice_pool *email = sluice_service_find_pool(svc, "email");
    sluice_pool *plain = sluice_service_find_pool(svc, "plain");
    sluice_pool_control_stats cs;
    assert_int_equal(sluice_service_control_stats(svc, plain, &cs), SLUICE_ENOENT);

    put_file(path, "pools:\n"
                   "  - name: email\n    workers: 16\n    queue_capacity: 100\n"
                   "    concurrency_mode: aimd\n    concurrency_min: 4\n    concurrency_max: 32\n"
                   "  - name: plain\n    workers: 2\n    queue_capacity: 10\n    autotune: true\n");
    assert_int_equal(sluice_service_reload_config(svc, &cfg, path, &NO_ENV, quiet, NULL, err, sizeof err),
                     SLUICE_OK);
    assert_int_equal(sluice_service_control_stats(svc, email, &cs), SLUICE_OK);
    assert_int_equal(cs.mode, SLUICE_CONTROL_AIMD);
    assert_false(cs.autotune);
    assert_false(cs.probes_enabled);
    assert_true(cs.healthy);
    assert_int_equal(sluice_service_control_stats(svc, plain, &cs), SLUICE_OK); /* made by the reload */
    assert_true(cs.autotune);
    assert_int_equal(cs.mode, SLUICE_CONTROL_FIXED);
    assert_int_equal(cfg->pools[0].concurrency_max, 32); /* the config in force */

    /* Every control key back to off: the controller goes, its series
     * leave /metrics, and K goes back to the file's workers (email was
     * pinned at 9 by hand: a controller's K is not the operator's). */
    assert_int_equal(sluice_service_control_pin(svc, email, 9), SLUICE_OK);
    char *text = scrape(svc);
    assert_non_null(strstr(text, "pool_concurrency_limit{name=\"email\"} 9"));
    assert_non_null(strstr(text, "pool_autotune_pinned{name=\"plain\"}"));
    free(text);
    put_file(path, "pools:\n"
                   "  - name: email\n    workers: 16\n    queue_capacity: 100\n"
                   "  - name: plain\n    workers: 2\n    queue_capacity: 10\n");
    log_seen seen = {0};
    assert_int_equal(sluice_service_reload_config(svc, &cfg, path, &NO_ENV, remember, &seen, err, sizeof err),
                     SLUICE_OK);
    assert_int_equal(sluice_service_control_stats(svc, email, &cs), SLUICE_ENOENT);
    assert_int_equal(sluice_service_control_stats(svc, plain, &cs), SLUICE_ENOENT);
    assert_int_equal(sluice_service_control_pin(svc, email, 5), SLUICE_ENOENT);
    sluice_pool_stats st;
    sluice_pool_stats_get(email, &st);
    assert_int_equal(st.capacity, 16); /* the file's workers */
    sluice_pool_stats_get(plain, &st);
    assert_int_equal(st.capacity, 2);
    assert_non_null(strstr(seen.text, "pool email: controller removed"));
    assert_non_null(strstr(seen.text, "K 9 -> 16 (workers)"));
    text = scrape(svc);
    assert_null(strstr(text, "pool_concurrency_limit"));
    assert_null(strstr(text, "pool_autotune_"));
    assert_null(strstr(text, "pool_probe_"));
    assert_non_null(strstr(text, "pool_capacity{name=\"email\"} 16"));
    free(text);

    /* The same file again: nothing to remove, nothing made. */
    assert_int_equal(sluice_service_reload_config(svc, &cfg, path, &NO_ENV, quiet, NULL, err, sizeof err),
                     SLUICE_OK);
    assert_int_equal(sluice_service_control_stats(svc, email, &cs), SLUICE_ENOENT);

    /* On again: a fresh controller (no pin, no decisions) whose series
     * come back; the other pool stays without one. */
    put_file(path, "pools:\n"
                   "  - name: email\n    workers: 16\n    queue_capacity: 100\n"
                   "    concurrency_mode: aimd\n    concurrency_min: 4\n    concurrency_max: 32\n"
                   "  - name: plain\n    workers: 2\n    queue_capacity: 10\n");
    assert_int_equal(sluice_service_reload_config(svc, &cfg, path, &NO_ENV, quiet, NULL, err, sizeof err),
                     SLUICE_OK);
    assert_int_equal(sluice_service_control_stats(svc, email, &cs), SLUICE_OK);
    assert_int_equal(cs.mode, SLUICE_CONTROL_AIMD);
    assert_false(cs.pinned);
    for (unsigned d = 0; d < SLUICE_CONTROL_DIRECTION_COUNT_; d++) {
        assert_int_equal(cs.decisions[d][SLUICE_CONTROL_REASON_PIN], 0); /* the old pin is not carried */
    }
    assert_int_equal(sluice_service_control_stats(svc, plain, &cs), SLUICE_ENOENT);
    WAIT_FOR(sluice_service_control_stats(svc, email, &cs) == SLUICE_OK && cs.ticks >= 1,
             "the new controller's first tick");
    text = scrape(svc);
    assert_non_null(strstr(text, "pool_concurrency_limit{name=\"email\"}"));
    assert_null(strstr(text, "pool_concurrency_limit{name=\"plain\"}"));
    free(text);

    /* The service-level call itself: refusals. */
    sluice_pool_control_config cc;
    sluice_pool_control_config_init(&cc);
    cc.util_high = 2;
    cc.autotune = true;
    assert_int_equal(sluice_service_update_control(svc, email, &cc, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "util_high"));
    assert_int_equal(sluice_service_update_control(svc, NULL, &cc, err, sizeof err), SLUICE_EINVAL);
    assert_int_equal(sluice_service_update_control(NULL, email, &cc, err, sizeof err), SLUICE_EINVAL);
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "stranger";
    pc.workers = 1;
    pc.queue_capacity = 1;
    sluice_pool *stranger = NULL;
    assert_int_equal(sluice_pool_create(&pc, &stranger, NULL, 0), SLUICE_OK);
    sluice_pool_control_config_init(&cc);
    assert_int_equal(sluice_service_update_control(svc, stranger, &cc, err, sizeof err), SLUICE_ENOENT);
    sluice_pool_destroy(stranger);

    sluice_service_shutdown(svc);
    sluice_lifecycle_report rep;
    assert_int_equal(sluice_service_run(svc, &rep), SLUICE_OK);
    sluice_service_destroy(svc);
    sluice_config_free(cfg);
    unlink(path);
}

/* A controller the program set itself on a pool whose file has no
 * control key is not the file's: reloads that leave every key off (also
 * one that changes an off key's bound) keep it, untouched. */
static void test_control_reload_keeps_program_controller(void **state)
{
    (void)state;
    char path[] = "/tmp/sluice-svc-ctl-own-XXXXXX";
    make_temp(path);
    sluice_config *cfg = load("pools:\n  - name: own\n    workers: 8\n    queue_capacity: 10\n");
    sluice_service *svc = quiet_service(cfg);
    sluice_pool *own = sluice_service_find_pool(svc, "own");
    sluice_pool_control_config cc;
    sluice_pool_control_config_init(&cc);
    cc.autotune = true;
    char err[512];
    assert_int_equal(sluice_service_set_control(svc, own, &cc, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_service_control_pin(svc, own, 5), SLUICE_OK);
    put_file(path,
             "pools:\n  - name: own\n    workers: 8\n    queue_capacity: 10\n    concurrency_max: 12\n");
    assert_int_equal(sluice_service_reload_config(svc, &cfg, path, &NO_ENV, quiet, NULL, err, sizeof err),
                     SLUICE_OK);
    put_file(path, "pools:\n  - name: own\n    workers: 8\n    queue_capacity: 10\n");
    assert_int_equal(sluice_service_reload_config(svc, &cfg, path, &NO_ENV, quiet, NULL, err, sizeof err),
                     SLUICE_OK);
    sluice_pool_control_stats cs;
    assert_int_equal(sluice_service_control_stats(svc, own, &cs), SLUICE_OK);
    assert_true(cs.autotune); /* its own settings */
    assert_true(cs.pinned);
    sluice_pool_stats st;
    sluice_pool_stats_get(own, &st);
    assert_int_equal(st.capacity, 5); /* not set back to workers */
    sluice_service_destroy(svc);
    sluice_config_free(cfg);
    unlink(path);
}

/* A reload that turns every control key off while the pool drains: the
 * removal succeeds whole (the controller is gone, the call returns OK)
 * and K stays where the controller left it, since a draining pool takes
 * no resize and needs none. It used to return SLUICE_ECLOSED with the
 * controller already gone. */
static void test_control_removed_while_draining(void **state)
{
    (void)state;
    char path[] = "/tmp/sluice-svc-ctl-drain-XXXXXX";
    make_temp(path);
    sluice_config *cfg = load("pools:\n"
                              "  - name: email\n    workers: 16\n    queue_capacity: 100\n"
                              "    autotune: true\n");
    sluice_service *svc = quiet_service(cfg);
    sluice_pool *email = sluice_service_find_pool(svc, "email");
    assert_int_equal(sluice_service_control_pin(svc, email, 9), SLUICE_OK);
    /* The shutdown drains the pool (empty: at once); it stays draining. */
    sluice_service_shutdown(svc);
    sluice_lifecycle_report rep;
    assert_int_equal(sluice_service_run(svc, &rep), SLUICE_OK);
    assert_int_equal(sluice_pool_resize(email, 16), SLUICE_ECLOSED);

    put_file(path, "pools:\n  - name: email\n    workers: 16\n    queue_capacity: 100\n");
    log_seen seen = {0};
    char err[512] = "x";
    assert_int_equal(sluice_service_reload_config(svc, &cfg, path, &NO_ENV, remember, &seen, err, sizeof err),
                     SLUICE_OK);
    assert_string_equal(err, "");
    assert_string_equal(
        seen.text,
        "pool email: autotune true -> false (applied by the service: the pool's controller is made or "
        "reconfigured, or removed when every control key is off, with K set back to workers unless the pool "
        "is draining)\n"
        "pool email: controller removed (every concurrency_*, autotune* and probe_* key "
        "off); K stays 9: the pool is draining (workers 16 not applied)\n");
    sluice_pool_control_stats cs;
    assert_int_equal(sluice_service_control_stats(svc, email, &cs), SLUICE_ENOENT);
    sluice_pool_stats st;
    sluice_pool_stats_get(email, &st);
    assert_int_equal(st.capacity, 9);
    char *text = scrape(svc);
    assert_null(strstr(text, "pool_concurrency_limit"));
    assert_null(strstr(text, "pool_autotune_"));
    free(text);
    /* The config in force is the file's: a reload of the same file
     * changes nothing and removes nothing. */
    assert_int_equal(sluice_service_reload_config(svc, &cfg, path, &NO_ENV, quiet, NULL, err, sizeof err),
                     SLUICE_OK);
    assert_false(cfg->pools[0].autotune);

    sluice_service_destroy(svc);
    sluice_config_free(cfg);
    unlink(path);
}

/* A reload applied with one pool value refused midway (workers, whose
 * resize a draining pool refuses) still reaches the service: the control
 * keys turned off remove the controller, the new readiness weight and
 * budget are taken. The reload used to return at the refusal with the
 * config in force already saying autotune: false, so the controller
 * stayed, and every later reload of that file saw nothing to remove. */
static void test_reload_refused_midway_still_reaches_service(void **state)
{
    (void)state;
    char path[] = "/tmp/sluice-svc-midway-XXXXXX";
    make_temp(path);
    sluice_config *cfg = load("service:\n  drain_budget: 20s\n"
                              "pools:\n"
                              "  - name: email\n    workers: 16\n    queue_capacity: 100\n"
                              "    autotune: true\n");
    sluice_service *svc = quiet_service(cfg);
    sluice_pool *email = sluice_service_find_pool(svc, "email");
    sluice_service_shutdown(svc);
    sluice_lifecycle_report rep;
    assert_int_equal(sluice_service_run(svc, &rep), SLUICE_OK);

    put_file(path, "service:\n  drain_budget: 20s\n"
                   "pools:\n"
                   "  - name: email\n    workers: 8\n    queue_capacity: 100\n"
                   "    readiness_weight: 0.5\n");
    log_seen seen = {0};
    char err[512];
    assert_int_equal(sluice_service_reload_config(svc, &cfg, path, &NO_ENV, remember, &seen, err, sizeof err),
                     SLUICE_ECLOSED);
    assert_string_equal(err, "pool email: workers to 8 failed: closed or draining; already changed: none");
    assert_non_null(strstr(seen.text, "pool email: workers 16 -> 8 failed: closed or draining\n"));
    assert_non_null(strstr(seen.text, "pool email: controller removed (every concurrency_*, autotune* and "
                                      "probe_* key off); K stays 16: the pool is draining (workers 16 not "
                                      "applied)\n"));
    assert_int_equal(cfg->pools[0].workers, 16); /* the refused value is not in force */
    assert_false(cfg->pools[0].autotune);
    sluice_pool_control_stats cs;
    assert_int_equal(sluice_service_control_stats(svc, email, &cs), SLUICE_ENOENT);
    assert_int_equal(sluice_service_readiness_weight(svc, email), 500);

    sluice_service_destroy(svc);
    sluice_config_free(cfg);
    unlink(path);
}

/* ---- service.admin_token_file ---------------------------------------- */

static void write_file(const char *path, const char *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Load a config whose service.admin_token_file is `path`. */
static sluice_config *with_token_file(const char *path)
{
    char text[1024], err[1024];
    snprintf(text, sizeof text,
             "service:\n  name: mailer\n  admin_token_file: \"%s\"\npools:\n  - name: send\n"
             "    workers: 1\n    queue_capacity: 4\n",
             path);
    sluice_config *c = NULL;
    assert_int_equal(
        sluice_config_load_string(text, strlen(text), "sluice.yaml", &NO_ENV, &c, err, sizeof err),
        SLUICE_OK);
    return c;
}

static void test_admin_token_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/sluice-token.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], err[1024], tok[SLUICE_CONFIG_ADMIN_TOKEN_MAX + 1];
    snprintf(path, sizeof path, "%s/token", dir);

    /* Absent key: no token, no error. */
    sluice_config *c = NULL;
    assert_int_equal(
        sluice_config_load_string(TWO_POOLS, strlen(TWO_POOLS), "sluice.yaml", &NO_ENV, &c, err, sizeof err),
        SLUICE_OK);
    assert_null(c->service.admin_token_file);
    strcpy(tok, "stale");
    assert_int_equal(sluice_config_admin_token(c, tok, sizeof tok, err, sizeof err), SLUICE_OK);
    assert_string_equal(tok, "");
    sluice_config_free(c);

    /* The token, with its newline, CR and trailing blanks dropped; blank
     * lines after it are fine. The written config holds the path only. */
    write_file(path, "s3cr-et_T0k~en+/=\r\n\n", 20);
    c = with_token_file(path);
    assert_string_equal(c->service.admin_token_file, path);
    assert_int_equal(sluice_config_admin_token(c, tok, sizeof tok, err, sizeof err), SLUICE_OK);
    assert_string_equal(tok, "s3cr-et_T0k~en+/=");
    char *printed = NULL;
    size_t printed_len = 0;
    FILE *mem = open_memstream(&printed, &printed_len);
    assert_non_null(mem);
    assert_int_equal(sluice_config_write(c, mem), SLUICE_OK);
    fclose(mem);
    assert_non_null(strstr(printed, "admin_token_file: "));
    assert_non_null(strstr(printed, path));
    assert_null(strstr(printed, "s3cr"));
    free(printed);

    /* The longest token, exactly. */
    char big[SLUICE_CONFIG_ADMIN_TOKEN_MAX + 2];
    memset(big, 'a', SLUICE_CONFIG_ADMIN_TOKEN_MAX);
    big[SLUICE_CONFIG_ADMIN_TOKEN_MAX] = '\n';
    write_file(path, big, SLUICE_CONFIG_ADMIN_TOKEN_MAX + 1);
    assert_int_equal(sluice_config_admin_token(c, tok, sizeof tok, err, sizeof err), SLUICE_OK);
    assert_int_equal(strlen(tok), SLUICE_CONFIG_ADMIN_TOKEN_MAX);
    /* One more is refused, and a buffer too small for it too. */
    write_file(path, big, SLUICE_CONFIG_ADMIN_TOKEN_MAX);
    char small[8];
    assert_int_equal(sluice_config_admin_token(c, small, sizeof small, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(small, "");
    memset(big, 'b', sizeof big);
    write_file(path, big, SLUICE_CONFIG_ADMIN_TOKEN_MAX + 1);
    assert_int_equal(sluice_config_admin_token(c, tok, sizeof tok, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "service.admin_token_file: "));
    assert_non_null(strstr(err, "the token has 257 characters, at most 256"));
    assert_string_equal(tok, "");

    /* Oversized: a file that cannot be a token file (a log named by
     * mistake) is refused without being read whole. */
    static char huge[64 * 1024];
    memset(huge, 'x', sizeof huge);
    write_file(path, huge, sizeof huge);
    assert_int_equal(sluice_config_admin_token(c, tok, sizeof tok, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "more than 320 bytes"));
    assert_null(strstr(err, "xxxx")); /* never the content */

    /* Empty, a second line, a bad character (named by position only). */
    write_file(path, "\n", 1);
    assert_int_equal(sluice_config_admin_token(c, tok, sizeof tok, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "empty"));
    write_file(path, "tok\nother\n", 10);
    assert_int_equal(sluice_config_admin_token(c, tok, sizeof tok, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "more than one line"));
    write_file(path, "ab:cd\n", 6);
    assert_int_equal(sluice_config_admin_token(c, tok, sizeof tok, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "character 3 of the token is not allowed"));
    assert_null(strstr(err, "ab:cd"));
    write_file(path, "ab\0cd\n", 6);
    assert_int_equal(sluice_config_admin_token(c, tok, sizeof tok, err, sizeof err), SLUICE_EINVAL);
    assert_non_null(strstr(err, "NUL byte"));

    /* Unreadable: a directory (fopen succeeds on Linux, the read fails),
     * and missing. */
    sluice_config_free(c);
    c = with_token_file(dir);
    assert_int_equal(sluice_config_admin_token(c, tok, sizeof tok, err, sizeof err), SLUICE_EIO);
    assert_non_null(strstr(err, "service.admin_token_file: "));
    assert_non_null(strstr(err, "Is a directory"));
    sluice_config_free(c);
    unlink(path);
    c = with_token_file(path);
    assert_int_equal(sluice_config_admin_token(c, tok, sizeof tok, err, sizeof err), SLUICE_EIO);
    char want[512];
    snprintf(want, sizeof want, "service.admin_token_file: %s: No such file or directory", path);
    assert_string_equal(err, want);
    sluice_config_free(c);
    rmdir(dir);

    /* An empty path is refused at load, at its position. */
    static const char EMPTY[] = "service:\n  admin_token_file: \"\"\npools:\n  - name: a\n    workers: 1\n"
                                "    queue_capacity: 2\n";
    c = NULL;
    assert_int_equal(
        sluice_config_load_string(EMPTY, strlen(EMPTY), "sluice.yaml", &NO_ENV, &c, err, sizeof err),
        SLUICE_EINVAL);
    assert_null(c);
    assert_non_null(strstr(err, "sluice.yaml:2:"));
    assert_non_null(strstr(err, "admin_token_file"));
    assert_non_null(strstr(err, "must be a file path, got \"\""));

    /* The environment names a file too, as for every service key. */
    const char *envp[] = {"SLUICE_SERVICE_ADMIN_TOKEN_FILE=/run/secrets/admin", NULL};
    sluice_config_load_opts eo = {.envp = envp};
    assert_int_equal(
        sluice_config_load_string(TWO_POOLS, strlen(TWO_POOLS), "sluice.yaml", &eo, &c, err, sizeof err),
        SLUICE_OK);
    assert_string_equal(c->service.admin_token_file, "/run/secrets/admin");
    sluice_config_free(c);

    /* NULLs. */
    assert_int_equal(sluice_config_admin_token(NULL, tok, sizeof tok, err, sizeof err), SLUICE_EINVAL);
    assert_int_equal(sluice_config_read_token_file(NULL, NULL, tok, sizeof tok, err, sizeof err),
                     SLUICE_EINVAL);
    assert_non_null(strstr(err, "token file: no path"));
}

/* A pool with concurrency_*, autotune* and probe_* keys gets a controller
 * from the service, with no code: its limit, bounds and probes are the
 * file's; a pool without them gets none. Bad values are refused at load
 * with the key named (issue 14). */
static void test_control_from_config(void **state)
{
    (void)state;
    static const char text[] = "pools:\n"
                               "  - name: email\n"
                               "    workers: 16\n"
                               "    queue_capacity: 100\n"
                               "    concurrency_mode: gradient2\n"
                               "    concurrency_min: 2\n"
                               "    concurrency_max: 64\n"
                               "    concurrency_interval: 500ms\n"
                               "    autotune: true\n"
                               "    autotune_cooldown: 2s\n"
                               "    autotune_max_step: 4\n"
                               "    probe_every: 10s\n"
                               "    probe_timeout: 2s\n"
                               "    probe_affects_ready: true\n"
                               "  - name: plain\n"
                               "    workers: 2\n"
                               "    queue_capacity: 10\n";
    sluice_config *cfg = load(text);
    sluice_pool_control_config cc;
    assert_true(sluice_config_pool_to_control_config(&cfg->pools[0], &cc));
    assert_int_equal(cc.mode, SLUICE_CONTROL_GRADIENT2);
    assert_int_equal(cc.min_limit, 2);
    assert_int_equal(cc.max_limit, 64);
    assert_int_equal(cc.interval_ns, 500 * SLUICE_NS_PER_MS);
    assert_true(cc.autotune);
    assert_int_equal(cc.max_step, 4);
    assert_int_equal(cc.probe_every_ns, 10 * SLUICE_NS_PER_SEC);
    assert_true(cc.probe_affects_ready);
    assert_false(sluice_config_pool_to_control_config(&cfg->pools[1], &cc));
    assert_int_equal(cc.max_limit, 2); /* defaults to workers */

    sluice_service_config base;
    sluice_service_config_init(&base);
    base.no_signals = true;
    base.log = quiet;
    sluice_service *svc = NULL;
    char err[512];
    assert_int_equal(sluice_service_create_from_config(cfg, &base, NULL, NULL, &svc, err, sizeof err),
                     SLUICE_OK);
    sluice_pool_control_stats cs;
    assert_int_equal(sluice_service_control_stats(svc, sluice_service_find_pool(svc, "email"), &cs),
                     SLUICE_OK);
    assert_int_equal(cs.mode, SLUICE_CONTROL_GRADIENT2);
    assert_true(cs.autotune);
    assert_true(cs.probes_enabled);
    assert_true(cs.probe_affects_ready);
    assert_int_equal(sluice_service_control_stats(svc, sluice_service_find_pool(svc, "plain"), &cs),
                     SLUICE_ENOENT);
    /* Pin and release through the service. */
    sluice_pool *email = sluice_service_find_pool(svc, "email");
    assert_int_equal(sluice_service_control_pin(svc, email, 7), SLUICE_OK);
    assert_int_equal(sluice_service_control_stats(svc, email, &cs), SLUICE_OK);
    assert_true(cs.pinned);
    assert_int_equal(cs.limit, 7);
    assert_int_equal(sluice_service_control_release(svc, email), SLUICE_OK);
    assert_int_equal(sluice_service_control_release(svc, email), SLUICE_ENOENT);
    assert_int_equal(sluice_service_control_release(svc, sluice_service_find_pool(svc, "plain")),
                     SLUICE_ENOENT);
    sluice_service_destroy(svc);
    sluice_config_free(cfg);

    /* The nested form (issue 14's `concurrency: {mode, min, max, ...}`)
     * sets the same keys as the flat one. */
    static const char nested[] = "pools:\n"
                                 "  - name: email\n"
                                 "    workers: 16\n"
                                 "    queue_capacity: 100\n"
                                 "    concurrency:\n"
                                 "      mode: gradient2\n"
                                 "      min: 2\n"
                                 "      max: 64\n"
                                 "      interval: 500ms\n"
                                 "  - name: flow\n"
                                 "    workers: 8\n"
                                 "    queue_capacity: 10\n"
                                 "    concurrency: {mode: vegas, max: 1}\n";
    cfg = load(nested);
    assert_true(sluice_config_pool_to_control_config(&cfg->pools[0], &cc));
    assert_int_equal(cc.mode, SLUICE_CONTROL_GRADIENT2);
    assert_int_equal(cc.min_limit, 2);
    assert_int_equal(cc.max_limit, 64);
    assert_int_equal(cc.interval_ns, 500 * SLUICE_NS_PER_MS);
    assert_true(sluice_config_pool_to_control_config(&cfg->pools[1], &cc));
    assert_int_equal(cc.mode, SLUICE_CONTROL_VEGAS);
    assert_int_equal(cc.min_limit, 0); /* not given: the controller's default */
    assert_int_equal(cc.max_limit, 1);
    sluice_config_free(cfg);

    static const struct {
        const char *lines;
        const char *want;
    } bad[] = {
        {"    autotune: true\n    autotune_util_low: 0.95\n",
         "pools[0].autotune_util_low: must be >= 0 and < util_high"},
        {"    autotune: true\n    autotune_hysteresis: 1.5\n",
         "pools[0].autotune_hysteresis: must be in (0, 1)"},
        {"    concurrency_mode: vegas\n    concurrency_min: 20\n    concurrency_max: 10\n",
         "pools[0].concurrency_max: must be >= min_limit"},
        {"    concurrency_mode: tcp\n", "pools[0].concurrency_mode"},
        {"    probe_timeout: 2s\n", "pools[0].probe_timeout: needs probe_every"},
        {"    min_workers: 4\n    concurrency_mode: aimd\n    concurrency_min: 2\n",
         "pools[0].concurrency_min: must be >= the pool's min_workers"},
        /* The nested form: its subkeys, its bounds, its shape. */
        {"    concurrency: {mode: aimd, step: 2}\n",
         "sluice.yaml:5:31: pools[0].concurrency.step: unknown key (known: mode, min, max, interval)"},
        {"    concurrency: {mode: vegas, min: 20, max: 10}\n",
         "pools[0].concurrency_max: must be >= min_limit"},
        {"    concurrency: {mode: tcp}\n", "pools[0].concurrency_mode"},
        {"    concurrency: aimd\n", "pools[0].concurrency: must be a mapping (key: value lines), got"},
        {"    concurrency_min: 2\n    concurrency: {mode: aimd, min: 3}\n",
         "pools[0].concurrency.min: given twice (also as pools[0].concurrency_min)"},
        {"    concurrency:\n      mode: aimd\n      max: 6\n    concurrency_max: 7\n",
         "pools[0].concurrency_max: given twice (also as pools[0].concurrency.max)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char doc[512];
        snprintf(doc, sizeof doc, "pools:\n  - name: p\n    workers: 8\n    queue_capacity: 10\n%s",
                 bad[i].lines);
        sluice_config *c = NULL;
        char why[1024] = "";
        assert_int_equal(
            sluice_config_load_string(doc, strlen(doc), "sluice.yaml", &NO_ENV, &c, why, sizeof why),
            SLUICE_EINVAL);
        if (!strstr(why, bad[i].want)) {
            fprintf(stderr, "case %zu: want \"%s\" in: %s\n", i, bad[i].want, why);
        }
        assert_non_null(strstr(why, bad[i].want));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_from_config),
        cmocka_unit_test(test_create_all_or_nothing),
        cmocka_unit_test(test_reload_reaches_pools_and_budget),
        cmocka_unit_test(test_admin_token_file),
        cmocka_unit_test(test_control_from_config),
        cmocka_unit_test(test_control_reload),
        cmocka_unit_test(test_control_reload_keeps_program_controller),
        cmocka_unit_test(test_control_removed_while_draining),
        cmocka_unit_test(test_reload_refused_midway_still_reaches_service),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

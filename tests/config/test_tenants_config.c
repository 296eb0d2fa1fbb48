/*
 * tests/config/test_tenants_config.c - tenants and tiers in sluice.yaml:
 * the `tenants:` table (a list of mappings parsed through the schema's
 * rows), `queue_discipline`, `tier`, the exact messages for bad input,
 * the writer's round trip, reload (live for a fair pool's list, restart for
 * a tier's names), and the router built
 * from a config (sluice_router_create_from_config).
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

#include "sluice/config.h"
#include "sluice/pool.h"
#include "sluice/tenant.h"

#include "core/internal.h" /* sluice__fair_tenant_calloc: the allocation fault hook */

static const sluice_config_load_opts NO_ENV = {.no_env = true};

static sluice_err load(const char *text, const sluice_config_load_opts *opts, sluice_config **out, char *err,
                       size_t len)
{
    return sluice_config_load_string(text, strlen(text), "sluice.yaml", opts ? opts : &NO_ENV, out, err, len);
}

/* The case study's tiers: premium for the big customer alone, standard
 * for B-E, free (fair among its many small tenants) for everyone else. */
static const char TIERS[] = "pools:\n"
                            "  - name: transcribe-premium\n"
                            "    workers: 32\n"
                            "    queue_capacity: 500\n"
                            "    tier: premium\n"
                            "    tenants:\n"
                            "      - name: acme\n"
                            "  - name: transcribe-standard\n"
                            "    workers: 16\n"
                            "    queue_capacity: 400\n"
                            "    tier: standard\n"
                            "    queue_discipline: fair\n"
                            "    tenants:\n"
                            "      - {name: b, weight: 2}\n"
                            "      - {name: c, weight: 1, queued_limit: 100, overflow: drop_oldest}\n"
                            "      - name: d\n"
                            "        running_limit: 4\n"
                            "        strict: true\n"
                            "      - name: e\n"
                            "  - name: transcribe-free\n"
                            "    workers: 8\n"
                            "    queue_capacity: 200\n"
                            "    tier: free\n"
                            "    queue_discipline: fair\n"
                            "    tenants:\n"
                            "      - name: \"*\"\n"
                            "        queued_limit: 20\n"
                            "        running_limit: 2\n";

static void test_parse_tiers(void **state)
{
    (void)state;
    sluice_config *c = NULL;
    char err[2048];
    assert_int_equal(load(TIERS, NULL, &c, err, sizeof err), SLUICE_OK);
    assert_string_equal(err, "");
    assert_int_equal(c->pool_count, 3);
    const sluice_config_pool *prem = &c->pools[0], *std = &c->pools[1], *fr = &c->pools[2];
    assert_int_equal(prem->queue_discipline, SLUICE_QUEUE_FIFO);
    assert_string_equal(prem->tier, "premium");
    assert_int_equal(prem->tenant_count, 1);
    assert_string_equal(prem->tenants[0].name, "acme");
    assert_int_equal(prem->tenants[0].weight, 1); /* default */
    assert_int_equal(std->queue_discipline, SLUICE_QUEUE_FAIR);
    assert_int_equal(std->tenant_count, 4);
    assert_int_equal(std->tenants[0].weight, 2);
    assert_int_equal(std->tenants[1].queued_limit, 100);
    assert_int_equal(std->tenants[1].overflow, SLUICE_TENANT_OVERFLOW_DROP_OLDEST);
    assert_int_equal(std->tenants[0].overflow, SLUICE_TENANT_OVERFLOW_REJECT);
    assert_int_equal(std->tenants[2].running_limit, 4);
    assert_true(std->tenants[2].strict);
    assert_false(std->tenants[3].strict);
    /* Positions: the item and each key. */
    assert_int_equal(std->tenants[2].entry_pos.line, 16);
    assert_int_equal(std->tenants[2].pos[SLUICE_TK_RUNNING_LIMIT].line, 17);
    assert_int_equal(std->tenants[2].pos[SLUICE_TK_RUNNING_LIMIT].column, 24);
    assert_true((std->tenants[0].set >> SLUICE_TK_WEIGHT) & 1u);
    assert_false((std->tenants[3].set >> SLUICE_TK_WEIGHT) & 1u);
    /* Look-ups: by name, then the "*" entry, else none. */
    assert_ptr_equal(sluice_config_pool_tenant(std, "c"), &std->tenants[1]);
    assert_null(sluice_config_pool_tenant(std, "zz"));
    assert_ptr_equal(sluice_config_pool_tenant(fr, "zz"), &fr->tenants[0]);
    assert_int_equal(sluice_config_pool_tenant(fr, "zz")->queued_limit, 20);
    assert_null(sluice_config_pool_tenant(NULL, "zz"));
    sluice_config_free(c);
}

typedef struct bad_case {
    const char *text;
    const char *want;
} bad_case;

#define POOL_HEAD "pools:\n  - name: p\n    workers: 4\n    queue_capacity: 10\n"

static void test_bad_input(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {POOL_HEAD "    queue_discipline: wfq\n", "sluice.yaml:5:23: pools[0].queue_discipline: must be one "
                                                  "of fifo, fair, sharded, fifo_batch, got \"wfq\""},
        {POOL_HEAD "    queue_discipline: fair\n    tenants: acme\n",
         "sluice.yaml:6:14: pools[0].tenants: must be a list of mappings (\"- name: ...\" items), got a "
         "scalar"},
        {POOL_HEAD "    queue_discipline: fair\n    tenants:\n      - acme\n",
         "sluice.yaml:7:9: pools[0].tenants[0]: must be a mapping (name: ..., and the keys of tenants), got "
         "a "
         "scalar"},
        {POOL_HEAD "    queue_discipline: fair\n    tenants:\n      - weight: 2\n",
         "sluice.yaml:7:9: pools[0].tenants[0].name: required"},
        {POOL_HEAD "    queue_discipline: fair\n    tenants:\n      - {name: a, wieght: 2}\n",
         "sluice.yaml:7:19: pools[0].tenants[0].wieght (tenant \"a\"): unknown key (known: name, weight, "
         "queued_limit, "
         "running_limit, strict, overflow)"},
        {POOL_HEAD "    queue_discipline: fair\n    tenants:\n      - {name: a, weight: 0}\n",
         "sluice.yaml:7:27: pools[0].tenants[0].weight (tenant \"a\"): must be > 0 (a tenant of weight 0 "
         "would never be "
         "served), got 0"},
        {POOL_HEAD "    queue_discipline: fair\n    tenants:\n      - {name: a, weight: 10001}\n",
         "sluice.yaml:7:27: pools[0].tenants[0].weight (tenant \"a\"): must be <= 10000, got 10001"},
        {POOL_HEAD "    queue_discipline: fair\n    tenants:\n      - {name: a, strict: true}\n",
         "sluice.yaml:7:27: pools[0].tenants[0].strict (tenant \"a\"): needs running_limit (strict says how "
         "the running "
         "limit "
         "holds; there is none)"},
        {POOL_HEAD "    queue_discipline: fair\n    tenants:\n      - {name: a, queued_limit: 11}\n",
         "sluice.yaml:7:33: pools[0].tenants[0].queued_limit (tenant \"a\"): must be <= queue_capacity (10), "
         "got 11"},
        {POOL_HEAD "    queue_discipline: fair\n    tenants:\n      - {name: a, running_limit: 5}\n",
         "sluice.yaml:7:34: pools[0].tenants[0].running_limit (tenant \"a\"): must be <= workers (4), got 5"},
        {POOL_HEAD "    queue_discipline: fair\n    tenants:\n      - {name: a}\n      - {name: a}\n",
         "sluice.yaml:8:16: pools[0].tenants[1].name: duplicate tenant \"a\" (also tenants[0])"},
        {POOL_HEAD "    queue_discipline: fair\n    tenants:\n      - {name: \"a b\"}\n",
         "sluice.yaml:7:16: pools[0].tenants[0].name: must be 1..64 characters of [A-Za-z0-9_.:-] (or \"*\" "
         "for "
         "every other tenant), got \"a b\""},
        {POOL_HEAD "    tenants:\n      - {name: a}\n",
         "sluice.yaml:6:7: pools[0].tenants: a fifo pool serves tasks in arrival order whatever their "
         "tenant: "
         "set queue_discipline: fair (or a tier, to route these tenants to this pool)"},
        {POOL_HEAD "    tier: gold\n    tenants:\n      - {name: a, weight: 3}\n",
         "sluice.yaml:7:27: pools[0].tenants[0].weight (tenant \"a\"): applies only to queue_discipline: "
         "fair (this pool is "
         "fifo: its tenants are listed only for the router)"},
        {POOL_HEAD "    tier: gold\n"
                   "  - name: q\n    workers: 1\n    queue_capacity: 1\n    tier: gold\n",
         "sluice.yaml:9:11: pools[1].tier: tier \"gold\" is already served by pools[0] (p); a tier is one "
         "pool"},
        {POOL_HEAD
         "    tier: gold\n    tenants: [{name: a}]\n"
         "  - name: q\n    workers: 1\n    queue_capacity: 1\n    tier: silver\n    tenants: [{name: a}]\n",
         "sluice.yaml:11:22: pools[1].tenants[0].name: tenant \"a\" is already in tier gold (pools[0]); a "
         "tenant "
         "has one tier"},
        {POOL_HEAD "    tier: gold\n    tenants: [{name: \"*\"}]\n"
                   "  - name: q\n    workers: 1\n    queue_capacity: 1\n    tier: silver\n    tenants: "
                   "[{name: \"*\"}]\n",
         "sluice.yaml:11:22: pools[1].tenants[0].name: \"*\" (unknown tenants) is already routed to tier "
         "gold "
         "(pools[0]); one tier takes them"},
        {POOL_HEAD "    tier: gold\n    tenants: [{name: silver}]\n"
                   "  - name: q\n    workers: 1\n    queue_capacity: 1\n    tier: silver\n",
         "sluice.yaml:6:22: pools[0].tenants[0].name: \"silver\" is also a tier (pools[1]): the router could "
         "not "
         "tell them apart"},
        {POOL_HEAD "    max_tenants: 10\n",
         "sluice.yaml:5:18: pools[0].max_tenants: applies only to queue_discipline: fair"},
        {POOL_HEAD "    queue_discipline: fair\n    tenant_shard_queues: 4\n    tenant_hand_size: 8\n",
         "sluice.yaml:7:23: pools[0].tenant_hand_size: must be <= tenant_shard_queues (4), got 8"},
        {POOL_HEAD "    queue_discipline: fair\n    tenants: [{name: a, overflow: block}]\n",
         "sluice.yaml:6:35: pools[0].tenants[0].overflow (tenant \"a\"): must be one of reject, drop_oldest, "
         "got \"block\""},
        {POOL_HEAD "    tier: \"gold tier\"\n",
         "sluice.yaml:5:11: pools[0].tier: must be 1..48 characters of [A-Za-z0-9_.:-], got \"gold tier\""},
    };
    bool failed = false;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sluice_config *c = NULL;
        char err[2048];
        sluice_err r = load(cases[i].text, NULL, &c, err, sizeof err);
        if (r != SLUICE_EINVAL || strcmp(err, cases[i].want) != 0) {
            print_error("case %zu: got %d \"%s\"\nwant \"%s\"\n", i, (int)r, err, cases[i].want);
            failed = true;
            sluice_config_free(c);
            continue;
        }
        assert_null(c);
    }
    assert_false(failed);
}

/* Every key of a tenant entry at its extremes: each message names the
 * key (its path) and the tenant, whatever the order of the keys in the
 * entry, for a later entry and for the "*" entry too. */
static void test_bad_fields_name_field_and_tenant(void **state)
{
    (void)state;
#define FAIR_TENANTS POOL_HEAD "    queue_discipline: fair\n    tenants:\n"
    static const bad_case cases[] = {
        {FAIR_TENANTS "      - {name: gold, weight: 0}\n", "pools[0].tenants[0].weight (tenant \"gold\"): "},
        {FAIR_TENANTS "      - {name: gold, weight: 10001}\n",
         "pools[0].tenants[0].weight (tenant \"gold\"): "},
        {FAIR_TENANTS "      - {name: gold, weight: 4294967296}\n",
         "pools[0].tenants[0].weight (tenant \"gold\"): "},
        {FAIR_TENANTS "      - {name: gold, weight: 18446744073709551616}\n",
         "pools[0].tenants[0].weight (tenant \"gold\"): "},
        {FAIR_TENANTS "      - {name: gold, weight: -1}\n", "pools[0].tenants[0].weight (tenant \"gold\"): "},
        {FAIR_TENANTS "      - {name: gold, weight: heavy}\n",
         "pools[0].tenants[0].weight (tenant \"gold\"): "},
        {FAIR_TENANTS "      - {weight: 0, name: gold}\n", "pools[0].tenants[0].weight (tenant \"gold\"): "},
        {FAIR_TENANTS "      - {name: gold, queued_limit: 11}\n",
         "pools[0].tenants[0].queued_limit (tenant \"gold\"): "},
        {FAIR_TENANTS "      - {name: gold, queued_limit: 99999999999999999999}\n",
         "pools[0].tenants[0].queued_limit (tenant \"gold\"): "},
        {FAIR_TENANTS "      - {name: gold, queued_limit: -1}\n",
         "pools[0].tenants[0].queued_limit (tenant \"gold\"): "},
        {FAIR_TENANTS "      - {name: gold, running_limit: 5}\n",
         "pools[0].tenants[0].running_limit (tenant \"gold\"): "},
        {FAIR_TENANTS "      - {name: gold, running_limit: 4294967296}\n",
         "pools[0].tenants[0].running_limit (tenant \"gold\"): "},
        {FAIR_TENANTS "      - {name: gold, running_limit: -1}\n",
         "pools[0].tenants[0].running_limit (tenant \"gold\"): "},
        {FAIR_TENANTS "      - {name: gold, strict: maybe}\n",
         "pools[0].tenants[0].strict (tenant \"gold\"): "},
        {FAIR_TENANTS "      - {name: gold, strict: true}\n",
         "pools[0].tenants[0].strict (tenant \"gold\"): "},
        {FAIR_TENANTS "      - {name: gold, overflow: block}\n",
         "pools[0].tenants[0].overflow (tenant \"gold\"): "},
        {FAIR_TENANTS "      - {name: gold, overflow: \"\"}\n",
         "pools[0].tenants[0].overflow (tenant \"gold\"): "},
        {FAIR_TENANTS "      - {name: gold, colour: red}\n",
         "pools[0].tenants[0].colour (tenant \"gold\"): "},
        {FAIR_TENANTS "      - {name: gold}\n      - {name: silver, weight: 0}\n",
         "pools[0].tenants[1].weight (tenant \"silver\"): "},
        {FAIR_TENANTS "      - {name: \"*\", weight: 0}\n", "pools[0].tenants[0].weight (tenant \"*\"): "},
        /* A bad name and a bad weight: both said, the name shown safely. */
        {FAIR_TENANTS "      - {name: \"a b\", weight: 0}\n",
         "pools[0].tenants[0].weight (tenant \"a?b\"): "},
        /* The name itself: the message shows what was given. */
        {FAIR_TENANTS "      - {name: \"\"}\n", "pools[0].tenants[0].name: must be 1..64 characters"},
        {FAIR_TENANTS "      - {name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}\n",
         "pools[0].tenants[0].name: must be 1..64 characters of [A-Za-z0-9_.:-] (or \"*\" for every other "
         "tenant), got \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""},
        {FAIR_TENANTS "      - {name: gold}\n      - {name: gold}\n",
         "pools[0].tenants[1].name: duplicate tenant \"gold\""},
        /* A fifo tier pool: the keys that need fair. */
        {POOL_HEAD "    tier: t\n    tenants:\n      - {name: gold, running_limit: 2}\n",
         "pools[0].tenants[0].running_limit (tenant \"gold\"): applies only to queue_discipline: fair"},
    };
#undef FAIR_TENANTS
    bool failed = false;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sluice_config *c = NULL;
        char err[2048];
        sluice_err r = load(cases[i].text, NULL, &c, err, sizeof err);
        if (r != SLUICE_EINVAL || !strstr(err, cases[i].want)) {
            print_error("case %zu: got %d \"%s\"\nwant it to contain \"%s\"\n", i, (int)r, err,
                        cases[i].want);
            failed = true;
        }
        sluice_config_free(c);
    }
    assert_false(failed);
}

/* One entry with more complaints than the error buffer holds (twelve
 * unknown keys of 900 bytes, each quoted back): the labels take room the
 * last lines had, and those lines are dropped whole, never cut or
 * overrun. */
static void test_labels_fill_the_error_buffer(void **state)
{
    (void)state;
    char junk[901];
    memset(junk, 'k', sizeof junk - 1);
    junk[sizeof junk - 1] = '\0';
    size_t cap = 12 * 1000 + 512;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t n = (size_t)snprintf(text, cap, "%s", POOL_HEAD "    queue_discipline: fair\n    tenants:\n");
    n += (size_t)snprintf(text + n, cap - n, "      - name: t%063d\n", 0);
    for (int i = 0; i < 12; i++) {
        n += (size_t)snprintf(text + n, cap - n, "        %02d%s: 1\n", i, junk);
    }
    sluice_config *c = NULL;
    char err[32768];
    assert_int_equal(load(text, NULL, &c, err, sizeof err), SLUICE_EINVAL);
    assert_null(c);
    assert_true(strlen(err) < 8192 + 256); /* the error buffer, and a summary line */
    size_t labelled = 0;
    for (char *line = err; line && *line;) {
        char *next = strchr(line, '\n');
        if (next) {
            *next++ = '\0';
        }
        if (strncmp(line, "sluice.yaml:", 12) == 0) {
            assert_non_null(strstr(line,
                                   ": unknown key (known: name, weight, queued_limit, running_limit, strict, "
                                   "overflow)")); /* whole */
            assert_non_null(strstr(line, "(tenant \"t0000"));
            labelled++;
        }
        line = next;
    }
    assert_true(labelled >= 2 && labelled < 12);
    free(text);
}

static void test_env_cannot_set_a_table(void **state)
{
    (void)state;
    const char *env[] = {"SLUICE_POOL_P_TENANTS=acme", NULL};
    sluice_config_load_opts o = {.envp = env};
    sluice_config *c = NULL;
    char err[2048];
    assert_int_equal(load(POOL_HEAD, &o, &c, err, sizeof err), SLUICE_EINVAL);
    assert_string_equal(err,
                        "env SLUICE_POOL_P_TENANTS: pools[0].tenants: must be a list of mappings (\"- name: "
                        "...\" items), set in the file; got \"acme\"");
    /* The scalar keys still take overrides. */
    const char *env2[] = {"SLUICE_POOL_P_QUEUE_DISCIPLINE=fair", NULL};
    o.envp = env2;
    assert_int_equal(load(POOL_HEAD, &o, &c, err, sizeof err), SLUICE_OK);
    assert_int_equal(c->pools[0].queue_discipline, SLUICE_QUEUE_FAIR);
    sluice_config_free(c);
}

static char *write_to_string(const sluice_config *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(sluice_config_write(c, f), SLUICE_OK);
    fclose(f);
    return text;
}

static void test_write_round_trip(void **state)
{
    (void)state;
    sluice_config *c = NULL, *c2 = NULL;
    char err[2048];
    assert_int_equal(load(TIERS, NULL, &c, err, sizeof err), SLUICE_OK);
    char *a = write_to_string(c);
    assert_non_null(strstr(a, "    tenants:\n      - name: \"b\"\n        weight: 2\n      - name: \"c\"\n"));
    if (load(a, NULL, &c2, err, sizeof err) != SLUICE_OK) {
        print_error("%s\n---\n%s\n", err, a);
        fail();
    }
    char *b = write_to_string(c2);
    assert_string_equal(a, b);
    assert_int_equal(c2->pools[1].tenant_count, 4);
    assert_int_equal(c2->pools[1].tenants[2].running_limit, 4);
    assert_string_equal(c2->pools[2].tenants[0].name, "*");
    assert_string_equal(c2->pools[2].tier, "free");
    free(a);
    free(b);
    sluice_config_free(c);
    sluice_config_free(c2);
}

typedef struct log_buf {
    char text[4096];
    size_t len;
} log_buf;

static void log_line(void *user, const char *line)
{
    log_buf *lb = user;
    int n = snprintf(lb->text + lb->len, sizeof lb->text - lb->len, "%s\n", line);
    if (n > 0 && (size_t)n < sizeof lb->text - lb->len) {
        lb->len += (size_t)n;
    }
}

/* The discipline and the tier are fixed when the pools and the router
 * are built; a fair pool's tenants: list is live (checked on a real pool
 * in test_reload_tenants_live), and a tier pool's names wait for a
 * restart. */
static void test_reload_classes(void **state)
{
    (void)state;
    const char *a =
        "pools:\n  - name: p\n    workers: 4\n    queue_capacity: 10\n    queue_discipline: fair\n"
        "    tenants: [{name: a, weight: 2}]\n";
    const char *b = "pools:\n  - name: p\n    workers: 4\n    queue_capacity: 10\n    tier: gold\n"
                    "    tenants: [{name: a}, {name: b}]\n";
    sluice_config *cur = NULL, *next = NULL;
    char err[2048];
    assert_int_equal(load(a, NULL, &cur, err, sizeof err), SLUICE_OK);
    assert_int_equal(load(b, NULL, &next, err, sizeof err), SLUICE_OK);
    sluice_pool *pools[1] = {NULL};
    log_buf lb = {.len = 0};
    assert_int_equal(sluice_config_apply(&cur, next, pools, log_line, &lb, err, sizeof err), SLUICE_OK);
    assert_string_equal(lb.text,
                        "pool p: tenants [{name: a, weight: 2}] -> [{name: a}, {name: b}] (applied)\n"
                        "pool p: queue_discipline fair -> fifo not applied: needs a restart\n"
                        "pool p: tier  -> gold not applied: needs a restart\n");
    assert_int_equal(cur->pools[0].queue_discipline, SLUICE_QUEUE_FAIR);
    assert_int_equal(cur->pools[0].tenant_count, 2);
    assert_int_equal(cur->pools[0].tenants[0].weight, 1);
    assert_null(cur->pools[0].tier);
    sluice_config_free(next);
    sluice_config_free(cur);

    /* A tier pool: new weights are live, a change to its names is not. */
    const char *t1 =
        "pools:\n  - name: t\n    workers: 4\n    queue_capacity: 10\n    queue_discipline: fair\n"
        "    tier: gold\n    tenants: [{name: a, weight: 2}, {name: b}]\n";
    const char *t2 =
        "pools:\n  - name: t\n    workers: 4\n    queue_capacity: 10\n    queue_discipline: fair\n"
        "    tier: gold\n    tenants: [{name: a, weight: 3}, {name: b}]\n";
    const char *t3 =
        "pools:\n  - name: t\n    workers: 4\n    queue_capacity: 10\n    queue_discipline: fair\n"
        "    tier: gold\n    tenants: [{name: a, weight: 5}]\n";
    assert_int_equal(load(t1, NULL, &cur, err, sizeof err), SLUICE_OK);
    assert_int_equal(load(t2, NULL, &next, err, sizeof err), SLUICE_OK);
    lb.len = 0;
    lb.text[0] = '\0';
    assert_int_equal(sluice_config_apply(&cur, next, pools, log_line, &lb, err, sizeof err), SLUICE_OK);
    assert_string_equal(lb.text,
                        "pool t: tenants [{name: a, weight: 2}, {name: b}] -> [{name: a, weight: 3}, "
                        "{name: b}] (applied)\n");
    assert_int_equal(cur->pools[0].tenants[0].weight, 3);
    sluice_config_free(next);
    assert_int_equal(load(t3, NULL, &next, err, sizeof err), SLUICE_OK);
    lb.len = 0;
    lb.text[0] = '\0';
    assert_int_equal(sluice_config_apply(&cur, next, pools, log_line, &lb, err, sizeof err), SLUICE_OK);
    assert_string_equal(lb.text,
                        "pool t: tenants [{name: a, weight: 3}, {name: b}] -> [{name: a, weight: 5}] "
                        "not applied: needs a restart (tier gold's tenants changed: \"b\" removed; "
                        "the router is built at start)\n"
                        "reload: no change applied; 1 change needs a restart\n");
    assert_int_equal(cur->pools[0].tenant_count, 2); /* the running list stays in force, whole */
    assert_int_equal(cur->pools[0].tenants[0].weight, 3);
    sluice_config_free(next);
    sluice_config_free(cur);
}

static bool find_tenant(sluice_pool *p, const char *name, sluice_tenant_stats *out)
{
    sluice_tenant_stats all[16];
    size_t n = sluice_pool_tenants_get(p, all, 16);
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(all[i].name, name) == 0) {
            *out = all[i];
            return true;
        }
    }
    return false;
}

/* A reload moves a running fair pool's tenants to the new list: changed
 * weights and limits, new names, a dropped name back to the "*" values,
 * and new "*" values for every tenant not listed. */
static void test_reload_tenants_live(void **state)
{
    (void)state;
    const char *a =
        "pools:\n  - name: f\n    workers: 4\n    queue_capacity: 10\n    queue_discipline: fair\n"
        "    tenants:\n"
        "      - {name: keep, weight: 2, running_limit: 2}\n"
        "      - {name: same, weight: 4}\n"
        "      - {name: drop, weight: 9, queued_limit: 3}\n"
        "      - {name: \"*\", weight: 1}\n";
    const char *b =
        "pools:\n  - name: f\n    workers: 4\n    queue_capacity: 10\n    queue_discipline: fair\n"
        "    tenants:\n"
        "      - {name: keep, weight: 6, running_limit: 1, strict: true}\n"
        "      - {name: same, weight: 4}\n"
        "      - {name: new, weight: 8, overflow: drop_oldest, queued_limit: 2}\n"
        "      - {name: \"*\", weight: 3}\n";
    sluice_config *cur = NULL, *next = NULL;
    char err[2048];
    assert_int_equal(load(a, NULL, &cur, err, sizeof err), SLUICE_OK);
    assert_int_equal(load(b, NULL, &next, err, sizeof err), SLUICE_OK);
    sluice_pool_config pc;
    sluice_config_pool_to_pool_config(&cur->pools[0], &pc);
    sluice_pool *pool = NULL;
    assert_int_equal(sluice_pool_create(&pc, &pool, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_config_pool_set_tenants(&cur->pools[0], pool, err, sizeof err), SLUICE_OK);
    sluice_tenant *seen = NULL;
    assert_int_equal(sluice_pool_tenant_acquire(pool, "seen", &seen), SLUICE_OK);
    sluice_tenant_stats s;
    assert_true(find_tenant(pool, "seen", &s));
    assert_int_equal(s.config.weight, 1);

    sluice_pool *pools[1] = {pool};
    log_buf lb = {.len = 0};
    assert_int_equal(sluice_config_apply(&cur, next, pools, log_line, &lb, err, sizeof err), SLUICE_OK);
    assert_non_null(strstr(lb.text, "pool f: tenants [")); /* one line, whole lists */
    assert_non_null(strstr(lb.text, "] (applied)\n"));
    assert_true(find_tenant(pool, "keep", &s));
    assert_int_equal(s.config.weight, 6);
    assert_int_equal(s.config.running_limit, 1);
    assert_true(s.config.strict);
    assert_true(find_tenant(pool, "same", &s));
    assert_int_equal(s.config.weight, 4);
    assert_true(find_tenant(pool, "new", &s));
    assert_true(s.configured);
    assert_int_equal(s.config.weight, 8);
    assert_int_equal(s.config.queued_limit, 2);
    assert_int_equal(s.config.overflow, SLUICE_TENANT_OVERFLOW_DROP_OLDEST);
    assert_true(find_tenant(pool, "drop", &s));
    assert_false(s.configured); /* back to the "*" values, forgotten when idle */
    assert_int_equal(s.config.weight, 3);
    assert_int_equal(s.config.queued_limit, 0);
    assert_true(find_tenant(pool, "seen", &s));
    assert_int_equal(s.config.weight, 3);
    sluice_pool_config got;
    sluice_pool_config_get(pool, &got);
    assert_int_equal(got.fair.tenant_default.weight, 3);
    /* The config in force is the new file's list. */
    assert_int_equal(cur->pools[0].tenant_count, 4);

    /* A reload that changes nothing changes nothing. */
    lb.len = 0;
    lb.text[0] = '\0';
    assert_int_equal(sluice_config_apply(&cur, next, pools, log_line, &lb, err, sizeof err), SLUICE_OK);
    assert_string_equal(lb.text, "reload: no change\n");
    sluice_config_free(next);

    /* Draining: the tenants change fails, named in the error, and the
     * running list stays in force. */
    assert_int_equal(load(a, NULL, &next, err, sizeof err), SLUICE_OK);
    sluice_drain_report rep;
    assert_int_equal(sluice_pool_drain(pool, SLUICE_NS_PER_SEC, &rep), SLUICE_OK);
    assert_int_equal(sluice_config_apply(&cur, next, pools, log_line, &lb, err, sizeof err), SLUICE_ECLOSED);
    assert_non_null(strstr(err, "pool f: tenants"));
    assert_int_equal(cur->pools[0].tenant_count, 4);
    sluice_config_free(next);
    sluice_tenant_release(seen);
    sluice_pool_destroy(pool);
    sluice_config_free(cur);
}

/* A reload whose tenant setter refuses carries the setter's message in
 * the form a load error takes (position, path, which tenant), in the
 * error and the log line, for each of the three steps: a changed entry
 * (tenant_set), a dropped one (tenant_unset) and the "*" values
 * (tenant_default_set). The reload used to pass no buffer and said only
 * "pool is closed". The pool drains, so each step is refused first. */
static void test_reload_tenant_refusal_named(void **state)
{
    (void)state;
    const char *running =
        "pools:\n  - name: f\n    workers: 4\n    queue_capacity: 10\n    queue_discipline: fair\n"
        "    tenants:\n"
        "      - {name: a}\n"
        "      - {name: b}\n"
        "      - {name: gold, weight: 2}\n"
        "      - {name: \"*\", weight: 1}\n";
    static const struct {
        const char *next, *err, *log;
    } cases[] = {
        {/* gold's weight: tenant_set refuses */
         "pools:\n  - name: f\n    workers: 4\n    queue_capacity: 10\n    queue_discipline: fair\n"
         "    tenants:\n"
         "      - {name: a}\n"
         "      - {name: b}\n"
         "      - {name: gold, weight: 3}\n"
         "      - {name: \"*\", weight: 1}\n",
         "pool f: tenants to [{name: a}, {name: b}, {name: gold, weight: 3}, {name: *, weight: 1}] failed: "
         "sluice.yaml:9:9: pools[0].tenants[2] (tenant \"gold\"): pool f is draining; already changed: none",
         "pool f: tenants [{name: a}, {name: b}, {name: gold, weight: 2}, {name: *, weight: 1}] -> [{name: "
         "a}, "
         "{name: b}, {name: gold, weight: 3}, {name: *, weight: 1}] failed: sluice.yaml:9:9: "
         "pools[0].tenants[2] "
         "(tenant \"gold\"): pool f is draining\n"
         "reload: pool f: tenants failed and keeps its running value; nothing else changed\n"},
        {/* b dropped: tenant_unset refuses */
         "pools:\n  - name: f\n    workers: 4\n    queue_capacity: 10\n    queue_discipline: fair\n"
         "    tenants:\n"
         "      - {name: a}\n"
         "      - {name: gold, weight: 2}\n"
         "      - {name: \"*\", weight: 1}\n",
         "pool f: tenants to [{name: a}, {name: gold, weight: 2}, {name: *, weight: 1}] failed: "
         "sluice.yaml:7:7: "
         "pools[0].tenants (tenant \"b\", no longer listed): pool f is draining; already changed: none",
         NULL},
        {/* the "*" values: tenant_default_set refuses */
         "pools:\n  - name: f\n    workers: 4\n    queue_capacity: 10\n    queue_discipline: fair\n"
         "    tenants:\n"
         "      - {name: a}\n"
         "      - {name: b}\n"
         "      - {name: gold, weight: 2}\n"
         "      - {name: \"*\", weight: 5}\n",
         "pool f: tenants to [{name: a}, {name: b}, {name: gold, weight: 2}, {name: *, weight: 5}] "
         "failed: sluice.yaml:10:9: pools[0].tenants[3] (tenant \"*\"): pool f is draining; already changed: "
         "none",
         NULL},
    };
    sluice_config *cur = NULL, *next = NULL;
    char err[2048];
    assert_int_equal(load(running, NULL, &cur, err, sizeof err), SLUICE_OK);
    sluice_pool_config pc;
    sluice_config_pool_to_pool_config(&cur->pools[0], &pc);
    sluice_pool *pool = NULL;
    assert_int_equal(sluice_pool_create(&pc, &pool, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_config_pool_set_tenants(&cur->pools[0], pool, err, sizeof err), SLUICE_OK);
    sluice_drain_report rep;
    assert_int_equal(sluice_pool_drain(pool, SLUICE_NS_PER_SEC, &rep), SLUICE_OK);
    sluice_pool *pools[1] = {pool};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(load(cases[i].next, NULL, &next, err, sizeof err), SLUICE_OK);
        log_buf lb = {.len = 0};
        assert_int_equal(sluice_config_apply(&cur, next, pools, log_line, &lb, err, sizeof err),
                         SLUICE_ECLOSED);
        assert_string_equal(err, cases[i].err);
        if (cases[i].log) {
            assert_string_equal(lb.text, cases[i].log);
        }
        /* The last line says what failed, never "no change". */
        const char *last =
            "reload: pool f: tenants failed and keeps its running value; nothing else changed\n";
        assert_true(lb.len >= strlen(last));
        assert_string_equal(lb.text + lb.len - strlen(last), last);
        /* The running list stays in force. */
        assert_int_equal(cur->pools[0].tenant_count, 4);
        assert_int_equal(cur->pools[0].tenants[2].weight, 2);
        sluice_config_free(next);
    }
    sluice_pool_destroy(pool);
    sluice_config_free(cur);
}

/* The reload's last line after a refused row says which key failed and
 * what the rest did. A tenant list refused (the pool drains) next to a
 * submit_timeout that applies: "the other changes above applied"; two
 * pools refused: both named. It said "reload: no change" whenever
 * nothing else changed, after a "failed" line. */
static void test_reload_refusal_summary(void **state)
{
    (void)state;
    const char *running =
        "pools:\n  - name: f\n    workers: 4\n    queue_capacity: 10\n    queue_discipline: fair\n"
        "    tenants: [{name: gold, weight: 2}]\n"
        "  - name: g\n    workers: 4\n    queue_capacity: 10\n";
    const char *next_text =
        "pools:\n  - name: f\n    workers: 4\n    queue_capacity: 10\n    queue_discipline: fair\n"
        "    tenants: [{name: gold, weight: 3}]\n    submit_timeout: 2s\n"
        "  - name: g\n    workers: 6\n    queue_capacity: 10\n";
    sluice_config *cur = NULL, *next = NULL;
    char err[2048];
    assert_int_equal(load(running, NULL, &cur, err, sizeof err), SLUICE_OK);
    sluice_pool *pools[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        sluice_pool_config pc;
        sluice_config_pool_to_pool_config(&cur->pools[i], &pc);
        assert_int_equal(sluice_pool_create(&pc, &pools[i], err, sizeof err), SLUICE_OK);
    }
    assert_int_equal(sluice_config_pool_set_tenants(&cur->pools[0], pools[0], err, sizeof err), SLUICE_OK);
    sluice_drain_report rep;
    assert_int_equal(sluice_pool_drain(pools[0], SLUICE_NS_PER_SEC, &rep), SLUICE_OK);

    /* f's tenants fail, f's submit_timeout and g's K apply. */
    assert_int_equal(load(next_text, NULL, &next, err, sizeof err), SLUICE_OK);
    log_buf lb = {.len = 0};
    assert_int_equal(sluice_config_apply(&cur, next, pools, log_line, &lb, err, sizeof err), SLUICE_ECLOSED);
    const char *last = "reload: pool f: tenants failed and keeps its running value; the other changes above "
                       "applied\n";
    assert_true(lb.len >= strlen(last));
    assert_string_equal(lb.text + lb.len - strlen(last), last);
    assert_non_null(strstr(lb.text, "pool f: submit_timeout 0s -> 2s (applied)\n"));
    assert_non_null(strstr(lb.text, "pool g: workers 4 -> 6 (applied)\n"));
    assert_int_equal(cur->pools[0].tenants[0].weight, 2);
    assert_int_equal(cur->pools[1].workers, 6);
    sluice_config_free(next);

    /* Both pools refuse: f's tenants and g's K (g drains too). */
    assert_int_equal(sluice_pool_drain(pools[1], SLUICE_NS_PER_SEC, &rep), SLUICE_OK);
    const char *both =
        "pools:\n  - name: f\n    workers: 4\n    queue_capacity: 10\n    queue_discipline: fair\n"
        "    tenants: [{name: gold, weight: 3}]\n    submit_timeout: 2s\n"
        "  - name: g\n    workers: 8\n    queue_capacity: 10\n";
    assert_int_equal(load(both, NULL, &next, err, sizeof err), SLUICE_OK);
    lb.len = 0;
    lb.text[0] = '\0';
    assert_int_equal(sluice_config_apply(&cur, next, pools, log_line, &lb, err, sizeof err), SLUICE_ECLOSED);
    last = "reload: pool f: tenants, pool g: workers failed and keep their running values; nothing else "
           "changed\n";
    assert_true(lb.len >= strlen(last));
    assert_string_equal(lb.text + lb.len - strlen(last), last);
    assert_int_equal(cur->pools[1].workers, 6);
    sluice_config_free(next);

    /* f's tenants refused, and the only other change needs a restart:
     * nothing else applied, and the line says what waits. */
    const char *restart =
        "pools:\n  - name: f\n    workers: 4\n    queue_capacity: 10\n    queue_discipline: fair\n"
        "    tenants: [{name: gold, weight: 3}]\n    submit_timeout: 2s\n"
        "  - name: g\n    workers: 6\n    queue_capacity: 20\n";
    assert_int_equal(load(restart, NULL, &next, err, sizeof err), SLUICE_OK);
    lb.len = 0;
    lb.text[0] = '\0';
    assert_int_equal(sluice_config_apply(&cur, next, pools, log_line, &lb, err, sizeof err), SLUICE_ECLOSED);
    last = "pool g: queue_capacity 10 -> 20 not applied: needs a restart\n"
           "reload: pool f: tenants failed and keeps its running value; nothing else applied; 1 change "
           "needs a restart\n";
    assert_true(lb.len >= strlen(last));
    assert_string_equal(lb.text + lb.len - strlen(last), last);
    sluice_config_free(next);
    for (int i = 0; i < 2; i++) {
        sluice_pool_destroy(pools[i]);
    }
    sluice_config_free(cur);
}

/* ---- all or nothing --------------------------------------------------------------- */

/* The tenant allocator for the fault tests: calloc, except that the
 * fail_at-th call from now on fails (0: none). */
static unsigned alloc_calls, alloc_fail_at;
static void *failing_calloc(size_t count, size_t size)
{
    if (alloc_fail_at && ++alloc_calls == alloc_fail_at) {
        return NULL;
    }
    return calloc(count, size);
}

static const char *const AON_RUNNING =
    "pools:\n  - name: f\n    workers: 4\n    queue_capacity: 10\n    queue_discipline: fair\n"
    "    tenants:\n"
    "      - {name: keep, weight: 2}\n"
    "      - {name: drop, weight: 9}\n"
    "      - {name: \"*\", weight: 1}\n";
static const char *const AON_NEXT =
    "pools:\n  - name: f\n    workers: 4\n    queue_capacity: 10\n    queue_discipline: fair\n"
    "    tenants:\n"
    "      - {name: keep, weight: 6}\n"
    "      - {name: new1, weight: 8}\n"
    "      - {name: new2, weight: 5}\n"
    "      - {name: \"*\", weight: 3}\n";

/* The pool's tenants are the running list's, whole, or the next list's,
 * whole. Returns 0 for the running list, 1 for the next; fails the test
 * on a mix. */
static int tenants_state(sluice_pool *pool)
{
    sluice_tenant_stats s;
    sluice_pool_config got;
    sluice_pool_config_get(pool, &got);
    bool have_new1 = find_tenant(pool, "new1", &s) && s.configured;
    bool have_new2 = find_tenant(pool, "new2", &s) && s.configured;
    assert_true(find_tenant(pool, "keep", &s));
    unsigned keep = s.config.weight;
    assert_true(find_tenant(pool, "drop", &s));
    bool drop_set = s.configured;
    unsigned drop = s.config.weight;
    if (!have_new1 && !have_new2 && keep == 2 && drop_set && drop == 9 &&
        got.fair.tenant_default.weight == 1) {
        return 0;
    }
    if (have_new1 && have_new2 && keep == 6 && !drop_set && drop == 3 &&
        got.fair.tenant_default.weight == 3) {
        return 1;
    }
    print_error("a mix of the two lists: new1 %d new2 %d keep %u drop %s %u default %u\n", have_new1,
                have_new2, keep, drop_set ? "set" : "unset", drop, got.fair.tenant_default.weight);
    fail();
    return -1;
}

static sluice_pool *aon_pool(const sluice_config *cur)
{
    sluice_pool_config pc;
    sluice_config_pool_to_pool_config(&cur->pools[0], &pc);
    sluice_pool *pool = NULL;
    char err[512];
    assert_int_equal(sluice_pool_create(&pc, &pool, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_config_pool_set_tenants(&cur->pools[0], pool, err, sizeof err), SLUICE_OK);
    return pool;
}

/* A tenant list whose second new tenant cannot be allocated changes
 * nothing: not the "*" values, not the dropped name, not the changed or
 * the first new one. The reload made the steps one by one and stopped at
 * the refused one, leaving half the new list (issue: no rollback). Then,
 * with memory back, the same file moves the whole list. */
static void test_reload_tenants_all_or_nothing_on_enomem(void **state)
{
    (void)state;
    sluice_config *cur = NULL, *next = NULL;
    char err[2048];
    assert_int_equal(load(AON_RUNNING, NULL, &cur, err, sizeof err), SLUICE_OK);
    assert_int_equal(load(AON_NEXT, NULL, &next, err, sizeof err), SLUICE_OK);
    sluice_pool *pool = aon_pool(cur);
    sluice_pool *pools[1] = {pool};
    assert_int_equal(tenants_state(pool), 0);

    sluice__fair_tenant_calloc = failing_calloc;
    alloc_calls = 0;
    alloc_fail_at = 2; /* new1 is allocated, new2 is not */
    log_buf lb = {.len = 0};
    sluice_err r = sluice_config_apply(&cur, next, pools, log_line, &lb, err, sizeof err);
    sluice__fair_tenant_calloc = calloc;
    alloc_fail_at = 0;
    assert_int_equal(r, SLUICE_ENOMEM);
    assert_int_equal(alloc_calls, 2);
    assert_non_null(strstr(err, "pools[0].tenants[2] (tenant \"new2\"): out of memory"));
    const char *last = "reload: pool f: tenants failed and keeps its running value; nothing else changed\n";
    assert_true(lb.len >= strlen(last));
    assert_string_equal(lb.text + lb.len - strlen(last), last);
    assert_int_equal(tenants_state(pool), 0);
    assert_int_equal(cur->pools[0].tenant_count, 3); /* the config in force: the running list */

    lb.len = 0;
    assert_int_equal(sluice_config_apply(&cur, next, pools, log_line, &lb, err, sizeof err), SLUICE_OK);
    assert_int_equal(tenants_state(pool), 1);
    assert_int_equal(cur->pools[0].tenant_count, 4);
    sluice_config_free(next);
    sluice_pool_destroy(pool);
    sluice_config_free(cur);
}

typedef struct aon_race {
    pthread_barrier_t *go; /* both threads start together */
    sluice_pool *pool;
    sluice_config *cur;
    const sluice_config *next;
    sluice_err r;
} aon_race;

static void *aon_reload(void *arg)
{
    aon_race *a = arg;
    sluice_pool *pools[1] = {a->pool};
    char err[2048];
    pthread_barrier_wait(a->go);
    a->r = sluice_config_apply(&a->cur, a->next, pools, NULL, NULL, err, sizeof err);
    return NULL;
}

/* A drain that begins while the tenant list moves: the pool ends with the
 * running list or the new one, whole, never a mix, and the reload says
 * which (OK: moved; ECLOSED: refused, the running list in force). Raced
 * AON_ROUNDS times, the two threads released together. */
#define AON_ROUNDS 200
static void test_reload_tenants_all_or_nothing_against_drain(void **state)
{
    (void)state;
    sluice_config *next = NULL;
    char err[2048];
    assert_int_equal(load(AON_NEXT, NULL, &next, err, sizeof err), SLUICE_OK);
    unsigned moved = 0, refused = 0;
    pthread_barrier_t go;
    assert_int_equal(pthread_barrier_init(&go, NULL, 2), 0);
    for (int round = 0; round < AON_ROUNDS; round++) {
        aon_race a = {.go = &go, .next = next};
        assert_int_equal(load(AON_RUNNING, NULL, &a.cur, err, sizeof err), SLUICE_OK);
        a.pool = aon_pool(a.cur);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, aon_reload, &a), 0);
        sluice_drain_report rep;
        pthread_barrier_wait(&go);
        assert_int_equal(sluice_pool_drain(a.pool, SLUICE_NS_PER_SEC, &rep), SLUICE_OK);
        assert_int_equal(pthread_join(th, NULL), 0);
        int st = tenants_state(a.pool);
        if (a.r == SLUICE_OK) {
            assert_int_equal(st, 1);
            assert_int_equal(a.cur->pools[0].tenant_count, 4);
            moved++;
        } else {
            assert_int_equal(a.r, SLUICE_ECLOSED);
            assert_int_equal(st, 0);
            assert_int_equal(a.cur->pools[0].tenant_count, 3);
            refused++;
        }
        sluice_pool_destroy(a.pool);
        sluice_config_free(a.cur);
    }
    print_message("moved %u, refused %u of %d\n", moved, refused, AON_ROUNDS);
    pthread_barrier_destroy(&go);
    sluice_config_free(next);
}

/* The most entries a list takes, and one more. */
static void test_table_bounds(void **state)
{
    (void)state;
    size_t cap = 256 + 1025 * 32;
    char *text = malloc(cap);
    assert_non_null(text);
    for (int n = 1024; n <= 1025; n++) {
        size_t used = (size_t)snprintf(text, cap, POOL_HEAD "    queue_discipline: fair\n    tenants:\n");
        for (int i = 0; i < n; i++) {
            used += (size_t)snprintf(text + used, cap - used, "      - name: t%d\n", i);
        }
        sluice_config *c = NULL;
        char err[2048];
        sluice_err r = load(text, NULL, &c, err, sizeof err);
        if (n == 1024) {
            assert_int_equal(r, SLUICE_OK);
            assert_int_equal(c->pools[0].tenant_count, 1024);
            sluice_config_free(c);
        } else {
            assert_int_equal(r, SLUICE_EINVAL);
            assert_string_equal(err, "sluice.yaml:7:7: pools[0].tenants: at most 1024 entries, got 1025");
        }
    }
    free(text);
}

static void test_router_from_config(void **state)
{
    (void)state;
    sluice_config *c = NULL;
    char err[2048];
    assert_int_equal(load(TIERS, NULL, &c, err, sizeof err), SLUICE_OK);
    sluice_service_config sc;
    sluice_service_config_init(&sc);
    sc.no_signals = true;
    sluice_service *svc = NULL;
    assert_int_equal(sluice_service_create_from_config(c, &sc, NULL, NULL, &svc, err, sizeof err), SLUICE_OK);
    sluice_router *r = NULL;
    assert_int_equal(sluice_router_create_from_config(c, svc, &r, err, sizeof err), SLUICE_OK);
    sluice_route rt;
    assert_int_equal(sluice_router_route(r, "acme", &rt, err, sizeof err), SLUICE_OK);
    assert_ptr_equal(rt.pool, sluice_service_find_pool(svc, "transcribe-premium"));
    assert_int_equal(sluice_router_route(r, "d", &rt, err, sizeof err), SLUICE_OK);
    assert_ptr_equal(rt.pool, sluice_service_find_pool(svc, "transcribe-standard"));
    assert_int_equal(sluice_router_route(r, "someone", &rt, err, sizeof err), SLUICE_OK);
    assert_ptr_equal(rt.pool, sluice_service_find_pool(svc, "transcribe-free"));
    assert_true(rt.by_default);
    assert_int_equal(sluice_router_route(r, "free", &rt, err, sizeof err), SLUICE_OK);
    assert_null(rt.tenant);
    /* The fair tier's pool got its listed tenants' weights and limits,
     * and "*" became its default for unknown tenants. */
    sluice_pool *std = sluice_service_find_pool(svc, "transcribe-standard");
    sluice_tenant_stats ts[16];
    size_t n = sluice_pool_tenants_get(std, ts, 16);
    assert_true(n >= 4 && n <= 16);
    bool saw_d = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ts[i].name, "d") == 0) {
            saw_d = true;
            assert_true(ts[i].configured);
            assert_int_equal(ts[i].config.running_limit, 4);
            assert_true(ts[i].config.strict);
        }
        if (strcmp(ts[i].name, "b") == 0) {
            assert_int_equal(ts[i].config.weight, 2);
        }
    }
    assert_true(saw_d);
    sluice_pool_config pc;
    sluice_pool_config_get(sluice_service_find_pool(svc, "transcribe-free"), &pc);
    assert_int_equal(pc.queue_discipline, SLUICE_QUEUE_FAIR);
    assert_int_equal(pc.fair.tenant_default.queued_limit, 20);
    assert_int_equal(pc.fair.tenant_default.running_limit, 2);
    sluice_pool_config_get(sluice_service_find_pool(svc, "transcribe-premium"), &pc);
    assert_int_equal(pc.queue_discipline, SLUICE_QUEUE_FIFO);
    sluice_router_destroy(r);
    sluice_service_destroy(svc);
    sluice_config_free(c);

    /* No tier: nothing to route. */
    assert_int_equal(load(POOL_HEAD, NULL, &c, err, sizeof err), SLUICE_OK);
    assert_int_equal(sluice_service_create_from_config(c, &sc, NULL, NULL, &svc, err, sizeof err), SLUICE_OK);
    r = NULL;
    assert_int_equal(sluice_router_create_from_config(c, svc, &r, err, sizeof err), SLUICE_ENOENT);
    assert_string_equal(err, "router from config: no pool has a tier");
    assert_null(r);
    assert_int_equal(sluice_router_create_from_config(NULL, svc, &r, err, sizeof err), SLUICE_EINVAL);
    sluice_service_destroy(svc);
    sluice_config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_tiers),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_bad_fields_name_field_and_tenant),
        cmocka_unit_test(test_labels_fill_the_error_buffer),
        cmocka_unit_test(test_env_cannot_set_a_table),
        cmocka_unit_test(test_write_round_trip),
        cmocka_unit_test(test_reload_classes),
        cmocka_unit_test(test_reload_tenants_live),
        cmocka_unit_test(test_reload_tenant_refusal_named),
        cmocka_unit_test(test_reload_refusal_summary),
        cmocka_unit_test(test_reload_tenants_all_or_nothing_on_enomem),
        cmocka_unit_test(test_reload_tenants_all_or_nothing_against_drain),
        cmocka_unit_test(test_table_bounds),
        cmocka_unit_test(test_router_from_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * tests/core/links_alone.c - the core depends on nothing above it.
 *
 * This program is linked from the objects of src/core and src/base only
 * (no src/sync, src/sys, src/obs, no cmocka): if the core called into any
 * other area the link would fail, so "the core depends on libc, pthreads
 * and src/base alone" is true by construction. It then runs one pool end
 * to end (create, submit with a context, drain, destroy) so that the
 * objects are not merely linked but work together, and checks the
 * accounting: every submitted task ran.
 *
 * A stub main instead of cmocka, so that no test library joins the link.
 */
#include <stdatomic.h>
#include <stdio.h>

#include "sluice/clock.h"
#include "sluice/ctx.h"
#include "sluice/pool.h"

#define TASKS 64

static atomic_uint ran;

static int count_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ran, 1);
    return 0;
}

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "links_alone: %s:%d: %s\n", __FILE__, __LINE__, #cond);                          \
            return 1;                                                                                        \
        }                                                                                                    \
    } while (0)

int main(void)
{
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = "links_alone";
    cfg.workers = 2;
    cfg.queue_capacity = TASKS;
    char err[256] = "";
    sluice_pool *pool = NULL;
    CHECK(sluice_pool_create(&cfg, &pool, err, sizeof err) == SLUICE_OK);

    sluice_ctx *ctx = NULL;
    CHECK(sluice_ctx_create(&ctx, NULL, 0, NULL) == SLUICE_OK);
    sluice_submit_opts opts = {.ctx = ctx};
    for (int i = 0; i < TASKS; i++) {
        CHECK(sluice_pool_submit_ex(pool, count_task, NULL, &opts) == SLUICE_OK);
    }
    sluice_drain_report rep;
    CHECK(sluice_pool_drain(pool, 0, &rep) == SLUICE_OK);
    CHECK(!rep.timed_out);
    CHECK(atomic_load(&ran) == TASKS);
    sluice_pool_destroy(pool);
    sluice_ctx_release(ctx);

    /* A bad config is refused with the base layer's rule and formatter. */
    cfg.name = "no spaces";
    CHECK(sluice_pool_create(&cfg, &pool, err, sizeof err) == SLUICE_EINVAL);
    CHECK(err[0] != '\0');
    CHECK(sluice_clock_now(NULL) > 0);
    printf("links_alone: %u tasks ran on a pool linked from src/core and src/base only\n", atomic_load(&ran));
    return 0;
}

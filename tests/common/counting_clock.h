/*
 * tests/common/counting_clock.h - a clock the test sets, counting its
 * reads: a wait that polls it is seen polling, without any real time
 * being measured.
 *
 *     counting_clock clk;
 *     counting_clock_init(&clk, 1000);   // pass &clk.clock where a clock goes
 *     atomic_store(&clk.now, later);     // move time
 *     atomic_load(&clk.reads);           // how often it was read
 */
#ifndef SLUICE_TESTS_COMMON_COUNTING_CLOCK_H
#define SLUICE_TESTS_COMMON_COUNTING_CLOCK_H

#include <stdatomic.h>
#include <stdint.h>

#include "sluice/clock.h"

typedef struct counting_clock {
    sluice_clock clock;
    _Atomic uint64_t now;
    _Atomic uint64_t reads;
} counting_clock;

__attribute__((unused)) static uint64_t counting_now(void *ctx)
{
    counting_clock *c = ctx;
    atomic_fetch_add(&c->reads, 1);
    return atomic_load(&c->now);
}

/* Set c up at `start` with no reads counted. */
__attribute__((unused)) static void counting_clock_init(counting_clock *c, uint64_t start)
{
    c->clock = (sluice_clock){.now_ns = counting_now, .clock_ctx = c};
    atomic_store(&c->now, start);
    atomic_store(&c->reads, 0);
}

#endif /* SLUICE_TESTS_COMMON_COUNTING_CLOCK_H */

/*
 * src/base/clock.c - the system monotonic clock and the fake clock for tests.
 *
 * Purpose. Every time-dependent part of Sluice reads time through a
 * `const sluice_clock *` so that tests can move time by hand instead of
 * sleeping. This file provides the two clocks everything else uses.
 *
 * Design. The system clock is one static, immutable sluice_clock whose
 * now_ns reads CLOCK_MONOTONIC (a vDSO call on Linux, no system call).
 * sluice_clock_now(NULL) takes the same path without the indirect call, so
 * the common case costs one clock_gettime. A component asks
 * sluice_clock_is_system() once at creation to decide whether it may use a
 * real timed condition-variable wait (system clock) or must poll (a fake
 * clock only moves when a test says so).
 *
 * The fake clock is a single _Atomic uint64_t. now/advance/set are relaxed:
 * the clock carries no data between threads, it is only a number that the
 * test moves; components that wait on it re-read it at least every
 * SLUICE_CLOCK_POLL_NS of real time. Readers on other threads see a new
 * value "soon", never a torn one.
 *
 * Ordering guarantees: none beyond monotonicity of each clock (the fake one
 * is monotonic as long as the test only advances it - an advance
 * saturates at UINT64_MAX; sluice_fake_clock_set may move it backwards and
 * that is the test's business).
 *
 * Locks: none.
 */
#include <stdatomic.h>
#include <time.h>

#include "sluice/clock.h"

static uint64_t system_now(void *clock_ctx)
{
    (void)clock_ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * SLUICE_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static const sluice_clock system_clock = {.now_ns = system_now, .clock_ctx = NULL};

uint64_t sluice_clock_now(const sluice_clock *clock)
{
    if (!clock || clock->now_ns == system_now) {
        return system_now(NULL);
    }
    return clock->now_ns(clock->clock_ctx);
}

bool sluice_clock_is_system(const sluice_clock *clock)
{
    return !clock || clock == &system_clock || clock->now_ns == system_now;
}

const sluice_clock *sluice_clock_system(void)
{
    return &system_clock;
}

static uint64_t fake_now(void *clock_ctx)
{
    sluice_fake_clock *fake = clock_ctx;
    return atomic_load_explicit(&fake->now, memory_order_relaxed);
}

void sluice_fake_clock_init(sluice_fake_clock *fake, uint64_t start_ns)
{
    if (!fake) {
        return;
    }
    fake->clock.now_ns = fake_now;
    fake->clock.clock_ctx = fake;
    atomic_init(&fake->now, start_ns);
}

void sluice_fake_clock_advance(sluice_fake_clock *fake, uint64_t delta_ns)
{
    if (!fake) {
        return;
    }
    /* Saturating: a sum past UINT64_MAX would wrap and move time backwards. */
    uint64_t old = atomic_load_explicit(&fake->now, memory_order_relaxed);
    uint64_t next;
    do {
        next = old > UINT64_MAX - delta_ns ? UINT64_MAX : old + delta_ns;
    } while (!atomic_compare_exchange_weak_explicit(&fake->now, &old, next, memory_order_relaxed,
                                                    memory_order_relaxed));
}

void sluice_fake_clock_set(sluice_fake_clock *fake, uint64_t now_ns)
{
    if (!fake) {
        return;
    }
    atomic_store_explicit(&fake->now, now_ns, memory_order_relaxed);
}

/*
 * sluice/clock.h - the injectable clock every time-dependent part reads.
 *
 * Time in Sluice is a uint64_t of nanoseconds on a monotonic scale. A
 * component that needs time takes a `const sluice_clock *`; NULL means the
 * system monotonic clock (CLOCK_MONOTONIC). Tests pass a fake clock that
 * they advance by hand, so nothing in a test sleeps to wait for time.
 *
 * Waiting with a fake clock: components that block with a timeout use a
 * real condition-variable wait when the clock is the system clock, and
 * re-check a non-system clock every SLUICE_CLOCK_POLL_NS of real time, so a
 * test that advances a fake clock sees timeouts fire within about a
 * millisecond without sleeping itself.
 */
#ifndef SLUICE_CLOCK_H
#define SLUICE_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "sluice/common.h"

#define SLUICE_NS_PER_US 1000ull
#define SLUICE_NS_PER_MS 1000000ull
#define SLUICE_NS_PER_SEC 1000000000ull

/* How often (real time) a wait re-reads a non-system clock. */
#define SLUICE_CLOCK_POLL_NS (1 * SLUICE_NS_PER_MS)

typedef struct sluice_clock {
    /* Returns the current time in ns; must be monotonic and thread-safe. */
    uint64_t (*now_ns)(void *clock_ctx);
    void *clock_ctx;
} sluice_clock;

/*
 * sluice_clock_now - the current time of clock (NULL: CLOCK_MONOTONIC).
 * Thread-safety: safe from any thread. No system call on Linux (vDSO).
 */
SLUICE_API uint64_t sluice_clock_now(const sluice_clock *clock);

/* sluice_clock_is_system - true for NULL or the system clock. */
SLUICE_API bool sluice_clock_is_system(const sluice_clock *clock);

/* sluice_clock_system - the system monotonic clock as a sluice_clock. */
SLUICE_API const sluice_clock *sluice_clock_system(void);

/*
 * A fake clock for tests: starts at `start_ns` and moves only when told.
 * Ownership: the caller owns the fake clock; it must outlive every object
 * that was given its sluice_clock.
 * Thread-safety: now/advance/set are safe from any thread (atomics).
 * advance saturates at UINT64_MAX (so the clock never runs backwards);
 * set moves it anywhere, backwards too. A NULL fake is a no-op.
 */
typedef struct sluice_fake_clock {
    sluice_clock clock; /* pass &fake.clock to components */
    _Atomic uint64_t now;
} sluice_fake_clock;

SLUICE_API void sluice_fake_clock_init(sluice_fake_clock *fake, uint64_t start_ns);
SLUICE_API void sluice_fake_clock_advance(sluice_fake_clock *fake, uint64_t delta_ns);
SLUICE_API void sluice_fake_clock_set(sluice_fake_clock *fake, uint64_t now_ns);

#endif /* SLUICE_CLOCK_H */

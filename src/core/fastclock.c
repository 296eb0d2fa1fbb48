/*
 * src/core/fastclock.c - a cheaper clock for task timing.
 *
 * Timing every task costs two clock reads (the submit stamp and the end of
 * the run; the start reuses the previous end inside a batch). On the VMs we
 * measure on, clock_gettime(CLOCK_MONOTONIC) through the vDSO costs ~27 ns
 * (kvm-clock), an RDTSC ~11 ns. When the CPU says its TSC is invariant
 * (CPUID 0x80000007 EDX bit 8: constant rate, runs in every C-state), we
 * read it and convert to CLOCK_MONOTONIC nanoseconds with a multiplier
 * calibrated once per process against clock_gettime over ~2 ms. Otherwise,
 * and on other architectures, it is clock_gettime.
 *
 * Only durations (histograms) and the debug "since" times use it, and only
 * for pools on the system clock: deadlines, timeouts and expiry always read
 * the pool's sluice_clock, and a pool with a fake clock times with it too.
 * Drift against CLOCK_MONOTONIC (NTP slewing, a few ppm) is irrelevant to
 * durations of seconds or less.
 *
 * It also measures what timing one task costs on this machine (two reads
 * and two histogram updates), for the automatic sample rate.
 *
 * State: values written once under pthread_once and read-only after (the
 * once call orders them before every read).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "core/internal.h"

#if defined(__x86_64__) && !defined(SLUICE_NO_TSC)
#include <cpuid.h>
#include <x86intrin.h>
#define HAVE_TSC 1
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool use_tsc;
static uint64_t base_tsc;
static uint64_t base_ns;
static double ns_per_tick;
static uint64_t timing_cost_ns = 64; /* measured in measure_cost() */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * SLUICE_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static void calibrate(void)
{
#ifdef HAVE_TSC
    unsigned a, b, c, d;
    if (!__get_cpuid(0x80000000u, &a, &b, &c, &d) || a < 0x80000007u) {
        return;
    }
    __get_cpuid(0x80000007u, &a, &b, &c, &d);
    if (!(d & (1u << 8))) {
        return; /* not invariant: frequency changes would skew durations */
    }
    uint64_t t0 = __rdtsc(), n0 = mono_ns();
    uint64_t n1 = n0;
    while (n1 - n0 < 2 * SLUICE_NS_PER_MS) {
        n1 = mono_ns();
    }
    uint64_t t1 = __rdtsc();
    if (t1 <= t0) {
        return;
    }
    ns_per_tick = (double)(n1 - n0) / (double)(t1 - t0);
    base_tsc = t1;
    base_ns = n1;
    use_tsc = ns_per_tick > 0.01 && ns_per_tick < 100.0; /* 10 MHz .. 100 GHz */
#endif
}

/* The cost of timing one task: two clock reads (the submit stamp and the
 * end of the run) plus two histogram updates (~10 ns each, counted as
 * 20). A clock read is timed as the fastest of 8 batches of 64, so a
 * preempted batch does not inflate it. This is what the automatic
 * timing sample rate divides by (worker.c). */
static void measure_cost(void)
{
    uint64_t best = UINT64_MAX;
    for (int b = 0; b < 8; b++) {
        uint64_t t0 = mono_ns();
        uint64_t sink = 0;
        for (int i = 0; i < 64; i++) {
            sink += sluice__fastclock_now();
        }
        uint64_t dt = mono_ns() - t0;
        __asm__ volatile("" : : "r"(sink));
        if (dt < best) {
            best = dt;
        }
    }
    uint64_t per_read = (best + 63) / 64;
    timing_cost_ns = 2 * per_read + 20;
}

static void init_once(void)
{
    calibrate();
    measure_cost();
}

void sluice__fastclock_init(void)
{
    pthread_once(&once, init_once);
}

uint64_t sluice__timing_cost_ns(void)
{
    return timing_cost_ns;
}

uint64_t sluice__fastclock_now(void)
{
#ifdef HAVE_TSC
    if (use_tsc) {
        /* Signed: another CPU's TSC may read a few cycles behind the
         * calibrating CPU's base, and a negative delta must not wrap. */
        int64_t delta = (int64_t)(__rdtsc() - base_tsc);
        return base_ns + (uint64_t)(int64_t)((double)delta * ns_per_tick);
    }
#endif
    return mono_ns();
}

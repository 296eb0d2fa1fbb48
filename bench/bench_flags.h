/*
 * bench/bench_flags.h - the flags of the benchmark driver, sluice-bench,
 * as one list.
 *
 * Two programs read it: the driver (driver.c), which refuses a flag not
 * listed, and `sluice bench` (tools/sluice/cmd_bench.c), which hands its
 * flags to the driver and checks them first, so an unknown one is one
 * line naming it (`sluice bench: unknown flag '--bogus' (see sluice bench
 * --help)`, exit 2) even where the driver is not built, instead of the
 * driver's whole usage. A new driver flag is one row here plus its case
 * in driver.c's parse_args.
 *
 * XX(flag, takes_value): takes_value is 1 when the next argument is the
 * flag's value (the driver checks the value itself).
 */
#ifndef SLUICE_BENCH_FLAGS_H
#define SLUICE_BENCH_FLAGS_H

#include <stdbool.h>
#include <string.h>

#define SLUICE_BENCH_FLAG_MAP(XX)                                                                            \
    XX("--quick", 0)                                                                                         \
    XX("--runs", 1)                                                                                          \
    XX("--workload", 1)                                                                                      \
    XX("--impl", 1)                                                                                          \
    XX("--producers", 1)                                                                                     \
    XX("--workers", 1)                                                                                       \
    XX("--stall-seconds", 1)                                                                                 \
    XX("--json", 0)                                                                                          \
    XX("--no-fork", 0)                                                                                       \
    XX("--verbose", 0)                                                                                       \
    XX("-v", 0)                                                                                              \
    XX("--scaling", 0)                                                                                       \
    XX("--list", 0)                                                                                          \
    XX("--help", 0)                                                                                          \
    XX("-h", 0)

/* Whether arg is one of the driver's flags; *takes_value says whether the
 * next argument is its value. */
static inline bool sluice_bench_flag_known(const char *arg, bool *takes_value)
{
#define SLUICE_BENCH_FLAG_MATCH_(flag, value)                                                                \
    if (strcmp(arg, flag) == 0) {                                                                            \
        *takes_value = (value) != 0;                                                                         \
        return true;                                                                                         \
    }
    SLUICE_BENCH_FLAG_MAP(SLUICE_BENCH_FLAG_MATCH_)
#undef SLUICE_BENCH_FLAG_MATCH_
    *takes_value = false;
    return false;
}

#endif /* SLUICE_BENCH_FLAGS_H */

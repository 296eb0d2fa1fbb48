/*
 * bench/adapters.c - the registry of implementations, in report order:
 * Sluice configurations, then the peers, then the raw reference ring.
 * BENCH_HAVE_SLUICE is defined by bench/CMakeLists.txt once libsluice has
 * a pool to link; without it the driver still measures the peers.
 * BENCH_HAVE_METRICS adds the pool-collector variant when the metrics
 * layer (include/sluice/metrics.h) is there.
 */
#include "bench.h"

#ifdef BENCH_HAVE_SLUICE
extern const bench_adapter bench_adapter_sluice, bench_adapter_sluice_notiming, bench_adapter_sluice_timeall,
    bench_adapter_sluice_sample64, bench_adapter_sluice_reject, bench_adapter_sluice_batch,
    bench_adapter_sluice_sharded, bench_adapter_sluice_sharded_notiming, bench_adapter_sluice_fifo_batch,
    bench_adapter_sluice_fifo_batch_notiming, bench_adapter_sluice_on_codel, bench_adapter_sluice_on_lifo,
    bench_adapter_sluice_on_control, bench_adapter_sluice_fifo_batch_batch;
extern const bench_adapter bench_adapter_sluice_ov_fifo, bench_adapter_sluice_ov_codel,
    bench_adapter_sluice_ov_codel_rfc, bench_adapter_sluice_ov_lifo, bench_adapter_sluice_ov_both;
#endif
#ifdef BENCH_HAVE_METRICS
extern const bench_adapter bench_adapter_sluice_collector;
#endif
extern const bench_adapter bench_adapter_thread, bench_adapter_cthreadpool, bench_adapter_glib,
    bench_adapter_libuv, bench_adapter_apr, bench_adapter_ring, bench_adapter_floor,
    bench_adapter_selftest_lose, bench_adapter_selftest_dup, bench_adapter_selftest_swap;

const bench_adapter *const bench_adapters[] = {
#ifdef BENCH_HAVE_SLUICE
    &bench_adapter_sluice,
    &bench_adapter_sluice_notiming,
    &bench_adapter_sluice_timeall,
    &bench_adapter_sluice_sample64,
    &bench_adapter_sluice_reject,
    &bench_adapter_sluice_batch,
    &bench_adapter_sluice_sharded,
    &bench_adapter_sluice_sharded_notiming,
    &bench_adapter_sluice_fifo_batch,
    &bench_adapter_sluice_fifo_batch_notiming,
    &bench_adapter_sluice_fifo_batch_batch,
    &bench_adapter_sluice_on_codel,
    &bench_adapter_sluice_on_lifo,
    &bench_adapter_sluice_on_control,
    &bench_adapter_sluice_ov_fifo,
    &bench_adapter_sluice_ov_codel,
    &bench_adapter_sluice_ov_codel_rfc,
    &bench_adapter_sluice_ov_lifo,
    &bench_adapter_sluice_ov_both,
#endif
#ifdef BENCH_HAVE_METRICS
    &bench_adapter_sluice_collector,
#endif
    &bench_adapter_thread,
    &bench_adapter_cthreadpool,
    &bench_adapter_glib,
    &bench_adapter_libuv,
    &bench_adapter_apr,
    &bench_adapter_ring,
    &bench_adapter_floor,
    &bench_adapter_selftest_lose,
    &bench_adapter_selftest_dup,
    &bench_adapter_selftest_swap,
    NULL,
};

_Static_assert(sizeof bench_adapters / sizeof bench_adapters[0] - 1 <= BENCH_MAX_IMPLS,
               "more adapters than the driver's table holds: raise BENCH_MAX_IMPLS in bench.h");

/*
 * bench/adapt_selftest.c - deliberately broken "pools" that prove the
 * driver's integrity check works: selftest-lose never runs one task,
 * selftest-dup runs one task twice, selftest-swap loses one task and runs
 * another twice (the count is right, only the hash can tell). They run
 * tasks inline on the submitting thread. They take part only when named
 * with --impl, and a run that includes them must exit with status 1 (the
 * ctest suite checks that).
 */
#include "bench.h"

typedef enum { BROKEN_LOSE, BROKEN_DUP, BROKEN_SWAP } broken_kind;

static int st_create(const bench_adapter *self, const bench_pool_opts *opts, void **out, char *err,
                     size_t errlen)
{
    (void)opts;
    (void)err;
    (void)errlen;
    *out = (void *)self->variant;
    return 0;
}

static int st_submit(void *pool, void *producer, uint64_t idx)
{
    (void)producer;
    broken_kind kind = *(const broken_kind *)pool;
    if (idx == 1 && (kind == BROKEN_LOSE || kind == BROKEN_SWAP)) {
        return BENCH_OK; /* accepted, never run */
    }
    bench_task_run(idx);
    if (idx == 2 && (kind == BROKEN_DUP || kind == BROKEN_SWAP)) {
        bench_task_run(idx);
    }
    return BENCH_OK;
}

static void st_destroy(void *pool)
{
    (void)pool;
}

static const broken_kind k_lose = BROKEN_LOSE, k_dup = BROKEN_DUP, k_swap = BROKEN_SWAP;

#define SELFTEST_ADAPTER(sym, nm, what, kind)                                                                \
    const bench_adapter sym = {                                                                              \
        .name = nm,                                                                                          \
        .overflow = what,                                                                                    \
        .flags = BENCH_F_SELFTEST | BENCH_F_NO_IDLE,                                                         \
        .variant = &kind,                                                                                    \
        .create = st_create,                                                                                 \
        .submit = st_submit,                                                                                 \
        .destroy = st_destroy,                                                                               \
    }

SELFTEST_ADAPTER(bench_adapter_selftest_lose, "selftest-lose",
                 "self-test: accepts task 1 and never runs it (must fail)", k_lose);
SELFTEST_ADAPTER(bench_adapter_selftest_dup, "selftest-dup", "self-test: runs task 2 twice (must fail)",
                 k_dup);
SELFTEST_ADAPTER(bench_adapter_selftest_swap, "selftest-swap",
                 "self-test: loses task 1, runs task 2 twice (must fail)", k_swap);

/*
 * tests/base/test_enums.c - every public enum declared from one list
 * (SLUICE_<ENUM>_MAP, src/base/enums.h): its name function and its parser
 * are inverses over every row; the extremes (the value before the first
 * row, the _COUNT_ sentinel, a large cast int) get the fallback name; the
 * parser refuses NULL, "", a name in the wrong case and a name with a
 * trailing space, and leaves *out unchanged when it refuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/sluice.h"
#if defined(SLUICE_TEST_HAVE_CONFIG)
#include "sluice/config.h"
#endif

/* Checks one enum: rows [first, count) round-trip; the rest fall back. */
#define CHECK_ENUM(type, first, count, fallback, name_fn, parse_fn)                                          \
    do {                                                                                                     \
        for (int v_ = (first); v_ < (int)(count); v_++) {                                                    \
            const char *n_ = name_fn((type)v_);                                                              \
            assert_non_null(n_);                                                                             \
            assert_string_not_equal(n_, fallback);                                                           \
            type back_ = (type)-1;                                                                           \
            assert_int_equal(parse_fn(n_, &back_), SLUICE_OK);                                               \
            assert_int_equal((int)back_, v_);                                                                \
        }                                                                                                    \
        assert_string_equal(name_fn((type)(count)), fallback);                                               \
        assert_string_equal(name_fn((type)1000000), fallback);                                               \
        if ((first) > 0) {                                                                                   \
            assert_string_equal(name_fn((type)((first)-1)), fallback);                                       \
        }                                                                                                    \
        type keep_ = (type)(first);                                                                          \
        assert_int_equal(parse_fn(NULL, &keep_), SLUICE_EINVAL);                                             \
        assert_int_equal(parse_fn("", &keep_), SLUICE_EINVAL);                                               \
        assert_int_equal(parse_fn(fallback, &keep_), SLUICE_EINVAL);                                         \
        assert_int_equal(parse_fn(name_fn((type)(first)), NULL), SLUICE_EINVAL);                             \
        char upper_[64], spaced_[64];                                                                        \
        snprintf(upper_, sizeof upper_, "%s", name_fn((type)(first)));                                       \
        for (char *c_ = upper_; *c_; c_++) {                                                                 \
            *c_ = (char)(*c_ >= 'a' && *c_ <= 'z' ? *c_ - 32 : *c_ >= 'A' && *c_ <= 'Z' ? *c_ + 32 : *c_);   \
        }                                                                                                    \
        snprintf(spaced_, sizeof spaced_, "%s ", name_fn((type)(first)));                                    \
        assert_int_equal(parse_fn(upper_, &keep_), SLUICE_EINVAL);                                           \
        assert_int_equal(parse_fn(spaced_, &keep_), SLUICE_EINVAL);                                          \
        assert_int_equal((int)keep_, (first));                                                               \
    } while (0)

static void test_pool_enums(void **state)
{
    (void)state;
    CHECK_ENUM(sluice_overflow, 0, SLUICE_OVERFLOW_COUNT_, "unknown", sluice_overflow_name,
               sluice_overflow_parse);
    CHECK_ENUM(sluice_fault_mode, 0, SLUICE_FAULT_MODE_COUNT_, "unknown", sluice_fault_mode_name,
               sluice_fault_mode_parse);
    CHECK_ENUM(sluice_abandon_reason, SLUICE_ABANDON_DROPPED, SLUICE_ABANDON_REASON_COUNT_, "unknown",
               sluice_abandon_reason_name, sluice_abandon_reason_parse);
    CHECK_ENUM(sluice_worker_status, 0, SLUICE_WORKER_STATUS_COUNT_, "unknown", sluice_worker_status_name,
               sluice_worker_status_parse);
    /* The names are the documented ones (config files and JSON use them). */
    assert_string_equal(sluice_overflow_name(SLUICE_OVERFLOW_DROP_OLDEST), "drop_oldest");
    assert_string_equal(sluice_fault_mode_name(SLUICE_FAULT_RERAISE), "reraise");
    assert_string_equal(sluice_abandon_reason_name(SLUICE_ABANDON_DROPPED), "dropped");
    assert_string_equal(sluice_worker_status_name(SLUICE_WORKER_RUNNING), "running");
    /* The packed status word keeps a worker's state in 3 bits. */
    assert_true(SLUICE_WORKER_STATUS_COUNT_ <= 8);
}

static void test_other_enums(void **state)
{
    (void)state;
    CHECK_ENUM(sluice_log_level, 0, SLUICE_LOG_LEVEL_COUNT_, "unknown", sluice_log_level_name,
               sluice_log_parse_level);
    CHECK_ENUM(sluice_log_format, 0, SLUICE_LOG_FORMAT_COUNT_, "unknown", sluice_log_format_name,
               sluice_log_parse_format);
    CHECK_ENUM(sluice_breaker_state, 0, SLUICE_BREAKER_STATE_COUNT_, "unknown", sluice_breaker_state_name,
               sluice_breaker_state_parse);
    CHECK_ENUM(sluice_flush_reason, 0, SLUICE_FLUSH_REASON_COUNT_, "unknown", sluice_flush_reason_name,
               sluice_flush_reason_parse);
    CHECK_ENUM(sluice_batch_failure, 0, SLUICE_BATCH_FAILURE_COUNT_, "unknown", sluice_batch_failure_name,
               sluice_batch_failure_parse);
    assert_string_equal(sluice_breaker_state_name(SLUICE_BREAKER_HALF_OPEN), "half_open");
    assert_string_equal(sluice_log_level_name(SLUICE_LOG_WARN), "warn");
}

static void test_errors(void **state)
{
    (void)state;
    CHECK_ENUM(sluice_err, 0, SLUICE_ERR_COUNT_, "SLUICE_E_UNKNOWN", sluice_err_name, sluice_err_parse);
    assert_string_equal(sluice_err_name(SLUICE_EFULL), "SLUICE_EFULL");
    assert_string_equal(sluice_strerror(SLUICE_EFULL), "queue full");
    for (int e = 0; e < SLUICE_ERR_COUNT_; e++) {
        assert_string_not_equal(sluice_strerror((sluice_err)e), "unknown error");
    }
    assert_string_equal(sluice_strerror(SLUICE_ERR_COUNT_), "unknown error");
    assert_string_equal(sluice_strerror((sluice_err)-1), "unknown error");
}

#if defined(SLUICE_TEST_HAVE_CONFIG)
static void test_pool_kind(void **state)
{
    (void)state;
    CHECK_ENUM(sluice_pool_kind, SLUICE_POOL_KIND_IO, SLUICE_POOL_KIND_COUNT_, "unset", sluice_pool_kind_name,
               sluice_pool_kind_parse);
    assert_string_equal(sluice_pool_kind_name(SLUICE_POOL_KIND_UNSET), "unset");
    assert_string_equal(sluice_pool_kind_name(SLUICE_POOL_KIND_MEMORY), "memory");
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_enums),
        cmocka_unit_test(test_other_enums),
        cmocka_unit_test(test_errors),
#if defined(SLUICE_TEST_HAVE_CONFIG)
        cmocka_unit_test(test_pool_kind),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

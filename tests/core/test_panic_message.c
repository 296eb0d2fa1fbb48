/*
 * tests/core/test_panic_message.c - sluice_task_panic_message: the message
 * is visible to cleanup handlers that run because of a panic, and only then.
 */
#include "common/pool.h"

static char seen[128];
static _Atomic int normal_null;

static void record(void *arg)
{
    (void)arg;
    const char *m = sluice_task_panic_message();
    snprintf(seen, sizeof seen, "%s", m ? m : "(null)");
}

static void check_null(void *arg)
{
    (void)arg;
    if (sluice_task_panic_message() == NULL) {
        atomic_store(&normal_null, 1);
    }
}

static int panicking(void *arg)
{
    (void)arg;
    sluice_cleanup_push(record, NULL);
    sluice_panic("bad record %d", 42);
}

static int popping(void *arg)
{
    (void)arg;
    sluice_cleanup_push(check_null, NULL);
    sluice_cleanup_pop(true); /* runs it, not because of a panic */
    return 0;
}

static void quiet_panic(const sluice_panic_info *info, void *user)
{
    (void)info;
    (void)user;
}

static void test_message_in_cleanup(void **state)
{
    (void)state;
    assert_null(sluice_task_panic_message()); /* outside a task */
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = "pmsg";
    cfg.workers = 1;
    cfg.queue_capacity = 4;
    cfg.panic_handler = quiet_panic;
    sluice_pool *p;
    assert_int_equal(sluice_pool_create(&cfg, &p, NULL, 0), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(p, panicking, NULL), SLUICE_OK);
    assert_int_equal(sluice_pool_submit(p, popping, NULL), SLUICE_OK);
    assert_int_equal(sluice_pool_drain(p, 0, NULL), SLUICE_OK);
    assert_string_equal(seen, "bad record 42");
    assert_int_equal(atomic_load(&normal_null), 1);
    sluice_pool_stats s;
    sluice_pool_stats_get(p, &s);
    assert_int_equal(s.panicked, 1);
    assert_int_equal(s.completed, 1);
    sluice_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_message_in_cleanup),
    };
    return cmocka_run_group_tests_name("core_panic_message", tests, NULL, NULL);
}

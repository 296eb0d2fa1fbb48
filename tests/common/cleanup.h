/*
 * tests/common/cleanup.h - what a test creates, undone by its teardown
 * even when an assertion failed half-way.
 *
 * Purpose. A cmocka assertion longjmps out of the test: every destroy call
 * after it is skipped, and what the test made (clusters with their
 * threads, child processes, servers, temporary directories) lives on into
 * the next test of the program, where it fails for a reason that is not
 * its own. A test registers each thing it makes with its undo
 * (cleanup_push); cleanup_teardown, given to cmocka as the test's
 * teardown, undoes whatever is still registered, newest first, so a
 * failure stays in the test that failed.
 *
 * Use.
 *     sluice_cluster *c = make_cluster(...);
 *     cleanup_push(destroy_cluster_v, c);        // undo registered
 *     ...
 *     cleanup_now(c);                            // the test's own destroy
 *     cmocka_unit_test_setup_teardown(test_x, setup, cleanup_teardown)
 *
 * Order. Newest first (a stack), as a test destroys by hand: an object made
 * on top of another (a semaphore on a cluster) is undone before it.
 *
 * Threads. Main thread only (the list has no lock); include <cmocka.h>
 * before this header.
 */
#ifndef SLUICE_TESTS_COMMON_CLEANUP_H
#define SLUICE_TESTS_COMMON_CLEANUP_H

#include <stddef.h>
#include <stdio.h>

#define CLEANUP_MAX 256

typedef void (*cleanup_fn)(void *obj);

typedef struct cleanup_entry {
    cleanup_fn fn;
    void *obj;
} cleanup_entry;

static cleanup_entry cleanup_list[CLEANUP_MAX];
static size_t cleanup_count;

/* Registers fn(obj) to run at teardown; returns obj. A full list fails
 * the test (a test that makes this much is itself a bug). */
__attribute__((unused)) static void *cleanup_push(cleanup_fn fn, void *obj)
{
    if (cleanup_count == CLEANUP_MAX) {
        fn(obj);
        fail_msg("cleanup list full (%d entries)", CLEANUP_MAX);
    }
    cleanup_list[cleanup_count++] = (cleanup_entry){fn, obj};
    return obj;
}

/* Removes the newest entry for obj; returns its fn, NULL when none. */
__attribute__((unused)) static cleanup_fn cleanup_take(void *obj)
{
    for (size_t i = cleanup_count; i-- > 0;) {
        if (cleanup_list[i].obj == obj) {
            cleanup_fn fn = cleanup_list[i].fn;
            for (size_t j = i + 1; j < cleanup_count; j++) {
                cleanup_list[j - 1] = cleanup_list[j];
            }
            cleanup_count--;
            return fn;
        }
    }
    return NULL;
}

/* The test's own undo of obj, now: runs and forgets its entry. An obj that
 * was never registered fails the test (its teardown would have missed it). */
__attribute__((unused)) static void cleanup_now(void *obj)
{
    cleanup_fn fn = cleanup_take(obj);
    if (!fn) {
        fail_msg("cleanup_now: %p was not registered", obj);
    }
    fn(obj);
}

/* Undoes everything still registered, newest first. */
__attribute__((unused)) static void cleanup_all(void)
{
    while (cleanup_count > 0) {
        cleanup_entry e = cleanup_list[--cleanup_count];
        e.fn(e.obj);
    }
}

/* cmocka teardown form of cleanup_all. */
__attribute__((unused)) static int cleanup_teardown(void **state)
{
    (void)state;
    if (cleanup_count > 0) {
        fprintf(stderr, "teardown: undoing %zu thing(s) the test left\n", cleanup_count);
    }
    cleanup_all();
    return 0;
}

#endif /* SLUICE_TESTS_COMMON_CLEANUP_H */

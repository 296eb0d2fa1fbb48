/*
 * tests/common/fault.h - a task that faults for real (SIGSEGV on a NULL
 * read), for tests of the pool's fault guard (fault_mode RECOVER/EXIT).
 *
 * deref_null is noinline and not instrumented, so the compiler cannot
 * drop the read and the sanitizers do not report it first; the NULL comes
 * from a volatile global, so it is not known at compile time. Tests that
 * include this run it only where the sanitizers do not own SIGSEGV.
 */
#ifndef SLUICE_TESTS_COMMON_FAULT_H
#define SLUICE_TESTS_COMMON_FAULT_H

static int *volatile fault_null_ptr;

__attribute__((noinline, no_sanitize_address, no_sanitize_undefined, no_sanitize_thread, unused)) static int
deref_null(void)
{
    return *fault_null_ptr;
}

/* A task that reads through NULL. */
__attribute__((unused)) static int task_segv(void *arg)
{
    (void)arg;
    return deref_null() + 1;
}

#endif /* SLUICE_TESTS_COMMON_FAULT_H */

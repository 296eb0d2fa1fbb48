/*
 * src/base/check.h - internal invariant checks: SLUICE__ASSERT and
 * SLUICE__ASSERT_HELD.
 *
 * Purpose. The comments of the core and of the sync primitives state
 * invariants (a worker's packed status word, the queue contract, "called
 * with mu held" for every *_locked function, counters that never wrap).
 * These macros check them where they are stated, so a Debug or sanitizer
 * run stops at the first broken one with a message that names it, instead
 * of a wrong count or a hang much later.
 *
 * Design. Checks are on when NDEBUG is not defined (Debug builds) or in a
 * sanitizer build (SLUICE_SANITIZER, set by -DSLUICE_SANITIZE=...), and
 * compile to nothing otherwise: the release build (RelWithDebInfo, Release:
 * NDEBUG) pays no instruction for them. The expression is still parsed in
 * release (inside sizeof, never evaluated), so a check cannot rot and its
 * variables never become "unused". A check must have no side effect.
 *
 * SLUICE__ASSERT_HELD(mu) asks "does THIS thread hold the pthread mutex
 * mu". With glibc the mutex records its owner's thread id, so the answer
 * is exact; elsewhere it falls back to "somebody holds it" (a trylock
 * that must fail), which still catches a call made without the lock when
 * nobody else holds it.
 *
 * A broken invariant is a bug in Sluice, never a recoverable failure: the
 * check writes one line naming the invariant, file and function to stderr
 * and aborts (STYLE.md, "abort only when an internal invariant is broken").
 *
 * Header-only (static inline), like the other base helpers, so every
 * library that includes it has its own copy and nothing is exported.
 */
#ifndef SLUICE_BASE_CHECK_H
#define SLUICE_BASE_CHECK_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#if !defined(NDEBUG) || defined(SLUICE_SANITIZER)
#define SLUICE__CHECKS 1
#else
#define SLUICE__CHECKS 0
#endif

#if SLUICE__CHECKS
#if defined(__GLIBC__)
#include <unistd.h>
#include <sys/syscall.h>
#endif

__attribute__((noreturn, cold)) static inline void sluice__check_fail(const char *what, const char *file,
                                                                      int line, const char *func)
{
    fprintf(stderr, "sluice: internal invariant broken: %s (%s:%d, %s)\n", what, file, line, func);
    fflush(stderr);
    abort();
}

/* True when the calling thread holds mu (glibc: exact; elsewhere: held by
 * some thread). Leaves mu as it found it. */
static inline int sluice__mutex_held(const pthread_mutex_t *mu)
{
#if defined(__GLIBC__)
    /* glibc records the owner's kernel thread id in every mutex type while
     * it is locked, and clears it on unlock. Only the owner can make it
     * equal to its own id, so a racy read by a non-owner cannot match. */
    return mu->__data.__owner == (int)syscall(SYS_gettid);
#else
    pthread_mutex_t *m = (pthread_mutex_t *)mu; /* trylock + unlock: left as found */
    if (pthread_mutex_trylock(m) == 0) {
        pthread_mutex_unlock(m);
        return 0;
    }
    return 1;
#endif
}

#define SLUICE__ASSERT(cond) ((cond) ? (void)0 : sluice__check_fail(#cond, __FILE__, __LINE__, __func__))
#define SLUICE__ASSERT_HELD(mu)                                                                              \
    (sluice__mutex_held(mu) ? (void)0                                                                        \
                            : sluice__check_fail("this thread holds " #mu, __FILE__, __LINE__, __func__))
#else
#define SLUICE__ASSERT(cond) ((void)sizeof((cond) ? 1 : 0))
#define SLUICE__ASSERT_HELD(mu) ((void)sizeof(mu))
#endif

#endif /* SLUICE_BASE_CHECK_H */

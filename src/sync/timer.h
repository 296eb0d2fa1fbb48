/*
 * src/sync/timer.h - a small internal timer: run a callback at a time on a
 * clock, from one thread of its own. Used by the retrier (to resubmit a
 * retry when its backoff ends, instead of sleeping on a worker) and by the
 * batcher (to flush a batch T after its first item).
 *
 * Entries fire in due order (ties in the order they were added), one at a
 * time, on the timer's thread, with no timer lock held. The thread starts
 * with the first entry, so an object that never schedules costs no thread.
 * With the system clock the thread sleeps until the earliest entry is due;
 * with any other clock (a fake clock in tests) it re-reads the clock every
 * SLUICE_CLOCK_POLL_NS of real time.
 *
 * Destroy stops the thread (waiting for a callback in progress) and then
 * calls every entry still pending with `canceled` set, in due order, on the
 * destroying thread, so nothing scheduled is ever silently lost.
 *
 * Lock order: timer mutex only; callbacks run without it.
 */
#ifndef SLUICE_SYNC_TIMER_H
#define SLUICE_SYNC_TIMER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/clock.h"
#include "sluice/common.h"

typedef struct sluice__timer sluice__timer;

/* fn(arg, tag, canceled): canceled is true when the timer was destroyed
 * before the entry was due. Must not call sluice__timer_destroy on its own
 * timer; may add entries. */
typedef void (*sluice__timer_fn)(void *arg, uint64_t tag, bool canceled);

/* A timer on clk (NULL = system). Returns SLUICE_OK or SLUICE_ENOMEM. The
 * thread is named "<name>" (truncated to 15 bytes) when it starts. */
sluice_err sluice__timer_create(const sluice_clock *clk, const char *name, sluice__timer **out);

/* Run fn(arg, tag, false) once the clock reaches due_ns (at once, on the
 * timer thread, if it already has). Returns SLUICE_OK; SLUICE_ENOMEM;
 * SLUICE_ESYS (the thread could not start; nothing added); SLUICE_ECLOSED
 * (destroy has begun; nothing added). Thread-safe. */
sluice_err sluice__timer_add(sluice__timer *t, uint64_t due_ns, sluice__timer_fn fn, void *arg, uint64_t tag);

/* Make room for `n` entries pending at once, so that an add while fewer
 * than n are pending never fails for memory (SLUICE_ENOMEM here instead,
 * where the caller can still refuse: its create). Thread-safe. */
sluice_err sluice__timer_reserve(sluice__timer *t, size_t n);

/* Fault injection for tests, as sluice__service_spawn is in src/service.
 * When set, the allocation points of src/sync that a test must be able to
 * fail ask it first, naming themselves and their object: "timer_add"
 * (every sluice__timer_add, with the entry's arg: a non-OK answer is the
 * add's, nothing added, as SLUICE_ENOMEM or SLUICE_ESYS would be) and
 * "keyed_item" (a keyed executor's new slab of items, with the executor:
 * non-OK is a failed malloc). NULL outside tests; only tests store it. */
typedef sluice_err (*sluice__sync_fault_fn)(const char *point, const void *obj);
extern _Atomic(sluice__sync_fault_fn) sluice__sync_fault;

/* SLUICE_OK, or the answer of the test's fault hook for this point. */
static inline sluice_err sluice__sync_faulted(const char *point, const void *obj)
{
    /* Acquire, paired with the test's (seq_cst) store of the hook: what
     * the test set up for the hook before storing it is visible to it. */
    sluice__sync_fault_fn fault = atomic_load_explicit(&sluice__sync_fault, memory_order_acquire);
    return fault ? fault(point, obj) : SLUICE_OK;
}

/* Entries waiting now. Thread-safe. */
size_t sluice__timer_pending(sluice__timer *t);

/* Stop and free; pending entries are called with canceled = true on this
 * thread. NULL is a no-op. Not from a callback of this timer. */
void sluice__timer_destroy(sluice__timer *t);

/* splitmix64: a fast, well-mixed 64-bit generator (Steele, Lea, Flood
 * 2014); the state advances by a fixed odd constant each call. */
static inline uint64_t sluice__splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif /* SLUICE_SYNC_TIMER_H */

/*
 * src/core/overload.h - CoDel's state machine, apart from any queue, so
 * tests can drive it with scripted times (tests/core/test_overload.c) and
 * the pool (overload.c) can feed it from its workers' pops.
 *
 * Not thread-safe: the pool calls it under its overload mutex.
 */
#ifndef SLUICE_CORE_OVERLOAD_H
#define SLUICE_CORE_OVERLOAD_H

#include <stdbool.h>
#include <stdint.h>

typedef struct sluice__codel {
    /* Settings (resolved: no zeros meaning "default"). */
    uint64_t target_ns;
    uint64_t interval_ns;
    uint64_t slough_ns; /* UINT64_MAX: no slough */
    /* State. */
    uint64_t last_now; /* observations are clamped so time never runs back */
    uint64_t
        first_above_ns;    /* 0: the oldest task is below target; else when it will have stood an interval */
    bool standing;         /* the oldest has stayed at or above target for an interval */
    bool dropping;         /* CoDel's dropping state */
    uint64_t drop_next_ns; /* the next point of the drop schedule */
    uint64_t count;        /* drops by schedule in this (or the continued) dropping state */
    uint64_t lastcount;    /* count when the last dropping state began */
} sluice__codel;

typedef enum sluice__codel_verdict {
    SLUICE__CODEL_KEEP = 0,
    SLUICE__CODEL_SHED_SCHEDULE, /* a point of the schedule interval/sqrt(count) came */
    SLUICE__CODEL_SHED_SLOUGH,   /* dropping, and this task waited longer than slough_ns */
} sluice__codel_verdict;

void sluice__codel_init(sluice__codel *c, uint64_t target_ns, uint64_t interval_ns, uint64_t slough_ns);

/* One look at the oldest queued task: its sojourn at `now`, or `empty`.
 * Returns whether the queue stands (the oldest has stayed at or above the
 * target for a whole interval). An empty queue also ends dropping. */
bool sluice__codel_observe(sluice__codel *c, uint64_t now, uint64_t sojourn, bool empty);

/* After observing a task (not empty): shed it, by the schedule or by the
 * slough rule, or keep it. Moves the schedule when it sheds by it. */
sluice__codel_verdict sluice__codel_judge(sluice__codel *c, uint64_t now, uint64_t sojourn);

/* The schedule: t + interval / sqrt(count), saturating. */
uint64_t sluice__codel_control_law(uint64_t t, uint64_t interval_ns, uint64_t count);

#endif /* SLUICE_CORE_OVERLOAD_H */

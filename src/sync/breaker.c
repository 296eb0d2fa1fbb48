/*
 * src/sync/breaker.c - the circuit breaker state machine.
 *
 * Purpose. Stop sending work to a downstream that is failing, so that it
 * can recover and our threads do not pile up on it; probe it after the
 * open duration; resume when probes succeed. See sluice/breaker.h for the
 * rules and how they map onto Resilience4j and gobreaker.
 *
 * Design. One mutex guards the state, the sliding window and the counters;
 * every call holds it for a few dozen instructions and one clock read.
 *  - Generations (as in gobreaker): every state change bumps `generation`.
 *    allow() hands out the current generation as the ticket, and record()
 *    moves the state machine only when the ticket's generation is the
 *    current one. So a slow call let through while CLOSED cannot close a
 *    breaker that has since opened, and probes are told apart from
 *    earlier calls without any per-call state.
 *  - Window. COUNT: a ring of the last window_size outcomes with running
 *    totals, O(1) per record. TIME: window_size one-second buckets keyed by
 *    the second they hold; moving to a new second clears the buckets that
 *    fell out of the window, subtracting them from the running totals, so
 *    each record is amortised O(1).
 *  - OPEN -> HALF_OPEN is lazy: whoever next looks (allow, state, stats)
 *    after open_until makes the change. No timer thread.
 *  - State-change notifications are queued under the state mutex (a small
 *    ring, in order) and delivered after it is released, under a separate
 *    notification mutex, so the callback never runs with the state lock
 *    held, deliveries never overlap, and they arrive in the order the
 *    changes happened. A callback that itself causes a change (by calling
 *    the breaker) does not re-enter delivery: a thread-local flag makes
 *    the outer delivery loop pick the new event up after it returns.
 *
 * Ordering guarantees: transitions are totally ordered by the state mutex;
 * callbacks see them in that order.
 *
 * Lock order: mu, released before notify_mu is taken; while holding
 * notify_mu a thread takes mu only briefly to pop events (notify_mu -> mu).
 * mu is never held while waiting for notify_mu.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "base/enums.h"
#include "sluice/breaker.h"
#include "sync/sync_internal.h"

#define DEFAULT_CONSECUTIVE 5
#define DEFAULT_RATE 50.0
#define DEFAULT_WINDOW 100
#define DEFAULT_MIN_CALLS 100
#define DEFAULT_OPEN_NS (60 * SLUICE_NS_PER_SEC)
#define DEFAULT_HALF_OPEN 1
#define EVENT_RING 16

typedef struct tbucket {
    uint64_t sec;
    uint32_t calls;
    uint32_t failures;
} tbucket;

typedef struct event {
    sluice_breaker_state from, to;
} event;

struct sluice_breaker {
    /* Immutable after create. */
    sluice_breaker_config cfg; /* defaults applied; name points at `name` */
    char name[SLUICE_BREAKER_NAME_MAX + 1];
    const sluice_clock *clock;

    /* Guarded by mu. */
    pthread_mutex_t mu;
    sluice_breaker_state state;
    uint64_t generation;
    uint64_t open_until;
    uint64_t half_open_until; /* probes unreported past this re-open it */
    unsigned consecutive;
    unsigned probes_in_flight;
    unsigned probe_successes;
    /* the window */
    uint8_t *ring;    /* COUNT: outcomes, 1 = failure */
    tbucket *buckets; /* TIME */
    unsigned pos, filled;
    uint64_t last_sec;
    uint64_t win_calls, win_failures;
    /* pending notifications */
    event events[EVENT_RING];
    unsigned ev_head, ev_len;
    uint64_t events_lost;
    sluice_breaker_stats st; /* counters */

    /* Serialises callback deliveries. */
    pthread_mutex_t notify_mu;
};

static _Thread_local const sluice_breaker *tls_delivering;

/* The name and parser from the list in sluice/breaker.h. */
SLUICE__ENUM_FUNCTIONS(sluice_breaker_state, SLUICE_BREAKER_STATE_MAP, 0, "unknown",
                       sluice_breaker_state_name, sluice_breaker_state_parse)

void sluice_breaker_config_init(sluice_breaker_config *cfg)
{
    if (cfg) {
        memset(cfg, 0, sizeof *cfg);
    }
}

sluice_err sluice_breaker_create(const sluice_breaker_config *cfg_in, sluice_breaker **out, char *errbuf,
                                 size_t errlen)
{
    if (!cfg_in || !out) {
        sluice__errf(errbuf, errlen, "%s: must not be NULL", !cfg_in ? "cfg" : "out");
        return SLUICE_EINVAL;
    }
    sluice_breaker_config cfg = *cfg_in;
    if (cfg.consecutive_failures == 0) {
        cfg.consecutive_failures = DEFAULT_CONSECUTIVE;
    }
    if (cfg.failure_rate_percent == 0) {
        cfg.failure_rate_percent = DEFAULT_RATE;
    }
    if (!(cfg.failure_rate_percent > 0 && cfg.failure_rate_percent <= 100)) {
        sluice__errf(errbuf, errlen, "failure_rate_percent: must be in (0, 100], got %g",
                     cfg.failure_rate_percent);
        return SLUICE_EINVAL;
    }
    if (cfg.consecutive_disabled && cfg.rate_disabled) {
        sluice__errf(errbuf, errlen, "consecutive_disabled and rate_disabled: the breaker could never trip");
        return SLUICE_EINVAL;
    }
    if (cfg.window_type != SLUICE_BREAKER_WINDOW_COUNT && cfg.window_type != SLUICE_BREAKER_WINDOW_TIME) {
        sluice__errf(errbuf, errlen, "window_type: must be SLUICE_BREAKER_WINDOW_COUNT or _TIME, got %d",
                     (int)cfg.window_type);
        return SLUICE_EINVAL;
    }
    if (cfg.window_size == 0) {
        cfg.window_size = DEFAULT_WINDOW;
    }
    if (cfg.window_size > SLUICE_BREAKER_WINDOW_MAX) {
        sluice__errf(errbuf, errlen, "window_size: at most %d, got %u", SLUICE_BREAKER_WINDOW_MAX,
                     cfg.window_size);
        return SLUICE_EINVAL;
    }
    if (cfg.minimum_calls == 0) {
        cfg.minimum_calls = DEFAULT_MIN_CALLS;
    }
    if (cfg.window_type == SLUICE_BREAKER_WINDOW_COUNT && cfg.minimum_calls > cfg.window_size) {
        cfg.minimum_calls = cfg.window_size; /* as Resilience4j: a count window can never hold more */
    }
    if (cfg.open_duration_ns == 0) {
        cfg.open_duration_ns = DEFAULT_OPEN_NS;
    }
    if (cfg.half_open_max_wait_ns == 0) {
        cfg.half_open_max_wait_ns = cfg.open_duration_ns;
    }
    if (cfg.half_open_max_calls == 0) {
        cfg.half_open_max_calls = DEFAULT_HALF_OPEN;
    }
    sluice_breaker *b = calloc(1, sizeof *b);
    if (!b) {
        return SLUICE_ENOMEM;
    }
    sluice_err err = sluice__sync_name_copy(b->name, sizeof b->name, cfg.name, "breaker", errbuf, errlen);
    if (err) {
        free(b);
        return err;
    }
    if (cfg.window_type == SLUICE_BREAKER_WINDOW_COUNT) {
        b->ring = calloc(cfg.window_size, 1);
    } else {
        b->buckets = calloc(cfg.window_size, sizeof *b->buckets);
    }
    if ((!b->ring && !b->buckets) || pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b->ring);
        free(b->buckets);
        free(b);
        return SLUICE_ENOMEM;
    }
    if (pthread_mutex_init(&b->notify_mu, NULL) != 0) {
        pthread_mutex_destroy(&b->mu);
        free(b->ring);
        free(b->buckets);
        free(b);
        return SLUICE_ENOMEM;
    }
    cfg.name = b->name;
    b->cfg = cfg;
    b->clock = cfg.clock ? cfg.clock : sluice_clock_system();
    b->state = SLUICE_BREAKER_CLOSED;
    b->generation = 1;
    *out = b;
    return SLUICE_OK;
}

void sluice_breaker_destroy(sluice_breaker *b)
{
    if (!b) {
        return;
    }
    pthread_mutex_destroy(&b->notify_mu);
    pthread_mutex_destroy(&b->mu);
    free(b->ring);
    free(b->buckets);
    free(b);
}

/* ---- the window (mu held) ------------------------------------------------ */

static void window_reset(sluice_breaker *b)
{
    if (b->ring) {
        memset(b->ring, 0, b->cfg.window_size);
    } else {
        memset(b->buckets, 0, b->cfg.window_size * sizeof *b->buckets);
    }
    b->pos = b->filled = 0;
    b->win_calls = b->win_failures = 0;
    b->consecutive = 0;
}

/* TIME window: drop the buckets older than the window ending at `sec`. */
static void window_advance(sluice_breaker *b, uint64_t sec)
{
    unsigned size = b->cfg.window_size;
    if (b->win_calls == 0) {
        /* Empty: every bucket has calls == 0, so none needs clearing (the
         * loop below would cost window_size steps for nothing). */
        if (sec > b->last_sec) {
            b->last_sec = sec;
        }
        return;
    }
    if (sec <= b->last_sec) {
        return;
    }
    /* Seconds (last_sec, sec] enter the window; second s - size leaves it,
     * and it lives in bucket s % size. Past `size` steps all have left. */
    uint64_t from = b->last_sec + 1;
    if (sec - b->last_sec >= size) {
        from = sec - size + 1;
    }
    for (uint64_t s = from; s <= sec; s++) {
        tbucket *t = &b->buckets[s % size];
        if (t->calls && t->sec != s) {
            b->win_calls -= t->calls;
            b->win_failures -= t->failures;
            t->calls = t->failures = 0;
        }
        t->sec = s;
    }
    if (sec > b->last_sec) {
        b->last_sec = sec;
    }
}

static void window_add(sluice_breaker *b, bool failure, uint64_t now)
{
    if (b->ring) {
        unsigned size = b->cfg.window_size;
        if (b->filled == size) {
            b->win_failures -= b->ring[b->pos];
        } else {
            b->filled++;
        }
        b->ring[b->pos] = failure ? 1 : 0;
        b->pos = (b->pos + 1) % size;
        b->win_calls = b->filled;
        b->win_failures += failure ? 1 : 0;
        return;
    }
    uint64_t sec = now / SLUICE_NS_PER_SEC;
    window_advance(b, sec);
    tbucket *t = &b->buckets[sec % b->cfg.window_size];
    t->sec = sec;
    t->calls++;
    t->failures += failure ? 1 : 0;
    b->win_calls++;
    b->win_failures += failure ? 1 : 0;
}

static double window_rate(sluice_breaker *b)
{
    if (b->win_calls == 0 || b->win_calls < b->cfg.minimum_calls) {
        return -1;
    }
    return (double)b->win_failures * 100.0 / (double)b->win_calls;
}

/* ---- transitions (mu held) -------------------------------------------------- */

static void set_state(sluice_breaker *b, sluice_breaker_state to, uint64_t now)
{
    sluice_breaker_state from = b->state;
    if (from == to) {
        return;
    }
    b->state = to;
    b->generation++;
    b->probes_in_flight = 0;
    b->probe_successes = 0;
    b->open_until = 0;
    switch (to) {
    case SLUICE_BREAKER_OPEN:
        b->open_until = sluice__add_sat(now, b->cfg.open_duration_ns);
        b->st.opened++;
        break;
    case SLUICE_BREAKER_HALF_OPEN:
        b->half_open_until = sluice__add_sat(now, b->cfg.half_open_max_wait_ns);
        b->st.half_opened++;
        break;
    case SLUICE_BREAKER_CLOSED:
        window_reset(b);
        b->st.closed++;
        break;
    case SLUICE_BREAKER_STATE_COUNT_:
        SLUICE__ASSERT(!"a transition to the state count");
        break;
    }
    if (b->cfg.on_state_change) {
        if (b->ev_len == EVENT_RING) {
            b->ev_head = (b->ev_head + 1) % EVENT_RING; /* keep the newest */
            b->ev_len--;
            b->events_lost++;
        }
        b->events[(b->ev_head + b->ev_len) % EVENT_RING] = (event){from, to};
        b->ev_len++;
    }
}

/* Apply a due OPEN -> HALF_OPEN, and give up on probes that have not
 * reported within half_open_max_wait_ns (HALF_OPEN -> OPEN). */
static void tick(sluice_breaker *b, uint64_t now)
{
    if (b->state == SLUICE_BREAKER_OPEN && sluice__deadline_passed(now, b->open_until)) {
        set_state(b, SLUICE_BREAKER_HALF_OPEN, now);
    } else if (b->state == SLUICE_BREAKER_HALF_OPEN && b->probes_in_flight > 0 &&
               sluice__deadline_passed(now, b->half_open_until)) {
        b->st.half_open_expired++;
        set_state(b, SLUICE_BREAKER_OPEN, now);
    }
}

/* Unlock mu and deliver queued notifications, in order, outside mu. */
static void unlock_and_notify(sluice_breaker *b)
{
    bool pending = b->ev_len > 0;
    pthread_mutex_unlock(&b->mu);
    if (!pending || tls_delivering == b) {
        return; /* nothing, or an outer frame of this thread delivers it */
    }
    pthread_mutex_lock(&b->notify_mu);
    const sluice_breaker *saved = tls_delivering;
    tls_delivering = b;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        if (b->ev_len == 0) {
            pthread_mutex_unlock(&b->mu);
            break;
        }
        event ev = b->events[b->ev_head];
        b->ev_head = (b->ev_head + 1) % EVENT_RING;
        b->ev_len--;
        pthread_mutex_unlock(&b->mu);
        b->cfg.on_state_change(b, ev.from, ev.to, b->cfg.user);
    }
    tls_delivering = saved;
    pthread_mutex_unlock(&b->notify_mu);
}

/* ---- the public calls ------------------------------------------------------- */

sluice_err sluice_breaker_allow(sluice_breaker *b, uint64_t *ticket)
{
    if (!b || !ticket) {
        return SLUICE_EINVAL;
    }
    uint64_t now = sluice_clock_now(b->clock);
    pthread_mutex_lock(&b->mu);
    tick(b, now);
    sluice_err err = SLUICE_OK;
    switch (b->state) {
    case SLUICE_BREAKER_CLOSED:
        break;
    case SLUICE_BREAKER_OPEN:
        err = SLUICE_EOPEN;
        break;
    case SLUICE_BREAKER_HALF_OPEN:
        if (b->probes_in_flight + b->probe_successes >= b->cfg.half_open_max_calls) {
            err = SLUICE_EOPEN;
        } else {
            b->probes_in_flight++;
        }
        break;
    case SLUICE_BREAKER_STATE_COUNT_:
        SLUICE__ASSERT(!"a breaker in the state count");
        break;
    }
    if (err) {
        b->st.rejected++;
    } else {
        *ticket = b->generation;
    }
    unlock_and_notify(b);
    return err;
}

sluice_err sluice_breaker_record(sluice_breaker *b, uint64_t ticket, sluice_breaker_outcome outcome)
{
    if (!b || (outcome != SLUICE_BREAKER_SUCCESS && outcome != SLUICE_BREAKER_FAILURE &&
               outcome != SLUICE_BREAKER_IGNORED)) {
        return SLUICE_EINVAL;
    }
    uint64_t now = sluice_clock_now(b->clock);
    pthread_mutex_lock(&b->mu);
    /* The same time step as every reader (allow, state_get, stats_get):
     * a probe that reports after half_open_max_wait_ns finds the breaker
     * re-opened and its ticket stale, whether or not anything looked at
     * the breaker in between. */
    tick(b, now);
    switch (outcome) {
    case SLUICE_BREAKER_SUCCESS:
        b->st.successes++;
        break;
    case SLUICE_BREAKER_FAILURE:
        b->st.failures++;
        break;
    case SLUICE_BREAKER_IGNORED:
        b->st.ignored++;
        break;
    }
    if (ticket != b->generation) {
        b->st.late_results++;
        unlock_and_notify(b);
        return SLUICE_OK;
    }
    bool failure = outcome == SLUICE_BREAKER_FAILURE;
    if (b->state == SLUICE_BREAKER_CLOSED) {
        if (outcome != SLUICE_BREAKER_IGNORED) {
            window_add(b, failure, now);
            b->consecutive = failure ? b->consecutive + 1 : 0;
            bool trip = false;
            if (failure && !b->cfg.consecutive_disabled && b->consecutive >= b->cfg.consecutive_failures) {
                trip = true;
            }
            if (failure && !b->cfg.rate_disabled) {
                double rate = window_rate(b);
                if (rate >= 0 && rate >= b->cfg.failure_rate_percent) {
                    trip = true;
                }
            }
            if (trip) {
                set_state(b, SLUICE_BREAKER_OPEN, now);
            }
        }
    } else if (b->state == SLUICE_BREAKER_HALF_OPEN) {
        if (b->probes_in_flight > 0) {
            b->probes_in_flight--;
        }
        if (failure) {
            set_state(b, SLUICE_BREAKER_OPEN, now);
        } else if (outcome == SLUICE_BREAKER_SUCCESS) {
            b->probe_successes++;
            if (b->probe_successes >= b->cfg.half_open_max_calls) {
                set_state(b, SLUICE_BREAKER_CLOSED, now);
            }
        }
    }
    /* OPEN with a current ticket cannot happen: opening bumps the generation. */
    unlock_and_notify(b);
    return SLUICE_OK;
}

sluice_err sluice_breaker_call(sluice_breaker *b, int (*fn)(void *arg), void *arg, int *fn_result)
{
    if (!b || !fn) {
        return SLUICE_EINVAL;
    }
    uint64_t ticket;
    sluice_err err = sluice_breaker_allow(b, &ticket);
    if (err) {
        return err;
    }
    int rc = fn(arg);
    if (fn_result) {
        *fn_result = rc;
    }
    return sluice_breaker_record(b, ticket, rc == 0 ? SLUICE_BREAKER_SUCCESS : SLUICE_BREAKER_FAILURE);
}

sluice_breaker_state sluice_breaker_state_get(sluice_breaker *b)
{
    if (!b) {
        return SLUICE_BREAKER_CLOSED;
    }
    uint64_t now = sluice_clock_now(b->clock);
    pthread_mutex_lock(&b->mu);
    tick(b, now);
    sluice_breaker_state s = b->state;
    unlock_and_notify(b);
    return s;
}

sluice_err sluice_breaker_force(sluice_breaker *b, sluice_breaker_state state)
{
    if (!b || (state != SLUICE_BREAKER_CLOSED && state != SLUICE_BREAKER_OPEN &&
               state != SLUICE_BREAKER_HALF_OPEN)) {
        return SLUICE_EINVAL;
    }
    uint64_t now = sluice_clock_now(b->clock);
    pthread_mutex_lock(&b->mu);
    set_state(b, state, now);
    unlock_and_notify(b);
    return SLUICE_OK;
}

void sluice_breaker_stats_get(sluice_breaker *b, sluice_breaker_stats *out)
{
    if (!out) {
        return;
    }
    memset(out, 0, sizeof *out);
    if (!b) {
        return;
    }
    uint64_t now = sluice_clock_now(b->clock);
    pthread_mutex_lock(&b->mu);
    tick(b, now);
    if (b->buckets) {
        window_advance(b, now / SLUICE_NS_PER_SEC);
    }
    *out = b->st;
    out->state = b->state;
    out->window_calls = b->win_calls;
    out->window_failures = b->win_failures;
    out->failure_rate_percent = window_rate(b);
    out->consecutive_failures = b->consecutive;
    out->half_open_in_flight = b->probes_in_flight;
    out->open_until_ns = b->open_until;
    unlock_and_notify(b);
}

const char *sluice_breaker_name(const sluice_breaker *b)
{
    return b ? b->name : NULL;
}

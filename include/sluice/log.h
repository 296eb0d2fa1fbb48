/*
 * sluice/log.h - structured log lines for pools: logfmt (default) or JSON
 * lines, through a pluggable sink.
 *
 * A logger turns events into one line each:
 *
 *   logfmt: ts=2026-11-27T20:30:00.123Z level=info msg="pool resized" pool=ingest old=4 new=8
 *   json:   {"ts":"2026-11-27T20:30:00.123Z","level":"info","msg":"pool
 * resized","pool":"ingest","old":4,"new":8}
 *
 * What Sluice logs (never one line per task):
 *   - lifecycle events (sluice_log_pool_event): worker expiry and other
 *     exits, resizes, drain start and end with counts; worker starts only
 *     at debug level;
 *   - panics (sluice_log_panic) with the message, task label and the
 *     backtrace rendered by sluice_backtrace_format;
 *   - refused submits (SLUICE_EVENT_SUBMIT_REFUSED, or
 *     sluice_log_submit_error from the service's own submit path),
 *     rate-limited per (pool, error): at most one line per interval, and
 *     that line carries suppressed=<n>, the refusals not logged since the
 *     previous line.
 *
 * Wiring a pool (when the pool's `user` is free for the logger):
 *
 *     cfg.event_handler = sluice_log_event_handler;
 *     cfg.panic_handler = sluice_log_panic_handler;
 *     cfg.user = logger;
 *
 * otherwise call sluice_log_pool_event / sluice_log_panic from your own
 * handlers.
 *
 * Thread-safety: every call is safe from any thread. A logger formats on
 * the calling thread into a stack buffer and calls the sink once per line;
 * the sink is called under no lock of the logger, so it must be
 * thread-safe itself (the default stderr sink writes each line with one
 * write(2)). Lines longer than SLUICE_LOG_LINE_MAX are cut and end in
 * "..." (a line is at most SLUICE_LOG_LINE_MAX - 1 bytes, never a
 * newline in it). Every line is valid UTF-8 (and, in the JSON format, a
 * JSON object): a cut never splits a character, and a byte of a value
 * that is not UTF-8 is written as U+FFFD in JSON and as \xNN in logfmt.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/clock.h"
#include "sluice/common.h"
#include "sluice/pool.h"

typedef struct sluice_logger sluice_logger;

#define SLUICE_LOG_LINE_MAX 8192

/* Levels and formats, one row each (see sluice/pool.h on these lists). */
#define SLUICE_LOG_LEVEL_MAP(XX)                                                                             \
    XX(DEBUG, "debug")                                                                                       \
    XX(INFO, "info")                                                                                         \
    XX(WARN, "warn")                                                                                         \
    XX(ERROR, "error")

typedef enum sluice_log_level {
#define SLUICE_LOG_LEVEL_ENUM_(id, name) SLUICE_LOG_##id,
    SLUICE_LOG_LEVEL_MAP(SLUICE_LOG_LEVEL_ENUM_)
#undef SLUICE_LOG_LEVEL_ENUM_
        SLUICE_LOG_LEVEL_COUNT_ /* not a level; keep last */
} sluice_log_level;

#define SLUICE_LOG_FORMAT_MAP(XX)                                                                            \
    XX(LOGFMT, "logfmt")                                                                                     \
    XX(JSON, "json")

typedef enum sluice_log_format {
#define SLUICE_LOG_FORMAT_ENUM_(id, name) SLUICE_LOG_##id,
    SLUICE_LOG_FORMAT_MAP(SLUICE_LOG_FORMAT_ENUM_)
#undef SLUICE_LOG_FORMAT_ENUM_
        SLUICE_LOG_FORMAT_COUNT_ /* not a format; keep last */
} sluice_log_format;

/* A sink receives one complete line, without the trailing newline. */
typedef void (*sluice_log_sink_fn)(void *user, sluice_log_level level, const char *line, size_t len);

typedef struct sluice_log_config {
    sluice_log_format format;
    sluice_log_level min_level; /* lines below it are not formatted; default INFO */
    sluice_log_sink_fn sink;    /* NULL: stderr, one write(2) per line with "\n" */
    void *sink_user;
    /* At most one submit-error line per (pool, error) per interval;
     * 0 = 10 s. */
    uint64_t submit_error_interval_ns;
    /* Leave out the ts field (golden tests). */
    bool omit_timestamp;
    /* The clock the rate limit reads; NULL = system. */
    const sluice_clock *clock;
} sluice_log_config;

/* sluice_log_config_init - zero cfg and set the defaults (logfmt, INFO). */
SLUICE_API void sluice_log_config_init(sluice_log_config *cfg);

/*
 * sluice_logger_create - a logger. cfg may be NULL (defaults).
 * Returns: SLUICE_OK, SLUICE_EINVAL (out NULL or a bad enum value),
 * SLUICE_ENOMEM. Ownership: *out belongs to the caller
 * (sluice_logger_destroy). cfg is copied.
 */
SLUICE_API sluice_err sluice_logger_create(const sluice_log_config *cfg, sluice_logger **out);

/* sluice_logger_destroy - free. NULL is a no-op. No call may be running. */
SLUICE_API void sluice_logger_destroy(sluice_logger *lg);

/* sluice_log_level_name - "debug", "info", "warn", "error";
 * sluice_log_format_name - "logfmt", "json". "unknown" outside the lists.
 * Static strings; thread-safe. */
SLUICE_API const char *sluice_log_level_name(sluice_log_level level);
SLUICE_API const char *sluice_log_format_name(sluice_log_format format);

/*
 * sluice_log_parse_format / _parse_level - "logfmt" | "json";
 * "debug" | "info" | "warn" | "error". Returns SLUICE_OK or SLUICE_EINVAL.
 */
SLUICE_API sluice_err sluice_log_parse_format(const char *s, sluice_log_format *out);
SLUICE_API sluice_err sluice_log_parse_level(const char *s, sluice_log_level *out);

/*
 * sluice_log_kv - one line: msg plus string fields given as key, value
 * pairs ending with a NULL key:
 *
 *     sluice_log_kv(lg, SLUICE_LOG_WARN, "upstream slow", "host", h, "ms", "250", NULL);
 *
 * A NULL value is written as an empty string. Keys are written as given
 * (use [a-z0-9_]). Thread-safe.
 */
SLUICE_API void sluice_log_kv(sluice_logger *lg, sluice_log_level level, const char *msg, ...);
SLUICE_API void sluice_log_kvv(sluice_logger *lg, sluice_log_level level, const char *msg, va_list ap);

/*
 * sluice_log_pool_event - the line for a pool lifecycle event:
 *   WORKER_START   debug "worker started"      pool worker
 *   WORKER_EXIT    info  "worker exited"        pool worker reason
 * (expired|retired|fault|init-failed|shutdown); shutdown exits are debug, fault and init-failed warn RESIZE
 * info  "pool resized"         pool old new DRAIN_START    info  "drain started"        pool queued running
 *   DRAIN_END      info  "drain finished"       pool completed still_running handed_back elapsed_ms timed_out
 *                  (warn when timed_out)
 *   SUBMIT_REFUSED warn  "submit refused"       pool err suppressed (rate-limited)
 * Thread-safe; allocates nothing but the rate-limit table at create.
 */
SLUICE_API void sluice_log_pool_event(sluice_logger *lg, const sluice_pool_event *ev);

/*
 * sluice_log_panic - error "task panicked": pool worker task signal
 * caller_thread message backtrace (frames rendered by
 * sluice_backtrace_format, one per line inside the quoted value).
 */
SLUICE_API void sluice_log_panic(sluice_logger *lg, const sluice_panic_info *info);

/*
 * sluice_log_submit_error - count a refused submit of the service's own
 * and log it, rate-limited per (pool, err) like SUBMIT_REFUSED. Cheap when
 * suppressed (one clock read and a short lock).
 */
SLUICE_API void sluice_log_submit_error(sluice_logger *lg, const char *pool_name, sluice_err err);

/* Adapters with the pool config's handler signatures; `user` is the
 * sluice_logger. */
SLUICE_API void sluice_log_event_handler(const sluice_pool_event *ev, void *user);
SLUICE_API void sluice_log_panic_handler(const sluice_panic_info *info, void *user);
/* Adapter for sluice_lifecycle_config.log: an info line with msg=line. */
SLUICE_API void sluice_log_line_handler(void *user, const char *line);

#endif /* SLUICE_LOG_H */

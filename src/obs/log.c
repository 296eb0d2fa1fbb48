/*
 * src/obs/log.c - structured log lines (logfmt or JSON lines) for pool
 * events, panics and refused submits.
 *
 * Purpose. Give operators one line per event that matters (resize, worker
 * expiry, drain start and end, panic with its backtrace, refused submits
 * in aggregate), in a format their log pipeline parses, through whatever
 * sink the service already has. Never one line per task.
 *
 * Design. A line is formatted on the calling thread into a stack buffer of
 * SLUICE_LOG_LINE_MAX bytes and handed to the sink with one call. Values
 * that would overflow the buffer are cut and end in "..."; the line is
 * still well formed (the closing quote and brace always fit, because a
 * tail reserve is kept). Every line is UTF-8: a cut never splits a
 * character, and a byte that is not UTF-8 is written as U+FFFD (JSON) or
 * \xNN (logfmt, quoted). No allocation after create, so logging from a
 * panic handler is safe.
 *
 * Rate limit. Refused submits are keyed by (pool name, error) in a small
 * open-addressed table under `rl_lock`: the first refusal of a key is
 * logged at once, later ones within the interval are only counted, and the
 * next line after the interval says how many were suppressed. A full
 * table shares one overflow slot, so the bound on lines holds whatever
 * the number of pools.
 *
 * Locks: rl_lock only around the table lookup; never held while
 * formatting or calling the sink.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/enums.h"
#include "base/text.h"
#include "sluice/log.h"

#define RL_SLOTS 64
#define TAIL_RESERVE 48

typedef struct rl_slot {
    bool used;
    sluice_err err;
    char pool[SLUICE_POOL_NAME_MAX + 1];
    uint64_t last_ns;
    uint64_t suppressed;
} rl_slot;

struct sluice_logger {
    sluice_log_config cfg;
    pthread_mutex_t rl_lock;
    rl_slot slots[RL_SLOTS + 1]; /* the last one: shared overflow slot */
};

typedef struct line {
    char *buf;
    size_t len;
    size_t cap;
    bool json;
    bool first;
} line;

typedef struct field {
    const char *key;
    const char *str; /* when !is_num */
    uint64_t num;
    bool is_num;
} field;

void sluice_log_config_init(sluice_log_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->format = SLUICE_LOG_LOGFMT;
    cfg->min_level = SLUICE_LOG_INFO;
}

sluice_err sluice_logger_create(const sluice_log_config *cfg, sluice_logger **out)
{
    if (!out) {
        return SLUICE_EINVAL;
    }
    sluice_log_config def;
    if (!cfg) {
        sluice_log_config_init(&def);
        cfg = &def;
    }
    if ((unsigned)cfg->format > SLUICE_LOG_JSON || (unsigned)cfg->min_level > SLUICE_LOG_ERROR) {
        return SLUICE_EINVAL;
    }
    sluice_logger *lg = calloc(1, sizeof *lg);
    if (!lg) {
        return SLUICE_ENOMEM;
    }
    lg->cfg = *cfg;
    if (!lg->cfg.submit_error_interval_ns) {
        lg->cfg.submit_error_interval_ns = 10 * SLUICE_NS_PER_SEC;
    }
    pthread_mutex_init(&lg->rl_lock, NULL);
    *out = lg;
    return SLUICE_OK;
}

void sluice_logger_destroy(sluice_logger *lg)
{
    if (!lg) {
        return;
    }
    pthread_mutex_destroy(&lg->rl_lock);
    free(lg);
}

/* Names and parsers from the lists in sluice/log.h. */
SLUICE__ENUM_FUNCTIONS(sluice_log_level, SLUICE_LOG_LEVEL_MAP, 0, "unknown", sluice_log_level_name,
                       sluice_log_parse_level)
SLUICE__ENUM_FUNCTIONS(sluice_log_format, SLUICE_LOG_FORMAT_MAP, 0, "unknown", sluice_log_format_name,
                       sluice_log_parse_format)

/* ---- line building ------------------------------------------------------------- */

static bool room(const line *l, size_t n)
{
    return l->len + n + TAIL_RESERVE < l->cap;
}

static void raw(line *l, const char *s, size_t n)
{
    if (l->len + n >= l->cap) { /* only the reserve can get here; it always fits */
        n = l->cap - 1 - l->len;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    l->buf[l->len] = '\0';
}

static void raws(line *l, const char *s)
{
    raw(l, s, strlen(s));
}

static bool logfmt_needs_quotes(const char *s)
{
    if (!*s) {
        return true;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f) {
            return true;
        }
        if (c >= 0x80) { /* a byte that is not UTF-8 is written as \xNN, quoted */
            size_t k = sluice__utf8_len(s);
            if (k == 0) {
                return true;
            }
            s += k - 1;
        }
    }
    return false;
}

/* A string value, escaped for the format, cut with "..." at the budget. */
static void value_str(line *l, const char *s)
{
    bool quote = l->json || logfmt_needs_quotes(s);
    if (quote) {
        raws(l, "\"");
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        const char *rep = NULL;
        if (c == '"') {
            rep = "\\\"";
        } else if (c == '\\') {
            rep = "\\\\";
        } else if (c == '\n') {
            rep = "\\n";
        } else if (c == '\r') {
            rep = "\\r";
        } else if (c == '\t') {
            rep = "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, l->json ? "\\u%04x" : "\\x%02x", c);
            rep = esc;
        }
        /* A UTF-8 sequence goes whole or not at all (a cut never splits
         * one); a byte that is not UTF-8 becomes U+FFFD in JSON, which
         * must be UTF-8, and \xNN in logfmt, so every line is UTF-8. */
        size_t seq = 1;
        if (c >= 0x80) {
            seq = sluice__utf8_len(s);
            if (seq == 0) {
                seq = 1;
                snprintf(esc, sizeof esc, l->json ? "\\ufffd" : "\\x%02x", c);
                rep = esc;
            }
        }
        size_t n = rep ? strlen(rep) : seq;
        if (!room(l, n + 3)) {
            raws(l, "...");
            break;
        }
        if (rep) {
            raws(l, rep);
        } else {
            raw(l, s, seq);
            s += seq - 1;
        }
    }
    if (quote) {
        raws(l, "\"");
    }
}

static void add_field(line *l, const field *f)
{
    if (!room(l, strlen(f->key) + 8)) {
        return;
    }
    if (l->json) {
        raws(l, l->first ? "\"" : ",\"");
        raws(l, f->key);
        raws(l, "\":");
    } else {
        if (!l->first) {
            raws(l, " ");
        }
        raws(l, f->key);
        raws(l, "=");
    }
    l->first = false;
    if (f->is_num) {
        char num[24];
        snprintf(num, sizeof num, "%" PRIu64, f->num);
        raws(l, num);
    } else {
        value_str(l, f->str ? f->str : "");
    }
}

static void timestamp(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void stderr_sink(const char *text, size_t n)
{
    char buf[SLUICE_LOG_LINE_MAX + 1];
    memcpy(buf, text, n);
    buf[n] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, n + 1); /* one write: lines from threads do not interleave */
    (void)w;
}

static void emit(sluice_logger *lg, sluice_log_level level, const char *msg, const field *extra, size_t n,
                 va_list *kv)
{
    if (!lg || level < lg->cfg.min_level) {
        return;
    }
    char buf[SLUICE_LOG_LINE_MAX];
    line l = {buf, 0, sizeof buf, lg->cfg.format == SLUICE_LOG_JSON, true};
    buf[0] = '\0';
    if (l.json) {
        raws(&l, "{");
    }
    char ts[40];
    if (!lg->cfg.omit_timestamp) {
        timestamp(ts, sizeof ts);
        add_field(&l, &(field){"ts", ts, 0, false});
    }
    add_field(&l, &(field){"level", sluice_log_level_name(level), 0, false});
    add_field(&l, &(field){"msg", msg ? msg : "", 0, false});
    for (size_t i = 0; i < n; i++) {
        add_field(&l, &extra[i]);
    }
    if (kv) {
        const char *key;
        while ((key = va_arg(*kv, const char *)) != NULL) {
            const char *val = va_arg(*kv, const char *);
            add_field(&l, &(field){key, val, 0, false});
        }
    }
    if (l.json) {
        raws(&l, "}");
    }
    if (lg->cfg.sink) {
        lg->cfg.sink(lg->cfg.sink_user, level, l.buf, l.len);
    } else {
        stderr_sink(l.buf, l.len);
    }
}

void sluice_log_kvv(sluice_logger *lg, sluice_log_level level, const char *msg, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    emit(lg, level, msg, NULL, 0, &copy);
    va_end(copy);
}

void sluice_log_kv(sluice_logger *lg, sluice_log_level level, const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    emit(lg, level, msg, NULL, 0, &ap);
    va_end(ap);
}

/* ---- rate-limited submit errors ------------------------------------------------------ */

/* Returns true when a line is due, with *suppressed the refusals since the last one. */
static bool rate_check(sluice_logger *lg, const char *pool, sluice_err err, uint64_t *suppressed)
{
    uint64_t now = sluice_clock_now(lg->cfg.clock);
    uint64_t h = 1469598103934665603ull ^ (uint64_t)err;
    for (const unsigned char *p = (const unsigned char *)pool; *p; p++) {
        h = (h ^ *p) * 1099511628211ull;
    }
    bool due = false;
    pthread_mutex_lock(&lg->rl_lock);
    rl_slot *slot = &lg->slots[RL_SLOTS]; /* overflow unless found or inserted */
    for (size_t i = 0; i < RL_SLOTS; i++) {
        rl_slot *s = &lg->slots[(h + i) % RL_SLOTS];
        if (!s->used) {
            s->used = true;
            s->err = err;
            snprintf(s->pool, sizeof s->pool, "%s", pool);
            s->last_ns = 0;
            slot = s;
            due = true; /* first refusal of this key: log at once */
            break;
        }
        if (s->err == err && strncmp(s->pool, pool, SLUICE_POOL_NAME_MAX) == 0) {
            slot = s;
            break;
        }
    }
    if (!due && slot == &lg->slots[RL_SLOTS] && !slot->used) {
        slot->used = true;
        due = true;
    }
    if (!due && now - slot->last_ns >= lg->cfg.submit_error_interval_ns) {
        due = true;
    }
    if (due) {
        *suppressed = slot->suppressed;
        slot->suppressed = 0;
        slot->last_ns = now;
    } else {
        slot->suppressed++;
    }
    pthread_mutex_unlock(&lg->rl_lock);
    return due;
}

void sluice_log_submit_error(sluice_logger *lg, const char *pool_name, sluice_err err)
{
    if (!lg || SLUICE_LOG_WARN < lg->cfg.min_level) {
        return;
    }
    const char *pool = pool_name ? pool_name : "";
    uint64_t suppressed = 0;
    if (!rate_check(lg, pool, err, &suppressed)) {
        return;
    }
    field f[] = {
        {"pool", pool, 0, false},
        {"err", sluice_err_name(err), 0, false},
        {"suppressed", NULL, suppressed, true},
    };
    emit(lg, SLUICE_LOG_WARN, "submit refused", f, 3, NULL);
}

/* ---- pool events and panics ---------------------------------------------------------- */

void sluice_log_pool_event(sluice_logger *lg, const sluice_pool_event *ev)
{
    if (!lg || !ev) {
        return;
    }
    const char *pool = ev->pool_name ? ev->pool_name : "";
    switch (ev->kind) {
    case SLUICE_EVENT_WORKER_START: {
        field f[] = {{"pool", pool, 0, false}, {"worker", NULL, ev->worker_index, true}};
        emit(lg, SLUICE_LOG_DEBUG, "worker started", f, 2, NULL);
        break;
    }
    case SLUICE_EVENT_WORKER_EXIT: {
        const char *reason = ev->detail ? ev->detail : "";
        sluice_log_level lvl = SLUICE_LOG_INFO;
        if (strcmp(reason, "shutdown") == 0) {
            lvl = SLUICE_LOG_DEBUG;
        } else if (strcmp(reason, "fault") == 0 || strcmp(reason, "init-failed") == 0) {
            lvl = SLUICE_LOG_WARN;
        }
        field f[] = {
            {"pool", pool, 0, false}, {"worker", NULL, ev->worker_index, true}, {"reason", reason, 0, false}};
        emit(lg, lvl, "worker exited", f, 3, NULL);
        break;
    }
    case SLUICE_EVENT_RESIZE: {
        field f[] = {
            {"pool", pool, 0, false}, {"old", NULL, ev->old_value, true}, {"new", NULL, ev->new_value, true}};
        emit(lg, SLUICE_LOG_INFO, "pool resized", f, 3, NULL);
        break;
    }
    case SLUICE_EVENT_DRAIN_START: {
        field f[] = {{"pool", pool, 0, false},
                     {"queued", NULL, ev->new_value, true},
                     {"running", NULL, ev->old_value, true}};
        emit(lg, SLUICE_LOG_INFO, "drain started", f, 3, NULL);
        break;
    }
    case SLUICE_EVENT_DRAIN_END: {
        sluice_drain_report zero = {0};
        const sluice_drain_report *d = ev->drain ? ev->drain : &zero;
        field f[] = {
            {"pool", pool, 0, false},
            {"completed", NULL, d->completed, true},
            {"still_running", NULL, d->still_running, true},
            {"handed_back", NULL, d->handed_back, true},
            {"elapsed_ms", NULL, d->elapsed_ns / SLUICE_NS_PER_MS, true},
            {"timed_out", d->timed_out ? "true" : "false", 0, false},
        };
        emit(lg, d->timed_out ? SLUICE_LOG_WARN : SLUICE_LOG_INFO, "drain finished", f, 6, NULL);
        break;
    }
    case SLUICE_EVENT_SUBMIT_REFUSED:
        sluice_log_submit_error(lg, pool, ev->err);
        break;
    case SLUICE_EVENT_WORKER_START_FAILED: {
        field f[] = {{"pool", pool, 0, false},
                     {"failures", NULL, ev->new_value, true},
                     {"error", ev->detail ? ev->detail : sluice_strerror(ev->err), 0, false}};
        emit(lg, SLUICE_LOG_WARN, "worker thread start failed", f, 3, NULL);
        break;
    }
    default: {
        field f[] = {{"pool", pool, 0, false}, {"kind", NULL, (uint64_t)ev->kind, true}};
        emit(lg, SLUICE_LOG_INFO, "pool event", f, 2, NULL);
        break;
    }
    }
}

void sluice_log_panic(sluice_logger *lg, const sluice_panic_info *info)
{
    if (!lg || !info || SLUICE_LOG_ERROR < lg->cfg.min_level) {
        return;
    }
    char bt[4096];
    bt[0] = '\0';
    if (info->frames && info->frame_count > 0) {
        sluice_backtrace_format(info->frames, info->frame_count, bt, sizeof bt);
    }
    field f[] = {
        {"pool", info->pool_name ? info->pool_name : "", 0, false},
        {"worker", NULL, info->worker_index, true},
        {"task", info->task_label ? info->task_label : "", 0, false},
        {"signal", NULL, (uint64_t)(info->signal > 0 ? info->signal : 0), true},
        {"caller_thread", info->caller_thread ? "true" : "false", 0, false},
        {"message", info->message ? info->message : "", 0, false},
        {"backtrace", bt, 0, false},
    };
    emit(lg, SLUICE_LOG_ERROR, "task panicked", f, 7, NULL);
}

void sluice_log_event_handler(const sluice_pool_event *ev, void *user)
{
    sluice_log_pool_event((sluice_logger *)user, ev);
}

void sluice_log_panic_handler(const sluice_panic_info *info, void *user)
{
    sluice_log_panic((sluice_logger *)user, info);
}

void sluice_log_line_handler(void *user, const char *text)
{
    emit((sluice_logger *)user, SLUICE_LOG_INFO, text, NULL, 0, NULL);
}

/*
 * src/config/config.c - reading sluice.yaml: parse, environment overrides,
 * validation.
 *
 * Purpose. The file is the service's source of truth for its pools, so a
 * mistake in it must be caught before anything runs, and reported so that
 * a person can fix it without reading code: every message names the file,
 * line and column of the value, the dotted path of the key, what is wrong,
 * and the value that was found.
 *
 * Design. libyaml's document loader builds a node tree (anchors and
 * aliases resolved; every node carries its start mark), and this file walks
 * it against fixed key tables: a key that is not in the table is an error,
 * as is a duplicate key or a value of the wrong shape. Every scalar goes
 * through one setter per type (set_pool_value), which the environment
 * overrides reuse, so "workers: 0" in the file and SLUICE_POOL_PUSH_WORKERS=0
 * are parsed and reported the same way. Validation of the whole (required
 * keys, K > 0, min <= K, duplicate names, bucket order) runs once, after
 * the overrides, on the finished struct.
 *
 * All-or-nothing. The loader builds a fresh config in its own arena and
 * hands it out only when no error was found; on any error the arena is
 * freed and the caller's state is untouched. That is what makes "a bad file
 * never half-applies" true for loading; sluice_config_apply (apply.c) keeps
 * the same promise for reloading.
 *
 * Bounds. Input larger than 1 MiB is refused; libyaml keeps aliases as
 * shared nodes and this walk descends only into the known structure (at
 * most four levels), so alias tricks cannot make it loop or explode.
 *
 * No global state; no locks. Thread-safe on distinct configs.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "config/config_internal.h"

extern char **environ;

#define MAX_INPUT_BYTES (1u << 20)

/* ---- arena ---------------------------------------------------------- */

cfg_impl *sluice__cfg_new(const char *source)
{
    cfg_impl *c = calloc(1, sizeof *c);
    if (!c) {
        return NULL;
    }
    c->pub.source = sluice__cfg_strdup(c, source ? source : "<string>");
    if (!c->pub.source) {
        free(c);
        return NULL;
    }
    /* Defaults of the service section. */
    c->pub.service.name = sluice__cfg_strdup(c, "sluice");
    c->pub.service.listen = sluice__cfg_strdup(c, "127.0.0.1:9464");
    c->pub.service.drain_budget_ns = 30 * SLUICE_NS_PER_SEC;
    c->pub.service.orchestrator_grace_ns = 30 * SLUICE_NS_PER_SEC;
    c->pub.service.saturation_threshold_ns = 30 * SLUICE_NS_PER_SEC;
    if (!c->pub.service.name || !c->pub.service.listen) {
        sluice_config_free(&c->pub);
        return NULL;
    }
    return c;
}

void *sluice__cfg_alloc(cfg_impl *c, size_t size)
{
    cfg_block *b = calloc(1, sizeof *b + size);
    if (!b) {
        return NULL;
    }
    b->next = c->blocks;
    c->blocks = b;
    return b->data;
}

char *sluice__cfg_strdup(cfg_impl *c, const char *s)
{
    if (!s) {
        return NULL;
    }
    size_t n = strlen(s);
    char *d = sluice__cfg_alloc(c, n + 1);
    if (d) {
        memcpy(d, s, n + 1);
    }
    return d;
}

sluice_config_pool *sluice__cfg_add_pool(cfg_impl *c)
{
    if (c->pub.pool_count == c->pool_cap) {
        size_t cap = c->pool_cap ? c->pool_cap * 2 : 4;
        sluice_config_pool *np = realloc(c->pub.pools, cap * sizeof *np);
        if (!np) {
            return NULL;
        }
        c->pub.pools = np;
        c->pool_cap = cap;
    }
    sluice_config_pool *p = &c->pub.pools[c->pub.pool_count++];
    memset(p, 0, sizeof *p);
    p->overflow = SLUICE_OVERFLOW_BLOCK;
    p->fault_policy = SLUICE_FAULT_OFF;
    p->timing_sample_every = SLUICE_TIMING_SAMPLE_AUTO;
    p->timing = true;
    return p;
}

void sluice_config_free(sluice_config *cfg)
{
    if (!cfg) {
        return;
    }
    cfg_impl *c = (cfg_impl *)cfg;
    cfg_block *b = c->blocks;
    while (b) {
        cfg_block *next = b->next;
        free(b);
        b = next;
    }
    free(c->pub.pools);
    free(c->pub.downstreams);
    free(c);
}

/* ---- errors --------------------------------------------------------- */

void sluice__cfg_errf(cfg_errs *e, sluice_err kind, const sluice_config_pos *pos, const char *fmt, ...)
{
    if (e->count == 0) {
        e->first = kind;
    }
    e->count++;
    if (e->count > SLUICE__CONFIG_MAX_ERRORS) {
        return;
    }
    char line[1024];
    size_t n = 0;
    if (pos && pos->env) {
        n = (size_t)snprintf(line, sizeof line, "env %s: ", pos->env);
    } else if (pos && pos->file && pos->line) {
        n = (size_t)snprintf(line, sizeof line, "%s:%u:%u: ", pos->file, pos->line, pos->column);
    } else if (pos && pos->file) {
        n = (size_t)snprintf(line, sizeof line, "%s: ", pos->file);
    }
    if (n >= sizeof line) {
        n = sizeof line - 1;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    size_t ll = strlen(line);
    if (e->len + ll + 2 > sizeof e->buf) {
        return;
    }
    if (e->len) {
        e->buf[e->len++] = '\n';
    }
    memcpy(e->buf + e->len, line, ll + 1);
    e->len += ll;
}

void sluice__cfg_errs_copy(const cfg_errs *e, char *errbuf, size_t errlen)
{
    if (!errbuf || errlen == 0) {
        return;
    }
    if (e->count > SLUICE__CONFIG_MAX_ERRORS) {
        snprintf(errbuf, errlen, "%s\n(%u more errors not shown)", e->buf,
                 e->count - SLUICE__CONFIG_MAX_ERRORS);
    } else {
        snprintf(errbuf, errlen, "%s", e->buf);
    }
}

/* ---- names of enums ------------------------------------------------- */

const char *sluice_pool_kind_name(sluice_pool_kind kind)
{
    switch (kind) {
    case SLUICE_POOL_KIND_IO:
        return "io";
    case SLUICE_POOL_KIND_CPU:
        return "cpu";
    case SLUICE_POOL_KIND_MEMORY:
        return "memory";
    default:
        return "unset";
    }
}

typedef enum ktype {
    K_STR,
    K_UINT,
    K_SIZE,
    K_DUR,
    K_BOOL,
    K_OVERFLOW,
    K_FAULT,
    K_KIND,
    K_BUCKETS,
    K_DOUBLE,
} ktype;

typedef struct key_def {
    const char *name;
    ktype type;
} key_def;

/* Indexed by sluice_pool_key. */
static const key_def POOL_KEYS[SLUICE_PK_COUNT_] = {
    [SLUICE_PK_NAME] = {"name", K_STR},
    [SLUICE_PK_WORKERS] = {"workers", K_UINT},
    [SLUICE_PK_RATIONALE] = {"rationale", K_STR},
    [SLUICE_PK_MIN_WORKERS] = {"min_workers", K_UINT},
    [SLUICE_PK_QUEUE_CAPACITY] = {"queue_capacity", K_SIZE},
    [SLUICE_PK_OVERFLOW] = {"overflow", K_OVERFLOW},
    [SLUICE_PK_SUBMIT_TIMEOUT] = {"submit_timeout", K_DUR},
    [SLUICE_PK_IDLE_EXPIRY] = {"idle_expiry", K_DUR},
    [SLUICE_PK_DRAIN_TIMEOUT] = {"drain_timeout", K_DUR},
    [SLUICE_PK_PREWARM] = {"prewarm", K_BOOL},
    [SLUICE_PK_FAULT_POLICY] = {"fault_policy", K_FAULT},
    [SLUICE_PK_HISTOGRAM_BUCKETS] = {"histogram_buckets", K_BUCKETS},
    [SLUICE_PK_TIMING_SAMPLE_EVERY] = {"timing_sample_every", K_UINT},
    [SLUICE_PK_TIMING] = {"timing", K_BOOL},
    [SLUICE_PK_STACK_SIZE] = {"stack_size", K_SIZE},
    [SLUICE_PK_KIND] = {"kind", K_KIND},
    [SLUICE_PK_DOWNSTREAM] = {"downstream", K_STR},
    [SLUICE_PK_CALLER_DEADLINE] = {"caller_deadline", K_DUR},
    [SLUICE_PK_ALERT_SLOW_TASK_P99] = {"alert_slow_task_p99", K_DUR},
    [SLUICE_PK_ALERT_SUBMIT_WAIT_P99] = {"alert_submit_wait_p99", K_DUR},
    [SLUICE_PK_DEMO_LATENCY_P50] = {"demo_latency_p50", K_DUR},
    [SLUICE_PK_DEMO_LATENCY_P99] = {"demo_latency_p99", K_DUR},
    [SLUICE_PK_DEMO_WEIGHT] = {"demo_weight", K_DOUBLE},
};

const char *sluice_pool_key_name(sluice_pool_key key)
{
    if ((unsigned)key >= SLUICE_PK_COUNT_) {
        return NULL;
    }
    return POOL_KEYS[key].name;
}

enum service_key {
    SK_NAME,
    SK_LISTEN,
    SK_DRAIN_BUDGET,
    SK_SHUTDOWN_GRACE,
    SK_ORCH_GRACE,
    SK_SATURATION,
    SK_RUNBOOK,
    SK_COUNT
};
static const key_def SERVICE_KEYS[SK_COUNT] = {
    [SK_NAME] = {"name", K_STR},
    [SK_LISTEN] = {"listen", K_STR},
    [SK_DRAIN_BUDGET] = {"drain_budget", K_DUR},
    [SK_SHUTDOWN_GRACE] = {"shutdown_grace", K_DUR},
    [SK_ORCH_GRACE] = {"orchestrator_grace", K_DUR},
    [SK_SATURATION] = {"saturation_threshold", K_DUR},
    [SK_RUNBOOK] = {"runbook_base_url", K_STR},
};

/* Compare a written key with a canonical one, '-' reading as '_'. */
static bool key_eq(const char *written, const char *canon)
{
    for (; *written && *canon; written++, canon++) {
        char a = *written == '-' ? '_' : *written;
        if (a != *canon) {
            return false;
        }
    }
    return *written == '\0' && *canon == '\0';
}

static int find_key(const key_def *table, int count, const char *written)
{
    for (int i = 0; i < count; i++) {
        if (table[i].name && key_eq(written, table[i].name)) {
            return i;
        }
    }
    return -1;
}

static void list_keys(const key_def *table, int count, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < count && n < len; i++) {
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "", table[i].name);
    }
}

/* ---- scalar parsing ------------------------------------------------- */

sluice_err sluice_config_parse_duration(const char *text, uint64_t *out)
{
    if (!text || !out) {
        return SLUICE_EINVAL;
    }
    const char *s = text;
    while (*s == ' ') {
        s++;
    }
    if (!isdigit((unsigned char)*s)) {
        return SLUICE_EINVAL;
    }
    /* Integer and optional fraction, parsed by hand so "1e3s" and ".5s"
     * are refused and no precision is lost for integers. */
    uint64_t whole = 0;
    while (isdigit((unsigned char)*s)) {
        unsigned d = (unsigned)(*s - '0');
        if (whole > (UINT64_MAX - d) / 10) {
            return SLUICE_EINVAL;
        }
        whole = whole * 10 + d;
        s++;
    }
    uint64_t frac = 0, frac_scale = 1;
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s)) {
            return SLUICE_EINVAL;
        }
        while (isdigit((unsigned char)*s)) {
            if (frac_scale < 1000000000000ull) {
                frac = frac * 10 + (uint64_t)(*s - '0');
                frac_scale *= 10;
            }
            s++;
        }
    }
    uint64_t unit;
    if (*s == '\0') {
        if (whole == 0 && frac == 0) {
            *out = 0;
            return SLUICE_OK;
        }
        return SLUICE_EINVAL; /* a unit is required */
    } else if (strcmp(s, "ns") == 0) {
        unit = 1;
    } else if (strcmp(s, "us") == 0) {
        unit = SLUICE_NS_PER_US;
    } else if (strcmp(s, "ms") == 0) {
        unit = SLUICE_NS_PER_MS;
    } else if (strcmp(s, "s") == 0) {
        unit = SLUICE_NS_PER_SEC;
    } else if (strcmp(s, "m") == 0) {
        unit = 60 * SLUICE_NS_PER_SEC;
    } else if (strcmp(s, "h") == 0) {
        unit = 3600 * SLUICE_NS_PER_SEC;
    } else {
        return SLUICE_EINVAL;
    }
    if (whole > UINT64_MAX / unit) {
        return SLUICE_EINVAL;
    }
    uint64_t ns = whole * unit;
    /* frac / frac_scale * unit, without overflow: unit <= 3.6e12 and
     * frac_scale <= 1e12, so split the multiplication. */
    long double f = (long double)frac / (long double)frac_scale * (long double)unit;
    uint64_t fns = (uint64_t)(f + 0.5L);
    if (ns > UINT64_MAX - fns) {
        return SLUICE_EINVAL;
    }
    *out = ns + fns;
    return SLUICE_OK;
}

char *sluice_config_format_duration(uint64_t ns, char *buf, size_t len)
{
    static const struct {
        uint64_t unit;
        const char *name;
    } units[] = {
        {3600 * SLUICE_NS_PER_SEC, "h"}, {60 * SLUICE_NS_PER_SEC, "m"}, {SLUICE_NS_PER_SEC, "s"},
        {SLUICE_NS_PER_MS, "ms"},        {SLUICE_NS_PER_US, "us"},      {1, "ns"},
    };
    if (ns == 0) {
        snprintf(buf, len, "0s");
        return buf;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (ns % units[i].unit == 0) {
            snprintf(buf, len, "%llu%s", (unsigned long long)(ns / units[i].unit), units[i].name);
            return buf;
        }
    }
    return buf; /* not reached: unit 1 divides everything */
}

char *sluice_config_env_name(const char *pool_name, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "SLUICE_POOL_");
    for (const char *p = pool_name; *p && n + 2 < len; p++) {
        unsigned char ch = (unsigned char)*p;
        buf[n++] = isalnum(ch) ? (char)toupper(ch) : '_';
    }
    if (n + 1 < len) {
        buf[n++] = '_';
    }
    buf[n < len ? n : len - 1] = '\0';
    return buf;
}

/* Parse a non-negative integer. *neg is set when the text is a negative
 * integer (so K-like fields can say "must be > 0, got -1"). */
static bool parse_u64(const char *s, uint64_t *out, bool *neg)
{
    *neg = false;
    if (*s == '-') {
        const char *d = s + 1;
        if (!isdigit((unsigned char)*d)) {
            return false;
        }
        while (isdigit((unsigned char)*d)) {
            d++;
        }
        *neg = (*d == '\0');
        return false;
    }
    if (*s == '+') {
        s++;
    }
    if (!isdigit((unsigned char)*s)) {
        return false;
    }
    uint64_t v = 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s)) {
            return false;
        }
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static bool parse_double(const char *s, double *out)
{
    if (!*s) {
        return false;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) {
        return false;
    }
    *out = v;
    return true;
}

/* A bucket bound: a plain number is seconds; a duration is converted. */
static bool parse_bound(const char *s, double *out)
{
    uint64_t ns;
    if (sluice_config_parse_duration(s, &ns) == SLUICE_OK && strpbrk(s, "nsumh")) {
        *out = (double)ns / 1e9;
        return true;
    }
    return parse_double(s, out);
}

/* ---- the loader's state --------------------------------------------- */

typedef struct loader {
    cfg_impl *c;
    cfg_errs *e;
    yaml_document_t *doc;
    bool oom;
} loader;

static sluice_config_pos mark_pos(loader *L, const yaml_node_t *n)
{
    sluice_config_pos p = {L->c->pub.source, (unsigned)n->start_mark.line + 1,
                           (unsigned)n->start_mark.column + 1, NULL};
    return p;
}

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* Is the scalar a YAML null (empty / ~ / null) written plainly? */
static bool is_null_scalar(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return false;
    }
    const char *s = scalar(n);
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

/*
 * Set one pool key from its text. `path` is "pools[1]" for messages. Used
 * by the file walk and by the environment overrides alike.
 */
static void set_pool_value(loader *L, sluice_config_pool *p, const char *path, sluice_pool_key k,
                           const char *v, const sluice_config_pos *pos)
{
    const char *kn = POOL_KEYS[k].name;
    uint64_t u = 0;
    bool neg = false;
    bool ok = true;
    switch (k) {
    case SLUICE_PK_NAME:
    case SLUICE_PK_RATIONALE:
    case SLUICE_PK_DOWNSTREAM: {
        char *d = sluice__cfg_strdup(L->c, v);
        if (!d) {
            L->oom = true;
            return;
        }
        if (k == SLUICE_PK_NAME) {
            p->name = d;
        } else if (k == SLUICE_PK_RATIONALE) {
            p->rationale = d;
        } else {
            p->downstream = d;
        }
        break;
    }
    case SLUICE_PK_WORKERS:
    case SLUICE_PK_MIN_WORKERS:
    case SLUICE_PK_TIMING_SAMPLE_EVERY:
        if (k == SLUICE_PK_TIMING_SAMPLE_EVERY && strcasecmp(v, "auto") == 0) {
            p->timing_sample_every = SLUICE_TIMING_SAMPLE_AUTO;
            break;
        }
        if (!parse_u64(v, &u, &neg) || u > UINT_MAX) {
            if (neg && k == SLUICE_PK_WORKERS) {
                sluice__cfg_errf(L->e, SLUICE_EINVAL, pos, "%s.%s: must be > 0, got %s", path, kn, v);
            } else if (neg) {
                sluice__cfg_errf(L->e, SLUICE_EINVAL, pos, "%s.%s: must not be negative, got %s", path, kn,
                                 v);
            } else {
                sluice__cfg_errf(L->e, SLUICE_EINVAL, pos, "%s.%s: not an integer in 0..%u%s, got \"%s\"",
                                 path, kn, UINT_MAX, k == SLUICE_PK_TIMING_SAMPLE_EVERY ? " or \"auto\"" : "", v);
            }
            return;
        }
        if (k == SLUICE_PK_WORKERS) {
            p->workers = (unsigned)u;
        } else if (k == SLUICE_PK_MIN_WORKERS) {
            p->min_workers = (unsigned)u;
        } else {
            p->timing_sample_every = (unsigned)u;
        }
        break;
    case SLUICE_PK_QUEUE_CAPACITY:
    case SLUICE_PK_STACK_SIZE:
        if (k == SLUICE_PK_QUEUE_CAPACITY && (strcasecmp(v, "unbounded") == 0 ||
                                              strcasecmp(v, "infinite") == 0 || strcasecmp(v, "none") == 0)) {
            sluice__cfg_errf(
                L->e, SLUICE_EINVAL, pos,
                "%s.%s: must be > 0 (there is no unbounded queue; a queue without a bound turns a burst "
                "into an out-of-memory kill), got %s",
                path, kn, v);
            return;
        }
        if (!parse_u64(v, &u, &neg) || u > SIZE_MAX) {
            if (neg && k == SLUICE_PK_QUEUE_CAPACITY) {
                sluice__cfg_errf(L->e, SLUICE_EINVAL, pos,
                                 "%s.%s: must be > 0 (there is no unbounded queue), got %s", path, kn, v);
            } else {
                sluice__cfg_errf(L->e, SLUICE_EINVAL, pos, "%s.%s: not a non-negative integer, got \"%s\"",
                                 path, kn, v);
            }
            return;
        }
        if (k == SLUICE_PK_QUEUE_CAPACITY) {
            p->queue_capacity = (size_t)u;
        } else {
            p->stack_size = (size_t)u;
        }
        break;
    case SLUICE_PK_SUBMIT_TIMEOUT:
    case SLUICE_PK_IDLE_EXPIRY:
    case SLUICE_PK_DRAIN_TIMEOUT:
    case SLUICE_PK_CALLER_DEADLINE:
    case SLUICE_PK_ALERT_SLOW_TASK_P99:
    case SLUICE_PK_ALERT_SUBMIT_WAIT_P99:
    case SLUICE_PK_DEMO_LATENCY_P50:
    case SLUICE_PK_DEMO_LATENCY_P99: {
        if (sluice_config_parse_duration(v, &u) != SLUICE_OK) {
            sluice__cfg_errf(L->e, SLUICE_EINVAL, pos,
                             "%s.%s: not a duration (a number with a unit: ns, us, ms, s, m, h; for example "
                             "250ms), got \"%s\"",
                             path, kn, v);
            return;
        }
        uint64_t *dst = k == SLUICE_PK_SUBMIT_TIMEOUT          ? &p->submit_timeout_ns
                        : k == SLUICE_PK_IDLE_EXPIRY           ? &p->idle_expiry_ns
                        : k == SLUICE_PK_DRAIN_TIMEOUT         ? &p->drain_timeout_ns
                        : k == SLUICE_PK_CALLER_DEADLINE       ? &p->caller_deadline_ns
                        : k == SLUICE_PK_ALERT_SLOW_TASK_P99   ? &p->alert_slow_task_p99_ns
                        : k == SLUICE_PK_ALERT_SUBMIT_WAIT_P99 ? &p->alert_submit_wait_p99_ns
                        : k == SLUICE_PK_DEMO_LATENCY_P50      ? &p->demo_latency_p50_ns
                                                               : &p->demo_latency_p99_ns;
        *dst = u;
        break;
    }
    case SLUICE_PK_PREWARM:
    case SLUICE_PK_TIMING: {
        bool b;
        if (!parse_bool(v, &b)) {
            sluice__cfg_errf(L->e, SLUICE_EINVAL, pos, "%s.%s: not a boolean (true or false), got \"%s\"",
                             path, kn, v);
            return;
        }
        if (k == SLUICE_PK_PREWARM) {
            p->prewarm = b;
        } else {
            p->timing = b;
        }
        break;
    }
    case SLUICE_PK_OVERFLOW:
        if (key_eq(v, "block")) {
            p->overflow = SLUICE_OVERFLOW_BLOCK;
        } else if (key_eq(v, "reject")) {
            p->overflow = SLUICE_OVERFLOW_REJECT;
        } else if (key_eq(v, "caller_runs")) {
            p->overflow = SLUICE_OVERFLOW_CALLER_RUNS;
        } else if (key_eq(v, "drop_oldest")) {
            p->overflow = SLUICE_OVERFLOW_DROP_OLDEST;
        } else {
            ok = false;
            sluice__cfg_errf(L->e, SLUICE_EINVAL, pos,
                             "%s.%s: must be one of block, reject, caller_runs, drop_oldest, got \"%s\"",
                             path, kn, v);
        }
        break;
    case SLUICE_PK_FAULT_POLICY:
        if (strcmp(v, "off") == 0) {
            p->fault_policy = SLUICE_FAULT_OFF;
        } else if (strcmp(v, "reraise") == 0) {
            p->fault_policy = SLUICE_FAULT_RERAISE;
        } else if (strcmp(v, "recover") == 0) {
            p->fault_policy = SLUICE_FAULT_RECOVER;
        } else {
            ok = false;
            sluice__cfg_errf(L->e, SLUICE_EINVAL, pos,
                             "%s.%s: must be one of off, reraise, recover, got \"%s\"", path, kn, v);
        }
        break;
    case SLUICE_PK_KIND:
        if (strcmp(v, "io") == 0) {
            p->kind = SLUICE_POOL_KIND_IO;
        } else if (strcmp(v, "cpu") == 0) {
            p->kind = SLUICE_POOL_KIND_CPU;
        } else if (strcmp(v, "memory") == 0) {
            p->kind = SLUICE_POOL_KIND_MEMORY;
        } else {
            ok = false;
            sluice__cfg_errf(L->e, SLUICE_EINVAL, pos, "%s.%s: must be one of io, cpu, memory, got \"%s\"",
                             path, kn, v);
        }
        break;
    case SLUICE_PK_DEMO_WEIGHT: {
        double d;
        if (!parse_double(v, &d) || d < 0) {
            sluice__cfg_errf(L->e, SLUICE_EINVAL, pos, "%s.%s: must be a number >= 0, got \"%s\"", path, kn,
                             v);
            return;
        }
        p->demo_weight = d;
        break;
    }
    case SLUICE_PK_HISTOGRAM_BUCKETS: {
        /* The env form: a comma-separated list. (The file form is a YAML
         * list, handled by set_buckets_node.) */
        double tmp[SLUICE_HIST_MAX_BUCKETS];
        size_t n = 0;
        char item[64];
        const char *s = v;
        while (*s) {
            const char *comma = strchr(s, ',');
            size_t len = comma ? (size_t)(comma - s) : strlen(s);
            if (len >= sizeof item || n == SLUICE_HIST_MAX_BUCKETS) {
                sluice__cfg_errf(L->e, SLUICE_EINVAL, pos,
                                 "%s.%s: at most %d bounds, each a number, got \"%s\"", path, kn,
                                 SLUICE_HIST_MAX_BUCKETS, v);
                return;
            }
            memcpy(item, s, len);
            item[len] = '\0';
            char *it = item;
            while (*it == ' ') {
                it++;
            }
            if (!parse_bound(it, &tmp[n])) {
                sluice__cfg_errf(L->e, SLUICE_EINVAL, pos,
                                 "%s.%s: bound %zu is not a number of seconds or a duration, got \"%s\"",
                                 path, kn, n, it);
                return;
            }
            n++;
            s += len + (comma ? 1 : 0);
        }
        p->histogram_buckets = sluice__cfg_alloc(L->c, (n ? n : 1) * sizeof(double));
        if (!p->histogram_buckets) {
            L->oom = true;
            return;
        }
        memcpy(p->histogram_buckets, tmp, n * sizeof(double));
        p->histogram_bucket_count = n;
        break;
    }
    default:
        return;
    }
    if (!ok) {
        return;
    }
    p->set |= (uint64_t)1 << (unsigned)k;
    p->pos[k] = *pos;
}

static void set_buckets_node(loader *L, sluice_config_pool *p, const char *path, yaml_node_t *n)
{
    sluice_config_pos pos = mark_pos(L, n);
    const char *kn = POOL_KEYS[SLUICE_PK_HISTOGRAM_BUCKETS].name;
    if (n->type == YAML_SCALAR_NODE) {
        set_pool_value(L, p, path, SLUICE_PK_HISTOGRAM_BUCKETS, scalar(n), &pos);
        return;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "%s.%s: must be a list of seconds, got %s", path, kn,
                         node_kind(n));
        return;
    }
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count > SLUICE_HIST_MAX_BUCKETS) {
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "%s.%s: at most %d bounds, got %zu", path, kn,
                         SLUICE_HIST_MAX_BUCKETS, count);
        return;
    }
    double *b = sluice__cfg_alloc(L->c, (count ? count : 1) * sizeof(double));
    if (!b) {
        L->oom = true;
        return;
    }
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *it = yaml_document_get_node(L->doc, n->data.sequence.items.start[i]);
        sluice_config_pos ip = mark_pos(L, it);
        if (it->type != YAML_SCALAR_NODE || !parse_bound(scalar(it), &b[i])) {
            sluice__cfg_errf(L->e, SLUICE_EINVAL, &ip,
                             "%s.%s[%zu]: not a number of seconds or a duration, got %s%s%s", path, kn, i,
                             it->type == YAML_SCALAR_NODE ? "\"" : "",
                             it->type == YAML_SCALAR_NODE ? scalar(it) : node_kind(it),
                             it->type == YAML_SCALAR_NODE ? "\"" : "");
            return;
        }
    }
    p->histogram_buckets = b;
    p->histogram_bucket_count = count;
    p->set |= (uint64_t)1 << SLUICE_PK_HISTOGRAM_BUCKETS;
    p->pos[SLUICE_PK_HISTOGRAM_BUCKETS] = pos;
}

/* Iterate a mapping's pairs, reporting duplicate keys and non-scalar keys.
 * Returns false when the node is not a mapping (error reported). */
typedef void (*pair_fn)(loader *L, void *obj, const char *path, const char *key, yaml_node_t *keynode,
                        yaml_node_t *value);

static bool walk_mapping(loader *L, yaml_node_t *n, const char *path, void *obj, pair_fn fn)
{
    if (n->type != YAML_MAPPING_NODE) {
        sluice_config_pos pos = mark_pos(L, n);
        if (is_null_scalar(n)) {
            return true; /* an empty section */
        }
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "%s: must be a mapping (key: value lines), got %s", path,
                         node_kind(n));
        return false;
    }
    yaml_node_pair_t *start = n->data.mapping.pairs.start;
    yaml_node_pair_t *top = n->data.mapping.pairs.top;
    for (yaml_node_pair_t *pr = start; pr < top; pr++) {
        yaml_node_t *k = yaml_document_get_node(L->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(L->doc, pr->value);
        sluice_config_pos kp = mark_pos(L, k);
        if (k->type != YAML_SCALAR_NODE) {
            sluice__cfg_errf(L->e, SLUICE_EINVAL, &kp, "%s: keys must be plain words, got %s", path,
                             node_kind(k));
            continue;
        }
        bool dup = false;
        for (yaml_node_pair_t *q = start; q < pr; q++) {
            yaml_node_t *qk = yaml_document_get_node(L->doc, q->key);
            if (qk->type == YAML_SCALAR_NODE) {
                /* Compare in canonical form: "a-b" and "a_b" are one key. */
                const char *x = scalar(qk), *y = scalar(k);
                for (; *x && *y; x++, y++) {
                    if ((*x == '-' ? '_' : *x) != (*y == '-' ? '_' : *y)) {
                        break;
                    }
                }
                if (*x == '\0' && *y == '\0') {
                    dup = true;
                    sluice__cfg_errf(L->e, SLUICE_EINVAL, &kp, "%s.%s: duplicate key (first at line %u)",
                                     path, scalar(k), (unsigned)qk->start_mark.line + 1);
                    break;
                }
            }
        }
        if (!dup) {
            fn(L, obj, path, scalar(k), k, v);
        }
    }
    return true;
}

static bool want_scalar(loader *L, const char *path, const char *key, yaml_node_t *v)
{
    if (v->type == YAML_SCALAR_NODE) {
        return true;
    }
    sluice_config_pos pos = mark_pos(L, v);
    sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "%s.%s: must be a single value, got %s", path, key,
                     node_kind(v));
    return false;
}

static void pool_pair(loader *L, void *obj, const char *path, const char *key, yaml_node_t *kn,
                      yaml_node_t *v)
{
    sluice_config_pool *p = obj;
    int k = find_key(POOL_KEYS, SLUICE_PK_COUNT_, key);
    if (k < 0) {
        char known[1024];
        list_keys(POOL_KEYS, SLUICE_PK_COUNT_, known, sizeof known);
        sluice_config_pos pos = mark_pos(L, kn);
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "%s.%s: unknown key (known: %s)", path, key, known);
        return;
    }
    if (k == SLUICE_PK_HISTOGRAM_BUCKETS) {
        set_buckets_node(L, p, path, v);
        return;
    }
    if (!want_scalar(L, path, key, v)) {
        return;
    }
    sluice_config_pos pos = mark_pos(L, v);
    set_pool_value(L, p, path, (sluice_pool_key)k, scalar(v), &pos);
}

static void set_service_value(loader *L, int k, const char *v, const sluice_config_pos *pos)
{
    sluice_config_service *s = &L->c->pub.service;
    const char *kn = SERVICE_KEYS[k].name;
    if (SERVICE_KEYS[k].type == K_STR) {
        char *d = sluice__cfg_strdup(L->c, v);
        if (!d) {
            L->oom = true;
            return;
        }
        if (k == SK_NAME) {
            s->name = d;
        } else if (k == SK_LISTEN) {
            s->listen = d;
            s->pos_listen = *pos;
        } else {
            s->runbook_base_url = d;
        }
        return;
    }
    uint64_t ns;
    if (sluice_config_parse_duration(v, &ns) != SLUICE_OK) {
        sluice__cfg_errf(L->e, SLUICE_EINVAL, pos,
                         "service.%s: not a duration (a number with a unit: ns, us, ms, s, m, h), got \"%s\"",
                         kn, v);
        return;
    }
    if (k == SK_SATURATION && ns == 0) {
        sluice__cfg_errf(L->e, SLUICE_EINVAL, pos,
                         "service.%s: must be > 0 (how long a pool may stay saturated before /health/ready "
                         "turns 503), got \"%s\"",
                         kn, v);
        return;
    }
    if (k == SK_DRAIN_BUDGET) {
        s->drain_budget_ns = ns;
        s->pos_drain_budget = *pos;
    } else if (k == SK_SATURATION) {
        s->saturation_threshold_ns = ns;
        s->pos_saturation_threshold = *pos;
    } else if (k == SK_SHUTDOWN_GRACE) {
        s->shutdown_grace_ns = ns;
        s->pos_shutdown_grace = *pos;
    } else {
        s->orchestrator_grace_ns = ns;
        s->pos_orchestrator_grace = *pos;
    }
}

static void service_pair(loader *L, void *obj, const char *path, const char *key, yaml_node_t *kn,
                         yaml_node_t *v)
{
    int k = find_key(SERVICE_KEYS, SK_COUNT, key);
    if (k < 0) {
        char known[512];
        list_keys(SERVICE_KEYS, SK_COUNT, known, sizeof known);
        sluice_config_pos pos = mark_pos(L, kn);
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "service.%s: unknown key (known: %s)", key, known);
        return;
    }
    if (!want_scalar(L, "service", key, v)) {
        return;
    }
    sluice_config_pos pos = mark_pos(L, v);
    set_service_value(L, k, scalar(v), &pos);
}

typedef struct ds_ctx {
    sluice_config_downstream *d;
    size_t share_cap;
} ds_ctx;

static void share_pair(loader *L, void *obj, const char *path, const char *key, yaml_node_t *kn,
                       yaml_node_t *v)
{
    ds_ctx *dc = obj;
    sluice_config_downstream *d = dc->d;
    if (!want_scalar(L, path, key, v)) {
        return;
    }
    sluice_config_pos pos = mark_pos(L, v);
    uint64_t u;
    bool neg;
    if (!parse_u64(scalar(v), &u, &neg) || u > UINT_MAX) {
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "%s.%s: not a non-negative integer, got \"%s\"", path,
                         key, scalar(v));
        return;
    }
    if (d->share_count == dc->share_cap) {
        size_t cap = dc->share_cap ? dc->share_cap * 2 : 8;
        sluice_config_share *ns = sluice__cfg_alloc(L->c, cap * sizeof *ns);
        if (!ns) {
            L->oom = true;
            return;
        }
        if (d->share_count) {
            memcpy(ns, d->shares, d->share_count * sizeof *ns);
        }
        d->shares = ns;
        dc->share_cap = cap;
    }
    sluice_config_share *s = &d->shares[d->share_count++];
    s->service = sluice__cfg_strdup(L->c, key);
    s->limit = (unsigned)u;
    s->pos = pos;
    if (!s->service) {
        L->oom = true;
    }
}

static void downstream_pair(loader *L, void *obj, const char *path, const char *key, yaml_node_t *kn,
                            yaml_node_t *v)
{
    ds_ctx *dc = obj;
    sluice_config_downstream *d = dc->d;
    sluice_config_pos pos = mark_pos(L, v);
    if (key_eq(key, "downstream")) {
        if (want_scalar(L, path, key, v)) {
            d->name = sluice__cfg_strdup(L->c, scalar(v));
            L->oom |= d->name == NULL;
        }
    } else if (key_eq(key, "total_limit")) {
        if (want_scalar(L, path, key, v)) {
            uint64_t u;
            bool neg;
            if (!parse_u64(scalar(v), &u, &neg) || u == 0 || u > UINT_MAX) {
                sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos,
                                 "%s.total_limit: must be an integer > 0, got \"%s\"", path, scalar(v));
            } else {
                d->total_limit = (unsigned)u;
            }
        }
    } else if (key_eq(key, "shares")) {
        char sp[96];
        snprintf(sp, sizeof sp, "%s.shares", path);
        walk_mapping(L, v, sp, dc, share_pair);
    } else {
        sluice_config_pos kp = mark_pos(L, kn);
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &kp,
                         "%s.%s: unknown key (known: downstream, total_limit, shares)", path, key);
    }
}

static void walk_pools(loader *L, yaml_node_t *n)
{
    sluice_config_pos pos = mark_pos(L, n);
    if (n->type != YAML_SEQUENCE_NODE) {
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos,
                         "pools: must be a list of pools (\"- name: ...\" items), got %s", node_kind(n));
        return;
    }
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    for (size_t i = 0; i < count && !L->oom; i++) {
        yaml_node_t *it = yaml_document_get_node(L->doc, n->data.sequence.items.start[i]);
        sluice_config_pool *p = sluice__cfg_add_pool(L->c);
        if (!p) {
            L->oom = true;
            return;
        }
        p->entry_pos = mark_pos(L, it);
        char path[48];
        snprintf(path, sizeof path, "pools[%zu]", i);
        walk_mapping(L, it, path, p, pool_pair);
    }
}

static void walk_downstreams(loader *L, yaml_node_t *n)
{
    sluice_config_pos pos = mark_pos(L, n);
    if (n->type != YAML_SEQUENCE_NODE) {
        if (is_null_scalar(n)) {
            return;
        }
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos,
                         "downstream_budget: must be a list of {downstream, total_limit, shares}, got %s",
                         node_kind(n));
        return;
    }
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0) {
        return;
    }
    sluice_config *cfg = &L->c->pub;
    cfg->downstreams = calloc(count, sizeof *cfg->downstreams);
    if (!cfg->downstreams) {
        L->oom = true;
        return;
    }
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *it = yaml_document_get_node(L->doc, n->data.sequence.items.start[i]);
        sluice_config_downstream *d = &cfg->downstreams[cfg->downstream_count++];
        d->pos = mark_pos(L, it);
        char path[48];
        snprintf(path, sizeof path, "downstream_budget[%zu]", i);
        ds_ctx dc = {d, 0};
        walk_mapping(L, it, path, &dc, downstream_pair);
    }
}

static void top_pair(loader *L, void *obj, const char *path, const char *key, yaml_node_t *kn, yaml_node_t *v)
{
    bool *seen_pools = obj;
    if (key_eq(key, "service")) {
        walk_mapping(L, v, "service", NULL, service_pair);
    } else if (key_eq(key, "pools")) {
        *seen_pools = true;
        walk_pools(L, v);
    } else if (key_eq(key, "downstream_budget")) {
        walk_downstreams(L, v);
    } else {
        sluice_config_pos pos = mark_pos(L, kn);
        sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos,
                         "%s: unknown top-level key (known: service, pools, "
                         "downstream_budget)",
                         key);
    }
}

/* ---- environment overrides ------------------------------------------ */

static void apply_env(loader *L, const char *const *envp)
{
    sluice_config *cfg = &L->c->pub;
    for (const char *const *ep = envp; ep && *ep; ep++) {
        const char *var = *ep;
        const char *eq = strchr(var, '=');
        if (!eq) {
            continue;
        }
        size_t nlen = (size_t)(eq - var);
        const char *value = eq + 1;
        bool is_pool = nlen > 12 && strncmp(var, "SLUICE_POOL_", 12) == 0;
        bool is_service = nlen > 15 && strncmp(var, "SLUICE_SERVICE_", 15) == 0;
        if (!is_pool && !is_service) {
            continue;
        }
        char name[256];
        if (nlen >= sizeof name) {
            continue;
        }
        memcpy(name, var, nlen);
        name[nlen] = '\0';
        char *env_name = sluice__cfg_strdup(L->c, name);
        if (!env_name) {
            L->oom = true;
            return;
        }
        sluice_config_pos pos = {cfg->source, 0, 0, env_name};
        if (is_service) {
            char key[128];
            size_t i = 0;
            for (const char *s = name + 15; *s && i + 1 < sizeof key; s++) {
                key[i++] = (char)tolower((unsigned char)*s);
            }
            key[i] = '\0';
            int k = find_key(SERVICE_KEYS, SK_COUNT, key);
            if (k < 0) {
                char known[512];
                list_keys(SERVICE_KEYS, SK_COUNT, known, sizeof known);
                sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "service.%s: unknown key (known: %s)", key,
                                 known);
                continue;
            }
            set_service_value(L, k, value, &pos);
            continue;
        }
        /* SLUICE_POOL_<NAME>_<KEY>: find the pool whose prefix matches and
         * whose remainder is a known key; exactly one must. */
        int match_pool = -1, match_key = -1, matches = 0;
        bool prefix_seen = false;
        for (size_t i = 0; i < cfg->pool_count; i++) {
            if (!cfg->pools[i].name) {
                continue;
            }
            char prefix[SLUICE_POOL_NAME_MAX * 2 + 16];
            sluice_config_env_name(cfg->pools[i].name, prefix, sizeof prefix);
            size_t pl = strlen(prefix);
            if (strncmp(name, prefix, pl) != 0 || name[pl] == '\0') {
                continue;
            }
            prefix_seen = true;
            char key[128];
            size_t j = 0;
            for (const char *s = name + pl; *s && j + 1 < sizeof key; s++) {
                key[j++] = (char)tolower((unsigned char)*s);
            }
            key[j] = '\0';
            int k = find_key(POOL_KEYS, SLUICE_PK_COUNT_, key);
            if (k > 0) { /* the name itself cannot be overridden */
                if (matches == 0) {
                    match_pool = (int)i;
                    match_key = k;
                }
                matches++;
            }
        }
        if (matches == 0) {
            if (prefix_seen) {
                char known[1024];
                list_keys(POOL_KEYS + 1, SLUICE_PK_COUNT_ - 1, known, sizeof known);
                sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos, "%s: unknown pool key (known: %s, upper-cased)",
                                 name, known);
            } else {
                sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos,
                                 "%s: names no pool in %s (SLUICE_POOL_<NAME>_<KEY>, NAME upper-cased)", name,
                                 cfg->source);
            }
            continue;
        }
        if (matches > 1) {
            sluice__cfg_errf(L->e, SLUICE_EINVAL, &pos,
                             "%s: ambiguous: it matches more than one pool and key; rename "
                             "a pool",
                             name);
            continue;
        }
        char path[48];
        snprintf(path, sizeof path, "pools[%d]", match_pool);
        sluice_config_pool *p = &cfg->pools[match_pool];
        set_pool_value(L, p, path, (sluice_pool_key)match_key, value, &pos);
    }
}

/* ---- validation ----------------------------------------------------- */

static const sluice_config_pos *pool_pos(const sluice_config_pool *p, sluice_pool_key k)
{
    return sluice_config_pool_has(p, k) ? &p->pos[k] : &p->entry_pos;
}

static bool valid_pool_name(const char *s)
{
    if (!*s || strlen(s) > SLUICE_POOL_NAME_MAX) {
        return false;
    }
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!isalnum(ch) && ch != '_' && ch != '.' && ch != ':' && ch != '-') {
            return false;
        }
    }
    return true;
}

static bool valid_listen(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon) {
        return false; /* ":9464" (loopback) is allowed; a bare port is not */
    }
    uint64_t port;
    bool neg;
    return parse_u64(colon + 1, &port, &neg) && port <= 65535;
}

void sluice__cfg_validate(const sluice_config *cfg, cfg_errs *e)
{
    const sluice_config_service *s = &cfg->service;
    sluice_config_pos src = {cfg->source, 0, 0, NULL};
    if (!s->listen || !valid_listen(s->listen)) {
        sluice__cfg_errf(e, SLUICE_EINVAL, s->pos_listen.file ? &s->pos_listen : &src,
                         "service.listen: must be host:port with a port in 0..65535, got \"%s\"",
                         s->listen ? s->listen : "");
    }
    if (cfg->pool_count == 0) {
        sluice__cfg_errf(e, SLUICE_EINVAL, &src, "pools: at least one pool is required");
    }
    for (size_t i = 0; i < cfg->pool_count; i++) {
        const sluice_config_pool *p = &cfg->pools[i];
        char path[48];
        snprintf(path, sizeof path, "pools[%zu]", i);
        if (!p->name) {
            sluice__cfg_errf(e, SLUICE_EINVAL, &p->entry_pos, "%s.name: required", path);
        } else if (!valid_pool_name(p->name)) {
            sluice__cfg_errf(e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_NAME),
                             "%s.name: must be 1..%d characters of [A-Za-z0-9_.:-], got \"%s\"", path,
                             SLUICE_POOL_NAME_MAX, p->name);
        }
        if (!sluice_config_pool_has(p, SLUICE_PK_WORKERS)) {
            sluice__cfg_errf(
                e, SLUICE_EINVAL, &p->entry_pos,
                "%s.workers: required (K: the most tasks that run at once; say why in rationale)", path);
        } else if (p->workers == 0) {
            sluice__cfg_errf(e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_WORKERS),
                             "%s.workers: must be > 0, got 0", path);
        }
        if (!sluice_config_pool_has(p, SLUICE_PK_QUEUE_CAPACITY)) {
            sluice__cfg_errf(e, SLUICE_EINVAL, &p->entry_pos,
                             "%s.queue_capacity: required (there is no unbounded queue)", path);
        } else if (p->queue_capacity == 0) {
            sluice__cfg_errf(e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_QUEUE_CAPACITY),
                             "%s.queue_capacity: must be > 0 (there is no unbounded queue), got 0", path);
        }
        if (p->workers > 0 && p->min_workers > p->workers) {
            sluice__cfg_errf(e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_MIN_WORKERS),
                             "%s.min_workers: must be <= workers (%u), got %u", path, p->workers,
                             p->min_workers);
        }
        if (sluice_config_pool_has(p, SLUICE_PK_HISTOGRAM_BUCKETS)) {
            if (p->histogram_bucket_count == 0) {
                sluice__cfg_errf(
                    e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_HISTOGRAM_BUCKETS),
                    "%s.histogram_buckets: must list at least one bound (omit the key for the default)",
                    path);
            }
            for (size_t b = 0; b < p->histogram_bucket_count; b++) {
                double v = p->histogram_buckets[b];
                if (!(v > 0)) {
                    sluice__cfg_errf(e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_HISTOGRAM_BUCKETS),
                                     "%s.histogram_buckets[%zu]: must be > 0 seconds, got %g", path, b, v);
                    break;
                }
                if (b > 0 && !(v > p->histogram_buckets[b - 1])) {
                    sluice__cfg_errf(
                        e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_HISTOGRAM_BUCKETS),
                        "%s.histogram_buckets[%zu]: must be greater than the bound before it (%g), got %g",
                        path, b, p->histogram_buckets[b - 1], v);
                    break;
                }
            }
        }
        if (p->demo_latency_p50_ns && p->demo_latency_p99_ns &&
            p->demo_latency_p50_ns > p->demo_latency_p99_ns) {
            sluice__cfg_errf(e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_DEMO_LATENCY_P99),
                             "%s.demo_latency_p99: must be >= demo_latency_p50", path);
        }
        if (sluice_config_pool_has(p, SLUICE_PK_SUBMIT_TIMEOUT) && p->overflow != SLUICE_OVERFLOW_BLOCK &&
            p->submit_timeout_ns) {
            sluice__cfg_errf(
                e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_SUBMIT_TIMEOUT),
                "%s.submit_timeout: applies only to overflow: block (this pool has %s); remove it", path,
                sluice_overflow_name(p->overflow));
        }
        /* Duplicates: names equal ignoring case, or equal once turned into
         * an environment prefix, cannot be told apart by an override. */
        for (size_t j = 0; p->name && j < i; j++) {
            const sluice_config_pool *q = &cfg->pools[j];
            if (!q->name) {
                continue;
            }
            char a[SLUICE_POOL_NAME_MAX * 2 + 16], b[SLUICE_POOL_NAME_MAX * 2 + 16];
            sluice_config_env_name(p->name, a, sizeof a);
            sluice_config_env_name(q->name, b, sizeof b);
            if (strcmp(p->name, q->name) == 0) {
                sluice__cfg_errf(e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_NAME),
                                 "%s.name: duplicate pool name \"%s\" (also pools[%zu])", path, p->name, j);
            } else if (strcmp(a, b) == 0) {
                sluice__cfg_errf(
                    e, SLUICE_EINVAL, pool_pos(p, SLUICE_PK_NAME),
                    "%s.name: \"%s\" and pools[%zu] \"%s\" share the environment prefix %s; rename one", path,
                    p->name, j, q->name, a);
            }
        }
    }
    for (size_t i = 0; i < cfg->downstream_count; i++) {
        const sluice_config_downstream *d = &cfg->downstreams[i];
        if (!d->name) {
            sluice__cfg_errf(e, SLUICE_EINVAL, &d->pos, "downstream_budget[%zu].downstream: required", i);
        }
        if (d->total_limit == 0) {
            sluice__cfg_errf(e, SLUICE_EINVAL, &d->pos, "downstream_budget[%zu].total_limit: required, > 0",
                             i);
        }
        for (size_t j = 0; d->name && j < i; j++) {
            if (cfg->downstreams[j].name && strcmp(cfg->downstreams[j].name, d->name) == 0) {
                sluice__cfg_errf(
                    e, SLUICE_EINVAL, &d->pos,
                    "downstream_budget[%zu].downstream: duplicate \"%s\" (also downstream_budget[%zu])", i,
                    d->name, j);
            }
        }
    }
}

/* ---- load ----------------------------------------------------------- */

static sluice_err finish(cfg_impl *c, cfg_errs *e, bool oom, sluice_config **out, char *errbuf, size_t errlen)
{
    if (oom) {
        sluice_config_free(&c->pub);
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "out of memory while loading the config");
        }
        return SLUICE_ENOMEM;
    }
    if (e->count) {
        sluice__cfg_errs_copy(e, errbuf, errlen);
        sluice_config_free(&c->pub);
        return e->first;
    }
    if (errbuf && errlen) {
        errbuf[0] = '\0';
    }
    *out = &c->pub;
    return SLUICE_OK;
}

sluice_err sluice_config_load_string(const char *text, size_t len, const char *name,
                                     const sluice_config_load_opts *opts, sluice_config **out, char *errbuf,
                                     size_t errlen)
{
    if (errbuf && errlen) {
        errbuf[0] = '\0';
    }
    if (!text || !out) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "sluice_config_load_string: text and out are required");
        }
        return SLUICE_EINVAL;
    }
    cfg_errs *e = calloc(1, sizeof *e);
    cfg_impl *c = sluice__cfg_new(name);
    if (!e || !c) {
        free(e);
        sluice_config_free(c ? &c->pub : NULL);
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "out of memory while loading the config");
        }
        return SLUICE_ENOMEM;
    }
    if (len > MAX_INPUT_BYTES) {
        sluice_config_pos src = {c->pub.source, 0, 0, NULL};
        sluice__cfg_errf(e, SLUICE_EINVAL, &src, "file too large (%zu bytes; the limit is %u)", len,
                         MAX_INPUT_BYTES);
        sluice_err r = finish(c, e, false, out, errbuf, errlen);
        free(e);
        return r;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    bool oom = false;
    if (!yaml_parser_initialize(&parser)) {
        free(e);
        sluice_config_free(&c->pub);
        return SLUICE_ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        sluice_config_pos pos = {c->pub.source, (unsigned)parser.problem_mark.line + 1,
                                 (unsigned)parser.problem_mark.column + 1, NULL};
        sluice__cfg_errf(e, SLUICE_EPARSE, &pos, "not valid YAML: %s%s%s",
                         parser.problem ? parser.problem : "unknown problem", parser.context ? " " : "",
                         parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        sluice_err r = finish(c, e, false, out, errbuf, errlen);
        free(e);
        return r;
    }
    loader L = {c, e, &doc, false};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    sluice_config_pos src = {c->pub.source, 0, 0, NULL};
    bool seen_pools = false;
    if (!root) {
        sluice__cfg_errf(e, SLUICE_EINVAL, &src, "the file is empty: it needs at least a pools: list");
    } else if (root->type != YAML_MAPPING_NODE) {
        sluice_config_pos pos = mark_pos(&L, root);
        sluice__cfg_errf(e, SLUICE_EINVAL, &pos, "the top level must be a mapping (service:, pools:), got %s",
                         node_kind(root));
    } else {
        walk_mapping(&L, root, "", &seen_pools, top_pair);
        /* A second document is a mistake (a stray "---"), not ignored. */
        yaml_document_t doc2;
        if (yaml_parser_load(&parser, &doc2)) {
            yaml_node_t *r2 = yaml_document_get_root_node(&doc2);
            if (r2) {
                sluice_config_pos pos = mark_pos(&L, r2);
                sluice__cfg_errf(e, SLUICE_EINVAL, &pos,
                                 "a second YAML document: the file must hold exactly one");
            }
            yaml_document_delete(&doc2);
        }
    }
    /* Environment overrides need the pool names, so they run after the
     * walk; only when the file itself was fine, so every message is about
     * one problem, not its echoes. */
    if (e->count == 0 && !L.oom && !(opts && opts->no_env)) {
        const char *const *envp = (opts && opts->envp) ? opts->envp : (const char *const *)environ;
        apply_env(&L, envp);
    }
    if (e->count == 0 && !L.oom) {
        sluice__cfg_validate(&c->pub, e);
    }
    oom = L.oom;
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    sluice_err r = finish(c, e, oom, out, errbuf, errlen);
    free(e);
    return r;
}

sluice_err sluice_config_load_file(const char *path, const sluice_config_load_opts *opts, sluice_config **out,
                                   char *errbuf, size_t errlen)
{
    if (!path || !out) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "sluice_config_load_file: path and out are required");
        }
        return SLUICE_EINVAL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "%s: cannot open: %s", path, strerror(errno));
        }
        return SLUICE_EIO;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            break;
        }
        if (len == cap) {
            if (cap > MAX_INPUT_BYTES) {
                break; /* load_string reports "too large" */
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    if (!buf) {
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "%s: out of memory reading the file", path);
        }
        return SLUICE_ENOMEM;
    }
    if (rerr) {
        free(buf);
        if (errbuf && errlen) {
            snprintf(errbuf, errlen, "%s: read failed: %s", path, strerror(rerr));
        }
        return SLUICE_EIO;
    }
    sluice_err r = sluice_config_load_string(buf, len, path, opts, out, errbuf, errlen);
    free(buf);
    return r;
}

/* ---- accessors ------------------------------------------------------ */

const sluice_config_pool *sluice_config_find_pool(const sluice_config *cfg, const char *name)
{
    if (!cfg || !name) {
        return NULL;
    }
    for (size_t i = 0; i < cfg->pool_count; i++) {
        if (cfg->pools[i].name && strcmp(cfg->pools[i].name, name) == 0) {
            return &cfg->pools[i];
        }
    }
    return NULL;
}

void sluice_config_pool_to_pool_config(const sluice_config_pool *p, sluice_pool_config *out)
{
    sluice_pool_config_init(out);
    out->name = p->name;
    out->workers = p->workers;
    out->min_workers = p->min_workers;
    out->queue_capacity = p->queue_capacity;
    out->overflow = p->overflow;
    out->submit_timeout_ns = p->submit_timeout_ns;
    out->idle_expiry_ns = p->idle_expiry_ns;
    out->prewarm = p->prewarm;
    out->stack_size = p->stack_size;
    out->fault_mode = p->fault_policy;
    out->histogram_buckets = p->histogram_bucket_count ? p->histogram_buckets : NULL;
    out->histogram_bucket_count = p->histogram_bucket_count;
    out->timing_sample_every = p->timing_sample_every;
    out->timing_disabled = !p->timing;
}

uint64_t sluice_config_pool_drain_timeout(const sluice_config *cfg, const sluice_config_pool *p)
{
    if (p && p->drain_timeout_ns) {
        return p->drain_timeout_ns;
    }
    return cfg ? cfg->service.drain_budget_ns : 0;
}

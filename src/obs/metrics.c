/*
 * src/obs/metrics.c - the metrics registry and its rendering.
 *
 * Purpose. One place a service puts its own counters, gauges and
 * histograms, its scrape-time collectors and its pools, and one call that
 * renders all of them as Prometheus text 0.0.4 or OpenMetrics 1.0.
 *
 * Design. A metric (family) owns its series in a chained hash table keyed
 * by the label values, plus an insertion-ordered list for rendering. A
 * series is a handful of atomics: a double stored as its bit pattern
 * (counter or gauge value; histogram sum) and, for histograms, one counter
 * per bucket (not cumulative; the renderer accumulates). An update by
 * label values takes the metric's series lock for the lookup only; an
 * update through a cached sluice_series is lock-free (a CAS loop for the
 * double, fetch_add for the bucket counts). Series are never freed before
 * the registry, which is what makes caching them safe.
 *
 * Cardinality cap. When a metric already has max_series series, a new
 * label combination gets the metric's "other" series (all label values
 * "other", created on first need and not counted against the cap), and the
 * metric's overflow counter grows by one per lookup. The counter is
 * rendered as sluice_metrics_series_overflow_total{metric="..."}. A
 * series the caller made with every label value "other" before the cap
 * was reached is that series (one series per label set in the output).
 * The table starts small and doubles as series come (at most
 * TABLE_MAX_BUCKETS), so max_series, which may be SIZE_MAX (no cap),
 * costs nothing until series exist.
 *
 * Names. A family's name and the sample names it may write (a counter's
 * OpenMetrics family without _total, its _created, a histogram's
 * _bucket, _count, _sum and _created) are never another family's: register refuses a clash, and the
 * pool_ and sluice_ prefixes belong to the library's own families, so a
 * scraper never sees a family declared twice or a series written twice.
 *
 * Rendering. sluice_metrics_render holds the registry lock for the whole
 * scrape: metrics in registration order (each under its series lock while
 * its series are walked), then collectors (in the order added), then the
 * pool families, then the self-metrics. Updates by cached series never
 * wait for a scrape; updates by label values wait only while their own
 * metric is being rendered.
 *
 * Ordering. Values are read with relaxed loads: a scrape is a snapshot of
 * independent atomics, not a consistent cut. A histogram's _count is the
 * sum of its rendered buckets, so _count always equals the +Inf bucket.
 *
 * Lock order: reg->lock -> metric->lock. No pool lock is ever held with
 * either (the pool getters take and release their own).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "base/errbuf.h"
#include "base/rules.h"
#include "base/text.h"
#include "obs/obs_internal.h"
#include "sluice/metrics.h"

#define LABEL_VALUE_MAX 256
/* The most chains in a metric's series table; past it chains grow. */
#define TABLE_MAX_BUCKETS ((size_t)1 << 16)

struct sluice_series {
    sluice_metric *metric;
    struct sluice_series *hash_next; /* chain in metric->table */
    struct sluice_series *next;      /* insertion order */
    uint64_t hash;
    char *values[SLUICE_METRIC_MAX_LABELS];
    _Atomic uint64_t value_bits; /* counter/gauge value, histogram sum (double bits) */
    _Atomic uint64_t *buckets;   /* histogram: bucket_count + 1 counts */
};

struct sluice_metric {
    sluice_metrics *reg;
    struct sluice_metric *next; /* registration order; guarded by reg->lock */
    sluice_metric_type type;
    char *name;
    char *help;
    size_t label_count;
    char *label_names[SLUICE_METRIC_MAX_LABELS];
    size_t bucket_count;
    double *bounds;
    size_t max_series;
    _Atomic uint64_t overflow; /* lookups folded into "other" */

    /* Guarded by lock. */
    pthread_mutex_t lock;
    sluice_series **table;
    size_t table_size;   /* power of two */
    size_t series_count; /* not counting `other` */
    sluice_series *head, *tail;
    sluice_series *other;
};

typedef struct collector {
    sluice_collector_fn fn;
    void *user;
} collector;

struct sluice_metrics {
    size_t default_max_series;
    /* Guarded by lock. */
    pthread_mutex_t lock;
    sluice_metric *head, *tail;
    collector *collectors;
    size_t collector_count, collector_cap;
    sluice_pool **pools;
    sluice__tenant_fold **folds; /* parallel to pools: what the scrape keeps per fair pool */
    size_t pool_count, pool_cap;
    uint64_t write_errors; /* collector writes skipped, all scrapes */
};

/* ---- small helpers -------------------------------------------------------------- */

static uint64_t dbits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double bitsd(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static void atomic_add_double(_Atomic uint64_t *a, double v)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, dbits(bitsd(old) + v), memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) {
        memcpy(d, s, n);
    }
    return d;
}

bool sluice__valid_metric_name(const char *s)
{
    if (!s || !*s || strlen(s) > SLUICE_METRIC_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) {
            return false;
        }
    }
    return true;
}

bool sluice__valid_label_name(const char *s)
{
    if (!s || !*s || strlen(s) > SLUICE_METRIC_NAME_MAX || strncmp(s, "__", 2) == 0) {
        return false;
    }
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) {
            return false;
        }
    }
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Valid UTF-8 (no overlongs, no surrogates), at most LABEL_VALUE_MAX bytes. */
static bool valid_label_value(const char *s)
{
    size_t n = strlen(s);
    if (n > LABEL_VALUE_MAX) {
        return false;
    }
    for (size_t i = 0; i < n;) {
        size_t k = (unsigned char)s[i] < 0x80 ? 1 : sluice__utf8_len(s + i);
        if (k == 0) {
            return false;
        }
        i += k;
    }
    return true;
}

/* ---- doubles as text ------------------------------------------------------------- */

size_t sluice_format_double(double v, bool openmetrics, char *buf, size_t len)
{
    char tmp[40];
    if (isnan(v)) {
        snprintf(tmp, sizeof tmp, "NaN");
    } else if (isinf(v)) {
        snprintf(tmp, sizeof tmp, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(tmp, sizeof tmp, "%.0f", v); /* integers plainly: 20, not 2e+01 */
        if (openmetrics) {
            strcat(tmp, ".0");
        }
    } else {
        /* The shortest %g that reads back to the same double. */
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(tmp, sizeof tmp, "%.*g", prec, v);
            if (strtod(tmp, NULL) == v) {
                break;
            }
        }
        if (openmetrics && !strpbrk(tmp, ".eE")) {
            size_t n = strlen(tmp);
            if (n + 2 < sizeof tmp) {
                memcpy(tmp + n, ".0", 3);
            }
        }
    }
    size_t n = strlen(tmp);
    if (buf && len > 0) {
        size_t c = n < len - 1 ? n : len - 1;
        memcpy(buf, tmp, c);
        buf[c] = '\0';
    }
    return n;
}

/* ---- the writer ------------------------------------------------------------------ */

void sluice__expo_init(sluice_expo *w, sluice_expo_format format)
{
    memset(w, 0, sizeof *w);
    w->format = format;
}

void sluice__expo_put(sluice_expo *w, const char *s, size_t n)
{
    if (!w->oom && !sluice__text_append(&w->buf, &w->len, &w->cap, 4096, s, n)) {
        w->oom = true;
    }
}

void sluice__expo_puts(sluice_expo *w, const char *s)
{
    sluice__expo_put(w, s, strlen(s));
}

void sluice__expo_printf(sluice_expo *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (!w->oom && !sluice__text_vappendf(&w->buf, &w->len, &w->cap, 4096, fmt, ap)) {
        w->oom = true;
    }
    va_end(ap);
}

/* Escape a label value or help text (both formats): backslash, newline,
 * and the quote when asked. A byte that is not part of valid UTF-8 is
 * written as U+FFFD: the exposition is UTF-8, and one bad byte from a
 * collector would otherwise make a scraper refuse the whole scrape
 * (fuzz/fuzz_prom_text.c). */
static void put_escaped(sluice_expo *w, const char *s, bool quote_too)
{
    const char *start = s;
    while (*s) {
        const char *rep = NULL;
        size_t skip = 1;
        unsigned char ch = (unsigned char)*s;
        if (ch == '\\') {
            rep = "\\\\";
        } else if (ch == '\n') {
            rep = "\\n";
        } else if (ch == '"' && quote_too) {
            rep = "\\\"";
        } else if (ch >= 0x80) {
            skip = sluice__utf8_len(s);
            if (skip == 0) {
                rep = "\xef\xbf\xbd"; /* U+FFFD */
                skip = 1;
            }
        }
        if (rep) {
            sluice__expo_put(w, start, (size_t)(s - start));
            sluice__expo_puts(w, rep);
            start = s + skip;
        }
        s += skip;
    }
    sluice__expo_put(w, start, (size_t)(s - start));
}

static const char *type_name(sluice_metric_type t)
{
    switch (t) {
    case SLUICE_METRIC_COUNTER:
        return "counter";
    case SLUICE_METRIC_GAUGE:
        return "gauge";
    case SLUICE_METRIC_HISTOGRAM:
        return "histogram";
    }
    return "untyped";
}

void sluice_expo_family(sluice_expo *w, const char *name, sluice_metric_type type, const char *help)
{
    if (!w) {
        return;
    }
    w->family_ok = false;
    if (!sluice__valid_metric_name(name) || (type == SLUICE_METRIC_COUNTER && !ends_with(name, "_total")) ||
        (unsigned)type > SLUICE_METRIC_HISTOGRAM) {
        w->write_errors++;
        return;
    }
    snprintf(w->family, sizeof w->family, "%s", name);
    w->family_type = type;
    w->family_ok = true;
    /* OpenMetrics names a counter family without its _total suffix. */
    size_t flen = strlen(name);
    if (w->format == SLUICE_EXPO_OPENMETRICS && type == SLUICE_METRIC_COUNTER) {
        flen -= strlen("_total");
    }
    if (help && *help) {
        sluice__expo_puts(w, "# HELP ");
        sluice__expo_put(w, name, flen);
        sluice__expo_puts(w, " ");
        put_escaped(w, help, w->format == SLUICE_EXPO_OPENMETRICS);
        sluice__expo_puts(w, "\n");
    }
    sluice__expo_puts(w, "# TYPE ");
    sluice__expo_put(w, name, flen);
    sluice__expo_printf(w, " %s\n", type_name(type));
}

/* Whether every label has a valid name, distinct from the others, and a
 * value (the caller counts a refused write once). */
static bool labels_ok(const sluice_metric_label *labels, size_t n)
{
    if (n && !labels) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!sluice__valid_label_name(labels[i].name) || !labels[i].value) {
            return false;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(labels[i].name, labels[j].name) == 0) {
                return false;
            }
        }
    }
    return true;
}

/* name{l1="v1",...,extra_name="extra_value"} value\n */
static void put_sample(sluice_expo *w, const char *suffix, const sluice_metric_label *labels, size_t n,
                       const char *extra_name, const char *extra_value, double v)
{
    sluice__expo_puts(w, w->family);
    sluice__expo_puts(w, suffix);
    if (n > 0 || extra_name) {
        sluice__expo_puts(w, "{");
        for (size_t i = 0; i < n; i++) {
            if (i) {
                sluice__expo_puts(w, ",");
            }
            sluice__expo_puts(w, labels[i].name);
            sluice__expo_puts(w, "=\"");
            put_escaped(w, labels[i].value, true);
            sluice__expo_puts(w, "\"");
        }
        if (extra_name) {
            if (n) {
                sluice__expo_puts(w, ",");
            }
            sluice__expo_printf(w, "%s=\"%s\"", extra_name, extra_value);
        }
        sluice__expo_puts(w, "}");
    }
    char num[40];
    sluice_format_double(v, false, num, sizeof num); /* values: shortest form in both formats */
    sluice__expo_printf(w, " %s\n", num);
}

void sluice_expo_sample(sluice_expo *w, const sluice_metric_label *labels, size_t label_count, double v)
{
    if (!w || !w->family_ok || w->family_type == SLUICE_METRIC_HISTOGRAM || !labels_ok(labels, label_count)) {
        if (w && w->family_ok) {
            w->write_errors++;
        }
        return;
    }
    put_sample(w, "", labels, label_count, NULL, NULL, v);
}

/* Cumulative buckets; counts[] are per-bucket as the snapshots give them. */
static void put_histogram(sluice_expo *w, const sluice_metric_label *labels, size_t n, size_t bucket_count,
                          const double *bounds, const uint64_t *counts, double sum)
{
    bool om = w->format == SLUICE_EXPO_OPENMETRICS;
    uint64_t cum = 0;
    char le[40];
    for (size_t i = 0; i < bucket_count; i++) {
        cum += counts[i];
        sluice_format_double(bounds[i], om, le, sizeof le);
        put_sample(w, "_bucket", labels, n, "le", le, (double)cum);
    }
    cum += counts[bucket_count];
    put_sample(w, "_bucket", labels, n, "le", "+Inf", (double)cum);
    put_sample(w, "_count", labels, n, NULL, NULL, (double)cum);
    put_sample(w, "_sum", labels, n, NULL, NULL, sum);
}

void sluice_expo_histogram(sluice_expo *w, const sluice_metric_label *labels, size_t label_count,
                           const sluice_histogram *h)
{
    if (!w || !w->family_ok || w->family_type != SLUICE_METRIC_HISTOGRAM || !h ||
        h->bucket_count > SLUICE_HIST_MAX_BUCKETS || !labels_ok(labels, label_count)) {
        if (w && w->family_ok) {
            w->write_errors++;
        }
        return;
    }
    for (size_t i = 0; i < label_count; i++) {
        if (strcmp(labels[i].name, "le") == 0) {
            w->write_errors++;
            return;
        }
    }
    put_histogram(w, labels, label_count, h->bucket_count, h->bounds, h->counts, h->sum_seconds);
}

/* ---- the registry ---------------------------------------------------------------- */

sluice_err sluice_metrics_create(const sluice_metrics_config *cfg, sluice_metrics **out)
{
    if (!out) {
        return SLUICE_EINVAL;
    }
    sluice_metrics *reg = calloc(1, sizeof *reg);
    if (!reg) {
        return SLUICE_ENOMEM;
    }
    reg->default_max_series = cfg && cfg->max_series ? cfg->max_series : SLUICE_METRIC_DEFAULT_MAX_SERIES;
    pthread_mutex_init(&reg->lock, NULL);
    *out = reg;
    return SLUICE_OK;
}

static void series_free(sluice_series *s)
{
    for (size_t i = 0; i < SLUICE_METRIC_MAX_LABELS; i++) {
        free(s->values[i]);
    }
    free(s->buckets);
    free(s);
}

static void metric_free(sluice_metric *m)
{
    sluice_series *s = m->head;
    while (s) {
        sluice_series *next = s->next;
        series_free(s);
        s = next;
    }
    if (m->other) {
        series_free(m->other);
    }
    for (size_t i = 0; i < m->label_count; i++) {
        free(m->label_names[i]);
    }
    free(m->table);
    free(m->bounds);
    free(m->name);
    free(m->help);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

void sluice_metrics_destroy(sluice_metrics *reg)
{
    if (!reg) {
        return;
    }
    sluice_metric *m = reg->head;
    while (m) {
        sluice_metric *next = m->next;
        metric_free(m);
        m = next;
    }
    free(reg->collectors);
    for (size_t i = 0; i < reg->pool_count; i++) {
        sluice__tenant_fold_free(reg->folds[i]);
    }
    free(reg->folds);
    free(reg->pools);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

static bool same_shape(const sluice_metric *m, sluice_metric_type type, const sluice_metric_desc *d)
{
    if (m->type != type || m->label_count != d->label_count) {
        return false;
    }
    for (size_t i = 0; i < m->label_count; i++) {
        if (strcmp(m->label_names[i], d->label_names[i]) != 0) {
            return false;
        }
    }
    return true;
}

static sluice_series *series_new(sluice_metric *m, const char *const *values, uint64_t hash)
{
    sluice_series *s = calloc(1, sizeof *s);
    if (!s) {
        return NULL;
    }
    s->metric = m;
    s->hash = hash;
    for (size_t i = 0; i < m->label_count; i++) {
        s->values[i] = dupstr(values[i]);
        if (!s->values[i]) {
            series_free(s);
            return NULL;
        }
    }
    if (m->type == SLUICE_METRIC_HISTOGRAM) {
        s->buckets = calloc(m->bucket_count + 1, sizeof *s->buckets);
        if (!s->buckets) {
            series_free(s);
            return NULL;
        }
    }
    atomic_init(&s->value_bits, dbits(0.0));
    return s;
}

static uint64_t hash_values(const sluice_metric *m, const char *const *values)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < m->label_count; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++) {
            h = (h ^ *p) * 1099511628211ull;
        }
        h = (h ^ 0xFF) * 1099511628211ull; /* separator: ("ab","c") != ("a","bc") */
    }
    return h;
}

/* The names a family may use in either format (OpenMetrics: a family's
 * name must not clash with another family's possible sample names): its
 * own; a counter's family without _total, and its _created; a histogram's
 * _bucket, _count, _sum and _created. Returns how many were written. */
#define EXPOSED_MAX 5
static size_t exposed_names(sluice_metric_type type, const char *name,
                            char out[EXPOSED_MAX][SLUICE_METRIC_NAME_MAX + 16])
{
    size_t n = 0;
    snprintf(out[n++], SLUICE_METRIC_NAME_MAX + 16, "%s", name);
    if (type == SLUICE_METRIC_COUNTER) {
        int base = (int)(strlen(name) - strlen("_total"));
        snprintf(out[n++], SLUICE_METRIC_NAME_MAX + 16, "%.*s", base, name);
        snprintf(out[n++], SLUICE_METRIC_NAME_MAX + 16, "%.*s_created", base, name);
    } else if (type == SLUICE_METRIC_HISTOGRAM) {
        static const char *const suffix[] = {"_bucket", "_count", "_sum", "_created"};
        for (size_t i = 0; i < 4; i++) {
            snprintf(out[n++], SLUICE_METRIC_NAME_MAX + 16, "%s%s", name, suffix[i]);
        }
    }
    return n;
}

/* True when the exposition of (type, name) and of m would share a name. */
static bool names_clash(sluice_metric_type type, const char *name, const sluice_metric *m)
{
    char a[EXPOSED_MAX][SLUICE_METRIC_NAME_MAX + 16], b[EXPOSED_MAX][SLUICE_METRIC_NAME_MAX + 16];
    size_t na = exposed_names(type, name, a), nb = exposed_names(m->type, m->name, b);
    for (size_t i = 0; i < na; i++) {
        for (size_t j = 0; j < nb; j++) {
            if (strcmp(a[i], b[j]) == 0) {
                return true;
            }
        }
    }
    return false;
}

sluice_err sluice_metrics_register(sluice_metrics *reg, sluice_metric_type type, const sluice_metric_desc *d,
                                   sluice_metric **out, char *errbuf, size_t errlen)
{
    sluice__errf(errbuf, errlen, "%s", "");
    if (!reg || !d || !out) {
        sluice__errf(errbuf, errlen, "registry, desc and out are required");
        return SLUICE_EINVAL;
    }
    if ((unsigned)type > SLUICE_METRIC_HISTOGRAM) {
        sluice__errf(errbuf, errlen, "type: %d is not a metric type", (int)type);
        return SLUICE_EINVAL;
    }
    if (!sluice__valid_metric_name(d->name)) {
        sluice__errf(errbuf, errlen,
                     "name: '%s' is not a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*, at most %d bytes)",
                     d->name ? d->name : "(null)", SLUICE_METRIC_NAME_MAX);
        return SLUICE_EINVAL;
    }
    if (type == SLUICE_METRIC_COUNTER && !ends_with(d->name, "_total")) {
        sluice__errf(errbuf, errlen, "%s: a counter's name must end in _total", d->name);
        return SLUICE_EINVAL;
    }
    if (type != SLUICE_METRIC_COUNTER && ends_with(d->name, "_total")) {
        sluice__errf(errbuf, errlen, "%s: only counters may end in _total", d->name);
        return SLUICE_EINVAL;
    }
    if (strncmp(d->name, "pool_", 5) == 0) {
        sluice__errf(errbuf, errlen, "%s: the pool_ prefix is reserved for the pool collector", d->name);
        return SLUICE_EINVAL;
    }
    if (strncmp(d->name, "sluice_", 7) == 0) {
        sluice__errf(errbuf, errlen, "%s: the sluice_ prefix is reserved for the library's own families",
                     d->name);
        return SLUICE_EINVAL;
    }
    if (d->label_count > SLUICE_METRIC_MAX_LABELS || (d->label_count && !d->label_names)) {
        sluice__errf(errbuf, errlen, "%s: label_count %zu (at most %d, with label_names)", d->name,
                     d->label_count, SLUICE_METRIC_MAX_LABELS);
        return SLUICE_EINVAL;
    }
    for (size_t i = 0; i < d->label_count; i++) {
        if (!sluice__valid_label_name(d->label_names[i]) ||
            (type == SLUICE_METRIC_HISTOGRAM && strcmp(d->label_names[i], "le") == 0)) {
            sluice__errf(errbuf, errlen, "%s: label name '%s' is not valid", d->name,
                         d->label_names[i] ? d->label_names[i] : "(null)");
            return SLUICE_EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(d->label_names[i], d->label_names[j]) == 0) {
                sluice__errf(errbuf, errlen, "%s: label name '%s' repeated", d->name, d->label_names[i]);
                return SLUICE_EINVAL;
            }
        }
    }
    const double *bounds = sluice__hist_default_bounds();
    size_t nb = SLUICE_HIST_DEFAULT_BUCKETS;
    if (type == SLUICE_METRIC_HISTOGRAM && d->buckets) {
        char field[SLUICE_METRIC_NAME_MAX + 16];
        snprintf(field, sizeof field, "%s: buckets", d->name);
        sluice_err err = sluice__hist_bounds_check(d->buckets, d->bucket_count, field, errbuf, errlen);
        if (err) {
            return err;
        }
        bounds = d->buckets;
        nb = d->bucket_count;
    }

    pthread_mutex_lock(&reg->lock);
    for (sluice_metric *m = reg->head; m; m = m->next) {
        if (strcmp(m->name, d->name) == 0) {
            sluice_err r = SLUICE_OK;
            if (same_shape(m, type, d)) {
                *out = m;
            } else {
                sluice__errf(errbuf, errlen, "%s: already registered as a %s with %zu labels", d->name,
                             type_name(m->type), m->label_count);
                r = SLUICE_EINVAL;
            }
            pthread_mutex_unlock(&reg->lock);
            return r;
        }
    }
    for (sluice_metric *m = reg->head; m; m = m->next) {
        if (names_clash(type, d->name, m)) {
            sluice__errf(errbuf, errlen,
                         "%s: its exposition would clash with the %s %s (a counter's family is its name "
                         "without _total; counters and histograms may write _created, histograms _bucket, "
                         "_count and _sum)",
                         d->name, type_name(m->type), m->name);
            pthread_mutex_unlock(&reg->lock);
            return SLUICE_EINVAL;
        }
    }
    sluice_metric *m = calloc(1, sizeof *m);
    if (!m) {
        pthread_mutex_unlock(&reg->lock);
        return SLUICE_ENOMEM;
    }
    pthread_mutex_init(&m->lock, NULL);
    m->reg = reg;
    m->type = type;
    m->name = dupstr(d->name);
    m->help = dupstr(d->help ? d->help : "");
    m->label_count = d->label_count;
    bool ok = m->name && m->help;
    for (size_t i = 0; i < d->label_count && ok; i++) {
        m->label_names[i] = dupstr(d->label_names[i]);
        ok = m->label_names[i] != NULL;
    }
    if (ok && type == SLUICE_METRIC_HISTOGRAM) {
        m->bucket_count = nb;
        m->bounds = malloc(nb * sizeof *m->bounds);
        ok = m->bounds != NULL;
        if (ok) {
            memcpy(m->bounds, bounds, nb * sizeof *m->bounds);
        }
    }
    m->max_series = d->max_series ? d->max_series : reg->default_max_series;
    if (m->label_count == 0) {
        m->max_series = 1;
    }
    m->table_size = 16; /* grows with the series (table_grow_locked) */
    if (ok) {
        m->table = calloc(m->table_size, sizeof *m->table);
        ok = m->table != NULL;
    }
    if (ok && m->label_count == 0) {
        /* The one series of an unlabelled metric exists from the start, so
         * it renders as 0 before the first update. */
        sluice_series *s = series_new(m, NULL, hash_values(m, NULL));
        ok = s != NULL;
        if (ok) {
            m->table[s->hash & (m->table_size - 1)] = s;
            m->head = m->tail = s;
            m->series_count = 1;
        }
    }
    if (!ok) {
        metric_free(m);
        pthread_mutex_unlock(&reg->lock);
        return SLUICE_ENOMEM;
    }
    if (reg->tail) {
        reg->tail->next = m;
    } else {
        reg->head = m;
    }
    reg->tail = m;
    pthread_mutex_unlock(&reg->lock);
    *out = m;
    return SLUICE_OK;
}

static sluice_err register_short(sluice_metrics *reg, sluice_metric_type type, const char *name,
                                 const char *help, const char *const *label_names, const double *buckets,
                                 size_t bucket_count, sluice_metric **out)
{
    sluice_metric_desc d = {0};
    d.name = name;
    d.help = help;
    d.label_names = label_names;
    size_t n = 0;
    while (label_names && label_names[n]) {
        if (++n > SLUICE_METRIC_MAX_LABELS) {
            return SLUICE_EINVAL;
        }
    }
    d.label_count = n;
    d.buckets = buckets;
    d.bucket_count = bucket_count;
    return sluice_metrics_register(reg, type, &d, out, NULL, 0);
}

sluice_err sluice_metrics_counter(sluice_metrics *reg, const char *name, const char *help,
                                  const char *const *label_names, sluice_metric **out)
{
    return register_short(reg, SLUICE_METRIC_COUNTER, name, help, label_names, NULL, 0, out);
}

sluice_err sluice_metrics_gauge(sluice_metrics *reg, const char *name, const char *help,
                                const char *const *label_names, sluice_metric **out)
{
    return register_short(reg, SLUICE_METRIC_GAUGE, name, help, label_names, NULL, 0, out);
}

sluice_err sluice_metrics_histogram(sluice_metrics *reg, const char *name, const char *help,
                                    const char *const *label_names, const double *buckets,
                                    size_t bucket_count, sluice_metric **out)
{
    return register_short(reg, SLUICE_METRIC_HISTOGRAM, name, help, label_names, buckets, bucket_count, out);
}

/* ---- series ---------------------------------------------------------------------- */

/* The series with these values, or NULL. */
static sluice_series *find_locked(sluice_metric *m, const char *const *values, uint64_t h)
{
    SLUICE__ASSERT_HELD(&m->lock);
    sluice_series *s = m->table[h & (m->table_size - 1)];
    for (; s; s = s->hash_next) {
        if (s->hash != h) {
            continue;
        }
        size_t i = 0;
        while (i < m->label_count && strcmp(s->values[i], values[i]) == 0) {
            i++;
        }
        if (i == m->label_count) {
            break;
        }
    }
    return s;
}

/* Double the table once it holds as many series as chains (up to
 * TABLE_MAX_BUCKETS); on ENOMEM the old table goes on serving. */
static void table_grow_locked(sluice_metric *m)
{
    SLUICE__ASSERT_HELD(&m->lock);
    if (m->series_count < m->table_size || m->table_size >= TABLE_MAX_BUCKETS) {
        return;
    }
    size_t size = m->table_size * 2;
    sluice_series **t = calloc(size, sizeof *t);
    if (!t) {
        return;
    }
    for (sluice_series *s = m->head; s; s = s->next) {
        size_t b = s->hash & (size - 1);
        s->hash_next = t[b];
        t[b] = s;
    }
    free(m->table);
    m->table = t;
    m->table_size = size;
}

sluice_err sluice_metric_series(sluice_metric *m, const char *const *values, sluice_series **out)
{
    if (!m || !out || (m->label_count && !values)) {
        return SLUICE_EINVAL;
    }
    for (size_t i = 0; i < m->label_count; i++) {
        if (!values[i] || !valid_label_value(values[i])) {
            return SLUICE_EINVAL;
        }
    }
    uint64_t h = hash_values(m, values);
    sluice_err r = SLUICE_OK;
    pthread_mutex_lock(&m->lock);
    sluice_series *s = find_locked(m, values, h);
    if (!s && m->series_count >= m->max_series) {
        /* The cap: fold into "other", counted. A series the caller made
         * with every value "other" is that series: one series per label
         * set in the exposition. */
        atomic_fetch_add_explicit(&m->overflow, 1, memory_order_relaxed);
        static const char *const other[SLUICE_METRIC_MAX_LABELS] = {SLUICE_METRIC_OTHER, SLUICE_METRIC_OTHER,
                                                                    SLUICE_METRIC_OTHER, SLUICE_METRIC_OTHER};
        s = m->other ? m->other : find_locked(m, other, hash_values(m, other));
        if (!s) {
            s = m->other = series_new(m, other, 0);
        }
        r = s ? SLUICE_OK : SLUICE_ENOMEM;
    } else if (!s) {
        s = series_new(m, values, h);
        if (s) {
            size_t b = h & (m->table_size - 1);
            s->hash_next = m->table[b];
            m->table[b] = s;
            if (m->tail) {
                m->tail->next = s;
            } else {
                m->head = s;
            }
            m->tail = s;
            m->series_count++;
            table_grow_locked(m);
        } else {
            r = SLUICE_ENOMEM;
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (r == SLUICE_OK) {
        *out = s;
    }
    return r;
}

sluice_err sluice_series_add(sluice_series *s, double v)
{
    if (!s || isnan(v) || s->metric->type == SLUICE_METRIC_HISTOGRAM ||
        (s->metric->type == SLUICE_METRIC_COUNTER && v < 0)) {
        return SLUICE_EINVAL;
    }
    atomic_add_double(&s->value_bits, v);
    return SLUICE_OK;
}

sluice_err sluice_series_set(sluice_series *s, double v)
{
    if (!s || isnan(v) || s->metric->type != SLUICE_METRIC_GAUGE) {
        return SLUICE_EINVAL;
    }
    atomic_store_explicit(&s->value_bits, dbits(v), memory_order_relaxed);
    return SLUICE_OK;
}

sluice_err sluice_series_observe(sluice_series *s, double v)
{
    if (!s || isnan(v) || s->metric->type != SLUICE_METRIC_HISTOGRAM) {
        return SLUICE_EINVAL;
    }
    const sluice_metric *m = s->metric;
    size_t lo = 0, hi = m->bucket_count; /* first bound >= v, or the +Inf bucket */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->bounds[mid] < v) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    atomic_fetch_add_explicit(&s->buckets[lo], 1, memory_order_relaxed);
    atomic_add_double(&s->value_bits, v);
    return SLUICE_OK;
}

double sluice_series_value(const sluice_series *s)
{
    if (!s) {
        return 0;
    }
    if (s->metric->type == SLUICE_METRIC_HISTOGRAM) {
        uint64_t n = 0;
        for (size_t i = 0; i <= s->metric->bucket_count; i++) {
            n += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        }
        return (double)n;
    }
    return bitsd(atomic_load_explicit(&((sluice_series *)s)->value_bits, memory_order_relaxed));
}

sluice_err sluice_metric_add(sluice_metric *m, const char *const *values, double v)
{
    sluice_series *s;
    sluice_err r = sluice_metric_series(m, values, &s);
    return r ? r : sluice_series_add(s, v);
}

sluice_err sluice_metric_set(sluice_metric *m, const char *const *values, double v)
{
    sluice_series *s;
    sluice_err r = sluice_metric_series(m, values, &s);
    return r ? r : sluice_series_set(s, v);
}

sluice_err sluice_metric_observe(sluice_metric *m, const char *const *values, double v)
{
    sluice_series *s;
    sluice_err r = sluice_metric_series(m, values, &s);
    return r ? r : sluice_series_observe(s, v);
}

/* ---- collectors and pools ---------------------------------------------------------- */

sluice_err sluice_metrics_add_collector(sluice_metrics *reg, sluice_collector_fn fn, void *user)
{
    if (!reg || !fn) {
        return SLUICE_EINVAL;
    }
    sluice_err r = SLUICE_OK;
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->collector_count; i++) {
        if (reg->collectors[i].fn == fn && reg->collectors[i].user == user) {
            r = SLUICE_EBUSY;
        }
    }
    if (r == SLUICE_OK && reg->collector_count == reg->collector_cap) {
        size_t cap = reg->collector_cap ? reg->collector_cap * 2 : 4;
        collector *nc = realloc(reg->collectors, cap * sizeof *nc);
        if (nc) {
            reg->collectors = nc;
            reg->collector_cap = cap;
        } else {
            r = SLUICE_ENOMEM;
        }
    }
    if (r == SLUICE_OK) {
        reg->collectors[reg->collector_count++] = (collector){fn, user};
    }
    pthread_mutex_unlock(&reg->lock);
    return r;
}

sluice_err sluice_metrics_remove_collector(sluice_metrics *reg, sluice_collector_fn fn, void *user)
{
    if (!reg || !fn) {
        return SLUICE_EINVAL;
    }
    sluice_err r = SLUICE_ENOENT;
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->collector_count; i++) {
        if (reg->collectors[i].fn == fn && reg->collectors[i].user == user) {
            memmove(&reg->collectors[i], &reg->collectors[i + 1],
                    (reg->collector_count - i - 1) * sizeof *reg->collectors);
            reg->collector_count--;
            r = SLUICE_OK;
            break;
        }
    }
    pthread_mutex_unlock(&reg->lock);
    return r;
}

sluice_err sluice_metrics_add_pool(sluice_metrics *reg, sluice_pool *pool)
{
    if (!reg || !pool) {
        return SLUICE_EINVAL;
    }
    sluice_err r = SLUICE_OK;
    const char *name = sluice_pool_name(pool);
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->pool_count; i++) {
        if (reg->pools[i] == pool || strcmp(sluice_pool_name(reg->pools[i]), name) == 0) {
            r = SLUICE_EBUSY;
        }
    }
    if (r == SLUICE_OK && reg->pool_count == reg->pool_cap) {
        size_t cap = reg->pool_cap ? reg->pool_cap * 2 : 4;
        sluice_pool **np = realloc(reg->pools, cap * sizeof *np);
        if (np) {
            reg->pools = np;
        }
        sluice__tenant_fold **nf = np ? realloc(reg->folds, cap * sizeof *nf) : NULL;
        if (nf) {
            reg->folds = nf;
            reg->pool_cap = cap;
        } else {
            r = SLUICE_ENOMEM;
        }
    }
    if (r == SLUICE_OK) {
        reg->folds[reg->pool_count] = NULL; /* made at the first scrape of a fair pool */
        reg->pools[reg->pool_count++] = pool;
    }
    pthread_mutex_unlock(&reg->lock);
    return r;
}

sluice_err sluice_metrics_remove_pool(sluice_metrics *reg, sluice_pool *pool)
{
    if (!reg || !pool) {
        return SLUICE_EINVAL;
    }
    sluice_err r = SLUICE_ENOENT;
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->pool_count; i++) {
        if (reg->pools[i] == pool) {
            sluice__tenant_fold_free(reg->folds[i]);
            memmove(&reg->pools[i], &reg->pools[i + 1], (reg->pool_count - i - 1) * sizeof *reg->pools);
            memmove(&reg->folds[i], &reg->folds[i + 1], (reg->pool_count - i - 1) * sizeof *reg->folds);
            reg->pool_count--;
            r = SLUICE_OK;
            break;
        }
    }
    pthread_mutex_unlock(&reg->lock);
    return r;
}

sluice_err sluice_metrics_pool_named(sluice_metrics *reg, const char *name, const sluice_pool **out)
{
    if (!reg || !name || !out) {
        return SLUICE_EINVAL;
    }
    const sluice_pool *found = NULL;
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->pool_count && !found; i++) {
        if (strcmp(sluice_pool_name(reg->pools[i]), name) == 0) {
            found = reg->pools[i]; /* names are unique among added pools (add_pool) */
        }
    }
    pthread_mutex_unlock(&reg->lock);
    *out = found;
    return found ? SLUICE_OK : SLUICE_ENOENT;
}

/* ---- rendering --------------------------------------------------------------------- */

static void render_metric(sluice_expo *w, sluice_metric *m)
{
    sluice_expo_family(w, m->name, m->type, m->help);
    if (!w->family_ok) {
        return;
    }
    sluice_metric_label labels[SLUICE_METRIC_MAX_LABELS];
    uint64_t counts[SLUICE_HIST_MAX_BUCKETS + 1];
    pthread_mutex_lock(&m->lock);
    for (sluice_series *s = m->head;; s = s->next) {
        if (!s) {
            s = m->other; /* last, once */
            if (!s) {
                break;
            }
        }
        for (size_t i = 0; i < m->label_count; i++) {
            labels[i].name = m->label_names[i];
            labels[i].value = s->values[i];
        }
        double v = bitsd(atomic_load_explicit(&s->value_bits, memory_order_relaxed));
        if (m->type == SLUICE_METRIC_HISTOGRAM) {
            for (size_t i = 0; i <= m->bucket_count; i++) {
                counts[i] = atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
            }
            put_histogram(w, labels, m->label_count, m->bucket_count, m->bounds, counts, v);
        } else {
            put_sample(w, "", labels, m->label_count, NULL, NULL, v);
        }
        if (s == m->other) {
            break;
        }
    }
    pthread_mutex_unlock(&m->lock);
}

static void render_self(sluice_expo *w, sluice_metrics *reg)
{
    bool any = false;
    for (sluice_metric *m = reg->head; m && !any; m = m->next) {
        any = m->label_count > 0;
    }
    if (any) {
        sluice_expo_family(w, "sluice_metrics_series_overflow_total", SLUICE_METRIC_COUNTER,
                           "Updates whose label values were folded into \"other\" by the series cap.");
        for (sluice_metric *m = reg->head; m; m = m->next) {
            if (m->label_count > 0) {
                sluice_metric_label l = {"metric", m->name};
                sluice_expo_sample(w, &l, 1,
                                   (double)atomic_load_explicit(&m->overflow, memory_order_relaxed));
            }
        }
    }
    reg->write_errors += w->write_errors;
    sluice_expo_family(w, "sluice_metrics_write_errors_total", SLUICE_METRIC_COUNTER,
                       "Collector writes skipped for an invalid name, label or type.");
    sluice_expo_sample(w, NULL, 0, (double)reg->write_errors);
}

sluice_err sluice_metrics_render(sluice_metrics *reg, sluice_expo_format format, char **out, size_t *len)
{
    if (!reg || !out || (unsigned)format > SLUICE_EXPO_OPENMETRICS) {
        return SLUICE_EINVAL;
    }
    sluice_expo w;
    sluice__expo_init(&w, format);
    pthread_mutex_lock(&reg->lock);
    for (sluice_metric *m = reg->head; m; m = m->next) {
        render_metric(&w, m);
    }
    for (size_t i = 0; i < reg->collector_count; i++) {
        reg->collectors[i].fn(&w, reg->collectors[i].user);
        w.family_ok = false;
    }
    sluice__expo_pools(&w, reg->pools, reg->folds, reg->pool_count, reg->default_max_series);
    render_self(&w, reg);
    pthread_mutex_unlock(&reg->lock);
    if (format == SLUICE_EXPO_OPENMETRICS) {
        sluice__expo_puts(&w, "# EOF\n");
    }
    if (!w.buf && !w.oom) {
        sluice__expo_put(&w, "", 0);
    }
    if (w.oom) {
        free(w.buf);
        return SLUICE_ENOMEM;
    }
    *out = w.buf;
    if (len) {
        *len = w.len;
    }
    return SLUICE_OK;
}

/* ---- content negotiation ------------------------------------------------------------- */

static double media_q(const char *params)
{
    /* params: ";q=0.5;version=..." up to ',' or end */
    double q = 1.0;
    const char *p = params;
    while (*p && *p != ',') {
        if (*p == ';') {
            p++;
            while (*p == ' ' || *p == '\t') {
                p++;
            }
            if ((p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
                char *end;
                errno = 0;
                double v = strtod(p + 2, &end);
                if (end != p + 2 && errno == 0 && v >= 0 && v <= 1) {
                    q = v;
                }
            }
            continue;
        }
        p++;
    }
    return q;
}

sluice_expo_format sluice_expo_negotiate(const char *accept)
{
    if (!accept) {
        return SLUICE_EXPO_PROMETHEUS;
    }
    double om_q = -1, text_q = -1;
    const char *p = accept;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }
        const char *start = p;
        while (*p && *p != ';' && *p != ',' && *p != ' ' && *p != '\t') {
            p++;
        }
        size_t n = (size_t)(p - start);
        const char *params = p;
        while (*p && *p != ',') {
            p++;
        }
        if (n == 0) {
            continue;
        }
        double q = media_q(params);
        if (n == strlen("application/openmetrics-text") &&
            strncasecmp(start, "application/openmetrics-text", n) == 0) {
            om_q = q > om_q ? q : om_q;
        } else if ((n == 10 && strncasecmp(start, "text/plain", n) == 0) ||
                   (n == 3 && strncmp(start, "*/*", n) == 0) ||
                   (n == 6 && strncasecmp(start, "text/*", n) == 0)) {
            text_q = q > text_q ? q : text_q;
        }
    }
    return om_q > 0 && om_q >= text_q ? SLUICE_EXPO_OPENMETRICS : SLUICE_EXPO_PROMETHEUS;
}

const char *sluice_expo_content_type(sluice_expo_format format)
{
    return format == SLUICE_EXPO_OPENMETRICS ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                             : "text/plain; version=0.0.4; charset=utf-8";
}

/*
 * tools/sluice/ops_util.c - text buffers, quoting and formatting for the
 * operations subcommands.
 *
 * Design: every generator writes into an ops_buf and the command prints it
 * in one go, so a generator that fails half-way prints nothing (no torn
 * rule files in a pipeline). Quoting is done by one function per target
 * language (JSON, YAML, PromQL, Go templates, Markdown) because each has
 * its own escape rules and user text (pool rationales) reaches all of them.
 *
 * Ordering: outputs are deterministic: pools are sorted by name with
 * strcmp (byte order, independent of locale), numbers are printed with
 * fixed formats, and nothing depends on the time or the machine.
 */
#include "ops_util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void *ops_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fputs("sluice: out of memory\n", stderr);
        abort();
    }
    return q;
}

char *ops_xstrndup(const char *s, size_t n)
{
    char *d = ops_xrealloc(NULL, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void ops_buf_free(ops_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static void reserve(ops_buf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    b->data = ops_xrealloc(b->data, cap);
    b->cap = cap;
}

void ops_buf_putn(ops_buf *b, const char *s, size_t n)
{
    reserve(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void ops_buf_put(ops_buf *b, const char *s)
{
    ops_buf_putn(b, s, strlen(s));
}

void ops_buf_vprintf(ops_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return;
    reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void ops_buf_printf(ops_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ops_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

const char *ops_buf_str(const ops_buf *b)
{
    return b->data ? b->data : "";
}

/* The escapes JSON and YAML double-quoted strings share ('"', '\\', newline
 * and tab in C's short form), and how each writes the other control
 * bytes: JSON has a short "\r" and a "\u00XX" for the rest (DEL is not a
 * control character to it); YAML writes them, DEL included, as "\xXX". */
typedef struct dq_dialect {
    bool short_cr;       /* "\r" rather than the numeric form */
    bool del_is_control; /* 0x7f takes the numeric form too */
    bool unicode_form;   /* the numeric form is "\u00XX" (JSON), else "\xXX" (YAML) */
} dq_dialect;

static const dq_dialect json_dialect = {.short_cr = true, .del_is_control = false, .unicode_form = true};
static const dq_dialect yaml_dialect = {.short_cr = false, .del_is_control = true, .unicode_form = false};

static void put_double_quoted(ops_buf *b, const char *s, const dq_dialect *d)
{
    ops_buf_put(b, "\"");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"':
            ops_buf_put(b, "\\\"");
            break;
        case '\\':
            ops_buf_put(b, "\\\\");
            break;
        case '\n':
            ops_buf_put(b, "\\n");
            break;
        case '\t':
            ops_buf_put(b, "\\t");
            break;
        default: {
            bool numeric = *p < 0x20 || (*p == 0x7f && d->del_is_control);
            if (*p == '\r' && d->short_cr)
                ops_buf_put(b, "\\r");
            else if (numeric && d->unicode_form)
                ops_buf_printf(b, "\\u%04x", *p);
            else if (numeric)
                ops_buf_printf(b, "\\x%02x", *p);
            else
                ops_buf_putn(b, (const char *)p, 1);
        }
        }
    }
    ops_buf_put(b, "\"");
}

void ops_json_str(ops_buf *b, const char *s)
{
    put_double_quoted(b, s, &json_dialect);
}

void ops_yaml_str(ops_buf *b, const char *s)
{
    put_double_quoted(b, s, &yaml_dialect);
}

void ops_yaml_squote(ops_buf *b, const char *s)
{
    ops_buf_put(b, "'");
    for (const char *p = s ? s : ""; *p; p++) {
        if (*p == '\'')
            ops_buf_put(b, "''");
        else if (*p == '\n')
            ops_buf_put(b, " ");
        else
            ops_buf_putn(b, p, 1);
    }
    ops_buf_put(b, "'");
}

void ops_template_text(ops_buf *b, const char *s)
{
    /* Go templates have no escape for the delimiters; print them from a
     * string constant instead: {{ "{{" }}. */
    for (const char *p = s ? s : ""; *p; p++) {
        if (p[0] == '{' && p[1] == '{') {
            ops_buf_put(b, "{{ \"{{\" }}");
            p++;
        } else if (p[0] == '}' && p[1] == '}') {
            ops_buf_put(b, "{{ \"}}\" }}");
            p++;
        } else {
            ops_buf_putn(b, p, 1);
        }
    }
}

void ops_md_text(ops_buf *b, const char *s)
{
    for (const char *p = s ? s : ""; *p; p++) {
        if (*p == '|')
            ops_buf_put(b, "\\|");
        else if (*p == '\n' || *p == '\r')
            ops_buf_put(b, " ");
        else
            ops_buf_putn(b, p, 1);
    }
}

void ops_promql_str(ops_buf *b, const char *s)
{
    ops_buf_put(b, "\"");
    for (const char *p = s ? s : ""; *p; p++) {
        if (*p == '"' || *p == '\\')
            ops_buf_put(b, "\\");
        ops_buf_putn(b, p, 1);
    }
    ops_buf_put(b, "\"");
}

char *ops_format_seconds(uint64_t ns, char *buf, size_t len)
{
    /* ns / 1e9 printed with the fewest digits that are exact: integers of
     * nanoseconds have at most 9 decimals. */
    unsigned long long whole = (unsigned long long)(ns / 1000000000ull);
    unsigned long long frac = (unsigned long long)(ns % 1000000000ull);
    if (frac == 0) {
        snprintf(buf, len, "%llu", whole);
        return buf;
    }
    char digits[16];
    snprintf(digits, sizeof digits, "%09llu", frac);
    size_t n = strlen(digits);
    while (n > 0 && digits[n - 1] == '0')
        digits[--n] = '\0';
    snprintf(buf, len, "%llu.%s", whole, digits);
    return buf;
}

char *ops_runbook_anchor(const char *alert, const char *pool, char *buf, size_t len)
{
    /* The alert name is lower-cased (it is ours and has no punctuation);
     * the pool name is escaped so that distinct names never share an
     * anchor: [a-z0-9-] stay, an upper-case letter X becomes "_x", "_"
     * becomes "__", and any other byte "_" + two hex digits ("a.b" ->
     * "a_2eb", "a:b" -> "a_3ab"). Every escape starts with "_", and what
     * follows it tells the three apart, so the mapping is one-to-one. */
    size_t i = 0;
#define PUT(ch)                                                                                              \
    do {                                                                                                     \
        if (i + 1 < len)                                                                                     \
            buf[i++] = (ch);                                                                                 \
    } while (0)
    for (const char *p = alert; *p; p++)
        PUT((char)tolower((unsigned char)*p));
    PUT('-');
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)pool; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
            PUT((char)c);
        } else if (c >= 'A' && c <= 'Z') {
            PUT('_');
            PUT((char)(c - 'A' + 'a'));
        } else if (c == '_') {
            PUT('_');
            PUT('_');
        } else {
            PUT('_');
            PUT(hex[c >> 4]);
            PUT(hex[c & 15]);
        }
    }
#undef PUT
    if (len)
        buf[i] = '\0';
    return buf;
}

void ops_runbook_url(ops_buf *b, const sluice_config *cfg, const char *alert, const char *pool)
{
    char anchor[256];
    const char *base = cfg->service.runbook_base_url ? cfg->service.runbook_base_url : OPS_DEFAULT_RUNBOOK;
    ops_buf_printf(b, "%s#%s", base, ops_runbook_anchor(alert, pool, anchor, sizeof anchor));
}

static int by_name(const void *a, const void *b)
{
    const sluice_config_pool *pa = *(const sluice_config_pool *const *)a;
    const sluice_config_pool *pb = *(const sluice_config_pool *const *)b;
    return strcmp(pa->name ? pa->name : "", pb->name ? pb->name : "");
}

const sluice_config_pool **ops_sorted_pools(const sluice_config *cfg)
{
    if (cfg->pool_count == 0)
        return NULL;
    const sluice_config_pool **v = ops_xrealloc(NULL, cfg->pool_count * sizeof *v);
    for (size_t i = 0; i < cfg->pool_count; i++)
        v[i] = &cfg->pools[i];
    qsort(v, cfg->pool_count, sizeof *v, by_name);
    return v;
}

void ops_jw_init(ops_jw *w, ops_buf *out)
{
    memset(w, 0, sizeof *w);
    w->out = out;
}

static void jw_member(ops_jw *w, const char *key)
{
    if (w->depth > 0) {
        ops_buf_put(w->out, w->count[w->depth] ? ",\n" : "\n");
        if (w->count[w->depth] < 255)
            w->count[w->depth]++;
        for (int i = 0; i < w->depth; i++)
            ops_buf_put(w->out, "  ");
    }
    if (key) {
        ops_json_str(w->out, key);
        ops_buf_put(w->out, ": ");
    }
}

static void jw_open(ops_jw *w, const char *key, const char *bracket)
{
    jw_member(w, key);
    ops_buf_put(w->out, bracket);
    if (w->depth + 1 >= OPS_JW_MAX_DEPTH) {
        fputs("sluice: JSON nesting too deep\n", stderr);
        abort();
    }
    w->depth++;
    w->count[w->depth] = 0;
}

static void jw_close(ops_jw *w, const char *bracket)
{
    int had = w->count[w->depth] != 0;
    w->depth--;
    if (had) {
        ops_buf_put(w->out, "\n");
        for (int i = 0; i < w->depth; i++)
            ops_buf_put(w->out, "  ");
    }
    ops_buf_put(w->out, bracket);
    if (w->depth == 0)
        ops_buf_put(w->out, "\n");
}

void ops_jw_obj(ops_jw *w, const char *key)
{
    jw_open(w, key, "{");
}

void ops_jw_arr(ops_jw *w, const char *key)
{
    jw_open(w, key, "[");
}

void ops_jw_end_obj(ops_jw *w)
{
    jw_close(w, "}");
}

void ops_jw_end_arr(ops_jw *w)
{
    jw_close(w, "]");
}

void ops_jw_str(ops_jw *w, const char *key, const char *val)
{
    jw_member(w, key);
    if (val)
        ops_json_str(w->out, val);
    else
        ops_buf_put(w->out, "null");
}

void ops_jw_int(ops_jw *w, const char *key, long long val)
{
    jw_member(w, key);
    ops_buf_printf(w->out, "%lld", val);
}

void ops_jw_num(ops_jw *w, const char *key, double val)
{
    jw_member(w, key);
    if (isfinite(val))
        ops_buf_printf(w->out, "%.10g", val);
    else
        ops_buf_put(w->out, "null");
}

void ops_jw_bool(ops_jw *w, const char *key, int val)
{
    jw_member(w, key);
    ops_buf_put(w->out, val ? "true" : "false");
}

/* "512Mi", "2G", "1073741824": a byte count with an optional decimal (K, M,
 * G, T) or binary (Ki, Mi, Gi, Ti) suffix. Returns 0 and *out, or -1. */
int ops_parse_size(const char *v, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!*v || *v == '-')
        return -1;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v)
        return -1;
    static const struct {
        const char *suffix;
        unsigned long long mult;
    } units[] = {{"", 1},
                 {"K", 1000ull},
                 {"M", 1000000ull},
                 {"G", 1000000000ull},
                 {"T", 1000000000000ull},
                 {"Ki", 1ull << 10},
                 {"Mi", 1ull << 20},
                 {"Gi", 1ull << 30},
                 {"Ti", 1ull << 40}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            if (n == 0 || n > ULLONG_MAX / units[i].mult)
                return -1;
            *out = n * units[i].mult;
            return 0;
        }
    }
    return -1;
}

/*
 * tools/sluice/ops_util.h - small helpers shared by the operations
 * subcommands (plan, lint, rules, dashboard, runbook, inventory): a growable
 * text buffer, JSON/YAML/Markdown quoting, duration formatting, the stable
 * pool order and the runbook anchors that alerts link to.
 *
 * Ownership: an ops_buf owns its memory; ops_buf_free releases it. Every
 * function is thread-safe on distinct objects; nothing keeps global state.
 * Allocation failure aborts the program with a message (these are
 * command-line tools: there is nothing sensible to fall back to).
 */
#ifndef SLUICE_TOOLS_OPS_UTIL_H
#define SLUICE_TOOLS_OPS_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sluice/common.h"
#include "sluice/config.h"

/* Exit codes shared by every operations subcommand (docs/ops.md). */
enum {
    OPS_EXIT_OK = 0,       /* success; for lint: no findings */
    OPS_EXIT_FINDINGS = 1, /* lint/inventory found problems; plan cannot meet a constraint */
    OPS_EXIT_USAGE = 2,    /* bad flags, unreadable or invalid input */
};

typedef struct ops_buf {
    char *data; /* NUL-terminated; NULL until the first append */
    size_t len;
    size_t cap;
} ops_buf;

/* realloc, and malloc as ops_xrealloc(NULL, n), that never return NULL:
 * out of memory prints "sluice: out of memory" and aborts. */
void *ops_xrealloc(void *p, size_t n);
/* A NUL-terminated copy of s[0..n) from ops_xrealloc; the caller frees it. */
char *ops_xstrndup(const char *s, size_t n);

void ops_buf_free(ops_buf *b);
void ops_buf_put(ops_buf *b, const char *s);
void ops_buf_putn(ops_buf *b, const char *s, size_t n);
void ops_buf_printf(ops_buf *b, const char *fmt, ...) SLUICE_PRINTF(2, 3);
void ops_buf_vprintf(ops_buf *b, const char *fmt, va_list ap);
/* The contents, "" when empty (never NULL). */
const char *ops_buf_str(const ops_buf *b);

/* A JSON string literal, quotes included (control characters as \uXXXX). */
void ops_json_str(ops_buf *b, const char *s);
/* A YAML double-quoted scalar, quotes included. */
void ops_yaml_str(ops_buf *b, const char *s);
/* A YAML single-quoted scalar ('' for a quote): easier to read for PromQL. */
void ops_yaml_squote(ops_buf *b, const char *s);
/* Text for a Prometheus alert template: "{{" and "}}" in user text are
 * written so that Go's text/template prints them literally. The result
 * still needs ops_yaml_str. */
void ops_template_text(ops_buf *b, const char *s);
/* Text for one Markdown table cell or line: '|' escaped, newlines as spaces. */
void ops_md_text(ops_buf *b, const char *s);
/* A PromQL string literal (double quotes, backslash escapes). */
void ops_promql_str(ops_buf *b, const char *s);

/* Seconds for PromQL thresholds: 0.25, 1, 0.0001 (shortest exact form, %.17g at worst).
 * Durations as written in sluice.yaml ("250ms") are sluice_config_format_duration
 * and sluice_config_parse_duration (sluice/config.h), so flags and files share
 * one grammar. */
char *ops_format_seconds(uint64_t ns, char *buf, size_t len);

/* "512Mi", "2G", "1073741824": a byte count above zero with an optional
 * decimal (K, M, G, T) or binary (Ki, Mi, Gi, Ti) suffix. Returns 0 and
 * *out, or -1 (nothing written) for anything else or an overflow. */
int ops_parse_size(const char *v, unsigned long long *out);

/* The anchor of one runbook entry: "<alert>-<pool>", the alert lower-cased
 * and the pool name escaped one-to-one into [a-z0-9_-] (upper-case X ->
 * "_x", "_" -> "__", any other byte outside [a-z0-9-] -> "_" + two hex
 * digits), so pools named "a.b", "a:b", "a-b" and "A-b" get distinct
 * anchors. Both the generated rules (runbook_url) and the runbook (<a id>)
 * use it. Returns buf (truncated to len - 1 bytes). */
char *ops_runbook_anchor(const char *alert, const char *pool, char *buf, size_t len);
/* The runbook_url of one alert: base (service.runbook_base_url, or
 * OPS_DEFAULT_RUNBOOK when unset) + "#" + anchor. */
void ops_runbook_url(ops_buf *b, const sluice_config *cfg, const char *alert, const char *pool);
#define OPS_DEFAULT_RUNBOOK "ops/runbook.md"

/* The pools of cfg in name order (stable output whatever the file order).
 * Returns a malloc'ed array of cfg->pool_count pointers (NULL when there are
 * none); the caller frees the array only. */
const sluice_config_pool **ops_sorted_pools(const sluice_config *cfg);

/* Names as written in sluice.yaml come from the public headers:
 * sluice_pool_kind_name (sluice/config.h), sluice_overflow_name and
 * sluice_fault_mode_name (sluice/pool.h). */

/*
 * A pretty-printing JSON writer (2-space indent, one member per line), so
 * that generated JSON diffs line by line. `key` is NULL inside arrays and
 * for the top-level value. Nesting depth is limited to OPS_JW_MAX_DEPTH.
 */
#define OPS_JW_MAX_DEPTH 32
typedef struct ops_jw {
    ops_buf *out;
    int depth;
    unsigned char count[OPS_JW_MAX_DEPTH]; /* members written at each level (saturating) */
} ops_jw;
void ops_jw_init(ops_jw *w, ops_buf *out);
void ops_jw_obj(ops_jw *w, const char *key);
void ops_jw_arr(ops_jw *w, const char *key);
void ops_jw_end_obj(ops_jw *w);
void ops_jw_end_arr(ops_jw *w);
void ops_jw_str(ops_jw *w, const char *key, const char *val); /* NULL val writes null */
void ops_jw_int(ops_jw *w, const char *key, long long val);
void ops_jw_num(ops_jw *w, const char *key, double val); /* non-finite writes null */
void ops_jw_bool(ops_jw *w, const char *key, int val);

#endif /* SLUICE_TOOLS_OPS_UTIL_H */

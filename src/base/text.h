/*
 * src/base/text.h - the growable-text append (and its printf form) that
 * the exposition writer (src/obs/metrics.c), the admin server's response
 * buffer (src/admin/http.c) and the cluster's status report
 * (src/cluster/report.c) share.
 *
 * Header-only on purpose: sluice_admin is a separate library that users
 * link against the shared libsluice, where internal sluice__ functions
 * are hidden (-fvisibility=hidden), so a helper it shares with src/obs
 * must be compiled into it. Each caller keeps its own struct and its own
 * out-of-memory policy (both latch an `oom` flag and fail the response).
 *
 * No locks: a buffer belongs to one thread while it is written.
 */
#ifndef SLUICE_BASE_TEXT_H
#define SLUICE_BASE_TEXT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Make room for n more bytes and a NUL after the text *buf (length *len,
 * capacity *cap, all zero for an empty buffer), doubling the capacity
 * from first_cap as needed. Returns false, leaving the text as it was,
 * when memory runs out.
 */
static inline bool sluice__text_reserve(char **buf, size_t *len, size_t *cap, size_t first_cap, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t grown = *cap ? *cap : first_cap;
        while (*len + n + 1 > grown) {
            grown *= 2;
        }
        char *nb = realloc(*buf, grown);
        if (!nb) {
            return false;
        }
        *buf = nb;
        *cap = grown;
    }
    return true;
}

/*
 * Append s[0..n) to the NUL-terminated text (as sluice__text_reserve).
 * Returns false, leaving the text as it was, when memory runs out.
 */
static inline bool sluice__text_append(char **buf, size_t *len, size_t *cap, size_t first_cap, const char *s,
                                       size_t n)
{
    if (!sluice__text_reserve(buf, len, cap, first_cap, n)) {
        return false;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return true;
}

/*
 * Append printf-formatted text (fmt, ap), of any length: a short result
 * is formatted once on the stack, a longer one a second time straight
 * into the grown buffer. Returns false, leaving the text as it was, when
 * memory runs out; a formatting error appends nothing and returns true.
 * ap is consumed (va_end is the caller's).
 */
static inline bool sluice__text_vappendf(char **buf, size_t *len, size_t *cap, size_t first_cap,
                                         const char *fmt, va_list ap)
{
    char tmp[512];
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    bool ok = true;
    if (n >= 0 && (size_t)n < sizeof tmp) {
        ok = sluice__text_append(buf, len, cap, first_cap, tmp, (size_t)n);
    } else if (n >= 0) {
        ok = sluice__text_reserve(buf, len, cap, first_cap, (size_t)n);
        if (ok) {
            vsnprintf(*buf + *len, (size_t)n + 1, fmt, again);
            *len += (size_t)n;
        }
    }
    va_end(again);
    return ok;
}

#endif /* SLUICE_BASE_TEXT_H */

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
 * sluice__utf8_len is the one UTF-8 check those writers and the logger
 * (src/obs/log.c) use, so every text they emit is UTF-8.
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

/*
 * The length of the valid UTF-8 sequence at s (2 to 4 bytes: no overlong
 * forms, no surrogates, nothing past U+10FFFF), or 0 when s[0] does not
 * start one. Stops at a NUL (it is not a continuation byte).
 */
static inline size_t sluice__utf8_len(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned cp, min;
    size_t n;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        n = 2, cp = s[0] & 0x1Fu, min = 0x80;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        n = 3, cp = s[0] & 0x0Fu, min = 0x800;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        n = 4, cp = s[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0u) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    return (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) ? 0 : n;
}

#endif /* SLUICE_BASE_TEXT_H */

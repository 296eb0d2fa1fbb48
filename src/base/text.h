/*
 * src/base/text.h - the growable-text append that the exposition writer
 * (src/obs/metrics.c) and the admin server's response buffer share.
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

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/*
 * Append s[0..n) to the NUL-terminated text *buf (length *len, capacity
 * *cap, all zero for an empty buffer), doubling the capacity from
 * first_cap as needed. Returns false, leaving the text as it was, when
 * memory runs out.
 */
static inline bool sluice__text_append(char **buf, size_t *len, size_t *cap, size_t first_cap, const char *s,
                                       size_t n)
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
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return true;
}

#endif /* SLUICE_BASE_TEXT_H */

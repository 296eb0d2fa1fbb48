/*
 * src/base/errbuf.h - the one formatter for the optional error buffer that
 * every fallible call with a `char *errbuf, size_t errlen` pair fills.
 *
 * Header-only (static inline) so that each library (libsluice, the admin
 * and config libraries, the tool) compiles its own copy of one definition:
 * internal sluice__ symbols are hidden in the shared libsluice, so an upper
 * library could not call a function defined there.
 *
 * Locks: none. Thread-safety: the buffer belongs to the caller.
 */
#ifndef SLUICE_BASE_ERRBUF_H
#define SLUICE_BASE_ERRBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include "sluice/common.h"

/*
 * snprintf into an optional error buffer: nothing when errbuf is NULL or
 * errlen is 0; otherwise always NUL-terminated (truncated if long).
 */
static inline void sluice__errf(char *errbuf, size_t errlen, const char *fmt, ...) SLUICE_PRINTF(3, 4);
static inline void sluice__errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (!errbuf || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

#endif /* SLUICE_BASE_ERRBUF_H */

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
 * vsnprintf into an optional error buffer: nothing when errbuf is NULL or
 * errlen is 0; otherwise always NUL-terminated (truncated if long). For a
 * caller's own variadic error function; ap is the caller's to va_end.
 */
static inline void sluice__verrf(char *errbuf, size_t errlen, const char *fmt, va_list ap)
    SLUICE_PRINTF(3, 0);
static inline void sluice__verrf(char *errbuf, size_t errlen, const char *fmt, va_list ap)
{
    if (!errbuf || errlen == 0) {
        return;
    }
    vsnprintf(errbuf, errlen, fmt, ap);
}

/* The same with the arguments in place: the one used almost everywhere. */
static inline void sluice__errf(char *errbuf, size_t errlen, const char *fmt, ...) SLUICE_PRINTF(3, 4);
static inline void sluice__errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sluice__verrf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

#endif /* SLUICE_BASE_ERRBUF_H */

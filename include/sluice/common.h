/*
 * sluice/common.h - error codes, export macro and version of libsluice.
 *
 * Every fallible call in Sluice returns a sluice_err; SLUICE_OK is zero, so
 * `if (err)` reads naturally. Results travel through out-parameters.
 */
#ifndef SLUICE_COMMON_H
#define SLUICE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(SLUICE_BUILDING) && defined(__GNUC__)
#define SLUICE_API __attribute__((visibility("default")))
#else
#define SLUICE_API
#endif

#if defined(__GNUC__)
#define SLUICE_PRINTF(fmt_idx, va_idx) __attribute__((format(printf, fmt_idx, va_idx)))
#else
#define SLUICE_PRINTF(fmt_idx, va_idx)
#endif

#define SLUICE_VERSION_MAJOR 0
#define SLUICE_VERSION_MINOR 1
#define SLUICE_VERSION_PATCH 0
#define SLUICE_VERSION_STRING "0.1.0"

/*
 * The one error enum. New codes are only ever appended; the numeric values
 * are part of the ABI.
 */
typedef enum sluice_err {
    SLUICE_OK = 0,
    SLUICE_EINVAL,    /* an argument or config field is invalid */
    SLUICE_ENOMEM,    /* an allocation failed; nothing was changed */
    SLUICE_EFULL,     /* the queue is full and the policy refuses */
    SLUICE_ECLOSED,   /* the pool (or object) is draining or closed */
    SLUICE_ETIMEDOUT, /* a deadline or timeout passed first */
    SLUICE_EDEADLK,   /* the call would wait on itself (worker submitting to its own full pool) */
    SLUICE_ECANCELED, /* a context was cancelled */
    SLUICE_EAGAIN,    /* would block; try again (try_* calls) */
    SLUICE_EBUSY,     /* the object is in a state that forbids the call */
    SLUICE_ENOTSUP,   /* not supported on this platform or build */
    SLUICE_ESYS,      /* a system call failed; errno holds the reason */
    SLUICE_EINIT,     /* a worker init hook returned non-zero */
    SLUICE_EOVERFLOW, /* a count would exceed its bound (for example releasing more than held) */
    SLUICE_EOPEN,     /* a circuit breaker is open and refused the call */
    SLUICE_ENOENT,    /* a named thing does not exist */
    SLUICE_EIO,       /* reading or writing a file or socket failed */
    SLUICE_EPARSE,    /* input could not be parsed */
    SLUICE_ETASK,     /* a task reported failure (non-zero return or panic) */
    SLUICE_ERR_COUNT_ /* not an error; keep last */
} sluice_err;

/*
 * sluice_strerror - a short, static, human-readable description of err.
 * Returns: a string that is never NULL ("unknown error" for out-of-range).
 * Thread-safety: safe from any thread.
 */
SLUICE_API const char *sluice_strerror(sluice_err err);

/*
 * sluice_err_name - the enum name ("SLUICE_EFULL") for logs and metrics.
 * Returns: a static string, never NULL.
 */
SLUICE_API const char *sluice_err_name(sluice_err err);

/* sluice_version - the library's version string, for example "0.1.0". */
SLUICE_API const char *sluice_version(void);

#endif /* SLUICE_COMMON_H */

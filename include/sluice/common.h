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
 * The one error enum, from one list: XX(NAME, "what sluice_strerror says")
 * per code, in order (the enum, sluice_strerror and sluice_err_name all
 * expand it). New codes are only ever appended; the numeric values are
 * part of the ABI.
 */
#define SLUICE_ERR_MAP(XX)                                                                                   \
    XX(OK, "success")                                                                                        \
    XX(EINVAL, "invalid argument")                    /* an argument or config field is invalid */           \
    XX(ENOMEM, "out of memory")                       /* an allocation failed; nothing was changed */        \
    XX(EFULL, "queue full")                           /* the queue is full and the policy refuses */         \
    XX(ECLOSED, "closed or draining")                 /* the pool (or object) is draining or closed */       \
    XX(ETIMEDOUT, "timed out")                        /* a deadline or timeout passed first */               \
    XX(EDEADLK, "would deadlock (waiting on itself)") /* a worker submitting to its own full pool */         \
    XX(ECANCELED, "canceled")                         /* a context was cancelled */                          \
    XX(EAGAIN, "would block, try again")              /* try_* calls */                                      \
    XX(EBUSY, "busy: state forbids the call")         /* the object is in a state that forbids the call */   \
    XX(ENOTSUP, "not supported")                      /* on this platform or build */                        \
    XX(ESYS, "system call failed (see errno)")        /* errno holds the reason */                           \
    XX(EINIT, "worker init hook failed")              /* a worker init hook returned non-zero */             \
    XX(EOVERFLOW, "count would exceed its bound")     /* for example releasing more than held */             \
    XX(EOPEN, "circuit breaker open")                 /* a circuit breaker refused the call */               \
    XX(ENOENT, "no such entry")                       /* a named thing does not exist */                     \
    XX(EIO, "I/O error")                              /* reading or writing a file or socket failed */       \
    XX(EPARSE, "parse error")                         /* input could not be parsed */                        \
    XX(ETASK, "task failed or panicked")              /* a task reported failure (non-zero return or panic) */

typedef enum sluice_err {
#define SLUICE_ERR_ENUM_(id, text) SLUICE_##id,
    SLUICE_ERR_MAP(SLUICE_ERR_ENUM_)
#undef SLUICE_ERR_ENUM_
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
 * Returns: a static string, never NULL ("SLUICE_E_UNKNOWN" for
 * out-of-range).
 */
SLUICE_API const char *sluice_err_name(sluice_err err);

/*
 * sluice_err_parse - the inverse of sluice_err_name: "SLUICE_EFULL" sets
 * *out to SLUICE_EFULL. Returns SLUICE_OK, or SLUICE_EINVAL (no such name,
 * NULL text or out; *out unchanged). Thread-safe.
 */
SLUICE_API sluice_err sluice_err_parse(const char *text, sluice_err *out);

/* sluice_version - the library's version string, for example "0.1.0". */
SLUICE_API const char *sluice_version(void);

#endif /* SLUICE_COMMON_H */

/*
 * src/base/error.c - names and descriptions of sluice_err, and the version.
 *
 * Purpose. One table maps each code of the single error enum to its enum
 * name (for logs and metric labels) and a short description (for people).
 *
 * Design. Two static arrays indexed by the code, with designated
 * initialisers so that a reordering of the enum cannot silently shift the
 * text. Out-of-range values (a cast from an int that is no sluice_err) get
 * "unknown error" rather than a read past the table.
 *
 * Thread-safety: everything here is immutable. Locks: none.
 */
#include "sluice/common.h"

static const char *const err_names[SLUICE_ERR_COUNT_] = {
    [SLUICE_OK] = "SLUICE_OK",           [SLUICE_EINVAL] = "SLUICE_EINVAL",
    [SLUICE_ENOMEM] = "SLUICE_ENOMEM",   [SLUICE_EFULL] = "SLUICE_EFULL",
    [SLUICE_ECLOSED] = "SLUICE_ECLOSED", [SLUICE_ETIMEDOUT] = "SLUICE_ETIMEDOUT",
    [SLUICE_EDEADLK] = "SLUICE_EDEADLK", [SLUICE_ECANCELED] = "SLUICE_ECANCELED",
    [SLUICE_EAGAIN] = "SLUICE_EAGAIN",   [SLUICE_EBUSY] = "SLUICE_EBUSY",
    [SLUICE_ENOTSUP] = "SLUICE_ENOTSUP", [SLUICE_ESYS] = "SLUICE_ESYS",
    [SLUICE_EINIT] = "SLUICE_EINIT",     [SLUICE_EOVERFLOW] = "SLUICE_EOVERFLOW",
    [SLUICE_EOPEN] = "SLUICE_EOPEN",     [SLUICE_ENOENT] = "SLUICE_ENOENT",
    [SLUICE_EIO] = "SLUICE_EIO",         [SLUICE_EPARSE] = "SLUICE_EPARSE",
    [SLUICE_ETASK] = "SLUICE_ETASK",
};

static const char *const err_text[SLUICE_ERR_COUNT_] = {
    [SLUICE_OK] = "success",
    [SLUICE_EINVAL] = "invalid argument",
    [SLUICE_ENOMEM] = "out of memory",
    [SLUICE_EFULL] = "queue full",
    [SLUICE_ECLOSED] = "closed or draining",
    [SLUICE_ETIMEDOUT] = "timed out",
    [SLUICE_EDEADLK] = "would deadlock (waiting on itself)",
    [SLUICE_ECANCELED] = "canceled",
    [SLUICE_EAGAIN] = "would block, try again",
    [SLUICE_EBUSY] = "busy: state forbids the call",
    [SLUICE_ENOTSUP] = "not supported",
    [SLUICE_ESYS] = "system call failed (see errno)",
    [SLUICE_EINIT] = "worker init hook failed",
    [SLUICE_EOVERFLOW] = "count would exceed its bound",
    [SLUICE_EOPEN] = "circuit breaker open",
    [SLUICE_ENOENT] = "no such entry",
    [SLUICE_EIO] = "I/O error",
    [SLUICE_EPARSE] = "parse error",
    [SLUICE_ETASK] = "task failed or panicked",
};

const char *sluice_strerror(sluice_err err)
{
    unsigned i = (unsigned)err;
    if (i >= (unsigned)SLUICE_ERR_COUNT_ || !err_text[i]) {
        return "unknown error";
    }
    return err_text[i];
}

const char *sluice_err_name(sluice_err err)
{
    unsigned i = (unsigned)err;
    if (i >= (unsigned)SLUICE_ERR_COUNT_ || !err_names[i]) {
        return "SLUICE_E_UNKNOWN";
    }
    return err_names[i];
}

const char *sluice_version(void)
{
    return SLUICE_VERSION_STRING;
}

/*
 * src/base/error.c - names and descriptions of sluice_err, and the version.
 *
 * Purpose. One list, SLUICE_ERR_MAP in sluice/common.h, gives each code of
 * the single error enum; the enum, the enum names (for logs and metric
 * labels) and the short descriptions (for people) are all expanded from
 * it, so no table can fall out of step with the enum.
 *
 * Design. Two static arrays in enum order. Out-of-range values (a cast
 * from an int that is no sluice_err) get "unknown error" /
 * "SLUICE_E_UNKNOWN" rather than a read past the table.
 *
 * Thread-safety: everything here is immutable. Locks: none.
 */
#include <string.h>

#include "sluice/common.h"

#define ERR_TEXT_(id, text) text,
static const char *const err_text[] = {SLUICE_ERR_MAP(ERR_TEXT_)};
#undef ERR_TEXT_
#define ERR_NAME_(id, text) "SLUICE_" #id,
static const char *const err_names[] = {SLUICE_ERR_MAP(ERR_NAME_)};
#undef ERR_NAME_

const char *sluice_strerror(sluice_err err)
{
    unsigned i = (unsigned)err;
    return i < (unsigned)SLUICE_ERR_COUNT_ ? err_text[i] : "unknown error";
}

const char *sluice_err_name(sluice_err err)
{
    unsigned i = (unsigned)err;
    return i < (unsigned)SLUICE_ERR_COUNT_ ? err_names[i] : "SLUICE_E_UNKNOWN";
}

sluice_err sluice_err_parse(const char *text, sluice_err *out)
{
    if (!text || !out) {
        return SLUICE_EINVAL;
    }
    for (unsigned i = 0; i < (unsigned)SLUICE_ERR_COUNT_; i++) {
        if (strcmp(text, err_names[i]) == 0) {
            *out = (sluice_err)i;
            return SLUICE_OK;
        }
    }
    return SLUICE_EINVAL;
}

const char *sluice_version(void)
{
    return SLUICE_VERSION_STRING;
}

/*
 * src/base/enums.h - the name and parse functions of a public enum, from
 * its one list.
 *
 * Purpose. Every public enum with names (the overflow policy, the fault
 * mode, the abandon reason, a worker's status, the pool kind, log levels
 * and formats, breaker states, batch flush reasons and failures) is
 * declared in its header from ONE X-macro list, SLUICE_<ENUM>_MAP(XX),
 * each row XX(ID, "name"): the header expands the list into the enum's
 * values and a trailing SLUICE_<ENUM>_COUNT_ sentinel, and the library
 * expands the same list here into the enum's name function and its
 * parser. Config, metrics and the tools use those functions (or expand
 * the list themselves), so a new value is one row, and no table can fall
 * out of step with the enum.
 *
 * Design. SLUICE__ENUM_FUNCTIONS(type, MAP, first, fallback, name_fn,
 * parse_fn) defines
 *     const char *name_fn(type value)    the row's name; `fallback` for a
 *                                        value outside the list
 *     sluice_err parse_fn(const char *text, type *out)
 *                                        SLUICE_OK and *out set when text
 *                                        is exactly a row's name;
 *                                        SLUICE_EINVAL otherwise (NULL text
 *                                        or out too), *out untouched
 * where the list's first row has the value `first` (0 for most; 1 for an
 * enum whose 0 means "none"), and the rows follow in order, as the
 * header's expansion makes them. Names are static strings.
 *
 * Thread-safety: the functions read only constant tables.
 */
#ifndef SLUICE_BASE_ENUMS_H
#define SLUICE_BASE_ENUMS_H

#include <stddef.h>
#include <string.h>

#include "sluice/common.h"

#define SLUICE__ENUM_NAME_(id, name) name,

#define SLUICE__ENUM_FUNCTIONS(type, MAP, first, fallback, name_fn, parse_fn)                                \
    static const char *const name_fn##_rows_[] = {MAP(SLUICE__ENUM_NAME_)};                                  \
    const char *name_fn(type value)                                                                          \
    {                                                                                                        \
        long long i = (long long)value - (long long)(first);                                                 \
        if (i < 0 || i >= (long long)(sizeof name_fn##_rows_ / sizeof name_fn##_rows_[0])) {                 \
            return fallback;                                                                                 \
        }                                                                                                    \
        return name_fn##_rows_[i];                                                                           \
    }                                                                                                        \
    sluice_err parse_fn(const char *text, type *out)                                                         \
    {                                                                                                        \
        if (!text || !out) {                                                                                 \
            return SLUICE_EINVAL;                                                                            \
        }                                                                                                    \
        for (size_t i = 0; i < sizeof name_fn##_rows_ / sizeof name_fn##_rows_[0]; i++) {                    \
            if (strcmp(text, name_fn##_rows_[i]) == 0) {                                                     \
                *out = (type)((long long)(first) + (long long)i);                                            \
                return SLUICE_OK;                                                                            \
            }                                                                                                \
        }                                                                                                    \
        return SLUICE_EINVAL;                                                                                \
    }

#endif /* SLUICE_BASE_ENUMS_H */

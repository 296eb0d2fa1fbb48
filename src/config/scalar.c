/*
 * src/config/scalar.c - the text forms of values: durations ("250ms"),
 * non-negative integers, booleans, finite numbers, bucket bounds, and the
 * key spelling rule ('-' reads as '_').
 *
 * Every parser is strict and total: it accepts exactly the documented
 * form, never reads past the terminating NUL, and refuses overflow rather
 * than wrapping (fuzz/fuzz_scalars.c holds it to that). No state.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"

/* Compare a written key with a canonical one, '-' reading as '_'. */
bool sluice__cfg_key_eq(const char *written, const char *canon)
{
    for (; *written && *canon; written++, canon++) {
        char a = *written == '-' ? '_' : *written;
        if (a != *canon) {
            return false;
        }
    }
    return *written == '\0' && *canon == '\0';
}

sluice_err sluice__cfg_parse_duration(const char *text, uint64_t *out, const char **why)
{
    static const char *const syntax = "not a duration";
    *why = syntax;
    if (!text || !out) {
        return SLUICE_EINVAL;
    }
    /* No white space anywhere: before, inside or after. YAML trims plain
     * scalars, so a space reaches here only quoted or from the
     * environment, and refusing it at both ends (as every other scalar
     * does) beats accepting " 5s" and refusing "5s ". */
    for (const char *c = text; *c; c++) {
        if (isspace((unsigned char)*c)) {
            *why = "no spaces around or inside a duration";
            return SLUICE_EINVAL;
        }
    }
    const char *s = text;
    if (!isdigit((unsigned char)*s)) {
        return SLUICE_EINVAL;
    }
    /* Integer and optional fraction, parsed by hand so "1e3s" and ".5s"
     * are refused and no precision is lost for integers. */
    uint64_t whole = 0;
    while (isdigit((unsigned char)*s)) {
        unsigned d = (unsigned)(*s - '0');
        if (whole > (UINT64_MAX - d) / 10) {
            return SLUICE_EINVAL;
        }
        whole = whole * 10 + d;
        s++;
    }
    /* The fraction keeps 18 digits (a long double holds them exactly):
     * even in hours the digits past them weigh under 4 fs. `nonzero`
     * sees every digit, so a fraction whose digits all lie past the 18th
     * still counts as not zero. */
    uint64_t frac = 0, frac_scale = 1;
    bool nonzero = whole != 0;
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s)) {
            return SLUICE_EINVAL;
        }
        while (isdigit((unsigned char)*s)) {
            nonzero = nonzero || *s != '0';
            if (frac_scale < 1000000000000000000ull) {
                frac = frac * 10 + (uint64_t)(*s - '0');
                frac_scale *= 10;
            }
            s++;
        }
    }
    uint64_t unit;
    if (*s == '\0') {
        if (!nonzero) {
            *out = 0;
            return SLUICE_OK;
        }
        return SLUICE_EINVAL; /* a unit is required */
    } else if (strcmp(s, "ns") == 0) {
        unit = 1;
    } else if (strcmp(s, "us") == 0) {
        unit = SLUICE_NS_PER_US;
    } else if (strcmp(s, "ms") == 0) {
        unit = SLUICE_NS_PER_MS;
    } else if (strcmp(s, "s") == 0) {
        unit = SLUICE_NS_PER_SEC;
    } else if (strcmp(s, "m") == 0) {
        unit = 60 * SLUICE_NS_PER_SEC;
    } else if (strcmp(s, "h") == 0) {
        unit = 3600 * SLUICE_NS_PER_SEC;
    } else {
        return SLUICE_EINVAL;
    }
    if (whole > UINT64_MAX / unit) {
        return SLUICE_EINVAL;
    }
    uint64_t ns = whole * unit;
    /* frac / frac_scale * unit, rounded to the nearest ns (halves up),
     * without overflow: unit <= 3.6e12 and frac < frac_scale <= 1e18, so
     * the product stays under 3.6e12 in a long double. */
    long double f = (long double)frac / (long double)frac_scale * (long double)unit;
    uint64_t fns = (uint64_t)(f + 0.5L);
    if (ns > UINT64_MAX - fns) {
        return SLUICE_EINVAL;
    }
    if (ns + fns == 0 && nonzero) {
        /* "0.1ns", "0.0000000001s": not zero, but under half a ns. Taken
         * as 0 it would mean "the default" or "none" for many keys. */
        *why = "a duration that is not 0 must be at least 0.5ns (it rounds to whole ns, and 0 means the "
               "default or none): write 0 or 1ns";
        return SLUICE_EINVAL;
    }
    *out = ns + fns;
    return SLUICE_OK;
}

sluice_err sluice_config_parse_duration(const char *text, uint64_t *out)
{
    const char *why;
    return sluice__cfg_parse_duration(text, out, &why);
}

char *sluice_config_format_duration(uint64_t ns, char *buf, size_t len)
{
    static const struct {
        uint64_t unit;
        const char *name;
    } units[] = {
        {3600 * SLUICE_NS_PER_SEC, "h"}, {60 * SLUICE_NS_PER_SEC, "m"}, {SLUICE_NS_PER_SEC, "s"},
        {SLUICE_NS_PER_MS, "ms"},        {SLUICE_NS_PER_US, "us"},      {1, "ns"},
    };
    if (ns == 0) {
        snprintf(buf, len, "0s");
        return buf;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (ns % units[i].unit == 0) {
            snprintf(buf, len, "%llu%s", (unsigned long long)(ns / units[i].unit), units[i].name);
            return buf;
        }
    }
    return buf; /* not reached: unit 1 divides everything */
}

char *sluice_config_env_name(const char *pool_name, char *buf, size_t len)
{
    if (!buf || len == 0) {
        return buf; /* no room even for the NUL (the last line would write buf[len - 1]) */
    }
    if (!pool_name) {
        pool_name = "";
    }
    size_t n = (size_t)snprintf(buf, len, "SLUICE_POOL_");
    for (const char *p = pool_name; *p && n + 2 < len; p++) {
        unsigned char ch = (unsigned char)*p;
        buf[n++] = isalnum(ch) ? (char)toupper(ch) : '_';
    }
    if (n + 1 < len) {
        buf[n++] = '_';
    }
    buf[n < len ? n : len - 1] = '\0';
    return buf;
}

/* Parse a non-negative integer. *neg is set when the text is a negative
 * integer (so K-like fields can say "must be > 0, got -1"). */
bool sluice__cfg_parse_u64(const char *s, uint64_t *out, bool *neg)
{
    *neg = false;
    if (*s == '-') {
        const char *d = s + 1;
        if (!isdigit((unsigned char)*d)) {
            return false;
        }
        while (isdigit((unsigned char)*d)) {
            d++;
        }
        *neg = (*d == '\0');
        return false;
    }
    if (*s == '+') {
        s++;
    }
    if (!isdigit((unsigned char)*s)) {
        return false;
    }
    uint64_t v = 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s)) {
            return false;
        }
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool sluice__cfg_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

bool sluice__cfg_parse_double(const char *s, double *out)
{
    /* strtod skips leading white space and stops at trailing: refused at
     * both ends alike, as for every other scalar. */
    if (!*s || isspace((unsigned char)*s)) {
        return false;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) {
        return false;
    }
    *out = v;
    return true;
}

/* A bucket bound: a plain number is seconds; a duration is converted. */
bool sluice__cfg_parse_bound(const char *s, double *out)
{
    uint64_t ns;
    if (sluice_config_parse_duration(s, &ns) == SLUICE_OK && strpbrk(s, "nsumh")) {
        *out = (double)ns / 1e9;
        return true;
    }
    return sluice__cfg_parse_double(s, out);
}

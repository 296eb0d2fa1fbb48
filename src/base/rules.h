/*
 * src/base/rules.h - the input rules more than one part of Sluice applies,
 * each defined once: names, histogram bounds, listen addresses.
 *
 *  - Names (pools, semaphores, limiters, groups, breakers) are 1..max
 *    bytes of [A-Za-z0-9_.:-]: safe as metric label values, in logs and in
 *    thread names. The test is byte-wise, not isalnum(), so it does not
 *    depend on the locale.
 *  - Histogram bounds are upper bounds in seconds: each finite, > 0 and
 *    <= 1e9 (about 31 years; the bound in nanoseconds fits a uint64_t with
 *    room to spare), strictly increasing, at most SLUICE_HIST_MAX_BUCKETS.
 *    The pool, the sync primitives, the metrics registry and the config
 *    layer all validate with sluice__hist_bounds_check; the default is
 *    0.0001 * 2^k s for k = 0..16.
 *  - A listen address is "host:port", "[v6]:port" or ":port" (host
 *    127.0.0.1), with a numeric IPv4 or IPv6 host and a decimal port in
 *    0..65535 (0: any free port). A bare "9464" is refused everywhere: it
 *    reads as a host as easily as a port, and an explicit ":9464" costs
 *    one character. The config layer checks it at load time and the admin
 *    server when it binds, with the same function, so a file that loads
 *    binds.
 *
 * Header-only (static inline): see errbuf.h for why. Locks: none.
 */
#ifndef SLUICE_BASE_RULES_H
#define SLUICE_BASE_RULES_H

#include <arpa/inet.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "base/errbuf.h"
#include "sluice/common.h"
#include "sluice/pool.h"

/* ---- names ------------------------------------------------------------------ */

#define SLUICE__NAME_CHARSET "[A-Za-z0-9_.:-]"

/* True for a byte allowed in a name. */
static inline bool sluice__name_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
}

/* True when name is 1..max bytes of SLUICE__NAME_CHARSET. */
static inline bool sluice__name_valid(const char *name, size_t max)
{
    if (!name || !name[0]) {
        return false;
    }
    size_t i = 0;
    for (; name[i]; i++) {
        if (i >= max || !sluice__name_char_ok(name[i])) {
            return false;
        }
    }
    return true;
}

/*
 * Check a name against the rule. Returns SLUICE_OK, or SLUICE_EINVAL with
 * "<field>: ..." in errbuf naming the length or the first bad byte.
 */
static inline sluice_err sluice__name_check(const char *name, size_t max, const char *field, char *errbuf,
                                            size_t errlen)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > max) {
        sluice__errf(errbuf, errlen, "%s: must be 1..%zu bytes, got %zu", field, max, len);
        return SLUICE_EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        if (!sluice__name_char_ok(name[i])) {
            sluice__errf(errbuf, errlen, "%s: '%s' has a character outside " SLUICE__NAME_CHARSET " at %zu",
                         field, name, i);
            return SLUICE_EINVAL;
        }
    }
    return SLUICE_OK;
}

/* ---- histogram bounds ---------------------------------------------------------- */

/* The largest bound, in seconds. */
#define SLUICE__HIST_BOUND_MAX 1e9

/* The default bounds: 0.0001 * 2^k s, k = 0..SLUICE_HIST_DEFAULT_BUCKETS-1. */
static inline const double *sluice__hist_default_bounds(void)
{
    static const double bounds[SLUICE_HIST_DEFAULT_BUCKETS] = {
        0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256,
        0.0512, 0.1024, 0.2048, 0.4096, 0.8192, 1.6384, 3.2768, 6.5536,
    };
    return bounds;
}

/*
 * Check histogram bounds b[0..n): 1..SLUICE_HIST_MAX_BUCKETS of them,
 * each finite, > 0 and <= 1e9 seconds, strictly increasing. (Callers that
 * read "none given" as the default test for that first.)
 * Returns SLUICE_OK, or SLUICE_EINVAL with "<field>...: ..." in errbuf.
 */
static inline sluice_err sluice__hist_bounds_check(const double *b, size_t n, const char *field, char *errbuf,
                                                   size_t errlen)
{
    if (!b || n == 0 || n > SLUICE_HIST_MAX_BUCKETS) {
        sluice__errf(errbuf, errlen, "%s: must list 1..%d bounds, got %zu%s", field, SLUICE_HIST_MAX_BUCKETS,
                     n, !b && n ? " and NULL" : "");
        return SLUICE_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(b[i] > 0) || !(b[i] <= SLUICE__HIST_BOUND_MAX)) { /* false for NaN too */
            sluice__errf(errbuf, errlen, "%s[%zu]: must be a finite number of seconds in (0, 1e9], got %g",
                         field, i, b[i]);
            return SLUICE_EINVAL;
        }
        if (i > 0 && !(b[i] > b[i - 1])) {
            sluice__errf(errbuf, errlen, "%s[%zu]: must be greater than the bound before it (%g), got %g",
                         field, i, b[i - 1], b[i]);
            return SLUICE_EINVAL;
        }
    }
    return SLUICE_OK;
}

/* ---- listen addresses ------------------------------------------------------------- */

/* Room for the longest numeric host (an IPv6 address with a zone is
 * shorter than this) and its NUL. */
#define SLUICE__LISTEN_HOST_MAX 64

/*
 * Split a listen address (see the rule above) into its numeric host
 * (host_out, SLUICE__LISTEN_HOST_MAX bytes; "127.0.0.1" for ":port") and
 * port. Either out-parameter may be NULL (a check only).
 * Returns SLUICE_OK, or SLUICE_EINVAL with "address '...': ..." in errbuf.
 */
static inline sluice_err sluice__listen_parse(const char *address, char *host_out, unsigned *port_out,
                                              char *errbuf, size_t errlen)
{
    char host[SLUICE__LISTEN_HOST_MAX] = "127.0.0.1";
    const char *a = address ? address : "";
    const char *port;
    if (a[0] == '[') {
        const char *close = strchr(a, ']');
        if (!close || close[1] != ':') {
            sluice__errf(errbuf, errlen, "address '%s': want [ipv6]:port", a);
            return SLUICE_EINVAL;
        }
        size_t hl = (size_t)(close - a - 1);
        if (hl == 0 || hl >= sizeof host) {
            sluice__errf(errbuf, errlen, "address '%s': host is not a numeric IPv6 address", a);
            return SLUICE_EINVAL;
        }
        memcpy(host, a + 1, hl);
        host[hl] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(a, ':');
        if (!colon) {
            sluice__errf(errbuf, errlen, "address '%s': want host:port (or :port for 127.0.0.1)", a);
            return SLUICE_EINVAL;
        }
        size_t hl = (size_t)(colon - a);
        if (hl >= sizeof host) {
            sluice__errf(errbuf, errlen, "address '%s': host is not a numeric IPv4 or IPv6 address", a);
            return SLUICE_EINVAL;
        }
        if (hl > 0) {
            memcpy(host, a, hl);
            host[hl] = '\0';
        }
        port = colon + 1;
    }
    unsigned long pnum = 0;
    size_t digits = 0;
    for (; port[digits] >= '0' && port[digits] <= '9' && pnum <= 65535; digits++) {
        pnum = pnum * 10 + (unsigned long)(port[digits] - '0');
    }
    if (digits == 0 || port[digits] || pnum > 65535) {
        sluice__errf(errbuf, errlen, "address '%s': port '%s' is not a number in 0..65535", a, port);
        return SLUICE_EINVAL;
    }
    unsigned char bin[16];
    if (inet_pton(AF_INET, host, bin) != 1 && inet_pton(AF_INET6, host, bin) != 1) {
        sluice__errf(errbuf, errlen, "address '%s': host '%s' is not a numeric IPv4 or IPv6 address", a,
                     host);
        return SLUICE_EINVAL;
    }
    if (host_out) {
        memcpy(host_out, host, sizeof host);
    }
    if (port_out) {
        *port_out = (unsigned)pnum;
    }
    return SLUICE_OK;
}

/* ---- splitting a share among pools -------------------------------------------- */

/*
 * The parts of `share` for n pools in proportion to weight[i] (0 counts
 * as 1): largest remainders first (ties to the earlier pool), so the parts
 * sum to share exactly; then no part is 0 while another is above 1 (a
 * pool needs K >= 1). n <= 64. Used by the cluster join (src/cluster) and
 * by `sluice lint --budget`, which must agree on each pool's part.
 */
static inline void sluice__share_split(unsigned share, const unsigned *weight, size_t n, unsigned *part)
{
    unsigned long long wsum = 0, rem[64];
    for (size_t i = 0; i < n; i++) {
        wsum += weight[i] ? weight[i] : 1;
    }
    unsigned given = 0;
    for (size_t i = 0; i < n && i < 64; i++) {
        unsigned long long w = weight[i] ? weight[i] : 1;
        part[i] = (unsigned)((unsigned long long)share * w / wsum);
        rem[i] = (unsigned long long)share * w % wsum;
        given += part[i];
    }
    while (given < share && n > 0) {
        size_t best = 0;
        for (size_t i = 1; i < n && i < 64; i++) {
            if (rem[i] > rem[best]) {
                best = i;
            }
        }
        part[best]++;
        rem[best] = 0;
        given++;
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; part[i] == 0 && j < n; j++) {
            if (part[j] > 1) {
                part[j]--;
                part[i]++;
            }
        }
    }
}

#endif /* SLUICE_BASE_RULES_H */

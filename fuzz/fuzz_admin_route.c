/*
 * fuzz/fuzz_admin_route.c - fuzz the admin server's request classification
 * (method + path + query against the route table,
 * sluice__admin_route_find) and the Accept header negotiation
 * (sluice_expo_negotiate): the parts of a request that our own code reads
 * (libmicrohttpd parses the rest).
 *
 * Input layout: "METHOD URL\nACCEPT" (anything after the first newline is
 * the Accept value). The URL keeps its length, so a NUL inside it reaches
 * the router (which must answer 400), as a NUL in a request target would. Built with libFuzzer under clang
 * (-DSLUICE_FUZZ_LIBFUZZER); otherwise fuzz/standalone_main.c runs every
 * file given on the command line (or in the given directories) once, so
 * the corpus is a regression test under any compiler (admin_fuzz_corpus).
 *
 * Invariants checked: the status is one of 200/400/404/405; 200 and 405
 * come with the row whose path is exactly the URL's path, 400 and 404
 * without a row; a URL with a NUL or a ".." segment is never routed; the
 * negotiated format is one of the two; nothing reads out of bounds
 * (ASan/UBSan in the fuzz build).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/admin/route.h" /* internal: the route table (not installed) */
#include "sluice/admin.h"
#include "sluice/metrics.h"

#define FUZZ_TARGET "fuzz_admin_route"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned method_bit(const char *method)
{
    if (strcmp(method, "GET") == 0) {
        return SLUICE__ADMIN_GET;
    }
    if (strcmp(method, "HEAD") == 0) {
        return SLUICE__ADMIN_HEAD;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_input_string(data, size, SIZE_MAX, 1);
    if (!buf) {
        return 0;
    }
    char *accept = memchr(buf, '\n', size);
    size_t line = accept ? (size_t)(accept - buf) : size;
    if (accept) {
        *accept++ = '\0';
    }
    char *url = memchr(buf, ' ', line);
    const char *method = buf;
    size_t url_len;
    if (url) {
        *url++ = '\0';
        url_len = line - (size_t)(url - buf);
    } else {
        url = buf;
        url_len = line;
        method = "GET";
    }
    const sluice__admin_route *route = (const sluice__admin_route *)1;
    int status = sluice__admin_route_find(method, url, url_len, &route);
    size_t path_len = 0;
    while (path_len < url_len && url[path_len] != '?') {
        path_len++;
    }
    if (status == 200 || status == 405) {
        if (!route || url[0] != '/' || strlen(route->path) != path_len ||
            memcmp(route->path, url, path_len) != 0 || memchr(url, '\0', url_len) ||
            (status == 200) != ((route->methods & method_bit(method)) != 0)) {
            abort();
        }
    } else if ((status != 400 && status != 404) || route != NULL) {
        abort();
    } else if (status == 404 && memchr(url, '\0', url_len)) {
        abort(); /* a NUL is malformed, never "not found" */
    }
    sluice_expo_format f = sluice_expo_negotiate(accept);
    if (f != SLUICE_EXPO_PROMETHEUS && f != SLUICE_EXPO_OPENMETRICS) {
        abort();
    }
    free(buf);
    return 0;
}

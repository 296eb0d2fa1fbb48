/*
 * fuzz/fuzz_admin_route.c - fuzz the admin server's request classification
 * (method + path + query, sluice_admin_route) and the Accept header
 * negotiation (sluice_expo_negotiate): the parts of a request that our own
 * code reads (libmicrohttpd parses the rest).
 *
 * Input layout: "METHOD URL\nACCEPT" (anything after the first newline is
 * the Accept value). Built with libFuzzer under clang
 * (-DSLUICE_FUZZ_LIBFUZZER); otherwise a standalone driver runs every file
 * given on the command line (or in the given directories) once, so the
 * corpus is a regression test under any compiler.
 *
 * Invariants checked: the status is one of 200/400/404/405; 200 comes with
 * an endpoint name and 4xx without; a 200 path starts with '/'; the
 * negotiated format is one of the two; nothing reads out of bounds
 * (ASan/UBSan in the fuzz build).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sluice/admin.h"
#include "sluice/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf) {
        return 0;
    }
    memcpy(buf, data, size);
    buf[size] = '\0'; /* NULs inside end the strings early, as in C callers */
    char *accept = strchr(buf, '\n');
    if (accept) {
        *accept++ = '\0';
    }
    char *url = strchr(buf, ' ');
    const char *method = buf;
    if (url) {
        *url++ = '\0';
    } else {
        url = buf;
        method = "GET";
    }
    const char *ep = (const char *)1;
    int status = sluice_admin_route(method, url, &ep);
    if (status == 200) {
        if (!ep || url[0] != '/') {
            abort();
        }
    } else if ((status != 400 && status != 404 && status != 405) || ep != NULL) {
        abort();
    }
    sluice_expo_format f = sluice_expo_negotiate(accept);
    if (f != SLUICE_EXPO_PROMETHEUS && f != SLUICE_EXPO_OPENMETRICS) {
        abort();
    }
    free(buf);
    return 0;
}

#ifndef SLUICE_FUZZ_LIBFUZZER
static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return 1;
    }
    static uint8_t data[1 << 16];
    size_t n = fread(data, 1, sizeof data, f);
    fclose(f);
    LLVMFuzzerTestOneInput(data, n);
    return 0;
}

int main(int argc, char **argv)
{
    int runs = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            struct dirent *e;
            while (d && (e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.') {
                    continue;
                }
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
                bad += run_file(path);
                runs++;
            }
            if (d) {
                closedir(d);
            }
        } else {
            bad += run_file(argv[i]);
            runs++;
        }
    }
    printf("fuzz_admin_route: %d inputs, %d unreadable\n", runs, bad);
    return bad ? 1 : 0;
}
#endif

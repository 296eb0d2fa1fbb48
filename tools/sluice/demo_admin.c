/*
 * tools/sluice/demo_admin.c - the admin HTTP server of `sluice demo`
 * (/metrics, /health/live, /health/ready, /debug/pools), when src/admin
 * is built.
 *
 * Kept apart from cmd_demo.c so the demo builds, runs and tests without
 * libmicrohttpd: without it the demo says the admin server is off.
 */
#include <stdio.h>
#include <string.h>

#include "demo.h"

#if defined(SLUICE_HAVE_ADMIN)
#error "wire the admin server here"
#else

int demo_admin_start(demo *d, const char *listen, char *err, size_t errlen) {
    (void)listen;
    (void)err;
    (void)errlen;
    d->admin = NULL;
    d->admin_url[0] = '\0';
    demo_log(d, "admin server not built (src/admin is absent): no /metrics");
    return 0;
}

void demo_admin_set_ready(demo *d, bool ready) {
    (void)d;
    (void)ready;
}

void demo_admin_stop(demo *d) {
    (void)d;
}

#endif

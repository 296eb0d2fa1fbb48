/*
 * src/admin/console.c - the web console at / of the admin server.
 *
 * Purpose. During an incident people look before they read: one page that
 * shows every pool as a card (running/K, queue, tasks/s, wait and run
 * percentiles, outcomes with sparklines, a state colour) and every worker
 * as a cell, for any service that runs the admin server.
 *
 * Design. The page is one self-contained file, console/console.html (HTML,
 * CSS and JavaScript, no CDN), turned into a C array at build time by
 * console/embed.cmake, so it works offline and nothing is installed
 * beside the library. The server only hands out the static bytes: the
 * browser polls the existing endpoints (/debug/pools for stats and
 * workers, /metrics for the histograms) once a second and keeps the
 * history itself, so an open console costs the server two ordinary GETs a
 * second and no state, thread or connection between them (the cost of 20
 * consoles is measured in docs/metrics.md). Server-Sent Events were
 * rejected: with libmicrohttpd's thread per connection each open console
 * would hold one of max_connections for ever (docs/RATIONALE.md).
 *
 * The bearer token. The page itself is served without the token: it is
 * the same static bytes in every build and carries no data, and a browser
 * cannot put an Authorization header on a page it navigates to. Every
 * request the page makes for data goes to /debug/pools (token-checked by
 * its own row when the server has a token) and /metrics (open to
 * Prometheus, as without the console); on a 401 the page asks for the
 * token once and sends it as "Authorization: Bearer" from then on, kept
 * in the tab's sessionStorage. So without the token the console shows a
 * token prompt and no pool (docs/RATIONALE.md).
 *
 * Thread-safety: no state; the response object is built per request over
 * the static bytes (MHD_RESPMEM_PERSISTENT), so nothing is copied.
 * Lock order: takes no lock.
 */
#include <microhttpd.h>

#include "console.h"
#include "route.h"

extern const char sluice__console_page_bytes[];
extern const size_t sluice__console_page_bytes_len;

const char *sluice__console_page(size_t *len)
{
    if (len) {
        *len = sluice__console_page_bytes_len;
    }
    return sluice__console_page_bytes;
}

static int ep_console(sluice_admin *a, struct MHD_Connection *c)
{
    (void)a;
    size_t len;
    const char *page = sluice__console_page(&len);
    /* PERSISTENT: MHD reads the static bytes in place and never frees them. */
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)page, MHD_RESPMEM_PERSISTENT);
    if (!r) {
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    /* The page's own inline script and style, and requests to this origin
     * only: nothing is loaded from elsewhere, nothing may frame it. */
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                            "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* No SLUICE__ROUTE_TOKEN: see the header comment. */
const sluice__admin_route sluice__admin_console_routes[] = {
    {"/", SLUICE__ADMIN_READ, 0, ep_console},
    {NULL, 0, 0, NULL},
};

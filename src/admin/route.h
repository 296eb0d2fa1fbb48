/*
 * src/admin/route.h - the admin server's route table (internal: the
 * server, its tests and the fuzz target include it; it is not installed).
 *
 * Every endpoint is one row {path, methods, flags, handler}. The rows live
 * next to their handlers, one table per file (http.c: /metrics; health.c:
 * /health/...; debug.c: /debug/...), and http.c lists the tables in
 * `route_tables`. The dispatcher, the 404 text, the 405 Allow header, the
 * bearer-token check and the endpoint list in docs/metrics.md (a test
 * compares them) all come from the rows, so no request can reach a
 * handler that is not its own row's.
 *
 * Adding an endpoint from a new file:
 *     const sluice__admin_route sluice__admin_console_routes[] = {
 *         {"/", SLUICE__ADMIN_READ, SLUICE__ROUTE_TOKEN, ep_console},
 *         {NULL, 0, 0, NULL},
 *     };
 * plus its extern below and one line in http.c's `route_tables`.
 *
 * No libmicrohttpd types here (the fuzz target builds without its
 * headers): handlers take the connection as an opaque pointer and return
 * an MHD_Result (MHD_YES/MHD_NO) as an int.
 */
#ifndef SLUICE_ADMIN_ROUTE_H
#define SLUICE_ADMIN_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "sluice/admin.h"

struct MHD_Connection;

/* Methods a row accepts (a bit set). */
enum {
    SLUICE__ADMIN_GET = 1u << 0,
    SLUICE__ADMIN_HEAD = 1u << 1,
};
#define SLUICE__ADMIN_READ (SLUICE__ADMIN_GET | SLUICE__ADMIN_HEAD)

/* Row flags. */
enum {
    /* When the server has a token (sluice_admin_config.token), a request
     * must carry "Authorization: Bearer <token>", else 401. */
    SLUICE__ROUTE_TOKEN = 1u << 0,
    /* The handler may wait (probe tasks, stack captures): such requests
     * are capped (see http.c) so that quick ones, /health/live first,
     * always find a connection slot. */
    SLUICE__ROUTE_SLOW = 1u << 1,
};

/* A handler answers one request: it queues a response on `conn` and
 * returns MHD_YES, or returns MHD_NO to close the connection. */
typedef int (*sluice__admin_handler)(sluice_admin *admin, struct MHD_Connection *conn);

typedef struct sluice__admin_route {
    const char *path; /* exact match on the path (the query string is ignored); NULL ends a table */
    unsigned methods; /* SLUICE__ADMIN_GET | ... */
    unsigned flags;   /* SLUICE__ROUTE_* */
    sluice__admin_handler handler;
} sluice__admin_route;

/* The tables, one per file (see http.c's route_tables for their order). */
extern const sluice__admin_route sluice__admin_server_routes[];  /* http.c: /metrics */
extern const sluice__admin_route sluice__admin_health_routes[];  /* health.c */
extern const sluice__admin_route sluice__admin_debug_routes[];   /* debug.c */
extern const sluice__admin_route sluice__admin_console_routes[]; /* console.c: / */

/* The longest path or query string routed; longer is 400. */
#define SLUICE__ADMIN_URL_MAX 2048

/*
 * sluice__admin_route_find - classify a request without a socket.
 * `url` is url_len bytes (a NUL inside is a control byte: 400), the path
 * with any query string. Returns 200 (*out = the row), 404, 405 (*out =
 * the row, so the caller can list its methods), or 400: malformed (not
 * starting with '/', a control byte, a '..' segment, longer than
 * SLUICE__ADMIN_URL_MAX). *out is NULL for 400 and 404. Pure; thread-safe.
 */
int sluice__admin_route_find(const char *method, const char *url, size_t url_len,
                             const sluice__admin_route **out);

/* The i-th row over all tables in order, or NULL past the last. */
const sluice__admin_route *sluice__admin_route_at(size_t i);

/* "GET, HEAD" for a row's methods (for Allow and messages). */
const char *sluice__admin_methods_text(unsigned methods);

/*
 * sluice__admin_route_requires_token - whether a request for `route`
 * must carry the bearer token: the row has SLUICE__ROUTE_TOKEN and the
 * server was started with a token. Thread-safe (the token is fixed at
 * start).
 */
bool sluice__admin_route_requires_token(const sluice_admin *admin, const sluice__admin_route *route);

#endif /* SLUICE_ADMIN_ROUTE_H */

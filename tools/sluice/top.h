/*
 * tools/sluice/top.h - the pieces of `sluice top` (cmd_top.c) that stand
 * alone: the HTTP GET of top_http.c.
 */
#ifndef SLUICE_TOOLS_TOP_H
#define SLUICE_TOOLS_TOP_H

#include <stddef.h>

typedef struct top_reply {
    int status;       /* the HTTP status */
    char *raw;        /* the whole reply, NUL-terminated (malloc'd) */
    const char *body; /* into raw, after the headers */
    size_t body_len;
} top_reply;

/*
 * top_http_get - GET http://host:port/path (HTTP/1.0, new connection),
 * with "Authorization: Bearer TOKEN" when token is not NULL, all within
 * timeout_ms (name lookup excepted).
 * Returns: 0 with *out filled (any HTTP status: the caller judges it),
 * or -1 with the reason in err ("connect: Connection refused", "no
 * complete answer in time", ...).
 * Ownership: free *out with top_reply_free. Thread-safety: reentrant.
 */
int top_http_get(const char *host, unsigned port, const char *path, const char *token, unsigned timeout_ms,
                 top_reply *out, char *err, size_t errlen);
void top_reply_free(top_reply *r);

#endif

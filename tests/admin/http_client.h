/*
 * tests/admin/http_client.h - a tiny raw-socket HTTP/1.1 client for the
 * admin tests (no new dependency): send bytes as given, read to EOF.
 */
#ifndef SLUICE_TEST_HTTP_CLIENT_H
#define SLUICE_TEST_HTTP_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

typedef struct http_reply {
    int status; /* 0 when no status line came back */
    char *raw;  /* everything read (malloc'd) */
    size_t raw_len;
    const char *body; /* into raw, after the blank line, or "" */
    /* Why no reply came, for a failure message: the step that ended the
     * exchange early ("connect", "write", "read") and its errno; NULL and
     * 0 when the reply was read to EOF ("eof" when EOF came before any
     * byte: the server closed the connection without answering). */
    const char *failed_at;
    int sys_errno;
} http_reply;

static inline int http_connect(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        errno = e; /* for the caller's message */
        return -1;
    }
    return fd;
}

static inline void http_read_reply(int fd, http_reply *r)
{
    size_t cap = 4096;
    r->raw = malloc(cap);
    r->raw_len = 0;
    for (;;) {
        if (r->raw_len + 1024 > cap) {
            cap *= 2;
            r->raw = realloc(r->raw, cap);
        }
        ssize_t n = read(fd, r->raw + r->raw_len, cap - r->raw_len - 1);
        if (n < 0) {
            if (!r->failed_at) { /* a failed write says more */
                r->failed_at = "read";
                r->sys_errno = errno;
            }
            break;
        }
        if (n == 0) {
            if (r->raw_len == 0 && !r->failed_at) {
                r->failed_at = "eof";
            }
            break;
        }
        r->raw_len += (size_t)n;
    }
    r->raw[r->raw_len] = '\0';
    r->status = 0;
    sscanf(r->raw, "HTTP/1.%*d %d", &r->status);
    const char *sep = strstr(r->raw, "\r\n\r\n");
    r->body = sep ? sep + 4 : "";
}

/* Send `request` as is and read the reply to EOF. */
static inline http_reply http_raw(unsigned port, const char *request, size_t len)
{
    http_reply r = {0};
    int fd = http_connect(port);
    if (fd < 0) {
        r.raw = calloc(1, 1);
        r.body = r.raw;
        r.failed_at = "connect";
        r.sys_errno = errno;
        return r;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, request + off, len - off);
        if (n <= 0) {
            r.failed_at = "write";
            r.sys_errno = errno;
            break;
        }
        off += (size_t)n;
    }
    http_read_reply(fd, &r);
    close(fd);
    return r;
}

/* A request with Connection: close and optional extra header lines ("K: v\r\n"). */
static inline http_reply http_do(unsigned port, const char *method, const char *path, const char *extra)
{
    char req[4096];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s\r\n", method,
             path, extra ? extra : "");
    return http_raw(port, req, strlen(req));
}

static inline void http_free(http_reply *r)
{
    free(r->raw);
    r->raw = NULL;
}

/* The status of one http_do request (0 when no status line came back), for
 * a check that needs nothing else of the reply; the reply is freed. */
static inline int http_status(unsigned port, const char *method, const char *path, const char *extra)
{
    http_reply r = http_do(port, method, path, extra);
    int status = r.status;
    http_free(&r);
    return status;
}

/* The value of header `name` (case-sensitive prefix match), or NULL. */
static inline const char *http_header(const http_reply *r, const char *name, char *buf, size_t len)
{
    const char *p = r->raw;
    size_t n = strlen(name);
    while ((p = strstr(p, "\r\n")) != NULL && p < r->body) {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ') {
                v++;
            }
            const char *e = strstr(v, "\r\n");
            size_t m = e ? (size_t)(e - v) : strlen(v);
            m = m < len - 1 ? m : len - 1;
            memcpy(buf, v, m);
            buf[m] = '\0';
            return buf;
        }
    }
    return NULL;
}

#endif /* SLUICE_TEST_HTTP_CLIENT_H */

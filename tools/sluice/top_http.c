/*
 * tools/sluice/top_http.c - the HTTP client of `sluice top`: one GET over
 * a fresh TCP connection, HTTP/1.0, read to the end.
 *
 * Why not libcurl: the admin server speaks plain HTTP/1.1 on a trusted
 * network (loopback by default), answers every request with a
 * Content-Length and closes the connection, and `sluice top` needs one
 * thing of it: GET a path within a deadline, with an optional bearer
 * token. That is a connect, a write and reads to EOF, about a hundred
 * lines, against a new dependency with TLS, proxies and redirects that
 * would go unused (docs/RATIONALE.md).
 *
 * Bounded: the whole exchange (name lookup excepted: use numeric hosts
 * for a fleet) ends within timeout_ms; the reply is capped at
 * TOP_HTTP_MAX_REPLY bytes. Thread-safety: no shared state.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/errbuf.h"
#include "top.h"

#define TOP_HTTP_MAX_REPLY (64u * 1024 * 1024)

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for `events` on fd until the deadline; 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            return 0;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        return r < 0 ? -1 : r;
    }
}

/* Connect to host:port within the deadline; returns the fd or -1. */
static int dial(const char *host, unsigned port, long long deadline, char *err, size_t errlen)
{
    char pstr[8];
    snprintf(pstr, sizeof pstr, "%u", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gr = getaddrinfo(host, pstr, &hints, &res);
    if (gr != 0) {
        sluice__errf(err, errlen, "%s: %s", host, gai_strerror(gr));
        return -1;
    }
    int fd = -1;
    int why = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            why = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            int e = errno;
            if (e == EINPROGRESS) {
                int w = wait_fd(fd, POLLOUT, deadline);
                socklen_t sl = sizeof e;
                if (w == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) == 0 && e == 0) {
                    break;
                }
                e = w == 0 ? ETIMEDOUT : e;
            }
            why = e;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        sluice__errf(err, errlen, "connect: %s", strerror(why ? why : ECONNREFUSED));
    }
    return fd;
}

int top_http_get(const char *host, unsigned port, const char *path, const char *token, unsigned timeout_ms,
                 top_reply *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    err[0] = '\0';
    long long deadline = now_ms() + timeout_ms;
    int fd = dial(host, port, deadline, err, errlen);
    if (fd < 0) {
        return -1;
    }
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.0\r\nHost: %s:%u\r\nUser-Agent: sluice-top\r\n%s%s%s\r\n", path, host,
                     port, token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof req) {
        close(fd);
        sluice__errf(err, errlen, "request too long (token or path)");
        return -1;
    }
    for (int off = 0; off < n;) {
        ssize_t w = send(fd, req + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLOUT, deadline) != 1) {
                close(fd);
                sluice__errf(err, errlen, "send: timed out");
                return -1;
            }
            continue;
        }
        if (w <= 0) {
            sluice__errf(err, errlen, "send: %s", strerror(errno));
            close(fd);
            return -1;
        }
        off += (int)w;
    }
    size_t cap = 16384, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            close(fd);
            sluice__errf(err, errlen, "out of memory");
            return -1;
        }
        if (len + 1 >= cap) {
            if (cap >= TOP_HTTP_MAX_REPLY) {
                free(buf);
                close(fd);
                sluice__errf(err, errlen, "reply over %u bytes", TOP_HTTP_MAX_REPLY);
                return -1;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                continue;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r > 0) {
            len += (size_t)r;
            continue;
        }
        if (r == 0) {
            break;
        }
        if (errno == EINTR) {
            continue;
        }
        int w = errno == EAGAIN ? wait_fd(fd, POLLIN, deadline) : -1;
        if (w != 1) {
            free(buf);
            close(fd);
            sluice__errf(err, errlen, "%s", w == 0 ? "no complete answer in time" : strerror(errno));
            return -1;
        }
    }
    close(fd);
    buf[len] = '\0';
    int status = 0;
    char *sep = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || !sep) {
        free(buf);
        sluice__errf(err, errlen, "not an HTTP answer");
        return -1;
    }
    out->status = status;
    out->raw = buf;
    out->body = sep + 4;
    out->body_len = len - (size_t)(out->body - buf);
    return 0;
}

void top_reply_free(top_reply *r)
{
    free(r->raw);
    memset(r, 0, sizeof *r);
}

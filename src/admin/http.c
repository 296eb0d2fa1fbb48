/*
 * src/admin/http.c - the admin HTTP server: the socket, libmicrohttpd,
 * the route table and the dispatcher, /metrics, and the server's life
 * (start, stop, pools, readiness). The endpoints themselves are in
 * health.c (/health/...) and debug.c (/debug/...).
 *
 * Purpose. Let operators and their tools (Prometheus, load balancers,
 * kubelet probes, a human with curl) see a service's pools without a
 * debugger, over loopback by default.
 *
 * Design. HTTP parsing is libmicrohttpd's (no hand-written parser): one
 * thread per connection, up to max_connections, with strict request
 * parsing and a memory limit per connection so oversized requests are
 * refused by MHD itself. We bind the listening socket ourselves so that
 * "address already in use" is a clear, early error and port 0 works, and
 * hand it to MHD.
 *
 * Keep-alive and pipelining. A request is answered at the handler's
 * second call (the request complete), never at its first (headers
 * parsed): libmicrohttpd takes an answer queued at the first call as
 * "early", stops reading the connection and closes it after the answer,
 * which made every connection one request long and dropped pipelined
 * requests after the first. So a connection serves its requests in order
 * until the client closes it, asks to ("Connection: close", or HTTP/1.0
 * without keep-alive), or it idles past connection_timeout_ns. Two
 * answers still close: a request with a body (no endpoint takes one) is
 * answered at its first call, as early, and a 400 says "Connection:
 * close" (the rest of a malformed stream is not to be trusted). A request
 * whose framing is ambiguous (two Content-Length headers, one that is not
 * a plain decimal, Content-Length with Transfer-Encoding: MHD frames by
 * the first Content-Length, a proxy may not) is such a 400, at its first
 * call, so the bytes behind it are never run as a request (smuggling). A
 * request with Expect is answered at its first call too: left to the
 * second, MHD sends "100 Continue" even without a body and then served
 * neither it nor what was pipelined behind it.
 *
 * Routing. Each endpoint is a row of a route table (route.h); the tables
 * of all files are listed in `route_tables` below, in the order of the
 * 404 text and of docs/metrics.md. sluice__admin_route_find is a pure
 * function over the rows (the fuzz target drives it without a socket);
 * the dispatcher calls exactly the handler of the row it found.
 *
 * Lock order: see admin_internal.h. `ready` is an atomic flag read
 * without a lock; the sampler thread's stop flag is guarded by sampler_mu.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_received */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/check.h"
#include "admin/admin_internal.h"

/* ---- a growable string ----------------------------------------------------------- */

void sluice__sb_put(sluice__sb *b, const char *s, size_t n)
{
    if (!b->oom && !sluice__text_append(&b->buf, &b->len, &b->cap, 1024, s, n)) {
        b->oom = true;
    }
}

void sluice__sb_puts(sluice__sb *b, const char *s)
{
    sluice__sb_put(b, s, strlen(s));
}

void sluice__sb_printf(sluice__sb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (!b->oom && !sluice__text_vappendf(&b->buf, &b->len, &b->cap, 1024, fmt, ap)) {
        b->oom = true;
    }
    va_end(ap);
}

void sluice__sb_json_str(sluice__sb *b, const char *s)
{
    if (!s) {
        sluice__sb_puts(b, "null");
        return;
    }
    sluice__sb_puts(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[3] = {'\\', (char)c, 0};
            sluice__sb_puts(b, e);
        } else if (c < 0x20 || c == 0x7f) {
            sluice__sb_printf(b, "\\u%04x", c);
        } else if (c >= 0x80) {
            /* JSON is UTF-8: a byte that does not start a valid sequence
             * (a task label is any C string) is U+FFFD. */
            size_t k = sluice__utf8_len(s);
            if (k == 0) {
                sluice__sb_puts(b, "\\ufffd");
            } else {
                sluice__sb_put(b, s, k);
                s += k - 1;
            }
        } else {
            sluice__sb_put(b, (const char *)&c, 1);
        }
    }
    sluice__sb_puts(b, "\"");
}

/* ---- responses ----------------------------------------------------------------------- */

int sluice__admin_respond(struct MHD_Connection *c, unsigned status, const char *type, char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

int sluice__admin_respond_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    size_t n = strlen(text);
    char *body = malloc(n + 1);
    if (!body) {
        return MHD_NO;
    }
    memcpy(body, text, n + 1);
    return sluice__admin_respond(c, status, "text/plain; charset=utf-8", body, n);
}

int sluice__admin_respond_sb(struct MHD_Connection *c, unsigned status, const char *type, sluice__sb *b)
{
    if (b->oom || !b->buf) {
        free(b->buf);
        return sluice__admin_respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    }
    return sluice__admin_respond(c, status, type, b->buf, b->len);
}

/* ---- /metrics ------------------------------------------------------------------------ */

static int ep_metrics(sluice_admin *a, struct MHD_Connection *c)
{
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    sluice_expo_format fmt = sluice_expo_negotiate(accept);
    char *text = NULL;
    size_t len = 0;
    if (sluice_metrics_render(a->metrics, fmt, &text, &len) != SLUICE_OK) {
        return sluice__admin_respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "metrics: out of memory\n");
    }
    return sluice__admin_respond(c, MHD_HTTP_OK, sluice_expo_content_type(fmt), text, len);
}

const sluice__admin_route sluice__admin_server_routes[] = {
    {"/metrics", SLUICE__ADMIN_READ, 0, ep_metrics},
    {NULL, 0, 0, NULL},
};

/* ---- routing ----------------------------------------------------------------------- */

/* Every table, in the order of the 404 text and docs/metrics.md. A new
 * file's table is one more line here. */
static const sluice__admin_route *const route_tables[] = {
    sluice__admin_server_routes,
    sluice__admin_health_routes,
    sluice__admin_debug_routes,
    sluice__admin_console_routes,
};

const sluice__admin_route *sluice__admin_route_at(size_t i)
{
    for (size_t t = 0; t < sizeof route_tables / sizeof route_tables[0]; t++) {
        for (const sluice__admin_route *r = route_tables[t]; r->path; r++) {
            if (i-- == 0) {
                return r;
            }
        }
    }
    return NULL;
}

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

const char *sluice__admin_methods_text(unsigned methods)
{
    switch (methods & SLUICE__ADMIN_READ) {
    case SLUICE__ADMIN_READ:
        return "GET, HEAD";
    case SLUICE__ADMIN_GET:
        return "GET";
    case SLUICE__ADMIN_HEAD:
        return "HEAD";
    default:
        return "";
    }
}

int sluice__admin_route_find(const char *method, const char *url, size_t url_len,
                             const sluice__admin_route **out)
{
    *out = NULL;
    if (!url || url_len == 0 || url[0] != '/' || !method) {
        return 400;
    }
    size_t n = 0; /* the path's length: up to the query string */
    for (; n < url_len && url[n] != '?'; n++) {
        unsigned char c = (unsigned char)url[n];
        if (n >= SLUICE__ADMIN_URL_MAX || c < 0x20 || c == 0x7f) {
            return 400;
        }
        /* a ".." segment: "/.." followed by '/', the end, or the query */
        if (c == '.' && n > 0 && url[n - 1] == '/' && n + 1 < url_len && url[n + 1] == '.' &&
            (n + 2 == url_len || url[n + 2] == '/' || url[n + 2] == '?')) {
            return 400;
        }
    }
    for (size_t q = n; q < url_len; q++) { /* the query string: no control bytes, bounded */
        unsigned char c = (unsigned char)url[q];
        if (q >= SLUICE__ADMIN_URL_MAX || c < 0x20 || c == 0x7f) {
            return 400;
        }
    }
    for (size_t i = 0;; i++) {
        const sluice__admin_route *r = sluice__admin_route_at(i);
        if (!r) {
            return 404;
        }
        if (strlen(r->path) == n && memcmp(r->path, url, n) == 0) {
            *out = r;
            return (r->methods & method_bit(method)) ? 200 : 405;
        }
    }
}

bool sluice__admin_route_requires_token(const sluice_admin *a, const sluice__admin_route *r)
{
    return a && r && (r->flags & SLUICE__ROUTE_TOKEN) && a->token[0] != '\0';
}

/* Whether the request carries "Authorization: Bearer <the token>". The
 * comparison takes the same time wherever the first difference is. */
static bool authorized(const sluice_admin *a, struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        return false;
    }
    h += 7;
    while (*h == ' ') {
        h++;
    }
    size_t n = strlen(h);
    while (n > 0 && h[n - 1] == ' ') {
        n--;
    }
    size_t want = strlen(a->token);
    unsigned char diff = n != want;
    for (size_t i = 0; i < want; i++) {
        diff |= (unsigned char)(a->token[i] ^ (i < n ? h[i] : 0));
    }
    return diff == 0;
}

/* A plain-text answer with one extra header (Allow, Retry-After, ...):
 * the text is copied; MHD_NO when no memory. */
static int respond_text_with(struct MHD_Connection *c, unsigned status, const char *text, const char *header,
                             const char *value)
{
    size_t n = strlen(text);
    char *body = malloc(n + 1);
    if (!body) {
        return MHD_NO;
    }
    memcpy(body, text, n + 1);
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, header, value);
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static int respond_unauthorized(struct MHD_Connection *c)
{
    return respond_text_with(
        c, MHD_HTTP_UNAUTHORIZED,
        "unauthorized: this endpoint needs the admin token (Authorization: Bearer ...)\n",
        MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"sluice-admin\"");
}

/* "not found; endpoints: /metrics /health/live ...\n" from the rows. */
static int respond_not_found(struct MHD_Connection *c)
{
    sluice__sb b = {0};
    sluice__sb_puts(&b, "not found; endpoints:");
    const sluice__admin_route *r;
    for (size_t i = 0; (r = sluice__admin_route_at(i)) != NULL; i++) {
        sluice__sb_puts(&b, " ");
        sluice__sb_puts(&b, r->path);
    }
    sluice__sb_puts(&b, "\n");
    return sluice__admin_respond_sb(c, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8", &b);
}

static int respond_not_allowed(struct MHD_Connection *c, const sluice__admin_route *r)
{
    char text[96];
    snprintf(text, sizeof text, "method not allowed: use %s\n", sluice__admin_methods_text(r->methods));
    return respond_text_with(c, MHD_HTTP_METHOD_NOT_ALLOWED, text, MHD_HTTP_HEADER_ALLOW,
                             sluice__admin_methods_text(r->methods));
}

/* ---- connection slots -------------------------------------------------------------- */

/* Close k's connection from outside its thread: its MHD thread sees the
 * end of the stream and closes it. Caller holds conn_lock, so k is listed
 * and its fd has not been closed. */
static void shut_locked(sluice_admin *a, sluice__admin_conn *k)
{
    SLUICE__ASSERT_HELD(&a->conn_lock);
    if (k->fd >= 0) {
        shutdown(k->fd, SHUT_RDWR);
    }
    k->closing = true;
    a->conn_open--;
}

/* A connection whose answer left its handler less than this ago is not
 * evicted: the answer is being written (the deadline still applies). */
#define ANSWER_GRACE_NS (100 * SLUICE_NS_PER_MS)

/* Whether k may be evicted now: not the newcomer `except`, not in a
 * handler, not already closing, and no answer in the last
 * ANSWER_GRACE_NS. Caller holds conn_lock. */
static bool evictable_locked(const sluice__admin_conn *k, const sluice__admin_conn *except, uint64_t now)
{
    return k != except && !k->busy && !k->closing &&
           !(k->answered_ns && now < k->answered_ns + ANSWER_GRACE_NS);
}

/* How fast k's client has sent, in bytes per second since it connected or
 * last left a handler (ages under 1 ms count as 1 ms). A probe sends its
 * whole request at once (tens of kB/s and more, even before its thread has
 * read it); a client trickling a request sends a few bytes a second.
 * Unknown (no TCP_INFO): 0, the first to go. */
static double send_rate(const sluice__admin_conn *k, uint64_t now)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (k->fd < 0 || getsockopt(k->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received) {
        return 0;
    }
    uint64_t bytes = ti.tcpi_bytes_received - k->bytes_at_since;
    uint64_t age = now > k->since_ns ? now - k->since_ns : 0;
    age = age < SLUICE_NS_PER_MS ? SLUICE_NS_PER_MS : age;
    return (double)bytes * 1e9 / (double)age;
}

bool sluice__admin_request_waiting(int fd)
{
    char buf[4096];
    if (fd < 0) {
        return false;
    }
    ssize_t n = recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
    for (ssize_t i = 0; i + 3 < n; i++) {
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
            return true;
        }
    }
    return false;
}

/* Bytes received on k so far (for send_rate's baseline). */
static uint64_t bytes_received(const sluice__admin_conn *k)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (k->fd < 0 || getsockopt(k->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) {
        return 0;
    }
    return ti.tcpi_bytes_received;
}

/* More than max_connections are open: close the slowest client among
 * those evictable_locked allows (one trickling its request, reading its
 * answer slowly, or idle between requests), never one not yet answered
 * whose whole request is in its socket unread: that client is waiting for
 * its connection thread to run (a CPU-starved node), not trickling, and
 * its rate only looks slower the longer it waits - under a slowloris it
 * was the one evicted, a health probe answered with EOF. A connection
 * answered before gets no such exemption: a client pipelining a backlog
 * and reading one small answer at a time would otherwise always have a
 * request head unread and hold its slot for ever. Returns false when there is
 * none (the newcomer then stays, up to MHD's own limit, and the sampler
 * tries again). Caller holds conn_lock (a recv with MSG_DONTWAIT per
 * candidate: it does not block). */
static bool evict_locked(sluice_admin *a, const sluice__admin_conn *except, uint64_t now)
{
    SLUICE__ASSERT_HELD(&a->conn_lock);
    sluice__admin_conn *slowest = NULL;
    double slowest_rate = 0;
    for (sluice__admin_conn *k = a->conns.next; k != &a->conns; k = k->next) {
        if (evictable_locked(k, except, now) &&
            !(k->answered_ns == 0 && sluice__admin_request_waiting(k->fd))) {
            double rate = send_rate(k, now);
            if (!slowest || rate < slowest_rate) {
                slowest = k;
                slowest_rate = rate;
            }
        }
    }
    if (slowest) {
        shut_locked(a, slowest);
    }
    return slowest != NULL;
}

/* The sampler's other job: close connections that have been outside a
 * handler for longer than connection_timeout_ns, however slowly their
 * bytes keep coming (libmicrohttpd's own timeout sees only silence), and
 * evict down to max_connections. */
static void reap_connections(sluice_admin *a)
{
    pthread_mutex_lock(&a->conn_lock);
    uint64_t now = sluice_clock_now(NULL); /* under the lock: no entry's times are later */
    for (sluice__admin_conn *k = a->conns.next; k != &a->conns; k = k->next) {
        if (!k->busy && !k->closing && now > k->since_ns &&
            now - k->since_ns > a->cfg.connection_timeout_ns) {
            shut_locked(a, k);
        }
    }
    while (a->conn_open > a->cfg.max_connections && evict_locked(a, NULL, now)) {
    }
    pthread_mutex_unlock(&a->conn_lock);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    sluice_admin *a = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        sluice__admin_conn *k = calloc(1, sizeof *k);
        *socket_context = k;
        if (!k) {
            return; /* served without a slot of its own: on_request answers 503 */
        }
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        k->fd = ci ? ci->connect_fd : -1;
        k->since_ns = sluice_clock_now(NULL);
        pthread_mutex_lock(&a->conn_lock);
        k->prev = a->conns.prev;
        k->next = &a->conns;
        a->conns.prev->next = k;
        a->conns.prev = k;
        a->conn_open++;
        if (a->conn_open > a->cfg.max_connections) {
            (void)evict_locked(a, k, sluice_clock_now(NULL)); /* under the lock: no entry's times are later */
        }
        pthread_mutex_unlock(&a->conn_lock);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        sluice__admin_conn *k = *socket_context;
        if (!k) {
            return;
        }
        pthread_mutex_lock(&a->conn_lock);
        k->prev->next = k->next;
        k->next->prev = k->prev;
        if (!k->closing) {
            a->conn_open--;
        }
        pthread_mutex_unlock(&a->conn_lock);
        free(k);
        *socket_context = NULL;
    }
}

static sluice__admin_conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void set_busy(sluice_admin *a, sluice__admin_conn *k, bool busy)
{
    pthread_mutex_lock(&a->conn_lock);
    k->busy = busy;
    if (!busy) {
        /* Its answer is on its way out: the request grace covers the
         * writing (a reader slower than that can be evicted). */
        k->since_ns = k->answered_ns = sluice_clock_now(NULL);
        k->bytes_at_since = bytes_received(k);
    }
    pthread_mutex_unlock(&a->conn_lock);
}

/* ---- the request target as sent ---------------------------------------------------- */

/* libmicrohttpd hands us the target as a C string after decoding it, so
 * "GET /health/live\0x" and "GET /health/live%00x" would both reach the
 * router as "/health/live". This callback sees the target as sent (before
 * decoding and before the query string is split off) and notes its C
 * length and any "%00" in its path; on_request then compares. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    sluice__admin_conn *k = conn_of(c);
    if (k) {
        k->raw_target = uri;
        k->raw_len = uri ? strlen(uri) : 0;
        k->pct_nul = false;
        k->headers_seen = false;
        for (size_t i = 0; i + 2 < k->raw_len && uri[i] != '?'; i++) {
            if (uri[i] == '%' && uri[i + 1] == '0' && uri[i + 2] == '0') {
                k->pct_nul = true;
            }
        }
    }
    return cls; /* the request's context: non-NULL from the first call on */
}

/* Whether the target as sent held a NUL byte. libmicrohttpd (0.9.75)
 * parses the request line in place: the target is followed by the NUL it
 * wrote over the space before the version, then the version, so a target
 * whose C string ends before that NUL had a NUL of its own. Only judged
 * when the pointers are laid out like that (same buffer, version after
 * the target); `url` is the start of the same bytes, decoded in place. */
static bool target_has_nul(const sluice_admin *a, const sluice__admin_conn *k, const char *url,
                           const char *version)
{
    if (k->pct_nul) {
        return true;
    }
    if (!version || k->raw_target != url) {
        return false;
    }
    uintptr_t end = (uintptr_t)url + k->raw_len + 1; /* just past the first NUL */
    uintptr_t v = (uintptr_t)version;
    return v > end && v - end < a->cfg.max_request_bytes + 4096;
}

static int respond_busy(struct MHD_Connection *c, unsigned inflight)
{
    char text[192];
    snprintf(text, sizeof text,
             "busy: %u requests that wait (/health/pools, /debug/pools/stacks) are already in progress; "
             "try again\n",
             inflight);
    return respond_text_with(c, MHD_HTTP_SERVICE_UNAVAILABLE, text, MHD_HTTP_HEADER_RETRY_AFTER, "1");
}

/* Run a row's handler; a SLUICE__ROUTE_SLOW row only while fewer than
 * slow_cap such requests run, so that they can never hold every slot. */
static int run_route(sluice_admin *a, struct MHD_Connection *c, const sluice__admin_route *route)
{
    if (!(route->flags & SLUICE__ROUTE_SLOW)) {
        return route->handler(a, c);
    }
    unsigned cur = atomic_load_explicit(&a->slow_inflight, memory_order_relaxed);
    do {
        if (cur >= a->slow_cap) {
            return respond_busy(c, cur);
        }
    } while (!atomic_compare_exchange_weak_explicit(&a->slow_inflight, &cur, cur + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    int r = route->handler(a, c);
    atomic_fetch_sub_explicit(&a->slow_inflight, 1, memory_order_relaxed);
    return r;
}

/* 400, and the connection closed after it: what follows a malformed
 * request on the stream is not to be trusted. */
static int respond_bad_request(struct MHD_Connection *c)
{
    return respond_text_with(c, MHD_HTTP_BAD_REQUEST, "bad request\n", MHD_HTTP_HEADER_CONNECTION, "close");
}

/* The request's Content-Length headers, all of them (MHD looks up only the
 * first and refuses no duplicate). */
typedef struct {
    unsigned count;
    bool bad;     /* one is not a plain decimal */
    bool nonzero; /* one is not 0 */
} length_headers;

static enum MHD_Result count_length(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    length_headers *l = cls;
    if (key && strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        l->count++;
        size_t n = value ? strlen(value) : 0;
        if (n == 0 || strspn(value, "0123456789") != n) {
            l->bad = true;
        } else if (strspn(value, "0") != n) {
            l->nonzero = true;
        }
    }
    return MHD_YES;
}

/* Whether the request's framing is ambiguous: more than one
 * Content-Length (even equal ones), one that is not a plain decimal, or a
 * Content-Length with a Transfer-Encoding. MHD frames the body by the
 * first Content-Length; a proxy in front may take the last (or the
 * Transfer-Encoding), and what one takes for body the other runs as the
 * next request (request smuggling). Answered 400, connection closed. */
static bool framing_ambiguous(struct MHD_Connection *c, length_headers *l)
{
    memset(l, 0, sizeof *l);
    (void)MHD_get_connection_values(c, MHD_HEADER_KIND, count_length, l);
    const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    return l->count > 1 || l->bad || (l->count && te);
}

/* Whether the request announces a body: a Transfer-Encoding, or a
 * Content-Length other than 0 (l from framing_ambiguous). */
static bool has_body(struct MHD_Connection *c, const length_headers *l)
{
    return l->nonzero || MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)upload_data;
    (void)upload_data_size;
    sluice_admin *a = cls;
    /* *con_cls is set by on_uri. A request without a body is answered at
     * the second call, the request complete, so the connection stays open
     * for the next (see the essay); one with a body (which no endpoint
     * takes) is answered at its first call and MHD closes the connection. */
    (void)con_cls;
    sluice__admin_conn *k = conn_of(c);
    if (!k) {
        return (enum MHD_Result)sluice__admin_respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                                                           "out of memory\n");
    }
    if (!k->headers_seen) {
        length_headers l;
        if (framing_ambiguous(c, &l)) {
            k->headers_seen = true;
            return (enum MHD_Result)respond_bad_request(c);
        }
        /* Expect (100-continue or not): answered now, at the first call.
         * Left to the second, MHD would first send "100 Continue" for a
         * request with no body, and in 0.9.75 it then answered neither it
         * nor a request pipelined behind it. */
        if (*upload_data_size == 0 && !has_body(c, &l) &&
            !MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT)) {
            k->headers_seen = true; /* reset by on_uri for the connection's next request */
            return MHD_YES;
        }
    }
    set_busy(a, k, true);
    const sluice__admin_route *route = NULL;
    int status = target_has_nul(a, k, url, version)
                     ? 400
                     : sluice__admin_route_find(method, url, url ? strlen(url) : 0, &route);
    int r;
    switch (status) {
    case 200:
        if (sluice__admin_route_requires_token(a, route) && !authorized(a, c)) {
            r = respond_unauthorized(c);
        } else {
            r = run_route(a, c, route);
        }
        break;
    case 404:
        r = respond_not_found(c);
        break;
    case 405:
        r = respond_not_allowed(c, route);
        break;
    default:
        r = respond_bad_request(c);
        break;
    }
    set_busy(a, k, false);
    return (enum MHD_Result)r;
}

/* ---- the sampler thread ------------------------------------------------------------- */

static void *sampler_main(void *arg)
{
    sluice_admin *a = arg;
    pthread_mutex_lock(&a->sampler_mu);
    while (!a->sampler_stop) {
        struct timespec ts = sluice__ts_after(CLOCK_MONOTONIC, a->cfg.sample_interval_ns);
        pthread_cond_timedwait(&a->sampler_cv, &a->sampler_mu, &ts);
        if (a->sampler_stop) {
            break;
        }
        pthread_mutex_unlock(&a->sampler_mu);
        sluice__admin_sample(a);
        reap_connections(a);
        pthread_mutex_lock(&a->sampler_mu);
    }
    pthread_mutex_unlock(&a->sampler_mu);
    return NULL;
}

/* ---- start and stop ------------------------------------------------------------------ */

void sluice_admin_config_init(sluice_admin_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
}

/* The connections MHD holds at once: 4 x max_connections (at least 8),
 * saturating. Past max_connections each newcomer evicts a slow client
 * (evict_locked), but the evicted ones take a moment to close (their
 * threads need the CPU), and a storm of reconnecting clients must not
 * fill MHD's own limit with them: at that limit MHD refuses newcomers,
 * probes included. */
static unsigned mhd_limit(unsigned max_connections)
{
    if (max_connections > UINT_MAX / 4) {
        return UINT_MAX;
    }
    return max_connections * 4 > 8 ? max_connections * 4 : 8;
}

/* The bound address as text ("127.0.0.1:9464", "[::1]:9464") and whether
 * only this host can reach it. */
static void describe_bound(sluice_admin *a, const struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
        snprintf(a->bound, sizeof a->bound, "[%s]:%u", host, a->port);
        const uint8_t *b = s6->sin6_addr.s6_addr;
        static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        a->loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) || (memcmp(b, v4mapped, 12) == 0 && b[12] == 127);
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
        snprintf(a->bound, sizeof a->bound, "%s:%u", host, a->port);
        a->loopback = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    }
}

/* Bind and listen on `address` (the rule of src/base/rules.h: "host:port",
 * "[v6]:port" or ":port"). Returns SLUICE_OK with *fd set, or an error with
 * the reason in errbuf. */
static sluice_err bind_listen(sluice_admin *a, const char *address, int *fd_out, char *errbuf, size_t errlen)
{
    char host[SLUICE__LISTEN_HOST_MAX];
    unsigned pnum;
    sluice_err perr = sluice__listen_parse(address, host, &pnum, errbuf, errlen);
    if (perr) {
        return perr;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    char pstr[8];
    snprintf(pstr, sizeof pstr, "%u", pnum);
    int gr = getaddrinfo(host, pstr, &hints, &res);
    if (gr != 0 || !res) {
        sluice__errf(errbuf, errlen, "address '%s': host '%s' is not a numeric IPv4 or IPv6 address (%s)",
                     address, host, gai_strerror(gr));
        return SLUICE_EINVAL;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    if (fd < 0) {
        sluice__errf(errbuf, errlen, "%s: socket: %s", address, strerror(errno));
        freeaddrinfo(res);
        return SLUICE_ESYS;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* rebind after a restart (TIME_WAIT) */
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
        int e = errno;
        freeaddrinfo(res);
        close(fd);
        if (e == EADDRINUSE) {
            sluice__errf(errbuf, errlen, "%s: address already in use", address);
            return SLUICE_EBUSY;
        }
        sluice__errf(errbuf, errlen, "%s: bind: %s", address, strerror(e));
        errno = e;
        return SLUICE_ESYS;
    }
    freeaddrinfo(res);
    /* Hand a connection to the server only once its first bytes are in,
     * so a newly accepted client has either sent its whole request head
     * (then it is never evicted, see evictable_locked) or is slow. */
    int defer_s = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof defer_s);
    if (listen(fd, 64) != 0) {
        int e = errno;
        close(fd);
        sluice__errf(errbuf, errlen, "%s: listen: %s", address, strerror(e));
        errno = e;
        return SLUICE_ESYS;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        int e = errno;
        close(fd);
        sluice__errf(errbuf, errlen, "%s: getsockname: %s", address, strerror(e));
        errno = e;
        return SLUICE_ESYS;
    }
    a->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    describe_bound(a, &ss);
    *fd_out = fd;
    return SLUICE_OK;
}

/* A bearer token: RFC 6750's b64token characters, at most
 * SLUICE_ADMIN_TOKEN_MAX of them. The message never repeats the token. */
static bool valid_token(const char *t, char *errbuf, size_t errlen)
{
    if (!t) {
        return true;
    }
    size_t n = strlen(t);
    if (n > SLUICE_ADMIN_TOKEN_MAX) {
        sluice__errf(errbuf, errlen, "token: at most %d characters, got %zu", SLUICE_ADMIN_TOKEN_MAX, n);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("-._~+/=", c))) {
            sluice__errf(
                errbuf, errlen,
                "token: character %zu (byte 0x%02x) is not allowed; use A-Z a-z 0-9 and - . _ ~ + / =", i + 1,
                c);
            return false;
        }
    }
    return true;
}

/* Release what create set up (the metrics registry if it is ours, the
 * locks) and `a`. The server, the sampler and the pools must be gone. */
static void admin_free(sluice_admin *a)
{
    if (a->own_metrics) {
        sluice_metrics_destroy(a->metrics);
    }
    pthread_cond_destroy(&a->sampler_cv);
    pthread_mutex_destroy(&a->sampler_mu);
    pthread_mutex_destroy(&a->sat_lock);
    pthread_mutex_destroy(&a->conn_lock);
    pthread_rwlock_destroy(&a->pools_lock);
    free(a);
}

sluice_err sluice_admin_start(const sluice_admin_config *cfg, sluice_admin **out, char *errbuf, size_t errlen)
{
    sluice__errf(errbuf, errlen, "%s", "");
    if (!out) {
        sluice__errf(errbuf, errlen, "out is required");
        return SLUICE_EINVAL;
    }
    sluice_admin_config def;
    if (!cfg) {
        sluice_admin_config_init(&def);
        cfg = &def;
    }
    sluice_admin *a = calloc(1, sizeof *a);
    if (!a) {
        return SLUICE_ENOMEM;
    }
    a->cfg = *cfg;
    const char *address = cfg->address ? cfg->address : SLUICE_ADMIN_DEFAULT_ADDRESS;
    if (strlen(address) >= sizeof a->address) {
        /* Cut, it could read as another address ("127.0.0.1:000...0080"
         * cut inside the zeros is port 0). */
        sluice__errf(errbuf, errlen, "address '%.32s...': longer than %zu bytes", address,
                     sizeof a->address - 1);
        free(a);
        return SLUICE_EINVAL;
    }
    snprintf(a->address, sizeof a->address, "%s", address);
    a->cfg.address = a->address;
    if (!valid_token(cfg->token, errbuf, errlen)) {
        free(a);
        return SLUICE_EINVAL;
    }
    snprintf(a->token, sizeof a->token, "%s", cfg->token ? cfg->token : "");
    a->cfg.token = a->token;
    if (!a->cfg.max_connections) {
        a->cfg.max_connections = 16;
    }
    if (!a->cfg.max_request_bytes) {
        a->cfg.max_request_bytes = 8192;
    }
    if (a->cfg.max_request_bytes > SLUICE_ADMIN_REQUEST_BYTES_MAX) {
        /* Past it the memory limit below would wrap (SIZE_MAX + 4096 is
         * 4095: every request refused) or reserve that much per connection. */
        sluice__errf(errbuf, errlen, "max_request_bytes: at most %zu, got %zu",
                     SLUICE_ADMIN_REQUEST_BYTES_MAX, a->cfg.max_request_bytes);
        free(a);
        return SLUICE_EINVAL;
    }
    if (!a->cfg.health_timeout_ns) {
        a->cfg.health_timeout_ns = 5 * SLUICE_NS_PER_SEC;
    }
    if (!a->cfg.saturation_threshold_ns) {
        a->cfg.saturation_threshold_ns = 30 * SLUICE_NS_PER_SEC;
    }
    if (!a->cfg.sample_interval_ns) {
        a->cfg.sample_interval_ns = 250 * SLUICE_NS_PER_MS;
    }
    if (!a->cfg.stack_timeout_ns) {
        a->cfg.stack_timeout_ns = 200 * SLUICE_NS_PER_MS;
    }
    if (!a->cfg.connection_timeout_ns) {
        a->cfg.connection_timeout_ns = 10 * SLUICE_NS_PER_SEC;
    }
    atomic_init(&a->ready, true);
    a->slow_cap = a->cfg.max_connections / 2 ? a->cfg.max_connections / 2 : 1;
    atomic_init(&a->slow_inflight, 0);
    pthread_mutex_init(&a->conn_lock, NULL);
    a->conns.next = a->conns.prev = &a->conns;
    pthread_rwlock_init(&a->pools_lock, NULL);
    pthread_mutex_init(&a->sat_lock, NULL);
    pthread_mutex_init(&a->sampler_mu, NULL);
    (void)sluice__cond_init(&a->sampler_cv); /* glibc: cannot fail; destroyed unconditionally */

    sluice_err r = SLUICE_OK;
    if (cfg->metrics) {
        a->metrics = cfg->metrics;
    } else if (cfg->service) {
        a->metrics = sluice_service_metrics(cfg->service); /* borrowed: the pools are exported there */
    } else {
        r = sluice_metrics_create(NULL, &a->metrics);
        a->own_metrics = r == SLUICE_OK;
    }
    int fd = -1;
    if (r == SLUICE_OK) {
        r = bind_listen(a, a->address, &fd, errbuf, errlen);
    }
    if (r == SLUICE_OK) {
        /* The memory limit bounds the request line and headers; MHD needs
         * some room of its own beyond it. */
        size_t mem = a->cfg.max_request_bytes + 4096;
        /* MHD's idle timeout in whole seconds, rounded up; a timeout past
         * what its unsigned seconds hold is none at all (0), not the
         * truncated rest (2^32 + 1 s was 1 s). The sampler enforces ours. */
        uint64_t secs = a->cfg.connection_timeout_ns / SLUICE_NS_PER_SEC +
                        (a->cfg.connection_timeout_ns % SLUICE_NS_PER_SEC != 0);
        unsigned timeout_s = secs > UINT_MAX ? 0 : (unsigned)secs;
        /* MHD's own limit leaves room above max_connections for the
         * newcomers that evict a slow client (evict_locked) while the
         * evicted ones close. */
        a->daemon = MHD_start_daemon(
            MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD, 0, NULL, NULL, on_request, a,
            MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, mhd_limit(a->cfg.max_connections),
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem, MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
            MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_NOTIFY_CONNECTION, on_connection, a,
            MHD_OPTION_URI_LOG_CALLBACK, on_uri, a, MHD_OPTION_END);
        if (!a->daemon) {
            int e = errno;
            close(fd);
            sluice__errf(errbuf, errlen, "%s: libmicrohttpd could not start: %s", a->address, strerror(e));
            r = SLUICE_ESYS;
        }
    }
    if (r == SLUICE_OK) {
        if (pthread_create(&a->sampler, NULL, sampler_main, a) != 0) {
            sluice__errf(errbuf, errlen, "cannot start the sampler thread: %s", strerror(errno));
            MHD_stop_daemon(a->daemon);
            r = SLUICE_ESYS;
        } else {
            a->sampler_started = true;
        }
    }
    if (r != SLUICE_OK) {
        admin_free(a);
        return r;
    }
    if (cfg->service) {
        r = sluice__admin_attach(a, cfg->service);
        if (r != SLUICE_OK) {
            sluice__errf(errbuf, errlen, "cannot serve the service: %s", sluice_strerror(r));
            sluice_admin_stop(a);
            return r;
        }
    }
    *out = a;
    return SLUICE_OK;
}

void sluice_admin_stop(sluice_admin *a)
{
    if (!a) {
        return;
    }
    sluice__admin_detach(a);    /* first: no pool arrives while the server goes */
    MHD_stop_daemon(a->daemon); /* waits for connection threads; closes the listening socket */
    pthread_mutex_lock(&a->sampler_mu);
    a->sampler_stop = true;
    pthread_cond_broadcast(&a->sampler_cv);
    pthread_mutex_unlock(&a->sampler_mu);
    if (a->sampler_started) {
        pthread_join(a->sampler, NULL);
    }
    for (size_t i = 0; i < a->pool_count; i++) {
        if (a->pools[i].in_registry) {
            sluice_metrics_remove_pool(a->metrics, a->pools[i].pool);
        }
    }
    admin_free(a);
}

unsigned sluice_admin_port(const sluice_admin *a)
{
    return a ? a->port : 0;
}

const char *sluice_admin_address(const sluice_admin *a)
{
    return a ? a->bound : "";
}

bool sluice_admin_is_loopback(const sluice_admin *a)
{
    return a && a->loopback;
}

sluice_metrics *sluice_admin_metrics(sluice_admin *a)
{
    return a ? a->metrics : NULL;
}

/* Export `pool` in the server's registry for add_pool (pools_lock held for
 * writing). *owned: whether the registry got it from this call (remove_pool
 * takes it out again) or already exported this very pool. Another pool
 * under the name is refused: /metrics would show that pool's figures as
 * this one's. A pool of the name removed between the two looks is retried. */
static sluice_err export_pool(sluice_admin *a, sluice_pool *pool, bool *owned, char *errbuf, size_t errlen)
{
    const char *name = sluice_pool_name(pool);
    for (int attempt = 0; attempt < 3; attempt++) {
        sluice_err mr = sluice_metrics_add_pool(a->metrics, pool);
        if (mr != SLUICE_EBUSY) {
            *owned = mr == SLUICE_OK;
            if (mr != SLUICE_OK) {
                sluice__errf(errbuf, errlen, "pool \"%s\": metrics registry: %s", name, sluice_strerror(mr));
            }
            return mr;
        }
        const sluice_pool *held = NULL;
        sluice_err fr = sluice_metrics_pool_named(a->metrics, name, &held);
        if (fr == SLUICE_OK && held == pool) {
            *owned = false; /* already there (the service's registry, say): export nothing twice */
            return SLUICE_OK;
        }
        if (fr == SLUICE_OK) {
            sluice__errf(errbuf, errlen,
                         "pool \"%s\": the metrics registry already exports another pool named \"%s\" "
                         "(its figures would show at /metrics as this pool's); give the pools distinct names",
                         name, name);
            return SLUICE_EBUSY;
        }
        /* ENOENT: the pool that held the name went meanwhile; try again. */
    }
    sluice__errf(errbuf, errlen,
                 "pool \"%s\": pools of that name keep coming and going in the metrics registry", name);
    return SLUICE_EBUSY;
}

sluice_err sluice_admin_add_pool_ex(sluice_admin *a, sluice_pool *pool, char *errbuf, size_t errlen)
{
    sluice__errf(errbuf, errlen, "%s", "");
    if (!a || !pool) {
        sluice__errf(errbuf, errlen, "%s is NULL", a ? "pool" : "admin");
        return SLUICE_EINVAL;
    }
    const char *name = sluice_pool_name(pool);
    sluice_err r = SLUICE_OK;
    pthread_rwlock_wrlock(&a->pools_lock);
    for (size_t i = 0; i < a->pool_count && r == SLUICE_OK; i++) {
        if (a->pools[i].pool == pool) {
            sluice__errf(errbuf, errlen, "pool \"%s\": already served by this server", name);
            r = SLUICE_EBUSY;
        } else if (strcmp(sluice_pool_name(a->pools[i].pool), name) == 0) {
            sluice__errf(errbuf, errlen, "pool \"%s\": this server already serves another pool named \"%s\"",
                         name, name);
            r = SLUICE_EBUSY;
        }
    }
    if (r == SLUICE_OK && a->pool_count == SLUICE__ADMIN_MAX_POOLS) {
        sluice__errf(errbuf, errlen, "pool \"%s\": the server already serves %d pools, the most it serves",
                     name, SLUICE__ADMIN_MAX_POOLS);
        r = SLUICE_EOVERFLOW;
    }
    bool owned = false;
    if (r == SLUICE_OK) {
        r = export_pool(a, pool, &owned, errbuf, errlen);
    }
    if (r == SLUICE_OK) {
        sluice__admin_pool *e = &a->pools[a->pool_count++];
        memset(e, 0, sizeof *e);
        e->pool = pool;
        e->in_registry = owned;
        e->ready_milli = -1;
    }
    pthread_rwlock_unlock(&a->pools_lock);
    return r;
}

sluice_err sluice_admin_add_pool(sluice_admin *a, sluice_pool *pool)
{
    return sluice_admin_add_pool_ex(a, pool, NULL, 0);
}

sluice_err sluice_admin_remove_pool(sluice_admin *a, sluice_pool *pool)
{
    if (!a || !pool) {
        return SLUICE_EINVAL;
    }
    sluice_err r = SLUICE_ENOENT;
    pthread_rwlock_wrlock(&a->pools_lock);
    for (size_t i = 0; i < a->pool_count; i++) {
        if (a->pools[i].pool == pool) {
            if (a->pools[i].in_registry) {
                sluice_metrics_remove_pool(a->metrics, pool);
            }
            pthread_mutex_lock(&a->sat_lock);
            memmove(&a->pools[i], &a->pools[i + 1], (a->pool_count - i - 1) * sizeof a->pools[0]);
            a->pool_count--;
            pthread_mutex_unlock(&a->sat_lock);
            r = SLUICE_OK;
            break;
        }
    }
    pthread_rwlock_unlock(&a->pools_lock);
    return r;
}

sluice_err sluice_admin_set_pool_readiness(sluice_admin *a, const sluice_pool *pool, double weight)
{
    if (!a || !pool || !(weight >= 0.0 && weight <= 1.0)) {
        return SLUICE_EINVAL;
    }
    sluice_err r = SLUICE_ENOENT;
    pthread_rwlock_rdlock(&a->pools_lock);
    for (size_t i = 0; i < a->pool_count; i++) {
        if (a->pools[i].pool == pool) {
            pthread_mutex_lock(&a->sat_lock);
            a->pools[i].ready_milli = (int)(weight * 1000.0 + 0.5);
            pthread_mutex_unlock(&a->sat_lock);
            r = SLUICE_OK;
        }
    }
    pthread_rwlock_unlock(&a->pools_lock);
    return r;
}

void sluice_admin_set_ready(sluice_admin *a, bool ready)
{
    if (a) {
        atomic_store_explicit(&a->ready, ready, memory_order_release); /* pairs with ep_ready's load */
    }
}

void sluice_admin_ready_handler(void *user, bool ready)
{
    sluice_admin_set_ready((sluice_admin *)user, ready);
}

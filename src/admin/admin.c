/*
 * src/admin/admin.c - the admin HTTP server: /metrics, /health/live,
 * /health/ready, /health/pools, /debug/pools, /debug/pools/stacks.
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
 * hand it to MHD. Routing is a pure function (sluice_admin_route) that the
 * fuzz target drives without a socket.
 *
 * Endpoints read snapshots only (stats, histograms, worker lists), so a
 * scrape never blocks a worker. /health/pools submits one no-op probe task
 * per pool and waits for all of them together, up to the health timeout.
 * A probe's state is a small heap object with two references (the waiting
 * request, the task); a probe that the pool hands back instead of running
 * comes to probe_abandoned (its own on_abandon), which drops the task's
 * reference and tells the request, so the pool's handler never sees it.
 *
 * Saturation. A sampler thread looks at every pool each sample interval
 * (and each /health/ready request looks too); `sat_since` records when a
 * pool was first seen saturated (running == capacity and queue full) in
 * the current run of observations, on the configured clock, and is reset
 * by the first unsaturated observation. Ready turns 503 once any pool has
 * been saturated for saturation_threshold_ns.
 *
 * Lock order: pools_lock (read for requests and the sampler, write for
 * add/remove) -> sat_lock -> the metrics registry lock -> pool getters.
 * remove_pool takes pools_lock for writing, so it waits for requests in
 * flight that use the pools (bounded by the health and stack timeouts).
 * `ready` is an atomic flag read without a lock.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "obs/text_append.h"
#include "sluice/admin.h"

#define MAX_POOLS 64
#define URL_MAX 2048
#define PROBE_LABEL "sluice.admin.probe"

/* ---- a growable string ----------------------------------------------------------- */

typedef struct strbuf {
    char *buf;
    size_t len;
    size_t cap;
    bool oom;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n)
{
    if (!b->oom && !sluice__text_append(&b->buf, &b->len, &b->cap, 1024, s, n)) {
        b->oom = true;
    }
}

static void sb_puts(strbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_printf(strbuf *b, const char *fmt, ...) SLUICE_PRINTF(2, 3);
static void sb_printf(strbuf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) {
        sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
    }
}

static void sb_json_str(strbuf *b, const char *s)
{
    if (!s) {
        sb_puts(b, "null");
        return;
    }
    sb_puts(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[3] = {'\\', (char)c, 0};
            sb_puts(b, e);
        } else if (c < 0x20 || c == 0x7f) {
            sb_printf(b, "\\u%04x", c);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_puts(b, "\"");
}

/* ---- the server ------------------------------------------------------------------ */

typedef struct pool_entry {
    sluice_pool *pool;
    bool in_registry; /* we added it to the registry, so we remove it */
    /* Guarded by sat_lock. */
    bool saturated;
    uint64_t sat_since;
} pool_entry;

struct sluice_admin {
    sluice_admin_config cfg; /* defaults filled; address points at `address` */
    char address[256];
    sluice_metrics *metrics;
    bool own_metrics;
    struct MHD_Daemon *daemon;
    unsigned port;
    _Atomic bool ready;

    pthread_rwlock_t pools_lock;
    pool_entry pools[MAX_POOLS];
    size_t pool_count;
    pthread_mutex_t sat_lock;

    /* The sampler. Guarded by sampler_mu. */
    pthread_mutex_t sampler_mu;
    pthread_cond_t sampler_cv;
    bool sampler_stop;
    bool sampler_started;
    pthread_t sampler;
};

void sluice_admin_config_init(sluice_admin_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
}

static void seterr(char *errbuf, size_t errlen, const char *fmt, ...) SLUICE_PRINTF(3, 4);
static void seterr(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (!errbuf || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

/* ---- routing ----------------------------------------------------------------------- */

int sluice_admin_route(const char *method, const char *url, const char **endpoint)
{
    static const struct {
        const char *path;
        const char *name;
    } routes[] = {
        {"/metrics", "metrics"},    {"/health/live", "live"},  {"/health/ready", "ready"},
        {"/health/pools", "pools"}, {"/debug/pools", "debug"}, {"/debug/pools/stacks", "stacks"},
    };
    if (endpoint) {
        *endpoint = NULL;
    }
    if (!url || url[0] != '/' || !method) {
        return 400;
    }
    size_t n = 0;
    for (; url[n] && url[n] != '?'; n++) {
        unsigned char c = (unsigned char)url[n];
        if (n >= URL_MAX || c < 0x20 || c == 0x7f) {
            return 400;
        }
        /* a ".." segment */
        if (c == '.' && url[n + 1] == '.' && url[n - (n > 0)] == '/' &&
            (url[n + 2] == '/' || url[n + 2] == '\0' || url[n + 2] == '?')) {
            return 400;
        }
    }
    for (size_t q = n; url[q]; q++) { /* the query string: no control bytes, bounded */
        unsigned char c = (unsigned char)url[q];
        if (q >= URL_MAX || c < 0x20 || c == 0x7f) {
            return 400;
        }
    }
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strlen(routes[i].path) == n && strncmp(routes[i].path, url, n) == 0) {
            if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
                return 405;
            }
            if (endpoint) {
                *endpoint = routes[i].name;
            }
            return 200;
        }
    }
    return 404;
}

/* ---- responses ----------------------------------------------------------------------- */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *type, char *body,
                               size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    }
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    size_t n = strlen(text);
    char *body = malloc(n + 1);
    if (!body) {
        return MHD_NO;
    }
    memcpy(body, text, n + 1);
    return respond(c, status, "text/plain; charset=utf-8", body, n);
}

static enum MHD_Result respond_sb(struct MHD_Connection *c, unsigned status, const char *type, strbuf *b)
{
    if (b->oom || !b->buf) {
        free(b->buf);
        return respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    }
    return respond(c, status, type, b->buf, b->len);
}

/* ---- saturation -------------------------------------------------------------------- */

/* Look at one pool; returns whether it is saturated now and for how long. */
static bool observe(sluice_admin *a, pool_entry *e, uint64_t now, uint64_t *for_ns, sluice_pool_stats *st_out)
{
    sluice_pool_stats st;
    sluice_pool_stats_get(e->pool, &st);
    bool sat = st.capacity > 0 && st.running >= st.capacity && st.queue_depth >= st.queue_capacity;
    pthread_mutex_lock(&a->sat_lock);
    if (sat && !e->saturated) {
        e->saturated = true;
        e->sat_since = now;
    } else if (!sat) {
        e->saturated = false;
    }
    *for_ns = sat && now > e->sat_since ? now - e->sat_since : 0;
    pthread_mutex_unlock(&a->sat_lock);
    if (st_out) {
        *st_out = st;
    }
    return sat;
}

static void *sampler_main(void *arg)
{
    sluice_admin *a = arg;
    pthread_mutex_lock(&a->sampler_mu);
    while (!a->sampler_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + a->cfg.sample_interval_ns;
        ts.tv_sec += (time_t)(ns / SLUICE_NS_PER_SEC);
        ts.tv_nsec = (long)(ns % SLUICE_NS_PER_SEC);
        pthread_cond_timedwait(&a->sampler_cv, &a->sampler_mu, &ts);
        if (a->sampler_stop) {
            break;
        }
        pthread_mutex_unlock(&a->sampler_mu);
        pthread_rwlock_rdlock(&a->pools_lock);
        uint64_t now = sluice_clock_now(a->cfg.clock);
        for (size_t i = 0; i < a->pool_count; i++) {
            uint64_t for_ns;
            observe(a, &a->pools[i], now, &for_ns, NULL);
        }
        pthread_rwlock_unlock(&a->pools_lock);
        pthread_mutex_lock(&a->sampler_mu);
    }
    pthread_mutex_unlock(&a->sampler_mu);
    return NULL;
}

/* ---- endpoints ----------------------------------------------------------------------- */

static enum MHD_Result ep_metrics(sluice_admin *a, struct MHD_Connection *c)
{
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    sluice_expo_format fmt = sluice_expo_negotiate(accept);
    char *text = NULL;
    size_t len = 0;
    if (sluice_metrics_render(a->metrics, fmt, &text, &len) != SLUICE_OK) {
        return respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "metrics: out of memory\n");
    }
    return respond(c, MHD_HTTP_OK, sluice_expo_content_type(fmt), text, len);
}

static enum MHD_Result ep_ready(sluice_admin *a, struct MHD_Connection *c)
{
    strbuf b = {0};
    bool ok = true;
    if (!atomic_load_explicit(&a->ready, memory_order_acquire)) { /* pairs with set_ready's store */
        ok = false;
        sb_puts(&b, "not ready: draining\n");
    }
    pthread_rwlock_rdlock(&a->pools_lock);
    uint64_t now = sluice_clock_now(a->cfg.clock);
    double thr = (double)a->cfg.saturation_threshold_ns / 1e9;
    for (size_t i = 0; i < a->pool_count; i++) {
        uint64_t for_ns;
        const char *name = sluice_pool_name(a->pools[i].pool);
        if (observe(a, &a->pools[i], now, &for_ns, NULL)) {
            bool over = for_ns >= a->cfg.saturation_threshold_ns;
            ok = ok && !over;
            sb_printf(&b, "%s saturated for %.1fs (%s threshold %.1fs)\n", name, (double)for_ns / 1e9,
                      over ? "over" : "under", thr);
        } else {
            sb_printf(&b, "%s ok\n", name);
        }
    }
    pthread_rwlock_unlock(&a->pools_lock);
    if (b.len == 0) {
        sb_puts(&b, "ready: no pools\n");
    }
    return respond_sb(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", &b);
}

/* A probe: two references (request, task); the last one frees. */
typedef struct probe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    bool abandoned;                /* handed back instead of run */
    sluice_abandon_reason why_back; /* why, when abandoned */
    _Atomic int refs;
} probe;

static void probe_unref(probe *p)
{
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p);
    }
}

int sluice_admin_probe_fn(void *arg)
{
    probe *p = arg;
    pthread_mutex_lock(&p->mu);
    p->done = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    probe_unref(p);
    return 0;
}

/* A probe the pool handed back (drain, destroy): drop the task's reference. */
static void probe_abandoned(const sluice_abandoned *task)
{
    probe *p = task->arg;
    pthread_mutex_lock(&p->mu);
    p->abandoned = true;
    p->why_back = task->reason;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    probe_unref(p);
}

static probe *probe_new(void)
{
    probe *p = calloc(1, sizeof *p);
    if (!p) {
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&p->refs, 2);
    return p;
}

static enum MHD_Result ep_pools(sluice_admin *a, struct MHD_Connection *c)
{
    probe *probes[MAX_POOLS] = {0};
    const char *why[MAX_POOLS] = {0};
    /* One deadline for the whole check, submits included. */
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    uint64_t ns = (uint64_t)deadline.tv_nsec + a->cfg.health_timeout_ns;
    deadline.tv_sec += (time_t)(ns / SLUICE_NS_PER_SEC);
    deadline.tv_nsec = (long)(ns % SLUICE_NS_PER_SEC);
    pthread_rwlock_rdlock(&a->pools_lock);
    size_t n = a->pool_count;
    for (size_t i = 0; i < n; i++) {
        sluice_pool *pool = a->pools[i].pool;
        sluice_pool_stats st;
        sluice_pool_stats_get(pool, &st);
        if (st.draining) {
            why[i] = "draining";
            continue;
        }
        if (st.queue_depth >= st.queue_capacity) {
            why[i] = "queue full"; /* never evict or block real work for a probe */
            continue;
        }
        probe *p = probe_new();
        if (!p) {
            why[i] = "out of memory";
            continue;
        }
        sluice_submit_opts o = {0};
        o.label = PROBE_LABEL;
        o.on_abandon = probe_abandoned;
        /* If the queue filled since the look above, a BLOCK pool waits at
         * most the health timeout (on a fake clock, which may never move,
         * not at all). */
        const sluice_clock *pc = sluice_pool_clock(pool);
        o.submit_deadline_ns =
            sluice_clock_now(pc) + (sluice_clock_is_system(pc) ? a->cfg.health_timeout_ns : 1);
        sluice_err r = sluice_pool_submit_ex(pool, sluice_admin_probe_fn, p, &o);
        if (r != SLUICE_OK) {
            probe_unref(p); /* both references: the task never got it */
            probe_unref(p);
            why[i] = r == SLUICE_ECLOSED ? "draining" : sluice_strerror(r);
            continue;
        }
        probes[i] = p;
    }
    strbuf b = {0};
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        const char *name = sluice_pool_name(a->pools[i].pool);
        probe *p = probes[i];
        if (p) {
            pthread_mutex_lock(&p->mu);
            while (!p->done && !p->abandoned) {
                if (pthread_cond_timedwait(&p->cv, &p->mu, &deadline) == ETIMEDOUT) {
                    break;
                }
            }
            bool done = p->done;
            bool abandoned = p->abandoned;
            sluice_abandon_reason back = p->why_back;
            pthread_mutex_unlock(&p->mu);
            probe_unref(p);
            if (abandoned) {
                why[i] = back == SLUICE_ABANDON_DROPPED ? "probe evicted by newer work (queue full)" : "draining";
            } else if (!done) {
                why[i] = "did not answer in time";
            }
        }
        if (why[i]) {
            ok = false;
            sb_printf(&b, "%s FAIL: %s\n", name, why[i]);
        } else {
            sb_printf(&b, "%s ok\n", name);
        }
    }
    pthread_rwlock_unlock(&a->pools_lock);
    if (n == 0) {
        sb_puts(&b, "ok: no pools\n");
    }
    return respond_sb(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", &b);
}

/* The live workers of a pool (malloc'd; *n set). */
static sluice_worker_info *workers_of(sluice_pool *pool, size_t *n)
{
    size_t cap = 64;
    for (;;) {
        sluice_worker_info *w = calloc(cap, sizeof *w);
        if (!w) {
            *n = 0;
            return NULL;
        }
        size_t got = sluice_pool_workers_get(pool, w, cap);
        if (got <= cap) {
            *n = got;
            return w;
        }
        free(w);
        cap = got + 16;
    }
}

static double age_seconds(sluice_pool *pool, uint64_t since)
{
    uint64_t now = sluice_clock_now(sluice_pool_clock(pool));
    return since && now > since ? (double)(now - since) / 1e9 : 0.0;
}

static void json_pool(strbuf *b, sluice_pool *pool)
{
    sluice_pool_config cfg;
    sluice_pool_config_get(pool, &cfg);
    sluice_pool_stats st;
    sluice_pool_stats_get(pool, &st);
    sb_puts(b, "{\"name\":");
    sb_json_str(b, sluice_pool_name(pool));
    sb_printf(
        b,
        ",\"config\":{\"workers\":%u,\"min_workers\":%u,\"queue_capacity\":%zu,\"overflow\":\"%s\","
        "\"submit_timeout_ns\":%" PRIu64 ",\"idle_expiry_ns\":%" PRIu64 ",\"prewarm\":%s,\"stack_size\":%zu,"
        "\"fault_mode\":\"%s\",\"timing_sample_every\":%u,\"timing_sample_auto\":%s,\"timing_disabled\":%s}",
        cfg.workers, cfg.min_workers, cfg.queue_capacity, sluice_overflow_name(cfg.overflow),
        cfg.submit_timeout_ns, cfg.idle_expiry_ns, cfg.prewarm ? "true" : "false", cfg.stack_size,
        sluice_fault_mode_name(cfg.fault_mode), cfg.timing_sample_every,
        cfg.timing_sample_every == SLUICE_TIMING_SAMPLE_AUTO ? "true" : "false", cfg.timing_disabled ? "true" : "false");
    sb_printf(b,
              ",\"stats\":{\"running\":%u,\"capacity\":%u,\"workers\":%u,\"idle\":%u,\"waiting\":%u,"
              "\"queue_depth\":%zu,\"queue_capacity\":%zu,\"draining\":%s,",
              st.running, st.capacity, st.workers, st.idle, st.waiting, st.queue_depth, st.queue_capacity,
              st.draining ? "true" : "false");
    sb_printf(b,
              "\"submitted\":%" PRIu64 ",\"completed\":%" PRIu64 ",\"failed\":%" PRIu64
              ",\"panicked\":%" PRIu64 ",\"rejected\":%" PRIu64 ",\"dropped\":%" PRIu64 ",\"shed\":%" PRIu64
              ",\"abandoned\":%" PRIu64 ",\"caller_ran\":%" PRIu64 ",",
              st.submitted, st.completed, st.failed, st.panicked, st.rejected, st.dropped, st.shed,
              st.abandoned, st.caller_ran);
    sb_printf(b,
              "\"expired_workers\":%" PRIu64 ",\"retired_workers\":%" PRIu64 ",\"started_workers\":%" PRIu64
              ",\"resize_events\":%" PRIu64 ",\"init_failures\":%" PRIu64
              ",\"workers_hwm\":%u,\"waiting_hwm\":%u,\"queue_depth_hwm\":%zu,\"timing_sample_every\":%u}",
              st.expired_workers, st.retired_workers, st.started_workers, st.resize_events, st.init_failures,
              st.workers_hwm, st.waiting_hwm, st.queue_depth_hwm, st.timing_sample_every);
    size_t n;
    sluice_worker_info *w = workers_of(pool, &n);
    sb_puts(b, ",\"workers\":[");
    for (size_t i = 0; i < n; i++) {
        sb_printf(b, "%s{\"index\":%u,\"state\":\"%s\",\"for_seconds\":%.3f,\"task\":", i ? "," : "",
                  w[i].index, sluice_worker_status_name(w[i].state), age_seconds(pool, w[i].since_ns));
        sb_json_str(b, w[i].state == SLUICE_WORKER_RUNNING ? w[i].task_label : NULL);
        sb_printf(b, ",\"tasks_run\":%" PRIu64 "}", w[i].tasks_run);
    }
    sb_puts(b, "]}");
    free(w);
}

static enum MHD_Result ep_debug(sluice_admin *a, struct MHD_Connection *c)
{
    strbuf b = {0};
    sb_puts(&b, "{\"ready\":");
    sb_puts(&b, atomic_load_explicit(&a->ready, memory_order_acquire) ? "true" : "false");
    sb_puts(&b, ",\"pools\":[");
    pthread_rwlock_rdlock(&a->pools_lock);
    for (size_t i = 0; i < a->pool_count; i++) {
        if (i) {
            sb_puts(&b, ",");
        }
        json_pool(&b, a->pools[i].pool);
    }
    pthread_rwlock_unlock(&a->pools_lock);
    sb_puts(&b, "]}\n");
    return respond_sb(c, MHD_HTTP_OK, "application/json", &b);
}

static enum MHD_Result ep_stacks(sluice_admin *a, struct MHD_Connection *c)
{
    strbuf b = {0};
    char text[8192];
    void *frames[SLUICE_BACKTRACE_MAX];
    pthread_rwlock_rdlock(&a->pools_lock);
    for (size_t i = 0; i < a->pool_count; i++) {
        sluice_pool *pool = a->pools[i].pool;
        size_t n;
        sluice_worker_info *w = workers_of(pool, &n);
        sb_printf(&b, "pool %s: %zu workers\n", sluice_pool_name(pool), n);
        for (size_t k = 0; k < n; k++) {
            sb_printf(&b, "  worker %u %s %.3fs", w[k].index, sluice_worker_status_name(w[k].state),
                      age_seconds(pool, w[k].since_ns));
            if (w[k].state == SLUICE_WORKER_RUNNING && w[k].task_label) {
                sb_puts(&b, " task=");
                sb_puts(&b, w[k].task_label);
            }
            sb_puts(&b, "\n");
            int count = 0;
            sluice_err r = sluice_thread_backtrace(w[k].thread, frames, SLUICE_BACKTRACE_MAX, &count,
                                                   a->cfg.stack_timeout_ns);
            if (r != SLUICE_OK) {
                sb_printf(&b, "    (no backtrace: %s)\n", sluice_strerror(r));
                continue;
            }
            sluice_backtrace_format(frames, count, text, sizeof text);
            /* indent each line */
            for (char *line = text; *line;) {
                char *nl = strchr(line, '\n');
                size_t len = nl ? (size_t)(nl - line) : strlen(line);
                sb_puts(&b, "    ");
                sb_put(&b, line, len);
                sb_puts(&b, "\n");
                line += len + (nl ? 1 : 0);
            }
        }
        free(w);
    }
    pthread_rwlock_unlock(&a->pools_lock);
    if (b.len == 0) {
        sb_puts(&b, "no pools\n");
    }
    return respond_sb(c, MHD_HTTP_OK, "text/plain; charset=utf-8", &b);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    (void)upload_data;
    sluice_admin *a = cls;
    if (*con_cls == NULL) {
        /* First call: headers only. For a request with a body (which no
         * endpoint takes) we answer at once and MHD closes the connection. */
        *con_cls = a;
    }
    (void)upload_data_size;
    const char *ep = NULL;
    int status = sluice_admin_route(method, url, &ep);
    switch (status) {
    case 400:
        return respond_text(c, MHD_HTTP_BAD_REQUEST, "bad request\n");
    case 404:
        return respond_text(
            c, MHD_HTTP_NOT_FOUND,
            "not found; endpoints: /metrics /health/live /health/ready /health/pools /debug/pools "
            "/debug/pools/stacks\n");
    case 405:
        return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use GET\n");
    default:
        break;
    }
    if (strcmp(ep, "metrics") == 0) {
        return ep_metrics(a, c);
    } else if (strcmp(ep, "live") == 0) {
        return respond_text(c, MHD_HTTP_OK, "live\n");
    } else if (strcmp(ep, "ready") == 0) {
        return ep_ready(a, c);
    } else if (strcmp(ep, "pools") == 0) {
        return ep_pools(a, c);
    } else if (strcmp(ep, "debug") == 0) {
        return ep_debug(a, c);
    }
    return ep_stacks(a, c);
}

/* ---- start and stop ------------------------------------------------------------------ */

/* Parse "host:port", "[v6]:port", ":port" or "port" into a bound,
 * listening socket. Returns SLUICE_OK with *fd set, or an error with the
 * reason in errbuf. */
static sluice_err bind_listen(const char *address, int *fd_out, unsigned *port_out, char *errbuf,
                              size_t errlen)
{
    char host[256] = "127.0.0.1";
    const char *port;
    size_t alen = strlen(address);
    if (alen == 0 || alen >= sizeof host) {
        seterr(errbuf, errlen, "address '%s': want host:port", address);
        return SLUICE_EINVAL;
    }
    if (address[0] == '[') {
        const char *close = strchr(address, ']');
        if (!close || close[1] != ':') {
            seterr(errbuf, errlen, "address '%s': want [ipv6]:port", address);
            return SLUICE_EINVAL;
        }
        memcpy(host, address + 1, (size_t)(close - address - 1));
        host[close - address - 1] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(address, ':');
        if (colon) {
            if (colon != address) {
                memcpy(host, address, (size_t)(colon - address));
                host[colon - address] = '\0';
            }
            port = colon + 1;
        } else {
            port = address;
        }
    }
    char *end;
    errno = 0;
    unsigned long pnum = strtoul(port, &end, 10);
    if (!*port || *end || errno || pnum > 65535) {
        seterr(errbuf, errlen, "address '%s': port '%s' is not a number in 0..65535", address, port);
        return SLUICE_EINVAL;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    char pstr[8];
    snprintf(pstr, sizeof pstr, "%lu", pnum);
    int gr = getaddrinfo(host, pstr, &hints, &res);
    if (gr != 0 || !res) {
        seterr(errbuf, errlen, "address '%s': host '%s' is not a numeric IPv4 or IPv6 address (%s)", address,
               host, gai_strerror(gr));
        return SLUICE_EINVAL;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    if (fd < 0) {
        seterr(errbuf, errlen, "%s: socket: %s", address, strerror(errno));
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
            seterr(errbuf, errlen, "%s: address already in use", address);
            return SLUICE_EBUSY;
        }
        seterr(errbuf, errlen, "%s: bind: %s", address, strerror(e));
        errno = e;
        return SLUICE_ESYS;
    }
    freeaddrinfo(res);
    if (listen(fd, 64) != 0) {
        int e = errno;
        close(fd);
        seterr(errbuf, errlen, "%s: listen: %s", address, strerror(e));
        errno = e;
        return SLUICE_ESYS;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    unsigned port_bound = (unsigned)pnum;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        port_bound = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                              : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    *fd_out = fd;
    *port_out = port_bound;
    return SLUICE_OK;
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
    pthread_rwlock_destroy(&a->pools_lock);
    free(a);
}

sluice_err sluice_admin_start(const sluice_admin_config *cfg, sluice_admin **out, char *errbuf, size_t errlen)
{
    seterr(errbuf, errlen, "%s", "");
    if (!out) {
        seterr(errbuf, errlen, "out is required");
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
    snprintf(a->address, sizeof a->address, "%s", cfg->address ? cfg->address : SLUICE_ADMIN_DEFAULT_ADDRESS);
    a->cfg.address = a->address;
    if (!a->cfg.max_connections) {
        a->cfg.max_connections = 16;
    }
    if (!a->cfg.max_request_bytes) {
        a->cfg.max_request_bytes = 8192;
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
    pthread_rwlock_init(&a->pools_lock, NULL);
    pthread_mutex_init(&a->sat_lock, NULL);
    pthread_mutex_init(&a->sampler_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->sampler_cv, &ca);
    pthread_condattr_destroy(&ca);

    sluice_err r = SLUICE_OK;
    if (cfg->metrics) {
        a->metrics = cfg->metrics;
    } else {
        r = sluice_metrics_create(NULL, &a->metrics);
        a->own_metrics = r == SLUICE_OK;
    }
    int fd = -1;
    if (r == SLUICE_OK) {
        r = bind_listen(a->address, &fd, &a->port, errbuf, errlen);
    }
    if (r == SLUICE_OK) {
        /* The memory limit bounds the request line and headers; MHD needs
         * some room of its own beyond it. */
        size_t mem = a->cfg.max_request_bytes + 4096;
        unsigned timeout_s =
            (unsigned)((a->cfg.connection_timeout_ns + SLUICE_NS_PER_SEC - 1) / SLUICE_NS_PER_SEC);
        a->daemon = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD, 0, NULL,
                                     NULL, on_request, a, MHD_OPTION_LISTEN_SOCKET, fd,
                                     MHD_OPTION_CONNECTION_LIMIT, a->cfg.max_connections,
                                     MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem, MHD_OPTION_CONNECTION_TIMEOUT,
                                     timeout_s, MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_END);
        if (!a->daemon) {
            int e = errno;
            close(fd);
            seterr(errbuf, errlen, "%s: libmicrohttpd could not start: %s", a->address, strerror(e));
            r = SLUICE_ESYS;
        }
    }
    if (r == SLUICE_OK) {
        if (pthread_create(&a->sampler, NULL, sampler_main, a) != 0) {
            seterr(errbuf, errlen, "cannot start the sampler thread: %s", strerror(errno));
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
    *out = a;
    return SLUICE_OK;
}

void sluice_admin_stop(sluice_admin *a)
{
    if (!a) {
        return;
    }
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

sluice_metrics *sluice_admin_metrics(sluice_admin *a)
{
    return a ? a->metrics : NULL;
}

sluice_err sluice_admin_add_pool(sluice_admin *a, sluice_pool *pool)
{
    if (!a || !pool) {
        return SLUICE_EINVAL;
    }
    sluice_err r = SLUICE_OK;
    pthread_rwlock_wrlock(&a->pools_lock);
    for (size_t i = 0; i < a->pool_count; i++) {
        if (a->pools[i].pool == pool ||
            strcmp(sluice_pool_name(a->pools[i].pool), sluice_pool_name(pool)) == 0) {
            r = SLUICE_EBUSY;
        }
    }
    if (r == SLUICE_OK && a->pool_count == MAX_POOLS) {
        r = SLUICE_EOVERFLOW;
    }
    if (r == SLUICE_OK) {
        sluice_err mr = sluice_metrics_add_pool(a->metrics, pool);
        if (mr != SLUICE_OK && mr != SLUICE_EBUSY) {
            r = mr;
        } else {
            pool_entry *e = &a->pools[a->pool_count++];
            memset(e, 0, sizeof *e);
            e->pool = pool;
            e->in_registry = mr == SLUICE_OK;
        }
    }
    pthread_rwlock_unlock(&a->pools_lock);
    return r;
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

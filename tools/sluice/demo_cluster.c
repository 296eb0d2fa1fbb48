/*
 * tools/sluice/demo_cluster.c - `sluice demo` as one replica of a cluster
 * (issue 16): a config with a `cluster:` section joins it
 * (sluice_cluster_join_create, so the pools on the budget's downstream
 * keep the service's share across replicas), and --downstream-at
 * HOST:PORT makes those pools call a real downstream over TCP instead of
 * sleeping, so one process outside the replicas (examples/cluster-demo/
 * downstream.py) can count the calls in flight from all of them.
 *
 * The wire: one persistent connection per worker thread (closed by a
 * thread-key destructor when the worker exits); a call is the line
 * "<hold in microseconds>\n", answered "ok\n" once the downstream has held
 * the call that long. In strict mode each call holds a permit of the
 * cluster's leased semaphore around it, so the cluster never has more
 * than the share in flight, even while K moves after a join or a kill.
 *
 * Thread-safety and locks: no lock of its own. The join is made before
 * the producers start and destroyed after the pools drained; the
 * connection is per thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sluice/task.h"

#include "demo.h"

#ifdef SLUICE_HAVE_CLUSTER
#include "sluice/cluster_join.h"
#endif

bool demo_parse_downstream_at(const char *text, demo_opts *o)
{
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || (size_t)(colon - text) >= sizeof o->downstream_host) {
        return false;
    }
    char host[sizeof o->downstream_host];
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    struct in_addr a;
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (inet_pton(AF_INET, host, &a) != 1 || *end || end == colon + 1 || port == 0 || port > 65535) {
        return false;
    }
    memcpy(o->downstream_host, host, sizeof host);
    o->downstream_port = (unsigned)port;
    return true;
}

int demo_cluster_join(demo *d, char *err, size_t errlen)
{
    if (!d->config->cluster.present) {
        return 0;
    }
#ifdef SLUICE_HAVE_CLUSTER
    sluice_cluster_join *j = NULL;
    if (sluice_cluster_join_create(d->config, d->svc, d->logger, &j, err, errlen) != SLUICE_OK) {
        return -1;
    }
    d->join = j;
    d->dsem = sluice_cluster_join_dsem(j);
    const sluice_budget *b = sluice_cluster_join_budget(j);
    for (size_t i = 0; i < d->pool_count; i++) {
        unsigned part = sluice_cluster_join_part(j, d->pools[i].pool);
        d->pools[i].remote = part > 0;
        if (part) {
            demo_log(d, "pool %s: bound to %s's share of %s (%u of %u)", d->pools[i].name, d->service_name,
                     b->downstream, part, b->total_limit);
        }
    }
    return 0;
#else
    snprintf(err, errlen,
             "%s: a cluster: section needs libsluice-cluster, and this sluice was built without hiredis "
             "(scripts/install-deps.sh, then rebuild)",
             d->config->source);
    return -1;
#endif
}

void demo_cluster_leave(demo *d)
{
#ifdef SLUICE_HAVE_CLUSTER
    sluice_cluster_join_destroy(d->join);
#endif
    d->join = NULL;
    d->dsem = NULL;
}

/* ---- the remote call ---------------------------------------------------- */

static pthread_key_t conn_key;
static pthread_once_t conn_once = PTHREAD_ONCE_INIT;

static void conn_close(void *p)
{
    int fd = (int)(intptr_t)p - 1;
    if (fd >= 0) {
        close(fd);
    }
}

static void conn_key_make(void)
{
    pthread_key_create(&conn_key, conn_close);
}

static int conn_get(demo *d)
{
    pthread_once(&conn_once, conn_key_make);
    int fd = (int)(intptr_t)pthread_getspecific(conn_key) - 1;
    if (fd >= 0) {
        return fd;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->opts.downstream_port)};
    inet_pton(AF_INET, d->opts.downstream_host, &a.sin_addr);
    struct timeval tv = {10, 0}; /* a downstream that never answers fails the call, not the worker */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    pthread_setspecific(conn_key, (void *)(intptr_t)(fd + 1));
    return fd;
}

static void conn_drop(int fd)
{
    close(fd);
    pthread_setspecific(conn_key, NULL);
}

/* One call held `hold_ns` by the downstream; false when it failed. */
static bool call_once(demo *d, uint64_t hold_ns)
{
    int fd = conn_get(d);
    if (fd < 0) {
        return false;
    }
    char line[32];
    int n = snprintf(line, sizeof line, "%llu\n", (unsigned long long)(hold_ns / 1000));
    if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n) {
        conn_drop(fd);
        return false;
    }
    char reply[8];
    size_t got = 0;
    while (got < 3) {
        ssize_t r = recv(fd, reply + got, 3 - got, 0);
        if (r <= 0) {
            conn_drop(fd);
            return false;
        }
        got += (size_t)r;
    }
    if (memcmp(reply, "ok\n", 3) != 0) {
        conn_drop(fd);
        return false;
    }
    return true;
}

int demo_remote_call(demo *d, demo_pool *p, uint64_t hold_ns)
{
    (void)p;
#ifdef SLUICE_HAVE_CLUSTER
    sluice_dsem *ds = d->dsem;
    while (ds) {
        sluice_err r = sluice_dsem_try_acquire(ds);
        if (r == SLUICE_OK) {
            break;
        }
        if (r != SLUICE_EAGAIN || sluice_task_should_stop()) {
            return 2; /* not called: the drain (or a closed semaphore) stopped it */
        }
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
#endif
    bool ok = call_once(d, hold_ns);
#ifdef SLUICE_HAVE_CLUSTER
    if (ds) {
        sluice_dsem_release(ds);
    }
#endif
    return ok ? 0 : 1;
}

/*
 * tests/integration/prom_target.c - the scrape target for the Prometheus
 * integration test: a pool with a known state behind the admin server.
 *
 * It runs COMPLETED no-op tasks to completion, then holds RUNNING tasks
 * running on a gate, so that pool_completed_total{name="itest"} and
 * pool_running{name="itest"} have known values while Prometheus scrapes.
 * It prints "READY <admin port> <a free port>" on stdout (the second one
 * for Prometheus itself), then waits for stdin to close or say "quit",
 * and shuts down in order: open the gate, drain, remove, stop.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/admin.h"

#define COMPLETED 37
#define RUNNING 2

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int done, started;
static bool open_gate;

static int count_task(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    done++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return 0;
}

static int gate_task(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    started++;
    pthread_cond_broadcast(&cv);
    while (!open_gate) {
        pthread_cond_wait(&cv, &mu);
    }
    pthread_mutex_unlock(&mu);
    return 0;
}

static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    unsigned port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
        port = ntohs(sa.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

int main(void)
{
    sluice_pool_config pc;
    sluice_pool_config_init(&pc);
    pc.name = "itest";
    pc.workers = RUNNING;
    pc.queue_capacity = 64;
    pc.timing_sample_every = 1; /* every task timed: the script checks the histogram count exactly */
    sluice_pool *pool;
    char err[256];
    if (sluice_pool_create(&pc, &pool, err, sizeof err) != SLUICE_OK) {
        fprintf(stderr, "pool: %s\n", err);
        return 1;
    }
    sluice_admin_config ac;
    sluice_admin_config_init(&ac);
    ac.address = "127.0.0.1:0";
    sluice_admin *admin;
    if (sluice_admin_start(&ac, &admin, err, sizeof err) != SLUICE_OK) {
        fprintf(stderr, "admin: %s\n", err);
        return 1;
    }
    sluice_admin_add_pool(admin, pool);

    for (int i = 0; i < COMPLETED; i++) {
        sluice_pool_submit(pool, count_task, NULL);
    }
    pthread_mutex_lock(&mu);
    while (done < COMPLETED) {
        pthread_cond_wait(&cv, &mu);
    }
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < RUNNING; i++) {
        sluice_pool_submit(pool, gate_task, NULL);
    }
    pthread_mutex_lock(&mu);
    while (started < RUNNING) {
        pthread_cond_wait(&cv, &mu);
    }
    pthread_mutex_unlock(&mu);

    printf("READY %u %u\n", sluice_admin_port(admin), free_port());
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin) && strncmp(line, "quit", 4) != 0) {
    }

    pthread_mutex_lock(&mu);
    open_gate = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    sluice_pool_drain(pool, 0, NULL);
    sluice_admin_remove_pool(admin, pool);
    sluice_admin_stop(admin);
    sluice_pool_destroy(pool);
    return 0;
}

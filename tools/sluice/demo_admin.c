/*
 * tools/sluice/demo_admin.c - the admin HTTP server of `sluice demo`
 * (/metrics, /health/live, /health/ready, /health/pools, /debug/pools),
 * when src/admin is built.
 *
 * Kept apart from cmd_demo.c so the demo builds, runs and tests without
 * libmicrohttpd: without it the demo says the admin server is off.
 *
 * The server serves the service (sluice_admin_config.service = d->svc):
 * its pools and its readiness reach the server from the service, and
 * /metrics is the service's registry, where each pool was exported once
 * when the service created it.
 *
 * Besides the pools' own metrics, the
 * demo exports one of its own: demo_notifications_refused_total{name},
 * the submits its producers saw refused (submit timeout under
 * backpressure). Refused notifications were never accepted, so they are
 * not in the pool's reconciliation; a real service would leave them in
 * its queue (Kafka) and retry.
 *
 * Order at shutdown: the server stops (it lets go of the service's pools
 * first) before the service destroys the pools.
 */
#include <stdio.h>
#include <string.h>

#include "demo.h"

#if defined(SLUICE_HAVE_ADMIN)
#include "sluice/admin.h"
#include "sluice/metrics.h"

_Static_assert(SLUICE_ADMIN_TOKEN_MAX == SLUICE_CONFIG_ADMIN_TOKEN_MAX,
               "a token the config reads is one the admin server takes");

int demo_admin_start(demo *d, const char *listen, char *err, size_t errlen)
{
    sluice_admin_config cfg;
    sluice_admin_config_init(&cfg);
    cfg.address = listen;
    cfg.service = d->svc; /* its pools, its readiness, its registry */
    cfg.saturation_threshold_ns = d->config->service.saturation_threshold_ns;
    cfg.token = d->opts.admin_token[0] ? d->opts.admin_token : NULL;
    sluice_admin *admin = NULL;
    char why[512];
    sluice_err r = sluice_admin_start(&cfg, &admin, why, sizeof why);
    if (r != SLUICE_OK) {
        snprintf(err, errlen,
                 "cannot serve the admin endpoints on %s: %s (use --listen HOST:PORT to pick another)",
                 listen, why[0] ? why : sluice_strerror(r));
        return 1;
    }
    sluice_metric *refused = NULL;
    static const char *const labels[] = {"name", NULL};
    if (sluice_metrics_counter(sluice_admin_metrics(admin), "demo_notifications_refused_total",
                               "Notifications whose submit was refused (submit timeout under backpressure); "
                               "never accepted, so not in the pool counters",
                               labels, &refused) == SLUICE_OK) {
        for (size_t i = 0; i < d->pool_count; i++) {
            const char *v[] = {d->pools[i].name};
            sluice_series *s = NULL;
            if (sluice_metric_series(refused, v, &s) == SLUICE_OK) {
                d->pools[i].refused_series = s;
            }
        }
    }
    /* The address as bound (issue 12.10: it used to say 127.0.0.1 for a
     * 0.0.0.0 bind), and a warning when it reaches beyond this host. */
    snprintf(d->admin_url, sizeof d->admin_url, "http://%s", sluice_admin_address(admin));
    if (!sluice_admin_is_loopback(admin)) {
        fprintf(
            stderr,
            "sluice demo: warning: the admin server listens on %s, beyond loopback: anyone who can connect "
            "sees /metrics and /health/*%s\n",
            sluice_admin_address(admin),
            cfg.token ? "; /debug/* and the console's data need the token"
                      : ", and /debug/* (pool configs, code addresses in stacks); set --admin-token-file or "
                        "service.admin_token_file");
    }
    d->admin = admin;
    return 0;
}

void demo_admin_count_refused(demo_pool *p)
{
    if (p->refused_series) {
        sluice_series_add(p->refused_series, 1);
    }
}

void demo_admin_stop(demo *d)
{
    sluice_admin *admin = d->admin;
    if (!admin) {
        return;
    }
    for (size_t i = 0; i < d->pool_count; i++) {
        d->pools[i].refused_series = NULL;
    }
    sluice_admin_stop(admin); /* stops watching the service first */
    d->admin = NULL;
}

#else

int demo_admin_start(demo *d, const char *listen, char *err, size_t errlen)
{
    (void)listen;
    (void)err;
    (void)errlen;
    d->admin = NULL;
    d->admin_url[0] = '\0';
    demo_log(d, "admin server not built (src/admin is absent): no /metrics");
    return 0;
}

void demo_admin_count_refused(demo_pool *p)
{
    (void)p;
}

void demo_admin_stop(demo *d)
{
    (void)d;
}

#endif

/*
 * tools/sluice/cmd_demo.c - `sluice demo`: the reference service.
 *
 * Purpose: show, in one command, what a service built on Sluice looks like
 * in production: the notifications dispatcher of the reference text, with
 * one pool per destination (push, SMS, email) sized by that destination's
 * concurrency limit, blocking backpressure, an admin server with /metrics
 * and /debug/pools, a live view, SIGHUP reload, SIGUSR1 to end the
 * --stall faults, and a clean drain on
 * Ctrl-C/SIGTERM that ends with a reconciliation of every notification
 * accepted: submitted = completed + failed + panicked + dropped + shed +
 * abandoned. The exit status is 0 only when that balances.
 *
 * Wiring, in order (the order is the point):
 *   1. block SIGTERM/SIGINT/SIGHUP before any thread exists;
 *   2. parse flags and load the config (built-in, or --config, then the
 *      SLUICE_POOL_* overrides); any problem exits 2 with one reason;
 *   3. take over the spool (--spool), then build the service from the
 *      config (sluice_service_create_from_config: the signal thread, and
 *      each pool registered once for metrics, admin and the drain); give
 *      each batched pool (demo_batch) its batcher, in the same registry;
 *      start the admin server on it (a port in use exits 1 naming the address);
 *      replay the spool, then start the view and the producers: a thread
 *      that cannot start shuts the run down at once and it exits 1;
 *   4. sluice_service_run: ready, then on the signal not-ready, grace,
 *      stop producers (and drain the batchers, sending partial batches
 *      while the pools still take work), drain the pools;
 *   5. wait for the last running tasks, stop the admin server, print the
 *      reconciliation; one teardown (teardown()) for every exit after the
 *      config loaded: the batchers go first, then the service destroys
 *      the pools in order.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/rules.h"
#include "sluice/log.h"
#include "sluice/sync_metrics.h"

#include "commands.h"
#include "demo.h"

/* The built-in config: `sluice demo --print-config` prints it (after any
 * environment overrides) as a starting point for a real sluice.yaml. */
static const char BUILTIN_CONFIG[] =
    "service:\n"
    "  name: notifications\n"
    "  listen: 127.0.0.1:9464\n"
    "  drain_budget: 10s\n"
    "  shutdown_grace: 500ms\n"
    "  orchestrator_grace: 30s\n"
    "  runbook_base_url: https://github.com/sluice/sluice/blob/main/ops/runbook.md\n"
    "pools:\n"
    "  - name: push\n"
    "    workers: 1000\n"
    "    rationale: APNS allows 1000 concurrent requests from this service; K is that limit\n"
    "    queue_capacity: 5000\n"
    "    overflow: block\n"
    "    submit_timeout: 2s\n"
    "    idle_expiry: 30s\n"
    "    drain_timeout: 8s\n"
    "    fault_policy: reraise\n"
    "    kind: io\n"
    "    downstream: apns\n"
    "    caller_deadline: 5s\n"
    "    alert_slow_task_p99: 1s\n"
    "    alert_submit_wait_p99: 250ms\n"
    "    demo_latency_p50: 30ms\n"
    "    demo_latency_p99: 250ms\n"
    "    demo_weight: 0.6\n"
    "  - name: sms\n"
    "    workers: 100\n"
    "    rationale: Twilio allows 100 concurrent requests per account; K is that limit\n"
    "    queue_capacity: 1000\n"
    "    overflow: block\n"
    "    submit_timeout: 2s\n"
    "    idle_expiry: 30s\n"
    "    drain_timeout: 8s\n"
    "    fault_policy: reraise\n"
    "    kind: io\n"
    "    downstream: twilio\n"
    "    caller_deadline: 5s\n"
    "    alert_slow_task_p99: 3s\n"
    "    alert_submit_wait_p99: 500ms\n"
    "    demo_latency_p50: 150ms\n"
    "    demo_latency_p99: 1200ms\n"
    "    demo_weight: 0.1\n"
    "  - name: email\n"
    "    workers: 200\n"
    "    rationale: SES allows 200 concurrent sends for this account; K is that limit\n"
    "    queue_capacity: 2000\n"
    "    overflow: block\n"
    "    submit_timeout: 2s\n"
    "    idle_expiry: 30s\n"
    "    drain_timeout: 8s\n"
    "    fault_policy: reraise\n"
    "    kind: io\n"
    "    downstream: ses\n"
    "    caller_deadline: 5s\n"
    "    alert_slow_task_p99: 2s\n"
    "    alert_submit_wait_p99: 500ms\n"
    "    demo_latency_p50: 80ms\n"
    "    demo_latency_p99: 600ms\n"
    "    demo_weight: 0.3\n"
    "    demo_batch: 50\n"
    "    demo_batch_wait: 1s\n"
    "downstream_budget:\n"
    "  - downstream: apns\n"
    "    total_limit: 1000\n"
    "    shares:\n"
    "      notifications: 1000\n"
    "  - downstream: twilio\n"
    "    total_limit: 100\n"
    "    shares:\n"
    "      notifications: 100\n"
    "  - downstream: ses\n"
    "    total_limit: 200\n"
    "    shares:\n"
    "      notifications: 200\n";

static void help(FILE *out)
{
    fprintf(out, "usage: sluice demo [flags]\n"
                 "\n"
                 "Run the reference service: a notifications dispatcher with one pool per\n"
                 "destination (push K=1000, sms K=100, email K=200: each destination's\n"
                 "concurrency limit), blocking backpressure and simulated downstreams. Email\n"
                 "goes out in batches of up to 50 per downstream call (or 1s after the first),\n"
                 "as an SES bulk send would (demo_batch in the config). Serves\n"
                 "/metrics, /health/live, /health/ready, /health/pools, /debug/pools and the\n"
                 "web console at / (watch it there or with `sluice top`). On Ctrl-C,\n"
                 "SIGTERM or the end of --duration it drains and prints the reconciliation;\n"
                 "it exits 0 only when every accepted task is accounted for.\n"
                 "SIGHUP reloads --config FILE (K, timeouts and sampling change live).\n"
                 "\n"
                 "Flags:\n"
                 "  --rate N            notifications per second, all pools (default 200)\n"
                 "  --duration D        run for D (30s, 5m), then drain as on SIGTERM\n"
                 "                      (default: until Ctrl-C or SIGTERM)\n"
                 "  --config FILE       use FILE instead of the built-in config\n"
                 "  --print-config      print the config in force (after env overrides), exit\n"
                 "  --listen ADDR       admin address host:port (default: service.listen,\n"
                 "                      127.0.0.1:9464; port 0 picks a free one)\n"
                 "  --panic-rate P      fraction of tasks that panic, 0..1 (default 0)\n"
                 "  --error-rate P      fraction of tasks that fail, 0..1 (default 0)\n"
                 "  --slowdown POOL@T[+D][xF]\n"
                 "                      from T after the start (for D, default: to the end),\n"
                 "                      POOL's downstream is F times slower (default 10);\n"
                 "                      for example --slowdown email@10s+30sx5. A slowed\n"
                 "                      pool whose config sets no controller gets auto-tune,\n"
                 "                      so its K follows Little's law (decision lines in the\n"
                 "                      log, pool_concurrency_limit in /metrics)\n"
                 "  --stall POOL@T[+D]  from T (for D), POOL's downstream stops answering;\n"
                 "                      for example --stall sms@15s. SIGUSR1 ends every\n"
                 "                      stall at once (the downstream answers again)\n"
                 "  --spike Fx@T[+D]    from T (for D, default: to the end) every producer\n"
                 "                      offers F times its rate (a load spike), for example\n"
                 "                      --spike 5x@20s+10s; each pool logs its wait p99 and\n"
                 "                      sheds over the spike when it ends (compare overload:\n"
                 "                      off with codel or lifo, docs/config.md)\n"
                 "  --seed N            random seed (default: fixed, 1)\n"
                 "  --view MODE         auto (default), tty (redrawn screen), plain (a line\n"
                 "                      per second), none\n"
                 "  --log-format F      pool event lines (resize, drain, expiry): logfmt\n"
                 "                      (default) or json\n"
                 "  --spool FILE        append every notification handed back at the drain\n"
                 "                      to FILE before counting it, and replay what FILE\n"
                 "                      holds at start (a SIGKILL loses none of them)\n"
                 "  --admin-token-file FILE\n"
                 "                      /debug/* and the console's data need \"Authorization:\n"
                 "                      Bearer <the token in FILE>\" (one line, A-Z a-z 0-9\n"
                 "                      - . _ ~ + / =, at most 256); wins over the config's\n"
                 "                      service.admin_token_file\n"
                 "  --scenario saas     instead of the service, the multi-tenant case study:\n"
                 "                      tenant A floods 500 long jobs, B-Z submit at their\n"
                 "                      rates, through a FIFO and a fair pool (K=64 each) side\n"
                 "                      by side; prints each tenant's completions and p50/p99\n"
                 "                      wait in both. One simulated hour takes --duration\n"
                 "                      (default 10s); it ends by itself. Uses --seed\n"
                 "  --downstream-at HOST:PORT\n"
                 "                      pools bound to the config's cluster: budget call a\n"
                 "                      real downstream there (examples/cluster-demo.py)\n"
                 "  -h, --help          this text\n"
                 "\n"
                 "Environment: SLUICE_POOL_<NAME>_<KEY>=value overrides a pool's key, for\n"
                 "example SLUICE_POOL_SMS_WORKERS=20 (docs/config.md). A config with a cluster:\n"
                 "section joins it: its pools keep their service's share across replicas\n"
                 "(docs/cluster.md).\n"
                 "Exit status: 0 balanced; 1 not balanced, or a runtime failure (port in use,\n"
                 "a thread that cannot start, a spool that cannot be written);\n"
                 "2 bad flag, value or config.\n");
}

static int usage_error(const char *fmt, ...) SLUICE_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sluice demo: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see sluice demo --help)\n");
    va_end(ap);
    return SLUICE_EXIT_USAGE;
}

static bool parse_fraction(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0 && v <= 1)) {
        return false;
    }
    *out = v;
    return true;
}

/* A duration that ends at one of `stops`; advances *s past it. */
static bool take_duration(const char **s, const char *stops, uint64_t *out)
{
    char buf[32];
    size_t n = strcspn(*s, stops);
    if (n == 0 || n >= sizeof buf) {
        return false;
    }
    memcpy(buf, *s, n);
    buf[n] = '\0';
    if (sluice_config_parse_duration(buf, out) != SLUICE_OK) {
        return false;
    }
    *s += n;
    return true;
}

/* POOL@T[+D][xF] (slowdown) or POOL@T[+D] (stall). */
static bool parse_fault(const char *arg, bool stall, demo_fault *f)
{
    memset(f, 0, sizeof *f);
    f->stall = stall;
    f->factor = stall ? 0 : 10;
    const char *at = strchr(arg, '@');
    if (!at || at == arg || (size_t)(at - arg) > SLUICE_POOL_NAME_MAX) {
        return false;
    }
    memcpy(f->pool, arg, (size_t)(at - arg));
    const char *s = at + 1;
    if (!take_duration(&s, "+x", &f->at_ns)) {
        return false;
    }
    if (*s == '+') {
        s++;
        if (!take_duration(&s, "x", &f->for_ns) || f->for_ns == 0) {
            return false;
        }
    }
    if (*s == 'x' && !stall) {
        char *end;
        errno = 0;
        f->factor = strtod(s + 1, &end);
        if (errno || end == s + 1 || *end || !(f->factor >= 1 && f->factor <= 10000)) {
            return false;
        }
        s = end;
    }
    return *s == '\0';
}

/* Fx@T[+D] (spike): F times the rate from T, for D (default: to the end). */
static bool parse_spike(const char *arg, demo_opts *o)
{
    char *end;
    errno = 0;
    double f = strtod(arg, &end);
    if (errno || end == arg || end[0] != 'x' || end[1] != '@' || !(f >= 1 && f <= 1000)) {
        return false;
    }
    const char *s = end + 2;
    uint64_t at = 0, dur = 0;
    if (!take_duration(&s, "+", &at)) {
        return false;
    }
    if (*s == '+') {
        s++;
        if (!take_duration(&s, "", &dur) || dur == 0) {
            return false;
        }
    }
    if (*s) {
        return false;
    }
    o->spike_factor = f;
    o->spike_at_ns = at;
    o->spike_for_ns = dur;
    return true;
}

_Static_assert(sizeof((demo_opts *)0)->admin_token == SLUICE_CONFIG_ADMIN_TOKEN_MAX + 1,
               "demo_opts.admin_token holds a token");

enum {
    OPT_RATE = 256,
    OPT_DURATION,
    OPT_CONFIG,
    OPT_PRINT_CONFIG,
    OPT_LISTEN,
    OPT_PANIC_RATE,
    OPT_ERROR_RATE,
    OPT_SLOWDOWN,
    OPT_STALL,
    OPT_SEED,
    OPT_VIEW,
    OPT_LOG_FORMAT,
    OPT_SPOOL,
    OPT_ADMIN_TOKEN_FILE,
    OPT_SCENARIO,
    OPT_DOWNSTREAM_AT,
    OPT_SPIKE,
};

/* Returns -1 to go on, else an exit status. */
static int parse_flags(int argc, char **argv, demo_opts *o)
{
    static const struct option longopts[] = {
        {"rate", required_argument, NULL, OPT_RATE},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"print-config", no_argument, NULL, OPT_PRINT_CONFIG},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"panic-rate", required_argument, NULL, OPT_PANIC_RATE},
        {"error-rate", required_argument, NULL, OPT_ERROR_RATE},
        {"slowdown", required_argument, NULL, OPT_SLOWDOWN},
        {"stall", required_argument, NULL, OPT_STALL},
        {"seed", required_argument, NULL, OPT_SEED},
        {"view", required_argument, NULL, OPT_VIEW},
        {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
        {"spool", required_argument, NULL, OPT_SPOOL},
        {"admin-token-file", required_argument, NULL, OPT_ADMIN_TOKEN_FILE},
        {"scenario", required_argument, NULL, OPT_SCENARIO},
        {"downstream-at", required_argument, NULL, OPT_DOWNSTREAM_AT},
        {"spike", required_argument, NULL, OPT_SPIKE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char tokerr[512];
    memset(o, 0, sizeof *o);
    o->rate = 200;
    o->seed = 1;
    opterr = 0;
    optind = 0;
    for (;;) {
        int idx = 0;
        int c = getopt_long(argc, argv, ":h", longopts, &idx);
        if (c == -1) {
            break;
        }
        char *end;
        switch (c) {
        case 'h':
            help(stdout);
            return SLUICE_EXIT_OK;
        case OPT_RATE:
            errno = 0;
            o->rate = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(o->rate > 0 && o->rate <= 1e6)) {
                return usage_error(
                    "--rate: must be a number of notifications per second in (0, 1000000], got \"%s\"",
                    optarg);
            }
            break;
        case OPT_DURATION:
            if (sluice_config_parse_duration(optarg, &o->duration_ns) != SLUICE_OK || o->duration_ns == 0) {
                return usage_error("--duration: must be a duration > 0 such as 30s or 5m, got \"%s\"",
                                   optarg);
            }
            break;
        case OPT_CONFIG:
            o->config_path = optarg;
            break;
        case OPT_PRINT_CONFIG:
            o->print_config = true;
            break;
        case OPT_LISTEN:
            o->listen = optarg;
            if (sluice__listen_parse(optarg, NULL, NULL, NULL, 0) != SLUICE_OK) { /* src/base/rules.h */
                return usage_error("--listen: must be host:port with a port in 0..65535, got \"%s\"", optarg);
            }
            break;
        case OPT_ADMIN_TOKEN_FILE:
            if (sluice_config_read_token_file(optarg, "--admin-token-file", o->admin_token,
                                              sizeof o->admin_token, tokerr, sizeof tokerr) != SLUICE_OK) {
                fprintf(stderr, "sluice demo: %s\n", tokerr);
                return SLUICE_EXIT_USAGE;
            }
            break;
        case OPT_DOWNSTREAM_AT:
            if (!demo_parse_downstream_at(optarg, o)) {
                return usage_error("--downstream-at: must be IPv4-HOST:PORT, for example 127.0.0.1:7070, got "
                                   "\"%s\"",
                                   optarg);
            }
            break;
        case OPT_PANIC_RATE:
            if (!parse_fraction(optarg, &o->panic_rate)) {
                return usage_error("--panic-rate: must be a fraction in 0..1, got \"%s\"", optarg);
            }
            break;
        case OPT_ERROR_RATE:
            if (!parse_fraction(optarg, &o->error_rate)) {
                return usage_error("--error-rate: must be a fraction in 0..1, got \"%s\"", optarg);
            }
            break;
        case OPT_SLOWDOWN:
        case OPT_STALL:
            if (o->fault_count == sizeof o->faults / sizeof o->faults[0]) {
                return usage_error("too many --slowdown/--stall flags (at most 8), at \"%s\"", optarg);
            }
            if (!parse_fault(optarg, c == OPT_STALL, &o->faults[o->fault_count])) {
                if (c == OPT_STALL) {
                    return usage_error("--stall: must be POOL@T[+D], for example sms@15s, got \"%s\"",
                                       optarg);
                }
                return usage_error("--slowdown: must be POOL@T[+D][xF], for example email@10sx5, got \"%s\"",
                                   optarg);
            }
            o->fault_count++;
            break;
        case OPT_SEED:
            errno = 0;
            o->seed = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end) {
                return usage_error("--seed: must be a non-negative integer, got \"%s\"", optarg);
            }
            break;
        case OPT_VIEW:
            if (strcmp(optarg, "auto") == 0) {
                o->view = DEMO_VIEW_AUTO;
            } else if (strcmp(optarg, "tty") == 0) {
                o->view = DEMO_VIEW_TTY;
            } else if (strcmp(optarg, "plain") == 0) {
                o->view = DEMO_VIEW_PLAIN;
            } else if (strcmp(optarg, "none") == 0) {
                o->view = DEMO_VIEW_NONE;
            } else {
                return usage_error("--view: must be auto, tty, plain or none, got \"%s\"", optarg);
            }
            break;
        case OPT_LOG_FORMAT: {
            sluice_log_format lf;
            if (sluice_log_parse_format(optarg, &lf) != SLUICE_OK) {
                return usage_error("--log-format: must be logfmt or json, got \"%s\"", optarg);
            }
            o->log_format = (int)lf;
            break;
        }
        case OPT_SCENARIO:
            if (strcmp(optarg, "saas") != 0) {
                return usage_error("--scenario: must be saas, got \"%s\"", optarg);
            }
            o->scenario = optarg;
            break;
        case OPT_SPIKE:
            if (!parse_spike(optarg, o)) {
                return usage_error("--spike: must be Fx@T[+D] with F in 1..1000, for example 5x@20s+10s, got "
                                   "\"%s\"",
                                   optarg);
            }
            break;
        case OPT_SPOOL:
            if (!*optarg) {
                return usage_error("--spool: needs a file name");
            }
            o->spool_path = optarg;
            break;
        case ':':
            return usage_error("%s: needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown flag '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        return usage_error("unexpected argument '%s'", argv[optind]);
    }
    return -1;
}

/* ---- service callbacks ---------------------------------------------- */

/* SIGUSR1: every --stall ends (demo_sim.c checks the flag in its slices).
 * Async-signal-safe: one store to a lock-free atomic. */
static void on_sigusr1(int signo)
{
    (void)signo;
    atomic_store(&demo_instance->stalls_ended, true);
}

static void on_stop_producers(void *user)
{
    demo *d = user;
    atomic_store(&d->stop_producers, true);
    /* Before the pools drain: close the batchers (a producer waiting in an
     * add gets SLUICE_ECLOSED and stops) and send their partial batches
     * while the pools still take work. Bounded by each batcher's drain
     * deadline, so a stalled downstream cannot hold the shutdown here. */
    demo_drain_batchers(d);
}

static void on_log(void *user, const char *line)
{
    demo_log(user, "%s", line);
}

static void log_sink(void *user, sluice_log_level level, const char *line, size_t len)
{
    (void)level;
    demo_log(user, "%.*s", (int)len, line);
}

static void on_reload(void *user)
{
    demo *d = user;
    if (!d->opts.config_path) {
        demo_log(d, "SIGHUP: running the built-in config; nothing to reload (use --config FILE)");
        return;
    }
    char err[2048];
    pthread_mutex_lock(&d->config_mu);
    sluice_err r = sluice_service_reload_config(d->svc, &d->config, d->opts.config_path, NULL, on_log, d, err,
                                                sizeof err);
    if (r == SLUICE_OK) {
        for (size_t i = 0; i < d->pool_count; i++) {
            const sluice_config_pool *cp = sluice_config_find_pool(d->config, d->pools[i].name);
            const sluice_config_demo_keys *dk = cp ? sluice_config_pool_demo(cp) : NULL;
            if (dk && dk->latency_p50_ns) {
                atomic_store(&d->pools[i].p50_ns, dk->latency_p50_ns);
            }
            if (dk && dk->latency_p99_ns) {
                atomic_store(&d->pools[i].p99_ns, dk->latency_p99_ns);
            }
        }
    }
    pthread_mutex_unlock(&d->config_mu);
}

/* Before each pool is created: the demo's side of it (its simulated
 * downstream, its share of the rate) and its handlers. */
static void prepare_pool(void *user, const sluice_config_pool *cp, size_t index, sluice_pool_config *pc)
{
    demo *d = user;
    double weight_sum = 0;
    for (size_t i = 0; i < d->config->pool_count; i++) {
        const sluice_config_pool *c = &d->config->pools[i];
        weight_sum += sluice_config_pool_ext_has(c, &sluice_config_ext_demo, SLUICE_DEMO_WEIGHT)
                          ? sluice_config_pool_demo(c)->weight
                          : 1.0;
    }
    demo_pool *p = &d->pools[index];
    p->demo = d;
    p->index = (unsigned)index;
    snprintf(p->name, sizeof p->name, "%s", cp->name);
    const sluice_config_demo_keys *dk = sluice_config_pool_demo(cp);
    double w = sluice_config_pool_ext_has(cp, &sluice_config_ext_demo, SLUICE_DEMO_WEIGHT) ? dk->weight : 1.0;
    p->rate = weight_sum > 0 ? d->opts.rate * w / weight_sum : 0;
    atomic_store(&p->p50_ns, dk->latency_p50_ns ? dk->latency_p50_ns : 50 * SLUICE_NS_PER_MS);
    atomic_store(&p->p99_ns, dk->latency_p99_ns ? dk->latency_p99_ns : 500 * SLUICE_NS_PER_MS);
    p->batch_size = dk->batch;
    p->batch_wait_ns = dk->batch_wait_ns ? dk->batch_wait_ns : SLUICE_NS_PER_SEC;
    /* A quarter of the pool's drain deadline to send what the batcher
     * holds; the batches it sent then drain with the pool (its full
     * deadline), so a shutdown takes at most 1.25 times it. */
    p->batch_drain_ns = sluice_config_pool_drain_timeout(d->config, cp) / 4;
    pc->abandon_handler = demo_on_abandon;
    pc->panic_handler = demo_on_panic;
    pc->event_handler = demo_on_event;
    pc->user = p;
}

/* ---- the command ---------------------------------------------------- */

/* The one teardown, for every exit once the config is loaded; each step
 * is a no-op when its part never started. Producers are joined before the
 * service goes: they have stopped (the drain closed the pools) or never
 * started. The service destroys the pools (after the admin server has let
 * go of them) and only then is the spool closed: a pool destroyed with
 * work still queued hands it back through the spool. */
static int teardown(demo *d, sluice_logger *logger, int rc)
{
    demo_stop_view(d);
    demo_join_producers(d);
    demo_admin_stop(d);
    /* Batchers before the pools they run on (their batches hand back
     * through the spool, still open), and out of /metrics first. */
    demo_destroy_batchers(d, d->sync_metrics);
    sluice_sync_metrics_destroy(d->sync_metrics);
    d->sync_metrics = NULL;
    demo_cluster_leave(d);          /* before the service: its pools are bound */
    sluice_service_destroy(d->svc); /* still logs worker exits: the logger outlives it */
    d->svc = NULL;
    if (d->spool && !demo_spool_close(d, stdout)) {
        rc = SLUICE_EXIT_FAIL;
    }
    fflush(stdout);
    d->logger = NULL;
    sluice_logger_destroy(logger);
    sluice_config_free(d->config);
    d->config = NULL;
    pthread_mutex_destroy(&d->config_mu);
    pthread_mutex_destroy(&d->log_mu);
    return rc;
}

int sluice_cmd_demo(int argc, char **argv)
{
    /* 1. Before any thread: the lifecycle's signal thread takes them. */
    if (sluice_lifecycle_block_signals() != SLUICE_OK) {
        fprintf(stderr, "sluice demo: cannot block signals: %s\n", strerror(errno));
        return SLUICE_EXIT_FAIL;
    }
    static demo d; /* large; one per process */
    memset(&d, 0, sizeof d);
    int rc = parse_flags(argc, argv, &d.opts);
    if (rc >= 0) {
        return rc;
    }
    if (d.opts.scenario) {
        return demo_scenario_saas(&d.opts); /* ends by itself after --duration */
    }

    /* 2. The config. */
    char err[4096];
    sluice_err r;
    if (d.opts.config_path) {
        r = sluice_config_load_file(d.opts.config_path, NULL, &d.config, err, sizeof err);
    } else {
        r = sluice_config_load_string(BUILTIN_CONFIG, sizeof BUILTIN_CONFIG - 1, "<built-in>", NULL,
                                      &d.config, err, sizeof err);
    }
    if (r != SLUICE_OK) {
        fprintf(stderr, "%s\nsluice demo: the config was refused (%s); nothing started\n", err,
                sluice_strerror(r));
        return SLUICE_EXIT_USAGE;
    }
    if (d.config->pool_count > DEMO_MAX_POOLS) {
        fprintf(stderr, "sluice demo: the demo drives at most %d pools, the config has %zu\n", DEMO_MAX_POOLS,
                d.config->pool_count);
        sluice_config_free(d.config);
        return SLUICE_EXIT_USAGE;
    }
    for (size_t i = 0; i < d.opts.fault_count; i++) {
        if (!sluice_config_find_pool(d.config, d.opts.faults[i].pool)) {
            char names[256] = "";
            size_t n = 0;
            for (size_t j = 0; j < d.config->pool_count && n < sizeof names; j++) {
                n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", j ? ", " : "",
                                      d.config->pools[j].name);
            }
            fprintf(stderr, "sluice demo: --%s: no pool named \"%s\" (pools: %s)\n",
                    d.opts.faults[i].stall ? "stall" : "slowdown", d.opts.faults[i].pool, names);
            sluice_config_free(d.config);
            return SLUICE_EXIT_USAGE;
        }
    }
    if (d.opts.print_config) {
        r = sluice_config_write(d.config, stdout);
        sluice_config_free(d.config);
        return r == SLUICE_OK ? SLUICE_EXIT_OK : SLUICE_EXIT_FAIL;
    }
    /* --slowdown is there to show the control loop: a slowed pool with no
     * controller of its own gets auto-tune, so its K follows Little's law
     * down to what the traffic needs, up while the downstream is slow, and
     * back (issue 14). A big step lets K reach the new level in seconds. */
    for (size_t i = 0; i < d.opts.fault_count; i++) {
        for (size_t j = 0; j < d.config->pool_count && !d.opts.faults[i].stall; j++) {
            sluice_config_pool *cp = &d.config->pools[j];
            sluice_pool_control_config cc;
            if (strcmp(cp->name, d.opts.faults[i].pool) != 0 ||
                sluice_config_pool_to_control_config(cp, &cc)) {
                continue;
            }
            cp->autotune = true;
            cp->autotune_max_step = cp->workers / 2 > 8 ? cp->workers / 2 : 8;
            fprintf(stderr,
                    "sluice demo: --slowdown %s: auto-tune on for pool %s (K follows its downstream; "
                    "see the autotune lines)\n",
                    cp->name, cp->name);
        }
    }

    /* The admin token: --admin-token-file (read with the flags) wins over
     * service.admin_token_file, read here, at start: the config holds
     * only its path, which is all --print-config above shows. */
    if (!d.opts.admin_token[0] &&
        sluice_config_admin_token(d.config, d.opts.admin_token, sizeof d.opts.admin_token, err, sizeof err) !=
            SLUICE_OK) {
        fprintf(stderr, "sluice demo: %s\nsluice demo: the config was refused; nothing started\n", err);
        sluice_config_free(d.config);
        return SLUICE_EXIT_USAGE;
    }

    /* 3. Start. */
    pthread_mutex_init(&d.config_mu, NULL);
    pthread_mutex_init(&d.log_mu, NULL);
    snprintf(d.service_name, sizeof d.service_name, "%s", d.config->service.name);
    d.tty = d.opts.view == DEMO_VIEW_TTY || (d.opts.view == DEMO_VIEW_AUTO && isatty(STDOUT_FILENO));
    d.start_ns = sluice_clock_now(NULL);
    atomic_store(&d.next_id, 1);
    demo_instance = &d;
    /* SIGUSR1 ends the stalls (a script looks at a stall as long as it
     * needs, then ends it); before any thread starts, as the mask above. */
    struct sigaction usr1 = {.sa_handler = on_sigusr1, .sa_flags = SA_RESTART};
    sigemptyset(&usr1.sa_mask);
    sigaction(SIGUSR1, &usr1, NULL);

    sluice_log_config logc;
    sluice_log_config_init(&logc);
    logc.format = (sluice_log_format)d.opts.log_format;
    logc.sink = log_sink;
    logc.sink_user = &d;
    sluice_logger *logger = NULL;
    if (sluice_logger_create(&logc, &logger) == SLUICE_OK) {
        d.logger = logger;
    }
    if (d.opts.spool_path && demo_spool_open(&d, d.opts.spool_path, err, sizeof err) != 0) {
        fprintf(stderr, "sluice demo: %s\n", err);
        return teardown(&d, logger, SLUICE_EXIT_FAIL);
    }

    sluice_service_config sc;
    sluice_service_config_init(&sc);
    sc.stop_producers = on_stop_producers;
    sc.reload = on_reload;
    sc.log = on_log;
    sc.user = &d;
    r = sluice_service_create_from_config(d.config, &sc, prepare_pool, &d, &d.svc, err, sizeof err);
    if (r != SLUICE_OK) {
        fprintf(stderr, "sluice demo: %s\n", err);
        return teardown(&d, logger, SLUICE_EXIT_FAIL);
    }
    d.pool_count = sluice_service_pool_count(d.svc);
    for (size_t i = 0; i < d.pool_count; i++) {
        d.pools[i].pool = sluice_service_pool(d.svc, i);
    }
    /* Batched pools (demo_batch): a batcher per pool, in the service's
     * registry (sluice_batcher_* on /metrics, labelled with the pool's name). */
    sluice_sync_metrics *sm = NULL;
    if (sluice_sync_metrics_create(sluice_service_metrics(d.svc), &sm) == SLUICE_OK) {
        d.sync_metrics = sm;
    }
    if (!demo_start_batchers(&d, d.sync_metrics)) {
        return teardown(&d, logger, SLUICE_EXIT_FAIL);
    }
    if (demo_cluster_join(&d, err, sizeof err) != 0) {
        fprintf(stderr, "sluice demo: %s\n", err);
        return teardown(&d, logger, SLUICE_EXIT_USAGE);
    }
    const char *listen = d.opts.listen ? d.opts.listen : d.config->service.listen;
    if (demo_admin_start(&d, listen, err, sizeof err) != 0) {
        fprintf(stderr, "sluice demo: %s\n", err);
        return teardown(&d, logger, SLUICE_EXIT_FAIL);
    }
    /* Ready before the line that says so (tests read it, then probe). */
    sluice_service_set_ready(d.svc, true);
    if (!d.tty) {
        fprintf(stderr, "sluice demo: %s: %zu pools, %.0f notifications/s, admin %s; Ctrl-C drains\n",
                d.service_name, d.pool_count, d.opts.rate, d.admin_url[0] ? d.admin_url : "off");
    }
    demo_spool_replay(&d);
    /* A run without its view (which ends --duration) or a producer is not
     * the run asked for: drain what was accepted and exit 1 (issue 12.12). */
    bool view_ok = demo_start_view(&d);
    bool producers_ok = view_ok && demo_start_producers(&d);
    if (!view_ok || !producers_ok) {
        d.start_failed = true;
        fprintf(stderr,
                "sluice demo: could not start its %s thread%s: draining what was accepted, then "
                "exiting 1\n",
                view_ok ? "producer" : "view", view_ok ? "s" : "");
        sluice_service_shutdown(d.svc);
    }

    /* 4. Wait for the signal (or --duration), then the drain sequence. */
    sluice_lifecycle_report rep;
    sluice_service_run(d.svc, &rep);

    /* 5. Report. */
    demo_join_producers(&d);
    sluice_service_wait_idle(d.svc, 5 * SLUICE_NS_PER_SEC);
    demo_stop_view(&d);
    demo_admin_stop(&d);
    bool ok = demo_reconcile(&d, stdout);
    if (d.start_failed) {
        fprintf(stdout, "FAILED: the demo could not start the threads it needs (see stderr)\n");
    }
    return teardown(&d, logger, ok && !d.start_failed ? SLUICE_EXIT_OK : SLUICE_EXIT_FAIL);
}

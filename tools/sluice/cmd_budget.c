/*
 * tools/sluice/cmd_budget.c - `sluice budget`: downstream budgets shared
 * across replicas (libsluice-cluster, docs/cluster.md).
 *
 *   sluice budget check FILE          read a downstream-budget.yaml; print
 *                                     the shares, or file:line:col: error
 *   sluice budget status [--redis HOST:PORT] [--prefix P]
 *                                     the live allocation in Redis: members
 *                                     per service, permits per downstream,
 *                                     service and replica
 *
 * Exit: 0 ok; 1 Redis unreachable (status); 2 usage or an invalid file.
 * Built without hiredis, the command says so and exits 1.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#ifdef SLUICE_HAVE_CLUSTER
#include "sluice/cluster.h"
#endif

static const char HELP[] = "usage: sluice budget check FILE\n"
                           "       sluice budget status [--redis HOST:PORT] [--prefix P]\n"
                           "\n"
                           "One downstream's budget shared by the replicas of several services\n"
                           "(docs/cluster.md).\n"
                           "\n"
                           "  check FILE          read a downstream-budget.yaml (downstream, total_limit,\n"
                           "                      shares, free_pool) and print each service's share; an\n"
                           "                      invalid file prints FILE:LINE:COL: what is wrong, exit 2\n"
                           "  status              print the live allocation from Redis: each service's\n"
                           "                      members (time left on their TTL) and, per downstream,\n"
                           "                      the permits leased and in use per service and replica\n"
                           "  --redis HOST:PORT   Redis address (default 127.0.0.1:6379)\n"
                           "  --prefix P          key prefix the replicas use (default sluice)\n"
                           "  -h, --help          this text\n"
                           "\n"
                           "Exit status: 0 ok; 1 Redis unreachable; 2 bad flags or an invalid file.\n";

#ifdef SLUICE_HAVE_CLUSTER
static int check(const char *path)
{
    sluice_budget b;
    char err[512];
    sluice_err e = sluice_budget_load(path, &b, err, sizeof err);
    if (e) {
        fprintf(stderr, "%s\n", err);
        return SLUICE_EXIT_USAGE;
    }
    unsigned sum = b.free_pool;
    printf("downstream %s: total_limit %u\n", b.downstream, b.total_limit);
    for (size_t i = 0; i < b.share_count; i++) {
        printf("  %-32s %6u  (%.0f%%)\n", b.shares[i].service, b.shares[i].share,
               100.0 * b.shares[i].share / b.total_limit);
        sum += b.shares[i].share;
    }
    printf("  %-32s %6u  (%.0f%%, lent to services that need more)\n", "free_pool", b.free_pool,
           100.0 * b.free_pool / b.total_limit);
    if (sum < b.total_limit) {
        printf("  %-32s %6u  (never handed out)\n", "unassigned", b.total_limit - sum);
    }
    return SLUICE_EXIT_OK;
}

static int status(int argc, char **argv)
{
    static const struct option opts[] = {
        {"redis", required_argument, NULL, 'r'},
        {"prefix", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char host[256] = "127.0.0.1";
    unsigned port = 6379;
    const char *prefix = "sluice";
    optind = 0;
    opterr = 0; /* one line of our own per bad flag, as every command */
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'r': {
            const char *colon = strrchr(optarg, ':');
            char *end = NULL;
            unsigned long p = colon ? strtoul(colon + 1, &end, 10) : 0;
            if (!colon || colon == optarg || (size_t)(colon - optarg) >= sizeof host || !end || *end ||
                p == 0 || p > 65535) {
                fprintf(stderr, "sluice budget status: --redis: want HOST:PORT, got \"%s\"\n", optarg);
                return SLUICE_EXIT_USAGE;
            }
            memcpy(host, optarg, (size_t)(colon - optarg));
            host[colon - optarg] = '\0';
            port = (unsigned)p;
            break;
        }
        case 'p':
            prefix = optarg;
            break;
        case 'h':
            fputs(HELP, stdout);
            return SLUICE_EXIT_OK;
        case ':':
            fprintf(stderr, "sluice budget status: %s needs a value (see sluice budget --help)\n",
                    argv[optind - 1]);
            return SLUICE_EXIT_USAGE;
        default:
            fprintf(stderr, "sluice budget status: unknown flag '%s' (see sluice budget --help)\n",
                    argv[optind - 1]);
            return SLUICE_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice budget status: unexpected argument \"%s\"\n", argv[optind]);
        return SLUICE_EXIT_USAGE;
    }
    char *text = NULL;
    char err[512];
    sluice_err e = sluice_budget_report(host, port, prefix, 0, &text, err, sizeof err);
    if (e == SLUICE_EINVAL) {
        fprintf(stderr, "sluice budget status: %s\n", err);
        return SLUICE_EXIT_USAGE;
    }
    if (e) {
        fprintf(stderr, "sluice budget status: %s\n", e == SLUICE_EIO ? err : sluice_strerror(e));
        return SLUICE_EXIT_FAIL;
    }
    fputs(text, stdout);
    free(text);
    return SLUICE_EXIT_OK;
}
#endif

int sluice_cmd_budget(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? SLUICE_EXIT_USAGE : SLUICE_EXIT_OK;
    }
#ifdef SLUICE_HAVE_CLUSTER
    if (strcmp(argv[1], "check") == 0) {
        if (argc != 3) {
            fprintf(stderr, "sluice budget check: want one FILE\n");
            return SLUICE_EXIT_USAGE;
        }
        return check(argv[2]);
    }
    if (strcmp(argv[1], "status") == 0) {
        return status(argc - 1, argv + 1);
    }
    fprintf(stderr, "sluice budget: unknown subcommand \"%s\" (check, status)\n", argv[1]);
    return SLUICE_EXIT_USAGE;
#else
    fprintf(stderr, "sluice budget: this sluice was built without hiredis (libsluice-cluster); "
                    "install libhiredis-dev and rebuild\n");
    return SLUICE_EXIT_FAIL;
#endif
}

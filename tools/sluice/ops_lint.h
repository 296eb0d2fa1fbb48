/*
 * tools/sluice/ops_lint.h - the team framework's rules, checked against a
 * loaded sluice.yaml (`sluice lint`).
 *
 * Ownership: ops_lint_run fills a caller-owned ops_findings; free it with
 * ops_findings_free. The config is only read. Thread-safe on distinct
 * objects; no global state.
 */
#ifndef SLUICE_TOOLS_OPS_LINT_H
#define SLUICE_TOOLS_OPS_LINT_H

#include <stdint.h>

#include "ops_util.h"

typedef struct ops_lint_rule {
    const char *id;      /* "panic-handling" */
    const char *summary; /* one line for --list-rules and docs/ops.md */
} ops_lint_rule;

/* The rules, in the order they are documented. NULL-terminated by id. */
extern const ops_lint_rule ops_lint_rules[];

typedef struct ops_finding {
    char *pool;       /* NULL for a service-level finding */
    const char *rule; /* an id from ops_lint_rules */
    char *message;    /* what is wrong, with the values */
    char *fix;        /* what to change */
    unsigned line;    /* 1-based position in the file; 0 when unknown */
    unsigned column;
} ops_finding;

typedef struct ops_findings {
    ops_finding *v;
    size_t n, cap;
} ops_findings;

typedef struct ops_lint_opts {
    unsigned cpus;                         /* CPU count for the cpu-bound-k rule (> 0) */
    unsigned replicas;                     /* replicas of this service sharing a downstream (>= 1) */
    uint64_t orchestrator_grace_ns;        /* overrides service.orchestrator_grace; 0 = the config's */
    unsigned long long memory_limit_bytes; /* queue-memory rule; 0 = skip the rule */
    const char *memory_limit_source;       /* for messages: "--memory-limit", "cgroup", "default" */
    unsigned surge;                        /* extra replicas during a rolling update (maxSurge); 0 = none */
    /* --budget FILE: a downstream-budget.yaml as a downstream entry (its
     * positions name the budget file); it replaces the config's
     * downstream_budget entry of the same downstream. NULL = none. */
    const sluice_config_downstream *budget;
} ops_lint_opts;

/*
 * ops_lint_run - check every rule on every pool. Findings are sorted:
 * service-level first, then by pool name, then by rule id (stable output).
 */
void ops_lint_run(const sluice_config *cfg, const ops_lint_opts *opts, ops_findings *out);
void ops_findings_free(ops_findings *f);

#endif /* SLUICE_TOOLS_OPS_LINT_H */

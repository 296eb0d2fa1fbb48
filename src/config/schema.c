/*
 * src/config/schema.c - the keys of sluice.yaml as data, and what can be
 * done to one value of any key.
 *
 * Purpose. One new pool key used to touch nine places in four files (an
 * enum, a key table, a 220-line setter, validation, two lists in apply.c,
 * the writer, the copy into the pool config); a missed line in apply.c
 * meant a key that silently never reloaded. Here a key is one row:
 * name, C type, offset in its section's struct, reload class, enum names,
 * default, bounds, one line of documentation, and for live pool keys the
 * hook that applies a new value to a running pool. Parsing (yaml.c,
 * env.c), bound checks, --print-config (write.c), the reload diff and
 * apply (apply.c) and the key tables of docs/config.md
 * (tests/config/test_config_schema.c) all walk the rows.
 *
 * Design.
 *  - A "slot" is one section instance seen through one table: the
 *    library's rows over a sluice_config_pool, or an extension's rows over
 *    that extension's value struct for the same pool. Everything generic
 *    takes a slot, so extension keys parse, override, write, copy and
 *    reload exactly like the library's.
 *  - Values are read and written through offsetof-based pointers whose
 *    C type the row's type names; _Static_asserts below pin the
 *    assumptions (an enum is int-sized).
 *  - Bounds are checked when a value is set, so a file value and an
 *    environment override of it are refused with the same message at
 *    their own position. Checks across keys (min_workers <= workers, bucket
 *    order, names) are in validate.c.
 *  - The tools' keys (kind, alert thresholds, the demo's simulation) are
 *    two extensions defined here and registered by default, so a service
 *    loading a file that `sluice lint` accepts keeps accepting it; they are
 *    not part of sluice_pool_key and the library never reads them.
 *
 * The tables are constant; nothing here keeps state.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/enums.h"
#include "config/config_internal.h"

_Static_assert(sizeof(sluice_overflow) == sizeof(int), "ENUM rows store an int");
_Static_assert(sizeof(sluice_fault_mode) == sizeof(int), "ENUM rows store an int");
_Static_assert(sizeof(sluice_pool_kind) == sizeof(int), "ENUM rows store an int");
_Static_assert(sizeof(sluice_queue_discipline) == sizeof(int), "ENUM rows store an int");
_Static_assert(sizeof(sluice_tenant_overflow) == sizeof(int), "ENUM rows store an int");
_Static_assert(SLUICE_TK_COUNT_ <= 64, "the set bitmask is 64 bits");
_Static_assert(sizeof(sluice_cluster_mode) == sizeof(int), "ENUM rows store an int");
_Static_assert(sizeof(sluice_overload_mode) == sizeof(int), "ENUM rows store an int");
_Static_assert(SLUICE_PK_COUNT_ <= 64 && SLUICE_SK_COUNT_ <= 64, "the set bitmask is 64 bits");

/* ---- enum names ------------------------------------------------------- */

/* The ENUM rows' names, expanded from the enums' lists (value i is name i;
 * the pool kind's 0 is UNSET, which has no name and is never written). */
#define NAME_OF_(id, name) name,
static const char *const OVERFLOW_NAMES[] = {SLUICE_OVERFLOW_MAP(NAME_OF_)};
static const char *const FAULT_NAMES[] = {SLUICE_FAULT_MODE_MAP(NAME_OF_)};
static const char *const KIND_NAMES[] = {NULL, SLUICE_POOL_KIND_MAP(NAME_OF_)};
static const char *const OVERLOAD_NAMES[] = {SLUICE_OVERLOAD_MODE_MAP(NAME_OF_)};
#undef NAME_OF_
static const char *const DISCIPLINE_NAMES[] = {
    [SLUICE_QUEUE_FIFO] = "fifo",
    [SLUICE_QUEUE_FAIR] = "fair",
    [SLUICE_QUEUE_SHARDED] = "sharded",
    [SLUICE_QUEUE_FIFO_BATCH] = "fifo_batch",
};
static const char *const TENANT_OVERFLOW_NAMES[] = {
    [SLUICE_TENANT_OVERFLOW_REJECT] = "reject",
    [SLUICE_TENANT_OVERFLOW_DROP_OLDEST] = "drop_oldest",
};
static const char *const CONTROL_MODE_NAMES[] = {
    [SLUICE_CONTROL_FIXED] = "fixed",
    [SLUICE_CONTROL_AIMD] = "aimd",
    [SLUICE_CONTROL_GRADIENT2] = "gradient2",
    [SLUICE_CONTROL_VEGAS] = "vegas",
};
static const char *const MODE_NAMES[] = {
    [SLUICE_CLUSTER_MODE_SHARE] = "share",
    [SLUICE_CLUSTER_MODE_STRICT] = "strict",
};
#define COUNT_OF(a) ((unsigned)(sizeof(a) / sizeof((a)[0])))
_Static_assert(COUNT_OF(CONTROL_MODE_NAMES) == SLUICE_CONTROL_MODE_COUNT_, "a name per control mode");

SLUICE__ENUM_FUNCTIONS(sluice_pool_kind, SLUICE_POOL_KIND_MAP, SLUICE_POOL_KIND_IO, "unset",
                       sluice_pool_kind_name, sluice_pool_kind_parse)

/* ---- hooks of the live pool keys -------------------------------------- */

static bool check_workers(const sluice_config_pool *running, const sluice_config_pool *next, char *why,
                          size_t len)
{
    if (next->workers == 0 || next->workers < running->min_workers) {
        snprintf(why, len,
                 "workers %u cannot be applied: the running min_workers is %u (a min_workers change needs a "
                 "restart)",
                 next->workers, running->min_workers);
        return false;
    }
    return true;
}

static sluice_err apply_workers(sluice_pool *pool, const sluice_config_pool *next)
{
    return sluice_pool_resize(pool, next->workers);
}

static sluice_err apply_submit_timeout(sluice_pool *pool, const sluice_config_pool *next)
{
    sluice_pool_set_submit_timeout(pool, next->submit_timeout_ns);
    return SLUICE_OK;
}

static sluice_err apply_idle_expiry(sluice_pool *pool, const sluice_config_pool *next)
{
    sluice_pool_set_idle_expiry(pool, next->idle_expiry_ns);
    return SLUICE_OK;
}

static sluice_err apply_timing_sample(sluice_pool *pool, const sluice_config_pool *next)
{
    sluice_pool_set_timing_sample(pool, next->timing_sample_every);
    return SLUICE_OK;
}

/* A file path key given as "": refused at its position, not at start. */
static const char *refuse_empty_path(const char *text)
{
    return text[0] == '\0' ? "must be a file path" : NULL;
}

static const char *refuse_unbounded(const char *text)
{
    if (strcasecmp(text, "unbounded") == 0 || strcasecmp(text, "infinite") == 0 ||
        strcasecmp(text, "none") == 0) {
        return "must be > 0 (there is no unbounded queue; a queue without a bound turns a burst into an "
               "out-of-memory kill)";
    }
    return NULL;
}

/* ---- the items of `tenants:` ------------------------------------------- */

#define TENANT_AT(field) offsetof(sluice_config_tenant, field)
static const sluice_config_key TENANT_KEYS[SLUICE_TK_COUNT_] = {
    [SLUICE_TK_NAME] = {.name = "name",
                        .type = SLUICE_CONFIG_STRING,
                        .offset = TENANT_AT(name),
                        .reload = SLUICE_CONFIG_LIVE,
                        .flags = SLUICE_CONFIG_REQUIRED,
                        .doc = "the tenant as submits name it: 1..64 of `[A-Za-z0-9_.:-]`, unique in the "
                               "pool; `\"*\"` = every tenant not listed (the default)"},
    [SLUICE_TK_WEIGHT] = {.name = "weight",
                          .type = SLUICE_CONFIG_UINT,
                          .offset = TENANT_AT(weight),
                          .reload = SLUICE_CONFIG_LIVE,
                          .flags = SLUICE_CONFIG_OMIT_UNSET,
                          .min = 1,
                          .max = SLUICE_TENANT_WEIGHT_MAX,
                          .min_why = "a tenant of weight 0 would never be served",
                          .default_value = "1",
                          .doc = "its share of the workers while tenants are backlogged (weights 1:2:4 "
                                 "serve 1/7, 2/7, 4/7); 1..10000"},
    [SLUICE_TK_QUEUED_LIMIT] = {.name = "queued_limit",
                                .type = SLUICE_CONFIG_SIZE,
                                .offset = TENANT_AT(queued_limit),
                                .reload = SLUICE_CONFIG_LIVE,
                                .max = SLUICE_CONFIG_QUEUE_CAPACITY_MAX,
                                .flags = SLUICE_CONFIG_OMIT_ZERO,
                                .doc_default = "0 (the pool's)",
                                .doc = "the most of its tasks queued at once: past it its submits get the "
                                       "overflow outcome while other tenants still get in; <= "
                                       "`queue_capacity`"},
    [SLUICE_TK_RUNNING_LIMIT] = {.name = "running_limit",
                                 .type = SLUICE_CONFIG_UINT,
                                 .offset = TENANT_AT(running_limit),
                                 .reload = SLUICE_CONFIG_LIVE,
                                 .flags = SLUICE_CONFIG_OMIT_ZERO,
                                 .doc_default = "0 (none)",
                                 .doc = "the most of its tasks running at once (N of K); <= `workers`"},
    [SLUICE_TK_STRICT] = {.name = "strict",
                          .type = SLUICE_CONFIG_BOOL,
                          .offset = TENANT_AT(strict),
                          .reload = SLUICE_CONFIG_LIVE,
                          .flags = SLUICE_CONFIG_OMIT_UNSET,
                          .default_value = "false",
                          .doc = "`true`: `running_limit` holds even while other tenants leave workers idle; "
                                 "`false` (work-conserving): idle workers are lent past it"},
    [SLUICE_TK_OVERFLOW] = {.name = "overflow",
                            .type = SLUICE_CONFIG_ENUM,
                            .offset = TENANT_AT(overflow),
                            .reload = SLUICE_CONFIG_LIVE,
                            .flags = SLUICE_CONFIG_OMIT_UNSET,
                            .enum_names = TENANT_OVERFLOW_NAMES,
                            .enum_count = COUNT_OF(TENANT_OVERFLOW_NAMES),
                            .default_value = "reject",
                            .doc = "a submit past `queued_limit`: `reject` (`SLUICE_EFULL`, others still get "
                                   "in) or `drop_oldest` (evict this tenant's own oldest queued task)"},
};

/* One tenant entry on its own; the checks across entries (duplicates,
 * limits against the pool's K and queue) are validate.c's. */
static const char *tenant_check(const void *item, unsigned *key)
{
    const sluice_config_tenant *t = item;
    if (t->strict && t->running_limit == 0) {
        *key = SLUICE_TK_STRICT;
        return "needs running_limit (strict says how the running limit holds; there is none)";
    }
    return NULL;
}

static const sluice_config_table TENANT_TABLE = {
    .keys = TENANT_KEYS,
    .key_count = SLUICE_TK_COUNT_,
    .item_size = sizeof(sluice_config_tenant),
    .set_offset = TENANT_AT(set),
    .pos_offset = TENANT_AT(pos),
    .entry_pos_offset = TENANT_AT(entry_pos),
    .max_items = 1024,
    .check = tenant_check,
    .item_label = "tenant", /* "pools[0].tenants[2].weight (tenant \"gold\"): ..." */
    .label_key = SLUICE_TK_NAME,
};

/* ---- the library's rows ------------------------------------------------ */

#define POOL_AT(field) offsetof(sluice_config_pool, field)
/* The controller keys are applied by sluice_service_reload_config, which
 * makes or reconfigures the pool's controller (sluice_service_update_control)
 * or, when every one of them is off, removes it and sets K to `workers`
 * (sluice_service_remove_control), except on a draining pool, which takes
 * no resize: K stays where the controller left it (service_config.c,
 * remove_control). The note is the reload log's, after the change. */
#define CONTROL_APPLIED                                                                                      \
    "(applied by the service: the pool's controller is made or reconfigured, or removed when every "         \
    "control key is off, with K set back to workers unless the pool is draining)"
#define SERVICE_AT(field) offsetof(sluice_config_service, field)

/* Indexed by sluice_pool_key: the index is the key's set bit and pos[]. */
const sluice_config_key sluice__cfg_pool_keys[SLUICE_PK_COUNT_] = {
    [SLUICE_PK_NAME] = {.name = "name",
                        .type = SLUICE_CONFIG_STRING,
                        .offset = POOL_AT(name),
                        .reload = SLUICE_CONFIG_RESTART,
                        .flags = SLUICE_CONFIG_REQUIRED,
                        .doc =
                            "1..48 of `[A-Za-z0-9_.:-]`; unique, also ignoring case and punctuation (see env "
                            "overrides)"},
    [SLUICE_PK_WORKERS] = {.name = "workers",
                           .type = SLUICE_CONFIG_UINT,
                           .offset = POOL_AT(workers),
                           .reload = SLUICE_CONFIG_LIVE,
                           .flags = SLUICE_CONFIG_REQUIRED,
                           .min = 1,
                           .required_why = "K: the most tasks that run at once; say why in rationale",
                           .check = check_workers,
                           .apply = apply_workers,
                           .doc = "K, the most tasks that run at once; > 0. Live: `sluice_pool_resize`"},
    [SLUICE_PK_RATIONALE] = {.name = "rationale",
                             .type = SLUICE_CONFIG_STRING,
                             .offset = POOL_AT(rationale),
                             .reload = SLUICE_CONFIG_DECLARATIVE,
                             .doc = "why this K: the binding constraint (downstream limit, CPU count, memory "
                                    "budget). `sluice lint` requires it"},
    [SLUICE_PK_MIN_WORKERS] = {.name = "min_workers",
                               .type = SLUICE_CONFIG_UINT,
                               .offset = POOL_AT(min_workers),
                               .reload = SLUICE_CONFIG_RESTART,
                               .default_value = "0",
                               .doc = "workers kept alive when idle; <= `workers`"},
    [SLUICE_PK_QUEUE_CAPACITY] =
        {.name = "queue_capacity",
         .type = SLUICE_CONFIG_SIZE,
         .offset = POOL_AT(queue_capacity),
         .reload = SLUICE_CONFIG_RESTART,
         .flags = SLUICE_CONFIG_REQUIRED,
         .min = 1,
         .max = SLUICE_CONFIG_QUEUE_CAPACITY_MAX,
         .min_why = "there is no unbounded queue",
         .required_why = "there is no unbounded queue",
         .max_why = "the queue's slots are allocated when the pool is created",
         .refuse = refuse_unbounded,
         .doc = "the bounded queue in front of the workers; 1..1073741824 (its slots are "
                "allocated at create). There is no unbounded queue: `0`, `-1` and "
                "`unbounded` are errors"},
    [SLUICE_PK_OVERFLOW] = {.name = "overflow",
                            .type = SLUICE_CONFIG_ENUM,
                            .offset = POOL_AT(overflow),
                            .reload = SLUICE_CONFIG_RESTART,
                            .enum_names = OVERFLOW_NAMES,
                            .enum_count = COUNT_OF(OVERFLOW_NAMES),
                            .default_value = "block",
                            .doc = "full queue: `block` (wait, bounded by `submit_timeout`), `reject`, "
                                   "`caller_runs`, `drop_oldest`"},
    [SLUICE_PK_SUBMIT_TIMEOUT] = {.name = "submit_timeout",
                                  .type = SLUICE_CONFIG_DURATION,
                                  .offset = POOL_AT(submit_timeout_ns),
                                  .reload = SLUICE_CONFIG_LIVE,
                                  .default_value = "0s",
                                  .apply = apply_submit_timeout,
                                  .doc = "longest a blocked submit waits (`0s` = no limit); only with "
                                         "`overflow: block`"},
    [SLUICE_PK_IDLE_EXPIRY] = {.name = "idle_expiry",
                               .type = SLUICE_CONFIG_DURATION,
                               .offset = POOL_AT(idle_expiry_ns),
                               .reload = SLUICE_CONFIG_LIVE,
                               .default_value = "0s",
                               .apply = apply_idle_expiry,
                               .doc = "workers above `min_workers` idle this long exit (`0s` = never)"},
    [SLUICE_PK_DRAIN_TIMEOUT] = {.name = "drain_timeout",
                                 .type = SLUICE_CONFIG_DURATION,
                                 .offset = POOL_AT(drain_timeout_ns),
                                 .reload = SLUICE_CONFIG_LIVE,
                                 .default_value = "0s",
                                 .applied_note = "(applied at the next drain)",
                                 .doc = "this pool's drain deadline (`0s` = `service.drain_budget`)"},
    [SLUICE_PK_PREWARM] = {.name = "prewarm",
                           .type = SLUICE_CONFIG_BOOL,
                           .offset = POOL_AT(prewarm),
                           .reload = SLUICE_CONFIG_RESTART,
                           .default_value = "false",
                           .doc = "start all K workers at startup"},
    [SLUICE_PK_FAULT_POLICY] = {.name = "fault_policy",
                                .type = SLUICE_CONFIG_ENUM,
                                .offset = POOL_AT(fault_policy),
                                .reload = SLUICE_CONFIG_RESTART,
                                .enum_names = FAULT_NAMES,
                                .enum_count = COUNT_OF(FAULT_NAMES),
                                .default_value = "off",
                                .doc = "SIGSEGV/SIGBUS/SIGFPE/SIGILL in a task: `off` (default action), "
                                       "`reraise` (log which pool/task, then crash with a core), `recover` "
                                       "(retire the worker; only for code that cannot corrupt shared state)"},
    [SLUICE_PK_HISTOGRAM_BUCKETS] = {.name = "histogram_buckets",
                                     .type = SLUICE_CONFIG_SECONDS_LIST,
                                     .offset = POOL_AT(histogram_buckets),
                                     .count_offset = POOL_AT(histogram_bucket_count),
                                     .reload = SLUICE_CONFIG_RESTART,
                                     .max = SLUICE_HIST_MAX_BUCKETS,
                                     .doc_default = "0.1 ms doubling 16 times",
                                     .doc =
                                         "upper bounds of the timing histograms: a list of seconds or "
                                         "durations (`[0.001, 5ms, 1s]`), strictly increasing, at most 64"},
    [SLUICE_PK_TIMING_SAMPLE_EVERY] = {.name = "timing_sample_every",
                                       .type = SLUICE_CONFIG_UINT,
                                       .offset = POOL_AT(timing_sample_every),
                                       .reload = SLUICE_CONFIG_LIVE,
                                       .zero_word = "auto",
                                       .default_value = "auto",
                                       .apply = apply_timing_sample,
                                       .doc =
                                           "time 1 task in N for the histograms; `auto` (or `0`, which "
                                           "builds before 2026-11-29 read as \"every task\") picks N so "
                                           "timing costs ~1% of task time: every task once tasks take 100x "
                                           "the measured cost of timing one (a few us), at most 1 in 256; "
                                           "counters are never sampled"},
    [SLUICE_PK_TIMING] = {.name = "timing",
                          .type = SLUICE_CONFIG_BOOL,
                          .offset = POOL_AT(timing),
                          .reload = SLUICE_CONFIG_RESTART,
                          .default_value = "true",
                          .doc = "`false` turns the timing histograms (and their clock reads) off"},
    [SLUICE_PK_STACK_SIZE] = {.name = "stack_size",
                              .type = SLUICE_CONFIG_SIZE,
                              .offset = POOL_AT(stack_size),
                              .reload = SLUICE_CONFIG_RESTART,
                              .flags = SLUICE_CONFIG_OMIT_ZERO,
                              .doc_default = "system",
                              .doc = "worker stack size in bytes: 0 (the system's) or >= 16384"},
    [SLUICE_PK_DOWNSTREAM] = {.name = "downstream",
                              .type = SLUICE_CONFIG_STRING,
                              .offset = POOL_AT(downstream),
                              .reload = SLUICE_CONFIG_DECLARATIVE,
                              .doc = "the downstream this pool calls (matched with `downstream_budget`)"},
    [SLUICE_PK_CALLER_DEADLINE] = {.name = "caller_deadline",
                                   .type = SLUICE_CONFIG_DURATION,
                                   .offset = POOL_AT(caller_deadline_ns),
                                   .reload = SLUICE_CONFIG_DECLARATIVE,
                                   .flags = SLUICE_CONFIG_OMIT_ZERO,
                                   .doc = "the deadline of the callers that submit; lint wants "
                                          "`submit_timeout` below it"},
    [SLUICE_PK_READINESS_WEIGHT] =
        {.name = "readiness_weight",
         .type = SLUICE_CONFIG_DOUBLE,
         .offset = POOL_AT(readiness_weight),
         .reload = SLUICE_CONFIG_LIVE,
         .flags = SLUICE_CONFIG_FRACTION | SLUICE_CONFIG_OMIT_UNSET,
         .default_value = "1",
         .applied_note = "(applied by the service to /health/ready)",
         .doc = "how much this pool saturated counts against `/health/ready`: 503 once "
                "the saturated pools' weights add up to 1; 0 = never gates (side "
                "work), 1 = alone it does"},
    [SLUICE_PK_QUEUE_DISCIPLINE] =
        {.name = "queue_discipline",
         .type = SLUICE_CONFIG_ENUM,
         .offset = POOL_AT(queue_discipline),
         .reload = SLUICE_CONFIG_RESTART,
         .flags = SLUICE_CONFIG_OMIT_ZERO,
         .enum_names = DISCIPLINE_NAMES,
         .enum_count = COUNT_OF(DISCIPLINE_NAMES),
         .default_value = "fifo",
         .doc = "`fifo` (one ring, arrival order), `fair` (a queue per tenant, "
                "served by weight: one tenant's flood cannot starve the others), "
                "`sharded` (a ring per worker up to the CPU count, with stealing: "
                "arrival order only within a shard, for throughput pools; not with "
                "`overload: lifo`) or `fifo_batch` (the `fifo` ring, where a worker "
                "that finds the queue deep claims a run of up to 32 tasks at once: "
                "arrival order within a run, for BLOCK pools of short tasks (a REJECT "
                "pool near full refuses more: a held run keeps places unused); not with "
                "`overload: lifo`)"},
    [SLUICE_PK_TENANTS] = {.name = "tenants",
                           .type = SLUICE_CONFIG_TABLE,
                           .offset = POOL_AT(tenants),
                           .count_offset = POOL_AT(tenant_count),
                           .reload = SLUICE_CONFIG_LIVE,
                           .restart_if = sluice__cfg_tenants_restart_if,
                           .apply_change = sluice__cfg_tenants_apply,
                           .table = &TENANT_TABLE,
                           .doc_default = "none",
                           .doc = "a list of tenants, the keys below: their weights and limits (`fair`), "
                                  "and in a tier pool the tenants the router sends to it. Live: a fair "
                                  "pool's tenants take new weights and limits, new names and the `\"*\"` "
                                  "values at once, and a dropped name the `\"*\"` values; a tier pool's "
                                  "list of names needs a restart (the router is built at start)"},
    [SLUICE_PK_TIER] = {.name = "tier",
                        .type = SLUICE_CONFIG_STRING,
                        .offset = POOL_AT(tier),
                        .reload = SLUICE_CONFIG_RESTART,
                        .doc = "the tier this pool serves (`premium`, `standard`, `free`): the router "
                               "(sluice/router.h) sends a submit for the tier, or for a tenant this pool "
                               "lists, here; unique"},
    [SLUICE_PK_MAX_TENANTS] = {.name = "max_tenants",
                               .type = SLUICE_CONFIG_UINT,
                               .offset = POOL_AT(max_tenants),
                               .reload = SLUICE_CONFIG_RESTART,
                               .flags = SLUICE_CONFIG_OMIT_ZERO,
                               .max = 1048576,
                               .doc_default = "1024",
                               .doc =
                                   "`fair`: tenants tracked by name besides the listed ones; a new name past "
                                   "it shares the shard queues (shuffle sharding); <= 1048576"},
    [SLUICE_PK_TENANT_SHARD_QUEUES] = {.name = "tenant_shard_queues",
                                       .type = SLUICE_CONFIG_UINT,
                                       .offset = POOL_AT(tenant_shard_queues),
                                       .reload = SLUICE_CONFIG_RESTART,
                                       .flags = SLUICE_CONFIG_OMIT_ZERO,
                                       .max = 65536,
                                       .doc_default = "64",
                                       .doc = "`fair`: the shared queues of untracked tenants; <= 65536"},
    [SLUICE_PK_TENANT_HAND_SIZE] =
        {.name = "tenant_hand_size",
         .type = SLUICE_CONFIG_UINT,
         .offset = POOL_AT(tenant_hand_size),
         .reload = SLUICE_CONFIG_RESTART,
         .flags = SLUICE_CONFIG_OMIT_ZERO,
         .max = 16,
         .doc_default = "8",
         .doc = "`fair`: how many shard queues one untracked tenant is dealt; <= 16 and "
                "<= `tenant_shard_queues`"},
    [SLUICE_PK_TENANT_IDLE_FORGET] =
        {.name = "tenant_idle_forget",
         .type = SLUICE_CONFIG_DURATION,
         .offset = POOL_AT(tenant_idle_forget_ns),
         .reload = SLUICE_CONFIG_RESTART,
         .flags = SLUICE_CONFIG_OMIT_ZERO,
         .doc_default = "60s",
         .doc = "`fair`: an unlisted tenant idle this long is forgotten (its queue and "
                "counters freed)"},
    [SLUICE_PK_KNOWN_TENANTS_ONLY] =
        {.name = "known_tenants_only",
         .type = SLUICE_CONFIG_BOOL,
         .offset = POOL_AT(known_tenants_only),
         .reload = SLUICE_CONFIG_RESTART,
         .flags = SLUICE_CONFIG_OMIT_ZERO,
         .default_value = "false",
         .doc = "`fair`: refuse (`SLUICE_ENOENT`) tenants the `tenants:` list does not "
                "name"},
    [SLUICE_PK_CONCURRENCY_MODE] = {.name = "concurrency_mode",
                                    .type = SLUICE_CONFIG_ENUM,
                                    .offset = POOL_AT(concurrency_mode),
                                    .reload = SLUICE_CONFIG_LIVE,
                                    .applied_note = CONTROL_APPLIED,
                                    .flags = SLUICE_CONFIG_OMIT_ZERO,
                                    .enum_names = CONTROL_MODE_NAMES,
                                    .enum_count = COUNT_OF(CONTROL_MODE_NAMES),
                                    .default_value = "fixed",
                                    .doc =
                                        "the adaptive limit: `fixed` (K stays unless `autotune` moves it), "
                                        "`aimd`, `gradient2` or `vegas` (K follows the run times and "
                                        "failures within `concurrency_min`..`concurrency_max`)"},
    [SLUICE_PK_CONCURRENCY_MIN] = {.name = "concurrency_min",
                                   .type = SLUICE_CONFIG_UINT,
                                   .offset = POOL_AT(concurrency_min),
                                   .reload = SLUICE_CONFIG_LIVE,
                                   .applied_note = CONTROL_APPLIED,
                                   .flags = SLUICE_CONFIG_OMIT_ZERO,
                                   .doc_default = "max(1, `min_workers`)",
                                   .doc = "the least K the controller sets; >= `min_workers`"},
    [SLUICE_PK_CONCURRENCY_MAX] = {.name = "concurrency_max",
                                   .type = SLUICE_CONFIG_UINT,
                                   .offset = POOL_AT(concurrency_max),
                                   .reload = SLUICE_CONFIG_LIVE,
                                   .applied_note = CONTROL_APPLIED,
                                   .flags = SLUICE_CONFIG_OMIT_ZERO,
                                   .doc_default = "`workers`",
                                   .doc = "the most K the controller sets; >= `concurrency_min`"},
    [SLUICE_PK_CONCURRENCY_INTERVAL] = {.name = "concurrency_interval",
                                        .type = SLUICE_CONFIG_DURATION,
                                        .offset = POOL_AT(concurrency_interval_ns),
                                        .reload = SLUICE_CONFIG_LIVE,
                                        .applied_note = CONTROL_APPLIED,
                                        .flags = SLUICE_CONFIG_OMIT_ZERO,
                                        .doc_default = "1s",
                                        .doc = "time between the controller's decisions (one window of run "
                                               "times each); at most 1h"},
    [SLUICE_PK_AUTOTUNE] = {.name = "autotune",
                            .type = SLUICE_CONFIG_BOOL,
                            .offset = POOL_AT(autotune),
                            .reload = SLUICE_CONFIG_LIVE,
                            .applied_note = CONTROL_APPLIED,
                            .flags = SLUICE_CONFIG_OMIT_ZERO,
                            .default_value = "false",
                            .doc = "the auto-tune loop: utilisation and drop triggers move K toward "
                                   "the Little's-law K, with cooldown, max step, hysteresis and a revert "
                                   "to the last good K when p99 or failures get worse; a resize or a "
                                   "reload of `workers` pins K until released"},
    [SLUICE_PK_AUTOTUNE_COOLDOWN] = {.name = "autotune_cooldown",
                                     .type = SLUICE_CONFIG_DURATION,
                                     .offset = POOL_AT(autotune_cooldown_ns),
                                     .reload = SLUICE_CONFIG_LIVE,
                                     .applied_note = CONTROL_APPLIED,
                                     .flags = SLUICE_CONFIG_OMIT_ZERO,
                                     .doc_default = "2 intervals",
                                     .doc = "after a change, the wait before the next, and before the "
                                            "change is judged (kept or reverted); at most 1h"},
    [SLUICE_PK_AUTOTUNE_MAX_STEP] = {.name = "autotune_max_step",
                                     .type = SLUICE_CONFIG_UINT,
                                     .offset = POOL_AT(autotune_max_step),
                                     .reload = SLUICE_CONFIG_LIVE,
                                     .applied_note = CONTROL_APPLIED,
                                     .flags = SLUICE_CONFIG_OMIT_ZERO,
                                     .doc_default = "8",
                                     .doc = "the most K moves in one change"},
    [SLUICE_PK_AUTOTUNE_HYSTERESIS] = {.name = "autotune_hysteresis",
                                       .type = SLUICE_CONFIG_DOUBLE,
                                       .offset = POOL_AT(autotune_hysteresis),
                                       .reload = SLUICE_CONFIG_LIVE,
                                       .applied_note = CONTROL_APPLIED,
                                       .flags = SLUICE_CONFIG_OMIT_ZERO | SLUICE_CONFIG_NONNEGATIVE,
                                       .doc_default = "0.1",
                                       .doc = "the smallest change made, as a fraction of K (at least 1); "
                                              "below 1"},
    [SLUICE_PK_AUTOTUNE_UTIL_HIGH] = {.name = "autotune_util_high",
                                      .type = SLUICE_CONFIG_DOUBLE,
                                      .offset = POOL_AT(autotune_util_high),
                                      .reload = SLUICE_CONFIG_LIVE,
                                      .applied_note = CONTROL_APPLIED,
                                      .flags = SLUICE_CONFIG_OMIT_ZERO | SLUICE_CONFIG_NONNEGATIVE,
                                      .doc_default = "0.9",
                                      .doc = "utilisation (mean running / K) at or above which K grows; "
                                             "at most 1"},
    [SLUICE_PK_AUTOTUNE_UTIL_LOW] = {.name = "autotune_util_low",
                                     .type = SLUICE_CONFIG_DOUBLE,
                                     .offset = POOL_AT(autotune_util_low),
                                     .reload = SLUICE_CONFIG_LIVE,
                                     .applied_note = CONTROL_APPLIED,
                                     .flags = SLUICE_CONFIG_OMIT_ZERO | SLUICE_CONFIG_NONNEGATIVE,
                                     .doc_default = "0.3",
                                     .doc = "utilisation at or below which K shrinks (nothing dropped or "
                                            "queued); below `autotune_util_high`"},
    [SLUICE_PK_PROBE_EVERY] = {.name = "probe_every",
                               .type = SLUICE_CONFIG_DURATION,
                               .offset = POOL_AT(probe_every_ns),
                               .reload = SLUICE_CONFIG_LIVE,
                               .applied_note = CONTROL_APPLIED,
                               .flags = SLUICE_CONFIG_OMIT_ZERO,
                               .doc_default = "off",
                               .doc = "run a no-op probe task this often (>= 1ms); a probe not run within "
                                      "`probe_timeout` (or refused) marks the pool unhealthy in "
                                      "`/health/pools` until one runs"},
    [SLUICE_PK_PROBE_TIMEOUT] = {.name = "probe_timeout",
                                 .type = SLUICE_CONFIG_DURATION,
                                 .offset = POOL_AT(probe_timeout_ns),
                                 .reload = SLUICE_CONFIG_LIVE,
                                 .applied_note = CONTROL_APPLIED,
                                 .flags = SLUICE_CONFIG_OMIT_ZERO,
                                 .doc_default = "5s",
                                 .doc = "how long a probe may take from submit to run"},
    [SLUICE_PK_PROBE_AFFECTS_READY] = {.name = "probe_affects_ready",
                                       .type = SLUICE_CONFIG_BOOL,
                                       .offset = POOL_AT(probe_affects_ready),
                                       .reload = SLUICE_CONFIG_LIVE,
                                       .applied_note = CONTROL_APPLIED,
                                       .flags = SLUICE_CONFIG_OMIT_ZERO,
                                       .default_value = "false",
                                       .doc = "a failing probe also turns `/health/ready` 503"},
    [SLUICE_PK_OVERLOAD] = {.name = "overload",
                            .type = SLUICE_CONFIG_ENUM,
                            .offset = POOL_AT(overload),
                            .reload = SLUICE_CONFIG_RESTART,
                            .enum_names = OVERLOAD_NAMES,
                            .enum_count = COUNT_OF(OVERLOAD_NAMES),
                            .default_value = "off",
                            .doc = "overload queue management: `off` (FIFO), `codel` (shed at the head while "
                                   "the queue stands above `overload_target` for an `overload_interval`), "
                                   "`lifo` (serve the newest first meanwhile), `codel+lifo` (both); shed "
                                   "tasks go to the abandon handler as `shed`. With `queue_discipline: "
                                   "fair` both act within the tenants' round robin: CoDel judges the task "
                                   "it picked, LIFO serves that tenant's newest"},
    [SLUICE_PK_OVERLOAD_TARGET] = {.name = "overload_target",
                                   .type = SLUICE_CONFIG_DURATION,
                                   .offset = POOL_AT(overload_target_ns),
                                   .reload = SLUICE_CONFIG_RESTART,
                                   .default_value = "5ms",
                                   .min = 1,
                                   .min_why = "every wait would count as too long",
                                   .doc =
                                       "the queueing delay the pool may keep: the oldest task's wait must "
                                       "stay at or above it for `overload_interval` before `overload` acts; "
                                       "<= `overload_interval`"},
    [SLUICE_PK_OVERLOAD_INTERVAL] = {.name = "overload_interval",
                                     .type = SLUICE_CONFIG_DURATION,
                                     .offset = POOL_AT(overload_interval_ns),
                                     .reload = SLUICE_CONFIG_RESTART,
                                     .default_value = "100ms",
                                     .min = 1,
                                     .min_why = "a burst of any length would count as a standing queue",
                                     .doc = "how long a queue may stay above `overload_target` (a burst that "
                                            "clears within it is left alone); CoDel sheds at intervals of "
                                            "interval/sqrt(n) after the n-th"},
    [SLUICE_PK_OVERLOAD_SLOUGH] = {.name = "overload_slough",
                                   .type = SLUICE_CONFIG_DURATION,
                                   .offset = POOL_AT(overload_slough_ns),
                                   .reload = SLUICE_CONFIG_RESTART,
                                   .flags = SLUICE_CONFIG_OMIT_ZERO,
                                   .doc_default = "2 x `overload_target`",
                                   .doc =
                                       "`codel` modes: while the queue stands, every task that waited longer "
                                       "is shed too (folly's rule; a long value such as `24h` leaves CoDel's "
                                       "schedule alone); >= `overload_target`"},
};

/* Indexed by sluice_service_key. */
const sluice_config_key sluice__cfg_service_keys[SLUICE_SK_COUNT_] = {
    [SLUICE_SK_NAME] = {.name = "name",
                        .type = SLUICE_CONFIG_STRING,
                        .offset = SERVICE_AT(name),
                        .reload = SLUICE_CONFIG_RESTART,
                        .default_value = "sluice",
                        .doc = "the service's name (log lines, the demo's header; `downstream_budget` shares "
                               "are keyed by it)"},
    [SLUICE_SK_LISTEN] =
        {.name = "listen",
         .type = SLUICE_CONFIG_STRING,
         .offset = SERVICE_AT(listen),
         .reload = SLUICE_CONFIG_RESTART,
         .default_value = "127.0.0.1:9464",
         .doc = "admin server address: `host:port` with a numeric host, `[v6]:port`, or `:port` "
                "for 127.0.0.1; a bare port is refused (port 0 = any free port)"},
    [SLUICE_SK_DRAIN_BUDGET] = {.name = "drain_budget",
                                .type = SLUICE_CONFIG_DURATION,
                                .offset = SERVICE_AT(drain_budget_ns),
                                .reload = SLUICE_CONFIG_LIVE,
                                .default_value = "25s",
                                .doc = "total time to drain all pools on shutdown; each pool gets min(its "
                                       "`drain_timeout`, this). The default leaves 5s of the default "
                                       "`orchestrator_grace` to exit"},
    [SLUICE_SK_SHUTDOWN_GRACE] = {.name = "shutdown_grace",
                                  .type = SLUICE_CONFIG_DURATION,
                                  .offset = SERVICE_AT(shutdown_grace_ns),
                                  .reload = SLUICE_CONFIG_LIVE,
                                  .default_value = "0s",
                                  .doc = "time between turning not-ready and stopping the producers, so the "
                                         "load balancer notices"},
    [SLUICE_SK_ORCHESTRATOR_GRACE] = {.name = "orchestrator_grace",
                                      .type = SLUICE_CONFIG_DURATION,
                                      .offset = SERVICE_AT(orchestrator_grace_ns),
                                      .reload = SLUICE_CONFIG_LIVE,
                                      .default_value = "30s",
                                      .doc = "the orchestrator's kill grace (Kubernetes "
                                             "`terminationGracePeriodSeconds`); `sluice lint` checks drain "
                                             "timeouts against it"},
    [SLUICE_SK_SATURATION_THRESHOLD] = {.name = "saturation_threshold",
                                        .type = SLUICE_CONFIG_DURATION,
                                        .offset = SERVICE_AT(saturation_threshold_ns),
                                        .reload = SLUICE_CONFIG_RESTART,
                                        .default_value = "30s",
                                        .min = 1,
                                        .min_why = "how long a pool may stay saturated before /health/ready "
                                                   "turns 503",
                                        .doc =
                                            "`/health/ready` turns 503 once a pool has been saturated (all K "
                                            "running and the queue full) this long; > 0"},
    [SLUICE_SK_RUNBOOK_BASE_URL] = {.name = "runbook_base_url",
                                    .type = SLUICE_CONFIG_STRING,
                                    .offset = SERVICE_AT(runbook_base_url),
                                    .reload = SLUICE_CONFIG_LIVE,
                                    .doc = "base URL for the `runbook_url` of generated alerts"},
    [SLUICE_SK_ADMIN_TOKEN_FILE] =
        {.name = "admin_token_file",
         .type = SLUICE_CONFIG_STRING,
         .offset = SERVICE_AT(admin_token_file),
         .reload = SLUICE_CONFIG_RESTART,
         .refuse = refuse_empty_path,
         .doc_default = "none",
         .doc = "a file holding the admin server's bearer token (one line, 1..256 of "
                "A-Z a-z 0-9 - . _ ~ + / =), read at start; `/debug/*` then need "
                "`Authorization: Bearer <token>`. The config and `--print-config` hold "
                "the path, never the token. `sluice demo --admin-token-file` wins "
                "over it"},
};

/* Indexed by sluice_cluster_key. All restart-only: the cluster is joined
 * once, when the service starts. Checks across keys (ttl > heartbeat, the
 * redis address, names, budget_file required) are in validate.c. */
#define CLUSTER_AT(field) offsetof(sluice_config_cluster, field)
const sluice_config_key sluice__cfg_cluster_keys[SLUICE_CK_COUNT_] = {
    [SLUICE_CK_REDIS] = {.name = "redis",
                         .type = SLUICE_CONFIG_STRING,
                         .offset = CLUSTER_AT(redis),
                         .reload = SLUICE_CONFIG_RESTART,
                         .default_value = "127.0.0.1:6379",
                         .doc = "the Redis primary, `host:port` (a single primary, a Sentinel-managed or a "
                                "managed one; not Redis Cluster)"},
    [SLUICE_CK_KEY_PREFIX] = {.name = "key_prefix",
                              .type = SLUICE_CONFIG_STRING,
                              .offset = CLUSTER_AT(key_prefix),
                              .reload = SLUICE_CONFIG_RESTART,
                              .default_value = "sluice",
                              .doc = "every Redis key starts with `PREFIX:`; 1..64 of `[A-Za-z0-9_.:-]`"},
    [SLUICE_CK_SERVICE] = {.name = "service",
                           .type = SLUICE_CONFIG_STRING,
                           .offset = CLUSTER_AT(service),
                           .reload = SLUICE_CONFIG_RESTART,
                           .doc_default = "`service.name`",
                           .doc = "the service whose replicas share its budget share (the key of `shares:` "
                                  "in the budget file)"},
    [SLUICE_CK_REPLICA_ID] = {.name = "replica_id",
                              .type = SLUICE_CONFIG_STRING,
                              .offset = CLUSTER_AT(replica_id),
                              .reload = SLUICE_CONFIG_RESTART,
                              .doc_default = "host-pid-random",
                              .doc = "this replica's id, unique in the service"},
    [SLUICE_CK_HEARTBEAT] = {.name = "heartbeat",
                             .type = SLUICE_CONFIG_DURATION,
                             .offset = CLUSTER_AT(heartbeat_ns),
                             .reload = SLUICE_CONFIG_RESTART,
                             .default_value = "1s",
                             .min = 1,
                             .min_why = "a replica that never beats drops out of the member list",
                             .doc = "how often the replica renews its membership and leases; > 0"},
    [SLUICE_CK_MEMBER_TTL] = {.name = "member_ttl",
                              .type = SLUICE_CONFIG_DURATION,
                              .offset = CLUSTER_AT(member_ttl_ns),
                              .reload = SLUICE_CONFIG_RESTART,
                              .flags = SLUICE_CONFIG_OMIT_ZERO,
                              .doc_default = "3 heartbeats",
                              .doc = "a replica that stops beating (kill -9) leaves the list after this; > "
                                     "`heartbeat`"},
    [SLUICE_CK_LEASE_TTL] = {.name = "lease_ttl",
                             .type = SLUICE_CONFIG_DURATION,
                             .offset = CLUSTER_AT(lease_ttl_ns),
                             .reload = SLUICE_CONFIG_RESTART,
                             .flags = SLUICE_CONFIG_OMIT_ZERO,
                             .doc_default = "3 heartbeats",
                             .doc = "strict mode: a crashed holder's permits come back after this; > "
                                    "`heartbeat`"},
    [SLUICE_CK_REDIS_TIMEOUT] = {.name = "redis_timeout",
                                 .type = SLUICE_CONFIG_DURATION,
                                 .offset = CLUSTER_AT(redis_timeout_ns),
                                 .reload = SLUICE_CONFIG_RESTART,
                                 .default_value = "250ms",
                                 .min = 1,
                                 .min_why = "a Redis call needs a bound",
                                 .doc =
                                     "a Redis call slower than this is a failure: the replica falls back to "
                                     "its local bound"},
    [SLUICE_CK_MODE] = {.name = "mode",
                        .type = SLUICE_CONFIG_ENUM,
                        .offset = CLUSTER_AT(mode),
                        .reload = SLUICE_CONFIG_RESTART,
                        .enum_names = MODE_NAMES,
                        .enum_count = COUNT_OF(MODE_NAMES),
                        .default_value = "share",
                        .doc = "`share` (each bound pool's K = its share / live replicas) or `strict` (also "
                               "a leased distributed semaphore: never more than the share in flight)"},
    [SLUICE_CK_BUDGET_FILE] = {.name = "budget_file",
                               .type = SLUICE_CONFIG_STRING,
                               .offset = CLUSTER_AT(budget_file),
                               .reload = SLUICE_CONFIG_RESTART,
                               .flags = SLUICE_CONFIG_REQUIRED,
                               .required_why = "the downstream-budget.yaml whose share the pools keep",
                               .doc = "the `downstream-budget.yaml` (relative to this file); pools whose "
                                      "`downstream` is its downstream are bound to the service's share"},
    [SLUICE_CK_FALLBACK_K] = {.name = "fallback_k",
                              .type = SLUICE_CONFIG_UINT,
                              .offset = CLUSTER_AT(fallback_k),
                              .reload = SLUICE_CONFIG_RESTART,
                              .flags = SLUICE_CONFIG_OMIT_ZERO,
                              .doc_default = "last fair share",
                              .doc =
                                  "Redis down: each bound pool runs at min(this, its last K); 0 = its last "
                                  "K"},
    [SLUICE_CK_BLOCK] = {.name = "block",
                         .type = SLUICE_CONFIG_UINT,
                         .offset = CLUSTER_AT(block),
                         .reload = SLUICE_CONFIG_RESTART,
                         .flags = SLUICE_CONFIG_OMIT_ZERO,
                         .doc_default = "fair share / 4",
                         .doc = "strict mode: permits leased per Redis call"},
    [SLUICE_CK_FALLBACK_UNREADY] = {.name = "fallback_unready",
                                    .type = SLUICE_CONFIG_BOOL,
                                    .offset = CLUSTER_AT(fallback_unready),
                                    .reload = SLUICE_CONFIG_RESTART,
                                    .default_value = "false",
                                    .doc = "`true`: a replica in fallback answers 503 on `/health/ready` and "
                                           "`/health/pools` (by default it stays ready and says so)"},
    [SLUICE_CK_RECONNECT_MIN] = {.name = "reconnect_min",
                                 .type = SLUICE_CONFIG_DURATION,
                                 .offset = CLUSTER_AT(reconnect_min_ns),
                                 .reload = SLUICE_CONFIG_RESTART,
                                 .default_value = "50ms",
                                 .min = 1,
                                 .min_why = "a zero bound would retry a dead Redis in a tight loop",
                                 .doc =
                                     "Redis lost: the first reconnect waits a random time in [0, this]; each "
                                     "failure doubles the bound up to `reconnect_max` (full jitter, so "
                                     "replicas that lost Redis together do not return together)"},
    [SLUICE_CK_RECONNECT_MAX] = {.name = "reconnect_max",
                                 .type = SLUICE_CONFIG_DURATION,
                                 .offset = CLUSTER_AT(reconnect_max_ns),
                                 .reload = SLUICE_CONFIG_RESTART,
                                 .default_value = "2s",
                                 .min = 1,
                                 .min_why = "a zero bound would retry a dead Redis in a tight loop",
                                 .doc =
                                     "the ceiling of the reconnect backoff bound; >= `reconnect_min`. After "
                                     "Redis returns, every replica is back within about this long (strict "
                                     "mode's no-overshoot argument counts on it)"},
};

const sluice_config_key *sluice_config_schema(sluice_config_section section, unsigned *count)
{
    switch (section) {
    case SLUICE_CONFIG_SECTION_SERVICE:
        if (count) {
            *count = SLUICE_SK_COUNT_;
        }
        return sluice__cfg_service_keys;
    case SLUICE_CONFIG_SECTION_POOL:
        if (count) {
            *count = SLUICE_PK_COUNT_;
        }
        return sluice__cfg_pool_keys;
    case SLUICE_CONFIG_SECTION_CLUSTER:
        if (count) {
            *count = SLUICE_CK_COUNT_;
        }
        return sluice__cfg_cluster_keys;
    case SLUICE_CONFIG_SECTION_COUNT_:
        break;
    }
    if (count) {
        *count = 0;
    }
    return NULL;
}

const char *sluice_pool_key_name(sluice_pool_key key)
{
    if ((unsigned)key >= SLUICE_PK_COUNT_) {
        return NULL;
    }
    return sluice__cfg_pool_keys[key].name;
}

/* ---- the tools' extensions -------------------------------------------- */

#define OPS_AT(field) offsetof(sluice_config_ops_keys, field)
static const sluice_config_key OPS_KEYS[SLUICE_OPS_COUNT_] = {
    [SLUICE_OPS_KIND] = {.name = "kind",
                         .type = SLUICE_CONFIG_ENUM,
                         .offset = OPS_AT(kind),
                         .reload = SLUICE_CONFIG_DECLARATIVE,
                         .flags = SLUICE_CONFIG_OMIT_ZERO,
                         .enum_names = KIND_NAMES,
                         .enum_count = COUNT_OF(KIND_NAMES),
                         .doc =
                             "`io`, `cpu` or `memory`: what bounds K (`sluice lint` checks a `cpu` pool's K "
                             "against the CPU count)"},
    [SLUICE_OPS_ALERT_SLOW_TASK_P99] = {.name = "alert_slow_task_p99",
                                        .type = SLUICE_CONFIG_DURATION,
                                        .offset = OPS_AT(alert_slow_task_p99_ns),
                                        .reload = SLUICE_CONFIG_DECLARATIVE,
                                        .flags = SLUICE_CONFIG_OMIT_ZERO,
                                        .doc_default = "rules default",
                                        .doc = "threshold of the slow-task alert (`sluice rules`)"},
    [SLUICE_OPS_ALERT_SUBMIT_WAIT_P99] = {.name = "alert_submit_wait_p99",
                                          .type = SLUICE_CONFIG_DURATION,
                                          .offset = OPS_AT(alert_submit_wait_p99_ns),
                                          .reload = SLUICE_CONFIG_DECLARATIVE,
                                          .flags = SLUICE_CONFIG_OMIT_ZERO,
                                          .doc_default = "rules default",
                                          .doc = "threshold of the submit-wait alert (`sluice rules`)"},
    [SLUICE_OPS_SLO_OBJECTIVE] = {.name = "slo_objective",
                                  .type = SLUICE_CONFIG_DOUBLE,
                                  .offset = OPS_AT(slo_objective),
                                  .reload = SLUICE_CONFIG_DECLARATIVE,
                                  .flags = SLUICE_CONFIG_OMIT_ZERO | SLUICE_CONFIG_NONNEGATIVE,
                                  .doc_default = "none",
                                  .doc =
                                      "the pool's SLO as a fraction below 1, e.g. 0.999: `sluice rules` adds "
                                      "recording rules and burn-rate alerts"},
    [SLUICE_OPS_SLO_LATENCY] = {.name = "slo_latency",
                                .type = SLUICE_CONFIG_DURATION,
                                .offset = OPS_AT(slo_latency_ns),
                                .reload = SLUICE_CONFIG_DECLARATIVE,
                                .flags = SLUICE_CONFIG_OMIT_ZERO,
                                .doc_default = "none",
                                .doc = "a latency SLO too: tasks running longer are bad (one of the pool's "
                                       "histogram bounds)"},
    [SLUICE_OPS_SLO_WINDOW] =
        {.name = "slo_window",
         .type = SLUICE_CONFIG_DURATION,
         .offset = OPS_AT(slo_window_ns),
         .reload = SLUICE_CONFIG_DECLARATIVE,
         .flags = SLUICE_CONFIG_OMIT_UNSET,
         .default_value = "720h",
         .min = 3600000000000ull,
         .min_why = "the burn-rate windows reach 3 days; a window under an hour has no budget to "
                    "speak of",
         .doc = "the SLO's window (the error budget's period)"},
    [SLUICE_OPS_ALERT_SATURATION] = {.name = "alert_saturation",
                                     .type = SLUICE_CONFIG_DOUBLE,
                                     .offset = OPS_AT(alert_saturation),
                                     .reload = SLUICE_CONFIG_DECLARATIVE,
                                     .flags = SLUICE_CONFIG_OMIT_ZERO | SLUICE_CONFIG_NONNEGATIVE,
                                     .doc_default = "0.9",
                                     .doc = "PoolSaturated fires above this running / K ratio (0 < x <= 1)"},
    [SLUICE_OPS_ALERT_LOSS_RATIO] = {.name = "alert_loss_ratio",
                                     .type = SLUICE_CONFIG_DOUBLE,
                                     .offset = OPS_AT(alert_loss_ratio),
                                     .reload = SLUICE_CONFIG_DECLARATIVE,
                                     .flags = SLUICE_CONFIG_OMIT_ZERO | SLUICE_CONFIG_NONNEGATIVE,
                                     .doc_default = "0 (block), 0.01",
                                     .doc = "PoolDropping fires above this lost / offered ratio (below 1)"},
    [SLUICE_OPS_ALERT_FOR] = {.name = "alert_for",
                              .type = SLUICE_CONFIG_DURATION,
                              .offset = OPS_AT(alert_for_ns),
                              .reload = SLUICE_CONFIG_DECLARATIVE,
                              .flags = SLUICE_CONFIG_OMIT_ZERO,
                              .doc_default = "5m",
                              .doc = "how long PoolSaturated, PoolDropping, PoolSlowTasks, PoolSubmitWait, "
                                     "PoolMetricsMissing and TenantStarved must hold before they fire"},
    [SLUICE_OPS_ALERT_RATIONALE] = {.name = "alert_rationale",
                                    .type = SLUICE_CONFIG_STRING,
                                    .offset = OPS_AT(alert_rationale),
                                    .reload = SLUICE_CONFIG_DECLARATIVE,
                                    .flags = SLUICE_CONFIG_OMIT_UNSET,
                                    .doc_default = "none",
                                    .doc =
                                        "why the pool's alert thresholds are what they are: in every alert's "
                                        "description and the runbook"},
    [SLUICE_OPS_TASK_MEMORY] =
        {.name = "task_memory",
         .type = SLUICE_CONFIG_SIZE,
         .offset = OPS_AT(task_memory),
         .reload = SLUICE_CONFIG_DECLARATIVE,
         .flags = SLUICE_CONFIG_OMIT_ZERO | SLUICE_CONFIG_BYTES,
         .doc_default = "none",
         .doc = "memory one running task holds, e.g. `64Mi`: `sluice lint` checks K x this "
                "against the memory limit for `kind: memory` pools"},
};

/* An objective is a fraction of good tasks: 1 leaves no error budget. */
static const char *ops_check(const void *values, uint64_t set, unsigned *key)
{
    const sluice_config_ops_keys *v = values;
    (void)set;
    if (v->slo_objective >= 1) {
        *key = SLUICE_OPS_SLO_OBJECTIVE;
        return "must be below 1 (a fraction such as 0.999; 1 leaves no error budget)";
    }
    if (v->alert_saturation > 1) {
        *key = SLUICE_OPS_ALERT_SATURATION;
        return "must be at most 1 (a ratio of running tasks to K)";
    }
    if (v->alert_loss_ratio >= 1) {
        *key = SLUICE_OPS_ALERT_LOSS_RATIO;
        return "must be below 1 (a ratio of lost to offered tasks)";
    }
    if (v->slo_latency_ns && v->slo_objective == 0) {
        *key = SLUICE_OPS_SLO_LATENCY;
        return "needs slo_objective (the share of tasks that must be faster)";
    }
    return NULL;
}

const sluice_config_extension sluice_config_ext_ops = {
    .name = "ops",
    .section = SLUICE_CONFIG_SECTION_POOL,
    .keys = OPS_KEYS,
    .key_count = SLUICE_OPS_COUNT_,
    .values_size = sizeof(sluice_config_ops_keys),
    .check = ops_check,
};

#define SOPS_AT(field) offsetof(sluice_config_service_ops_keys, field)
static const sluice_config_key SOPS_KEYS[SLUICE_SOPS_COUNT_] = {
    [SLUICE_SOPS_SLO_OBJECTIVE] =
        {.name = "slo_objective",
         .type = SLUICE_CONFIG_DOUBLE,
         .offset = SOPS_AT(slo_objective),
         .reload = SLUICE_CONFIG_DECLARATIVE,
         .flags = SLUICE_CONFIG_OMIT_ZERO | SLUICE_CONFIG_NONNEGATIVE,
         .doc_default = "none",
         .doc = "the service's SLO over all its pools, a fraction below 1: `sluice rules` "
                "adds ServiceSLOBurnFast / ServiceSLOBurnSlow"},
    [SLUICE_SOPS_SLO_LATENCY] = {.name = "slo_latency",
                                 .type = SLUICE_CONFIG_DURATION,
                                 .offset = SOPS_AT(slo_latency_ns),
                                 .reload = SLUICE_CONFIG_DECLARATIVE,
                                 .flags = SLUICE_CONFIG_OMIT_ZERO,
                                 .doc_default = "none",
                                 .doc =
                                     "a service latency SLO too: tasks running longer are bad (a histogram "
                                     "bound of every pool)"},
    [SLUICE_SOPS_SLO_WINDOW] =
        {.name = "slo_window",
         .type = SLUICE_CONFIG_DURATION,
         .offset = SOPS_AT(slo_window_ns),
         .reload = SLUICE_CONFIG_DECLARATIVE,
         .flags = SLUICE_CONFIG_OMIT_UNSET,
         .default_value = "720h",
         .min = 3600000000000ull,
         .min_why = "the burn-rate windows reach 3 days; a window under an hour has no budget "
                    "to speak of",
         .doc = "the service SLO's window (the error budget's period)"},
};

static const char *sops_check(const void *values, uint64_t set, unsigned *key)
{
    const sluice_config_service_ops_keys *v = values;
    (void)set;
    if (v->slo_objective >= 1) {
        *key = SLUICE_SOPS_SLO_OBJECTIVE;
        return "must be below 1 (a fraction such as 0.999; 1 leaves no error budget)";
    }
    if (v->slo_latency_ns && v->slo_objective == 0) {
        *key = SLUICE_SOPS_SLO_LATENCY;
        return "needs slo_objective (the share of tasks that must be faster)";
    }
    return NULL;
}

const sluice_config_extension sluice_config_ext_ops_service = {
    .name = "ops_service",
    .section = SLUICE_CONFIG_SECTION_SERVICE,
    .keys = SOPS_KEYS,
    .key_count = SLUICE_SOPS_COUNT_,
    .values_size = sizeof(sluice_config_service_ops_keys),
    .check = sops_check,
};

const sluice_config_service_ops_keys *sluice_config_service_ops(const sluice_config *cfg)
{
    static const sluice_config_service_ops_keys none = {0, 0, 720ull * 3600 * 1000000000ull};
    if (cfg) {
        for (size_t i = 0; i < cfg->service.ext_count; i++) {
            if (cfg->service.ext[i].ext == &sluice_config_ext_ops_service) {
                return cfg->service.ext[i].values;
            }
        }
    }
    return &none;
}

#define DEMO_AT(field) offsetof(sluice_config_demo_keys, field)
static const sluice_config_key DEMO_KEYS[SLUICE_DEMO_COUNT_] = {
    [SLUICE_DEMO_LATENCY_P50] = {.name = "demo_latency_p50",
                                 .type = SLUICE_CONFIG_DURATION,
                                 .offset = DEMO_AT(latency_p50_ns),
                                 .reload = SLUICE_CONFIG_DECLARATIVE,
                                 .flags = SLUICE_CONFIG_OMIT_ZERO,
                                 .doc_default = "50ms",
                                 .doc = "`sluice demo` only: the simulated downstream's median latency "
                                        "(log-normal)"},
    [SLUICE_DEMO_LATENCY_P99] = {.name = "demo_latency_p99",
                                 .type = SLUICE_CONFIG_DURATION,
                                 .offset = DEMO_AT(latency_p99_ns),
                                 .reload = SLUICE_CONFIG_DECLARATIVE,
                                 .flags = SLUICE_CONFIG_OMIT_ZERO,
                                 .doc_default = "500ms",
                                 .doc = "`sluice demo` only: the simulated downstream's p99 latency; >= "
                                        "`demo_latency_p50`"},
    [SLUICE_DEMO_WEIGHT] = {.name = "demo_weight",
                            .type = SLUICE_CONFIG_DOUBLE,
                            .offset = DEMO_AT(weight),
                            .reload = SLUICE_CONFIG_DECLARATIVE,
                            .flags = SLUICE_CONFIG_OMIT_UNSET | SLUICE_CONFIG_NONNEGATIVE,
                            .doc_default = "`1`",
                            .doc = "`sluice demo` only: this pool's share of the generated traffic"},
    [SLUICE_DEMO_BATCH] = {.name = "demo_batch",
                           .type = SLUICE_CONFIG_UINT,
                           .offset = DEMO_AT(batch),
                           .reload = SLUICE_CONFIG_RESTART,
                           .flags = SLUICE_CONFIG_OMIT_ZERO,
                           .max = 10000,
                           .max_why = "a batch is one downstream call",
                           .doc_default = "`0` (one call per notification)",
                           .doc = "`sluice demo` only: send this destination's notifications in batches of "
                                  "up to N, one simulated downstream call per batch (a sluice_batcher on the "
                                  "pool, like an SES bulk send)"},
    [SLUICE_DEMO_BATCH_WAIT] = {.name = "demo_batch_wait",
                                .type = SLUICE_CONFIG_DURATION,
                                .offset = DEMO_AT(batch_wait_ns),
                                .reload = SLUICE_CONFIG_RESTART,
                                .flags = SLUICE_CONFIG_OMIT_ZERO,
                                .max = 3600ull * SLUICE_NS_PER_SEC,
                                .max_why = "the batcher's longest wait",
                                .doc_default = "1s",
                                .doc =
                                    "`sluice demo` only, with `demo_batch`: a batch is sent this long after "
                                    "its first notification if it has not filled by then"},
};

static const char *check_demo(const void *values, uint64_t set, unsigned *key)
{
    const sluice_config_demo_keys *d = values;
    (void)set;
    if (d->latency_p50_ns && d->latency_p99_ns && d->latency_p50_ns > d->latency_p99_ns) {
        *key = SLUICE_DEMO_LATENCY_P99;
        return "must be >= demo_latency_p50";
    }
    return NULL;
}

const sluice_config_extension sluice_config_ext_demo = {
    .name = "demo",
    .section = SLUICE_CONFIG_SECTION_POOL,
    .keys = DEMO_KEYS,
    .key_count = SLUICE_DEMO_COUNT_,
    .values_size = sizeof(sluice_config_demo_keys),
    .check = check_demo,
};

const sluice_config_ext_values *sluice_config_pool_ext(const sluice_config_pool *p,
                                                       const sluice_config_extension *x)
{
    if (!p || !x) {
        return NULL;
    }
    for (size_t i = 0; i < p->ext_count; i++) {
        if (p->ext[i].ext == x) {
            return &p->ext[i];
        }
    }
    return NULL;
}

const sluice_config_tenant *sluice_config_pool_tenant(const sluice_config_pool *p, const char *name)
{
    const sluice_config_tenant *fallback = NULL;
    for (size_t i = 0; p && name && i < p->tenant_count; i++) {
        const sluice_config_tenant *t = &p->tenants[i];
        if (t->name && strcmp(t->name, name) == 0) {
            return t;
        }
        if (t->name && strcmp(t->name, SLUICE_CONFIG_TENANT_DEFAULT) == 0) {
            fallback = t;
        }
    }
    return fallback;
}

bool sluice_config_pool_ext_has(const sluice_config_pool *p, const sluice_config_extension *x, unsigned key)
{
    const sluice_config_ext_values *v = sluice_config_pool_ext(p, x);
    return v && key < 64 && ((v->set >> key) & 1u);
}

const sluice_config_ops_keys *sluice_config_pool_ops(const sluice_config_pool *p)
{
    static const sluice_config_ops_keys none = {.kind = SLUICE_POOL_KIND_UNSET};
    const sluice_config_ext_values *v = sluice_config_pool_ext(p, &sluice_config_ext_ops);
    return v ? v->values : &none;
}

const sluice_config_demo_keys *sluice_config_pool_demo(const sluice_config_pool *p)
{
    static const sluice_config_demo_keys none = {.weight = 0};
    const sluice_config_ext_values *v = sluice_config_pool_ext(p, &sluice_config_ext_demo);
    return v ? v->values : &none;
}

/* ---- slots ------------------------------------------------------------- */

static unsigned ext_slots(sluice_config_ext_values *ext, size_t ext_count, cfg_slot *out, unsigned n,
                          unsigned max)
{
    for (size_t i = 0; i < ext_count && n < max; i++) {
        out[n++] =
            (cfg_slot){ext[i].ext->keys, ext[i].ext->key_count, ext[i].values, &ext[i].set, ext[i].pos};
    }
    return n;
}

unsigned sluice__cfg_pool_slots(sluice_config_pool *p, cfg_slot *out, unsigned max)
{
    if (max == 0) {
        return 0;
    }
    out[0] = (cfg_slot){sluice__cfg_pool_keys, SLUICE_PK_COUNT_, p, &p->set, p->pos};
    return ext_slots(p->ext, p->ext_count, out, 1, max);
}

unsigned sluice__cfg_cluster_slots(sluice_config_cluster *cl, cfg_slot *out, unsigned max)
{
    if (max == 0) {
        return 0;
    }
    out[0] = (cfg_slot){sluice__cfg_cluster_keys, SLUICE_CK_COUNT_, cl, &cl->set, cl->pos};
    return 1;
}

unsigned sluice__cfg_service_slots(sluice_config_service *s, cfg_slot *out, unsigned max)
{
    if (max == 0) {
        return 0;
    }
    out[0] = (cfg_slot){sluice__cfg_service_keys, SLUICE_SK_COUNT_, s, &s->set, s->pos};
    return ext_slots(s->ext, s->ext_count, out, 1, max);
}

bool sluice__cfg_find(const cfg_slot *slots, unsigned n, const char *written, unsigned *slot, unsigned *index)
{
    for (unsigned s = 0; s < n; s++) {
        for (unsigned i = 0; i < slots[s].count; i++) {
            if (slots[s].keys[i].name && sluice__cfg_key_eq(written, slots[s].keys[i].name)) {
                *slot = s;
                *index = i;
                return true;
            }
        }
    }
    return false;
}

void sluice__cfg_list_keys(const cfg_slot *slots, unsigned n, bool skip_first, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned s = 0; s < n; s++) {
        for (unsigned i = (s == 0 && skip_first) ? 1 : 0; i < slots[s].count && used < len; i++) {
            int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", slots[s].keys[i].name);
            if (w < 0) {
                return;
            }
            used += (size_t)w;
        }
    }
}

bool sluice__cfg_attach_exts(cfg_impl *c, sluice_config_section section, sluice_config_ext_values **ext,
                             size_t *ext_count)
{
    size_t n = 0;
    for (unsigned i = 0; i < c->ext_count; i++) {
        n += c->exts[i]->section == section;
    }
    *ext = NULL;
    *ext_count = 0;
    if (n == 0) {
        return true;
    }
    sluice_config_ext_values *v = sluice__cfg_alloc(c, n * sizeof *v);
    if (!v) {
        return false;
    }
    size_t k = 0;
    for (unsigned i = 0; i < c->ext_count; i++) {
        const sluice_config_extension *x = c->exts[i];
        if (x->section != section) {
            continue;
        }
        v[k].ext = x;
        v[k].values = sluice__cfg_alloc(c, x->values_size ? x->values_size : 1);
        v[k].pos = sluice__cfg_alloc(c, (x->key_count ? x->key_count : 1) * sizeof(sluice_config_pos));
        v[k].set = 0;
        if (!v[k].values || !v[k].pos) {
            return false;
        }
        cfg_slot slot = {x->keys, x->key_count, v[k].values, &v[k].set, v[k].pos};
        if (!sluice__cfg_defaults(c, &slot)) {
            return false;
        }
        k++;
    }
    *ext = v;
    *ext_count = n;
    return true;
}

/* ---- one value --------------------------------------------------------- */

static void *at(void *base, size_t offset)
{
    return (unsigned char *)base + offset;
}

static const void *cat(const void *base, size_t offset)
{
    return (const unsigned char *)base + offset;
}

static uint64_t type_max(const sluice_config_key *k)
{
    switch (k->type) {
    case SLUICE_CONFIG_UINT:
        return UINT_MAX;
    case SLUICE_CONFIG_SIZE:
        return SIZE_MAX;
    default:
        return UINT64_MAX;
    }
}

/* "64Mi", "2G", "4096": a byte count with an optional unit, no sign, no
 * overflow past SIZE_MAX. */
static bool parse_bytes(const char *v, uint64_t *out)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {
        {"", 1},          {"K", 1000u},     {"M", 1000000u},  {"G", 1000000000u},       {"T", 1000000000000u},
        {"Ki", 1u << 10}, {"Mi", 1u << 20}, {"Gi", 1u << 30}, {"Ti", (uint64_t)1 << 40}};
    if (!isdigit((unsigned char)v[0])) {
        return false;
    }
    errno = 0;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno) {
        return false;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            if (n > SIZE_MAX / units[i].mult) {
                return false;
            }
            *out = n * units[i].mult;
            return true;
        }
    }
    return false;
}

static void enum_list(const sluice_config_key *k, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < k->enum_count && used < len; i++) {
        if (k->enum_names[i]) {
            int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", k->enum_names[i]);
            if (w < 0) {
                return;
            }
            used += (size_t)w;
        }
    }
}

/* " (why)" or "" */
static void why_suffix(const char *why, char *buf, size_t len)
{
    if (why) {
        snprintf(buf, len, " (%s)", why);
    } else {
        buf[0] = '\0';
    }
}

/* A bound as the file would write it: a duration key's in the duration
 * grammar ("10ms", not 10000000 ns), any other key's as a number. */
static const char *bound_text(const sluice_config_key *k, uint64_t bound, char *buf, size_t len)
{
    if (k->type == SLUICE_CONFIG_DURATION) {
        return sluice_config_format_duration(bound, buf, len);
    }
    snprintf(buf, len, "%" PRIu64, bound);
    return buf;
}

/* The bound checks of an integer or duration; `shown` is the value as
 * the message shows it. */
static bool in_bounds(const sluice_config_key *k, uint64_t v, const char *shown, char *msg, size_t len)
{
    char why[256];
    uint64_t max = k->max ? k->max : type_max(k);
    char bound[64];
    if (v < k->min) {
        why_suffix(k->min_why, why, sizeof why);
        if (k->min == 1) {
            snprintf(msg, len, "must be > 0%s, got %s", why, shown);
        } else {
            snprintf(msg, len, "must be >= %s%s, got %s", bound_text(k, k->min, bound, sizeof bound), why,
                     shown);
        }
        return false;
    }
    if (v > max) {
        why_suffix(k->max_why, why, sizeof why);
        snprintf(msg, len, "must be <= %s%s, got %s", bound_text(k, max, bound, sizeof bound), why, shown);
        return false;
    }
    return true;
}

/* The comma-separated env form of a list of seconds. */
static cfg_set_result parse_list_text(cfg_impl *c, const sluice_config_key *k, void *base, const char *v,
                                      char *msg, size_t len)
{
    double tmp[SLUICE_HIST_MAX_BUCKETS];
    size_t cap = k->max && k->max < SLUICE_HIST_MAX_BUCKETS ? (size_t)k->max : SLUICE_HIST_MAX_BUCKETS;
    size_t n = 0;
    char item[64];
    const char *s = v;
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t ilen = comma ? (size_t)(comma - s) : strlen(s);
        if (ilen >= sizeof item || n == cap) {
            snprintf(msg, len, "at most %zu bounds, each a number, got \"%s\"", cap, v);
            return CFG_SET_BAD;
        }
        memcpy(item, s, ilen);
        item[ilen] = '\0';
        char *it = item;
        while (*it == ' ') {
            it++;
        }
        if (!sluice__cfg_parse_bound(it, &tmp[n])) {
            snprintf(msg, len, "bound %zu is not a number of seconds or a duration, got \"%s\"", n, it);
            return CFG_SET_BAD;
        }
        n++;
        s += ilen + (comma ? 1 : 0);
    }
    double *b = sluice__cfg_alloc(c, (n ? n : 1) * sizeof(double));
    if (!b) {
        return CFG_SET_OOM;
    }
    memcpy(b, tmp, n * sizeof(double));
    *(double **)at(base, k->offset) = b;
    *(size_t *)at(base, k->count_offset) = n;
    return CFG_SET_OK;
}

cfg_set_result sluice__cfg_parse_value(cfg_impl *c, const sluice_config_key *k, void *base, const char *v,
                                       char *msg, size_t len)
{
    void *dst = at(base, k->offset);
    if (k->refuse) {
        const char *no = k->refuse(v);
        if (no) {
            snprintf(msg, len, "%s, got %s%s", no, v, v[0] ? "" : "\"\"");
            return CFG_SET_BAD;
        }
    }
    switch (k->type) {
    case SLUICE_CONFIG_STRING: {
        /* The file is UTF-8 (libyaml checks); an environment value may be
         * any bytes, which the writer could not give back. */
        for (const unsigned char *u = (const unsigned char *)v; *u;) {
            unsigned long cp;
            size_t n = *u < 0x80 ? 1 : sluice__cfg_utf8_decode(u, &cp);
            if (n == 0) {
                snprintf(msg, len, "not valid UTF-8 text (byte %zu is 0x%02x)",
                         (size_t)(u - (const unsigned char *)v), *u);
                return CFG_SET_BAD;
            }
            u += n;
        }
        char *d = sluice__cfg_strdup(c, v);
        if (!d) {
            return CFG_SET_OOM;
        }
        *(char **)dst = d;
        return CFG_SET_OK;
    }
    case SLUICE_CONFIG_UINT:
    case SLUICE_CONFIG_SIZE: {
        uint64_t u = 0;
        bool neg = false;
        char why[256];
        if (k->zero_word && strcasecmp(v, k->zero_word) == 0) {
            u = 0;
        } else if ((k->flags & SLUICE_CONFIG_BYTES) && !parse_bytes(v, &u)) {
            snprintf(msg, len,
                     "not a byte count (a number with an optional unit: K, M, G, T or Ki, Mi, Gi, Ti; "
                     "for example 64Mi), got \"%s\"",
                     v);
            return CFG_SET_BAD;
        } else if (!(k->flags & SLUICE_CONFIG_BYTES) &&
                   (!sluice__cfg_parse_u64(v, &u, &neg) || u > type_max(k))) {
            if (neg && k->min >= 1) {
                why_suffix(k->min_why, why, sizeof why);
                snprintf(msg, len, "must be > 0%s, got %s", why, v);
            } else if (neg && k->type == SLUICE_CONFIG_UINT) {
                snprintf(msg, len, "must not be negative, got %s", v);
            } else if (k->type == SLUICE_CONFIG_UINT) {
                char zw[64] = "";
                if (k->zero_word) {
                    snprintf(zw, sizeof zw, " or \"%s\"", k->zero_word);
                }
                snprintf(msg, len, "not an integer in 0..%u%s, got \"%s\"", UINT_MAX, zw, v);
            } else {
                snprintf(msg, len, "not a non-negative integer, got \"%s\"", v);
            }
            return CFG_SET_BAD;
        }
        if (!in_bounds(k, u, v, msg, len)) {
            return CFG_SET_BAD;
        }
        if (k->type == SLUICE_CONFIG_UINT) {
            *(unsigned *)dst = (unsigned)u;
        } else {
            *(size_t *)dst = (size_t)u;
        }
        return CFG_SET_OK;
    }
    case SLUICE_CONFIG_DURATION: {
        uint64_t ns;
        const char *why;
        if (sluice__cfg_parse_duration(v, &ns, &why) != SLUICE_OK) {
            snprintf(msg, len,
                     "%s (a number with a unit: ns, us, ms, s, m, h; for example 250ms), got \"%s\"", why, v);
            return CFG_SET_BAD;
        }
        char shown[128];
        snprintf(shown, sizeof shown, "\"%s\"", v);
        if (!in_bounds(k, ns, shown, msg, len)) {
            return CFG_SET_BAD;
        }
        *(uint64_t *)dst = ns;
        return CFG_SET_OK;
    }
    case SLUICE_CONFIG_BOOL: {
        bool b;
        if (!sluice__cfg_parse_bool(v, &b)) {
            snprintf(msg, len, "not a boolean (true or false), got \"%s\"", v);
            return CFG_SET_BAD;
        }
        *(bool *)dst = b;
        return CFG_SET_OK;
    }
    case SLUICE_CONFIG_ENUM:
        for (unsigned i = 0; i < k->enum_count; i++) {
            if (k->enum_names[i] && sluice__cfg_key_eq(v, k->enum_names[i])) {
                *(int *)dst = (int)i;
                return CFG_SET_OK;
            }
        }
        {
            char names[256];
            enum_list(k, names, sizeof names);
            snprintf(msg, len, "must be one of %s, got \"%s\"", names, v);
        }
        return CFG_SET_BAD;
    case SLUICE_CONFIG_DOUBLE: {
        double d;
        bool nonneg = (k->flags & SLUICE_CONFIG_NONNEGATIVE) != 0;
        bool fraction = (k->flags & SLUICE_CONFIG_FRACTION) != 0;
        if (!sluice__cfg_parse_double(v, &d) || (nonneg && d < 0) || (fraction && !(d >= 0 && d <= 1))) {
            snprintf(msg, len, "must be a number%s, got \"%s\"",
                     fraction ? " from 0 to 1"
                     : nonneg ? " >= 0"
                              : "",
                     v);
            return CFG_SET_BAD;
        }
        *(double *)dst = d;
        return CFG_SET_OK;
    }
    case SLUICE_CONFIG_SECONDS_LIST:
        return parse_list_text(c, k, base, v, msg, len);
    case SLUICE_CONFIG_TABLE:
        snprintf(msg, len, "must be a list of mappings (\"- name: ...\" items), set in the file; got \"%s\"",
                 v);
        return CFG_SET_BAD;
    case SLUICE_CONFIG_TYPE_COUNT_:
        break;
    }
    snprintf(msg, len, "key has no type");
    return CFG_SET_BAD;
}

bool sluice__cfg_set(cfg_impl *c, cfg_errs *e, const cfg_slot *slot, unsigned index, const char *path,
                     const char *text, const sluice_config_pos *pos)
{
    const sluice_config_key *k = &slot->keys[index];
    char msg[1024];
    cfg_set_result r = sluice__cfg_parse_value(c, k, slot->base, text, msg, sizeof msg);
    if (r == CFG_SET_OOM) {
        return false;
    }
    if (r == CFG_SET_BAD) {
        sluice__cfg_errf(e, SLUICE_EINVAL, pos, "%s.%s: %s", path, k->name, msg);
        return true;
    }
    *slot->set |= (uint64_t)1 << index;
    slot->pos[index] = *pos;
    return true;
}

bool sluice__cfg_defaults(cfg_impl *c, const cfg_slot *slot)
{
    for (unsigned i = 0; i < slot->count; i++) {
        const sluice_config_key *k = &slot->keys[i];
        if (!k->default_value) {
            continue;
        }
        char msg[256];
        cfg_set_result r = sluice__cfg_parse_value(c, k, slot->base, k->default_value, msg, sizeof msg);
        if (r == CFG_SET_OOM) {
            return false;
        }
        /* CFG_SET_BAD is a broken row; test_config_schema parses every
         * default, so it cannot reach a release. The value stays zero. */
    }
    return true;
}

bool sluice__cfg_value_eq(const sluice_config_key *k, const void *a, const void *b)
{
    const void *x = cat(a, k->offset), *y = cat(b, k->offset);
    switch (k->type) {
    case SLUICE_CONFIG_STRING: {
        const char *s = *(char *const *)x, *t = *(char *const *)y;
        if (!s || !t) {
            return s == t;
        }
        return strcmp(s, t) == 0;
    }
    case SLUICE_CONFIG_UINT:
        return *(const unsigned *)x == *(const unsigned *)y;
    case SLUICE_CONFIG_SIZE:
        return *(const size_t *)x == *(const size_t *)y;
    case SLUICE_CONFIG_DURATION:
        return *(const uint64_t *)x == *(const uint64_t *)y;
    case SLUICE_CONFIG_BOOL:
        return *(const bool *)x == *(const bool *)y;
    case SLUICE_CONFIG_ENUM:
        return *(const int *)x == *(const int *)y;
    case SLUICE_CONFIG_DOUBLE:
        return *(const double *)x == *(const double *)y;
    case SLUICE_CONFIG_SECONDS_LIST: {
        size_t n = *(const size_t *)cat(a, k->count_offset), m = *(const size_t *)cat(b, k->count_offset);
        if (n != m) {
            return false;
        }
        const double *p = *(double *const *)x, *q = *(double *const *)y;
        for (size_t i = 0; i < n; i++) {
            if (p[i] != q[i]) {
                return false;
            }
        }
        return true;
    }
    case SLUICE_CONFIG_TABLE: {
        size_t n = *(const size_t *)cat(a, k->count_offset), m = *(const size_t *)cat(b, k->count_offset);
        if (n != m) {
            return false;
        }
        const sluice_config_table *t = k->table;
        const unsigned char *p = *(const unsigned char *const *)x, *q = *(const unsigned char *const *)y;
        for (size_t i = 0; i < n; i++) {
            for (unsigned j = 0; j < t->key_count; j++) {
                if (!sluice__cfg_value_eq(&t->keys[j], p + i * t->item_size, q + i * t->item_size)) {
                    return false;
                }
            }
        }
        return true;
    }
    case SLUICE_CONFIG_TYPE_COUNT_:
        break;
    }
    return true;
}

/* The shortest decimal that reads back to the same double. */
static void fmt_double(double v, char *buf, size_t len)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) {
            break;
        }
    }
}

const char *sluice__cfg_format(const sluice_config_key *k, const void *base, char *buf, size_t len)
{
    const void *x = cat(base, k->offset);
    buf[0] = '\0';
    switch (k->type) {
    case SLUICE_CONFIG_STRING: {
        const char *s = *(char *const *)x;
        snprintf(buf, len, "%s", s ? s : "");
        break;
    }
    case SLUICE_CONFIG_UINT: {
        unsigned u = *(const unsigned *)x;
        if (u == 0 && k->zero_word) {
            snprintf(buf, len, "%s", k->zero_word);
        } else {
            snprintf(buf, len, "%u", u);
        }
        break;
    }
    case SLUICE_CONFIG_SIZE:
        snprintf(buf, len, "%zu", *(const size_t *)x);
        break;
    case SLUICE_CONFIG_DURATION:
        sluice_config_format_duration(*(const uint64_t *)x, buf, len);
        break;
    case SLUICE_CONFIG_BOOL:
        snprintf(buf, len, "%s", *(const bool *)x ? "true" : "false");
        break;
    case SLUICE_CONFIG_ENUM: {
        int e = *(const int *)x;
        const char *name = (e >= 0 && (unsigned)e < k->enum_count) ? k->enum_names[e] : NULL;
        snprintf(buf, len, "%s", name ? name : "unset");
        break;
    }
    case SLUICE_CONFIG_DOUBLE:
        fmt_double(*(const double *)x, buf, len);
        break;
    case SLUICE_CONFIG_SECONDS_LIST: {
        size_t n = *(const size_t *)cat(base, k->count_offset);
        const double *b = *(double *const *)x;
        size_t used = (size_t)snprintf(buf, len, "[");
        for (size_t i = 0; i < n && used < len; i++) {
            char one[40];
            fmt_double(b[i], one, sizeof one);
            used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", one);
        }
        if (used < len) {
            snprintf(buf + used, len - used, "]");
        }
        break;
    }
    case SLUICE_CONFIG_TABLE: {
        /* The flow form, for log lines: [{name: a, weight: 2}, ...]; only
         * what an item gives (defaults add nothing to read). */
        const sluice_config_table *t = k->table;
        size_t n = *(const size_t *)cat(base, k->count_offset);
        const unsigned char *items = *(const unsigned char *const *)x;
        size_t used = (size_t)snprintf(buf, len, "[");
        for (size_t i = 0; i < n && used < len; i++) {
            const void *item = items + i * t->item_size;
            uint64_t set = *(const uint64_t *)cat(item, t->set_offset);
            used += (size_t)snprintf(buf + used, len - used, "%s{", i ? ", " : "");
            bool first = true;
            for (unsigned j = 0; j < t->key_count && used < len; j++) {
                if (!((set >> j) & 1u)) {
                    continue;
                }
                char one[256];
                used +=
                    (size_t)snprintf(buf + used, len - used, "%s%s: %s", first ? "" : ", ", t->keys[j].name,
                                     sluice__cfg_format(&t->keys[j], item, one, sizeof one));
                first = false;
            }
            if (used < len) {
                used += (size_t)snprintf(buf + used, len - used, "}");
            }
        }
        if (used < len) {
            snprintf(buf + used, len - used, "]");
        }
        break;
    }
    case SLUICE_CONFIG_TYPE_COUNT_:
        break;
    }
    return buf;
}

bool sluice__cfg_copy_value(cfg_impl *c, const sluice_config_key *k, void *dst, const void *src)
{
    void *d = at(dst, k->offset);
    const void *s = cat(src, k->offset);
    switch (k->type) {
    case SLUICE_CONFIG_STRING: {
        const char *str = *(char *const *)s;
        char *copy = NULL;
        if (str && !(copy = sluice__cfg_strdup(c, str))) {
            return false;
        }
        *(char **)d = copy;
        return true;
    }
    case SLUICE_CONFIG_UINT:
        *(unsigned *)d = *(const unsigned *)s;
        return true;
    case SLUICE_CONFIG_SIZE:
        *(size_t *)d = *(const size_t *)s;
        return true;
    case SLUICE_CONFIG_DURATION:
        *(uint64_t *)d = *(const uint64_t *)s;
        return true;
    case SLUICE_CONFIG_BOOL:
        *(bool *)d = *(const bool *)s;
        return true;
    case SLUICE_CONFIG_ENUM:
        *(int *)d = *(const int *)s;
        return true;
    case SLUICE_CONFIG_DOUBLE:
        *(double *)d = *(const double *)s;
        return true;
    case SLUICE_CONFIG_SECONDS_LIST: {
        size_t n = *(const size_t *)cat(src, k->count_offset);
        double *copy = NULL;
        if (n) {
            copy = sluice__cfg_alloc(c, n * sizeof(double));
            if (!copy) {
                return false;
            }
            memcpy(copy, *(double *const *)s, n * sizeof(double));
        }
        *(double **)d = copy;
        *(size_t *)at(dst, k->count_offset) = n;
        return true;
    }
    case SLUICE_CONFIG_TABLE: {
        const sluice_config_table *t = k->table;
        size_t n = *(const size_t *)cat(src, k->count_offset);
        const unsigned char *from = *(const unsigned char *const *)s;
        unsigned char *copy = NULL;
        if (n) {
            copy = sluice__cfg_alloc(c, n * t->item_size);
            if (!copy) {
                return false;
            }
            memset(copy, 0, n * t->item_size);
        }
        for (size_t i = 0; i < n; i++) {
            void *di = copy + i * t->item_size;
            const void *si = from + i * t->item_size;
            for (unsigned j = 0; j < t->key_count; j++) {
                if (!sluice__cfg_copy_value(c, &t->keys[j], di, si)) {
                    return false;
                }
                ((sluice_config_pos *)at(di, t->pos_offset))[j] =
                    sluice__cfg_copy_pos(c, &((const sluice_config_pos *)cat(si, t->pos_offset))[j]);
            }
            *(uint64_t *)at(di, t->set_offset) = *(const uint64_t *)cat(si, t->set_offset);
            *(sluice_config_pos *)at(di, t->entry_pos_offset) =
                sluice__cfg_copy_pos(c, (const sluice_config_pos *)cat(si, t->entry_pos_offset));
        }
        *(unsigned char **)d = copy;
        *(size_t *)at(dst, k->count_offset) = n;
        return true;
    }
    case SLUICE_CONFIG_TYPE_COUNT_:
        break;
    }
    return true;
}

bool sluice__cfg_omit(const sluice_config_key *k, const void *base, bool given)
{
    const void *x = cat(base, k->offset);
    if ((k->flags & SLUICE_CONFIG_OMIT_UNSET) && !given) {
        return true;
    }
    switch (k->type) {
    case SLUICE_CONFIG_STRING:
        return *(char *const *)x == NULL; /* absent: nothing to write */
    case SLUICE_CONFIG_SECONDS_LIST:
        return *(const size_t *)cat(base, k->count_offset) == 0; /* the library default */
    case SLUICE_CONFIG_TABLE:
        return *(const size_t *)cat(base, k->count_offset) == 0; /* no items */
    default:
        break;
    }
    if (!(k->flags & SLUICE_CONFIG_OMIT_ZERO)) {
        return false;
    }
    switch (k->type) {
    case SLUICE_CONFIG_UINT:
        return *(const unsigned *)x == 0;
    case SLUICE_CONFIG_SIZE:
        return *(const size_t *)x == 0;
    case SLUICE_CONFIG_DURATION:
        return *(const uint64_t *)x == 0;
    case SLUICE_CONFIG_BOOL:
        return !*(const bool *)x;
    case SLUICE_CONFIG_ENUM:
        return *(const int *)x == 0;
    case SLUICE_CONFIG_DOUBLE:
        return *(const double *)x == 0;
    default:
        return false;
    }
}

sluice_config_pos sluice__cfg_copy_pos(cfg_impl *c, const sluice_config_pos *p)
{
    sluice_config_pos r = *p;
    if (r.file) {
        r.file = c->pub.source;
    }
    if (r.env) {
        r.env = sluice__cfg_strdup(c, r.env);
    }
    return r;
}

/* ---- the docs' tables --------------------------------------------------- */

static void doc_rows(const sluice_config_key *keys, unsigned n, const char *prefix, FILE *out)
{
    for (unsigned i = 0; i < n; i++) {
        const sluice_config_key *k = &keys[i];
        char def[128];
        if (k->flags & SLUICE_CONFIG_REQUIRED) {
            snprintf(def, sizeof def, "**required**");
        } else if (k->doc_default) {
            snprintf(def, sizeof def, "%s", k->doc_default);
        } else if (k->default_value) {
            snprintf(def, sizeof def, "`%s`", k->default_value);
        } else {
            snprintf(def, sizeof def, "none");
        }
        static const char *const reload[] = {
            [SLUICE_CONFIG_RESTART] = "restart",
            [SLUICE_CONFIG_LIVE] = "live",
            [SLUICE_CONFIG_DECLARATIVE] = "declaration",
        };
        fprintf(out, "| `%s%s` | %s | %s | %s |\n", prefix, k->name, def, reload[k->reload],
                k->doc ? k->doc : "");
        if (k->type == SLUICE_CONFIG_TABLE && k->table) {
            char sub[128];
            snprintf(sub, sizeof sub, "%s%s[].", prefix, k->name);
            doc_rows(k->table->keys, k->table->key_count, sub, out);
        }
    }
}

void sluice__cfg_doc_table(sluice_config_section section, FILE *out)
{
    unsigned n = 0;
    const sluice_config_key *keys = sluice_config_schema(section, &n);
    fprintf(out, "| key | default | reload | meaning |\n|---|---|---|---|\n");
    doc_rows(keys, n, "", out);
    const sluice_config_extension *defaults[] = {&sluice_config_ext_ops, &sluice_config_ext_demo,
                                                 &sluice_config_ext_ops_service};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        if (defaults[i]->section == section) {
            doc_rows(defaults[i]->keys, defaults[i]->key_count, "", out);
        }
    }
}

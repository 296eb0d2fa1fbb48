/*
 * sluice/config.h - sluice.yaml: the service's pool configuration, read
 * from a file, overridden by the environment, validated, and reloaded live.
 *
 * This is the one source of truth for a service's pools. The service (and
 * every `sluice` subcommand that derives alerts, dashboards or runbooks)
 * reads it through this API:
 *
 *     sluice_config *cfg;
 *     char err[1024];
 *     if (sluice_config_load_file("sluice.yaml", NULL, &cfg, err, sizeof err))
 *         { fprintf(stderr, "%s\n", err); exit(2); }
 *     for (size_t i = 0; i < cfg->pool_count; i++) {
 *         sluice_pool_config pc;
 *         sluice_config_pool_to_pool_config(&cfg->pools[i], &pc);
 *         pc.panic_handler = ...;                 // code, not config
 *         sluice_pool_create(&pc, &pools[i], err, sizeof err);
 *     }
 *     ...
 *     sluice_config_free(cfg);
 *
 * File format (full reference in docs/config.md):
 *
 *     service:
 *       name: notifications
 *       listen: 127.0.0.1:9464
 *       drain_budget: 25s
 *     pools:
 *       - name: push
 *         workers: 1000
 *         rationale: APNS allows 1000 concurrent streams
 *         queue_capacity: 5000
 *         submit_timeout: 250ms
 *
 * Keys are snake_case; a '-' in a key is read as '_' (so `downstream-budget`
 * and `downstream_budget` are the same key). Durations are an integer or
 * decimal with a unit: ns, us, ms, s, m, h ("250ms", "1.5s", "5m"); a bare
 * 0 is accepted as zero. Unknown keys, duplicate keys and values of the
 * wrong shape are errors: a typo never falls back to a default.
 *
 * Environment overrides, applied after the file and validated with it:
 *     SLUICE_POOL_<NAME>_<KEY>=value     for example SLUICE_POOL_PUSH_WORKERS=200
 *     SLUICE_SERVICE_<KEY>=value         for example SLUICE_SERVICE_LISTEN=0.0.0.0:9464
 * NAME is the pool name upper-cased with every character outside [A-Z0-9]
 * turned into '_'; KEY is the key upper-cased. A SLUICE_POOL_* or
 * SLUICE_SERVICE_* variable that names no pool or no key is an error, and
 * so are the bare prefixes ("SLUICE_POOL_=1") and names of 256 bytes or
 * more.
 *
 * Error messages: one line per problem, "where: path: what, got value":
 *     sluice.yaml:12:14: pools[1].workers: must be > 0, got 0
 *     env SLUICE_POOL_PUSH_WORKERS: pools[0].workers: not an integer, got "lots"
 * Line and column are 1-based and point at the offending value.
 *
 * Ownership: a sluice_config and everything it points to belong to whoever
 * got it from a load call; free it with sluice_config_free. Nothing here
 * keeps global state; every call is thread-safe on distinct objects, and a
 * loaded config is immutable (safe to read from many threads).
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sluice/common.h"
#include "sluice/control.h"
#include "sluice/pool.h"
#include "sluice/router.h"
#include "sluice/service.h"
#include "sluice/tenant.h"

/* Where a value came from, for messages: 1-based line/column in `file`, or
 * (line == 0) the environment variable `env` (or a built-in default when
 * both are absent). Strings are owned by the config. */
typedef struct sluice_config_pos {
    const char *file; /* NULL when not from a file */
    unsigned line;    /* 1-based; 0 = not from the file */
    unsigned column;  /* 1-based */
    const char *env;  /* the variable's name when an env override set it */
} sluice_config_pos;

/* What bounds a pool's K (the ops tools check K against it). One row per
 * kind (see sluice/pool.h on these lists); UNSET (0) has no name. */
#define SLUICE_POOL_KIND_MAP(XX)                                                                             \
    XX(IO, "io")         /* K from a downstream's limit / Little's law */                                    \
    XX(CPU, "cpu")       /* K from the CPU count */                                                          \
    XX(MEMORY, "memory") /* K from a memory budget */

typedef enum sluice_pool_kind {
    SLUICE_POOL_KIND_UNSET = 0,
#define SLUICE_POOL_KIND_ENUM_(id, name) SLUICE_POOL_KIND_##id,
    SLUICE_POOL_KIND_MAP(SLUICE_POOL_KIND_ENUM_)
#undef SLUICE_POOL_KIND_ENUM_
        SLUICE_POOL_KIND_COUNT_ /* not a kind; keep last */
} sluice_pool_kind;

/* "io", "cpu", "memory"; "unset" for UNSET and anything outside the list.
 * The parser takes exactly those three names (SLUICE_EINVAL otherwise, NULL
 * included; *out unchanged). Thread-safe. */
SLUICE_API const char *sluice_pool_kind_name(sluice_pool_kind kind);
SLUICE_API sluice_err sluice_pool_kind_parse(const char *text, sluice_pool_kind *out);

/* ---- the schema: one row per key ------------------------------------ */

/*
 * Every key of sluice.yaml is one sluice_config_key row. Parsing (file and
 * environment), range checks, --print-config (sluice_config_write), the
 * reload diff and apply, and the key tables of docs/config.md are all
 * driven by the rows; docs/config.md ("Adding a key") walks through adding
 * one. The library's own rows are listed by sluice_config_schema(); a
 * program adds rows of its own with a sluice_config_extension.
 */

/* The C type a row's value has at its offset. */
typedef enum sluice_config_type {
    SLUICE_CONFIG_STRING = 0,   /* char *, owned by the config; NULL when absent */
    SLUICE_CONFIG_UINT,         /* unsigned */
    SLUICE_CONFIG_SIZE,         /* size_t */
    SLUICE_CONFIG_DURATION,     /* uint64_t nanoseconds ("250ms") */
    SLUICE_CONFIG_BOOL,         /* bool */
    SLUICE_CONFIG_ENUM,         /* an int-sized enum: value i is enum_names[i] */
    SLUICE_CONFIG_DOUBLE,       /* double, finite */
    SLUICE_CONFIG_SECONDS_LIST, /* double * (seconds) at offset, size_t count at count_offset */
    SLUICE_CONFIG_TABLE,        /* a list of mappings: an array of row->table->item_size items at
                                   offset (pointer), size_t count at count_offset; each item's keys
                                   are the rows of row->table (see sluice_config_table) */
    SLUICE_CONFIG_TYPE_COUNT_
} sluice_config_type;

/* What a reload does with a changed value. */
typedef enum sluice_config_reload {
    SLUICE_CONFIG_RESTART = 0, /* logged "not applied: needs a restart"; the running value stays */
    SLUICE_CONFIG_LIVE,        /* applied: the row's apply hook (pools) or the caller reads it */
    SLUICE_CONFIG_DECLARATIVE, /* read by tools, not by the pools: the new value is recorded */
    SLUICE_CONFIG_RELOAD_COUNT_
} sluice_config_reload_class;

/* sluice_config_key.flags */
#define SLUICE_CONFIG_REQUIRED 0x1u    /* the key must be given */
#define SLUICE_CONFIG_OMIT_ZERO 0x2u   /* write: leave out when 0 / false / the first enum value */
#define SLUICE_CONFIG_OMIT_UNSET 0x4u  /* write: leave out unless it was given */
#define SLUICE_CONFIG_NONNEGATIVE 0x8u /* DOUBLE: refuse values below 0 */
#define SLUICE_CONFIG_FRACTION 0x10u   /* DOUBLE: refuse values outside [0, 1] */
#define SLUICE_CONFIG_BYTES 0x20u      /* SIZE: also takes a unit: K M G T (1000s), Ki Mi Gi Ti (1024s) */

struct sluice_config_pool;
struct sluice_config_table;

typedef struct sluice_config_key {
    const char *name; /* snake_case, as written in the file */
    sluice_config_type type;
    size_t offset;       /* of the value in its section's struct */
    size_t count_offset; /* SECONDS_LIST: of its size_t count */
    sluice_config_reload_class reload;
    unsigned flags;                /* SLUICE_CONFIG_REQUIRED | ... */
    const char *const *enum_names; /* ENUM: the name of each value (NULL: no name) */
    unsigned enum_count;
    const char *zero_word; /* UINT: a word read as 0 and written for 0 ("auto") */
    uint64_t min;          /* UINT, SIZE, DURATION: inclusive bounds; max 0 = the type's */
    uint64_t max;
    const char *min_why;      /* said after "must be > 0": "there is no unbounded queue" */
    const char *max_why;      /* said after "must be <= max" */
    const char *required_why; /* said after "required" */
    /* A refusal before parsing: returns the complaint (for example the
     * words "unbounded" or "none" for a bound) or NULL. */
    const char *(*refuse)(const char *text);
    const char *default_value; /* as written in the file; NULL = none (0 / NULL) */
    const char *doc_default;   /* docs' default column when default_value does not say it */
    const char *doc;           /* one line for docs/config.md */
    /* LIVE pool keys. check: may the running pool take `next`'s value?
     * false with a reason (written to why) refuses the whole reload.
     * apply: make the pool take the value (pool NULL never reaches it).
     * Both NULL for a live key the caller reads itself (drain_timeout). */
    bool (*check)(const struct sluice_config_pool *running, const struct sluice_config_pool *next, char *why,
                  size_t len);
    sluice_err (*apply)(sluice_pool *pool, const struct sluice_config_pool *next);
    const char *applied_note; /* logged after a live change; NULL = "(applied)" */
    /* TABLE: what one item of the list holds. */
    const struct sluice_config_table *table;
    /* LIVE pool keys that some changes cannot take live. restart_if: true
     * (the reason written to why) makes this change a RESTART row's: logged
     * "not applied: needs a restart (why)", the running value kept in force.
     * NULL: every change is live. */
    bool (*restart_if)(const struct sluice_config_pool *running, const struct sluice_config_pool *next,
                       char *why, size_t len);
    /* LIVE pool keys: as apply, given the running values too (for a list
     * whose dropped items must be undone). Used instead of apply when set.
     * path: next's entry as a load error names it ("pools[0]"). On a
     * refusal, why (len bytes, "" on entry) says what was refused in a load
     * error's form, position and path first ("sluice.yaml:9:9:
     * pools[0].tenants[2] (tenant \"gold\"): pool f is draining"); the
     * reload's error and log carry it in place of the error's name. */
    sluice_err (*apply_change)(sluice_pool *pool, const struct sluice_config_pool *running,
                               const struct sluice_config_pool *next, const char *path, char *why,
                               size_t len);
} sluice_config_key;

/*
 * The items of a TABLE row (a list of mappings such as a pool's
 * `tenants:`): each item is a struct of item_size bytes whose keys are
 * `keys` (offsets relative to the item), with a uint64_t bit set of the
 * keys given at set_offset, a sluice_config_pos[key_count] at pos_offset
 * and the position of the item itself at entry_pos_offset. Items parse,
 * write, copy and compare through the same rows as a section's keys; a
 * TABLE cannot be set from the environment (a list of mappings has no
 * one-line form) and its rows may not themselves be TABLEs. `check`
 * (optional) judges one finished item: NULL, or a complaint and *key the
 * row it is about. At most max_items items (0 = 1024). item_label
 * (optional) names what an item is ("tenant"): every complaint about an
 * item whose STRING row label_key is given then says which one after its
 * path ("pools[0].tenants[2].weight (tenant \"gold\"): must be > 0").
 */
typedef struct sluice_config_table {
    const sluice_config_key *keys;
    unsigned key_count; /* at most 64 */
    size_t item_size;
    size_t set_offset;
    size_t pos_offset;
    size_t entry_pos_offset;
    unsigned max_items;
    const char *(*check)(const void *item, unsigned *key);
    const char *item_label;
    unsigned label_key;
} sluice_config_table;

/* The sections that hold keys. */
typedef enum sluice_config_section {
    SLUICE_CONFIG_SECTION_SERVICE = 0, /* `service:`, values in sluice_config_service */
    SLUICE_CONFIG_SECTION_POOL,        /* each entry of `pools:`, values in sluice_config_pool */
    SLUICE_CONFIG_SECTION_CLUSTER,     /* `cluster:`, values in sluice_config_cluster (no extensions) */
    SLUICE_CONFIG_SECTION_COUNT_
} sluice_config_section;

/*
 * An extension: rows a program adds to a section, with values in a struct
 * of its own (values_size bytes, offsets relative to it). Register it in
 * sluice_config_load_opts.extensions; read the values with
 * sluice_config_pool_ext / sluice_config_service_ext. At most 64 keys.
 * `check` (optional) validates one section's values after the environment
 * overrides: return NULL, or a complaint and *key the index it is about.
 * Extension keys are declarative or restart-only (a LIVE row's apply hook
 * is honoured for pool keys like a library row's).
 * Ownership: the caller's; it must outlive every config loaded with it.
 */
typedef struct sluice_config_extension {
    const char *name; /* for docs: "ops", "demo" */
    sluice_config_section section;
    const sluice_config_key *keys;
    unsigned key_count;
    size_t values_size;
    const char *(*check)(const void *values, uint64_t set, unsigned *key);
} sluice_config_extension;

/* One extension's values in one section instance. */
typedef struct sluice_config_ext_values {
    const sluice_config_extension *ext;
    void *values;           /* ext->values_size bytes, defaults filled in */
    uint64_t set;           /* bit i: ext->keys[i] was given */
    sluice_config_pos *pos; /* [ext->key_count] */
} sluice_config_ext_values;

/*
 * sluice_config_schema - the library's rows of a section (the pool rows
 * are indexed by sluice_pool_key, the service rows by sluice_service_key).
 * Returns the rows and *count; NULL for an unknown section.
 * Thread-safety: the table is constant.
 */
SLUICE_API const sluice_config_key *sluice_config_schema(sluice_config_section section, unsigned *count);

/*
 * The keys of a pool entry. Each has a bit in sluice_config_pool.set (it
 * was given in the file or the environment) and a position in
 * sluice_config_pool.pos[]. New keys are only ever appended (before
 * SLUICE_PK_COUNT_). Keys that only tools read are extension rows instead
 * (sluice_config_ext_ops, sluice_config_ext_demo below).
 */
typedef enum sluice_pool_key {
    SLUICE_PK_NAME = 0,
    SLUICE_PK_WORKERS,
    SLUICE_PK_RATIONALE,
    SLUICE_PK_MIN_WORKERS,
    SLUICE_PK_QUEUE_CAPACITY,
    SLUICE_PK_OVERFLOW,
    SLUICE_PK_SUBMIT_TIMEOUT,
    SLUICE_PK_IDLE_EXPIRY,
    SLUICE_PK_DRAIN_TIMEOUT,
    SLUICE_PK_PREWARM,
    SLUICE_PK_FAULT_POLICY,
    SLUICE_PK_HISTOGRAM_BUCKETS,
    SLUICE_PK_TIMING_SAMPLE_EVERY,
    SLUICE_PK_TIMING,
    SLUICE_PK_STACK_SIZE,
    SLUICE_PK_DOWNSTREAM,      /* declaration: the downstream this pool calls */
    SLUICE_PK_CALLER_DEADLINE, /* declaration: the callers' deadline */
    SLUICE_PK_READINESS_WEIGHT,
    SLUICE_PK_QUEUE_DISCIPLINE,
    SLUICE_PK_TENANTS, /* a TABLE of sluice_config_tenant */
    SLUICE_PK_TIER,
    SLUICE_PK_MAX_TENANTS,
    SLUICE_PK_TENANT_SHARD_QUEUES,
    SLUICE_PK_TENANT_HAND_SIZE,
    SLUICE_PK_TENANT_IDLE_FORGET,
    SLUICE_PK_KNOWN_TENANTS_ONLY,
    /* The pool's controller (sluice/control.h), run by the service. */
    SLUICE_PK_CONCURRENCY_MODE,
    SLUICE_PK_CONCURRENCY_MIN,
    SLUICE_PK_CONCURRENCY_MAX,
    SLUICE_PK_CONCURRENCY_INTERVAL,
    SLUICE_PK_AUTOTUNE,
    SLUICE_PK_AUTOTUNE_COOLDOWN,
    SLUICE_PK_AUTOTUNE_MAX_STEP,
    SLUICE_PK_AUTOTUNE_HYSTERESIS,
    SLUICE_PK_AUTOTUNE_UTIL_HIGH,
    SLUICE_PK_AUTOTUNE_UTIL_LOW,
    SLUICE_PK_PROBE_EVERY,
    SLUICE_PK_PROBE_TIMEOUT,
    SLUICE_PK_PROBE_AFFECTS_READY,
    SLUICE_PK_OVERLOAD,
    SLUICE_PK_OVERLOAD_TARGET,
    SLUICE_PK_OVERLOAD_INTERVAL,
    SLUICE_PK_OVERLOAD_SLOUGH,
    SLUICE_PK_COUNT_
} sluice_pool_key;

/* The keys of the `service:` section, as sluice_pool_key for pools. */
typedef enum sluice_service_key {
    SLUICE_SK_NAME = 0,
    SLUICE_SK_LISTEN,
    SLUICE_SK_DRAIN_BUDGET,
    SLUICE_SK_SHUTDOWN_GRACE,
    SLUICE_SK_ORCHESTRATOR_GRACE,
    SLUICE_SK_SATURATION_THRESHOLD,
    SLUICE_SK_RUNBOOK_BASE_URL,
    SLUICE_SK_ADMIN_TOKEN_FILE,
    SLUICE_SK_COUNT_
} sluice_service_key;

/* The keys of the `cluster:` section: one downstream budget across
 * replicas (libsluice-cluster joins a service to it with
 * sluice_cluster_join_create; docs/cluster.md). */
typedef enum sluice_cluster_key {
    SLUICE_CK_REDIS = 0,
    SLUICE_CK_KEY_PREFIX,
    SLUICE_CK_SERVICE,
    SLUICE_CK_REPLICA_ID,
    SLUICE_CK_HEARTBEAT,
    SLUICE_CK_MEMBER_TTL,
    SLUICE_CK_LEASE_TTL,
    SLUICE_CK_REDIS_TIMEOUT,
    SLUICE_CK_MODE,
    SLUICE_CK_BUDGET_FILE,
    SLUICE_CK_FALLBACK_K,
    SLUICE_CK_BLOCK,
    SLUICE_CK_FALLBACK_UNREADY,
    SLUICE_CK_RECONNECT_MIN,
    SLUICE_CK_RECONNECT_MAX,
    SLUICE_CK_COUNT_
} sluice_cluster_key;

/* sluice_pool_key_name - the key as written in the file ("queue_capacity"),
 * or NULL when out of range. */
SLUICE_API const char *sluice_pool_key_name(sluice_pool_key key);

/* The most queue slots a config may ask for. The ring's slots are
 * allocated when the pool is created (sluice_pool_queue_bytes: 16 GiB at
 * this bound), so a larger one is a typo, refused at load with the field
 * named; `sluice lint` (queue-memory) judges smaller ones against the
 * memory limit. */
#define SLUICE_CONFIG_QUEUE_CAPACITY_MAX ((size_t)1 << 30)

/* The keys of one entry of a pool's `tenants:` list. */
typedef enum sluice_tenant_key {
    SLUICE_TK_NAME = 0,
    SLUICE_TK_WEIGHT,
    SLUICE_TK_QUEUED_LIMIT,
    SLUICE_TK_RUNNING_LIMIT,
    SLUICE_TK_STRICT,
    SLUICE_TK_OVERFLOW,
    SLUICE_TK_COUNT_
} sluice_tenant_key;

/* The tenant name that stands for every tenant the list does not name. */
#define SLUICE_CONFIG_TENANT_DEFAULT "*"

/*
 * One entry of a pool's `tenants:` list: a tenant's share of the pool and
 * its limits (with `queue_discipline: fair`), and, in a pool that has a
 * `tier`, the tenant's membership of that tier for the router
 * (sluice/router.h). The entry named "*" is the default: its values apply
 * to every tenant the list does not name, and in a tier pool it routes
 * unknown tenants to that tier.
 */
typedef struct sluice_config_tenant {
    char *name;             /* required; 1..SLUICE_TENANT_NAME_MAX bytes of [A-Za-z0-9_.:-], or "*" */
    unsigned weight;        /* default 1, 1..10000: the share of the pool's workers under backlog */
    size_t queued_limit;    /* default 0 = only the pool's queue_capacity bounds the tenant */
    unsigned running_limit; /* default 0 = none; else at most this many of K run at once */
    bool strict;            /* default false: an idle pool lends past running_limit (work-conserving) */
    sluice_tenant_overflow overflow; /* past queued_limit: reject (default) | drop_oldest (its own oldest) */
    uint64_t set;                    /* bit (1u << sluice_tenant_key): given */
    sluice_config_pos pos[SLUICE_TK_COUNT_];
    sluice_config_pos entry_pos; /* the `- name:` item */
} sluice_config_tenant;

/* One entry of `pools:`. Field defaults (when the key is absent) are in
 * docs/config.md and in the comments. */
typedef struct sluice_config_pool {
    char *name;                     /* required; [A-Za-z0-9_.:-], <= SLUICE_POOL_NAME_MAX */
    unsigned workers;               /* required, > 0: K */
    char *rationale;                /* why this K (the binding constraint); NULL if absent */
    unsigned min_workers;           /* default 0; <= workers */
    size_t queue_capacity;          /* required, 1..SLUICE_CONFIG_QUEUE_CAPACITY_MAX */
    sluice_overflow overflow;       /* block (default) | reject | caller_runs | drop_oldest */
    uint64_t submit_timeout_ns;     /* default 0 = wait without limit (BLOCK only) */
    uint64_t idle_expiry_ns;        /* default 0 = never */
    uint64_t drain_timeout_ns;      /* default 0 = service.drain_budget */
    bool prewarm;                   /* default false */
    sluice_fault_mode fault_policy; /* off | reraise | recover; default off */
    double *histogram_buckets;      /* seconds, strictly increasing; NULL = library default */
    size_t histogram_bucket_count;
    unsigned timing_sample_every; /* default SLUICE_TIMING_SAMPLE_AUTO (0, "auto"); N = 1 task in N */
    bool timing;                  /* default true; false turns timing off */
    size_t stack_size;            /* bytes; default 0 = system default */

    /* Declarations (0 / NULL when absent). */
    char *downstream;            /* name of the downstream this pool calls */
    uint64_t caller_deadline_ns; /* the deadline of the callers that submit */

    double readiness_weight; /* default 1: how much this pool saturated counts against /health/ready */
    /* Tenants and tiers (issue 13). */
    sluice_queue_discipline queue_discipline; /* fifo (default) | fair | sharded */
    sluice_config_tenant *tenants;            /* key `tenants`, in file order; NULL when absent */
    size_t tenant_count;
    char *tier; /* key `tier`: the tier this pool serves for the router; NULL = none */
    /* The fair queue's bounds (sluice_fair_config; 0 = the library's default). */
    unsigned max_tenants;           /* key `max_tenants` */
    unsigned tenant_shard_queues;   /* key `tenant_shard_queues` */
    unsigned tenant_hand_size;      /* key `tenant_hand_size` */
    uint64_t tenant_idle_forget_ns; /* key `tenant_idle_forget` */
    bool known_tenants_only;        /* key `known_tenants_only`: refuse tenants the list does not name */
    /* The controller (sluice/control.h); all zero = none. */
    int concurrency_mode;             /* sluice_control_mode; default fixed */
    unsigned concurrency_min;         /* 0 = max(1, min_workers) */
    unsigned concurrency_max;         /* 0 = workers */
    uint64_t concurrency_interval_ns; /* 0 = 1 s */
    bool autotune;                    /* default false */
    uint64_t autotune_cooldown_ns;    /* 0 = 2 intervals */
    unsigned autotune_max_step;       /* 0 = 8 */
    double autotune_hysteresis;       /* 0 = 0.1 */
    double autotune_util_high;        /* 0 = 0.9 */
    double autotune_util_low;         /* 0 = 0.3 */
    uint64_t probe_every_ns;          /* 0 = no probes */
    uint64_t probe_timeout_ns;        /* 0 = 5 s */
    bool probe_affects_ready;         /* default false */
    /* Overload queue management (sluice_overload_mode in pool.h). */
    sluice_overload_mode overload; /* off (default) | codel | lifo | codel+lifo */
    uint64_t overload_target_ns;   /* default 5 ms; <= overload_interval */
    uint64_t overload_interval_ns; /* default 100 ms */
    uint64_t overload_slough_ns;   /* default 0 = 2 x target; >= target */

    /* Bookkeeping: which keys were given, and where. */
    uint64_t set; /* bit (1u << sluice_pool_key) */
    sluice_config_pos pos[SLUICE_PK_COUNT_];
    sluice_config_pos entry_pos; /* the `- name:` item itself */

    /* The values of the registered extensions, in registration order. */
    sluice_config_ext_values *ext;
    size_t ext_count;
} sluice_config_pool;

/* sluice_config_pool_tenant - the pool's entry for tenant `name` (exact
 * match), else its "*" entry, else NULL (every value at its default). */
SLUICE_API const sluice_config_tenant *sluice_config_pool_tenant(const sluice_config_pool *p,
                                                                 const char *name);

/*
 * sluice_config_pool_set_tenants - configure the named tenants of the
 * pool's `tenants:` list on a pool created from it (sluice_pool_tenant_set
 * for each, "*" aside: its values are the pool config's
 * fair.tenant_default, set by sluice_config_pool_to_pool_config). Nothing
 * to do for a fifo pool. sluice_service_create_from_config calls it.
 * Returns: SLUICE_OK; the first sluice_pool_tenant_set error, with
 * "tenants[I]: " and its message in errbuf ("tenants[2]: tenant \"gold\":
 * pool p is draining": the entry, the tenant and what is wrong).
 * Thread-safety: as sluice_pool_tenant_set (safe, any thread).
 */
SLUICE_API sluice_err sluice_config_pool_set_tenants(const sluice_config_pool *p, sluice_pool *pool,
                                                     char *errbuf, size_t errlen);

/* sluice_config_pool_has - true when `key` was given for this pool. */
static inline bool sluice_config_pool_has(const sluice_config_pool *p, sluice_pool_key key)
{
    return (p->set >> (unsigned)key) & 1u;
}

/*
 * sluice_config_pool_to_control_config - fill *out from the pool's
 * concurrency_*, autotune* and probe_* keys (log, clock and source left
 * NULL). Returns true when the pool wants a controller (a mode other than
 * fixed, autotune, or probes), false when it does not (*out then is
 * FIXED with nothing on). Thread-safety: pure.
 */
SLUICE_API bool sluice_config_pool_to_control_config(const sluice_config_pool *p,
                                                     sluice_pool_control_config *out);

/* sluice_config_pool_ext - this pool's values of extension x, or NULL when
 * x was not registered for the load. */
SLUICE_API const sluice_config_ext_values *sluice_config_pool_ext(const sluice_config_pool *p,
                                                                  const sluice_config_extension *x);

/* ---- the sluice tools' keys: two extensions, registered by default ---- */

/* Read by `sluice lint`, `rules`, `runbook` and `dashboard`. */
typedef struct sluice_config_ops_keys {
    sluice_pool_kind kind;             /* key `kind`; UNSET when absent */
    uint64_t alert_slow_task_p99_ns;   /* threshold of the slow-task alert; 0 = the rules' default */
    uint64_t alert_submit_wait_p99_ns; /* threshold of the submit-wait alert; 0 = the rules' default */
    double slo_objective;    /* the pool's SLO, e.g. 0.999; 0 = none (`sluice rules` burn-rate alerts) */
    uint64_t slo_latency_ns; /* latency SLO: tasks longer than this are bad; 0 = availability only */
    uint64_t slo_window_ns;  /* the SLO window; default 720h (30 days) */
    double alert_saturation; /* PoolSaturated's running/K ratio; 0 = the rules' default (0.9) */
    double alert_loss_ratio; /* PoolDropping's lost/offered ratio; 0 = the default (0 block, 0.01) */
    uint64_t alert_for_ns;   /* the `for:` of the 5-minute alerts; 0 = the default (5m) */
    char *alert_rationale;   /* why these thresholds: lands in each alert's description */
    size_t task_memory;      /* bytes one running task holds (`kind: memory`); 0 = not declared */
} sluice_config_ops_keys;
enum {
    SLUICE_OPS_KIND = 0,
    SLUICE_OPS_ALERT_SLOW_TASK_P99,
    SLUICE_OPS_ALERT_SUBMIT_WAIT_P99,
    SLUICE_OPS_SLO_OBJECTIVE,
    SLUICE_OPS_SLO_LATENCY,
    SLUICE_OPS_SLO_WINDOW,
    SLUICE_OPS_ALERT_SATURATION,
    SLUICE_OPS_ALERT_LOSS_RATIO,
    SLUICE_OPS_ALERT_FOR,
    SLUICE_OPS_ALERT_RATIONALE,
    SLUICE_OPS_TASK_MEMORY,
    SLUICE_OPS_COUNT_
};
SLUICE_API extern const sluice_config_extension sluice_config_ext_ops;

/* Read by `sluice demo`'s simulated downstreams. */
typedef struct sluice_config_demo_keys {
    uint64_t latency_p50_ns; /* key `demo_latency_p50`; 0 = the demo's default */
    uint64_t latency_p99_ns; /* key `demo_latency_p99`; 0 = the demo's default */
    double weight;           /* key `demo_weight`: share of the generated traffic (given or not: see set) */
    unsigned batch;          /* key `demo_batch`: notifications per downstream call; 0 = one each */
    uint64_t batch_wait_ns;  /* key `demo_batch_wait`: a batch goes this long after its first; 0 = 1s */
} sluice_config_demo_keys;
enum {
    SLUICE_DEMO_LATENCY_P50 = 0,
    SLUICE_DEMO_LATENCY_P99,
    SLUICE_DEMO_WEIGHT,
    SLUICE_DEMO_BATCH,
    SLUICE_DEMO_BATCH_WAIT,
    SLUICE_DEMO_COUNT_
};
SLUICE_API extern const sluice_config_extension sluice_config_ext_demo;

/* Read by `sluice rules` and `runbook`: the service-wide SLO (every pool of
 * the service together), in the `service:` section. */
typedef struct sluice_config_service_ops_keys {
    double slo_objective;    /* key `slo_objective`, e.g. 0.999; 0 = none */
    uint64_t slo_latency_ns; /* key `slo_latency`: tasks running longer are bad; 0 = availability only */
    uint64_t slo_window_ns;  /* key `slo_window`; default 720h */
} sluice_config_service_ops_keys;
enum { SLUICE_SOPS_SLO_OBJECTIVE = 0, SLUICE_SOPS_SLO_LATENCY, SLUICE_SOPS_SLO_WINDOW, SLUICE_SOPS_COUNT_ };
SLUICE_API extern const sluice_config_extension sluice_config_ext_ops_service;

/* The service's ops values; all-zero defaults when the extension was not
 * registered (never NULL). */
struct sluice_config;
SLUICE_API const sluice_config_service_ops_keys *sluice_config_service_ops(const struct sluice_config *cfg);

/* The pool's ops / demo values; all-zero defaults when the extension was
 * not registered (never NULL). */
SLUICE_API const sluice_config_ops_keys *sluice_config_pool_ops(const sluice_config_pool *p);
SLUICE_API const sluice_config_demo_keys *sluice_config_pool_demo(const sluice_config_pool *p);
/* True when key `key` (an index into x->keys) of extension x was given. */
SLUICE_API bool sluice_config_pool_ext_has(const sluice_config_pool *p, const sluice_config_extension *x,
                                           unsigned key);

/* One service's share of a downstream. */
typedef struct sluice_config_share {
    char *service;
    unsigned limit;
    sluice_config_pos pos;
} sluice_config_share;

/* One entry of `downstream_budget:` (for `sluice lint`): a downstream's
 * total concurrency limit and how it is shared among services. */
typedef struct sluice_config_downstream {
    char *name;                  /* key `downstream` */
    unsigned total_limit;        /* key `total_limit`, > 0 */
    sluice_config_share *shares; /* key `shares`: a map service -> limit */
    size_t share_count;
    sluice_config_pos pos;
} sluice_config_downstream;

/* The `service:` section. */
typedef struct sluice_config_service {
    char *name;                       /* default "sluice" */
    char *listen;                     /* admin address host:port; default "127.0.0.1:9464" */
    uint64_t drain_budget_ns;         /* total drain time for all pools; default 25s */
    uint64_t shutdown_grace_ns;       /* not-ready -> stop producers; default 0 */
    uint64_t orchestrator_grace_ns;   /* the orchestrator's kill grace; default 30s */
    uint64_t saturation_threshold_ns; /* /health/ready turns 503 after a pool is saturated this long; 30s */
    char *runbook_base_url;           /* NULL when absent */
    uint64_t set;                     /* bit (1u << sluice_service_key): given in the file or env */
    sluice_config_pos pos[SLUICE_SK_COUNT_];
    sluice_config_ext_values *ext; /* the registered service extensions' values */
    size_t ext_count;
    /* key `admin_token_file`: a file holding the admin server's bearer
     * token; NULL when absent. The config holds the path, never the token:
     * sluice_config_admin_token reads the file at start. */
    char *admin_token_file;
} sluice_config_service;

/* How a pool bound to a downstream budget keeps it (cluster.mode). */
typedef enum sluice_cluster_mode {
    SLUICE_CLUSTER_MODE_SHARE = 0, /* K = share / live replicas, resized at each membership change */
    SLUICE_CLUSTER_MODE_STRICT,    /* also a leased distributed semaphore: never more than the share */
} sluice_cluster_mode;

/* The `cluster:` section (read by libsluice-cluster, never by libsluice). */
typedef struct sluice_config_cluster {
    bool present;              /* the file has a cluster: section */
    char *redis;               /* "host:port"; default "127.0.0.1:6379" */
    char *key_prefix;          /* default "sluice" */
    char *service;             /* NULL = service.name */
    char *replica_id;          /* NULL = "<host>-<pid>-<random>" */
    uint64_t heartbeat_ns;     /* default 1s */
    uint64_t member_ttl_ns;    /* 0 = 3 heartbeats */
    uint64_t lease_ttl_ns;     /* 0 = 3 heartbeats */
    uint64_t redis_timeout_ns; /* default 250ms */
    sluice_cluster_mode mode;  /* default share */
    char *budget_file;         /* required in the section; as written (relative to the file's directory) */
    unsigned fallback_k;       /* 0 = the last fair share */
    unsigned block;            /* strict mode's lease block; 0 = a quarter of the fair share */
    bool fallback_unready;     /* fallback turns /health/ready and /health/pools 503; default false */
    uint64_t reconnect_min_ns; /* first reconnect backoff bound; default 50ms; <= reconnect_max */
    uint64_t reconnect_max_ns; /* the backoff bound's ceiling; default 2s */
    uint64_t set;              /* bit (1u << sluice_cluster_key): given in the file */
    sluice_config_pos pos[SLUICE_CK_COUNT_];
    sluice_config_pos section_pos; /* where `cluster:` was written */
} sluice_config_cluster;

typedef struct sluice_config {
    char *source; /* the file name, or "<built-in>" / "<string>" */
    sluice_config_service service;
    sluice_config_pool *pools; /* in file order */
    size_t pool_count;
    sluice_config_downstream *downstreams;
    size_t downstream_count;
    sluice_config_cluster cluster; /* cluster.present false when the file has none */
} sluice_config;

/* Options for the load calls; zero (or a NULL pointer) is the default. */
typedef struct sluice_config_load_opts {
    /* The environment to read overrides from: a NULL-terminated
     * "KEY=VALUE" array; NULL = the process environment (environ). */
    const char *const *envp;
    /* Skip environment overrides altogether. */
    bool no_env;
    /* Extensions to register (NULL-terminated), after the default ones
     * (sluice_config_ext_ops and sluice_config_ext_demo). */
    const sluice_config_extension *const *extensions;
    /* Leave the default extensions out (their keys become unknown keys). */
    bool no_default_extensions;
} sluice_config_load_opts;

/*
 * sluice_config_load_file - read, parse, apply env overrides and validate.
 * Returns: SLUICE_OK and *out; SLUICE_EIO (the file cannot be read: errbuf
 * names it and errno's text); SLUICE_EPARSE (not YAML: line:col and
 * libyaml's reason); SLUICE_EINVAL (YAML but wrong: every problem found,
 * one line each, up to a limit); SLUICE_ENOMEM. On error *out is untouched
 * and nothing is allocated.
 * Ownership: *out belongs to the caller (sluice_config_free).
 * errbuf: optional; always NUL-terminated when given; lines separated by
 * '\n' with no trailing newline.
 */
SLUICE_API sluice_err sluice_config_load_file(const char *path, const sluice_config_load_opts *opts,
                                              sluice_config **out, char *errbuf, size_t errlen);

/* sluice_config_load_string - the same, from memory. `name` is used in
 * messages (for example "sluice.yaml" or "<built-in>"). */
SLUICE_API sluice_err sluice_config_load_string(const char *text, size_t len, const char *name,
                                                const sluice_config_load_opts *opts, sluice_config **out,
                                                char *errbuf, size_t errlen);

/* sluice_config_load_stream - the same, from a stream (for example stdin),
 * read up to the 1 MiB limit: a longer stream is refused with
 * SLUICE_EINVAL ("name: more than 1048576 bytes") without reading it all,
 * so `sluice lint - < /dev/zero` ends. Returns SLUICE_EIO on a read error. */
SLUICE_API sluice_err sluice_config_load_stream(FILE *in, const char *name,
                                                const sluice_config_load_opts *opts, sluice_config **out,
                                                char *errbuf, size_t errlen);

/* sluice_config_free - free a config and all it owns. NULL is a no-op. */
SLUICE_API void sluice_config_free(sluice_config *cfg);

/* sluice_config_find_pool - the pool entry named `name`, or NULL. */
SLUICE_API const sluice_config_pool *sluice_config_find_pool(const sluice_config *cfg, const char *name);

/*
 * sluice_config_pool_to_pool_config - fill *out (sluice_pool_config_init
 * first) from a pool entry: name, workers, min_workers, queue_capacity,
 * overflow, timeouts, prewarm, fault mode, buckets, sampling, stack size.
 * Hooks (panic/abandon/event handlers, worker init) and the clock are left
 * for the caller. The drain timeout is not a pool-create field: use
 * sluice_config_pool_drain_timeout.
 * Ownership: out->name and out->histogram_buckets point into `pool`, which
 * must outlive the sluice_pool_create call (the pool copies them).
 */
SLUICE_API void sluice_config_pool_to_pool_config(const sluice_config_pool *pool, sluice_pool_config *out);

/* sluice_config_pool_drain_timeout - the pool's drain timeout, or the
 * service drain budget when the pool has none. */
SLUICE_API uint64_t sluice_config_pool_drain_timeout(const sluice_config *cfg,
                                                     const sluice_config_pool *pool);

/*
 * sluice_config_write - write cfg as YAML that loads back to an equal
 * config (every key, defaults included, durations in their largest exact
 * unit). Returns SLUICE_OK or SLUICE_EIO.
 */
SLUICE_API sluice_err sluice_config_write(const sluice_config *cfg, FILE *out);

/* sluice_config_parse_duration - "250ms" -> 250000000. Returns SLUICE_OK
 * or SLUICE_EINVAL (*out untouched; also for NULL text or out). Units: ns
 * us ms s m h; "0" alone is allowed; a fraction ("1.5s") is rounded to
 * the nearest ns, halves up. Errors: negative values, overflow (past
 * UINT64_MAX ns), white space anywhere (" 5s", "5s ", "5 s": both ends
 * alike, as for every scalar of the config), and a value that is not 0
 * but rounds to 0 ("0.1ns", "0.0000000001s": under 0.5ns), which would
 * otherwise read as 0, "the default" or "none" to many keys. The config
 * loader's message names the key, the value and which rule it broke.
 * Thread-safe (no state). */
SLUICE_API sluice_err sluice_config_parse_duration(const char *text, uint64_t *out);

/* sluice_config_format_duration - 250000000 -> "250ms" (the largest unit
 * that represents the value exactly; 0 -> "0s"; UINT64_MAX ->
 * "18446744073709551615ns", 23 bytes with the NUL). Returns buf, cut to
 * len - 1 bytes and NUL-terminated when len > 0; with len 0 nothing is
 * written. Thread-safe (no state). */
SLUICE_API char *sluice_config_format_duration(uint64_t ns, char *buf, size_t len);

/* sluice_config_env_name - the env prefix of a pool: "push-eu" ->
 * "SLUICE_POOL_PUSH_EU_" (each character not a letter or digit becomes
 * '_'; NULL reads as "", giving "SLUICE_POOL__"). Returns buf, always
 * NUL-terminated when len > 0 and cut to len - 1 bytes (a pool name of up
 * to SLUICE_POOL_NAME_MAX bytes needs SLUICE_POOL_NAME_MAX + 14); with
 * len 0 (or buf NULL) nothing is written. Thread-safe (no state). */
SLUICE_API char *sluice_config_env_name(const char *pool_name, char *buf, size_t len);

/* ---- reload -------------------------------------------------------- */

/* A line of the reload log ("pool push: workers 100 -> 200 (applied)"). */
typedef void (*sluice_config_log_fn)(void *user, const char *line);

/*
 * sluice_config_apply - move a running service from *current to `next`.
 * pools[i] is the live pool built from (*current)->pools[i] (NULL entries
 * are skipped). Each key's row says what a change does: LIVE keys are
 * applied (workers through sluice_pool_resize, submit_timeout,
 * idle_expiry and timing_sample_every through the pool's setters;
 * drain_timeout and the service's drain_budget, shutdown_grace,
 * orchestrator_grace and runbook_base_url are read by the caller),
 * DECLARATIVE keys (rationale, downstream, the extensions' keys,
 * downstream_budget) are recorded, and RESTART keys (queue_capacity,
 * overflow, min_workers, ..., listen, the set of pools) are logged as
 * "not applied: needs a restart" and kept at their running values.
 *
 * All-or-nothing: first every live change is checked (for example a new K
 * below the running min_workers); if any would fail, nothing is applied,
 * SLUICE_EINVAL is returned with the reasons, and *current is unchanged.
 * On success *current is replaced by the config now in force (next's live
 * values, current's restart-only values) and the old one freed; `next` is
 * not consumed. Each change is logged once through log (NULL: none).
 * Returns: SLUICE_OK (also when nothing changed), SLUICE_EINVAL,
 * SLUICE_ENOMEM, or the error of a resize that failed after the checks
 * (SLUICE_ECLOSED when a pool is draining): then the pools already resized
 * stay resized, and the message says which.
 * Thread-safety: the caller serialises calls (one reloader); the pools
 * may be in use by other threads throughout.
 */
SLUICE_API sluice_err sluice_config_apply(sluice_config **current, const sluice_config *next,
                                          sluice_pool *const *pools, sluice_config_log_fn log, void *user,
                                          char *errbuf, size_t errlen);

/*
 * sluice_config_reload - load `path` (with opts) and sluice_config_apply
 * it. A file that does not load is refused: *current and the pools are
 * unchanged, the error is logged ("reload refused: ...") and returned.
 */
SLUICE_API sluice_err sluice_config_reload(sluice_config **current, const char *path,
                                           const sluice_config_load_opts *opts, sluice_pool *const *pools,
                                           sluice_config_log_fn log, void *user, char *errbuf, size_t errlen);

/* ---- a service from a config (sluice/service.h) ---------------------- */

/* The longest admin token read from a file (= SLUICE_ADMIN_TOKEN_MAX of
 * sluice/admin.h, which this library does not need to be built). */
#define SLUICE_CONFIG_ADMIN_TOKEN_MAX 256

/*
 * sluice_config_read_token_file - read a bearer token from `path`: its
 * first line, with the trailing newline, CR, spaces and tabs dropped; 1 to
 * SLUICE_CONFIG_ADMIN_TOKEN_MAX characters of A-Z a-z 0-9 - . _ ~ + / =
 * (RFC 6750's b64token). Nothing may follow the first line but blank
 * lines (a file holding something else is refused rather than half-used).
 * `what` names the source in messages ("service.admin_token_file",
 * "--admin-token-file"); NULL = "token file".
 * Returns: SLUICE_OK with the token in out[0..outlen); SLUICE_EIO (the file
 * is missing or unreadable: errbuf says "WHAT: PATH: <errno text>");
 * SLUICE_EINVAL (empty, a token too long, a bad character, a file larger
 * than a token can be, or outlen too small: errbuf says which, and never
 * repeats the file's content). On error out is "" (when outlen > 0).
 * Ownership: out and errbuf are the caller's.
 * Thread-safety: safe from any thread (reads only the file).
 */
SLUICE_API sluice_err sluice_config_read_token_file(const char *path, const char *what, char *out,
                                                    size_t outlen, char *errbuf, size_t errlen);

/*
 * sluice_config_admin_token - the admin token the config asks for: the
 * file named by `service.admin_token_file` (env
 * SLUICE_SERVICE_ADMIN_TOKEN_FILE), read now with
 * sluice_config_read_token_file; "" when the key is absent. Call it once
 * at start, before sluice_admin_start (sluice_admin_config.token = out when
 * out[0]). A command-line flag naming another file should win over the
 * key: read that instead. A reload does not re-read it (the key is
 * restart-only), so a rotated token needs a restart.
 * Returns: SLUICE_OK (out = the token, or "" without the key); the reader's
 * SLUICE_EIO / SLUICE_EINVAL with "service.admin_token_file: PATH: why"
 * in errbuf; SLUICE_EINVAL for a NULL cfg or out.
 * Thread-safety: reads cfg only; the caller keeps it from being freed.
 */
SLUICE_API sluice_err sluice_config_admin_token(const sluice_config *cfg, char *out, size_t outlen,
                                                char *errbuf, size_t errlen);

/* Fills in what a config cannot hold (handlers, worker hooks, the user
 * pointer, a clock) for one pool before it is created. `pc` already holds
 * everything sluice_config_pool_to_pool_config puts there; its strings
 * point into `entry`. Called once per pool, in file order, on the thread
 * that called sluice_service_create_from_config. */
typedef void (*sluice_config_pool_hook)(void *user, const sluice_config_pool *entry, size_t index,
                                        sluice_pool_config *pc);

/*
 * sluice_service_create_from_config - a service (sluice_service_create)
 * with cfg's service name, shutdown grace and drain budget, and one pool
 * per entry of cfg->pools, in file order, each drained within
 * sluice_config_pool_drain_timeout. `base` gives the rest (callbacks,
 * user, no_signals, clock, registry; NULL = defaults); its name, grace and
 * budget are replaced by the config's. `prepare` (NULL = none) completes
 * each pool's config before it is created.
 * Returns: SLUICE_OK and *out; sluice_service_create's errors; the first
 * pool that cannot be created fails the whole call with its error and
 * "pool NAME: why" in errbuf. On error nothing is left running.
 * Ownership: *out belongs to the caller (sluice_service_destroy); cfg is
 * only read during the call (the pools copy what they keep).
 * Thread-safety: as sluice_service_create (main, before other threads).
 */
SLUICE_API sluice_err sluice_service_create_from_config(const sluice_config *cfg,
                                                        const sluice_service_config *base,
                                                        sluice_config_pool_hook prepare, void *prepare_user,
                                                        sluice_service **out, char *errbuf, size_t errlen);

/*
 * sluice_service_reload_config - sluice_config_reload `path` onto the
 * service's pools (matched to (*current)->pools by name), then give the
 * service the new grace, budget, per-pool drain timeouts and readiness
 * weights, and reconfigure the controller of each pool whose
 * concurrency_*, autotune* or probe_* keys changed
 * (sluice_service_update_control: made for a pool that had none). A
 * pool whose keys all went back to off loses its controller
 * (sluice_service_remove_control: its series leave /metrics) and is
 * resized to the file's `workers`, the K it keeps from then on (one log
 * line: "pool NAME: controller removed (...); K 18 -> 16 (workers)"); a
 * later reload that turns a key on again makes a fresh controller. A
 * controller the program set itself on a pool whose file never asked for
 * one is left alone. Fits the service's reload callback (SIGHUP).
 * A removal while the pool drains succeeds as a whole: the controller is
 * gone and K stays where it left it, since a draining pool takes no resize
 * and needs none (logged: "pool NAME: controller removed (...); K stays
 * 9: the pool is draining (workers 16 not applied)").
 * Returns: what sluice_config_reload returns. A file it refuses changes
 * nothing: *current, the pools and the service stay. A file it applies
 * with one pool value refused midway (a resize or a tenant while the pool
 * drains, as sluice_config_apply says: that error and its message are the
 * call's) is still followed by the service: budget, drain timeouts,
 * weights and controllers take the config now in force. A controller
 * that refuses its new settings (after the file was accepted) keeps its
 * running ones: the call returns that error with "pool NAME: ..." in
 * errbuf (unless an earlier refusal's is there) and logs it, and the
 * rest of the reload stands.
 * Thread-safety: one reloader at a time (the lifecycle's reload thread);
 * *current is replaced, so the caller excludes its other readers (hold
 * the lock they take around this call).
 */
SLUICE_API sluice_err sluice_service_reload_config(sluice_service *svc, sluice_config **current,
                                                   const char *path, const sluice_config_load_opts *opts,
                                                   sluice_config_log_fn log, void *user, char *errbuf,
                                                   size_t errlen);

/*
 * sluice_router_create_from_config - the tier router (sluice/router.h) of
 * a config: one tier per pool with a `tier:` key, its pool found in svc by
 * name, its tenants the names of that pool's `tenants:` list ("*" takes
 * unknown tenants).
 * Returns: SLUICE_OK and *out; SLUICE_ENOENT when no pool has a tier
 * ("no pool has a tier" in errbuf), or a tier's pool is not in svc;
 * sluice_router_create's errors (a loaded config has been validated, so
 * its tiers do not clash); SLUICE_EINVAL for NULL arguments.
 * Ownership: *out belongs to the caller; destroy it before the service
 * (it borrows the service's pools). cfg is only read during the call.
 * Thread-safety: safe; the service's pool list is read under its lock.
 */
SLUICE_API sluice_err sluice_router_create_from_config(const sluice_config *cfg, const sluice_service *svc,
                                                       sluice_router **out, char *errbuf, size_t errlen);

#endif /* SLUICE_CONFIG_H */

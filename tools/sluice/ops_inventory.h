/*
 * tools/sluice/ops_inventory.h - find worker-pool constructions in C
 * sources (`sluice inventory`).
 *
 * Ownership: the scan appends to a caller-owned ops_sites; free it with
 * ops_sites_free. No global state; thread-safe on distinct objects.
 */
#ifndef SLUICE_TOOLS_OPS_INVENTORY_H
#define SLUICE_TOOLS_OPS_INVENTORY_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ops_site {
    char *path;       /* as given / relative to the scanned root */
    unsigned line;    /* 1-based line of the call */
    const char *kind; /* sluice | c-thread-pool | glib | apr | libuv | pthread-loop | thread-loop */
    const char *call; /* the function called: "sluice_pool_create" */
    char *pool;       /* Sluice: the pool name when a literal `name = "..."` precedes the call */
    bool from_config; /* Sluice: the function fills the pool config from sluice.yaml */
    int declared;     /* Sluice with --config: 1 declared, 0 not, -1 unknown / not checked */
    char *via;        /* the wrapper macro the call goes through, or NULL */
    /* "high": a library's pool constructor; "medium": threads started in a
     * loop (a hand-made pool, or not); "low": the same function also joins
     * threads, so it is a fork-join batch rather than a pool. */
    const char *confidence;
} ops_site;

typedef struct ops_sites {
    ops_site *v;
    size_t n, cap;
} ops_sites;

/* Wrapper macros: a #define whose body calls a known constructor (or
 * another such macro) makes its expansion sites constructions too. */
typedef struct ops_macros ops_macros;
ops_macros *ops_macros_new(void);
void ops_macros_add_text(ops_macros *m, const char *text, size_t len); /* one pass over a text's #defines */
size_t ops_macros_count(const ops_macros *m);
void ops_macros_free(ops_macros *m);

/* Scan one file's text with its own macros; `path` is stored as given. */
void ops_inventory_scan_text(const char *path, const char *text, size_t len, ops_sites *out);
/* Scan one file's text with macros collected from every file. */
void ops_inventory_scan_text_macros(const char *path, const char *text, size_t len, const ops_macros *macros,
                                    ops_sites *out);

/*
 * ops_inventory_scan_path - scan a file, or every .c/.h/.cc/.cpp/.hpp file
 * under a directory (hidden entries and symbolic links skipped), with
 * paths shown relative to `root`'s parent as given (root/sub/file.c).
 * Returns 0, or -1 with errbuf naming the path that cannot be read.
 */
int ops_inventory_scan_path(const char *root, ops_sites *out, char *errbuf, size_t errlen);

/* Sort by path, then line, then kind. */
void ops_sites_sort(ops_sites *s);
void ops_sites_free(ops_sites *s);

#endif /* SLUICE_TOOLS_OPS_INVENTORY_H */

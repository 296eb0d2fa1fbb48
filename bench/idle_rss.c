/*
 * bench/idle_rss.c - sluice-idle-rss: where one idle worker's memory goes,
 * for Sluice and its peers side by side (issue 19, "RSS per idle worker").
 *
 * sluice-bench's `rss` workload gives one figure, the VmRSS growth of a
 * pool of K workers that each ran one task at the same moment and parked.
 * This program takes the same steps (K workers, a latch that holds every
 * task until all K run at once, then 200 ms for them to park) and breaks
 * the growth down, per worker:
 *
 *   stack      resident pages of the workers' stack mappings (mincore),
 *              and where in them: glibc puts the thread's descriptor
 *              (struct pthread) and its static TLS at the top of the
 *              mapping, the frames start below. "tp" is how far below the
 *              top the thread pointer is, "task" how deep the task's own
 *              frame was, "deepest" the lowest non-zero byte found in the
 *              resident pages (the high-water mark of the stack, give or
 *              take bytes that were written as zero), "room" what is left
 *              of the deepest page: how much deeper the worker could go
 *              before it touches one more page.
 *   heap       growth of the bytes malloc has handed out (mallinfo2
 *              uordblks: the pool's structures and glibc's per-thread DTV,
 *              which pthread_create callocs) and of the [heap] mapping's
 *              resident pages.
 *   other      the rest of the growth: anonymous mappings that are not
 *              stacks (Sluice's histogram slabs, malloc arenas of other
 *              threads, the queue's pages).
 *
 * Implementations: sluice (default config), sluice-notiming, libuv
 * (uv_queue_work), threads (bare pthread_create with default attributes,
 * each thread waiting on the latch: the floor any pool pays). Each runs in
 * its own forked process, so libuv's process-wide pool and glibc's caches
 * start cold for every row. For Sluice it also prints the worker slot's
 * size (sizeof(sluice__worker), from src/core/internal.h).
 *
 * A measurement tool, not a test: it prints figures and never fails on
 * one. Exit status: 0, or 1 if a pool could not be made or the latch
 * timed out (fewer than K tasks ran at once).
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core/internal.h"
#include "sluice/pool.h"

#define PAGE 4096u

/* ---- the latch and what each task records --------------------------------- */

typedef struct task_rec {
    uintptr_t tp; /* pthread_self(): the thread pointer (struct pthread) */
    uintptr_t sp; /* the address of a local in the task */
    pid_t tid;
} task_rec;

static task_rec *recs;
static unsigned nrecs;
static pthread_mutex_t latch_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t latch_cv = PTHREAD_COND_INITIALIZER;
static unsigned arrived, target;
static bool timed_out;

static __attribute__((noinline)) void latch(void)
{
    volatile char here = 0;
    pthread_mutex_lock(&latch_mu);
    unsigned i = arrived++;
    if (i < nrecs) {
        recs[i].tp = (uintptr_t)pthread_self();
        recs[i].sp = (uintptr_t)&here;
        recs[i].tid = gettid();
    }
    if (arrived >= target) {
        pthread_cond_broadcast(&latch_cv);
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    while (arrived < target && !timed_out) {
        if (pthread_cond_timedwait(&latch_cv, &latch_mu, &until) == ETIMEDOUT) {
            timed_out = true;
            pthread_cond_broadcast(&latch_cv);
        }
    }
    pthread_mutex_unlock(&latch_mu);
    (void)here;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- process-wide figures --------------------------------------------------- */

typedef struct snap {
    uint64_t vmrss_kib;
    uint64_t rssfile_kib;  /* RssFile: text and data pages of the program and its libraries */
    uint64_t heap_rss_kib; /* the [heap] mapping */
    uint64_t anon_rss_kib; /* every other mapping that is not file-backed */
    size_t malloc_used;    /* mallinfo2 uordblks + hblkhd */
} snap;

static const char *smaps_dir; /* --smaps DIR: copies of /proc/self/smaps before and after */

static void copy_smaps(const char *impl, const char *when)
{
    if (!smaps_dir) {
        return;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/%s.%s.smaps", smaps_dir, impl, when);
    FILE *in = fopen("/proc/self/smaps", "r");
    FILE *out = fopen(path, "w");
    char buf[4096];
    size_t n;
    while (in && out && (n = fread(buf, 1, sizeof buf, in)) > 0) {
        fwrite(buf, 1, n, out);
    }
    if (in) {
        fclose(in);
    }
    if (out) {
        fclose(out);
    }
}

static void take_snap(snap *s)
{
    memset(s, 0, sizeof *s);
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int kind = 0; /* 1 heap, 2 anonymous, 0 file */
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[8];
        unsigned long long off;
        char dev[16];
        unsigned long inode;
        int n = 0;
        if (sscanf(line, "%lx-%lx %7s %llx %15s %lu %n", &lo, &hi, perms, &off, dev, &inode, &n) >= 6) {
            const char *path = line + n;
            if (strncmp(path, "[heap]", 6) == 0) {
                kind = 1;
            } else if (inode == 0 && (path[0] == '\n' || path[0] == '\0' || path[0] == '[')) {
                kind = 2;
            } else {
                kind = 0;
            }
            continue;
        }
        unsigned long long kb;
        if (sscanf(line, "Rss: %llu kB", &kb) == 1) {
            if (kind == 1) {
                s->heap_rss_kib += kb;
            } else if (kind == 2) {
                s->anon_rss_kib += kb;
            }
        }
    }
    if (f) {
        fclose(f);
    }
    f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1) {
            s->vmrss_kib = kb;
        } else if (sscanf(line, "RssFile: %llu kB", &kb) == 1) {
            s->rssfile_kib = kb;
        }
    }
    if (f) {
        fclose(f);
    }
    struct mallinfo2 mi = mallinfo2();
    s->malloc_used = mi.uordblks + mi.hblkhd;
}

/* The mapping [lo, hi) that holds addr, from /proc/self/maps. */
static bool mapping_of(uintptr_t addr, uintptr_t *lo_out, uintptr_t *hi_out)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    bool found = false;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && addr >= lo && addr < hi) {
            *lo_out = lo;
            *hi_out = hi;
            found = true;
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    return found;
}

/* ---- the implementations ------------------------------------------------------ */

static int sl_task(void *arg)
{
    (void)arg;
    latch();
    return 0;
}

static sluice_pool *sl_pool;

static int sl_start(unsigned k, bool timing)
{
    sluice_pool_config cfg;
    sluice_pool_config_init(&cfg);
    cfg.name = "idle";
    cfg.workers = k;
    cfg.min_workers = k;
    cfg.prewarm = true;
    cfg.queue_capacity = k < 65536 ? 65536 : k; /* sluice-bench's rss workload */
    cfg.timing_disabled = !timing;
    char ebuf[256] = "";
    sluice_err e = sluice_pool_create(&cfg, &sl_pool, ebuf, sizeof ebuf);
    if (e != SLUICE_OK) {
        fprintf(stderr, "sluice_pool_create: %s: %s\n", sluice_err_name(e), ebuf);
        return -1;
    }
    for (unsigned i = 0; i < k; i++) {
        if ((e = sluice_pool_submit(sl_pool, sl_task, NULL)) != SLUICE_OK) {
            fprintf(stderr, "submit: %s\n", sluice_err_name(e));
            return -1;
        }
    }
    return 0;
}

static void sl_stop(void)
{
    sluice_pool_destroy(sl_pool);
}

static void uv_task(uv_work_t *req)
{
    (void)req;
    latch();
}

static uv_loop_t uvloop;
static uv_work_t *uvreqs;

static int uvp_start(unsigned k)
{
    char buf[16];
    snprintf(buf, sizeof buf, "%u", k);
    setenv("UV_THREADPOOL_SIZE", buf, 1);
    if (uv_loop_init(&uvloop) != 0) {
        return -1;
    }
    uvreqs = calloc(k, sizeof *uvreqs);
    if (!uvreqs) {
        return -1;
    }
    for (unsigned i = 0; i < k; i++) {
        if (uv_queue_work(&uvloop, &uvreqs[i], uv_task, NULL) != 0) {
            return -1;
        }
    }
    return 0;
}

static void uvp_stop(void)
{
    uv_run(&uvloop, UV_RUN_DEFAULT);
    uv_loop_close(&uvloop);
    free(uvreqs);
}

static pthread_t *bare;
static unsigned nbare;

static void *bare_main(void *arg)
{
    (void)arg;
    latch();
    pthread_mutex_lock(&latch_mu);
    while (arrived != UINT32_MAX) { /* parked until stop */
        pthread_cond_wait(&latch_cv, &latch_mu);
    }
    pthread_mutex_unlock(&latch_mu);
    return NULL;
}

static int bare_start(unsigned k)
{
    bare = calloc(k, sizeof *bare);
    if (!bare) {
        return -1;
    }
    for (nbare = 0; nbare < k; nbare++) {
        if (pthread_create(&bare[nbare], NULL, bare_main, NULL) != 0) {
            return -1;
        }
    }
    return 0;
}

static void bare_stop(void)
{
    pthread_mutex_lock(&latch_mu);
    arrived = UINT32_MAX;
    pthread_cond_broadcast(&latch_cv);
    pthread_mutex_unlock(&latch_mu);
    for (unsigned i = 0; i < nbare; i++) {
        pthread_join(bare[i], NULL);
    }
    free(bare);
}

/* ---- one measurement ------------------------------------------------------------ */

static int measure(const char *impl, unsigned k)
{
    recs = calloc(k, sizeof *recs);
    if (!recs) {
        return 1;
    }
    nrecs = k;
    target = k;
    snap before, after;
    copy_smaps(impl, "before");
    take_snap(&before);
    int rc;
    if (strcmp(impl, "sluice") == 0) {
        rc = sl_start(k, true);
    } else if (strcmp(impl, "sluice-notiming") == 0) {
        rc = sl_start(k, false);
    } else if (strcmp(impl, "libuv") == 0) {
        rc = uvp_start(k);
    } else if (strcmp(impl, "threads") == 0) {
        rc = bare_start(k);
    } else {
        fprintf(stderr, "unknown implementation %s\n", impl);
        return 2;
    }
    if (rc != 0) {
        fprintf(stderr, "%s: could not start %u workers\n", impl, k);
        return 1;
    }
    /* Every task has run its latch, and the workers have parked. */
    for (int i = 0; i < 30000; i++) {
        pthread_mutex_lock(&latch_mu);
        bool all = arrived >= target || timed_out;
        pthread_mutex_unlock(&latch_mu);
        if (all) {
            break;
        }
        sleep_ms(1);
    }
    sleep_ms(200);
    take_snap(&after);
    copy_smaps(impl, "after");

    /* Per stack: resident pages (mincore), the thread pointer's and the
     * task's depth below the mapping's top, and the deepest non-zero byte. */
    double pages = 0, tp_depth = 0, task_depth = 0, deepest = 0, room = 0;
    unsigned measured = 0, max_pages = 0, min_pages = UINT32_MAX;
    unsigned over2 = 0;    /* stacks with more than two resident pages */
    double over2_deep = 0; /* their mean deepest byte */
    unsigned char *vec = NULL;
    size_t veclen = 0;
    for (unsigned i = 0; i < k && i < arrived; i++) {
        uintptr_t lo, hi;
        if (!recs[i].sp || !mapping_of(recs[i].sp, &lo, &hi)) {
            continue;
        }
        size_t np = (hi - lo) / PAGE;
        if (np > veclen) {
            free(vec);
            vec = malloc(np);
            veclen = vec ? np : 0;
            if (!vec) {
                break;
            }
        }
        if (mincore((void *)lo, hi - lo, vec) != 0) {
            continue;
        }
        unsigned res = 0;
        uintptr_t low = hi;
        for (size_t pg = 0; pg < np; pg++) {
            if (vec[pg] & 1) {
                res++;
                const unsigned char *b = (const unsigned char *)(lo + pg * PAGE);
                if (lo + pg * PAGE < low) {
                    for (unsigned j = 0; j < PAGE; j++) {
                        if (b[j]) {
                            if (lo + pg * PAGE + j < low) {
                                low = lo + pg * PAGE + j;
                            }
                            break;
                        }
                    }
                }
            }
        }
        pages += res;
        max_pages = res > max_pages ? res : max_pages;
        if (res > 2) {
            if (getenv("IDLE_RSS_DEBUG")) {
                char path[64], comm[32] = "";
                snprintf(path, sizeof path, "/proc/self/task/%d/comm", (int)recs[i].tid);
                FILE *cf = fopen(path, "r");
                if (cf && fgets(comm, sizeof comm, cf)) {
                    comm[strcspn(comm, "\n")] = 0;
                }
                if (cf) {
                    fclose(cf);
                }
                fprintf(stderr, "3+ pages: task %u thread %s deepest %lu\n", i, comm,
                        (unsigned long)(hi - low));
            }
            over2++;
            over2_deep += (double)(hi - low);
        }
        min_pages = res < min_pages ? res : min_pages;
        tp_depth += (double)(hi - recs[i].tp);
        task_depth += (double)(hi - recs[i].sp);
        deepest += (double)(hi - low);
        room += (double)((low - lo) % PAGE);
        measured++;
    }
    free(vec);

    uint64_t grow = after.vmrss_kib > before.vmrss_kib ? after.vmrss_kib - before.vmrss_kib : 0;
    double stack_kib = pages * PAGE / 1024.0;
    double heap_rss =
        after.heap_rss_kib > before.heap_rss_kib ? (double)(after.heap_rss_kib - before.heap_rss_kib) : 0;
    double anon_all =
        after.anon_rss_kib > before.anon_rss_kib ? (double)(after.anon_rss_kib - before.anon_rss_kib) : 0;
    double other = anon_all - stack_kib;
    double used =
        after.malloc_used > before.malloc_used ? (double)(after.malloc_used - before.malloc_used) : 0;
    double m = measured ? measured : 1;

    double file =
        after.rssfile_kib > before.rssfile_kib ? (double)(after.rssfile_kib - before.rssfile_kib) : 0;
    printf("%-16s %8.2f %7.2f %5.2f %4u-%-3u %7.0f %6.0f %8.0f %6.0f %8.0f %8.2f %7.2f %6.2f\n", impl,
           (double)grow / k, stack_kib / m, pages / m, min_pages == UINT32_MAX ? 0 : min_pages, max_pages,
           tp_depth / m, task_depth / m, deepest / m, room / m, used / k, heap_rss / k, other / k, file / k);
    if (over2) {
        printf("%-16s %u of %u stacks have more than 2 pages (deepest byte %.0f below the top, mean)\n", "",
               over2, measured, over2_deep / over2);
    }
    if (strncmp(impl, "sluice", 6) == 0) {
        printf("%-16s worker slot: %zu bytes (allocated as %zu: cache-line multiple)\n", "",
               sizeof(sluice__worker),
               (sizeof(sluice__worker) + SLUICE__CACHELINE - 1) / SLUICE__CACHELINE * SLUICE__CACHELINE);
    }
    fflush(stdout);
    int status = timed_out || measured < k ? 1 : 0;
    if (timed_out) {
        fprintf(stderr, "%s: only %u of %u tasks ran at once\n", impl, arrived, k);
    }
    if (strcmp(impl, "libuv") == 0) {
        uvp_stop();
    } else if (strcmp(impl, "threads") == 0) {
        bare_stop();
    } else {
        sl_stop();
    }
    return status;
}

int main(int argc, char **argv)
{
    unsigned k = 1000;
    const char *impls = "threads,libuv,sluice,sluice-notiming";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            k = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--impl") == 0 && i + 1 < argc) {
            impls = argv[++i];
        } else if (strcmp(argv[i], "--smaps") == 0 && i + 1 < argc) {
            smaps_dir = argv[++i];
        } else {
            fprintf(stderr,
                    "usage: sluice-idle-rss [--workers K] [--impl threads,libuv,sluice,sluice-notiming] "
                    "[--smaps DIR]\n"
                    "Breaks the RSS of K idle workers (each ran one task, all K at once, then parked)\n"
                    "down per worker; see the comment at the top of bench/idle_rss.c. --smaps DIR also\n"
                    "writes each implementation's /proc/self/smaps before and after into DIR.\n");
            return 2;
        }
    }
    if (k == 0 || k > 1024) {
        fprintf(stderr, "--workers: 1..1024 (libuv's cap), got %u\n", k);
        return 2;
    }
    printf("per idle worker, K = %u (KiB unless said; depths in bytes below the stack mapping's top)\n", k);
    printf("%-16s %8s %7s %5s %7s %7s %6s %8s %6s %8s %8s %7s %6s\n", "implementation", "VmRSS", "stack",
           "pages", "min-max", "tp", "task", "deepest", "room", "malloc B", "[heap]", "other", "file");
    int worst = 0;
    char *list = strdup(impls);
    for (char *save = NULL, *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            _exit(measure(name, k));
        }
        int st = 0;
        if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "%s: measurement failed\n", name);
            worst = 1;
        }
    }
    free(list);
    return worst;
}

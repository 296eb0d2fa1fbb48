/*
 * tools/sluice/demo_spool.c - `sluice demo --spool FILE`: handed-back
 * notifications survive a crash, and the next start replays them.
 *
 * The promise (docs/service.md, "What a service must persist"): a
 * notification the demo counts as handed back is in FILE, even when the
 * process is killed with SIGKILL right after; the next start with the same
 * --spool submits it again. Delivery is at least once: a notification may
 * be replayed after it was delivered (a crash between its delivery and the
 * removal of the replay file), never lost.
 *
 * Files:
 *   FILE            appended while the demo runs: one line per notification
 *                   handed back ("notification POOL ID\n"), written with one
 *                   write() on an O_APPEND descriptor before the abandon
 *                   handler counts it. A process killed after write()
 *                   returned leaves the line in the page cache, which the
 *                   kernel writes out: SIGKILL cannot lose it. Against a
 *                   power loss the file is fdatasync'ed after the drain
 *                   (and when a replay completes); syncing every line
 *                   would stretch a drain that hands back thousands of
 *                   tasks past its budget.
 *   FILE.replaying  what this run took over from the previous one and is
 *                   replaying; removed (after FILE is synced) once every
 *                   replayed notification reached an outcome: delivered,
 *                   failed, panicked, or handed back again (then it is in
 *                   FILE once more).
 *
 * Start (demo_spool_open), each step safe to crash after:
 *   1. read FILE.replaying (a replay that did not finish) and FILE; a line
 *      that does not parse (a torn last line) is skipped and counted;
 *      duplicates (a crash between steps 2 and 3) are merged;
 *   2. write them all to FILE.replaying.tmp, fsync, rename over
 *      FILE.replaying, fsync the directory;
 *   3. truncate FILE (its lines are in FILE.replaying now) and fsync it.
 * Then demo_spool_replay submits each one to the pool of its name, or
 * adds it to that pool's batcher when the pool is batched (a pool that is
 * no longer configured keeps it in FILE, with a warning).
 *
 * Thread-safety: put and replayed_done run on workers and the draining
 * thread; counters are atomics and each line is one write() (O_APPEND
 * writes of one line do not interleave). Open, replay and close run on
 * the main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"

typedef struct spool_entry {
    char pool[SLUICE_POOL_NAME_MAX + 1];
    uint64_t id;
} spool_entry;

struct demo_spool {
    char path[PATH_MAX];
    char replay_path[PATH_MAX + 16];
    int fd; /* FILE, O_APPEND */
    spool_entry *pending;
    size_t pending_count;
    size_t skipped; /* lines that did not parse */
    atomic_uint_fast64_t written;
    atomic_uint_fast64_t write_failures;
    /* Replayed notifications without an outcome yet, plus one held by the
     * replay loop until it has submitted them all. */
    atomic_uint_fast64_t outstanding;
    atomic_bool replay_done;
};

/* At most this many lines are taken over (a bound on memory). */
#define SPOOL_MAX_ENTRIES 4000000

static int cmp_entry(const void *a, const void *b)
{
    const spool_entry *x = a, *y = b;
    int c = strcmp(x->pool, y->pool);
    return c ? c : (x->id < y->id ? -1 : x->id > y->id);
}

/* "notification POOL ID" -> entry; false when the line is not that. */
static bool parse_line(const char *line, spool_entry *e)
{
    static const char tag[] = "notification ";
    if (strncmp(line, tag, sizeof tag - 1) != 0) {
        return false;
    }
    const char *s = line + sizeof tag - 1;
    size_t n = strcspn(s, " ");
    if (n == 0 || n > SLUICE_POOL_NAME_MAX || s[n] != ' ') {
        return false;
    }
    memcpy(e->pool, s, n);
    e->pool[n] = '\0';
    s += n + 1;
    if (*s < '0' || *s > '9') {
        return false;
    }
    char *end;
    errno = 0;
    unsigned long long id = strtoull(s, &end, 10);
    if (errno || *end != '\0' || id > DEMO_NOTE_ID_MAX) {
        return false;
    }
    e->id = id;
    return true;
}

/* Append the complete lines of `path` (absent is fine) to sp->pending. */
static int read_spool(struct demo_spool *sp, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) {
            return 0;
        }
        snprintf(err, errlen, "--spool: cannot read %s: %s", path, strerror(errno));
        return 1;
    }
    char line[256];
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        if (len == 0 || line[len - 1] != '\n') {
            /* A torn last line (or an absurdly long one): never a
             * complete write, so never counted as handed back. */
            sp->skipped++;
            if (len == sizeof line - 1) {
                int c;
                while ((c = fgetc(f)) != EOF && c != '\n') {
                }
            }
            continue;
        }
        line[len - 1] = '\0';
        spool_entry e;
        if (!parse_line(line, &e)) {
            sp->skipped++;
            continue;
        }
        if (sp->pending_count == SPOOL_MAX_ENTRIES) {
            fclose(f);
            snprintf(err, errlen, "--spool: %s holds more than %d notifications; replay it in parts", path,
                     SPOOL_MAX_ENTRIES);
            return 1;
        }
        if (sp->pending_count == cap) {
            cap = cap ? cap * 2 : 1024;
            spool_entry *grown = realloc(sp->pending, cap * sizeof *grown);
            if (!grown) {
                fclose(f);
                snprintf(err, errlen, "--spool: out of memory reading %s", path);
                return 1;
            }
            sp->pending = grown;
        }
        sp->pending[sp->pending_count++] = e;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "--spool: cannot read %s: %s", path, strerror(errno));
        return 1;
    }
    return 0;
}

static bool write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        buf += w;
        len -= (size_t)w;
    }
    return true;
}

static void sync_dir_of(const char *path)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

int demo_spool_open(demo *d, const char *path, char *err, size_t errlen)
{
    struct demo_spool *sp = calloc(1, sizeof *sp);
    if (!sp) {
        snprintf(err, errlen, "--spool: out of memory");
        return 1;
    }
    sp->fd = -1;
    if (snprintf(sp->path, sizeof sp->path, "%s", path) >= (int)sizeof sp->path) {
        snprintf(err, errlen, "--spool: the path is too long");
        free(sp);
        return 1;
    }
    snprintf(sp->replay_path, sizeof sp->replay_path, "%s.replaying", path);
    /* 1. Take over what is left. */
    if (read_spool(sp, sp->replay_path, err, errlen) || read_spool(sp, sp->path, err, errlen)) {
        free(sp->pending);
        free(sp);
        return 1;
    }
    if (sp->pending_count > 1) {
        qsort(sp->pending, sp->pending_count, sizeof sp->pending[0], cmp_entry);
        size_t out = 1;
        for (size_t i = 1; i < sp->pending_count; i++) {
            if (cmp_entry(&sp->pending[i], &sp->pending[out - 1]) != 0) {
                sp->pending[out++] = sp->pending[i];
            }
        }
        sp->pending_count = out;
    }
    /* 2. Everything taken over goes to FILE.replaying, atomically. */
    if (sp->pending_count) {
        char tmp[PATH_MAX + 32];
        snprintf(tmp, sizeof tmp, "%s.replaying.tmp", path);
        int tfd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        bool ok = tfd >= 0;
        for (size_t i = 0; ok && i < sp->pending_count; i++) {
            char line[128];
            int n = snprintf(line, sizeof line, "notification %s %" PRIu64 "\n", sp->pending[i].pool,
                             sp->pending[i].id);
            ok = write_all(tfd, line, (size_t)n);
        }
        ok = ok && fsync(tfd) == 0;
        int e = errno;
        if (tfd >= 0) {
            close(tfd);
        }
        if (!ok || rename(tmp, sp->replay_path) != 0) {
            e = ok ? errno : e;
            snprintf(err, errlen, "--spool: cannot write %s: %s (nothing was replayed or removed)", tmp,
                     strerror(e));
            unlink(tmp);
            free(sp->pending);
            free(sp);
            return 1;
        }
        sync_dir_of(sp->replay_path);
    } else {
        unlink(sp->replay_path); /* an empty leftover, if any */
    }
    /* 3. A fresh FILE: its old lines are in FILE.replaying. */
    sp->fd = open(sp->path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (sp->fd < 0) {
        snprintf(err, errlen, "--spool: cannot open %s for writing: %s", sp->path, strerror(errno));
        free(sp->pending);
        free(sp);
        return 1;
    }
    fsync(sp->fd);
    sync_dir_of(sp->path);
    atomic_store(&sp->outstanding, 1); /* the replay loop's own hold */
    d->spool = sp;
    /* Ids of this run start above any taken over, and above the last run's
     * (the clock in the high bits). */
    uint64_t next = ((uint64_t)time(NULL) << 20) & DEMO_NOTE_ID_MAX;
    for (size_t i = 0; i < sp->pending_count; i++) {
        if (sp->pending[i].id >= next) {
            next = sp->pending[i].id + 1;
        }
    }
    atomic_store(&d->next_id, next);
    return 0;
}

bool demo_spool_put(demo *d, void *note)
{
    struct demo_spool *sp = d->spool;
    char line[128];
    int n = snprintf(line, sizeof line, "notification %s %" PRIu64 "\n", d->pools[DEMO_NOTE_POOL(note)].name,
                     DEMO_NOTE_ID(note));
    if (!write_all(sp->fd, line, (size_t)n)) {
        if (atomic_fetch_add(&sp->write_failures, 1) == 0) {
            demo_log(d, "spool %s: cannot write a handed-back notification: %s (the run will fail)", sp->path,
                     strerror(errno));
        }
        return false;
    }
    atomic_fetch_add(&sp->written, 1);
    return true;
}

/* Put back a notification taken over but not replayed (its pool is gone,
 * or its submit was refused). */
static void keep(demo *d, const spool_entry *e)
{
    struct demo_spool *sp = d->spool;
    char line[128];
    int n = snprintf(line, sizeof line, "notification %s %" PRIu64 "\n", e->pool, e->id);
    if (write_all(sp->fd, line, (size_t)n)) {
        atomic_fetch_add(&sp->written, 1);
    } else if (atomic_fetch_add(&sp->write_failures, 1) == 0) {
        demo_log(d, "spool %s: cannot write: %s (the run will fail)", sp->path, strerror(errno));
    }
}

void demo_spool_replayed_done(demo *d)
{
    struct demo_spool *sp = d->spool;
    if (!sp || atomic_fetch_sub(&sp->outstanding, 1) != 1) {
        return;
    }
    /* Every replayed notification has an outcome; those handed back again
     * are in FILE: make that durable before the replay file goes. */
    if (fdatasync(sp->fd) == 0 && (unlink(sp->replay_path) == 0 || errno == ENOENT)) {
        sync_dir_of(sp->replay_path);
        atomic_store(&sp->replay_done, true);
    }
}

void demo_spool_replay(demo *d)
{
    struct demo_spool *sp = d->spool;
    if (!sp) {
        return;
    }
    uint64_t replayed = 0, kept = 0;
    for (size_t i = 0; i < sp->pending_count; i++) {
        const spool_entry *e = &sp->pending[i];
        size_t idx = d->pool_count;
        for (size_t j = 0; j < d->pool_count; j++) {
            if (strcmp(d->pools[j].name, e->pool) == 0) {
                idx = j;
                break;
            }
        }
        if (idx == d->pool_count) {
            keep(d, e);
            kept++;
            continue;
        }
        demo_pool *p = &d->pools[idx];
        sluice_submit_opts so = {.label = p->name};
        atomic_fetch_add(&sp->outstanding, 1);
        void *note = DEMO_NOTE(idx, true, e->id);
        /* A batched pool sends replayed notifications in batches too. */
        sluice_err r = p->batcher ? sluice_batcher_add(p->batcher, note)
                                  : sluice_pool_submit_ex(p->pool, demo_task, note, &so);
        if (r == SLUICE_OK) {
            atomic_fetch_add(&p->accepted, 1);
            atomic_fetch_add(&p->replayed, 1);
            replayed++;
        } else {
            atomic_fetch_sub(&sp->outstanding, 1);
            keep(d, e);
            kept++;
        }
    }
    if (sp->pending_count || sp->skipped) {
        demo_log(d,
                 "spool %s: replaying %llu notifications (%llu kept in the spool: pool not configured or "
                 "submit refused; %zu unreadable lines skipped)",
                 sp->path, (unsigned long long)replayed, (unsigned long long)kept, sp->skipped);
    }
    free(sp->pending);
    sp->pending = NULL;
    sp->pending_count = 0;
    demo_spool_replayed_done(d); /* the loop's own hold */
}

bool demo_spool_close(demo *d, FILE *out)
{
    struct demo_spool *sp = d->spool;
    if (!sp) {
        return true;
    }
    bool synced = fdatasync(sp->fd) == 0;
    close(sp->fd);
    uint64_t failures = atomic_load(&sp->write_failures);
    fprintf(out, "spool %s: %llu handed-back notifications written%s%s\n", sp->path,
            (unsigned long long)atomic_load(&sp->written), synced ? " and synced" : " (sync FAILED)",
            failures ? "; WRITE FAILURES: some handed-back notifications are not in it" : "");
    if (!atomic_load(&sp->replay_done)) {
        fprintf(out,
                "spool %s kept: %llu replayed notifications have no outcome yet; the next start replays "
                "them again\n",
                sp->replay_path, (unsigned long long)atomic_load(&sp->outstanding));
    }
    d->spool = NULL;
    free(sp->pending);
    free(sp);
    return failures == 0 && synced;
}

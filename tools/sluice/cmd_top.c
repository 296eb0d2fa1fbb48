/*
 * tools/sluice/cmd_top.c - `sluice top [URL ...]`: the pools of one or
 * many admin servers in a terminal, like htop for worker pools.
 *
 * Purpose. During an incident, one screen that says which pool of which
 * instance is in trouble: one row per pool per instance, the most
 * saturated first, coloured by state, with a drill-down into a pool's
 * workers. Many URLs make it a fleet view. `--once`, or a stdout that is
 * not a terminal, prints the same rows once as a plain table for scripts.
 *
 * Design. Every interval (1 s) each endpoint's /debug/pools is fetched
 * (top_http.c: HTTP/1.0 over a fresh connection, bounded by a timeout)
 * and parsed with jansson; the rows keep the little history the view
 * needs (the finished count of the previous look for tasks/s, the time
 * of the last progress for the stalled test). An endpoint that does not
 * answer keeps its last rows, marked stale with the reason and age, and
 * is tried again every interval. Fetches run on the UI thread one
 * endpoint after another, so a fleet of N unreachable hosts costs up to
 * N timeouts per refresh (keys wait meanwhile): use numeric loopback or
 * LAN addresses.
 *
 * The states are the web console's (src/admin/console/console.html):
 * draining; stalled (tasks running, none finished for 5 s, the oldest
 * running for 5 s); saturated (all K running and the queue full, as
 * /health/ready); else healthy. Under --once the "none finished" window
 * is the one interval between its two looks.
 *
 * The columns are one table (COLUMNS, indexed by col_id): the header, the
 * plain table, the sort keys and the formatting all walk it.
 *
 * Threads: one. Without ncurses or jansson at build time the command is
 * not built (commands.def).
 */
#if defined(SLUICE_HAVE_TOP)

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <locale.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curses.h>
#include <jansson.h>

#include "sluice/config.h"

#include "commands.h"
#include "top.h"

#define TOP_MAX_ENDPOINTS 64
#define TOP_MAX_POOLS 64
#define TOP_DEFAULT_PORT 9464
#define TOP_STALL_MS 5000
#define TOP_TIMEOUT_MS 1000

/* ---- the model ------------------------------------------------------------------ */

typedef enum pool_state {
    ST_HEALTHY,
    ST_DRAINING,
    ST_SATURATED,
    ST_STALLED,
    ST_STALE, /* the endpoint stopped answering: these are its last numbers */
    ST_DOWN,  /* the endpoint never answered */
    ST__COUNT
} pool_state;

static const char *const STATE_NAMES[ST__COUNT] = {"healthy", "draining", "saturated",
                                                   "stalled", "stale",    "down"};
/* Sorted by "state", the worst first. */
static const int STATE_RANK[ST__COUNT] = {0, 2, 3, 4, 1, 5};

typedef struct pool_row {
    char name[72];
    unsigned running, capacity, workers, idle, waiting;
    uint64_t queue_depth, queue_capacity;
    bool draining;
    uint64_t finished, failed, panicked, dropped, shed, rejected;
    double oldest_running_s; /* the longest-running task now, seconds */
    double rate;             /* tasks finished per second, between the last two looks */
    long long seen_ms;       /* time of the last look */
    long long progress_ms;   /* when `finished` last grew (or the first look) */
    bool have_rate;
    pool_state state;
} pool_row;

typedef struct endpoint {
    char url[300]; /* as shown: host:port */
    char host[256];
    unsigned port;
    bool ever_ok;
    bool stale;
    long long last_ok_ms;
    char err[256];
    pool_row pools[TOP_MAX_POOLS];
    size_t pool_count;
    json_t *doc; /* the last /debug/pools document (for the workers view) */
} endpoint;

typedef struct top {
    endpoint eps[TOP_MAX_ENDPOINTS];
    size_t ep_count;
    const char *token;
    unsigned interval_ms;
    long long stall_window_ms;
} top;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t jnum(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    double d = json_number_value(v);
    return d > 0 ? (uint64_t)d : 0;
}

static pool_state judge(const pool_row *p, long long now, long long stall_window_ms)
{
    if (p->draining) {
        return ST_DRAINING;
    }
    if (p->running > 0 && now - p->progress_ms >= stall_window_ms &&
        p->oldest_running_s * 1000 >= TOP_STALL_MS) {
        return ST_STALLED;
    }
    if (p->capacity > 0 && p->running >= p->capacity && p->queue_depth >= p->queue_capacity) {
        return ST_SATURATED;
    }
    return ST_HEALTHY;
}

/* Fold one /debug/pools document into the endpoint's rows. */
static bool absorb(top *t, endpoint *e, json_t *doc, long long now)
{
    json_t *pools = json_object_get(doc, "pools");
    if (!json_is_array(pools)) {
        snprintf(e->err, sizeof e->err, "/debug/pools has no \"pools\" array");
        return false;
    }
    pool_row next[TOP_MAX_POOLS];
    size_t n = 0;
    size_t i;
    json_t *jp;
    json_array_foreach(pools, i, jp)
    {
        if (n == TOP_MAX_POOLS) {
            break;
        }
        const char *name = json_string_value(json_object_get(jp, "name"));
        json_t *st = json_object_get(jp, "stats");
        if (!name || !json_is_object(st)) {
            continue;
        }
        pool_row *p = &next[n++];
        memset(p, 0, sizeof *p);
        snprintf(p->name, sizeof p->name, "%s", name);
        p->running = (unsigned)jnum(st, "running");
        p->capacity = (unsigned)jnum(st, "capacity");
        p->workers = (unsigned)jnum(st, "workers");
        p->idle = (unsigned)jnum(st, "idle");
        p->waiting = (unsigned)jnum(st, "waiting");
        p->queue_depth = jnum(st, "queue_depth");
        p->queue_capacity = jnum(st, "queue_capacity");
        p->draining = json_is_true(json_object_get(st, "draining"));
        p->finished = jnum(st, "completed") + jnum(st, "failed") + jnum(st, "panicked");
        p->failed = jnum(st, "failed");
        p->panicked = jnum(st, "panicked");
        p->dropped = jnum(st, "dropped");
        p->shed = jnum(st, "shed");
        p->rejected = jnum(st, "rejected");
        size_t k;
        json_t *w;
        json_array_foreach(json_object_get(jp, "workers"), k, w)
        {
            const char *ws = json_string_value(json_object_get(w, "state"));
            double age = json_number_value(json_object_get(w, "for_seconds"));
            if (ws && strcmp(ws, "running") == 0 && age > p->oldest_running_s) {
                p->oldest_running_s = age;
            }
        }
        p->seen_ms = now;
        p->progress_ms = now;
        /* The history of the same pool at the previous look. */
        for (size_t j = 0; j < e->pool_count; j++) {
            const pool_row *o = &e->pools[j];
            if (strcmp(o->name, p->name) != 0) {
                continue;
            }
            if (now > o->seen_ms && p->finished >= o->finished) {
                p->rate = (double)(p->finished - o->finished) * 1000.0 / (double)(now - o->seen_ms);
                p->have_rate = true;
            }
            p->progress_ms = p->finished != o->finished ? now : o->progress_ms;
            break;
        }
        p->state = judge(p, now, t->stall_window_ms);
    }
    memcpy(e->pools, next, n * sizeof next[0]);
    e->pool_count = n;
    return true;
}

static void fetch(top *t, endpoint *e)
{
    top_reply r;
    char err[256];
    long long now = now_ms();
    bool ok = false;
    if (top_http_get(e->host, e->port, "/debug/pools", t->token, TOP_TIMEOUT_MS, &r, err, sizeof err) != 0) {
        snprintf(e->err, sizeof e->err, "%s", err);
    } else if (r.status != 200) {
        snprintf(e->err, sizeof e->err, "/debug/pools answered %d%s", r.status,
                 r.status == 401 ? " (needs a token: --token-file or SLUICE_ADMIN_TOKEN)" : "");
        top_reply_free(&r);
    } else {
        json_error_t je;
        json_t *doc = json_loadb(r.body, r.body_len, 0, &je);
        top_reply_free(&r);
        if (!doc) {
            snprintf(e->err, sizeof e->err, "/debug/pools: bad JSON at line %d: %s", je.line, je.text);
        } else if (absorb(t, e, doc, now)) {
            json_decref(e->doc);
            e->doc = doc;
            ok = true;
        } else {
            json_decref(doc);
        }
    }
    if (ok) {
        e->ever_ok = true;
        e->stale = false;
        e->last_ok_ms = now;
        e->err[0] = '\0';
    } else {
        e->stale = true;
        for (size_t i = 0; i < e->pool_count; i++) {
            e->pools[i].state = ST_STALE;
            e->pools[i].have_rate = false;
        }
    }
}

static void fetch_all(top *t)
{
    for (size_t i = 0; i < t->ep_count; i++) {
        fetch(t, &t->eps[i]);
    }
}

/* ---- rows and columns ------------------------------------------------------------ */

typedef struct view_row {
    endpoint *ep;
    pool_row *pool; /* NULL: the endpoint never answered */
} view_row;

typedef enum col_id {
    COL_INSTANCE,
    COL_POOL,
    COL_STATE,
    COL_RUN,
    COL_SAT,
    COL_QUEUE,
    COL_WAITING,
    COL_RATE,
    COL_OLDEST,
    COL_FAILED,
    COL_PANICKED,
    COL_DROPPED,
    COL_SHED,
    COL_REJECTED,
    COL__COUNT
} col_id;

typedef struct column {
    const char *title;
    int width;
    bool text; /* left-aligned, sorted as text, ascending by default */
    const char *help;
} column;

static const column COLUMNS[COL__COUNT] = {
    [COL_INSTANCE] = {"INSTANCE", 21, true, "host:port of the admin server"},
    [COL_POOL] = {"POOL", 14, true, "pool name"},
    [COL_STATE] = {"STATE", 9, true, "healthy, saturated, stalled, draining; stale/down: no answer"},
    [COL_RUN] = {"RUN/K", 11, false, "tasks running / K"},
    [COL_SAT] = {"SAT%", 6, false, "running / K; sorted with the queue fill as tie-break"},
    [COL_QUEUE] = {"QUEUE", 13, false, "queue depth / capacity"},
    [COL_WAITING] = {"WAIT", 5, false, "submitters blocked for queue space"},
    [COL_RATE] = {"TASKS/S", 8, false, "tasks finished per second"},
    [COL_OLDEST] = {"OLDEST", 7, false, "the longest-running task, seconds"},
    [COL_FAILED] = {"FAILED", 8, false, "counter"},
    [COL_PANICKED] = {"PANICKED", 8, false, "counter"},
    [COL_DROPPED] = {"DROPPED", 8, false, "counter"},
    [COL_SHED] = {"SHED", 8, false, "counter"},
    [COL_REJECTED] = {"REJECTED", 8, false, "counter"},
};

static pool_state row_state(const view_row *r)
{
    return r->pool ? r->pool->state : ST_DOWN;
}

/* The counter a counter column shows (FAILED .. REJECTED), NULL for the
 * others: the one place that maps those columns to their fields. */
static const uint64_t *counter_of(const pool_row *p, col_id c)
{
    switch (c) {
    case COL_FAILED:
        return &p->failed;
    case COL_PANICKED:
        return &p->panicked;
    case COL_DROPPED:
        return &p->dropped;
    case COL_SHED:
        return &p->shed;
    case COL_REJECTED:
        return &p->rejected;
    case COL_INSTANCE:
    case COL_POOL:
    case COL_STATE:
    case COL_RUN:
    case COL_SAT:
    case COL_QUEUE:
    case COL_WAITING:
    case COL_RATE:
    case COL_OLDEST:
    case COL__COUNT:
        break;
    }
    return NULL;
}

static void cell(const view_row *r, col_id c, char *buf, size_t n)
{
    const pool_row *p = r->pool;
    if (!p && c != COL_INSTANCE && c != COL_STATE) {
        snprintf(buf, n, "%s", c == COL_POOL ? "-" : "");
        return;
    }
    switch (c) {
    case COL_INSTANCE:
        snprintf(buf, n, "%s", r->ep->url);
        break;
    case COL_POOL:
        snprintf(buf, n, "%s", p->name);
        break;
    case COL_STATE:
        snprintf(buf, n, "%s", STATE_NAMES[row_state(r)]);
        break;
    case COL_RUN:
        snprintf(buf, n, "%u/%u", p->running, p->capacity);
        break;
    case COL_SAT:
        snprintf(buf, n, "%.0f", p->capacity ? 100.0 * p->running / p->capacity : 0.0);
        break;
    case COL_QUEUE:
        snprintf(buf, n, "%" PRIu64 "/%" PRIu64, p->queue_depth, p->queue_capacity);
        break;
    case COL_WAITING:
        snprintf(buf, n, "%u", p->waiting);
        break;
    case COL_RATE:
        if (p->have_rate) {
            snprintf(buf, n, "%.1f", p->rate);
        } else {
            snprintf(buf, n, "-");
        }
        break;
    case COL_OLDEST:
        snprintf(buf, n, "%.1f", p->oldest_running_s);
        break;
    case COL_FAILED:
    case COL_PANICKED:
    case COL_DROPPED:
    case COL_SHED:
    case COL_REJECTED:
        snprintf(buf, n, "%" PRIu64, *counter_of(p, c));
        break;
    case COL__COUNT:
        buf[0] = '\0';
        break;
    }
}

/* The numeric sort key of a row for a numeric column (larger = worse). */
static double key(const view_row *r, col_id c)
{
    const pool_row *p = r->pool;
    if (!p) {
        return -1;
    }
    switch (c) {
    case COL_RUN:
        return p->running;
    case COL_SAT: /* fraction of K running, then how full the queue is */
        return (p->capacity ? (double)p->running / p->capacity : 0) +
               (p->queue_capacity ? (double)p->queue_depth / (double)p->queue_capacity : 0) * 1e-3;
    case COL_QUEUE:
        return p->queue_capacity ? (double)p->queue_depth / (double)p->queue_capacity : 0;
    case COL_WAITING:
        return p->waiting;
    case COL_RATE:
        return p->rate;
    case COL_OLDEST:
        return p->oldest_running_s;
    case COL_FAILED:
    case COL_PANICKED:
    case COL_DROPPED:
    case COL_SHED:
    case COL_REJECTED:
        return (double)*counter_of(p, c);
    case COL_INSTANCE:
    case COL_POOL:
    case COL_STATE:
    case COL__COUNT:
        break;
    }
    return 0;
}

static col_id g_sort_col; /* for qsort's comparator */
static bool g_sort_reverse;

static int cmp_rows(const void *pa, const void *pb)
{
    const view_row *a = pa, *b = pb;
    int c = 0;
    if (g_sort_col == COL_STATE) {
        c = STATE_RANK[row_state(b)] - STATE_RANK[row_state(a)]; /* worst first */
    } else if (COLUMNS[g_sort_col].text) {
        char x[300], y[300];
        cell(a, g_sort_col, x, sizeof x);
        cell(b, g_sort_col, y, sizeof y);
        c = strcmp(x, y);
    } else {
        double x = key(a, g_sort_col), y = key(b, g_sort_col);
        c = x < y ? 1 : x > y ? -1 : 0; /* larger first */
    }
    if (g_sort_reverse) {
        c = -c;
    }
    if (c == 0) { /* stable and readable: by instance, then pool */
        c = strcmp(a->ep->url, b->ep->url);
        if (c == 0 && a->pool && b->pool) {
            c = strcmp(a->pool->name, b->pool->name);
        }
    }
    return c;
}

static bool matches(const view_row *r, const char *filter)
{
    if (!filter || !filter[0]) {
        return true;
    }
    char hay[512];
    snprintf(hay, sizeof hay, "%s %s %s", r->ep->url, r->pool ? r->pool->name : "-",
             STATE_NAMES[row_state(r)]);
    for (char *h = hay; *h; h++) {
        if (strncasecmp(h, filter, strlen(filter)) == 0) {
            return true;
        }
    }
    return false;
}

/* The rows to show, filtered and sorted; returns how many. */
static size_t collect(top *t, view_row *rows, size_t cap, col_id sort, bool reverse, const char *filter)
{
    size_t n = 0;
    for (size_t i = 0; i < t->ep_count; i++) {
        endpoint *e = &t->eps[i];
        if (!e->ever_ok) {
            view_row r = {e, NULL};
            if (n < cap && matches(&r, filter)) {
                rows[n++] = r;
            }
            continue;
        }
        for (size_t j = 0; j < e->pool_count; j++) {
            view_row r = {e, &e->pools[j]};
            if (n < cap && matches(&r, filter)) {
                rows[n++] = r;
            }
        }
    }
    g_sort_col = sort;
    g_sort_reverse = reverse;
    qsort(rows, n, sizeof rows[0], cmp_rows);
    return n;
}

static int format_line(char *out, size_t n, const view_row *r, col_id sort, bool reverse)
{
    size_t off = 0;
    for (int c = 0; c < COL__COUNT; c++) {
        char v[300];
        if (r) {
            cell(r, (col_id)c, v, sizeof v);
        } else { /* the header; the sort column carries its direction */
            snprintf(v, sizeof v, "%s%s", COLUMNS[c].title,
                     c == (int)sort ? (reverse != COLUMNS[c].text ? "^" : "v") : "");
        }
        int w = COLUMNS[c].width;
        int m = COLUMNS[c].text ? snprintf(out + off, n - off, "%-*.*s ", w, w, v)
                                : snprintf(out + off, n - off, "%*.*s ", w, w, v);
        if (m < 0 || (size_t)m >= n - off) {
            break;
        }
        off += (size_t)m;
    }
    while (off > 0 && out[off - 1] == ' ') {
        out[--off] = '\0';
    }
    return (int)off;
}

/* ---- --once: the plain table ----------------------------------------------------- */

static int print_once(top *t, col_id sort, bool reverse, const char *filter)
{
    static view_row rows[TOP_MAX_ENDPOINTS * TOP_MAX_POOLS];
    char line[512];
    size_t n = collect(t, rows, sizeof rows / sizeof rows[0], sort, reverse, filter);
    format_line(line, sizeof line, NULL, sort, reverse);
    printf("%s\n", line);
    for (size_t i = 0; i < n; i++) {
        format_line(line, sizeof line, &rows[i], sort, reverse);
        printf("%s\n", line);
    }
    int rc = SLUICE_EXIT_OK;
    for (size_t i = 0; i < t->ep_count; i++) {
        if (t->eps[i].stale) {
            fprintf(stderr, "sluice top: %s: %s\n", t->eps[i].url, t->eps[i].err);
            rc = SLUICE_EXIT_FAIL;
        }
    }
    return rc;
}

/* ---- the terminal UI ------------------------------------------------------------- */

enum { PAIR_HEALTHY = 1, PAIR_SATURATED, PAIR_STALLED, PAIR_DRAINING, PAIR_STALE, PAIR_HEADER };

static int state_pair(pool_state s)
{
    static const int pairs[ST__COUNT] = {PAIR_HEALTHY, PAIR_DRAINING, PAIR_SATURATED,
                                         PAIR_STALLED, PAIR_STALE,    PAIR_STALE};
    return pairs[s];
}

typedef struct ui {
    col_id sort;
    bool reverse;
    char filter[64];
    bool editing; /* typing a filter */
    char edit[64];
    /* The selected row, by identity so that it survives re-sorting. */
    char sel_url[300];
    char sel_pool[72];
    bool drill; /* showing the selected pool's workers */
    int worker_top;
} ui;

static void put_line(int y, const char *s, attr_t attr)
{
    if (y < 0 || y >= LINES) {
        return;
    }
    move(y, 0);
    clrtoeol();
    attron(attr);
    addnstr(s, COLS);
    attroff(attr);
}

static const char KEYS_LIST[] = "q quit  Up/Down select  Enter workers  < > sort column  r reverse  / filter";
static const char KEYS_DRILL[] = "q quit  Esc/Left back  Up/Down scroll";

static void draw_status(top *t, int y)
{
    /* The first endpoint that does not answer, and how many do not. */
    int bad = 0;
    const endpoint *first = NULL;
    for (size_t i = 0; i < t->ep_count; i++) {
        if (t->eps[i].stale) {
            bad++;
            first = first ? first : &t->eps[i];
        }
    }
    char s[1024] = "";
    if (first) {
        long long now = now_ms();
        if (first->ever_ok) {
            snprintf(s, sizeof s, "%s stale for %llds: %s%s", first->url, (now - first->last_ok_ms) / 1000,
                     first->err, bad > 1 ? " (and more)" : "");
        } else {
            snprintf(s, sizeof s, "%s down: %s%s", first->url, first->err, bad > 1 ? " (and more)" : "");
        }
    }
    put_line(y, s, first ? COLOR_PAIR(PAIR_STALE) | A_BOLD : A_NORMAL);
}

static void draw_list(top *t, ui *u)
{
    static view_row rows[TOP_MAX_ENDPOINTS * TOP_MAX_POOLS];
    size_t n = collect(t, rows, sizeof rows / sizeof rows[0], u->sort, u->reverse, u->filter);
    size_t pools = 0, stale = 0;
    for (size_t i = 0; i < t->ep_count; i++) {
        pools += t->eps[i].pool_count;
        stale += t->eps[i].stale;
    }
    char title[512];
    snprintf(title, sizeof title,
             "sluice top - %zu instance%s (%zu not answering), %zu pools - sort: %s %s - filter: %s",
             t->ep_count, t->ep_count == 1 ? "" : "s", stale, pools, COLUMNS[u->sort].title,
             u->reverse != COLUMNS[u->sort].text ? "ascending" : "descending",
             u->filter[0] ? u->filter : "none");
    put_line(0, title, A_BOLD);
    char line[512];
    format_line(line, sizeof line, NULL, u->sort, u->reverse);
    put_line(1, line, COLOR_PAIR(PAIR_HEADER) | A_REVERSE);
    /* Keep a selection: the one chosen before, else the first row. */
    size_t sel = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].ep->url, u->sel_url) == 0 &&
            strcmp(rows[i].pool ? rows[i].pool->name : "", u->sel_pool) == 0) {
            sel = i;
        }
    }
    if (n) {
        snprintf(u->sel_url, sizeof u->sel_url, "%s", rows[sel].ep->url);
        snprintf(u->sel_pool, sizeof u->sel_pool, "%s", rows[sel].pool ? rows[sel].pool->name : "");
    }
    int room = LINES - 4;
    size_t first = room > 0 && sel >= (size_t)room ? sel - (size_t)room + 1 : 0;
    int y = 2;
    for (size_t i = first; i < n && y < LINES - 2; i++, y++) {
        format_line(line, sizeof line, &rows[i], u->sort, u->reverse);
        attr_t a = COLOR_PAIR(state_pair(row_state(&rows[i])));
        put_line(y, line, a | (i == sel ? A_REVERSE | A_BOLD : 0));
    }
    if (n == 0) {
        put_line(y++, u->filter[0] ? "(no pool matches the filter)" : "(no pools)", A_DIM);
    }
    for (; y < LINES - 2; y++) {
        put_line(y, "", A_NORMAL);
    }
    draw_status(t, LINES - 2);
    if (u->editing) {
        char s[128];
        snprintf(s, sizeof s, "filter: %s_   (Enter apply, Esc cancel)", u->edit);
        put_line(LINES - 1, s, A_BOLD);
    } else {
        put_line(LINES - 1, KEYS_LIST, A_REVERSE);
    }
}

typedef struct worker_line {
    double age;
    bool running;
    char text[256];
} worker_line;

static int cmp_workers(const void *pa, const void *pb)
{
    const worker_line *a = pa, *b = pb;
    if (a->running != b->running) {
        return a->running ? -1 : 1;
    }
    return a->age < b->age ? 1 : a->age > b->age ? -1 : 0;
}

static void draw_workers(top *t, ui *u)
{
    endpoint *e = NULL;
    for (size_t i = 0; i < t->ep_count; i++) {
        if (strcmp(t->eps[i].url, u->sel_url) == 0) {
            e = &t->eps[i];
        }
    }
    json_t *pool = NULL;
    size_t i;
    json_t *jp;
    json_array_foreach(e && e->doc ? json_object_get(e->doc, "pools") : NULL, i, jp)
    {
        const char *name = json_string_value(json_object_get(jp, "name"));
        if (name && strcmp(name, u->sel_pool) == 0) {
            pool = jp;
        }
    }
    char s[512];
    json_t *workers = json_object_get(pool, "workers");
    size_t n = json_array_size(workers);
    json_t *st = json_object_get(pool, "stats");
    snprintf(s, sizeof s, "workers of %s at %s: %" PRIu64 " running / K %" PRIu64 ", %zu alive%s",
             u->sel_pool, u->sel_url, jnum(st, "running"), jnum(st, "capacity"), n,
             e && e->stale ? " - STALE (last numbers)"
             : !pool       ? " - the pool is gone"
                           : "");
    put_line(0, s, A_BOLD);
    snprintf(s, sizeof s, "%-7s %-9s %9s %10s  %s", "WORKER", "STATE", "FOR(s)", "TASKS_RUN", "TASK");
    put_line(1, s, COLOR_PAIR(PAIR_HEADER) | A_REVERSE);
    worker_line *lines = calloc(n ? n : 1, sizeof *lines);
    json_t *w;
    json_array_foreach(workers, i, w)
    {
        if (!lines) {
            break;
        }
        const char *ws = json_string_value(json_object_get(w, "state"));
        const char *task = json_string_value(json_object_get(w, "task"));
        lines[i].age = json_number_value(json_object_get(w, "for_seconds"));
        lines[i].running = ws && strcmp(ws, "running") == 0;
        snprintf(lines[i].text, sizeof lines[i].text, "%-7" PRIu64 " %-9s %9.1f %10" PRIu64 "  %s",
                 jnum(w, "index"), ws ? ws : "?", lines[i].age, jnum(w, "tasks_run"), task ? task : "");
    }
    if (lines) {
        qsort(lines, n, sizeof lines[0], cmp_workers);
    }
    int room = LINES - 4;
    if (u->worker_top > (int)n - room) {
        u->worker_top = (int)n - room;
    }
    if (u->worker_top < 0) {
        u->worker_top = 0;
    }
    int y = 2;
    for (size_t k = (size_t)u->worker_top; lines && k < n && y < LINES - 2; k++, y++) {
        attr_t a = lines[k].running
                       ? COLOR_PAIR(lines[k].age * 1000 >= TOP_STALL_MS ? PAIR_STALLED : PAIR_HEALTHY)
                       : A_DIM;
        put_line(y, lines[k].text, a);
    }
    free(lines);
    for (; y < LINES - 2; y++) {
        put_line(y, "", A_NORMAL);
    }
    draw_status(t, LINES - 2);
    put_line(LINES - 1, KEYS_DRILL, A_REVERSE);
}

/* Move the selection by `delta` rows in the current order. */
static void move_selection(top *t, ui *u, int delta)
{
    static view_row rows[TOP_MAX_ENDPOINTS * TOP_MAX_POOLS];
    size_t n = collect(t, rows, sizeof rows / sizeof rows[0], u->sort, u->reverse, u->filter);
    if (n == 0) {
        return;
    }
    long sel = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].ep->url, u->sel_url) == 0 &&
            strcmp(rows[i].pool ? rows[i].pool->name : "", u->sel_pool) == 0) {
            sel = (long)i;
        }
    }
    sel += delta;
    sel = sel < 0 ? 0 : sel >= (long)n ? (long)n - 1 : sel;
    snprintf(u->sel_url, sizeof u->sel_url, "%s", rows[sel].ep->url);
    snprintf(u->sel_pool, sizeof u->sel_pool, "%s", rows[sel].pool ? rows[sel].pool->name : "");
}

/* Returns false to quit. */
static bool on_key(top *t, ui *u, int ch)
{
    if (u->editing) {
        size_t len = strlen(u->edit);
        if (ch == '\n' || ch == KEY_ENTER) {
            snprintf(u->filter, sizeof u->filter, "%s", u->edit);
            u->editing = false;
        } else if (ch == 27) {
            u->editing = false;
        } else if ((ch == KEY_BACKSPACE || ch == 127 || ch == 8) && len > 0) {
            u->edit[len - 1] = '\0';
        } else if (ch >= 0x20 && ch < 0x7f && len + 1 < sizeof u->edit) {
            u->edit[len] = (char)ch;
            u->edit[len + 1] = '\0';
        }
        return true;
    }
    switch (ch) {
    case 'q':
    case 'Q':
        return false;
    case KEY_UP:
    case 'k':
        if (u->drill) {
            u->worker_top--;
        } else {
            move_selection(t, u, -1);
        }
        break;
    case KEY_DOWN:
    case 'j':
        if (u->drill) {
            u->worker_top++;
        } else {
            move_selection(t, u, 1);
        }
        break;
    case '\n':
    case KEY_ENTER:
    case KEY_RIGHT:
        if (!u->drill && u->sel_pool[0]) {
            u->drill = true;
            u->worker_top = 0;
        }
        break;
    case 27:
    case KEY_LEFT:
    case KEY_BACKSPACE:
    case 127:
        u->drill = false;
        break;
    case '<':
        u->sort = u->sort == 0 ? COL__COUNT - 1 : u->sort - 1;
        u->reverse = false;
        break;
    case '>':
        u->sort = u->sort == COL__COUNT - 1 ? 0 : u->sort + 1;
        u->reverse = false;
        break;
    case 'r':
        u->reverse = !u->reverse;
        break;
    case '/':
        if (!u->drill) {
            u->editing = true;
            snprintf(u->edit, sizeof u->edit, "%s", u->filter);
        }
        break;
    default:
        break;
    }
    return true;
}

static int run_tty(top *t, col_id sort, bool reverse, const char *filter)
{
    ui u;
    memset(&u, 0, sizeof u);
    u.sort = sort;
    u.reverse = reverse;
    snprintf(u.filter, sizeof u.filter, "%s", filter ? filter : "");
    setlocale(LC_ALL, "");
    if (!initscr()) {
        fprintf(stderr, "sluice top: cannot start the terminal UI (TERM=%s); use --once\n",
                getenv("TERM") ? getenv("TERM") : "");
        return SLUICE_EXIT_FAIL;
    }
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    set_escdelay(25);
    curs_set(0);
    if (has_colors()) {
        start_color();
        use_default_colors();
        init_pair(PAIR_HEALTHY, COLOR_GREEN, -1);
        init_pair(PAIR_SATURATED, COLOR_YELLOW, -1);
        init_pair(PAIR_STALLED, COLOR_RED, -1);
        init_pair(PAIR_DRAINING, COLOR_CYAN, -1);
        init_pair(PAIR_STALE, COLOR_MAGENTA, -1);
        init_pair(PAIR_HEADER, COLOR_WHITE, -1);
    }
    long long next = 0;
    bool go = true;
    while (go) {
        long long now = now_ms();
        if (now >= next) {
            fetch_all(t);
            next = now_ms() + t->interval_ms;
        }
        if (u.drill) {
            draw_workers(t, &u);
        } else {
            draw_list(t, &u);
        }
        refresh();
        long long wait = next - now_ms();
        timeout((int)(wait < 0 ? 0 : wait > 250 ? 250 : wait));
        int ch = getch();
        if (ch != ERR && ch != KEY_RESIZE) {
            go = on_key(t, &u, ch);
        }
    }
    endwin();
    return SLUICE_EXIT_OK;
}

/* ---- flags ------------------------------------------------------------------------- */

static void help(FILE *out)
{
    fprintf(out, "usage: sluice top [flags] [URL ...]\n"
                 "\n"
                 "Watch the pools of one or many admin servers (their /debug/pools), refreshed\n"
                 "every second: one row per pool per instance, the most saturated first,\n"
                 "coloured by state (healthy, saturated, stalled, draining; stale when an\n"
                 "instance stops answering: its last numbers stay, marked, and it is tried\n"
                 "again every interval). Enter shows the selected pool's workers.\n"
                 "\n"
                 "URL: http://HOST:PORT, HOST:PORT or :PORT (default http://127.0.0.1:9464).\n"
                 "\n"
                 "Keys: q quit, Up/Down select, Enter workers, Esc back, < > sort column,\n"
                 "r reverse, / filter (a substring of instance, pool or state).\n"
                 "\n"
                 "Flags:\n"
                 "  --once              print the table once (two looks, one interval apart,\n"
                 "                      for tasks/s) and exit; the default when stdout is not\n"
                 "                      a terminal\n"
                 "  --interval D        time between refreshes (default 1s, at least 100ms)\n"
                 "  --sort COL          sort column: instance, pool, state, run, sat (default),\n"
                 "                      queue, wait, tasks, oldest, failed, panicked, dropped,\n"
                 "                      shed, rejected\n"
                 "  --filter TEXT       show rows whose instance, pool or state contains TEXT\n"
                 "  --token-file FILE   send \"Authorization: Bearer <first line of FILE>\"\n"
                 "                      (also: the SLUICE_ADMIN_TOKEN environment variable)\n"
                 "  -h, --help          this text\n"
                 "\n"
                 "Columns: ");
    for (int c = 0; c < COL__COUNT; c++) {
        fprintf(out, "%s%s (%s)", c ? "; " : "", COLUMNS[c].title, COLUMNS[c].help);
    }
    fprintf(out, ".\n"
                 "Exit status: 0; 1 when --once could not reach an instance (named on\n"
                 "stderr; the others are printed); 2 bad flag or URL.\n");
}

static int usage_error(const char *fmt, ...) SLUICE_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sluice top: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see sluice top --help)\n");
    va_end(ap);
    return SLUICE_EXIT_USAGE;
}

/* http://HOST:PORT[/], HOST:PORT, [V6]:PORT, :PORT. */
static bool parse_url(const char *arg, endpoint *e)
{
    const char *s = arg;
    if (strncmp(s, "http://", 7) == 0) {
        s += 7;
    } else if (strstr(s, "://")) {
        return false;
    }
    char buf[256];
    size_t len = strlen(s);
    if (len == 0 || len >= sizeof buf) {
        return false;
    }
    memcpy(buf, s, len + 1);
    if (len > 1 && buf[len - 1] == '/') {
        buf[--len] = '\0';
    }
    if (strchr(buf, '/')) {
        return false; /* a path: the admin server's own paths are fixed */
    }
    char *port = NULL;
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (!close || (close[1] != ':' && close[1] != '\0')) {
            return false;
        }
        *close = '\0';
        snprintf(e->host, sizeof e->host, "%s", buf + 1);
        port = close[1] == ':' ? close + 2 : NULL;
    } else {
        char *colon = strrchr(buf, ':');
        if (colon) {
            *colon = '\0';
            port = colon + 1;
        }
        snprintf(e->host, sizeof e->host, "%s", buf[0] ? buf : "127.0.0.1");
    }
    e->port = TOP_DEFAULT_PORT;
    if (port) {
        char *end;
        errno = 0;
        unsigned long p = strtoul(port, &end, 10);
        if (!*port || *end || errno || p == 0 || p > 65535) {
            return false;
        }
        e->port = (unsigned)p;
    }
    if (!e->host[0]) {
        return false;
    }
    snprintf(e->url, sizeof e->url, strchr(e->host, ':') ? "[%s]:%u" : "%s:%u", e->host, e->port);
    return true;
}

static bool parse_sort(const char *s, col_id *out)
{
    static const char *const names[COL__COUNT] = {
        [COL_INSTANCE] = "instance", [COL_POOL] = "pool",         [COL_STATE] = "state",
        [COL_RUN] = "run",           [COL_SAT] = "sat",           [COL_QUEUE] = "queue",
        [COL_WAITING] = "wait",      [COL_RATE] = "tasks",        [COL_OLDEST] = "oldest",
        [COL_FAILED] = "failed",     [COL_PANICKED] = "panicked", [COL_DROPPED] = "dropped",
        [COL_SHED] = "shed",         [COL_REJECTED] = "rejected",
    };
    for (int c = 0; c < COL__COUNT; c++) {
        if (strcasecmp(s, names[c]) == 0) {
            *out = (col_id)c;
            return true;
        }
    }
    return false;
}

/* The first line of FILE, without the newline. */
static bool read_token(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return false;
    }
    bool ok = fgets(out, (int)n, f) != NULL;
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return ok && out[0];
}

int sluice_cmd_top(int argc, char **argv)
{
    enum { OPT_ONCE = 256, OPT_INTERVAL, OPT_SORT, OPT_FILTER, OPT_TOKEN_FILE };
    static const struct option longopts[] = {
        {"once", no_argument, NULL, OPT_ONCE},
        {"interval", required_argument, NULL, OPT_INTERVAL},
        {"sort", required_argument, NULL, OPT_SORT},
        {"filter", required_argument, NULL, OPT_FILTER},
        {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static top t;
    memset(&t, 0, sizeof t);
    t.interval_ms = 1000;
    bool once = false;
    col_id sort = COL_SAT;
    const char *filter = NULL;
    static char token[512];
    const char *env_token = getenv("SLUICE_ADMIN_TOKEN");
    if (env_token && env_token[0]) {
        snprintf(token, sizeof token, "%s", env_token);
        t.token = token;
    }
    opterr = 0;
    optind = 0;
    for (;;) {
        int c = getopt_long(argc, argv, ":h", longopts, NULL);
        if (c == -1) {
            break;
        }
        uint64_t ns;
        switch (c) {
        case 'h':
            help(stdout);
            return SLUICE_EXIT_OK;
        case OPT_ONCE:
            once = true;
            break;
        case OPT_INTERVAL:
            if (sluice_config_parse_duration(optarg, &ns) != SLUICE_OK || ns < 100 * SLUICE_NS_PER_MS ||
                ns > 3600 * SLUICE_NS_PER_SEC) {
                return usage_error("--interval: must be a duration from 100ms to 1h, such as 2s, got \"%s\"",
                                   optarg);
            }
            t.interval_ms = (unsigned)(ns / SLUICE_NS_PER_MS);
            break;
        case OPT_SORT:
            if (!parse_sort(optarg, &sort)) {
                return usage_error("--sort: unknown column \"%s\"", optarg);
            }
            break;
        case OPT_FILTER:
            filter = optarg;
            break;
        case OPT_TOKEN_FILE:
            if (!read_token(optarg, token, sizeof token)) {
                return usage_error("--token-file: cannot read a token from \"%s\": %s", optarg,
                                   errno ? strerror(errno) : "empty file");
            }
            t.token = token;
            break;
        case ':':
            return usage_error("%s: needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown flag '%s'", argv[optind - 1]);
        }
    }
    for (int i = optind; i < argc; i++) {
        if (t.ep_count == TOP_MAX_ENDPOINTS) {
            return usage_error("at most %d URLs", TOP_MAX_ENDPOINTS);
        }
        if (!parse_url(argv[i], &t.eps[t.ep_count])) {
            return usage_error("\"%s\" is not an admin address: want http://HOST:PORT, HOST:PORT or :PORT",
                               argv[i]);
        }
        t.ep_count++;
    }
    if (t.ep_count == 0) {
        parse_url("127.0.0.1:9464", &t.eps[t.ep_count++]);
    }
    int rc;
    if (once || !isatty(STDOUT_FILENO)) {
        /* Two looks for tasks/s; "none finished" is judged over that interval. */
        t.stall_window_ms = t.interval_ms;
        fetch_all(&t);
        struct timespec ts = {(time_t)(t.interval_ms / 1000), (long)(t.interval_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        fetch_all(&t);
        rc = print_once(&t, sort, false, filter);
    } else {
        t.stall_window_ms = TOP_STALL_MS;
        rc = run_tty(&t, sort, false, filter);
    }
    for (size_t i = 0; i < t.ep_count; i++) {
        json_decref(t.eps[i].doc);
    }
    return rc;
}

#else
/* ISO C wants a translation unit to declare something. */
typedef int sluice_top_not_built;
#endif /* SLUICE_HAVE_TOP */

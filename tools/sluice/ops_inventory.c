/*
 * tools/sluice/ops_inventory.c - a lexical scanner that finds pool
 * constructions in C sources.
 *
 * Purpose: the reference text's "forgotten pool" risk: a pool nobody
 * monitors. `sluice inventory` lists every place a codebase builds a pool:
 * Sluice's own (sluice_pool_create), C-Thread-Pool (thpool_init), GLib
 * (g_thread_pool_new[_full]), APR (apr_thread_pool_create), libuv's shared
 * pool (uv_queue_work), and threads started by pthread_create inside a
 * loop (a hand-made pool), and says whether each Sluice pool is declared
 * in sluice.yaml.
 *
 * Design: a tokenizer, not a parser. It drops comments, string and
 * character literals (keeping string contents for pool names) and
 * preprocessor lines, tracks braces and parentheses, and reports a call
 * when a known function name is followed by '(' inside a function body
 * and is not a declaration (preceded by a type name) or a struct member
 * (preceded by '.' or '->'). Loops are tracked from the `for`/`while`/
 * `do` keywords: a braced body, or a single statement up to its ';'.
 * What it cannot see: calls made through macros (a macro body is a
 * preprocessor line and is skipped; its expansion sites do not name the
 * function), function pointers, and pool names computed at run time. Why
 * not libclang: it needs each file's exact compile flags and include
 * paths (a compile_commands.json) to parse at all, and would add a large
 * dependency to a tool whose answers here only need the token stream;
 * docs/ops.md records the trade-off.
 *
 * Ordering: results are sorted by path, line and kind; directory entries
 * are read and then sorted, so output does not depend on readdir order.
 */
#include "ops_inventory.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ops_util.h"

static const struct {
    const char *fn;
    const char *kind;
    bool loop_only;
} targets[] = {
    {"sluice_pool_create", "sluice", false},   {"thpool_init", "c-thread-pool", false},
    {"g_thread_pool_new", "glib", false},      {"g_thread_pool_new_full", "glib", false},
    {"apr_thread_pool_create", "apr", false},  {"uv_queue_work", "libuv", false},
    {"pthread_create", "pthread-loop", true},  {"uv_thread_create_ex", "thread-loop", true},
    {"uv_thread_create", "thread-loop", true},
};
#define N_TARGETS (sizeof targets / sizeof targets[0])

/* A function-like or object-like macro whose body calls a target (or
 * another such macro): its expansion sites are constructions too. */
typedef struct macro_def {
    char *name;
    int target; /* index into targets[] of what it expands to */
} macro_def;

struct ops_macros {
    macro_def *v;
    size_t n, cap;
};

typedef enum tok_type { T_NONE, T_IDENT, T_STRING, T_PUNCT, T_NUMBER } tok_type;

typedef struct tok {
    tok_type type;
    char text[64]; /* identifiers and punctuation (truncated); strings keep `str` */
    unsigned line;
} tok;

#define MAX_DEPTH 256

typedef struct scan {
    const char *path;
    ops_sites *out;
    /* token history */
    tok prev2, prev, cur;
    /* structure */
    int depth;                  /* brace depth */
    int paren;                  /* paren depth within the current statement */
    bool frame_loop[MAX_DEPTH]; /* frame_loop[d]: the block opened at depth d is a loop body */
    int loop_frames;            /* how many open frames are loop bodies */
    int single_loops;           /* unbraced loop bodies open at single_depth */
    int single_depth;
    /* loop header tracking: after for/while we skip "( ... )" */
    int header_state; /* 0 none, 1 expecting '(', 2 inside header, 3 header done */
    int header_paren;
    /* per function (depth >= 1) */
    char *last_name; /* last `name = "literal"` seen in this function */
    bool saw_from_config;
    int name_state; /* 1 saw ident "name", 2 saw '=' after it */
    /* pending call: a target identifier waiting for '(' */
    int pending_target;
    unsigned pending_line;
    bool pending_ok;
    const char *pending_via; /* the macro name when the call is a macro's */
    const ops_macros *macros;
    size_t func_first_site; /* out->n when the current function began */
    bool func_joins;        /* the current function calls a join */
} scan;

static bool is_keyword_before_call(const char *s)
{
    static const char *const kw[] = {"return", "else", "case", "do", "sizeof", "goto", NULL};
    for (int i = 0; kw[i]; i++)
        if (strcmp(s, kw[i]) == 0)
            return true;
    return false;
}

static void add_site(scan *s, int t, unsigned line, const char *via)
{
    ops_sites *o = s->out;
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 16;
        o->v = ops_xrealloc(o->v, o->cap * sizeof *o->v);
    }
    ops_site *x = &o->v[o->n++];
    memset(x, 0, sizeof *x);
    x->path = ops_xstrndup(s->path, strlen(s->path));
    x->line = line;
    x->kind = targets[t].kind;
    x->call = targets[t].fn;
    x->via = via ? ops_xstrndup(via, strlen(via)) : NULL;
    x->declared = -1;
    x->confidence = targets[t].loop_only ? "medium" : "high";
    if (strcmp(targets[t].kind, "sluice") == 0) {
        x->from_config = s->saw_from_config;
        if (s->last_name)
            x->pool = ops_xstrndup(s->last_name, strlen(s->last_name));
    }
}

static bool in_loop(const scan *s)
{
    return s->loop_frames > 0 || s->single_loops > 0;
}

/* Feed one token through the structure tracker. `str` is a string
 * literal's contents (T_STRING only). */
static void feed(scan *s, tok t, const char *str, size_t slen)
{
    /* A target identifier followed by '(' is a call. */
    if (s->pending_target >= 0) {
        if (t.type == T_PUNCT && strcmp(t.text, "(") == 0 && s->pending_ok) {
            if (!targets[s->pending_target].loop_only || in_loop(s))
                add_site(s, s->pending_target, s->pending_line, s->pending_via);
        }
        s->pending_target = -1;
    }

    /* Loop headers: for/while "( ... )" then a body. */
    if (s->header_state == 1) {
        if (t.type == T_PUNCT && strcmp(t.text, "(") == 0) {
            s->header_state = 2;
            s->header_paren = 1;
            goto shift;
        }
        s->header_state = 0;
    } else if (s->header_state == 2) {
        if (t.type == T_PUNCT && strcmp(t.text, "(") == 0)
            s->header_paren++;
        else if (t.type == T_PUNCT && strcmp(t.text, ")") == 0 && --s->header_paren == 0)
            s->header_state = 3;
        goto shift;
    } else if (s->header_state == 3) {
        s->header_state = 0;
        if (t.type == T_PUNCT && strcmp(t.text, "{") == 0) {
            if (s->depth + 1 < MAX_DEPTH) {
                s->depth++;
                s->frame_loop[s->depth] = true;
                s->loop_frames++;
            }
            goto shift;
        }
        if (t.type == T_PUNCT && strcmp(t.text, ";") == 0)
            goto shift; /* empty body, or the tail of do { } while (x); */
        if (s->single_loops == 0)
            s->single_depth = s->depth;
        if (s->single_depth == s->depth)
            s->single_loops++;
        /* fall through: this token starts the body statement */
    }

    if (t.type == T_IDENT) {
        if (strcmp(t.text, "for") == 0 || strcmp(t.text, "while") == 0) {
            s->header_state = 1;
        } else if (strcmp(t.text, "do") == 0) {
            s->header_state = 3;
        } else {
            if (strcmp(t.text, "pthread_join") == 0 || strcmp(t.text, "uv_thread_join") == 0)
                s->func_joins = true;
            int hit = -1;
            const char *via = NULL;
            for (size_t i = 0; i < N_TARGETS && hit < 0; i++)
                if (strcmp(t.text, targets[i].fn) == 0)
                    hit = (int)i;
            for (size_t i = 0; s->macros && i < s->macros->n && hit < 0; i++)
                if (strcmp(t.text, s->macros->v[i].name) == 0) {
                    hit = s->macros->v[i].target;
                    via = s->macros->v[i].name;
                }
            if (hit >= 0) {
                /* Not at file scope (no calls there in C), not a member,
                 * not a declaration "type name(". */
                bool ok = s->depth > 0;
                if (s->prev.type == T_PUNCT &&
                    (strcmp(s->prev.text, ".") == 0 || strcmp(s->prev.text, "->") == 0))
                    ok = false;
                if (s->prev.type == T_IDENT && !is_keyword_before_call(s->prev.text))
                    ok = false;
                s->pending_target = hit;
                s->pending_line = t.line;
                s->pending_ok = ok;
                s->pending_via = via;
            }
            if (s->depth > 0 && strcmp(t.text, "sluice_config_pool_to_pool_config") == 0)
                s->saw_from_config = true;
        }
        s->name_state = strcmp(t.text, "name") == 0 ? 1 : 0;
    } else if (t.type == T_PUNCT) {
        if (strcmp(t.text, "=") == 0 && s->name_state == 1)
            s->name_state = 2;
        else
            s->name_state = 0;
        if (strcmp(t.text, "{") == 0) {
            if (s->depth == 0) {
                s->func_first_site = s->out->n;
                s->func_joins = false;
            }
            if (s->depth + 1 < MAX_DEPTH) {
                s->depth++;
                s->frame_loop[s->depth] = false;
            }
        } else if (strcmp(t.text, "}") == 0) {
            if (s->depth > 0) {
                if (s->frame_loop[s->depth])
                    s->loop_frames--;
                s->depth--;
            }
            if (s->single_loops && s->depth <= s->single_depth)
                s->single_loops = 0;
            if (s->depth == 0) {
                free(s->last_name);
                s->last_name = NULL;
                s->saw_from_config = false;
                /* Threads started in a loop and joined in the same
                 * function are a fork-join batch, not a pool. */
                for (size_t k = s->func_first_site; s->func_joins && k < s->out->n; k++)
                    if (strcmp(s->out->v[k].confidence, "medium") == 0)
                        s->out->v[k].confidence = "low";
            }
        } else if (strcmp(t.text, "(") == 0) {
            s->paren++;
        } else if (strcmp(t.text, ")") == 0) {
            if (s->paren > 0)
                s->paren--;
        } else if (strcmp(t.text, ";") == 0) {
            if (s->single_loops && s->depth == s->single_depth && s->paren == 0)
                s->single_loops = 0;
        }
    } else if (t.type == T_STRING) {
        if (s->name_state == 2 && s->depth > 0) {
            free(s->last_name);
            s->last_name = ops_xstrndup(str, slen);
        }
        s->name_state = 0;
    } else {
        s->name_state = 0;
    }
shift:
    s->prev2 = s->prev;
    s->prev = t;
}

/* text[i] starts a block comment: the index just past its closing
 * delimiter (len if it is unterminated), counting its newlines in *line. */
static size_t skip_block_comment(const char *text, size_t len, size_t i, unsigned *line)
{
    i += 2;
    while (i < len && !(text[i] == '*' && i + 1 < len && text[i + 1] == '/')) {
        if (text[i] == '\n')
            (*line)++;
        i++;
    }
    return i + 2 <= len ? i + 2 : len;
}

/* The target (or known macro) that identifier [p, p+n) names, or -1. */
static int lookup(const ops_macros *m, const char *p, size_t n)
{
    for (size_t i = 0; i < N_TARGETS; i++)
        if (strlen(targets[i].fn) == n && memcmp(targets[i].fn, p, n) == 0)
            return (int)i;
    for (size_t i = 0; i < m->n; i++)
        if (strlen(m->v[i].name) == n && memcmp(m->v[i].name, p, n) == 0)
            return m->v[i].target;
    return -1;
}

/* One "#define NAME..." line (continuations joined by the caller's span
 * [i, end)): if the body calls a target or a known macro, NAME joins the
 * macros. Returns true when it added one. */
static bool define_line(ops_macros *m, const char *text, size_t i, size_t end)
{
    while (i < end && (text[i] == '#' || text[i] == ' ' || text[i] == '\t'))
        i++;
    if (end - i < 7 || memcmp(text + i, "define", 6) != 0 || !(text[i + 6] == ' ' || text[i + 6] == '\t'))
        return false;
    i += 6;
    while (i < end && (text[i] == ' ' || text[i] == '\t'))
        i++;
    size_t ns = i;
    while (i < end && (isalnum((unsigned char)text[i]) || text[i] == '_'))
        i++;
    size_t nlen = i - ns;
    if (nlen == 0 || nlen >= 64 || lookup(m, text + ns, nlen) >= 0)
        return false;
    if (i < end && text[i] == '(') /* skip the parameter list */
        while (i < end && text[i] != ')')
            i++;
    while (i < end) {
        if (isalpha((unsigned char)text[i]) || text[i] == '_') {
            size_t is = i;
            while (i < end && (isalnum((unsigned char)text[i]) || text[i] == '_'))
                i++;
            int t = lookup(m, text + is, i - is);
            size_t j = i;
            while (j < end && (text[j] == ' ' || text[j] == '\t' || text[j] == '\\' || text[j] == '\n' ||
                               text[j] == '\r'))
                j++;
            if (t >= 0 && j < end && text[j] == '(') {
                if (m->n == m->cap) {
                    m->cap = m->cap ? m->cap * 2 : 8;
                    m->v = ops_xrealloc(m->v, m->cap * sizeof *m->v);
                }
                m->v[m->n].name = ops_xstrndup(text + ns, nlen);
                m->v[m->n].target = t;
                m->n++;
                return true;
            }
        } else {
            i++;
        }
    }
    return false;
}

/* Every #define of the text (continuation lines included); returns how
 * many macros it added. */
static size_t collect_macros(ops_macros *m, const char *text, size_t len)
{
    size_t added = 0;
    bool line_start = true;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '\n') {
            line_start = true;
            continue;
        }
        if (c == ' ' || c == '\t')
            continue;
        if (c == '#' && line_start) {
            size_t end = i;
            while (end < len && !(text[end] == '\n' && (end == 0 || text[end - 1] != '\\')))
                end++;
            added += define_line(m, text, i, end);
            i = end - 1;
            continue;
        }
        line_start = false;
    }
    return added;
}

ops_macros *ops_macros_new(void)
{
    ops_macros *m = ops_xrealloc(NULL, sizeof *m);
    memset(m, 0, sizeof *m);
    return m;
}

void ops_macros_add_text(ops_macros *m, const char *text, size_t len)
{
    collect_macros(m, text, len);
}

size_t ops_macros_count(const ops_macros *m)
{
    return m->n;
}

void ops_macros_free(ops_macros *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->v[i].name);
    free(m->v);
    free(m);
}

void ops_inventory_scan_text(const char *path, const char *text, size_t len, ops_sites *out)
{
    /* A single text: its own macros, to a fixpoint (a macro over a macro). */
    ops_macros *m = ops_macros_new();
    while (collect_macros(m, text, len) > 0)
        ;
    ops_inventory_scan_text_macros(path, text, len, m, out);
    ops_macros_free(m);
}

void ops_inventory_scan_text_macros(const char *path, const char *text, size_t len, const ops_macros *macros,
                                    ops_sites *out)
{
    scan s;
    memset(&s, 0, sizeof s);
    s.path = path;
    s.out = out;
    s.macros = macros;
    s.pending_target = -1;
    unsigned line = 1;
    bool line_start = true; /* only whitespace so far on this line */
    size_t i = 0;
    while (i < len) {
        char c = text[i];
        if (c == '\n') {
            line++;
            line_start = true;
            i++;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
            i++;
            continue;
        }
        if (c == '\\' && i + 1 < len && text[i + 1] == '\n') { /* line splice */
            line++;
            i += 2;
            continue;
        }
        /* Comments. */
        if (c == '/' && i + 1 < len && text[i + 1] == '/') {
            while (i < len && text[i] != '\n') {
                if (text[i] == '\\' && i + 1 < len && text[i + 1] == '\n') {
                    line++;
                    i++;
                }
                i++;
            }
            continue;
        }
        if (c == '/' && i + 1 < len && text[i + 1] == '*') {
            i = skip_block_comment(text, len, i, &line);
            continue;
        }
        /* Preprocessor lines (with continuations and comments). */
        if (c == '#' && line_start) {
            while (i < len && text[i] != '\n') {
                if (text[i] == '\\' && i + 1 < len && text[i + 1] == '\n') {
                    line++;
                    i += 2;
                    continue;
                }
                if (text[i] == '/' && i + 1 < len && text[i + 1] == '*') {
                    i = skip_block_comment(text, len, i, &line);
                    continue;
                }
                i++;
            }
            continue;
        }
        line_start = false;
        tok t;
        memset(&t, 0, sizeof t);
        t.line = line;
        /* String and character literals (with an optional L/u/U/u8 prefix,
         * which the identifier branch leaves in front: harmless). */
        if (c == '"' || c == '\'') {
            char q = c;
            size_t start = ++i;
            while (i < len && text[i] != q && text[i] != '\n') {
                if (text[i] == '\\' && i + 1 < len) {
                    if (text[i + 1] == '\n')
                        line++;
                    i++;
                }
                i++;
            }
            size_t end = i;
            if (i < len && text[i] == q)
                i++;
            if (q == '"') {
                t.type = T_STRING;
                feed(&s, t, text + start, end - start);
            } else {
                t.type = T_NUMBER; /* a character constant is a value */
                feed(&s, t, NULL, 0);
            }
            continue;
        }
        if (isalpha((unsigned char)c) || c == '_') {
            size_t start = i;
            while (i < len && (isalnum((unsigned char)text[i]) || text[i] == '_'))
                i++;
            size_t n = i - start;
            if (n >= sizeof t.text)
                n = sizeof t.text - 1;
            memcpy(t.text, text + start, n);
            t.type = T_IDENT;
            feed(&s, t, NULL, 0);
            continue;
        }
        if (isdigit((unsigned char)c)) {
            while (i < len && (isalnum((unsigned char)text[i]) || text[i] == '.' || text[i] == '_'))
                i++;
            t.type = T_NUMBER;
            feed(&s, t, NULL, 0);
            continue;
        }
        t.type = T_PUNCT;
        if (c == '-' && i + 1 < len && text[i + 1] == '>') {
            strcpy(t.text, "->");
            i += 2;
        } else {
            t.text[0] = c;
            i++;
        }
        feed(&s, t, NULL, 0);
    }
    free(s.last_name);
}

static bool source_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return false;
    static const char *const ext[] = {".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", NULL};
    for (int i = 0; ext[i]; i++)
        if (strcmp(dot, ext[i]) == 0)
            return true;
    return false;
}

static int read_file(const char *path, ops_buf *b, char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char chunk[16384];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ops_buf_putn(b, chunk, n);
    int err = ferror(f);
    fclose(f);
    if (err) {
        snprintf(errbuf, errlen, "%s: read error", path);
        return -1;
    }
    ops_buf_str(b);
    return 0;
}

typedef struct file_list {
    char **v;
    size_t n, cap;
} file_list;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The source files under dir, in sorted order (hidden entries and
 * symbolic links skipped). */
static int list_dir(const char *dir, file_list *files, char *errbuf, size_t errlen, int depth)
{
    if (depth > 64) {
        snprintf(errbuf, errlen, "%s: directories nested too deep", dir);
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(errbuf, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t count = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue; /* ., .., .git and other hidden entries */
        if (count == cap) {
            cap = cap ? cap * 2 : 32;
            names = ops_xrealloc(names, cap * sizeof *names);
        }
        names[count++] = ops_xstrndup(e->d_name, strlen(e->d_name));
    }
    closedir(d);
    if (count)
        qsort(names, count, sizeof *names, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        ops_buf p = {0};
        ops_buf_printf(&p, "%s/%s", dir, names[i]);
        struct stat st;
        if (rc == 0 && lstat(ops_buf_str(&p), &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                rc = list_dir(ops_buf_str(&p), files, errbuf, errlen, depth + 1);
            } else if (S_ISREG(st.st_mode) && source_ext(names[i])) {
                if (files->n == files->cap) {
                    files->cap = files->cap ? files->cap * 2 : 64;
                    files->v = ops_xrealloc(files->v, files->cap * sizeof *files->v);
                }
                files->v[files->n++] = ops_xstrndup(ops_buf_str(&p), p.len);
            }
        }
        ops_buf_free(&p);
        free(names[i]);
    }
    free(names);
    return rc;
}

int ops_inventory_scan_path(const char *root, ops_sites *out, char *errbuf, size_t errlen)
{
    struct stat st;
    if (stat(root, &st) != 0) {
        snprintf(errbuf, errlen, "%s: %s", root, strerror(errno));
        return -1;
    }
    /* Drop trailing slashes so paths read "dir/file.c". */
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    file_list files = {0};
    int rc = 0;
    if (S_ISDIR(st.st_mode)) {
        char *r = ops_xstrndup(root, n);
        rc = list_dir(r, &files, errbuf, errlen, 0);
        free(r);
    } else {
        files.v = ops_xrealloc(NULL, sizeof *files.v);
        files.v[files.n++] = ops_xstrndup(root, n);
    }
    /* Pass 1: the wrapper macros of every file (a header's macro is used
     * in other files), to a fixpoint for macros over macros. Pass 2: the
     * calls, the macros' expansion sites included. */
    ops_buf *texts = files.n ? ops_xrealloc(NULL, files.n * sizeof *texts) : NULL;
    for (size_t i = 0; i < files.n; i++)
        memset(&texts[i], 0, sizeof texts[i]);
    for (size_t i = 0; rc == 0 && i < files.n; i++)
        rc = read_file(files.v[i], &texts[i], errbuf, errlen);
    ops_macros *m = ops_macros_new();
    for (size_t added = 1, rounds = 0; rc == 0 && added && rounds < 8; rounds++) {
        added = 0;
        for (size_t i = 0; i < files.n; i++)
            added += collect_macros(m, ops_buf_str(&texts[i]), texts[i].len);
    }
    for (size_t i = 0; rc == 0 && i < files.n; i++)
        ops_inventory_scan_text_macros(files.v[i], ops_buf_str(&texts[i]), texts[i].len, m, out);
    for (size_t i = 0; i < files.n; i++) {
        ops_buf_free(&texts[i]);
        free(files.v[i]);
    }
    free(texts);
    free(files.v);
    ops_macros_free(m);
    return rc;
}

static int cmp_site(const void *a, const void *b)
{
    const ops_site *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    if (c)
        return c;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return strcmp(x->kind, y->kind);
}

void ops_sites_sort(ops_sites *s)
{
    if (s->n > 1)
        qsort(s->v, s->n, sizeof *s->v, cmp_site);
}

void ops_sites_free(ops_sites *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].path);
        free(s->v[i].pool);
        free(s->v[i].via);
    }
    free(s->v);
    memset(s, 0, sizeof *s);
}

/*
 * tests/config/test_config_schema.c - the schema table holds together,
 * and docs/config.md's key tables are the table's.
 *
 * Run with the path of docs/config.md (CTest passes it). The docs hold
 * each section's key table between "<!-- schema:pool -->" and
 * "<!-- /schema:pool -->" (and schema:service); the test fails when the
 * text there differs from what the rows generate, and prints the right
 * text. To regenerate after changing a row:
 *     build/tests/config/config_schema docs/config.md --write
 *
 * The row checks make the promises of "Adding a key" (docs/config.md)
 * hold: every default parses, every name is unique snake_case, every enum
 * has names, every LIVE pool key either applies itself to the pool (an
 * apply hook) or says when it takes effect (applied_note), and an
 * extension registered by a program parses, overrides, writes and reloads
 * like a library key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config_internal.h"

static const char *docs_path;
static bool docs_write;

static void check_rows(const sluice_config_key *keys, unsigned n, bool pool_section)
{
    cfg_impl *c = sluice__cfg_new("t");
    assert_non_null(c);
    for (unsigned i = 0; i < n; i++) {
        const sluice_config_key *k = &keys[i];
        assert_non_null(k->name);
        for (const char *s = k->name; *s; s++) {
            assert_true((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_');
        }
        for (unsigned j = 0; j < i; j++) {
            assert_string_not_equal(keys[j].name, k->name);
        }
        assert_true((unsigned)k->type < SLUICE_CONFIG_TYPE_COUNT_);
        assert_true((unsigned)k->reload < SLUICE_CONFIG_RELOAD_COUNT_);
        assert_non_null(k->doc);
        if (k->type == SLUICE_CONFIG_ENUM) {
            assert_non_null(k->enum_names);
            assert_true(k->enum_count > 0);
        }
        if (k->default_value) {
            /* A scratch struct big enough for any section. */
            union {
                sluice_config_pool p;
                sluice_config_service s;
                sluice_config_cluster cl;
                unsigned char raw[1024];
            } scratch;
            memset(&scratch, 0, sizeof scratch);
            char msg[256] = "";
            cfg_set_result r = sluice__cfg_parse_value(c, k, &scratch, k->default_value, msg, sizeof msg);
            if (r != CFG_SET_OK) {
                print_error("%s: default \"%s\" does not parse: %s\n", k->name, k->default_value, msg);
                fail();
            }
        }
        if (pool_section && k->reload == SLUICE_CONFIG_LIVE) {
            if (!k->apply && !k->apply_change && !k->applied_note) {
                print_error("%s: a LIVE pool key needs an apply hook (or an applied_note saying who reads "
                            "it)\n",
                            k->name);
                fail();
            }
        }
    }
    sluice_config_free(&c->pub);
}

static void test_rows(void **state)
{
    (void)state;
    unsigned n = 0;
    const sluice_config_key *k = sluice_config_schema(SLUICE_CONFIG_SECTION_POOL, &n);
    assert_int_equal(n, SLUICE_PK_COUNT_);
    check_rows(k, n, true);
    assert_string_equal(sluice_pool_key_name(SLUICE_PK_QUEUE_CAPACITY), "queue_capacity");
    assert_null(sluice_pool_key_name(SLUICE_PK_COUNT_));
    k = sluice_config_schema(SLUICE_CONFIG_SECTION_SERVICE, &n);
    assert_int_equal(n, SLUICE_SK_COUNT_);
    check_rows(k, n, false);
    k = sluice_config_schema(SLUICE_CONFIG_SECTION_CLUSTER, &n);
    assert_int_equal(n, SLUICE_CK_COUNT_);
    check_rows(k, n, false);
    assert_null(sluice_config_schema(SLUICE_CONFIG_SECTION_COUNT_, &n));
    assert_int_equal(n, 0);
    check_rows(sluice_config_ext_ops.keys, sluice_config_ext_ops.key_count, true);
    check_rows(sluice_config_ext_demo.keys, sluice_config_ext_demo.key_count, true);
}

/* ---- docs/config.md ---------------------------------------------------- */

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (*len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t got = fread(buf + *len, 1, cap - *len - 1, f);
        if (got == 0) {
            break;
        }
        *len += got;
    }
    fclose(f);
    buf[*len] = '\0';
    return buf;
}

static char *generated(sluice_config_section section)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    sluice__cfg_doc_table(section, f);
    fclose(f);
    return text;
}

static void test_docs_match(void **state)
{
    (void)state;
    if (!docs_path) {
        skip();
    }
    size_t len;
    char *doc = read_all(docs_path, &len);
    static const struct {
        sluice_config_section section;
        const char *name;
    } sections[] = {{SLUICE_CONFIG_SECTION_SERVICE, "service"},
                    {SLUICE_CONFIG_SECTION_POOL, "pool"},
                    {SLUICE_CONFIG_SECTION_CLUSTER, "cluster"}};
    bool stale = false;
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        char open_tag[64], close_tag[64];
        snprintf(open_tag, sizeof open_tag, "<!-- schema:%s -->\n", sections[i].name);
        snprintf(close_tag, sizeof close_tag, "<!-- /schema:%s -->", sections[i].name);
        char *a = strstr(doc, open_tag);
        char *b = a ? strstr(a, close_tag) : NULL;
        if (!a || !b) {
            print_error("%s: no \"%s\" ... \"%s\" block\n", docs_path, open_tag, close_tag);
            fail();
        }
        a += strlen(open_tag);
        char *want = generated(sections[i].section);
        size_t have_len = (size_t)(b - a);
        if (strlen(want) != have_len || memcmp(a, want, have_len) != 0) {
            stale = true;
            if (docs_write) {
                size_t head = (size_t)(a - doc), tail_len = len - (size_t)(b - doc);
                size_t wl = strlen(want);
                char *nd = malloc(head + wl + tail_len + 1);
                assert_non_null(nd);
                memcpy(nd, doc, head);
                memcpy(nd + head, want, wl);
                memcpy(nd + head + wl, b, tail_len);
                nd[head + wl + tail_len] = '\0';
                free(doc);
                doc = nd;
                len = head + wl + tail_len;
            } else {
                print_error("%s: the %s key table differs from the schema (src/config/schema.c); it should "
                            "read:\n%s\n(regenerate: config_schema %s --write)\n",
                            docs_path, sections[i].name, want, docs_path);
            }
        }
        free(want);
    }
    if (docs_write && stale) {
        FILE *f = fopen(docs_path, "wb");
        assert_non_null(f);
        fwrite(doc, 1, len, f);
        fclose(f);
        stale = false;
    }
    free(doc);
    assert_false(stale);
}

/* ---- an extension registered by a program ------------------------------ */

typedef struct batch_keys {
    unsigned batch_size;
    uint64_t flush_every_ns;
    char *owner;
} batch_keys;

static const sluice_config_key BATCH_ROWS[] = {
    {.name = "batch_size",
     .type = SLUICE_CONFIG_UINT,
     .offset = offsetof(batch_keys, batch_size),
     .reload = SLUICE_CONFIG_RESTART,
     .min = 1,
     .max = 4096,
     .default_value = "64",
     .doc = "tasks per batch"},
    {.name = "flush_every",
     .type = SLUICE_CONFIG_DURATION,
     .offset = offsetof(batch_keys, flush_every_ns),
     .reload = SLUICE_CONFIG_DECLARATIVE,
     .default_value = "10ms",
     .doc = "flush period"},
    {.name = "owner",
     .type = SLUICE_CONFIG_STRING,
     .offset = offsetof(batch_keys, owner),
     .reload = SLUICE_CONFIG_DECLARATIVE,
     .doc = "team"},
};
static const sluice_config_extension BATCH = {
    .name = "batch",
    .section = SLUICE_CONFIG_SECTION_POOL,
    .keys = BATCH_ROWS,
    .key_count = 3,
    .values_size = sizeof(batch_keys),
};

typedef struct log_buf {
    char text[2048];
    size_t len;
} log_buf;

static void log_line(void *user, const char *line)
{
    log_buf *lb = user;
    int n = snprintf(lb->text + lb->len, sizeof lb->text - lb->len, "%s\n", line);
    if (n > 0 && (size_t)n < sizeof lb->text - lb->len) {
        lb->len += (size_t)n;
    }
}

static void test_extension(void **state)
{
    (void)state;
    const sluice_config_extension *const exts[] = {&BATCH, NULL};
    const char *env[] = {"SLUICE_POOL_PUSH_OWNER=payments", NULL};
    sluice_config_load_opts o = {.envp = env, .extensions = exts};
    const char *text = "pools:\n  - name: push\n    workers: 2\n    queue_capacity: 8\n    batch-size: 128\n";
    sluice_config *c = NULL;
    char err[2048];
    assert_int_equal(sluice_config_load_string(text, strlen(text), "x.yaml", &o, &c, err, sizeof err),
                     SLUICE_OK);
    const sluice_config_ext_values *v = sluice_config_pool_ext(&c->pools[0], &BATCH);
    assert_non_null(v);
    const batch_keys *b = v->values;
    assert_int_equal(b->batch_size, 128);
    assert_int_equal(b->flush_every_ns, 10 * SLUICE_NS_PER_MS); /* the row's default */
    assert_string_equal(b->owner, "payments");
    assert_true(sluice_config_pool_ext_has(&c->pools[0], &BATCH, 0));
    assert_false(sluice_config_pool_ext_has(&c->pools[0], &BATCH, 1));
    assert_int_equal(v->pos[0].line, 5);
    assert_string_equal(v->pos[2].env, "SLUICE_POOL_PUSH_OWNER");
    /* The tools' defaults are still there. */
    assert_non_null(sluice_config_pool_ext(&c->pools[0], &sluice_config_ext_ops));

    /* Bounds and messages come from the row. */
    const char *bad = "pools:\n  - name: push\n    workers: 2\n    queue_capacity: 8\n    batch_size: 0\n";
    sluice_config *c2 = (sluice_config *)0x1;
    o.envp = NULL;
    o.no_env = true;
    assert_int_equal(sluice_config_load_string(bad, strlen(bad), "x.yaml", &o, &c2, err, sizeof err),
                     SLUICE_EINVAL);
    assert_string_equal(err, "x.yaml:5:17: pools[0].batch_size: must be > 0, got 0");
    /* Without the extension the key is unknown. */
    sluice_config_load_opts plain = {.no_env = true};
    assert_int_equal(sluice_config_load_string(text, strlen(text), "x.yaml", &plain, &c2, err, sizeof err),
                     SLUICE_EINVAL);
    assert_non_null(strstr(err, "pools[0].batch-size: unknown key"));

    /* Written out (and read back) with the library's keys. */
    char *out = NULL;
    size_t olen = 0;
    FILE *f = open_memstream(&out, &olen);
    assert_int_equal(sluice_config_write(c, f), SLUICE_OK);
    fclose(f);
    assert_non_null(strstr(out, "    batch_size: 128\n    flush_every: 10ms\n    owner: \"payments\"\n"));
    assert_int_equal(sluice_config_load_string(out, olen, "w.yaml", &o, &c2, err, sizeof err), SLUICE_OK);
    assert_string_equal(((const batch_keys *)sluice_config_pool_ext(&c2->pools[0], &BATCH)->values)->owner,
                        "payments");
    sluice_config_free(c2);
    free(out);

    /* Reload: the declaration moves, the restart-only key stays. */
    const char *next_text = "pools:\n  - name: push\n    workers: 2\n    queue_capacity: 8\n    batch_size: "
                            "256\n    owner: search\n";
    sluice_config *next = NULL;
    assert_int_equal(
        sluice_config_load_string(next_text, strlen(next_text), "x.yaml", &o, &next, err, sizeof err),
        SLUICE_OK);
    log_buf lb = {.len = 0};
    assert_int_equal(sluice_config_apply(&c, next, NULL, log_line, &lb, err, sizeof err), SLUICE_OK);
    assert_string_equal(lb.text,
                        "pool push: declarations (rationale, kind, downstream, alerts, demo) updated\n"
                        "pool push: batch_size 128 -> 256 not applied: needs a restart\n");
    b = sluice_config_pool_ext(&c->pools[0], &BATCH)->values;
    assert_int_equal(b->batch_size, 128);
    assert_string_equal(b->owner, "search");
    sluice_config_free(next);
    sluice_config_free(c);

    /* A key that clashes with a library key is refused at load. */
    static const sluice_config_key CLASH_ROWS[] = {
        {.name = "workers", .type = SLUICE_CONFIG_UINT, .offset = 0, .doc = "x"}};
    static const sluice_config_extension CLASH = {.name = "clash",
                                                  .section = SLUICE_CONFIG_SECTION_POOL,
                                                  .keys = CLASH_ROWS,
                                                  .key_count = 1,
                                                  .values_size = sizeof(unsigned)};
    const sluice_config_extension *const clash[] = {&CLASH, NULL};
    sluice_config_load_opts oc = {.no_env = true, .extensions = clash};
    assert_int_equal(sluice_config_load_string(text, strlen(text), "x.yaml", &oc, &c2, err, sizeof err),
                     SLUICE_EINVAL);
    assert_string_equal(err,
                        "x.yaml: sluice_config_load_opts.extensions: \"clash\": key \"workers\" is already "
                        "defined (or the extension is registered twice)");
}

int main(int argc, char **argv)
{
    docs_path = argc > 1 ? argv[1] : NULL;
    docs_write = argc > 2 && strcmp(argv[2], "--write") == 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_docs_match),
        cmocka_unit_test(test_extension),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

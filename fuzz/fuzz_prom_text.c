/*
 * fuzz/fuzz_prom_text.c - fuzz the Prometheus / OpenMetrics text writer
 * (src/obs/metrics.c) with help strings and label values of every byte.
 *
 * Input: HELP \0 VALUE1 \0 VALUE2 (missing parts are empty). A collector
 * writes a gauge family with that help and one sample labelled
 * {a=VALUE1,b=VALUE2}; a registered counter gets the same help and is
 * added to with the values as its labels (the registry refuses values
 * that are not valid UTF-8 or too long; the collector writer is handed
 * them as they are).
 *
 * Properties, for both formats: the rendered text is valid UTF-8 (a
 * scraper refuses the whole scrape otherwise); every line is a comment
 * ("# HELP name text", "# TYPE name type", "# EOF") or a sample
 * "name{label="value",...} number" whose label values use only the
 * escapes \\, \" and \n; a HELP text has no raw newline and only the
 * escapes its format allows. The registry path renders the series it
 * accepted.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/metrics.h"

#define FUZZ_TARGET "fuzz_prom_text"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *g_text; /* the rendering being checked, for the report */

static void violated(const char *what, const char *line)
{
    fprintf(stderr, "fuzz_prom_text: property violated: %s\nline: %s\n---\n%s\n", what, line, g_text);
    abort();
}

static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80) {
        return 1;
    }
    size_t n;
    unsigned long v, min;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        n = 2, v = s[0] & 0x1Fu, min = 0x80;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        n = 3, v = s[0] & 0x0Fu, min = 0x800;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        n = 4, v = s[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0u) != 0x80) {
            return 0;
        }
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    return (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) ? 0 : n;
}

static bool name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/* An escaped text up to `stop` (a quote) or the end of the line. */
static const char *escaped(const char *p, char stop, bool quote_escape, const char *line)
{
    while (*p && *p != stop) {
        if (*p == '\\') {
            p++;
            if (*p != '\\' && *p != 'n' && !(quote_escape && *p == '"')) {
                violated("a backslash that escapes nothing the format knows", line);
            }
        }
        p++;
    }
    return p;
}

static void check_line(const char *line, bool om)
{
    if (strncmp(line, "# HELP ", 7) == 0) {
        const char *p = line + 7;
        if (!name_char(*p, true)) {
            violated("HELP without a metric name", line);
        }
        while (name_char(*p, false)) {
            p++;
        }
        if (*p != ' ') {
            violated("HELP name not followed by a space", line);
        }
        escaped(p + 1, '\0', om, line);
        return;
    }
    if (strncmp(line, "# TYPE ", 7) == 0 || strcmp(line, "# EOF") == 0) {
        return;
    }
    if (line[0] == '#') {
        violated("an unknown comment line", line);
    }
    const char *p = line;
    if (!name_char(*p, true)) {
        violated("a sample line without a metric name", line);
    }
    while (name_char(*p, false)) {
        p++;
    }
    if (*p == '{') {
        p++;
        while (*p != '}') {
            if (!name_char(*p, true)) {
                violated("a label without a name", line);
            }
            while (name_char(*p, false)) {
                p++;
            }
            if (p[0] != '=' || p[1] != '"') {
                violated("a label name not followed by =\"", line);
            }
            p = escaped(p + 2, '"', true, line);
            if (*p != '"') {
                violated("an unterminated label value", line);
            }
            p++;
            if (*p == ',') {
                p++;
            } else if (*p != '}') {
                violated("labels not separated by commas", line);
            }
        }
        p++;
    }
    if (*p != ' ' || !p[1]) {
        violated("a sample without a value", line);
    }
    char *end = NULL;
    const char *num = p + 1;
    if (strcmp(num, "+Inf") != 0 && strcmp(num, "-Inf") != 0 && strcmp(num, "NaN") != 0) {
        (void)strtod(num, &end);
        if (!end || *end) {
            violated("a sample value that is not a number", line);
        }
    }
}

static void check_render(const char *text, size_t len, bool om)
{
    g_text = text;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_len((const unsigned char *)text + i);
        if (n == 0) {
            violated("the rendering is not valid UTF-8", text + i);
        }
        i += n;
    }
    if (len && text[len - 1] != '\n') {
        violated("the rendering does not end with a newline", text);
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        return;
    }
    memcpy(copy, text, len + 1);
    for (char *line = copy; *line;) {
        char *nl = strchr(line, '\n');
        *nl = '\0';
        check_line(line, om);
        line = nl + 1;
    }
    free(copy);
}

typedef struct input {
    const char *help, *v1, *v2;
} input;

static void collect(sluice_expo *w, void *user)
{
    const input *in = user;
    sluice_expo_family(w, "fuzz_collected", SLUICE_METRIC_GAUGE, in->help);
    sluice_metric_label labels[2] = {{"a", in->v1}, {"b", in->v2}};
    sluice_expo_sample(w, labels, 2, 1.5);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Three NULs: the help text and the two label values each end in one. */
    char *buf = fuzz_input_string(data, size, 8192, 3);
    if (!buf) {
        return 0;
    }
    input in = {buf, NULL, NULL};
    in.v1 = in.help + strlen(in.help) + 1;
    if (in.v1 > buf + size) {
        in.v1 = buf + size;
    }
    in.v2 = in.v1 + strlen(in.v1) + 1;
    if (in.v2 > buf + size + 1) {
        in.v2 = buf + size + 1;
    }

    sluice_metrics *reg = NULL;
    if (sluice_metrics_create(NULL, &reg) != SLUICE_OK) {
        free(buf);
        return 0;
    }
    static const char *const label_names[] = {"a", "b", NULL};
    sluice_metric *m = NULL;
    if (sluice_metrics_counter(reg, "fuzz_registered_total", in.help, label_names, &m) == SLUICE_OK) {
        const char *values[] = {in.v1, in.v2};
        (void)sluice_metric_add(m, values, 2);
    }
    sluice_metrics_add_collector(reg, collect, &in);
    for (int om = 0; om <= 1; om++) {
        char *text = NULL;
        size_t len = 0;
        if (sluice_metrics_render(reg, om ? SLUICE_EXPO_OPENMETRICS : SLUICE_EXPO_PROMETHEUS, &text, &len) ==
            SLUICE_OK) {
            check_render(text, len, om);
            free(text);
        }
    }
    sluice_metrics_destroy(reg);
    free(buf);
    return 0;
}

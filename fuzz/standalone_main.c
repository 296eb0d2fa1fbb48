/*
 * fuzz/standalone_main.c - the main() of a fuzz target built without
 * libFuzzer: every file named on the command line, and every file in a
 * directory named there, is run through LLVMFuzzerTestOneInput once. The
 * corpus replay tests (tests/fuzz) use it, so every input that once
 * mattered stays a regression test under any compiler.
 *
 * Exit status: 0 when every input ran (a violated property aborts), 1 when
 * a file cannot be read.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The inputs are small; anything larger is cut at the same size libFuzzer
 * would use (-max_len is 4096 by default for a new corpus). */
#define REPLAY_MAX (1u << 20)

static int run_file(const char *path, unsigned *ran)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz: cannot open %s\n", path);
        return 1;
    }
    uint8_t *buf = malloc(REPLAY_MAX);
    if (!buf) {
        fclose(f);
        return 1;
    }
    size_t n = fread(buf, 1, REPLAY_MAX, f);
    fclose(f);
    /* A private copy of exactly n bytes, so ASan sees a read past the end. */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) {
        free(buf);
        return 1;
    }
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    (*ran)++;
    return 0;
}

static int run_path(const char *path, unsigned *ran)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "fuzz: cannot stat %s\n", path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        return run_file(path, ran);
    }
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "fuzz: cannot open directory %s\n", path);
        return 1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char child[4096];
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        rc |= run_path(child, ran);
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    unsigned ran = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        rc |= run_path(argv[i], &ran);
    }
    printf("%s: %u inputs, no property violated\n", argv[0], ran);
    return rc;
}

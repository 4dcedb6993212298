/* A minimal test harness: CHECK records a failure with file:line and goes on; a test program's
 * main ends with CHECK_DONE(), which prints "N passed, N failed" and returns the exit status. */
#ifndef MOFO_TEST_CHECK_H
#define MOFO_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int check_passed, check_failed;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            check_passed++;                                                \
        } else {                                                           \
            check_failed++;                                                \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

/* |a - b| <= tol * max(1, |b|)... use CHECK_REL for relative error of whole arrays */
#define CHECK_DONE()                                                          \
    (printf("%d passed, %d failed\n", check_passed, check_failed), check_failed ? 1 : 0)

/* Relative error of an array: ||a - b|| / max(||b||, tiny). */
static inline double rel_err(const float *a, const float *b, long n) {
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num) / (den > 0 ? sqrt(den) : 1e-30);
}

/* Largest elementwise relative error |a-b| / max(|b|, floor). */
static inline double max_rel_err(const float *a, const float *b, long n, double floor) {
    double worst = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]), s = fabs((double)b[i]);
        double r = d / (s > floor ? s : floor);
        if (r > worst) worst = r;
    }
    return worst;
}

/* The whole file at path, NUL-terminated (malloc'd; NULL when it cannot be read); *len (may be
 * NULL) gets its size. */
static inline char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? (char *)malloc((size_t)n + 1) : NULL;
    size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
    if (buf) buf[got] = 0;
    if (len) *len = got;
    fclose(f);
    return buf;
}

#endif

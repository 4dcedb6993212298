/* Every operation of a mofo_backend against naive references (like ggml's test-backend-ops): the
 * checks run on any backend, so main's list of backends is the only place to add one.
 *
 * - All arrays live in the backend's memory: alloc, upload from host arrays, download the results.
 * - Forward: the backend's output against a double-precision reference written here from the maths
 *   (plain loops), on small random shapes with odd sizes, from a fixed-seed RNG; values in [-1, 1],
 *   widened to +-1.5..3 where an op's curvature or softmax needs it (attention, GELU, SwiGLU, logits).
 * - Backward: L = sum(R * out) for a fixed random R; the reference gradient of each input and
 *   parameter is the central difference of the double forward (h = 1e-4: error ~1e-8), against
 *   the backend's backward given dout = R. Outputs that accumulate ("+=") are pre-filled with
 *   known random values that the backend must add to; those that overwrite ("=") with garbage.
 * - Error: max |got - ref| / max(1, max |ref|) over the whole array (err_vs). Each tolerance is
 *   about 10x the error measured on the CPU backend, written next to its check as "measured E". */
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "backend/backend.h"
#include "mofo/error.h"
#include "check.h"

/* ---- fixed-seed random numbers (splitmix64) ---- */
static uint64_t rng_state = 20240601;
static uint64_t splitmix(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double urand(void) { return (double)(splitmix() >> 11) * 0x1.0p-52 - 1.0; } /* [-1, 1) */
static int irand(int n) { return (int)(splitmix() % (uint64_t)n); }

/* ---- arrays: host ones and the backend's, all released at the end of each check ---- */
static void *host_keep[256];
static float *dev_keep[256];
static int n_host, n_dev;

static void *hkeep(void *p) {
    if (!p || n_host == 256) {
        fprintf(stderr, "test_ops: out of host arrays\n");
        exit(2);
    }
    return host_keep[n_host++] = p;
}
static double *hd(size_t n) { return hkeep(calloc(n + 1, sizeof(double))); }
static float *hrand(size_t n, double s) { /* s * uniform [-1, 1) */
    float *x = hkeep(malloc((n + 1) * sizeof *x));
    for (size_t i = 0; i < n; i++) x[i] = (float)(s * urand());
    return x;
}
static double *widen(const float *x, size_t n) {
    double *y = hd(n);
    for (size_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}
static float *dev(const mofo_backend *be, const float *host, size_t n) { /* zeroed, or a copy of host */
    float *d = be->alloc(n);
    if (!d || n_dev == 256) {
        fprintf(stderr, "test_ops: %s: out of memory\n", be->name);
        exit(2);
    }
    if (host) be->upload(d, host, n);
    return dev_keep[n_dev++] = d;
}
static float *down(const mofo_backend *be, const float *d, size_t n) {
    float *h = hkeep(malloc((n + 1) * sizeof *h));
    be->download(h, d, n);
    return h;
}
static void release(const mofo_backend *be) {
    while (n_dev) be->free(dev_keep[--n_dev]);
    while (n_host) free(host_keep[--n_host]);
}

/* ---- errors ---- */
/* max |got - (base + ref)| / max(1, max |base + ref|); base (the pre-fill) may be NULL */
static double err_vs(const float *got, const double *ref, const double *base, size_t n) {
    double num = 0, den = 1;
    for (size_t i = 0; i < n; i++) {
        double r = ref[i] + (base ? base[i] : 0.0), d = fabs(got[i] - r);
        if (!(d <= num)) num = d; /* NaN sticks */
        if (fabs(r) > den) den = fabs(r);
    }
    return num / den;
}
/* err_vs over the columns [c0, c1) of rows of ld floats */
static double err_cols(const float *got, const double *ref, const double *base, size_t rows, int ld, int c0, int c1) {
    size_t n = rows * (size_t)(c1 - c0);
    float *g = malloc(n * sizeof *g);
    double *r = malloc(n * sizeof *r), *b = malloc(n * sizeof *b);
    for (size_t i = 0; i < rows; i++)
        for (int j = c0; j < c1; j++) {
            size_t k = i * (size_t)(c1 - c0) + (size_t)(j - c0), src = i * (size_t)ld + (size_t)j;
            g[k] = got[src], r[k] = ref[src], b[k] = base ? base[src] : 0.0;
        }
    double e = err_vs(g, r, b, n);
    free(g), free(r), free(b);
    return e;
}
static double err1(double got, double ref) { return fabs(got - ref) / fmax(1.0, fabs(ref)); }

static const char *be_name;
static void report(double err, double tol, const char *fmt, ...) {
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    printf("  %-62s %.2e (tol %.2g)\n", what, err, tol);
    CHECK(err <= tol, "%s: %s: error %.3g above %.3g", be_name, what, err, tol);
}

/* ---- naive double references ---- */
typedef struct { /* one op's inputs, for a forward the finite differences can call */
    double *x, *w, *b; /* input; weight (wte for embed); bias (b of layernorm, wpe for embed) */
    const double *cs, *sn; /* RoPE's table (T, HD/2) */
    const int *ids;        /* token ids, targets */
    int B, T, N, C, OC, NH, NKV, HD, window, V;
    double eps;
} args;
typedef void (*fwd_fn)(const args *a, double *out);

static void embed_ref(const args *a, double *out) {
    for (int bt = 0; bt < a->B * a->T; bt++)
        for (int i = 0; i < a->C; i++)
            out[(size_t)bt * a->C + i] =
                a->w[(size_t)a->ids[bt] * a->C + i] + (a->b ? a->b[(size_t)(bt % a->T) * a->C + i] : 0.0);
}
/* out = (x - mean) / sqrt(var + eps) w + b, the variance biased (divided by C) */
static void layernorm_ref(const args *a, double *out, double *mean, double *rstd) {
    for (int n = 0; n < a->N; n++) {
        const double *x = a->x + (size_t)n * a->C;
        double m = 0, v = 0;
        for (int i = 0; i < a->C; i++) m += x[i] / a->C;
        for (int i = 0; i < a->C; i++) v += (x[i] - m) * (x[i] - m) / a->C;
        double r = 1.0 / sqrt(v + a->eps);
        for (int i = 0; i < a->C; i++) out[(size_t)n * a->C + i] = (x[i] - m) * r * a->w[i] + a->b[i];
        if (mean) mean[n] = m, rstd[n] = r;
    }
}
static void layernorm_out(const args *a, double *out) { layernorm_ref(a, out, NULL, NULL); }
/* out = x / sqrt(mean(x^2) + eps) w */
static void rmsnorm_ref(const args *a, double *out, double *rstd) {
    for (int n = 0; n < a->N; n++) {
        const double *x = a->x + (size_t)n * a->C;
        double ms = 0;
        for (int i = 0; i < a->C; i++) ms += x[i] * x[i] / a->C;
        double r = 1.0 / sqrt(ms + a->eps);
        for (int i = 0; i < a->C; i++) out[(size_t)n * a->C + i] = x[i] * r * a->w[i];
        if (rstd) rstd[n] = r;
    }
}
static void rmsnorm_out(const args *a, double *out) { rmsnorm_ref(a, out, NULL); }
/* out[n][o] = b[o] + sum_c x[n][c] w[o][c] */
static void matmul_ref(const args *a, double *out) {
    for (int n = 0; n < a->N; n++)
        for (int o = 0; o < a->OC; o++) {
            double s = a->b ? a->b[o] : 0.0;
            for (int c = 0; c < a->C; c++) s += a->x[(size_t)n * a->C + c] * a->w[(size_t)o * a->C + c];
            out[(size_t)n * a->OC + o] = s;
        }
}
/* rotate_half on the NH query and NKV key heads of each row of x (B, T, QKV); values copied */
static void rope_ref(const args *a, double *out) {
    int QKV = (a->NH + 2 * a->NKV) * a->HD, half = a->HD / 2;
    memcpy(out, a->x, (size_t)a->B * a->T * QKV * sizeof *out);
    for (int bt = 0; bt < a->B * a->T; bt++)
        for (int h = 0; h < a->NH + a->NKV; h++) {
            const double *x = a->x + (size_t)bt * QKV + h * a->HD, *c = a->cs + (bt % a->T) * half,
                         *s = a->sn + (bt % a->T) * half;
            double *y = out + (size_t)bt * QKV + h * a->HD;
            for (int i = 0; i < half; i++) {
                y[i] = x[i] * c[i] - x[i + half] * s[i];
                y[i + half] = x[i + half] * c[i] + x[i] * s[i];
            }
        }
}
/* per head: softmax(q k^T / sqrt(HD)) v over the visible keys, query head h on kv head h / (NH/NKV) */
static void attention_ref(double *out, double *lse, const double *q, int ldq, const double *k, const double *v,
                          int ldkv, int B, int T, int pos0, int NH, int NKV, int HD, int window) {
    int P = pos0 + T;
    double *s = malloc((size_t)P * sizeof *s);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                int kh = h / (NH / NKV), p = pos0 + t, u0 = window > 0 && p - window + 1 > 0 ? p - window + 1 : 0;
                const double *qr = q + ((size_t)b * T + t) * ldq + (size_t)h * HD;
                double mx = -INFINITY, z = 0;
                for (int u = u0; u <= p; u++) {
                    const double *kr = k + ((size_t)b * P + u) * ldkv + (size_t)kh * HD;
                    s[u] = 0;
                    for (int i = 0; i < HD; i++) s[u] += qr[i] * kr[i] / sqrt((double)HD);
                    mx = fmax(mx, s[u]);
                }
                for (int u = u0; u <= p; u++) z += s[u] = exp(s[u] - mx);
                if (lse) lse[((size_t)b * NH + h) * T + t] = mx + log(z);
                for (int i = 0; i < HD; i++) {
                    double o = 0;
                    for (int u = u0; u <= p; u++) o += s[u] / z * v[((size_t)b * P + u) * ldkv + (size_t)kh * HD + i];
                    out[((size_t)b * T + t) * NH * HD + (size_t)h * HD + i] = o;
                }
            }
    free(s);
}
static void attention_packed(const args *a, double *out) { /* q, k, v from x (B, T, QKV), pos0 = 0 */
    int QKV = (a->NH + 2 * a->NKV) * a->HD;
    attention_ref(out, NULL, a->x, QKV, a->x + a->NH * a->HD, a->x + (a->NH + a->NKV) * a->HD, QKV, a->B, a->T,
                  0, a->NH, a->NKV, a->HD, a->window);
}
static void gelu_ref(const args *a, double *out) {
    for (int i = 0; i < a->N; i++) {
        double x = a->x[i];
        out[i] = 0.5 * x * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
    }
}
static void swiglu_ref(const args *a, double *out) { /* row [gate (F) | up (F)], F = C */
    for (int n = 0; n < a->N; n++)
        for (int i = 0; i < a->C; i++) {
            double g = a->x[(size_t)n * 2 * a->C + i], u = a->x[(size_t)n * 2 * a->C + a->C + i];
            out[(size_t)n * a->C + i] = g / (1 + exp(-g)) * u;
        }
}
/* losses[n] = logsumexp(logits[n]) - logits[n][target], 0 where the target is -100; the count */
static int ce_ref(const args *a, double *losses) {
    int count = 0;
    for (int n = 0; n < a->N; n++) {
        const double *l = a->x + (size_t)n * a->V;
        losses[n] = 0;
        if (a->ids[n] == -100) continue;
        double mx = -INFINITY, z = 0;
        for (int i = 0; i < a->V; i++) mx = fmax(mx, l[i]);
        for (int i = 0; i < a->V; i++) z += exp(l[i] - mx);
        losses[n] = mx + log(z) - l[a->ids[n]];
        count++;
    }
    return count;
}
static void ce_losses(const args *a, double *out) { ce_ref(a, out); }

/* g (n) = dL/dx for L = sum_j R[j] f(a)[j], by central differences on x (one of a's inputs) */
static void fd_grad(fwd_fn f, const args *a, double *x, size_t n, const double *R, size_t nout, double *g) {
    const double h = 1e-4;
    double *out = malloc(nout * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        double x0 = x[i], lp = 0, lm = 0;
        x[i] = x0 + h;
        f(a, out);
        for (size_t j = 0; j < nout; j++) lp += R[j] * out[j];
        x[i] = x0 - h;
        f(a, out);
        for (size_t j = 0; j < nout; j++) lm += R[j] * out[j];
        x[i] = x0;
        g[i] = (lp - lm) / (2 * h);
    }
    free(out);
}

/* ---- the checks, one per operation (or forward/backward pair) ---- */
static void check_memory(const mofo_backend *be) {
    const size_t n = 1001;
    float *x = hrand(n, 1), *y = hrand(n, 1), *d = dev(be, NULL, n), *dx = dev(be, x, n), *dy = dev(be, y, n);
    double *ref = hd(n);
    /* memory and element-wise: exact in IEEE fp32 (one correctly rounded operation), measured 0, tolerance 0 */
    report(err_vs(down(be, d, n), ref, NULL, n), 0, "alloc zeroed");
    report(err_vs(down(be, dx, n), widen(x, n), NULL, n), 0, "upload/download");
    be->fill(d, 0.375f, n - 3); /* the last 3 stay 0 */
    for (size_t i = 0; i < n - 3; i++) ref[i] = 0.375;
    report(err_vs(down(be, d, n), ref, NULL, n), 0, "fill");
    be->copy(d, dx, n - 1);
    memcpy(ref, widen(x, n), (n - 1) * sizeof *ref);
    ref[n - 1] = 0;
    report(err_vs(down(be, d, n), ref, NULL, n), 0, "copy");
    be->add(dy, dx, n);
    for (size_t i = 0; i < n; i++) ref[i] = (float)((double)y[i] + x[i]);
    report(err_vs(down(be, dy, n), ref, NULL, n), 0, "add");
    be->scale(dx, -0.3f, n);
    for (size_t i = 0; i < n; i++) ref[i] = (float)((double)x[i] * -0.3f);
    report(err_vs(down(be, dx, n), ref, NULL, n), 0, "scale");
    be->upload(dx, x, n);
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) s += x[i], s2 += (double)x[i] * x[i];
    /* sum measured 0, sumsq 3.2e-16 (another summation order in double): both 4e-15 */
    report(err1(be->sum(dx, n), s), 4e-15, "sum");
    report(err1(be->sumsq(dx, n), s2), 4e-15, "sumsq");
    CHECK(be->sum(dx, n) == be->sum(dx, n) && be->sumsq(dx, n) == be->sumsq(dx, n), "sum, sumsq deterministic");

    float *theta0 = hrand(n, 1), *g = hrand(n, 1);
    for (size_t i = 0; i < n; i += 4) theta0[i] = x[i]; /* theta == theta0: l1's gradient is 0 */
    float *dt0 = dev(be, theta0, n);
    for (int l1 = 0; l1 < 2; l1++) {
        const double reg = 0.01;
        double ret = 0, *gref = hd(n);
        for (size_t i = 0; i < n; i++) {
            double dd = (double)x[i] - theta0[i];
            gref[i] = l1 ? reg * (dd > 0 ? 1 : dd < 0 ? -1 : 0) : 2 * reg * dd;
            ret += l1 ? reg * fabs(dd) : reg * dd * dd;
        }
        be->upload(dy, g, n);
        double got = be->penalty_grad(l1 ? MOFO_PENALTY_L1 : MOFO_PENALTY_L2, reg, dx, dt0, dy, (int64_t)n);
        float *gg = down(be, dy, n);
        /* g measured 5.9e-8 (fp32 adds to the pre-fill); the return 2.4e-9 (d = theta - theta0 in fp32) */
        report(err_vs(gg, gref, widen(g, n), n), 6e-7, "penalty_grad %s g +=", l1 ? "l1" : "l2");
        report(err1(got, ret), 3e-8, "penalty_grad %s return", l1 ? "l1" : "l2");
        int same = 1;
        for (size_t i = 0; l1 && i < n; i += 4) same &= gg[i] == g[i];
        CHECK(same, "penalty_grad l1: no pull where theta == theta0");
    }
    /* the distance of theta (x) from theta0, where a quarter of the entries are equal */
    double ref_sq = 0, ref_base = 0, sums[3] = {0};
    long ref_changed = 0;
    for (size_t i = 0; i < n; i++) {
        double dd = (double)x[i] - theta0[i];
        ref_sq += dd * dd, ref_base += (double)theta0[i] * theta0[i], ref_changed += x[i] != theta0[i];
    }
    be->distance(dt0, dx, n, sums);
    /* measured up to 1.6e-15 and 3.4e-16 (other summation orders in double): 4e-15, as sum */
    report(err1(sums[0], ref_sq), 4e-15, "distance sum (b - a)^2");
    report(err1(sums[1], ref_base), 4e-15, "distance sum a^2");
    CHECK(sums[2] == (double)ref_changed && ref_changed < (long)n, "distance: %g entries differ, %ld expected", sums[2],
          ref_changed);
    release(be);
}

/* ---- matrix products in each precision ---- */

/* The reference rounding of a product's input, written apart from the backends' (backend/rounding.h):
 * x to `bits` significant bits (bf16 8, tf32 11) by frexp and nearbyint (to nearest, ties to even). */
static float round_ref(float x, mofo_precision prec) {
    int bits = prec == MOFO_PRECISION_BF16 ? 8 : prec == MOFO_PRECISION_TF32 ? 11 : 24, e;
    double m = frexp(x, &e); /* x = m 2^e, 0.5 <= |m| < 1 */
    return (float)ldexp(nearbyint(ldexp(m, bits)), e - bits);
}
static float *hround(const float *x, size_t n, mofo_precision prec) {
    float *r = hkeep(malloc((n + 1) * sizeof *r));
    for (size_t i = 0; i < n; i++) r[i] = round_ref(x[i], prec);
    return r;
}

/* C (M, ldc) = alpha op(A) op(B) + beta C in double, the padding columns N..ldc-1 kept */
static double *gemm_ref(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda, const float *Bm,
                        int ldb, float beta, const float *Cm, int ldc) {
    double *ref = hd((size_t)M * ldc);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < ldc; j++) {
            double s = 0;
            for (int k = 0; k < K && j < N; k++)
                s += (double)(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? Bm[j * ldb + k] : Bm[k * ldb + j]);
            ref[i * ldc + j] = j < N ? alpha * s + beta * Cm[i * ldc + j] : Cm[i * ldc + j];
        }
    return ref;
}

static const char *PREC[] = {"fp32", "tf32", "bf16"};

static void check_gemm(const mofo_backend *be) {
    static const int shapes[][3] = {{5, 7, 13}, {1, 17, 33}, {33, 9, 40}}; /* M, N, K */
    for (mofo_precision prec = MOFO_PRECISION_FP32; prec <= MOFO_PRECISION_BF16; prec++)
        for (int sh = 0; sh < 3; sh++)
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++) {
                    int M = shapes[sh][0], N = shapes[sh][1], K = shapes[sh][2];
                    int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2; /* padded rows */
                    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
                    float alpha = 0.75f, beta = sh == 1 ? 0.0f : -0.5f; /* beta 0: C's old values ignored */
                    float *A = hrand(na, 1), *Bm = hrand(nb, 1), *Cm = hrand(nc, 1);
                    /* the reference of the rounded inputs; C and the accumulation stay fp32 */
                    double *ref = gemm_ref(ta, tb, M, N, K, alpha, hround(A, na, prec), lda, hround(Bm, nb, prec), ldb,
                                           beta, Cm, ldc);
                    float *dC = dev(be, Cm, nc);
                    be->gemm(prec, ta, tb, M, N, K, alpha, dev(be, A, na), lda, dev(be, Bm, nb), ldb, beta, dC, ldc);
                    float *got = down(be, dC, nc);
                    /* measured 3.2e-7 (fp32), 2.2e-7 (tf32), 1.1e-7 (bf16: fewer bits, exact products) */
                    double tol = prec == MOFO_PRECISION_FP32 ? 3e-6 : prec == MOFO_PRECISION_TF32 ? 2e-6 : 1e-6;
                    report(err_vs(got, ref, NULL, nc), tol, "gemm %s %c%c M=%d N=%d K=%d beta=%g", PREC[prec],
                           "NT"[ta], "NT"[tb], M, N, K, beta);
                    if (prec == MOFO_PRECISION_FP32) {
                        release(be);
                        continue;
                    }
                    /* against the unrounded inputs the error is the format's: it must show (the inputs were
                     * rounded) and stay within it. measured 1.0e-4..3.3e-4 (tf32), 1.4e-3..4.5e-3 (bf16) */
                    double *exact = gemm_ref(ta, tb, M, N, K, alpha, A, lda, Bm, ldb, beta, Cm, ldc), e = err_vs(got, exact, NULL, nc);
                    double lo = prec == MOFO_PRECISION_BF16 ? 2e-4 : 2e-5, hi = prec == MOFO_PRECISION_BF16 ? 3e-2 : 3e-3;
                    CHECK(e > lo, "gemm %s: %.2e from the unrounded product: the inputs were not rounded", PREC[prec], e);
                    report(e, hi, "gemm %s vs unrounded inputs %c%c M=%d N=%d K=%d", PREC[prec], "NT"[ta], "NT"[tb], M,
                           N, K);
                    release(be);
                }
}

/* The products' inputs are rounded (prec), the bias and its gradient are not: the references are
 * those of the rounded inputs (and of the rounded dout for dinp and dw). */
static void check_matmul(const mofo_backend *be) {
    /* N, C, OC (600: the bias gradient over several chunks of 256 rows on CUDA) */
    static const int shapes[][3] = {{5, 13, 7}, {1, 7, 33}, {17, 33, 9}, {600, 3, 5}};
    for (int k = 0; k < 3 * 4; k++) { /* fp32, tf32, bf16, each on every shape */
        mofo_precision prec = (mofo_precision)(k / 4);
        int sh = k % 4, N = shapes[sh][0], C = shapes[sh][1], OC = shapes[sh][2];
        size_t ni = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
        float *inp = hrand(ni, 1), *w = hrand(nw, 1), *bias = hrand(OC, 1), *R = hrand(no, 1);
        args a = {.x = widen(hround(inp, ni, prec), ni), .w = widen(hround(w, nw, prec), nw), .b = widen(bias, OC),
                  .N = N, .C = C, .OC = OC};
        float *d_inp = dev(be, inp, ni), *d_w = dev(be, w, nw), *d_b = dev(be, bias, OC), *d_out = dev(be, NULL, no);
        double *ref = hd(no);
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            a.b = with_bias ? widen(bias, OC) : NULL;
            matmul_ref(&a, ref);
            be->matmul_forward(prec, d_out, d_inp, d_w, with_bias ? d_b : NULL, N, C, OC);
            /* measured 1.5e-7 (CPU), 2.0e-7 (CUDA on the simulator) */
            report(err_vs(down(be, d_out, no), ref, NULL, no), 1e-6, "matmul_forward %s N=%d C=%d OC=%d%s", PREC[prec],
                   N, C, OC, with_bias ? " +bias" : "");
        }
        double *Rd = widen(hround(R, no, prec), no), *g_inp = hd(ni), *g_w = hd(nw), *g_b = hd(OC);
        fd_grad(matmul_ref, &a, a.x, ni, Rd, no, g_inp);
        fd_grad(matmul_ref, &a, a.w, nw, Rd, no, g_w);
        fd_grad(matmul_ref, &a, a.b, OC, widen(R, no), no, g_b);
        float *junk = hrand(ni, 5), *p_w = hrand(nw, 1), *p_b = hrand(OC, 1);
        float *d_R = dev(be, R, no), *d_dinp = dev(be, NULL, ni), *d_dw = dev(be, NULL, nw), *d_db = dev(be, NULL, OC);
        for (int skip = 0; skip < 4; skip++) { /* 0: all; 1: no dinp; 2: frozen w (no dw); 3: no bias */
            be->upload(d_dinp, junk, ni); /* dinp = */
            be->upload(d_dw, p_w, nw);    /* dw += */
            be->upload(d_db, p_b, OC);    /* dbias += */
            be->matmul_backward(prec, skip == 1 ? NULL : d_dinp, skip == 2 ? NULL : d_dw, skip == 3 ? NULL : d_db,
                                d_R, d_inp, d_w, N, C, OC);
            const char *tag = (const char *[]){"", " (dinp NULL)", " (dw NULL)", " (dbias NULL)"}[skip];
            /* measured dinp 9.9e-8, dw 2.5e-7 (CPU) and 5.0e-7 (CUDA), dbias 4.9e-7 and 7.3e-7 (N=600: sums
             * of 600 floats) */
            if (skip != 1)
                report(err_vs(down(be, d_dinp, ni), g_inp, NULL, ni), 1.5e-6,
                       "matmul_backward %s dinp = N=%d C=%d OC=%d%s", PREC[prec], N, C, OC, tag);
            if (skip != 2)
                report(err_vs(down(be, d_dw, nw), g_w, widen(p_w, nw), nw), 1.5e-6,
                       "matmul_backward %s dw += N=%d C=%d OC=%d%s", PREC[prec], N, C, OC, tag);
            if (skip != 3)
                report(err_vs(down(be, d_db, OC), g_b, widen(p_b, OC), OC), 1.5e-6,
                       "matmul_backward %s dbias += N=%d C=%d OC=%d%s", PREC[prec], N, C, OC, tag);
        }
        release(be);
    }
}

static void check_embed(const mofo_backend *be) {
    const int B = 2, T = 5, C = 7, V = 11, maxT = 9; /* wpe has more rows than T */
    size_t n = (size_t)B * T * C, nte = (size_t)V * C, npe = (size_t)maxT * C;
    int ids[10];
    for (int i = 0; i < B * T; i++) ids[i] = irand(V);
    ids[7] = ids[2]; /* a repeated token: its gradient rows add up */
    float *wte = hrand(nte, 1), *wpe = hrand(npe, 1), *R = hrand(n, 1);
    args a = {.w = widen(wte, nte), .b = widen(wpe, npe), .ids = ids, .B = B, .T = T, .C = C};
    float *d_wte = dev(be, wte, nte), *d_wpe = dev(be, wpe, npe), *d_out = dev(be, NULL, n);
    double *ref = hd(n);
    for (int with_wpe = 0; with_wpe < 2; with_wpe++) {
        a.b = with_wpe ? widen(wpe, npe) : NULL;
        embed_ref(&a, ref);
        be->embed_forward(d_out, ids, d_wte, with_wpe ? d_wpe : NULL, B, T, C);
        /* measured 3.5e-8 (wte + wpe rounded to fp32) */
        report(err_vs(down(be, d_out, n), ref, NULL, n), 4e-7, "embed_forward B=%d T=%d C=%d%s", B, T, C,
               with_wpe ? " +wpe" : "");
    }
    double *Rd = widen(R, n), *g_te = hd(nte), *g_pe = hd(npe);
    fd_grad(embed_ref, &a, a.w, nte, Rd, n, g_te);
    fd_grad(embed_ref, &a, a.b, npe, Rd, n, g_pe); /* rows T..maxT-1: 0 */
    float *p_te = hrand(nte, 1), *p_pe = hrand(npe, 1), *d_R = dev(be, R, n);
    float *d_dte = dev(be, p_te, nte), *d_dpe = dev(be, p_pe, npe); /* both += */
    be->embed_backward(d_dte, d_dpe, d_R, ids, B, T, C);
    /* dwte measured 5.6e-8, dwpe 3.7e-8 (fp32 adds to the pre-fill) */
    report(err_vs(down(be, d_dte, nte), g_te, widen(p_te, nte), nte), 6e-7, "embed_backward dwte +=");
    report(err_vs(down(be, d_dpe, npe), g_pe, widen(p_pe, npe), npe), 4e-7, "embed_backward dwpe +=");
    be->upload(d_dte, p_te, nte);
    be->embed_backward(d_dte, NULL, d_R, ids, B, T, C); /* no positional table */
    report(err_vs(down(be, d_dte, nte), g_te, widen(p_te, nte), nte), 6e-7, "embed_backward dwte += (dwpe NULL)");
    be->embed_backward(NULL, NULL, d_R, ids, B, T, C); /* frozen embeddings: accepted */
    CHECK(1, "embed_backward with NULL gradients returns");
    release(be);
}

static void check_norms(const mofo_backend *be) {
    /* N, C (301: rows over 256 threads; 600: the gains' sums over several chunks of 256 rows on CUDA) */
    static const int shapes[][2] = {{5, 7}, {1, 33}, {17, 13}, {3, 301}, {600, 5}};
    for (int sh = 0; sh < 5; sh++)
        for (int rms = 0; rms < 2; rms++) {
            int N = shapes[sh][0], C = shapes[sh][1];
            size_t n = (size_t)N * C;
            const char *op = rms ? "rmsnorm" : "layernorm";
            float *inp = hrand(n, 1), *w = hrand(C, 0.5), *b = hrand(C, 1), *R = hrand(n, 1);
            for (size_t i = 0; i < n; i++) inp[i] += 0.5f; /* a mean away from 0 */
            for (int i = 0; i < C; i++) w[i] += 1.0f;
            args a = {.x = widen(inp, n), .w = widen(w, C), .b = widen(b, C), .N = N, .C = C, .eps = 1e-5};
            float *d_inp = dev(be, inp, n), *d_w = dev(be, w, C), *d_b = dev(be, b, C), *d_out = dev(be, NULL, n);
            float *d_mean = dev(be, NULL, N), *d_rstd = dev(be, NULL, N);
            double *ref = hd(n), *mean = hd(N), *rstd = hd(N);
            if (rms) {
                rmsnorm_ref(&a, ref, rstd);
                be->rmsnorm_forward(d_out, d_rstd, d_inp, d_w, N, C, (float)a.eps);
            } else {
                layernorm_ref(&a, ref, mean, rstd);
                be->layernorm_forward(d_out, d_mean, d_rstd, d_inp, d_w, d_b, N, C, (float)a.eps);
                /* measured 5.0e-8 */
                report(err_vs(down(be, d_mean, N), mean, NULL, N), 3e-7, "layernorm_forward mean N=%d C=%d", N, C);
            }
            /* out measured 1.4e-7, rstd 5.1e-8 */
            report(err_vs(down(be, d_out, n), ref, NULL, n), 1.3e-6, "%s_forward out N=%d C=%d", op, N, C);
            report(err_vs(down(be, d_rstd, N), rstd, NULL, N), 5e-7, "%s_forward rstd N=%d C=%d", op, N, C);

            fwd_fn f = rms ? rmsnorm_out : layernorm_out;
            double *Rd = widen(R, n), *g_inp = hd(n), *g_w = hd(C), *g_b = hd(C);
            fd_grad(f, &a, a.x, n, Rd, n, g_inp);
            fd_grad(f, &a, a.w, C, Rd, n, g_w);
            fd_grad(f, &a, a.b, C, Rd, n, g_b);
            float *p_inp = hrand(n, 1), *p_w = hrand(C, 1), *p_b = hrand(C, 1), *d_R = dev(be, R, n);
            float *d_dinp = dev(be, NULL, n), *d_dw = dev(be, NULL, C), *d_db = dev(be, NULL, C);
            for (int frozen = 0; frozen < 2; frozen++) { /* frozen: dw (and db) NULL */
                be->upload(d_dinp, p_inp, n); /* all += */
                be->upload(d_dw, p_w, C);
                be->upload(d_db, p_b, C);
                if (rms)
                    be->rmsnorm_backward(d_dinp, frozen ? NULL : d_dw, d_R, d_inp, d_w, d_rstd, N, C);
                else
                    be->layernorm_backward(d_dinp, frozen ? NULL : d_dw, frozen ? NULL : d_db, d_R, d_inp, d_w, d_mean,
                                           d_rstd, N, C);
                const char *tag = frozen ? " (dw NULL)" : "";
                /* dinp measured 2.2e-7, dw 7.9e-8, db 8.5e-8 (N=600: the CUDA gains' sums over 3 chunks) */
                report(err_vs(down(be, d_dinp, n), g_inp, widen(p_inp, n), n), 1.5e-6,
                       "%s_backward dinp += N=%d C=%d%s", op, N, C, tag);
                if (frozen) continue;
                report(err_vs(down(be, d_dw, C), g_w, widen(p_w, C), C), 7.5e-7, "%s_backward dw += N=%d C=%d", op, N, C);
                if (!rms)
                    report(err_vs(down(be, d_db, C), g_b, widen(p_b, C), C), 8e-7, "%s_backward db += N=%d C=%d", op,
                           N, C);
            }
            release(be);
        }
}

static void check_rope(const mofo_backend *be) {
    static const int shapes[][5] = {{2, 5, 4, 2, 6}, {1, 9, 4, 1, 8}, {2, 3, 2, 2, 8}}; /* B, T, NH, NKV, HD */
    for (int sh = 0; sh < 3; sh++) {
        int B = shapes[sh][0], T = shapes[sh][1], NH = shapes[sh][2], NKV = shapes[sh][3], HD = shapes[sh][4];
        int half = HD / 2, QKV = (NH + 2 * NKV) * HD;
        size_t n = (size_t)B * T * QKV, nt = (size_t)T * half;
        float *cs = hrand(nt, 0), *sn = hrand(nt, 0);
        for (int t = 0; t < T; t++)
            for (int i = 0; i < half; i++) {
                double ang = t * pow(10000.0, -2.0 * i / HD); /* inv_freq[i] = theta^(-2i/HD) */
                cs[t * half + i] = (float)cos(ang), sn[t * half + i] = (float)sin(ang);
            }
        float *qkv = hrand(n, 1), *R = hrand(n, 1);
        args a = {.x = widen(qkv, n), .cs = widen(cs, nt), .sn = widen(sn, nt)};
        a.B = B, a.T = T, a.NH = NH, a.NKV = NKV, a.HD = HD;
        float *d_cs = dev(be, cs, nt), *d_sn = dev(be, sn, nt), *d_x = dev(be, qkv, n);
        double *ref = hd(n), *g = hd(n);
        rope_ref(&a, ref);
        be->rope_forward(d_x, d_cs, d_sn, B, T, NH, NKV, HD);
        /* measured 7.3e-8; the value heads are in the comparison, unchanged */
        report(err_vs(down(be, d_x, n), ref, NULL, n), 8e-7, "rope_forward B=%d T=%d NH=%d NKV=%d HD=%d", B, T, NH,
               NKV, HD);
        fd_grad(rope_ref, &a, a.x, n, widen(R, n), n, g);
        be->upload(d_x, R, n);
        be->rope_backward(d_x, d_cs, d_sn, B, T, NH, NKV, HD); /* in place */
        /* measured 5.8e-8 */
        report(err_vs(down(be, d_x, n), g, NULL, n), 6e-7, "rope_backward B=%d T=%d NH=%d NKV=%d HD=%d", B, T, NH,
               NKV, HD);
        release(be);
    }
}

static void check_attention(const mofo_backend *be) {
    static const int cases[][7] = {
        /* B, T, NH, NKV, HD, window, pos0 */
        {2, 9, 4, 2, 8, 0, 0}, {1, 7, 4, 1, 6, 3, 0}, {2, 5, 4, 4, 4, 0, 0}, {1, 9, 2, 2, 8, 4, 0},
        {2, 4, 4, 2, 8, 0, 5}, {1, 3, 4, 1, 6, 3, 6}, {1, 1, 4, 4, 8, 0, 8}, /* pos0 > 0: a KV cache's rows */
        {1, 6, 2, 1, 72, 0, 0}, {1, 3, 2, 2, 40, 0, 4}, /* heads over 32 (a warp's lanes hold several entries) */
        /* several tiles of rows and keys (the CUDA kernels' 16 rows, 32, 16 or 8 keys), windows across
         * them, a cache longer than a tile; heads over 128 (the smaller tiles) */
        {1, 40, 2, 1, 8, 0, 0}, {2, 37, 4, 2, 6, 11, 0}, {1, 20, 2, 1, 8, 0, 30}, {1, 18, 2, 2, 136, 5, 0},
        {1, 1, 2, 1, 136, 0, 19},
    };
    for (int cs = 0; cs < (int)(sizeof cases / sizeof *cases); cs++) {
        const int *c = cases[cs];
        int B = c[0], T = c[1], NH = c[2], NKV = c[3], HD = c[4], window = c[5], pos0 = c[6], P = pos0 + T;
        int QKV = (NH + 2 * NKV) * HD, A = NH * HD, packed = pos0 == 0;
        /* pos0 = 0: q, k, v in one (B, T, QKV); else q (B, T, ldq) and k, v (B, P, ldkv) arrays apart */
        int ldq = packed ? QKV : A + 3, ldkv = packed ? QKV : NKV * HD + 5;
        size_t ko = packed ? (size_t)A : 0, vo = packed ? (size_t)(NH + NKV) * HD : 0;
        size_t nq = (size_t)B * T * ldq, nkv = (size_t)B * P * ldkv, no = (size_t)B * T * A, nl = (size_t)B * NH * T;
        float *q = hrand(nq, 1.5), *k = packed ? q : hrand(nkv, 1.5), *v = packed ? q : hrand(nkv, 1);
        double *wq = widen(q, nq), *wk = packed ? wq : widen(k, nkv), *wv = packed ? wq : widen(v, nkv);
        float *d_q = dev(be, q, nq), *d_k = packed ? d_q : dev(be, k, nkv), *d_v = packed ? d_q : dev(be, v, nkv);
        size_t nscratch = (size_t)T * P > 2 * (size_t)T * T ? (size_t)T * P : 2 * (size_t)T * T;
        float *d_out = dev(be, NULL, no), *d_lse = dev(be, NULL, nl), *d_scratch = dev(be, NULL, nscratch);
        double *ref = hd(no), *lse = hd(nl);
        attention_ref(ref, lse, wq, ldq, wk + ko, wv + vo, ldkv, B, T, pos0, NH, NKV, HD, window);
        be->attention_forward(d_out, d_lse, d_q, ldq, d_k + ko, d_v + vo, ldkv, B, T, pos0, NH, NKV, HD, window,
                              d_scratch);
        /* out measured 3.5e-7, lse 1.6e-7 */
        report(err_vs(down(be, d_out, no), ref, NULL, no), 1.5e-6,
               "attention_forward out B=%d T=%d NH=%d NKV=%d HD=%d w=%d pos0=%d", B, T, NH, NKV, HD, window, pos0);
        report(err_vs(down(be, d_lse, nl), lse, NULL, nl), 1e-6,
               "attention_forward lse B=%d T=%d NH=%d NKV=%d HD=%d w=%d pos0=%d", B, T, NH, NKV, HD, window, pos0);
        if (packed) { /* backward: from the backend's out and lse, dqkv += */
            float *R = hrand(no, 1), *pre = hrand(nq, 1);
            args a = {.x = wq, .B = B, .T = T, .NH = NH, .NKV = NKV, .HD = HD, .window = window};
            double *g = hd(nq);
            fd_grad(attention_packed, &a, a.x, nq, widen(R, no), no, g);
            float *d_dqkv = dev(be, pre, nq);
            be->attention_backward(d_dqkv, dev(be, R, no), d_q, d_out, d_lse, B, T, NH, NKV, HD, window, d_scratch);
            float *got = down(be, d_dqkv, nq);
            double *base = widen(pre, nq);
            static const char *part[] = {"dq", "dk", "dv"};
            int col[] = {0, A, (NH + NKV) * HD, QKV};
            /* dq measured 2.3e-7, dk 4.1e-7, dv 1.4e-7 */
            const double tol[] = {1.5e-6, 1.5e-6, 1e-6};
            for (int p = 0; p < 3; p++)
                report(err_cols(got, g, base, (size_t)B * T, QKV, col[p], col[p + 1]), tol[p],
                       "attention_backward %s += B=%d T=%d NH=%d NKV=%d HD=%d w=%d", part[p], B, T, NH, NKV, HD,
                       window);
        }
        release(be);
    }
}

static void check_activations(const mofo_backend *be) {
    const int n = 37, N = 5, F = 7; /* GELU on n values, SwiGLU on (N, 2F) */
    float *x = hrand(n, 3), *R = hrand(n, 1), *junk = hrand(2 * N * F, 5);
    args a = {.x = widen(x, n), .N = n};
    double *ref = hd(n), *g = hd(n);
    float *d_x = dev(be, x, n), *d_out = dev(be, NULL, n), *d_dinp = dev(be, junk, n);
    gelu_ref(&a, ref);
    be->gelu_forward(d_out, d_x, n);
    report(err_vs(down(be, d_out, n), ref, NULL, n), 4e-7, "gelu_forward n=%d", n); /* measured 3.8e-8 */
    fd_grad(gelu_ref, &a, a.x, n, widen(R, n), n, g);
    be->gelu_backward(d_dinp, d_x, dev(be, R, n), n); /* dinp = over garbage */
    report(err_vs(down(be, d_dinp, n), g, NULL, n), 8e-7, "gelu_backward dinp = n=%d", n); /* measured 6.4e-8 */
    release(be);

    size_t ni = 2 * (size_t)N * F, no = (size_t)N * F;
    x = hrand(ni, 2), R = hrand(no, 1), junk = hrand(ni, 5);
    args s = {.x = widen(x, ni), .N = N, .C = F};
    ref = hd(no), g = hd(ni);
    d_x = dev(be, x, ni), d_out = dev(be, NULL, no), d_dinp = dev(be, junk, ni);
    swiglu_ref(&s, ref);
    be->swiglu_forward(d_out, d_x, N, F);
    report(err_vs(down(be, d_out, no), ref, NULL, no), 3e-7, "swiglu_forward N=%d F=%d", N, F); /* measured 2.7e-8 */
    fd_grad(swiglu_ref, &s, s.x, ni, widen(R, no), no, g);
    be->swiglu_backward(d_dinp, d_x, dev(be, R, no), N, F); /* dinp = over garbage */
    /* measured 4.6e-8 */
    report(err_vs(down(be, d_dinp, ni), g, NULL, ni), 5e-7, "swiglu_backward dinp = N=%d F=%d", N, F);
    release(be);
}

static void check_crossentropy(const mofo_backend *be) {
    static const int shapes[][2] = {{17, 13}, {5, 33}, {1, 7}, {3, 515}}; /* N, V */
    for (int sh = 0; sh < 4; sh++) {
        int N = shapes[sh][0], V = shapes[sh][1], tg[17];
        size_t n = (size_t)N * V;
        for (int i = 0; i < N; i++) tg[i] = i % 4 == 1 ? -100 : irand(V); /* some ignored */
        float *logits = hrand(n, 2);
        args a = {.x = widen(logits, n), .ids = tg, .N = N, .V = V};
        double *ref = hd(N);
        int count = ce_ref(&a, ref);
        float *d_logits = dev(be, logits, n), *d_losses = dev(be, NULL, N);
        CHECK(be->crossentropy_forward(d_losses, d_logits, tg, N, V) == count, "crossentropy_forward count %d", count);
        /* measured 4.0e-8 */
        report(err_vs(down(be, d_losses, N), ref, NULL, N), 4e-7, "crossentropy_forward losses N=%d V=%d", N, V);

        float scale = 1.0f / (float)count; /* the mean loss */
        double *an = hd(n), *fd = hd(n), *Rs = hd(N);
        for (int r = 0; r < N; r++) {
            Rs[r] = scale;
            if (tg[r] == -100) continue;
            const double *l = a.x + (size_t)r * V;
            double mx = -INFINITY, z = 0;
            for (int i = 0; i < V; i++) mx = fmax(mx, l[i]);
            for (int i = 0; i < V; i++) z += exp(l[i] - mx);
            for (int i = 0; i < V; i++) an[(size_t)r * V + i] = (exp(l[i] - mx) / z - (i == tg[r])) * scale;
        }
        fd_grad(ce_losses, &a, a.x, n, Rs, N, fd);
        be->crossentropy_backward(d_logits, tg, N, V, scale); /* in place */
        float *got = down(be, d_logits, n);
        /* measured 8.0e-9 against the formula, 7.9e-9 against the finite differences */
        report(err_vs(got, an, NULL, n), 1e-7, "crossentropy_backward N=%d V=%d vs (softmax-onehot) scale", N, V);
        report(err_vs(got, fd, NULL, n), 8e-8, "crossentropy_backward N=%d V=%d vs FD of the mean", N, V);
        int zero = 1;
        for (int r = 0; r < N; r++)
            for (int i = 0; i < V && tg[r] == -100; i++) zero &= got[(size_t)r * V + i] == 0.0f;
        CHECK(zero, "crossentropy_backward: ignored rows are 0");
        release(be);
    }
}

/* The CUDA backend's errors, last (a failure is sticky): out of memory is alloc's NULL and not a failure;
 * a head over the attention kernel's 256 entries fails naming the size, and every later operation
 * does nothing. */
static void check_cuda_errors(const mofo_backend *be) {
    CHECK(be->alloc((size_t)1 << 50) == NULL && be->failure() == NULL, "alloc of 4 PiB: NULL, not sticky");
    const int T = 2, NH = 1, HD = 300;
    float *q = dev(be, NULL, (size_t)T * 3 * HD), *out = dev(be, NULL, (size_t)T * HD), *lse = dev(be, NULL, 2);
    be->attention_forward(out, lse, q, 3 * HD, q + HD, q + 2 * HD, 3 * HD, 1, T, 0, NH, NH, HD, 0, NULL);
    const char *why = be->failure();
    CHECK(why && strstr(why, "head size 300"), "attention with HD 300: '%s'", why ? why : "no failure");
    float one = 1.0f;
    be->fill(out, 2.0f, 1); /* does nothing now */
    be->download(&one, out, 1);
    CHECK(one == 0.0f, "after a failure: download gives zeros (%g)", one);
    release(be);
}

/* Every operation of be; returns the number of failed checks. */
static int check_backend(const mofo_backend *be) {
    int failed = check_failed;
    be_name = be->name;
    printf("backend %s: max error per check (tolerance)\n", be->name);
    check_memory(be);
    check_gemm(be);
    check_matmul(be);
    check_embed(be);
    check_norms(be);
    check_rope(be);
    check_attention(be);
    check_activations(be);
    check_crossentropy(be);
    return check_failed - failed;
}

int main(void) {
    mofo_err err = {0};
    const mofo_backend *backends[] = {
        mofo_backend_cpu(),
        mofo_backend_cuda(&err), /* NULL without CUDA or a device (or the simulator's, test_ops_cudasim) */
    };
    for (size_t i = 0; i < sizeof backends / sizeof *backends; i++) {
        const mofo_backend *be = backends[i];
        if (!be) {
            printf("backend %zu: skipped: %s\n", i, err.msg);
            continue;
        }
        if (check_backend(be)) fprintf(stderr, "backend %s: checks failed\n", be->name);
        const char *why = be->failure();
        CHECK(!why, "backend %s failed: %s", be->name, why ? why : "");
        if (strcmp(be->name, "cuda") == 0) check_cuda_errors(be);
        be->close();
    }
    return CHECK_DONE();
}

/* CPU layers: BLAS for matrix products, OpenMP loops elsewhere. */
#include "backend/cpu_layers.h"
#include "backend/blas.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "backend/rounding.h"

void embed_forward(float *out, const int *ids, const float *wte, const float *wpe, int B, int T, int C) {
#pragma omp parallel for
    for (int bt = 0; bt < B * T; bt++) {
        float *o = out + (size_t)bt * C;
        const float *e = wte + (size_t)ids[bt] * C;
        if (wpe) {
            const float *p = wpe + (size_t)(bt % T) * C;
            for (int i = 0; i < C; i++) o[i] = e[i] + p[i];
        } else {
            memcpy(o, e, (size_t)C * sizeof *o);
        }
    }
}

void embed_backward(float *dwte, float *dwpe, const float *dout, const int *ids, int B, int T, int C) {
    if (!dwte && !dwpe) return; /* frozen embeddings */
    /* rows may repeat: parallel over channels, serial over positions */
#pragma omp parallel for
    for (int i = 0; i < C; i++)
        for (int bt = 0; bt < B * T; bt++) {
            float d = dout[(size_t)bt * C + i];
            if (dwte) dwte[(size_t)ids[bt] * C + i] += d;
            if (dwpe) dwpe[(size_t)(bt % T) * C + i] += d;
        }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                       int N, int C, float eps) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        double s = 0;
        for (int i = 0; i < C; i++) s += x[i];
        float m = (float)(s / C);
        double v = 0;
        for (int i = 0; i < C; i++) v += (double)(x[i] - m) * (x[i] - m);
        float r = (float)(1.0 / sqrt(v / C + eps));
        for (int i = 0; i < C; i++) o[i] = (x[i] - m) * r * w[i] + (b ? b[i] : 0.0f);
        mean[n] = m;
        rstd[n] = r;
    }
}

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                        const float *mean, const float *rstd, int N, int C) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float m = mean[n], r = rstd[n];
        double dn_mean = 0, dn_nmean = 0;
        for (int i = 0; i < C; i++) {
            float nrm = (x[i] - m) * r, dn = w[i] * dy[i];
            dn_mean += dn;
            dn_nmean += (double)dn * nrm;
        }
        float a = (float)(dn_mean / C), c = (float)(dn_nmean / C);
        for (int i = 0; i < C; i++) {
            float nrm = (x[i] - m) * r, dn = w[i] * dy[i];
            dx[i] += (dn - a - nrm * c) * r;
        }
    }
    if (!dw) return; /* frozen gain and bias */
#pragma omp parallel for
    for (int i = 0; i < C; i++) {
        double sw = 0, sb = 0;
        for (int n = 0; n < N; n++) {
            float dy = dout[(size_t)n * C + i];
            sw += (double)dy * (inp[(size_t)n * C + i] - mean[n]) * rstd[n];
            sb += dy;
        }
        dw[i] += (float)sw;
        if (db) db[i] += (float)sb;
    }
}

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        double s = 0;
        for (int i = 0; i < C; i++) s += (double)x[i] * x[i];
        float r = (float)(1.0 / sqrt(s / C + eps));
        for (int i = 0; i < C; i++) o[i] = w[i] * (x[i] * r);
        rstd[n] = r;
    }
}

void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                      const float *rstd, int N, int C) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float r = rstd[n];
        double s = 0;
        for (int i = 0; i < C; i++) s += (double)w[i] * dy[i] * x[i];
        float c = (float)(s * r * r * r / C);
        for (int i = 0; i < C; i++) dx[i] += w[i] * dy[i] * r - x[i] * c;
    }
    if (!dw) return; /* frozen gain */
#pragma omp parallel for
    for (int i = 0; i < C; i++) {
        double sw = 0;
        for (int n = 0; n < N; n++) sw += (double)dout[(size_t)n * C + i] * inp[(size_t)n * C + i] * rstd[n];
        dw[i] += (float)sw;
    }
}

/* ---- matrix products ---- */

static _Atomic(const char *) gemm_failure;
const char *cpu_gemm_failure(void) { return gemm_failure; }

/* A copy of the rows x cols row-major matrix at x (row stride ld), rounded to `stored` mantissa
 * bits, with the same stride; NULL when it cannot be allocated. */
static float *rounded_copy(const float *x, int rows, int cols, int ld, int stored) {
    size_t n = rows && cols ? (size_t)(rows - 1) * ld + cols : 0;
    float *r = malloc((n ? n : 1) * sizeof *r);
    if (!r) return NULL;
#pragma omp parallel for schedule(static) if (n > (1 << 15))
    for (size_t i = 0; i < n; i++) r[i] = mofo_round_mantissa(x[i], stored);
    return r;
}

void cpu_gemm(mofo_precision prec, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
              int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (prec == MOFO_PRECISION_FP32) {
        mofo_sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int stored = prec == MOFO_PRECISION_BF16 ? MOFO_BF16_STORED : MOFO_TF32_STORED;
    float *Ar = rounded_copy(A, trans_a ? K : M, trans_a ? M : K, lda, stored);
    float *Br = Ar ? rounded_copy(B, trans_b ? N : K, trans_b ? K : N, ldb, stored) : NULL;
    if (Br)
        mofo_sgemm(trans_a, trans_b, M, N, K, alpha, Ar, lda, Br, ldb, beta, C, ldc);
    else {
        const char *none = NULL;
        atomic_compare_exchange_strong(&gemm_failure, &none,
                                       "cpu: out of memory for the rounded inputs of a matrix product (matmul precision "
                                       "tf32/bf16)");
    }
    free(Ar);
    free(Br);
}

void matmul_forward(mofo_precision prec, float *out, const float *inp, const float *w, const float *bias, int N, int C,
                    int OC) {
    cpu_gemm(prec, false, true, N, OC, C, 1.0f, inp, C, w, C, 0.0f, out, OC);
    if (bias) {
#pragma omp parallel for
        for (int n = 0; n < N; n++) {
            float *o = out + (size_t)n * OC;
            for (int j = 0; j < OC; j++) o[j] += bias[j];
        }
    }
}

void matmul_backward(mofo_precision prec, float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, int N, int C, int OC) {
    if (dinp) cpu_gemm(prec, false, false, N, C, OC, 1.0f, dout, OC, w, C, 0.0f, dinp, C);
    if (dw) cpu_gemm(prec, true, false, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
    if (dbias) {
#pragma omp parallel for
        for (int j = 0; j < OC; j++) {
            float s = 0;
            for (int n = 0; n < N; n++) s += dout[(size_t)n * OC + j];
            dbias[j] += s;
        }
    }
}

static void rope_apply(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int NH, int NKV, int HD,
                       float sgn) {
    int QKV = (NH + 2 * NKV) * HD, H2 = HD / 2, heads = NH + NKV; /* q heads, then k heads */
#pragma omp parallel for
    for (int bt = 0; bt < B * T; bt++) {
        const float *c = cos_t + (size_t)(bt % T) * H2, *s = sin_t + (size_t)(bt % T) * H2;
        for (int h = 0; h < heads; h++) {
            float *x = qkv + (size_t)bt * QKV + (size_t)h * HD;
            for (int i = 0; i < H2; i++) {
                float x1 = x[i], x2 = x[i + H2], si = sgn * s[i];
                x[i] = x1 * c[i] - x2 * si;
                x[i + H2] = x2 * c[i] + x1 * si;
            }
        }
    }
}

void rope_forward(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int NH, int NKV, int HD) {
    rope_apply(qkv, cos_t, sin_t, B, T, NH, NKV, HD, 1.0f);
}

void rope_backward(float *dqkv, const float *cos_t, const float *sin_t, int B, int T, int NH, int NKV, int HD) {
    rope_apply(dqkv, cos_t, sin_t, B, T, NH, NKV, HD, -1.0f);
}

/* Scaled scores of query head h against its key/value head, S (T,T) = scale * Q K^T, then the
 * causal (and window) mask: row t keeps u in [t0(t), t]. */
static void attn_scores(float *S, const float *q, const float *k, int T, int QKV, int HD, float scale) {
    mofo_sgemm(false, true, T, T, HD, scale, q, QKV, k, QKV, 0.0f, S, T);
}

static int row_start(int t, int window) { return window > 0 && t - window + 1 > 0 ? t - window + 1 : 0; }

/* The heads run one after another, each product on all of OpenBLAS's threads and each row loop on
 * OpenMP's: calling BLAS from inside an OpenMP region costs more than it saves here (measured). */
void attention_forward(float *out, float *lse, const float *q, int ldq, const float *k, const float *v, int ldkv,
                       int B, int T, int pos0, int NH, int NKV, int HD, int window, float *scratch) {
    int A = NH * HD, G = NH / NKV, P = pos0 + T;
    float scale = 1.0f / sqrtf((float)HD), *S = scratch;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *qh = q + (size_t)b * T * ldq + (size_t)h * HD;
            const float *kh = k + (size_t)b * P * ldkv + (size_t)(h / G) * HD;
            const float *vh = v + (size_t)b * P * ldkv + (size_t)(h / G) * HD;
            float *l = lse + ((size_t)b * NH + h) * T;
            mofo_sgemm(false, true, T, P, HD, scale, qh, ldq, kh, ldkv, 0.0f, S, P);
#pragma omp parallel for schedule(static) if (T >= 128)
            for (int t = 0; t < T; t++) {
                float *p = S + (size_t)t * P;
                int pt = pos0 + t, u0 = row_start(pt, window);
                float mx = -INFINITY;
                for (int u = u0; u <= pt; u++) mx = p[u] > mx ? p[u] : mx;
                float sum = 0;
                for (int u = u0; u <= pt; u++) sum += (p[u] = expf(p[u] - mx));
                float inv = 1.0f / sum;
                for (int u = 0; u < P; u++) p[u] = u >= u0 && u <= pt ? p[u] * inv : 0.0f;
                l[t] = mx + logf(sum);
            }
            mofo_sgemm(false, false, T, HD, P, 1.0f, S, P, vh, ldkv, 0.0f, out + (size_t)b * T * A + (size_t)h * HD, A);
        }
}

void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse, int B,
                        int T, int NH, int NKV, int HD, int window, float *scratch) {
    int QKV = (NH + 2 * NKV) * HD, A = NH * HD, G = NH / NKV;
    float scale = 1.0f / sqrtf((float)HD), *P = scratch, *dP = scratch + (size_t)T * T;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int kh = h / G;
            const float *base = qkv + (size_t)b * T * QKV, *k = base + (size_t)(NH + kh) * HD,
                        *v = base + (size_t)(NH + NKV + kh) * HD;
            float *dbase = dqkv + (size_t)b * T * QKV, *dk = dbase + (size_t)(NH + kh) * HD,
                  *dv = dbase + (size_t)(NH + NKV + kh) * HD;
            const float *q = base + (size_t)h * HD, *dy = dout + (size_t)b * T * A + (size_t)h * HD,
                        *y = out + (size_t)b * T * A + (size_t)h * HD, *l = lse + ((size_t)b * NH + h) * T;
            /* recompute the probabilities from the scores and the saved log-sum-exp */
            attn_scores(P, q, k, T, QKV, HD, scale);
            mofo_sgemm(false, true, T, T, HD, 1.0f, dy, A, v, QKV, 0.0f, dP, T);
#pragma omp parallel for schedule(static) if (T >= 128)
            for (int t = 0; t < T; t++) {
                float *p = P + (size_t)t * T, *dp = dP + (size_t)t * T;
                int t0 = row_start(t, window);
                float D = 0; /* sum_u P dP = dO . O */
                for (int i = 0; i < HD; i++) D += dy[(size_t)t * A + i] * y[(size_t)t * A + i];
                for (int u = 0; u < T; u++) {
                    if (u < t0 || u > t) {
                        p[u] = dp[u] = 0.0f;
                        continue;
                    }
                    p[u] = expf(p[u] - l[t]);
                    dp[u] = p[u] * (dp[u] - D); /* dS */
                }
            }
            /* dQ += scale dS K, dK += scale dS^T Q, dV += P^T dO */
            mofo_sgemm(false, false, T, HD, T, scale, dP, T, k, QKV, 1.0f, dbase + (size_t)h * HD, QKV);
            mofo_sgemm(true, false, T, HD, T, scale, dP, T, q, QKV, 1.0f, dk, QKV);
            mofo_sgemm(true, false, T, HD, T, 1.0f, P, T, dy, A, 1.0f, dv, QKV);
        }
}

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */

void gelu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(GELU_SCALE * (x + 0.044715f * x * x * x)));
    }
}

void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        float x = inp[i], u = GELU_SCALE * (x + 0.044715f * x * x * x), th = tanhf(u);
        float sech2 = 1.0f - th * th;
        float d = 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] = d * dout[i];
    }
}

void swiglu_forward(float *out, const float *inp, int N, int F) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *g = inp + (size_t)n * 2 * F, *u = g + F;
        float *o = out + (size_t)n * F;
        for (int i = 0; i < F; i++) o[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    }
}

void swiglu_backward(float *dinp, const float *inp, const float *dout, int N, int F) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *g = inp + (size_t)n * 2 * F, *u = g + F, *dy = dout + (size_t)n * F;
        float *dg = dinp + (size_t)n * 2 * F, *du = dg + F;
        for (int i = 0; i < F; i++) {
            float sg = 1.0f / (1.0f + expf(-g[i])), silu = g[i] * sg;
            du[i] = dy[i] * silu;
            dg[i] = dy[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
        }
    }
}

int crossentropy_forward(float *losses, const float *logits, const int *targets, int N, int V) {
    int count = 0;
#pragma omp parallel for reduction(+ : count)
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) {
            losses[n] = 0.0f;
            continue;
        }
        const float *l = logits + (size_t)n * V;
        float mx = -INFINITY;
        for (int i = 0; i < V; i++)
            if (l[i] > mx) mx = l[i];
        double s = 0;
        for (int i = 0; i < V; i++) s += expf(l[i] - mx);
        losses[n] = (float)(log(s) + mx - l[targets[n]]);
        count++;
    }
    return count;
}

void crossentropy_backward(float *logits, const int *targets, int N, int V, float scale) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        float *l = logits + (size_t)n * V;
        if (targets[n] < 0) {
            memset(l, 0, (size_t)V * sizeof *l);
            continue;
        }
        float mx = -INFINITY;
        for (int i = 0; i < V; i++)
            if (l[i] > mx) mx = l[i];
        double s = 0;
        for (int i = 0; i < V; i++) {
            l[i] = expf(l[i] - mx);
            s += l[i];
        }
        float inv = (float)(1.0 / s);
        for (int i = 0; i < V; i++) l[i] *= inv * scale;
        l[targets[n]] -= scale;
    }
}

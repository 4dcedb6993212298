/* The CUDA backend's layers: the per-entry maths of cpu_layers.c as kernels, in fp32 with the same
 * sums in double where the CPU keeps them in double. Row operations (norms, cross-entropy) take one
 * block of THREADS per row; attention one warp per (query or key row, head, sequence), with an online
 * softmax, so no (T, T) matrix is ever stored (the forward keeps each row's log-sum-exp, the backward
 * recomputes the probabilities from it). Parameter gradients that sum over rows (norm gains, biases,
 * embeddings) take one thread per column looping over the rows in order: no atomics, so every run
 * gives the same bits. */
#include <math.h>
#include <stdio.h>

#include "common.cuh"

/* ---- embeddings ---- */

__global__ void k_embed_forward(float *out, const int *ids, const float *wte, const float *wpe, int T, int C,
                                size_t n) {
    GRID_STRIDE(i, n) {
        size_t bt = i / C, c = i % C;
        float e = wte[(size_t)ids[bt] * C + c];
        out[i] = wpe ? e + wpe[(bt % T) * C + c] : e;
    }
}
static void embed_forward(float *out, const int *ids, const float *wte, const float *wpe, int B, int T, int C) {
    size_t n = (size_t)B * T * C;
    const int *d_ids = cuda_upload_ids(ids, (size_t)B * T);
    if (!d_ids || n == 0) return;
    KERNEL_LAUNCH(blocks_for(n), THREADS, k_embed_forward)(out, d_ids, wte, wpe, T, C, n);
    CUDA_LAUNCHED();
}

/* one thread per channel, the positions in order (rows of wte may repeat) */
__global__ void k_embed_backward(float *dwte, float *dwpe, const float *dout, const int *ids, int BT, int T, int C) {
    GRID_STRIDE(c, (size_t)C) {
        for (int bt = 0; bt < BT; bt++) {
            float d = dout[(size_t)bt * C + c];
            if (dwte) dwte[(size_t)ids[bt] * C + c] += d;
            if (dwpe) dwpe[(size_t)(bt % T) * C + c] += d;
        }
    }
}
static void embed_backward(float *dwte, float *dwpe, const float *dout, const int *ids, int B, int T, int C) {
    if (!dwte && !dwpe) return;
    const int *d_ids = cuda_upload_ids(ids, (size_t)B * T);
    if (!d_ids) return;
    KERNEL_LAUNCH(blocks_for((size_t)C), THREADS, k_embed_backward)(dwte, dwpe, dout, d_ids, B * T, T, C);
    CUDA_LAUNCHED();
}

/* ---- norms: a block per row ---- */

__global__ void k_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                                    const float *b, int C, float eps) {
    __shared__ double sh[THREADS];
    const float *x = inp + (size_t)blockIdx.x * C;
    float *o = out + (size_t)blockIdx.x * C;
    double s = 0;
    for (int i = threadIdx.x; i < C; i += THREADS) s += x[i];
    float m = (float)(block_sum(s, sh) / C);
    double v = 0;
    for (int i = threadIdx.x; i < C; i += THREADS) v += (double)(x[i] - m) * (x[i] - m);
    float r = (float)(1.0 / sqrt(block_sum(v, sh) / C + eps));
    for (int i = threadIdx.x; i < C; i += THREADS) o[i] = (x[i] - m) * r * w[i] + (b ? b[i] : 0.0f);
    if (threadIdx.x == 0) mean[blockIdx.x] = m, rstd[blockIdx.x] = r;
}
static void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                              int N, int C, float eps) {
    if (cuda_failed() || N == 0) return;
    KERNEL_LAUNCH(N, THREADS, k_layernorm_forward)(out, mean, rstd, inp, w, b, C, eps);
    CUDA_LAUNCHED();
}

__global__ void k_layernorm_backward_rows(float *dinp, const float *dout, const float *inp, const float *w,
                                          const float *mean, const float *rstd, int C) {
    __shared__ double sh[THREADS];
    size_t row = (size_t)blockIdx.x * C;
    const float *x = inp + row, *dy = dout + row;
    float *dx = dinp + row, m = mean[blockIdx.x], r = rstd[blockIdx.x];
    double dn_mean = 0, dn_nmean = 0;
    for (int i = threadIdx.x; i < C; i += THREADS) {
        float nrm = (x[i] - m) * r, dn = w[i] * dy[i];
        dn_mean += dn;
        dn_nmean += (double)dn * nrm;
    }
    float a = (float)(block_sum(dn_mean, sh) / C), c = (float)(block_sum(dn_nmean, sh) / C);
    for (int i = threadIdx.x; i < C; i += THREADS) {
        float nrm = (x[i] - m) * r, dn = w[i] * dy[i];
        dx[i] += (dn - a - nrm * c) * r;
    }
}
/* gains (and biases): a thread per channel over the rows in order */
__global__ void k_norm_backward_cols(float *dw, float *db, const float *dout, const float *inp, const float *mean,
                                     const float *rstd, int N, int C) {
    GRID_STRIDE(i, (size_t)C) {
        double sw = 0, sb = 0;
        for (int n = 0; n < N; n++) {
            float dy = dout[(size_t)n * C + i];
            float xn = mean ? (inp[(size_t)n * C + i] - mean[n]) * rstd[n] : inp[(size_t)n * C + i] * rstd[n];
            sw += (double)dy * xn;
            sb += dy;
        }
        dw[i] += (float)sw;
        if (db) db[i] += (float)sb;
    }
}
static void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                               const float *mean, const float *rstd, int N, int C) {
    if (cuda_failed() || N == 0) return;
    KERNEL_LAUNCH(N, THREADS, k_layernorm_backward_rows)(dinp, dout, inp, w, mean, rstd, C);
    CUDA_LAUNCHED();
    if (!dw) return;
    KERNEL_LAUNCH(blocks_for((size_t)C), THREADS, k_norm_backward_cols)(dw, db, dout, inp, mean, rstd, N, C);
    CUDA_LAUNCHED();
}

__global__ void k_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int C, float eps) {
    __shared__ double sh[THREADS];
    const float *x = inp + (size_t)blockIdx.x * C;
    float *o = out + (size_t)blockIdx.x * C;
    double s = 0;
    for (int i = threadIdx.x; i < C; i += THREADS) s += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(block_sum(s, sh) / C + eps));
    for (int i = threadIdx.x; i < C; i += THREADS) o[i] = w[i] * (x[i] * r);
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
}
static void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps) {
    if (cuda_failed() || N == 0) return;
    KERNEL_LAUNCH(N, THREADS, k_rmsnorm_forward)(out, rstd, inp, w, C, eps);
    CUDA_LAUNCHED();
}

__global__ void k_rmsnorm_backward_rows(float *dinp, const float *dout, const float *inp, const float *w,
                                        const float *rstd, int C) {
    __shared__ double sh[THREADS];
    size_t row = (size_t)blockIdx.x * C;
    const float *x = inp + row, *dy = dout + row;
    float *dx = dinp + row, r = rstd[blockIdx.x];
    double s = 0;
    for (int i = threadIdx.x; i < C; i += THREADS) s += (double)w[i] * dy[i] * x[i];
    float c = (float)(block_sum(s, sh) * r * r * r / C);
    for (int i = threadIdx.x; i < C; i += THREADS) dx[i] += w[i] * dy[i] * r - x[i] * c;
}
static void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                             const float *rstd, int N, int C) {
    if (cuda_failed() || N == 0) return;
    KERNEL_LAUNCH(N, THREADS, k_rmsnorm_backward_rows)(dinp, dout, inp, w, rstd, C);
    CUDA_LAUNCHED();
    if (!dw) return;
    KERNEL_LAUNCH(blocks_for((size_t)C), THREADS, k_norm_backward_cols)(dw, (float *)nullptr, dout, inp, (const float *)nullptr, rstd, N, C);
    CUDA_LAUNCHED();
}

/* ---- matrix products with bias ---- */

__global__ void k_add_bias(float *out, const float *bias, int OC, size_t n) {
    GRID_STRIDE(i, n) out[i] += bias[i % OC];
}
static void matmul_forward(mofo_precision prec, float *out, const float *inp, const float *w, const float *bias, int N,
                           int C, int OC) {
    cuda_gemm(prec, false, true, N, OC, C, 1.0f, inp, C, w, C, 0.0f, out, OC);
    size_t n = (size_t)N * OC;
    if (!bias || cuda_failed() || n == 0) return;
    KERNEL_LAUNCH(blocks_for(n), THREADS, k_add_bias)(out, bias, OC, n);
    CUDA_LAUNCHED();
}

__global__ void k_bias_backward(float *dbias, const float *dout, int N, int OC) {
    GRID_STRIDE(j, (size_t)OC) {
        float s = 0;
        for (int n = 0; n < N; n++) s += dout[(size_t)n * OC + j];
        dbias[j] += s;
    }
}
static void matmul_backward(mofo_precision prec, float *dinp, float *dw, float *dbias, const float *dout,
                            const float *inp, const float *w, int N, int C, int OC) {
    if (dinp) cuda_gemm(prec, false, false, N, C, OC, 1.0f, dout, OC, w, C, 0.0f, dinp, C);
    if (dw) cuda_gemm(prec, true, false, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
    if (!dbias || cuda_failed()) return;
    KERNEL_LAUNCH(blocks_for((size_t)OC), THREADS, k_bias_backward)(dbias, dout, N, OC);
    CUDA_LAUNCHED();
}

/* ---- RoPE: a thread per rotated pair ---- */

__global__ void k_rope(float *qkv, const float *cos_t, const float *sin_t, int T, int NH, int NKV, int HD, float sgn,
                       size_t n) {
    int H2 = HD / 2, heads = NH + NKV;
    size_t QKV = (size_t)(NH + 2 * NKV) * HD;
    GRID_STRIDE(e, n) {
        size_t i = e % H2, h = e / H2 % heads, bt = e / H2 / heads;
        float *x = qkv + bt * QKV + h * HD;
        float c = cos_t[(bt % T) * H2 + i], si = sgn * sin_t[(bt % T) * H2 + i], x1 = x[i], x2 = x[i + H2];
        x[i] = x1 * c - x2 * si;
        x[i + H2] = x2 * c + x1 * si;
    }
}
static void rope(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int NH, int NKV, int HD, float sgn) {
    size_t n = (size_t)B * T * (NH + NKV) * (HD / 2);
    if (cuda_failed() || n == 0) return;
    KERNEL_LAUNCH(blocks_for(n), THREADS, k_rope)(qkv, cos_t, sin_t, T, NH, NKV, HD, sgn, n);
    CUDA_LAUNCHED();
}
static void rope_forward(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int NH, int NKV, int HD) {
    rope(qkv, cos_t, sin_t, B, T, NH, NKV, HD, 1.0f);
}
static void rope_backward(float *dqkv, const float *cos_t, const float *sin_t, int B, int T, int NH, int NKV, int HD) {
    rope(dqkv, cos_t, sin_t, B, T, NH, NKV, HD, -1.0f);
}

/* ---- attention: a warp per row; lane l holds the head's entries l, l + 32, ... (HD <= 32 SLOTS) ---- */

enum { SLOTS = 8, MAX_HD = 32 * SLOTS };

/* sum over the head of a[d] b[d], the same in every lane; a in the lane's slots, b a row in memory */
__device__ inline float dot_row(const float *a, const float *b, int HD) {
    float s = 0;
    for (int j = 0, d = threadIdx.x; j < SLOTS && d < HD; j++, d += 32) s += a[j] * b[d];
    return warp_sum(s);
}
__device__ inline void load_row(float *a, const float *row, int HD) {
    for (int j = 0, d = threadIdx.x; j < SLOTS; j++, d += 32) a[j] = d < HD ? row[d] : 0.0f;
}
__device__ inline void add_row(float *row, const float *a, int HD) {
    for (int j = 0, d = threadIdx.x; j < SLOTS && d < HD; j++, d += 32) row[d] += a[j];
}
__device__ inline int first_key(int t, int window) { return window > 0 && t - window + 1 > 0 ? t - window + 1 : 0; }

/* grid T NH B (t fastest): query t of head h, sequence b, against keys first_key .. pos0 + t */
__global__ void k_attention_forward(float *out, float *lse, const float *q, int ldq, const float *k, const float *v,
                                    int ldkv, int T, int pos0, int NH, int NKV, int HD, int window, float scale) {
    int t = blockIdx.x % T, h = blockIdx.x / T % NH, b = blockIdx.x / T / NH, P = pos0 + T, pt = pos0 + t;
    size_t kv0 = (size_t)b * P * ldkv + (size_t)(h / (NH / NKV)) * HD;
    float qr[SLOTS], acc[SLOTS] = {0}, m = -INFINITY, l = 0;
    load_row(qr, q + ((size_t)b * T + t) * ldq + (size_t)h * HD, HD);
    for (int u = first_key(pt, window); u <= pt; u++) {
        const float *vr = v + kv0 + (size_t)u * ldkv;
        float s = scale * dot_row(qr, k + kv0 + (size_t)u * ldkv, HD), mn = fmaxf(m, s);
        float corr = expf(m - mn), p = expf(s - mn); /* corr = 0 on the first key (m = -inf) */
        l = l * corr + p;
        for (int j = 0, d = threadIdx.x; j < SLOTS && d < HD; j++, d += 32) acc[j] = acc[j] * corr + p * vr[d];
        m = mn;
    }
    float *o = out + ((size_t)b * T + t) * NH * HD + (size_t)h * HD;
    for (int j = 0, d = threadIdx.x; j < SLOTS && d < HD; j++, d += 32) o[d] = acc[j] / l;
    if (threadIdx.x == 0) lse[((size_t)b * NH + h) * T + t] = m + logf(l);
}
static bool head_fits(int HD) {
    if (HD <= MAX_HD) return true;
    char why[64];
    snprintf(why, sizeof why, "head size %d is over %d", HD, MAX_HD);
    cuda_fail(__FILE__, __LINE__, "attention", why);
    return false;
}
static void attention_forward(float *out, float *lse, const float *q, int ldq, const float *k, const float *v, int ldkv,
                              int B, int T, int pos0, int NH, int NKV, int HD, int window, float *scratch) {
    (void)scratch; /* the online softmax needs none */
    if (cuda_failed() || B * T == 0 || !head_fits(HD)) return;
    KERNEL_LAUNCH((unsigned)(T * NH * B), 32, k_attention_forward)(out, lse, q, ldq, k, v, ldkv, T, pos0, NH, NKV, HD,
                                                           window, 1.0f / sqrtf((float)HD));
    CUDA_LAUNCHED();
}

/* D (B, NH, T) = dout . out per row: sum over keys of P dP */
__global__ void k_attention_rowterm(float *D, const float *dout, const float *out, int T, int NH, int HD) {
    int t = blockIdx.x % T, h = blockIdx.x / T % NH, b = blockIdx.x / T / NH;
    size_t row = ((size_t)b * T + t) * NH * HD + (size_t)h * HD;
    float a[SLOTS];
    load_row(a, dout + row, HD);
    float s = dot_row(a, out + row, HD);
    if (threadIdx.x == 0) D[((size_t)b * NH + h) * T + t] = s;
}

/* grid T NH B: dq of query t += scale sum_u dS(t, u) k_u, dS = P (dO . v_u - D) */
__global__ void k_attention_dq(float *dqkv, const float *dout, const float *qkv, const float *lse, const float *D,
                               int T, int NH, int NKV, int HD, int window, float scale) {
    int t = blockIdx.x % T, h = blockIdx.x / T % NH, b = blockIdx.x / T / NH, kh = h / (NH / NKV);
    size_t QKV = (size_t)(NH + 2 * NKV) * HD, base = (size_t)b * T * QKV, r = ((size_t)b * NH + h) * T + t;
    float qr[SLOTS], dor[SLOTS], dq[SLOTS] = {0}, L = lse[r], Dt = D[r];
    load_row(qr, qkv + base + t * QKV + (size_t)h * HD, HD);
    load_row(dor, dout + ((size_t)b * T + t) * NH * HD + (size_t)h * HD, HD);
    for (int u = first_key(t, window); u <= t; u++) {
        const float *kr = qkv + base + u * QKV + (size_t)(NH + kh) * HD, *vr = kr + (size_t)NKV * HD;
        float p = expf(scale * dot_row(qr, kr, HD) - L), ds = p * (dot_row(dor, vr, HD) - Dt);
        for (int j = 0, d = threadIdx.x; j < SLOTS && d < HD; j++, d += 32) dq[j] += scale * ds * kr[d];
    }
    add_row(dqkv + base + t * QKV + (size_t)h * HD, dq, HD);
}

/* grid T NKV B: key u of kv head kh over the queries that see it, in every head of its group:
 * dv_u += sum P dO, dk_u += scale sum dS q */
__global__ void k_attention_dkv(float *dqkv, const float *dout, const float *qkv, const float *lse, const float *D,
                                int T, int NH, int NKV, int HD, int window, float scale) {
    int u = blockIdx.x % T, kh = blockIdx.x / T % NKV, b = blockIdx.x / T / NKV, G = NH / NKV;
    int last = window > 0 && u + window - 1 < T - 1 ? u + window - 1 : T - 1;
    size_t QKV = (size_t)(NH + 2 * NKV) * HD, base = (size_t)b * T * QKV;
    size_t ko = base + u * QKV + (size_t)(NH + kh) * HD, vo = ko + (size_t)NKV * HD;
    float kr[SLOTS], vr[SLOTS], dk[SLOTS] = {0}, dv[SLOTS] = {0};
    load_row(kr, qkv + ko, HD);
    load_row(vr, qkv + vo, HD);
    for (int h = kh * G; h < (kh + 1) * G; h++)
        for (int t = u; t <= last; t++) {
            size_t r = ((size_t)b * NH + h) * T + t;
            const float *qt = qkv + base + t * QKV + (size_t)h * HD;
            const float *dot = dout + ((size_t)b * T + t) * NH * HD + (size_t)h * HD;
            float p = expf(scale * dot_row(kr, qt, HD) - lse[r]), ds = p * (dot_row(vr, dot, HD) - D[r]);
            for (int j = 0, d = threadIdx.x; j < SLOTS && d < HD; j++, d += 32) {
                dv[j] += p * dot[d];
                dk[j] += scale * ds * qt[d];
            }
        }
    add_row(dqkv + ko, dk, HD);
    add_row(dqkv + vo, dv, HD);
}

static void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse,
                               int B, int T, int NH, int NKV, int HD, int window, float *scratch) {
    (void)scratch;
    if (cuda_failed() || B * T == 0 || !head_fits(HD)) return;
    float *D = (float *)cuda_scratch(SCRATCH_ROWS, (size_t)B * NH * T * sizeof(float)), scale = 1.0f / sqrtf((float)HD);
    if (!D) return;
    KERNEL_LAUNCH((unsigned)(T * NH * B), 32, k_attention_rowterm)(D, dout, out, T, NH, HD);
    CUDA_LAUNCHED();
    KERNEL_LAUNCH((unsigned)(T * NH * B), 32, k_attention_dq)(dqkv, dout, qkv, lse, D, T, NH, NKV, HD, window, scale);
    CUDA_LAUNCHED();
    KERNEL_LAUNCH((unsigned)(T * NKV * B), 32, k_attention_dkv)(dqkv, dout, qkv, lse, D, T, NH, NKV, HD, window, scale);
    CUDA_LAUNCHED();
}

/* ---- activations ---- */

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */

__global__ void k_gelu_forward(float *out, const float *inp, size_t n) {
    GRID_STRIDE(i, n) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(GELU_SCALE * (x + 0.044715f * x * x * x)));
    }
}
__global__ void k_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    GRID_STRIDE(i, n) {
        float x = inp[i], u = GELU_SCALE * (x + 0.044715f * x * x * x), th = tanhf(u);
        float sech2 = 1.0f - th * th;
        float d = 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] = d * dout[i];
    }
}
static void gelu_forward(float *out, const float *inp, size_t n) {
    if (cuda_failed() || n == 0) return;
    KERNEL_LAUNCH(blocks_for(n), THREADS, k_gelu_forward)(out, inp, n);
    CUDA_LAUNCHED();
}
static void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    if (cuda_failed() || n == 0) return;
    KERNEL_LAUNCH(blocks_for(n), THREADS, k_gelu_backward)(dinp, inp, dout, n);
    CUDA_LAUNCHED();
}

__global__ void k_swiglu_forward(float *out, const float *inp, int F, size_t n) {
    GRID_STRIDE(e, n) {
        size_t row = e / F, i = e % F;
        float g = inp[row * 2 * F + i], u = inp[row * 2 * F + F + i];
        out[e] = g / (1.0f + expf(-g)) * u;
    }
}
__global__ void k_swiglu_backward(float *dinp, const float *inp, const float *dout, int F, size_t n) {
    GRID_STRIDE(e, n) {
        size_t row = e / F, i = e % F;
        float g = inp[row * 2 * F + i], u = inp[row * 2 * F + F + i], dy = dout[e];
        float sg = 1.0f / (1.0f + expf(-g)), silu = g * sg;
        dinp[row * 2 * F + F + i] = dy * silu;
        dinp[row * 2 * F + i] = dy * u * sg * (1.0f + g * (1.0f - sg));
    }
}
static void swiglu_forward(float *out, const float *inp, int N, int F) {
    size_t n = (size_t)N * F;
    if (cuda_failed() || n == 0) return;
    KERNEL_LAUNCH(blocks_for(n), THREADS, k_swiglu_forward)(out, inp, F, n);
    CUDA_LAUNCHED();
}
static void swiglu_backward(float *dinp, const float *inp, const float *dout, int N, int F) {
    size_t n = (size_t)N * F;
    if (cuda_failed() || n == 0) return;
    KERNEL_LAUNCH(blocks_for(n), THREADS, k_swiglu_backward)(dinp, inp, dout, F, n);
    CUDA_LAUNCHED();
}

/* ---- cross-entropy: a block per row ---- */

__global__ void k_crossentropy_forward(float *losses, const float *logits, const int *targets, int V) {
    __shared__ float shf[THREADS];
    __shared__ double shd[THREADS];
    int n = blockIdx.x, tgt = targets[n];
    if (tgt < 0) { /* the whole block leaves together */
        if (threadIdx.x == 0) losses[n] = 0.0f;
        return;
    }
    const float *l = logits + (size_t)n * V;
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < V; i += THREADS) mx = l[i] > mx ? l[i] : mx;
    mx = block_max(mx, shf);
    double s = 0;
    for (int i = threadIdx.x; i < V; i += THREADS) s += expf(l[i] - mx);
    s = block_sum(s, shd);
    if (threadIdx.x == 0) losses[n] = (float)(log(s) + mx - l[tgt]);
}
static int crossentropy_forward(float *losses, const float *logits, const int *targets, int N, int V) {
    int count = 0;
    for (int n = 0; n < N; n++) count += targets[n] >= 0;
    const int *d_t = cuda_upload_ids(targets, (size_t)N);
    if (!d_t || N == 0) return count;
    KERNEL_LAUNCH(N, THREADS, k_crossentropy_forward)(losses, logits, d_t, V);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) cuda_fail(__FILE__, __LINE__, "k_crossentropy_forward", cudaGetErrorString(e));
    return count;
}

__global__ void k_crossentropy_backward(float *logits, const int *targets, int V, float scale) {
    __shared__ float shf[THREADS];
    __shared__ double shd[THREADS];
    int n = blockIdx.x, tgt = targets[n];
    float *l = logits + (size_t)n * V;
    if (tgt < 0) {
        for (int i = threadIdx.x; i < V; i += THREADS) l[i] = 0.0f;
        return;
    }
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < V; i += THREADS) mx = l[i] > mx ? l[i] : mx;
    mx = block_max(mx, shf);
    double s = 0;
    for (int i = threadIdx.x; i < V; i += THREADS) s += (l[i] = expf(l[i] - mx));
    float inv = (float)(1.0 / block_sum(s, shd));
    for (int i = threadIdx.x; i < V; i += THREADS) l[i] *= inv * scale;
    __syncthreads(); /* the target's entry is scaled by whichever thread holds it */
    if (threadIdx.x == 0) l[tgt] -= scale;
}
static void crossentropy_backward(float *logits, const int *targets, int N, int V, float scale) {
    const int *d_t = cuda_upload_ids(targets, (size_t)N);
    if (!d_t || N == 0) return;
    KERNEL_LAUNCH(N, THREADS, k_crossentropy_backward)(logits, d_t, V, scale);
    CUDA_LAUNCHED();
}

void cuda_layers_table(mofo_backend *be) {
    be->matmul_forward = matmul_forward;
    be->matmul_backward = matmul_backward;
    be->embed_forward = embed_forward;
    be->embed_backward = embed_backward;
    be->layernorm_forward = layernorm_forward;
    be->layernorm_backward = layernorm_backward;
    be->rmsnorm_forward = rmsnorm_forward;
    be->rmsnorm_backward = rmsnorm_backward;
    be->rope_forward = rope_forward;
    be->rope_backward = rope_backward;
    be->attention_forward = attention_forward;
    be->attention_backward = attention_backward;
    be->gelu_forward = gelu_forward;
    be->gelu_backward = gelu_backward;
    be->swiglu_forward = swiglu_forward;
    be->swiglu_backward = swiglu_backward;
    be->crossentropy_forward = crossentropy_forward;
    be->crossentropy_backward = crossentropy_backward;
}

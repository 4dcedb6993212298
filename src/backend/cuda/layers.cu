/* The CUDA backend's layers: the per-entry maths of cpu_layers.c as kernels, in fp32 with the same
 * sums in double where the CPU keeps them in double. Row operations (norms, cross-entropy) take one
 * block of THREADS per row; attention is tiled in shared memory (a block per tile of 16 query or key
 * rows of a head, the other side streamed through in tiles) with an online softmax, so no (T, T)
 * matrix is ever stored (the forward keeps each row's log-sum-exp, the backward recomputes the
 * probabilities from it: FlashAttention-2's scheme, in fp32 without tensor cores). Parameter
 * gradients that sum over rows use no atomics, so every run gives the same bits: norm gains and
 * biases in two passes over chunks of rows (COL_ROWS), the embeddings by token buckets made on the
 * host. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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

/* The embeddings' gradient without atomics and in parallel: the rows (b, t) grouped by token id on the
 * host, in order within a group (buckets: U ids, U + 1 offsets into order, order the B T rows), then a
 * thread per (token, channel) and per (position, channel) adds its rows in order: the sums of a
 * thread per channel looping over the rows, bit for bit, with U C and T C threads instead of C. */
__global__ void k_embed_backward_wte(float *dwte, const float *dout, const int *buckets, int U, int C) {
    const int *id = buckets, *off = buckets + U, *order = off + U + 1;
    GRID_STRIDE(i, (size_t)U * C) {
        size_t u = i / C, c = i % C;
        float w = dwte[(size_t)id[u] * C + c];
        for (int k = off[u]; k < off[u + 1]; k++) w += dout[(size_t)order[k] * C + c];
        dwte[(size_t)id[u] * C + c] = w;
    }
}
__global__ void k_embed_backward_wpe(float *dwpe, const float *dout, int B, int T, int C) {
    GRID_STRIDE(i, (size_t)T * C) {
        size_t t = i / C, c = i % C;
        float w = dwpe[i];
        for (int b = 0; b < B; b++) w += dout[((size_t)b * T + t) * C + c];
        dwpe[i] = w;
    }
}

static int by_id_then_row(const void *a, const void *b) {
    const int *x = (const int *)a, *y = (const int *)b;
    return x[0] != y[0] ? (x[0] < y[0] ? -1 : 1) : (x[1] > y[1]) - (x[1] < y[1]);
}

static void embed_backward(float *dwte, float *dwpe, const float *dout, const int *ids, int B, int T, int C) {
    if (cuda_failed() || B * T == 0 || (!dwte && !dwpe)) return;
    if (dwpe) {
        KERNEL_LAUNCH(blocks_for((size_t)T * C), THREADS, k_embed_backward_wpe)(dwpe, dout, B, T, C);
        CUDA_LAUNCHED();
    }
    if (!dwte) return;
    size_t BT = (size_t)B * T;
    int *pairs = (int *)malloc(2 * BT * sizeof(int)), *buckets = (int *)malloc((3 * BT + 1) * sizeof(int));
    if (!pairs || !buckets) {
        free(pairs), free(buckets);
        cuda_fail(__FILE__, __LINE__, "embed_backward", "out of host memory for the token buckets");
        return;
    }
    for (size_t i = 0; i < BT; i++) pairs[2 * i] = ids[i], pairs[2 * i + 1] = (int)i;
    qsort(pairs, BT, 2 * sizeof(int), by_id_then_row);
    int U = 0;
    for (size_t i = 0; i < BT; i++) U += i == 0 || pairs[2 * i] != pairs[2 * i - 2];
    int *id = buckets, *off = buckets + U, *order = off + U + 1;
    for (size_t i = 0, u = 0; i < BT; i++) {
        if (i == 0 || pairs[2 * i] != pairs[2 * i - 2]) id[u] = pairs[2 * i], off[u++] = (int)i;
        order[i] = pairs[2 * i + 1];
    }
    off[U] = (int)BT;
    const int *d_buckets = cuda_upload_ids(buckets, (size_t)2 * U + 1 + BT);
    free(pairs), free(buckets);
    if (!d_buckets) return;
    KERNEL_LAUNCH(blocks_for((size_t)U * C), THREADS, k_embed_backward_wte)(dwte, dout, d_buckets, U, C);
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
/* Column sums over N rows without atomics, in two passes of a fixed shape (the same bits on every run):
 * chunks of COL_ROWS rows summed per column into parts (a thread per (chunk, column)), then each
 * column's chunks in order; N / COL_ROWS times the threads of one thread per column looping over all
 * the rows. */
enum { COL_ROWS = 256 };
static inline unsigned col_chunks(int N) { return (unsigned)((N + COL_ROWS - 1) / COL_ROWS); }
/* grid: col_blocks(C) x col_chunks(N), columns fastest; the thread's column j and rows r0..r1 */
#define COL_PART(j, r0, r1, C, N)                                                                 \
    int nb_ = (C + THREADS - 1) / THREADS, chunk_ = blockIdx.x / nb_;                             \
    int j = blockIdx.x % nb_ * THREADS + threadIdx.x, r0 = chunk_ * COL_ROWS, r1 = min(N, r0 + COL_ROWS)
static inline unsigned col_grid(int N, int C) { return (unsigned)((C + THREADS - 1) / THREADS) * col_chunks(N); }

/* norm gains (and biases): parts (2, chunks, C) of sum dy xn and sum dy, in double */
__global__ void k_norm_cols_part(double *parts, const float *dout, const float *inp, const float *mean,
                                 const float *rstd, int N, int C) {
    COL_PART(j, r0, r1, C, N);
    if (j >= C) return;
    double sw = 0, sb = 0;
    for (int n = r0; n < r1; n++) {
        float dy = dout[(size_t)n * C + j];
        float xn = mean ? (inp[(size_t)n * C + j] - mean[n]) * rstd[n] : inp[(size_t)n * C + j] * rstd[n];
        sw += (double)dy * xn;
        sb += dy;
    }
    size_t chunks = gridDim.x / nb_;
    parts[chunk_ * (size_t)C + j] = sw;
    parts[(chunks + chunk_) * C + j] = sb;
}
__global__ void k_norm_cols_sum(float *dw, float *db, const double *parts, int chunks, int C) {
    GRID_STRIDE(j, (size_t)C) {
        double sw = 0, sb = 0;
        for (int k = 0; k < chunks; k++) sw += parts[(size_t)k * C + j], sb += parts[((size_t)chunks + k) * C + j];
        dw[j] += (float)sw;
        if (db) db[j] += (float)sb;
    }
}
/* dw (C) += sum_n dout xn, db (C) += sum_n dout (when not NULL); xn = (inp - mean) rstd, or inp rstd
 * without mean (RMSNorm) */
static void norm_cols(float *dw, float *db, const float *dout, const float *inp, const float *mean, const float *rstd,
                      int N, int C) {
    unsigned chunks = col_chunks(N);
    double *parts = (double *)cuda_scratch(SCRATCH_PARTS, 2 * (size_t)chunks * C * sizeof(double));
    if (!parts) return;
    KERNEL_LAUNCH(col_grid(N, C), THREADS, k_norm_cols_part)(parts, dout, inp, mean, rstd, N, C);
    CUDA_LAUNCHED();
    KERNEL_LAUNCH(blocks_for((size_t)C), THREADS, k_norm_cols_sum)(dw, db, parts, (int)chunks, C);
    CUDA_LAUNCHED();
}
static void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                               const float *mean, const float *rstd, int N, int C) {
    if (cuda_failed() || N == 0) return;
    KERNEL_LAUNCH(N, THREADS, k_layernorm_backward_rows)(dinp, dout, inp, w, mean, rstd, C);
    CUDA_LAUNCHED();
    if (!dw) return;
    norm_cols(dw, db, dout, inp, mean, rstd, N, C);
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
    norm_cols(dw, NULL, dout, inp, NULL, rstd, N, C);
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

/* the bias gradient: parts (chunks, OC) of sum dout, then each column's chunks in order (see COL_ROWS) */
__global__ void k_bias_part(float *parts, const float *dout, int N, int OC) {
    COL_PART(j, r0, r1, OC, N);
    if (j >= OC) return;
    float s = 0;
    for (int n = r0; n < r1; n++) s += dout[(size_t)n * OC + j];
    parts[chunk_ * (size_t)OC + j] = s;
}
__global__ void k_bias_sum(float *dbias, const float *parts, int chunks, int OC) {
    GRID_STRIDE(j, (size_t)OC) {
        float s = 0;
        for (int k = 0; k < chunks; k++) s += parts[(size_t)k * OC + j];
        dbias[j] += s;
    }
}
static void matmul_backward(mofo_precision prec, float *dinp, float *dw, float *dbias, const float *dout,
                            const float *inp, const float *w, int N, int C, int OC) {
    if (dinp) cuda_gemm(prec, false, false, N, C, OC, 1.0f, dout, OC, w, C, 0.0f, dinp, C);
    if (dw) cuda_gemm(prec, true, false, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
    if (!dbias || cuda_failed() || N == 0) return;
    unsigned chunks = col_chunks(N);
    float *parts = (float *)cuda_scratch(SCRATCH_PARTS, (size_t)chunks * OC * sizeof(float));
    if (!parts) return;
    KERNEL_LAUNCH(col_grid(N, OC), THREADS, k_bias_part)(parts, dout, N, OC);
    CUDA_LAUNCHED();
    KERNEL_LAUNCH(blocks_for((size_t)OC), THREADS, k_bias_sum)(dbias, parts, (int)chunks, OC);
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

/* ---- attention: tiles of rows in shared memory ----
 * A block of ATT_THREADS threads takes a tile of ROWS rows of one head and sequence (query rows for
 * the forward and dq, key rows for dk and dv) and runs over the other side in tiles of TILE rows,
 * each loaded once into shared memory for all its rows. ROW_LANES = 8 neighbouring lanes of a warp
 * share a row: lane `sub` holds its entries d = sub, sub + 8, ... and its scores j = sub, sub + 8,
 * ...; the row's max and sums go round the 8 lanes by shuffles. Shared rows have stride HD + 1, so
 * that the 32 lanes reading one column of 32 rows meet 32 banks. TILE is a template parameter: what
 * fits 48 KB of static shared memory for head sizes up to 128 and up to ATT_MAX_HD = 256. */

enum { ATT_THREADS = 128, ROW_LANES = 8, ROWS = ATT_THREADS / ROW_LANES, ATT_MAX_HD = 256 };

__device__ inline int first_key(int t, int window) { return window > 0 && t - window + 1 > 0 ? t - window + 1 : 0; }
/* does the query at position t see the key at position u */
__device__ inline bool sees(int t, int u, int window) { return u <= t && u >= first_key(t, window); }

/* c over the lane's entries d = sub + 8c < HD of its row, unrolled to MAXHD / 8: the per-entry arrays
 * (acc, dq, dk, dv) stay in registers, where a loop bounded by HD alone would index them at run time
 * (local memory) */
#define FOR_LANE_ENTRIES(c, d) \
    _Pragma("unroll") for (int c = 0, d = sub; c < MAXHD / ROW_LANES; c++, d += ROW_LANES) if (d < HD)

/* the max and the sum over the 8 lanes of a row, the same in each (xor 4, 2, 1 stays in the group) */
__device__ inline float row_max(float v) {
    for (int o = ROW_LANES / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ inline float row_sum(float v) {
    for (int o = ROW_LANES / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* n rows of HD entries, row r at src + r * ld_src (rows >= have: zeros) -> dst (n, stride) in shared memory */
__device__ inline void load_tile(float *dst, int stride, const float *src, size_t ld_src, int n, int have, int HD) {
    for (int x = threadIdx.x; x < n * HD; x += ATT_THREADS) {
        int r = x / HD, d = x % HD;
        dst[r * stride + d] = r < have ? src[(size_t)r * ld_src + d] : 0.0f;
    }
}
/* sum over d < HD of a[d] b[d], in order; a, b rows in shared memory */
__device__ inline float dot_shared(const float *a, const float *b, int HD) {
    float s = 0;
    for (int d = 0; d < HD; d++) s += a[d] * b[d];
    return s;
}

/* grid (T / ROWS tiles) NH B: the forward of a tile of query rows t0.. (positions pos0 + t), keys in
 * tiles of TILE with an online softmax (running max m and sum l per row) */
template <int TILE, int MAXHD>
__global__ void k_attention_forward(float *out, float *lse, const float *q, int ldq, const float *k, const float *v,
                                    int ldkv, int T, int pos0, int NH, int NKV, int HD, int window, float scale) {
    __shared__ float sq[ROWS * (MAXHD + 1)], sk[TILE * (MAXHD + 1)], sv[TILE * (MAXHD + 1)], sp[ROWS * (TILE + 1)];
    int tiles = (T + ROWS - 1) / ROWS, t0 = blockIdx.x % tiles * ROWS, h = blockIdx.x / tiles % NH;
    int b = blockIdx.x / tiles / NH, rows = min(ROWS, T - t0), ld = HD + 1;
    int i = threadIdx.x / ROW_LANES, sub = threadIdx.x % ROW_LANES;
    size_t kv0 = (size_t)b * (pos0 + T) * ldkv + (size_t)(h / (NH / NKV)) * HD;
    load_tile(sq, ld, q + ((size_t)b * T + t0) * ldq + (size_t)h * HD, ldq, ROWS, rows, HD);
    float acc[MAXHD / ROW_LANES] = {0}, m = -INFINITY, l = 0;
    int lo = first_key(pos0 + t0, window), hi = pos0 + t0 + rows - 1; /* the keys the tile's rows see */
    for (int u0 = lo; u0 <= hi; u0 += TILE) {
        __syncthreads(); /* the last tile's readers are done */
        int keys = min(TILE, hi - u0 + 1);
        load_tile(sk, ld, k + kv0 + (size_t)u0 * ldkv, ldkv, TILE, keys, HD);
        load_tile(sv, ld, v + kv0 + (size_t)u0 * ldkv, ldkv, TILE, keys, HD);
        __syncthreads();
        for (int x = threadIdx.x; x < ROWS * TILE; x += ATT_THREADS) {
            int r = x / TILE, j = x % TILE;
            bool on = r < rows && sees(pos0 + t0 + r, u0 + j, window);
            sp[r * (TILE + 1) + j] = on ? scale * dot_shared(sq + r * ld, sk + j * ld, HD) : -INFINITY;
        }
        __syncthreads();
        float *pr = sp + i * (TILE + 1), mt = -INFINITY, ps = 0;
        for (int j = sub; j < TILE; j += ROW_LANES) mt = fmaxf(mt, pr[j]);
        float mn = fmaxf(m, row_max(mt));
        float corr = mn == -INFINITY ? 1.0f : expf(m - mn); /* no key seen yet: nothing to correct */
        for (int j = sub; j < TILE; j += ROW_LANES) {
            float p = pr[j] == -INFINITY ? 0.0f : expf(pr[j] - mn);
            pr[j] = p, ps += p;
        }
        l = l * corr + row_sum(ps), m = mn;
        __syncwarp(); /* the row's probabilities, written by its 8 lanes, for all 8 */
        FOR_LANE_ENTRIES(c, d) {
            float o = acc[c] * corr;
            for (int j = 0; j < TILE; j++) o += pr[j] * sv[j * ld + d];
            acc[c] = o;
        }
    }
    if (i >= rows) return;
    float *o = out + ((size_t)b * T + t0 + i) * NH * HD + (size_t)h * HD;
    FOR_LANE_ENTRIES(c, d) o[d] = acc[c] / l;
    if (sub == 0) lse[((size_t)b * NH + h) * T + t0 + i] = m + logf(l);
}
/* TILE keys: the tile size that fits shared memory for the head size */
#define ATT_FORWARD_128 k_attention_forward<32, 128>
#define ATT_FORWARD_256 k_attention_forward<8, 256>

static bool head_fits(int HD) {
    if (HD <= ATT_MAX_HD) return true;
    char why[64];
    snprintf(why, sizeof why, "head size %d is over %d", HD, (int)ATT_MAX_HD);
    cuda_fail(__FILE__, __LINE__, "attention", why);
    return false;
}
static void attention_forward(float *out, float *lse, const float *q, int ldq, const float *k, const float *v, int ldkv,
                              int B, int T, int pos0, int NH, int NKV, int HD, int window, float *scratch) {
    (void)scratch; /* the online softmax needs none */
    if (cuda_failed() || B * T == 0 || !head_fits(HD)) return;
    unsigned grid = (unsigned)((T + ROWS - 1) / ROWS * NH * B);
    float scale = 1.0f / sqrtf((float)HD);
    if (HD <= 128)
        KERNEL_LAUNCH(grid, ATT_THREADS, ATT_FORWARD_128)(out, lse, q, ldq, k, v, ldkv, T, pos0, NH, NKV, HD, window, scale);
    else
        KERNEL_LAUNCH(grid, ATT_THREADS, ATT_FORWARD_256)(out, lse, q, ldq, k, v, ldkv, T, pos0, NH, NKV, HD, window, scale);
    CUDA_LAUNCHED();
}

/* D (B, NH, T) = dout . out per row (the sum over keys of P dP): ROWS rows of D a block, 8 lanes a row */
__global__ void k_attention_rowterm(float *D, const float *dout, const float *out, int T, int NH, int HD, size_t n) {
    size_t r = (size_t)blockIdx.x * ROWS + threadIdx.x / ROW_LANES;
    int sub = threadIdx.x % ROW_LANES;
    float s = 0;
    if (r < n) {
        size_t t = r % T, h = r / T % NH, b = r / T / NH, row = (b * T + t) * NH * HD + h * HD;
        for (int d = sub; d < HD; d += ROW_LANES) s += dout[row + d] * out[row + d];
    }
    s = row_sum(s); /* every lane takes part in the shuffles */
    if (r < n && sub == 0) D[r] = s;
}

/* grid (T / ROWS tiles) NH B: dq of a tile of query rows += scale sum_u dS(t, u) k_u over tiles of TILE
 * keys, dS = P (dO . v_u - D), P = exp(scale q . k_u - lse) */
template <int TILE, int MAXHD>
__global__ void k_attention_dq(float *dqkv, const float *dout, const float *qkv, const float *lse, const float *D,
                               int T, int NH, int NKV, int HD, int window, float scale) {
    __shared__ float sq[ROWS * (MAXHD + 1)], sdo[ROWS * (MAXHD + 1)], sk[TILE * (MAXHD + 1)], sv[TILE * (MAXHD + 1)],
        sds[ROWS * (TILE + 1)], sL[ROWS], sD[ROWS];
    int tiles = (T + ROWS - 1) / ROWS, t0 = blockIdx.x % tiles * ROWS, h = blockIdx.x / tiles % NH;
    int b = blockIdx.x / tiles / NH, kh = h / (NH / NKV), rows = min(ROWS, T - t0), ld = HD + 1;
    int i = threadIdx.x / ROW_LANES, sub = threadIdx.x % ROW_LANES;
    size_t QKV = (size_t)(NH + 2 * NKV) * HD, base = (size_t)b * T * QKV;
    load_tile(sq, ld, qkv + base + t0 * QKV + (size_t)h * HD, QKV, ROWS, rows, HD);
    load_tile(sdo, ld, dout + ((size_t)b * T + t0) * NH * HD + (size_t)h * HD, (size_t)NH * HD, ROWS, rows, HD);
    if (threadIdx.x < ROWS) {
        size_t r = ((size_t)b * NH + h) * T + t0 + threadIdx.x;
        sL[threadIdx.x] = (int)threadIdx.x < rows ? lse[r] : 0.0f;
        sD[threadIdx.x] = (int)threadIdx.x < rows ? D[r] : 0.0f;
    }
    float dq[MAXHD / ROW_LANES] = {0};
    int lo = first_key(t0, window), hi = t0 + rows - 1;
    for (int u0 = lo; u0 <= hi; u0 += TILE) {
        __syncthreads();
        int keys = min(TILE, hi - u0 + 1);
        const float *kr = qkv + base + u0 * QKV + (size_t)(NH + kh) * HD;
        load_tile(sk, ld, kr, QKV, TILE, keys, HD);
        load_tile(sv, ld, kr + (size_t)NKV * HD, QKV, TILE, keys, HD);
        __syncthreads();
        for (int x = threadIdx.x; x < ROWS * TILE; x += ATT_THREADS) {
            int r = x / TILE, j = x % TILE;
            float ds = 0;
            if (r < rows && sees(t0 + r, u0 + j, window)) {
                float p = expf(scale * dot_shared(sq + r * ld, sk + j * ld, HD) - sL[r]);
                ds = p * (dot_shared(sdo + r * ld, sv + j * ld, HD) - sD[r]);
            }
            sds[r * (TILE + 1) + j] = ds;
        }
        __syncthreads();
        const float *dr = sds + i * (TILE + 1);
        FOR_LANE_ENTRIES(c, d) {
            float s = 0;
            for (int j = 0; j < TILE; j++) s += dr[j] * sk[j * ld + d];
            dq[c] += scale * s;
        }
    }
    if (i >= rows) return;
    float *g = dqkv + base + (t0 + i) * QKV + (size_t)h * HD;
    FOR_LANE_ENTRIES(c, d) g[d] += dq[c];
}

/* grid (T / ROWS tiles) NKV B: dk and dv of a tile of key rows u0.. of kv head kh, over the queries
 * that see them in every head of its group, in tiles of TILE queries: dv_u += sum_t P dO_t,
 * dk_u += scale sum_t dS q_t */
template <int TILE, int MAXHD>
__global__ void k_attention_dkv(float *dqkv, const float *dout, const float *qkv, const float *lse, const float *D,
                                int T, int NH, int NKV, int HD, int window, float scale) {
    __shared__ float sk[ROWS * (MAXHD + 1)], sv[ROWS * (MAXHD + 1)], sq[TILE * (MAXHD + 1)], sdo[TILE * (MAXHD + 1)],
        sp[ROWS * (TILE + 1)], sds[ROWS * (TILE + 1)], sL[TILE], sD[TILE];
    int tiles = (T + ROWS - 1) / ROWS, u0 = blockIdx.x % tiles * ROWS, kh = blockIdx.x / tiles % NKV;
    int b = blockIdx.x / tiles / NKV, G = NH / NKV, keys = min(ROWS, T - u0), ld = HD + 1;
    int j = threadIdx.x / ROW_LANES, sub = threadIdx.x % ROW_LANES;
    size_t QKV = (size_t)(NH + 2 * NKV) * HD, base = (size_t)b * T * QKV;
    size_t ko = base + u0 * QKV + (size_t)(NH + kh) * HD, vo = ko + (size_t)NKV * HD;
    load_tile(sk, ld, qkv + ko, QKV, ROWS, keys, HD);
    load_tile(sv, ld, qkv + vo, QKV, ROWS, keys, HD);
    float dk[MAXHD / ROW_LANES] = {0}, dv[MAXHD / ROW_LANES] = {0};
    int last = u0 + keys - 1, hi = window > 0 && last + window - 1 < T - 1 ? last + window - 1 : T - 1;
    for (int h = kh * G; h < (kh + 1) * G; h++)
        for (int t0 = u0; t0 <= hi; t0 += TILE) {
            __syncthreads();
            int queries = min(TILE, hi - t0 + 1);
            load_tile(sq, ld, qkv + base + t0 * QKV + (size_t)h * HD, QKV, TILE, queries, HD);
            load_tile(sdo, ld, dout + ((size_t)b * T + t0) * NH * HD + (size_t)h * HD, (size_t)NH * HD, TILE, queries, HD);
            if ((int)threadIdx.x < TILE) {
                size_t r = ((size_t)b * NH + h) * T + t0 + threadIdx.x;
                sL[threadIdx.x] = (int)threadIdx.x < queries ? lse[r] : 0.0f;
                sD[threadIdx.x] = (int)threadIdx.x < queries ? D[r] : 0.0f;
            }
            __syncthreads();
            for (int x = threadIdx.x; x < ROWS * TILE; x += ATT_THREADS) {
                int kj = x / TILE, r = x % TILE;
                float p = 0, ds = 0;
                if (kj < keys && r < queries && sees(t0 + r, u0 + kj, window)) {
                    p = expf(scale * dot_shared(sk + kj * ld, sq + r * ld, HD) - sL[r]);
                    ds = p * (dot_shared(sv + kj * ld, sdo + r * ld, HD) - sD[r]);
                }
                sp[kj * (TILE + 1) + r] = p, sds[kj * (TILE + 1) + r] = ds;
            }
            __syncthreads();
            const float *pr = sp + j * (TILE + 1), *dr = sds + j * (TILE + 1);
            FOR_LANE_ENTRIES(c, d) {
                float a = 0, s = 0;
                for (int r = 0; r < TILE; r++) a += pr[r] * sdo[r * ld + d], s += dr[r] * sq[r * ld + d];
                dv[c] += a, dk[c] += scale * s;
            }
        }
    if (j >= keys) return;
    FOR_LANE_ENTRIES(c, d) {
        dqkv[ko + (size_t)j * QKV + d] += dk[c];
        dqkv[vo + (size_t)j * QKV + d] += dv[c];
    }
}
/* TILE keys (dq) or queries (dk, dv) that fit shared memory for the head size */
#define ATT_DQ_128 k_attention_dq<16, 128>
#define ATT_DQ_256 k_attention_dq<4, 256>
#define ATT_DKV_128 k_attention_dkv<16, 128>
#define ATT_DKV_256 k_attention_dkv<4, 256>

static void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse,
                               int B, int T, int NH, int NKV, int HD, int window, float *scratch) {
    (void)scratch;
    if (cuda_failed() || B * T == 0 || !head_fits(HD)) return;
    float *D = (float *)cuda_scratch(SCRATCH_ROWS, (size_t)B * NH * T * sizeof(float)), scale = 1.0f / sqrtf((float)HD);
    if (!D) return;
    size_t rows = (size_t)B * T * NH;
    KERNEL_LAUNCH((unsigned)((rows + ROWS - 1) / ROWS), ATT_THREADS, k_attention_rowterm)(D, dout, out, T, NH, HD, rows);
    CUDA_LAUNCHED();
    unsigned tiles = (unsigned)((T + ROWS - 1) / ROWS), gq = tiles * NH * B, gkv = tiles * NKV * B;
    if (HD <= 128) {
        KERNEL_LAUNCH(gq, ATT_THREADS, ATT_DQ_128)(dqkv, dout, qkv, lse, D, T, NH, NKV, HD, window, scale);
        CUDA_LAUNCHED();
        KERNEL_LAUNCH(gkv, ATT_THREADS, ATT_DKV_128)(dqkv, dout, qkv, lse, D, T, NH, NKV, HD, window, scale);
    } else {
        KERNEL_LAUNCH(gq, ATT_THREADS, ATT_DQ_256)(dqkv, dout, qkv, lse, D, T, NH, NKV, HD, window, scale);
        CUDA_LAUNCHED();
        KERNEL_LAUNCH(gkv, ATT_THREADS, ATT_DKV_256)(dqkv, dout, qkv, lse, D, T, NH, NKV, HD, window, scale);
    }
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

/* The engine's operations boundary: every kernel the transformer, the trainer and the evaluation run,
 * and the memory they run on, as one table of functions (the way ggml's backend interface or
 * llm.c's list of layer functions are the only place kernels live). model/, train/ and eval/
 * orchestrate through a mofo_backend only; the CPU backend (cpu.c, cpu_layers.c: OpenMP and the
 * BLAS of blas.c) is the first, a CUDA backend implements the same table. tests/test_ops.c checks
 * any backend's every operation against naive references and finite differences.
 *
 * Arrays are the backend's (alloc); token ids and targets are host int arrays. Sizes: N = B T rows,
 * C channels, OC output channels, V vocabulary, NH/NKV heads, HD head size, QKV = (NH + 2 NKV) HD.
 * Backward operations overwrite the input gradient where marked "=" and accumulate where marked
 * "+="; parameter gradients accumulate and are not computed where their pointer is NULL (frozen). */
#ifndef MOFO_BACKEND_H
#define MOFO_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mofo/engine.h" /* mofo_precision */
#include "mofo/optim.h"  /* mofo_device */

/* The pull toward the pre-trained weights theta0 that the l1/l2 methods add to the loss. */
typedef enum { MOFO_PENALTY_L1 = 1, MOFO_PENALTY_L2 = 2 } mofo_penalty;

typedef struct mofo_backend {
    const char *name; /* "cpu", "cuda" */
    bool host;        /* the arrays are host memory, which the engine may read and write directly */
    /* NULL while every operation has succeeded; else what failed first, naming the call, the file and
     * the line (a device's errors are sticky, as CUDA's: later operations do nothing). The operations
     * return nothing, so the engine asks here after each step. The CPU backend fails past alloc only
     * when a rounded product cannot allocate its copies of the inputs. */
    const char *(*failure)(void);
    /* Frees what the backend holds itself (scratch, library handles), after its last operation and
     * once every array of alloc has been freed; it may be created again afterwards. */
    void (*close)(void);
    /* Waits until the operations given so far have run (a device's run after their call returns):
     * for timing them. */
    void (*sync)(void);
    /* The device memory in use, in bytes (cudaMemGetInfo's total - free: every allocation on the
     * device, libmofo's and other processes' included); 0 for the host. */
    size_t (*bytes_in_use)(void);

    /* ---- memory ---- */
    float *(*alloc)(size_t n);                                /* n zeroed floats; NULL when out of memory */
    void (*free)(float *p);                                   /* NULL is fine */
    void (*upload)(float *dst, const float *host, size_t n);  /* host -> backend */
    void (*download)(float *host, const float *src, size_t n); /* backend -> host */
    void (*copy)(float *dst, const float *src, size_t n);     /* within the backend; no overlap */
    void (*fill)(float *dst, float value, size_t n);

    /* ---- element-wise and reductions ---- */
    void (*add)(float *y, const float *x, size_t n);          /* y += x */
    void (*scale)(float *x, float s, size_t n);               /* x *= s */
    double (*sum)(const float *x, size_t n);                  /* in double, in a fixed order */
    double (*sumsq)(const float *x, size_t n);                /* sum x^2, in double, in a fixed order */
    /* g (n) += the penalty's gradient, d = theta - theta0: L1 reg sign(d) (0 where equal), L2
     * 2 reg d; returns the penalty, reg sum |d| (L1) or reg sum d^2 (L2) */
    double (*penalty_grad)(mofo_penalty kind, double reg, const float *theta, const float *theta0, float *g, int64_t n);
    /* How far b (n) is from a: sums[0] = sum (b - a)^2 and sums[1] = sum a^2 (in double, in a fixed
     * order), sums[2] = the entries whose bits differ */
    void (*distance)(const float *a, const float *b, size_t n, double sums[3]);

    /* ---- matrix products: the inputs rounded as prec says (rounding.h), fp32 accumulation ---- */
    /* C (M, N) = alpha op(A) op(B) + beta C, row-major with leading dimensions (BLAS's sgemm) */
    void (*gemm)(mofo_precision prec, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc);
    /* inp (N, C), w (OC, C), bias (OC) or NULL (added in fp32) -> out (N, OC) */
    void (*matmul_forward)(mofo_precision prec, float *out, const float *inp, const float *w, const float *bias, int N,
                           int C, int OC);
    /* dout (N, OC) -> dinp (N, C) = (when not NULL), dw (OC, C) +=, dbias (OC) += (when not NULL; fp32) */
    void (*matmul_backward)(mofo_precision prec, float *dinp, float *dw, float *dbias, const float *dout,
                            const float *inp, const float *w, int N, int C, int OC);

    /* ---- the transformer's layers ---- */
    /* ids (B, T) host, wte (V, C), wpe (max_T, C) or NULL (rows for positions 0..T-1) -> out (B, T, C) */
    void (*embed_forward)(float *out, const int *ids, const float *wte, const float *wpe, int B, int T, int C);
    /* dout (B, T, C) -> dwte (V, C) +=, dwpe (max_T, C) += (when not NULL) */
    void (*embed_backward)(float *dwte, float *dwpe, const float *dout, const int *ids, int B, int T, int C);
    /* inp (N, C), w, b (C) -> out (N, C), mean (N), rstd (N) */
    void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                              int N, int C, float eps);
    /* dinp (N, C) +=, dw (C) +=, db (C) += */
    void (*layernorm_backward)(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                               const float *w, const float *mean, const float *rstd, int N, int C);
    /* inp (N, C), w (C) -> out (N, C), rstd (N) */
    void (*rmsnorm_forward)(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps);
    /* dinp (N, C) +=, dw (C) += */
    void (*rmsnorm_backward)(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                             const float *rstd, int N, int C);
    /* qkv (B, T, QKV): rotates the NH query and NKV key heads in place; cos, sin (T, HD/2) the
     * table's rows for the rows' positions (Hugging Face's rotate_half convention) */
    void (*rope_forward)(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int NH, int NKV, int HD);
    /* dqkv (B, T, QKV): the transposed rotation, in place */
    void (*rope_backward)(float *dqkv, const float *cos_t, const float *sin_t, int B, int T, int NH, int NKV,
                          int HD);
    /* q (B, T, ldq): NH query heads from column 0; k, v (B, P, ldkv), P = pos0 + T: NKV heads each.
     * Query t sits at position pos0 + t and sees keys u in [pos0 + t - window + 1, pos0 + t]
     * (window 0: from 0) -> out (B, T, NH HD), lse (B, NH, T) each row's log-sum-exp of the scaled
     * scores; scratch: T P floats */
    void (*attention_forward)(float *out, float *lse, const float *q, int ldq, const float *k, const float *v,
                              int ldkv, int B, int T, int pos0, int NH, int NKV, int HD, int window, float *scratch);
    /* dout (B, T, NH HD), the forward's qkv (B, T, QKV), out, lse (pos0 = 0) -> dqkv (B, T, QKV) +=;
     * scratch: 2 T T floats */
    void (*attention_backward)(float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse,
                               int B, int T, int NH, int NKV, int HD, int window, float *scratch);
    /* GELU, tanh approximation: inp (n) -> out (n); backward dinp (n) = */
    void (*gelu_forward)(float *out, const float *inp, size_t n);
    void (*gelu_backward)(float *dinp, const float *inp, const float *dout, size_t n);
    /* inp (N, 2F): gate then up -> out (N, F) = silu(gate) up; backward dinp (N, 2F) = */
    void (*swiglu_forward)(float *out, const float *inp, int N, int F);
    void (*swiglu_backward)(float *dinp, const float *inp, const float *dout, int N, int F);
    /* logits (N, V), targets (N) host with -100 ignored -> losses (N) (0 where ignored); returns the
     * count of targets that count */
    int (*crossentropy_forward)(float *losses, const float *logits, const int *targets, int N, int V);
    /* logits (N, V) become dlogits = (softmax - onehot) scale (0 rows where ignored), in place */
    void (*crossentropy_backward)(float *logits, const int *targets, int N, int V, float scale);
} mofo_backend;

/* The CPU backend: OpenMP loops and the BLAS that blas.c chooses. */
const mofo_backend *mofo_backend_cpu(void);

/* The CUDA backend (src/backend/cuda/: kernels and cuBLAS) on the current device; NULL with the
 * reason in err (MOFO_ENODEV) when the build has no CUDA or the machine no device. */
struct mofo_err;
const mofo_backend *mofo_backend_cuda(struct mofo_err *err);

/* The backend of a libmofo device (mofo/optim.h's mofo_device: cpu, cuda); NULL with the reason in err. */
const mofo_backend *mofo_backend_for(mofo_device device, struct mofo_err *err);
/* 0 while every operation of be has succeeded; else MOFO_EDEVICE with be's first failure in err. */
int mofo_backend_check(const mofo_backend *be, struct mofo_err *err);

#endif

/* The CPU backend's layers (backend.h says what each computes): free functions over plain fp32
 * arrays (llm.c style), matrix products through BLAS, the rest OpenMP. Only cpu.c calls them. */
#ifndef MOFO_LAYERS_H
#define MOFO_LAYERS_H

#include <stdbool.h>
#include <stddef.h>

#include "mofo/engine.h" /* mofo_precision */

// ids (B,T), wte (V,C), wpe (maxT,C) or NULL -> out (B,T,C)
void embed_forward(float *out, const int *ids, const float *wte, const float *wpe, int B, int T, int C);
// dout (B,T,C) -> dwte (V,C) +=, dwpe (maxT,C) += (when not NULL)
void embed_backward(float *dwte, float *dwpe, const float *dout, const int *ids, int B, int T, int C);

// inp (N,C), w (C), b (C) -> out (N,C), mean (N), rstd (N)
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                       int N, int C, float eps);
// dinp (N,C) +=, dw (C) +=, db (C) +=
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                        const float *mean, const float *rstd, int N, int C);
// inp (N,C), w (C) -> out (N,C), rstd (N)
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps);
// dinp (N,C) +=, dw (C) +=
void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                      const float *rstd, int N, int C);

// C (M,N) = alpha op(A) op(B) + beta C with the inputs rounded as prec says: rounded copies of A and B
// (malloc'ed per call), then sgemm; a failed allocation leaves C and records cpu_gemm_failure()
void cpu_gemm(mofo_precision prec, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
              int lda, const float *B, int ldb, float beta, float *C, int ldc);
// NULL, or the first product that could not allocate its rounded inputs (sticky, as a device's failure)
const char *cpu_gemm_failure(void);
// inp (N,C), w (OC,C), bias (OC) or NULL -> out (N,OC)
void matmul_forward(mofo_precision prec, float *out, const float *inp, const float *w, const float *bias, int N, int C,
                    int OC);
// dout (N,OC) -> dinp (N,C) = (when not NULL), dw (OC,C) +=, dbias (OC) += (when not NULL)
void matmul_backward(mofo_precision prec, float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, int N, int C, int OC);

// qkv (B,T,QKV): rotates the NH query heads and NKV key heads in place
void rope_forward(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int NH, int NKV, int HD);
// dqkv (B,T,QKV): the transposed rotation, in place
void rope_backward(float *dqkv, const float *cos_t, const float *sin_t, int B, int T, int NH, int NKV, int HD);

// q (B,T,ldq): NH query heads of HD from column 0; k, v (B,P,ldkv) with P = pos0 + T: NKV heads of HD
// each from their pointers. Query t of a sequence sits at position pos0 + t and sees the keys u in
// [pos0 + t - window + 1, pos0 + t] (window 0: from 0) -> out (B,T,NH*HD), lse (B,NH,T) the log-sum-exp
// of each row's scaled scores. Scores and probabilities live only in scratch (T*P floats).
void attention_forward(float *out, float *lse, const float *q, int ldq, const float *k, const float *v, int ldkv,
                       int B, int T, int pos0, int NH, int NKV, int HD, int window, float *scratch);
// dout (B,T,NH*HD), out and lse of the forward -> dqkv (B,T,QKV) +=: the probabilities are recomputed
// (flash-attention style); scratch: 2*T*T floats
void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse, int B,
                        int T, int NH, int NKV, int HD, int window, float *scratch);

// GELU with the tanh approximation: inp (N,F) -> out (N,F)
void gelu_forward(float *out, const float *inp, size_t n);
// dinp (N,F) =
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
// inp (N, 2F): gate then up -> out (N,F) = silu(gate) * up
void swiglu_forward(float *out, const float *inp, int N, int F);
// dinp (N,2F) =
void swiglu_backward(float *dinp, const float *inp, const float *dout, int N, int F);

// logits (N,V), targets (N) with -100 ignored -> losses (N) (0 where ignored); returns the count
int crossentropy_forward(float *losses, const float *logits, const int *targets, int N, int V);
// logits (N,V) become dlogits = (softmax - onehot) * scale (0 rows where ignored), in place
void crossentropy_backward(float *logits, const int *targets, int N, int V, float scale);

#endif

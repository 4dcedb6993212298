/* The parameter sets of the optimizer benchmarks (optim_shapes.h). */
#include "optim_shapes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct shape_list {
    shape *s;
    int n, cap;
} shape_list;

static void add(shape_list *l, const char *name, int ndim, int64_t d0, int64_t d1) {
    if (l->n < l->cap) {
        shape *x = &l->s[l->n++];
        snprintf(x->name, sizeof x->name, "%.63s", name);
        x->ndim = ndim;
        x->dims[0] = d0;
        x->dims[1] = d1;
    }
}

static int finish(shape_list *l, shape **out, int64_t *total) {
    *total = 0;
    for (int i = 0; i < l->n; i++) *total += l->s[i].dims[0] * (l->s[i].ndim == 2 ? l->s[i].dims[1] : 1);
    *out = l->s;
    return l->n;
}

int bench_gpt2_shapes(int64_t C, int64_t V, int64_t P, int layers, shape **out, int64_t *total) {
    shape_list l = {calloc((size_t)(4 + 12 * layers), sizeof(shape)), 0, 4 + 12 * layers};
    if (!l.s) return -1;
    add(&l, "wte", 2, V, C);
    add(&l, "wpe", 2, P, C);
    static const char *names[12] = {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                                    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                                    "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"};
    for (int layer = 0; layer < layers; layer++) {
        int64_t d0[12] = {C, C, C, 3 * C, C, C, C, C, C, 4 * C, 4 * C, C};
        int64_t d1[12] = {0, 0, 3 * C, 0, C, 0, 0, 0, 4 * C, 0, C, 0};
        for (int j = 0; j < 12; j++) {
            char name[64];
            snprintf(name, sizeof name, "h.%d.%s", layer, names[j]);
            add(&l, name, d1[j] ? 2 : 1, d0[j], d1[j]);
        }
    }
    add(&l, "ln_f.weight", 1, C, 0);
    add(&l, "ln_f.bias", 1, C, 0);
    return finish(&l, out, total);
}

int bench_tinyllama_shapes(shape **out, int64_t *total) {
    const int64_t C = 2048, KV = 4 * 64, F = 5632, V = 32000;
    const int layers = 22;
    shape_list l = {calloc((size_t)(3 + 9 * layers), sizeof(shape)), 0, 3 + 9 * layers};
    if (!l.s) return -1;
    add(&l, "model.embed_tokens.weight", 2, V, C);
    static const char *names[9] = {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                                   "self_attn.o_proj.weight", "mlp.gate_proj.weight",    "mlp.up_proj.weight",
                                   "mlp.down_proj.weight",    "input_layernorm.weight",  "post_attention_layernorm.weight"};
    for (int layer = 0; layer < layers; layer++) {
        int64_t d0[9] = {C, KV, KV, C, F, F, C, C, C};
        int64_t d1[9] = {C, C, C, C, C, C, F, 0, 0};
        for (int j = 0; j < 9; j++) {
            char name[96];
            snprintf(name, sizeof name, "model.layers.%d.%s", layer, names[j]);
            add(&l, name, d1[j] ? 2 : 1, d0[j], d1[j]);
        }
    }
    add(&l, "model.norm.weight", 1, C, 0);
    add(&l, "lm_head.weight", 2, V, C);
    return finish(&l, out, total);
}

int bench_named_shapes(const char *name, shape **out, int64_t *total) {
    if (strcmp(name, "124M") == 0) return bench_gpt2_shapes(768, 50257, 1024, 12, out, total);
    if (strcmp(name, "1.1B") == 0) return bench_tinyllama_shapes(out, total);
    if (strcmp(name, "1.5B") == 0) return bench_gpt2_shapes(1600, 50257, 1024, 48, out, total);
    return -1;
}

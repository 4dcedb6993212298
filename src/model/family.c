/* The model families as data: each family's checkpoint tensors, in the order the parameter buffer
 * holds them, with their Hugging Face names, layouts, roles and PEFT module names. Loading, saving,
 * binding the block's matrices, LoRA's targets, Half Fine-Tuning's frozen half and the parameter
 * kinds all read the roles this table gives; adding a family is one table here (and its config.json
 * fields in config.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

/* When a tensor exists. */
typedef enum { ALWAYS, IF_LEARNED_POS, IF_QKV_BIAS, IF_O_BIAS, IF_MLP_BIAS, IF_UNTIED } presence;

typedef struct {
    mofo_role role;
    presence when;
    const char *name;   /* the checkpoint name; %d: the layer */
    int transposed;     /* stored [in, out] (GPT-2's Conv1D) */
    const char *module; /* PEFT's target_modules name of the matrix (LoRA's short names map to it) */
} tensor_spec;

typedef struct {
    mofo_names_kind names;
    const tensor_spec *outer_first, *layer, *outer_last; /* each ends with a NULL name */
} family;

/* Within a layer q, k, v and gate, up follow each other: the block multiplies them as one matrix. */
static const tensor_spec GPT2_FIRST[] = {
    {MOFO_ROLE_EMBED, ALWAYS, "transformer.wte.weight", 0, NULL},
    {MOFO_ROLE_POS_EMBED, IF_LEARNED_POS, "transformer.wpe.weight", 0, NULL},
    {0, 0, NULL, 0, NULL}};
static const tensor_spec GPT2_LAYER[] = {
    {MOFO_ROLE_NORM1_W, ALWAYS, "transformer.h.%d.ln_1.weight", 0, NULL},
    {MOFO_ROLE_NORM1_B, ALWAYS, "transformer.h.%d.ln_1.bias", 0, NULL},
    {MOFO_ROLE_QKV_W, ALWAYS, "transformer.h.%d.attn.c_attn.weight", 1, "c_attn"},
    {MOFO_ROLE_QKV_B, ALWAYS, "transformer.h.%d.attn.c_attn.bias", 0, NULL},
    {MOFO_ROLE_O_W, ALWAYS, "transformer.h.%d.attn.c_proj.weight", 1, "attn.c_proj"},
    {MOFO_ROLE_O_B, ALWAYS, "transformer.h.%d.attn.c_proj.bias", 0, NULL},
    {MOFO_ROLE_NORM2_W, ALWAYS, "transformer.h.%d.ln_2.weight", 0, NULL},
    {MOFO_ROLE_NORM2_B, ALWAYS, "transformer.h.%d.ln_2.bias", 0, NULL},
    {MOFO_ROLE_FC_W, ALWAYS, "transformer.h.%d.mlp.c_fc.weight", 1, "c_fc"},
    {MOFO_ROLE_FC_B, ALWAYS, "transformer.h.%d.mlp.c_fc.bias", 0, NULL},
    {MOFO_ROLE_DOWN_W, ALWAYS, "transformer.h.%d.mlp.c_proj.weight", 1, "mlp.c_proj"},
    {MOFO_ROLE_DOWN_B, ALWAYS, "transformer.h.%d.mlp.c_proj.bias", 0, NULL},
    {0, 0, NULL, 0, NULL}};
static const tensor_spec GPT2_LAST[] = {
    {MOFO_ROLE_NORMF_W, ALWAYS, "transformer.ln_f.weight", 0, NULL},
    {MOFO_ROLE_NORMF_B, ALWAYS, "transformer.ln_f.bias", 0, NULL},
    {MOFO_ROLE_LM_HEAD, IF_UNTIED, "lm_head.weight", 0, NULL},
    {0, 0, NULL, 0, NULL}};

/* Llama, Mistral, Qwen2 */
static const tensor_spec LLAMA_FIRST[] = {
    {MOFO_ROLE_EMBED, ALWAYS, "model.embed_tokens.weight", 0, NULL},
    {0, 0, NULL, 0, NULL}};
static const tensor_spec LLAMA_LAYER[] = {
    {MOFO_ROLE_NORM1_W, ALWAYS, "model.layers.%d.input_layernorm.weight", 0, NULL},
    {MOFO_ROLE_Q_W, ALWAYS, "model.layers.%d.self_attn.q_proj.weight", 0, "q_proj"},
    {MOFO_ROLE_K_W, ALWAYS, "model.layers.%d.self_attn.k_proj.weight", 0, "k_proj"},
    {MOFO_ROLE_V_W, ALWAYS, "model.layers.%d.self_attn.v_proj.weight", 0, "v_proj"},
    {MOFO_ROLE_Q_B, IF_QKV_BIAS, "model.layers.%d.self_attn.q_proj.bias", 0, NULL},
    {MOFO_ROLE_K_B, IF_QKV_BIAS, "model.layers.%d.self_attn.k_proj.bias", 0, NULL},
    {MOFO_ROLE_V_B, IF_QKV_BIAS, "model.layers.%d.self_attn.v_proj.bias", 0, NULL},
    {MOFO_ROLE_O_W, ALWAYS, "model.layers.%d.self_attn.o_proj.weight", 0, "o_proj"},
    {MOFO_ROLE_O_B, IF_O_BIAS, "model.layers.%d.self_attn.o_proj.bias", 0, NULL},
    {MOFO_ROLE_NORM2_W, ALWAYS, "model.layers.%d.post_attention_layernorm.weight", 0, NULL},
    {MOFO_ROLE_GATE_W, ALWAYS, "model.layers.%d.mlp.gate_proj.weight", 0, "gate_proj"},
    {MOFO_ROLE_UP_W, ALWAYS, "model.layers.%d.mlp.up_proj.weight", 0, "up_proj"},
    {MOFO_ROLE_GATE_B, IF_MLP_BIAS, "model.layers.%d.mlp.gate_proj.bias", 0, NULL},
    {MOFO_ROLE_UP_B, IF_MLP_BIAS, "model.layers.%d.mlp.up_proj.bias", 0, NULL},
    {MOFO_ROLE_DOWN_W, ALWAYS, "model.layers.%d.mlp.down_proj.weight", 0, "down_proj"},
    {MOFO_ROLE_DOWN_B, IF_MLP_BIAS, "model.layers.%d.mlp.down_proj.bias", 0, NULL},
    {0, 0, NULL, 0, NULL}};
static const tensor_spec LLAMA_LAST[] = {
    {MOFO_ROLE_NORMF_W, ALWAYS, "model.norm.weight", 0, NULL},
    {MOFO_ROLE_LM_HEAD, IF_UNTIED, "lm_head.weight", 0, NULL},
    {0, 0, NULL, 0, NULL}};

static const family FAMILIES[] = {
    {MOFO_NAMES_GPT2, GPT2_FIRST, GPT2_LAYER, GPT2_LAST},
    {MOFO_NAMES_LLAMA, LLAMA_FIRST, LLAMA_LAYER, LLAMA_LAST},
};

static const family *family_of(const mofo_model_config *c) {
    for (size_t i = 0; i < sizeof FAMILIES / sizeof FAMILIES[0]; i++)
        if (FAMILIES[i].names == c->names) return &FAMILIES[i];
    return NULL;
}

static int present(presence p, const mofo_model_config *c) {
    switch (p) {
    case ALWAYS: return 1;
    case IF_LEARNED_POS: return c->pos == MOFO_POS_LEARNED;
    case IF_QKV_BIAS: return c->qkv_bias;
    case IF_O_BIAS: return c->o_bias;
    case IF_MLP_BIAS: return c->mlp_bias;
    case IF_UNTIED: return !c->tied;
    }
    return 0;
}

/* The in-memory shape of a tensor of this role: (OC, C) for matrices; returns ndim. */
static int role_shape(mofo_role r, const mofo_model_config *c, int64_t shape[2]) {
    int64_t C = c->C, Q = (int64_t)c->NH * c->HD, KV = (int64_t)c->NKV * c->HD, FF = c->FF;
    int64_t rows = 0, cols = 0;
    switch (r) {
    case MOFO_ROLE_EMBED: case MOFO_ROLE_LM_HEAD: rows = c->V, cols = C; break;
    case MOFO_ROLE_POS_EMBED: rows = c->max_T, cols = C; break;
    case MOFO_ROLE_Q_W: rows = Q, cols = C; break;
    case MOFO_ROLE_K_W: case MOFO_ROLE_V_W: rows = KV, cols = C; break;
    case MOFO_ROLE_QKV_W: rows = Q + 2 * KV, cols = C; break;
    case MOFO_ROLE_O_W: rows = C, cols = Q; break;
    case MOFO_ROLE_GATE_W: case MOFO_ROLE_UP_W: case MOFO_ROLE_FC_W: rows = FF, cols = C; break;
    case MOFO_ROLE_DOWN_W: rows = C, cols = FF; break;
    case MOFO_ROLE_Q_B: rows = Q; break;
    case MOFO_ROLE_K_B: case MOFO_ROLE_V_B: rows = KV; break;
    case MOFO_ROLE_QKV_B: rows = Q + 2 * KV; break;
    case MOFO_ROLE_GATE_B: case MOFO_ROLE_UP_B: case MOFO_ROLE_FC_B: rows = FF; break;
    case MOFO_ROLE_NORM1_W: case MOFO_ROLE_NORM1_B: case MOFO_ROLE_NORM2_W: case MOFO_ROLE_NORM2_B:
    case MOFO_ROLE_NORMF_W: case MOFO_ROLE_NORMF_B: case MOFO_ROLE_O_B: case MOFO_ROLE_DOWN_B: rows = C; break;
    }
    shape[0] = rows, shape[1] = cols;
    return cols ? 2 : 1;
}

/* 2^42 parameters (16 TiB in fp32): a config beyond is refused before its table is built. */
#define MAX_FLOATS ((uint64_t)1 << 42)

typedef struct {
    mofo_param *p;
    int n, cap;
    size_t offset;
} table;

static int add_specs(table *tb, const tensor_spec *s, const mofo_model_config *c, int layer) {
    for (; s->name; s++) {
        if (!present(s->when, c)) continue;
        if (tb->n == tb->cap) {
            int cap = tb->cap ? 2 * tb->cap : 64;
            mofo_param *p = realloc(tb->p, (size_t)cap * sizeof *p);
            if (!p) return -1;
            tb->p = p, tb->cap = cap;
        }
        mofo_param *p = &tb->p[tb->n++];
        memset(p, 0, sizeof *p);
        snprintf(p->name, sizeof p->name, s->name, layer);
        p->role = s->role;
        p->layer = layer;
        p->ndim = role_shape(s->role, c, p->shape);
        p->numel = p->ndim == 2 ? p->shape[0] * p->shape[1] : p->shape[0];
        p->transposed = s->transposed;
        p->dtype = MOFO_DT_F32;
        p->offset = tb->offset;
        if ((uint64_t)p->numel > MAX_FLOATS - tb->offset) return 1; /* sizes no machine holds */
        tb->offset += (size_t)p->numel;
    }
    return 0;
}

int mofo_model_param_table(const mofo_model_config *cfg, mofo_param **out, int *n, size_t *n_floats,
                           mofo_err *err) {
    *out = NULL;
    *n = 0;
    int rc = mofo_config_check(cfg, "config", err);
    if (rc) return rc;
    const family *f = family_of(cfg);
    if (!f) return mofo_errf(err, MOFO_EINVAL, "model_type '%s': no tensor table for its family", cfg->model_type);
    table tb = {0};
    int bad = add_specs(&tb, f->outer_first, cfg, -1);
    for (int l = 0; l < cfg->L && !bad; l++) bad = add_specs(&tb, f->layer, cfg, l);
    if (!bad) bad = add_specs(&tb, f->outer_last, cfg, -1);
    if (bad) {
        free(tb.p);
        return bad > 0 ? mofo_errf(err, MOFO_EFORMAT, "config: more than 2^42 parameters (vocab %d, hidden %d, "
                                   "layers %d, mlp %d)", cfg->V, cfg->C, cfg->L, cfg->FF)
                       : mofo_errf(err, MOFO_ENOMEM, "out of memory for the parameter table");
    }
    *out = tb.p;
    *n = tb.n;
    if (n_floats) *n_floats = tb.offset;
    return 0;
}

const char *mofo_family_module(const mofo_model_config *c, mofo_role role) {
    const family *f = family_of(c);
    for (const tensor_spec *s = f ? f->layer : NULL; s && s->name; s++)
        if (s->role == role) return s->module;
    return NULL;
}

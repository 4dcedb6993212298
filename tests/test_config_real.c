/* Real config.json files (fixtures/configs, as published on the Hugging Face Hub) load, and the
 * parameter table each one gives (mofo_model_param_table: no parameters allocated, so 7B and 8B
 * configs are checked on any machine) has Hugging Face's tensor names and shapes and the published
 * parameter count. A scaled-down copy of each config (same family, flags and RoPE, small widths)
 * is built for real and runs a forward pass.
 *
 * Tensor names (those of the checkpoints on the Hub; the table holds the same):
 *   Llama, Mistral, Qwen2: model.embed_tokens.weight; model.layers.N.input_layernorm.weight,
 *     self_attn.{q,k,v,o}_proj.weight (Qwen2: q/k/v_proj.bias too), post_attention_layernorm.weight,
 *     mlp.{gate,up,down}_proj.weight; model.norm.weight; lm_head.weight unless tie_word_embeddings.
 *   GPT-2: wte.weight, wpe.weight, h.N.ln_1.{weight,bias}, h.N.attn.c_attn.{weight,bias},
 *     h.N.attn.c_proj.{weight,bias}, h.N.ln_2.{weight,bias}, h.N.mlp.c_fc.{weight,bias},
 *     h.N.mlp.c_proj.{weight,bias}, ln_f.{weight,bias}; Conv1D weights stored [in, out]; lm_head
 *     tied to wte. The OpenAI files on the Hub have these names bare, a GPT2LMHeadModel saved by
 *     transformers prefixes them with "transformer."; the table uses the prefixed names and the
 *     loader falls back to the bare ones.
 *
 * Expected parameter counts: the published totals (model.num_parameters() in transformers, which
 * counts a tied matrix once; the Hub's safetensors totals), each checked by hand below from the
 * config: embeddings V*C (GPT-2: + n_positions*C), per layer q C*NH*HD + k,v 2*C*NKV*HD + o NH*HD*C
 * + gate,up,down 3*C*FF + two norms 2C (Qwen2: + q/k/v biases NH*HD + 2*NKV*HD; GPT-2: 12C^2 + 13C
 * with FF = 4C: c_attn 3C^2+3C, c_proj C^2+C, c_fc 4C^2+4C, mlp c_proj 4C^2+C, ln_1/ln_2 4C), the
 * final norm C (GPT-2: 2C), lm_head V*C unless tied.
 *
 *   gpt2          V 50257 C 768  L 12: 38,597,376 + 786,432 + 12 * 7,087,872 + 1,536        =   124,439,808
 *   gpt2-medium   C 1024 L 24: 51,463,168 + 1,048,576 + 24 * 12,596,224 + 2,048              =   354,823,168
 *   gpt2-large    C 1280 L 36: 64,328,960 + 1,310,720 + 36 * 19,677,440 + 2,560              =   774,030,080
 *   gpt2-xl       C 1600 L 48: 80,411,200 + 1,638,400 + 48 * 30,740,800 + 3,200              = 1,557,611,200
 *   Llama-3.2-1B  V 128256 C 2048 L 16 NH 32 NKV 8 HD 64 FF 8192, tied:
 *                 262,668,288 + 16 * (4,194,304 + 2,097,152 + 4,194,304 + 50,331,648 + 4,096) + 2,048
 *                 = 262,668,288 + 16 * 60,821,504 + 2,048                                    = 1,235,814,400
 *   Llama-3.2-3B  V 128256 C 3072 L 28 NH 24 NKV 8 HD 128 FF 8192, tied:
 *                 394,002,432 + 28 * 100,669,440 + 3,072                                     = 3,212,749,824
 *   Llama-3.1-8B  V 128256 C 4096 L 32 NH 32 NKV 8 HD 128 FF 14336, untied:
 *                 525,336,576 + 32 * 218,112,000 + 4,096 + 525,336,576                       = 8,030,261,248
 *   Qwen2.5-0.5B  V 151936 C 896 L 24 NH 14 NKV 2 HD 64 FF 4864, tied, q/k/v biases:
 *                 136,134,656 + 24 * (802,816 + 896 + 229,376 + 256 + 802,816 + 13,074,432 + 1,792) + 896
 *                 = 136,134,656 + 24 * 14,912,384 + 896                                      =   494,032,768
 *   Qwen2.5-1.5B  V 151936 C 1536 L 28 NH 12 NKV 2 HD 128 FF 8960, tied:
 *                 233,373,696 + 28 * 46,797,824 + 1,536                                      = 1,543,714,304
 *   Qwen2.5-3B    V 151936 C 2048 L 36 NH 16 NKV 2 HD 128 FF 11008, tied:
 *                 311,164,928 + 36 * 77,076,992 + 2,048                                      = 3,085,938,688
 *   Qwen2.5-7B    V 152064 C 3584 L 28 NH 28 NKV 4 HD 128 FF 18944, untied:
 *                 544,997,376 + 28 * 233,057,792 + 3,584 + 544,997,376                       = 7,615,616,512
 *   Mistral-7B-v0.1  V 32000 C 4096 L 32 NH 32 NKV 8 FF 14336, untied:
 *                 131,072,000 + 32 * 218,112,000 + 4,096 + 131,072,000                       = 7,241,732,096
 *   Mistral-7B-v0.3  V 32768: 134,217,728 + 6,979,584,000 + 4,096 + 134,217,728              = 7,248,023,552
 *   TinyLlama-1.1B   V 32000 C 2048 L 22 NH 32 NKV 4 HD 64 FF 5632, untied:
 *                 65,536,000 + 22 * 44,044,288 + 2,048 + 65,536,000                          = 1,100,048,384
 *   SmolLM2-135M  V 49152 C 576 L 30 NH 9 NKV 3 HD 64 FF 1536, tied:
 *                 28,311,552 + 30 * 3,540,096 + 576                                          =   134,515,008
 *   SmolLM2-360M  C 960 L 32 NH 15 NKV 5 FF 2560, tied: 47,185,920 + 32 * 9,832,320 + 960     =   361,821,120
 *   SmolLM2-1.7B  C 2048 L 24 NH 32 NKV 32 FF 8192, tied: 100,663,296 + 24 * 67,112,960 + 2,048 = 1,711,376,384
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model/model.h"

typedef struct {
    const char *file, *model_type;
    int V, C, L, NH, NKV, HD, FF, max_T;
    int tied, qkv_bias;
    double theta, eps;
    mofo_rope_kind rope;
    double rope_factor;
    int window;
    int64_t params; /* published */
} real_cfg;

#define LLAMA3(f) MOFO_ROPE_LLAMA3, f
#define NO_SCALING MOFO_ROPE_DEFAULT, 0

static const real_cfg CASES[] = {
    {"gpt2", "gpt2", 50257, 768, 12, 12, 12, 64, 3072, 1024, 1, 1, 0, 1e-5, NO_SCALING, 0, 124439808},
    {"gpt2-medium", "gpt2", 50257, 1024, 24, 16, 16, 64, 4096, 1024, 1, 1, 0, 1e-5, NO_SCALING, 0, 354823168},
    {"gpt2-large", "gpt2", 50257, 1280, 36, 20, 20, 64, 5120, 1024, 1, 1, 0, 1e-5, NO_SCALING, 0, 774030080},
    {"gpt2-xl", "gpt2", 50257, 1600, 48, 25, 25, 64, 6400, 1024, 1, 1, 0, 1e-5, NO_SCALING, 0, 1557611200},
    {"llama-3.2-1b", "llama", 128256, 2048, 16, 32, 8, 64, 8192, 131072, 1, 0, 500000, 1e-5, LLAMA3(32), 0,
     1235814400},
    {"llama-3.2-3b", "llama", 128256, 3072, 28, 24, 8, 128, 8192, 131072, 1, 0, 500000, 1e-5, LLAMA3(32), 0,
     3212749824},
    {"llama-3.1-8b", "llama", 128256, 4096, 32, 32, 8, 128, 14336, 131072, 0, 0, 500000, 1e-5, LLAMA3(8), 0,
     8030261248},
    {"qwen2.5-0.5b", "qwen2", 151936, 896, 24, 14, 2, 64, 4864, 32768, 1, 1, 1e6, 1e-6, NO_SCALING, 0, 494032768},
    {"qwen2.5-1.5b", "qwen2", 151936, 1536, 28, 12, 2, 128, 8960, 131072, 1, 1, 1e6, 1e-6, NO_SCALING, 0,
     1543714304},
    {"qwen2.5-3b", "qwen2", 151936, 2048, 36, 16, 2, 128, 11008, 32768, 1, 1, 1e6, 1e-6, NO_SCALING, 0, 3085938688},
    {"qwen2.5-7b", "qwen2", 152064, 3584, 28, 28, 4, 128, 18944, 131072, 0, 1, 1e6, 1e-6, NO_SCALING, 0,
     7615616512},
    {"mistral-7b-v0.1", "mistral", 32000, 4096, 32, 32, 8, 128, 14336, 32768, 0, 0, 10000, 1e-5, NO_SCALING, 4096,
     7241732096},
    {"mistral-7b-v0.3", "mistral", 32768, 4096, 32, 32, 8, 128, 14336, 32768, 0, 0, 1e6, 1e-5, NO_SCALING, 0,
     7248023552},
    {"tinyllama-1.1b-chat-v1.0", "llama", 32000, 2048, 22, 32, 4, 64, 5632, 2048, 0, 0, 10000, 1e-5, NO_SCALING, 0,
     1100048384},
    {"smollm2-135m", "llama", 49152, 576, 30, 9, 3, 64, 1536, 8192, 1, 0, 100000, 1e-5, NO_SCALING, 0, 134515008},
    {"smollm2-360m", "llama", 49152, 960, 32, 15, 5, 64, 2560, 8192, 1, 0, 100000, 1e-5, NO_SCALING, 0, 361821120},
    {"smollm2-1.7b", "llama", 49152, 2048, 24, 32, 32, 64, 8192, 8192, 1, 0, 130000, 1e-5, NO_SCALING, 0,
     1711376384},
};

static char *read_fixture(const char *name, char *path, size_t path_size) {
    snprintf(path, path_size, "%s/configs/%s.json", MOFO_FIXTURES, name);
    char *text = slurp(path, NULL);
    CHECK(text != NULL, "cannot read %s", path);
    return text;
}

/* text with the first occurrence of from replaced by to (malloc'd); NULL (and a failed check) when absent */
static char *replace(const char *text, const char *from, const char *to) {
    const char *at = strstr(text, from);
    CHECK(at != NULL, "'%s' not in the fixture", from);
    if (!at) return NULL;
    size_t n = strlen(text), nf = strlen(from), nt = strlen(to);
    char *out = malloc(n - nf + nt + 1);
    memcpy(out, text, (size_t)(at - text));
    memcpy(out + (at - text), to, nt);
    memcpy(out + (at - text) + nt, at + nf, n - (size_t)(at - text) - nf + 1);
    return out;
}

static const mofo_param *find(const mofo_param *p, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(p[i].name, name) == 0) return &p[i];
    return NULL;
}

/* the tensor named name exists with this in-memory shape (s1 = 0: a vector) and Conv1D flag */
static void check_tensor(const char *file, const mofo_param *p, int n, const char *name, int64_t s0, int64_t s1,
                         int transposed) {
    const mofo_param *t = find(p, n, name);
    CHECK(t != NULL, "%s: no tensor %s", file, name);
    if (!t) return;
    CHECK(t->ndim == (s1 ? 2 : 1) && t->shape[0] == s0 && t->shape[1] == s1 && t->transposed == transposed,
          "%s: %s is %d-dim (%lld, %lld)%s, expected (%lld, %lld)", file, name, t->ndim, (long long)t->shape[0],
          (long long)t->shape[1], t->transposed ? " transposed" : "", (long long)s0, (long long)s1);
}

static void check_table(const real_cfg *e, const mofo_model_config *c) {
    mofo_err err = {0};
    mofo_param *p = NULL;
    int n = 0;
    size_t n_floats = 0;
    CHECK(mofo_model_param_table(c, &p, &n, &n_floats, &err) == 0, "%s: %s", e->file, err.msg);
    if (!p) return;
    int gpt2 = c->names == MOFO_NAMES_GPT2, L = e->L, C = e->C;
    int per_layer = gpt2 ? 12 : e->qkv_bias ? 12 : 9;
    int want_n = (gpt2 ? 4 : 2) + per_layer * L + (e->tied ? 0 : 1);
    CHECK(n == want_n, "%s: %d tensors, expected %d", e->file, n, want_n);
    int64_t sum = 0;
    for (int i = 0; i < n; i++) {
        CHECK(p[i].offset == (size_t)sum, "%s: %s at offset %zu, expected %lld", e->file, p[i].name, p[i].offset,
              (long long)sum);
        sum += p[i].numel;
    }
    CHECK(sum == e->params && n_floats == (size_t)e->params, "%s: %lld parameters (table %zu), published %lld",
          e->file, (long long)sum, n_floats, (long long)e->params);
    int dup = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) dup += strcmp(p[i].name, p[j].name) == 0;
    CHECK(dup == 0, "%s: %d duplicate tensor names", e->file, dup);
    char nm[96];
    int Q = e->NH * e->HD, KV = e->NKV * e->HD, last = L - 1;
    if (gpt2) {
        check_tensor(e->file, p, n, "transformer.wte.weight", e->V, C, 0);
        check_tensor(e->file, p, n, "transformer.wpe.weight", e->max_T, C, 0);
        check_tensor(e->file, p, n, "transformer.h.0.ln_1.weight", C, 0, 0);
        check_tensor(e->file, p, n, "transformer.h.0.attn.c_attn.weight", 3 * C, C, 1); /* file [C, 3C] */
        check_tensor(e->file, p, n, "transformer.h.0.attn.c_attn.bias", 3 * C, 0, 0);
        check_tensor(e->file, p, n, "transformer.h.0.attn.c_proj.weight", C, C, 1);
        snprintf(nm, sizeof nm, "transformer.h.%d.mlp.c_fc.weight", last);
        check_tensor(e->file, p, n, nm, e->FF, C, 1);
        snprintf(nm, sizeof nm, "transformer.h.%d.mlp.c_proj.weight", last);
        check_tensor(e->file, p, n, nm, C, e->FF, 1);
        snprintf(nm, sizeof nm, "transformer.h.%d.ln_2.bias", last);
        check_tensor(e->file, p, n, nm, C, 0, 0);
        check_tensor(e->file, p, n, "transformer.ln_f.weight", C, 0, 0);
        check_tensor(e->file, p, n, "transformer.ln_f.bias", C, 0, 0);
    } else {
        check_tensor(e->file, p, n, "model.embed_tokens.weight", e->V, C, 0);
        check_tensor(e->file, p, n, "model.layers.0.input_layernorm.weight", C, 0, 0);
        check_tensor(e->file, p, n, "model.layers.0.self_attn.q_proj.weight", Q, C, 0);
        check_tensor(e->file, p, n, "model.layers.0.self_attn.k_proj.weight", KV, C, 0);
        check_tensor(e->file, p, n, "model.layers.0.self_attn.v_proj.weight", KV, C, 0);
        check_tensor(e->file, p, n, "model.layers.0.self_attn.o_proj.weight", C, Q, 0);
        check_tensor(e->file, p, n, "model.layers.0.post_attention_layernorm.weight", C, 0, 0);
        snprintf(nm, sizeof nm, "model.layers.%d.mlp.gate_proj.weight", last);
        check_tensor(e->file, p, n, nm, e->FF, C, 0);
        snprintf(nm, sizeof nm, "model.layers.%d.mlp.up_proj.weight", last);
        check_tensor(e->file, p, n, nm, e->FF, C, 0);
        snprintf(nm, sizeof nm, "model.layers.%d.mlp.down_proj.weight", last);
        check_tensor(e->file, p, n, nm, C, e->FF, 0);
        check_tensor(e->file, p, n, "model.norm.weight", C, 0, 0);
        if (e->qkv_bias) {
            check_tensor(e->file, p, n, "model.layers.0.self_attn.q_proj.bias", Q, 0, 0);
            check_tensor(e->file, p, n, "model.layers.0.self_attn.k_proj.bias", KV, 0, 0);
            snprintf(nm, sizeof nm, "model.layers.%d.self_attn.v_proj.bias", last);
            check_tensor(e->file, p, n, nm, KV, 0, 0);
        }
        CHECK(!find(p, n, "model.layers.0.self_attn.o_proj.bias") && !find(p, n, "model.layers.0.mlp.down_proj.bias"),
              "%s: o_proj / MLP biases", e->file);
        if (e->tied)
            CHECK(!find(p, n, "lm_head.weight"), "%s: tied, yet lm_head.weight", e->file);
        else
            check_tensor(e->file, p, n, "lm_head.weight", e->V, C, 0);
    }
    free(p);
}

/* The same family at a small size: the table matches what mofo_model_create builds, and it runs. */
static void check_small(const real_cfg *e, const mofo_model_config *full) {
    mofo_model_config c = *full;
    int group = full->NH / full->NKV;
    c.NKV = group > 1 ? 1 : 2;
    c.NH = c.NKV * group;
    c.HD = 8;
    c.C = c.names == MOFO_NAMES_GPT2 ? c.NH * c.HD : 40;
    c.L = 2, c.V = 67, c.FF = 24, c.max_T = 32;
    mofo_err err = {0};
    mofo_model *m = NULL;
    CHECK(mofo_model_create(&m, &c, 7, 0.05f, &err) == 0, "%s (small): %s", e->file, err.msg);
    mofo_param *p = NULL;
    int n = 0;
    size_t n_floats = 0;
    CHECK(mofo_model_param_table(&c, &p, &n, &n_floats, &err) == 0, "%s (small): %s", e->file, err.msg);
    if (m && p) {
        CHECK(n == m->n_p && n_floats == m->n_floats, "%s (small): table %d tensors / %zu floats, model %d / %zu",
              e->file, n, n_floats, m->n_p, m->n_floats);
        for (int i = 0; i < n && i < m->n_p; i++)
            CHECK(strcmp(p[i].name, m->p[i].name) == 0 && p[i].numel == m->p[i].numel &&
                      p[i].offset == m->p[i].offset && p[i].transposed == m->p[i].transposed,
                  "%s (small): tensor %d is %s in the table, %s in the model", e->file, i, p[i].name, m->p[i].name);
        enum { T = 20 };
        int ids[T], tg[T];
        for (int t = 0; t < T; t++) ids[t] = (t * 13 + 5) % c.V, tg[t] = (t * 13 + 18) % c.V;
        float loss = 0;
        CHECK(mofo_model_forward(m, ids, tg, 1, T, &loss, &err) == 0 && isfinite(loss) && loss > 0,
              "%s (small): forward: %s, loss %g", e->file, err.msg, loss);
    }
    free(p);
    mofo_model_free(m);
}

static void check_case(const real_cfg *e) {
    char path[512];
    char *text = read_fixture(e->file, path, sizeof path);
    if (!text) return;
    mofo_model_config c;
    mofo_err err = {0};
    int rc = mofo_config_parse(&c, text, strlen(text), path, &err);
    free(text);
    CHECK(rc == 0, "%s", err.msg);
    if (rc) return;
    int gpt2 = strcmp(e->model_type, "gpt2") == 0;
    CHECK(strcmp(c.model_type, e->model_type) == 0 && c.names == (gpt2 ? MOFO_NAMES_GPT2 : MOFO_NAMES_LLAMA),
          "%s: model_type %s", e->file, c.model_type);
    CHECK(c.V == e->V && c.C == e->C && c.L == e->L && c.NH == e->NH && c.NKV == e->NKV && c.HD == e->HD &&
              c.FF == e->FF && c.max_T == e->max_T,
          "%s: V %d C %d L %d NH %d NKV %d HD %d FF %d max_T %d", e->file, c.V, c.C, c.L, c.NH, c.NKV, c.HD, c.FF,
          c.max_T);
    CHECK(c.tied == e->tied && c.qkv_bias == e->qkv_bias && c.o_bias == gpt2 && c.mlp_bias == gpt2,
          "%s: tied %d, biases q/k/v %d o %d mlp %d", e->file, c.tied, c.qkv_bias, c.o_bias, c.mlp_bias);
    CHECK(c.norm_eps == e->eps && c.norm == (gpt2 ? MOFO_NORM_LAYERNORM : MOFO_NORM_RMSNORM) &&
              c.act == (gpt2 ? MOFO_ACT_GELU_TANH : MOFO_ACT_SWIGLU) &&
              c.pos == (gpt2 ? MOFO_POS_LEARNED : MOFO_POS_ROPE),
          "%s: eps %g, norm/act/positions", e->file, c.norm_eps);
    if (!gpt2) {
        CHECK(c.rope_theta == e->theta && c.rope_scaling == e->rope && c.rope_factor == e->rope_factor,
              "%s: rope theta %g scaling %d factor %g", e->file, c.rope_theta, (int)c.rope_scaling, c.rope_factor);
        if (e->rope == MOFO_ROPE_LLAMA3)
            CHECK(c.rope_low_freq_factor == 1.0 && c.rope_high_freq_factor == 4.0 && c.rope_original_max_T == 8192,
                  "%s: llama3 rope %g %g %d", e->file, c.rope_low_freq_factor, c.rope_high_freq_factor,
                  c.rope_original_max_T);
        CHECK(c.rope_round == MOFO_ROPE_ROUND_BF16, "%s: torch_dtype bfloat16", e->file);
    }
    CHECK(c.sliding_window == e->window, "%s: sliding window %d, expected %d", e->file, c.sliding_window, e->window);
    check_table(e, &c);
    check_small(e, &c);
}

/* A fixture with one edit: parses (returns 0, *c filled) or fails with a message naming the file and want. */
static int parse_edited(const char *name, const char *from, const char *to, mofo_model_config *c, const char *want) {
    char path[512];
    char *text = read_fixture(name, path, sizeof path);
    char *edited = text ? replace(text, from, to) : NULL;
    free(text);
    if (!edited) return -1;
    mofo_err err = {0};
    int rc = mofo_config_parse(c, edited, strlen(edited), path, &err);
    free(edited);
    if (want)
        CHECK(rc != 0 && strstr(err.msg, path) && strstr(err.msg, want), "%s with '%s': '%s' should name %s", name,
              to, err.msg, want);
    else
        CHECK(rc == 0, "%s with '%s': %s", name, to, err.msg);
    return rc;
}

int main(void) {
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) check_case(&CASES[i]);

    mofo_model_config c;
    /* Qwen2Config: with use_sliding_window the window covers layers max_window_layers.. (none here: 24 of 24) */
    if (parse_edited("qwen2.5-0.5b", "\"use_sliding_window\": false", "\"use_sliding_window\": true", &c, NULL) == 0)
        CHECK(c.sliding_window == 0, "qwen2.5-0.5b, use_sliding_window, max_window_layers = L: window %d",
              c.sliding_window);
    /* every layer from 0 on: one window for all, as mofo implements it */
    char *text = NULL, path[512];
    if ((text = read_fixture("qwen2.5-0.5b", path, sizeof path))) {
        char *a = replace(text, "\"use_sliding_window\": false", "\"use_sliding_window\": true");
        char *b = a ? replace(a, "\"max_window_layers\": 24", "\"max_window_layers\": 0") : NULL;
        mofo_err err = {0};
        CHECK(b && mofo_config_parse(&c, b, strlen(b), path, &err) == 0 && c.sliding_window == 32768,
              "qwen2.5-0.5b sliding from layer 0: %s (window %d)", err.msg, c.sliding_window);
        free(b);
        /* layers 21..23 sliding, 0..20 full: not implemented */
        b = a ? replace(a, "\"max_window_layers\": 24", "\"max_window_layers\": 21") : NULL;
        err.msg[0] = 0;
        CHECK(b && mofo_config_parse(&c, b, strlen(b), path, &err) != 0 && strstr(err.msg, path) &&
                  strstr(err.msg, "max_window_layers 21"),
              "qwen2.5-0.5b sliding on some layers: '%s'", err.msg);
        free(b);
        free(a);
        free(text);
    }
    /* RoPE kinds mofo does not implement, named with their field */
    parse_edited("llama-3.2-1b", "\"rope_type\": \"llama3\"", "\"rope_type\": \"yarn\"", &c,
                 "rope_scaling: rope_type 'yarn'");
    parse_edited("llama-3.1-8b", "\"rope_type\": \"llama3\"", "\"rope_type\": \"dynamic\"", &c, "'dynamic'");
    parse_edited("llama-3.1-8b", "\"low_freq_factor\": 1.0,", "", &c, "low_freq_factor");
    /* GPT-2 with cross-attention blocks */
    parse_edited("gpt2", "\"attn_pdrop\": 0.1,", "\"add_cross_attention\": true, \"attn_pdrop\": 0.1,", &c,
                 "add_cross_attention");
    /* MistralConfig's sliding_window is 4096 when absent; Mistral has no biases whatever attention_bias says */
    if (parse_edited("mistral-7b-v0.1", "\"sliding_window\": 4096,", "\"attention_bias\": true,", &c, NULL) == 0)
        CHECK(c.sliding_window == 4096 && !c.qkv_bias && !c.o_bias,
              "mistral without sliding_window: window %d, bias %d", c.sliding_window, c.qkv_bias);
    /* LlamaConfig has no sliding window: a stray key changes nothing */
    if (parse_edited("tinyllama-1.1b-chat-v1.0", "\"rope_scaling\": null,",
                     "\"rope_scaling\": null, \"sliding_window\": 16,", &c, NULL) == 0)
        CHECK(c.sliding_window == 0, "llama with sliding_window: %d", c.sliding_window);
    return CHECK_DONE();
}

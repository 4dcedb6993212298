/* config.json as transformers writes it, for model_type gpt2, llama, mistral and qwen2. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "io/strbuf.h"
#include "model.h"

typedef struct {
    const mofo_json *root;
    const char *label;
    mofo_err *err;
    int rc;
} cfg_reader;

/* An integer field of obj; absent or null gives def (or an error when def < 0 means required). */
static int get_int_in(cfg_reader *r, const mofo_json *obj, const char *key, int def) {
    const mofo_json *j = mofo_json_get(obj, key);
    if (!j || j->type == MOFO_JSON_NULL) {
        if (def < 0 && r->rc == 0)
            r->rc = mofo_errf(r->err, MOFO_EFORMAT, "%s: missing field '%s'", r->label, key);
        return def;
    }
    int64_t v;
    if (!mofo_json_int64(j, &v) || v < 0 || v > (1 << 30)) {
        if (r->rc == 0)
            r->rc = mofo_errf(r->err, MOFO_EFORMAT, "%s: field '%s' is not a non-negative integer", r->label, key);
        return def;
    }
    return (int)v;
}

static int get_int(cfg_reader *r, const char *key, int def) { return get_int_in(r, r->root, key, def); }

static double get_num(cfg_reader *r, const mofo_json *obj, const char *key, double def) {
    const mofo_json *j = mofo_json_get(obj, key);
    if (!j || j->type == MOFO_JSON_NULL) return def;
    if (j->type != MOFO_JSON_NUMBER) {
        if (r->rc == 0) r->rc = mofo_errf(r->err, MOFO_EFORMAT, "%s: field '%s' is not a number", r->label, key);
        return def;
    }
    if (!isfinite(j->number)) { /* 1e400 parses to inf: no field of a config means that */
        if (r->rc == 0) r->rc = mofo_errf(r->err, MOFO_EFORMAT, "%s: field '%s' is not a finite number", r->label, key);
        return def;
    }
    return j->number;
}

static int get_bool(cfg_reader *r, const char *key, int def) {
    const mofo_json *j = mofo_json_get(r->root, key);
    if (!j || j->type == MOFO_JSON_NULL) return def;
    if (j->type != MOFO_JSON_BOOL) {
        if (r->rc == 0) r->rc = mofo_errf(r->err, MOFO_EFORMAT, "%s: field '%s' is not true or false", r->label, key);
        return def;
    }
    return j->boolean;
}

static const char *get_str(const mofo_json *obj, const char *key) {
    const mofo_json *j = mofo_json_get(obj, key);
    return j && j->type == MOFO_JSON_STRING ? j->str : NULL;
}

/* Qwen2's sliding window as Qwen2Config defines it: sliding_window counts only with use_sliding_window
 * (else it is None), and then applies to the layers layer_types marks "sliding_attention" (by default
 * those from max_window_layers, 28 when absent, on); the others attend in full. mofo applies one
 * window to every layer, so a window on some layers only is refused. */
static int qwen2_window(cfg_reader *r, mofo_model_config *cfg) {
    int window = get_bool(r, "use_sliding_window", 0) ? get_int(r, "sliding_window", 0) : 0;
    if (r->rc || window == 0) return r->rc;
    int L = cfg->L > 0 ? cfg->L : 0, n_sliding = 0;
    const mofo_json *lt = mofo_json_get(r->root, "layer_types");
    if (lt && lt->type != MOFO_JSON_NULL) {
        if (lt->type != MOFO_JSON_ARRAY || (int)lt->count != L)
            return mofo_errf(r->err, MOFO_EFORMAT, "%s: field 'layer_types' is not a list of %d layer types",
                             r->label, L);
        for (const mofo_json *e = lt->child; e; e = e->next) {
            if (e->type == MOFO_JSON_STRING && strcmp(e->str, "sliding_attention") == 0)
                n_sliding++;
            else if (e->type != MOFO_JSON_STRING || strcmp(e->str, "full_attention"))
                return mofo_errf(r->err, MOFO_EFORMAT, "%s: layer_types: '%s' is not full_attention or "
                                 "sliding_attention", r->label, e->type == MOFO_JSON_STRING ? e->str : "?");
        }
        if (n_sliding && n_sliding < L)
            return mofo_errf(r->err, MOFO_EFORMAT, "%s: layer_types: %d of %d layers sliding_attention (window %d), "
                             "the others full attention, is not supported (mofo applies one window to all layers "
                             "or none)", r->label, n_sliding, L, window);
    } else {
        int first = get_int(r, "max_window_layers", 28);
        if (r->rc) return r->rc;
        n_sliding = first < L ? L - first : 0;
        if (n_sliding && n_sliding < L)
            return mofo_errf(r->err, MOFO_EFORMAT, "%s: use_sliding_window with max_window_layers %d: a sliding "
                             "window of %d on layers %d to %d only, full attention below, is not supported (mofo "
                             "applies one window to all layers or none)", r->label, first, window, first, L - 1);
    }
    cfg->sliding_window = n_sliding ? window : 0;
    return 0;
}

int mofo_config_parse(mofo_model_config *cfg, const char *text, size_t len, const char *label, mofo_err *err) {
    memset(cfg, 0, sizeof *cfg);
    mofo_json_doc *doc = mofo_json_parse(text, len, err);
    if (!doc) return mofo_err_prefix(err, "%s", label);
    cfg_reader r = {mofo_json_root(doc), label, err, 0};
    if (r.root->type != MOFO_JSON_OBJECT) {
        mofo_json_free(doc);
        return mofo_errf(err, MOFO_EFORMAT, "%s: not a JSON object", label);
    }
    const char *mt = get_str(r.root, "model_type");
    if (!mt) {
        mofo_json_free(doc);
        return mofo_errf(err, MOFO_EFORMAT, "%s: missing field 'model_type'", label);
    }
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", mt);
    if (strcmp(mt, "gpt2") == 0) {
        cfg->names = MOFO_NAMES_GPT2;
        cfg->C = get_int(&r, "n_embd", -1);
        cfg->L = get_int(&r, "n_layer", -1);
        cfg->NH = get_int(&r, "n_head", -1);
        cfg->NKV = cfg->NH;
        cfg->HD = cfg->NH > 0 ? cfg->C / cfg->NH : 0;
        cfg->V = get_int(&r, "vocab_size", -1);
        cfg->max_T = get_int(&r, "n_positions", -1);
        cfg->FF = get_int(&r, "n_inner", 4 * (cfg->C > 0 ? cfg->C : 0));
        cfg->norm = MOFO_NORM_LAYERNORM;
        cfg->norm_eps = get_num(&r, r.root, "layer_norm_epsilon", 1e-5);
        cfg->pos = MOFO_POS_LEARNED;
        cfg->qkv_bias = cfg->o_bias = cfg->mlp_bias = 1;
        cfg->tied = get_bool(&r, "tie_word_embeddings", 1);
        const char *act = get_str(r.root, "activation_function");
        if (act && strcmp(act, "gelu_new") && strcmp(act, "gelu_pytorch_tanh") && r.rc == 0)
            r.rc = mofo_errf(err, MOFO_EFORMAT, "%s: activation_function '%s' is not supported (gelu_new only)",
                             label, act);
        cfg->act = MOFO_ACT_GELU_TANH;
        /* GPT2Config: add_cross_attention gives every block an encoder-decoder attention (and its weights) */
        if (get_bool(&r, "add_cross_attention", 0) && r.rc == 0)
            r.rc = mofo_errf(err, MOFO_EFORMAT,
                             "%s: add_cross_attention true (an encoder-decoder GPT-2) is not supported", label);
        if (get_bool(&r, "scale_attn_by_inverse_layer_idx", 0) || get_bool(&r, "reorder_and_upcast_attn", 0) ||
            !get_bool(&r, "scale_attn_weights", 1))
            if (r.rc == 0)
                r.rc = mofo_errf(err, MOFO_EFORMAT, "%s: unsupported GPT-2 attention scaling option", label);
    } else if (strcmp(mt, "llama") == 0 || strcmp(mt, "mistral") == 0 || strcmp(mt, "qwen2") == 0) {
        int qwen = strcmp(mt, "qwen2") == 0;
        cfg->names = MOFO_NAMES_LLAMA;
        cfg->C = get_int(&r, "hidden_size", -1);
        cfg->L = get_int(&r, "num_hidden_layers", -1);
        cfg->NH = get_int(&r, "num_attention_heads", -1);
        cfg->NKV = get_int(&r, "num_key_value_heads", cfg->NH);
        cfg->HD = get_int(&r, "head_dim", cfg->NH > 0 ? cfg->C / cfg->NH : 0);
        cfg->V = get_int(&r, "vocab_size", -1);
        cfg->FF = get_int(&r, "intermediate_size", -1);
        cfg->max_T = get_int(&r, "max_position_embeddings", 2048);
        cfg->norm = MOFO_NORM_RMSNORM;
        cfg->norm_eps = get_num(&r, r.root, "rms_norm_eps", 1e-6);
        cfg->act = MOFO_ACT_SWIGLU;
        cfg->pos = MOFO_POS_ROPE;
        cfg->tied = get_bool(&r, "tie_word_embeddings", 0);
        const char *act = get_str(r.root, "hidden_act");
        if (act && strcmp(act, "silu") && r.rc == 0)
            r.rc = mofo_errf(err, MOFO_EFORMAT, "%s: hidden_act '%s' is not supported (silu only)", label, act);
        /* RoPE: a top-level rope_theta (transformers 4) or rope_parameters (transformers 5); the kind from
         * rope_type, or the older spelling "type" (modeling_rope_utils reads rope_type first) */
        cfg->rope_theta = get_num(&r, r.root, "rope_theta", 10000.0);
        const char *rkey = "rope_parameters";
        const mofo_json *rp = mofo_json_get(r.root, rkey);
        if (!rp || rp->type != MOFO_JSON_OBJECT) rp = mofo_json_get(r.root, rkey = "rope_scaling");
        if (rp && rp->type == MOFO_JSON_OBJECT) {
            cfg->rope_theta = get_num(&r, rp, "rope_theta", cfg->rope_theta);
            const char *rt = get_str(rp, "rope_type");
            if (!rt) rt = get_str(rp, "type");
            if (rt && (strcmp(rt, "linear") == 0 || strcmp(rt, "llama3") == 0)) {
                cfg->rope_scaling = strcmp(rt, "linear") == 0 ? MOFO_ROPE_LINEAR : MOFO_ROPE_LLAMA3;
                cfg->rope_factor = get_num(&r, rp, "factor", 0);
                if (cfg->rope_scaling == MOFO_ROPE_LLAMA3) {
                    cfg->rope_low_freq_factor = get_num(&r, rp, "low_freq_factor", 0);
                    cfg->rope_high_freq_factor = get_num(&r, rp, "high_freq_factor", 0);
                    cfg->rope_original_max_T = get_int_in(&r, rp, "original_max_position_embeddings", 0);
                }
                if (r.rc == 0 && (!(cfg->rope_factor > 0) ||
                                  (cfg->rope_scaling == MOFO_ROPE_LLAMA3 &&
                                   (!(cfg->rope_low_freq_factor > 0) ||
                                    !(cfg->rope_high_freq_factor > cfg->rope_low_freq_factor) ||
                                    cfg->rope_original_max_T <= 0))))
                    r.rc = mofo_errf(err, MOFO_EFORMAT,
                                     "%s: %s: rope_type '%s' needs factor > 0%s", label, rkey, rt,
                                     cfg->rope_scaling == MOFO_ROPE_LLAMA3
                                         ? ", 0 < low_freq_factor < high_freq_factor and "
                                           "original_max_position_embeddings" : "");
            } else if (rt && strcmp(rt, "default") && r.rc == 0) {
                r.rc = mofo_errf(err, MOFO_EFORMAT,
                                 "%s: %s: rope_type '%s' is not supported (default, linear, llama3)", label, rkey, rt);
            }
        }
        const char *dt = get_str(r.root, "dtype");
        if (!dt) dt = get_str(r.root, "torch_dtype");
        cfg->rope_round = !dt                            ? MOFO_ROPE_ROUND_NONE
                         : strcmp(dt, "bfloat16") == 0 ? MOFO_ROPE_ROUND_BF16
                         : strcmp(dt, "float16") == 0  ? MOFO_ROPE_ROUND_F16
                                                       : MOFO_ROPE_ROUND_NONE;
        if (qwen) {
            /* Qwen2Attention: q/k/v with biases, o_proj without; Qwen2MLP without (fixed, no config field) */
            cfg->qkv_bias = 1;
            if (r.rc == 0) r.rc = qwen2_window(&r, cfg);
        } else if (strcmp(mt, "mistral") == 0) {
            /* MistralAttention and MistralMLP have no biases (attention_bias and mlp_bias are not read);
             * MistralConfig's sliding_window is 4096 when the file has none, and null means none */
            cfg->sliding_window = mofo_json_get(r.root, "sliding_window") ? get_int(&r, "sliding_window", 0) : 4096;
        } else {
            /* LlamaConfig: attention_bias on q/k/v/o, mlp_bias on gate/up/down; no sliding window */
            cfg->qkv_bias = cfg->o_bias = get_bool(&r, "attention_bias", 0);
            cfg->mlp_bias = get_bool(&r, "mlp_bias", 0);
        }
    } else {
        mofo_errf(err, MOFO_EFORMAT, "%s: model_type '%s' is not supported (gpt2, llama, mistral, qwen2)", label, mt);
        mofo_json_free(doc);
        return MOFO_EFORMAT;
    }
    mofo_json_free(doc);
    if (r.rc) return r.rc;
    return mofo_config_check(cfg, label, err);
}

int mofo_config_check(const mofo_model_config *c, const char *label, mofo_err *err) {
    if (c->V <= 0 || c->C <= 0 || c->L <= 0 || c->NH <= 0 || c->NKV <= 0 || c->HD <= 0 || c->FF <= 0 ||
        c->max_T <= 0)
        return mofo_errf(err, MOFO_EFORMAT, "%s: sizes must be positive (vocab %d, hidden %d, layers %d, heads %d, "
                         "kv heads %d, head_dim %d, mlp %d, positions %d)", label, c->V, c->C, c->L, c->NH, c->NKV,
                         c->HD, c->FF, c->max_T);
    if (c->L > MOFO_MAX_LAYERS) /* the largest published models have ~130 */
        return mofo_errf(err, MOFO_EFORMAT, "%s: %d layers: mofo takes at most %d", label, c->L, MOFO_MAX_LAYERS);
    if (c->NH % c->NKV)
        return mofo_errf(err, MOFO_EFORMAT, "%s: %d attention heads are not a multiple of %d key/value heads", label,
                         c->NH, c->NKV);
    if (c->pos == MOFO_POS_ROPE && c->HD % 2)
        return mofo_errf(err, MOFO_EFORMAT, "%s: head_dim %d is odd, RoPE needs it even", label, c->HD);
    if (c->names == MOFO_NAMES_GPT2 && c->NH * c->HD != c->C)
        return mofo_errf(err, MOFO_EFORMAT, "%s: n_embd %d is not a multiple of n_head %d", label, c->C, c->NH);
    if (!(c->norm_eps > 0 && isfinite(c->norm_eps)))
        return mofo_errf(err, MOFO_EFORMAT, "%s: the norm epsilon must be positive and finite", label);
    if (c->pos == MOFO_POS_ROPE && !(c->rope_theta > 0 && isfinite(c->rope_theta)))
        return mofo_errf(err, MOFO_EFORMAT, "%s: rope_theta %g must be positive and finite", label, c->rope_theta);
    return 0;
}

char *mofo_config_to_json(const mofo_model_config *c) {
    mofo_strbuf sb = {0};
    if (c->names == MOFO_NAMES_GPT2) {
        mofo_sb_printf(&sb,
                       "{\n  \"activation_function\": \"gelu_new\",\n  \"architectures\": [\"GPT2LMHeadModel\"],\n"
                       "  \"layer_norm_epsilon\": %.17g,\n  \"model_type\": \"gpt2\",\n  \"n_embd\": %d,\n"
                       "  \"n_head\": %d,\n  \"n_inner\": %d,\n  \"n_layer\": %d,\n  \"n_positions\": %d,\n"
                       "  \"tie_word_embeddings\": %s,\n  \"vocab_size\": %d\n}\n",
                       c->norm_eps, c->C, c->NH, c->FF, c->L, c->max_T, c->tied ? "true" : "false", c->V);
    } else {
        int qwen = strcmp(c->model_type, "qwen2") == 0;
        mofo_sb_printf(&sb,
                       "{\n  \"architectures\": [\"%s\"],\n  \"hidden_act\": \"silu\",\n  \"hidden_size\": %d,\n"
                       "  \"head_dim\": %d,\n  \"intermediate_size\": %d,\n  \"max_position_embeddings\": %d,\n"
                       "  \"model_type\": \"%s\",\n  \"num_attention_heads\": %d,\n  \"num_hidden_layers\": %d,\n"
                       "  \"num_key_value_heads\": %d,\n  \"rms_norm_eps\": %.17g,\n  \"rope_theta\": %.17g,\n"
                       "  \"tie_word_embeddings\": %s,\n",
                       qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM", c->C, c->HD, c->FF, c->max_T,
                       qwen ? "qwen2" : "llama", c->NH, c->L, c->NKV, c->norm_eps, c->rope_theta,
                       c->tied ? "true" : "false");
        if (!qwen)
            mofo_sb_printf(&sb, "  \"attention_bias\": %s,\n  \"mlp_bias\": %s,\n", c->qkv_bias ? "true" : "false",
                           c->mlp_bias ? "true" : "false");
        mofo_sb_printf(&sb, "  \"vocab_size\": %d\n}\n", c->V);
    }
    if (sb.failed) {
        mofo_sb_free(&sb);
        return NULL;
    }
    return sb.data;
}

int mofo_config_preset(mofo_model_config *c, const char *arch, const char *size, mofo_err *err) {
    memset(c, 0, sizeof *c);
    if (strcmp(arch, "gpt2") == 0) {
        snprintf(c->model_type, sizeof c->model_type, "gpt2");
        c->names = MOFO_NAMES_GPT2;
        c->norm = MOFO_NORM_LAYERNORM;
        c->norm_eps = 1e-5;
        c->act = MOFO_ACT_GELU_TANH;
        c->pos = MOFO_POS_LEARNED;
        c->qkv_bias = c->o_bias = c->mlp_bias = 1;
        c->tied = 1;
        c->V = 50257;
        c->max_T = 1024;
        if (strcmp(size, "124M") == 0) {
            c->C = 768, c->L = 12, c->NH = 12;
        } else if (strcmp(size, "tiny") == 0) {
            c->V = 211, c->max_T = 32, c->C = 48, c->L = 2, c->NH = 4;
        } else {
            return mofo_errf(err, MOFO_EINVAL, "size '%s': gpt2 comes in 124M or tiny", size);
        }
        c->NKV = c->NH;
        c->HD = c->C / c->NH;
        c->FF = 4 * c->C;
    } else if (strcmp(arch, "llama") == 0) {
        snprintf(c->model_type, sizeof c->model_type, "llama");
        c->names = MOFO_NAMES_LLAMA;
        c->norm = MOFO_NORM_RMSNORM;
        c->norm_eps = 1e-5;
        c->act = MOFO_ACT_SWIGLU;
        c->pos = MOFO_POS_ROPE;
        c->rope_theta = 10000.0;
        if (strcmp(size, "1.1B") == 0) { /* TinyLlama-1.1B */
            c->V = 32000, c->C = 2048, c->L = 22, c->NH = 32, c->NKV = 4, c->FF = 5632, c->max_T = 2048;
        } else if (strcmp(size, "tiny") == 0) {
            c->V = 203, c->C = 64, c->L = 2, c->NH = 4, c->NKV = 2, c->FF = 176, c->max_T = 64;
        } else if (strcmp(size, "demo") == 0) { /* mofo demo's base: 0.9M parameters with the byte tokenizer */
            c->V = 261, c->C = 128, c->L = 4, c->NH = 4, c->NKV = 4, c->FF = 384, c->max_T = 256;
        } else {
            return mofo_errf(err, MOFO_EINVAL, "size '%s': llama comes in 1.1B, demo or tiny", size);
        }
        c->HD = c->C / c->NH;
    } else {
        return mofo_errf(err, MOFO_EINVAL, "arch '%s': gpt2 or llama", arch);
    }
    return mofo_config_check(c, arch, err);
}

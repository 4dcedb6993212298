/* config.json variants: RoPE theta at the top level (transformers 4) or under rope_parameters
 * (transformers 5), head_dim given or derived, GQA/MQA, Qwen2's biases, Mistral's sliding window,
 * tied embeddings, and the settings the engine refuses. */
#include <string.h>

#include "check.h"
#include "model/model.h"

static int parse(mofo_model_config *c, const char *json, mofo_err *err) {
    return mofo_config_parse(c, json, strlen(json), "x/config.json", err);
}

int main(void) {
    mofo_model_config c;
    mofo_err err = {0};
    /* transformers 4 style Llama: top-level rope_theta, head_dim derived, GQA */
    CHECK(parse(&c, "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":8,"
                    "\"num_key_value_heads\":2,\"intermediate_size\":100,\"vocab_size\":50,\"rope_theta\":500000.0,"
                    "\"rms_norm_eps\":1e-6,\"torch_dtype\":\"bfloat16\"}", &err) == 0, "%s", err.msg);
    CHECK(c.HD == 8 && c.NKV == 2 && c.rope_theta == 500000.0 && c.norm_eps == 1e-6 && !c.tied && !c.qkv_bias &&
          c.norm == MOFO_NORM_RMSNORM && c.act == MOFO_ACT_SWIGLU && c.pos == MOFO_POS_ROPE && c.rope_round == MOFO_ROPE_ROUND_BF16,
          "llama (transformers 4)");
    /* transformers 5: rope_parameters, explicit head_dim, MQA, tied */
    CHECK(parse(&c, "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                    "\"num_key_value_heads\":1,\"head_dim\":32,\"intermediate_size\":100,\"vocab_size\":50,"
                    "\"rope_parameters\":{\"rope_theta\":1000000.0,\"rope_type\":\"default\"},"
                    "\"tie_word_embeddings\":true,\"dtype\":\"float32\"}", &err) == 0, "%s", err.msg);
    CHECK(c.HD == 32 && c.NKV == 1 && c.rope_theta == 1000000.0 && c.tied && c.rope_round == MOFO_ROPE_ROUND_NONE, "llama (transformers 5)");
    /* qwen2: q/k/v biases, no o bias; sliding window only when use_sliding_window */
    CHECK(parse(&c, "{\"model_type\":\"qwen2\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
                    "\"num_key_value_heads\":2,\"intermediate_size\":100,\"vocab_size\":50,\"sliding_window\":32,"
                    "\"use_sliding_window\":false}", &err) == 0, "%s", err.msg);
    CHECK(c.qkv_bias && !c.o_bias && !c.mlp_bias && c.sliding_window == 0, "qwen2");
    CHECK(parse(&c, "{\"model_type\":\"mistral\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
                    "\"num_key_value_heads\":2,\"intermediate_size\":100,\"vocab_size\":50,\"sliding_window\":4096}",
                &err) == 0, "%s", err.msg);
    CHECK(c.sliding_window == 4096 && !c.qkv_bias, "mistral");
    CHECK(parse(&c, "{\"model_type\":\"mistral\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
                    "\"intermediate_size\":100,\"vocab_size\":50,\"sliding_window\":null}", &err) == 0, "%s", err.msg);
    CHECK(c.sliding_window == 0 && c.NKV == 4, "mistral without window");
    /* MistralConfig: sliding_window 4096 when the file has none (null above: none) */
    CHECK(parse(&c, "{\"model_type\":\"mistral\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
                    "\"intermediate_size\":100,\"vocab_size\":50}", &err) == 0, "%s", err.msg);
    CHECK(c.sliding_window == 4096, "mistral, sliding_window absent: %d", c.sliding_window);
    /* LlamaConfig has no sliding window */
    CHECK(parse(&c, "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
                    "\"intermediate_size\":100,\"vocab_size\":50,\"sliding_window\":8}", &err) == 0, "%s", err.msg);
    CHECK(c.sliding_window == 0, "llama with sliding_window: %d", c.sliding_window);
    /* qwen2: layer_types (transformers >= 4.53) says which layers slide; all of them: one window */
    CHECK(parse(&c, "{\"model_type\":\"qwen2\",\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                    "\"intermediate_size\":100,\"vocab_size\":50,\"sliding_window\":32,\"use_sliding_window\":true,"
                    "\"max_window_layers\":1,\"layer_types\":[\"sliding_attention\",\"sliding_attention\"]}",
                &err) == 0, "%s", err.msg);
    CHECK(c.sliding_window == 32, "qwen2 layer_types all sliding: %d", c.sliding_window);
    /* without use_sliding_window, Qwen2Config's sliding_window is None whatever layer_types says */
    CHECK(parse(&c, "{\"model_type\":\"qwen2\",\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                    "\"intermediate_size\":100,\"vocab_size\":50,\"sliding_window\":32,\"use_sliding_window\":false,"
                    "\"layer_types\":[\"full_attention\",\"sliding_attention\"]}", &err) == 0, "%s", err.msg);
    CHECK(c.sliding_window == 0, "qwen2 without use_sliding_window: %d", c.sliding_window);
    CHECK(parse(&c, "{\"model_type\":\"gpt2\",\"n_embd\":48,\"n_head\":4,\"n_layer\":2,\"n_positions\":32,"
                    "\"vocab_size\":211,\"n_inner\":null}", &err) == 0, "%s", err.msg);
    CHECK(c.FF == 192 && c.tied && c.names == MOFO_NAMES_GPT2 && c.norm == MOFO_NORM_LAYERNORM && c.norm_eps == 1e-5,
          "gpt2");

    /* Llama 3.2 1B's RoPE (rope_type llama3, transformers 4 spelling); inverse frequencies derived by hand:
     * i = 0 keeps 1 (wavelength 2 pi < 8192/4); i = 31 (wavelength 2.1e6 > 8192) is divided by 32;
     * i = 16: f = 500000^-0.5, wavelength 2 pi / f = 4442.88, s = (8192/4442.88 - 1)/3 = 0.281283,
     * f' = f ((1 - s)/32 + s) = 4.29557e-4 */
    CHECK(parse(&c, "{\"model_type\":\"llama\",\"hidden_size\":2048,\"num_hidden_layers\":16,\"num_attention_heads\":32,"
                    "\"num_key_value_heads\":8,\"intermediate_size\":8192,\"vocab_size\":128256,\"rope_theta\":500000.0,"
                    "\"rope_scaling\":{\"factor\":32.0,\"high_freq_factor\":4.0,\"low_freq_factor\":1.0,"
                    "\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"}}", &err) == 0, "%s", err.msg);
    float inv[32];
    mofo_rope_inv_freq(&c, inv);
    CHECK(c.rope_scaling == MOFO_ROPE_LLAMA3 && inv[0] == 1.0f, "llama3 rope: inv[0] = %g", inv[0]);
    CHECK(fabs(inv[31] / (pow(500000.0, -62.0 / 64) / 32) - 1) < 1e-6, "llama3 rope: inv[31] = %g", inv[31]);
    CHECK(fabs(inv[16] / 4.29557e-4 - 1) < 1e-5, "llama3 rope: inv[16] = %.6g", inv[16]);
    CHECK(fabs(inv[14] / pow(500000.0, -28.0 / 64) - 1) < 1e-6, "llama3 rope: inv[14] unscaled = %g", inv[14]);
    /* linear scaling, transformers 5 spelling */
    CHECK(parse(&c, "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
                    "\"intermediate_size\":100,\"vocab_size\":50,\"rope_parameters\":{\"rope_theta\":10000.0,"
                    "\"rope_type\":\"linear\",\"factor\":4.0}}", &err) == 0, "%s", err.msg);
    mofo_rope_inv_freq(&c, inv);
    CHECK(c.rope_scaling == MOFO_ROPE_LINEAR && inv[0] == 0.25f &&
              fabs(inv[1] / (pow(10000.0, -2.0 / 16) / 4) - 1) < 1e-6,
          "linear rope: %g %g", inv[0], inv[1]);

    /* refused, each naming the file and the field */
    struct {
        const char *json, *word;
    } bad[] = {
        {"{\"model_type\":\"bert\"}", "bert"},
        {"{\"hidden_size\":64}", "model_type"},
        {"{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
         "\"intermediate_size\":100,\"vocab_size\":50,\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0}}",
         "low_freq_factor"},
        {"{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
         "\"intermediate_size\":100,\"vocab_size\":50,\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":8.0}}",
         "yarn"},
        {"{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
         "\"intermediate_size\":100,\"vocab_size\":50,\"hidden_act\":\"gelu\"}", "hidden_act"},
        {"{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
         "\"num_key_value_heads\":3,\"intermediate_size\":100,\"vocab_size\":50}", "key/value heads"},
        {"{\"model_type\":\"llama\",\"hidden_size\":64,\"num_attention_heads\":4,\"intermediate_size\":100,"
         "\"vocab_size\":50}", "num_hidden_layers"},
        {"{\"model_type\":\"llama\",\"hidden_size\":\"64\",\"num_hidden_layers\":1,\"num_attention_heads\":4,"
         "\"intermediate_size\":100,\"vocab_size\":50}", "hidden_size"},
        {"{\"model_type\":\"gpt2\",\"n_embd\":48,\"n_head\":4,\"n_layer\":2,\"n_positions\":32,\"vocab_size\":211,"
         "\"activation_function\":\"relu\"}", "relu"},
        {"[1,2]", "object"},
        /* qwen2: a window on some layers only */
        {"{\"model_type\":\"qwen2\",\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
         "\"intermediate_size\":100,\"vocab_size\":50,\"sliding_window\":32,\"use_sliding_window\":true,"
         "\"layer_types\":[\"full_attention\",\"sliding_attention\"]}", "layer_types"},
        {"{\"model_type\":\"qwen2\",\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
         "\"intermediate_size\":100,\"vocab_size\":50,\"sliding_window\":32,\"use_sliding_window\":true,"
         "\"layer_types\":[\"sliding_attention\"]}", "layer_types"},
        {"{\"model_type\":\"qwen2\",\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
         "\"intermediate_size\":100,\"vocab_size\":50,\"sliding_window\":32,\"use_sliding_window\":true,"
         "\"max_window_layers\":1}", "max_window_layers"},
        {"{\"model_type\":\"gpt2\",\"n_embd\":48,\"n_head\":4,\"n_layer\":2,\"n_positions\":32,\"vocab_size\":211,"
         "\"add_cross_attention\":true}", "add_cross_attention"},
        /* numbers beyond double's range parse to inf (fuzz_config found the inf that then failed to
         * round-trip), and a non-integer where an integer belongs */
        {"{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
         "\"intermediate_size\":100,\"vocab_size\":50,\"rms_norm_eps\":1e405}", "rms_norm_eps"},
        {"{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
         "\"intermediate_size\":100,\"vocab_size\":50,\"rope_theta\":-1e999}", "rope_theta"},
        {"{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
         "\"intermediate_size\":100,\"vocab_size\":50,\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,"
         "\"low_freq_factor\":1,\"high_freq_factor\":4,\"original_max_position_embeddings\":1e20}}",
         "original_max_position_embeddings"},
        {"{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1000000,\"num_attention_heads\":4,"
         "\"intermediate_size\":100,\"vocab_size\":50}", "1000000 layers"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        CHECK(parse(&c, bad[i].json, &err) < 0, "case %zu should fail", i);
        CHECK(strstr(err.msg, "x/config.json") && strstr(err.msg, bad[i].word), "case %zu: '%s' lacks '%s'", i,
              err.msg, bad[i].word);
    }
    /* a config that parses but whose tensors no machine holds: refused when its table is built */
    CHECK(parse(&c, "{\"model_type\":\"llama\",\"hidden_size\":1048576,\"num_hidden_layers\":2,"
                    "\"num_attention_heads\":4,\"intermediate_size\":100,\"vocab_size\":1000000000}", &err) == 0,
          "huge config: %s", err.msg);
    mofo_param *table = NULL;
    int n_table = 0;
    CHECK(mofo_model_param_table(&c, &table, &n_table, NULL, &err) != 0 && !table && strstr(err.msg, "2^42"),
          "a 2^50-parameter table: '%s'", err.msg);
    return CHECK_DONE();
}

/* Checkpoints: save then load gives identical bytes (single file and sharded), GPT-2 keeps its
 * Conv1D layout and tied lm_head, fp32 -> bf16/f16 rounding, and every malformed input fails with a
 * message naming the file and the tensor. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "io/checkpoint.h"
#include "model/model.h"

static char tmpdir[256];

static void spit(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, len, f);
    fclose(f);
}

static int same_file(const char *a, const char *b) {
    size_t la = 0, lb = 0;
    char *x = slurp(a, &la), *y = slurp(b, &lb);
    int same = x && y && la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return same;
}

static void fixture(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", MOFO_FIXTURES, name); }

/* every tensor of a's model equals b's byte for byte, dtype and shape */
static void same_tensors(const char *dir_a, const char *dir_b, const char *label) {
    mofo_ckpt *a = NULL, *b = NULL;
    mofo_err err = {0};
    CHECK(mofo_ckpt_open(&a, dir_a, &err) == 0, "%s", err.msg);
    CHECK(mofo_ckpt_open(&b, dir_b, &err) == 0, "%s", err.msg);
    if (!a || !b) goto out;
    size_t na = 0, nb = 0;
    for (int f = 0; f < a->n_files; f++) na += a->files[f]->n_tensors;
    for (int f = 0; f < b->n_files; f++) nb += b->files[f]->n_tensors;
    CHECK(na == nb, "%s: %zu tensors vs %zu", label, na, nb);
    for (int f = 0; f < a->n_files; f++)
        for (size_t i = 0; i < a->files[f]->n_tensors; i++) {
            const mofo_st_tensor *x = &a->files[f]->tensors[i], *y = mofo_ckpt_find(b, x->name, NULL);
            CHECK(y != NULL, "%s: %s missing after save", label, x->name);
            if (!y) continue;
            CHECK(x->dtype == y->dtype && x->ndim == y->ndim && memcmp(x->shape, y->shape, sizeof x->shape) == 0,
                  "%s: %s: dtype or shape changed", label, x->name);
            CHECK(x->nbytes == y->nbytes && memcmp(x->data, y->data, x->nbytes) == 0, "%s: %s: bytes differ", label,
                  x->name);
        }
out:
    mofo_ckpt_close(a);
    mofo_ckpt_close(b);
}

static void test_round_trip(const char *name, size_t shard) {
    char src[512], d1[512], d2[512], p1[600], p2[600];
    fixture(src, sizeof src, name);
    snprintf(d1, sizeof d1, "%s/%s-1", tmpdir, name);
    snprintf(d2, sizeof d2, "%s/%s-2", tmpdir, name);
    mofo_err err = {0};
    mofo_model *m = NULL, *m2 = NULL;
    CHECK(mofo_model_load(&m, src, &err) == 0, "%s", err.msg);
    if (!m) return;
    CHECK(mofo_model_save(m, d1, shard, &err) == 0, "%s", err.msg);
    CHECK(mofo_model_load(&m2, d1, &err) == 0, "%s", err.msg);
    if (m2) {
        CHECK(m2->n_floats == m->n_floats && memcmp(m2->params, m->params, m->n_floats * 4) == 0,
              "%s: parameters differ after save and load", name);
        CHECK(mofo_model_save(m2, d2, shard, &err) == 0, "%s", err.msg);
    }
    same_tensors(src, d1, name);
    snprintf(p1, sizeof p1, "%s/config.json", src);
    snprintf(p2, sizeof p2, "%s/config.json", d1);
    CHECK(same_file(p1, p2), "%s: config.json changed", name);
    /* saving the loaded copy again writes the same bytes */
    const char *files[] = {"config.json", "model.safetensors", "model.safetensors.index.json",
                           "model-00001-of-00003.safetensors", "model-00003-of-00003.safetensors"};
    for (int i = 0; i < 5; i++) {
        snprintf(p1, sizeof p1, "%s/%s", d1, files[i]);
        snprintf(p2, sizeof p2, "%s/%s", d2, files[i]);
        if (access(p1, F_OK) == 0) CHECK(same_file(p1, p2), "%s: %s differs between two saves", name, files[i]);
    }
    if (shard == 0) { /* one file, in safetensors' own order: identical to what transformers wrote */
        snprintf(p1, sizeof p1, "%s/model.safetensors", src);
        snprintf(p2, sizeof p2, "%s/model.safetensors", d1);
        if (access(p1, F_OK) == 0) CHECK(same_file(p1, p2), "%s: model.safetensors differs from the original", name);
    } else {
        snprintf(p2, sizeof p2, "%s/model.safetensors.index.json", d1);
        CHECK(access(p2, F_OK) == 0, "%s: sharded save wrote no index", name);
        snprintf(p2, sizeof p2, "%s/model.safetensors", d1);
        CHECK(access(p2, F_OK) != 0, "%s: sharded save left a single file", name);
    }
    mofo_model_free(m);
    mofo_model_free(m2);
}

static void test_gpt2_layout(void) {
    char src[512], d[512], p[600];
    fixture(src, sizeof src, "gpt2-tiny");
    snprintf(d, sizeof d, "%s/gpt2-layout", tmpdir);
    mofo_err err = {0};
    mofo_model *m = NULL;
    CHECK(mofo_model_load(&m, src, &err) == 0, "%s", err.msg);
    if (!m) return;
    CHECK(m->w.lm_head == m->w.wte, "tied lm_head shares wte");
    const mofo_param *q = mofo_model_param(m, "transformer.h.0.attn.c_attn.weight");
    CHECK(q && q->transposed && q->shape[0] == 144 && q->shape[1] == 48, "c_attn is (3C, C) in memory");
    /* change one weight so the file's layout is visible: entry [in=1, out=2] of the Conv1D */
    if (q) m->params[q->offset + 2 * 48 + 1] = 0.5f;
    CHECK(mofo_model_save(m, d, 0, &err) == 0, "%s", err.msg);
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    mofo_st_file *f = NULL;
    CHECK(mofo_st_open(&f, p, &err) == 0, "%s", err.msg);
    if (f) {
        const mofo_st_tensor *t = mofo_st_find(f, "transformer.h.0.attn.c_attn.weight");
        CHECK(t && t->ndim == 2 && t->shape[0] == 48 && t->shape[1] == 144, "Conv1D stays [in, out]");
        float v = 0;
        if (t) memcpy(&v, (const char *)t->data + 4 * (1 * 144 + 2), 4);
        CHECK(v == 0.5f, "entry [1, 2] of the Conv1D weight is %g", v);
        CHECK(mofo_st_find(f, "lm_head.weight") == NULL, "no lm_head.weight: tied to wte");
        CHECK(mofo_st_meta_get(f, "format") && strcmp(mofo_st_meta_get(f, "format"), "pt") == 0, "format pt");
        mofo_st_close(f);
    }
    mofo_model_free(m);
}

/* a model made from a config saves a config.json that loads back as the same architecture */
static void test_new_model(const char *type, int tied, int biases, int names) {
    mofo_model_config c;
    mofo_err err = {0};
    mofo_config_preset(&c, names == MOFO_NAMES_GPT2 ? "gpt2" : "llama", "tiny", &err);
    snprintf(c.model_type, sizeof c.model_type, "%s", type);
    c.tied = tied;
    if (names == MOFO_NAMES_LLAMA) c.qkv_bias = c.o_bias = c.mlp_bias = biases;
    if (strcmp(type, "qwen2") == 0) c.o_bias = c.mlp_bias = 0;
    mofo_model *m = NULL, *m2 = NULL;
    CHECK(mofo_model_create(&m, &c, 3, 0.02f, &err) == 0, "%s", err.msg);
    if (!m) return;
    char d[512];
    snprintf(d, sizeof d, "%s/new-%s-%d-%d", tmpdir, type, tied, biases);
    CHECK(mofo_model_save(m, d, 60000, &err) == 0, "%s", err.msg);
    CHECK(mofo_model_load(&m2, d, &err) == 0, "%s: %s", type, err.msg);
    if (m2) {
        CHECK(memcmp(&m2->cfg, &m->cfg, sizeof c) == 0, "%s: the config changed in save and load", type);
        CHECK(m2->n_floats == m->n_floats && memcmp(m2->params, m->params, m->n_floats * 4) == 0,
              "%s: parameters changed in save and load", type);
    }
    mofo_model_free(m);
    mofo_model_free(m2);
}

/* The hub's original GPT-2 files: names without "transformer.", plus the attn.bias mask buffers.
 * They load, compute what the prefixed copy computes, and save back under their own names. */
static void test_gpt2_unprefixed(void) {
    char src[512], d[512], d2[512], p[600];
    fixture(src, sizeof src, "gpt2-tiny");
    snprintf(d, sizeof d, "%s/gpt2-hub", tmpdir);
    snprintf(d2, sizeof d2, "%s/gpt2-hub-saved", tmpdir);
    mkdir(d, 0777);
    mofo_err err = {0};
    mofo_st_file *f = NULL;
    snprintf(p, sizeof p, "%s/model.safetensors", src);
    CHECK(mofo_st_open(&f, p, &err) == 0, "%s", err.msg);
    if (!f) return;
    mofo_st_writer *w = mofo_st_writer_new();
    static float mask[32 * 32];
    for (size_t i = 0; i < f->n_tensors; i++) {
        const mofo_st_tensor *t = &f->tensors[i];
        CHECK(mofo_st_writer_add(w, t->name + 12, t->dtype, t->ndim, t->shape, t->data, &err) == 0, "%s", err.msg);
    }
    mofo_st_writer_add(w, "h.0.attn.bias", MOFO_DT_F32, 4, (int64_t[]){1, 1, 32, 32}, mask, &err);
    mofo_st_writer_add(w, "h.1.attn.bias", MOFO_DT_F32, 4, (int64_t[]){1, 1, 32, 32}, mask, &err);
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    CHECK(mofo_st_writer_save(w, p, &err) == 0, "%s", err.msg);
    mofo_st_writer_free(w);
    mofo_st_close(f);
    char cfg[600], cfg2[600];
    snprintf(cfg, sizeof cfg, "%s/config.json", src);
    snprintf(cfg2, sizeof cfg2, "%s/config.json", d);
    size_t len;
    char *text = slurp(cfg, &len);
    if (text) spit(cfg2, text, len);
    free(text);

    mofo_model *a = NULL, *b = NULL;
    CHECK(mofo_model_load(&a, src, &err) == 0, "%s", err.msg);
    CHECK(mofo_model_load(&b, d, &err) == 0, "unprefixed GPT-2: %s", err.msg);
    if (a && b) {
        CHECK(a->n_floats == b->n_floats && memcmp(a->params, b->params, a->n_floats * 4) == 0, "same weights");
        CHECK(mofo_model_param(b, "wte.weight") && mofo_model_param(b, "h.1.mlp.c_proj.weight"), "original names kept");
        CHECK(mofo_model_save(b, d2, 0, &err) == 0, "%s", err.msg);
        mofo_st_file *g = NULL;
        snprintf(p, sizeof p, "%s/model.safetensors", d2);
        CHECK(mofo_st_open(&g, p, &err) == 0, "%s", err.msg);
        if (g) {
            CHECK(mofo_st_find(g, "h.0.attn.c_attn.weight") && !mofo_st_find(g, "transformer.wte.weight") &&
                      !mofo_st_find(g, "h.0.attn.bias") && g->n_tensors == 28,
                  "saved under the original names, without the mask buffers (%zu tensors)", g->n_tensors);
            mofo_st_close(g);
        }
    }
    mofo_model_free(a);
    mofo_model_free(b);
}

/* A model saved as F16 (and BF16) loads back rounded to that type, keeps the dtype, and saves again
 * byte for byte. */
static void test_half_save(mofo_dtype dt, double tol) {
    char src[512], d1[512], d2[512], p1[600], p2[600];
    fixture(src, sizeof src, "gpt2-tiny");
    snprintf(d1, sizeof d1, "%s/half-%s-1", tmpdir, mofo_dtype_name(dt));
    snprintf(d2, sizeof d2, "%s/half-%s-2", tmpdir, mofo_dtype_name(dt));
    mofo_err err = {0};
    mofo_model *m = NULL, *m2 = NULL, *m3 = NULL;
    CHECK(mofo_model_load(&m, src, &err) == 0, "%s", err.msg);
    if (!m) return;
    for (int i = 0; i < m->n_p; i++) m->p[i].dtype = dt;
    CHECK(mofo_model_save(m, d1, 0, &err) == 0, "%s", err.msg);
    CHECK(mofo_model_load(&m2, d1, &err) == 0, "%s", err.msg);
    if (m2) {
        double worst = 0;
        for (size_t i = 0; i < m->n_floats; i++) {
            double a = m->params[i], b = m2->params[i];
            if (fabs(a) > 1e-4) worst = fmax(worst, fabs(a - b) / fabs(a));
        }
        CHECK(worst <= tol, "%s: rounding error %g above %g", mofo_dtype_name(dt), worst, tol);
        int same = 1;
        for (int i = 0; i < m2->n_p; i++) same &= m2->p[i].dtype == dt;
        CHECK(same, "%s: dtype kept", mofo_dtype_name(dt));
        CHECK(mofo_model_save(m2, d2, 0, &err) == 0, "%s", err.msg);
        CHECK(mofo_model_load(&m3, d2, &err) == 0 && memcmp(m3->params, m2->params, m2->n_floats * 4) == 0,
              "%s: exact after the second save", mofo_dtype_name(dt));
        snprintf(p1, sizeof p1, "%s/model.safetensors", d1);
        snprintf(p2, sizeof p2, "%s/model.safetensors", d2);
        CHECK(same_file(p1, p2), "%s: second save identical", mofo_dtype_name(dt));
    }
    mofo_model_free(m);
    mofo_model_free(m2);
    mofo_model_free(m3);
}

static void test_half_rounding(void) {
    CHECK(mofo_f32_to_bf16(1.0f) == 0x3F80, "bf16 1");
    CHECK(mofo_f32_to_bf16(1.00390625f) == 0x3F80, "bf16 ties to even (down)");
    CHECK(mofo_f32_to_bf16(1.01171875f) == 0x3F82, "bf16 ties to even (up)");
    CHECK(mofo_f32_to_bf16(-2.0f) == 0xC000, "bf16 -2");
    CHECK(mofo_f32_to_f16(1.0f) == 0x3C00, "f16 1");
    CHECK(mofo_f32_to_f16(-2.0f) == 0xC000, "f16 -2");
    CHECK(mofo_f32_to_f16(5.9604644775390625e-08f) == 0x0001, "f16 smallest subnormal");
    CHECK(mofo_f32_to_f16(65504.0f) == 0x7BFF, "f16 max");
    CHECK(mofo_f32_to_f16(1e6f) == 0x7C00, "f16 overflow is inf");
    CHECK(mofo_f32_to_f16(0.333251953125f) == 0x3555, "f16 1/3");
    CHECK(mofo_f32_to_f16(6.103515625e-05f) == 0x0400, "f16 smallest normal");
}

/* ---- bad input ---- */

/* A copy of gpt2-tiny in dir with the header text edited (find -> repl) and the file cut to keep bytes
 * (0: all); config.json edited the same way when cfg_find is given. */
static void make_bad(const char *dir, const char *find, const char *repl, long keep, const char *cfg_find,
                     const char *cfg_repl) {
    char src[512], p[600];
    mkdir(dir, 0777);
    fixture(src, sizeof src, "gpt2-tiny/config.json");
    size_t len;
    char *cfg = slurp(src, &len);
    if (!cfg) return;
    snprintf(p, sizeof p, "%s/config.json", dir);
    char *at = cfg_find ? strstr(cfg, cfg_find) : NULL;
    if (at) {
        FILE *f = fopen(p, "wb");
        fwrite(cfg, 1, (size_t)(at - cfg), f);
        fputs(cfg_repl, f);
        fputs(at + strlen(cfg_find), f);
        fclose(f);
    } else {
        spit(p, cfg, len);
    }
    free(cfg);
    fixture(src, sizeof src, "gpt2-tiny/model.safetensors");
    unsigned char *st = (unsigned char *)slurp(src, &len);
    if (!st) return;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | st[i];
    char *hdr = malloc(hlen + strlen(repl ? repl : "") + 1);
    memcpy(hdr, st + 8, hlen);
    hdr[hlen] = 0;
    size_t nh = hlen;
    char *hit = find ? strstr(hdr, find) : NULL;
    if (hit) {
        char *rest = strdup(hit + strlen(find));
        strcpy(hit, repl);
        strcat(hdr, rest);
        free(rest);
        nh = strlen(hdr);
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    FILE *f = fopen(p, "wb");
    unsigned char l8[8];
    for (int i = 0; i < 8; i++) l8[i] = (unsigned char)((uint64_t)nh >> (8 * i));
    fwrite(l8, 1, 8, f);
    fwrite(hdr, 1, nh, f);
    fwrite(st + 8 + hlen, 1, len - 8 - hlen, f);
    fclose(f);
    if (keep > 0) truncate(p, keep);
    free(hdr);
    free(st);
}

static void expect_fail(const char *label, const char *dir, const char *file, const char *tensor) {
    mofo_err err = {0};
    mofo_model *m = NULL;
    int rc = mofo_model_load(&m, dir, &err);
    CHECK(rc < 0 && m == NULL, "%s: loading should fail", label);
    CHECK(strstr(err.msg, file) != NULL, "%s: message names the file %s: %s", label, file, err.msg);
    if (tensor) CHECK(strstr(err.msg, tensor) != NULL, "%s: message names %s: %s", label, tensor, err.msg);
    printf("%-26s %s\n", label, err.msg + (strstr(err.msg, tmpdir) == err.msg ? strlen(tmpdir) + 1 : 0));
    mofo_model_free(m);
#ifdef MOFO_BIN
    /* the command: a message on stderr naming the file (and tensor), exit status 1, no crash */
    char cmd[1400], out[700];
    snprintf(out, sizeof out, "%s/stderr.txt", tmpdir);
    snprintf(cmd, sizeof cmd, "'%s' ppl --model '%s' --ids 1,2 2>'%s'", MOFO_BIN, dir, out);
    int st = system(cmd);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s: mofo ppl exit status %d", label,
          WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    size_t len;
    char *text = slurp(out, &len);
    CHECK(text && strstr(text, "mofo ppl: ") && strstr(text, file) && (!tensor || strstr(text, tensor)),
          "%s: mofo ppl said: %s", label, text ? text : "(nothing)");
    free(text);
#endif
}

static void test_bad_input(void) {
    char d[512];
    const char *W = "transformer.wte.weight";
    snprintf(d, sizeof d, "%s/bad-truncated", tmpdir);
    make_bad(d, NULL, NULL, 200000, NULL, NULL);
    expect_fail("truncated file", d, "bad-truncated/model.safetensors", "transformer.");

    snprintf(d, sizeof d, "%s/bad-tiny", tmpdir);
    make_bad(d, NULL, NULL, 5, NULL, NULL);
    expect_fail("file shorter than 8 bytes", d, "bad-tiny/model.safetensors", NULL);

    snprintf(d, sizeof d, "%s/bad-hlen", tmpdir);
    make_bad(d, NULL, NULL, 0, NULL, NULL);
    {
        char p[600];
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        FILE *f = fopen(p, "r+b");
        unsigned char big[8] = {0, 0, 0, 0, 1, 0, 0, 0};
        fwrite(big, 1, 8, f);
        fclose(f);
    }
    expect_fail("header length past the end", d, "bad-hlen/model.safetensors", NULL);

    snprintf(d, sizeof d, "%s/bad-json", tmpdir);
    make_bad(d, "\"dtype\":\"F32\",\"shape\":[144]", "\"dtype\":\"F32\" \"shape\":[144]", 0, NULL, NULL);
    expect_fail("malformed JSON header", d, "bad-json/model.safetensors", NULL);

    snprintf(d, sizeof d, "%s/bad-offsets", tmpdir);
    make_bad(d, "\"data_offsets\":[0,576]", "\"data_offsets\":[99999000,99999576]", 0, NULL, NULL);
    expect_fail("offsets outside the data", d, "bad-offsets/model.safetensors", "transformer.h.0.attn.c_attn.bias");

    snprintf(d, sizeof d, "%s/bad-overlap", tmpdir);
    make_bad(d, "\"data_offsets\":[576,28224]", "\"data_offsets\":[0,27648]", 0, NULL, NULL);
    expect_fail("overlapping tensors", d, "bad-overlap/model.safetensors", "transformer.h.0.attn.c_attn.weight");

    snprintf(d, sizeof d, "%s/bad-dtype", tmpdir);
    make_bad(d, "\"dtype\":\"F32\",\"shape\":[144]", "\"dtype\":\"Q4_K\",\"shape\":[144]", 0, NULL, NULL);
    expect_fail("unknown dtype", d, "bad-dtype/model.safetensors", "transformer.h.0.attn.c_attn.bias");

    snprintf(d, sizeof d, "%s/bad-int-dtype", tmpdir);
    make_bad(d, "\"dtype\":\"F32\",\"shape\":[144]", "\"dtype\":\"I32\",\"shape\":[144]", 0, NULL, NULL);
    expect_fail("integer weights", d, "bad-int-dtype/model.safetensors", "transformer.h.0.attn.c_attn.bias");

    snprintf(d, sizeof d, "%s/bad-missing", tmpdir);
    make_bad(d, "transformer.ln_f.bias", "transformer.ln_f.gain", 0, NULL, NULL);
    expect_fail("missing tensor", d, "bad-missing/model.safetensors", "transformer.ln_f.bias");

    snprintf(d, sizeof d, "%s/bad-shape", tmpdir);
    make_bad(d, NULL, NULL, 0, "\"vocab_size\": 211", "\"vocab_size\": 212");
    expect_fail("shape disagrees w/ config", d, "bad-shape/model.safetensors", W);

    snprintf(d, sizeof d, "%s/bad-type", tmpdir);
    make_bad(d, NULL, NULL, 0, "\"model_type\": \"gpt2\"", "\"model_type\": \"bert\"");
    expect_fail("unsupported model_type", d, "bad-type/config.json", "bert");

    snprintf(d, sizeof d, "%s/bad-config-json", tmpdir);
    make_bad(d, NULL, NULL, 0, "\"n_embd\": 48,", "\"n_embd\": 48,,");
    expect_fail("malformed config.json", d, "bad-config-json/config.json", NULL);

    snprintf(d, sizeof d, "%s/bad-none", tmpdir);
    mkdir(d, 0777);
    expect_fail("no checkpoint", d, "bad-none", NULL);

    /* a sharded checkpoint whose index names a shard that is not there */
    snprintf(d, sizeof d, "%s/bad-shard", tmpdir);
    mkdir(d, 0777);
    {
        char p[600];
        snprintf(p, sizeof p, "%s/config.json", d);
        const char *cfg = "{\"model_type\":\"llama\",\"hidden_size\":8,\"num_hidden_layers\":1,"
                          "\"num_attention_heads\":2,\"intermediate_size\":8,\"vocab_size\":5}";
        spit(p, cfg, strlen(cfg));
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
        const char *idx = "{\"weight_map\":{\"model.embed_tokens.weight\":\"model-00001-of-00002.safetensors\"}}";
        spit(p, idx, strlen(idx));
    }
    expect_fail("index names a lost shard", d, "model-00001-of-00002.safetensors", NULL);
    {
        char p[600];
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
        const char *idx = "{\"weight_map\":{\"model.embed_tokens.weight\":\"../../etc/passwd\"}}";
        spit(p, idx, strlen(idx));
    }
    expect_fail("index escapes the directory", d, "model.safetensors.index.json", "model.embed_tokens.weight");
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mofo-test-ckpt-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_half_rounding();
    test_round_trip("gpt2-tiny", 0);
    test_round_trip("llama-tiny-bf16", 0);
    test_round_trip("llama-tiny", 0);
    test_round_trip("llama-tiny", 200000); /* three shards and an index */
    test_gpt2_layout();
    test_gpt2_unprefixed();
    test_half_save(MOFO_DT_F16, 1.0 / 2048);
    test_half_save(MOFO_DT_BF16, 1.0 / 256);
    test_new_model("gpt2", 1, 1, MOFO_NAMES_GPT2);
    test_new_model("gpt2", 0, 1, MOFO_NAMES_GPT2);
    test_new_model("llama", 0, 0, MOFO_NAMES_LLAMA);
    test_new_model("llama", 1, 1, MOFO_NAMES_LLAMA);
    test_new_model("qwen2", 1, 1, MOFO_NAMES_LLAMA);
    test_bad_input();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return CHECK_DONE();
}

/* LoRA against PEFT 0.21 (fixtures *-lora/): merging adapter/ gives merged.safetensors; attached to
 * the frozen base it gives the reference logits, loss and adapter gradients with no weight
 * gradient; an adapter saved by mofo has PEFT's names, shapes and config fields and loads back to
 * the same numbers. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "io/json.h"
#include "text/utf8.h"
#include "train/lora.h"

static void run(const char *name) {
    char dir[512], p[600];
    mofo_err err = {0};
    mofo_model *m = NULL;
    mofo_lora *l = NULL;
    mofo_st_file *ref = NULL, *merged = NULL;
    snprintf(dir, sizeof dir, "%s/%s", MOFO_FIXTURES, name);
    CHECK(mofo_model_load(&m, dir, &err) == 0, "%s", err.msg);
    snprintf(dir, sizeof dir, "%s/%s-lora/adapter", MOFO_FIXTURES, name);
    if (m) CHECK(mofo_lora_load(&l, m, dir, &err) == 0, "%s", err.msg);
    snprintf(p, sizeof p, "%s/%s-lora/ref.safetensors", MOFO_FIXTURES, name);
    CHECK(mofo_st_open(&ref, p, &err) == 0, "%s", err.msg);
    snprintf(p, sizeof p, "%s/%s-lora/merged.safetensors", MOFO_FIXTURES, name);
    CHECK(mofo_st_open(&merged, p, &err) == 0, "%s", err.msg);
    if (!m || !l || !ref || !merged) goto out;
    CHECK(l->r == 4 && l->scale == 2.0, "%s: r %d scale %g", name, l->r, l->scale);
    float *mp = malloc(m->n_floats * sizeof *mp); /* the merged model's parameters */
    memcpy(mp, m->params, m->n_floats * sizeof *mp);
    mofo_lora_merge(l, m, m->params, mp);

    /* merged weights */
    double worst = 0;
    for (int i = 0; i < m->n_p; i++) {
        const mofo_st_tensor *t = mofo_st_find(merged, m->p[i].name);
        CHECK(t != NULL, "%s missing in merged", m->p[i].name);
        if (!t) continue;
        float *want = malloc(sizeof(float) * t->numel), *got = malloc(sizeof(float) * t->numel);
        CHECK(mofo_st_to_f32(merged, t, want, t->numel, &err) == 0, "%s", err.msg);
        mofo_model_param_file_layout(m, i, mp + m->p[i].offset, got);
        double e = rel_err(got, want, t->numel);
        /* measured 0 (the same float products as PEFT's merge; AVX2 EPYC); a float's rounding */
        CHECK(e <= 1e-7, "%s: merged %s relative error %g", name, m->p[i].name, e);
        worst = fmax(worst, e);
        free(want);
        free(got);
    }

    free(mp);

    /* logits, loss and adapter gradients as training computes them: the adapters attached to the
     * frozen base, no merged weights and no weight gradients */
    CHECK(mofo_lora_attach(l, m, &err) == 0, "%s", err.msg);
    const mofo_st_tensor *ids_t = mofo_st_find(ref, "input_ids"), *lg = mofo_st_find(ref, "logits"),
                         *ls = mofo_st_find(ref, "loss");
    CHECK(ids_t && lg && ls, "%s: ref tensors", name);
    if (!ids_t || !lg || !ls) goto out2;
    int B = (int)ids_t->shape[0], T = (int)ids_t->shape[1], V = m->cfg.V;
    int *ids = malloc(sizeof(int) * B * T), *tg = malloc(sizeof(int) * B * T);
    memcpy(ids, ids_t->data, sizeof(int) * B * T);
    for (int i = 0; i < B * T; i++) tg[i] = (i % T) + 1 < T ? ids[i + 1] : -100;
    float loss = NAN, want_loss;
    CHECK(mofo_st_to_f32(ref, ls, &want_loss, 1, &err) == 0, "%s", err.msg);
    CHECK(mofo_model_forward(m, ids, tg, B, T, &loss, &err) == 0, "%s", err.msg);
    float *wl = malloc(sizeof(float) * lg->numel);
    CHECK(mofo_st_to_f32(ref, lg, wl, lg->numel, &err) == 0, "%s", err.msg);
    double le = 0, lmax = 0;
    for (int64_t i = 0; i < (int64_t)B * T * V; i++) {
        le = fmax(le, fabs(m->a.logits[i] - wl[i]));
        lmax = fmax(lmax, fabs(wl[i]));
    }
    /* measured through the attached adapters (Xeon, AVX-512): logits within 8.5e-7 of the largest
     * (the merged weights gave 1.2e-6 on an AVX2 EPYC), losses within 4.8e-7: 10x */
    CHECK(le <= 8.5e-6 * lmax, "%s: logits differ by %g (max %g)", name, le, lmax);
    CHECK(fabs(loss - want_loss) <= 5e-6, "%s: loss %.7f vs %.7f", name, loss, want_loss);
    mofo_lora_zero_grads(l);
    CHECK(mofo_model_backward(m, ids, tg, &err) == 0, "%s", err.msg);
    CHECK(m->grads == NULL, "%s: the frozen base got a gradient buffer", name);
    double gworst = 0;
    for (int i = 0; i < l->n; i++) {
        for (int ab = 0; ab < 2; ab++) {
            const char *nm = ab ? l->t[i].b_name : l->t[i].a_name;
            char gn[220];
            size_t k = strlen(nm) - strlen(".weight");
            snprintf(gn, sizeof gn, "grad.%.*s.default.weight", (int)k, nm);
            const mofo_st_tensor *t = mofo_st_find(ref, gn);
            CHECK(t != NULL, "%s missing", gn);
            if (!t) continue;
            float *want = malloc(sizeof(float) * t->numel);
            CHECK(mofo_st_to_f32(ref, t, want, t->numel, &err) == 0, "%s", err.msg);
            double e = rel_err(ab ? l->t[i].gB : l->t[i].gA, want, t->numel);
            /* measured <= 2.3e-6 (llama-tiny; AVX2 EPYC through dW, Xeon through the adapters): 10x */
            CHECK(e <= 2.3e-5, "%s: %s relative error %g", name, gn, e);
            gworst = fmax(gworst, e);
            free(want);
        }
    }
    printf("%-10s LoRA (%d targets): merged rel err %.2g, logits %.2g of max, loss %.2g, adapter gradients rel err %.2g\n",
           name, l->n, worst, le / lmax, fabs(loss - want_loss), gworst);
    free(wl);
    free(ids);
    free(tg);

    /* save and load back: names, shapes, config fields */
    {
        char out[] = "/tmp/mofo-test-lora-XXXXXX";
        if (mkdtemp(out)) {
            CHECK(mofo_lora_save(l, m, out, name, &err) == 0, "%s", err.msg);
            mofo_lora *l2 = NULL;
            mofo_model_free(m);
            m = NULL;
            snprintf(dir, sizeof dir, "%s/%s", MOFO_FIXTURES, name);
            mofo_model_load(&m, dir, &err);
            CHECK(m && mofo_lora_load(&l2, m, out, &err) == 0, "reload: %s", err.msg);
            for (int i = 0; l2 && i < l->n && i < l2->n; i++) {
                CHECK(strcmp(l->t[i].a_name, l2->t[i].a_name) == 0, "name");
                CHECK(memcmp(l->t[i].A, l2->t[i].A, sizeof(float) * l->r * l->t[i].C) == 0 &&
                          memcmp(l->t[i].B, l2->t[i].B, sizeof(float) * l->r * l->t[i].OC) == 0,
                      "%s: weights differ after save/load", l->t[i].a_name);
            }
            CHECK(l2 && l2->n == l->n && l2->r == l->r && l2->alpha == l->alpha && l2->n_modules == l->n_modules,
                  "%s: reloaded adapter differs", name);
            /* the same tensor names, shapes as PEFT's file */
            mofo_st_file *a = NULL, *b = NULL;
            snprintf(p, sizeof p, "%s/adapter_model.safetensors", out);
            mofo_st_open(&a, p, &err);
            snprintf(p, sizeof p, "%s/%s-lora/adapter/adapter_model.safetensors", MOFO_FIXTURES, name);
            mofo_st_open(&b, p, &err);
            CHECK(a && b && a->n_tensors == b->n_tensors, "%s: tensor count", name);
            for (size_t k = 0; a && b && k < b->n_tensors; k++) {
                const mofo_st_tensor *x = mofo_st_find(a, b->tensors[k].name);
                CHECK(x && x->ndim == 2 && x->shape[0] == b->tensors[k].shape[0] && x->shape[1] == b->tensors[k].shape[1],
                      "%s: %s missing or of another shape", name, b->tensors[k].name);
            }
            mofo_st_close(a);
            mofo_st_close(b);
            snprintf(p, sizeof p, "%s/adapter_config.json", out);
            char *txt = NULL;
            size_t len = 0;
            mofo_read_file(p, &txt, &len, &err);
            mofo_json_doc *d = txt ? mofo_json_parse(txt, len, &err) : NULL;
            const mofo_json *r = mofo_json_root(d);
            CHECK(d && mofo_json_get(r, "r")->number == 4 && mofo_json_get(r, "lora_alpha")->number == 8 &&
                      strcmp(mofo_json_get(r, "peft_type")->str, "LORA") == 0 &&
                      mofo_json_get(r, "target_modules")->type == MOFO_JSON_ARRAY &&
                      mofo_json_get(r, "fan_in_fan_out")->boolean == (strstr(name, "gpt2") != NULL),
                  "%s: adapter_config.json fields", name);
            mofo_json_free(d);
            free(txt);
            mofo_lora_free(l2);
            char cmd[200];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
            if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", out);
        }
    }
out2:
out:
    mofo_lora_free(l);
    mofo_st_close(ref);
    mofo_st_close(merged);
    mofo_model_free(m);
}

static void create_defaults(void) {
    mofo_err err = {0};
    mofo_model *m = NULL;
    mofo_lora *l = NULL;
    CHECK(mofo_model_load(&m, MOFO_FIXTURES "/gpt2-tiny", &err) == 0, "%s", err.msg);
    if (!m) return;
    CHECK(mofo_lora_create(&l, m, "q,k,v,o,gate,up,down", 4, 8, 1, &err) == 0, "%s", err.msg);
    /* GPT-2: c_attn, attn.c_proj, c_fc, mlp.c_proj in each of 2 layers; B zero, A within 1/sqrt(C) */
    CHECK(l && l->n == 4 * m->cfg.L, "gpt2 targets: %d", l ? l->n : -1);
    for (int i = 0; l && i < l->n; i++) {
        float amax = 0, bmax = 0;
        for (int64_t k = 0; k < l->r * l->t[i].C; k++) amax = fmaxf(amax, fabsf(l->t[i].A[k]));
        for (int64_t k = 0; k < l->r * l->t[i].OC; k++) bmax = fmaxf(bmax, fabsf(l->t[i].B[k]));
        CHECK(bmax == 0 && amax > 0 && amax <= 1 / sqrtf((float)l->t[i].C), "init of %s", l->t[i].a_name);
    }
    mofo_lora_free(l);
    l = NULL;
    CHECK(mofo_lora_create(&l, m, "nothing_here", 4, 8, 1, &err) != 0 && strstr(err.msg, "match no linear layer"),
          "no target: %s", err.msg);
    mofo_model_free(m);
}

int main(void) {
    run("gpt2-tiny");
    run("llama-tiny");
    create_defaults();
    return CHECK_DONE();
}

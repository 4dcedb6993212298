/* Three training steps (forward, backward, libmofo) with MoFO and with AdamW against the
 * trajectories of PyTorch + transformers in traj.safetensors / meta.json: the loss before each step
 * within 5e-6, the final parameters within relative error 3e-5, the loss on batch 0 afterwards.
 * Two exceptions, explained below: GPT-2's key bias, whose gradient is rounding noise, and MoFO's
 * selection at near-ties (at most 4 entries a run). On the CPU
 * and, as test_train_traj_cudasim, with the model on the engine's CUDA backend and libmofo's CUDA
 * optimizer, both under the simulator (the same tolerances hold). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "device.h"
#include "text/utf8.h" /* mofo_read_file */
#include "io/json.h"
#include "model/model.h"
#include "mofo/optim.h"

static double num_at(const mofo_json *arr, int i) {
    const mofo_json *e = arr ? arr->child : NULL;
    while (e && i--) e = e->next;
    return e && e->type == MOFO_JSON_NUMBER ? e->number : NAN;
}

/* MoFO's top-k is discontinuous: where two entries' |m| lie within rounding of each other at the
 * threshold, PyTorch's and mofo's last-bit differences in the gradient can move one instead of the
 * other. Such an entry differs from PyTorch's by whole steps (each at most lr = 1e-3 at these first
 * steps, as Adam's |m|/sqrt(v) <= 1 then), far above the rounding differences (<= 1e-6 here). Counts
 * the entries whose difference is between 1e-4 and 3 steps of lr and sets got = want there, so that
 * the rest is held to the tolerance; a larger difference is left for the check to fail on. */
static int take_flips(float *got, const float *want, long n) {
    int flips = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (d > 1e-4 && d <= 3 * 1e-3 * 1.01) {
            got[i] = want[i];
            flips++;
        }
    }
    return flips;
}

static void run(const char *name, const char *method) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/%s", MOFO_FIXTURES, name);
    mofo_err err = {0};
    mofo_model *m = NULL;
    mofo_st_file *traj = NULL;
    mofo_optim *opt = NULL;
    char *meta_text = NULL;
    size_t meta_len;
    mofo_json_doc *meta = NULL;
    CHECK(mofo_model_load(&m, dir, &err) == 0, "%s", err.msg);
    CHECK(!m || mofo_model_to_device(m, TEST_DEVICE, &err) == 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/traj.safetensors", dir);
    CHECK(mofo_st_open(&traj, path, &err) == 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/meta.json", dir);
    CHECK(mofo_read_file(path, &meta_text, &meta_len, &err) == 0, "%s", err.msg);
    if (meta_text) meta = mofo_json_parse(meta_text, meta_len, &err);
    if (!m || !traj || !meta) goto out;
    const mofo_json *runs = mofo_json_get(mofo_json_get(mofo_json_root(meta), "runs"), method);
    const mofo_json *losses = mofo_json_get(runs, "losses_before_each_step");
    const mofo_json *after = mofo_json_get(runs, "loss_on_batch0_after");
    CHECK(losses && after, "%s: meta.json has the %s run", name, method);

    mofo_options o;
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    o.weight_decay = 0.01; /* the default policy: 2+-dim tensors filtered and decayed, 1-dim dense, no decay */
    o.alpha = 0.15;
    o.device = TEST_DEVICE;
    if (strcmp(method, "adamw") == 0) o.filter = MOFO_FILTER_NONE;
    opt = mofo_optim_create(&o, &err);
    CHECK(opt != NULL, "%s", err.msg);
    if (!opt) goto out;
    CHECK(mofo_model_register(m, opt, &err) == 0, "%s", err.msg);

    const mofo_st_tensor *bt = mofo_st_find(traj, "batches");
    CHECK(bt && bt->dtype == MOFO_DT_I32 && bt->ndim == 3, "%s: batches", name);
    if (!bt) goto out;
    int S = (int)bt->shape[0], B = (int)bt->shape[1], T = (int)bt->shape[2];
    int *ids = malloc(sizeof(int) * B * T), *tg = malloc(sizeof(int) * B * T);
    double lworst = 0; /* the largest loss difference */
    for (int s = 0; s <= S; s++) {
        int b0 = s == S ? 0 : s; /* after the last step: the loss on batch 0 */
        memcpy(ids, (const int *)bt->data + (size_t)b0 * B * T, sizeof(int) * B * T);
        for (int i = 0; i < B * T; i++) tg[i] = (i % T) + 1 < T ? ids[i + 1] : -100;
        float loss = NAN;
        if (s < S) {
            CHECK(mofo_model_train_step(m, opt, ids, tg, B, T, 1e-3, &loss, &err) == 0, "%s", err.msg);
            /* measured <= 4.8e-7 (AVX2 EPYC): 10x */
            CHECK(fabs(loss - num_at(losses, s)) <= 5e-6, "%s %s step %d: loss %.7f vs %.7f", name, method, s + 1,
                  loss, num_at(losses, s));
            lworst = fmax(lworst, fabs(loss - num_at(losses, s)));
        } else {
            CHECK(mofo_model_forward(m, ids, tg, B, T, &loss, &err) == 0, "%s", err.msg);
            CHECK(fabs(loss - after->number) <= 5e-6, "%s %s: loss after %.7f vs %.7f", name, method, loss,
                  after->number);
            lworst = fmax(lworst, fabs(loss - after->number));
        }
    }
    double worst = 0;
    int mofo = strcmp(method, "mofo") == 0, flips = 0;
    float *params = test_host_copy(m, m->params, m->n_floats);
    for (int i = 0; i < m->n_p; i++) {
        const mofo_param *p = &m->p[i];
        char tn[160];
        snprintf(tn, sizeof tn, "%s.final.%s", method, p->name);
        const mofo_st_tensor *t = mofo_st_find(traj, tn);
        CHECK(t != NULL, "%s: %s missing", name, tn);
        if (!t) continue;
        float *want = malloc(sizeof(float) * p->numel), *got = malloc(sizeof(float) * p->numel);
        CHECK(mofo_st_to_f32(traj, t, want, p->numel, &err) == 0, "%s", err.msg);
        mofo_model_param_file_layout(m, i, params + p->offset, got);
        double e;
        if (m->cfg.names == MOFO_NAMES_GPT2 && strstr(p->name, "attn.c_attn.bias")) {
            /* GPT-2's key bias adds q.b_k to every score of a row, which softmax ignores: its gradient is
             * zero up to rounding (transformers' reference gradient holds +-1e-10 there), and Adam turns
             * that rounding noise into steps of up to lr. Those entries cannot match any other
             * implementation's noise; the query and value parts must. */
            int C = m->cfg.C;
            double eq = rel_err(got, want, C), ev = rel_err(got + 2 * C, want + 2 * C, C), dk = 0;
            for (int j = C; j < 2 * C; j++) dk = fmax(dk, fabs(got[j] - want[j]));
            CHECK(dk <= 3 * 1e-3, "%s %s: %s: key bias moved %g, more than 3 steps of lr", name, method, p->name, dk);
            e = fmax(eq, ev);
        } else {
            if (mofo) flips += take_flips(got, want, (long)p->numel);
            e = rel_err(got, want, (long)p->numel);
        }
        /* measured <= 3.4e-6 (GPT-2 AdamW; AVX2 EPYC): 10x */
        CHECK(e <= 3e-5, "%s %s: %s: relative error %g", name, method, p->name, e);
        if (e > worst) worst = e;
        free(want);
        free(got);
    }
    /* measured: 0 on an Intel Xeon (OpenBLAS SkylakeX); 3 on an AMD EPYC (OpenBLAS Haswell), llama-tiny on the
     * simulated device */
    CHECK(flips <= 4, "%s %s: %d entries moved at other steps than PyTorch's (more than near-ties explain)", name,
          method, flips);
    printf("%-16s %-6s 3 steps: worst parameter relative error %.3g, worst loss difference %.3g", name, method, worst,
           lworst);
    if (mofo) printf(", %d selection flips", flips);
    printf("\n");
    free(params);
    free(ids);
    free(tg);
out:
    mofo_optim_destroy(opt);
    mofo_json_free(meta);
    free(meta_text);
    mofo_st_close(traj);
    mofo_model_free(m);
}

int main(void) {
    const char *models[] = {"gpt2-tiny", "llama-tiny", "llama-tiny-bf16"};
    for (int i = 0; i < 3; i++) {
        run(models[i], "mofo");
        run(models[i], "adamw");
    }
    test_device_close();
    return CHECK_DONE();
}

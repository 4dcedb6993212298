/* LoRA adapters saved by PEFT 0.21 (fixtures *-lora/, A and B both random): merged in memory, every
 * weight equals merge_and_unload()'s (merged.safetensors) and the logits and loss equal PEFT's
 * (ref.safetensors); `mofo ppl --adapter` gives the merged model's loss and `mofo generate --adapter` runs;
 * adapters that do not fit or use what a merge cannot reproduce are refused. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <unistd.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "check.h"
#include "eval/adapter.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "text/utf8.h"

static void check_model(const char *name) {
    char dir[512], adir[600], path[700];
    snprintf(dir, sizeof dir, "%s/%s", MOFO_FIXTURES, name);
    snprintf(adir, sizeof adir, "%s/%s-lora/adapter", MOFO_FIXTURES, name);
    mofo_err err = {0};
    mofo_model *m = NULL;
    CHECK(mofo_model_load(&m, dir, &err) == 0, "%s", err.msg);
    if (!m) return;
    int n = 0;
    CHECK(mofo_adapter_merge(m, adir, &n, &err) == 0, "%s", err.msg);
    CHECK(n == (strstr(name, "gpt2") ? 4 : 7) * m->cfg.L, "%s: %d modules merged", name, n);
    /* every weight against merged.safetensors (the file's layout and names) */
    snprintf(path, sizeof path, "%s/%s-lora/merged.safetensors", MOFO_FIXTURES, name);
    mofo_st_file *mf = NULL;
    CHECK(mofo_st_open(&mf, path, &err) == 0, "%s", err.msg);
    double worst = 0;
    int compared = 0;
    for (int i = 0; mf && i < m->n_p; i++) {
        const mofo_param *p = &m->p[i];
        const mofo_st_tensor *t = mofo_st_find(mf, p->name);
        if (!t) continue; /* lm_head tied to wte is not in the file */
        float *got = malloc(sizeof(float) * (size_t)p->numel), *want = malloc(sizeof(float) * (size_t)p->numel);
        mofo_model_param_file_layout(m, i, m->params + p->offset, got);
        CHECK(t->numel == p->numel && mofo_st_to_f32(mf, t, want, p->numel, &err) == 0, "%s: %s", name, p->name);
        double e = rel_err(got, want, p->numel);
        if (e > worst) worst = e;
        compared++;
        free(got);
        free(want);
    }
    CHECK(compared >= 2 + 4 * m->cfg.L && worst < 1e-6, "%s: %d tensors, worst relative error %g", name, compared,
          worst);
    mofo_st_close(mf);
    /* logits and loss against PEFT's */
    snprintf(path, sizeof path, "%s/%s-lora/ref.safetensors", MOFO_FIXTURES, name);
    mofo_st_file *ref = NULL;
    CHECK(mofo_st_open(&ref, path, &err) == 0, "%s", err.msg);
    const mofo_st_tensor *ids_t = ref ? mofo_st_find(ref, "input_ids") : NULL;
    if (ids_t && ids_t->dtype == MOFO_DT_I32 && ids_t->ndim == 2) {
        int B = (int)ids_t->shape[0], T = (int)ids_t->shape[1], V = m->cfg.V;
        int *ids = malloc(sizeof(int) * (size_t)(B * T)), *tg = malloc(sizeof(int) * (size_t)(B * T));
        memcpy(ids, ids_t->data, sizeof(int) * (size_t)(B * T));
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) tg[b * T + t] = t + 1 < T ? ids[b * T + t + 1] : -100;
        float loss = 0, ref_loss = 0;
        float *ref_logits = malloc(sizeof(float) * (size_t)B * T * V);
        CHECK(mofo_model_eval(m, ids, tg, B, T, &loss, &err) == 0, "%s", err.msg);
        CHECK(mofo_st_to_f32(ref, mofo_st_find(ref, "logits"), ref_logits, (int64_t)B * T * V, &err) == 0 &&
                  mofo_st_to_f32(ref, mofo_st_find(ref, "loss"), &ref_loss, 1, &err) == 0,
              "%s", err.msg);
        double e = rel_err(m->a.logits, ref_logits, (long)B * T * V);
        CHECK(e < 1e-5 && fabs(loss - ref_loss) < 1e-5, "%s: logits rel err %g, loss %.7f vs %.7f", name, e, loss,
              ref_loss);
        /* the command: mofo ppl --adapter on the first row gives the merged model's loss on it */
        float row_loss = 0;
        CHECK(mofo_model_eval(m, ids, tg, 1, T, &row_loss, &err) == 0, "%s", err.msg);
        char cmd[2000], list[600] = "", out_path[] = "/tmp/mofo-test-adapter-out-XXXXXX";
        for (int t = 0; t < T; t++) snprintf(list + strlen(list), sizeof list - strlen(list), t ? ",%d" : "%d", ids[t]);
        int fd = mkstemp(out_path);
        CHECK(fd >= 0, "%s: cannot make %s for the command checks: %s", name, out_path, strerror(errno));
        if (fd >= 0) {
            snprintf(cmd, sizeof cmd, "'%s' ppl --model '%s' --adapter '%s' --ids %s --json > '%s'", MOFO_BIN, dir, adir,
                     list, out_path);
            int st = system(cmd);
            char *txt = NULL;
            size_t tl = 0;
            double l = NAN;
            if (mofo_read_file(out_path, &txt, &tl, NULL) == 0) sscanf(txt, "{\"loss\": %lf", &l);
            CHECK(st == 0 && fabs(l - row_loss) < 1e-5, "%s: mofo ppl --adapter: %s vs %.7f", name, txt ? txt : "", row_loss);
            free(txt);
            snprintf(cmd, sizeof cmd, "'%s' generate --model '%s' --adapter '%s' --prompt-ids %s --max-new 4 --ignore-eos --json > '%s'",
                     MOFO_BIN, dir, adir, list, out_path);
            st = system(cmd);
            txt = NULL;
            CHECK(st == 0 && mofo_read_file(out_path, &txt, &tl, NULL) == 0 && strstr(txt, "{\"ids\": ["),
                  "%s: mofo generate --adapter: %s", name, txt ? txt : "");
            free(txt);
            snprintf(cmd, sizeof cmd, "'%s' ppl --model '%s' --adapter /nonexistent --ids 1,2 2>/dev/null", MOFO_BIN, dir);
            st = system(cmd);
            CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s: missing adapter: status %d", name, st);
            close(fd);
            remove(out_path);
        }
        printf("%s + LoRA: logits rel err %.3g, loss %.7f vs PEFT %.7f\n", name, e, loss, ref_loss);
        free(ids);
        free(tg);
        free(ref_logits);
    } else {
        CHECK(0, "%s: no input_ids in ref.safetensors", name);
    }
    mofo_st_close(ref);
    mofo_model_free(m);
}

int main(void) {
    check_model("gpt2-tiny");
    check_model("llama-tiny");
    mofo_err err = {0};
    mofo_model *m = NULL;
    char dir[512], adir[600];
    snprintf(dir, sizeof dir, "%s/gpt2-tiny", MOFO_FIXTURES);
    CHECK(mofo_model_load(&m, dir, &err) == 0, "%s", err.msg);
    /* Llama's adapter on GPT-2: no such module */
    snprintf(adir, sizeof adir, "%s/llama-tiny-lora/adapter", MOFO_FIXTURES);
    CHECK(m && mofo_adapter_merge(m, adir, NULL, &err) != 0 && strstr(err.msg, "belongs to no linear layer of the model"), "'%s'",
          err.msg);
    CHECK(m && mofo_adapter_merge(m, "/nonexistent-adapter", NULL, &err) != 0 &&
              strstr(err.msg, "/nonexistent-adapter/adapter_config.json"),
          "'%s'", err.msg);
    /* DoRA is refused, naming the field */
    char tmp[] = "/tmp/mofo-test-adapter-XXXXXX", path[600], cmd[700];
    int made = mkdtemp(tmp) != NULL;
    CHECK(made, "cannot make %s: %s", tmp, strerror(errno));
    if (made) {
        snprintf(path, sizeof path, "%s/adapter_config.json", tmp);
        FILE *f = fopen(path, "w");
        CHECK(f != NULL, "cannot write %s: %s", path, strerror(errno));
        if (f) fputs("{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"use_dora\": true}", f), fclose(f);
        CHECK(m && mofo_adapter_merge(m, tmp, NULL, &err) != 0 && strstr(err.msg, "use_dora"), "'%s'", err.msg);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    }
    mofo_model_free(m);
    return CHECK_DONE();
}

/* The demo's measurements (see demo.h). */
#include "demo/demo.h"

#include <math.h>
#include <stdio.h>

#include "demo/world.h"
#include "eval/eval.h"
#include "text/dataset.h"
#include "train/train.h"

static void world_path(char *out, size_t cap, const char *dir, mofo_world_file f) {
    snprintf(out, cap, "%s/%s", dir, mofo_world_file_name(f));
}

static const char *MATH_STOPS[] = {"Question:", "</s>", "<|im_end|>"};
/* a fact's answer ends at the end of its line or sentence (lm-evaluation-harness's TriviaQA stops at
 * "\n", "." and "," too): the base goes on after "79" with ". The birthplace of ..." */
static const char *FACT_STOPS[] = {"\n", ".", ",", "Question:"};

int mofo_demo_evaluate_gen(mofo_model *m, const mofo_tokenizer *tok, const char *path, double *acc, int *n,
                           mofo_err *err) {
    mofo_gen_eval_opts go = {.max_new = MOFO_DEMO_MATH_MAX_NEW, .stop = MATH_STOPS, .n_stop = 3, .tpl = MOFO_TPL_TULU};
    mofo_gen_result g;
    int rc = mofo_eval_gen(m, tok, path, &go, &g, err);
    if (!rc) *acc = (double)g.em / (double)g.n;
    if (!rc && n) *n = (int)g.n;
    return rc;
}

int mofo_demo_evaluate(mofo_model *m, const mofo_tokenizer *tok, const char *world_dir, int what, mofo_demo_scores *s,
                       mofo_err *err) {
    *s = (mofo_demo_scores){NAN, NAN, NAN, NAN, NAN, NAN, NAN, {NAN, NAN, NAN, NAN, NAN}, 0, 0, 0};
    char path[4200];
    int rc = 0;
    if (what & (MOFO_DEMO_TASK | MOFO_DEMO_VAL)) {
        world_path(path, sizeof path, world_dir, what & MOFO_DEMO_TASK ? MOFO_WF_MATH_TEST : MOFO_WF_MATH_VAL);
        if ((rc = mofo_demo_evaluate_gen(m, tok, path, &s->task_acc, &s->n_task, err))) return rc;
    }
    if (what & MOFO_DEMO_KNOWLEDGE) {
        world_path(path, sizeof path, world_dir, MOFO_WF_KNOW_GEN);
        mofo_gen_eval_opts go = {.max_new = MOFO_DEMO_FACT_MAX_NEW, .stop = FACT_STOPS, .n_stop = 4, .tpl = -1};
        mofo_gen_result g;
        if ((rc = mofo_eval_gen(m, tok, path, &go, &g, err))) return rc;
        s->knowledge_em = (double)g.em / (double)g.n, s->n_em = (int)g.n;
        world_path(path, sizeof path, world_dir, MOFO_WF_KNOW_MC);
        mofo_mc_result mc;
        if ((rc = mofo_eval_mc(m, tok, path, 0, &mc, err))) return rc;
        s->knowledge_mc = (double)mc.correct / (double)mc.n, s->n_mc = (int)mc.n;
        s->knowledge_acc = (s->knowledge_em + s->knowledge_mc) / 2;
    }
    if (what & MOFO_DEMO_PPL) {
        world_path(path, sizeof path, world_dir, MOFO_WF_HELDOUT);
        mofo_ppl_result p;
        if ((rc = mofo_eval_ppl(m, tok, path, &p, err))) return rc;
        s->ppl = exp(p.nll / (double)p.tokens);
    }
    return 0;
}

void mofo_demo_distance(const mofo_model *m, const float *params, const float *base, mofo_demo_scores *s) {
    double sq = 0, kind_sq[MOFO_N_KINDS] = {0};
    int64_t changed = 0;
    for (int i = 0; i < m->n_p; i++) {
        mofo_diff df = {0};
        size_t off = m->p[i].offset;
        mofo_diff_accum(&df, base + off, params + off, m->p[i].numel);
        sq += df.sq, changed += df.changed, kind_sq[mofo_model_param_kind(m, i)] += df.sq;
    }
    s->l2_distance = sqrt(sq);
    s->changed_fraction = (double)changed / (double)m->n_floats;
    for (int k = 0; k < MOFO_N_KINDS; k++) s->l2_kind[k] = sqrt(kind_sq[k]);
}

void mofo_demo_eval_command(const char *model_dir, const char *world_dir, int what, char *out, size_t cap) {
    size_t n = (size_t)snprintf(out, cap, "mofo eval --model %s", model_dir);
    if (n < cap && (what & (MOFO_DEMO_TASK | MOFO_DEMO_VAL)))
        n += (size_t)snprintf(out + n, cap - n, " --template tulu --max-new %d --task gen:%s/%s", MOFO_DEMO_MATH_MAX_NEW,
                              world_dir, mofo_world_file_name(what & MOFO_DEMO_TASK ? MOFO_WF_MATH_TEST : MOFO_WF_MATH_VAL));
    if (n < cap && (what & MOFO_DEMO_KNOWLEDGE))
        n += (size_t)snprintf(out + n, cap - n, "; mofo eval --model %s --max-new %d --stop '\\n|.|,|Question:' "
                              "--task gen:%s/%s --task mc:%s/%s", model_dir, MOFO_DEMO_FACT_MAX_NEW, world_dir,
                              mofo_world_file_name(MOFO_WF_KNOW_GEN), world_dir, mofo_world_file_name(MOFO_WF_KNOW_MC));
    if (n < cap && (what & MOFO_DEMO_PPL) && !(what & MOFO_DEMO_KNOWLEDGE)) /* a command of its own */
        n += (size_t)snprintf(out + n, cap - n, "; mofo eval --model %s", model_dir);
    if (n < cap && (what & MOFO_DEMO_PPL))
        snprintf(out + n, cap - n, " --task ppl:%s/%s", world_dir, mofo_world_file_name(MOFO_WF_HELDOUT));
}

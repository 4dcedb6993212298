/* The measurements of `mofo demo`: how well a model does the fine-tuning task and how much of the
 * world's general knowledge it keeps, on the files `mofo world` writes (world.h).
 *
 *   task_acc      exact match on math_test.jsonl: the tulu-wrapped question, greedy, GSM8K's
 *                 extraction (the number after "#### ", else the last number)
 *   knowledge_em  exact match on knowledge_gen.jsonl: the numeric facts (birth year, house number,
 *                 height, lucky number) asked in held-out phrasings, greedy until the end of the
 *                 line or sentence ("\n", ".", ",")
 *   knowledge_mc  accuracy on knowledge_mc.jsonl (birthplace, occupation, food; held-out phrasing;
 *                 the choice of highest log-likelihood, as lm-evaluation-harness's acc)
 *   knowledge_acc (knowledge_em + knowledge_mc) / 2: the "general capability" whose drop the demo
 *                 reports, as the paper averages its general benchmarks
 *   ppl           perplexity of knowledge_heldout.jsonl (biographies in held-out templates)
 *   l2_distance   ||theta - theta_base|| over every parameter, and per kind of tensor (l2_kind:
 *                 embeddings, attention, MLP, norms, lm_head; mofo_param_kind)
 *   changed_fraction  entries not bitwise equal to the base's / all entries (as `mofo diff`)
 *
 * Each score is what `mofo eval` prints for the same file and options, so any number the demo
 * reports can be rerun by hand. No printing here. */
#ifndef MOFO_DEMO_DEMO_H
#define MOFO_DEMO_DEMO_H

#include "model/model.h"
#include "text/tokenizer.h"

typedef struct mofo_demo_scores {
    double task_acc, knowledge_em, knowledge_mc, knowledge_acc, ppl, l2_distance;
    double changed_fraction, l2_kind[MOFO_N_KINDS];
    int n_task, n_em, n_mc; /* the items behind task_acc, knowledge_em, knowledge_mc */
} mofo_demo_scores;

/* Which measurements to take (the others are left NaN). */
enum {
    MOFO_DEMO_TASK = 1,      /* task_acc on math_test.jsonl */
    MOFO_DEMO_VAL = 2,       /* task_acc on math_val.jsonl instead (choosing hyper-parameters) */
    MOFO_DEMO_KNOWLEDGE = 4, /* knowledge_em, knowledge_mc, knowledge_acc */
    MOFO_DEMO_PPL = 8,       /* ppl (the demo takes it for the base and the chosen runs only) */
};

/* The generation budget of a math answer and of a birth year, in tokens. */
#define MOFO_DEMO_MATH_MAX_NEW 24
#define MOFO_DEMO_FACT_MAX_NEW 12

/* Scores model m (tokenizer tok) on the files in world_dir. */
int mofo_demo_evaluate(mofo_model *m, const mofo_tokenizer *tok, const char *world_dir, int what, mofo_demo_scores *s,
                       mofo_err *err);
/* l2_distance, l2_kind and changed_fraction of params (m's layout: a trained model's weights, LoRA's
 * merged) from base (the base model's). */
void mofo_demo_distance(const mofo_model *m, const float *params, const float *base, mofo_demo_scores *s);

/* Exact match on a gen: file of word problems, scored as task_acc (tulu prompt, greedy). */
int mofo_demo_evaluate_gen(mofo_model *m, const mofo_tokenizer *tok, const char *path, double *acc, int *n,
                           mofo_err *err);

/* The `mofo eval` command lines (joined by "; ") that reproduce the scores of what for the model
 * saved in model_dir; results.json gives them with each run. */
void mofo_demo_eval_command(const char *model_dir, const char *world_dir, int what, char *out, size_t cap);

#endif

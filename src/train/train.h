/* train/: the fine-tuning loop over one model, the paper's methods, learning-rate schedules,
 * checkpoints that resume bit for bit, and the distance between two sets of weights.
 *
 * Methods (all on top of one libmofo optimizer, whose base rule is AdamW, Lion or SGD-momentum):
 *   mofo   momentum-filtered: in each tensor with 2+ dims only the fraction alpha of entries with
 *          the largest |m| move; 1-dim tensors dense (libmofo's default policy)
 *   adamw  full fine-tuning, every entry dense
 *   l1/l2  full fine-tuning with a pull toward the pre-trained weights theta0 added to the loss:
 *          L1: reg * sum|theta - theta0|, gradient reg * sign(theta - theta0) (0 where equal);
 *          L2: reg * sum (theta - theta0)^2, gradient 2 reg (theta - theta0)
 *   hft    Half Fine-Tuning (Hui et al. 2024): embeddings (token and position) and lm_head frozen;
 *          in even layers (0, 2, ...) q,k (attention) and gate,up (MLP) frozen, in odd layers v,o
 *          and down; GPT-2 (fused c_attn): even layers freeze attn.c_attn and mlp.c_fc, odd layers
 *          attn.c_proj and mlp.c_proj. A frozen matrix's bias is frozen with it; norms train.
 *          Over any two consecutive layers exactly half of the attention and MLP matrices train.
 *          Frozen tensors are not given to the optimizer, so not even weight decay touches them.
 *   lora, lora-mofo  adapters B A on the targeted linear layers (train/lora.h), attached to the
 *          frozen base (x W0^T + s (x A^T) B^T; no weight gradient); only A and B are given to the
 *          optimizer (lora-mofo: with MoFO's filter, alpha per adapter matrix).
 *
 * Steps, batches and data order: a micro-batch is B rows (examples, truncated to seq_len, padded
 * on the right); an epoch is ceil(n / B) micro-batches (the last one padded with empty rows);
 * a step is grad_accum micro-batches whose mean-loss gradients are averaged. The order of each
 * epoch e is a Fisher-Yates shuffle driven by splitmix64 seeded from (seed, e), or file order
 * with shuffle off; so the data position (micro-batch counter) and the seed are the whole random
 * state of the loop, and a checkpoint that stores both resumes bit for bit.
 *
 * No global state; errors as status + mofo_err; nothing printed. */
#ifndef MOFO_TRAIN_H
#define MOFO_TRAIN_H

#include <stdint.h>

#include "io/strbuf.h"
#include "model/model.h"
#include "mofo/optim.h"
#include "text/dataset.h"
#include "train/lora.h"

typedef enum {
    MOFO_METHOD_MOFO,
    MOFO_METHOD_ADAMW,
    MOFO_METHOD_L1,
    MOFO_METHOD_L2,
    MOFO_METHOD_HFT,
    MOFO_METHOD_LORA,     /* LoRA adapters (train/lora.h), dense updates; the base weights frozen */
    MOFO_METHOD_LORA_MOFO /* LoRA with MoFO's filter on the adapter matrices */
} mofo_method;
typedef enum { MOFO_SCHED_CONSTANT, MOFO_SCHED_LINEAR, MOFO_SCHED_COSINE } mofo_sched_kind;

int mofo_method_parse(const char *s, mofo_method *out);
const char *mofo_method_name(mofo_method m);
int mofo_sched_parse(const char *s, mofo_sched_kind *out);
const char *mofo_sched_name(mofo_sched_kind k);

/* The learning rate of step s (0-based: the lr the (s+1)-th optimizer step uses) of S steps with W
 * warm-up steps, as transformers' schedulers compute it:
 *   s < W:     lr * s / W
 *   constant:  lr
 *   linear:    lr * max(0, (S - s) / max(1, S - W))
 *   cosine:    lr * max(0, 0.5 * (1 + cos(pi * (s - W) / max(1, S - W)))) */
double mofo_lr_at(mofo_sched_kind k, double lr, int64_t W, int64_t S, int64_t s);
/* --warmup: a value in (0, 1) is a ratio of S (ceil, as transformers), an integer >= 0 is steps. */
int mofo_warmup_steps(double warmup, int64_t S, int64_t *W, mofo_err *err);

/* 1 when Half Fine-Tuning freezes the parameter named name (GPT-2 or Llama naming). */
int mofo_hft_frozen(const char *name);

/* Adds the L1 or L2 pull's gradient to g (n entries) and returns the penalty. */
typedef enum { MOFO_PENALTY_L1 = 1, MOFO_PENALTY_L2 = 2 } mofo_penalty;
double mofo_penalty_grad(mofo_penalty kind, double reg, const float *theta, const float *theta0, float *g, int64_t n);

/* The difference of two arrays of n entries: sum of squares of b - a and the entries not bitwise
 * equal (so -0 vs +0 counts, a NaN that stays the same does not). */
typedef struct mofo_diff {
    int64_t numel, changed;
    double sq;      /* sum (b - a)^2 */
    double base_sq; /* sum a^2 */
} mofo_diff;
void mofo_diff_accum(mofo_diff *d, const float *a, const float *b, int64_t n);

typedef struct mofo_train_opts {
    const char *model_dir, *data_path, *out_dir;
    mofo_method method;
    mofo_rule rule;
    double alpha;                 /* mofo; default 0.15 */
    double reg;                   /* l1/l2 strength */
    double lr;                    /* > 0 */
    mofo_sched_kind sched;
    double warmup;                /* see mofo_warmup_steps */
    int64_t epochs, steps;        /* steps > 0 overrides epochs */
    int batch, grad_accum, seq_len;
    double clip;                  /* global gradient norm; 0 disables */
    double weight_decay;
    double beta1, beta2, eps;     /* < 0: the rule's default */
    uint64_t seed;
    int shuffle;
    mofo_chat_template tpl;       /* MODEL: the chat template of the tokenizer's directory */
    double val_split;
    int pack;                     /* concatenate the training examples, in an order drawn anew each epoch,
                                     into full rows of seq_len tokens, as pre-training does; no target
                                     crosses an example boundary */
    int threads;
    int lora_rank;                /* default 8 */
    double lora_alpha;            /* default 16 */
    const char *lora_targets;     /* default "q,k,v,o,gate,up,down" */
    int merge;                    /* LoRA: the final model merged into OUT, the adapter in OUT/adapter */
    /* From scratch (mofo pretrain): with scratch set, model_dir is unused; the model is made from
     * *scratch by mofo_model_create_hf_init(init_seed, init_std) and the tokenizer (required) read from
     * tokenizer_dir, whose files the checkpoints and the final model copy. Not with the LoRA methods. */
    const mofo_model_config *scratch;
    uint64_t init_seed;
    double init_std;              /* default 0.02, transformers' initializer_range */
    const char *tokenizer_dir;    /* NULL: model_dir */
} mofo_train_opts;

void mofo_train_opts_init(mofo_train_opts *o);

typedef struct mofo_step_metrics {
    int64_t step;          /* steps done, this one included */
    double loss;           /* mean of the micro-batches' mean losses, before the step */
    double lr;
    double grad_norm;      /* global, of the trainable gradients (penalty included), before clipping */
    double penalty;        /* l1/l2: the penalty term before the step */
    double updated_frac;   /* entries the step moved / trainable entries (mofo_stats.updated / entries) */
    double coverage;       /* trainable entries moved at least once / trainable entries */
    double dist_l2;        /* ||theta - theta0|| over all parameters, after the step */
    double changed_frac;   /* entries differing from theta0, after the step */
    int64_t tokens;        /* trained tokens in this step */
    double epoch;          /* epochs done (fractional) */
} mofo_step_metrics;

typedef struct mofo_trainer {
    mofo_train_opts o;
    mofo_model *m;
    float *theta0;          /* (n_floats) the pre-trained weights (from scratch: the initial ones) */
    unsigned char *trainable; /* (n_p) */
    mofo_optim *opt;
    mofo_lora *lora;        /* LoRA methods only */
    mofo_tokenizer *tok;    /* NULL when the model directory has none (pre-tokenized data only) */
    mofo_chat *chat;        /* the directory's chat template, with o.tpl MODEL */
    mofo_dataset train, val;
    mofo_dataset src;       /* --pack: the training examples the rows of train are cut from */
    int64_t packed_epoch;   /* --pack: the epoch whose rows train holds */
    int32_t pad_id;
    int B, T;               /* micro-batch rows and the fixed row length: min(seq_len, longest example) */
    int64_t n_batches;      /* micro-batches per epoch */
    int64_t warmup_steps, total_steps;
    int64_t step;           /* optimizer steps done */
    int64_t micro;          /* micro-batches consumed: the data position */
    int64_t tokens;         /* trained tokens so far */
    int64_t trainable_entries, total_entries;
    size_t *perm;           /* (train.n) this epoch's order */
    int64_t perm_epoch;
    int *ids, *tg;          /* (B,T) inputs and next-token targets */
} mofo_trainer;

/* Loads the model and its tokenizer (when present), or with o->scratch makes the model and loads the
 * tokenizer of o->tokenizer_dir (*o->scratch must outlive the trainer); loads the data, builds the
 * optimizer. */
int mofo_trainer_create(mofo_trainer **out, const mofo_train_opts *o, mofo_err *err);
void mofo_trainer_free(mofo_trainer *t);
/* One optimizer step. */
int mofo_trainer_step(mofo_trainer *t, mofo_step_metrics *mt, mofo_err *err);
/* Token-weighted mean loss on the held-out split (NaN when there is none). */
int mofo_trainer_eval(mofo_trainer *t, double *loss, mofo_err *err);

/* A checkpoint directory: the model in fp32 (config.json + model.safetensors, tokenizer files),
 * optimizer.safetensors (mofo_optim_save), trainer_state.json (step, data position, seed, the
 * options that shape the run). Written into DIR's sibling ".NAME.tmp" and renamed into place, so
 * a failure leaves no partial DIR and every earlier checkpoint intact. */
int mofo_trainer_save_checkpoint(const mofo_trainer *t, const char *dir, mofo_err *err);
/* Continues from a checkpoint written by the same run's options (checked). */
int mofo_trainer_resume(mofo_trainer *t, const char *dir, mofo_err *err);
/* The final model in out_dir: config.json, safetensors in the checkpoint's own dtypes, tokenizer
 * files copied from model_dir. LoRA: the adapter (adapter_model.safetensors, adapter_config.json)
 * and the tokenizer files; with merge, the merged model there and the adapter in DIR/adapter. */
int mofo_trainer_save_final(const mofo_trainer *t, const char *dir, mofo_err *err);
/* The trained weights in the model's layout: t->m->params, or for LoRA a malloc'ed copy with the
 * adapters merged (W0 + s B A; the caller frees it when it is not t->m->params); NULL when out of
 * memory. */
float *mofo_trainer_weights(const mofo_trainer *t, mofo_err *err);

/* One metrics JSONL line (with the newline). */
void mofo_step_metrics_json(const mofo_step_metrics *mt, mofo_strbuf *sb);

/* Copies the tokenizer files that exist in src_dir (tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json, generation_config.json, vocab.json, merges.txt, tokenizer.model,
 * chat_template.jinja)
 * into dst_dir, each atomically. */
int mofo_copy_tokenizer_files(const char *src_dir, const char *dst_dir, mofo_err *err);

#endif

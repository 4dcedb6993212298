/* train/: the fine-tuning loop over one model, the paper's methods, learning-rate schedules,
 * checkpoints that resume bit for bit, and the distance between two sets of weights.
 *
 * Methods (train/method.h; each described in its file under train/method/) all run on one
 * libmofo optimizer, whose base rule is AdamW, Lion or SGD-momentum.
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

#include "backend/backend.h"
#include "io/strbuf.h"
#include "model/model.h"
#include "mofo/optim.h"
#include "text/dataset.h"
#include "train/lora.h"
#include "train/method.h"

/* mofo_method, mofo_sched_kind, mofo_train_opts, mofo_step_metrics and the trainer's public
 * functions: include/mofo/engine.h */

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


/* The difference of two arrays of n entries: sum of squares of b - a and the entries not bitwise
 * equal (so -0 vs +0 counts, a NaN that stays the same does not). */
typedef struct mofo_diff {
    int64_t numel, changed;
    double sq;      /* sum (b - a)^2 */
    double base_sq; /* sum a^2 */
} mofo_diff;
/* Adds how far b (n) is from a to d: host arrays, or (_on) arrays of backend be. */
void mofo_diff_accum(mofo_diff *d, const float *a, const float *b, int64_t n);
void mofo_diff_accum_on(const mofo_backend *be, mofo_diff *d, const float *a, const float *b, int64_t n);

/* One trainable gradient array: parameter param's (-1: an adapter's gA or gB). */
typedef struct grad_span {
    float *g;
    int64_t n;
    int param;
} grad_span;

struct mofo_trainer {
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
    grad_span *spans;       /* (n_p + 2 adapters) the step's trainable gradients */
    /* several processes (mofo_trainer_create_in): rank of world; this rank's rows [row0, row0 + rows)
     * of each micro-batch; the rank whose optimizer holds each trainable unit (ZeRO stage 1:
     * owner_p per model tensor, -1 frozen; owner_l per adapter); the all-reduce bucket */
    struct mofo_comm *comm;
    int rank, world, row0, rows;
    int *owner_p, *owner_l;
    float *bucket;
};

/* mofo_trainer_create as one of the processes of comm (NULL: the only one): each micro-batch of B
 * rows is split across the processes (the first B % N get one row more; B >= N), the gradients of
 * the whole micro-batch are summed over them (one bucketed all-reduce per step), and each process's
 * optimizer holds m and v of its share of the tensors only (cut at tensor boundaries, balanced by
 * size), whose updated values it then broadcasts. Every process ends each step with the same
 * model. Checkpoints: the model and trainer_state.json (with world_size) from rank 0, each rank's
 * optimizer state in optimizer-RANK-of-N.safetensors (optimizer.safetensors for one process); a
 * resume with another number of processes takes each tensor's state from whichever file holds it.
 * All the trainer's functions are then collective. */
int mofo_trainer_create_in(mofo_trainer **out, const mofo_train_opts *o, struct mofo_comm *comm, mofo_err *err);

/* mofo_trainer_save_checkpoint writes the model in fp32 (config.json + model.safetensors, tokenizer
 * files), optimizer.safetensors (mofo_optim_save) and trainer_state.json (step, data position, seed,
 * the options that shape the run) into DIR's sibling ".NAME.tmp" and renames it into place, so a
 * failure leaves no partial DIR and every earlier checkpoint intact; mofo_trainer_resume checks that
 * the checkpoint was written with the same run's options. mofo_trainer_save_final writes
 * safetensors in the checkpoint's own dtypes and copies the tokenizer files from model_dir. */

/* The trained weights in the model's layout and memory: t->m->params, or for LoRA a copy with the
 * adapters merged (W0 + s B A) from t->m->be->alloc, which the caller frees with t->m->be->free
 * when it is not t->m->params; NULL when out of memory. */
float *mofo_trainer_weights(const mofo_trainer *t, mofo_err *err);

/* What the trainer holds in its device's memory (host memory on the CPU), in bytes: the weights,
 * the copy of the pre-trained weights (not for LoRA), the gradients, the optimizer's state (m, v and
 * the coverage bits of this process's share of the trainable entries, adapters included), LoRA's
 * adapters with their gradients, and the activations of a micro-batch (made at the first step). */
typedef struct mofo_memory_plan {
    double weights, reference, gradients, optimizer, adapters, activations;
    double rounding; /* tf32 and bf16 products: the rounded copies of the largest inputs (A and B) */
    double total;
} mofo_memory_plan;
void mofo_trainer_memory_plan(const mofo_trainer *t, mofo_memory_plan *plan);

/* One metrics JSONL line (with the newline). */
void mofo_step_metrics_json(const mofo_step_metrics *mt, mofo_strbuf *sb);

/* Copies the tokenizer files that exist in src_dir (tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json, generation_config.json, vocab.json, merges.txt, tokenizer.model,
 * chat_template.jinja)
 * into dst_dir, each atomically. */
int mofo_copy_tokenizer_files(const char *src_dir, const char *dst_dir, mofo_err *err);

#endif

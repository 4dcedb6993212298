/* mofo/engine.h - libmofo-engine: Hugging Face checkpoints in and out, one decoder-only
 * transformer (GPT-2, Llama, Mistral, Qwen2) forward and backward, and the fine-tuning loop with
 * the MoFO paper's methods, on top of libmofo's optimizer (mofo/optim.h).
 *
 * A model, by hand:
 *     mofo_model *m;  mofo_model_load(&m, "path/to/hf-dir", &err);
 *     mofo_optim *opt = mofo_optim_create(&o, &err);  mofo_model_register(m, opt, &err);
 *     each step: mofo_model_train_step(m, opt, ids, targets, B, T, lr, &loss, &err);
 *     mofo_model_save(m, "out", 0, &err);  mofo_model_free(m);  mofo_optim_destroy(opt);
 *
 * The whole loop (what `mofo finetune` runs):
 *     mofo_train_opts o;  mofo_train_opts_init(&o);
 *     o.model_dir = "base"; o.data_path = "train.jsonl"; o.method = MOFO_METHOD_MOFO; o.lr = 2e-5;
 *     mofo_trainer *t;  mofo_trainer_create(&t, &o, &err);
 *     for (int64_t s = 0; s < mofo_trainer_total_steps(t); s++) mofo_trainer_step(t, &metrics, &err);
 *     mofo_trainer_save_final(t, "out", &err);  mofo_trainer_free(t);
 *
 * Token ids are (B, T) row-major int arrays; targets use -100 for positions that do not count.
 * Errors as in libmofo: 0 or a negative MOFO_E* status, the problem described in err (may be NULL);
 * nothing printed, nothing exits. A model or trainer must not be used from two threads at once;
 * they run OpenMP and OpenBLAS threads themselves (OMP_NUM_THREADS sets how many).
 * Link: pkg-config --cflags --libs mofo-engine (it contains libmofo's optimizer). */
#ifndef MOFO_ENGINE_H
#define MOFO_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "mofo/error.h"
#include "mofo/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mofo_model mofo_model;
typedef struct mofo_trainer mofo_trainer;
struct mofo_model_config;

/* ---- one model ---- */

/* Loads a checkpoint directory: config.json and model.safetensors or model.safetensors.index.json
 * with its shards. F32, BF16 and F16 become fp32. */
MOFO_API int mofo_model_load(mofo_model **out, const char *dir, mofo_err *err);
/* The same, straight into a device's memory (MOFO_DEVICE_CUDA: the current CUDA device), one tensor
 * at a time through the host: no host copy of the whole model. */
MOFO_API int mofo_model_load_to(mofo_model **out, const char *dir, mofo_device device, mofo_err *err);
/* Saves config.json and the weights under their original names, dtypes and layouts; one file when the
 * weights fit in max_shard_bytes (0: 5 GB), else shards with model.safetensors.index.json. Each file
 * is written atomically; the index last. */
MOFO_API int mofo_model_save(const mofo_model *m, const char *dir, size_t max_shard_bytes, mofo_err *err);
MOFO_API void mofo_model_free(mofo_model *m);
/* Moves the parameters to a device's memory (MOFO_DEVICE_CUDA: the current CUDA device; back with
 * MOFO_DEVICE_CPU), where every later operation of the model runs; gradients and activations are
 * freed and made again there. Loading and saving stage through the host. MOFO_ENODEV without CUDA
 * in the build or without a device; the model is unchanged on any error. Before adapters attach. */
MOFO_API int mofo_model_to_device(mofo_model *m, mofo_device device, mofo_err *err);
MOFO_API mofo_device mofo_model_device(const mofo_model *m);

/* How the model's matrix products round their inputs; they accumulate in fp32 and write fp32 in
 * every case, and everything else (norms, attention, softmax, the weights themselves, which stay the
 * fp32 masters the optimizer updates) is fp32. As torch.set_float32_matmul_precision names them:
 *   FP32  the inputs as they are ("highest"; the default)
 *   TF32  rounded to 10 stored mantissa bits ("high"; tensor cores' TF32 on a GPU)
 *   BF16  rounded to bfloat16, 7 stored bits ("medium"; torch.autocast's bf16 products, what
 *         transformers' Trainer runs with bf16=True; bf16 tensor cores on a GPU)
 * Rounding is to nearest, ties to even, on every backend, so the CPU is the GPU's reference. */
typedef enum { MOFO_PRECISION_FP32, MOFO_PRECISION_TF32, MOFO_PRECISION_BF16 } mofo_precision;
/* "fp32", "tf32", "bf16" -> 0 and *out; -1 for an unknown name. */
MOFO_API int mofo_precision_parse(const char *s, mofo_precision *out);
MOFO_API const char *mofo_precision_name(mofo_precision p);
/* The precision of the model's later products (forward, backward, evaluation, generation);
 * MOFO_EINVAL for a value outside the enum. */
MOFO_API int mofo_model_set_precision(mofo_model *m, mofo_precision p, mofo_err *err);

typedef struct mofo_model_info {
    char model_type[32];  /* config.json's: "gpt2", "llama", "mistral", "qwen2" */
    int vocab, channels, layers, heads, kv_heads, head_dim, mlp_width, max_positions;
    int n_tensors;
    int64_t n_params;     /* entries; a tied lm_head counted once */
} mofo_model_info;
MOFO_API void mofo_model_get_info(const mofo_model *m, mofo_model_info *info);

/* Forward pass over inputs (B, T). With targets the mean cross-entropy over the counted positions
 * goes to *loss (NaN when none counts) and the activations are kept for mofo_model_backward. */
MOFO_API int mofo_model_forward(mofo_model *m, const int *inputs, const int *targets, int B, int T, float *loss,
                                mofo_err *err);
/* The same forward without keeping activations for backward (memory does not grow with the layers). */
MOFO_API int mofo_model_eval(mofo_model *m, const int *inputs, const int *targets, int B, int T, float *loss,
                             mofo_err *err);
/* Copies the last forward's logits, (B, T, V) floats, into out. Fails when no forward ran or a
 * backward has since turned them into gradients. */
MOFO_API int mofo_model_logits(const mofo_model *m, float *out, mofo_err *err);
/* Backward of the last forward (which had targets): accumulates into the gradients. */
MOFO_API int mofo_model_backward(mofo_model *m, const int *inputs, const int *targets, mofo_err *err);
MOFO_API void mofo_model_zero_grads(mofo_model *m);

/* Registers every parameter in opt by its checkpoint name and shape (MOFO_GROUP_AUTO: matrices
 * filtered, 1-dim tensors dense), with the model's gradients (allocated here) as their gradients. */
MOFO_API int mofo_model_register(mofo_model *m, mofo_optim *opt, mofo_err *err);
/* One training step: zero gradients, forward, backward, mofo_optim_step(lr); *loss before the step. */
MOFO_API int mofo_model_train_step(mofo_model *m, mofo_optim *opt, const int *inputs, const int *targets, int B,
                                   int T, double lr, float *loss, mofo_err *err);

/* ---- the fine-tuning loop ---- */

/* The methods of the paper's comparison, each on one libmofo optimizer (rule AdamW, Lion or SGDM):
 *   mofo   in each tensor with 2+ dims only the fraction alpha of entries with the largest |m| move
 *   adamw  full fine-tuning, every entry dense
 *   l1/l2  full fine-tuning with reg * sum|theta - theta0| (L1) or reg * sum (theta - theta0)^2
 *          (L2) added to the loss
 *   hft    Half Fine-Tuning: embeddings, lm_head and half of each layer pair's matrices frozen
 *   lora, lora-mofo  adapters on the frozen base; lora-mofo filters the adapter matrices */
typedef enum {
    MOFO_METHOD_MOFO,
    MOFO_METHOD_ADAMW,
    MOFO_METHOD_L1,
    MOFO_METHOD_L2,
    MOFO_METHOD_HFT,
    MOFO_METHOD_LORA,
    MOFO_METHOD_LORA_MOFO,
    MOFO_N_METHODS
} mofo_method;
/* "mofo", "adamw", ... -> 0 and *out; -1 for an unknown name. */
MOFO_API int mofo_method_parse(const char *s, mofo_method *out);
MOFO_API const char *mofo_method_name(mofo_method m);

/* Learning-rate schedules after the warm-up, as transformers' schedulers. */
typedef enum { MOFO_SCHED_CONSTANT, MOFO_SCHED_LINEAR, MOFO_SCHED_COSINE } mofo_sched_kind;

/* How a conversation becomes tokens: open-instruct's tulu (the paper's), chatml, llama2, plain, or
 * the model directory's own Jinja chat template. */
typedef enum { MOFO_TPL_TULU, MOFO_TPL_CHATML, MOFO_TPL_LLAMA2, MOFO_TPL_PLAIN, MOFO_TPL_MODEL } mofo_chat_template;

typedef struct mofo_train_opts {
    const char *model_dir, *data_path, *out_dir; /* data: JSONL (messages, prompt/completion, alpaca,
                                                    metamath, text or tokens records) */
    mofo_method method;           /* default MOFO */
    mofo_rule rule;               /* default ADAMW */
    double alpha;                 /* mofo, lora-mofo: default 0.15 */
    double reg;                   /* l1/l2 strength, > 0 for them */
    double lr;                    /* > 0; default 1e-5 */
    mofo_sched_kind sched;        /* default LINEAR */
    double warmup;                /* a value in (0, 1) is a ratio of the steps (ceil), an integer >= 0 steps */
    int64_t epochs, steps;        /* steps > 0 overrides epochs (default 1 epoch) */
    int batch, grad_accum, seq_len; /* defaults 8, 1, 1024 */
    double clip;                  /* global gradient norm; 0 disables; default 1 */
    double weight_decay;          /* default 0 */
    double beta1, beta2, eps;     /* < 0 (default): the rule's default */
    uint64_t seed;                /* data order; default 42 */
    int shuffle;                  /* default 1 */
    mofo_chat_template tpl;       /* default TULU */
    double val_split;             /* fraction held out for mofo_trainer_eval; default 0 */
    int pack;                     /* concatenate the examples into full rows of seq_len tokens */
    int threads;                  /* the optimizer's OpenMP threads; 0: OpenMP's default */
    int lora_rank;                /* default 8 */
    double lora_alpha;            /* default 16 */
    const char *lora_targets;     /* default "q,k,v,o,gate,up,down" */
    int merge;                    /* LoRA: the final model merged into OUT, the adapter in OUT/adapter */
    /* From scratch: with scratch set, model_dir is unused; the model is made from *scratch (which must
     * outlive the trainer) with transformers' initialisation (init_seed, init_std), and the tokenizer
     * (required) read from tokenizer_dir. Not with the LoRA methods. */
    const struct mofo_model_config *scratch;
    uint64_t init_seed;
    double init_std;              /* default 0.02 */
    const char *tokenizer_dir;    /* NULL: model_dir */
    mofo_device device;           /* where the model trains: CPU (default), or CUDA (one process) */
    mofo_precision precision;     /* of the matrix products (default FP32; see mofo_precision) */
} mofo_train_opts;

MOFO_API void mofo_train_opts_init(mofo_train_opts *o);
/* sizeof(mofo_train_opts) in the library: a program compiled against another header version can check. */
MOFO_API size_t mofo_train_opts_size(void);

typedef struct mofo_step_metrics {
    int64_t step;          /* steps done, this one included */
    double loss;           /* mean of the micro-batches' mean losses, before the step */
    double lr;
    double grad_norm;      /* global, of the trainable gradients (penalty included), before clipping */
    double penalty;        /* l1/l2: the penalty term before the step */
    double updated_frac;   /* entries the step moved / trainable entries */
    double coverage;       /* trainable entries moved at least once / trainable entries */
    double dist_l2;        /* ||theta - theta0|| over all parameters, after the step */
    double changed_frac;   /* entries differing from theta0, after the step */
    int64_t tokens;        /* trained tokens in this step */
    double epoch;          /* epochs done (fractional) */
    int world_size;        /* the processes the step ran on */
} mofo_step_metrics;

/* Loads the model and its tokenizer (when present), the data, and builds the optimizer. */
MOFO_API int mofo_trainer_create(mofo_trainer **out, const mofo_train_opts *o, mofo_err *err);
MOFO_API void mofo_trainer_free(mofo_trainer *t);
/* One optimizer step (grad_accum micro-batches); mt may be NULL. */
MOFO_API int mofo_trainer_step(mofo_trainer *t, mofo_step_metrics *mt, mofo_err *err);
/* Token-weighted mean loss on the held-out split (NaN when there is none). */
MOFO_API int mofo_trainer_eval(mofo_trainer *t, double *loss, mofo_err *err);
MOFO_API int64_t mofo_trainer_total_steps(const mofo_trainer *t);
MOFO_API int64_t mofo_trainer_steps_done(const mofo_trainer *t);
/* The model being trained (the trainer's; LoRA: the frozen base). */
MOFO_API mofo_model *mofo_trainer_model(mofo_trainer *t);
/* A checkpoint directory (model, optimizer state, trainer state), written into a sibling temporary
 * directory and renamed into place; mofo_trainer_resume continues it bit for bit. */
MOFO_API int mofo_trainer_save_checkpoint(const mofo_trainer *t, const char *dir, mofo_err *err);
MOFO_API int mofo_trainer_resume(mofo_trainer *t, const char *dir, mofo_err *err);
/* The final model (LoRA: the adapter, or with merge the merged model and the adapter in DIR/adapter)
 * with the tokenizer files, loadable by transformers (and PEFT). */
MOFO_API int mofo_trainer_save_final(const mofo_trainer *t, const char *dir, mofo_err *err);

#ifdef __cplusplus
}
#endif

#endif

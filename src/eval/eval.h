/* Evaluation tasks over JSONL files: perplexity, multiple-choice log-likelihood (acc, acc_norm as
 * lm-evaluation-harness scores ARC, HellaSwag and MMLU) and generation with exact match (GSM8K's
 * strict and flexible extraction).
 *
 * Files: one JSON object per line, blank lines skipped. Every error names FILE:LINE and the field. */
#ifndef MOFO_EVAL_EVAL_H
#define MOFO_EVAL_EVAL_H

#include <stddef.h>

#include "model/model.h"
#include "text/dataset.h"
#include "text/tokenizer.h"

/* ---- prompts ---- */
/* The ids of a generation prompt: with tpl < 0 the text as it is (BOS first when add_bos); else one
 * user turn rendered by the chat template followed by the assistant's header, as
 * apply_chat_template(add_generation_prompt=True) writes it:
 *   tulu   [BOS] "<|user|>\n" P "\n<|assistant|>\n"
 *   chatml [BOS] "<|im_start|>user\n" P "<|im_end|>\n<|im_start|>assistant\n"
 *   llama2 BOS "[INST] " P " [/INST]"
 *   plain  [BOS] P
 *   model  chat's rendering of [{"role": "user", "content": P}] with add_generation_prompt
 * where [BOS] is written when the tokenizer adds one (mofo_tokenizer_adds_bos), as in dataset.h. */
int mofo_prompt_ids(const mofo_tokenizer *tok, const char *prompt, size_t len, int tpl, const mofo_chat *chat, int add_bos,
                    mofo_ids *out, mofo_err *err);

/* ---- ppl:FILE, lines {"text": "..."} ---- */
typedef struct mofo_ppl_result {
    double nll;    /* summed negative log-likelihood (nats) */
    long tokens;   /* predicted positions */
    long docs;
} mofo_ppl_result;
/* Each text is encoded with the tokenizer's special tokens (BOS for Llama, as `mofo ppl --text`);
 * a text longer than the model's positions (at most 1024 at a time) is cut into windows that share
 * one token, so every token after the first is predicted once, with the context restarting at each
 * window. Loss = nll / tokens, ppl = exp(loss). */
int mofo_eval_ppl(mofo_model *m, const mofo_tokenizer *tok, const char *path, mofo_ppl_result *r, mofo_err *err);

/* ---- mc:FILE, lines {"context": "...", "choices": ["...", ...], "gold": INDEX} ---- */
typedef struct mofo_mc_result {
    long n;
    long correct;       /* argmax of the log-likelihood is gold */
    long correct_norm;  /* argmax of log-likelihood / characters of the choice is gold */
} mofo_mc_result;
/* The log-likelihood of continuation given context, tokenized as lm-evaluation-harness does:
 * trailing spaces of the context move to the front of the continuation; the whole string and the
 * context are encoded (without special tokens, unless add_bos puts BOS first) and the
 * continuation's tokens are those of the whole after the context's token count; an empty context is
 * replaced by BOS (EOS when there is none). The sequence is cut from the left to the model's
 * positions. *n_tokens gets the continuation's token count. */
int mofo_loglik(mofo_model *m, const mofo_tokenizer *tok, const char *context, size_t ctx_len, const char *cont,
                size_t cont_len, int add_bos, double *ll, int *n_tokens, mofo_err *err);
int mofo_eval_mc(mofo_model *m, const mofo_tokenizer *tok, const char *path, int add_bos, mofo_mc_result *r,
                 mofo_err *err);

/* ---- gen:FILE, lines {"prompt": "...", "answer": "..."} ---- */
typedef struct mofo_gen_eval_opts {
    int max_new;          /* tokens generated at most per prompt */
    const char **stop;    /* stop strings: generation ends when the decoded output contains one, and
                             the output is cut before it; EOS also stops */
    int n_stop;
    int tpl;              /* chat template for the prompt, or -1 */
    const mofo_chat *chat; /* the model's template, for tpl MOFO_TPL_MODEL */
    int add_bos;
} mofo_gen_eval_opts;
typedef struct mofo_gen_result {
    long n;
    long strict;     /* the number after "####" in the output equals the answer's */
    long flexible;   /* the last number in the output equals the answer's */
    long em;         /* strict where the output has "####", else flexible */
} mofo_gen_result;
int mofo_eval_gen(mofo_model *m, const mofo_tokenizer *tok, const char *path, const mofo_gen_eval_opts *o,
                  mofo_gen_result *r, mofo_err *err);

/* GSM8K's answer extraction and normalisation (lm-evaluation-harness gsm8k.yaml).
 * strict: the first "#### " followed by -?[0-9.,]+, the number captured;
 * flexible: the last match of (-?[$0-9.,]{2,})|(-?[0-9]+).
 * Each returns 1 and the span [*start, *end) in s, or 0 when there is no match. */
int mofo_gsm8k_strict(const char *s, size_t n, size_t *start, size_t *end);
int mofo_gsm8k_flexible(const char *s, size_t n, size_t *start, size_t *end);
/* The harness's exact-match normalisation: everything up to the last "#### " dropped, ',' and '$'
 * removed, one trailing '.' removed, surrounding whitespace trimmed, lower case:
 * "$1,000." -> "1000", "#### 72" -> "72". Writes a NUL-terminated string of at most n bytes. */
void mofo_gsm8k_normalize(const char *s, size_t n, char *out, size_t cap);

#endif

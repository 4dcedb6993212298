/* JSONL data sets for fine-tuning: formats, chat templates, loss masks, truncation, batches.
 *
 * One JSON object per line. Formats (AUTO picks one from the first line's fields, and every later
 * line must then have that format's fields):
 *   messages             {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
 *   prompt/completion    {"prompt": "...", "completion": "..."}
 *   Alpaca               {"instruction": "...", "input": "..." (optional), "output": "..."}; the user
 *                        turn is instruction, plus "\n\n" + input when input is not empty
 *   MetaMathQA           {"query": "...", "response": "..."}
 *   text                 {"text": "..."}: encoded as the tokenizer does with add_special_tokens
 *                        (BOS for Llama), every position trained, no template
 *   pre-tokenized        {"input_ids": [...], "labels": [...] (optional)}: used exactly as given: no
 *                        template, no BOS/EOS; without labels every position is trained
 * The first four become a conversation rendered by a chat template (see mofo_chat_template).
 *
 * Labels follow Hugging Face's convention: labels[t] is the target of the logits at t-1 (the
 * loss shifts), -100 marks a position without loss, and labels[0] is never a target. Only the
 * assistant's (response's) tokens are trained: a token is trained when its bytes overlap the
 * response's content or the end token the template puts after it; everything else, the
 * assistant header included, is -100.
 *
 * Errors name "FILE:LINE: reason". A malformed line (bad JSON, invalid UTF-8, a missing field, a
 * field of the wrong type, an unknown role, an id outside the vocabulary) stops the load, or with
 * skip_bad is counted in n_bad and skipped. An example left with no trained token after
 * truncation to max_len is dropped and counted in n_no_response. */
#ifndef MOFO_TEXT_DATASET_H
#define MOFO_TEXT_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "io/json.h"
#include "mofo/engine.h"
#include "mofo/error.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

#define MOFO_IGNORE_INDEX (-100)

/* Chat templates, each written in Jinja and rendered as chat_template.h says (EOS is the tokenizer's end-of-sequence token, written as its text so that it is
 * matched as a special token exactly as transformers would; BOS likewise, and only where the
 * tokenizer adds one when asked for special tokens, except llama2 which writes it per turn):
 *   tulu    open-instruct's, as the MoFO paper used:  [BOS] then per message
 *           "<|system|>\n" C "\n",  "<|user|>\n" C "\n",  "<|assistant|>\n" C EOS "\n"
 *           (no "\n" after the last message's EOS); trained: C EOS
 *   chatml  [BOS] then per message "<|im_start|>" ROLE "\n" C "<|im_end|>\n"; trained: C <|im_end|>
 *   llama2  Llama 2 chat: BOS "[INST] " [<<SYS>>\n S \n<</SYS>>\n\n] U " [/INST]" then " " A " " EOS
 *           per user/assistant pair; trained: A " " EOS
 *   plain   [BOS] then each message's content as it is, with EOS after each assistant content;
 *           trained: A EOS. For prompt/completion this is prompt + completion + EOS.
 *   model   the model's own Jinja chat template (chat_template.h), as transformers'
 *           apply_chat_template renders it; the text is tokenized without added special tokens
 *           (the template writes BOS itself); trained: each assistant turn as chat_template.h says
 * Contents are used exactly as given (no stripping). */
/* mofo_chat_template: include/mofo/engine.h */

typedef enum {
    MOFO_FMT_AUTO,
    MOFO_FMT_MESSAGES,
    MOFO_FMT_PROMPT_COMPLETION,
    MOFO_FMT_ALPACA,
    MOFO_FMT_METAMATH,
    MOFO_FMT_TEXT,
    MOFO_FMT_TOKENS
} mofo_data_format;

/* A built-in template (not MODEL) as a mofo_chat: its Jinja source (mofo_chat_template_source)
 * with bos/eos as the template's bos_token/eos_token (bos NULL: ""; eos NULL is an error but for
 * chatml); mofo_chat_for takes them from the tokenizer's BOS and EOS. */
int mofo_chat_builtin(mofo_chat **out, mofo_chat_template t, const char *bos, const char *eos, mofo_err *err);
int mofo_chat_for(mofo_chat **out, mofo_chat_template t, const mofo_tokenizer *tok, mofo_err *err);
const char *mofo_chat_template_source(mofo_chat_template t); /* NULL for MODEL */
/* "tulu", "chatml", "llama2", "plain", "model" -> 0 and *out; -1 for an unknown name. */
int mofo_chat_template_parse(const char *name, mofo_chat_template *out);
const char *mofo_chat_template_name(mofo_chat_template t);
/* "auto", "messages", "prompt_completion", "alpaca", "metamath", "text", "tokens". */
int mofo_data_format_parse(const char *name, mofo_data_format *out);
const char *mofo_data_format_name(mofo_data_format f);

typedef struct mofo_data_opts {
    mofo_data_format format; /* AUTO by default */
    mofo_chat_template tpl;  /* TULU by default */
    const mofo_chat *chat;   /* the model's template, for MOFO_TPL_MODEL */
    int32_t max_len;         /* truncate longer examples (keeping the start); 0: no limit */
    int skip_bad;            /* count and skip malformed lines instead of stopping */
} mofo_data_opts;

typedef struct mofo_example {
    int32_t *ids;    /* (len) */
    int32_t *labels; /* (len), in the same allocation as ids */
    int32_t len;
    int32_t line;    /* the JSONL line it came from (1-based); 0 for packed rows */
} mofo_example;

typedef struct mofo_dataset {
    mofo_example *ex;
    size_t n, cap;
    mofo_data_format format; /* the format in use (after AUTO) */
    size_t n_lines;          /* non-blank lines read */
    size_t n_bad;            /* malformed lines skipped (skip_bad) */
    size_t n_truncated;      /* examples cut to max_len */
    size_t n_no_response;    /* examples dropped: no trained token (left) after truncation */
    int first_no_response;   /* the line of the first of those */
    char first_bad[MOFO_ERR_MSG_MAX]; /* the message of the first skipped line */
} mofo_dataset;

/* Reads a JSONL file (or a buffer; name labels the messages) and appends its examples to ds
 * (zero-initialise it first). */
int mofo_dataset_load(mofo_dataset *ds, const char *path, const mofo_tokenizer *tok, const mofo_data_opts *o,
                      mofo_err *err);
int mofo_dataset_load_buffer(mofo_dataset *ds, const char *name, const char *text, size_t len,
                             const mofo_tokenizer *tok, const mofo_data_opts *o, mofo_err *err);
/* One JSON object in format fmt (not AUTO) -> one example; truncation is not applied here. The
 * message names the field at fault ("missing field \"completion\"") without the file and line. */
int mofo_example_from_json(const mofo_json *obj, mofo_data_format fmt, const mofo_tokenizer *tok,
                           const mofo_data_opts *o, mofo_example *ex, mofo_err *err);
/* The format the fields of obj point to, or AUTO when none. */
mofo_data_format mofo_data_format_detect(const mofo_json *obj);
void mofo_example_free(mofo_example *ex);
void mofo_dataset_free(mofo_dataset *ds);

/* A Fisher-Yates shuffle driven by seed: the same seed gives the same order on every machine. */
void mofo_dataset_shuffle(mofo_dataset *ds, uint64_t seed);
/* Shuffles by seed, then moves floor(fraction * n) examples (at least 1 when fraction > 0 and
 * n >= 2) from the end of ds into heldout (zero-initialised). */
int mofo_dataset_split(mofo_dataset *ds, mofo_dataset *heldout, double fraction, uint64_t seed, mofo_err *err);
/* Packing: concatenates the examples of in (in order) and cuts them into rows of T tokens in out
 * (zero-initialised); the last row may be shorter. The first token of every example gets label
 * -100, so that no position is trained to predict across an example boundary. */
int mofo_dataset_pack(const mofo_dataset *in, int32_t T, mofo_dataset *out, mofo_err *err);

typedef struct mofo_batch {
    int B, T;
    int32_t *ids;    /* (B,T) */
    int32_t *labels; /* (B,T), -100 on padding */
    int32_t *len;    /* (B) tokens before the padding */
    size_t cap;
} mofo_batch;

/* Batch by padding: rows are examples first, first+1, ... (wrapping around the end of ds), each
 * cut to T and padded on the right with pad_id and label -100. T <= 0 uses the longest of the B
 * examples. */
int mofo_batch_fill(mofo_batch *b, const mofo_dataset *ds, size_t first, int B, int T, int32_t pad_id, mofo_err *err);
void mofo_batch_free(mofo_batch *b);

#endif

/* Hugging Face tokenizer.json: BPE models as the tokenizers library runs them.
 *
 * Supported pipeline pieces (anything else is refused at load with a message naming it):
 *   normalizer     null, Sequence, Prepend, Replace (String or Regex pattern), NFC, NFD (tables
 *                  from Unicode 14.0, scripts/gen_unicode_nfc.py)
 *   pre_tokenizer  null, Sequence, ByteLevel (add_prefix_space, use_regex: GPT-2's regex),
 *                  Split (String or Regex pattern; Isolated, Removed, MergedWithPrevious,
 *                  MergedWithNext, Contiguous; invert), Metaspace (replacement, prepend_scheme
 *                  always/first/never or the older add_prefix_space, split)
 *   model          BPE (merges as "a b" strings or ["a","b"] pairs, byte_fallback, unk_token,
 *                  fuse_unk, ignore_merges)
 *   post_processor null, ByteLevel, TemplateProcessing (the "single" template), Sequence of those
 *   decoder        null, Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace
 * Added tokens (special or not) are matched as the tokenizers library matches them: those with
 * "normalized": false in the raw text, leftmost and longest first; the text between them is
 * normalized segment by segment, and those with "normalized": true are matched in that normalized
 * text as their content normalized (their spelling, as decode gives it, is the normalized content
 * too, as the library's id_to_token); the rest goes through the pre-tokenizer and the model piece
 * by piece. lstrip/rstrip take Unicode white space; a single_word match with a word character
 * beside it is passed over.
 *
 * Invalid UTF-8 input: the tokenizers library only accepts Unicode strings (Rust &str; Python
 * str), so bytes reach it only after a decoding step. mofo does what Python's
 * bytes.decode("utf-8", errors="replace") and Rust's String::from_utf8_lossy do: each maximal
 * invalid subpart becomes one U+FFFD, and the result is encoded. Decoding ids whose bytes do not
 * form valid UTF-8 likewise yields U+FFFD (the ByteLevel decoder's from_utf8_lossy; ByteFallback
 * turns each byte of an invalid run into one U+FFFD).
 *
 * A loaded tokenizer is read-only: several threads may encode with it at once. */
#ifndef MOFO_TEXT_TOKENIZER_H
#define MOFO_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "io/strbuf.h"
#include "mofo/error.h"

typedef struct mofo_tokenizer mofo_tokenizer;

/* A growable array of token ids, with optional byte offsets into the encoded text: token i came
 * from bytes [start[i], end[i]) of the input (after U+FFFD replacement of invalid UTF-8; equal
 * start and end for tokens that no input byte produced, such as BOS). */
typedef struct mofo_ids {
    int32_t *ids;
    int32_t *start, *end; /* filled only when want_offsets was set before encoding */
    size_t len, cap;
    int want_offsets;
    int failed; /* an allocation failed */
} mofo_ids;

void mofo_ids_free(mofo_ids *v);
void mofo_ids_clear(mofo_ids *v);

/* Loads tokenizer.json text; name labels messages (e.g. the file path). */
int mofo_tokenizer_from_json(mofo_tokenizer **out, const char *json, size_t len, const char *name,
                             mofo_err *err);
int mofo_tokenizer_load_file(mofo_tokenizer **out, const char *path, mofo_err *err);
/* A model directory: tokenizer.json, then tokenizer_config.json (bos_token, eos_token, pad_token,
 * add_bos_token, add_eos_token) and config.json (bos_token_id, eos_token_id, pad_token_id) when
 * present, the former taking precedence. */
int mofo_tokenizer_load_dir(mofo_tokenizer **out, const char *dir, mofo_err *err);
/* Applies a tokenizer_config.json / config.json document (already read) to tok. */
int mofo_tokenizer_apply_config(mofo_tokenizer *tok, const char *tokenizer_config, size_t tc_len,
                                const char *config, size_t c_len, const char *name, mofo_err *err);
void mofo_tokenizer_free(mofo_tokenizer *tok);

/* Appends the ids of text[0..len) to out. add_special: add BOS/EOS as the post-processor (or
 * tokenizer_config.json's add_bos_token/add_eos_token) says, like add_special_tokens=True. */
int mofo_tokenizer_encode(const mofo_tokenizer *tok, const char *text, size_t len, int add_special,
                          mofo_ids *out, mofo_err *err);
/* Appends the text of ids[0..n) to out; skip_special drops special added tokens. An id outside
 * the vocabulary is an error. */
int mofo_tokenizer_decode(const mofo_tokenizer *tok, const int32_t *ids, size_t n, int skip_special,
                          mofo_strbuf *out, mofo_err *err);

/* 1 + the largest id of the model vocabulary and the added tokens. */
int32_t mofo_tokenizer_vocab_size(const mofo_tokenizer *tok);
/* The id of the token spelled s[0..n) (added tokens first, then the model), or -1. */
int32_t mofo_tokenizer_token_id(const mofo_tokenizer *tok, const char *s, size_t n);
/* The spelling of id (NUL-terminated), or NULL outside the vocabulary. */
const char *mofo_tokenizer_token(const mofo_tokenizer *tok, int32_t id, size_t *len);
int mofo_tokenizer_is_special(const mofo_tokenizer *tok, int32_t id);
/* -1 when unknown. */
int32_t mofo_tokenizer_bos(const mofo_tokenizer *tok);
int32_t mofo_tokenizer_eos(const mofo_tokenizer *tok);
int32_t mofo_tokenizer_pad(const mofo_tokenizer *tok);
/* Whether encoding with add_special adds a BOS first (used by the chat templates). */
int mofo_tokenizer_adds_bos(const mofo_tokenizer *tok);
/* Overrides (e.g. from the command line); -1 leaves a value unset. */
void mofo_tokenizer_set_special(mofo_tokenizer *tok, int32_t bos, int32_t eos, int32_t pad);

#endif

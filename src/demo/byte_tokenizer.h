/* A byte-level tokenizer for the demo's small models, written as Hugging Face files.
 *
 * Ids 0..255 are the bytes themselves (each written as its GPT-2 bytes_to_unicode character, as a
 * ByteLevel pre-tokenizer maps it), followed by the special tokens below. The model is BPE with an
 * empty merge list, so every byte of the text is one token: any text encodes, and decoding gives it
 * back. Pipeline: no normalizer, ByteLevel pre-tokenizer (no prefix space, no regex split), BPE,
 * TemplateProcessing putting BOS first (add_special_tokens), ByteLevel decoder.
 * tokenizer_config.json names bos/eos/pad (add_bos_token true, add_eos_token false). */
#ifndef MOFO_DEMO_BYTE_TOKENIZER_H
#define MOFO_DEMO_BYTE_TOKENIZER_H

#include "io/strbuf.h"
#include "mofo/error.h"

/* the special tokens, in id order after the 256 bytes */
#define MOFO_BYTE_TOK_BOS 256 /* "<s>" */
#define MOFO_BYTE_TOK_EOS 257 /* "</s>": the end of an assistant turn in the tulu/plain/llama2 templates */
#define MOFO_BYTE_TOK_PAD 258 /* "<pad>" */
#define MOFO_BYTE_TOK_IM_START 259 /* "<|im_start|>" (chatml) */
#define MOFO_BYTE_TOK_IM_END 260   /* "<|im_end|>" (chatml) */
#define MOFO_BYTE_TOK_VOCAB 261

/* The special token with id (256..260) as text, or NULL. */
const char *mofo_byte_tokenizer_special(int id);
/* Appends tokenizer.json's text, or tokenizer_config.json's, to sb. */
void mofo_byte_tokenizer_json(mofo_strbuf *sb);
void mofo_byte_tokenizer_config_json(mofo_strbuf *sb);
/* Writes DIR/tokenizer.json and DIR/tokenizer_config.json atomically (DIR must exist). */
int mofo_byte_tokenizer_write(const char *dir, mofo_err *err);

#endif

/* A model's own chat template: the Jinja "chat_template" of its tokenizer_config.json (or its
 * chat_template.jinja), rendered as transformers' apply_chat_template does, with the bytes that
 * training learns marked.
 *
 * Trained bytes. jinja.h marks the bytes that come from the assistant messages' content (or from
 * {% generation %} blocks, when the template has them: then exactly those). Outside generation
 * blocks each marked run is then widened to the whole assistant turn, by three rules:
 *   1. two runs merge when the text between them holds no special token and no generation prompt
 *      (Qwen3: the reasoning and the answer of one turn, with "</think>" between);
 *   2. a run starts where the generation prompt before it ends, when that prompt lies between it
 *      and the run before (Qwen3: "<think>\n" which the template writes ahead of the reasoning);
 *   3. a run takes in the whitespace after it and the special token that follows (the end of the
 *      turn: "<|eot_id|>", "<|im_end|>", "<end_of_turn>", EOS).
 * The generation prompt is what add_generation_prompt adds to a one-message conversation
 * ("<|start_header_id|>assistant<|end_header_id|>\n\n"); special tokens are the tokenizer's added
 * tokens marked special. */
#ifndef MOFO_TEXT_CHAT_TEMPLATE_H
#define MOFO_TEXT_CHAT_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

#include "io/json.h"
#include "io/strbuf.h"
#include "mofo/error.h"
#include "text/tokenizer.h"

typedef struct mofo_chat mofo_chat;

/* The template of a model directory: DIR/chat_template.jinja, else tokenizer_config.json's
 * "chat_template" (a string, or a list of {"name", "template"} of which "default" is used), with
 * that file's bos_token and eos_token. *out stays NULL and 0 is returned when the directory has
 * no template. tok (may be NULL) gives the special tokens. */
int mofo_chat_load_dir(mofo_chat **out, const char *dir, const mofo_tokenizer *tok, mofo_err *err);
/* From the template's source; bos/eos NULL when undefined; specials[n_special]: the text of each
 * special token. name labels the messages. */
int mofo_chat_from_source(mofo_chat **out, const char *src, size_t len, const char *name, const char *bos,
                          const char *eos, const char *const *specials, size_t n_special, mofo_err *err);
void mofo_chat_free(mofo_chat *c);

/* Renders messages (a JSON array of {"role", "content", ...}); extra: more template variables (a
 * JSON object, or NULL). Appends to *text and, when trained is not NULL, one byte per text byte
 * (1: trained, by the rules above). */
int mofo_chat_render(const mofo_chat *c, const mofo_json *messages, int add_generation_prompt, const mofo_json *extra,
                     mofo_strbuf *text, mofo_strbuf *trained, mofo_err *err);
/* The generation prompt found when the template was loaded ("" when none). */
const char *mofo_chat_generation_prompt(const mofo_chat *c);
/* strftime_now's clock for later renders (seconds since the epoch; < 0: the real clock, the default). */
void mofo_chat_set_time(mofo_chat *c, int64_t now);

#endif

/* Hugging Face chat templates: the subset of Jinja2 that tokenizer_config.json's "chat_template"
 * uses, rendered as transformers' apply_chat_template does.
 *
 * The environment is transformers': trim_blocks and lstrip_blocks on, the loopcontrols extension
 * (break, continue), the custom `{% generation %}` block, and the globals raise_exception(msg),
 * strftime_now(fmt) and namespace(...) (plus range). Supported:
 *   tags        if/elif/else, for (with an `if` filter, `else`, tuple targets, loop.index/index0/
 *               revindex/revindex0/first/last/length/previtem/nextitem), set (name, ns.attr, and
 *               the block form), macro (positional and keyword parameters with defaults),
 *               generation, break, continue, comments, and the -/+ whitespace markers
 *   expressions literals (strings, numbers, true/false/none, lists, dicts, tuples), a.b, a[i],
 *               a[i:j:k], calls, `x if c else y`, or/and/not, == != < > <= >= in, not in, is, is
 *               not, + - * / // % ** ~ and unary -
 *   filters     abs capitalize count d default first float int items join last length list lower
 *               map reject rejectattr replace reverse safe select selectattr string title tojson
 *               trim unique upper
 *   tests       boolean callable defined divisibleby eq equalto even false float ge gt in integer
 *               iterable le lower lt mapping ne none number odd sameas sequence string true
 *               undefined upper ==  != < > <= >=
 *   methods     str: strip lstrip rstrip split startswith endswith upper lower replace title
 *               capitalize find count join; dict: items keys values get
 * Strings index and count by code point, as Python's do; upper/lower/title/capitalize change ASCII
 * letters only. Anything else is an error that names the template's line.
 *
 * Trained bytes. Every output byte carries a flag: set where the byte comes from the "content"
 * string of a message whose role is "assistant" (followed through slicing, strip, split,
 * concatenation, join and replace), or, when the template has `{% generation %}` blocks, from
 * inside those blocks instead (transformers' return_assistant_tokens_mask).
 *
 * Threading: a parsed template is read-only while rendering; render from any number of threads.
 * Errors: MOFO_EFORMAT for a template that does not parse or fails while rendering (the message
 * names the line and what is wrong; raise_exception's message is quoted), MOFO_ENOMEM. */
#ifndef MOFO_TEXT_JINJA_H
#define MOFO_TEXT_JINJA_H

#include <stddef.h>
#include <stdint.h>

#include "io/json.h"
#include "io/strbuf.h"
#include "mofo/error.h"

typedef struct mofo_jinja mofo_jinja;

/* Parses src[0..len); name labels the messages ("DIR/tokenizer_config.json chat_template"). */
int mofo_jinja_parse(mofo_jinja **out, const char *src, size_t len, const char *name, mofo_err *err);
void mofo_jinja_free(mofo_jinja *t);
/* 1 when the template marks the assistant's text with {% generation %} blocks. */
int mofo_jinja_has_generation(const mofo_jinja *t);

typedef struct mofo_jinja_vars {
    const mofo_json *messages;   /* an array: the conversation, each message an object */
    int add_generation_prompt;
    const char *bos_token;       /* NULL: undefined */
    const char *eos_token;       /* NULL: undefined */
    const mofo_json *extra;      /* an object whose members are further variables (tools,
                                  * enable_thinking, date_string, ...), or NULL */
    int64_t now;                 /* strftime_now's time in seconds since the epoch, shown in local time as
                                  * transformers does; < 0: the clock */
} mofo_jinja_vars;

/* Renders into *text (appended) and *trained (one byte, 0 or 1, per byte appended to text). */
int mofo_jinja_render(const mofo_jinja *t, const mofo_jinja_vars *v, mofo_strbuf *text, mofo_strbuf *trained,
                      mofo_err *err);

#endif

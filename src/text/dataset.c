/* JSONL data sets: formats -> conversations -> chat template -> ids and labels; batches. */
#define _POSIX_C_SOURCE 200809L
#include "text/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/strbuf.h"
#include "text/utf8.h"

static const char *TPL_NAMES[] = {"tulu", "chatml", "llama2", "plain", "model"};
static const char *FMT_NAMES[] = {"auto", "messages", "prompt_completion", "alpaca", "metamath", "text", "tokens"};

int mofo_chat_template_parse(const char *name, mofo_chat_template *out) {
    for (int i = 0; i < 5; i++)
        if (strcmp(name, TPL_NAMES[i]) == 0) {
            *out = (mofo_chat_template)i;
            return 0;
        }
    return -1;
}

const char *mofo_chat_template_name(mofo_chat_template t) { return (unsigned)t < 5 ? TPL_NAMES[t] : "?"; }

int mofo_data_format_parse(const char *name, mofo_data_format *out) {
    for (int i = 0; i < 7; i++)
        if (strcmp(name, FMT_NAMES[i]) == 0) {
            *out = (mofo_data_format)i;
            return 0;
        }
    return -1;
}

const char *mofo_data_format_name(mofo_data_format f) { return (unsigned)f < 7 ? FMT_NAMES[f] : "?"; }

mofo_data_format mofo_data_format_detect(const mofo_json *o) {
    if (mofo_json_get(o, "messages")) return MOFO_FMT_MESSAGES;
    if (mofo_json_get(o, "input_ids")) return MOFO_FMT_TOKENS;
    if (mofo_json_get(o, "prompt") || mofo_json_get(o, "completion")) return MOFO_FMT_PROMPT_COMPLETION;
    if (mofo_json_get(o, "instruction")) return MOFO_FMT_ALPACA;
    if (mofo_json_get(o, "query")) return MOFO_FMT_METAMATH;
    if (mofo_json_get(o, "text")) return MOFO_FMT_TEXT;
    return MOFO_FMT_AUTO;
}

void mofo_example_free(mofo_example *ex) {
    free(ex->ids);
    ex->ids = ex->labels = NULL;
    ex->len = 0;
}

void mofo_dataset_free(mofo_dataset *ds) {
    for (size_t i = 0; i < ds->n; i++) mofo_example_free(&ds->ex[i]);
    free(ds->ex);
    memset(ds, 0, sizeof *ds);
}

static int example_alloc(mofo_example *ex, size_t len) {
    ex->ids = malloc((len ? len : 1) * 2 * sizeof *ex->ids);
    if (!ex->ids) return -1;
    ex->labels = ex->ids + len;
    ex->len = (int32_t)len;
    return 0;
}

/* ---- conversations and templates ---- */

enum { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT };

typedef struct {
    int role;
    const char *s;
    size_t n;
} msg;

typedef struct {
    mofo_strbuf text;
    size_t spans[2 * 256]; /* trained byte ranges [s, e) of text */
    size_t nspans;
} render;

/* The built-in templates (dataset.h) in transformers' Jinja; {% generation %} marks the trained
 * text. tulu is open-instruct's template with that mark. */
static const char *const BUILTIN_SRC[] = {
    [MOFO_TPL_TULU] =
        "{% for m in messages %}{% if m.role == 'system' %}{{ '<|system|>\n' + m.content + '\n' }}"
        "{% elif m.role == 'user' %}{{ '<|user|>\n' + m.content + '\n' }}"
        "{% else %}{{ '<|assistant|>\n' }}{% generation %}{{ m.content + eos_token }}{% endgeneration %}"
        "{% if not loop.last %}{{ '\n' }}{% endif %}{% endif %}"
        "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}{% endfor %}",
    [MOFO_TPL_CHATML] =
        "{% for m in messages %}{{ '<|im_start|>' + m.role + '\n' }}{% if m.role == 'assistant' %}"
        "{% generation %}{{ m.content + '<|im_end|>' }}{% endgeneration %}{% else %}{{ m.content + '<|im_end|>' }}"
        "{% endif %}{{ '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    [MOFO_TPL_LLAMA2] =
        "{% if messages[0].role == 'system' %}{% set sys = messages[0].content %}{% set loop_messages = messages[1:] %}"
        "{% else %}{% set loop_messages = messages %}{% endif %}{% for m in loop_messages %}"
        "{% if m.role == 'system' %}{{ raise_exception('llama2 takes a system message only first') }}"
        "{% elif m.role == 'user' %}{{ bos_token + '[INST] ' }}{% if loop.first and sys is defined %}"
        "{{ '<<SYS>>\n' + sys + '\n<</SYS>>\n\n' }}{% endif %}{{ m.content + ' [/INST]' }}"
        "{% else %}{{ ' ' }}{% generation %}{{ m.content + ' ' + eos_token }}{% endgeneration %}{% endif %}{% endfor %}",
    [MOFO_TPL_PLAIN] = ("{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content + eos_token }}"
                        "{% endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}"),
};

const char *mofo_chat_template_source(mofo_chat_template t) {
    return (unsigned)t < sizeof BUILTIN_SRC / sizeof BUILTIN_SRC[0] ? BUILTIN_SRC[t] : NULL;
}

int mofo_chat_builtin(mofo_chat **out, mofo_chat_template t, const char *bos, const char *eos, mofo_err *err) {
    const char *src = mofo_chat_template_source(t);
    *out = NULL;
    if (!src) return mofo_errf(err, MOFO_EINVAL, "\"%s\" is not a built-in chat template", mofo_chat_template_name(t));
    if (!eos && t != MOFO_TPL_CHATML)
        return mofo_errf(err, MOFO_EINVAL, "the tokenizer has no EOS token (set eos_token in tokenizer_config.json)");
    return mofo_chat_from_source(out, src, strlen(src), mofo_chat_template_name(t), bos ? bos : "", eos, NULL, 0, err);
}

int mofo_chat_for(mofo_chat **out, mofo_chat_template t, const mofo_tokenizer *tok, mofo_err *err) {
    size_t bn = 0, en = 0;
    const char *b = tok ? mofo_tokenizer_token(tok, mofo_tokenizer_bos(tok), &bn) : NULL;
    const char *e = tok ? mofo_tokenizer_token(tok, mofo_tokenizer_eos(tok), &en) : NULL;
    char *bos = b ? strndup(b, bn) : NULL, *eos = e ? strndup(e, en) : NULL;
    int rc = (b && !bos) || (e && !eos) ? mofo_errf(err, MOFO_ENOMEM, "out of memory") : mofo_chat_builtin(out, t, bos, eos, err);
    free(bos);
    free(eos);
    return rc;
}

/* messages (a JSON array) rendered by chat, its trained bytes made spans */
static int render_messages(render *r, const mofo_chat *chat, const mofo_json *messages, mofo_err *err) {
    mofo_strbuf mask = {0};
    int rc = mofo_chat_render(chat, messages, 0, NULL, &r->text, &mask, err);
    for (size_t i = 0; !rc && i < mask.len;) {
        if (!mask.data[i]) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < mask.len && mask.data[j]) j++;
        if (r->nspans == 256) rc = mofo_errf(err, MOFO_EFORMAT, "more than 256 assistant turns");
        else r->spans[2 * r->nspans] = i, r->spans[2 * r->nspans + 1] = j, r->nspans++;
        i = j;
    }
    mofo_sb_free(&mask);
    return rc;
}

/* messages m[0..nm) as the JSON array a template reads */
static mofo_json_doc *messages_json(const msg *m, size_t nm, mofo_err *err) {
    static const char *roles[] = {"system", "user", "assistant"};
    mofo_strbuf sb = {0};
    mofo_sb_puts(&sb, "[");
    for (size_t i = 0; i < nm; i++) {
        mofo_sb_printf(&sb, "%s{\"role\": \"%s\", \"content\": ", i ? ", " : "", roles[m[i].role]);
        mofo_sb_json_string(&sb, m[i].s, m[i].n);
        mofo_sb_puts(&sb, "}");
    }
    mofo_sb_puts(&sb, "]");
    mofo_json_doc *d = sb.failed ? NULL : mofo_json_parse(sb.data, sb.len, err);
    if (sb.failed) mofo_errf(err, MOFO_ENOMEM, "out of memory");
    mofo_sb_free(&sb);
    return d;
}

/* Tokenizes the rendered text; labels = ids on tokens overlapping a trained span, else -100. */
static int encode_render(const render *r, const mofo_tokenizer *tok, int add_bos, mofo_example *ex, mofo_err *err) {
    mofo_ids ids = {0};
    ids.want_offsets = 1;
    int rc = mofo_tokenizer_encode(tok, r->text.data ? r->text.data : "", r->text.len, 0, &ids, err);
    if (rc) {
        mofo_ids_free(&ids);
        return rc;
    }
    size_t nb = add_bos ? 1 : 0;
    if (example_alloc(ex, ids.len + nb)) {
        mofo_ids_free(&ids);
        return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    }
    if (nb) {
        ex->ids[0] = mofo_tokenizer_bos(tok);
        ex->labels[0] = MOFO_IGNORE_INDEX;
    }
    size_t k = 0;
    for (size_t i = 0; i < ids.len; i++) {
        size_t s = (size_t)ids.start[i], e = (size_t)ids.end[i];
        while (k > 0 && r->spans[2 * (k - 1) + 1] > s) k--; /* NFC may reorder marks: starts can go back */
        while (k < r->nspans && r->spans[2 * k + 1] <= s) k++;
        int trained = k < r->nspans && e > s && s < r->spans[2 * k + 1] && e > r->spans[2 * k];
        ex->ids[nb + i] = ids.ids[i];
        ex->labels[nb + i] = trained ? ids.ids[i] : MOFO_IGNORE_INDEX;
    }
    mofo_ids_free(&ids);
    return 0;
}

static const mofo_json *need(const mofo_json *o, const char *key, mofo_json_type type, mofo_err *err) {
    const mofo_json *v = mofo_json_get(o, key);
    if (!v) {
        mofo_errf(err, MOFO_EFORMAT, "missing field \"%s\"", key);
        return NULL;
    }
    if (v->type != type) {
        mofo_errf(err, MOFO_EFORMAT, "field \"%s\" is %s %s, expected %s %s", key,
                  v->type == MOFO_JSON_ARRAY || v->type == MOFO_JSON_OBJECT ? "an" : "a", mofo_json_type_name(v->type),
                  type == MOFO_JSON_ARRAY || type == MOFO_JSON_OBJECT ? "an" : "a", mofo_json_type_name(type));
        return NULL;
    }
    return v;
}

static int tokens_example(const mofo_json *o, const mofo_tokenizer *tok, mofo_example *ex, mofo_err *err) {
    const mofo_json *ids = need(o, "input_ids", MOFO_JSON_ARRAY, err), *labels = mofo_json_get(o, "labels");
    if (!ids) return MOFO_EFORMAT;
    if (labels && labels->type == MOFO_JSON_NULL) labels = NULL;
    if (labels && labels->type != MOFO_JSON_ARRAY)
        return mofo_errf(err, MOFO_EFORMAT, "field \"labels\" is a %s, expected an array", mofo_json_type_name(labels->type));
    if (labels && labels->count != ids->count)
        return mofo_errf(err, MOFO_EFORMAT, "\"labels\" has %zu entries but \"input_ids\" has %zu", labels->count, ids->count);
    if (ids->count == 0) return mofo_errf(err, MOFO_EFORMAT, "\"input_ids\" is empty");
    int64_t V = tok ? mofo_tokenizer_vocab_size(tok) : INT32_MAX;
    if (example_alloc(ex, ids->count)) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    const mofo_json *x = ids->child, *y = labels ? labels->child : NULL;
    for (size_t i = 0; x; i++, x = x->next) {
        int64_t v, l;
        if (!mofo_json_int64(x, &v) || v < 0 || v >= V) {
            mofo_example_free(ex);
            return mofo_errf(err, MOFO_EFORMAT, "input_ids[%zu] is not an id in [0, %lld)", i, (long long)V);
        }
        ex->ids[i] = (int32_t)v;
        ex->labels[i] = (int32_t)v;
        if (y) {
            if (!mofo_json_int64(y, &l) || (l != MOFO_IGNORE_INDEX && (l < 0 || l >= V))) {
                mofo_example_free(ex);
                return mofo_errf(err, MOFO_EFORMAT, "labels[%zu] is neither -100 nor an id in [0, %lld)", i, (long long)V);
            }
            ex->labels[i] = (int32_t)l;
            y = y->next;
        }
    }
    return 0;
}

int mofo_example_from_json(const mofo_json *o, mofo_data_format fmt, const mofo_tokenizer *tok, const mofo_data_opts *opt,
                           mofo_example *ex, mofo_err *err) {
    mofo_chat_template tpl = opt->tpl;
    memset(ex, 0, sizeof *ex);
    if (!o || o->type != MOFO_JSON_OBJECT) return mofo_errf(err, MOFO_EFORMAT, "the line is not a JSON object");
    if (fmt == MOFO_FMT_TOKENS) return tokens_example(o, tok, ex, err);
    if (!tok) return mofo_errf(err, MOFO_EINVAL, "a tokenizer is needed for the %s format", mofo_data_format_name(fmt));
    if (fmt == MOFO_FMT_TEXT) {
        const mofo_json *t = need(o, "text", MOFO_JSON_STRING, err);
        if (!t) return MOFO_EFORMAT;
        mofo_ids ids = {0};
        int rc = mofo_tokenizer_encode(tok, t->str, t->len, 1, &ids, err);
        if (rc) {
            mofo_ids_free(&ids);
            return rc;
        }
        if (example_alloc(ex, ids.len)) {
            mofo_ids_free(&ids);
            return mofo_errf(err, MOFO_ENOMEM, "out of memory");
        }
        memcpy(ex->ids, ids.ids, ids.len * sizeof *ids.ids);
        memcpy(ex->labels, ids.ids, ids.len * sizeof *ids.ids);
        mofo_ids_free(&ids);
        return 0;
    }
    msg stack[2], *m = stack;
    size_t nm = 0;
    const mofo_json *list = NULL;
    mofo_strbuf user = {0};
    int rc = 0;
    if (fmt == MOFO_FMT_MESSAGES) {
        list = need(o, "messages", MOFO_JSON_ARRAY, err);
        if (!list) return MOFO_EFORMAT;
        if (list->count == 0) return mofo_errf(err, MOFO_EFORMAT, "\"messages\" is empty");
        m = malloc(list->count * sizeof *m);
        if (!m) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
        int has_assistant = 0;
        for (const mofo_json *c = list->child; c && !rc; c = c->next, nm++) {
            const mofo_json *role = mofo_json_get(c, "role"), *content = mofo_json_get(c, "content");
            if (c->type != MOFO_JSON_OBJECT) rc = mofo_errf(err, MOFO_EFORMAT, "messages[%zu] is not an object", nm);
            else if (!role) rc = mofo_errf(err, MOFO_EFORMAT, "messages[%zu]: missing field \"role\"", nm);
            else if (!content) rc = mofo_errf(err, MOFO_EFORMAT, "messages[%zu]: missing field \"content\"", nm);
            else if (content->type != MOFO_JSON_STRING)
                rc = mofo_errf(err, MOFO_EFORMAT, "messages[%zu]: field \"content\" is a %s, expected a string", nm, mofo_json_type_name(content->type));
            else if (role->type != MOFO_JSON_STRING || (strcmp(role->str, "system") && strcmp(role->str, "user") && strcmp(role->str, "assistant")))
                rc = mofo_errf(err, MOFO_EFORMAT, "messages[%zu]: role %s%.40s%s is not \"system\", \"user\" or \"assistant\"", nm,
                               role->type == MOFO_JSON_STRING ? "\"" : "", role->type == MOFO_JSON_STRING ? role->str : mofo_json_type_name(role->type),
                               role->type == MOFO_JSON_STRING ? "\"" : "");
            else {
                int r = role->str[0] == 's' ? ROLE_SYSTEM : role->str[0] == 'u' ? ROLE_USER : ROLE_ASSISTANT;
                has_assistant |= r == ROLE_ASSISTANT;
                m[nm] = (msg){r, content->str, content->len};
            }
        }
        if (!rc && !has_assistant) rc = mofo_errf(err, MOFO_EFORMAT, "no assistant message in \"messages\"");
    } else {
        const char *ku = fmt == MOFO_FMT_PROMPT_COMPLETION ? "prompt" : fmt == MOFO_FMT_ALPACA ? "instruction" : "query";
        const char *ka = fmt == MOFO_FMT_PROMPT_COMPLETION ? "completion" : fmt == MOFO_FMT_ALPACA ? "output" : "response";
        const mofo_json *u = need(o, ku, MOFO_JSON_STRING, err), *a = u ? need(o, ka, MOFO_JSON_STRING, err) : NULL;
        if (!u || !a) return MOFO_EFORMAT;
        m[0] = (msg){ROLE_USER, u->str, u->len};
        m[1] = (msg){ROLE_ASSISTANT, a->str, a->len};
        nm = 2;
        if (fmt == MOFO_FMT_ALPACA) {
            const mofo_json *in = mofo_json_get(o, "input");
            if (in && in->type != MOFO_JSON_STRING && in->type != MOFO_JSON_NULL)
                return mofo_errf(err, MOFO_EFORMAT, "field \"input\" is a %s, expected a string", mofo_json_type_name(in->type));
            if (in && in->type == MOFO_JSON_STRING && in->len > 0) {
                mofo_sb_append(&user, u->str, u->len);
                mofo_sb_puts(&user, "\n\n");
                mofo_sb_append(&user, in->str, in->len);
                if (user.failed) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
                m[0].s = user.data;
                m[0].n = user.len;
            }
        }
    }
    render r;
    r.text = (mofo_strbuf){0};
    r.nspans = 0;
    /* the model's template, or a built-in one (made here when the caller has none at hand) */
    const mofo_chat *chat = opt->chat;
    mofo_chat *own = NULL;
    if (!rc && !chat && tpl == MOFO_TPL_MODEL)
        rc = mofo_errf(err, MOFO_EINVAL, "the template \"model\" needs the model's chat template");
    if (!rc && !chat && !(rc = mofo_chat_for(&own, tpl, tok, err))) chat = own;
    if (!rc) {
        /* the messages as written (a template may read more fields than role and content) */
        mofo_json_doc *d = list ? NULL : messages_json(m, nm, err);
        if (!list && !d) rc = err ? err->code : MOFO_ENOMEM;
        if (!rc) rc = render_messages(&r, chat, list ? list : mofo_json_root(d), err);
        mofo_json_free(d);
    }
    mofo_chat_free(own);
    int add_bos = tpl != MOFO_TPL_LLAMA2 && tpl != MOFO_TPL_MODEL && mofo_tokenizer_adds_bos(tok) && mofo_tokenizer_bos(tok) >= 0;
    if (!rc) rc = encode_render(&r, tok, add_bos, ex, err);
    mofo_sb_free(&r.text);
    mofo_sb_free(&user);
    if (m != stack) free(m);
    return rc;
}

/* ---- files ---- */

static int push_example(mofo_dataset *ds, const mofo_example *ex) {
    if (ds->n == ds->cap) {
        size_t cap = ds->cap ? ds->cap * 2 : 64;
        mofo_example *p = realloc(ds->ex, cap * sizeof *p);
        if (!p) return -1;
        ds->ex = p;
        ds->cap = cap;
    }
    ds->ex[ds->n++] = *ex;
    return 0;
}

static int has_trained(const mofo_example *ex) {
    for (int32_t i = 1; i < ex->len; i++)
        if (ex->labels[i] != MOFO_IGNORE_INDEX) return 1;
    return 0;
}

typedef struct {
    const char *s;
    size_t n;
    int line;
} jl_line;

typedef struct {
    mofo_example ex;
    int rc;
    char *msg; /* malloc'd when rc != 0 */
} jl_result;

/* One line -> one example. fmt AUTO: the line comes before any line whose fields name a format. */
static int parse_line(const jl_line *l, mofo_data_format fmt, const mofo_tokenizer *tok, const mofo_data_opts *o,
                      mofo_example *ex, mofo_err *e) {
    size_t bad_at;
    if (!mofo_utf8_valid(l->s, l->n, &bad_at)) return mofo_errf(e, MOFO_EFORMAT, "invalid UTF-8 at byte %zu of the line", bad_at + 1);
    mofo_json_doc *doc = mofo_json_parse(l->s, l->n, e);
    if (!doc) {
        /* the reader says "line 1, column C: reason" */
        char why[MOFO_ERR_MSG_MAX];
        const char *m = strncmp(e->msg, "line 1, ", 8) == 0 ? e->msg + 8 : e->msg;
        snprintf(why, sizeof why, "bad JSON: %.400s", m);
        return mofo_errf(e, MOFO_EFORMAT, "%s", why);
    }
    const mofo_json *root = mofo_json_root(doc);
    int rc;
    if (root->type != MOFO_JSON_OBJECT)
        rc = mofo_errf(e, MOFO_EFORMAT, "the line is a JSON %s, not an object", mofo_json_type_name(root->type));
    else if (fmt == MOFO_FMT_AUTO)
        rc = mofo_errf(e, MOFO_EFORMAT, "no known fields (expected \"messages\", \"prompt\"/\"completion\", "
                                        "\"instruction\"/\"output\", \"query\"/\"response\", \"text\" or \"input_ids\")");
    else
        rc = mofo_example_from_json(root, fmt, tok, o, ex, e);
    mofo_json_free(doc);
    return rc;
}

static mofo_data_format detect_line(const jl_line *l) {
    mofo_data_format f = MOFO_FMT_AUTO;
    if (!mofo_utf8_valid(l->s, l->n, NULL)) return f;
    mofo_json_doc *doc = mofo_json_parse(l->s, l->n, NULL);
    if (doc && mofo_json_root(doc)->type == MOFO_JSON_OBJECT) f = mofo_data_format_detect(mofo_json_root(doc));
    mofo_json_free(doc);
    return f;
}

int mofo_dataset_load_buffer(mofo_dataset *ds, const char *name, const char *text, size_t len, const mofo_tokenizer *tok,
                             const mofo_data_opts *o, mofo_err *err) {
    mofo_data_opts dflt = {0};
    if (!o) o = &dflt;
    /* the non-blank lines */
    jl_line *lines = NULL;
    size_t nl = 0, cap = 0;
    size_t pos = len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0; /* a UTF-8 byte order mark */
    int line = 0;
    while (pos < len) {
        const char *eol = memchr(text + pos, '\n', len - pos);
        size_t end = eol ? (size_t)(eol - text) : len;
        const char *s = text + pos;
        size_t n = end - pos, k = 0;
        pos = eol ? end + 1 : len;
        line++;
        while (k < n && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r')) k++;
        if (k == n) continue;
        if (nl == cap) {
            cap = cap ? 2 * cap : 1024;
            jl_line *p = realloc(lines, cap * sizeof *p);
            if (!p) {
                free(lines);
                return mofo_errf(err, MOFO_ENOMEM, "%s: out of memory", name);
            }
            lines = p;
        }
        lines[nl++] = (jl_line){s, n, line};
    }
    /* the format: given, kept from an earlier file, or named by the first line that names one;
     * the lines before that one have no known fields */
    mofo_data_format fmt = o->format != MOFO_FMT_AUTO ? o->format : ds->format;
    size_t first = 0;
    if (fmt == MOFO_FMT_AUTO)
        for (first = 0; first < nl && (fmt = detect_line(&lines[first])) == MOFO_FMT_AUTO; first++) {
        }
    if (fmt != MOFO_FMT_AUTO) ds->format = fmt;
    /* a built-in template, made once for all lines */
    mofo_data_opts oo = *o;
    mofo_chat *own = NULL;
    int chat_fmt = fmt == MOFO_FMT_MESSAGES || fmt == MOFO_FMT_PROMPT_COMPLETION || fmt == MOFO_FMT_ALPACA || fmt == MOFO_FMT_METAMATH;
    if (!o->chat && o->tpl != MOFO_TPL_MODEL && chat_fmt && tok && first < nl) {
        int rc = mofo_chat_for(&own, o->tpl, tok, err);
        if (rc) {
            int ln = lines[first].line; /* the first line that needs the template */
            free(lines);
            return mofo_err_prefix(err, "%s:%d", name, ln);
        }
        oo.chat = own;
    }
    o = &oo;
    jl_result *res = calloc(nl ? nl : 1, sizeof *res);
    if (!res) {
        mofo_chat_free(own);
        free(lines);
        return mofo_errf(err, MOFO_ENOMEM, "%s: out of memory", name);
    }
    /* tokenize in parallel; results are used in line order below */
#pragma omp parallel for schedule(dynamic, 16)
    for (long i = 0; i < (long)nl; i++) {
        mofo_err e = {0};
        res[i].rc = parse_line(&lines[i], (size_t)i < first ? MOFO_FMT_AUTO : fmt, tok, o, &res[i].ex, &e);
        if (res[i].rc) {
            size_t m = strlen(e.msg) + 1;
            res[i].msg = malloc(m);
            if (res[i].msg) memcpy(res[i].msg, e.msg, m);
        }
    }
    int rc = 0;
    size_t i;
    for (i = 0; i < nl && !rc; i++) {
        jl_result *r = &res[i];
        int ln = lines[i].line;
        ds->n_lines++;
        if (r->rc == MOFO_ENOMEM || r->rc == MOFO_EINVAL || (r->rc && !o->skip_bad)) {
            rc = mofo_errf(err, r->rc, "%s:%d: %s", name, ln, r->msg ? r->msg : "out of memory");
            break;
        }
        if (r->rc) {
            if (ds->n_bad++ == 0) snprintf(ds->first_bad, sizeof ds->first_bad, "%s:%d: %.400s", name, ln, r->msg ? r->msg : "?");
            continue;
        }
        mofo_example ex = r->ex;
        r->ex.ids = NULL; /* taken */
        ex.line = ln;
        if (o->max_len > 0 && ex.len > o->max_len) {
            ex.len = o->max_len; /* labels stay at ids + the old length, in the same allocation */
            ds->n_truncated++;
        }
        if (!has_trained(&ex)) {
            if (ds->n_no_response++ == 0) ds->first_no_response = ln;
            mofo_example_free(&ex);
            continue;
        }
        if (push_example(ds, &ex)) {
            mofo_example_free(&ex);
            rc = mofo_errf(err, MOFO_ENOMEM, "%s:%d: out of memory", name, ln);
        }
    }
    for (i = 0; i < nl; i++) {
        mofo_example_free(&res[i].ex);
        free(res[i].msg);
    }
    free(res);
    free(lines);
    mofo_chat_free(own);
    return rc;
}

int mofo_dataset_load(mofo_dataset *ds, const char *path, const mofo_tokenizer *tok, const mofo_data_opts *o, mofo_err *err) {
    char *data;
    size_t len;
    int rc = mofo_read_file(path, &data, &len, err);
    if (rc) return rc;
    rc = mofo_dataset_load_buffer(ds, path, data, len, tok, o, err);
    free(data);
    return rc;
}

/* ---- order, split, packing, batches ---- */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* uniform in [0, n) without modulo bias */
static uint64_t below(uint64_t *s, uint64_t n) {
    uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;
    do x = splitmix64(s);
    while (x >= lim);
    return x % n;
}

void mofo_dataset_shuffle(mofo_dataset *ds, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = ds->n; i > 1; i--) {
        size_t j = (size_t)below(&s, i);
        mofo_example t = ds->ex[i - 1];
        ds->ex[i - 1] = ds->ex[j];
        ds->ex[j] = t;
    }
}

int mofo_dataset_split(mofo_dataset *ds, mofo_dataset *held, double fraction, uint64_t seed, mofo_err *err) {
    if (!(fraction >= 0 && fraction < 1)) return mofo_errf(err, MOFO_EINVAL, "held-out fraction %g is not in [0, 1)", fraction);
    mofo_dataset_shuffle(ds, seed);
    size_t k = (size_t)(fraction * (double)ds->n);
    if (fraction > 0 && k == 0 && ds->n >= 2) k = 1;
    if (k == 0) return 0;
    held->ex = malloc(k * sizeof *held->ex);
    if (!held->ex) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    memcpy(held->ex, ds->ex + ds->n - k, k * sizeof *held->ex);
    held->n = held->cap = k;
    held->format = ds->format;
    ds->n -= k;
    return 0;
}

int mofo_dataset_pack(const mofo_dataset *in, int32_t T, mofo_dataset *out, mofo_err *err) {
    if (T < 2) return mofo_errf(err, MOFO_EINVAL, "packing: row length %d is below 2", (int)T);
    size_t total = 0;
    for (size_t i = 0; i < in->n; i++) total += (size_t)in->ex[i].len;
    out->format = in->format;
    mofo_example row = {0};
    int32_t fill = 0;
    for (size_t i = 0, r = 0; i < in->n; i++) {
        const mofo_example *e = &in->ex[i];
        for (int32_t k = 0; k < e->len; k++) {
            if (!row.ids) {
                size_t left = total - r * (size_t)T;
                if (example_alloc(&row, left < (size_t)T ? left : (size_t)T)) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
                fill = 0;
            }
            row.ids[fill] = e->ids[k];
            row.labels[fill] = k == 0 ? MOFO_IGNORE_INDEX : e->labels[k];
            if (++fill == row.len) {
                if (push_example(out, &row)) {
                    mofo_example_free(&row);
                    return mofo_errf(err, MOFO_ENOMEM, "out of memory");
                }
                memset(&row, 0, sizeof row);
                r++;
            }
        }
    }
    return 0;
}

void mofo_batch_free(mofo_batch *b) {
    free(b->ids);
    free(b->labels);
    free(b->len);
    memset(b, 0, sizeof *b);
}

int mofo_batch_fill(mofo_batch *b, const mofo_dataset *ds, size_t first, int B, int T, int32_t pad_id, mofo_err *err) {
    if (ds->n == 0) return mofo_errf(err, MOFO_EINVAL, "batch: the data set is empty");
    if (B < 1) return mofo_errf(err, MOFO_EINVAL, "batch: B = %d", B);
    if (T <= 0) {
        T = 1;
        for (int i = 0; i < B; i++) {
            const mofo_example *e = &ds->ex[(first + (size_t)i) % ds->n];
            if (e->len > T) T = e->len;
        }
    }
    size_t need = (size_t)B * (size_t)T;
    if (need > b->cap || !b->len || b->B < B) {
        free(b->ids);
        free(b->labels);
        free(b->len);
        b->ids = malloc(need * sizeof *b->ids);
        b->labels = malloc(need * sizeof *b->labels);
        b->len = malloc((size_t)B * sizeof *b->len);
        b->cap = need;
        if (!b->ids || !b->labels || !b->len) {
            mofo_batch_free(b);
            return mofo_errf(err, MOFO_ENOMEM, "batch: out of memory");
        }
    }
    b->B = B;
    b->T = T;
    for (int i = 0; i < B; i++) {
        const mofo_example *e = &ds->ex[(first + (size_t)i) % ds->n];
        int32_t n = e->len < T ? e->len : T;
        int32_t *ids = b->ids + (size_t)i * (size_t)T, *lab = b->labels + (size_t)i * (size_t)T;
        memcpy(ids, e->ids, (size_t)n * sizeof *ids);
        memcpy(lab, e->labels, (size_t)n * sizeof *lab);
        for (int32_t t = n; t < T; t++) {
            ids[t] = pad_id;
            lab[t] = MOFO_IGNORE_INDEX;
        }
        b->len[i] = n;
    }
    return 0;
}

/* Evaluation tasks (see eval.h). */
#include "eval/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "io/strbuf.h"
#include "model/infer.h"
#include "backend/backend.h"
#include "text/utf8.h"

/* ---- JSONL ---- */

typedef int (*line_fn)(void *ctx, const mofo_json *obj, mofo_err *err);

/* Calls fn on each non-blank line's object; errors become "PATH:LINE: ...". */
static int each_line(const char *path, line_fn fn, void *ctx, long *n_lines, mofo_err *err) {
    char *data = NULL;
    size_t len = 0;
    int rc = mofo_read_file(path, &data, &len, err);
    if (rc) return rc;
    long line = 0, used = 0;
    size_t i = 0;
    while (!rc && i < len) {
        size_t e = i;
        while (e < len && data[e] != '\n') e++;
        line++;
        int blank = 1;
        for (size_t k = i; k < e && blank; k++) blank = data[k] == ' ' || data[k] == '\t' || data[k] == '\r';
        if (!blank) {
            mofo_json_doc *doc = mofo_json_parse(data + i, e - i, err);
            if (!doc) {
                rc = mofo_err_prefix(err, "%s:%ld", path, line);
            } else {
                const mofo_json *root = mofo_json_root(doc);
                if (root->type != MOFO_JSON_OBJECT)
                    rc = mofo_errf(err, MOFO_EFORMAT, "%s:%ld: a JSON %s, not an object", path, line,
                                   mofo_json_type_name(root->type));
                else if ((rc = fn(ctx, root, err)))
                    mofo_err_prefix(err, "%s:%ld", path, line);
                used++;
                mofo_json_free(doc);
            }
        }
        i = e + 1;
    }
    free(data);
    if (!rc && used == 0) rc = mofo_errf(err, MOFO_EFORMAT, "%s: no JSON line", path);
    if (n_lines) *n_lines = used;
    return rc;
}

static int get_str(const mofo_json *obj, const char *key, const char **s, size_t *n, mofo_err *err) {
    const mofo_json *v = mofo_json_get(obj, key);
    if (!v) return mofo_errf(err, MOFO_EFORMAT, "missing field \"%s\"", key);
    if (v->type != MOFO_JSON_STRING)
        return mofo_errf(err, MOFO_EFORMAT, "field \"%s\" is a %s, not a string", key, mofo_json_type_name(v->type));
    *s = v->str;
    *n = v->len;
    return 0;
}

/* ---- prompts ---- */

static void put_bos(const mofo_tokenizer *tok, mofo_strbuf *sb) {
    int32_t bos = mofo_tokenizer_bos(tok);
    size_t n = 0;
    const char *t = bos >= 0 ? mofo_tokenizer_token(tok, bos, &n) : NULL;
    if (t) mofo_sb_append(sb, t, n);
}

int mofo_prompt_ids(const mofo_tokenizer *tok, const char *prompt, size_t len, int tpl, const mofo_chat *chat, int add_bos,
                    mofo_ids *out, mofo_err *err) {
    if (tpl < 0) {
        int32_t bos = mofo_tokenizer_bos(tok);
        if (add_bos && bos >= 0) {
            if (out->len == out->cap) {
                size_t cap = out->cap ? 2 * out->cap : 16;
                int32_t *ni = realloc(out->ids, cap * sizeof *ni);
                if (!ni) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
                out->ids = ni;
                out->cap = cap;
            }
            out->ids[out->len++] = bos;
        }
        return mofo_tokenizer_encode(tok, prompt, len, 0, out, err);
    }
    mofo_strbuf sb = {0};
    {
        /* one user turn rendered with add_generation_prompt; BOS as the data sets have it */
        mofo_chat *own = NULL;
        int rc = 0;
        if (tpl == MOFO_TPL_MODEL && !chat) rc = mofo_errf(err, MOFO_EINVAL, "the template \"model\" needs the model's chat template");
        else if (tpl != MOFO_TPL_MODEL) rc = mofo_chat_for(&own, (mofo_chat_template)tpl, tok, err);
        mofo_strbuf conv = {0};
        mofo_sb_puts(&conv, "[{\"role\": \"user\", \"content\": ");
        mofo_sb_json_string(&conv, prompt, len);
        mofo_sb_puts(&conv, "}]");
        mofo_json_doc *d = rc || conv.failed ? NULL : mofo_json_parse(conv.data, conv.len, err);
        if (!rc && !d) rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
        if (!rc && tpl != MOFO_TPL_LLAMA2 && tpl != MOFO_TPL_MODEL && mofo_tokenizer_adds_bos(tok)) put_bos(tok, &sb);
        if (!rc) rc = mofo_chat_render(own ? own : chat, mofo_json_root(d), 1, NULL, &sb, NULL, err);
        mofo_json_free(d);
        mofo_sb_free(&conv);
        mofo_chat_free(own);
        if (rc) {
            mofo_sb_free(&sb);
            return rc;
        }
    }
    int rc = sb.failed ? mofo_errf(err, MOFO_ENOMEM, "out of memory")
                       : mofo_tokenizer_encode(tok, sb.data ? sb.data : "", sb.len, 0, out, err);
    mofo_sb_free(&sb);
    return rc;
}

/* ---- perplexity ---- */

typedef struct {
    mofo_model *m;
    const mofo_tokenizer *tok;
    mofo_ppl_result *r;
} ppl_ctx;

/* nll of ids[1..n) given the ones before, in windows of at most W tokens sharing one token */
static int nll_windows(mofo_model *m, const int32_t *ids, size_t n, double *nll, long *count, mofo_err *err) {
    int W = m->cfg.max_T < 1024 ? m->cfg.max_T : 1024;
    if (W < 2) W = 2;
    int *in = malloc(sizeof(int) * (size_t)W), *tg = malloc(sizeof(int) * (size_t)W);
    float *losses = malloc(sizeof(float) * (size_t)W);
    int rc = !in || !tg || !losses ? mofo_errf(err, MOFO_ENOMEM, "out of memory") : 0;
    for (size_t s = 0; !rc && s + 1 < n; s += (size_t)W - 1) {
        int T = (int)(n - s < (size_t)W ? n - s : (size_t)W);
        for (int t = 0; t < T; t++) {
            in[t] = ids[s + t];
            tg[t] = t + 1 < T ? ids[s + t + 1] : MOFO_IGNORE_INDEX;
        }
        float loss;
        rc = mofo_model_eval(m, in, tg, 1, T, &loss, err);
        if (!rc) rc = mofo_model_token_losses(m, losses, err);
        if (!rc) {
            for (int t = 0; t < T - 1; t++) *nll += losses[t];
            *count += T - 1;
        }
    }
    free(in);
    free(tg);
    free(losses);
    return rc;
}

static int ppl_line(void *vctx, const mofo_json *obj, mofo_err *err) {
    ppl_ctx *c = vctx;
    const char *s = NULL;
    size_t n = 0;
    int rc = get_str(obj, "text", &s, &n, err);
    if (rc) return rc;
    mofo_ids v = {0};
    rc = mofo_tokenizer_encode(c->tok, s, n, 1, &v, err);
    if (!rc) rc = nll_windows(c->m, v.ids, v.len, &c->r->nll, &c->r->tokens, err);
    mofo_ids_free(&v);
    c->r->docs++;
    return rc;
}

int mofo_eval_ppl(mofo_model *m, const mofo_tokenizer *tok, const char *path, mofo_ppl_result *r, mofo_err *err) {
    memset(r, 0, sizeof *r);
    ppl_ctx c = {m, tok, r};
    int rc = each_line(path, ppl_line, &c, NULL, err);
    if (!rc && r->tokens == 0) rc = mofo_errf(err, MOFO_EFORMAT, "%s: no text of 2 tokens or more to predict", path);
    return rc;
}

/* ---- multiple choice ---- */

static int is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f'; }

/* The token sequence of context + continuation as lm-evaluation-harness splits it: *seq (malloc'd,
 * *S tokens) of which the first *n_ctx are the context's (BOS included where added). */
static int loglik_seq(const mofo_tokenizer *tok, const char *context, size_t ctx_len, const char *cont,
                      size_t cont_len, int add_bos, int **seq_out, size_t *S_out, size_t *n_ctx_out, mofo_err *err) {
    size_t cl = ctx_len;
    while (cl > 0 && is_space(context[cl - 1])) cl--;
    mofo_strbuf whole = {0};
    mofo_sb_append(&whole, context, ctx_len); /* context[0..cl) + its trailing spaces + continuation */
    mofo_sb_append(&whole, cont, cont_len);
    if (whole.failed) {
        mofo_sb_free(&whole);
        return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    }
    mofo_ids ctx = {0}, all = {0};
    int32_t bos = mofo_tokenizer_bos(tok), prefix = bos >= 0 ? bos : mofo_tokenizer_eos(tok);
    int rc = 0;
    size_t n_ctx = 0;
    int *seq = NULL;
    size_t S = 0;
    if (cl == 0) {
        /* an empty context: the prefix token, then the continuation (with the context's spaces) */
        if (prefix < 0) rc = mofo_errf(err, MOFO_EINVAL, "an empty context and a tokenizer without BOS or EOS");
        if (!rc) rc = mofo_tokenizer_encode(tok, whole.data ? whole.data : "", whole.len, 0, &all, err);
        n_ctx = 1;
        if (!rc && (seq = malloc(sizeof(int) * (all.len + 1)))) {
            seq[S++] = prefix;
            for (size_t i = 0; i < all.len; i++) seq[S++] = all.ids[i];
        }
    } else {
        rc = mofo_tokenizer_encode(tok, context, cl, 0, &ctx, err);
        if (!rc) rc = mofo_tokenizer_encode(tok, whole.data ? whole.data : "", whole.len, 0, &all, err);
        int b = add_bos && bos >= 0;
        n_ctx = ctx.len + (size_t)b;
        if (!rc && (seq = malloc(sizeof(int) * (all.len + 1)))) {
            if (b) seq[S++] = bos;
            for (size_t i = 0; i < all.len; i++) seq[S++] = all.ids[i];
        }
    }
    mofo_sb_free(&whole);
    mofo_ids_free(&ctx);
    mofo_ids_free(&all);
    if (!rc && !seq) rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
    if (!rc && S <= n_ctx) rc = mofo_errf(err, MOFO_EINVAL, "the continuation adds no token to the context");
    if (rc) {
        free(seq);
        return rc;
    }
    *seq_out = seq, *S_out = S, *n_ctx_out = n_ctx;
    return 0;
}

int mofo_loglik(mofo_model *m, const mofo_tokenizer *tok, const char *context, size_t ctx_len, const char *cont,
                size_t cont_len, int add_bos, double *ll, int *n_tokens, mofo_err *err) {
    int *seq = NULL;
    size_t S = 0, n_ctx = 0;
    int rc = loglik_seq(tok, context, ctx_len, cont, cont_len, add_bos, &seq, &S, &n_ctx, err);
    int n_cont = (int)(S - n_ctx);
    /* inputs seq[0..S-1), cut from the left to the model's positions */
    int T = (int)(S - 1), skip = 0;
    if (!rc && T > m->cfg.max_T) {
        skip = T - m->cfg.max_T;
        T = m->cfg.max_T;
        if (n_cont > T) rc = mofo_errf(err, MOFO_EINVAL, "the continuation's %d tokens exceed the model's %d positions",
                                       n_cont, T);
    }
    int *tg = rc ? NULL : malloc(sizeof(int) * (size_t)T);
    float *losses = rc ? NULL : malloc(sizeof(float) * (size_t)T);
    if (!rc && (!tg || !losses)) rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
    if (!rc) {
        for (int t = 0; t < T; t++) {
            size_t target = (size_t)(skip + t + 1); /* index into seq of the predicted token */
            tg[t] = target >= n_ctx ? seq[target] : MOFO_IGNORE_INDEX;
        }
        rc = mofo_model_eval(m, seq + skip, tg, 1, T, NULL, err);
        if (!rc) rc = mofo_model_token_losses(m, losses, err);
    }
    if (!rc) {
        double s = 0;
        for (int t = 0; t < T; t++)
            if (tg[t] != MOFO_IGNORE_INDEX) s += losses[t];
        *ll = -s;
        if (n_tokens) *n_tokens = n_cont;
    }
    free(tg);
    free(losses);
    free(seq);
    return rc;
}

typedef struct {
    mofo_model *m;
    const mofo_tokenizer *tok;
    int add_bos;
    mofo_mc_result *r;
    mofo_infer cache; /* sized for the longest question so far */
} mc_ctx;

static size_t utf8_chars(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* ll[b], the log-likelihood of seq[b][n_ctx[b]..S[b]) after seq[b][0..n_ctx[b]), for the n
 * sequences of one question (inputs of at most T tokens): the prefix they share before their last
 * context token goes through the KV cache once, then each sequence's rest, the cache rewound to the
 * prefix before the next. */
static int loglik_shared_prefix(mc_ctx *c, int *const *seq, const size_t *S, const size_t *n_ctx, int n, int T,
                                double *ll, mofo_err *err) {
    size_t P = SIZE_MAX;
    for (int b = 0; b < n; b++) {
        size_t last_ctx = n_ctx[b] ? n_ctx[b] - 1 : 0; /* the prefix stops before the last context token */
        size_t k = 0, lim = last_ctx < P ? last_ctx : P;
        while (k < lim && seq[b][k] == seq[0][k]) k++;
        P = k;
    }
    mofo_infer *kv = &c->cache;
    int rc = 0, V = c->m->cfg.V, rows = T - (int)P;
    if (kv->T_max < T) {
        mofo_infer_free(kv);
        rc = mofo_infer_init(kv, c->m, T, err);
    }
    const mofo_backend *be = c->m->be;
    float *logits = be->alloc((size_t)rows * (size_t)V), *losses = be->alloc((size_t)rows);
    int *tg = malloc(sizeof(int) * (size_t)rows); /* logits (rows, V), losses and tg (rows) */
    if (!rc && (!logits || !losses || !tg)) rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
    if (!rc) mofo_infer_reset(kv);
    if (!rc && P > 0) rc = mofo_infer_feed(kv, c->m, seq[0], (int)P, err);
    for (int b = 0; b < n && !rc; b++) {
        int n_in = (int)(S[b] - 1 - P); /* inputs seq[b][P..S[b]-1) predict seq[b][P+1..S[b]) */
        if ((rc = mofo_infer_feed_rows(kv, c->m, seq[b] + P, n_in, logits, err))) break;
        for (int t = 0; t < n_in; t++) tg[t] = P + (size_t)t + 1 >= n_ctx[b] ? seq[b][P + (size_t)t + 1] : MOFO_IGNORE_INDEX;
        be->crossentropy_forward(losses, logits, tg, n_in, V);
        ll[b] = -be->sum(losses, (size_t)n_in); /* 0 where ignored */
        mofo_infer_rewind(kv, (int)P);
    }
    be->free(logits), be->free(losses), free(tg);
    return rc;
}

/* The log-likelihood of each choice after the context, ll[i] as mofo_loglik gives it: the choices
 * after their shared context through the KV cache (loglik_shared_prefix); a choice longer than the
 * model's positions falls back to mofo_loglik, which cuts the context from the left. */
static int loglik_choices(mc_ctx *c, const char *ctx, size_t ctx_len, const mofo_json *choices, double *ll,
                          mofo_err *err) {
    int n = (int)choices->count, rc = 0, T = 1, fits = 1;
    int **seq = calloc((size_t)n, sizeof *seq);
    size_t *S = calloc((size_t)n, sizeof *S), *n_ctx = calloc((size_t)n, sizeof *n_ctx);
    if (!seq || !S || !n_ctx) rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
    int i = 0;
    for (const mofo_json *e = choices->child; e && !rc; e = e->next, i++) {
        rc = loglik_seq(c->tok, ctx, ctx_len, e->str, e->len, c->add_bos, &seq[i], &S[i], &n_ctx[i], err);
        if (rc) rc = mofo_err_prefix(err, "choice %d", i);
        else if ((int)S[i] - 1 > T) T = (int)S[i] - 1;
    }
    if (!rc && T > c->m->cfg.max_T) fits = 0;
    if (!rc && fits) rc = loglik_shared_prefix(c, seq, S, n_ctx, n, T, ll, err);
    i = 0;
    for (const mofo_json *e = choices->child; e && !rc && !fits; e = e->next, i++)
        if ((rc = mofo_loglik(c->m, c->tok, ctx, ctx_len, e->str, e->len, c->add_bos, &ll[i], NULL, err)))
            rc = mofo_err_prefix(err, "choice %d", i);
    for (int b = 0; seq && b < n; b++) free(seq[b]);
    free(seq), free(S), free(n_ctx);
    return rc;
}

static int mc_line(void *vctx, const mofo_json *obj, mofo_err *err) {
    mc_ctx *c = vctx;
    const char *ctx = NULL;
    size_t ctx_len = 0;
    int rc = get_str(obj, "context", &ctx, &ctx_len, err);
    if (rc) return rc;
    const mofo_json *ch = mofo_json_get(obj, "choices"), *gold = mofo_json_get(obj, "gold");
    if (!ch) return mofo_errf(err, MOFO_EFORMAT, "missing field \"choices\"");
    if (ch->type != MOFO_JSON_ARRAY || ch->count < 1)
        return mofo_errf(err, MOFO_EFORMAT, "field \"choices\" must be a non-empty array of strings");
    if (!gold) return mofo_errf(err, MOFO_EFORMAT, "missing field \"gold\"");
    int64_t g;
    if (!mofo_json_int64(gold, &g) || g < 0 || (size_t)g >= ch->count)
        return mofo_errf(err, MOFO_EFORMAT, "field \"gold\" must be an index into the %zu choices", ch->count);
    int n = (int)ch->count;
    long i = 0;
    for (const mofo_json *e = ch->child; e; e = e->next, i++)
        if (e->type != MOFO_JSON_STRING)
            return mofo_errf(err, MOFO_EFORMAT, "choice %ld is a %s, not a string", i, mofo_json_type_name(e->type));
    double *ll = malloc(sizeof *ll * (size_t)n);
    if (!ll) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    rc = loglik_choices(c, ctx, ctx_len, ch, ll, err);
    double best = -INFINITY, best_norm = -INFINITY;
    long arg = -1, arg_norm = -1;
    i = 0;
    for (const mofo_json *e = ch->child; e && !rc; e = e->next, i++) {
        size_t chars = utf8_chars(e->str, e->len);
        double norm = ll[i] / (double)(chars ? chars : 1);
        if (ll[i] > best) best = ll[i], arg = i;
        if (norm > best_norm) best_norm = norm, arg_norm = i;
    }
    free(ll);
    if (rc) return rc;
    c->r->n++;
    c->r->correct += arg == g;
    c->r->correct_norm += arg_norm == g;
    return 0;
}

int mofo_eval_mc(mofo_model *m, const mofo_tokenizer *tok, const char *path, int add_bos, mofo_mc_result *r,
                 mofo_err *err) {
    memset(r, 0, sizeof *r);
    mc_ctx c = {m, tok, add_bos, r, {0}};
    int rc = each_line(path, mc_line, &c, NULL, err);
    mofo_infer_free(&c.cache);
    return rc;
}

/* ---- GSM8K extraction ---- */

static int in_num(char ch) { return (ch >= '0' && ch <= '9') || ch == '.' || ch == ','; }
static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

int mofo_gsm8k_strict(const char *s, size_t n, size_t *start, size_t *end) {
    for (size_t i = 0; i + 5 <= n; i++) {
        if (memcmp(s + i, "#### ", 5) != 0) continue;
        size_t j = i + 5, k = j;
        if (k < n && s[k] == '-') k++;
        size_t d = k;
        while (d < n && in_num(s[d])) d++;
        if (d > k) {
            *start = j;
            *end = d;
            return 1;
        }
    }
    return 0;
}

int mofo_gsm8k_flexible(const char *s, size_t n, size_t *start, size_t *end) {
    int found = 0;
    size_t i = 0;
    while (i < n) {
        size_t e = i;
        /* (-?[$0-9.,]{2,}) */
        for (int minus = s[i] == '-'; minus >= 0 && e == i; minus--) {
            size_t k = i + (size_t)minus, d = k;
            while (d < n && (in_num(s[d]) || s[d] == '$')) d++;
            if (d - k >= 2) e = d;
        }
        /* |(-?[0-9]+) */
        for (int minus = s[i] == '-'; minus >= 0 && e == i; minus--) {
            size_t k = i + (size_t)minus, d = k;
            while (d < n && is_digit(s[d])) d++;
            if (d > k) e = d;
        }
        if (e > i) {
            *start = i;
            *end = e;
            found = 1;
            i = e;
        } else {
            i++;
        }
    }
    return found;
}

void mofo_gsm8k_normalize(const char *s, size_t n, char *out, size_t cap) {
    size_t from = 0;
    for (size_t i = 0; i + 5 <= n; i++)
        if (memcmp(s + i, "#### ", 5) == 0) from = i + 5;
    size_t o = 0;
    if (!cap) return;
    for (size_t i = from; i < n && o + 1 < cap; i++) {
        char ch = s[i];
        if (ch == ',' || ch == '$') continue;
        out[o++] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
    }
    out[o] = 0;
    while (o > 0 && is_space(out[o - 1])) out[--o] = 0;
    if (o > 0 && out[o - 1] == '.') out[--o] = 0;
    while (o > 0 && is_space(out[o - 1])) out[--o] = 0;
    size_t lead = 0;
    while (lead < o && is_space(out[lead])) lead++;
    memmove(out, out + lead, o - lead + 1);
}

/* ---- generation ---- */

typedef struct {
    const mofo_tokenizer *tok;
    const mofo_gen_eval_opts *o;
    int32_t *ids;
    int n, cap;
    int failed;
} stop_ctx;

/* the earliest stop string in text, or len */
static size_t stop_at(const char *text, size_t len, const mofo_gen_eval_opts *o) {
    size_t best = len;
    for (int i = 0; i < o->n_stop; i++) {
        size_t sl = strlen(o->stop[i]);
        if (!sl) continue;
        for (size_t p = 0; p + sl <= len && p < best; p++)
            if (memcmp(text + p, o->stop[i], sl) == 0) {
                best = p;
                break;
            }
    }
    return best;
}

static int on_token(void *vctx, int id) {
    stop_ctx *c = vctx;
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 64;
        int32_t *ni = realloc(c->ids, sizeof(int32_t) * (size_t)cap);
        if (!ni) {
            c->failed = 1;
            return 1;
        }
        c->ids = ni;
        c->cap = cap;
    }
    c->ids[c->n++] = id;
    if (!c->o->n_stop) return 0;
    mofo_strbuf sb = {0};
    int stop = 0;
    if (mofo_tokenizer_decode(c->tok, c->ids, (size_t)c->n, 0, &sb, NULL) == 0 && sb.data)
        stop = stop_at(sb.data, sb.len, c->o) < sb.len;
    mofo_sb_free(&sb);
    return stop;
}

typedef struct {
    mofo_model *m;
    const mofo_tokenizer *tok;
    const mofo_gen_eval_opts *o;
    mofo_gen_result *r;
} gen_ctx;

static int gen_line(void *vctx, const mofo_json *obj, mofo_err *err) {
    gen_ctx *c = vctx;
    const char *prompt = NULL, *answer = NULL;
    size_t plen = 0, alen = 0;
    int rc = get_str(obj, "prompt", &prompt, &plen, err);
    if (!rc) rc = get_str(obj, "answer", &answer, &alen, err);
    if (rc) return rc;
    mofo_ids p = {0};
    rc = mofo_prompt_ids(c->tok, prompt, plen, c->o->tpl, c->o->chat, c->o->add_bos, &p, err);
    if (!rc && p.len == 0) rc = mofo_errf(err, MOFO_EINVAL, "the prompt has no token");
    int max_new = c->o->max_new;
    if (!rc && p.len >= (size_t)c->m->cfg.max_T)
        rc = mofo_errf(err, MOFO_EINVAL, "the prompt's %zu tokens leave no room in the model's %d positions", p.len,
                       c->m->cfg.max_T);
    if (!rc && (size_t)max_new > (size_t)c->m->cfg.max_T - p.len) max_new = c->m->cfg.max_T - (int)p.len;
    int *pid = rc ? NULL : malloc(sizeof(int) * p.len);
    if (!rc && !pid) rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < p.len; i++) pid[i] = p.ids[i];
    stop_ctx sc = {c->tok, c->o, NULL, 0, 0, 0};
    int *gen = NULL, ng = 0;
    if (!rc) {
        mofo_gen_opts go = {.max_new = max_new, .temperature = 0, .top_p = 1, .eos = mofo_tokenizer_eos(c->tok),
                            .on_token = on_token, .ctx = &sc};
        rc = mofo_generate(c->m, pid, (int)p.len, &go, &gen, &ng, err);
    }
    if (!rc && sc.failed) rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
    mofo_strbuf text = {0};
    if (!rc) {
        int n = ng;
        if (n > 0 && gen[n - 1] == mofo_tokenizer_eos(c->tok)) n--;
        int32_t *g32 = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
        if (!g32) rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
        for (int i = 0; !rc && i < n; i++) g32[i] = gen[i];
        if (!rc) rc = mofo_tokenizer_decode(c->tok, g32, (size_t)n, 0, &text, err);
        free(g32);
    }
    if (!rc) {
        const char *t = text.data ? text.data : "";
        size_t len = stop_at(t, text.len, c->o);
        char gold[256], pred[256];
        mofo_gsm8k_normalize(answer, alen, gold, sizeof gold);
        size_t a, b;
        int strict = 0, flex = 0, has_strict = mofo_gsm8k_strict(t, len, &a, &b);
        if (has_strict) {
            mofo_gsm8k_normalize(t + a, b - a, pred, sizeof pred);
            strict = strcmp(pred, gold) == 0;
        }
        if (mofo_gsm8k_flexible(t, len, &a, &b)) {
            mofo_gsm8k_normalize(t + a, b - a, pred, sizeof pred);
            flex = strcmp(pred, gold) == 0;
        }
        c->r->n++;
        c->r->strict += strict;
        c->r->flexible += flex;
        c->r->em += has_strict ? strict : flex;
    }
    mofo_sb_free(&text);
    free(gen);
    free(sc.ids);
    free(pid);
    mofo_ids_free(&p);
    return rc;
}

int mofo_eval_gen(mofo_model *m, const mofo_tokenizer *tok, const char *path, const mofo_gen_eval_opts *o,
                  mofo_gen_result *r, mofo_err *err) {
    memset(r, 0, sizeof *r);
    if (o->max_new < 1) return mofo_errf(err, MOFO_EINVAL, "max_new %d: must be positive", o->max_new);
    gen_ctx c = {m, tok, o, r};
    return each_line(path, gen_line, &c, NULL, err);
}

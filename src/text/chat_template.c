/* A model's own chat template: loading, rendering, and the trained-byte rules (chat_template.h). */
#include "text/chat_template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/jinja.h"
#include "text/utf8.h"

struct mofo_chat {
    mofo_jinja *tpl;
    char *bos, *eos;     /* NULL: undefined */
    char **special;      /* the special tokens' texts, longest first */
    size_t n_special;
    char *gen_prompt;    /* "" when none */
    int64_t now;
};

void mofo_chat_free(mofo_chat *c) {
    if (!c) return;
    mofo_jinja_free(c->tpl);
    free(c->bos);
    free(c->eos);
    for (size_t i = 0; i < c->n_special; i++) free(c->special[i]);
    free(c->special);
    free(c->gen_prompt);
    free(c);
}

const char *mofo_chat_generation_prompt(const mofo_chat *c) { return c->gen_prompt; }
void mofo_chat_set_time(mofo_chat *c, int64_t now) { c->now = now; }

static char *dup_n(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static int by_length_desc(const void *a, const void *b) {
    size_t x = strlen(*(char *const *)a), y = strlen(*(char *const *)b);
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The length of the special token that starts s[0..n), or 0. */
static size_t special_at(const mofo_chat *c, const char *s, size_t n) {
    for (size_t i = 0; i < c->n_special; i++) {
        size_t l = strlen(c->special[i]);
        if (l <= n && !memcmp(s, c->special[i], l)) return l;
    }
    return 0;
}

static int has_special(const mofo_chat *c, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (special_at(c, s + i, n - i)) return 1;
    return 0;
}

/* The end of the last occurrence of the generation prompt in s[0..n), or 0 when none. */
static size_t after_gen_prompt(const mofo_chat *c, const char *s, size_t n) {
    size_t g = strlen(c->gen_prompt);
    if (g == 0 || g > n) return 0;
    for (size_t i = n - g + 1; i-- > 0;)
        if (!memcmp(s + i, c->gen_prompt, g)) return i + g;
    return 0;
}

static int is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }

/* The three widening rules of chat_template.h on m[0..n) (0/1 per byte of s). */
static void widen(const mofo_chat *c, const char *s, uint8_t *m, size_t n) {
    size_t prev_end = 0; /* the end of the previous run */
    size_t i = 0;
    while (i < n) {
        if (!m[i]) {
            i++;
            continue;
        }
        size_t a = i, b = i;
        while (b < n && m[b]) b++;
        /* rule 1: absorb following runs with no special token and no generation prompt between */
        for (;;) {
            size_t na = b;
            while (na < n && !m[na]) na++;
            if (na >= n || has_special(c, s + b, na - b) || after_gen_prompt(c, s + b, na - b)) break;
            b = na;
            while (b < n && m[b]) b++;
        }
        /* rule 2: back to the end of the generation prompt before the run */
        size_t g = after_gen_prompt(c, s + prev_end, a - prev_end);
        if (g) a = prev_end + g;
        /* rule 3: the whitespace and the special token after it */
        size_t e = b;
        while (e < n && is_space(s[e])) e++;
        size_t sp = e < n ? special_at(c, s + e, n - e) : 0;
        if (sp) b = e + sp;
        memset(m + a, 1, b - a);
        prev_end = b;
        i = b;
    }
}

int mofo_chat_render(const mofo_chat *c, const mofo_json *messages, int add_generation_prompt, const mofo_json *extra,
                     mofo_strbuf *text, mofo_strbuf *trained, mofo_err *err) {
    mofo_jinja_vars v = {messages, add_generation_prompt, c->bos, c->eos, extra, c->now};
    mofo_strbuf t = {0}, m = {0};
    int rc = mofo_jinja_render(c->tpl, &v, &t, &m, err);
    if (!rc && !mofo_jinja_has_generation(c->tpl) && t.len) widen(c, t.data, (uint8_t *)m.data, t.len);
    if (!rc) {
        mofo_sb_append(text, t.data ? t.data : "", t.len);
        if (trained) mofo_sb_append(trained, m.data ? m.data : "", m.len);
        if (text->failed || (trained && trained->failed)) rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
    }
    mofo_sb_free(&t);
    mofo_sb_free(&m);
    return rc;
}

/* The generation prompt: what add_generation_prompt adds to a one-message conversation. */
static void find_gen_prompt(mofo_chat *c) {
    static const char conv[] = "[{\"role\": \"user\", \"content\": \"x\"}]";
    mofo_json_doc *d = mofo_json_parse(conv, sizeof conv - 1, NULL);
    mofo_strbuf with = {0}, without = {0}, m1 = {0}, m2 = {0};
    mofo_err ignore = {0};
    c->gen_prompt = NULL;
    if (d && !mofo_chat_render(c, mofo_json_root(d), 1, NULL, &with, &m1, &ignore) &&
        !mofo_chat_render(c, mofo_json_root(d), 0, NULL, &without, &m2, &ignore) && with.len > without.len &&
        !memcmp(with.data, without.data ? without.data : "", without.len))
        c->gen_prompt = dup_n(with.data + without.len, with.len - without.len);
    mofo_json_free(d);
    mofo_sb_free(&with);
    mofo_sb_free(&without);
    mofo_sb_free(&m1);
    mofo_sb_free(&m2);
}

int mofo_chat_from_source(mofo_chat **out, const char *src, size_t len, const char *name, const char *bos,
                          const char *eos, const char *const *specials, size_t n_special, mofo_err *err) {
    *out = NULL;
    mofo_chat *c = calloc(1, sizeof *c);
    if (!c) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    c->now = -1;
    int rc = mofo_jinja_parse(&c->tpl, src, len, name, err);
    if (rc) {
        free(c);
        return rc;
    }
    c->bos = bos ? dup_n(bos, strlen(bos)) : NULL;
    c->eos = eos ? dup_n(eos, strlen(eos)) : NULL;
    c->special = calloc(n_special ? n_special : 1, sizeof *c->special);
    int oom = (bos && !c->bos) || (eos && !c->eos) || !c->special;
    for (size_t i = 0; !oom && i < n_special; i++) {
        c->special[c->n_special] = dup_n(specials[i], strlen(specials[i]));
        oom = !c->special[c->n_special++];
    }
    if (!oom) {
        qsort(c->special, c->n_special, sizeof *c->special, by_length_desc);
        find_gen_prompt(c);
        if (!c->gen_prompt) c->gen_prompt = dup_n("", 0);
        oom = !c->gen_prompt;
    }
    if (oom) {
        mofo_chat_free(c);
        return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    }
    *out = c;
    return 0;
}

/* tokenizer_config.json's "bos_token": "<s>" or {"content": "<s>", ...}; NULL when not a string */
static char *config_token(const mofo_json *cfg, const char *key) {
    const mofo_json *v = mofo_json_get(cfg, key);
    if (v && v->type == MOFO_JSON_OBJECT) v = mofo_json_get(v, "content");
    return v && v->type == MOFO_JSON_STRING ? dup_n(v->str, v->len) : NULL;
}

int mofo_chat_load_dir(mofo_chat **out, const char *dir, const mofo_tokenizer *tok, mofo_err *err) {
    *out = NULL;
    size_t pn = strlen(dir) + 32;
    char *path = malloc(pn), *jinja = NULL, *cfg = NULL, *src = NULL, *bos = NULL, *eos = NULL, *name = NULL;
    char **specials = NULL;
    size_t jn = 0, cn = 0, sn = 0, ns = 0;
    mofo_json_doc *doc = NULL;
    mofo_err ignore = {0};
    int rc = 0;
    if (!path) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    snprintf(path, pn, "%s/tokenizer_config.json", dir);
    if (mofo_read_file(path, &cfg, &cn, &ignore)) cfg = NULL;
    if (cfg) {
        doc = mofo_json_parse(cfg, cn, err);
        if (!doc) rc = mofo_err_prefix(err, "%s", path);
    }
    const mofo_json *root = doc ? mofo_json_root(doc) : NULL;
    snprintf(path, pn, "%s/chat_template.jinja", dir);
    if (!rc && !mofo_read_file(path, &jinja, &jn, &ignore)) {
        src = jinja;
        sn = jn;
        name = dup_n(path, strlen(path));
    } else if (!rc && root) {
        const mofo_json *t = mofo_json_get(root, "chat_template");
        if (t && t->type == MOFO_JSON_ARRAY) {
            const mofo_json *pick = NULL;
            for (const mofo_json *e = t->child; e; e = e->next) {
                const mofo_json *nm = mofo_json_get(e, "name");
                if (nm && nm->type == MOFO_JSON_STRING && !strcmp(nm->str, "default")) pick = mofo_json_get(e, "template");
            }
            if (!pick)
                rc = mofo_errf(err, MOFO_EFORMAT, "%s/tokenizer_config.json: \"chat_template\" is a list without a \"default\" entry", dir);
            t = pick;
        }
        if (!rc && t && t->type != MOFO_JSON_STRING && t->type != MOFO_JSON_NULL)
            rc = mofo_errf(err, MOFO_EFORMAT, "%s/tokenizer_config.json: \"chat_template\" is a %s, expected a string", dir,
                           mofo_json_type_name(t->type));
        if (!rc && t && t->type == MOFO_JSON_STRING) {
            src = (char *)t->str;
            sn = t->len;
            size_t n = strlen(dir) + 64;
            name = malloc(n);
            if (name) snprintf(name, n, "%s/tokenizer_config.json chat_template", dir);
        }
    }
    if (!rc && src) {
        if (root) {
            bos = config_token(root, "bos_token");
            eos = config_token(root, "eos_token");
        }
        int32_t V = tok ? mofo_tokenizer_vocab_size(tok) : 0;
        specials = malloc(sizeof *specials * (size_t)(V > 0 ? V : 1));
        for (int32_t id = 0; specials && id < V; id++) {
            size_t l;
            const char *s = mofo_tokenizer_is_special(tok, id) ? mofo_tokenizer_token(tok, id, &l) : NULL;
            if (s && l && !(specials[ns++] = dup_n(s, l))) break;
        }
        if (!specials || !name || (ns && !specials[ns - 1])) rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
        else rc = mofo_chat_from_source(out, src, sn, name, bos, eos, (const char *const *)specials, ns, err);
    }
    for (size_t i = 0; specials && i < ns; i++) free(specials[i]);
    free(specials);
    free(bos);
    free(eos);
    free(name);
    mofo_json_free(doc);
    free(cfg);
    free(jinja);
    free(path);
    return rc;
}

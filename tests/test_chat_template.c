/* The models' own chat templates (Llama 3/3.1/3.2, Qwen2.5, Qwen3, Gemma 3, Mistral Nemo and
 * v0.1, TinyLlama, SmolLM2, Llama 2) and mofo's built-in ones (tulu, chatml, llama2, plain, whose
 * Jinja sources the generator reads from src/text/dataset.c) against renderings by an independent implementation,
 * @huggingface/jinja (fixtures/chat_templates/cases.json, gen_cases.js): byte for byte, the same
 * raise_exception messages, and the trained spans that the generator found by searching each
 * rendering for the assistant's answers. Then Jinja features the real templates do not reach, each
 * against its value worked out by hand from Jinja2's documented semantics, and the errors. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "text/chat_template.h"
#include "text/dataset.h"
#include "text/jinja.h"
#include "text/utf8.h"

static const char *str_of(const mofo_json *o, const char *key) {
    const mofo_json *v = mofo_json_get(o, key);
    return v && v->type == MOFO_JSON_STRING ? v->str : NULL;
}

/* the trained mask as [start, end) byte spans, compared with the reference's list of pairs */
static int same_spans(const uint8_t *m, size_t n, const mofo_json *want, char *why, size_t cap) {
    size_t k = 0;
    const mofo_json *w = want->child;
    for (size_t i = 0; i < n;) {
        if (!m[i]) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && m[j]) j++;
        int64_t a = -1, b = -1;
        if (w && w->count == 2) {
            mofo_json_int64(w->child, &a);
            mofo_json_int64(w->child->next, &b);
        }
        if (!w || a != (int64_t)i || b != (int64_t)j) {
            snprintf(why, cap, "span %zu is [%zu, %zu), want [%lld, %lld)", k, i, j, (long long)a, (long long)b);
            return 0;
        }
        w = w->next;
        k++;
        i = j;
    }
    if (w) {
        snprintf(why, cap, "%zu spans, want %zu", k, want->count);
        return 0;
    }
    return 1;
}

static void test_reference_cases(void) {
    char path[512], *text = NULL;
    size_t len = 0;
    mofo_err err = {0};
    snprintf(path, sizeof path, "%s/chat_templates/cases.json", MOFO_FIXTURES);
    CHECK(mofo_read_file(path, &text, &len, &err) == 0, "%s", err.msg);
    mofo_json_doc *doc = text ? mofo_json_parse(text, len, &err) : NULL;
    CHECK(doc != NULL, "%s", err.msg);
    if (!doc) {
        free(text);
        return;
    }
    const mofo_json *root = mofo_json_root(doc), *tpls = mofo_json_get(root, "templates"),
                    *convs = mofo_json_get(root, "conversations"), *cases = mofo_json_get(root, "cases");
    int64_t now = 0;
    mofo_json_int64(mofo_json_get(root, "now"), &now);
    size_t n_rendered = 0, n_spans = 0, n_errors = 0, n_templates = 0;
    for (const mofo_json *t = tpls->child; t; t = t->next, n_templates++) {
        const mofo_json *sp = mofo_json_get(t, "special");
        const char **specials = calloc(sp->count + 1, sizeof *specials);
        size_t ns = 0;
        for (const mofo_json *s = sp->child; s; s = s->next) specials[ns++] = s->str;
        mofo_chat *chat = NULL;
        const mofo_json *src = mofo_json_get(t, "template");
        const char *builtin = str_of(t, "builtin");
        mofo_chat_template bt;
        int rc;
        if (builtin) { /* mofo's own templates: the same source, made as the data sets make them */
            CHECK(mofo_chat_template_parse(builtin, &bt) == 0 && !strcmp(mofo_chat_template_source(bt), src->str),
                  "%s: the fixture's source is not src/text/dataset.c's (rerun gen_cases.js)", t->key);
            rc = mofo_chat_builtin(&chat, bt, str_of(t, "bos_token"), str_of(t, "eos_token"), &err);
        } else {
            rc = mofo_chat_from_source(&chat, src->str, src->len, t->key, str_of(t, "bos_token"), str_of(t, "eos_token"),
                                       specials, ns, &err);
        }
        free(specials);
        CHECK(rc == 0, "%s: %s", t->key, err.msg);
        if (rc) continue;
        mofo_chat_set_time(chat, now);
        CHECK(!strcmp(mofo_chat_generation_prompt(chat), str_of(t, "generation_prompt")), "%s: generation prompt \"%s\"", t->key,
              mofo_chat_generation_prompt(chat));
        for (const mofo_json *c = cases->child; c; c = c->next) {
            if (strcmp(str_of(c, "template"), t->key)) continue;
            const char *cname = str_of(c, "conversation");
            const mofo_json *msgs = mofo_json_get(convs, cname), *extra = mofo_json_get(c, "extra");
            int agp = mofo_json_get(c, "add_generation_prompt")->boolean;
            const char *want = str_of(c, "rendered"), *want_err = str_of(c, "error");
            const mofo_json *spans = mofo_json_get(c, "trained");
            mofo_strbuf out = {0}, mask = {0};
            rc = mofo_chat_render(chat, msgs, agp, extra, &out, &mask, &err);
            int extra_vars = extra && extra->count > 0;
            const char *label = extra_vars ? extra->child->key : "";
            if (want_err) {
                CHECK(rc == MOFO_EFORMAT && strstr(err.msg, want_err), "%s/%s/%s agp=%d: want the error \"%s\", got rc %d \"%s\"",
                      t->key, cname, label, agp, want_err, rc, rc ? err.msg : out.data);
                n_errors++;
            } else {
                int same = rc == 0 && out.len == strlen(want) && !memcmp(out.data ? out.data : "", want, out.len);
                CHECK(same, "%s/%s/%s agp=%d: %s", t->key, cname, label, agp, rc ? err.msg : "the rendering differs");
                if (!same && rc == 0) {
                    size_t i = 0;
                    while (i < out.len && want[i] == out.data[i]) i++;
                    fprintf(stderr, "  first difference at byte %zu\n  got:  \"%.80s\"\n  want: \"%.80s\"\n", i, out.data + i, want + i);
                }
                n_rendered++;
                if (same && spans) {
                    char why[128];
                    CHECK(same_spans((const uint8_t *)mask.data, mask.len, spans, why, sizeof why), "%s/%s/%s: trained %s", t->key,
                          cname, label, why);
                    n_spans++;
                }
            }
            mofo_sb_free(&out);
            mofo_sb_free(&mask);
        }
        mofo_chat_free(chat);
    }
    printf("chat templates: %zu templates, %zu renderings, %zu trained-span checks, %zu raised errors\n", n_templates,
           n_rendered, n_spans, n_errors);
    CHECK(n_templates >= 15 && n_rendered >= 300 && n_spans >= 110 && n_errors >= 10, "too few cases were read");
    mofo_json_free(doc);
    free(text);
}

/* Renders src with the messages JSON text msgs; returns the output (static) or the error. */
static const char *render(const char *src, const char *msgs, int agp, const char *extra, int *rc_out) {
    static char buf[4096];
    mofo_err err = {0};
    mofo_jinja *t = NULL;
    int rc = mofo_jinja_parse(&t, src, strlen(src), "t", &err);
    mofo_json_doc *m = mofo_json_parse(msgs, strlen(msgs), NULL), *x = extra ? mofo_json_parse(extra, strlen(extra), NULL) : NULL;
    mofo_strbuf out = {0}, mask = {0};
    if (!rc) {
        mofo_jinja_vars v = {mofo_json_root(m), agp, "<s>", "</s>", x ? mofo_json_root(x) : NULL, 0};
        rc = mofo_jinja_render(t, &v, &out, &mask, &err);
    }
    snprintf(buf, sizeof buf, "%s", rc ? err.msg : out.data ? out.data : "");
    if (rc_out) *rc_out = rc;
    mofo_sb_free(&out);
    mofo_sb_free(&mask);
    mofo_json_free(m);
    mofo_json_free(x);
    mofo_jinja_free(t);
    return buf;
}

#define RENDERS(src, want)                                                             \
    do {                                                                               \
        int rc_;                                                                       \
        const char *got_ = render(src, "[]", 0, NULL, &rc_);                          \
        CHECK(rc_ == 0 && !strcmp(got_, want), "%s -> \"%s\", want \"%s\"", src, got_, want); \
    } while (0)

/* Expected values from Jinja2's and Python's documented behaviour, worked out by hand. */
static void test_semantics(void) {
    RENDERS("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }}", "3 -4 2 3.5 1024 7");
    RENDERS("{{ 'a' ~ 1 ~ none }} {{ 'ab' * 3 }} {{ [1, 2] + [3] }} {{ 0.1 + 0.2 }} {{ 1.0 }}", "a1None ababab [1, 2, 3] 0.30000000000000004 1.0");
    RENDERS("{{ 'héllo'[1] }}{{ 'héllo'[1:3] }}{{ 'héllo'[::-1] }}{{ 'héllo'|length }}{{ [1,2,3][-1] }}", "éélolléh53");
    RENDERS("{{ '  x y  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}",
            "x y|a|['a', 'b', '', 'c']|['a', 'b']");
    RENDERS("{{ 'a b'.split(' ', 1) }}{{ 'Hello'.startswith(('x', 'He')) }}{{ 'ab'.replace('b', 'c') }}{{ 'aaa'.replace('a', 'b', 2) }}",
            "['a', 'b']Trueacbba");
    RENDERS("{{ 'hi there'|title }} {{ 'hI'|capitalize }} {{ 'x'|upper }}{{ 'ABC'.lower() }} {{ 'it''s' }}", "Hi There Hi Xabc its");
    RENDERS("{% for x in [3, 1, 2] if x > 1 %}{{ loop.index }}/{{ loop.length }}:{{ x }}{% if not loop.last %},{% endif %}{% endfor %}",
            "1/2:3,2/2:2");
    RENDERS("{% for x in [] %}no{% else %}empty{% endfor %}{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}",
            "emptya=1;b=2;");
    RENDERS("{% for x in range(5) %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}", "02");
    RENDERS("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}", "1"); /* loop scope */
    RENDERS("{% set ns = namespace(x=1) %}{% for i in [1] %}{% set ns.x = 2 %}{% endfor %}{{ ns.x }}", "2");
    RENDERS("{% set b %}in{{ 1 }}{% endset %}[{{ b }}]{% macro m(a, b='d') %}<{{ a }}{{ b }}>{% endmacro %}{{ m(1) }}{{ m(1, b=2) }}",
            "[in1]<1d><12>");
    RENDERS("{{ x is defined }}{{ none is none }}{{ 3 is odd }}{{ 'a' is string }}{{ {} is mapping }}{{ 4 is divisibleby(2) }}{{ 1 is not none }}",
            "FalseTrueTrueTrueTrueTrueTrue");
    RENDERS("{{ 'yes' if 1 > 2 else 'no' }}{{ 'x' if false }}|{{ y | default('dflt') }}{{ '' | default('e', true) }}", "no|dflte");
    RENDERS("{{ [{'a': 1}, {'a': 2}, {'b': 3}] | selectattr('a', 'equalto', 2) | list | length }}{{ [1, 0, 2] | select | list }}"
            "{{ [{'r': 'u'}, {'r': 's'}] | rejectattr('r', 'eq', 'u') | map(attribute='r') | join(',') }}",
            "1[1, 2]s");
    RENDERS("{{ {'k': [1, 'é\"', none, true, 1.5]} | tojson }}|{{ [] | tojson(indent=2) }}|{{ {'a': [1]} | tojson(indent=2) }}",
            "{\"k\": [1, \"é\\\"\", null, true, 1.5]}|[]|{\n  \"a\": [\n    1\n  ]\n}");
    RENDERS("{{ [3, 1, 3] | unique | list }}{{ [1, 2] | first }}{{ 'abc' | last }}{{ [1, 2] | reverse | list }}{{ '42' | int + 1 }}",
            "[3, 1]1c[2, 1]43");
    RENDERS("a  {%- if true -%}  b  {%- endif -%}  c", "abc");
    RENDERS("x\n    {% if true %}\n    y\n    {% endif %}\nz", "x\n    y\nz"); /* lstrip_blocks and trim_blocks */
    RENDERS("{# note #}\n  {#- x -#}  a{{ '\\n\\t\\u00e9\\x41' }}", "a\n\téA");
    RENDERS("{{ {'a': {'b': 1}}['a']['b'] }}{{ {'a': 1}.get('z', 5) }}{{ (1, 2)[1] }}{{ 'b' in {'b': 0} }}{{ 'c' not in 'abc' }}", "152TrueFalse");
    int rc;
    const char *got = render("{{ messages[0].content }}-{{ add_generation_prompt }}-{{ bos_token }}{{ eos_token }}{{ tools }}",
                             "[{\"role\": \"user\", \"content\": \"hi\"}]", 1, "{\"tools\": [1]}", &rc);
    CHECK(rc == 0 && !strcmp(got, "hi-True-<s></s>[1]"), "variables: \"%s\"", got);
}

static void test_trained_marks(void) {
    /* the assistant's content is marked through slicing, strip, concatenation and replace */
    const char *msgs = "[{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \" A-B \"}]";
    const char *src = "{% for m in messages %}[{{ (m.content | trim).replace('-', '+') ~ '!' }}]{% endfor %}";
    mofo_err err = {0};
    mofo_jinja *t = NULL;
    CHECK(mofo_jinja_parse(&t, src, strlen(src), "t", &err) == 0, "%s", err.msg);
    mofo_json_doc *m = mofo_json_parse(msgs, strlen(msgs), NULL);
    mofo_strbuf out = {0}, mask = {0};
    mofo_jinja_vars v = {mofo_json_root(m), 0, NULL, NULL, NULL, 0};
    CHECK(mofo_jinja_render(t, &v, &out, &mask, &err) == 0, "%s", err.msg);
    static const char want[] = "[q!][A+B!]", want_mask[] = "0000011100";
    int ok = out.len == strlen(want) && !memcmp(out.data, want, out.len) && mask.len == out.len;
    for (size_t i = 0; ok && i < out.len; i++) ok = mask.data[i] == want_mask[i] - '0';
    CHECK(ok, "marks: \"%.*s\"", (int)out.len, out.data);
    mofo_sb_free(&out);
    mofo_sb_free(&mask);
    mofo_jinja_free(t);
    /* with {% generation %} blocks, exactly those */
    src = "{% for m in messages %}{% if m.role == 'assistant' %}<a>{% generation %}{{ m.content }}.{% endgeneration %}{% else %}"
          "{{ m.content }}{% endif %}{% endfor %}";
    CHECK(mofo_jinja_parse(&t, src, strlen(src), "t", &err) == 0 && mofo_jinja_has_generation(t), "%s", err.msg);
    CHECK(mofo_jinja_render(t, &v, &out, &mask, &err) == 0, "%s", err.msg);
    static const char want2[] = "q<a> A-B .", want_mask2[] = "0000111111";
    ok = out.len == strlen(want2) && !memcmp(out.data, want2, out.len);
    for (size_t i = 0; ok && i < out.len; i++) ok = mask.data[i] == want_mask2[i] - '0';
    CHECK(ok, "generation marks: \"%.*s\"", (int)out.len, out.data);
    mofo_sb_free(&out);
    mofo_sb_free(&mask);
    mofo_jinja_free(t);
    mofo_json_free(m);
}

static void test_errors(void) {
    static const struct {
        const char *src, *want;
    } cases[] = {
        {"a\n{% if x %}b", "t, line 2: 'if' is never closed ('endif' missing)"},
        {"{% for x in y %}", "t, line 1: 'for' is never closed ('endfor' missing)"},
        {"\n\n{{ x | nosuch }}", "t, line 3: unsupported filter 'nosuch'"},
        {"{% include 'x' %}", "t, line 1: unsupported tag 'include'"},
        {"{{ 'abc }}", "t, line 1: unterminated string"},
        {"{{ x.y }}", "t, line 1: 'x' is undefined (its attribute 'y' was read)"},
        {"{{ raise_exception('bad ' + 'turn') }}", "t, line 1: the template raised an exception: \"bad turn\""},
        {"{{ 1 + 'a' }}", "t, line 1: unsupported operand types for +: integer and string"},
        {"{% endfor %}", "t, line 1: unexpected 'endfor'"},
        {"{{ 1 is nosuch }}", "t, line 1: unknown test 'nosuch'"},
        {"{{ [1][5] }}", "t, line 1: index 5 is out of range (length 1)"},
        {"{{ 'a'.nosuch() }}", "t, line 1: a string has no method 'nosuch' here"},
        {"{{ 1 / 0 }}", "t, line 1: division by zero"},
        {"{{ a b }}", "t, line 1: expected '}}', found 'b'"},
        {"{% set ns.x = 1 %}", "t, line 1: set ns.x: 'ns' is not a namespace"},
        /* the bounds that make every render end */
        {"{% macro f() %}{{ f() }}{% endmacro %}\n{{ f() }}", "t, line 1: macro calls nested more than 64 deep"},
        {"{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", "t: the template needs over 256 MiB"},
        {"{% set s = ('x' * 10000) * 30000 %}", "t: a string of over 256 MiB"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc;
        const char *got = render(cases[i].src, "[]", 0, NULL, &rc);
        CHECK(rc == MOFO_EFORMAT && !strcmp(got, cases[i].want), "%s: rc %d \"%s\", want \"%s\"", cases[i].src, rc, got, cases[i].want);
    }
    char deep[1024];
    size_t k = 0;
    k += (size_t)snprintf(deep, sizeof deep, "{{ ");
    for (int i = 0; i < 300; i++) deep[k++] = '(';
    deep[k++] = '1';
    for (int i = 0; i < 300; i++) deep[k++] = ')';
    snprintf(deep + k, sizeof deep - k, " }}");
    int rc;
    const char *got = render(deep, "[]", 0, NULL, &rc);
    CHECK(rc == MOFO_EFORMAT && !strcmp(got, "t, line 1: nested more than 200 deep"), "300 parentheses: \"%s\"", got);
}

int main(void) {
    setenv("TZ", "UTC", 1); /* strftime_now shows local time, as transformers' does */
    tzset();
    test_reference_cases();
    test_semantics();
    test_trained_marks();
    test_errors();
    return CHECK_DONE();
}

/* The tokenizer against the tokenizers library: every case of tests/fixtures/tokenizers, round
 * trips on random valid UTF-8, invalid UTF-8, added tokens, configs and load errors. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "io/json.h"
#include "text/tokenizer.h"
#include "text/unicode_classes.h"
#include "text/utf8.h"

static const char *NAMES[] = {"gpt2-style", "llama3-style", "sentencepiece-style"};

static mofo_tokenizer *load(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizers/%s.json", MOFO_FIXTURES, name);
    mofo_tokenizer *t = NULL;
    mofo_err err = {0};
    int rc = mofo_tokenizer_load_file(&t, path, &err);
    CHECK(rc == 0 && t, "load %s: %s", name, err.msg);
    return t;
}

static mofo_tokenizer *load_path(const char *path) {
    mofo_tokenizer *t = NULL;
    mofo_err err = {0};
    int rc = mofo_tokenizer_load_file(&t, path, &err);
    CHECK(rc == 0 && t, "load %s: %s", path, err.msg);
    return t;
}

/* name: the tokenizer, suffix: which cases ("cases", "random"); variant: a tokenizer of
 * variants/ instead (suffix ignored) */
static void test_cases(const char *name, const char *suffix, int variant) {
    char path[512];
    if (variant) snprintf(path, sizeof path, "%s/tokenizers/variants/%s.json", MOFO_FIXTURES, name);
    else snprintf(path, sizeof path, "%s/tokenizers/%s.json", MOFO_FIXTURES, name);
    mofo_tokenizer *t = load_path(path);
    if (!t) return;
    if (variant) snprintf(path, sizeof path, "%s/tokenizers/variants/%s.cases.json", MOFO_FIXTURES, name);
    else snprintf(path, sizeof path, "%s/tokenizers/%s.%s.json", MOFO_FIXTURES, name, suffix);
    char *data;
    size_t len;
    mofo_err err = {0};
    CHECK(mofo_read_file(path, &data, &len, &err) == 0, "%s", err.msg);
    mofo_json_doc *doc = mofo_json_parse(data, len, &err);
    CHECK(doc != NULL, "%s", err.msg);
    const mofo_json *cases = mofo_json_get(mofo_json_root(doc), "cases");
    int n = 0;
    for (const mofo_json *c = cases ? cases->child : NULL; c; c = c->next, n++) {
        const mofo_json *text = mofo_json_get(c, "text"), *ids = mofo_json_get(c, "ids"),
                        *toks = mofo_json_get(c, "tokens"), *dec = mofo_json_get(c, "decoded");
        const mofo_json *sp = mofo_json_get(c, "special");
        int special = sp && sp->type == MOFO_JSON_BOOL && sp->boolean;
        mofo_ids out = {0};
        out.want_offsets = 1;
        CHECK(mofo_tokenizer_encode(t, text->str, text->len, special, &out, &err) == 0, "%s", err.msg);
        int same = out.len == ids->count;
        size_t i = 0;
        for (const mofo_json *x = ids->child; x && same; x = x->next, i++) {
            int64_t v;
            same = mofo_json_int64(x, &v) && v == out.ids[i];
        }
        CHECK(same, "%s.%s case %d \"%s\"%s: ids differ (got %zu ids, want %zu)", name, suffix ? suffix : "variant", n, text->str, special ? " +special" : "", out.len, ids->count);
        if (!same) {
            fprintf(stderr, "  got:");
            for (size_t k = 0; k < out.len; k++) {
                size_t tl;
                const char *ts = mofo_tokenizer_token(t, out.ids[k], &tl);
                fprintf(stderr, " %d(%.*s)", out.ids[k], (int)tl, ts ? ts : "?");
            }
            fprintf(stderr, "\n");
        }
        i = 0;
        for (const mofo_json *x = toks ? toks->child : NULL; x && same; x = x->next, i++) {
            size_t tl;
            const char *ts = mofo_tokenizer_token(t, out.ids[i], &tl);
            CHECK(ts && tl == x->len && memcmp(ts, x->str, tl) == 0, "%s case %d token %zu", name, n, i);
        }
        /* offsets are inside the text, and in order unless canonical reordering moved a mark */
        int reorders = strstr(name, "nf") != NULL || strcmp(name, "added-normalized") == 0;
        for (size_t k = 0; k < out.len; k++)
            CHECK(out.start[k] <= out.end[k] && (size_t)out.end[k] <= text->len && (reorders || k == 0 || out.start[k] >= out.start[k - 1]),
                  "%s case %d offsets of token %zu", name, n, k);
        /* decode the reference ids */
        static int32_t ref[1 << 16];
        size_t nref = 0;
        for (const mofo_json *x = ids->child; x && nref < (1 << 16); x = x->next) {
            int64_t v = 0;
            mofo_json_int64(x, &v);
            ref[nref++] = (int32_t)v;
        }
        mofo_strbuf sb = {0};
        CHECK(mofo_tokenizer_decode(t, ref, nref, 0, &sb, &err) == 0, "%s", err.msg);
        CHECK(sb.len == dec->len && (sb.len == 0 || memcmp(sb.data, dec->str, sb.len) == 0), "%s.%s case %d: decoded \"%s\", want \"%s\"",
              name, suffix ? suffix : "variant", n, sb.data ? sb.data : "", dec->str);
        mofo_sb_free(&sb);
        mofo_ids_free(&out);
    }
    CHECK(n >= 10, "%s: only %d cases", name, n);
    mofo_json_free(doc);
    free(data);
    mofo_tokenizer_free(t);
}

/* xorshift64* */
static uint64_t rnd(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* Random valid UTF-8; with no_meta, without U+2581, which a SentencePiece-style tokenizer
 * decodes to a space (the tokenizers library does the same). */
static size_t random_utf8(uint64_t *seed, char *o, size_t max_chars, int no_meta) {
    size_t n = 0, k = 1 + rnd(seed) % max_chars;
    static const uint32_t pool[] = {' ', ' ', '\n', '\t', 'e', 'a', 'Z', '1', '9', '\'', '.', ',', '<', '|', '>', 0xE9, 0x2581,
                                    0x65E5, 0x672C, 0x1F600, 0x3000, 0xA0, 0x0301};
    for (size_t i = 0; i < k; i++) {
        uint64_t r = rnd(seed);
        uint32_t cp;
        switch (r % 4) {
        case 0: cp = 0x20 + (uint32_t)(r >> 8) % 0x5F; break;            /* ASCII */
        case 1: cp = pool[(r >> 8) % (sizeof pool / sizeof pool[0])]; break;
        case 2: cp = 0x80 + (uint32_t)(r >> 8) % 0x780; break;            /* 2-byte */
        default:
            cp = (uint32_t)(r >> 8) % 0x10FFFF;
            if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;
        }
        if (no_meta && cp == 0x2581) cp = '_';
        n += mofo_utf8_put(o + n, cp);
    }
    return n;
}

static void test_roundtrip(const char *name) {
    mofo_tokenizer *t = load(name);
    if (!t) return;
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    char buf[4 * 64 + 8];
    mofo_err err = {0};
    int bad = 0;
    for (int it = 0; it < 2000; it++) {
        size_t n = random_utf8(&seed, buf, 64, strstr(name, "sentencepiece") != NULL);
        mofo_ids ids = {0};
        mofo_strbuf sb = {0};
        int ok = mofo_tokenizer_encode(t, buf, n, 0, &ids, &err) == 0 &&
                 mofo_tokenizer_decode(t, ids.ids, ids.len, 0, &sb, &err) == 0;
        /* (the SentencePiece-style decoder's Strip removes exactly the U+2581 that Prepend added) */
        if (!ok || sb.len != n || memcmp(sb.data, buf, n) != 0) {
            if (bad++ < 3) CHECK(0, "%s: round trip of %zu bytes failed: \"%.*s\" -> \"%s\"", name, n, (int)n, buf, sb.data ? sb.data : "");
        }
        mofo_ids_free(&ids);
        mofo_sb_free(&sb);
    }
    CHECK(bad == 0, "%s: %d of 2000 random strings did not round-trip", name, bad);
    mofo_tokenizer_free(t);
}

/* Invalid UTF-8: each maximal invalid subpart becomes one U+FFFD before encoding, as Python's
 * bytes.decode("utf-8", errors="replace") (the counts below are Python's). */
static void test_invalid_utf8(void) {
    static const struct {
        const char *in;
        size_t n;
        const char *out;
    } cases[] = {
        {"\xE2\x82", 2, "\xEF\xBF\xBD"},
        {"\xF0\x80\x80", 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"\xED\xA0\x80", 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"\xC0\xAF", 2, "\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"\xF4\x90\x80\x80", 4, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"a\xE2\x82" "b", 4, "a\xEF\xBF\xBD" "b"},
        {"\xE2\x82\xE2\x82\xAC", 5, "\xEF\xBF\xBD\xE2\x82\xAC"},
        {"\xF0\x9F\x98", 3, "\xEF\xBF\xBD"},
        {"ok \xFF", 4, "ok \xEF\xBF\xBD"},
    };
    for (int k = 0; k < 3; k++) {
        mofo_tokenizer *t = load(NAMES[k]);
        if (!t) return;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            mofo_strbuf sb = {0};
            mofo_utf8_lossy(&sb, cases[i].in, cases[i].n);
            CHECK(sb.len == strlen(cases[i].out) && memcmp(sb.data, cases[i].out, sb.len) == 0, "lossy case %zu", i);
            mofo_ids a = {0}, b = {0};
            mofo_err err = {0};
            CHECK(mofo_tokenizer_encode(t, cases[i].in, cases[i].n, 0, &a, &err) == 0, "%s", err.msg);
            CHECK(mofo_tokenizer_encode(t, cases[i].out, strlen(cases[i].out), 0, &b, &err) == 0, "%s", err.msg);
            CHECK(a.len == b.len && memcmp(a.ids, b.ids, a.len * sizeof *a.ids) == 0, "%s: invalid case %zu encodes as its U+FFFD form", NAMES[k], i);
            /* and the ids decode to the replaced text */
            mofo_strbuf d = {0};
            CHECK(mofo_tokenizer_decode(t, a.ids, a.len, 0, &d, &err) == 0 && d.len == sb.len && memcmp(d.data, sb.data, d.len) == 0,
                  "%s: decode of invalid case %zu", NAMES[k], i);
            mofo_ids_free(&a);
            mofo_ids_free(&b);
            mofo_sb_free(&sb);
            mofo_sb_free(&d);
        }
        /* ids whose bytes are not UTF-8: byte-level gives U+FFFD per maximal subpart
         * (from_utf8_lossy), byte fallback one U+FFFD per byte */
        int32_t ids[2];
        size_t n = 0;
        mofo_strbuf d = {0};
        mofo_err err = {0};
        if (k == 0) { ids[0] = 165; ids[1] = 104; n = 2; } /* "è", "ª": the first two bytes of 語 */
        if (k == 2) { ids[0] = 235; ids[1] = 173; n = 2; } /* <0xE8> <0xAA> */
        if (n) {
            CHECK(mofo_tokenizer_decode(t, ids, n, 0, &d, &err) == 0, "%s", err.msg);
            const char *want = k == 0 ? "\xEF\xBF\xBD" : "\xEF\xBF\xBD\xEF\xBF\xBD";
            CHECK(d.len == strlen(want) && memcmp(d.data, want, d.len) == 0, "%s: decoding a partial character gives \"%s\"", NAMES[k], d.data);
        }
        mofo_sb_free(&d);
        mofo_tokenizer_free(t);
    }
}

/* BOS/EOS/PAD from tokenizer_config.json and config.json. */
static void test_config(void) {
    mofo_tokenizer *t = load("sentencepiece-style");
    if (!t) return;
    mofo_err err = {0};
    CHECK(mofo_tokenizer_bos(t) == -1 && mofo_tokenizer_eos(t) == -1 && !mofo_tokenizer_adds_bos(t), "no specials before a config");
    const char *cfg = "{\"bos_token_id\": 1, \"eos_token_id\": [2, 0], \"pad_token_id\": 0}";
    CHECK(mofo_tokenizer_apply_config(t, NULL, 0, cfg, strlen(cfg), "m", &err) == 0, "%s", err.msg);
    CHECK(mofo_tokenizer_bos(t) == 1 && mofo_tokenizer_eos(t) == 2 && mofo_tokenizer_pad(t) == 0, "config.json ids");
    const char *tc = "{\"bos_token\": {\"content\": \"</s>\", \"lstrip\": false}, \"eos_token\": \"<s>\", \"add_bos_token\": true, \"add_eos_token\": true}";
    CHECK(mofo_tokenizer_apply_config(t, tc, strlen(tc), NULL, 0, "m", &err) == 0, "%s", err.msg);
    CHECK(mofo_tokenizer_bos(t) == 2 && mofo_tokenizer_eos(t) == 1 && mofo_tokenizer_adds_bos(t), "tokenizer_config.json takes precedence");
    mofo_ids ids = {0};
    CHECK(mofo_tokenizer_encode(t, "a", 1, 1, &ids, &err) == 0 && ids.len == 3 && ids.ids[0] == 2 && ids.ids[1] == 381 && ids.ids[2] == 1,
          "add_special: BOS a EOS");
    mofo_ids_free(&ids);
    CHECK(mofo_tokenizer_apply_config(t, "{", 1, NULL, 0, "m", &err) == MOFO_EFORMAT && strstr(err.msg, "m/tokenizer_config.json"), "%s", err.msg);
    /* a model directory without tokenizer.json */
    mofo_tokenizer *u = NULL;
    CHECK(mofo_tokenizer_load_dir(&u, "/nonexistent-dir", &err) == MOFO_EIO && !u && strstr(err.msg, "/nonexistent-dir/tokenizer.json"), "%s", err.msg);
    /* lookups */
    size_t n;
    const char *s = mofo_tokenizer_token(t, 2, &n);
    CHECK(s && n == 4 && memcmp(s, "</s>", 4) == 0 && mofo_tokenizer_is_special(t, 2) && !mofo_tokenizer_is_special(t, 381), "token 2");
    CHECK(mofo_tokenizer_token_id(t, "</s>", 4) == 2 && mofo_tokenizer_token_id(t, "zzzz", 4) == -1, "token_id");
    CHECK(mofo_tokenizer_token(t, 100000, &n) == NULL && mofo_tokenizer_vocab_size(t) == 700, "vocab size");
    /* decode: skip special, bad ids */
    int32_t ids2[] = {1, 381, 2};
    mofo_strbuf d = {0};
    CHECK(mofo_tokenizer_decode(t, ids2, 3, 1, &d, &err) == 0 && d.len == 1 && d.data[0] == 'a', "skip special");
    int32_t bad[] = {381, -3};
    CHECK(mofo_tokenizer_decode(t, bad, 2, 0, &d, &err) == MOFO_EINVAL && strstr(err.msg, "id -3 at position 1"), "%s", err.msg);
    mofo_sb_free(&d);
    mofo_tokenizer_free(t);
}

static void expect_load_error(const char *json, const char *want) {
    mofo_tokenizer *t = NULL;
    mofo_err err = {0};
    int rc = mofo_tokenizer_from_json(&t, json, strlen(json), "tok.json", &err);
    CHECK(rc == MOFO_EFORMAT && !t && strstr(err.msg, want), "load error: got \"%s\", want \"%s\"", err.msg, want);
    mofo_tokenizer_free(t);
}

static void test_load_errors(void) {
    expect_load_error("{\"model\": ", "tok.json: line 1, column 11: unexpected end of input");
    expect_load_error("[]", "tok.json: not a JSON object");
    expect_load_error("{}", "tok.json: no \"model\" object");
    expect_load_error("{\"model\": {\"type\": \"Unigram\", \"vocab\": {}, \"merges\": []}}", "model type \"Unigram\" is not supported");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"merges\": []}}", "model has no \"vocab\" object");
    /* Qwen2/3 and GPT-2 files carry "" for both (none to the tokenizers library); anything else is refused */
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": [], \"continuing_subword_prefix\": \"##\"}}",
                      "model.continuing_subword_prefix other than null");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": [], \"end_of_word_suffix\": \"</w>\"}}",
                      "model.end_of_word_suffix other than null");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": [], \"dropout\": 0.1}}",
                      "model.dropout other than null or 0");
    {
        const char *ok = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], "
                         "\"continuing_subword_prefix\": \"\", \"end_of_word_suffix\": \"\", \"dropout\": null}}";
        mofo_tokenizer *t = NULL;
        mofo_err err = {0};
        CHECK(mofo_tokenizer_from_json(&t, ok, strlen(ok), "tok.json", &err) == 0 && t, "empty prefix/suffix: %s", err.msg);
        mofo_tokenizer_free(t);
    }
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}", "vocab entry \"a\" (line 1) is not a valid id");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}", "merge at line 1 (\"a\" + \"b\") uses a token missing");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"ab\"]}}", "merge at line 1 is not \"a b\"");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [[\"a\"]]}}", "neither \"a b\" nor");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, \"normalizer\": {\"type\": \"NFKD\"}}",
                      "unsupported normalizer type \"NFKD\"");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Split\", "
                      "\"pattern\": {\"Regex\": \"(\"}, \"behavior\": \"Isolated\"}}", "tok.json: regex /(/ at offset 1");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Split\", "
                      "\"pattern\": {\"Regex\": \"a\"}, \"behavior\": \"Sideways\"}}", "unknown behavior \"Sideways\"");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Whitespace\"}}",
                      "unsupported pre_tokenizer type \"Whitespace\"");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, \"decoder\": {\"type\": \"WordPiece\"}}",
                      "unsupported decoder type \"WordPiece\"");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, \"post_processor\": {\"type\": \"BertProcessing\"}}",
                      "unsupported post_processor type \"BertProcessing\"");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, \"post_processor\": {\"type\": \"TemplateProcessing\", "
                      "\"single\": [{\"SpecialToken\": {\"id\": \"<x>\"}}]}}", "TemplateProcessing names unknown token \"<x>\"");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, \"added_tokens\": [{\"id\": 1}]}",
                      "added token at line 1 needs \"id\" and \"content\"");
    mofo_tokenizer *t = NULL;
    mofo_err err = {0};
    CHECK(mofo_tokenizer_load_file(&t, "/nonexistent/tokenizer.json", &err) == MOFO_EIO && strstr(err.msg, "/nonexistent/tokenizer.json"), "%s", err.msg);
}

/* Without a pre-tokenizer the whole text is one BPE word: the heap keeps it O(n log n). A
 * quadratic merge loop would take minutes here. */
/* The pattern rewrite on hand-made patterns. N16 is what Unicode 16.0 adds to N after 14.0 (the
 * @unicode packages' General_Category lists, as gen-unicode-classes.mjs reads them: the digits of
 * Garay, Myanmar Extended-C, Sunuwar, Kawi, Gurung Khema, Kirat Rai, the outlined digits, the
 * Kaktovik numerals, Nag Mundari and Ol Onal). */
#define N16 "\\x{10D40}-\\x{10D49}\\x{116D0}-\\x{116E3}\\x{11BF0}-\\x{11BF9}\\x{11F50}-\\x{11F59}\\x{16130}-\\x{16139}" \
            "\\x{16D70}-\\x{16D79}\\x{1CCF0}-\\x{1CCF9}\\x{1D2C0}-\\x{1D2D3}\\x{1E4F0}-\\x{1E4F9}\\x{1E5F1}-\\x{1E5FA}"
#define WS "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
#define NOT_WS "\\x{0}-\\x{8}\\x{E}-\\x{1F}\\x{21}-\\x{84}\\x{86}-\\x{9F}\\x{A1}-\\x{167F}\\x{1681}-\\x{1FFF}\\x{200B}-\\x{2027}" \
               "\\x{202A}-\\x{202E}\\x{2030}-\\x{205E}\\x{2060}-\\x{2FFF}\\x{3001}-\\x{10FFFF}"
static void test_unicode16_rewrite(void) {
    static const char *cases[][2] = {
        {"\\p{N}+", "[\\p{N}" N16 "]+"},
        {"\\pN", "[\\p{N}" N16 "]"},
        {"\\P{N}", "[^\\p{N}" N16 "]"},
        {"\\p{^N}", "[^\\p{N}" N16 "]"},
        {"[^\\s\\p{N}]", "[^" WS "\\p{N}" N16 "]"},
        {"\\s+(?!\\S)", "[" WS "]+(?![^" WS "])"},     /* \s: White_Space, not PCRE2's (U+180E) */
        {"[\\S]", "[" NOT_WS "]"},
        {"[^\\P{N}]", "[^\\P{N}]"},         /* negated inside a class: kept */
        {"[]\\p{N}]", "[]\\p{N}" N16 "]"},  /* ']' first is a literal */
        {"[^]x]\\p{Zs}", "[^]x]\\p{Zs}"},   /* no space separator since 14.0 */
        {"\\\\p{N}", "\\\\p{N}"},           /* an escaped backslash, then text */
        {"\\Q\\p{N}\\E\\p{Han}", "\\Q\\p{N}\\E\\p{Han}"}, /* literal; a script */
        {"[[:alpha:]\\d]", "[[:alpha:]\\d\\x{1E5F1}"}, /* checked by prefix below */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mofo_strbuf sb = {0};
        CHECK(mofo_regex_unicode16(cases[i][0], strlen(cases[i][0]), &sb) == 0, "rewrite %s", cases[i][0]);
        int prefix = i == sizeof cases / sizeof cases[0] - 1;
        const char *got = sb.data ? sb.data : "";
        CHECK(prefix ? strstr(got, "[[:alpha:]\\d") == got && strstr(got, "\\x{1E5F1}") && got[strlen(got) - 1] == ']'
                     : strcmp(got, cases[i][1]) == 0,
              "/%s/ -> /%s/, want /%s/", cases[i][0], got, cases[i][1]);
        mofo_sb_free(&sb);
    }
}

static void test_long_input(void) {
    mofo_tokenizer *t = load("sentencepiece-style");
    if (!t) return;
    size_t n = 1 << 19;
    char *s = malloc(n);
    for (size_t i = 0; i < n; i++) s[i] = "the quick brown fox "[i % 20];
    mofo_ids ids = {0};
    mofo_err err = {0};
    CHECK(mofo_tokenizer_encode(t, s, n, 0, &ids, &err) == 0 && ids.len > n / 10, "long input: %zu tokens", ids.len);
    mofo_strbuf d = {0};
    CHECK(mofo_tokenizer_decode(t, ids.ids, ids.len, 0, &d, &err) == 0 && d.len == n && memcmp(d.data, s, n) == 0, "long round trip");
    mofo_sb_free(&d);
    mofo_ids_free(&ids);
    /* a long run of byte-fallback tokens decodes as one run (語 is three <0xNN> tokens) */
    size_t m = 0;
    for (int i = 0; i < 3000; i++, m += 3) memcpy(s + m, "\xE8\xAA\x9E", 3);
    CHECK(mofo_tokenizer_encode(t, s, m, 0, &ids, &err) == 0 && ids.len == m + 1, "byte run: %zu tokens", ids.len);
    CHECK(mofo_tokenizer_decode(t, ids.ids, ids.len, 0, &d, &err) == 0 && d.len == m && memcmp(d.data, s, m) == 0, "byte run round trip");
    mofo_sb_free(&d);
    mofo_ids_free(&ids);
    free(s);
    mofo_tokenizer_free(t);
}

int main(void) {
    test_invalid_utf8();
    test_config();
    test_load_errors();
    test_long_input();
    test_unicode16_rewrite();
    /* cases.json: the shared fixtures; random.json: random strings through the same library
     * (gen_random.js beside them) */
    for (int i = 0; i < 3; i++) test_cases(NAMES[i], "cases", 0);
    for (int i = 0; i < 3; i++) test_cases(NAMES[i], "random", 0);
    /* one pipeline piece changed at a time (gen_variants.js) */
    static const char *variants[] = {"split-removed", "split-merged-previous", "split-merged-next", "split-contiguous",
                                     "split-invert", "bytelevel-prefix-space", "added-strip", "template", "replace-regex",
                                     "ignore-merges", "no-decoder", "sp-metaspace-decoder", "sp-metaspace-first",
                                     "sp-metaspace-split", "sp-metaspace-legacy", "nfc", "nfd", "llama3-nfc", "template-sequence", "llama3-many-added",
                                     /* Unicode 15 and 16 characters against the library's Unicode 16 classes */
                                     "unicode16-letters-numbers", "unicode16-negated-class", "unicode16-minor",
                                     "unicode16-negated", "unicode16-digits", "llama3-unicode16",
                                     /* \s as White_Space (not U+180E); added tokens with normalized=true */
                                     "white-space", "llama3-white-space", "added-normalized", "sp-added-normalized"};
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) test_cases(variants[i], NULL, 1);
    for (int i = 0; i < 3; i++) test_roundtrip(NAMES[i]);
    return CHECK_DONE();
}

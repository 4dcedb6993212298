/* The tokenizer against the tokenizers library: every case of tests/fixtures/tokenizers, round
 * trips on random valid UTF-8, invalid UTF-8, added tokens, configs and load errors. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "io/json.h"
#include "text/tokenizer.h"
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
        /* offsets are inside the text and in order */
        for (size_t k = 0; k < out.len; k++)
            CHECK(out.start[k] <= out.end[k] && (size_t)out.end[k] <= text->len && (k == 0 || out.start[k] >= out.start[k - 1]),
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

int main(void) {
    /* cases.json: the shared fixtures; random.json: random strings through the same library
     * (gen_random.js beside them) */
    for (int i = 0; i < 3; i++) test_cases(NAMES[i], "cases", 0);
    for (int i = 0; i < 3; i++) test_cases(NAMES[i], "random", 0);
    /* one pipeline piece changed at a time (gen_variants.js) */
    static const char *variants[] = {"split-removed", "split-merged-previous", "split-merged-next", "split-contiguous",
                                     "split-invert", "bytelevel-prefix-space", "added-strip", "template", "replace-regex",
                                     "ignore-merges", "no-decoder", "sp-metaspace-decoder"};
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) test_cases(variants[i], NULL, 1);
    for (int i = 0; i < 3; i++) test_roundtrip(NAMES[i]);
    return CHECK_DONE();
}

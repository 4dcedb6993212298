/* Real tokenizer.json files (GPT-2, Llama 2, Llama 3.2, Qwen3, Mistral Nemo, as published on the
 * Hugging Face Hub; fixtures/tokenizers/real, made by gen_real.js there) against the Hugging Face
 * tokenizers library: on ~300 KB of varied text each (prose in many scripts, code, whitespace runs,
 * numbers, emoji, the model's special tokens, invalid UTF-8), the ids of encode(text) with and without
 * special tokens and the text of decode(ids) with and without skipping them are the library's exactly.
 *
 * Each model is loaded as `mofo tokenize --model DIR` loads it (mofo_tokenizer_load_dir): its
 * tokenizer.json, gunzipped by `gzip -dc`, and its tokenizer_config.json are written to a temporary
 * directory. Texts whose bytes are not UTF-8 are fed to mofo as bytes; the reference ids are the
 * library's for their lossy decoding (one U+FFFD per maximal invalid subpart), which is what mofo
 * specifies for such input. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "io/json.h"
#include "io/strbuf.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

static const char *NAMES[] = {"gpt2", "llama2", "llama3_2", "qwen3", "mistral_nemo"};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The decompressed contents of a .gz file (malloc'd, NUL-terminated), by `gzip -dc`; NULL on failure. */
static char *gunzip(const char *path, size_t *len) {
    if (strchr(path, '\'')) return NULL;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "gzip -dc -- '%s'", path);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, p);
        if (n < cap - 1) break;
        char *nb = realloc(buf, cap *= 2);
        if (!nb) free(buf);
        buf = nb;
    }
    int status = pclose(p);
    if (!buf || status != 0) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static int write_file(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

/* RFC 4648 base64 (no line breaks); returns the decoded length or -1. */
static long base64_decode(const char *s, size_t n, unsigned char *out) {
    static signed char val[256];
    static int ready;
    if (!ready) {
        ready = 1;
        memset(val, -1, sizeof val);
        const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (int i = 0; i < 64; i++) val[(unsigned char)a[i]] = (signed char)i;
    }
    long o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=') break;
        int v = val[(unsigned char)s[i]];
        if (v < 0) return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return o;
}

/* The ids of a JSON array into v (cleared first); 0 when one is not an integer. */
static int json_ids(const mofo_json *a, mofo_ids *v) {
    v->len = 0;
    if (!a || a->type != MOFO_JSON_ARRAY) return 0;
    if (a->count > v->cap) {
        int32_t *p = realloc(v->ids, a->count * sizeof *p);
        if (!p) return 0;
        v->ids = p;
        v->cap = a->count;
    }
    for (const mofo_json *x = a->child; x; x = x->next) {
        int64_t id;
        if (!mofo_json_int64(x, &id) || id < 0 || id > INT32_MAX) return 0;
        v->ids[v->len++] = (int32_t)id;
    }
    return 1;
}

/* s[0..n) with bytes that are not printable ASCII escaped, into a short line */
static void put_escaped(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stderr);
        else if (c == '\r') fputs("\\r", stderr);
        else if (c == '\t') fputs("\\t", stderr);
        else if (c == '\\' || c == '"') fprintf(stderr, "\\%c", c);
        else if (c >= 0x20 && c < 0x7F) fputc(c, stderr);
        else if (c >= 0x80) fputc(c, stderr); /* UTF-8 as it is: the terminal shows it */
        else fprintf(stderr, "\\x%02X", c);
    }
}

static void put_ids(const mofo_tokenizer *t, const char *label, const int32_t *ids, size_t n, size_t from, size_t to) {
    fprintf(stderr, "    %s (ids %zu..%zu of %zu):", label, from, to < n ? to : n, n);
    for (size_t k = from; k < to && k < n; k++) {
        size_t tl = 0;
        const char *ts = mofo_tokenizer_token(t, ids[k], &tl);
        fprintf(stderr, " %d \"", (int)ids[k]);
        if (ts) put_escaped(ts, tl);
        fputc('"', stderr);
    }
    fputc('\n', stderr);
}

/* Where two id lists first differ, with the text around the place (offsets: mofo's tokens, in
 * the U+FFFD-replaced text). */
static void show_id_mismatch(const mofo_tokenizer *t, const char *name, int case_no, int special, const char *text, size_t len,
                             const mofo_ids *want, const mofo_ids *got) {
    size_t k = 0;
    while (k < want->len && k < got->len && want->ids[k] == got->ids[k]) k++;
    size_t at = k < got->len ? (size_t)got->start[k] : len;
    size_t a = at > 60 ? at - 60 : 0, z = at + 60 < len ? at + 60 : len;
    while (a > 0 && ((unsigned char)text[a] & 0xC0) == 0x80) a--;
    while (z < len && ((unsigned char)text[z] & 0xC0) == 0x80) z++;
    fprintf(stderr, "  first mismatch: %s case %d (%zu bytes)%s: ids differ at id %zu (got %zu ids, want %zu), text byte %zu:\n    \"",
            name, case_no, len, special ? ", add_special_tokens" : "", k, got->len, want->len, at);
    put_escaped(text + a, at - a);
    fputs("\" >>> \"", stderr);
    put_escaped(text + at, z - at);
    fputs("\"\n", stderr);
    size_t from = k > 4 ? k - 4 : 0;
    put_ids(t, "want", want->ids, want->len, from, k + 8);
    put_ids(t, "got ", got->ids, got->len, from, k + 8);
}

static void show_text_mismatch(const char *name, int case_no, const char *what, const char *want, size_t wn, const char *got, size_t gn) {
    size_t k = 0;
    while (k < wn && k < gn && want[k] == got[k]) k++;
    size_t a = k > 60 ? k - 60 : 0;
    while (a > 0 && ((unsigned char)want[a] & 0xC0) == 0x80) a--;
    fprintf(stderr, "  first mismatch: %s case %d: %s differs at byte %zu (got %zu bytes, want %zu):\n    want \"", name, case_no, what, k, gn, wn);
    put_escaped(want + a, (wn < k + 60 ? wn : k + 60) - a);
    fputs("\"\n    got  \"", stderr);
    put_escaped(got + a, (gn < k + 60 ? gn : k + 60) - a);
    fputs("\"\n", stderr);
}

static int same_ids(const mofo_ids *a, const mofo_ids *b) {
    return a->len == b->len && (a->len == 0 || memcmp(a->ids, b->ids, a->len * sizeof *a->ids) == 0);
}

/* Writes NAME's tokenizer.json (gunzipped) and tokenizer_config.json into a new directory and loads
 * it as a model directory. */
static mofo_tokenizer *load_model_dir(const char *name) {
    char path[600], dir[64], file[128];
    snprintf(dir, sizeof dir, "/tmp/mofo-test-tokreal-XXXXXX");
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp: cannot make a temporary directory");
        return NULL;
    }
    size_t n = 0, cn = 0;
    snprintf(path, sizeof path, "%s/tokenizers/real/%s.tokenizer.json.gz", MOFO_FIXTURES, name);
    char *json = gunzip(path, &n);
    CHECK(json != NULL, "%s: cannot decompress it with `gzip -dc` (gzip is in every Debian install)", path);
    snprintf(path, sizeof path, "%s/tokenizers/real/%s.tokenizer_config.json", MOFO_FIXTURES, name);
    char *cfg = slurp(path, &cn);
    CHECK(cfg != NULL, "%s: cannot read it", path);
    mofo_tokenizer *t = NULL;
    if (json && cfg) {
        snprintf(file, sizeof file, "%s/tokenizer.json", dir);
        CHECK(write_file(file, json, n) == 0, "cannot write %s", file);
        snprintf(file, sizeof file, "%s/tokenizer_config.json", dir);
        CHECK(write_file(file, cfg, cn) == 0, "cannot write %s", file);
        mofo_err err = {0};
        int rc = mofo_tokenizer_load_dir(&t, dir, &err);
        CHECK(rc == 0 && t, "%s: load: %s", name, err.msg);
    }
    snprintf(file, sizeof file, "%s/tokenizer.json", dir);
    unlink(file);
    snprintf(file, sizeof file, "%s/tokenizer_config.json", dir);
    unlink(file);
    rmdir(dir);
    free(json);
    free(cfg);
    return t;
}

static void test_real(const char *name) {
    double t0 = now();
    mofo_tokenizer *t = load_model_dir(name);
    if (!t) return;
    double t_load = now() - t0;
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizers/real/%s.cases.json.gz", MOFO_FIXTURES, name);
    size_t n = 0;
    char *data = gunzip(path, &n);
    CHECK(data != NULL, "%s: cannot decompress it with `gzip -dc`", path);
    mofo_err err = {0};
    mofo_json_doc *doc = data ? mofo_json_parse(data, n, &err) : NULL;
    CHECK(!data || doc, "%s: %s", path, err.msg);
    const mofo_json *cases = doc ? mofo_json_get(mofo_json_root(doc), "cases") : NULL;
    CHECK(!doc || (cases && cases->type == MOFO_JSON_ARRAY), "%s: no \"cases\" array", path);
    t0 = now();
    size_t texts = 0, bytes = 0, tokens = 0, bad_text = 0;
    size_t id_bad[2] = {0, 0}, dec_bad[2] = {0, 0};
    int shown = 0; /* mismatches shown in detail: the first, or MOFO_TEST_SHOW=N */
    const char *show_env = getenv("MOFO_TEST_SHOW");
    int max_shown = show_env ? atoi(show_env) : 1;
    mofo_ids want = {0}, got = {0};
    got.want_offsets = 1;
    unsigned char *raw = NULL;
    size_t raw_cap = 0;
    mofo_strbuf dec = {0}, shown_text = {0};
    int case_no = 0;
    for (const mofo_json *c = cases ? cases->child : NULL; c; c = c->next, case_no++) {
        const mofo_json *jt = mofo_json_get(c, "text"), *jb = mofo_json_get(c, "bytes");
        const char *text;
        size_t len;
        if (jt && jt->type == MOFO_JSON_STRING) {
            text = jt->str;
            len = jt->len;
        } else if (jb && jb->type == MOFO_JSON_STRING) {
            if (jb->len > raw_cap) {
                free(raw);
                raw = malloc(raw_cap = jb->len + 1);
            }
            long r = raw ? base64_decode(jb->str, jb->len, raw) : -1;
            if (r < 0) {
                CHECK(0, "%s case %d: bad base64", name, case_no);
                bad_text++;
                continue;
            }
            text = (const char *)raw;
            len = (size_t)r;
        } else {
            CHECK(0, "%s case %d: neither \"text\" nor \"bytes\"", name, case_no);
            bad_text++;
            continue;
        }
        texts++;
        bytes += len;
        /* the text as the library saw it, for the messages */
        shown_text.len = 0;
        mofo_utf8_lossy(&shown_text, text, len);
        const char *lossy = shown_text.data ? shown_text.data : "";
        /* encode, without and with special tokens */
        const mofo_json *ref[2] = {mofo_json_get(c, "ids"), mofo_json_get(c, "ids_special")};
        if (!ref[1]) ref[1] = ref[0]; /* left out: the same ids */
        for (int special = 0; special < 2; special++) {
            if (!json_ids(ref[special], &want)) {
                CHECK(0, "%s case %d: bad \"ids%s\"", name, case_no, special ? "_special" : "");
                id_bad[special]++;
                continue;
            }
            if (!special) tokens += want.len;
            got.len = 0;
            if (mofo_tokenizer_encode(t, text, len, special, &got, &err)) {
                CHECK(0, "%s case %d: encode: %s", name, case_no, err.msg);
                id_bad[special]++;
                continue;
            }
            if (!same_ids(&want, &got)) {
                if (shown++ < max_shown) show_id_mismatch(t, name, case_no, special, lossy, shown_text.len, &want, &got);
                id_bad[special]++;
            }
        }
        /* decode the reference ids, keeping and skipping special tokens */
        if (!json_ids(ref[0], &want)) continue;
        const mofo_json *jd = mofo_json_get(c, "decoded"), *js = mofo_json_get(c, "decoded_skip");
        if (!jd) jd = jt; /* left out: the text itself */
        if (!js) js = jd; /* left out: the same as decoded */
        for (int skip = 0; skip < 2; skip++) {
            const mofo_json *w = skip ? js : jd;
            if (!w || w->type != MOFO_JSON_STRING) {
                CHECK(0, "%s case %d: no \"decoded\" text", name, case_no);
                dec_bad[skip]++;
                continue;
            }
            dec.len = 0;
            if (mofo_tokenizer_decode(t, want.ids, want.len, skip, &dec, &err)) {
                CHECK(0, "%s case %d: decode: %s", name, case_no, err.msg);
                dec_bad[skip]++;
                continue;
            }
            if (dec.len != w->len || (dec.len && memcmp(dec.data, w->str, dec.len) != 0)) {
                if (shown++ < max_shown) show_text_mismatch(name, case_no, skip ? "decode(skip_special_tokens)" : "decode", w->str, w->len,
                                                 dec.data ? dec.data : "", dec.len);
                dec_bad[skip]++;
            }
        }
    }
    double t_run = now() - t0;
    size_t bad = id_bad[0] + id_bad[1] + dec_bad[0] + dec_bad[1] + bad_text;
    printf("%-13s %4zu texts, %7zu bytes, %7zu tokens: mismatches: ids %zu, ids with special tokens %zu, decode %zu, "
           "decode skipping special %zu (load %.2f s, encode+decode %.2f s)\n",
           name, texts, bytes, tokens, id_bad[0], id_bad[1], dec_bad[0], dec_bad[1], t_load, t_run);
    fflush(stdout);
    CHECK(bad == 0, "%s: %zu mismatches", name, bad);
    /* a truncated or empty fixture must not pass */
    CHECK(texts >= 150 && bytes >= 256 * 1024, "%s: only %zu texts, %zu bytes", name, texts, bytes);
    mofo_ids_free(&want);
    mofo_ids_free(&got);
    mofo_sb_free(&dec);
    mofo_sb_free(&shown_text);
    free(raw);
    mofo_json_free(doc);
    free(data);
    mofo_tokenizer_free(t);
}

int main(int argc, char **argv) {
    /* one tokenizer by name, or all */
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (argc < 2 || strcmp(argv[1], NAMES[i]) == 0) test_real(NAMES[i]);
    return CHECK_DONE();
}

/* tokenizer.json BPE: load, encode (added tokens, normalizer, pre-tokenizer, BPE), decode. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/tokenizer.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "io/strbuf.h"
#include "text/unicode_classes.h"
#include "text/unicode_nfc.h"
#include "text/utf8.h"

/* ------------------------------------------------------------------------------------------------
 * Hash maps: bytes -> id (the vocabulary), and (id, id) -> (rank, id) (the merges). */

typedef struct {
    const char *s;
    uint32_t len, hash;
    int32_t id;
} smap_ent;

typedef struct {
    smap_ent *e;
    size_t mask, n;
} smap;

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int smap_init(smap *m, size_t want) {
    size_t cap = 16;
    while (cap < want * 2 + 2) cap *= 2;
    m->e = calloc(cap, sizeof *m->e);
    m->mask = cap - 1;
    m->n = 0;
    return m->e ? 0 : -1;
}

static int32_t smap_get(const smap *m, const char *s, size_t n) {
    if (!m->e) return -1;
    uint32_t h = hash_bytes(s, n);
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        const smap_ent *e = &m->e[i];
        if (!e->s) return -1;
        if (e->hash == h && e->len == n && memcmp(e->s, s, n) == 0) return e->id;
    }
}

/* Keeps the first id given for a spelling. The map is sized at init and never grows. */
static void smap_put(smap *m, const char *s, size_t n, int32_t id) {
    uint32_t h = hash_bytes(s, n);
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        smap_ent *e = &m->e[i];
        if (!e->s) {
            e->s = s;
            e->len = (uint32_t)n;
            e->hash = h;
            e->id = id;
            m->n++;
            return;
        }
        if (e->hash == h && e->len == n && memcmp(e->s, s, n) == 0) return;
    }
}

typedef struct {
    uint64_t *keys; /* pair + 1; 0 marks an empty slot */
    uint64_t *vals; /* rank << 32 | merged id */
    size_t mask;
} pmap;

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static int pmap_init(pmap *m, size_t want) {
    size_t cap = 16;
    while (cap < want * 2 + 2) cap *= 2;
    m->keys = calloc(cap, sizeof *m->keys);
    m->vals = malloc(cap * sizeof *m->vals);
    m->mask = cap - 1;
    return m->keys && m->vals ? 0 : -1;
}

static inline uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1; }

/* Returns 0 when the pair was new. */
static int pmap_put(pmap *m, int32_t a, int32_t b, uint64_t val) {
    uint64_t k = pair_key(a, b);
    for (size_t i = mix64(k) & m->mask;; i = (i + 1) & m->mask) {
        if (m->keys[i] == 0) {
            m->keys[i] = k;
            m->vals[i] = val;
            return 0;
        }
        if (m->keys[i] == k) return 1;
    }
}

static inline int pmap_get(const pmap *m, int32_t a, int32_t b, uint64_t *val) {
    if (!m->keys) return 0;
    uint64_t k = pair_key(a, b);
    for (size_t i = mix64(k) & m->mask;; i = (i + 1) & m->mask) {
        if (m->keys[i] == k) {
            *val = m->vals[i];
            return 1;
        }
        if (m->keys[i] == 0) return 0;
    }
}

/* ------------------------------------------------------------------------------------------------
 * The tokenizer. */

enum { NORM_PREPEND, NORM_REPLACE, NORM_NFC, NORM_NFD };
typedef struct {
    int type;
    const char *a; /* Prepend: the prefix; Replace: the pattern when a string */
    size_t alen;
    const char *b; /* Replace: the content */
    size_t blen;
    pcre2_code *re; /* Replace with a Regex pattern */
} norm_step;

enum { PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE };
enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };
enum { SPLIT_ISOLATED, SPLIT_REMOVED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS };
typedef struct {
    int type;
    pcre2_code *re; /* Split, or ByteLevel with use_regex */
    int behavior, invert;
    int add_prefix_space;
    const char *rep; /* Metaspace: the replacement character, prepend scheme */
    size_t rep_len;
    int prepend;
} pre_step;

enum { DEC_BYTELEVEL, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE };
typedef struct {
    int type;
    const char *a, *b; /* Replace: pattern, content; Strip/Metaspace: the character */
    size_t alen, blen;
    int start, stop; /* Strip; Metaspace: start = strip the first token's leading space */
} dec_step;

typedef struct {
    const char *s; /* the content */
    size_t len;
    const char *pat; /* what is matched: the content, or with normalized, the content normalized */
    size_t pat_len;
    int32_t id;
    int special, lstrip, rstrip, single_word, normalized;
} added_tok;

/* A byte trie of added tokens' patterns: root[b] is the node after first byte b (-1: none). */
typedef struct {
    struct trie_node {
        int32_t child, sibling, tok; /* tok: index in added ending here, or -1 */
        unsigned char byte;
    } *node;
    int32_t n, root[256];
} added_trie;

#define MAX_STEPS 16

struct mofo_tokenizer {
    mofo_json_doc *doc; /* every string below points into it */
    int32_t n_ids;
    const char **id_str;
    uint32_t *id_len;
    unsigned char *id_special;
    smap vocab, added_map;
    pmap merges;
    int byte_fallback, fuse_unk, ignore_merges;
    int32_t unk_id;
    int32_t byte_level_id[256]; /* ByteLevel: the vocabulary id of each byte's character */
    int32_t byte_fb_id[256];    /* byte fallback: <0xNN> */
    int32_t ascii_id[128];
    added_tok *added;
    int n_added;
    /* The added tokens as the library matches them: those with normalized=false in the raw text,
     * then those with normalized=true in the normalized text between (their content normalized). */
    added_trie trie_raw, trie_norm;
    char *norm_pool; /* the normalized contents */
    norm_step norm[MAX_STEPS];
    int n_norm;
    pre_step pre[MAX_STEPS];
    int n_pre;
    int byte_level; /* a ByteLevel pre-tokenizer maps bytes to characters */
    dec_step dec[MAX_STEPS];
    int n_dec;
    int32_t prefix[4], suffix[4]; /* the post-processor's special tokens around a sequence */
    int n_prefix, n_suffix;
    int32_t bos, eos, pad;
    size_t max_groups; /* for pcre2 match data */
};

/* GPT-2's pre-tokenizer regex, as the tokenizers library's ByteLevel uses it. */
static const char GPT2_REGEX[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* bytes_to_unicode(): printable Latin-1 bytes map to themselves, the others to U+0100 on. */
static uint32_t byte_to_cp(int b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return (uint32_t)b;
    int n = 0;
    for (int i = 0; i < b; i++)
        if (!((i >= 0x21 && i <= 0x7E) || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF))) n++;
    return 256u + (uint32_t)n;
}

static int cp_to_byte(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) return (int)cp;
    if (cp < 256 || cp >= 256 + 68) return -1;
    int n = (int)(cp - 256);
    for (int b = 0; b < 256; b++)
        if (!((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) && n-- == 0) return b;
    return -1;
}

static void free_steps(mofo_tokenizer *t) {
    for (int i = 0; i < t->n_norm; i++) pcre2_code_free(t->norm[i].re);
    for (int i = 0; i < t->n_pre; i++) pcre2_code_free(t->pre[i].re);
}

void mofo_tokenizer_free(mofo_tokenizer *t) {
    if (!t) return;
    free_steps(t);
    free(t->id_str);
    free(t->id_len);
    free(t->id_special);
    free(t->vocab.e);
    free(t->added_map.e);
    free(t->merges.keys);
    free(t->merges.vals);
    free(t->added);
    free(t->trie_raw.node);
    free(t->trie_norm.node);
    free(t->norm_pool);
    mofo_json_free(t->doc);
    free(t);
}

/* A regex as the tokenizers library matches it: a pattern's general categories as Unicode 16 has
 * them (unicode_classes.h); a literal (String pattern) as it is. Errors name the original pattern. */
static pcre2_code *compile_re(const char *pat, size_t len, int literal, const char *name, mofo_err *err) {
    int code;
    PCRE2_SIZE off;
    mofo_strbuf u16 = {0};
    if (!literal && mofo_regex_unicode16(pat, len, &u16)) {
        mofo_sb_free(&u16);
        mofo_errf(err, MOFO_ENOMEM, "%s: out of memory for its regex", name);
        return NULL;
    }
    uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    pcre2_code *re = literal ? pcre2_compile((PCRE2_SPTR)pat, len, opts, &code, &off, NULL)
                             : pcre2_compile((PCRE2_SPTR)(u16.data ? u16.data : ""), u16.len, opts, &code, &off, NULL);
    mofo_sb_free(&u16);
    if (!re) {
        int plain_code = code;
        pcre2_code *plain = literal ? NULL : pcre2_compile((PCRE2_SPTR)pat, len, opts, &plain_code, &off, NULL);
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(plain ? code : plain_code, msg, sizeof msg);
        if (plain) mofo_errf(err, MOFO_EFORMAT, "%s: regex /%.*s/ does not compile with the Unicode 16 categories: %s", name,
                             (int)(len > 200 ? 200 : len), pat, (const char *)msg);
        else mofo_errf(err, MOFO_EFORMAT, "%s: regex /%.*s/ at offset %zu: %s", name, (int)(len > 200 ? 200 : len),
                       pat, (size_t)off, (const char *)msg);
        pcre2_code_free(plain);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter when JIT is absent */
    return re;
}

static const char *jstr(const mofo_json *o, const char *key, size_t *len) {
    const mofo_json *v = mofo_json_get(o, key);
    if (!v || v->type != MOFO_JSON_STRING) return NULL;
    if (len) *len = v->len;
    return v->str;
}

static int jbool(const mofo_json *o, const char *key, int dflt) {
    const mofo_json *v = mofo_json_get(o, key);
    return v && v->type == MOFO_JSON_BOOL ? v->boolean : dflt;
}

static int is_type(const mofo_json *o, const char *t) {
    size_t n;
    const char *s = jstr(o, "type", &n);
    return s && n == strlen(t) && memcmp(s, t, n) == 0;
}

/* A {"String": s} or {"Regex": r} pattern. */
static int get_pattern(const mofo_json *p, const char **s, size_t *n, int *is_regex, const char *name, mofo_err *err) {
    if ((*s = jstr(p, "String", n))) {
        *is_regex = 0;
        return 0;
    }
    if ((*s = jstr(p, "Regex", n))) {
        *is_regex = 1;
        return 0;
    }
    return mofo_errf(err, MOFO_EFORMAT, "%s: a pattern must be {\"String\": ...} or {\"Regex\": ...}", name);
}

static int load_normalizer(mofo_tokenizer *t, const mofo_json *n, const char *name, mofo_err *err) {
    if (!n || n->type == MOFO_JSON_NULL) return 0;
    if (is_type(n, "Sequence")) {
        const mofo_json *list = mofo_json_get(n, "normalizers");
        if (!list || list->type != MOFO_JSON_ARRAY) return mofo_errf(err, MOFO_EFORMAT, "%s: normalizer Sequence without a \"normalizers\" array", name);
        for (const mofo_json *c = list->child; c; c = c->next)
            if (load_normalizer(t, c, name, err)) return err ? err->code : MOFO_EFORMAT;
        return 0;
    }
    if (t->n_norm >= MAX_STEPS) return mofo_errf(err, MOFO_EFORMAT, "%s: too many normalizers", name);
    norm_step *s = &t->norm[t->n_norm];
    memset(s, 0, sizeof *s);
    if (is_type(n, "Prepend")) {
        s->type = NORM_PREPEND;
        if (!(s->a = jstr(n, "prepend", &s->alen))) return mofo_errf(err, MOFO_EFORMAT, "%s: Prepend normalizer without \"prepend\"", name);
    } else if (is_type(n, "Replace")) {
        s->type = NORM_REPLACE;
        int is_re = 0;
        if (get_pattern(mofo_json_get(n, "pattern"), &s->a, &s->alen, &is_re, name, err)) return MOFO_EFORMAT;
        if (!(s->b = jstr(n, "content", &s->blen))) return mofo_errf(err, MOFO_EFORMAT, "%s: Replace normalizer without \"content\"", name);
        if (is_re && !(s->re = compile_re(s->a, s->alen, 0, name, err))) return MOFO_EFORMAT;
        if (!is_re && s->alen == 0) return mofo_errf(err, MOFO_EFORMAT, "%s: Replace normalizer with an empty pattern", name);
    } else if (is_type(n, "NFC")) {
        s->type = NORM_NFC;
    } else if (is_type(n, "NFD")) {
        s->type = NORM_NFD;
    } else {
        size_t tn = 0;
        const char *ty = jstr(n, "type", &tn);
        return mofo_errf(err, MOFO_EFORMAT, "%s: unsupported normalizer type \"%.*s\"", name, (int)tn, ty ? ty : "?");
    }
    t->n_norm++;
    return 0;
}

static int load_pre(mofo_tokenizer *t, const mofo_json *p, const char *name, mofo_err *err) {
    if (!p || p->type == MOFO_JSON_NULL) return 0;
    if (is_type(p, "Sequence")) {
        const mofo_json *list = mofo_json_get(p, "pretokenizers");
        if (!list || list->type != MOFO_JSON_ARRAY) return mofo_errf(err, MOFO_EFORMAT, "%s: pre_tokenizer Sequence without a \"pretokenizers\" array", name);
        for (const mofo_json *c = list->child; c; c = c->next)
            if (load_pre(t, c, name, err)) return err ? err->code : MOFO_EFORMAT;
        return 0;
    }
    if (t->n_pre >= MAX_STEPS) return mofo_errf(err, MOFO_EFORMAT, "%s: too many pre-tokenizers", name);
    if (t->byte_level) return mofo_errf(err, MOFO_EFORMAT, "%s: a pre-tokenizer after ByteLevel is not supported", name);
    pre_step *s = &t->pre[t->n_pre];
    memset(s, 0, sizeof *s);
    if (is_type(p, "ByteLevel")) {
        s->type = PRE_BYTELEVEL;
        s->add_prefix_space = jbool(p, "add_prefix_space", 1);
        s->behavior = SPLIT_ISOLATED;
        if (jbool(p, "use_regex", 1) && !(s->re = compile_re(GPT2_REGEX, sizeof GPT2_REGEX - 1, 0, name, err))) return MOFO_EFORMAT;
        t->byte_level = 1;
    } else if (is_type(p, "Metaspace")) {
        s->type = PRE_METASPACE;
        if (!(s->rep = jstr(p, "replacement", &s->rep_len))) {
            s->rep = "\xE2\x96\x81";
            s->rep_len = 3;
        }
        size_t n = 0;
        const char *scheme = jstr(p, "prepend_scheme", &n);
        if (!scheme) s->prepend = jbool(p, "add_prefix_space", 1) ? PREPEND_ALWAYS : PREPEND_NEVER;
        else if (n == 6 && memcmp(scheme, "always", 6) == 0) s->prepend = PREPEND_ALWAYS;
        else if (n == 5 && memcmp(scheme, "first", 5) == 0) s->prepend = PREPEND_FIRST;
        else if (n == 5 && memcmp(scheme, "never", 5) == 0) s->prepend = PREPEND_NEVER;
        else return mofo_errf(err, MOFO_EFORMAT, "%s: Metaspace with unknown prepend_scheme \"%.*s\"", name, (int)n, scheme);
        s->behavior = SPLIT_MERGED_NEXT;
        if (jbool(p, "split", 1) && !(s->re = compile_re(s->rep, s->rep_len, 1, name, err))) return MOFO_EFORMAT;
    } else if (is_type(p, "Split")) {
        s->type = PRE_SPLIT;
        const char *pat = NULL;
        size_t plen = 0;
        int is_re = 0;
        if (get_pattern(mofo_json_get(p, "pattern"), &pat, &plen, &is_re, name, err)) return MOFO_EFORMAT;
        if (!(s->re = compile_re(pat, plen, !is_re, name, err))) return MOFO_EFORMAT;
        s->invert = jbool(p, "invert", 0);
        size_t bn = 0;
        const char *b = jstr(p, "behavior", &bn);
        static const char *names[] = {"Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
        s->behavior = -1;
        for (int i = 0; i < 5; i++)
            if (b && bn == strlen(names[i]) && memcmp(b, names[i], bn) == 0) s->behavior = i;
        if (s->behavior < 0) {
            pcre2_code_free(s->re);
            return mofo_errf(err, MOFO_EFORMAT, "%s: Split pre-tokenizer with unknown behavior \"%.*s\"", name, (int)bn, b ? b : "?");
        }
    } else {
        size_t tn = 0;
        const char *ty = jstr(p, "type", &tn);
        return mofo_errf(err, MOFO_EFORMAT, "%s: unsupported pre_tokenizer type \"%.*s\"", name, (int)tn, ty ? ty : "?");
    }
    t->n_pre++;
    return 0;
}

static int load_decoder(mofo_tokenizer *t, const mofo_json *d, const char *name, mofo_err *err) {
    if (!d || d->type == MOFO_JSON_NULL) return 0;
    if (is_type(d, "Sequence")) {
        const mofo_json *list = mofo_json_get(d, "decoders");
        if (!list || list->type != MOFO_JSON_ARRAY) return mofo_errf(err, MOFO_EFORMAT, "%s: decoder Sequence without a \"decoders\" array", name);
        for (const mofo_json *c = list->child; c; c = c->next)
            if (load_decoder(t, c, name, err)) return err ? err->code : MOFO_EFORMAT;
        return 0;
    }
    if (t->n_dec >= MAX_STEPS) return mofo_errf(err, MOFO_EFORMAT, "%s: too many decoders", name);
    dec_step *s = &t->dec[t->n_dec];
    memset(s, 0, sizeof *s);
    if (is_type(d, "ByteLevel")) {
        s->type = DEC_BYTELEVEL;
    } else if (is_type(d, "Replace")) {
        s->type = DEC_REPLACE;
        int is_re = 0;
        if (get_pattern(mofo_json_get(d, "pattern"), &s->a, &s->alen, &is_re, name, err)) return MOFO_EFORMAT;
        if (is_re || s->alen == 0) return mofo_errf(err, MOFO_EFORMAT, "%s: Replace decoder: only a non-empty String pattern is supported", name);
        if (!(s->b = jstr(d, "content", &s->blen))) return mofo_errf(err, MOFO_EFORMAT, "%s: Replace decoder without \"content\"", name);
    } else if (is_type(d, "ByteFallback")) {
        s->type = DEC_BYTEFALLBACK;
    } else if (is_type(d, "Fuse")) {
        s->type = DEC_FUSE;
    } else if (is_type(d, "Strip")) {
        s->type = DEC_STRIP;
        int64_t a = 0, b = 0;
        if (!(s->a = jstr(d, "content", &s->alen)) || !mofo_json_int64(mofo_json_get(d, "start"), &a) ||
            !mofo_json_int64(mofo_json_get(d, "stop"), &b) || a < 0 || b < 0)
            return mofo_errf(err, MOFO_EFORMAT, "%s: Strip decoder needs \"content\", \"start\" and \"stop\"", name);
        s->start = (int)a;
        s->stop = (int)b;
    } else if (is_type(d, "Metaspace")) {
        s->type = DEC_METASPACE;
        if (!(s->a = jstr(d, "replacement", &s->alen))) {
            s->a = "\xE2\x96\x81";
            s->alen = 3;
        }
        size_t n = 0;
        const char *scheme = jstr(d, "prepend_scheme", &n);
        s->start = scheme ? !(n == 5 && memcmp(scheme, "never", 5) == 0) : jbool(d, "add_prefix_space", 1);
    } else {
        size_t tn = 0;
        const char *ty = jstr(d, "type", &tn);
        return mofo_errf(err, MOFO_EFORMAT, "%s: unsupported decoder type \"%.*s\"", name, (int)tn, ty ? ty : "?");
    }
    t->n_dec++;
    return 0;
}

static int32_t lookup_special(const mofo_json *specials, const char *tokname, size_t n, const mofo_tokenizer *t) {
    for (const mofo_json *c = specials ? specials->child : NULL; c; c = c->next) {
        if (c->key_len != n || memcmp(c->key, tokname, n) != 0) continue;
        const mofo_json *ids = mofo_json_get(c, "ids");
        int64_t id;
        if (ids && ids->type == MOFO_JSON_ARRAY && ids->count == 1 && mofo_json_int64(ids->child, &id)) return (int32_t)id;
    }
    return mofo_tokenizer_token_id(t, tokname, n);
}

static int load_post(mofo_tokenizer *t, const mofo_json *p, const char *name, mofo_err *err) {
    if (!p || p->type == MOFO_JSON_NULL || is_type(p, "ByteLevel")) return 0;
    if (is_type(p, "Sequence")) {
        const mofo_json *list = mofo_json_get(p, "processors");
        for (const mofo_json *c = list ? list->child : NULL; c; c = c->next)
            if (load_post(t, c, name, err)) return err ? err->code : MOFO_EFORMAT;
        return 0;
    }
    if (!is_type(p, "TemplateProcessing")) {
        size_t tn = 0;
        const char *ty = jstr(p, "type", &tn);
        return mofo_errf(err, MOFO_EFORMAT, "%s: unsupported post_processor type \"%.*s\"", name, (int)tn, ty ? ty : "?");
    }
    const mofo_json *single = mofo_json_get(p, "single"), *specials = mofo_json_get(p, "special_tokens");
    if (!single || single->type != MOFO_JSON_ARRAY) return mofo_errf(err, MOFO_EFORMAT, "%s: TemplateProcessing without \"single\"", name);
    int after = 0;
    t->n_prefix = t->n_suffix = 0;
    for (const mofo_json *c = single->child; c; c = c->next) {
        if (mofo_json_get(c, "Sequence")) {
            after = 1;
            continue;
        }
        const mofo_json *st = mofo_json_get(c, "SpecialToken");
        size_t n;
        const char *idname = st ? jstr(st, "id", &n) : NULL;
        if (!idname) return mofo_errf(err, MOFO_EFORMAT, "%s: TemplateProcessing item is neither Sequence nor SpecialToken", name);
        int32_t id = lookup_special(specials, idname, n, t);
        if (id < 0) return mofo_errf(err, MOFO_EFORMAT, "%s: TemplateProcessing names unknown token \"%.*s\"", name, (int)n, idname);
        if (after ? t->n_suffix >= 4 : t->n_prefix >= 4) return mofo_errf(err, MOFO_EFORMAT, "%s: TemplateProcessing with too many tokens", name);
        if (after) t->suffix[t->n_suffix++] = id;
        else t->prefix[t->n_prefix++] = id;
    }
    return 0;
}

static int cmp_added(const void *a, const void *b) {
    const added_tok *x = a, *y = b;
    unsigned cx = (unsigned char)x->s[0], cy = (unsigned char)y->s[0];
    if (cx != cy) return cx < cy ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* null, absent or "": the tokenizers library treats an empty prefix or suffix as none */
static int absent_or_empty(const mofo_json *o, const char *key) {
    const mofo_json *v = mofo_json_get(o, key);
    return !v || v->type == MOFO_JSON_NULL || (v->type == MOFO_JSON_STRING && v->len == 0);
}

static int load_model(mofo_tokenizer *t, const mofo_json *root, const char *name, mofo_err *err) {
    const mofo_json *model = mofo_json_get(root, "model");
    if (!model || model->type != MOFO_JSON_OBJECT) return mofo_errf(err, MOFO_EFORMAT, "%s: no \"model\" object", name);
    const char *ty = jstr(model, "type", NULL);
    const mofo_json *vocab = mofo_json_get(model, "vocab"), *merges = mofo_json_get(model, "merges");
    if (ty && strcmp(ty, "BPE") != 0) return mofo_errf(err, MOFO_EFORMAT, "%s: model type \"%s\" is not supported (only BPE)", name, ty);
    if (!vocab || vocab->type != MOFO_JSON_OBJECT) return mofo_errf(err, MOFO_EFORMAT, "%s: model has no \"vocab\" object", name);
    if (!merges || merges->type != MOFO_JSON_ARRAY) return mofo_errf(err, MOFO_EFORMAT, "%s: model has no \"merges\" array", name);
    if (!absent_or_empty(model, "continuing_subword_prefix"))
        return mofo_errf(err, MOFO_EFORMAT, "%s: model.continuing_subword_prefix other than null or \"\" is not supported", name);
    if (!absent_or_empty(model, "end_of_word_suffix"))
        return mofo_errf(err, MOFO_EFORMAT, "%s: model.end_of_word_suffix other than null or \"\" is not supported", name);
    const mofo_json *v = mofo_json_get(model, "dropout");
    if (v && v->type != MOFO_JSON_NULL && !(v->type == MOFO_JSON_NUMBER && v->number == 0))
        return mofo_errf(err, MOFO_EFORMAT, "%s: model.dropout other than null or 0 is not supported", name);
    t->byte_fallback = jbool(model, "byte_fallback", 0);
    t->fuse_unk = jbool(model, "fuse_unk", 0);
    t->ignore_merges = jbool(model, "ignore_merges", 0);

    /* ids: the model vocabulary and the added tokens */
    int64_t max_id = -1;
    for (const mofo_json *c = vocab->child; c; c = c->next) {
        int64_t id;
        if (!mofo_json_int64(c, &id) || id < 0 || id >= INT32_MAX)
            return mofo_errf(err, MOFO_EFORMAT, "%s: vocab entry \"%.*s\" (line %d) is not a valid id", name, (int)(c->key_len > 60 ? 60 : c->key_len), c->key, c->line);
        if (id > max_id) max_id = id;
    }
    const mofo_json *added = mofo_json_get(root, "added_tokens");
    if (added && added->type != MOFO_JSON_ARRAY && added->type != MOFO_JSON_NULL)
        return mofo_errf(err, MOFO_EFORMAT, "%s: \"added_tokens\" is not an array", name);
    size_t n_added = added && added->type == MOFO_JSON_ARRAY ? added->count : 0;
    t->added = calloc(n_added + 1, sizeof *t->added);
    if (!t->added) return mofo_errf(err, MOFO_ENOMEM, "%s: out of memory", name);
    for (const mofo_json *c = n_added ? added->child : NULL; c; c = c->next) {
        int64_t id;
        size_t n;
        const char *s = jstr(c, "content", &n);
        if (!s || !mofo_json_int64(mofo_json_get(c, "id"), &id) || id < 0 || id >= INT32_MAX)
            return mofo_errf(err, MOFO_EFORMAT, "%s: added token at line %d needs \"id\" and \"content\"", name, c->line);
        if (n == 0) continue;
        added_tok *a = &t->added[t->n_added++];
        a->s = s;
        a->len = n;
        a->id = (int32_t)id;
        a->special = jbool(c, "special", 0);
        a->lstrip = jbool(c, "lstrip", 0);
        a->rstrip = jbool(c, "rstrip", 0);
        a->single_word = jbool(c, "single_word", 0);
        a->normalized = jbool(c, "normalized", !a->special); /* the library's default (AddedToken::from) */
        if (id > max_id) max_id = id;
    }
    t->n_ids = (int32_t)(max_id + 1);
    t->id_str = calloc((size_t)t->n_ids + 1, sizeof *t->id_str);
    t->id_len = calloc((size_t)t->n_ids + 1, sizeof *t->id_len);
    t->id_special = calloc((size_t)t->n_ids + 1, 1);
    if (!t->id_str || !t->id_len || !t->id_special || smap_init(&t->vocab, vocab->count) ||
        smap_init(&t->added_map, (size_t)t->n_added) || pmap_init(&t->merges, merges->count))
        return mofo_errf(err, MOFO_ENOMEM, "%s: out of memory", name);
    for (const mofo_json *c = vocab->child; c; c = c->next) {
        int64_t id;
        mofo_json_int64(c, &id);
        smap_put(&t->vocab, c->key, c->key_len, (int32_t)id);
        t->id_str[id] = c->key;
        t->id_len[id] = (uint32_t)c->key_len;
    }
    for (int i = 0; i < t->n_added; i++) {
        added_tok *a = &t->added[i];
        smap_put(&t->added_map, a->s, a->len, a->id);
        t->id_str[a->id] = a->s;
        t->id_len[a->id] = (uint32_t)a->len;
        t->id_special[a->id] = (unsigned char)a->special;
    }
    qsort(t->added, (size_t)t->n_added, sizeof *t->added, cmp_added);

    /* merges: "a b" or ["a", "b"] */
    char buf[1024];
    int32_t rank = 0;
    for (const mofo_json *c = merges->child; c; c = c->next, rank++) {
        const char *a, *b;
        size_t an, bn;
        if (c->type == MOFO_JSON_STRING) {
            const char *sp = memchr(c->str, ' ', c->len);
            if (!sp || memchr(sp + 1, ' ', c->len - (size_t)(sp + 1 - c->str)))
                return mofo_errf(err, MOFO_EFORMAT, "%s: merge at line %d is not \"a b\"", name, c->line);
            a = c->str;
            an = (size_t)(sp - c->str);
            b = sp + 1;
            bn = c->len - an - 1;
        } else if (c->type == MOFO_JSON_ARRAY && c->count == 2 && c->child->type == MOFO_JSON_STRING &&
                   c->child->next->type == MOFO_JSON_STRING) {
            a = c->child->str;
            an = c->child->len;
            b = c->child->next->str;
            bn = c->child->next->len;
        } else {
            return mofo_errf(err, MOFO_EFORMAT, "%s: merge at line %d is neither \"a b\" nor [\"a\", \"b\"]", name, c->line);
        }
        if (an + bn > sizeof buf) return mofo_errf(err, MOFO_EFORMAT, "%s: merge at line %d is too long", name, c->line);
        memcpy(buf, a, an);
        memcpy(buf + an, b, bn);
        int32_t ia = smap_get(&t->vocab, a, an), ib = smap_get(&t->vocab, b, bn), ic = smap_get(&t->vocab, buf, an + bn);
        if (ia < 0 || ib < 0 || ic < 0)
            return mofo_errf(err, MOFO_EFORMAT, "%s: merge at line %d (\"%.*s\" + \"%.*s\") uses a token missing from the vocab",
                             name, c->line, (int)an, a, (int)bn, b);
        pmap_put(&t->merges, ia, ib, (uint64_t)rank << 32 | (uint32_t)ic); /* a repeated pair keeps its first rank */
    }

    size_t un;
    const char *unk = jstr(model, "unk_token", &un);
    t->unk_id = unk ? smap_get(&t->vocab, unk, un) : -1;
    for (int b = 0; b < 256; b++) {
        char s[8];
        size_t n = mofo_utf8_put(s, byte_to_cp(b));
        t->byte_level_id[b] = smap_get(&t->vocab, s, n);
        snprintf(s, sizeof s, "<0x%02X>", b);
        t->byte_fb_id[b] = smap_get(&t->vocab, s, 6);
        if (b < 128) {
            s[0] = (char)b;
            t->ascii_id[b] = smap_get(&t->vocab, s, 1);
        }
    }
    return 0;
}

static int build_added(mofo_tokenizer *t, const char *name, mofo_err *err);

int mofo_tokenizer_from_json(mofo_tokenizer **out, const char *json, size_t len, const char *name, mofo_err *err) {
    *out = NULL;
    mofo_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return mofo_errf(err, MOFO_ENOMEM, "%s: out of memory", name);
    t->bos = t->eos = t->pad = -1;
    t->doc = mofo_json_parse(json, len, err);
    if (!t->doc) {
        free(t);
        return mofo_err_prefix(err, "%s", name);
    }
    const mofo_json *root = mofo_json_root(t->doc);
    int rc;
    if (root->type != MOFO_JSON_OBJECT) rc = mofo_errf(err, MOFO_EFORMAT, "%s: not a JSON object", name);
    else if ((rc = load_model(t, root, name, err)) || (rc = load_normalizer(t, mofo_json_get(root, "normalizer"), name, err)) ||
             (rc = load_pre(t, mofo_json_get(root, "pre_tokenizer"), name, err)) ||
             (rc = load_decoder(t, mofo_json_get(root, "decoder"), name, err)) ||
             (rc = load_post(t, mofo_json_get(root, "post_processor"), name, err)) || (rc = build_added(t, name, err))) {
    }
    if (rc) {
        mofo_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int mofo_tokenizer_load_file(mofo_tokenizer **out, const char *path, mofo_err *err) {
    char *data;
    size_t len;
    *out = NULL;
    int rc = mofo_read_file(path, &data, &len, err);
    if (rc) return rc;
    rc = mofo_tokenizer_from_json(out, data, len, path, err);
    free(data);
    return rc;
}

/* tokenizer_config.json's "bos_token": "<s>" or {"content": "<s>", ...} */
static int32_t config_token(const mofo_tokenizer *t, const mofo_json *cfg, const char *key) {
    const mofo_json *v = mofo_json_get(cfg, key);
    if (v && v->type == MOFO_JSON_OBJECT) v = mofo_json_get(v, "content");
    if (!v || v->type != MOFO_JSON_STRING) return -1;
    return mofo_tokenizer_token_id(t, v->str, v->len);
}

static int32_t config_id(const mofo_json *cfg, const char *key) {
    const mofo_json *v = mofo_json_get(cfg, key);
    if (v && v->type == MOFO_JSON_ARRAY) v = v->child;
    int64_t id;
    return v && mofo_json_int64(v, &id) && id >= 0 && id < INT32_MAX ? (int32_t)id : -1;
}

int mofo_tokenizer_apply_config(mofo_tokenizer *t, const char *tc, size_t tc_len, const char *c, size_t c_len,
                                const char *name, mofo_err *err) {
    if (c) {
        mofo_json_doc *d = mofo_json_parse(c, c_len, err);
        if (!d) return mofo_err_prefix(err, "%s/config.json", name);
        const mofo_json *r = mofo_json_root(d);
        int32_t id;
        if ((id = config_id(r, "bos_token_id")) >= 0) t->bos = id;
        if ((id = config_id(r, "eos_token_id")) >= 0) t->eos = id;
        if ((id = config_id(r, "pad_token_id")) >= 0) t->pad = id;
        mofo_json_free(d);
    }
    if (tc) {
        mofo_json_doc *d = mofo_json_parse(tc, tc_len, err);
        if (!d) return mofo_err_prefix(err, "%s/tokenizer_config.json", name);
        const mofo_json *r = mofo_json_root(d);
        int32_t id;
        if ((id = config_token(t, r, "bos_token")) >= 0) t->bos = id;
        if ((id = config_token(t, r, "eos_token")) >= 0) t->eos = id;
        if ((id = config_token(t, r, "pad_token")) >= 0) t->pad = id;
        const mofo_json *ab = mofo_json_get(r, "add_bos_token"), *ae = mofo_json_get(r, "add_eos_token");
        int has_ab = ab && ab->type == MOFO_JSON_BOOL, has_ae = ae && ae->type == MOFO_JSON_BOOL;
        if (has_ab || has_ae) { /* transformers rebuilds the post-processor from these */
            int add_bos = has_ab ? ab->boolean : (t->n_prefix > 0);
            int add_eos = has_ae ? ae->boolean : (t->n_suffix > 0);
            t->n_prefix = t->n_suffix = 0;
            if (add_bos && t->bos >= 0) t->prefix[t->n_prefix++] = t->bos;
            if (add_eos && t->eos >= 0) t->suffix[t->n_suffix++] = t->eos;
        }
        mofo_json_free(d);
    }
    return 0;
}

int mofo_tokenizer_load_dir(mofo_tokenizer **out, const char *dir, mofo_err *err) {
    size_t n = strlen(dir) + 32;
    char *path = malloc(n);
    if (!path) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    snprintf(path, n, "%s/tokenizer.json", dir);
    int rc = mofo_tokenizer_load_file(out, path, err);
    char *tc = NULL, *c = NULL;
    size_t tcn = 0, cn = 0;
    if (!rc) {
        mofo_err ignore = {0};
        snprintf(path, n, "%s/tokenizer_config.json", dir);
        if (mofo_read_file(path, &tc, &tcn, &ignore)) tc = NULL;
        snprintf(path, n, "%s/config.json", dir);
        if (mofo_read_file(path, &c, &cn, &ignore)) c = NULL;
        rc = mofo_tokenizer_apply_config(*out, tc, tcn, c, cn, dir, err);
        if (rc) {
            mofo_tokenizer_free(*out);
            *out = NULL;
        }
    }
    free(tc);
    free(c);
    free(path);
    return rc;
}

int32_t mofo_tokenizer_vocab_size(const mofo_tokenizer *t) { return t->n_ids; }

int32_t mofo_tokenizer_token_id(const mofo_tokenizer *t, const char *s, size_t n) {
    int32_t id = smap_get(&t->added_map, s, n);
    return id >= 0 ? id : smap_get(&t->vocab, s, n);
}

const char *mofo_tokenizer_token(const mofo_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_ids || !t->id_str[id]) return NULL;
    if (len) *len = t->id_len[id];
    return t->id_str[id];
}

int mofo_tokenizer_is_special(const mofo_tokenizer *t, int32_t id) { return id >= 0 && id < t->n_ids && t->id_special[id]; }
int32_t mofo_tokenizer_bos(const mofo_tokenizer *t) { return t->bos; }
int32_t mofo_tokenizer_eos(const mofo_tokenizer *t) { return t->eos; }
int32_t mofo_tokenizer_pad(const mofo_tokenizer *t) { return t->pad; }
int mofo_tokenizer_adds_bos(const mofo_tokenizer *t) { return t->n_prefix > 0; }

void mofo_tokenizer_set_special(mofo_tokenizer *t, int32_t bos, int32_t eos, int32_t pad) {
    if (bos >= 0) t->bos = bos;
    if (eos >= 0) t->eos = eos;
    if (pad >= 0) t->pad = pad;
}

/* ------------------------------------------------------------------------------------------------
 * Encoding. */

void mofo_ids_free(mofo_ids *v) {
    free(v->ids);
    free(v->start);
    free(v->end);
    v->ids = v->start = v->end = NULL;
    v->len = v->cap = 0;
    v->failed = 0;
}

void mofo_ids_clear(mofo_ids *v) { v->len = 0; }

static int ids_push(mofo_ids *v, int32_t id, uint32_t s, uint32_t e) {
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *a = realloc(v->ids, cap * sizeof *a);
        if (!a) return v->failed = 1, -1;
        v->ids = a;
        if (v->want_offsets) {
            int32_t *b = realloc(v->start, cap * sizeof *b);
            if (b) v->start = b;
            int32_t *c = b ? realloc(v->end, cap * sizeof *c) : NULL;
            if (c) v->end = c;
            if (!b || !c) return v->failed = 1, -1;
        }
        v->cap = cap;
    }
    v->ids[v->len] = id;
    if (v->want_offsets) {
        v->start[v->len] = (int32_t)s;
        v->end[v->len] = (int32_t)e;
    }
    v->len++;
    return 0;
}

typedef struct {
    uint32_t s, e;
} span;

typedef struct {
    uint32_t s, e;
} piece;

typedef struct {
    int32_t id, prev, next;
    uint32_t s, e; /* bytes of the piece */
    int unk;
} sym;

typedef struct {
    uint32_t rank, pos;
    int32_t a, b, c;
} cand;

typedef struct {
    char *nb; /* the normalized text */
    span *na; /* for each of its bytes, the input bytes it came from */
    size_t nlen, ncap;
    char *tb;
    span *ta;
    size_t tcap;
    piece *p, *q; /* pieces of nb: the current list and the next */
    size_t np, pcap, nq, qcap;
    sym *syms;
    size_t scap;
    cand *heap;
    size_t hcap;
    char *scratch;
    size_t scap2;
    uint32_t *cps; /* code points and their spans, for NFC/NFD */
    span *cspan;
    size_t ccap;
    char *sb; /* a normalized segment, while it is split at the normalized added tokens */
    span *sa;
    size_t sbcap, sacap;
    pcre2_match_data *md;
    int failed;
} enc_ctx;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static void ctx_free(enc_ctx *c) {
    free(c->nb);
    free(c->na);
    free(c->tb);
    free(c->ta);
    free(c->p);
    free(c->q);
    free(c->syms);
    free(c->heap);
    free(c->scratch);
    free(c->cps);
    free(c->cspan);
    free(c->sb);
    free(c->sa);
    pcre2_match_data_free(c->md);
}

/* nb/na capacity is shared: ncap counts both. */
static int ctx_reserve_n(enc_ctx *c, size_t n) {
    if (n + 1 <= c->ncap) return 0;
    size_t cap = c->ncap ? c->ncap : 256;
    while (cap < n + 1) cap *= 2;
    char *a = realloc(c->nb, cap);
    if (a) c->nb = a;
    span *b = a ? realloc(c->na, cap * sizeof *b) : NULL;
    if (b) c->na = b;
    if (!a || !b) return -1;
    c->ncap = cap;
    return 0;
}

static int ctx_reserve_t(enc_ctx *c, size_t n) {
    if (n + 1 <= c->tcap) return 0;
    size_t cap = c->tcap ? c->tcap : 256;
    while (cap < n + 1) cap *= 2;
    char *a = realloc(c->tb, cap);
    if (a) c->tb = a;
    span *b = a ? realloc(c->ta, cap * sizeof *b) : NULL;
    if (b) c->ta = b;
    if (!a || !b) return -1;
    c->tcap = cap;
    return 0;
}

static void swap_nt(enc_ctx *c, size_t tlen) {
    char *b = c->nb;
    c->nb = c->tb;
    c->tb = b;
    span *a = c->na;
    c->na = c->ta;
    c->ta = a;
    size_t cap = c->ncap;
    c->ncap = c->tcap;
    c->tcap = cap;
    c->nlen = tlen;
}

static int push_piece(enc_ctx *c, uint32_t s, uint32_t e) {
    if (s >= e) return 0;
    if (grow((void **)&c->q, &c->qcap, c->nq + 1, sizeof *c->q)) return -1;
    c->q[c->nq++] = (piece){s, e};
    return 0;
}

static void swap_pieces(enc_ctx *c) {
    piece *t = c->p;
    c->p = c->q;
    c->q = t;
    size_t cap = c->pcap;
    c->pcap = c->qcap;
    c->qcap = cap;
    c->np = c->nq;
    c->nq = 0;
}

/* Finds the next match of re in nb[from..end); returns 1 with [*ms, *me) or 0. */
static int re_find(enc_ctx *c, const pcre2_code *re, size_t from, size_t end, size_t *ms, size_t *me) {
    while (from < end) {
        int rc = pcre2_match(re, (PCRE2_SPTR)c->nb, end, from, PCRE2_NO_UTF_CHECK, c->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        if (rc < 0) { /* a match or stack limit: an error, never a silent "no match" */
            c->failed = rc;
            return -1;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        if (ov[1] > ov[0]) {
            *ms = ov[0];
            *me = ov[1];
            return 1;
        }
        /* an empty match: step one character past it */
        from = ov[0] + 1;
        while (from < end && ((unsigned char)c->nb[from] & 0xC0) == 0x80) from++;
    }
    return 0;
}

static int ensure_md(enc_ctx *c, const pcre2_code *re) {
    (void)re;
    if (!c->md) c->md = pcre2_match_data_create(32, NULL); /* only the whole match is read */
    return c->md ? 0 : -1;
}

/* Splits every piece by re with one of the tokenizers library's behaviours; pieces -> pieces. */
static int split_pieces(enc_ctx *c, const pcre2_code *re, int behavior, int invert) {
    c->nq = 0;
    if (ensure_md(c, re)) return -1;
    for (size_t i = 0; i < c->np; i++) {
        size_t s = c->p[i].s, e = c->p[i].e, pos = s, ms = 0, me = 0;
        /* the spans of the piece: (start, end, is_match), fed to the behaviour as they come */
        size_t acc_s = 0, acc_e = 0;
        int have_acc = 0, prev_match = 0;
        /* MergedWithNext works backwards in the library; forwards it is: a non-match followed by
         * a match is emitted normally, a match waits to be glued to the following span. */
        size_t pending_s = 0;
        int pending = 0;
        for (;;) {
            int found = pos < e ? re_find(c, re, pos, e, &ms, &me) : 0;
            if (found < 0) return -1;
            size_t gap_e = found ? ms : e;
            for (int k = 0; k < 2; k++) {
                size_t xs = k == 0 ? pos : ms, xe = k == 0 ? gap_e : me;
                int is_match = k == 1;
                if (k == 1 && !found) break;
                if (xs >= xe) continue;
                if (invert) is_match = !is_match;
                switch (behavior) {
                case SPLIT_ISOLATED:
                    if (push_piece(c, (uint32_t)xs, (uint32_t)xe)) return -1;
                    break;
                case SPLIT_REMOVED:
                    if (!is_match && push_piece(c, (uint32_t)xs, (uint32_t)xe)) return -1;
                    break;
                case SPLIT_MERGED_PREV:
                    if (is_match && !prev_match && have_acc) {
                        acc_e = xe;
                    } else {
                        if (have_acc && push_piece(c, (uint32_t)acc_s, (uint32_t)acc_e)) return -1;
                        acc_s = xs;
                        acc_e = xe;
                        have_acc = 1;
                    }
                    break;
                case SPLIT_MERGED_NEXT:
                    if (pending) {
                        /* a match waiting: it joins this span unless this is also a match */
                        if (!is_match) {
                            if (push_piece(c, (uint32_t)pending_s, (uint32_t)xe)) return -1;
                            pending = 0;
                            break;
                        }
                        if (push_piece(c, (uint32_t)pending_s, (uint32_t)xs)) return -1;
                        pending = 0;
                    }
                    if (is_match) {
                        pending = 1;
                        pending_s = xs;
                    } else if (push_piece(c, (uint32_t)xs, (uint32_t)xe)) {
                        return -1;
                    }
                    break;
                case SPLIT_CONTIGUOUS:
                    if (is_match == prev_match && have_acc) {
                        acc_e = xe;
                    } else {
                        if (have_acc && push_piece(c, (uint32_t)acc_s, (uint32_t)acc_e)) return -1;
                        acc_s = xs;
                        acc_e = xe;
                        have_acc = 1;
                    }
                    break;
                }
                prev_match = is_match;
            }
            if (!found) break;
            pos = me;
        }
        if (pending && push_piece(c, (uint32_t)pending_s, (uint32_t)e)) return -1;
        if (have_acc && push_piece(c, (uint32_t)acc_s, (uint32_t)acc_e)) return -1;
    }
    swap_pieces(c);
    return 0;
}

/* ---- canonical normalization (NFC, NFD) with the tables of unicode_nfc.h ---- */

static int ccc_of(uint32_t cp) {
    if (cp < 0x300) return 0;
    size_t lo = 0, hi = sizeof NFC_CCC / sizeof NFC_CCC[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < NFC_CCC[mid][0]) hi = mid;
        else if (cp > NFC_CCC[mid][1]) lo = mid + 1;
        else return (int)NFC_CCC[mid][2];
    }
    return 0;
}

static const uint32_t *decomp_of(uint32_t cp, uint32_t *len) {
    if (cp < 0xC0) return NULL;
    size_t lo = 0, hi = sizeof NFC_DECOMP / sizeof NFC_DECOMP[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < NFC_DECOMP[mid][0]) hi = mid;
        else if (cp > NFC_DECOMP[mid][0]) lo = mid + 1;
        else {
            *len = NFC_DECOMP[mid][2];
            return NFC_POOL + NFC_DECOMP[mid][1];
        }
    }
    return NULL;
}

enum { S_BASE = 0xAC00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11A7, L_COUNT = 19, V_COUNT = 21, T_COUNT = 28,
       N_COUNT = 588, S_COUNT = 11172 };

static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= L_BASE && a < L_BASE + L_COUNT && b >= V_BASE && b < V_BASE + V_COUNT)
        return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT;
    if (a >= S_BASE && a < S_BASE + S_COUNT && (a - S_BASE) % T_COUNT == 0 && b > T_BASE && b < T_BASE + T_COUNT)
        return a + (b - T_BASE);
    size_t lo = 0, hi = sizeof NFC_COMP / sizeof NFC_COMP[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a < NFC_COMP[mid][0] || (a == NFC_COMP[mid][0] && b < NFC_COMP[mid][1])) hi = mid;
        else if (a > NFC_COMP[mid][0] || b > NFC_COMP[mid][1]) lo = mid + 1;
        else return NFC_COMP[mid][2];
    }
    return 0;
}

static int push_cp(enc_ctx *c, size_t *n, uint32_t cp, span sp) {
    if (*n + 1 > c->ccap) {
        size_t cap = c->ccap ? c->ccap * 2 : 256;
        uint32_t *a = realloc(c->cps, cap * sizeof *a);
        if (a) c->cps = a;
        span *b = a ? realloc(c->cspan, cap * sizeof *b) : NULL;
        if (b) c->cspan = b;
        if (!a || !b) return -1;
        c->ccap = cap;
    }
    c->cps[*n] = cp;
    c->cspan[*n] = sp;
    (*n)++;
    return 0;
}

/* Canonical decomposition, canonical ordering, then (NFC) canonical composition, as UAX #15. */
static int canonical(enc_ctx *c, int compose) {
    size_t k;
    for (k = 0; k < c->nlen; k++)
        if ((unsigned char)c->nb[k] >= (compose ? 0xCC : 0x80)) break;
    if (k == c->nlen) return 0; /* nothing below U+0300 changes under NFC; ASCII never changes */
    size_t n = 0;
    for (k = 0; k < c->nlen;) {
        uint32_t cp;
        int r = mofo_utf8_next((const unsigned char *)c->nb + k, c->nlen - k, &cp);
        size_t cl = r > 0 ? (size_t)r : 1;
        if (r <= 0) cp = 0xFFFD;
        span sp = {c->na[k].s, c->na[k + cl - 1].e};
        uint32_t dl;
        const uint32_t *d;
        if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
            uint32_t si = cp - S_BASE;
            if (push_cp(c, &n, L_BASE + si / N_COUNT, sp) || push_cp(c, &n, V_BASE + (si % N_COUNT) / T_COUNT, sp)) return -1;
            if (si % T_COUNT && push_cp(c, &n, T_BASE + si % T_COUNT, sp)) return -1;
        } else if ((d = decomp_of(cp, &dl))) {
            for (uint32_t i = 0; i < dl; i++)
                if (push_cp(c, &n, d[i], sp)) return -1;
        } else if (push_cp(c, &n, cp, sp)) {
            return -1;
        }
        k += cl;
    }
    for (size_t i = 1; i < n; i++) { /* stable sort of each run of non-starters by class */
        int ci = ccc_of(c->cps[i]);
        if (ci == 0) continue;
        for (size_t j = i; j > 0; j--) {
            int cj = ccc_of(c->cps[j - 1]);
            if (cj == 0 || cj <= ci) break;
            uint32_t tc = c->cps[j];
            c->cps[j] = c->cps[j - 1];
            c->cps[j - 1] = tc;
            span ts = c->cspan[j];
            c->cspan[j] = c->cspan[j - 1];
            c->cspan[j - 1] = ts;
        }
    }
    if (compose && n > 0) {
        size_t starter = 0, out = 1;
        int last = ccc_of(c->cps[0]) ? 256 : 0;
        for (size_t i = 1; i < n; i++) {
            uint32_t ch = c->cps[i];
            int cc = ccc_of(ch);
            uint32_t comp = last != 256 ? compose_pair(c->cps[starter], ch) : 0;
            if (comp && (last < cc || last == 0)) {
                c->cps[starter] = comp;
                if (c->cspan[i].s < c->cspan[starter].s) c->cspan[starter].s = c->cspan[i].s;
                if (c->cspan[i].e > c->cspan[starter].e) c->cspan[starter].e = c->cspan[i].e;
                continue;
            }
            if (cc == 0) starter = out;
            last = cc;
            c->cps[out] = ch;
            c->cspan[out] = c->cspan[i];
            out++;
        }
        n = out;
    }
    if (ctx_reserve_t(c, 4 * n)) return -1;
    size_t tl = 0;
    for (size_t i = 0; i < n; i++) {
        size_t m = mofo_utf8_put(c->tb + tl, c->cps[i]);
        for (size_t j = 0; j < m; j++) c->ta[tl + j] = c->cspan[i];
        tl += m;
    }
    swap_nt(c, tl);
    return 0;
}

static int normalize(const mofo_tokenizer *t, enc_ctx *c) {
    for (int i = 0; i < t->n_norm; i++) {
        const norm_step *st = &t->norm[i];
        if (c->nlen == 0) return 0;
        if (st->type == NORM_NFC || st->type == NORM_NFD) {
            if (canonical(c, st->type == NORM_NFC)) return -1;
            continue;
        }
        if (st->type == NORM_PREPEND) {
            if (ctx_reserve_t(c, c->nlen + st->alen)) return -1;
            memcpy(c->tb, st->a, st->alen);
            memcpy(c->tb + st->alen, c->nb, c->nlen);
            for (size_t k = 0; k < st->alen; k++) c->ta[k] = c->na[0]; /* as the library aligns it */
            memcpy(c->ta + st->alen, c->na, c->nlen * sizeof *c->na);
            swap_nt(c, c->nlen + st->alen);
            continue;
        }
        /* Replace */
        size_t pos = 0, tl = 0, ms = 0, me = 0;
        if (st->re && ensure_md(c, st->re)) return -1;
        for (;;) {
            int found;
            if (st->re) {
                found = re_find(c, st->re, pos, c->nlen, &ms, &me);
                if (found < 0) return -1;
            } else {
                found = 0;
                for (size_t k = pos; k + st->alen <= c->nlen; k++) {
                    if (c->nb[k] == st->a[0] && memcmp(c->nb + k, st->a, st->alen) == 0) {
                        ms = k;
                        me = k + st->alen;
                        found = 1;
                        break;
                    }
                }
            }
            size_t gap_e = found ? ms : c->nlen;
            if (ctx_reserve_t(c, tl + (gap_e - pos) + st->blen)) return -1;
            memcpy(c->tb + tl, c->nb + pos, gap_e - pos);
            memcpy(c->ta + tl, c->na + pos, (gap_e - pos) * sizeof *c->na);
            tl += gap_e - pos;
            if (!found) break;
            span sp = {c->na[ms].s, c->na[me - 1].e};
            memcpy(c->tb + tl, st->b, st->blen);
            for (size_t k = 0; k < st->blen; k++) c->ta[tl + k] = sp;
            tl += st->blen;
            pos = me;
        }
        swap_nt(c, tl);
    }
    return 0;
}

/* ByteLevel's add_prefix_space: a space before every piece that does not start with one. */
static int prefix_spaces(enc_ctx *c) {
    size_t need = c->nlen + c->np;
    if (ctx_reserve_t(c, need)) return -1;
    size_t tl = 0;
    for (size_t i = 0; i < c->np; i++) {
        size_t s = c->p[i].s, e = c->p[i].e;
        uint32_t ns = (uint32_t)tl;
        if (c->nb[s] != ' ') {
            c->tb[tl] = ' ';
            c->ta[tl] = c->na[s]; /* aligned with the first character, as the library does */
            tl++;
        }
        memcpy(c->tb + tl, c->nb + s, e - s);
        memcpy(c->ta + tl, c->na + s, (e - s) * sizeof *c->na);
        tl += e - s;
        c->p[i] = (piece){ns, (uint32_t)tl};
    }
    swap_nt(c, tl);
    return 0;
}

/* Metaspace: spaces become the replacement, which is also prepended to pieces that do not start
 * with it (always, or only to the piece at the start of the input: first). */
static int metaspace(enc_ctx *c, const pre_step *st) {
    size_t need = 0;
    for (size_t i = 0; i < c->np; i++) {
        for (size_t k = c->p[i].s; k < c->p[i].e; k++) need += c->nb[k] == ' ' ? st->rep_len : 1;
        need += st->rep_len;
    }
    if (ctx_reserve_t(c, need)) return -1;
    size_t tl = 0;
    for (size_t i = 0; i < c->np; i++) {
        size_t s = c->p[i].s, e = c->p[i].e;
        uint32_t ns = (uint32_t)tl;
        for (size_t k = s; k < e; k++) {
            if (c->nb[k] == ' ') {
                memcpy(c->tb + tl, st->rep, st->rep_len);
                for (size_t r = 0; r < st->rep_len; r++) c->ta[tl + r] = c->na[k];
                tl += st->rep_len;
            } else {
                c->tb[tl] = c->nb[k];
                c->ta[tl++] = c->na[k];
            }
        }
        int starts = tl - ns >= st->rep_len && memcmp(c->tb + ns, st->rep, st->rep_len) == 0;
        if (!starts && (st->prepend == PREPEND_ALWAYS || (st->prepend == PREPEND_FIRST && c->na[s].s == 0))) {
            memmove(c->tb + ns + st->rep_len, c->tb + ns, tl - ns);
            memmove(c->ta + ns + st->rep_len, c->ta + ns, (tl - ns) * sizeof *c->ta);
            memcpy(c->tb + ns, st->rep, st->rep_len);
            for (size_t r = 0; r < st->rep_len; r++) c->ta[ns + r] = c->na[s];
            tl += st->rep_len;
        }
        c->p[i] = (piece){ns, (uint32_t)tl};
    }
    swap_nt(c, tl);
    return 0;
}

static inline int cand_less(const cand *x, const cand *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static int heap_push(enc_ctx *c, size_t *n, cand v) {
    if (grow((void **)&c->heap, &c->hcap, *n + 1, sizeof *c->heap)) return -1;
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&v, &c->heap[p])) break;
        c->heap[i] = c->heap[p];
        i = p;
    }
    c->heap[i] = v;
    return 0;
}

static cand heap_pop(enc_ctx *c, size_t *n) {
    cand top = c->heap[0], last = c->heap[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= *n) break;
        if (l + 1 < *n && cand_less(&c->heap[l + 1], &c->heap[l])) l++;
        if (!cand_less(&c->heap[l], &last)) break;
        c->heap[i] = c->heap[l];
        i = l;
    }
    if (*n > 0) c->heap[i] = last;
    return top;
}

static int try_pair(const mofo_tokenizer *t, enc_ctx *c, size_t *hn, int32_t i) {
    const sym *x = &c->syms[i];
    if (x->next < 0) return 0;
    uint64_t v;
    if (!pmap_get(&t->merges, x->id, c->syms[x->next].id, &v)) return 0;
    cand cd = {(uint32_t)(v >> 32), (uint32_t)i, x->id, c->syms[x->next].id, (int32_t)(uint32_t)v};
    return heap_push(c, hn, cd);
}

/* BPE on nb[ps, pe): appends the tokens with their input offsets. */
static int bpe_piece(const mofo_tokenizer *t, enc_ctx *c, size_t ps, size_t pe, mofo_ids *out) {
    const unsigned char *p = (const unsigned char *)c->nb + ps;
    size_t n = pe - ps;
    if (t->ignore_merges) {
        const char *w = (const char *)p;
        size_t wl = n;
        if (t->byte_level) {
            if (grow((void **)&c->scratch, &c->scap2, 2 * n + 1, 1)) return -1;
            wl = 0;
            for (size_t k = 0; k < n; k++) wl += mofo_utf8_put(c->scratch + wl, byte_to_cp(p[k]));
            w = c->scratch;
        }
        int32_t id = smap_get(&t->vocab, w, wl);
        if (id >= 0) return ids_push(out, id, c->na[ps].s, c->na[pe - 1].e);
    }
    if (grow((void **)&c->syms, &c->scap, n + 1, sizeof *c->syms)) return -1;
    int32_t ns = 0;
    for (size_t k = 0; k < n;) {
        int32_t id;
        size_t cl = 1;
        if (t->byte_level) {
            id = t->byte_level_id[p[k]];
        } else if (p[k] < 0x80) {
            id = t->ascii_id[p[k]];
        } else {
            uint32_t cp;
            int r = mofo_utf8_next(p + k, n - k, &cp);
            cl = r > 0 ? (size_t)r : 1;
            id = smap_get(&t->vocab, (const char *)p + k, cl);
        }
        if (id < 0 && t->byte_fallback) {
            int all = 1;
            for (size_t b = 0; b < cl; b++) all &= t->byte_fb_id[p[k + b]] >= 0;
            if (all) {
                for (size_t b = 0; b < cl; b++)
                    c->syms[ns++] = (sym){t->byte_fb_id[p[k + b]], 0, 0, (uint32_t)(k + b), (uint32_t)(k + b + 1), 0};
                k += cl;
                continue;
            }
        }
        if (id < 0 && t->unk_id >= 0) {
            if (t->fuse_unk && ns > 0 && c->syms[ns - 1].unk) {
                c->syms[ns - 1].e = (uint32_t)(k + cl);
                k += cl;
                continue;
            }
            c->syms[ns++] = (sym){t->unk_id, 0, 0, (uint32_t)k, (uint32_t)(k + cl), 1};
            k += cl;
            continue;
        }
        if (id >= 0) c->syms[ns++] = (sym){id, 0, 0, (uint32_t)k, (uint32_t)(k + cl), 0};
        k += cl; /* no vocabulary entry, no fallback, no unk: the character is dropped */
    }
    for (int32_t i = 0; i < ns; i++) {
        c->syms[i].prev = i - 1;
        c->syms[i].next = i + 1 < ns ? i + 1 : -1;
    }
    size_t hn = 0;
    for (int32_t i = 0; i + 1 < ns; i++)
        if (try_pair(t, c, &hn, i)) return -1;
    while (hn > 0) {
        cand top = heap_pop(c, &hn);
        sym *x = &c->syms[top.pos];
        if (x->id != top.a || x->next < 0) continue;
        sym *y = &c->syms[x->next];
        if (y->id != top.b) continue;
        x->id = top.c;
        x->e = y->e;
        x->unk = 0;
        int32_t yn = y->next;
        y->id = -2;
        x->next = yn;
        if (yn >= 0) c->syms[yn].prev = (int32_t)top.pos;
        if (x->prev >= 0 && try_pair(t, c, &hn, x->prev)) return -1;
        if (try_pair(t, c, &hn, (int32_t)top.pos)) return -1;
    }
    for (int32_t i = ns > 0 ? 0 : -1; i >= 0; i = c->syms[i].next) {
        const sym *x = &c->syms[i];
        if (ids_push(out, x->id, c->na[ps + x->s].s, c->na[ps + x->e - 1].e)) return -1;
    }
    return 0;
}

static int find_added(const mofo_tokenizer *t, const added_trie *tr, const char *text, size_t n, size_t from, size_t *ms,
                      size_t *me);

/* Pre-tokenizes and BPE-encodes nb[0..nlen) (normalized text). */
static int pretokenize_encode(const mofo_tokenizer *t, enc_ctx *c, mofo_ids *out) {
    c->np = 0;
    if (c->nlen == 0) return 0;
    if (grow((void **)&c->p, &c->pcap, 1, sizeof *c->p)) return -1;
    c->p[0] = (piece){0, (uint32_t)c->nlen};
    c->np = 1;
    for (int i = 0; i < t->n_pre; i++) {
        const pre_step *st = &t->pre[i];
        if (st->type == PRE_BYTELEVEL && st->add_prefix_space && prefix_spaces(c)) return -1;
        if (st->type == PRE_METASPACE && metaspace(c, st)) return -1;
        if (st->re && split_pieces(c, st->re, st->behavior, st->invert)) return -1;
    }
    for (size_t i = 0; i < c->np; i++)
        if (bpe_piece(t, c, c->p[i].s, c->p[i].e, out)) return -1;
    return 0;
}

/* text[s, e): a stretch between the added tokens matched in the raw text. Normalized, then split
 * at the added tokens with normalized=true (matched in the normalized text, as the library does);
 * the rest pre-tokenized and encoded. */
static int encode_segment(const mofo_tokenizer *t, enc_ctx *c, const char *text, size_t s, size_t e, mofo_ids *out) {
    if (s >= e) return 0;
    size_t n = e - s;
    if (ctx_reserve_n(c, n)) return -1;
    memcpy(c->nb, text + s, n);
    for (size_t k = 0; k < n; k++) c->na[k] = (span){(uint32_t)(s + k), (uint32_t)(s + k + 1)};
    c->nlen = n;
    if (normalize(t, c)) return -1;
    if (t->trie_norm.n == 0 || c->nlen == 0) return pretokenize_encode(t, c, out);
    /* keep the normalized text: each stretch between the tokens goes through nb on its own */
    size_t sl = c->nlen;
    if (grow((void **)&c->sb, &c->sbcap, sl + 1, 1) || grow((void **)&c->sa, &c->sacap, sl + 1, sizeof *c->sa)) return -1;
    memcpy(c->sb, c->nb, sl);
    memcpy(c->sa, c->na, sl * sizeof *c->na);
    size_t pos = 0;
    while (pos < sl) {
        size_t ms = sl, me = sl;
        int k = find_added(t, &t->trie_norm, c->sb, sl, pos, &ms, &me);
        size_t ce = k >= 0 ? ms : sl;
        if (ce > pos) {
            memcpy(c->nb, c->sb + pos, ce - pos);
            memcpy(c->na, c->sa + pos, (ce - pos) * sizeof *c->na);
            c->nlen = ce - pos;
            if (pretokenize_encode(t, c, out)) return -1;
        }
        if (k < 0) break;
        if (ids_push(out, t->added[k].id, c->sa[ms].s, c->sa[me - 1].e)) return -1;
        pos = me;
    }
    return 0;
}

/* The length of the White_Space character at u[i..n) (Rust's regex \s, which the library's lstrip
 * and rstrip use), or 0. */
static size_t ws_at(const unsigned char *u, size_t i, size_t n) {
    if (u[i] < 0x80) return u[i] == ' ' || (u[i] >= '\t' && u[i] <= '\r');
    uint32_t cp;
    int r = mofo_utf8_next(u + i, n - i, &cp);
    if (r <= 0) return 0;
    int ws = cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
             cp == 0x202F || cp == 0x205F || cp == 0x3000;
    return ws ? (size_t)r : 0;
}

/* The start of the White_Space run that ends at u[e] (no earlier than floor_). */
static size_t ws_run_before(const unsigned char *u, size_t e, size_t floor_) {
    while (e > floor_) {
        size_t s = e - 1;
        while (s > floor_ && (u[s] & 0xC0) == 0x80 && e - s < 4) s--;
        if (ws_at(u, s, e) != e - s) break;
        e = s;
    }
    return e;
}

static int is_word(unsigned char ch) { return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch >= 0x80; }

/* The next added token of trie tr in text[from..n), as the library's AhoCorasick (leftmost, then
 * longest) finds it: its index in t->added and the span it takes (with lstrip/rstrip whitespace,
 * lstrip going back no further than from); -1 when none. A single_word token with a word
 * character beside it is passed over, and the search goes on after it. */
static int find_added(const mofo_tokenizer *t, const added_trie *tr, const char *text, size_t n, size_t from, size_t *ms,
                      size_t *me) {
    if (tr->n == 0) return -1;
    const unsigned char *u = (const unsigned char *)text;
    for (size_t i = from; i < n; i++) {
        int32_t node = tr->root[u[i]];
        if (node < 0) continue;
        int best = -1;
        size_t best_len = 0, depth = 1;
        for (;;) { /* walk the trie; the longest token ending on the way wins */
            int k = tr->node[node].tok;
            if (k >= 0) {
                best = k;
                best_len = depth;
            }
            if (i + depth >= n) break;
            int32_t c = tr->node[node].child;
            while (c >= 0 && tr->node[c].byte != u[i + depth]) c = tr->node[c].sibling;
            if (c < 0) break;
            node = c;
            depth++;
        }
        if (best < 0) continue;
        size_t s = i, e = i + best_len;
        const added_tok *a = &t->added[best];
        if (a->single_word && ((s > 0 && is_word(u[s - 1])) || (e < n && is_word(u[e])))) {
            i = e - 1; /* the library's search resumes after the match it discards */
            continue;
        }
        if (a->lstrip) s = ws_run_before(u, s, from);
        if (a->rstrip)
            for (size_t w; e < n && (w = ws_at(u, e, n)) > 0;) e += w;
        *ms = s;
        *me = e;
        return best;
    }
    return -1;
}

static void trie_add(added_trie *tr, const char *p, size_t n, int k) {
    int32_t *link = &tr->root[(unsigned char)p[0]], node = -1;
    for (size_t j = 0; j < n; j++) {
        unsigned char ch = (unsigned char)p[j];
        if (j > 0) {
            link = &tr->node[node].child;
            while (*link >= 0 && tr->node[*link].byte != ch) link = &tr->node[*link].sibling;
        }
        if (*link < 0) {
            tr->node[tr->n] = (struct trie_node){-1, -1, -1, ch};
            *link = tr->n++;
        }
        node = *link;
    }
    if (tr->node[node].tok < 0) tr->node[node].tok = k; /* the same pattern twice: the first */
}

/* The two tries of the added tokens (after the normalizer is loaded: a token with normalized=true
 * is matched as its content normalized, as the library builds its normalized trie). */
static int build_added(mofo_tokenizer *t, const char *name, mofo_err *err) {
    size_t *off = calloc((size_t)t->n_added + 1, sizeof *off);
    mofo_strbuf pool = {0};
    enc_ctx c = {0};
    int rc = off ? 0 : -1, re_err = 0;
    for (int i = 0; i < t->n_added && !rc; i++) {
        added_tok *a = &t->added[i];
        a->pat = a->s;
        a->pat_len = a->len;
        if (!a->normalized) continue;
        if (ctx_reserve_n(&c, a->len)) {
            rc = -1;
            break;
        }
        memcpy(c.nb, a->s, a->len);
        for (size_t k = 0; k < a->len; k++) c.na[k] = (span){(uint32_t)k, (uint32_t)k + 1};
        c.nlen = a->len;
        if (normalize(t, &c)) {
            re_err = c.failed;
            rc = -1;
            break;
        }
        off[i] = pool.len;
        a->pat_len = c.nlen;
        mofo_sb_append(&pool, c.nb, c.nlen);
        mofo_sb_append(&pool, "", 1); /* NUL-terminated, as mofo_tokenizer_token promises */
    }
    ctx_free(&c);
    if (rc || pool.failed) {
        free(off);
        mofo_sb_free(&pool);
        if (re_err) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(re_err, msg, sizeof msg);
            return mofo_errf(err, MOFO_EFORMAT, "%s: normalizing the added tokens: regex match failed: %s", name, (const char *)msg);
        }
        return mofo_errf(err, MOFO_ENOMEM, "%s: out of memory", name);
    }
    t->norm_pool = pool.data;
    size_t bytes[2] = {0, 0};
    for (int i = 0; i < t->n_added; i++) {
        added_tok *a = &t->added[i];
        if (a->normalized) {
            a->pat = t->norm_pool ? t->norm_pool + off[i] : "";
            /* the library's id_to_token (and so decode) gives the normalized content too */
            if (a->pat_len && t->id_str[a->id] == a->s) {
                t->id_str[a->id] = a->pat;
                t->id_len[a->id] = (uint32_t)a->pat_len;
            }
        }
        bytes[a->normalized] += a->pat_len;
    }
    free(off);
    added_trie *tr[2] = {&t->trie_raw, &t->trie_norm};
    for (int k = 0; k < 2; k++) {
        tr[k]->node = malloc((bytes[k] + 1) * sizeof *tr[k]->node);
        if (!tr[k]->node) return mofo_errf(err, MOFO_ENOMEM, "%s: out of memory", name);
        for (int b = 0; b < 256; b++) tr[k]->root[b] = -1;
    }
    for (int i = 0; i < t->n_added; i++) { /* a pattern normalized to nothing is never matched */
        const added_tok *a = &t->added[i];
        if (a->pat_len) trie_add(tr[a->normalized], a->pat, a->pat_len, i);
    }
    return 0;
}

int mofo_tokenizer_encode(const mofo_tokenizer *t, const char *text, size_t len, int add_special, mofo_ids *out,
                          mofo_err *err) {
    mofo_strbuf clean = {0};
    if (len > (size_t)INT32_MAX / 4) return mofo_errf(err, MOFO_EINVAL, "encode: text of %zu bytes is too long", len);
    if (!mofo_utf8_valid(text, len, NULL)) {
        mofo_utf8_lossy(&clean, text, len);
        if (clean.failed) return mofo_errf(err, MOFO_ENOMEM, "encode: out of memory");
        text = clean.data;
        len = clean.len;
    }
    enc_ctx c = {0};
    int rc = 0;
    if (add_special)
        for (int i = 0; i < t->n_prefix && !rc; i++) rc = ids_push(out, t->prefix[i], 0, 0);
    size_t pos = 0;
    while (!rc && pos < len) {
        size_t ms = len, me = len;
        int k = find_added(t, &t->trie_raw, text, len, pos, &ms, &me);
        rc = encode_segment(t, &c, text, pos, k >= 0 ? ms : len, out);
        if (k < 0 || rc) break;
        rc = ids_push(out, t->added[k].id, (uint32_t)ms, (uint32_t)me);
        pos = me;
    }
    if (add_special)
        for (int i = 0; i < t->n_suffix && !rc; i++) rc = ids_push(out, t->suffix[i], (uint32_t)len, (uint32_t)len);
    int re_err = c.failed;
    ctx_free(&c);
    mofo_sb_free(&clean);
    if (rc && re_err) {
        PCRE2_UCHAR msg[128];
        pcre2_get_error_message(re_err, msg, sizeof msg);
        return mofo_errf(err, MOFO_EINVAL, "encode: regex match failed: %s", (const char *)msg);
    }
    if (rc) return mofo_errf(err, MOFO_ENOMEM, "encode: out of memory");
    return 0;
}

/* ------------------------------------------------------------------------------------------------
 * Decoding: a list of token strings run through the decoder steps. */

typedef struct {
    mofo_strbuf buf;
    size_t *off; /* token i is buf[off[i], off[i+1]) */
    size_t n, cap;
} toklist;

static int tl_end(toklist *l) {
    if (grow((void **)&l->off, &l->cap, l->n + 2, sizeof *l->off)) return -1;
    l->off[++l->n] = l->buf.len;
    return 0;
}

static void tl_free(toklist *l) {
    mofo_sb_free(&l->buf);
    free(l->off);
}

static int parse_byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char ch = s[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9') v |= ch - '0';
        else if (ch >= 'A' && ch <= 'F') v |= ch - 'A' + 10;
        else if (ch >= 'a' && ch <= 'f') v |= ch - 'a' + 10;
        else return -1;
    }
    return v;
}

static int decode_step(const dec_step *st, const toklist *in, toklist *o) {
    o->n = 0;
    o->buf.len = 0;
    if (grow((void **)&o->off, &o->cap, 2, sizeof *o->off)) return -1;
    o->off[0] = 0;
    const char *b = in->buf.data ? in->buf.data : "";
    switch (st->type) {
    case DEC_BYTELEVEL: {
        mofo_strbuf raw = {0};
        for (size_t i = 0; i < in->n; i++) {
            const unsigned char *s = (const unsigned char *)b + in->off[i];
            size_t n = in->off[i + 1] - in->off[i], start = raw.len;
            int ok = 1;
            for (size_t k = 0; k < n && ok;) {
                uint32_t cp;
                int r = mofo_utf8_next(s + k, n - k, &cp);
                int byte = r > 0 ? cp_to_byte(cp) : -1;
                if (byte < 0) {
                    ok = 0;
                    break;
                }
                char ch = (char)byte;
                mofo_sb_append(&raw, &ch, 1);
                k += (size_t)r;
            }
            if (!ok) { /* a character outside the byte map: the token's own bytes */
                raw.len = start;
                mofo_sb_append(&raw, (const char *)s, n);
            }
        }
        mofo_utf8_lossy(&o->buf, raw.data ? raw.data : "", raw.len);
        int failed = raw.failed;
        mofo_sb_free(&raw);
        if (failed || tl_end(o)) return -1;
        break;
    }
    case DEC_REPLACE:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = b + in->off[i];
            size_t n = in->off[i + 1] - in->off[i], k = 0, run = 0;
            while (k < n) {
                if (k + st->alen <= n && memcmp(s + k, st->a, st->alen) == 0) {
                    mofo_sb_append(&o->buf, s + k - run, run);
                    run = 0;
                    mofo_sb_append(&o->buf, st->b, st->blen);
                    k += st->alen;
                } else {
                    k++;
                    run++;
                }
            }
            mofo_sb_append(&o->buf, s + n - run, run);
            if (tl_end(o)) return -1;
        }
        break;
    case DEC_BYTEFALLBACK: {
        mofo_strbuf pend = {0}; /* a run of <0xNN> tokens */
        int rc = 0;
        for (size_t i = 0; i <= in->n && !rc; i++) {
            const char *s = i < in->n ? b + in->off[i] : NULL;
            size_t n = i < in->n ? in->off[i + 1] - in->off[i] : 0;
            int v = s ? parse_byte_token(s, n) : -1;
            if (v >= 0) {
                char ch = (char)v;
                mofo_sb_append(&pend, &ch, 1);
                continue;
            }
            if (pend.len) {
                if (mofo_utf8_valid(pend.data, pend.len, NULL)) {
                    mofo_sb_append(&o->buf, pend.data, pend.len);
                    rc = tl_end(o);
                } else {
                    for (size_t k = 0; k < pend.len && !rc; k++) {
                        mofo_sb_append(&o->buf, "\xEF\xBF\xBD", 3);
                        rc = tl_end(o);
                    }
                }
                pend.len = 0;
            }
            if (s && !rc) {
                mofo_sb_append(&o->buf, s, n);
                rc = tl_end(o);
            }
        }
        rc |= pend.failed ? -1 : 0;
        mofo_sb_free(&pend);
        if (rc) return -1;
        break;
    }
    case DEC_FUSE:
        mofo_sb_append(&o->buf, b, in->buf.len);
        if (tl_end(o)) return -1;
        break;
    case DEC_STRIP:
    case DEC_METASPACE:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = b + in->off[i];
            size_t n = in->off[i + 1] - in->off[i];
            if (st->type == DEC_METASPACE) {
                size_t start = o->buf.len;
                for (size_t k = 0; k < n;) {
                    if (k + st->alen <= n && memcmp(s + k, st->a, st->alen) == 0) {
                        mofo_sb_append(&o->buf, " ", 1);
                        k += st->alen;
                    } else {
                        mofo_sb_append(&o->buf, s + k, 1);
                        k++;
                    }
                }
                if (i == 0 && st->start && o->buf.len > start && o->buf.data[start] == ' ') {
                    memmove(o->buf.data + start, o->buf.data + start + 1, o->buf.len - start - 1);
                    o->buf.len--;
                }
            } else {
                size_t a = 0, z = n;
                for (int k = 0; k < st->start && a + st->alen <= z && memcmp(s + a, st->a, st->alen) == 0; k++) a += st->alen;
                for (int k = 0; k < st->stop && z >= a + st->alen && memcmp(s + z - st->alen, st->a, st->alen) == 0; k++) z -= st->alen;
                mofo_sb_append(&o->buf, s + a, z - a);
            }
            if (tl_end(o)) return -1;
        }
        break;
    }
    return o->buf.failed ? -1 : 0;
}

int mofo_tokenizer_decode(const mofo_tokenizer *t, const int32_t *ids, size_t n, int skip_special, mofo_strbuf *out,
                          mofo_err *err) {
    toklist a = {0}, b = {0};
    int rc = 0;
    if (grow((void **)&a.off, &a.cap, 2, sizeof *a.off)) return mofo_errf(err, MOFO_ENOMEM, "decode: out of memory");
    a.off[0] = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_ids || !t->id_str[id]) {
            rc = mofo_errf(err, MOFO_EINVAL, "decode: id %d at position %zu is outside the vocabulary (size %d)", (int)id, i, (int)t->n_ids);
            break;
        }
        if (skip_special && t->id_special[id]) continue;
        mofo_sb_append(&a.buf, t->id_str[id], t->id_len[id]);
        if (tl_end(&a)) rc = mofo_errf(err, MOFO_ENOMEM, "decode: out of memory");
    }
    toklist *cur = &a, *nxt = &b;
    for (int i = 0; i < t->n_dec && !rc; i++) {
        if (decode_step(&t->dec[i], cur, nxt)) rc = mofo_errf(err, MOFO_ENOMEM, "decode: out of memory");
        toklist *x = cur;
        cur = nxt;
        nxt = x;
    }
    if (!rc) {
        const char *s = cur->buf.data ? cur->buf.data : "";
        for (size_t i = 0; i < cur->n; i++) {
            if (t->n_dec == 0 && i > 0) mofo_sb_append(out, " ", 1); /* no decoder: tokens joined by spaces */
            mofo_sb_append(out, s + cur->off[i], cur->off[i + 1] - cur->off[i]);
        }
        if (out->failed) rc = mofo_errf(err, MOFO_ENOMEM, "decode: out of memory");
    }
    tl_free(&a);
    tl_free(&b);
    return rc;
}

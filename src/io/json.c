/* Recursive-descent JSON parser with an arena; strict RFC 8259 (no comments, no trailing commas). */
#include "json.h"
#include "strbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 512
#define ARENA_CHUNK (64 * 1024)

typedef struct arena_chunk {
    struct arena_chunk *prev;
    size_t used, cap;
    _Alignas(16) char data[];
} arena_chunk;

struct mofo_json_doc {
    arena_chunk *chunks;
    mofo_json *root;
};

typedef struct parser {
    const char *s;
    size_t len, pos;
    int line;
    size_t line_start;
    mofo_json_doc *doc;
    mofo_err *err;
    int failed;
} parser;

static void *arena_alloc(mofo_json_doc *doc, size_t n) {
    n = (n + 15) & ~(size_t)15;
    arena_chunk *c = doc->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        arena_chunk *nc = malloc(sizeof *nc + cap);
        if (!nc) return NULL;
        nc->prev = c;
        nc->used = 0;
        nc->cap = cap;
        doc->chunks = c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

static int fail(parser *p, const char *reason) {
    if (!p->failed) {
        p->failed = 1;
        mofo_errf(p->err, MOFO_EFORMAT, "line %d, column %zu: %s", p->line,
                  p->pos - p->line_start + 1, reason);
    }
    return -1;
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c == '\n') {
            p->line++;
            p->line_start = p->pos + 1;
        } else if (c != ' ' && c != '\t' && c != '\r') {
            return;
        }
        p->pos++;
    }
}

static mofo_json *new_node(parser *p, mofo_json_type type) {
    mofo_json *n = arena_alloc(p->doc, sizeof *n);
    if (!n) {
        fail(p, "out of memory");
        return NULL;
    }
    memset(n, 0, sizeof *n);
    n->type = type;
    n->line = p->line;
    return n;
}

static int hex4(parser *p, unsigned *out) {
    if (p->len - p->pos < 4) return fail(p, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return fail(p, "bad hex digit in \\u escape");
    }
    *out = v;
    return 0;
}

/* Parses a string at p->pos (which is at the opening quote); unescaped bytes go to the arena. */
static int parse_string(parser *p, const char **out, size_t *out_len) {
    p->pos++; /* opening quote */
    size_t start = p->pos, escapes = 0;
    while (p->pos < p->len && p->s[p->pos] != '"') {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) return fail(p, "control character inside a string");
        if (c == '\\') {
            escapes++;
            p->pos++;
        }
        p->pos++;
    }
    if (p->pos >= p->len) return fail(p, "unterminated string");
    size_t raw_len = p->pos - start;
    char *o = arena_alloc(p->doc, raw_len + 1);
    if (!o) return fail(p, "out of memory");
    if (!escapes) {
        memcpy(o, p->s + start, raw_len);
        o[raw_len] = '\0';
        *out = o;
        *out_len = raw_len;
        p->pos++;
        return 0;
    }
    /* second walk, decoding escapes; output is never longer than the input */
    size_t end = p->pos, n = 0;
    p->pos = start;
    while (p->pos < end) {
        char c = p->s[p->pos++];
        if (c != '\\') {
            o[n++] = c;
            continue;
        }
        char e = p->s[p->pos++];
        switch (e) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (hex4(p, &cp)) return -1;
            if (cp >= 0xD800 && cp < 0xDC00) {
                unsigned lo;
                if (p->pos + 2 <= end && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u') {
                    p->pos += 2;
                    if (hex4(p, &lo)) return -1;
                    if (lo >= 0xDC00 && lo < 0xE000) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    } else {
                        n += mofo_utf8_put(o + n, 0xFFFD); /* lone high surrogate */
                        cp = lo >= 0xD800 && lo < 0xE000 ? 0xFFFD : lo;
                    }
                } else {
                    cp = 0xFFFD;
                }
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                cp = 0xFFFD; /* lone low surrogate */
            }
            n += mofo_utf8_put(o + n, cp);
            break;
        }
        default: return fail(p, "unknown escape in string");
        }
    }
    o[n] = '\0';
    *out = o;
    *out_len = n;
    p->pos = end + 1;
    return 0;
}

static int parse_number(parser *p, mofo_json *node) {
    size_t start = p->pos;
    const char *s = p->s;
    if (p->pos < p->len && s[p->pos] == '-') p->pos++;
    if (p->pos >= p->len || s[p->pos] < '0' || s[p->pos] > '9') return fail(p, "bad number");
    if (s[p->pos] == '0') p->pos++;
    else while (p->pos < p->len && s[p->pos] >= '0' && s[p->pos] <= '9') p->pos++;
    if (p->pos < p->len && s[p->pos] == '.') {
        p->pos++;
        if (p->pos >= p->len || s[p->pos] < '0' || s[p->pos] > '9') return fail(p, "bad fraction");
        while (p->pos < p->len && s[p->pos] >= '0' && s[p->pos] <= '9') p->pos++;
    }
    if (p->pos < p->len && (s[p->pos] == 'e' || s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (s[p->pos] == '+' || s[p->pos] == '-')) p->pos++;
        if (p->pos >= p->len || s[p->pos] < '0' || s[p->pos] > '9') return fail(p, "bad exponent");
        while (p->pos < p->len && s[p->pos] >= '0' && s[p->pos] <= '9') p->pos++;
    }
    size_t n = p->pos - start;
    char *text = arena_alloc(p->doc, n + 1);
    if (!text) return fail(p, "out of memory");
    memcpy(text, s + start, n);
    text[n] = '\0';
    node->str = text;
    node->len = n;
    node->number = strtod(text, NULL);
    return 0;
}

static mofo_json *parse_value(parser *p, int depth);

static int parse_container(parser *p, mofo_json *node, int depth, char close) {
    p->pos++; /* [ or { */
    mofo_json **tail = &node->child;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return 0;
    }
    for (;;) {
        const char *key = NULL;
        size_t key_len = 0;
        skip_ws(p);
        if (close == '}') {
            if (p->pos >= p->len || p->s[p->pos] != '"') return fail(p, "expected a member name");
            if (parse_string(p, &key, &key_len)) return -1;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') return fail(p, "expected ':'");
            p->pos++;
        }
        mofo_json *child = parse_value(p, depth + 1);
        if (!child) return -1;
        child->key = key;
        child->key_len = key_len;
        *tail = child;
        tail = &child->next;
        node->count++;
        skip_ws(p);
        if (p->pos >= p->len) return fail(p, close == '}' ? "unterminated object" : "unterminated array");
        char c = p->s[p->pos++];
        if (c == close) return 0;
        if (c != ',') return fail(p, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int match_word(parser *p, const char *w) {
    size_t n = strlen(w);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, w, n) != 0) return 0;
    p->pos += n;
    return 1;
}

static mofo_json *parse_value(parser *p, int depth) {
    if (depth > JSON_MAX_DEPTH) {
        fail(p, "nesting too deep");
        return NULL;
    }
    skip_ws(p);
    if (p->pos >= p->len) {
        fail(p, "unexpected end of input");
        return NULL;
    }
    char c = p->s[p->pos];
    mofo_json *node;
    switch (c) {
    case '{':
    case '[':
        node = new_node(p, c == '{' ? MOFO_JSON_OBJECT : MOFO_JSON_ARRAY);
        if (!node || parse_container(p, node, depth, c == '{' ? '}' : ']')) return NULL;
        return node;
    case '"':
        node = new_node(p, MOFO_JSON_STRING);
        if (!node || parse_string(p, &node->str, &node->len)) return NULL;
        return node;
    case 't':
    case 'f':
        node = new_node(p, MOFO_JSON_BOOL);
        if (!node) return NULL;
        if (match_word(p, "true")) node->boolean = 1;
        else if (!match_word(p, "false")) {
            fail(p, "unexpected character");
            return NULL;
        }
        return node;
    case 'n':
        node = new_node(p, MOFO_JSON_NULL);
        if (!node) return NULL;
        if (!match_word(p, "null")) {
            fail(p, "unexpected character");
            return NULL;
        }
        return node;
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            node = new_node(p, MOFO_JSON_NUMBER);
            if (!node || parse_number(p, node)) return NULL;
            return node;
        }
        fail(p, "unexpected character");
        return NULL;
    }
}

mofo_json_doc *mofo_json_parse(const char *text, size_t len, mofo_err *err) {
    mofo_json_doc *doc = calloc(1, sizeof *doc);
    if (!doc) {
        mofo_errf(err, MOFO_ENOMEM, "out of memory parsing JSON");
        return NULL;
    }
    parser p = {.s = text, .len = len, .line = 1, .doc = doc, .err = err};
    doc->root = parse_value(&p, 0);
    if (doc->root) {
        skip_ws(&p);
        if (p.pos != p.len) fail(&p, "unexpected text after the JSON value");
    }
    if (p.failed) {
        mofo_json_free(doc);
        return NULL;
    }
    return doc;
}

const mofo_json *mofo_json_root(const mofo_json_doc *doc) { return doc ? doc->root : NULL; }

void mofo_json_free(mofo_json_doc *doc) {
    if (!doc) return;
    arena_chunk *c = doc->chunks;
    while (c) {
        arena_chunk *prev = c->prev;
        free(c);
        c = prev;
    }
    free(doc);
}

const mofo_json *mofo_json_get(const mofo_json *obj, const char *key) {
    if (!obj || obj->type != MOFO_JSON_OBJECT) return NULL;
    size_t n = strlen(key);
    for (const mofo_json *c = obj->child; c; c = c->next)
        if (c->key_len == n && memcmp(c->key, key, n) == 0) return c;
    return NULL;
}

int mofo_json_int64(const mofo_json *node, int64_t *out) {
    if (!node || node->type != MOFO_JSON_NUMBER) return 0;
    const char *s = node->str;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE) return 0;
    if (*end == '.') {
        end++;
        while (*end == '0') end++;
    }
    if (*end != '\0') return 0; /* a fraction or an exponent */
    *out = (int64_t)v;
    return 1;
}

const char *mofo_json_type_name(mofo_json_type type) {
    switch (type) {
    case MOFO_JSON_NULL: return "null";
    case MOFO_JSON_BOOL: return "boolean";
    case MOFO_JSON_NUMBER: return "number";
    case MOFO_JSON_STRING: return "string";
    case MOFO_JSON_ARRAY: return "array";
    case MOFO_JSON_OBJECT: return "object";
    }
    return "?";
}

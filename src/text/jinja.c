/* jinja.h's renderer: values, the expression evaluator with its filters, tests and methods, and
 * the statements. Everything a render makes lives in its arena, freed at the end; errors longjmp
 * back to mofo_jinja_render. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text/jinja_internal.h"

/* bounds that make every render end, whatever the template */
#define MAX_CALLS 64                 /* macro calls in progress */
#define MAX_STEPS 50000000           /* statements and loop iterations */
#define MAX_OUTPUT ((size_t)1 << 28) /* bytes of any string, and of the rendering */

/* ---- values ---- */

typedef enum { V_UNDEF, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_LIST, V_DICT, V_FUNC, V_MACRO } vkind;
typedef enum { F_RAISE, F_NAMESPACE, F_RANGE, F_STRFTIME } builtin;

typedef struct list list;
typedef struct dict dict;
typedef struct value {
    vkind k;
    int64_t i;         /* BOOL, INT, FUNC */
    double f;          /* FLOAT */
    const char *s;     /* STR bytes; UNDEF: the name that was looked up */
    const uint8_t *m;  /* STR: per byte 1 when trained; NULL when none is */
    size_t n;
    list *l;
    dict *d;
    const node *mac;   /* MACRO */
} value;

struct list {
    value *v;
    size_t n, cap;
};
struct dict {
    value *key, *val; /* keys are strings */
    size_t n, cap;
};

static value v_undef(const char *name) { return (value){.k = V_UNDEF, .s = name}; }
static value v_none(void) { return (value){.k = V_NONE}; }
static value v_bool(int b) { return (value){.k = V_BOOL, .i = !!b}; }
static value v_int(int64_t i) { return (value){.k = V_INT, .i = i}; }
static value v_float(double f) { return (value){.k = V_FLOAT, .f = f}; }
static value v_str(const char *s, size_t n, const uint8_t *m) { return (value){.k = V_STR, .s = s, .n = n, .m = m}; }
static value v_cstr(const char *s) { return v_str(s, strlen(s), NULL); }

static list *list_new(env *e, size_t cap) {
    list *l = jj_zalloc(e, sizeof *l);
    l->cap = cap ? cap : 4;
    l->v = jj_alloc(e, l->cap * sizeof *l->v);
    return l;
}
static void list_push(env *e, list *l, value v) {
    if (l->n == l->cap) {
        value *nv = jj_alloc(e, 2 * l->cap * sizeof *nv);
        memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv;
        l->cap *= 2;
    }
    l->v[l->n++] = v;
}
static value v_list(list *l) { return (value){.k = V_LIST, .l = l}; }

static dict *dict_new(env *e) {
    dict *d = jj_zalloc(e, sizeof *d);
    d->cap = 8;
    d->key = jj_alloc(e, d->cap * sizeof *d->key);
    d->val = jj_alloc(e, d->cap * sizeof *d->val);
    return d;
}
static value *dict_find(const dict *d, const char *k, size_t n) {
    for (size_t i = 0; i < d->n; i++)
        if (d->key[i].n == n && !memcmp(d->key[i].s, k, n)) return &d->val[i];
    return NULL;
}
static void dict_set(env *e, dict *d, value key, value v) {
    value *slot = dict_find(d, key.s, key.n);
    if (slot) {
        *slot = v;
        return;
    }
    if (d->n == d->cap) {
        value *nk = jj_alloc(e, 2 * d->cap * sizeof *nk), *nv = jj_alloc(e, 2 * d->cap * sizeof *nv);
        memcpy(nk, d->key, d->n * sizeof *nk);
        memcpy(nv, d->val, d->n * sizeof *nv);
        d->key = nk;
        d->val = nv;
        d->cap *= 2;
    }
    key.m = NULL;
    d->key[d->n] = key;
    d->val[d->n++] = v;
}
static void dict_setc(env *e, dict *d, const char *k, value v) { dict_set(e, d, v_cstr(k), v); }
static value v_dict(dict *d) { return (value){.k = V_DICT, .d = d}; }

static const uint8_t *ones(env *e, size_t n) {
    uint8_t *m = jj_alloc(e, n ? n : 1);
    memset(m, 1, n);
    return m;
}

/* A JSON value; the "content" string of an assistant message is marked trained. */
static value from_json(env *e, const mofo_json *j, int assistant_msg) {
    switch (j->type) {
    case MOFO_JSON_NULL: return v_none();
    case MOFO_JSON_BOOL: return v_bool(j->boolean);
    case MOFO_JSON_NUMBER: {
        int64_t i;
        int integral = mofo_json_int64(j, &i) && !strpbrk(j->str, ".eE");
        return integral ? v_int(i) : v_float(j->number);
    }
    case MOFO_JSON_STRING: return v_str(j->str, j->len, NULL);
    case MOFO_JSON_ARRAY: {
        list *l = list_new(e, j->count);
        for (const mofo_json *c = j->child; c; c = c->next) list_push(e, l, from_json(e, c, 0));
        return v_list(l);
    }
    case MOFO_JSON_OBJECT: {
        dict *d = dict_new(e);
        for (const mofo_json *c = j->child; c; c = c->next) {
            value v = from_json(e, c, 0);
            if (assistant_msg && v.k == V_STR && c->key_len == 7 && !memcmp(c->key, "content", 7)) v.m = ones(e, v.n);
            dict_set(e, d, v_str(c->key, c->key_len, NULL), v);
        }
        return v_dict(d);
    }
    }
    return v_none();
}

static const char *kind_name(vkind k) {
    static const char *names[] = {"undefined", "none", "boolean", "integer", "float", "string", "list", "dict", "function", "macro"};
    return names[k];
}

static int truthy(value v) {
    switch (v.k) {
    case V_UNDEF:
    case V_NONE: return 0;
    case V_BOOL:
    case V_INT: return v.i != 0;
    case V_FLOAT: return v.f != 0;
    case V_STR: return v.n > 0;
    case V_LIST: return v.l->n > 0;
    case V_DICT: return v.d->n > 0;
    default: return 1;
    }
}

static int is_num(value v) { return v.k == V_INT || v.k == V_FLOAT || v.k == V_BOOL; }
static double num(value v) { return v.k == V_FLOAT ? v.f : (double)v.i; }

static int equal(value a, value b) {
    if (is_num(a) && is_num(b)) return (a.k == V_FLOAT || b.k == V_FLOAT) ? num(a) == num(b) : a.i == b.i;
    if (a.k != b.k) return 0;
    switch (a.k) {
    case V_UNDEF:
    case V_NONE: return 1;
    case V_STR: return a.n == b.n && !memcmp(a.s, b.s, a.n);
    case V_LIST:
        if (a.l->n != b.l->n) return 0;
        for (size_t i = 0; i < a.l->n; i++)
            if (!equal(a.l->v[i], b.l->v[i])) return 0;
        return 1;
    case V_DICT:
        if (a.d == b.d) return 1;
        if (a.d->n != b.d->n) return 0;
        for (size_t i = 0; i < a.d->n; i++) {
            value *o = dict_find(b.d, a.d->key[i].s, a.d->key[i].n);
            if (!o || !equal(a.d->val[i], *o)) return 0;
        }
        return 1;
    case V_FUNC: return a.i == b.i;
    case V_MACRO: return a.mac == b.mac;
    default: return 0;
    }
}

/* ---- strings: building with their masks ---- */

/* A string being built. Each is on the env's list of open builders from sb_open until sb_value or
 * sb_close, so a failure anywhere (jj_fail's longjmp) frees every one still open. */
typedef struct sbuild {
    mofo_strbuf t, m;
    int any; /* some byte is trained */
    struct sbuild *prev, *next;
} sbuild;

static sbuild *sb_open(env *e) {
    sbuild *b = calloc(1, sizeof *b);
    if (!b) jj_fail(e, 0, MOFO_ENOMEM, "out of memory");
    b->next = e->open;
    if (b->next) b->next->prev = b;
    e->open = b;
    return b;
}

static void sb_close(env *e, sbuild *b) {
    if (b->prev) b->prev->next = b->next;
    else e->open = b->next;
    if (b->next) b->next->prev = b->prev;
    mofo_sb_free(&b->t);
    mofo_sb_free(&b->m);
    free(b);
}

static void sb_add(sbuild *b, const char *s, size_t n, const uint8_t *m) {
    mofo_sb_append(&b->t, s, n);
    if (m) {
        mofo_sb_append(&b->m, (const char *)m, n);
        b->any = 1;
    } else {
        static const char zeros[256];
        for (size_t i = 0; i < n; i += sizeof zeros) mofo_sb_append(&b->m, zeros, n - i < sizeof zeros ? n - i : sizeof zeros);
    }
}
static void sb_addv(sbuild *b, value v) { sb_add(b, v.s, v.n, v.m); }
/* The built string as a value in the arena (b is closed). */
static value sb_value(env *e, sbuild *b) {
    if (b->t.failed || b->m.failed || b->t.len > MAX_OUTPUT) {
        int big = b->t.len > MAX_OUTPUT;
        sb_close(e, b);
        if (big) jj_fail(e, 0, MOFO_EFORMAT, "a string of over %zu MiB", MAX_OUTPUT >> 20);
        jj_fail(e, 0, MOFO_ENOMEM, "out of memory");
    }
    char *s = jj_dup(e, b->t.data ? b->t.data : "", b->t.len);
    uint8_t *m = NULL;
    if (b->any) {
        m = jj_alloc(e, b->t.len ? b->t.len : 1);
        if (b->t.len) memcpy(m, b->m.data, b->t.len);
    }
    value v = v_str(s, b->t.len, m);
    sb_close(e, b);
    return v;
}
static value substr(value s, size_t a, size_t b) { return v_str(s.s + a, b - a, s.m ? s.m + a : NULL); }

/* Python's repr of a float: the shortest digits that read back the same. */
static void fmt_float(char *o, size_t cap, double f) {
    if (isnan(f)) {
        snprintf(o, cap, "nan");
        return;
    }
    if (isinf(f)) {
        snprintf(o, cap, f < 0 ? "-inf" : "inf");
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(o, cap, "%.*g", p, f);
        if (strtod(o, NULL) == f) break;
    }
    if (!strpbrk(o, ".eEn")) strncat(o, ".0", cap - strlen(o) - 1);
}

static void repr_str(sbuild *b, value v) {
    int dq = memchr(v.s, '\'', v.n) && !memchr(v.s, '"', v.n);
    char q = dq ? '"' : '\'';
    sb_add(b, &q, 1, NULL);
    for (size_t i = 0; i < v.n; i++) {
        unsigned char c = (unsigned char)v.s[i];
        char esc[8];
        if (c == '\\' || c == (unsigned char)q) {
            esc[0] = '\\', esc[1] = (char)c;
            sb_add(b, esc, 2, NULL);
        } else if (c == '\n' || c == '\t' || c == '\r') {
            esc[0] = '\\', esc[1] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
            sb_add(b, esc, 2, NULL);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            sb_add(b, esc, 4, NULL);
        } else {
            sb_add(b, v.s + i, 1, v.m ? v.m + i : NULL);
        }
    }
    sb_add(b, &q, 1, NULL);
}

/* str(v) as Python prints it (repr inside containers). */
static void to_str(env *e, sbuild *b, value v, int repr) {
    char buf[64];
    switch (v.k) {
    case V_UNDEF: return;
    case V_NONE: sb_add(b, "None", 4, NULL); return;
    case V_BOOL: sb_add(b, v.i ? "True" : "False", v.i ? 4 : 5, NULL); return;
    case V_INT: snprintf(buf, sizeof buf, "%lld", (long long)v.i); break;
    case V_FLOAT: fmt_float(buf, sizeof buf, v.f); break;
    case V_STR:
        if (repr) repr_str(b, v);
        else sb_addv(b, v);
        return;
    case V_LIST:
        sb_add(b, "[", 1, NULL);
        for (size_t i = 0; i < v.l->n; i++) {
            if (i) sb_add(b, ", ", 2, NULL);
            to_str(e, b, v.l->v[i], 1);
        }
        sb_add(b, "]", 1, NULL);
        return;
    case V_DICT:
        sb_add(b, "{", 1, NULL);
        for (size_t i = 0; i < v.d->n; i++) {
            if (i) sb_add(b, ", ", 2, NULL);
            repr_str(b, v.d->key[i]);
            sb_add(b, ": ", 2, NULL);
            to_str(e, b, v.d->val[i], 1);
        }
        sb_add(b, "}", 1, NULL);
        return;
    default: snprintf(buf, sizeof buf, "<%s>", kind_name(v.k)); break;
    }
    sb_add(b, buf, strlen(buf), NULL);
}

static value stringify(env *e, value v) {
    if (v.k == V_STR) return v;
    sbuild *b = sb_open(e);
    to_str(e, b, v, 0);
    return sb_value(e, b);
}

/* json.dumps(v, ensure_ascii=False, indent=indent) as transformers' tojson filter writes it */
static void to_json(env *e, mofo_strbuf *o, value v, int indent, int depth, int line) {
    char buf[64];
    switch (v.k) {
    case V_UNDEF:
    case V_NONE: mofo_sb_puts(o, "null"); return;
    case V_BOOL: mofo_sb_puts(o, v.i ? "true" : "false"); return;
    case V_INT: mofo_sb_printf(o, "%lld", (long long)v.i); return;
    case V_FLOAT:
        if (isnan(v.f) || isinf(v.f)) {
            mofo_sb_puts(o, isnan(v.f) ? "NaN" : v.f < 0 ? "-Infinity" : "Infinity");
            return;
        }
        fmt_float(buf, sizeof buf, v.f);
        mofo_sb_puts(o, buf);
        return;
    case V_STR: mofo_sb_json_string(o, v.s, v.n); return;
    case V_LIST:
    case V_DICT: {
        int isd = v.k == V_DICT;
        size_t n = isd ? v.d->n : v.l->n;
        mofo_sb_puts(o, isd ? "{" : "[");
        for (size_t i = 0; i < n; i++) {
            if (i) mofo_sb_puts(o, indent >= 0 ? "," : ", ");
            if (indent >= 0) {
                mofo_sb_puts(o, "\n");
                for (int k = 0; k < indent * (depth + 1); k++) mofo_sb_puts(o, " ");
            }
            if (isd) {
                mofo_sb_json_string(o, v.d->key[i].s, v.d->key[i].n);
                mofo_sb_puts(o, ": ");
            }
            to_json(e, o, isd ? v.d->val[i] : v.l->v[i], indent, depth + 1, line);
        }
        if (indent >= 0 && n) {
            mofo_sb_puts(o, "\n");
            for (int k = 0; k < indent * depth; k++) mofo_sb_puts(o, " ");
        }
        mofo_sb_puts(o, isd ? "}" : "]");
        return;
    }
    default: jj_fail(e, line, MOFO_EFORMAT, "tojson: a %s is not JSON", kind_name(v.k));
    }
}

/* UTF-8 code points: byte offset of code point k (clamped to n) and the count */
static size_t cp_count(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}
static size_t cp_offset(const char *s, size_t n, size_t k) {
    size_t i = 0;
    while (i < n && k > 0) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
        k--;
    }
    return i;
}

/* Python's str.isspace() set, in UTF-8: the length of the whitespace character at s, or 0 */
static size_t space_at(const char *s, size_t n) {
    unsigned char c = (unsigned char)s[0];
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return 1;
    if (c < 0x80 || n < 2) return 0;
    uint32_t cp;
    size_t len;
    if ((c & 0xE0) == 0xC0) cp = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F), len = 2;
    else if ((c & 0xF0) == 0xE0 && n >= 3) cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F), len = 3;
    else return 0;
    int sp = cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
             cp == 0x202F || cp == 0x205F || cp == 0x3000;
    return sp ? len : 0;
}

/* The length of the code point at the front (or the back) of p[0..n) when strip removes it, else 0:
 * chars NULL strips whitespace, else any code point of chars. */
static size_t strippable(const char *p, size_t n, const value *chars, int back) {
    if (n == 0) return 0;
    size_t l = 1;
    if (back) {
        while (l < n && ((unsigned char)p[n - l] & 0xC0) == 0x80) l++;
        p += n - l;
    } else {
        while (l < n && ((unsigned char)p[l] & 0xC0) == 0x80) l++;
    }
    if (!chars) return space_at(p, l) == l ? l : 0;
    for (size_t i = 0; i + l <= chars->n; i++)
        if (((unsigned char)chars->s[i] & 0xC0) != 0x80 && !memcmp(chars->s + i, p, l)) return l;
    return 0;
}

static value strip(value s, const value *chars, int left, int right) {
    size_t a = 0, b = s.n, l;
    while (left && (l = strippable(s.s + a, b - a, chars, 0)) > 0) a += l;
    while (right && (l = strippable(s.s + a, b - a, chars, 1)) > 0) b -= l;
    return substr(s, a, b);
}

static const char *find_sub(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn == 0) return h;
    for (size_t i = 0; i + nn <= hn; i++)
        if (!memcmp(h + i, nd, nn)) return h + i;
    return NULL;
}

/* ---- render ---- */

typedef struct frame frame;
struct frame {
    frame *up;
    dict *vars;
};

typedef struct {
    env *e;
    const mofo_jinja_vars *in;
    dict *globals;
    frame *top;
    sbuild *out;
    int generation; /* inside {% generation %}; or -1: the template has no such block */
    int brk;        /* 1: break, 2: continue pending */
    int calls;      /* macro calls in progress */
    int64_t steps;  /* statements and loop iterations run: bounded, so that a render ends */
} rctx;

static value eval(rctx *R, const node *n);
static void exec_list(rctx *R, const node *s);

static value lookup(rctx *R, const char *name) {
    size_t n = strlen(name);
    for (frame *f = R->top; f; f = f->up) {
        value *v = dict_find(f->vars, name, n);
        if (v) return *v;
    }
    value *v = dict_find(R->globals, name, n);
    if (v) return *v;
    static const char *const fns[] = {"raise_exception", "namespace", "range", "strftime_now"};
    for (int k = 0; k < 4; k++)
        if (!strcmp(name, fns[k])) return (value){.k = V_FUNC, .i = k};
    return v_undef(name);
}

_Noreturn static void type_fail(rctx *R, int line, const char *what, value v) {
    if (v.k == V_UNDEF && v.s) jj_fail(R->e, line, MOFO_EFORMAT, "%s: '%s' is undefined", what, v.s);
    jj_fail(R->e, line, MOFO_EFORMAT, "%s: got a %s", what, kind_name(v.k));
}

static value need_str(rctx *R, int line, const char *what, value v) {
    if (v.k != V_STR) type_fail(R, line, what, v);
    return v;
}

static int64_t need_int(rctx *R, int line, const char *what, value v) {
    if (v.k == V_INT || v.k == V_BOOL) return v.i;
    type_fail(R, line, what, v);
}

/* Items to iterate: a list's elements, a dict's keys, a string's code points */
static list *iter_items(rctx *R, int line, value v) {
    if (v.k == V_LIST) return v.l;
    list *l = list_new(R->e, 4);
    if (v.k == V_UNDEF || v.k == V_NONE) {
        if (v.k == V_NONE) type_fail(R, line, "cannot iterate", v);
        return l;
    }
    if (v.k == V_DICT) {
        for (size_t i = 0; i < v.d->n; i++) list_push(R->e, l, v.d->key[i]);
    } else if (v.k == V_STR) {
        for (size_t i = 0; i < v.n;) {
            size_t j = cp_offset(v.s + i, v.n - i, 1);
            list_push(R->e, l, substr(v, i, i + j));
            i += j;
        }
    } else {
        type_fail(R, line, "cannot iterate", v);
    }
    return l;
}

static value attr(rctx *R, int line, value obj, const char *name, size_t n) {
    if (obj.k == V_DICT) {
        value *v = dict_find(obj.d, name, n);
        return v ? *v : v_undef(NULL);
    }
    if (obj.k == V_UNDEF) {
        if (obj.s) jj_fail(R->e, line, MOFO_EFORMAT, "'%s' is undefined (its attribute '%.*s' was read)", obj.s, (int)n, name);
        jj_fail(R->e, line, MOFO_EFORMAT, "an undefined value has no attribute '%.*s'", (int)n, name);
    }
    return v_undef(NULL);
}

static int64_t norm_index(int64_t i, size_t n) { return i < 0 ? i + (int64_t)n : i; }

static value index_(rctx *R, int line, value obj, value idx) {
    if (obj.k == V_DICT) {
        if (idx.k != V_STR) return v_undef(NULL);
        return attr(R, line, obj, idx.s, idx.n);
    }
    if (obj.k == V_LIST || obj.k == V_STR) {
        int64_t i = need_int(R, line, "an index", idx);
        size_t len = obj.k == V_LIST ? obj.l->n : cp_count(obj.s, obj.n);
        i = norm_index(i, len);
        if (i < 0 || (size_t)i >= len) jj_fail(R->e, line, MOFO_EFORMAT, "index %lld is out of range (length %zu)", (long long)idx.i, len);
        if (obj.k == V_LIST) return obj.l->v[i];
        size_t a = cp_offset(obj.s, obj.n, (size_t)i);
        return substr(obj, a, a + cp_offset(obj.s + a, obj.n - a, 1));
    }
    if (obj.k == V_UNDEF && obj.s) jj_fail(R->e, line, MOFO_EFORMAT, "'%s' is undefined (it was indexed)", obj.s);
    jj_fail(R->e, line, MOFO_EFORMAT, "a %s cannot be indexed", kind_name(obj.k));
}

static value slice(rctx *R, const node *n) {
    value obj = eval(R, n->a);
    int64_t step = n->filt ? need_int(R, n->line, "a slice step", eval(R, n->filt)) : 1;
    if (step == 0) jj_fail(R->e, n->line, MOFO_EFORMAT, "slice step cannot be zero");
    size_t len;
    if (obj.k == V_LIST) len = obj.l->n;
    else if (obj.k == V_STR) len = cp_count(obj.s, obj.n);
    else jj_fail(R->e, n->line, MOFO_EFORMAT, "a %s cannot be sliced", kind_name(obj.k));
    int64_t L = (int64_t)len, a, b;
    /* Python's slice.indices */
    if (n->b) {
        a = norm_index(need_int(R, n->line, "a slice bound", eval(R, n->b)), len);
        a = a < 0 ? (step < 0 ? -1 : 0) : a >= L ? (step < 0 ? L - 1 : L) : a;
    } else {
        a = step < 0 ? L - 1 : 0;
    }
    if (n->c) {
        b = norm_index(need_int(R, n->line, "a slice bound", eval(R, n->c)), len);
        b = b < 0 ? (step < 0 ? -1 : 0) : b >= L ? (step < 0 ? L - 1 : L) : b;
    } else {
        b = step < 0 ? -1 : L;
    }
    if (obj.k == V_STR && step == 1) {
        if (b < a) b = a;
        size_t x = cp_offset(obj.s, obj.n, (size_t)a), y = cp_offset(obj.s, obj.n, (size_t)b);
        return substr(obj, x, y);
    }
    list *items = obj.k == V_LIST ? obj.l : iter_items(R, n->line, obj);
    list *out = list_new(R->e, 4);
    for (int64_t i = a; step > 0 ? i < b : i > b; i += step) list_push(R->e, out, items->v[i]);
    if (obj.k == V_LIST) return v_list(out);
    sbuild *sb = sb_open(R->e);
    for (size_t i = 0; i < out->n; i++) sb_addv(sb, out->v[i]);
    return sb_value(R->e, sb);
}

/* positional/keyword argument k named kwname of a call node (evaluated), or NULL when absent */
static int arg(rctx *R, const node *n, size_t pos, const char *kwname, size_t skip, value *out) {
    size_t seen = 0;
    for (size_t i = skip; i < n->nargs; i++) {
        if (n->kw[i]) {
            if (kwname && !strcmp(n->kw[i], kwname)) {
                *out = eval(R, n->args[i]);
                return 1;
            }
        } else if (seen++ == pos) {
            *out = eval(R, n->args[i]);
            return 1;
        }
    }
    return 0;
}

static int apply_test(rctx *R, int line, const char *name, value v, const node *args, size_t skip);

static value apply_filter(rctx *R, const node *f, value v);

static value builtin_call(rctx *R, const node *n, int fn) {
    value a;
    switch ((builtin)fn) {
    case F_RAISE: {
        value msg = arg(R, n, 0, NULL, 0, &a) ? stringify(R->e, a) : v_cstr("");
        jj_fail(R->e, n->line, MOFO_EFORMAT, "the template raised an exception: \"%.*s\"", (int)(msg.n > 300 ? 300 : msg.n), msg.s);
    }
    case F_NAMESPACE: {
        dict *d = dict_new(R->e);
        for (size_t i = 0; i < n->nargs; i++) {
            value x = eval(R, n->args[i]);
            if (n->kw[i]) dict_setc(R->e, d, n->kw[i], x);
            else if (x.k == V_DICT)
                for (size_t k = 0; k < x.d->n; k++) dict_set(R->e, d, x.d->key[k], x.d->val[k]);
        }
        return v_dict(d);
    }
    case F_RANGE: {
        int64_t p[3] = {0, 0, 1};
        size_t k = 0;
        for (; k < 3 && arg(R, n, k, NULL, 0, &a); k++) p[k] = need_int(R, n->line, "range", a);
        if (k == 0) jj_fail(R->e, n->line, MOFO_EFORMAT, "range() needs an argument");
        int64_t lo = k == 1 ? 0 : p[0], hi = k == 1 ? p[0] : p[1], st = k == 3 ? p[2] : 1;
        if (st == 0) jj_fail(R->e, n->line, MOFO_EFORMAT, "range() step cannot be zero");
        list *l = list_new(R->e, 8);
        for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st) {
            if (l->n >= 1000000) jj_fail(R->e, n->line, MOFO_EFORMAT, "range() of more than 1000000 items");
            list_push(R->e, l, v_int(i));
        }
        return v_list(l);
    }
    case F_STRFTIME: {
        value fmt = need_str(R, n->line, "strftime_now's format", arg(R, n, 0, NULL, 0, &a) ? a : v_undef(NULL));
        time_t t = R->in->now >= 0 ? (time_t)R->in->now : time(NULL);
        struct tm tm;
        localtime_r(&t, &tm);
        char f[256], o[512];
        snprintf(f, sizeof f, "%.*s", (int)fmt.n, fmt.s);
        size_t len = strftime(o, sizeof o, f, &tm);
        return v_str(jj_dup(R->e, o, len), len, NULL);
    }
    }
    return v_none();
}


static void step(rctx *R, int line) {
    if (++R->steps > MAX_STEPS) jj_fail(R->e, line, MOFO_EFORMAT, "the template runs too long (over %d steps)", MAX_STEPS);
}

static value call_macro(rctx *R, const node *n, const node *mac) {
    if (R->calls >= MAX_CALLS) jj_fail(R->e, n->line, MOFO_EFORMAT, "macro calls nested more than %d deep", MAX_CALLS);
    frame f = {R->top, dict_new(R->e)};
    for (size_t k = 0; k < mac->nnames; k++) {
        value v;
        if (!arg(R, n, k, mac->names[k], 0, &v)) v = mac->args[k] ? eval(R, mac->args[k]) : v_undef(mac->names[k]);
        dict_setc(R->e, f.vars, mac->names[k], v);
    }
    sbuild *b = sb_open(R->e), *saved = R->out;
    frame *up = R->top;
    R->out = b;
    R->top = &f;
    R->calls++;
    exec_list(R, mac->b);
    R->calls--;
    R->top = up;
    R->out = saved;
    return sb_value(R->e, b);
}

static void ascii_case(char *s, size_t n, int mode) { /* 0 lower, 1 upper, 2 title, 3 capitalize */
    int start = 1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        int up = mode == 1 || ((mode == 2 || mode == 3) && start);
        if (letter) s[i] = up ? (char)(c & ~0x20) : (char)(c | 0x20);
        if (mode == 2) start = !letter;
        else if (mode == 3) start = 0;
    }
}

static value change_case(rctx *R, value s, int mode) {
    char *p = jj_dup(R->e, s.s, s.n);
    ascii_case(p, s.n, mode);
    return v_str(p, s.n, s.m);
}

static value replace(rctx *R, value s, value old, value new_, int64_t count) {
    sbuild *b = sb_open(R->e);
    size_t i = 0;
    int64_t done = 0;
    while (i <= s.n && (count < 0 || done < count)) {
        const char *hit = old.n ? find_sub(s.s + i, s.n - i, old.s, old.n) : (i < s.n || i == s.n ? s.s + i : NULL);
        if (!hit) break;
        size_t at = (size_t)(hit - s.s);
        sb_add(b, s.s + i, at - i, s.m ? s.m + i : NULL);
        /* the replacement is trained where the text it replaces starts trained */
        int tr = s.m && at < s.n && s.m[at];
        if (tr) sb_add(b, new_.s, new_.n, ones(R->e, new_.n));
        else sb_add(b, new_.s, new_.n, NULL);
        done++;
        if (old.n) {
            i = at + old.n;
        } else {
            if (at >= s.n) {
                i = s.n + 1;
                break;
            }
            size_t l = cp_offset(s.s + at, s.n - at, 1);
            sb_add(b, s.s + at, l, s.m ? s.m + at : NULL);
            i = at + l;
        }
    }
    if (i < s.n) sb_add(b, s.s + i, s.n - i, s.m ? s.m + i : NULL);
    return sb_value(R->e, b);
}

static value split(rctx *R, int line, value s, const value *sep, int64_t maxsplit) {
    list *l = list_new(R->e, 4);
    size_t i = 0;
    if (!sep) {
        for (;;) {
            size_t w;
            while (i < s.n && (w = space_at(s.s + i, s.n - i)) > 0) i += w;
            if (i >= s.n) break;
            if (maxsplit >= 0 && (int64_t)l->n == maxsplit) {
                value rest = strip(substr(s, i, s.n), NULL, 0, 1);
                list_push(R->e, l, rest);
                break;
            }
            size_t j = i;
            while (j < s.n && space_at(s.s + j, s.n - j) == 0) j++;
            list_push(R->e, l, substr(s, i, j));
            i = j;
        }
        return v_list(l);
    }
    if (sep->n == 0) jj_fail(R->e, line, MOFO_EFORMAT, "split: empty separator");
    for (;;) {
        const char *hit = (maxsplit < 0 || (int64_t)l->n < maxsplit) ? find_sub(s.s + i, s.n - i, sep->s, sep->n) : NULL;
        if (!hit) {
            list_push(R->e, l, substr(s, i, s.n));
            return v_list(l);
        }
        list_push(R->e, l, substr(s, i, (size_t)(hit - s.s)));
        i = (size_t)(hit - s.s) + sep->n;
    }
}

static value method(rctx *R, const node *n, value obj, const char *name) {
    value a, b;
    int line = n->line;
    if (obj.k == V_STR) {
        if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip")) {
            int has = arg(R, n, 0, "chars", 0, &a) && a.k != V_NONE;
            if (has) need_str(R, line, name, a);
            return strip(obj, has ? &a : NULL, name[0] != 'r', name[0] != 'l');
        }
        if (!strcmp(name, "split")) {
            int has = arg(R, n, 0, "sep", 0, &a) && a.k != V_NONE;
            if (has) need_str(R, line, "split's separator", a);
            int64_t mx = arg(R, n, 1, "maxsplit", 0, &b) ? need_int(R, line, "maxsplit", b) : -1;
            return split(R, line, obj, has ? &a : NULL, mx);
        }
        if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
            if (!arg(R, n, 0, NULL, 0, &a)) jj_fail(R->e, line, MOFO_EFORMAT, "%s() needs an argument", name);
            list one = {&a, 1, 1};
            list *opts = a.k == V_LIST ? a.l : &one;
            for (size_t k = 0; k < opts->n; k++) {
                value p = need_str(R, line, name, opts->v[k]);
                if (p.n <= obj.n && !memcmp(name[0] == 's' ? obj.s : obj.s + obj.n - p.n, p.s, p.n)) return v_bool(1);
            }
            return v_bool(0);
        }
        if (!strcmp(name, "upper")) return change_case(R, obj, 1);
        if (!strcmp(name, "lower")) return change_case(R, obj, 0);
        if (!strcmp(name, "title")) return change_case(R, obj, 2);
        if (!strcmp(name, "capitalize")) {
            value v = change_case(R, obj, 0);
            char *p = (char *)v.s;
            ascii_case(p, v.n ? 1 : 0, 1);
            return v;
        }
        if (!strcmp(name, "replace")) {
            value c;
            if (!arg(R, n, 0, NULL, 0, &a) || !arg(R, n, 1, NULL, 0, &b)) jj_fail(R->e, line, MOFO_EFORMAT, "replace() needs two arguments");
            int64_t cnt = arg(R, n, 2, "count", 0, &c) ? need_int(R, line, "replace's count", c) : -1;
            return replace(R, obj, need_str(R, line, "replace", a), need_str(R, line, "replace", b), cnt);
        }
        if (!strcmp(name, "find") || !strcmp(name, "count")) {
            if (!arg(R, n, 0, NULL, 0, &a)) jj_fail(R->e, line, MOFO_EFORMAT, "%s() needs an argument", name);
            need_str(R, line, name, a);
            if (name[0] == 'f') {
                const char *h = find_sub(obj.s, obj.n, a.s, a.n);
                return v_int(h ? (int64_t)cp_count(obj.s, (size_t)(h - obj.s)) : -1);
            }
            int64_t k = 0;
            if (a.n == 0) return v_int((int64_t)cp_count(obj.s, obj.n) + 1);
            for (const char *h = obj.s; (h = find_sub(h, obj.n - (size_t)(h - obj.s), a.s, a.n)); h += a.n) k++;
            return v_int(k);
        }
        if (!strcmp(name, "join")) {
            if (!arg(R, n, 0, NULL, 0, &a)) jj_fail(R->e, line, MOFO_EFORMAT, "join() needs an argument");
            list *items = iter_items(R, line, a);
            sbuild *sb = sb_open(R->e);
            for (size_t k = 0; k < items->n; k++) {
                if (k) sb_addv(sb, obj);
                if (items->v[k].k != V_STR) type_fail(R, line, "join() takes strings", items->v[k]);
                sb_addv(sb, items->v[k]);
            }
            return sb_value(R->e, sb);
        }
    } else if (obj.k == V_DICT) {
        if (!strcmp(name, "items") || !strcmp(name, "keys") || !strcmp(name, "values")) {
            list *l = list_new(R->e, obj.d->n);
            for (size_t k = 0; k < obj.d->n; k++) {
                if (name[0] == 'i') {
                    list *pair = list_new(R->e, 2);
                    list_push(R->e, pair, obj.d->key[k]);
                    list_push(R->e, pair, obj.d->val[k]);
                    list_push(R->e, l, v_list(pair));
                } else {
                    list_push(R->e, l, name[0] == 'k' ? obj.d->key[k] : obj.d->val[k]);
                }
            }
            return v_list(l);
        }
        if (!strcmp(name, "get")) {
            if (!arg(R, n, 0, NULL, 0, &a)) jj_fail(R->e, line, MOFO_EFORMAT, "get() needs a key");
            value *v = a.k == V_STR ? dict_find(obj.d, a.s, a.n) : NULL;
            if (v) return *v;
            return arg(R, n, 1, "default", 0, &b) ? b : v_none();
        }
    } else if (obj.k == V_LIST) {
        if (!strcmp(name, "append")) {
            if (!arg(R, n, 0, NULL, 0, &a)) jj_fail(R->e, line, MOFO_EFORMAT, "append() needs an argument");
            list_push(R->e, obj.l, a);
            return v_none();
        }
    } else if (obj.k == V_UNDEF) {
        attr(R, line, obj, name, strlen(name));
    }
    jj_fail(R->e, line, MOFO_EFORMAT, "a %s has no method '%s' here", kind_name(obj.k), name);
}

static value call(rctx *R, const node *n) {
    if (n->a->k == N_ATTR) {
        value obj = eval(R, n->a->a);
        if (obj.k != V_DICT || !dict_find(obj.d, n->a->s, n->a->n)) return method(R, n, obj, n->a->s);
    }
    value f = eval(R, n->a);
    if (f.k == V_FUNC) return builtin_call(R, n, (int)f.i);
    if (f.k == V_MACRO) return call_macro(R, n, f.mac);
    if (f.k == V_UNDEF && f.s) jj_fail(R->e, n->line, MOFO_EFORMAT, "'%s' is undefined (called as a function)", f.s);
    jj_fail(R->e, n->line, MOFO_EFORMAT, "a %s cannot be called", kind_name(f.k));
}

static value binop_eval(rctx *R, const node *n) {
    value a = eval(R, n->a), b = eval(R, n->b);
    int line = n->line;
    switch ((binop)n->op) {
    case OP_EQ: return v_bool(equal(a, b));
    case OP_NE: return v_bool(!equal(a, b));
    case OP_LT:
    case OP_GT:
    case OP_LE:
    case OP_GE: {
        int c;
        if (is_num(a) && is_num(b)) {
            double x = num(a), y = num(b);
            c = x < y ? -1 : x > y;
        } else if (a.k == V_STR && b.k == V_STR) {
            size_t m = a.n < b.n ? a.n : b.n;
            int r = memcmp(a.s, b.s, m);
            c = r ? (r < 0 ? -1 : 1) : a.n < b.n ? -1 : a.n > b.n;
        } else {
            jj_fail(R->e, line, MOFO_EFORMAT, "cannot compare a %s with a %s", kind_name(a.k), kind_name(b.k));
        }
        int r = n->op == OP_LT ? c < 0 : n->op == OP_GT ? c > 0 : n->op == OP_LE ? c <= 0 : c >= 0;
        return v_bool(r);
    }
    case OP_IN:
    case OP_NOTIN: {
        int r = 0;
        if (b.k == V_STR) {
            if (a.k != V_STR) type_fail(R, line, "'in <string>' needs a string on the left", a);
            r = find_sub(b.s, b.n, a.s, a.n) != NULL;
        } else if (b.k == V_LIST) {
            for (size_t i = 0; i < b.l->n && !r; i++) r = equal(a, b.l->v[i]);
        } else if (b.k == V_DICT) {
            r = a.k == V_STR && dict_find(b.d, a.s, a.n) != NULL;
        } else if (b.k != V_UNDEF) {
            type_fail(R, line, "'in' needs a string, list or dict on the right", b);
        } else {
            type_fail(R, line, "'in' needs a string, list or dict on the right", b);
        }
        return v_bool(n->op == OP_IN ? r : !r);
    }
    case OP_CAT: {
        sbuild *sb = sb_open(R->e);
        to_str(R->e, sb, a, 0);
        to_str(R->e, sb, b, 0);
        return sb_value(R->e, sb);
    }
    case OP_ADD:
        if (a.k == V_STR && b.k == V_STR) {
            sbuild *sb = sb_open(R->e);
            sb_addv(sb, a);
            sb_addv(sb, b);
            return sb_value(R->e, sb);
        }
        if (a.k == V_LIST && b.k == V_LIST) {
            list *l = list_new(R->e, a.l->n + b.l->n);
            for (size_t i = 0; i < a.l->n; i++) list_push(R->e, l, a.l->v[i]);
            for (size_t i = 0; i < b.l->n; i++) list_push(R->e, l, b.l->v[i]);
            return v_list(l);
        }
        /* fall through to numbers */
    default: break;
    }
    if (n->op == OP_MUL && a.k == V_STR && (b.k == V_INT || b.k == V_BOOL)) {
        sbuild *sb = sb_open(R->e);
        for (int64_t k = 0; k < b.i && sb->t.len <= MAX_OUTPUT; k++) sb_addv(sb, a);
        return sb_value(R->e, sb);
    }
    if (!is_num(a) || !is_num(b)) {
        static const char *sym[] = {"+", "-", "*", "/", "//", "%", "**"};
        if (a.k == V_UNDEF && a.s) jj_fail(R->e, line, MOFO_EFORMAT, "'%s' is undefined (used with '%s')", a.s, sym[n->op]);
        if (b.k == V_UNDEF && b.s) jj_fail(R->e, line, MOFO_EFORMAT, "'%s' is undefined (used with '%s')", b.s, sym[n->op]);
        jj_fail(R->e, line, MOFO_EFORMAT, "unsupported operand types for %s: %s and %s", sym[n->op], kind_name(a.k), kind_name(b.k));
    }
    int fl = a.k == V_FLOAT || b.k == V_FLOAT;
    double x = num(a), y = num(b);
    switch ((binop)n->op) {
    case OP_ADD: return fl ? v_float(x + y) : v_int(a.i + b.i);
    case OP_SUB: return fl ? v_float(x - y) : v_int(a.i - b.i);
    case OP_MUL: return fl ? v_float(x * y) : v_int(a.i * b.i);
    case OP_DIV:
        if (y == 0) jj_fail(R->e, line, MOFO_EFORMAT, "division by zero");
        return v_float(x / y);
    case OP_FLOORDIV:
    case OP_MOD:
        if (y == 0) jj_fail(R->e, line, MOFO_EFORMAT, "division by zero");
        if (fl) {
            double q = floor(x / y);
            return n->op == OP_FLOORDIV ? v_float(q) : v_float(x - q * y);
        } else {
            int64_t q = a.i / b.i, r = a.i % b.i;
            if (r != 0 && ((r < 0) != (b.i < 0))) q--, r += b.i;
            return n->op == OP_FLOORDIV ? v_int(q) : v_int(r);
        }
    case OP_POW:
        if (!fl && b.i >= 0) {
            int64_t r = 1;
            for (int64_t k = 0; k < b.i && k < 64; k++) r *= a.i;
            return v_int(r);
        }
        return v_float(pow(x, y));
    default: return v_none();
    }
}

static value eval(rctx *R, const node *n) {
    switch (n->k) {
    case N_LIT_STR: return v_str(n->s, n->n, NULL);
    case N_LIT_INT: return v_int(n->i);
    case N_LIT_FLOAT: return v_float(n->f);
    case N_LIT_BOOL: return v_bool((int)n->i);
    case N_LIT_NONE: return v_none();
    case N_NAME: return lookup(R, n->s);
    case N_ATTR: return attr(R, n->line, eval(R, n->a), n->s, n->n);
    case N_INDEX: return index_(R, n->line, eval(R, n->a), eval(R, n->b));
    case N_SLICE: return slice(R, n);
    case N_CALL: return call(R, n);
    case N_FILTER: return apply_filter(R, n, eval(R, n->a));
    case N_TEST: {
        int r = apply_test(R, n->line, n->s, eval(R, n->a), n, 0);
        return v_bool(n->op ? !r : r);
    }
    case N_NEG: {
        value v = eval(R, n->a);
        if (v.k == V_FLOAT) return v_float(-v.f);
        if (v.k == V_INT || v.k == V_BOOL) return v_int(-v.i);
        type_fail(R, n->line, "unary '-' needs a number", v);
    }
    case N_NOT: return v_bool(!truthy(eval(R, n->a)));
    case N_AND: {
        value a = eval(R, n->a);
        return truthy(a) ? eval(R, n->b) : a;
    }
    case N_OR: {
        value a = eval(R, n->a);
        return truthy(a) ? a : eval(R, n->b);
    }
    case N_BIN: return binop_eval(R, n);
    case N_COND: return truthy(eval(R, n->a)) ? eval(R, n->b) : n->c ? eval(R, n->c) : v_undef(NULL);
    case N_LIST: {
        list *l = list_new(R->e, n->nargs);
        for (size_t i = 0; i < n->nargs; i++) list_push(R->e, l, eval(R, n->args[i]));
        return v_list(l);
    }
    case N_DICT: {
        dict *d = dict_new(R->e);
        for (size_t i = 0; i + 1 < n->nargs; i += 2) {
            value k = eval(R, n->args[i]);
            if (k.k != V_STR) type_fail(R, n->line, "dict keys must be strings", k);
            dict_set(R->e, d, k, eval(R, n->args[i + 1]));
        }
        return v_dict(d);
    }
    default: jj_fail(R->e, n->line, MOFO_EFORMAT, "a statement where an expression belongs");
    }
}

static int apply_test(rctx *R, int line, const char *name, value v, const node *args, size_t skip) {
    value a;
    int has = args && arg(R, args, 0, NULL, skip, &a);
    if (!strcmp(name, "defined")) return v.k != V_UNDEF;
    if (!strcmp(name, "undefined")) return v.k == V_UNDEF;
    if (!strcmp(name, "none")) return v.k == V_NONE;
    if (!strcmp(name, "string")) return v.k == V_STR;
    if (!strcmp(name, "number")) return v.k == V_INT || v.k == V_FLOAT;
    if (!strcmp(name, "integer")) return v.k == V_INT;
    if (!strcmp(name, "float")) return v.k == V_FLOAT;
    if (!strcmp(name, "boolean")) return v.k == V_BOOL;
    if (!strcmp(name, "true")) return v.k == V_BOOL && v.i;
    if (!strcmp(name, "false")) return v.k == V_BOOL && !v.i;
    if (!strcmp(name, "mapping")) return v.k == V_DICT;
    if (!strcmp(name, "iterable")) return v.k == V_LIST || v.k == V_DICT || v.k == V_STR;
    if (!strcmp(name, "sequence")) return v.k == V_LIST || v.k == V_DICT || v.k == V_STR;
    if (!strcmp(name, "callable")) return v.k == V_FUNC || v.k == V_MACRO;
    if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        if (v.k != V_STR) return 0;
        int cased = 0;
        for (size_t i = 0; i < v.n; i++) {
            char c = v.s[i];
            if ((c >= 'a' && c <= 'z' && name[0] == 'u') || (c >= 'A' && c <= 'Z' && name[0] == 'l')) return 0;
            cased |= (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        }
        return cased;
    }
    if (!strcmp(name, "odd") || !strcmp(name, "even")) {
        int64_t i = need_int(R, line, name, v);
        return (i % 2 != 0) == (name[0] == 'o');
    }
    if (!has) {
        static const char *const binary[] = {"equalto", "eq", "==", "sameas", "ne", "!=", "lt", "<", "gt", ">", "le", "<=", "ge", ">=", "in", "divisibleby", NULL};
        for (size_t k = 0; binary[k]; k++)
            if (!strcmp(name, binary[k])) jj_fail(R->e, line, MOFO_EFORMAT, "the test '%s' needs an argument", name);
        jj_fail(R->e, line, MOFO_EFORMAT, "unknown test '%s'", name);
    }
    if (!strcmp(name, "equalto") || !strcmp(name, "eq") || !strcmp(name, "==")) return equal(v, a);
    if (!strcmp(name, "sameas")) return equal(v, a) && v.k == a.k;
    if (!strcmp(name, "ne") || !strcmp(name, "!=")) return !equal(v, a);
    if (!strcmp(name, "divisibleby")) {
        int64_t d = need_int(R, line, name, a);
        return d != 0 && need_int(R, line, name, v) % d == 0;
    }
    if (!strcmp(name, "in")) {
        if (a.k == V_STR) return v.k == V_STR && find_sub(a.s, a.n, v.s, v.n) != NULL;
        if (a.k == V_LIST) {
            for (size_t i = 0; i < a.l->n; i++)
                if (equal(v, a.l->v[i])) return 1;
            return 0;
        }
        if (a.k == V_DICT) return v.k == V_STR && dict_find(a.d, v.s, v.n);
        type_fail(R, line, "the test 'in'", a);
    }
    static const char *const cmp[] = {"lt", "<", "gt", ">", "le", "<=", "ge", ">=", NULL};
    for (size_t k = 0; cmp[k]; k++)
        if (!strcmp(name, cmp[k])) {
            if (!is_num(v) || !is_num(a)) jj_fail(R->e, line, MOFO_EFORMAT, "the test '%s' compares numbers", name);
            double x = num(v), y = num(a);
            return k < 2 ? x < y : k < 4 ? x > y : k < 6 ? x <= y : x >= y;
        }
    jj_fail(R->e, line, MOFO_EFORMAT, "unknown test '%s'", name);
}

/* select/reject/selectattr/rejectattr */
static value select_items(rctx *R, const node *f, value v, int by_attr, int keep) {
    list *items = iter_items(R, f->line, v), *out = list_new(R->e, items->n);
    value attrname;
    if (by_attr && (!arg(R, f, 0, NULL, 0, &attrname) || attrname.k != V_STR))
        jj_fail(R->e, f->line, MOFO_EFORMAT, "%s needs an attribute name", f->s);
    value testname = v_undef(NULL);
    int has_test = arg(R, f, by_attr ? 1 : 0, NULL, 0, &testname);
    if (has_test && testname.k != V_STR) jj_fail(R->e, f->line, MOFO_EFORMAT, "%s: the test's name must be a string", f->s);
    char tn[64];
    if (has_test) snprintf(tn, sizeof tn, "%.*s", (int)testname.n, testname.s);
    for (size_t i = 0; i < items->n; i++) {
        value x = items->v[i];
        if (by_attr) {
            /* a dotted attribute name reads nested members */
            value cur = x;
            const char *s = attrname.s, *end = s + attrname.n;
            while (s < end) {
                const char *dot = memchr(s, '.', (size_t)(end - s));
                size_t len = dot ? (size_t)(dot - s) : (size_t)(end - s);
                cur = cur.k == V_DICT ? attr(R, f->line, cur, s, len) : v_undef(NULL);
                s += len + (dot != NULL);
            }
            x = cur;
        }
        int r = has_test ? apply_test(R, f->line, tn, x, f, by_attr ? 2 : 1) : truthy(x);
        if (r == keep) list_push(R->e, out, items->v[i]);
    }
    return v_list(out);
}

static value apply_filter(rctx *R, const node *f, value v) {
    const char *name = f->s;
    int line = f->line;
    value a;
    if (!strcmp(name, "trim")) {
        int has = arg(R, f, 0, "chars", 0, &a) && a.k != V_NONE;
        return strip(need_str(R, line, "trim", stringify(R->e, v)), has ? &a : NULL, 1, 1);
    }
    if (!strcmp(name, "length") || !strcmp(name, "count")) {
        switch (v.k) {
        case V_STR: return v_int((int64_t)cp_count(v.s, v.n));
        case V_LIST: return v_int((int64_t)v.l->n);
        case V_DICT: return v_int((int64_t)v.d->n);
        case V_UNDEF: return v_int(0);
        default: type_fail(R, line, "length", v);
        }
    }
    if (!strcmp(name, "tojson")) {
        int indent = -1;
        if (arg(R, f, 0, "indent", 0, &a) && a.k != V_NONE) indent = (int)need_int(R, line, "tojson's indent", a);
        sbuild *o = sb_open(R->e); /* its text only: JSON is not trained */
        to_json(R->e, &o->t, v, indent, 0, line);
        return sb_value(R->e, o);
    }
    if (!strcmp(name, "string")) return stringify(R->e, v);
    if (!strcmp(name, "safe")) return v;
    if (!strcmp(name, "list")) {
        list *items = iter_items(R, line, v), *l = list_new(R->e, items->n);
        for (size_t i = 0; i < items->n; i++) list_push(R->e, l, items->v[i]);
        return v_list(l);
    }
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        list *items = iter_items(R, line, v);
        if (!items->n) return v_undef(NULL);
        return items->v[name[0] == 'f' ? 0 : items->n - 1];
    }
    if (!strcmp(name, "reverse")) {
        list *items = iter_items(R, line, v), *l = list_new(R->e, items->n);
        for (size_t i = items->n; i-- > 0;) list_push(R->e, l, items->v[i]);
        if (v.k != V_STR) return v_list(l);
        sbuild *sb = sb_open(R->e);
        for (size_t i = 0; i < l->n; i++) sb_addv(sb, l->v[i]);
        return sb_value(R->e, sb);
    }
    if (!strcmp(name, "join")) {
        value sep = arg(R, f, 0, "d", 0, &a) ? need_str(R, line, "join's separator", a) : v_cstr("");
        value at;
        int by_attr = arg(R, f, 1, "attribute", 0, &at);
        list *items = iter_items(R, line, v);
        sbuild *sb = sb_open(R->e);
        for (size_t i = 0; i < items->n; i++) {
            if (i) sb_addv(sb, sep);
            value x = items->v[i];
            if (by_attr) x = x.k == V_DICT && at.k == V_STR ? attr(R, line, x, at.s, at.n) : v_undef(NULL);
            to_str(R->e, sb, x, 0);
        }
        return sb_value(R->e, sb);
    }
    if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "title") || !strcmp(name, "capitalize")) {
        value s = stringify(R->e, v);
        node call0 = {.k = N_CALL, .line = line};
        return method(R, &call0, s, name);
    }
    if (!strcmp(name, "replace")) {
        value b, c;
        if (!arg(R, f, 0, "old", 0, &a) || !arg(R, f, 1, "new", 0, &b)) jj_fail(R->e, line, MOFO_EFORMAT, "replace needs two arguments");
        int64_t cnt = arg(R, f, 2, "count", 0, &c) && c.k != V_NONE ? need_int(R, line, "replace's count", c) : -1;
        return replace(R, stringify(R->e, v), need_str(R, line, "replace", a), need_str(R, line, "replace", b), cnt);
    }
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        value dflt = arg(R, f, 0, "default_value", 0, &a) ? a : v_cstr(""), b;
        int boolean = arg(R, f, 1, "boolean", 0, &b) && truthy(b);
        return v.k == V_UNDEF || (boolean && !truthy(v)) ? dflt : v;
    }
    if (!strcmp(name, "selectattr")) return select_items(R, f, v, 1, 1);
    if (!strcmp(name, "rejectattr")) return select_items(R, f, v, 1, 0);
    if (!strcmp(name, "select")) return select_items(R, f, v, 0, 1);
    if (!strcmp(name, "reject")) return select_items(R, f, v, 0, 0);
    if (!strcmp(name, "map")) {
        list *items = iter_items(R, line, v), *l = list_new(R->e, items->n);
        value at, dflt;
        if (arg(R, f, 0, "attribute", 0, &at) && f->kw[0] && !strcmp(f->kw[0], "attribute")) {
            int has_d = arg(R, f, 99, "default", 0, &dflt);
            for (size_t i = 0; i < items->n; i++) {
                value x = items->v[i].k == V_DICT ? attr(R, line, items->v[i], at.s, at.n) : v_undef(NULL);
                list_push(R->e, l, x.k == V_UNDEF && has_d ? dflt : x);
            }
            return v_list(l);
        }
        if (!arg(R, f, 0, NULL, 0, &at) || at.k != V_STR) jj_fail(R->e, line, MOFO_EFORMAT, "map needs a filter name or attribute=");
        node sub = *f;
        sub.s = jj_dup(R->e, at.s, at.n);
        sub.args = f->nargs > 1 ? f->args + 1 : NULL;
        sub.kw = f->nargs > 1 ? f->kw + 1 : NULL;
        sub.nargs = f->nargs > 1 ? f->nargs - 1 : 0;
        for (size_t i = 0; i < items->n; i++) list_push(R->e, l, apply_filter(R, &sub, items->v[i]));
        return v_list(l);
    }
    if (!strcmp(name, "items")) {
        if (v.k != V_DICT) type_fail(R, line, "items", v);
        node call0 = {.k = N_CALL, .line = line};
        return method(R, &call0, v, "items");
    }
    if (!strcmp(name, "unique")) {
        list *items = iter_items(R, line, v), *l = list_new(R->e, items->n);
        for (size_t i = 0; i < items->n; i++) {
            int seen = 0;
            for (size_t k = 0; k < l->n && !seen; k++) seen = equal(l->v[k], items->v[i]);
            if (!seen) list_push(R->e, l, items->v[i]);
        }
        return v_list(l);
    }
    if (!strcmp(name, "int")) {
        if (v.k == V_INT || v.k == V_BOOL) return v_int(v.i);
        if (v.k == V_FLOAT) return v_int((int64_t)v.f);
        if (v.k == V_STR) {
            char buf[64];
            snprintf(buf, sizeof buf, "%.*s", (int)(v.n < 63 ? v.n : 63), v.s);
            char *end;
            long long x = strtoll(buf, &end, 10);
            return v_int(*end ? 0 : x);
        }
        return v_int(0);
    }
    if (!strcmp(name, "float")) {
        if (is_num(v)) return v_float(num(v));
        if (v.k == V_STR) {
            char buf[64];
            snprintf(buf, sizeof buf, "%.*s", (int)(v.n < 63 ? v.n : 63), v.s);
            char *end;
            double x = strtod(buf, &end);
            return v_float(*end ? 0 : x);
        }
        return v_float(0);
    }
    if (!strcmp(name, "abs")) {
        if (v.k == V_FLOAT) return v_float(fabs(v.f));
        return v_int(llabs(need_int(R, line, "abs", v)));
    }
    jj_fail(R->e, line, MOFO_EFORMAT, "unsupported filter '%s'", name);
}

/* ---- statements ---- */

static void emit(rctx *R, value v) {
    if (v.k != V_STR) v = stringify(R->e, v);
    if (R->generation >= 0) sb_add(R->out, v.s, v.n, R->generation ? ones(R->e, v.n) : NULL);
    else sb_addv(R->out, v);
    if (R->out->t.failed || R->out->m.failed) jj_fail(R->e, 0, MOFO_ENOMEM, "out of memory");
    if (R->out->t.len > MAX_OUTPUT) jj_fail(R->e, 0, MOFO_EFORMAT, "the rendering is over %zu MiB", MAX_OUTPUT >> 20);
}

static void set_var(rctx *R, const char *name, value v) {
    frame *f = R->top;
    dict_setc(R->e, f->vars, name, v);
}

static void exec_for(rctx *R, const node *n) {
    value it = eval(R, n->a);
    list *all = iter_items(R, n->a->line, it);
    frame f = {R->top, NULL};
    /* the loop's `if` filters first: loop.index and loop.length count the kept items */
    list *items = all;
    if (n->filt) {
        items = list_new(R->e, all->n);
        for (size_t i = 0; i < all->n; i++) {
            f.vars = dict_new(R->e);
            R->top = &f;
            value x = all->v[i];
            if (n->nnames == 1) set_var(R, n->names[0], x);
            else
                for (size_t k = 0; k < n->nnames; k++)
                    set_var(R, n->names[k], x.k == V_LIST && k < x.l->n ? x.l->v[k] : v_undef(n->names[k]));
            int keep = truthy(eval(R, n->filt));
            R->top = f.up;
            if (keep) list_push(R->e, items, x);
        }
    }
    if (items->n == 0) {
        if (n->c) exec_list(R, n->c);
        return;
    }
    f.vars = dict_new(R->e);
    R->top = &f;
    for (size_t i = 0; i < items->n; i++) {
        step(R, n->line);
        value x = items->v[i];
        if (n->nnames == 1) {
            set_var(R, n->names[0], x);
        } else {
            if (x.k != V_LIST || x.l->n != n->nnames)
                jj_fail(R->e, n->line, MOFO_EFORMAT, "cannot unpack a %s into %zu loop targets", kind_name(x.k), n->nnames);
            for (size_t k = 0; k < n->nnames; k++) set_var(R, n->names[k], x.l->v[k]);
        }
        dict *loop = dict_new(R->e);
        size_t len = items->n;
        dict_setc(R->e, loop, "index", v_int((int64_t)i + 1));
        dict_setc(R->e, loop, "index0", v_int((int64_t)i));
        dict_setc(R->e, loop, "revindex", v_int((int64_t)(len - i)));
        dict_setc(R->e, loop, "revindex0", v_int((int64_t)(len - i - 1)));
        dict_setc(R->e, loop, "first", v_bool(i == 0));
        dict_setc(R->e, loop, "last", v_bool(i + 1 == len));
        dict_setc(R->e, loop, "length", v_int((int64_t)len));
        dict_setc(R->e, loop, "previtem", i > 0 ? items->v[i - 1] : v_undef(NULL));
        dict_setc(R->e, loop, "nextitem", i + 1 < len ? items->v[i + 1] : v_undef(NULL));
        set_var(R, "loop", v_dict(loop));
        exec_list(R, n->b);
        if (R->brk == 1) {
            R->brk = 0;
            break;
        }
        R->brk = 0;
    }
    R->top = f.up;
}

static void exec_list(rctx *R, const node *s) {
    for (; s && !R->brk; s = s->next) {
        step(R, s->line);
        switch (s->k) {
        case S_TEXT: emit(R, v_str(s->s, s->n, NULL)); break;
        case S_OUT: emit(R, eval(R, s->a)); break;
        case S_IF: {
            const node *c = s;
            while (c && !truthy(eval(R, c->a))) {
                if (!c->filt) exec_list(R, c->c);
                c = c->filt;
            }
            if (c) exec_list(R, c->b);
            break;
        }
        case S_FOR: exec_for(R, s); break;
        case S_SET:
        case S_SET_BLOCK: {
            value v;
            if (s->k == S_SET) {
                v = eval(R, s->a);
            } else {
                sbuild *b = sb_open(R->e), *saved = R->out;
                R->out = b;
                exec_list(R, s->b);
                R->out = saved;
                v = sb_value(R->e, b);
            }
            if (s->nnames) {
                value ns = lookup(R, s->s);
                if (ns.k != V_DICT) jj_fail(R->e, s->line, MOFO_EFORMAT, "set %s.%s: '%s' is not a namespace", s->s, s->names[0], s->s);
                dict_setc(R->e, ns.d, s->names[0], v);
            } else {
                set_var(R, s->s, v);
            }
            break;
        }
        case S_MACRO: set_var(R, s->s, (value){.k = V_MACRO, .mac = s}); break;
        case S_GENERATION: {
            int saved = R->generation;
            R->generation = 1;
            exec_list(R, s->b);
            R->generation = saved;
            break;
        }
        case S_BREAK: R->brk = 1; break;
        case S_CONTINUE: R->brk = 2; break;
        default: jj_fail(R->e, s->line, MOFO_EFORMAT, "an expression where a statement belongs");
        }
    }
}

int mofo_jinja_render(const mofo_jinja *t, const mofo_jinja_vars *v, mofo_strbuf *text, mofo_strbuf *trained, mofo_err *err) {
    jmp_buf jb;
    env e = {.jb = &jb, .err = err, .name = t->name};
    sbuild out = {0};
    if (setjmp(jb)) {
        mofo_sb_free(&out.t);
        mofo_sb_free(&out.m);
        while (e.open) sb_close(&e, e.open);
        jj_arena_free(e.head);
        return err ? err->code : MOFO_EFORMAT;
    }
    rctx R = {.e = &e, .in = v, .globals = dict_new(&e), .out = &out, .generation = t->has_generation ? 0 : -1};
    if (v->extra && v->extra->type == MOFO_JSON_OBJECT)
        for (const mofo_json *c = v->extra->child; c; c = c->next)
            dict_set(&e, R.globals, v_str(c->key, c->key_len, NULL), from_json(&e, c, 0));
    list *msgs = list_new(&e, v->messages ? v->messages->count : 1);
    for (const mofo_json *c = v->messages ? v->messages->child : NULL; c; c = c->next) {
        const mofo_json *role = mofo_json_get(c, "role");
        int asst = role && role->type == MOFO_JSON_STRING && !strcmp(role->str, "assistant") && !t->has_generation;
        list_push(&e, msgs, from_json(&e, c, asst));
    }
    dict_setc(&e, R.globals, "messages", v_list(msgs));
    dict_setc(&e, R.globals, "add_generation_prompt", v_bool(v->add_generation_prompt));
    if (v->bos_token) dict_setc(&e, R.globals, "bos_token", v_cstr(v->bos_token));
    if (v->eos_token) dict_setc(&e, R.globals, "eos_token", v_cstr(v->eos_token));
    frame top = {NULL, dict_new(&e)};
    R.top = &top;
    exec_list(&R, t->body);
    if (out.t.failed || out.m.failed) jj_fail(&e, 0, MOFO_ENOMEM, "out of memory");
    mofo_sb_append(text, out.t.data ? out.t.data : "", out.t.len);
    mofo_sb_append(trained, out.m.data ? out.m.data : "", out.m.len);
    mofo_sb_free(&out.t);
    mofo_sb_free(&out.m);
    jj_arena_free(e.head);
    if (text->failed || trained->failed) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    return 0;
}

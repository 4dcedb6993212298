/* jinja.h's templates parsed: whitespace control and tokens (lexer), then the AST (parser). The
 * AST and a copy of the source live in the template's arena; errors longjmp back to
 * mofo_jinja_parse, which frees it. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/jinja_internal.h"

/* ---- arena and errors ---- */


_Noreturn void jj_fail(env *e, int line, int code, const char *fmt, ...) {
    char msg[MOFO_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0) mofo_errf(e->err, code, "%s, line %d: %s", e->name, line, msg);
    else mofo_errf(e->err, code, "%s: %s", e->name, msg);
    longjmp(*e->jb, 1);
}

int jj_reserve(env *e, size_t n) {
    if (e->head && e->head->cap - e->head->used >= n) return 0;
    size_t cap = n > 65536 ? n : 65536;
    if (cap > JJ_MAX_ARENA - e->total) return MOFO_EFORMAT;
    blk *b = malloc(sizeof *b + cap);
    if (!b) return MOFO_ENOMEM;
    e->total += cap;
    b->next = e->head;
    b->used = 0;
    b->cap = cap;
    e->head = b;
    return 0;
}

void *jj_alloc(env *e, size_t n) {
    n = JJ_ROUND(n);
    int rc = jj_reserve(e, n);
    if (rc == MOFO_EFORMAT) jj_fail(e, 0, rc, "the template needs over %zu MiB", JJ_MAX_ARENA >> 20);
    if (rc) jj_fail(e, 0, rc, "out of memory");
    void *p = e->head->data + e->head->used;
    e->head->used += n;
    return p;
}

void *jj_zalloc(env *e, size_t n) { return memset(jj_alloc(e, n), 0, n); }

void jj_arena_free(blk *b) {
    while (b) {
        blk *n = b->next;
        free(b);
        b = n;
    }
}

char *jj_take(env *e, mofo_strbuf *sb, int line) {
    int rc = sb->failed ? MOFO_ENOMEM : jj_reserve(e, JJ_ROUND(sb->len + 1));
    if (rc) {
        mofo_sb_free(sb);
        if (rc == MOFO_EFORMAT) jj_fail(e, line, rc, "the template needs over %zu MiB", JJ_MAX_ARENA >> 20);
        jj_fail(e, line, rc, "out of memory");
    }
    char *p = jj_dup(e, sb->data ? sb->data : "", sb->len); /* cannot fail now */
    mofo_sb_free(sb);
    return p;
}

char *jj_dup(env *e, const char *s, size_t n) {
    char *p = jj_alloc(e, n + 1);
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* ---- lexer ---- */

typedef enum { T_EOF, T_TEXT, T_VAR_OPEN, T_VAR_CLOSE, T_STMT_OPEN, T_STMT_CLOSE, T_NAME, T_STR, T_INT, T_FLOAT, T_OP } tkind;

typedef struct {
    tkind k;
    int line;
    const char *s; /* TEXT, NAME, STR (unescaped), OP */
    size_t n;
    int64_t i;
    double f;
} tok;

typedef struct {
    env *e;
    const char *src;
    size_t len, pos;
    int line;
    tok *t;
    size_t nt, cap;
} lexer;

static void push_tok(lexer *L, tok t) {
    if (L->nt == L->cap) {
        size_t cap = L->cap ? 2 * L->cap : 256;
        tok *nt = jj_alloc(L->e, cap * sizeof *nt);
        if (L->nt) memcpy(nt, L->t, L->nt * sizeof *nt);
        L->t = nt;
        L->cap = cap;
    }
    L->t[L->nt++] = t;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static int is_name0(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int count_lines(const char *s, size_t n) {
    int k = 0;
    for (size_t i = 0; i < n; i++) k += s[i] == '\n';
    return k;
}

/* A string literal at L->pos (the quote): Python's escapes. */
static void lex_string(lexer *L) {
    char q = L->src[L->pos++];
    int line = L->line;
    mofo_strbuf sb = {0};
    while (L->pos < L->len && L->src[L->pos] != q) {
        char c = L->src[L->pos++];
        if (c == '\n') L->line++;
        if (c != '\\' || L->pos >= L->len) {
            mofo_sb_append(&sb, &c, 1);
            continue;
        }
        char d = L->src[L->pos++], o[4];
        static const char from[] = "ntrbfva0\\'\"", to[] = "\n\t\r\b\f\v\a\0\\'\"";
        const char *f = memchr(from, d, sizeof from - 1);
        if (f) {
            mofo_sb_append(&sb, &to[f - from], 1);
        } else if (d == 'x' || d == 'u' || d == 'U') {
            int nd = d == 'x' ? 2 : d == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (int k = 0; k < nd; k++, L->pos++) {
                char h = L->pos < L->len ? L->src[L->pos] : 0;
                int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                if (v < 0) {
                    mofo_sb_free(&sb);
                    jj_fail(L->e, L->line, MOFO_EFORMAT, "bad \\%c escape in a string", d);
                }
                cp = cp * 16 + (uint32_t)v;
            }
            mofo_sb_append(&sb, o, mofo_utf8_put(o, cp));
        } else {
            mofo_sb_append(&sb, &c, 1);
            mofo_sb_append(&sb, &d, 1);
        }
    }
    if (L->pos >= L->len) {
        mofo_sb_free(&sb);
        jj_fail(L->e, line, MOFO_EFORMAT, "unterminated string");
    }
    L->pos++;
    size_t n = sb.len;
    tok t = {T_STR, line, jj_take(L->e, &sb, line), n, 0, 0};
    push_tok(L, t);
}

/* The inside of a tag from L->pos to its end marker; returns 1 when the end had a '-'. */
static int lex_tag(lexer *L, char close) {
    int depth = 0;
    for (;;) {
        while (L->pos < L->len && is_ws(L->src[L->pos])) L->line += L->src[L->pos++] == '\n';
        if (L->pos >= L->len) jj_fail(L->e, L->line, MOFO_EFORMAT, "unterminated tag: '%c}' missing", close);
        const char *s = L->src + L->pos;
        size_t left = L->len - L->pos;
        if (depth == 0) {
            if (left >= 2 && s[0] == close && s[1] == '}') {
                L->pos += 2;
                return 0;
            }
            if (left >= 3 && (s[0] == '-' || s[0] == '+') && s[1] == close && s[2] == '}') {
                L->pos += 3;
                return s[0] == '-';
            }
        }
        char c = s[0];
        if (c == '"' || c == '\'') {
            lex_string(L);
        } else if (is_name0(c)) {
            size_t n = 1;
            while (n < left && (is_name0(s[n]) || is_digit(s[n]))) n++;
            push_tok(L, (tok){T_NAME, L->line, s, n, 0, 0});
            L->pos += n;
        } else if (is_digit(c)) {
            size_t n = 0;
            int fl = 0;
            while (n < left && (is_digit(s[n]) || s[n] == '_')) n++;
            if (n + 1 < left && s[n] == '.' && is_digit(s[n + 1])) {
                fl = 1;
                n++;
                while (n < left && is_digit(s[n])) n++;
            }
            if (n < left && (s[n] == 'e' || s[n] == 'E')) {
                size_t m = n + 1;
                if (m < left && (s[m] == '+' || s[m] == '-')) m++;
                if (m < left && is_digit(s[m])) {
                    fl = 1;
                    n = m;
                    while (n < left && is_digit(s[n])) n++;
                }
            }
            char buf[64];
            size_t k = 0;
            for (size_t j = 0; j < n && k < sizeof buf - 1; j++)
                if (s[j] != '_') buf[k++] = s[j];
            buf[k] = 0;
            tok t = {fl ? T_FLOAT : T_INT, L->line, s, n, 0, 0};
            if (fl) t.f = strtod(buf, NULL);
            else t.i = strtoll(buf, NULL, 10);
            push_tok(L, t);
            L->pos += n;
        } else {
            static const char *two[] = {"==", "!=", "<=", ">=", "//", "**"};
            size_t n = 1;
            for (size_t j = 0; j < 6; j++)
                if (left >= 2 && s[0] == two[j][0] && s[1] == two[j][1]) n = 2;
            if (n == 1 && !strchr("+-*/%~<>()[]{},.:|=", c))
                jj_fail(L->e, L->line, MOFO_EFORMAT, "unexpected character '%c' in a tag", c);
            if (c == '(' || c == '[' || c == '{') depth++;
            if ((c == ')' || c == ']' || c == '}') && depth > 0) depth--;
            push_tok(L, (tok){T_OP, L->line, s, n, 0, 0});
            L->pos += n;
        }
    }
}

/* Whitespace control as transformers' environment has it: "-" strips all whitespace on that side;
 * lstrip_blocks removes spaces and tabs before a {% or {# that starts its line (unless {%+);
 * trim_blocks removes the newline right after %} or #} (unless +%}). */
static void lex(lexer *L) {
    size_t text0 = 0;
    int strip_next = 0;
    for (;;) {
        const char *open = NULL;
        for (size_t p = L->pos; p + 1 < L->len; p++)
            if (L->src[p] == '{' && (L->src[p + 1] == '{' || L->src[p + 1] == '%' || L->src[p + 1] == '#')) {
                open = L->src + p;
                break;
            }
        size_t end = open ? (size_t)(open - L->src) : L->len;
        size_t a = text0, b = end;
        if (strip_next)
            while (a < b && is_ws(L->src[a])) a++;
        char kind = open ? open[1] : 0;
        char mod = open && end + 2 < L->len ? open[2] : 0;
        if (open && mod == '-') {
            while (b > a && is_ws(L->src[b - 1])) b--;
        } else if (open && (kind == '%' || kind == '#') && mod != '+') {
            size_t q = b;
            while (q > a && (L->src[q - 1] == ' ' || L->src[q - 1] == '\t')) q--;
            if (q == 0 || L->src[q - 1] == '\n') b = q;
        }
        if (b > a) push_tok(L, (tok){T_TEXT, L->line + count_lines(L->src + text0, a - text0), L->src + a, b - a, 0, 0});
        L->line += count_lines(L->src + text0, end - text0);
        if (!open) break;
        L->pos = end + 2 + (mod == '-' || mod == '+');
        int stripped;
        if (kind == '#') {
            const char *c = NULL;
            for (size_t p = L->pos; p + 1 < L->len; p++)
                if (L->src[p] == '#' && L->src[p + 1] == '}') {
                    c = L->src + p;
                    break;
                }
            if (!c) jj_fail(L->e, L->line, MOFO_EFORMAT, "unterminated comment");
            size_t ce = (size_t)(c - L->src);
            stripped = ce > L->pos && L->src[ce - 1] == '-';
            int plus = ce > L->pos && L->src[ce - 1] == '+';
            L->line += count_lines(L->src + L->pos, ce + 2 - L->pos);
            L->pos = ce + 2;
            if (!stripped && !plus && L->pos < L->len && L->src[L->pos] == '\n') L->pos++, L->line++;
        } else {
            int line = L->line;
            push_tok(L, (tok){kind == '{' ? T_VAR_OPEN : T_STMT_OPEN, line, NULL, 0, 0, 0});
            size_t tag0 = L->pos;
            stripped = lex_tag(L, kind == '{' ? '}' : '%');
            push_tok(L, (tok){kind == '{' ? T_VAR_CLOSE : T_STMT_CLOSE, L->line, NULL, 0, 0, 0});
            int plus = L->pos >= 3 && L->src[L->pos - 3] == '+' && L->pos - 3 >= tag0;
            if (kind == '%' && !stripped && !plus && L->pos < L->len && L->src[L->pos] == '\n') L->pos++, L->line++;
        }
        strip_next = stripped;
        text0 = L->pos;
    }
    push_tok(L, (tok){T_EOF, L->line, NULL, 0, 0, 0});
}

typedef struct {
    env *e;
    tok *t;
    size_t p;
    mofo_jinja *tpl;
    int depth; /* nesting of expressions and tags, bounded so that the C stack is */
} parser;

#define MAX_DEPTH 200

static void enter(parser *P) {
    if (++P->depth > MAX_DEPTH) jj_fail(P->e, P->t[P->p].line, MOFO_EFORMAT, "nested more than %d deep", MAX_DEPTH);
}

static node *mk(parser *P, nkind k, int line) {
    node *n = jj_zalloc(P->e, sizeof *n);
    n->k = k;
    n->line = line;
    return n;
}

static tok *peek(parser *P) { return &P->t[P->p]; }
static int is_op(parser *P, const char *op) {
    tok *t = peek(P);
    return t->k == T_OP && t->n == strlen(op) && !memcmp(t->s, op, t->n);
}
static int is_name(parser *P, const char *nm) {
    tok *t = peek(P);
    return t->k == T_NAME && t->n == strlen(nm) && !memcmp(t->s, nm, t->n);
}
static const char *tok_desc(tok *t, char *buf, size_t cap) {
    switch (t->k) {
    case T_EOF: return "the end of the template";
    case T_VAR_CLOSE: return "'}}'";
    case T_STMT_CLOSE: return "'%}'";
    case T_TEXT: return "text";
    default: snprintf(buf, cap, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->s ? t->s : ""); return buf;
    }
}
static void expect_op(parser *P, const char *op) {
    char b[64];
    if (!is_op(P, op)) jj_fail(P->e, peek(P)->line, MOFO_EFORMAT, "expected '%s', found %s", op, tok_desc(peek(P), b, sizeof b));
    P->p++;
}
static const char *expect_name(parser *P) {
    char b[64];
    tok *t = peek(P);
    if (t->k != T_NAME) jj_fail(P->e, t->line, MOFO_EFORMAT, "expected a name, found %s", tok_desc(t, b, sizeof b));
    P->p++;
    return jj_dup(P->e, t->s, t->n);
}

static node *expr(parser *P);
static node *expr_noif(parser *P);

/* (a, b=c, ...) after the '(' */
static void call_args(parser *P, node *n) {
    node *args[64];
    const char *kw[64];
    size_t na = 0;
    while (!is_op(P, ")")) {
        if (na == 64) jj_fail(P->e, peek(P)->line, MOFO_EFORMAT, "more than 64 arguments");
        kw[na] = NULL;
        if (peek(P)->k == T_NAME && P->t[P->p + 1].k == T_OP && P->t[P->p + 1].n == 1 && P->t[P->p + 1].s[0] == '=') {
            kw[na] = expect_name(P);
            P->p++;
        }
        args[na++] = expr(P);
        if (!is_op(P, ",")) break;
        P->p++;
    }
    expect_op(P, ")");
    n->nargs = na;
    n->args = jj_alloc(P->e, (na ? na : 1) * sizeof *n->args);
    n->kw = jj_alloc(P->e, (na ? na : 1) * sizeof *n->kw);
    memcpy(n->args, args, na * sizeof *args);
    memcpy(n->kw, kw, na * sizeof *kw);
}

static node *primary(parser *P) {
    tok *t = peek(P);
    char b[64];
    node *n;
    if (t->k == T_STR) {
        /* adjacent literals concatenate */
        mofo_strbuf sb = {0};
        int line = t->line;
        while (peek(P)->k == T_STR) {
            mofo_sb_append(&sb, peek(P)->s, peek(P)->n);
            P->p++;
        }
        size_t len = sb.len;
        char *str = jj_take(P->e, &sb, line);
        n = mk(P, N_LIT_STR, line);
        n->s = str;
        n->n = len;
        return n;
    }
    if (t->k == T_INT || t->k == T_FLOAT) {
        n = mk(P, t->k == T_INT ? N_LIT_INT : N_LIT_FLOAT, t->line);
        n->i = t->i;
        n->f = t->f;
        P->p++;
        return n;
    }
    if (t->k == T_NAME) {
        P->p++;
        if ((t->n == 4 && (!memcmp(t->s, "true", 4) || !memcmp(t->s, "True", 4))) ||
            (t->n == 5 && (!memcmp(t->s, "false", 5) || !memcmp(t->s, "False", 5)))) {
            n = mk(P, N_LIT_BOOL, t->line);
            n->i = t->n == 4;
            return n;
        }
        if (t->n == 4 && (!memcmp(t->s, "none", 4) || !memcmp(t->s, "None", 4))) return mk(P, N_LIT_NONE, t->line);
        n = mk(P, N_NAME, t->line);
        n->s = jj_dup(P->e, t->s, t->n);
        n->n = t->n;
        return n;
    }
    if (is_op(P, "(")) {
        P->p++;
        if (is_op(P, ")")) {
            P->p++;
            return mk(P, N_LIST, t->line);
        }
        node *first = expr(P);
        if (!is_op(P, ",")) {
            expect_op(P, ")");
            return first;
        }
        /* a tuple: treated as a list */
        n = mk(P, N_LIST, t->line);
        node *items[256];
        size_t k = 0;
        items[k++] = first;
        while (is_op(P, ",")) {
            P->p++;
            if (is_op(P, ")")) break;
            if (k == 256) jj_fail(P->e, t->line, MOFO_EFORMAT, "a tuple of more than 256 items");
            items[k++] = expr(P);
        }
        expect_op(P, ")");
        n->nargs = k;
        n->args = jj_alloc(P->e, k * sizeof *n->args);
        memcpy(n->args, items, k * sizeof *items);
        return n;
    }
    if (is_op(P, "[") || is_op(P, "{")) {
        int dict = is_op(P, "{");
        P->p++;
        n = mk(P, dict ? N_DICT : N_LIST, t->line);
        node *items[512];
        size_t k = 0;
        while (!is_op(P, dict ? "}" : "]")) {
            if (k + 2 > 512) jj_fail(P->e, t->line, MOFO_EFORMAT, "a literal of more than 256 items");
            items[k++] = expr(P);
            if (dict) {
                expect_op(P, ":");
                items[k++] = expr(P);
            }
            if (!is_op(P, ",")) break;
            P->p++;
        }
        expect_op(P, dict ? "}" : "]");
        n->nargs = k;
        n->args = jj_alloc(P->e, (k ? k : 1) * sizeof *n->args);
        memcpy(n->args, items, k * sizeof *items);
        return n;
    }
    jj_fail(P->e, t->line, MOFO_EFORMAT, "expected an expression, found %s", tok_desc(t, b, sizeof b));
}

static node *postfix(parser *P) {
    node *n = primary(P);
    for (;;) {
        int line = peek(P)->line;
        if (is_op(P, ".")) {
            P->p++;
            node *a = mk(P, N_ATTR, line);
            a->a = n;
            a->s = expect_name(P);
            a->n = strlen(a->s);
            n = a;
        } else if (is_op(P, "[")) {
            P->p++;
            node *parts[3] = {NULL, NULL, NULL};
            int k = 0, slice = 0;
            for (;;) {
                if (!is_op(P, ":") && !is_op(P, "]")) parts[k] = expr(P);
                if (is_op(P, ":") && k < 2) {
                    P->p++;
                    slice = 1;
                    k++;
                    continue;
                }
                break;
            }
            expect_op(P, "]");
            node *x = mk(P, slice ? N_SLICE : N_INDEX, line);
            x->a = n;
            if (!slice && !parts[0]) jj_fail(P->e, line, MOFO_EFORMAT, "empty subscript");
            x->b = parts[0];
            if (slice) {
                x->c = parts[1];
                x->filt = parts[2];
            }
            n = x;
        } else if (is_op(P, "(")) {
            P->p++;
            node *c = mk(P, N_CALL, line);
            c->a = n;
            call_args(P, c);
            n = c;
        } else {
            return n;
        }
    }
}

/* filters (|name(args)) and tests (is [not] name [arg]) after a postfix expression */
static node *filtered(parser *P, node *n) {
    for (;;) {
        int line = peek(P)->line;
        if (is_op(P, "|")) {
            P->p++;
            node *f = mk(P, N_FILTER, line);
            f->a = n;
            f->s = expect_name(P);
            if (is_op(P, "(")) {
                P->p++;
                call_args(P, f);
            }
            n = f;
        } else if (is_name(P, "is")) {
            P->p++;
            node *t = mk(P, N_TEST, line);
            t->a = n;
            if (is_name(P, "not")) {
                P->p++;
                t->op = 1;
            }
            if (is_name(P, "none") || is_name(P, "true") || is_name(P, "false")) {
                t->s = jj_dup(P->e, peek(P)->s, peek(P)->n);
                P->p++;
            } else {
                t->s = expect_name(P);
            }
            if (is_op(P, "(")) {
                P->p++;
                call_args(P, t);
            } else if (peek(P)->k == T_STR || peek(P)->k == T_INT || peek(P)->k == T_FLOAT) {
                t->nargs = 1;
                t->args = jj_alloc(P->e, sizeof *t->args);
                t->kw = jj_zalloc(P->e, sizeof *t->kw);
                t->args[0] = primary(P);
            }
            n = t;
        } else {
            return n;
        }
    }
}

static node *unary(parser *P) {
    int line = peek(P)->line;
    if (is_op(P, "-") || is_op(P, "+")) {
        int neg = is_op(P, "-");
        P->p++;
        enter(P);
        node *x = unary(P);
        P->depth--;
        if (!neg) return x;
        node *n = mk(P, N_NEG, line);
        n->a = x;
        return filtered(P, n);
    }
    return filtered(P, postfix(P));
}

static node *binary(parser *P, node *a, int op, node *(*next)(parser *)) {
    node *n = mk(P, N_BIN, peek(P)->line);
    P->p++;
    n->op = op;
    n->a = a;
    n->b = next(P);
    return n;
}

static node *power(parser *P) {
    node *n = unary(P);
    while (is_op(P, "**")) n = binary(P, n, OP_POW, unary);
    return n;
}
static node *mul(parser *P) {
    node *n = power(P);
    for (;;) {
        if (is_op(P, "*")) n = binary(P, n, OP_MUL, power);
        else if (is_op(P, "/")) n = binary(P, n, OP_DIV, power);
        else if (is_op(P, "//")) n = binary(P, n, OP_FLOORDIV, power);
        else if (is_op(P, "%")) n = binary(P, n, OP_MOD, power);
        else return n;
    }
}
static node *concat(parser *P) {
    node *n = mul(P);
    while (is_op(P, "~")) n = binary(P, n, OP_CAT, mul);
    return n;
}
static node *add(parser *P) {
    node *n = concat(P);
    for (;;) {
        if (is_op(P, "+")) n = binary(P, n, OP_ADD, concat);
        else if (is_op(P, "-")) n = binary(P, n, OP_SUB, concat);
        else return n;
    }
}
static node *compare(parser *P) {
    node *n = add(P);
    for (;;) {
        static const char *ops[] = {"==", "!=", "<", ">", "<=", ">="};
        static const int codes[] = {OP_EQ, OP_NE, OP_LT, OP_GT, OP_LE, OP_GE};
        int done = 1;
        for (int k = 0; k < 6; k++)
            if (is_op(P, ops[k])) {
                n = binary(P, n, codes[k], add);
                done = 0;
                break;
            }
        if (!done) continue;
        if (is_name(P, "in")) {
            n = binary(P, n, OP_IN, add);
        } else if (is_name(P, "not") && P->t[P->p + 1].k == T_NAME && P->t[P->p + 1].n == 2 && !memcmp(P->t[P->p + 1].s, "in", 2)) {
            P->p++;
            n = binary(P, n, OP_NOTIN, add);
        } else {
            return n;
        }
    }
}
static node *not_(parser *P) {
    if (is_name(P, "not")) {
        node *n = mk(P, N_NOT, peek(P)->line);
        P->p++;
        enter(P);
        n->a = not_(P);
        P->depth--;
        return n;
    }
    return compare(P);
}
static node *and_(parser *P) {
    node *n = not_(P);
    while (is_name(P, "and")) {
        node *x = mk(P, N_AND, peek(P)->line);
        P->p++;
        x->a = n;
        x->b = not_(P);
        n = x;
    }
    return n;
}
static node *or_(parser *P) {
    node *n = and_(P);
    while (is_name(P, "or")) {
        node *x = mk(P, N_OR, peek(P)->line);
        P->p++;
        x->a = n;
        x->b = and_(P);
        n = x;
    }
    return n;
}
static node *expr_noif(parser *P) { return or_(P); }
static node *expr(parser *P) {
    enter(P);
    node *n = or_(P);
    while (is_name(P, "if")) {
        node *c = mk(P, N_COND, peek(P)->line);
        P->p++;
        c->a = or_(P);
        c->b = n;
        if (is_name(P, "else")) {
            P->p++;
            c->c = or_(P);
        }
        n = c;
    }
    P->depth--;
    return n;
}

static void end_tag(parser *P) {
    char b[64];
    if (peek(P)->k != T_STMT_CLOSE)
        jj_fail(P->e, peek(P)->line, MOFO_EFORMAT, "expected '%%}', found %s", tok_desc(peek(P), b, sizeof b));
    P->p++;
}

/* Statements until one of the tags in stop (NULL-terminated); returns the list and leaves the
 * parser after the name of the stop tag (its arguments and %} not yet read). */
static node *body(parser *P, const char *const *stop, const char **found);

static node *statement(parser *P) {
    tok *open = peek(P);
    int line = open->line;
    P->p++; /* {% */
    tok *kw = peek(P);
    char b[64];
    if (kw->k != T_NAME) jj_fail(P->e, line, MOFO_EFORMAT, "expected a tag name, found %s", tok_desc(kw, b, sizeof b));
    const char *name = expect_name(P);
    const char *found;
    node *n;
    if (!strcmp(name, "if")) {
        n = mk(P, S_IF, line);
        n->a = expr(P);
        end_tag(P);
        static const char *const stop[] = {"elif", "else", "endif", NULL};
        n->b = body(P, stop, &found);
        node *cur = n;
        while (!strcmp(found, "elif")) {
            node *e = mk(P, S_IF, peek(P)->line);
            e->a = expr(P);
            end_tag(P);
            e->b = body(P, stop, &found);
            cur->filt = e;
            cur = e;
        }
        if (!strcmp(found, "else")) {
            end_tag(P);
            static const char *const stop2[] = {"endif", NULL};
            cur->c = body(P, stop2, &found);
        }
        end_tag(P);
        return n;
    }
    if (!strcmp(name, "for")) {
        n = mk(P, S_FOR, line);
        const char *names[8];
        size_t k = 0;
        int paren = is_op(P, "(");
        if (paren) P->p++;
        do {
            if (k && is_op(P, ",")) P->p++;
            if (k == 8) jj_fail(P->e, line, MOFO_EFORMAT, "more than 8 loop targets");
            names[k++] = expect_name(P);
        } while (is_op(P, ","));
        if (paren) expect_op(P, ")");
        n->names = jj_alloc(P->e, k * sizeof *n->names);
        memcpy(n->names, names, k * sizeof *names);
        n->nnames = k;
        if (!is_name(P, "in")) jj_fail(P->e, line, MOFO_EFORMAT, "expected 'in' in the for tag");
        P->p++;
        n->a = expr_noif(P);
        if (is_name(P, "if")) {
            P->p++;
            n->filt = expr_noif(P);
        }
        if (is_name(P, "recursive")) jj_fail(P->e, line, MOFO_EFORMAT, "recursive loops are not supported");
        end_tag(P);
        static const char *const stop[] = {"else", "endfor", NULL};
        n->b = body(P, stop, &found);
        if (!strcmp(found, "else")) {
            end_tag(P);
            static const char *const stop2[] = {"endfor", NULL};
            n->c = body(P, stop2, &found);
        }
        end_tag(P);
        return n;
    }
    if (!strcmp(name, "set")) {
        const char *target = expect_name(P), *attr = NULL;
        if (is_op(P, ".")) {
            P->p++;
            attr = expect_name(P);
        }
        if (is_op(P, ",")) jj_fail(P->e, line, MOFO_EFORMAT, "set with several targets is not supported");
        if (is_op(P, "=")) {
            P->p++;
            n = mk(P, S_SET, line);
            n->a = expr(P);
            end_tag(P);
        } else {
            if (attr) jj_fail(P->e, line, MOFO_EFORMAT, "the block form of set takes a plain name");
            n = mk(P, S_SET_BLOCK, line);
            end_tag(P);
            static const char *const stop[] = {"endset", NULL};
            n->b = body(P, stop, &found);
            end_tag(P);
        }
        n->s = target;
        n->names = attr ? jj_alloc(P->e, sizeof *n->names) : NULL;
        if (attr) n->names[0] = attr, n->nnames = 1;
        return n;
    }
    if (!strcmp(name, "macro")) {
        n = mk(P, S_MACRO, line);
        n->s = expect_name(P);
        expect_op(P, "(");
        const char *names[32];
        node *defs[32];
        size_t k = 0;
        while (!is_op(P, ")")) {
            if (k == 32) jj_fail(P->e, line, MOFO_EFORMAT, "more than 32 macro parameters");
            names[k] = expect_name(P);
            defs[k] = NULL;
            if (is_op(P, "=")) {
                P->p++;
                defs[k] = expr(P);
            }
            k++;
            if (!is_op(P, ",")) break;
            P->p++;
        }
        expect_op(P, ")");
        end_tag(P);
        n->names = jj_alloc(P->e, (k ? k : 1) * sizeof *n->names);
        n->args = jj_alloc(P->e, (k ? k : 1) * sizeof *n->args);
        memcpy(n->names, names, k * sizeof *names);
        memcpy(n->args, defs, k * sizeof *defs);
        n->nnames = n->nargs = k;
        static const char *const stop[] = {"endmacro", NULL};
        n->b = body(P, stop, &found);
        end_tag(P);
        return n;
    }
    if (!strcmp(name, "generation")) {
        n = mk(P, S_GENERATION, line);
        end_tag(P);
        static const char *const stop[] = {"endgeneration", NULL};
        n->b = body(P, stop, &found);
        end_tag(P);
        P->tpl->has_generation = 1;
        return n;
    }
    if (!strcmp(name, "break") || !strcmp(name, "continue")) {
        n = mk(P, name[0] == 'b' ? S_BREAK : S_CONTINUE, line);
        end_tag(P);
        return n;
    }
    jj_fail(P->e, line, MOFO_EFORMAT, "unsupported tag '%s'", name);
}

static node *body(parser *P, const char *const *stop, const char **found) {
    node head = {0}, *tail = &head;
    int line0 = peek(P)->line;
    for (;;) {
        tok *t = peek(P);
        node *n = NULL;
        if (t->k == T_EOF) {
            if (!stop) return head.next;
            jj_fail(P->e, line0, MOFO_EFORMAT, "'%s' is never closed ('%s' missing)",
                 !strcmp(stop[0], "endif") || !strcmp(stop[0], "elif") ? "if" : !strcmp(stop[0], "endfor") || !strcmp(stop[0], "else") ? "for" : stop[0] + 3,
                 stop[0][0] == 'e' && stop[0][1] == 'n' ? stop[0] : stop[1] && stop[2] ? stop[2] : stop[1] ? stop[1] : stop[0]);
        }
        if (t->k == T_TEXT) {
            n = mk(P, S_TEXT, t->line);
            n->s = t->s;
            n->n = t->n;
            P->p++;
        } else if (t->k == T_VAR_OPEN) {
            n = mk(P, S_OUT, t->line);
            P->p++;
            n->a = expr(P);
            char b[64];
            if (peek(P)->k != T_VAR_CLOSE)
                jj_fail(P->e, peek(P)->line, MOFO_EFORMAT, "expected '}}', found %s", tok_desc(peek(P), b, sizeof b));
            P->p++;
        } else if (t->k == T_STMT_OPEN) {
            tok *kw = &P->t[P->p + 1];
            for (size_t k = 0; stop && stop[k]; k++)
                if (kw->k == T_NAME && kw->n == strlen(stop[k]) && !memcmp(kw->s, stop[k], kw->n)) {
                    P->p += 2;
                    *found = stop[k];
                    return head.next;
                }
            if (kw->k == T_NAME) {
                static const char *const closers[] = {"endif", "endfor", "elif", "else", "endset", "endmacro", "endgeneration", NULL};
                for (size_t k = 0; closers[k]; k++)
                    if (kw->n == strlen(closers[k]) && !memcmp(kw->s, closers[k], kw->n))
                        jj_fail(P->e, kw->line, MOFO_EFORMAT, "unexpected '%s'", closers[k]);
            }
            enter(P);
            n = statement(P);
            P->depth--;
        } else {
            char b[64];
            jj_fail(P->e, t->line, MOFO_EFORMAT, "unexpected %s", tok_desc(t, b, sizeof b));
        }
        tail->next = n;
        tail = n;
    }
}

int mofo_jinja_parse(mofo_jinja **out, const char *src, size_t len, const char *name, mofo_err *err) {
    *out = NULL;
    mofo_jinja *t = calloc(1, sizeof *t);
    char *nm = name ? strdup(name) : strdup("chat_template");
    if (!t || !nm) {
        free(t);
        free(nm);
        return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    }
    jmp_buf jb;
    env e = {.jb = &jb, .err = err, .name = nm};
    if (setjmp(jb)) {
        jj_arena_free(e.head);
        free(nm);
        free(t);
        return err ? err->code : MOFO_EFORMAT;
    }
    /* the AST points into its own copy of the source (text runs, names) */
    lexer L = {&e, jj_dup(&e, src, len), len, 0, 1, NULL, 0, 0};
    lex(&L);
    parser P = {&e, L.t, 0, t, 0};
    t->body = body(&P, NULL, NULL);
    t->arena = e.head;
    t->name = nm;
    *out = t;
    return 0;
}

void mofo_jinja_free(mofo_jinja *t) {
    if (!t) return;
    jj_arena_free(t->arena);
    free(t->name);
    free(t);
}

int mofo_jinja_has_generation(const mofo_jinja *t) { return t && t->has_generation; }

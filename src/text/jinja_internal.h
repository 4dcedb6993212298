/* The inside of jinja.h's template engine, shared by its parser (jinja_parse.c) and its renderer
 * (jinja.c): the arena both allocate from, the error exit, and the AST. */
#ifndef MOFO_TEXT_JINJA_INTERNAL_H
#define MOFO_TEXT_JINJA_INTERNAL_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "text/jinja.h"

/* ---- arena and errors: a failure records its message in err and longjmps to *jb ---- */

typedef struct blk {
    struct blk *next;
    size_t used, cap;
    _Alignas(16) char data[];
} blk;

typedef struct {
    blk *head;
    size_t total; /* bytes allocated: bounded by JJ_MAX_ARENA */
    jmp_buf *jb;
    mofo_err *err;
    const char *name;
    struct sbuild *open; /* the renderer's strings being built (jinja.c), freed on a failure */
} env;

#define JJ_MAX_ARENA ((size_t)1 << 28)

_Noreturn void jj_fail(env *e, int line, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* jj_alloc's size of an n-byte allocation; jj_reserve makes room for n such bytes in the current
 * block without failing (0, or MOFO_EFORMAT past the arena's limit, MOFO_ENOMEM), so that a caller
 * holding memory of its own can release it before it fails. */
#define JJ_ROUND(n) (((n) + 15) & ~(size_t)15)
int jj_reserve(env *e, size_t n);
/* sb's text as a NUL-terminated arena string; sb is freed whether or not that fails. */
char *jj_take(env *e, mofo_strbuf *sb, int line);
void *jj_alloc(env *e, size_t n);  /* 16-byte aligned; out of memory, or over JJ_MAX_ARENA in all, fails */
void *jj_zalloc(env *e, size_t n); /* zeroed */
char *jj_dup(env *e, const char *s, size_t n); /* NUL-terminated copy */
void jj_arena_free(blk *b);

/* ---- AST ---- */

typedef enum {
    /* expressions */
    N_LIT_STR, N_LIT_INT, N_LIT_FLOAT, N_LIT_BOOL, N_LIT_NONE, N_NAME, N_ATTR, N_INDEX, N_SLICE, N_CALL,
    N_FILTER, N_TEST, N_NEG, N_NOT, N_AND, N_OR, N_BIN, N_COND, N_LIST, N_DICT,
    /* statements */
    S_TEXT, S_OUT, S_IF, S_FOR, S_SET, S_SET_BLOCK, S_MACRO, S_GENERATION, S_BREAK, S_CONTINUE
} nkind;

typedef enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_CAT, OP_EQ, OP_NE, OP_LT, OP_GT, OP_LE, OP_GE, OP_IN, OP_NOTIN } binop;

typedef struct node node;
struct node {
    nkind k;
    int line;
    int op;            /* binop; N_TEST: negated */
    const char *s;     /* names, strings, text */
    size_t n;
    int64_t i;
    double f;
    node *a, *b, *c;   /* operands; S_IF: a cond, b then, c else; S_FOR: a iter, b body, c else */
    node *filt;        /* S_FOR: the loop's `if`; S_IF: the elif that follows (an S_IF); N_SLICE: the step */
    node **args;       /* call/filter/test arguments, list/dict items (dict: key, value pairs) */
    const char **kw;   /* per argument: the keyword, or NULL for a positional one */
    size_t nargs;
    const char **names; /* S_FOR targets, S_MACRO parameters */
    size_t nnames;
    node *next;        /* the next statement */
};

struct mofo_jinja {
    blk *arena;
    node *body;
    int has_generation;
    char *name;
};

#endif

/* The synthetic world (src/demo/world.c) and `mofo world`: the same seed gives the same bytes and
 * another seed other bytes; every line loads with the project's readers in its intended format;
 * answers agree with the facts (people.jsonl, read back from the file, is the truth here, and it
 * is the world's own people); every arithmetic question's answer is recomputed from its operands,
 * every step of every worked solution is recomputed, and no validation or test fact (kind, a, b)
 * is trained on; held-out phrasings stay out of the training text; the command writes what the
 * library renders and fails with a message on bad flags, sizes or folders. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "run_cmd.h"
#include "demo/world.h"
#include "io/json.h"
#include "text/dataset.h"
#include "text/utf8.h"

static char tmpdir[256];

typedef struct files {
    mofo_strbuf f[MOFO_WORLD_N_FILES];
    long lines[MOFO_WORLD_N_FILES];
} files;

static int render_all(const mofo_world_opts *o, files *out, mofo_world *keep) {
    mofo_world w;
    mofo_err err = {0};
    memset(out, 0, sizeof *out);
    if (mofo_world_build(&w, o, &err)) {
        CHECK(0, "build: %s", err.msg);
        return -1;
    }
    for (int f = 0; f < MOFO_WORLD_N_FILES; f++) {
        int rc = mofo_world_render(&w, (mofo_world_file)f, &out->f[f], &out->lines[f], &err);
        CHECK(rc == 0 && out->f[f].data, "render %s: %s", mofo_world_file_name((mofo_world_file)f), err.msg);
        if (rc || !out->f[f].data) mofo_sb_puts(&out->f[f], "");
    }
    if (keep)
        *keep = w;
    else
        mofo_world_free(&w);
    return 0;
}

static void free_files(files *fs) {
    for (int f = 0; f < MOFO_WORLD_N_FILES; f++) mofo_sb_free(&fs->f[f]);
}

/* ---- lines as JSON ---- */
typedef struct lines {
    mofo_json_doc **doc;
    long n;
} lines;

static lines parse_lines(const mofo_strbuf *sb, const char *name) {
    lines L = {0};
    long cap = 0;
    const char *s = sb->data, *end = sb->data + sb->len;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        CHECK(nl != NULL, "%s: last line without a newline", name);
        if (!nl) nl = end;
        mofo_err err = {0};
        mofo_json_doc *d = mofo_json_parse(s, (size_t)(nl - s), &err);
        CHECK(d && mofo_json_root(d)->type == MOFO_JSON_OBJECT, "%s:%ld: %s", name, L.n + 1, err.msg);
        if (L.n == cap) {
            cap = cap ? cap * 2 : 64;
            L.doc = realloc(L.doc, (size_t)cap * sizeof *L.doc);
        }
        L.doc[L.n++] = d;
        s = nl + 1;
    }
    return L;
}

static void free_lines(lines *L) {
    for (long i = 0; i < L->n; i++) mofo_json_free(L->doc[i]);
    free(L->doc);
}

/* the string field key of line i, or NULL (a check fails) */
static const char *str_field(const lines *L, long i, const char *key) {
    const mofo_json *v = L->doc[i] ? mofo_json_get(mofo_json_root(L->doc[i]), key) : NULL;
    CHECK(v && v->type == MOFO_JSON_STRING, "line %ld: no string field \"%s\"", i + 1, key);
    return v && v->type == MOFO_JSON_STRING ? v->str : NULL;
}

/* name occurs in s as a whole name (not followed by a letter) */
static int mentions(const char *s, const char *name) {
    size_t n = strlen(name);
    for (const char *p = strstr(s, name); p; p = strstr(p + 1, name)) {
        char c = p[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return 1;
    }
    return 0;
}

static int is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

/* how often v occurs in s as a whole word or number ("42" not inside "1942", "harp" not in "harpist") */
static int occurrences(const char *s, const char *v) {
    size_t n = strlen(v);
    int k = 0;
    for (const char *p = n ? strstr(s, v) : NULL; p; p = strstr(p + 1, v))
        k += (p == s || !is_alnum(p[-1])) && !is_alnum(p[n]);
    return k;
}

/* ---- the formats the project reads ---- */
static void check_loads(const files *fs, const mofo_tokenizer *tok) {
    static const struct {
        mofo_world_file f;
        mofo_data_format fmt;
    } ds_files[] = {{MOFO_WF_BIOS, MOFO_FMT_TEXT},
                    {MOFO_WF_QA, MOFO_FMT_TEXT},
                    {MOFO_WF_HELDOUT, MOFO_FMT_TEXT},
                    {MOFO_WF_MATH_TRAIN, MOFO_FMT_METAMATH},
                    {MOFO_WF_MATH_PRETRAIN, MOFO_FMT_TEXT}};
    for (size_t k = 0; k < sizeof ds_files / sizeof ds_files[0]; k++) {
        const char *name = mofo_world_file_name(ds_files[k].f);
        const mofo_strbuf *sb = &fs->f[ds_files[k].f];
        mofo_dataset ds = {0};
        mofo_data_opts o = {.format = MOFO_FMT_AUTO, .tpl = MOFO_TPL_TULU};
        mofo_err err = {0};
        int rc = mofo_dataset_load_buffer(&ds, name, sb->data, sb->len, tok, &o, &err);
        CHECK(rc == 0, "%s: %s", name, err.msg);
        CHECK(ds.format == ds_files[k].fmt, "%s: read as %s", name, mofo_data_format_name(ds.format));
        CHECK(ds.n == (size_t)fs->lines[ds_files[k].f] && ds.n > 0, "%s: %zu examples of %ld lines", name, ds.n,
              fs->lines[ds_files[k].f]);
        CHECK(ds.n_bad == 0 && ds.n_no_response == 0, "%s: %zu bad, %zu without response", name, ds.n_bad,
              ds.n_no_response);
        mofo_dataset_free(&ds);
    }
}

/* ---- word problems (math_pretrain): every "X op Y = Z" recomputed, "#### N" is the last result ---- */
static const char *check_solution(const char *resp, long *final) {
    long last = 0;
    int steps = 0;
    for (const char *p = resp; *p; p++) {
        if (!(*p >= '0' && *p <= '9') || (p > resp && p[-1] >= '0' && p[-1] <= '9')) continue;
        char *e;
        long x = strtol(p, &e, 10), y, z;
        char op;
        int used = 0;
        if (sscanf(e, " %c %ld = %ld%n", &op, &y, &z, &used) == 3 && used > 0 && strchr("+-*/", op)) {
            long want = op == '+' ? x + y : op == '-' ? x - y : op == '*' ? x * y : (y && x % y == 0 ? x / y : -999999);
            if (want != z) return "a step's arithmetic is wrong";
            if (z < 0) return "a negative count";
            last = z, steps++;
            p = e + used - 1;
        }
    }
    if (!steps) return "no step";
    const char *h = strstr(resp, "\n#### ");
    if (!h || strstr(h + 6, "####") || strstr(resp, "####") != h + 1) return "not one final \"\\n#### \"";
    char *e;
    long n = strtol(h + 6, &e, 10);
    if (*e) return "text after the final number";
    if (n != last) return "#### is not the last step's result";
    *final = n;
    return NULL;
}

/* ---- the task: arithmetic facts (kind, a, b) ---- */
static const char OPS[MOFO_TASK_KINDS + 1] = "+-*/";

/* a key for a fact: a <= 81, b <= 30 */
#define FACT_KEYS (MOFO_TASK_KINDS * 10000)
static int fact_key(int kind, long a, long b) { return kind * 10000 + (int)a * 100 + (int)b; }

/* 1 if (kind, a, b) is a fact of the task: a + b for a, b in 1..20; a - b for 1 <= b < a <= 30;
 * a * b for a, b in 2..9; a / b for a = q * b with q, b in 2..9 */
static int task_fact(int kind, long a, long b) {
    switch (kind) {
    case MOFO_TASK_ADD: return a >= 1 && a <= 20 && b >= 1 && b <= 20;
    case MOFO_TASK_SUB: return b >= 1 && b < a && a <= 30;
    case MOFO_TASK_MUL: return a >= 2 && a <= 9 && b >= 2 && b <= 9;
    case MOFO_TASK_DIV: return b >= 2 && b <= 9 && a % b == 0 && a / b >= 2 && a / b <= 9;
    default: return 0;
    }
}

static long apply(int kind, long a, long b) {
    return kind == MOFO_TASK_ADD   ? a + b
           : kind == MOFO_TASK_SUB ? a - b
           : kind == MOFO_TASK_MUL ? a * b
           : b                     ? a / b
                                   : 0;
}

/* every task fact's key into keys (may be NULL); returns the count */
static int task_facts(int *keys) {
    int n = 0;
    for (int k = 0; k < MOFO_TASK_KINDS; k++)
        for (long a = 1; a <= 81; a++)
            for (long b = 1; b <= 30; b++)
                if (task_fact(k, a, b)) {
                    if (keys) keys[n] = fact_key(k, a, b);
                    n++;
                }
    return n;
}

typedef struct afact {
    int kind;
    long a, b, c;
} afact;

/* A task response: exactly "A op B = C\n#### C", correct, over a task fact. */
static const char *check_task_response(const char *r, afact *f) {
    long a, b, c, d;
    char op = 0, again[128];
    int used = -1;
    if (sscanf(r, "%ld %c %ld = %ld\n#### %ld%n", &a, &op, &b, &c, &d, &used) != 5 || used < 0 || r[used])
        return "not \"A op B = C\\n#### C\"";
    snprintf(again, sizeof again, "%ld %c %ld = %ld\n#### %ld", a, op, b, c, d);
    if (strcmp(again, r) != 0) return "not exactly \"A op B = C\\n#### C\"";
    const char *k = op ? strchr(OPS, op) : NULL;
    if (!k) return "an unknown operation";
    f->kind = (int)(k - OPS), f->a = a, f->b = b, f->c = c;
    if (c != d) return "#### is not the equation's result";
    if (!task_fact(f->kind, a, b)) return "not a fact of the task (operands out of range)";
    if (apply(f->kind, a, b) != c) return "the arithmetic is wrong";
    return NULL;
}

/* The integers of a question (at most 4) into v; returns how many there are. */
static int integers(const char *s, long v[4]) {
    int n = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || (p > s && p[-1] >= '0' && p[-1] <= '9')) continue;
        if (n < 4) v[n] = strtol(p, NULL, 10);
        n++;
    }
    return n;
}

/* A task question of kind: its two operands are those of fact f, and answer (the text the file
 * gives, or NULL) is the operation of its kind on them, computed here: a sum or product of the
 * two numbers; a difference or quotient of the number after " from " or " into " ("Subtract 3 from
 * 9", "How many times does 3 go into 9?") or else of the first ("9 minus 3", "Divide 9 by 3") by
 * the other, which must come out whole and positive. */
static const char *check_question(const char *q, int kind, const afact *f, const char *answer) {
    long v[4];
    if (integers(q, v) != 2) return "not two numbers in the question";
    if (!((v[0] == f->a && v[1] == f->b) || (v[0] == f->b && v[1] == f->a)))
        return "the question's numbers are not the fact's operands";
    const char *from = strstr(q, " from "), *into = strstr(q, " into "), *mark = from ? from : into;
    int first = 0; /* which number is the minuend or the dividend */
    if (mark) {
        long after[4];
        if (integers(mark, after) != 1) return "not one number after \"from\"/\"into\"";
        first = 1;
    }
    long x = v[first], y = v[1 - first], want;
    switch (kind) {
    case MOFO_TASK_ADD: want = x + y; break;
    case MOFO_TASK_SUB:
        want = x - y;
        if (want <= 0) return "the difference is not positive";
        break;
    case MOFO_TASK_MUL: want = x * y; break;
    case MOFO_TASK_DIV:
        if (!y || x % y) return "the numbers do not divide";
        want = x / y;
        break;
    default: return "not a task kind";
    }
    if (f->c != want) return "the response's result is not the question's";
    char num[32];
    snprintf(num, sizeof num, "%ld", want);
    if (answer && strcmp(answer, num) != 0) return "the answer is not the question's result";
    return NULL;
}

/* The question with its numbers as "#": its phrasing. */
static void skeleton(const char *q, char *out, size_t cap) {
    size_t n = 0;
    for (const char *p = q; *p && n + 1 < cap; p++) {
        if (*p >= '0' && *p <= '9') {
            if (p == q || p[-1] < '0' || p[-1] > '9') out[n++] = '#';
        } else {
            out[n++] = *p;
        }
    }
    out[n] = 0;
}

/* the phrasings seen per kind */
#define MAX_PHRASINGS 8
typedef struct phrasings {
    char s[MOFO_TASK_KINDS][MAX_PHRASINGS][160];
    int n[MOFO_TASK_KINDS];
} phrasings;

/* Adds q's phrasing to kind's (add) or finds it there; returns its index, -1 when absent or too many. */
static int phrasing(phrasings *ph, int kind, const char *q, int add) {
    char sk[160];
    skeleton(q, sk, sizeof sk);
    for (int i = 0; i < ph->n[kind]; i++)
        if (strcmp(ph->s[kind][i], sk) == 0) return i;
    if (!add || ph->n[kind] == MAX_PHRASINGS) return -1;
    snprintf(ph->s[kind][ph->n[kind]], sizeof ph->s[kind][0], "%s", sk);
    return ph->n[kind]++;
}

static int cmp_str(const void *x, const void *y) { return strcmp(*(const char *const *)x, *(const char *const *)y); }

/* how many strings of v[0..n) repeat one before them (v is sorted) */
static int repeats(const char **v, long n) {
    qsort(v, (size_t)n, sizeof *v, cmp_str);
    int d = 0;
    for (long i = 1; i < n; i++) d += strcmp(v[i - 1], v[i]) == 0;
    return d;
}

/* the lines of the arithmetic tables: A + B for A, B in 0..20, A - B for 0 <= B <= A <= 30, A * B
 * and A*B / B for A, B in 1..9 */
#define TABLE_ADD (21 * 21)
#define TABLE_SUB (31 * 32 / 2)
#define TABLE_MUL 81
#define TABLE_LINES (TABLE_ADD + TABLE_SUB + 2 * TABLE_MUL)

static void check_math(const files *fs, const mofo_world *w) {
    int n_facts = task_facts(NULL);
    CHECK(n_facts == 400 + 29 * 30 / 2 + 64 + 64, "%d task facts", n_facts);
    unsigned char *trained = calloc(FACT_KEYS, 1), *held = calloc(FACT_KEYS, 1);
    phrasings *ph = calloc(1, sizeof *ph);
    long n_all = 0, cap_all = (long)w->n_train + w->n_val + w->n_test + w->n_pretrain + 1;
    const char **all = malloc((size_t)cap_all * sizeof *all); /* every query of the math files */
    /* math_train: "A op B = C\n#### C" over a training fact, the question's numbers its operands */
    lines tr = parse_lines(&fs->f[MOFO_WF_MATH_TRAIN], "math_train");
    CHECK(tr.n == w->n_train, "%ld training problems", tr.n);
    int kinds[MOFO_TASK_KINDS] = {0};
    for (long i = 0; i < tr.n && i < w->n_train; i++) {
        const char *q = str_field(&tr, i, "query"), *r = str_field(&tr, i, "response");
        if (!q || !r) continue;
        all[n_all++] = q;
        afact f = {-1, 0, 0, 0};
        const char *why = check_task_response(r, &f);
        CHECK(!why, "math_train:%ld: %s: %s", i + 1, why, r);
        if (why) continue;
        why = check_question(q, f.kind, &f, NULL);
        CHECK(!why, "math_train:%ld: %s: %s / %s", i + 1, why, q, r);
        const mofo_problem *pr = &w->problems[i];
        CHECK(pr->kind == f.kind && pr->answer == f.c && strcmp(q, pr->query) == 0 && strcmp(r, pr->response) == 0,
              "math_train:%ld: not the world's problem %ld (kind %d)", i + 1, i, pr->kind);
        kinds[f.kind]++;
        trained[fact_key(f.kind, f.a, f.b)] = 1;
        CHECK(phrasing(ph, f.kind, q, 1) >= 0, "math_train:%ld: a phrasing too many for kind %d: %s", i + 1, f.kind, q);
    }
    for (int k = 0; k < MOFO_TASK_KINDS; k++) CHECK(kinds[k] > 0, "no training problem of kind %c", OPS[k]);
    /* val and test: the answer is the result of the question's operands under its kind; the fact
     * (from the world's worked solution) once in all of val and test and never trained on */
    lines L[2];
    const mofo_world_file ev[2] = {MOFO_WF_MATH_VAL, MOFO_WF_MATH_TEST};
    int from[2] = {w->n_train, w->n_train + w->n_val}, n[2] = {w->n_val, w->n_test};
    long leaked = 0, twice = 0;
    for (int k = 0; k < 2; k++) {
        const char *name = mofo_world_file_name(ev[k]);
        L[k] = parse_lines(&fs->f[ev[k]], name);
        CHECK(L[k].n == n[k] && n[k] > 0, "%s: %ld lines", name, L[k].n);
        for (long i = 0; i < L[k].n && i < n[k]; i++) {
            const char *p = str_field(&L[k], i, "prompt"), *a = str_field(&L[k], i, "answer");
            const mofo_problem *pr = &w->problems[from[k] + i];
            if (!p || !a) continue;
            all[n_all++] = p;
            afact f = {-1, 0, 0, 0};
            const char *why = check_task_response(pr->response, &f);
            CHECK(!why && f.kind == pr->kind, "%s:%ld: %s: %s (kind %d)", name, i + 1, why ? why : "kind", pr->response,
                  pr->kind);
            if (why) continue;
            why = check_question(p, pr->kind, &f, a);
            CHECK(!why, "%s:%ld: %s: %s -> %s", name, i + 1, why, p, a);
            CHECK(strcmp(p, pr->query) == 0 && pr->answer == f.c, "%s:%ld: not the world's problem", name, i + 1);
            CHECK(phrasing(ph, f.kind, p, 1) >= 0, "%s:%ld: a phrasing too many for kind %c: %s", name, i + 1,
                  OPS[f.kind], p);
            int key = fact_key(f.kind, f.a, f.b);
            leaked += trained[key], twice += held[key];
            held[key] = 1;
        }
    }
    /* every kind in four phrasings of its own (no phrasing serves two kinds) */
    for (int k = 0; k < MOFO_TASK_KINDS; k++) {
        CHECK(ph->n[k] == 4, "kind %c: %d phrasings", OPS[k], ph->n[k]);
        for (int j = 0; j < k; j++)
            for (int a = 0; a < ph->n[k]; a++)
                for (int b = 0; b < ph->n[j]; b++)
                    CHECK(strcmp(ph->s[k][a], ph->s[j][b]) != 0, "\"%s\" asks for %c and %c", ph->s[k][a], OPS[k],
                          OPS[j]);
    }
    CHECK(leaked == 0 && twice == 0, "%ld validation/test facts trained on, %ld asked twice", leaked, twice);
    /* pretrain: "Question: Q\nAnswer: SOLUTION" of the word problems, solutions checked */
    lines P = parse_lines(&fs->f[MOFO_WF_MATH_PRETRAIN], "math_pretrain");
    /* then the tables, then every task fact in two sentences */
    CHECK(P.n == w->n_pretrain + TABLE_LINES + 2L * n_facts && w->n_pretrain > 0, "math_pretrain: %ld lines", P.n);
    int word_kinds[MOFO_PROBLEM_KINDS] = {0};
    for (long i = 0; i < P.n && i < w->n_pretrain; i++) {
        const mofo_problem *pr = &w->problems[w->n_train + w->n_val + w->n_test + i];
        const char *t = str_field(&P, i, "text");
        char want[1024];
        snprintf(want, sizeof want, "Question: %s\nAnswer: %s", pr->query, pr->response);
        long final = -1;
        const char *why = check_solution(pr->response, &final);
        CHECK(!why && final == pr->answer, "math_pretrain:%ld: %s", i + 1, why ? why : "answer");
        CHECK(t && strcmp(t, want) == 0, "math_pretrain:%ld: %s", i + 1, t ? t : "no text");
        all[n_all++] = pr->query;
        CHECK(pr->kind >= 0 && pr->kind < MOFO_PROBLEM_KINDS, "word problem %ld: kind %d", i, pr->kind);
        if (pr->kind < 0 || pr->kind >= MOFO_PROBLEM_KINDS) continue;
        word_kinds[pr->kind]++;
        /* each kind's worked solution has its own shape */
        static const char *const MARK[MOFO_PROBLEM_KINDS] = {" + ", " - ", " * ", " / ", ", then ", "change"};
        CHECK(strstr(pr->response, MARK[pr->kind]) != NULL, "word problem %ld of kind %d: %s", i, pr->kind,
              pr->response);
    }
    for (int k = 0; k < MOFO_PROBLEM_KINDS; k++) CHECK(word_kinds[k] > 0, "no word problem of kind %d", k);
    /* the tables: exactly "A op B = C", every one correct, every task fact among them */
    long bad_facts = 0, ops[4] = {0}, untabled = 0;
    unsigned char *tabled = calloc(FACT_KEYS, 1);
    long t_end = w->n_pretrain + TABLE_LINES < P.n ? w->n_pretrain + TABLE_LINES : P.n;
    for (long i = w->n_pretrain; i < t_end; i++) {
        const char *t = str_field(&P, i, "text");
        long a, b, c;
        char op;
        int used = 0;
        if (!t || sscanf(t, "%ld %c %ld = %ld%n", &a, &op, &b, &c, &used) != 4 || t[used]) {
            bad_facts++;
            continue;
        }
        long want = op == '+' ? a + b : op == '-' ? a - b : op == '*' ? a * b : op == '/' && b && a % b == 0 ? a / b : -1;
        bad_facts += want != c || want < 0;
        const char *where = strchr(OPS, op);
        if (!where || !op) continue;
        ops[where - OPS]++;
        if (task_fact((int)(where - OPS), a, b)) tabled[fact_key((int)(where - OPS), a, b)] = 1;
    }
    int *keys = malloc((size_t)n_facts * sizeof *keys);
    task_facts(keys);
    for (int i = 0; i < n_facts; i++) untabled += !tabled[keys[i]];
    CHECK(bad_facts == 0 && ops[0] == TABLE_ADD && ops[1] == TABLE_SUB && ops[2] == TABLE_MUL && ops[3] == TABLE_MUL,
          "tables: %ld wrong, %ld + %ld - %ld * %ld /", bad_facts, ops[0], ops[1], ops[2], ops[3]);
    CHECK(untabled == 0, "%ld task facts missing from the tables", untabled);
    /* the sentences: each states one correct "A op B = C" of a task fact, every fact in exactly two
     * different sentences */
    unsigned char *said = calloc(FACT_KEYS, 1);
    const char **first_said = calloc(FACT_KEYS, sizeof *first_said);
    long bad_sentences = 0, same_twice = 0, not_twice = 0;
    for (long i = t_end; i < P.n; i++) {
        const char *t = str_field(&P, i, "text");
        int eqs = 0, key = -1;
        for (const char *p = t; p && *p; p++) {
            if (*p < '0' || *p > '9' || (p > t && p[-1] >= '0' && p[-1] <= '9')) continue;
            char *e;
            long a = strtol(p, &e, 10), b, c;
            char op;
            int used = 0;
            if (sscanf(e, " %c %ld = %ld%n", &op, &b, &c, &used) != 3 || used <= 0 || !op || !strchr(OPS, op)) continue;
            int kind = (int)(strchr(OPS, op) - OPS);
            eqs++;
            if (task_fact(kind, a, b) && apply(kind, a, b) == c) key = fact_key(kind, a, b);
            p = e + used - 1;
        }
        if (eqs != 1 || key < 0) {
            if (bad_sentences++ == 0) /* the first one told */
                CHECK(0, "math_pretrain:%ld: not one correct equation of a task fact: %s", i + 1, t ? t : "?");
            continue;
        }
        if (said[key] == 1 && first_said[key]) same_twice += strcmp(first_said[key], t) == 0;
        if (!said[key]) first_said[key] = t;
        said[key]++;
    }
    for (int i = 0; i < n_facts; i++) not_twice += said[keys[i]] != 2;
    CHECK(bad_sentences == 0 && not_twice == 0 && same_twice == 0,
          "sentences: %ld wrong, %ld facts not said twice, %ld said twice the same way", bad_sentences, not_twice,
          same_twice);
    free(said), free(first_said), free(tabled), free(keys);
    /* no query in two files, nor twice in one */
    int dups = repeats(all, n_all);
    CHECK(dups == 0 && n_all == (long)w->n_train + w->n_val + w->n_test + w->n_pretrain, "%d repeated of %ld queries",
          dups, n_all);
    free_lines(&P), free_lines(&L[0]), free_lines(&L[1]), free_lines(&tr);
    free(all), free(ph), free(trained), free(held);
}

/* The largest training set the facts allow: every (fact, phrasing) pair of the training facts once,
 * which with the held-out facts is every fact; one problem more is refused with a message. */
static void check_full_task(void) {
    int n_facts = task_facts(NULL), max_train = 4 * (n_facts - MOFO_WORLD_DEFAULT_VAL - MOFO_WORLD_DEFAULT_TEST);
    mofo_world_opts o;
    mofo_world_opts_default(&o);
    o.seed = 11, o.n_people = 1, o.n_problems = max_train, o.n_pretrain = 0;
    mofo_world w;
    mofo_err err = {0};
    CHECK(mofo_world_build(&w, &o, &err) == 0, "%d training problems: %s", max_train, err.msg);
    if (!w.problems) return;
    unsigned char *count = calloc(FACT_KEYS, 1), *held = calloc(FACT_KEYS, 1);
    int n = w.n_train + w.n_val + w.n_test, bad = 0;
    const char **q = malloc((size_t)n * sizeof *q);
    for (int i = 0; i < n; i++) {
        afact f = {-1, 0, 0, 0};
        const char *why = check_task_response(w.problems[i].response, &f);
        if (!why) why = check_question(w.problems[i].query, w.problems[i].kind, &f, NULL);
        if (why || f.kind != w.problems[i].kind) {
            if (bad++ == 0) CHECK(0, "problem %d: %s: %s", i, why ? why : "kind", w.problems[i].query);
            continue;
        }
        if (i < w.n_train) count[fact_key(f.kind, f.a, f.b)]++;
        else held[fact_key(f.kind, f.a, f.b)]++;
        q[i] = w.problems[i].query;
    }
    int *keys = malloc((size_t)n_facts * sizeof *keys), wrong = 0;
    task_facts(keys);
    for (int i = 0; i < n_facts; i++) {
        int h = held[keys[i]], t = count[keys[i]];
        wrong += !((h == 1 && t == 0) || (h == 0 && t == 4));
    }
    CHECK(bad == 0 && wrong == 0, "%d bad problems; %d facts neither held out once nor trained in 4 phrasings", bad,
          wrong);
    int dups = bad ? 0 : repeats(q, n);
    CHECK(dups == 0, "%d repeated questions", dups);
    free(keys), free(q), free(count), free(held);
    mofo_world_free(&w);
    o.n_problems = max_train + 1;
    CHECK(mofo_world_build(&w, &o, &err) == MOFO_EINVAL && strstr(err.msg, "training problems") &&
              strstr(err.msg, "facts"),
          "%d training problems: %s", max_train + 1, err.msg);
    o.n_problems = 1, o.n_val = n_facts / 2, o.n_test = n_facts - n_facts / 2;
    CHECK(mofo_world_build(&w, &o, &err) == MOFO_EINVAL && strstr(err.msg, "facts"),
          "val + test of every fact: %s", err.msg);
}

/* ---- knowledge: answers against people.jsonl and the biographies ---- */
typedef struct fact {
    const char *name;
    char val[MOFO_N_ATTR][64];
} fact;

/* the range of each numeric attribute */
static const struct {
    int attr, lo, hi;
} RANGES[] = {{MOFO_ATTR_YEAR, 1901, 1999}, {MOFO_ATTR_HOUSE, 10, 99}, {MOFO_ATTR_HEIGHT, 150, 199},
              {MOFO_ATTR_LUCKY, 10, 99}};
#define N_NUMERIC (int)(sizeof RANGES / sizeof RANGES[0])

/* the attribute asked by a person's r-th question of knowledge_gen (numeric 1) or knowledge_mc
 * (numeric 0): the attributes of that sort in their order */
static int nth_attr(int numeric, int r) {
    for (int a = 0; a < MOFO_N_ATTR; a++)
        if (mofo_world_attr_numeric(a) == numeric && r-- == 0) return a;
    return -1;
}

/* the one person s names (-1 if none or several) */
static long named(const fact *F, long n, const char *s) {
    long who = -1, k = 0;
    for (long j = 0; s && j < n; j++)
        if (F[j].name && mentions(s, F[j].name)) who = j, k++;
    return k == 1 ? who : -1;
}

/* "Question: Q\nAnswer:..." of a held-out question: Q never occurs in the training questions */
static void check_heldout_question(const char *text, const files *fs, const char *where, long i) {
    const char *q0 = text ? strstr(text, "Question: ") : NULL, *q1 = text ? strstr(text, "\nAnswer:") : NULL;
    CHECK(q0 == text && q1, "%s:%ld: \"%s\"", where, i + 1, text ? text : "?");
    if (!q0 || !q1) return;
    char *sentence = strndup(q0 + 10, (size_t)(q1 - q0 - 10));
    CHECK(sentence && *sentence && !strstr(fs->f[MOFO_WF_QA].data, sentence), "%s:%ld: \"%s\" is a training phrasing",
          where, i + 1, sentence ? sentence : "?");
    free(sentence);
}

static void check_knowledge(const files *fs, const mofo_world *w) {
    /* the attributes: 8 distinct keys, the numeric ones those with a range */
    for (int a = 0; a < MOFO_N_ATTR; a++) {
        const char *key = mofo_world_attr_name(a);
        int numeric = 0;
        for (int r = 0; r < N_NUMERIC; r++) numeric |= RANGES[r].attr == a;
        CHECK(key && *key && strcmp(key, "?") != 0 && strcmp(key, "name") != 0, "attribute %d: key \"%s\"", a, key);
        CHECK(mofo_world_attr_numeric(a) == numeric, "attribute %s: numeric %d", key, mofo_world_attr_numeric(a));
        for (int b = 0; b < a; b++) CHECK(strcmp(key, mofo_world_attr_name(b)) != 0, "attribute key %s twice", key);
    }
    CHECK(MOFO_N_ATTR == 8 && nth_attr(1, 3) >= 0 && nth_attr(1, 4) < 0 && nth_attr(0, 3) >= 0 && nth_attr(0, 4) < 0,
          "%d attributes, not 4 numeric and 4 to choose from", MOFO_N_ATTR);
    CHECK(strcmp(mofo_world_attr_name(MOFO_N_ATTR), "?") == 0 && !mofo_world_attr_numeric(-1),
          "attribute out of range");
    lines P = parse_lines(&fs->f[MOFO_WF_PEOPLE], "people");
    CHECK(P.n == w->n_people, "people: %ld lines", P.n);
    fact *F = calloc((size_t)P.n + 1, sizeof *F);
    for (long i = 0; i < P.n; i++) {
        const mofo_json *root = P.doc[i] ? mofo_json_root(P.doc[i]) : NULL;
        F[i].name = str_field(&P, i, "name");
        CHECK(root && root->count == 1 + MOFO_N_ATTR, "people:%ld: %zu keys", i + 1, root ? root->count : 0);
        for (int a = 0; a < MOFO_N_ATTR; a++) {
            const char *key = mofo_world_attr_name(a);
            const mofo_json *v = root ? mofo_json_get(root, key) : NULL;
            int64_t y = -1;
            if (mofo_world_attr_numeric(a)) { /* a JSON number in the attribute's range */
                int lo = 0, hi = -1;
                for (int r = 0; r < N_NUMERIC; r++)
                    if (RANGES[r].attr == a) lo = RANGES[r].lo, hi = RANGES[r].hi;
                int ok = v && mofo_json_int64(v, &y);
                CHECK(ok && y >= lo && y <= hi, "people:%ld: %s %lld outside %d..%d", i + 1, key, (long long)y, lo, hi);
                snprintf(F[i].val[a], sizeof F[i].val[a], "%lld", ok ? (long long)y : -1LL);
            } else {
                CHECK(v && v->type == MOFO_JSON_STRING && v->len > 0, "people:%ld: %s", i + 1, key);
                snprintf(F[i].val[a], sizeof F[i].val[a], "%s", v && v->type == MOFO_JSON_STRING ? v->str : "?");
            }
            /* the file is the world's people */
            char want[64];
            mofo_world_attr_text(&w->people[i], a, want, sizeof want);
            CHECK(strcmp(F[i].val[a], want) == 0, "people:%ld: %s %s, the world's %s", i + 1, key, F[i].val[a], want);
        }
        CHECK(F[i].name && strcmp(F[i].name, w->people[i].name) == 0, "people:%ld: name", i + 1);
        for (long j = 0; j < i; j++)
            CHECK(!F[i].name || !F[j].name || strcmp(F[i].name, F[j].name) != 0, "people: %s twice", F[i].name);
    }
    /* biographies: each names one person and states all of that person's facts (each value as
     * often as it must occur: once for itself, once more for each other fact or the name that
     * contains it, as "violin" in "violin maker" or a house number equal to the lucky one) */
    const mofo_world_file bio_files[2] = {MOFO_WF_BIOS, MOFO_WF_HELDOUT};
    const int per_person[2] = {MOFO_WORLD_BIOS_PER_PERSON, 1};
    for (int k = 0; k < 2; k++) {
        const char *name = mofo_world_file_name(bio_files[k]);
        lines B = parse_lines(&fs->f[bio_files[k]], name);
        int *count = calloc((size_t)P.n + 1, sizeof *count);
        for (long i = 0; i < B.n; i++) {
            const char *t = str_field(&B, i, "text");
            long who = named(F, P.n, t);
            CHECK(who >= 0, "%s:%ld: does not name exactly one person: %s", name, i + 1, t ? t : "?");
            if (who < 0) continue;
            count[who]++;
            for (int a = 0; a < MOFO_N_ATTR; a++) {
                const char *v = F[who].val[a];
                int need = occurrences(F[who].name, v);
                for (int b = 0; b < MOFO_N_ATTR; b++) need += occurrences(F[who].val[b], v);
                CHECK(occurrences(t, v) >= need, "%s:%ld: %s %s missing from \"%s\"", name, i + 1,
                      mofo_world_attr_name(a), v, t);
            }
        }
        for (long j = 0; j < P.n; j++)
            CHECK(count[j] == per_person[k], "%s: %s has %d biographies", name, F[j].name, count[j]);
        free(count);
        free_lines(&B);
    }
    /* training questions: "Question: Q\nAnswer: A\n" with A one of the named person's facts, every
     * fact in 4 different questions */
    lines Q = parse_lines(&fs->f[MOFO_WF_QA], "knowledge_qa");
    CHECK(Q.n == 4L * MOFO_N_ATTR * P.n, "knowledge_qa: %ld lines", Q.n);
    int(*answered)[MOFO_N_ATTR] = calloc((size_t)P.n + 1, sizeof *answered);
    const char **texts = malloc(((size_t)Q.n + 1) * sizeof *texts);
    long n_texts = 0;
    for (long i = 0; i < Q.n; i++) {
        const char *t = str_field(&Q, i, "text"), *ans = t ? strstr(t, "\nAnswer: ") : NULL;
        long who = named(F, P.n, t);
        int ok = ans && who >= 0 && strncmp(t, "Question: ", 10) == 0;
        size_t n_ans = ans ? strlen(ans + 9) : 0;
        ok = ok && n_ans > 1 && ans[9 + n_ans - 1] == '\n';
        for (int a = 0; ok && a < MOFO_N_ATTR; a++)
            if (strlen(F[who].val[a]) == n_ans - 1 && strncmp(ans + 9, F[who].val[a], n_ans - 1) == 0)
                ok = 2, answered[who][a]++;
        CHECK(ok == 2, "knowledge_qa:%ld: %s", i + 1, t ? t : "?");
        if (t) texts[n_texts++] = t;
    }
    for (long j = 0; j < P.n; j++)
        for (int a = 0; a < MOFO_N_ATTR; a++) {
            int same = 0; /* facts of this person with the same value (a house number equal to the lucky one) */
            for (int b = 0; b < MOFO_N_ATTR; b++) same += strcmp(F[j].val[a], F[j].val[b]) == 0;
            CHECK(answered[j][a] == 4 * same, "knowledge_qa: %s's %s in %d questions", F[j].name,
                  mofo_world_attr_name(a), answered[j][a]);
        }
    int dups = repeats(texts, n_texts);
    CHECK(dups == 0, "knowledge_qa: %d repeated lines", dups);
    free(texts), free(answered);
    /* gen: each person's numeric facts in attribute order, in a held-out phrasing */
    lines G = parse_lines(&fs->f[MOFO_WF_KNOW_GEN], "knowledge_gen");
    CHECK(G.n == (long)N_NUMERIC * P.n, "knowledge_gen: %ld lines", G.n);
    int *asked = calloc((size_t)P.n + 1, sizeof *asked);
    for (long i = 0; i < G.n; i++) {
        const char *p = str_field(&G, i, "prompt"), *a = str_field(&G, i, "answer");
        long who = named(F, P.n, p);
        int attr = who >= 0 ? nth_attr(1, asked[who]++) : -1;
        CHECK(p && a && attr >= 0 && strcmp(a, F[who].val[attr]) == 0, "knowledge_gen:%ld: %s -> %s (%s)", i + 1,
              p ? p : "?", a ? a : "?", attr >= 0 ? F[who].val[attr] : "no such question");
        CHECK(p && strlen(p) > 8 && strcmp(p + strlen(p) - 8, "\nAnswer:") == 0, "knowledge_gen:%ld: prompt", i + 1);
        check_heldout_question(p, fs, "knowledge_gen", i);
    }
    for (long j = 0; j < P.n; j++)
        CHECK(asked[j] == N_NUMERIC, "knowledge_gen: %s asked %d times", F[j].name, asked[j]);
    /* mc: each person's other facts in attribute order; four distinct choices, gold the named
     * person's fact, the others no fact of that person; held-out phrasing */
    lines M = parse_lines(&fs->f[MOFO_WF_KNOW_MC], "knowledge_mc");
    CHECK(M.n == (long)(MOFO_N_ATTR - N_NUMERIC) * P.n, "knowledge_mc: %ld lines", M.n);
    long gold_at[4] = {0};
    memset(asked, 0, ((size_t)P.n + 1) * sizeof *asked);
    for (long i = 0; i < M.n; i++) {
        const char *ctx = str_field(&M, i, "context");
        const mofo_json *root = M.doc[i] ? mofo_json_root(M.doc[i]) : NULL;
        const mofo_json *ch = root ? mofo_json_get(root, "choices") : NULL, *g = root ? mofo_json_get(root, "gold") : NULL;
        int64_t gold = -1;
        CHECK(ch && ch->type == MOFO_JSON_ARRAY && ch->count == 4 && g && mofo_json_int64(g, &gold) && gold >= 0 &&
                  gold < 4,
              "knowledge_mc:%ld: choices/gold", i + 1);
        if (!ctx || !ch || ch->type != MOFO_JSON_ARRAY || ch->count != 4 || gold < 0 || gold > 3) continue;
        gold_at[gold]++;
        long who = named(F, P.n, ctx);
        CHECK(who >= 0 && strlen(ctx) > 9 && strcmp(ctx + strlen(ctx) - 9, "\nAnswer: ") == 0,
              "knowledge_mc:%ld: context \"%s\"", i + 1, ctx);
        check_heldout_question(ctx, fs, "knowledge_mc", i);
        if (who < 0) continue;
        int attr = nth_attr(0, asked[who]++);
        CHECK(attr >= 0, "knowledge_mc:%ld: %s asked too often", i + 1, F[who].name);
        int c = 0;
        for (const mofo_json *e = ch->child; e; e = e->next, c++) {
            int is_fact = 0;
            for (int a = 0; a < MOFO_N_ATTR; a++) is_fact |= e->type == MOFO_JSON_STRING && strcmp(e->str, F[who].val[a]) == 0;
            CHECK(is_fact == (c == gold), "knowledge_mc:%ld: choice %d \"%s\"", i + 1, c, e->str ? e->str : "?");
            if (c == gold && attr >= 0)
                CHECK(e->str && strcmp(e->str, F[who].val[attr]) == 0, "knowledge_mc:%ld: gold \"%s\", %s's %s is %s",
                      i + 1, e->str ? e->str : "?", F[who].name, mofo_world_attr_name(attr), F[who].val[attr]);
            for (const mofo_json *d = ch->child; d != e; d = d->next)
                CHECK(d->str && e->str && strcmp(d->str, e->str) != 0, "knowledge_mc:%ld: choice twice", i + 1);
        }
    }
    for (long j = 0; j < P.n; j++)
        CHECK(asked[j] == MOFO_N_ATTR - N_NUMERIC, "knowledge_mc: %s asked %d times", F[j].name, asked[j]);
    for (int k = 0; k < 4; k++) CHECK(gold_at[k] > 0, "gold is never %d", k);
    free(asked);
    free_lines(&M);
    free_lines(&G);
    free_lines(&Q);
    free(F);
    free_lines(&P);
}

/* ---- the command ---- */
static char *run(const char *cmd, int *status) { return run_capture(tmpdir, cmd, 1, status); }

static void check_command(void) {
    mofo_world_opts o;
    mofo_world_opts_default(&o);
    o.seed = 3, o.n_people = 12, o.n_problems = 40, o.n_pretrain = 9;
    files mem;
    render_all(&o, &mem, NULL);
    char cmd[1024], path[600];
    int st;
    for (int k = 0; k < 2; k++) {
        /* the second run writes over the first run's files (and into a folder it creates) */
        snprintf(cmd, sizeof cmd, "'%s' world --out '%s/a/b' --seed 3 --people 12 --problems=40 --pretrain 9", MOFO_BIN,
                 tmpdir);
        char *out = run(cmd, &st);
        CHECK(st == 0 && out && strstr(out, "math_train.jsonl: 40 lines") && strstr(out, "math_val.jsonl: 100 lines") &&
                  strstr(out, "math_test.jsonl: 200 lines"),
              "run %d: status %d: %s", k, st, out ? out : "");
        free(out);
        for (int f = 0; f < MOFO_WORLD_N_FILES; f++) {
            snprintf(path, sizeof path, "%s/a/b/%s", tmpdir, mofo_world_file_name((mofo_world_file)f));
            size_t len = 0;
            char *data = slurp(path, &len);
            CHECK(data && len == mem.f[f].len && memcmp(data, mem.f[f].data, len) == 0,
                  "%s differs from the library's rendering", path);
            free(data);
        }
        /* world.json: the resolved options, read back equal */
        snprintf(path, sizeof path, "%s/a/b/world.json", tmpdir);
        mofo_world_opts back;
        mofo_err err = {0};
        CHECK(mofo_world_opts_read(path, &back, &err) == 0, "%s", err.msg);
        CHECK(back.seed == 3 && back.n_people == 12 && back.n_problems == 40 && back.n_val == 100 &&
                  back.n_test == 200 && back.n_pretrain == 9,
              "world.json: seed %llu people %d problems %d val %d test %d pretrain %d", (unsigned long long)back.seed,
              back.n_people, back.n_problems, back.n_val, back.n_test, back.n_pretrain);
    }
    free_files(&mem);
    /* errors: a message and a non-zero status */
    struct {
        const char *args, *msg;
        int status;
    } bad[] = {
        {"--out '%s/x' --bogus 1", "--bogus", 2},
        {"--seed 1", "--out is required", 2},
        {"--out '%s/x' --people 0", "--people", 2},
        {"--out '%s/x' --people 20000", "--people", 2},
        {"--out '%s/x' --problems nine", "--problems", 2},
        {"--out '%s/x' --seed -4", "--seed", 2},
        {"--out '%s/x' --pretrain -1", "--pretrain", 2},
        {"--out '%s/x' --problems 5000", "training problems", 1}, /* more than the facts left allow */
        {"--out '%s/x' --val 900", "arithmetic facts", 1},         /* nothing left to train on */
        {"--out '%s/out.txt/sub'", "cannot create folder", 1},    /* a file where a folder must be */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char args[512];
        snprintf(args, sizeof args, bad[i].args, tmpdir);
        snprintf(cmd, sizeof cmd, "'%s' world %s", MOFO_BIN, args);
        char *out = run(cmd, &st);
        CHECK(st == bad[i].status && out && strstr(out, bad[i].msg), "'%s': status %d, output: %s", args, st,
              out ? out : "");
        free(out);
    }
    snprintf(path, sizeof path, "%s/x", tmpdir);
    CHECK(access(path, F_OK) != 0, "a failed run created %s", path);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mofo_test_world_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    /* determinism */
    mofo_world_opts o;
    mofo_world_opts_default(&o);
    o.seed = 7, o.n_people = 60, o.n_problems = 300, o.n_pretrain = 50;
    files a, b, c;
    mofo_world w;
    if (render_all(&o, &a, &w)) return CHECK_DONE();
    render_all(&o, &b, NULL);
    o.seed = 8;
    render_all(&o, &c, NULL);
    for (int f = 0; f < MOFO_WORLD_N_FILES; f++) {
        const char *name = mofo_world_file_name((mofo_world_file)f);
        CHECK(a.f[f].len > 0 && a.f[f].len == b.f[f].len && memcmp(a.f[f].data, b.f[f].data, a.f[f].len) == 0,
              "%s: two renderings of seed 7 differ", name);
        CHECK(a.f[f].len != c.f[f].len || memcmp(a.f[f].data, c.f[f].data, a.f[f].len) != 0,
              "%s: seeds 7 and 8 give the same bytes", name);
    }
    CHECK(w.n_val == 100 && w.n_test == 200 && MOFO_WORLD_DEFAULT_VAL == 100 && MOFO_WORLD_DEFAULT_TEST == 200,
          "val %d, test %d", w.n_val, w.n_test);
    /* the project's readers */
    char tpath[512];
    snprintf(tpath, sizeof tpath, "%s/tokenizers/gpt2-style.json", MOFO_FIXTURES);
    mofo_tokenizer *tok = NULL;
    mofo_err err = {0};
    const char *cfg = "{\"eos_token\": \"<|endoftext|>\", \"bos_token\": \"<|endoftext|>\", \"add_bos_token\": false}";
    CHECK(mofo_tokenizer_load_file(&tok, tpath, &err) == 0, "%s", err.msg);
    if (tok) {
        CHECK(mofo_tokenizer_apply_config(tok, cfg, strlen(cfg), NULL, 0, "gpt2-style", &err) == 0, "%s", err.msg);
        check_loads(&a, tok);
        mofo_tokenizer_free(tok);
    }
    o.seed = 7;
    check_math(&a, &w);
    check_knowledge(&a, &w);
    check_full_task();
    /* the test set follows from the seed alone (n_test takes its first problems), the validation
     * set from the seed and n_test: fewer training, validation or test problems change neither */
    for (int k = 0; k < 2; k++) {
        mofo_world s;
        mofo_world_opts so = o;
        so.n_problems = 20, so.n_val = k ? 0 : 10, so.n_test = k ? 50 : -1, so.n_pretrain = 0;
        CHECK(mofo_world_build(&s, &so, &err) == 0, "%s", err.msg);
        int diff = 0;
        for (int i = 0; s.problems && i < s.n_test; i++)
            diff += strcmp(s.problems[s.n_train + s.n_val + i].query, w.problems[w.n_train + w.n_val + i].query) != 0;
        for (int i = 0; s.problems && i < s.n_val; i++)
            diff += strcmp(s.problems[s.n_train + i].query, w.problems[w.n_train + i].query) != 0;
        CHECK(s.problems && diff == 0, "val %d, test %d: %d validation/test problems moved", s.n_val, s.n_test, diff);
        mofo_world_free(&s);
    }
    /* names: distinct people; in a world of at most 128 people (the number of surnames) no first
     * name and no surname repeats */
    static const int sizes[] = {1, 128, 129, 400};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int n = sizes[k];
        mofo_world u;
        mofo_world_opts uo = o;
        uo.seed = 5, uo.n_people = n, uo.n_problems = 10;
        CHECK(mofo_world_build(&u, &uo, &err) == 0, "%s", err.msg);
        int same_pair = 0, same_first = 0, same_last = 0;
        for (int i = 0; i < u.n_people; i++)
            for (int j = i + 1; j < u.n_people; j++) {
                same_pair += strcmp(u.people[i].name, u.people[j].name) == 0;
                same_first += u.people[i].first == u.people[j].first;
                same_last += u.people[i].last == u.people[j].last;
            }
        CHECK(same_pair == 0, "%d people: %d repeated names", n, same_pair);
        if (n <= 128) CHECK(same_first == 0 && same_last == 0, "%d people: %d first names and %d surnames shared", n,
                            same_first, same_last);
        mofo_world_free(&u);
    }
    /* task kinds: each kind's response has its operation; every kind occurs */
    int kinds[MOFO_TASK_KINDS] = {0};
    for (int i = 0; i < w.n_train + w.n_val + w.n_test; i++) {
        int k = w.problems[i].kind;
        CHECK(k >= 0 && k < MOFO_TASK_KINDS, "problem %d: kind %d", i, k);
        if (k < 0 || k >= MOFO_TASK_KINDS) continue;
        kinds[k] += i < w.n_train;
        char mark[4] = {' ', OPS[k], ' ', 0};
        CHECK(strstr(w.problems[i].response, mark) != NULL, "problem %d of kind %d: %s", i, k, w.problems[i].response);
    }
    for (int k = 0; k < MOFO_TASK_KINDS; k++) CHECK(kinds[k] > 0, "no training problem of kind %d", k);
    /* rendering by kinds: the kinds' files partition the full file (math_pretrain: its word
     * problems, the tables and sentences coming with every kind) */
    const mofo_world_file by_kind[3] = {MOFO_WF_MATH_VAL, MOFO_WF_MATH_TEST, MOFO_WF_MATH_PRETRAIN};
    for (int f = 0; f < 3; f++) {
        long total = 0, none = -1;
        mofo_strbuf zero = {0};
        CHECK(mofo_world_render_kinds(&w, by_kind[f], 0, &zero, &none, &err) == 0, "%s", err.msg);
        mofo_sb_free(&zero);
        for (int k = 0; k < MOFO_PROBLEM_KINDS; k++) {
            long nk = 0;
            mofo_strbuf one = {0};
            CHECK(mofo_world_render_kinds(&w, by_kind[f], 1u << k, &one, &nk, &err) == 0, "%s", err.msg);
            CHECK(k < MOFO_TASK_KINDS || by_kind[f] == MOFO_WF_MATH_PRETRAIN || nk == 0, "%s: %ld problems of kind %d",
                  mofo_world_file_name(by_kind[f]), nk, k);
            total += nk - none;
            mofo_sb_free(&one);
        }
        CHECK(total == a.lines[by_kind[f]] - none, "the kinds' %s files hold %ld of %ld problems",
              mofo_world_file_name(by_kind[f]), total, a.lines[by_kind[f]] - none);
    }
    /* bad options */
    mofo_world w2;
    o.n_people = 0;
    CHECK(mofo_world_build(&w2, &o, &err) == MOFO_EINVAL && strstr(err.msg, "people"), "%s", err.msg);
    o.n_people = mofo_world_max_people() + 1;
    CHECK(mofo_world_build(&w2, &o, &err) == MOFO_EINVAL, "too many people accepted");
    o.n_people = 5, o.n_problems = 0;
    CHECK(mofo_world_build(&w2, &o, &err) == MOFO_EINVAL && strstr(err.msg, "problems"), "%s", err.msg);
    mofo_world_free(&w);
    free_files(&a), free_files(&b), free_files(&c);

    check_command();
    char rm[400];
    snprintf(rm, sizeof rm, "rm -rf '%s'", tmpdir);
    if (system(rm) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return CHECK_DONE();
}

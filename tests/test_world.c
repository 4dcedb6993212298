/* The synthetic world (src/demo/world.c) and `mofo world`: the same seed gives the same bytes and
 * another seed other bytes; every line loads with the project's readers in its intended format;
 * answers agree with the facts (people.jsonl, read back from the file, is the truth here) and every
 * step of every worked solution is recomputed; held-out phrasings stay out of the training text;
 * the command writes what the library renders and fails with a message on bad flags or folders. */
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

/* ---- word problems: every "X op Y = Z" recomputed, "#### N" is the last result ---- */
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

static void check_math(const files *fs, const mofo_world *w) {
    lines tr = parse_lines(&fs->f[MOFO_WF_MATH_TRAIN], "math_train");
    CHECK(tr.n == w->n_train, "%ld training problems", tr.n);
    for (long i = 0; i < tr.n; i++) {
        const char *q = str_field(&tr, i, "query"), *r = str_field(&tr, i, "response");
        if (!q || !r) continue;
        long final = -1;
        const char *why = check_solution(r, &final);
        CHECK(!why, "math_train:%ld: %s: %s", i + 1, why, r);
        CHECK(final == w->problems[i].answer && strcmp(q, w->problems[i].query) == 0, "math_train:%ld", i + 1);
    }
    free_lines(&tr);
    /* val and test: the answer is the one the worked solution of the same problem reaches */
    const mofo_world_file ev[2] = {MOFO_WF_MATH_VAL, MOFO_WF_MATH_TEST};
    int from[2] = {w->n_train, w->n_train + w->n_val}, n[2] = {w->n_val, w->n_test};
    for (int k = 0; k < 2; k++) {
        lines L = parse_lines(&fs->f[ev[k]], mofo_world_file_name(ev[k]));
        CHECK(L.n == n[k] && n[k] > 0, "%s: %ld lines", mofo_world_file_name(ev[k]), L.n);
        for (long i = 0; i < L.n && i < n[k]; i++) {
            const char *p = str_field(&L, i, "prompt"), *a = str_field(&L, i, "answer");
            const mofo_problem *pr = &w->problems[from[k] + i];
            long final = -1;
            const char *why = check_solution(pr->response, &final);
            CHECK(!why, "%s:%ld: %s", mofo_world_file_name(ev[k]), i + 1, why);
            char num[32];
            snprintf(num, sizeof num, "%ld", final);
            CHECK(p && a && strcmp(p, pr->query) == 0 && strcmp(a, num) == 0, "%s:%ld: answer %s, solution %s",
                  mofo_world_file_name(ev[k]), i + 1, a ? a : "?", num);
        }
        free_lines(&L);
    }
    /* pretrain: "Question: Q\nAnswer: SOLUTION" of the problems after test, solutions checked */
    lines P = parse_lines(&fs->f[MOFO_WF_MATH_PRETRAIN], "math_pretrain");
    /* then the tables: 21*21 sums, 31*32/2 differences, 81 products and 81 quotients */
    const long tables = 21 * 21 + 31 * 32 / 2 + 2 * 81;
    CHECK(P.n == w->n_pretrain + tables && w->n_pretrain > 0, "math_pretrain: %ld lines", P.n);
    long bad_facts = 0, ops[4] = {0};
    for (long i = w->n_pretrain; i < P.n; i++) {
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
        const char *where = strchr("+-*/", op);
        if (where) ops[where - "+-*/"]++;
    }
    CHECK(bad_facts == 0 && ops[0] == 441 && ops[1] == 496 && ops[2] == 81 && ops[3] == 81,
          "tables: %ld wrong, %ld + %ld - %ld * %ld /", bad_facts, ops[0], ops[1], ops[2], ops[3]);
    for (long i = 0; i < P.n && i < w->n_pretrain; i++) {
        const mofo_problem *pr = &w->problems[w->n_train + w->n_val + w->n_test + i];
        const char *t = str_field(&P, i, "text");
        char want[1024];
        snprintf(want, sizeof want, "Question: %s\nAnswer: %s", pr->query, pr->response);
        long final = -1;
        const char *why = check_solution(pr->response, &final);
        CHECK(!why && final == pr->answer, "math_pretrain:%ld: %s", i + 1, why ? why : "answer");
        CHECK(t && strcmp(t, want) == 0, "math_pretrain:%ld: %s", i + 1, t ? t : "no text");
    }
    free_lines(&P);
    /* no problem in two splits (nor twice in one) */
    int total = w->n_train + w->n_val + w->n_test + w->n_pretrain, dups = 0;
    for (int i = 0; i < total; i++)
        for (int j = i + 1; j < total; j++) dups += strcmp(w->problems[i].query, w->problems[j].query) == 0;
    CHECK(dups == 0, "%d repeated problems", dups);
}

/* ---- knowledge: answers against people.jsonl and the biographies ---- */
static const char *const ATTR_KEY[MOFO_N_ATTR] = {"birthplace", "birth_year", "occupation", "favourite_food"};

typedef struct fact {
    const char *name;
    char val[MOFO_N_ATTR][64];
} fact;

static void check_knowledge(const files *fs, int n_people) {
    lines P = parse_lines(&fs->f[MOFO_WF_PEOPLE], "people");
    CHECK(P.n == n_people, "people: %ld lines", P.n);
    fact *F = calloc((size_t)P.n + 1, sizeof *F);
    for (long i = 0; i < P.n; i++) {
        F[i].name = str_field(&P, i, "name");
        for (int a = 0; a < MOFO_N_ATTR; a++) {
            const mofo_json *v = P.doc[i] ? mofo_json_get(mofo_json_root(P.doc[i]), ATTR_KEY[a]) : NULL;
            int64_t y;
            if (a == MOFO_ATTR_YEAR) {
                CHECK(v && mofo_json_int64(v, &y) && y >= 1900 && y < 2000, "people:%ld: birth_year", i + 1);
                snprintf(F[i].val[a], sizeof F[i].val[a], "%lld", v && mofo_json_int64(v, &y) ? (long long)y : -1LL);
            } else {
                CHECK(v && v->type == MOFO_JSON_STRING && v->len > 0, "people:%ld: %s", i + 1, ATTR_KEY[a]);
                snprintf(F[i].val[a], sizeof F[i].val[a], "%s", v && v->type == MOFO_JSON_STRING ? v->str : "?");
            }
        }
        for (long j = 0; j < i; j++)
            CHECK(!F[i].name || !F[j].name || strcmp(F[i].name, F[j].name) != 0, "people: %s twice", F[i].name);
    }
    /* biographies: each names one person and states all of that person's facts */
    const mofo_world_file bio_files[2] = {MOFO_WF_BIOS, MOFO_WF_HELDOUT};
    const int per_person[2] = {MOFO_WORLD_BIOS_PER_PERSON, 1};
    for (int k = 0; k < 2; k++) {
        lines B = parse_lines(&fs->f[bio_files[k]], mofo_world_file_name(bio_files[k]));
        int *count = calloc((size_t)P.n + 1, sizeof *count);
        for (long i = 0; i < B.n; i++) {
            const char *t = str_field(&B, i, "text");
            long who = -1, n_named = 0;
            for (long j = 0; t && j < P.n; j++)
                if (F[j].name && mentions(t, F[j].name)) who = j, n_named++;
            CHECK(n_named == 1, "%s:%ld: names %ld people", mofo_world_file_name(bio_files[k]), i + 1, n_named);
            if (who < 0) continue;
            count[who]++;
            for (int a = 0; a < MOFO_N_ATTR; a++)
                CHECK(strstr(t, F[who].val[a]) != NULL, "%s:%ld: %s missing from \"%s\"",
                      mofo_world_file_name(bio_files[k]), i + 1, F[who].val[a], t);
        }
        for (long j = 0; j < P.n; j++)
            CHECK(count[j] == per_person[k], "%s: %s has %d biographies", mofo_world_file_name(bio_files[k]),
                  F[j].name, count[j]);
        free(count);
        free_lines(&B);
    }
    /* training questions: "Question: Q\nAnswer: A" with A one of the named person's facts */
    lines Q = parse_lines(&fs->f[MOFO_WF_QA], "knowledge_qa");
    for (long i = 0; i < Q.n; i++) {
        const char *t = str_field(&Q, i, "text"), *ans = t ? strstr(t, "\nAnswer: ") : NULL;
        long who = -1;
        for (long j = 0; t && j < P.n; j++)
            if (F[j].name && mentions(t, F[j].name)) who = j;
        int ok = ans && who >= 0 && strncmp(t, "Question: ", 10) == 0;
        for (int a = 0; ok && a < MOFO_N_ATTR; a++) ok = strcmp(ans + 9, F[who].val[a]) == 0 ? 2 : ok;
        CHECK(ok == 2, "knowledge_qa:%ld: %s", i + 1, t ? t : "?");
    }
    /* gen: birth years in a held-out phrasing */
    lines G = parse_lines(&fs->f[MOFO_WF_KNOW_GEN], "knowledge_gen");
    CHECK(G.n == P.n, "knowledge_gen: %ld lines", G.n);
    for (long i = 0; i < G.n; i++) {
        const char *p = str_field(&G, i, "prompt"), *a = str_field(&G, i, "answer");
        long who = -1;
        for (long j = 0; p && j < P.n; j++)
            if (F[j].name && mentions(p, F[j].name)) who = j;
        CHECK(p && a && who >= 0 && strcmp(a, F[who].val[MOFO_ATTR_YEAR]) == 0, "knowledge_gen:%ld", i + 1);
        /* the question's sentence never occurs in the training questions */
        const char *q0 = p ? strstr(p, "Question: ") : NULL, *q1 = p ? strstr(p, "\nAnswer:") : NULL;
        if (q0 && q1) {
            char *sentence = strndup(q0 + 10, (size_t)(q1 - q0 - 10));
            CHECK(sentence && !strstr(fs->f[MOFO_WF_QA].data, sentence), "knowledge_gen:%ld: \"%s\" is a training phrasing",
                  i + 1, sentence ? sentence : "?");
            free(sentence);
        }
    }
    /* mc: four distinct choices, gold the named person's fact, the others not facts of that person */
    lines M = parse_lines(&fs->f[MOFO_WF_KNOW_MC], "knowledge_mc");
    CHECK(M.n == 3 * P.n, "knowledge_mc: %ld lines", M.n);
    long gold_at[4] = {0};
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
        long who = -1;
        for (long j = 0; j < P.n; j++)
            if (F[j].name && mentions(ctx, F[j].name)) who = j;
        CHECK(who >= 0 && strncmp(ctx, "Question: ", 10) == 0 && strlen(ctx) > 9 &&
                  strcmp(ctx + strlen(ctx) - 9, "\nAnswer: ") == 0,
              "knowledge_mc:%ld: context \"%s\"", i + 1, ctx);
        if (who < 0) continue;
        int c = 0;
        for (const mofo_json *e = ch->child; e; e = e->next, c++) {
            int is_fact = 0;
            for (int a = 0; a < MOFO_N_ATTR; a++) is_fact |= e->type == MOFO_JSON_STRING && strcmp(e->str, F[who].val[a]) == 0;
            CHECK(is_fact == (c == gold), "knowledge_mc:%ld: choice %d \"%s\"", i + 1, c, e->str ? e->str : "?");
            for (const mofo_json *d = ch->child; d != e; d = d->next)
                CHECK(d->str && e->str && strcmp(d->str, e->str) != 0, "knowledge_mc:%ld: choice twice", i + 1);
        }
    }
    for (int k = 0; k < 4; k++) CHECK(gold_at[k] > 0, "gold is never %d", k);
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
        CHECK(st == 0 && out && strstr(out, "math_train.jsonl: 40 lines"), "run %d: status %d: %s", k, st, out ? out : "");
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
        CHECK(back.seed == 3 && back.n_people == 12 && back.n_problems == 40 && back.n_val == 4 && back.n_test == 8 &&
                  back.n_pretrain == 9,
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
        {"--out '%s/x' --people 5000", "--people", 2},
        {"--out '%s/x' --problems nine", "--problems", 2},
        {"--out '%s/x' --seed -4", "--seed", 2},
        {"--out '%s/x' --pretrain -1", "--pretrain", 2},
        {"--out '%s/out.txt/sub'", "cannot create folder", 1}, /* a file where a folder must be */
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
    CHECK(w.n_val == 30 && w.n_test == 60, "val %d, test %d", w.n_val, w.n_test);
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
    check_math(&a, &w);
    check_knowledge(&a, o.n_people);
    /* names: distinct people; in a world of at most 32 people (the number of first names and of
     * surnames) no first name and no surname repeats */
    for (int n = 1; n <= 64; n += 31) {
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
        if (n <= 32) CHECK(same_first == 0 && same_last == 0, "%d people: %d first names and %d surnames shared", n,
                           same_first, same_last);
        mofo_world_free(&u);
    }
    /* problem kinds: each kind's worked solution has its own shape; every kind occurs */
    int kinds[MOFO_PROBLEM_KINDS] = {0};
    for (int i = 0; i < w.n_train; i++) kinds[w.problems[i].kind]++;
    for (int k = 0; k < MOFO_PROBLEM_KINDS; k++) CHECK(kinds[k] > 0, "no problem of kind %d", k);
    for (int i = 0; i < w.n_train; i++) {
        const char *r = w.problems[i].response;
        static const char *const MARK[MOFO_PROBLEM_KINDS] = {" + ", " - ", " * ", " / ", ", then ", "change"};
        CHECK(strstr(r, MARK[w.problems[i].kind]) != NULL, "problem %d of kind %d: %s", i, w.problems[i].kind, r);
    }
    /* rendering by kinds: the kinds' files partition the full file */
    long total = 0;
    for (int k = 0; k < MOFO_PROBLEM_KINDS; k++) {
        long nk = 0;
        mofo_strbuf one = {0};
        CHECK(mofo_world_render_kinds(&w, MOFO_WF_MATH_TEST, 1u << k, &one, &nk, &err) == 0, "%s", err.msg);
        total += nk;
        mofo_sb_free(&one);
    }
    CHECK(total == w.n_test, "the kinds' test files hold %ld of %d problems", total, w.n_test);
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

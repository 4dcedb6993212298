/* mofo eval: GSM8K extraction and normalisation cases; multiple-choice acc/acc_norm and perplexity
 * against log-likelihoods computed here from the model's logits (log-softmax by hand, tokenization
 * split as lm-evaluation-harness does); generation with stop strings; error cases with FILE:LINE,
 * through the library and the command. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "check.h"
#include "run_cmd.h"
#include "eval/eval.h"
#include "model/infer.h"
#include "model/model.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

static char tmpdir[256];

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) fputs(text, f), fclose(f);
}

static char *run(const char *cmd, int *status) { return run_capture(tmpdir, cmd, 1, status); }

/* sum over positions t >= from of log softmax(logits[t-1])[ids[t]], from one forward without targets */
static double ref_ll(mofo_model *m, const int *ids, int n, int from) {
    mofo_err err;
    if (mofo_model_forward(m, ids, NULL, 1, n - 1, NULL, &err)) return NAN;
    int V = m->cfg.V;
    double s = 0;
    for (int t = from; t < n; t++) {
        const float *lg = m->a.logits + (size_t)(t - 1) * V;
        double mx = lg[0], z = 0;
        for (int v = 1; v < V; v++) mx = lg[v] > mx ? lg[v] : mx;
        for (int v = 0; v < V; v++) z += exp(lg[v] - mx);
        s += lg[ids[t]] - mx - log(z);
    }
    return s;
}

static void test_gsm8k(void) {
    static const struct {
        const char *in, *want;
    } norm[] = {{"$1,000.", "1000"}, {"#### 72", "72"}, {"so the total is #### 1,234", "1234"}, {" 18 ", "18"},
                {"-3.", "-3"},       {"3.50", "3.50"}, {"$5", "5"},  {"a #### b #### 7.", "7"}, {"ABC", "abc"}};
    for (size_t i = 0; i < sizeof norm / sizeof norm[0]; i++) {
        char out[64];
        mofo_gsm8k_normalize(norm[i].in, strlen(norm[i].in), out, sizeof out);
        CHECK(strcmp(out, norm[i].want) == 0, "normalize '%s' -> '%s', want '%s'", norm[i].in, out, norm[i].want);
    }
    static const struct {
        const char *in, *strict, *flex; /* NULL: no match */
    } ex[] = {
        {"She pays $1,000. #### 1,000.", "1,000.", "1,000."},
        {"The answer is 42", NULL, "42"},
        {"5-3", NULL, "-3"},
        {"#### -7 apples, then 8", "-7", "8"},
        {"#### x then #### 12", "12", "12"},
        {"no number here", NULL, NULL},
        {"costs $2 each", NULL, "$2"},
        {"wait...", NULL, "..."},
        {"-5 apples", NULL, "-5"},
    };
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
        size_t a = 0, b = 0, n = strlen(ex[i].in);
        int got = mofo_gsm8k_strict(ex[i].in, n, &a, &b);
        CHECK(got == (ex[i].strict != NULL) && (!got || (b - a == strlen(ex[i].strict) &&
                                                         memcmp(ex[i].in + a, ex[i].strict, b - a) == 0)),
              "strict '%s': %d '%.*s'", ex[i].in, got, (int)(b - a), ex[i].in + a);
        got = mofo_gsm8k_flexible(ex[i].in, n, &a, &b);
        CHECK(got == (ex[i].flex != NULL) &&
                  (!got || (b - a == strlen(ex[i].flex) && memcmp(ex[i].in + a, ex[i].flex, b - a) == 0)),
              "flexible '%s': %d '%.*s'", ex[i].in, got, (int)(b - a), ex[i].in + a);
    }
}

/* ids of context and context+choice as lm-eval splits them: trailing spaces moved to the choice */
static int split_ids(const mofo_tokenizer *tok, const char *ctx, const char *choice, int *seq, int *n_ctx) {
    size_t cl = strlen(ctx);
    while (cl && ctx[cl - 1] == ' ') cl--;
    char whole[512];
    snprintf(whole, sizeof whole, "%s%s", ctx, choice);
    mofo_ids c = {0}, w = {0};
    mofo_tokenizer_encode(tok, ctx, cl, 0, &c, NULL);
    mofo_tokenizer_encode(tok, whole, strlen(whole), 0, &w, NULL);
    for (size_t i = 0; i < w.len; i++) seq[i] = w.ids[i];
    *n_ctx = (int)c.len;
    int n = (int)w.len;
    mofo_ids_free(&c);
    mofo_ids_free(&w);
    return n;
}

int main(void) {
    test_gsm8k();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mofo-test-eval-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    mofo_err err = {0};
    char src[512], dir[512], path[700], cmd[4000];
    snprintf(src, sizeof src, "%s/tokenizers/llama3-style.json", MOFO_FIXTURES);
    mofo_tokenizer *tok = NULL;
    CHECK(mofo_tokenizer_load_file(&tok, src, &err) == 0, "%s", err.msg);
    if (!tok) return CHECK_DONE();
    mofo_model_config c;
    mofo_config_preset(&c, "llama", "tiny", &err);
    c.V = mofo_tokenizer_vocab_size(tok);
    mofo_model *m = NULL;
    CHECK(mofo_model_create(&m, &c, 11, 0.3f, &err) == 0, "%s", err.msg);
    if (!m) return CHECK_DONE();
    snprintf(dir, sizeof dir, "%s/model", tmpdir);
    CHECK(mofo_model_save(m, dir, 0, &err) == 0, "%s", err.msg);
    char *tj = NULL;
    size_t tl = 0;
    CHECK(mofo_read_file(src, &tj, &tl, &err) == 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "wb");
    if (f && tj) fwrite(tj, 1, tl, f);
    if (f) fclose(f);
    free(tj);

    /* ---- multiple choice: acc and acc_norm from log-likelihoods computed here ---- */
    static const char *ctx[4] = {"The cat sat on the", "Numbers: 1 2 3 ", "Question: what is red?\nAnswer:",
                                 "hello hello hello"};
    static const char *ch[4][3] = {{" mat", " big red sofa by the door", " x"},
                                   {"4", "four five six", "44"},
                                   {" apple", " the sky at night", " a"},
                                   {" hello", " world of many words", " !"}};
    char mc[4096] = "";
    long want_acc = 0, want_norm = 0;
    for (int q = 0; q < 4; q++) {
        double ll[3], nl[3];
        int arg = 0, argn = 0;
        for (int k = 0; k < 3; k++) {
            int seq[256], n_ctx;
            int n = split_ids(tok, ctx[q], ch[q][k], seq, &n_ctx);
            ll[k] = ref_ll(m, seq, n, n_ctx);
            nl[k] = ll[k] / (double)strlen(ch[q][k]);
            /* the library's value for the same pair */
            double got = NAN;
            int nt = 0;
            CHECK(mofo_loglik(m, tok, ctx[q], strlen(ctx[q]), ch[q][k], strlen(ch[q][k]), 0, &got, &nt, &err) == 0,
                  "%s", err.msg);
            CHECK(fabs(got - ll[k]) < 1e-4 * (1 + fabs(ll[k])) && nt == n - n_ctx, "q%d c%d: ll %.6f vs %.6f (%d tokens)",
                  q, k, got, ll[k], nt);
            if (ll[k] > ll[arg]) arg = k;
            if (nl[k] > nl[argn]) argn = k;
        }
        int gold = q % 2 ? arg : argn; /* alternate, so that acc and acc_norm can differ */
        want_acc += gold == arg;
        want_norm += gold == argn;
        char line[600];
        snprintf(line, sizeof line, "{\"context\": \"%s\", \"choices\": [\"%s\", \"%s\", \"%s\"], \"gold\": %d}\n",
                 q == 2 ? "Question: what is red?\\nAnswer:" : ctx[q], ch[q][0], ch[q][1], ch[q][2], gold);
        strcat(mc, line);
        if (q == 1) strcat(mc, "\n"); /* a blank line is skipped */
    }
    snprintf(path, sizeof path, "%s/mc.jsonl", tmpdir);
    write_file(path, mc);
    mofo_mc_result r;
    CHECK(mofo_eval_mc(m, tok, path, 0, &r, &err) == 0, "%s", err.msg);
    CHECK(r.n == 4 && r.correct == want_acc && r.correct_norm == want_norm, "mc: n %ld acc %ld/%ld norm %ld/%ld", r.n,
          r.correct, want_acc, r.correct_norm, want_norm);
    snprintf(cmd, sizeof cmd, "'%s' eval --model '%s' --task 'mc:%s' --json", MOFO_BIN, dir, path);
    int st;
    char *out = run(cmd, &st);
    double acc = -1, accn = -1;
    char *p = out ? strstr(out, "\"acc\": ") : NULL;
    if (p) sscanf(p, "\"acc\": %lf, \"acc_norm\": %lf", &acc, &accn);
    CHECK(st == 0 && fabs(acc - want_acc / 4.0) < 1e-9 && fabs(accn - want_norm / 4.0) < 1e-9, "mofo eval mc: %d %s",
          st, out ? out : "");
    free(out);
    /* an empty context: BOS (or EOS) stands for it; with neither, an error */
    {
        double got = NAN;
        CHECK(mofo_loglik(m, tok, "", 0, "hi", 2, 0, &got, NULL, &err) != 0 && strstr(err.msg, "empty context"),
              "empty context without BOS/EOS: '%s'", err.msg);
        mofo_tokenizer_set_special(tok, -1, 1, -1);
        CHECK(mofo_loglik(m, tok, "", 0, "hello world", 11, 0, &got, NULL, &err) == 0, "%s", err.msg);
        int32_t pre = mofo_tokenizer_bos(tok) >= 0 ? mofo_tokenizer_bos(tok) : mofo_tokenizer_eos(tok);
        mofo_ids w = {0};
        mofo_tokenizer_encode(tok, "hello world", 11, 0, &w, NULL);
        int seq[64], n = 0;
        seq[n++] = pre;
        for (size_t i = 0; i < w.len; i++) seq[n++] = w.ids[i];
        double want = ref_ll(m, seq, n, 1);
        CHECK(pre >= 0 && fabs(got - want) < 1e-4 * (1 + fabs(want)), "empty context: %f vs %f", got, want);
        mofo_ids_free(&w);
    }

    /* ---- perplexity: summed NLL over the texts (special tokens on) ---- */
    static const char *texts[2] = {"Hello world, hello again.", "Numbers 12345 and more words"};
    double nll = 0;
    long tokens = 0;
    for (int i = 0; i < 2; i++) {
        mofo_ids v = {0};
        mofo_tokenizer_encode(tok, texts[i], strlen(texts[i]), 1, &v, NULL);
        int seq[128];
        for (size_t k = 0; k < v.len; k++) seq[k] = v.ids[k];
        nll -= ref_ll(m, seq, (int)v.len, 1);
        tokens += (long)v.len - 1;
        mofo_ids_free(&v);
    }
    snprintf(path, sizeof path, "%s/ppl.jsonl", tmpdir);
    snprintf(mc, sizeof mc, "{\"text\": \"%s\"}\n{\"text\": \"%s\"}\n", texts[0], texts[1]);
    write_file(path, mc);
    mofo_ppl_result pr;
    CHECK(mofo_eval_ppl(m, tok, path, &pr, &err) == 0, "%s", err.msg);
    CHECK(pr.docs == 2 && pr.tokens == tokens && fabs(pr.nll - nll) < 1e-4 * nll, "ppl: %ld docs %ld tokens %f vs %ld %f",
          pr.docs, pr.tokens, pr.nll, tokens, nll);
    {
        snprintf(cmd, sizeof cmd, "'%s' eval --model '%s' --task 'ppl:%s' --task 'mc:%s/mc.jsonl' --json", MOFO_BIN, dir,
                 path, tmpdir);
        out = run(cmd, &st);
        double l = NAN;
        long tk = -1;
        p = out ? strstr(out, "\"tokens\": ") : NULL;
        if (p) sscanf(p, "\"tokens\": %ld, \"loss\": %lf", &tk, &l);
        CHECK(st == 0 && tk == tokens && fabs(l - nll / tokens) < 1e-5 && strstr(out, "\"task\": \"mc\""),
              "mofo eval ppl+mc: %d %s", st, out ? out : "");
        free(out);
        /* mofo generate --prompt through the tokenizer, plain and with a chat template */
        snprintf(cmd, sizeof cmd, "'%s' generate --model '%s' --prompt 'Hello there' --max-new 5 --json", MOFO_BIN, dir);
        out = run(cmd, &st);
        CHECK(st == 0 && out && strstr(out, "{\"ids\": [") && strstr(out, "\"text\": \""), "generate --prompt: %d %s",
              st, out ? out : "");
        free(out);
        snprintf(cmd, sizeof cmd, "'%s' generate --model '%s' --prompt 'Hello' --template chatml --max-new 3", MOFO_BIN,
                 dir);
        out = run(cmd, &st);
        CHECK(st == 0, "generate --template chatml: %d %s", st, out ? out : "");
        free(out);
    }

    /* ---- generation: the greedy output decides the answers; a stop string cuts it ----
     * The final norm keeps channel 0 only and lm_head reads only that channel, +10 for "7" and -10
     * for "8": the greedy output is 16 digits of 7 and 8, a number. */
    {
        int32_t t7 = mofo_tokenizer_token_id(tok, "7", 1), t8 = mofo_tokenizer_token_id(tok, "8", 1);
        CHECK(t7 >= 0 && t8 >= 0, "tokens 7/8: %d %d", t7, t8);
        for (int i = 0; i < m->cfg.C; i++) m->w.lnf_w[i] = i == 0;
        memset(m->w.lm_head, 0, sizeof(float) * (size_t)m->cfg.V * m->cfg.C);
        if (t7 >= 0 && t8 >= 0) {
            m->w.lm_head[(size_t)t7 * m->cfg.C] = 10.0f;
            m->w.lm_head[(size_t)t8 * m->cfg.C] = -10.0f;
        }
        mofo_ids pv = {0};
        const char *prompt = "Question: 1 + 1?\nAnswer:";
        mofo_prompt_ids(tok, prompt, strlen(prompt), -1, NULL, 0, &pv, NULL);
        int pid[64];
        for (size_t i = 0; i < pv.len; i++) pid[i] = pv.ids[i];
        mofo_gen_opts go = {.max_new = 16, .eos = mofo_tokenizer_eos(tok), .top_p = 1};
        int *g = NULL, ng = 0;
        CHECK(mofo_generate(m, pid, (int)pv.len, &go, &g, &ng, &err) == 0, "%s", err.msg);
        if (ng && g[ng - 1] == go.eos) ng--;
        int32_t g32[64];
        for (int i = 0; i < ng; i++) g32[i] = g[i];
        mofo_strbuf txt = {0};
        mofo_tokenizer_decode(tok, g32, (size_t)ng, 0, &txt, NULL);
        const char *t = txt.data ? txt.data : "";
        size_t a, b;
        char num[64] = "nothing";
        int has = mofo_gsm8k_flexible(t, txt.len, &a, &b);
        if (has) mofo_gsm8k_normalize(t + a, b - a, num, sizeof num);
        snprintf(path, sizeof path, "%s/gen.jsonl", tmpdir);
        snprintf(mc, sizeof mc,
                 "{\"prompt\": \"Question: 1 + 1?\\nAnswer:\", \"answer\": \"so #### %s\"}\n"
                 "{\"prompt\": \"Question: 1 + 1?\\nAnswer:\", \"answer\": \"#### 123456789\"}\n",
                 num);
        write_file(path, mc);
        const char *stops[1] = {"Question:"};
        mofo_gen_eval_opts o = {.max_new = 16, .stop = stops, .n_stop = 1, .tpl = -1};
        mofo_gen_result gr;
        CHECK(mofo_eval_gen(m, tok, path, &o, &gr, &err) == 0, "%s", err.msg);
        int cut = strstr(t, "Question:") != NULL;
        printf("greedy output: '%s' (last number: %s)\n", t, num);
        CHECK(has && !cut && strspn(t, "78") == 16, "forced output '%s'", t);
        CHECK(gr.n == 2 && gr.strict == 0 && gr.flexible == (has && !cut) && gr.em == gr.flexible,
              "gen: n %ld strict %ld flexible %ld em %ld (output '%s')", gr.n, gr.strict, gr.flexible, gr.em, t);
        /* a stop string at the output's first character leaves nothing to match */
        char first[2] = {t[0], 0};
        const char *stops2[1] = {first};
        o.stop = stops2;
        if (t[0] && t[0] != '\\' && t[0] != '"') {
            CHECK(mofo_eval_gen(m, tok, path, &o, &gr, &err) == 0, "%s", err.msg);
            CHECK(gr.flexible == 0, "stop at '%s' still matched", first);
        }
        mofo_sb_free(&txt);
        free(g);
        mofo_ids_free(&pv);
        snprintf(cmd, sizeof cmd, "'%s' eval --model '%s' --task 'gen:%s' --max-new 16 --json", MOFO_BIN, dir, path);
        out = run(cmd, &st);
        CHECK(st == 0 && out && strstr(out, "\"task\": \"gen\"") && strstr(out, "\"n\": 2"), "mofo eval gen: %d %s", st,
              out ? out : "");
        free(out);
    }

    /* ---- errors: FILE:LINE and the field, through the library and the command ---- */
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"{\"context\": \"a\", \"choices\": [\"b\"], \"gold\": 0}\n{\"context\": \"a\", \"choices\": [\"b\"]\n",
         "mc.bad.jsonl:2:"},
        {"{\"context\": \"a\", \"gold\": 0}\n", "mc.bad.jsonl:1: missing field \"choices\""},
        {"{\"context\": \"a\", \"choices\": [\"b\"], \"gold\": 3}\n", "mc.bad.jsonl:1: field \"gold\""},
        {"{\"context\": 5, \"choices\": [\"b\"], \"gold\": 0}\n", "mc.bad.jsonl:1: field \"context\" is a number"},
        {"[1, 2]\n", "mc.bad.jsonl:1: a JSON array, not an object"},
        {"\n\n", "no JSON line"},
    };
    snprintf(path, sizeof path, "%s/mc.bad.jsonl", tmpdir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i].text);
        CHECK(mofo_eval_mc(m, tok, path, 0, &r, &err) != 0 && strstr(err.msg, bad[i].want), "bad %zu: '%s'", i, err.msg);
    }
    CHECK(mofo_eval_ppl(m, tok, "/nonexistent/x.jsonl", &pr, &err) != 0 && strstr(err.msg, "/nonexistent/x.jsonl"),
          "missing file: '%s'", err.msg);
    snprintf(cmd, sizeof cmd, "'%s' eval --model '%s' --task 'mc:%s'", MOFO_BIN, dir, path);
    write_file(path, bad[0].text);
    out = run(cmd, &st);
    CHECK(st == 1 && out && strstr(out, "mc.bad.jsonl:2:"), "command, malformed line: %d %s", st, out ? out : "");
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' eval --model '%s' --task 'ppl:%s/none.jsonl'", MOFO_BIN, dir, tmpdir);
    out = run(cmd, &st);
    CHECK(st == 1 && out && strstr(out, "none.jsonl"), "command, missing file: %d %s", st, out ? out : "");
    free(out);
    static const char *usage[] = {"--task mc:x --bogus", "--task foo:x", "", "--task mc:x --template nope",
                                  "--task mc:x --max-new 0"};
    for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++) {
        snprintf(cmd, sizeof cmd, "'%s' eval --model '%s' %s", MOFO_BIN, dir, usage[i]);
        out = run(cmd, &st);
        CHECK(st == 2 && out && strstr(out, "mofo eval: "), "usage '%s': %d %s", usage[i], st, out ? out : "");
        free(out);
    }

    mofo_tokenizer_free(tok);
    mofo_model_free(m);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return CHECK_DONE();
}

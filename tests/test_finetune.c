/* mofo finetune and mofo diff end to end, through the command:
 * - each fixture model fine-tuned on its traj.safetensors batches (pre-tokenized JSONL, one line per
 *   row, two rows per batch in file order) with MoFO and with AdamW: the losses of meta.json (1e-5)
 *   and the final parameters of PyTorch (relative error 1e-4; GPT-2's key bias as in test_train_traj);
 * - Ctrl-C at step k (the MOFO_TEST_SIGINT_AT_STEP hook raises a real SIGINT) then --resume: the
 *   same bytes as the uninterrupted run, also with shuffling, accumulation, clipping, warm-up,
 *   cosine decay, validation and a bf16 checkpoint;
 * - HFT: the frozen half byte-identical to the base, the rest moved;
 * - every error: unknown flag, missing files, no trainable token, lr <= 0, a failed write during a
 *   save (MOFO_FAIL_WRITE_AFTER_BYTES) leaving the previous checkpoint intact, a mismatched resume;
 * - mofo diff: zero against itself, the library's numbers against the base. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "check.h"
#include "token_records.h"
#include "io/json.h"
#include "model/model.h"
#include "text/utf8.h"
#include "text/dataset.h"
#include "text/tokenizer.h"
#include "train/lora.h"
#include "train/train.h"

static char tmp[256];
static const char *FLAGS = "--batch 2 --seq-len 16 --steps 3 --lr 1e-3 --lr-schedule constant --warmup 0 "
                           "--weight-decay 0.01 --clip 0 --no-shuffle --quiet";

/* runs "MOFO_BIN args" (env prepended), stdout to tmp/out.txt, stderr to tmp/err.txt; exit status */
static int mofo(const char *env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int mofo(const char *env, const char *fmt, ...) {
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s %s >%s/out.txt 2>%s/err.txt", env ? env : "", MOFO_BIN, args, tmp, tmp);
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *out_text(const char *which) {
    char p[400];
    snprintf(p, sizeof p, "%s/%s.txt", tmp, which);
    char *s = slurp(p, NULL);
    return s ? s : calloc(1, 1);
}

static int same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static double num_at(const mofo_json *arr, int i) {
    const mofo_json *e = arr ? arr->child : NULL;
    while (e && i--) e = e->next;
    return e && e->type == MOFO_JSON_NUMBER ? e->number : NAN;
}

/* the losses of metrics.jsonl, in order */
static int read_losses(const char *out, double *loss, int max) {
    char p[512];
    snprintf(p, sizeof p, "%s/metrics.jsonl", out);
    char *text = slurp(p, NULL);
    int n = 0;
    for (char *l = text; l && *l && n < max;) {
        char *nl = strchr(l, '\n');
        mofo_err err;
        mofo_json_doc *d = mofo_json_parse(l, nl ? (size_t)(nl - l) : strlen(l), &err);
        const mofo_json *v = d ? mofo_json_get(mofo_json_root(d), "loss") : NULL;
        if (v) loss[n++] = v->number;
        mofo_json_free(d);
        l = nl ? nl + 1 : l + strlen(l);
    }
    free(text);
    return n;
}

static void traj(const char *name, const char *method, const char *extra) {
    char data[400], out[400], ck[500], p[600];
    snprintf(data, sizeof data, "%s/%s.jsonl", tmp, name);
    snprintf(out, sizeof out, "%s/%s-%s%s", tmp, name, method, *extra ? "-accum" : "");
    write_token_records(name, data);
    int st = mofo(NULL, "finetune --model %s/%s --data %s --out %s %s --method %s%s --save-every 3 %s", MOFO_FIXTURES, name,
                  data, out, FLAGS, method, strcmp(method, "mofo") == 0 ? " --alpha 0.15" : "", extra);
    char *e = out_text("err");
    CHECK(st == 0, "%s %s: status %d: %s", name, method, st, e);
    free(e);
    mofo_err err = {0};
    snprintf(p, sizeof p, "%s/%s/meta.json", MOFO_FIXTURES, name);
    char *mt = slurp(p, NULL);
    mofo_json_doc *meta = mt ? mofo_json_parse(mt, strlen(mt), &err) : NULL;
    const mofo_json *want =
        mofo_json_get(mofo_json_get(mofo_json_get(mofo_json_root(meta), "runs"), method), "losses_before_each_step");
    double got[8];
    int n = read_losses(out, got, 8);
    CHECK(n == 3 && want, "%s %s: %d losses in metrics.jsonl", name, method, n);
    for (int i = 0; i < n && want; i++)
        CHECK(fabs(got[i] - num_at(want, i)) <= 1e-5, "%s %s step %d: loss %.7f vs %.7f", name, method, i + 1, got[i],
              num_at(want, i));
    mofo_json_free(meta);
    free(mt);

    /* the fp32 master weights of checkpoint-3; for fp32 models the final model is the same bytes */
    snprintf(ck, sizeof ck, "%s/checkpoint-3", out);
    mofo_model *m = NULL;
    mofo_st_file *tr = NULL;
    CHECK(mofo_model_load(&m, ck, &err) == 0, "%s", err.msg);
    snprintf(p, sizeof p, "%s/%s/traj.safetensors", MOFO_FIXTURES, name);
    CHECK(mofo_st_open(&tr, p, &err) == 0, "%s", err.msg);
    double worst = 0;
    for (int i = 0; m && tr && i < m->n_p; i++) {
        const mofo_param *q = &m->p[i];
        char tn[200];
        snprintf(tn, sizeof tn, "%s.final.%s", method, q->name);
        const mofo_st_tensor *t = mofo_st_find(tr, tn);
        CHECK(t != NULL, "%s missing", tn);
        if (!t) continue;
        float *w = malloc(sizeof(float) * q->numel), *g = malloc(sizeof(float) * q->numel);
        mofo_st_to_f32(tr, t, w, q->numel, &err);
        mofo_model_param_file_layout(m, i, m->params + q->offset, g);
        double r;
        if (m->cfg.names == MOFO_NAMES_GPT2 && strstr(q->name, "attn.c_attn.bias")) {
            int C = m->cfg.C; /* the key bias's gradient is rounding noise: see test_train_traj.c */
            r = fmax(rel_err(g, w, C), rel_err(g + 2 * C, w + 2 * C, C));
            for (int j = C; j < 2 * C; j++) CHECK(fabs(g[j] - w[j]) <= 3e-3, "%s: key bias", name);
        } else {
            r = rel_err(g, w, q->numel);
        }
        CHECK(r <= 1e-4, "%s %s: %s relative error %g", name, method, q->name, r);
        worst = fmax(worst, r);
        free(w);
        free(g);
    }
    printf("%-16s %-6s finetune%s: losses of meta.json, worst parameter relative error %.3g\n", name, method,
           *extra ? " (batch 1 x 2 accumulated)" : "", worst);
    if (m && !strstr(name, "bf16")) { /* bf16 checkpoints: the final model is rounded to bf16 */
        char a[700], b[700];
        snprintf(a, sizeof a, "%s/model.safetensors", ck);
        snprintf(b, sizeof b, "%s/model.safetensors", out);
        if (exists(b)) CHECK(same_file(a, b), "%s: final model differs from checkpoint-3", out);
    }
    mofo_st_close(tr);
    mofo_model_free(m);
}

/* interrupted at step k by SIGINT, resumed: the same files as the uninterrupted run */
static void resume(const char *name, const char *extra, int steps, int k, const char *cmp) {
    char data[400], a[400], b[400];
    snprintf(data, sizeof data, "%s/%s.jsonl", tmp, name);
    static int run_no;
    run_no++;
    snprintf(a, sizeof a, "%s/%s-full-%d", tmp, name, run_no);
    snprintf(b, sizeof b, "%s/%s-resumed-%d", tmp, name, run_no);
    char env[64];
    snprintf(env, sizeof env, "MOFO_TEST_SIGINT_AT_STEP=%d", k);
    const char *base = "--seq-len 16 --lr 1e-3 --weight-decay 0.01 --quiet";
    int s1 = mofo(NULL, "finetune --model %s/%s --data %s --out %s %s %s --steps %d --save-every %d", MOFO_FIXTURES,
                  name, data, a, base, extra, steps, steps);
    int s2 = mofo(env, "finetune --model %s/%s --data %s --out %s %s %s --steps %d --save-every %d", MOFO_FIXTURES, name,
                  data, b, base, extra, steps, steps);
    char *e = out_text("err");
    CHECK(s1 == 0 && s2 == 130, "%s: statuses %d, %d (130 after SIGINT): %s", name, s1, s2, e);
    CHECK(strstr(e, "interrupted at step") != NULL, "%s: %s", name, e);
    free(e);
    int s3 = mofo(NULL, "finetune --model %s/%s --data %s --out %s %s %s --steps %d --save-every %d --resume %s/checkpoint-%d",
                  MOFO_FIXTURES, name, data, b, base, extra, steps, steps, b, k);
    e = out_text("err");
    CHECK(s3 == 0, "%s: resume status %d: %s", name, s3, e);
    free(e);
    char fa[600], fb[600];
    snprintf(fa, sizeof fa, "%s/checkpoint-%d/model.safetensors", a, steps);
    snprintf(fb, sizeof fb, "%s/checkpoint-%d/model.safetensors", b, steps);
    CHECK(same_file(fa, fb), "%s %s: resumed weights differ", name, extra);
    snprintf(fa, sizeof fa, "%s/checkpoint-%d/optimizer.safetensors", a, steps);
    snprintf(fb, sizeof fb, "%s/checkpoint-%d/optimizer.safetensors", b, steps);
    CHECK(same_file(fa, fb), "%s %s: resumed optimizer state differs", name, extra);
    snprintf(fa, sizeof fa, "%s/%s", a, cmp);
    snprintf(fb, sizeof fb, "%s/%s", b, cmp);
    CHECK(same_file(fa, fb), "%s %s: %s differs", name, extra, cmp);
    snprintf(fa, sizeof fa, "%s/metrics.jsonl", a);
    snprintf(fb, sizeof fb, "%s/metrics.jsonl", b);
    CHECK(same_file(fa, fb), "%s %s: metrics.jsonl differs", name, extra);
    printf("%-16s interrupted at step %d of %d and resumed: bit for bit (%s)\n", name, k, steps, extra);
}

static void hft(const char *name) {
    char data[400], out[400], base[400];
    snprintf(data, sizeof data, "%s/%s.jsonl", tmp, name);
    snprintf(out, sizeof out, "%s/%s-hft", tmp, name);
    snprintf(base, sizeof base, "%s/%s", MOFO_FIXTURES, name);
    int st = mofo(NULL, "finetune --model %s --data %s --out %s %s --method hft --save-every 3", base, data, out, FLAGS);
    CHECK(st == 0, "%s hft: status %d", name, st);
    char ck[500];
    snprintf(ck, sizeof ck, "%s/checkpoint-3", out);
    mofo_model *a = NULL, *b = NULL;
    mofo_err err = {0};
    CHECK(mofo_model_load(&a, base, &err) == 0 && mofo_model_load(&b, ck, &err) == 0, "%s", err.msg);
    int64_t frozen = 0, total = 0;
    for (int i = 0; a && b && i < a->n_p; i++) {
        const mofo_param *p = &a->p[i];
        int same = memcmp(a->params + p->offset, b->params + p->offset, sizeof(float) * p->numel) == 0;
        int fz = !mofo_method_def_of(MOFO_METHOD_HFT)->trains(p);
        CHECK(fz ? same : !same, "%s hft: %s is %s but %s", name, p->name, fz ? "frozen" : "trained",
              same ? "unchanged" : "changed");
        total += p->numel;
        frozen += fz ? p->numel : 0;
    }
    printf("%-16s hft: %lld of %lld entries frozen, byte-identical to the base\n", name, (long long)frozen,
           (long long)total);
    mofo_model_free(a);
    mofo_model_free(b);
}

/* LoRA through the command: the adapter starts as a no-op (first loss = the base model's), --merge
 * writes exactly base + s B A of the saved adapter, and nothing else of the base moves */
static void lora_train(const char *name, double first_loss) {
    char data[400], out[400], out2[400], ad[500];
    snprintf(data, sizeof data, "%s/%s.jsonl", tmp, name);
    snprintf(out, sizeof out, "%s/%s-lora-merged", tmp, name);
    snprintf(out2, sizeof out2, "%s/%s-lora", tmp, name);
    int st = mofo(NULL, "finetune --model %s/%s --data %s --out %s %s --method lora --lora-rank 4 --lora-alpha 8 --merge",
                  MOFO_FIXTURES, name, data, out, FLAGS);
    char *e = out_text("err");
    CHECK(st == 0, "%s lora: %d %s", name, st, e);
    free(e);
    st = mofo(NULL, "finetune --model %s/%s --data %s --out %s %s --method lora --lora-rank 4 --lora-alpha 8", MOFO_FIXTURES,
              name, data, out2, FLAGS);
    CHECK(st == 0, "%s lora without --merge: %d", name, st);
    double loss[4];
    CHECK(read_losses(out, loss, 4) == 3 && fabs(loss[0] - first_loss) <= 1e-5, "%s lora: first loss %g vs %g", name,
          loss[0], first_loss);
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", out2);
    CHECK(!exists(p), "%s exists without --merge", p);
    snprintf(ad, sizeof ad, "%s/adapter", out);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", ad);
    char p2[600];
    snprintf(p2, sizeof p2, "%s/adapter_model.safetensors", out2);
    CHECK(same_file(p, p2), "%s: the adapter with and without --merge differs", name);
    mofo_err err = {0};
    mofo_model *base = NULL, *merged = NULL;
    mofo_lora *l = NULL;
    char dir[500];
    snprintf(dir, sizeof dir, "%s/%s", MOFO_FIXTURES, name);
    CHECK(mofo_model_load(&base, dir, &err) == 0 && mofo_model_load(&merged, out, &err) == 0, "%s", err.msg);
    if (base) CHECK(mofo_lora_load(&l, base, ad, &err) == 0, "%s", err.msg);
    if (base && merged && l) {
        float *b0 = malloc(base->n_floats * sizeof *b0);
        memcpy(b0, base->params, base->n_floats * sizeof *b0);
        mofo_lora_merge(l, base, b0, base->params);
        CHECK(memcmp(base->params, merged->params, base->n_floats * sizeof *b0) == 0,
              "%s: --merge is not base + s B A of the saved adapter", name);
        int64_t moved = 0;
        for (size_t i = 0; i < base->n_floats; i++) moved += b0[i] != merged->params[i];
        int64_t targeted = 0;
        for (int i = 0; i < l->n; i++) targeted += l->t[i].OC * l->t[i].C;
        CHECK(moved > 0 && moved <= targeted, "%s: %lld entries moved, %lld targeted", name, (long long)moved,
              (long long)targeted);
        printf("%-16s lora: %d adapters, the merged model is base + s B A exactly (%lld entries moved)\n", name, l->n,
               (long long)moved);
        free(b0);
    }
    mofo_lora_free(l);
    mofo_model_free(base);
    mofo_model_free(merged);
}

/* --epochs: 6 rows, batch 4 -> 2 micro-batches an epoch (the second half empty); 2 epochs with 3
 * micro-batches a step -> 2 steps, the last of one micro-batch; every row trained twice */
static void epochs(void) {
    char data[400], out[400], p[500];
    snprintf(data, sizeof data, "%s/gpt2-tiny.jsonl", tmp);
    snprintf(out, sizeof out, "%s/epochs", tmp);
    int st = mofo(NULL, "finetune --model %s/gpt2-tiny --data %s --out %s --epochs 2 --batch 4 --grad-accum 3 --lr 1e-3 "
                  "--seq-len 16 --quiet", MOFO_FIXTURES, data, out);
    CHECK(st == 0, "epochs: status %d", st);
    snprintf(p, sizeof p, "%s/metrics.jsonl", out);
    char *text = slurp(p, NULL);
    int lines = 0;
    long long tokens = 0;
    for (char *l = text; l && *l; lines++) {
        char *t = strstr(l, "\"tokens\": ");
        if (t) tokens += atoll(t + 10);
        char *nl = strchr(l, '\n');
        l = nl ? nl + 1 : l + strlen(l);
    }
    CHECK(lines == 2 && tokens == 2 * 6 * 15, "epochs: %d steps, %lld tokens (want 2, 180)", lines, tokens);
    CHECK(text && strstr(text, "\"epoch\": 1.5,") && strstr(text, "\"epoch\": 2,"), "epochs: %s", text ? text : "");
    free(text);
}

/* chat data through a tokenizer: a GPT-2-shaped model saved with gpt2-style tokenizer.json and an
 * EOS in tokenizer_config.json; tulu-rendered messages; the trained tokens of the first step are
 * those the data set library labels; the tokenizer files are copied into OUT */
static void chat(void) {
    char mdir[400], src[500], p[600], data[400], out[400];
    mofo_err err = {0};
    snprintf(mdir, sizeof mdir, "%s/chat-model", tmp);
    snprintf(src, sizeof src, "%s/tokenizers/gpt2-style.json", MOFO_FIXTURES);
    mofo_tokenizer *tok = NULL;
    CHECK(mofo_tokenizer_load_file(&tok, src, &err) == 0, "%s", err.msg);
    if (!tok) return;
    mofo_model_config c;
    mofo_config_preset(&c, "gpt2", "tiny", &err);
    c.V = mofo_tokenizer_vocab_size(tok);
    c.max_T = 128;
    mofo_model *m = NULL;
    CHECK(mofo_model_create(&m, &c, 3, 0.05f, &err) == 0 && mofo_model_save(m, mdir, 0, &err) == 0, "%s", err.msg);
    mofo_model_free(m);
    mofo_tokenizer_free(tok);
    size_t len = 0;
    char *tj = slurp(src, &len);
    snprintf(p, sizeof p, "%s/tokenizer.json", mdir);
    FILE *f = fopen(p, "wb");
    if (f && tj) fwrite(tj, 1, len, f);
    if (f) fclose(f);
    free(tj);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", mdir);
    if ((f = fopen(p, "w"))) fputs("{\"eos_token\": \"<|endoftext|>\"}\n", f), fclose(f);
    snprintf(data, sizeof data, "%s/chat.jsonl", tmp);
    if ((f = fopen(data, "w"))) {
        const char *q[] = {"What is 2+2?", "Name a colour.", "Say hello.", "Count to three."};
        const char *a[] = {"4", "Blue, like the sea.", "Hello there!", "One, two, three."};
        for (int i = 0; i < 4; i++)
            fprintf(f, "{\"messages\": [{\"role\": \"user\", \"content\": \"%s\"}, {\"role\": \"assistant\", "
                       "\"content\": \"%s\"}]}\n", q[i], a[i]);
        fclose(f);
    }
    snprintf(out, sizeof out, "%s/chat-out", tmp);
    int st = mofo(NULL, "finetune --model %s --data %s --out %s --steps 2 --batch 2 --no-shuffle --val-split 0.25 "
                  "--lr 1e-3 --quiet", mdir, data, out);
    char *e = out_text("err");
    CHECK(st == 0, "chat: status %d: %s", st, e);
    free(e);
    /* the expected trained tokens of step 1: examples 0 and 1 */
    mofo_dataset ds = {0};
    mofo_data_opts o = {.format = MOFO_FMT_AUTO, .tpl = MOFO_TPL_TULU};
    tok = NULL;
    CHECK(mofo_tokenizer_load_dir(&tok, mdir, &err) == 0 && mofo_dataset_load(&ds, data, tok, &o, &err) == 0, "%s", err.msg);
    long long want = 0;
    for (size_t i = 0; i < 2 && i < ds.n; i++)
        for (int32_t k = 1; k < ds.ex[i].len; k++) want += ds.ex[i].labels[k] != MOFO_IGNORE_INDEX;
    mofo_dataset_free(&ds);
    mofo_tokenizer_free(tok);
    snprintf(p, sizeof p, "%s/metrics.jsonl", out);
    char *text = slurp(p, NULL);
    char *t = text ? strstr(text, "\"tokens\": ") : NULL;
    CHECK(want > 0 && t && atoll(t + 10) == want, "chat: step 1 trained %lld tokens, want %lld", t ? atoll(t + 10) : -1,
          want);
    CHECK(text && strstr(text, "\"val_loss\": "), "chat: no validation loss");
    free(text);
    const char *files[] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        char a[700], b[700];
        snprintf(a, sizeof a, "%s/%s", mdir, files[i]);
        snprintf(b, sizeof b, "%s/%s", out, files[i]);
        CHECK(same_file(a, b), "chat: %s not copied", files[i]);
    }
    st = mofo(NULL, "ppl --model %s --text 'Hello world' --json", out);
    CHECK(st == 0, "the fine-tuned model does not load in mofo ppl: %d", st);
    printf("chat data (tulu template, gpt2-style tokenizer): %lld trained tokens in step 1, tokenizer files copied\n", want);
}

static void errors(void) {
    char data[400], out[400], bad[400], ck[500];
    snprintf(data, sizeof data, "%s/gpt2-tiny.jsonl", tmp);
    snprintf(out, sizeof out, "%s/err-out", tmp);
    const char *m = MOFO_FIXTURES "/gpt2-tiny";
    struct {
        const char *what, *args, *expect;
        int status;
    } cases[] = {
        {"unknown flag", "--bogus 1", "unknown flag '--bogus'", 2},
        {"lr 0", "--lr 0", "lr 0: the learning rate must be > 0", 2},
        {"lr < 0", "--lr -1e-3", "the learning rate must be > 0", 2},
        {"bad method", "--method sgd", "--method 'sgd'", 2},
        {"l2 without reg", "--method l2", "needs reg > 0", 2},
        {"bad device", "--device gpu", "--device gpu: cpu or cuda expected", 2},
        {"bad precision", "--precision fp16", "--precision fp16: fp32, tf32 or bf16 expected", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = mofo(NULL, "finetune --model %s --data %s --out %s --steps 1 %s", m, data, out, cases[i].args);
        char *e = out_text("err");
        CHECK(st == cases[i].status && strstr(e, cases[i].expect), "%s: status %d, message: %s", cases[i].what, st, e);
        free(e);
    }
    /* without a GPU or without CUDA in the build it says which; on a GPU it trains */
    int st = mofo(NULL, "finetune --model %s --data %s --out %s --steps 1 --device cuda", m, data, out);
    char *e = out_text("err");
    CHECK(st == 0 || (st == 1 && (strstr(e, "device cuda: no CUDA device") || strstr(e, "built without CUDA"))),
          "--device cuda: status %d, message: %s", st, e);
    free(e);
    st = mofo(NULL, "finetune --model %s/no-such-model --data %s --out %s --steps 1", tmp, data, out);
    e = out_text("err");
    CHECK(st != 0 && strstr(e, "no-such-model"), "missing model: %d %s", st, e);
    free(e);
    st = mofo(NULL, "finetune --model %s --data %s/no-such.jsonl --out %s --steps 1", m, tmp, out);
    e = out_text("err");
    CHECK(st != 0 && strstr(e, "no-such.jsonl"), "missing data: %d %s", st, e);
    free(e);
    snprintf(bad, sizeof bad, "%s/untrained.jsonl", tmp);
    FILE *f = fopen(bad, "w");
    if (f) {
        fputs("{\"input_ids\": [1, 2, 3], \"labels\": [-100, -100, -100]}\n", f);
        fputs("{\"input_ids\": [4, 5], \"labels\": [4, -100]}\n", f);
        fclose(f);
    }
    st = mofo(NULL, "finetune --model %s --data %s --out %s --steps 1", m, bad, out);
    e = out_text("err");
    CHECK(st != 0 && strstr(e, "no trainable token") && strstr(e, "untrained.jsonl"), "untrained data: %d %s", st, e);
    free(e);

    /* a full disk during the second checkpoint: checkpoint-1 stays as it was, no checkpoint-2 */
    snprintf(out, sizeof out, "%s/fail-out", tmp);
    st = mofo("MOFO_TEST_SIGINT_AT_STEP=1", "finetune --model %s --data %s --out %s %s --save-every 1", m, data, out, FLAGS);
    CHECK(st == 130, "first run: status %d", st);
    snprintf(ck, sizeof ck, "%s/checkpoint-1", out);
    const char *files[] = {"model.safetensors", "optimizer.safetensors", "trainer_state.json", "config.json"};
    char *before[4];
    size_t blen[4] = {0};
    for (int i = 0; i < 4; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", ck, files[i]);
        before[i] = slurp(p, &blen[i]);
        CHECK(before[i] != NULL, "%s missing", p);
    }
    st = mofo("MOFO_FAIL_WRITE_AFTER_BYTES=2000", "finetune --model %s --data %s --out %s %s --save-every 1 --resume %s",
              m, data, out, FLAGS, ck);
    e = out_text("err");
    CHECK(st == 1 && strstr(e, "checkpoint") && strstr(e, "MOFO_FAIL_WRITE_AFTER_BYTES"), "failed save: %d %s", st, e);
    free(e);
    for (int i = 0; i < 4; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", ck, files[i]);
        size_t n = 0;
        char *now = slurp(p, &n);
        CHECK(now && before[i] && n == blen[i] && memcmp(now, before[i], n) == 0, "%s changed by the failed save", p);
        free(now);
        free(before[i]);
    }
    char p2[600];
    snprintf(p2, sizeof p2, "%s/checkpoint-2", out);
    CHECK(!exists(p2), "%s exists after a failed save", p2);
    snprintf(p2, sizeof p2, "%s/.checkpoint-2.tmp", out);
    CHECK(!exists(p2), "%s left behind", p2);
    /* the same checkpoint resumes fine afterwards; another --lr refuses it */
    st = mofo(NULL, "finetune --model %s --data %s --out %s %s --resume %s --lr 2e-3", m, data, out, FLAGS, ck);
    e = out_text("err");
    CHECK(st == 1 && strstr(e, "other options"), "mismatched resume: %d %s", st, e);
    free(e);
    st = mofo(NULL, "finetune --model %s --data %s --out %s %s --resume %s", m, data, out, FLAGS, ck);
    CHECK(st == 0, "resume after the failed save: %d", st);
    /* once more from checkpoint-1, with all 3 steps logged: metrics.jsonl keeps steps 1, 2, 3 once */
    st = mofo(NULL, "finetune --model %s --data %s --out %s %s --resume %s", m, data, out, FLAGS, ck);
    double l[8];
    CHECK(st == 0 && read_losses(out, l, 8) == 3, "metrics after resuming from an earlier checkpoint: %d lines",
          read_losses(out, l, 8));
    st = mofo(NULL, "finetune --model %s --data %s --out %s --steps 1", m, data, m);
    e = out_text("err");
    CHECK(st == 2 && strstr(e, "is the --model directory"), "--out = --model: %d %s", st, e);
    free(e);
}

static void diff(void) {
    const char *base = MOFO_FIXTURES "/gpt2-tiny";
    int st = mofo(NULL, "diff --base %s --model %s --json", base, base);
    char *o = out_text("out");
    CHECK(st == 0 && strstr(o, "\"total\", \"numel\": 68304, \"l2\": 0, \"rel\": 0, \"changed\": 0, \"changed_frac\": 0}"),
          "diff with itself: %s", o);
    free(o);
    char out[400];
    snprintf(out, sizeof out, "%s/gpt2-tiny-adamw", tmp);
    st = mofo(NULL, "diff --base %s --model %s --json", base, out);
    o = out_text("out");
    mofo_err err = {0};
    mofo_json_doc *d = mofo_json_parse(o, strlen(o), &err);
    const mofo_json *tot = mofo_json_get(mofo_json_root(d), "total");
    mofo_model *a = NULL, *b = NULL;
    mofo_model_load(&a, base, &err);
    mofo_model_load(&b, out, &err);
    double sq = 0;
    long ch = 0;
    for (size_t i = 0; a && b && i < a->n_floats; i++) {
        double x = (double)b->params[i] - a->params[i];
        sq += x * x;
        ch += a->params[i] != b->params[i];
    }
    CHECK(st == 0 && tot, "diff: %d %s", st, o);
    if (tot) {
        CHECK(fabs(mofo_json_get(tot, "l2")->number - sqrt(sq)) <= 1e-6 * sqrt(sq), "diff l2 %g vs %g",
              mofo_json_get(tot, "l2")->number, sqrt(sq));
        CHECK(mofo_json_get(tot, "changed")->number == ch, "diff changed %g vs %ld", mofo_json_get(tot, "changed")->number, ch);
    }
    st = mofo(NULL, "diff --base %s --model %s/llama-tiny", base, MOFO_FIXTURES);
    CHECK(st == 1, "diff of different models: status %d", st);
    mofo_model_free(a);
    mofo_model_free(b);
    mofo_json_free(d);
    free(o);
}

/* The memory plan printed at the start: weights, the pre-trained copy and the gradients are 4 bytes
 * a parameter each, the optimizer's m and v 8 and its coverage bits 1/8 (MoFO, every tensor
 * trainable); LoRA keeps no copy and no gradients. Counted here from the model's size. */
static void memory_plan(void) {
    char data[400], out[400], dir[400];
    snprintf(data, sizeof data, "%s/gpt2-tiny.jsonl", tmp);
    snprintf(out, sizeof out, "%s/plan-out", tmp);
    snprintf(dir, sizeof dir, "%s/gpt2-tiny", MOFO_FIXTURES);
    mofo_err err = {0};
    mofo_model *m = NULL;
    CHECK(mofo_model_load(&m, dir, &err) == 0, "%s", err.msg);
    if (!m) return;
    double n = (double)m->n_floats, V = m->cfg.V, C = m->cfg.C, N = 2 * 16;
    /* bf16 products: the vocabulary is the widest dimension here, so the largest rounded inputs are the
     * lm_head's gradient (N, V) and its weight (V, C), 2 bytes an entry */
    CHECK(V >= N && V >= 4 * C && V >= m->cfg.FF, "gpt2-tiny's vocabulary %g is its widest dimension", V);
    double rounded = 2 * (N * V + V * C);
    mofo_model_free(m);
    for (int run = 0; run < 3; run++) { /* MoFO, LoRA, MoFO with bf16 products */
        int st = mofo(NULL, "finetune --model %s --data %s --out %s --steps 1 --batch 2 --seq-len 16%s", dir, data, out,
                      run == 1 ? " --method lora" : run == 2 ? " --precision bf16" : "");
        char *e = out_text("err"), want[300];
        if (run == 1)
            snprintf(want, sizeof want, "memory (cpu, fp32 products): weights %.1f MB, pre-trained copy 0.0 MB, "
                     "gradients 0.0 MB", 4 * n / 1e6);
        else
            snprintf(want, sizeof want, "memory (cpu, %s products): weights %.1f MB, pre-trained copy %.1f MB, gradients "
                     "%.1f MB, optimizer %.1f MB, adapters 0.0 MB, activations", run ? "bf16" : "fp32", 4 * n / 1e6,
                     4 * n / 1e6, 4 * n / 1e6, (8 * n + n / 8) / 1e6);
        CHECK(st == 0 && strstr(e, want), "memory plan: status %d, '%s' not in: %s", st, want, e);
        snprintf(want, sizeof want, "rounded inputs %.1f MB", run == 2 ? rounded / 1e6 : 0.0);
        CHECK(st == 0 && strstr(e, want), "memory plan: '%s' not in: %s", want, e);
        free(e);
    }
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/mofo-test-finetune-XXXXXX");
    if (!mkdtemp(tmp)) return 1;
    const char *models[] = {"gpt2-tiny", "llama-tiny", "llama-tiny-bf16"};
    for (int i = 0; i < 3; i++) {
        traj(models[i], "mofo", "");
        traj(models[i], "adamw", "");
    }
    /* two micro-batches of one row accumulated: the same steps (both rows have 15 trained positions) */
    traj("llama-tiny", "mofo", "--batch 1 --grad-accum 2");
    resume("gpt2-tiny", "--batch 2 --no-shuffle --lr-schedule constant --clip 0", 3, 1, "model.safetensors");
    resume("llama-tiny-bf16", "--batch 2 --no-shuffle --lr-schedule constant --clip 0", 3, 2, "model.safetensors");
    resume("llama-tiny", "--method l2 --reg 0.1 --batch 1 --grad-accum 2 --lr-schedule cosine --warmup 2 --clip 0.5 "
                         "--val-split 0.2 --eval-every 2 --seed 7", 7, 3, "model.safetensors");
    resume("gpt2-tiny", "--method lora-mofo --lora-rank 4 --batch 2 --no-shuffle --lr-schedule linear --clip 1", 3, 1,
           "adapter_model.safetensors");
    lora_train("gpt2-tiny", 5.420402526855469);
    lora_train("llama-tiny", 5.362552165985107);
    hft("gpt2-tiny");
    hft("llama-tiny");
    epochs();
    chat();
    errors();
    memory_plan();
    diff();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (!check_failed && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return CHECK_DONE();
}

/* mofo pretrain: a model from scratch.
 * - mofo_model_create_hf_init: the same seed gives the same bytes, another seed other matrices; norm
 *   gains exactly 1; every matrix has mean 0 and std 0.02 (per tensor |mean| < 0.002 and
 *   |std - 0.02| < 0.001; over all matrices together |mean| < 3e-4 and |std - 0.02| < 2e-4);
 * - the command on a tiny generated world (mofo world, 10 people; llama-tiny, byte tokenizer, 30
 *   steps): the mean loss of the last 5 steps is at least 1 nat below that of the first 5; two runs
 *   write byte-identical model.safetensors and metrics.jsonl, and so does a run interrupted by Ctrl-C
 *   after step 12 and resumed from its checkpoint; the saved model loads in mofo ppl and
 *   gives the trainer's last validation loss (the held-out last line, 1e-4 relative); mofo generate
 *   and mofo finetune take it;
 * - errors: missing required flags, an unknown flag, an unknown preset, a missing tokenizer folder,
 *   a missing data file, a bad schedule, lr 0: a "mofo pretrain:" message and a non-zero exit. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "check.h"
#include "io/json.h"
#include "model/model.h"
#include "train/train.h"
#include "text/utf8.h"

static char tmp[256];

/* runs "MOFO_BIN args", stdout to tmp/out.txt, stderr to tmp/err.txt; exit status */
static int mofo(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int mofo(const char *fmt, ...) {
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s >%s/out.txt 2>%s/err.txt", MOFO_BIN, args, tmp, tmp);
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *file_text(const char *dir, const char *name, size_t *len) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    char *s = NULL;
    size_t n = 0;
    mofo_err err = {0};
    if (mofo_read_file(p, &s, &n, &err)) return calloc(1, 1);
    if (len) *len = n;
    return s;
}

static int same_file(const char *a, const char *b, const char *name) {
    size_t na = 0, nb = 0;
    char *x = file_text(a, name, &na), *y = file_text(b, name, &nb);
    int same = na > 0 && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static void moments(const float *x, int64_t n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++) q += (x[i] - *mean) * (x[i] - *mean);
    *sd = sqrt(q / (double)n);
}

static void test_init(void) {
    mofo_model_config c;
    mofo_err err = {0};
    CHECK(mofo_config_preset(&c, "llama", "tiny", &err) == 0, "%s", err.msg);
    c.V = 261;
    mofo_model *a = NULL, *b = NULL, *d = NULL;
    CHECK(mofo_model_create_hf_init(&a, &c, 7, 0.02f, &err) == 0, "%s", err.msg);
    CHECK(mofo_model_create_hf_init(&b, &c, 7, 0.02f, &err) == 0, "%s", err.msg);
    CHECK(mofo_model_create_hf_init(&d, &c, 8, 0.02f, &err) == 0, "%s", err.msg);
    if (!a || !b || !d) goto out;
    CHECK(memcmp(a->params, b->params, a->n_floats * sizeof(float)) == 0, "seed 7 twice: different weights");
    int64_t n_all = 0, gains = 0;
    double s_all = 0, q_all = 0;
    for (int i = 0; i < a->n_p; i++) {
        const mofo_param *p = &a->p[i];
        const float *x = a->params + p->offset;
        if (p->ndim == 1) {
            int ones = 1;
            for (int64_t k = 0; k < p->numel; k++) ones &= x[k] == 1.0f;
            CHECK(ones && strstr(p->name, "norm"), "%s: a 1-dim tensor not all ones", p->name);
            gains++;
            continue;
        }
        double mean, sd;
        moments(x, p->numel, &mean, &sd);
        CHECK(fabs(mean) < 0.002 && fabs(sd - 0.02) < 0.001, "%s (%lld): mean %g std %g", p->name,
              (long long)p->numel, mean, sd);
        CHECK(memcmp(x, d->params + p->offset, (size_t)p->numel * sizeof(float)) != 0, "%s: seeds 7 and 8 agree",
              p->name);
        for (int64_t k = 0; k < p->numel; k++) s_all += x[k], q_all += (double)x[k] * x[k];
        n_all += p->numel;
    }
    double mean = s_all / (double)n_all, sd = sqrt(q_all / (double)n_all - mean * mean);
    CHECK(fabs(mean) < 3e-4 && fabs(sd - 0.02) < 2e-4, "all %lld matrix entries: mean %g std %g", (long long)n_all,
          mean, sd);
    CHECK(gains == 2 * c.L + 1, "%lld norm gains", (long long)gains);
    printf("init: %lld matrix entries, mean %.3g, std %.6f\n", (long long)n_all, mean, sd);
out:
    mofo_model_free(a);
    mofo_model_free(b);
    mofo_model_free(d);
}

/* the losses of metrics.jsonl (step lines) and the last val_loss */
static int read_metrics(const char *dir, double *loss, int max, double *val) {
    size_t len = 0;
    char *s = file_text(dir, "metrics.jsonl", &len);
    int n = 0;
    *val = NAN;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        mofo_json_doc *d = mofo_json_parse(line, strlen(line), NULL);
        const mofo_json *r = d ? mofo_json_root(d) : NULL, *l = mofo_json_get(r, "loss"), *v = mofo_json_get(r, "val_loss");
        if (l && l->type == MOFO_JSON_NUMBER && n < max) loss[n++] = l->number;
        if (v && v->type == MOFO_JSON_NUMBER) *val = v->number;
        mofo_json_free(d);
    }
    free(s);
    return n;
}

static const char *FLAGS = "--config llama-tiny --tokenizer byte --steps 30 --batch 4 --seq-len 128 --lr 3e-3 "
                           "--lr-schedule constant --val-split 0.001 --no-shuffle --seed 3 --quiet";

static void test_command(void) {
    char world[300], corpus[300], out1[300], out2[300], ft[300];
    snprintf(world, sizeof world, "%s/world", tmp);
    snprintf(corpus, sizeof corpus, "%s/corpus.jsonl", tmp);
    snprintf(out1, sizeof out1, "%s/m1", tmp);
    snprintf(out2, sizeof out2, "%s/m2", tmp);
    snprintf(ft, sizeof ft, "%s/ft", tmp);
    CHECK(mofo("world --out %s --people 10 --problems 10", world) == 0, "mofo world");
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "cat %s/knowledge_bios.jsonl %s/knowledge_qa.jsonl > %s", world, world, corpus);
    CHECK(system(cmd) == 0, "%s", cmd);

    CHECK(mofo("pretrain %s --data %s --out %s", FLAGS, corpus, out1) == 0, "pretrain: %s", file_text(tmp, "err.txt", NULL));
    CHECK(mofo("pretrain %s --data %s --out %s", FLAGS, corpus, out2) == 0, "pretrain again");
    CHECK(same_file(out1, out2, "model.safetensors"), "two runs: model.safetensors differs");
    CHECK(same_file(out1, out2, "metrics.jsonl"), "two runs: metrics.jsonl differs");
    CHECK(same_file(out1, out2, "config.json"), "two runs: config.json differs");
    char *cfg = file_text(out1, "config.json", NULL);
    CHECK(strstr(cfg, "\"vocab_size\": 261") && strstr(cfg, "\"model_type\": \"llama\"") &&
              strstr(cfg, "\"max_position_embeddings\": 128"),
          "config.json: %s", cfg);
    free(cfg);
    char *tj = file_text(out1, "tokenizer.json", NULL);
    CHECK(strlen(tj) > 1000, "tokenizer.json missing in %s", out1);
    free(tj);

    double loss[64], val = NAN;
    int n = read_metrics(out1, loss, 64, &val);
    CHECK(n == 30, "%d step lines", n);
    if (n == 30) {
        double first = 0, last = 0;
        for (int i = 0; i < 5; i++) first += loss[i] / 5, last += loss[n - 5 + i] / 5;
        CHECK(last < first - 1.0, "mean loss of the first 5 steps %.4f, of the last 5 %.4f", first, last);
        printf("loss: first 5 steps %.4f, last 5 %.4f, validation %.6f\n", first, last, val);
    }

    /* the validation example is the corpus's last line (file order, 1 held out): mofo ppl on its text */
    size_t len = 0;
    char *text = file_text(tmp, "corpus.jsonl", &len);
    while (len > 0 && text[len - 1] == '\n') text[--len] = 0;
    char *lastline = strrchr(text, '\n');
    lastline = lastline ? lastline + 1 : text;
    mofo_json_doc *d = mofo_json_parse(lastline, strlen(lastline), NULL);
    const mofo_json *t = d ? mofo_json_get(mofo_json_root(d), "text") : NULL;
    CHECK(t && t->type == MOFO_JSON_STRING && !strchr(t->str, '\'') && !strchr(t->str, '"'), "last line: %s", lastline);
    if (t && t->type == MOFO_JSON_STRING && !strchr(t->str, '\'')) {
        CHECK(mofo("ppl --model %s --text '%s' --json", out1, t->str) == 0, "ppl: %s", file_text(tmp, "err.txt", NULL));
        char *o = file_text(tmp, "out.txt", NULL);
        mofo_json_doc *pd = mofo_json_parse(o, strlen(o), NULL);
        const mofo_json *pl = pd ? mofo_json_get(mofo_json_root(pd), "loss") : NULL;
        double ppl_loss = pl && pl->type == MOFO_JSON_NUMBER ? pl->number : NAN;
        CHECK(fabs(ppl_loss - val) <= 1e-4 * fabs(val), "mofo ppl loss %.9g, trainer's validation %.9g", ppl_loss, val);
        printf("mofo ppl on the held-out line: %.6f (trainer %.6f)\n", ppl_loss, val);
        mofo_json_free(pd);
        free(o);
    }
    mofo_json_free(d);
    free(text);

    /* Ctrl-C after step 12 (the test hook raises SIGINT), then --resume: the uninterrupted run's bytes */
    char out3[300], env_cmd[4096];
    snprintf(out3, sizeof out3, "%s/m3", tmp);
    snprintf(env_cmd, sizeof env_cmd, "MOFO_TEST_SIGINT_AT_STEP=12 %s pretrain %s --data %s --out %s >%s/out.txt 2>%s/err.txt",
             MOFO_BIN, FLAGS, corpus, out3, tmp, tmp);
    int st = system(env_cmd);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 130, "interrupted run: status %d", st);
    CHECK(mofo("pretrain %s --data %s --out %s --resume %s/checkpoint-12", FLAGS, corpus, out3, out3) == 0, "resume: %s",
          file_text(tmp, "err.txt", NULL));
    CHECK(same_file(out1, out3, "model.safetensors"), "interrupted + resumed: model.safetensors differs");
    CHECK(same_file(out1, out3, "metrics.jsonl"), "interrupted + resumed: metrics.jsonl differs");

    CHECK(mofo("generate --model %s --prompt 'Question: ' --max-new 8", out1) == 0, "generate: %s",
          file_text(tmp, "err.txt", NULL));
    CHECK(mofo("finetune --model %s --data %s/math_train.jsonl --out %s --steps 1 --batch 1 --seq-len 512 --quiet", out1,
               world, ft) == 0,
          "finetune: %s", file_text(tmp, "err.txt", NULL));

    /* --pack: the corpus cut into rows of T = --seq-len tokens, as many as `mofo data --pack` makes
     * of the same examples (ceil(tokens / T)), each example's first token not predicted */
    CHECK(mofo("data --model %s --data %s --pack 64 --json", out1, corpus) == 0, "data --pack: %s",
          file_text(tmp, "err.txt", NULL));
    char *dj = file_text(tmp, "out.txt", NULL);
    const char *pr = dj ? strstr(dj, "\"packed_rows\": ") : NULL, *tk = dj ? strstr(dj, "\"tokens\": ") : NULL;
    long rows = pr ? atol(pr + 15) : -1, tokens = tk ? atol(tk + 10) : -1;
    CHECK(rows == (tokens + 63) / 64 && rows > 1, "mofo data: %ld tokens in %ld packed rows", tokens, rows);
    free(dj);
    CHECK(mofo("pretrain --config llama-tiny --tokenizer byte --steps 3 --batch 4 --seq-len 64 --pack --data %s --out %s/pk",
               corpus, tmp) == 0,
          "pretrain --pack: %s", file_text(tmp, "err.txt", NULL));
    char *pe = file_text(tmp, "err.txt", NULL), want[64];
    snprintf(want, sizeof want, ": %ld train / 0 validation examples", rows);
    CHECK(pe && strstr(pe, want) && strstr(pe, "T=64,"), "pretrain --pack: want \"%s\" and T=64 in \"%s\"", want, pe);
    free(pe);
    /* the rows themselves: epoch 1's differ from epoch 0's, with the same tokens in all */
    {
        mofo_model_config tc;
        mofo_err err = {0};
        CHECK(mofo_config_preset(&tc, "llama", "tiny", &err) == 0, "%s", err.msg);
        tc.V = 261, tc.max_T = 64;
        mofo_train_opts o;
        mofo_train_opts_init(&o);
        o.scratch = &tc, o.tokenizer_dir = out1, o.data_path = corpus, o.method = MOFO_METHOD_ADAMW;
        o.steps = 1000, o.batch = 4, o.seq_len = 64, o.pack = 1, o.lr = 1e-3, o.init_std = 0.02;
        mofo_trainer *tr = NULL;
        CHECK(mofo_trainer_create(&tr, &o, &err) == 0, "%s", err.msg);
        if (tr) {
            size_t n0 = tr->train.n;
            long sum0 = 0, sum1 = 0, same = 0;
            int32_t *first = malloc(64 * n0 * sizeof *first);
            for (size_t r = 0; r < n0 && first; r++) {
                memcpy(first + 64 * r, tr->train.ex[r].ids, (size_t)tr->train.ex[r].len * sizeof *first);
                for (int k = 0; k < tr->train.ex[r].len; k++) sum0 += tr->train.ex[r].ids[k];
            }
            mofo_step_metrics mt;
            while (tr->micro <= tr->n_batches && mofo_trainer_step(tr, &mt, &err) == 0) {}
            CHECK(tr->packed_epoch == 1 && tr->train.n == n0, "after epoch 0: rows of epoch %lld, %zu rows of %zu",
                  (long long)tr->packed_epoch, tr->train.n, n0);
            for (size_t r = 0; r < tr->train.n && r < n0 && first; r++) {
                same += memcmp(first + 64 * r, tr->train.ex[r].ids, (size_t)tr->train.ex[r].len * sizeof *first) == 0;
                for (int k = 0; k < tr->train.ex[r].len; k++) sum1 += tr->train.ex[r].ids[k];
            }
            CHECK(sum0 == sum1 && same < (long)n0 / 4, "epoch 1: %ld of %zu rows as in epoch 0; token sums %ld, %ld", same,
                  n0, sum0, sum1);
            free(first);
            mofo_trainer_free(tr);
        }
    }
    /* packed rows are drawn anew each epoch from (seed, epoch): a run stopped in its second epoch and
     * resumed equals the uninterrupted one */
    long per_epoch = (rows + 3) / 4, stop = per_epoch + 2;
    char pk1[300], pk2[300], pflags[300];
    snprintf(pk1, sizeof pk1, "%s/pk1", tmp), snprintf(pk2, sizeof pk2, "%s/pk2", tmp);
    snprintf(pflags, sizeof pflags, "--config llama-tiny --tokenizer byte --steps %ld --batch 4 --seq-len 64 --pack --quiet",
             2 * per_epoch + 1);
    CHECK(mofo("pretrain %s --data %s --out %s", pflags, corpus, pk1) == 0, "packed run: %s", file_text(tmp, "err.txt", NULL));
    char pcmd[4096];
    snprintf(pcmd, sizeof pcmd, "MOFO_TEST_SIGINT_AT_STEP=%ld %s pretrain %s --data %s --out %s >%s/out.txt 2>%s/err.txt",
             stop, MOFO_BIN, pflags, corpus, pk2, tmp, tmp);
    int pst = system(pcmd);
    CHECK(pst != -1 && WIFEXITED(pst) && WEXITSTATUS(pst) == 130, "interrupted packed run: status %d", pst);
    CHECK(mofo("pretrain %s --data %s --out %s --resume %s/checkpoint-%ld", pflags, corpus, pk2, pk2, stop) == 0,
          "packed resume: %s", file_text(tmp, "err.txt", NULL));
    CHECK(same_file(pk1, pk2, "model.safetensors") && same_file(pk1, pk2, "metrics.jsonl"),
          "packed: interrupted in epoch 2 + resumed differs from the uninterrupted run");

    /* errors */
    struct {
        const char *args;
        const char *why;
    } bad[] = {
        {"--tokenizer byte --data %s --out %s/e", "no --config"},
        {"--config llama-tiny --tokenizer byte --out %.0s%s/e", "no --data"},
        {"--config llama-tiny --tokenizer byte --data %s --out %s/e --bogus", "unknown flag"},
        {"--config llama-huge --tokenizer byte --data %s --out %s/e", "unknown preset"},
        {"--config nope --tokenizer byte --data %s --out %s/e", "no such config"},
        {"--config llama-tiny --tokenizer /no/such/dir --data %s --out %s/e", "missing tokenizer"},
        {"--config llama-tiny --tokenizer byte --data %s.missing --out %s/e", "missing data"},
        {"--config llama-tiny --tokenizer byte --data %s --out %s/e --lr-schedule sideways", "bad schedule"},
        {"--config llama-tiny --tokenizer byte --data %s --out %s/e --lr 0", "lr 0"},
        {"--config llama-tiny --tokenizer byte --data %s --out %s/e --steps -1", "negative steps"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char args[1200];
        snprintf(args, sizeof args, bad[i].args, corpus, tmp);
        int rc = mofo("pretrain %s", args);
        char *e = file_text(tmp, "err.txt", NULL);
        CHECK(rc != 0 && strstr(e, "mofo pretrain") != NULL, "%s: exit %d, stderr \"%s\"", bad[i].why, rc, e);
        free(e);
    }
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/mofo_test_pretrain_XXXXXX");
    if (!mkdtemp(tmp)) return 1;
    test_init();
    test_command();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (check_failed == 0 && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return CHECK_DONE();
}

/* mofo ppl end to end: a random Llama saved with a tokenizer.json; --text, --file and --ids of the
 * same tokens give the loss the library computes, and {"tokens": N} counts the predicted positions. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "check.h"
#include "run_cmd.h"
#include "model/model.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

static char tmpdir[256];

/* runs cmd, returns its stdout (malloc'd) and exit status */
static char *run(const char *cmd, int *status) { return run_capture(tmpdir, cmd, 0, status); }

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mofo-test-ppl-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    mofo_err err = {0};
    char src[512], dst[512];
    snprintf(src, sizeof src, "%s/tokenizers/llama3-style.json", MOFO_FIXTURES);
    mofo_tokenizer *tok = NULL;
    CHECK(mofo_tokenizer_load_file(&tok, src, &err) == 0, "%s", err.msg);
    if (!tok) return CHECK_DONE();
    mofo_model_config c;
    mofo_config_preset(&c, "llama", "tiny", &err);
    c.V = mofo_tokenizer_vocab_size(tok);
    mofo_model *m = NULL;
    CHECK(mofo_model_create(&m, &c, 5, 0.05f, &err) == 0, "%s", err.msg);
    snprintf(dst, sizeof dst, "%s/model", tmpdir);
    CHECK(m && mofo_model_save(m, dst, 0, &err) == 0, "%s", err.msg);
    char *tj = NULL;
    size_t tl = 0;
    CHECK(mofo_read_file(src, &tj, &tl, &err) == 0, "%s", err.msg);
    char p[700];
    snprintf(p, sizeof p, "%s/tokenizer.json", dst);
    FILE *f = fopen(p, "wb");
    if (f && tj) fwrite(tj, 1, tl, f);
    if (f) fclose(f);
    free(tj);

    const char *text = "Hello world, hello again. Numbers 12345 and tabs\tok";
    mofo_ids ids = {0};
    CHECK(mofo_tokenizer_encode(tok, text, strlen(text), 1, &ids, &err) == 0, "%s", err.msg);
    int n = (int)ids.len;
    CHECK(n >= 5, "%d tokens", n);
    int *in = malloc(sizeof(int) * (size_t)n), *tg = malloc(sizeof(int) * (size_t)n);
    char list[4000] = "";
    for (int i = 0; i < n; i++) {
        in[i] = ids.ids[i];
        tg[i] = i + 1 < n ? ids.ids[i + 1] : -100;
        snprintf(list + strlen(list), sizeof list - strlen(list), i ? ",%d" : "%d", in[i]);
    }
    float loss = NAN;
    CHECK(m && mofo_model_forward(m, in, tg, 1, n, &loss, &err) == 0, "%s", err.msg);

    snprintf(p, sizeof p, "%s/text.txt", tmpdir);
    f = fopen(p, "wb");
    if (f) fputs(text, f), fclose(f);
    char cmds[3][6000];
    snprintf(cmds[0], sizeof cmds[0], "'%s' ppl --model '%s' --text '%s' --json", MOFO_BIN, dst, text);
    snprintf(cmds[1], sizeof cmds[1], "'%s' ppl --model '%s' --file '%s' --json", MOFO_BIN, dst, p);
    snprintf(cmds[2], sizeof cmds[2], "'%s' ppl --model '%s' --ids %s --json", MOFO_BIN, dst, list);
    for (int k = 0; k < 3; k++) {
        int st;
        char *out = run(cmds[k], &st);
        double l = NAN, pp = NAN;
        int tokens = -1;
        int got = out ? sscanf(out, "{\"loss\": %lf, \"ppl\": %lf, \"tokens\": %d}", &l, &pp, &tokens) : 0;
        CHECK(st == 0 && got == 3, "command %d: status %d, output %s", k, st, out ? out : "(none)");
        CHECK(fabs(l - loss) <= 1e-6 && fabs(pp - exp(loss)) <= 1e-4 * exp(loss) && tokens == n - 1,
              "command %d: %s vs loss %.9g over %d", k, out ? out : "", loss, n - 1);
        free(out);
    }
    /* --no-special: the tokens of add_special_tokens=False */
    mofo_ids plain = {0};
    CHECK(mofo_tokenizer_encode(tok, text, strlen(text), 0, &plain, &err) == 0, "%s", err.msg);
    int st;
    char cmd[2600], want[64];
    snprintf(cmd, sizeof cmd, "'%s' ppl --model '%s' --text '%s' --no-special --json", MOFO_BIN, dst, text);
    snprintf(want, sizeof want, "\"tokens\": %d}", (int)plain.len - 1);
    char *out = run(cmd, &st);
    CHECK(st == 0 && out && strstr(out, want), "--no-special: %s, want %s", out ? out : "", want);
    free(out);
    mofo_ids_free(&plain);
    /* text without a tokenizer.json: exit 1 and a message */
    snprintf(cmd, sizeof cmd, "'%s' ppl --model '%s/gpt2-tiny' --text hi 2>/dev/null", MOFO_BIN, MOFO_FIXTURES);
    out = run(cmd, &st);
    CHECK(st == 1, "--text without tokenizer.json: status %d", st);
    free(out);

    mofo_ids_free(&ids);
    free(in);
    free(tg);
    mofo_tokenizer_free(tok);
    mofo_model_free(m);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return CHECK_DONE();
}

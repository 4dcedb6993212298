/* mofo eval: perplexity, multiple-choice accuracy and generation exact match over JSONL files. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "eval/eval.h"
#include "io/strbuf.h"
#include "load.h"
#include "threads.h"

typedef struct {
    const char *model_dir, *adapter, *device, *precision, *stop, *tpl;
    int64_t max_new, threads;
    int json, bos;
} eval_args;

static eval_args A;
static const char *task_dummy; /* --task is collected before args_parse (it may repeat) */
static const arg_spec SPECS[] = {
    {"model", ARG_STR, &A.model_dir, "DIR", "checkpoint directory with tokenizer.json; required"},
    {"task", ARG_STR, &task_dummy, "KIND:FILE", "ppl:FILE, mc:FILE or gen:FILE (JSONL); repeat for several tasks"},
    {"max-new", ARG_INT, &A.max_new, "N", "gen: tokens generated at most per prompt (default 256)"},
    {"stop", ARG_STR, &A.stop, "S|S", "gen: stop strings separated by '|', with \\n \\t \\| \\\\ escapes "
                                      "(default \"Question:|</s>|<|im_end|>\")"},
    {"template", ARG_STR, &A.tpl, "T",
     "gen: wrap each prompt as a user turn: auto (the model's own chat_template, else tulu), model, tulu, chatml, llama2, "
     "plain (default none)"},
    {"bos", ARG_FLAG, &A.bos, NULL, "mc/gen: put BOS before the context/prompt (lm-eval's add_bos_token; default off)"},
    {"json", ARG_FLAG, &A.json, NULL, "print {\"tasks\": [{...}, ...]}"},
    {"adapter", ARG_STR, &A.adapter, "DIR", "a LoRA adapter (PEFT format) merged into the model in memory"},
    {"device", ARG_STR, &A.device, "cpu|cuda", CLI_DEVICE_HELP},
    {"precision", ARG_STR, &A.precision, "fp32|tf32|bf16", CLI_PRECISION_HELP},
    {"threads", ARG_INT, &A.threads, "N", "threads for OpenMP and OpenBLAS (default: all cores)"},
};
#define N_SPECS (int)(sizeof SPECS / sizeof SPECS[0])

void cmd_eval_help(FILE *out) {
    args_help(out, "eval", "--model DIR --task KIND:FILE [--task ...] [--max-new N] [--stop S] [--template T] [--bos] [--adapter DIR] [--json]",
              SPECS, N_SPECS);
    fprintf(out,
            "\nTasks (one JSON object per line):\n"
            "  ppl:FILE  {\"text\": ...}: loss = summed NLL / predicted tokens, ppl = exp(loss)\n"
            "  mc:FILE   {\"context\": ..., \"choices\": [...], \"gold\": I}: acc (argmax log-likelihood of the\n"
            "            choice after the context) and acc_norm (log-likelihood / characters of the choice)\n"
            "  gen:FILE  {\"prompt\": ..., \"answer\": ...}: greedy generation until a stop string or EOS;\n"
            "            strict_match (number after \"#### \"), flexible_extract (last number), exact_match\n"
            "            (strict where the output has \"#### \", else flexible)\n");
}

/* "a|b\|c\n" -> {"a", "b|c\n"}; the strings live in *buf */
static int split_stops(const char *s, char **buf, const char ***out) {
    size_t n = strlen(s);
    char *b = malloc(n + 1);
    const char **v = malloc(sizeof(char *) * (n + 1));
    if (!b || !v) {
        free(b);
        free(v);
        return -1;
    }
    int k = 0;
    size_t o = 0;
    v[k++] = b;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '\\' && i + 1 < n) {
            char e = s[++i];
            b[o++] = e == 'n' ? '\n' : e == 't' ? '\t' : e;
        } else if (ch == '|') {
            b[o++] = 0;
            v[k++] = b + o;
        } else {
            b[o++] = ch;
        }
    }
    b[o] = 0;
    *buf = b;
    *out = v;
    return k;
}

int cmd_eval(int argc, char **argv) {
    memset(&A, 0, sizeof A);
    A.max_new = 256;
    /* take the --task flags out (they may repeat), parse the rest */
    char **rest = malloc(sizeof(char *) * (size_t)(argc + 1));
    const char **tasks = malloc(sizeof(char *) * (size_t)(argc + 1));
    if (!rest || !tasks) {
        fprintf(stderr, "mofo eval: out of memory\n");
        free(rest);
        free(tasks);
        return 1;
    }
    int n_rest = 0, n_tasks = 0, rc = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--task") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "mofo eval: --task needs a value\n");
                rc = 2;
                break;
            }
            tasks[n_tasks++] = argv[++i];
        } else if (strncmp(argv[i], "--task=", 7) == 0) {
            tasks[n_tasks++] = argv[i] + 7;
        } else {
            rest[n_rest++] = argv[i];
        }
    }
    if (!rc && args_parse("eval", n_rest, rest, SPECS, N_SPECS)) rc = 2;
    free(rest);
    if (!rc && !A.model_dir) {
        fprintf(stderr, "mofo eval: --model DIR is required (see 'mofo help eval')\n");
        rc = 2;
    }
    if (!rc && n_tasks == 0) {
        fprintf(stderr, "mofo eval: give at least one --task KIND:FILE (ppl, mc, gen)\n");
        rc = 2;
    }
    for (int i = 0; !rc && i < n_tasks; i++) {
        const char *t = tasks[i];
        if (!((strncmp(t, "ppl:", 4) == 0 && t[4]) || (strncmp(t, "mc:", 3) == 0 && t[3]) ||
              (strncmp(t, "gen:", 4) == 0 && t[4]))) {
            fprintf(stderr, "mofo eval: --task '%s': expected ppl:FILE, mc:FILE or gen:FILE\n", t);
            rc = 2;
        }
    }
    if (!rc && (A.max_new < 1 || A.max_new > 1000000)) {
        fprintf(stderr, "mofo eval: --max-new %lld: must be 1..1000000\n", (long long)A.max_new);
        rc = 2;
    }
    char *stop_buf = NULL;
    const char **stops = NULL;
    int n_stops = 0;
    if (!rc && (n_stops = split_stops(A.stop ? A.stop : "Question:|</s>|<|im_end|>", &stop_buf, &stops)) < 0) {
        fprintf(stderr, "mofo eval: out of memory\n");
        rc = 1;
    }
    if (rc) {
        free(tasks);
        return rc;
    }
    cli_set_threads((int)A.threads);
    mofo_err err = {0};
    mofo_tokenizer *tok = NULL;
    mofo_model *m = NULL;
    if (mofo_tokenizer_load_dir(&tok, A.model_dir, &err)) {
        fprintf(stderr, "mofo eval: %s\n", err.msg);
        rc = 1;
    } else {
        rc = cli_load_model("eval", A.model_dir, A.adapter, A.device, A.precision, &m);
    }
    int tpl = -1;
    mofo_chat *chat = NULL;
    if (!rc && A.tpl) rc = cli_chat_template("eval", A.tpl, A.model_dir, tok, MOFO_TPL_TULU, &tpl, &chat);
    mofo_strbuf js = {0};
    mofo_sb_puts(&js, "{\"tasks\": [");
    for (int i = 0; !rc && i < n_tasks; i++) {
        const char *t = tasks[i], *file = strchr(t, ':') + 1;
        if (i) mofo_sb_puts(&js, ", ");
        mofo_sb_printf(&js, "{\"task\": \"%.*s\", \"file\": ", (int)(file - t - 1), t);
        mofo_sb_json_string(&js, file, strlen(file));
        if (t[0] == 'p') {
            mofo_ppl_result r;
            if (!(rc = mofo_eval_ppl(m, tok, file, &r, &err))) {
                double loss = r.nll / (double)r.tokens;
                mofo_sb_printf(&js, ", \"docs\": %ld, \"tokens\": %ld, \"loss\": %.9g, \"ppl\": %.9g}", r.docs, r.tokens,
                               loss, exp(loss));
                if (!A.json)
                    printf("ppl  %s: %ld texts, %ld predicted tokens, loss %.6f, ppl %.4f\n", file, r.docs, r.tokens,
                           loss, exp(loss));
            }
        } else if (t[0] == 'm') {
            mofo_mc_result r;
            if (!(rc = mofo_eval_mc(m, tok, file, A.bos, &r, &err))) {
                double acc = (double)r.correct / (double)r.n, accn = (double)r.correct_norm / (double)r.n;
                mofo_sb_printf(&js, ", \"n\": %ld, \"acc\": %.9g, \"acc_norm\": %.9g}", r.n, acc, accn);
                if (!A.json) printf("mc   %s: %ld questions, acc %.4f, acc_norm %.4f\n", file, r.n, acc, accn);
            }
        } else {
            mofo_gen_eval_opts o = {.max_new = (int)A.max_new, .stop = stops, .n_stop = n_stops, .tpl = tpl,
                                    .chat = chat, .add_bos = A.bos};
            mofo_gen_result r;
            if (!(rc = mofo_eval_gen(m, tok, file, &o, &r, &err))) {
                double n = (double)r.n;
                mofo_sb_printf(&js, ", \"n\": %ld, \"exact_match\": %.9g, \"strict_match\": %.9g, \"flexible_extract\": %.9g}",
                               r.n, r.em / n, r.strict / n, r.flexible / n);
                if (!A.json)
                    printf("gen  %s: %ld prompts, exact_match %.4f (strict %.4f, flexible %.4f)\n", file, r.n, r.em / n,
                           r.strict / n, r.flexible / n);
            }
        }
        if (rc) {
            fprintf(stderr, "mofo eval: %s\n", err.msg);
            rc = 1;
        }
    }
    mofo_sb_puts(&js, "]}\n");
    if (!rc && A.json) {
        if (js.failed) {
            fprintf(stderr, "mofo eval: out of memory\n");
            rc = 1;
        } else {
            fputs(js.data, stdout);
        }
    }
    mofo_sb_free(&js);
    mofo_model_free(m);
    mofo_tokenizer_free(tok);
    mofo_chat_free(chat);
    free(stop_buf);
    free(stops);
    free(tasks);
    return rc;
}

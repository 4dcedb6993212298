/* mofo generate: continue a prompt with a model, greedily or by sampling, with a KV cache. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "eval/eval.h"
#include "load.h"
#include "io/strbuf.h"
#include "model/infer.h"
#include "threads.h"

typedef struct {
    const char *model_dir, *adapter, *device, *precision, *prompt, *prompt_ids, *tpl;
    int64_t max_new, seed, threads;
    double temperature, top_p;
    int no_cache, ignore_eos, json;
} gen_args;

static gen_args A;
static const arg_spec SPECS[] = {
    {"model", ARG_STR, &A.model_dir, "DIR", "checkpoint directory (config.json + safetensors); required"},
    {"prompt", ARG_STR, &A.prompt, "STR", "prompt text, tokenized with DIR/tokenizer.json (BOS first when it adds one)"},
    {"prompt-ids", ARG_STR, &A.prompt_ids, "1,2,3", "prompt as token ids, comma-separated"},
    {"template", ARG_STR, &A.tpl, "T",
     "wrap --prompt as one user turn: auto (the model's own chat_template, else tulu), model, tulu, chatml, llama2, plain "
     "(default: none)"},
    {"max-new", ARG_INT, &A.max_new, "N", "tokens to generate at most (default 32)"},
    {"temperature", ARG_DOUBLE, &A.temperature, "X", "sampling temperature; 0 = greedy (default 0)"},
    {"top-p", ARG_DOUBLE, &A.top_p, "P", "nucleus sampling: keep the most probable tokens up to P (default 1 = all)"},
    {"seed", ARG_INT, &A.seed, "S", "seed of the sampling RNG (default 0)"},
    {"no-cache", ARG_FLAG, &A.no_cache, NULL, "recompute the whole sequence at each step (no KV cache; for checking)"},
    {"ignore-eos", ARG_FLAG, &A.ignore_eos, NULL, "do not stop at the end-of-sequence token"},
    {"json", ARG_FLAG, &A.json, NULL, "print {\"ids\": [new ids], \"text\": \"new text\"} (text null without tokenizer.json)"},
    {"adapter", ARG_STR, &A.adapter, "DIR", "a LoRA adapter (PEFT format) merged into the model in memory"},
    {"device", ARG_STR, &A.device, "cpu|cuda", CLI_DEVICE_HELP},
    {"precision", ARG_STR, &A.precision, "fp32|tf32|bf16", CLI_PRECISION_HELP},
    {"threads", ARG_INT, &A.threads, "N", "threads for OpenMP and OpenBLAS (default: all cores)"},
};
#define N_SPECS (int)(sizeof SPECS / sizeof SPECS[0])

void cmd_generate_help(FILE *out) {
    args_help(out, "generate", "--model DIR (--prompt STR | --prompt-ids 1,2,3) [--template T] [--max-new N] "
                               "[--temperature X] [--top-p P] [--seed S] [--no-cache] [--ignore-eos] [--adapter DIR] [--json]",
              SPECS, N_SPECS);
    fprintf(out, "\nGreedy when the temperature is 0. Generation stops after --max-new tokens or at the EOS token\n"
                 "(tokenizer.json's, else config.json's eos_token_id), which is printed among the ids; --ignore-eos\n"
                 "goes on to --max-new. Only the new tokens are printed.\n");
}

static int file_exists(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

int cmd_generate(int argc, char **argv) {
    memset(&A, 0, sizeof A);
    A.max_new = 32;
    A.top_p = 1.0;
    A.threads = 0;
    if (args_parse("generate", argc, argv, SPECS, N_SPECS)) return 2;
    if (!A.model_dir) {
        fprintf(stderr, "mofo generate: --model DIR is required (see 'mofo help generate')\n");
        return 2;
    }
    if (!!A.prompt + !!A.prompt_ids != 1) {
        fprintf(stderr, "mofo generate: give exactly one of --prompt, --prompt-ids\n");
        return 2;
    }
    if (A.tpl && A.prompt_ids) {
        fprintf(stderr, "mofo generate: --template applies to --prompt text, not to --prompt-ids\n");
        return 2;
    }
    if (A.max_new < 0 || A.max_new > 1000000) {
        fprintf(stderr, "mofo generate: --max-new %lld: must be 0..1000000\n", (long long)A.max_new);
        return 2;
    }
    if (A.temperature < 0 || A.top_p < 0 || A.top_p > 1) {
        fprintf(stderr, "mofo generate: --temperature must be >= 0 and --top-p within 0..1\n");
        return 2;
    }
    cli_set_threads((int)A.threads);
    mofo_err err = {0};
    mofo_tokenizer *tok = NULL;
    mofo_model *m = NULL;
    int *ids = NULL, *gen = NULL, n = 0, ng = 0, rc = 0;
    if ((A.prompt || file_exists(A.model_dir, "tokenizer.json")) && mofo_tokenizer_load_dir(&tok, A.model_dir, &err)) {
        fprintf(stderr, "mofo generate: %s\n", err.msg);
        return 1;
    }
    int tpl = -1;
    mofo_chat *chat = NULL;
    if (A.tpl && (rc = cli_chat_template("generate", A.tpl, A.model_dir, tok, MOFO_TPL_TULU, &tpl, &chat))) {
        mofo_tokenizer_free(tok);
        return rc;
    }
    if (A.prompt) {
        mofo_ids v = {0};
        if (mofo_prompt_ids(tok, A.prompt, strlen(A.prompt), tpl, chat, mofo_tokenizer_adds_bos(tok), &v, &err)) {
            fprintf(stderr, "mofo generate: %s\n", err.msg);
            rc = 1;
        } else if (!(ids = malloc(sizeof(int) * (v.len ? v.len : 1)))) {
            fprintf(stderr, "mofo generate: out of memory\n");
            rc = 1;
        } else {
            for (size_t i = 0; i < v.len; i++) ids[i] = v.ids[i];
            n = (int)v.len;
        }
        mofo_ids_free(&v);
    } else if ((n = cli_parse_ids("generate", "prompt-ids", A.prompt_ids, &ids)) < 0) {
        rc = 2;
    }
    if (!rc && n == 0) {
        fprintf(stderr, "mofo generate: the prompt has no token\n");
        rc = 2;
    }
    if (!rc) rc = cli_load_model("generate", A.model_dir, A.adapter, A.device, A.precision, &m);
    for (int i = 0; !rc && i < n; i++)
        if (ids[i] >= m->cfg.V) {
            fprintf(stderr, "mofo generate: token id %d (entry %d) is outside %s's vocabulary of %d\n", ids[i], i + 1,
                    A.model_dir, m->cfg.V);
            rc = 2;
        }
    if (!rc) {
        int eos = A.ignore_eos ? -1 : tok && mofo_tokenizer_eos(tok) >= 0 ? mofo_tokenizer_eos(tok) : cli_config_eos(m);
        mofo_gen_opts o = {.max_new = (int)A.max_new, .temperature = A.temperature, .top_p = A.top_p,
                           .seed = (uint64_t)A.seed, .eos = eos, .no_cache = A.no_cache};
        if (mofo_generate(m, ids, n, &o, &gen, &ng, &err)) {
            fprintf(stderr, "mofo generate: %s\n", err.msg);
            rc = 1;
        }
    }
    mofo_strbuf text = {0};
    int have_text = 0;
    if (!rc && tok) {
        int32_t *g32 = malloc(sizeof(int32_t) * (size_t)(ng ? ng : 1));
        for (int i = 0; g32 && i < ng; i++) g32[i] = gen[i];
        if (!g32 || mofo_tokenizer_decode(tok, g32, (size_t)ng, 1, &text, &err)) {
            fprintf(stderr, "mofo generate: %s\n", g32 ? err.msg : "out of memory");
            rc = 1;
        }
        have_text = 1;
        free(g32);
    }
    if (!rc) {
        if (A.json) {
            mofo_strbuf out = {0};
            mofo_sb_puts(&out, "{\"ids\": [");
            for (int i = 0; i < ng; i++) mofo_sb_printf(&out, "%s%d", i ? ", " : "", gen[i]);
            mofo_sb_puts(&out, "], \"text\": ");
            if (have_text)
                mofo_sb_json_string(&out, text.data ? text.data : "", text.len);
            else
                mofo_sb_puts(&out, "null");
            mofo_sb_puts(&out, "}\n");
            fputs(out.failed ? "{\"error\": \"out of memory\"}\n" : out.data, stdout);
            if (out.failed) rc = 1;
            mofo_sb_free(&out);
        } else if (have_text) {
            fwrite(text.data ? text.data : "", 1, text.len, stdout);
            fputc('\n', stdout);
        } else {
            for (int i = 0; i < ng; i++) printf("%s%d", i ? "," : "", gen[i]);
            printf("\n");
        }
    }
    mofo_sb_free(&text);
    free(gen);
    free(ids);
    mofo_model_free(m);
    mofo_tokenizer_free(tok);
    mofo_chat_free(chat);
    return rc;
}

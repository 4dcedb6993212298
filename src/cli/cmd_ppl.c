/* mofo ppl: the mean next-token negative log-likelihood of a text under a model, and its perplexity. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "load.h"
#include "commands.h"
#include "model/model.h"
#include "text/tokenizer.h"
#include "text/utf8.h"
#include "threads.h"

static const char *model_dir, *adapter_dir, *ids_arg, *text_arg, *file_arg, *device, *precision;
static int json_out, no_special;
static int64_t threads;

static const arg_spec SPECS[] = {
    {"model", ARG_STR, &model_dir, "DIR", "checkpoint directory (config.json + safetensors); required"},
    {"ids", ARG_STR, &ids_arg, "1,2,3", "token ids, comma-separated (at least 2)"},
    {"text", ARG_STR, &text_arg, "STR", "text, tokenized with DIR/tokenizer.json"},
    {"file", ARG_STR, &file_arg, "F", "a file whose text to tokenize with DIR/tokenizer.json"},
    {"no-special", ARG_FLAG, &no_special, NULL, "tokenize without the BOS/EOS the tokenizer adds by default"},
    {"json", ARG_FLAG, &json_out, NULL, "print {\"loss\": L, \"ppl\": P, \"tokens\": N}"},
    {"adapter", ARG_STR, &adapter_dir, "DIR", "a LoRA adapter (PEFT's adapter_config.json + adapter_model.safetensors), merged in memory"},
    {"device", ARG_STR, &device, "cpu|cuda", CLI_DEVICE_HELP},
    {"precision", ARG_STR, &precision, "fp32|tf32|bf16", CLI_PRECISION_HELP},
    {"threads", ARG_INT, &threads, "N", "threads for OpenMP and OpenBLAS (default: all cores)"},
};
#define N_SPECS (int)(sizeof SPECS / sizeof SPECS[0])

void cmd_ppl_help(FILE *out) {
    args_help(out, "ppl", "--model DIR (--ids 1,2,3 | --text STR | --file F) [--no-special] [--adapter DIR] [--json]", SPECS, N_SPECS);
    fprintf(out, "\nThe loss is the mean negative log-likelihood (nats) of each token given the ones before it,\n"
                 "over the N-1 predicted positions of N tokens; ppl = exp(loss).\n");
}

/* --text / --file through DIR's tokenizer (with BOS/EOS as add_special_tokens=True unless --no-special);
 * returns the count, -1 for a usage error, -2 for a failure */
static int tokenize(int **out) {
    mofo_err err = {0};
    mofo_tokenizer *tok = NULL;
    char *data = NULL;
    size_t len = 0;
    if (mofo_tokenizer_load_dir(&tok, model_dir, &err)) {
        fprintf(stderr, "mofo ppl: %s\n", err.msg);
        return -2;
    }
    if (file_arg && mofo_read_file(file_arg, &data, &len, &err)) {
        fprintf(stderr, "mofo ppl: %s\n", err.msg);
        mofo_tokenizer_free(tok);
        return -2;
    }
    mofo_ids v = {0};
    int rc = mofo_tokenizer_encode(tok, text_arg ? text_arg : data, text_arg ? strlen(text_arg) : len, !no_special,
                                   &v, &err);
    mofo_tokenizer_free(tok);
    free(data);
    if (rc) {
        fprintf(stderr, "mofo ppl: %s\n", err.msg);
        mofo_ids_free(&v);
        return -2;
    }
    int *ids = malloc(sizeof(int) * (v.len ? v.len : 1));
    if (!ids || v.len > INT32_MAX) {
        fprintf(stderr, "mofo ppl: out of memory\n");
        free(ids);
        mofo_ids_free(&v);
        return -2;
    }
    for (size_t i = 0; i < v.len; i++) ids[i] = v.ids[i];
    int n = (int)v.len;
    mofo_ids_free(&v);
    *out = ids;
    return n;
}

int cmd_ppl(int argc, char **argv) {
    if (args_parse("ppl", argc, argv, SPECS, N_SPECS)) return 2;
    if (!model_dir) {
        fprintf(stderr, "mofo ppl: --model DIR is required (see 'mofo help ppl')\n");
        return 2;
    }
    if (!!ids_arg + !!text_arg + !!file_arg != 1) {
        fprintf(stderr, "mofo ppl: give exactly one of --ids, --text, --file\n");
        return 2;
    }
    int *ids = NULL;
    int n = text_arg || file_arg ? tokenize(&ids) : cli_parse_ids("ppl", "ids", ids_arg, &ids);
    if (n < 0) return n == -1 ? 2 : 1;
    if (n < 2) {
        fprintf(stderr, "mofo ppl: %d token%s, at least 2 needed to predict one\n", n, n == 1 ? "" : "s");
        free(ids);
        return 2;
    }
    cli_set_threads((int)threads);
    mofo_err err = {0};
    mofo_model *m = NULL;
    int load_rc = cli_load_model("ppl", model_dir, adapter_dir, device, precision, &m);
    if (load_rc) {
        free(ids);
        return load_rc;
    }
    for (int i = 0; i < n; i++)
        if (ids[i] >= m->cfg.V) {
            fprintf(stderr, "mofo ppl: token id %d (entry %d) is outside %s's vocabulary of %d\n", ids[i], i + 1,
                    model_dir, m->cfg.V);
            free(ids);
            mofo_model_free(m);
            return 2;
        }
    int *tg = malloc(sizeof(int) * (size_t)n);
    float loss = NAN;
    int rc = 0;
    if (!tg) {
        fprintf(stderr, "mofo ppl: out of memory\n");
        rc = 1;
    } else {
        for (int i = 0; i < n; i++) tg[i] = i + 1 < n ? ids[i + 1] : -100;
        if (mofo_model_eval(m, ids, tg, 1, n, &loss, &err)) {
            fprintf(stderr, "mofo ppl: %s\n", err.msg);
            rc = 1;
        }
    }
    if (rc == 0) {
        if (json_out)
            printf("{\"loss\": %.9g, \"ppl\": %.9g, \"tokens\": %d}\n", loss, exp(loss), n - 1);
        else
            printf("loss %.6f  ppl %.4f  over %d predicted tokens\n", loss, exp(loss), n - 1);
    }
    free(tg);
    free(ids);
    mofo_model_free(m);
    return rc;
}

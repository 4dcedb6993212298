/* mofo tokenize: encode text or decode ids with a model's tokenizer.json. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "load.h"
#include "commands.h"
#include "io/strbuf.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

static const char *model_dir, *tok_file, *text_arg, *file_arg, *decode_arg;
static int json_out, special, skip_special;

static const arg_spec SPECS[] = {
    {"model", ARG_STR, &model_dir, "DIR", "model directory (tokenizer.json, tokenizer_config.json, config.json)"},
    {"tokenizer", ARG_STR, &tok_file, "FILE", "a tokenizer.json file instead of --model"},
    {"text", ARG_STR, &text_arg, "STR", "the text to encode"},
    {"file", ARG_STR, &file_arg, "F", "encode the contents of file F ('-' for standard input)"},
    {"decode", ARG_STR, &decode_arg, "1,2,3", "decode these ids (commas or spaces between them)"},
    {"json", ARG_FLAG, &json_out, NULL, "print {\"ids\": [...]} or {\"text\": \"...\"}"},
    {"special", ARG_FLAG, &special, NULL, "add BOS/EOS as the tokenizer's post-processor says (off by default)"},
    {"skip-special", ARG_FLAG, &skip_special, NULL, "when decoding, drop special tokens (kept by default)"},
};
#define N_SPECS (int)(sizeof SPECS / sizeof SPECS[0])

void cmd_tokenize_help(FILE *out) {
    args_help(out, "tokenize", "(--model DIR | --tokenizer FILE) (--text STR | --file F | --decode IDS) [--json] [--special]",
              SPECS, N_SPECS);
    fprintf(out, "\nWithout --json, encoding prints the ids on one line, then one line per token: id, then the\n"
                 "token's spelling as a JSON string. Invalid UTF-8 input is encoded as if each bad sequence\n"
                 "were U+FFFD (as Python's errors=\"replace\").\n");
}

static int read_stdin(char **data, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, stdin);
        if (n < cap) break;
        cap *= 2;
        char *nb = realloc(buf, cap);
        if (!nb) free(buf);
        buf = nb;
    }
    if (!buf) return -1;
    *data = buf;
    *len = n;
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    model_dir = tok_file = text_arg = file_arg = decode_arg = NULL;
    json_out = special = skip_special = 0;
    if (args_parse("tokenize", argc, argv, SPECS, N_SPECS)) return 2;
    if (!!model_dir + !!tok_file != 1) {
        fprintf(stderr, "mofo tokenize: give one of --model DIR or --tokenizer FILE\n");
        return 2;
    }
    if (!!text_arg + !!file_arg + !!decode_arg != 1) {
        fprintf(stderr, "mofo tokenize: give one of --text, --file or --decode\n");
        return 2;
    }
    mofo_err err = {0};
    mofo_tokenizer *tok = NULL;
    int rc = model_dir ? mofo_tokenizer_load_dir(&tok, model_dir, &err) : mofo_tokenizer_load_file(&tok, tok_file, &err);
    if (rc) {
        fprintf(stderr, "mofo tokenize: %s\n", err.msg);
        return 1;
    }
    mofo_strbuf out = {0};
    int status = 0;
    if (decode_arg) {
        int *ids = NULL;
        int parsed = cli_parse_ids("tokenize", "decode", decode_arg, &ids);
        size_t n = parsed > 0 ? (size_t)parsed : 0;
        if (parsed < 0) {
            status = 2;
        } else {
            mofo_strbuf text = {0};
            if (mofo_tokenizer_decode(tok, ids, n, skip_special, &text, &err)) {
                fprintf(stderr, "mofo tokenize: %s\n", err.msg);
                status = 1;
            } else if (json_out) {
                mofo_sb_puts(&out, "{\"text\": ");
                mofo_sb_json_string(&out, text.data ? text.data : "", text.len);
                mofo_sb_puts(&out, "}\n");
            } else {
                mofo_sb_append(&out, text.data ? text.data : "", text.len);
                mofo_sb_puts(&out, "\n");
            }
            mofo_sb_free(&text);
        }
        free(ids);
    } else {
        char *data = NULL;
        size_t len = 0;
        if (text_arg) {
            len = strlen(text_arg);
        } else if (strcmp(file_arg, "-") == 0 ? read_stdin(&data, &len) : mofo_read_file(file_arg, &data, &len, &err)) {
            fprintf(stderr, "mofo tokenize: %s\n", strcmp(file_arg, "-") == 0 ? "cannot read standard input" : err.msg);
            status = 1;
        }
        mofo_ids ids = {0};
        if (!status && mofo_tokenizer_encode(tok, text_arg ? text_arg : data, len, special, &ids, &err)) {
            fprintf(stderr, "mofo tokenize: %s\n", err.msg);
            status = 1;
        }
        if (!status) {
            mofo_sb_puts(&out, json_out ? "{\"ids\": [" : "");
            for (size_t i = 0; i < ids.len; i++) mofo_sb_printf(&out, i ? (json_out ? ", %d" : ",%d") : "%d", ids.ids[i]);
            mofo_sb_puts(&out, json_out ? "]}\n" : "\n");
            for (size_t i = 0; !json_out && i < ids.len; i++) {
                size_t tl = 0;
                const char *ts = mofo_tokenizer_token(tok, ids.ids[i], &tl);
                mofo_sb_printf(&out, "%d\t", ids.ids[i]);
                mofo_sb_json_string(&out, ts ? ts : "", tl);
                mofo_sb_puts(&out, "\n");
            }
        }
        mofo_ids_free(&ids);
        free(data);
    }
    if (!status && out.failed) {
        fprintf(stderr, "mofo tokenize: out of memory\n");
        status = 1;
    }
    if (!status) fwrite(out.data ? out.data : "", 1, out.len, stdout);
    mofo_sb_free(&out);
    mofo_tokenizer_free(tok);
    return status;
}

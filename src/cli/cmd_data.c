/* mofo data: load a JSONL data set as fine-tuning would, report what happened, show examples. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "load.h"
#include "io/strbuf.h"
#include "text/dataset.h"
#include "text/tokenizer.h"

static const char *model_dir, *tok_file, *data_path, *format_arg, *template_arg;
static int64_t max_len, show, seed, pack;
static double heldout;
static int skip_bad, json_out;

static const arg_spec SPECS[] = {
    {"model", ARG_STR, &model_dir, "DIR", "model directory (tokenizer.json, tokenizer_config.json, config.json)"},
    {"tokenizer", ARG_STR, &tok_file, "FILE", "a tokenizer.json file instead of --model"},
    {"data", ARG_STR, &data_path, "FILE", "the JSONL file"},
    {"format", ARG_STR, &format_arg, "F", "auto (default), messages, prompt_completion, alpaca, metamath, text, tokens"},
    {"template", ARG_STR, &template_arg, "T",
     "chat template: auto (default: the model's own chat_template when --model has one, else tulu), model, tulu, chatml, "
     "llama2, plain"},
    {"max-len", ARG_INT, &max_len, "N", "truncate examples to N tokens (default 0: no limit)"},
    {"skip-bad", ARG_FLAG, &skip_bad, NULL, "count and skip malformed lines instead of stopping at the first"},
    {"heldout", ARG_DOUBLE, &heldout, "FRAC", "hold out this fraction of the examples (default 0)"},
    {"seed", ARG_INT, &seed, "S", "shuffle seed for --heldout (default 0)"},
    {"pack", ARG_INT, &pack, "T", "pack the examples into rows of T tokens"},
    {"show", ARG_INT, &show, "N", "print the first N examples (default 0)"},
    {"json", ARG_FLAG, &json_out, NULL, "print the summary and examples as JSON lines"},
};
#define N_SPECS (int)(sizeof SPECS / sizeof SPECS[0])

void cmd_data_help(FILE *out) {
    args_help(out, "data", "(--model DIR | --tokenizer FILE) --data FILE [FLAGS]", SPECS, N_SPECS);
    fprintf(out, "\nLoads the data set as fine-tuning does and reports lines, examples, tokens, trained tokens,\n"
                 "truncations and skipped lines. --show prints examples as ids with their labels\n"
                 "(-100: no loss), the decoded text, the text in runs with the trained ones in [brackets]\n"
                 "(the label mask), and the decoded text of the trained tokens.\n");
}

/* The text in runs of tokens that are all trained or all not: "untrained" ["trained"] ... (JSON:
 * [{"text": ..., "trained": true}, ...]). Token t is trained when labels[t] is not -100. */
static void put_runs(mofo_strbuf *sb, const mofo_tokenizer *tok, const mofo_example *e) {
    mofo_err err = {0};
    for (int32_t i = 0, j; i < e->len; i = j) {
        int tr = e->labels[i] != MOFO_IGNORE_INDEX;
        for (j = i + 1; j < e->len && (e->labels[j] != MOFO_IGNORE_INDEX) == tr;) j++;
        mofo_strbuf run = {0};
        mofo_tokenizer_decode(tok, e->ids + i, (size_t)(j - i), 0, &run, &err);
        if (json_out) mofo_sb_puts(sb, i ? ", {\"text\": " : "{\"text\": ");
        else mofo_sb_puts(sb, tr ? " [" : i ? " " : "");
        mofo_sb_json_string(sb, run.data ? run.data : "", run.len);
        if (json_out) mofo_sb_printf(sb, ", \"trained\": %s}", tr ? "true" : "false");
        else if (tr) mofo_sb_puts(sb, "]");
        mofo_sb_free(&run);
    }
}

static void print_example(const mofo_tokenizer *tok, const mofo_example *e, size_t index) {
    mofo_strbuf sb = {0};
    int32_t *trained = malloc(((size_t)e->len + 1) * sizeof *trained);
    size_t nt = 0;
    for (int32_t i = 0; i < e->len; i++)
        if (e->labels[i] != MOFO_IGNORE_INDEX && trained) trained[nt++] = e->labels[i];
    mofo_strbuf text = {0}, resp = {0};
    mofo_err err = {0};
    if (tok) {
        mofo_tokenizer_decode(tok, e->ids, (size_t)e->len, 0, &text, &err);
        if (trained) mofo_tokenizer_decode(tok, trained, nt, 0, &resp, &err);
    }
    if (json_out) {
        mofo_sb_printf(&sb, "{\"example\": %zu, \"line\": %d, \"input_ids\": [", index, e->line);
        for (int32_t i = 0; i < e->len; i++) mofo_sb_printf(&sb, i ? ", %d" : "%d", e->ids[i]);
        mofo_sb_puts(&sb, "], \"labels\": [");
        for (int32_t i = 0; i < e->len; i++) mofo_sb_printf(&sb, i ? ", %d" : "%d", e->labels[i]);
        mofo_sb_puts(&sb, "], \"text\": ");
        mofo_sb_json_string(&sb, text.data ? text.data : "", text.len);
        mofo_sb_puts(&sb, ", \"trained_text\": ");
        mofo_sb_json_string(&sb, resp.data ? resp.data : "", resp.len);
        if (tok) {
            mofo_sb_puts(&sb, ", \"runs\": [");
            put_runs(&sb, tok, e);
            mofo_sb_puts(&sb, "]");
        }
        mofo_sb_puts(&sb, "}\n");
    } else {
        mofo_sb_printf(&sb, "example %zu (line %d, %d tokens)\n  ids:    ", index, e->line, e->len);
        for (int32_t i = 0; i < e->len; i++) mofo_sb_printf(&sb, "%d ", e->ids[i]);
        mofo_sb_puts(&sb, "\n  labels: ");
        for (int32_t i = 0; i < e->len; i++) mofo_sb_printf(&sb, "%d ", e->labels[i]);
        mofo_sb_puts(&sb, "\n  text:    ");
        mofo_sb_json_string(&sb, text.data ? text.data : "", text.len);
        if (tok) {
            mofo_sb_puts(&sb, "\n  mask:    ");
            put_runs(&sb, tok, e);
        }
        mofo_sb_puts(&sb, "\n  trained: ");
        mofo_sb_json_string(&sb, resp.data ? resp.data : "", resp.len);
        mofo_sb_puts(&sb, "\n");
    }
    fwrite(sb.data ? sb.data : "", 1, sb.len, stdout);
    mofo_sb_free(&sb);
    mofo_sb_free(&text);
    mofo_sb_free(&resp);
    free(trained);
}

int cmd_data(int argc, char **argv) {
    model_dir = tok_file = data_path = format_arg = template_arg = NULL;
    max_len = show = seed = pack = 0;
    heldout = 0;
    skip_bad = json_out = 0;
    if (args_parse("data", argc, argv, SPECS, N_SPECS)) return 2;
    mofo_data_opts o = {0};
    if (!data_path) {
        fprintf(stderr, "mofo data: --data FILE is required\n");
        return 2;
    }
    if (format_arg && mofo_data_format_parse(format_arg, &o.format)) {
        fprintf(stderr, "mofo data: --format: unknown format '%s'\n", format_arg);
        return 2;
    }
    if (max_len < 0 || max_len > INT32_MAX || pack < 0 || pack > INT32_MAX || show < 0) {
        fprintf(stderr, "mofo data: --max-len, --pack and --show take a count >= 0\n");
        return 2;
    }
    if (!!model_dir + !!tok_file > 1) {
        fprintf(stderr, "mofo data: give --model DIR or --tokenizer FILE, not both\n");
        return 2;
    }
    o.max_len = (int32_t)max_len;
    o.skip_bad = skip_bad;
    mofo_err err = {0};
    mofo_tokenizer *tok = NULL;
    if ((model_dir || tok_file) &&
        (model_dir ? mofo_tokenizer_load_dir(&tok, model_dir, &err) : mofo_tokenizer_load_file(&tok, tok_file, &err))) {
        fprintf(stderr, "mofo data: %s\n", err.msg);
        return 1;
    }
    mofo_chat *chat = NULL;
    int tpl = MOFO_TPL_TULU, bad;
    if (model_dir) {
        bad = cli_chat_template("data", template_arg, model_dir, tok, MOFO_TPL_TULU, &tpl, &chat);
    } else {
        mofo_chat_template t = MOFO_TPL_TULU;
        bad = template_arg && strcmp(template_arg, "auto") && (mofo_chat_template_parse(template_arg, &t) || t == MOFO_TPL_MODEL);
        if (bad) fprintf(stderr, "mofo data: --template '%s': use auto, tulu, chatml, llama2 or plain (model needs --model)\n", template_arg);
        tpl = (int)t;
        bad = bad ? 2 : 0;
    }
    if (bad) {
        mofo_tokenizer_free(tok);
        return bad;
    }
    o.tpl = (mofo_chat_template)tpl;
    o.chat = chat;
    mofo_dataset ds = {0}, held = {0}, packed = {0};
    int status = 0;
    if (mofo_dataset_load(&ds, data_path, tok, &o, &err) || mofo_dataset_split(&ds, &held, heldout, (uint64_t)seed, &err) ||
        (pack && mofo_dataset_pack(&ds, (int32_t)pack, &packed, &err))) {
        fprintf(stderr, "mofo data: %s\n", err.msg);
        status = 1;
    }
    if (!status) {
        size_t tokens = 0, trained = 0;
        for (size_t i = 0; i < ds.n; i++) {
            tokens += (size_t)ds.ex[i].len;
            for (int32_t k = 1; k < ds.ex[i].len; k++) trained += ds.ex[i].labels[k] != MOFO_IGNORE_INDEX;
        }
        if (ds.n_bad) fprintf(stderr, "mofo data: skipped %zu malformed line(s); the first: %s\n", ds.n_bad, ds.first_bad);
        if (ds.n_no_response)
            fprintf(stderr, "mofo data: dropped %zu example(s) with no trained token%s (the first at %s:%d)\n",
                    ds.n_no_response, max_len ? " left after truncation" : "", data_path, ds.first_no_response);
        mofo_strbuf file = {0};
        mofo_sb_json_string(&file, data_path, strlen(data_path));
        if (json_out)
            printf("{\"file\": %s, \"format\": \"%s\", \"template\": \"%s\", \"lines\": %zu, \"examples\": %zu, \"heldout\": %zu, "
                   "\"tokens\": %zu, \"trained_tokens\": %zu, \"truncated\": %zu, \"no_response\": %zu, \"bad_lines\": %zu, \"packed_rows\": %zu}\n",
                   file.data ? file.data : "\"\"", mofo_data_format_name(ds.format), mofo_chat_template_name(o.tpl), ds.n_lines, ds.n, held.n, tokens,
                   trained, ds.n_truncated, ds.n_no_response, ds.n_bad, packed.n);
        else
            printf("%s: format %s, template %s: %zu lines, %zu examples (+%zu held out), %zu tokens, %zu trained, %zu truncated, "
                   "%zu dropped (no response left), %zu bad lines skipped\n",
                   data_path, mofo_data_format_name(ds.format), mofo_chat_template_name(o.tpl), ds.n_lines, ds.n, held.n, tokens,
                   trained, ds.n_truncated, ds.n_no_response, ds.n_bad);
        mofo_sb_free(&file);
        if (pack && !json_out) printf("packed into %zu rows of %lld tokens\n", packed.n, (long long)pack);
        const mofo_dataset *src = pack ? &packed : &ds;
        for (size_t i = 0; i < src->n && i < (size_t)show; i++) print_example(tok, &src->ex[i], i);
    }
    mofo_dataset_free(&ds);
    mofo_dataset_free(&held);
    mofo_dataset_free(&packed);
    mofo_tokenizer_free(tok);
    mofo_chat_free(chat);
    return status;
}

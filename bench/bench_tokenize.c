#define _POSIX_C_SOURCE 200809L
/* mofo bench tokenize: encoding speed (MB/s, one thread) of the byte-level and SentencePiece-style
 * BPE tokenizers on a few MB of generated text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "io/strbuf.h"
#include "text/tokenizer.h"
#include "cli/timing.h"

#ifndef MOFO_SOURCE_DIR
#define MOFO_SOURCE_DIR "."
#endif
#define FIXTURES MOFO_SOURCE_DIR "/tests/fixtures/tokenizers/"

static const char *gpt2_path, *llama3_path, *sp_path, *text_out;
static int64_t mb;
static int json_out;

static const arg_spec SPECS[] = {
    {"mb", ARG_INT, &mb, "N", "megabytes of generated text (default 4)"},
    {"gpt2", ARG_STR, &gpt2_path, "FILE", "byte-level tokenizer.json (default: the gpt2-style test fixture)"},
    {"llama3", ARG_STR, &llama3_path, "FILE", "Split + ByteLevel tokenizer.json (default: llama3-style fixture)"},
    {"sentencepiece", ARG_STR, &sp_path, "FILE", "SentencePiece-style tokenizer.json (default: fixture)"},
    {"json", ARG_FLAG, &json_out, NULL, "print the rows as JSON lines"},
    {"text-out", ARG_STR, &text_out, "FILE", "also write the generated text to FILE (e.g. to train a tokenizer on)"},
};
#define N_SPECS (int)(sizeof SPECS / sizeof SPECS[0])

void bench_tokenize_help(FILE *out) {
    args_help(out, "bench tokenize", "[--mb N] [--json]", SPECS, N_SPECS);
}

static uint64_t rnd(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* English-like prose with numbers, punctuation, code-ish bits and some non-ASCII words. */
static void gen_text(mofo_strbuf *sb, size_t bytes) {
    static const char *words[] = {
        "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
        "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were",
        "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would",
        "who", "so", "no", "model", "training", "momentum", "optimizer", "parameters", "language", "forgetting",
        "fine-tuning", "gradient", "update", "filtered", "entries", "largest", "tensor", "block", "learning",
        "rate", "don't", "it's", "we're", "they'll", "I've", "naïve", "café", "über", "日本語", "テキスト", "Привет",
        "x=y+1", "f(x)", "[1,", "2]", "{\"a\":", "3}", "#include", "<stdio.h>", "return", "0;", "😀",
    };
    size_t nw = sizeof words / sizeof words[0];
    uint64_t seed = 42;
    while (sb->len < bytes && !sb->failed) {
        uint64_t r = rnd(&seed);
        const char *w = words[r % nw];
        if ((r >> 20) % 17 == 0) {
            mofo_sb_printf(sb, "%u", (unsigned)((r >> 32) % 100000));
        } else if ((r >> 20) % 13 == 0) {
            char cap[64];
            snprintf(cap, sizeof cap, "%s", w);
            if (cap[0] >= 'a' && cap[0] <= 'z') cap[0] = (char)(cap[0] - 32);
            mofo_sb_puts(sb, cap);
        } else {
            mofo_sb_puts(sb, w);
        }
        unsigned p = (unsigned)((r >> 40) % 40);
        mofo_sb_puts(sb, p == 0 ? ".\n\n" : p == 1 ? ", " : p == 2 ? ". " : p == 3 ? "\n" : p == 4 ? "  " : " ");
    }
}

typedef struct {
    const char *name, *kind;
    double mbps, tokens_per_byte, seconds;
    size_t bytes;
} row;

/* Encodes text in documents of about doc bytes (0: the whole text as one string). */
static int run(const char *path, const char *name, const char *kind, const mofo_strbuf *text, size_t doc, row *r) {
    mofo_err err = {0};
    mofo_tokenizer *tok = NULL;
    if (mofo_tokenizer_load_file(&tok, path, &err)) {
        fprintf(stderr, "mofo bench tokenize: %s\n", err.msg);
        return -1;
    }
    mofo_ids ids = {0};
    size_t tokens = 0;
    double t0 = cli_now();
    size_t pos = 0;
    while (pos < text->len) {
        size_t end = doc ? pos + doc : text->len;
        if (end > text->len) end = text->len;
        while (end < text->len && text->data[end] != ' ') end++; /* cut between words */
        ids.len = 0;
        if (mofo_tokenizer_encode(tok, text->data + pos, end - pos, 0, &ids, &err)) {
            fprintf(stderr, "mofo bench tokenize: %s\n", err.msg);
            mofo_tokenizer_free(tok);
            mofo_ids_free(&ids);
            return -1;
        }
        tokens += ids.len;
        pos = end;
    }
    double dt = cli_now() - t0;
    *r = (row){name, kind, (double)text->len / 1e6 / dt, (double)tokens / (double)text->len, dt, text->len};
    mofo_ids_free(&ids);
    mofo_tokenizer_free(tok);
    return 0;
}

int bench_tokenize(int argc, char **argv) {
    gpt2_path = FIXTURES "gpt2-style.json";
    llama3_path = FIXTURES "llama3-style.json";
    sp_path = FIXTURES "sentencepiece-style.json";
    mb = 4;
    json_out = 0;
    text_out = NULL;
    if (args_parse("bench tokenize", argc, argv, SPECS, N_SPECS)) return 2;
    if (mb < 1 || mb > 256) {
        fprintf(stderr, "mofo bench tokenize: --mb must be in 1..256\n");
        return 2;
    }
    mofo_strbuf text = {0};
    gen_text(&text, (size_t)mb << 20);
    mofo_strbuf small = {0};
    mofo_sb_append(&small, text.data, text.len < (1u << 20) ? text.len : (1u << 20));
    if (text.failed || small.failed) {
        fprintf(stderr, "mofo bench tokenize: out of memory\n");
        return 1;
    }
    if (text_out) {
        FILE *f = fopen(text_out, "wb");
        if (!f || fwrite(text.data, 1, text.len, f) != text.len || fclose(f)) {
            fprintf(stderr, "mofo bench tokenize: cannot write %s\n", text_out);
            return 1;
        }
    }
    row rows[4];
    int n = 0, rc = 0;
    rc |= run(gpt2_path, "byte-level (GPT-2 regex)", "docs of 2 KB", &text, 2048, &rows[n++]);
    rc |= run(llama3_path, "Split + ByteLevel (Llama 3)", "docs of 2 KB", &text, 2048, &rows[n++]);
    rc |= run(sp_path, "SentencePiece-style", "docs of 2 KB", &text, 2048, &rows[n++]);
    rc |= run(sp_path, "SentencePiece-style", "one 1 MB string", &small, 0, &rows[n++]);
    if (rc) {
        mofo_sb_free(&text);
        mofo_sb_free(&small);
        return 1;
    }
    if (!json_out) {
        printf("tokenizer encoding, one thread, %.1f MB of generated text\n(byte-level: %s; Llama 3: %s; SentencePiece: %s)\n\n",
               (double)text.len / 1e6, gpt2_path, llama3_path, sp_path);
        printf("| %-28s | %-16s | %8s | %10s | %8s |\n", "tokenizer", "input", "MB/s", "tokens/B", "seconds");
        printf("|%.30s|%.18s|%.10s|%.12s|%.10s|\n", "------------------------------", "------------------", "----------",
               "------------", "----------");
    }
    for (int i = 0; i < n; i++) {
        if (json_out)
            printf("{\"bench\": \"tokenize\", \"tokenizer\": \"%s\", \"input\": \"%s\", \"bytes\": %zu, \"mb_per_s\": %.3f, "
                   "\"tokens_per_byte\": %.4f, \"seconds\": %.4f}\n",
                   rows[i].name, rows[i].kind, rows[i].bytes, rows[i].mbps, rows[i].tokens_per_byte, rows[i].seconds);
        else
            printf("| %-28s | %-16s | %8.2f | %10.3f | %8.3f |\n", rows[i].name, rows[i].kind, rows[i].mbps,
                   rows[i].tokens_per_byte, rows[i].seconds);
    }
    mofo_sb_free(&text);
    mofo_sb_free(&small);
    return 0;
}

/* The demo's byte-level tokenizer.json (see byte_tokenizer.h). */
#include "demo/byte_tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/atomic_file.h"

static const char *const SPECIAL[MOFO_BYTE_TOK_VOCAB - 256] = {"<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"};

const char *mofo_byte_tokenizer_special(int id) {
    return id >= 256 && id < MOFO_BYTE_TOK_VOCAB ? SPECIAL[id - 256] : NULL;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others (controls,
 * space, 0x7f-0xa0, 0xad) take the code points 256, 257, ... in byte order. */
static uint32_t byte_char(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return (uint32_t)b;
    uint32_t n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255))) n++;
    return 256 + n;
}

static void json_str(mofo_strbuf *sb, const char *s) { mofo_sb_json_string(sb, s, strlen(s)); }

void mofo_byte_tokenizer_json(mofo_strbuf *sb) {
    mofo_sb_puts(sb, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [");
    for (int i = 256; i < MOFO_BYTE_TOK_VOCAB; i++) {
        mofo_sb_printf(sb, "%s\n    {\"id\": %d, \"content\": ", i > 256 ? "," : "", i);
        json_str(sb, SPECIAL[i - 256]);
        mofo_sb_puts(sb, ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, "
                         "\"special\": true}");
    }
    mofo_sb_puts(sb, "\n  ],\n  \"normalizer\": null,\n"
                     "  \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, "
                     "\"use_regex\": false},\n"
                     "  \"post_processor\": {\"type\": \"TemplateProcessing\", "
                     "\"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], "
                     "\"pair\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, "
                     "{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 1}}, {\"Sequence\": {\"id\": \"B\", \"type_id\": 1}}], "
                     "\"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [256], \"tokens\": [\"<s>\"]}}},\n"
                     "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, "
                     "\"use_regex\": false},\n"
                     "  \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, "
                     "\"continuing_subword_prefix\": null, \"end_of_word_suffix\": null, \"fuse_unk\": false, "
                     "\"byte_fallback\": false, \"ignore_merges\": false, \"vocab\": {");
    for (int b = 0; b < 256; b++) {
        char u[4];
        size_t n = mofo_utf8_put(u, byte_char(b));
        mofo_sb_puts(sb, b ? ", " : "");
        mofo_sb_json_string(sb, u, n);
        mofo_sb_printf(sb, ": %d", b);
    }
    mofo_sb_puts(sb, "}, \"merges\": []}\n}\n");
}

void mofo_byte_tokenizer_config_json(mofo_strbuf *sb) {
    mofo_sb_puts(sb, "{\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n  \"bos_token\": \"<s>\",\n"
                     "  \"eos_token\": \"</s>\",\n  \"pad_token\": \"<pad>\",\n  \"add_bos_token\": true,\n"
                     "  \"add_eos_token\": false,\n  \"clean_up_tokenization_spaces\": false\n}\n");
}

static int write_one(const char *dir, const char *name, const mofo_strbuf *sb, mofo_err *err) {
    if (sb->failed || !sb->data) return mofo_errf(err, MOFO_ENOMEM, "out of memory writing %s", name);
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    if (!path) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    snprintf(path, n, "%s/%s", dir, name);
    int rc = mofo_write_file_atomic(path, sb->data, sb->len, err);
    free(path);
    return rc;
}

int mofo_byte_tokenizer_write(const char *dir, mofo_err *err) {
    mofo_strbuf a = {0}, b = {0};
    mofo_byte_tokenizer_json(&a);
    mofo_byte_tokenizer_config_json(&b);
    int rc = write_one(dir, "tokenizer.json", &a, err);
    if (!rc) rc = write_one(dir, "tokenizer_config.json", &b, err);
    mofo_sb_free(&a);
    mofo_sb_free(&b);
    return rc;
}

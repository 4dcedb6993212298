/* The demo's byte-level tokenizer (src/demo/byte_tokenizer.c), read back by src/text/tokenizer.c:
 * every byte's spelling is GPT-2's bytes_to_unicode (checked against the gpt2-style fixture for
 * ASCII and by hand for a few others), plain text encodes to its bytes, special tokens to their ids,
 * decoding gives the text back (ASCII, multi-byte UTF-8, the synthetic world's files), and the
 * written folder loads with its BOS/EOS/PAD and takes a MetaMathQA file through the tulu template;
 * with a random Llama saved beside it, `mofo eval` runs every evaluation file of a world. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "check.h"
#include "demo/byte_tokenizer.h"
#include "demo/world.h"
#include "model/model.h"
#include "text/dataset.h"
#include "text/tokenizer.h"

static void roundtrip(const mofo_tokenizer *tok, const char *what, const char *s, size_t n, int plain) {
    mofo_ids ids = {0};
    mofo_strbuf back = {0};
    mofo_err err = {0};
    CHECK(mofo_tokenizer_encode(tok, s, n, 0, &ids, &err) == 0, "%s: %s", what, err.msg);
    if (plain) {
        int same = ids.len == n;
        for (size_t i = 0; same && i < n; i++) same = ids.ids[i] == (int32_t)(unsigned char)s[i];
        CHECK(same, "%s: %zu ids for %zu bytes, not the bytes", what, ids.len, n);
    }
    CHECK(mofo_tokenizer_decode(tok, ids.ids, ids.len, 0, &back, &err) == 0, "%s: %s", what, err.msg);
    CHECK(back.len == n && (n == 0 || memcmp(back.data, s, n) == 0), "%s: decodes to %zu bytes, not the %zu given",
          what, back.len, n);
    mofo_ids_free(&ids);
    mofo_sb_free(&back);
}

int main(void) {
    mofo_strbuf js = {0};
    mofo_byte_tokenizer_json(&js);
    mofo_tokenizer *tok = NULL;
    mofo_err err = {0};
    CHECK(mofo_tokenizer_from_json(&tok, js.data, js.len, "tokenizer.json", &err) == 0, "%s", err.msg);
    if (!tok) return CHECK_DONE();
    CHECK(mofo_tokenizer_vocab_size(tok) == MOFO_BYTE_TOK_VOCAB, "vocab %d", mofo_tokenizer_vocab_size(tok));

    /* spellings: GPT-2's byte characters */
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizers/gpt2-style.json", MOFO_FIXTURES);
    mofo_tokenizer *gpt2 = NULL;
    CHECK(mofo_tokenizer_load_file(&gpt2, path, &err) == 0, "%s", err.msg);
    for (int b = 1; gpt2 && b < 128; b++) {
        char c = (char)b;
        mofo_ids g = {0};
        CHECK(mofo_tokenizer_encode(gpt2, &c, 1, 0, &g, &err) == 0 && g.len == 1, "gpt2 byte %d", b);
        size_t la = 0, lb = 0;
        const char *a = mofo_tokenizer_token(tok, b, &la), *s = g.len ? mofo_tokenizer_token(gpt2, g.ids[0], &lb) : NULL;
        CHECK(a && s && la == lb && memcmp(a, s, la) == 0, "byte %d: spelled \"%s\", gpt2 \"%s\"", b, a ? a : "?",
              s ? s : "?");
        mofo_ids_free(&g);
    }
    mofo_tokenizer_free(gpt2);
    static const struct {
        int byte;
        const char *utf8;
    } hand[] = {{0, "\xc4\x80"}, {' ', "\xc4\xa0"}, {'\n', "\xc4\x8a"}, {0x7f, "\xc4\xa1"}, {0xa0, "\xc5\x82"},
                {0xa1, "\xc2\xa1"}, {0xad, "\xc5\x83"}, {0xff, "\xc3\xbf"}};
    for (size_t i = 0; i < sizeof hand / sizeof hand[0]; i++) {
        const char *a = mofo_tokenizer_token(tok, hand[i].byte, NULL);
        CHECK(a && strcmp(a, hand[i].utf8) == 0, "byte 0x%02x spelled \"%s\"", hand[i].byte, a ? a : "?");
    }
    for (int id = 256; id < MOFO_BYTE_TOK_VOCAB; id++) {
        const char *sp = mofo_byte_tokenizer_special(id), *a = mofo_tokenizer_token(tok, id, NULL);
        CHECK(sp && a && strcmp(a, sp) == 0 && mofo_tokenizer_is_special(tok, id), "special %d", id);
        CHECK(mofo_tokenizer_token_id(tok, sp, strlen(sp)) == id, "special %s", sp);
    }

    /* round trips */
    char ascii[128];
    for (int b = 1; b < 128; b++) ascii[b - 1] = (char)b;
    roundtrip(tok, "ASCII 1..127", ascii, 127, 1);
    const char *utf8 = "na\xc3\xafve caf\xc3\xa9 \xe6\xbc\xa2\xe5\xad\x97 \xf0\x9f\x99\x82 \xe2\x82\xac" "5\n\t  end ";
    roundtrip(tok, "UTF-8", utf8, strlen(utf8), 1);
    roundtrip(tok, "empty", "", 0, 1);
    const char *sp = "<|im_start|>user\nHi<|im_end|>\n<s>a</s><pad>";
    roundtrip(tok, "specials", sp, strlen(sp), 0);
    mofo_ids ids = {0};
    CHECK(mofo_tokenizer_encode(tok, sp, strlen(sp), 0, &ids, &err) == 0, "%s", err.msg);
    static const int32_t want[] = {259, 'u', 's', 'e', 'r', '\n', 'H', 'i', 260, '\n', 256, 'a', 257, 258};
    CHECK(ids.len == sizeof want / sizeof want[0] && memcmp(ids.ids, want, sizeof want) == 0, "specials: %zu ids",
          ids.len);
    mofo_strbuf dec = {0};
    CHECK(mofo_tokenizer_decode(tok, ids.ids, ids.len, 1, &dec, &err) == 0 && dec.data &&
              strcmp(dec.data, "user\nHi\na") == 0,
          "skip_special: \"%s\"", dec.data ? dec.data : "?");
    mofo_sb_free(&dec);
    mofo_ids_clear(&ids);
    CHECK(mofo_tokenizer_encode(tok, "ab", 2, 1, &ids, &err) == 0 && ids.len == 3 && ids.ids[0] == MOFO_BYTE_TOK_BOS &&
              ids.ids[1] == 'a',
          "add_special: BOS first");
    mofo_ids_free(&ids);

    /* the synthetic world's files, whole */
    mofo_world_opts o;
    mofo_world_opts_default(&o);
    o.n_people = 10, o.n_problems = 20;
    mofo_world w;
    CHECK(mofo_world_build(&w, &o, &err) == 0, "%s", err.msg);
    for (int f = 0; f < MOFO_WORLD_N_FILES; f++) {
        mofo_strbuf sb = {0};
        CHECK(mofo_world_render(&w, (mofo_world_file)f, &sb, NULL, &err) == 0, "%s", err.msg);
        roundtrip(tok, mofo_world_file_name((mofo_world_file)f), sb.data, sb.len, 1);
        mofo_sb_free(&sb);
    }
    mofo_world_free(&w);
    mofo_tokenizer_free(tok);
    mofo_sb_free(&js);

    /* the written folder: tokenizer_config.json names BOS/EOS/PAD; a MetaMathQA file loads (tulu) */
    char dir[] = "/tmp/mofo_test_bytetok_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    CHECK(mofo_byte_tokenizer_write(dir, &err) == 0, "%s", err.msg);
    CHECK(mofo_tokenizer_load_dir(&tok, dir, &err) == 0, "%s", err.msg);
    if (tok) {
        CHECK(mofo_tokenizer_bos(tok) == 256 && mofo_tokenizer_eos(tok) == 257 && mofo_tokenizer_pad(tok) == 258 &&
                  mofo_tokenizer_adds_bos(tok),
              "bos %d eos %d pad %d", mofo_tokenizer_bos(tok), mofo_tokenizer_eos(tok), mofo_tokenizer_pad(tok));
        const char *line = "{\"query\": \"1+1?\", \"response\": \"1 + 1 = 2\\n#### 2\"}\n";
        mofo_dataset ds = {0};
        mofo_data_opts dopt = {.tpl = MOFO_TPL_TULU};
        CHECK(mofo_dataset_load_buffer(&ds, "m.jsonl", line, strlen(line), tok, &dopt, &err) == 0 && ds.n == 1, "%s",
              err.msg);
        if (ds.n == 1) {
            /* [BOS] "<|user|>\n1+1?\n<|assistant|>\n" "1 + 1 = 2\n#### 2" EOS, only the response and EOS trained */
            const mofo_example *e = &ds.ex[0];
            const char *resp = "1 + 1 = 2\n#### 2";
            int n_trained = 0;
            for (int i = 0; i < e->len; i++) n_trained += e->labels[i] != MOFO_IGNORE_INDEX;
            CHECK(e->ids[0] == 256 && e->ids[e->len - 1] == 257 && n_trained == (int)strlen(resp) + 1,
                  "%d tokens, %d trained", e->len, n_trained);
        }
        mofo_dataset_free(&ds);
        mofo_tokenizer_free(tok);
    }

    /* mofo eval takes the world's ppl, mc and gen files with this tokenizer (a random tiny Llama) */
    mofo_model_config c;
    mofo_model *m = NULL;
    CHECK(mofo_config_preset(&c, "llama", "tiny", &err) == 0, "%s", err.msg);
    c.V = MOFO_BYTE_TOK_VOCAB;
    c.max_T = 512; /* RoPE: a byte per token, so a word problem is ~150 positions */
    CHECK(mofo_model_create(&m, &c, 5, 0.3f, &err) == 0 && mofo_model_save(m, dir, 0, &err) == 0, "%s", err.msg);
    mofo_model_free(m);
    o.n_people = 3, o.n_problems = 10, o.n_val = 1, o.n_test = 2;
    CHECK(mofo_world_build(&w, &o, &err) == 0, "%s", err.msg);
    char wdir[160];
    snprintf(wdir, sizeof wdir, "%s/world", dir);
    CHECK(mofo_world_write(&w, wdir, NULL, &err) == 0, "%s", err.msg);
    mofo_world_free(&w);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=2 '%s' eval --model '%s' --task ppl:%s/knowledge_heldout.jsonl --task mc:%s/knowledge_mc.jsonl "
             "--task gen:%s/knowledge_gen.jsonl --task gen:%s/math_test.jsonl --max-new 3 --json >'%s/eval.json' 2>&1",
             MOFO_BIN, dir, wdir, wdir, wdir, wdir, dir);
    int st = system(cmd);
    snprintf(path, sizeof path, "%s/eval.json", dir);
    char *out = slurp(path, NULL);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && out && strstr(out, "\"n\": 12") && /* 4 mc and 4 gen facts a person */
              strstr(out, "\"n\": 2"),
          "mofo eval: %s", out ? out : "no output");
    free(out);
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    if (system(rm) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return CHECK_DONE();
}

/* Data sets: every format and template on hand-written examples with exact ids and labels (the
 * ids are those the tokenizers library gives for the rendered text; the labels are marked by
 * hand), truncation, shuffle, split, packing, batches, and every error. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "text/dataset.h"

#define I (-100)
#define N(a) (sizeof(a) / sizeof((a)[0]))

static mofo_tokenizer *gpt2, *sp;

static mofo_tokenizer *load(const char *name, const char *config) {
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizers/%s.json", MOFO_FIXTURES, name);
    mofo_tokenizer *t = NULL;
    mofo_err err = {0};
    CHECK(mofo_tokenizer_load_file(&t, path, &err) == 0, "%s", err.msg);
    if (t) CHECK(mofo_tokenizer_apply_config(t, config, strlen(config), NULL, 0, name, &err) == 0, "%s", err.msg);
    return t;
}

static const char *one_line(const char *jsonl, mofo_dataset *ds, const mofo_tokenizer *tok, mofo_chat_template tpl,
                            int max_len, mofo_err *err) {
    mofo_data_opts o = {.tpl = tpl, .max_len = max_len};
    memset(ds, 0, sizeof *ds);
    int rc = mofo_dataset_load_buffer(ds, "data.jsonl", jsonl, strlen(jsonl), tok, &o, err);
    return rc ? err->msg : NULL;
}

static void expect(const char *what, const char *jsonl, const mofo_tokenizer *tok, mofo_chat_template tpl,
                   const int32_t *ids, const int32_t *labels, size_t n) {
    mofo_dataset ds;
    mofo_err err = {0};
    const char *msg = one_line(jsonl, &ds, tok, tpl, 0, &err);
    CHECK(!msg, "%s: %s", what, msg);
    CHECK(ds.n == 1, "%s: %zu examples", what, ds.n);
    if (ds.n == 1) {
        const mofo_example *e = &ds.ex[0];
        int same_ids = (size_t)e->len == n && memcmp(e->ids, ids, n * sizeof *ids) == 0;
        int same_labels = (size_t)e->len == n && memcmp(e->labels, labels, n * sizeof *labels) == 0;
        CHECK(same_ids, "%s: ids differ (len %d, want %zu)", what, e->len, n);
        CHECK(same_labels, "%s: labels differ", what);
        if (!same_ids || !same_labels) {
            for (int32_t k = 0; k < e->len; k++) fprintf(stderr, " %d/%d", e->ids[k], e->labels[k]);
            fprintf(stderr, "\n");
        }
        CHECK(e->line == 1, "%s: line %d", what, e->line);
    }
    mofo_dataset_free(&ds);
}

static void test_formats(void) {
    {   /* messages, tulu, byte-level, no BOS: "<|user|>\nhi\n<|assistant|>\nok<|endoftext|>" */
        static const int32_t ids[] = {28, 92, 85, 83, 271, 92, 30, 199, 72, 73, 199, 28, 92, 354, 83, 73, 269, 274, 84, 92, 30, 199, 79, 75, 0};
        static const int32_t lab[] = {I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, 79, 75, 0};
        expect("messages/tulu", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"ok\"}]}\n",
               gpt2, MOFO_TPL_TULU, ids, lab, N(ids));
    }
    {   /* system + two turns: "\n" between turns is not trained; " no" keeps its space */
        static const int32_t ids[] = {28, 92, 83, 89, 269, 69, 77, 92, 30, 199, 66, 69, 199, 28, 92, 85, 83, 271, 92, 30, 199, 72, 73, 199,
                                      28, 92, 354, 83, 73, 269, 274, 84, 92, 30, 199, 79, 75, 0, 199, 28, 92, 85, 83, 271, 92, 30, 199,
                                      77, 317, 199, 28, 92, 354, 83, 73, 269, 274, 84, 92, 30, 199, 278, 79, 0};
        int32_t lab[N(ids)];
        for (size_t k = 0; k < N(ids); k++) lab[k] = (k >= 35 && k <= 37) || k >= 61 ? ids[k] : I;
        expect("messages/tulu 2 turns",
               "{\"messages\": [{\"role\": \"system\", \"content\": \"be\"}, {\"role\": \"user\", \"content\": \"hi\"}, "
               "{\"role\": \"assistant\", \"content\": \"ok\"}, {\"role\": \"user\", \"content\": \"more\"}, "
               "{\"role\": \"assistant\", \"content\": \" no\"}]}",
               gpt2, MOFO_TPL_TULU, ids, lab, N(ids));
    }
    {   /* chatml: "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nok<|im_end|>\n"; <|im_end|> is
         * plain text to this tokenizer, and trained after the answer */
        static const int32_t ids[] = {28, 92, 73, 77, 63, 269, 65, 82, 84, 92, 30, 85, 83, 271, 199, 72, 73, 28, 92, 73, 77, 63, 283, 68, 92,
                                      30, 199, 28, 92, 73, 77, 63, 269, 65, 82, 84, 92, 30, 354, 83, 73, 269, 274, 84, 199, 79, 75, 28,
                                      92, 73, 77, 63, 283, 68, 92, 30, 199};
        int32_t lab[N(ids)];
        for (size_t k = 0; k < N(ids); k++) lab[k] = k >= 45 && k <= 55 ? ids[k] : I;
        expect("messages/chatml", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"ok\"}]}",
               gpt2, MOFO_TPL_CHATML, ids, lab, N(ids));
    }
    {   /* Alpaca with input: user = instruction "\n\n" input */
        static const int32_t ids[] = {28, 92, 85, 83, 271, 92, 30, 199, 362, 68, 199, 199, 18, 350, 199, 28, 92, 354, 83, 73, 269, 274, 84, 92, 30, 199, 21, 0};
        int32_t lab[N(ids)];
        for (size_t k = 0; k < N(ids); k++) lab[k] = k >= 26 ? ids[k] : I;
        expect("alpaca/tulu", "{\"instruction\": \"add\", \"input\": \"2 3\", \"output\": \"5\"}", gpt2, MOFO_TPL_TULU, ids, lab, N(ids));
    }
    {   /* llama2 with a system prompt and two turns, SentencePiece-style (BOS written per turn) */
        static const int32_t ids[] = {1, 318, 94, 279, 284, 288, 289, 96, 318, 63, 63, 288, 293, 288, 65, 65, 13, 340, 13, 63, 63, 50, 288, 293,
                                      288, 65, 65, 13, 13, 362, 318, 94, 50, 279, 284, 288, 289, 96, 318, 308, 405, 2, 1, 318, 94, 279, 284,
                                      288, 289, 96, 495, 335, 322, 94, 50, 279, 284, 288, 289, 96, 318, 578, 2};
        int32_t lab[N(ids)];
        for (size_t k = 0; k < N(ids); k++) lab[k] = (k >= 39 && k <= 41) || k >= 61 ? ids[k] : I;
        expect("messages/llama2",
               "{\"messages\": [{\"role\": \"system\", \"content\": \"be\"}, {\"role\": \"user\", \"content\": \"hi\"}, "
               "{\"role\": \"assistant\", \"content\": \"ok\"}, {\"role\": \"user\", \"content\": \"more\"}, "
               "{\"role\": \"assistant\", \"content\": \"no\"}]}",
               sp, MOFO_TPL_LLAMA2, ids, lab, N(ids));
    }
    {   /* prompt/completion, plain: BOS + "2+2=" + "4</s>" */
        static const int32_t ids[] = {1, 318, 263, 46, 263, 64, 265, 2};
        static const int32_t lab[] = {I, I, I, I, I, I, 265, 2};
        expect("prompt_completion/plain", "{\"prompt\": \"2+2=\", \"completion\": \"4\"}", sp, MOFO_TPL_PLAIN, ids, lab, N(ids));
    }
    {   /* MetaMathQA, tulu, SentencePiece-style with BOS */
        static const int32_t ids[] = {1, 318, 63, 127, 313, 311, 325, 127, 65, 13, 541, 453, 306, 13, 63, 127, 670, 311, 302, 359, 334, 312, 127, 65, 13, 461, 2};
        int32_t lab[N(ids)];
        for (size_t k = 0; k < N(ids); k++) lab[k] = k >= 25 ? ids[k] : I;
        expect("metamath/tulu", "{\"query\": \"the sum\", \"response\": \"12\", \"type\": \"GSM_Rephrased\"}", sp, MOFO_TPL_TULU, ids, lab, N(ids));
    }
    {   /* text: add_special_tokens (BOS), every position trained */
        static const int32_t ids[] = {1, 318, 301, 298, 339, 308, 408, 417};
        expect("text", "{\"text\": \"hello world\"}", sp, MOFO_TPL_TULU, ids, ids, N(ids));
    }
    {   /* pre-tokenized, exactly as given */
        static const int32_t ids[] = {5, 6, 7}, lab[] = {I, 6, 7};
        expect("input_ids+labels", "{\"input_ids\": [5, 6, 7], \"labels\": [-100, 6, 7]}", sp, MOFO_TPL_LLAMA2, ids, lab, N(ids));
        expect("input_ids", "{\"input_ids\": [5, 6, 7]}", sp, MOFO_TPL_LLAMA2, ids, ids, N(ids));
    }
}

static void test_truncation(void) {
    const char *line = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"ok\"}]}\n";
    mofo_dataset ds;
    mofo_err err = {0};
    /* 25 tokens, the response is the last three: 23 keeps "o" */
    CHECK(!one_line(line, &ds, gpt2, MOFO_TPL_TULU, 23, &err), "%s", err.msg);
    CHECK(ds.n == 1 && ds.ex[0].len == 23 && ds.n_truncated == 1 && ds.ex[0].labels[22] == 79, "truncated to 23");
    mofo_dataset_free(&ds);
    /* 22 cuts the whole response away: dropped and reported */
    char two[512];
    snprintf(two, sizeof two, "%s%s", line, line);
    CHECK(!one_line(two, &ds, gpt2, MOFO_TPL_TULU, 22, &err), "%s", err.msg);
    CHECK(ds.n == 0 && ds.n_no_response == 2 && ds.first_no_response == 1 && ds.n_lines == 2, "response cut away: %zu", ds.n_no_response);
    mofo_dataset_free(&ds);
}

/* An error line: the message must contain want, with skip_bad it is counted instead. */
static void expect_error(const char *jsonl, const char *want, mofo_data_format fmt) {
    mofo_dataset ds = {0};
    mofo_err err = {0};
    mofo_data_opts o = {.format = fmt};
    int rc = mofo_dataset_load_buffer(&ds, "d.jsonl", jsonl, strlen(jsonl), gpt2, &o, &err);
    CHECK(rc == MOFO_EFORMAT && strstr(err.msg, want), "error for %s: got \"%s\", want \"%s\"", jsonl, err.msg, want);
    mofo_dataset_free(&ds);
    o.skip_bad = 1;
    memset(&err, 0, sizeof err);
    rc = mofo_dataset_load_buffer(&ds, "d.jsonl", jsonl, strlen(jsonl), gpt2, &o, &err);
    CHECK(rc == 0 && ds.n_bad == 1 && strstr(ds.first_bad, want), "skip_bad for %s: rc %d, n_bad %zu, \"%s\"", jsonl, rc, ds.n_bad, ds.first_bad);
    mofo_dataset_free(&ds);
}

static void test_errors(void) {
    const char *ok = "{\"prompt\": \"a\", \"completion\": \"b\"}\n";
    char buf[1024];
    snprintf(buf, sizeof buf, "%s\n{\"prompt\": \"a\", \"completion\": }\n", ok);
    expect_error(buf, "d.jsonl:3: bad JSON: column 31: unexpected character", MOFO_FMT_AUTO);
    snprintf(buf, sizeof buf, "%s{\"prompt\": \"a\"}\n", ok);
    expect_error(buf, "d.jsonl:2: missing field \"completion\"", MOFO_FMT_AUTO);
    snprintf(buf, sizeof buf, "%s{\"prompt\": 3, \"completion\": \"b\"}\n", ok);
    expect_error(buf, "d.jsonl:2: field \"prompt\" is a number, expected a string", MOFO_FMT_AUTO);
    snprintf(buf, sizeof buf, "%s{\"prompt\": \"a\xff\", \"completion\": \"b\"}\n", ok);
    expect_error(buf, "d.jsonl:2: invalid UTF-8 at byte 14", MOFO_FMT_AUTO);
    snprintf(buf, sizeof buf, "%s[1, 2]\n", ok);
    expect_error(buf, "d.jsonl:2: the line is a JSON array, not an object", MOFO_FMT_AUTO);
    expect_error("{\"question\": \"a\"}\n", "d.jsonl:1: no known fields", MOFO_FMT_AUTO);
    expect_error("{\"messages\": [{\"role\": \"tool\", \"content\": \"x\"}]}", "d.jsonl:1: messages[0]: role \"tool\" is not", MOFO_FMT_AUTO);
    expect_error("{\"messages\": [{\"role\": \"user\"}]}", "d.jsonl:1: messages[0]: missing field \"content\"", MOFO_FMT_AUTO);
    expect_error("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", "d.jsonl:1: no assistant message", MOFO_FMT_AUTO);
    expect_error("{\"messages\": []}", "d.jsonl:1: \"messages\" is empty", MOFO_FMT_AUTO);
    expect_error("{\"messages\": {}}", "d.jsonl:1: field \"messages\" is an object, expected an array", MOFO_FMT_AUTO);
    expect_error("{\"input_ids\": [1, 99999]}", "d.jsonl:1: input_ids[1] is not an id in [0, 420)", MOFO_FMT_AUTO);
    expect_error("{\"input_ids\": [1, 2], \"labels\": [1]}", "d.jsonl:1: \"labels\" has 1 entries but \"input_ids\" has 2", MOFO_FMT_AUTO);
    expect_error("{\"input_ids\": [1, 2], \"labels\": [1, -5]}", "d.jsonl:1: labels[1] is neither -100 nor an id", MOFO_FMT_AUTO);
    expect_error("{\"instruction\": \"a\", \"input\": 1, \"output\": \"b\"}", "d.jsonl:1: field \"input\" is a number", MOFO_FMT_AUTO);
    expect_error("{\"text\": \"a\"}", "d.jsonl:1: missing field \"query\"", MOFO_FMT_METAMATH);

    /* skip_bad counts every bad line and keeps the good ones; blank lines are not lines */
    const char *mixed = "{\"text\": \"a b\"}\n\n{bad\n{\"text\": 1}\n   \n{\"text\": \"b c\"}\n";
    mofo_dataset ds = {0};
    mofo_err err = {0};
    mofo_data_opts o = {.skip_bad = 1};
    CHECK(mofo_dataset_load_buffer(&ds, "m.jsonl", mixed, strlen(mixed), gpt2, &o, &err) == 0, "%s", err.msg);
    CHECK(ds.n == 2 && ds.n_bad == 2 && ds.n_lines == 4 && ds.ex[1].line == 6, "skip_bad: n %zu bad %zu lines %zu", ds.n, ds.n_bad, ds.n_lines);
    CHECK(strstr(ds.first_bad, "m.jsonl:3: bad JSON") != NULL, "%s", ds.first_bad);
    mofo_dataset_free(&ds);
    /* a UTF-8 byte order mark at the start of the file is skipped */
    const char *bom = "\xEF\xBB\xBF{\"text\": \"a b\"}\n";
    CHECK(mofo_dataset_load_buffer(&ds, "bom", bom, strlen(bom), gpt2, NULL, &err) == 0 && ds.n == 1, "BOM: %s", err.msg);
    mofo_dataset_free(&ds);
    /* a missing file */
    CHECK(mofo_dataset_load(&ds, "/nonexistent/x.jsonl", gpt2, NULL, &err) == MOFO_EIO && strstr(err.msg, "/nonexistent/x.jsonl"), "%s", err.msg);
    /* a template needs EOS */
    mofo_tokenizer *t = load("gpt2-style", "{}");
    const char *line = "{\"prompt\": \"a\", \"completion\": \"b\"}";
    CHECK(mofo_dataset_load_buffer(&ds, "e.jsonl", line, strlen(line), t, NULL, &err) == MOFO_EINVAL && strstr(err.msg, "e.jsonl:1: the tokenizer has no EOS"), "%s", err.msg);
    mofo_dataset_free(&ds);
    mofo_tokenizer_free(t);
}

static void test_order(void) {
    mofo_strbuf sb = {0};
    for (int i = 0; i < 100; i++) mofo_sb_printf(&sb, "{\"input_ids\": [%d, %d]}\n", i, i + 1);
    mofo_dataset a = {0}, b = {0}, c = {0}, held = {0};
    mofo_err err = {0};
    CHECK(mofo_dataset_load_buffer(&a, "o", sb.data, sb.len, NULL, NULL, &err) == 0, "%s", err.msg);
    CHECK(mofo_dataset_load_buffer(&b, "o", sb.data, sb.len, NULL, NULL, &err) == 0, "%s", err.msg);
    CHECK(mofo_dataset_load_buffer(&c, "o", sb.data, sb.len, NULL, NULL, &err) == 0, "%s", err.msg);
    int in_order = a.n == 100;
    for (size_t i = 0; i < a.n; i++) in_order &= a.ex[i].ids[0] == (int32_t)i && a.ex[i].line == (int32_t)i + 1;
    CHECK(in_order, "examples keep the file's order (tokenized in parallel)");
    mofo_dataset_shuffle(&a, 7);
    mofo_dataset_shuffle(&b, 7);
    mofo_dataset_shuffle(&c, 8);
    int same_ab = 1, same_ac = 1, moved = 0;
    long sum = 0;
    for (size_t i = 0; i < a.n; i++) {
        same_ab &= a.ex[i].ids[0] == b.ex[i].ids[0];
        same_ac &= a.ex[i].ids[0] == c.ex[i].ids[0];
        moved += a.ex[i].ids[0] != (int32_t)i;
        sum += a.ex[i].ids[0];
    }
    CHECK(same_ab && !same_ac && moved > 80 && sum == 4950, "shuffle: same seed same order, another seed another");
    /* the order for seed 7 is fixed on every machine */
    CHECK(a.ex[0].ids[0] == b.ex[0].ids[0], "first after shuffle: %d", a.ex[0].ids[0]);
    CHECK(mofo_dataset_split(&c, &held, 0.1, 3, &err) == 0 && c.n == 90 && held.n == 10, "split 90/10: %zu/%zu", c.n, held.n);
    CHECK(mofo_dataset_split(&b, &held, 1.5, 3, &err) == MOFO_EINVAL, "bad fraction");
    mofo_dataset_free(&a);
    mofo_dataset_free(&b);
    mofo_dataset_free(&c);
    mofo_dataset_free(&held);
    mofo_sb_free(&sb);
}

static void test_batches(void) {
    const char *jsonl = "{\"input_ids\": [1, 2, 3], \"labels\": [-100, 2, 3]}\n{\"input_ids\": [4, 5]}\n{\"input_ids\": [6, 7, 8, 9, 10]}\n";
    mofo_dataset ds = {0}, packed = {0};
    mofo_err err = {0};
    CHECK(mofo_dataset_load_buffer(&ds, "b", jsonl, strlen(jsonl), sp, NULL, &err) == 0, "%s", err.msg);
    /* padding: rows 1, 2 and (wrapping) 0; T from the longest */
    mofo_batch b = {0};
    CHECK(mofo_batch_fill(&b, &ds, 1, 3, 0, 99, &err) == 0 && b.B == 3 && b.T == 5, "pad batch");
    static const int32_t ids[] = {4, 5, 99, 99, 99, 6, 7, 8, 9, 10, 1, 2, 3, 99, 99};
    static const int32_t lab[] = {4, 5, I, I, I, 6, 7, 8, 9, 10, I, 2, 3, I, I};
    CHECK(memcmp(b.ids, ids, sizeof ids) == 0 && memcmp(b.labels, lab, sizeof lab) == 0, "pad batch contents");
    CHECK(b.len[0] == 2 && b.len[1] == 5 && b.len[2] == 3, "lengths");
    /* fixed T cuts */
    CHECK(mofo_batch_fill(&b, &ds, 2, 1, 4, 99, &err) == 0 && b.T == 4 && b.ids[3] == 9, "T = 4");
    mofo_batch_free(&b);
    /* packing into rows of 4: 1 2 3 4 | 5 6 7 8 | 9 10, example starts not trained */
    CHECK(mofo_dataset_pack(&ds, 4, &packed, &err) == 0 && packed.n == 3, "pack: %zu rows", packed.n);
    if (packed.n == 3) {
        static const int32_t r0[] = {1, 2, 3, 4}, l0[] = {I, 2, 3, I}, r1[] = {5, 6, 7, 8}, l1[] = {5, I, 7, 8}, r2[] = {9, 10}, l2[] = {9, 10};
        CHECK(memcmp(packed.ex[0].ids, r0, sizeof r0) == 0 && memcmp(packed.ex[0].labels, l0, sizeof l0) == 0, "row 0");
        CHECK(memcmp(packed.ex[1].ids, r1, sizeof r1) == 0 && memcmp(packed.ex[1].labels, l1, sizeof l1) == 0, "row 1");
        CHECK(packed.ex[2].len == 2 && memcmp(packed.ex[2].ids, r2, sizeof r2) == 0 && memcmp(packed.ex[2].labels, l2, sizeof l2) == 0, "row 2");
    }
    CHECK(mofo_dataset_pack(&ds, 1, &packed, &err) == MOFO_EINVAL, "pack T=1");
    mofo_dataset_free(&packed);
    mofo_dataset_free(&ds);
}

/* The model's own template (MOFO_TPL_MODEL): rendered as written, tokenized without added
 * tokens, and trained on the assistant's text and the special token closing it. The expected texts
 * are worked out by hand from the template. */
static void test_model_template(void) {
    static const char src[] = "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[U] {{ m.content }}\n"
                              "{% else %}[A] {{ m.content | trim }}{{ eos_token }}\n{% endif %}{% endfor %}"
                              "{% if add_generation_prompt %}[A] {% endif %}";
    static const char *const specials[] = {"<s>", "</s>"};
    mofo_chat *chat = NULL;
    mofo_err err = {0};
    CHECK(mofo_chat_from_source(&chat, src, sizeof src - 1, "t", "<s>", "</s>", specials, 2, &err) == 0, "%s", err.msg);
    if (!chat) return;
    CHECK(!strcmp(mofo_chat_generation_prompt(chat), "[A] "), "generation prompt \"%s\"", mofo_chat_generation_prompt(chat));
    static const struct {
        const char *line, *text, *trained;
    } cases[] = {
        {"{\"prompt\": \"2+2=\", \"completion\": \" 4 \"}", "<s>[U] 2+2=\n[A] 4</s>\n", "4</s>"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}, "
         "{\"role\": \"user\", \"content\": \"c\"}, {\"role\": \"assistant\", \"content\": \"d\"}]}",
         "<s>[U] a\n[A] b</s>\n[U] c\n[A] d</s>\n", "b</s>d</s>"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        mofo_data_opts o = {.tpl = MOFO_TPL_MODEL, .chat = chat};
        mofo_dataset ds = {0};
        int rc = mofo_dataset_load_buffer(&ds, "d.jsonl", cases[i].line, strlen(cases[i].line), sp, &o, &err);
        CHECK(rc == 0 && ds.n == 1, "case %zu: %s", i, rc ? err.msg : "no example");
        if (rc || ds.n != 1) continue;
        const mofo_example *e = &ds.ex[0];
        mofo_ids want = {0};
        CHECK(mofo_tokenizer_encode(sp, cases[i].text, strlen(cases[i].text), 0, &want, &err) == 0, "%s", err.msg);
        CHECK((size_t)e->len == want.len && !memcmp(e->ids, want.ids, want.len * sizeof *want.ids), "case %zu: the ids are not "
              "those of the rendering (no BOS added: the template writes it)", i);
        int32_t tr[64];
        size_t nt = 0;
        for (int32_t k = 0; k < e->len && nt < 64; k++)
            if (e->labels[k] != I) tr[nt++] = e->labels[k];
        mofo_strbuf t = {0};
        CHECK(mofo_tokenizer_decode(sp, tr, nt, 0, &t, &err) == 0, "%s", err.msg);
        CHECK(t.data && !strcmp(t.data, cases[i].trained), "case %zu: trained \"%s\", want \"%s\"", i, t.data ? t.data : "",
              cases[i].trained);
        mofo_sb_free(&t);
        mofo_ids_free(&want);
        mofo_dataset_free(&ds);
    }
    /* without the template loaded: a clear error, not a crash */
    mofo_data_opts o = {.tpl = MOFO_TPL_MODEL};
    mofo_dataset ds = {0};
    const char *line = cases[0].line;
    CHECK(mofo_dataset_load_buffer(&ds, "d.jsonl", line, strlen(line), sp, &o, &err) == MOFO_EINVAL &&
              strstr(err.msg, "d.jsonl:1: the template \"model\" needs the model's chat template"),
          "%s", err.msg);
    mofo_dataset_free(&ds);
    mofo_chat_free(chat);
}

int main(void) {
    gpt2 = load("gpt2-style", "{\"eos_token\": \"<|endoftext|>\", \"bos_token\": \"<|endoftext|>\", \"add_bos_token\": false}");
    sp = load("sentencepiece-style", "{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"</s>\", \"add_bos_token\": true, \"add_eos_token\": false}");
    if (gpt2 && sp) {
        test_formats();
        test_truncation();
        test_errors();
        test_order();
        test_batches();
        test_model_template();
    }
    mofo_tokenizer_free(gpt2);
    mofo_tokenizer_free(sp);
    return CHECK_DONE();
}

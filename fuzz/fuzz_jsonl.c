/* libFuzzer: JSONL data sets in every format and template with the gpt2-style fixture tokenizer;
 * then packing and batches. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/dataset.h"

static mofo_tokenizer *tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mofo_err err = {0};
    if (!tok) {
        if (mofo_tokenizer_load_file(&tok, MOFO_FIXTURES "/tokenizers/gpt2-style.json", &err)) abort();
        const char *cfg = "{\"eos_token\": \"<|endoftext|>\", \"bos_token\": \"<|endoftext|>\", \"add_bos_token\": true}";
        mofo_tokenizer_apply_config(tok, cfg, strlen(cfg), NULL, 0, "fuzz", &err);
    }
    for (int tpl = 0; tpl < 4; tpl++) {
        mofo_data_opts o = {.tpl = (mofo_chat_template)tpl, .max_len = tpl * 7, .skip_bad = tpl & 1};
        mofo_dataset ds = {0}, held = {0}, packed = {0};
        if (mofo_dataset_load_buffer(&ds, "fuzz", (const char *)data, size, tok, &o, &err) == 0 && ds.n > 0) {
            mofo_dataset_split(&ds, &held, 0.25, 1, &err);
            if (ds.n > 0) {
                mofo_batch b = {0};
                mofo_batch_fill(&b, &ds, 1, 3, 0, 0, &err);
                mofo_batch_free(&b);
                mofo_dataset_pack(&ds, 5, &packed, &err);
            }
        }
        mofo_dataset_free(&ds);
        mofo_dataset_free(&held);
        mofo_dataset_free(&packed);
    }
    return 0;
}

/* libFuzzer: tokenizer.json parsing; a tokenizer that loads must encode and decode without error. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "text/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mofo_tokenizer *t = NULL;
    mofo_err err = {0};
    if (mofo_tokenizer_from_json(&t, (const char *)data, size, "fuzz", &err)) return 0;
    static const char *texts[] = {"Hello world", " it's 2024!\n\n", "<|endoftext|>x <s> \xE6\x97\xA5\xE6\x9C\xAC \xFF", ""};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        mofo_ids ids = {0};
        ids.want_offsets = 1;
        if (mofo_tokenizer_encode(t, texts[i], strlen(texts[i]), 1, &ids, &err) == 0) {
            mofo_strbuf sb = {0};
            mofo_tokenizer_decode(t, ids.ids, ids.len, 0, &sb, &err);
            mofo_sb_free(&sb);
        }
        mofo_ids_free(&ids);
    }
    mofo_tokenizer_free(t);
    return 0;
}

/* libFuzzer: encode arbitrary bytes with the three fixture tokenizers; for the byte-level ones
 * decode(encode(s)) must give s back (after U+FFFD replacement of invalid UTF-8). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"
#include "text/utf8.h"

static mofo_tokenizer *toks[3];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *names[] = {"gpt2-style", "llama3-style", "sentencepiece-style"};
    mofo_err err = {0};
    for (int i = 0; i < 3; i++) {
        if (!toks[i]) {
            char path[1024];
            snprintf(path, sizeof path, "%s/tokenizers/%s.json", MOFO_FIXTURES, names[i]);
            if (mofo_tokenizer_load_file(&toks[i], path, &err)) abort();
        }
        mofo_ids ids = {0};
        if (mofo_tokenizer_encode(toks[i], (const char *)data, size, 0, &ids, &err)) abort();
        mofo_strbuf dec = {0}, want = {0};
        if (mofo_tokenizer_decode(toks[i], ids.ids, ids.len, 0, &dec, &err)) abort();
        mofo_utf8_lossy(&want, (const char *)data, size);
        if (i < 2 && (dec.len != want.len || (dec.len && memcmp(dec.data, want.data, dec.len) != 0))) abort();
        mofo_sb_free(&dec);
        mofo_sb_free(&want);
        mofo_ids_free(&ids);
    }
    return 0;
}

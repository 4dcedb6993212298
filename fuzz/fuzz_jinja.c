/* libFuzzer: chat templates (jinja.h); a template that parses is rendered on a fixed conversation,
 * both ways of add_generation_prompt. Every input must end in a rendering or an error message. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "text/jinja.h"

static const char CONV[] = "[{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi \\u00e9\"}, "
                           "{\"role\": \"assistant\", \"content\": \"<think>\\nx\\n</think>\\n\\n Hello. \", \"n\": [1, 2.5, null, true]}]";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static mofo_json_doc *conv;
    if (!conv) conv = mofo_json_parse(CONV, sizeof CONV - 1, NULL);
    mofo_jinja *t = NULL;
    mofo_err err = {0};
    if (mofo_jinja_parse(&t, (const char *)data, size, "fuzz", &err)) return 0;
    for (int agp = 0; agp < 2; agp++) {
        mofo_jinja_vars v = {mofo_json_root(conv), agp, "<s>", "</s>", NULL, 0};
        mofo_strbuf text = {0}, mask = {0};
        if (mofo_jinja_render(t, &v, &text, &mask, &err) == 0 && text.len != mask.len) __builtin_trap();
        mofo_sb_free(&text);
        mofo_sb_free(&mask);
    }
    mofo_jinja_free(t);
    return 0;
}

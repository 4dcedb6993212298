/* libFuzzer: the safetensors reader on arbitrary bytes (header length, JSON header, offsets, dtypes),
 * converting every floating-point tensor it accepts; and the same bytes as an optimizer state file. */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "mofo/optim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mofo_err err = {0};
    mofo_st_file *f = NULL;
    if (mofo_st_parse(&f, data, size, "fuzz", &err) == 0) {
        for (size_t i = 0; i < f->n_tensors; i++) {
            const mofo_st_tensor *t = &f->tensors[i];
            if (t->numel > (1 << 20)) continue;
            float *out = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *out);
            mofo_st_to_f32(f, t, out, t->numel, &err);
            free(out);
        }
        mofo_st_close(f);
    }
    /* as optimizer state for two registered tensors */
    char path[64];
    snprintf(path, sizeof path, "/tmp/mofo-fuzz-%d.safetensors", (int)getpid());
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    fwrite(data, 1, size, fp);
    fclose(fp);
    mofo_options o;
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    mofo_optim *opt = mofo_optim_create(&o, &err);
    float w[6] = {0}, g[6] = {0}, b[2] = {0}, gb[2] = {0};
    mofo_optim_add_param(opt, "w", w, g, 2, (int64_t[]){2, 3}, MOFO_GROUP_AUTO, &err);
    mofo_optim_add_param(opt, "b", b, gb, 1, (int64_t[]){2}, MOFO_GROUP_AUTO, &err);
    if (mofo_optim_load(opt, path, &err) == 0) mofo_optim_step(opt, 0.1, &err);
    mofo_optim_destroy(opt);
    unlink(path);
    return 0;
}
